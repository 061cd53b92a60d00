/* qcow2_build.c: header cluster and refcount structures of new images. */
#include "qcow2_build.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bytes.h"
#include "errmsg.h"
#include "layer.h"
#include "qcow2_header.h"
#include "refcount.h"

#define EXT_HEADER_LEN 8u

static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static uint64_t div_round_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

size_t qcow2_new_header_bytes(const qcow2_new_header *n)
{
    size_t b = QCOW2_NEW_HEADER_LENGTH + EXT_HEADER_LEN;    /* header, end marker */

    if (n->backing)
        b += EXT_HEADER_LEN + pad8(strlen(img_format_name(n->backing_format))) +
             strlen(n->backing);
    return b;
}

/* The extensions from offset 112: the backing format if there is a backing
 * file, then the end marker; the backing name follows them. Returns where
 * the name goes. */
static size_t put_extensions(uint8_t *b, const qcow2_new_header *n)
{
    size_t off = QCOW2_NEW_HEADER_LENGTH;

    if (n->backing) {
        const char *fmt = img_format_name(n->backing_format);
        size_t len = strlen(fmt);

        put_be32(b + off, QCOW2_EXT_BACKING_FORMAT);
        put_be32(b + off + 4, (uint32_t)len);
        memcpy(b + off + EXT_HEADER_LEN, fmt, len);
        off += EXT_HEADER_LEN + pad8(len);
    }
    put_be32(b + off, QCOW2_EXT_END);
    put_be32(b + off + 4, 0);
    return off + EXT_HEADER_LEN;
}

/* compression_type (byte 104) stays 0, zlib, and no feature bit is set. */
void qcow2_new_header_build(uint8_t *b, const qcow2_new_header *n)
{
    size_t name_off = put_extensions(b, n);

    put_be32(b, QCOW2_MAGIC);
    put_be32(b + 4, QCOW2_NEW_VERSION);
    if (n->backing) {
        size_t len = strlen(n->backing);

        memcpy(b + name_off, n->backing, len);
        put_be64(b + 8, name_off);
        put_be32(b + 16, (uint32_t)len);
    }
    put_be32(b + 20, n->cluster_bits);
    put_be64(b + 24, n->size);
    put_be32(b + 36, n->l1_size);
    put_be64(b + 40, n->l1_offset);
    put_be64(b + 48, n->reftable_offset);
    put_be32(b + 56, n->reftable_clusters);
    put_be32(b + 96, QCOW2_NEW_REFCOUNT_ORDER);
    put_be32(b + 100, QCOW2_NEW_HEADER_LENGTH);
}

int64_t qcow2_l1_entries_for(uint64_t size, unsigned cluster_bits)
{
    unsigned span_bits = 2 * cluster_bits - 3;    /* guest bytes one L2 table maps */
    uint64_t entries = div_round_up(size, UINT64_C(1) << span_bits);

    if (entries == 0)
        entries = 1;
    return entries > QCOW2_MAX_L1_BYTES / 8 ? -EFBIG : (int64_t)entries;
}

static int write_table(int fd, uint64_t cs, uint64_t blocks_offset, uint64_t blocks,
                       uint64_t table_offset)
{
    size_t bytes = (size_t)blocks * 8;    /* callers keep it within the reftable bound */
    uint8_t *t = malloc(bytes);
    int r;

    if (!t)
        return -ENOMEM;
    for (uint64_t i = 0; i < blocks; i++)
        put_be64(t + i * 8, blocks_offset + i * cs);
    r = img_pwrite_exact(fd, t, bytes, table_offset);
    free(t);
    return r;
}

int qcow2_write_refcounts(int fd, unsigned cluster_bits, uint64_t total, uint64_t blocks_offset,
                          uint64_t blocks, uint64_t table_offset)
{
    const unsigned order = QCOW2_NEW_REFCOUNT_ORDER;
    uint64_t cs = UINT64_C(1) << cluster_bits, per_block = qcow2_refblock_entries(cluster_bits, order);
    uint8_t *b = malloc(cs);
    int r = 0;

    if (!b)
        return -ENOMEM;
    for (uint64_t i = 0; i < blocks && r == 0; i++) {
        uint64_t first = i * per_block, n = total > first ? total - first : 0;

        if (n > per_block)
            n = per_block;
        if (n == 0)
            break;
        memset(b, 0, cs);
        for (uint64_t c = 0; c < n; c++)
            qcow2_refcount_set(b, c, order, 1);
        r = img_pwrite_exact(fd, b, (size_t)div_round_up(n << order, 8), blocks_offset + i * cs);
    }
    free(b);
    return r < 0 ? r : write_table(fd, cs, blocks_offset, blocks, table_offset);
}

static int write_l1(int fd, const uint64_t *l1, uint32_t entries, uint64_t offset)
{
    size_t bytes = (size_t)entries * 8;
    uint8_t *be = malloc(bytes);
    int r;

    if (!be)
        return -ENOMEM;
    for (uint32_t i = 0; i < entries; i++)
        put_be64(be + (size_t)i * 8, l1[i]);
    r = img_pwrite_exact(fd, be, bytes, offset);
    free(be);
    return r;
}

static int write_header(int fd, const qcow2_new_header *h)
{
    uint8_t *b = calloc(1, (size_t)1 << h->cluster_bits);
    int r;

    if (!b)
        return -ENOMEM;
    qcow2_new_header_build(b, h);
    r = img_pwrite_exact(fd, b, qcow2_new_header_bytes(h), 0);
    free(b);
    return r;
}

int qcow2_append_finish(int fd, const qcow2_new_header *h, const uint64_t *l1, uint64_t clusters,
                        const char *path, char *err, size_t errlen)
{
    qcow2_new_header n = *h;
    qcow2_refcount_layout lay;
    uint64_t total, reftable;
    int r = qcow2_refcount_layout_for(h->cluster_bits, QCOW2_NEW_REFCOUNT_ORDER, clusters, &lay);

    if (r < 0)
        return img_errmsg(err, errlen, r, "%s: refcount table too large", path);
    total = clusters + lay.blocks + lay.table_clusters;
    reftable = (clusters + lay.blocks) << h->cluster_bits;
    n.l1_offset = UINT64_C(1) << h->cluster_bits;
    n.reftable_offset = reftable;
    n.reftable_clusters = (uint32_t)lay.table_clusters;
    if (ftruncate(fd, (off_t)(total << h->cluster_bits)) < 0)
        return img_errmsg(err, errlen, -errno, "%s: %m", path);
    if ((r = qcow2_write_refcounts(fd, h->cluster_bits, total, clusters << h->cluster_bits,
                                   lay.blocks, reftable)) == 0 &&
        (r = write_l1(fd, l1, h->l1_size, n.l1_offset)) == 0)
        r = write_header(fd, &n);
    if (r < 0)
        return img_errmsg(err, errlen, r, "%s: writing the image's metadata: %s", path, strerror(-r));
    return 0;
}
