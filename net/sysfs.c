/* sysfs.c: reading and writing sysfs files under the caller's root, for
 * passthrough.c and sriov.c. Every write goes through sysfs_write so that a
 * test can stand in for the kernel. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net_internal.h"
#include "passthrough.h"

int net_sysfs_path(const net_sysfs *s, char *out, const char *fmt, ...)
{
    const char *root = s->root && *s->root ? s->root : "";
    va_list ap;
    int n = snprintf(out, PATH_MAX, "%s", root), m;

    if (n < 0 || n >= PATH_MAX)
        return -ENAMETOOLONG;
    va_start(ap, fmt);
    m = vsnprintf(out + n, PATH_MAX - (size_t)n, fmt, ap);
    va_end(ap);
    return m < 0 || m >= PATH_MAX - n ? -ENAMETOOLONG : 0;
}

/* sysfs attributes take one write of the whole value. */
static int write_file(const char *path, const char *value)
{
    size_t len = strlen(value);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t w;
    int r = 0;

    if (fd < 0)
        return -errno;
    if ((w = write(fd, value, len)) < 0)
        r = -errno;
    else if ((size_t)w != len)
        r = -EIO;
    close(fd);
    return r;
}

int net_sysfs_write(const net_sysfs *s, const char *path, const char *value)
{
    return s->write ? s->write(s->opaque, path, value) : write_file(path, value);
}

int net_sysfs_read(const char *path, char *out, size_t outlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -errno;
    n = read(fd, out, outlen - 1);
    close(fd);
    if (n < 0)
        return -errno;
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
        n--;
    out[n] = '\0';
    return 0;
}

int net_sysfs_read_uint(const char *path, unsigned long *ret)
{
    char buf[32], *end;
    unsigned long v;
    int r = net_sysfs_read(path, buf, sizeof(buf));

    if (r < 0)
        return r;
    errno = 0;
    v = strtoul(buf, &end, 0);
    if (errno || end == buf || *end)
        return -EINVAL;
    *ret = v;
    return 0;
}

int net_sysfs_link_name(const char *path, char *out, size_t outlen)
{
    char target[PATH_MAX];
    const char *base;
    ssize_t n = readlink(path, target, sizeof(target) - 1);

    if (n < 0)
        return -errno;
    target[n] = '\0';
    base = strrchr(target, '/');
    base = base ? base + 1 : target;
    if (strlen(base) >= outlen)
        return -ENAMETOOLONG;
    memcpy(out, base, strlen(base) + 1);
    return 0;
}
