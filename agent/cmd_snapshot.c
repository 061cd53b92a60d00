/* cmd_snapshot.c: snapshot-create, snapshot-list, snapshot-revert and
 * snapshot-delete (docs/protocol.md, "Snapshots"): arguments checked here,
 * the steps in vm_snapshot.c. */
#include <json-c/json.h>

#include "cmd_args.h"
#include "cmd_handlers.h"
#include "server.h"
#include "vm.h"
#include "vm_snapshot.h"

/* {"name": VM, "snapshot": SNAP} to one of the snapshot jobs. */
static void on_snapshot(request *r, struct json_object *args,
                        int (*op)(vm *v, const char *name, vm_done_cb cb, void *opaque, vm_result *res))
{
    static const char *const allowed[] = { "name", "snapshot", NULL };
    const char *snap;
    vm_result res;
    vm *v;

    if (args_known(r, args, allowed) && (v = arg_vm(r, args)) && arg_string(r, args, "snapshot", true, &snap))
        run_job(r, op(v, snap, on_job_done, r, &res), &res);
}

void cmd_snapshot_create(request *r, struct json_object *args)
{
    on_snapshot(r, args, vm_snapshot_create);
}

void cmd_snapshot_revert(request *r, struct json_object *args)
{
    on_snapshot(r, args, vm_snapshot_revert);
}

void cmd_snapshot_delete(request *r, struct json_object *args)
{
    on_snapshot(r, args, vm_snapshot_delete);
}

void cmd_snapshot_list(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", NULL };
    vm *v;

    if (args_known(r, args, allowed) && (v = arg_vm(r, args)))
        request_ok(r, vm_snapshot_list(v));
}
