/* vm_migrate.c: the source side of a live migration, and what both sides
 * share (the record of one in flight, events, a VM leaving this agent).
 *
 * The source sets QEMU's capabilities and parameters, runs migrate, and
 * polls query-migrate every second for progress, a stall and the overall
 * deadline (a stall or the deadline cancels). QEMU's MIGRATION event ends
 * it: completed leaves the guest stopped and QEMU kept (migrated) until the
 * caller confirms; failed or cancelled leaves the guest running here, as
 * QEMU resumes it itself. */
#include "vm_migrate.h"
#include "vm_migrate_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <uv.h>

#include "agent.h"
#include "events.h"
#include "log.h"
#include "statefile.h"
#include "vm_internal.h"
#include "vm_qmpseq.h"

#define PROGRESS_INTERVAL_MS 1000
/* The final figures, when QEMU has not filled them in yet: 20 x 5 ms. */
#define FIGURES_RETRY_MS 5
#define FIGURES_RETRIES  20

void vm_migrate_opts_default(vm_migrate_opts *o)
{
    *o = (vm_migrate_opts){ .downtime_limit_ms = 300, .auto_converge = true, .stall_timeout_s = 60,
                            .timeout_s = 3600 };
    snprintf(o->multifd_compression, sizeof(o->multifd_compression), "none");
}

/* ---- shared ------------------------------------------------------------------ */

int64_t migration_i64(struct json_object *o, const char *key)
{
    struct json_object *m;

    return o && json_object_object_get_ex(o, key, &m) ? json_object_get_int64(m) : 0;
}

const char *migration_str(struct json_object *o, const char *key)
{
    struct json_object *m;

    return o && json_object_object_get_ex(o, key, &m) ? json_object_get_string(m) : NULL;
}

void migration_emit(vm *v, const char *role, const char *status, const char *error)
{
    struct json_object *d = json_object_new_object();

    json_object_object_add(d, "vm", json_object_new_string(v->def.name));
    json_object_object_add(d, "role", json_object_new_string(role));
    json_object_object_add(d, "status", json_object_new_string(status));
    if (error)
        json_object_object_add(d, "error", json_object_new_string(error));
    log_info("vm %s: migration (%s) %s%s%s", v->def.name, role, status, error ? ": " : "", error ? error : "");
    event_emit(v->agent->events, "VM_MIGRATION", d);
}

vm_migration *migration_new(vm *v, bool outgoing)
{
    vm_migration *m = calloc(1, sizeof(*m));

    if (!m)
        return NULL;
    m->v = v;
    m->outgoing = outgoing;
    vm_migrate_opts_default(&m->opts);
    free(v->migration);
    v->migration = m;
    return m;
}

void migration_end(vm *v)
{
    if (v->migration_timer)
        uv_timer_stop(v->migration_timer);
    free(v->migration);
    v->migration = NULL;
}

void migration_timer_start(vm *v, uint64_t ms, uint64_t repeat, uv_timer_cb cb)
{
    if (!v->migration_timer) {
        if (!(v->migration_timer = malloc(sizeof(*v->migration_timer))))
            return;
        uv_timer_init(v->agent->loop, v->migration_timer);
        v->migration_timer->data = v;
    }
    uv_timer_start(v->migration_timer, cb, ms, repeat);
}

struct json_object *migration_capabilities(const vm_migrate_opts *o, bool outgoing)
{
    struct json_object *caps = json_object_new_array();
    struct {
        const char *name;
        bool on;
    } list[] = { { "events", true }, { "auto-converge", outgoing && o->auto_converge },
                 { "multifd", o->multifd_channels > 0 },
                 /* The destination takes the disks' locks only when it resumes,
                  * so the source can still resume if the handover fails. */
                 { "late-block-activate", !outgoing } };

    for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++) {
        struct json_object *c = json_object_new_object();
        json_object_object_add(c, "capability", json_object_new_string(list[i].name));
        json_object_object_add(c, "state", json_object_new_boolean(list[i].on));
        json_object_array_add(caps, c);
    }
    struct json_object *args = json_object_new_object();
    json_object_object_add(args, "capabilities", caps);
    return args;
}

struct json_object *migration_multifd_parameters(const vm_migrate_opts *o, struct json_object *args)
{
    if (!args)
        args = json_object_new_object();
    if (o->multifd_channels > 0) {
        json_object_object_add(args, "multifd-channels", json_object_new_int((int)o->multifd_channels));
        json_object_object_add(args, "multifd-compression", json_object_new_string(o->multifd_compression));
    }
    return args;
}

static void unlink_sockets(vm *v)
{
    unlink(v->qmp_path);
    unlink(v->serial_path);
    unlink(v->qga_path);
    rmdir(v->run_dir);
}

static void on_definition_removed(int status, void *opaque)
{
    vm *v = opaque;

    if (status < 0)
        log_err("vm %s: removing %s: %s", v->def.name, v->def_path, strerror(-status));
    /* The marker goes only after the definition: a crash in between leaves
     * a stray marker, never a definition that looks like our own VM. */
    statefile_writer_put(v->incoming_file, NULL, 0, NULL, NULL);
    statefile_writer_put(v->runtime_file, NULL, 0, NULL, NULL);
    unlink_sockets(v);
    if (v->pending_io == 0)
        vm_free(v);
}

void migration_leave(vm *v)
{
    struct json_object *ev = json_object_new_object();

    migration_end(v);
    v->undefined = true;
    vm_unlink(v->agent, v);
    agent_vms_changed(v->agent);
    json_object_object_add(ev, "vm", json_object_new_string(v->def.name));
    event_emit(v->agent->events, "VM_UNDEFINED", ev);
    log_info("vm %s: no longer on this host", v->def.name);
    if (statefile_writer_put(v->def_file, NULL, 0, on_definition_removed, v) < 0)
        on_definition_removed(-ENOMEM, v);
}

/* ---- source: start ---------------------------------------------------------- */

static void set_mark(vm *v, const char *mark)
{
    v->migration_mark = mark;
    vm_write_runtime(v);
}

/* The guest runs here again after a failed or cancelled migration. */
static void back_to_running(vm *v, const char *status, const char *err_class, const char *desc)
{
    set_mark(v, NULL);
    migration_emit(v, "source", status, desc);
    vm_set_state(v, v->migration && v->migration->prev == VM_PAUSED ? VM_PAUSED : VM_RUNNING, "migration", NULL);
    migration_end(v);
    if (v->job == VM_JOB_MIGRATE)
        vm_job_finish_error(v, err_class, "%s", desc);
}

static void on_migrate_started(vm *v, int status, const char *err_class, const char *err_desc, void *opaque)
{
    if (v->job != VM_JOB_MIGRATE || !v->migration)
        return;
    if (status < 0) {
        /* Nothing was sent: QEMU refused the parameters or the URI. */
        char desc[512];
        snprintf(desc, sizeof(desc), "%s", err_desc);
        back_to_running(v, "failed", err_class, desc);
    }
}

static struct json_object *source_parameters(const vm_migrate_opts *o)
{
    struct json_object *p = json_object_new_object();

    json_object_object_add(p, "downtime-limit", json_object_new_int64(o->downtime_limit_ms));
    json_object_object_add(p, "max-bandwidth", json_object_new_int64(o->bandwidth_mib
                                                                      ? (int64_t)o->bandwidth_mib << 20
                                                                      : MIGRATION_UNLIMITED_BANDWIDTH));
    return migration_multifd_parameters(o, p);
}

static void on_progress_tick(uv_timer_t *t);

int vm_migrate(vm *v, const char *uri, const vm_migrate_opts *o, vm_done_cb cb, void *opaque, vm_result *res)
{
    vm_migration *m;
    vm_qmpseq *s;
    struct json_object *args;

    if (!vm_has_process(v) || (v->state != VM_RUNNING && v->state != VM_PAUSED) || !v->qmp_ready) {
        vm_refuse(res, "InvalidState", "%s is %s: only a running or paused VM migrates", v->def.name,
                  vm_state_name(v));
        return -1;
    }
    if (strncmp(uri, "tcp:", 4) && strncmp(uri, "unix:", 5)) {
        vm_refuse(res, "InvalidParameter", "uri: '%s' is not tcp:HOST:PORT or unix:PATH", uri);
        return -1;
    }
    if (!vm_job_begin(v, VM_JOB_MIGRATE, cb, opaque, res))
        return -1;
    if (!(m = migration_new(v, true)) || !(s = vm_qmpseq_new(v))) {
        migration_end(v);
        v->job = VM_JOB_NONE;
        vm_refuse(res, "GenericError", "out of memory");
        return -1;
    }
    m->opts = *o;
    m->prev = v->state;
    snprintf(m->uri, sizeof(m->uri), "%s", uri);
    m->started_ms = (int64_t)uv_now(v->agent->loop);
    m->last_progress_ms = m->started_ms;
    args = json_object_new_object();
    json_object_object_add(args, "uri", json_object_new_string(uri));
    vm_qmpseq_add(s, "migrate-set-capabilities", migration_capabilities(o, true), -1, NULL, NULL);
    vm_qmpseq_add(s, "migrate-set-parameters", source_parameters(o), -1, NULL, NULL);
    vm_qmpseq_add(s, "migrate", args, -1, NULL, NULL);
    /* Marked before QEMU sends a byte: a restarted agent never resumes it blindly. */
    set_mark(v, "outgoing");
    vm_set_state(v, VM_MIGRATING, "migration", NULL);
    if (vm_qmpseq_run(s, on_migrate_started, NULL) < 0) {
        vm_qmpseq_free(s);
        back_to_running(v, "failed", "GenericError", "QMP is not connected");
        return 0;
    }
    migration_timer_start(v, PROGRESS_INTERVAL_MS, PROGRESS_INTERVAL_MS, on_progress_tick);
    return 0;
}

/* ---- source: progress and the end --------------------------------------------- */

static void cancel_with(vm *v, const char *why, uint32_t n)
{
    vm_migration *m = v->migration;

    if (m->fail_class)
        return;
    m->fail_class = "Timeout";
    snprintf(m->fail_desc, sizeof(m->fail_desc), "%s: %s %u s", v->def.name, why, n);
    log_warn("%s; cancelling", m->fail_desc);
    vm_qmp(v, "migrate_cancel", NULL, NULL, NULL);
}

static void emit_progress(vm *v, struct json_object *ret)
{
    struct json_object *d = json_object_new_object(), *ram = NULL;

    json_object_object_get_ex(ret, "ram", &ram);
    json_object_object_add(d, "vm", json_object_new_string(v->def.name));
    json_object_object_add(d, "status", json_object_new_string(migration_str(ret, "status") ?: "unknown"));
    json_object_object_add(d, "transferred", json_object_new_int64(migration_i64(ram, "transferred")));
    json_object_object_add(d, "remaining", json_object_new_int64(migration_i64(ram, "remaining")));
    json_object_object_add(d, "total", json_object_new_int64(migration_i64(ram, "total")));
    json_object_object_add(d, "mbps", json_object_new_double(ram && json_object_object_get_ex(ram, "mbps", &ram)
                                                                 ? json_object_get_double(ram) : 0));
    json_object_object_get_ex(ret, "ram", &ram);
    json_object_object_add(d, "expected-downtime-ms", json_object_new_int64(migration_i64(ret, "expected-downtime")));
    json_object_object_add(d, "dirty-pages-rate", json_object_new_int64(migration_i64(ram, "dirty-pages-rate")));
    json_object_object_add(d, "passes", json_object_new_int64(migration_i64(ram, "dirty-sync-count")));
    event_emit(v->agent->events, "VM_MIGRATION_PROGRESS", d);
}

static void on_progress(qmp_client *c, const qmp_reply *r, void *opaque)
{
    vm *v = opaque;
    vm_migration *m = v->migration;
    struct json_object *ram = NULL;
    int64_t now, sent;

    if (!m || !m->outgoing || v->state != VM_MIGRATING || r->status < 0)
        return;
    const char *status = migration_str(r->ret, "status");
    if (!status || (strcmp(status, "active") && strcmp(status, "setup") && strcmp(status, "device") &&
                    strcmp(status, "pre-switchover")))
        return;   /* ending: the MIGRATION event says how */
    emit_progress(v, r->ret);
    json_object_object_get_ex(r->ret, "ram", &ram);
    sent = migration_i64(ram, "transferred");
    now = (int64_t)uv_now(v->agent->loop);
    if (sent != m->last_transferred) {
        m->last_transferred = sent;
        m->last_progress_ms = now;
    }
    if (m->opts.stall_timeout_s && now - m->last_progress_ms >= (int64_t)m->opts.stall_timeout_s * 1000)
        cancel_with(v, "no byte sent for", m->opts.stall_timeout_s);
    else if (m->opts.timeout_s && now - m->started_ms >= (int64_t)m->opts.timeout_s * 1000)
        cancel_with(v, "not migrated within", m->opts.timeout_s);
}

static void on_progress_tick(uv_timer_t *t)
{
    vm *v = t->data;

    if (v->migration && v->migration->outgoing && v->state == VM_MIGRATING)
        vm_qmp(v, "query-migrate", NULL, on_progress, v);
}

static struct json_object *final_figures(struct json_object *ret)
{
    struct json_object *o = json_object_new_object(), *ram = NULL;

    json_object_object_get_ex(ret, "ram", &ram);
    json_object_object_add(o, "total-time-ms", json_object_new_int64(migration_i64(ret, "total-time")));
    json_object_object_add(o, "downtime-ms", json_object_new_int64(migration_i64(ret, "downtime")));
    json_object_object_add(o, "setup-time-ms", json_object_new_int64(migration_i64(ret, "setup-time")));
    json_object_object_add(o, "transferred", json_object_new_int64(migration_i64(ram, "transferred")));
    return o;
}

static void on_final_status(qmp_client *c, const qmp_reply *r, void *opaque);

static void on_figures_retry(uv_timer_t *t)
{
    vm *v = t->data;

    if (v->migration && v->migration->outgoing)
        vm_qmp(v, "query-migrate", NULL, on_final_status, v);
}

static void on_final_status(qmp_client *c, const qmp_reply *r, void *opaque)
{
    vm *v = opaque;
    vm_migration *m = v->migration;
    const char *status = r->status == 0 ? migration_str(r->ret, "status") : NULL;
    char desc[512];

    if (!m || !m->outgoing || (v->state != VM_MIGRATING && v->state != VM_MIGRATED))
        return;
    if (status && !strcmp(status, "completed")) {
        /* QEMU 7.2 sends MIGRATION completed before its migration thread
         * has filled in total-time and downtime, so a query right after
         * the event can read zeros: ask again shortly, a bounded number of
         * times, then report what QEMU says. */
        if (migration_i64(r->ret, "total-time") <= 0 && m->figure_retries < FIGURES_RETRIES) {
            m->figure_retries++;
            migration_timer_start(v, FIGURES_RETRY_MS, 0, on_figures_retry);
            return;
        }
        set_mark(v, "migrated");
        vm_set_state(v, VM_MIGRATED, "migration", NULL);
        migration_emit(v, "source", "completed", NULL);
        struct json_object *ret = final_figures(r->ret);
        migration_end(v);
        if (v->job == VM_JOB_MIGRATE)
            vm_job_finish_ok(v, ret);
        else
            json_object_put(ret);
        return;
    }
    if (status && strcmp(status, "failed") && strcmp(status, "cancelled"))
        return;   /* a query from before the end */
    if (m->fail_class) {
        back_to_running(v, "cancelled", m->fail_class, m->fail_desc);
        return;
    }
    snprintf(desc, sizeof(desc), "%s: migration %s: %s", v->def.name, status ? status : "ended",
             migration_str(r->ret, "error-desc") ?: (r->status < 0 ? r->err_desc : "no reason given"));
    back_to_running(v, status && !strcmp(status, "cancelled") ? "cancelled" : "failed",
                    status && !strcmp(status, "cancelled") ? "Cancelled" : "GenericError", desc);
}

static void source_event(vm *v, const char *status)
{
    if (!strcmp(status, "completed") || !strcmp(status, "failed") || !strcmp(status, "cancelled"))
        vm_qmp(v, "query-migrate", NULL, on_final_status, v);
}

void vm_migration_on_event(vm *v, const char *event, struct json_object *data)
{
    const char *status;

    if (strcmp(event, "MIGRATION") || !(status = migration_str(data, "status")))
        return;
    if (v->migration && v->migration->outgoing)
        source_event(v, status);
    else if (v->incoming)
        migrate_in_event(v, status);
}

/* ---- source: cancel and confirm ---------------------------------------------- */

static void on_cancel_sent(qmp_client *c, const qmp_reply *r, void *opaque)
{
    vm_cancel_req *q = opaque;
    vm_result res = { .status = r->status, .err_class = r->err_class, .err_desc = r->err_desc };

    q->cb(q->v, &res, q->opaque);
    free(q);
}

int vm_migrate_cancel(vm *v, vm_done_cb cb, void *opaque, vm_result *res)
{
    vm_cancel_req *q;

    if (v->state != VM_MIGRATING || !v->migration || !v->migration->outgoing) {
        vm_refuse(res, "InvalidState", "%s is %s: no migration to cancel", v->def.name, vm_state_name(v));
        return -1;
    }
    if (!(q = calloc(1, sizeof(*q)))) {
        vm_refuse(res, "GenericError", "out of memory");
        return -1;
    }
    *q = (vm_cancel_req){ .v = v, .cb = cb, .opaque = opaque };
    if (!v->migration->fail_class) {
        v->migration->fail_class = "Cancelled";
        snprintf(v->migration->fail_desc, sizeof(v->migration->fail_desc), "%s: migration cancelled",
                 v->def.name);
    }
    if (vm_qmp(v, "migrate_cancel", NULL, on_cancel_sent, q) < 0) {
        free(q);
        vm_refuse(res, "GenericError", "%s: QMP is not connected", v->def.name);
        return -1;
    }
    return 0;
}

static void on_resumed_here(qmp_client *c, const qmp_reply *r, void *opaque)
{
    vm *v = opaque;

    if (v->job != VM_JOB_MIGRATE || v->state != VM_MIGRATED)
        return;
    if (r->status < 0) {
        vm_job_finish_error(v, "GenericError", "cont: %s", r->err_desc);
        return;
    }
    set_mark(v, NULL);
    migration_emit(v, "source", "resumed", NULL);
    vm_set_state(v, VM_RUNNING, "migration", NULL);
    vm_job_finish_ok(v, NULL);
}

int vm_migrate_confirm(vm *v, bool completed, vm_done_cb cb, void *opaque, vm_result *res)
{
    if (v->state != VM_MIGRATED) {
        vm_refuse(res, "InvalidState", "%s is %s: only a migrated VM is confirmed", v->def.name,
                  vm_state_name(v));
        return -1;
    }
    if (!vm_job_begin(v, VM_JOB_MIGRATE, cb, opaque, res))
        return -1;
    if (completed) {
        /* The exit (vm_migration_on_exit) removes the VM and ends the job. */
        v->exit_expected = true;
        vm_stop_process(v);
        return 0;
    }
    if (vm_qmp(v, "cont", NULL, on_resumed_here, v) < 0) {
        v->job = VM_JOB_NONE;
        vm_refuse(res, "GenericError", "%s: QMP is not connected", v->def.name);
        return -1;
    }
    return 0;
}

/* ---- the runtime's hooks ------------------------------------------------------ */

bool vm_migration_on_exit(vm *v, struct json_object *info)
{
    if (v->incoming)
        return migrate_in_exit(v, info);
    if (v->state == VM_MIGRATED || (v->job == VM_JOB_MIGRATE && !v->migration)) {
        /* The guest's state went to the destination: it never restarts here. */
        bool confirmed = v->job == VM_JOB_MIGRATE && v->exit_expected;
        v->migration_mark = NULL;
        vm_set_state(v, VM_STOPPED, "migration", info);
        if (confirmed) {
            migration_emit(v, "source", "confirmed", NULL);
            vm_job_finish_ok(v, NULL);
            migration_leave(v);
            return true;
        }
        if (v->job != VM_JOB_NONE && v->job != VM_JOB_DESTROY)
            vm_job_finish_error(v, "GenericError", "QEMU ended after the migration completed");
        else if (v->job == VM_JOB_DESTROY)
            vm_job_finish_ok(v, NULL);
        return true;
    }
    if (v->migration && v->migration->outgoing) {
        /* QEMU died while sending: the usual crash handling follows. */
        v->migration_mark = NULL;
        migration_emit(v, "source", "failed", "QEMU ended during the migration");
        migration_end(v);
        if (v->job == VM_JOB_MIGRATE)
            vm_job_finish_error(v, "GenericError", "%s: QEMU ended during the migration", v->def.name);
    }
    return false;
}

static void on_adopted_status(qmp_client *c, const qmp_reply *r, void *opaque)
{
    vm *v = opaque;
    const char *status = r->status == 0 ? migration_str(r->ret, "status") : NULL;
    vm_migration *m;

    if (status && !strcmp(status, "completed")) {
        set_mark(v, "migrated");
        vm_set_state(v, VM_MIGRATED, "agent-restart", NULL);
    } else if (status && (!strcmp(status, "active") || !strcmp(status, "setup") || !strcmp(status, "device")) &&
               (m = migration_new(v, true))) {
        /* Still sending: watched again, with no caller waiting. */
        m->prev = VM_RUNNING;
        m->started_ms = m->last_progress_ms = (int64_t)uv_now(v->agent->loop);
        vm_set_state(v, VM_MIGRATING, "agent-restart", NULL);
        migration_timer_start(v, PROGRESS_INTERVAL_MS, PROGRESS_INTERVAL_MS, on_progress_tick);
    } else {
        /* Failed or cancelled while we were away: QEMU resumed the guest. */
        set_mark(v, NULL);
        vm_set_state(v, v->job_prev_state, "agent-restart", NULL);
    }
}

void vm_migration_adopted(vm *v, bool is_running)
{
    if (v->incoming) {
        migrate_in_adopted(v, is_running);
        return;
    }
    if (!strcmp(v->migration_mark, "migrated") && !is_running) {
        vm_set_state(v, VM_MIGRATED, "agent-restart", NULL);
        return;
    }
    v->job_prev_state = is_running ? VM_RUNNING : VM_PAUSED;   /* no job yet: a free slot */
    if (vm_qmp(v, "query-migrate", NULL, on_adopted_status, v) < 0)
        vm_set_state(v, is_running ? VM_RUNNING : VM_PAUSED, "agent-restart", NULL);
}
