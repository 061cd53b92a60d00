/* cmd_vnc.c: vnc-credentials (xCAT's getrvidparms: a one-time password)
 * and vnc-password (xCAT's vidpassword: a persistent one). Both are admin
 * commands; a password is never logged. */
#include <json-c/json.h>

#include "cmd_args.h"
#include "cmd_handlers.h"
#include "server.h"
#include "vm.h"
#include "vm_vnc.h"

#define EXPIRE_DEFAULT_S 60
#define EXPIRE_MAX_S 86400

void cmd_vnc_credentials(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", "expire", NULL };
    vm_result res;
    int64_t expire;
    vm *v;

    if (!args_known(r, args, allowed) || !(v = arg_vm(r, args)) ||
        !arg_uint(r, args, "expire", EXPIRE_DEFAULT_S, 1, EXPIRE_MAX_S, &expire))
        return;
    run_job(r, vm_vnc_credentials(v, (uint32_t)expire, on_job_done, r, &res), &res);
}

void cmd_vnc_password(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", "password", "clear", NULL };
    const char *password = NULL;
    vm_result res;
    bool clear;
    vm *v;

    if (!args_known(r, args, allowed) || !(v = arg_vm(r, args)) ||
        !arg_string(r, args, "password", false, &password) || !arg_bool(r, args, "clear", false, &clear))
        return;
    if (clear == (password != NULL)) {
        request_error(r, "InvalidParameter", "password: give a password, or clear: true");
        return;
    }
    run_job(r, vm_vnc_set_password(v, password, on_job_done, r, &res), &res);
}
