/* console.c: see console.h. */
#include "console.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "agent.h"
#include "log.h"
#include "server.h"
#include "vm.h"

#define CONSOLE_CLIENTS_MAX 16
#define CONSOLE_PENDING_MAX 8
#define CONNECT_TIMEOUT_MS 5000
#define GUEST_QUEUE_MAX (1u << 20)   /* typed ahead of a guest that does not read */

typedef struct pending_attach {
    request *r;
    console_attach_opts o;
} pending_attach;

/* The handles come first: their close callbacks find the console from them. */
struct vm_console {
    uv_pipe_t pipe;               /* to QEMU's serial socket */
    uv_connect_t connect;
    uv_timer_t timer;             /* the connect's deadline */
    vm *v;
    bool connected;
    bool shut;                    /* closing: v may be gone, callbacks only wind down */
    int handles_open;             /* freed when both handles closed */
    client *writer;
    client *readers[CONSOLE_CLIENTS_MAX];
    size_t nreaders;
    pending_attach pending[CONSOLE_PENDING_MAX];
    size_t npending;
    char buf[65536];
};

static const char took_over[] = "\r\n[agentd: another client took over the console]\r\n";

static void on_handle_closed(uv_handle_t *h)
{
    vm_console *c = h->data;

    if (--c->handles_open == 0)
        free(c);
}

static void drop_client(client *cl, const char *why)
{
    if (why)
        server_stream_write(cl, why, strlen(why));
    server_stream_close(cl);
}

/* Closes the console: pending attaches fail, clients are dropped. */
static void shut(vm_console *c, const char *why)
{
    char msg[256];

    if (c->shut)
        return;
    c->shut = true;
    if (c->v->console == c)
        c->v->console = NULL;
    for (size_t i = 0; i < c->npending; i++)
        request_error(c->pending[i].r, "GenericError", "console of %s: %s", c->v->def.name, why);
    c->npending = 0;
    snprintf(msg, sizeof(msg), "\r\n[agentd: console closed: %s]\r\n", why);
    if (c->writer)
        drop_client(c->writer, msg);
    c->writer = NULL;
    for (size_t i = 0; i < c->nreaders; i++)
        drop_client(c->readers[i], msg);
    c->nreaders = 0;
    if (!uv_is_closing((uv_handle_t *)&c->pipe))
        uv_close((uv_handle_t *)&c->pipe, on_handle_closed);
    if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static bool has_clients(const vm_console *c)
{
    return c->writer || c->nreaders || c->npending;
}

/* ---- bytes both ways ------------------------------------------------------ */

static void on_guest_written(uv_write_t *w, int status)
{
    free(w);
}

static void on_client_input(client *cl, const char *data, size_t len, void *opaque)
{
    vm_console *c = opaque;
    uv_write_t *w;
    uv_buf_t b;

    if (cl != c->writer || !c->connected)
        return;     /* read-only watchers type into the void */
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) + len > GUEST_QUEUE_MAX)
        return;     /* the guest does not read its serial port: drop, never block */
    if (!(w = malloc(sizeof(*w) + len)))
        return;
    memcpy(w + 1, data, len);
    b = uv_buf_init((char *)(w + 1), (unsigned)len);
    if (uv_write(w, (uv_stream_t *)&c->pipe, &b, 1, on_guest_written) < 0)
        free(w);
}

static void forget_client(vm_console *c, client *cl)
{
    if (c->writer == cl)
        c->writer = NULL;
    for (size_t i = 0; i < c->nreaders; i++)
        if (c->readers[i] == cl) {
            c->readers[i] = c->readers[--c->nreaders];
            break;
        }
}

static void on_client_closed(client *cl, void *opaque)
{
    vm_console *c = opaque;

    forget_client(c, cl);
    if (!has_clients(c))
        shut(c, "no client left");
}

static const server_stream_ops stream_ops = { .on_input = on_client_input, .on_closed = on_client_closed };

static void on_guest_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    vm_console *c = h->data;

    *buf = uv_buf_init(c->buf, sizeof(c->buf));
}

static void on_guest_output(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    vm_console *c = s->data;

    if (n < 0) {
        shut(c, n == UV_EOF ? "QEMU closed the serial port" : uv_strerror((int)n));
        return;
    }
    if (c->writer)
        server_stream_write(c->writer, buf->base, (size_t)n);
    for (size_t i = 0; i < c->nreaders; i++)
        server_stream_write(c->readers[i], buf->base, (size_t)n);
}

/* ---- attaching ---------------------------------------------------------------- */

static void admit(vm_console *c, request *r, const console_attach_opts *o)
{
    client *old = c->writer, *cl;

    if (!o->readonly && old && !o->takeover) {
        request_error(r, "Busy", "console of %s has a writer; attach read-only, or take over", c->v->def.name);
        return;
    }
    if (o->readonly && c->nreaders == CONSOLE_CLIENTS_MAX) {
        request_error(r, "Busy", "console of %s: %d watchers already", c->v->def.name, CONSOLE_CLIENTS_MAX);
        return;
    }
    if (!(cl = request_become_stream(r, &stream_ops, c)))
        return;
    if (o->readonly) {
        c->readers[c->nreaders++] = cl;
    } else {
        c->writer = cl;
        if (old) {
            log_notice("vm %s: console taken over", c->v->def.name);
            drop_client(old, took_over);
        }
    }
    server_stream_resume(cl);
}

static void on_connected(uv_connect_t *req, int status)
{
    vm_console *c = req->handle->data;
    pending_attach p[CONSOLE_PENDING_MAX];
    size_t n = c->npending;

    if (c->shut)
        return;
    uv_timer_stop(&c->timer);
    if (status < 0) {
        shut(c, uv_strerror(status));
        return;
    }
    c->connected = true;
    uv_read_start((uv_stream_t *)&c->pipe, on_guest_alloc, on_guest_output);
    memcpy(p, c->pending, n * sizeof(p[0]));
    c->npending = 0;
    for (size_t i = 0; i < n; i++)
        admit(c, p[i].r, &p[i].o);
    if (!has_clients(c))
        shut(c, "no client left");
}

static void on_connect_timeout(uv_timer_t *t)
{
    shut(t->data, "QEMU's serial socket did not accept the connection in time");
}

static vm_console *console_open(vm *v)
{
    vm_console *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->v = v;
    uv_pipe_init(v->agent->loop, &c->pipe, 0);
    uv_timer_init(v->agent->loop, &c->timer);
    c->pipe.data = c->timer.data = c;
    c->handles_open = 2;
    v->console = c;
    uv_pipe_connect(&c->connect, &c->pipe, v->serial_path, on_connected);
    uv_timer_start(&c->timer, on_connect_timeout, CONNECT_TIMEOUT_MS, 0);
    return c;
}

void console_attach(vm *v, request *r, const console_attach_opts *o)
{
    vm_console *c = v->console;

    if (!vm_has_process(v) || v->state == VM_STARTING || v->state == VM_STOPPING) {
        request_error(r, "InvalidState", "%s is %s: its console exists while it runs", v->def.name,
                      vm_state_name(v));
        return;
    }
    if (!c && !(c = console_open(v))) {
        request_error(r, "GenericError", "out of memory");
        return;
    }
    if (c->connected) {
        admit(c, r, o);
        return;
    }
    if (c->npending == CONSOLE_PENDING_MAX) {
        request_error(r, "Busy", "console of %s: too many clients attaching at once", v->def.name);
        return;
    }
    /* Bytes typed right after the request wait for the answer. */
    request_hold_input(r);
    c->pending[c->npending++] = (pending_attach){ r, *o };
}

void console_close(vm *v, const char *why)
{
    if (v->console)
        shut(v->console, why);
}
