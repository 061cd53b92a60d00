/* agentctl_migrate.c: agentctl migrate, which drives both ends of a live
 * migration (docs/protocol.md, "Live migration"), and the verbs an operator
 * settles one with by hand: migrate-cancel, migrate-finish, migrate-confirm.
 *
 * The order of the steps is what keeps the guest running exactly once: the
 * source resumes its guest only after the destination's QEMU is destroyed,
 * and when agentctl cannot know which side holds the guest (a connection
 * broke at the wrong moment), it touches neither and says how to find out. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "agentctl.h"
#include "agentctl_args.h"
#include "agentctl_conn.h"
#include "agentctl_job.h"
#include "agentctl_print.h"

/* The destination starts QEMU and configures it: slow under TCG. */
#define WAIT_INCOMING_S 120
/* Finishing resumes the guest; destroying escalates quit, SIGTERM, SIGKILL. */
#define WAIT_FINISH_S 60
#define WAIT_DESTROY_S 60
#define STATUS_LINE_MAX 256

typedef struct migration_run {
    const ctl_options *o;
    const char *vm, *dest;
    ctl_conn src, dst;
    int stop_fd;                 /* Ctrl-C, as a signalfd */
    bool bar;                    /* stderr is a terminal */
    ctl_status_line line;
} migration_run;

/* ---- talking to each agent ---------------------------------------------------------- */

static void report(migration_run *m, const char *socket, const ctl_conn *c, int r)
{
    ctl_report(&m->line, socket, c, r);
}

static int open_agent(migration_run *m, ctl_conn *c, const char *socket)
{
    return ctl_open_agent(&m->line, c, socket);
}

/* One request to the destination. Its connection is opened again when it
 * broke: the destination agent may have restarted, and it re-adopts the
 * incoming VM where it was. */
static int call_dest(migration_run *m, const char *command, struct json_object *args, int wait_s,
                     struct json_object **ret_value)
{
    int r;

    for (int attempt = 0;; attempt++) {
        if (m->dst.fd < 0 && (r = open_agent(m, &m->dst, m->dest)) < 0)
            return r;
        r = ctl_call(&m->dst, command, args, ctl_deadline_after(wait_s), NULL, NULL, ret_value);
        if (r == 0 || r == CTL_ERR_REFUSED || r == -ETIMEDOUT || attempt > 0)
            break;
        ctl_conn_close(&m->dst);
        ctl_conn_init(&m->dst);
    }
    if (r < 0)
        report(m, m->dest, &m->dst, r);
    return r;
}

static int call_source(migration_run *m, const char *command, struct json_object *args, int wait_s,
                       struct json_object **ret_value)
{
    int r = ctl_call(&m->src, command, args, ctl_deadline_after(wait_s), NULL, NULL, ret_value);

    if (r < 0)
        report(m, m->o->socket, &m->src, r);
    return r;
}

static struct json_object *vm_args(migration_run *m)
{
    return ctl_string_args("name", m->vm);
}

static bool refused_as(const ctl_conn *c, const char *cls)
{
    size_t n = strlen(cls);

    return strncmp(c->err, cls, n) == 0 && c->err[n] == ':';
}

/* ---- the steps ---------------------------------------------------------------------- */

static int fetch_definition(migration_run *m, struct json_object **ret_def)
{
    struct json_object *args = vm_args(m), *value = NULL, *def;
    int r = call_source(m, "query-vm", args, m->o->wait_s ? m->o->wait_s : CTL_DEFAULT_WAIT_S, &value);

    json_object_put(args);
    if (r < 0)
        return r;
    if (!json_object_object_get_ex(value, "definition", &def) || !json_object_is_type(def, json_type_object)) {
        json_object_put(value);
        fprintf(stderr, "agentctl: %s: query-vm gave no definition\n", m->o->socket);
        return -EPROTO;
    }
    *ret_def = json_object_get(def);
    json_object_put(value);
    return 0;
}

/* The destination's QEMU waits for the stream; its URI for the source. */
static int prepare_dest(migration_run *m, struct json_object *migrate_args, char **ret_uri)
{
    static const char *const shared[] = { "multifd-channels", "multifd-compression" };
    struct json_object *args = json_object_new_object(), *def = NULL, *value = NULL, *v;
    const char *uri;
    int r = fetch_definition(m, &def);

    if (r < 0) {
        json_object_put(args);
        return r;
    }
    json_object_object_add(args, "definition", def);
    for (size_t i = 0; i < sizeof(shared) / sizeof(shared[0]); i++)
        if (json_object_object_get_ex(migrate_args, shared[i], &v))
            json_object_object_add(args, shared[i], json_object_get(v));
    r = call_dest(m, "vm-migrate-incoming", args, m->o->wait_s ? m->o->wait_s : WAIT_INCOMING_S, &value);
    json_object_put(args);
    if (r < 0)
        return r;
    uri = ctl_member_text(value, "uri");
    *ret_uri = uri ? strdup(uri) : NULL;
    json_object_put(value);
    if (!*ret_uri) {
        fprintf(stderr, "agentctl: %s: vm-migrate-incoming gave no uri\n", m->dest);
        return -EPROTO;
    }
    return 0;
}

/* Removes the destination's incoming VM; a VM already gone is as good. */
static int destroy_dest(migration_run *m)
{
    struct json_object *args = vm_args(m), *value = NULL;
    int r = call_dest(m, "vm-destroy", args, WAIT_DESTROY_S, &value);

    json_object_put(args);
    json_object_put(value);
    if (r == CTL_ERR_REFUSED && refused_as(&m->dst, "NotFound"))
        return 0;
    return r;
}

static int confirm_source(migration_run *m, bool completed)
{
    struct json_object *args = vm_args(m), *value = NULL;
    int r;

    json_object_object_add(args, "completed", json_object_new_boolean(completed));
    r = call_source(m, "vm-migrate-confirm", args, WAIT_DESTROY_S, &value);
    json_object_put(args);
    json_object_put(value);
    return r;
}

static bool ctrl_c_pending(migration_run *m)
{
    struct pollfd p = { .fd = m->stop_fd, .events = POLLIN };

    return poll(&p, 1, 0) == 1;
}

/* ---- progress ----------------------------------------------------------------------- */

/* "vm1  42%  108M/256M  940 Mb/s  downtime ~30 ms  pass 1" */
static void draw_progress(migration_run *m, struct json_object *data)
{
    int64_t total = ctl_member_count(data, "total"), remaining = ctl_member_count(data, "remaining");
    int64_t done = total >= 0 && remaining >= 0 ? total - remaining : -1;
    struct json_object *mbps = json_object_object_get(data, "mbps");
    char line[STATUS_LINE_MAX], done_text[CTL_SIZE_TEXT_MAX], total_text[CTL_SIZE_TEXT_MAX];
    char *vm = ctl_safe_text(m->vm);

    ctl_size_text(done < 0 ? 0 : (uint64_t)done, done_text);
    ctl_size_text(total < 0 ? 0 : (uint64_t)total, total_text);
    snprintf(line, sizeof(line), "%s %3d%%  %s/%s  %.0f Mb/s  downtime ~%lld ms  pass %lld", vm ? vm : "?",
             ctl_percent(done, total), done_text, total_text, mbps ? json_object_get_double(mbps) : 0.0,
             (long long)ctl_member_count(data, "expected-downtime-ms"),
             (long long)ctl_member_count(data, "passes"));
    free(vm);
    ctl_status_draw(&m->line, line);
}

static void on_source_event(struct json_object *event, const char *line, void *opaque)
{
    migration_run *m = opaque;
    const char *name = ctl_member_text(event, "event");
    struct json_object *data = json_object_object_get(event, "data");
    const char *vm = ctl_member_text(data, "vm");

    if (m->bar && name && vm && strcmp(name, "VM_MIGRATION_PROGRESS") == 0 && strcmp(vm, m->vm) == 0)
        draw_progress(m, data);
}

/* vm-migrate, with progress; the first Ctrl-C cancels it, a second one
 * leaves (the agents settle it on their own: the source resumes its guest
 * and the destination drops its QEMU when the stream breaks). */
static int send_migrate(migration_run *m, struct json_object *args, struct json_object **ret_value)
{
    struct json_object *cancel;
    bool cancelling = false;
    int64_t id, cancel_id;
    int r = ctl_send_request(&m->src, "vm-migrate", args, CTL_FOREVER, &id);

    while (r == 0 || r == -EINTR) {
        r = ctl_await_reply(&m->src, id, CTL_FOREVER, on_source_event, m, ret_value);
        if (r != -EINTR)
            break;
        ctl_job_drain_signals(m->stop_fd);
        ctl_status_clear(&m->line);
        if (cancelling) {
            fputs("agentctl: left while the migration is cancelled; the source resumes the guest\n", stderr);
            return -EINTR;
        }
        fputs("agentctl: cancelling the migration; Ctrl-C again to leave at once\n", stderr);
        cancel = vm_args(m);
        r = ctl_send_request(&m->src, "vm-migrate-cancel", cancel, ctl_deadline_after(CTL_DEFAULT_WAIT_S),
                             &cancel_id);
        json_object_put(cancel);
        cancelling = true;
    }
    ctl_status_finish(&m->line);
    if (r < 0)
        report(m, m->o->socket, &m->src, r);
    return r;
}

static void print_unknown(migration_run *m, const char *what)
{
    const char *src = m->o->socket, *dst = m->dest, *vm = m->vm;

    fprintf(stderr,
            "agentctl: %s; agentctl cannot tell which host holds the guest and touched neither.\n"
            "  Ask both: agentctl -s %s info %s; agentctl -s %s info %s\n"
            "  Source 'running': the guest runs there; agentctl -s %s destroy %s\n"
            "  Source 'migrated', destination 'incoming': agentctl -s %s migrate-finish %s,\n"
            "    then agentctl -s %s migrate-confirm %s --completed; if the finish is refused:\n"
            "    agentctl -s %s destroy %s, then agentctl -s %s migrate-confirm %s --failed\n"
            "  Destination 'running': agentctl -s %s migrate-confirm %s --completed\n"
            "  Source 'migrating': wait and ask again\n",
            what, src, vm, dst, vm, dst, vm, dst, vm, src, vm, dst, vm, src, vm, src, vm);
}

static void print_result(migration_run *m, struct json_object *result, const char *uri)
{
    char sent[CTL_SIZE_TEXT_MAX];

    if (m->o->json) {
        json_object_object_add(result, "destination", json_object_new_string(m->dest));
        json_object_object_add(result, "uri", json_object_new_string(uri));
        ctl_print_json(stdout, result);
        return;
    }
    ctl_member_size_text(result, "transferred", sent);
    ctl_put_safe(stdout, m->vm, 0);
    printf(" migrated to %s: %lld ms in all, %lld ms downtime, %s sent\n", m->dest,
           (long long)ctl_member_count(result, "total-time-ms"), (long long)ctl_member_count(result, "downtime-ms"),
           sent);
}

/* The destination's state of the VM after it refused to finish: a finish
 * whose reply was lost and that was sent again is refused (the VM is no
 * longer incoming) although the guest runs there. NULL when unknown. */
static char *dest_state(migration_run *m)
{
    struct json_object *args = vm_args(m), *value = NULL, *runtime;
    int r = call_dest(m, "query-vm", args, CTL_DEFAULT_WAIT_S, &value);
    const char *state;
    char *copy = NULL;

    json_object_put(args);
    if (r == CTL_ERR_REFUSED && refused_as(&m->dst, "NotFound"))
        return strdup("gone");
    if (r == 0 && json_object_object_get_ex(value, "runtime", &runtime) &&
        (state = ctl_member_text(runtime, "state")))
        copy = strdup(state);
    json_object_put(value);
    return copy;
}

/* The stream completed: the destination resumes the guest, then the source
 * lets go. When the destination refuses, its QEMU is destroyed before the
 * source resumes, so the guest never runs twice. */
static int hand_over(migration_run *m)
{
    struct json_object *args = vm_args(m), *value = NULL;
    int r = call_dest(m, "vm-migrate-finish", args, WAIT_FINISH_S, &value);
    char *state = r == CTL_ERR_REFUSED ? dest_state(m) : NULL;
    bool waiting = state && (strcmp(state, "incoming") == 0 || strcmp(state, "gone") == 0);

    json_object_put(args);
    json_object_put(value);
    if (r == CTL_ERR_REFUSED && state && !waiting)
        r = 0;   /* the guest runs there: an earlier finish took */
    free(state);
    if (r == 0) {
        if (confirm_source(m, true) == 0)
            return CTL_EXIT_OK;
        fprintf(stderr, "agentctl: the guest runs on %s; the source keeps its paused QEMU until\n"
                        "  agentctl -s %s migrate-confirm %s --completed\n", m->dest, m->o->socket, m->vm);
        return CTL_EXIT_REFUSED;
    }
    if (!waiting) {
        print_unknown(m, "the destination did not finish the migration");
        return CTL_EXIT_CONNECT;
    }
    if (destroy_dest(m) < 0) {
        print_unknown(m, "the destination refused to finish and could not be destroyed");
        return CTL_EXIT_CONNECT;
    }
    if (confirm_source(m, false) < 0) {
        print_unknown(m, "the source did not resume the guest");
        return CTL_EXIT_CONNECT;
    }
    fputs("agentctl: the guest runs on the source again\n", stderr);
    return CTL_EXIT_REFUSED;
}

/* The migration failed or was cancelled: the source's guest runs again;
 * the destination's waiting QEMU goes. */
static int undo_dest(migration_run *m, int r)
{
    if (r == -EINTR)
        return CTL_EXIT_INTERRUPTED;
    if (r != CTL_ERR_REFUSED) {
        print_unknown(m, "the source agent did not answer vm-migrate");
        return CTL_EXIT_CONNECT;
    }
    if (destroy_dest(m) < 0)
        fprintf(stderr, "agentctl: remove the waiting VM yourself: agentctl -s %s destroy %s\n", m->dest, m->vm);
    return CTL_EXIT_REFUSED;
}

static int migrate_steps(migration_run *m, struct json_object *args)
{
    struct json_object *result = NULL;
    char *uri = NULL;
    int r, code;

    if (open_agent(m, &m->src, m->o->socket) < 0 || open_agent(m, &m->dst, m->dest) < 0)
        return CTL_EXIT_CONNECT;
    if ((r = prepare_dest(m, args, &uri)) < 0)
        return r == CTL_ERR_REFUSED ? CTL_EXIT_REFUSED : CTL_EXIT_CONNECT;
    /* A Ctrl-C while the destination prepared waited until now, so that the
     * VM it made is known and can be removed. */
    if (ctrl_c_pending(m)) {
        fputs("agentctl: interrupted\n", stderr);
        destroy_dest(m);
        free(uri);
        return CTL_EXIT_INTERRUPTED;
    }
    m->src.stop_fd = m->stop_fd;
    json_object_object_add(args, "uri", json_object_new_string(uri));
    r = send_migrate(m, args, &result);
    m->src.stop_fd = -1;
    if (r < 0)
        code = undo_dest(m, r);
    else if ((code = hand_over(m)) == CTL_EXIT_OK)
        print_result(m, result, uri);
    json_object_put(result);
    free(uri);
    return code;
}

static int run_migrate(const ctl_options *o, const ctl_request *req)
{
    migration_run m = { .o = o, .vm = req->vm, .dest = req->peer, .bar = isatty(STDERR_FILENO) == 1,
                        .line = { .f = stderr } };
    int code;

    ctl_conn_init(&m.src);
    ctl_conn_init(&m.dst);
    if ((m.stop_fd = ctl_job_signal_fd()) < 0) {
        fprintf(stderr, "agentctl: signalfd: %s\n", strerror(-m.stop_fd));
        return CTL_EXIT_CONNECT;
    }
    code = migrate_steps(&m, req->args);   /* it adds the uri */
    ctl_conn_close(&m.src);
    ctl_conn_close(&m.dst);
    close(m.stop_fd);
    return code;
}

/* ---- parsing ------------------------------------------------------------------------ */

static int parse_migrate(int argc, char **argv, ctl_request *req)
{
    static const ctl_flag flags[] = {
        { "downtime-limit", "downtime-limit", CTL_FLAG_SCALAR },
        { "bandwidth", "bandwidth", CTL_FLAG_SCALAR },
        { "no-auto-converge", "auto-converge", CTL_FLAG_FALSE },
        { "multifd", "multifd-channels", CTL_FLAG_SCALAR },
        { "compression", "multifd-compression", CTL_FLAG_STRING },
        { "stall-timeout", "stall-timeout", CTL_FLAG_SCALAR },
        { "time-limit", "timeout", CTL_FLAG_SCALAR },
    };
    struct json_object *args = json_object_new_object();
    int r = ctl_flag_args(argc, argv, flags, sizeof(flags) / sizeof(flags[0]), args);

    if (r == 0)
        r = ctl_positionals(argc, argv, 2, 2);
    if (r != 0) {
        json_object_put(args);
        return r;
    }
    req->vm = argv[optind];
    req->peer = argv[optind + 1];
    json_object_object_add(args, "name", json_object_new_string(req->vm));
    req->args = args;
    return 0;
}

/* NAME --completed|--failed: exactly one. */
int ctl_parse_confirm(int argc, char **argv, ctl_request *req)
{
    static const struct option opts[] = {
        { "completed", no_argument, NULL, 'c' },
        { "failed", no_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int ch, r, given = 0;
    bool completed = false;

    while ((ch = ctl_getopt(argc, argv, opts)) != -1) {
        if (ch != 'c' && ch != 'f')
            return ch == 'h' ? CTL_HELP : -EINVAL;
        completed = ch == 'c';
        given++;
    }
    if (given != 1)
        return ctl_usage_error(argv[0], "give one of --completed and --failed");
    if ((r = ctl_positionals(argc, argv, 1, 1)) != 0)
        return r;
    req->vm = argv[optind];
    req->args = ctl_string_args("name", req->vm);
    json_object_object_add(req->args, "completed", json_object_new_boolean(completed));
    req->wait_s = WAIT_DESTROY_S;
    return 0;
}

static int parse_finish(int argc, char **argv, ctl_request *req)
{
    req->wait_s = WAIT_FINISH_S;
    return ctl_parse_name(argc, argv, req);
}

static const ctl_verb migrate_verbs[] = {
    { "migrate", "vm-migrate", NULL,
      "NAME DEST [--downtime-limit MS] [--bandwidth MIBS] [--no-auto-converge] "
      "[--multifd CHANNELS] [--compression none|zlib|zstd] [--stall-timeout SECONDS] "
      "[--time-limit SECONDS]",
      "Live-migrates a running VM to the agent at socket DEST (xCAT's rmigrate):\n"
      "DEST prepares a waiting QEMU, this agent sends the guest's state with\n"
      "progress on a terminal, DEST resumes the guest, this agent lets go.\n"
      "--bandwidth 0 (the default) is unlimited; --downtime-limit defaults to\n"
      "300 ms. Ctrl-C cancels and the guest keeps running here. When a step\n"
      "fails, the guest runs on exactly one host, and agentctl says which; when\n"
      "it cannot know (an agent stopped answering), it says how to ask both\n"
      "(exit status 3).\n",
      parse_migrate, NULL, run_migrate },
    { "migrate-cancel", "vm-migrate-cancel", "migration cancelled", "NAME",
      "Cancels the VM's outgoing migration (on the source); the guest keeps running here.\n",
      ctl_parse_name, ctl_print_done, NULL },
    { "migrate-finish", "vm-migrate-finish", "runs here now", "NAME",
      "On the destination: resumes a guest whose migration stream completed; the VM\n"
      "is this agent's from then on. For settling a migration by hand.\n",
      parse_finish, ctl_print_done, NULL },
    { "migrate-confirm", "vm-migrate-confirm", "migration settled", "NAME --completed|--failed",
      "On the source, after a migration stream completed: --completed once the\n"
      "destination runs the guest (QEMU here quits and the VM is removed here, not\n"
      "its disks); --failed once the destination's VM is destroyed (the guest\n"
      "resumes here).\n",
      ctl_parse_confirm, ctl_print_done, NULL },
};

const ctl_verb *ctl_migrate_verbs(size_t *ret_n)
{
    *ret_n = sizeof(migrate_verbs) / sizeof(migrate_verbs[0]);
    return migrate_verbs;
}
