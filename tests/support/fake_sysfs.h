/* fake_sysfs.h: a fake sysfs tree in a temp directory for passthrough
 * tests. The tree has what the kernel shows (device directories, driver and
 * iommu_group symlinks, sriov files); fake_kernel_write, given to net/ as
 * its sysfs write, records every write and does what the kernel would
 * (unbind drops the driver link, drivers_probe binds by driver_override
 * when that driver is loaded, sriov_numvfs refuses a change between two
 * non-zero counts). Failures are cmocka assertions. */
#ifndef AGENTD_TESTS_FAKE_SYSFS_H
#define AGENTD_TESTS_FAKE_SYSFS_H

#include <limits.h>
#include <stddef.h>

#include "net/passthrough.h"

#define FAKE_LOG_MAX 32

typedef struct fake {
    char root[PATH_MAX];
    net_sysfs sysfs;               /* root, and fake_kernel_write */
    char log[FAKE_LOG_MAX][PATH_MAX + 64];   /* "PATH-UNDER-ROOT=VALUE" */
    size_t nlog;
    const char *fail;              /* writes whose path ends so fail with -EIO */
} fake;

/* A tree with the drivers ixgbevf, igb and vfio-pci loaded. */
fake *fake_sysfs_new(void);
/* Removes the tree. */
void fake_sysfs_free(fake *f);

void fake_pathf(const fake *f, char out[PATH_MAX], const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void fake_put_file(const char *path, const char *text);
void fake_get_file(const char *path, char *out, size_t outlen);
void fake_mkdirs(const char *path);
void fake_add_driver(fake *f, const char *name);
void fake_link_driver(fake *f, const char *addr, const char *driver);
/* A device of class cls, bound to driver ("" for none), in IOMMU group
 * (-1 for none). */
void fake_add_device(fake *f, const char *addr, const char *cls, const char *driver, int group);
void fake_driver_of(fake *f, const char *addr, char out[64]);
void fake_override_of(fake *f, const char *addr, char out[64]);
/* An SR-IOV PF at FAKE_PF (netdev enp3s0f0, IOMMU group 20) with total
 * VFs, the first count enabled: 0000:03:10.0, 03:10.2, ... on igbvf, each
 * in its own group from 30 up. */
#define FAKE_PF "0000:03:00.0"
void fake_add_pf(fake *f, unsigned total, unsigned count);
int fake_kernel_write(void *opaque, const char *path, const char *value);
/* The log is exactly these n writes. */
void fake_assert_log(const fake *f, size_t n, ...);

#endif
