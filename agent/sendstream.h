/* sendstream.h: the byte stream of an offline migration (vm-send on the
 * source, vm-receive on the destination; docs/protocol.md, "Offline
 * migration"): each sent disk's guest content, disk after disk, as frames.
 *
 * A frame is a 24-byte header, big-endian, then its payload:
 *   magic u32 "AGS1", type u32, offset u64, length u32, crc u32.
 * DATA: `length` (1..SS_DATA_MAX) guest bytes at `offset` of the current
 * disk follow; crc is their CRC-32. Offsets ascend within a disk and never
 * overlap; bytes not sent read as zeros.
 * DISK_END: the current disk is whole; `offset` holds the number of guest
 * bytes sent for it (a check against a lost frame), length and crc are 0.
 * STREAM_END: every disk was sent; all fields 0.
 * ABORT: the source gave up; `length` (at most SS_ABORT_MAX) bytes of text
 * saying why follow, crc their CRC-32, offset 0. Nothing follows it.
 *
 * The decoder takes bytes as they come off a socket, in pieces of any size,
 * and checks every field before a byte of payload is trusted. */
#ifndef AGENTD_SENDSTREAM_H
#define AGENTD_SENDSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SS_MAGIC 0x41475331u            /* "AGS1" */
#define SS_HEADER_BYTES 24u
#define SS_DATA_MAX (1u << 20)
#define SS_ABORT_MAX 512u

typedef enum ss_frame_type {
    SS_DATA = 1,
    SS_DISK_END = 2,
    SS_STREAM_END = 3,
    SS_ABORT = 4,
} ss_frame_type;

/* Writes a frame header into b (SS_HEADER_BYTES). */
void ss_header_put(uint8_t *b, ss_frame_type type, uint64_t offset, uint32_t length, uint32_t crc);
uint32_t ss_crc(const void *data, size_t len);

/* What the decoder hands out, in stream order. `data` points into the
 * decoder's buffer and is valid only during the call. A non-zero return
 * stops decoding (the decoder is then failed with that status). */
typedef struct ss_sink {
    int (*data)(void *opaque, unsigned disk, uint64_t offset, const uint8_t *data, uint32_t len);
    int (*disk_end)(void *opaque, unsigned disk);
    int (*stream_end)(void *opaque);
} ss_sink;

typedef struct ss_decoder {
    const ss_sink *sink;
    void *opaque;
    unsigned ndisks;
    const uint64_t *sizes;     /* each disk's virtual size (ndisks) */
    unsigned disk;             /* the current disk */
    uint64_t next_offset;      /* the lowest offset the next DATA may start at */
    uint64_t disk_bytes;       /* guest bytes received for the current disk */
    uint64_t total_bytes;      /* every byte taken, headers included */
    uint8_t header[SS_HEADER_BYTES];
    size_t have;               /* bytes of the header, then of the payload, held */
    bool in_payload;
    uint64_t offset;           /* of the frame being read */
    uint32_t type, length, crc;
    uint8_t *payload;          /* SS_DATA_MAX bytes */
    int status;                /* 0, 1 once STREAM_END came, or negative */
    char err[256];
} ss_decoder;

/* sizes must outlive the decoder. -ENOMEM. */
int ss_decoder_init(ss_decoder *d, unsigned ndisks, const uint64_t *sizes, const ss_sink *sink, void *opaque);
void ss_decoder_free(ss_decoder *d);
/* Takes len bytes: 0 while more is expected, 1 when the stream ended (bytes
 * after STREAM_END are refused), negative when it is invalid, the source
 * aborted (-ECONNABORTED, its words in d->err) or a sink refused (d->err
 * says why, naming the disk, and the offset for a fault of a frame). */
int ss_decoder_feed(ss_decoder *d, const uint8_t *data, size_t len);

#endif
