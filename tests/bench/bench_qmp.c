/* bench_qmp.c: QMP round-trip latency through the library against a raw
 * blocking socket, measured side by side in one run on one QEMU, and
 * throughput with 64 commands in flight.
 *
 * QEMU gets two QMP monitors so both clients stay connected; rounds alternate
 * between them so drift on a noisy machine hits both equally.
 *
 * Usage: bench_qmp [rounds] [per-round]   (env AGENTD_QEMU, AGENTD_ACCEL) */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <uv.h>

#include "qmp/qmp.h"

#define IN_FLIGHT 64

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_qmp: %s: %s\n", what, strerror(errno));
    exit(1);
}

static pid_t spawn_qemu(const char *dir)
{
    const char *qemu = getenv("AGENTD_QEMU") ? getenv("AGENTD_QEMU") : "qemu-system-x86_64";
    const char *accel = getenv("AGENTD_ACCEL") ? getenv("AGENTD_ACCEL") : "tcg";
    char a[256], b[256];
    snprintf(a, sizeof(a), "unix:%s/a.sock,server=on,wait=off", dir);
    snprintf(b, sizeof(b), "unix:%s/b.sock,server=on,wait=off", dir);
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execlp(qemu, qemu, "-machine", "none", "-accel", accel, "-nodefaults", "-no-user-config",
               "-display", "none", "-S", "-qmp", a, "-qmp", b, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* ---- the raw blocking client ------------------------------------------ */

typedef struct raw_client {
    int fd;
    char buf[65536];
    size_t len;
} raw_client;

static void raw_read_line(raw_client *r)
{
    for (;;) {
        char *nl = memchr(r->buf, '\n', r->len);
        if (nl) {
            size_t n = (size_t)(nl - r->buf) + 1;
            memmove(r->buf, nl + 1, r->len - n);
            r->len -= n;
            return;
        }
        ssize_t k = read(r->fd, r->buf + r->len, sizeof(r->buf) - r->len);
        if (k <= 0)
            die("raw read");
        r->len += (size_t)k;
    }
}

static void raw_send(raw_client *r, const char *s, size_t n)
{
    if (write(r->fd, s, n) != (ssize_t)n)
        die("raw write");
}

static void raw_connect(raw_client *r, const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path))
        die("socket path too long");
    memcpy(sa.sun_path, path, strlen(path) + 1);
    for (int i = 0; i < 1000; i++) {
        r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(r->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            break;
        close(r->fd);
        r->fd = -1;
        usleep(10000);
    }
    if (r->fd < 0)
        die("raw connect");
    raw_read_line(r); /* greeting */
    static const char caps[] = "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]},\"id\":0}\n";
    raw_send(r, caps, sizeof(caps) - 1);
    raw_read_line(r);
}

static void raw_round(raw_client *r, int n, uint64_t *out, uint64_t *next_id)
{
    char cmd[96];
    for (int i = 0; i < n; i++) {
        int k = snprintf(cmd, sizeof(cmd), "{\"execute\":\"query-status\",\"id\":%llu}\n",
                         (unsigned long long)++*next_id);
        uint64_t t0 = now_ns();
        raw_send(r, cmd, (size_t)k);
        raw_read_line(r);
        out[i] = now_ns() - t0;
    }
}

static double raw_throughput(raw_client *r, int total, uint64_t *next_id)
{
    char cmd[96];
    int sent = 0, got = 0;
    uint64_t t0 = now_ns();
    while (got < total) {
        while (sent < total && sent - got < IN_FLIGHT) {
            int k = snprintf(cmd, sizeof(cmd), "{\"execute\":\"query-status\",\"id\":%llu}\n",
                             (unsigned long long)++*next_id);
            raw_send(r, cmd, (size_t)k);
            sent++;
        }
        raw_read_line(r);
        got++;
    }
    return total / ((now_ns() - t0) / 1e9);
}

/* ---- the library client ------------------------------------------------ */

typedef struct lib_bench {
    uv_loop_t *loop;
    qmp_client *c;
    int ready;
    uint64_t *out;
    int want, done, sent;
    uint64_t t0;
    int in_flight_mode;
} lib_bench;

static void on_ready(qmp_client *c, int status, void *opaque)
{
    lib_bench *b = opaque;
    if (status < 0) {
        fprintf(stderr, "bench_qmp: connect: %s\n", qmp_strerror(status));
        exit(1);
    }
    b->ready = 1;
}

static void lib_send(lib_bench *b);

static void on_reply(qmp_client *c, const qmp_reply *r, void *opaque)
{
    lib_bench *b = opaque;
    if (r->status < 0) {
        fprintf(stderr, "bench_qmp: reply: %s\n", r->err_desc);
        exit(1);
    }
    if (!b->in_flight_mode)
        b->out[b->done] = now_ns() - b->t0;
    b->done++;
    if (b->sent < b->want)
        lib_send(b);
    if (b->done == b->want)
        uv_stop(b->loop);
}

static void lib_send(lib_bench *b)
{
    b->t0 = now_ns();
    b->sent++;
    if (qmp_execute(b->c, "query-status", NULL, NULL, on_reply, b, NULL) < 0) {
        fprintf(stderr, "bench_qmp: execute failed\n");
        exit(1);
    }
}

static void lib_round(lib_bench *b, int n, uint64_t *out)
{
    b->out = out;
    b->want = n;
    b->done = b->sent = 0;
    b->in_flight_mode = 0;
    lib_send(b);
    uv_run(b->loop, UV_RUN_DEFAULT);
}

static double lib_throughput(lib_bench *b, int total)
{
    b->want = total;
    b->done = b->sent = 0;
    b->in_flight_mode = 1;
    uint64_t t0 = now_ns();
    for (int i = 0; i < IN_FLIGHT && i < total; i++)
        lib_send(b);
    uv_run(b->loop, UV_RUN_DEFAULT);
    return total / ((now_ns() - t0) / 1e9);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(uint64_t *v, size_t n, double p)
{
    return v[(size_t)((n - 1) * p)] / 1000.0;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 10;
    int per = argc > 2 ? atoi(argv[2]) : 2000;
    char dir[] = "/tmp/bench-qmp-XXXXXX", a[128], b_path[128];

    if (rounds < 1 || per < 1 || !mkdtemp(dir))
        die("arguments or mkdtemp");
    snprintf(a, sizeof(a), "%s/a.sock", dir);
    snprintf(b_path, sizeof(b_path), "%s/b.sock", dir);
    pid_t pid = spawn_qemu(dir);

    uv_loop_t loop;
    uv_loop_init(&loop);
    lib_bench lb = { .loop = &loop };
    qmp_options o = { .path = a, .on_ready = on_ready, .opaque = &lb };
    if (qmp_client_new(&loop, &o, &lb.c) < 0 || qmp_connect(lb.c) < 0)
        die("qmp client");
    while (!lb.ready)
        uv_run(&loop, UV_RUN_ONCE);
    raw_client raw = { .fd = -1 };
    raw_connect(&raw, b_path);
    uint64_t raw_id = 0;

    size_t n = (size_t)rounds * (size_t)per;
    uint64_t *lat_lib = calloc(n, sizeof(uint64_t)), *lat_raw = calloc(n, sizeof(uint64_t));
    /* Warm both paths before measuring. */
    lib_round(&lb, per, lat_lib);
    raw_round(&raw, per, lat_raw, &raw_id);
    for (int r = 0; r < rounds; r++) {
        lib_round(&lb, per, lat_lib + (size_t)r * per);
        raw_round(&raw, per, lat_raw + (size_t)r * per, &raw_id);
    }
    qsort(lat_lib, n, sizeof(uint64_t), cmp_u64);
    qsort(lat_raw, n, sizeof(uint64_t), cmp_u64);

    int total = per * 5;
    double tp_lib = 0, tp_raw = 0;
    for (int r = 0; r < 3; r++) {
        tp_lib += lib_throughput(&lb, total) / 3;
        tp_raw += raw_throughput(&raw, total, &raw_id) / 3;
    }

    printf("QMP query-status round trip, %zu samples each, same QEMU, interleaved rounds\n", n);
    printf("%-26s %10s %10s\n", "client", "p50 (us)", "p99 (us)");
    printf("%-26s %10.1f %10.1f\n", "raw blocking socket", pct(lat_raw, n, 0.50), pct(lat_raw, n, 0.99));
    printf("%-26s %10.1f %10.1f\n", "qmp library (libuv)", pct(lat_lib, n, 0.50), pct(lat_lib, n, 0.99));
    printf("p50 ratio library/raw: %.2f\n", pct(lat_lib, n, 0.50) / pct(lat_raw, n, 0.50));
    printf("throughput, %d in flight, %d commands x3: library %.0f/s, raw %.0f/s\n",
           IN_FLIGHT, total, tp_lib, tp_raw);

    qmp_close(lb.c);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    close(raw.fd);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    unlink(a);
    unlink(b_path);
    rmdir(dir);
    free(lat_lib);
    free(lat_raw);
    return 0;
}
