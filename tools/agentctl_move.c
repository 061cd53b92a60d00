/* agentctl_move.c: agentctl move, an offline migration driven from here
 * (docs/protocol.md, "Offline migration"): vm-send on this agent, vm-receive
 * on DEST, the disks' stream copied from one connection to the other, then
 * vm-send-confirm here. And send-confirm, to settle one by hand.
 *
 * The VM is removed here only after DEST said it has it; when agentctl
 * cannot tell (a connection broke, Ctrl-C), it asks both agents, and
 * settles only what their answers make certain. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "agentctl.h"
#include "agentctl_args.h"
#include "agentctl_conn.h"
#include "agentctl_job.h"
#include "agentctl_print.h"

#define PUMP_BUF (1u << 20)
/* After the last byte DEST syncs and installs the last disk. */
#define WAIT_END_S 3600
#define WAIT_SETTLE_S 60
#define WAIT_CONFIRM_S 600

typedef struct move_run {
    const ctl_options *o;
    const char *vm, *dest;
    ctl_conn src, dst;
    int stop_fd;
    ctl_status_line line;
    bool bar;
    unsigned long long moved;
} move_run;

static void say(move_run *m, const char *where, const char *what)
{
    ctl_status_clear(&m->line);
    fprintf(stderr, "agentctl: %s: ", where);
    ctl_put_safe(stderr, what, 0);
    fputc('\n', stderr);
}

static int open_agent(move_run *m, ctl_conn *c, const char *socket)
{
    return ctl_open_agent(&m->line, c, socket);
}

/* ---- the stream --------------------------------------------------------------------- */

static int write_all(move_run *m, const char *p, size_t n)
{
    struct pollfd pfd[2] = { { .fd = m->dst.fd, .events = POLLOUT }, { .fd = m->stop_fd, .events = POLLIN } };

    while (n > 0) {
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (pfd[1].revents)
            return -EINTR;
        if (pfd[0].revents & (POLLERR | POLLHUP))
            return -ECONNRESET;
        ssize_t k = send(m->dst.fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (k < 0)
            return -errno;
        p += k;
        n -= (size_t)k;
        m->moved += (unsigned long long)k;
    }
    return 0;
}

static void draw(move_run *m)
{
    char text[128];

    if (!m->bar)
        return;
    snprintf(text, sizeof(text), "moving %s: %llu MiB sent", m->vm, m->moved >> 20);
    ctl_status_draw(&m->line, text);
}

/* Copies the source's stream to DEST until the source closes it (0), or
 * DEST speaks first (1: its verdict is waiting), or a failure. */
static int pump(move_run *m, char *buf)
{
    struct pollfd p[3] = { { .fd = m->src.fd, .events = POLLIN }, { .fd = m->dst.fd, .events = POLLIN },
                           { .fd = m->stop_fd, .events = POLLIN } };
    time_t drawn = 0;
    int r;

    /* Stream bytes that came with the reply. */
    if (m->src.len > m->src.start && (r = write_all(m, m->src.buf + m->src.start, m->src.len - m->src.start)) < 0)
        return r;
    m->src.start = m->src.len;
    for (;;) {
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (p[2].revents)
            return -EINTR;
        if (p[1].revents)
            return 1;
        if (!p[0].revents)
            continue;
        ssize_t n = read(m->src.fd, buf, PUMP_BUF);
        if (n == 0)
            return 0;
        if (n < 0 && errno != EINTR && errno != EAGAIN)
            return -errno;
        if (n > 0 && (r = write_all(m, buf, (size_t)n)) < 0)
            return r;
        if (time(NULL) != drawn) {
            drawn = time(NULL);
            draw(m);
        }
    }
}

/* DEST's one line at the end: VM_RECEIVED. 1 completed, 0 failed (said), negative: no verdict. */
static int verdict(move_run *m)
{
    struct json_object *msg = NULL, *data, *status, *err;
    int r = ctl_read_message(&m->dst, ctl_deadline_after(WAIT_END_S), &msg, NULL);

    if (r < 0)
        return r;
    if (!json_object_object_get_ex(msg, "data", &data) || !json_object_object_get_ex(data, "status", &status)) {
        json_object_put(msg);
        return -EPROTO;
    }
    r = strcmp(json_object_get_string(status), "completed") == 0;
    if (!r && json_object_object_get_ex(data, "error", &err))
        say(m, m->dest, json_object_get_string(err));
    json_object_put(msg);
    return r;
}

/* ---- settling ----------------------------------------------------------------------- */

/* The VM's state on one agent: "" when it has no such VM, NULL when unreachable. */
static const char *state_on(move_run *m, ctl_conn *c, const char *socket, char *buf, size_t len)
{
    struct json_object *v = NULL, *st;
    int r;

    if (open_agent(m, c, socket) < 0)
        return NULL;
    r = ctl_call(c, "query-vm", ctl_string_args("name", m->vm), ctl_deadline_after(CTL_DEFAULT_WAIT_S), NULL,
                 NULL, &v);
    if (r == CTL_ERR_REFUSED && strncmp(c->err, "NotFound:", 9) == 0) {
        buf[0] = '\0';
        return buf;
    }
    if (r < 0 || !json_object_object_get_ex(v, "state", &st)) {
        json_object_put(v);
        return NULL;
    }
    snprintf(buf, len, "%s", json_object_get_string(st));
    json_object_put(v);
    return buf;
}

static int confirm(move_run *m, bool completed)
{
    struct json_object *args = ctl_string_args("name", m->vm), *value = NULL;
    int r;

    json_object_object_add(args, "completed", json_object_new_boolean(completed));
    if ((r = open_agent(m, &m->src, m->o->socket)) == 0)
        r = ctl_call(&m->src, "vm-send-confirm", args, ctl_deadline_after(WAIT_CONFIRM_S), NULL, NULL, &value);
    json_object_put(args);
    if (r < 0) {
        say(m, m->o->socket, m->src.err[0] ? m->src.err : strerror(-r));
        return CTL_EXIT_CONNECT;
    }
    json_object_put(value);
    ctl_status_clear(&m->line);
    if (completed)
        printf("%s moved to %s; removed here with its disks\n", m->vm, m->dest);
    else
        printf("%s stays here, stopped; %s does not have it\n", m->vm, m->dest);
    return completed ? CTL_EXIT_OK : CTL_EXIT_REFUSED;
}

/* Asks both agents where the VM is, waiting out a side still at work, and
 * settles the source when the answers make it certain. */
static int settle(move_run *m)
{
    char s[32], d[32];
    const char *src = NULL, *dst = NULL;

    ctl_conn_close(&m->src);
    ctl_conn_close(&m->dst);
    for (int i = 0; i < WAIT_SETTLE_S; i++, sleep(1)) {
        src = state_on(m, &m->src, m->o->socket, s, sizeof(s));
        dst = state_on(m, &m->dst, m->dest, d, sizeof(d));
        if (!src || !dst || (strcmp(src, "sending") && strcmp(dst, "receiving")))
            break;
    }
    if (src && dst && !strcmp(src, "sent"))
        return confirm(m, dst[0] != '\0');
    if (src && dst && dst[0] == '\0' && strcmp(src, "sending") != 0) {
        fprintf(stderr, "agentctl: %s stays here (%s); %s does not have it\n", m->vm, src, m->dest);
        return CTL_EXIT_REFUSED;
    }
    fprintf(stderr,
            "agentctl: cannot tell where %s is (here: %s, %s: %s). Ask both with 'agentctl status %s',\n"
            "then settle here with 'agentctl send-confirm %s --completed' (the destination has it)\n"
            "or '--failed' (it does not).\n",
            m->vm, src ? (src[0] ? src : "none") : "no answer", m->dest, dst ? (dst[0] ? dst : "none") : "no answer",
            m->vm, m->vm);
    return CTL_EXIT_CONNECT;
}

/* ---- the steps ---------------------------------------------------------------------- */

static struct json_object *receive_args(struct json_object *sent)
{
    struct json_object *args = json_object_new_object(), *def, *disks, *out = json_object_new_array();

    json_object_object_get_ex(sent, "definition", &def);
    json_object_object_get_ex(sent, "disks", &disks);
    for (size_t i = 0; i < json_object_array_length(disks); i++) {
        struct json_object *d = json_object_array_get_idx(disks, i), *o = json_object_new_object(), *v;
        if (json_object_object_get_ex(d, "target", &v))
            json_object_object_add(o, "target", json_object_get(v));
        if (json_object_object_get_ex(d, "virtual-size", &v))
            json_object_object_add(o, "virtual-size", json_object_get(v));
        json_object_array_add(out, o);
    }
    json_object_object_add(args, "definition", json_object_get(def));
    json_object_object_add(args, "disks", out);
    return args;
}

static int move_steps(move_run *m)
{
    struct json_object *sent = NULL, *args, *value = NULL;
    char *buf;
    int r;

    if (open_agent(m, &m->src, m->o->socket) < 0 || open_agent(m, &m->dst, m->dest) < 0)
        return CTL_EXIT_CONNECT;
    r = ctl_call(&m->src, "vm-send", ctl_string_args("name", m->vm), ctl_deadline_after(CTL_DEFAULT_WAIT_S),
                 NULL, NULL, &sent);
    if (r < 0) {
        say(m, m->o->socket, m->src.err[0] ? m->src.err : strerror(-r));
        return r == CTL_ERR_REFUSED ? CTL_EXIT_REFUSED : CTL_EXIT_CONNECT;
    }
    args = receive_args(sent);
    json_object_put(sent);
    r = ctl_call(&m->dst, "vm-receive", args, ctl_deadline_after(CTL_DEFAULT_WAIT_S), NULL, NULL, &value);
    json_object_put(args);
    json_object_put(value);
    if (r < 0) {
        /* Closing the stream unsent leaves the VM here, stopped. */
        say(m, m->dest, m->dst.err[0] ? m->dst.err : strerror(-r));
        ctl_conn_close(&m->src);
        return r == CTL_ERR_REFUSED ? CTL_EXIT_REFUSED : settle(m);
    }
    if (!(buf = malloc(PUMP_BUF)))
        return CTL_EXIT_CONNECT;
    r = pump(m, buf);
    free(buf);
    if (r == -EINTR) {
        say(m, "interrupted", "the stream is cut; finding out where the VM is");
        return settle(m);
    }
    if (r < 0)
        return settle(m);
    r = verdict(m);
    ctl_status_finish(&m->line);
    if (r == 1)
        return confirm(m, true);
    if (r == 0)
        ctl_conn_close(&m->src);   /* a source still sending stops; a sent one is settled below */
    return settle(m);
}

static int run_move(const ctl_options *o, const ctl_request *req)
{
    move_run m = { .o = o, .vm = req->vm, .dest = req->peer, .bar = isatty(STDERR_FILENO) == 1,
                   .line = { .f = stderr } };
    int code;

    ctl_conn_init(&m.src);
    ctl_conn_init(&m.dst);
    if ((m.stop_fd = ctl_job_signal_fd()) < 0) {
        fprintf(stderr, "agentctl: signalfd: %s\n", strerror(-m.stop_fd));
        return CTL_EXIT_CONNECT;
    }
    code = move_steps(&m);
    ctl_conn_close(&m.src);
    ctl_conn_close(&m.dst);
    close(m.stop_fd);
    return code;
}

static int parse_move(int argc, char **argv, ctl_request *req)
{
    struct json_object *none = json_object_new_object();
    int r = ctl_flag_args(argc, argv, NULL, 0, none);

    json_object_put(none);
    if (r == 0)
        r = ctl_positionals(argc, argv, 2, 2);
    if (r != 0)
        return r;
    req->vm = argv[optind];
    req->peer = argv[optind + 1];
    return 0;
}

static const ctl_verb move_verbs[] = {
    { "move", "vm-send", NULL, "NAME DEST",
      "Moves a stopped VM to the agent at socket DEST (kvmsh's offline migration):\n"
      "its definition, and its disks copied whole (flattened, zeros left out)\n"
      "into DEST's pools at the same paths. The VM and its disks are removed here\n"
      "only after DEST has them. When agentctl cannot tell how it ended, it asks\n"
      "both agents and says what to do (exit status 3).\n",
      parse_move, NULL, run_move },
    { "send-confirm", "vm-send-confirm", "settled", "NAME --completed|--failed",
      "Settles a sent VM by hand: --completed once the destination has it (it is\n"
      "removed here with its disks), --failed when it does not (it stays here).\n",
      ctl_parse_confirm, ctl_print_done, NULL },
};

const ctl_verb *ctl_move_verbs(size_t *ret_n)
{
    *ret_n = sizeof(move_verbs) / sizeof(move_verbs[0]);
    return move_verbs;
}
