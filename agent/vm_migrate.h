/* vm_migrate.h: live migration between agents, in three steps the caller
 * drives (docs/protocol.md, "Live migration"):
 *
 *   destination  vm_migrate_incoming: QEMU waits with -incoming defer
 *   source       vm_migrate: QEMU sends; the reply once all is sent
 *   destination  vm_migrate_finish: the guest resumes there, the VM is its own
 *   source       vm_migrate_confirm: QEMU quits and the VM goes (or resumes)
 *
 * Neither side resumes a guest on its own once the stream completed, so the
 * guest never runs on both hosts; an agent restart keeps each side where it
 * was (the runtime record and the incoming marker say so). */
#ifndef AGENTD_VM_MIGRATE_H
#define AGENTD_VM_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>

#include "vm.h"

struct json_object;

typedef struct vm_migrate_opts {
    uint32_t downtime_limit_ms;    /* default 300 */
    uint32_t bandwidth_mib;        /* MiB/s; 0: unlimited */
    bool auto_converge;            /* default true */
    uint32_t multifd_channels;     /* 0: off */
    char multifd_compression[8];   /* "none", "zlib", "zstd" */
    uint32_t stall_timeout_s;      /* no byte sent for this long: cancelled; default 60 */
    uint32_t timeout_s;            /* the whole migration; default 3600 */
} vm_migrate_opts;

void vm_migrate_opts_default(vm_migrate_opts *o);

/* Destination: def (taken over) becomes an incoming VM; the reply is
 * {"uri": ...} once QEMU listens. */
int vm_migrate_incoming(agent *a, vm_def *def, const vm_migrate_opts *o, vm_done_cb cb, void *opaque,
                        vm_result *res);
/* Destination: the stream completed; the guest resumes and the VM is ours. */
int vm_migrate_finish(vm *v, vm_done_cb cb, void *opaque, vm_result *res);

/* Source: sends the running guest to uri ("tcp:HOST:PORT"). */
int vm_migrate(vm *v, const char *uri, const vm_migrate_opts *o, vm_done_cb cb, void *opaque, vm_result *res);
int vm_migrate_cancel(vm *v, vm_done_cb cb, void *opaque, vm_result *res);
/* Source, once migrated: completed, QEMU quits and the VM is removed here
 * (its disks stay); not completed, the guest resumes here. */
int vm_migrate_confirm(vm *v, bool completed, vm_done_cb cb, void *opaque, vm_result *res);

/* ---- hooks for the VM runtime (vm_run.c) ---------------------------------- */

/* QMP is up on a QEMU started for an incoming migration. */
void vm_migrate_in_qmp_ready(vm *v);
/* A MIGRATION event (or any other: ignored) from QEMU. */
void vm_migration_on_event(vm *v, const char *event, struct json_object *data);
/* QEMU ended: true when migration handled it (the VM may be freed). */
bool vm_migration_on_exit(vm *v, struct json_object *info);
/* An adopted QEMU of a VM in or after a migration: is_running from QEMU. */
void vm_migration_adopted(vm *v, bool is_running);
/* The QEMU of an incoming VM was gone when the agent started: it goes. */
void vm_migration_drop(vm *v, const char *status);

#endif
