/* tempfile.c: temp names next to a target, installation by rename, and the
 * directory sync that makes the rename durable. */
#include "tempfile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "errmsg.h"

#define TMP_TRIES 64
#define TMP_BASE_MAX 200                 /* of the target's name, in the temp name */

static uint32_t temp_suffix(void)
{
    static unsigned counter;
    struct timespec ts;
    uint32_t v;

    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v))
        return v;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)ts.tv_nsec ^ (uint32_t)getpid() << 16 ^
           __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
}

int img_temp_open(const char *path, char *tmp, char *err, size_t errlen)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    int dirlen = slash ? (int)(slash - path + 1) : 0;

    for (int k = 0; k < TMP_TRIES; k++) {
        int n = snprintf(tmp, PATH_MAX, "%.*s.%.*s.tmp-%08" PRIx32, dirlen, path,
                         TMP_BASE_MAX, base, temp_suffix());
        int fd;

        if (n < 0 || n >= PATH_MAX)
            return img_errmsg(err, errlen, -ENAMETOOLONG, "%s: path too long", path);
        fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST)
            return img_errmsg(err, errlen, -errno,
                              "%s: cannot create a file in its directory: %m", path);
    }
    return img_errmsg(err, errlen, -EEXIST, "%s: no free temporary name", path);
}

int img_temp_install(const char *tmp, const char *path, bool replace, char *err, size_t errlen)
{
    if (replace) {
        if (rename(tmp, path) == 0)
            return 0;
        return img_errmsg(err, errlen, -errno, "%s: %m", path);
    }
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno == EINVAL || errno == ENOSYS) {
        if (link(tmp, path) == 0) {
            unlink(tmp);
            return 0;
        }
    }
    if (errno == EEXIST)
        return img_errmsg(err, errlen, -EEXIST, "%s: already exists; refusing to overwrite it",
                          path);
    return img_errmsg(err, errlen, -errno, "%s: %m", path);
}

int img_sync_dir(const char *path, char *err, size_t errlen)
{
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    int fd, r = 0;

    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0)
        r = img_errmsg(err, errlen, -errno, "%s: cannot sync its directory: %m", path);
    if (fd >= 0)
        close(fd);
    return r;
}
