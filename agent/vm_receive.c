/* vm_receive.c: the destination of an offline migration (vm_send.h).
 *
 * The stream is decoded on the loop as it comes, into a batch of writes;
 * the batch is written on the thread pool (img_writer blocks) while the
 * next one fills, and reading from the client stops while a full batch
 * waits, so a slow disk slows the sender down instead of filling memory.
 *
 * The record vms/NAME.receiving names the disks before any file is made
 * and, after each disk is installed at its path, the disks installed; the
 * definition is saved only at the end, and the record removed after it.
 * So after a crash, a record without a definition means an interrupted
 * receive: vm_receive_recover removes its temp files, the disks it
 * installed, and the record. A disk installed in the instant before the
 * record said so stays (a whole image, never a half-made one; a new
 * vm-receive then refuses its path by name). */
#include "vm_send.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "agent.h"
#include "disk.h"
#include "events.h"
#include "json_get.h"
#include "log.h"
#include "pool.h"
#include "sendstream.h"
#include "server.h"
#include "statefile.h"
#include "storage/storage.h"
#include "vm_internal.h"
#include "work.h"

#define HIGH_WATER (4u << 20)       /* batch bytes at which reading stops */
#define RECORD_MAX (64u << 10)
#define RECORD_SUFFIX ".receiving"

typedef enum recv_op_kind { OP_PUT, OP_FINISH } recv_op_kind;

typedef struct recv_op {
    recv_op_kind kind;
    unsigned disk;
    uint64_t offset;
    uint32_t len;
    size_t pos;                     /* in the batch's buffer */
} recv_op;

typedef struct recv_batch {
    uint8_t *buf;
    size_t len, cap;
    recv_op *ops;
    size_t nops, opcap;
} recv_batch;

typedef struct recv_disk {
    char path[PATH_MAX];
    img_format format;
    uint64_t size;
    img_writer *w;
    bool installed;
} recv_disk;

typedef enum recv_work_kind { WORK_OPEN, WORK_BATCH, WORK_UNDO } recv_work_kind;

/* What the thread pool touches. */
typedef struct recv_io {
    vm *v;
    recv_work_kind kind;
    size_t ndisks;
    recv_disk disks[VM_DISKS_MAX];
    size_t nshared;
    char shared[VM_DISKS_MAX][PATH_MAX];   /* cdroms, read-only disks: must exist here */
    recv_batch *batch;
    unsigned finished;              /* disks installed by this batch */
    int status;
    char err[600];
} recv_io;

struct vm_receiving {
    recv_io io;
    request *r;                     /* until the reply */
    client *c;                      /* the stream, after it */
    uint64_t sizes[VM_DISKS_MAX];
    ss_decoder dec;
    recv_batch batch[2];
    unsigned filling;               /* the batch the decoder appends to */
    bool busy;                      /* io is on the thread pool */
    bool paused;
    bool stream_done;               /* STREAM_END decoded */
    bool failing;                   /* undoing; why says what went wrong */
    bool committing;
    char why[600];
};

static struct json_object *record_json(const vm *v)
{
    const recv_io *io = &v->receiving->io;
    struct json_object *o = json_object_new_object(), *disks = json_object_new_array(),
                       *installed = json_object_new_array();

    for (size_t i = 0; i < io->ndisks; i++) {
        json_object_array_add(disks, json_object_new_string(io->disks[i].path));
        if (io->disks[i].installed)
            json_object_array_add(installed, json_object_new_string(io->disks[i].path));
    }
    json_object_object_add(o, "disks", disks);
    json_object_object_add(o, "installed", installed);
    return o;
}

static int write_record(vm *v, statefile_cb cb)
{
    struct json_object *o = record_json(v);
    size_t len;
    const char *text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PRETTY, &len);
    int r = statefile_writer_put(v->receiving_file, text, len, cb, v);

    json_object_put(o);
    return r;
}

static void batch_free(recv_batch *b)
{
    free(b->buf);
    free(b->ops);
}

void vm_receive_free(vm *v)
{
    vm_receiving *s = v->receiving;

    if (!s)
        return;
    for (size_t i = 0; i < s->io.ndisks; i++)
        img_writer_abort(s->io.disks[i].w);
    ss_decoder_free(&s->dec);
    batch_free(&s->batch[0]);
    batch_free(&s->batch[1]);
    free(s);
    v->receiving = NULL;
}

/* ---- the thread pool ------------------------------------------------------------ */

static void work_open(recv_io *io)
{
    for (size_t i = 0; i < io->nshared && io->status == 0; i++)
        if (access(io->shared[i], R_OK) < 0) {
            io->status = -errno;
            snprintf(io->err, sizeof(io->err), "%s: %s (a shared disk must be here already)", io->shared[i],
                     strerror(errno));
        }
    for (size_t i = 0; i < io->ndisks && io->status == 0; i++) {
        recv_disk *d = &io->disks[i];
        img_writer_options o = { .format = d->format, .size = d->size };
        io->status = img_writer_open(d->path, &o, &d->w, io->err, sizeof(io->err));
    }
}

static void work_batch(recv_io *io)
{
    recv_batch *b = io->batch;

    io->finished = 0;
    for (size_t i = 0; i < b->nops && io->status == 0; i++) {
        const recv_op *op = &b->ops[i];
        recv_disk *d = &io->disks[op->disk];
        if (op->kind == OP_PUT) {
            io->status = img_writer_put(d->w, op->offset, b->buf + op->pos, op->len, io->err, sizeof(io->err));
            continue;
        }
        io->status = img_writer_finish(d->w, io->err, sizeof(io->err));
        d->w = NULL;   /* freed by finish, either way */
        if (io->status == 0) {
            d->installed = true;
            io->finished++;
        }
    }
}

/* Removes what this receive made: temp files and the disks it installed. */
static void work_undo(recv_io *io)
{
    for (size_t i = 0; i < io->ndisks; i++) {
        recv_disk *d = &io->disks[i];
        img_writer_abort(d->w);
        d->w = NULL;
        if (d->installed && unlink(d->path) < 0 && errno != ENOENT)
            log_err("%s: cannot remove it after a failed receive: %m", d->path);
    }
}

static void recv_work(void *arg)
{
    recv_io *io = arg;

    switch (io->kind) {
    case WORK_OPEN:
        work_open(io);
        break;
    case WORK_BATCH:
        work_batch(io);
        break;
    case WORK_UNDO:
        work_undo(io);
        break;
    }
}

/* ---- the loop ------------------------------------------------------------------- */

static void recv_work_done(void *arg);

static int queue_work(vm *v, recv_work_kind kind)
{
    vm_receiving *s = v->receiving;
    int r;

    s->io.kind = kind;
    s->busy = true;
    v->pending_io++;
    if ((r = agent_work(v->agent->loop, recv_work, recv_work_done, &s->io)) < 0) {
        v->pending_io--;
        s->busy = false;
    }
    return r;
}

static void emit_received(vm *v, const char *error)
{
    struct json_object *ev = json_object_new_object();

    json_object_object_add(ev, "vm", json_object_new_string(v->def.name));
    json_object_object_add(ev, "status", json_object_new_string(error ? "failed" : "completed"));
    if (error)
        json_object_object_add(ev, "error", json_object_new_string(error));
    /* The sender's connection is a stream: it hears the end on it, once. */
    if (v->receiving->c) {
        struct json_object *line = json_object_new_object();
        size_t len;
        json_object_object_add(line, "event", json_object_new_string("VM_RECEIVED"));
        json_object_object_add(line, "data", json_object_get(ev));
        const char *text = json_object_to_json_string_length(line, JSON_C_TO_STRING_PLAIN, &len);
        server_stream_write(v->receiving->c, text, len);
        server_stream_write(v->receiving->c, "\n", 1);
        server_stream_finish(v->receiving->c);
        v->receiving->c = NULL;
        json_object_put(line);
    }
    event_emit(v->agent->events, "VM_RECEIVED", ev);
}

static void on_record_dropped(int status, void *opaque)
{
    vm *v = opaque;

    if (status < 0)
        log_err("vm %s: removing %s: %s; an agent restart removes the disks it names", v->def.name,
                v->receiving_path, strerror(-status));
    v->job = VM_JOB_NONE;
    vm_free_undefined(v->agent, v);
}

/* Undone on disk: the record goes, then the VM. */
static void failed_undone(vm *v)
{
    vm_receiving *s = v->receiving;

    log_err("vm %s: receive failed: %s", v->def.name, s->why);
    if (s->r) {
        request_error(s->r, "GenericError", "%s", s->why);
        s->r = NULL;
    }
    emit_received(v, s->why);
    v->undefined = true;
    if (statefile_writer_put(v->receiving_file, NULL, 0, on_record_dropped, v) < 0)
        on_record_dropped(-ENOMEM, v);
}

static void recv_fail(vm *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void recv_fail(vm *v, const char *fmt, ...)
{
    vm_receiving *s = v->receiving;
    va_list ap;

    if (s->failing)
        return;
    s->failing = true;
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof(s->why), fmt, ap);
    va_end(ap);
    if (s->busy)
        return;   /* undone when the work in flight is back */
    if (queue_work(v, WORK_UNDO) < 0)
        failed_undone(v);
}

static void on_committed(int status, void *opaque)
{
    vm *v = opaque;

    if (status < 0)
        log_err("vm %s: removing %s: %s; remove it by hand (the VM is defined)", v->def.name,
                v->receiving_path, strerror(-status));
    log_info("vm %s: received; defined here, stopped", v->def.name);
    emit_received(v, NULL);
    struct json_object *ev = json_object_new_object();
    json_object_object_add(ev, "vm", json_object_new_string(v->def.name));
    json_object_object_add(ev, "uuid", json_object_new_string(v->def.uuid));
    json_object_object_add(ev, "created", json_object_new_boolean(true));
    event_emit(v->agent->events, "VM_DEFINED", ev);
    v->job = VM_JOB_NONE;
    vm_receive_free(v);
    vm_set_state(v, VM_STOPPED, "received", NULL);
    agent_vms_changed(v->agent);
}

static void on_definition_saved(vm *v, const vm_result *res, void *opaque)
{
    if (res->status < 0) {
        v->receiving->committing = false;
        recv_fail(v, "saving the definition: %s", res->err_desc);
        return;
    }
    if (statefile_writer_put(v->receiving_file, NULL, 0, on_committed, v) < 0)
        on_committed(-ENOMEM, v);
}

/* Every disk is installed: the definition makes the VM ours. */
static void commit(vm *v)
{
    v->receiving->committing = true;
    if (vm_save_definition(v, on_definition_saved, NULL) < 0) {
        v->receiving->committing = false;
        recv_fail(v, "saving the definition: out of memory");
    }
}

static void on_installed_recorded(int status, void *opaque)
{
    vm *v = opaque;

    if (status < 0 && v->receiving)
        recv_fail(v, "writing %s: %s", v->receiving_path, strerror(-status));
}

/* The filled batch goes to the thread pool when it is free. */
static void kick(vm *v)
{
    vm_receiving *s = v->receiving;
    recv_batch *b = &s->batch[s->filling];

    if (s->busy || s->failing || s->committing)
        return;
    if (b->nops == 0) {
        if (s->stream_done)
            commit(v);
        return;
    }
    s->io.batch = b;
    s->filling ^= 1;
    s->batch[s->filling].len = 0;
    s->batch[s->filling].nops = 0;
    if (queue_work(v, WORK_BATCH) < 0) {
        recv_fail(v, "cannot queue work on the thread pool");
        return;
    }
    if (s->paused && s->c) {
        s->paused = false;
        server_stream_pause(s->c, false);
    }
}

static void stream_began(vm *v);

static void recv_work_done(void *arg)
{
    recv_io *io = arg;
    vm *v = io->v;
    vm_receiving *s = v->receiving;
    recv_work_kind kind = io->kind;

    v->pending_io--;
    s->busy = false;
    if (kind == WORK_UNDO) {
        failed_undone(v);
        return;
    }
    if (s->failing) {   /* it failed while this work ran: undo now */
        if (queue_work(v, WORK_UNDO) < 0)
            failed_undone(v);
        return;
    }
    if (io->status < 0) {
        recv_fail(v, "%s", io->err);
        return;
    }
    if (kind == WORK_OPEN) {
        stream_began(v);
        return;
    }
    if (io->finished > 0 && write_record(v, on_installed_recorded) < 0) {
        recv_fail(v, "writing %s: out of memory", v->receiving_path);
        return;
    }
    kick(v);
}

/* ---- the decoder's sink ---------------------------------------------------------- */

static recv_op *add_op(recv_batch *b)
{
    if (b->nops == b->opcap) {
        size_t cap = b->opcap ? b->opcap * 2 : 64;
        recv_op *ops = realloc(b->ops, cap * sizeof(*ops));
        if (!ops)
            return NULL;
        b->ops = ops;
        b->opcap = cap;
    }
    return &b->ops[b->nops++];
}

static int sink_data(void *opaque, unsigned disk, uint64_t offset, const uint8_t *data, uint32_t len)
{
    vm *v = opaque;
    recv_batch *b = &v->receiving->batch[v->receiving->filling];
    recv_op *op;

    /* Reading stops at HIGH_WATER, but a virtual client's feed (tests) is
     * not held back, so the buffer grows when it must. */
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : HIGH_WATER + 2 * SS_DATA_MAX;
        while (cap < b->len + len)
            cap *= 2;
        uint8_t *buf = realloc(b->buf, cap);
        if (!buf)
            return -ENOMEM;
        b->buf = buf;
        b->cap = cap;
    }
    if (!(op = add_op(b)))
        return -ENOMEM;
    *op = (recv_op){ OP_PUT, disk, offset, len, b->len };
    memcpy(b->buf + b->len, data, len);
    b->len += len;
    return 0;
}

static int sink_disk_end(void *opaque, unsigned disk)
{
    vm *v = opaque;
    recv_op *op = add_op(&v->receiving->batch[v->receiving->filling]);

    if (!op)
        return -ENOMEM;
    *op = (recv_op){ .kind = OP_FINISH, .disk = disk };
    return 0;
}

static int sink_stream_end(void *opaque)
{
    vm *v = opaque;

    v->receiving->stream_done = true;
    return 0;
}

static const ss_sink sink = { sink_data, sink_disk_end, sink_stream_end };

static void on_stream_input(client *c, const char *data, size_t len, void *opaque)
{
    vm *v = opaque;
    vm_receiving *s = v->receiving;

    if (!s || s->c != c || s->failing)
        return;
    if (ss_decoder_feed(&s->dec, (const uint8_t *)data, len) < 0) {
        recv_fail(v, "the stream: %s", s->dec.err);
        return;
    }
    if (s->batch[s->filling].len >= HIGH_WATER && !s->paused) {
        s->paused = true;
        server_stream_pause(c, true);
    }
    kick(v);
}

static void on_stream_closed(client *c, void *opaque)
{
    vm *v = opaque;
    vm_receiving *s = v->receiving;

    if (!s || s->c != c)
        return;
    s->c = NULL;
    if (!s->stream_done)
        recv_fail(v, "the sender's connection closed before the end of the stream");
}

static const server_stream_ops stream_ops = { .on_input = on_stream_input, .on_closed = on_stream_closed };

static void stream_began(vm *v)
{
    vm_receiving *s = v->receiving;
    request *r = s->r;

    s->r = NULL;
    if (!(s->c = request_become_stream(r, &stream_ops, v))) {
        recv_fail(v, "the sender left");
        return;
    }
    server_stream_resume(s->c);
}

/* ---- starting ------------------------------------------------------------------------ */

static void on_record_written(int status, void *opaque)
{
    vm *v = opaque;

    if (status < 0) {
        recv_fail(v, "writing %s: %s", v->receiving_path, strerror(-status));
        return;
    }
    if (queue_work(v, WORK_OPEN) < 0)
        recv_fail(v, "cannot queue work on the thread pool");
}

/* A sent record of an earlier VM of this name (one that left and now
 * comes back) would make the new one look sent at the next start. */
static void on_stale_sent_removed(int status, void *opaque)
{
    vm *v = opaque;

    if (status < 0)
        recv_fail(v, "removing %s: %s", v->sent_path, strerror(-status));
    else if (write_record(v, on_record_written) < 0)
        recv_fail(v, "writing %s: out of memory", v->receiving_path);
}

/* The disks' places here, checked before anything is written. */
static int place_disks(agent *a, const vm_def *def, const uint64_t *sizes, size_t nsizes, recv_io *io,
                       char *err, size_t errlen)
{
    for (size_t i = 0; i < def->ndisks; i++) {
        const vm_disk *d = &def->disks[i];
        char path[PATH_MAX];
        const char *vol;
        pool *p;
        if (d->cdrom && !d->path && !d->volume[0])
            continue;   /* an empty drive */
        if (disk_source_path(a, d, path, sizeof(path)) < 0) {
            snprintf(err, errlen, "definition.disks[%zu]: pool %s is not defined here", i, d->pool);
            return -1;
        }
        if (!vm_send_disk_sent(d)) {
            snprintf(io->shared[io->nshared++], PATH_MAX, "%s", path);
            continue;
        }
        if (io->ndisks >= nsizes) {
            snprintf(err, errlen, "disks: %zu given, the definition has more disks to receive", nsizes);
            return -1;
        }
        if (!(p = pool_of_path(a, path, &vol)) || !p->active || p->spec.kind == IMG_POOL_PHY) {
            snprintf(err, errlen, "definition.disks[%zu]: %s is in no started directory pool here", i, path);
            return -1;
        }
        struct json_object *users = disk_users(a, path);
        size_t nusers = json_object_array_length(users);
        json_object_put(users);
        if (nusers > 0) {
            snprintf(err, errlen, "definition.disks[%zu]: %s is a disk of another VM here", i, path);
            return -1;
        }
        recv_disk *rd = &io->disks[io->ndisks];
        snprintf(rd->path, sizeof(rd->path), "%s", path);
        rd->format = d->format == VM_DISK_RAW ? IMG_FORMAT_RAW : IMG_FORMAT_QCOW2;
        rd->size = sizes[io->ndisks];
        io->ndisks++;
    }
    if (io->ndisks != nsizes) {
        snprintf(err, errlen, "disks: %zu given, the definition has %zu to receive", nsizes, io->ndisks);
        return -1;
    }
    return 0;
}

void vm_receive_start(agent *a, vm_def *def, const uint64_t *sizes, size_t nsizes, request *r)
{
    char err[PATH_MAX + 128];
    vm_receiving *s;
    vm_result res;
    vm *v;

    if (vm_find(a, def->name)) {
        request_error(r, "Exists", "definition.name: a VM named %s is defined on this host", def->name);
        vmdef_free(def);
        return;
    }
    if (vm_uuid_in_use(a, def->uuid)) {
        request_error(r, "Exists", "definition.uuid: %s is a VM on this host already", def->uuid);
        vmdef_free(def);
        return;
    }
    if (!(s = calloc(1, sizeof(*s)))) {
        request_error(r, "GenericError", "out of memory");
        vmdef_free(def);
        return;
    }
    if (place_disks(a, def, sizes, nsizes, &s->io, err, sizeof(err)) < 0) {
        request_error(r, "InvalidParameter", "%s", err);
        vmdef_free(def);
        free(s);
        return;
    }
    for (size_t i = 0; i < s->io.ndisks; i++)
        s->sizes[i] = s->io.disks[i].size;
    if (ss_decoder_init(&s->dec, (unsigned)s->io.ndisks, s->sizes, &sink, NULL) < 0 || vm_new(a, def, &v) < 0) {
        request_error(r, "GenericError", "out of memory, or the name is too long for this host");
        ss_decoder_free(&s->dec);
        vmdef_free(def);
        free(s);
        return;
    }
    s->dec.opaque = v;
    s->io.v = v;
    s->r = r;
    v->receiving = s;
    /* Not announced: it is not a VM of this host until the end. */
    v->state = VM_RECEIVING;
    v->reason = "user";
    vm_append(a, v);
    vm_job_begin(v, VM_JOB_RECEIVE, NULL, NULL, &res);
    /* Bytes sent right after the request are the stream, not requests. */
    request_hold_input(r);
    if (statefile_writer_put(v->sent_file, NULL, 0, on_stale_sent_removed, v) < 0)
        recv_fail(v, "out of memory");
}

/* ---- after a crash ---------------------------------------------------------------------- */

static void recover_one(agent *a, const char *file)
{
    char path[PATH_MAX], def_path[PATH_MAX], err[256], *text = NULL;
    size_t n = strlen(file) - strlen(RECORD_SUFFIX);
    struct json_object *rec = NULL, *arr;

    if (snprintf(path, sizeof(path), "%s/%s", a->vms_dir, file) >= (int)sizeof(path) ||
        snprintf(def_path, sizeof(def_path), "%s/%.*s.json", a->vms_dir, (int)n, file) >= (int)sizeof(def_path))
        return;
    if (access(def_path, F_OK) == 0) {
        log_notice("%s: the receive had finished (the VM is defined); the record goes", path);
        statefile_remove_durable(path);
        return;
    }
    if (statefile_read(path, RECORD_MAX, &text, NULL) < 0 || !(rec = json_tokener_parse(text))) {
        log_err("%s: unreadable; left alone (remove it and the disks it names by hand)", path);
        free(text);
        return;
    }
    free(text);
    if (json_object_object_get_ex(rec, "disks", &arr) && json_object_is_type(arr, json_type_array))
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
            const char *p = json_object_get_string(json_object_array_get_idx(arr, i));
            if (p && p[0] == '/' && img_temp_sweep(p, err, sizeof(err)) < 0)
                log_err("%s", err);
        }
    if (json_object_object_get_ex(rec, "installed", &arr) && json_object_is_type(arr, json_type_array))
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
            const char *p = json_object_get_string(json_object_array_get_idx(arr, i));
            if (p && p[0] == '/' && unlink(p) < 0 && errno != ENOENT)
                log_err("%s: cannot remove it: %m", p);
        }
    json_object_put(rec);
    log_notice("%s: an interrupted receive; what it wrote is removed", path);
    statefile_remove_durable(path);
}

static int only_records(const struct dirent *d)
{
    size_t n = strlen(d->d_name), k = strlen(RECORD_SUFFIX);
    return d->d_name[0] != '.' && n > k && strcmp(d->d_name + n - k, RECORD_SUFFIX) == 0;
}

void vm_receive_recover(agent *a)
{
    struct dirent **list;
    int n = scandir(a->vms_dir, &list, only_records, alphasort);

    for (int i = 0; i < n; i++) {
        recover_one(a, list[i]->d_name);
        free(list[i]);
    }
    if (n >= 0)
        free(list);
}
