/* vm_snapshot.c: snapshot-create, snapshot-revert, snapshot-delete (of a
 * stopped VM; vm_snapshot_stream.c deletes on a running one) and the
 * snapshot record.
 *
 * Order, so that a crash at any instant leaves every disk readable and the
 * definition pointing at a whole chain: image files are made (each by the
 * image layer: whole or not at all), then the definition is saved, then the
 * record, and only then are files that nothing uses any more removed. A
 * crash before the definition leaves unused new files; after it, a record
 * one step behind, naming files that still exist.
 *
 * The image work runs on the thread pool; the VM's job slot keeps it from
 * starting (or being changed) meanwhile. */
#include "vm_snapshot.h"
#include "vm_snapshot_internal.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <uv.h>

#include "agent.h"
#include "json_get.h"
#include "log.h"
#include "statefile.h"
#include "storage/storage.h"
#include "qemu_devices.h"
#include "vm_disks.h"
#include "vm_qga.h"
#include "vm_qmpseq.h"
#include "vm_internal.h"
#include "work.h"

#define SNAPSHOTS_MAX_BYTES (1024 * 1024)
#define SNAPSHOTS_MAX 64

/* ---- the record ------------------------------------------------------------- */

static struct json_object *snapshots_of(const vm *v)
{
    struct json_object *arr;

    return v->snapshots && json_object_object_get_ex(v->snapshots, "snapshots", &arr) &&
                   json_object_is_type(arr, json_type_array)
               ? arr : NULL;
}

void vm_snapshot_load(vm *v)
{
    char *text;
    struct json_object *o;

    if (statefile_read(v->snapshots_path, SNAPSHOTS_MAX_BYTES, &text, NULL) < 0)
        return;
    o = json_tokener_parse(text);
    free(text);
    if (!o || !json_object_is_type(o, json_type_object)) {
        log_err("vm %s: %s is unreadable; its snapshots are not listed (the disks are untouched)",
                v->def.name, v->snapshots_path);
        json_object_put(o);
        return;
    }
    v->snapshots = o;
}

struct json_object *vm_snapshot_list(const vm *v)
{
    struct json_object *arr = snapshots_of(v), *copy = NULL;

    if (!arr || json_object_deep_copy(arr, &copy, NULL) < 0)
        return json_object_new_array();
    return copy;
}

size_t vm_snapshot_states(const vm *v, char (*out)[PATH_MAX], size_t max)
{
    struct json_object *arr = snapshots_of(v);
    size_t n = 0;

    for (size_t i = arr ? json_object_array_length(arr) : 0; i-- > 0;) {
        struct json_object *disks = json_object_object_get(json_object_array_get_idx(arr, i), "disks");
        for (size_t k = 0; disks && k < json_object_array_length(disks); k++) {
            const char *state = json_get_string(json_object_array_get_idx(disks, k), "state");
            if (!state)
                continue;
            if (out && n < max)
                snprintf(out[n], PATH_MAX, "%s", state);
            n++;
        }
    }
    return n;
}

static ssize_t find_snapshot(struct json_object *arr, const char *name)
{
    for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
        const char *n = json_get_string(json_object_array_get_idx(arr, i), "name");
        if (n && !strcmp(n, name))
            return (ssize_t)i;
    }
    return -1;
}

/* ---- the operation ---------------------------------------------------------- */

void snapshot_op_free(snap_op *op)
{
    if (op->v->snapshot == op)
        op->v->snapshot = NULL;
    json_object_put(op->nodes);
    if (op->def_changed)
        vmdef_free(&op->old);
    vm_disk_files_free(op->files);
    json_object_put(op->next);
    json_object_put(op->ret);
    free(op->drop);
    free(op);
}


/* On failure: the files this operation made go, nothing else. */
void snapshot_fail(snap_op *op, const char *err_class, const char *desc)
{
    vm *v = op->v;

    if (op->def_changed) {
        vmdef_free(&v->def);
        v->def = op->old;
        op->def_changed = false;
    }
    /* Only what this operation made: a failed image step cleaned up after
     * itself, and a file that was there before is never ours to remove. */
    for (size_t i = 0; op->made && op->kind != OP_DELETE && i < op->n; i++)
        agent_unlink_later(v->agent->loop, op->kind == OP_CREATE ? op->disks[i].overlay : op->disks[i].fresh);
    vm_job_finish_error(v, err_class, "%s", desc);
    snapshot_op_free(op);
}

static void unlink_drops(void *arg)
{
    snap_op *op = arg;

    for (size_t i = 0; i < op->ndrop; i++)
        if (unlink(op->drop[i]) < 0 && errno != ENOENT)
            log_err("%s: cannot remove it: %m", op->drop[i]);
}

static void dropped(void *arg)
{
    snap_op *op = arg;
    struct json_object *ret = op->ret;

    op->v->pending_io--;
    op->ret = NULL;
    vm_job_finish_ok(op->v, ret);
    snapshot_op_free(op);
}

static void on_record_saved(int status, void *opaque)
{
    snap_op *op = opaque;
    vm *v = op->v;

    if (status < 0)
        log_err("vm %s: writing %s: %s; the snapshot list is behind the disks", v->def.name,
                v->snapshots_path, strerror(-status));
    /* Everything is recorded: what nothing uses any more goes, before the
     * reply, so a caller that looks finds it gone. */
    v->pending_io++;
    if (agent_work(v->agent->loop, unlink_drops, dropped, op) < 0) {
        v->pending_io--;
        for (size_t i = 0; i < op->ndrop; i++)
            agent_unlink_later(v->agent->loop, op->drop[i]);
        op->ndrop = 0;
        v->pending_io++;
        dropped(op);
    }
}

void snapshot_save_record(snap_op *op)
{
    vm *v = op->v;
    struct json_object *rec = json_object_new_object();
    const char *text;
    size_t len;

    json_object_object_add(rec, "snapshots", op->next);
    op->next = NULL;
    json_object_put(v->snapshots);
    v->snapshots = rec;
    text = json_object_to_json_string_length(rec, JSON_C_TO_STRING_PRETTY, &len);
    if (statefile_writer_put(v->snapshots_file, text, len, on_record_saved, op) < 0)
        on_record_saved(-ENOMEM, op);
}

static void live_switch(snap_op *op);

static void on_definition_saved(vm *v, const vm_result *res, void *opaque)
{
    snap_op *op = opaque;

    if (res->status < 0) {
        snapshot_fail(op, "GenericError", res->err_desc);
        return;
    }
    if (op->live) {
        live_switch(op);   /* the old definition is kept until QEMU switched */
        return;
    }
    vmdef_free(&op->old);
    op->def_changed = false;
    snapshot_save_record(op);
}

/* ---- a running VM: QEMU moves to the overlays ----------------------------------- */

static void switch_ended(snap_op *op);

static void on_thawed(vm *v, void *opaque)
{
    snap_op *op = opaque;

    op->freeze_sent = false;
    switch_ended(op);
}

/* QEMU switched or refused; a frozen guest is thawed first, whatever the
 * answer. On a refusal the definition names the old tops again. */
static void switch_ended(snap_op *op)
{
    vm *v = op->v;

    if (op->freeze_sent) {
        vm_qga_thaw(v, on_thawed, op);
        return;
    }
    if (op->switch_status < 0) {
        snapshot_fail(op, op->switch_class, op->switch_desc);
        if (vm_save_definition(v, NULL, NULL) < 0)
            log_err("vm %s: its definition names the snapshot's overlays, which QEMU does not use; "
                    "vm-update it to the disks' images", v->def.name);
        return;
    }
    json_object_object_add(op->ret, "frozen", json_object_new_boolean(op->frozen));
    vmdef_free(&op->old);
    op->def_changed = false;
    snapshot_save_record(op);
}

static void live_failed(snap_op *op, const char *err_class, const char *desc)
{
    op->switch_status = -1;
    snprintf(op->switch_class, sizeof(op->switch_class), "%s", err_class);
    snprintf(op->switch_desc, sizeof(op->switch_desc), "%s", desc);
    switch_ended(op);
}

static void on_switched(vm *v, int status, const char *err_class, const char *err_desc, void *opaque)
{
    snap_op *op = opaque;

    if (status < 0) {
        live_failed(op, err_class, err_desc);
        return;
    }
    op->switch_status = 0;
    switch_ended(op);
}

/* The highest N of target's overlay nodes "drive-T-sN" QEMU has, 0 for none. */
static unsigned last_overlay_node(struct json_object *nodes, const vm_disk *d)
{
    unsigned last = 0;
    char prefix[48];

    snprintf(prefix, sizeof(prefix), "drive-%s-s", d->target);
    for (size_t i = 0; nodes && i < json_object_array_length(nodes); i++) {
        struct json_object *name = json_object_object_get(json_object_array_get_idx(nodes, i), "node-name");
        const char *text = name ? json_object_get_string(name) : NULL;
        char *end;
        unsigned long n;
        if (!text || strncmp(text, prefix, strlen(prefix)))
            continue;
        n = strtoul(text + strlen(prefix), &end, 10);
        if (!*end && n > last && n < QEMU_SNAPSHOT_NODES_MAX)
            last = (unsigned)n;
    }
    return last;
}

/* One transaction for every disk, so they all switch at the same instant
 * or none does; the nodes added are removed again when it fails. */
static void on_nodes(qmp_client *c, const qmp_reply *r, void *opaque)
{
    snap_op *op = opaque;
    vm *v = op->v;
    struct json_object *actions = json_object_new_array(), *targs = json_object_new_object();
    vm_qmpseq *s;

    if (v->job != VM_JOB_SNAPSHOT) {
        json_object_put(actions);
        json_object_put(targs);
        return;
    }
    if (r->status < 0 || !(s = vm_qmpseq_new(v))) {
        json_object_put(actions);
        json_object_put(targs);
        live_failed(op, "GenericError", r->status < 0 ? r->err_desc : "out of memory");
        return;
    }
    for (size_t i = 0; i < op->n; i++) {
        const vm_disk *d = &op->old.disks[op->disks[i].index];
        unsigned last = last_overlay_node(r->ret, d), next = last + 1;
        char top[48], node[48], file[48];
        struct json_object *data = json_object_new_object(), *act = json_object_new_object(), *del;
        if (last == 0)
            qemu_disk_node_name(top, sizeof(top), "drive", d, 0);
        else
            qemu_disk_snapshot_node_name(top, sizeof(top), "drive", d, last);
        qemu_disk_snapshot_node_name(node, sizeof(node), "drive", d, next);
        qemu_disk_snapshot_node_name(file, sizeof(file), "file", d, next);
        del = json_object_new_object();
        json_object_object_add(del, "node-name", json_object_new_string(file));
        vm_qmpseq_add(s, "blockdev-add", qemu_disk_snapshot_file_node(d, op->disks[i].overlay, next), -1,
                      "blockdev-del", del);
        del = json_object_new_object();
        json_object_object_add(del, "node-name", json_object_new_string(node));
        vm_qmpseq_add(s, "blockdev-add", qemu_disk_snapshot_format_node(d, next), -1, "blockdev-del", del);
        json_object_object_add(data, "node", json_object_new_string(top));
        json_object_object_add(data, "overlay", json_object_new_string(node));
        json_object_object_add(act, "type", json_object_new_string("blockdev-snapshot"));
        json_object_object_add(act, "data", data);
        json_object_array_add(actions, act);
    }
    json_object_object_add(targs, "actions", actions);
    vm_qmpseq_add(s, "transaction", targs, -1, NULL, NULL);
    if (vm_qmpseq_run(s, on_switched, op) < 0) {
        vm_qmpseq_free(s);
        live_failed(op, "GenericError", "QMP is not connected");
    }
}

static void on_frozen(vm *v, bool sent, bool frozen, void *opaque)
{
    snap_op *op = opaque;

    op->freeze_sent = sent;
    op->frozen = frozen;
    if (vm_qmp(v, "query-named-block-nodes", NULL, on_nodes, op) < 0)
        live_failed(op, "GenericError", "QMP is not connected");
}

/* The images exist and the definition names them: the guest's file
 * systems are frozen (when it has an agent), QEMU switches, they thaw. */
static void live_switch(snap_op *op)
{
    vm_qga_freeze(op->v, on_frozen, op);
}

/* Disk i of the definition now names path (in the same directory as before). */
static int point_disk_at(vm_disk *d, const char *path)
{
    char copy[PATH_MAX];
    const char *base;

    snprintf(copy, sizeof(copy), "%s", path);
    base = basename(copy);
    if (d->pool[0]) {
        if (strlen(base) > VM_VOLUME_MAX)
            return -ENAMETOOLONG;
        snprintf(d->volume, sizeof(d->volume), "%s", base);
    } else {
        char *p = strdup(path);
        if (!p)
            return -ENOMEM;
        free(d->path);
        d->path = p;
    }
    d->format = VM_DISK_QCOW2;
    return 0;
}

/* The definition's disks move to their new tops, and are saved. */
static void repoint_and_save(snap_op *op)
{
    vm *v = op->v;
    char desc[256];

    if (vmdef_copy(&v->def, &op->old) < 0) {
        snapshot_fail(op, "GenericError", "out of memory");
        return;
    }
    op->def_changed = true;
    for (size_t i = 0; i < op->n; i++) {
        snap_disk *d = &op->disks[i];
        if (point_disk_at(&v->def.disks[d->index], op->kind == OP_CREATE ? d->overlay : d->fresh) < 0) {
            snprintf(desc, sizeof(desc), "disks[%zu]: the new image's name is too long for a volume", d->index);
            snapshot_fail(op, "GenericError", desc);
            return;
        }
    }
    if (vm_save_definition(v, on_definition_saved, op) < 0)
        snapshot_fail(op, "GenericError", "saving the definition: out of memory");
}

static void after_images(void *arg)
{
    snap_op *op = arg;

    op->v->pending_io--;
    if (op->status < 0) {
        snapshot_fail(op, op->status == -EEXIST ? "Exists" : "GenericError", op->err);
        return;
    }
    op->made = true;
    if (op->kind == OP_DELETE)
        snapshot_save_record(op);   /* the definition's tops did not move */
    else
        repoint_and_save(op);
}

static void run_images(snap_op *op, agent_work_fn *work)
{
    op->v->pending_io++;
    if (agent_work(op->v->agent->loop, work, after_images, op) < 0) {
        op->v->pending_io--;
        snapshot_fail(op, "GenericError", "queueing the image work: out of memory");
    }
}

/* ---- image work (thread pool) -------------------------------------------------- */

const char *snapshot_file_name(const char *path)
{
    const char *s = strrchr(path, '/');

    return s ? s + 1 : path;
}

/* New empty overlays at each disk's path (overlay, or fresh for a revert)
 * over its state; all or none. */
static void overlays_work(void *arg)
{
    snap_op *op = arg;
    size_t made = 0;

    for (; made < op->n; made++) {
        snap_disk *d = &op->disks[made];
        const char *at = op->kind == OP_CREATE ? d->overlay : d->fresh;
        struct stat st;
        char e[512];
        if (stat(d->state, &st) < 0 || !S_ISREG(st.st_mode)) {
            op->status = -EINVAL;
            snprintf(op->err, sizeof(op->err), "disks[%zu]: %s is not a file: external snapshots need one",
                     d->index, d->state);
            break;
        }
        /* Side by side, so the backing name is relative and the pool can move. */
        if ((op->status = img_overlay(at, snapshot_file_name(d->state), d->state_format,
                                      (const char *const *)op->files->roots, e, sizeof(e))) < 0) {
            snprintf(op->err, sizeof(op->err), "disks[%zu]: %s: %s", d->index, at, e);
            break;
        }
    }
    if (op->status < 0)
        while (made-- > 0)
            unlink(op->kind == OP_CREATE ? op->disks[made].overlay : op->disks[made].fresh);
}

int snapshot_locate(snap_op *op, snap_disk *d)
{
    img_open_options o = { .roots = (const char *const *)op->files->roots };
    img_layer_info top, state, below;
    char e[512], real_state[PATH_MAX];
    img *chain;
    int r;

    if ((r = img_open(d->overlay, IMG_FORMAT_QCOW2, &o, &chain, e, sizeof(e))) < 0) {
        snprintf(op->err, sizeof(op->err), "disks[%zu]: %s: %s", d->index, d->overlay, e);
        return r;
    }
    r = img_layer_info_get(chain, 0, &top);
    if (r == 0)
        r = img_depth(chain) > 1 ? img_layer_info_get(chain, 1, &state) : -ESTALE;
    if (r == 0 && img_depth(chain) > 2)
        r = img_layer_info_get(chain, 2, &below);
    img_close(chain);
    if (r == 0 && (!realpath(d->state, real_state) || strcmp(state.path, real_state)))
        r = -ESTALE;
    if (r < 0) {
        snprintf(op->err, sizeof(op->err), "disks[%zu]: %s is no longer backed by %s; the chain changed",
                 d->index, d->overlay, d->state);
        return r;
    }
    snprintf(d->overlay_real, sizeof(d->overlay_real), "%s", top.path);
    snprintf(d->state_real, sizeof(d->state_real), "%s", state.path);
    d->base_real[0] = d->base_name[0] = '\0';
    if (state.has_backing) {
        /* Side by side, the overlay names its new backing relatively, as
         * every image the agent makes does, so the pool can move. */
        size_t dir = (size_t)(snapshot_file_name(top.path) - top.path);
        bool side_by_side = !strncmp(below.path, top.path, dir) && !strchr(below.path + dir, '/');
        snprintf(d->base_real, sizeof(d->base_real), "%s", below.path);
        snprintf(d->base_name, sizeof(d->base_name), "%s",
                 side_by_side ? snapshot_file_name(below.path) : below.path);
        d->base_format = below.format;
    }
    return 0;
}

/* The snapshot's overlay takes its state's content (rebased onto the
 * state's own backing, or made whole when it has none): the state is then
 * used by nothing. Each step is atomic and keeps the guest's content. */
static int merge_down(snap_op *op, snap_disk *d)
{
    const char *const *roots = (const char *const *)op->files->roots;
    char e[512];
    int r;

    if ((r = snapshot_locate(op, d)) < 0)
        return r;
    if (d->base_real[0]) {
        r = img_rebase(d->overlay, d->base_name, d->base_format, roots, e, sizeof(e));
    } else {
        img_copy_options c = { .format = IMG_FORMAT_QCOW2, .replace = true, .roots = roots };
        r = img_copy_run(d->overlay, IMG_FORMAT_QCOW2, d->overlay, &c, NULL, e, sizeof(e));
    }
    if (r < 0)
        snprintf(op->err, sizeof(op->err), "disks[%zu]: merging %s into %s: %s", d->index, d->state,
                 d->overlay, e);
    return r;
}

static void delete_work(void *arg)
{
    snap_op *op = arg;

    for (size_t i = 0; i < op->n && op->status == 0; i++)
        op->status = merge_down(op, &op->disks[i]);
}

/* ---- the commands ------------------------------------------------------------- */

static bool name_ok(const char *name, vm_result *res)
{
    size_t n = strlen(name);

    if (n == 0 || n > VM_SNAPSHOT_NAME_MAX || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                          "0123456789_-") != n) {
        vm_refuse(res, "InvalidParameter", "snapshot: 1 to %d letters, digits, '_' or '-'", VM_SNAPSHOT_NAME_MAX);
        return false;
    }
    return true;
}

static bool stopped(vm *v, vm_result *res)
{
    if (v->state != VM_STOPPED && v->state != VM_CRASHED) {
        vm_refuse(res, "InvalidState", "%s is %s: snapshots are reverted on a stopped VM",
                  v->def.name, vm_state_name(v));
        return false;
    }
    return true;
}

static snap_op *op_new(vm *v, snap_kind kind, const char *name, vm_result *res)
{
    snap_op *op = calloc(1, sizeof(*op));
    char err[512] = "";

    if (!op || !(op->files = calloc(1, sizeof(*op->files)))) {
        free(op);
        vm_refuse(res, "GenericError", "out of memory");
        return NULL;
    }
    op->v = v;
    op->kind = kind;
    snprintf(op->name, sizeof(op->name), "%s", name);
    if (vm_disks_locate(v->agent, &v->def, op->files, err, sizeof(err)) < 0) {
        vm_refuse(res, "InvalidState", "%s", err);
        snapshot_op_free(op);
        return NULL;
    }
    return op;
}

static struct json_object *disk_json(const snap_disk *d)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "target", json_object_new_string(d->target));
    json_object_object_add(o, "state", json_object_new_string(d->state));
    json_object_object_add(o, "state-format", json_object_new_string(img_format_name(d->state_format)));
    json_object_object_add(o, "overlay", json_object_new_string(d->overlay));
    return o;
}

static struct json_object *entry_json(snap_op *op)
{
    struct json_object *e = json_object_new_object(), *disks = json_object_new_array();

    json_object_object_add(e, "name", json_object_new_string(op->name));
    json_object_object_add(e, "created-at", json_object_new_int64((int64_t)time(NULL)));
    for (size_t i = 0; i < op->n; i++)
        json_object_array_add(disks, disk_json(&op->disks[i]));
    json_object_object_add(e, "disks", disks);
    return e;
}

static int start(snap_op *op, vm_done_cb cb, void *opaque, vm_result *res, agent_work_fn *work)
{
    if (!vm_job_begin(op->v, VM_JOB_SNAPSHOT, cb, opaque, res)) {
        snapshot_op_free(op);
        return -1;
    }
    run_images(op, work);
    return 0;
}

/* Live: a running or paused VM whose QEMU answers. */
static bool can_snapshot(vm *v, bool *live, vm_result *res)
{
    *live = vm_has_process(v) && (v->state == VM_RUNNING || v->state == VM_PAUSED);
    if (*live && !v->qmp_ready) {
        vm_refuse(res, "InvalidState", "%s: QMP is not connected", v->def.name);
        return false;
    }
    if (*live || v->state == VM_STOPPED || v->state == VM_CRASHED)
        return true;
    vm_refuse(res, "InvalidState", "%s is %s: snapshots are taken and deleted on a running, paused or stopped VM",
              v->def.name, vm_state_name(v));
    return false;
}

int vm_snapshot_create(vm *v, const char *name, vm_done_cb cb, void *opaque, vm_result *res)
{
    struct json_object *arr = snapshots_of(v);
    snap_op *op;
    bool live;

    if (!name_ok(name, res) || !can_snapshot(v, &live, res))
        return -1;
    if (find_snapshot(arr, name) >= 0) {
        vm_refuse(res, "Exists", "snapshot: %s has a snapshot named %s", v->def.name, name);
        return -1;
    }
    if (arr && json_object_array_length(arr) >= SNAPSHOTS_MAX) {
        vm_refuse(res, "LimitReached", "snapshot: %s has %d snapshots, the most a chain may carry",
                  v->def.name, SNAPSHOTS_MAX);
        return -1;
    }
    if (!(op = op_new(v, OP_CREATE, name, res)))
        return -1;
    op->live = live;
    for (size_t i = 0; i < v->def.ndisks; i++) {
        const vm_disk *d = &v->def.disks[i];
        snap_disk *s = &op->disks[op->n];
        if (d->cdrom || d->readonly || !op->files->source[i][0])
            continue;   /* never written: nothing to freeze */
        s->index = i;
        snprintf(s->target, sizeof(s->target), "%s", d->target);
        snprintf(s->state, sizeof(s->state), "%s", op->files->source[i]);
        s->state_format = d->format == VM_DISK_RAW ? IMG_FORMAT_RAW : IMG_FORMAT_QCOW2;
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s", s->state);
        if (snprintf(s->overlay, sizeof(s->overlay), "%s/%s.%s.%s.qcow2", dirname(dir), v->def.name, d->target,
                     name) >= (int)sizeof(s->overlay)) {
            vm_refuse(res, "InvalidParameter", "snapshot: the overlay's path for disks[%zu] is too long", i);
            snapshot_op_free(op);
            return -1;
        }
        op->n++;
    }
    if (op->n == 0) {
        vm_refuse(res, "InvalidState", "%s has no writable disk to snapshot", v->def.name);
        snapshot_op_free(op);
        return -1;
    }
    op->next = vm_snapshot_list(v);
    op->ret = entry_json(op);
    json_object_object_add(op->ret, "live", json_object_new_boolean(live));
    json_object_array_add(op->next, json_object_get(op->ret));
    return start(op, cb, opaque, res, overlays_work);
}

/* The latest snapshot's overlay for target: what the disk's top must be. */
static const char *latest_overlay(struct json_object *arr, const char *target)
{
    const char *top = NULL;

    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        struct json_object *disks = json_object_object_get(json_object_array_get_idx(arr, i), "disks");
        for (size_t k = 0; disks && k < json_object_array_length(disks); k++) {
            struct json_object *d = json_object_array_get_idx(disks, k);
            const char *t = json_get_string(d, "target");
            if (t && !strcmp(t, target))
                top = json_get_string(d, "overlay");
        }
    }
    return top;
}

/* The snapshot's disks, each checked against the definition now. */
static int load_disks(snap_op *op, struct json_object *snap, vm_result *res)
{
    vm *v = op->v;
    struct json_object *disks = json_object_object_get(snap, "disks");
    struct json_object *arr = snapshots_of(v);

    for (size_t k = 0; disks && k < json_object_array_length(disks) && k < VM_DISKS_MAX; k++) {
        struct json_object *d = json_object_array_get_idx(disks, k);
        const char *target = json_get_string(d, "target"), *state = json_get_string(d, "state"), *overlay = json_get_string(d, "overlay");
        const char *format = json_get_string(d, "state-format"), *top;
        snap_disk *s = &op->disks[op->n];
        size_t i;
        if (!target || !state || !overlay || !format || img_format_parse(format, &s->state_format) < 0 ||
            strlen(target) > VM_TARGET_MAX || strlen(state) >= PATH_MAX || strlen(overlay) >= PATH_MAX) {
            vm_refuse(res, "GenericError", "%s: snapshot %s is damaged in %s", v->def.name, op->name,
                      v->snapshots_path);
            return -1;
        }
        for (i = 0; i < v->def.ndisks && strcmp(v->def.disks[i].target, target); i++)
            ;
        if (i == v->def.ndisks) {
            vm_refuse(res, "InvalidState", "snapshot: its disk %s is no longer in %s", target, v->def.name);
            return -1;
        }
        top = latest_overlay(arr, target);
        if (!top || strcmp(top, op->files->source[i])) {
            vm_refuse(res, "InvalidState", "disks[%zu]: %s is the disk now, not %s where the snapshots end",
                      i, op->files->source[i], top ? top : "?");
            return -1;
        }
        s->index = i;
        snprintf(s->target, sizeof(s->target), "%s", target);
        snprintf(s->state, sizeof(s->state), "%s", state);
        snprintf(s->overlay, sizeof(s->overlay), "%s", overlay);
        op->n++;
    }
    return 0;
}

/* Every snapshot's overlays from index k on, for removal. */
static int collect_from(snap_op *op, struct json_object *arr, size_t k)
{
    size_t total = 0;

    for (size_t i = k; i < json_object_array_length(arr); i++)
        total += json_object_array_length(json_object_object_get(json_object_array_get_idx(arr, i), "disks"));
    if (!(op->drop = calloc(total ? total : 1, sizeof(*op->drop))))
        return -ENOMEM;
    for (size_t i = k; i < json_object_array_length(arr); i++) {
        struct json_object *disks = json_object_object_get(json_object_array_get_idx(arr, i), "disks");
        for (size_t j = 0; j < json_object_array_length(disks); j++) {
            const char *o = json_get_string(json_object_array_get_idx(disks, j), "overlay");
            if (o)
                snprintf(op->drop[op->ndrop++], PATH_MAX, "%s", o);
        }
    }
    return 0;
}

static bool can_snapshot(vm *v, bool *live, vm_result *res);

static snap_op *op_for(vm *v, snap_kind kind, const char *name, ssize_t *k, vm_result *res)
{
    struct json_object *arr = snapshots_of(v);
    bool live = false;
    snap_op *op;

    if (!name_ok(name, res) || (kind == OP_DELETE ? !can_snapshot(v, &live, res) : !stopped(v, res)))
        return NULL;
    if ((*k = find_snapshot(arr, name)) < 0) {
        vm_refuse(res, "NotFound", "snapshot: %s has no snapshot named %s", v->def.name, name);
        return NULL;
    }
    if (!(op = op_new(v, kind, name, res)))
        return NULL;
    op->live = live;
    if (load_disks(op, json_object_array_get_idx(arr, (size_t)*k), res) < 0) {
        snapshot_op_free(op);
        return NULL;
    }
    return op;
}

int vm_snapshot_revert(vm *v, const char *name, vm_done_cb cb, void *opaque, vm_result *res)
{
    struct json_object *arr = snapshots_of(v), *dropped;
    ssize_t k;
    snap_op *op = op_for(v, OP_REVERT, name, &k, res);
    struct timespec now;
    long long ms;

    clock_gettime(CLOCK_REALTIME, &now);
    ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;   /* a name never used before */

    if (!op)
        return -1;
    for (size_t i = 0; i < op->n; i++) {
        snap_disk *d = &op->disks[i];
        char dir[PATH_MAX], target[VM_TARGET_MAX + 1], fresh[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s", d->state);
        snprintf(target, sizeof(target), "%s", d->target);
        int len = snprintf(fresh, sizeof(fresh), "%s/%s.%s.%s.%lld.qcow2", dirname(dir), v->def.name, target,
                           name, ms);
        memcpy(d->fresh, fresh, sizeof(fresh));
        if (len >= (int)sizeof(fresh)) {
            vm_refuse(res, "InvalidParameter", "snapshot: the new overlay's path for disks[%zu] is too long",
                      d->index);
            snapshot_op_free(op);
            return -1;
        }
    }
    if (collect_from(op, arr, (size_t)k) < 0) {
        vm_refuse(res, "GenericError", "out of memory");
        snapshot_op_free(op);
        return -1;
    }
    /* What comes after the snapshot was built on what is dropped: it goes too. */
    op->next = json_object_new_array();
    dropped = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        struct json_object *e = json_object_array_get_idx(arr, i), *copy = NULL;
        if (i > (size_t)k) {
            json_object_array_add(dropped, json_object_new_string(json_get_string(e, "name") ?: ""));
            continue;
        }
        json_object_deep_copy(e, &copy, NULL);
        json_object_array_add(op->next, copy);
    }
    struct json_object *disks = json_object_object_get(json_object_array_get_idx(op->next, (size_t)k), "disks");
    for (size_t i = 0; i < op->n && disks; i++)
        json_object_object_add(json_object_array_get_idx(disks, i), "overlay",
                               json_object_new_string(op->disks[i].fresh));
    op->ret = json_object_new_object();
    json_object_object_add(op->ret, "name", json_object_new_string(name));
    json_object_object_add(op->ret, "dropped", dropped);
    return start(op, cb, opaque, res, overlays_work);
}

int vm_snapshot_delete(vm *v, const char *name, vm_done_cb cb, void *opaque, vm_result *res)
{
    struct json_object *arr = snapshots_of(v);
    ssize_t k;
    snap_op *op = op_for(v, OP_DELETE, name, &k, res);

    if (!op)
        return -1;
    if (!(op->drop = calloc(op->n ? op->n : 1, sizeof(*op->drop)))) {
        vm_refuse(res, "GenericError", "out of memory");
        snapshot_op_free(op);
        return -1;
    }
    for (size_t i = 0; i < op->n; i++)
        snprintf(op->drop[op->ndrop++], PATH_MAX, "%s", op->disks[i].state);
    /* The snapshot before, whose overlay was this one's state, now ends at
     * this one's overlay: the state is merged into it. */
    op->next = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        struct json_object *copy = NULL, *disks;
        if (i == (size_t)k)
            continue;
        json_object_deep_copy(json_object_array_get_idx(arr, i), &copy, NULL);
        disks = json_object_object_get(copy, "disks");
        for (size_t j = 0; i < (size_t)k && disks && j < json_object_array_length(disks); j++) {
            struct json_object *d = json_object_array_get_idx(disks, j);
            for (size_t m = 0; m < op->n; m++)
                if (json_get_string(d, "overlay") && !strcmp(json_get_string(d, "overlay"), op->disks[m].state))
                    json_object_object_add(d, "overlay", json_object_new_string(op->disks[m].overlay));
        }
        json_object_array_add(op->next, copy);
    }
    op->ret = json_object_new_object();
    if (!op->live)
        return start(op, cb, opaque, res, delete_work);
    if (!vm_job_begin(v, VM_JOB_SNAPSHOT, cb, opaque, res)) {
        snapshot_op_free(op);
        return -1;
    }
    snapshot_stream_start(op);
    return 0;
}
