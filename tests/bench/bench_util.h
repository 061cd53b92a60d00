/* bench_util.h: what the command-timing benchmarks share: running a whole
 * command and timing it, with its peak memory, and percentiles. */
#ifndef AGENTD_BENCH_UTIL_H
#define AGENTD_BENCH_UTIL_H

#include <stddef.h>
#include <sys/types.h>

double bench_now_s(void);

typedef struct bench_run {
    double seconds;       /* wall time from fork to reaped */
    long max_rss_kib;     /* the command's peak resident memory */
} bench_run;

/* Runs argv with stdout to /dev/null and waits; -1 when it did not exit 0. */
int bench_command(char *const argv[], bench_run *ret);
/* The p-th percentile (0..1) of v (sorted in place). */
double bench_pct(double *v, size_t n, double p);
/* Touches and frees mb MiB of memory. This VM hands memory that is freed
 * back to its host, and whoever writes into it first pays the host's page
 * faults (seen here: a 0.4 s copy taking 2 s); warming up before each timed
 * command gives every command the same start. */
void bench_warm_memory(size_t mb);
/* system(3) that says whether it exited 0. */
int bench_sh(const char *cmd);

/* Waits until pid used at most max_share of a core over 200 ms (a guest's
 * firmware booting under TCG, say, is over): the seconds waited, or -1
 * after timeout_s or when pid is gone. */
double bench_wait_idle(pid_t pid, double max_share, double timeout_s);
/* A process's argv from /proc/PID/cmdline, NULL-terminated (the caller
 * frees it); NULL when it cannot be read. */
char **bench_read_cmdline(pid_t pid);
/* s with every occurrence of from replaced by to (caller frees); NULL
 * without memory. */
char *bench_replace_all(const char *s, const char *from, const char *to);

#endif
