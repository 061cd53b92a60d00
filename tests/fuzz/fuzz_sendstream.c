/* fuzz_sendstream.c: libFuzzer target for the decoder of an offline
 * migration's stream (agent/sendstream.c), the bytes vm-receive takes from
 * the network, for two small disks.
 *
 * The first input byte chooses the read size and whether the CRCs of the
 * frames that follow are made right first (without that the fuzzer would
 * rarely get a payload past the CRC check). The sinks abort() on any call a
 * valid stream cannot make: out of order, going back, past a disk's size. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/sendstream.h"

#define NDISKS 2

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint64_t sizes[NDISKS] = {4096, 65536};

/* What the sinks have seen of this input. */
typedef struct seen {
    unsigned disk;              /* disks ended so far */
    uint64_t next_offset;
    bool ended;
} seen;

static int check_data(void *opaque, unsigned disk, uint64_t offset, const uint8_t *data, uint32_t len)
{
    seen *s = opaque;

    if (s->ended || disk != s->disk || disk >= NDISKS || len == 0 || len > SS_DATA_MAX)
        abort();
    if (offset < s->next_offset || offset > sizes[disk] || len > sizes[disk] - offset)
        abort();
    (void)ss_crc(data, len);    /* every byte handed out must be readable */
    s->next_offset = offset + len;
    return 0;
}

static int check_disk_end(void *opaque, unsigned disk)
{
    seen *s = opaque;

    if (s->ended || disk != s->disk || disk >= NDISKS)
        abort();
    s->disk++;
    s->next_offset = 0;
    return 0;
}

static int check_stream_end(void *opaque)
{
    seen *s = opaque;

    if (s->ended || s->disk != NDISKS)
        abort();
    s->ended = true;
    return 0;
}

static const ss_sink sink = {check_data, check_disk_end, check_stream_end};

static uint32_t get_be32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Gives every whole DATA or ABORT frame the CRC of its payload, leaving the
 * other fields as they are. */
static void fix_crcs(uint8_t *b, size_t len)
{
    for (size_t at = 0; len - at >= SS_HEADER_BYTES;) {
        uint8_t *h = b + at;
        uint32_t type = get_be32(h + 4), n = get_be32(h + 16);

        at += SS_HEADER_BYTES;
        if ((type != SS_DATA && type != SS_ABORT) || n > len - at)
            continue;
        uint32_t crc = ss_crc(b + at, n);
        for (int i = 0; i < 4; i++)
            h[20 + i] = (uint8_t)(crc >> (24 - 8 * i));
        at += n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* One decoder, copied fresh for each input: its 1 MiB payload buffer,
     * mapped and unmapped per input, would cost more than the decoding. */
    static ss_decoder fresh;
    static seen s;
    ss_decoder d;

    if (size < 1)
        return 0;
    if (!fresh.payload && ss_decoder_init(&fresh, NDISKS, sizes, &sink, &s) < 0)
        abort();
    size_t chunk = 1 + (size_t)(data[0] >> 1) * (data[0] >> 1);
    uint8_t *buf = malloc(size);
    if (!buf)
        return 0;
    memcpy(buf, data + 1, size - 1);
    size -= 1;
    if (data[0] & 1)
        fix_crcs(buf, size);
    d = fresh;
    s = (seen){0};
    int r = 0;
    for (size_t at = 0; at < size && r == 0; at += chunk)
        r = ss_decoder_feed(&d, buf + at, size - at < chunk ? size - at : chunk);
    /* The end comes only after every disk, and only bytes after it fail a
     * stream that ended; a failure always says why. */
    if (r > 1 || (r == 1 && !s.ended) || (r < 0 && !d.err[0]))
        abort();
    if (s.ended && r != 1 && !strstr(d.err, "after the end of the stream"))
        abort();
    free(buf);
    return 0;
}
