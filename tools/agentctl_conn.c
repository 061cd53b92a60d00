/* agentctl_conn.c: a blocking client for the agent's control socket.
 *
 * The socket stays in blocking mode, but nothing blocks on it unbounded:
 * every read and write is preceded by poll() with the time left before the
 * caller's deadline, and writes use MSG_DONTWAIT so a full socket sends us
 * back to poll() instead of hanging. Lines are split from a buffer that grows
 * to CTL_LINE_MAX and remembers how far it has searched, so a 16 MiB reply
 * read in many pieces is scanned once. */
#include "agentctl_conn.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#define CONN_INITIAL_CAP 65536
#define CONN_READ_MIN 16384
/* QEMU's replies nest a few levels; json-c's default of 32 is tight for
 * vm-qmp answers such as query-qmp-schema. */
#define CONN_JSON_DEPTH 128

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ctl_deadline_after(int seconds)
{
    return now_ms() + (int64_t)seconds * 1000;
}

/* poll()'s timeout for a deadline: -1 waits forever. */
static int remaining_ms(int64_t deadline)
{
    int64_t left;

    if (deadline == CTL_FOREVER)
        return -1;
    left = deadline - now_ms();
    if (left < 0)
        return 0;
    return left > INT_MAX ? INT_MAX : (int)left;
}

static int conn_fail(ctl_conn *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int conn_fail(ctl_conn *c, int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
    return err;
}

void ctl_conn_init(ctl_conn *c)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->stop_fd = -1;
}

void ctl_conn_close(ctl_conn *c)
{
    int stop_fd = c->stop_fd;

    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    ctl_conn_init(c);
    c->stop_fd = stop_fd;
}

/* A unix stream connect() blocks only while the listener's backlog is full;
 * SO_SNDTIMEO is what bounds that wait in the kernel. */
static void set_connect_timeout(int fd, int64_t deadline)
{
    int ms = remaining_ms(deadline);
    struct timeval tv = { 0, 0 };

    if (ms < 0)
        return;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    if (tv.tv_sec == 0 && tv.tv_usec == 0)
        tv.tv_usec = 1000;  /* zero would mean no timeout at all */
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

int ctl_connect(ctl_conn *c, const char *path, int64_t deadline)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd, err;

    if (strlen(path) >= sizeof(sa.sun_path))
        return conn_fail(c, -ENAMETOOLONG, "socket path is longer than %zu bytes",
                         sizeof(sa.sun_path) - 1);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return conn_fail(c, -errno, "socket: %s", strerror(errno));
    set_connect_timeout(fd, deadline);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        err = errno == EAGAIN ? ETIMEDOUT : errno;
        close(fd);
        return conn_fail(c, -err, "%s", strerror(err));
    }
    c->fd = fd;
    return 0;
}

/* Waits until fd is ready for events, the deadline passes, or stop_fd fires. */
static int conn_wait(ctl_conn *c, short events, int64_t deadline)
{
    struct pollfd p[2] = { { .fd = c->fd, .events = events }, { .fd = c->stop_fd, .events = POLLIN } };
    int n;

    for (;;) {
        n = poll(p, c->stop_fd >= 0 ? 2 : 1, remaining_ms(deadline));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ETIMEDOUT;
        if (c->stop_fd >= 0 && p[1].revents)
            return -EINTR;
        return 0;
    }
}

/* Moves the unfinished line to the front and makes room for one more read. */
static int conn_make_room(ctl_conn *c)
{
    size_t cap;
    char *buf;

    if (c->start > 0) {
        memmove(c->buf, c->buf + c->start, c->len - c->start);
        c->len -= c->start;
        c->scan -= c->start;
        c->start = 0;
    }
    if (c->cap - c->len >= CONN_READ_MIN)
        return 0;
    cap = c->cap ? c->cap * 2 : CONN_INITIAL_CAP;
    if (cap > CTL_LINE_MAX + CONN_READ_MIN)
        cap = CTL_LINE_MAX + CONN_READ_MIN;
    if (cap <= c->cap)
        return -EMSGSIZE;
    buf = realloc(c->buf, cap);
    if (!buf)
        return -ENOMEM;
    c->buf = buf;
    c->cap = cap;
    return 0;
}

/* One read of whatever the agent has sent. */
static int conn_fill(ctl_conn *c, int64_t deadline)
{
    ssize_t n;
    int r;

    r = conn_make_room(c);
    if (r < 0)
        return conn_fail(c, r, "the agent sent a line longer than %u MiB", CTL_LINE_MAX >> 20);
    r = conn_wait(c, POLLIN, deadline);
    if (r < 0)
        return r;
    n = read(c->fd, c->buf + c->len, c->cap - c->len);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (n < 0)
        return conn_fail(c, -errno, "read: %s", strerror(errno));
    if (n == 0 && c->len > c->start)
        return conn_fail(c, -EPROTO, "the agent closed the connection in the middle of a line");
    if (n == 0)
        return conn_fail(c, -ECONNRESET, "the agent closed the connection");
    c->len += (size_t)n;
    return 0;
}

/* The next complete line, '\n' and a '\r' before it removed, NUL-terminated. */
static int conn_read_line(ctl_conn *c, int64_t deadline, char **ret_line, size_t *ret_len)
{
    char *nl;
    size_t n;
    int r;

    for (;;) {
        nl = c->len > c->scan ? memchr(c->buf + c->scan, '\n', c->len - c->scan) : NULL;
        if (nl) {
            n = (size_t)(nl - (c->buf + c->start));
            if (n > 0 && nl[-1] == '\r')
                n--;
            c->buf[c->start + n] = '\0';
            *ret_line = c->buf + c->start;
            *ret_len = n;
            c->start = c->scan = (size_t)(nl - c->buf) + 1;
            return 0;
        }
        c->scan = c->len;
        if (c->len - c->start > CTL_LINE_MAX)
            return conn_fail(c, -EMSGSIZE, "the agent sent a line longer than %u MiB",
                             CTL_LINE_MAX >> 20);
        r = conn_fill(c, deadline);
        if (r < 0)
            return r;
    }
}

static bool only_space(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t')
            return false;
    return true;
}

/* Parses a whole line as one JSON object; anything after it is an error. */
static int conn_parse(ctl_conn *c, const char *line, size_t len, struct json_object **ret)
{
    struct json_tokener *tok = json_tokener_new_ex(CONN_JSON_DEPTH);
    struct json_object *obj;
    enum json_tokener_error jerr;
    size_t end;

    if (!tok)
        return -ENOMEM;
    obj = json_tokener_parse_ex(tok, line, (int)len);
    jerr = json_tokener_get_error(tok);
    end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!obj || jerr != json_tokener_success || !only_space(line + end, len - end)) {
        json_object_put(obj);
        return conn_fail(c, -EPROTO, "invalid JSON from the agent (%s): %.80s",
                         jerr == json_tokener_success ? "trailing data"
                                                       : json_tokener_error_desc(jerr),
                         line);
    }
    if (!json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        return conn_fail(c, -EPROTO, "the agent sent JSON that is not an object: %.80s", line);
    }
    *ret = obj;
    return 0;
}

int ctl_read_message(ctl_conn *c, int64_t deadline, struct json_object **ret_msg,
                     const char **ret_line)
{
    char *line;
    size_t len = 0;
    int r;

    if (c->fd < 0)
        return conn_fail(c, -ENOTCONN, "not connected");
    do {
        r = conn_read_line(c, deadline, &line, &len);
        if (r < 0)
            return r;
    } while (only_space(line, len));
    r = conn_parse(c, line, len, ret_msg);
    if (r < 0)
        return r;
    if (ret_line)
        *ret_line = line;
    return 0;
}

static int conn_send(ctl_conn *c, const char *text, size_t len, int64_t deadline)
{
    ssize_t n;
    int r;

    while (len > 0) {
        r = conn_wait(c, POLLOUT, deadline);
        if (r < 0)
            return r;
        n = send(c->fd, text, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0 && errno == EPIPE)
            return conn_fail(c, -ECONNRESET, "the agent closed the connection");
        if (n < 0)
            return conn_fail(c, -errno, "send: %s", strerror(errno));
        text += n;
        len -= (size_t)n;
    }
    return 0;
}

char *ctl_request_text(const char *command, struct json_object *args, int64_t id)
{
    struct json_object *req = json_object_new_object();
    char *text = NULL;

    if (!req)
        return NULL;
    json_object_object_add(req, "execute", json_object_new_string(command));
    if (args)
        json_object_object_add(req, "arguments", json_object_get(args));
    json_object_object_add(req, "id", json_object_new_int64(id));
    if (asprintf(&text, "%s\n",
                 json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN |
                                                         JSON_C_TO_STRING_NOSLASHESCAPE)) < 0)
        text = NULL;
    json_object_put(req);
    return text;
}

/* Whether msg answers the request with this id. An error without an id is
 * the agent failing to read our line at all, and only one request is ever in
 * flight, so it is ours too. */
static bool reply_is_ours(struct json_object *msg, int64_t id)
{
    struct json_object *v;

    if (!json_object_object_get_ex(msg, "id", &v))
        return json_object_object_get_ex(msg, "error", NULL);
    return json_object_is_type(v, json_type_int) && json_object_get_int64(v) == id;
}

static const char *member_string(struct json_object *obj, const char *key)
{
    struct json_object *v;

    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* Hands out the reply's value, or turns its error object into c->err. */
static int reply_take(ctl_conn *c, struct json_object *msg, struct json_object **ret_value)
{
    struct json_object *v;
    const char *cls, *desc;

    if (json_object_object_get_ex(msg, "error", &v)) {
        cls = member_string(v, "class");
        desc = member_string(v, "desc");
        if (!cls || !desc)
            return conn_fail(c, -EPROTO, "malformed error reply from the agent: %.80s",
                             json_object_to_json_string(msg));
        return conn_fail(c, CTL_ERR_REFUSED, "%s: %s", cls, desc);
    }
    json_object_object_get_ex(msg, "return", &v);
    *ret_value = json_object_get(v);
    return 0;
}

static bool is_reply(struct json_object *msg)
{
    return json_object_object_get_ex(msg, "return", NULL) ||
           json_object_object_get_ex(msg, "error", NULL);
}

/* Reads until the reply to id, passing events on and skipping stale replies. */
static int conn_await(ctl_conn *c, int64_t id, int64_t deadline, ctl_event_fn on_event,
                      void *opaque, struct json_object **ret_value)
{
    struct json_object *msg;
    const char *line;
    int r;

    for (;;) {
        r = ctl_read_message(c, deadline, &msg, &line);
        if (r < 0)
            return r;
        if (json_object_object_get_ex(msg, "event", NULL)) {
            if (on_event)
                on_event(msg, line, opaque);
        } else if (!is_reply(msg)) {
            r = conn_fail(c, -EPROTO, "unexpected message from the agent: %.80s", line);
        } else if (reply_is_ours(msg, id)) {
            r = reply_take(c, msg, ret_value);
            json_object_put(msg);
            return r;
        }
        json_object_put(msg);
        if (r < 0)
            return r;
    }
}

int ctl_send_request(ctl_conn *c, const char *command, struct json_object *args, int64_t deadline,
                     int64_t *ret_id)
{
    int64_t id = c->next_id++;
    char *text = ctl_request_text(command, args, id);
    int r;

    if (!text)
        return conn_fail(c, -ENOMEM, "out of memory");
    if (strlen(text) > CTL_REQUEST_MAX)
        r = conn_fail(c, -EMSGSIZE, "the request is longer than the agent accepts (%u KiB)",
                      CTL_REQUEST_MAX >> 10);
    else
        r = conn_send(c, text, strlen(text), deadline);
    free(text);
    if (r == 0)
        *ret_id = id;
    return r;
}

int ctl_await_reply(ctl_conn *c, int64_t id, int64_t deadline, ctl_event_fn on_event,
                    void *opaque, struct json_object **ret_value)
{
    return conn_await(c, id, deadline, on_event, opaque, ret_value);
}

int ctl_call(ctl_conn *c, const char *command, struct json_object *args, int64_t deadline,
             ctl_event_fn on_event, void *opaque, struct json_object **ret_value)
{
    int64_t id;
    int r = ctl_send_request(c, command, args, deadline, &id);

    if (r < 0)
        return r;
    return conn_await(c, id, deadline, on_event, opaque, ret_value);
}

int ctl_negotiate(ctl_conn *c, int64_t deadline)
{
    struct json_object *msg, *qmp, *value = NULL;
    const char *line;
    bool greeting;
    int r;

    r = ctl_read_message(c, deadline, &msg, &line);
    if (r == -ECONNRESET)
        return conn_fail(c, -EPROTO, "the agent closed the connection before its greeting");
    if (r < 0)
        return r;
    greeting = json_object_object_get_ex(msg, "QMP", &qmp) &&
               json_object_is_type(qmp, json_type_object);
    if (!greeting)
        r = conn_fail(c, -EPROTO, "no QMP greeting (is this an agentd socket?): %.80s", line);
    json_object_put(msg);
    if (r < 0)
        return r;
    r = ctl_call(c, "qmp_capabilities", NULL, deadline, NULL, NULL, &value);
    json_object_put(value);
    return r;
}
