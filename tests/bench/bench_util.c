/* bench_util.c: see bench_util.h. */
#include "bench_util.h"

#include <fcntl.h>
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
