/* qmp.h: an asynchronous QMP client on a caller-supplied libuv loop.
 *
 * One qmp_client talks to one QEMU monitor over a unix socket. It connects
 * (retrying while QEMU is still starting), reads the greeting, negotiates
 * capabilities, then sends commands with numeric ids and matches replies by id.
 * Events go to a callback. Every command has a timeout. The library never
 * prints and never blocks the loop; errors are negative errno values, with the
 * QMP error class and description attached to the reply when QEMU sent one.
 *
 * Ownership: JSON objects handed to callbacks are borrowed for the duration of
 * the callback (take a reference with json_object_get to keep one). Callbacks
 * may call any function here, including qmp_close() on their own client. */
#ifndef AGENTD_QMP_H
#define AGENTD_QMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;
typedef struct uv_loop_s uv_loop_t;

typedef struct qmp_client qmp_client;

/* Error codes that are not plain errno values. */
enum {
    QMP_ERR_REMOTE = -10001, /* QEMU answered with {"error": ...}; see err_class/err_desc */
};

typedef enum qmp_state {
    QMP_STATE_IDLE,        /* created, or disconnected */
    QMP_STATE_CONNECTING,  /* waiting for the socket to accept */
    QMP_STATE_NEGOTIATING, /* greeting read, qmp_capabilities sent */
    QMP_STATE_READY,       /* commands may flow */
    QMP_STATE_CLOSED,      /* qmp_close() called; the client is being freed */
} qmp_state;

typedef struct qmp_reply {
    int status;               /* 0, QMP_ERR_REMOTE, -ETIMEDOUT, -ECONNRESET, -EPROTO, -ECANCELED ... */
    struct json_object *ret;  /* the "return" value on success, else NULL */
    const char *err_class;    /* "GenericError", ... when status == QMP_ERR_REMOTE, else NULL */
    const char *err_desc;     /* QEMU's description, or a local description of status */
    uint64_t id;
} qmp_reply;

typedef void (*qmp_reply_cb)(qmp_client *c, const qmp_reply *reply, void *opaque);
typedef void (*qmp_event_cb)(qmp_client *c, const char *event, struct json_object *data,
                             int64_t ts_sec, int64_t ts_usec, void *opaque);
/* status 0: negotiated and ready; negative: the connection failed or ended. */
typedef void (*qmp_status_cb)(qmp_client *c, int status, void *opaque);

typedef struct qmp_options {
    const char *path;              /* the monitor's unix socket */
    uint32_t connect_timeout_ms;   /* how long to retry connect + negotiate; 0: 10000 */
    uint32_t command_timeout_ms;   /* default per-command timeout; 0: 30000 */
    size_t max_message;            /* longest accepted line from QEMU; 0: 64 MiB */
    qmp_status_cb on_ready;        /* called once per qmp_connect(): ready or failed */
    qmp_status_cb on_disconnect;   /* called when a READY connection ends (not on qmp_close) */
    qmp_event_cb on_event;
    void *opaque;                  /* passed to the three callbacks above */
} qmp_options;

typedef struct qmp_exec_options {
    int fd;               /* file descriptor to pass with the command (SCM_RIGHTS), or -1 */
    uint32_t timeout_ms;  /* 0: the client's default */
    bool oob;             /* send as "exec-oob" (only when QEMU offered and we enabled oob) */
} qmp_exec_options;

typedef struct qmp_stats {
    uint64_t commands_sent;
    uint64_t replies;
    uint64_t events;
    uint64_t timeouts;
    uint64_t stray_replies;  /* replies whose id matched nothing pending (e.g. after a timeout) */
} qmp_stats;

int qmp_client_new(uv_loop_t *loop, const qmp_options *opts, qmp_client **ret);

/* Starts connecting; on_ready reports the outcome. Valid in the IDLE state. */
int qmp_connect(qmp_client *c);

/* Sends a command. args (may be NULL) is borrowed and serialized at once; opts
 * may be NULL. cb (may be NULL) is called exactly once, unless the command is
 * forgotten with qmp_forget(). Returns 0 and the command's id in *ret_id. */
int qmp_execute(qmp_client *c, const char *command, struct json_object *args,
                const qmp_exec_options *opts, qmp_reply_cb cb, void *opaque, uint64_t *ret_id);

/* The callback of a pending command will not be called; a late reply is dropped. */
int qmp_forget(qmp_client *c, uint64_t id);

/* Fails every pending command with -ECANCELED, closes the socket and frees the
 * client once libuv has closed its handles. Safe from any state and callback. */
void qmp_close(qmp_client *c);

qmp_state qmp_get_state(const qmp_client *c);
bool qmp_oob_enabled(const qmp_client *c);
/* QEMU's version from the greeting ({"qemu": {"major", "minor", "micro"}}). */
int qmp_qemu_version(const qmp_client *c, int *ret_major, int *ret_minor, int *ret_micro);
size_t qmp_pending_count(const qmp_client *c);
void qmp_get_stats(const qmp_client *c, qmp_stats *ret);

/* A short description of a status code from a reply. */
const char *qmp_strerror(int status);

/* ---- the wire format --------------------------------------------------
 * QMP is one JSON object a line. The line framer is public because the
 * agent's own control protocol uses the same wire format. */
typedef struct qmp_frame {
    char *buf;
    size_t len;    /* bytes held */
    size_t start;  /* first byte not yet returned as a line */
    size_t scan;   /* bytes before this offset are known to hold no '\n' */
    size_t cap;
    size_t max;    /* longest line accepted, without its '\n' */
} qmp_frame;

void qmp_frame_init(qmp_frame *f, size_t max_line);
void qmp_frame_free(qmp_frame *f);
void qmp_frame_reset(qmp_frame *f);

/* Space to read into: at least min bytes unless the line limit forbids it. */
int qmp_frame_reserve(qmp_frame *f, size_t min, char **ret_ptr, size_t *ret_avail);
void qmp_frame_commit(qmp_frame *f, size_t n);

/* Returns 1 and the next complete line (NUL-terminated in place, '\n' and a
 * trailing '\r' removed), 0 when no complete line is buffered, or -EMSGSIZE
 * when the line being received is longer than the limit. The line stays valid
 * until the next reserve. */
int qmp_frame_next(qmp_frame *f, char **ret_line, size_t *ret_len);

/* ---- the guest agent ----------------------------------------------------
 * One command to a QEMU guest agent (qemu-ga) over the unix socket of its
 * virtio-serial channel: a connection of its own, guest-sync-delimited
 * first (so what an earlier client left in the channel is skipped), then
 * the command, then the connection is closed. A guest with no agent
 * running never answers; the timeout covers the whole call. */

/* status 0 with ret (borrowed), QMP_ERR_REMOTE with the agent's error in
 * err, or a negative errno (-ETIMEDOUT, -ECONNREFUSED, ...) with err
 * describing it. Called once, never from within qga_call. */
typedef void (*qga_done_cb)(int status, struct json_object *ret, const char *err, void *opaque);

/* args (may be NULL) is taken. -ENOMEM when nothing was started. */
int qga_call(uv_loop_t *loop, const char *path, const char *command, struct json_object *args,
             uint32_t timeout_ms, qga_done_cb cb, void *opaque);


#endif
