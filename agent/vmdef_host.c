/* vmdef_host.c: definition members that shape how the host runs the VM
 * rather than what the guest sees: "vnc" (a password-protected display),
 * "cpu-shares" (OpenNebula's CPU: the VM's share of host CPU time relative
 * to other VMs, 1.0 being one physical CPU's worth) and "memory-limit" (a
 * cap on the whole QEMU process, guest RAM and QEMU's own memory). The last
 * two become the VM's cgroup limits. */
#include "vmdef.h"
#include "vmdef_parse.h"

#include <inttypes.h>
#include <math.h>
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

int vmdef_host_validate(const vm_def *d, errbuf *e)
{
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
    if (json_object_object_add(o, "vnc", json_object_new_boolean(d->vnc)) < 0)
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
    if (a->cpu_weight != b->cpu_weight)
        return "cpu-shares";
    return a->memory_limit_mib != b->memory_limit_mib ? "memory-limit" : NULL;
}
