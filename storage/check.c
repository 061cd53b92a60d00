/* check.c: img_check, the consistency check of a qcow2 image's refcounts.
 * Every reference the image makes is counted per host cluster (header,
 * refcount table and blocks, active and snapshot L1 and L2 tables, data and
 * compressed clusters, snapshot table, persistent bitmaps) and compared with
 * the stored refcounts, and the COPIED flags of the active tables with the
 * stored refcounts, as qemu-img check does and with its counts: a cluster
 * whose refcount is above its references is one leak, below them one
 * corruption; each malformed entry and each wrong COPIED flag is one
 * corruption. Nothing is written. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errmsg.h"
#include "layer.h"
#include "map.h"
#include "qcow2_header.h"
#include "refcount.h"
#include "storage.h"

/* References are counted in 4 bytes per host cluster: at most 1 GiB. */
#define CHECK_MAX_CLUSTERS (UINT64_C(1) << 28)
#define SNAPSHOT_FIXED_LEN 40u
#define SNAPSHOT_TABLE_MAX (UINT64_C(1024) * QCOW2_MAX_SNAPSHOTS)   /* as QEMU */
#define BITMAP_ENTRY_FIXED_LEN 24u
#define BITMAP_DIRECTORY_MAX (UINT64_C(1024) * 65535)                /* as QEMU */
#define BITMAP_TABLE_OFFSET_MASK UINT64_C(0x00fffffffffffe00)
#define BITMAP_TABLE_RESERVED_MASK UINT64_C(0xff000000000001fe)
#define BITMAP_TABLE_ALL_ONES UINT64_C(1)
#define MSG_MAX 512

typedef enum refblock_state {
    REFBLOCK_NONE,                /* no block: refcounts 0 */
    REFBLOCK_LOADED,
    REFBLOCK_BAD,                 /* an invalid entry: refcounts unknown */
} refblock_state;

typedef struct check_ctx {
    int fd;
    uint64_t file_end;
    qcow2_header h;
    unsigned cb;                  /* cluster bits */
    uint64_t cs;                  /* cluster size */
    uint64_t nclusters;           /* host clusters in the file, the last one partial */
    uint32_t *refs;               /* references counted, per host cluster, saturating */
    uint64_t *reftable;           /* host order */
    uint64_t reftable_entries;
    uint64_t per_block;           /* refcount entries per block */
    uint64_t nblocks;             /* reftable entries that count clusters of the file */
    uint8_t **blocks;             /* [nblocks]: the stored blocks, as on disk */
    uint8_t *block_state;         /* [nblocks]: refblock_state */
    uint64_t *l2;                 /* one L2 table */
    unsigned csize_shift;         /* compressed cluster descriptors */
    uint64_t csize_mask;
    uint64_t coffset_mask;
    img_check_result res;
    bool reported;                /* first_problem holds a problem */
} check_ctx;

static uint32_t be32_at(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64_at(const uint8_t *p)
{
    return (uint64_t)be32_at(p) << 32 | be32_at(p + 4);
}

static uint64_t pad8(uint64_t n)
{
    return (n + 7) & ~UINT64_C(7);
}

/* ---- problems ---- */

static void note(check_ctx *c, const char *text)
{
    size_t n = strlen(c->res.first_problem);

    snprintf(c->res.first_problem + n, sizeof(c->res.first_problem) - n, "%s%s",
             n ? "; " : "", text);
}

static void report(check_ctx *c, uint64_t *counter, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void report(check_ctx *c, uint64_t *counter, const char *fmt, va_list ap)
{
    char text[sizeof(c->res.first_problem)];

    (*counter)++;
    if (c->reported)
        return;
    c->reported = true;
    vsnprintf(text, sizeof(text), fmt, ap);
    note(c, text);
}

static void corruption(check_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void corruption(check_ctx *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    report(c, &c->res.corruptions, fmt, ap);
    va_end(ap);
}

static void leak(check_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void leak(check_ctx *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    report(c, &c->res.leaked_clusters, fmt, ap);
    va_end(ap);
}

/* ---- references ---- */

/* Counts a reference to every cluster that bytes [off, off + len) touch.
 * Clusters past the end of the file are a corruption and not counted. */
static void ref_range(check_ctx *c, uint64_t off, uint64_t len, const char *what)
{
    uint64_t last_byte, first, last;

    if (len == 0)
        return;
    if (__builtin_add_overflow(off, len - 1, &last_byte)) {
        corruption(c, "%s at 0x%" PRIx64 " (%" PRIu64 " bytes) overflows", what, off, len);
        return;
    }
    first = off >> c->cb;
    last = last_byte >> c->cb;
    if (last >= c->nclusters) {
        corruption(c, "%s at 0x%" PRIx64 " (%" PRIu64 " bytes) extends past the end of the file",
                   what, off, len);
        if (first >= c->nclusters)
            return;
        last = c->nclusters - 1;
    }
    for (uint64_t k = first; k <= last; k++)
        if (c->refs[k] < UINT32_MAX)
            c->refs[k]++;
}

/* The stored refcount of a cluster; false when its refcount block is
 * invalid and the refcount unknown. Blocks that only count clusters past
 * the end of the file are not loaded: their clusters read as refcount 0. */
static bool stored_refcount(const check_ctx *c, uint64_t cluster, uint64_t *ret)
{
    uint64_t i = cluster / c->per_block;

    *ret = 0;
    if (i >= c->nblocks || c->block_state[i] == REFBLOCK_NONE)
        return true;
    if (c->block_state[i] == REFBLOCK_BAD)
        return false;
    *ret = qcow2_refcount_get(c->blocks[i], cluster % c->per_block, c->h.refcount_order);
    return true;
}

/* The COPIED flag of an active L1 or L2 entry must be set exactly when the
 * cluster it points at has refcount 1. */
static void check_copied(check_ctx *c, uint64_t entry, uint64_t host, const char *what,
                         uint64_t index)
{
    uint64_t cluster = host >> c->cb, refcount;
    bool copied = entry & QCOW2_OFLAG_COPIED;

    if (!stored_refcount(c, cluster, &refcount))
        return;
    if ((refcount == 1) != copied)
        corruption(c, "%s %" PRIu64 " (0x%016" PRIx64 "): COPIED flag %s but refcount %" PRIu64,
                   what, index, entry, copied ? "set" : "clear", refcount);
}

/* Reads len bytes of a table at off; what lies past the end of the file
 * reads as zeros. -ERANGE when the table starts past it. */
static int read_table(const check_ctx *c, void *buf, uint64_t len, uint64_t off)
{
    uint64_t n;
    int r;

    if (off >= c->file_end)
        return -ERANGE;
    n = c->file_end - off < len ? c->file_end - off : len;
    r = img_pread_exact(c->fd, buf, (size_t)n, off);
    if (r < 0)
        return r;
    memset((uint8_t *)buf + n, 0, (size_t)(len - n));
    return 0;
}

/* ---- L1 and L2 tables ---- */

static void count_compressed(check_ctx *c, uint64_t e, bool active)
{
    uint64_t coff = e & c->coffset_mask;
    uint64_t sectors = ((e >> c->csize_shift) & c->csize_mask) + 1;
    uint64_t csize = sectors * QCOW2_COMPRESSED_SECTOR - (coff & (QCOW2_COMPRESSED_SECTOR - 1));

    if (e & QCOW2_OFLAG_COPIED)
        corruption(c, "compressed cluster at 0x%" PRIx64 " has the COPIED flag set", coff);
    /* A compressed cluster may straddle two host clusters: both are referenced. */
    ref_range(c, coff, csize, "compressed cluster");
    if (active) {
        c->res.allocated_clusters++;
        c->res.fragmented_clusters++;    /* as qemu-img counts them */
    }
}

/* A standard L2 entry; next is where a contiguous data cluster would be. */
static void count_standard(check_ctx *c, uint64_t l2_off, uint64_t j, uint64_t e, bool active,
                           uint64_t *next)
{
    uint64_t host = e & QCOW2_L2E_OFFSET_MASK;

    if (e & QCOW2_L2E_STD_RESERVED_MASK)
        corruption(c, "L2 table 0x%" PRIx64 " entry %" PRIu64 " (0x%016" PRIx64
                   ") has reserved bits set", l2_off, j, e);
    if ((e & QCOW2_OFLAG_ZERO) && c->h.version < 3)
        corruption(c, "L2 table 0x%" PRIx64 " entry %" PRIu64
                   " has the zero flag in a version 2 image", l2_off, j);
    if (host == 0)
        return;    /* unallocated, or a zero cluster without a host cluster */
    ref_range(c, host, c->cs, "data cluster");
    if (active) {
        c->res.allocated_clusters++;
        if (*next && host != *next)
            c->res.fragmented_clusters++;
        *next = host + c->cs;
        check_copied(c, e, host, "data cluster of L2 entry", j);
    }
    if (host & (c->cs - 1))
        corruption(c, "L2 table 0x%" PRIx64 " entry %" PRIu64 ": data cluster 0x%" PRIx64
                   " is not cluster-aligned", l2_off, j, host);
}

static int walk_l2(check_ctx *c, uint64_t l2_off, bool active)
{
    uint64_t entries = c->cs / 8, next = 0;
    int r = read_table(c, c->l2, c->cs, l2_off);

    if (r == -ERANGE)
        return 0;    /* past the end of the file: counted as a corruption */
    if (r < 0)
        return r;
    for (uint64_t j = 0; j < entries; j++) {
        uint64_t e = be64toh(c->l2[j]);

        if (e & QCOW2_OFLAG_COMPRESSED)
            count_compressed(c, e, active);
        else
            count_standard(c, l2_off, j, e, active, &next);
    }
    return 0;
}

static int walk_l1_entry(check_ctx *c, uint64_t i, uint64_t e, bool active)
{
    uint64_t l2_off = e & QCOW2_L1E_OFFSET_MASK;

    if (e & QCOW2_L1E_RESERVED_MASK)
        corruption(c, "L1 entry %" PRIu64 " (0x%016" PRIx64 ") has reserved bits set", i, e);
    if (l2_off == 0)
        return 0;
    ref_range(c, l2_off, c->cs, "L2 table");
    if (active)
        check_copied(c, e, l2_off, "L2 table of L1 entry", i);
    if (l2_off & (c->cs - 1)) {
        corruption(c, "L1 entry %" PRIu64 ": L2 table 0x%" PRIx64 " is not cluster-aligned", i,
                   l2_off);
        return 0;
    }
    return walk_l2(c, l2_off, active);
}

/* An L1 table (l1_size bounded by the caller) and everything it maps. */
static int walk_l1(check_ctx *c, uint64_t l1_off, uint32_t l1_size, bool active)
{
    uint64_t bytes = (uint64_t)l1_size * 8;
    uint64_t *l1;
    int r;

    ref_range(c, l1_off, bytes, "L1 table");
    if (bytes == 0)
        return 0;
    l1 = malloc((size_t)bytes);
    if (!l1)
        return -ENOMEM;
    r = read_table(c, l1, bytes, l1_off);
    for (uint64_t i = 0; r == 0 && i < l1_size; i++) {
        uint64_t e = be64toh(l1[i]);

        if (e != 0)
            r = walk_l1_entry(c, i, e, active);
    }
    free(l1);
    return r == -ERANGE ? 0 : r;
}

/* ---- snapshots ---- */

/* One snapshot table entry at off: its L1 table is walked; its length is
 * returned in len. */
static int walk_snapshot(check_ctx *c, uint32_t n, uint64_t off, uint64_t *len)
{
    uint8_t e[SNAPSHOT_FIXED_LEN];
    uint64_t l1_off;
    uint32_t l1_size;
    int r = img_pread_exact(c->fd, e, sizeof(e), off);

    if (r < 0)
        return r;
    l1_off = be64_at(e);
    l1_size = be32_at(e + 8);
    *len = pad8(SNAPSHOT_FIXED_LEN + (uint64_t)be32_at(e + 36) + ((uint32_t)e[12] << 8 | e[13]) +
                ((uint32_t)e[14] << 8 | e[15]));
    if (l1_off & (c->cs - 1)) {
        corruption(c, "snapshot %" PRIu32 ": L1 table 0x%" PRIx64 " is not cluster-aligned", n,
                   l1_off);
        return 0;
    }
    if (l1_size > QCOW2_MAX_L1_BYTES / 8) {
        corruption(c, "snapshot %" PRIu32 ": L1 table too large (%" PRIu32 " entries)", n,
                   l1_size);
        return 0;
    }
    return walk_l1(c, l1_off, l1_size, false);
}

/* The snapshot table (its entries have variable length) and each
 * snapshot's L1 table and what it maps. */
static int walk_snapshots(check_ctx *c)
{
    uint64_t start = c->h.snapshots_offset, off = start;

    for (uint32_t n = 0; n < c->h.nb_snapshots; n++) {
        uint64_t len = 0;
        int r;

        if (off - start > SNAPSHOT_TABLE_MAX || off > c->file_end ||
            c->file_end - off < SNAPSHOT_FIXED_LEN) {
            corruption(c, "snapshot table: entry %" PRIu32 " at 0x%" PRIx64
                       " is past the end of the file or the table's bound", n, off);
            break;
        }
        r = walk_snapshot(c, n, off, &len);
        if (r < 0)
            return r;
        off += len;
    }
    ref_range(c, start, off - start, "snapshot table");
    return 0;
}

/* ---- persistent bitmaps ---- */

static int walk_bitmap_table(check_ctx *c, uint64_t off, uint32_t entries)
{
    uint64_t per_read = c->cs / 8;

    ref_range(c, off, (uint64_t)entries * 8, "bitmap table");
    if (off & (c->cs - 1)) {
        corruption(c, "bitmap table 0x%" PRIx64 " is not cluster-aligned", off);
        return 0;
    }
    for (uint64_t i = 0; i < entries; i += per_read) {
        uint64_t n = entries - i < per_read ? entries - i : per_read;
        int r = read_table(c, c->l2, n * 8, off + i * 8);

        if (r == -ERANGE)
            return 0;
        if (r < 0)
            return r;
        for (uint64_t k = 0; k < n; k++) {
            uint64_t e = be64toh(c->l2[k]), data = e & BITMAP_TABLE_OFFSET_MASK;

            if ((e & BITMAP_TABLE_RESERVED_MASK) || (data && (e & BITMAP_TABLE_ALL_ONES)))
                corruption(c, "bitmap table 0x%" PRIx64 " entry %" PRIu64
                           " (0x%016" PRIx64 ") is invalid", off, i + k, e);
            else if (data)
                ref_range(c, data, c->cs, "bitmap data cluster");
        }
    }
    return 0;
}

static int walk_bitmap_directory(check_ctx *c, const uint8_t *dir, uint64_t size)
{
    uint64_t off = 0;

    for (uint32_t n = 0; n < c->h.nb_bitmaps; n++) {
        const uint8_t *e = dir + off;
        int r;

        if (size - off < BITMAP_ENTRY_FIXED_LEN) {
            corruption(c, "bitmap directory: entry %" PRIu32 " runs past its end", n);
            return 0;
        }
        r = walk_bitmap_table(c, be64_at(e), be32_at(e + 8));
        if (r < 0)
            return r;
        off += pad8(BITMAP_ENTRY_FIXED_LEN + (uint64_t)be32_at(e + 20) +
                    ((uint32_t)e[18] << 8 | e[19]));
        if (off > size)
            off = size;
    }
    return 0;
}

/* The bitmaps extension counts only while its autoclear bit is set: QEMU
 * ignores it otherwise, and its clusters are leaks. */
static int walk_bitmaps(check_ctx *c)
{
    uint64_t off = c->h.bitmap_directory_offset, size = c->h.bitmap_directory_size;
    uint8_t *dir;
    int r;

    if (!c->h.has_bitmaps || !(c->h.autoclear_features & QCOW2_AUTOCLEAR_BITMAPS))
        return 0;
    ref_range(c, off, size, "bitmap directory");
    if ((off & (c->cs - 1)) || size > BITMAP_DIRECTORY_MAX) {
        corruption(c, "bitmap directory at 0x%" PRIx64 " (%" PRIu64
                   " bytes) is unaligned or too large", off, size);
        return 0;
    }
    if (size == 0)
        return 0;
    dir = malloc((size_t)size);
    if (!dir)
        return -ENOMEM;
    r = read_table(c, dir, size, off);
    if (r == 0)
        r = walk_bitmap_directory(c, dir, size);
    free(dir);
    return r == -ERANGE ? 0 : r;
}

/* ---- refcount structures ---- */

/* A refcount table entry: the block's offset, 0 for none; -EINVAL for an
 * invalid entry, with its problem in why. */
static int64_t refblock_offset(const check_ctx *c, uint64_t e, const char **why)
{
    uint64_t off = e & QCOW2_REFT_OFFSET_MASK;

    if (e & QCOW2_REFT_RESERVED_MASK)
        *why = "has reserved bits set";
    else if (off & (c->cs - 1))
        *why = "is not cluster-aligned";
    else if ((off >> c->cb) >= c->nclusters)
        *why = "points past the end of the file";
    else
        return (int64_t)off;
    return -EINVAL;
}

static int load_refblock(check_ctx *c, uint64_t i)
{
    const char *why = NULL;
    int64_t off = refblock_offset(c, c->reftable[i], &why);
    int r;

    if (off < 0) {
        corruption(c, "refcount table entry %" PRIu64 " (0x%016" PRIx64 ") %s", i,
                   c->reftable[i], why);
        if (i < c->nblocks)
            c->block_state[i] = REFBLOCK_BAD;
        return 0;
    }
    if (off == 0 || i >= c->nblocks)
        return 0;
    c->blocks[i] = malloc(c->cs);
    if (!c->blocks[i])
        return -ENOMEM;
    r = read_table(c, c->blocks[i], c->cs, (uint64_t)off);
    if (r < 0)
        return r;
    c->block_state[i] = REFBLOCK_LOADED;
    return 0;
}

static int load_refcounts(check_ctx *c)
{
    uint64_t bytes = (uint64_t)c->h.refcount_table_clusters * c->cs;    /* <= 8 MiB */
    int r;

    c->reftable_entries = bytes / 8;
    c->per_block = qcow2_refblock_entries(c->cb, c->h.refcount_order);
    c->nblocks = (c->nclusters + c->per_block - 1) / c->per_block;
    if (c->nblocks > c->reftable_entries)
        c->nblocks = c->reftable_entries;
    c->reftable = malloc((size_t)bytes);
    c->blocks = calloc((size_t)c->nblocks + 1, sizeof(*c->blocks));
    c->block_state = calloc((size_t)c->nblocks + 1, 1);
    if (!c->reftable || !c->blocks || !c->block_state)
        return -ENOMEM;
    r = img_pread_exact(c->fd, c->reftable, (size_t)bytes, c->h.refcount_table_offset);
    for (uint64_t i = 0; r == 0 && i < c->reftable_entries; i++) {
        c->reftable[i] = be64toh(c->reftable[i]);
        r = load_refblock(c, i);
    }
    return r;
}

/* Refcount blocks are counted last: each must be referenced exactly once,
 * by the refcount table, and by nothing else. */
static void ref_refblocks(check_ctx *c)
{
    for (uint64_t i = 0; i < c->reftable_entries; i++) {
        const char *why = NULL;
        int64_t off = refblock_offset(c, c->reftable[i], &why);
        uint64_t cluster;

        if (off <= 0)
            continue;
        cluster = (uint64_t)off >> c->cb;
        ref_range(c, (uint64_t)off, c->cs, "refcount block");
        if (c->refs[cluster] != 1)
            corruption(c, "refcount block %" PRIu64 " (0x%" PRIx64 ") is referenced %" PRIu32
                       " times", i, (uint64_t)off, c->refs[cluster]);
    }
}

static void compare_refcounts(check_ctx *c)
{
    for (uint64_t k = 0; k < c->nclusters; k++) {
        uint64_t stored;

        if (!stored_refcount(c, k, &stored) || stored == c->refs[k])
            continue;
        if (stored < c->refs[k])
            corruption(c, "cluster %" PRIu64 " (0x%" PRIx64 ") has refcount %" PRIu64
                       " but %" PRIu32 " references", k, k << c->cb, stored, c->refs[k]);
        else
            leak(c, "cluster %" PRIu64 " (0x%" PRIx64 ") leaked: refcount %" PRIu64
                 ", %" PRIu32 " references", k, k << c->cb, stored, c->refs[k]);
    }
}

/* ---- the check ---- */

static int count_references(check_ctx *c)
{
    int r;

    ref_range(c, 0, c->cs, "header");
    r = walk_l1(c, c->h.l1_table_offset, c->h.l1_size, true);
    if (r == 0)
        r = walk_snapshots(c);
    if (r == 0)
        r = walk_bitmaps(c);
    if (r < 0)
        return r;
    ref_range(c, c->h.refcount_table_offset, (uint64_t)c->h.refcount_table_clusters * c->cs,
              "refcount table");
    ref_refblocks(c);
    return 0;
}

static int setup(check_ctx *c, const char *path, char *err, size_t errlen)
{
    char msg[MSG_MAX] = "";
    int r = qcow2_read_header(c->fd, c->file_end, &c->h, msg, sizeof(msg));

    if (r < 0)
        return img_errmsg(err, errlen, r, "%s: %s", path, msg);
    c->cb = c->h.cluster_bits;
    c->cs = c->h.cluster_size;
    c->nclusters = (c->file_end + c->cs - 1) >> c->cb;
    if (c->nclusters > CHECK_MAX_CLUSTERS)
        return img_errmsg(err, errlen, -EFBIG,
                          "%s: too large to check (%" PRIu64 " clusters, at most %" PRIu64 ")",
                          path, c->nclusters, CHECK_MAX_CLUSTERS);
    c->csize_shift = 62 - (c->cb - 8);
    c->csize_mask = (UINT64_C(1) << (c->cb - 8)) - 1;
    c->coffset_mask = (UINT64_C(1) << c->csize_shift) - 1;
    c->refs = calloc((size_t)c->nclusters, sizeof(*c->refs));
    c->l2 = malloc(c->cs);
    if (!c->refs || !c->l2)
        return img_errmsg(err, errlen, -ENOMEM, "%s: no memory", path);
    if (c->h.incompatible_features & QCOW2_INCOMPAT_DIRTY)
        note(c, "image is dirty (lazy refcounts): stored refcounts may be stale");
    if (c->h.incompatible_features & QCOW2_INCOMPAT_CORRUPT)
        note(c, "image is marked corrupt");
    return 0;
}

static int run_check(check_ctx *c, const char *path, char *err, size_t errlen)
{
    int r = setup(c, path, err, errlen);

    if (r < 0)
        return r;
    r = load_refcounts(c);
    if (r == 0)
        r = count_references(c);
    if (r < 0)
        return img_errmsg(err, errlen, r, "%s: %s", path, strerror(-r));
    compare_refcounts(c);
    return 0;
}

static int open_image(check_ctx *c, const char *path, char *err, size_t errlen)
{
    struct stat st;
    uint64_t bytes;

    /* O_NONBLOCK: a FIFO must not hang the open; regular files and block
     * devices ignore it for reads. */
    c->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (c->fd < 0)
        return img_errmsg(err, errlen, -errno, "%s: %m", path);
    if (fstat(c->fd, &st) < 0)
        return img_errmsg(err, errlen, -errno, "%s: %m", path);
    if (S_ISREG(st.st_mode)) {
        c->file_end = (uint64_t)st.st_size;
        return 0;
    }
    if (!S_ISBLK(st.st_mode))
        return img_errmsg(err, errlen, -EINVAL, "%s: not a regular file or block device", path);
    if (ioctl(c->fd, BLKGETSIZE64, &bytes) < 0)
        return img_errmsg(err, errlen, -errno, "%s: cannot size the block device: %m", path);
    c->file_end = bytes;
    return 0;
}

static void free_ctx(check_ctx *c)
{
    for (uint64_t i = 0; c->blocks && i < c->nblocks; i++)
        free(c->blocks[i]);
    free(c->blocks);
    free(c->block_state);
    free(c->reftable);
    free(c->refs);
    free(c->l2);
    if (c->fd >= 0)
        close(c->fd);
}

int img_check(const char *path, img_check_result *ret, char *err, size_t errlen)
{
    check_ctx c = { .fd = -1 };
    int r;

    if (!path || !ret)
        return img_errmsg(err, errlen, -EINVAL, "invalid arguments");
    r = open_image(&c, path, err, errlen);
    if (r == 0)
        r = run_check(&c, path, err, errlen);
    if (r == 0)
        *ret = c.res;
    free_ctx(&c);
    return r;
}
