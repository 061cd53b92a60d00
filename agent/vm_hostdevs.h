/* vm_hostdevs.h: a VM's passed-through PCI devices at run time.
 *
 * Before QEMU starts, each device's IOMMU group is checked (nothing in it
 * the VM does not take, and no device another VM holds), an SR-IOV VF gets
 * the MAC and VLAN its definition asks for through its PF, and each device
 * moves to vfio-pci with the driver it had recorded. After QEMU ends (or
 * fails to start) each goes back to that driver. What is held is kept in
 * the VM's runtime record, so an agent restarted after its QEMU died
 * still gives the devices back. */
#ifndef AGENTD_VM_HOSTDEVS_H
#define AGENTD_VM_HOSTDEVS_H

#include <stddef.h>

#include "net/passthrough.h"
#include "vmdef.h"

struct json_object;
typedef struct agent agent;
typedef struct vm vm;

typedef struct vm_hostdevs_held {
    size_t n;
    struct {
        char host[VM_PCI_TEXT];
        char driver[NET_PCI_DRIVER_MAX];   /* what it goes back to */
    } dev[VM_HOSTDEVS_MAX];
} vm_hostdevs_held;

/* The agent's sysfs (its configured root and test seam). */
void vm_hostdevs_sysfs(const agent *a, net_sysfs *ret);

/* On the loop: none of v's devices is held by another VM that runs or is
 * starting. err names passthrough[i] and the other VM. */
int vm_hostdevs_check_free(agent *a, const vm *v, char *err, size_t errlen);

/* On the thread pool. On failure whatever was taken is given back. */
int vm_hostdevs_take(const net_sysfs *s, const vm_def *def, vm_hostdevs_held *held, char *err, size_t errlen);
/* On the thread pool: every held device back to its driver (all are
 * tried); held is emptied. -errno and err for the first that failed. */
int vm_hostdevs_give_back(const net_sysfs *s, vm_hostdevs_held *held, char *err, size_t errlen);

/* Gives back held (copied) on the thread pool and logs the outcome for v. */
void vm_hostdevs_release(vm *v, const vm_hostdevs_held *held);

/* For the runtime record: [{"host": ..., "driver": ...}]; NULL when none. */
struct json_object *vm_hostdevs_to_json(const vm_hostdevs_held *held);
int vm_hostdevs_from_json(struct json_object *o, vm_hostdevs_held *ret);

#endif
