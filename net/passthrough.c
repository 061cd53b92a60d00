/* passthrough.c: PCI addresses, IOMMU groups, and moving a device between
 * its driver and vfio-pci through sysfs (the kernel's vfio.rst procedure). */
#include "passthrough.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net_internal.h"

#define VFIO_DRIVER "vfio-pci"
#define CLASS_PCI_BRIDGE 0x0604

/* ---- addresses ------------------------------------------------------------------------ */

/* Exactly n hex digits at *p, moved past. */
static bool hex_field(const char **p, size_t n, unsigned long *ret)
{
    unsigned long v = 0;

    for (size_t i = 0; i < n; i++, (*p)++) {
        if (!isxdigit((unsigned char)**p))
            return false;
        v = v * 16 + (unsigned long)(isdigit((unsigned char)**p) ? **p - '0' : tolower(**p) - 'a' + 10);
    }
    *ret = v;
    return true;
}

static bool sep(const char **p, char c)
{
    return *(*p)++ == c;
}

/* DDDD:BB:SS.F with the separators given (libvirt's form uses '_'). */
static int parse_fields(const char *p, bool domain, char colon, char dot, net_pci_addr *ret)
{
    unsigned long d = 0, b, s, f;

    if ((domain && (!hex_field(&p, 4, &d) || !sep(&p, colon))) || !hex_field(&p, 2, &b) ||
        !sep(&p, colon) || !hex_field(&p, 2, &s) || !sep(&p, dot) || !hex_field(&p, 1, &f) || *p)
        return -EINVAL;
    if (s > 0x1f || f > 7)
        return -EINVAL;
    *ret = (net_pci_addr){ (uint16_t)d, (uint8_t)b, (uint8_t)s, (uint8_t)f };
    return 0;
}

int net_pci_addr_parse(const char *s, net_pci_addr *ret)
{
    if (!s)
        return -EINVAL;
    if (!strncmp(s, "pci_", 4))
        return parse_fields(s + 4, true, '_', '_', ret);
    return parse_fields(s, strlen(s) > 7, ':', '.', ret);
}

void net_pci_addr_format(const net_pci_addr *a, char out[NET_PCI_TEXT])
{
    snprintf(out, NET_PCI_TEXT, "%04x:%02x:%02x.%x", a->domain, a->bus, a->slot & 0x1f, a->fn & 7);
}

int net_pci_addr_cmp(const net_pci_addr *a, const net_pci_addr *b)
{
    if (a->domain != b->domain)
        return a->domain < b->domain ? -1 : 1;
    if (a->bus != b->bus)
        return a->bus < b->bus ? -1 : 1;
    if (a->slot != b->slot)
        return a->slot < b->slot ? -1 : 1;
    return a->fn == b->fn ? 0 : a->fn < b->fn ? -1 : 1;
}

/* ---- drivers --------------------------------------------------------------------------- */

int net_pci_driver(const net_sysfs *s, const net_pci_addr *a, char out[NET_PCI_DRIVER_MAX])
{
    char addr[NET_PCI_TEXT], path[PATH_MAX];
    int r;

    net_pci_addr_format(a, addr);
    if ((r = net_sysfs_path(s, path, "/sys/bus/pci/devices/%s", addr)) < 0)
        return r;
    if (access(path, F_OK) < 0)
        return -ENODEV;
    if ((r = net_sysfs_path(s, path, "/sys/bus/pci/devices/%s/driver", addr)) < 0)
        return r;
    r = net_sysfs_link_name(path, out, NET_PCI_DRIVER_MAX);
    if (r == -ENOENT) {
        out[0] = '\0';
        return 0;
    }
    return r;
}

/* Writes value to /sys/bus/pci/REL. */
static int pci_write(const net_sysfs *s, const char *addr, const char *rel, const char *value, char *err,
                     size_t errlen)
{
    char path[PATH_MAX];
    int r;

    if ((r = net_sysfs_path(s, path, "/sys/bus/pci/%s", rel)) < 0 || (r = net_sysfs_write(s, path, value)) < 0)
        return net_errmsg(err, errlen, r, "%s: writing %s: %s", addr, path, strerror(-r));
    return 0;
}

static int unbind(const net_sysfs *s, const char *addr, const char *driver, char *err, size_t errlen)
{
    char rel[NET_PCI_DRIVER_MAX + 32];

    snprintf(rel, sizeof(rel), "drivers/%s/unbind", driver);
    return pci_write(s, addr, rel, addr, err, errlen);
}

static int bind_to(const net_sysfs *s, const char *addr, const char *driver, char *err, size_t errlen)
{
    char rel[NET_PCI_DRIVER_MAX + 32];

    snprintf(rel, sizeof(rel), "drivers/%s/bind", driver);
    return pci_write(s, addr, rel, addr, err, errlen);
}

static int set_override(const net_sysfs *s, const char *addr, const char *driver, char *err, size_t errlen)
{
    char rel[NET_PCI_TEXT + 32];

    snprintf(rel, sizeof(rel), "devices/%s/driver_override", addr);
    /* A lone newline clears the override. */
    return pci_write(s, addr, rel, *driver ? driver : "\n", err, errlen);
}

/* The kernel binds the device to the driver driver_override names. */
static int probe(const net_sysfs *s, const char *addr, char *err, size_t errlen)
{
    return pci_write(s, addr, "drivers_probe", addr, err, errlen);
}

static int expect_driver(const net_sysfs *s, const net_pci_addr *a, const char *addr, const char *want,
                         char *err, size_t errlen)
{
    char now[NET_PCI_DRIVER_MAX];
    int r = net_pci_driver(s, a, now);

    if (r < 0)
        return net_errmsg(err, errlen, r, "%s: reading its driver: %s", addr, strerror(-r));
    if (strcmp(now, want) != 0)
        return net_errmsg(err, errlen, -EIO, "%s: bound to '%s' instead of %s%s", addr, now, want,
                          strcmp(want, VFIO_DRIVER) ? "" : " (is the vfio-pci module loaded?)");
    return 0;
}

/* Undoes a bind that went part of the way; errors here are secondary to
 * the one being reported. */
static void rollback_bind(const net_sysfs *s, const net_pci_addr *a, const char *addr, const char *orig)
{
    char now[NET_PCI_DRIVER_MAX];

    if (net_pci_driver(s, a, now) == 0 && *now && strcmp(now, orig) != 0)
        unbind(s, addr, now, NULL, 0);
    set_override(s, addr, "", NULL, 0);
    if (*orig && net_pci_driver(s, a, now) == 0 && !*now)
        bind_to(s, addr, orig, NULL, 0);
}

int net_pci_bind_vfio(const net_sysfs *s, const net_pci_addr *a, char ret_driver[NET_PCI_DRIVER_MAX],
                      char *err, size_t errlen)
{
    char addr[NET_PCI_TEXT], orig[NET_PCI_DRIVER_MAX];
    int r;

    net_pci_addr_format(a, addr);
    if ((r = net_pci_driver(s, a, orig)) < 0)
        return net_errmsg(err, errlen, r, "%s: %s", addr, r == -ENODEV ? "no such PCI device" : strerror(-r));
    if (!strcmp(orig, VFIO_DRIVER)) {
        memcpy(ret_driver, orig, sizeof(orig));
        return 0;
    }
    if ((r = set_override(s, addr, VFIO_DRIVER, err, errlen)) < 0)
        return r;
    if ((*orig && (r = unbind(s, addr, orig, err, errlen)) < 0) ||
        (r = probe(s, addr, err, errlen)) < 0 ||
        (r = expect_driver(s, a, addr, VFIO_DRIVER, err, errlen)) < 0) {
        rollback_bind(s, a, addr, orig);
        return r;
    }
    memcpy(ret_driver, orig, sizeof(orig));
    return 0;
}

int net_pci_restore(const net_sysfs *s, const net_pci_addr *a, const char *driver, char *err, size_t errlen)
{
    char addr[NET_PCI_TEXT], now[NET_PCI_DRIVER_MAX];
    int r;

    net_pci_addr_format(a, addr);
    if (!strcmp(driver, VFIO_DRIVER))
        return 0;
    if ((r = net_pci_driver(s, a, now)) < 0)
        return net_errmsg(err, errlen, r, "%s: %s", addr, r == -ENODEV ? "no such PCI device" : strerror(-r));
    if ((*now && strcmp(now, driver) != 0 && (r = unbind(s, addr, now, err, errlen)) < 0) ||
        (r = set_override(s, addr, "", err, errlen)) < 0)
        return r;
    if (!*driver || !strcmp(now, driver))
        return 0;
    if ((r = bind_to(s, addr, driver, err, errlen)) < 0)
        return r;
    return expect_driver(s, a, addr, driver, err, errlen);
}

/* ---- IOMMU groups ---------------------------------------------------------------------- */

int net_pci_iommu_group(const net_sysfs *s, const net_pci_addr *a, int *ret, char *err, size_t errlen)
{
    char addr[NET_PCI_TEXT], path[PATH_MAX], name[32], *end;
    long g;
    int r;

    net_pci_addr_format(a, addr);
    if ((r = net_sysfs_path(s, path, "/sys/bus/pci/devices/%s/iommu_group", addr)) < 0)
        return r;
    if ((r = net_sysfs_link_name(path, name, sizeof(name))) == -ENOENT)
        return net_errmsg(err, errlen, r, "%s: has no IOMMU group (is the IOMMU enabled: intel_iommu=on "
                          "or amd_iommu=on, and the device present?)", addr);
    if (r < 0)
        return net_errmsg(err, errlen, r, "%s: reading %s: %s", addr, path, strerror(-r));
    g = strtol(name, &end, 10);
    if (*end || g < 0 || g > INT_MAX)
        return net_errmsg(err, errlen, -EINVAL, "%s: IOMMU group '%s' is not a number", addr, name);
    *ret = (int)g;
    return 0;
}

static bool is_bridge(const net_sysfs *s, const char *addr)
{
    char path[PATH_MAX];
    unsigned long cls;

    return net_sysfs_path(s, path, "/sys/bus/pci/devices/%s/class", addr) == 0 &&
           net_sysfs_read_uint(path, &cls) == 0 && (cls >> 8) == CLASS_PCI_BRIDGE;
}

static bool is_taken(const net_pci_addr *d, const net_pci_addr *taken, size_t ntaken)
{
    for (size_t i = 0; i < ntaken; i++)
        if (!net_pci_addr_cmp(d, &taken[i]))
            return true;
    return false;
}

/* 0, or -EBUSY naming a member that must not leave the host. */
static int check_member(const net_sysfs *s, const char *member, int group, const char *addr,
                        const net_pci_addr *taken, size_t ntaken, char *err, size_t errlen)
{
    net_pci_addr d;

    if (net_pci_addr_parse(member, &d) < 0)
        return net_errmsg(err, errlen, -EINVAL, "%s: IOMMU group %d holds '%.32s', not a PCI address",
                          addr, group, member);
    if (is_taken(&d, taken, ntaken) || is_bridge(s, member))
        return 0;
    return net_errmsg(err, errlen, -EBUSY, "%s: IOMMU group %d also holds %s, which this VM does not "
                      "take; a group moves to vfio-pci whole, so pass it through too", addr, group, member);
}

int net_pci_group_check(const net_sysfs *s, const net_pci_addr *a, const net_pci_addr *taken, size_t ntaken,
                        char *err, size_t errlen)
{
    char addr[NET_PCI_TEXT], path[PATH_MAX];
    struct dirent *e;
    DIR *d;
    int group, r, n = 0;

    net_pci_addr_format(a, addr);
    if ((r = net_pci_iommu_group(s, a, &group, err, errlen)) < 0)
        return r;
    if ((r = net_sysfs_path(s, path, "/sys/kernel/iommu_groups/%d/devices", group)) < 0)
        return r;
    if (!(d = opendir(path)))
        return net_errmsg(err, errlen, -errno, "%s: reading %s: %s", addr, path, strerror(errno));
    while ((e = readdir(d)) && r == 0) {
        if (e->d_name[0] == '.')
            continue;
        if (++n > NET_PCI_GROUP_MAX)
            r = net_errmsg(err, errlen, -E2BIG, "%s: IOMMU group %d has over %d devices", addr, group,
                           NET_PCI_GROUP_MAX);
        else
            r = check_member(s, e->d_name, group, addr, taken, ntaken, err, errlen);
    }
    closedir(d);
    return r;
}
