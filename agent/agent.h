/* agent.h: the daemon's context, shared by its parts (one per process). */
#ifndef AGENTD_AGENT_H
#define AGENTD_AGENT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "qemu_argv.h"

typedef struct uv_loop_s uv_loop_t;
typedef struct event_log event_log;
typedef struct server server;
typedef struct vm vm;
typedef struct pool pool;
typedef struct master master;

#define AGENTD_VERSION_MAJOR 0
#define AGENTD_VERSION_MINOR 1
#define AGENTD_VERSION_MICRO 0
#define AGENTD_VERSION_STRING "0.1.0"

typedef struct agent {
    uv_loop_t *loop;
    agent_config cfg;
    vm_accel accel;               /* the resolved host default: KVM or TCG */
    bool kvm_available;
    int qemu_version;             /* major*10000 + minor*100 + micro, 0 if unknown */
    char qemu_version_str[64];
    char hostname[256];
    char vms_dir[PATH_MAX];       /* STATE/vms: definitions */
    char logs_dir[PATH_MAX];      /* STATE/logs: console and QEMU logs */
    char run_vms_dir[PATH_MAX];   /* RUN/vms: per-VM sockets and runtime records */
    char pools_dir[PATH_MAX];     /* STATE/pools: pool definitions */
    char mnt_dir[PATH_MAX];       /* STATE/mnt: where nfs pools are mounted */
    char masters_dir[PATH_MAX];   /* STATE/masters: the vmmaster table */
    int lock_fd;                  /* flock on STATE/agentd.lock: one agent per state dir */
    event_log *events;
    int64_t epoch;                /* this run's start, in microseconds: event numbers restart with it */
    server *server;
    vm *vms;                      /* singly linked, in definition order */
    pool *pools;                  /* singly linked, in definition order */
    master *masters;
    struct uv_timer_s *console_log_timer;   /* the console logs' size check */
    bool stopping;
    /* query-vms answered from this text until a VM changes: management nodes
     * poll it, and building 50 summaries per call dominated its cost. */
    char *vms_reply;
    size_t vms_reply_len;
    /* A test seam: sysfs writes go here when set (a fake kernel), else to
     * the files. */
    int (*sysfs_write)(void *opaque, const char *path, const char *value);
    struct cg_host *cgroups;      /* the host's cgroup controllers; NULL: none usable (or not probed) */
    void *sysfs_opaque;
} agent;

/* Something query-vms reports changed. */
void agent_vms_changed(agent *a);

/* The QEMU host settings, from the agent's. */
static inline void agent_qemu_host(const agent *a, qemu_host *ret)
{
    ret->binary = a->cfg.qemu_binary;
    ret->accel = a->accel;
    ret->run_as = a->cfg.qemu_user;
    ret->qemu_version = a->qemu_version;
}

#endif
