/* vm_nics.h: a VM's NICs made ready for QEMU, on the thread pool: each
 * NIC's tap on its bridge (net/), vhost-net for virtio when the host has
 * it, and the fd numbers QEMU will see them at. The taps live as long as
 * their fds: the agent closes its copies once QEMU has been spawned with
 * them, so a tap goes when its QEMU goes, and a VM that never started
 * leaves none. */
#ifndef AGENTD_VM_NICS_H
#define AGENTD_VM_NICS_H

#include <stdbool.h>
#include <stddef.h>

#include "net/net.h"
#include "qemu_argv.h"
#include "vmdef.h"

typedef struct vm_nic_fds {
    size_t nnics;
    net_tap taps[VM_NICS_MAX];
    int vhost[VM_NICS_MAX][NET_QUEUES_MAX];
    qemu_nic_fds child[VM_NICS_MAX];     /* what QEMU's argv names */
    int extra[VM_NICS_MAX * NET_QUEUES_MAX * 2];   /* the agent's fds, in child order */
    size_t nextra;
} vm_nic_fds;

/* The tap of a VM's NIC i: "vn" and the first 8 hex digits of the uuid,
 * "-" and i: deterministic, at most 15 characters, found again after an
 * agent restart. */
void vm_nic_tap_name(const vm_def *def, size_t i, char out[IFNAMSIZ]);

/* Child fds are numbered from first_fd up. With create_bridges a missing
 * bridge is made (with VLAN filtering when a NIC of the VM has VLANs).
 * -errno and err naming the NIC when something cannot be set up; then
 * nothing is left open. */
int vm_nics_open(const vm_def *def, bool create_bridges, int first_fd, vm_nic_fds *f, char *err,
                 size_t errlen);
/* NIC i alone, for a running VM: its tap and vhost fds at position 0 of f
 * (no child numbering: they go to QEMU with getfd). */
int vm_nics_open_one(const vm_def *def, size_t i, bool create_bridges, vm_nic_fds *f, char *err,
                     size_t errlen);
void vm_nics_close(vm_nic_fds *f);

#endif
