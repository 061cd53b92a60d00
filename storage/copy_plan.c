/* copy_plan.c: the copy engine's planner. From the cursor it either skips a
 * run that needs no reading (unallocated or zero in the source, and for a
 * rebase zero in the backing image too) or gives the next range to a free
 * unit and queues its reads: data straight into the unit's buffer, a
 * compressed cluster into a buffer of its own to be inflated on arrival,
 * zeros filled in place. Before a lookup it makes sure that every L2 table
 * the lookup needs is in its layer's cache, reading missing ones through
 * the ring, so that no lookup ever waits on the disk. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "copy_internal.h"

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* ---- L2 tables ------------------------------------------------------------- */

static int fetch_table(img_copy *c, int side, size_t k, uint64_t table_off)
{
    img_layer *l = &c->side[side]->layers[k];
    qcow2_l2_slot *slot;
    copy_op *op;

    if (c->fetching[side][k])
        return 1;
    if (!(op = copy_op_get(c)))
        return 1;
    if (!(slot = qcow2_l2_slot_claim(l))) {
        copy_op_put(c, op);
        return -ENOMEM;
    }
    *op = (copy_op){ .kind = OP_READ_TABLE, .fd = l->fd, .buf = (uint8_t *)slot->table,
                     .len = l->q->h.cluster_size, .off = table_off, .buf_index = -1, .layer = l,
                     .slot = slot, .table_offset = table_off, .fetching = &c->fetching[side][k] };
    if (!copy_op_queue(c, op))
        return 1;
    c->fetching[side][k] = true;
    return 1;
}

/* 0 when every table a lookup at pos needs is cached; 1 while some are
 * being read (queued here), negative on error. */
static int tables_ready(img_copy *c, int side, uint64_t pos)
{
    img *im = c->side[side];
    int waiting = 0;

    for (size_t k = 0; k < im->depth; k++) {
        img_layer *l = &im->layers[k];
        uint64_t table_off;
        bool cached;
        int r;

        if (pos >= l->virtual_size || !l->q)
            break;       /* past a shorter backing, or a raw layer: the chain ends here */
        table_off = qcow2_l2_table_for(l, pos, &cached);
        if (cached)
            continue;
        if ((r = fetch_table(c, side, k, table_off)) < 0)
            return r;
        waiting = 1;
    }
    return waiting;
}

void copy_table_read_done(img_copy *c, copy_op *op)
{
    qcow2_l2_slot_fill(op->layer, op->slot, op->table_offset);
    *op->fetching = false;
}

/* A lookup at pos stays inside the table of every qcow2 layer that the
 * cache now holds. */
static uint64_t clip_to_tables(const img *im, uint64_t pos, uint64_t len)
{
    for (size_t k = 0; k < im->depth; k++) {
        const img_layer *l = &im->layers[k];
        unsigned span_bits;

        if (pos >= l->virtual_size || !l->q)
            break;
        span_bits = l->q->l2_bits + l->q->h.cluster_bits;
        len = min_u64(len, (((pos >> span_bits) + 1) << span_bits) - pos);
    }
    return len;
}

/* The run at pos in side's chain, at most len bytes; 1 when its tables are
 * still being read. */
static int lookup(img_copy *c, int side, uint64_t pos, uint64_t len, img_extent *e, qcow2_run *run)
{
    int r = tables_ready(c, side, pos);

    if (r != 0)
        return r;
    return img_map_run(c->side[side], pos, clip_to_tables(c->side[side], pos, len), e, run);
}

/* ---- compressed clusters ------------------------------------------------------ */

int copy_compressed_done(img_copy *c, copy_op *op)
{
    uint32_t cs = op->layer->q->h.cluster_size;
    int r = qcow2_inflate_cluster(op->owned, op->total, c->zbuf, cs);

    if (r == 0)
        memcpy(op->dest, c->zbuf + op->within, op->dest_len);
    free(op->owned);
    c->compressed_inflight--;
    return r;
}

static int queue_compressed(img_copy *c, copy_unit *u, int side, const img_extent *e,
                            const qcow2_run *run, uint8_t *dest)
{
    img_layer *l = &c->side[side]->layers[e->layer];
    copy_op *op;

    if (c->compressed_inflight >= COPY_MAX_COMPRESSED || !(op = copy_op_get(c)))
        return 1;
    /* clen is at most twice the cluster size (the header checks bound it). */
    *op = (copy_op){ .kind = OP_READ_COMPRESSED, .fd = l->fd, .len = (uint32_t)run->clen,
                     .off = run->coffset, .buf_index = -1, .unit = u, .layer = l, .dest = dest,
                     .dest_len = (uint32_t)e->length,
                     .within = (uint32_t)(e->offset & (l->q->h.cluster_size - 1)) };
    if (!(op->owned = malloc(run->clen ? run->clen : 1))) {
        copy_op_put(c, op);
        return -ENOMEM;
    }
    op->buf = op->owned;
    if (!copy_op_queue(c, op)) {
        free(op->owned);
        return 1;
    }
    c->compressed_inflight++;
    u->pending++;
    return 0;
}

/* ---- units ---------------------------------------------------------------------- */

static void mark_allocated(copy_unit *u, uint64_t from, uint64_t len, uint32_t granule)
{
    for (uint64_t g = from / granule; g <= (from + len - 1) / granule; g++)
        u->alloc[g / 64] |= UINT64_C(1) << (g % 64);
}

static int queue_data(img_copy *c, copy_unit *u, int side, const img_extent *e, uint8_t *dest)
{
    img_layer *l = &c->side[side]->layers[e->layer];
    copy_op *op = copy_op_get(c);

    if (!op)
        return 1;
    *op = (copy_op){ .kind = OP_READ, .fd = l->fd, .buf = dest, .len = (uint32_t)e->length,
                     .off = e->host_offset, .buf_index = u->buf_index[side], .unit = u };
    if (!copy_op_queue(c, op))
        return 1;
    u->pending++;
    return 0;
}

/* Queues the reads of the next run of u on one side; 1 when blocked. */
static int plan_run(img_copy *c, copy_unit *u, int side)
{
    uint64_t at = u->planned[side], pos = u->off + at;
    uint8_t *dest = u->buf[side] + at;
    img_extent e;
    qcow2_run run;
    int r;

    if (side == SIDE_REF && pos >= c->ref_size) {
        memset(dest, 0, u->len - at);    /* past the end of the backing image */
        u->planned[side] = u->len;
        return 0;
    }
    if ((r = lookup(c, side, pos, u->len - at, &e, &run)) != 0)
        return r;
    switch (e.kind) {
    case IMG_EXTENT_DATA:
        r = queue_data(c, u, side, &e, dest);
        break;
    case IMG_EXTENT_COMPRESSED:
        r = queue_compressed(c, u, side, &e, &run, dest);
        break;
    case IMG_EXTENT_ZERO:
    case IMG_EXTENT_UNALLOCATED:
        memset(dest, 0, e.length);
        break;
    }
    if (r != 0)
        return r;
    if (side == SIDE_SRC && e.kind != IMG_EXTENT_UNALLOCATED)
        mark_allocated(u, at, e.length, c->dst.granule);
    u->planned[side] += e.length;
    return 0;
}

/* 0 when all of u is queued, 1 when blocked, negative on error. */
static int plan_unit(img_copy *c, copy_unit *u, unsigned *budget)
{
    for (unsigned side = 0; side < c->sides; side++) {
        while (u->planned[side] < u->len) {
            int r;

            if (*budget == 0)
                return 1;
            (*budget)--;
            if ((r = plan_run(c, u, (int)side)) != 0)
                return r;
        }
    }
    return 0;
}

static copy_unit *free_unit(img_copy *c)
{
    for (unsigned i = 0; i < c->nunits; i++)
        if (!c->units[i].active)
            return &c->units[i];
    return NULL;
}

static int start_unit(img_copy *c, uint64_t limit)
{
    copy_unit *u = free_unit(c);
    uint64_t pos = c->cursor, len = min_u64(c->unit_bytes, limit);
    uint32_t g = c->dst.granule;
    uint64_t padded = (len + g - 1) / g * g;
    copy_span *span = NULL;

    if (!u)
        return 1;
    if (c->dst.format == IMG_FORMAT_QCOW2 && !(span = copy_dst_span(c, pos)))
        return c->status ? c->status : 1;
    u->active = true;
    u->mapped = u->writing = u->classifying = false;
    u->off = pos;
    u->len = len;
    u->planned[SIDE_SRC] = u->planned[SIDE_REF] = 0;
    u->pending = 0;
    u->next_granule = 0;
    u->span = span;
    memset(u->alloc, 0, sizeof(u->alloc));
    for (unsigned s = 0; s < c->sides; s++)
        memset(u->buf[s] + len, 0, padded - len);    /* the tail of the last cluster */
    if (span)
        span->outstanding++;
    c->cursor += len;
    c->planning = u;
    return 0;
}

/* ---- skipping ------------------------------------------------------------------ */

static bool reads_zero(img_extent_kind k)
{
    return k == IMG_EXTENT_ZERO || k == IMG_EXTENT_UNALLOCATED;
}

/* How much of [pos, pos+len) the backing image reads as zeros from pos
 * (0 if it does not there); 1 (as *blocked) while its tables are read. */
static int ref_zero_run(img_copy *c, uint64_t pos, uint64_t len, uint64_t *ret)
{
    img_extent e;
    qcow2_run run;
    int r;

    if (pos >= c->ref_size) {
        *ret = len;
        return 0;
    }
    if ((r = lookup(c, SIDE_REF, pos, len, &e, &run)) != 0)
        return r;
    *ret = reads_zero(e.kind) ? e.length : 0;
    return 0;
}

/* Skips from the cursor a run that needs no reading, if one starts there:
 * whole granules, or up to the end of the image. 0 skipped (or nothing to
 * skip: *skipped false), 1 blocked. */
static int try_skip(img_copy *c, uint64_t limit, bool *skipped)
{
    uint64_t pos = c->cursor, len, g = c->dst.granule;
    img_extent e;
    qcow2_run run;
    int r;

    *skipped = false;
    if ((r = lookup(c, SIDE_SRC, pos, limit, &e, &run)) != 0)
        return r;
    if (!reads_zero(e.kind))
        return 0;
    len = e.length;
    if (c->side[SIDE_REF] && (r = ref_zero_run(c, pos, len, &len)) != 0)
        return r;
    if (pos + len != c->size)
        len = len / g * g;
    if (len == 0)
        return 0;
    /* Zeros the source stores stay zero clusters; in a rebase, zeros over
     * zeros need nothing at all. */
    if (!c->side[SIDE_REF] && e.kind == IMG_EXTENT_ZERO && (r = copy_dst_zero(c, pos, len)) != 0)
        return r;
    c->cursor += len;
    c->done += len;
    *skipped = true;
    if (c->progress)
        c->progress(c->opaque, c->done, c->size);
    return 0;
}

/* ---- the planner ------------------------------------------------------------------ */

static int plan_next(img_copy *c, unsigned *budget)
{
    uint64_t limit = min_u64(c->size - c->cursor, copy_dst_span_end(c, c->cursor) - c->cursor);
    bool skipped;
    int r;

    if (copy_dst_spans_full(c, c->cursor))
        return 1;
    (*budget)--;
    if ((r = try_skip(c, limit, &skipped)) != 0 || skipped)
        return r;
    return start_unit(c, limit);
}

void copy_plan(img_copy *c, unsigned *budget)
{
    while (c->status == 0 && !c->cancelled && *budget > 0) {
        int r;

        if (c->planning) {
            copy_unit *u = c->planning;

            if ((r = plan_unit(c, u, budget)) == 0) {
                c->planning = NULL;
                copy_unit_mapped(c, u);
                continue;
            }
        } else if (c->cursor < c->size) {
            r = plan_next(c, budget);
        } else {
            return;
        }
        if (r < 0) {
            copy_fail(c, r, "%s: %s", c->path, strerror(-r));
            return;
        }
        if (r > 0)
            return;
    }
}
