/* vm_hotplug_job.h: what the disk and NIC hotplug jobs share: the checks
 * before one starts, the job slot, and the end (the definition swapped in
 * and saved, or the error). Internal to the VM runtime. */
#ifndef AGENTD_VM_HOTPLUG_JOB_H
#define AGENTD_VM_HOTPLUG_JOB_H

#include <stdbool.h>

#include "vm.h"

struct json_object;

typedef struct hotplug_job hotplug_job;

struct hotplug_job {
    vm *v;
    /* The definition once the change is made: fixed from the job's start,
     * so a pool thread may read it while the loop goes on. */
    vm_def next;
    vm_def old;                     /* saved ahead: the definition before */
    struct json_object *ret;        /* the reply, and the event's data */
    const char *event;              /* emitted on success */
    /* Set when part of a change was made (vCPUs added before one failed):
     * the definition saved says what QEMU has, and the job ends with this. */
    char partial_class[32];
    char partial_desc[512];
    char fail_class[32];            /* the error, kept while the failure is undone */
    char fail_desc[1536];
    int fail_waits;                 /* the failure's steps still running */
    /* Saved ahead (hotplug_job_save_ahead): the VM has a copy of next. */
    bool ahead;
    bool ahead_pending;           /* that save not finished yet */
    bool ahead_saved;             /* and it succeeded */
    bool commit_waiting;          /* the change is made; the reply waits for the save */
    bool release_waiting;         /* failed; released once the save is done */
    /* Frees the job's container; ok: the change was made. Also undoes what
     * the kind made outside QEMU that goes with it (a tap's fds) when not ok. */
    void (*release)(hotplug_job *j, bool ok);
    /* Optional: on a failure, undoes before the error is told what the
     * kind made outside QEMU (a disk file), then calls hotplug_job_undone. */
    void (*undo)(hotplug_job *j);
};

/* A release for kinds that hold nothing but the job (it comes first in
 * their container, which is freed). */
void hotplug_job_free(hotplug_job *j, bool ok);
/* The VM runs (or is paused) with QMP ready. */
bool hotplug_vm_ready(const vm *v, vm_result *res);
/* That, and no other job. */
bool hotplug_job_begin(hotplug_job *j, vm *v, vm_done_cb cb, void *opaque, vm_result *res);
/* Still the VM's job: an exit of QEMU ends the job from outside. */
bool hotplug_job_ours(const hotplug_job *j);
/* Ends the job with an error (if still ours) and releases it, once the
 * old definition is durable again (when it was saved ahead) and the kind's
 * undo is done. */
void hotplug_job_fail(hotplug_job *j, const char *err_class, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The kind's undo is done. */
void hotplug_job_undone(hotplug_job *j);
/* After the QMP steps: false when they failed or QEMU ended meanwhile (the
 * job then ended with the error, after_failure appended to it, and was
 * released); true when the change is to be committed. */
bool hotplug_job_steps_done(hotplug_job *j, int status, const char *err_class, const char *err_desc,
                            const char *after_failure);
/* A job without a caller, for a detach the guest finished late: false
 * (logged) when the VM is busy. */
bool hotplug_job_begin_late(hotplug_job *j, vm *v, const char *device_id);
/* An attach: a copy of next becomes the definition and is written while
 * the device is prepared and plugged, so the reply does not wait for the
 * disk afterwards. Called as the job starts: the write then overlaps the
 * pool thread's work and not QEMU's device_add, which it was measured to
 * slow down on a machine with two cores. A crash in between leaves a
 * definition naming a device that is not plugged yet, which the next start
 * gives the VM; a failure writes the old one back. */
void hotplug_job_save_ahead(hotplug_job *j);
/* next becomes the definition (unless saved ahead), is saved, and the job
 * ends with ret. */
void hotplug_job_commit(hotplug_job *j);

/* A DEVICE_DELETED no job waited for: the disk or NIC of that id goes from
 * the definition, its backends from QEMU (vm_hotplug_late_delete). */
void hotplug_disk_late_delete(vm *v, const char *device_id);
void hotplug_nic_late_delete(vm *v, const char *device_id);

#endif
