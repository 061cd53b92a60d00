/* Smoke check of the test guest and of tests/support/guest.c: boots the guest
 * with a disk and a NIC, runs every query command, checks the answers against
 * what the host knows, then powers the guest off with the ACPI button over QMP.
 *
 * Usage: guest_smoke RUN_DIR [VCPUS]   (RUN_DIR must exist) */

#include "guest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DISK_SIZE (1024 * 1024)
#define RANGE_OFFSET 4097
#define RANGE_LENGTH 10000
#define GUEST_MAC "52:54:00:12:34:56"
#define QUERY_TIMEOUT_MS 10000

static int failures;

#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (cond) {                                        \
            printf("ok   ");                               \
        } else {                                           \
            printf("FAIL ");                               \
            failures++;                                    \
        }                                                  \
        printf(__VA_ARGS__);                               \
        printf("\n");                                      \
    } while (0)

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int write_file(const char *path, const unsigned char *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    size_t done = 0;

    if (fd < 0)
        return -errno;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        if (n < 0) {
            int r = -errno;
            close(fd);
            return r;
        }
        done += (size_t)n;
    }
    return close(fd) < 0 ? -errno : 0;
}

/* A pattern that differs in every 512-byte sector, so a hash over the wrong
 * range cannot match by accident. */
static int make_disk(const char *disk, const char *range)
{
    static unsigned char data[DISK_SIZE];
    int r;

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)((i * 7) ^ (i >> 9) ^ (i >> 17));
    r = write_file(disk, data, sizeof(data));
    if (r == 0)
        r = write_file(range, data + RANGE_OFFSET, RANGE_LENGTH);
    return r;
}

/* Runs md5sum (no shell) and keeps the first 32 characters of its output. */
static int md5_of(const char *path, char ret_hex[33])
{
    int fds[2];
    char out[128] = "";
    ssize_t n;
    int status;
    pid_t pid;

    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        execlp("md5sum", "md5sum", path, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    n = read(fds[0], out, sizeof(out) - 1);
    close(fds[0]);
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || n < 32)
        return -EIO;
    memcpy(ret_hex, out, 32);
    ret_hex[32] = '\0';
    return 0;
}

static void check_query(struct guest *g, const char *command, int want_r, const char *want_out, bool prefix_only)
{
    char out[8192];
    int r = guest_query(g, command, QUERY_TIMEOUT_MS, out, sizeof(out));
    bool same = prefix_only ? strncmp(out, want_out, strlen(want_out)) == 0 : strcmp(out, want_out) == 0;

    CHECK(r == want_r && (r == 0 || r == -EIO) && same, "%-28s -> %d [%s]", command, r,
          r == 0 || r == -EIO ? out : strerror(-r));
}

static void check_contains(struct guest *g, const char *command, const char *needle)
{
    char out[8192];
    int r = guest_query(g, command, QUERY_TIMEOUT_MS, out, sizeof(out));

    CHECK(r == 0 && strstr(out, needle), "%-28s -> %d [%s]", command, r, r == 0 ? out : strerror(-r));
}

static void check_mem(struct guest *g)
{
    char out[256];
    int r = guest_query(g, "mem", QUERY_TIMEOUT_MS, out, sizeof(out));
    long kib = r == 0 ? strtol(out, NULL, 10) : 0;

    /* 256 MiB minus what the kernel keeps for itself. */
    CHECK(r == 0 && kib > 150000 && kib <= 262144, "%-28s -> %d [%s]", "mem", r, r == 0 ? out : strerror(-r));
}

static void check_queries(struct guest *g, const char *disk, const char *range, int vcpus)
{
    char want[128];
    char hex[33];
    char cmd[128];

    check_query(g, "ping", 0, "pong", false);
    check_contains(g, "blk", "vda 1048576");
    check_contains(g, "nic", GUEST_MAC " up");
    snprintf(want, sizeof(want), "%d 0%s", vcpus, vcpus > 1 ? "-" : "");
    check_query(g, "cpus", 0, want, true);
    check_mem(g);
    if (md5_of(disk, hex) == 0) {
        snprintf(cmd, sizeof(cmd), "sum vda 0 %d", DISK_SIZE);
        check_query(g, cmd, 0, hex, false);
    } else {
        CHECK(false, "md5sum %s", disk);
    }
    if (md5_of(range, hex) == 0) {
        snprintf(cmd, sizeof(cmd), "sum vda %d %d", RANGE_OFFSET, RANGE_LENGTH);
        check_query(g, cmd, 0, hex, false);
    } else {
        CHECK(false, "md5sum %s", range);
    }
    check_query(g, "sum ../vda 0 1", -EIO, "bad device name", false);
    check_query(g, "sum vda 1048575 2", -EIO, "range past the end of vda", false);
    check_query(g, "run echo hello  world; echo  second", 0, "hello world\nsecond", false);
    check_query(g, "run exit 3", -EIO, "exit 3", false);
    check_query(g, "frobnicate", -EIO, "unknown command", false);
}

/* Reads from a socket with SO_RCVTIMEO until needle shows up. */
static int read_until(int fd, const char *needle)
{
    char buf[16384];
    size_t used = 0;

    while (used < sizeof(buf) - 1) {
        ssize_t n = read(fd, buf + used, sizeof(buf) - 1 - used);
        if (n <= 0)
            return n == 0 ? -EPIPE : -errno;
        used += (size_t)n;
        buf[used] = '\0';
        if (strstr(buf, needle))
            return 0;
    }
    return -ENOBUFS;
}

static int qmp_command(int fd, const char *json)
{
    size_t len = strlen(json);

    if (send(fd, json, len, MSG_NOSIGNAL) != (ssize_t)len)
        return -EIO;
    return read_until(fd, "\"return\"");
}

/* A plain blocking socket, bounded by SO_RCVTIMEO/SO_SNDTIMEO. */
static int qmp_powerdown(const char *qmp_path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct timeval tv = { .tv_sec = 5 };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int r;

    if (fd < 0)
        return -errno;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", qmp_path);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    r = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
    if (r == 0)
        r = read_until(fd, "\"QMP\"");
    if (r == 0)
        r = qmp_command(fd, "{\"execute\":\"qmp_capabilities\"}\n");
    if (r == 0)
        r = qmp_command(fd, "{\"execute\":\"system_powerdown\"}\n");
    /* Kept open until QEMU exits, so the command can't be lost to a hang-up. */
    return r < 0 ? (close(fd), r) : fd;
}

static void check_powerdown(struct guest *g)
{
    int64_t start = now_ms();
    int qmp_fd = qmp_powerdown(g->qmp_path);
    int status = 0;
    int r;

    CHECK(qmp_fd >= 0, "qmp system_powerdown -> %s", qmp_fd >= 0 ? "sent" : strerror(-qmp_fd));
    r = guest_wait_exit(g, 10000, &status);
    CHECK(r == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "qemu exited by itself after powerdown: r=%d status=0x%x in %lld ms", r, status,
          (long long)(now_ms() - start));
    if (qmp_fd >= 0)
        close(qmp_fd);
}

int main(int argc, char **argv)
{
    char disk[512], range[512], drive[600];
    int vcpus = argc > 2 ? atoi(argv[2]) : 2;
    struct guest g = { 0 };
    int64_t start;
    int r;

    if (argc < 2) {
        fprintf(stderr, "usage: %s RUN_DIR [VCPUS]\n", argv[0]);
        return 2;
    }
    snprintf(disk, sizeof(disk), "%s/disk.img", argv[1]);
    snprintf(range, sizeof(range), "%s/range.bin", argv[1]);
    snprintf(drive, sizeof(drive), "file=%s,if=virtio,format=raw", disk);
    if (make_disk(disk, range) < 0) {
        perror("make_disk");
        return 1;
    }
    const char *extra[] = { "-drive", drive, "-netdev", "user,id=n0", "-device",
                            "virtio-net-pci,netdev=n0,mac=" GUEST_MAC, NULL };
    struct guest_opts o = { .run_dir = argv[1], .vcpus = vcpus, .extra_args = extra };

    start = now_ms();
    r = guest_launch(&o, &g);
    CHECK(r == 0, "guest_launch -> %d (%s)", r, strerror(-r));
    if (r == 0) {
        r = guest_wait_ready(&g, 30000);
        CHECK(r == 0, "ready after %lld ms (vcpus=%d)", (long long)(now_ms() - start), vcpus);
    }
    if (r == 0) {
        check_queries(&g, disk, range, vcpus);
        check_powerdown(&g);
    }
    guest_kill(&g);
    guest_kill(&g);
    printf("%s: %d failure(s); serial log in %s\n", failures ? "FAILED" : "PASSED", failures, g.log_path);
    return failures ? 1 : 0;
}
