/* vm_send.h: offline migration of a stopped VM to another agent
 * (docs/protocol.md, "Offline migration"): kvmsh's dumpxml, copy the disks,
 * define there, delete here, as three steps a caller drives.
 *
 * Source: vm-send answers with the definition and the disks it will send,
 * then the connection carries their content (sendstream.h) read through
 * the image layer: each disk's whole chain, flattened, zeros left out. Once
 * all went out the VM is `sent` (recorded in vms/NAME.sent): it cannot
 * start here until vm-send-confirm says the destination has it (the VM and
 * its disks are then removed here) or that it failed (the VM is stopped
 * here again, as it was).
 *
 * Destination: vm-receive takes the definition and the disks' sizes, then
 * the connection's bytes are the stream; each disk is written by the image
 * layer under a temp name and installed at its path when whole. At the end
 * the definition is saved and the VM is ours, stopped; a line
 * {"event": "VM_RECEIVED", ...} on that connection says how it ended. */
#ifndef AGENTD_VM_SEND_H
#define AGENTD_VM_SEND_H

#include <stdbool.h>

#include "vm.h"

typedef struct request request;

/* Answers r (an error, or the reply after which r's connection is the stream). */
void vm_send_start(vm *v, request *r);
/* vm-send-confirm with completed false: the destination does not have the
 * VM, so it is stopped here again (completed true is a vm-undefine with
 * purge, in commands.c). */
int vm_send_undo(vm *v, vm_done_cb cb, void *opaque, vm_result *res);
/* At agent start, after the definition: a sent record makes the VM sent. */
void vm_send_load(vm *v);
void vm_send_free(vm *v);

/* def is taken over. Answers r. */
void vm_receive_start(agent *a, vm_def *def, const uint64_t *sizes, size_t nsizes, request *r);
/* At agent start, before the definitions load: what an interrupted receive
 * left (temp files, disks it installed, its record) is removed; a receive
 * whose definition was saved had finished, and only its record goes. */
void vm_receive_recover(agent *a);
void vm_receive_free(vm *v);

/* The disks an offline migration sends: writable, not cdroms. Shared ones
 * (cdroms, read-only disks) must exist on the destination already. */
bool vm_send_disk_sent(const vm_disk *d);

#endif
