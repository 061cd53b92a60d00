/* copyjob.h: one image copy (storage's io_uring engine) driven from the
 * agent's loop: the engine's eventfd is watched with a uv_poll and each
 * wake-up runs one non-blocking step. Opening the source chain, which reads
 * image headers, is done on the thread pool first. */
#ifndef AGENTD_COPYJOB_H
#define AGENTD_COPYJOB_H

#include <stdint.h>

#include "storage/storage.h"

typedef struct agent agent;
typedef struct copyjob copyjob;

typedef void copyjob_progress_fn(void *opaque, uint64_t done, uint64_t total);
/* status 0: the copy is complete and durable at dst; otherwise nothing is at
 * dst and err says why (-ECANCELED when cancelled). */
typedef void copyjob_done_fn(void *opaque, int status, const char *err);

typedef struct copyjob_spec {
    const char *src;
    img_format src_format;
    const char *dst;
    img_format dst_format;
    /* A rebase: dst stores only what differs from this backing file (named
     * as dst will name it) and replaces what is at dst. */
    const char *backing;
    img_format backing_format;
} copyjob_spec;

int copyjob_start(agent *a, const copyjob_spec *s, copyjob_progress_fn *progress,
                  copyjob_done_fn *done, void *opaque, copyjob **ret);
/* Asks the copy to stop; done still runs, with -ECANCELED. */
void copyjob_cancel(copyjob *j);

#endif
