/* cmd_args.c: checking a request's arguments, and answering from a job's
 * result; shared by the command files. */
#include "cmd_args.h"
#include "vmdef.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "agent.h"
#include "pool.h"
#include "server.h"
#include "vm.h"

/* ---- arguments ------------------------------------------------------------ */

bool args_known(request *r, struct json_object *args, const char *const *allowed)
{
    if (!args)
        return true;
    json_object_object_foreach(args, key, val) {
        (void)val;
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, key) == 0;
        if (!ok) {
            request_error(r, "InvalidParameter", "%.64s: unknown argument", key);
            return false;
        }
    }
    return true;
}

struct json_object *arg(struct json_object *args, const char *key)
{
    struct json_object *v = NULL;

    if (args)
        json_object_object_get_ex(args, key, &v);
    return v;
}

bool arg_string(request *r, struct json_object *args, const char *key, bool required,
                       const char **ret)
{
    struct json_object *v = arg(args, key);

    if (!v && !required) {
        *ret = NULL;
        return true;
    }
    if (!v || !json_object_is_type(v, json_type_string)) {
        request_error(r, "InvalidParameter", "%s: %s string", key, v ? "must be a" : "missing: expected a");
        return false;
    }
    *ret = json_object_get_string(v);
    return true;
}

bool arg_bool(request *r, struct json_object *args, const char *key, bool def, bool *ret)
{
    struct json_object *v = arg(args, key);

    if (!v) {
        *ret = def;
        return true;
    }
    if (!json_object_is_type(v, json_type_boolean)) {
        request_error(r, "InvalidParameter", "%s: must be true or false", key);
        return false;
    }
    *ret = json_object_get_boolean(v);
    return true;
}

bool arg_uint(request *r, struct json_object *args, const char *key, int64_t def,
                     int64_t min, int64_t max, int64_t *ret)
{
    struct json_object *v = arg(args, key);

    if (!v) {
        *ret = def;
        return true;
    }
    errno = 0;
    int64_t n = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : min - 1;
    if (errno || n < min || n > max) {
        request_error(r, "InvalidParameter", "%s: must be a whole number from %lld to %lld", key,
                      (long long)min, (long long)max);
        return false;
    }
    *ret = n;
    return true;
}

struct json_object *arg_object(request *r, struct json_object *args, const char *key,
                                      bool required, bool *ok)
{
    struct json_object *v = arg(args, key);

    *ok = true;
    if (!v && !required)
        return NULL;
    if (!v || !json_object_is_type(v, json_type_object)) {
        request_error(r, "InvalidParameter", "%s: %s", key, v ? "must be an object" : "missing");
        *ok = false;
        return NULL;
    }
    return v;
}

/* The VM named by the "name" argument, or an error reply. */
vm *arg_vm(request *r, struct json_object *args)
{
    const char *name;
    vm *v;

    if (!arg_string(r, args, "name", true, &name))
        return NULL;
    if (!(v = vm_find(request_agent(r), name)) || v->undefined) {
        request_error(r, "NotFound", "no VM named '%.64s'", name);
        return NULL;
    }
    return v;
}

/* ---- replies from jobs --------------------------------------------------- */

void reply_result(request *r, const vm_result *res)
{
    if (res->status == 0)
        request_ok(r, res->ret);
    else
        request_error(r, res->err_class, "%s", res->err_desc);
}

void on_job_done(vm *v, const vm_result *res, void *opaque)
{
    reply_result(opaque, res);
}

/* Runs a job starter; a refusal is answered at once. */
void run_job(request *r, int started, const vm_result *refusal)
{
    if (started < 0)
        reply_result(r, refusal);
}


bool arg_size(request *r, struct json_object *args, const char *key, uint64_t def, uint64_t *ret)
{
    struct json_object *v = arg(args, key);
    uint64_t n;

    if (!v) {
        *ret = def;
        return true;
    }
    if (json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0) {
        *ret = (uint64_t)json_object_get_int64(v);
        return true;
    }
    if (!json_object_is_type(v, json_type_string) || vmdef_parse_size(json_object_get_string(v), &n) < 0) {
        request_error(r, "InvalidParameter", "%s: must be a size in bytes or like \"20G\" (K, M, G, T)",
                      key);
        return false;
    }
    *ret = n;
    return true;
}

pool *arg_pool(request *r, struct json_object *args, const char *key)
{
    const char *name;
    pool *p;

    if (!arg_string(r, args, key, true, &name))
        return NULL;
    if (!(p = pool_find(request_agent(r), name)))
        request_error(r, "NotFound", "%s: no pool named '%.64s'", key, name);
    return p;
}
