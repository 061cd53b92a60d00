/* sendstream.c: frames of an offline migration's stream, and their decoder. */
#include "sendstream.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

static void put_be32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

void ss_header_put(uint8_t *b, ss_frame_type type, uint64_t offset, uint32_t length, uint32_t crc)
{
    put_be32(b, SS_MAGIC);
    put_be32(b + 4, (uint32_t)type);
    put_be32(b + 8, (uint32_t)(offset >> 32));
    put_be32(b + 12, (uint32_t)offset);
    put_be32(b + 16, length);
    put_be32(b + 20, crc);
}

uint32_t ss_crc(const void *data, size_t len)
{
    uLong c = crc32(0L, Z_NULL, 0);

    /* zlib takes lengths as uInt: a frame is at most 1 MiB, but be exact. */
    for (const Bytef *p = data; len > 0;) {
        uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
        c = crc32(c, p, n);
        p += n;
        len -= n;
    }
    return (uint32_t)c;
}

int ss_decoder_init(ss_decoder *d, unsigned ndisks, const uint64_t *sizes, const ss_sink *sink, void *opaque)
{
    memset(d, 0, sizeof(*d));
    d->sink = sink;
    d->opaque = opaque;
    d->ndisks = ndisks;
    d->sizes = sizes;
    if (!(d->payload = malloc(SS_DATA_MAX)))
        return -ENOMEM;
    return 0;
}

void ss_decoder_free(ss_decoder *d)
{
    free(d->payload);
    d->payload = NULL;
}

static int fail(ss_decoder *d, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(ss_decoder *d, int status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(d->err, sizeof(d->err), fmt, ap);
    va_end(ap);
    d->status = status;
    return status;
}

/* A sink's refusal stops the stream with its status (and its own words, if
 * it left any in d->err). */
static int sink_said(ss_decoder *d, int r)
{
    if (r == 0)
        return 0;
    if (!d->err[0])
        snprintf(d->err, sizeof(d->err), "disk %u: %s", d->disk, strerror(r < 0 ? -r : EIO));
    d->status = r < 0 ? r : -EIO;
    return d->status;
}

static int header_done(ss_decoder *d)
{
    const uint8_t *h = d->header;
    uint32_t type = get_be32(h + 4);

    d->type = type;
    d->offset = (uint64_t)get_be32(h + 8) << 32 | get_be32(h + 12);
    d->length = get_be32(h + 16);
    d->crc = get_be32(h + 20);
    if (get_be32(h) != SS_MAGIC)
        return fail(d, -EPROTO, "byte %" PRIu64 ": not a frame (bad magic)", d->total_bytes - SS_HEADER_BYTES);
    if (d->disk >= d->ndisks && type != SS_STREAM_END && type != SS_ABORT)
        return fail(d, -EPROTO, "a frame after the last disk");
    switch (type) {
    case SS_DATA:
        if (d->length == 0 || d->length > SS_DATA_MAX)
            return fail(d, -EPROTO, "disk %u: frame length %" PRIu32 " (1 to %u)", d->disk, d->length,
                        SS_DATA_MAX);
        if (d->offset < d->next_offset)
            return fail(d, -EPROTO, "disk %u: offset %" PRIu64 " goes back (expected %" PRIu64 " or more)",
                        d->disk, d->offset, d->next_offset);
        if (d->offset > d->sizes[d->disk] || d->length > d->sizes[d->disk] - d->offset)
            return fail(d, -EPROTO, "disk %u: bytes %" PRIu64 "+%" PRIu32 " past its size %" PRIu64, d->disk,
                        d->offset, d->length, d->sizes[d->disk]);
        d->in_payload = true;
        return 0;
    case SS_DISK_END:
        if (d->length != 0 || d->crc != 0)
            return fail(d, -EPROTO, "disk %u: malformed end frame", d->disk);
        if (d->offset != d->disk_bytes)
            return fail(d, -EPROTO, "disk %u: the source sent %" PRIu64 " bytes, %" PRIu64 " arrived", d->disk,
                        d->offset, d->disk_bytes);
        if (sink_said(d, d->sink->disk_end(d->opaque, d->disk)) < 0)
            return d->status;
        d->disk++;
        d->next_offset = 0;
        d->disk_bytes = 0;
        return 0;
    case SS_STREAM_END:
        if (d->offset != 0 || d->length != 0 || d->crc != 0)
            return fail(d, -EPROTO, "malformed stream end frame");
        if (d->disk != d->ndisks)
            return fail(d, -EPROTO, "the stream ended after %u of %u disks", d->disk, d->ndisks);
        if (sink_said(d, d->sink->stream_end(d->opaque)) < 0)
            return d->status;
        d->status = 1;
        return 1;
    case SS_ABORT:
        if (d->offset != 0 || d->length == 0 || d->length > SS_ABORT_MAX)
            return fail(d, -EPROTO, "malformed abort frame");
        d->in_payload = true;
        return 0;
    default:
        return fail(d, -EPROTO, "disk %u: unknown frame type %" PRIu32, d->disk, type);
    }
}

static int payload_done(ss_decoder *d)
{
    uint32_t crc = ss_crc(d->payload, d->length);

    d->in_payload = false;
    if (crc != d->crc)
        return fail(d, -EBADMSG, "disk %u: bytes %" PRIu64 "+%" PRIu32 " damaged (CRC-32 %08" PRIx32
                    ", expected %08" PRIx32 ")", d->disk, d->offset, d->length, crc, d->crc);
    if (d->type == SS_ABORT) {
        int n = (int)d->length;
        for (int i = 0; i < n; i++)
            if (d->payload[i] < 0x20 || d->payload[i] == 0x7f)
                d->payload[i] = '?';   /* it goes into logs and replies */
        return fail(d, -ECONNABORTED, "the source stopped: %.*s", n, (const char *)d->payload);
    }
    d->next_offset = d->offset + d->length;
    d->disk_bytes += d->length;
    return sink_said(d, d->sink->data(d->opaque, d->disk, d->offset, d->payload, d->length));
}

int ss_decoder_feed(ss_decoder *d, const uint8_t *data, size_t len)
{
    while (len > 0 && d->status == 0) {
        uint8_t *into = d->in_payload ? d->payload : d->header;
        size_t want = (d->in_payload ? d->length : SS_HEADER_BYTES) - d->have;
        size_t n = len < want ? len : want;

        memcpy(into + d->have, data, n);
        d->have += n;
        d->total_bytes += n;
        data += n;
        len -= n;
        if (n < want)
            break;
        bool was_payload = d->in_payload;
        d->have = 0;
        int r = was_payload ? payload_done(d) : header_done(d);
        if (r < 0)
            return r;
    }
    if (d->status == 1 && len > 0)
        return fail(d, -EPROTO, "%zu bytes after the end of the stream", len);
    return d->status;
}
