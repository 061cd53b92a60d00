/* map.h: a qcow2 layer's guest-to-host mapping: the L1 table, loaded and
 * validated at open, and L2 tables read on demand into a small LRU cache;
 * each L2 entry is validated when it is used. Internal to storage/. */
#ifndef AGENTD_STORAGE_MAP_H
#define AGENTD_STORAGE_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layer.h"
#include "qcow2_header.h"

/* Cache budget per layer: at most this many bytes of L2 tables, and between
 * 2 and 32 tables whatever the cluster size. */
#define QCOW2_L2_CACHE_BYTES (4u << 20)
#define QCOW2_L2_CACHE_MAX 32u
#define QCOW2_L2_CACHE_MIN 2u

/* One lookup examines at most this many L1 and L2 entries, so that a hostile
 * image (every L1 entry naming the same table of zero clusters, say) costs a
 * bounded amount of work per call; the run found so far is returned and
 * the caller's next call continues it. */
#define QCOW2_RUN_MAX_ENTRIES 65536u

/* L1 and L2 entries (docs/interop/qcow2.rst, without extended L2). */
#define QCOW2_L1E_OFFSET_MASK UINT64_C(0x00fffffffffffe00)
#define QCOW2_L1E_RESERVED_MASK UINT64_C(0x7f000000000001ff)
#define QCOW2_L2E_OFFSET_MASK UINT64_C(0x00fffffffffffe00)
#define QCOW2_L2E_STD_RESERVED_MASK UINT64_C(0x3f000000000001fe)
#define QCOW2_OFLAG_COPIED (UINT64_C(1) << 63)
#define QCOW2_OFLAG_COMPRESSED (UINT64_C(1) << 62)
#define QCOW2_OFLAG_ZERO UINT64_C(1)
#define QCOW2_COMPRESSED_SECTOR 512u

typedef struct qcow2_l2_slot {
    uint64_t offset;              /* host offset of the table; 0: empty slot */
    uint64_t stamp;               /* last use, for LRU */
    uint64_t *table;              /* cluster_size bytes, big-endian as on disk */
} qcow2_l2_slot;

typedef struct qcow2_layer {
    qcow2_header h;
    uint64_t *l1;                 /* l1_size entries, host order, validated */
    unsigned l2_bits;             /* log2 of entries per L2 table */
    unsigned csize_shift;         /* compressed descriptor: where the sector count starts */
    uint64_t csize_mask;
    uint64_t coffset_mask;
    qcow2_l2_slot *slots;
    unsigned nslots;
    uint64_t clock;
    uint64_t blocking_reads;      /* L2 tables l2_get had to read itself */
    /* Compressed clusters: the raw bytes read and the last cluster inflated. */
    uint8_t *cbuf;                /* 2 * cluster_size */
    uint8_t *zbuf;                /* cluster_size */
    uint64_t zbuf_desc;           /* the L2 entry zbuf holds; valid if zbuf_ok */
    bool zbuf_ok;
} qcow2_layer;

/* A run of one kind in one layer: UNALLOCATED means the layer has nothing
 * there and reads fall through to the backing layer. */
typedef struct qcow2_run {
    img_extent_kind kind;
    uint64_t length;
    uint64_t host_offset;         /* DATA */
    uint64_t cdesc;               /* COMPRESSED: the L2 entry */
    uint64_t coffset;             /* COMPRESSED: host offset of the compressed bytes */
    uint64_t clen;                /* COMPRESSED: bytes to read, clipped to the file */
} qcow2_run;

/* Loads and validates l's L1 table for header h and sets up its caches; on
 * failure a message in err names the problem. */
int qcow2_layer_open(img_layer *l, const qcow2_header *h, char *err, size_t errlen);
void qcow2_layer_free(struct qcow2_layer *q);

/* The run in layer l at guest offset (< the layer's virtual size), at most
 * maxlen bytes. -EIO for an entry that is invalid or points outside the file. */
int qcow2_layer_run(img_layer *l, uint64_t offset, uint64_t maxlen, qcow2_run *ret);

/* For the copy engine, which reads L2 tables with io_uring before it maps:
 * the host offset of the table that maps guest offset in l (0 when its L1
 * entry is empty, so no table is needed), and whether the cache has it. */
uint64_t qcow2_l2_table_for(const img_layer *l, uint64_t offset, bool *cached);
/* An emptied cache slot (the least recently used) to read a table into,
 * with its cluster_size buffer; NULL without memory. The slot stays out of
 * lookups until qcow2_l2_slot_fill names the table it now holds. */
qcow2_l2_slot *qcow2_l2_slot_claim(img_layer *l);
void qcow2_l2_slot_fill(img_layer *l, qcow2_l2_slot *s, uint64_t table_offset);

/* img_map, also handing back the layer's run (for COMPRESSED, the
 * descriptor read.c needs); run_ret may be NULL. */
int img_map_run(img *i, uint64_t offset, uint64_t len, img_extent *ret, qcow2_run *run_ret);

#endif
