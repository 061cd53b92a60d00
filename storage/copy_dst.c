/* copy_dst.c: the image a copy writes. Each granule of a unit is decided
 * (nothing, a zero cluster, or data) and runs of data are written with one
 * request each. A qcow2 image is laid out append-only: the header cluster,
 * the L1 table after it, then data clusters and L2 tables in the order they
 * are decided, and at the end refcount blocks and the refcount table that
 * count every cluster once. L2 tables are kept in memory only while their
 * clusters are being decided. The header, the L1 table and the refcounts
 * are written last, then the file is synced and renamed into place: until
 * then nothing refers to what is being written. */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bytes.h"
#include "copy_internal.h"
#include "errmsg.h"
#include "qcow2_build.h"
#include "qcow2_header.h"
#include "tempfile.h"

#define MAX_SPANS (COPY_MAX_BUFFERS + 4)

static unsigned span_bits(const copy_dst *d)
{
    return 2 * d->cluster_bits - 3;
}

uint64_t copy_dst_span_end(const img_copy *c, uint64_t off)
{
    if (c->dst.format != IMG_FORMAT_QCOW2)
        return c->size;
    return ((off >> span_bits(&c->dst)) + 1) << span_bits(&c->dst);
}

/* ---- opening -------------------------------------------------------------- */

static int open_qcow2(img_copy *c, const img_copy_options *o, char *err, size_t errlen)
{
    copy_dst *d = &c->dst;
    uint32_t cs = o->cluster_size ? o->cluster_size : QCOW2_DEFAULT_CLUSTER_SIZE;
    qcow2_new_header h = { .backing = d->backing, .backing_format = d->backing_format };
    int64_t entries;
    int r = img_check_cluster_size(c->path, cs, err, errlen);

    if (r < 0)
        return r;
    d->cluster_bits = (unsigned)__builtin_ctz(cs);
    d->cluster_size = cs;
    d->granule = cs;
    if (qcow2_new_header_bytes(&h) > cs)
        return img_errmsg(err, errlen, -ENAMETOOLONG,
                          "%s: the backing file name does not fit in the header cluster", c->path);
    if ((entries = qcow2_l1_entries_for(d->size, d->cluster_bits)) < 0)
        return img_errmsg(err, errlen, -EFBIG, "%s: size %" PRIu64 " needs too large an L1 table with %"
                          PRIu32 "-byte clusters", c->path, d->size, cs);
    d->l1_size = (uint32_t)entries;
    d->l1_clusters = ((uint64_t)entries * 8 + cs - 1) / cs;
    d->next_cluster = 1 + d->l1_clusters;
    if (!(d->l1 = calloc(d->l1_size, sizeof(*d->l1))))
        return img_errmsg(err, errlen, -ENOMEM, "no memory for the L1 table");
    return 0;
}

int copy_dst_open(img_copy *c, const img_copy_options *o, char *err, size_t errlen)
{
    copy_dst *d = &c->dst;
    int r;

    d->format = o->format;
    d->granule = COPY_RAW_GRANULE;
    d->size = (c->size + 511) & ~(uint64_t)511;    /* whole sectors, as qemu-img makes them */
    if (c->side[SIDE_REF]) {
        d->backing = c->backing_name;
        d->backing_format = o->backing_format;
    }
    if (d->format == IMG_FORMAT_QCOW2 && (r = open_qcow2(c, o, err, errlen)) < 0)
        return r;
    if ((d->fd = img_temp_open(c->path, d->tmp, err, errlen)) < 0)
        return d->fd;
    if (d->format == IMG_FORMAT_RAW && ftruncate(d->fd, (off_t)d->size) < 0)
        return img_errmsg(err, errlen, -errno, "%s: cannot size the new image: %m", c->path);
    return 0;
}

void copy_dst_close(img_copy *c)
{
    copy_dst *d = &c->dst;

    while (d->spans) {
        copy_span *s = d->spans;
        d->spans = s->next;
        free(s->table);
        free(s);
    }
    if (d->fd >= 0) {
        close(d->fd);
        unlink(d->tmp);
    }
    free(d->l1);
}

/* ---- spans ------------------------------------------------------------------ */

copy_span *copy_dst_span(img_copy *c, uint64_t off)
{
    copy_dst *d = &c->dst;
    uint64_t index = off >> span_bits(d);
    copy_span **pp = &d->spans, *s;

    while (*pp && (*pp)->index < index)
        pp = &(*pp)->next;
    if (*pp && (*pp)->index == index)
        return *pp;
    if (!(s = calloc(1, sizeof(*s))) || !(s->table = calloc(1, d->cluster_size))) {
        free(s);
        copy_fail(c, -ENOMEM, "no memory for an L2 table");
        return NULL;
    }
    s->index = index;
    s->next = *pp;
    *pp = s;
    d->nspans++;
    return s;
}

bool copy_dst_spans_full(const img_copy *c, uint64_t off)
{
    const copy_dst *d = &c->dst;

    if (d->format != IMG_FORMAT_QCOW2 || d->nspans < MAX_SPANS)
        return false;
    for (const copy_span *s = d->spans; s; s = s->next)
        if (s->index == off >> span_bits(d))
            return false;
    return true;
}

static void span_set(copy_dst *d, copy_span *s, uint64_t guest, uint64_t entry)
{
    uint64_t i = (guest >> d->cluster_bits) & ((UINT64_C(1) << (d->cluster_bits - 3)) - 1);

    s->table[i] = htobe64(entry);
    s->used = true;
}

static void span_remove(copy_dst *d, copy_span *s)
{
    for (copy_span **pp = &d->spans; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    d->nspans--;
    free(s->table);
    free(s);
}

void copy_dst_table_written(img_copy *c, copy_op *op)
{
    span_remove(&c->dst, op->span);
}

/* A span whose clusters are all decided gets its L2 table a cluster of its
 * own, named in the L1 table; a span with nothing in it needs no table.
 * Returns false when no op is free for the write. */
static bool flush_span(img_copy *c, copy_span *s)
{
    copy_dst *d = &c->dst;
    uint64_t host;
    copy_op *op;

    if (!s->used) {
        span_remove(d, s);
        return true;
    }
    if (!(op = copy_op_get(c)))
        return false;
    host = d->next_cluster++ << d->cluster_bits;
    *op = (copy_op){ .kind = OP_WRITE_TABLE, .fd = d->fd, .buf = (uint8_t *)s->table,
                     .len = (uint32_t)d->cluster_size, .off = host, .buf_index = -1, .span = s };
    if (!copy_op_queue(c, op)) {
        d->next_cluster--;
        return false;
    }
    d->l1[s->index] = host | QCOW2_OFLAG_COPIED;
    s->outstanding = UINT32_MAX;    /* being written: not flushed again */
    return true;
}

int copy_dst_flush_spans(img_copy *c)
{
    copy_dst *d = &c->dst;
    copy_span *s = d->spans, *next;

    for (; s; s = next) {
        next = s->next;
        if (s->outstanding != 0)
            continue;
        if (c->cursor < c->size && ((s->index + 1) << span_bits(d)) > c->cursor)
            break;       /* the cursor is still inside it */
        if (!flush_span(c, s))
            break;
    }
    return 0;
}

void copy_dst_data_written(img_copy *c, uint64_t end)
{
    copy_dst *d = &c->dst;
    copy_op *op;

    if (end > d->written_end)
        d->written_end = end;
    if (d->written_end - d->writeback_from < COPY_WRITEBACK_BYTES || !(op = copy_op_get(c)))
        return;
    /* A raw image's holes need no writeback: a far jump starts afresh. */
    if (d->written_end - d->writeback_from > 8 * (uint64_t)COPY_WRITEBACK_BYTES)
        d->writeback_from = d->written_end - 8 * (uint64_t)COPY_WRITEBACK_BYTES;
    *op = (copy_op){ .kind = OP_WRITEBACK, .fd = d->fd, .off = d->writeback_from,
                     .len = (uint32_t)(d->written_end - d->writeback_from), .buf_index = -1 };
    if (copy_op_queue(c, op))
        d->writeback_from = d->written_end;
}

/* ---- deciding granules ----------------------------------------------------------- */

typedef enum granule_kind { G_NOTHING, G_ZERO, G_DATA } granule_kind;

static granule_kind decide(const img_copy *c, const copy_unit *u, unsigned g)
{
    uint32_t gs = c->dst.granule;
    uint64_t at = (uint64_t)g * gs;
    size_t n = (size_t)(u->len - at < gs ? u->len - at : gs);
    const uint8_t *p = u->buf[SIDE_SRC] + at;

    if (c->sides == SIDES) {
        if (memcmp(p, u->buf[SIDE_REF] + at, n) == 0)
            return G_NOTHING;            /* the backing image reads the same */
        return img_is_zero(p, n) ? G_ZERO : G_DATA;
    }
    if (!(u->alloc[g / 64] & (UINT64_C(1) << (g % 64))))
        return G_NOTHING;                /* unallocated through the whole chain */
    return img_is_zero(p, n) ? G_ZERO : G_DATA;
}

int copy_dst_zero(img_copy *c, uint64_t off, uint64_t len)
{
    copy_dst *d = &c->dst;
    copy_span *s;

    if (d->format != IMG_FORMAT_QCOW2) {
        c->stats.zero_clusters += (len + d->granule - 1) / d->granule;
        return 0;        /* a hole */
    }
    for (uint64_t at = off; at < off + len; at += d->cluster_size) {
        if (!(s = copy_dst_span(c, at)))
            return c->status;
        span_set(d, s, at, QCOW2_OFLAG_ZERO);
        c->stats.zero_clusters++;
    }
    return 0;
}

/* One write of granules [g0, g1) of u. */
static bool write_run(img_copy *c, copy_unit *u, unsigned g0, unsigned g1)
{
    copy_dst *d = &c->dst;
    uint64_t at = (uint64_t)g0 * d->granule, len = (uint64_t)(g1 - g0) * d->granule, host;
    copy_op *op = copy_op_get(c);

    if (!op)
        return false;
    if (d->format == IMG_FORMAT_QCOW2) {
        host = d->next_cluster << d->cluster_bits;
    } else {
        host = u->off + at;
        if (host + len > d->size)
            len = d->size - host;        /* the file ends inside the last block */
    }
    *op = (copy_op){ .kind = OP_WRITE, .fd = d->fd, .buf = u->buf[SIDE_SRC] + at, .len = (uint32_t)len,
                     .off = host, .buf_index = u->buf_index[SIDE_SRC], .unit = u };
    if (!copy_op_queue(c, op))
        return false;
    u->pending++;
    c->stats.data_clusters += g1 - g0;
    if (d->format == IMG_FORMAT_QCOW2) {
        for (unsigned g = g0; g < g1; g++)
            span_set(d, u->span, u->off + (uint64_t)g * d->granule,
                     ((d->next_cluster + (g - g0)) << d->cluster_bits) | QCOW2_OFLAG_COPIED);
        d->next_cluster += g1 - g0;
    }
    return true;
}

int copy_dst_unit(img_copy *c, copy_unit *u)
{
    copy_dst *d = &c->dst;
    unsigned n = (unsigned)((u->len + d->granule - 1) / d->granule), g = u->next_granule;
    int r;

    u->classifying = true;
    while (g < n) {
        granule_kind k = decide(c, u, g);
        unsigned end = g + 1;

        if (k == G_DATA) {
            while (end < n && decide(c, u, end) == G_DATA)
                end++;
            if (!write_run(c, u, g, end))
                break;
        } else if (k == G_ZERO && (r = copy_dst_zero(c, u->off + (uint64_t)g * d->granule,
                                                     d->granule)) < 0) {
            return r;
        }
        g = end;
    }
    u->next_granule = g;
    if (g < n)
        return 0;        /* out of ops: continued at a later step */
    u->classifying = false;
    if (u->span)
        u->span->outstanding--;
    return 0;
}

/* ---- finishing ---------------------------------------------------------------------- */

static int finish_qcow2(img_copy *c, char *err, size_t errlen)
{
    copy_dst *d = &c->dst;
    qcow2_new_header h = { .cluster_bits = d->cluster_bits, .size = d->size, .l1_size = d->l1_size,
                           .backing = d->backing, .backing_format = d->backing_format };

    return qcow2_append_finish(d->fd, &h, d->l1, d->next_cluster, c->path, err, errlen);
}

int copy_dst_finish(img_copy *c, char *err, size_t errlen)
{
    copy_dst *d = &c->dst;
    int r = 0;

    if (d->format == IMG_FORMAT_QCOW2)
        r = finish_qcow2(c, err, errlen);
    if (r < 0)
        return r;    /* copy_dst_close removes the temp file */
    r = img_temp_commit(d->fd, d->tmp, c->path, d->format, c->roots, c->replace, err, errlen);
    d->fd = -1;
    return r;
}
