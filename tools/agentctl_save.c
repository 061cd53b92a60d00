/* agentctl_save.c: save, restore and save-discard (docs/protocol.md, "Save
 * and restore"), and the snapshot verbs ("Snapshots"). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "agentctl.h"
#include "agentctl_args.h"
#include "agentctl_print.h"

/* The agent ends a save or restore at its timeout (default 3600 s); agentctl
 * waits a little longer for the reply that says so. */
#define SAVE_TIMEOUT_S 3600
#define WAIT_MARGIN_S 60

/* [--timeout SECONDS], into args and the wait. */
static int parse_timeout_flag(int argc, char **argv, ctl_request *req)
{
    static const ctl_flag flags[] = { { "timeout", "timeout", CTL_FLAG_SCALAR } };
    struct json_object *t;
    int r;

    if ((r = ctl_flag_args(argc, argv, flags, 1, req->args)) != 0)
        return r;
    req->wait_s = SAVE_TIMEOUT_S + WAIT_MARGIN_S;
    if (json_object_object_get_ex(req->args, "timeout", &t) && json_object_is_type(t, json_type_int))
        req->wait_s = (int)(json_object_get_int64(t) > INT_MAX - WAIT_MARGIN_S ? INT_MAX - WAIT_MARGIN_S
                                                                             : json_object_get_int64(t)) +
                      WAIT_MARGIN_S;
    return 0;
}

/* NAME FILE: FILE relative to the current directory, as a shell user means it. */
static int parse_save(int argc, char **argv, ctl_request *req)
{
    char cwd[PATH_MAX], *file;
    int r;

    req->args = json_object_new_object();
    if ((r = parse_timeout_flag(argc, argv, req)) != 0 || (r = ctl_positionals(argc, argv, 2, 2)) != 0)
        return r;
    req->vm = argv[optind];
    json_object_object_add(req->args, "name", json_object_new_string(req->vm));
    file = argv[optind + 1];
    if (file[0] != '/') {
        if (!getcwd(cwd, sizeof(cwd)))
            return ctl_usage_error(argv[0], "the current directory: %s", strerror(errno));
        char *abs;
        if (asprintf(&abs, "%s/%s", cwd, file) < 0)
            return -ENOMEM;
        json_object_object_add(req->args, "file", json_object_new_string(abs));
        free(abs);
    } else {
        json_object_object_add(req->args, "file", json_object_new_string(file));
    }
    return 0;
}

static int parse_restore(int argc, char **argv, ctl_request *req)
{
    int r;

    req->args = json_object_new_object();
    if ((r = parse_timeout_flag(argc, argv, req)) != 0 || (r = ctl_positionals(argc, argv, 1, 1)) != 0)
        return r;
    req->vm = argv[optind];
    json_object_object_add(req->args, "name", json_object_new_string(req->vm));
    return 0;
}

static void print_saved(const ctl_request *req, struct json_object *value)
{
    struct json_object *file, *size;

    if (json_object_object_get_ex(value, "file", &file) && json_object_object_get_ex(value, "size", &size))
        printf("%s saved to %s (%lld bytes)\n", req->vm, json_object_get_string(file),
               (long long)json_object_get_int64(size));
    else
        printf("%s saved\n", req->vm);
}

/* NAME SNAP, sending {"name": NAME, "snapshot": SNAP}. */
static int parse_snapshot(int argc, char **argv, ctl_request *req)
{
    int r;

    if ((r = ctl_no_options(argc, argv)) != 0 || (r = ctl_positionals(argc, argv, 2, 2)) != 0)
        return r;
    req->vm = argv[optind];
    req->args = ctl_string_args("name", req->vm);
    json_object_object_add(req->args, "snapshot", json_object_new_string(argv[optind + 1]));
    return 0;
}

static void print_snapshot_done(const ctl_request *req, struct json_object *value)
{
    struct json_object *snap = json_object_object_get(req->args, "snapshot"), *dropped;

    printf("%s: %s snapshot %s\n", req->vm, req->verb->done, json_object_get_string(snap));
    if (json_object_object_get_ex(value, "dropped", &dropped))
        for (size_t i = 0; i < json_object_array_length(dropped); i++) {
            fputs("dropped with it: ", stdout);
            ctl_put_safe(stdout, json_object_get_string(json_object_array_get_idx(dropped, i)), 0);
            putchar('\n');
        }
}

static void add_snapshot_row(ctl_table *t, struct json_object *item)
{
    struct json_object *created = json_object_object_get(item, "created-at");
    struct json_object *disks = json_object_object_get(item, "disks");
    char when[32] = "-", targets[256] = "";
    time_t at = (time_t)json_object_get_int64(created);
    struct tm tm;

    if (created && gmtime_r(&at, &tm))
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    for (size_t i = 0; disks && i < json_object_array_length(disks); i++) {
        const char *target = ctl_member_text(json_object_array_get_idx(disks, i), "target");
        size_t n = strlen(targets);
        snprintf(targets + n, sizeof(targets) - n, "%s%s", n ? "," : "", target ? target : "?");
    }
    const char *cells[] = { ctl_member_text(item, "name"), when, targets };
    ctl_table_add(t, cells);
}

static void print_snapshots(const ctl_request *req, struct json_object *value)
{
    static const char *const header[] = { "NAME", "CREATED(UTC)", "DISKS" };

    ctl_print_rows(header, 3, value, add_snapshot_row);
}

static const ctl_verb save_verbs[] = {
    { "save", "vm-save", NULL, "NAME FILE [--timeout SECONDS]",
      "Writes a running or paused VM's state to FILE (which must not exist), then\n"
      "ends its QEMU: the VM is 'saved' until restored (OpenNebula's save, RHEV's\n"
      "suspend). While saved it cannot be started, changed or undefined, and its\n"
      "disks are checked before a restore: the size and modification time of each\n"
      "disk's image must be those recorded at the save.\n",
      parse_save, print_saved, NULL },
    { "restore", "vm-restore", "restored", "NAME [--timeout SECONDS]",
      "Starts a saved VM from its state file; the guest goes on where it was (paused\n"
      "if it was paused). The file is removed once loaded.\n",
      parse_restore, ctl_print_done, NULL },
    { "save-discard", "vm-save-discard", "saved state discarded", "NAME",
      "Drops a saved VM's state (and its file): the VM is stopped and boots afresh.\n",
      ctl_parse_name, ctl_print_done, NULL },
    { "snapshot", "snapshot-create", "created", "NAME SNAP",
      "Takes an external snapshot of a VM, running or not (OpenNebula's snap-create):\n"
      "each writable disk's image is frozen and a new qcow2 overlay put on top of it\n"
      "(a running QEMU switches to the overlays at once; crash-consistent).\n",
      parse_snapshot, print_snapshot_done, NULL },
    { "snapshots", "snapshot-list", NULL, "NAME",
      "Lists a VM's snapshots, oldest first: NAME CREATED(UTC) DISKS.\n",
      ctl_parse_name, print_snapshots, NULL },
    { "snapshot-revert", "snapshot-revert", "reverted to", "NAME SNAP",
      "Puts a stopped VM's disks back to the snapshot: what was written since is\n"
      "dropped, and so are the snapshots taken after it.\n",
      parse_snapshot, print_snapshot_done, NULL },
    { "snapshot-delete", "snapshot-delete", "deleted", "NAME SNAP",
      "Deletes a snapshot (OpenNebula's snap-delete): its frozen image is merged into\n"
      "the overlay above it (by QEMU's block-stream while the VM runs), and the\n"
      "disks' content stays as it is.\n",
      parse_snapshot, print_snapshot_done, NULL },
};

const ctl_verb *ctl_save_verbs(size_t *ret_n)
{
    *ret_n = sizeof(save_verbs) / sizeof(save_verbs[0]);
    return save_verbs;
}
