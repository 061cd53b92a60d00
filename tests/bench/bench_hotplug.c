/* bench_hotplug.c: what agentd adds to a disk attach and a NIC attach,
 * against the bare QMP commands sent to the same QEMU in the same run.
 *
 * One VM (no OS: SCSI disks unplug without a guest) with a virtio-scsi
 * controller. Each sample is timed from the command to the device listed by
 * QEMU (query-block for a disk, query-pci for a NIC):
 *   agent: disk-attach (or nic-attach) through the control socket, then
 *          query-block/query-pci through vm-qmp until the device is there;
 *   bare:  agentd stopped (its VMs keep running), the bench on QEMU's QMP
 *          socket itself: blockdev-add file + raw, device_add scsi-hd (for a
 *          NIC: the tap made with net/, getfd, netdev_add, device_add), then
 *          the same query.
 * Disk phases run agent, bare, agent (agentd restarted and adopting the VM
 * in between), so drift on a noisy machine hits both. NICs unplug only with
 * a guest, so each round takes a fresh VM: N NICs a side after an untimed
 * warm-up NIC of that side, the side going first alternating between rounds.
 * Besides the medians of all samples it prints, for NICs, the median over
 * rounds of each round's own difference (agent median minus bare median on
 * the same VM), and the part of each attach up to the command's reply.
 *
 * Usage: bench_hotplug [--disks N] [--nics N] [--rounds N]   (run as root: a network
 * namespace of its own holds the bridge) */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "net/net.h"
#include "tests/bench/bench_util.h"
#include "tests/support/agent_harness.h"

#define CALL_MS 30000
#define BRIDGE "br-bench"
#define SLOTS 15
#define NICS_MAX (SLOTS / 2)

typedef struct bench {
    agentd_proc agent;
    agent_conn conn;
    int qmp;             /* the bare phase's QMP connection */
    char deleted[64];    /* the device of the last DEVICE_DELETED seen */
    char in[65536];      /* QMP bytes read and not yet split into lines */
    size_t in_len, in_at;
    char line[1 << 20];
} bench;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("bench_hotplug: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* ---- through the agent -------------------------------------------------------- */

static struct json_object *agent_ok(bench *b, const char *cmd, const char *args)
{
    struct json_object *reply;

    if (agent_call(&b->conn, cmd, args, CALL_MS, &reply) < 0 || !agent_return(reply))
        die("%s %s: %s", cmd, args, reply ? agent_error_desc(reply) : "no answer");
    return reply;
}

/* Whether QEMU's list (query-block or query-pci's bus tree) names id. */
static bool lists(struct json_object *ret, const char *id)
{
    char needle[80];

    snprintf(needle, sizeof(needle), "\"%s\"", id);
    return ret && strstr(json_object_to_json_string_ext(ret, JSON_C_TO_STRING_PLAIN), needle);
}

static void agent_wait_listed(bench *b, const char *query, const char *id)
{
    char args[128];

    snprintf(args, sizeof(args), "{\"name\": \"hp\", \"command\": \"%s\"}", query);
    for (;;) {
        struct json_object *r = agent_ok(b, "vm-qmp", args);
        bool found = lists(agent_return(r), id);
        json_object_put(r);
        if (found)
            return;
    }
}

static double agent_disk(bench *b, int k)
{
    char args[512], id[32];
    double t0, t;

    snprintf(args, sizeof(args),
             "{\"name\": \"hp\", \"disk\": {\"path\": \"%s/state/images/b%d.raw\", \"format\": \"raw\", "
             "\"bus\": \"virtio-scsi\", \"target\": \"sdz%d\"}}", b->agent.dir, k, k);
    snprintf(id, sizeof(id), "disk-sdz%d", k);
    t0 = bench_now_s();
    json_object_put(agent_ok(b, "disk-attach", args));
    agent_wait_listed(b, "query-block", id);
    t = bench_now_s() - t0;
    snprintf(args, sizeof(args), "{\"name\": \"hp\", \"target\": \"sdz%d\"}", k);
    json_object_put(agent_ok(b, "disk-detach", args));
    return t;
}

/* The whole attach; *cmd (when asked) the part to the command's reply. */
static double agent_nic(bench *b, int k, double *cmd)
{
    char args[256], id[32];
    double t0;

    snprintf(args, sizeof(args), "{\"name\": \"hp\", \"nic\": {\"bridge\": \"" BRIDGE "\", "
             "\"mac\": \"52:54:00:be:00:%02x\"}}", k);
    snprintf(id, sizeof(id), "nic-525400be00%02x", k);
    t0 = bench_now_s();
    json_object_put(agent_ok(b, "nic-attach", args));
    if (cmd)
        *cmd = bench_now_s() - t0;
    agent_wait_listed(b, "query-pci", id);
    return bench_now_s() - t0;
}

/* Round r's NICs through the agent, after an untimed warm-up NIC right
 * before them (a freshly restarted agent pays for its first one, as the
 * bare side does on its new connection). */
static void agent_nics(bench *b, int r, int n, double *ret, double *cmd)
{
    agent_nic(b, r * 8 + 7, NULL);
    for (int k = 0; k < n; k++)
        ret[k] = agent_nic(b, r * 8 + k, &cmd[k]);
}

/* ---- bare QMP ----------------------------------------------------------------------- */

static void qmp_send(bench *b, const char *text, int fd)
{
    char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
    struct iovec iov = { (void *)text, strlen(text) };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

    if (fd >= 0) {
        m.msg_control = ctl;
        m.msg_controllen = sizeof(ctl);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    if (sendmsg(b->qmp, &m, 0) != (ssize_t)strlen(text))
        die("QMP write: %s", strerror(errno));
}

/* Buffered: a query-pci answer is tens of KiB, read a byte at a time it
 * would cost the bare side milliseconds the agent does not pay. */
static void qmp_line(bench *b)
{
    size_t n = 0;

    while (n + 1 < sizeof(b->line)) {
        if (b->in_at == b->in_len) {
            ssize_t r = read(b->qmp, b->in, sizeof(b->in));
            if (r <= 0)
                die("QMP closed");
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

static void note_deleted(bench *b, struct json_object *msg)
{
    struct json_object *ev, *data, *dev;

    if (msg && json_object_object_get_ex(msg, "event", &ev) && !strcmp(json_object_get_string(ev), "DEVICE_DELETED") &&
        json_object_object_get_ex(msg, "data", &data) && json_object_object_get_ex(data, "device", &dev))
        snprintf(b->deleted, sizeof(b->deleted), "%s", json_object_get_string(dev));
}

static void wait_deleted(bench *b, const char *id)
{
    while (strcmp(b->deleted, id)) {
        struct json_object *msg;
        qmp_line(b);
        msg = json_tokener_parse(b->line);
        note_deleted(b, msg);
        json_object_put(msg);
    }
}

/* One command; its return value (caller puts). Events are passed over. */
static struct json_object *qmp(bench *b, int fd, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static struct json_object *qmp(bench *b, int fd, const char *fmt, ...)
{
    char text[2048];
    struct json_object *msg, *ret;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text) - 1, fmt, ap);
    va_end(ap);
    strcat(text, "\n");
    qmp_send(b, text, fd);
    for (;;) {
        qmp_line(b);
        if (!(msg = json_tokener_parse(b->line)) || json_object_object_get_ex(msg, "event", NULL)) {
            note_deleted(b, msg);
            json_object_put(msg);
            continue;
        }
        if (!json_object_object_get_ex(msg, "return", &ret))
            die("%s: %s", text, b->line);
        ret = json_object_get(ret);
        json_object_put(msg);
        return ret;
    }
}

static void bare_wait_listed(bench *b, const char *query, const char *id)
{
    for (;;) {
        struct json_object *r = qmp(b, -1, "{\"execute\": \"%s\"}", query);
        bool found = lists(r, id);
        json_object_put(r);
        if (found)
            return;
    }
}

static void bare_connect(bench *b)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/run/vms/hp/qmp.sock", b->agent.dir);
    if ((b->qmp = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        connect(b->qmp, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        die("connect %s: %s", sa.sun_path, strerror(errno));
    qmp_line(b);   /* greeting */
    json_object_put(qmp(b, -1, "{\"execute\": \"qmp_capabilities\"}"));
}

static double bare_disk(bench *b, int k)
{
    double t0, t;

    t0 = bench_now_s();
    json_object_put(qmp(b, -1, "{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"file\", "
                               "\"filename\": \"%s/state/images/b%d.raw\", \"node-name\": \"file-bare%d\", "
                               "\"aio\": \"threads\", \"read-only\": false, \"cache\": {\"direct\": true, "
                               "\"no-flush\": false}}}", b->agent.dir, k, k));
    json_object_put(qmp(b, -1, "{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"raw\", "
                               "\"node-name\": \"drive-bare%d\", \"file\": \"file-bare%d\", \"read-only\": false, "
                               "\"cache\": {\"direct\": true, \"no-flush\": false}}}", k, k));
    json_object_put(qmp(b, -1, "{\"execute\": \"device_add\", \"arguments\": {\"driver\": \"scsi-hd\", "
                               "\"id\": \"disk-bare%d\", \"drive\": \"drive-bare%d\", \"bus\": \"scsi0.0\", "
                               "\"channel\": 0, \"scsi-id\": %d, \"lun\": 0}}", k, k, 100 + k % 100));
    char id[32];
    snprintf(id, sizeof(id), "disk-bare%d", k);
    bare_wait_listed(b, "query-block", id);
    t = bench_now_s() - t0;
    json_object_put(qmp(b, -1, "{\"execute\": \"device_del\", \"arguments\": {\"id\": \"disk-bare%d\"}}", k));
    wait_deleted(b, id);
    json_object_put(qmp(b, -1, "{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"drive-bare%d\"}}", k));
    json_object_put(qmp(b, -1, "{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"file-bare%d\"}}", k));
    return t;
}

/* NIC k (its MAC and ids) on the hotplug port counted from the last. */
static double bare_nic(bench *b, net_nl *nl, int k, int port, double *cmd)
{
    char tap[16], err[256], id[32];
    net_tap_spec s = { .name = tap, .bridge = BRIDGE };
    net_tap t;
    double t0, el;

    snprintf(tap, sizeof(tap), "tbare%d", k);
    snprintf(id, sizeof(id), "nic-bare%d", k);
    t0 = bench_now_s();
    if (net_tap_attach(nl, &s, &t, err, sizeof(err)) < 0)
        die("tap: %s", err);
    json_object_put(qmp(b, t.fds[0], "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"tapbare%d\"}}", k));
    json_object_put(qmp(b, -1, "{\"execute\": \"netdev_add\", \"arguments\": {\"type\": \"tap\", \"id\": "
                               "\"net-bare%d\", \"fd\": \"tapbare%d\"}}", k, k));
    json_object_put(qmp(b, -1, "{\"execute\": \"device_add\", \"arguments\": {\"driver\": \"virtio-net-pci\", "
                               "\"netdev\": \"net-bare%d\", \"mac\": \"52:54:00:bf:00:%02x\", \"id\": \"nic-bare%d\", "
                               "\"bus\": \"hp%d\", \"addr\": \"0x0\"}}", k, k, k, SLOTS - 1 - port));
    if (cmd)
        *cmd = bench_now_s() - t0;
    bare_wait_listed(b, "query-pci", id);
    el = bench_now_s() - t0;
    net_tap_close(&t);
    return el;
}

/* ---- the run ------------------------------------------------------------------------ */

static void report(const char *what, double *agent, size_t na, double *bare, size_t nb)
{
    double am = bench_pct(agent, na, 0.5), bm = bench_pct(bare, nb, 0.5);

    printf("%-12s agent  median %7.3f ms  p90 %7.3f ms  (n=%zu)\n", what, am * 1e3, bench_pct(agent, na, 0.9) * 1e3, na);
    printf("%-12s bare   median %7.3f ms  p90 %7.3f ms  (n=%zu)\n", what, bm * 1e3, bench_pct(bare, nb, 0.9) * 1e3, nb);
    printf("%-12s added  %+.3f ms at the median\n", what, (am - bm) * 1e3);
}

/* Each round's own comparison (the same VM, the same minute): the median
 * over rounds of agent median minus bare median. Copies: bench_pct sorts. */
static double per_round_added(const double *agent, const double *bare, int rounds, int n)
{
    double *d = calloc((size_t)rounds, sizeof(double)), *a = calloc((size_t)n, sizeof(double)),
           *b = calloc((size_t)n, sizeof(double)), m;

    for (int r = 0; r < rounds; r++) {
        memcpy(a, agent + r * n, (size_t)n * sizeof(double));
        memcpy(b, bare + r * n, (size_t)n * sizeof(double));
        d[r] = bench_pct(a, (size_t)n, 0.5) - bench_pct(b, (size_t)n, 0.5);
    }
    m = bench_pct(d, (size_t)rounds, 0.5);
    free(d);
    free(a);
    free(b);
    return m;
}

/* The adopted VM's QMP connection comes up a moment after the agent. */
static void wait_adopted(bench *b)
{
    for (struct json_object *r = NULL;; json_object_put(r), usleep(10000))
        if (agent_call(&b->conn, "vm-qmp", "{\"name\": \"hp\", \"command\": \"query-status\"}", CALL_MS, &r) == 0 &&
            agent_return(r)) {
            json_object_put(r);
            return;
        }
}

/* The VM's QEMU, for the bench to end should it die midway. */
static pid_t vm_pid;

static void kill_vm(void)
{
    if (vm_pid > 0)
        kill(vm_pid, SIGKILL);
}

/* The VM defined afresh (no NICs) and started, once its firmware is done
 * with the boot (it then idles): a side measured during the boot competed
 * with the guest's CPU for the two cores, which the other side did not. */
static void fresh_vm(bench *b, bool destroy)
{
    struct json_object *reply, *rt, *pid;

    if (destroy)
        json_object_put(agent_ok(b, "vm-destroy", "{\"name\": \"hp\"}"));
    vm_pid = 0;
    json_object_put(agent_ok(b, "vm-define", "{\"definition\": {\"name\": \"hp\", \"memory\": 64, "
                                             "\"hotplug-slots\": 15, \"disks\": [{\"size\": \"16M\", \"bus\": \"virtio-scsi\"}]}}"));
    json_object_put(agent_ok(b, "vm-start", "{\"name\": \"hp\"}"));
    reply = agent_ok(b, "query-vm", "{\"name\": \"hp\"}");
    if (!json_object_object_get_ex(agent_return(reply), "runtime", &rt) || !json_object_object_get_ex(rt, "pid", &pid))
        die("query-vm hp: no runtime pid");
    vm_pid = json_object_get_int(pid);
    json_object_put(reply);
    if (bench_wait_idle(vm_pid, 0.05, 20) < 0)
        die("the VM's QEMU (pid %d) did not settle within 20 s", (int)vm_pid);
}

static void start_agent(bench *b)
{
    if (agentd_start(&b->agent) < 0 || agent_connect(&b->conn, b->agent.socket) < 0)
        die("agentd does not start; see %s", b->agent.log);
}

static void stop_agent(bench *b)
{
    agent_close(&b->conn);
    agentd_stop(&b->agent, 15);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "disks", required_argument, NULL, 'd' }, { "nics", required_argument, NULL, 'n' },
        { "rounds", required_argument, NULL, 'r' }, { NULL, 0, NULL, 0 } };
    int ndisks = 200, nnics = NICS_MAX - 2, rounds = 6, ch;
    bench *b = calloc(1, sizeof(*b));
    net_nl *nl;

    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1)
        if (ch == 'd')
            ndisks = atoi(optarg);
        else if (ch == 'n')
            nnics = atoi(optarg);
        else if (ch == 'r')
            rounds = atoi(optarg);
        else
            return 2;
    if (ndisks < 2 || nnics < 1 || nnics > NICS_MAX - 2 || rounds < 1 || rounds > 30)
        die("--disks at least 2, --nics from 1 to %d, --rounds from 1 to 30", NICS_MAX - 2);
    if (unshare(CLONE_NEWNET) < 0 || bench_sh("ip link set dev lo up") < 0)
        die("a network namespace of its own (run as root): %s", strerror(errno));
    double *ad = calloc((size_t)ndisks, sizeof(double)), *bd = calloc((size_t)ndisks, sizeof(double));
    size_t nn = (size_t)(nnics * rounds);
    double *an = calloc(nn, sizeof(double)), *bn = calloc(nn, sizeof(double));
    double *ac = calloc(nn, sizeof(double)), *bc = calloc(nn, sizeof(double)), round_added, round_added_cmd;

    atexit(kill_vm);
    if (agentd_prepare(&b->agent, "create-bridges = yes\nlog-level = warning\ncgroup-parent = none\n") < 0)
        die("temp dir");
    start_agent(b);
    fresh_vm(b, false);
    for (int k = 0; k <= ndisks; k++) {
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "truncate -s 1M %s/state/images/b%d.raw", b->agent.dir, k);
        if (bench_sh(cmd) < 0)
            die("%s", cmd);
    }
    if (net_nl_open(5000, &nl) < 0 || net_bridge_create(nl, BRIDGE, false, NULL, 0) < 0)
        die("bridge");
    /* Disks: agent, bare, agent; each side's first attach is an untimed warm-up. */
    agent_disk(b, 0);
    int half = ndisks / 2;
    for (int k = 0; k < half; k++)
        ad[k] = agent_disk(b, k);
    stop_agent(b);
    bare_connect(b);
    bare_disk(b, ndisks);
    for (int k = 0; k < ndisks; k++)
        bd[k] = bare_disk(b, k);
    close(b->qmp);
    start_agent(b);
    wait_adopted(b);
    for (int k = half; k < ndisks; k++)
        ad[k] = agent_disk(b, k);
    /* NICs: rounds on a fresh VM each (they unplug only with a guest), the
     * side that goes first alternating, after an untimed warm-up NIC. */
    for (int r = 0; r < rounds; r++) {
        double *ar = an + r * nnics, *br = bn + r * nnics;
        if (r % 2 == 0)
            agent_nics(b, r, nnics, ar, ac + r * nnics);
        stop_agent(b);
        bare_connect(b);
        bare_nic(b, nl, r * 8 + 6, nnics, NULL);
        for (int k = 0; k < nnics; k++)
            br[k] = bare_nic(b, nl, r * 8 + k, k, bc + r * nnics + k);
        close(b->qmp);
        start_agent(b);
        wait_adopted(b);
        if (r % 2 == 1)
            agent_nics(b, r, nnics, ar, ac + r * nnics);
        fresh_vm(b, true);
    }
    printf("disk attach (SCSI, raw) and NIC attach (virtio-net on a tap), command to device listed by QEMU\n");
    report("disk", ad, (size_t)ndisks, bd, (size_t)ndisks);
    round_added = per_round_added(an, bn, rounds, nnics);
    round_added_cmd = per_round_added(ac, bc, rounds, nnics);
    report("nic", an, nn, bn, nn);
    printf("nic          added per round (agent median - bare median), median of %d rounds: %+.3f ms\n", rounds,
           round_added * 1e3);
    printf("nic          of which to the command's reply: agent median %.3f ms, bare %.3f ms, "
           "per round added %+.3f ms\n", bench_pct(ac, nn, 0.5) * 1e3, bench_pct(bc, nn, 0.5) * 1e3,
           round_added_cmd * 1e3);
    json_object_put(agent_ok(b, "vm-destroy", "{\"name\": \"hp\"}"));
    vm_pid = 0;
    stop_agent(b);
    net_nl_close(nl);
    agentd_cleanup(&b->agent);
    return 0;
}
