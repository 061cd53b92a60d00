/* copy.c: the copy engine's life cycle and its ring: opening the chains,
 * the fixed buffers and the io_uring with its eventfd; the step that reaps
 * completions and submits what can go next; the blocking wrappers img_copy
 * and img_rebase. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copy_internal.h"
#include "errmsg.h"

int copy_fail(img_copy *c, int r, const char *fmt, ...)
{
    va_list ap;

    if (c->status == 0) {
        c->status = r;
        va_start(ap, fmt);
        vsnprintf(c->err, sizeof(c->err), fmt, ap);
        va_end(ap);
    }
    return r;
}

/* ---- ops ---------------------------------------------------------------- */

copy_op *copy_op_get(img_copy *c)
{
    copy_op *op = c->free_ops;

    if (op) {
        c->free_ops = op->next_free;
        memset(op, 0, sizeof(*op));
        op->buf_index = -1;
    }
    return op;
}

void copy_op_put(img_copy *c, copy_op *op)
{
    op->next_free = c->free_ops;
    c->free_ops = op;
}

static void prep(struct io_uring_sqe *sqe, const copy_op *op)
{
    bool write = op->kind == OP_WRITE || op->kind == OP_WRITE_TABLE;

    if (op->kind == OP_WRITEBACK)
        io_uring_prep_sync_file_range(sqe, op->fd, op->len, op->off, SYNC_FILE_RANGE_WRITE);
    else if (op->buf_index >= 0 && write)
        io_uring_prep_write_fixed(sqe, op->fd, op->buf, op->len, op->off, op->buf_index);
    else if (op->buf_index >= 0)
        io_uring_prep_read_fixed(sqe, op->fd, op->buf, op->len, op->off, op->buf_index);
    else if (write)
        io_uring_prep_write(sqe, op->fd, op->buf, op->len, op->off);
    else
        io_uring_prep_read(sqe, op->fd, op->buf, op->len, op->off);
    io_uring_sqe_set_data(sqe, (void *)op);
}

static bool queue_sqe(img_copy *c, copy_op *op)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);

    if (!sqe)
        return false;
    prep(sqe, op);
    c->queued++;
    return true;
}

bool copy_op_queue(img_copy *c, copy_op *op)
{
    if (!c->fixed)
        op->buf_index = -1;
    op->total = op->len;
    if (!queue_sqe(c, op)) {
        copy_op_put(c, op);
        return false;
    }
    c->inflight++;
    return true;
}

/* ---- units --------------------------------------------------------------- */

void copy_unit_release(img_copy *c, copy_unit *u)
{
    u->active = false;
    if (c->planning == u)
        c->planning = NULL;
}

static void unit_finished(img_copy *c, copy_unit *u)
{
    c->done += u->len;
    copy_unit_release(c, u);
    if (c->progress)
        c->progress(c->opaque, c->done, c->size);
}

/* Decides and writes u's granules, as far as ops allow. */
static void unit_classify(img_copy *c, copy_unit *u)
{
    int r = copy_dst_unit(c, u);

    if (r < 0) {
        copy_fail(c, r, "%s: %s", c->path, strerror(-r));
        if (u->pending == 0)
            copy_unit_release(c, u);
        return;
    }
    if (!u->classifying && u->pending == 0)
        unit_finished(c, u);
}

/* Every read of u is queued (or filled in place). */
void copy_unit_mapped(img_copy *c, copy_unit *u)
{
    u->mapped = true;
    if (u->pending == 0) {
        u->writing = true;
        unit_classify(c, u);
    }
}

void copy_unit_io_done(img_copy *c, copy_unit *u)
{
    if (--u->pending > 0)
        return;
    if (c->status < 0 || c->cancelled) {
        copy_unit_release(c, u);
        return;
    }
    if (!u->writing) {
        if (u->mapped) {
            u->writing = true;
            unit_classify(c, u);
        }
        return;                  /* the planner queues more of it */
    }
    if (!u->classifying)
        unit_finished(c, u);
}

/* Units whose writes stopped for want of ops go on. */
static void continue_classifying(img_copy *c)
{
    for (unsigned i = 0; i < c->nunits && c->free_ops && c->status == 0; i++)
        if (c->units[i].active && c->units[i].classifying)
            unit_classify(c, &c->units[i]);
}

/* ---- completions ------------------------------------------------------------ */

static const char *op_what(const copy_op *op)
{
    switch (op->kind) {
    case OP_WRITE:
    case OP_WRITE_TABLE:
        return "writing";
    default:
        return "reading";
    }
}

/* The op's bytes are all there. */
static void op_done(img_copy *c, copy_op *op)
{
    copy_unit *u = op->unit;
    int r;

    switch (op->kind) {
    case OP_READ:
        c->stats.bytes_read += op->total;
        copy_unit_io_done(c, u);
        break;
    case OP_READ_COMPRESSED:
        c->stats.bytes_read += op->total;
        if ((r = copy_compressed_done(c, op)) < 0)
            copy_fail(c, r, "%s: a compressed cluster does not inflate", op->layer->path);
        copy_unit_io_done(c, u);
        break;
    case OP_READ_TABLE:
        c->stats.bytes_read += op->total;
        copy_table_read_done(c, op);
        break;
    case OP_WRITE:
        c->stats.bytes_written += op->total;
        copy_dst_data_written(c, op->off);
        copy_unit_io_done(c, u);
        break;
    case OP_WRITEBACK:
        break;
    case OP_WRITE_TABLE:
        c->stats.bytes_written += op->total;
        copy_dst_table_written(c, op);
        break;
    }
}

/* An op that failed: its resources go back; its unit learns it ended. */
static void op_failed(img_copy *c, copy_op *op, int res)
{
    const char *path = op->layer ? op->layer->path : op->kind == OP_READ ? "the source" : c->path;

    copy_fail(c, res, "%s %s: %s", op_what(op), path, strerror(-res));
    if (op->kind == OP_READ_TABLE) {
        *op->fetching = false;
        return;
    }
    if (op->kind == OP_READ_COMPRESSED) {
        free(op->owned);
        c->compressed_inflight--;
    }
    if (op->kind == OP_WRITE_TABLE)
        copy_dst_table_written(c, op);
    else
        copy_unit_io_done(c, op->unit);
}

static void complete(img_copy *c, copy_op *op, int res)
{
    if (op->kind == OP_WRITEBACK) {
        /* Only a hint: the final fsync reports what fails. */
        c->inflight--;
        copy_op_put(c, op);
        return;
    }
    if (res == -EINTR || res == -EAGAIN) {
        if (queue_sqe(c, op))
            return;
        res = -EAGAIN;
    }
    if (res == 0 && op->len > 0 && op->kind == OP_READ_COMPRESSED) {
        memset(op->buf, 0, op->len);    /* the file ends inside the last sector */
        res = (int)op->len;
    }
    if (res == 0 && op->len > 0)
        res = -EIO;    /* a read past the end of the file, or a write that wrote nothing */
    if (res < 0) {
        c->inflight--;
        op_failed(c, op, res);
        copy_op_put(c, op);
        return;
    }
    op->buf += res;
    op->off += (uint64_t)res;
    op->len -= (uint32_t)res;
    if (op->len > 0) {
        if (queue_sqe(c, op))
            return;
        c->inflight--;
        op_failed(c, op, -EAGAIN);
        copy_op_put(c, op);
        return;
    }
    c->inflight--;
    op->buf -= op->total;
    op_done(c, op);
    copy_op_put(c, op);
}

static void reap(img_copy *c)
{
    struct io_uring_cqe *cqe;

    while (io_uring_peek_cqe(&c->ring, &cqe) == 0) {
        copy_op *op = io_uring_cqe_get_data(cqe);
        int res = cqe->res;

        io_uring_cqe_seen(&c->ring, cqe);
        complete(c, op, res);
    }
}

/* ---- the step ------------------------------------------------------------------ */

static void submit(img_copy *c)
{
    int r;

    if (c->queued == 0)
        return;
    r = io_uring_submit(&c->ring);
    if (r >= 0) {
        c->queued = 0;
        return;
    }
    if (r == -EAGAIN || r == -EBUSY || r == -EINTR) {
        eventfd_write(c->efd, 1);    /* try again at the next step */
        return;
    }
    copy_fail(c, r, "io_uring_submit: %s", strerror(-r));
}

static bool finished(const img_copy *c)
{
    if (c->inflight > 0 || c->queued > 0)
        return false;
    if (c->status < 0 || c->cancelled)
        return true;
    return c->cursor == c->size && !c->planning && c->dst.nspans == 0;
}

static bool units_idle(const img_copy *c)
{
    for (unsigned i = 0; i < c->nunits; i++)
        if (c->units[i].active)
            return false;
    return true;
}

int img_copy_step(img_copy *c)
{
    unsigned budget = COPY_STEP_MAPS;
    eventfd_t v;

    eventfd_read(c->efd, &v);    /* non-blocking: clears the wake-up */
    for (;;) {
        reap(c);
        if (c->status == 0 && !c->cancelled) {
            continue_classifying(c);
            copy_plan(c, &budget);
            if (c->status == 0)
                copy_dst_flush_spans(c);
        }
        submit(c);
        if (finished(c) && (c->status < 0 || c->cancelled || units_idle(c)))
            return c->status < 0 ? c->status : c->cancelled ? -ECANCELED : 1;
        if (io_uring_cq_ready(&c->ring) > 0)
            continue;
        if (c->inflight > 0)
            return 0;
        if (budget == 0) {
            eventfd_write(c->efd, 1);    /* more to do: come back after the loop's turn */
            return 0;
        }
        /* Nothing in flight and nothing could be queued: a bug, not a hang. */
        return copy_fail(c, -EIO, "%s: the copy stalled at offset %llu", c->path,
                         (unsigned long long)c->cursor);
    }
}

void img_copy_cancel(img_copy *c)
{
    c->cancelled = true;
    eventfd_write(c->efd, 1);
}

int img_copy_fd(const img_copy *c)
{
    return c->efd;
}

void img_copy_get_stats(const img_copy *c, img_copy_stats *ret)
{
    *ret = c->stats;
    ret->blocking_reads = 0;
    for (int s = 0; s < SIDES; s++)
        for (size_t k = 0; c->side[s] && k < c->side[s]->depth; k++)
            if (c->side[s]->layers[k].q)
                ret->blocking_reads += c->side[s]->layers[k].q->blocking_reads;
    ret->buffer_bytes = c->mem_bytes;
}

/* ---- start and finish ---------------------------------------------------------- */

static void copy_free(img_copy *c)
{
    if (c->ring_ok)
        io_uring_queue_exit(&c->ring);
    if (c->efd >= 0)
        close(c->efd);
    copy_dst_close(c);
    for (int s = 0; s < SIDES; s++)
        img_close(c->side[s]);
    free(c->units);
    free(c->mem);
    free(c->zbuf);
    free(c);
}

static uint32_t granule_of(const img_copy_options *o)
{
    if (o->format == IMG_FORMAT_RAW)
        return COPY_RAW_GRANULE;
    return o->cluster_size ? o->cluster_size : 65536u;
}

/* Buffers: each a multiple of the granule, at least one, at most
 * COPY_MAX_GRANULES granules; as many as asked within a memory budget (the
 * default's, or COPY_MAX_BUFFER_BYTES), but two at least. */
static int setup_buffers(img_copy *c, const img_copy_options *o)
{
    uint32_t g = granule_of(o), want = o->buffer_size ? o->buffer_size : COPY_DEFAULT_BUFFER_SIZE;
    unsigned n = o->buffers ? o->buffers : COPY_DEFAULT_BUFFERS;
    uint64_t bytes = ((uint64_t)want + g - 1) / g * g;
    uint64_t budget = o->buffers ? COPY_MAX_BUFFER_BYTES
                                 : (uint64_t)COPY_DEFAULT_BUFFERS * COPY_DEFAULT_BUFFER_SIZE;

    if (bytes > (uint64_t)g * COPY_MAX_GRANULES)
        bytes = (uint64_t)g * COPY_MAX_GRANULES;
    if (n > COPY_MAX_BUFFERS)
        n = COPY_MAX_BUFFERS;
    if ((uint64_t)n * bytes > budget)
        n = (unsigned)(budget / bytes);
    if (n < 2)
        n = 2;
    c->unit_bytes = (uint32_t)bytes;
    c->nunits = n / c->sides ? n / c->sides : 1;
    c->mem_bytes = (size_t)bytes * c->nunits * c->sides;
    if (posix_memalign((void **)&c->mem, 4096, c->mem_bytes) != 0) {
        c->mem = NULL;
        return -ENOMEM;
    }
    c->units = calloc(c->nunits, sizeof(*c->units));
    return c->units ? 0 : -ENOMEM;
}

static void assign_buffers(img_copy *c)
{
    struct iovec iov[COPY_MAX_BUFFERS];
    unsigned k = 0;

    for (unsigned i = 0; i < c->nunits; i++)
        for (unsigned s = 0; s < c->sides; s++, k++) {
            c->units[i].buf[s] = c->mem + (size_t)k * c->unit_bytes;
            c->units[i].buf_index[s] = (int)k;
            iov[k] = (struct iovec){ c->units[i].buf[s], c->unit_bytes };
        }
    /* Registered buffers save a page walk per request; without them (a
     * memlock limit, say) plain requests work the same. */
    c->fixed = io_uring_register_buffers(&c->ring, iov, k) == 0;
}

static int setup_ring(img_copy *c, char *err, size_t errlen)
{
    struct io_uring_params p = { 0 };
    int r;

    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = COPY_RING_ENTRIES * 2;
    if ((r = io_uring_queue_init_params(COPY_RING_ENTRIES, &c->ring, &p)) < 0)
        return img_errmsg(err, errlen, r, "io_uring_queue_init: %s", strerror(-r));
    c->ring_ok = true;
    if ((c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
        return img_errmsg(err, errlen, -errno, "eventfd: %m");
    if ((r = io_uring_register_eventfd(&c->ring, c->efd)) < 0)
        return img_errmsg(err, errlen, r, "io_uring_register_eventfd: %s", strerror(-r));
    for (unsigned i = 0; i < COPY_RING_ENTRIES; i++)
        copy_op_put(c, &c->ops[i]);
    assign_buffers(c);
    return 0;
}

static int open_source(img_copy *c, const char *src, img_format fmt, const img_copy_options *o,
                       char *err, size_t errlen)
{
    img_open_options io = { .roots = o->roots };
    char msg[400] = "";
    int r = img_open(src, fmt, &io, &c->side[SIDE_SRC], msg, sizeof(msg));

    if (r < 0)
        return img_errmsg(err, errlen, r, "%s: %s", src, msg);
    c->size = img_virtual_size(c->side[SIDE_SRC]);
    return 0;
}

static bool chain_holds(const img *chain, const img_layer *l)
{
    for (size_t k = 0; k < chain->depth; k++)
        if (chain->layers[k].dev == l->dev && chain->layers[k].ino == l->ino)
            return true;
    return false;
}

/* The new image's backing file, named as dst will name it: its content is
 * what dst need not store. */
static int open_backing(img_copy *c, const img_copy_options *o, char *err, size_t errlen)
{
    img_open_options io = { .roots = o->roots };
    char combined[PATH_MAX], msg[400] = "";
    int r;

    if (o->format != IMG_FORMAT_QCOW2)
        return img_errmsg(err, errlen, -EINVAL, "%s: a raw image has no backing file", c->path);
    if (strlen(o->backing_file) > IMG_BACKING_NAME_MAX || !img_format_name(o->backing_format))
        return img_errmsg(err, errlen, -EINVAL, "%s: invalid backing file or format", c->path);
    if (img_backing_path(c->path, o->backing_file, combined) < 0)
        return img_errmsg(err, errlen, -ENAMETOOLONG, "%s: backing file path too long", c->path);
    if ((r = img_open(combined, o->backing_format, &io, &c->side[SIDE_REF], msg, sizeof(msg))) < 0)
        return img_errmsg(err, errlen, r, "%s: backing file '%s': %s", c->path, o->backing_file, msg);
    if (img_depth(c->side[SIDE_REF]) >= IMG_MAX_CHAIN)
        return img_errmsg(err, errlen, -ELOOP, "%s: backing file '%s' is a chain of %d layers already",
                          c->path, o->backing_file, IMG_MAX_CHAIN);
    if (chain_holds(c->side[SIDE_REF], &c->side[SIDE_SRC]->layers[0]))
        return img_errmsg(err, errlen, -ELOOP, "%s: backing file '%s' is backed by the image itself",
                          c->path, o->backing_file);
    snprintf(c->backing_name, sizeof(c->backing_name), "%s", o->backing_file);
    c->ref_size = img_virtual_size(c->side[SIDE_REF]);
    c->sides = 2;
    return 0;
}

static int check_dst(const char *dst, bool replace, char *err, size_t errlen)
{
    struct stat st;

    if (strlen(dst) >= PATH_MAX)
        return img_errmsg(err, errlen, -ENAMETOOLONG, "%s: path too long", dst);
    if (!replace && lstat(dst, &st) == 0)
        return img_errmsg(err, errlen, -EEXIST, "%s: already exists; refusing to overwrite it", dst);
    return 0;
}

static int zbuf_alloc(img_copy *c)
{
    size_t most = 0;

    for (size_t k = 0; k < c->side[SIDE_SRC]->depth; k++)
        if (c->side[SIDE_SRC]->layers[k].q && c->side[SIDE_SRC]->layers[k].q->h.cluster_size > most)
            most = c->side[SIDE_SRC]->layers[k].q->h.cluster_size;
    for (size_t k = 0; c->side[SIDE_REF] && k < c->side[SIDE_REF]->depth; k++)
        if (c->side[SIDE_REF]->layers[k].q && c->side[SIDE_REF]->layers[k].q->h.cluster_size > most)
            most = c->side[SIDE_REF]->layers[k].q->h.cluster_size;
    if (most && !(c->zbuf = malloc(most)))
        return -ENOMEM;
    return 0;
}

static int start(img_copy *c, const char *src, img_format fmt, const char *dst,
                 const img_copy_options *o, char *err, size_t errlen)
{
    int r;

    if ((r = check_dst(dst, o->replace, err, errlen)) < 0)
        return r;
    snprintf(c->path, sizeof(c->path), "%s", dst);
    c->replace = o->replace;
    c->roots = o->roots;
    c->sides = 1;
    if ((r = open_source(c, src, fmt, o, err, errlen)) < 0)
        return r;
    if (o->backing_file && (r = open_backing(c, o, err, errlen)) < 0)
        return r;
    if ((r = zbuf_alloc(c)) < 0 || (r = setup_buffers(c, o)) < 0)
        return img_errmsg(err, errlen, r, "no memory for the copy's buffers");
    if ((r = setup_ring(c, err, errlen)) < 0)
        return r;
    return copy_dst_open(c, o, err, errlen);
}

int img_copy_start(const char *src, img_format src_format, const char *dst,
                   const img_copy_options *o, img_copy **ret, char *err, size_t errlen)
{
    img_copy *c;
    int r;

    if (!src || !dst || !o || !ret || !img_format_name(o->format) || !img_format_name(src_format))
        return img_errmsg(err, errlen, -EINVAL, "invalid arguments");
    if (!(c = calloc(1, sizeof(*c))))
        return img_errmsg(err, errlen, -ENOMEM, "no memory");
    c->efd = -1;
    c->dst.fd = -1;
    c->progress = o->progress;
    c->opaque = o->opaque;
    if ((r = start(c, src, src_format, dst, o, err, errlen)) < 0) {
        copy_free(c);
        return r;
    }
    *ret = c;
    return 0;
}

int img_copy_finish(img_copy *c, char *err, size_t errlen)
{
    int r = c->status;

    if (r == 0 && c->cancelled)
        r = copy_fail(c, -ECANCELED, "%s: cancelled", c->path);
    if (r == 0 && (c->inflight > 0 || c->cursor < c->size))
        r = copy_fail(c, -EINVAL, "%s: finished before the copy ended", c->path);
    if (r == 0)
        r = copy_dst_finish(c, err, errlen);
    else
        img_errmsg(err, errlen, r, "%s", c->err);
    if (r < 0 && c->inflight > 0) {
        /* The kernel may still write into the buffers: wait before freeing. */
        while (c->inflight > 0 && io_uring_submit_and_wait(&c->ring, 1) >= 0)
            reap(c);
    }
    copy_free(c);
    return r;
}

/* ---- blocking wrappers ---------------------------------------------------------- */

int img_copy_run(const char *src, img_format src_format, const char *dst, const img_copy_options *o,
             img_copy_stats *stats, char *err, size_t errlen)
{
    img_copy *c;
    int r = img_copy_start(src, src_format, dst, o, &c, err, errlen);

    if (r < 0)
        return r;
    while ((r = img_copy_step(c)) == 0) {
        struct pollfd p = { .fd = img_copy_fd(c), .events = POLLIN };

        while (poll(&p, 1, -1) < 0 && errno == EINTR)
            ;
    }
    if (stats)
        img_copy_get_stats(c, stats);
    return img_copy_finish(c, err, errlen);
}

int img_rebase(const char *path, const char *backing, img_format backing_format,
               const char *const *roots, char *err, size_t errlen)
{
    img_copy_options o = { .format = IMG_FORMAT_QCOW2, .backing_file = backing,
                           .backing_format = backing_format, .replace = true, .roots = roots };
    img_open_options io = { .roots = roots };
    img_layer_info info;
    char msg[400] = "";
    img *i;
    int r;

    if (!path || !backing)
        return img_errmsg(err, errlen, -EINVAL, "invalid arguments");
    /* The rewritten image keeps the cluster size it had. */
    if ((r = img_open(path, IMG_FORMAT_QCOW2, &io, &i, msg, sizeof(msg))) < 0)
        return img_errmsg(err, errlen, r, "%s: %s", path, msg);
    img_layer_info_get(i, 0, &info);
    img_close(i);
    o.cluster_size = info.cluster_size;
    return img_copy_run(path, IMG_FORMAT_QCOW2, path, &o, NULL, err, errlen);
}
