/* disk.h: a VM's disks as files: where each one is, and who uses a file. */
#ifndef AGENTD_DISK_H
#define AGENTD_DISK_H

#include <stdbool.h>
#include <stddef.h>

#include "vmdef.h"
#include "work.h"

struct json_object;
typedef struct agent agent;

/* The file behind a disk: its path, or its volume in its pool (active or
 * not). -ENOENT for an unknown pool or an empty cdrom. */
int disk_source_path(agent *a, const vm_disk *d, char *buf, size_t len);
/* Names of the VMs with a disk at path, as a JSON array. */
struct json_object *disk_users(agent *a, const char *path);

/* The VMs whose disk chains go through any of targets (paths of images),
 * found by opening every VM disk's chain on the thread pool. names is a JSON
 * array (ownership passes); status < 0 only when the work could not run. */
typedef void disk_dependents_cb(void *opaque, int status, struct json_object *names);
int disk_dependents(agent *a, const char *const *targets, size_t ntargets, disk_dependents_cb *cb,
                    void *opaque);

/* Makes the disk files a definition asks for (xCAT's mkvm -s 20G): every
 * disk with a size whose file is missing is created, and every other disk's
 * file must exist. Files already there are left as they are (never resized
 * or overwritten). On the thread pool; created (a JSON array of the paths
 * made, ownership passes) lets the caller remove them if it then fails. */
typedef void disk_prepare_cb(void *opaque, int status, const char *err, struct json_object *created);
/* Refusals found without touching the disk (an unknown pool, a pool not
 * started where a file must be made) come back at once as -EINVAL with err
 * set; cb then never runs. */
int disk_prepare(agent *a, const vm_def *def, disk_prepare_cb *cb, void *opaque, char *err, size_t errlen);
/* The same, and then more(more_arg) on the same pool thread once every
 * file is there (a hotplug opens the new chain without a second hop). */
int disk_prepare_then(agent *a, const vm_def *def, agent_work_fn *more, void *more_arg, disk_prepare_cb *cb,
                      void *opaque, char *err, size_t errlen);
/* Removes files made by disk_prepare (on the thread pool), then calls
 * done(opaque), when given, on the loop once they are gone; created may be
 * NULL or empty, and is taken over. */
void disk_remove_created(agent *a, struct json_object *created, void (*done)(void *opaque), void *opaque);

#endif
