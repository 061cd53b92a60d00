/* test_agentctl.c: the agentctl binary, end to end, against a fake agent.
 *
 * The fake listens on a unix socket in a temp directory and runs on its own
 * thread: it greets, negotiates, records every request line, and answers from
 * a table keyed by the command name. Each test runs the real agentctl with
 * fork/exec and checks what a user or a script would: stdout, stderr, the
 * exit status, and the exact request that reached the socket. Some replies
 * come after events (a long job's progress), and two clones ("slow",
 * "stuck") are held until agentctl sends job-cancel, or for ever. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#ifndef AGENTCTL_PATH
#error "AGENTCTL_PATH must name the agentctl binary"
#endif

#define MAX_REQUESTS 64
#define RUN_TIMEOUT_MS 30000
#define BIG_CMDLINE_BYTES (5u * 1024 * 1024)

extern char **environ;

typedef enum fake_mode {
    MODE_NORMAL,        /* answers from the table */
    MODE_GARBAGE,       /* answers every command with a line that is not JSON */
    MODE_SILENT,        /* never answers a command after negotiation */
    MODE_BAD_GREETING,  /* greets without "QMP" */
    MODE_EVENTS_CLOSE,  /* after negotiation: two events, then hangs up */
    MODE_EVENTS_STAY,   /* after negotiation: one event, then waits for the client */
} fake_mode;

typedef struct fake_agent {
    pthread_t thread;
    pthread_mutex_t lock;
    int listen_fd;
    int stop_pipe[2];
    fake_mode mode;
    /* Guarded by lock. */
    int connections;
    int negotiated;
    char *requests[MAX_REQUESTS];   /* every line after qmp_capabilities */
    size_t nrequests;
    char *caps_line;                /* the qmp_capabilities line as received */
    /* Only the fake's thread: the id of the held clone request, or NULL. */
    char *held_id;
} fake_agent;

typedef struct harness {
    char dir[64];
    char path[100];   /* fits sun_path */
    fake_agent fake;
} harness;

typedef struct run_result {
    int status;   /* exit status, or 128 + signal */
    char *out, *err;
    size_t out_len, err_len;
} run_result;

typedef struct run_opts {
    bool no_socket;            /* leave out "-s PATH" */
    const char *env_socket;    /* AGENTD_SOCKET for the child */
    const char *stdin_path;    /* default /dev/null */
    int signal_when_negotiated;
    /* A SIGINT once the fake has received each of these commands, in turn. */
    const char *sigint_after[3];
    bool stderr_tty;           /* stderr is a pseudo-terminal, read into err */
} run_opts;

/* ---- the fake agent ---- */

static const char greeting[] =
    "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 0, \"minor\": 1, \"micro\": 0}, "
    "\"package\": \"agentd 0.1.0\"}, \"capabilities\": [], \"agentd\": {\"host\": \"hv01\", "
    "\"pid\": 4242}}}\n";

static const char event_started[] =
    "{\"event\": \"VM_STATE\", \"data\": {\"vm\": \"vm1\", \"state\": \"running\", "
    "\"previous\": \"starting\", \"reason\": \"user\", \"pid\": 1234}, "
    "\"timestamp\": {\"seconds\": 1763775000, \"microseconds\": 12345}, \"seq\": 17}";

typedef struct canned {
    const char *command;
    const char *value;   /* the "return" value, or the "error" object */
    bool is_error;
    const char *const *events;   /* lines sent before the reply; NULL-terminated */
} canned;

#define JOB_EVENT(name, data)                                                                 \
    "{\"event\": \"" name "\", \"data\": {" data "}, \"timestamp\": {\"seconds\": 1763775000, " \
    "\"microseconds\": 0}, \"seq\": 40}"
#define GIB4 "4294967296"

/* master-create runs on its source VM, vm1; the events of a clone running on
 * vm7 at the same time must not show. */
static const char *const master_create_events[] = {
    JOB_EVENT("JOB_PROGRESS", "\"vm\": \"vm1\", \"job\": \"master-create\", \"disk\": \"rhel9.sda.qcow2\","
              " \"done\": 0, \"total\": " GIB4 ", \"message\": \"Cloning vm1.sda.qcow2 (currently is"
              " 1050 MB and has a capacity of 4096MB)\""),
    JOB_EVENT("JOB_PROGRESS", "\"vm\": \"vm7\", \"job\": \"clone\", \"disk\": \"vm7.sda.qcow2\","
              " \"done\": 0, \"total\": " GIB4 ", \"message\": \"Cloning rhel9.sda.qcow2 for vm7\""),
    JOB_EVENT("JOB_PROGRESS", "\"vm\": \"vm1\", \"job\": \"master-create\", \"disk\": \"rhel9.sda.qcow2\","
              " \"done\": " GIB4 ", \"total\": " GIB4),
    JOB_EVENT("JOB_FINISHED", "\"vm\": \"vm1\", \"job\": \"master-create\", \"status\": \"completed\","
              " \"error\": null"),
    NULL,
};

/* A clone of two disks onto vm2; vm1's line, from another job, must not show. */
static const char *const clone_events[] = {
    JOB_EVENT("JOB_PROGRESS", "\"vm\": \"vm2\", \"job\": \"clone\", \"disk\": \"vm2.sda.qcow2\","
              " \"done\": 0, \"total\": " GIB4 ", \"message\": \"Cloning rhel9.sda.qcow2 (currently is"
              " 1050 MB and has a capacity of 4096MB)\""),
    JOB_EVENT("JOB_PROGRESS", "\"vm\": \"vm2\", \"job\": \"clone\", \"disk\": \"vm2.sda.qcow2\","
              " \"done\": 2147483648, \"total\": " GIB4),
    JOB_EVENT("JOB_PROGRESS", "\"vm\": \"vm1\", \"job\": \"master-create\", \"disk\": \"gold.sda.qcow2\","
              " \"done\": 0, \"total\": 1024, \"message\": \"Cloning vm1.sda.qcow2 for m2\""),
    JOB_EVENT("JOB_PROGRESS", "\"vm\": \"vm2\", \"job\": \"clone\", \"disk\": \"vm2.sda.qcow2\","
              " \"done\": " GIB4 ", \"total\": " GIB4),
    JOB_EVENT("JOB_PROGRESS", "\"vm\": \"vm2\", \"job\": \"clone\", \"disk\": \"vm2.sdb.qcow2\","
              " \"done\": 0, \"total\": 1073741824, \"message\": \"Cloning rhel9.sdb.qcow2 (currently"
              " is 0 MB and has a capacity of 1024MB)\""),
    JOB_EVENT("JOB_PROGRESS", "\"vm\": \"vm2\", \"job\": \"clone\", \"disk\": \"vm2.sdb.qcow2\","
              " \"done\": 1073741824, \"total\": 1073741824"),
    JOB_EVENT("JOB_FINISHED", "\"vm\": \"vm2\", \"job\": \"clone\", \"status\": \"completed\","
              " \"error\": null"),
    NULL,
};

#define POOL_SECONDARY(active)                                                                  \
    "{\"name\": \"secondary\", \"location\": \"nfs://10.0.0.1/install/vms/\", \"autostart\": false," \
    " \"kind\": \"nfs\", \"active\": " active ", \"path\": \"/var/lib/agentd/mnt/secondary\"}"

static const canned replies[] = {
    { "query-vms",
      "[{\"name\": \"vm1\", \"uuid\": \"5f0c6e1a-0000-4000-8000-000000000001\", \"state\": \"running\","
      " \"reason\": \"user\", \"pid\": 1234, \"vcpus\": 2, \"memory-mib\": 1024, \"autostart\": true},"
      " {\"name\": \"web-02\", \"uuid\": \"5f0c6e1a-0000-4000-8000-000000000002\", \"state\": \"stopped\","
      " \"reason\": \"defined\", \"vcpus\": 4, \"memory-mib\": 4096, \"autostart\": false}]",
      false, NULL },
    { "query-vm",
      "{\"definition\": {\"name\": \"vm1\", \"vcpus\": 2, \"memory\": 1024, \"boot\": [\"network\", \"disk\"],"
      " \"autostart\": true, \"labels\": {\"owner\": \"ops\", \"bad\": \"a\\u001b[31mb\"}},"
      " \"runtime\": {\"state\": \"crashed\", \"reason\": \"crash\", \"exit-status\": {\"signal\": 9},"
      " \"log-tail\": \"line one\\nline two\\n\"}}",
      false, NULL },
    { "vm-define", "{\"name\": \"vm1\", \"uuid\": \"5f0c6e1a-0000-4000-8000-000000000001\", \"created\": true}",
      false, NULL },
    { "vm-update", "{\"restart-needed\": [\"memory\", \"vcpus\"]}", false, NULL },
    { "vm-undefine", "{}", false, NULL },
    { "query-pools",
      "[{\"name\": \"default\", \"location\": \"dir:///var/lib/agentd/images\", \"autostart\": true,"
      " \"kind\": \"dir\", \"active\": true, \"busy\": false, \"path\": \"/var/lib/agentd/images\"}, "
      "{\"name\": \"secondary\", \"location\": \"nfs://10.0.0.1/install/vms/\", \"autostart\": true,"
      " \"kind\": \"nfs\", \"active\": false, \"busy\": true, \"path\": \"/var/lib/agentd/mnt/secondary\"}]",
      false, NULL },
    { "pool-define", "{\"name\": \"secondary\", \"created\": true}", false, NULL },
    { "pool-undefine", "{\"class\": \"InvalidState\", \"desc\": \"pool secondary holds disks of vm1, vm2\"}",
      true, NULL },
    { "pool-start", POOL_SECONDARY("true"), false, NULL },
    { "pool-stop", POOL_SECONDARY("false"), false, NULL },
    { "query-volumes",
      "[{\"name\": \"rhel9.sda.qcow2\", \"path\": \"/var/lib/agentd/images/rhel9.sda.qcow2\","
      " \"format\": \"qcow2\", \"virtual-size\": 21474836480, \"allocated\": 1074135040,"
      " \"backing\": null, \"used-by\": [], \"master\": \"rhel9\"},"
      " {\"name\": \"vm1.sda.qcow2\", \"path\": \"/var/lib/agentd/images/vm1.sda.qcow2\","
      " \"format\": \"qcow2\", \"virtual-size\": 21474836480, \"allocated\": 196608,"
      " \"backing\": \"/var/lib/agentd/images/rhel9.sda.qcow2\", \"used-by\": [\"vm1\"], \"master\": null},"
      " {\"name\": \"shared.raw\", \"path\": \"/var/lib/agentd/images/shared.raw\", \"format\": \"raw\","
      " \"virtual-size\": 1610612736, \"allocated\": 512, \"backing\": null,"
      " \"used-by\": [\"vm2\", \"vm3\"], \"master\": null},"
      " {\"name\": \"lost.qcow2\", \"path\": \"/var/lib/agentd/images/lost.qcow2\", \"format\": \"qcow2\","
      " \"error\": \"its backing file /srv/base.qcow2 is outside the pools\", \"used-by\": [], \"master\": null}]",
      false, NULL },
    { "vol-create", "{\"path\": \"/var/lib/agentd/images/data1.qcow2\", \"virtual-size\": 21474836480}",
      false, NULL },
    { "vol-delete", "{}", false, NULL },
    { "query-volume",
      "{\"path\": \"/i/vm1.sda.qcow2\", \"format\": \"qcow2\", \"virtual-size\": 4294967296, \"chain\": ["
      "{\"path\": \"/i/vm1.sda.qcow2\", \"format\": \"qcow2\", \"virtual-size\": 4294967296,"
      " \"allocated\": 16384, \"version\": 3, \"cluster-size\": 65536, \"dirty\": true, \"corrupt\": false,"
      " \"lazy-refcounts\": false, \"backing-file\": \"m.qcow2\", \"backing-format\": \"qcow2\"},"
      "{\"path\": \"/i/base.raw\", \"format\": \"raw\", \"virtual-size\": 4294967296, \"allocated\": 4096}]}",
      false, NULL },
    { "vol-check",
      "{\"path\": \"/i/vm1.sda.qcow2\", \"clean\": false, \"leaked-clusters\": 2, \"corruptions\": 0,"
      " \"first-problem\": \"cluster 5 is leaked\"}", false, NULL },
    { "master-create",
      "{\"name\": \"rhel9\", \"os\": \"rhels9\", \"arch\": \"x86_64\", \"profile\": \"compute\","
      " \"storage\": \"dir:///var/lib/agentd/images\", \"nics\": \"\", \"created\": \"2026-11-22T05:00:00Z\","
      " \"originator\": \"root\", \"from-vm\": \"vm1\", \"disks\": [{\"target\": \"sda\", \"pool\": \"default\","
      " \"volume\": \"rhel9.sda.qcow2\", \"path\": \"/var/lib/agentd/images/rhel9.sda.qcow2\"}],"
      " \"definition\": {\"name\": \"rhel9\"}}",
      false, master_create_events },
    { "vm-clone",
      "{\"name\": \"vm2\", \"uuid\": \"0d5e0c6e-0000-4000-8000-000000000002\", \"master\": \"rhel9\","
      " \"detached\": true}",
      false, clone_events },
    { "query-masters",
      "[{\"name\": \"rhel9\", \"os\": \"rhels9\", \"arch\": \"x86_64\", \"profile\": \"compute\","
      " \"storage\": \"dir:///var/lib/agentd/images\", \"nics\": \"\", \"created\": \"2026-11-22T05:00:00Z\","
      " \"originator\": \"root\", \"from-vm\": \"vm1\", \"disks\": [], \"definition\": {}},"
      " {\"name\": \"sles15\", \"os\": \"sles15.5\", \"arch\": \"x86_64\", \"profile\": \"\","
      " \"storage\": \"nfs://10.0.0.1/install/vms/\", \"nics\": \"br0\", \"created\": \"2026-11-23T09:30:00Z\","
      " \"originator\": \"ops\", \"from-vm\": \"web-02\", \"disks\": [], \"definition\": {}}]",
      false, NULL },
    { "master-delete", "{}", false, NULL },
    { "job-cancel", "{}", false, NULL },
    { "vm-start", "{}", false, NULL },
    { "vm-shutdown", "{\"forced\": true}", false, NULL },
    { "vm-destroy", "{\"class\": \"InvalidState\", \"desc\": \"vm1 is not running\"}", true, NULL },
    { "vm-reset", "{}", false, NULL },
    { "vm-save", "{\"file\": \"/srv/saves/vm1\", \"size\": 4096}", false, NULL },
    { "vm-restore", "{}", false, NULL },
    { "vm-save-discard", "{}", false, NULL },
    { "snapshot-create", "{\"name\": \"s1\", \"created-at\": 1796352121, \"disks\": []}", false, NULL },
    { "snapshot-revert", "{\"name\": \"s1\", \"dropped\": [\"s2\"]}", false, NULL },
    { "snapshot-list", "[{\"name\": \"s1\", \"created-at\": 1796352121, \"disks\": [{\"target\": \"sda\"},"
      " {\"target\": \"sdb\"}]}]", false, NULL },
    { "vm-qmp", "{\"status\": \"running\", \"singlestep\": false, \"running\": true}", false, NULL },
    { "disk-attach", "{\"target\": \"sdb\", \"device\": \"disk-sdb\", \"bus\": \"virtio-blk\", \"slot\": 0}",
      false, NULL },
    { "nic-detach", "{\"mac\": \"52:54:00:00:00:01\", \"device\": \"nic-525400000001\"}", false, NULL },
    { "vnc-password", "{}", false, NULL },
    { "vcpus-set", "{\"vcpus\": 4}", false, NULL },
    { "query-host",
      "{\"hostname\": \"hv01\", \"cpus\": 2, \"memory-mib\": 24036, \"memory-available-mib\": 22010,"
      " \"accel\": \"tcg\", \"kvm-available\": true, \"vms\": {\"defined\": 3, \"running\": 2},"
      " \"allocated\": {\"vcpus\": 3, \"memory-mib\": 1024}, \"defined\": {\"vcpus\": 5, \"memory-mib\": 2048},"
      " \"bridges\": [{\"name\": \"br0\", \"mtu\": 1500, \"up\": true}, {\"name\": \"br9k\", \"mtu\": 9000,"
      " \"up\": false}]}",
      false, NULL },
    { "host-sriov",
      "{\"pf\": \"0000:03:00.0\", \"netdev\": \"enp3s0f0\", \"numvfs\": 2, \"vfs\": ["
      "{\"index\": 0, \"host\": \"0000:03:10.0\", \"driver\": \"igbvf\"},"
      "{\"index\": 1, \"host\": \"0000:03:10.2\", \"driver\": \"\"}]}",
      false, NULL },
    { "host-sriov-set",
      "{\"pf\": \"0000:03:00.0\", \"netdev\": \"enp3s0f0\", \"numvfs\": 0, \"vfs\": []}",
      false, NULL },
    { "query-version",
      "{\"agentd\": {\"major\": 0, \"minor\": 1, \"micro\": 0}, \"package\": \"agentd 0.1.0\","
      " \"qemu\": {\"binary\": \"qemu-system-x86_64\", \"version\": \"7.2.22\"}}",
      false, NULL },
};

static char *event_text(const char *name, int64_t seq, const char *vm)
{
    char *s = NULL;

    assert_true(asprintf(&s,
                         "{\"event\": \"%s\", \"data\": {\"vm\": \"%s\", \"state\": \"stopped\", "
                         "\"reason\": \"user guest\"}, \"timestamp\": {\"seconds\": 1763775000, "
                         "\"microseconds\": 250000}, \"seq\": %lld}",
                         name, vm, (long long)seq) > 0);
    return s;
}

static int send_text(int fd, const char *text)
{
    size_t len = strlen(text);

    while (len > 0) {
        ssize_t n = send(fd, text, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        text += n;
        len -= (size_t)n;
    }
    return 0;
}

static int send_line(int fd, const char *text)
{
    return send_text(fd, text) < 0 ? -1 : send_text(fd, "\n");
}

typedef struct line_reader {
    int fd, stop_fd;
    char buf[1 << 20];
    size_t len;
} line_reader;

/* One line into *ret (to free); 0 at end of stream or when asked to stop. */
static int read_line(line_reader *r, char **ret)
{
    for (;;) {
        char *nl = memchr(r->buf, '\n', r->len);
        struct pollfd p[2] = { { .fd = r->fd, .events = POLLIN }, { .fd = r->stop_fd, .events = POLLIN } };
        ssize_t n;

        if (nl) {
            *ret = strndup(r->buf, (size_t)(nl - r->buf));
            r->len -= (size_t)(nl + 1 - r->buf);
            memmove(r->buf, nl + 1, r->len);
            return 1;
        }
        if (poll(p, 2, -1) < 0 || p[1].revents || r->len == sizeof(r->buf))
            return 0;
        n = read(r->fd, r->buf + r->len, sizeof(r->buf) - r->len);
        if (n <= 0)
            return 0;
        r->len += (size_t)n;
    }
}

static const canned *find_reply(const char *command)
{
    for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++)
        if (strcmp(replies[i].command, command) == 0)
            return &replies[i];
    return NULL;
}

static const char *string_member(struct json_object *obj, const char *key)
{
    struct json_object *v;

    return json_object_object_get_ex(obj, key, &v) ? json_object_get_string(v) : "";
}

/* query-vm of "big": a definition whose cmdline alone is several MiB. */
static char *big_value(void)
{
    char *cmdline = malloc(BIG_CMDLINE_BYTES + 1), *s = NULL;

    memset(cmdline, 'x', BIG_CMDLINE_BYTES);
    cmdline[BIG_CMDLINE_BYTES] = '\0';
    if (asprintf(&s, "{\"definition\": {\"name\": \"big\", \"cmdline\": \"%s\"}, \"runtime\": "
                     "{\"state\": \"stopped\"}}", cmdline) < 0)
        s = NULL;
    free(cmdline);
    return s;
}

static void send_reply(int fd, const char *id, const char *value, bool is_error)
{
    char *s = NULL;

    if (asprintf(&s, "{\"%s\": %s, \"id\": %s}", is_error ? "error" : "return", value, id) > 0)
        send_line(fd, s);
    free(s);
}

static void send_events(int fd, const char *const *events)
{
    for (; events && *events; events++)
        send_line(fd, *events);
}

/* Clones of "slow" and "stuck" send one progress event and no reply: "slow"
 * answers job-cancel as the agent does (the job's reply is Cancelled);
 * "stuck" never finishes. true when the request was one of these. */
static bool answer_held_job(fake_agent *f, int fd, const char *command, const char *name,
                            const char *id)
{
    bool held = strcmp(name, "slow") == 0 || strcmp(name, "stuck") == 0;
    char *ev = NULL;

    if (strcmp(command, "vm-clone") == 0 && held) {
        assert_true(asprintf(&ev, JOB_EVENT("JOB_PROGRESS", "\"vm\": \"%s\", \"job\": \"clone\","
                             " \"disk\": \"%s.sda.qcow2\", \"done\": 0, \"total\": " GIB4 ","
                             " \"message\": \"Cloning rhel9.sda.qcow2 for %s\""), name, name, name) > 0);
        send_line(fd, ev);
        free(ev);
        free(f->held_id);
        f->held_id = strdup(id);
        return true;
    }
    if (strcmp(command, "job-cancel") != 0 || strcmp(name, "slow") != 0 || !f->held_id)
        return false;
    send_reply(fd, id, "{}", false);
    send_line(fd, JOB_EVENT("JOB_FINISHED", "\"vm\": \"slow\", \"job\": \"clone\", \"status\":"
                            " \"cancelled\", \"error\": \"cancelled\""));
    send_reply(fd, f->held_id, "{\"class\": \"Cancelled\", \"desc\": \"the clone of slow was cancelled;"
               " its files were removed\"}", true);
    free(f->held_id);
    f->held_id = NULL;
    return true;
}

/* vm-undefine with purge says what became of each disk. */
static bool answer_purge(int fd, const char *command, struct json_object *args, const char *id)
{
    struct json_object *purge;

    if (strcmp(command, "vm-undefine") != 0 || !json_object_object_get_ex(args, "purge", &purge) ||
        !json_object_get_boolean(purge))
        return false;
    send_reply(fd, id,
               "{\"deleted\": [\"/var/lib/agentd/images/vm1.sda.qcow2\"], \"kept\": [{\"path\":"
               " \"/var/lib/agentd/images/vm1.sdb.qcow2\", \"error\": \"it is the backing file of"
               " vm3.sda.qcow2\"}]}",
               false);
    return true;
}

/* Before vm-start's reply: an event and a reply to some other request, both
 * of which agentctl must pass over. query-events gets live events around
 * its reply, one of them also in the replay. false ends the session. */
static bool answer(fake_agent *f, int fd, struct json_object *req, const char *id)
{
    const char *command = string_member(req, "execute");
    struct json_object *args = NULL;
    const canned *c = find_reply(command);
    char *big, *ev;

    json_object_object_get_ex(req, "arguments", &args);
    if (strcmp(command, "vm-start") == 0) {
        send_line(fd, event_started);
        send_line(fd, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"stale\"}, \"id\": 999}");
    }
    if (answer_held_job(f, fd, command, string_member(args, "name"), id) ||
        answer_purge(fd, command, args, id))
        return true;
    if (strcmp(command, "query-vm") == 0 && strcmp(string_member(args, "name"), "big") == 0) {
        big = big_value();
        send_reply(fd, id, big, false);
        free(big);
    } else if (strcmp(command, "query-events") == 0) {
        ev = event_text("VM_STATE", 6, "vm1");
        send_line(fd, ev);
        free(ev);
        ev = event_text("VM_STATE", 7, "vm2");
        send_line(fd, ev);
        free(ev);
        send_reply(fd, id,
                   "{\"events\": [{\"event\": \"VM_DEFINED\", \"data\": {\"vm\": \"vm1\", \"created\": true},"
                   " \"timestamp\": {\"seconds\": 1763775000, \"microseconds\": 0}, \"seq\": 5},"
                   " {\"event\": \"VM_STATE\", \"data\": {\"vm\": \"vm1\"}, \"timestamp\": {\"seconds\":"
                   " 1763775000, \"microseconds\": 0}, \"seq\": 6}], \"last-seq\": 6, \"missed\": true}",
                   false);
        ev = event_text("VM_STATE", 8, "vm3");
        send_line(fd, ev);
        free(ev);
        return false;   /* so the stream ends and the test can read it whole */
    } else if (c) {
        send_events(fd, c->events);
        send_reply(fd, id, c->value, c->is_error);
    } else {
        send_reply(fd, id, "{\"class\": \"CommandNotFound\", \"desc\": \"no such command\"}", true);
    }
    return true;
}

static void record(fake_agent *f, const char *line, bool caps)
{
    pthread_mutex_lock(&f->lock);
    if (caps) {
        free(f->caps_line);
        f->caps_line = strdup(line);
        f->negotiated++;
    } else if (f->nrequests < MAX_REQUESTS) {
        f->requests[f->nrequests++] = strdup(line);
    }
    pthread_mutex_unlock(&f->lock);
}

/* What the fake does right after negotiating, by mode; false ends the session. */
static bool after_negotiation(fake_agent *f, int fd)
{
    char *ev;

    if (f->mode == MODE_EVENTS_CLOSE) {
        send_line(fd, event_started);
        ev = event_text("VM_UNDEFINED", 18, "vm1");
        send_line(fd, ev);
        free(ev);
        return false;
    }
    if (f->mode == MODE_EVENTS_STAY)
        send_line(fd, event_started);
    return true;
}

static void handle_line(fake_agent *f, int fd, const char *line, bool *alive)
{
    struct json_object *req = json_tokener_parse(line);
    struct json_object *idv = NULL;
    const char *id;

    json_object_object_get_ex(req, "id", &idv);
    id = idv ? json_object_to_json_string(idv) : "null";
    if (strcmp(string_member(req, "execute"), "qmp_capabilities") == 0) {
        record(f, line, true);
        send_reply(fd, id, "{}", false);
        *alive = after_negotiation(f, fd);
    } else {
        record(f, line, false);
        if (f->mode == MODE_GARBAGE)
            send_line(fd, "this is not JSON");
        else if (f->mode != MODE_SILENT)
            *alive = answer(f, fd, req, id);
    }
    json_object_put(req);
}

static void serve(fake_agent *f, int fd)
{
    line_reader *r = calloc(1, sizeof(*r));
    bool alive = true;
    char *line;

    r->fd = fd;
    r->stop_fd = f->stop_pipe[0];
    if (f->mode == MODE_BAD_GREETING)
        send_line(fd, "{\"hello\": \"world\"}");
    else
        send_text(fd, greeting);
    while (alive && read_line(r, &line) > 0) {
        handle_line(f, fd, line, &alive);
        free(line);
    }
    free(r);
}

static void *fake_main(void *p)
{
    fake_agent *f = p;
    struct pollfd fds[2] = { { .fd = f->listen_fd, .events = POLLIN },
                             { .fd = f->stop_pipe[0], .events = POLLIN } };
    int fd;

    while (poll(fds, 2, -1) >= 0 && !fds[1].revents) {
        fd = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        pthread_mutex_lock(&f->lock);
        f->connections++;
        pthread_mutex_unlock(&f->lock);
        serve(f, fd);
        close(fd);
    }
    return NULL;
}

static void fake_start(fake_agent *f, const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    pthread_mutex_init(&f->lock, NULL);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(f->listen_fd >= 0);
    assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(f->listen_fd, 8), 0);
    assert_int_equal(pipe2(f->stop_pipe, O_CLOEXEC), 0);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(fake_agent *f)
{
    assert_int_equal(write(f->stop_pipe[1], "x", 1), 1);
    pthread_join(f->thread, NULL);
    close(f->listen_fd);
    close(f->stop_pipe[0]);
    close(f->stop_pipe[1]);
    for (size_t i = 0; i < f->nrequests; i++)
        free(f->requests[i]);
    free(f->caps_line);
    free(f->held_id);
    pthread_mutex_destroy(&f->lock);
}

static int fake_count(fake_agent *f, const int *counter)
{
    int n;

    pthread_mutex_lock(&f->lock);
    n = *counter;
    pthread_mutex_unlock(&f->lock);
    return n;
}

/* The last request for command (any, when NULL), parsed; NULL when there is none. */
static struct json_object *find_request(fake_agent *f, const char *command)
{
    struct json_object *found = NULL;

    pthread_mutex_lock(&f->lock);
    for (size_t i = f->nrequests; i-- > 0 && !found;) {
        struct json_object *req = json_tokener_parse(f->requests[i]);
        if (req && (!command || strcmp(string_member(req, "execute"), command) == 0))
            found = req;
        else
            json_object_put(req);
    }
    pthread_mutex_unlock(&f->lock);
    return found;
}

/* The last request for command, parsed; fails the test when there is none. */
static struct json_object *last_request(harness *h, const char *command)
{
    struct json_object *found = find_request(&h->fake, command);

    assert_non_null(found);
    return found;
}

static bool fake_received(fake_agent *f, const char *command)
{
    struct json_object *req = find_request(f, command);

    json_object_put(req);
    return req != NULL;
}

/* The request's "arguments" member (borrowed from req). */
static struct json_object *arguments_of(struct json_object *req)
{
    struct json_object *args = NULL;

    assert_true(json_object_object_get_ex(req, "arguments", &args));
    assert_true(json_object_is_type(args, json_type_object));
    return args;
}

/* ---- running agentctl ---- */

/* The parent's environment with TZ and AGENTD_SOCKET replaced. */
static char **child_env(const run_opts *o)
{
    size_t n = 0, k = 0;
    char **env;

    while (environ[n])
        n++;
    env = calloc(n + 3, sizeof(*env));
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "TZ=", 3) != 0 && strncmp(environ[i], "AGENTD_SOCKET=", 14) != 0)
            env[k++] = environ[i];
    env[k++] = "TZ=UTC";
    if (o->env_socket && asprintf(&env[k], "AGENTD_SOCKET=%s", o->env_socket) > 0)
        k++;
    env[k] = NULL;
    return env;
}

static char **child_argv(harness *h, const run_opts *o, const char *const *args)
{
    size_t n = 0, k = 0;
    char **argv;

    while (args[n])
        n++;
    argv = calloc(n + 4, sizeof(*argv));
    argv[k++] = (char *)AGENTCTL_PATH;
    if (!o->no_socket) {
        argv[k++] = "-s";
        argv[k++] = h->path;
    }
    for (size_t i = 0; i < n; i++)
        argv[k++] = (char *)args[i];
    return argv;
}

static void append(char **buf, size_t *len, const char *data, size_t n)
{
    *buf = realloc(*buf, *len + n + 1);
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
}

/* A pseudo-terminal: err[0] its master, err[1] its slave, as a pipe's ends. */
static void open_pty(int err[2])
{
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);

    assert_true(master >= 0);
    assert_int_equal(grantpt(master), 0);
    assert_int_equal(unlockpt(master), 0);
    err[0] = master;
    err[1] = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
    assert_true(err[1] >= 0);
}

static pid_t spawn(char **argv, char **env, const run_opts *o, int out[2], int err[2])
{
    int in = open(o->stdin_path ? o->stdin_path : "/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t pid;

    assert_true(in >= 0);
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    if (o->stderr_tty)
        open_pty(err);
    else
        assert_int_equal(pipe2(err, O_CLOEXEC), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (dup2(in, 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0)
            _exit(126);
        execve(argv[0], argv, env);
        _exit(127);
    }
    close(in);
    close(out[1]);
    close(err[1]);
    return pid;
}

/* Reads the child's output until both pipes close, signalling it once the
 * fake has negotiated with it when asked to. */
static void collect(harness *h, pid_t pid, const run_opts *o, int out, int err, run_result *res)
{
    struct pollfd p[2] = { { .fd = out, .events = POLLIN }, { .fd = err, .events = POLLIN } };
    int negotiated = fake_count(&h->fake, &h->fake.negotiated), waited = 0;
    bool signalled = !o->signal_when_negotiated;
    size_t sigints = 0;
    char buf[65536];

    while (p[0].fd >= 0 || p[1].fd >= 0) {
        int n = poll(p, 2, 50);
        if (!signalled && fake_count(&h->fake, &h->fake.negotiated) > negotiated) {
            kill(pid, o->signal_when_negotiated);
            signalled = true;
        }
        if (sigints < 2 && o->sigint_after[sigints] &&
            fake_received(&h->fake, o->sigint_after[sigints])) {
            kill(pid, SIGINT);
            sigints++;
        }
        waited += n == 0 ? 50 : 0;
        if (waited > RUN_TIMEOUT_MS) {
            kill(pid, SIGKILL);
            fail_msg("agentctl did not finish within %d ms", RUN_TIMEOUT_MS);
        }
        for (int i = 0; i < 2; i++) {
            ssize_t got;
            if (p[i].fd < 0 || !p[i].revents)
                continue;
            got = read(p[i].fd, buf, sizeof(buf));
            if (got <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
            } else if (i == 0) {
                append(&res->out, &res->out_len, buf, (size_t)got);
            } else {
                append(&res->err, &res->err_len, buf, (size_t)got);
            }
        }
    }
}

static run_result run_with(harness *h, const run_opts *o, const char *const *args)
{
    run_result res = { 0 };
    char **argv = child_argv(h, o, args), **env = child_env(o);
    int out[2], err[2], status;
    pid_t pid = spawn(argv, env, o, out, err);

    append(&res.out, &res.out_len, "", 0);
    append(&res.err, &res.err_len, "", 0);
    collect(h, pid, o, out[0], err[0], &res);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    res.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (o->env_socket)
        for (size_t i = 0; env[i]; i++)
            if (strncmp(env[i], "AGENTD_SOCKET=", 14) == 0)
                free(env[i]);
    free(env);
    free(argv);
    return res;
}

#define RUN(h, ...) run_with((h), &(run_opts){ 0 }, (const char *const[]){ __VA_ARGS__, NULL })

static void result_free(run_result *r)
{
    free(r->out);
    free(r->err);
}

static void assert_exit(const run_result *r, int status)
{
    if (r->status != status)
        fail_msg("exit status %d, wanted %d\nstdout: %s\nstderr: %s", r->status, status, r->out,
                 r->err);
}

static struct json_object *parse_output(const run_result *r)
{
    struct json_object *v = json_tokener_parse(r->out);

    if (!v)
        fail_msg("stdout is not JSON: %s", r->out);
    return v;
}

/* ---- fixtures ---- */

static int setup(void **state)
{
    harness *h = calloc(1, sizeof(*h));

    strcpy(h->dir, "/tmp/agentctl-test-XXXXXX");
    assert_non_null(mkdtemp(h->dir));
    snprintf(h->path, sizeof(h->path), "%s/agentd.sock", h->dir);
    fake_start(&h->fake, h->path);
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    harness *h = *state;
    char path[192];

    fake_stop(&h->fake);
    unlink(h->path);
    snprintf(path, sizeof(path), "%s/vm.json", h->dir);
    unlink(path);
    rmdir(h->dir);
    free(h);
    return 0;
}

static char *write_file(harness *h, const char *text)
{
    char *path = NULL;
    FILE *f;

    assert_true(asprintf(&path, "%s/vm.json", h->dir) > 0);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* ---- tests ---- */

static void test_negotiates_with_id_0_before_the_command(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "version");

    assert_exit(&r, 0);
    assert_string_equal(h->fake.caps_line, "{\"execute\":\"qmp_capabilities\",\"id\":0}");
    result_free(&r);
}

static void test_define_with_flags_sends_values_as_typed(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "define", "--name", "vm1", "--vcpus", "2:2", "--memory", "1G",
                       "--max-memory", "2G", "--max-vcpus", "8", "--machine", "q35", "--accel",
                       "kvm", "--kernel", "/boot/vmlinuz", "--initrd", "/boot/initrd.img",
                       "--cmdline", "console=ttyS0 quiet", "--boot", "network,disk", "--serial",
                       "115200", "--autostart", "--on-crash", "restart", "--label", "owner=ops",
                       "--label", "note=a=b", "--label", "empty=");
    struct json_object *req = last_request(h, "vm-define");
    struct json_object *def, *labels;

    assert_exit(&r, 0);
    assert_true(json_object_object_get_ex(arguments_of(req), "definition", &def));
    assert_string_equal(string_member(def, "name"), "vm1");
    assert_true(json_object_is_type(json_object_object_get(def, "vcpus"), json_type_string));
    assert_string_equal(string_member(def, "vcpus"), "2:2");
    assert_string_equal(string_member(def, "memory"), "1G");
    assert_string_equal(string_member(def, "max-memory"), "2G");
    assert_int_equal(json_object_get_int(json_object_object_get(def, "max-vcpus")), 8);
    assert_string_equal(string_member(def, "kernel"), "/boot/vmlinuz");
    assert_string_equal(string_member(def, "cmdline"), "console=ttyS0 quiet");
    assert_string_equal(string_member(def, "boot"), "network,disk");
    assert_true(json_object_is_type(json_object_object_get(def, "serial"), json_type_int));
    assert_true(json_object_get_boolean(json_object_object_get(def, "autostart")));
    assert_string_equal(string_member(def, "on-crash"), "restart");
    assert_true(json_object_object_get_ex(def, "labels", &labels));
    assert_int_equal(json_object_object_length(labels), 3);
    assert_string_equal(string_member(labels, "owner"), "ops");
    assert_string_equal(string_member(labels, "note"), "a=b");
    assert_string_equal(string_member(labels, "empty"), "");
    assert_string_equal(r.out, "vm1 defined\nuuid: 5f0c6e1a-0000-4000-8000-000000000001\n");
    json_object_put(req);
    result_free(&r);
}

static void test_define_sends_all_digit_counts_as_numbers(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "define", "--name", "vm1", "--vcpus", "2", "--memory", "1024");
    struct json_object *req = last_request(h, "vm-define"), *def;

    assert_exit(&r, 0);
    assert_true(json_object_object_get_ex(arguments_of(req), "definition", &def));
    assert_true(json_object_is_type(json_object_object_get(def, "vcpus"), json_type_int));
    assert_int_equal(json_object_get_int(json_object_object_get(def, "vcpus")), 2);
    assert_int_equal(json_object_get_int(json_object_object_get(def, "memory")), 1024);
    assert_false(json_object_object_get_ex(def, "labels", NULL));
    json_object_put(req);
    result_free(&r);
}

static const char file_definition[] =
    "{\n  \"name\": \"from-file\",\n  \"vcpus\": {\"sockets\": 1, \"cores\": 2, \"threads\": 1},\n"
    "  \"labels\": {\"hostname\": \"h1\"}\n}\n";

static void assert_definition_from_file(harness *h, const run_result *r)
{
    struct json_object *req = last_request(h, "vm-define"), *def, *expected;

    assert_exit(r, 0);
    assert_true(json_object_object_get_ex(arguments_of(req), "definition", &def));
    expected = json_tokener_parse(file_definition);
    assert_true(json_object_equal(def, expected));
    json_object_put(expected);
    json_object_put(req);
}

static void test_define_reads_a_file(void **state)
{
    harness *h = *state;
    char *path = write_file(h, file_definition);
    run_result r = RUN(h, "define", path);

    assert_definition_from_file(h, &r);
    free(path);
    result_free(&r);
}

static void test_define_reads_standard_input(void **state)
{
    harness *h = *state;
    char *path = write_file(h, file_definition);
    run_result r = run_with(h, &(run_opts){ .stdin_path = path }, (const char *const[]){ "define", "-", NULL });

    assert_definition_from_file(h, &r);
    free(path);
    result_free(&r);
}

static void test_update_sends_changes_and_prints_fields_needing_restart(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "update", "vm1", "--memory", "4G", "--no-autostart", "--label", "owner=dev");
    struct json_object *req = last_request(h, "vm-update"), *args = arguments_of(req), *changes;

    assert_exit(&r, 0);
    assert_string_equal(string_member(args, "name"), "vm1");
    assert_true(json_object_object_get_ex(args, "changes", &changes));
    assert_int_equal(json_object_object_length(changes), 3);
    assert_string_equal(string_member(changes, "memory"), "4G");
    assert_false(json_object_get_boolean(json_object_object_get(changes, "autostart")));
    assert_string_equal(string_member(json_object_object_get(changes, "labels"), "owner"), "dev");
    assert_string_equal(r.out, "vm1 updated\nrestart needed: memory, vcpus\n");
    json_object_put(req);
    result_free(&r);
}

static void test_list_prints_a_table_of_vms(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "list");

    assert_exit(&r, 0);
    assert_string_equal(r.out,
                        "NAME    STATE    REASON   PID   VCPUS  MEMORY(MiB)  AUTOSTART\n"
                        "vm1     running  user     1234  2      1024         yes\n"
                        "web-02  stopped  defined  -     4      4096         no\n");
    assert_string_equal(r.err, "");
    result_free(&r);
}

static void test_list_with_json_prints_the_return_value(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "--json", "list");
    struct json_object *v;

    assert_exit(&r, 0);
    v = parse_output(&r);
    assert_true(json_object_is_type(v, json_type_array));
    assert_int_equal(json_object_array_length(v), 2);
    assert_string_equal(string_member(json_object_array_get_idx(v, 1), "name"), "web-02");
    json_object_put(v);
    result_free(&r);
}

static void test_info_lists_definition_and_runtime_with_control_characters_escaped(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "info", "vm1");
    struct json_object *req = last_request(h, "query-vm");

    assert_exit(&r, 0);
    assert_string_equal(string_member(arguments_of(req), "name"), "vm1");
    assert_string_equal(r.out,
                        "name:                vm1\n"
                        "vcpus:               2\n"
                        "memory:              1024\n"
                        "boot:                network, disk\n"
                        "autostart:           yes\n"
                        "labels.owner:        ops\n"
                        "labels.bad:          a\\x1b[31mb\n"
                        "state:               crashed\n"
                        "reason:              crash\n"
                        "exit-status.signal:  9\n"
                        "log-tail:            line one\n"
                        "                     line two\n");
    json_object_put(req);
    result_free(&r);
}

static void test_info_reads_a_reply_line_of_several_mebibytes(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "--json", "info", "big");
    struct json_object *v, *def;

    assert_exit(&r, 0);
    v = parse_output(&r);
    assert_true(json_object_object_get_ex(v, "definition", &def));
    assert_int_equal(strlen(string_member(def, "cmdline")), BIG_CMDLINE_BYTES);
    json_object_put(v);
    result_free(&r);
}

static void test_start_passes_over_events_and_other_replies(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "start", "vm1");
    struct json_object *req = last_request(h, "vm-start"), *args = arguments_of(req);

    assert_exit(&r, 0);
    assert_string_equal(string_member(args, "name"), "vm1");
    assert_false(json_object_get_boolean(json_object_object_get(args, "paused")));
    assert_string_equal(r.out, "vm1 started\n");
    json_object_put(req);
    result_free(&r);
}

static void test_start_paused_asks_for_a_paused_vm(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "start", "--paused", "vm1");
    struct json_object *req = last_request(h, "vm-start");

    assert_exit(&r, 0);
    assert_true(json_object_get_boolean(json_object_object_get(arguments_of(req), "paused")));
    assert_string_equal(r.out, "vm1 started, paused\n");
    json_object_put(req);
    result_free(&r);
}

static void test_a_refused_command_exits_1_with_class_and_desc(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "destroy", "vm1");

    assert_exit(&r, 1);
    assert_string_equal(r.err, "agentctl: InvalidState: vm1 is not running\n");
    assert_string_equal(r.out, "");
    result_free(&r);
}

static void test_shutdown_sends_timeout_and_force_and_reports_forced(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "shutdown", "vm1", "--timeout", "5", "--force");
    struct json_object *req = last_request(h, "vm-shutdown"), *args = arguments_of(req), *t;

    assert_exit(&r, 0);
    assert_string_equal(string_member(args, "name"), "vm1");
    assert_true(json_object_object_get_ex(args, "timeout", &t));
    assert_true(json_object_is_type(t, json_type_int));
    assert_int_equal(json_object_get_int(t), 5);
    assert_true(json_object_get_boolean(json_object_object_get(args, "force")));
    assert_non_null(strstr(r.out, "forced"));
    json_object_put(req);
    result_free(&r);
}

static void test_shutdown_without_flags_leaves_the_timeout_to_the_agent(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "shutdown", "vm1");
    struct json_object *req = last_request(h, "vm-shutdown"), *args = arguments_of(req);

    assert_exit(&r, 0);
    assert_false(json_object_object_get_ex(args, "timeout", NULL));
    assert_false(json_object_get_boolean(json_object_object_get(args, "force")));
    json_object_put(req);
    result_free(&r);
}

static void test_qmp_passes_command_and_arguments(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "qmp", "vm1", "query-status", "{\"verbose\": true, \"ids\": [1, 2]}");
    struct json_object *req = last_request(h, "vm-qmp"), *args = arguments_of(req), *inner, *v;

    assert_exit(&r, 0);
    assert_string_equal(string_member(args, "name"), "vm1");
    assert_string_equal(string_member(args, "command"), "query-status");
    assert_true(json_object_object_get_ex(args, "arguments", &inner));
    assert_true(json_object_get_boolean(json_object_object_get(inner, "verbose")));
    assert_int_equal(json_object_array_length(json_object_object_get(inner, "ids")), 2);
    v = parse_output(&r);
    assert_string_equal(string_member(v, "status"), "running");
    json_object_put(v);
    json_object_put(req);
    result_free(&r);
}

static void test_qmp_without_arguments_sends_none(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "qmp", "vm1", "query-status");
    struct json_object *req = last_request(h, "vm-qmp");

    assert_exit(&r, 0);
    assert_false(json_object_object_get_ex(arguments_of(req), "arguments", NULL));
    json_object_put(req);
    result_free(&r);
}

static void test_disk_attach_sends_a_json_disk_or_the_short_form(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "disk-attach", "vm1", "{\"size\": \"20G\", \"bus\": \"virtio-scsi\"}");
    struct json_object *req = last_request(h, "disk-attach"), *disk;

    assert_exit(&r, 0);
    assert_true(json_object_object_get_ex(arguments_of(req), "disk", &disk));
    assert_string_equal(string_member(disk, "bus"), "virtio-scsi");
    assert_non_null(strstr(r.out, "disk-sdb"));
    json_object_put(req);
    result_free(&r);
    r = RUN(h, "disk-attach", "vm1", "nfs1:20G:raw");
    req = last_request(h, "disk-attach");
    assert_exit(&r, 0);
    assert_string_equal(string_member(arguments_of(req), "disk"), "nfs1:20G:raw");
    json_object_put(req);
    result_free(&r);
}

static void test_nic_detach_and_vcpus_send_their_values(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "nic-detach", "vm1", "52:54:00:00:00:01", "--timeout", "90");
    struct json_object *req = last_request(h, "nic-detach");

    assert_exit(&r, 0);
    assert_string_equal(string_member(arguments_of(req), "mac"), "52:54:00:00:00:01");
    assert_int_equal(json_object_get_int(json_object_object_get(arguments_of(req), "timeout")), 90);
    json_object_put(req);
    result_free(&r);
    r = RUN(h, "vcpus", "vm1", "4");
    req = last_request(h, "vcpus-set");
    assert_exit(&r, 0);
    assert_int_equal(json_object_get_int(json_object_object_get(arguments_of(req), "vcpus")), 4);
    json_object_put(req);
    result_free(&r);
}

/* Never on the command line, where every user sees it in /proc. */
static void test_vnc_password_is_read_from_standard_input(void **state)
{
    harness *h = *state;
    char *path = write_file(h, "s3cret\n");
    run_result r = run_with(h, &(run_opts){ .stdin_path = path }, (const char *const[]){ "vnc-password", "vm1", NULL });
    struct json_object *req = last_request(h, "vnc-password");

    assert_exit(&r, 0);
    assert_string_equal(string_member(arguments_of(req), "password"), "s3cret");
    json_object_put(req);
    result_free(&r);
    free(path);
    path = write_file(h, "muchtoolong\n");
    r = run_with(h, &(run_opts){ .stdin_path = path }, (const char *const[]){ "vnc-password", "vm1", NULL });
    assert_exit(&r, 2);
    assert_non_null(strstr(r.err, "longer than 8"));
    result_free(&r);
    free(path);
}

static void test_host_prints_a_summary(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "host");

    assert_exit(&r, 0);
    assert_string_equal(r.out,
                        "hostname:     hv01\n"
                        "cpus:         2\n"
                        "memory:       24036 MiB total, 22010 MiB available\n"
                        "accelerator:  tcg (kvm available)\n"
                        "vms:          3 defined, 2 running\n"
                        "allocated:    3 vcpus, 1024 MiB (VMs with a QEMU process)\n"
                        "defined:      5 vcpus, 2048 MiB (all VMs)\n"
                        "bridges:      br0 (mtu 1500, up), br9k (mtu 9000, down)\n");
    result_free(&r);
}

static void test_sriov_lists_vfs_or_sets_their_number(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "sriov", "0000:03:00.0");
    struct json_object *req;

    assert_exit(&r, 0);
    assert_string_equal(r.out, "0000:03:00.0 enp3s0f0 2 VFs\n"
                               "  vf 0 0000:03:10.0 igbvf\n"
                               "  vf 1 0000:03:10.2 -\n");
    result_free(&r);
    r = RUN(h, "sriov", "0000:03:00.0", "0");
    assert_exit(&r, 0);
    req = last_request(h, "host-sriov-set");
    assert_int_equal(json_object_get_int(json_object_object_get(arguments_of(req), "numvfs")), 0);
    json_object_put(req);
    result_free(&r);
    r = RUN(h, "sriov", "0000:03:00.0", "four");
    assert_exit(&r, 2);
    result_free(&r);
}

static void test_version_prints_agent_and_qemu(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "version");

    assert_exit(&r, 0);
    assert_string_equal(r.out,
                        "agentd:   0.1.0\n"
                        "package:  agentd 0.1.0\n"
                        "qemu:     qemu-system-x86_64 7.2.22\n");
    result_free(&r);
}

static void test_name_verbs_send_their_command(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "reset", "vm1");
    struct json_object *req = last_request(h, "vm-reset");

    assert_exit(&r, 0);
    assert_string_equal(string_member(arguments_of(req), "name"), "vm1");
    assert_string_equal(r.out, "vm1 reset\n");
    json_object_put(req);
    result_free(&r);
}

/* FILE is the agent's, so a relative one is made absolute where the user is. */
static void test_save_sends_an_absolute_file_and_restore_its_timeout(void **state)
{
    harness *h = *state;
    char cwd[PATH_MAX], want[PATH_MAX + 16];
    run_result r = RUN(h, "save", "vm1", "vm1.state");
    struct json_object *req = last_request(h, "vm-save");

    assert_exit(&r, 0);
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    snprintf(want, sizeof(want), "%s/vm1.state", cwd);
    assert_string_equal(string_member(arguments_of(req), "name"), "vm1");
    assert_string_equal(string_member(arguments_of(req), "file"), want);
    assert_null(json_object_object_get(arguments_of(req), "timeout"));
    json_object_put(req);
    result_free(&r);
    r = RUN(h, "save", "vm1", "/srv/saves/vm1", "--timeout", "600");
    req = last_request(h, "vm-save");
    assert_exit(&r, 0);
    assert_string_equal(string_member(arguments_of(req), "file"), "/srv/saves/vm1");
    assert_int_equal(json_object_get_int(json_object_object_get(arguments_of(req), "timeout")), 600);
    assert_string_equal(r.out, "vm1 saved to /srv/saves/vm1 (4096 bytes)\n");
    json_object_put(req);
    result_free(&r);
    r = RUN(h, "restore", "vm1", "--timeout", "90");
    req = last_request(h, "vm-restore");
    assert_exit(&r, 0);
    assert_int_equal(json_object_get_int(json_object_object_get(arguments_of(req), "timeout")), 90);
    assert_string_equal(r.out, "vm1 restored\n");
    json_object_put(req);
    result_free(&r);
    r = RUN(h, "save-discard", "vm1");
    req = last_request(h, "vm-save-discard");
    assert_exit(&r, 0);
    assert_string_equal(string_member(arguments_of(req), "name"), "vm1");
    json_object_put(req);
    result_free(&r);
}

static void test_snapshot_verbs_send_the_snapshot_and_say_what_was_done(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "snapshot", "vm1", "s1");
    struct json_object *req = last_request(h, "snapshot-create");

    assert_exit(&r, 0);
    assert_string_equal(string_member(arguments_of(req), "name"), "vm1");
    assert_string_equal(string_member(arguments_of(req), "snapshot"), "s1");
    assert_string_equal(r.out, "vm1: created snapshot s1\n");
    json_object_put(req);
    result_free(&r);
    r = RUN(h, "snapshot-revert", "vm1", "s1");
    assert_exit(&r, 0);
    assert_string_equal(r.out, "vm1: reverted to snapshot s1\ndropped with it: s2\n");
    result_free(&r);
    r = RUN(h, "snapshots", "vm1");
    assert_exit(&r, 0);
    assert_string_equal(r.out, "NAME  CREATED(UTC)         DISKS\ns1    2026-12-04 02:42:01  sda,sdb\n");
    result_free(&r);
}

static void test_an_unknown_command_reply_exits_1(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "suspend", "vm1");   /* not in the fake's table */

    assert_exit(&r, 1);
    assert_string_equal(r.err, "agentctl: CommandNotFound: no such command\n");
    result_free(&r);
}

/* Each argv is wrong before any connection could help. */
static const char *const usage_errors[][8] = {
    { "frobnicate" },
    { "start" },
    { "start", "vm1", "vm2" },
    { "start", "--bogus", "vm1" },
    { "info" },
    { "list", "extra" },
    { "define" },
    { "define", "--vcpus", "2" },
    { "define", "--name", "vm1", "--label", "novalue" },
    { "define", "--name", "vm1", "file.json" },
    { "define", "/nonexistent/vm.json" },
    { "update", "vm1" },
    { "update", "vm1", "--name", "other" },
    { "shutdown", "vm1", "--timeout", "soon" },
    { "shutdown", "vm1", "--timeout" },
    { "events", "--after", "-1" },
    { "qmp", "vm1" },
    { "qmp", "vm1", "query-status", "[1]" },
    { "qmp", "vm1", "query-status", "{\"a\": " },
    { "--timeout", "0", "list" },
    { "--timeout", "x", "list" },
    { "--nope", "list" },
    { "undefine" },
    { "undefine", "vm1", "--purge", "--keep-disks" },
    { "migrate", "vm1" },
    { "migrate", "vm1", "/run/b.sock", "--bogus" },
    { "migrate-confirm", "vm1" },
    { "migrate-confirm", "vm1", "--completed", "--failed" },
    { "migrate-cancel" },
    { "save", "vm1" },
    { "save", "vm1", "/x", "extra" },
    { "save", "vm1", "/x", "--timeout" },
    { "restore" },
    { "save-discard" },
    { "snapshot", "vm1" },
    { "snapshot", "vm1", "s1", "s2" },
    { "snapshot-revert", "vm1" },
    { "snapshots" },
    { "undefine", "vm1", "--bogus" },
    { "pools", "extra" },
    { "pool-define", "secondary" },
    { "pool-define", "secondary", "dir:///x", "--bogus" },
    { "pool-undefine" },
    { "pool-start" },
    { "pool-stop", "a", "b" },
    { "volumes" },
    { "vol-create", "default" },
    { "vol-create", "default", "data1.qcow2" },
    { "vol-create", "default", "data1.qcow2", "--size" },
    { "vol-create", "default", "o.qcow2", "--backing-volume", "m", "--backing-path", "/x" },
    { "vol-create", "default", "o.qcow2", "--size", "1G", "--backing-pool", "secondary" },
    { "vol-create", "default", "o.qcow2", "--size", "1G", "--backing-format", "raw" },
    { "vol-delete" },
    { "vol-delete", "default" },
    { "vol-delete", "default", "data1.qcow2", "--path", "/var/lib/agentd/images/data1.qcow2" },
    { "vol-delete", "--path" },
    { "master-create", "vm1" },
    { "master-create", "vm1", "rhel9", "--bogus" },
    { "clone", "rhel9" },
    { "clone", "rhel9", "vm2", "--os", "rhels9" },
    { "masters", "extra" },
    { "master-delete" },
    { "cancel" },
    { "cancel", "vm1", "vm2" },
};

static void test_usage_errors_exit_2_without_connecting(void **state)
{
    harness *h = *state;

    for (size_t i = 0; i < sizeof(usage_errors) / sizeof(usage_errors[0]); i++) {
        run_result r = run_with(h, &(run_opts){ 0 }, usage_errors[i]);
        if (r.status != 2)
            fail_msg("case %zu (%s %s): exit %d, stderr: %s", i, usage_errors[i][0],
                     usage_errors[i][1] ? usage_errors[i][1] : "", r.status, r.err);
        assert_non_null(strstr(r.err, "usage: agentctl"));
        assert_string_equal(r.out, "");
        result_free(&r);
    }
    assert_int_equal(fake_count(&h->fake, &h->fake.connections), 0);
}

/* The agent refuses request lines over 1 MiB, so agentctl does not send them. */
static void test_a_request_over_1_MiB_exits_2_without_connecting(void **state)
{
    harness *h = *state;
    size_t n = 2u * 1024 * 1024;
    char *text = malloc(n + 64), *path;
    run_result r;

    snprintf(text, 64, "{\"name\": \"vm1\", \"cmdline\": \"");
    memset(text + strlen(text), 'x', n);
    strcpy(text + strlen("{\"name\": \"vm1\", \"cmdline\": \"") + n, "\"}");
    path = write_file(h, text);
    r = RUN(h, "define", path);
    assert_exit(&r, 2);
    assert_non_null(strstr(r.err, "the agent accepts 1048576"));
    assert_int_equal(fake_count(&h->fake, &h->fake.connections), 0);
    free(path);
    free(text);
    result_free(&r);
}

static void test_an_unknown_verb_exits_2(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "frobnicate", "vm1");

    assert_exit(&r, 2);
    assert_non_null(strstr(r.err, "unknown verb 'frobnicate'"));
    assert_int_equal(fake_count(&h->fake, &h->fake.connections), 0);
    result_free(&r);
}

static void test_start_without_a_name_exits_2(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "start");

    assert_exit(&r, 2);
    assert_non_null(strstr(r.err, "start NAME"));
    assert_int_equal(fake_count(&h->fake, &h->fake.connections), 0);
    result_free(&r);
}

/* The migrate verbs' own usage errors, not an unknown verb's. */
static void test_migrate_confirm_wants_one_outcome_and_migrate_a_destination(void **state)
{
    harness *h = *state;
    run_result none = RUN(h, "migrate-confirm", "vm1");
    run_result both = RUN(h, "migrate-confirm", "vm1", "--completed", "--failed");
    run_result nodest = RUN(h, "migrate", "vm1");

    assert_exit(&none, 2);
    assert_non_null(strstr(none.err, "migrate-confirm: give one of --completed and --failed"));
    assert_exit(&both, 2);
    assert_non_null(strstr(both.err, "migrate-confirm: give one of --completed and --failed"));
    assert_exit(&nodest, 2);
    assert_non_null(strstr(nodest.err, "agentctl: migrate: missing argument"));
    assert_int_equal(fake_count(&h->fake, &h->fake.connections), 0);
    result_free(&none);
    result_free(&both);
    result_free(&nodest);
}

static void test_help_prints_to_stdout_and_exits_0(void **state)
{
    harness *h = *state;
    run_result all = RUN(h, "--help");
    run_result verb = RUN(h, "shutdown", "--help");
    run_result word = RUN(h, "help", "events");

    assert_exit(&all, 0);
    assert_non_null(strstr(all.out, "  qmp             NAME COMMAND [JSON-ARGS]\n"));
    assert_non_null(strstr(all.out, "  migrate-confirm NAME --completed|--failed\n"));
    assert_exit(&verb, 0);
    assert_non_null(strstr(verb.out, "usage: agentctl [OPTIONS] shutdown NAME [--timeout SECONDS] [--force]"));
    assert_exit(&word, 0);
    assert_non_null(strstr(word.out, "--after SEQ"));
    assert_int_equal(fake_count(&h->fake, &h->fake.connections), 0);
    result_free(&all);
    result_free(&verb);
    result_free(&word);
}

static void test_a_missing_socket_exits_3_naming_it(void **state)
{
    harness *h = *state;
    char path[192];
    run_result r;

    snprintf(path, sizeof(path), "%s/nothing-here.sock", h->dir);
    r = run_with(h, &(run_opts){ .no_socket = true },
                 (const char *const[]){ "-s", path, "list", NULL });
    assert_exit(&r, 3);
    assert_non_null(strstr(r.err, path));
    assert_non_null(strstr(r.err, "No such file or directory"));
    result_free(&r);
}

static void test_the_socket_comes_from_AGENTD_SOCKET(void **state)
{
    harness *h = *state;
    run_result r = run_with(h, &(run_opts){ .no_socket = true, .env_socket = h->path },
                            (const char *const[]){ "version", NULL });

    assert_exit(&r, 0);
    assert_int_equal(fake_count(&h->fake, &h->fake.connections), 1);
    result_free(&r);
}

static void test_invalid_json_from_the_agent_exits_3(void **state)
{
    harness *h = *state;
    run_result r;

    h->fake.mode = MODE_GARBAGE;
    r = RUN(h, "list");
    assert_exit(&r, 3);
    assert_non_null(strstr(r.err, "invalid JSON"));
    assert_non_null(strstr(r.err, h->path));
    result_free(&r);
}

static void test_a_silent_agent_times_out_with_exit_3(void **state)
{
    harness *h = *state;
    struct timespec t0, t1;
    run_result r;

    h->fake.mode = MODE_SILENT;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    r = RUN(h, "--timeout", "1", "start", "vm1");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_exit(&r, 3);
    assert_non_null(strstr(r.err, "no answer to start within 1 s"));
    assert_true(t1.tv_sec - t0.tv_sec < 10);
    result_free(&r);
}

static void test_a_socket_without_a_qmp_greeting_exits_3(void **state)
{
    harness *h = *state;
    run_result r;

    h->fake.mode = MODE_BAD_GREETING;
    r = RUN(h, "list");
    assert_exit(&r, 3);
    assert_non_null(strstr(r.err, "no QMP greeting"));
    result_free(&r);
}

static void test_events_prints_each_event_until_the_agent_hangs_up(void **state)
{
    harness *h = *state;
    run_result r;

    h->fake.mode = MODE_EVENTS_CLOSE;
    r = RUN(h, "events");
    assert_exit(&r, 3);
    assert_string_equal(r.out,
                        "17 2025-11-22T01:30:00.012Z VM_STATE vm=vm1 state=running previous=starting"
                        " reason=user pid=1234\n"
                        "18 2025-11-22T01:30:00.250Z VM_UNDEFINED vm=vm1 state=stopped"
                        " reason=\"user guest\"\n");
    assert_non_null(strstr(r.err, "closed the connection"));
    result_free(&r);
}

static void test_events_with_json_prints_lines_as_received(void **state)
{
    harness *h = *state;
    run_result r;
    char *first;

    h->fake.mode = MODE_EVENTS_CLOSE;
    r = RUN(h, "--json", "events");
    assert_exit(&r, 3);
    assert_true(asprintf(&first, "%s\n", event_started) > 0);
    assert_memory_equal(r.out, first, strlen(first));
    free(first);
    result_free(&r);
}

/* The fake sends live events 6 and 7 before its reply (which replays 5 and 6),
 * then 8, then hangs up: each number must be printed once, in order. */
static void test_events_after_replays_then_follows_without_repeats(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "events", "--after", "4");
    struct json_object *req = last_request(h, "query-events");

    assert_exit(&r, 3);
    assert_int_equal(json_object_get_int(json_object_object_get(arguments_of(req), "after")), 4);
    assert_string_equal(r.out,
                        "5 2025-11-22T01:30:00.000Z VM_DEFINED vm=vm1 created=true\n"
                        "6 2025-11-22T01:30:00.000Z VM_STATE vm=vm1\n"
                        "7 2025-11-22T01:30:00.250Z VM_STATE vm=vm2 state=stopped reason=\"user guest\"\n"
                        "8 2025-11-22T01:30:00.250Z VM_STATE vm=vm3 state=stopped reason=\"user guest\"\n");
    assert_non_null(strstr(r.err, "some events after 4 were already dropped"));
    json_object_put(req);
    result_free(&r);
}

static void test_events_stops_on_sigint_with_exit_0(void **state)
{
    harness *h = *state;
    run_result r;

    h->fake.mode = MODE_EVENTS_STAY;
    r = run_with(h, &(run_opts){ .signal_when_negotiated = SIGINT },
                 (const char *const[]){ "events", NULL });
    assert_exit(&r, 0);
    assert_string_equal(r.err, "");
    result_free(&r);
}

/* ---- storage, masters and jobs ---- */

typedef struct request_case {
    const char *argv[16];
    const char *command;
    const char *args;   /* the exact "arguments"; NULL: none sent */
    int status;
} request_case;

static const request_case request_cases[] = {
    { { "undefine", "vm1" }, "vm-undefine",
      "{\"name\": \"vm1\", \"purge\": false, \"force\": false, \"keep-disks\": false}", 0 },
    { { "undefine", "--force", "vm1", "--keep-disks" }, "vm-undefine",
      "{\"name\": \"vm1\", \"purge\": false, \"force\": true, \"keep-disks\": true}", 0 },
    { { "pools" }, "query-pools", NULL, 0 },
    { { "pool-define", "secondary", "nfs://10.0.0.1/install/vms/" }, "pool-define",
      "{\"definition\": {\"name\": \"secondary\", \"location\": \"nfs://10.0.0.1/install/vms/\"}}", 0 },
    { { "pool-define", "--no-autostart", "fast", "phy:/dev/sdb1" }, "pool-define",
      "{\"definition\": {\"name\": \"fast\", \"location\": \"phy:/dev/sdb1\", \"autostart\": false}}", 0 },
    { { "pool-undefine", "secondary" }, "pool-undefine", "{\"name\": \"secondary\"}", 1 },
    { { "pool-start", "secondary" }, "pool-start", "{\"name\": \"secondary\"}", 0 },
    { { "pool-stop", "secondary" }, "pool-stop", "{\"name\": \"secondary\"}", 0 },
    { { "volumes", "default" }, "query-volumes", "{\"pool\": \"default\"}", 0 },
    { { "vol-create", "default", "data1.qcow2", "--size", "20G" }, "vol-create",
      "{\"pool\": \"default\", \"name\": \"data1.qcow2\", \"size\": \"20G\"}", 0 },
    { { "vol-create", "default", "data2.raw", "--size", "1073741824", "--format", "raw" }, "vol-create",
      "{\"pool\": \"default\", \"name\": \"data2.raw\", \"size\": 1073741824, \"format\": \"raw\"}", 0 },
    { { "vol-create", "default", "vm9.sda.qcow2", "--backing-volume", "rhel9.sda.qcow2",
        "--backing-pool", "secondary", "--backing-format", "qcow2" }, "vol-create",
      "{\"pool\": \"default\", \"name\": \"vm9.sda.qcow2\", \"backing-volume\": \"rhel9.sda.qcow2\","
      " \"backing-pool\": \"secondary\", \"backing-format\": \"qcow2\"}", 0 },
    { { "vol-create", "default", "o.qcow2", "--backing-path", "/var/lib/agentd/images/base.qcow2",
        "--size", "40G" }, "vol-create",
      "{\"pool\": \"default\", \"name\": \"o.qcow2\", \"backing-path\": \"/var/lib/agentd/images/base.qcow2\","
      " \"size\": \"40G\"}", 0 },
    { { "vol-delete", "default", "data1.qcow2" }, "vol-delete",
      "{\"pool\": \"default\", \"name\": \"data1.qcow2\"}", 0 },
    { { "vol-info", "default", "vm1.sda.qcow2" }, "query-volume",
      "{\"pool\": \"default\", \"name\": \"vm1.sda.qcow2\"}", 0 },
    { { "vol-check", "--path", "/i/vm1.sda.qcow2" }, "vol-check", "{\"path\": \"/i/vm1.sda.qcow2\"}", 0 },
    { { "vol-delete", "--path", "/var/lib/agentd/images/data1.qcow2" }, "vol-delete",
      "{\"path\": \"/var/lib/agentd/images/data1.qcow2\"}", 0 },
    { { "master-create", "vm1", "rhel9" }, "master-create",
      "{\"vm\": \"vm1\", \"master\": \"rhel9\", \"detached\": false}", 0 },
    { { "master-create", "vm1", "rhel9", "--detached", "--pool", "secondary", "--os", "rhels9",
        "--arch", "ppc64le", "--profile", "compute" }, "master-create",
      "{\"vm\": \"vm1\", \"master\": \"rhel9\", \"detached\": true, \"pool\": \"secondary\","
      " \"os\": \"rhels9\", \"arch\": \"ppc64le\", \"profile\": \"compute\"}", 0 },
    { { "clone", "rhel9", "vm2" }, "vm-clone",
      "{\"master\": \"rhel9\", \"name\": \"vm2\", \"detached\": false}", 0 },
    { { "clone", "--detached", "--pool", "secondary", "rhel9", "vm2" }, "vm-clone",
      "{\"master\": \"rhel9\", \"name\": \"vm2\", \"detached\": true, \"pool\": \"secondary\"}", 0 },
    { { "masters" }, "query-masters", NULL, 0 },
    { { "master-delete", "rhel9" }, "master-delete", "{\"name\": \"rhel9\"}", 0 },
    { { "cancel", "vm2" }, "job-cancel", "{\"name\": \"vm2\"}", 0 },
};

static void assert_request_case(harness *h, const request_case *c, size_t i)
{
    run_result r = run_with(h, &(run_opts){ 0 }, c->argv);
    struct json_object *req = find_request(&h->fake, NULL), *args = NULL, *want;

    if (r.status != c->status)
        fail_msg("case %zu (%s): exit %d, stderr: %s", i, c->argv[0], r.status, r.err);
    if (!req || strcmp(string_member(req, "execute"), c->command) != 0)
        fail_msg("case %zu (%s): the last request is %s, not %s", i, c->argv[0],
                 req ? json_object_to_json_string(req) : "none", c->command);
    json_object_object_get_ex(req, "arguments", &args);
    want = c->args ? json_tokener_parse(c->args) : NULL;
    if (c->args ? !json_object_equal(args, want) : args != NULL)
        fail_msg("case %zu (%s): arguments %s, wanted %s", i, c->argv[0],
                 args ? json_object_to_json_string(args) : "none", c->args ? c->args : "none");
    json_object_put(want);
    json_object_put(req);
    result_free(&r);
}

/* The last request of each run is the verb's own, with exactly the
 * documented members: a job-cancel after a clone would show here too. */
static void test_storage_and_master_verbs_send_the_documented_requests(void **state)
{
    harness *h = *state;

    for (size_t i = 0; i < sizeof(request_cases) / sizeof(request_cases[0]); i++)
        assert_request_case(h, &request_cases[i], i);
}

static void test_undefine_purge_prints_the_disks_deleted_and_kept(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "undefine", "vm1", "--purge");

    assert_exit(&r, 0);
    assert_string_equal(r.out,
                        "vm1 undefined\n"
                        "deleted: /var/lib/agentd/images/vm1.sda.qcow2\n"
                        "kept:    /var/lib/agentd/images/vm1.sdb.qcow2: it is the backing file of"
                        " vm3.sda.qcow2\n");
    assert_string_equal(r.err, "");
    result_free(&r);
}

/* A pool an agent is still starting says so. */
static void test_pools_prints_a_table_of_pools(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "pools");

    assert_exit(&r, 0);
    assert_string_equal(r.out,
                        "NAME       KIND  ACTIVE     AUTOSTART  LOCATION\n"
                        "default    dir   yes        yes        dir:///var/lib/agentd/images\n"
                        "secondary  nfs   no (busy)  yes        nfs://10.0.0.1/install/vms/\n");
    result_free(&r);
}

static void test_volumes_prints_sizes_people_read_and_why_a_file_could_not_be_opened(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "volumes", "default");

    assert_exit(&r, 0);
    assert_string_equal(r.out,
                        "NAME             FORMAT  VIRTUAL  ALLOCATED  USED-BY   MASTER\n"
                        "rhel9.sda.qcow2  qcow2   20G      1.0G       -         rhel9\n"
                        "vm1.sda.qcow2    qcow2   20G      192K       vm1       -\n"
                        "shared.raw       raw     1.5G     512B       vm2, vm3  -\n"
                        "lost.qcow2       qcow2   -        -          -         -\n"
                        "lost.qcow2: its backing file /srv/base.qcow2 is outside the pools\n");
    result_free(&r);
}

static void test_masters_prints_the_vmmaster_table(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "masters");

    assert_exit(&r, 0);
    assert_string_equal(r.out,
                        "NAME    OS        ARCH    PROFILE  STORAGE                       NICS  CREATED"
                        "               ORIGINATOR\n"
                        "rhel9   rhels9    x86_64  compute  dir:///var/lib/agentd/images  -     "
                        "2026-11-22T05:00:00Z  root\n"
                        "sles15  sles15.5  x86_64  -        nfs://10.0.0.1/install/vms/   br0   "
                        "2026-11-23T09:30:00Z  ops\n");
    result_free(&r);
}

static const char *const one_line_outputs[][2][8] = {
    { { "pool-define", "secondary", "nfs://10.0.0.1/install/vms/" }, { "pool secondary defined\n" } },
    { { "pool-start", "secondary" }, { "pool secondary started\npath: /var/lib/agentd/mnt/secondary\n" } },
    { { "pool-stop", "secondary" }, { "pool secondary stopped\n" } },
    { { "vol-create", "default", "data1.qcow2", "--size", "20G" },
      { "/var/lib/agentd/images/data1.qcow2 created, 20G\n" } },
    { { "vol-delete", "default", "data1.qcow2" }, { "data1.qcow2 deleted\n" } },
    { { "vol-delete", "--path", "/var/lib/agentd/images/data1.qcow2" },
      { "/var/lib/agentd/images/data1.qcow2 deleted\n" } },
    { { "master-delete", "rhel9" }, { "master rhel9 deleted\n" } },
    { { "vol-check", "default", "vm1.sda.qcow2" },
      { "vm1.sda.qcow2: 2 leaked clusters (harmless, reclaimable), 0 corruptions\nfirst: cluster 5 is leaked\n" } },
    { { "vol-info", "default", "vm1.sda.qcow2" },
      { "CHAIN             FORMAT  VIRTUAL  ALLOCATED  CLUSTER  FLAGS\n"
        "/i/vm1.sda.qcow2  qcow2   4G       16K        65536    v3,dirty\n"
        "/i/base.raw       raw     4G       4K         -        -\n" } },
    { { "cancel", "vm2" }, { "vm2 job cancel requested\n" } },
    { { "undefine", "vm1" }, { "vm1 undefined\n" } },
};

static void test_pool_volume_and_master_verbs_say_what_was_done(void **state)
{
    harness *h = *state;

    for (size_t i = 0; i < sizeof(one_line_outputs) / sizeof(one_line_outputs[0]); i++) {
        run_result r = run_with(h, &(run_opts){ 0 }, one_line_outputs[i][0]);
        if (r.status != 0 || strcmp(r.out, one_line_outputs[i][1][0]) != 0)
            fail_msg("case %zu (%s): exit %d, stdout '%s', wanted '%s'", i, one_line_outputs[i][0][0],
                     r.status, r.out, one_line_outputs[i][1][0]);
        result_free(&r);
    }
}

static void test_an_agent_error_on_a_pool_exits_1_with_its_desc(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "pool-undefine", "secondary");

    assert_exit(&r, 1);
    assert_string_equal(r.err, "agentctl: InvalidState: pool secondary holds disks of vm1, vm2\n");
    assert_string_equal(r.out, "");
    result_free(&r);
}

static void test_clone_prints_its_progress_messages_and_no_bar_when_stderr_is_not_a_tty(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "clone", "--detached", "rhel9", "vm2");

    assert_exit(&r, 0);
    assert_string_equal(r.out,
                        "Cloning rhel9.sda.qcow2 (currently is 1050 MB and has a capacity of 4096MB)\n"
                        "Cloning rhel9.sdb.qcow2 (currently is 0 MB and has a capacity of 1024MB)\n"
                        "vm2 cloned from rhel9 (detached: full copies of its disks)\n"
                        "uuid: 0d5e0c6e-0000-4000-8000-000000000002\n");
    assert_string_equal(r.err, "");
    result_free(&r);
}

static void test_master_create_follows_the_source_vm_and_says_what_became_of_it(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "master-create", "vm1", "rhel9");

    assert_exit(&r, 0);
    assert_string_equal(r.out,
                        "Cloning vm1.sda.qcow2 (currently is 1050 MB and has a capacity of 4096MB)\n"
                        "master rhel9 created from vm1\n"
                        "disk sda: /var/lib/agentd/images/rhel9.sda.qcow2\n"
                        "vm1 now runs on overlays of the master's disks\n");
    assert_string_equal(r.err, "");
    result_free(&r);
}

/* On a terminal the line discipline turns "\n" into "\r\n". */
static void test_clone_draws_a_progress_bar_when_stderr_is_a_tty(void **state)
{
    harness *h = *state;
    run_result r = run_with(h, &(run_opts){ .stderr_tty = true },
                            (const char *const[]){ "clone", "rhel9", "vm2", NULL });

    assert_exit(&r, 0);
    assert_non_null(strstr(r.out, "Cloning rhel9.sdb.qcow2 (currently is 0 MB"));
    assert_non_null(strstr(r.err, "\r[..............................]   0%  0B/4G  vm2.sda.qcow2"));
    assert_non_null(strstr(r.err, "\r[###############...............]  50%  2G/4G  vm2.sda.qcow2"));
    assert_non_null(strstr(r.err, "\r[##############################] 100%  1G/1G  vm2.sdb.qcow2"));
    assert_null(strstr(r.err, "vm1.sda.qcow2"));
    assert_null(strstr(r.err, "gold.sda.qcow2"));
    assert_true(r.err_len >= 2 && strcmp(r.err + r.err_len - 2, "\r\n") == 0);
    result_free(&r);
}

static void test_clone_with_json_prints_the_reply_alone_on_stdout(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "--json", "clone", "rhel9", "vm2");
    struct json_object *v;

    assert_exit(&r, 0);
    v = parse_output(&r);
    assert_string_equal(string_member(v, "uuid"), "0d5e0c6e-0000-4000-8000-000000000002");
    assert_non_null(strstr(r.err, "Cloning rhel9.sda.qcow2 (currently is 1050 MB"));
    json_object_put(v);
    result_free(&r);
}

static void test_ctrl_c_during_a_clone_cancels_it_and_waits_for_the_jobs_reply(void **state)
{
    harness *h = *state;
    run_result r = run_with(h, &(run_opts){ .sigint_after = { "vm-clone" } },
                            (const char *const[]){ "clone", "rhel9", "slow", NULL });
    struct json_object *req = last_request(h, "job-cancel"), *want;

    assert_exit(&r, 1);
    want = json_tokener_parse("{\"name\": \"slow\"}");
    assert_true(json_object_equal(arguments_of(req), want));
    assert_string_equal(r.out, "Cloning rhel9.sda.qcow2 for slow\n");
    assert_non_null(strstr(r.err, "agentctl: cancelling the job on slow"));
    assert_non_null(strstr(r.err, "\nagentctl: Cancelled: the clone of slow was cancelled; its files"
                                  " were removed\n"));
    json_object_put(want);
    json_object_put(req);
    result_free(&r);
}

static void test_a_second_ctrl_c_leaves_a_job_at_once_with_exit_130(void **state)
{
    harness *h = *state;
    run_result r = run_with(h, &(run_opts){ .sigint_after = { "vm-clone", "job-cancel" } },
                            (const char *const[]){ "clone", "rhel9", "stuck", NULL });

    assert_exit(&r, 130);
    assert_non_null(strstr(r.err, "agentctl: cancelling the job on stuck"));
    assert_non_null(strstr(r.err, "agentctl: interrupted\n"));
    result_free(&r);
}

/* Without --timeout a job waits for as long as it runs; with it, it gives up. */
static void test_a_job_gives_up_after_the_timeout_it_is_given(void **state)
{
    harness *h = *state;
    run_result r = RUN(h, "--timeout", "1", "clone", "rhel9", "stuck");

    assert_exit(&r, 3);
    assert_non_null(strstr(r.err, "no answer to clone within 1 s"));
    result_free(&r);
}

static void test_help_lists_the_storage_and_master_verbs(void **state)
{
    harness *h = *state;
    run_result all = RUN(h, "--help");
    run_result verb = RUN(h, "help", "vol-delete");

    assert_exit(&all, 0);
    assert_non_null(strstr(all.out, "  pools\n"));
    assert_non_null(strstr(all.out, "  pool-define     NAME LOCATION [--no-autostart]\n"));
    assert_non_null(strstr(all.out, "  volumes         POOL\n"));
    assert_non_null(strstr(all.out, "  vol-delete      POOL NAME or --path PATH\n"));
    assert_non_null(strstr(all.out, "  clone           MASTER NAME [--detached] [--pool POOL]\n"));
    assert_non_null(strstr(all.out, "  master-create   VM MASTER [--detached]"));
    assert_non_null(strstr(all.out, "  undefine        NAME [--purge|--keep-disks] [--force]\n"));
    assert_non_null(strstr(all.out, "  cancel          NAME\n"));
    for (const char *line = all.out; *line; line = strchr(line, '\n') + 1)
        if ((size_t)(strchr(line, '\n') - line) >= 80)
            fail_msg("a help line is wider than 79 columns: %.*s", (int)(strchr(line, '\n') - line), line);
    assert_exit(&verb, 0);
    assert_non_null(strstr(verb.out, "usage: agentctl [OPTIONS] vol-delete POOL NAME\n"
                                     "       agentctl [OPTIONS] vol-delete --path PATH\n"));
    assert_non_null(strstr(verb.out, "Deletes a volume"));
    assert_int_equal(fake_count(&h->fake, &h->fake.connections), 0);
    result_free(&all);
    result_free(&verb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_negotiates_with_id_0_before_the_command),
        T(test_define_with_flags_sends_values_as_typed),
        T(test_define_sends_all_digit_counts_as_numbers),
        T(test_define_reads_a_file),
        T(test_define_reads_standard_input),
        T(test_disk_attach_sends_a_json_disk_or_the_short_form),
        T(test_nic_detach_and_vcpus_send_their_values),
        T(test_vnc_password_is_read_from_standard_input),
        T(test_update_sends_changes_and_prints_fields_needing_restart),
        T(test_list_prints_a_table_of_vms),
        T(test_list_with_json_prints_the_return_value),
        T(test_info_lists_definition_and_runtime_with_control_characters_escaped),
        T(test_info_reads_a_reply_line_of_several_mebibytes),
        T(test_start_passes_over_events_and_other_replies),
        T(test_start_paused_asks_for_a_paused_vm),
        T(test_a_refused_command_exits_1_with_class_and_desc),
        T(test_shutdown_sends_timeout_and_force_and_reports_forced),
        T(test_shutdown_without_flags_leaves_the_timeout_to_the_agent),
        T(test_qmp_passes_command_and_arguments),
        T(test_qmp_without_arguments_sends_none),
        T(test_host_prints_a_summary),
        T(test_sriov_lists_vfs_or_sets_their_number),
        T(test_version_prints_agent_and_qemu),
        T(test_name_verbs_send_their_command),
        T(test_save_sends_an_absolute_file_and_restore_its_timeout),
        T(test_snapshot_verbs_send_the_snapshot_and_say_what_was_done),
        T(test_an_unknown_command_reply_exits_1),
        T(test_usage_errors_exit_2_without_connecting),
        T(test_a_request_over_1_MiB_exits_2_without_connecting),
        T(test_an_unknown_verb_exits_2),
        T(test_start_without_a_name_exits_2),
        T(test_migrate_confirm_wants_one_outcome_and_migrate_a_destination),
        T(test_help_prints_to_stdout_and_exits_0),
        T(test_a_missing_socket_exits_3_naming_it),
        T(test_the_socket_comes_from_AGENTD_SOCKET),
        T(test_invalid_json_from_the_agent_exits_3),
        T(test_a_silent_agent_times_out_with_exit_3),
        T(test_a_socket_without_a_qmp_greeting_exits_3),
        T(test_events_prints_each_event_until_the_agent_hangs_up),
        T(test_events_with_json_prints_lines_as_received),
        T(test_events_after_replays_then_follows_without_repeats),
        T(test_events_stops_on_sigint_with_exit_0),
        T(test_storage_and_master_verbs_send_the_documented_requests),
        T(test_undefine_purge_prints_the_disks_deleted_and_kept),
        T(test_pools_prints_a_table_of_pools),
        T(test_volumes_prints_sizes_people_read_and_why_a_file_could_not_be_opened),
        T(test_masters_prints_the_vmmaster_table),
        T(test_pool_volume_and_master_verbs_say_what_was_done),
        T(test_an_agent_error_on_a_pool_exits_1_with_its_desc),
        T(test_clone_prints_its_progress_messages_and_no_bar_when_stderr_is_not_a_tty),
        T(test_master_create_follows_the_source_vm_and_says_what_became_of_it),
        T(test_clone_draws_a_progress_bar_when_stderr_is_a_tty),
        T(test_clone_with_json_prints_the_reply_alone_on_stdout),
        T(test_ctrl_c_during_a_clone_cancels_it_and_waits_for_the_jobs_reply),
        T(test_a_second_ctrl_c_leaves_a_job_at_once_with_exit_130),
        T(test_a_job_gives_up_after_the_timeout_it_is_given),
        T(test_help_lists_the_storage_and_master_verbs),
#undef T
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
