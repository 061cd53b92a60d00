/* cmd_send.c: vm-send, vm-receive and vm-send-confirm (docs/protocol.md,
 * "Offline migration"): arguments checked here, the steps in vm_send.c and
 * vm_receive.c. */
#include <inttypes.h>
#include <string.h>

#include <json-c/json.h>

#include "cmd_args.h"
#include "cmd_handlers.h"
#include "server.h"
#include "vm.h"
#include "vm_send.h"

/* The most the image layer writes (qcow2 with 64 KiB clusters, an L1
 * table of 32 MiB): 256 TiB. */
#define RECEIVE_SIZE_MAX (256ull << 40)

void cmd_vm_send(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", NULL };
    vm *v;

    if (args_known(r, args, allowed) && (v = arg_vm(r, args)))
        vm_send_start(v, r);
}

/* disks: [{"target", "virtual-size"}], one for each disk the definition
 * sends, in its order. */
static bool receive_sizes(request *r, struct json_object *disks, const vm_def *def, uint64_t *sizes,
                          size_t *n)
{
    size_t k = 0, given = json_object_array_length(disks);

    for (size_t i = 0; i < def->ndisks; i++) {
        const vm_disk *d = &def->disks[i];
        struct json_object *o, *t, *sz;
        if (!vm_send_disk_sent(d))
            continue;
        if (k >= given) {
            request_error(r, "InvalidParameter", "disks: %zu given; definition disk %s is sent too", given,
                          d->target);
            return false;
        }
        o = json_object_array_get_idx(disks, k);
        if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, "target", &t) ||
            strcmp(json_object_get_string(t), d->target) != 0) {
            request_error(r, "InvalidParameter", "disks[%zu].target: expected %s (the definition's order)", k,
                          d->target);
            return false;
        }
        if (!json_object_object_get_ex(o, "virtual-size", &sz) || !json_object_is_type(sz, json_type_int) ||
            json_object_get_int64(sz) <= 0 || (uint64_t)json_object_get_int64(sz) > RECEIVE_SIZE_MAX) {
            request_error(r, "InvalidParameter", "disks[%zu].virtual-size: bytes, from 1 to %" PRIu64, k,
                          (uint64_t)RECEIVE_SIZE_MAX);
            return false;
        }
        sizes[k++] = (uint64_t)json_object_get_int64(sz);
    }
    if (k != given) {
        request_error(r, "InvalidParameter", "disks: %zu given, the definition sends %zu", given, k);
        return false;
    }
    *n = k;
    return true;
}

void cmd_vm_receive(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "definition", "disks", NULL };
    struct json_object *dj, *disks;
    uint64_t sizes[VM_DISKS_MAX];
    char err[VM_ERR_MAX];
    size_t n;
    vm_def def;
    bool ok;

    if (!args_known(r, args, allowed) || !(dj = arg_object(r, args, "definition", true, &ok)))
        return;
    if (!json_object_object_get_ex(args, "disks", &disks) || !json_object_is_type(disks, json_type_array)) {
        request_error(r, "InvalidParameter", "disks: required, an array (from vm-send's reply)");
        return;
    }
    /* The guest keeps its identity: the source's uuid (and MACs), as given. */
    if (!json_object_object_get_ex(dj, "uuid", NULL)) {
        request_error(r, "InvalidParameter", "definition.uuid: required (the source's, from vm-send)");
        return;
    }
    if (vmdef_from_json(dj, &def, err, sizeof(err)) < 0) {
        request_error(r, "InvalidParameter", "definition.%s", err);
        return;
    }
    if (!receive_sizes(r, disks, &def, sizes, &n)) {
        vmdef_free(&def);
        return;
    }
    vm_receive_start(request_agent(r), &def, sizes, n, r);
}

void cmd_vm_send_confirm(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", "completed", NULL };
    vm_result res;
    bool completed;
    vm *v;

    if (!args_known(r, args, allowed) || !(v = arg_vm(r, args)))
        return;
    if (!json_object_object_get_ex(args, "completed", NULL)) {
        request_error(r, "InvalidParameter", "completed: required (true: the destination has the VM)");
        return;
    }
    if (!arg_bool(r, args, "completed", false, &completed))
        return;
    if (completed)
        undefine_sent(r, v);
    else
        run_job(r, vm_send_undo(v, on_job_done, r, &res), &res);
}
