/* test_storage_e2e.c: pools, volumes, disks in definitions, masters and
 * clones, through agentd and real QEMU (tcg). The guest's own view of its
 * disk (an md5 over the serial query protocol) is what proves a clone holds
 * its master's data; qemu-img checks what the agent wrote. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "tests/support/agent_e2e.h"
#include "tests/support/agent_harness.h"
#include "tests/support/guest.h"

#define DATA_MB 32
#define QUERY_MS 120000

/* ---- helpers ------------------------------------------------------------- */

static void images(t *x, char *buf, size_t len)
{
    snprintf(buf, len, "%s/state/images", x->agent.dir);
}

static bool exists(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool exists(const char *fmt, ...)
{
    char path[1024];
    struct stat st;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    return stat(path, &st) == 0;
}

/* qemu-img check: exit 0 means neither corruption nor leaks. */
static void assert_image_clean(const char *path)
{
    if (sh_status("qemu-img check -q '%s' >/dev/null 2>&1", path) != 0)
        fail_msg("qemu-img check %s is not clean", path);
}

static void assert_same_content(const char *a, const char *b)
{
    if (sh_status("qemu-img compare -q '%s' '%s'", a, b) != 0)
        fail_msg("%s and %s differ", a, b);
}

static void backing_of(const char *path, char *out, size_t len)
{
    sh_out(out, len, "qemu-img info --output=json '%s' | sed -n 's/.*\"backing-filename\": \"\\(.*\\)\".*/\\1/p'",
           path);
}

/* A raw file of DATA_MB with random data in a few places and holes between,
 * and its md5; a qcow2 copy of it becomes a VM's disk. */
static void make_data(const char *raw, char *md5, size_t len)
{
    sh("qemu-img create -q -f raw '%s' %dM", raw, DATA_MB);
    sh("dd if=/dev/urandom of='%s' bs=1M count=3 conv=notrunc status=none", raw);
    sh("dd if=/dev/urandom of='%s' bs=1M seek=20 count=2 conv=notrunc status=none", raw);
    sh_out(md5, len, "md5sum '%s' | cut -d' ' -f1", raw);
}

/* The guest's md5 of its first disk. */
static void guest_disk_md5(t *x, const char *vm, char *out, size_t len)
{
    char cmd[64];

    snprintf(cmd, sizeof(cmd), "sum vda 0 %d", DATA_MB << 20);
    guest_ask(x, vm, cmd, out, len);
}

static void boot(t *x, const char *vm)
{
    vm_cmd(x, "vm-start", vm);
    assert_int_equal(wait_file_contains(query(x, vm).console, READY_LINE, 1, BOOT_MS), 0);
}

static char *guest_with_disk(const char *name, const char *volume)
{
    char extra[512];
    snprintf(extra, sizeof(extra), "\"disks\": [{\"pool\": \"default\", \"volume\": \"%s\"}]", volume);
    return guest_def(name, extra);
}

static int count_files(const char *dir)
{
    char out[64];
    sh_out(out, sizeof(out), "ls -A '%s' | wc -l", dir);
    return atoi(out);
}

/* ---- pools ----------------------------------------------------------------- */

typedef struct nfs_t {
    t base;
    char helper_dir[64];
} nfs_t;

/* An "NFS server" for tests: the mount helper bind-mounts the export path
 * from this host, so the agent's mount, unmount and re-find are real. */
static int setup_fake_nfs(void **state)
{
    char dir[] = "/tmp/agentd-nfs-XXXXXX", config[512], script[128];
    FILE *f;

    assert_non_null(mkdtemp(dir));
    snprintf(script, sizeof(script), "%s/mount.nfs", dir);
    assert_non_null(f = fopen(script, "w"));
    fprintf(f, "#!/bin/sh\n# SERVER:/EXPORT DIR -o OPTIONS\nexec mount --bind \"${1#*:}\" \"$2\"\n");
    fclose(f);
    chmod(script, 0755);
    snprintf(config, sizeof(config), "mount-nfs = %s\n", script);
    setup_with(state, config);
    nfs_t *n = realloc(*state, sizeof(*n));
    snprintf(n->helper_dir, sizeof(n->helper_dir), "%s", dir);
    *state = n;
    return 0;
}

static int teardown_fake_nfs(void **state)
{
    nfs_t *n = *state;
    char mnt[256], helper[64];

    snprintf(mnt, sizeof(mnt), "%s/state/mnt/shared", n->base.agent.dir);
    umount2(mnt, MNT_DETACH);
    snprintf(helper, sizeof(helper), "%s", n->helper_dir);
    teardown(state);
    sh("rm -rf '%s'", helper);
    return 0;
}

static bool mounted(const char *path)
{
    return sh_status("grep -q ' %s ' /proc/self/mounts", path) == 0;
}

static void pools_are_defined_started_listed_and_stopped(void **state)
{
    nfs_t *n = *state;
    t *x = &n->base;
    char args[1024], export[512], mnt[512];

    /* the default pool exists and is active */
    json_object *reply = call_ok(x, "query-pools", NULL), *p0 = json_object_array_get_idx(agent_return(reply), 0);
    assert_string_equal(json_object_get_string(member(p0, "name")), "default");
    assert_true(json_object_get_boolean(member(p0, "active")));
    json_object_put(reply);

    /* a dir pool: its directory made at start */
    snprintf(args, sizeof(args), "{\"definition\": {\"name\": \"local2\", \"location\": \"dir://%s/local2\"}}",
             x->agent.dir);
    call_ok_put(x, "pool-define", args);
    assert_false(exists("%s/local2", x->agent.dir));
    call_ok_put(x, "pool-start", "{\"name\": \"local2\"}");
    assert_true(exists("%s/local2", x->agent.dir));

    /* an nfs pool, as xCAT writes it, mounted under the state directory */
    snprintf(export, sizeof(export), "%s/export", x->agent.dir);
    mkdir(export, 0755);
    snprintf(args, sizeof(args), "{\"definition\": {\"name\": \"shared\", \"location\": \"nfs://10.0.0.1%s/\"}}",
             export);
    call_ok_put(x, "pool-define", args);
    call_ok_put(x, "pool-start", "{\"name\": \"shared\"}");
    snprintf(mnt, sizeof(mnt), "%s/state/mnt/shared", x->agent.dir);
    assert_true(mounted(mnt));
    call_ok_put(x, "vol-create", "{\"pool\": \"shared\", \"name\": \"v.qcow2\", \"size\": \"1G\"}");
    assert_true(exists("%s/v.qcow2", export));   /* written through the mount */

    /* a running VM's pool cannot be stopped */
    define(x, bare_def("b1", "\"disks\": [{\"pool\": \"shared\", \"volume\": \"v.qcow2\"}]"));
    vm_cmd(x, "vm-start", "b1");
    call_fails(x, "pool-stop", "{\"name\": \"shared\"}", "InvalidState", "pool shared holds disks of running VMs: b1");
    vm_cmd(x, "vm-destroy", "b1");
    call_ok_put(x, "pool-stop", "{\"name\": \"shared\"}");
    assert_false(mounted(mnt));
    call_fails(x, "pool-undefine", "{\"name\": \"shared\"}", "InvalidState", "pool shared holds disks of b1");

    /* bad definitions name the field */
    call_fails(x, "pool-define", "{\"definition\": {\"name\": \"p\", \"location\": \"ftp://x/y\"}}",
               "InvalidParameter", "location:");
    call_fails(x, "pool-define", "{\"definition\": {\"name\": \"p\", \"location\": \"phy:/etc/passwd\"}}",
               "InvalidParameter", "location:");
    call_fails(x, "pool-define", "{\"definition\": {\"name\": \"../p\", \"location\": \"/x\"}}",
               "InvalidParameter", "name:");
    call_fails(x, "pool-start", "{\"name\": \"nope\"}", "NotFound", "name: no pool named");
}

static void an_nfs_pool_is_found_mounted_after_an_agent_restart(void **state)
{
    nfs_t *n = *state;
    t *x = &n->base;
    char args[1024], export[512], mnt[512];

    snprintf(export, sizeof(export), "%s/export", x->agent.dir);
    mkdir(export, 0755);
    snprintf(args, sizeof(args), "{\"definition\": {\"name\": \"shared\", \"location\": \"nfs://nas%s\"}}", export);
    call_ok_put(x, "pool-define", args);
    call_ok_put(x, "pool-start", "{\"name\": \"shared\"}");
    snprintf(mnt, sizeof(mnt), "%s/state/mnt/shared", x->agent.dir);
    agent_close(&x->conn);
    agentd_stop(&x->agent, SIGKILL);    /* a crash: nothing unmounted */
    assert_int_equal(agentd_start(&x->agent), 0);
    assert_int_equal(agent_connect(&x->conn, x->agent.socket), 0);
    /* The restarted agent answers before its pools are up: wait while the
     * pool says it is busy being started (CI once asked in between). */
    bool active = false, busy = true;
    for (int i = 0; i < 500 && busy; i++) {
        json_object *reply = call_ok(x, "query-pools", NULL), *arr = agent_return(reply);
        for (size_t k = 0; k < json_object_array_length(arr); k++) {
            json_object *p = json_object_array_get_idx(arr, k);
            if (!strcmp(json_object_get_string(member(p, "name")), "shared")) {
                active = json_object_get_boolean(member(p, "active"));
                busy = json_object_get_boolean(member(p, "busy"));
            }
        }
        json_object_put(reply);
        if (busy)
            usleep(20000);
    }
    assert_false(busy);
    assert_true(active);
    /* mounted once, not stacked */
    char out[32];
    sh_out(out, sizeof(out), "grep -c ' %s ' /proc/self/mounts", mnt);
    assert_string_equal(out, "1");
}

/* ---- volumes --------------------------------------------------------------- */

static void volumes_are_created_listed_and_deleted_with_their_users_checked(void **state)
{
    t *x = *state;
    char dir[512], path[600], ov[600], b[600];

    images(x, dir, sizeof(dir));
    call_ok_put(x, "vol-create", "{\"pool\": \"default\", \"name\": \"data1.qcow2\", \"size\": \"1G\"}");
    snprintf(path, sizeof(path), "%s/data1.qcow2", dir);
    assert_image_clean(path);
    char vs[64];
    sh_out(vs, sizeof(vs), "qemu-img info --output=json '%s' | sed -n 's/.*\"virtual-size\": \\([0-9]*\\).*/\\1/p'", path);
    assert_string_equal(vs, "1073741824");
    call_fails(x, "vol-create", "{\"pool\": \"default\", \"name\": \"data1.qcow2\", \"size\": \"1G\"}", "Exists", NULL);
    call_fails(x, "vol-create", "{\"pool\": \"default\", \"name\": \"../x\", \"size\": \"1G\"}",
               "InvalidParameter", "name:");
    call_fails(x, "vol-create", "{\"pool\": \"default\", \"name\": \"x\", \"size\": \"1Q\"}",
               "InvalidParameter", "size:");
    call_fails(x, "vol-create", "{\"pool\": \"default\", \"name\": \"x\", \"size\": \"1G\", \"format\": \"vmdk\"}",
               "InvalidParameter", "format:");

    /* an overlay of it, made through the protocol */
    call_ok_put(x, "vol-create", "{\"pool\": \"default\", \"name\": \"ov.qcow2\", \"backing-volume\": \"data1.qcow2\"}");
    snprintf(ov, sizeof(ov), "%s/ov.qcow2", dir);
    assert_image_clean(ov);
    backing_of(ov, b, sizeof(b));
    assert_string_equal(b, "data1.qcow2");
    {
        json_object *info = call_ok(x, "query-volume", "{\"pool\": \"default\", \"name\": \"ov.qcow2\"}");
        json_object *chain = member(agent_return(info), "chain");
        assert_int_equal(json_object_array_length(chain), 2);
        assert_string_equal(json_object_get_string(member(json_object_array_get_idx(chain, 0), "backing-file")),
                            "data1.qcow2");
        assert_int_equal(json_object_get_int64(member(json_object_array_get_idx(chain, 1), "virtual-size")),
                         1073741824);
        json_object_put(info);
        info = call_ok(x, "vol-check", "{\"pool\": \"default\", \"name\": \"ov.qcow2\"}");
        assert_true(json_object_get_boolean(member(agent_return(info), "clean")));
        json_object_put(info);
        call_fails(x, "query-volume", "{\"pool\": \"default\", \"name\": \"nope.qcow2\"}", "NotFound", NULL);
    }

    define(x, bare_def("v1", "\"disks\": [{\"pool\": \"default\", \"volume\": \"data1.qcow2\"}]"));
    json_object *reply = call_ok(x, "query-volumes", "{\"pool\": \"default\"}"), *arr = agent_return(reply);
    bool seen = false;
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *v = json_object_array_get_idx(arr, i);
        if (strcmp(json_object_get_string(member(v, "name")), "data1.qcow2") == 0) {
            seen = true;
            assert_string_equal(json_object_get_string(member(v, "format")), "qcow2");
            assert_int_equal(json_object_get_int64(member(v, "virtual-size")), 1073741824);
            assert_string_equal(json_object_to_json_string(member(v, "used-by")), "[ \"v1\" ]");
        }
    }
    json_object_put(reply);
    assert_true(seen);

    call_fails(x, "vol-delete", "{\"pool\": \"default\", \"name\": \"data1.qcow2\"}", "InvalidState", path);
    vm_cmd(x, "vm-undefine", "v1");
    assert_true(exists("%s", path));   /* undefine keeps disks by default */
    call_fails(x, "vol-delete", "{\"pool\": \"default\", \"name\": \"data1.qcow2\"}", "InvalidState", path);
    char args[700];
    snprintf(args, sizeof(args), "{\"path\": \"%s\"}", ov);   /* kvmsh vol-delete PATH */
    call_ok_put(x, "vol-delete", args);
    assert_false(exists("%s", ov));
    call_ok_put(x, "vol-delete", "{\"pool\": \"default\", \"name\": \"data1.qcow2\"}");
    assert_false(exists("%s", path));
    call_fails(x, "vol-delete", "{\"path\": \"/etc/passwd\"}", "InvalidParameter", "path:");
}

/* ---- disks in definitions ---------------------------------------------------- */

static void a_size_in_the_definition_makes_the_disk_and_purge_removes_it(void **state)
{
    t *x = *state;
    char dir[512], path[600];

    images(x, dir, sizeof(dir));
    /* xCAT's mkvm -s 1G: the disk is named vm.sda.qcow2 */
    define(x, bare_def("mk1", "\"disks\": [{\"size\": \"1G\"}]"));
    snprintf(path, sizeof(path), "%s/mk1.sda.qcow2", dir);
    assert_true(exists("%s", path));
    assert_image_clean(path);

    call_fails(x, "vm-define", "{\"definition\": {\"name\": \"mk2\", \"memory\": 64, \"disks\": [{\"pool\": \"default\", \"volume\": \"missing.qcow2\"}]}}",
               "InvalidParameter", "disks[0]:");
    call_fails(x, "vm-define", "{\"definition\": {\"name\": \"mk2\", \"memory\": 64, \"disks\": [{\"pool\": \"nope\", \"size\": \"1G\"}]}}",
               "InvalidParameter", "disks[0].pool:");
    assert_false(exists("%s/mk2.json", x->agent.dir));
    json_object *reply = call_ok(x, "query-vms", NULL);
    assert_int_equal(json_object_array_length(agent_return(reply)), 1);
    json_object_put(reply);

    /* QEMU gets the disk: the VM runs with it */
    vm_cmd(x, "vm-start", "mk1");
    call_fails(x, "vm-undefine", "{\"name\": \"mk1\", \"purge\": true}", "InvalidState", NULL);
    call_fails(x, "vm-undefine", "{\"name\": \"mk1\", \"purge\": true, \"keep-disks\": true}", "InvalidParameter",
               "purge:");
    reply = call_ok(x, "vm-undefine", "{\"name\": \"mk1\", \"purge\": true, \"force\": true}");
    json_object *deleted = member(agent_return(reply), "deleted");
    assert_int_equal(json_object_array_length(deleted), 1);
    assert_string_equal(json_object_get_string(json_object_array_get_idx(deleted, 0)), path);
    json_object_put(reply);
    assert_false(exists("%s", path));
}

/* ---- masters and clones --------------------------------------------------- */

typedef struct data_t {
    t base;
    char raw[600];
    char md5[64];
} data_t;

static int setup_with_data(void **state)
{
    setup(state);
    data_t *d = realloc(*state, sizeof(*d));
    char dir[512];

    *state = d;
    images(&d->base, dir, sizeof(dir));
    snprintf(d->raw, sizeof(d->raw), "%s/source.raw", d->base.agent.dir);
    make_data(d->raw, d->md5, sizeof(d->md5));
    sh("qemu-img convert -O qcow2 '%s' '%s/src.sda.qcow2'", d->raw, dir);
    return 0;
}

static bool saw_progress_message(t *x, const char *needle)
{
    for (size_t i = 0; i < json_object_array_length(x->conn.events); i++) {
        json_object *e = json_object_array_get_idx(x->conn.events, i), *m;
        if (strcmp(json_object_get_string(member(e, "event")), "JOB_PROGRESS") == 0 &&
            (m = member(member(e, "data"), "message")) && strstr(json_object_get_string(m), needle))
            return true;
    }
    return false;
}

static void clones_boot_with_the_masters_data_and_keep_their_writes_apart(void **state)
{
    data_t *d = *state;
    t *x = &d->base;
    char dir[512], path[700], b[700], sum[128];

    images(x, dir, sizeof(dir));
    define(x, guest_with_disk("src", "src.sda.qcow2"));

    /* attached master: the VM becomes an overlay of it */
    agent_forget_events(&x->conn);
    json_object *reply = call_ok(x, "master-create", "{\"vm\": \"src\", \"master\": \"m1\", \"os\": \"busybox\"}");
    assert_string_equal(json_object_get_string(member(agent_return(reply), "from-vm")), "src");
    json_object_put(reply);
    assert_true(saw_progress_message(x, "Cloning src.sda.qcow2 (currently is"));
    snprintf(path, sizeof(path), "%s/m1.sda.qcow2", dir);
    assert_image_clean(path);
    assert_same_content(path, d->raw);
    backing_of(path, b, sizeof(b));
    assert_string_equal(b, "");                      /* standalone */
    snprintf(path, sizeof(path), "%s/src.sda.qcow2", dir);
    backing_of(path, b, sizeof(b));
    assert_string_equal(b, "m1.sda.qcow2");
    assert_image_clean(path);

    /* an attached and a detached clone */
    call_ok_put(x, "vm-clone", "{\"master\": \"m1\", \"name\": \"c1\"}");
    call_ok_put(x, "vm-clone", "{\"master\": \"m1\", \"name\": \"c2\", \"detached\": true}");
    snprintf(path, sizeof(path), "%s/c1.sda.qcow2", dir);
    backing_of(path, b, sizeof(b));
    assert_string_equal(b, "m1.sda.qcow2");
    snprintf(path, sizeof(path), "%s/c2.sda.qcow2", dir);
    backing_of(path, b, sizeof(b));
    assert_string_equal(b, "");
    assert_image_clean(path);
    assert_same_content(path, d->raw);
    assert_string_not_equal(query(x, "c1").uuid, query(x, "src").uuid);

    /* the guest reads the master's data in the attached clone, then writes */
    boot(x, "c1");
    guest_disk_md5(x, "c1", sum, sizeof(sum));
    assert_string_equal(sum, d->md5);
    guest_run(x, "c1", "dd if=/dev/urandom of=/dev/vda bs=65536 count=16 conv=fsync");
    guest_disk_md5(x, "c1", sum, sizeof(sum));
    assert_string_not_equal(sum, d->md5);
    vm_cmd(x, "vm-destroy", "c1");

    /* ...which neither the master nor its siblings see */
    snprintf(path, sizeof(path), "%s/m1.sda.qcow2", dir);
    assert_same_content(path, d->raw);
    boot(x, "c2");
    guest_disk_md5(x, "c2", sum, sizeof(sum));
    assert_string_equal(sum, d->md5);
    vm_cmd(x, "vm-destroy", "c2");
    boot(x, "src");
    guest_disk_md5(x, "src", sum, sizeof(sum));
    assert_string_equal(sum, d->md5);
    vm_cmd(x, "vm-destroy", "src");

    /* the master table, and a master with attached clones stays */
    reply = call_ok(x, "query-masters", NULL);
    json_object *m = json_object_array_get_idx(agent_return(reply), 0);
    assert_string_equal(json_object_get_string(member(m, "name")), "m1");
    assert_string_equal(json_object_get_string(member(m, "os")), "busybox");
    json_object_put(reply);
    call_fails(x, "master-delete", "{\"name\": \"m1\"}", "InvalidState", "master m1 has attached clones:");
    reply = NULL;
    assert_int_equal(agent_call(&x->conn, "master-delete", "{\"name\": \"m1\"}", CALL_MS, &reply), 0);
    assert_non_null(strstr(agent_error_desc(reply), "c1"));
    assert_non_null(strstr(agent_error_desc(reply), "src"));
    assert_null(strstr(agent_error_desc(reply), "c2"));
    json_object_put(reply);
}

static void a_detached_master_leaves_the_vm_as_it_was(void **state)
{
    data_t *d = *state;
    t *x = &d->base;
    char dir[512], path[700], b[700], before[64], after[64];

    images(x, dir, sizeof(dir));
    define(x, bare_def("src", "\"disks\": [{\"pool\": \"default\", \"volume\": \"src.sda.qcow2\"}]"));
    snprintf(path, sizeof(path), "%s/src.sda.qcow2", dir);
    sh_out(before, sizeof(before), "md5sum '%s' | cut -d' ' -f1", path);
    call_ok_put(x, "master-create", "{\"vm\": \"src\", \"master\": \"m2\", \"detached\": true}");
    sh_out(after, sizeof(after), "md5sum '%s' | cut -d' ' -f1", path);
    assert_string_equal(before, after);
    backing_of(path, b, sizeof(b));
    assert_string_equal(b, "");
    snprintf(path, sizeof(path), "%s/m2.sda.qcow2", dir);
    assert_same_content(path, d->raw);

    /* running VMs and taken names are refused */
    vm_cmd(x, "vm-start", "src");
    call_fails(x, "master-create", "{\"vm\": \"src\", \"master\": \"m3\"}", "InvalidState", NULL);
    vm_cmd(x, "vm-destroy", "src");
    call_fails(x, "master-create", "{\"vm\": \"src\", \"master\": \"m2\"}", "Exists", NULL);
    call_fails(x, "vm-clone", "{\"master\": \"m2\", \"name\": \"src\"}", "Exists", NULL);
    call_fails(x, "vm-clone", "{\"master\": \"nope\", \"name\": \"x\"}", "NotFound", NULL);

    /* with no clones a master goes, disks and all */
    call_ok_put(x, "master-delete", "{\"name\": \"m2\"}");
    assert_false(exists("%s", path));
}

/* ---- failures leave nothing ------------------------------------------------- */

typedef struct small_t {
    data_t data;
    char small[600];
} small_t;

static int setup_small_pool(void **state)
{
    setup_with_data(state);
    small_t *s = realloc(*state, sizeof(*s));
    char args[800];

    *state = s;
    snprintf(s->small, sizeof(s->small), "%s/small", s->data.base.agent.dir);
    mkdir(s->small, 0755);
    /* smaller than the clone's data, larger than its metadata */
    if (mount("tmpfs", s->small, "tmpfs", 0, "size=4m") < 0)
        fail_msg("mount tmpfs on %s: %s", s->small, strerror(errno));
    snprintf(args, sizeof(args), "{\"definition\": {\"name\": \"small\", \"location\": \"dir://%s\"}}", s->small);
    call_ok_put(&s->data.base, "pool-define", args);
    call_ok_put(&s->data.base, "pool-start", "{\"name\": \"small\"}");
    return 0;
}

static int teardown_small_pool(void **state)
{
    small_t *s = *state;

    umount2(s->small, MNT_DETACH);
    return teardown(state);
}

static void a_full_disk_fails_a_clone_cleanly(void **state)
{
    small_t *s = *state;
    t *x = &s->data.base;
    char dir[512], path[700], before[64], after[64];

    images(x, dir, sizeof(dir));
    define(x, bare_def("src", "\"disks\": [{\"pool\": \"default\", \"volume\": \"src.sda.qcow2\"}]"));
    call_ok_put(x, "master-create", "{\"vm\": \"src\", \"master\": \"m\", \"detached\": true}");
    snprintf(path, sizeof(path), "%s/m.sda.qcow2", dir);
    sh_out(before, sizeof(before), "md5sum '%s' | cut -d' ' -f1", path);

    call_fails(x, "vm-clone", "{\"master\": \"m\", \"name\": \"c\", \"detached\": true, \"pool\": \"small\"}",
               "NoSpace", NULL);
    assert_int_equal(count_files(s->small), 0);
    call_fails(x, "query-vm", "{\"name\": \"c\"}", "NotFound", NULL);
    sh_out(after, sizeof(after), "md5sum '%s' | cut -d' ' -f1", path);
    assert_string_equal(before, after);
    /* and the same for a master */
    call_fails(x, "master-create", "{\"vm\": \"src\", \"master\": \"m9\", \"pool\": \"small\"}", "NoSpace", NULL);
    assert_int_equal(count_files(s->small), 0);
    snprintf(path, sizeof(path), "%s/src.sda.qcow2", dir);
    assert_same_content(path, s->data.raw);
    char b[700];
    backing_of(path, b, sizeof(b));
    assert_string_equal(b, "");
    call_fails(x, "master-delete", "{\"name\": \"m9\"}", "NotFound", NULL);
}

static void a_cancelled_clone_removes_its_files(void **state)
{
    t *x = *state;
    char dir[512], data[700];
    agent_conn c2;
    json_object *reply;
    int id;

    images(x, dir, sizeof(dir));
    /* big enough that the copy is still running when the cancel arrives */
    snprintf(data, sizeof(data), "%s/big.raw", x->agent.dir);
    sh("qemu-img create -q -f raw '%s' 2G && dd if=/dev/urandom of='%s' bs=1M count=768 conv=notrunc status=none",
       data, data);
    sh("qemu-img convert -O qcow2 '%s' '%s/big.sda.qcow2'", data, dir);
    unlink(data);
    define(x, bare_def("big", "\"disks\": [{\"pool\": \"default\", \"volume\": \"big.sda.qcow2\"}]"));
    call_ok_put(x, "master-create", "{\"vm\": \"big\", \"master\": \"mb\", \"detached\": true}");

    assert_int_equal(agent_connect(&c2, x->agent.socket), 0);
    assert_true((id = agent_send(&c2, "vm-clone", "{\"master\": \"mb\", \"name\": \"cb\", \"detached\": true}")) > 0);
    /* the agent keeps answering while the copy runs */
    long long deadline = now_ms() + 10000;
    for (;;) {
        long long asked = now_ms();
        assert_int_equal(agent_call(&x->conn, "job-cancel", "{\"name\": \"cb\"}", CALL_MS, &reply), 0);
        /* answered within a few loop turns, however much the copy moves */
        assert_true(now_ms() - asked < 250);
        bool ok = agent_return(reply) != NULL;
        json_object_put(reply);
        if (ok)
            break;
        assert_true(now_ms() < deadline);
        usleep(5000);
    }
    assert_int_equal(agent_wait_reply(&c2, id, 120000, &reply), 0);
    assert_string_equal(agent_error_class(reply), "Cancelled");
    json_object_put(reply);
    agent_close(&c2);
    assert_false(exists("%s/cb.sda.qcow2", dir));
    char out[32];
    sh_out(out, sizeof(out), "ls -A '%s' | grep -c tmp", dir);
    assert_string_equal(out, "0");
    call_fails(x, "query-vm", "{\"name\": \"cb\"}", "NotFound", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(pools_are_defined_started_listed_and_stopped, setup_fake_nfs,
                                        teardown_fake_nfs),
        cmocka_unit_test_setup_teardown(an_nfs_pool_is_found_mounted_after_an_agent_restart, setup_fake_nfs,
                                        teardown_fake_nfs),
        cmocka_unit_test_setup_teardown(volumes_are_created_listed_and_deleted_with_their_users_checked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_size_in_the_definition_makes_the_disk_and_purge_removes_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(clones_boot_with_the_masters_data_and_keep_their_writes_apart,
                                        setup_with_data, teardown),
        cmocka_unit_test_setup_teardown(a_detached_master_leaves_the_vm_as_it_was, setup_with_data, teardown),
        cmocka_unit_test_setup_teardown(a_full_disk_fails_a_clone_cleanly, setup_small_pool, teardown_small_pool),
        cmocka_unit_test_setup_teardown(a_cancelled_clone_removes_its_files, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
