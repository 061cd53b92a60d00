/* bench_agent.c: what agentd adds on top of QEMU, measured side by side in
 * one run. A VM is started and stopped through the agent, and the same QEMU
 * command line is driven bare over QMP; fifty VMs are started at once both
 * ways; agentd's memory is read with fifty VMs running; and the control
 * socket's query latency and throughput are measured with those VMs.
 *
 * The bare variant runs the exact argv agentd used (read back from
 * /proc/PID/cmdline of the agent's QEMU) with only its paths moved to another
 * directory, so both launch the same machine. Rounds alternate between the
 * two variants so that drift on a noisy machine hits both equally.
 *
 * Usage: bench_agent [--rounds N] [--vms N] [--bursts N] [--calls N]
 *                    [--clients N] [--seconds S] [--settle-ms MS] [--retry-ms MS]
 *                    [--only start,burst,query] [--log-level LEVEL]
 *        (env AGENTD_ACCEL, AGENTD_QEMU; AGENTD_KEEP_TEST_DIRS keeps the logs) */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "tests/support/agent_harness.h"
#include "bench_util.h"

#define ONE_TIMEOUT_MS 60000      /* one start, one stop, one define */
#define BURST_TIMEOUT_MS 300000   /* every VM of a burst */
#define BURST_SETTLE_MS 2000      /* after a burst, before the next measurement */
#define RAW_BUF (1u << 20)        /* a query-vms reply of a few hundred VMs fits */
#define LATENCY_ROUNDS 10
#define PROBE_EVERY_MS 5

typedef struct options {
    int rounds, vms, bursts, calls, clients;
    double seconds;
    int settle_ms, retry_ms;
    bool run_start, run_burst, run_query;
    const char *log_level;
} options;

/* A QEMU launched by this program and driven over QMP: connect (retrying
 * until the socket exists), greeting, qmp_capabilities, cont. */
enum bare_step { BARE_CONNECTING, BARE_GREETING, BARE_CAPS, BARE_CONT, BARE_RUNNING };

typedef struct bare_qemu {
    pid_t pid;
    int pidfd;
    int fd;                 /* QMP; -1 until a socket exists */
    enum bare_step step;
    char dir[160];
    char qmp_path[108];
    char log[192];
    char **argv;
    uint64_t connected_at;  /* now_ns() of the successful connect */
    char buf[16384];
    size_t len;
} bare_qemu;

typedef struct raw_conn raw_conn;
typedef struct probe probe;

typedef struct bench {
    options opt;
    raw_conn *ctl;          /* starts and stops, timed */
    probe *probe;           /* set while a burst runs */
    char **argv_template;   /* the agent's QEMU argv for b0 */
    char agent_qmp[108];    /* that QEMU's QMP socket, to be moved into a bare dir */
    bool all_running;       /* all --vms VMs run in the agent */
    long rss_idle_kb;
} bench;

static agentd_proc agent;
static bare_qemu *bares;
static int nbares;
static volatile sig_atomic_t interrupted;

/* ---- failing and cleaning up ------------------------------------------- */

static void kill_bares(void)
{
    for (int i = 0; i < nbares; i++) {
        bare_qemu *b = &bares[i];
        if (b->pid > 0) {
            kill(b->pid, SIGKILL);
            waitpid(b->pid, NULL, 0);
            b->pid = 0;
        }
        if (b->pidfd >= 0)
            close(b->pidfd);
        if (b->fd >= 0)
            close(b->fd);
        b->pidfd = b->fd = -1;
    }
}

/* Runs on every exit, so a failure leaves no QEMU and no agentd behind. */
static void cleanup(void)
{
    kill_bares();
    agentd_cleanup(&agent);
}

__attribute__((noreturn, format(printf, 1, 2)))
static void fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "bench_agent: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (interrupted)
        fprintf(stderr, "bench_agent: interrupted\n");
    if (agent.dir[0])
        fprintf(stderr, "bench_agent: agentd's log: %s (kept with AGENTD_KEEP_TEST_DIRS=1)\n", agent.log);
    exit(1);
}

/* No SA_RESTART: a blocking wait returns EINTR, the caller fails, exit cleans up. */
static void on_signal(int sig)
{
    interrupted = 1;
}

static void check_interrupted(void)
{
    if (interrupted)
        fail("stopping");
}

/* ---- small helpers ------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void pause_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

    nanosleep(&ts, NULL);
    check_interrupted();
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* v is sorted; the value below which a fraction p of the samples lie. */
static double pct(const uint64_t *v, size_t n, double p)
{
    return (double)v[(size_t)((double)(n - 1) * p)];
}

static int mkdir_p(const char *path)
{
    char tmp[256];

    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    return mkdir(tmp, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

static void print_tail(const char *path)
{
    char buf[1025];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    off_t size;
    ssize_t n;

    if (fd < 0)
        return;
    size = lseek(fd, 0, SEEK_END);
    lseek(fd, size > 1024 ? size - 1024 : 0, SEEK_SET);
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n > 0) {
        buf[n] = '\0';
        fprintf(stderr, "---- end of %s ----\n%s\n----\n", path, buf);
    }
}

static int send_line(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR && !interrupted)
            continue;
        if (w < 0)
            return -errno;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* A field of /proc/PID/status in kB, or -1. */
static long proc_status_kb(pid_t pid, const char *key)
{
    char path[64], line[256];
    size_t klen = strlen(key);
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if (!(f = fopen(path, "re")))
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, klen) == 0 && line[klen] == ':')
            kb = strtol(line + klen + 1, NULL, 10);
    fclose(f);
    return kb;
}

/* utime + stime of a process, in seconds. */
static double proc_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    unsigned long long ut, st;
    int fd, n;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return 0;
    n = (int)read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* The fields after the command name, which may hold spaces: state is the
     * third field, utime the 14th and stime the 15th. */
    char *p = strrchr(buf, ')');
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* ---- a minimal protocol client ------------------------------------------ */

/* The harness parses every line into JSON, which would make the client, not
 * the agent, the bottleneck of a throughput run and would hide when events
 * arrived. This client only frames lines: a reply must start with
 * {"return" (anything else fails the run), an event with {"event". */
struct raw_conn {
    int fd;
    char *buf;
    size_t start, len;      /* unread bytes are buf[start, len) */
};

/* 1 when bytes came, 0 when none were ready. */
static int raw_fill(raw_conn *r)
{
    ssize_t n;

    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->len - r->start);
        r->len -= r->start;
        r->start = 0;
    }
    if (r->len == RAW_BUF - 1)
        fail("a line from agentd longer than %u bytes", RAW_BUF);
    n = read(r->fd, r->buf + r->len, RAW_BUF - 1 - r->len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0)
        fail("agentd closed a connection: %s", n < 0 ? strerror(errno) : "EOF");
    r->len += (size_t)n;
    return 1;
}

/* The next complete line, NUL-terminated in place, or NULL. */
static char *raw_line(raw_conn *r)
{
    char *p = r->buf + r->start, *nl = memchr(p, '\n', r->len - r->start);

    if (!nl)
        return NULL;
    *nl = '\0';
    r->start = (size_t)(nl + 1 - r->buf);
    return p;
}

static bool is_reply(const char *line)
{
    if (strncmp(line, "{\"return\"", 9) == 0)
        return true;
    if (strncmp(line, "{\"event\"", 8) == 0)
        return false;
    fail("not a successful reply: %.400s", line);
}

static void wait_readable(int fd, long long end_ms, const char *what)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    long long left = end_ms - now_ms();

    check_interrupted();
    if (left <= 0)
        fail("timed out waiting for %s", what);
    if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
        fail("poll: %s", strerror(errno));
}

/* Blocks (with a deadline) for the next reply, skipping events. */
static void raw_wait_reply(raw_conn *r, int timeout_ms)
{
    long long end = now_ms() + timeout_ms;

    for (;;) {
        for (char *line; (line = raw_line(r));)
            if (is_reply(line))
                return;
        wait_readable(r->fd, end, "a reply from agentd");
        raw_fill(r);
    }
}

static void raw_open(raw_conn *r, const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    static const char caps[] = "{\"execute\":\"qmp_capabilities\"}\n";
    long long end = now_ms() + ONE_TIMEOUT_MS;
    int e;

    *r = (raw_conn){ .buf = malloc(RAW_BUF) };
    if (!r->buf)
        fail("out of memory");
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if ((r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0 ||
        connect(r->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        fail("connect %s: %s", path, strerror(errno));
    /* The greeting is a line of its own, neither reply nor event. */
    while (!raw_line(r)) {
        wait_readable(r->fd, end, "agentd's greeting");
        raw_fill(r);
    }
    if ((e = send_line(r->fd, caps, sizeof(caps) - 1)) < 0)
        fail("send: %s", strerror(-e));
    raw_wait_reply(r, ONE_TIMEOUT_MS);
}

static void raw_close(raw_conn *r)
{
    close(r->fd);
    free(r->buf);
    r->buf = NULL;
}

/* ---- a probe: is the agent answering while a burst runs? ----------------- */

/* A second client asks query-version every PROBE_EVERY_MS and keeps its
 * slowest answer: the longest a client was kept waiting. It runs during
 * the bare bursts too, where the agent has nothing to do, as the control. */
struct probe {
    raw_conn conn;
    uint64_t sent_at;       /* 0: no question out */
    uint64_t next_at;
    uint64_t worst;
};

static void probe_begin(probe *p)
{
    p->sent_at = p->worst = 0;
    p->next_at = now_ns();
}

/* How long a poll may sleep before the probe has to ask again. */
static int probe_wait_ms(const probe *p, int wait_ms)
{
    uint64_t now = now_ns();
    int due;

    if (!p || p->sent_at)
        return wait_ms;
    due = p->next_at > now ? (int)((p->next_at - now + 999999) / 1000000) : 0;
    return due < wait_ms ? due : wait_ms;
}

static void probe_answered(probe *p)
{
    uint64_t now = now_ns();

    if (now - p->sent_at > p->worst)
        p->worst = now - p->sent_at;
    p->sent_at = 0;
    p->next_at = now + PROBE_EVERY_MS * 1000000ull;
}

/* Takes answers when its socket was readable; asks when due. */
static void probe_service(probe *p, short revents)
{
    static const char ask[] = "{\"execute\":\"query-version\"}\n";
    char *line;
    int e;

    if (!p)
        return;
    if (revents && raw_fill(&p->conn))
        while ((line = raw_line(&p->conn)))
            if (is_reply(line))
                probe_answered(p);
    if (!p->sent_at && now_ns() >= p->next_at) {
        if ((e = send_line(p->conn.fd, ask, sizeof(ask) - 1)) < 0)
            fail("probe: %s", strerror(-e));
        p->sent_at = now_ns();
    }
}

/* The slowest answer; a question still out at the end counts too. */
static uint64_t probe_end(probe *p)
{
    if (p->sent_at) {
        raw_wait_reply(&p->conn, ONE_TIMEOUT_MS);
        probe_answered(p);
    }
    return p->worst;
}

/* ---- the agent side ------------------------------------------------------ */

static struct json_object *call_ok(agent_conn *c, const char *execute, const char *args)
{
    struct json_object *reply;
    int r = agent_call(c, execute, args, ONE_TIMEOUT_MS, &reply);

    if (r < 0)
        fail("%s %s: %s", execute, args ? args : "", strerror(-r));
    if (!agent_return(reply))
        fail("%s %s: %s: %s", execute, args ? args : "", agent_error_class(reply), agent_error_desc(reply));
    agent_forget_events(c);
    return reply;
}

typedef struct batch_times {
    uint64_t launched;      /* every QEMU spawned (the agent: its "starting" events) */
    uint64_t connected;     /* bare only: the last QMP connect */
    uint64_t done;          /* every reply in */
} batch_times;

/* Sends execute for b0 .. b(n-1) in one write and waits for all n replies,
 * which the agent sends as each finishes, in any order. The agent emits the
 * "starting" event right after it spawned a QEMU, so the last one tells when
 * it had launched them all. */
static batch_times agent_batch(bench *B, const char *execute, int n, int timeout_ms)
{
    size_t cap = (size_t)n * 96 + 1, len = 0;
    char *out = malloc(cap), *line;
    long long end = now_ms() + timeout_ms;
    int replies = 0, starting = 0, e;
    batch_times t = { 0 };

    if (!out)
        fail("out of memory");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(out + len, cap - len,
                                "{\"execute\":\"%s\",\"arguments\":{\"name\":\"b%d\"},\"id\":%d}\n",
                                execute, i, i);
    uint64_t t0 = now_ns();
    if ((e = send_line(B->ctl->fd, out, len)) < 0)
        fail("%s: sending: %s", execute, strerror(-e));
    free(out);
    while (replies < n) {
        while (replies < n && (line = raw_line(B->ctl))) {
            if (is_reply(line))
                replies++;
            else if (strstr(line, "\"state\":\"starting\"") && ++starting == n)
                t.launched = now_ns() - t0;
        }
        if (replies < n) {
            struct pollfd pf[2] = { { .fd = B->ctl->fd, .events = POLLIN },
                                    { .fd = B->probe ? B->probe->conn.fd : -1, .events = POLLIN } };
            long long left = end - now_ms();
            check_interrupted();
            if (left <= 0)
                fail("timed out waiting for the replies to %s (%d of %d in)", execute, replies, n);
            if (poll(pf, 2, probe_wait_ms(B->probe, (int)left)) < 0 && errno != EINTR)
                fail("poll: %s", strerror(errno));
            if (pf[0].revents)
                raw_fill(B->ctl);
            probe_service(B->probe, pf[1].revents);
        }
    }
    t.done = now_ns() - t0;
    return t;
}

/* ---- the bare side: the agent's argv with its paths moved ----------------- */

static void free_argv(char **argv)
{
    for (char **p = argv; p && *p; p++)
        free(*p);
    free(argv);
}

/* Instance k lives in AGENT/bare/k with the agent's layout below it (run-dir
 * and state-dir), so only the directory prefix of each path changes. */
static void bare_prepare(bench *B, bare_qemu *b, int k)
{
    char sub[256], *qmp;
    bool found = false;
    int argc = 0, r;

    memset(b, 0, sizeof(*b));
    b->pidfd = b->fd = -1;
    snprintf(b->dir, sizeof(b->dir), "%s/bare/%d", agent.dir, k);
    snprintf(b->log, sizeof(b->log), "%s/qemu.log", b->dir);
    if (!(qmp = bench_replace_all(B->agent_qmp, agent.dir, b->dir)))
        fail("out of memory");
    if (strlen(qmp) >= sizeof(b->qmp_path))
        fail("bare QMP socket path too long: %s", qmp);
    strcpy(b->qmp_path, qmp);
    free(qmp);
    for (const char *const *d = (const char *const[]){ "run/vms/b0", "state/logs", NULL }; *d; d++) {
        snprintf(sub, sizeof(sub), "%s/%s", b->dir, *d);
        if ((r = mkdir_p(sub)) < 0)
            fail("mkdir %s: %s", sub, strerror(-r));
    }
    while (B->argv_template[argc])
        argc++;
    if (!(b->argv = calloc((size_t)argc + 1, sizeof(char *))))
        fail("out of memory");
    for (int i = 0; i < argc; i++) {
        /* The agent hands QEMU a socket it already listens on (fd=3); bare
         * QEMU binds the path itself and its client polls for it. */
        if (strncmp(B->argv_template[i], "socket,id=qmp,fd=", 17) == 0) {
            if (asprintf(&b->argv[i], "socket,id=qmp,path=%s,server=on,wait=off", b->qmp_path) < 0)
                fail("out of memory");
        } else {
            if (!(b->argv[i] = bench_replace_all(B->argv_template[i], agent.dir, b->dir)))
                fail("out of memory");
        }
        found = found || strstr(b->argv[i], b->qmp_path);
    }
    if (!found)
        fail("the agent's QEMU argv does not name its QMP socket %s", B->agent_qmp);
}

static void bare_spawn(bare_qemu *b)
{
    pid_t pid = fork();

    if (pid < 0)
        fail("fork: %s", strerror(errno));
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY), out = open(b->log, O_WRONLY | O_CREAT | O_APPEND, 0640);
        if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
            _exit(126);
        close(in);
        close(out);
        /* Like the agent's QEMU: its own session. Unlike it: gone with us. */
        setsid();
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execvp(b->argv[0], b->argv);
        _exit(127);
    }
    b->pid = pid;
    b->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (b->pidfd < 0)
        fail("pidfd_open: %s", strerror(errno));
    b->step = BARE_CONNECTING;
    b->len = 0;
}

/* One connect attempt; a failed connect leaves the unix socket reusable. */
static void bare_try_connect(bare_qemu *b)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    if (b->fd < 0 && (b->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
        fail("socket: %s", strerror(errno));
    memcpy(sa.sun_path, b->qmp_path, strlen(b->qmp_path) + 1);
    if (connect(b->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        b->connected_at = now_ns();
        b->step = BARE_GREETING;
        return;
    }
    if (errno != ENOENT && errno != ECONNREFUSED && errno != EAGAIN && errno != EINTR)
        fail("connect %s: %s", b->qmp_path, strerror(errno));
}

static void bare_send(bare_qemu *b, const char *line)
{
    int r = send_line(b->fd, line, strlen(line));

    if (r < 0)
        fail("QMP send to QEMU %d: %s", (int)b->pid, strerror(-r));
}

static void bare_on_line(bare_qemu *b, const char *line)
{
    struct json_object *o = json_tokener_parse(line), *e, *d = NULL;

    if (!o)
        fail("QEMU %d sent a line that is not JSON: %.200s", (int)b->pid, line);
    if (json_object_object_get_ex(o, "event", NULL)) {
        json_object_put(o);
        return;
    }
    if (json_object_object_get_ex(o, "error", &e)) {
        json_object_object_get_ex(e, "desc", &d);
        fail("QEMU %d: %s", (int)b->pid, d ? json_object_get_string(d) : "an error without desc");
    }
    if (b->step == BARE_GREETING && json_object_object_get_ex(o, "QMP", NULL)) {
        bare_send(b, "{\"execute\":\"qmp_capabilities\"}\n");
        b->step = BARE_CAPS;
    } else if (b->step == BARE_CAPS && json_object_object_get_ex(o, "return", NULL)) {
        bare_send(b, "{\"execute\":\"cont\"}\n");
        b->step = BARE_CONT;
    } else if (b->step == BARE_CONT && json_object_object_get_ex(o, "return", NULL)) {
        b->step = BARE_RUNNING;
    } else {
        fail("QEMU %d: unexpected in step %d: %.200s", (int)b->pid, (int)b->step, line);
    }
    json_object_put(o);
}

static void bare_read(bare_qemu *b)
{
    ssize_t n = read(b->fd, b->buf + b->len, sizeof(b->buf) - 1 - b->len);
    char *nl;

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        print_tail(b->log);
        fail("QEMU %d closed QMP in step %d", (int)b->pid, (int)b->step);
    }
    b->len += (size_t)n;
    b->buf[b->len] = '\0';
    while (b->step != BARE_RUNNING && (nl = memchr(b->buf, '\n', b->len))) {
        *nl = '\0';
        bare_on_line(b, b->buf);
        b->len -= (size_t)(nl + 1 - b->buf);
        memmove(b->buf, nl + 1, b->len + 1);
    }
    if (b->len == sizeof(b->buf) - 1)
        fail("QEMU %d: QMP line too long", (int)b->pid);
}

/* Drives every instance to running: connect attempts every retry_ms while a
 * socket is missing, otherwise wait for QMP lines or a QEMU exit. */
static void bare_drive(bench *B, bare_qemu *b, int n, int timeout_ms)
{
    struct pollfd *p = calloc((size_t)n * 2 + 1, sizeof(*p));
    int *owner = calloc((size_t)n * 2, sizeof(int));
    long long end = now_ms() + timeout_ms;

    if (!p || !owner)
        fail("out of memory");
    for (;;) {
        int np = 0, connecting = 0, pending = 0;
        for (int i = 0; i < n; i++) {
            if (b[i].step == BARE_RUNNING)
                continue;
            pending++;
            if (b[i].step == BARE_CONNECTING)
                bare_try_connect(&b[i]);
            if (b[i].step == BARE_CONNECTING) {
                connecting++;
            } else {
                owner[np] = i;
                p[np++] = (struct pollfd){ .fd = b[i].fd, .events = POLLIN };
            }
            owner[np] = i;
            p[np++] = (struct pollfd){ .fd = b[i].pidfd, .events = POLLIN };
        }
        if (!pending)
            break;
        check_interrupted();
        if (now_ms() > end)
            fail("%d of %d bare QEMUs not running after %d ms (%d still connecting)", pending, n,
                 timeout_ms, connecting);
        p[np] = (struct pollfd){ .fd = B->probe ? B->probe->conn.fd : -1, .events = POLLIN };
        if (poll(p, (nfds_t)np + 1, probe_wait_ms(B->probe, connecting ? B->opt.retry_ms : 100)) < 0 &&
            errno != EINTR)
            fail("poll: %s", strerror(errno));
        probe_service(B->probe, p[np].revents);
        for (int k = 0; k < np; k++) {
            bare_qemu *q = &b[owner[k]];
            if (!p[k].revents)
                continue;
            if (p[k].fd == q->pidfd) {
                print_tail(q->log);
                fail("bare QEMU %d exited in step %d", (int)q->pid, (int)q->step);
            }
            bare_read(q);
        }
    }
    free(p);
    free(owner);
}

static batch_times bare_start(bench *B, bare_qemu *b, int n)
{
    uint64_t t0 = now_ns();
    batch_times t = { 0 };

    for (int i = 0; i < n; i++)
        bare_spawn(&b[i]);
    t.launched = now_ns() - t0;
    bare_drive(B, b, n, n > 1 ? BURST_TIMEOUT_MS : ONE_TIMEOUT_MS);
    t.done = now_ns() - t0;
    for (int i = 0; i < n; i++)
        if (b[i].connected_at - t0 > t.connected)
            t.connected = b[i].connected_at - t0;
    return t;
}

/* QMP quit to every instance, then wait until each process has ended. */
static uint64_t bare_quit(bare_qemu *b, int n, int timeout_ms)
{
    struct pollfd *p = calloc((size_t)n, sizeof(*p));
    long long end = now_ms() + timeout_ms;
    uint64_t t0 = now_ns();
    int left = n, status;

    if (!p)
        fail("out of memory");
    for (int i = 0; i < n; i++) {
        bare_send(&b[i], "{\"execute\":\"quit\"}\n");
        p[i] = (struct pollfd){ .fd = b[i].pidfd, .events = POLLIN };
    }
    while (left > 0) {
        check_interrupted();
        if (now_ms() > end)
            fail("%d of %d bare QEMUs still alive %d ms after quit", left, n, timeout_ms);
        if (poll(p, (nfds_t)n, 100) < 0 && errno != EINTR)
            fail("poll: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            if (p[i].fd < 0 || !p[i].revents)
                continue;
            if (waitpid(b[i].pid, &status, 0) != b[i].pid || !WIFEXITED(status) || WEXITSTATUS(status))
                fail("bare QEMU %d did not exit cleanly after quit (status 0x%x)", (int)b[i].pid, status);
            b[i].pid = 0;
            p[i].fd = -1;
            left--;
        }
    }
    uint64_t took = now_ns() - t0;
    for (int i = 0; i < n; i++) {
        close(b[i].pidfd);
        close(b[i].fd);
        b[i].pidfd = b[i].fd = -1;
    }
    free(p);
    return took;
}

/* ---- setup ----------------------------------------------------------------- */

/* Starts b0 through the agent once, to copy its QEMU's argv (and to warm
 * the agent's path up), then destroys it. */
static void capture_argv(bench *B, agent_conn *c)
{
    struct json_object *reply, *rt, *pid, *qmp;

    json_object_put(call_ok(c, "vm-start", "{\"name\": \"b0\"}"));
    reply = call_ok(c, "query-vm", "{\"name\": \"b0\"}");
    if (!json_object_object_get_ex(agent_return(reply), "runtime", &rt) ||
        !json_object_object_get_ex(rt, "pid", &pid) || !json_object_object_get_ex(rt, "qmp-socket", &qmp))
        fail("query-vm b0: no runtime pid or qmp-socket");
    if (!(B->argv_template = bench_read_cmdline(json_object_get_int(pid))))
        fail("reading the argv of QEMU %d", json_object_get_int(pid));
    snprintf(B->agent_qmp, sizeof(B->agent_qmp), "%s", json_object_get_string(qmp));
    json_object_put(reply);
    json_object_put(call_ok(c, "vm-destroy", "{\"name\": \"b0\"}"));
}

/* agentd in a temp dir with --vms VMs defined (64 MiB, no OS: the firmware
 * finds nothing to boot and idles), and a bare directory per VM. */
static void start_agent(bench *B)
{
    char extra[128], args[128];
    agent_conn c;
    int r;

    snprintf(extra, sizeof(extra), "log-level = %s\n", B->opt.log_level);
    if ((r = agentd_prepare(&agent, extra)) < 0)
        fail("preparing agentd's directory: %s", strerror(-r));
    if ((r = agentd_start(&agent)) < 0)
        fail("starting agentd: %s", strerror(-r));
    if ((r = agent_connect(&c, agent.socket)) < 0)
        fail("connecting to agentd: %s", strerror(-r));
    B->rss_idle_kb = proc_status_kb(agent.pid, "VmRSS");
    for (int i = 0; i < B->opt.vms; i++) {
        snprintf(args, sizeof(args), "{\"definition\": {\"name\": \"b%d\", \"memory\": 64}}", i);
        json_object_put(call_ok(&c, "vm-define", args));
    }
    capture_argv(B, &c);
    /* From here on only the raw client talks to the agent, so no connection
     * sits unread while events pile up in it. */
    agent_close(&c);
    if (!(B->ctl = malloc(sizeof(*B->ctl))))
        fail("out of memory");
    raw_open(B->ctl, agent.socket);
    if (!(bares = calloc((size_t)B->opt.vms, sizeof(*bares))))
        fail("out of memory");
    for (int i = 0; i < B->opt.vms; i++)
        bare_prepare(B, &bares[i], i);
    nbares = B->opt.vms;
}

/* ---- 1 and 2: start and stop of one VM -------------------------------------- */

typedef struct series {
    uint64_t *agent, *bare;
    int n;
} series;

static series series_new(int n)
{
    series s = { calloc((size_t)n, 8), calloc((size_t)n, 8), n };

    if (!s.agent || !s.bare)
        fail("out of memory");
    return s;
}

static void series_free(series *s)
{
    free(s->agent);
    free(s->bare);
}

static void print_pair(series *s, const char *agent_label, const char *bare_label)
{
    size_t n = (size_t)s->n;

    qsort(s->agent, n, sizeof(uint64_t), cmp_u64);
    qsort(s->bare, n, sizeof(uint64_t), cmp_u64);
    printf("%-38s %12s %12s\n", "variant", "median (ms)", "p90 (ms)");
    printf("%-38s %12.2f %12.2f\n", bare_label, pct(s->bare, n, 0.5) / 1e6, pct(s->bare, n, 0.9) / 1e6);
    printf("%-38s %12.2f %12.2f\n", agent_label, pct(s->agent, n, 0.5) / 1e6, pct(s->agent, n, 0.9) / 1e6);
    printf("agent adds at the median: %.2f ms, at p90: %.2f ms (target: at most 5 ms at the median)\n",
           (pct(s->agent, n, 0.5) - pct(s->bare, n, 0.5)) / 1e6,
           (pct(s->agent, n, 0.9) - pct(s->bare, n, 0.9)) / 1e6);
}

/* One start and one stop of b0, the agent's way or the bare way. */
static void one_cycle(bench *B, bool through_agent, int r, series *start, series *stop, uint64_t *conn)
{
    pause_ms(B->opt.settle_ms);
    if (through_agent) {
        start->agent[r] = agent_batch(B, "vm-start", 1, ONE_TIMEOUT_MS).done;
    } else {
        batch_times t = bare_start(B, bares, 1);
        start->bare[r] = t.done;
        conn[r] = t.connected;
    }
    pause_ms(B->opt.settle_ms);
    if (through_agent)
        stop->agent[r] = agent_batch(B, "vm-destroy", 1, ONE_TIMEOUT_MS).done;
    else
        stop->bare[r] = bare_quit(bares, 1, ONE_TIMEOUT_MS);
}

static void bench_start_stop(bench *B)
{
    int n = B->opt.rounds;
    series start = series_new(n), stop = series_new(n);
    uint64_t *conn = calloc((size_t)n, 8);

    if (!conn)
        fail("out of memory");
    /* Warm the bare path as capture_argv warmed the agent's. */
    one_cycle(B, false, 0, &start, &stop, conn);
    for (int r = 0; r < n; r++)
        for (int k = 0; k < 2; k++)
            one_cycle(B, (k == 0) == (r % 2 == 0), r, &start, &stop, conn);
    printf("== 1. start one VM (64 MiB, no OS): %d rounds, alternating, %d ms pause between steps\n", n,
           B->opt.settle_ms);
    print_pair(&start, "agentd vm-start (request to reply)", "bare QEMU: fork to cont reply");
    qsort(conn, (size_t)n, sizeof(uint64_t), cmp_u64);
    printf("bare QEMU's QMP socket accepted a connection %.2f ms after fork (median; p90 %.2f ms;\n"
           "the bare client tries every %d ms)\n\n", pct(conn, (size_t)n, 0.5) / 1e6,
           pct(conn, (size_t)n, 0.9) / 1e6, B->opt.retry_ms);
    printf("== 2. stop it: the same rounds\n");
    print_pair(&stop, "agentd vm-destroy (request to reply)", "bare QEMU: QMP quit to waitpid");
    printf("\n");
    series_free(&start);
    series_free(&stop);
    free(conn);
}

/* ---- 3: many VMs at once ----------------------------------------------------- */

static void print_row(const char *label, const uint64_t *v, int n)
{
    double sum = 0;

    printf("%-38s", label);
    for (int i = 0; i < n; i++) {
        printf(" %7.0f", (double)v[i] / 1e6);
        sum += (double)v[i];
    }
    printf(" | %7.0f\n", sum / n / 1e6);
}

static void bench_burst(bench *B)
{
    int n = B->opt.bursts, vms = B->opt.vms;
    uint64_t a_launch[n], a_start[n], a_stop[n], a_probe[n], b_launch[n], b_start[n], b_stop[n], b_probe[n];
    probe pr;

    raw_open(&pr.conn, agent.socket);
    for (int r = 0; r < n; r++) {
        for (int k = 0; k < 2; k++) {
            bool agent_turn = (k == 0) == (r % 2 == 0);
            batch_times t;
            pause_ms(BURST_SETTLE_MS);
            B->probe = &pr;
            probe_begin(&pr);
            if (agent_turn) {
                t = agent_batch(B, "vm-start", vms, BURST_TIMEOUT_MS);
                a_launch[r] = t.launched, a_start[r] = t.done, a_probe[r] = probe_end(&pr);
            } else {
                t = bare_start(B, bares, vms);
                b_launch[r] = t.launched, b_start[r] = t.done, b_probe[r] = probe_end(&pr);
            }
            B->probe = NULL;
            pause_ms(BURST_SETTLE_MS);
            if (agent_turn)
                a_stop[r] = agent_batch(B, "vm-destroy", vms, BURST_TIMEOUT_MS).done;
            else
                b_stop[r] = bare_quit(bares, vms, BURST_TIMEOUT_MS);
        }
    }
    raw_close(&pr.conn);
    printf("== 3. %d VMs at once: %d rounds, alternating (ms in each round | mean)\n", vms, n);
    print_row("bare: all QEMUs forked", b_launch, n);
    print_row("bare: all cont replies", b_start, n);
    print_row("agentd: all \"starting\" events", a_launch, n);
    print_row("agentd: all vm-start replies", a_start, n);
    print_row("bare: quit to all reaped", b_stop, n);
    print_row("agentd: all vm-destroy replies", a_stop, n);
    printf("slowest answer to a query-version asked every %d ms on another connection, while starting:\n",
           PROBE_EVERY_MS);
    print_row("  during the bare burst (agent idle)", b_probe, n);
    print_row("  during the agent's burst", a_probe, n);
    printf("\n");
}

static void report_rss(bench *B)
{
    if (!B->all_running) {
        agent_batch(B, "vm-start", B->opt.vms, BURST_TIMEOUT_MS);
        B->all_running = true;
    }
    printf("== agentd memory (/proc/%d/status)\n", (int)agent.pid);
    printf("%-38s %8.1f MiB\n", "VmRSS at start, no VM defined", B->rss_idle_kb / 1024.0);
    printf("%-38s %8.1f MiB (target: under 10 MiB)\n", "VmRSS with all VMs running",
           proc_status_kb(agent.pid, "VmRSS") / 1024.0);
    printf("%-38s %8.1f MiB\n\n", "VmHWM (peak)", proc_status_kb(agent.pid, "VmHWM") / 1024.0);
}

/* ---- 4: queries ----------------------------------------------------------- */

static void raw_request(raw_conn *r, const char *line, size_t len)
{
    int e = send_line(r->fd, line, len);

    if (e < 0)
        fail("sending a query: %s", strerror(-e));
}

static const char *const query_lines[2] = {
    "{\"execute\":\"query-vms\",\"id\":1}\n",
    "{\"execute\":\"query-version\",\"id\":1}\n",
};
static const char *const query_names[2] = { "query-vms", "query-version" };

static void bench_latency(bench *B)
{
    int per = B->opt.calls / LATENCY_ROUNDS;
    size_t n = (size_t)per * LATENCY_ROUNDS;
    uint64_t *lat[2] = { calloc(n, 8), calloc(n, 8) };
    raw_conn r;

    if (!lat[0] || !lat[1])
        fail("out of memory");
    raw_open(&r, agent.socket);
    for (int q = 0; q < 2; q++) /* warm-up */
        for (int i = 0; i < per; i++) {
            raw_request(&r, query_lines[q], strlen(query_lines[q]));
            raw_wait_reply(&r, ONE_TIMEOUT_MS);
        }
    for (int round = 0; round < LATENCY_ROUNDS; round++)
        for (int k = 0; k < 2; k++) {
            int q = (k + round) % 2;
            for (int i = 0; i < per; i++) {
                uint64_t t0 = now_ns();
                raw_request(&r, query_lines[q], strlen(query_lines[q]));
                raw_wait_reply(&r, ONE_TIMEOUT_MS);
                lat[q][(size_t)round * per + i] = now_ns() - t0;
            }
        }
    raw_close(&r);
    printf("== 4a. round trip on one connection, %d VMs defined and running: %zu calls each, %d "
           "alternating rounds\n", B->opt.vms, n, LATENCY_ROUNDS);
    printf("%-38s %12s %12s\n", "request", "median (us)", "p99 (us)");
    for (int q = 0; q < 2; q++) {
        qsort(lat[q], n, sizeof(uint64_t), cmp_u64);
        printf("%-38s %12.1f %12.1f\n", query_names[q], pct(lat[q], n, 0.5) / 1e3, pct(lat[q], n, 0.99) / 1e3);
        free(lat[q]);
    }
    printf("\n");
}

typedef struct throughput {
    double per_s, agent_cpu, client_cpu;
} throughput;

/* Every client keeps exactly one request out: on its reply, the next goes.
 * Replies that arrive after the deadline are drained, not counted. */
static void run_clients(raw_conn *cs, int nc, const char *line, uint64_t end, long *ret_count)
{
    struct pollfd p[nc];
    size_t len = strlen(line);
    long count = 0;
    int busy = nc;
    uint64_t stall = now_ns();
    char *reply;

    for (int i = 0; i < nc; i++) {
        raw_request(&cs[i], line, len);
        p[i] = (struct pollfd){ .fd = cs[i].fd, .events = POLLIN };
    }
    while (busy > 0) {
        check_interrupted();
        if (now_ns() - stall > 10000000000ull)
            fail("query clients made no progress for 10 s");
        if (poll(p, (nfds_t)nc, 100) < 0 && errno != EINTR)
            fail("poll: %s", strerror(errno));
        uint64_t now = now_ns();
        for (int i = 0; i < nc; i++) {
            if (!p[i].revents || !raw_fill(&cs[i]))
                continue;
            while ((reply = raw_line(&cs[i]))) {
                if (!is_reply(reply))
                    continue;
                stall = now;
                if (now < end) {
                    count++;
                    raw_request(&cs[i], line, len);
                } else {
                    busy--;
                }
            }
        }
    }
    *ret_count = count;
}

static throughput measure_throughput(bench *B, const char *line)
{
    int nc = B->opt.clients;
    raw_conn cs[nc];
    long count;
    throughput t;

    for (int i = 0; i < nc; i++)
        raw_open(&cs[i], agent.socket);
    double a0 = proc_cpu_s(agent.pid), s0 = self_cpu_s();
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(B->opt.seconds * 1e9);
    run_clients(cs, nc, line, end, &count);
    double wall = (double)(end - t0) / 1e9;
    t.per_s = (double)count / wall;
    t.agent_cpu = (proc_cpu_s(agent.pid) - a0) / wall * 100;
    t.client_cpu = (self_cpu_s() - s0) / wall * 100;
    for (int i = 0; i < nc; i++)
        raw_close(&cs[i]);
    return t;
}

static void bench_throughput(bench *B)
{
    throughput t[2][2];

    for (int round = 0; round < 2; round++)
        for (int k = 0; k < 2; k++) {
            int q = (k + round) % 2;
            t[q][round] = measure_throughput(B, query_lines[q]);
        }
    printf("== 4b. throughput: %d clients, one request out each, %.0f s per run, 2 alternating runs\n",
           B->opt.clients, B->opt.seconds);
    printf("%-16s %12s %12s %12s %14s %14s\n", "request", "run 1 (/s)", "run 2 (/s)", "mean (/s)",
           "agentd CPU %", "client CPU %");
    for (int q = 0; q < 2; q++)
        printf("%-16s %12.0f %12.0f %12.0f %14.0f %14.0f\n", query_names[q], t[q][0].per_s, t[q][1].per_s,
               (t[q][0].per_s + t[q][1].per_s) / 2, (t[q][0].agent_cpu + t[q][1].agent_cpu) / 2,
               (t[q][0].client_cpu + t[q][1].client_cpu) / 2);
    printf("target: over 20000 requests/s. CPU %% is of one core; agentd and this client share the "
           "machine's %ld cores.\n\n", sysconf(_SC_NPROCESSORS_ONLN));
}

/* ---- main ------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_agent [--rounds N] [--vms N] [--bursts N] [--calls N] [--clients N]\n"
               "                   [--seconds S] [--settle-ms MS] [--retry-ms MS]\n"
               "                   [--only start,burst,query] [--log-level LEVEL]\n");
}

static int parse_int(const char *s, int min, int max)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (*s == '\0' || *end || v < min || v > max) {
        fprintf(stderr, "bench_agent: '%s' is not a number from %d to %d\n", s, min, max);
        exit(2);
    }
    return (int)v;
}

static void parse_only(options *o, const char *list)
{
    o->run_start = strstr(list, "start") != NULL;
    o->run_burst = strstr(list, "burst") != NULL;
    o->run_query = strstr(list, "query") != NULL;
    if (!o->run_start && !o->run_burst && !o->run_query) {
        usage(stderr);
        exit(2);
    }
}

static void parse_args(int argc, char **argv, options *o)
{
    static const struct option opts[] = {
        { "rounds", required_argument, NULL, 'r' },  { "vms", required_argument, NULL, 'v' },
        { "bursts", required_argument, NULL, 'b' },  { "calls", required_argument, NULL, 'c' },
        { "clients", required_argument, NULL, 'k' }, { "seconds", required_argument, NULL, 's' },
        { "settle-ms", required_argument, NULL, 'p' }, { "retry-ms", required_argument, NULL, 't' },
        { "only", required_argument, NULL, 'o' },    { "log-level", required_argument, NULL, 'l' },
        { "help", no_argument, NULL, 'h' },          { NULL, 0, NULL, 0 },
    };
    int c;

    *o = (options){ .rounds = 20, .vms = 50, .bursts = 4, .calls = 2000, .clients = 16,
                    .seconds = 5, .settle_ms = 100, .retry_ms = 1, .run_start = true,
                    .run_burst = true, .run_query = true, .log_level = "info" };
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': o->rounds = parse_int(optarg, 1, 1000); break;
        case 'v': o->vms = parse_int(optarg, 1, 500); break;
        case 'b': o->bursts = parse_int(optarg, 1, 20); break;
        case 'c': o->calls = parse_int(optarg, LATENCY_ROUNDS, 10000000); break;
        case 'k': o->clients = parse_int(optarg, 1, 256); break;
        case 's': o->seconds = parse_int(optarg, 1, 3600); break;
        case 'p': o->settle_ms = parse_int(optarg, 0, 60000); break;
        case 't': o->retry_ms = parse_int(optarg, 1, 1000); break;
        case 'o': parse_only(o, optarg); break;
        case 'l': o->log_level = optarg; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind != argc) {
        usage(stderr);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    struct sigaction sa = { .sa_handler = on_signal };
    bench B = { 0 };

    parse_args(argc, argv, &B.opt);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    atexit(cleanup);
    setvbuf(stdout, NULL, _IOLBF, 0);
    start_agent(&B);
    printf("bench_agent: agentd pid %d, accel %s, %ld cores; bare QEMU argv (from the agent's):\n ",
           (int)agent.pid, getenv("AGENTD_ACCEL") ? getenv("AGENTD_ACCEL") : "tcg",
           sysconf(_SC_NPROCESSORS_ONLN));
    for (char **w = bares[0].argv; *w; w++)
        printf(" %s", *w);
    printf("\n\n");
    if (B.opt.run_start)
        bench_start_stop(&B);
    if (B.opt.run_burst)
        bench_burst(&B);
    if (B.opt.run_burst || B.opt.run_query)
        report_rss(&B);
    if (B.opt.run_query) {
        bench_latency(&B);
        bench_throughput(&B);
    }
    if (B.all_running)
        agent_batch(&B, "vm-destroy", B.opt.vms, BURST_TIMEOUT_MS);
    raw_close(B.ctl);
    free(B.ctl);
    for (int i = 0; i < nbares; i++)
        free_argv(bares[i].argv);
    free_argv(B.argv_template);
    return 0;
}
