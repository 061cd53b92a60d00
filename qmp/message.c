/* message.c: turns a QMP line into a classified, validated message.
 *
 * Every field is type-checked here so the client never dereferences a
 * member of the wrong JSON type, whatever the peer sends. */
#include "message.h"

#include <errno.h>
#include <string.h>

#include <json-c/json.h>

static struct json_object *member(struct json_object *o, const char *key, json_type type)
{
    struct json_object *v;

    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, type))
        return NULL;
    return v;
}

/* Our ids are decimal integers we generated; anything else cannot match. */
static void parse_id(struct json_object *root, qmp_msg *m)
{
    struct json_object *id = member(root, "id", json_type_int);

    if (!id)
        return;
    int64_t v = json_object_get_int64(id);
    if (v <= 0)
        return;
    m->has_id = true;
    m->id = (uint64_t)v;
}

static int parse_error(struct json_object *root, qmp_msg *m)
{
    struct json_object *err = member(root, "error", json_type_object);
    struct json_object *cls, *desc;

    if (!err)
        return -EPROTO;
    cls = member(err, "class", json_type_string);
    desc = member(err, "desc", json_type_string);
    m->kind = QMP_MSG_ERROR;
    m->err_class = cls ? json_object_get_string(cls) : "GenericError";
    m->err_desc = desc ? json_object_get_string(desc) : "(no description)";
    return 0;
}

static int parse_event(struct json_object *root, qmp_msg *m)
{
    struct json_object *ev = member(root, "event", json_type_string);
    struct json_object *ts = member(root, "timestamp", json_type_object);

    if (!ev)
        return -EPROTO;
    m->kind = QMP_MSG_EVENT;
    m->event = json_object_get_string(ev);
    m->data = member(root, "data", json_type_object);
    if (ts) {
        struct json_object *s = member(ts, "seconds", json_type_int);
        struct json_object *us = member(ts, "microseconds", json_type_int);
        m->ts_sec = s ? json_object_get_int64(s) : 0;
        m->ts_usec = us ? json_object_get_int64(us) : 0;
    }
    return 0;
}

static int classify(struct json_object *root, qmp_msg *m)
{
    if (json_object_object_get_ex(root, "return", &m->ret)) {
        m->kind = QMP_MSG_RETURN;
        return 0;
    }
    if (json_object_object_get_ex(root, "error", NULL))
        return parse_error(root, m);
    if (json_object_object_get_ex(root, "event", NULL))
        return parse_event(root, m);
    m->greeting = member(root, "QMP", json_type_object);
    if (m->greeting) {
        m->kind = QMP_MSG_GREETING;
        return 0;
    }
    return -EPROTO;
}

int qmp_msg_parse(struct json_tokener *tok, const char *line, size_t len, qmp_msg *ret)
{
    qmp_msg m = { 0 };

    if (len > INT32_MAX)
        return -EPROTO;
    json_tokener_reset(tok);
    m.root = json_tokener_parse_ex(tok, line, (int)len);
    /* Exactly one complete object, and nothing after it but white space. */
    if (!m.root || json_tokener_get_error(tok) != json_tokener_success)
        goto fail;
    for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
        if (!strchr(" \t\r", line[i]))
            goto fail;
    if (!json_object_is_type(m.root, json_type_object) || classify(m.root, &m) < 0)
        goto fail;
    parse_id(m.root, &m);
    *ret = m;
    return 0;
fail:
    json_object_put(m.root);
    return -EPROTO;
}

void qmp_msg_release(qmp_msg *m)
{
    json_object_put(m->root);
    m->root = NULL;
}

bool qmp_greeting_has_cap(struct json_object *greeting, const char *cap)
{
    struct json_object *caps = member(greeting, "capabilities", json_type_array);
    size_t n = caps ? json_object_array_length(caps) : 0;

    for (size_t i = 0; i < n; i++) {
        struct json_object *c = json_object_array_get_idx(caps, i);
        if (json_object_is_type(c, json_type_string) && strcmp(json_object_get_string(c), cap) == 0)
            return true;
    }
    return false;
}
