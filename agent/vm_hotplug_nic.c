/* vm_hotplug_nic.c: NICs attached to and detached from a running VM.
 *
 * Attach: the tap made and enslaved by net/ (thread pool), its fds (and
 * vhost-net's) handed to QEMU with getfd, netdev_add naming them, then
 * device_add on a free hotplug port. QEMU then holds the only copies the
 * tap needs, so the agent closes its own either way: after a failure the
 * undos (netdev_del, closefd) have closed QEMU's and the tap is gone.
 *
 * Detach: device_del, DEVICE_DELETED awaited, netdev_del: the tap goes with
 * the last fd QEMU held. */
#include "vm_hotplug.h"
#include "vm_hotplug_job.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "agent.h"
#include "log.h"
#include "net/net.h"
#include "qemu_devices.h"
#include "vm_internal.h"
#include "vm_nics.h"
#include "vm_qmpseq.h"
#include "work.h"

typedef struct nic_attach {
    hotplug_job job;
    size_t i;                   /* the new NIC: next.nics[i] */
    vm_nic_fds fds;
    bool opened;
    int status;
    char err[512];
} nic_attach;

static void attach_release(hotplug_job *j, bool ok)
{
    nic_attach *a = (nic_attach *)j;

    if (a->opened)
        vm_nics_close(&a->fds);
    free(a);
}

static struct json_object *nic_reply(const vm_nic *n)
{
    struct json_object *o = json_object_new_object();
    char mac[NET_MAC_TEXT], dev[24], netdev[24];

    net_mac_format(n->mac, mac);
    qemu_nic_ids(n, dev, netdev);
    json_object_object_add(o, "mac", json_object_new_string(mac));
    json_object_object_add(o, "device", json_object_new_string(dev));
    json_object_object_add(o, "bridge", json_object_new_string(n->bridge));
    json_object_object_add(o, "slot", json_object_new_int(n->slot));
    return o;
}

static void on_attached(vm *v, int status, const char *err_class, const char *err_desc, void *opaque)
{
    nic_attach *a = opaque;

    if (!hotplug_job_steps_done(&a->job, status, err_class, err_desc, ""))
        return;
    a->job.ret = nic_reply(&a->job.next.nics[a->i]);
    log_info("vm %s: NIC %s attached", v->def.name,
             json_object_get_string(json_object_object_get(a->job.ret, "mac")));
    hotplug_job_commit(&a->job);
}

/* getfd for each fd under "PREFIX-MAC-Q", and the names joined by ':'. */
static void pass_fds(vm_qmpseq *s, const char *prefix, const char *mac12, const int *fds, unsigned n,
                     char *names, size_t len)
{
    size_t at = 0;

    names[0] = '\0';
    for (unsigned q = 0; q < n; q++) {
        char name[48];
        snprintf(name, sizeof(name), "%s-%s-%u", prefix, mac12, q);
        vm_qmpseq_add_getfd(s, name, fds[q]);
        at += (size_t)snprintf(names + at, at < len ? len - at : 0, "%s%s", q ? ":" : "", name);
    }
}

static void plug(nic_attach *a)
{
    const vm_nic *n = &a->job.next.nics[a->i];
    vm_qmpseq *s = vm_qmpseq_new(a->job.v);
    char dev[24], netdev[24], taps[NET_QUEUES_MAX * 48], vhosts[NET_QUEUES_MAX * 48];
    struct json_object *del = json_object_new_object();
    unsigned nvhost = a->fds.child[0].nvhost;
    int r;

    qemu_nic_ids(n, dev, netdev);
    json_object_object_add(del, "id", json_object_new_string(netdev));
    if (!s) {
        json_object_put(del);
        hotplug_job_fail(&a->job, "GenericError", "out of memory");
        return;
    }
    pass_fds(s, "tap", netdev + 4, a->fds.taps[0].fds, a->fds.taps[0].nfds, taps, sizeof(taps));
    pass_fds(s, "vhost", netdev + 4, a->fds.vhost[0], nvhost, vhosts, sizeof(vhosts));
    vm_qmpseq_add(s, "netdev_add", qemu_nic_netdev(n, taps, nvhost ? vhosts : NULL), -1, "netdev_del", del);
    vm_qmpseq_add(s, "device_add", qemu_nic_device(&a->job.next, n), -1, NULL, NULL);
    if ((r = vm_qmpseq_run(s, on_attached, a)) < 0) {
        vm_qmpseq_free(s);
        hotplug_job_fail(&a->job, "GenericError", "%s", r == -ENOTCONN ? "QMP is not connected" : strerror(-r));
    }
}

static void open_tap(void *arg)
{
    nic_attach *a = arg;

    a->status = vm_nics_open_one(&a->job.next, a->i, a->job.v->agent->cfg.create_bridges, &a->fds, a->err,
                                 sizeof(a->err));
    a->opened = a->status == 0;
}

static void after_open(void *arg)
{
    nic_attach *a = arg;

    a->job.v->pending_io--;
    if (!hotplug_job_ours(&a->job))
        hotplug_job_fail(&a->job, "GenericError", "QEMU ended during the attach");
    else if (a->status < 0)
        hotplug_job_fail(&a->job, a->status == -ENODEV || a->status == -EINVAL ? "InvalidParameter" : "GenericError",
                         "%s", a->err);
    else
        plug(a);
}

int vm_nic_attach(vm *v, vm_def *next, vm_done_cb cb, void *opaque, vm_result *res)
{
    vm_nic *n = &next->nics[next->nnics ? next->nnics - 1 : 0];
    nic_attach *a;

    if (!hotplug_vm_ready(v, res))
        goto refused;
    if (next->nnics != v->def.nnics + 1) {
        vm_refuse(res, "InvalidParameter", "nic: one NIC is attached at a time");
        goto refused;
    }
    if (n->slot < 0 && (n->slot = qemu_free_hotplug_slot(next)) < 0) {
        vm_refuse(res, "LimitReached", "%s: all %u hotplug slots are taken (hotplug-slots: more take effect at "
                  "the next start)", v->def.name, v->def.hotplug_slots);
        goto refused;
    }
    if (!(a = calloc(1, sizeof(*a)))) {
        vm_refuse(res, "GenericError", "out of memory");
        goto refused;
    }
    a->job.next = *next;
    a->job.event = "VM_NIC_ATTACHED";
    a->job.release = attach_release;
    a->i = next->nnics - 1;
    memset(next, 0, sizeof(*next));
    if (!hotplug_job_begin(&a->job, v, cb, opaque, res)) {
        vmdef_free(&a->job.next);
        free(a);
        return -1;
    }
    v->pending_io++;
    if (agent_work(v->agent->loop, open_tap, after_open, a) < 0) {
        v->pending_io--;
        hotplug_job_fail(&a->job, "GenericError", "cannot queue work");
        return 0;
    }
    /* After the tap's work, which so gets the first pool thread. */
    hotplug_job_save_ahead(&a->job);
    return 0;
refused:
    vmdef_free(next);
    return -1;
}

/* ---- detach ------------------------------------------------------------------ */

typedef struct nic_detach {
    hotplug_job job;
    char mac[NET_MAC_TEXT];
    char dev[24], netdev[24];
} nic_detach;

static void on_detached(vm *v, int status, const char *err_class, const char *err_desc, void *opaque)
{
    nic_detach *d = opaque;
    char stays[64];

    snprintf(stays, sizeof(stays), "; NIC %s stays attached", d->mac);
    if (!hotplug_job_steps_done(&d->job, status, err_class, err_desc, stays))
        return;
    log_info("vm %s: NIC %s detached", v->def.name, d->mac);
    d->job.ret = json_object_new_object();
    json_object_object_add(d->job.ret, "mac", json_object_new_string(d->mac));
    json_object_object_add(d->job.ret, "device", json_object_new_string(d->dev));
    hotplug_job_commit(&d->job);
}

static struct json_object *id_args(const char *id)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "id", json_object_new_string(id));
    return o;
}

static nic_detach *detach_new(vm *v, size_t i)
{
    nic_detach *d = calloc(1, sizeof(*d));

    if (!d || vmdef_copy(&v->def, &d->job.next) < 0) {
        free(d);
        return NULL;
    }
    memmove(&d->job.next.nics[i], &d->job.next.nics[i + 1], (d->job.next.nnics - i - 1) * sizeof(vm_nic));
    d->job.next.nnics--;
    net_mac_format(v->def.nics[i].mac, d->mac);
    qemu_nic_ids(&v->def.nics[i], d->dev, d->netdev);
    d->job.event = "VM_NIC_DETACHED";
    d->job.release = hotplug_job_free;
    return d;
}

static int find_nic(const vm *v, const char *mac, vm_result *res)
{
    uint8_t want[6];

    if (net_mac_parse(mac, want) < 0) {
        vm_refuse(res, "InvalidParameter", "mac: '%.32s' is not a MAC address", mac);
        return -1;
    }
    for (size_t i = 0; i < v->def.nnics; i++) {
        if (memcmp(v->def.nics[i].mac, want, 6))
            continue;
        if (v->def.nics[i].slot < 0 && qemu_machine_family_of(v->def.machine) == QEMU_MACHINE_Q35) {
            vm_refuse(res, "InvalidParameter", "mac: NIC %s sits on the root bus of the q35 machine, which cannot "
                      "unplug; only NICs attached while it ran (or given a slot) can be detached", mac);
            return -1;
        }
        return (int)i;
    }
    vm_refuse(res, "NotFound", "mac: %s has no NIC %s", v->def.name, mac);
    return -1;
}

/* Starts the detach; with wait false the guest already let go (a detach
 * finished after its deadline). */
static void unplug(nic_detach *d, bool wait, uint32_t timeout_ms)
{
    vm_qmpseq *s = vm_qmpseq_new(d->job.v);

    if (s && wait) {
        vm_qmpseq_add(s, "device_del", id_args(d->dev), -1, NULL, NULL);
        vm_qmpseq_add_wait_deleted(s, d->dev, timeout_ms);
    }
    if (s)
        vm_qmpseq_add_tolerant(s, "netdev_del", id_args(d->netdev));
    if (!s || vm_qmpseq_run(s, on_detached, d) < 0) {
        vm_qmpseq_free(s);
        hotplug_job_fail(&d->job, "GenericError", "%s: QMP is not connected", d->job.v->def.name);
    }
}

int vm_nic_detach(vm *v, const char *mac, uint32_t timeout_ms, vm_done_cb cb, void *opaque, vm_result *res)
{
    nic_detach *d;
    int i;

    if (!hotplug_vm_ready(v, res) || (i = find_nic(v, mac, res)) < 0)
        return -1;
    if (!(d = detach_new(v, (size_t)i))) {
        vm_refuse(res, "GenericError", "out of memory");
        return -1;
    }
    if (!hotplug_job_begin(&d->job, v, cb, opaque, res)) {
        vmdef_free(&d->job.next);
        free(d);
        return -1;
    }
    unplug(d, true, timeout_ms);
    return 0;
}

void hotplug_nic_late_delete(vm *v, const char *device_id)
{
    nic_detach *d;

    for (size_t i = 0; i < v->def.nnics; i++) {
        char dev[24], netdev[24];
        qemu_nic_ids(&v->def.nics[i], dev, netdev);
        if (strcmp(dev, device_id))
            continue;
        if (!(d = detach_new(v, i)))
            return;
        if (!hotplug_job_begin_late(&d->job, v, device_id)) {
            vmdef_free(&d->job.next);
            free(d);
            return;
        }
        unplug(d, false, 0);
        return;
    }
}
