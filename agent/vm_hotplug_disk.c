/* vm_hotplug_disk.c: disks attached to and detached from a running VM.
 *
 * Attach: the file made when the disk asks for one (as at define time), its
 * chain opened and checked by storage/ on the thread pool, every node added
 * with blockdev-add bottom first (explicit driver and format, backing named,
 * as on the command line), then device_add on a free hotplug port
 * (virtio-blk) or scsi-id (virtio-scsi, on the controller the VM got at
 * start). A failure removes the nodes added and the file made.
 *
 * Detach: device_del, DEVICE_DELETED awaited, then blockdev-del of each of
 * the disk's nodes top first, found with query-named-block-nodes so a disk
 * adopted from an earlier agent goes as cleanly as one attached by this one. */
#include "vm_hotplug.h"
#include "vm_hotplug_job.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "agent.h"
#include "disk.h"
#include "log.h"
#include "qemu_devices.h"
#include "vm_disks.h"
#include "vm_internal.h"
#include "vm_qmpseq.h"
#include "work.h"

typedef struct disk_attach {
    hotplug_job job;
    size_t i;                       /* the new disk: next.disks[i] */
    struct json_object *created;    /* files made for it */
    vm_disk_files *files;
    int status;
    char err[512];
} disk_attach;

/* ---- attach ------------------------------------------------------------------ */

static void attach_release(hotplug_job *j, bool ok)
{
    disk_attach *a = (disk_attach *)j;

    json_object_put(a->created);      /* files kept; after a failure attach_undo took them */
    vm_disk_files_free(a->files);
    free(a);
}

static void on_files_removed(void *opaque)
{
    hotplug_job_undone(opaque);
}

/* The files made for the disk go before the error is told. */
static void attach_undo(hotplug_job *j)
{
    disk_attach *a = (disk_attach *)j;
    struct json_object *created = a->created;

    a->created = NULL;
    disk_remove_created(j->v->agent, created, on_files_removed, j);
}

static struct json_object *node_ref(const char *kind, const vm_disk *d, size_t k)
{
    struct json_object *o = json_object_new_object();
    char name[32];

    qemu_disk_node_name(name, sizeof(name), kind, d, k);
    json_object_object_add(o, "node-name", json_object_new_string(name));
    return o;
}

static struct json_object *attach_reply(const vm_disk *d)
{
    struct json_object *o = json_object_new_object();
    char id[16];

    snprintf(id, sizeof(id), "disk-%s", d->target);
    json_object_object_add(o, "target", json_object_new_string(d->target));
    json_object_object_add(o, "device", json_object_new_string(id));
    json_object_object_add(o, "bus", json_object_new_string(vm_disk_bus_name(d->bus)));
    json_object_object_add(o, "slot", json_object_new_int(d->slot));
    return o;
}

static void on_attached(vm *v, int status, const char *err_class, const char *err_desc, void *opaque)
{
    disk_attach *a = opaque;

    if (!hotplug_job_steps_done(&a->job, status, err_class, err_desc, ""))
        return;
    log_info("vm %s: disk %s attached", v->def.name, a->job.next.disks[a->i].target);
    a->job.ret = attach_reply(&a->job.next.disks[a->i]);
    hotplug_job_commit(&a->job);
}

static void add_nodes(vm_qmpseq *s, const vm_disk *d, const qemu_disk_chain *c)
{
    for (size_t k = c->depth; k-- > 0;) {
        vm_qmpseq_add(s, "blockdev-add", qemu_disk_file_node(d, &c->nodes[k], k), -1, "blockdev-del",
                      node_ref("file", d, k));
        vm_qmpseq_add(s, "blockdev-add", qemu_disk_format_node(d, c, k), -1, "blockdev-del",
                      node_ref("drive", d, k));
    }
}

static void plug(disk_attach *a)
{
    const vm_disk *d = &a->job.next.disks[a->i];
    vm_qmpseq *s = vm_qmpseq_new(a->job.v);
    int r;

    if (!s) {
        hotplug_job_fail(&a->job, "GenericError", "out of memory");
        return;
    }
    add_nodes(s, d, &a->files->chains[a->i]);
    vm_qmpseq_add(s, "device_add", qemu_disk_slot_device(&a->job.next, a->i), -1, NULL, NULL);
    if ((r = vm_qmpseq_run(s, on_attached, a)) < 0) {
        vm_qmpseq_free(s);
        hotplug_job_fail(&a->job, "GenericError", "%s: %s", a->job.next.disks[a->i].target,
                         r == -ENOTCONN ? "QMP is not connected" : strerror(-r));
    }
}

/* On the pool thread, right after the file check: one hop, not two. */
static void open_chain(void *arg)
{
    disk_attach *a = arg;

    a->status = vm_disks_open_one(&a->job.next, a->i, a->files, a->err, sizeof(a->err));
}

static void on_prepared(void *opaque, int status, const char *err, struct json_object *created)
{
    disk_attach *a = opaque;

    a->job.v->pending_io--;
    a->created = created;
    if (status < 0)
        hotplug_job_fail(&a->job, status == -ENOSPC ? "NoSpace" : "InvalidParameter", "%s", err);
    else if (!hotplug_job_ours(&a->job))
        hotplug_job_fail(&a->job, "GenericError", "QEMU ended during the attach");
    else if (a->status < 0)
        hotplug_job_fail(&a->job, "InvalidParameter", "%s", a->err);
    else
        plug(a);
}

static bool running_has_scsi(const vm_def *def)
{
    for (size_t i = 0; i < def->ndisks; i++)
        if (def->disks[i].bus == VM_DISK_VIRTIO_SCSI)
            return true;
    return false;
}

/* The disk's place: a free hotplug port, or a scsi-id free in the running VM. */
static int choose_slot(const vm *v, vm_def *next, vm_disk *d, vm_result *res)
{
    if (d->bus == VM_DISK_VIRTIO_SCSI && !running_has_scsi(&v->def)) {
        vm_refuse(res, "InvalidParameter",
                  "disk.bus: %s has no virtio-scsi controller (it gets one when started with a SCSI disk); "
                  "attach a virtio-blk disk instead", v->def.name);
        return -1;
    }
    if (d->slot >= 0)
        return 0;
    d->slot = d->bus == VM_DISK_VIRTIO_SCSI ? qemu_disk_free_scsi_id(&v->def) : qemu_free_hotplug_slot(next);
    if (d->slot < 0) {
        vm_refuse(res, "LimitReached", "%s: all %u hotplug slots are taken (hotplug-slots: more take effect at "
                  "the next start)", v->def.name, v->def.hotplug_slots);
        return -1;
    }
    return 0;
}

static int check_attachable(const vm *v, vm_def *next, vm_result *res)
{
    vm_disk *d = &next->disks[next->ndisks - 1];

    if (next->ndisks != v->def.ndisks + 1) {
        vm_refuse(res, "InvalidParameter", "disk: one disk is attached at a time");
        return -1;
    }
    if (d->bus != VM_DISK_VIRTIO_BLK && d->bus != VM_DISK_VIRTIO_SCSI) {
        vm_refuse(res, "InvalidParameter", "disk.bus: %s disks cannot be attached to a running VM "
                  "(use virtio-blk or virtio-scsi)", vm_disk_bus_name(d->bus));
        return -1;
    }
    if (d->cdrom) {
        vm_refuse(res, "InvalidParameter", "disk.cdrom: a cdrom drive is not attached while the VM runs");
        return -1;
    }
    return choose_slot(v, next, d, res);
}

int vm_disk_attach(vm *v, vm_def *next, vm_done_cb cb, void *opaque, vm_result *res)
{
    disk_attach *a;
    char err[512];
    int r;

    if (!hotplug_vm_ready(v, res) || check_attachable(v, next, res) < 0) {
        vmdef_free(next);
        return -1;
    }
    if (!(a = calloc(1, sizeof(*a)))) {
        vm_refuse(res, "GenericError", "out of memory");
        vmdef_free(next);
        return -1;
    }
    a->job.next = *next;
    a->job.event = "VM_DISK_ATTACHED";
    a->job.release = attach_release;
    a->job.undo = attach_undo;
    a->i = next->ndisks - 1;
    memset(next, 0, sizeof(*next));
    if (!hotplug_job_begin(&a->job, v, cb, opaque, res)) {
        vmdef_free(&a->job.next);
        free(a);
        return -1;
    }
    /* Where the files are is known on the loop; the pool thread then makes
     * a missing file and opens the chain in one go. */
    if (!(a->files = calloc(1, sizeof(*a->files))) ||
        vm_disks_locate(v->agent, &a->job.next, a->files, err, sizeof(err)) < 0)
        r = a->files ? -EINVAL : -ENOMEM;
    else
        r = disk_prepare_then(v->agent, &a->job.next, open_chain, a, on_prepared, a, err, sizeof(err));
    if (r < 0) {
        v->job = VM_JOB_NONE;
        v->hotplug = NULL;
        vm_refuse(res, r == -EINVAL ? "InvalidParameter" : "GenericError", "%s",
                  r == -ENOMEM ? "out of memory" : err);
        vm_disk_files_free(a->files);
        vmdef_free(&a->job.next);
        free(a);
        return -1;
    }
    hotplug_job_save_ahead(&a->job);
    v->pending_io++;
    return 0;
}

/* ---- detach ------------------------------------------------------------------ */

typedef struct disk_detach {
    hotplug_job job;
    char target[VM_TARGET_MAX + 1];
    char id[16];
} disk_detach;

/* Node names of disk target: "drive-T", "file-T", "drive-T-N", "file-T-N";
 * a live snapshot's overlays "drive-T-sN", "file-T-sN" (their N: above
 * the chain, the latest on top) come back as -1 - N. */
static int node_depth(const char *node, const char *target)
{
    const char *rest;
    char *end;
    long k;

    if (!strncmp(node, "drive-", 6))
        rest = node + 6;
    else if (!strncmp(node, "file-", 5))
        rest = node + 5;
    else
        return -1;
    if (strncmp(rest, target, strlen(target)))
        return -1;
    rest += strlen(target);
    if (!*rest)
        return 0;
    if (*rest != '-')
        return -1;
    if (rest[1] == 's') {
        k = strtol(rest + 2, &end, 10);
        return *end || k <= 0 || k >= QEMU_SNAPSHOT_NODES_MAX ? -1 : -1 - (int)k;
    }
    k = strtol(rest + 1, &end, 10);
    return *end || k <= 0 || k >= QEMU_CHAIN_MAX ? -1 : (int)k;
}

static void on_nodes_deleted(vm *v, int status, const char *err_class, const char *err_desc, void *opaque)
{
    disk_detach *d = opaque;

    if (!hotplug_job_steps_done(&d->job, 0, NULL, NULL, ""))
        return;
    log_info("vm %s: disk %s detached", v->def.name, d->target);
    d->job.ret = json_object_new_object();
    json_object_object_add(d->job.ret, "target", json_object_new_string(d->target));
    json_object_object_add(d->job.ret, "device", json_object_new_string(d->id));
    hotplug_job_commit(&d->job);
}

/* Top of the chain first: a node goes once nothing above it uses it. */
static void delete_nodes(disk_detach *d, struct json_object *nodes)
{
    vm_qmpseq *s = vm_qmpseq_new(d->job.v);
    bool present[QEMU_CHAIN_MAX][2] = { { false } }, snap[QEMU_SNAPSHOT_NODES_MAX][2] = { { false } };
    vm_disk named = { .slot = -1 };

    snprintf(named.target, sizeof(named.target), "%s", d->target);
    for (size_t i = 0; nodes && i < json_object_array_length(nodes); i++) {
        struct json_object *n = json_object_array_get_idx(nodes, i), *name;
        const char *text;
        int k;
        if (!json_object_object_get_ex(n, "node-name", &name) || !(text = json_object_get_string(name)))
            continue;
        if ((k = node_depth(text, d->target)) >= 0)
            present[k][text[0] == 'f'] = true;
        else if (k < -1)
            snap[-1 - k][text[0] == 'f'] = true;
    }
    for (size_t k = QEMU_SNAPSHOT_NODES_MAX; s && k-- > 1;)
        for (int f = 0; f < 2; f++)
            if (snap[k][f]) {
                struct json_object *o = json_object_new_object();
                char name[48];
                qemu_disk_snapshot_node_name(name, sizeof(name), f ? "file" : "drive", &named, (unsigned)k);
                json_object_object_add(o, "node-name", json_object_new_string(name));
                vm_qmpseq_add_tolerant(s, "blockdev-del", o);
            }
    for (size_t k = 0; s && k < QEMU_CHAIN_MAX; k++)
        for (int f = 0; f < 2; f++)
            if (present[k][f]) {
                struct json_object *o = json_object_new_object();
                char name[32];
                qemu_disk_node_name(name, sizeof(name), f ? "file" : "drive", &named, k);
                json_object_object_add(o, "node-name", json_object_new_string(name));
                vm_qmpseq_add_tolerant(s, "blockdev-del", o);
            }
    if (!s || vm_qmpseq_run(s, on_nodes_deleted, d) < 0) {
        vm_qmpseq_free(s);
        on_nodes_deleted(d->job.v, 0, NULL, NULL, d);
    }
}

static void on_nodes(qmp_client *c, const qmp_reply *r, void *opaque)
{
    disk_detach *d = opaque;

    if (r->status < 0)
        log_warn("vm %s: query-named-block-nodes: %s; the nodes of %s stay", d->job.v->def.name, r->err_desc,
                 d->target);
    delete_nodes(d, r->status == 0 ? r->ret : NULL);
}

static void on_unplugged(vm *v, int status, const char *err_class, const char *err_desc, void *opaque)
{
    disk_detach *d = opaque;

    if (status < 0) {
        hotplug_job_fail(&d->job, err_class, "%s; disk %s stays attached", err_desc, d->target);
        return;
    }
    if (vm_qmp(v, "query-named-block-nodes", NULL, on_nodes, d) < 0)
        delete_nodes(d, NULL);
}

/* The definition without disk i. */
static int without_disk(const vm_def *def, size_t i, vm_def *ret)
{
    int r = vmdef_copy(def, ret);

    if (r < 0)
        return r;
    free(ret->disks[i].path);
    memmove(&ret->disks[i], &ret->disks[i + 1], (ret->ndisks - i - 1) * sizeof(ret->disks[0]));
    ret->ndisks--;
    return 0;
}

static int find_disk(const vm *v, const char *target, vm_result *res)
{
    for (size_t i = 0; i < v->def.ndisks; i++) {
        const vm_disk *k = &v->def.disks[i];
        if (strcmp(k->target, target))
            continue;
        if (k->bus != VM_DISK_VIRTIO_BLK && k->bus != VM_DISK_VIRTIO_SCSI) {
            vm_refuse(res, "InvalidParameter", "target: %s is a %s disk, which QEMU cannot unplug", target,
                      vm_disk_bus_name(k->bus));
            return -1;
        }
        /* q35's root complex takes no hotplug: only disks on a hotplug port go. */
        if (k->bus == VM_DISK_VIRTIO_BLK && k->slot < 0 &&
            qemu_machine_family_of(v->def.machine) == QEMU_MACHINE_Q35) {
            vm_refuse(res, "InvalidParameter", "target: %s sits on the root bus of the q35 machine, which "
                      "cannot unplug; only disks attached while it ran (or given a slot) can be detached", target);
            return -1;
        }
        return (int)i;
    }
    vm_refuse(res, "NotFound", "target: %s has no disk %.16s", v->def.name, target);
    return -1;
}

static disk_detach *detach_new(vm *v, size_t i)
{
    disk_detach *d = calloc(1, sizeof(*d));

    if (!d || without_disk(&v->def, i, &d->job.next) < 0) {
        free(d);
        return NULL;
    }
    snprintf(d->target, sizeof(d->target), "%s", v->def.disks[i].target);
    snprintf(d->id, sizeof(d->id), "disk-%s", d->target);
    d->job.event = "VM_DISK_DETACHED";
    d->job.release = hotplug_job_free;
    return d;
}

static void detach_free(disk_detach *d)
{
    vmdef_free(&d->job.next);
    free(d);
}

static void unplug(disk_detach *d, uint32_t timeout_ms)
{
    vm_qmpseq *s = vm_qmpseq_new(d->job.v);
    struct json_object *args = json_object_new_object();

    json_object_object_add(args, "id", json_object_new_string(d->id));
    if (s) {
        vm_qmpseq_add(s, "device_del", args, -1, NULL, NULL);
        vm_qmpseq_add_wait_deleted(s, d->id, timeout_ms);
    } else {
        json_object_put(args);
    }
    if (!s || vm_qmpseq_run(s, on_unplugged, d) < 0) {
        vm_qmpseq_free(s);
        hotplug_job_fail(&d->job, "GenericError", "%s: QMP is not connected", d->job.v->def.name);
    }
}

int vm_disk_detach(vm *v, const char *target, uint32_t timeout_ms, vm_done_cb cb, void *opaque,
                   vm_result *res)
{
    disk_detach *d;
    int i;

    if (!hotplug_vm_ready(v, res) || (i = find_disk(v, target, res)) < 0)
        return -1;
    if (!(d = detach_new(v, (size_t)i))) {
        vm_refuse(res, "GenericError", "out of memory");
        return -1;
    }
    if (!hotplug_job_begin(&d->job, v, cb, opaque, res)) {
        detach_free(d);
        return -1;
    }
    unplug(d, timeout_ms);
    return 0;
}

/* The guest let go after the detach gave up waiting: the backends go and
 * the definition follows, as the detach would have done. */
void hotplug_disk_late_delete(vm *v, const char *device_id)
{
    disk_detach *d;

    if (strncmp(device_id, "disk-", 5))
        return;
    for (size_t i = 0; i < v->def.ndisks; i++) {
        if (strcmp(v->def.disks[i].target, device_id + 5))
            continue;
        if (!(d = detach_new(v, i)))
            return;
        if (!hotplug_job_begin_late(&d->job, v, device_id)) {
            detach_free(d);
            return;
        }
        on_unplugged(v, 0, NULL, NULL, d);
        return;
    }
}
