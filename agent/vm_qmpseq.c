/* vm_qmpseq.c: see vm_qmpseq.h. */
#include "vm_qmpseq.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "log.h"
#include "vm_internal.h"

/* A disk's chain is at most 16 nodes of two blockdevs each, plus its device. */
#define SEQ_STEPS_MAX 40
#define SEQ_SEEN_MAX 16
#define SEQ_NAME_MAX 64

typedef enum step_kind { STEP_COMMAND, STEP_TOLERANT, STEP_WAIT_DELETED } step_kind;

typedef struct step {
    step_kind kind;
    char command[SEQ_NAME_MAX];     /* or the device id waited for */
    struct json_object *args;
    int fd;
    uint32_t timeout_ms;
    char undo[SEQ_NAME_MAX];
    struct json_object *undo_args;
    bool undo_may_fail;       /* a later step may have used up what the undo removes */
} step;

struct vm_qmpseq {
    vm *v;
    step steps[SEQ_STEPS_MAX];
    size_t n;
    bool overflow;            /* a step did not fit: run refuses */
    size_t next;              /* the step running */
    size_t undo_at;           /* steps below it are still to be undone */
    bool waiting, lost;
    char seen[SEQ_SEEN_MAX][SEQ_NAME_MAX];   /* DEVICE_DELETED ids since the start */
    size_t nseen;
    vm_qmpseq_cb *cb;
    void *opaque;
    int status;
    char err_class[32];
    char err_desc[1024];
};

vm_qmpseq *vm_qmpseq_new(vm *v)
{
    vm_qmpseq *s = calloc(1, sizeof(*s));

    if (s)
        s->v = v;
    return s;
}

void vm_qmpseq_free(vm_qmpseq *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        json_object_put(s->steps[i].args);
        json_object_put(s->steps[i].undo_args);
    }
    free(s);
}

static step *push(vm_qmpseq *s, step_kind kind, const char *name)
{
    step *t;

    if (s->n == SEQ_STEPS_MAX || strlen(name) >= SEQ_NAME_MAX) {
        s->overflow = true;
        return NULL;
    }
    t = &s->steps[s->n++];
    *t = (step){ .kind = kind, .fd = -1 };
    snprintf(t->command, sizeof(t->command), "%s", name);
    return t;
}

void vm_qmpseq_add(vm_qmpseq *s, const char *command, struct json_object *args, int fd,
                   const char *undo, struct json_object *undo_args)
{
    step *t = push(s, STEP_COMMAND, command);

    if (!t || (undo && strlen(undo) >= SEQ_NAME_MAX)) {
        s->overflow = true;
        json_object_put(args);
        json_object_put(undo_args);
        return;
    }
    t->args = args;
    t->fd = fd;
    snprintf(t->undo, sizeof(t->undo), "%s", undo ? undo : "");
    t->undo_args = undo_args;
}

void vm_qmpseq_add_getfd(vm_qmpseq *s, const char *fdname, int fd)
{
    struct json_object *args = json_object_new_object(), *undo = json_object_new_object();

    json_object_object_add(args, "fdname", json_object_new_string(fdname));
    json_object_object_add(undo, "fdname", json_object_new_string(fdname));
    vm_qmpseq_add(s, "getfd", args, fd, "closefd", undo);
    if (!s->overflow)
        s->steps[s->n - 1].undo_may_fail = true;
}

void vm_qmpseq_add_tolerant(vm_qmpseq *s, const char *command, struct json_object *args)
{
    step *t = push(s, STEP_TOLERANT, command);

    if (!t) {
        json_object_put(args);
        return;
    }
    t->args = args;
}

void vm_qmpseq_add_wait_deleted(vm_qmpseq *s, const char *id, uint32_t timeout_ms)
{
    step *t = push(s, STEP_WAIT_DELETED, id);

    if (t)
        t->timeout_ms = timeout_ms;
}

/* ---- running ----------------------------------------------------------------- */

static void advance(vm_qmpseq *s);
static void undo_next(vm_qmpseq *s);

static void finish(vm_qmpseq *s)
{
    vm *v = s->v;

    if (s->waiting)
        vm_job_timer_stop(v);
    if (v->qmpseq == s)
        v->qmpseq = NULL;
    s->cb(v, s->status, s->status < 0 ? s->err_class : NULL, s->status < 0 ? s->err_desc : NULL, s->opaque);
    vm_qmpseq_free(s);
}

/* Records the first failure and undoes what succeeded before it. */
static void fail(vm_qmpseq *s, const char *err_class, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void fail(vm_qmpseq *s, const char *err_class, const char *fmt, ...)
{
    va_list ap;

    s->status = -1;
    snprintf(s->err_class, sizeof(s->err_class), "%s", err_class);
    va_start(ap, fmt);
    vsnprintf(s->err_desc, sizeof(s->err_desc), fmt, ap);
    va_end(ap);
    s->undo_at = s->next;
    undo_next(s);
}

static bool connection_lost(int status)
{
    return status == -ECANCELED || status == -ECONNRESET || status == -ENOTCONN;
}

static const char *reply_class(const qmp_reply *r)
{
    return r->status == QMP_ERR_REMOTE ? r->err_class : r->status == -ETIMEDOUT ? "Timeout" : "GenericError";
}

static void on_step_reply(qmp_client *c, const qmp_reply *r, void *opaque)
{
    vm_qmpseq *s = opaque;
    step *t = &s->steps[s->next];

    if (r->status < 0 && t->kind == STEP_TOLERANT && !connection_lost(r->status)) {
        log_warn("vm %s: %s: %s (passed over)", s->v->def.name, t->command, r->err_desc);
    } else if (r->status < 0) {
        s->lost = connection_lost(r->status);
        fail(s, reply_class(r), "%s: %s", t->command, r->err_desc);
        return;
    }
    s->next++;
    advance(s);
}

static void on_undo_reply(qmp_client *c, const qmp_reply *r, void *opaque)
{
    vm_qmpseq *s = opaque;
    step *t = &s->steps[s->undo_at];

    if (r->status < 0) {
        s->lost |= connection_lost(r->status);
        if (t->undo_may_fail && !s->lost)
            log_debug("vm %s: %s: %s (already gone)", s->v->def.name, t->undo, r->err_desc);
        else
            log_err("vm %s: undoing %s with %s: %s", s->v->def.name, t->command, t->undo, r->err_desc);
    }
    undo_next(s);
}

static void undo_next(vm_qmpseq *s)
{
    while (s->undo_at > 0 && !s->lost) {
        step *t = &s->steps[--s->undo_at];
        if (!t->undo[0])
            continue;
        if (vm_qmp(s->v, t->undo, t->undo_args, on_undo_reply, s) == 0)
            return;
        log_err("vm %s: cannot undo %s: QMP is gone", s->v->def.name, t->command);
        s->lost = true;
    }
    finish(s);
}

static bool seen(const vm_qmpseq *s, const char *id)
{
    for (size_t i = 0; i < s->nseen; i++)
        if (!strcmp(s->seen[i], id))
            return true;
    return false;
}

static void on_wait_timeout(vm *v)
{
    vm_qmpseq *s = v->qmpseq;
    step *t;

    if (!s || !s->waiting)
        return;
    t = &s->steps[s->next];
    s->waiting = false;
    fail(s, "Timeout", "%s: the guest did not release the device within %u ms", t->command, t->timeout_ms);
}

static void advance(vm_qmpseq *s)
{
    step *t;
    int r;

    if (s->next == s->n) {
        finish(s);
        return;
    }
    t = &s->steps[s->next];
    if (t->kind == STEP_WAIT_DELETED) {
        if (seen(s, t->command)) {
            s->next++;
            advance(s);
            return;
        }
        s->waiting = true;
        vm_job_timer_start(s->v, t->timeout_ms, on_wait_timeout);
        return;
    }
    if ((r = vm_qmp_fd(s->v, t->command, t->args, t->fd, on_step_reply, s)) < 0) {
        s->lost = connection_lost(r);
        fail(s, "GenericError", "%s: %s", t->command, s->lost ? "QMP is not connected" : strerror(-r));
    }
}

int vm_qmpseq_run(vm_qmpseq *s, vm_qmpseq_cb *cb, void *opaque)
{
    if (!s->v->qmp_ready)
        return -ENOTCONN;
    if (s->overflow)
        return -E2BIG;
    s->cb = cb;
    s->opaque = opaque;
    s->v->qmpseq = s;
    advance(s);
    return 0;
}

/* The device id an event is about: its "device", or the peripheral its
 * "path" names or lies under. QEMU 7.2 reports an unplugged CPU only by its
 * child ("/machine/peripheral/cpu-1-0-0-0/lapic"), emitted as the CPU goes. */
static bool deleted_id(struct json_object *data, char *out, size_t len)
{
    static const char prefix[] = "/machine/peripheral/";
    struct json_object *v;
    const char *path;

    if (json_object_object_get_ex(data, "device", &v) && json_object_get_string(v) && json_object_get_string(v)[0]) {
        snprintf(out, len, "%s", json_object_get_string(v));
        return strlen(json_object_get_string(v)) < len;
    }
    if (!json_object_object_get_ex(data, "path", &v) || !(path = json_object_get_string(v)) ||
        strncmp(path, prefix, sizeof(prefix) - 1))
        return false;
    path += sizeof(prefix) - 1;
    snprintf(out, len, "%.*s", (int)strcspn(path, "/"), path);
    return strcspn(path, "/") < len;
}

bool vm_qmpseq_on_event(vm *v, const char *event, struct json_object *data)
{
    vm_qmpseq *s = v->qmpseq;
    char id[SEQ_NAME_MAX];

    if (!s || strcmp(event, "DEVICE_DELETED") || !deleted_id(data, id, sizeof(id)))
        return false;
    if (s->waiting && !strcmp(s->steps[s->next].command, id)) {
        s->waiting = false;
        vm_job_timer_stop(v);
        s->next++;
        advance(s);
        return true;
    }
    if (s->nseen < SEQ_SEEN_MAX && !seen(s, id))
        snprintf(s->seen[s->nseen++], SEQ_NAME_MAX, "%s", id);
    return true;
}
