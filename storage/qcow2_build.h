/* qcow2_build.h: the pieces of a new qcow2 image that every writer lays out
 * the same way: the header cluster (v3, 16-bit refcounts, no feature bits,
 * an optional backing file with its format), the L1 size a virtual size
 * needs, and refcount structures that count a file whose clusters are all
 * in use once, and the end of an image laid out append-only. Used by
 * img_create, the copy engine and the stream writer. Internal to storage/. */
#ifndef AGENTD_STORAGE_QCOW2_BUILD_H
#define AGENTD_STORAGE_QCOW2_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include "storage.h"

#define QCOW2_NEW_VERSION 3u
#define QCOW2_NEW_HEADER_LENGTH 112u      /* v3 fields and compression_type, padded */
#define QCOW2_NEW_REFCOUNT_ORDER 4u       /* 16-bit refcounts, as qemu-img makes */
#define QCOW2_DEFAULT_CLUSTER_SIZE 65536u

typedef struct qcow2_new_header {
    unsigned cluster_bits;
    uint64_t size;                   /* virtual size, a multiple of 512 */
    uint32_t l1_size;
    uint64_t l1_offset;
    uint64_t reftable_offset;
    uint32_t reftable_clusters;
    const char *backing;             /* NULL: none; stored as given */
    img_format backing_format;
} qcow2_new_header;

/* Bytes of cluster 0 in use: header, extensions, backing name. */
size_t qcow2_new_header_bytes(const qcow2_new_header *n);
/* Cluster 0 into b (zeroed, at least qcow2_new_header_bytes bytes). */
void qcow2_new_header_build(uint8_t *b, const qcow2_new_header *n);

/* L1 entries a virtual size needs with 2^cluster_bits clusters (at least
 * one); -EFBIG past QCOW2_MAX_L1_BYTES. */
int64_t qcow2_l1_entries_for(uint64_t size, unsigned cluster_bits);

/* Writes `blocks` refcount blocks at blocks_offset (consecutive clusters)
 * that give clusters 0 .. total-1 refcount 1 and the rest 0, and a refcount
 * table at table_offset naming them. Only the bytes in use are written; the
 * rest of each cluster must read as zeros (a hole or zeros already). */
int qcow2_write_refcounts(int fd, unsigned cluster_bits, uint64_t total, uint64_t blocks_offset,
                          uint64_t blocks, uint64_t table_offset);

/* The end of an image laid out append-only, as the copy engine and the
 * stream writer lay it out: cluster 0 the header, the L1 table from cluster
 * 1, then data clusters and L2 tables, `clusters` clusters in all. Appends
 * refcount blocks and a refcount table that count every cluster once
 * (themselves included), then writes the L1 table (l1: h->l1_size entries
 * in host order) and last the header h, its L1 and refcount table offsets
 * filled in here: until then nothing refers to what was written. Messages
 * name path. */
int qcow2_append_finish(int fd, const qcow2_new_header *h, const uint64_t *l1, uint64_t clusters,
                        const char *path, char *err, size_t errlen);

#endif
