/* vm_qga.h: the guest's file systems frozen and thawed through its guest
 * agent (qemu-ga on the definition's guest-agent channel), around a live
 * snapshot, as OpenNebula does before snap-create. */
#ifndef AGENTD_VM_QGA_H
#define AGENTD_VM_QGA_H

#include <stdbool.h>

#include "vm.h"

/* sent: guest-fsfreeze-freeze went to the guest (a thaw must follow, even
 * when it failed or timed out); frozen: the agent said the file systems
 * are frozen. Neither when the VM has no channel or no agent answers a
 * ping within a few seconds: the snapshot is then crash-consistent. */
typedef void vm_qga_frozen_cb(vm *v, bool sent, bool frozen, void *opaque);
typedef void vm_qga_thawed_cb(vm *v, void *opaque);

void vm_qga_freeze(vm *v, vm_qga_frozen_cb *cb, void *opaque);
/* Always calls cb; a failed thaw is logged (qemu-ga thaws by itself only
 * when asked, so the log says the guest may still be frozen). */
void vm_qga_thaw(vm *v, vm_qga_thawed_cb *cb, void *opaque);

#endif
