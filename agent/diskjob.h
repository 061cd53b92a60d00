/* diskjob.h: the disk work of a clone, run in order off the loop: full
 * copies and rebases (the io_uring engine), and new overlays. Every file a
 * failed or cancelled job made is removed; sources are never written. A
 * rebase swaps a disk, in one rename, for an overlay that reads the same,
 * so a finished one is not undone and an unfinished one left it as it was. */
#ifndef AGENTD_DISKJOB_H
#define AGENTD_DISKJOB_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "storage/storage.h"

typedef struct agent agent;
typedef struct diskjob diskjob;

typedef enum diskop_kind {
    DISKOP_COPY,      /* the whole chain at src flattened into a new dst */
    DISKOP_OVERLAY,   /* a new empty qcow2 dst backed by src */
    DISKOP_REBASE,    /* dst (exists) becomes an overlay of src storing only what differs */
} diskop_kind;

typedef struct diskop {
    diskop_kind kind;
    char src[PATH_MAX];
    img_format src_format;
    char dst[PATH_MAX];
    img_format dst_format;
    /* filled in by the job: */
    uint64_t virtual_size;    /* of src */
    uint64_t allocated;       /* bytes src's chain takes on disk */
} diskop;

/* message: "Cloning vm1.sda.qcow2 (currently is 1050 MB and has a capacity
 * of 4096MB)" at the start of each copy, NULL for plain progress. */
typedef void diskjob_progress_fn(void *opaque, const diskop *op, uint64_t done, uint64_t total,
                                 const char *message);
typedef void diskjob_done_fn(void *opaque, int status, const char *err);

typedef struct diskjob_spec {
    diskop *ops;              /* malloc'd; diskjob_start takes them over */
    size_t nops;
    diskjob_progress_fn *progress;
    diskjob_done_fn *done;
    void *opaque;
} diskjob_spec;

/* A new zeroed op at the end of s->ops; NULL without memory. */
diskop *diskjob_add(diskjob_spec *s);
void diskjob_spec_free(diskjob_spec *s);
/* Starts the job, which takes s->ops over (s->ops is NULL after, on
 * success and failure alike). */
int diskjob_start(agent *a, diskjob_spec *s, diskjob **ret);
void diskjob_cancel(diskjob *j);

#endif
