/* cmd_master.c: masters and clones (xCAT's clonevm, the vmmaster table,
 * rmvm -p), as jobs with progress events and cancellation. */
#include "cmd_handlers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <uv.h>

#include "agent.h"
#include "cmd_args.h"
#include "disk.h"
#include "diskjob.h"
#include "events.h"
#include "log.h"
#include "master.h"
#include "pool.h"
#include "server.h"
#include "statefile.h"
#include "vm.h"
#include "volume.h"
#include "work.h"

typedef struct clone_ctx {
    request *r;
    agent *a;
    vm *v;                  /* master-create: the source; vm-clone: the new VM */
    master *m;              /* master-create: the new master; vm-clone: the source */
    bool detached;
    diskjob_spec rebase;    /* master-create, attached: the second phase */
    /* vm-clone: the new definition is written and synced to a temp file
     * while the disks are made, and renamed into place once they are. */
    char *def_text;
    char def_tmp[PATH_MAX];
    int stage_status, disks_status;
    bool staged, disks_done;
    char disks_err[512];
    uint64_t last_event_ms;
} clone_ctx;

/* ---- progress ------------------------------------------------------------- */

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* A terminal shows progress smoothly at 4 updates a second; more would only
 * flood the event ring. */
static void on_progress(void *opaque, const diskop *op, uint64_t done, uint64_t total, const char *message)
{
    clone_ctx *c = opaque;
    uint64_t now = uv_now(c->a->loop);
    struct json_object *ev;

    if (!message && done != total && now - c->last_event_ms < 250)
        return;
    c->last_event_ms = now;
    ev = json_object_new_object();
    json_object_object_add(ev, "vm", json_object_new_string(c->v->def.name));
    json_object_object_add(ev, "job", json_object_new_string(vm_job_name(c->v->job)));
    json_object_object_add(ev, "disk", json_object_new_string(base_name(op->dst)));
    json_object_object_add(ev, "done", json_object_new_int64((int64_t)done));
    json_object_object_add(ev, "total", json_object_new_int64((int64_t)total));
    if (message) {
        json_object_object_add(ev, "message", json_object_new_string(message));
        log_info("vm %s: %s", c->v->def.name, message);
    }
    event_emit(c->a->events, "JOB_PROGRESS", ev);
}

static void job_event(clone_ctx *c, const char *status, const char *err)
{
    struct json_object *ev = json_object_new_object();

    json_object_object_add(ev, "vm", json_object_new_string(c->v->def.name));
    json_object_object_add(ev, "job", json_object_new_string(vm_job_name(c->v->job)));
    json_object_object_add(ev, "status", json_object_new_string(status));
    if (err)
        json_object_object_add(ev, "error", json_object_new_string(err));
    event_emit(c->a->events, "JOB_FINISHED", ev);
}

static const char *error_class(int status)
{
    return status == -ECANCELED ? "Cancelled" : status == -ENOSPC ? "NoSpace" : "GenericError";
}

/* ---- definitions derived from others ----------------------------------------- */

/* A derived VM's NICs get MACs of their own. */
static void drop_macs(struct json_object *o)
{
    struct json_object *nics;

    if (!json_object_object_get_ex(o, "nics", &nics))
        return;
    for (size_t i = 0; i < json_object_array_length(nics); i++)
        json_object_object_del(json_object_array_get_idx(nics, i), "mac");
}

/* def as JSON renamed, with a fresh uuid and its disks pointing at new
 * volumes named like xCAT's: NAME.sda.qcow2 in the pool of the same disk, or
 * in `pool` when given. */
static struct json_object *derived_definition(const vm_def *def, const char *name, const char *pool_name)
{
    struct json_object *o = vmdef_to_json(def), *disks;

    json_object_object_add(o, "name", json_object_new_string(name));
    json_object_object_del(o, "uuid");
    drop_macs(o);
    if (!json_object_object_get_ex(o, "disks", &disks))
        return o;
    for (size_t i = 0; i < json_object_array_length(disks); i++) {
        struct json_object *d = json_object_array_get_idx(disks, i);
        char vol[VM_VOLUME_MAX + 1];
        if (def->disks[i].cdrom)
            continue;
        snprintf(vol, sizeof(vol), "%s.%s.qcow2", name, def->disks[i].target);
        if (pool_name)
            json_object_object_add(d, "pool", json_object_new_string(pool_name));
        else if (!json_object_object_get_ex(d, "pool", NULL) || def->disks[i].path)
            json_object_object_add(d, "pool", json_object_new_string(POOL_DEFAULT));
        json_object_object_add(d, "volume", json_object_new_string(vol));
        json_object_object_add(d, "format", json_object_new_string("qcow2"));
        json_object_object_del(d, "path");
        json_object_object_del(d, "size");
    }
    return o;
}

/* The pool a derived disk lands in must hold files. */
static int check_target_pool(agent *a, const vm_disk *d, char *err, size_t errlen)
{
    pool *p = pool_find(a, d->pool);

    if (!p || !p->active || p->spec.kind == IMG_POOL_PHY) {
        snprintf(err, errlen, "disks: pool %s for %s is %s", d->pool, d->volume,
                 !p ? "not defined" : !p->active ? "not started" : "a block device, it holds no files");
        return -EINVAL;
    }
    return 0;
}

static int derive(agent *a, const vm_def *src, const char *name, const char *pool_name, vm_def *ret,
                  char *err, size_t errlen)
{
    struct json_object *o = derived_definition(src, name, pool_name);
    int r = vmdef_from_json(o, ret, err, errlen);

    json_object_put(o);
    for (size_t i = 0; r == 0 && i < ret->ndisks; i++)
        if (!ret->disks[i].cdrom && (r = check_target_pool(a, &ret->disks[i], err, errlen)) < 0)
            vmdef_free(ret);
    return r;
}

/* One disk operation from the disk `from` to the disk `to`. */
static int add_op(agent *a, diskjob_spec *s, diskop_kind kind, const vm_disk *from, const vm_disk *to,
                  char *err, size_t errlen)
{
    diskop *op = diskjob_add(s);

    if (!op) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (disk_source_path(a, from, op->src, sizeof(op->src)) < 0 ||
        disk_source_path(a, to, op->dst, sizeof(op->dst)) < 0) {
        snprintf(err, errlen, "disks: %s: no such pool", from->target);
        return -EINVAL;
    }
    op->kind = kind;
    op->src_format = from->format == VM_DISK_RAW ? IMG_FORMAT_RAW : IMG_FORMAT_QCOW2;
    op->dst_format = to->format == VM_DISK_RAW ? IMG_FORMAT_RAW : IMG_FORMAT_QCOW2;
    return 0;
}

static bool disk_pool_active(agent *a, const vm_disk *d)
{
    pool *p;

    if (d->path)
        return true;
    return (p = pool_find(a, d->pool)) && p->active;
}

static void ctx_free(clone_ctx *c)
{
    diskjob_spec_free(&c->rebase);
    free(c->def_text);
    free(c);
}

static clone_ctx *ctx_new(request *r)
{
    clone_ctx *c = calloc(1, sizeof(*c));

    if (c) {
        c->r = r;
        c->a = request_agent(r);
    } else {
        request_error(r, "GenericError", "out of memory");
    }
    return c;
}

/* ---- master-create ---------------------------------------------------------- */

static void master_created_finish(clone_ctx *c, int status, const char *err)
{
    vm *v = c->v;

    v->job = VM_JOB_NONE;
    v->diskjob = NULL;
    c->m->busy = false;
    if (status < 0) {
        job_event(c, "failed", err);
        request_error(c->r, error_class(status), "%s", err);
    } else {
        struct json_object *ev = json_object_new_object();
        json_object_object_add(ev, "master", json_object_new_string(c->m->def.name));
        json_object_object_add(ev, "vm", json_object_new_string(v->def.name));
        json_object_object_add(ev, "detached", json_object_new_boolean(c->detached));
        event_emit(c->a->events, "MASTER_CREATED", ev);
        job_event(c, "completed", NULL);
        log_info("master %s made from %s (%s)", c->m->def.name, v->def.name,
                 c->detached ? "detached" : "attached");
        request_ok(c->r, master_json(c->m));
    }
    ctx_free(c);
}

static void on_rebased(void *opaque, int status, const char *err)
{
    clone_ctx *c = opaque;
    char msg[600];

    if (status < 0) {
        /* The master stays: disks already rebased depend on it. */
        snprintf(msg, sizeof(msg), "master %s was made, but turning %s into its overlay failed: %s",
                 c->m->def.name, c->v->def.name, err);
        master_created_finish(c, status, msg);
        return;
    }
    master_created_finish(c, 0, NULL);
}

static void on_master_saved(int status, void *opaque)
{
    clone_ctx *c = opaque;
    char err[256];
    int r;

    if (status < 0) {
        snprintf(err, sizeof(err), "saving master %s: %s", c->m->def.name, strerror(-status));
        master_created_finish(c, status, err);
        return;
    }
    if (c->detached) {
        master_created_finish(c, 0, NULL);
        return;
    }
    c->rebase.progress = on_progress;
    c->rebase.done = on_rebased;
    c->rebase.opaque = c;
    if ((r = diskjob_start(c->a, &c->rebase, &c->v->diskjob)) < 0)
        on_rebased(c, r, strerror(-r));
}

static void drop_new_master(clone_ctx *c)
{
    master_unlink(c->a, c->m);
    master_free(c->m);
    c->m = NULL;
}

static void on_master_copied(void *opaque, int status, const char *err)
{
    clone_ctx *c = opaque;
    int r;

    c->v->diskjob = NULL;
    if (status < 0) {
        drop_new_master(c);
        c->v->job = VM_JOB_NONE;
        job_event(c, status == -ECANCELED ? "cancelled" : "failed", err);
        request_error(c->r, error_class(status), "%s", err);
        ctx_free(c);
        return;
    }
    if ((r = master_save(c->m, on_master_saved, c)) < 0)
        on_master_saved(r, c);
}

static const char *label(const vm_def *d, const char *key, const char *def)
{
    for (size_t i = 0; i < d->nlabels; i++)
        if (strcmp(d->labels[i].key, key) == 0)
            return d->labels[i].value;
    return def;
}

static void fill_master_record(master *m, request *r, struct json_object *args, const vm *v)
{
    const char *os, *arch, *profile;
    uid_t uid = request_uid(r);

    arg_string(r, args, "os", false, &os);
    arg_string(r, args, "arch", false, &arch);
    arg_string(r, args, "profile", false, &profile);
    snprintf(m->os, sizeof(m->os), "%s", os ? os : label(&v->def, "os", ""));
    snprintf(m->arch, sizeof(m->arch), "%s", arch ? arch : label(&v->def, "arch", "x86_64"));
    snprintf(m->profile, sizeof(m->profile), "%s", profile ? profile : label(&v->def, "profile", ""));
    if (uid == 0)
        snprintf(m->originator, sizeof(m->originator), "root");
    else
        snprintf(m->originator, sizeof(m->originator), "uid %u", (unsigned)uid);
    snprintf(m->from_vm, sizeof(m->from_vm), "%s", v->def.name);
    m->created = time(NULL);
}

/* Attached: each disk becomes an overlay of its copy, which needs a qcow2
 * file of its own in a pool. */
static int check_attachable(const vm_disk *d, char *err, size_t errlen)
{
    if (d->format != VM_DISK_QCOW2 || d->path) {
        snprintf(err, errlen, "disks: %s is %s; an attached master needs qcow2 pool volumes (use detached)",
                 d->target, d->path ? "a path outside the pool volumes" : "raw");
        return -EINVAL;
    }
    return 0;
}

static int plan_master(clone_ctx *c, diskjob_spec *copies, char *err, size_t errlen)
{
    const vm_def *src = &c->v->def, *dst = &c->m->def;
    int r;

    for (size_t i = 0; i < src->ndisks; i++) {
        if (src->disks[i].cdrom)
            continue;
        if (!disk_pool_active(c->a, &src->disks[i])) {
            snprintf(err, errlen, "disks: pool %s of %s is not started", src->disks[i].pool, src->disks[i].target);
            return -EINVAL;
        }
        if ((r = add_op(c->a, copies, DISKOP_COPY, &src->disks[i], &dst->disks[i], err, errlen)) < 0)
            return r;
        if (c->detached)
            continue;
        if ((r = check_attachable(&src->disks[i], err, errlen)) < 0 ||
            (r = add_op(c->a, &c->rebase, DISKOP_REBASE, &dst->disks[i], &src->disks[i], err, errlen)) < 0)
            return r;
    }
    if (copies->nops == 0) {
        snprintf(err, errlen, "vm: %s has no disks to make a master of", src->name);
        return -EINVAL;
    }
    return 0;
}

static master *new_master(clone_ctx *c, const char *name, const char *pool_name, char *err, size_t errlen)
{
    master *m = calloc(1, sizeof(*m));

    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->agent = c->a;
    if (derive(c->a, &c->v->def, name, pool_name, &m->def, err, errlen) < 0 ||
        snprintf(m->file_path, sizeof(m->file_path), "%s/%s.json", c->a->masters_dir, name) >=
            (int)sizeof(m->file_path)) {
        free(m);
        return NULL;
    }
    return m;
}

static bool master_name_free(request *r, const char *name)
{
    if (!vmdef_name_valid(name)) {
        request_error(r, "InvalidParameter", "master: 1 to 64 letters, digits, '.', '_' or '-'");
        return false;
    }
    if (master_find(request_agent(r), name)) {
        request_error(r, "Exists", "master: %s already exists", name);
        return false;
    }
    return true;
}

static bool vm_stopped(request *r, vm *v)
{
    /* Its disks hold a guest that was running when saved: not a master. */
    if (v->state == VM_SAVED) {
        request_error(r, "InvalidState", "%s is saved: vm-restore and shut it down, or vm-save-discard its "
                      "state, first", v->def.name);
        return false;
    }
    if (v->state != VM_STOPPED && v->state != VM_CRASHED) {
        request_error(r, "InvalidState", "%s is %s: stop it first", v->def.name, vm_state_name(v));
        return false;
    }
    if (v->job != VM_JOB_NONE) {
        request_error(r, "Busy", "%s: a %s job is in progress", v->def.name, vm_job_name(v->job));
        return false;
    }
    return true;
}

static void start_master_job(clone_ctx *c, diskjob_spec *copies)
{
    int r;

    copies->progress = on_progress;
    copies->done = on_master_copied;
    copies->opaque = c;
    master_append(c->a, c->m);
    c->m->busy = true;
    c->v->job = VM_JOB_MASTER;
    if ((r = diskjob_start(c->a, copies, &c->v->diskjob)) < 0) {
        c->v->job = VM_JOB_NONE;
        drop_new_master(c);
        request_error(c->r, "GenericError", "starting the copy: %s", strerror(-r));
        ctx_free(c);
    }
}

void cmd_master_create(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "vm", "master", "detached", "pool", "os", "arch", "profile", NULL };
    const char *vm_name, *name, *pool_name, *s;
    diskjob_spec copies = { 0 };
    char err[512];
    clone_ctx *c;
    vm *v;

    if (!args_known(r, args, allowed) || !arg_string(r, args, "vm", true, &vm_name) ||
        !arg_string(r, args, "master", true, &name) || !arg_string(r, args, "pool", false, &pool_name) ||
        !arg_string(r, args, "os", false, &s) || !arg_string(r, args, "arch", false, &s) ||
        !arg_string(r, args, "profile", false, &s) || !master_name_free(r, name))
        return;
    if (!(v = vm_find(request_agent(r), vm_name)) || v->undefined) {
        request_error(r, "NotFound", "vm: no VM named '%.64s'", vm_name);
        return;
    }
    if (pool_name && !arg_pool(r, args, "pool"))
        return;
    if (!vm_stopped(r, v) || !(c = ctx_new(r)))
        return;
    c->v = v;
    if (!arg_bool(r, args, "detached", false, &c->detached)) {
        ctx_free(c);
        return;
    }
    if (!(c->m = new_master(c, name, pool_name, err, sizeof(err))) ||
        plan_master(c, &copies, err, sizeof(err)) < 0) {
        master_free(c->m);
        diskjob_spec_free(&copies);
        request_error(r, "InvalidParameter", "%s", err);
        ctx_free(c);
        return;
    }
    fill_master_record(c->m, r, args, v);
    start_master_job(c, &copies);
}

/* ---- vm-clone ---------------------------------------------------------------- */

static void on_clone_saved(vm *v, const vm_result *res, void *opaque)
{
    clone_ctx *c = opaque;
    struct json_object *o, *ev;

    v->job = VM_JOB_NONE;
    c->m->readers--;
    if (res->status < 0) {
        /* The files are kept out of the definition's way but not lost: the
         * operator can delete them (they are listed in the error). */
        job_event(c, "failed", res->err_desc);
        request_error(c->r, res->err_class, "saving %s: %s (its new disks are left in place)",
                      v->def.name, res->err_desc);
        vm_free_undefined(c->a, v);
        ctx_free(c);
        return;
    }
    ev = json_object_new_object();
    json_object_object_add(ev, "vm", json_object_new_string(v->def.name));
    json_object_object_add(ev, "uuid", json_object_new_string(v->def.uuid));
    json_object_object_add(ev, "created", json_object_new_boolean(true));
    event_emit(c->a->events, "VM_DEFINED", ev);
    job_event(c, "completed", NULL);
    agent_vms_changed(c->a);
    log_info("vm %s cloned from master %s (%s)", v->def.name, c->m->def.name, c->detached ? "detached" : "attached");
    o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(v->def.name));
    json_object_object_add(o, "uuid", json_object_new_string(v->def.uuid));
    json_object_object_add(o, "master", json_object_new_string(c->m->def.name));
    json_object_object_add(o, "detached", json_object_new_boolean(c->detached));
    request_ok(c->r, o);
    ctx_free(c);
}

static void clone_failed(clone_ctx *c, int status, const char *err)
{
    c->m->readers--;
    job_event(c, status == -ECANCELED ? "cancelled" : "failed", err);
    request_error(c->r, error_class(status), "%s", err);
    vm_free_undefined(c->a, c->v);
    ctx_free(c);
}

static void run_install(void *arg)
{
    clone_ctx *c = arg;

    c->stage_status = statefile_install(c->def_tmp, c->v->def_path);
}

static void after_install(void *arg)
{
    clone_ctx *c = arg;
    vm_result res = { .status = 0 };
    static char desc[256];

    c->v->pending_io--;
    if (c->stage_status < 0) {
        snprintf(desc, sizeof(desc), "saving the definition: %s", strerror(-c->stage_status));
        res = (vm_result){ .status = -1, .err_class = "GenericError", .err_desc = desc };
    }
    on_clone_saved(c->v, &res, c);
}

static void run_unstage(void *arg)
{
    unlink(((clone_ctx *)arg)->def_tmp);
}

static void after_unstage(void *arg)
{
    clone_ctx *c = arg;

    c->v->pending_io--;
    clone_failed(c, c->disks_status, c->disks_err);
}

/* Both halves are done: the disks exist (or failed) and the definition is
 * staged (or failed). Only then does the definition get its name, so it
 * never names a disk that is not durable. */
static void clone_both_done(clone_ctx *c)
{
    vm_result res = { .status = -1, .err_class = "GenericError", .err_desc = "out of memory" };

    if (!c->staged || !c->disks_done)
        return;
    if (c->disks_status < 0) {
        if (c->stage_status < 0 || agent_work(c->a->loop, run_unstage, after_unstage, c) < 0)
            clone_failed(c, c->disks_status, c->disks_err);
        else
            c->v->pending_io++;
        return;
    }
    if (c->stage_status < 0) {
        snprintf(c->disks_err, sizeof(c->disks_err), "saving the definition: %s", strerror(-c->stage_status));
        res.err_desc = c->disks_err;
        on_clone_saved(c->v, &res, c);
        return;
    }
    if (agent_work(c->a->loop, run_install, after_install, c) < 0) {
        unlink(c->def_tmp);
        on_clone_saved(c->v, &res, c);
        return;
    }
    c->v->pending_io++;
}

static void on_clone_disks(void *opaque, int status, const char *err)
{
    clone_ctx *c = opaque;

    c->v->diskjob = NULL;
    c->disks_done = true;
    c->disks_status = status;
    snprintf(c->disks_err, sizeof(c->disks_err), "%s", err ? err : "");
    clone_both_done(c);
}

static void run_stage(void *arg)
{
    clone_ctx *c = arg;

    c->stage_status = statefile_stage(c->v->def_path, c->def_text, strlen(c->def_text), 0600, c->def_tmp);
}

static void after_stage(void *arg)
{
    clone_ctx *c = arg;

    c->v->pending_io--;
    c->staged = true;
    clone_both_done(c);
}

/* The new definition's text, made on the loop, written on the pool. */
static void stage_definition(clone_ctx *c)
{
    struct json_object *j = vmdef_to_json(&c->v->def);
    const char *text = j ? json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY) : NULL;

    c->def_text = text ? strdup(text) : NULL;
    json_object_put(j);
    if (!c->def_text || agent_work(c->a->loop, run_stage, after_stage, c) < 0) {
        c->stage_status = -ENOMEM;
        c->staged = true;
        return;
    }
    c->v->pending_io++;
}

static int plan_clone(clone_ctx *c, diskjob_spec *s, char *err, size_t errlen)
{
    const vm_def *from = &c->m->def, *to = &c->v->def;
    int r;

    for (size_t i = 0; i < from->ndisks; i++) {
        if (from->disks[i].cdrom)
            continue;
        if ((r = add_op(c->a, s, c->detached ? DISKOP_COPY : DISKOP_OVERLAY, &from->disks[i], &to->disks[i],
                        err, errlen)) < 0)
            return r;
    }
    return 0;
}

static bool clone_name_free(request *r, const char *name)
{
    if (!vmdef_name_valid(name)) {
        request_error(r, "InvalidParameter", "name: 1 to 64 letters, digits, '.', '_' or '-'");
        return false;
    }
    if (vm_find(request_agent(r), name)) {
        request_error(r, "Exists", "name: a VM named %s exists", name);
        return false;
    }
    return true;
}

static void start_clone_job(clone_ctx *c, diskjob_spec *s)
{
    int r;

    s->progress = on_progress;
    s->done = on_clone_disks;
    s->opaque = c;
    c->m->readers++;
    vm_append(c->a, c->v);
    c->v->job = VM_JOB_CLONE;
    agent_vms_changed(c->a);
    if ((r = diskjob_start(c->a, s, &c->v->diskjob)) < 0) {
        c->m->readers--;
        request_error(c->r, "GenericError", "starting the clone: %s", strerror(-r));
        vm_free_undefined(c->a, c->v);
        ctx_free(c);
        return;
    }
    stage_definition(c);
}

void cmd_vm_clone(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "master", "name", "detached", "pool", NULL };
    const char *mname, *name, *pool_name;
    diskjob_spec s = { 0 };
    char err[512];
    vm_def def;
    clone_ctx *c;
    master *m;

    if (!args_known(r, args, allowed) || !arg_string(r, args, "master", true, &mname) ||
        !arg_string(r, args, "name", true, &name) || !arg_string(r, args, "pool", false, &pool_name) ||
        !clone_name_free(r, name))
        return;
    if (!(m = master_find(request_agent(r), mname))) {
        request_error(r, "NotFound", "master: no master named '%.64s'", mname);
        return;
    }
    if (pool_name && !arg_pool(r, args, "pool"))
        return;
    if (m->busy) {
        request_error(r, "Busy", "master %s is being created or deleted", m->def.name);
        return;
    }
    if (!(c = ctx_new(r)))
        return;
    c->m = m;
    if (!arg_bool(r, args, "detached", false, &c->detached)) {
        ctx_free(c);
        return;
    }
    if (derive(c->a, &m->def, name, pool_name, &def, err, sizeof(err)) < 0) {
        request_error(r, "InvalidParameter", "%s", err);
        ctx_free(c);
        return;
    }
    if (vm_new(c->a, &def, &c->v) < 0) {
        vmdef_free(&def);
        request_error(r, "InvalidParameter", "name: too long for this host's run directory");
        ctx_free(c);
        return;
    }
    if (plan_clone(c, &s, err, sizeof(err)) < 0) {
        vm_free(c->v);
        diskjob_spec_free(&s);
        request_error(r, "InvalidParameter", "%s", err);
        ctx_free(c);
        return;
    }
    start_clone_job(c, &s);
}

/* ---- job-cancel ---------------------------------------------------------------- */

void cmd_job_cancel(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", NULL };
    vm *v;

    if (!args_known(r, args, allowed) || !(v = arg_vm(r, args)))
        return;
    if (!v->diskjob) {
        request_error(r, "InvalidState", "%s has no copy job to cancel", v->def.name);
        return;
    }
    diskjob_cancel(v->diskjob);
    request_ok(r, NULL);
}

/* ---- masters ---------------------------------------------------------------- */

void cmd_query_masters(request *r, struct json_object *args)
{
    struct json_object *arr = json_object_new_array();

    for (master *m = request_agent(r)->masters; m; m = m->next)
        if (!m->busy || m->file)
            json_object_array_add(arr, master_json(m));
    request_ok(r, arr);
}

/* ---- master-delete ------------------------------------------------------------ */

typedef struct master_delete_ctx {
    request *r;
    master *m;
    const char *paths[VM_DISKS_MAX];
    char path_buf[VM_DISKS_MAX][PATH_MAX];
    size_t npaths;
} master_delete_ctx;

static void master_delete_end(master_delete_ctx *d, bool gone)
{
    agent *a = request_agent(d->r);

    if (gone) {
        struct json_object *ev = json_object_new_object();
        json_object_object_add(ev, "master", json_object_new_string(d->m->def.name));
        event_emit(a->events, "MASTER_DELETED", ev);
        log_info("master %s deleted", d->m->def.name);
        master_unlink(a, d->m);
        master_free(d->m);
    } else {
        d->m->busy = false;
    }
    free(d);
}

static void on_master_file_removed(int status, void *opaque)
{
    master_delete_ctx *d = opaque;

    if (status < 0)
        request_error(d->r, "GenericError", "removing %s: %s (its disks are gone)", d->m->file_path,
                      strerror(-status));
    else
        request_ok(d->r, NULL);
    master_delete_end(d, status == 0);
}

static void on_master_disks_deleted(void *opaque, int status, struct json_object *kept, const char *err)
{
    master_delete_ctx *d = opaque;

    if (json_object_array_length(kept) > 0) {
        struct json_object *first = json_object_array_get_idx(kept, 0), *e;
        json_object_object_get_ex(first, "error", &e);
        request_error(d->r, "InvalidState", "master %s: %s", d->m->def.name, json_object_get_string(e));
        json_object_put(kept);
        master_delete_end(d, false);
        return;
    }
    json_object_put(kept);
    if (!d->m->file && !(d->m->file = statefile_writer_new(request_agent(d->r)->loop, d->m->file_path, 0600)))
        on_master_file_removed(-ENOMEM, d);
    else if (statefile_writer_put(d->m->file, NULL, 0, on_master_file_removed, d) < 0)
        on_master_file_removed(-ENOMEM, d);
}

static void on_master_dependents(void *opaque, int status, struct json_object *names)
{
    master_delete_ctx *d = opaque;
    int r;

    if (json_object_array_length(names) > 0) {
        request_error(d->r, "InvalidState", "master %s has attached clones: %s", d->m->def.name,
                      json_object_to_json_string_ext(names, JSON_C_TO_STRING_PLAIN));
        json_object_put(names);
        master_delete_end(d, false);
        return;
    }
    json_object_put(names);
    if ((r = volume_delete_many(request_agent(d->r), d->paths, d->npaths, on_master_disks_deleted, d)) < 0) {
        request_error(d->r, "GenericError", "deleting the disks: %s", strerror(-r));
        master_delete_end(d, false);
    }
}

void cmd_master_delete(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", NULL };
    agent *a = request_agent(r);
    master_delete_ctx *d;
    const char *name;
    master *m;
    int rc;

    if (!args_known(r, args, allowed) || !arg_string(r, args, "name", true, &name))
        return;
    if (!(m = master_find(a, name))) {
        request_error(r, "NotFound", "name: no master named '%.64s'", name);
        return;
    }
    if (m->busy || m->readers) {
        request_error(r, "Busy", "master %s is in use by a clone or create job", m->def.name);
        return;
    }
    if (!(d = calloc(1, sizeof(*d)))) {
        request_error(r, "GenericError", "out of memory");
        return;
    }
    d->r = r;
    d->m = m;
    for (size_t i = 0; i < m->def.ndisks; i++) {
        if (m->def.disks[i].cdrom ||
            disk_source_path(a, &m->def.disks[i], d->path_buf[d->npaths], PATH_MAX) < 0)
            continue;
        d->paths[d->npaths] = d->path_buf[d->npaths];
        d->npaths++;
    }
    m->busy = true;
    if ((rc = disk_dependents(a, d->paths, d->npaths, on_master_dependents, d)) < 0) {
        request_error(r, "GenericError", "looking for clones: %s", strerror(-rc));
        master_delete_end(d, false);
    }
}
