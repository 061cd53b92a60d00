/* vm_resize.h: a running VM's vCPUs and memory: vCPUs added up to
 * max-vcpus and removed again where QEMU allows it, memory grown up to
 * max-memory with a pc-dimm, and the balloon's target. vCPU and memory
 * changes are jobs and are saved in the definition; the balloon is not. */
#ifndef AGENTD_VM_RESIZE_H
#define AGENTD_VM_RESIZE_H

#include <stdint.h>

#include "vm.h"

int vm_set_vcpus(vm *v, uint32_t vcpus, uint32_t timeout_ms, vm_done_cb cb, void *opaque, vm_result *res);
/* mib: the new total, above the current one by a multiple of 128 MiB. */
int vm_set_memory(vm *v, uint64_t mib, vm_done_cb cb, void *opaque, vm_result *res);
/* The memory the guest is asked to keep (virtio-balloon), MiB. */
int vm_set_balloon(vm *v, uint64_t mib, vm_done_cb cb, void *opaque, vm_result *res);

#endif
