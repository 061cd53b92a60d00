/* proc.c: process launch and identity checks. */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

extern char **environ;

static int spawn_file_actions(posix_spawn_file_actions_t *fa, const char *log_path, int pass_fd)
{
    int r = posix_spawn_file_actions_init(fa);

    if (r)
        return -r;
    /* dup2 onto a different number clears close-on-exec; the caller makes
     * sure pass_fd is not already PROC_PASSED_FD. */
    if ((r = posix_spawn_file_actions_addopen(fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0)) ||
        (r = posix_spawn_file_actions_addopen(fa, STDOUT_FILENO, log_path,
                                               O_WRONLY | O_CREAT | O_APPEND, 0640)) ||
        (r = posix_spawn_file_actions_adddup2(fa, STDOUT_FILENO, STDERR_FILENO)) ||
        (pass_fd >= 0 && (r = posix_spawn_file_actions_adddup2(fa, pass_fd, PROC_PASSED_FD)))) {
        posix_spawn_file_actions_destroy(fa);
        return -r;
    }
    return 0;
}

/* QEMU must start from default signal dispositions and an empty mask,
 * whatever the agent (or libuv) set for itself. */
static int spawn_attrs(posix_spawnattr_t *at)
{
    sigset_t all, none;
    int r = posix_spawnattr_init(at);

    if (r)
        return -r;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(at, &all);
    posix_spawnattr_setsigmask(at, &none);
    r = posix_spawnattr_setflags(at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF |
                                         POSIX_SPAWN_SETSIGMASK);
    if (r) {
        posix_spawnattr_destroy(at);
        return -r;
    }
    return 0;
}

static void close_all(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

/* The extra fds go to fixed numbers from PROC_PASSED_FD + 1; copies above
 * all of those numbers first, so that no dup2 in the child overwrites a
 * source another one still needs. */
static int add_extra_fds(posix_spawn_file_actions_t *fa, const int *extra, size_t n, int *copies)
{
    int base = PROC_PASSED_FD + 1 + (int)n, r;

    for (size_t i = 0; i < n; i++)
        copies[i] = -1;
    for (size_t i = 0; i < n; i++) {
        if ((copies[i] = fcntl(extra[i], F_DUPFD_CLOEXEC, base)) < 0)
            return -errno;
        if ((r = posix_spawn_file_actions_adddup2(fa, copies[i], PROC_PASSED_FD + 1 + (int)i)))
            return -r;
    }
    return 0;
}

int proc_spawn_fds(char *const argv[], const char *log_path, int pass_fd, const int *extra, size_t nextra,
                   pid_t *ret_pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int copies[PROC_EXTRA_FDS_MAX];
    pid_t pid;
    int r;

    if (pass_fd == PROC_PASSED_FD || nextra > PROC_EXTRA_FDS_MAX)
        return -EINVAL;
    if ((r = spawn_file_actions(&fa, log_path, pass_fd)) < 0)
        return r;
    if ((r = add_extra_fds(&fa, extra, nextra, copies)) < 0) {
        close_all(copies, nextra);
        posix_spawn_file_actions_destroy(&fa);
        return r;
    }
    if ((r = spawn_attrs(&at)) < 0) {
        close_all(copies, nextra);
        posix_spawn_file_actions_destroy(&fa);
        return r;
    }
    r = posix_spawnp(&pid, argv[0], &fa, &at, argv, environ);
    close_all(copies, nextra);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (r)
        return -r;
    *ret_pid = pid;
    return 0;
}

int proc_spawn(char *const argv[], const char *log_path, int pass_fd, pid_t *ret_pid)
{
    return proc_spawn_fds(argv, log_path, pass_fd, NULL, 0, ret_pid);
}

int proc_pidfd_open(pid_t pid, int *ret_fd)
{
    /* pidfds are always close-on-exec. */
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);

    if (fd < 0)
        return -errno;
    *ret_fd = fd;
    return 0;
}

int proc_pidfd_signal(int pidfd, int sig)
{
    if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0)
        return -errno;
    return 0;
}

int proc_reap(int pidfd, int *ret_status)
{
    siginfo_t si;

    memset(&si, 0, sizeof(si));
    if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG) < 0)
        return -errno;
    if (si.si_pid == 0)
        return 0;
    if (si.si_code == CLD_EXITED)
        *ret_status = W_EXITCODE(si.si_status, 0);
    else
        *ret_status = si.si_status & 0x7f; /* killed: the signal number, as wait(2) encodes it */
    return 1;
}

static int read_small(const char *path, char *buf, size_t len, size_t *ret_n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t got = 0;

    if (fd < 0)
        return -errno;
    while (got < len - 1) {
        ssize_t n = read(fd, buf + got, len - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    *ret_n = got;
    return 0;
}

int proc_start_ticks(pid_t pid, uint64_t *ret)
{
    char path[64], buf[1024], *p;
    size_t n;
    int r;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((r = read_small(path, buf, sizeof(buf), &n)) < 0)
        return r;
    /* comm (field 2) may hold spaces and parentheses: fields resume after the last ')'. */
    p = strrchr(buf, ')');
    if (!p)
        return -EIO;
    p++;
    for (int field = 3; field < 22; field++) {
        p = strchr(p + 1, ' ');
        if (!p)
            return -EIO;
    }
    *ret = strtoull(p + 1, NULL, 10);
    return 0;
}

bool proc_cmdline_has_pair(pid_t pid, const char *a, const char *b)
{
    char path[64];
    static char buf[65536];
    size_t n;

    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    if (read_small(path, buf, sizeof(buf), &n) < 0)
        return false;
    for (size_t i = 0; i < n;) {
        const char *arg = buf + i;
        size_t len = strlen(arg);
        if (strcmp(arg, a) == 0 && i + len + 1 < n && strcmp(arg + len + 1, b) == 0)
            return true;
        i += len + 1;
    }
    return false;
}

int proc_read_tail(const char *path, size_t max, char **ret)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    off_t size, from;
    char *buf;
    ssize_t n;

    if (fd < 0)
        return -errno;
    size = lseek(fd, 0, SEEK_END);
    from = size > (off_t)max ? size - (off_t)max : 0;
    buf = malloc(max + 1);
    if (!buf || size < 0) {
        free(buf);
        close(fd);
        return -ENOMEM;
    }
    n = pread(fd, buf, (size_t)(size - from), from);
    close(fd);
    if (n < 0) {
        free(buf);
        return -errno;
    }
    buf[n] = '\0';
    /* Drop a partial first line when the tail starts mid-file. */
    char *start = buf;
    if (from > 0 && (start = strchr(buf, '\n')))
        start++;
    else
        start = buf;
    memmove(buf, start, strlen(start) + 1);
    *ret = buf;
    return 0;
}
