/* vm_resize.c: vCPUs and memory of a running VM (kvmsh's live growth up to
 * maxMemoryGb, OpenNebula's resize with hotplug).
 *
 * vCPUs: QEMU lists its CPU places with query-hotpluggable-cpus; growing
 * adds a device of the listed type at the lowest free places, shrinking
 * removes CPUs added that way, newest first, once the guest released each
 * (the CPUs QEMU started with cannot be unplugged). Afterwards the places
 * are counted again and that count is what the definition saves, so a
 * change that stopped half way still leaves the definition true.
 *
 * Memory grows by a pc-dimm on a memory-backend-ram of the difference (the
 * VM was started with slots and maxmem when it has max-memory); it shrinks
 * only through the balloon, whose target is not part of the definition. */
#include "vm_resize.h"
#include "vm_hotplug_job.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "agent.h"
#include "log.h"
#include "vm_internal.h"
#include "vm_qmpseq.h"

#define CPU_PLACES_MAX 512
#define MEMORY_BLOCK_MIB 128    /* x86 Linux onlines memory in blocks of this */
#define BALLOON_MIN_MIB 64

/* ---- vCPUs ------------------------------------------------------------------------ */

typedef struct cpu_place {
    int64_t socket, die, core, thread;
    struct json_object *entry;     /* borrowed from the reply */
    bool plugged;
    const char *id;                /* the device id of a CPU added by device_add, else NULL */
} cpu_place;

typedef struct vcpu_job {
    hotplug_job job;
    uint32_t want;
    uint32_t timeout_ms;
} vcpu_job;

static int64_t prop(struct json_object *props, const char *key)
{
    struct json_object *v;

    return json_object_object_get_ex(props, key, &v) ? json_object_get_int64(v) : 0;
}

static int place_order(const void *pa, const void *pb)
{
    const cpu_place *a = pa, *b = pb;
    const int64_t ka[4] = { a->socket, a->die, a->core, a->thread }, kb[4] = { b->socket, b->die, b->core, b->thread };

    for (int i = 0; i < 4; i++)
        if (ka[i] != kb[i])
            return ka[i] < kb[i] ? -1 : 1;
    return 0;
}

/* The places in topology order; *plugged counts those holding a CPU. */
static size_t read_places(struct json_object *list, cpu_place *out, uint32_t *plugged)
{
    size_t n = 0;

    *plugged = 0;
    for (size_t i = 0; list && i < json_object_array_length(list) && n < CPU_PLACES_MAX; i++) {
        struct json_object *e = json_object_array_get_idx(list, i), *props = NULL, *qom;
        cpu_place *p = &out[n++];
        json_object_object_get_ex(e, "props", &props);
        *p = (cpu_place){ prop(props, "socket-id"), prop(props, "die-id"), prop(props, "core-id"),
                          prop(props, "thread-id"), e, false, NULL };
        if (!json_object_object_get_ex(e, "qom-path", &qom))
            continue;
        p->plugged = true;
        (*plugged)++;
        /* Only CPUs added with device_add have an id (and may go again). */
        if (!strncmp(json_object_get_string(qom), "/machine/peripheral/", 20))
            p->id = json_object_get_string(qom) + 20;
    }
    qsort(out, n, sizeof(*out), place_order);
    return n;
}

static struct json_object *cpu_device(const cpu_place *p)
{
    struct json_object *o = json_object_new_object(), *type, *props;
    char id[64];

    json_object_object_get_ex(p->entry, "type", &type);
    json_object_object_add(o, "driver", json_object_new_string(json_object_get_string(type)));
    snprintf(id, sizeof(id), "cpu-%" PRId64 "-%" PRId64 "-%" PRId64 "-%" PRId64, p->socket, p->die, p->core,
             p->thread);
    json_object_object_add(o, "id", json_object_new_string(id));
    if (json_object_object_get_ex(p->entry, "props", &props)) {
        json_object_object_foreach(props, key, val)
            json_object_object_add(o, key, json_object_get(val));
    }
    return o;
}

static void on_counted(qmp_client *c, const qmp_reply *r, void *opaque);

static void count_again(vcpu_job *j)
{
    if (vm_qmp(j->job.v, "query-hotpluggable-cpus", NULL, on_counted, j) < 0)
        hotplug_job_fail(&j->job, "GenericError", "query-hotpluggable-cpus: QMP is not connected");
}

static void on_changed(vm *v, int status, const char *err_class, const char *err_desc, void *opaque)
{
    vcpu_job *j = opaque;

    if (status < 0) {
        snprintf(j->job.partial_class, sizeof(j->job.partial_class), "%s", err_class);
        snprintf(j->job.partial_desc, sizeof(j->job.partial_desc), "vcpus: %s", err_desc);
    }
    if (!hotplug_job_ours(&j->job)) {
        hotplug_job_fail(&j->job, "GenericError", "QEMU ended meanwhile");
        return;
    }
    count_again(j);
}

static void on_counted(qmp_client *c, const qmp_reply *r, void *opaque)
{
    vcpu_job *j = opaque;
    cpu_place *places;
    uint32_t plugged;
    vm_def *next = &j->job.next;

    if (r->status < 0 || !(places = calloc(CPU_PLACES_MAX, sizeof(*places)))) {
        hotplug_job_fail(&j->job, "GenericError", "query-hotpluggable-cpus: %s",
                         r->status < 0 ? r->err_desc : "out of memory");
        return;
    }
    read_places(r->ret, places, &plugged);
    free(places);
    next->vcpus = plugged;
    next->sockets = plugged / (next->cores * next->threads);
    j->job.ret = json_object_new_object();
    json_object_object_add(j->job.ret, "vcpus", json_object_new_int((int)plugged));
    log_info("vm %s: %u vCPUs", j->job.v->def.name, plugged);
    hotplug_job_commit(&j->job);
}

/* The steps from the CPUs there are to want, or a refusal in err. */
static int plan(vcpu_job *j, cpu_place *p, size_t n, uint32_t plugged, vm_qmpseq *s, char *err, size_t len)
{
    uint32_t want = j->want;

    for (size_t i = 0; i < n && plugged < want; i++)
        if (!p[i].plugged) {
            vm_qmpseq_add(s, "device_add", cpu_device(&p[i]), -1, NULL, NULL);
            plugged++;
        }
    for (size_t i = n; i-- > 0 && plugged > want;)
        if (p[i].id) {
            struct json_object *o = json_object_new_object();
            json_object_object_add(o, "id", json_object_new_string(p[i].id));
            vm_qmpseq_add(s, "device_del", o, -1, NULL, NULL);
            vm_qmpseq_add_wait_deleted(s, p[i].id, j->timeout_ms);
            plugged--;
        }
    if (plugged != want) {
        snprintf(err, len, "vcpus: %s has %u CPUs it started with, which QEMU cannot unplug", j->job.v->def.name,
                 plugged);
        return -1;
    }
    return 0;
}

static void on_places(qmp_client *c, const qmp_reply *r, void *opaque)
{
    vcpu_job *j = opaque;
    cpu_place *places = NULL;
    vm_qmpseq *s = NULL;
    char err[256];
    uint32_t plugged;
    size_t n;

    if (r->status < 0) {
        hotplug_job_fail(&j->job, "GenericError", "query-hotpluggable-cpus: %s", r->err_desc);
        return;
    }
    if (!(places = calloc(CPU_PLACES_MAX, sizeof(*places))) || !(s = vm_qmpseq_new(j->job.v))) {
        free(places);
        hotplug_job_fail(&j->job, "GenericError", "out of memory");
        return;
    }
    n = read_places(r->ret, places, &plugged);
    int rc = plan(j, places, n, plugged, s, err, sizeof(err));
    free(places);
    if (rc < 0) {
        vm_qmpseq_free(s);
        hotplug_job_fail(&j->job, "LimitReached", "%s", err);
    } else if (vm_qmpseq_run(s, on_changed, j) < 0) {
        vm_qmpseq_free(s);
        hotplug_job_fail(&j->job, "GenericError", "QMP is not connected");
    }
}

static vm_accel effective_accel(const vm *v)
{
    return v->def.accel == VM_ACCEL_DEFAULT ? v->agent->accel : v->def.accel;
}

int vm_set_vcpus(vm *v, uint32_t vcpus, uint32_t timeout_ms, vm_done_cb cb, void *opaque, vm_result *res)
{
    uint32_t max = v->def.max_vcpus ? v->def.max_vcpus : v->def.vcpus, per_socket = v->def.cores * v->def.threads;
    vcpu_job *j;

    if (!hotplug_vm_ready(v, res))
        return -1;
    if (vcpus > max) {
        vm_refuse(res, "LimitReached", "vcpus: %u is above max-vcpus (%u)", vcpus, max);
        return -1;
    }
    if (vcpus == 0 || vcpus % per_socket) {
        vm_refuse(res, "InvalidParameter", "vcpus: must be a positive multiple of cores x threads (%u)", per_socket);
        return -1;
    }
    if (vcpus == 1 && v->def.vcpus > 1 && effective_accel(v) == VM_ACCEL_TCG) {
        vm_refuse(res, "InvalidParameter", "vcpus: under tcg, QEMU 7.2 crashes (a double free) when a VM is taken "
                  "back to one vCPU; keep at least 2 (kvm has no such limit)");
        return -1;
    }
    if (!(j = calloc(1, sizeof(*j))) || vmdef_copy(&v->def, &j->job.next) < 0) {
        free(j);
        vm_refuse(res, "GenericError", "out of memory");
        return -1;
    }
    j->want = vcpus;
    j->timeout_ms = timeout_ms;
    j->job.event = "VM_VCPUS_CHANGED";
    j->job.release = hotplug_job_free;
    if (!hotplug_job_begin(&j->job, v, cb, opaque, res)) {
        vmdef_free(&j->job.next);
        free(j);
        return -1;
    }
    if (vm_qmp(v, "query-hotpluggable-cpus", NULL, on_places, j) < 0)
        hotplug_job_fail(&j->job, "GenericError", "QMP is not connected");
    return 0;
}

/* ---- memory ----------------------------------------------------------------------- */

typedef struct memory_job {
    hotplug_job job;
    uint64_t want_mib;
} memory_job;

static void on_dimm_added(vm *v, int status, const char *err_class, const char *err_desc, void *opaque)
{
    memory_job *m = opaque;

    if (!hotplug_job_steps_done(&m->job, status, err_class, err_desc, ""))
        return;
    m->job.next.memory_mib = m->want_mib;
    m->job.ret = json_object_new_object();
    json_object_object_add(m->job.ret, "memory", json_object_new_int64((int64_t)m->want_mib));
    log_info("vm %s: memory grown to %" PRIu64 " MiB", v->def.name, m->want_mib);
    hotplug_job_commit(&m->job);
}

/* The lowest dimmN no device of QEMU's list has. */
static unsigned free_dimm_index(struct json_object *devices)
{
    for (unsigned k = 0;; k++) {
        char id[16];
        bool taken = false;
        snprintf(id, sizeof(id), "dimm%u", k);
        for (size_t i = 0; devices && i < json_object_array_length(devices); i++) {
            struct json_object *data, *did;
            if (json_object_object_get_ex(json_object_array_get_idx(devices, i), "data", &data) &&
                json_object_object_get_ex(data, "id", &did) && !strcmp(json_object_get_string(did), id))
                taken = true;
        }
        if (!taken)
            return k;
    }
}

static void on_memory_devices(qmp_client *c, const qmp_reply *r, void *opaque)
{
    memory_job *m = opaque;
    struct json_object *backend = json_object_new_object(), *dimm = json_object_new_object(), *undo;
    uint64_t add = (m->want_mib - m->job.v->def.memory_mib) << 20;
    vm_qmpseq *s;
    char mem[24], id[16];
    unsigned k;

    if (r->status < 0 || !(s = vm_qmpseq_new(m->job.v))) {
        json_object_put(backend);
        json_object_put(dimm);
        hotplug_job_fail(&m->job, "GenericError", "query-memory-devices: %s",
                         r->status < 0 ? r->err_desc : "out of memory");
        return;
    }
    k = free_dimm_index(r->ret);
    snprintf(id, sizeof(id), "dimm%u", k);
    snprintf(mem, sizeof(mem), "mem-dimm%u", k);
    json_object_object_add(backend, "qom-type", json_object_new_string("memory-backend-ram"));
    json_object_object_add(backend, "id", json_object_new_string(mem));
    json_object_object_add(backend, "size", json_object_new_uint64(add));
    undo = json_object_new_object();
    json_object_object_add(undo, "id", json_object_new_string(mem));
    json_object_object_add(dimm, "driver", json_object_new_string("pc-dimm"));
    json_object_object_add(dimm, "id", json_object_new_string(id));
    json_object_object_add(dimm, "memdev", json_object_new_string(mem));
    vm_qmpseq_add(s, "object-add", backend, -1, "object-del", undo);
    vm_qmpseq_add(s, "device_add", dimm, -1, NULL, NULL);
    if (vm_qmpseq_run(s, on_dimm_added, m) < 0) {
        vm_qmpseq_free(s);
        hotplug_job_fail(&m->job, "GenericError", "QMP is not connected");
    }
}

static int check_growth(const vm *v, uint64_t mib, vm_result *res)
{
    if (!v->def.max_memory_mib) {
        vm_refuse(res, "InvalidState", "memory: %s was started without max-memory, so it has no room to grow",
                  v->def.name);
        return -1;
    }
    if (mib > v->def.max_memory_mib) {
        vm_refuse(res, "LimitReached", "memory: %" PRIu64 " MiB is above max-memory (%" PRIu64 " MiB)", mib,
                  v->def.max_memory_mib);
        return -1;
    }
    if (mib <= v->def.memory_mib) {
        vm_refuse(res, "InvalidParameter", "memory: %" PRIu64 " MiB is not above the %" PRIu64
                  " MiB it has (memory shrinks with balloon-set)", mib, v->def.memory_mib);
        return -1;
    }
    if ((mib - v->def.memory_mib) % MEMORY_BLOCK_MIB) {
        vm_refuse(res, "InvalidParameter", "memory: grows in steps of %d MiB (the guest's memory block)",
                  MEMORY_BLOCK_MIB);
        return -1;
    }
    return 0;
}

int vm_set_memory(vm *v, uint64_t mib, vm_done_cb cb, void *opaque, vm_result *res)
{
    memory_job *m;

    if (!hotplug_vm_ready(v, res) || check_growth(v, mib, res) < 0)
        return -1;
    if (!(m = calloc(1, sizeof(*m))) || vmdef_copy(&v->def, &m->job.next) < 0) {
        free(m);
        vm_refuse(res, "GenericError", "out of memory");
        return -1;
    }
    m->want_mib = mib;
    m->job.event = "VM_MEMORY_CHANGED";
    m->job.release = hotplug_job_free;
    if (!hotplug_job_begin(&m->job, v, cb, opaque, res)) {
        vmdef_free(&m->job.next);
        free(m);
        return -1;
    }
    if (vm_qmp(v, "query-memory-devices", NULL, on_memory_devices, m) < 0)
        hotplug_job_fail(&m->job, "GenericError", "QMP is not connected");
    return 0;
}

/* ---- the balloon ------------------------------------------------------------------ */

typedef struct balloon_call {
    vm *v;
    uint64_t mib;
    vm_done_cb cb;
    void *opaque;
} balloon_call;

static void on_balloon(qmp_client *c, const qmp_reply *r, void *opaque)
{
    balloon_call *b = opaque;
    vm_result res = { 0 };

    if (r->status == 0) {
        res.ret = json_object_new_object();
        json_object_object_add(res.ret, "target", json_object_new_int64((int64_t)b->mib));
    } else {
        res = (vm_result){ .status = -1, .err_desc = r->err_desc,
                           .err_class = r->status == -ETIMEDOUT ? "Timeout" : "GenericError" };
    }
    b->cb(b->v, &res, b->opaque);
    free(b);
}

int vm_set_balloon(vm *v, uint64_t mib, vm_done_cb cb, void *opaque, vm_result *res)
{
    struct json_object *args;
    balloon_call *b;
    int r;

    if (!hotplug_vm_ready(v, res))
        return -1;
    if (mib < BALLOON_MIN_MIB || mib > v->def.memory_mib) {
        vm_refuse(res, "InvalidParameter", "target: must be from %d to the VM's %" PRIu64 " MiB", BALLOON_MIN_MIB,
                  v->def.memory_mib);
        return -1;
    }
    if (!(b = malloc(sizeof(*b)))) {
        vm_refuse(res, "GenericError", "out of memory");
        return -1;
    }
    *b = (balloon_call){ v, mib, cb, opaque };
    args = json_object_new_object();
    json_object_object_add(args, "value", json_object_new_int64((int64_t)(mib << 20)));
    r = vm_qmp(v, "balloon", args, on_balloon, b);
    json_object_put(args);
    if (r < 0) {
        free(b);
        vm_refuse(res, "GenericError", "%s: QMP is not connected", v->def.name);
        return -1;
    }
    return 0;
}
