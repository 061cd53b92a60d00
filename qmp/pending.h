/* pending.h: the commands sent and not yet answered, found by id and by
 * deadline. Internal to qmp/. */
#ifndef AGENTD_QMP_PENDING_H
#define AGENTD_QMP_PENDING_H

#include <stddef.h>
#include <stdint.h>

typedef struct qmp_pending {
    uint64_t id;
    uint64_t deadline_ms;       /* on the loop's clock */
    void *cb;                   /* qmp_reply_cb, kept opaque here */
    void *opaque;
    struct qmp_pending *next;   /* hash chain */
    size_t heap_index;
} qmp_pending;

typedef struct qmp_pending_set {
    qmp_pending **buckets;
    size_t nbuckets;            /* a power of two */
    qmp_pending **heap;         /* min-heap on deadline_ms */
    size_t count, heap_cap;
} qmp_pending_set;

void qmp_pending_init(qmp_pending_set *s);
void qmp_pending_free(qmp_pending_set *s);   /* frees the table, not the entries */
int qmp_pending_add(qmp_pending_set *s, qmp_pending *p);
qmp_pending *qmp_pending_find(const qmp_pending_set *s, uint64_t id);
void qmp_pending_remove(qmp_pending_set *s, qmp_pending *p);
/* The entry with the earliest deadline, or NULL. */
qmp_pending *qmp_pending_first(const qmp_pending_set *s);

#endif
