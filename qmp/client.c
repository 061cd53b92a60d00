/* client.c: the QMP client state machine on libuv.
 *
 * The socket is polled with uv_poll_t and read and written directly, because
 * commands such as getfd and add-fd need a descriptor passed with SCM_RIGHTS,
 * which libuv's stream writes cannot attach. Commands are written at once when
 * the socket has room, so a round trip costs one write and one wake-up.
 *
 * Lifetime: the client struct is freed only from the close callbacks of its
 * two timers, so it stays valid through any callback that calls qmp_close(). */
#include "qmp.h"

#include "qmp.h"
#include "message.h"
#include "outq.h"
#include "pending.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>
#include <uv.h>

#define DEFAULT_CONNECT_TIMEOUT_MS 10000
#define DEFAULT_COMMAND_TIMEOUT_MS 30000
#define DEFAULT_MAX_MESSAGE (64u << 20)
#define READ_CHUNK 65536
#define RETRY_FIRST_MS 1
#define RETRY_MAX_MS 32
#define COMMAND_NAME_MAX 128
#define JSON_DEPTH 64

struct qmp_client {
    uv_loop_t *loop;
    qmp_options opts;
    char *path;
    qmp_state state;
    int fd;
    uv_poll_t *poll;          /* separately allocated: freed by its own close callback */
    bool want_write;
    uint64_t conn_gen;        /* bumped on every disconnect, to stop stale loops */
    uv_timer_t conn_timer;    /* connect retries, then the connect deadline */
    uv_timer_t cmd_timer;     /* the earliest pending deadline */
    uint64_t armed_deadline;  /* 0 when cmd_timer is idle */
    uint64_t connect_deadline;
    uint32_t retry_ms;
    int open_timers;
    qmp_frame in;
    qmp_outq out;
    /* QEMU keeps only the descriptors of its latest read, so a command with a
     * descriptor goes out only once the previous one is answered; it and
     * everything queued after it wait here meanwhile. */
    qmp_outq staged;
    uint64_t fd_gate;         /* id of the descriptor command awaiting its reply */
    json_tokener *tok;
    qmp_pending_set pending;
    uint64_t next_id;
    bool oob;
    int version[3];
    bool have_version;
    qmp_stats stats;
};

static void client_disconnect(qmp_client *c, int err);
static int client_try_connect(qmp_client *c);
static void on_cmd_timer(uv_timer_t *t);

const char *qmp_strerror(int status)
{
    switch (status) {
    case 0: return "success";
    case QMP_ERR_REMOTE: return "QEMU returned an error";
    case -ETIMEDOUT: return "timed out waiting for QEMU";
    case -ECONNRESET: return "connection to QEMU closed";
    case -EPROTO: return "malformed message from QEMU";
    case -EMSGSIZE: return "message from QEMU exceeds the size limit";
    case -ECANCELED: return "cancelled: the client was closed";
    case -ENOTCONN: return "not connected to QEMU";
    default: return strerror(-status);
    }
}

/* ---- timers ------------------------------------------------------------ */

static void arm_cmd_timer(qmp_client *c)
{
    qmp_pending *first = qmp_pending_first(&c->pending);
    uint64_t now = uv_now(c->loop);

    if (!first) {
        uv_timer_stop(&c->cmd_timer);
        c->armed_deadline = 0;
        return;
    }
    /* A later deadline is picked up when the armed one fires. */
    if (c->armed_deadline && c->armed_deadline <= first->deadline_ms)
        return;
    c->armed_deadline = first->deadline_ms;
    uv_timer_start(&c->cmd_timer, on_cmd_timer,
                   first->deadline_ms > now ? first->deadline_ms - now : 0, 0);
}

/* ---- completing commands ---------------------------------------------- */

static void flush_out(qmp_client *c);

static void release_staged(qmp_client *c)
{
    bool moved = false;

    while (c->fd_gate == 0 && !qmp_outq_empty(&c->staged)) {
        if (qmp_outq_move_segment(&c->out, &c->staged, &c->fd_gate) < 0) {
            client_disconnect(c, -ENOMEM);
            return;
        }
        moved = true;
    }
    if (moved && !c->want_write)
        flush_out(c);
}

static void complete(qmp_client *c, qmp_pending *p, const qmp_reply *r)
{
    qmp_reply_cb cb = (qmp_reply_cb)p->cb;
    void *opaque = p->opaque;

    if (p->id == c->fd_gate) {
        c->fd_gate = 0;
        if (c->state == QMP_STATE_READY)
            release_staged(c);
    }
    qmp_pending_remove(&c->pending, p);
    free(p);
    if (cb)
        cb(c, r, opaque);
}

static void fail_one(qmp_client *c, qmp_pending *p, int status)
{
    qmp_reply r = { .status = status, .err_desc = qmp_strerror(status), .id = p->id };

    complete(c, p, &r);
}

/* Each callback may add or remove commands, so the set is re-read every time. */
static void fail_all(qmp_client *c, int status)
{
    qmp_pending *p;

    while ((p = qmp_pending_first(&c->pending)))
        fail_one(c, p, status);
    uv_timer_stop(&c->cmd_timer);
    c->armed_deadline = 0;
}

static void on_cmd_timer(uv_timer_t *t)
{
    qmp_client *c = t->data;
    uint64_t now = uv_now(c->loop);
    qmp_pending *p;

    c->armed_deadline = 0;
    while ((p = qmp_pending_first(&c->pending)) && p->deadline_ms <= now) {
        c->stats.timeouts++;
        fail_one(c, p, -ETIMEDOUT);
        if (c->state == QMP_STATE_CLOSED)
            return;
    }
    arm_cmd_timer(c);
}

/* ---- writing ------------------------------------------------------------ */

static void update_poll(qmp_client *c);

static void flush_out(qmp_client *c)
{
    int r = qmp_outq_flush(&c->out, c->fd);

    if (r < 0) {
        client_disconnect(c, -ECONNRESET);
        return;
    }
    bool want = r == 1;
    if (want != c->want_write) {
        c->want_write = want;
        update_poll(c);
    }
}

static bool command_name_valid(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > COMMAND_NAME_MAX)
        return false;
    for (; *s; s++)
        if (!(*s == '-' || *s == '_' || (*s >= '0' && *s <= '9') ||
              (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
            return false;
    return true;
}

static int queue_command(qmp_client *c, const char *verb, const char *command,
                         struct json_object *args, uint64_t id, int fd)
{
    const char *a = args ? json_object_to_json_string_ext(args, JSON_C_TO_STRING_PLAIN |
                                                                  JSON_C_TO_STRING_NOSLASHESCAPE)
                         : NULL;
    char head[COMMAND_NAME_MAX + 64], tail[48];
    int hn = snprintf(head, sizeof(head), "{\"%s\":\"%s\"%s", verb, command, a ? ",\"arguments\":" : "");
    int tn = snprintf(tail, sizeof(tail), ",\"id\":%" PRIu64 "}\n", id);
    bool stage = !qmp_outq_empty(&c->staged) || (fd >= 0 && c->fd_gate != 0);
    qmp_outq *q = stage ? &c->staged : &c->out;
    size_t an = a ? strlen(a) : 0;
    int r;

    /* Room first, so the appends below cannot fail halfway through a command. */
    if ((r = qmp_outq_reserve(q, (size_t)hn + an + (size_t)tn)) < 0)
        return r;
    if (fd >= 0) {
        int dup = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (dup < 0)
            return -errno;
        if ((r = qmp_outq_attach_fd(q, dup, id)) < 0) {
            close(dup);
            return r;
        }
        if (!stage)
            c->fd_gate = id;
    }
    qmp_outq_append(q, head, (size_t)hn);
    qmp_outq_append(q, a, an);
    qmp_outq_append(q, tail, (size_t)tn);
    return 0;
}

static int send_command(qmp_client *c, const char *verb, const char *command,
                        struct json_object *args, int fd, uint32_t timeout_ms,
                        qmp_reply_cb cb, void *opaque, uint64_t *ret_id)
{
    qmp_pending *p = calloc(1, sizeof(*p));
    bool was_empty = qmp_outq_empty(&c->out);
    int r;

    if (!p)
        return -ENOMEM;
    p->id = ++c->next_id;
    p->deadline_ms = uv_now(c->loop) + (timeout_ms ? timeout_ms : c->opts.command_timeout_ms);
    p->cb = (void *)cb;
    p->opaque = opaque;
    if ((r = queue_command(c, verb, command, args, p->id, fd)) < 0 ||
        (r = qmp_pending_add(&c->pending, p)) < 0) {
        free(p);
        return r;
    }
    c->stats.commands_sent++;
    arm_cmd_timer(c);
    if (ret_id)
        *ret_id = p->id;
    /* Write at once unless a partial write is already waiting for room. */
    if (was_empty)
        flush_out(c);
    return 0;
}

int qmp_execute(qmp_client *c, const char *command, struct json_object *args,
                const qmp_exec_options *o, qmp_reply_cb cb, void *opaque, uint64_t *ret_id)
{
    int fd = o ? o->fd : -1;

    if (c->state != QMP_STATE_READY)
        return -ENOTCONN;
    if (!command || !command_name_valid(command))
        return -EINVAL;
    if (args && !json_object_is_type(args, json_type_object))
        return -EINVAL;
    if (o && o->oob && !c->oob)
        return -EOPNOTSUPP;
    return send_command(c, o && o->oob ? "exec-oob" : "execute", command, args, fd,
                        o ? o->timeout_ms : 0, cb, opaque, ret_id);
}

int qmp_forget(qmp_client *c, uint64_t id)
{
    qmp_pending *p = qmp_pending_find(&c->pending, id);

    if (!p)
        return -ENOENT;
    p->cb = NULL;
    return 0;
}

/* ---- negotiation ------------------------------------------------------- */

static void on_capabilities(qmp_client *c, const qmp_reply *r, void *opaque)
{
    if (c->state != QMP_STATE_NEGOTIATING)
        return;
    if (r->status < 0) {
        client_disconnect(c, r->status == QMP_ERR_REMOTE ? -EPROTO : r->status);
        return;
    }
    c->state = QMP_STATE_READY;
    uv_timer_stop(&c->conn_timer);
    if (c->opts.on_ready)
        c->opts.on_ready(c, 0, c->opts.opaque);
}

static void read_version(qmp_client *c, struct json_object *greeting)
{
    struct json_object *v, *q, *n;
    static const char *const keys[] = { "major", "minor", "micro" };

    c->have_version = json_object_object_get_ex(greeting, "version", &v) &&
                      json_object_object_get_ex(v, "qemu", &q);
    for (int i = 0; c->have_version && i < 3; i++) {
        if (!json_object_object_get_ex(q, keys[i], &n) || !json_object_is_type(n, json_type_int))
            c->have_version = false;
        else
            c->version[i] = json_object_get_int(n);
    }
}

static void handle_greeting(qmp_client *c, qmp_msg *m)
{
    uint32_t left = c->connect_deadline > uv_now(c->loop)
                        ? (uint32_t)(c->connect_deadline - uv_now(c->loop)) : 1;
    struct json_object *args = NULL;
    int r;

    read_version(c, m->greeting);
    c->oob = qmp_greeting_has_cap(m->greeting, "oob");
    if (c->oob) {
        args = json_object_new_object();
        struct json_object *en = json_object_new_array();
        json_object_array_add(en, json_object_new_string("oob"));
        json_object_object_add(args, "enable", en);
    }
    c->state = QMP_STATE_NEGOTIATING;
    r = send_command(c, "execute", "qmp_capabilities", args, -1, left, on_capabilities, NULL, NULL);
    json_object_put(args);
    if (r < 0)
        client_disconnect(c, r);
}

/* ---- reading ----------------------------------------------------------- */

static void handle_reply(qmp_client *c, qmp_msg *m)
{
    qmp_pending *p = m->has_id ? qmp_pending_find(&c->pending, m->id) : NULL;
    qmp_reply r = { .id = m->id };

    if (!p) {
        c->stats.stray_replies++;
        return;
    }
    c->stats.replies++;
    if (m->kind == QMP_MSG_RETURN) {
        r.ret = m->ret;
    } else {
        r.status = QMP_ERR_REMOTE;
        r.err_class = m->err_class;
        r.err_desc = m->err_desc;
    }
    complete(c, p, &r);
}

static int handle_message(qmp_client *c, qmp_msg *m)
{
    bool greeting_expected = c->state == QMP_STATE_CONNECTING;

    if ((m->kind == QMP_MSG_GREETING) != greeting_expected)
        return -EPROTO;
    switch (m->kind) {
    case QMP_MSG_GREETING:
        handle_greeting(c, m);
        break;
    case QMP_MSG_RETURN:
    case QMP_MSG_ERROR:
        handle_reply(c, m);
        break;
    case QMP_MSG_EVENT:
        c->stats.events++;
        if (c->opts.on_event)
            c->opts.on_event(c, m->event, m->data, m->ts_sec, m->ts_usec, c->opts.opaque);
        break;
    }
    return 0;
}

/* Dispatches every complete line; stops when a callback closed or
 * disconnected the client, since the buffer then belongs to nobody. */
static void process_lines(qmp_client *c)
{
    uint64_t gen = c->conn_gen;
    char *line;
    size_t len;
    int r;

    while ((r = qmp_frame_next(&c->in, &line, &len)) == 1) {
        qmp_msg m;
        if (len == 0)
            continue;
        if ((r = qmp_msg_parse(c->tok, line, len, &m)) == 0) {
            r = handle_message(c, &m);
            qmp_msg_release(&m);
        }
        if (r < 0)
            break;
        if (c->state == QMP_STATE_CLOSED || c->conn_gen != gen)
            return;
    }
    if (r < 0)
        client_disconnect(c, r);
}

static void read_in(qmp_client *c)
{
    char *p;
    size_t avail;
    int r = qmp_frame_reserve(&c->in, READ_CHUNK, &p, &avail);

    if (r < 0) {
        client_disconnect(c, r);
        return;
    }
    ssize_t n = read(c->fd, p, avail);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        client_disconnect(c, -ECONNRESET);
        return;
    }
    qmp_frame_commit(&c->in, (size_t)n);
    process_lines(c);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    qmp_client *c = h->data;
    uint64_t gen = c->conn_gen;

    if (status < 0) {
        client_disconnect(c, -ECONNRESET);
        return;
    }
    if (events & UV_WRITABLE)
        flush_out(c);
    if (c->conn_gen == gen && c->state != QMP_STATE_CLOSED && (events & (UV_READABLE | UV_DISCONNECT)))
        read_in(c);
}

static void update_poll(qmp_client *c)
{
    if (c->poll)
        uv_poll_start(c->poll, UV_READABLE | (c->want_write ? UV_WRITABLE : 0), on_poll);
}

/* ---- connecting -------------------------------------------------------- */

static void free_poll(uv_handle_t *h)
{
    free(h);
}

static void drop_socket(qmp_client *c)
{
    if (c->poll) {
        uv_poll_stop(c->poll);
        uv_close((uv_handle_t *)c->poll, free_poll);
        c->poll = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    qmp_outq_clear(&c->out);
    qmp_outq_clear(&c->staged);
    c->fd_gate = 0;
    qmp_frame_reset(&c->in);
    c->want_write = false;
    c->conn_gen++;
}

static void client_disconnect(qmp_client *c, int err)
{
    qmp_state was = c->state;

    if (was == QMP_STATE_IDLE || was == QMP_STATE_CLOSED)
        return;
    drop_socket(c);
    uv_timer_stop(&c->conn_timer);
    c->state = QMP_STATE_IDLE;
    fail_all(c, err);
    if (c->state != QMP_STATE_IDLE)
        return; /* a callback closed or reconnected the client */
    if (was == QMP_STATE_READY) {
        if (c->opts.on_disconnect)
            c->opts.on_disconnect(c, err, c->opts.opaque);
    } else if (c->opts.on_ready) {
        c->opts.on_ready(c, err, c->opts.opaque);
    }
}

static void on_conn_timer(uv_timer_t *t)
{
    qmp_client *c = t->data;

    if (c->state != QMP_STATE_CONNECTING || c->fd >= 0) {
        client_disconnect(c, -ETIMEDOUT); /* no greeting in time */
        return;
    }
    int r = client_try_connect(c);
    if (r < 0)
        client_disconnect(c, r);
}

static int socket_connect(const char *path, int *ret_fd)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    *ret_fd = fd;
    return 0;
}

static bool connect_error_is_transient(int r)
{
    /* QEMU has not created the socket yet, not yet listening, or its backlog is full. */
    return r == -ENOENT || r == -ECONNREFUSED || r == -EAGAIN;
}

static int start_polling(qmp_client *c, int fd)
{
    uv_poll_t *h = malloc(sizeof(*h));
    int r;

    if (!h)
        return -ENOMEM;
    if ((r = uv_poll_init(c->loop, h, fd)) < 0) {
        free(h);
        return r;
    }
    h->data = c;
    c->fd = fd;
    c->poll = h;
    update_poll(c);
    return 0;
}

/* One attempt; on a transient failure schedules the next one, backing off. */
static int client_try_connect(qmp_client *c)
{
    uint64_t now = uv_now(c->loop);
    int fd = -1;
    int r = socket_connect(c->path, &fd);

    if (r == 0) {
        if ((r = start_polling(c, fd)) < 0) {
            close(fd);
            return r;
        }
        /* Now the timer only guards the greeting and negotiation. */
        uv_timer_start(&c->conn_timer, on_conn_timer, c->connect_deadline - now, 0);
        return 0;
    }
    if (!connect_error_is_transient(r))
        return r;
    if (now >= c->connect_deadline)
        return -ETIMEDOUT;
    uint64_t wait = c->retry_ms;
    if (wait > c->connect_deadline - now)
        wait = c->connect_deadline - now;
    c->retry_ms = c->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : c->retry_ms * 2;
    uv_timer_start(&c->conn_timer, on_conn_timer, wait, 0);
    return 0;
}

int qmp_connect(qmp_client *c)
{
    if (c->state != QMP_STATE_IDLE)
        return c->state == QMP_STATE_CLOSED ? -EBADF : -EALREADY;
    uv_update_time(c->loop);
    c->state = QMP_STATE_CONNECTING;
    c->connect_deadline = uv_now(c->loop) + c->opts.connect_timeout_ms;
    c->retry_ms = RETRY_FIRST_MS;
    c->oob = false;
    c->have_version = false;
    int r = client_try_connect(c);
    if (r < 0) {
        c->state = QMP_STATE_IDLE;
        uv_timer_stop(&c->conn_timer);
        return r;
    }
    return 0;
}

/* ---- life cycle -------------------------------------------------------- */

int qmp_client_new(uv_loop_t *loop, const qmp_options *opts, qmp_client **ret)
{
    qmp_client *c;

    if (!loop || !opts || !opts->path || !ret)
        return -EINVAL;
    if (strlen(opts->path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return -ENAMETOOLONG;
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->loop = loop;
    c->opts = *opts;
    c->path = strdup(opts->path);
    c->tok = json_tokener_new_ex(JSON_DEPTH);
    if (!c->path || !c->tok) {
        free(c->path);
        if (c->tok)
            json_tokener_free(c->tok);
        free(c);
        return -ENOMEM;
    }
    c->opts.path = c->path;
    if (!c->opts.connect_timeout_ms)
        c->opts.connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    if (!c->opts.command_timeout_ms)
        c->opts.command_timeout_ms = DEFAULT_COMMAND_TIMEOUT_MS;
    if (!c->opts.max_message)
        c->opts.max_message = DEFAULT_MAX_MESSAGE;
    c->fd = -1;
    qmp_frame_init(&c->in, c->opts.max_message);
    qmp_outq_init(&c->out);
    qmp_outq_init(&c->staged);
    qmp_pending_init(&c->pending);
    uv_timer_init(loop, &c->conn_timer);
    uv_timer_init(loop, &c->cmd_timer);
    c->conn_timer.data = c->cmd_timer.data = c;
    c->open_timers = 2;
    *ret = c;
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    qmp_client *c = h->data;

    if (--c->open_timers > 0)
        return;
    qmp_frame_free(&c->in);
    qmp_pending_free(&c->pending);
    json_tokener_free(c->tok);
    free(c->path);
    free(c);
}

void qmp_close(qmp_client *c)
{
    if (!c || c->state == QMP_STATE_CLOSED)
        return;
    c->state = QMP_STATE_CLOSED;
    drop_socket(c);
    uv_timer_stop(&c->conn_timer);
    fail_all(c, -ECANCELED);
    uv_close((uv_handle_t *)&c->conn_timer, on_timer_closed);
    uv_close((uv_handle_t *)&c->cmd_timer, on_timer_closed);
}

qmp_state qmp_get_state(const qmp_client *c)
{
    return c->state;
}

bool qmp_oob_enabled(const qmp_client *c)
{
    return c->state == QMP_STATE_READY && c->oob;
}

int qmp_qemu_version(const qmp_client *c, int *ret_major, int *ret_minor, int *ret_micro)
{
    if (!c->have_version)
        return -ENODATA;
    *ret_major = c->version[0];
    *ret_minor = c->version[1];
    *ret_micro = c->version[2];
    return 0;
}

size_t qmp_pending_count(const qmp_client *c)
{
    return c->pending.count;
}

void qmp_get_stats(const qmp_client *c, qmp_stats *ret)
{
    *ret = c->stats;
}
