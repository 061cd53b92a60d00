/* agentctl_storage.c: the verbs for storage pools and the volumes in them.
 *
 * A pool's location is an xCAT vmstorage string (dir://, phy:, nfs://) and is
 * passed to the agent as written; the agent parses it and names what it
 * refuses. A volume is a file in a pool, named by pool and file name or, as
 * kvmsh takes it, by its path. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "agentctl.h"
#include "agentctl_args.h"
#include "agentctl_print.h"

/* Starting an nfs pool mounts it, and a server that does not answer keeps
 * the mount helper in its own retries for a while before it gives up. */
#define WAIT_POOL_S 120

static void print_pool_line(const char *name, const char *what)
{
    fputs("pool ", stdout);
    ctl_print_name_line(name, what);
}

/* pool-define NAME LOCATION [--no-autostart]. */
static int parse_pool_define(int argc, char **argv, ctl_request *req)
{
    static const ctl_flag flags[] = { { "no-autostart", "autostart", CTL_FLAG_FALSE } };
    struct json_object *def = json_object_new_object();
    int r = ctl_flag_args(argc, argv, flags, 1, def);

    if (r == 0)
        r = ctl_positionals(argc, argv, 2, 2);
    if (r != 0) {
        json_object_put(def);
        return r;
    }
    req->vm = argv[optind];
    json_object_object_add(def, "name", json_object_new_string(argv[optind]));
    json_object_object_add(def, "location", json_object_new_string(argv[optind + 1]));
    req->args = json_object_new_object();
    json_object_object_add(req->args, "definition", def);
    return 0;
}

static int parse_pool_switch(int argc, char **argv, ctl_request *req)
{
    req->wait_s = WAIT_POOL_S;
    return ctl_parse_name(argc, argv, req);
}

static void print_pool_define(const ctl_request *req, struct json_object *value)
{
    const char *name = ctl_member_text(value, "name");

    print_pool_line(name ? name : req->vm, ctl_member_true(value, "created") ? "defined" : "redefined");
}

static void print_pool_done(const ctl_request *req, struct json_object *value)
{
    print_pool_line(req->vm, req->verb->done);
}

/* pool-start and pool-stop answer with the pool; a started one has a path. */
static void print_pool_switch(const ctl_request *req, struct json_object *value)
{
    const char *path = ctl_member_text(value, "path");

    print_pool_done(req, value);
    if (path && ctl_member_true(value, "active")) {
        fputs("path: ", stdout);
        ctl_put_safe(stdout, path, 0);
        putchar('\n');
    }
}

static void add_pool_row(ctl_table *t, struct json_object *pool)
{
    char *active = ctl_value_text(json_object_object_get(pool, "active"));
    char *autostart = ctl_value_text(json_object_object_get(pool, "autostart"));
    char state[64];
    /* A start or stop in flight: what ACTIVE says is about to change. */
    snprintf(state, sizeof(state), "%s%s", active ? active : "", ctl_member_true(pool, "busy") ? " (busy)" : "");
    const char *cells[] = {
        ctl_member_text(pool, "name"), ctl_member_text(pool, "kind"),
        json_object_object_get(pool, "active") ? state : NULL,
        json_object_object_get(pool, "autostart") ? autostart : NULL,
        ctl_member_text(pool, "location"),
    };

    ctl_table_add(t, cells);
    free(active);
    free(autostart);
}

static void print_pools(const ctl_request *req, struct json_object *value)
{
    static const char *const header[] = { "NAME", "KIND", "ACTIVE", "AUTOSTART", "LOCATION" };

    ctl_print_rows(header, 5, value, add_pool_row);
}

/* volumes POOL, sending {"pool": POOL}. */
static int parse_volumes(int argc, char **argv, ctl_request *req)
{
    int r = ctl_no_options(argc, argv);

    if (r == 0)
        r = ctl_positionals(argc, argv, 1, 1);
    if (r != 0)
        return r;
    req->vm = argv[optind];
    req->args = ctl_string_args("pool", argv[optind]);
    return 0;
}

static void add_volume_row(ctl_table *t, struct json_object *vol)
{
    char virtual[CTL_SIZE_TEXT_MAX], allocated[CTL_SIZE_TEXT_MAX];
    char *used_by = ctl_value_text(json_object_object_get(vol, "used-by"));
    const char *cells[6];

    ctl_member_size_text(vol, "virtual-size", virtual);
    ctl_member_size_text(vol, "allocated", allocated);
    cells[0] = ctl_member_text(vol, "name");
    cells[1] = ctl_member_text(vol, "format");
    cells[2] = virtual;
    cells[3] = allocated;
    cells[4] = json_object_object_get(vol, "used-by") ? used_by : NULL;
    cells[5] = ctl_member_text(vol, "master");
    ctl_table_add(t, cells);
    free(used_by);
}

/* Volumes the agent could not open carry an error instead of their sizes;
 * it is too long for a column, so it follows the table. */
static void print_volume_errors(struct json_object *value)
{
    for (size_t i = 0; i < json_object_array_length(value); i++) {
        struct json_object *vol = json_object_array_get_idx(value, i);
        const char *name = ctl_member_text(vol, "name"), *error = ctl_member_text(vol, "error");

        if (!error)
            continue;
        ctl_put_safe(stdout, name ? name : "?", 0);
        fputs(": ", stdout);
        ctl_put_safe(stdout, error, 0);
        putchar('\n');
    }
}

static void print_volumes(const ctl_request *req, struct json_object *value)
{
    static const char *const header[] = { "NAME", "FORMAT", "VIRTUAL", "ALLOCATED", "USED-BY",
                                          "MASTER" };

    if (!json_object_is_type(value, json_type_array)) {
        ctl_print_json(stdout, value);   /* not the shape expected; show it as it is */
        return;
    }
    ctl_print_rows(header, 6, value, add_volume_row);
    print_volume_errors(value);
}

/* The combinations of vol-create's flags that cannot mean anything. */
static int check_vol_create(const char *verb, struct json_object *args)
{
    bool by_volume = json_object_object_get_ex(args, "backing-volume", NULL);
    bool by_path = json_object_object_get_ex(args, "backing-path", NULL);

    if (by_volume && by_path)
        return ctl_usage_error(verb, "the backing file is --backing-volume or --backing-path, not both");
    if (!by_volume && json_object_object_get_ex(args, "backing-pool", NULL))
        return ctl_usage_error(verb, "--backing-pool is the pool of --backing-volume");
    if (!by_volume && !by_path && json_object_object_get_ex(args, "backing-format", NULL))
        return ctl_usage_error(verb, "--backing-format needs --backing-volume or --backing-path");
    if (!by_volume && !by_path && !json_object_object_get_ex(args, "size", NULL))
        return ctl_usage_error(verb, "--size is required unless the volume is an overlay");
    return 0;
}

static int parse_vol_create(int argc, char **argv, ctl_request *req)
{
    static const ctl_flag flags[] = {
        { "size", "size", CTL_FLAG_SCALAR },
        { "format", "format", CTL_FLAG_STRING },
        { "backing-volume", "backing-volume", CTL_FLAG_STRING },
        { "backing-pool", "backing-pool", CTL_FLAG_STRING },
        { "backing-path", "backing-path", CTL_FLAG_STRING },
        { "backing-format", "backing-format", CTL_FLAG_STRING },
    };
    struct json_object *args = json_object_new_object();
    int r = ctl_flag_args(argc, argv, flags, sizeof(flags) / sizeof(flags[0]), args);

    if (r == 0)
        r = ctl_positionals(argc, argv, 2, 2);
    if (r == 0)
        r = check_vol_create(argv[0], args);
    if (r != 0) {
        json_object_put(args);
        return r;
    }
    json_object_object_add(args, "pool", json_object_new_string(argv[optind]));
    json_object_object_add(args, "name", json_object_new_string(argv[optind + 1]));
    req->vm = argv[optind + 1];
    req->args = args;
    return 0;
}

static void print_vol_create(const ctl_request *req, struct json_object *value)
{
    const char *path = ctl_member_text(value, "path");
    char size[CTL_SIZE_TEXT_MAX];

    ctl_member_size_text(value, "virtual-size", size);
    ctl_put_safe(stdout, path ? path : req->vm, 0);
    printf(" created, %s\n", size);
}

/* POOL NAME, or --path PATH: one or the other (vol-delete, vol-info,
 * vol-check). */
static int parse_volume_ref(int argc, char **argv, ctl_request *req)
{
    static const ctl_flag flags[] = { { "path", "path", CTL_FLAG_STRING } };
    struct json_object *args = json_object_new_object();
    int r = ctl_flag_args(argc, argv, flags, 1, args);
    bool by_path = json_object_object_get_ex(args, "path", NULL);

    if (r == 0 && by_path && argc > optind)
        r = ctl_usage_error(argv[0], "the volume is POOL NAME or --path PATH, not both");
    else if (r == 0 && !by_path)
        r = ctl_positionals(argc, argv, 2, 2);
    if (r != 0) {
        json_object_put(args);
        return r;
    }
    if (!by_path) {
        json_object_object_add(args, "pool", json_object_new_string(argv[optind]));
        json_object_object_add(args, "name", json_object_new_string(argv[optind + 1]));
    }
    req->vm = by_path ? ctl_member_text(args, "path") : argv[optind + 1];
    req->args = args;
    return 0;
}

static const char *const layer_flags[] = { "dirty", "corrupt", "lazy-refcounts" };

static void add_layer_row(ctl_table *t, struct json_object *l)
{
    char virt[CTL_SIZE_TEXT_MAX], alloc[CTL_SIZE_TEXT_MAX], cluster[32] = "-", flags[64] = "";
    struct json_object *v;
    const char *cells[6];

    ctl_member_size_text(l, "virtual-size", virt);
    ctl_member_size_text(l, "allocated", alloc);
    if (json_object_object_get_ex(l, "cluster-size", &v))
        snprintf(cluster, sizeof(cluster), "%lld", (long long)json_object_get_int64(v));
    if (json_object_object_get_ex(l, "version", &v))
        snprintf(flags, sizeof(flags), "v%d", json_object_get_int(v));
    for (size_t i = 0; i < sizeof(layer_flags) / sizeof(layer_flags[0]); i++)
        if (ctl_member_true(l, layer_flags[i]))
            snprintf(flags + strlen(flags), sizeof(flags) - strlen(flags), ",%s", layer_flags[i]);
    cells[0] = ctl_member_text(l, "path");
    cells[1] = ctl_member_text(l, "format");
    cells[2] = virt;
    cells[3] = alloc;
    cells[4] = cluster;
    cells[5] = flags[0] ? flags : NULL;
    ctl_table_add(t, cells);
}

static void print_vol_info(const ctl_request *req, struct json_object *value)
{
    static const char *const header[] = { "CHAIN", "FORMAT", "VIRTUAL", "ALLOCATED", "CLUSTER", "FLAGS" };
    struct json_object *chain = NULL;

    json_object_object_get_ex(value, "chain", &chain);
    ctl_print_rows(header, 6, chain, add_layer_row);
}

static void print_vol_check(const ctl_request *req, struct json_object *value)
{
    struct json_object *v;
    long long leaks = 0, bad = 0;
    const char *first = ctl_member_text(value, "first-problem");

    if (json_object_object_get_ex(value, "leaked-clusters", &v))
        leaks = json_object_get_int64(v);
    if (json_object_object_get_ex(value, "corruptions", &v))
        bad = json_object_get_int64(v);
    ctl_put_safe(stdout, req->vm, 0);
    if (leaks == 0 && bad == 0)
        printf(": no errors\n");
    else
        printf(": %lld leaked clusters (harmless, reclaimable), %lld corruptions\n", leaks, bad);
    if (first) {
        printf("first: ");
        ctl_put_safe(stdout, first, 0);
        printf("\n");
    }
}

static const ctl_verb storage_verbs[] = {
    { "pools", "query-pools", NULL, "",
      "Lists the storage pools: NAME KIND ACTIVE AUTOSTART LOCATION.\n",
      ctl_parse_nothing, print_pools, NULL },
    { "pool-define", "pool-define", NULL, "NAME LOCATION [--no-autostart]",
      "Defines a pool, or replaces the definition of a stopped one (kvmsh create-pool).\n"
      "LOCATION is an xCAT vmstorage string: dir:///var/lib/images (or a plain absolute\n"
      "path), phy:/dev/sdb1 (one block device, given raw to one VM), or\n"
      "nfs://10.0.0.1/install/vms/ (mounted by the agent when the pool starts).\n"
      "Pools are started when the agent starts unless --no-autostart.\n",
      parse_pool_define, print_pool_define, NULL },
    { "pool-undefine", "pool-undefine", "undefined", "NAME",
      "Removes a stopped pool that holds no disk of a defined VM. Its files are not\n"
      "touched.\n",
      ctl_parse_name, print_pool_done, NULL },
    { "pool-start", "pool-start", "started", "NAME",
      "Starts a pool: creates a dir pool's directory, mounts an nfs pool, checks a phy\n"
      "pool's device.\n",
      parse_pool_switch, print_pool_switch, NULL },
    { "pool-stop", "pool-stop", "stopped", "NAME",
      "Stops a pool (unmounting an nfs pool); refused while a running VM has a disk in\n"
      "it.\n",
      parse_pool_switch, print_pool_switch, NULL },
    { "volumes", "query-volumes", NULL, "POOL",
      "Lists the files in an active pool: NAME FORMAT VIRTUAL ALLOCATED USED-BY MASTER,\n"
      "then, for each file the agent could not open, why.\n",
      parse_volumes, print_volumes, NULL },
    { "vol-create", "vol-create", NULL,
      "POOL NAME --size SIZE [--format qcow2|raw]\n"
      "POOL NAME --backing-volume VOLUME [--backing-pool POOL] [--backing-format FORMAT] [--size SIZE]\n"
      "POOL NAME --backing-path PATH [--backing-format FORMAT] [--size SIZE]",
      "Creates an empty image file NAME in POOL. SIZE is bytes or a number with K, M,\n"
      "G or T (binary); --format is qcow2 (the default) or raw. The second and third\n"
      "forms make a qcow2 overlay of a backing file, named as a volume (in\n"
      "--backing-pool, by default POOL) or by its path, in --backing-format (default\n"
      "qcow2); the overlay takes the backing file's size unless --size is given.\n",
      parse_vol_create, print_vol_create, NULL },
    { "vol-delete", "vol-delete", "deleted", "POOL NAME\n--path PATH",
      "Deletes a volume, named by pool and file name or by its path; refused while it\n"
      "is a disk of a defined VM or of a master, or the backing file of another image.\n",
      parse_volume_ref, ctl_print_done, NULL },
    { "vol-info", "query-volume", NULL, "POOL NAME\n--path PATH",
      "Shows an image and its whole backing chain: path, format, sizes, cluster size,\n"
      "version and flags of each layer.\n",
      parse_volume_ref, print_vol_info, NULL },
    { "vol-check", "vol-check", NULL, "POOL NAME\n--path PATH",
      "Checks a qcow2 image's refcounts against its references (as qemu-img check):\n"
      "leaks are harmless, corruptions are not.\n",
      parse_volume_ref, print_vol_check, NULL },
};

const ctl_verb *ctl_storage_verbs(size_t *ret_n)
{
    *ret_n = sizeof(storage_verbs) / sizeof(storage_verbs[0]);
    return storage_verbs;
}
