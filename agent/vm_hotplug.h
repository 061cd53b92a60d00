/* vm_hotplug.h: devices attached to and detached from a running VM's QEMU,
 * each a job of the VM, each change saved in its definition with the slot
 * the device took, so a restart puts it back where it was.
 *
 * Attach: the definition with the new device (validated, defaults filled in)
 * is handed over; the agent makes what the device needs (the disk file, its
 * chain opened and checked, the tap), adds the backends and the device over
 * QMP, and on any failure removes what it added. Detach: device_del, the
 * guest's release awaited (DEVICE_DELETED, with a deadline), then the
 * backends removed. */
#ifndef AGENTD_VM_HOTPLUG_H
#define AGENTD_VM_HOTPLUG_H

#include <stdint.h>

#include "vm.h"

/* next: v's definition with one disk added at the end (taken in every case). */
int vm_disk_attach(vm *v, vm_def *next, vm_done_cb cb, void *opaque, vm_result *res);
int vm_disk_detach(vm *v, const char *target, uint32_t timeout_ms, vm_done_cb cb, void *opaque,
                   vm_result *res);

/* next: v's definition with one NIC added at the end (taken in every case). */
int vm_nic_attach(vm *v, vm_def *next, vm_done_cb cb, void *opaque, vm_result *res);
int vm_nic_detach(vm *v, const char *mac, uint32_t timeout_ms, vm_done_cb cb, void *opaque, vm_result *res);

/* DEVICE_DELETED outside a job: a detach that timed out, finished late by the guest. */
void vm_hotplug_late_delete(vm *v, const char *device_id);

#endif
