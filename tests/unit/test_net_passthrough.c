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
#include "tests/support/fake_sysfs.h"

#define ERR_LEN 512

/* ---- fixtures ------------------------------------------------------------------------------ */

#define NIC "0000:01:00.2"
#define NIC2 "0000:01:00.3"
#define BRIDGE "0000:00:1c.0"

static int setup(void **state)
{
    *state = fake_sysfs_new();
    return 0;
}

static int teardown(void **state)
{
    fake_sysfs_free(*state);
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

    fake_add_device(f, NIC, "0x020000", "ixgbevf", 7);
    a = addr(NIC);
    assert_int_equal(net_pci_bind_vfio(&f->sysfs, &a, orig, err, sizeof(err)), 0);
    assert_string_equal(orig, "ixgbevf");
    fake_assert_log(f, 3, "/sys/bus/pci/devices/" NIC "/driver_override=vfio-pci",
               "/sys/bus/pci/drivers/ixgbevf/unbind=" NIC, "/sys/bus/pci/drivers_probe=" NIC);
    fake_driver_of(f, NIC, now);
    assert_string_equal(now, "vfio-pci");
    fake_override_of(f, NIC, ovr);
    assert_string_equal(ovr, "vfio-pci");
}

static void restoring_returns_the_device_to_its_original_driver(void **state)
{
    fake *f = *state;
    net_pci_addr a;
    char orig[NET_PCI_DRIVER_MAX], now[64], ovr[64], err[ERR_LEN] = "";

    fake_add_device(f, NIC, "0x020000", "ixgbevf", 7);
    a = addr(NIC);
    assert_int_equal(net_pci_bind_vfio(&f->sysfs, &a, orig, err, sizeof(err)), 0);
    f->nlog = 0;
    assert_int_equal(net_pci_restore(&f->sysfs, &a, orig, err, sizeof(err)), 0);
    fake_assert_log(f, 3, "/sys/bus/pci/drivers/vfio-pci/unbind=" NIC,
               "/sys/bus/pci/devices/" NIC "/driver_override=\n", "/sys/bus/pci/drivers/ixgbevf/bind=" NIC);
    fake_driver_of(f, NIC, now);
    assert_string_equal(now, "ixgbevf");
    fake_override_of(f, NIC, ovr);
    assert_string_equal(ovr, "\n");
}

static void a_device_without_a_driver_goes_back_to_none(void **state)
{
    fake *f = *state;
    net_pci_addr a;
    char orig[NET_PCI_DRIVER_MAX], now[64], err[ERR_LEN] = "";

    fake_add_device(f, NIC, "0x020000", "", 7);
    a = addr(NIC);
    assert_int_equal(net_pci_bind_vfio(&f->sysfs, &a, orig, err, sizeof(err)), 0);
    assert_string_equal(orig, "");
    fake_assert_log(f, 2, "/sys/bus/pci/devices/" NIC "/driver_override=vfio-pci", "/sys/bus/pci/drivers_probe=" NIC);
    f->nlog = 0;
    assert_int_equal(net_pci_restore(&f->sysfs, &a, orig, err, sizeof(err)), 0);
    fake_assert_log(f, 2, "/sys/bus/pci/drivers/vfio-pci/unbind=" NIC, "/sys/bus/pci/devices/" NIC "/driver_override=\n");
    fake_driver_of(f, NIC, now);
    assert_string_equal(now, "");
}

static void a_device_already_on_vfio_is_left_alone(void **state)
{
    fake *f = *state;
    net_pci_addr a;
    char orig[NET_PCI_DRIVER_MAX], now[64], err[ERR_LEN] = "";

    fake_add_device(f, NIC, "0x020000", "vfio-pci", 7);
    a = addr(NIC);
    assert_int_equal(net_pci_bind_vfio(&f->sysfs, &a, orig, err, sizeof(err)), 0);
    assert_string_equal(orig, "vfio-pci");
    assert_int_equal(net_pci_restore(&f->sysfs, &a, orig, err, sizeof(err)), 0);
    fake_assert_log(f, 0);
    fake_driver_of(f, NIC, now);
    assert_string_equal(now, "vfio-pci");
}

static void a_missing_vfio_module_rolls_the_bind_back(void **state)
{
    fake *f = *state;
    net_pci_addr a;
    char orig[NET_PCI_DRIVER_MAX] = "untouched", now[64], ovr[64], err[ERR_LEN] = "", cmd[PATH_MAX + 32];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s/sys/bus/pci/drivers/vfio-pci'", f->root);
    assert_int_equal(system(cmd), 0);
    fake_add_device(f, NIC, "0x020000", "ixgbevf", 7);
    a = addr(NIC);
    assert_int_equal(net_pci_bind_vfio(&f->sysfs, &a, orig, err, sizeof(err)), -EIO);
    print_message("  %s\n", err);
    assert_non_null(strstr(err, NIC));
    assert_non_null(strstr(err, "vfio-pci module"));
    assert_string_equal(orig, "untouched");
    fake_driver_of(f, NIC, now);
    assert_string_equal(now, "ixgbevf");
    fake_override_of(f, NIC, ovr);
    assert_string_equal(ovr, "\n");
}

static void a_failed_unbind_clears_the_override_again(void **state)
{
    fake *f = *state;
    net_pci_addr a;
    char orig[NET_PCI_DRIVER_MAX], now[64], ovr[64], err[ERR_LEN] = "";

    fake_add_device(f, NIC, "0x020000", "ixgbevf", 7);
    a = addr(NIC);
    f->fail = "ixgbevf/unbind";
    assert_int_equal(net_pci_bind_vfio(&f->sysfs, &a, orig, err, sizeof(err)), -EIO);
    print_message("  %s\n", err);
    assert_non_null(strstr(err, "drivers/ixgbevf/unbind"));
    fake_driver_of(f, NIC, now);
    assert_string_equal(now, "ixgbevf");
    fake_override_of(f, NIC, ovr);
    assert_string_equal(ovr, "\n");
}

static void a_device_that_is_not_there_is_named(void **state)
{
    fake *f = *state;
    net_pci_addr a = addr("0000:09:00.0");
    char orig[NET_PCI_DRIVER_MAX], err[ERR_LEN] = "";

    assert_int_equal(net_pci_bind_vfio(&f->sysfs, &a, orig, err, sizeof(err)), -ENODEV);
    assert_string_equal(err, "0000:09:00.0: no such PCI device");
    fake_assert_log(f, 0);
}

/* ---- IOMMU groups -------------------------------------------------------------------------- */

static void groups_with_a_foreign_device_are_refused(void **state)
{
    fake *f = *state;
    net_pci_addr taken[2];
    char err[ERR_LEN] = "";

    fake_add_device(f, NIC, "0x020000", "igb", 12);
    fake_add_device(f, NIC2, "0x020000", "igb", 12);
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

    fake_add_device(f, NIC, "0x020000", "igb", 3);
    fake_add_device(f, BRIDGE, "0x060400", "pcieport", 3);
    a = addr(NIC);
    assert_int_equal(net_pci_iommu_group(&f->sysfs, &a, &group, err, sizeof(err)), 0);
    assert_int_equal(group, 3);
    assert_int_equal(net_pci_group_check(&f->sysfs, &a, &a, 1, err, sizeof(err)), 0);
    fake_assert_log(f, 0);
}

static void a_host_without_an_iommu_is_told_so(void **state)
{
    fake *f = *state;
    net_pci_addr a;
    char err[ERR_LEN] = "";

    fake_add_device(f, NIC, "0x020000", "igb", -1);
    a = addr(NIC);
    assert_int_equal(net_pci_group_check(&f->sysfs, &a, &a, 1, err, sizeof(err)), -ENOENT);
    print_message("  %s\n", err);
    assert_non_null(strstr(err, "no IOMMU group"));
    assert_non_null(strstr(err, "intel_iommu=on"));
}

/* ---- SR-IOV -------------------------------------------------------------------------------- */

#define PF FAKE_PF

static void a_pfs_virtual_functions_are_listed_in_order(void **state)
{
    fake *f = *state;
    net_pci_addr pf, vfs[8], parent, vf;
    char out[NET_PCI_TEXT], netdev[16], err[ERR_LEN] = "";
    size_t n = 0;
    unsigned index = 99;

    fake_add_pf(f, 8, 3);
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

    fake_add_pf(f, 8, 2);
    pf = addr(PF);
    assert_int_equal(net_sriov_set_numvfs(&f->sysfs, &pf, 4, err, sizeof(err)), 0);
    fake_assert_log(f, 2, "/sys/bus/pci/devices/" PF "/sriov_numvfs=0", "/sys/bus/pci/devices/" PF "/sriov_numvfs=4");
    fake_pathf(f, p, "/sys/bus/pci/devices/" PF "/sriov_numvfs");
    fake_get_file(p, now, sizeof(now));
    assert_string_equal(now, "4");
    f->nlog = 0;
    assert_int_equal(net_sriov_set_numvfs(&f->sysfs, &pf, 4, err, sizeof(err)), 0);
    fake_assert_log(f, 0);
    assert_int_equal(net_sriov_set_numvfs(&f->sysfs, &pf, 9, err, sizeof(err)), -ERANGE);
    assert_string_equal(err, "numvfs: " PF " supports at most 8 virtual functions");
    assert_int_equal(net_sriov_set_numvfs(&f->sysfs, &pf, 0, err, sizeof(err)), 0);
    fake_assert_log(f, 1, "/sys/bus/pci/devices/" PF "/sriov_numvfs=0");
}

static void a_device_without_sriov_is_named(void **state)
{
    fake *f = *state;
    net_pci_addr a;
    char err[ERR_LEN] = "";

    fake_add_device(f, NIC, "0x020000", "igb", 7);
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
