/* message.h: classifies one QMP line from QEMU. Internal to qmp/. */
#ifndef AGENTD_QMP_MESSAGE_H
#define AGENTD_QMP_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;
struct json_tokener;

typedef enum qmp_msg_kind {
    QMP_MSG_GREETING,
    QMP_MSG_RETURN,
    QMP_MSG_ERROR,
    QMP_MSG_EVENT,
} qmp_msg_kind;

typedef struct qmp_msg {
    qmp_msg_kind kind;
    struct json_object *root;  /* owns everything below */
    bool has_id;
    uint64_t id;               /* only ids this client could have sent are recognised */
    struct json_object *ret;   /* RETURN */
    const char *err_class;     /* ERROR */
    const char *err_desc;
    const char *event;         /* EVENT */
    struct json_object *data;
    int64_t ts_sec, ts_usec;
    struct json_object *greeting; /* GREETING: the "QMP" member */
} qmp_msg;

/* Parses and classifies one line. On success the caller owns msg->root and
 * frees it with qmp_msg_release(). -EPROTO for anything that is not exactly
 * one JSON object of a known QMP shape. */
int qmp_msg_parse(struct json_tokener *tok, const char *line, size_t len, qmp_msg *ret);
void qmp_msg_release(qmp_msg *m);

/* True when the greeting lists capability cap (e.g. "oob"). */
bool qmp_greeting_has_cap(struct json_object *greeting, const char *cap);

#endif
