/* vm_save.h: a running guest's state written to a file (vm-save), and a VM
 * started again from it (vm-restore), in the same way QEMU migrates: to and
 * from an fd the agent opened and passed with getfd (docs/protocol.md,
 * "Save and restore").
 *
 * While saved, the VM has no QEMU and only vm-restore or vm-save-discard
 * change it; its disks are guarded by the size and modification time of
 * each disk's image, taken once QEMU let go of them, and checked again
 * before a restore. */
#ifndef AGENTD_VM_SAVE_H
#define AGENTD_VM_SAVE_H

#include <stdbool.h>
#include <stdint.h>

#include "vm.h"

struct json_object;

/* file: absolute, must not exist (nor file.part, where it is written). */
int vm_save(vm *v, const char *file, uint32_t timeout_s, vm_done_cb cb, void *opaque, vm_result *res);
int vm_restore(vm *v, uint32_t timeout_s, vm_done_cb cb, void *opaque, vm_result *res);
/* The saved state goes (record, then file); the VM is stopped and boots afresh. */
int vm_save_discard(vm *v, vm_done_cb cb, void *opaque, vm_result *res);

/* At agent start, after the definition: a saved record makes the VM saved. */
void vm_save_load(vm *v);
/* The runtime record's "save" member (NULL when none is in flight). */
struct json_object *vm_save_mark_json(const vm *v);
void vm_save_mark_from_json(vm *v, struct json_object *mark);
/* query-vm's "saved" member (NULL when not saved). */
struct json_object *vm_save_runtime_json(const vm *v);
void vm_save_free(vm *v);

/* ---- hooks for the VM runtime (vm_run.c) ---------------------------------- */

/* QMP is up on a QEMU started for vm-restore. */
void vm_save_qmp_ready(vm *v);
/* Any QEMU event; MIGRATION ones during a save or restore are taken. */
void vm_save_on_event(vm *v, const char *event, struct json_object *data);
/* QEMU ended: true when the save or restore settled the VM's state. */
bool vm_save_on_exit(vm *v, struct json_object *info);
/* An adopted QEMU whose runtime record has a save mark. */
void vm_save_adopted(vm *v, bool is_running);
/* The QEMU of a VM with a save mark was gone when the agent started. */
void vm_save_gone(vm *v);

#endif
