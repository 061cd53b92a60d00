/* vm_snapshot.h: external disk snapshots (docs/protocol.md, "Snapshots").
 *
 * A snapshot freezes every writable disk's current image (its "state") and
 * puts a new empty qcow2 overlay on top of it, made by the image layer; the
 * definition then names the overlay. Revert puts a fresh overlay on the
 * snapshot's states and drops what was written since (and the later
 * snapshots); delete merges the state into the overlay above it (a
 * stream: by the image layer's rebase on a stopped VM, by QEMU's
 * block-stream on a running one) and removes the state. The record is vms/NAME.snapshots. */
#ifndef AGENTD_VM_SNAPSHOT_H
#define AGENTD_VM_SNAPSHOT_H

#include "vm.h"

struct json_object;

#define VM_SNAPSHOT_NAME_MAX 32

int vm_snapshot_create(vm *v, const char *name, vm_done_cb cb, void *opaque, vm_result *res);
int vm_snapshot_revert(vm *v, const char *name, vm_done_cb cb, void *opaque, vm_result *res);
int vm_snapshot_delete(vm *v, const char *name, vm_done_cb cb, void *opaque, vm_result *res);
/* The snapshots, oldest first (a new reference). */
struct json_object *vm_snapshot_list(const vm *v);

/* The snapshots' state files, latest first (each only once the files above
 * it are gone, for deleting a VM's images in order): how many there are;
 * at most max are written to out (which may be NULL). */
size_t vm_snapshot_states(const vm *v, char (*out)[PATH_MAX], size_t max);

/* At agent start, after the definition. */
void vm_snapshot_load(vm *v);

/* ---- hooks for the VM runtime (vm_run.c) ---------------------------------- */

/* Any QEMU event; a delete's BLOCK_JOB_COMPLETED is taken. */
void vm_snapshot_on_event(vm *v, const char *event, struct json_object *data);
/* QEMU ended: a delete it ran lets go (the job is ended by the exit's handling;
 * the snapshot stays, its state still on disk). */
void vm_snapshot_on_exit(vm *v);

#endif
