/* proc.h: launching QEMU and knowing it again.
 *
 * QEMU runs in its own session so it outlives the agent; it is tracked by a
 * pidfd, and a PID read back from disk is trusted only when /proc shows the
 * same start time and the VM's uuid on its command line. */
#ifndef AGENTD_PROC_H
#define AGENTD_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* posix_spawn in a new session; stdin from /dev/null, stdout and stderr
 * appended to log_path; pass_fd (>= 0) becomes fd 3 in the child. Returns
 * -errno, including exec failures. Blocks until the child has exec'd: call
 * it off the event loop. */
int proc_spawn(char *const argv[], const char *log_path, int pass_fd, pid_t *ret_pid);
/* The fd number a passed descriptor gets in the child. */
#define PROC_PASSED_FD 3
/* proc_spawn, and extra[i] becomes fd PROC_PASSED_FD + 1 + i in the child
 * (taps and vhost-net for QEMU's netdevs). */
#define PROC_EXTRA_FDS_MAX 256
int proc_spawn_fds(char *const argv[], const char *log_path, int pass_fd, const int *extra, size_t nextra,
                   pid_t *ret_pid);
int proc_pidfd_open(pid_t pid, int *ret_fd);
/* Signals through the pidfd, so a recycled PID can never receive it. */
int proc_pidfd_signal(int pidfd, int sig);
/* 1 and the wait status once the child ended, 0 while it runs, -ECHILD when
 * it is not our child (adopted). */
int proc_reap(int pidfd, int *ret_status);
/* Field 22 of /proc/PID/stat: clock ticks after boot when it started. */
int proc_start_ticks(pid_t pid, uint64_t *ret);
/* True when argv of pid holds the two consecutive arguments a and b. */
bool proc_cmdline_has_pair(pid_t pid, const char *a, const char *b);
/* The last max bytes of a file, starting at a line boundary when possible. */
int proc_read_tail(const char *path, size_t max, char **ret);

#endif
