/* vm_cgroup.c: a VM's QEMU in its cgroup (see vm_cgroup.h). */
#include "vm_cgroup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "log.h"
#include "vm.h"
#include "work.h"

#define LEAVE_TRIES 25
#define LEAVE_WAIT_NS (20 * 1000 * 1000)

int vm_cgroup_enter(const cg_host *h, const vm_def *def, pid_t pid, char *err, size_t errlen)
{
    cg_limits lim = { .cpu_weight = def->cpu_weight, .memory_max = def->memory_limit_mib << 20 };
    char msg[384];
    int r;

    if (!h || h->mode == CG_NONE) {
        if (!def->cpu_weight && !def->memory_limit_mib)
            return 0;
        snprintf(err, errlen, "%s: this host has no usable cgroup controllers",
                 def->cpu_weight ? "cpu-shares" : "memory-limit");
        return -EOPNOTSUPP;
    }
    if ((r = cg_vm_create(h, def->name, &lim, msg, sizeof(msg))) < 0 ||
        (r = cg_vm_attach(h, def->name, pid, msg, sizeof(msg))) < 0) {
        snprintf(err, errlen, "cgroup: %s", msg);
        return r;
    }
    return 0;
}

int vm_cgroup_leave(const cg_host *h, const char *name, char *err, size_t errlen)
{
    struct timespec wait = { 0, LEAVE_WAIT_NS };
    int r = 0;

    if (!h || h->mode == CG_NONE)
        return 0;
    /* A QEMU that was not our child may still be leaving when we hear of its end. */
    for (int i = 0; i < LEAVE_TRIES; i++) {
        if ((r = cg_vm_remove(h, name, err, errlen)) != -EBUSY)
            return r;
        nanosleep(&wait, NULL);
    }
    return r;
}

typedef struct release_work {
    vm *v;
    char name[VM_NAME_MAX + 1];
    pid_t adopt;           /* 0: remove the group; else check that this QEMU is in it */
    bool update;           /* write the limits of def to the group instead */
    vm_def def;            /* the limits, for an adopted QEMU found outside its group */
    int status;
    char err[384];
} release_work;

static void run_release(void *arg)
{
    release_work *w = arg;
    const cg_host *h = w->v->agent->cgroups;

    if (w->update) {
        cg_limits lim = { .cpu_weight = w->def.cpu_weight, .memory_max = w->def.memory_limit_mib << 20 };
        w->status = cg_vm_create(h, w->name, &lim, w->err, sizeof(w->err));
    } else if (!w->adopt)
        w->status = vm_cgroup_leave(h, w->name, w->err, sizeof(w->err));
    else if (cg_vm_find(h, w->name, w->adopt) != 1)
        w->status = vm_cgroup_enter(h, &w->def, w->adopt, w->err, sizeof(w->err));
}

static void after_release(void *arg)
{
    release_work *w = arg;

    w->v->pending_io--;
    if (w->status < 0 && w->update)
        log_err("vm %s: its cgroup keeps its old limits: %s", w->name, w->err);
    else if (w->status < 0 && w->adopt)
        log_err("vm %s: its QEMU was outside its cgroup and could not be put back: %s", w->name, w->err);
    else if (w->status < 0)
        log_err("vm %s: its cgroup stays: %s", w->name, w->err);
    free(w);
}

static void queue(vm *v, pid_t adopt, bool update, uint32_t cpu_weight, uint64_t memory_limit_mib)
{
    release_work *w;

    if (!v->agent->cgroups || !(w = calloc(1, sizeof(*w))))
        return;
    w->v = v;
    w->adopt = adopt;
    w->update = update;
    w->def.cpu_weight = cpu_weight;
    w->def.memory_limit_mib = memory_limit_mib;
    snprintf(w->def.name, sizeof(w->def.name), "%s", v->def.name);
    snprintf(w->name, sizeof(w->name), "%s", v->def.name);
    v->pending_io++;
    if (agent_work(v->agent->loop, run_release, after_release, w) < 0) {
        v->pending_io--;
        free(w);
    }
}

void vm_cgroup_release(vm *v)
{
    queue(v, 0, false, v->def.cpu_weight, v->def.memory_limit_mib);
}

void vm_cgroup_adopt(vm *v, pid_t pid)
{
    queue(v, pid, false, v->def.cpu_weight, v->def.memory_limit_mib);
}

void vm_cgroup_update(vm *v, uint32_t cpu_weight, uint64_t memory_limit_mib)
{
    if (v->agent->cgroups && v->agent->cgroups->mode != CG_NONE)
        queue(v, 0, true, cpu_weight, memory_limit_mib);
}

bool vm_cgroup_memory_live(uint64_t old_mib, uint64_t next_mib)
{
    return next_mib == 0 || (old_mib && next_mib >= old_mib);
}

bool vm_cgroup_applies_live(const vm *v, const vm_def *next, const char *field)
{
    const cg_host *h = v->agent->cgroups;

    if (!h || h->mode == CG_NONE)
        return false;
    return !strcmp(field, "cpu-shares") ||
           (!strcmp(field, "memory-limit") && vm_cgroup_memory_live(v->def.memory_limit_mib, next->memory_limit_mib));
}
