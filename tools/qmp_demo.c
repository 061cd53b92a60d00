/* qmp_demo.c: boots the test guest and drives it through the QMP library.
 *
 * The first runnable piece of the project: QEMU is started paused in its own
 * session, the library connects and negotiates, the guest is continued, its
 * readiness line is awaited on the serial log, and then it is powered off by
 * the ACPI power button, as the agent will do. Usage:
 *   qmp-demo GUEST_DIR RUN_DIR [--accel tcg|kvm] [--qemu BINARY] */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>
#include <uv.h>

#include "qmp/qmp.h"

#define READY_LINE "AGENTD-GUEST-READY"
#define READY_TIMEOUT_MS 60000
#define POWEROFF_TIMEOUT_MS 20000

typedef struct demo {
    uv_loop_t *loop;
    qmp_client *qmp;
    uv_timer_t watch;
    uv_signal_t child;
    char log_path[512];
    pid_t pid;
    uint64_t t_start, deadline;
    int phase;  /* 0 booting, 1 ready, 2 powering off, 3 done */
    int exit_code;
} demo;

static void say(demo *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(demo *d, const char *fmt, ...)
{
    va_list ap;
    printf("[%6.2fs] ", (uv_now(d->loop) - d->t_start) / 1000.0);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void finish(demo *d, int code)
{
    d->exit_code = code;
    d->phase = 3;
    uv_timer_stop(&d->watch);
    if (d->qmp) {
        qmp_close(d->qmp);
        d->qmp = NULL;
    }
    uv_signal_stop(&d->child);
    uv_close((uv_handle_t *)&d->watch, NULL);
    uv_close((uv_handle_t *)&d->child, NULL);
}

static pid_t spawn_qemu(const char *qemu, const char *accel, const char *guest_dir,
                        const char *run_dir)
{
    char kernel[512], initrd[512], serial[600], qmp[600];
    snprintf(kernel, sizeof(kernel), "%s/vmlinuz", guest_dir);
    snprintf(initrd, sizeof(initrd), "%s/initrd.img", guest_dir);
    snprintf(serial, sizeof(serial), "file:%s/serial.log", run_dir);
    snprintf(qmp, sizeof(qmp), "unix:%s/qmp.sock,server=on,wait=off", run_dir);
    const char *argv[] = {
        qemu, "-name", "guest=demo", "-S", "-nodefaults", "-no-user-config",
        "-machine", "q35", "-accel", accel, "-m", "256", "-display", "none",
        "-kernel", kernel, "-initrd", initrd,
        "-append", "console=ttyS0 quiet loglevel=1 panic=-1",
        "-serial", serial, "-qmp", qmp, NULL,
    };
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        execvp(qemu, (char *const *)argv);
        fprintf(stderr, "qmp-demo: exec %s: %s\n", qemu, strerror(errno));
        _exit(127);
    }
    return pid;
}

static bool serial_has_ready_line(const char *path)
{
    char buf[65536];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    return strstr(buf, READY_LINE) != NULL;
}

static void on_powerdown_sent(qmp_client *c, const qmp_reply *r, void *opaque)
{
    demo *d = opaque;
    if (r->status < 0) {
        say(d, "system_powerdown failed: %s", r->err_desc);
        finish(d, 1);
        return;
    }
    say(d, "ACPI power button pressed; waiting for the guest to power off");
    d->phase = 2;
    d->deadline = uv_now(d->loop) + POWEROFF_TIMEOUT_MS;
}

static void on_status(qmp_client *c, const qmp_reply *r, void *opaque)
{
    demo *d = opaque;
    struct json_object *s;
    if (r->status == 0 && json_object_object_get_ex(r->ret, "status", &s))
        say(d, "query-status: %s", json_object_get_string(s));
    qmp_execute(c, "system_powerdown", NULL, NULL, on_powerdown_sent, d, NULL);
}

static void on_watch(uv_timer_t *t)
{
    demo *d = t->data;
    if (d->phase == 0 && serial_has_ready_line(d->log_path)) {
        d->phase = 1;
        say(d, "guest ready: it printed %s on its serial console", READY_LINE);
        qmp_execute(d->qmp, "query-status", NULL, NULL, on_status, d, NULL);
    } else if (d->phase != 1 && uv_now(d->loop) > d->deadline) {
        say(d, "timed out (%s); killing QEMU", d->phase == 0 ? "no readiness line" : "no power-off");
        kill(d->pid, SIGKILL);
        d->exit_code = 1;
    }
}

static void on_cont(qmp_client *c, const qmp_reply *r, void *opaque)
{
    demo *d = opaque;
    if (r->status < 0) {
        say(d, "cont failed: %s", r->err_desc);
        kill(d->pid, SIGKILL);
        return;
    }
    say(d, "cont: the guest is running; waiting for it to boot");
    uv_timer_start(&d->watch, on_watch, 50, 50);
}

static void on_ready(qmp_client *c, int status, void *opaque)
{
    demo *d = opaque;
    int maj, min, mic;
    if (status < 0) {
        say(d, "QMP connect failed: %s", qmp_strerror(status));
        kill(d->pid, SIGKILL);
        return;
    }
    if (qmp_qemu_version(c, &maj, &min, &mic) == 0)
        say(d, "QMP ready: QEMU %d.%d.%d, oob %s", maj, min, mic, qmp_oob_enabled(c) ? "on" : "off");
    qmp_execute(c, "cont", NULL, NULL, on_cont, d, NULL);
}

static void on_event(qmp_client *c, const char *event, struct json_object *data,
                     int64_t sec, int64_t usec, void *opaque)
{
    demo *d = opaque;
    say(d, "event %s %s", event, data ? json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN) : "");
}

static void on_disconnect(qmp_client *c, int status, void *opaque)
{
    demo *d = opaque;
    say(d, "QMP connection closed (%s)", qmp_strerror(status));
}

static void on_sigchld(uv_signal_t *s, int signum)
{
    demo *d = s->data;
    int st;
    if (waitpid(d->pid, &st, WNOHANG) != d->pid)
        return;
    if (WIFEXITED(st))
        say(d, "QEMU exited with status %d", WEXITSTATUS(st));
    else
        say(d, "QEMU killed by signal %d", WTERMSIG(st));
    bool clean = d->phase == 2 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (clean)
        say(d, "the guest powered off cleanly");
    finish(d, clean && d->exit_code == 0 ? 0 : 1);
}

int main(int argc, char **argv)
{
    const char *accel = "tcg", *qemu = "qemu-system-x86_64";
    uv_loop_t *loop = uv_default_loop();
    demo d = { .loop = loop };
    char qmp_path[512];

    if (argc < 3) {
        fprintf(stderr, "usage: qmp-demo GUEST_DIR RUN_DIR [--accel tcg|kvm] [--qemu BINARY]\n");
        return 2;
    }
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--accel") == 0)
            accel = argv[i + 1];
        else if (strcmp(argv[i], "--qemu") == 0)
            qemu = argv[i + 1];
    }
    snprintf(d.log_path, sizeof(d.log_path), "%s/serial.log", argv[2]);
    snprintf(qmp_path, sizeof(qmp_path), "%s/qmp.sock", argv[2]);
    unlink(d.log_path);
    d.t_start = uv_now(loop);
    d.deadline = d.t_start + READY_TIMEOUT_MS;

    uv_signal_init(loop, &d.child);
    d.child.data = &d;
    uv_signal_start(&d.child, on_sigchld, SIGCHLD);
    uv_timer_init(loop, &d.watch);
    d.watch.data = &d;
    uv_timer_start(&d.watch, on_watch, 50, 50);

    d.pid = spawn_qemu(qemu, accel, argv[1], argv[2]);
    if (d.pid < 0)
        return 1;
    say(&d, "started %s (pid %d, accel %s), paused with -S", qemu, d.pid, accel);

    qmp_options o = { .path = qmp_path, .on_ready = on_ready, .on_event = on_event,
                      .on_disconnect = on_disconnect, .opaque = &d };
    if (qmp_client_new(loop, &o, &d.qmp) < 0 || qmp_connect(d.qmp) < 0) {
        kill(d.pid, SIGKILL);
        return 1;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    printf("serial console log: %s\n", d.log_path);
    return d.exit_code;
}
