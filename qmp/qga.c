/* qga.c: one command to a QEMU guest agent (qmp.h, "guest agent").
 *
 * The guest agent speaks QMP's wire format without a greeting, and what it
 * sent for an earlier client may still be in the channel. So every call
 * opens the socket, sends guest-sync-delimited with a fresh id, drops
 * everything up to the 0xFF byte the agent puts before its answer and every
 * line that is not that answer, and only then sends the command. */
#include "qmp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <json-c/json.h>
#include <uv.h>

#define QGA_LINE_MAX (1u << 20)
#define QGA_READ_CHUNK 4096u
#define QGA_DELIMITER 0xff

typedef enum qga_phase { PHASE_CONNECT, PHASE_SYNC, PHASE_SYNCED, PHASE_COMMAND, PHASE_DONE } qga_phase;

typedef struct qga_call_s {
    uv_pipe_t pipe;
    uv_timer_t timer;
    uv_connect_t connect;
    qga_phase phase;
    int64_t sync_id;
    char *command;            /* the request line, with its '\n' */
    qmp_frame in;
    qga_done_cb cb;
    void *opaque;
    int closing;              /* handles still to close */
} qga_call_s;

typedef struct write_req {
    uv_write_t req;
    char data[];
} write_req;

static void on_closed(uv_handle_t *h)
{
    qga_call_s *q = h->data;

    if (--q->closing == 0) {
        qmp_frame_free(&q->in);
        free(q->command);
        free(q);
    }
}

/* Reports once, then lets both handles go. */
static void finish(qga_call_s *q, int status, struct json_object *ret, const char *err)
{
    if (q->phase == PHASE_DONE)
        return;
    q->phase = PHASE_DONE;
    q->cb(status, ret, err, q->opaque);
    q->closing = 2;
    uv_close((uv_handle_t *)&q->timer, on_closed);
    uv_close((uv_handle_t *)&q->pipe, on_closed);
}

static void on_written(uv_write_t *req, int status)
{
    qga_call_s *q = req->handle->data;

    free(req);
    if (status < 0 && status != UV_ECANCELED)
        finish(q, -EPIPE, NULL, "writing to the guest agent's socket failed");
}

static int send_line(qga_call_s *q, const char *text, size_t len)
{
    write_req *w = malloc(sizeof(*w) + len);
    uv_buf_t buf;

    if (!w)
        return -ENOMEM;
    memcpy(w->data, text, len);
    buf = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&q->pipe, &buf, 1, on_written) < 0) {
        free(w);
        return -EPIPE;
    }
    return 0;
}

/* A line after the delimiter: the sync's answer, then the command's. */
static void take_line(qga_call_s *q, const char *line)
{
    struct json_object *msg = json_tokener_parse(line), *ret, *e, *desc;

    if (!msg || !json_object_is_type(msg, json_type_object)) {
        json_object_put(msg);
        return;   /* noise left in the channel */
    }
    if (q->phase == PHASE_SYNCED) {
        if (json_object_object_get_ex(msg, "return", &ret) && json_object_is_type(ret, json_type_int) &&
            json_object_get_int64(ret) == q->sync_id) {
            q->phase = PHASE_COMMAND;
            if (send_line(q, q->command, strlen(q->command)) < 0)
                finish(q, -EPIPE, NULL, "writing to the guest agent's socket failed");
        }
    } else if (q->phase == PHASE_COMMAND) {
        if (json_object_object_get_ex(msg, "return", &ret))
            finish(q, 0, ret, NULL);
        else if (json_object_object_get_ex(msg, "error", &e))
            finish(q, QMP_ERR_REMOTE, NULL,
                   json_object_object_get_ex(e, "desc", &desc) ? json_object_get_string(desc) : "error");
    }
    json_object_put(msg);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    qga_call_s *q = h->data;
    char *p;
    size_t avail;

    if (qmp_frame_reserve(&q->in, QGA_READ_CHUNK, &p, &avail) < 0) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init(p, (unsigned)avail);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    qga_call_s *q = s->data;
    char *line;
    size_t len;
    int r;

    if (n < 0) {
        finish(q, -ECONNRESET, NULL, "the guest agent's socket closed");
        return;
    }
    if (n == 0)
        return;
    if (q->phase == PHASE_SYNC) {
        /* Everything before the delimiter is what an earlier client left. */
        char *d = memchr(buf->base, QGA_DELIMITER, (size_t)n);
        if (!d)
            return;   /* nothing committed: dropped */
        q->phase = PHASE_SYNCED;
        size_t rest = (size_t)n - (size_t)(d + 1 - buf->base);
        memmove(buf->base, d + 1, rest);
        n = (ssize_t)rest;
    }
    qmp_frame_commit(&q->in, (size_t)n);
    while (q->phase != PHASE_DONE && (r = qmp_frame_next(&q->in, &line, &len)) == 1)
        take_line(q, line);
    if (q->phase != PHASE_DONE && r == -EMSGSIZE)
        finish(q, -EPROTO, NULL, "the guest agent sent a line longer than 1 MiB");
}

static void on_connected(uv_connect_t *req, int status)
{
    qga_call_s *q = req->data;
    char sync[96];
    int n;

    if (q->phase == PHASE_DONE)
        return;
    if (status < 0) {
        finish(q, -ECONNREFUSED, NULL, "cannot connect to the guest agent's socket");
        return;
    }
    q->phase = PHASE_SYNC;
    n = snprintf(sync, sizeof(sync), "{\"execute\": \"guest-sync-delimited\", \"arguments\": {\"id\": %lld}}\n",
                 (long long)q->sync_id);
    if (uv_read_start((uv_stream_t *)&q->pipe, on_alloc, on_read) < 0 || send_line(q, sync, (size_t)n) < 0)
        finish(q, -EPIPE, NULL, "cannot talk to the guest agent's socket");
}

static void on_timeout(uv_timer_t *t)
{
    qga_call_s *q = t->data;

    finish(q, -ETIMEDOUT, NULL, q->phase == PHASE_COMMAND ? "the guest agent did not answer in time"
                                                           : "no guest agent answered in time");
}

int qga_call(uv_loop_t *loop, const char *path, const char *command, struct json_object *args,
             uint32_t timeout_ms, qga_done_cb cb, void *opaque)
{
    struct json_object *req = json_object_new_object();
    qga_call_s *q = calloc(1, sizeof(*q));
    uint32_t id = 0;
    const char *text;

    if (!q || !req) {
        free(q);
        json_object_put(req);
        json_object_put(args);
        return -ENOMEM;
    }
    json_object_object_add(req, "execute", json_object_new_string(command));
    if (args)
        json_object_object_add(req, "arguments", args);
    text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
    if ((q->command = malloc(strlen(text) + 2)))
        strcat(strcpy(q->command, text), "\n");
    json_object_put(req);
    if (!q->command) {
        free(q);
        return -ENOMEM;
    }
    /* A fresh id, so an answer to an earlier client's sync is not taken. */
    if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != (ssize_t)sizeof(id))
        id = (uint32_t)uv_hrtime();
    q->sync_id = (int64_t)(id & 0x7fffffff);
    q->cb = cb;
    q->opaque = opaque;
    qmp_frame_init(&q->in, QGA_LINE_MAX);
    uv_pipe_init(loop, &q->pipe, 0);
    uv_timer_init(loop, &q->timer);
    q->pipe.data = q->timer.data = q->connect.data = q;
    uv_timer_start(&q->timer, on_timeout, timeout_ms, 0);
    uv_pipe_connect(&q->connect, &q->pipe, path, on_connected);
    return 0;
}
