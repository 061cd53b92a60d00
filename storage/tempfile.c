/* tempfile.c: temp names next to a target, installation by rename, the
 * directory sync that makes the rename durable, and the checks and syncs
 * that come before. */
#include "tempfile.h"

#include <ctype.h>
#include <dirent.h>
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
#include "storage.h"

#define TMP_TRIES 64
#define TMP_BASE_MAX 200                 /* of the target's name, in the temp name */
#define MSG_MAX 512

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

/* The new image must open as a reader opens it: the same checks that any
 * later img_open makes, the backing chain included. */
static int verify(const char *tmp, const char *path, img_format format, const char *const *roots,
                  char *err, size_t errlen)
{
    img_open_options o = { .roots = roots };
    char msg[MSG_MAX] = "";
    img *i = NULL;
    int r = img_open(tmp, format, &o, &i, msg, sizeof(msg));

    if (r < 0)
        return img_errmsg(err, errlen, r, "%s: the new image does not open: %s", path, msg);
    img_close(i);
    return 0;
}

int img_temp_commit(int fd, const char *tmp, const char *path, img_format format,
                    const char *const *roots, bool replace, char *err, size_t errlen)
{
    int r = 0;

    if (fsync(fd) < 0)
        r = img_errmsg(err, errlen, -errno, "%s: fsync: %m", tmp);
    if (close(fd) < 0 && r == 0)
        r = img_errmsg(err, errlen, -errno, "%s: close: %m", tmp);
    if (r == 0)
        r = verify(tmp, path, format, roots, err, errlen);
    if (r == 0)
        r = img_temp_install(tmp, path, replace, err, errlen);
    if (r < 0) {
        unlink(tmp);
        return r;
    }
    r = img_sync_dir(path, err, errlen);
    if (r < 0 && !replace)
        unlink(path);    /* not known to be durable: leave nothing */
    return r;
}

/* The temp name img_temp_open gives: ".BASE.tmp-" and eight hex digits. */
static bool is_temp_of(const char *name, const char *base)
{
    size_t n = strnlen(base, TMP_BASE_MAX);

    if (name[0] != '.' || strncmp(name + 1, base, n) != 0 || strncmp(name + 1 + n, ".tmp-", 5) != 0)
        return false;
    name += 1 + n + 5;
    for (int i = 0; i < 8; i++)
        if (!isxdigit((unsigned char)name[i]))
            return false;
    return name[8] == '\0';
}

int img_temp_sweep(const char *path, char *err, size_t errlen)
{
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    struct dirent *e;
    int removed = 0, fd;
    DIR *d;

    if (!slash || slash[1] == '\0')
        return img_errmsg(err, errlen, -EINVAL, "%s: not a file path", path);
    snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
    if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || !(d = fdopendir(fd))) {
        int r = -errno;
        if (fd >= 0)
            close(fd);
        return r == -ENOENT ? 0 : img_errmsg(err, errlen, r, "%s: cannot list its directory: %s", path,
                                                        strerror(-r));
    }
    while ((e = readdir(d)))
        if (is_temp_of(e->d_name, slash + 1) && unlinkat(dirfd(d), e->d_name, 0) == 0)
            removed++;
    closedir(d);
    return removed;
}
