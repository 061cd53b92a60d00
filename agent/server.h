/* server.h: the control socket and its QMP-shaped protocol.
 *
 * Each line from a client is one request; the command handler answers it,
 * possibly much later, through request_ok() or request_error(). A request
 * whose client went away is still answered by its handler; the answer is
 * dropped. Events go to every negotiated client. */
#ifndef AGENTD_SERVER_H
#define AGENTD_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct json_object;
typedef struct agent agent;
typedef struct server server;
typedef struct request request;

typedef struct client client;
/* Where a virtual client's output goes: whole lines, each ending in '\n'. */
typedef void (*client_sink)(const char *data, size_t len, void *opaque);

/* A server with no socket yet; server_listen opens it. */
int server_new(agent *a, server **ret, char *err, size_t errlen);
int server_listen(server *s, char *err, size_t errlen);
/* server_new + server_listen. */
int server_start(agent *a, server **ret, char *err, size_t errlen);
/* Stops listening and closes every client; pending requests stay valid. */
void server_stop(server *s);
/* A client without a socket, for tests and the fuzz target: it gets the
 * greeting at once, its input is fed as bytes, its output goes to sink. */
client *server_connect_virtual(server *s, bool admin, client_sink sink, void *opaque);
void server_client_feed(client *c, const char *data, size_t len);
void server_client_close(client *c);

/* Sends one event line to every negotiated client. */
void server_broadcast(const char *line, size_t len, void *server);

/* {"major", "minor", "micro"} of this agent, for the greeting and query-version. */
struct json_object *server_version_json(void);

agent *request_agent(const request *r);
bool request_is_admin(const request *r);
/* The peer's uid, from SO_PEERCRED. */
uid_t request_uid(const request *r);
/* Finishes the request with a return value (ownership taken; NULL means {}). */
void request_ok(request *r, struct json_object *ret);
/* Finishes the request with a return value given as JSON text. */
void request_ok_text(request *r, const char *json, size_t len);
void request_error(request *r, const char *err_class, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The client's lines after this request wait until it is answered, so bytes
 * sent after a console-attach are not read as requests. */
void request_hold_input(request *r);

/* A connection that became a raw byte stream (console-attach): what the
 * peer sends goes to on_input as it comes; on_closed when it leaves (or the
 * agent drops it), not after server_stream_close. No events or replies are
 * sent on it any more. */
typedef struct server_stream_ops {
    void (*on_input)(client *c, const char *data, size_t len, void *opaque);
    void (*on_closed)(client *c, void *opaque);
    /* Optional: some queued output reached the peer (server_stream_queued
     * says how much still waits), so a producer can send its next part. */
    void (*on_drained)(client *c, void *opaque);
} server_stream_ops;

/* Answers r with {} and turns its connection into a stream; NULL when the
 * client already left (r is answered either way). Bytes that came after the
 * request are handed to on_input at server_stream_resume, once the owner
 * is ready for them. */
client *request_become_stream(request *r, const server_stream_ops *ops, void *opaque);
/* The same, answering with ret (ownership taken; NULL means {}). */
client *request_become_stream_with(request *r, struct json_object *ret, const server_stream_ops *ops,
                                   void *opaque);
void server_stream_resume(client *c);
/* Bytes to the peer (dropped once the client is closing); a peer that stops
 * reading is disconnected past 8 MiB queued, like any client. */
void server_stream_write(client *c, const char *data, size_t len);
/* Bytes queued for the peer and not yet taken (0 for a virtual client,
 * whose sink takes everything at once). */
size_t server_stream_queued(const client *c);
/* Stops or restarts reading what the peer sends (a consumer that cannot
 * keep up); a virtual client's feed is not held back. */
void server_stream_pause(client *c, bool paused);
/* The owner is done with the stream: what is queued still goes out, then
 * the connection is closed. on_closed does not run. */
void server_stream_finish(client *c);
void server_stream_close(client *c);

#endif
