/* vm.c: the VM object: paths, the state machine and its events, the job
 * slot, QMP with timeouts, and what queries report. */
#include "vm_internal.h"
#include "console.h"
#include "vm_save.h"
#include "vm_vnc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <uv.h>

#include "agent.h"
#include "events.h"
#include "log.h"
#include "proc.h"
#include "statefile.h"
#include "vm_send.h"

#define HEALTH_INTERVAL_MS 2000

static const char *const state_names[] = {
    [VM_STOPPED] = "stopped",         [VM_STARTING] = "starting",
    [VM_RUNNING] = "running",         [VM_PAUSED] = "paused",
    [VM_SHUTTING_DOWN] = "shutting-down", [VM_STOPPING] = "stopping",
    [VM_CRASHED] = "crashed",         [VM_INCOMING] = "incoming",
    [VM_MIGRATING] = "migrating",     [VM_MIGRATED] = "migrated",
    [VM_SAVING] = "saving",           [VM_SAVED] = "saved",
    [VM_RESTORING] = "restoring",     [VM_SENDING] = "sending",
    [VM_SENT] = "sent",               [VM_RECEIVING] = "receiving",
};

const char *vm_state_name(const vm *v)
{
    return v->unresponsive ? "unresponsive" : state_names[v->state];
}

bool vm_has_process(const vm *v)
{
    return v->proc.pid > 0;
}

vm *vm_find(agent *a, const char *name)
{
    for (vm *v = a->vms; v; v = v->next)
        if (strcmp(v->def.name, name) == 0)
            return v;
    return NULL;
}

bool vm_uuid_in_use(agent *a, const char *uuid)
{
    for (vm *v = a->vms; v; v = v->next)
        if (!v->undefined && strcmp(v->def.uuid, uuid) == 0)
            return true;
    return false;
}

static int path_join(char *buf, const char *dir, const char *name, const char *suffix)
{
    int n = snprintf(buf, PATH_MAX, "%s/%s%s", dir, name, suffix);

    return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

static int set_paths(vm *v)
{
    agent *a = v->agent;
    const char *n = v->def.name;

    if (path_join(v->run_dir, a->run_vms_dir, n, "") < 0 ||
        path_join(v->def_path, a->vms_dir, n, ".json") < 0 ||
        path_join(v->incoming_path, a->vms_dir, n, ".incoming") < 0 ||
        path_join(v->vnc_password_path, a->vms_dir, n, ".vnc-password") < 0 ||
        path_join(v->saved_path, a->vms_dir, n, ".saved") < 0 ||
        path_join(v->snapshots_path, a->vms_dir, n, ".snapshots") < 0 ||
        path_join(v->sent_path, a->vms_dir, n, ".sent") < 0 ||
        path_join(v->receiving_path, a->vms_dir, n, ".receiving") < 0 ||
        path_join(v->console_log, a->logs_dir, n, ".console.log") < 0 ||
        path_join(v->qemu_log, a->logs_dir, n, ".qemu.log") < 0 ||
        path_join(v->qmp_path, v->run_dir, "qmp.sock", "") < 0 ||
        path_join(v->serial_path, v->run_dir, "serial.sock", "") < 0 ||
        path_join(v->qga_path, v->run_dir, "qga.sock", "") < 0 ||
        path_join(v->pidfile, v->run_dir, "qemu.pid", "") < 0 ||
        path_join(v->runtime_path, v->run_dir, "runtime.json", "") < 0)
        return -ENAMETOOLONG;
    /* A unix socket path has to fit sockaddr_un. */
    if (strlen(v->qga_path) >= 108)
        return -ENAMETOOLONG;
    return 0;
}

int vm_new(agent *a, vm_def *def, vm **ret)
{
    vm *v = calloc(1, sizeof(*v));
    int r;

    if (!v)
        return -ENOMEM;
    v->agent = a;
    v->def = *def;
    memset(def, 0, sizeof(*def));
    v->state = VM_STOPPED;
    v->reason = "defined";
    v->proc.pidfd = -1;
    if ((r = set_paths(v)) < 0) {
        vmdef_free(&v->def);
        free(v);
        return r;
    }
    v->def_file = statefile_writer_new(a->loop, v->def_path, 0600);
    v->runtime_file = statefile_writer_new(a->loop, v->runtime_path, 0600);
    v->vnc_password_file = statefile_writer_new(a->loop, v->vnc_password_path, 0600);
    v->incoming_file = statefile_writer_new(a->loop, v->incoming_path, 0600);
    v->saved_file = statefile_writer_new(a->loop, v->saved_path, 0600);
    v->snapshots_file = statefile_writer_new(a->loop, v->snapshots_path, 0600);
    v->sent_file = statefile_writer_new(a->loop, v->sent_path, 0600);
    v->receiving_file = statefile_writer_new(a->loop, v->receiving_path, 0600);
    if (!v->def_file || !v->runtime_file || !v->vnc_password_file || !v->incoming_file || !v->saved_file ||
        !v->snapshots_file || !v->sent_file || !v->receiving_file) {
        vm_free(v);
        return -ENOMEM;
    }
    *ret = v;
    return 0;
}

static void free_handle_mem(uv_handle_t *h)
{
    free(h);
}

static void close_timer(uv_timer_t **t)
{
    if (*t) {
        uv_close((uv_handle_t *)*t, free_handle_mem);
        *t = NULL;
    }
}

void vm_free(vm *v)
{
    if (!v)
        return;
    /* Freeing a VM never touches its QEMU: the agent may be exiting while VMs run on. */
    console_close(v, "the agent is stopping");
    if (v->proc.watch)
        uv_close((uv_handle_t *)v->proc.watch, free_handle_mem);
    if (v->proc.pidfd >= 0)
        close(v->proc.pidfd);
    vm_close_qmp(v);
    close_timer(&v->job_timer);
    close_timer(&v->health_timer);
    close_timer(&v->vnc_timer);
    close_timer(&v->migration_timer);
    free(v->migration);
    vm_save_free(v);
    json_object_put(v->saved);
    statefile_writer_free(v->saved_file);
    json_object_put(v->snapshots);
    statefile_writer_free(v->snapshots_file);
    vm_send_free(v);
    vm_receive_free(v);
    statefile_writer_free(v->sent_file);
    statefile_writer_free(v->receiving_file);
    statefile_writer_free(v->vnc_password_file);
    statefile_writer_free(v->incoming_file);
    statefile_writer_free(v->def_file);
    statefile_writer_free(v->runtime_file);
    json_object_put(v->last_exit);
    vmdef_free(&v->def);
    free(v);
}

/* ---- state ------------------------------------------------------------- */

void agent_vms_changed(agent *a)
{
    free(a->vms_reply);
    a->vms_reply = NULL;
    a->vms_reply_len = 0;
}

void vm_set_state(vm *v, vm_state state, const char *reason, struct json_object *extra)
{
    const char *prev = vm_state_name(v);
    struct json_object *data = extra ? extra : json_object_new_object();

    v->state = state;
    v->reason = reason;
    agent_vms_changed(v->agent);
    json_object_object_add(data, "vm", json_object_new_string(v->def.name));
    json_object_object_add(data, "state", json_object_new_string(vm_state_name(v)));
    json_object_object_add(data, "previous", json_object_new_string(prev));
    json_object_object_add(data, "reason", json_object_new_string(reason));
    if (vm_has_process(v))
        json_object_object_add(data, "pid", json_object_new_int(v->proc.pid));
    log_info("vm %s: %s -> %s (%s)", v->def.name, prev, vm_state_name(v), reason);
    event_emit(v->agent->events, "VM_STATE", data);
}

static void on_health_timer(uv_timer_t *t);

void vm_mark_responsive(vm *v, bool responsive)
{
    if (v->unresponsive == !responsive)
        return;
    v->unresponsive = !responsive;
    if (!responsive) {
        if (!v->health_timer && (v->health_timer = malloc(sizeof(uv_timer_t)))) {
            uv_timer_init(v->agent->loop, v->health_timer);
            v->health_timer->data = v;
            uv_timer_start(v->health_timer, on_health_timer, HEALTH_INTERVAL_MS, HEALTH_INTERVAL_MS);
        }
    } else {
        close_timer(&v->health_timer);
    }
    vm_set_state(v, v->state, responsive ? "qemu" : "timeout", NULL);
}

/* ---- jobs ------------------------------------------------------------- */

const char *vm_job_name(vm_job_kind k)
{
    static const char *const names[] = {
        [VM_JOB_NONE] = "none",       [VM_JOB_START] = "start",
        [VM_JOB_SHUTDOWN] = "shutdown", [VM_JOB_DESTROY] = "destroy",
        [VM_JOB_RESET] = "reset",     [VM_JOB_SUSPEND] = "suspend",
        [VM_JOB_RESUME] = "resume",   [VM_JOB_DEFINE] = "define",
        [VM_JOB_UNDEFINE] = "undefine", [VM_JOB_MASTER] = "master-create",
        [VM_JOB_CLONE] = "clone",     [VM_JOB_HOTPLUG] = "hotplug",
        [VM_JOB_MIGRATE] = "migrate", [VM_JOB_MIGRATE_IN] = "migrate-incoming",
        [VM_JOB_SAVE] = "save",       [VM_JOB_RESTORE] = "restore",
        [VM_JOB_DISCARD] = "save-discard", [VM_JOB_SNAPSHOT] = "snapshot",
        [VM_JOB_SEND] = "send",       [VM_JOB_RECEIVE] = "receive",
    };
    return names[k];
}

void vm_refuse(vm_result *res, const char *err_class, const char *fmt, ...)
{
    static char desc[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(desc, sizeof(desc), fmt, ap);
    va_end(ap);
    res->status = -1;
    res->err_class = err_class;
    res->err_desc = desc;
    res->ret = NULL;
}

bool vm_job_begin(vm *v, vm_job_kind kind, vm_done_cb cb, void *opaque, vm_result *res)
{
    if (v->job != VM_JOB_NONE) {
        vm_refuse(res, "Busy", "%s: a %s job is in progress", v->def.name, vm_job_name(v->job));
        return false;
    }
    v->job = kind;
    v->job_cb = cb;
    v->job_opaque = opaque;
    v->job_step = 0;
    return true;
}

static void job_finish(vm *v, const vm_result *res)
{
    vm_done_cb cb = v->job_cb;
    void *opaque = v->job_opaque;

    vm_job_timer_stop(v);
    v->job = VM_JOB_NONE;
    v->job_cb = NULL;
    v->job_opaque = NULL;
    if (cb)
        cb(v, res, opaque);
    else
        json_object_put(res->ret);
}

void vm_job_finish_ok(vm *v, struct json_object *ret)
{
    vm_result res = { .status = 0, .ret = ret ? ret : json_object_new_object() };

    job_finish(v, &res);
}

void vm_job_finish_error(vm *v, const char *err_class, const char *fmt, ...)
{
    char desc[2048];
    va_list ap;
    vm_result res = { .status = -1, .err_class = err_class, .err_desc = desc };

    va_start(ap, fmt);
    vsnprintf(desc, sizeof(desc), fmt, ap);
    va_end(ap);
    log_warn("vm %s: %s failed: %s", v->def.name, vm_job_name(v->job), desc);
    job_finish(v, &res);
}

/* The handle comes first, so the uv_timer_t pointer kept in the VM is also
 * the allocation that close_timer frees. */
typedef struct job_timer {
    uv_timer_t timer;
    vm *v;
    void (*fire)(vm *v);
} job_timer;

static void on_job_timer_fire(uv_timer_t *t)
{
    job_timer *jt = (job_timer *)t;

    jt->fire(jt->v);
}

void vm_job_timer_start(vm *v, uint64_t ms, void (*fire)(vm *v))
{
    job_timer *jt;

    if (!v->job_timer) {
        jt = calloc(1, sizeof(*jt));
        if (!jt)
            return;
        uv_timer_init(v->agent->loop, &jt->timer);
        v->job_timer = &jt->timer;
    }
    jt = (job_timer *)v->job_timer;
    jt->v = v;
    jt->fire = fire;
    uv_timer_start(&jt->timer, on_job_timer_fire, ms, 0);
}

void vm_job_timer_stop(vm *v)
{
    if (v->job_timer)
        uv_timer_stop(v->job_timer);
}

/* ---- QMP with timeouts -------------------------------------------------- */

typedef struct qmp_call {
    vm *v;
    qmp_reply_cb cb;
    void *opaque;
} qmp_call;

static void on_vm_qmp_reply(qmp_client *c, const qmp_reply *r, void *opaque)
{
    qmp_call *call = opaque;
    vm *v = call->v;

    if (r->status == -ETIMEDOUT)
        vm_mark_responsive(v, false);
    else if (r->status == 0 || r->status == QMP_ERR_REMOTE)
        vm_mark_responsive(v, true);
    if (call->cb)
        call->cb(c, r, call->opaque);
    free(call);
}

int vm_qmp(vm *v, const char *command, struct json_object *args, qmp_reply_cb cb, void *opaque)
{
    return vm_qmp_fd(v, command, args, -1, cb, opaque);
}

int vm_qmp_fd(vm *v, const char *command, struct json_object *args, int fd, qmp_reply_cb cb, void *opaque)
{
    qmp_exec_options o = { .fd = fd, .timeout_ms = v->agent->cfg.qmp_timeout_ms };
    qmp_call *call;
    int r;

    if (!v->qmp || !v->qmp_ready)
        return -ENOTCONN;
    call = malloc(sizeof(*call));
    if (!call)
        return -ENOMEM;
    *call = (qmp_call){ v, cb, opaque };
    r = qmp_execute(v->qmp, command, args, &o, on_vm_qmp_reply, call, NULL);
    if (r < 0)
        free(call);
    return r;
}

static void on_health_reply(qmp_client *c, const qmp_reply *r, void *opaque)
{
}

static void on_health_timer(uv_timer_t *t)
{
    vm *v = t->data;

    if (!vm_has_process(v)) {
        vm_mark_responsive(v, true);
        return;
    }
    if (v->qmp_ready)
        vm_qmp(v, "query-status", NULL, on_health_reply, NULL);
    else if (!v->qmp)
        vm_connect_qmp(v, v->agent->cfg.qmp_timeout_ms);
}

/* ---- process control --------------------------------------------------- */

void vm_signal(vm *v, int sig)
{
    if (v->proc.pidfd < 0)
        return;
    int r = proc_pidfd_signal(v->proc.pidfd, sig);
    if (r < 0 && r != -ESRCH)
        log_warn("vm %s: signal %d to QEMU: %s", v->def.name, sig, strerror(-r));
}

static void stop_step(vm *v)
{
    uint64_t t = v->agent->cfg.stop_timeout_ms;

    if (v->proc.pidfd < 0)
        return; /* it already ended; its exit is being handled */
    switch (v->job_step++) {
    case 0:
        log_info("vm %s: QEMU did not quit in %llu ms, sending SIGTERM", v->def.name,
                 (unsigned long long)t);
        vm_signal(v, SIGTERM);
        vm_job_timer_start(v, t, stop_step);
        break;
    case 1:
        log_warn("vm %s: QEMU ignored SIGTERM for %llu ms, sending SIGKILL", v->def.name,
                 (unsigned long long)t);
        vm_signal(v, SIGKILL);
        vm_job_timer_start(v, t, stop_step);
        break;
    default:
        /* The process may be in uninterruptible sleep; keep waiting for its exit. */
        log_err("vm %s: QEMU (pid %d) survives SIGKILL; still waiting", v->def.name, v->proc.pid);
        vm_job_timer_start(v, t * 4, stop_step);
        break;
    }
}

void vm_stop_process(vm *v)
{
    if (v->proc.pidfd < 0)
        return;
    v->exit_expected = true;
    v->job_step = 0;
    /* quit is polite and fast; if QMP is gone or hung, the ladder goes on. */
    if (vm_qmp(v, "quit", NULL, NULL, NULL) < 0) {
        stop_step(v);
        return;
    }
    vm_job_timer_start(v, v->agent->cfg.stop_timeout_ms, stop_step);
}

/* ---- persistence and queries ------------------------------------------ */

typedef struct save_ctx {
    vm *v;
    vm_done_cb cb;
    void *opaque;
} save_ctx;

static void on_definition_saved(int status, void *opaque)
{
    save_ctx *s = opaque;
    vm_result res = { .status = 0 };

    s->v->pending_io--;
    if (status < 0) {
        static char desc[256];
        snprintf(desc, sizeof(desc), "saving the definition: %s", strerror(-status));
        res = (vm_result){ .status = -1, .err_class = "GenericError", .err_desc = desc };
    }
    if (s->cb)
        s->cb(s->v, &res, s->opaque);
    free(s);
}

int vm_save_definition(vm *v, vm_done_cb cb, void *opaque)
{
    struct json_object *j = vmdef_to_json(&v->def);
    save_ctx *s = malloc(sizeof(*s));
    size_t len;
    const char *text;
    int r;

    if (!j || !s) {
        json_object_put(j);
        free(s);
        return -ENOMEM;
    }
    *s = (save_ctx){ v, cb, opaque };
    text = json_object_to_json_string_length(j, JSON_C_TO_STRING_PRETTY, &len);
    r = statefile_writer_put(v->def_file, text, len, on_definition_saved, s);
    json_object_put(j);
    if (r < 0)
        free(s);
    else
        v->pending_io++;
    return r;
}

struct json_object *vm_summary_json(const vm *v)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "name", json_object_new_string(v->def.name));
    json_object_object_add(o, "uuid", json_object_new_string(v->def.uuid));
    json_object_object_add(o, "state", json_object_new_string(vm_state_name(v)));
    json_object_object_add(o, "reason", json_object_new_string(v->reason));
    if (vm_has_process(v))
        json_object_object_add(o, "pid", json_object_new_int(v->proc.pid));
    json_object_object_add(o, "vcpus", json_object_new_int((int)v->def.vcpus));
    json_object_object_add(o, "memory-mib", json_object_new_int64((int64_t)v->def.memory_mib));
    json_object_object_add(o, "autostart", json_object_new_boolean(v->def.autostart));
    return o;
}

struct json_object *vm_runtime_json(const vm *v)
{
    struct json_object *o = json_object_new_object(), *e;

    json_object_object_add(o, "state", json_object_new_string(vm_state_name(v)));
    json_object_object_add(o, "reason", json_object_new_string(v->reason));
    if (v->job != VM_JOB_NONE)
        json_object_object_add(o, "job", json_object_new_string(vm_job_name(v->job)));
    if (vm_has_process(v)) {
        json_object_object_add(o, "pid", json_object_new_int(v->proc.pid));
        json_object_object_add(o, "uptime-seconds",
                               json_object_new_int64(time(NULL) - v->proc.started_at));
    }
    json_object_object_add(o, "qmp-socket", json_object_new_string(v->qmp_path));
    json_object_object_add(o, "serial-socket", json_object_new_string(v->serial_path));
    json_object_object_add(o, "console-log", json_object_new_string(v->console_log));
    json_object_object_add(o, "qemu-log", json_object_new_string(v->qemu_log));
    if (v->vnc_port)
        json_object_object_add(o, "vnc", vm_vnc_runtime_json(v));
    if (v->saved)
        json_object_object_add(o, "saved", vm_save_runtime_json(v));
    if (v->last_exit) {
        json_object_object_foreach(v->last_exit, key, val) {
            e = val ? json_object_get(val) : NULL;
            json_object_object_add(o, key, e);
        }
    }
    return o;
}

void vm_append(agent *a, vm *v)
{
    vm **pp = &a->vms;

    while (*pp)
        pp = &(*pp)->next;
    *pp = v;
}

void vm_unlink(agent *a, vm *v)
{
    for (vm **pp = &a->vms; *pp; pp = &(*pp)->next) {
        if (*pp == v) {
            *pp = v->next;
            return;
        }
    }
}

void vm_free_undefined(agent *a, vm *v)
{
    vm_unlink(a, v);
    vm_free(v);
    agent_vms_changed(a);
}
