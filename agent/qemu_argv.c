/* qemu_argv.c: the QEMU command line for a VM, built as an argv array.
 *
 * The definition is validated again here, whoever built it, so nothing that
 * reaches QEMU can add options of its own: names and models are restricted
 * to characters QEMU gives no meaning to, and paths inside option strings
 * have their commas doubled. Each element is its own malloc'd string. */
#include "errbuf.h"
#include "qemu_argv.h"
#include "qemu_argv_buf.h"
#include "qemu_disks.h"
#include "qemu_nics.h"
#include "qemu_devices.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* -run-with user= replaced the deprecated -runas in QEMU 9.1. */
#define QEMU_RUN_WITH_USER_VERSION 90100
/* Memory hotplug needs DIMM slots; 8 is what the management nodes expect. */
#define MEMORY_SLOTS 8


/* ---- what may be written into a command line ---- */

static int check_path(const char *field, const char *path, errbuf *e)
{
    if (!path)
        return errbuf_fail(e, "%s: missing", field);
    if (!*path)
        return errbuf_fail(e, "%s: must not be empty", field);
    /* QEMU would take it, but a newline in a path is never intended and
     * breaks every line-oriented record of the command line. */
    if (strchr(path, '\n'))
        return errbuf_fail(e, "%s: must not contain a newline", field);
    return 0;
}

static int check_paths(const vm_def *def, const qemu_paths *p, errbuf *e)
{
    int r;

    if (def->guest_agent && (r = check_path("paths.qga_socket", p->qga_socket, e)) < 0)
        return r;

    if ((r = check_path("paths.qmp_socket", p->qmp_socket, e)) < 0 ||
        (r = check_path("paths.serial_socket", p->serial_socket, e)) < 0 ||
        (r = check_path("paths.console_log", p->console_log, e)) < 0 ||
        (r = check_path("paths.pidfile", p->pidfile, e)) < 0)
        return r;
    return 0;
}

static int check_host(const qemu_host *h, errbuf *e)
{
    int r;

    if ((r = check_path("host.binary", h->binary, e)) < 0)
        return r;
    if (h->accel != VM_ACCEL_KVM && h->accel != VM_ACCEL_TCG)
        return errbuf_fail(e, "host.accel: must be kvm or tcg");
    if (h->run_as && (r = check_path("host.run_as", h->run_as, e)) < 0)
        return r;
    return 0;
}

static int check_inputs(const vm_def *def, const qemu_host *host, const qemu_paths *paths,
                        errbuf *e)
{
    int r;

    if (!def || !host || !paths)
        return errbuf_fail(e, "qemu_argv_build: missing argument");
    if ((r = vmdef_validate(def, e->buf, e->len)) < 0 || (r = check_host(host, e)) < 0 ||
        (r = check_paths(def, paths, e)) < 0 || (r = qemu_disks_check(def, paths, e)) < 0 ||
        (r = qemu_nics_check(def, paths, e)) < 0)
        return r;
    if (def->vnc && (!paths->vnc_listen || !*paths->vnc_listen || strpbrk(paths->vnc_listen, ",\n") ||
                     paths->vnc_port < QEMU_VNC_PORT_BASE || paths->vnc_port > 65535))
        return errbuf_fail(e, "paths.vnc: a listen address and a port from %d are needed", QEMU_VNC_PORT_BASE);
    return 0;
}

/* ---- a growing argv ---- */

/* QEMU's option strings split on ',' and read ",," as a literal comma. */
static char *escape_commas(const char *s)
{
    size_t n = strlen(s);
    char *out, *p;

    for (const char *c = s; (c = strchr(c, ',')) != NULL; c++)
        n++;
    out = malloc(n + 1);
    if (!out)
        return NULL;
    for (p = out; *s; s++) {
        *p++ = *s;
        if (*s == ',')
            *p++ = ',';
    }
    *p = '\0';
    return out;
}

/* ---- the sections of the command line, in order ---- */

static vm_accel effective_accel(const vm_def *def, const qemu_host *host)
{
    return def->accel != VM_ACCEL_DEFAULT ? def->accel : host->accel;
}

/* The name needs no escaping: vmdef_validate allows no commas in it. */
static void push_identity(argv_buf *b, const vm_def *def, const qemu_host *host)
{
    argv_push(b, host->binary);
    argv_push(b, "-name");
    argv_pushf(b, "guest=%s,debug-threads=on", def->name);
    argv_push(b, "-uuid");
    argv_push(b, def->uuid);
    argv_push(b, "-S");
    argv_push(b, "-nodefaults");
    argv_push(b, "-no-user-config");
}

/* Without a model, KVM passes the host CPU through and TCG keeps QEMU's own
 * default, since TCG cannot emulate "host". */
static void push_machine(argv_buf *b, const vm_def *def, const qemu_host *host)
{
    vm_accel accel = effective_accel(def, host);

    argv_push(b, "-machine");
    argv_push(b, def->machine);
    argv_push(b, "-accel");
    argv_push(b, vm_accel_name(accel));
    if (def->cpu_model[0]) {
        argv_push(b, "-cpu");
        argv_push(b, def->cpu_model);
    } else if (accel == VM_ACCEL_KVM) {
        argv_push(b, "-cpu");
        argv_push(b, "host");
    }
}

/* QEMU wants sockets * cores * threads == maxcpus, so the sockets that
 * hotplug may fill are counted in. */
static void push_resources(argv_buf *b, const vm_def *def)
{
    uint32_t max = def->max_vcpus ? def->max_vcpus : def->vcpus;

    argv_push(b, "-m");
    if (def->max_memory_mib)
        argv_pushf(b, "size=%" PRIu64 "M,slots=%d,maxmem=%" PRIu64 "M", def->memory_mib, MEMORY_SLOTS,
              def->max_memory_mib);
    else
        argv_pushf(b, "%" PRIu64 "M", def->memory_mib);
    argv_push(b, "-smp");
    argv_pushf(b, "%" PRIu32 ",sockets=%" PRIu32 ",cores=%" PRIu32 ",threads=%" PRIu32
             ",maxcpus=%" PRIu32,
          def->vcpus, max / (def->cores * def->threads), def->cores, def->threads, max);
}

static void push_monitor(argv_buf *b, const qemu_paths *paths)
{
    /* An incoming migration's address is given later, with migrate-incoming. */
    if (paths->incoming) {
        argv_push(b, "-incoming");
        argv_push(b, "defer");
    }
    char *qmp = escape_commas(paths->qmp_socket);

    argv_push(b, "-chardev");
    if (paths->qmp_fd > 2)
        argv_pushf(b, "socket,id=qmp,fd=%d,server=on,wait=off", paths->qmp_fd);
    else if (qmp)
        argv_pushf(b, "socket,id=qmp,path=%s,server=on,wait=off", qmp);
    else
        argv_push_owned(b, NULL);
    free(qmp);
    argv_push(b, "-mon");
    argv_push(b, "chardev=qmp,mode=control");
    argv_push(b, "-pidfile");
    argv_push(b, paths->pidfile);
}

static void push_serial(argv_buf *b, const qemu_paths *paths)
{
    char *sock = escape_commas(paths->serial_socket);
    char *log = escape_commas(paths->console_log);

    argv_push(b, "-chardev");
    if (sock && log)
        argv_pushf(b, "socket,id=serial0,path=%s,server=on,wait=off,logfile=%s,logappend=on", sock, log);
    else
        argv_push_owned(b, NULL);
    free(sock);
    free(log);
    argv_push(b, "-serial");
    argv_push(b, "chardev:serial0");
}

/* qemu-ga finds its port by this name. The controller sits at a fixed
 * slot below the hotplug ports, so turning the agent on moves nothing else. */
static void push_guest_agent(argv_buf *b, const vm_def *def, const qemu_paths *paths)
{
    char *sock;

    if (!def->guest_agent)
        return;
    sock = escape_commas(paths->qga_socket);
    argv_push(b, "-chardev");
    if (sock)
        argv_pushf(b, "socket,id=qga0,path=%s,server=on,wait=off", sock);
    else
        argv_push_owned(b, NULL);
    free(sock);
    argv_push(b, "-device");
    argv_pushf(b, "virtio-serial-pci,id=vserial0,bus=%s,addr=0xf",
               qemu_machine_family_of(def->machine) == QEMU_MACHINE_Q35 ? "pcie.0" : "pci.0");
    argv_push(b, "-device");
    argv_push(b, "virtserialport,bus=vserial0.0,chardev=qga0,name=org.qemu.guest_agent.0");
}

/* QEMU drops to the run-as user with setuid() after it has installed its
 * seccomp filter, and elevateprivileges=deny kills it for that (SIGSYS, seen
 * on QEMU 7.2). Once it runs as an unprivileged user it cannot regain
 * privileges anyway, and spawn=deny still forbids exec'ing setuid helpers. */
static void push_isolation(argv_buf *b, const qemu_host *host)
{
    argv_push(b, "-display");
    argv_push(b, "none");
    argv_push(b, "-sandbox");
    argv_pushf(b, "on,obsolete=deny,elevateprivileges=%s,spawn=deny,resourcecontrol=deny",
          host->run_as ? "allow" : "deny");
}

/* password=on: nobody gets in before the agent sets a password over QMP,
 * and the password never appears on a command line. */
static void push_vnc(argv_buf *b, const vm_def *def, const qemu_paths *paths)
{
    if (!def->vnc)
        return;
    argv_push(b, "-vnc");
    argv_pushf(b, strchr(paths->vnc_listen, ':') ? "[%s]:%u,password=on" : "%s:%u,password=on",
               paths->vnc_listen, paths->vnc_port - QEMU_VNC_PORT_BASE);
}

static const char boot_letters[] = {
    [VM_BOOT_DISK] = 'c',
    [VM_BOOT_CDROM] = 'd',
    [VM_BOOT_NETWORK] = 'n',
};

/* -kernel, -initrd and -append take their value whole: no escaping. */
static void push_boot(argv_buf *b, const vm_def *def)
{
    char order[VM_BOOT_MAX + 1];

    if (def->kernel) {
        argv_push(b, "-kernel");
        argv_push(b, def->kernel);
    }
    if (def->initrd) {
        argv_push(b, "-initrd");
        argv_push(b, def->initrd);
    }
    if (def->cmdline) {
        argv_push(b, "-append");
        argv_push(b, def->cmdline);
    }
    if (def->nboot == 0)
        return;
    for (size_t i = 0; i < def->nboot; i++)
        order[i] = boot_letters[def->boot[i]];
    order[def->nboot] = '\0';
    argv_push(b, "-boot");
    argv_pushf(b, "order=%s", order);
}

static void push_run_as(argv_buf *b, const qemu_host *host)
{
    char *user;

    if (!host->run_as)
        return;
    if (host->qemu_version < QEMU_RUN_WITH_USER_VERSION) {
        argv_push(b, "-runas");
        argv_push(b, host->run_as);
        return;
    }
    user = escape_commas(host->run_as);
    argv_push(b, "-run-with");
    if (user)
        argv_pushf(b, "user=%s", user);
    else
        argv_push_owned(b, NULL);
    free(user);
}

int qemu_argv_build(const vm_def *def, const qemu_host *host, const qemu_paths *paths,
                    char ***ret_argv, char *err, size_t errlen)
{
    errbuf e = {err, errlen};
    argv_buf b = {0};
    int r = check_inputs(def, host, paths, &e);

    if (r < 0)
        return r;
    push_identity(&b, def, host);
    push_machine(&b, def, host);
    push_resources(&b, def);
    push_monitor(&b, paths);
    push_serial(&b, paths);
    push_isolation(&b, host);
    push_vnc(&b, def, paths);
    push_boot(&b, def);
    qemu_push_hotplug_ports(&b, def);
    push_guest_agent(&b, def, paths);
    /* Every VM gets a balloon, so its memory can be taken back while it runs. */
    argv_push(&b, "-device");
    argv_push(&b, "virtio-balloon-pci,id=balloon0");
    qemu_push_disks(&b, def, paths);
    qemu_push_nics(&b, def, paths);
    qemu_push_hostdevs(&b, def);
    push_run_as(&b, host);
    argv_push(&b, "-msg");
    argv_push(&b, "timestamp=on");
    if (b.err) {
        qemu_argv_free(b.v);
        errbuf_fail(&e, "out of memory");
        return b.err;
    }
    *ret_argv = b.v;
    return 0;
}

void qemu_argv_free(char **argv)
{
    if (!argv)
        return;
    for (char **p = argv; *p; p++)
        free(*p);
    free(argv);
}
