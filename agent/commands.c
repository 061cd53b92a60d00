/* commands.c: argument checking and the handler of each protocol command.
 * The VM work itself is in vm*.c; a handler validates, calls it, and turns
 * its result into a reply. */
#include "commands.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "agent.h"
#include "cmd_args.h"
#include "cmd_handlers.h"
#include "disk.h"
#include "pool.h"
#include "volume.h"
#include "events.h"
#include "log.h"
#include "net/net.h"
#include "work.h"
#include "macs.h"
#include "server.h"
#include "statefile.h"
#include "vm.h"
#include "vm_cgroup.h"
#include "vm_snapshot.h"

/* ---- session and host --------------------------------------------------- */

static void cmd_capabilities(request *r, struct json_object *args)
{
    request_ok(r, NULL);
}

static void cmd_query_version(request *r, struct json_object *args)
{
    agent *a = request_agent(r);
    struct json_object *o = json_object_new_object(), *q = json_object_new_object();

    json_object_object_add(o, "agentd", server_version_json());
    json_object_object_add(o, "package", json_object_new_string("agentd " AGENTD_VERSION_STRING));
    json_object_object_add(q, "binary", json_object_new_string(a->cfg.qemu_binary));
    json_object_object_add(q, "version", json_object_new_string(a->qemu_version_str));
    json_object_object_add(o, "qemu", q);
    request_ok(r, o);
}

static void cmd_query_commands(request *r, struct json_object *args)
{
    struct json_object *arr = json_object_new_array();

    for (const command *c = command_table(); c->name; c++) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(c->name));
        json_object_array_add(arr, o);
    }
    request_ok(r, arr);
}

/* MemTotal and MemAvailable in MiB; /proc is memory, not disk. */
static void read_meminfo(int64_t *ret_total, int64_t *ret_avail)
{
    FILE *f = fopen("/proc/meminfo", "re");
    char key[64];
    long long kb;

    *ret_total = *ret_avail = 0;
    if (!f)
        return;
    while (fscanf(f, "%63s %lld kB\n", key, &kb) == 2) {
        if (strcmp(key, "MemTotal:") == 0)
            *ret_total = kb / 1024;
        else if (strcmp(key, "MemAvailable:") == 0)
            *ret_avail = kb / 1024;
    }
    fclose(f);
}

static struct json_object *usage(int64_t vcpus, int64_t mib)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "vcpus", json_object_new_int64(vcpus));
    json_object_object_add(o, "memory-mib", json_object_new_int64(mib));
    return o;
}

/* ---- query-host's bridges, listed over netlink on the thread pool ---- */

typedef struct host_bridges {
    request *r;
    struct json_object *reply;
    struct json_object *bridges;
} host_bridges;

static void run_list_bridges(void *arg)
{
    host_bridges *h = arg;
    net_link *all = NULL;
    size_t n = 0;
    net_nl *nl;

    h->bridges = json_object_new_array();
    if (net_nl_open(2000, &nl) < 0)
        return;
    if (net_link_list(nl, &all, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            struct json_object *b;
            if (strcmp(all[i].kind, "bridge") != 0)
                continue;
            b = json_object_new_object();
            json_object_object_add(b, "name", json_object_new_string(all[i].name));
            json_object_object_add(b, "mtu", json_object_new_int64(all[i].mtu));
            json_object_object_add(b, "up", json_object_new_boolean(all[i].up));
            json_object_array_add(h->bridges, b);
        }
        free(all);
    }
    net_nl_close(nl);
}

static void after_list_bridges(void *arg)
{
    host_bridges *h = arg;

    json_object_object_add(h->reply, "bridges", h->bridges);
    request_ok(h->r, h->reply);
    free(h);
}

static void host_reply_with_bridges(request *r, struct json_object *o)
{
    host_bridges *h = calloc(1, sizeof(*h));

    if (h) {
        h->r = r;
        h->reply = o;
    }
    if (!h || agent_work(request_agent(r)->loop, run_list_bridges, after_list_bridges, h) < 0) {
        free(h);
        request_ok(r, o);
    }
}

static void cmd_query_host(request *r, struct json_object *args)
{
    agent *a = request_agent(r);
    struct json_object *o = json_object_new_object(), *vms = json_object_new_object();
    int64_t total, avail, n = 0, running = 0, av = 0, am = 0, dv = 0, dm = 0;

    read_meminfo(&total, &avail);
    for (vm *v = a->vms; v; v = v->next) {
        n++;
        dv += v->def.vcpus;
        dm += (int64_t)v->def.memory_mib;
        if (vm_has_process(v)) {
            running++;
            av += v->def.vcpus;
            am += (int64_t)v->def.memory_mib;
        }
    }
    json_object_object_add(o, "hostname", json_object_new_string(a->hostname));
    json_object_object_add(o, "cpus", json_object_new_int64(sysconf(_SC_NPROCESSORS_ONLN)));
    json_object_object_add(o, "memory-mib", json_object_new_int64(total));
    json_object_object_add(o, "memory-available-mib", json_object_new_int64(avail));
    json_object_object_add(o, "accel", json_object_new_string(vm_accel_name(a->accel)));
    json_object_object_add(o, "kvm-available", json_object_new_boolean(a->kvm_available));
    json_object_object_add(vms, "defined", json_object_new_int64(n));
    json_object_object_add(vms, "running", json_object_new_int64(running));
    json_object_object_add(o, "vms", vms);
    json_object_object_add(o, "allocated", usage(av, am));
    json_object_object_add(o, "defined", usage(dv, dm));
    host_reply_with_bridges(r, o);
}

static void cmd_query_events(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "after", NULL };
    event_log *l = request_agent(r)->events;
    int64_t after;
    bool missed;

    if (!args_known(r, args, allowed) || !arg_uint(r, args, "after", 0, 0, INT64_MAX, &after))
        return;
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "events", event_log_since(l, (uint64_t)after, &missed));
    json_object_object_add(o, "last-seq", json_object_new_int64((int64_t)event_log_last_seq(l)));
    json_object_object_add(o, "missed", json_object_new_boolean(missed));
    json_object_object_add(o, "epoch", json_object_new_int64(request_agent(r)->epoch));
    request_ok(r, o);
}

/* ---- queries of VMs ------------------------------------------------------ */

static void cmd_query_vms(request *r, struct json_object *args)
{
    agent *a = request_agent(r);

    if (!a->vms_reply) {
        struct json_object *arr = json_object_new_array();
        size_t len;
        for (vm *v = a->vms; v; v = v->next)
            if (!v->undefined)
                json_object_array_add(arr, vm_summary_json(v));
        const char *text = json_object_to_json_string_length(arr, JSON_C_TO_STRING_PLAIN, &len);
        if ((a->vms_reply = malloc(len + 1))) {
            memcpy(a->vms_reply, text, len + 1);
            a->vms_reply_len = len;
        }
        if (!a->vms_reply) {
            request_ok(r, arr);
            return;
        }
        json_object_put(arr);
    }
    request_ok_text(r, a->vms_reply, a->vms_reply_len);
}

static void cmd_query_vm(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", NULL };
    vm *v;

    if (!args_known(r, args, allowed) || !(v = arg_vm(r, args)))
        return;
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "definition", vmdef_to_json(&v->def));
    json_object_object_add(o, "runtime", vm_runtime_json(v));
    request_ok(r, o);
}

/* ---- power --------------------------------------------------------------- */

static void cmd_vm_start(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", "paused", NULL };
    vm_result res;
    bool paused;
    vm *v;

    if (!args_known(r, args, allowed) || !(v = arg_vm(r, args)) ||
        !arg_bool(r, args, "paused", false, &paused))
        return;
    run_job(r, vm_start(v, paused, "user", on_job_done, r, &res), &res);
}

static void cmd_vm_shutdown(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", "timeout", "force", NULL };
    agent *a = request_agent(r);
    vm_result res;
    int64_t timeout;
    bool force;
    vm *v;

    if (!args_known(r, args, allowed) || !(v = arg_vm(r, args)) ||
        !arg_uint(r, args, "timeout", a->cfg.shutdown_timeout_s, 1, 86400, &timeout) ||
        !arg_bool(r, args, "force", false, &force))
        return;
    run_job(r, vm_shutdown(v, (uint32_t)timeout, force, on_job_done, r, &res), &res);
}

#define SIMPLE_POWER_COMMAND(fn, starter)                                   \
    static void fn(request *r, struct json_object *args)                    \
    {                                                                       \
        static const char *const allowed[] = { "name", NULL };              \
        vm_result res;                                                      \
        vm *v;                                                              \
        if (!args_known(r, args, allowed) || !(v = arg_vm(r, args)))         \
            return;                                                         \
        run_job(r, starter(v, on_job_done, r, &res), &res);                 \
    }

SIMPLE_POWER_COMMAND(cmd_vm_destroy, vm_destroy)
SIMPLE_POWER_COMMAND(cmd_vm_reset, vm_reset)
SIMPLE_POWER_COMMAND(cmd_vm_suspend, vm_suspend)
SIMPLE_POWER_COMMAND(cmd_vm_resume, vm_resume)

static void cmd_vm_qmp(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", "command", "arguments", NULL };
    const char *qmp_command;
    struct json_object *qargs;
    vm_result res;
    bool ok;
    vm *v;

    if (!args_known(r, args, allowed) || !(v = arg_vm(r, args)) ||
        !arg_string(r, args, "command", true, &qmp_command))
        return;
    qargs = arg_object(r, args, "arguments", false, &ok);
    if (!ok)
        return;
    log_notice("vm %s: raw QMP command %s from an admin", v->def.name, qmp_command);
    run_job(r, vm_qmp_passthrough(v, qmp_command, qargs, on_job_done, r, &res), &res);
}

/* ---- saving a definition with its disks --------------------------------- */

typedef struct disk_save {
    vm *v;
    vm_done_cb cb;
    void *opaque;
    struct json_object *created;   /* files made for this definition */
    int status;                    /* a failure, told once those files are gone */
    char err_class[32];
    char err_desc[1024];
} disk_save;

static void on_created_removed(void *opaque)
{
    disk_save *s = opaque;
    vm_result res = { .status = s->status, .err_class = s->err_class, .err_desc = s->err_desc };

    s->cb(s->v, &res, s->opaque);
    free(s);
}

static void on_saved_with_disks(vm *v, const vm_result *res, void *opaque)
{
    disk_save *s = opaque;
    struct json_object *created = s->created;

    s->created = NULL;
    if (res->status == 0) {
        json_object_put(created);
        s->cb(v, res, s->opaque);
        free(s);
        return;
    }
    s->status = res->status;
    snprintf(s->err_class, sizeof(s->err_class), "%s", res->err_class);
    snprintf(s->err_desc, sizeof(s->err_desc), "%s", res->err_desc);
    disk_remove_created(v->agent, created, on_created_removed, s);
}

static void on_disks_prepared(void *opaque, int status, const char *err, struct json_object *created)
{
    disk_save *s = opaque;
    vm_result res = { .status = -1, .err_class = "GenericError", .err_desc = "out of memory" };

    s->created = created;
    if (status < 0) {
        res.err_class = status == -ENOSPC ? "NoSpace" : "InvalidParameter";
        res.err_desc = err;
        on_saved_with_disks(s->v, &res, s);
        return;
    }
    if (vm_save_definition(s->v, on_saved_with_disks, s) < 0)
        on_saved_with_disks(s->v, &res, s);
}

/* Makes the disk files the definition asks for, then saves it; the files
 * made are removed again if saving fails. */
static int save_with_disks(request *r, vm *v, vm_done_cb cb, void *opaque)
{
    disk_save *s = calloc(1, sizeof(*s));
    char err[512];
    int rc;

    if (!s) {
        request_error(r, "GenericError", "out of memory");
        return -ENOMEM;
    }
    *s = (disk_save){ .v = v, .cb = cb, .opaque = opaque };
    if ((rc = disk_prepare(v->agent, &v->def, on_disks_prepared, s, err, sizeof(err))) < 0) {
        request_error(r, rc == -EINVAL ? "InvalidParameter" : "GenericError", "%s", err);
        free(s);
    }
    return rc;
}

/* ---- definitions ------------------------------------------------------- */

static bool uuid_taken(agent *a, const vm_def *def, const vm *self)
{
    for (vm *v = a->vms; v; v = v->next)
        if (v != self && !v->undefined && strcmp(v->def.uuid, def->uuid) == 0)
            return true;
    return false;
}

typedef struct define_ctx {
    request *r;
    bool created;
    vm_def old;        /* restored if saving the replacement fails */
} define_ctx;

static void on_defined(vm *v, const vm_result *res, void *opaque)
{
    define_ctx *d = opaque;
    agent *a = v->agent;

    v->job = VM_JOB_NONE;
    if (res->status < 0) {
        request_error(d->r, res->err_class, "%s", res->err_desc);
        if (d->created) {
            vm_unlink(a, v);
            vm_free(v);
        } else {
            vmdef_free(&v->def);
            v->def = d->old;
        }
        free(d);
        return;
    }
    struct json_object *o = json_object_new_object(), *ev = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(v->def.name));
    json_object_object_add(o, "uuid", json_object_new_string(v->def.uuid));
    json_object_object_add(o, "created", json_object_new_boolean(d->created));
    json_object_object_add(ev, "vm", json_object_new_string(v->def.name));
    json_object_object_add(ev, "uuid", json_object_new_string(v->def.uuid));
    json_object_object_add(ev, "created", json_object_new_boolean(d->created));
    agent_vms_changed(a);
    event_emit(a->events, "VM_DEFINED", ev);
    log_info("vm %s: %s", v->def.name, d->created ? "defined" : "definition replaced");
    request_ok(d->r, o);
    if (!d->created)
        vmdef_free(&d->old);
    free(d);
}

/* Replacing keeps the VM's uuid unless the new definition names one. */
static void keep_uuid(struct json_object *def_json, const vm *old, vm_def *def)
{
    if (old && !json_object_object_get_ex(def_json, "uuid", NULL))
        memcpy(def->uuid, old->def.uuid, sizeof(def->uuid));
}

static void define_replace(request *r, vm *v, vm_def *def, define_ctx *d)
{
    vm_result res;

    if (v->state == VM_SAVED) {
        request_error(r, "InvalidState", "%s is saved: vm-restore it, or vm-save-discard its state, before "
                      "replacing its definition", v->def.name);
        goto fail;
    }
    if (v->state != VM_STOPPED && v->state != VM_CRASHED) {
        request_error(r, "InvalidState", "%s is %s: stop it before replacing its definition, or use vm-update",
                      v->def.name, vm_state_name(v));
        goto fail;
    }
    if (!vm_job_begin(v, VM_JOB_DEFINE, NULL, NULL, &res)) {
        reply_result(r, &res);
        goto fail;
    }
    d->old = v->def;
    v->def = *def;
    if (save_with_disks(r, v, on_defined, d) < 0) {
        v->def = d->old;
        v->job = VM_JOB_NONE;
        vmdef_free(def);
        free(d);
    }
    return;
fail:
    vmdef_free(def);
    free(d);
}

static void cmd_vm_define(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "definition", NULL };
    agent *a = request_agent(r);
    struct json_object *dj;
    char err[VM_ERR_MAX];
    vm_def def;
    bool ok;
    vm *v;

    if (!args_known(r, args, allowed) || !(dj = arg_object(r, args, "definition", true, &ok)))
        return;
    if (vmdef_from_json(dj, &def, err, sizeof(err)) < 0) {
        request_error(r, "InvalidParameter", "%s", err);
        return;
    }
    v = vm_find(a, def.name);
    keep_uuid(dj, v, &def);
    macs_keep(dj, v ? &v->def : NULL, &def);
    if (uuid_taken(a, &def, v)) {
        request_error(r, "InvalidParameter", "uuid: %s is used by another VM", def.uuid);
        vmdef_free(&def);
        return;
    }
    if (macs_make_unique(a, dj, &def, v, err, sizeof(err)) < 0) {
        request_error(r, "InvalidParameter", "%s", err);
        vmdef_free(&def);
        return;
    }
    define_ctx *d = calloc(1, sizeof(*d));
    if (!d) {
        vmdef_free(&def);
        request_error(r, "GenericError", "out of memory");
        return;
    }
    d->r = r;
    if (v) {
        define_replace(r, v, &def, d);
        return;
    }
    d->created = true;
    if (vm_new(a, &def, &v) < 0) {
        request_error(r, "InvalidParameter", "name: too long for this host's run directory");
        vmdef_free(&def);
        free(d);
        return;
    }
    vm_append(a, v);
    v->job = VM_JOB_DEFINE;
    if (save_with_disks(r, v, on_defined, d) < 0) {
        vm_unlink(a, v);
        vm_free(v);
        free(d);
    }
}

/* Fields whose change a running QEMU sees at once: the agent's own, and
 * the cgroup limits it can write to a running QEMU's group. */
static bool applies_live(const vm *v, const vm_def *next, const char *field)
{
    return strcmp(field, "labels") == 0 || strcmp(field, "autostart") == 0 ||
           strcmp(field, "on-crash") == 0 || vm_cgroup_applies_live(v, next, field);
}

static struct json_object *changed_fields(vm *v, const vm_def *next)
{
    struct json_object *a = vmdef_to_json(&v->def), *b = vmdef_to_json(next);
    struct json_object *list = json_object_new_array();

    json_object_object_foreach(b, key, nv) {
        struct json_object *ov = NULL;
        json_object_object_get_ex(a, key, &ov);
        if (!json_object_equal(ov, nv) && vm_has_process(v) && !applies_live(v, next, key))
            json_object_array_add(list, json_object_new_string(key));
    }
    json_object_put(a);
    json_object_put(b);
    return list;
}

typedef struct update_ctx {
    request *r;
    struct json_object *restart;
    vm_def old;
} update_ctx;

static void on_updated(vm *v, const vm_result *res, void *opaque)
{
    update_ctx *u = opaque;

    if (res->status < 0) {
        vmdef_free(&v->def);
        v->def = u->old;
        json_object_put(u->restart);
        request_error(u->r, res->err_class, "%s", res->err_desc);
    } else {
        struct json_object *o = json_object_new_object();
        agent_vms_changed(v->agent);
        if (vm_has_process(v) && (u->old.cpu_weight != v->def.cpu_weight ||
                                  u->old.memory_limit_mib != v->def.memory_limit_mib))
            vm_cgroup_update(v, v->def.cpu_weight,
                             vm_cgroup_memory_live(u->old.memory_limit_mib, v->def.memory_limit_mib)
                                 ? v->def.memory_limit_mib : u->old.memory_limit_mib);
        vmdef_free(&u->old);
        json_object_object_add(o, "restart-needed", u->restart);
        request_ok(u->r, o);
    }
    free(u);
}

static struct json_object *merged_definition(request *r, vm *v, struct json_object *changes)
{
    struct json_object *merged = vmdef_to_json(&v->def);

    json_object_object_foreach(changes, key, val) {
        if (strcmp(key, "name") == 0 || strcmp(key, "uuid") == 0) {
            request_error(r, "InvalidParameter", "%s: cannot be changed; define a new VM instead", key);
            json_object_put(merged);
            return NULL;
        }
        json_object_object_add(merged, key, json_object_get(val));
    }
    return merged;
}

static void cmd_vm_update(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", "changes", NULL };
    struct json_object *changes, *merged;
    char err[VM_ERR_MAX];
    vm_def next;
    bool ok;
    vm *v;

    if (!args_known(r, args, allowed) || !(v = arg_vm(r, args)) ||
        !(changes = arg_object(r, args, "changes", true, &ok)))
        return;
    if (v->job == VM_JOB_DEFINE || v->job == VM_JOB_UNDEFINE || v->job == VM_JOB_HOTPLUG) {
        request_error(r, "Busy", "%s: a %s job is in progress", v->def.name, vm_job_name(v->job));
        return;
    }
    /* The saved state is of this very machine: another could not load it. */
    if (v->state == VM_SAVED || v->state == VM_SAVING || v->state == VM_RESTORING) {
        request_error(r, "InvalidState", "%s is %s: its definition is fixed until it is restored or its "
                      "saved state discarded", v->def.name, vm_state_name(v));
        return;
    }
    /* The destination has (or is getting) this very definition. */
    if (v->state == VM_SENDING || v->state == VM_SENT || v->state == VM_RECEIVING) {
        request_error(r, "InvalidState", "%s is %s: its definition is fixed until the offline migration is "
                      "confirmed", v->def.name, vm_state_name(v));
        return;
    }
    if (!(merged = merged_definition(r, v, changes)))
        return;
    int pr = vmdef_from_json(merged, &next, err, sizeof(err));
    json_object_put(merged);
    if (pr < 0) {
        request_error(r, "InvalidParameter", "%s", err);
        return;
    }
    macs_keep(changes, &v->def, &next);
    if (macs_make_unique(request_agent(r), changes, &next, v, err, sizeof(err)) < 0) {
        vmdef_free(&next);
        request_error(r, "InvalidParameter", "%s", err);
        return;
    }
    update_ctx *u = calloc(1, sizeof(*u));
    if (!u) {
        vmdef_free(&next);
        request_error(r, "GenericError", "out of memory");
        return;
    }
    u->r = r;
    u->restart = changed_fields(v, &next);
    u->old = v->def;
    v->def = next;
    if (save_with_disks(r, v, on_updated, u) < 0) {
        vmdef_free(&v->def);
        v->def = u->old;
        json_object_put(u->restart);
        free(u);
    }
}

typedef struct undefine_ctx {
    request *r;
    vm *v;
    bool purge;
    bool sent;                             /* vm-send-confirm: the VM lives elsewhere now */
    const char **paths;                    /* images to delete once the definition is gone */
    char (*path_buf)[PATH_MAX];
    size_t npaths;
} undefine_ctx;

static void undefine_free(undefine_ctx *u)
{
    free(u->paths);
    free(u->path_buf);
    free(u);
}

static void on_purged(void *opaque, int status, struct json_object *kept, const char *err)
{
    undefine_ctx *u = opaque;
    struct json_object *o = json_object_new_object(), *deleted = json_object_new_array();

    for (size_t i = 0; i < u->npaths; i++) {
        bool failed = false;
        for (size_t k = 0; k < json_object_array_length(kept) && !failed; k++) {
            struct json_object *p;
            json_object_object_get_ex(json_object_array_get_idx(kept, k), "path", &p);
            failed = strcmp(json_object_get_string(p), u->paths[i]) == 0;
        }
        if (!failed)
            json_object_array_add(deleted, json_object_new_string(u->paths[i]));
    }
    json_object_object_add(o, "deleted", deleted);
    json_object_object_add(o, "kept", kept);
    request_ok(u->r, o);
    undefine_free(u);
}

static void on_undefined(int status, void *opaque)
{
    undefine_ctx *u = opaque;
    vm *v = u->v;
    agent *a = v->agent;
    int r = 0;

    if (status < 0) {
        v->job = VM_JOB_NONE;
        v->undefined = false;
        agent_vms_changed(a);
        request_error(u->r, "GenericError", "removing %s: %s", v->def_path, strerror(-status));
        undefine_free(u);
        return;
    }
    struct json_object *ev = json_object_new_object();
    json_object_object_add(ev, "vm", json_object_new_string(v->def.name));
    event_emit(a->events, "VM_UNDEFINED", ev);
    agent_vms_changed(a);
    log_info("vm %s: undefined", v->def.name);
    /* After the definition: a crash in between leaves a stray record,
     * never a defined VM that may start here while it runs there. */
    if (u->sent)
        statefile_writer_put(v->sent_file, NULL, 0, NULL, NULL);
    rmdir(v->run_dir);
    vm_unlink(a, v);
    vm_free(v);
    if (u->npaths > 0 && (r = volume_delete_many(a, u->paths, u->npaths, on_purged, u)) == 0)
        return;
    if (u->npaths > 0)
        request_error(u->r, "GenericError", "the VM is undefined but its disks were not deleted: %s",
                      strerror(-r));
    else
        request_ok(u->r, NULL);
    undefine_free(u);
}

/* rmvm -p deletes the disk files in pools; never an ISO, a block device or a
 * file outside the pools. The snapshots' states follow the disks' images,
 * latest first, so each goes once nothing above it is left. */
static int collect_purge(undefine_ctx *u)
{
    agent *a = u->v->agent;
    size_t nstates = vm_snapshot_states(u->v, NULL, 0), cap = u->v->def.ndisks + nstates, at;
    const char *vol;

    if (!(u->paths = calloc(cap ? cap : 1, sizeof(*u->paths))) ||
        !(u->path_buf = calloc(cap ? cap : 1, sizeof(*u->path_buf))))
        return -ENOMEM;
    for (size_t i = 0; i < u->v->def.ndisks; i++) {
        const vm_disk *d = &u->v->def.disks[i];
        char *buf = u->path_buf[u->npaths];
        pool *p;
        if (d->cdrom || d->readonly || disk_source_path(a, d, buf, PATH_MAX) < 0)
            continue;
        if (!(p = pool_of_path(a, buf, &vol)) || p->spec.kind == IMG_POOL_PHY)
            continue;
        u->paths[u->npaths] = buf;
        u->npaths++;
    }
    at = u->npaths;
    vm_snapshot_states(u->v, u->path_buf + at, nstates);
    for (size_t i = 0; i < nstates; i++)
        if (pool_of_path(a, u->path_buf[at + i], &vol))
            u->paths[u->npaths++] = u->path_buf[at + i];
    return 0;
}

static void undefine_now(undefine_ctx *u)
{
    vm *v = u->v;
    vm_result res;

    if (v->state == VM_SAVED) {
        request_error(u->r, "InvalidState", "%s is saved: vm-restore it, or vm-save-discard its state first",
                      v->def.name);
        undefine_free(u);
        return;
    }
    if (v->state == VM_SENT && !u->sent) {
        request_error(u->r, "InvalidState", "%s was sent to another host: vm-send-confirm it", v->def.name);
        undefine_free(u);
        return;
    }
    if (v->state != VM_STOPPED && v->state != VM_CRASHED && !(v->state == VM_SENT && u->sent)) {
        request_error(u->r, "InvalidState", "%s is %s: destroy it first, or use force", v->def.name,
                      vm_state_name(v));
        undefine_free(u);
        return;
    }
    if (!vm_job_begin(v, VM_JOB_UNDEFINE, NULL, NULL, &res)) {
        reply_result(u->r, &res);
        undefine_free(u);
        return;
    }
    if (u->purge && collect_purge(u) < 0) {
        request_error(u->r, "GenericError", "out of memory");
        undefine_free(u);
        return;
    }
    v->undefined = true;
    agent_vms_changed(v->agent);
    statefile_writer_put(v->vnc_password_file, NULL, 0, NULL, NULL);
    statefile_writer_put(v->snapshots_file, NULL, 0, NULL, NULL);
    statefile_writer_put(v->def_file, NULL, 0, on_undefined, u);
}

void undefine_sent(request *r, vm *v)
{
    undefine_ctx *u = calloc(1, sizeof(*u));

    if (v->state != VM_SENT) {
        request_error(r, "InvalidState", "%s is %s: only a sent VM is confirmed", v->def.name, vm_state_name(v));
        free(u);
        return;
    }
    if (!u) {
        request_error(r, "GenericError", "out of memory");
        return;
    }
    *u = (undefine_ctx){ .r = r, .v = v, .purge = true, .sent = true };
    undefine_now(u);
}

static void on_forced_stop(vm *v, const vm_result *res, void *opaque)
{
    undefine_ctx *u = opaque;

    if (res->status < 0) {
        request_error(u->r, res->err_class, "stopping %s first: %s", v->def.name, res->err_desc);
        undefine_free(u);
        return;
    }
    undefine_now(u);
}

static void cmd_vm_undefine(request *r, struct json_object *args)
{
    static const char *const allowed[] = { "name", "purge", "force", "keep-disks", NULL };
    undefine_ctx *u;
    bool force, keep;
    vm_result res;
    vm *v;

    if (!args_known(r, args, allowed) || !(v = arg_vm(r, args)) || !arg_bool(r, args, "force", false, &force) ||
        !arg_bool(r, args, "keep-disks", false, &keep))
        return;
    if (!(u = calloc(1, sizeof(*u)))) {
        request_error(r, "GenericError", "out of memory");
        return;
    }
    u->r = r;
    u->v = v;
    if (!arg_bool(r, args, "purge", false, &u->purge)) {
        undefine_free(u);
        return;
    }
    if (u->purge && keep) {
        request_error(r, "InvalidParameter", "purge: cannot be combined with keep-disks");
        undefine_free(u);
        return;
    }
    if (force && vm_has_process(v)) {
        if (vm_destroy(v, on_forced_stop, u, &res) < 0) {
            reply_result(r, &res);
            undefine_free(u);
        }
        return;
    }
    undefine_now(u);
}

/* ---- the table ----------------------------------------------------------- */

static const command commands[] = {
    { "qmp_capabilities", false, cmd_capabilities },
    { "query-version", false, cmd_query_version },
    { "query-commands", false, cmd_query_commands },
    { "query-host", false, cmd_query_host },
    { "host-sriov", false, cmd_host_sriov },
    { "host-sriov-set", true, cmd_host_sriov_set },
    { "query-events", false, cmd_query_events },
    { "query-vms", false, cmd_query_vms },
    { "query-vm", false, cmd_query_vm },
    { "vm-define", true, cmd_vm_define },
    { "vm-update", true, cmd_vm_update },
    { "vm-undefine", true, cmd_vm_undefine },
    { "vm-start", true, cmd_vm_start },
    { "vm-shutdown", true, cmd_vm_shutdown },
    { "vm-destroy", true, cmd_vm_destroy },
    { "vm-reset", true, cmd_vm_reset },
    { "vm-suspend", true, cmd_vm_suspend },
    { "vm-resume", true, cmd_vm_resume },
    { "vm-qmp", true, cmd_vm_qmp },
    { "vnc-credentials", true, cmd_vnc_credentials },
    { "vnc-password", true, cmd_vnc_password },
    { "console-attach", true, cmd_console_attach },
    { "disk-attach", true, cmd_disk_attach },
    { "disk-detach", true, cmd_disk_detach },
    { "nic-attach", true, cmd_nic_attach },
    { "nic-detach", true, cmd_nic_detach },
    { "vcpus-set", true, cmd_vcpus_set },
    { "memory-set", true, cmd_memory_set },
    { "balloon-set", true, cmd_balloon_set },
    { "vm-clone", true, cmd_vm_clone },
    { "vm-migrate-incoming", true, cmd_vm_migrate_incoming },
    { "vm-migrate", true, cmd_vm_migrate },
    { "vm-migrate-cancel", true, cmd_vm_migrate_cancel },
    { "vm-migrate-finish", true, cmd_vm_migrate_finish },
    { "vm-migrate-confirm", true, cmd_vm_migrate_confirm },
    { "vm-send", true, cmd_vm_send },
    { "vm-receive", true, cmd_vm_receive },
    { "vm-send-confirm", true, cmd_vm_send_confirm },
    { "vm-save", true, cmd_vm_save },
    { "vm-restore", true, cmd_vm_restore },
    { "vm-save-discard", true, cmd_vm_save_discard },
    { "snapshot-create", true, cmd_snapshot_create },
    { "snapshot-list", true, cmd_snapshot_list },
    { "snapshot-revert", true, cmd_snapshot_revert },
    { "snapshot-delete", true, cmd_snapshot_delete },
    { "job-cancel", true, cmd_job_cancel },
    { "query-pools", false, cmd_query_pools },
    { "pool-define", true, cmd_pool_define },
    { "pool-undefine", true, cmd_pool_undefine },
    { "pool-start", true, cmd_pool_start },
    { "pool-stop", true, cmd_pool_stop },
    { "query-volumes", false, cmd_query_volumes },
    { "vol-create", true, cmd_vol_create },
    { "vol-delete", true, cmd_vol_delete },
    { "query-volume", false, cmd_query_volume },
    { "vol-check", true, cmd_vol_check },
    { "query-masters", false, cmd_query_masters },
    { "master-create", true, cmd_master_create },
    { "master-delete", true, cmd_master_delete },
    { NULL, false, NULL },
};

const command *command_find(const char *name)
{
    for (const command *c = commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

const command *command_table(void)
{
    return commands;
}
