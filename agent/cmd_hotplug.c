/* cmd_hotplug.c: disk-attach and disk-detach (OpenNebula's attach and
 * detach), admin commands on a running VM. The attached disk is validated
 * as a member of the whole definition, so it follows every rule a disk
 * given at define time follows. */
#include <string.h>

#include <json-c/json.h>

#include "agent.h"
#include "cmd_args.h"
#include "cmd_handlers.h"
#include "server.h"
#include "vm.h"
#include "vm_hotplug.h"

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

/* v's definition with disk appended, validated. */
static int definition_with_disk(request *r, vm *v, struct json_object *disk, vm_def *ret)
{
    agent *a = request_agent(r);
    struct json_object *merged = vmdef_to_json(&v->def), *disks, *d = disk_with_cache(a, disk);
    char err[VM_ERR_MAX];
    int rc;

    if (!merged || !d) {
        json_object_put(merged);
        json_object_put(d);
        request_error(r, "GenericError", "out of memory");
        return -1;
    }
    if (!json_object_object_get_ex(merged, "disks", &disks)) {
        disks = json_object_new_array();
        json_object_object_add(merged, "disks", disks);
    }
    json_object_array_add(disks, d);
    rc = vmdef_from_json(merged, ret, err, sizeof(err));
    json_object_put(merged);
    if (rc < 0) {
        request_error(r, "InvalidParameter", "%s", err);
        return -1;
    }
    if (!json_object_is_type(disk, json_type_object))
        apply_attach_cache(a, &ret->disks[ret->ndisks - 1]);
    return 0;
}

void cmd_disk_attach(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", "disk", NULL };
    struct json_object *disk;
    vm_result res;
    vm_def next;
    vm *v;

    if (!args_known(r, args, allowed) || !(v = arg_vm(r, args)))
        return;
    if (!json_object_object_get_ex(args, "disk", &disk) ||
        (!json_object_is_type(disk, json_type_object) && !json_object_is_type(disk, json_type_string))) {
        request_error(r, "InvalidParameter", "disk: %s", disk ? "must be an object or a string" : "missing");
        return;
    }
    if (definition_with_disk(r, v, disk, &next) < 0)
        return;
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
