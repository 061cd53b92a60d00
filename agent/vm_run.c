/* vm_run.c: a VM's QEMU process from launch to exit: start, QMP connection
 * and events, the runtime record, exit handling and on-crash, adoption. */
#include "vm_internal.h"
#include "vm_hotplug.h"
#include "vm_migrate.h"
#include "vm_save.h"
#include "vm_snapshot.h"
#include "vm_qmpseq.h"
#include "vm_disks.h"
#include "vm_nics.h"
#include "vm_vnc.h"
#include "vm_cgroup.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <uv.h>

#include "agent.h"
#include "events.h"
#include "log.h"
#include "pool.h"
#include "proc.h"
#include "statefile.h"

#define LOG_TAIL_BYTES 2048
#define RUNTIME_MAX (64 * 1024)
#define CRASH_LOOP_WINDOW_S 10
#define CRASH_LOOP_LIMIT 3

/* ---- QMP connection and QEMU's events ---------------------------------- */

static void on_status_read(qmp_client *c, const qmp_reply *r, void *opaque);

static void on_qmp_ready(qmp_client *c, int status, void *opaque);

static void on_qmp_disconnect(qmp_client *c, int status, void *opaque)
{
    vm *v = opaque;

    v->qmp_ready = false;
    log_debug("vm %s: QMP connection ended: %s", v->def.name, qmp_strerror(status));
    /* The client is closed from here; the process watch decides what happened. */
    qmp_close(v->qmp);
    v->qmp = NULL;
}

static void forward_event(vm *v, const char *event, struct json_object *data, int64_t s, int64_t us)
{
    struct json_object *d = json_object_new_object(), *ts = json_object_new_object();

    json_object_object_add(d, "vm", json_object_new_string(v->def.name));
    json_object_object_add(d, "name", json_object_new_string(event));
    json_object_object_add(d, "data", data ? json_object_get(data) : json_object_new_object());
    json_object_object_add(ts, "seconds", json_object_new_int64(s));
    json_object_object_add(ts, "microseconds", json_object_new_int64(us));
    json_object_object_add(d, "qemu-timestamp", ts);
    event_emit(v->agent->events, "VM_QEMU_EVENT", d);
}

/* QEMU pausing or resuming on its own (an I/O error, a monitor user) shows
 * up as STOP/RESUME outside any job of ours. */
static void track_run_state(vm *v, const char *event, struct json_object *data)
{
    struct json_object *guest;

    if (strcmp(event, "SHUTDOWN") == 0) {
        v->guest_shutdown = json_object_object_get_ex(data, "guest", &guest) &&
                            json_object_get_boolean(guest);
    } else if (strcmp(event, "STOP") == 0 && v->state == VM_RUNNING &&
               v->job != VM_JOB_SUSPEND && v->job != VM_JOB_DESTROY) {
        vm_set_state(v, VM_PAUSED, "qemu", NULL);
    } else if (strcmp(event, "RESUME") == 0 && v->state == VM_PAUSED &&
               v->job != VM_JOB_RESUME && v->job != VM_JOB_START) {
        vm_set_state(v, VM_RUNNING, "qemu", NULL);
    }
}

static void on_qmp_event(qmp_client *c, const char *event, struct json_object *data,
                         int64_t s, int64_t us, void *opaque)
{
    vm *v = opaque;
    struct json_object *dev;

    track_run_state(v, event, data);
    vm_migration_on_event(v, event, data);
    vm_save_on_event(v, event, data);
    vm_snapshot_on_event(v, event, data);
    if (!vm_qmpseq_on_event(v, event, data) && !strcmp(event, "DEVICE_DELETED") &&
        json_object_object_get_ex(data, "device", &dev) && json_object_get_string(dev))
        vm_hotplug_late_delete(v, json_object_get_string(dev));
    forward_event(v, event, data, s, us);
}

void vm_connect_qmp(vm *v, uint32_t timeout_ms)
{
    qmp_options o = {
        .path = v->qmp_path,
        .connect_timeout_ms = timeout_ms,
        .command_timeout_ms = v->agent->cfg.qmp_timeout_ms,
        .on_ready = on_qmp_ready,
        .on_disconnect = on_qmp_disconnect,
        .on_event = on_qmp_event,
        .opaque = v,
    };
    int r;

    vm_close_qmp(v);
    if ((r = qmp_client_new(v->agent->loop, &o, &v->qmp)) < 0 || (r = qmp_connect(v->qmp)) < 0) {
        log_warn("vm %s: QMP connect: %s", v->def.name, strerror(-r));
        if (v->qmp)
            qmp_close(v->qmp);
        v->qmp = NULL;
        on_qmp_ready(NULL, r, v);
    }
}

void vm_close_qmp(vm *v)
{
    if (v->qmp) {
        qmp_close(v->qmp);
        v->qmp = NULL;
    }
    v->qmp_ready = false;
}

/* ---- the runtime record -------------------------------------------------- */

void vm_write_runtime(vm *v)
{
    struct json_object *o = json_object_new_object();
    size_t len;
    const char *text;

    json_object_object_add(o, "pid", json_object_new_int(v->proc.pid));
    json_object_object_add(o, "start-ticks", json_object_new_int64((int64_t)v->proc.start_ticks));
    json_object_object_add(o, "uuid", json_object_new_string(v->def.uuid));
    json_object_object_add(o, "started-at", json_object_new_int64(v->proc.started_at));
    if (v->held_devs.n)
        json_object_object_add(o, "hostdevs", vm_hostdevs_to_json(&v->held_devs));
    if (v->vnc_port)
        json_object_object_add(o, "vnc-port", json_object_new_int((int)v->vnc_port));
    if (v->migration_mark)
        json_object_object_add(o, "migration", json_object_new_string(v->migration_mark));
    if (v->save_mark)
        json_object_object_add(o, "save", vm_save_mark_json(v));
    text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
    if (statefile_writer_put(v->runtime_file, text, len, NULL, NULL) < 0)
        log_err("vm %s: cannot record its runtime state", v->def.name);
    json_object_put(o);
}

/* ---- exit ---------------------------------------------------------------- */

typedef struct exit_work {
    uv_work_t req;
    vm *v;
    int status;         /* wait status, or -1 when not ours to reap */
    char *tail;
    net_sysfs sysfs;
    vm_hostdevs_held held;   /* to give back now that QEMU is gone */
    const cg_host *cgroups;
    int cg_status;
    char cg_err[384];
    int held_status;
    char held_err[384];
} exit_work;

static struct json_object *exit_status_json(int status)
{
    struct json_object *o;

    if (status < 0)
        return NULL;
    o = json_object_new_object();
    if (WIFEXITED(status))
        json_object_object_add(o, "code", json_object_new_int(WEXITSTATUS(status)));
    else
        json_object_object_add(o, "signal", json_object_new_int(WTERMSIG(status)));
    return o;
}

static void read_log_tail(uv_work_t *req)
{
    exit_work *w = (exit_work *)req;

    if (proc_read_tail(w->v->qemu_log, LOG_TAIL_BYTES, &w->tail) < 0)
        w->tail = NULL;
    w->held_status = vm_hostdevs_give_back(&w->sysfs, &w->held, w->held_err, sizeof(w->held_err));
    w->cg_status = vm_cgroup_leave(w->cgroups, w->v->def.name, w->cg_err, sizeof(w->cg_err));
}

static bool crash_loop(vm *v)
{
    return time(NULL) - v->proc.started_at < CRASH_LOOP_WINDOW_S;
}

/* The state after an exit, from what was asked for and what QEMU said. */
static void settle_after_exit(vm *v, struct json_object *info, bool quick_exit)
{
    vm_job_kind job = v->job;

    vm_snapshot_on_exit(v);
    if (vm_save_on_exit(v, info) || vm_migration_on_exit(v, info))
        return;
    if (job == VM_JOB_START) {
        vm_set_state(v, VM_STOPPED, "start-failed", info);
        const char *tail = "";
        struct json_object *t;
        if (v->last_exit && json_object_object_get_ex(v->last_exit, "log-tail", &t))
            tail = json_object_get_string(t);
        vm_job_finish_error(v, "GenericError", "QEMU exited during start: %s", tail);
    } else if (v->exit_expected) {
        vm_set_state(v, VM_STOPPED, "user", info);
        if (job == VM_JOB_DESTROY)
            vm_job_finish_ok(v, NULL);
        else if (job == VM_JOB_SHUTDOWN) {
            struct json_object *ret = json_object_new_object();
            json_object_object_add(ret, "forced", json_object_new_boolean(true));
            vm_job_finish_ok(v, ret);
        }
    } else if (v->guest_shutdown) {
        vm_set_state(v, VM_STOPPED, "guest-shutdown", info);
        if (job == VM_JOB_SHUTDOWN) {
            struct json_object *ret = json_object_new_object();
            json_object_object_add(ret, "forced", json_object_new_boolean(false));
            vm_job_finish_ok(v, ret);
        }
    } else {
        log_warn("vm %s: QEMU ended unexpectedly; on-crash is %s", v->def.name,
                 vm_on_crash_name(v->def.on_crash));
        vm_set_state(v, v->def.on_crash == VM_ON_CRASH_DESTROY ? VM_STOPPED : VM_CRASHED,
                     "crash", info);
        if (job != VM_JOB_NONE)
            vm_job_finish_error(v, "GenericError", "QEMU ended unexpectedly");
        if (v->def.on_crash == VM_ON_CRASH_RESTART && !v->agent->stopping) {
            vm_result res;
            v->crash_restarts = quick_exit ? v->crash_restarts + 1 : 1;
            if (v->crash_restarts > CRASH_LOOP_LIMIT)
                log_err("vm %s: crashed %d times within %d s of starting; not restarting",
                        v->def.name, CRASH_LOOP_LIMIT, CRASH_LOOP_WINDOW_S);
            else if (vm_start(v, false, "on-crash", NULL, NULL, &res) < 0)
                log_err("vm %s: restart after crash refused: %s", v->def.name, res.err_desc);
        }
    }
}

/* Everything after QEMU's end, once the log tail (if any) was read. */
static void finish_exit(vm *v, int wstatus, const char *tail)
{
    struct json_object *info = json_object_new_object(), *es = exit_status_json(wstatus);
    bool quick = crash_loop(v);

    json_object_put(v->last_exit);
    v->last_exit = json_object_new_object();
    json_object_object_add(v->last_exit, "exit-status", es ? json_object_get(es) : NULL);
    json_object_object_add(v->last_exit, "log-tail", json_object_new_string(tail ? tail : ""));
    json_object_object_add(info, "exit-status", es);
    json_object_object_add(info, "log-tail", json_object_new_string(tail ? tail : ""));
    memset(&v->proc, 0, sizeof(v->proc));
    v->proc.pidfd = -1;
    v->unresponsive = false;
    vm_vnc_on_exit(v);
    statefile_writer_put(v->runtime_file, NULL, 0, NULL, NULL);
    settle_after_exit(v, info, quick);
}

static void after_log_tail(uv_work_t *req, int status)
{
    exit_work *w = (exit_work *)req;

    w->v->pending_io--;
    if (w->held_status < 0)
        log_err("vm %s: a passed-through device did not go back to its driver: %s", w->v->def.name,
                w->held_err);
    if (w->cg_status < 0)
        log_err("vm %s: its cgroup stays: %s", w->v->def.name, w->cg_err);
    finish_exit(w->v, w->status, w->tail);
    free(w->tail);
    free(w);
}

static void free_watch(uv_handle_t *h)
{
    free(h);
}

static void on_process_exit(uv_poll_t *h, int status, int events)
{
    vm *v = h->data;
    exit_work *w = calloc(1, sizeof(*w));
    int wstatus = -1;

    uv_close((uv_handle_t *)h, free_watch);
    v->proc.watch = NULL;
    if (v->proc.is_child && proc_reap(v->proc.pidfd, &wstatus) != 1)
        wstatus = -1;
    close(v->proc.pidfd);
    v->proc.pidfd = -1;
    vm_close_qmp(v);
    log_info("vm %s: QEMU (pid %d) ended", v->def.name, v->proc.pid);
    if (!w) {
        vm_hostdevs_release(v, &v->held_devs);
        vm_cgroup_release(v);
        v->held_devs.n = 0;
        finish_exit(v, wstatus, NULL);
        return;
    }
    w->v = v;
    w->status = wstatus;
    vm_hostdevs_sysfs(v->agent, &w->sysfs);
    w->held = v->held_devs;
    w->cgroups = v->agent->cgroups;
    v->held_devs.n = 0;
    v->pending_io++;
    if (uv_queue_work(v->agent->loop, &w->req, read_log_tail, after_log_tail) < 0)
        after_log_tail(&w->req, 0);
}

static int watch_process(vm *v)
{
    uv_poll_t *h = malloc(sizeof(*h));
    int r;

    if (!h)
        return -ENOMEM;
    if ((r = uv_poll_init(v->agent->loop, h, v->proc.pidfd)) < 0) {
        free(h);
        return r;
    }
    h->data = v;
    v->proc.watch = h;
    return uv_poll_start(h, UV_READABLE, on_process_exit);
}

/* ---- start ---------------------------------------------------------------- */

static void on_cont(qmp_client *c, const qmp_reply *r, void *opaque)
{
    vm *v = opaque;

    /* A lost connection means QEMU is going: its exit finishes the job. */
    if (v->job != VM_JOB_START || r->status == -ECANCELED || r->status == -ECONNRESET)
        return;
    if (r->status < 0) {
        vm_job_finish_error(v, "GenericError", "cont: %s", r->err_desc);
        vm_stop_process(v);
        return;
    }
    vm_set_state(v, VM_RUNNING, v->reason, NULL);
    vm_job_finish_ok(v, NULL);
}

/* Adopted or freshly launched, QMP is up: learn or set the guest's state. */
static void on_qmp_ready(qmp_client *c, int status, void *opaque)
{
    vm *v = opaque;

    if (status < 0) {
        if (v->qmp)
            qmp_close(v->qmp);
        v->qmp = NULL;
        if (v->job == VM_JOB_START || v->job == VM_JOB_RESTORE) {
            log_warn("vm %s: QMP not ready: %s", v->def.name, qmp_strerror(status));
            vm_stop_process(v); /* the exit completes the start job with the log tail */
        } else if (vm_has_process(v)) {
            vm_mark_responsive(v, false);
        }
        return;
    }
    v->qmp_ready = true;
    if (v->job == VM_JOB_MIGRATE_IN) {
        vm_vnc_on_qmp_ready(v);
        vm_migrate_in_qmp_ready(v);
    } else if (v->job == VM_JOB_RESTORE) {
        vm_vnc_on_qmp_ready(v);
        vm_save_qmp_ready(v);
    } else if (v->job == VM_JOB_START && v->job_force) {
        vm_vnc_on_qmp_ready(v);
        vm_set_state(v, VM_PAUSED, v->reason, NULL);
        vm_job_finish_ok(v, NULL);
    } else if (v->job == VM_JOB_START) {
        vm_vnc_on_qmp_ready(v);
        if (vm_qmp(v, "cont", NULL, on_cont, v) < 0)
            vm_stop_process(v);
    } else {
        vm_qmp(v, "query-status", NULL, on_status_read, v);
    }
}

static void on_status_read(qmp_client *c, const qmp_reply *r, void *opaque)
{
    vm *v = opaque;
    struct json_object *running;

    if (r->status < 0)
        return; /* a timeout already marked it unresponsive */
    /* Only a settled VM takes its state from QEMU: one being stopped or shut
     * down is in a job that owns its state. */
    if (!v->adopting && v->state != VM_RUNNING && v->state != VM_PAUSED)
        return;
    bool is_running = json_object_object_get_ex(r->ret, "running", &running) &&
                      json_object_get_boolean(running);
    vm_state now = is_running ? VM_RUNNING : VM_PAUSED;
    if (v->adopting && v->save_mark) {
        v->adopting = false;
        vm_save_adopted(v, is_running);
        return;
    }
    if (v->adopting && (v->incoming || v->migration_mark)) {
        v->adopting = false;
        vm_migration_adopted(v, is_running);
        return;
    }
    /* After adoption the state is announced once, corrected from QEMU. */
    if (v->adopting || v->state != now)
        vm_set_state(v, now, "agent-restart", NULL);
    v->adopting = false;
}

/* The agent binds and listens on the QMP socket itself and hands it to QEMU:
 * the QMP client connects at once and the greeting arrives as soon as QEMU
 * is ready, with no retry polling for the socket to appear. */
static int listen_qmp(vm *v, int *ret_fd)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd, high;

    if (strlen(v->qmp_path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, v->qmp_path, strlen(v->qmp_path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    /* Never fd 3 itself, so the child's dup2 onto 3 clears close-on-exec. */
    high = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    close(fd);
    if (high < 0)
        return -errno;
    *ret_fd = high;
    return 0;
}

typedef struct spawn_work {
    uv_work_t req;
    vm *v;
    /* copies: the definition may be replaced on the loop while this runs */
    vm_def def;
    qemu_host host;
    vm_disk_files *files;
    vm_nic_fds *nics;
    bool create_bridges;
    net_sysfs sysfs;
    vm_hostdevs_held held;
    unsigned vnc_port;
    bool incoming;
    const cg_host *cgroups;
    char **argv;
    int qmp_fd;
    pid_t pid;
    int status;
    char err[512];
} spawn_work;

/* A QEMU that must not run on (its cgroup could not be set up): killed and
 * reaped here, before the loop ever watches it; its group goes too. */
static void kill_spawned(spawn_work *w)
{
    int status;

    kill(w->pid, SIGKILL);
    while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR)
        ;
    vm_cgroup_leave(w->cgroups, w->def.name, NULL, 0);
    w->pid = 0;
}

/* Opening the disk chains reads image headers, and posix_spawn waits until
 * the child has exec'd (tens of milliseconds for QEMU on a loaded host):
 * both on the thread pool, never on the loop. */
static void run_spawn(uv_work_t *req)
{
    spawn_work *w = (spawn_work *)req;
    vm *v = w->v;
    qemu_paths paths = { .qmp_socket = v->qmp_path, .qmp_fd = PROC_PASSED_FD,
                         .serial_socket = v->serial_path, .qga_socket = v->qga_path,
                         .console_log = v->console_log,
                         .pidfile = v->pidfile, .disks = w->files->chains, .ndisks = w->files->ndisks,
                         .nics = w->nics->child, .nnics = w->def.nnics,
                         .vnc_listen = v->agent->cfg.vnc_listen, .vnc_port = w->vnc_port,
                         .incoming = w->incoming };

    if ((w->status = vm_disks_open(&w->def, w->files, w->err, sizeof(w->err))) < 0 ||
        (w->status = vm_nics_open(&w->def, w->create_bridges, PROC_PASSED_FD + 1, w->nics, w->err,
                                  sizeof(w->err))) < 0 ||
        (w->status = vm_hostdevs_take(&w->sysfs, &w->def, &w->held, w->err, sizeof(w->err))) < 0)
        return;
    if ((w->status = qemu_argv_build(&w->def, &w->host, &paths, &w->argv, w->err, sizeof(w->err))) == 0 &&
        (w->status = proc_spawn_fds(w->argv, v->qemu_log, w->qmp_fd, w->nics->extra, w->nics->nextra,
                                    &w->pid)) < 0)
        snprintf(w->err, sizeof(w->err), "launching %s: %s", w->host.binary, strerror(-w->status));
    /* QEMU starts paused (-S): it is in its cgroup before a guest instruction runs. */
    if (w->status == 0 && (w->status = vm_cgroup_enter(w->cgroups, &w->def, w->pid, w->err, sizeof(w->err))) < 0)
        kill_spawned(w);
    if (w->status < 0)
        vm_hostdevs_give_back(&w->sysfs, &w->held, NULL, 0);
}

static int track_spawned(vm *v, pid_t pid)
{
    int r;

    v->proc.pid = pid;
    v->proc.is_child = true;
    v->proc.started_at = time(NULL);
    if ((r = proc_pidfd_open(pid, &v->proc.pidfd)) < 0 || (r = watch_process(v)) < 0) {
        kill(pid, SIGKILL);
        return r;
    }
    proc_start_ticks(pid, &v->proc.start_ticks);
    return 0;
}

static void spawn_work_free(spawn_work *w)
{
    if (w->qmp_fd >= 0)
        close(w->qmp_fd);
    qemu_argv_free(w->argv);
    vm_disk_files_free(w->files);
    /* QEMU holds the taps now (or never will): the agent's copies go. */
    if (w->nics)
        vm_nics_close(w->nics);
    free(w->nics);
    vmdef_free(&w->def);
    free(w);
}

static void after_spawn(uv_work_t *req, int status)
{
    spawn_work *w = (spawn_work *)req;
    vm *v = w->v;
    int r = status < 0 ? status : w->status;
    vm_hostdevs_held held;
    char err[512];

    v->pending_io--;
    v->spawning = false;
    if (status < 0)
        snprintf(w->err, sizeof(w->err), "launching: %s", uv_strerror(status));
    if (r == 0 && (r = track_spawned(v, w->pid)) < 0) {
        log_err("vm %s: cannot watch QEMU pid %d: %s", v->def.name, w->pid, strerror(-r));
        snprintf(w->err, sizeof(w->err), "watching QEMU: %s", strerror(-r));
    }
    snprintf(err, sizeof(err), "%s", w->err);
    held = w->held;
    spawn_work_free(w);
    if (r < 0) {
        /* QEMU was killed (or never ran): what it was to hold goes back. */
        vm_hostdevs_release(v, &held);
        vm_vnc_on_exit(v);
        v->proc.pid = 0;
        v->save_mark = NULL;   /* a restore that never ran: still saved */
        if (v->job == VM_JOB_DESTROY) {
            vm_set_state(v, VM_STOPPED, "user", NULL);
            vm_job_finish_ok(v, NULL);
        } else {
            vm_job_finish_error(v, "GenericError", "%s", err);
        }
        return;
    }
    v->held_devs = held;
    vm_write_runtime(v);
    if (v->job == VM_JOB_DESTROY) {
        /* vm-destroy arrived while the spawn was in flight. */
        vm_stop_process(v);
        return;
    }
    vm_set_state(v, VM_STARTING, v->start_reason, NULL);
    vm_connect_qmp(v, v->agent->cfg.start_timeout_ms);
}

static spawn_work *spawn_work_new(vm *v, char *err, size_t errlen)
{
    spawn_work *w = calloc(1, sizeof(*w));

    if (!w || !(w->files = calloc(1, sizeof(*w->files))) || !(w->nics = calloc(1, sizeof(*w->nics)))) {
        if (w)
            free(w->files);
        free(w);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->v = v;
    w->qmp_fd = -1;
    w->create_bridges = v->agent->cfg.create_bridges;
    /* A restore loads its state the way an incoming migration does. */
    w->incoming = v->incoming || v->job == VM_JOB_RESTORE;
    vm_hostdevs_sysfs(v->agent, &w->sysfs);
    w->cgroups = v->agent->cgroups;
    agent_qemu_host(v->agent, &w->host);
    if (vmdef_copy(&v->def, &w->def) < 0) {
        free(w->files);
        free(w->nics);
        free(w);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (vm_disks_locate(v->agent, &v->def, w->files, err, errlen) < 0) {
        spawn_work_free(w);
        return NULL;
    }
    return w;
}

/* Everything that can fail fast is checked here, on the loop; opening the
 * disks and the spawn itself are queued. */
int vm_launch(vm *v, char *err, size_t errlen)
{
    spawn_work *w;
    int r;

    if ((r = statefile_mkdir_p(v->run_dir, 0750)) < 0) {
        snprintf(err, errlen, "creating %s: %s", v->run_dir, strerror(-r));
        return r;
    }
    if ((r = vm_hostdevs_check_free(v->agent, v, err, errlen)) < 0 || (r = vm_vnc_pick_port(v, err, errlen)) < 0)
        return r;
    if (!(w = spawn_work_new(v, err, errlen))) {
        v->vnc_port = 0;
        return -EINVAL;
    }
    w->vnc_port = v->vnc_port;
    /* Sockets left by a dead QEMU would make the binds fail. */
    unlink(v->qmp_path);
    unlink(v->serial_path);
    unlink(v->qga_path);
    if ((r = listen_qmp(v, &w->qmp_fd)) < 0) {
        snprintf(err, errlen, "QMP socket %s: %s", v->qmp_path, strerror(-r));
        spawn_work_free(w);
        v->vnc_port = 0;
        return r;
    }
    v->pending_io++;
    v->spawning = true;
    if ((r = uv_queue_work(v->agent->loop, &w->req, run_spawn, after_spawn)) < 0) {
        v->pending_io--;
        v->spawning = false;
        snprintf(err, errlen, "queueing the launch: %s", uv_strerror(r));
        spawn_work_free(w);
        v->vnc_port = 0;
        return r;
    }
    return 0;
}

/* A pool of the VM's disks that is being started, or NULL. */
static pool *pool_being_started(vm *v)
{
    for (size_t i = 0; i < v->def.ndisks; i++) {
        const vm_disk *d = &v->def.disks[i];
        pool *p = d->path || !d->pool[0] ? NULL : pool_find(v->agent, d->pool);
        if (p && p->starting)
            return p;
    }
    return NULL;
}

static void on_pool_started(void *opaque);

/* Right after the agent starts, its pools are still being started (an NFS
 * mount takes its time): a start that needs one waits for it rather than
 * failing with "not started". True when it now waits. */
static bool waits_for_pool(vm *v)
{
    pool *p = pool_being_started(v);

    if (!p || pool_when_started(p, on_pool_started, v) < 0)
        return false;
    v->pending_io++;
    log_info("vm %s: waiting for pool %s to start", v->def.name, p->name);
    return true;
}

static void on_pool_started(void *opaque)
{
    vm *v = opaque;
    char err[512];

    v->pending_io--;
    if (v->job != VM_JOB_START || vm_has_process(v) || v->spawning || waits_for_pool(v))
        return;
    if (vm_launch(v, err, sizeof(err)) < 0)
        vm_job_finish_error(v, "GenericError", "%s", err);
}

int vm_start(vm *v, bool paused, const char *reason, vm_done_cb cb, void *opaque, vm_result *res)
{
    char err[512];

    if (v->state == VM_SAVED) {
        vm_refuse(res, "InvalidState", "%s is saved: vm-restore resumes it, vm-save-discard drops the saved "
                  "state so that it boots afresh", v->def.name);
        return -1;
    }
    if (v->state == VM_SENT) {
        vm_refuse(res, "InvalidState", "%s was sent to another host: vm-send-confirm says whether it stays "
                  "there or is back here", v->def.name);
        return -1;
    }
    if (v->state != VM_STOPPED && v->state != VM_CRASHED) {
        vm_refuse(res, "InvalidState", "%s is already %s", v->def.name, vm_state_name(v));
        return -1;
    }
    if (!vm_job_begin(v, VM_JOB_START, cb, opaque, res))
        return -1;
    v->job_force = paused;
    v->start_reason = reason;
    v->exit_expected = false;
    v->guest_shutdown = false;
    if (strcmp(reason, "on-crash") != 0)
        v->crash_restarts = 0;
    if (waits_for_pool(v))
        return 0;
    if (vm_launch(v, err, sizeof(err)) < 0) {
        v->job = VM_JOB_NONE;
        vm_refuse(res, "GenericError", "%s", err);
        return -1;
    }
    return 0;
}

/* ---- adoption ------------------------------------------------------------ */

static int read_runtime(vm *v, pid_t *ret_pid, uint64_t *ret_ticks, int64_t *ret_started,
                        vm_hostdevs_held *ret_held, unsigned *ret_vnc_port)
{
    char *text;
    struct json_object *o, *pid, *ticks, *uuid, *started, *held, *vnc, *mark;
    int r = statefile_read(v->runtime_path, RUNTIME_MAX, &text, NULL);

    if (r < 0)
        return r;
    o = json_tokener_parse(text);
    free(text);
    r = -EINVAL;
    if (o && json_object_object_get_ex(o, "pid", &pid) && json_object_is_type(pid, json_type_int) &&
        json_object_object_get_ex(o, "start-ticks", &ticks) &&
        json_object_object_get_ex(o, "uuid", &uuid) &&
        strcmp(json_object_get_string(uuid), v->def.uuid) == 0 &&
        json_object_get_int(pid) > 1) {
        *ret_pid = json_object_get_int(pid);
        *ret_ticks = (uint64_t)json_object_get_int64(ticks);
        *ret_started = json_object_object_get_ex(o, "started-at", &started)
                           ? json_object_get_int64(started) : time(NULL);
        r = 0;
        if (json_object_object_get_ex(o, "vnc-port", &vnc) && json_object_get_int(vnc) >= QEMU_VNC_PORT_BASE &&
            json_object_get_int(vnc) <= 65535)
            *ret_vnc_port = (unsigned)json_object_get_int(vnc);
        if (json_object_object_get_ex(o, "migration", &mark))
            v->migration_mark = !strcmp(json_object_get_string(mark), "migrated") ? "migrated" : "outgoing";
        if (json_object_object_get_ex(o, "save", &mark))
            vm_save_mark_from_json(v, mark);
        if (json_object_object_get_ex(o, "hostdevs", &held) && vm_hostdevs_from_json(held, ret_held) < 0)
            log_err("vm %s: its runtime record's hostdevs are unreadable; check the host's vfio-pci "
                    "devices by hand", v->def.name);
    }
    json_object_put(o);
    return r;
}

/* Same PID, same start time, and our uuid on its command line: it is ours. */
static bool process_is_ours(vm *v, pid_t pid, uint64_t ticks)
{
    uint64_t now_ticks;

    return proc_start_ticks(pid, &now_ticks) == 0 && now_ticks == ticks &&
           proc_cmdline_has_pair(pid, "-uuid", v->def.uuid);
}

/* What an adopted QEMU is taken to be until QMP answers. */
static vm_state adopted_state(const vm *v)
{
    if (v->incoming)
        return VM_INCOMING;
    if (v->save_mark)
        return !strcmp(v->save_mark, "restoring") ? VM_RESTORING : VM_SAVING;
    if (v->migration_mark)
        return !strcmp(v->migration_mark, "migrated") ? VM_MIGRATED : VM_MIGRATING;
    return VM_RUNNING;
}

/* A QEMU launched but never recorded (the agent stopped between the spawn
 * and the runtime record) is found by its pidfile and its uuid, and ended:
 * nobody was told it runs, and it would hold the disks' locks. */
static void end_unrecorded(vm *v)
{
    char *text = NULL;
    long pid;
    int fd;

    if (statefile_read(v->pidfile, 32, &text, NULL) < 0)
        return;
    pid = strtol(text, NULL, 10);
    free(text);
    /* The pidfd first: the pid cannot be reused under it while we look. */
    if (pid > 1 && pid <= INT_MAX && proc_pidfd_open((pid_t)pid, &fd) == 0) {
        if (proc_cmdline_has_pair((pid_t)pid, "-uuid", v->def.uuid)) {
            log_warn("vm %s: QEMU pid %ld was launched but never recorded; ending it", v->def.name, pid);
            proc_pidfd_signal(fd, SIGKILL);
        }
        close(fd);
    }
    unlink(v->pidfile);
}

int vm_adopt(vm *v)
{
    pid_t pid;
    uint64_t ticks;
    int64_t started;
    vm_hostdevs_held held = { 0 };
    unsigned vnc_port = 0;
    int r = read_runtime(v, &pid, &ticks, &started, &held, &vnc_port);

    if (r == -ENOENT)
        end_unrecorded(v);
    if (r == -ENOENT && v->incoming) {
        vm_migration_drop(v, "failed");   /* its QEMU never ran: not ours */
        return 0;
    }
    if (r == -ENOENT)
        return 0;
    if (r < 0 || !process_is_ours(v, pid, ticks)) {
        log_notice("vm %s: its QEMU is gone (%s); marking it stopped", v->def.name,
                   r < 0 ? "unreadable runtime record" : "no such process");
        vm_hostdevs_release(v, &held);
        vm_cgroup_release(v);
        statefile_writer_put(v->runtime_file, NULL, 0, NULL, NULL);
        v->migration_mark = NULL;
        if (v->save_mark)
            vm_save_gone(v);
        else if (v->incoming)
            vm_migration_drop(v, "failed");   /* never ours: it goes */
        else if (r == 0)
            vm_set_state(v, VM_STOPPED, "exited", NULL);
        return 0;
    }
    v->proc.pid = pid;
    v->proc.start_ticks = ticks;
    v->proc.started_at = started;
    v->proc.is_child = false;
    v->held_devs = held;
    v->vnc_port = vnc_port;
    if ((r = proc_pidfd_open(pid, &v->proc.pidfd)) < 0 || (r = watch_process(v)) < 0) {
        log_err("vm %s: cannot watch QEMU pid %d: %s", v->def.name, pid, strerror(-r));
        return r;
    }
    log_info("vm %s: adopting QEMU pid %d", v->def.name, pid);
    vm_cgroup_adopt(v, pid);
    /* Running until QEMU says otherwise; QMP failing makes it unresponsive,
     * never killed. A migration's side is told from its marks at once: a
     * caller settling a migration after the restart must not see running. */
    v->state = adopted_state(v);
    /* A plain VM is only assumed running: its reason says so until QEMU
     * answers and the state is announced with reason agent-restart. */
    v->reason = v->state == VM_RUNNING ? "adopting" : "agent-restart";
    v->adopting = true;
    vm_connect_qmp(v, v->agent->cfg.qmp_timeout_ms);
    return 1;
}
