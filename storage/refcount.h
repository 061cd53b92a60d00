/* refcount.h: qcow2 refcounts: the refcount table and block entries for
 * every refcount_order, and how many refcount structures a new image needs
 * to count itself. Shared by img_create, img_check and the writers to come.
 * Internal to storage/. */
#ifndef AGENTD_STORAGE_REFCOUNT_H
#define AGENTD_STORAGE_REFCOUNT_H

#include <stdint.h>

/* A refcount table entry: the refcount block's offset, bits 9..63. */
#define QCOW2_REFT_OFFSET_MASK UINT64_C(0xfffffffffffffe00)
#define QCOW2_REFT_RESERVED_MASK UINT64_C(0x00000000000001ff)

/* Entries in one refcount block: cluster_size * 8 / refcount_bits. */
static inline uint64_t qcow2_refblock_entries(unsigned cluster_bits, unsigned order)
{
    return UINT64_C(1) << (cluster_bits + 3 - order);
}

/* The largest refcount a 2^order-bit entry holds. */
static inline uint64_t qcow2_refcount_max(unsigned order)
{
    return order >= 6 ? UINT64_MAX : (UINT64_C(1) << (1u << order)) - 1;
}

/* Entry index of a refcount block (cluster_size bytes as on disk). Entries
 * narrower than a byte fill each byte from its least significant bit, wider
 * ones are big-endian, as QEMU has them. */
uint64_t qcow2_refcount_get(const void *block, uint64_t index, unsigned order);
/* Sets it; value must fit (at most qcow2_refcount_max(order)). */
void qcow2_refcount_set(void *block, uint64_t index, unsigned order, uint64_t value);

typedef struct qcow2_refcount_layout {
    uint64_t table_clusters;     /* refcount table */
    uint64_t blocks;             /* refcount blocks */
} qcow2_refcount_layout;

/* The fewest refcount table clusters and refcount blocks that count
 * themselves and `other` clusters (header, L1 table, ...) when all of them
 * lie in one run from cluster 0: the blocks cover other + table_clusters +
 * blocks clusters, and the table holds an entry for every block. -EFBIG
 * past the refcount table bound (QCOW2_MAX_REFTABLE_BYTES). */
int qcow2_refcount_layout_for(unsigned cluster_bits, unsigned order, uint64_t other,
                              qcow2_refcount_layout *ret);

#endif
