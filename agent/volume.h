/* volume.h: the volumes of a pool: listed, created and deleted on the
 * thread pool through storage/. Knows files, not VMs: the caller decides
 * whether a volume may go (who uses it) before asking. */
#ifndef AGENTD_VOLUME_H
#define AGENTD_VOLUME_H

#include <stdint.h>

#include "storage/storage.h"

struct json_object;
typedef struct agent agent;
typedef struct pool pool;

/* status 0 with ret (ownership passes, may be NULL), or -errno and err. */
typedef void volume_cb(void *opaque, int status, struct json_object *ret, const char *err);

/* [{"name", "path", "format", "virtual-size", "allocated", "backing"}...]:
 * format as the file's first bytes say (for listing only: a VM's disk
 * format is never taken from here). */
int volume_list(pool *p, volume_cb *cb, void *opaque);

typedef struct volume_spec {
    const char *path;            /* where, inside an active pool */
    uint64_t size;               /* 0 with a backing file: the backing's size */
    img_format format;
    const char *backing;         /* NULL, or a path inside an active pool */
    img_format backing_format;
} volume_spec;

/* Creates it (refusing an existing file); ret {"path", "virtual-size"}. */
int volume_create(agent *a, const volume_spec *s, volume_cb *cb, void *opaque);

/* The image and its whole chain: {"path", "format", "virtual-size",
 * "chain": [{"path", "format", "virtual-size", "allocated", and for qcow2
 * "version", "cluster-size", "refcount-bits", "dirty", "corrupt",
 * "lazy-refcounts", "backing-file", "backing-format"}...]}. format NULL:
 * as the file's first bytes say. */
int volume_info(agent *a, const char *path, const img_format *format, volume_cb *cb, void *opaque);
/* img_check of a qcow2 file: {"path", "clean", "leaked-clusters",
 * "corruptions", "allocated-clusters", "fragmented-clusters",
 * "first-problem"}. */
int volume_check(agent *a, const char *path, volume_cb *cb, void *opaque);

/* Removes the file durably unless another image in an active pool has it
 * as its backing file (-EBUSY, naming that image). */
int volume_delete(agent *a, const char *path, volume_cb *cb, void *opaque);

/* Deletes each (as volume_delete) and goes on past failures; ret is the
 * array of those kept, [{"path", "error"}], status always 0. */
int volume_delete_many(agent *a, const char *const *paths, size_t n, volume_cb *cb, void *opaque);

#endif
