/* statefile.c: atomic, durable, ordered state file writes. */
#include "statefile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

static int fsync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    int fd, r = 0;

    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fsync(fd) < 0)
        r = -errno;
    close(fd);
    return r;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int statefile_stage(const char *path, const void *data, size_t len, mode_t mode, char *tmp)
{
    int fd, r;

    if (snprintf(tmp, PATH_MAX, "%s.tmp.XXXXXX", path) >= PATH_MAX)
        return -ENAMETOOLONG;
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    r = write_all(fd, data, len);
    if (r == 0 && fchmod(fd, mode) < 0)
        r = -errno;
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r < 0)
        unlink(tmp);
    return r;
}

int statefile_install(const char *tmp, const char *path)
{
    if (rename(tmp, path) < 0) {
        int r = -errno;
        unlink(tmp);
        return r;
    }
    return fsync_dir_of(path);
}

int statefile_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
    char tmp[PATH_MAX];
    int r = statefile_stage(path, data, len, mode, tmp);

    return r < 0 ? r : statefile_install(tmp, path);
}

int statefile_remove_durable(const char *path)
{
    if (unlink(path) < 0 && errno != ENOENT)
        return -errno;
    return fsync_dir_of(path);
}

int statefile_read(const char *path, size_t max, char **ret_data, size_t *ret_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *buf;
    size_t got = 0;

    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0 || st.st_size < 0 || (size_t)st.st_size > max) {
        int e = errno ? errno : EFBIG;
        close(fd);
        return (size_t)st.st_size > max ? -EFBIG : -e;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    *ret_data = buf;
    if (ret_len)
        *ret_len = got;
    return 0;
}

int statefile_mkdir_p(const char *path, mode_t mode)
{
    char buf[PATH_MAX];

    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return -errno;
            *p = c;
            if (c == '\0')
                break;
        }
    }
    return 0;
}

/* ---- the ordered, coalescing writer ------------------------------------ */

typedef struct waiter {
    statefile_cb cb;
    void *opaque;
    struct waiter *next;
} waiter;

typedef struct batch {
    char *data;        /* NULL: remove */
    size_t len;
    bool remove;
    waiter *waiters;
} batch;

struct statefile_writer {
    uv_loop_t *loop;
    char *path;
    mode_t mode;
    uv_work_t work;
    bool busy;
    bool orphaned;
    bool dispatching;   /* running callbacks: a free must wait until they return */
    waiter *dispatch;   /* the callbacks not yet run, while dispatching */
    int status;
    batch inflight;
    batch next;
    bool has_next;
};

static void batch_clear(batch *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

static void run_write(uv_work_t *req)
{
    statefile_writer *w = req->data;

    w->status = w->inflight.remove ? statefile_remove_durable(w->path)
                                   : statefile_write_atomic(w->path, w->inflight.data,
                                                            w->inflight.len, w->mode);
}

static void after_write(uv_work_t *req, int status);

static void start_next(statefile_writer *w)
{
    w->inflight = w->next;
    memset(&w->next, 0, sizeof(w->next));
    w->has_next = false;
    w->busy = true;
    w->work.data = w;
    if (uv_queue_work(w->loop, &w->work, run_write, after_write) < 0) {
        w->status = -EIO;
        after_write(&w->work, 0);
    }
}

static void writer_destroy(statefile_writer *w)
{
    batch_clear(&w->next);
    free(w->path);
    free(w);
}

static void after_write(uv_work_t *req, int status)
{
    statefile_writer *w = req->data;
    waiter *list = w->inflight.waiters;

    w->busy = false;
    w->inflight.waiters = NULL;
    batch_clear(&w->inflight);
    int result = status < 0 ? status : w->status;
    /* Start the next batch before the callbacks, which may put again. */
    if (w->has_next)
        start_next(w);
    w->dispatching = true;
    w->dispatch = list;
    while (w->dispatch) {
        waiter *cur = w->dispatch;
        w->dispatch = cur->next;
        if (cur->cb && !w->orphaned)
            cur->cb(result, cur->opaque);
        free(cur);
    }
    w->dispatching = false;
    if (w->orphaned && !w->busy)
        writer_destroy(w);
}

statefile_writer *statefile_writer_new(uv_loop_t *loop, const char *path, mode_t mode)
{
    statefile_writer *w = calloc(1, sizeof(*w));

    if (!w || !(w->path = strdup(path))) {
        free(w);
        return NULL;
    }
    w->loop = loop;
    w->mode = mode;
    return w;
}

int statefile_writer_put(statefile_writer *w, const char *data, size_t len, statefile_cb cb, void *opaque)
{
    waiter *wt = calloc(1, sizeof(*wt));
    char *copy = NULL;

    if (!wt || (data && !(copy = malloc(len ? len : 1)))) {
        free(wt);
        return -ENOMEM;
    }
    if (data)
        memcpy(copy, data, len);
    wt->cb = cb;
    wt->opaque = opaque;
    /* Only the newest content matters; older waiters ride along with it. */
    free(w->next.data);
    w->next.data = copy;
    w->next.len = len;
    w->next.remove = data == NULL;
    wt->next = w->next.waiters;
    w->next.waiters = wt;
    w->has_next = true;
    if (!w->busy)
        start_next(w);
    return 0;
}

static void forget_callbacks(waiter *list)
{
    for (; list; list = list->next)
        list->cb = NULL;
}

/* The owner is going away, so no callback may reach it any more; the data
 * already put is still written. */
void statefile_writer_free(statefile_writer *w)
{
    if (!w)
        return;
    forget_callbacks(w->inflight.waiters);
    forget_callbacks(w->next.waiters);
    if (w->busy || w->has_next || w->dispatching) {
        w->orphaned = true;
        return;
    }
    writer_destroy(w);
}
