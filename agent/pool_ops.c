/* pool_ops.c: starting and stopping pools. The blocking parts (mkdir, stat,
 * mount.nfs, umount) run on the thread pool; the pool is marked busy
 * meanwhile so a second start or stop is refused. */
#include "pool.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "agent.h"
#include "host.h"
#include "log.h"
#include "statefile.h"
#include "work.h"

typedef struct pool_op {
    pool *p;
    bool start;
    /* copied for the thread: the pool may be read on the loop meanwhile */
    img_pool_spec spec;
    char path[PATH_MAX];
    char mount_nfs[PATH_MAX], umount[PATH_MAX];
    int timeout_ms;
    int status;
    char err[512];
    pool_cb *cb;
    void *opaque;
} pool_op;

/* Mount points in /proc/self/mountinfo have space, tab, newline and
 * backslash written as octal escapes. */
static void unescape_mountinfo(char *s)
{
    char *w = s;

    for (char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 3;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

static bool is_mount_point(const char *path)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[8192], mp[PATH_MAX * 4];
    bool found = false;

    if (!f)
        return false;
    while (!found && fgets(line, sizeof(line), f)) {
        if (sscanf(line, "%*s %*s %*s %*s %16383s", mp) != 1)
            continue;
        unescape_mountinfo(mp);
        found = strcmp(mp, path) == 0;
    }
    fclose(f);
    return found;
}

static void fail(pool_op *o, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void fail(pool_op *o, int status, const char *fmt, ...)
{
    va_list ap;

    o->status = status;
    va_start(ap, fmt);
    vsnprintf(o->err, sizeof(o->err), fmt, ap);
    va_end(ap);
}

static void start_dir(pool_op *o)
{
    struct stat st;
    int r;

    if ((r = statefile_mkdir_p(o->path, 0711)) < 0)
        fail(o, r, "creating %s: %s", o->path, strerror(-r));
    else if (stat(o->path, &st) < 0 || !S_ISDIR(st.st_mode))
        fail(o, -ENOTDIR, "%s: not a directory", o->path);
}

static void start_phy(pool_op *o)
{
    struct stat st;

    if (stat(o->path, &st) < 0)
        fail(o, -errno, "%s: %s", o->path, strerror(errno));
    else if (!S_ISBLK(st.st_mode))
        fail(o, -ENOTBLK, "%s: not a block device", o->path);
}

/* Runs a mount helper; its output becomes the error when it fails. */
static void run_helper(pool_op *o, char *const argv[])
{
    char out[400];
    int status, r;

    if ((r = host_run(argv, o->timeout_ms, out, sizeof(out), &status)) < 0) {
        o->status = r;
        snprintf(o->err, sizeof(o->err), "%s %s: %s", argv[0], o->path,
                 r == -ETIMEDOUT ? "timed out" : strerror(-r));
        return;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        out[strcspn(out, "\n")] = '\0';
        o->status = -EIO;
        snprintf(o->err, sizeof(o->err), "%s %s failed: %s", argv[0], o->path, out);
    }
}

static void start_nfs(pool_op *o)
{
    char source[sizeof(o->spec.server) + PATH_MAX + 4];
    bool v6 = strchr(o->spec.server, ':') != NULL;
    int r;

    if ((r = statefile_mkdir_p(o->path, 0700)) < 0) {
        fail(o, r, "creating %s: %s", o->path, strerror(-r));
        return;
    }
    if (is_mount_point(o->path))
        return;   /* mounted by an earlier run of the agent */
    snprintf(source, sizeof(source), "%s%s%s:%s", v6 ? "[" : "", o->spec.server, v6 ? "]" : "",
             o->spec.export_path);
    char *argv[] = { o->mount_nfs, source, o->path, "-o", "nosuid,nodev", NULL };
    run_helper(o, argv);
    if (o->status == 0 && !is_mount_point(o->path))
        fail(o, -EIO, "%s: the mount helper succeeded but nothing is mounted there", o->path);
}

static void stop_nfs(pool_op *o)
{
    char *argv[] = { o->umount, o->path, NULL };

    if (is_mount_point(o->path))
        run_helper(o, argv);
}

static void run_op(void *arg)
{
    pool_op *o = arg;

    switch (o->spec.kind) {
    case IMG_POOL_DIR:
        if (o->start)
            start_dir(o);
        break;
    case IMG_POOL_PHY:
        if (o->start)
            start_phy(o);
        break;
    case IMG_POOL_NFS:
        if (o->start)
            start_nfs(o);
        else
            stop_nfs(o);
        break;
    }
}

int pool_when_started(pool *p, void (*cb)(void *opaque), void *opaque)
{
    pool_waiter *w, **tail = &p->started;

    if (!p->starting)
        return -EINVAL;
    if (!(w = calloc(1, sizeof(*w))))
        return -ENOMEM;
    *w = (pool_waiter){ cb, opaque, NULL };
    while (*tail)
        tail = &(*tail)->next;
    *tail = w;           /* in the order they came */
    return 0;
}

static void run_started(pool *p)
{
    pool_waiter *list = p->started;

    p->started = NULL;
    while (list) {
        pool_waiter *w = list;
        list = w->next;
        w->cb(w->opaque);
        free(w);
    }
}

static void after_op(void *arg)
{
    pool_op *o = arg;
    pool *p = o->p;

    p->busy = p->starting = false;
    if (o->status == 0)
        p->active = o->start;
    if (o->status < 0)
        log_err("pool %s: %s", p->name, o->err);
    else
        log_info("pool %s %s (%s)", p->name, o->start ? "started" : "stopped", p->location);
    o->cb(p, o->status, o->err, o->opaque);
    free(o);
    run_started(p);
}

static int queue_op(pool *p, bool start, pool_cb *cb, void *opaque)
{
    agent *a = p->agent;
    pool_op *o;
    int r;

    if (p->busy)
        return -EBUSY;
    if (!(o = calloc(1, sizeof(*o))))
        return -ENOMEM;
    *o = (pool_op){ .p = p, .start = start, .spec = p->spec, .timeout_ms = (int)a->cfg.mount_timeout_ms,
                    .cb = cb, .opaque = opaque };
    snprintf(o->path, sizeof(o->path), "%s", p->path);
    snprintf(o->mount_nfs, sizeof(o->mount_nfs), "%s", a->cfg.mount_nfs);
    snprintf(o->umount, sizeof(o->umount), "%s", a->cfg.umount);
    if ((r = agent_work(a->loop, run_op, after_op, o)) < 0) {
        free(o);
        return r;
    }
    p->busy = true;
    p->starting = start;
    return 0;
}

int pool_start(pool *p, pool_cb *cb, void *opaque)
{
    return queue_op(p, true, cb, opaque);
}

int pool_stop(pool *p, pool_cb *cb, void *opaque)
{
    return queue_op(p, false, cb, opaque);
}

/* ---- autostart ----------------------------------------------------------- */

typedef struct autostart {
    agent *a;
    int pending;
    void (*done)(agent *a);
} autostart;

static void on_autostarted(pool *p, int status, const char *err, void *opaque)
{
    autostart *s = opaque;

    (void)p, (void)status, (void)err;
    if (--s->pending == 0) {
        s->done(s->a);
        free(s);
    }
}

void pools_autostart(agent *a, void (*done)(agent *a))
{
    autostart *s = calloc(1, sizeof(*s));

    if (!s) {
        done(a);
        return;
    }
    *s = (autostart){ .a = a, .pending = 1, .done = done };
    for (pool *p = a->pools; p; p = p->next)
        if (p->autostart && !p->active && pool_start(p, on_autostarted, s) == 0)
            s->pending++;
    on_autostarted(NULL, 0, NULL, s);
}
