/* test_net_passthrough.c: VFIO binding and SR-IOV through a fake sysfs
 * tree in a temp directory. The tree has what the kernel shows (device
 * directories, driver and iommu_group symlinks, sriov files); every write
 * net/ makes goes through a hook that records it and does what the kernel
 * would (unbind drops the driver link, drivers_probe binds by
 * driver_override, sriov_numvfs refuses a change between non-zero counts).
 * The tests check the recorded sequence and the state the tree ends in. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/passthrough.h"

#define ERR_LEN 512
#define LOG_MAX 32

typedef struct fake {
    char root[PATH_MAX];
    net_sysfs sysfs;
    char log[LOG_MAX][PATH_MAX + 64];
    size_t nlog;
    const char *fail;              /* writes whose path ends so fail with -EIO */
} fake;

/* ---- the tree ------------------------------------------------------------------------------ */

static void pathf(const fake *f, char out[PATH_MAX], const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(out, PATH_MAX, "%s", f->root);

    va_start(ap, fmt);
    vsnprintf(out + n, PATH_MAX - (size_t)n, fmt, ap);
    va_end(ap);
}

static void put_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void get_file(const char *path, char *out, size_t outlen)
{
    FILE *fp = fopen(path, "r");
    size_t n;

    assert_non_null(fp);
    n = fread(out, 1, outlen - 1, fp);
    out[n] = '\0';
    fclose(fp);
}

static void mkdirs(const char *path)
{
    char tmp[PATH_MAX];

    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    mkdir(tmp, 0755);
}

static void add_driver(fake *f, const char *name)
{
    char p[PATH_MAX];

    pathf(f, p, "/sys/bus/pci/drivers/%s", name);
    mkdirs(p);
    pathf(f, p, "/sys/bus/pci/drivers/%s/bind", name);
    put_file(p, "");
    pathf(f, p, "/sys/bus/pci/drivers/%s/unbind", name);
    put_file(p, "");
}

static void link_driver(fake *f, const char *addr, const char *driver)
{
    char target[PATH_MAX], p[PATH_MAX];

    pathf(f, target, "/sys/bus/pci/drivers/%s", driver);
    pathf(f, p, "/sys/bus/pci/devices/%s/driver", addr);
    assert_int_equal(symlink(target, p), 0);
}

/* A device, bound to driver ("" for none), in IOMMU group (-1 for none). */
static void add_device(fake *f, const char *addr, const char *cls, const char *driver, int group)
{
    char p[PATH_MAX], target[PATH_MAX];

    pathf(f, p, "/sys/bus/pci/devices/%s", addr);
    mkdirs(p);
    pathf(f, p, "/sys/bus/pci/devices/%s/class", addr);
    put_file(p, cls);
    pathf(f, p, "/sys/bus/pci/devices/%s/driver_override", addr);
    put_file(p, "(null)\n");
    if (*driver)
        link_driver(f, addr, driver);
    if (group < 0)
        return;
    pathf(f, target, "/sys/kernel/iommu_groups/%d/devices", group);
    mkdirs(target);
    pathf(f, p, "/sys/kernel/iommu_groups/%d/devices/%s", group, addr);
    pathf(f, target, "/sys/bus/pci/devices/%s", addr);
    assert_int_equal(symlink(target, p), 0);
    pathf(f, target, "/sys/kernel/iommu_groups/%d", group);
    pathf(f, p, "/sys/bus/pci/devices/%s/iommu_group", addr);
    assert_int_equal(symlink(target, p), 0);
}

static void driver_of(fake *f, const char *addr, char out[64])
{
    char p[PATH_MAX], target[PATH_MAX];
    ssize_t n;

    pathf(f, p, "/sys/bus/pci/devices/%s/driver", addr);
    if ((n = readlink(p, target, sizeof(target) - 1)) < 0) {
        out[0] = '\0';
        return;
    }
    target[n] = '\0';
    snprintf(out, 64, "%s", strrchr(target, '/') + 1);
}

static void override_of(fake *f, const char *addr, char out[64])
{
    char p[PATH_MAX];

    pathf(f, p, "/sys/bus/pci/devices/%s/driver_override", addr);
    get_file(p, out, 64);
}

/* ---- the kernel's side of each write --------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n >= m && !strcmp(s + n - m, suffix);
}

/* "drivers/NAME/bind" -> NAME */
static void driver_in_path(const char *rel, char out[64])
{
    const char *p = strstr(rel, "/drivers/") + strlen("/drivers/");

    snprintf(out, 64, "%.*s", (int)(strchr(p, '/') - p), p);
}

static int kernel_unbind(fake *f, const char *rel, const char *addr)
{
    char want[64], now[64], p[PATH_MAX];

    driver_in_path(rel, want);
    driver_of(f, addr, now);
    if (strcmp(want, now) != 0)
        return -ENODEV;
    pathf(f, p, "/sys/bus/pci/devices/%s/driver", addr);
    return unlink(p) < 0 ? -errno : 0;
}

static int kernel_bind(fake *f, const char *rel, const char *addr)
{
    char want[64], now[64];

    driver_in_path(rel, want);
    driver_of(f, addr, now);
    if (*now)
        return -EBUSY;
    link_driver(f, addr, want);
    return 0;
}

/* Binds by driver_override when the named driver is loaded. */
static int kernel_probe(fake *f, const char *addr)
{
    char now[64], ovr[64], p[PATH_MAX];

    driver_of(f, addr, now);
    override_of(f, addr, ovr);
    ovr[strcspn(ovr, "\n")] = '\0';
    if (*now || !*ovr || !strcmp(ovr, "(null)"))
        return 0;
    pathf(f, p, "/sys/bus/pci/drivers/%s", ovr);
    if (access(p, F_OK) == 0)
        link_driver(f, addr, ovr);
    return 0;
}

static int kernel_numvfs(const char *path, const char *value)
{
    char now[16];

    get_file(path, now, sizeof(now));
    if (atoi(now) != 0 && atoi(value) != 0)
        return -EBUSY;
    put_file(path, value);
    return 0;
}

static int kernel_write(void *opaque, const char *path, const char *value)
{
    fake *f = opaque;
    const char *rel = path + strlen(f->root);

    assert_true(strncmp(path, f->root, strlen(f->root)) == 0);
    assert_true(f->nlog < LOG_MAX);
    snprintf(f->log[f->nlog++], sizeof(f->log[0]), "%s=%s", rel, value);
    if (f->fail && ends_with(rel, f->fail))
        return -EIO;
    if (access(path, F_OK) < 0)
        return -ENOENT;
    if (ends_with(rel, "/unbind"))
        return kernel_unbind(f, rel, value);
    if (ends_with(rel, "/bind"))
        return kernel_bind(f, rel, value);
    if (ends_with(rel, "/drivers_probe"))
        return kernel_probe(f, value);
    if (ends_with(rel, "/sriov_numvfs"))
        return kernel_numvfs(path, value);
    put_file(path, value);
    return 0;
}

static void assert_log(const fake *f, size_t n, ...)
{
    va_list ap;

    for (size_t i = 0; i < f->nlog; i++)
        print_message("  write %zu: %s\n", i, f->log[i]);
    assert_int_equal(f->nlog, n);
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(f->log[i], va_arg(ap, const char *));
    va_end(ap);
}

/* ---- fixtures ------------------------------------------------------------------------------ */

#define NIC "0000:01:00.2"
#define NIC2 "0000:01:00.3"
#define BRIDGE "0000:00:1c.0"

static int setup(void **state)
{
    fake *f = calloc(1, sizeof(*f));
    char p[PATH_MAX];

    snprintf(f->root, sizeof(f->root), "/tmp/agentd-pt-XXXXXX");
    assert_non_null(mkdtemp(f->root));
    f->sysfs = (net_sysfs){ .root = f->root, .write = kernel_write, .opaque = f };
    add_driver(f, "ixgbevf");
    add_driver(f, "igb");
    add_driver(f, "vfio-pci");
    pathf(f, p, "/sys/bus/pci/drivers_probe");
    put_file(p, "");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fake *f = *state;
    char cmd[PATH_MAX + 16];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static net_pci_addr addr(const char *s)
{
    net_pci_addr a;

    assert_int_equal(net_pci_addr_parse(s, &a), 0);
    return a;
}

/* ---- addresses ----------------------------------------------------------------------------- */

static void pci_addresses_parse_in_every_form(void **state)
{
    char out[NET_PCI_TEXT];
    net_pci_addr a;

    (void)state;
    a = addr("0000:01:00.2");
    assert_int_equal(a.domain, 0);
    assert_int_equal(a.bus, 1);
    assert_int_equal(a.slot, 0);
    assert_int_equal(a.fn, 2);
    a = addr("pci_0001_af_1f_7");
    net_pci_addr_format(&a, out);
    assert_string_equal(out, "0001:af:1f.7");
    a = addr("3B:00.1");
    net_pci_addr_format(&a, out);
    assert_string_equal(out, "0000:3b:00.1");
}

static void malformed_pci_addresses_are_refused(void **state)
{
    static const char *bad[] = { "", "0000:01:00", "0000:01:00.8", "0000:01:20.0", "000:01:00.2",
                                 "0000:01:00.2x", "0000-01-00.2", "pci_0000:01:00.2", "pci_0000_01_00.2",
                                 "0000:g1:00.2", " 0000:01:00.2", "0000:01:00.-1", "01:00", "devpassthrough" };
    net_pci_addr a = { 9, 9, 9, 9 };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        print_message("  '%s'\n", bad[i]);
        assert_int_equal(net_pci_addr_parse(bad[i], &a), -EINVAL);
    }
    assert_int_equal(a.domain, 9);
}

/* ---- bind and restore ---------------------------------------------------------------------- */

static void binding_records_the_driver_and_follows_the_kernel_sequence(void **state)
{
    fake *f = *state;
    net_pci_addr a;
    char orig[NET_PCI_DRIVER_MAX], now[64], ovr[64], err[ERR_LEN] = "";

    add_device(f, NIC, "0x020000", "ixgbevf", 7);
    a = addr(NIC);
    assert_int_equal(net_pci_bind_vfio(&f->sysfs, &a, orig, err, sizeof(err)), 0);
    assert_string_equal(orig, "ixgbevf");
    assert_log(f, 3, "/sys/bus/pci/devices/" NIC "/driver_override=vfio-pci",
               "/sys/bus/pci/drivers/ixgbevf/unbind=" NIC, "/sys/bus/pci/drivers_probe=" NIC);
    driver_of(f, NIC, now);
    assert_string_equal(now, "vfio-pci");
    override_of(f, NIC, ovr);
    assert_string_equal(ovr, "vfio-pci");
}

static void restoring_returns_the_device_to_its_original_driver(void **state)
{
    fake *f = *state;
    net_pci_addr a;
    char orig[NET_PCI_DRIVER_MAX], now[64], ovr[64], err[ERR_LEN] = "";

    add_device(f, NIC, "0x020000", "ixgbevf", 7);
    a = addr(NIC);
    assert_int_equal(net_pci_bind_vfio(&f->sysfs, &a, orig, err, sizeof(err)), 0);
    f->nlog = 0;
    assert_int_equal(net_pci_restore(&f->sysfs, &a, orig, err, sizeof(err)), 0);
    assert_log(f, 3, "/sys/bus/pci/drivers/vfio-pci/unbind=" NIC,
               "/sys/bus/pci/devices/" NIC "/driver_override=\n", "/sys/bus/pci/drivers/ixgbevf/bind=" NIC);
    driver_of(f, NIC, now);
    assert_string_equal(now, "ixgbevf");
    override_of(f, NIC, ovr);
    assert_string_equal(ovr, "\n");
}

static void a_device_without_a_driver_goes_back_to_none(void **state)
{
    fake *f = *state;
    net_pci_addr a;
    char orig[NET_PCI_DRIVER_MAX], now[64], err[ERR_LEN] = "";

    add_device(f, NIC, "0x020000", "", 7);
    a = addr(NIC);
    assert_int_equal(net_pci_bind_vfio(&f->sysfs, &a, orig, err, sizeof(err)), 0);
    assert_string_equal(orig, "");
    assert_log(f, 2, "/sys/bus/pci/devices/" NIC "/driver_override=vfio-pci", "/sys/bus/pci/drivers_probe=" NIC);
    f->nlog = 0;
    assert_int_equal(net_pci_restore(&f->sysfs, &a, orig, err, sizeof(err)), 0);
    assert_log(f, 2, "/sys/bus/pci/drivers/vfio-pci/unbind=" NIC, "/sys/bus/pci/devices/" NIC "/driver_override=\n");
    driver_of(f, NIC, now);
    assert_string_equal(now, "");
}

static void a_device_already_on_vfio_is_left_alone(void **state)
{
    fake *f = *state;
    net_pci_addr a;
    char orig[NET_PCI_DRIVER_MAX], now[64], err[ERR_LEN] = "";

    add_device(f, NIC, "0x020000", "vfio-pci", 7);
    a = addr(NIC);
    assert_int_equal(net_pci_bind_vfio(&f->sysfs, &a, orig, err, sizeof(err)), 0);
    assert_string_equal(orig, "vfio-pci");
    assert_int_equal(net_pci_restore(&f->sysfs, &a, orig, err, sizeof(err)), 0);
    assert_log(f, 0);
    driver_of(f, NIC, now);
    assert_string_equal(now, "vfio-pci");
}

static void a_missing_vfio_module_rolls_the_bind_back(void **state)
{
    fake *f = *state;
    net_pci_addr a;
    char orig[NET_PCI_DRIVER_MAX] = "untouched", now[64], ovr[64], err[ERR_LEN] = "", cmd[PATH_MAX + 32];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s/sys/bus/pci/drivers/vfio-pci'", f->root);
    assert_int_equal(system(cmd), 0);
    add_device(f, NIC, "0x020000", "ixgbevf", 7);
    a = addr(NIC);
    assert_int_equal(net_pci_bind_vfio(&f->sysfs, &a, orig, err, sizeof(err)), -EIO);
    print_message("  %s\n", err);
    assert_non_null(strstr(err, NIC));
    assert_non_null(strstr(err, "vfio-pci module"));
    assert_string_equal(orig, "untouched");
    driver_of(f, NIC, now);
    assert_string_equal(now, "ixgbevf");
    override_of(f, NIC, ovr);
    assert_string_equal(ovr, "\n");
}

static void a_failed_unbind_clears_the_override_again(void **state)
{
    fake *f = *state;
    net_pci_addr a;
    char orig[NET_PCI_DRIVER_MAX], now[64], ovr[64], err[ERR_LEN] = "";

    add_device(f, NIC, "0x020000", "ixgbevf", 7);
    a = addr(NIC);
    f->fail = "ixgbevf/unbind";
    assert_int_equal(net_pci_bind_vfio(&f->sysfs, &a, orig, err, sizeof(err)), -EIO);
    print_message("  %s\n", err);
    assert_non_null(strstr(err, "drivers/ixgbevf/unbind"));
    driver_of(f, NIC, now);
    assert_string_equal(now, "ixgbevf");
    override_of(f, NIC, ovr);
    assert_string_equal(ovr, "\n");
}

static void a_device_that_is_not_there_is_named(void **state)
{
    fake *f = *state;
    net_pci_addr a = addr("0000:09:00.0");
    char orig[NET_PCI_DRIVER_MAX], err[ERR_LEN] = "";

    assert_int_equal(net_pci_bind_vfio(&f->sysfs, &a, orig, err, sizeof(err)), -ENODEV);
    assert_string_equal(err, "0000:09:00.0: no such PCI device");
    assert_log(f, 0);
}

/* ---- IOMMU groups -------------------------------------------------------------------------- */

static void groups_with_a_foreign_device_are_refused(void **state)
{
    fake *f = *state;
    net_pci_addr taken[2];
    char err[ERR_LEN] = "";

    add_device(f, NIC, "0x020000", "igb", 12);
    add_device(f, NIC2, "0x020000", "igb", 12);
    taken[0] = addr(NIC);
    assert_int_equal(net_pci_group_check(&f->sysfs, &taken[0], taken, 1, err, sizeof(err)), -EBUSY);
    print_message("  %s\n", err);
    assert_non_null(strstr(err, "IOMMU group 12 also holds " NIC2));
    taken[1] = addr(NIC2);
    assert_int_equal(net_pci_group_check(&f->sysfs, &taken[0], taken, 2, err, sizeof(err)), 0);
}

static void bridges_in_a_group_stay_with_the_host(void **state)
{
    fake *f = *state;
    net_pci_addr a;
    char err[ERR_LEN] = "";
    int group = -1;

    add_device(f, NIC, "0x020000", "igb", 3);
    add_device(f, BRIDGE, "0x060400", "pcieport", 3);
    a = addr(NIC);
    assert_int_equal(net_pci_iommu_group(&f->sysfs, &a, &group, err, sizeof(err)), 0);
    assert_int_equal(group, 3);
    assert_int_equal(net_pci_group_check(&f->sysfs, &a, &a, 1, err, sizeof(err)), 0);
    assert_log(f, 0);
}

static void a_host_without_an_iommu_is_told_so(void **state)
{
    fake *f = *state;
    net_pci_addr a;
    char err[ERR_LEN] = "";

    add_device(f, NIC, "0x020000", "igb", -1);
    a = addr(NIC);
    assert_int_equal(net_pci_group_check(&f->sysfs, &a, &a, 1, err, sizeof(err)), -ENOENT);
    print_message("  %s\n", err);
    assert_non_null(strstr(err, "no IOMMU group"));
    assert_non_null(strstr(err, "intel_iommu=on"));
}

/* ---- SR-IOV -------------------------------------------------------------------------------- */

#define PF "0000:03:00.0"

/* A PF with total VFs, count of them enabled (their virtfn links made). */
static void add_pf(fake *f, unsigned total, unsigned count)
{
    char p[PATH_MAX], target[PATH_MAX], vf[NET_PCI_TEXT], n[16];

    add_device(f, PF, "0x020000", "igb", 20);
    pathf(f, p, "/sys/bus/pci/devices/" PF "/sriov_totalvfs");
    snprintf(n, sizeof(n), "%u\n", total);
    put_file(p, n);
    pathf(f, p, "/sys/bus/pci/devices/" PF "/sriov_numvfs");
    snprintf(n, sizeof(n), "%u\n", count);
    put_file(p, n);
    pathf(f, p, "/sys/bus/pci/devices/" PF "/net/enp3s0f0");
    mkdirs(p);
    for (unsigned i = 0; i < count; i++) {
        /* VFs at 03:10.0, 03:10.2, ... as igb lays them out. */
        snprintf(vf, sizeof(vf), "0000:03:10.%u", i * 2);
        add_device(f, vf, "0x020000", "igbvf", (int)(30 + i));
        pathf(f, p, "/sys/bus/pci/devices/" PF "/virtfn%u", i);
        pathf(f, target, "/sys/bus/pci/devices/%s", vf);
        assert_int_equal(symlink(target, p), 0);
        pathf(f, p, "/sys/bus/pci/devices/%s/physfn", vf);
        pathf(f, target, "/sys/bus/pci/devices/" PF);
        assert_int_equal(symlink(target, p), 0);
    }
}

static void a_pfs_virtual_functions_are_listed_in_order(void **state)
{
    fake *f = *state;
    net_pci_addr pf, vfs[8], parent, vf;
    char out[NET_PCI_TEXT], netdev[16], err[ERR_LEN] = "";
    size_t n = 0;
    unsigned index = 99;

    add_pf(f, 8, 3);
    pf = addr(PF);
    assert_int_equal(net_sriov_vfs(&f->sysfs, &pf, vfs, 8, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 3);
    net_pci_addr_format(&vfs[2], out);
    assert_string_equal(out, "0000:03:10.4");
    vf = addr("0000:03:10.2");
    assert_int_equal(net_sriov_vf_parent(&f->sysfs, &vf, &parent, &index), 0);
    assert_int_equal(net_pci_addr_cmp(&parent, &pf), 0);
    assert_int_equal(index, 1);
    assert_int_equal(net_sriov_vf_parent(&f->sysfs, &pf, &parent, &index), -ENOENT);
    assert_int_equal(net_pci_netdev(&f->sysfs, &pf, netdev), 0);
    assert_string_equal(netdev, "enp3s0f0");
    assert_int_equal(net_sriov_vfs(&f->sysfs, &pf, vfs, 2, &n, err, sizeof(err)), -E2BIG);
}

static void numvfs_changes_go_through_zero_and_respect_the_total(void **state)
{
    fake *f = *state;
    net_pci_addr pf;
    char err[ERR_LEN] = "", p[PATH_MAX], now[16];

    add_pf(f, 8, 2);
    pf = addr(PF);
    assert_int_equal(net_sriov_set_numvfs(&f->sysfs, &pf, 4, err, sizeof(err)), 0);
    assert_log(f, 2, "/sys/bus/pci/devices/" PF "/sriov_numvfs=0", "/sys/bus/pci/devices/" PF "/sriov_numvfs=4");
    pathf(f, p, "/sys/bus/pci/devices/" PF "/sriov_numvfs");
    get_file(p, now, sizeof(now));
    assert_string_equal(now, "4");
    f->nlog = 0;
    assert_int_equal(net_sriov_set_numvfs(&f->sysfs, &pf, 4, err, sizeof(err)), 0);
    assert_log(f, 0);
    assert_int_equal(net_sriov_set_numvfs(&f->sysfs, &pf, 9, err, sizeof(err)), -ERANGE);
    assert_string_equal(err, "numvfs: " PF " supports at most 8 virtual functions");
    assert_int_equal(net_sriov_set_numvfs(&f->sysfs, &pf, 0, err, sizeof(err)), 0);
    assert_log(f, 1, "/sys/bus/pci/devices/" PF "/sriov_numvfs=0");
}

static void a_device_without_sriov_is_named(void **state)
{
    fake *f = *state;
    net_pci_addr a;
    char err[ERR_LEN] = "";

    add_device(f, NIC, "0x020000", "igb", 7);
    a = addr(NIC);
    assert_int_equal(net_sriov_set_numvfs(&f->sysfs, &a, 2, err, sizeof(err)), -ENOENT);
    assert_string_equal(err, NIC ": not an SR-IOV physical function (no sriov_totalvfs)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pci_addresses_parse_in_every_form),
        cmocka_unit_test(malformed_pci_addresses_are_refused),
        cmocka_unit_test_setup_teardown(binding_records_the_driver_and_follows_the_kernel_sequence, setup, teardown),
        cmocka_unit_test_setup_teardown(restoring_returns_the_device_to_its_original_driver, setup, teardown),
        cmocka_unit_test_setup_teardown(a_device_without_a_driver_goes_back_to_none, setup, teardown),
        cmocka_unit_test_setup_teardown(a_device_already_on_vfio_is_left_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(a_missing_vfio_module_rolls_the_bind_back, setup, teardown),
        cmocka_unit_test_setup_teardown(a_failed_unbind_clears_the_override_again, setup, teardown),
        cmocka_unit_test_setup_teardown(a_device_that_is_not_there_is_named, setup, teardown),
        cmocka_unit_test_setup_teardown(groups_with_a_foreign_device_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(bridges_in_a_group_stay_with_the_host, setup, teardown),
        cmocka_unit_test_setup_teardown(a_host_without_an_iommu_is_told_so, setup, teardown),
        cmocka_unit_test_setup_teardown(a_pfs_virtual_functions_are_listed_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(numvfs_changes_go_through_zero_and_respect_the_total, setup, teardown),
        cmocka_unit_test_setup_teardown(a_device_without_sriov_is_named, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
