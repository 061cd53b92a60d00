/* agentctl_verbs.c: each verb's arguments, protocol command and output.
 *
 * The table at the end is the CLI: the usage text and --help are generated
 * from it, and main() only finds a verb and runs it. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "agentctl.h"
#include "agentctl_args.h"
#include "agentctl_print.h"

/* Starting covers launching QEMU and configuring it over QMP, slow under TCG. */
#define WAIT_START_S 90
/* Destroying escalates from QMP quit to SIGTERM to SIGKILL, each with a timeout. */
#define WAIT_DESTROY_S 60
/* Without --timeout the agent's own shutdown timeout applies, which agentctl
 * cannot know; this covers a configured timeout of up to 300 s. */
#define WAIT_SHUTDOWN_S 330
/* Past a shutdown timeout, a forced shutdown still has to destroy the VM. */
#define WAIT_SHUTDOWN_EXTRA_S 30
#define SHUTDOWN_TIMEOUT_MAX 86400

static struct json_object *name_args(const char *name)
{
    return ctl_string_args("name", name);
}

int ctl_parse_nothing(int argc, char **argv, ctl_request *req)
{
    int r = ctl_no_options(argc, argv);

    return r ? r : ctl_positionals(argc, argv, 0, 0);
}

int ctl_parse_name(int argc, char **argv, ctl_request *req)
{
    int r = ctl_no_options(argc, argv);

    if (r == 0)
        r = ctl_positionals(argc, argv, 1, 1);
    if (r != 0)
        return r;
    req->vm = argv[optind];
    req->args = name_args(req->vm);
    return 0;
}

static int parse_destroy(int argc, char **argv, ctl_request *req)
{
    req->wait_s = WAIT_DESTROY_S;
    return ctl_parse_name(argc, argv, req);
}

/* undefine NAME [--purge|--keep-disks] [--force]: the protocol's four members,
 * always all sent, as documented. */
static int parse_undefine(int argc, char **argv, ctl_request *req)
{
    static const ctl_flag flags[] = {
        { "purge", "purge", CTL_FLAG_TRUE },
        { "force", "force", CTL_FLAG_TRUE },
        { "keep-disks", "keep-disks", CTL_FLAG_TRUE },
    };
    struct json_object *args = json_object_new_object();
    int r;

    json_object_object_add(args, "purge", json_object_new_boolean(false));
    json_object_object_add(args, "force", json_object_new_boolean(false));
    json_object_object_add(args, "keep-disks", json_object_new_boolean(false));
    r = ctl_flag_args(argc, argv, flags, sizeof(flags) / sizeof(flags[0]), args);
    if (r == 0)
        r = ctl_positionals(argc, argv, 1, 1);
    if (r == 0 && ctl_member_true(args, "purge") && ctl_member_true(args, "keep-disks"))
        r = ctl_usage_error(argv[0], "--purge deletes the disks that --keep-disks keeps; give one");
    if (r != 0) {
        json_object_put(args);
        return r;
    }
    req->vm = argv[optind];
    req->args = args;
    json_object_object_add(args, "name", json_object_new_string(req->vm));
    /* --force destroys a running VM first. */
    if (ctl_member_true(args, "force"))
        req->wait_s = WAIT_DESTROY_S;
    return 0;
}

/* define FILE|- or define --name N [flags]: one or the other. */
static int parse_define(int argc, char **argv, ctl_request *req)
{
    struct json_object *def = NULL, *name;
    int r = ctl_definition_flags(argc, argv, false, &def);

    if (r == 0 && json_object_object_length(def) > 0) {
        r = ctl_positionals(argc, argv, 0, 0);
        if (r == 0 && !json_object_object_get_ex(def, "name", NULL))
            r = ctl_usage_error(argv[0], "--name is required when the definition is given by flags");
    } else if (r == 0) {
        json_object_put(def);
        def = NULL;
        r = ctl_positionals(argc, argv, 1, 1);
        if (r == 0)
            r = ctl_read_json_file(argv[0], argv[optind], &def);
    }
    if (r != 0) {
        json_object_put(def);
        return r;
    }
    req->args = json_object_new_object();
    json_object_object_add(req->args, "definition", def);
    if (json_object_object_get_ex(def, "name", &name))
        req->vm = json_object_get_string(name);
    return 0;
}

static int parse_update(int argc, char **argv, ctl_request *req)
{
    struct json_object *changes = NULL;
    int r = ctl_definition_flags(argc, argv, true, &changes);

    if (r == 0)
        r = ctl_positionals(argc, argv, 1, 1);
    if (r == 0 && json_object_object_length(changes) == 0)
        r = ctl_usage_error(argv[0], "nothing to change; see agentctl update --help");
    if (r != 0) {
        json_object_put(changes);
        return r;
    }
    req->vm = argv[optind];
    req->args = name_args(req->vm);
    json_object_object_add(req->args, "changes", changes);
    return 0;
}

static int parse_start(int argc, char **argv, ctl_request *req)
{
    static const struct option opts[] = {
        { "paused", no_argument, NULL, 'p' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int ch, r;

    while ((ch = ctl_getopt(argc, argv, opts)) != -1) {
        if (ch != 'p')
            return ch == 'h' ? CTL_HELP : -EINVAL;
        req->paused = true;
    }
    r = ctl_positionals(argc, argv, 1, 1);
    if (r != 0)
        return r;
    req->vm = argv[optind];
    req->args = name_args(req->vm);
    json_object_object_add(req->args, "paused", json_object_new_boolean(req->paused));
    req->wait_s = WAIT_START_S;
    return 0;
}

static int parse_shutdown(int argc, char **argv, ctl_request *req)
{
    static const struct option opts[] = {
        { "timeout", required_argument, NULL, 't' },
        { "force", no_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    uint64_t timeout = 0;
    bool has_timeout = false, force = false;
    int ch, r;

    while ((ch = ctl_getopt(argc, argv, opts)) != -1) {
        if (ch == 't' && (ctl_parse_count(optarg, SHUTDOWN_TIMEOUT_MAX, &timeout) < 0 || timeout == 0))
            return ctl_usage_error(argv[0], "--timeout wants seconds (1 to %d), not '%s'",
                                   SHUTDOWN_TIMEOUT_MAX, optarg);
        else if (ch == 't')
            has_timeout = true;
        else if (ch == 'f')
            force = true;
        else
            return ch == 'h' ? CTL_HELP : -EINVAL;
    }
    r = ctl_positionals(argc, argv, 1, 1);
    if (r != 0)
        return r;
    req->vm = argv[optind];
    req->args = name_args(req->vm);
    if (has_timeout)
        json_object_object_add(req->args, "timeout", json_object_new_int64((int64_t)timeout));
    json_object_object_add(req->args, "force", json_object_new_boolean(force));
    req->wait_s = has_timeout ? (int)timeout + WAIT_SHUTDOWN_EXTRA_S : WAIT_SHUTDOWN_S;
    if (req->wait_s < CTL_DEFAULT_WAIT_S)
        req->wait_s = CTL_DEFAULT_WAIT_S;
    return 0;
}

static int parse_events(int argc, char **argv, ctl_request *req)
{
    static const struct option opts[] = {
        { "after", required_argument, NULL, 'a' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    uint64_t seq;
    int ch;

    while ((ch = ctl_getopt(argc, argv, opts)) != -1) {
        if (ch == 'a' && ctl_parse_count(optarg, INT64_MAX, &seq) < 0)
            return ctl_usage_error(argv[0], "--after wants a sequence number, not '%s'", optarg);
        else if (ch == 'a')
            req->after = (int64_t)seq;
        else
            return ch == 'h' ? CTL_HELP : -EINVAL;
    }
    if (req->after >= 0) {
        req->args = json_object_new_object();
        json_object_object_add(req->args, "after", json_object_new_int64(req->after));
    }
    return ctl_positionals(argc, argv, 0, 0);
}

static int parse_qmp(int argc, char **argv, ctl_request *req)
{
    struct json_object *arguments = NULL;
    int r = ctl_no_options(argc, argv);

    if (r == 0)
        r = ctl_positionals(argc, argv, 2, 3);
    if (r == 0 && argc - optind == 3)
        r = ctl_parse_json_arg(argv[0], "JSON-ARGS", argv[optind + 2], &arguments);
    if (r != 0)
        return r;
    req->vm = argv[optind];
    req->args = name_args(req->vm);
    json_object_object_add(req->args, "command", json_object_new_string(argv[optind + 1]));
    if (arguments)
        json_object_object_add(req->args, "arguments", arguments);
    return 0;
}

/* sriov PF [NUMVFS]: lists the VFs, or sets their count first. */
static int parse_sriov(int argc, char **argv, ctl_request *req)
{
    int r = ctl_no_options(argc, argv);
    char *end;
    long n;

    if (r == 0)
        r = ctl_positionals(argc, argv, 1, 2);
    if (r != 0)
        return r;
    req->vm = argv[optind];
    req->args = json_object_new_object();
    json_object_object_add(req->args, "pf", json_object_new_string(argv[optind]));
    if (argc - optind == 2) {
        n = strtol(argv[optind + 1], &end, 10);
        if (*end || end == argv[optind + 1] || n < 0 || n > 65535) {
            fprintf(stderr, "agentctl sriov: NUMVFS must be a whole number, not '%s'\n", argv[optind + 1]);
            return -EINVAL;
        }
        req->command = "host-sriov-set";
        json_object_object_add(req->args, "numvfs", json_object_new_int((int)n));
    }
    return 0;
}

/* PF NETDEV NUMVFS, then one line per VF: INDEX ADDRESS DRIVER. */
static void print_sriov(const ctl_request *req, struct json_object *value)
{
    struct json_object *vfs = NULL;

    printf("%s %s %s VFs\n", ctl_member_text(value, "pf"), ctl_member_text(value, "netdev"),
           ctl_member_text(value, "numvfs"));
    json_object_object_get_ex(value, "vfs", &vfs);
    for (size_t i = 0; vfs && i < json_object_array_length(vfs); i++) {
        struct json_object *vf = json_object_array_get_idx(vfs, i);
        printf("  vf %s %s %s\n", ctl_member_text(vf, "index"), ctl_member_text(vf, "host"),
               *ctl_member_text(vf, "driver") ? ctl_member_text(vf, "driver") : "-");
    }
}

void ctl_print_done(const ctl_request *req, struct json_object *value)
{
    ctl_print_name_line(req->vm, req->verb->done);
}

/* One "label: path" line for each path of a purge, with why a disk was kept. */
static void print_purged_disk(const char *label, struct json_object *disk)
{
    const char *path = json_object_is_type(disk, json_type_string) ? json_object_get_string(disk)
                                                                    : ctl_member_text(disk, "path");
    const char *error = ctl_member_text(disk, "error");

    printf("%-9s", label);
    ctl_put_safe(stdout, path ? path : "?", 0);
    if (error) {
        fputs(": ", stdout);
        ctl_put_safe(stdout, error, 0);
    }
    putchar('\n');
}

static size_t print_purged(struct json_object *value, const char *key, const char *label)
{
    struct json_object *list;
    size_t n = 0;

    if (json_object_object_get_ex(value, key, &list) && json_object_is_type(list, json_type_array))
        n = json_object_array_length(list);
    for (size_t i = 0; i < n; i++)
        print_purged_disk(label, json_object_array_get_idx(list, i));
    return n;
}

static void print_undefine(const ctl_request *req, struct json_object *value)
{
    ctl_print_name_line(req->vm, "undefined");
    if (!ctl_member_true(req->args, "purge"))
        return;
    if (print_purged(value, "deleted", "deleted:") + print_purged(value, "kept", "kept:") == 0)
        printf("no disks deleted\n");
}

static void print_start(const ctl_request *req, struct json_object *value)
{
    ctl_print_name_line(req->vm, req->paused ? "started, paused" : "started");
}

static void print_shutdown(const ctl_request *req, struct json_object *value)
{
    if (ctl_member_true(value, "forced"))
        ctl_print_name_line(req->vm, "forced off: the guest did not power off in time");
    else
        ctl_print_name_line(req->vm, "shut down");
}

static void print_define(const ctl_request *req, struct json_object *value)
{
    const char *name = ctl_member_text(value, "name"), *uuid = ctl_member_text(value, "uuid");

    ctl_print_name_line(name ? name : req->vm, ctl_member_true(value, "created") ? "defined" : "redefined");
    if (uuid) {
        printf("uuid: ");
        ctl_put_safe(stdout, uuid, 0);
        putchar('\n');
    }
}

static void print_update(const ctl_request *req, struct json_object *value)
{
    struct json_object *fields;
    char *text;

    ctl_print_name_line(req->vm, "updated");
    if (!json_object_object_get_ex(value, "restart-needed", &fields) ||
        !json_object_is_type(fields, json_type_array) || json_object_array_length(fields) == 0)
        return;
    text = ctl_value_text(fields);
    printf("restart needed: ");
    ctl_put_safe(stdout, text ? text : "?", 0);
    putchar('\n');
    free(text);
}

static void add_vm_row(ctl_table *t, struct json_object *vm)
{
    char *autostart = ctl_value_text(json_object_object_get(vm, "autostart"));
    const char *cells[] = {
        ctl_member_text(vm, "name"), ctl_member_text(vm, "state"), ctl_member_text(vm, "reason"),
        ctl_member_text(vm, "pid"), ctl_member_text(vm, "vcpus"), ctl_member_text(vm, "memory-mib"),
        json_object_object_get(vm, "autostart") ? autostart : NULL,
    };

    ctl_table_add(t, cells);
    free(autostart);
}

static void print_list(const ctl_request *req, struct json_object *value)
{
    static const char *const header[] = { "NAME", "STATE", "REASON", "PID", "VCPUS",
                                          "MEMORY(MiB)", "AUTOSTART" };

    ctl_print_rows(header, 7, value, add_vm_row);
}

static void print_info(const ctl_request *req, struct json_object *value)
{
    static const char *const unwrap[] = { "definition", "runtime", NULL };

    ctl_print_fields(stdout, value, unwrap);
}

/* The text of a member found by a dotted path, or "?" when it is missing. */
static const char *path_text(struct json_object *obj, const char *path)
{
    char key[64];
    const char *dot;

    while ((dot = strchr(path, '.')) && (size_t)(dot - path) < sizeof(key)) {
        snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
        obj = json_object_object_get(obj, key);
        path = dot + 1;
    }
    obj = json_object_object_get(obj, path);
    return obj ? json_object_get_string(obj) : "?";
}

static void add_row(ctl_table *t, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_row(ctl_table *t, const char *key, const char *fmt, ...)
{
    char *text = NULL;
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(&text, fmt, ap) < 0)
        text = NULL;
    va_end(ap);
    ctl_table_add(t, (const char *const[]){ key, text });
    free(text);
}

/* "br0 (mtu 1500, up), br1 (mtu 9000, down)", or "none". */
static void add_bridges_row(ctl_table *t, struct json_object *v)
{
    struct json_object *arr = NULL;
    char text[1024] = "";
    size_t at = 0;

    json_object_object_get_ex(v, "bridges", &arr);
    for (size_t i = 0; json_object_is_type(arr, json_type_array) && i < json_object_array_length(arr) &&
                       at < sizeof(text); i++) {
        struct json_object *b = json_object_array_get_idx(arr, i);
        at += (size_t)snprintf(text + at, sizeof(text) - at, "%s%s (mtu %s, %s)", i ? ", " : "",
                               path_text(b, "name"), path_text(b, "mtu"), ctl_member_true(b, "up") ? "up" : "down");
    }
    add_row(t, "bridges:", "%s", text[0] ? text : "none");
}

static void print_host(const ctl_request *req, struct json_object *v)
{
    ctl_table *t = ctl_table_new(2);

    if (!t)
        return;
    add_row(t, "hostname:", "%s", path_text(v, "hostname"));
    add_row(t, "cpus:", "%s", path_text(v, "cpus"));
    add_row(t, "memory:", "%s MiB total, %s MiB available", path_text(v, "memory-mib"),
            path_text(v, "memory-available-mib"));
    add_row(t, "accelerator:", "%s (kvm %savailable)", path_text(v, "accel"),
            ctl_member_true(v, "kvm-available") ? "" : "not ");
    add_row(t, "vms:", "%s defined, %s running", path_text(v, "vms.defined"),
            path_text(v, "vms.running"));
    add_row(t, "allocated:", "%s vcpus, %s MiB (VMs with a QEMU process)",
            path_text(v, "allocated.vcpus"), path_text(v, "allocated.memory-mib"));
    add_row(t, "defined:", "%s vcpus, %s MiB (all VMs)", path_text(v, "defined.vcpus"),
            path_text(v, "defined.memory-mib"));
    add_bridges_row(t, v);
    ctl_table_print(t, stdout);
    ctl_table_free(t);
}

static void print_version(const ctl_request *req, struct json_object *v)
{
    ctl_table *t = ctl_table_new(2);

    if (!t)
        return;
    add_row(t, "agentd:", "%s.%s.%s", path_text(v, "agentd.major"), path_text(v, "agentd.minor"),
            path_text(v, "agentd.micro"));
    add_row(t, "package:", "%s", path_text(v, "package"));
    add_row(t, "qemu:", "%s %s", path_text(v, "qemu.binary"), path_text(v, "qemu.version"));
    ctl_table_print(t, stdout);
    ctl_table_free(t);
}

static void print_value(const ctl_request *req, struct json_object *value)
{
    ctl_print_json(stdout, value);
}

#define DEFINITION_FLAGS                                                                      \
    "  --vcpus N|S:C|S:C:T   --max-vcpus N\n"                                                 \
    "  --memory SIZE         --max-memory SIZE   (MiB, or 512M, 2G, 1T)\n"                    \
    "  --machine TYPE        --cpu-model MODEL   --accel kvm|tcg\n"                           \
    "  --kernel PATH --initrd PATH --cmdline TEXT   (direct kernel boot)\n"                  \
    "  --boot network,disk   --serial SPEED\n"                                                \
    "  --autostart | --no-autostart   --on-crash destroy|restart|preserve\n"                  \
    "  --label KEY=VALUE (repeatable)   --clear-labels\n"                                      \
    "Values are passed to the agent as given; it checks them and names the field it\n"        \
    "refuses. Numbers made only of digits are sent as numbers, anything else as text.\n"

static const ctl_verb verbs[] = {
    { "list", "query-vms", NULL, "",
      "Lists the VMs: NAME STATE REASON PID VCPUS MEMORY(MiB) AUTOSTART.\n",
      ctl_parse_nothing, print_list, NULL },
    { "info", "query-vm", NULL, "NAME",
      "Shows a VM's definition and its runtime state as key: value lines.\n",
      ctl_parse_name, print_info, NULL },
    { "define", "vm-define", NULL, "FILE|-\n--name NAME [FLAGS]",
      "Creates a VM, or replaces the definition of a stopped one, from a JSON file\n"
      "(- reads standard input) or from flags:\n"
      "  --name NAME   --uuid UUID\n" DEFINITION_FLAGS,
      parse_define, print_define, NULL },
    { "update", "vm-update", NULL, "NAME FLAGS",
      "Changes fields of a definition; the others keep their value. --label replaces\n"
      "all labels. A VM with a QEMU process takes the change at its next start; the\n"
      "fields for which that applies are printed. Flags:\n" DEFINITION_FLAGS,
      parse_update, print_update, NULL },
    { "undefine", "vm-undefine", "undefined", "NAME [--purge|--keep-disks] [--force]",
      "Removes a stopped or crashed VM; --force destroys a running one first (xCAT's\n"
      "rmvm -f). Its logs are kept, and its disks unless --purge (rmvm -p): then each\n"
      "disk file in a dir or nfs pool is deleted (never an ISO, a read-only disk, a phy\n"
      "device, or the backing file of another image), and the files deleted and kept\n"
      "are printed.\n",
      parse_undefine, print_undefine, NULL },
    { "start", "vm-start", NULL, "NAME [--paused]",
      "Starts a VM and waits until it runs (or is paused, with --paused).\n",
      parse_start, print_start, NULL },
    { "shutdown", "vm-shutdown", NULL, "NAME [--timeout SECONDS] [--force]",
      "Presses the ACPI power button and waits for the guest to power off. After\n"
      "--timeout seconds (the agent's default without it), --force destroys the VM;\n"
      "without --force the VM is left running and the command fails with Timeout.\n",
      parse_shutdown, print_shutdown, NULL },
    { "destroy", "vm-destroy", "destroyed", "NAME",
      "Ends the VM's QEMU at once: QMP quit, then SIGTERM, then SIGKILL.\n",
      parse_destroy, ctl_print_done, NULL },
    { "reset", "vm-reset", "reset", "NAME", "Hard-resets the VM (system_reset).\n",
      ctl_parse_name, ctl_print_done, NULL },
    { "suspend", "vm-suspend", "suspended", "NAME", "Pauses the VM's vCPUs.\n",
      ctl_parse_name, ctl_print_done, NULL },
    { "resume", "vm-resume", "resumed", "NAME", "Continues a paused VM's vCPUs.\n",
      ctl_parse_name, ctl_print_done, NULL },
    { "events", "query-events", NULL, "[--after SEQ]",
      "Prints the agent's events as they happen, one a line: SEQ TIME EVENT key=value...\n"
      "(TIME in UTC), until interrupted. --after first prints the kept events with a\n"
      "larger sequence number. With --json, each event is printed as received.\n",
      parse_events, NULL, NULL },
    { "host", "query-host", NULL, "",
      "Shows the host's CPUs, memory and accelerator, and what its VMs are given.\n",
      ctl_parse_nothing, print_host, NULL },
    { "sriov", "host-sriov", NULL, "PF [NUMVFS]",
      "Lists an SR-IOV physical function's virtual functions (PF as 0000:03:00.0),\n"
      "after setting their number to NUMVFS when given (refused while one is passed\n"
      "through to a VM).\n",
      parse_sriov, print_sriov, NULL },
    { "qmp", "vm-qmp", NULL, "NAME COMMAND [JSON-ARGS]",
      "Sends one QMP command to the VM's QEMU and prints its return value as JSON.\n"
      "JSON-ARGS is an object, e.g. '{\"id-list\": []}'.\n",
      parse_qmp, print_value, NULL },
    { "version", "query-version", NULL, "", "Shows the agent's and QEMU's versions.\n",
      ctl_parse_nothing, print_version, NULL },
};

/* The VM verbs, live operations, migration (live, then offline), save and
 * restore, then storage, then masters and jobs. */
const ctl_verb *ctl_verb_at(size_t i)
{
    static const ctl_verb *(*const tables[])(size_t *) = {
        ctl_live_verbs, ctl_migrate_verbs, ctl_move_verbs, ctl_save_verbs, ctl_storage_verbs, ctl_master_verbs,
    };
    size_t n = sizeof(verbs) / sizeof(verbs[0]);

    if (i < n)
        return &verbs[i];
    i -= n;
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++, i -= n) {
        const ctl_verb *more = tables[t](&n);
        if (i < n)
            return &more[i];
    }
    return NULL;
}

const ctl_verb *ctl_verb_find(const char *name)
{
    const ctl_verb *v;

    for (size_t i = 0; (v = ctl_verb_at(i)); i++)
        if (strcmp(v->name, name) == 0)
            return v;
    return NULL;
}
