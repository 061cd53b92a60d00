/* cmd_storage.c: pool and volume commands (kvmsh's create-pool, pool-list,
 * vol-list, vol-delete; xCAT's vmstorage). */
#include "cmd_handlers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "agent.h"
#include "cmd_args.h"
#include "disk.h"
#include "events.h"
#include "log.h"
#include "master.h"
#include "pool.h"
#include "server.h"
#include "statefile.h"
#include "vm.h"
#include "volume.h"

/* ---- pools --------------------------------------------------------------- */

void cmd_query_pools(request *r, struct json_object *args)
{
    struct json_object *arr = json_object_new_array();

    for (pool *p = request_agent(r)->pools; p; p = p->next)
        if (!p->undefined)
            json_object_array_add(arr, pool_summary_json(p));
    request_ok(r, arr);
}

static void pool_event(agent *a, const char *event, const pool *p)
{
    struct json_object *ev = json_object_new_object();

    json_object_object_add(ev, "pool", json_object_new_string(p->name));
    event_emit(a->events, event, ev);
}

typedef struct pool_define_ctx {
    request *r;
    pool *p;
    pool *old;        /* replaced, kept until the new file is durable */
} pool_define_ctx;

static void on_pool_saved(int status, void *opaque)
{
    pool_define_ctx *d = opaque;
    agent *a = request_agent(d->r);

    if (status < 0) {
        pool_unlink(a, d->p);
        pool_free(d->p);
        if (d->old)
            d->old->undefined = false;
        request_error(d->r, "GenericError", "saving the pool: %s", strerror(-status));
    } else {
        struct json_object *o = json_object_new_object();
        if (d->old) {
            pool_unlink(a, d->old);
            pool_free(d->old);
        }
        json_object_object_add(o, "name", json_object_new_string(d->p->name));
        json_object_object_add(o, "created", json_object_new_boolean(!d->old));
        pool_event(a, "POOL_DEFINED", d->p);
        log_info("pool %s defined at %s", d->p->name, d->p->location);
        request_ok(d->r, o);
    }
    free(d);
}

void cmd_pool_define(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "definition", NULL };
    agent *a = request_agent(r);
    pool_define_ctx *d;
    struct json_object *dj;
    char err[512];
    pool *p, *old;
    bool ok;

    if (!args_known(r, args, allowed) || !(dj = arg_object(r, args, "definition", true, &ok)))
        return;
    if (pool_new_from_json(a, dj, &p, err, sizeof(err)) < 0) {
        request_error(r, "InvalidParameter", "%s", err);
        return;
    }
    if ((old = pool_find(a, p->name)) && (old->active || old->busy)) {
        request_error(r, "InvalidState", "pool %s is %s: stop it before redefining it", old->name,
                      old->busy ? "busy" : "active");
        pool_free(p);
        return;
    }
    if (!(d = calloc(1, sizeof(*d)))) {
        pool_free(p);
        request_error(r, "GenericError", "out of memory");
        return;
    }
    *d = (pool_define_ctx){ r, p, old };
    if (old)
        old->undefined = true;
    pool_append(a, p);
    if (pool_save(p, on_pool_saved, d) < 0)
        on_pool_saved(-ENOMEM, d);
}

/* Defined VMs with a disk in pool p, as a list for messages. */
static bool pool_users(agent *a, const pool *p, bool running_only, char *buf, size_t len)
{
    size_t used = 0;

    buf[0] = '\0';
    for (vm *v = a->vms; v; v = v->next) {
        bool uses = false;
        if (v->undefined || (running_only && !vm_has_process(v)))
            continue;
        for (size_t i = 0; i < v->def.ndisks && !uses; i++)
            uses = !v->def.disks[i].path && strcmp(v->def.disks[i].pool, p->name) == 0;
        if (uses && used < len)
            used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? ", " : "", v->def.name);
    }
    return buf[0] != '\0';
}

typedef struct pool_undefine_ctx {
    request *r;
    pool *p;
} pool_undefine_ctx;

static void on_pool_file_removed(int status, void *opaque)
{
    pool_undefine_ctx *u = opaque;
    request *r = u->r;
    pool *p = u->p;
    agent *a = p->agent;

    free(u);
    p->busy = false;
    if (status < 0) {
        p->undefined = false;
        request_error(r, "GenericError", "removing %s: %s", p->file_path, strerror(-status));
        return;
    }
    pool_event(a, "POOL_UNDEFINED", p);
    log_info("pool %s undefined", p->name);
    pool_unlink(a, p);
    pool_free(p);
    request_ok(r, NULL);
}

void cmd_pool_undefine(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", NULL };
    agent *a = request_agent(r);
    char users[512];
    pool *p;

    if (!args_known(r, args, allowed) || !(p = arg_pool(r, args, "name")))
        return;
    if (p->active || p->busy) {
        request_error(r, "InvalidState", "pool %s is %s: stop it first", p->name, p->busy ? "busy" : "active");
        return;
    }
    if (pool_users(a, p, false, users, sizeof(users))) {
        request_error(r, "InvalidState", "pool %s holds disks of %s", p->name, users);
        return;
    }
    pool_undefine_ctx *u = malloc(sizeof(*u));
    if (!u || (!p->file && !(p->file = statefile_writer_new(a->loop, p->file_path, 0600)))) {
        free(u);
        request_error(r, "GenericError", "out of memory");
        return;
    }
    *u = (pool_undefine_ctx){ r, p };
    p->undefined = true;
    p->busy = true;
    if (statefile_writer_put(p->file, NULL, 0, on_pool_file_removed, u) < 0) {
        p->undefined = p->busy = false;
        free(u);
        request_error(r, "GenericError", "out of memory");
    }
}

static void on_pool_op(pool *p, int status, const char *err, void *opaque)
{
    request *r = opaque;

    if (status < 0) {
        request_error(r, "GenericError", "pool %s: %s", p->name, err);
        return;
    }
    pool_event(p->agent, p->active ? "POOL_STARTED" : "POOL_STOPPED", p);
    request_ok(r, pool_summary_json(p));
}

void cmd_pool_start(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", NULL };
    pool *p;
    int rc;

    if (!args_known(r, args, allowed) || !(p = arg_pool(r, args, "name")))
        return;
    if (p->active) {
        request_ok(r, pool_summary_json(p));
        return;
    }
    if ((rc = pool_start(p, on_pool_op, r)) < 0)
        request_error(r, rc == -EBUSY ? "Busy" : "GenericError", "pool %s: %s", p->name,
                      rc == -EBUSY ? "a start or stop is in progress" : strerror(-rc));
}

void cmd_pool_stop(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", NULL };
    char users[512];
    pool *p;
    int rc;

    if (!args_known(r, args, allowed) || !(p = arg_pool(r, args, "name")))
        return;
    if (pool_users(request_agent(r), p, true, users, sizeof(users))) {
        request_error(r, "InvalidState", "pool %s holds disks of running VMs: %s", p->name, users);
        return;
    }
    if ((rc = pool_stop(p, on_pool_op, r)) < 0)
        request_error(r, rc == -EBUSY ? "Busy" : "GenericError", "pool %s: %s", p->name,
                      rc == -EBUSY ? "a start or stop is in progress" : strerror(-rc));
}

/* ---- volumes ------------------------------------------------------------- */

static pool *active_pool(request *r, struct json_object *args, const char *key)
{
    pool *p = arg_pool(r, args, key);

    if (p && !p->active) {
        request_error(r, "InvalidState", "pool %s is not started", p->name);
        return NULL;
    }
    return p;
}

static void on_volumes_listed(void *opaque, int status, struct json_object *ret, const char *err)
{
    request *r = opaque;
    agent *a = request_agent(r);
    size_t n;

    if (status < 0) {
        request_error(r, "GenericError", "%s", err);
        return;
    }
    n = json_object_array_length(ret);
    for (size_t i = 0; i < n; i++) {
        struct json_object *v = json_object_array_get_idx(ret, i), *path;
        json_object_object_get_ex(v, "path", &path);
        json_object_object_add(v, "used-by", disk_users(a, json_object_get_string(path)));
        json_object_object_add(v, "master", master_of_path_json(a, json_object_get_string(path)));
    }
    request_ok(r, ret);
}

void cmd_query_volumes(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "pool", NULL };
    pool *p;
    int rc;

    if (!args_known(r, args, allowed) || !(p = active_pool(r, args, "pool")))
        return;
    if ((rc = volume_list(p, on_volumes_listed, r)) < 0)
        request_error(r, "GenericError", "listing pool %s: %s", p->name, strerror(-rc));
}

static void on_volume_done(void *opaque, int status, struct json_object *ret, const char *err)
{
    request *r = opaque;

    if (status < 0)
        request_error(r, status == -EEXIST ? "Exists" : status == -EBUSY ? "InvalidState" : status == -ENOENT ? "NotFound" : "GenericError",
                      "%s", err);
    else
        request_ok(r, ret);
}

/* The backing file of a new volume: a volume of an active pool, or a path
 * inside one. A volume of the same pool is named relative to it, so that
 * the pool can move as a whole. */
static bool backing_arg(request *r, struct json_object *args, char *buf, size_t len)
{
    const char *vol, *path, *bpool, *pname;
    pool *p;

    buf[0] = '\0';
    if (!arg_string(r, args, "backing-volume", false, &vol) ||
        !arg_string(r, args, "backing-path", false, &path))
        return false;
    if (vol && path) {
        request_error(r, "InvalidParameter", "backing-volume: give it or backing-path, not both");
        return false;
    }
    if (path) {
        snprintf(buf, len, "%s", path);
        return true;
    }
    if (!vol)
        return true;
    if (!(p = arg(args, "backing-pool") ? active_pool(r, args, "backing-pool") : active_pool(r, args, "pool")))
        return false;
    if (pool_volume_path(p, vol, buf, len) < 0) {
        request_error(r, "InvalidParameter", "backing-volume: '%.255s' is not a volume name", vol);
        return false;
    }
    if (arg_string(r, args, "backing-pool", false, &bpool) && arg_string(r, args, "pool", false, &pname) &&
        (!bpool || (pname && strcmp(bpool, pname) == 0)))
        snprintf(buf, len, "%s", vol);
    return true;
}

static bool format_arg(request *r, struct json_object *args, const char *key, img_format *ret)
{
    const char *s;

    if (!arg_string(r, args, key, false, &s))
        return false;
    if (s && img_format_parse(s, ret) < 0) {
        request_error(r, "InvalidParameter", "%s: must be qcow2 or raw", key);
        return false;
    }
    if (!s)
        *ret = IMG_FORMAT_QCOW2;
    return true;
}

void cmd_vol_create(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "pool", "name", "size", "format", "backing-pool",
                                           "backing-volume", "backing-path", "backing-format", NULL };
    char path[PATH_MAX], backing[PATH_MAX];
    const char *name;
    volume_spec s = { 0 };
    uint64_t size;
    pool *p;
    int rc;

    if (!args_known(r, args, allowed) || !(p = active_pool(r, args, "pool")) ||
        !arg_string(r, args, "name", true, &name) || !arg_size(r, args, "size", 0, &size) ||
        !format_arg(r, args, "format", &s.format) || !format_arg(r, args, "backing-format", &s.backing_format) ||
        !backing_arg(r, args, backing, sizeof(backing)))
        return;
    if (p->spec.kind == IMG_POOL_PHY) {
        request_error(r, "InvalidParameter", "pool: %s is a block device, it holds no volumes", p->name);
        return;
    }
    if (pool_volume_path(p, name, path, sizeof(path)) < 0) {
        request_error(r, "InvalidParameter", "name: letters, digits, '.', '_', '+' or '-', not starting with '.' or '-'");
        return;
    }
    if (!size && !backing[0]) {
        request_error(r, "InvalidParameter", "size: missing");
        return;
    }
    s.path = path;
    s.size = size;
    s.backing = backing[0] ? backing : NULL;
    if ((rc = volume_create(request_agent(r), &s, on_volume_done, r)) < 0)
        request_error(r, "GenericError", "creating %s: %s", path, strerror(-rc));
}

/* vol-delete takes {pool, name} or, as kvmsh does, a path. */
static bool volume_arg(request *r, struct json_object *args, char *buf, size_t len)
{
    const char *name, *path, *vol;
    pool *p;

    if (!arg_string(r, args, "path", false, &path))
        return false;
    if (path) {
        if (arg(args, "pool") || arg(args, "name")) {
            request_error(r, "InvalidParameter", "path: give it or pool and name, not both");
            return false;
        }
        if (!pool_of_path(request_agent(r), path, &vol) || !*vol) {
            request_error(r, "InvalidParameter", "path: %.255s is not a volume of an active pool", path);
            return false;
        }
        snprintf(buf, len, "%s", path);
        return true;
    }
    if (!(p = active_pool(r, args, "pool")) || !arg_string(r, args, "name", true, &name))
        return false;
    if (p->spec.kind == IMG_POOL_PHY || pool_volume_path(p, name, buf, len) < 0) {
        request_error(r, "InvalidParameter", "name: '%.255s' is not a volume name", name);
        return false;
    }
    return true;
}

void cmd_vol_delete(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "pool", "name", "path", NULL };
    agent *a = request_agent(r);
    struct json_object *users;
    char path[PATH_MAX];
    const char *m;
    int rc;

    if (!args_known(r, args, allowed) || !volume_arg(r, args, path, sizeof(path)))
        return;
    users = disk_users(a, path);
    if (json_object_array_length(users) > 0) {
        request_error(r, "InvalidState", "%s is a disk of %s: undefine the VM or remove the disk first",
                      path, json_object_get_string(json_object_array_get_idx(users, 0)));
        json_object_put(users);
        return;
    }
    json_object_put(users);
    if ((m = master_of_path(a, path))) {
        request_error(r, "InvalidState", "%s is a disk of master %s: use master-delete", path, m);
        return;
    }
    if ((rc = volume_delete(a, path, on_volume_done, r)) < 0)
        request_error(r, "GenericError", "deleting %s: %s", path, strerror(-rc));
}

void cmd_query_volume(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "pool", "name", "path", "format", NULL };
    char path[PATH_MAX];
    img_format f;
    int rc;

    if (!args_known(r, args, allowed) || !volume_arg(r, args, path, sizeof(path)))
        return;
    if (arg(args, "format") && !format_arg(r, args, "format", &f))
        return;
    if ((rc = volume_info(request_agent(r), path, arg(args, "format") ? &f : NULL, on_volume_done, r)) < 0)
        request_error(r, "GenericError", "%s: %s", path, strerror(-rc));
}

void cmd_vol_check(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "pool", "name", "path", NULL };
    char path[PATH_MAX];
    int rc;

    if (!args_known(r, args, allowed) || !volume_arg(r, args, path, sizeof(path)))
        return;
    if ((rc = volume_check(request_agent(r), path, on_volume_done, r)) < 0)
        request_error(r, "GenericError", "%s: %s", path, strerror(-rc));
}
