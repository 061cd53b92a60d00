/* cmd_save.c: vm-save, vm-restore and vm-save-discard (docs/protocol.md,
 * "Save and restore"): arguments checked here, the steps in vm_save.c. */
#include <json-c/json.h>

#include "cmd_args.h"
#include "cmd_handlers.h"
#include "server.h"
#include "vm.h"
#include "vm_save.h"

#define SAVE_TIMEOUT_DEFAULT_S 3600

void cmd_vm_save(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", "file", "timeout", NULL };
    const char *file;
    int64_t timeout;
    vm_result res;
    vm *v;

    if (!args_known(r, args, allowed) || !(v = arg_vm(r, args)) || !arg_string(r, args, "file", true, &file) ||
        !arg_uint(r, args, "timeout", SAVE_TIMEOUT_DEFAULT_S, 1, 7 * 86400, &timeout))
        return;
    run_job(r, vm_save(v, file, (uint32_t)timeout, on_job_done, r, &res), &res);
}

void cmd_vm_restore(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", "timeout", NULL };
    int64_t timeout;
    vm_result res;
    vm *v;

    if (!args_known(r, args, allowed) || !(v = arg_vm(r, args)) ||
        !arg_uint(r, args, "timeout", SAVE_TIMEOUT_DEFAULT_S, 1, 7 * 86400, &timeout))
        return;
    run_job(r, vm_restore(v, (uint32_t)timeout, on_job_done, r, &res), &res);
}

void cmd_vm_save_discard(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", NULL };
    vm_result res;
    vm *v;

    if (args_known(r, args, allowed) && (v = arg_vm(r, args)))
        run_job(r, vm_save_discard(v, on_job_done, r, &res), &res);
}
