/* vm_save.c: vm-save, vm-restore and vm-save-discard.
 *
 * Save: the guest is paused, QEMU migrates its state into FILE.part through
 * an fd the agent opened, the file is fsynced and renamed to FILE, each
 * disk's image is stat'ed (QEMU has let go of them once the migration
 * completed), the saved record (vms/NAME.saved) is made durable, and only
 * then QEMU quits. Until the record is durable, a failure undoes it all and
 * the guest runs on where it was.
 *
 * Restore: the disks are compared with the record, FILE is opened, QEMU
 * starts with -incoming defer and loads it through a passed fd. The record
 * is removed durably before the guest resumes, so a state is never loaded
 * twice: a crash after that leaves a VM that is stopped, not one that would
 * boot an old state over newer disks.
 *
 * The runtime record carries "save": {op, file, resume} while either is in
 * flight; vm_save_adopted and vm_save_gone settle it after an agent restart. */
#include "vm_save.h"

#include <errno.h>
#include <fcntl.h>
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
#include "vm_disks.h"
#include "vm_internal.h"
#include "vm_migrate_internal.h"
#include "vm_qmpseq.h"
#include "work.h"

#define SAVED_MAX (64 * 1024)
#define POLL_INTERVAL_MS 1000
#define STALL_TIMEOUT_S 60
#define SAVE_FDNAME "agentd-save"
#define RESTORE_FDNAME "agentd-restore"

typedef struct disk_stamp {
    char path[PATH_MAX];
    int64_t size;
    int64_t mtime_ns;
} disk_stamp;

typedef enum save_phase {
    PHASE_OPENING,     /* the state file being opened (thread pool) */
    PHASE_STREAMING,   /* QEMU writing or reading it */
    PHASE_SEALING,     /* save: fsync, rename, disk stamps (thread pool) */
    PHASE_RECORDING,   /* save: the saved record being made durable */
    PHASE_QUITTING,    /* save: recorded, QEMU asked to quit */
    PHASE_RESUMING,    /* restore: record removed, the guest resumed */
} save_phase;

struct vm_saving {
    unsigned gen;
    bool restore;
    save_phase phase;
    int fd;                   /* the agent's copy of the state file's fd */
    char file[PATH_MAX];
    char part[PATH_MAX];
    size_t ndisks;
    disk_stamp disks[VM_DISKS_MAX];
    uint32_t timeout_s;
    int64_t started_ms, last_progress_ms, last_transferred;
    int64_t file_size;
    bool renamed;             /* save: FILE is ours (renamed from FILE.part) */
    bool stopped;             /* save: we paused the guest, so a failure resumes it */
    char fail_desc[512];      /* why we cancelled, when we did */
};

/* Blocking steps run on the thread pool with copies of what they need; the
 * result is applied on the loop only if the same operation is still on. */
typedef struct save_io {
    vm *v;
    unsigned gen;
    int fd;
    char file[PATH_MAX], part[PATH_MAX];
    size_t ndisks;
    disk_stamp disks[VM_DISKS_MAX];     /* restore: the recorded stamps */
    disk_stamp now[VM_DISKS_MAX];
    int64_t file_size;
    bool renamed;
    int status;
    char err[PATH_MAX + 256];
} save_io;

static void save_failed(vm *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- small helpers --------------------------------------------------------- */

static void unlink_later(vm *v, const char *path)
{
    agent_unlink_later(v->agent->loop, path);
}

static void set_mark(vm *v, const char *mark)
{
    v->save_mark = mark;
    if (vm_has_process(v))
        vm_write_runtime(v);
}

static void saving_end(vm *v)
{
    if (!v->saving)
        return;
    if (v->saving->fd >= 0)
        close(v->saving->fd);
    free(v->saving);
    v->saving = NULL;
}

void vm_save_free(vm *v)
{
    saving_end(v);
}

static vm_saving *saving_new(vm *v, bool restore, uint32_t timeout_s)
{
    vm_saving *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    saving_end(v);
    s->gen = ++v->save_gen;
    s->restore = restore;
    s->fd = -1;
    s->timeout_s = timeout_s;
    s->started_ms = s->last_progress_ms = (int64_t)uv_now(v->agent->loop);
    v->saving = s;
    return s;
}

static int stamp(disk_stamp *d, const char *path)
{
    struct stat st;

    snprintf(d->path, sizeof(d->path), "%s", path);
    if (stat(path, &st) < 0)
        return -errno;
    d->size = (int64_t)st.st_size;
    d->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    return 0;
}

static int stamp_all(save_io *io, disk_stamp *out)
{
    for (size_t i = 0; i < io->ndisks; i++) {
        int r = stamp(&out[i], io->disks[i].path);
        if (r < 0) {
            snprintf(io->err, sizeof(io->err), "disks[%zu]: %s: %s", i, io->disks[i].path, strerror(-r));
            return r;
        }
    }
    return 0;
}

/* Each disk's image as QEMU writes it: the top of its chain. */
static int locate_disks(vm *v, vm_saving *s, char *err, size_t errlen)
{
    vm_disk_files *f = calloc(1, sizeof(*f));
    int r;

    if (!f) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if ((r = vm_disks_locate(v->agent, &v->def, f, err, errlen)) == 0) {
        s->ndisks = 0;
        for (size_t i = 0; i < f->ndisks; i++)
            if (f->source[i][0])
                snprintf(s->disks[s->ndisks++].path, PATH_MAX, "%s", f->source[i]);
    }
    vm_disk_files_free(f);
    return r;
}

static save_io *io_new(vm *v)
{
    vm_saving *s = v->saving;
    save_io *io = calloc(1, sizeof(*io));

    if (!io)
        return NULL;
    io->v = v;
    io->gen = s->gen;
    io->fd = s->fd;
    memcpy(io->file, s->file, sizeof(io->file));
    memcpy(io->part, s->part, sizeof(io->part));
    io->ndisks = s->ndisks;
    memcpy(io->disks, s->disks, sizeof(io->disks));
    return io;
}

/* The operation this result belongs to is still the VM's. */
static bool io_current(save_io *io)
{
    vm *v = io->v;

    v->pending_io--;
    return v->saving && v->saving->gen == io->gen;
}

static int io_queue(vm *v, save_io *io, agent_work_fn *work, agent_done_fn *done)
{
    int r;

    v->pending_io++;
    if ((r = agent_work(v->agent->loop, work, done, io)) < 0)
        v->pending_io--;
    return r;
}

/* ---- the saved record ------------------------------------------------------ */

static struct json_object *stamps_json(const disk_stamp *d, size_t n)
{
    struct json_object *arr = json_object_new_array();

    for (size_t i = 0; i < n; i++) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "path", json_object_new_string(d[i].path));
        json_object_object_add(o, "size", json_object_new_int64(d[i].size));
        json_object_object_add(o, "mtime-ns", json_object_new_int64(d[i].mtime_ns));
        json_object_array_add(arr, o);
    }
    return arr;
}

/* The record's file, resume flag and stamps, checked: -EINVAL when damaged. */
static int record_parse(struct json_object *rec, vm_saving *s, bool *resume)
{
    struct json_object *disks, *r;
    const char *file = json_get_string(rec, "file");

    if (!file || file[0] != '/' || strlen(file) >= sizeof(s->file) ||
        !json_object_object_get_ex(rec, "disks", &disks) || !json_object_is_type(disks, json_type_array) ||
        json_object_array_length(disks) > VM_DISKS_MAX)
        return -EINVAL;
    snprintf(s->file, sizeof(s->file), "%s", file);
    *resume = json_object_object_get_ex(rec, "resume", &r) && json_object_get_boolean(r);
    s->ndisks = json_object_array_length(disks);
    for (size_t i = 0; i < s->ndisks; i++) {
        struct json_object *d = json_object_array_get_idx(disks, i), *m;
        const char *path = json_get_string(d, "path");
        if (!path || strlen(path) >= PATH_MAX)
            return -EINVAL;
        snprintf(s->disks[i].path, PATH_MAX, "%s", path);
        s->disks[i].size = json_object_object_get_ex(d, "size", &m) ? json_object_get_int64(m) : -1;
        s->disks[i].mtime_ns = json_object_object_get_ex(d, "mtime-ns", &m) ? json_object_get_int64(m) : -1;
    }
    return 0;
}

void vm_save_load(vm *v)
{
    char *text;
    int r = statefile_read(v->saved_path, SAVED_MAX, &text, NULL);
    struct json_object *rec;
    vm_saving probe;
    bool resume;

    if (r == -ENOENT)
        return;
    rec = r == 0 ? json_tokener_parse(text) : NULL;
    if (r == 0)
        free(text);
    if (!rec || record_parse(rec, &probe, &resume) < 0) {
        /* Kept, not removed: it is the only pointer to the guest's state;
         * vm-restore refuses it (damaged) until vm-save-discard drops it. */
        log_err("vm %s: %s is unreadable or damaged; the VM is shown saved and vm-restore will refuse "
                "until it is fixed or vm-save-discard drops it", v->def.name, v->saved_path);
        json_object_put(rec);
        rec = json_object_new_object();
    }
    v->saved = rec;
    v->state = VM_SAVED;
    v->reason = "agent-restart";
}

struct json_object *vm_save_runtime_json(const vm *v)
{
    struct json_object *o = NULL;

    if (v->saved && json_object_deep_copy(v->saved, &o, NULL) < 0)
        o = NULL;
    return o;
}

struct json_object *vm_save_mark_json(const vm *v)
{
    struct json_object *o;

    if (!v->save_mark)
        return NULL;
    o = json_object_new_object();
    json_object_object_add(o, "op", json_object_new_string(v->save_mark));
    json_object_object_add(o, "file", json_object_new_string(v->save_target));
    json_object_object_add(o, "resume", json_object_new_boolean(v->save_resume));
    return o;
}

void vm_save_mark_from_json(vm *v, struct json_object *mark)
{
    const char *op = json_get_string(mark, "op"), *file = json_get_string(mark, "file");
    struct json_object *r;

    if (!op || !file || strlen(file) >= sizeof(v->save_target))
        return;
    v->save_mark = !strcmp(op, "restoring") ? "restoring" : "saving";
    snprintf(v->save_target, sizeof(v->save_target), "%s", file);
    v->save_resume = json_object_object_get_ex(mark, "resume", &r) && json_object_get_boolean(r);
}

/* ---- save ------------------------------------------------------------------ */

static void save_poll(vm *v);

static void on_save_resumed(qmp_client *c, const qmp_reply *r, void *opaque)
{
    vm *v = opaque;

    if (r->status < 0)
        log_err("vm %s: cont after a failed save: %s; the guest stays paused", v->def.name, r->err_desc);
    vm_set_state(v, r->status == 0 ? VM_RUNNING : VM_PAUSED, "save-failed", NULL);
}

/* Before the record is durable: the files go and the guest runs on. */
static void save_failed(vm *v, const char *fmt, ...)
{
    vm_saving *s = v->saving;
    char desc[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(desc, sizeof(desc), fmt, ap);
    va_end(ap);
    bool stopped = s->stopped;

    if (s->phase >= PHASE_STREAMING)
        unlink_later(v, s->part);
    if (s->renamed)
        unlink_later(v, s->file);
    set_mark(v, NULL);
    saving_end(v);
    if (v->job == VM_JOB_SAVE)
        vm_job_finish_error(v, "GenericError", "%s", desc);
    if (!vm_has_process(v))
        return;
    if (stopped && v->save_resume && vm_qmp(v, "cont", NULL, on_save_resumed, v) == 0)
        return;
    /* Not paused by us (or no QMP to resume it): as it was, or paused. */
    vm_set_state(v, v->save_resume && !stopped ? VM_RUNNING : VM_PAUSED, "save-failed", NULL);
}

static void on_record_saved(int status, void *opaque)
{
    vm *v = opaque;
    vm_saving *s = v->saving;

    if (!s || s->restore || s->phase != PHASE_RECORDING)
        return;
    if (status < 0) {
        json_object_put(v->saved);
        v->saved = NULL;
        save_failed(v, "writing %s: %s", v->saved_path, strerror(-status));
        return;
    }
    s->phase = PHASE_QUITTING;
    if (!vm_has_process(v)) {
        /* QEMU went (vm-destroy) while the record was written: saved all the same. */
        set_mark(v, NULL);
        saving_end(v);
        vm_set_state(v, VM_SAVED, "user", NULL);
        if (v->job == VM_JOB_SAVE)
            vm_job_finish_ok(v, vm_save_runtime_json(v));
        return;
    }
    /* The exit (vm_save_on_exit) makes it saved and ends the job. */
    vm_stop_process(v);
}

static void record_saved(vm *v)
{
    vm_saving *s = v->saving;
    struct json_object *rec = json_object_new_object();
    const char *text;
    size_t len;

    json_object_object_add(rec, "file", json_object_new_string(s->file));
    json_object_object_add(rec, "size", json_object_new_int64(s->file_size));
    json_object_object_add(rec, "saved-at", json_object_new_int64((int64_t)time(NULL)));
    json_object_object_add(rec, "resume", json_object_new_boolean(v->save_resume));
    json_object_object_add(rec, "disks", stamps_json(s->disks, s->ndisks));
    s->phase = PHASE_RECORDING;
    json_object_put(v->saved);
    v->saved = rec;
    text = json_object_to_json_string_length(rec, JSON_C_TO_STRING_PRETTY, &len);
    if (statefile_writer_put(v->saved_file, text, len, on_record_saved, v) < 0)
        on_record_saved(-ENOMEM, v);
}

static void seal_work(void *arg)
{
    save_io *io = arg;
    char dir[PATH_MAX];
    struct stat st;
    int dfd;

    if (fsync(io->fd) < 0 || fstat(io->fd, &st) < 0) {
        io->status = -errno;
        snprintf(io->err, sizeof(io->err), "%s: %s", io->part, strerror(errno));
        close(io->fd);
        return;
    }
    close(io->fd);
    io->file_size = (int64_t)st.st_size;
    /* Never over a file that appeared meanwhile: it is not ours. */
    if (renameat2(AT_FDCWD, io->part, AT_FDCWD, io->file, RENAME_NOREPLACE) < 0) {
        io->status = -errno;
        snprintf(io->err, sizeof(io->err), "renaming %s to %s: %s", io->part, io->file, strerror(errno));
        return;
    }
    io->renamed = true;
    snprintf(dir, sizeof(dir), "%s", io->file);
    if ((dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
        fsync(dfd);
        close(dfd);
    }
    io->status = stamp_all(io, io->now);
}

static void seal_done(void *arg)
{
    save_io *io = arg;
    vm *v = io->v;

    if (io_current(io) && v->saving->phase == PHASE_SEALING) {
        vm_saving *s = v->saving;
        s->renamed = io->renamed;
        if (io->status < 0) {
            save_failed(v, "%s", io->err);
        } else {
            s->file_size = io->file_size;
            memcpy(s->disks, io->now, sizeof(s->disks));
            record_saved(v);
        }
    } else if (io->renamed) {
        unlink_later(v, io->file);   /* the save ended meanwhile: nothing records this file */
    }
    free(io);
}

static void save_streamed(vm *v)
{
    save_io *io = io_new(v);

    v->saving->phase = PHASE_SEALING;
    if (!io || io_queue(v, io, seal_work, seal_done) < 0) {
        free(io);
        save_failed(v, "queueing the fsync of %s: out of memory", v->saving->part);
        return;
    }
    v->saving->fd = -1;   /* the work closes it: never closed under a thread using it */
}

static void on_save_status(qmp_client *c, const qmp_reply *r, void *opaque)
{
    vm *v = opaque;
    vm_saving *s = v->saving;
    const char *status = r->status == 0 ? migration_str(r->ret, "status") : NULL;

    if (!s || s->restore || s->phase != PHASE_STREAMING || v->job != VM_JOB_SAVE)
        return;
    if (status && !strcmp(status, "completed")) {
        save_streamed(v);
    } else if (status && (!strcmp(status, "failed") || !strcmp(status, "cancelled"))) {
        save_failed(v, "%s: %s", v->def.name,
                    s->fail_desc[0] ? s->fail_desc : migration_str(r->ret, "error-desc") ?: status);
    }
}

static void on_save_progress(qmp_client *c, const qmp_reply *r, void *opaque)
{
    vm *v = opaque;
    vm_saving *s = v->saving;
    struct json_object *ram = NULL;
    int64_t now = (int64_t)uv_now(v->agent->loop), sent;

    if (!s || s->restore || s->phase != PHASE_STREAMING || v->job != VM_JOB_SAVE || r->status < 0)
        return;
    on_save_status(c, r, opaque);
    if (!v->saving || v->saving->phase != PHASE_STREAMING)
        return;
    json_object_object_get_ex(r->ret, "ram", &ram);
    if ((sent = migration_i64(ram, "transferred")) != s->last_transferred) {
        s->last_transferred = sent;
        s->last_progress_ms = now;
    }
    if (!s->fail_desc[0] && now - s->last_progress_ms >= STALL_TIMEOUT_S * 1000)
        snprintf(s->fail_desc, sizeof(s->fail_desc), "nothing written to %s for %d s", s->part, STALL_TIMEOUT_S);
    else if (!s->fail_desc[0] && now - s->started_ms >= (int64_t)s->timeout_s * 1000)
        snprintf(s->fail_desc, sizeof(s->fail_desc), "not saved within %u s", s->timeout_s);
    else
        return;
    log_warn("vm %s: %s; cancelling the save", v->def.name, s->fail_desc);
    vm_qmp(v, "migrate_cancel", NULL, NULL, NULL);
}

static void save_poll(vm *v)
{
    if (v->job != VM_JOB_SAVE || !v->saving || v->saving->phase != PHASE_STREAMING)
        return;
    vm_qmp(v, "query-migrate", NULL, on_save_progress, v);
    vm_job_timer_start(v, POLL_INTERVAL_MS, save_poll);
}

static void on_save_started(vm *v, int status, const char *err_class, const char *err_desc, void *opaque)
{
    if (v->job != VM_JOB_SAVE || !v->saving || v->saving->phase != PHASE_STREAMING)
        return;
    if (status < 0) {
        /* The steps done were undone: the guest is as it was. */
        v->saving->stopped = false;
        save_failed(v, "%s", err_desc);
        return;
    }
    /* The agent's fd stays open: the file is fsynced through it at the end. */
    save_poll(v);
}

static struct json_object *save_capabilities(void)
{
    vm_migrate_opts o;

    vm_migrate_opts_default(&o);
    o.auto_converge = false;   /* the guest is paused: nothing to converge */
    return migration_capabilities(&o, true);
}

static void save_stream(vm *v)
{
    vm_saving *s = v->saving;
    vm_qmpseq *q = vm_qmpseq_new(v);
    struct json_object *params = json_object_new_object(), *args = json_object_new_object();

    json_object_object_add(params, "max-bandwidth", json_object_new_int64(MIGRATION_UNLIMITED_BANDWIDTH));
    json_object_object_add(args, "uri", json_object_new_string("fd:" SAVE_FDNAME));
    s->phase = PHASE_STREAMING;
    v->save_resume = v->state == VM_RUNNING;
    set_mark(v, "saving");
    vm_set_state(v, VM_SAVING, "user", NULL);
    if (!q) {
        json_object_put(params);
        json_object_put(args);
        save_failed(v, "out of memory");
        return;
    }
    vm_qmpseq_add(q, "migrate-set-capabilities", save_capabilities(), -1, NULL, NULL);
    vm_qmpseq_add(q, "migrate-set-parameters", params, -1, NULL, NULL);
    /* Paused first: the file holds one instant, written once. */
    if (v->save_resume)
        vm_qmpseq_add(q, "stop", NULL, -1, "cont", NULL);
    s->stopped = v->save_resume;   /* before the stream can end: its event may beat the reply */
    vm_qmpseq_add_getfd(q, SAVE_FDNAME, s->fd);
    vm_qmpseq_add(q, "migrate", args, -1, NULL, NULL);
    if (vm_qmpseq_run(q, on_save_started, NULL) < 0) {
        vm_qmpseq_free(q);
        save_failed(v, "%s: QMP is not connected", v->def.name);
    }
}

static void open_part_work(void *arg)
{
    save_io *io = arg;
    struct stat st;

    if (lstat(io->file, &st) == 0) {
        io->status = -EEXIST;
        snprintf(io->err, sizeof(io->err), "file: %s exists; saves never overwrite", io->file);
        return;
    }
    if (errno != ENOENT) {
        io->status = -errno;
        snprintf(io->err, sizeof(io->err), "file: %s: %s", io->file, strerror(errno));
        return;
    }
    if ((io->fd = open(io->part, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
        io->status = -errno;
        snprintf(io->err, sizeof(io->err), "file: creating %s: %s%s", io->part, strerror(errno),
                 errno == EEXIST ? " (another save is writing it, or one was interrupted: remove it)" : "");
    }
}

static void open_part_done(void *arg)
{
    save_io *io = arg;
    vm *v = io->v;

    if (!io_current(io) || v->job != VM_JOB_SAVE) {
        if (io->fd >= 0) {
            close(io->fd);
            unlink_later(v, io->part);
        }
    } else if (io->status < 0) {
        saving_end(v);
        vm_job_finish_error(v, io->status == -EEXIST ? "Exists"
                               : io->status == -ENOENT || io->status == -ENOTDIR ? "InvalidParameter"
                               : "GenericError", "%s", io->err);
    } else if (!vm_has_process(v) || (v->state != VM_RUNNING && v->state != VM_PAUSED)) {
        close(io->fd);
        unlink_later(v, io->part);
        saving_end(v);
        vm_job_finish_error(v, "InvalidState", "%s stopped before its save began", v->def.name);
    } else {
        v->saving->fd = io->fd;
        save_stream(v);
    }
    free(io);
}

static bool save_file_ok(const char *file, vm_result *res)
{
    if (file[0] != '/') {
        vm_refuse(res, "InvalidParameter", "file: '%s' is not an absolute path", file);
        return false;
    }
    if (strlen(file) + sizeof(".part") > PATH_MAX) {
        vm_refuse(res, "InvalidParameter", "file: longer than %d characters", PATH_MAX - (int)sizeof(".part"));
        return false;
    }
    return true;
}

int vm_save(vm *v, const char *file, uint32_t timeout_s, vm_done_cb cb, void *opaque, vm_result *res)
{
    char err[512] = "";
    vm_saving *s;
    save_io *io = NULL;

    if (!vm_has_process(v) || (v->state != VM_RUNNING && v->state != VM_PAUSED) || !v->qmp_ready) {
        vm_refuse(res, "InvalidState", "%s is %s: only a running or paused VM is saved", v->def.name,
                  vm_state_name(v));
        return -1;
    }
    if (!save_file_ok(file, res) || !vm_job_begin(v, VM_JOB_SAVE, cb, opaque, res))
        return -1;
    if (!(s = saving_new(v, false, timeout_s))) {
        v->job = VM_JOB_NONE;
        vm_refuse(res, "GenericError", "out of memory");
        return -1;
    }
    snprintf(s->file, sizeof(s->file), "%s", file);
    snprintf(s->part, sizeof(s->part), "%s.part", file);
    if (locate_disks(v, s, err, sizeof(err)) < 0 || !(io = io_new(v)) ||
        io_queue(v, io, open_part_work, open_part_done) < 0) {
        free(io);
        saving_end(v);
        v->job = VM_JOB_NONE;
        vm_refuse(res, "GenericError", "%s", err[0] ? err : "out of memory");
        return -1;
    }
    snprintf(v->save_target, sizeof(v->save_target), "%s", file);
    return 0;
}

/* ---- restore --------------------------------------------------------------- */

static void restore_failed(vm *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* QEMU goes; its exit (vm_save_on_exit) puts the VM back to saved. */
static void restore_failed(vm *v, const char *fmt, ...)
{
    vm_saving *s = v->saving;
    va_list ap;

    if (s && !s->fail_desc[0]) {
        va_start(ap, fmt);
        vsnprintf(s->fail_desc, sizeof(s->fail_desc), fmt, ap);
        va_end(ap);
    }
    log_warn("vm %s: restore failed: %s", v->def.name, s ? s->fail_desc : "");
    v->exit_expected = true;
    vm_stop_process(v);
}

static void on_restored(qmp_client *c, const qmp_reply *r, void *opaque)
{
    vm *v = opaque;
    bool running = r->status == 0;

    if (v->job != VM_JOB_RESTORE || !v->saving || v->saving->phase != PHASE_RESUMING)
        return;
    unlink_later(v, v->saving->file);
    set_mark(v, NULL);
    saving_end(v);
    vm_set_state(v, running ? VM_RUNNING : VM_PAUSED, "restore", NULL);
    if (r->status < 0)
        vm_job_finish_error(v, "GenericError", "cont after the restore: %s; the guest is paused", r->err_desc);
    else
        vm_job_finish_ok(v, NULL);
}

static void on_record_removed(int status, void *opaque)
{
    vm *v = opaque;

    if (v->job != VM_JOB_RESTORE || !v->saving || v->saving->phase != PHASE_RESUMING)
        return;
    if (status < 0) {
        /* The guest must not run while the record says its state is unused. */
        restore_failed(v, "removing %s: %s", v->saved_path, strerror(-status));
        return;
    }
    json_object_put(v->saved);
    v->saved = NULL;
    if (!v->save_resume) {
        /* Paused when it was saved: it stays paused. */
        unlink_later(v, v->saving->file);
        set_mark(v, NULL);
        saving_end(v);
        vm_set_state(v, VM_PAUSED, "restore", NULL);
        vm_job_finish_ok(v, NULL);
        return;
    }
    if (vm_qmp(v, "cont", NULL, on_restored, v) < 0)
        restore_failed(v, "%s: QMP is not connected", v->def.name);
}

static void restore_loaded(vm *v)
{
    v->saving->phase = PHASE_RESUMING;
    if (statefile_writer_put(v->saved_file, NULL, 0, on_record_removed, v) < 0)
        restore_failed(v, "removing %s: out of memory", v->saved_path);
}

static void on_restore_status(qmp_client *c, const qmp_reply *r, void *opaque)
{
    vm *v = opaque;
    const char *status = r->status == 0 ? migration_str(r->ret, "status") : NULL;

    if (v->job != VM_JOB_RESTORE || !v->saving || v->saving->phase != PHASE_STREAMING)
        return;
    if (status && !strcmp(status, "completed"))
        restore_loaded(v);
    else if (status && !strcmp(status, "failed"))
        restore_failed(v, "loading %s: %s", v->saving->file, migration_str(r->ret, "error-desc") ?: "failed");
}

static void restore_deadline(vm *v)
{
    if (v->job == VM_JOB_RESTORE && v->saving && v->saving->phase == PHASE_STREAMING)
        restore_failed(v, "%s not loaded within %u s", v->saving->file, v->saving->timeout_s);
}

static void on_restore_started(vm *v, int status, const char *err_class, const char *err_desc, void *opaque)
{
    vm_saving *s = v->saving;

    if (v->job != VM_JOB_RESTORE || !s || s->phase != PHASE_STREAMING)
        return;
    if (status < 0) {
        restore_failed(v, "%s", err_desc);
        return;
    }
    close(s->fd);   /* QEMU has its own copy now */
    s->fd = -1;
    vm_job_timer_start(v, (uint64_t)s->timeout_s * 1000, restore_deadline);
}

void vm_save_qmp_ready(vm *v)
{
    vm_saving *s = v->saving;
    vm_qmpseq *q;
    struct json_object *args;

    if (!s || !s->restore) {
        restore_failed(v, "the restore's state went away");
        return;
    }
    vm_set_state(v, VM_RESTORING, "user", NULL);
    s->phase = PHASE_STREAMING;
    if (!(q = vm_qmpseq_new(v))) {
        restore_failed(v, "out of memory");
        return;
    }
    args = json_object_new_object();
    json_object_object_add(args, "uri", json_object_new_string("fd:" RESTORE_FDNAME));
    vm_qmpseq_add(q, "migrate-set-capabilities", save_capabilities(), -1, NULL, NULL);
    vm_qmpseq_add_getfd(q, RESTORE_FDNAME, s->fd);
    vm_qmpseq_add(q, "migrate-incoming", args, -1, NULL, NULL);
    if (vm_qmpseq_run(q, on_restore_started, NULL) < 0) {
        vm_qmpseq_free(q);
        restore_failed(v, "%s: QMP is not connected", v->def.name);
    }
}

static int compare_stamps(save_io *io)
{
    for (size_t i = 0; i < io->ndisks; i++) {
        const disk_stamp *was = &io->disks[i], *now = &io->now[i];
        if (was->size != now->size || was->mtime_ns != now->mtime_ns) {
            snprintf(io->err, sizeof(io->err),
                     "disks[%zu]: %s changed since the save (size %lld, was %lld; mtime %lld ns, was %lld): "
                     "restoring would run the old state over newer data; vm-save-discard drops the state",
                     i, was->path, (long long)now->size, (long long)was->size, (long long)now->mtime_ns,
                     (long long)was->mtime_ns);
            return -ESTALE;
        }
    }
    return 0;
}

static void open_state_work(void *arg)
{
    save_io *io = arg;
    struct stat st;

    if ((io->status = stamp_all(io, io->now)) < 0 || (io->status = compare_stamps(io)) < 0)
        return;
    if ((io->fd = open(io->file, O_RDONLY | O_CLOEXEC)) < 0 || fstat(io->fd, &st) < 0) {
        io->status = -errno;
        snprintf(io->err, sizeof(io->err), "%s: %s", io->file, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        io->status = -EINVAL;
        snprintf(io->err, sizeof(io->err), "%s: not a regular file", io->file);
    }
}

static void open_state_done(void *arg)
{
    save_io *io = arg;
    vm *v = io->v;
    char err[512];

    if (!io_current(io) || v->job != VM_JOB_RESTORE) {
        if (io->fd >= 0)
            close(io->fd);
        free(io);
        return;
    }
    if (io->status < 0) {
        if (io->fd >= 0)
            close(io->fd);
        saving_end(v);
        vm_job_finish_error(v, io->status == -ESTALE ? "InvalidState" : "GenericError", "%s", io->err);
        free(io);
        return;
    }
    v->saving->fd = io->fd;
    free(io);
    snprintf(v->save_target, sizeof(v->save_target), "%s", v->saving->file);
    v->save_mark = "restoring";   /* recorded with the pid, once QEMU runs */
    v->start_reason = "restore";
    v->exit_expected = false;
    v->guest_shutdown = false;
    if (vm_launch(v, err, sizeof(err)) < 0) {
        v->save_mark = NULL;
        saving_end(v);
        vm_job_finish_error(v, "GenericError", "%s", err);
    }
}

int vm_restore(vm *v, uint32_t timeout_s, vm_done_cb cb, void *opaque, vm_result *res)
{
    vm_saving *s, *located;
    char err[512] = "";
    bool resume;
    save_io *io = NULL;

    if (v->state != VM_SAVED || !v->saved) {
        vm_refuse(res, "InvalidState", "%s is %s: only a saved VM is restored", v->def.name, vm_state_name(v));
        return -1;
    }
    if (!vm_job_begin(v, VM_JOB_RESTORE, cb, opaque, res))
        return -1;
    if (!(s = saving_new(v, true, timeout_s))) {
        v->job = VM_JOB_NONE;
        vm_refuse(res, "GenericError", "out of memory");
        return -1;
    }
    if (record_parse(v->saved, s, &resume) < 0) {
        saving_end(v);
        v->job = VM_JOB_NONE;
        vm_refuse(res, "InvalidState", "%s: %s is damaged; vm-save-discard drops it", v->def.name, v->saved_path);
        return -1;
    }
    v->save_resume = resume;
    /* The disks the definition names now must be the ones recorded. */
    if (!(located = calloc(1, sizeof(*located))))
        snprintf(err, sizeof(err), "out of memory");
    else if (locate_disks(v, located, err, sizeof(err)) == 0 && located->ndisks != s->ndisks)
        snprintf(err, sizeof(err), "the VM has %zu disks, it was saved with %zu", located->ndisks, s->ndisks);
    for (size_t i = 0; located && !err[0] && i < s->ndisks; i++)
        if (strcmp(located->disks[i].path, s->disks[i].path))
            snprintf(err, sizeof(err), "disks[%zu]: now %s, saved with %s", i, located->disks[i].path,
                     s->disks[i].path);
    free(located);
    if (err[0] || !(io = io_new(v)) || io_queue(v, io, open_state_work, open_state_done) < 0) {
        free(io);
        saving_end(v);
        v->job = VM_JOB_NONE;
        vm_refuse(res, err[0] ? "InvalidState" : "GenericError", "%s", err[0] ? err : "out of memory");
        return -1;
    }
    return 0;
}

/* ---- discard --------------------------------------------------------------- */

static void on_discarded(int status, void *opaque)
{
    vm *v = opaque;
    const char *file;

    if (v->job != VM_JOB_DISCARD)
        return;
    if (status < 0) {
        vm_job_finish_error(v, "GenericError", "removing %s: %s", v->saved_path, strerror(-status));
        return;
    }
    if ((file = json_get_string(v->saved, "file")))
        unlink_later(v, file);
    json_object_put(v->saved);
    v->saved = NULL;
    vm_set_state(v, VM_STOPPED, "save-discarded", NULL);
    vm_job_finish_ok(v, NULL);
}

int vm_save_discard(vm *v, vm_done_cb cb, void *opaque, vm_result *res)
{
    if (v->state != VM_SAVED || !v->saved) {
        vm_refuse(res, "InvalidState", "%s is %s: it has no saved state", v->def.name, vm_state_name(v));
        return -1;
    }
    if (!vm_job_begin(v, VM_JOB_DISCARD, cb, opaque, res))
        return -1;
    if (statefile_writer_put(v->saved_file, NULL, 0, on_discarded, v) < 0) {
        v->job = VM_JOB_NONE;
        vm_refuse(res, "GenericError", "out of memory");
        return -1;
    }
    return 0;
}

/* ---- the runtime's hooks --------------------------------------------------- */

void vm_save_on_event(vm *v, const char *event, struct json_object *data)
{
    const char *status;
    vm_saving *s = v->saving;

    if (strcmp(event, "MIGRATION") || !s || s->phase != PHASE_STREAMING || !(status = migration_str(data, "status")))
        return;
    if (strcmp(status, "completed") && strcmp(status, "failed") && strcmp(status, "cancelled"))
        return;
    /* The reply has the error's description; the event has none. */
    vm_qmp(v, "query-migrate", NULL, s->restore ? on_restore_status : on_save_status, v);
}

static bool save_exit(vm *v, struct json_object *info)
{
    vm_saving *s = v->saving;
    struct json_object *ret;

    if (s && s->phase == PHASE_RECORDING) {
        /* on_record_saved decides, once the record is durable or not; no
         * on-crash restart meanwhile. */
        vm_set_state(v, VM_STOPPED, "exited", info);
        if (v->job == VM_JOB_DESTROY)
            vm_job_finish_ok(v, NULL);
        return true;
    }
    if (!v->saved || (s && s->phase < PHASE_QUITTING)) {
        /* QEMU ended before its state was recorded: an ordinary exit. */
        if (s && s->phase >= PHASE_STREAMING)
            unlink_later(v, s->part);
        if (s && s->renamed)
            unlink_later(v, s->file);
        v->save_mark = NULL;
        saving_end(v);
        if (v->job == VM_JOB_SAVE)
            vm_job_finish_error(v, "GenericError", "%s: QEMU ended during the save", v->def.name);
        return false;
    }
    v->save_mark = NULL;
    vm_set_state(v, VM_SAVED, "user", info);
    ret = vm_save_runtime_json(v);
    saving_end(v);
    if (v->job == VM_JOB_SAVE)
        vm_job_finish_ok(v, ret);
    else {
        json_object_put(ret);
        if (v->job == VM_JOB_DESTROY)
            vm_job_finish_ok(v, NULL);
    }
    return true;
}

static bool restore_exit(vm *v, struct json_object *info)
{
    vm_saving *s = v->saving;
    char desc[1024];

    v->save_mark = NULL;
    if (!v->saved) {
        /* The record went: the guest had its state and ran; an ordinary exit. */
        saving_end(v);
        if (v->job == VM_JOB_RESTORE)
            vm_job_finish_error(v, "GenericError", "%s: QEMU ended as the restore finished", v->def.name);
        return false;
    }
    snprintf(desc, sizeof(desc), "%s", s && s->fail_desc[0] ? s->fail_desc : "QEMU ended while loading the state");
    if (s && s->phase == PHASE_RESUMING) {
        /* Its removal may be on its way: the guest never ran, so the record is put back. */
        size_t len;
        const char *text = json_object_to_json_string_length(v->saved, JSON_C_TO_STRING_PRETTY, &len);
        statefile_writer_put(v->saved_file, text, len, NULL, NULL);
    }
    saving_end(v);
    vm_set_state(v, VM_SAVED, "restore-failed", info);
    if (v->job == VM_JOB_RESTORE) {
        struct json_object *t;
        const char *tail = v->last_exit && json_object_object_get_ex(v->last_exit, "log-tail", &t)
                               ? json_object_get_string(t) : "";
        vm_job_finish_error(v, "GenericError", "%s; still saved. %s", desc, tail);
    } else if (v->job == VM_JOB_DESTROY) {
        vm_job_finish_ok(v, NULL);
    }
    return true;
}

bool vm_save_on_exit(vm *v, struct json_object *info)
{
    if (!v->save_mark && !(v->saving && v->job == VM_JOB_RESTORE))
        return false;
    if ((v->save_mark && !strcmp(v->save_mark, "restoring")) || (v->saving && v->saving->restore))
        return restore_exit(v, info);
    return save_exit(v, info);
}

static void on_adopted_resume(qmp_client *c, const qmp_reply *r, void *opaque)
{
    vm *v = opaque;

    if (r->status < 0)
        log_err("vm %s: cont after the agent restart: %s", v->def.name, r->err_desc);
    vm_set_state(v, r->status == 0 ? VM_RUNNING : VM_PAUSED, "agent-restart", NULL);
}

void vm_save_adopted(vm *v, bool is_running)
{
    bool restoring = !strcmp(v->save_mark, "restoring");

    if (v->saved) {
        /* The state is recorded: this QEMU is either done writing it or has
         * not let the guest run from it yet. It goes; the VM is saved. */
        log_notice("vm %s: %s was interrupted by the agent restart; the VM stays saved", v->def.name,
                   restoring ? "a restore" : "a save");
        v->exit_expected = true;
        vm_stop_process(v);
        return;
    }
    if (!restoring) {
        /* Not recorded: the save is undone and the guest runs on. */
        char part[PATH_MAX + 8];
        /* FILE is left alone: it may have been renamed from FILE.part, but
         * it may also be someone else's that the rename refused to replace. */
        log_notice("vm %s: its save was interrupted by the agent restart; undone (%s, if there, is not "
                   "a recorded state)", v->def.name, v->save_target);
        vm_qmp(v, "migrate_cancel", NULL, NULL, NULL);
        snprintf(part, sizeof(part), "%s.part", v->save_target);
        unlink_later(v, part);
    } else {
        unlink_later(v, v->save_target);   /* loaded: the record went first */
    }
    bool resume = v->save_resume && !is_running;
    set_mark(v, NULL);
    if (resume && vm_qmp(v, "cont", NULL, on_adopted_resume, v) == 0)
        return;
    vm_set_state(v, is_running ? VM_RUNNING : VM_PAUSED, "agent-restart", NULL);
}

void vm_save_gone(vm *v)
{
    char part[PATH_MAX + 8];

    if (!v->saved && !strcmp(v->save_mark, "saving")) {
        snprintf(part, sizeof(part), "%s.part", v->save_target);
        unlink_later(v, part);
    }
    v->save_mark = NULL;
    vm_set_state(v, v->saved ? VM_SAVED : VM_STOPPED, "exited", NULL);
}
