/* vm_cgroup.h: each QEMU in a cgroup of its own (cgroup.h), under the
 * host setting cgroup-parent, with the definition's cpu-shares as its CPU
 * weight and memory-limit as its memory cap. Made just before the spawn
 * and joined right after it, removed once QEMU has ended. Everything here
 * but vm_cgroup_release runs on the thread pool. */
#ifndef AGENTD_VM_CGROUP_H
#define AGENTD_VM_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cgroup.h"
#include "vmdef.h"

typedef struct vm vm;

/* Makes the VM's group with its limits and moves pid into it. h NULL (no
 * usable controllers): nothing, unless the definition asks for limits. */
int vm_cgroup_enter(const cg_host *h, const vm_def *def, pid_t pid, char *err, size_t errlen);
/* Removes the VM's group, waiting a little for an exiting QEMU to leave. */
int vm_cgroup_leave(const cg_host *h, const char *name, char *err, size_t errlen);
/* On the loop, for a QEMU found gone at adoption: the group goes, on the
 * thread pool. */
void vm_cgroup_release(vm *v);
/* On the loop, for an adopted QEMU: put back in its group if it is not there. */
void vm_cgroup_adopt(vm *v, pid_t pid);
/* On the loop, after the definition's limits changed on a running VM: its
 * group takes these (on the thread pool; a failure is logged). */
void vm_cgroup_update(vm *v, uint32_t cpu_weight, uint64_t memory_limit_mib);
/* The memory cap a running QEMU's group can take from old to next. */
bool vm_cgroup_memory_live(uint64_t old_mib, uint64_t next_mib);
/* Whether a change of the limits from old to next can be made to a running
 * QEMU's group: the CPU weight always, the memory cap only when it is
 * lifted or raised (lowering it could make the kernel kill the guest). */
bool vm_cgroup_applies_live(const vm *v, const vm_def *next, const char *field);

#endif
