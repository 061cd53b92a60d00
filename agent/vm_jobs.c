/* vm_jobs.c: the power jobs on a running VM (shutdown, destroy, reset,
 * suspend, resume) and the raw QMP passthrough. Start lives in vm_run.c
 * with the rest of the process life cycle. */
#include "vm_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "agent.h"
#include "log.h"

/* A lost connection means QEMU is going: its exit finishes the job. */
static bool connection_lost(int status)
{
    return status == -ECANCELED || status == -ECONNRESET;
}

static bool require_process(vm *v, vm_result *res)
{
    if (vm_has_process(v))
        return true;
    vm_refuse(res, "InvalidState", "%s is not running (state %s)", v->def.name, vm_state_name(v));
    return false;
}

/* ---- destroy ----------------------------------------------------------- */

/* Destroy is how an operator cancels: it takes over a start or a shutdown
 * still in progress, which then fail with a message saying so. */
static void preempt(vm *v)
{
    if (v->job == VM_JOB_START || v->job == VM_JOB_SHUTDOWN || v->job == VM_JOB_SAVE || v->job == VM_JOB_RESTORE)
        vm_job_finish_error(v, "GenericError", "%s of %s interrupted by vm-destroy",
                            vm_job_name(v->job), v->def.name);
}

int vm_destroy(vm *v, vm_done_cb cb, void *opaque, vm_result *res)
{
    /* A QEMU still being spawned is stopped as soon as its pid is known. */
    if (!v->spawning && !require_process(v, res))
        return -1;
    preempt(v);
    if (!vm_job_begin(v, VM_JOB_DESTROY, cb, opaque, res))
        return -1;
    vm_set_state(v, VM_STOPPING, "user", NULL);
    vm_stop_process(v);
    return 0;
}

/* ---- shutdown ---------------------------------------------------------- */

static void shutdown_timed_out(vm *v)
{
    if (v->job_force) {
        log_notice("vm %s: no power-off within %u s, destroying it", v->def.name, v->job_timeout_s);
        vm_set_state(v, VM_STOPPING, "timeout", NULL);
        vm_stop_process(v);
        return;
    }
    vm_set_state(v, v->job_prev_state, "timeout", NULL);
    vm_job_finish_error(v, "Timeout", "%s did not power off within %u s", v->def.name,
                        v->job_timeout_s);
}

static void on_powerdown(qmp_client *c, const qmp_reply *r, void *opaque)
{
    vm *v = opaque;

    if (v->job != VM_JOB_SHUTDOWN || connection_lost(r->status) || r->status == 0)
        return;
    vm_set_state(v, v->job_prev_state, "user", NULL);
    vm_job_finish_error(v, r->status == -ETIMEDOUT ? "Timeout" : "GenericError",
                        "system_powerdown: %s", r->err_desc);
}

int vm_shutdown(vm *v, uint32_t timeout_s, bool force, vm_done_cb cb, void *opaque, vm_result *res)
{
    if (!require_process(v, res))
        return -1;
    if (v->state != VM_RUNNING && v->state != VM_PAUSED) {
        vm_refuse(res, "InvalidState", "%s is %s", v->def.name, vm_state_name(v));
        return -1;
    }
    if (!vm_job_begin(v, VM_JOB_SHUTDOWN, cb, opaque, res))
        return -1;
    v->job_force = force;
    v->job_timeout_s = timeout_s;
    v->job_prev_state = v->state;
    vm_set_state(v, VM_SHUTTING_DOWN, "user", NULL);
    vm_job_timer_start(v, (uint64_t)timeout_s * 1000, shutdown_timed_out);
    /* An unanswered power button is handled like an ignored one: the timeout decides. */
    if (vm_qmp(v, "system_powerdown", NULL, on_powerdown, v) < 0)
        log_warn("vm %s: QMP not connected; waiting for the timeout", v->def.name);
    return 0;
}

/* ---- reset, suspend, resume: one QMP command each ---------------------- */

typedef struct simple_job {
    vm_job_kind kind;
    const char *command;
    vm_state after;          /* state once QEMU confirmed; VM_STOPPED: unchanged */
} simple_job;

static const simple_job simple_jobs[] = {
    { VM_JOB_RESET, "system_reset", VM_STOPPED },
    { VM_JOB_SUSPEND, "stop", VM_PAUSED },
    { VM_JOB_RESUME, "cont", VM_RUNNING },
};

static void on_simple_reply(qmp_client *c, const qmp_reply *r, void *opaque)
{
    vm *v = opaque;
    const simple_job *j = NULL;

    for (size_t i = 0; i < sizeof(simple_jobs) / sizeof(simple_jobs[0]); i++)
        if (simple_jobs[i].kind == v->job)
            j = &simple_jobs[i];
    if (!j || connection_lost(r->status))
        return;
    if (r->status < 0) {
        vm_job_finish_error(v, r->status == -ETIMEDOUT ? "Timeout" : "GenericError", "%s: %s",
                            j->command, r->err_desc);
        return;
    }
    if (j->after != VM_STOPPED && v->state != j->after)
        vm_set_state(v, j->after, "user", NULL);
    vm_job_finish_ok(v, NULL);
}

static int run_simple(vm *v, vm_job_kind kind, vm_done_cb cb, void *opaque, vm_result *res)
{
    const simple_job *j = NULL;

    for (size_t i = 0; i < sizeof(simple_jobs) / sizeof(simple_jobs[0]); i++)
        if (simple_jobs[i].kind == kind)
            j = &simple_jobs[i];
    if (!require_process(v, res))
        return -1;
    if (v->state != VM_RUNNING && v->state != VM_PAUSED) {
        vm_refuse(res, "InvalidState", "%s is %s", v->def.name, vm_state_name(v));
        return -1;
    }
    if (!vm_job_begin(v, kind, cb, opaque, res))
        return -1;
    if (vm_qmp(v, j->command, NULL, on_simple_reply, v) < 0) {
        v->job = VM_JOB_NONE;
        vm_refuse(res, "GenericError", "%s: QMP is not connected", v->def.name);
        return -1;
    }
    return 0;
}

int vm_reset(vm *v, vm_done_cb cb, void *opaque, vm_result *res)
{
    return run_simple(v, VM_JOB_RESET, cb, opaque, res);
}

int vm_suspend(vm *v, vm_done_cb cb, void *opaque, vm_result *res)
{
    if (v->state == VM_PAUSED) {
        vm_refuse(res, "InvalidState", "%s is already paused", v->def.name);
        return -1;
    }
    return run_simple(v, VM_JOB_SUSPEND, cb, opaque, res);
}

int vm_resume(vm *v, vm_done_cb cb, void *opaque, vm_result *res)
{
    if (v->state == VM_RUNNING) {
        vm_refuse(res, "InvalidState", "%s is not paused", v->def.name);
        return -1;
    }
    return run_simple(v, VM_JOB_RESUME, cb, opaque, res);
}

/* ---- raw QMP -------------------------------------------------------------- */

typedef struct passthrough {
    vm *v;
    vm_done_cb cb;
    void *opaque;
} passthrough;

static void on_passthrough(qmp_client *c, const qmp_reply *r, void *opaque)
{
    passthrough *p = opaque;
    vm_result res = { 0 };

    if (r->status == 0) {
        res.ret = r->ret ? json_object_get(r->ret) : json_object_new_object();
    } else {
        res.status = -1;
        res.err_class = r->status == QMP_ERR_REMOTE ? r->err_class
                        : r->status == -ETIMEDOUT   ? "Timeout" : "GenericError";
        res.err_desc = r->err_desc;
    }
    p->cb(p->v, &res, p->opaque);
    free(p);
}

/* During a migration, a save or a restore only the agent may resume the
 * guest or start a stream: a cont on a migrated source or an incoming
 * destination would run the guest on both hosts, one on a saving VM would
 * let it run on past the state in its file. */
static bool passthrough_allowed(vm *v, const char *command, vm_result *res)
{
    static const char *const moving[] = { "cont", "migrate", "migrate-incoming" };

    if (v->state != VM_INCOMING && v->state != VM_MIGRATING && v->state != VM_MIGRATED &&
        v->state != VM_SAVING && v->state != VM_RESTORING)
        return true;
    for (size_t i = 0; i < sizeof(moving) / sizeof(moving[0]); i++)
        if (!strcmp(command, moving[i])) {
            vm_refuse(res, "InvalidState", "%s is %s: %s is the agent's until that ends", v->def.name,
                      vm_state_name(v), command);
            return false;
        }
    return true;
}

int vm_qmp_passthrough(vm *v, const char *command, struct json_object *args,
                       vm_done_cb cb, void *opaque, vm_result *res)
{
    passthrough *p;
    int r;

    if (!require_process(v, res) || !passthrough_allowed(v, command, res))
        return -1;
    if (!(p = malloc(sizeof(*p)))) {
        vm_refuse(res, "GenericError", "out of memory");
        return -1;
    }
    *p = (passthrough){ v, cb, opaque };
    if ((r = vm_qmp(v, command, args, on_passthrough, p)) < 0) {
        free(p);
        vm_refuse(res, r == -EINVAL ? "InvalidParameter" : "GenericError", "%s",
                  r == -EINVAL ? "command: not a valid QMP command name"
                               : "QMP is not connected to this VM");
        return -1;
    }
    return 0;
}
