/* test_cgroup.c: per-VM cgroups, against fake v1 and v2 trees in a temp
 * directory and, when run as root on a host with controllers, against the
 * real cgroupfs with a child process standing in for QEMU.
 *
 * A plain directory is not cgroupfs, so the module's test hooks play the
 * kernel: a new directory gets the interface files its hierarchy would give
 * it (on v2, cpu.weight and memory.max only when the parent's
 * subtree_control enables them), and a directory about to be removed loses
 * them unless its cgroup.procs lists a process. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/cgroup.h"

#define ERR_LEN 512
#define MIB (1024ull * 1024)

/* ---- the fake tree ------------------------------------------------------------------------- */

typedef struct fake {
    char root[PATH_MAX];     /* the temp dir, given as sysfs_cgroup_root */
    char mounts[PATH_MAX];   /* the fake /proc/self/mounts */
    bool v2;
} fake;

/* The hooks are plain functions: they find the tree here. */
static fake *current;

static void pathf(char out[PATH_MAX], const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void pathf(char out[PATH_MAX], const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(out, PATH_MAX, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && n < PATH_MAX);
}

static void put_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "we");

    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* The file's whole content, or "(missing)". */
static const char *get_file(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "re");
    size_t n;

    if (!f)
        return "(missing)";
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static const char *get_at(const char *dir, const char *file)
{
    char path[PATH_MAX];

    pathf(path, "%s/%s", dir, file);
    return get_file(path);
}

static void put_at(const char *dir, const char *file, const char *text)
{
    char path[PATH_MAX];

    pathf(path, "%s/%s", dir, file);
    put_file(path, text);
}

static bool exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

static void mkdir_at(const fake *f, const char *rel)
{
    char path[PATH_MAX];

    pathf(path, "%s%s", f->root, rel);
    assert_int_equal(mkdir(path, 0755), 0);
}

/* The fake kernel: what a new group of each hierarchy shows. */
static void fake_after_mkdir(const char *dir)
{
    char parent[PATH_MAX];
    const char *enabled;

    put_at(dir, "cgroup.procs", "");
    if (!current->v2) {
        if (strstr(dir, "/cpu,cpuacct/"))
            put_at(dir, "cpu.shares", "1024\n");
        if (strstr(dir, "/memory/"))
            put_at(dir, "memory.limit_in_bytes", "9223372036854771712\n");
        return;
    }
    pathf(parent, "%s", dir);
    *strrchr(parent, '/') = '\0';
    enabled = get_at(parent, "cgroup.subtree_control");
    put_at(dir, "cgroup.subtree_control", "");
    put_at(dir, "cgroup.controllers", enabled);
    if (strstr(enabled, "cpu"))
        put_at(dir, "cpu.weight", "100\n");
    if (strstr(enabled, "memory"))
        put_at(dir, "memory.max", "max\n");
}

static int unlink_file(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    if (type == FTW_F && ftw->level == 1)
        unlink(path);
    return 0;
}

/* The kernel refuses to remove a group with a process in it; otherwise its
 * files go with it. */
static void fake_before_rmdir(const char *dir)
{
    char path[PATH_MAX];

    pathf(path, "%s/cgroup.procs", dir);
    if (!exists(path) || get_file(path)[0])
        return;
    nftw(dir, unlink_file, 8, FTW_PHYS);
}

static fake *fake_new(bool v2, const char *mounts)
{
    fake *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    pathf(f->root, "/tmp/test_cgroup.XXXXXX");
    assert_non_null(mkdtemp(f->root));
    pathf(f->mounts, "%s/mounts", f->root);
    put_file(f->mounts, mounts);
    f->v2 = v2;
    mkdir_at(f, "/sys");
    mkdir_at(f, "/sys/fs");
    mkdir_at(f, "/sys/fs/cgroup");
    current = f;
    cg_test_after_mkdir = fake_after_mkdir;
    cg_test_before_rmdir = fake_before_rmdir;
    return f;
}

static int remove_any(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    remove(path);
    return 0;
}

static void fake_free(fake *f)
{
    nftw(f->root, remove_any, 16, FTW_DEPTH | FTW_PHYS);
    cg_test_after_mkdir = NULL;
    cg_test_before_rmdir = NULL;
    current = NULL;
    free(f);
}

/* A v1 host as systemd's hybrid layout makes it: cpu co-mounted with
 * cpuacct, memory alone, cpuacct and cpuset mounts whose names merely start
 * with "cpu", and a cgroup2 mount without controllers. */
static const char v1_mounts[] =
    "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n"
    "tmpfs /sys/fs/cgroup tmpfs ro,nosuid,nodev,noexec,mode=755 0 0\n"
    "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0\n"
    "cgroup /sys/fs/cgroup/cpuacct cgroup rw,nosuid,nodev,noexec,relatime,cpuacct 0 0\n"
    "cgroup /sys/fs/cgroup/cpuset cgroup rw,nosuid,nodev,noexec,relatime,cpuset 0 0\n"
    "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0\n"
    "cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,nodev,noexec,relatime,memory 0 0\n";

static int setup_v1(void **state)
{
    fake *f = fake_new(false, v1_mounts);
    static const char *const dirs[] = { "cpu,cpuacct", "cpuacct", "cpuset", "memory", "unified" };
    char path[PATH_MAX];

    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        pathf(path, "/sys/fs/cgroup/%s", dirs[i]);
        mkdir_at(f, path);
    }
    *state = f;
    return 0;
}

static int setup_v2(void **state)
{
    fake *f = fake_new(true, "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n");
    char dir[PATH_MAX];

    pathf(dir, "%s/sys/fs/cgroup", f->root);
    put_at(dir, "cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
    put_at(dir, "cgroup.subtree_control", "");
    put_at(dir, "cgroup.procs", "1\n");
    *state = f;
    return 0;
}

static int teardown_fake(void **state)
{
    fake_free(*state);
    return 0;
}

static void detect(const fake *f, const char *parent, cg_host *h)
{
    char err[ERR_LEN] = "";

    assert_int_equal(cg_host_detect(f->mounts, f->root, parent, h, err, sizeof(err)), 0);
}

/* ROOT/sys/fs/cgroup/HIER/REL */
static void tree_path(const fake *f, char out[PATH_MAX], const char *hier, const char *rel)
{
    pathf(out, "%s/sys/fs/cgroup%s%s%s", f->root, hier[0] ? "/" : "", hier, rel);
}

/* ---- detection ----------------------------------------------------------------------------- */

static void detect_finds_cpu_co_mounted_with_cpuacct_and_memory_on_a_v1_host(void **state)
{
    fake *f = *state;
    char want[PATH_MAX];
    cg_host h;

    detect(f, "agentd", &h);
    assert_int_equal(h.mode, CG_V1);
    assert_string_equal(cg_mode_name(&h), "v1");
    assert_int_equal(h.n, 2);
    tree_path(f, want, "cpu,cpuacct", "");
    assert_string_equal(h.h[0].root, want);
    assert_int_equal(h.h[0].controllers, CG_CPU);
    tree_path(f, want, "memory", "");
    assert_string_equal(h.h[1].root, want);
    assert_int_equal(h.h[1].controllers, CG_MEMORY);
    assert_string_equal(h.parent, "agentd");
}

static void detect_uses_the_unified_hierarchy_when_it_offers_cpu_and_memory(void **state)
{
    fake *f = *state;
    char want[PATH_MAX];
    cg_host h;

    detect(f, "agentd", &h);
    assert_int_equal(h.mode, CG_V2);
    assert_string_equal(cg_mode_name(&h), "v2");
    assert_int_equal(h.n, 1);
    tree_path(f, want, "", "");
    assert_string_equal(h.h[0].root, want);
    assert_int_equal(h.h[0].controllers, CG_CPU | CG_MEMORY);
}

static void detect_finds_none_when_the_unified_hierarchy_lacks_the_controllers(void **state)
{
    fake *f = *state;
    char dir[PATH_MAX];
    cg_host h;

    tree_path(f, dir, "", "");
    put_at(dir, "cgroup.controllers", "cpuset io pids\n");
    detect(f, "agentd", &h);
    assert_int_equal(h.mode, CG_NONE);
    assert_int_equal(h.n, 0);
    assert_string_equal(cg_mode_name(&h), "none");
}

static void detect_decodes_escaped_spaces_in_mount_points(void **state)
{
    fake *f = *state;
    char want[PATH_MAX];
    cg_host h;

    put_file(f->mounts, "cgroup /sys/fs/cgroup/my\\040memory cgroup rw,memory 0 0\n");
    detect(f, "agentd", &h);
    assert_int_equal(h.mode, CG_V1);
    assert_int_equal(h.n, 1);
    tree_path(f, want, "my memory", "");
    assert_string_equal(h.h[0].root, want);
    assert_int_equal(h.h[0].controllers, CG_MEMORY);
}

static void detect_names_a_mounts_file_it_cannot_read_and_leaves_the_result_alone(void **state)
{
    fake *f = *state;
    char err[ERR_LEN] = "", missing[PATH_MAX];
    cg_host h = {.mode = CG_V2, .n = 7};

    pathf(missing, "%s/no-such-mounts", f->root);
    assert_int_equal(cg_host_detect(missing, f->root, "agentd", &h, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, missing));
    assert_int_equal(h.mode, CG_V2);
    assert_int_equal(h.n, 7);
}

static void a_bad_parent_is_refused_with_a_message_naming_parent(void **state)
{
    static const char *const bad[] = { "", "/agentd", "agentd/", "a//b", "..", "a/../b", ".hidden", "a b" };
    fake *f = *state;
    cg_host h;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[ERR_LEN] = "";

        assert_int_equal(cg_host_detect(f->mounts, f->root, bad[i], &h, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "parent"));
    }
}

/* ---- v1 ------------------------------------------------------------------------------------ */

static void create_on_v1_writes_shares_for_the_weight_and_the_memory_limit(void **state)
{
    fake *f = *state;
    cg_limits lim = {.cpu_weight = 50, .memory_max = 256 * MIB};
    char err[ERR_LEN] = "", dir[PATH_MAX];
    cg_host h;

    detect(f, "agentd", &h);
    assert_int_equal(cg_vm_create(&h, "vm1", &lim, err, sizeof(err)), 0);
    tree_path(f, dir, "cpu,cpuacct", "/agentd/vm-vm1");
    assert_string_equal(get_at(dir, "cpu.shares"), "512");
    assert_string_equal(get_at(dir, "memory.limit_in_bytes"), "(missing)");
    tree_path(f, dir, "memory", "/agentd/vm-vm1");
    assert_string_equal(get_at(dir, "memory.limit_in_bytes"), "268435456");
    assert_string_equal(get_at(dir, "cpu.shares"), "(missing)");
}

static void create_on_v1_gives_weight_100_the_default_1024_shares(void **state)
{
    fake *f = *state;
    cg_limits lim = {.cpu_weight = 100};
    char err[ERR_LEN] = "", dir[PATH_MAX];
    cg_host h;

    detect(f, "agentd", &h);
    assert_int_equal(cg_vm_create(&h, "vm1", &lim, err, sizeof(err)), 0);
    tree_path(f, dir, "cpu,cpuacct", "/agentd/vm-vm1");
    assert_string_equal(get_at(dir, "cpu.shares"), "1024");
    tree_path(f, dir, "memory", "/agentd/vm-vm1");
    assert_string_equal(get_at(dir, "memory.limit_in_bytes"), "-1");
}

static void create_reuses_a_group_left_by_a_crash_and_rewrites_its_limits(void **state)
{
    fake *f = *state;
    cg_limits first = {.cpu_weight = 50, .memory_max = 256 * MIB}, none = {0};
    char err[ERR_LEN] = "", dir[PATH_MAX];
    cg_host h;

    detect(f, "agentd", &h);
    assert_int_equal(cg_vm_create(&h, "vm1", &first, err, sizeof(err)), 0);
    assert_int_equal(cg_vm_create(&h, "vm1", &none, err, sizeof(err)), 0);
    tree_path(f, dir, "cpu,cpuacct", "/agentd/vm-vm1");
    assert_string_equal(get_at(dir, "cpu.shares"), "1024");
    tree_path(f, dir, "memory", "/agentd/vm-vm1");
    assert_string_equal(get_at(dir, "memory.limit_in_bytes"), "-1");
}

static void attach_writes_the_pid_to_cgroup_procs_in_each_hierarchy(void **state)
{
    fake *f = *state;
    cg_limits lim = {.cpu_weight = 50};
    char err[ERR_LEN] = "", dir[PATH_MAX];
    cg_host h;

    detect(f, "agentd", &h);
    assert_int_equal(cg_vm_create(&h, "vm1", &lim, err, sizeof(err)), 0);
    assert_int_equal(cg_vm_attach(&h, "vm1", 4242, err, sizeof(err)), 0);
    tree_path(f, dir, "cpu,cpuacct", "/agentd/vm-vm1");
    assert_string_equal(get_at(dir, "cgroup.procs"), "4242");
    tree_path(f, dir, "memory", "/agentd/vm-vm1");
    assert_string_equal(get_at(dir, "cgroup.procs"), "4242");
}

static void attach_to_a_group_never_created_fails_naming_its_file(void **state)
{
    fake *f = *state;
    char err[ERR_LEN] = "", want[PATH_MAX];
    cg_host h;

    detect(f, "agentd", &h);
    assert_int_equal(cg_vm_attach(&h, "ghost", 4242, err, sizeof(err)), -ENOENT);
    tree_path(f, want, "cpu,cpuacct", "/agentd/vm-ghost/cgroup.procs");
    assert_non_null(strstr(err, want));
}

static void find_says_whether_the_pid_is_in_the_group(void **state)
{
    fake *f = *state;
    cg_limits lim = {0};
    char err[ERR_LEN] = "", dir[PATH_MAX];
    cg_host h;

    detect(f, "agentd", &h);
    assert_int_equal(cg_vm_create(&h, "vm1", &lim, err, sizeof(err)), 0);
    assert_int_equal(cg_vm_find(&h, "vm1", 4242), 0);
    /* As the kernel lists them: one pid a line, the QEMU among others. */
    tree_path(f, dir, "cpu,cpuacct", "/agentd/vm-vm1");
    put_at(dir, "cgroup.procs", "17\n4242\n99\n");
    assert_int_equal(cg_vm_find(&h, "vm1", 4242), 1);
    assert_int_equal(cg_vm_find(&h, "vm1", 424), 0);
    assert_int_equal(cg_vm_find(&h, "vm1", 42421), 0);
    assert_int_equal(cg_vm_find(&h, "other", 4242), 0);
}

static void remove_deletes_the_group_in_each_hierarchy_and_a_missing_one_is_fine(void **state)
{
    fake *f = *state;
    cg_limits lim = {.cpu_weight = 50, .memory_max = 256 * MIB};
    char err[ERR_LEN] = "", cpu[PATH_MAX], mem[PATH_MAX], parent[PATH_MAX];
    cg_host h;

    detect(f, "agentd", &h);
    assert_int_equal(cg_vm_create(&h, "vm1", &lim, err, sizeof(err)), 0);
    tree_path(f, cpu, "cpu,cpuacct", "/agentd/vm-vm1");
    tree_path(f, mem, "memory", "/agentd/vm-vm1");
    assert_true(exists(cpu) && exists(mem));
    assert_int_equal(cg_vm_remove(&h, "vm1", err, sizeof(err)), 0);
    assert_false(exists(cpu));
    assert_false(exists(mem));
    /* The parent is shared with other VMs and stays. */
    tree_path(f, parent, "memory", "/agentd");
    assert_true(exists(parent));
    assert_int_equal(cg_vm_remove(&h, "vm1", err, sizeof(err)), 0);
}

static void remove_names_the_directory_of_a_group_that_still_holds_a_process(void **state)
{
    fake *f = *state;
    cg_limits lim = {0};
    char err[ERR_LEN] = "", cpu[PATH_MAX], mem[PATH_MAX];
    cg_host h;

    detect(f, "agentd", &h);
    assert_int_equal(cg_vm_create(&h, "vm1", &lim, err, sizeof(err)), 0);
    tree_path(f, cpu, "cpu,cpuacct", "/agentd/vm-vm1");
    tree_path(f, mem, "memory", "/agentd/vm-vm1");
    put_at(mem, "cgroup.procs", "4242\n");
    assert_true(cg_vm_remove(&h, "vm1", err, sizeof(err)) < 0);
    assert_non_null(strstr(err, mem));
    /* The other hierarchy's group was still removed. */
    assert_false(exists(cpu));
    assert_true(exists(mem));
}

static void bad_names_are_refused_with_a_message_naming_name(void **state)
{
    static const char *const bad[] = { "", ".", "..", ".hidden", "a/b", "a b", "vm\n1", "vm:1", "vm*",
                                       "0123456789012345678901234567890123456789012345678901234567890123x" };
    fake *f = *state;
    cg_limits lim = {0};
    char parent[PATH_MAX];
    cg_host h;

    detect(f, "agentd", &h);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[ERR_LEN] = "";

        assert_int_equal(cg_vm_create(&h, bad[i], &lim, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "name"));
        err[0] = '\0';
        assert_int_equal(cg_vm_attach(&h, bad[i], 1, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "name"));
        err[0] = '\0';
        assert_int_equal(cg_vm_remove(&h, bad[i], err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "name"));
        assert_int_equal(cg_vm_find(&h, bad[i], 1), -EINVAL);
    }
    /* Nothing was made for any of them. */
    tree_path(f, parent, "cpu,cpuacct", "/agentd");
    assert_false(exists(parent));
}

static void names_of_64_allowed_characters_are_accepted(void **state)
{
    const char *name = "One.two_3-456789012345678901234567890123456789012345678901234567";
    fake *f = *state;
    cg_limits lim = {0};
    char err[ERR_LEN] = "";
    cg_host h;

    assert_int_equal(strlen(name), 64);
    detect(f, "agentd", &h);
    assert_int_equal(cg_vm_create(&h, name, &lim, err, sizeof(err)), 0);
}

static void a_weight_above_10000_is_refused_before_anything_is_made(void **state)
{
    fake *f = *state;
    cg_limits lim = {.cpu_weight = 10001};
    char err[ERR_LEN] = "", parent[PATH_MAX];
    cg_host h;

    detect(f, "agentd", &h);
    assert_int_equal(cg_vm_create(&h, "vm1", &lim, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "cpu_weight"));
    tree_path(f, parent, "cpu,cpuacct", "/agentd");
    assert_false(exists(parent));
}

static void a_memory_limit_without_a_memory_controller_is_not_silently_dropped(void **state)
{
    fake *f = *state;
    cg_limits lim = {.cpu_weight = 50, .memory_max = 256 * MIB};
    char err[ERR_LEN] = "";
    cg_host h;

    put_file(f->mounts, "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n");
    detect(f, "agentd", &h);
    assert_int_equal(h.n, 1);
    assert_int_equal(cg_vm_create(&h, "vm1", &lim, err, sizeof(err)), -EOPNOTSUPP);
    assert_non_null(strstr(err, "memory"));
}

/* ---- v2 ------------------------------------------------------------------------------------ */

static void create_on_v2_enables_the_controllers_down_to_the_parent_and_writes_the_limits(void **state)
{
    fake *f = *state;
    cg_limits lim = {.cpu_weight = 50, .memory_max = 256 * MIB};
    char err[ERR_LEN] = "", dir[PATH_MAX];
    cg_host h;

    detect(f, "agentd", &h);
    assert_int_equal(cg_vm_create(&h, "vm1", &lim, err, sizeof(err)), 0);
    tree_path(f, dir, "", "");
    assert_string_equal(get_at(dir, "cgroup.subtree_control"), "+cpu +memory");
    tree_path(f, dir, "", "/agentd");
    assert_string_equal(get_at(dir, "cgroup.subtree_control"), "+cpu +memory");
    tree_path(f, dir, "", "/agentd/vm-vm1");
    assert_string_equal(get_at(dir, "cpu.weight"), "50");
    assert_string_equal(get_at(dir, "memory.max"), "268435456");
    /* The VM's group has no children to hand controllers to. */
    assert_string_equal(get_at(dir, "cgroup.subtree_control"), "");
}

static void create_on_v2_enables_every_level_of_a_nested_parent(void **state)
{
    fake *f = *state;
    cg_limits lim = {.cpu_weight = 250};
    char err[ERR_LEN] = "", dir[PATH_MAX];
    cg_host h;

    detect(f, "machine.slice/agentd", &h);
    assert_int_equal(cg_vm_create(&h, "vm1", &lim, err, sizeof(err)), 0);
    tree_path(f, dir, "", "/machine.slice");
    assert_string_equal(get_at(dir, "cgroup.subtree_control"), "+cpu +memory");
    tree_path(f, dir, "", "/machine.slice/agentd");
    assert_string_equal(get_at(dir, "cgroup.subtree_control"), "+cpu +memory");
    tree_path(f, dir, "", "/machine.slice/agentd/vm-vm1");
    assert_string_equal(get_at(dir, "cpu.weight"), "250");
    assert_string_equal(get_at(dir, "memory.max"), "max");
}

static void create_on_v2_names_a_subtree_control_file_that_refuses_the_controllers(void **state)
{
    fake *f = *state;
    cg_limits lim = {.cpu_weight = 50};
    char err[ERR_LEN] = "", dir[PATH_MAX], path[PATH_MAX];
    cg_host h;

    /* Writes to /dev/full fail with ENOSPC, and what it reads back is no
     * controller list: the refusal cannot be excused. */
    tree_path(f, dir, "", "");
    pathf(path, "%s/cgroup.subtree_control", dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(symlink("/dev/full", path), 0);
    detect(f, "agentd", &h);
    assert_int_equal(cg_vm_create(&h, "vm1", &lim, err, sizeof(err)), -ENOSPC);
    assert_non_null(strstr(err, path));
}

static void attach_find_and_remove_work_on_v2(void **state)
{
    fake *f = *state;
    cg_limits lim = {.cpu_weight = 50};
    char err[ERR_LEN] = "", dir[PATH_MAX];
    cg_host h;

    detect(f, "agentd", &h);
    assert_int_equal(cg_vm_create(&h, "vm1", &lim, err, sizeof(err)), 0);
    assert_int_equal(cg_vm_attach(&h, "vm1", 4242, err, sizeof(err)), 0);
    tree_path(f, dir, "", "/agentd/vm-vm1");
    assert_string_equal(get_at(dir, "cgroup.procs"), "4242");
    assert_int_equal(cg_vm_find(&h, "vm1", 4242), 1);
    assert_int_equal(cg_vm_find(&h, "vm1", 4243), 0);
    put_at(dir, "cgroup.procs", "");
    assert_int_equal(cg_vm_remove(&h, "vm1", err, sizeof(err)), 0);
    assert_false(exists(dir));
}

/* ---- no controllers, and the conversions -------------------------------------------------- */

static void calls_on_a_host_without_controllers_say_not_supported(void **state)
{
    cg_host h = {.mode = CG_NONE};
    cg_limits lim = {0};
    char err[ERR_LEN] = "";

    (void)state;
    assert_int_equal(cg_vm_create(&h, "vm1", &lim, err, sizeof(err)), -EOPNOTSUPP);
    assert_int_equal(cg_vm_attach(&h, "vm1", 1, err, sizeof(err)), -EOPNOTSUPP);
    assert_int_equal(cg_vm_find(&h, "vm1", 1), -EOPNOTSUPP);
    assert_int_equal(cg_vm_remove(&h, "vm1", err, sizeof(err)), 0);
    assert_string_equal(cg_mode_name(&h), "none");
}

static void weight_from_cpu_is_cpu_times_100_rounded_and_clamped(void **state)
{
    (void)state;
    assert_int_equal(cg_weight_from_cpu(1.0), 100);
    assert_int_equal(cg_weight_from_cpu(0.5), 50);
    assert_int_equal(cg_weight_from_cpu(0.296), 30);
    assert_int_equal(cg_weight_from_cpu(0.294), 29);
    assert_int_equal(cg_weight_from_cpu(4.0), 400);
    assert_int_equal(cg_weight_from_cpu(0.001), 1);
    assert_int_equal(cg_weight_from_cpu(0), 1);
    assert_int_equal(cg_weight_from_cpu(-2), 1);
    assert_int_equal(cg_weight_from_cpu(NAN), 1);
    assert_int_equal(cg_weight_from_cpu(100.0), 10000);
    assert_int_equal(cg_weight_from_cpu(1e9), 10000);
}

static void shares_are_the_weight_on_v1s_scale_of_1024(void **state)
{
    (void)state;
    assert_int_equal(cg_shares_from_weight(100), 1024);
    assert_int_equal(cg_shares_from_weight(50), 512);
    assert_int_equal(cg_shares_from_weight(1), 10);
    assert_int_equal(cg_shares_from_weight(10000), 102400);
}

/* ---- the real host ------------------------------------------------------------------------- */

typedef struct real {
    cg_host h;
    pid_t child;
} real;

static int setup_real(void **state)
{
    real *r = calloc(1, sizeof(*r));
    char parent[64];

    assert_non_null(r);
    r->child = -1;
    snprintf(parent, sizeof(parent), "agentd-test-%d", (int)getpid());
    if (cg_host_detect(NULL, NULL, parent, &r->h, NULL, 0) < 0)
        r->h.mode = CG_NONE;
    *state = r;
    return 0;
}

/* Runs even when the test failed half way: no child, group or parent of
 * ours may be left on the host. */
static int teardown_real(void **state)
{
    real *r = *state;
    char dir[PATH_MAX];

    if (r->child > 0) {
        kill(r->child, SIGKILL);
        waitpid(r->child, NULL, 0);
    }
    if (r->h.mode != CG_NONE) {
        cg_vm_remove(&r->h, "vm1", NULL, 0);
        for (size_t i = 0; i < r->h.n; i++) {
            pathf(dir, "%s/%s", r->h.h[i].root, r->h.parent);
            rmdir(dir);
        }
    }
    free(r);
    return 0;
}

static pid_t fork_sleeper(void)
{
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (;;)
            pause();
    }
    return pid;
}

static void a_child_gets_its_limits_and_group_on_the_real_host(void **state)
{
    real *r = *state;
    cg_limits lim = {.cpu_weight = 50, .memory_max = 256 * MIB};
    char err[ERR_LEN] = "", dir[PATH_MAX], want[32];
    cg_host *h = &r->h;

    if (geteuid() != 0 || h->mode == CG_NONE)
        skip();
    assert_int_equal(cg_vm_create(h, "vm1", &lim, err, sizeof(err)), 0);
    r->child = fork_sleeper();
    assert_int_equal(cg_vm_attach(h, "vm1", r->child, err, sizeof(err)), 0);
    for (size_t i = 0; i < h->n; i++) {
        pathf(dir, "%s/%s/vm-vm1", h->h[i].root, h->parent);
        snprintf(want, sizeof(want), "%d\n", (int)r->child);
        assert_string_equal(get_at(dir, "cgroup.procs"), want);
        if ((h->h[i].controllers & CG_CPU) && h->mode == CG_V1)
            assert_string_equal(get_at(dir, "cpu.shares"), "512\n");
        if ((h->h[i].controllers & CG_CPU) && h->mode == CG_V2)
            assert_string_equal(get_at(dir, "cpu.weight"), "50\n");
        if ((h->h[i].controllers & CG_MEMORY) && h->mode == CG_V1)
            assert_string_equal(get_at(dir, "memory.limit_in_bytes"), "268435456\n");
        if ((h->h[i].controllers & CG_MEMORY) && h->mode == CG_V2)
            assert_string_equal(get_at(dir, "memory.max"), "268435456\n");
    }
    assert_int_equal(cg_vm_find(h, "vm1", r->child), 1);
    assert_int_equal(cg_vm_find(h, "vm1", getpid()), 0);

    /* While the child is inside, the kernel keeps the group. */
    pathf(dir, "%s/%s/vm-vm1", h->h[0].root, h->parent);
    assert_int_equal(cg_vm_remove(h, "vm1", err, sizeof(err)), -EBUSY);
    assert_non_null(strstr(err, dir));

    assert_int_equal(kill(r->child, SIGKILL), 0);
    assert_int_equal(waitpid(r->child, NULL, 0), r->child);
    r->child = -1;
    assert_int_equal(cg_vm_remove(h, "vm1", err, sizeof(err)), 0);
    for (size_t i = 0; i < h->n; i++) {
        pathf(dir, "%s/%s/vm-vm1", h->h[i].root, h->parent);
        assert_false(exists(dir));
        pathf(dir, "%s/%s", h->h[i].root, h->parent);
        assert_int_equal(rmdir(dir), 0);
        assert_false(exists(dir));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(detect_finds_cpu_co_mounted_with_cpuacct_and_memory_on_a_v1_host, setup_v1,
                                        teardown_fake),
        cmocka_unit_test_setup_teardown(detect_uses_the_unified_hierarchy_when_it_offers_cpu_and_memory, setup_v2,
                                        teardown_fake),
        cmocka_unit_test_setup_teardown(detect_finds_none_when_the_unified_hierarchy_lacks_the_controllers,
                                        setup_v2, teardown_fake),
        cmocka_unit_test_setup_teardown(detect_decodes_escaped_spaces_in_mount_points, setup_v1, teardown_fake),
        cmocka_unit_test_setup_teardown(detect_names_a_mounts_file_it_cannot_read_and_leaves_the_result_alone,
                                        setup_v1, teardown_fake),
        cmocka_unit_test_setup_teardown(a_bad_parent_is_refused_with_a_message_naming_parent, setup_v1,
                                        teardown_fake),
        cmocka_unit_test_setup_teardown(create_on_v1_writes_shares_for_the_weight_and_the_memory_limit, setup_v1,
                                        teardown_fake),
        cmocka_unit_test_setup_teardown(create_on_v1_gives_weight_100_the_default_1024_shares, setup_v1,
                                        teardown_fake),
        cmocka_unit_test_setup_teardown(create_reuses_a_group_left_by_a_crash_and_rewrites_its_limits, setup_v1,
                                        teardown_fake),
        cmocka_unit_test_setup_teardown(attach_writes_the_pid_to_cgroup_procs_in_each_hierarchy, setup_v1,
                                        teardown_fake),
        cmocka_unit_test_setup_teardown(attach_to_a_group_never_created_fails_naming_its_file, setup_v1,
                                        teardown_fake),
        cmocka_unit_test_setup_teardown(find_says_whether_the_pid_is_in_the_group, setup_v1, teardown_fake),
        cmocka_unit_test_setup_teardown(remove_deletes_the_group_in_each_hierarchy_and_a_missing_one_is_fine,
                                        setup_v1, teardown_fake),
        cmocka_unit_test_setup_teardown(remove_names_the_directory_of_a_group_that_still_holds_a_process, setup_v1,
                                        teardown_fake),
        cmocka_unit_test_setup_teardown(bad_names_are_refused_with_a_message_naming_name, setup_v1, teardown_fake),
        cmocka_unit_test_setup_teardown(names_of_64_allowed_characters_are_accepted, setup_v1, teardown_fake),
        cmocka_unit_test_setup_teardown(a_weight_above_10000_is_refused_before_anything_is_made, setup_v1,
                                        teardown_fake),
        cmocka_unit_test_setup_teardown(a_memory_limit_without_a_memory_controller_is_not_silently_dropped,
                                        setup_v1, teardown_fake),
        cmocka_unit_test_setup_teardown(create_on_v2_enables_the_controllers_down_to_the_parent_and_writes_the_limits,
                                        setup_v2, teardown_fake),
        cmocka_unit_test_setup_teardown(create_on_v2_enables_every_level_of_a_nested_parent, setup_v2,
                                        teardown_fake),
        cmocka_unit_test_setup_teardown(create_on_v2_names_a_subtree_control_file_that_refuses_the_controllers,
                                        setup_v2, teardown_fake),
        cmocka_unit_test_setup_teardown(attach_find_and_remove_work_on_v2, setup_v2, teardown_fake),
        cmocka_unit_test(calls_on_a_host_without_controllers_say_not_supported),
        cmocka_unit_test(weight_from_cpu_is_cpu_times_100_rounded_and_clamped),
        cmocka_unit_test(shares_are_the_weight_on_v1s_scale_of_1024),
        cmocka_unit_test_setup_teardown(a_child_gets_its_limits_and_group_on_the_real_host, setup_real,
                                        teardown_real),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
