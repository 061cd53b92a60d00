/* bench_migrate.c: a live migration of an idle 256 MiB guest over loopback
 * through two agentd processes, against the same migration driven by bare
 * QMP commands, in the same run.
 *
 * The VM: q35, TCG, 256 MiB, no OS (the firmware finds nothing to boot and
 * idles), one 64 MiB qcow2 disk in a pool "shared" that both agents define
 * at the same location. Each sample is one whole migration, timed by the
 * client from the first request for the destination to the source's QEMU
 * gone (so both sides include starting the destination's QEMU and quitting
 * the source's):
 *   agent: B vm-migrate-incoming {definition} -> uri; A vm-migrate {name,
 *          uri, downtime-limit 300, bandwidth 0, auto-converge true}; B
 *          vm-migrate-finish; A vm-migrate-confirm {completed: true};
 *   bare:  the destination's QEMU forked with the argv the agent gave its
 *          own incoming QEMU (paths moved to the bench's dirs, the QMP
 *          socket bound by the bench and passed as fd 3, as the agent does),
 *          qmp_capabilities, migrate-set-capabilities (events,
 *          late-block-activate), migrate-incoming tcp:127.0.0.1:PORT; on the
 *          source migrate-set-capabilities (events, auto-converge),
 *          migrate-set-parameters (downtime-limit 300, max-bandwidth 2^40
 *          as the agent sends for 0), migrate, its MIGRATION completed
 *          event, query-migrate; on the destination query-migrate (and its
 *          completed event when needed), cont; on the source quit, waitpid.
 * Each side's VM goes back and forth between its two hosts; every round
 * runs one migration of each side, the side going first alternating, after
 * an untimed warm-up migration of each side.
 *
 * The agents' VM_STATE events (with their timestamps) split each agent
 * migration into steps, printed at the end as medians.
 *
 * Usage: bench_migrate [--rounds N] [--no-cgroups]   (run as root, like the
 * agent's tests; --no-cgroups: the agents with cgroup-parent = none) */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "tests/bench/bench_util.h"
#include "tests/support/agent_harness.h"

#define CALL_MS 60000
#define DOWNTIME_LIMIT_MS 300
#define TARGET_RATIO 1.1
#define VM "mig"
#define BARE_UUID "0badc0de-0000-4000-8000-000000000001"
#define BARE_PORT_MIN 49420
#define BARE_PORT_MAX 49429
#define ROUNDS_MAX 100

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* ---- figures ------------------------------------------------------------------ */

enum { F_WALL, F_DEST, F_MIGRATE, F_RESUME, F_QUIT, F_QTOTAL, F_QDOWN, F_QSETUP, F_PAUSE, F_EVPAUSE, F_N };

static const char *const fig_names[F_N] = { "wall", "dest", "migrate", "resume", "quit",
                                            "q-total", "q-down", "q-setup", "pause", "ev-pause" };

/* Where an agent migration's time goes: the instants of the agents'
 * VM_STATE events (their timestamps) against the client's clock. */
enum { G_SPAWNED, G_LISTENING, G_IN_REPLY, G_MIGRATING, G_MIGRATED, G_MIG_REPLY, G_RUNNING, G_FIN_REPLY,
       G_STOPPED, G_CONF_REPLY, G_N };

static const char *const gap_names[G_N] = {
    "vm-migrate-incoming request to QEMU spawned (destination 'starting')",
    "QEMU spawned to migrate-incoming listening ('incoming')",
    "'incoming' to the reply read",
    "vm-migrate request to the source 'migrating'",
    "'migrating' to 'migrated' (caps, params, migrate, stream, query-migrate)",
    "'migrated' to the reply read",
    "vm-migrate-finish request to 'running' (query-migrate, cont)",
    "'running' to the reply read (the marker removed)",
    "vm-migrate-confirm request to 'stopped' (quit, QEMU reaped)",
    "'stopped' to the reply read",
};

typedef struct sample {
    double f[F_N];         /* ms; F_EVPAUSE < 0 when not known */
    double g[G_N];         /* agent only: the gaps above, ms */
    double greeting;       /* bare only: fork to the destination's QMP greeting, ms */
    long long transferred;
} sample;

/* ---- state -------------------------------------------------------------------- */

typedef struct host {
    agentd_proc p;
    agent_conn c;
} host;

typedef struct bare_qemu {
    pid_t pid;
    int fd;
    char dir[64];
    char qmp_path[160];
    char in[65536];
    size_t in_len, in_at;
    char line[1 << 16];
    /* from events */
    char mig_status[32];
    double stop_ts, resume_ts;   /* QEMU's event timestamps, s */
    double greeted_at;           /* client clock, ms */
} bare_qemu;

static host hosts[2];
static int agent_at;                 /* which agent holds the VM */
static char pool_dir[64];
static char **dest_template;         /* the agent's incoming QEMU argv */
static char agent_dest_dir[128];     /* the agent dir that template names */
static bare_qemu bares[2];
static int bare_at;                  /* which bare slot runs the guest */
static bool bare_running;

static void cleanup(void)
{
    for (int i = 0; i < 2; i++) {
        if (bares[i].pid > 0) {
            kill(bares[i].pid, SIGKILL);
            waitpid(bares[i].pid, NULL, 0);
        }
        if (bares[i].dir[0]) {
            char cmd[128];
            snprintf(cmd, sizeof(cmd), "rm -rf %s", bares[i].dir);
            bench_sh(cmd);
        }
    }
    for (int i = 0; i < 2; i++)
        if (hosts[i].p.dir[0]) {
            agent_close(&hosts[i].c);
            agentd_cleanup(&hosts[i].p);
        }
    if (pool_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", pool_dir);
        bench_sh(cmd);
    }
}

static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("bench_migrate: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    cleanup();
    exit(1);
}

static double now_ms_f(void)
{
    return bench_now_s() * 1e3;
}

/* The agents' event timestamps are wall-clock time. */
static double wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static long long i64_of(struct json_object *o, const char *key)
{
    struct json_object *m;

    return o && json_object_object_get_ex(o, key, &m) ? json_object_get_int64(m) : 0;
}

static const char *str_of(struct json_object *o, const char *key)
{
    struct json_object *m;

    return o && json_object_object_get_ex(o, key, &m) ? json_object_get_string(m) : NULL;
}

/* ---- through the agents ---------------------------------------------------------- */

static struct json_object *agent_ok(host *h, const char *cmd, const char *args)
{
    struct json_object *reply;

    if (agent_call(&h->c, cmd, args, CALL_MS, &reply) < 0 || !agent_return(reply))
        die("%s %s: %s (see %s)", cmd, args ? args : "", reply ? agent_error_desc(reply) : "no answer", h->p.log);
    return reply;
}

static void agent_do(host *h, const char *cmd, const char *args)
{
    json_object_put(agent_ok(h, cmd, args));
}

static void capture_dest_argv(host *dst)
{
    char args[64];
    struct json_object *r, *rt, *pid;

    snprintf(args, sizeof(args), "{\"name\": \"" VM "\"}");
    r = agent_ok(dst, "query-vm", args);
    if (!json_object_object_get_ex(agent_return(r), "runtime", &rt) || !json_object_object_get_ex(rt, "pid", &pid))
        die("query-vm on the destination: no pid");
    if (!(dest_template = bench_read_cmdline((pid_t)json_object_get_int(pid))))
        die("reading the argv of QEMU %d", json_object_get_int(pid));
    snprintf(agent_dest_dir, sizeof(agent_dest_dir), "%s", dst->p.dir);
    json_object_put(r);
}

/* When (wall-clock ms) the connection's kept events last said VM went to state. */
static double state_at(agent_conn *c, const char *state)
{
    double at = -1;
    size_t n = json_object_array_length(c->events);

    for (size_t i = 0; i < n; i++) {
        struct json_object *ev = json_object_array_get_idx(c->events, i), *data, *ts;
        const char *name = str_of(ev, "event");
        if (name && !strcmp(name, "VM_STATE") && json_object_object_get_ex(ev, "data", &data) &&
            str_of(data, "state") && !strcmp(str_of(data, "state"), state) &&
            str_of(data, "vm") && !strcmp(str_of(data, "vm"), VM) && json_object_object_get_ex(ev, "timestamp", &ts))
            at = (double)i64_of(ts, "seconds") * 1e3 + (double)i64_of(ts, "microseconds") / 1e3;
    }
    if (at < 0)
        die("no VM_STATE %s event seen", state);
    return at;
}

/* The phases of one migration from its five instants: asked for the
 * destination, destination listening, stream done, guest resumed, source
 * gone. The guest's pause is QEMU's downtime plus the wait to resume. */
static void set_phases(sample *s, double t0, double t1, double t2, double t3, double t4)
{
    s->f[F_WALL] = t4 - t0;
    s->f[F_DEST] = t1 - t0;
    s->f[F_MIGRATE] = t2 - t1;
    s->f[F_RESUME] = t3 - t2;
    s->f[F_QUIT] = t4 - t3;
    s->f[F_PAUSE] = s->f[F_QDOWN] + (t3 - t2);
}

/* One migration from agent agent_at to the other. */
static void agent_migrate(sample *s, bool capture)
{
    host *src = &hosts[agent_at], *dst = &hosts[!agent_at];
    struct json_object *r, *ret, *def;
    char *in_args, margs[512];
    double t0, t1, t2, t3, t4;

    /* What the caller has from the source beforehand: the definition (untimed). */
    r = agent_ok(src, "query-vm", "{\"name\": \"" VM "\"}");
    if (!json_object_object_get_ex(agent_return(r), "definition", &def))
        die("query-vm: no definition");
    if (asprintf(&in_args, "{\"definition\": %s}", json_object_to_json_string_ext(def, JSON_C_TO_STRING_PLAIN)) < 0)
        die("out of memory");
    json_object_put(r);
    bench_warm_memory(512);
    agent_forget_events(&src->c);
    agent_forget_events(&dst->c);

    double w0 = wall_ms();
    t0 = now_ms_f();
    r = agent_ok(dst, "vm-migrate-incoming", in_args);
    t1 = now_ms_f();
    snprintf(margs, sizeof(margs),
             "{\"name\": \"" VM "\", \"uri\": \"%s\", \"downtime-limit\": %d, \"bandwidth\": 0, \"auto-converge\": true}",
             str_of(agent_return(r), "uri"), DOWNTIME_LIMIT_MS);
    json_object_put(r);
    if (capture)
        capture_dest_argv(dst);   /* at the warm-up, whose figures are not kept */
    r = agent_ok(src, "vm-migrate", margs);
    t2 = now_ms_f();
    ret = agent_return(r);
    s->f[F_QTOTAL] = (double)i64_of(ret, "total-time-ms");
    s->f[F_QDOWN] = (double)i64_of(ret, "downtime-ms");
    s->f[F_QSETUP] = (double)i64_of(ret, "setup-time-ms");
    s->transferred = i64_of(ret, "transferred");
    json_object_put(r);
    agent_do(dst, "vm-migrate-finish", "{\"name\": \"" VM "\"}");
    t3 = now_ms_f();
    agent_do(src, "vm-migrate-confirm", "{\"name\": \"" VM "\", \"completed\": true}");
    t4 = now_ms_f();
    free(in_args);
    set_phases(s, t0, t1, t2, t3, t4);
    s->f[F_EVPAUSE] = -1;
    /* Event instants, on the client's clock (wall offset taken at t0). */
    double off = t0 - w0;
    double spawned = state_at(&dst->c, "starting") + off, listening = state_at(&dst->c, "incoming") + off;
    double migrating = state_at(&src->c, "migrating") + off, migrated = state_at(&src->c, "migrated") + off;
    double running = state_at(&dst->c, "running") + off, stopped = state_at(&src->c, "stopped") + off;
    s->g[G_SPAWNED] = spawned - t0;
    s->g[G_LISTENING] = listening - spawned;
    s->g[G_IN_REPLY] = t1 - listening;
    s->g[G_MIGRATING] = migrating - t1;
    s->g[G_MIGRATED] = migrated - migrating;
    s->g[G_MIG_REPLY] = t2 - migrated;
    s->g[G_RUNNING] = running - t2;
    s->g[G_FIN_REPLY] = t3 - running;
    s->g[G_STOPPED] = stopped - t3;
    s->g[G_CONF_REPLY] = t4 - stopped;
    agent_at = !agent_at;
}

/* ---- bare QMP ------------------------------------------------------------------------ */

static void note_event(bare_qemu *b, struct json_object *msg)
{
    const char *ev = str_of(msg, "event");
    struct json_object *data = NULL, *ts;

    if (!ev)
        return;
    json_object_object_get_ex(msg, "data", &data);
    double t = 0;
    if (json_object_object_get_ex(msg, "timestamp", &ts))
        t = (double)i64_of(ts, "seconds") + (double)i64_of(ts, "microseconds") / 1e6;
    if (!strcmp(ev, "MIGRATION") && str_of(data, "status"))
        snprintf(b->mig_status, sizeof(b->mig_status), "%s", str_of(data, "status"));
    else if (!strcmp(ev, "STOP"))
        b->stop_ts = t;
    else if (!strcmp(ev, "RESUME"))
        b->resume_ts = t;
}

/* Buffered, as the agent's client reads. */
static void qmp_line(bare_qemu *b)
{
    size_t n = 0;

    while (n + 1 < sizeof(b->line)) {
        if (b->in_at == b->in_len) {
            ssize_t r = read(b->fd, b->in, sizeof(b->in));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                die("QMP of QEMU %d closed", (int)b->pid);
            b->in_len = (size_t)r;
            b->in_at = 0;
        }
        char ch = b->in[b->in_at++];
        if (ch == '\n')
            break;
        b->line[n++] = ch;
    }
    b->line[n] = '\0';
}

/* Reads until an event is kept or a reply comes; the reply (caller puts) or NULL. */
static struct json_object *qmp_next(bare_qemu *b)
{
    struct json_object *msg;

    qmp_line(b);
    if (!(msg = json_tokener_parse(b->line)))
        die("QMP: unparsable line %s", b->line);
    if (json_object_object_get_ex(msg, "event", NULL)) {
        note_event(b, msg);
        json_object_put(msg);
        return NULL;
    }
    return msg;
}

static struct json_object *qmp(bare_qemu *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One command; its "return" (caller puts). */
static struct json_object *qmp(bare_qemu *b, const char *fmt, ...)
{
    char text[2048];
    struct json_object *msg, *ret;
    va_list ap;
    size_t len;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text) - 1, fmt, ap);
    va_end(ap);
    strcat(text, "\n");
    len = strlen(text);
    if (write(b->fd, text, len) != (ssize_t)len)
        die("QMP write: %s", strerror(errno));
    while (!(msg = qmp_next(b)))
        ;
    if (!json_object_object_get_ex(msg, "return", &ret))
        die("%s-> %s", text, b->line);
    ret = json_object_get(ret);
    json_object_put(msg);
    return ret;
}

#define qmp_do(b, ...) json_object_put(qmp((b), __VA_ARGS__))

static void wait_mig_status(bare_qemu *b, const char *status)
{
    while (strcmp(b->mig_status, status)) {
        struct json_object *msg = qmp_next(b);
        if (msg)
            die("unexpected reply %s", b->line);
        if (!strcmp(b->mig_status, "failed") || !strcmp(b->mig_status, "cancelled"))
            die("bare migration %s", b->mig_status);
    }
}

static char *replace_chain(const char *s, const char *const *pairs)
{
    char *cur = strdup(s), *next;

    for (; pairs[0]; pairs += 2) {
        if (!cur || !(next = bench_replace_all(cur, pairs[0], pairs[1])))
            die("out of memory");
        free(cur);
        cur = next;
    }
    if (!cur)
        die("out of memory");
    return cur;
}

/* The agent's incoming argv for slot k: its dir, its disk, its identity;
 * without -incoming defer for the first source. */
static char **bare_argv(bare_qemu *b, bool incoming)
{
    const char *const pairs[] = { agent_dest_dir, b->dir, VM ".sda.qcow2", "bare.sda.qcow2",
                                  "guest=" VM ",", "guest=bare,", NULL };
    int argc = 0, j = 0;
    char **argv, *uuid = NULL;

    while (dest_template[argc])
        argc++;
    if (!(argv = calloc((size_t)argc + 1, sizeof(char *))))
        die("out of memory");
    for (int i = 0; i < argc; i++) {
        if (!strcmp(dest_template[i], "-incoming")) {
            if (incoming) {
                argv[j++] = strdup("-incoming");
                argv[j++] = strdup(dest_template[++i]);
            } else {
                i++;
            }
            continue;
        }
        if (i > 0 && !strcmp(dest_template[i - 1], "-uuid")) {
            uuid = dest_template[i];
            argv[j++] = strdup(BARE_UUID);
            continue;
        }
        argv[j++] = replace_chain(dest_template[i], pairs);
    }
    if (!uuid)
        die("the agent's QEMU argv has no -uuid");
    return argv;
}

static int listen_unix(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    unlink(path);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0)
        die("listen on %s: %s", path, strerror(errno));
    return fd;
}

static int connect_unix(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        die("connect %s: %s", path, strerror(errno));
    return fd;
}

/* Forks QEMU in slot b (the QMP socket bound here and passed as fd 3, as the
 * agent does), connects and negotiates. */
static void bare_launch(bare_qemu *b, bool incoming)
{
    char **argv = bare_argv(b, incoming), log[128];
    int lfd = listen_unix(b->qmp_path);
    pid_t pid;

    snprintf(log, sizeof(log), "%s/state/logs/bare.qemu.log", b->dir);
    if ((pid = fork()) < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY), out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0640);
        if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0 || dup2(lfd, 3) < 0)
            _exit(126);
        setsid();
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(lfd);
    for (char **p = argv; *p; p++)
        free(*p);
    free(argv);
    b->pid = pid;
    b->fd = connect_unix(b->qmp_path);
    b->in_len = b->in_at = 0;
    b->mig_status[0] = '\0';
    b->stop_ts = b->resume_ts = 0;
    qmp_line(b);   /* the greeting: QEMU is ready */
    b->greeted_at = now_ms_f();
    qmp_do(b, "{\"execute\": \"qmp_capabilities\"}");
}

static void bare_quit(bare_qemu *b)
{
    int st;

    qmp_do(b, "{\"execute\": \"quit\"}");
    if (waitpid(b->pid, &st, 0) != b->pid)
        die("waitpid: %s", strerror(errno));
    close(b->fd);
    b->fd = -1;
    b->pid = 0;
}

/* As the agent: the first port of the range that binds. */
static unsigned free_port(void)
{
    for (unsigned port = BARE_PORT_MIN; port <= BARE_PORT_MAX; port++) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
        bool ok;

        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        close(fd);
        if (ok)
            return port;
    }
    die("no free port from %d to %d", BARE_PORT_MIN, BARE_PORT_MAX);
}

static void bare_start_first(void)
{
    bare_launch(&bares[bare_at], false);
    qmp_do(&bares[bare_at], "{\"execute\": \"cont\"}");
    bare_running = true;
}

static void bare_migrate(sample *s)
{
    bare_qemu *src = &bares[bare_at], *dst = &bares[!bare_at];
    struct json_object *r, *ram;
    double t0, t1, t2, t3, t4;
    unsigned port;

    bench_warm_memory(512);
    src->stop_ts = 0;

    t0 = now_ms_f();
    bare_launch(dst, true);
    qmp_do(dst, "{\"execute\": \"migrate-set-capabilities\", \"arguments\": {\"capabilities\": ["
                "{\"capability\": \"events\", \"state\": true}, {\"capability\": \"auto-converge\", \"state\": false}, "
                "{\"capability\": \"multifd\", \"state\": false}, "
                "{\"capability\": \"late-block-activate\", \"state\": true}]}}");
    port = free_port();
    json_object_put(qmp(dst, "{\"execute\": \"migrate-incoming\", \"arguments\": {\"uri\": \"tcp:127.0.0.1:%u\"}}", port));
    t1 = now_ms_f();
    qmp_do(src, "{\"execute\": \"migrate-set-capabilities\", \"arguments\": {\"capabilities\": ["
                "{\"capability\": \"events\", \"state\": true}, {\"capability\": \"auto-converge\", \"state\": true}, "
                "{\"capability\": \"multifd\", \"state\": false}, "
                "{\"capability\": \"late-block-activate\", \"state\": false}]}}");
    json_object_put(qmp(src, "{\"execute\": \"migrate-set-parameters\", \"arguments\": {\"downtime-limit\": %d, "
                             "\"max-bandwidth\": %lld}}", DOWNTIME_LIMIT_MS, (long long)1 << 40));
    json_object_put(qmp(src, "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"tcp:127.0.0.1:%u\"}}", port));
    /* An event of this QEMU's own incoming migration may still be unread:
     * only the source's status in query-migrate says its send completed. */
    for (;;) {
        src->mig_status[0] = '\0';
        wait_mig_status(src, "completed");
        r = qmp(src, "{\"execute\": \"query-migrate\"}");
        if (str_of(r, "status") && !strcmp(str_of(r, "status"), "completed"))
            break;
        json_object_put(r);
    }
    /* QEMU 7.2 sends the event before its migration thread fills in
     * total-time and downtime: ask again, as the agent does (20 x 5 ms). */
    for (int i = 0; i < 20 && i64_of(r, "total-time") <= 0; i++) {
        json_object_put(r);
        usleep(5000);
        r = qmp(src, "{\"execute\": \"query-migrate\"}");
    }
    t2 = now_ms_f();
    s->f[F_QTOTAL] = (double)i64_of(r, "total-time");
    s->f[F_QDOWN] = (double)i64_of(r, "downtime");
    s->f[F_QSETUP] = (double)i64_of(r, "setup-time");
    s->transferred = json_object_object_get_ex(r, "ram", &ram) ? i64_of(ram, "transferred") : 0;
    json_object_put(r);
    /* The destination: its stream complete (as vm-migrate-finish checks), then
     * cont. QEMU 7.2 may still say active here for a moment after its
     * MIGRATION completed event: the event already seen counts. */
    r = qmp(dst, "{\"execute\": \"query-migrate\"}");
    if (!str_of(r, "status") || strcmp(str_of(r, "status"), "completed"))
        wait_mig_status(dst, "completed");
    json_object_put(r);
    qmp_do(dst, "{\"execute\": \"cont\"}");
    t3 = now_ms_f();
    bare_quit(src);
    t4 = now_ms_f();
    /* The RESUME event may come after cont's reply. */
    if (!dst->resume_ts) {
        json_object_put(qmp(dst, "{\"execute\": \"query-status\"}"));
    }
    s->greeting = dst->greeted_at - t0;
    set_phases(s, t0, t1, t2, t3, t4);
    s->f[F_EVPAUSE] = src->stop_ts && dst->resume_ts ? (dst->resume_ts - src->stop_ts) * 1e3 : -1;
    bare_at = !bare_at;
}

/* ---- the run ------------------------------------------------------------------------ */

static bool no_cgroups;

static void start_host(host *h, unsigned port_min)
{
    char cfg[256];

    /* info: the production default */
    snprintf(cfg, sizeof(cfg), "log-level = info\nmigration-port-min = %u\nmigration-port-max = %u\n%s", port_min,
             port_min + 9, no_cgroups ? "cgroup-parent = none\n" : "");
    if (agentd_prepare(&h->p, cfg) < 0)
        die("temp dir");
    if (agentd_start(&h->p) < 0 || agent_connect(&h->c, h->p.socket) < 0)
        die("agentd does not start; see %s", h->p.log);
}

static void make_bare_dir(bare_qemu *b)
{
    char sub[128];

    strcpy(b->dir, "/tmp/agt-XXXXXX");
    if (!mkdtemp(b->dir))
        die("mkdtemp: %s", strerror(errno));
    b->fd = -1;
    snprintf(b->qmp_path, sizeof(b->qmp_path), "%s/run/vms/" VM "/qmp.sock", b->dir);
    snprintf(sub, sizeof(sub), "mkdir -p %s/run/vms/" VM " %s/state/logs", b->dir, b->dir);
    if (bench_sh(sub) < 0)
        die("%s", sub);
}

static void print_header(void)
{
    printf("%-5s %-5s", "round", "side");
    for (int k = 0; k < F_N; k++)
        printf(" %8s", fig_names[k]);
    printf(" %10s\n", "transfer");
}

static void print_sample(const char *round, const char *side, const sample *s)
{
    printf("%-5s %-5s", round, side);
    for (int k = 0; k < F_N; k++)
        if (s->f[k] < 0)
            printf(" %8s", "-");
        else
            printf(" %8.1f", s->f[k]);
    printf(" %10lld\n", s->transferred);
    fflush(stdout);
}

static double median_of(const sample *v, int n, int k)
{
    double *x = calloc((size_t)n, sizeof(double));
    int m = 0;

    for (int i = 0; i < n; i++)
        if (v[i].f[k] >= 0)
            x[m++] = v[i].f[k];
    double r = m ? bench_pct(x, (size_t)m, 0.5) : -1;
    free(x);
    return r;
}

static double max_of(const sample *v, int n, int k)
{
    double r = -1;

    for (int i = 0; i < n; i++)
        if (v[i].f[k] > r)
            r = v[i].f[k];
    return r;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = { { "rounds", required_argument, NULL, 'r' },
                                          { "no-cgroups", no_argument, NULL, 'c' }, { NULL, 0, NULL, 0 } };
    int rounds = 11, ch;
    sample *as, *bs, warm;
    char cmd[512];

    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1)
        if (ch == 'r')
            rounds = atoi(optarg);
        else if (ch == 'c')
            no_cgroups = true;
        else
            return 2;
    if (rounds < 1 || rounds > ROUNDS_MAX)
        die("--rounds from 1 to %d", ROUNDS_MAX);
    as = calloc((size_t)rounds, sizeof(*as));
    bs = calloc((size_t)rounds, sizeof(*bs));
    signal(SIGPIPE, SIG_IGN);

    /* The shared pool and its two disks (the agent's VM, the bare one). */
    strcpy(pool_dir, "/tmp/agt-XXXXXX");
    if (!mkdtemp(pool_dir))
        die("mkdtemp: %s", strerror(errno));
    chmod(pool_dir, 0755);
    snprintf(cmd, sizeof(cmd), "qemu-img create -q -f qcow2 %s/" VM ".sda.qcow2 64M && "
                               "qemu-img create -q -f qcow2 %s/bare.sda.qcow2 64M", pool_dir, pool_dir);
    if (bench_sh(cmd) < 0)
        die("%s", cmd);
    start_host(&hosts[0], 49400);
    start_host(&hosts[1], 49410);
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof(cmd), "{\"definition\": {\"name\": \"shared\", \"location\": \"%s\"}}", pool_dir);
        agent_do(&hosts[i], "pool-define", cmd);
        agent_do(&hosts[i], "pool-start", "{\"name\": \"shared\"}");
    }
    agent_do(&hosts[0], "vm-define", "{\"definition\": {\"name\": \"" VM "\", \"memory\": 256, \"accel\": \"tcg\", "
                                     "\"disks\": [{\"pool\": \"shared\", \"volume\": \"" VM ".sda.qcow2\"}]}}");
    agent_do(&hosts[0], "vm-start", "{\"name\": \"" VM "\"}");
    agent_at = 0;

    /* Warm-ups: one migration a side, untimed; the agent's gives the argv. */
    agent_migrate(&warm, true);
    printf("agent's incoming QEMU:");
    for (char **p = dest_template; *p; p++)
        printf(" %s", *p);
    printf("\n\n");
    make_bare_dir(&bares[0]);
    make_bare_dir(&bares[1]);
    bare_at = 0;
    bare_start_first();
    usleep(500000);   /* both guests past the firmware's start */
    bare_migrate(&warm);

    printf("idle %s guest, 256 MiB, downtime-limit %d ms, bandwidth unlimited, auto-converge; all in ms\n",
           "q35 TCG", DOWNTIME_LIMIT_MS);
    printf("wall = dest + migrate + resume + quit, client side, destination QEMU start included;\n"
           "q-* = QEMU's query-migrate on the source; pause = q-down + resume;\n"
           "ev-pause = source STOP to destination RESUME event (bare only)\n\n");
    print_header();
    for (int r = 0; r < rounds; r++) {
        char rn[16];
        snprintf(rn, sizeof(rn), "%d", r + 1);
        usleep(200000);
        if (r % 2 == 0) {
            agent_migrate(&as[r], false);
            print_sample(rn, "agent", &as[r]);
            usleep(200000);
            bare_migrate(&bs[r]);
            print_sample(rn, "bare", &bs[r]);
        } else {
            bare_migrate(&bs[r]);
            print_sample(rn, "bare", &bs[r]);
            usleep(200000);
            agent_migrate(&as[r], false);
            print_sample(rn, "agent", &as[r]);
        }
    }

    printf("\n%-11s", "median");
    for (int k = 0; k < F_N; k++)
        printf(" %8s", fig_names[k]);
    for (int side = 0; side < 2; side++) {
        printf("\n%-11s", side ? "bare" : "agent");
        for (int k = 0; k < F_N; k++) {
            double m = median_of(side ? bs : as, rounds, k);
            if (m < 0)
                printf(" %8s", "-");
            else
                printf(" %8.1f", m);
        }
    }
    printf("\n%-11s", "agent-bare");
    for (int k = 0; k < F_N; k++)
        if (k == F_EVPAUSE)
            printf(" %8s", "-");
        else
            printf(" %+8.1f", median_of(as, rounds, k) - median_of(bs, rounds, k));
    printf("\n\nwhere the agent's time goes (median of %d, ms):\n", rounds);
    for (int k = 0; k < G_N; k++) {
        double *x = calloc((size_t)rounds, sizeof(double));
        for (int i = 0; i < rounds; i++)
            x[i] = as[i].g[k];
        printf("  %6.2f  %s\n", bench_pct(x, (size_t)rounds, 0.5), gap_names[k]);
        free(x);
    }
    {
        double *x = calloc((size_t)rounds, sizeof(double));
        for (int i = 0; i < rounds; i++)
            x[i] = bs[i].greeting;
        printf("bare: fork to the destination QEMU's QMP greeting, median %.2f ms\n", bench_pct(x, (size_t)rounds, 0.5));
        free(x);
    }
    double aw = median_of(as, rounds, F_WALL), bw = median_of(bs, rounds, F_WALL);
    double aq = median_of(as, rounds, F_QTOTAL), bq = median_of(bs, rounds, F_QTOTAL);
    double worst_down = max_of(as, rounds, F_QDOWN), worst_pause = max_of(as, rounds, F_PAUSE);
    printf("\nratio agent/bare, median wall total: %.3f (target at most %.1f): %s\n", aw / bw, TARGET_RATIO,
           aw / bw <= TARGET_RATIO ? "met" : "NOT met");
    printf("ratio agent/bare, median QEMU total-time: %.3f\n", aq / bq);
    printf("agent downtime (QEMU), worst of %d: %.0f ms (limit %d): %s\n", rounds, worst_down, DOWNTIME_LIMIT_MS,
           worst_down < DOWNTIME_LIMIT_MS ? "met" : "NOT met");
    printf("agent pause (downtime + stream end to guest resumed), worst: %.1f ms (limit %d): %s\n", worst_pause,
           DOWNTIME_LIMIT_MS, worst_pause < DOWNTIME_LIMIT_MS ? "under" : "over");
    cleanup();
    free(as);
    free(bs);
    return 0;
}
