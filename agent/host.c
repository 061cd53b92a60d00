/* host.c: probing QEMU and KVM at start-up, before the loop serves anyone. */
#include "host.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

bool host_kvm_usable(void)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

    if (fd < 0)
        return false;
    close(fd);
    return true;
}

static int read_bounded(int fd, char *buf, size_t len, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    size_t got = 0;

    while (got < len - 1) {
        int r = poll(&p, 1, timeout_ms);
        if (r <= 0)
            return r == 0 ? -ETIMEDOUT : -errno;
        ssize_t n = read(fd, buf + got, len - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    return 0;
}

static int parse_version(const char *out, char *ret_str, size_t len)
{
    const char *p = strstr(out, "version ");
    int major, minor, micro = 0;

    if (!p || sscanf(p + 8, "%d.%d.%d", &major, &minor, &micro) < 2)
        return -EPROTO;
    snprintf(ret_str, len, "%d.%d.%d", major, minor, micro);
    return major * 10000 + minor * 100 + micro;
}

/* Output is read until EOF (the command ended or closed it) or the deadline;
 * a command still running then is killed. */
int host_run(char *const argv[], int timeout_ms, char *out, size_t outlen, int *ret_status)
{
    posix_spawn_file_actions_t fa;
    int pipefd[2], r, status;
    pid_t pid;

    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -errno;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDERR_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    if (r) {
        close(pipefd[0]);
        return -r;
    }
    r = read_bounded(pipefd[0], out, outlen, timeout_ms);
    close(pipefd[0]);
    if (r < 0)
        kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (r == 0)
        *ret_status = status;
    return r;
}

int host_probe_qemu(const char *binary, int timeout_ms, char *ret_str, size_t len)
{
    char *argv[] = { (char *)binary, "-version", NULL };
    char out[1024];
    int r, status;

    if ((r = host_run(argv, timeout_ms, out, sizeof(out), &status)) < 0)
        return r;
    return parse_version(out, ret_str, len);
}
