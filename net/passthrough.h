/* passthrough.h: PCI devices handed to a VM through VFIO, and SR-IOV
 * virtual functions, done through sysfs.
 *
 * A device goes to vfio-pci as the kernel documents it: driver_override
 * set to "vfio-pci", unbound from its driver, re-probed; and it comes back
 * by unbinding it from vfio-pci, clearing the override and binding it to the
 * driver it had. Its whole IOMMU group moves with it, so a group holding a
 * device the VM does not take (PCI bridges aside) is refused.
 *
 * Knows nothing of VMs. Every path is under a sysfs root of the caller's
 * ("/" on a host, a temp directory in tests), and every write goes through
 * one function that a test can replace to record writes and act as the
 * kernel would. Calls block (sysfs writes can wait on a driver's unbind):
 * the agent runs them on its thread pool. Functions return 0 or a negative
 * errno and put what was refused, naming the device, into err. */
#ifndef AGENTD_NET_PASSTHROUGH_H
#define AGENTD_NET_PASSTHROUGH_H

#include <stddef.h>
#include <stdint.h>

#define NET_PCI_TEXT 13              /* "0000:01:00.2" and a NUL */
#define NET_PCI_DRIVER_MAX 64
#define NET_PCI_GROUP_MAX 64         /* devices in one IOMMU group we look at */
#define NET_SRIOV_VFS_MAX 256

typedef struct net_pci_addr {
    uint16_t domain;
    uint8_t bus, slot, fn;           /* slot 0..0x1f, fn 0..7 */
} net_pci_addr;

/* "0000:01:00.2", "01:00.2" (domain 0) or libvirt's "pci_0000_01_00_2",
 * hex in either case. -EINVAL for anything else, and for a slot over 0x1f
 * or a function over 7. */
int net_pci_addr_parse(const char *s, net_pci_addr *ret);
void net_pci_addr_format(const net_pci_addr *a, char out[NET_PCI_TEXT]);
int net_pci_addr_cmp(const net_pci_addr *a, const net_pci_addr *b);

/* Where sysfs is, and how it is written. write NULL: write(2) on the file.
 * A test's write returns 0 or -errno, as a sysfs write would. */
typedef struct net_sysfs {
    const char *root;                /* NULL or "" for "/" */
    int (*write)(void *opaque, const char *path, const char *value);
    void *opaque;
} net_sysfs;

/* The device's current driver ("" when none). -ENODEV when there is no
 * such device. */
int net_pci_driver(const net_sysfs *s, const net_pci_addr *a, char out[NET_PCI_DRIVER_MAX]);

/* The device's IOMMU group number; -ENOENT (with a message saying the host
 * has no IOMMU enabled) when it has none. */
int net_pci_iommu_group(const net_sysfs *s, const net_pci_addr *a, int *ret, char *err, size_t errlen);

/* Checks that every device of a's IOMMU group is in taken[] (the devices the
 * VM gets) or is a PCI bridge (class 0x0604), which stays with the host.
 * -EBUSY naming the first other device. */
int net_pci_group_check(const net_sysfs *s, const net_pci_addr *a, const net_pci_addr *taken,
                        size_t ntaken, char *err, size_t errlen);

/* Moves the device to vfio-pci, putting the driver it had into
 * ret_driver ("" when it had none, "vfio-pci" when it was there already:
 * then nothing is written). On failure the device is put back as it was. */
int net_pci_bind_vfio(const net_sysfs *s, const net_pci_addr *a, char ret_driver[NET_PCI_DRIVER_MAX],
                      char *err, size_t errlen);

/* Takes the device from vfio-pci back to driver ("": left without one;
 * "vfio-pci": left where it is), clearing driver_override. */
int net_pci_restore(const net_sysfs *s, const net_pci_addr *a, const char *driver, char *err,
                    size_t errlen);

/* ---- SR-IOV --------------------------------------------------------------------- */

/* The virtual functions of physical function pf, in VF index order. */
int net_sriov_vfs(const net_sysfs *s, const net_pci_addr *pf, net_pci_addr *ret, size_t max, size_t *n,
                  char *err, size_t errlen);
/* Sets sriov_numvfs to n (at most sriov_totalvfs). A change between two
 * non-zero counts goes through 0 first, as the kernel requires; n equal to
 * the current count writes nothing. */
int net_sriov_set_numvfs(const net_sysfs *s, const net_pci_addr *pf, unsigned n, char *err, size_t errlen);
/* The physical function of virtual function vf and its VF index; -ENOENT
 * when vf is not a virtual function. */
int net_sriov_vf_parent(const net_sysfs *s, const net_pci_addr *vf, net_pci_addr *ret_pf, unsigned *ret_index);
/* The network interface of a PCI device (a PF's netdev, for VF settings
 * through netlink); -ENOENT when it has none. */
int net_pci_netdev(const net_sysfs *s, const net_pci_addr *a, char out[16]);

#endif
