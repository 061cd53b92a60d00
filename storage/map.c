/* map.c: guest offsets to host offsets through a chain. Per qcow2 layer: the
 * L1 table validated whole at open; L2 tables read on demand into a small
 * LRU cache and each entry validated when a lookup reaches it; runs of one
 * kind found by walking entries. Through the chain: unallocated runs fall
 * through to the backing layer, reads past a shorter backing read zeros. */
#include "map.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"

#define HOST_OFFSET_LIMIT (UINT64_C(1) << 56)
#define SECTOR QCOW2_COMPRESSED_SECTOR

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static int check_l1_entry(const qcow2_layer *q, const img_layer *l, uint32_t idx,
                          uint64_t e, char *err, size_t errlen)
{
    uint64_t off = e & QCOW2_L1E_OFFSET_MASK, cs = q->h.cluster_size;

    if (e & QCOW2_L1E_RESERVED_MASK)
        return img_errmsg(err, errlen, -EINVAL,
                          "L1 entry %" PRIu32 " (0x%016" PRIx64 ") has reserved bits set", idx,
                          e);
    if (off == 0)
        return 0;
    if (off & (cs - 1))
        return img_errmsg(err, errlen, -EINVAL,
                          "L1 entry %" PRIu32 ": L2 table offset 0x%" PRIx64
                          " is not cluster-aligned",
                          idx, off);
    if (off > l->file_end || l->file_end - off < cs)
        return img_errmsg(err, errlen, -EINVAL,
                          "L1 entry %" PRIu32 ": L2 table (offset 0x%" PRIx64
                          ") extends past the end of the file",
                          idx, off);
    return 0;
}

static int load_l1(qcow2_layer *q, img_layer *l, char *err, size_t errlen)
{
    size_t bytes = (size_t)q->h.l1_size * 8;    /* bounded by the header checks */
    int r;

    if (q->h.l1_size == 0)
        return 0;
    q->l1 = malloc(bytes);
    if (!q->l1)
        return img_errmsg(err, errlen, -ENOMEM, "no memory for the L1 table");
    r = img_pread_exact(l->fd, q->l1, bytes, q->h.l1_table_offset);
    if (r < 0)
        return img_errmsg(err, errlen, r, "reading the L1 table: %s", strerror(-r));
    for (uint32_t i = 0; i < q->h.l1_size; i++) {
        q->l1[i] = be64toh(q->l1[i]);
        r = check_l1_entry(q, l, i, q->l1[i], err, errlen);
        if (r < 0)
            return r;
    }
    return 0;
}

static unsigned cache_slots(uint32_t cluster_bits)
{
    unsigned n = QCOW2_L2_CACHE_BYTES >> cluster_bits;

    if (n < QCOW2_L2_CACHE_MIN)
        return QCOW2_L2_CACHE_MIN;
    return n > QCOW2_L2_CACHE_MAX ? QCOW2_L2_CACHE_MAX : n;
}

int qcow2_layer_open(img_layer *l, const qcow2_header *h, char *err, size_t errlen)
{
    qcow2_layer *q = calloc(1, sizeof(*q));
    int r;

    if (!q)
        return img_errmsg(err, errlen, -ENOMEM, "no memory");
    q->h = *h;
    q->l2_bits = h->cluster_bits - 3;
    q->csize_shift = 62 - (h->cluster_bits - 8);
    q->csize_mask = (UINT64_C(1) << (h->cluster_bits - 8)) - 1;
    q->coffset_mask = (UINT64_C(1) << q->csize_shift) - 1;
    q->nslots = cache_slots(h->cluster_bits);
    q->slots = calloc(q->nslots, sizeof(*q->slots));
    if (!q->slots) {
        qcow2_layer_free(q);
        return img_errmsg(err, errlen, -ENOMEM, "no memory");
    }
    r = load_l1(q, l, err, errlen);
    if (r < 0) {
        qcow2_layer_free(q);
        return r;
    }
    l->q = q;
    return 0;
}

void qcow2_layer_free(struct qcow2_layer *q)
{
    if (!q)
        return;
    for (unsigned i = 0; q->slots && i < q->nslots; i++)
        free(q->slots[i].table);
    free(q->slots);
    free(q->l1);
    free(q->cbuf);
    free(q->zbuf);
    free(q);
}

/* The L2 table at host offset off (validated with the L1 table), from the
 * cache or read into the least recently used slot. */
static int l2_get(img_layer *l, uint64_t off, const uint64_t **ret)
{
    qcow2_layer *q = l->q;
    qcow2_l2_slot *victim = &q->slots[0];
    int r;

    for (unsigned i = 0; i < q->nslots; i++) {
        qcow2_l2_slot *s = &q->slots[i];

        if (s->offset == off) {
            s->stamp = ++q->clock;
            *ret = s->table;
            return 0;
        }
        if (s->stamp < victim->stamp)
            victim = s;
    }
    if (!victim->table) {
        victim->table = malloc(q->h.cluster_size);
        if (!victim->table)
            return -ENOMEM;
    }
    victim->offset = 0;
    victim->stamp = 0;
    q->blocking_reads++;
    r = img_pread_exact(l->fd, victim->table, q->h.cluster_size, off);
    if (r < 0)
        return r;
    victim->offset = off;
    victim->stamp = ++q->clock;
    *ret = victim->table;
    return 0;
}

uint64_t qcow2_l2_table_for(const img_layer *l, uint64_t offset, bool *cached)
{
    const qcow2_layer *q = l->q;
    uint64_t off = q->l1[offset >> (q->l2_bits + q->h.cluster_bits)] & QCOW2_L1E_OFFSET_MASK;

    *cached = off == 0;
    for (unsigned i = 0; off && i < q->nslots && !*cached; i++)
        *cached = q->slots[i].offset == off;
    return off;
}

qcow2_l2_slot *qcow2_l2_slot_claim(img_layer *l)
{
    qcow2_layer *q = l->q;
    qcow2_l2_slot *victim = &q->slots[0];

    for (unsigned i = 1; i < q->nslots; i++)
        if (q->slots[i].stamp < victim->stamp)
            victim = &q->slots[i];
    if (!victim->table && !(victim->table = malloc(q->h.cluster_size)))
        return NULL;
    /* Recently used, so that no other claim picks it while it is read. */
    victim->offset = 0;
    victim->stamp = ++q->clock;
    return victim;
}

void qcow2_l2_slot_fill(img_layer *l, qcow2_l2_slot *s, uint64_t table_offset)
{
    s->offset = table_offset;
    s->stamp = ++l->q->clock;
}

static int classify_compressed(const qcow2_layer *q, const img_layer *l, uint64_t e,
                               qcow2_run *c)
{
    uint64_t coff = e & q->coffset_mask;
    uint64_t sectors = ((e >> q->csize_shift) & q->csize_mask) + 1;
    uint64_t csize = sectors * SECTOR - (coff & (SECTOR - 1));

    /* Offsets must stay below 2^56 even where the field is wider, must not
     * point into the header cluster, and must start inside the file. The
     * last sector may run past the end of the file: it is read short, as
     * QEMU reads zeros there, and inflate fails if bytes were missing. */
    if (coff >= HOST_OFFSET_LIMIT || coff < q->h.cluster_size || coff >= l->file_end)
        return -EIO;
    c->kind = IMG_EXTENT_COMPRESSED;
    c->cdesc = e;
    c->coffset = coff;
    c->clen = min_u64(csize, l->file_end - coff);
    return 0;
}

/* One L2 entry: its kind, and for DATA the host cluster, checked to lie
 * wholly inside the file. */
static int classify(const qcow2_layer *q, const img_layer *l, uint64_t e, qcow2_run *c)
{
    uint64_t host = e & QCOW2_L2E_OFFSET_MASK, cs = q->h.cluster_size;

    if (e & QCOW2_OFLAG_COMPRESSED)
        return classify_compressed(q, l, e, c);
    if (e & QCOW2_L2E_STD_RESERVED_MASK)
        return -EIO;
    if (host & (cs - 1))
        return -EIO;
    if (e & QCOW2_OFLAG_ZERO) {
        if (q->h.version < 3)
            return -EIO;    /* bit 0 is reserved in v2 */
        c->kind = IMG_EXTENT_ZERO;   /* with or without a preallocated cluster */
        return 0;
    }
    if (host == 0) {
        c->kind = IMG_EXTENT_UNALLOCATED;
        return 0;
    }
    if (host > l->file_end || l->file_end - host < cs)
        return -EIO;
    c->kind = IMG_EXTENT_DATA;
    c->host_offset = host;
    return 0;
}

/* Whether the cluster at guest pos, described by c, continues the run. */
static bool run_continues(const qcow2_run *run, uint64_t start, uint64_t pos,
                          const qcow2_run *c)
{
    if (c->kind != run->kind || c->kind == IMG_EXTENT_COMPRESSED)
        return false;
    return c->kind != IMG_EXTENT_DATA || c->host_offset == run->host_offset + (pos - start);
}

typedef struct run_walk {
    uint64_t start, end, pos;     /* guest bytes: asked, limit, reached */
    unsigned budget;              /* entries left to examine */
    bool started;
} run_walk;

/* Adds one cluster (or a whole unallocated L2 span) to the run, or reports
 * that the run ends before it. */
static bool walk_take(run_walk *w, qcow2_run *run, const qcow2_run *c, uint64_t next)
{
    if (!w->started) {
        *run = *c;
        w->started = true;
    } else if (!run_continues(run, w->start, w->pos, c)) {
        return false;
    }
    w->pos = min_u64(next, w->end);
    return true;
}

/* A bad entry (or an unreadable table) past the start of a run ends the
 * run; the error is returned when a lookup starts on it, so that callers
 * get every good byte before it and an error exactly where it is. */
static int walk_error(const run_walk *w, int r, bool *done)
{
    *done = true;
    return w->started ? 0 : r;
}

static int walk_l2(img_layer *l, run_walk *w, qcow2_run *run, uint64_t l1e, bool *done)
{
    qcow2_layer *q = l->q;
    unsigned cb = q->h.cluster_bits;
    uint64_t per_table = UINT64_C(1) << q->l2_bits;
    const uint64_t *table;
    int r = l2_get(l, l1e & QCOW2_L1E_OFFSET_MASK, &table);

    if (r < 0)
        return walk_error(w, r, done);
    for (uint64_t i = (w->pos >> cb) & (per_table - 1); i < per_table; i++) {
        uint64_t next = ((w->pos >> cb) + 1) << cb;
        qcow2_run c = { 0 };

        if (w->pos >= w->end || w->budget == 0)
            break;
        w->budget--;
        r = classify(q, l, be64toh(table[i]), &c);
        if (r < 0)
            return walk_error(w, r, done);
        if (c.kind == IMG_EXTENT_DATA)
            c.host_offset += w->pos & ((UINT64_C(1) << cb) - 1);
        if (!walk_take(w, run, &c, next) || c.kind == IMG_EXTENT_COMPRESSED) {
            *done = true;
            break;
        }
    }
    return 0;
}

int qcow2_layer_run(img_layer *l, uint64_t offset, uint64_t maxlen, qcow2_run *ret)
{
    qcow2_layer *q = l->q;
    unsigned span_bits = q->l2_bits + q->h.cluster_bits;
    run_walk w = { .start = offset, .end = offset + maxlen, .pos = offset,
                   .budget = QCOW2_RUN_MAX_ENTRIES };
    qcow2_run run = { 0 };
    bool done = false;
    int r;

    while (!done && w.pos < w.end && w.budget > 0) {
        uint64_t l1e = q->l1[w.pos >> span_bits];   /* l1_size covers the size */

        if ((l1e & QCOW2_L1E_OFFSET_MASK) == 0) {
            qcow2_run c = { .kind = IMG_EXTENT_UNALLOCATED };

            w.budget--;
            done = !walk_take(&w, &run, &c, ((w.pos >> span_bits) + 1) << span_bits);
            continue;
        }
        r = walk_l2(l, &w, &run, l1e, &done);
        if (r < 0)
            return r;
    }
    run.length = w.pos - offset;
    *ret = run;
    return 0;
}

static void fill_extent(img_extent *e, uint64_t offset, uint64_t length, img_extent_kind kind,
                        unsigned layer, uint64_t host)
{
    *e = (img_extent){ .offset = offset, .length = length, .kind = kind, .layer = layer,
                       .host_offset = host };
}

int img_map_run(img *i, uint64_t offset, uint64_t len, img_extent *ret, qcow2_run *run_ret)
{
    uint64_t remaining;
    qcow2_run run = { 0 };
    int r;

    if (!i || !ret || len == 0 || offset >= i->layers[0].virtual_size)
        return -EINVAL;
    remaining = min_u64(len, i->layers[0].virtual_size - offset);
    for (size_t k = 0; k < i->depth; k++) {
        img_layer *l = &i->layers[k];

        if (offset >= l->virtual_size) {    /* past a shorter backing: k > 0 */
            fill_extent(ret, offset, remaining, IMG_EXTENT_ZERO, (unsigned)k - 1, 0);
            return 0;
        }
        remaining = min_u64(remaining, l->virtual_size - offset);
        if (l->format == IMG_FORMAT_RAW) {
            fill_extent(ret, offset, remaining, IMG_EXTENT_DATA, (unsigned)k, offset);
            return 0;
        }
        r = qcow2_layer_run(l, offset, remaining, &run);
        if (r < 0)
            return r;
        if (run.kind != IMG_EXTENT_UNALLOCATED) {
            fill_extent(ret, offset, run.length, run.kind, (unsigned)k,
                        run.kind == IMG_EXTENT_DATA ? run.host_offset : 0);
            if (run_ret)
                *run_ret = run;
            return 0;
        }
        remaining = run.length;
    }
    fill_extent(ret, offset, remaining, IMG_EXTENT_UNALLOCATED, (unsigned)i->depth - 1, 0);
    return 0;
}

int img_map(img *i, uint64_t offset, uint64_t len, img_extent *ret)
{
    return img_map_run(i, offset, len, ret, NULL);
}
