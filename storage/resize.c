/* resize.c: img_resize, growing an image in place. A raw image is extended
 * with ftruncate. A qcow2 image gets a new size field and, when its L1 table
 * no longer covers the size, a larger L1 table in new clusters. Every step
 * keeps each cluster's refcount at or above its references, with an fsync
 * between steps that depend on each other, so that a crash at any instant
 * may leak clusters but never leaves a reference that is not counted:
 * clusters are added to the file, counted (new refcount blocks written
 * before the refcount table points at them), filled, and only then named by
 * the header, in one write; the old L1 table is uncounted last. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "errmsg.h"
#include "layer.h"
#include "qcow2_header.h"
#include "refcount.h"
#include "storage.h"

#define SIZE_ALIGN 512u
#define MSG_MAX 512
#define HDR_SIZE_OFFSET 24u              /* size, crypt_method, l1_size, l1_table_offset */
#define HDR_L1_FIELDS_LEN 24u            /* 24..47 */
#define HDR_SIZE_L1_SIZE_LEN 16u         /* 24..39: size, crypt_method, l1_size */
#define ALLOC_MAX_ROUNDS 64

typedef struct resize_ctx {
    const char *path;
    int fd;
    uint64_t file_end;
    qcow2_header h;
    uint64_t cs;
    uint64_t new_size;
    uint32_t new_l1_size;
    uint64_t *reftable;              /* host order */
    uint64_t reftable_entries;
    uint64_t per_block;              /* refcount entries per block */
    uint8_t *block;                  /* one refcount block, as on disk */
    uint64_t block_index;            /* reftable index of block; UINT64_MAX: none loaded */
    char *err;
    size_t errlen;
} resize_ctx;

/* Clusters for the new L1 table: `data` from `first`, then `blocks` new
 * refcount blocks for the reftable entries of that run that have none. */
typedef struct alloc_run {
    uint64_t first;
    uint64_t data;
    uint64_t blocks;
} alloc_run;

static uint64_t div_round_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}


static int io_error(resize_ctx *c, int r, const char *what)
{
    return img_errmsg(c->err, c->errlen, r, "%s: %s: %s", c->path, what, strerror(-r));
}

static int sync_file(resize_ctx *c)
{
    if (fsync(c->fd) < 0)
        return img_errmsg(c->err, c->errlen, -errno, "%s: fsync: %m", c->path);
    return 0;
}

/* ---- refcounts ---- */

static int load_reftable(resize_ctx *c)
{
    uint64_t bytes = (uint64_t)c->h.refcount_table_clusters * c->cs;    /* <= 8 MiB */
    int r;

    c->reftable_entries = bytes / 8;
    c->per_block = qcow2_refblock_entries(c->h.cluster_bits, c->h.refcount_order);
    c->reftable = malloc((size_t)bytes);
    c->block = malloc(c->cs);
    c->block_index = UINT64_MAX;
    if (!c->reftable || !c->block)
        return img_errmsg(c->err, c->errlen, -ENOMEM, "no memory");
    r = img_pread_exact(c->fd, c->reftable, (size_t)bytes, c->h.refcount_table_offset);
    if (r < 0)
        return io_error(c, r, "reading the refcount table");
    for (uint64_t i = 0; i < c->reftable_entries; i++)
        c->reftable[i] = be64toh(c->reftable[i]);
    return 0;
}

/* The offset of refcount block i, 0 for none; -EIO for an entry that is
 * not a cluster of the file (the image needs a check). */
static int64_t refblock_offset(resize_ctx *c, uint64_t i)
{
    uint64_t e = c->reftable[i], off = e & QCOW2_REFT_OFFSET_MASK;

    if ((e & QCOW2_REFT_RESERVED_MASK) || (off & (c->cs - 1)) || off >= c->file_end ||
        c->file_end - off < c->cs)
        return img_errmsg(c->err, c->errlen, -EIO,
                          "%s: refcount table entry %" PRIu64 " (0x%016" PRIx64
                          ") is invalid; check the image",
                          c->path, i, e);
    return (int64_t)off;
}

/* Loads refcount block i into c->block; a block not allocated reads as zeros. */
static int load_block(resize_ctx *c, uint64_t i)
{
    int64_t off;
    int r = 0;

    if (c->block_index == i)
        return 0;
    c->block_index = UINT64_MAX;
    off = refblock_offset(c, i);
    if (off < 0)
        return (int)off;
    if (off == 0)
        memset(c->block, 0, c->cs);
    else
        r = img_pread_exact(c->fd, c->block, c->cs, (uint64_t)off);
    if (r < 0)
        return io_error(c, r, "reading a refcount block");
    c->block_index = i;
    return 0;
}

/* The refcount of a cluster; 0 past what the refcount table covers. */
static int refcount_of(resize_ctx *c, uint64_t cluster, uint64_t *ret)
{
    uint64_t i = cluster / c->per_block;
    int r;

    if (i >= c->reftable_entries) {
        *ret = 0;
        return 0;
    }
    r = load_block(c, i);
    if (r == 0)
        *ret = qcow2_refcount_get(c->block, cluster % c->per_block, c->h.refcount_order);
    return r;
}

/* Writes refcount block i, loaded in c->block and changed, back in place. */
static int store_block(resize_ctx *c, uint64_t i)
{
    int64_t off = refblock_offset(c, i);
    int r;

    if (off <= 0)
        return off < 0 ? (int)off : -EIO;
    r = img_pwrite_exact(c->fd, c->block, c->cs, (uint64_t)off);
    return r < 0 ? io_error(c, r, "writing a refcount block") : 0;
}

/* ---- finding clusters for the new L1 ---- */

/* Reftable entries of [first, end) that have no refcount block yet. */
static int count_missing_blocks(resize_ctx *c, uint64_t first, uint64_t end, uint64_t *ret)
{
    uint64_t lo = first / c->per_block, hi = (end - 1) / c->per_block, n = 0;

    if (hi >= c->reftable_entries)
        return img_errmsg(c->err, c->errlen, -ENOTSUP,
                          "%s: the refcount table (%" PRIu64
                          " entries) would have to grow; not supported yet",
                          c->path, c->reftable_entries);
    for (uint64_t i = lo; i <= hi; i++) {
        int64_t off = refblock_offset(c, i);

        if (off < 0)
            return (int)off;
        n += off == 0;
    }
    *ret = n;
    return 0;
}

/* The first cluster of [first, end) with a refcount, or end if none has. */
static int first_counted(resize_ctx *c, uint64_t first, uint64_t end, uint64_t *ret)
{
    for (uint64_t k = first; k < end; k++) {
        uint64_t v = 0;
        int r = refcount_of(c, k, &v);

        if (r < 0)
            return r;
        if (v != 0) {
            *ret = k;
            return 0;
        }
    }
    *ret = end;
    return 0;
}

/* A run of free clusters from the end of the file that holds the L1 table
 * and the refcount blocks that count it (and themselves). */
static int plan_run(resize_ctx *c, alloc_run *a)
{
    a->first = div_round_up(c->file_end, c->cs);
    a->data = div_round_up((uint64_t)c->new_l1_size * 8, c->cs);
    a->blocks = 0;
    for (int round = 0; round < ALLOC_MAX_ROUNDS; round++) {
        uint64_t end = a->first + a->data + a->blocks, missing = 0, used = end;
        int r = count_missing_blocks(c, a->first, end, &missing);

        if (r == 0)
            r = first_counted(c, a->first, end, &used);
        if (r < 0)
            return r;
        if (used < end) {
            a->first = used + 1;    /* counted but past the end: a leak; skip it */
            a->blocks = 0;
        }
        else if (missing > a->blocks)
            a->blocks = missing;
        else
            return 0;
    }
    return img_errmsg(c->err, c->errlen, -EIO, "%s: no free clusters found for the L1 table",
                      c->path);
}

/* ---- counting the run ---- */

/* Sets refcount 1 in c->block (block i) for every cluster of the run in it. */
static void count_run_in_block(resize_ctx *c, const alloc_run *a, uint64_t i)
{
    uint64_t end = a->first + a->data + a->blocks;
    uint64_t lo = i * c->per_block, hi = lo + c->per_block;

    for (uint64_t k = lo > a->first ? lo : a->first; k < end && k < hi; k++)
        qcow2_refcount_set(c->block, k - lo, c->h.refcount_order, 1);
}

/* New blocks take the clusters after the L1's, in reftable order; they are
 * written and synced before the table names them. */
static int write_new_blocks(resize_ctx *c, const alloc_run *a)
{
    uint64_t lo = a->first / c->per_block, next = a->first + a->data;
    uint64_t hi = (a->first + a->data + a->blocks - 1) / c->per_block;
    int r;

    for (uint64_t i = lo; i <= hi; i++) {
        if (c->reftable[i] != 0)
            continue;
        memset(c->block, 0, c->cs);
        count_run_in_block(c, a, i);
        c->block_index = UINT64_MAX;
        r = img_pwrite_exact(c->fd, c->block, c->cs, next++ * c->cs);
        if (r < 0)
            return io_error(c, r, "writing a refcount block");
    }
    return sync_file(c);
}

static int link_new_blocks(resize_ctx *c, const alloc_run *a)
{
    uint64_t lo = a->first / c->per_block, next = a->first + a->data;
    uint64_t hi = (a->first + a->data + a->blocks - 1) / c->per_block;

    for (uint64_t i = lo; i <= hi; i++) {
        uint8_t e[8];
        int r;

        if (c->reftable[i] != 0)
            continue;
        put_be64(e, next * c->cs);
        r = img_pwrite_exact(c->fd, e, sizeof(e), c->h.refcount_table_offset + i * 8);
        if (r < 0)
            return io_error(c, r, "writing the refcount table");
        c->reftable[i] = next++ * c->cs;
    }
    return 0;
}

/* The blocks that existed already count their part of the run. */
static int count_in_old_blocks(resize_ctx *c, const alloc_run *a, uint64_t lo, uint64_t hi,
                               const uint64_t *was)
{
    for (uint64_t i = lo; i <= hi; i++) {
        int r;

        if (was[i - lo] == 0)
            continue;
        r = load_block(c, i);
        if (r == 0) {
            count_run_in_block(c, a, i);
            r = store_block(c, i);
        }
        if (r < 0)
            return r;
    }
    return 0;
}

/* Extends the file over the run and counts every cluster of it, synced. */
static int count_run(resize_ctx *c, const alloc_run *a)
{
    uint64_t end = a->first + a->data + a->blocks;
    uint64_t lo = a->first / c->per_block, hi = (end - 1) / c->per_block;
    uint64_t *was = malloc((size_t)(hi - lo + 1) * sizeof(*was));
    int r;

    if (!was)
        return img_errmsg(c->err, c->errlen, -ENOMEM, "no memory");
    memcpy(was, c->reftable + lo, (size_t)(hi - lo + 1) * sizeof(*was));
    r = ftruncate(c->fd, (off_t)(end * c->cs)) < 0
            ? img_errmsg(c->err, c->errlen, -errno, "%s: cannot extend the file: %m", c->path)
            : 0;
    if (r == 0)
        c->file_end = end * c->cs;
    if (r == 0)
        r = write_new_blocks(c, a);
    if (r == 0)
        r = link_new_blocks(c, a);
    if (r == 0)
        r = count_in_old_blocks(c, a, lo, hi, was);
    free(was);
    return r == 0 ? sync_file(c) : r;
}

/* ---- the L1 table and the header ---- */

/* The old entries, then zeros to the end of the new table's clusters. */
static int write_new_l1(resize_ctx *c, const alloc_run *a)
{
    size_t bytes = (size_t)(a->data * c->cs), old = (size_t)c->h.l1_size * 8;
    uint8_t *t = calloc(1, bytes);
    int r;

    if (!t)
        return img_errmsg(c->err, c->errlen, -ENOMEM, "no memory");
    r = img_pread_exact(c->fd, t, old, c->h.l1_table_offset);
    if (r < 0)
        r = io_error(c, r, "reading the L1 table");
    else if ((r = img_pwrite_exact(c->fd, t, bytes, a->first * c->cs)) < 0)
        r = io_error(c, r, "writing the new L1 table");
    free(t);
    return r == 0 ? sync_file(c) : r;
}

/* size, crypt_method (0 once parsed), l1_size and l1_table_offset, as one
 * write of len bytes from offset 24: the image switches in one step. */
static int write_header_fields(resize_ctx *c, uint64_t l1_offset, size_t len)
{
    uint8_t b[HDR_L1_FIELDS_LEN] = { 0 };
    int r;

    put_be64(b, c->new_size);
    put_be32(b + 8, c->h.crypt_method);
    put_be32(b + 12, c->new_l1_size);
    put_be64(b + 16, l1_offset);
    r = img_pwrite_exact(c->fd, b, len, HDR_SIZE_OFFSET);
    if (r < 0)
        return io_error(c, r, "writing the header");
    return sync_file(c);
}

/* Uncounts the old L1 table's clusters, now referenced by nothing. */
static int free_old_l1(resize_ctx *c)
{
    uint64_t first = c->h.l1_table_offset / c->cs;
    uint64_t n = div_round_up((uint64_t)c->h.l1_size * 8, c->cs);

    for (uint64_t k = first; k < first + n; k++) {
        uint64_t i = k / c->per_block, v = 0;
        int r = refcount_of(c, k, &v);

        if (r < 0)
            return r;
        if (v == 0 || i >= c->reftable_entries)
            continue;    /* a leak is better than an underflow */
        qcow2_refcount_set(c->block, k % c->per_block, c->h.refcount_order, v - 1);
        r = store_block(c, i);
        if (r < 0)
            return r;
    }
    return sync_file(c);
}

static int grow_l1(resize_ctx *c)
{
    alloc_run a;
    int r = load_reftable(c);

    if (r == 0)
        r = plan_run(c, &a);
    if (r == 0)
        r = count_run(c, &a);
    if (r == 0)
        r = write_new_l1(c, &a);
    if (r == 0)
        r = write_header_fields(c, a.first * c->cs, HDR_L1_FIELDS_LEN);
    if (r == 0)
        r = free_old_l1(c);
    return r;
}

/* 1 when the new entries fit in the old L1's last cluster and read as
 * zeros there, so that l1_size can grow in place. */
static int l1_tail_is_free(resize_ctx *c)
{
    uint64_t old = (uint64_t)c->h.l1_size * 8, want = (uint64_t)c->new_l1_size * 8;
    uint8_t *tail;
    int r, ok = 0;

    if (div_round_up(want, c->cs) != div_round_up(old, c->cs))
        return 0;
    tail = malloc((size_t)(want - old));
    if (!tail)
        return img_errmsg(c->err, c->errlen, -ENOMEM, "no memory");
    r = img_pread_exact(c->fd, tail, (size_t)(want - old), c->h.l1_table_offset + old);
    if (r == 0) {
        ok = 1;
        for (uint64_t k = 0; k < want - old; k++)
            ok &= tail[k] == 0;
    }
    free(tail);
    return ok;
}

/* ---- checks ---- */

static int refuse_qcow2(resize_ctx *c)
{
    const qcow2_header *h = &c->h;

    if (h->incompatible_features & QCOW2_INCOMPAT_CORRUPT)
        return img_errmsg(c->err, c->errlen, -EACCES,
                          "%s: image is marked corrupt; refusing to resize it", c->path);
    if (h->incompatible_features & QCOW2_INCOMPAT_DIRTY)
        return img_errmsg(c->err, c->errlen, -EBUSY,
                          "%s: image is dirty (refcounts may be stale); check and repair "
                          "it before resizing",
                          c->path);
    if (h->nb_snapshots > 0)
        return img_errmsg(c->err, c->errlen, -ENOTSUP,
                          "%s: image has %" PRIu32 " internal snapshots; resizing it is not "
                          "supported",
                          c->path, h->nb_snapshots);
    if (h->has_bitmaps || (h->autoclear_features & QCOW2_AUTOCLEAR_BITMAPS))
        return img_errmsg(c->err, c->errlen, -ENOTSUP,
                          "%s: image has persistent bitmaps; resizing it is not supported",
                          c->path);
    if (c->new_size < h->size)
        return img_errmsg(c->err, c->errlen, -EINVAL,
                          "%s: %" PRIu64 " bytes is smaller than the image (%" PRIu64
                          "); shrinking is refused",
                          c->path, c->new_size, h->size);
    return 0;
}

static int plan_l1_size(resize_ctx *c)
{
    uint64_t span = UINT64_C(1) << (2 * c->h.cluster_bits - 3);    /* one L2 table maps */
    uint64_t entries = div_round_up(c->new_size, span);

    if (entries > QCOW2_MAX_L1_BYTES / 8)
        return img_errmsg(c->err, c->errlen, -EFBIG,
                          "%s: %" PRIu64 " bytes needs an L1 table of %" PRIu64
                          " entries with %" PRIu64 "-byte clusters (at most %u)",
                          c->path, c->new_size, entries, c->cs, QCOW2_MAX_L1_BYTES / 8);
    c->new_l1_size = entries > c->h.l1_size ? (uint32_t)entries : c->h.l1_size;
    return 0;
}

static int resize_qcow2(resize_ctx *c)
{
    char msg[MSG_MAX] = "";
    int r = qcow2_read_header(c->fd, c->file_end, &c->h, msg, sizeof(msg));

    if (r < 0)
        return img_errmsg(c->err, c->errlen, r, "%s: %s", c->path, msg);
    c->cs = c->h.cluster_size;
    r = refuse_qcow2(c);
    if (r == 0)
        r = plan_l1_size(c);
    if (r < 0 || c->new_size == c->h.size)
        return r;
    if (c->new_l1_size == c->h.l1_size)
        return write_header_fields(c, c->h.l1_table_offset, sizeof(uint64_t));
    r = l1_tail_is_free(c);
    if (r < 0)
        return r;
    if (r == 1)
        return write_header_fields(c, c->h.l1_table_offset, HDR_SIZE_L1_SIZE_LEN);
    return grow_l1(c);
}

static int resize_raw(resize_ctx *c)
{
    if (c->new_size < c->file_end)
        return img_errmsg(c->err, c->errlen, -EINVAL,
                          "%s: %" PRIu64 " bytes is smaller than the image (%" PRIu64
                          "); shrinking is refused",
                          c->path, c->new_size, c->file_end);
    if (c->new_size == c->file_end)
        return 0;
    if (ftruncate(c->fd, (off_t)c->new_size) < 0)
        return img_errmsg(c->err, c->errlen, -errno, "%s: cannot extend to %" PRIu64
                          " bytes: %m", c->path, c->new_size);
    return sync_file(c);
}

static int open_target(resize_ctx *c)
{
    struct stat st;

    c->fd = open(c->path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (c->fd < 0)
        return img_errmsg(c->err, c->errlen, -errno, "%s: %m", c->path);
    if (fstat(c->fd, &st) < 0)
        return img_errmsg(c->err, c->errlen, -errno, "%s: %m", c->path);
    if (!S_ISREG(st.st_mode))
        return img_errmsg(c->err, c->errlen, -EINVAL, "%s: not a regular file", c->path);
    c->file_end = (uint64_t)st.st_size;
    return 0;
}

int img_resize(const char *path, img_format format, uint64_t new_size, char *err, size_t errlen)
{
    resize_ctx c = { .path = path, .fd = -1, .err = err, .errlen = errlen };
    int r;

    if (!path || !img_format_name(format))
        return img_errmsg(err, errlen, -EINVAL, "invalid arguments");
    if (new_size > QCOW2_MAX_VIRTUAL_SIZE)
        return img_errmsg(err, errlen, -EFBIG,
                          "%s: size %" PRIu64 " too large (at most 2^61 bytes)", path, new_size);
    c.new_size = (new_size + SIZE_ALIGN - 1) & ~(uint64_t)(SIZE_ALIGN - 1);
    r = open_target(&c);
    if (r == 0)
        r = format == IMG_FORMAT_RAW ? resize_raw(&c) : resize_qcow2(&c);
    if (c.fd >= 0)
        close(c.fd);
    free(c.reftable);
    free(c.block);
    return r;
}
