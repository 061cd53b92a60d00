/* bytes.h: big-endian stores, the byte order of every qcow2 field. Internal
 * to storage/. */
#ifndef AGENTD_STORAGE_BYTES_H
#define AGENTD_STORAGE_BYTES_H

#include <stdint.h>

static inline void put_be32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

static inline void put_be64(uint8_t *b, uint64_t v)
{
    put_be32(b, (uint32_t)(v >> 32));
    put_be32(b + 4, (uint32_t)v);
}

#endif
