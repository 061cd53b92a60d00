/* copy_internal.h: the copy engine's pieces, shared by copy.c (the ring,
 * the step loop, completions), copy_plan.c (mapping the source and the
 * backing image into units and reading them) and copy_dst.c (deciding what
 * each cluster becomes and writing the new image). Internal to storage/.
 *
 * The guest range is cut into units of at most one buffer each, given out
 * in order from a cursor. A unit is mapped (its L2 tables read first through
 * the ring), read into its buffer (and, for a rebase, the backing image's
 * bytes into a second one), then each of its granules (a cluster of a qcow2
 * image, 4 KiB of a raw one) is classified and written. Runs that need no
 * reading (unallocated, zero) are skipped without a unit. */
#ifndef AGENTD_STORAGE_COPY_INTERNAL_H
#define AGENTD_STORAGE_COPY_INTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include <liburing.h>

#include "layer.h"
#include "map.h"
#include "storage.h"

#define COPY_RING_ENTRIES 128u          /* also the number of ops in flight at most */
#define COPY_DEFAULT_BUFFERS 16u
#define COPY_DEFAULT_BUFFER_SIZE (1u << 20)
#define COPY_MAX_BUFFERS 64u
#define COPY_MAX_BUFFER_BYTES (32u << 20)
#define COPY_MAX_GRANULES 2048u         /* per unit */
#define COPY_MAX_COMPRESSED 4u          /* compressed clusters read at once */
#define COPY_STEP_MAPS 1024u            /* lookups per step before the loop gets a turn */
#define COPY_RAW_GRANULE 4096u
/* Writeback of dst is started every this many bytes written, so that the
 * disk works while the copy goes on and the final fsync finds little left. */
#define COPY_WRITEBACK_BYTES (32u << 20)

enum { SIDE_SRC, SIDE_REF, SIDES };

typedef enum copy_op_kind {
    OP_READ,              /* source or backing bytes into a unit's buffer */
    OP_READ_COMPRESSED,   /* a compressed cluster, inflated into a unit's buffer */
    OP_READ_TABLE,        /* an L2 table into a layer's cache */
    OP_WRITE,             /* a unit's bytes into dst */
    OP_WRITE_TABLE,       /* a finished L2 table of dst */
    OP_WRITEBACK,         /* sync_file_range: start writing back what dst has so far */
} copy_op_kind;

typedef struct copy_unit copy_unit;
typedef struct copy_span copy_span;

/* One request in the ring; its address is the request's user_data. */
typedef struct copy_op {
    copy_op_kind kind;
    int fd;
    uint8_t *buf;            /* the next byte to read into or write from */
    uint32_t len;            /* bytes left */
    uint32_t total;          /* bytes asked for */
    uint64_t off;            /* file offset of the next byte */
    int buf_index;           /* registered buffer, or -1 */
    copy_unit *unit;         /* READ, READ_COMPRESSED, WRITE */
    void *owned;             /* READ_COMPRESSED: the malloc'd buffer buf points into */
    /* READ_COMPRESSED: the part of the inflated cluster from `within` goes
     * to dest. */
    img_layer *layer;        /* READ_COMPRESSED, READ_TABLE */
    uint8_t *dest;
    uint32_t dest_len, within;
    /* READ_TABLE */
    qcow2_l2_slot *slot;
    uint64_t table_offset;
    bool *fetching;
    /* WRITE_TABLE: buf is the span's table, freed with the span */
    copy_span *span;
    struct copy_op *next_free;
} copy_op;

struct copy_unit {
    bool active;
    bool mapped;             /* every byte of the range has its read queued or filled */
    bool writing;            /* reads done: its granules are decided and written */
    bool classifying;        /* writing, and granules from next_granule still to decide */
    uint64_t off, len;       /* guest range */
    uint8_t *buf[SIDES];
    int buf_index[SIDES];
    uint64_t planned[SIDES]; /* bytes of the range mapped so far */
    unsigned pending;        /* ops in flight */
    unsigned next_granule;
    copy_span *span;
    uint64_t alloc[COPY_MAX_GRANULES / 64];   /* granules the source chain allocates */
};

/* One L2 table of a qcow2 dst while its clusters are being decided. */
struct copy_span {
    uint64_t index;          /* in the L1 table */
    uint64_t *table;         /* cluster_size bytes, big-endian as on disk */
    unsigned outstanding;    /* units in it not yet classified */
    bool used;
    copy_span *next;
};

typedef struct copy_dst {
    int fd;
    img_format format;
    char tmp[PATH_MAX];
    unsigned cluster_bits;   /* qcow2 */
    uint64_t cluster_size;
    uint32_t granule;
    uint64_t size;
    const char *backing;     /* as the header stores it; NULL: none */
    img_format backing_format;
    uint64_t *l1;            /* host order */
    uint32_t l1_size;
    uint64_t l1_clusters;
    uint64_t next_cluster;   /* the first free host cluster */
    copy_span *spans;        /* by index, ascending */
    unsigned nspans;
    uint64_t written_end;    /* the end of the furthest data write completed */
    uint64_t writeback_from; /* writeback was started for what lies before */
} copy_dst;

struct img_copy {
    img *side[SIDES];        /* the source chain; the backing chain (rebase) or NULL */
    uint64_t ref_size;
    copy_dst dst;
    char path[PATH_MAX];
    char backing_name[IMG_BACKING_NAME_MAX + 1];
    bool replace;
    const char *const *roots;    /* the caller's, valid until finish */
    struct io_uring ring;
    bool ring_ok;
    int efd;
    uint8_t *mem;
    size_t mem_bytes;
    bool fixed;              /* buffers registered with the ring */
    copy_unit *units;
    unsigned nunits;
    unsigned sides;          /* 1, or 2 for a rebase */
    uint32_t unit_bytes;
    copy_unit *planning;     /* the unit being mapped, or NULL */
    copy_op ops[COPY_RING_ENTRIES];
    copy_op *free_ops;
    unsigned inflight;
    unsigned queued;         /* ops in the SQ not yet submitted */
    unsigned compressed_inflight;
    bool fetching[SIDES][IMG_MAX_CHAIN];
    uint8_t *zbuf;           /* one inflated cluster of the largest source cluster size */
    uint64_t cursor;         /* guest bytes given to units or skipped */
    uint64_t done;           /* guest bytes decided and written */
    uint64_t size;
    int status;
    bool cancelled;
    img_copy_stats stats;
    img_copy_progress_fn *progress;
    void *opaque;
    char err[512];
};

/* copy.c */
int copy_fail(img_copy *c, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
copy_op *copy_op_get(img_copy *c);
void copy_op_put(img_copy *c, copy_op *op);
/* Queues op (fields set) as a read or a write; false when the ring is full
 * (op is then given back). */
bool copy_op_queue(img_copy *c, copy_op *op);
void copy_unit_release(img_copy *c, copy_unit *u);
/* The planner queued every read of u. */
void copy_unit_mapped(img_copy *c, copy_unit *u);
/* An op of u ended: on to classifying or finishing when it was the last. */
void copy_unit_io_done(img_copy *c, copy_unit *u);

/* copy_plan.c */
/* Gives work to free units until blocked (no unit, op or table) or out of
 * budget. */
void copy_plan(img_copy *c, unsigned *budget);
void copy_table_read_done(img_copy *c, copy_op *op);
int copy_compressed_done(img_copy *c, copy_op *op);

/* copy_dst.c */
int copy_dst_open(img_copy *c, const img_copy_options *o, char *err, size_t errlen);
/* The granule (of dst) at guest offset is decided without reading: a zero
 * cluster in a qcow2 dst. */
int copy_dst_zero(img_copy *c, uint64_t off, uint64_t len);
/* Classifies u's granules from next_granule and queues their writes; stops
 * when ops run out (u stays classifying). */
int copy_dst_unit(img_copy *c, copy_unit *u);
/* The span u belongs to; NULL for raw. -ENOMEM as NULL with status set. */
copy_span *copy_dst_span(img_copy *c, uint64_t off);
/* Writes every span whose clusters are all decided. */
int copy_dst_flush_spans(img_copy *c);
bool copy_dst_spans_full(const img_copy *c, uint64_t off);
void copy_dst_table_written(img_copy *c, copy_op *op);
/* A data write ending at file offset end completed: writeback is started
 * once enough has accumulated. */
void copy_dst_data_written(img_copy *c, uint64_t end);
int copy_dst_finish(img_copy *c, char *err, size_t errlen);
void copy_dst_close(img_copy *c);
/* The end of dst's span at off (raw: the end of the image). */
uint64_t copy_dst_span_end(const img_copy *c, uint64_t off);

#endif
