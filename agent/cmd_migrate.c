/* cmd_migrate.c: vm-migrate-incoming, vm-migrate, vm-migrate-cancel,
 * vm-migrate-finish and vm-migrate-confirm (docs/protocol.md, "Live
 * migration"): arguments checked here, the steps in vm_migrate*.c. */
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "agent.h"
#include "cmd_args.h"
#include "cmd_handlers.h"
#include "server.h"
#include "vm.h"
#include "vm_migrate.h"

/* The options both ends share (multifd), and with source, the rest. */
static bool migrate_opts(request *r, struct json_object *args, bool source, vm_migrate_opts *o)
{
    int64_t downtime, bandwidth, channels, stall, timeout;
    const char *comp = NULL;

    vm_migrate_opts_default(o);
    if (!arg_uint(r, args, "multifd-channels", 0, 0, 64, &channels) ||
        !arg_string(r, args, "multifd-compression", false, &comp))
        return false;
    if (comp && strcmp(comp, "none") && strcmp(comp, "zlib") && strcmp(comp, "zstd")) {
        request_error(r, "InvalidParameter", "multifd-compression: must be none, zlib or zstd, not '%.16s'", comp);
        return false;
    }
    o->multifd_channels = (uint32_t)channels;
    snprintf(o->multifd_compression, sizeof(o->multifd_compression), "%s", comp ? comp : "none");
    if (!source)
        return true;
    if (!arg_uint(r, args, "downtime-limit", o->downtime_limit_ms, 1, 2000000, &downtime) ||
        !arg_uint(r, args, "bandwidth", 0, 0, 1048576, &bandwidth) ||
        !arg_bool(r, args, "auto-converge", true, &o->auto_converge) ||
        !arg_uint(r, args, "stall-timeout", o->stall_timeout_s, 1, 86400, &stall) ||
        !arg_uint(r, args, "timeout", o->timeout_s, 1, 7 * 86400, &timeout))
        return false;
    o->downtime_limit_ms = (uint32_t)downtime;
    o->bandwidth_mib = (uint32_t)bandwidth;
    o->stall_timeout_s = (uint32_t)stall;
    o->timeout_s = (uint32_t)timeout;
    return true;
}

void cmd_vm_migrate_incoming(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "definition", "multifd-channels", "multifd-compression", NULL };
    struct json_object *dj;
    char err[VM_ERR_MAX];
    vm_migrate_opts o;
    vm_result res;
    vm_def def;
    bool ok;

    if (!args_known(r, args, allowed) || !(dj = arg_object(r, args, "definition", true, &ok)) ||
        !migrate_opts(r, args, false, &o))
        return;
    /* The guest keeps its identity: the source's uuid (and MACs), as given. */
    if (!json_object_object_get_ex(dj, "uuid", NULL)) {
        request_error(r, "InvalidParameter", "definition.uuid: required (the source's, from query-vm)");
        return;
    }
    if (vmdef_from_json(dj, &def, err, sizeof(err)) < 0) {
        request_error(r, "InvalidParameter", "definition.%s", err);
        return;
    }
    run_job(r, vm_migrate_incoming(request_agent(r), &def, &o, on_job_done, r, &res), &res);
}

void cmd_vm_migrate(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", "uri", "downtime-limit", "bandwidth", "auto-converge",
                                           "multifd-channels", "multifd-compression", "stall-timeout",
                                           "timeout", NULL };
    const char *uri;
    vm_migrate_opts o;
    vm_result res;
    vm *v;

    if (!args_known(r, args, allowed) || !(v = arg_vm(r, args)) || !arg_string(r, args, "uri", true, &uri) ||
        !migrate_opts(r, args, true, &o))
        return;
    if (strlen(uri) >= 120) {
        request_error(r, "InvalidParameter", "uri: longer than 120 characters");
        return;
    }
    run_job(r, vm_migrate(v, uri, &o, on_job_done, r, &res), &res);
}

/* A command whose one argument is the VM's name. */
static void on_named_vm(request *r, struct json_object *args,
                        int (*start)(vm *v, vm_done_cb cb, void *opaque, vm_result *res))
{
    static const char *const allowed[] = { "name", NULL };
    vm_result res;
    vm *v;

    if (args_known(r, args, allowed) && (v = arg_vm(r, args)))
        run_job(r, start(v, on_job_done, r, &res), &res);
}

void cmd_vm_migrate_cancel(request *r, struct json_object *args)
{
    on_named_vm(r, args, vm_migrate_cancel);
}

void cmd_vm_migrate_finish(request *r, struct json_object *args)
{
    on_named_vm(r, args, vm_migrate_finish);
}

void cmd_vm_migrate_confirm(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", "completed", NULL };
    struct json_object *c;
    vm_result res;
    bool completed;
    vm *v;

    if (!args_known(r, args, allowed) || !(v = arg_vm(r, args)))
        return;
    if (!json_object_object_get_ex(args, "completed", &c)) {
        request_error(r, "InvalidParameter", "completed: required (true: the destination runs the guest)");
        return;
    }
    if (arg_bool(r, args, "completed", false, &completed))
        run_job(r, vm_migrate_confirm(v, completed, on_job_done, r, &res), &res);
}
