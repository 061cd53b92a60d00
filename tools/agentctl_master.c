/* agentctl_master.c: the verbs for masters (golden images), clones and jobs.
 *
 * master-create and clone are long jobs on a VM: their requests carry the
 * VM's name in req->job_vm, and run_call() then shows the job's progress
 * while it waits and turns Ctrl-C into job-cancel (agentctl_job.c). The
 * masters table reads like xCAT's vmmaster table. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "agentctl.h"
#include "agentctl_args.h"
#include "agentctl_print.h"

/* The job's own flags, after defaults for the members always sent. */
static int parse_job(int argc, char **argv, const ctl_flag *flags, size_t n, ctl_request *req)
{
    struct json_object *opts = json_object_new_object();
    int r;

    json_object_object_add(opts, "detached", json_object_new_boolean(false));
    r = ctl_flag_args(argc, argv, flags, n, opts);
    if (r == 0)
        r = ctl_positionals(argc, argv, 2, 2);
    if (r != 0) {
        json_object_put(opts);
        return r;
    }
    req->args = opts;
    /* A job's reply comes when its disks are copied: minutes, or hours. */
    req->wait_s = CTL_WAIT_FOREVER;
    return 0;
}

/* master-create VM MASTER [flags]: the job runs on VM, the source. */
static int parse_master_create(int argc, char **argv, ctl_request *req)
{
    static const ctl_flag flags[] = {
        { "detached", "detached", CTL_FLAG_TRUE }, { "pool", "pool", CTL_FLAG_STRING },
        { "os", "os", CTL_FLAG_STRING },           { "arch", "arch", CTL_FLAG_STRING },
        { "profile", "profile", CTL_FLAG_STRING },
    };
    int r = parse_job(argc, argv, flags, sizeof(flags) / sizeof(flags[0]), req);

    if (r != 0)
        return r;
    json_object_object_add(req->args, "vm", json_object_new_string(argv[optind]));
    json_object_object_add(req->args, "master", json_object_new_string(argv[optind + 1]));
    req->vm = argv[optind + 1];
    req->job_vm = argv[optind];
    return 0;
}

/* clone MASTER NAME [flags]: the job runs on the new VM. */
static int parse_clone(int argc, char **argv, ctl_request *req)
{
    static const ctl_flag flags[] = {
        { "detached", "detached", CTL_FLAG_TRUE },
        { "pool", "pool", CTL_FLAG_STRING },
    };
    int r = parse_job(argc, argv, flags, sizeof(flags) / sizeof(flags[0]), req);

    if (r != 0)
        return r;
    json_object_object_add(req->args, "master", json_object_new_string(argv[optind]));
    json_object_object_add(req->args, "name", json_object_new_string(argv[optind + 1]));
    req->vm = argv[optind + 1];
    req->job_vm = argv[optind + 1];
    return 0;
}

static void print_master_disks(struct json_object *master)
{
    struct json_object *disks = json_object_object_get(master, "disks");

    for (size_t i = 0; json_object_is_type(disks, json_type_array) &&
                       i < json_object_array_length(disks); i++) {
        struct json_object *d = json_object_array_get_idx(disks, i);
        const char *target = ctl_member_text(d, "target"), *path = ctl_member_text(d, "path");

        fputs("disk ", stdout);
        ctl_put_safe(stdout, target ? target : "?", 0);
        fputs(": ", stdout);
        ctl_put_safe(stdout, path ? path : "?", 0);
        putchar('\n');
    }
}

static void print_master_create(const ctl_request *req, struct json_object *value)
{
    const char *name = ctl_member_text(value, "name");

    fputs("master ", stdout);
    ctl_put_safe(stdout, name ? name : req->vm, 0);
    fputs(" created from ", stdout);
    ctl_put_safe(stdout, req->job_vm, 0);
    putchar('\n');
    print_master_disks(value);
    if (ctl_member_true(req->args, "detached"))
        ctl_print_name_line(req->job_vm, "is unchanged (detached)");
    else
        ctl_print_name_line(req->job_vm, "now runs on overlays of the master's disks");
}

static void print_clone(const ctl_request *req, struct json_object *value)
{
    const char *name = ctl_member_text(value, "name"), *uuid = ctl_member_text(value, "uuid");
    bool detached = ctl_member_true(value, "detached");

    ctl_put_safe(stdout, name ? name : req->vm, 0);
    fputs(" cloned from ", stdout);
    ctl_print_name_line(ctl_member_text(req->args, "master"),
                        detached ? "(detached: full copies of its disks)"
                                 : "(attached: overlays of its disks)");
    if (uuid) {
        fputs("uuid: ", stdout);
        ctl_put_safe(stdout, uuid, 0);
        putchar('\n');
    }
}

static void add_master_row(ctl_table *t, struct json_object *m)
{
    static const char *const keys[] = { "name", "os", "arch", "profile", "storage", "nics",
                                        "created", "originator" };
    const char *cells[8];
    char *text[8];

    for (size_t i = 0; i < 8; i++) {
        struct json_object *v = json_object_object_get(m, keys[i]);
        text[i] = v ? ctl_value_text(v) : NULL;   /* "" reads as not set: "-" */
        cells[i] = text[i];
    }
    ctl_table_add(t, cells);
    for (size_t i = 0; i < 8; i++)
        free(text[i]);
}

static void print_masters(const ctl_request *req, struct json_object *value)
{
    static const char *const header[] = { "NAME", "OS", "ARCH", "PROFILE", "STORAGE", "NICS",
                                          "CREATED", "ORIGINATOR" };

    ctl_print_rows(header, 8, value, add_master_row);
}

static void print_master_done(const ctl_request *req, struct json_object *value)
{
    fputs("master ", stdout);
    ctl_print_done(req, value);
}

static const ctl_verb master_verbs[] = {
    { "master-create", "master-create", NULL,
      "VM MASTER [--detached] [--pool POOL] [--os OS] [--arch ARCH] [--profile PROFILE]",
      "Makes a master (a golden image) from a stopped VM (xCAT's clonevm -t): each disk\n"
      "is copied, flattened, into MASTER.TARGET.qcow2 in the pool of the disk or in\n"
      "--pool. Then the VM's disks are replaced by overlays of the master's, so the VM\n"
      "is its first clone; --detached leaves the VM as it was. --os, --arch and\n"
      "--profile default to the VM's labels of those names (arch: x86_64).\n"
      "The job's progress is shown while it runs, with a progress bar when standard\n"
      "error is a terminal. It waits for as long as the copy takes (or --timeout).\n"
      "Ctrl-C cancels the job and waits until its files are removed; a second Ctrl-C\n"
      "leaves at once (exit 130).\n",
      parse_master_create, print_master_create, NULL },
    { "clone", "vm-clone", NULL, "MASTER NAME [--detached] [--pool POOL]",
      "Creates the VM NAME from a master (xCAT's clonevm NAME -b MASTER): the master's\n"
      "definition with a new uuid, and disks that are overlays of the master's, or full\n"
      "copies with --detached, in the master's pools or in --pool. Progress and Ctrl-C\n"
      "are as for master-create; a cancelled clone leaves no VM and no files.\n",
      parse_clone, print_clone, NULL },
    { "masters", "query-masters", NULL, "",
      "Lists the masters: NAME OS ARCH PROFILE STORAGE NICS CREATED ORIGINATOR.\n",
      ctl_parse_nothing, print_masters, NULL },
    { "master-delete", "master-delete", "deleted", "NAME",
      "Deletes a master's disks and record; refused while a VM's disks are overlays of\n"
      "it or another image is backed by its disks.\n",
      ctl_parse_name, print_master_done, NULL },
    { "cancel", "job-cancel", "job cancel requested", "NAME",
      "Asks the master-create or clone job running on the VM to stop. The job's own\n"
      "command then fails with Cancelled, and every file it had made is removed.\n",
      ctl_parse_name, ctl_print_done, NULL },
};

const ctl_verb *ctl_master_verbs(size_t *ret_n)
{
    *ret_n = sizeof(master_verbs) / sizeof(master_verbs[0]);
    return master_verbs;
}
