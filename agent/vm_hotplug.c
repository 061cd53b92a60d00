/* vm_hotplug.c: the hotplug job's life: begun on a running VM, ended by
 * saving the definition with the change or by an error, and a detach that
 * the guest completed after its deadline. */
#include "vm_hotplug.h"
#include "vm_hotplug_job.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "agent.h"
#include "events.h"
#include "log.h"
#include "vm_internal.h"

bool hotplug_vm_ready(const vm *v, vm_result *res)
{
    if (!vm_has_process(v) || (v->state != VM_RUNNING && v->state != VM_PAUSED)) {
        vm_refuse(res, "InvalidState", "%s is %s: hotplug needs it running", v->def.name,
                  vm_state_name(v));
        return false;
    }
    if (!v->qmp_ready) {
        vm_refuse(res, "InvalidState", "%s: QMP is not connected", v->def.name);
        return false;
    }
    return true;
}

bool hotplug_job_begin(hotplug_job *j, vm *v, vm_done_cb cb, void *opaque, vm_result *res)
{
    if (!hotplug_vm_ready(v, res) || !vm_job_begin(v, VM_JOB_HOTPLUG, cb, opaque, res))
        return false;
    j->v = v;
    v->hotplug = j;
    return true;
}

void hotplug_job_free(hotplug_job *j, bool ok)
{
    free(j);
}

bool hotplug_job_ours(const hotplug_job *j)
{
    return j->v->job == VM_JOB_HOTPLUG && j->v->hotplug == j;
}

bool hotplug_job_begin_late(hotplug_job *j, vm *v, const char *device_id)
{
    vm_result res;

    if (!hotplug_job_begin(j, v, NULL, NULL, &res)) {
        log_warn("vm %s: %s was released by the guest, but %s; detach it again", v->def.name, device_id,
                 res.err_desc);
        return false;
    }
    log_notice("vm %s: the guest released %s after the detach timed out; finishing it", v->def.name, device_id);
    return true;
}

static void release(hotplug_job *j, bool ok)
{
    if (j->ahead_pending) {
        j->release_waiting = true;   /* the save's callback still refers to j */
        return;
    }
    if (j->v->hotplug == j)
        j->v->hotplug = NULL;
    vmdef_free(&j->next);
    vmdef_free(&j->old);
    json_object_put(j->ret);
    j->ret = NULL;
    j->release(j, ok);
}

/* The error is told, and the job released, once the failure's last
 * asynchronous step (the write-back, the kind's undo) is done. */
static void failure_step_done(hotplug_job *j)
{
    if (--j->fail_waits > 0)
        return;
    if (hotplug_job_ours(j)) {
        j->v->hotplug = NULL;
        vm_job_finish_error(j->v, j->fail_class, "%s", j->fail_desc);
    }
    release(j, false);
}

static void on_written_back(vm *v, const vm_result *res, void *opaque)
{
    if (res->status < 0)
        log_err("vm %s: the definition on disk still names the device that failed: %s", v->def.name,
                res->err_desc);
    failure_step_done(opaque);
}

void hotplug_job_undone(hotplug_job *j)
{
    j->v->pending_io--;
    failure_step_done(j);
}

/* The change did not happen: the old definition goes back, on disk too. */
static void write_back(hotplug_job *j)
{
    vmdef_free(&j->v->def);
    j->v->def = j->old;
    memset(&j->old, 0, sizeof(j->old));
    j->ahead = false;
    agent_vms_changed(j->v->agent);
    j->fail_waits++;
    if (vm_save_definition(j->v, on_written_back, j) < 0) {
        log_err("vm %s: the definition on disk still names the device that failed", j->v->def.name);
        j->fail_waits--;
    }
}

void hotplug_job_fail(hotplug_job *j, const char *err_class, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(j->fail_desc, sizeof(j->fail_desc), fmt, ap);
    va_end(ap);
    snprintf(j->fail_class, sizeof(j->fail_class), "%s", err_class);
    /* The error waits for the definition and the files to be as they were,
     * so that a caller who saw it finds neither the device nor what was
     * made for it, even after a crash. One count holds it until both ran. */
    j->fail_waits = 1;
    if (j->ahead && !j->commit_waiting)
        write_back(j);
    if (j->undo) {
        j->fail_waits++;
        j->v->pending_io++;      /* the VM outlives the undo */
        j->undo(j);
    }
    failure_step_done(j);
}

bool hotplug_job_steps_done(hotplug_job *j, int status, const char *err_class, const char *err_desc,
                            const char *after_failure)
{
    if (status < 0) {
        hotplug_job_fail(j, err_class, "%s%s", err_desc, after_failure);
        return false;
    }
    if (!hotplug_job_ours(j)) {
        hotplug_job_fail(j, "GenericError", "QEMU ended meanwhile");
        return false;
    }
    return true;
}

static void on_saved(vm *v, const vm_result *res, void *opaque)
{
    hotplug_job *j = opaque;
    struct json_object *ret = j->ret;

    j->ret = NULL;
    if (res->status < 0) {
        /* The device is in QEMU and in the definition in memory; only the
         * file is behind, and the next save brings it up to date. */
        log_err("vm %s: the device is attached but %s", v->def.name, res->err_desc);
    }
    struct json_object *data = NULL;
    if (json_object_deep_copy(ret, &data, NULL) == 0) {
        json_object_object_add(data, "vm", json_object_new_string(v->def.name));
        event_emit(v->agent->events, j->event, data);
    }
    if (hotplug_job_ours(j) && j->partial_desc[0]) {
        v->hotplug = NULL;
        json_object_put(ret);
        vm_job_finish_error(v, j->partial_class, "%s", j->partial_desc);
    } else if (hotplug_job_ours(j)) {
        v->hotplug = NULL;
        vm_job_finish_ok(v, ret);
    } else {
        json_object_put(ret);
    }
    release(j, true);
}

static void on_saved_ahead(vm *v, const vm_result *res, void *opaque)
{
    hotplug_job *j = opaque;

    j->ahead_pending = false;
    j->ahead_saved = res->status == 0;
    if (j->commit_waiting)
        on_saved(v, res, j);
    else if (j->release_waiting)
        release(j, false);
    else if (res->status < 0)
        log_err("vm %s: saving the definition ahead of the attach: %s", v->def.name, res->err_desc);
}

void hotplug_job_save_ahead(hotplug_job *j)
{
    vm *v = j->v;
    vm_def copy;

    if (vmdef_copy(&j->next, &copy) < 0) {
        log_err("vm %s: out of memory; the definition is saved after the attach", v->def.name);
        return;
    }
    j->old = v->def;
    v->def = copy;
    j->ahead = j->ahead_pending = true;
    agent_vms_changed(v->agent);
    if (vm_save_definition(v, on_saved_ahead, j) < 0) {
        j->ahead_pending = false;
        log_err("vm %s: the definition cannot be saved ahead; it is saved after the attach", v->def.name);
    }
}

void hotplug_job_commit(hotplug_job *j)
{
    vm *v = j->v;
    vm_result res = { .status = -1, .err_desc = "out of memory" };

    if (j->ahead) {
        /* The definition on disk already has it, or is being written. */
        vmdef_free(&j->old);
        memset(&j->old, 0, sizeof(j->old));
        j->commit_waiting = true;
        if (j->ahead_pending)
            return;               /* on_saved_ahead finishes */
        if (j->ahead_saved)
            on_saved(v, &(vm_result){ .status = 0 }, j);
        else if (vm_save_definition(v, on_saved, j) < 0)
            on_saved(v, &res, j);
        return;
    }

    vmdef_free(&v->def);
    v->def = j->next;
    memset(&j->next, 0, sizeof(j->next));
    agent_vms_changed(v->agent);
    if (vm_save_definition(v, on_saved, j) < 0)
        on_saved(v, &res, j);
}

void vm_hotplug_late_delete(vm *v, const char *device_id)
{
    if (!strncmp(device_id, "disk-", 5))
        hotplug_disk_late_delete(v, device_id);
    else if (!strncmp(device_id, "nic-", 4))
        hotplug_nic_late_delete(v, device_id);
}
