/* vm_migrate_in.c: the destination side of a live migration.
 *
 * The marker (vms/NAME.incoming) is written before the definition and
 * removed only once the guest runs here, so whatever instant the agent dies
 * at, a restart knows the VM is not its own yet: it re-adopts a QEMU still
 * waiting (incoming again) and drops the VM when that QEMU is gone. QEMU
 * starts with -S and -incoming defer; after the stream it stays paused
 * until vm-migrate-finish. */
#include "vm_migrate.h"
#include "vm_migrate_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <json-c/json.h>
#include <uv.h>

#include "agent.h"
#include "log.h"
#include "statefile.h"
#include "vm_internal.h"
#include "vm_qmpseq.h"

/* How long vm-migrate-finish waits for the last of a stream the source has
 * sent whole: QEMU loads it in milliseconds. */
#define FINISH_WAIT_MS 30000

static void setup_failed(vm *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Before QEMU listens: the job fails and the VM goes with its QEMU (or at
 * once when there is none). */
static void setup_failed(vm *v, const char *fmt, ...)
{
    char desc[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(desc, sizeof(desc), fmt, ap);
    va_end(ap);
    if (v->job == VM_JOB_MIGRATE_IN)
        vm_job_finish_error(v, "GenericError", "%s", desc);
    if (vm_has_process(v) || v->spawning) {
        v->exit_expected = true;
        vm_stop_process(v);
    } else {
        vm_migration_drop(v, "failed");
    }
}

void vm_migration_drop(vm *v, const char *status)
{
    migration_emit(v, "destination", status, NULL);
    migration_leave(v);
}

/* ---- listening ---------------------------------------------------------------- */

static bool port_free(const char *addr, unsigned port)
{
    struct sockaddr_storage ss = { 0 };
    socklen_t len;
    int fd, one = 1;
    bool ok;

    if (strchr(addr, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1)
            return false;
        len = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1)
            return false;
        len = sizeof(*s4);
    }
    if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return false;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    ok = bind(fd, (struct sockaddr *)&ss, len) == 0;
    close(fd);
    return ok;
}

static void format_uri(const char *addr, unsigned port, char *buf, size_t len)
{
    snprintf(buf, len, strchr(addr, ':') ? "tcp:[%s]:%u" : "tcp:%s:%u", addr, port);
}

static void on_incoming_timeout(uv_timer_t *t)
{
    vm *v = t->data;

    if (!v->incoming || !v->migration || v->migration->active || v->migration->completed)
        return;
    log_warn("vm %s: no migration stream within %u s; its incoming QEMU goes", v->def.name,
             v->agent->cfg.migration_incoming_timeout_s);
    v->exit_expected = true;
    vm_stop_process(v);
}

static void listen_next(vm *v);

static void on_listening(qmp_client *c, const qmp_reply *r, void *opaque)
{
    vm *v = opaque;
    vm_migration *m = v->migration;
    const agent_config *cfg = &v->agent->cfg;

    if (v->job != VM_JOB_MIGRATE_IN || !m)
        return;
    if (r->status < 0) {
        if (r->status == QMP_ERR_REMOTE && m->port < cfg->migration_port_max)
            listen_next(v);   /* taken between our check and QEMU's bind */
        else
            setup_failed(v, "migrate-incoming on %s: %s", m->uri, r->err_desc);
        return;
    }
    vm_set_state(v, VM_INCOMING, "migration", NULL);
    migration_emit(v, "destination", "listening", NULL);
    migration_timer_start(v, (uint64_t)cfg->migration_incoming_timeout_s * 1000, 0, on_incoming_timeout);
    struct json_object *ret = json_object_new_object();
    json_object_object_add(ret, "uri", json_object_new_string(m->uri));
    vm_job_finish_ok(v, ret);
}

static void listen_next(vm *v)
{
    vm_migration *m = v->migration;
    const agent_config *cfg = &v->agent->cfg;

    for (m->port = m->port ? m->port + 1 : cfg->migration_port_min;
         m->port <= cfg->migration_port_max && !port_free(cfg->migration_address, m->port); m->port++)
        ;
    if (m->port > cfg->migration_port_max) {
        setup_failed(v, "no free port from migration-port-min %u to migration-port-max %u on %s",
                     cfg->migration_port_min, cfg->migration_port_max, cfg->migration_address);
        return;
    }
    format_uri(cfg->migration_address, m->port, m->uri, sizeof(m->uri));
    struct json_object *args = json_object_new_object();
    json_object_object_add(args, "uri", json_object_new_string(m->uri));
    if (vm_qmp(v, "migrate-incoming", args, on_listening, v) < 0)
        setup_failed(v, "QMP is not connected");
}

static void on_capabilities_set(vm *v, int status, const char *err_class, const char *err_desc, void *opaque)
{
    if (v->job != VM_JOB_MIGRATE_IN || !v->migration)
        return;
    if (status < 0)
        setup_failed(v, "%s", err_desc);
    else
        listen_next(v);
}

void vm_migrate_in_qmp_ready(vm *v)
{
    vm_qmpseq *s = vm_qmpseq_new(v);
    vm_migration *m = v->migration;

    if (!s || !m) {
        vm_qmpseq_free(s);
        setup_failed(v, "out of memory");
        return;
    }
    vm_qmpseq_add(s, "migrate-set-capabilities", migration_capabilities(&m->opts, false), -1, NULL, NULL);
    if (m->opts.multifd_channels > 0)
        vm_qmpseq_add(s, "migrate-set-parameters", migration_multifd_parameters(&m->opts, NULL), -1, NULL, NULL);
    if (vm_qmpseq_run(s, on_capabilities_set, NULL) < 0) {
        vm_qmpseq_free(s);
        setup_failed(v, "QMP is not connected");
    }
}

/* ---- making the VM ------------------------------------------------------------ */

static void on_definition_saved(vm *v, const vm_result *res, void *opaque)
{
    char err[512];

    if (res->status < 0) {
        setup_failed(v, "saving the definition: %s", res->err_desc);
        return;
    }
    if (vm_launch(v, err, sizeof(err)) < 0)
        setup_failed(v, "%s", err);
}

static void on_marker_saved(int status, void *opaque)
{
    vm *v = opaque;

    if (status < 0)
        setup_failed(v, "writing %s: %s", v->incoming_path, strerror(-status));
    else if (vm_save_definition(v, on_definition_saved, NULL) < 0)
        setup_failed(v, "saving the definition: out of memory");
}

int vm_migrate_incoming(agent *a, vm_def *def, const vm_migrate_opts *o, vm_done_cb cb, void *opaque,
                        vm_result *res)
{
    static const char marker[] = "{\"migration\": \"incoming\"}\n";
    vm_migration *m;
    vm *v;

    if (vm_find(a, def->name)) {
        vm_refuse(res, "Exists", "name: a VM named %s is defined on this host", def->name);
        vmdef_free(def);
        return -1;
    }
    if (vm_uuid_in_use(a, def->uuid)) {
        vm_refuse(res, "Exists", "uuid: %s is a VM on this host already", def->uuid);
        vmdef_free(def);
        return -1;
    }
    if (vm_new(a, def, &v) < 0) {
        vm_refuse(res, "InvalidParameter", "name: too long for this host's run directory");
        vmdef_free(def);
        return -1;
    }
    vm_append(a, v);
    v->incoming = true;
    v->start_reason = "migration";
    if (!(m = migration_new(v, false)) || !vm_job_begin(v, VM_JOB_MIGRATE_IN, cb, opaque, res)) {
        vm_refuse(res, "GenericError", "out of memory");
        vm_free_undefined(a, v);
        return -1;
    }
    m->opts = *o;
    if (statefile_writer_put(v->incoming_file, marker, sizeof(marker) - 1, on_marker_saved, v) < 0) {
        v->job = VM_JOB_NONE;
        vm_refuse(res, "GenericError", "out of memory");
        vm_free_undefined(a, v);
        return -1;
    }
    return 0;
}

/* ---- the stream, and the end --------------------------------------------------- */

static void resume_incoming(vm *v);

void migrate_in_event(vm *v, const char *status)
{
    vm_migration *m = v->migration;

    if (!m)
        return;
    if (!strcmp(status, "active")) {
        m->active = true;
    } else if (!strcmp(status, "completed") && !m->completed) {
        m->completed = true;
        migration_emit(v, "destination", "completed", NULL);
        if (m->finish_waiting) {
            m->finish_waiting = false;
            uv_timer_stop(v->migration_timer);
            resume_incoming(v);
        }
    } else if (!strcmp(status, "failed")) {
        migration_emit(v, "destination", "failed", "the stream broke off; QEMU ends");
    }
}

static void on_marker_removed(int status, void *opaque)
{
    vm *v = opaque;

    if (v->job != VM_JOB_MIGRATE_IN)
        return;
    if (status < 0)
        log_err("vm %s: removing %s: %s; remove it by hand or an agent restart drops the VM", v->def.name,
                v->incoming_path, strerror(-status));
    migration_emit(v, "destination", "finished", NULL);
    vm_job_finish_ok(v, NULL);
}

/* The guest runs here: from now on the VM is ours. */
static void now_ours(vm *v, const char *reason)
{
    v->incoming = false;
    migration_end(v);
    vm_set_state(v, VM_RUNNING, reason, NULL);
    vm_write_runtime(v);
    if (statefile_writer_put(v->incoming_file, NULL, 0, on_marker_removed, v) < 0)
        on_marker_removed(-ENOMEM, v);
}

static void on_resumed(qmp_client *c, const qmp_reply *r, void *opaque)
{
    vm *v = opaque;

    if (v->job != VM_JOB_MIGRATE_IN || !v->incoming)
        return;
    if (r->status < 0) {
        vm_job_finish_error(v, "GenericError", "cont: %s", r->err_desc);
        return;
    }
    now_ours(v, "migration");
}

static void resume_incoming(vm *v)
{
    if (vm_qmp(v, "cont", NULL, on_resumed, v) < 0)
        vm_job_finish_error(v, "GenericError", "%s: QMP is not connected", v->def.name);
}

static void on_finish_wait_timeout(uv_timer_t *t)
{
    vm *v = t->data;

    if (v->job != VM_JOB_MIGRATE_IN || !v->migration || !v->migration->finish_waiting)
        return;
    v->migration->finish_waiting = false;
    vm_job_finish_error(v, "Timeout", "%s: the migration stream did not complete within %d s", v->def.name,
                        FINISH_WAIT_MS / 1000);
}

/* The source's reply comes when it has sent everything; this side may still
 * be loading the last of it (QEMU says active), so finish waits for the
 * stream's end rather than refusing a caller that did everything right. */
static void on_finish_status(qmp_client *c, const qmp_reply *r, void *opaque)
{
    vm *v = opaque;
    const char *status = r->status == 0 ? migration_str(r->ret, "status") : NULL;

    if (v->job != VM_JOB_MIGRATE_IN || !v->incoming)
        return;
    /* QEMU 7.2 still answers active for a moment after its MIGRATION
     * completed event: the event, when it came first, is as good. */
    if ((status && !strcmp(status, "completed")) || (v->migration && v->migration->completed)) {
        resume_incoming(v);
    } else if (status && (!strcmp(status, "active") || !strcmp(status, "device")) && v->migration) {
        v->migration->finish_waiting = true;
        migration_timer_start(v, FINISH_WAIT_MS, 0, on_finish_wait_timeout);
    } else {
        vm_job_finish_error(v, "InvalidState", "%s: the migration stream has not completed (QEMU says %s)",
                            v->def.name, status ? status : r->err_desc);
    }
}

int vm_migrate_finish(vm *v, vm_done_cb cb, void *opaque, vm_result *res)
{
    if (!v->incoming || v->state != VM_INCOMING) {
        vm_refuse(res, "InvalidState", "%s is %s: only an incoming VM is finished", v->def.name,
                  vm_state_name(v));
        return -1;
    }
    if (!vm_job_begin(v, VM_JOB_MIGRATE_IN, cb, opaque, res))
        return -1;
    /* QEMU's own status, not only our flag: after a restart we missed the event. */
    if (vm_qmp(v, "query-migrate", NULL, on_finish_status, v) < 0) {
        v->job = VM_JOB_NONE;
        vm_refuse(res, "GenericError", "%s: QMP is not connected", v->def.name);
        return -1;
    }
    return 0;
}

bool migrate_in_exit(vm *v, struct json_object *info)
{
    vm_job_kind job = v->job;
    const char *status = v->exit_expected ? "aborted" : "failed";

    vm_set_state(v, VM_STOPPED, "migration", info);
    if (job == VM_JOB_DESTROY)
        vm_job_finish_ok(v, NULL);
    else if (job != VM_JOB_NONE)
        vm_job_finish_error(v, "GenericError", "%s: QEMU ended before the migration finished", v->def.name);
    vm_migration_drop(v, status);
    return true;
}

static void on_adopted_stream(qmp_client *c, const qmp_reply *r, void *opaque)
{
    vm *v = opaque;
    const char *status = r->status == 0 ? migration_str(r->ret, "status") : NULL;
    vm_migration *m = v->migration;

    if (!m)
        return;
    m->completed = status && !strcmp(status, "completed");
    m->active = status && !m->completed && strcmp(status, "none") && strcmp(status, "setup");
    if (!m->completed && !m->active)
        migration_timer_start(v, (uint64_t)v->agent->cfg.migration_incoming_timeout_s * 1000, 0,
                              on_incoming_timeout);
}

void migrate_in_adopted(vm *v, bool is_running)
{
    if (is_running) {
        /* Only vm-migrate-finish resumes it: it finished before the restart. */
        log_notice("vm %s: its incoming guest runs; the migration had finished", v->def.name);
        now_ours(v, "agent-restart");
        return;
    }
    if (!migration_new(v, false)) {
        log_err("vm %s: out of memory re-adopting an incoming migration", v->def.name);
        return;
    }
    vm_set_state(v, VM_INCOMING, "agent-restart", NULL);
    vm_qmp(v, "query-migrate", NULL, on_adopted_stream, v);
}
