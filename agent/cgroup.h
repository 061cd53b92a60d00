/* cgroup.h: a cgroup of its own for each QEMU process, with its CPU weight
 * and memory limit.
 *
 * The host is detected once (cg_host_detect): cgroup v1 when the cpu or
 * memory controllers have hierarchies of their own, else the unified v2
 * hierarchy when it offers both. A VM's group is PARENT/vm-NAME in every
 * hierarchy in use; PARENT (the agent's configured group, e.g. "agentd") is
 * relative to each hierarchy's root. Every call is a few small blocking
 * syscalls on cgroupfs: the agent makes them from its thread pool, never on
 * the event loop. Errors are -errno, with a message naming the file or
 * directory that was refused in the caller's err buffer. */
#ifndef AGENTD_CGROUP_H
#define AGENTD_CGROUP_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum cg_mode {
    CG_NONE,   /* neither cpu nor memory can be controlled */
    CG_V1,
    CG_V2,
} cg_mode;

/* Controller bits of a hierarchy. */
#define CG_CPU 1u
#define CG_MEMORY 2u

typedef struct cg_hierarchy {
    char root[PATH_MAX];    /* its mount point (with the test prefix, if any) */
    unsigned controllers;   /* CG_CPU | CG_MEMORY, those used from it */
} cg_hierarchy;

typedef struct cg_host {
    cg_mode mode;
    size_t n;               /* hierarchies in use: v1 up to 2, v2 1, none 0 */
    cg_hierarchy h[2];
    char parent[PATH_MAX];
} cg_host;

typedef struct cg_limits {
    uint32_t cpu_weight;    /* 1..10000, v2 scale (100 is the default); 0 = default */
    uint64_t memory_max;    /* bytes; 0 = no limit */
} cg_limits;

/* Reads mounts_path (/proc/self/mounts format; NULL: "/proc/self/mounts")
 * for the v1 cpu and memory hierarchies (cpu may be co-mounted, as
 * "cpu,cpuacct") and the cgroup2 mount, and picks the mode. When
 * sysfs_cgroup_root is not NULL it is prepended to every mount point found,
 * so a test can mirror /sys/fs/cgroup/... in a temp directory. parent is one
 * or more '/'-separated names of [A-Za-z0-9._-], none starting with '.'.
 * Finding no usable controller is not an error: ret->mode is CG_NONE. */
int cg_host_detect(const char *mounts_path, const char *sysfs_cgroup_root, const char *parent, cg_host *ret,
                   char *err, size_t errlen);

/* Makes PARENT and PARENT/vm-NAME in each hierarchy and writes the limits:
 * v1 cpu.shares (see cg_shares_from_weight) and memory.limit_in_bytes, v2
 * cpu.weight and memory.max. A zero limit writes the kernel's default
 * (shares 1024, weight 100, no memory limit), so a group left by a crash is
 * reused with exactly these limits. On v2 "+cpu +memory" is written to
 * cgroup.subtree_control of the root and of each component of PARENT; a
 * refused write is tolerated when the controllers are already enabled
 * there. PARENT must not hold processes itself on v2 (the kernel refuses
 * to enable controllers in a group with processes). A nonzero limit whose
 * controller the host lacks is -EOPNOTSUPP; so is any call on CG_NONE. */
int cg_vm_create(const cg_host *h, const char *vm_name, const cg_limits *lim, char *err, size_t errlen);
/* Moves pid into the VM's group of each hierarchy (cgroup.procs). */
int cg_vm_attach(const cg_host *h, const char *vm_name, pid_t pid, char *err, size_t errlen);
/* For adoption after an agent restart: 1 when pid is listed in cgroup.procs
 * of the VM's group (in the first hierarchy in use), 0 when it is not or the
 * group does not exist, -errno otherwise. */
int cg_vm_find(const cg_host *h, const char *vm_name, pid_t pid);
/* Removes the VM's group from each hierarchy, going on after a failure and
 * returning the first. A group already gone is success; one that still holds
 * a process is -EBUSY naming its directory. On CG_NONE there is nothing to
 * remove: 0. */
int cg_vm_remove(const cg_host *h, const char *vm_name, char *err, size_t errlen);

/* "v1", "v2" or "none". */
const char *cg_mode_name(const cg_host *h);

/* OpenNebula's CPU (a share of one physical CPU; 1.0 is a whole one) as a
 * v2 weight: round(cpu * 100), clamped to 1..10000, so CPU=1.0 gets the
 * default weight 100 and CPU=0.5 gets 50. NaN and values <= 0 give 1. */
uint32_t cg_weight_from_cpu(double cpu);
/* A v2 weight as v1 cpu.shares: v1's default 1024 is v2's 100, so
 * weight * 1024 / 100, clamped to the kernel's 2..262144. */
uint64_t cg_shares_from_weight(uint32_t weight);

/* Test seams, NULL in the agent. A plain directory is not cgroupfs: the
 * kernel fills a new group with its interface files and drops them on
 * rmdir. A fake tree stands in for that with these hooks:
 * cg_test_after_mkdir runs with each directory this module creates (not one
 * that already existed), cg_test_before_rmdir with each VM directory it is
 * about to rmdir. The module itself only ever calls mkdir and rmdir. */
extern void (*cg_test_after_mkdir)(const char *dir);
extern void (*cg_test_before_rmdir)(const char *dir);

#endif
