/* cmd_console.c: console-attach, an admin command: the connection it came
 * on becomes the VM's serial console. */
#include <json-c/json.h>

#include "cmd_args.h"
#include "cmd_handlers.h"
#include "console.h"
#include "server.h"
#include "vm.h"

void cmd_console_attach(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", "readonly", "takeover", NULL };
    console_attach_opts o;
    vm *v;

    if (!args_known(r, args, allowed) || !(v = arg_vm(r, args)) ||
        !arg_bool(r, args, "readonly", false, &o.readonly) || !arg_bool(r, args, "takeover", false, &o.takeover))
        return;
    console_attach(v, r, &o);
}
