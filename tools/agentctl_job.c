/* agentctl_job.c: a long job's progress while agentctl waits for its reply.
 *
 * Every negotiated client receives every event, so the job's own are picked
 * by data.vm: master-create runs on its source VM, a clone on the new VM, and
 * the agent runs one such job per VM at a time. The bar lives on stderr and
 * the messages on stdout, often the same terminal, so the bar is wiped before
 * a message is printed and drawn again after it. */
#include "agentctl_job.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <json-c/json.h>

#include "agentctl.h"
#include "agentctl_args.h"
#include "agentctl_conn.h"
#include "agentctl_print.h"

#define BAR_CELLS 30
#define BAR_LINE_MAX 512

typedef struct job_watch {
    const char *vm;
    FILE *messages;       /* stdout, or stderr under --json */
    bool bar;             /* stderr is a terminal */
    ctl_status_line line; /* the bar, on stderr */
    bool cancelling;      /* job-cancel was sent */
} job_watch;

int ctl_job_signal_fd(void)
{
    sigset_t set;
    int fd;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -errno;
    fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

void ctl_job_drain_signals(int fd)
{
    struct signalfd_siginfo si;

    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        ;
}

/* "[#########.....................]  30%  1.2G/4.0G  vm1.sda.qcow2" */
static void bar_text(struct json_object *data, char *line, size_t size)
{
    static const char hashes[] = "##############################";
    static const char dots[] = "..............................";
    int64_t done = ctl_member_count(data, "done"), total = ctl_member_count(data, "total");
    const char *disk = ctl_member_text(data, "disk"), *slash;
    char done_text[CTL_SIZE_TEXT_MAX], total_text[CTL_SIZE_TEXT_MAX], *safe;
    int pct = ctl_percent(done, total), cells = pct * BAR_CELLS / 100;

    _Static_assert(sizeof(hashes) == BAR_CELLS + 1 && sizeof(dots) == BAR_CELLS + 1, "bar cells");
    slash = disk ? strrchr(disk, '/') : NULL;   /* the file's name is enough to tell disks apart */
    safe = ctl_safe_text(slash ? slash + 1 : disk ? disk : "");
    ctl_size_text(done < 0 ? 0 : (uint64_t)done, done_text);
    ctl_size_text(total < 0 ? 0 : (uint64_t)total, total_text);
    snprintf(line, size, "[%.*s%.*s] %3d%%  %s/%s  %s", cells, hashes, BAR_CELLS - cells, dots, pct,
             done_text, total_text, safe ? safe : "");
    free(safe);
}

static void bar_draw(job_watch *w, struct json_object *data)
{
    char line[BAR_LINE_MAX];

    bar_text(data, line, sizeof(line));
    ctl_status_draw(&w->line, line);
}

static void print_message(job_watch *w, const char *message)
{
    ctl_status_clear(&w->line);
    ctl_put_safe(w->messages, message, 0);
    fputc('\n', w->messages);
    fflush(w->messages);
}

static void on_job_event(struct json_object *event, const char *line, void *opaque)
{
    job_watch *w = opaque;
    const char *name = ctl_member_text(event, "event");
    struct json_object *data = json_object_object_get(event, "data");
    const char *vm = ctl_member_text(data, "vm"), *message;

    if (!name || !vm || strcmp(vm, w->vm) != 0)
        return;
    if (strcmp(name, "JOB_FINISHED") == 0) {
        ctl_status_finish(&w->line);
        return;
    }
    if (strcmp(name, "JOB_PROGRESS") != 0)
        return;
    message = ctl_member_text(data, "message");
    if (message)
        print_message(w, message);
    if (w->bar)
        bar_draw(w, data);
}

/* The first Ctrl-C: asks the agent to stop the job. Its reply is passed
 * over; the job's own reply (Cancelled, or its result when it was done
 * already) is what agentctl reports. */
static int send_cancel(ctl_conn *c, job_watch *w, int64_t deadline)
{
    struct json_object *args = ctl_string_args("name", w->vm);
    int64_t id;
    int r;

    ctl_job_drain_signals(c->stop_fd);
    ctl_status_clear(&w->line);
    fputs("agentctl: cancelling the job on ", stderr);
    ctl_put_safe(stderr, w->vm, 0);
    fputs(" and waiting for the agent to remove its files; Ctrl-C again to leave at once\n",
          stderr);
    r = ctl_send_request(c, "job-cancel", args, deadline, &id);
    json_object_put(args);
    w->cancelling = true;
    return r;
}

int ctl_job_call(ctl_conn *c, const ctl_request *req, bool json, int64_t deadline,
                 struct json_object **ret_value)
{
    job_watch w = { .vm = req->job_vm, .messages = json ? stderr : stdout,
                    .bar = isatty(STDERR_FILENO) == 1, .line = { .f = stderr } };
    int64_t id;
    int r = ctl_send_request(c, req->command, req->args, deadline, &id);

    while (r == 0) {
        r = ctl_await_reply(c, id, deadline, on_job_event, &w, ret_value);
        if (r != -EINTR || w.cancelling)
            break;
        r = send_cancel(c, &w, deadline);
    }
    ctl_status_finish(&w.line);
    return r;
}

void ctl_report(ctl_status_line *line, const char *where, const ctl_conn *c, int r)
{
    ctl_status_clear(line);
    fprintf(stderr, "agentctl: %s: ", where);
    ctl_put_safe(stderr, c->err[0] ? c->err : strerror(-r), 1);
    fputc('\n', stderr);
}

int ctl_open_agent(ctl_status_line *line, ctl_conn *c, const char *socket)
{
    int64_t deadline = ctl_deadline_after(CTL_DEFAULT_WAIT_S);
    int r;

    ctl_conn_close(c);
    ctl_conn_init(c);
    if ((r = ctl_connect(c, socket, deadline)) < 0 || (r = ctl_negotiate(c, deadline)) < 0) {
        ctl_report(line, socket, c, r);
        ctl_conn_close(c);
    }
    return r;
}
