/* qcow2_header.h: the qcow2 header (cluster 0) parsed and validated: fixed
 * fields of v2 and v3, header extensions, feature bits and the bounds of
 * every table the header points at. A pure function of the first cluster's
 * bytes and the file's size, so that it can be tested and fuzzed alone.
 * Internal to storage/. */
#ifndef AGENTD_STORAGE_QCOW2_HEADER_H
#define AGENTD_STORAGE_QCOW2_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage.h"

#define QCOW2_MAGIC 0x514649fbu
#define QCOW2_V2_HEADER_LENGTH 72u
#define QCOW2_V3_HEADER_LENGTH 104u      /* the least a v3 header may be */
#define QCOW2_MIN_CLUSTER_BITS 9u
#define QCOW2_MAX_CLUSTER_BITS 21u       /* 2 MiB, QEMU's limit too */

/* Bounds on what an image may ask for, as QEMU has them: they keep every
 * allocation sized from the header small and every offset computation far
 * from overflowing 64 bits. */
#define QCOW2_MAX_L1_BYTES (32u << 20)
#define QCOW2_MAX_REFTABLE_BYTES (8u << 20)
#define QCOW2_MAX_VIRTUAL_SIZE (UINT64_C(1) << 61)
#define QCOW2_MAX_SNAPSHOTS 65536u
#define QCOW2_MAX_REFCOUNT_ORDER 6u

#define QCOW2_INCOMPAT_DIRTY (UINT64_C(1) << 0)
#define QCOW2_INCOMPAT_CORRUPT (UINT64_C(1) << 1)
#define QCOW2_INCOMPAT_DATA_FILE (UINT64_C(1) << 2)
#define QCOW2_INCOMPAT_COMPRESSION (UINT64_C(1) << 3)
#define QCOW2_INCOMPAT_EXTL2 (UINT64_C(1) << 4)
#define QCOW2_COMPAT_LAZY_REFCOUNTS (UINT64_C(1) << 0)
#define QCOW2_AUTOCLEAR_BITMAPS (UINT64_C(1) << 0)

#define QCOW2_EXT_END 0x00000000u
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE 0x6803f857u
#define QCOW2_EXT_BITMAPS 0x23852875u
#define QCOW2_EXT_CRYPTO 0x0537be77u
#define QCOW2_EXT_DATA_FILE 0x44415441u

#define QCOW2_BACKING_FORMAT_MAX 15u     /* "qcow2", "raw"; QEMU keeps 16 bytes */

typedef struct qcow2_header {
    uint32_t version;                /* 2 or 3 */
    uint32_t cluster_bits;
    uint32_t cluster_size;
    uint64_t size;                   /* virtual size in bytes */
    uint32_t crypt_method;           /* always 0 once parsed */
    uint32_t l1_size;                /* entries */
    uint64_t l1_table_offset;
    uint64_t refcount_table_offset;
    uint32_t refcount_table_clusters;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    uint64_t incompatible_features;  /* v2: 0 */
    uint64_t compatible_features;
    uint64_t autoclear_features;
    uint32_t refcount_order;         /* v2: 4 */
    uint32_t header_length;          /* v2: 72 */
    uint8_t compression_type;        /* 0: deflate, the only one accepted */
    bool has_backing;
    char backing_file[IMG_BACKING_NAME_MAX + 1];   /* NUL-terminated here */
    bool has_backing_format;
    char backing_format[QCOW2_BACKING_FORMAT_MAX + 1];
    /* The bitmaps extension as found (at least 24 bytes long), unchecked:
     * only a writer or img_check looks at what it points to. */
    bool has_bitmaps;
    uint32_t nb_bitmaps;
    uint64_t bitmap_directory_size;
    uint64_t bitmap_directory_offset;
} qcow2_header;

/* How many bytes from the start of the file qcow2_header_parse wants: the
 * whole first cluster when the cluster size is readable and sane, else the
 * len given (the parse then says what is wrong). */
size_t qcow2_header_bytes_wanted(const void *buf, size_t len);

/* Parses and validates the header in buf (the start of the file, len bytes,
 * at least the first cluster for a valid image) for a file of file_size
 * bytes. Refuses what this reader does not support (encryption, external
 * data files, extended L2 entries, zstd, unknown incompatible features) with
 * -ENOTSUP, sizes past the bounds above with -EFBIG, anything malformed with
 * -EINVAL; the message in err names the field. */
int qcow2_header_parse(const void *buf, size_t len, uint64_t file_size, qcow2_header *ret,
                       char *err, size_t errlen);

#endif
