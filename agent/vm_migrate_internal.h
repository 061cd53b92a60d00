/* vm_migrate_internal.h: what the two sides of a live migration share
 * (vm_migrate.c, the source; vm_migrate_in.c, the destination). */
#ifndef AGENTD_VM_MIGRATE_INTERNAL_H
#define AGENTD_VM_MIGRATE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "vm_migrate.h"

/* QEMU refuses a max-bandwidth past SIZE_MAX / 1000; this is unlimited in practice. */
#define MIGRATION_UNLIMITED_BANDWIDTH (INT64_C(1) << 40)

struct json_object;
typedef struct uv_timer_s uv_timer_t;
typedef void (*uv_timer_cb)(uv_timer_t *handle);

struct vm_migration {
    vm *v;
    bool outgoing;
    vm_migrate_opts opts;
    char uri[128];
    vm_state prev;              /* source: the state to return to if it fails */
    int64_t started_ms, last_progress_ms, last_transferred;
    const char *fail_class;     /* source: we cancelled it (Cancelled, Timeout) */
    char fail_desc[256];
    unsigned figure_retries;    /* source: queries made for the final figures */
    unsigned port;              /* destination: the port tried or listened on */
    bool active;                /* destination: the stream is coming in */
    bool completed;             /* destination: the whole stream is here */
    bool finish_waiting;        /* destination: vm-migrate-finish waits for the stream's end */
};

/* A vm-migrate-cancel waiting for migrate_cancel's reply. */
typedef struct vm_cancel_req {
    vm *v;
    vm_done_cb cb;
    void *opaque;
} vm_cancel_req;

int64_t migration_i64(struct json_object *o, const char *key);
const char *migration_str(struct json_object *o, const char *key);
/* VM_MIGRATION with role, status and error (may be NULL). */
void migration_emit(vm *v, const char *role, const char *status, const char *error);
/* The VM's migration record (replacing any), or NULL without memory. */
vm_migration *migration_new(vm *v, bool outgoing);
void migration_end(vm *v);
void migration_timer_start(vm *v, uint64_t ms, uint64_t repeat, uv_timer_cb cb);
/* migrate-set-capabilities' arguments: events always, the rest from o. */
struct json_object *migration_capabilities(const vm_migrate_opts *o, bool outgoing);
/* The multifd members added to args (NULL: a new object). */
struct json_object *migration_multifd_parameters(const vm_migrate_opts *o, struct json_object *args);
/* The VM leaves this agent: definition, marker and records go (not its
 * disks), VM_UNDEFINED is emitted and the object is freed. */
void migration_leave(vm *v);

/* vm_migrate_in.c */
void migrate_in_event(vm *v, const char *status);
bool migrate_in_exit(vm *v, struct json_object *info);
void migrate_in_adopted(vm *v, bool is_running);

#endif
