/* master.h: VM masters (xCAT's vmmaster table) and the clone jobs around
 * them: master-create copies a stopped VM's disks into a master and, when
 * attached, turns the VM into an overlay of it; vm-clone makes a new VM from
 * a master, its disks overlays of the master's (attached) or full copies
 * (detached). A master is kept in STATE/masters/NAME.json with the
 * definition its clones inherit. */
#ifndef AGENTD_MASTER_H
#define AGENTD_MASTER_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmdef.h"

struct json_object;
typedef struct agent agent;
typedef struct statefile_writer statefile_writer;

typedef struct master {
    agent *agent;
    vm_def def;              /* name = the master's; disks point at its volumes */
    char os[64], arch[32], profile[64];
    char originator[64];     /* the user who made it */
    char from_vm[VM_NAME_MAX + 1];
    int64_t created;         /* seconds since the epoch */
    bool busy;               /* a clone reads it, or it is being deleted */
    int readers;             /* clone jobs copying from it */
    char file_path[PATH_MAX];
    statefile_writer *file;
    struct master *next;
} master;

master *master_find(agent *a, const char *name);
/* Reads STATE/masters at start-up. */
void masters_load(agent *a);
void master_free(master *m);
/* The vmmaster row plus disks and definition, for query-masters. */
struct json_object *master_json(const master *m);
/* The file's form, and back; errors name the field. */
struct json_object *master_record_json(const master *m);
int master_from_json(agent *a, struct json_object *o, master **ret, char *err, size_t errlen);
void master_append(agent *a, master *m);
void master_unlink(agent *a, master *m);
/* Persists the record (NULL data removes it: see statefile_writer_put). */
int master_save(master *m, void (*cb)(int status, void *opaque), void *opaque);

/* The master with a disk at path, or NULL. */
const char *master_of_path(agent *a, const char *path);
/* Its name as a JSON string, or NULL (JSON null). */
struct json_object *master_of_path_json(agent *a, const char *path);

#endif
