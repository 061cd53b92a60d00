/* vm_qga.c: freeze and thaw through the guest agent (vm_qga.h). */
#include "vm_qga.h"

#include <errno.h>
#include <stdlib.h>

#include <json-c/json.h>

#include "agent.h"
#include "log.h"
#include "qmp/qmp.h"

/* A guest with no agent running never answers: asked briefly first, so a
 * snapshot is not held up by the whole freeze timeout. */
#define PING_TIMEOUT_MS 3000
/* qemu-ga syncs every file system before it freezes them. */
#define FREEZE_TIMEOUT_MS 60000
#define THAW_TIMEOUT_MS 10000

typedef struct qga_step {
    vm *v;
    vm_qga_frozen_cb *frozen;
    vm_qga_thawed_cb *thawed;
    void *opaque;
} qga_step;

static qga_step *step_new(vm *v, vm_qga_frozen_cb *frozen, vm_qga_thawed_cb *thawed, void *opaque)
{
    qga_step *s = malloc(sizeof(*s));

    if (s) {
        *s = (qga_step){ v, frozen, thawed, opaque };
        v->pending_io++;   /* the VM outlives the call */
    }
    return s;
}

static void step_free(qga_step *s)
{
    s->v->pending_io--;
    free(s);
}

static void on_freeze(int status, struct json_object *ret, const char *err, void *opaque)
{
    qga_step *s = opaque;
    vm *v = s->v;
    vm_qga_frozen_cb *cb = s->frozen;
    void *o = s->opaque;

    if (status < 0)
        log_warn("vm %s: guest-fsfreeze-freeze: %s; the snapshot is crash-consistent", v->def.name, err);
    else
        log_info("vm %s: the guest agent froze %d file systems", v->def.name, json_object_get_int(ret));
    step_free(s);
    cb(v, true, status == 0, o);
}

static void on_ping(int status, struct json_object *ret, const char *err, void *opaque)
{
    qga_step *s = opaque;
    vm *v = s->v;
    vm_qga_frozen_cb *cb = s->frozen;
    void *o = s->opaque;

    if (status == 0 && qga_call(v->agent->loop, v->qga_path, "guest-fsfreeze-freeze", NULL, FREEZE_TIMEOUT_MS,
                                on_freeze, s) == 0)
        return;
    log_warn("vm %s: no guest agent answered (%s); the snapshot is crash-consistent", v->def.name,
             status == 0 ? "out of memory" : err);
    step_free(s);
    cb(v, false, false, o);
}

void vm_qga_freeze(vm *v, vm_qga_frozen_cb *cb, void *opaque)
{
    qga_step *s;

    if (!v->def.guest_agent || !(s = step_new(v, cb, NULL, opaque))) {
        cb(v, false, false, opaque);
        return;
    }
    if (qga_call(v->agent->loop, v->qga_path, "guest-ping", NULL, PING_TIMEOUT_MS, on_ping, s) < 0) {
        step_free(s);
        cb(v, false, false, opaque);
    }
}

static void on_thaw(int status, struct json_object *ret, const char *err, void *opaque)
{
    qga_step *s = opaque;
    vm *v = s->v;
    vm_qga_thawed_cb *cb = s->thawed;
    void *o = s->opaque;

    if (status < 0)
        log_err("vm %s: guest-fsfreeze-thaw: %s; the guest's file systems may still be frozen", v->def.name,
                err);
    step_free(s);
    cb(v, o);
}

void vm_qga_thaw(vm *v, vm_qga_thawed_cb *cb, void *opaque)
{
    qga_step *s = step_new(v, NULL, cb, opaque);

    if (!s || qga_call(v->agent->loop, v->qga_path, "guest-fsfreeze-thaw", NULL, THAW_TIMEOUT_MS, on_thaw, s) < 0) {
        log_err("vm %s: cannot ask the guest agent to thaw (out of memory)", v->def.name);
        if (s)
            step_free(s);
        cb(v, opaque);
    }
}
