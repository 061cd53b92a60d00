/* cmd_hotplug.c: disk-attach, disk-detach, nic-attach and nic-detach
 * (OpenNebula's attach and detach), admin commands on a running VM. The
 * attached device is validated as a member of the whole definition, so it
 * follows every rule one given at define time follows. */
#include <string.h>

#include <json-c/json.h>

#include "agent.h"
#include "cmd_args.h"
#include "cmd_handlers.h"
#include "macs.h"
#include "server.h"
#include "vm.h"
#include "vm_hotplug.h"
#include "vm_resize.h"

#define DETACH_TIMEOUT_DEFAULT_S 30
#define DETACH_TIMEOUT_MAX_S 3600

/* The disk as given, with the host's attach cache when it names none. */
static struct json_object *disk_with_cache(agent *a, struct json_object *disk)
{
    struct json_object *copy = NULL;

    if (!json_object_is_type(disk, json_type_object))
        return json_object_get(disk);
    if (json_object_deep_copy(disk, &copy, NULL) < 0)
        return NULL;
    if (!json_object_object_get_ex(copy, "cache", NULL))
        json_object_object_add(copy, "cache", json_object_new_string(a->cfg.attach_cache));
    return copy;
}

static void apply_attach_cache(agent *a, vm_disk *d)
{
    for (int c = VM_CACHE_NONE; c <= VM_CACHE_UNSAFE; c++)
        if (!strcmp(vm_disk_cache_name((vm_disk_cache)c), a->cfg.attach_cache))
            d->cache = (vm_disk_cache)c;
}

/* v's definition with item (taken) appended to its list member, validated;
 * the MAC of a new NIC unique on the host. */
static int definition_with(request *r, vm *v, const char *member, struct json_object *item, vm_def *ret)
{
    struct json_object *merged = vmdef_to_json(&v->def), *list;
    char err[VM_ERR_MAX];
    int rc;

    if (!merged || !item) {
        json_object_put(merged);
        json_object_put(item);
        request_error(r, "GenericError", "out of memory");
        return -1;
    }
    if (!json_object_object_get_ex(merged, member, &list)) {
        list = json_object_new_array();
        json_object_object_add(merged, member, list);
    }
    json_object_array_add(list, item);
    rc = vmdef_from_json(merged, ret, err, sizeof(err));
    if (rc == 0 && (rc = macs_make_unique(request_agent(r), merged, ret, v, err, sizeof(err))) < 0)
        vmdef_free(ret);
    json_object_put(merged);
    if (rc < 0) {
        request_error(r, "InvalidParameter", "%s", err);
        return -1;
    }
    return 0;
}

/* The argument key: an object, or a string in the definition's short form. */
static struct json_object *device_arg(request *r, struct json_object *args, const char *key)
{
    struct json_object *o;

    if (!json_object_object_get_ex(args, key, &o) ||
        (!json_object_is_type(o, json_type_object) && !json_object_is_type(o, json_type_string))) {
        request_error(r, "InvalidParameter", "%s: %s", key, o ? "must be an object or a string" : "missing");
        return NULL;
    }
    return o;
}

void cmd_disk_attach(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", "disk", NULL };
    struct json_object *disk;
    vm_result res;
    vm_def next;
    vm *v;

    if (!args_known(r, args, allowed) || !(v = arg_vm(r, args)) || !(disk = device_arg(r, args, "disk")) ||
        definition_with(r, v, "disks", disk_with_cache(request_agent(r), disk), &next) < 0)
        return;
    if (!json_object_is_type(disk, json_type_object))
        apply_attach_cache(request_agent(r), &next.disks[next.ndisks - 1]);
    run_job(r, vm_disk_attach(v, &next, on_job_done, r, &res), &res);
}

void cmd_disk_detach(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", "target", "timeout", NULL };
    const char *target;
    int64_t timeout;
    vm_result res;
    vm *v;

    if (!args_known(r, args, allowed) || !(v = arg_vm(r, args)) ||
        !arg_string(r, args, "target", true, &target) ||
        !arg_uint(r, args, "timeout", DETACH_TIMEOUT_DEFAULT_S, 1, DETACH_TIMEOUT_MAX_S, &timeout))
        return;
    run_job(r, vm_disk_detach(v, target, (uint32_t)timeout * 1000, on_job_done, r, &res), &res);
}

void cmd_nic_attach(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", "nic", NULL };
    struct json_object *nic;
    vm_result res;
    vm_def next;
    vm *v;

    if (!args_known(r, args, allowed) || !(v = arg_vm(r, args)) || !(nic = device_arg(r, args, "nic")) ||
        definition_with(r, v, "nics", json_object_get(nic), &next) < 0)
        return;
    run_job(r, vm_nic_attach(v, &next, on_job_done, r, &res), &res);
}

void cmd_nic_detach(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", "mac", "timeout", NULL };
    const char *mac;
    int64_t timeout;
    vm_result res;
    vm *v;

    if (!args_known(r, args, allowed) || !(v = arg_vm(r, args)) || !arg_string(r, args, "mac", true, &mac) ||
        !arg_uint(r, args, "timeout", DETACH_TIMEOUT_DEFAULT_S, 1, DETACH_TIMEOUT_MAX_S, &timeout))
        return;
    run_job(r, vm_nic_detach(v, mac, (uint32_t)timeout * 1000, on_job_done, r, &res), &res);
}

void cmd_vcpus_set(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", "vcpus", "timeout", NULL };
    int64_t vcpus, timeout;
    vm_result res;
    vm *v;

    if (!args_known(r, args, allowed) || !(v = arg_vm(r, args)) ||
        !arg_uint(r, args, "vcpus", -1, 1, VM_MAX_VCPUS, &vcpus) ||
        !arg_uint(r, args, "timeout", DETACH_TIMEOUT_DEFAULT_S, 1, DETACH_TIMEOUT_MAX_S, &timeout))
        return;
    if (vcpus < 0) {
        request_error(r, "InvalidParameter", "vcpus: missing");
        return;
    }
    run_job(r, vm_set_vcpus(v, (uint32_t)vcpus, (uint32_t)timeout * 1000, on_job_done, r, &res), &res);
}

/* Sizes as in definitions: MiB as a number, or "2G". */
static bool arg_mib(request *r, struct json_object *args, const char *key, uint64_t *ret)
{
    uint64_t bytes;
    struct json_object *v;

    if (json_object_object_get_ex(args, key, &v) && json_object_is_type(v, json_type_int)) {
        int64_t n = json_object_get_int64(v);
        if (n <= 0 || n > (int64_t)(UINT64_MAX >> 20)) {
            request_error(r, "InvalidParameter", "%s: must be a positive number of MiB", key);
            return false;
        }
        *ret = (uint64_t)n;
        return true;
    }
    if (!arg_size(r, args, key, 0, &bytes))
        return false;
    if (bytes == 0 || bytes % (1u << 20)) {
        request_error(r, "InvalidParameter", "%s: %s", key, bytes ? "must be whole MiB" : "missing");
        return false;
    }
    *ret = bytes >> 20;
    return true;
}

void cmd_memory_set(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", "memory", NULL };
    uint64_t mib;
    vm_result res;
    vm *v;

    if (!args_known(r, args, allowed) || !(v = arg_vm(r, args)) || !arg_mib(r, args, "memory", &mib))
        return;
    run_job(r, vm_set_memory(v, mib, on_job_done, r, &res), &res);
}

void cmd_balloon_set(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", "target", NULL };
    uint64_t mib;
    vm_result res;
    vm *v;

    if (!args_known(r, args, allowed) || !(v = arg_vm(r, args)) || !arg_mib(r, args, "target", &mib))
        return;
    run_job(r, vm_set_balloon(v, mib, on_job_done, r, &res), &res);
}
