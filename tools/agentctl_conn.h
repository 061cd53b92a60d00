/* agentctl_conn.h: agentctl's side of the control protocol.
 *
 * One blocking unix socket, one request in flight: agentctl asks one thing and
 * waits for its answer, so it needs no event loop. Every wait is bounded by a
 * deadline on the monotonic clock, and a descriptor the caller names (a
 * signalfd) can cut any wait short. This layer never prints; failures come
 * back as a negative errno with a sentence in conn->err. */
#ifndef AGENTD_AGENTCTL_CONN_H
#define AGENTD_AGENTCTL_CONN_H

#include <stddef.h>
#include <stdint.h>

struct json_object;

/* A line from the agent may carry a whole definition (query-vm) or QEMU's
 * answer to vm-qmp; those reach 16 MiB, so the cap leaves room above that. */
#define CTL_LINE_MAX (64u * 1024 * 1024)
/* The agent refuses request lines longer than this (docs/protocol.md). */
#define CTL_REQUEST_MAX (1024u * 1024)
/* The agent answered with an error object: class and desc are in conn->err. */
#define CTL_ERR_REFUSED (-10000)
/* No deadline. */
#define CTL_FOREVER INT64_MIN

typedef struct ctl_conn {
    int fd;
    int stop_fd;     /* when readable, waits end with -EINTR; -1 for none */
    char *buf;       /* bytes read and not yet handed out as lines */
    size_t len, cap;
    size_t start;    /* where the next line begins */
    size_t scan;     /* how far buf has been searched for '\n' */
    int64_t next_id;
    char err[512];
} ctl_conn;

/* Called for each event line that arrives while ctl_call() waits. */
typedef void (*ctl_event_fn)(struct json_object *event, const char *line, void *opaque);

int64_t ctl_deadline_after(int seconds);

void ctl_conn_init(ctl_conn *c);
int ctl_connect(ctl_conn *c, const char *path, int64_t deadline);
void ctl_conn_close(ctl_conn *c);

/* The next message, parsed; *ret_line is its raw text, valid until the next
 * read. -ETIMEDOUT, -EINTR (stop_fd), -ECONNRESET (closed between lines),
 * -EPROTO (invalid JSON, not an object, closed mid-line), -EMSGSIZE. */
int ctl_read_message(ctl_conn *c, int64_t deadline, struct json_object **ret_msg,
                     const char **ret_line);

/* Reads the greeting and negotiates capabilities. */
int ctl_negotiate(ctl_conn *c, int64_t deadline);

/* Sends one command and waits for the reply carrying its id. Events that
 * arrive meanwhile go to on_event (or are dropped when it is NULL). On 0,
 * *ret_value is the reply's "return" value (a new reference); an error reply
 * gives CTL_ERR_REFUSED with "Class: desc" in c->err. */
int ctl_call(ctl_conn *c, const char *command, struct json_object *args, int64_t deadline,
             ctl_event_fn on_event, void *opaque, struct json_object **ret_value);

/* ctl_call() in two halves, for a caller that sends a second request (a
 * job-cancel) while it waits for the first: replies to other ids are passed
 * over. On 0, *ret_id is the id the reply will carry. */
int ctl_send_request(ctl_conn *c, const char *command, struct json_object *args, int64_t deadline,
                     int64_t *ret_id);
int ctl_await_reply(ctl_conn *c, int64_t id, int64_t deadline, ctl_event_fn on_event,
                    void *opaque, struct json_object **ret_value);

/* The request line ctl_call() would send, with its '\n', for size checks. */
char *ctl_request_text(const char *command, struct json_object *args, int64_t id);

#endif
