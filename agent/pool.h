/* pool.h: the host's storage pools, as the agent keeps them.
 *
 * A pool is a named place for volumes: a directory, an NFS export the agent
 * mounts under STATE/mnt/NAME, or one block device given raw to a VM. Pools
 * are defined in STATE/pools/NAME.json and started (made usable) at agent
 * start when autostart is set. Where they live is parsed by storage/'s
 * img_pool_spec_parse, so xCAT's vmstorage strings are accepted as written.
 * Every path the agent opens an image at, and every backing file found in an
 * image, must lie inside an active pool. */
#ifndef AGENTD_POOL_H
#define AGENTD_POOL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "storage/storage.h"
#include "vmdef.h"

struct json_object;
typedef struct agent agent;
typedef struct statefile_writer statefile_writer;

#define POOL_DEFAULT "default"
#define POOL_VOLUME_MAX 255

typedef struct pool_waiter {
    void (*cb)(void *opaque);
    void *opaque;
    struct pool_waiter *next;
} pool_waiter;

typedef struct pool {
    agent *agent;
    char name[VM_NAME_MAX + 1];
    img_pool_spec spec;
    char location[PATH_MAX + 300];   /* the canonical spec string */
    bool autostart;
    bool active;
    bool busy;                       /* a start, stop or undefine in flight */
    bool starting;                   /* that is a start */
    bool undefined;                  /* removed; freed when its file is gone */
    /* Where volumes are when active: the directory, the NFS mount point, or
     * the block device itself (a phy pool is one volume). */
    char path[PATH_MAX];
    char file_path[PATH_MAX];        /* STATE/pools/NAME.json */
    statefile_writer *file;
    pool_waiter *started;            /* called once the start in flight ends */
    struct pool *next;
} pool;

pool *pool_find(agent *a, const char *name);
/* Parses {"name", "location", "autostart"}; errors name the field. */
int pool_new_from_json(agent *a, struct json_object *def, pool **ret, char *err, size_t errlen);
struct json_object *pool_definition_json(const pool *p);
struct json_object *pool_summary_json(const pool *p);
void pool_free(pool *p);
void pool_append(agent *a, pool *p);
void pool_unlink(agent *a, pool *p);

/* Reads STATE/pools at start-up, defining the default pool from the config
 * when there is none. Blocking: before the loop serves anyone. */
void pools_load(agent *a);

/* The directories of active pools (dir and nfs), NULL-terminated, for
 * img_open's roots; phy devices come as their device paths. A copy the
 * caller frees with pool_roots_free, safe to hand to a pool thread. */
char **pool_roots(agent *a);
void pool_roots_free(char **roots);

/* "vm1.sda.qcow2": letters, digits, ".", "_", "+", "-"; not starting with
 * "." or "-"; at most 255 bytes. */
bool pool_volume_name_valid(const char *name);
/* The path of a volume in an active pool; for a phy pool the device (name
 * must be empty). -ENOENT inactive, -EINVAL bad name, -ENAMETOOLONG. */
int pool_volume_path(const pool *p, const char *volume, char *buf, size_t len);
/* The active pool whose directory holds path directly, and the volume name;
 * NULL when none. */
pool *pool_of_path(agent *a, const char *path, const char **ret_volume);

/* Start and stop: a dir pool's directory is created when missing, an nfs
 * pool mounted (mount-nfs helper) under STATE/mnt/NAME, a phy pool's device
 * checked. cb runs on the loop once done; err holds the reason on failure. */
typedef void pool_cb(pool *p, int status, const char *err, void *opaque);
int pool_start(pool *p, pool_cb *cb, void *opaque);
int pool_stop(pool *p, pool_cb *cb, void *opaque);
/* cb(opaque) once the start in flight has ended, well or not (after its
 * own callback), for work that needs the pool and came while it was being
 * started: the agent starts its pools after it begins to answer. -EINVAL
 * when no start is in flight. */
int pool_when_started(pool *p, void (*cb)(void *opaque), void *opaque);
/* Starts every autostart pool, then calls done (at once when there is none). */
void pools_autostart(agent *a, void (*done)(agent *a));

/* Persists the definition; cb(status). */
int pool_save(pool *p, void (*cb)(int status, void *opaque), void *opaque);

#endif
