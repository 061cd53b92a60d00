/* vm_send.c: the source of an offline migration (vm_send.h).
 *
 * The stream is made in batches on the thread pool (reading images blocks):
 * each batch maps the chain from where the last one stopped and reads up to
 * BATCH_BYTES of guest data, leaving out what is unallocated, zero, or
 * all-zero when read. A batch goes to the client's socket on the loop, and
 * the next one is made only once less than LOW_WATER bytes wait there, so
 * memory stays bounded and a slow destination slows the source down. */
#include "vm_send.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "agent.h"
#include "disk.h"
#include "json_get.h"
#include "log.h"
#include "pool.h"
#include "sendstream.h"
#include "server.h"
#include "statefile.h"
#include "storage/storage.h"
#include "vm_internal.h"
#include "vm_snapshot.h"
#include "work.h"

#define BATCH_BYTES (2u << 20)
#define LOW_WATER (2u << 20)
#define READ_CHUNK (1u << 20)       /* guest bytes read at once, and the largest frame */
#define ZERO_BLOCK 4096u            /* all-zero blocks of this size are not sent */
#define ABORT_TEXT_MAX 512u
#define SENT_RECORD_MAX 4096

typedef struct send_disk {
    char path[PATH_MAX];
    img_format format;
    uint64_t size;
    img *chain;                     /* opened on the thread pool, used only there */
} send_disk;

/* What the thread pool touches; the loop touches it only between batches. */
typedef struct send_io {
    vm *v;
    char **roots;
    size_t ndisks;
    send_disk disks[VM_DISKS_MAX];
    unsigned disk;                  /* the cursor: disk, guest offset, bytes sent of it */
    uint64_t offset;
    uint64_t disk_bytes;
    uint8_t *batch;                 /* BATCH_BYTES + one chunk and its headers */
    size_t batch_len;
    uint8_t *chunk;                 /* READ_CHUNK */
    int status;
    char err[512];
} send_io;

struct vm_sending {
    send_io io;
    request *r;                     /* until the reply */
    client *c;                      /* the stream, after it */
    bool busy;                      /* a batch is on the thread pool */
    bool left;                      /* the client went away */
    bool ending;                    /* the last disk's end went out; the record is being written */
    uint64_t sent;                  /* bytes put on the stream */
};

bool vm_send_disk_sent(const vm_disk *d)
{
    return !d->cdrom && !d->readonly;
}

static void io_close_chains(send_io *io)
{
    for (size_t i = 0; i < io->ndisks; i++) {
        img_close(io->disks[i].chain);
        io->disks[i].chain = NULL;
    }
}

void vm_send_free(vm *v)
{
    vm_sending *s = v->sending;

    if (!s)
        return;
    io_close_chains(&s->io);
    pool_roots_free(s->io.roots);
    free(s->io.batch);
    free(s->io.chunk);
    free(s);
    v->sending = NULL;
}

/* ---- making a batch (thread pool) ---------------------------------------------- */

static bool all_zero(const uint8_t *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static void put_frame(send_io *io, ss_frame_type type, uint64_t offset, const uint8_t *data, uint32_t len)
{
    ss_header_put(io->batch + io->batch_len, type, offset, len, data ? ss_crc(data, len) : 0);
    io->batch_len += SS_HEADER_BYTES;
    if (data) {
        memcpy(io->batch + io->batch_len, data, len);
        io->batch_len += len;
    }
}

/* n bytes read at guest offset off, as frames of their runs of non-zero blocks. */
static void put_data(send_io *io, uint64_t off, const uint8_t *buf, uint32_t n)
{
    uint32_t at = 0;

    while (at < n) {
        uint32_t start, blk;
        for (; at < n; at += blk) {
            blk = n - at < ZERO_BLOCK ? n - at : ZERO_BLOCK;
            if (!all_zero(buf + at, blk))
                break;
        }
        for (start = at; at < n; at += blk) {
            blk = n - at < ZERO_BLOCK ? n - at : ZERO_BLOCK;
            if (all_zero(buf + at, blk))
                break;
        }
        if (at > start) {
            put_frame(io, SS_DATA, off + start, buf + start, at - start);
            io->disk_bytes += at - start;
        }
    }
}

/* One step of the cursor: false when the batch is full, the stream is all
 * made, or reading failed. */
static bool batch_step(send_io *io)
{
    send_disk *d = &io->disks[io->disk];
    img_extent e;
    int r;

    if (io->offset >= d->size) {
        put_frame(io, SS_DISK_END, io->disk_bytes, NULL, 0);
        io->disk++;
        io->offset = 0;
        io->disk_bytes = 0;
        return io->disk < io->ndisks;
    }
    if ((r = img_map(d->chain, io->offset, d->size - io->offset, &e)) < 0) {
        io->status = r;
        snprintf(io->err, sizeof(io->err), "%s: cannot map offset %" PRIu64 ": %s", d->path, io->offset,
                 strerror(-r));
        return false;
    }
    if (e.kind != IMG_EXTENT_DATA && e.kind != IMG_EXTENT_COMPRESSED) {
        io->offset += e.length;
        return true;
    }
    uint32_t n = e.length < READ_CHUNK ? (uint32_t)e.length : READ_CHUNK;
    if ((r = img_read(d->chain, io->offset, io->chunk, n)) < 0) {
        io->status = r;
        snprintf(io->err, sizeof(io->err), "%s: cannot read offset %" PRIu64 ": %s", d->path, io->offset,
                 strerror(-r));
        return false;
    }
    put_data(io, io->offset, io->chunk, n);
    io->offset += n;
    return io->batch_len < BATCH_BYTES;
}

static void open_chains(send_io *io)
{
    img_open_options o = { .roots = (const char *const *)io->roots };

    for (size_t i = 0; i < io->ndisks && io->status == 0; i++) {
        send_disk *d = &io->disks[i];
        char err[400];
        int r = img_open(d->path, d->format, &o, &d->chain, err, sizeof(err));
        if (r < 0) {
            io->status = r;
            snprintf(io->err, sizeof(io->err), "%s", err);
        } else {
            d->size = img_virtual_size(d->chain);
        }
    }
}

static void batch_work(void *arg)
{
    send_io *io = arg;

    io->batch_len = 0;
    if (io->status == 0 && !io->disks[0].chain && io->ndisks > 0) {
        open_chains(io);
        return;     /* the sizes go into the reply first */
    }
    while (io->status == 0 && io->disk < io->ndisks && batch_step(io))
        ;
}

/* ---- on the loop ------------------------------------------------------------------- */

static void batch_done(void *arg);

static int queue_batch(vm *v)
{
    int r;

    v->sending->busy = true;
    v->pending_io++;
    if ((r = agent_work(v->agent->loop, batch_work, batch_done, &v->sending->io)) < 0) {
        v->pending_io--;
        v->sending->busy = false;
    }
    return r;
}

static void send_end(vm *v, vm_state state, const char *reason)
{
    vm_sending *s = v->sending;

    if (s->c && !s->left)
        server_stream_close(s->c);
    v->job = VM_JOB_NONE;
    vm_set_state(v, state, reason, NULL);
    vm_send_free(v);
}

/* The destination hears why (an ABORT frame), the VM stays here as it was. */
static void send_failed(vm *v, const char *why)
{
    vm_sending *s = v->sending;

    log_err("vm %s: sending stopped: %s", v->def.name, why);
    if (s->c && !s->left) {
        uint8_t frame[SS_HEADER_BYTES + ABORT_TEXT_MAX];
        uint32_t n = (uint32_t)strnlen(why, ABORT_TEXT_MAX);
        ss_header_put(frame, SS_ABORT, 0, n, ss_crc(why, n));
        memcpy(frame + SS_HEADER_BYTES, why, n);
        server_stream_write(s->c, (const char *)frame, SS_HEADER_BYTES + n);
        server_stream_finish(s->c);
        s->c = NULL;
    }
    send_end(v, VM_STOPPED, "send-failed");
}

static void on_sent_recorded(int status, void *opaque)
{
    vm *v = opaque;
    vm_sending *s = v->sending;
    uint8_t frame[SS_HEADER_BYTES];

    if (!s)
        return;
    if (status < 0) {
        char why[600];
        snprintf(why, sizeof(why), "writing %s: %s", v->sent_path, strerror(-status));
        send_failed(v, why);
        return;
    }
    log_info("vm %s: sent (%" PRIu64 " bytes); it stays here until vm-send-confirm", v->def.name, s->sent);
    if (s->c && !s->left) {
        ss_header_put(frame, SS_STREAM_END, 0, 0, 0);
        server_stream_write(s->c, (const char *)frame, sizeof(frame));
        server_stream_finish(s->c);
        s->c = NULL;
    }
    send_end(v, VM_SENT, "sent");
}

/* Every disk went out: the record first, and only then the stream's end,
 * so the destination can never own a VM that this agent would still start. */
static void record_sent(vm *v)
{
    struct json_object *rec = json_object_new_object();
    size_t len;
    const char *text;

    v->sending->ending = true;
    json_object_object_add(rec, "uuid", json_object_new_string(v->def.uuid));
    json_object_object_add(rec, "sent-at", json_object_new_int64((int64_t)time(NULL)));
    text = json_object_to_json_string_length(rec, JSON_C_TO_STRING_PRETTY, &len);
    if (statefile_writer_put(v->sent_file, text, len, on_sent_recorded, v) < 0)
        on_sent_recorded(-ENOMEM, v);
    json_object_put(rec);
}

/* The next batch, when the socket has room for it. */
static void send_more(vm *v)
{
    vm_sending *s = v->sending;

    if (s->busy || s->ending || server_stream_queued(s->c) >= LOW_WATER)
        return;
    if (s->io.disk >= s->io.ndisks) {
        record_sent(v);
        return;
    }
    if (queue_batch(v) < 0)
        send_failed(v, "cannot queue work on the thread pool");
}

static void on_stream_input(client *c, const char *data, size_t len, void *opaque)
{
    /* Nothing is expected from the client on this connection. */
}

static void on_stream_closed(client *c, void *opaque)
{
    vm *v = opaque;
    vm_sending *s = v->sending;

    if (!s || s->c != c)
        return;
    s->left = true;
    s->c = NULL;
    if (!s->busy && !s->ending) {
        log_warn("vm %s: the client left before the stream's end; nothing was sent", v->def.name);
        send_end(v, VM_STOPPED, "send-failed");
    }
}

static void on_stream_drained(client *c, void *opaque)
{
    vm *v = opaque;

    if (v->sending && v->sending->c == c)
        send_more(v);
}

static const server_stream_ops stream_ops = {
    .on_input = on_stream_input,
    .on_closed = on_stream_closed,
    .on_drained = on_stream_drained,
};

static struct json_object *reply_json(vm *v)
{
    struct json_object *ret = json_object_new_object(), *disks = json_object_new_array();
    send_io *io = &v->sending->io;
    size_t k = 0;

    for (size_t i = 0; i < v->def.ndisks; i++) {
        const vm_disk *d = &v->def.disks[i];
        if (!vm_send_disk_sent(d))
            continue;
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "target", json_object_new_string(d->target));
        json_object_object_add(o, "path", json_object_new_string(io->disks[k].path));
        json_object_object_add(o, "format", json_object_new_string(img_format_name(io->disks[k].format)));
        json_object_object_add(o, "virtual-size", json_object_new_int64((int64_t)io->disks[k].size));
        json_object_array_add(disks, o);
        k++;
    }
    json_object_object_add(ret, "definition", vmdef_to_json(&v->def));
    json_object_object_add(ret, "disks", disks);
    return ret;
}

/* The chains are open: answer, and the connection becomes the stream. */
static void begin_stream(vm *v)
{
    vm_sending *s = v->sending;
    request *r = s->r;

    s->r = NULL;
    if (s->io.status < 0) {
        request_error(r, "GenericError", "%s", s->io.err);
        v->job = VM_JOB_NONE;
        vm_send_free(v);
        return;
    }
    if (!(s->c = request_become_stream_with(r, reply_json(v), &stream_ops, v))) {
        v->job = VM_JOB_NONE;
        vm_send_free(v);
        return;
    }
    vm_set_state(v, VM_SENDING, "user", NULL);
    send_more(v);
}

static void batch_done(void *arg)
{
    send_io *io = arg;
    vm *v = io->v;
    vm_sending *s = v->sending;

    v->pending_io--;
    s->busy = false;
    if (s->r) {
        begin_stream(v);
        return;
    }
    if (s->left) {
        log_warn("vm %s: the client left before the stream's end; nothing was sent", v->def.name);
        send_end(v, VM_STOPPED, "send-failed");
        return;
    }
    if (io->batch_len > 0) {
        server_stream_write(s->c, (const char *)io->batch, io->batch_len);
        s->sent += io->batch_len;
    }
    if (io->status < 0) {
        send_failed(v, io->err);
        return;
    }
    send_more(v);
}

/* ---- starting ------------------------------------------------------------------------ */

/* Where each sent disk is, checked: a file in a pool (a block device
 * cannot be created on the other side by the image layer). */
static int collect_disks(vm *v, send_io *io, char *err, size_t errlen)
{
    agent *a = v->agent;

    for (size_t i = 0; i < v->def.ndisks; i++) {
        const vm_disk *d = &v->def.disks[i];
        send_disk *sd = &io->disks[io->ndisks];
        const char *vol;
        pool *p;
        if (!vm_send_disk_sent(d))
            continue;
        if (disk_source_path(a, d, sd->path, sizeof(sd->path)) < 0) {
            snprintf(err, errlen, "disks[%zu]: its pool is not defined here", i);
            return -1;
        }
        if (!(p = pool_of_path(a, sd->path, &vol))) {
            snprintf(err, errlen, "disks[%zu]: %s is in no pool of this host", i, sd->path);
            return -1;
        }
        if (p->spec.kind == IMG_POOL_PHY) {
            snprintf(err, errlen, "disks[%zu]: %s is a block device; offline migration copies image files",
                     i, sd->path);
            return -1;
        }
        sd->format = d->format == VM_DISK_RAW ? IMG_FORMAT_RAW : IMG_FORMAT_QCOW2;
        io->ndisks++;
    }
    return 0;
}

static bool sendable(vm *v, request *r)
{
    if (v->state == VM_SENT) {
        request_error(r, "InvalidState", "%s was sent already: vm-send-confirm it", v->def.name);
        return false;
    }
    if (v->state != VM_STOPPED && v->state != VM_CRASHED) {
        request_error(r, "InvalidState", "%s is %s: offline migration moves a stopped VM (vm-migrate moves a "
                      "running one)", v->def.name, vm_state_name(v));
        return false;
    }
    if (v->job != VM_JOB_NONE) {
        request_error(r, "Busy", "%s: a %s job is in progress", v->def.name, vm_job_name(v->job));
        return false;
    }
    /* The copy is flattened: the states under the snapshots would be lost. */
    if (vm_snapshot_states(v, NULL, 0) > 0) {
        request_error(r, "InvalidState", "%s has snapshots: delete them (snapshot-delete) first; the disks are "
                      "sent flattened", v->def.name);
        return false;
    }
    return true;
}

void vm_send_start(vm *v, request *r)
{
    char err[600];
    vm_sending *s;
    vm_result res;

    if (!sendable(v, r))
        return;
    if (!(s = calloc(1, sizeof(*s))) || !(s->io.batch = malloc(BATCH_BYTES + READ_CHUNK + 512 * SS_HEADER_BYTES)) ||
        !(s->io.chunk = malloc(READ_CHUNK)) || !(s->io.roots = pool_roots(v->agent))) {
        if (s) {
            free(s->io.batch);
            free(s->io.chunk);
        }
        free(s);
        request_error(r, "GenericError", "out of memory");
        return;
    }
    v->sending = s;
    s->io.v = v;
    s->r = r;
    if (collect_disks(v, &s->io, err, sizeof(err)) < 0) {
        request_error(r, "InvalidParameter", "%s", err);
        vm_send_free(v);
        return;
    }
    if (!vm_job_begin(v, VM_JOB_SEND, NULL, NULL, &res) || queue_batch(v) < 0) {
        v->job = VM_JOB_NONE;
        request_error(r, "GenericError", "%s", res.err_desc ? res.err_desc : "cannot queue work");
        vm_send_free(v);
    }
}

/* ---- after the stream ------------------------------------------------------------------ */

static void on_unsent(int status, void *opaque)
{
    vm *v = opaque;

    if (status < 0) {
        vm_job_finish_error(v, "GenericError", "removing %s: %s", v->sent_path, strerror(-status));
        return;
    }
    vm_set_state(v, VM_STOPPED, "send-cancelled", NULL);
    vm_job_finish_ok(v, NULL);
}

int vm_send_undo(vm *v, vm_done_cb cb, void *opaque, vm_result *res)
{
    if (v->state != VM_SENT) {
        vm_refuse(res, "InvalidState", "%s is %s: only a sent VM is confirmed", v->def.name, vm_state_name(v));
        return -1;
    }
    if (!vm_job_begin(v, VM_JOB_SEND, cb, opaque, res))
        return -1;
    if (statefile_writer_put(v->sent_file, NULL, 0, on_unsent, v) < 0) {
        v->job = VM_JOB_NONE;
        vm_refuse(res, "GenericError", "out of memory");
        return -1;
    }
    return 0;
}

void vm_send_load(vm *v)
{
    struct json_object *rec = NULL;
    const char *uuid = NULL;
    char *text;

    if (statefile_read(v->sent_path, SENT_RECORD_MAX, &text, NULL) < 0)
        return;
    rec = json_tokener_parse(text);
    free(text);
    if (rec)
        uuid = json_get_string(rec, "uuid");
    /* Damaged, it still says the VM may live elsewhere: kept sent. */
    if (!uuid || strcmp(uuid, v->def.uuid) == 0) {
        v->state = VM_SENT;
        v->reason = "sent";
        if (!uuid)
            log_err("%s: damaged; %s is kept sent until vm-send-confirm", v->sent_path, v->def.name);
    } else {
        log_notice("%s: of an earlier VM %s (uuid %s); removed", v->sent_path, v->def.name, uuid);
        statefile_remove_durable(v->sent_path);
    }
    json_object_put(rec);
}
