/* vm_disks.h: a VM's disks made ready for QEMU: each disk's file found in
 * its pool (on the loop), then its whole backing chain opened and checked
 * by storage/ (on the thread pool), so QEMU is told every node's file and
 * format explicitly and never probes one. */
#ifndef AGENTD_VM_DISKS_H
#define AGENTD_VM_DISKS_H

#include <limits.h>
#include <stddef.h>

#include "qemu_argv.h"
#include "vmdef.h"

typedef struct agent agent;

typedef struct vm_disk_files {
    size_t ndisks;
    char source[VM_DISKS_MAX][PATH_MAX];      /* "" for an empty cdrom */
    char **roots;                             /* active pools */
    /* filled by vm_disks_open: */
    qemu_disk_chain chains[VM_DISKS_MAX];
    char node_paths[VM_DISKS_MAX][16][PATH_MAX];
} vm_disk_files;

/* On the loop: where each disk of def is; -EINVAL with a message naming the
 * disk when its pool is unknown or not started. */
int vm_disks_locate(agent *a, const vm_def *def, vm_disk_files *ret, char *err, size_t errlen);
/* On the thread pool: opens every chain (inside the pools, at most 16
 * deep, top writable unless read-only) and fills chains. */
int vm_disks_open(const vm_def *def, vm_disk_files *f, char *err, size_t errlen);
/* The same for disk i alone (a disk attached to a running VM). */
int vm_disks_open_one(const vm_def *def, size_t i, vm_disk_files *f, char *err, size_t errlen);
void vm_disk_files_free(vm_disk_files *f);

#endif
