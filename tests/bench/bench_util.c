/* bench_util.c: see bench_util.h. */
#include "bench_util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double bench_now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int bench_command(char *const argv[], bench_run *ret)
{
    double t0 = bench_now_s();
    struct rusage ru;
    pid_t pid = fork();
    int st;

    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, STDOUT_FILENO);    /* what a user would read, not the terminal's speed */
        execvp(argv[0], argv);
        _exit(127);
    }
    if (pid < 0 || wait4(pid, &st, 0, &ru) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return -1;
    ret->seconds = bench_now_s() - t0;
    ret->max_rss_kib = ru.ru_maxrss;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

double bench_pct(double *v, size_t n, double p)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return v[(size_t)(p * (double)(n - 1) + 0.5)];
}

void bench_warm_memory(size_t mb)
{
    size_t n = mb << 20;
    char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED)
        return;
    memset(p, 1, n);
    munmap(p, n);
}

int bench_sh(const char *cmd)
{
    int st = system(cmd);

    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

char **bench_read_cmdline(pid_t pid)
{
    char path[64], *buf = malloc(65536), **argv = NULL;
    int fd, argc = 0;
    ssize_t n = -1;

    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    if (buf && (fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
        n = read(fd, buf, 65535);
        close(fd);
    }
    if (n <= 0 || n == 65535) {   /* unreadable, empty or cut */
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    for (ssize_t i = 0; i < n; i++)
        argc += buf[i] == '\0';
    if (!(argv = calloc((size_t)argc + 1, sizeof(*argv)))) {
        free(buf);
        return NULL;
    }
    for (int i = 0, off = 0; i < argc; off += (int)strlen(buf + off) + 1, i++)
        argv[i] = strdup(buf + off);
    free(buf);
    for (int i = 0; i < argc; i++)
        if (!argv[i]) {
            for (int j = 0; j < argc; j++)
                free(argv[j]);
            free(argv);
            return NULL;
        }
    return argv;
}

char *bench_replace_all(const char *s, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), n = 0;
    char *out, *o;

    for (const char *p = s; (p = strstr(p, from)); p += fl)
        n++;
    if (!(out = malloc(strlen(s) + n * (tl > fl ? tl - fl : 0) + 1)))
        return NULL;
    for (o = out; *s;) {
        if (strncmp(s, from, fl) == 0) {
            memcpy(o, to, tl);
            o += tl;
            s += fl;
        } else {
            *o++ = *s++;
        }
    }
    *o = '\0';
    return out;
}

/* utime + stime of all of pid's threads, in clock ticks; -1 when gone. */
static long cpu_ticks(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long ut, st;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (!(f = fopen(path, "re")))
        return -1;
    p = fgets(buf, sizeof(buf), f);
    fclose(f);
    /* The name in parentheses may hold spaces: fields count from its end. */
    if (!p || !(p = strrchr(buf, ')')) ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (long)(ut + st);
}

double bench_wait_idle(pid_t pid, double max_share, double timeout_s)
{
    long hz = sysconf(_SC_CLK_TCK), prev = cpu_ticks(pid);
    double t0 = bench_now_s();

    while (prev >= 0 && bench_now_s() - t0 < timeout_s) {
        usleep(200000);
        long now = cpu_ticks(pid);
        if (now >= 0 && (double)(now - prev) / (double)hz <= max_share * 0.2)
            return bench_now_s() - t0;
        prev = now;
    }
    return -1;
}
