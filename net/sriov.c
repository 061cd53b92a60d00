/* sriov.c: SR-IOV physical and virtual functions through sysfs. A VF's MAC
 * and VLAN are set through its PF's netdev over netlink (net_vf_set). */
#include <errno.h>
#include <limits.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net_internal.h"
#include "passthrough.h"

int net_sriov_vfs(const net_sysfs *s, const net_pci_addr *pf, net_pci_addr *ret, size_t max, size_t *n,
                  char *err, size_t errlen)
{
    char addr[NET_PCI_TEXT], path[PATH_MAX], name[NET_PCI_TEXT + 8];
    size_t count = 0;
    int r;

    net_pci_addr_format(pf, addr);
    /* virtfn0, virtfn1, ... name the VFs in index order, without gaps. */
    for (;; count++) {
        if ((r = net_sysfs_path(s, path, "/sys/bus/pci/devices/%s/virtfn%zu", addr, count)) < 0)
            return r;
        if ((r = net_sysfs_link_name(path, name, sizeof(name))) == -ENOENT)
            break;
        if (r < 0)
            return net_errmsg(err, errlen, r, "%s: reading %s: %s", addr, path, strerror(-r));
        if (count >= max)
            return net_errmsg(err, errlen, -E2BIG, "%s: more than %zu virtual functions", addr, max);
        if (net_pci_addr_parse(name, &ret[count]) < 0)
            return net_errmsg(err, errlen, -EINVAL, "%s: virtfn%zu points at '%s'", addr, count, name);
    }
    *n = count;
    return 0;
}

static int read_count(const net_sysfs *s, const char *addr, const char *file, unsigned long *ret, char *err,
                      size_t errlen)
{
    char path[PATH_MAX];
    int r;

    if ((r = net_sysfs_path(s, path, "/sys/bus/pci/devices/%s/%s", addr, file)) < 0)
        return r;
    if ((r = net_sysfs_read_uint(path, ret)) == -ENOENT)
        return net_errmsg(err, errlen, r, "%s: not an SR-IOV physical function (no %s)", addr, file);
    if (r < 0)
        return net_errmsg(err, errlen, r, "%s: reading %s: %s", addr, path, strerror(-r));
    return 0;
}

static int write_numvfs(const net_sysfs *s, const char *addr, unsigned n, char *err, size_t errlen)
{
    char path[PATH_MAX], value[16];
    int r;

    snprintf(value, sizeof(value), "%u", n);
    if ((r = net_sysfs_path(s, path, "/sys/bus/pci/devices/%s/sriov_numvfs", addr)) < 0 ||
        (r = net_sysfs_write(s, path, value)) < 0)
        return net_errmsg(err, errlen, r, "%s: setting sriov_numvfs to %u: %s", addr, n, strerror(-r));
    return 0;
}

int net_sriov_set_numvfs(const net_sysfs *s, const net_pci_addr *pf, unsigned n, char *err, size_t errlen)
{
    char addr[NET_PCI_TEXT];
    unsigned long total, now;
    int r;

    net_pci_addr_format(pf, addr);
    if ((r = read_count(s, addr, "sriov_totalvfs", &total, err, errlen)) < 0 ||
        (r = read_count(s, addr, "sriov_numvfs", &now, err, errlen)) < 0)
        return r;
    if (n > total)
        return net_errmsg(err, errlen, -ERANGE, "numvfs: %s supports at most %lu virtual functions", addr,
                          total);
    if (now == n)
        return 0;
    /* The kernel refuses to change a non-zero count except to 0. */
    if (now && n && (r = write_numvfs(s, addr, 0, err, errlen)) < 0)
        return r;
    return write_numvfs(s, addr, n, err, errlen);
}

int net_sriov_vf_parent(const net_sysfs *s, const net_pci_addr *vf, net_pci_addr *ret_pf, unsigned *ret_index)
{
    char addr[NET_PCI_TEXT], path[PATH_MAX], name[NET_PCI_TEXT + 8];
    net_pci_addr pf, vfs[NET_SRIOV_VFS_MAX];
    size_t n = 0;   /* set by net_sriov_vfs; -O3 cannot see that */
    int r;

    net_pci_addr_format(vf, addr);
    if ((r = net_sysfs_path(s, path, "/sys/bus/pci/devices/%s/physfn", addr)) < 0 ||
        (r = net_sysfs_link_name(path, name, sizeof(name))) < 0)
        return r;
    if (net_pci_addr_parse(name, &pf) < 0)
        return -EINVAL;
    if ((r = net_sriov_vfs(s, &pf, vfs, NET_SRIOV_VFS_MAX, &n, NULL, 0)) < 0)
        return r;
    for (size_t i = 0; i < n; i++)
        if (!net_pci_addr_cmp(&vfs[i], vf)) {
            *ret_pf = pf;
            *ret_index = (unsigned)i;
            return 0;
        }
    return -ENOENT;
}

int net_pci_netdev(const net_sysfs *s, const net_pci_addr *a, char out[16])
{
    char addr[NET_PCI_TEXT], path[PATH_MAX];
    struct dirent *e;
    DIR *d;
    int r = -ENOENT;

    net_pci_addr_format(a, addr);
    if ((r = net_sysfs_path(s, path, "/sys/bus/pci/devices/%s/net", addr)) < 0)
        return r;
    if (!(d = opendir(path)))
        return -errno;
    r = -ENOENT;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && strlen(e->d_name) < 16) {
            memcpy(out, e->d_name, strlen(e->d_name) + 1);
            r = 0;
            break;
        }
    closedir(d);
    return r;
}
