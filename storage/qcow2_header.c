/* qcow2_header.c: parsing and validation of the qcow2 header cluster, after
 * docs/interop/qcow2.rst. Nothing here trusts a field before checking it:
 * offsets are compared against the file size with overflow-safe arithmetic
 * and counts against fixed bounds before anything is sized from them. */
#include "qcow2_header.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "errmsg.h"

#define FEATURE_NAME_LEN 46u
#define FEATURE_ENTRY_LEN 48u
#define INCOMPAT_KNOWN                                                                   \
    (QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT | QCOW2_INCOMPAT_DATA_FILE |          \
     QCOW2_INCOMPAT_COMPRESSION | QCOW2_INCOMPAT_EXTL2)
#define COMPRESSION_TYPE_OFFSET 104u
#define COMPRESSION_DEFLATE 0u
#define COMPRESSION_ZSTD 1u
#define SNAPSHOT_ENTRY_MIN 40u
#define BITMAPS_EXT_LEN 24u

/* Names the image gives its incompatible features, for messages about bits
 * this reader does not know. */
typedef struct feature_names {
    char incompat[64][FEATURE_NAME_LEN + 1];
} feature_names;

static uint32_t be32_at(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64_at(const uint8_t *p)
{
    return (uint64_t)be32_at(p) << 32 | be32_at(p + 4);
}

size_t qcow2_header_bytes_wanted(const void *buf, size_t len)
{
    const uint8_t *b = buf;
    uint32_t bits;

    if (len < 24 || be32_at(b) != QCOW2_MAGIC)
        return len;
    bits = be32_at(b + 20);
    if (bits < QCOW2_MIN_CLUSTER_BITS || bits > QCOW2_MAX_CLUSTER_BITS)
        return len;
    return (size_t)1 << bits;
}

/* The v3 fields past the v2 header, or their v2 defaults. */
static int parse_v3_fields(const uint8_t *b, qcow2_header *h, char *err, size_t errlen)
{
    if (h->version == 2) {
        h->refcount_order = 4;
        h->header_length = QCOW2_V2_HEADER_LENGTH;
        return 0;
    }
    h->incompatible_features = be64_at(b + 72);
    h->compatible_features = be64_at(b + 80);
    h->autoclear_features = be64_at(b + 88);
    h->refcount_order = be32_at(b + 96);
    h->header_length = be32_at(b + 100);
    if (h->header_length < QCOW2_V3_HEADER_LENGTH || h->header_length % 8 != 0)
        return img_errmsg(err, errlen, -EINVAL,
                          "header_length %" PRIu32 " invalid (at least 104, a multiple of 8)",
                          h->header_length);
    if (h->header_length > h->cluster_size)
        return img_errmsg(err, errlen, -EINVAL,
                          "header_length %" PRIu32 " runs past the header cluster (%" PRIu32
                          " bytes)",
                          h->header_length, h->cluster_size);
    if (h->header_length > COMPRESSION_TYPE_OFFSET)
        h->compression_type = b[COMPRESSION_TYPE_OFFSET];
    return 0;
}

static int parse_fixed(const uint8_t *b, size_t len, qcow2_header *h, char *err,
                       size_t errlen)
{
    if (len < QCOW2_V2_HEADER_LENGTH)
        return img_errmsg(err, errlen, -EINVAL,
                          "too short for a qcow2 header (%zu bytes)", len);
    if (be32_at(b) != QCOW2_MAGIC)
        return img_errmsg(err, errlen, -EINVAL, "not a qcow2 image (bad magic)");
    h->version = be32_at(b + 4);
    if (h->version != 2 && h->version != 3)
        return img_errmsg(err, errlen, -ENOTSUP, "unsupported qcow2 version %" PRIu32,
                          h->version);
    h->cluster_bits = be32_at(b + 20);
    if (h->cluster_bits < QCOW2_MIN_CLUSTER_BITS || h->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
        return img_errmsg(err, errlen, -EINVAL,
                          "cluster_bits %" PRIu32 " out of range (9..21)", h->cluster_bits);
    h->cluster_size = UINT32_C(1) << h->cluster_bits;
    if (len < h->cluster_size)
        return img_errmsg(err, errlen, -EINVAL,
                          "shorter than its header cluster (%zu of %" PRIu32 " bytes)", len,
                          h->cluster_size);
    h->size = be64_at(b + 24);
    h->crypt_method = be32_at(b + 32);
    h->l1_size = be32_at(b + 36);
    h->l1_table_offset = be64_at(b + 40);
    h->refcount_table_offset = be64_at(b + 48);
    h->refcount_table_clusters = be32_at(b + 56);
    h->nb_snapshots = be32_at(b + 60);
    h->snapshots_offset = be64_at(b + 64);
    return parse_v3_fields(b, h, err, errlen);
}

/* Where the backing file name sits: inside cluster 0, after the header. */
static int parse_backing_name(const uint8_t *b, qcow2_header *h, char *err, size_t errlen)
{
    uint64_t off = be64_at(b + 8);
    uint32_t size = be32_at(b + 16);

    if (off == 0 || size == 0)
        return 0;    /* QEMU too reads an empty name as no backing file */
    if (size > IMG_BACKING_NAME_MAX)
        return img_errmsg(err, errlen, -EINVAL,
                          "backing file name too long (%" PRIu32 " bytes, at most %d)", size,
                          IMG_BACKING_NAME_MAX);
    if (off < h->header_length)
        return img_errmsg(err, errlen, -EINVAL,
                          "backing file name (offset 0x%" PRIx64 ") overlaps the header", off);
    if (off > h->cluster_size || size > h->cluster_size - off)
        return img_errmsg(err, errlen, -EINVAL,
                          "backing file name (offset 0x%" PRIx64 ", %" PRIu32
                          " bytes) runs past the header cluster",
                          off, size);
    if (memchr(b + off, '\0', size))
        return img_errmsg(err, errlen, -EINVAL, "backing file name contains a NUL byte");
    memcpy(h->backing_file, b + off, size);
    h->backing_file[size] = '\0';
    h->has_backing = true;
    return 0;
}

static int parse_backing_format(const uint8_t *p, uint32_t len, qcow2_header *h, char *err,
                                size_t errlen)
{
    if (h->has_backing_format)
        return img_errmsg(err, errlen, -EINVAL, "backing format extension appears twice");
    if (len == 0 || len > QCOW2_BACKING_FORMAT_MAX || memchr(p, '\0', len))
        return img_errmsg(err, errlen, -EINVAL,
                          "backing format extension invalid (%" PRIu32 " bytes)", len);
    memcpy(h->backing_format, p, len);
    h->backing_format[len] = '\0';
    h->has_backing_format = true;
    return 0;
}

static void parse_bitmaps(const uint8_t *p, uint32_t len, qcow2_header *h)
{
    if (len < BITMAPS_EXT_LEN)
        return;
    h->has_bitmaps = true;
    h->nb_bitmaps = be32_at(p);
    h->bitmap_directory_size = be64_at(p + 8);
    h->bitmap_directory_offset = be64_at(p + 16);
}

static void parse_feature_table(const uint8_t *p, uint32_t len, feature_names *names)
{
    for (uint32_t i = 0; i + FEATURE_ENTRY_LEN <= len; i += FEATURE_ENTRY_LEN) {
        const uint8_t *e = p + i;

        if (e[0] != 0 || e[1] >= 64)
            continue;    /* only incompatible features matter for messages */
        memcpy(names->incompat[e[1]], e + 2, FEATURE_NAME_LEN);
        names->incompat[e[1]][FEATURE_NAME_LEN] = '\0';
    }
}

/* Walks the extensions between the header and the backing file name (or the
 * end of cluster 0); each length is checked against what is left, and the
 * area must end with an end marker. */
static int parse_extensions(const uint8_t *b, qcow2_header *h, feature_names *names,
                            char *err, size_t errlen)
{
    uint64_t end = h->cluster_size, off = h->header_length;
    int r;

    if (h->has_backing)
        end = be64_at(b + 8);
    for (;;) {
        uint32_t type, len, padded;

        if (off > end || end - off < 8)
            return img_errmsg(err, errlen, -EINVAL,
                              "header extensions have no end marker before offset 0x%" PRIx64,
                              end);
        type = be32_at(b + off);
        len = be32_at(b + off + 4);
        off += 8;
        if (type == QCOW2_EXT_END)
            return 0;
        if (len > end - off)
            return img_errmsg(err, errlen, -EINVAL,
                              "header extension 0x%08" PRIx32 " at offset 0x%" PRIx64
                              " (%" PRIu32 " bytes) runs past the end of its area (0x%" PRIx64
                              ")",
                              type, off - 8, len, end);
        if (type == QCOW2_EXT_BACKING_FORMAT) {
            r = parse_backing_format(b + off, len, h, err, errlen);
            if (r < 0)
                return r;
        } else if (type == QCOW2_EXT_FEATURE_TABLE) {
            parse_feature_table(b + off, len, names);
        } else if (type == QCOW2_EXT_BITMAPS) {
            parse_bitmaps(b + off, len, h);
        }
        /* Bitmaps only matter to writers and img_check; encryption and
         * external data files are refused by their header fields and
         * feature bits. */
        padded = (len + 7u) & ~7u;    /* len <= cluster size: no overflow */
        off += padded;
    }
}

static int lowest_bit(uint64_t v)
{
    return __builtin_ctzll(v);
}

static int check_compression(const qcow2_header *h, char *err, size_t errlen)
{
    if (!(h->incompatible_features & QCOW2_INCOMPAT_COMPRESSION)) {
        if (h->compression_type != COMPRESSION_DEFLATE)
            return img_errmsg(err, errlen, -EINVAL,
                              "compression_type %u set without its incompatible feature bit",
                              h->compression_type);
        return 0;
    }
    if (h->header_length <= COMPRESSION_TYPE_OFFSET || h->compression_type == COMPRESSION_DEFLATE)
        return img_errmsg(err, errlen, -EINVAL,
                          "compression type feature bit set without a compression_type");
    if (h->compression_type == COMPRESSION_ZSTD)
        return img_errmsg(err, errlen, -ENOTSUP,
                          "zstd compression is not supported (only zlib/deflate)");
    return img_errmsg(err, errlen, -ENOTSUP, "unknown compression_type %u",
                      h->compression_type);
}

static int check_features(const qcow2_header *h, const feature_names *names, char *err,
                          size_t errlen)
{
    uint64_t unknown = h->incompatible_features & ~INCOMPAT_KNOWN;

    if (unknown) {
        int bit = lowest_bit(unknown);

        return img_errmsg(err, errlen, -ENOTSUP,
                          "unknown incompatible feature bit %d%s%s%s", bit,
                          names->incompat[bit][0] ? " (" : "", names->incompat[bit],
                          names->incompat[bit][0] ? ")" : "");
    }
    if (h->incompatible_features & QCOW2_INCOMPAT_DATA_FILE)
        return img_errmsg(err, errlen, -ENOTSUP,
                          "external data files are not supported (incompatible feature bit 2)");
    if (h->incompatible_features & QCOW2_INCOMPAT_EXTL2)
        return img_errmsg(err, errlen, -ENOTSUP,
                          "extended L2 entries are not supported (incompatible feature bit 4)");
    if (h->crypt_method != 0)
        return img_errmsg(err, errlen, -ENOTSUP,
                          "encrypted images are not supported (crypt_method %" PRIu32 ")",
                          h->crypt_method);
    if (h->refcount_order > QCOW2_MAX_REFCOUNT_ORDER)
        return img_errmsg(err, errlen, -EINVAL,
                          "refcount_order %" PRIu32 " out of range (at most 6)",
                          h->refcount_order);
    return check_compression(h, err, errlen);
}

/* A table of `bytes` at `off`: cluster-aligned, after cluster 0, inside the file. */
static int check_table(const qcow2_header *h, const char *what, uint64_t off, uint64_t bytes,
                       uint64_t file_size, char *err, size_t errlen)
{
    uint64_t end;

    if (off & (h->cluster_size - 1))
        return img_errmsg(err, errlen, -EINVAL,
                          "%s (offset 0x%" PRIx64 ") is not cluster-aligned", what, off);
    if (off < h->cluster_size)
        return img_errmsg(err, errlen, -EINVAL,
                          "%s (offset 0x%" PRIx64 ") overlaps the header cluster", what, off);
    if (__builtin_add_overflow(off, bytes, &end) || end > file_size)
        return img_errmsg(err, errlen, -EINVAL,
                          "%s (offset 0x%" PRIx64 ", %" PRIu64
                          " bytes) extends past the end of the file (%" PRIu64 " bytes)",
                          what, off, bytes, file_size);
    return 0;
}

static int check_l1(const qcow2_header *h, uint64_t file_size, char *err, size_t errlen)
{
    /* One L1 entry maps an L2 table's worth of clusters: 2^(2*bits - 3) bytes. */
    unsigned shift = 2 * h->cluster_bits - 3;
    uint64_t needed = (h->size >> shift) + ((h->size & ((UINT64_C(1) << shift) - 1)) != 0);

    if (h->l1_size > QCOW2_MAX_L1_BYTES / 8)
        return img_errmsg(err, errlen, -EFBIG,
                          "L1 table too large (%" PRIu32 " entries, at most %u)", h->l1_size,
                          QCOW2_MAX_L1_BYTES / 8);
    if (h->l1_size < needed)
        return img_errmsg(err, errlen, -EINVAL,
                          "L1 table (%" PRIu32 " entries) does not cover the virtual size "
                          "(%" PRIu64 " bytes need %" PRIu64 ")",
                          h->l1_size, h->size, needed);
    if (h->l1_size == 0)
        return 0;
    return check_table(h, "L1 table", h->l1_table_offset, (uint64_t)h->l1_size * 8,
                       file_size, err, errlen);
}

static int check_refcount_table(const qcow2_header *h, uint64_t file_size, char *err,
                                size_t errlen)
{
    if (h->refcount_table_clusters == 0)
        return img_errmsg(err, errlen, -EINVAL, "no refcount table (0 clusters)");
    if (h->refcount_table_clusters > QCOW2_MAX_REFTABLE_BYTES / h->cluster_size)
        return img_errmsg(err, errlen, -EFBIG,
                          "refcount table too large (%" PRIu32 " clusters, at most %u bytes)",
                          h->refcount_table_clusters, QCOW2_MAX_REFTABLE_BYTES);
    return check_table(h, "refcount table", h->refcount_table_offset,
                       (uint64_t)h->refcount_table_clusters * h->cluster_size, file_size, err,
                       errlen);
}

static int check_snapshots(const qcow2_header *h, uint64_t file_size, char *err,
                           size_t errlen)
{
    if (h->nb_snapshots > QCOW2_MAX_SNAPSHOTS)
        return img_errmsg(err, errlen, -EFBIG,
                          "too many snapshots (%" PRIu32 ", at most %u)", h->nb_snapshots,
                          QCOW2_MAX_SNAPSHOTS);
    if (h->nb_snapshots == 0)
        return 0;
    return check_table(h, "snapshot table", h->snapshots_offset,
                       (uint64_t)h->nb_snapshots * SNAPSHOT_ENTRY_MIN, file_size, err,
                       errlen);
}

static int check_sizes(const qcow2_header *h, uint64_t file_size, char *err, size_t errlen)
{
    int r;

    if (h->size > QCOW2_MAX_VIRTUAL_SIZE)
        return img_errmsg(err, errlen, -EFBIG,
                          "virtual size %" PRIu64 " too large (at most 2^61 bytes)", h->size);
    r = check_l1(h, file_size, err, errlen);
    if (r < 0)
        return r;
    r = check_refcount_table(h, file_size, err, errlen);
    if (r < 0)
        return r;
    return check_snapshots(h, file_size, err, errlen);
}

int qcow2_header_parse(const void *buf, size_t len, uint64_t file_size, qcow2_header *ret,
                       char *err, size_t errlen)
{
    const uint8_t *b = buf;
    qcow2_header h = { 0 };
    feature_names names = { 0 };
    int r;

    if (len > file_size)
        len = (size_t)file_size;
    r = parse_fixed(b, len, &h, err, errlen);
    if (r == 0)
        r = parse_backing_name(b, &h, err, errlen);
    if (r == 0)
        r = parse_extensions(b, &h, &names, err, errlen);
    if (r == 0)
        r = check_features(&h, &names, err, errlen);
    if (r == 0)
        r = check_sizes(&h, file_size, err, errlen);
    if (r < 0)
        return r;
    *ret = h;
    return 0;
}
