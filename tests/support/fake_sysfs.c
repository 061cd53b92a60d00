/* fake_sysfs.c: see fake_sysfs.h. */
#include "fake_sysfs.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- the tree ------------------------------------------------------------------------------ */

void fake_pathf(const fake *f, char out[PATH_MAX], const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(out, PATH_MAX, "%s", f->root);

    va_start(ap, fmt);
    vsnprintf(out + n, PATH_MAX - (size_t)n, fmt, ap);
    va_end(ap);
}

void fake_put_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

void fake_get_file(const char *path, char *out, size_t outlen)
{
    FILE *fp = fopen(path, "r");
    size_t n;

    assert_non_null(fp);
    n = fread(out, 1, outlen - 1, fp);
    out[n] = '\0';
    fclose(fp);
}

void fake_mkdirs(const char *path)
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

void fake_add_driver(fake *f, const char *name)
{
    char p[PATH_MAX];

    fake_pathf(f, p, "/sys/bus/pci/drivers/%s", name);
    fake_mkdirs(p);
    fake_pathf(f, p, "/sys/bus/pci/drivers/%s/bind", name);
    fake_put_file(p, "");
    fake_pathf(f, p, "/sys/bus/pci/drivers/%s/unbind", name);
    fake_put_file(p, "");
}

void fake_link_driver(fake *f, const char *addr, const char *driver)
{
    char target[PATH_MAX], p[PATH_MAX];

    fake_pathf(f, target, "/sys/bus/pci/drivers/%s", driver);
    fake_pathf(f, p, "/sys/bus/pci/devices/%s/driver", addr);
    assert_int_equal(symlink(target, p), 0);
}

/* A device, bound to driver ("" for none), in IOMMU group (-1 for none). */
void fake_add_device(fake *f, const char *addr, const char *cls, const char *driver, int group)
{
    char p[PATH_MAX], target[PATH_MAX];

    fake_pathf(f, p, "/sys/bus/pci/devices/%s", addr);
    fake_mkdirs(p);
    fake_pathf(f, p, "/sys/bus/pci/devices/%s/class", addr);
    fake_put_file(p, cls);
    fake_pathf(f, p, "/sys/bus/pci/devices/%s/driver_override", addr);
    fake_put_file(p, "(null)\n");
    if (*driver)
        fake_link_driver(f, addr, driver);
    if (group < 0)
        return;
    fake_pathf(f, target, "/sys/kernel/iommu_groups/%d/devices", group);
    fake_mkdirs(target);
    fake_pathf(f, p, "/sys/kernel/iommu_groups/%d/devices/%s", group, addr);
    fake_pathf(f, target, "/sys/bus/pci/devices/%s", addr);
    assert_int_equal(symlink(target, p), 0);
    fake_pathf(f, target, "/sys/kernel/iommu_groups/%d", group);
    fake_pathf(f, p, "/sys/bus/pci/devices/%s/iommu_group", addr);
    assert_int_equal(symlink(target, p), 0);
}

void fake_driver_of(fake *f, const char *addr, char out[64])
{
    char p[PATH_MAX], target[PATH_MAX];
    ssize_t n;

    fake_pathf(f, p, "/sys/bus/pci/devices/%s/driver", addr);
    if ((n = readlink(p, target, sizeof(target) - 1)) < 0) {
        out[0] = '\0';
        return;
    }
    target[n] = '\0';
    snprintf(out, 64, "%s", strrchr(target, '/') + 1);
}

void fake_override_of(fake *f, const char *addr, char out[64])
{
    char p[PATH_MAX];

    fake_pathf(f, p, "/sys/bus/pci/devices/%s/driver_override", addr);
    fake_get_file(p, out, 64);
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
    fake_driver_of(f, addr, now);
    if (strcmp(want, now) != 0)
        return -ENODEV;
    fake_pathf(f, p, "/sys/bus/pci/devices/%s/driver", addr);
    return unlink(p) < 0 ? -errno : 0;
}

static int kernel_bind(fake *f, const char *rel, const char *addr)
{
    char want[64], now[64];

    driver_in_path(rel, want);
    fake_driver_of(f, addr, now);
    if (*now)
        return -EBUSY;
    fake_link_driver(f, addr, want);
    return 0;
}

/* Binds by driver_override when the named driver is loaded. */
static int kernel_probe(fake *f, const char *addr)
{
    char now[64], ovr[64], p[PATH_MAX];

    fake_driver_of(f, addr, now);
    fake_override_of(f, addr, ovr);
    ovr[strcspn(ovr, "\n")] = '\0';
    if (*now || !*ovr || !strcmp(ovr, "(null)"))
        return 0;
    fake_pathf(f, p, "/sys/bus/pci/drivers/%s", ovr);
    if (access(p, F_OK) == 0)
        fake_link_driver(f, addr, ovr);
    return 0;
}

static int kernel_numvfs(const char *path, const char *value)
{
    char now[16];

    fake_get_file(path, now, sizeof(now));
    if (atoi(now) != 0 && atoi(value) != 0)
        return -EBUSY;
    fake_put_file(path, value);
    return 0;
}

int fake_kernel_write(void *opaque, const char *path, const char *value)
{
    fake *f = opaque;
    const char *rel = path + strlen(f->root);

    assert_true(strncmp(path, f->root, strlen(f->root)) == 0);
    assert_true(f->nlog < FAKE_LOG_MAX);
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
    fake_put_file(path, value);
    return 0;
}

void fake_assert_log(const fake *f, size_t n, ...)
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


/* A PF with total VFs, count of them enabled (their virtfn links made). */
void fake_add_pf(fake *f, unsigned total, unsigned count)
{
    char p[PATH_MAX], target[PATH_MAX], vf[NET_PCI_TEXT], n[16];

    fake_add_device(f, FAKE_PF, "0x020000", "igb", 20);
    fake_pathf(f, p, "/sys/bus/pci/devices/" FAKE_PF "/sriov_totalvfs");
    snprintf(n, sizeof(n), "%u\n", total);
    fake_put_file(p, n);
    fake_pathf(f, p, "/sys/bus/pci/devices/" FAKE_PF "/sriov_numvfs");
    snprintf(n, sizeof(n), "%u\n", count);
    fake_put_file(p, n);
    fake_pathf(f, p, "/sys/bus/pci/devices/" FAKE_PF "/net/enp3s0f0");
    fake_mkdirs(p);
    for (unsigned i = 0; i < count; i++) {
        /* VFs at 03:10.0, 03:10.2, ... as igb lays them out. */
        snprintf(vf, sizeof(vf), "0000:03:10.%u", i * 2);
        fake_add_device(f, vf, "0x020000", "igbvf", (int)(30 + i));
        fake_pathf(f, p, "/sys/bus/pci/devices/" FAKE_PF "/virtfn%u", i);
        fake_pathf(f, target, "/sys/bus/pci/devices/%s", vf);
        assert_int_equal(symlink(target, p), 0);
        fake_pathf(f, p, "/sys/bus/pci/devices/%s/physfn", vf);
        fake_pathf(f, target, "/sys/bus/pci/devices/" FAKE_PF);
        assert_int_equal(symlink(target, p), 0);
    }
}

fake *fake_sysfs_new(void)
{
    fake *f = calloc(1, sizeof(*f));
    char p[PATH_MAX];

    assert_non_null(f);
    snprintf(f->root, sizeof(f->root), "/tmp/agentd-pt-XXXXXX");
    assert_non_null(mkdtemp(f->root));
    f->sysfs = (net_sysfs){ .root = f->root, .write = fake_kernel_write, .opaque = f };
    fake_add_driver(f, "ixgbevf");
    fake_add_driver(f, "igb");
    fake_add_driver(f, "vfio-pci");
    fake_pathf(f, p, "/sys/bus/pci/drivers_probe");
    fake_put_file(p, "");
    return f;
}

void fake_sysfs_free(fake *f)
{
    char cmd[PATH_MAX + 16];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
    assert_int_equal(system(cmd), 0);
    free(f);
}
