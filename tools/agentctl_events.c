/* agentctl_events.c: the events verb, a stream with no natural end.
 *
 * SIGINT and SIGTERM are blocked and read from a signalfd that every wait on
 * the socket also watches, so an interrupt ends the stream cleanly at any
 * point (exit 0) without a handler racing the poll.
 *
 * With --after, the agent's kept events are fetched with query-events while
 * live events keep arriving. Those live ones are held until the replay is
 * printed, and any event whose sequence number was already printed is
 * skipped, so the output has no gap and no repeat. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <json-c/json.h>

#include "agentctl.h"
#include "agentctl_conn.h"
#include "agentctl_print.h"

typedef struct event_stream {
    bool json;
    int64_t last_seq;              /* the highest sequence number printed, or -1 */
    struct json_object *held;      /* live events that came during the replay */
} event_stream;

static int stop_signals_fd(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -errno;
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* Prints one event unless it was printed already; line is its text as received. */
static void emit(event_stream *s, struct json_object *event, const char *line)
{
    struct json_object *seq;
    int64_t n = -1;

    if (json_object_object_get_ex(event, "seq", &seq) && json_object_is_type(seq, json_type_int))
        n = json_object_get_int64(seq);
    if (n >= 0 && n <= s->last_seq)
        return;
    if (n >= 0)
        s->last_seq = n;
    if (s->json)
        printf("%s\n", line ? line : json_object_to_json_string_ext(event, JSON_C_TO_STRING_PLAIN |
                                                                      JSON_C_TO_STRING_NOSLASHESCAPE));
    else
        ctl_print_event(stdout, event);
    fflush(stdout);
}

static void hold(struct json_object *event, const char *line, void *opaque)
{
    event_stream *s = opaque;

    json_object_array_add(s->held, json_object_get(event));
}

static void emit_array(event_stream *s, struct json_object *events)
{
    for (size_t i = 0; json_object_is_type(events, json_type_array) &&
                       i < json_object_array_length(events); i++)
        emit(s, json_object_array_get_idx(events, i), NULL);
}

/* Prints the kept events after --after, then the live ones held meanwhile. */
static int replay(ctl_conn *c, event_stream *s, const ctl_request *req, int64_t deadline)
{
    struct json_object *value = NULL, *missed;
    int r;

    s->held = json_object_new_array();
    r = ctl_call(c, req->command, req->args, deadline, hold, s, &value);
    if (r == 0) {
        if (json_object_object_get_ex(value, "missed", &missed) && json_object_get_boolean(missed))
            fprintf(stderr, "agentctl: some events after %" PRId64
                            " were already dropped by the agent\n", req->after);
        emit_array(s, json_object_object_get(value, "events"));
        emit_array(s, s->held);
    }
    json_object_put(value);
    json_object_put(s->held);
    s->held = NULL;
    return r;
}

/* Prints events until the agent hangs up or a stop signal arrives. */
static int follow(ctl_conn *c, event_stream *s)
{
    struct json_object *msg;
    const char *line;
    int r;

    for (;;) {
        r = ctl_read_message(c, CTL_FOREVER, &msg, &line);
        if (r < 0)
            return r;
        if (json_object_object_get_ex(msg, "event", NULL))
            emit(s, msg, line);
        json_object_put(msg);
    }
}

static int events_exit(const ctl_options *o, ctl_conn *c, int r)
{
    if (r == -EINTR)
        return CTL_EXIT_OK;
    if (r == CTL_ERR_REFUSED) {
        fprintf(stderr, "agentctl: ");
        ctl_put_safe(stderr, c->err, 1);
        fputc('\n', stderr);
        return CTL_EXIT_REFUSED;
    }
    if (r == -ETIMEDOUT)
        fprintf(stderr, "agentctl: %s: the agent did not answer in time\n", o->socket);
    else
        fprintf(stderr, "agentctl: %s: %s\n", o->socket, c->err[0] ? c->err : strerror(-r));
    return CTL_EXIT_CONNECT;
}

int ctl_run_events(const ctl_options *o, const ctl_request *req)
{
    event_stream s = { .json = o->json, .last_seq = -1 };
    int64_t deadline = ctl_deadline_after(req->wait_s);
    ctl_conn c;
    int r, code;

    ctl_conn_init(&c);
    c.stop_fd = stop_signals_fd();
    if (c.stop_fd < 0) {
        fprintf(stderr, "agentctl: signalfd: %s\n", strerror(errno));
        return CTL_EXIT_CONNECT;
    }
    r = ctl_connect(&c, o->socket, deadline);
    if (r < 0) {
        fprintf(stderr, "agentctl: cannot connect to %s: %s\n", o->socket, c.err);
        close(c.stop_fd);
        return CTL_EXIT_CONNECT;
    }
    r = ctl_negotiate(&c, deadline);
    if (r == 0 && req->after >= 0)
        r = replay(&c, &s, req, deadline);
    if (r == 0)
        r = follow(&c, &s);
    code = events_exit(o, &c, r);
    ctl_conn_close(&c);
    close(c.stop_fd);
    return code;
}
