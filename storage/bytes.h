/* bytes.h: big-endian stores, the byte order of every qcow2 field, and the
 * test for all-zero data that writers use to leave clusters out. Internal
 * to storage/. */
#ifndef AGENTD_STORAGE_BYTES_H
#define AGENTD_STORAGE_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

static inline bool img_is_zero(const uint8_t *p, size_t n)
{
    static const uint8_t zeros[16];

    if (n <= 16)
        return memcmp(p, zeros, n) == 0;
    /* The first 16 bytes are zero and every byte equals the one 16 before. */
    return memcmp(p, zeros, 16) == 0 && memcmp(p, p + 16, n - 16) == 0;
}

#endif
