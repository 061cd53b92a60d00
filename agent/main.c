/* main.c: agentd: configuration, start-up (lock, definitions, adoption,
 * autostart), the control socket, and an exit that leaves every VM running. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <uv.h>

#include "agent.h"
#include "console_log.h"
#include "config.h"
#include "events.h"
#include "host.h"
#include "log.h"
#include "master.h"
#include "pool.h"
#include "server.h"
#include "statefile.h"
#include "vm.h"
#include "vm_save.h"
#include "vm_send.h"
#include "vm_snapshot.h"
#include "vm_vnc.h"
#include "cgroup.h"

#define DEFAULT_CONFIG "/etc/agentd.conf"
#define EVENT_RING 1024
#define DEFINITION_MAX (1u << 20)

static void usage(FILE *f)
{
    fprintf(f,
            "usage: agentd [options]\n"
            "  --config FILE        config file (default " DEFAULT_CONFIG ")\n"
            "  --state-dir DIR      definitions and logs (default /var/lib/agentd)\n"
            "  --run-dir DIR        sockets and runtime records (default /run/agentd)\n"
            "  --socket PATH        control socket (default /run/agentd/agentd.sock)\n"
            "  --socket-group NAME  group that may connect (socket mode 0660)\n"
            "  --admin-group NAME   group that may change VMs (besides root)\n"
            "  --qemu BINARY        QEMU binary (default qemu-system-x86_64)\n"
            "  --qemu-user USER     user QEMU runs as\n"
            "  --accel kvm|tcg|auto accelerator for VMs that do not name one\n"
            "  --log-level LEVEL    err, warning, notice, info, debug\n"
            "  --log-file FILE      append the log here (default when detached: STATE/agentd.log)\n"
            "  --foreground         do not detach\n"
            "  --version            print the version\n");
}

/* Flags are applied after the config file, so they win. */
static int parse_args(int argc, char **argv, agent_config *c)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "state-dir", required_argument, NULL, 1 },
        { "run-dir", required_argument, NULL, 1 },
        { "socket", required_argument, NULL, 1 },
        { "socket-group", required_argument, NULL, 1 },
        { "admin-group", required_argument, NULL, 1 },
        { "qemu", required_argument, NULL, 1 },
        { "qemu-user", required_argument, NULL, 1 },
        { "accel", required_argument, NULL, 1 },
        { "log-level", required_argument, NULL, 1 },
        { "log-file", required_argument, NULL, 1 },
        { "foreground", no_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    const char *config = DEFAULT_CONFIG;
    bool explicit_config = false;
    char err[512];
    int o, idx;

    /* First pass: only --config, so the file is read before the other flags. */
    while ((o = getopt_long(argc, argv, "c:fhV", opts, &idx)) != -1) {
        if (o == 'c') {
            config = optarg;
            explicit_config = true;
        } else if (o == 'h') {
            usage(stdout);
            exit(0);
        } else if (o == 'V') {
            printf("agentd %s\n", AGENTD_VERSION_STRING);
            exit(0);
        } else if (o == '?') {
            usage(stderr);
            return -EINVAL;
        }
    }
    if (config_load_file(c, config, explicit_config, err, sizeof(err)) < 0) {
        fprintf(stderr, "agentd: %s\n", err);
        return -EINVAL;
    }
    c->config_file = strdup(config);
    optind = 1;
    while ((o = getopt_long(argc, argv, "c:fhV", opts, &idx)) != -1) {
        if (o == 'f')
            c->foreground = true;
        else if (o == 1 && config_set(c, opts[idx].name, optarg, err, sizeof(err)) < 0) {
            fprintf(stderr, "agentd: --%s\n", err);
            return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "agentd: unexpected argument '%s'\n", argv[optind]);
        return -EINVAL;
    }
    return 0;
}

static int join(char *buf, const char *a, const char *b)
{
    return snprintf(buf, PATH_MAX, "%s/%s", a, b) >= PATH_MAX ? -ENAMETOOLONG : 0;
}

static int prepare_dirs(agent *a)
{
    char lock[PATH_MAX];
    int r;

    if ((r = join(a->vms_dir, a->cfg.state_dir, "vms")) < 0 ||
        (r = join(a->logs_dir, a->cfg.state_dir, "logs")) < 0 ||
        (r = join(a->run_vms_dir, a->cfg.run_dir, "vms")) < 0 ||
        (r = join(a->pools_dir, a->cfg.state_dir, "pools")) < 0 ||
        (r = join(a->mnt_dir, a->cfg.state_dir, "mnt")) < 0 ||
        (r = join(a->masters_dir, a->cfg.state_dir, "masters")) < 0 ||
        (r = join(lock, a->cfg.state_dir, "agentd.lock")) < 0)
        return r;
    if ((r = statefile_mkdir_p(a->vms_dir, 0700)) < 0 || (r = statefile_mkdir_p(a->logs_dir, 0750)) < 0 ||
        (r = statefile_mkdir_p(a->run_vms_dir, 0750)) < 0 || (r = statefile_mkdir_p(a->pools_dir, 0700)) < 0 ||
        (r = statefile_mkdir_p(a->mnt_dir, 0700)) < 0 || (r = statefile_mkdir_p(a->masters_dir, 0700)) < 0) {
        log_err("creating the state and run directories: %s", strerror(-r));
        return r;
    }
    /* Two agents on one state directory would run the same VM twice. */
    a->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (a->lock_fd < 0 || flock(a->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        log_err("%s is in use by another agentd (%s)", a->cfg.state_dir, strerror(errno));
        return -EBUSY;
    }
    return 0;
}

static void probe_cgroups(agent *a)
{
    char err[256] = "no usable cpu or memory controller";
    cg_host *h;

    if (!a->cfg.cgroup_parent || !(h = calloc(1, sizeof(*h))))
        return;
    if (cg_host_detect(NULL, NULL, a->cfg.cgroup_parent, h, err, sizeof(err)) < 0 || h->mode == CG_NONE) {
        log_warn("cgroups: %s; VMs run without limits of their own", err);
        free(h);
        return;
    }
    log_info("cgroups: %s, each QEMU under %s", cg_mode_name(h), a->cfg.cgroup_parent);
    a->cgroups = h;
}

static void probe_host(agent *a)
{
    a->kvm_available = host_kvm_usable();
    if (a->cfg.accel == AGENT_ACCEL_KVM)
        a->accel = VM_ACCEL_KVM;
    else if (a->cfg.accel == AGENT_ACCEL_TCG)
        a->accel = VM_ACCEL_TCG;
    else
        a->accel = a->kvm_available ? VM_ACCEL_KVM : VM_ACCEL_TCG;
    int v = host_probe_qemu(a->cfg.qemu_binary, 5000, a->qemu_version_str, sizeof(a->qemu_version_str));
    if (v < 0) {
        log_warn("cannot run %s -version (%s); VMs will fail to start until it is installed",
                 a->cfg.qemu_binary, strerror(-v));
        snprintf(a->qemu_version_str, sizeof(a->qemu_version_str), "unknown");
    } else {
        a->qemu_version = v;
    }
    probe_cgroups(a);
    if (gethostname(a->hostname, sizeof(a->hostname) - 1) < 0)
        snprintf(a->hostname, sizeof(a->hostname), "localhost");
    log_info("agentd %s: QEMU %s (%s), accelerator %s%s", AGENTD_VERSION_STRING, a->qemu_version_str,
             a->cfg.qemu_binary, vm_accel_name(a->accel),
             a->kvm_available ? "" : " (/dev/kvm not usable)");
}

/* A broken definition file is reported and left alone, never deleted. */
static void load_definition(agent *a, const char *file)
{
    char path[PATH_MAX], err[VM_ERR_MAX], *text;
    struct json_object *j;
    vm_def def;
    vm *v;

    if (snprintf(path, sizeof(path), "%s/%s", a->vms_dir, file) >= (int)sizeof(path))
        return;
    if (statefile_read(path, DEFINITION_MAX, &text, NULL) < 0) {
        log_err("%s: unreadable; skipped", path);
        return;
    }
    j = json_tokener_parse(text);
    free(text);
    if (!j || vmdef_from_json(j, &def, err, sizeof(err)) < 0) {
        log_err("%s: invalid definition (%s); skipped", path, j ? err : "not JSON");
        json_object_put(j);
        return;
    }
    json_object_put(j);
    size_t n = strlen(def.name);
    if (strncmp(file, def.name, n) != 0 || strcmp(file + n, ".json") != 0) {
        log_err("%s: holds VM '%s', not its file name; skipped", path, def.name);
        vmdef_free(&def);
        return;
    }
    if (vm_new(a, &def, &v) < 0) {
        vmdef_free(&def);
        return;
    }
    vm_vnc_load_password(v);
    vm_save_load(v);
    vm_send_load(v);
    vm_snapshot_load(v);
    v->incoming = access(v->incoming_path, F_OK) == 0;
    vm **pp = &a->vms;
    while (*pp)
        pp = &(*pp)->next;
    *pp = v;
}

static int name_order(const struct dirent **x, const struct dirent **y)
{
    return strcmp((*x)->d_name, (*y)->d_name);
}

static int only_json(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return d->d_name[0] != '.' && n > 5 && strcmp(d->d_name + n - 5, ".json") == 0;
}

static void load_definitions(agent *a)
{
    struct dirent **list;
    int n;

    /* Before the definitions: a receive that finished saved its own. */
    vm_receive_recover(a);
    n = scandir(a->vms_dir, &list, only_json, name_order);

    for (int i = 0; i < n; i++) {
        load_definition(a, list[i]->d_name);
        free(list[i]);
    }
    if (n >= 0)
        free(list);
}

static void adopt(agent *a)
{
    int defined = 0, adopted = 0;

    for (vm *v = a->vms, *next; v; v = next) {
        next = v->next;   /* an incoming VM whose QEMU is gone goes */
        defined++;
        if (vm_adopt(v) > 0)
            adopted++;
    }
    log_info("%d VMs defined, %d adopted", defined, adopted);
}

/* After the pools are up: autostarted VMs need their disks. */
static void autostart(agent *a)
{
    int started = 0;

    for (vm *v = a->vms; v; v = v->next) {
        vm_result res;
        if (!v->def.autostart || vm_has_process(v))
            continue;
        if (vm_start(v, false, "autostart", NULL, NULL, &res) == 0)
            started++;
        else
            log_err("vm %s: autostart failed: %s", v->def.name, res.err_desc);
    }
    log_info("%d VMs autostarted", started);
}

static void event_to_clients(const char *line, size_t len, void *opaque)
{
    agent *a = opaque;

    if (a->server)
        server_broadcast(line, len, a->server);
}

/* ---- exit ----------------------------------------------------------------- */

static uv_signal_t sig_term, sig_int;

static void close_signal(uv_signal_t *s)
{
    if (!uv_is_closing((uv_handle_t *)s))
        uv_close((uv_handle_t *)s, NULL);
}

/* Leaves every QEMU running: it only lets go of sockets, QMP and watches. */
static void on_stop_signal(uv_signal_t *s, int signum)
{
    agent *a = s->data;

    log_info("signal %d: exiting; VMs keep running", signum);
    a->stopping = true;
    server_stop(a->server);
    a->server = NULL;
    console_log_stop(a);
    while (a->vms) {
        vm *v = a->vms;
        a->vms = v->next;
        /* Thread-pool work still refers to this VM: let it finish and leak
         * the little it holds rather than free it under that work. */
        if (v->pending_io == 0)
            vm_free(v);
    }
    close_signal(&sig_term);
    close_signal(&sig_int);
}

static int64_t epoch_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int daemonize(void)
{
    pid_t pid = fork();

    if (pid < 0)
        return -errno;
    if (pid > 0)
        _exit(0);
    setsid();
    /* Nothing may hold the caller's terminal or pipes open: stdout too goes. */
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        close(fd);
    }
    return 0;
}

static int redirect_log(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);

    if (fd < 0)
        return -errno;
    dup2(fd, STDERR_FILENO);
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    static agent a;
    char err[512];
    int r;

    signal(SIGPIPE, SIG_IGN);
    config_init_defaults(&a.cfg);
    if (parse_args(argc, argv, &a.cfg) < 0)
        return 2;
    log_set_level(a.cfg.log_level);
    /* Detached, stderr would be nobody's: the log goes to a file instead. */
    if (!a.cfg.foreground && !a.cfg.log_file && asprintf(&a.cfg.log_file, "%s/agentd.log", a.cfg.state_dir) < 0)
        return 1;
    if (!a.cfg.foreground && statefile_mkdir_p(a.cfg.state_dir, 0755) < 0) {
        fprintf(stderr, "agentd: cannot create %s: %s\n", a.cfg.state_dir, strerror(errno));
        return 1;
    }
    if (a.cfg.log_file && redirect_log(a.cfg.log_file) < 0) {
        fprintf(stderr, "agentd: cannot open log file %s: %s\n", a.cfg.log_file, strerror(errno));
        return 1;
    }
    if (!a.cfg.foreground && daemonize() < 0)
        return 1;
    a.loop = uv_default_loop();
    a.lock_fd = -1;
    if (prepare_dirs(&a) < 0)
        return 1;
    probe_host(&a);
    a.events = event_log_new(EVENT_RING, event_to_clients, &a);
    a.epoch = epoch_now();
    load_definitions(&a);
    pools_load(&a);
    masters_load(&a);
    if ((r = server_start(&a, &a.server, err, sizeof(err))) < 0) {
        log_err("%s", err);
        return 1;
    }
    adopt(&a);
    pools_autostart(&a, autostart);
    if (console_log_start(&a) < 0)
        log_warn("console logs: cannot start the size check; they are not bounded");
    uv_signal_init(a.loop, &sig_term);
    uv_signal_init(a.loop, &sig_int);
    sig_term.data = sig_int.data = &a;
    uv_signal_start(&sig_term, on_stop_signal, SIGTERM);
    uv_signal_start(&sig_int, on_stop_signal, SIGINT);
    log_info("listening on %s", a.cfg.socket_path);
    uv_run(a.loop, UV_RUN_DEFAULT);
    event_log_free(a.events);
    agent_vms_changed(&a);
    uv_loop_close(a.loop);
    free(a.cgroups);
    config_free(&a.cfg);
    return 0;
}
