/* vmdef_host.c: definition members that shape how the host runs the VM
 * rather than what the guest sees: "vnc" (a password-protected display),
 * "guest-agent" (a channel to qemu-ga in the guest, for freezing its file
 * systems before a snapshot),
 * "cpu-shares" (OpenNebula's CPU: the VM's share of host CPU time relative
 * to other VMs, 1.0 being one physical CPU's worth) and "memory-limit" (a
 * cap on the whole QEMU process, guest RAM and QEMU's own memory). The last
 * two become the VM's cgroup limits. */
#include "vmdef.h"
#include "vmdef_parse.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <json-c/json.h>

#define CPU_SHARES_MIN 0.01
#define CPU_SHARES_MAX 100.0
#define WEIGHT_PER_CPU 100     /* cgroup v2's default weight is one CPU's worth */

int vmdef_vnc_parse(struct json_object *v, vm_def *d, errbuf *e)
{
    if (!json_object_is_type(v, json_type_boolean))
        return errbuf_fail(e, "vnc: must be true or false");
    d->vnc = json_object_get_boolean(v);
    return 0;
}

int vmdef_guest_agent_parse(struct json_object *v, vm_def *d, errbuf *e)
{
    if (!json_object_is_type(v, json_type_boolean))
        return errbuf_fail(e, "guest-agent: must be true or false");
    d->guest_agent = json_object_get_boolean(v);
    return 0;
}

int vmdef_hotplug_slots_parse(struct json_object *v, vm_def *d, errbuf *e)
{
    uint64_t n;

    if (!vmdef_json_uint(v, &n) || n > VM_HOTPLUG_SLOTS_MAX)
        return errbuf_fail(e, "hotplug-slots: must be a whole number from 0 to %d", VM_HOTPLUG_SLOTS_MAX);
    d->hotplug_slots = (uint32_t)n;
    return 0;
}

int vmdef_cpu_shares_parse(struct json_object *v, vm_def *d, errbuf *e)
{
    double x;

    if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
        return errbuf_fail(e, "cpu-shares: must be a number from 0.01 to 100 (OpenNebula's CPU)");
    x = json_object_get_double(v);
    if (!(x >= CPU_SHARES_MIN && x <= CPU_SHARES_MAX))
        return errbuf_fail(e, "cpu-shares: must be a number from 0.01 to 100 (OpenNebula's CPU)");
    d->cpu_weight = (uint32_t)lround(x * WEIGHT_PER_CPU);
    return 0;
}

int vmdef_memory_limit_parse(struct json_object *v, vm_def *d, errbuf *e)
{
    if (vmdef_json_mib(v, &d->memory_limit_mib) < 0)
        return errbuf_fail(e, "memory-limit: must be a size: 1024, \"1G\"");
    return 0;
}

/* What holds hotplug port slot other than disks[skip_disk], or NULL. */
static const char *pci_slot_user(const vm_def *d, int slot, size_t skip_disk, size_t skip_nic, size_t *ret_i)
{
    for (size_t j = 0; j < d->ndisks; j++)
        if (j != skip_disk && d->disks[j].bus == VM_DISK_VIRTIO_BLK && d->disks[j].slot == slot) {
            *ret_i = j;
            return "disks";
        }
    for (size_t j = 0; j < d->nnics; j++)
        if (j != skip_nic && d->nics[j].slot == slot) {
            *ret_i = j;
            return "nics";
        }
    return NULL;
}

static int validate_disk_slot(const vm_def *d, size_t i, errbuf *e)
{
    const vm_disk *k = &d->disks[i];
    const char *other;
    size_t j;

    if (k->slot < 0)
        return 0;
    if (k->bus == VM_DISK_VIRTIO_SCSI) {
        for (j = 0; j < i; j++)
            if (d->disks[j].bus == VM_DISK_VIRTIO_SCSI && d->disks[j].slot == k->slot)
                return errbuf_fail(e, "disks[%zu].slot: scsi-id %d is also disks[%zu]'s", i, k->slot, j);
        return 0;
    }
    if (k->bus != VM_DISK_VIRTIO_BLK)
        return errbuf_fail(e, "disks[%zu].slot: only virtio-blk and virtio-scsi disks take a slot", i);
    if ((uint32_t)k->slot >= d->hotplug_slots)
        return errbuf_fail(e, "disks[%zu].slot: must be below hotplug-slots (%u)", i, d->hotplug_slots);
    if ((other = pci_slot_user(d, k->slot, i, SIZE_MAX, &j)) && (strcmp(other, "disks") || j < i))
        return errbuf_fail(e, "disks[%zu].slot: %d is also %s[%zu]'s", i, k->slot, other, j);
    return 0;
}

static int validate_slots(const vm_def *d, errbuf *e)
{
    const char *other;
    size_t j;
    int r;

    for (size_t i = 0; i < d->ndisks; i++)
        if ((r = validate_disk_slot(d, i, e)) < 0)
            return r;
    for (size_t i = 0; i < d->nnics; i++) {
        int slot = d->nics[i].slot;
        if (slot < 0)
            continue;
        if ((uint32_t)slot >= d->hotplug_slots)
            return errbuf_fail(e, "nics[%zu].slot: must be below hotplug-slots (%u)", i, d->hotplug_slots);
        if ((other = pci_slot_user(d, slot, SIZE_MAX, i, &j)) && (strcmp(other, "nics") || j < i))
            return errbuf_fail(e, "nics[%zu].slot: %d is also %s[%zu]'s", i, slot, other, j);
    }
    return 0;
}

int vmdef_host_validate(const vm_def *d, errbuf *e)
{
    int r;

    if (d->hotplug_slots > VM_HOTPLUG_SLOTS_MAX)
        return errbuf_fail(e, "hotplug-slots: must be a whole number from 0 to %d", VM_HOTPLUG_SLOTS_MAX);
    if ((r = validate_slots(d, e)) < 0)
        return r;
    uint64_t ram = d->max_memory_mib ? d->max_memory_mib : d->memory_mib;

    if (d->cpu_weight > CPU_SHARES_MAX * WEIGHT_PER_CPU)
        return errbuf_fail(e, "cpu-shares: must be a number from 0.01 to 100 (OpenNebula's CPU)");
    /* QEMU needs room beyond the guest's RAM; a cap at the RAM would have
     * the kernel kill it as the guest touches its last pages. */
    if (d->memory_limit_mib && d->memory_limit_mib <= ram)
        return errbuf_fail(e, "memory-limit: must be more than the guest's memory (%" PRIu64 " MiB), "
                           "leaving room for QEMU itself", ram);
    return 0;
}

int vmdef_host_to_json(const vm_def *d, struct json_object *o)
{
    if (json_object_object_add(o, "vnc", json_object_new_boolean(d->vnc)) < 0 ||
        json_object_object_add(o, "guest-agent", json_object_new_boolean(d->guest_agent)) < 0 ||
        json_object_object_add(o, "hotplug-slots", json_object_new_int((int)d->hotplug_slots)) < 0)
        return -1;
    if (d->cpu_weight &&
        json_object_object_add(o, "cpu-shares", json_object_new_double((double)d->cpu_weight / WEIGHT_PER_CPU)) < 0)
        return -1;
    if (d->memory_limit_mib &&
        json_object_object_add(o, "memory-limit", json_object_new_int64((int64_t)d->memory_limit_mib)) < 0)
        return -1;
    return 0;
}

const char *vmdef_host_difference(const vm_def *a, const vm_def *b)
{
    if (a->vnc != b->vnc)
        return "vnc";
    if (a->guest_agent != b->guest_agent)
        return "guest-agent";
    if (a->hotplug_slots != b->hotplug_slots)
        return "hotplug-slots";
    if (a->cpu_weight != b->cpu_weight)
        return "cpu-shares";
    return a->memory_limit_mib != b->memory_limit_mib ? "memory-limit" : NULL;
}
