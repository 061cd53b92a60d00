/* server.c: the control socket: accept, authenticate by SO_PEERCRED, frame
 * lines, negotiate capabilities, dispatch, answer, broadcast events.
 *
 * Nothing here waits for a client: writes that do not fit the socket are
 * queued by libuv, and a client whose queue grows past a bound is dropped. */
#include "server.h"

#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <uv.h>

#include "agent.h"
#include "commands.h"
#include "log.h"
#include "qmp/qmp.h"
#include "statefile.h"

#define MAX_LINE (1u << 20)
#define MAX_QUEUED_OUTPUT (8u << 20)
#define READ_CHUNK 65536

struct request {
    client *client;          /* NULL once the client is gone */
    server *srv;
    struct json_object *id;  /* echoed; may be NULL */
    bool admin;
    uid_t uid;               /* of the client that sent it */
    bool holds_input;        /* the client's next lines wait for this one's answer */
    request *next, *prev;    /* in the client's list of open requests */
};

struct client {
    server *srv;
    uv_pipe_t pipe;           /* unused by a virtual client */
    client_sink sink;         /* set for a virtual client */
    void *sink_opaque;
    qmp_frame in;
    json_tokener *tok;
    bool negotiated;
    bool admin;
    bool closing;
    uid_t uid;
    pid_t pid;
    request *requests;
    bool input_held;          /* a request holds the lines after it */
    bool in_input;            /* process_input is on the stack */
    const server_stream_ops *stream;   /* set once the connection is a raw stream */
    void *stream_opaque;
    client *next, *prev;
};

struct server {
    agent *agent;
    uv_pipe_t listener;
    bool listening;
    gid_t admin_gid;
    bool have_admin_gid;
    client *clients;
};

static void client_close(client *c);
static void client_free(client *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

/* A virtual client may be closed from inside its own input processing, so
 * it is freed from the loop's next turn, like a real one. */
typedef struct deferred_free {
    uv_idle_t idle;
    client *c;
} deferred_free;

static void on_deferred_free(uv_handle_t *h)
{
    deferred_free *d = (deferred_free *)h;

    client_free(d->c);
    free(d);
}

static void run_deferred_free(uv_idle_t *h)
{
    uv_idle_stop(h);
    uv_close((uv_handle_t *)h, on_deferred_free);
}

static void client_free_later(client *c)
{
    deferred_free *d = malloc(sizeof(*d));

    if (!d)
        return; /* leaked rather than freed under a caller's feet */
    d->c = c;
    uv_idle_init(c->srv->agent->loop, &d->idle);
    uv_idle_start(&d->idle, run_deferred_free);
}

/* ---- writing ------------------------------------------------------------ */

typedef struct write_req {
    uv_write_t req;
    char data[];
} write_req;

static void on_written(uv_write_t *req, int status)
{
    client *c = req->handle->data;

    free(req);
    /* A stream's owner produces its next bytes once the peer took these. */
    if (status == 0 && c && !c->closing && c->stream && c->stream->on_drained)
        c->stream->on_drained(c, c->stream_opaque);
}

static void client_send(client *c, const char *data, size_t len)
{
    uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
    int n;

    if (c->closing)
        return;
    if (c->sink) {
        c->sink(data, len, c->sink_opaque);
        return;
    }
    n = uv_try_write((uv_stream_t *)&c->pipe, &buf, 1);
    if (n == (int)len)
        return;
    if (n < 0 && n != UV_EAGAIN) {
        client_close(c);
        return;
    }
    size_t done = n > 0 ? (size_t)n : 0;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) + len - done > MAX_QUEUED_OUTPUT) {
        log_warn("client pid %d: not reading its socket; disconnecting it", (int)c->pid);
        client_close(c);
        return;
    }
    write_req *w = malloc(sizeof(*w) + len - done);
    if (!w) {
        client_close(c);
        return;
    }
    memcpy(w->data, data + done, len - done);
    buf = uv_buf_init(w->data, (unsigned)(len - done));
    if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &buf, 1, on_written) < 0) {
        free(w);
        client_close(c);
    }
}

static void client_send_json(client *c, struct json_object *o)
{
    size_t len;
    const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
    char *line = malloc(len + 1);

    if (!line)
        return;
    memcpy(line, s, len);
    line[len] = '\n';
    client_send(c, line, len + 1);
    free(line);
}

void server_broadcast(const char *line, size_t len, void *opaque)
{
    server *s = opaque;

    for (client *c = s->clients, *next; c; c = next) {
        next = c->next;
        if (c->negotiated && !c->closing && !c->stream)
            client_send(c, line, len);
    }
}

/* ---- requests ----------------------------------------------------------- */

agent *request_agent(const request *r)
{
    return r->srv->agent;
}

bool request_is_admin(const request *r)
{
    return r->admin;
}

uid_t request_uid(const request *r)
{
    return r->uid;
}

static void process_input(client *c);

static void request_free(request *r)
{
    client *held = r->holds_input && r->client ? r->client : NULL;

    if (r->client) {
        if (r->prev)
            r->prev->next = r->next;
        else
            r->client->requests = r->next;
        if (r->next)
            r->next->prev = r->prev;
    }
    json_object_put(r->id);
    free(r);
    if (held && !held->stream) {
        held->input_held = false;
        if (!held->in_input)
            process_input(held);
    }
}

void request_hold_input(request *r)
{
    if (r->client) {
        r->holds_input = true;
        r->client->input_held = true;
    }
}

client *request_become_stream(request *r, const server_stream_ops *ops, void *opaque)
{
    return request_become_stream_with(r, NULL, ops, opaque);
}

client *request_become_stream_with(request *r, struct json_object *ret, const server_stream_ops *ops,
                                   void *opaque)
{
    client *c = r->client;

    if (!c) {
        request_ok(r, ret);
        return NULL;
    }
    c->stream = ops;
    c->stream_opaque = opaque;
    request_ok(r, ret);
    /* Answers still owed on this connection would land in the byte stream. */
    for (request *o = c->requests; o; o = o->next)
        o->client = NULL;
    c->requests = NULL;
    c->input_held = false;
    return c;
}

void server_stream_resume(client *c)
{
    if (c->stream && !c->closing && !c->in_input)
        process_input(c);
}

void server_stream_write(client *c, const char *data, size_t len)
{
    if (c->stream)
        client_send(c, data, len);
}

size_t server_stream_queued(const client *c)
{
    if (c->sink || c->closing)
        return 0;
    return uv_stream_get_write_queue_size((const uv_stream_t *)&c->pipe);
}

void server_stream_pause(client *c, bool paused)
{
    if (c->sink || c->closing || !c->stream)
        return;
    if (paused)
        uv_read_stop((uv_stream_t *)&c->pipe);
    else
        uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

static void drop_input(client *c, const char *data, size_t len, void *opaque)
{
}

static void no_close(client *c, void *opaque)
{
}

/* A finished stream's connection: its owner is gone, what the peer sends is dropped. */
static const server_stream_ops finished_ops = { .on_input = drop_input, .on_closed = no_close };

static void on_stream_shut(uv_shutdown_t *req, int status)
{
    client *c = req->data;

    free(req);
    client_close(c);
}

void server_stream_finish(client *c)
{
    uv_shutdown_t *req;

    if (!c->stream || c->closing)
        return;
    c->stream = &finished_ops;
    c->stream_opaque = NULL;
    if (c->sink || !(req = malloc(sizeof(*req)))) {
        client_close(c);
        return;
    }
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->pipe, on_stream_shut) < 0) {
        free(req);
        client_close(c);
    }
}

void server_stream_close(client *c)
{
    c->stream = NULL;
    client_close(c);
}

static void request_send(request *r, const char *key, struct json_object *value)
{
    struct json_object *msg = json_object_new_object();

    json_object_object_add(msg, key, value);
    if (r->id)
        json_object_object_add(msg, "id", json_object_get(r->id));
    if (r->client)
        client_send_json(r->client, msg);
    json_object_put(msg);
    request_free(r);
}

void request_ok(request *r, struct json_object *ret)
{
    request_send(r, "return", ret ? ret : json_object_new_object());
}

void request_ok_text(request *r, const char *json, size_t len)
{
    const char *id = r->id ? json_object_to_json_string_ext(r->id, JSON_C_TO_STRING_PLAIN) : NULL;
    size_t idlen = id ? strlen(id) : 0;
    char *line = malloc(len + idlen + 32);

    if (line && r->client) {
        size_t n = 0;
        memcpy(line + n, "{\"return\":", 10), n += 10;
        memcpy(line + n, json, len), n += len;
        if (id) {
            memcpy(line + n, ",\"id\":", 6), n += 6;
            memcpy(line + n, id, idlen), n += idlen;
        }
        memcpy(line + n, "}\n", 2), n += 2;
        client_send(r->client, line, n);
    }
    free(line);
    request_free(r);
}

static struct json_object *error_body(const char *err_class, const char *desc)
{
    struct json_object *err = json_object_new_object();

    json_object_object_add(err, "class", json_object_new_string(err_class));
    json_object_object_add(err, "desc", json_object_new_string(desc));
    return err;
}

void request_error(request *r, const char *err_class, const char *fmt, ...)
{
    char desc[4096];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(desc, sizeof(desc), fmt, ap);
    va_end(ap);
    request_send(r, "error", error_body(err_class, desc));
}

static request *request_new(client *c, struct json_object *id)
{
    request *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    r->client = c;
    r->srv = c->srv;
    r->admin = c->admin;
    r->uid = c->uid;
    r->id = id ? json_object_get(id) : NULL;
    r->next = c->requests;
    if (c->requests)
        c->requests->prev = r;
    c->requests = r;
    return r;
}

/* ---- one line from a client ------------------------------------------------ */

static void send_error_line(client *c, struct json_object *id, const char *cls, const char *desc)
{
    struct json_object *msg = json_object_new_object();

    json_object_object_add(msg, "error", error_body(cls, desc));
    if (id)
        json_object_object_add(msg, "id", json_object_get(id));
    client_send_json(c, msg);
    json_object_put(msg);
}

static void handle_request(client *c, struct json_object *msg)
{
    struct json_object *exec, *args = NULL, *id = NULL;
    const command *cmd;

    json_object_object_get_ex(msg, "id", &id);
    if (!json_object_object_get_ex(msg, "execute", &exec) || !json_object_is_type(exec, json_type_string)) {
        send_error_line(c, id, "GenericError", "expected {\"execute\": COMMAND, \"arguments\": {...}, \"id\": ID}");
        return;
    }
    json_object_object_foreach(msg, key, val) {
        (void)val;
        if (strcmp(key, "execute") && strcmp(key, "arguments") && strcmp(key, "id")) {
            char desc[128];
            snprintf(desc, sizeof(desc), "%.64s: unknown member of a request", key);
            send_error_line(c, id, "GenericError", desc);
            return;
        }
    }
    if (json_object_object_get_ex(msg, "arguments", &args) && !json_object_is_type(args, json_type_object)) {
        send_error_line(c, id, "InvalidParameter", "arguments: must be an object");
        return;
    }
    const char *name = json_object_get_string(exec);
    if (!c->negotiated && strcmp(name, "qmp_capabilities") != 0) {
        send_error_line(c, id, "CommandNotFound",
                        "Expecting capabilities negotiation with 'qmp_capabilities'");
        return;
    }
    if (!(cmd = command_find(name))) {
        char desc[160];
        snprintf(desc, sizeof(desc), "The command %.100s has not been found", name);
        send_error_line(c, id, "CommandNotFound", desc);
        return;
    }
    if (cmd->admin_only && !c->admin) {
        send_error_line(c, id, "PermissionDenied", "only root and the admin group may run this command");
        return;
    }
    if (strcmp(name, "qmp_capabilities") == 0) {
        if (c->negotiated) {
            send_error_line(c, id, "CommandNotFound", "Capabilities negotiation is already complete, command ignored");
            return;
        }
        c->negotiated = true;
    }
    request *r = request_new(c, id);
    if (!r) {
        send_error_line(c, id, "GenericError", "out of memory");
        return;
    }
    cmd->run(r, args);
}

static void handle_line(client *c, const char *line, size_t len)
{
    struct json_object *msg;

    json_tokener_reset(c->tok);
    msg = json_tokener_parse_ex(c->tok, line, (int)len);
    if (!msg || json_tokener_get_error(c->tok) != json_tokener_success ||
        json_tokener_get_parse_end(c->tok) != len || !json_object_is_type(msg, json_type_object)) {
        send_error_line(c, NULL, "GenericError", "JSON parse error: expected one JSON object on the line");
        json_object_put(msg);
        return;
    }
    handle_request(c, msg);
    json_object_put(msg);
}

/* ---- reading ------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    client *c = h->data;
    char *p;
    size_t avail;

    if (qmp_frame_reserve(&c->in, READ_CHUNK, &p, &avail) < 0) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init(p, (unsigned)avail);
}

/* A stream's bytes, as they came, to its owner. */
static void deliver_stream(client *c)
{
    size_t n = c->in.len - c->in.start;
    const char *data = c->in.buf + c->in.start;

    qmp_frame_reset(&c->in);
    if (n > 0)
        c->stream->on_input(c, data, n, c->stream_opaque);
}

static void process_input(client *c)
{
    char *line;
    size_t len;
    int r = 0;

    c->in_input = true;
    while (!c->closing && !c->input_held && !c->stream && (r = qmp_frame_next(&c->in, &line, &len)) == 1) {
        while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
            line[--len] = '\0';
        if (len > 0)
            handle_line(c, line, len);
    }
    c->in_input = false;
    if (!c->closing && c->stream) {
        deliver_stream(c);
        return;
    }
    if (!c->closing && r == -EMSGSIZE) {
        send_error_line(c, NULL, "GenericError", "request line longer than 1 MiB; closing");
        client_close(c);
    }
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    client *c = s->data;

    if (n < 0) {
        client_close(c);
        return;
    }
    qmp_frame_commit(&c->in, (size_t)n);
    process_input(c);
}

void server_client_feed(client *c, const char *data, size_t len)
{
    while (len > 0 && !c->closing) {
        char *p;
        size_t avail;
        if (qmp_frame_reserve(&c->in, 1, &p, &avail) < 0) {
            client_close(c);
            return;
        }
        size_t n = len < avail ? len : avail;
        memcpy(p, data, n);
        qmp_frame_commit(&c->in, n);
        data += n;
        len -= n;
        process_input(c);
    }
}

/* ---- clients ------------------------------------------------------------- */

static void client_free(client *c)
{
    qmp_frame_free(&c->in);
    json_tokener_free(c->tok);
    free(c);
}

static void on_client_closed(uv_handle_t *h)
{
    client_free(h->data);
}

static void client_close(client *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->stream)
        c->stream->on_closed(c, c->stream_opaque);
    /* Handlers still running answer into the void. */
    for (request *r = c->requests; r; r = r->next)
        r->client = NULL;
    c->requests = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->srv->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->sink)
        client_free_later(c);
    else
        uv_close((uv_handle_t *)&c->pipe, on_client_closed);
}

void server_client_close(client *c)
{
    client_close(c);
}

static bool in_group(pid_t pid, gid_t gid)
{
    char path[64], line[4096];
    FILE *f;
    bool found = false;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if (!(f = fopen(path, "re")))
        return false;
    while (!found && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "Groups:", 7) != 0 && strncmp(line, "Gid:", 4) != 0)
            continue;
        char *p = strchr(line, ':') + 1, *end;
        for (;;) {
            unsigned long g = strtoul(p, &end, 10);
            if (end == p)
                break;
            if ((gid_t)g == gid)
                found = true;
            p = end;
        }
    }
    fclose(f);
    return found;
}

static void authenticate(client *c)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    uv_os_fd_t fd;
    server *s = c->srv;

    c->admin = false;
    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return;
    c->uid = cred.uid;
    c->pid = cred.pid;
    c->admin = cred.uid == 0 || cred.uid == geteuid() ||
               (s->have_admin_gid && (cred.gid == s->admin_gid || in_group(cred.pid, s->admin_gid)));
}

struct json_object *server_version_json(void)
{
    struct json_object *ver = json_object_new_object();

    json_object_object_add(ver, "major", json_object_new_int(AGENTD_VERSION_MAJOR));
    json_object_object_add(ver, "minor", json_object_new_int(AGENTD_VERSION_MINOR));
    json_object_object_add(ver, "micro", json_object_new_int(AGENTD_VERSION_MICRO));
    return ver;
}

static void send_greeting(client *c)
{
    agent *a = c->srv->agent;
    struct json_object *g = json_object_new_object(), *q = json_object_new_object();
    struct json_object *v = json_object_new_object();
    struct json_object *me = json_object_new_object();

    /* A QMP client reads the peer's version from "qemu": the agent's goes there. */
    json_object_object_add(v, "qemu", server_version_json());
    json_object_object_add(v, "package", json_object_new_string("agentd " AGENTD_VERSION_STRING));
    json_object_object_add(q, "version", v);
    json_object_object_add(q, "capabilities", json_object_new_array());
    json_object_object_add(me, "host", json_object_new_string(a->hostname));
    json_object_object_add(me, "pid", json_object_new_int((int)getpid()));
    json_object_object_add(me, "epoch", json_object_new_int64(a->epoch));
    json_object_object_add(q, "agentd", me);
    json_object_object_add(g, "QMP", q);
    client_send_json(c, g);
    json_object_put(g);
}

static client *client_new(server *s)
{
    client *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->srv = s;
    c->tok = json_tokener_new_ex(64);
    qmp_frame_init(&c->in, MAX_LINE);
    if (!c->tok) {
        free(c);
        return NULL;
    }
    return c;
}

static void client_link(client *c)
{
    server *s = c->srv;

    c->next = s->clients;
    if (s->clients)
        s->clients->prev = c;
    s->clients = c;
}

client *server_connect_virtual(server *s, bool admin, client_sink sink, void *opaque)
{
    client *c = client_new(s);

    if (!c)
        return NULL;
    c->sink = sink;
    c->sink_opaque = opaque;
    c->admin = admin;
    c->uid = admin ? 0 : 65534;
    client_link(c);
    send_greeting(c);
    return c;
}

static void on_connection(uv_stream_t *l, int status)
{
    server *s = l->data;
    client *c;

    if (status < 0 || !(c = client_new(s)))
        return;
    uv_pipe_init(s->agent->loop, &c->pipe, 0);
    c->pipe.data = c;
    if (uv_accept(l, (uv_stream_t *)&c->pipe) < 0) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->pipe, on_client_closed);
        return;
    }
    client_link(c);
    authenticate(c);
    log_debug("client pid %d uid %d connected (%s)", (int)c->pid, (int)c->uid,
              c->admin ? "admin" : "read-only");
    send_greeting(c);
    uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

/* ---- the listening socket -------------------------------------------------- */

static int resolve_group(const char *name, gid_t *ret)
{
    struct group *g = getgrnam(name);

    if (!g)
        return -ENOENT;
    *ret = g->gr_gid;
    return 0;
}

static int prepare_socket_path(agent *a, gid_t *ret_gid, bool *ret_has_gid, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(a->cfg.socket_path, '/');
    int r;

    if (slash && slash != a->cfg.socket_path) {
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - a->cfg.socket_path), a->cfg.socket_path);
        if ((r = statefile_mkdir_p(dir, 0755)) < 0) {
            snprintf(err, errlen, "creating %s: %s", dir, strerror(-r));
            return r;
        }
    }
    *ret_has_gid = false;
    if (a->cfg.socket_group) {
        if (resolve_group(a->cfg.socket_group, ret_gid) < 0) {
            snprintf(err, errlen, "socket-group: no group named '%s'", a->cfg.socket_group);
            return -ENOENT;
        }
        *ret_has_gid = true;
    }
    /* The state-dir lock already proved no other agent owns this socket. */
    unlink(a->cfg.socket_path);
    return 0;
}

int server_new(agent *a, server **ret, char *err, size_t errlen)
{
    server *s = calloc(1, sizeof(*s));

    if (!s)
        return -ENOMEM;
    s->agent = a;
    if (a->cfg.admin_group) {
        if (resolve_group(a->cfg.admin_group, &s->admin_gid) < 0) {
            snprintf(err, errlen, "admin-group: no group named '%s'", a->cfg.admin_group);
            free(s);
            return -ENOENT;
        }
        s->have_admin_gid = true;
    }
    *ret = s;
    return 0;
}

int server_listen(server *s, char *err, size_t errlen)
{
    agent *a = s->agent;
    gid_t sock_gid;
    bool has_sock_gid;
    int r;

    if ((r = prepare_socket_path(a, &sock_gid, &has_sock_gid, err, errlen)) < 0)
        return r;
    uv_pipe_init(a->loop, &s->listener, 0);
    s->listener.data = s;
    s->listening = true;
    /* Created with no access for others, then opened up to the group: never a
     * moment where the socket is wider than configured. */
    mode_t old = umask(0177);
    r = uv_pipe_bind(&s->listener, a->cfg.socket_path);
    umask(old);
    if (r == 0 && (has_sock_gid && chown(a->cfg.socket_path, (uid_t)-1, sock_gid) < 0))
        r = -errno;
    if (r == 0 && chmod(a->cfg.socket_path, 0660) < 0)
        r = -errno;
    if (r == 0)
        r = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
    if (r < 0)
        snprintf(err, errlen, "listening on %s: %s", a->cfg.socket_path, uv_strerror(r));
    return r;
}

int server_start(agent *a, server **ret, char *err, size_t errlen)
{
    server *s;
    int r = server_new(a, &s, err, errlen);

    if (r < 0)
        return r;
    if ((r = server_listen(s, err, errlen)) < 0) {
        server_stop(s);
        return r;
    }
    *ret = s;
    return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
    free(h->data);
}

void server_stop(server *s)
{
    if (!s)
        return;
    while (s->clients)
        client_close(s->clients);
    if (s->listening)
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    else
        free(s);
}
