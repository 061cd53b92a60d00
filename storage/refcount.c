/* refcount.c: see refcount.h. */
#include "refcount.h"

#include <errno.h>

#include "qcow2_header.h"

/* The fixed point is reached in a few rounds: each round can only add the
 * blocks needed to count the blocks and table clusters added before. */
#define LAYOUT_MAX_ROUNDS 64

uint64_t qcow2_refcount_get(const void *block, uint64_t index, unsigned order)
{
    const uint8_t *b = block;
    uint64_t v = 0;

    if (order < 3) {
        unsigned bits = 1u << order, per_byte = 8u >> order;
        unsigned shift = (unsigned)(index % per_byte) * bits;

        return (b[index / per_byte] >> shift) & ((1u << bits) - 1);
    }
    b += index << (order - 3);
    for (unsigned k = 0; k < 1u << (order - 3); k++)
        v = v << 8 | b[k];
    return v;
}

void qcow2_refcount_set(void *block, uint64_t index, unsigned order, uint64_t value)
{
    uint8_t *b = block;

    if (order < 3) {
        unsigned bits = 1u << order, per_byte = 8u >> order;
        unsigned shift = (unsigned)(index % per_byte) * bits;
        uint8_t mask = (uint8_t)(((1u << bits) - 1) << shift);

        b[index / per_byte] = (uint8_t)((b[index / per_byte] & ~mask) |
                                        ((value << shift) & mask));
        return;
    }
    b += index << (order - 3);
    for (unsigned k = 1u << (order - 3); k-- > 0; value >>= 8)
        b[k] = (uint8_t)value;
}

static uint64_t div_round_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

int qcow2_refcount_layout_for(unsigned cluster_bits, unsigned order, uint64_t other,
                              qcow2_refcount_layout *ret)
{
    uint64_t per_block = qcow2_refblock_entries(cluster_bits, order);
    uint64_t cs = UINT64_C(1) << cluster_bits;
    uint64_t table = 1, blocks = 1;

    /* Each pass sizes the blocks for everything counted so far and the
     * table for those blocks; both only grow, so the first pass that
     * changes nothing is the least layout that counts itself. */
    for (int round = 0; round < LAYOUT_MAX_ROUNDS; round++) {
        uint64_t need_blocks = div_round_up(other + table + blocks, per_block);
        uint64_t need_table = div_round_up(need_blocks * 8, cs);

        if (need_table * cs > QCOW2_MAX_REFTABLE_BYTES)
            return -EFBIG;
        if (need_blocks <= blocks && need_table <= table) {
            *ret = (qcow2_refcount_layout){ .table_clusters = table, .blocks = blocks };
            return 0;
        }
        blocks = need_blocks > blocks ? need_blocks : blocks;
        table = need_table > table ? need_table : table;
    }
    return -EFBIG;
}
