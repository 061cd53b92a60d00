/* disk.c: disks of definitions, mapped to files. */
#include "disk.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "agent.h"
#include "pool.h"
#include "statefile.h"
#include "vm.h"
#include "work.h"

int disk_source_path(agent *a, const vm_disk *d, char *buf, size_t len)
{
    pool *p;
    int n;

    if (d->path)
        n = snprintf(buf, len, "%s", d->path);
    else if (!d->pool[0] || !(p = pool_find(a, d->pool)))
        return -ENOENT;
    else if (p->spec.kind == IMG_POOL_PHY)
        n = snprintf(buf, len, "%s", p->path);
    else
        n = snprintf(buf, len, "%s/%s", p->path, d->volume);
    return n >= (int)len ? -ENAMETOOLONG : 0;
}

static bool vm_uses(agent *a, const vm *v, const char *path)
{
    char mine[PATH_MAX];

    for (size_t i = 0; i < v->def.ndisks; i++)
        if (disk_source_path(a, &v->def.disks[i], mine, sizeof(mine)) == 0 && strcmp(mine, path) == 0)
            return true;
    return false;
}

struct json_object *disk_users(agent *a, const char *path)
{
    struct json_object *arr = json_object_new_array();

    for (vm *v = a->vms; v; v = v->next)
        if (!v->undefined && vm_uses(a, v, path))
            json_object_array_add(arr, json_object_new_string(v->def.name));
    return arr;
}

/* ---- who depends on an image ---------------------------------------------- */

typedef struct dep_disk {
    char vm[VM_NAME_MAX + 1];
    char path[PATH_MAX];
    img_format format;
} dep_disk;

typedef struct dep_scan {
    char **roots;
    char (*targets)[PATH_MAX];
    size_t ntargets;
    dep_disk *disks;
    size_t ndisks;
    struct json_object *names;
    disk_dependents_cb *cb;
    void *opaque;
} dep_scan;

static bool chain_hits(dep_scan *s, const dep_disk *d)
{
    img_open_options o = { .roots = (const char *const *)s->roots };
    img_layer_info info;
    bool hit = false;
    img *im;

    if (img_open(d->path, d->format, &o, &im, NULL, 0) < 0)
        return false;
    for (size_t l = 1; l < img_depth(im) && !hit; l++)
        for (size_t t = 0; t < s->ntargets && !hit; t++)
            hit = img_layer_info_get(im, l, &info) == 0 && strcmp(info.path, s->targets[t]) == 0;
    img_close(im);
    return hit;
}

static bool listed(struct json_object *arr, const char *name)
{
    for (size_t i = 0; i < json_object_array_length(arr); i++)
        if (strcmp(json_object_get_string(json_object_array_get_idx(arr, i)), name) == 0)
            return true;
    return false;
}

static void run_scan(void *arg)
{
    dep_scan *s = arg;
    char real[PATH_MAX];

    for (size_t t = 0; t < s->ntargets; t++)
        if (realpath(s->targets[t], real))
            memcpy(s->targets[t], real, sizeof(real));
    s->names = json_object_new_array();
    for (size_t i = 0; i < s->ndisks; i++)
        if (!listed(s->names, s->disks[i].vm) && chain_hits(s, &s->disks[i]))
            json_object_array_add(s->names, json_object_new_string(s->disks[i].vm));
}

static void after_scan(void *arg)
{
    dep_scan *s = arg;

    s->cb(s->opaque, 0, s->names);
    pool_roots_free(s->roots);
    free(s->targets);
    free(s->disks);
    free(s);
}

static size_t count_disks(agent *a)
{
    size_t n = 0;

    for (vm *v = a->vms; v; v = v->next)
        n += v->def.ndisks;
    return n;
}

static void collect_disks(agent *a, dep_scan *s)
{
    for (vm *v = a->vms; v; v = v->next) {
        for (size_t i = 0; i < v->def.ndisks && !v->undefined; i++) {
            const vm_disk *d = &v->def.disks[i];
            dep_disk *out = &s->disks[s->ndisks];
            if (d->cdrom || disk_source_path(a, d, out->path, sizeof(out->path)) < 0)
                continue;
            snprintf(out->vm, sizeof(out->vm), "%s", v->def.name);
            out->format = d->format == VM_DISK_RAW ? IMG_FORMAT_RAW : IMG_FORMAT_QCOW2;
            s->ndisks++;
        }
    }
}

int disk_dependents(agent *a, const char *const *targets, size_t ntargets, disk_dependents_cb *cb,
                    void *opaque)
{
    dep_scan *s = calloc(1, sizeof(*s));
    int r = -ENOMEM;

    if (!s)
        return -ENOMEM;
    s->cb = cb;
    s->opaque = opaque;
    s->ntargets = ntargets;
    if (!(s->targets = calloc(ntargets + 1, PATH_MAX)) ||
        !(s->disks = calloc(count_disks(a) + 1, sizeof(*s->disks))) || !(s->roots = pool_roots(a)))
        goto fail;
    for (size_t t = 0; t < ntargets; t++)
        snprintf(s->targets[t], PATH_MAX, "%s", targets[t]);
    collect_disks(a, s);
    if ((r = agent_work(a->loop, run_scan, after_scan, s)) == 0)
        return 0;
fail:
    pool_roots_free(s->roots);
    free(s->targets);
    free(s->disks);
    free(s);
    return r;
}

/* ---- making a definition's disks ------------------------------------------- */

typedef struct prep_disk {
    char path[PATH_MAX];
    uint64_t size;            /* 0: must exist */
    img_format format;
    char what[32];            /* "disks[0]" for messages */
} prep_disk;

typedef struct disk_prep {
    char **roots;
    prep_disk disks[VM_DISKS_MAX];
    size_t n;
    int status;
    char err[512];
    struct json_object *created;
    agent_work_fn *more;      /* then, on the same thread */
    void *more_arg;
    disk_prepare_cb *cb;
    void *opaque;
} disk_prep;

static int prepare_one(disk_prep *p, const prep_disk *d)
{
    img_create_options o = { .format = d->format, .size = d->size,
                             .roots = (const char *const *)p->roots };
    char msg[400];
    struct stat st;
    int r;

    if (stat(d->path, &st) == 0)
        return 0;
    if (errno != ENOENT || d->size == 0) {
        r = -errno;
        snprintf(p->err, sizeof(p->err), "%s: %s: %s%s", d->what, d->path, strerror(errno),
                 d->size == 0 && errno == ENOENT ? " (give a size to create it)" : "");
        return r;
    }
    if ((r = img_create(d->path, &o, msg, sizeof(msg))) < 0) {
        snprintf(p->err, sizeof(p->err), "%s: %s", d->what, msg);
        return r;
    }
    json_object_array_add(p->created, json_object_new_string(d->path));
    return 0;
}

static void run_prepare(void *arg)
{
    disk_prep *p = arg;

    for (size_t i = 0; i < p->n && p->status == 0; i++)
        p->status = prepare_one(p, &p->disks[i]);
    if (p->status == 0 && p->more)
        p->more(p->more_arg);
}

static void after_prepare(void *arg)
{
    disk_prep *p = arg;

    p->cb(p->opaque, p->status, p->err, p->created);
    pool_roots_free(p->roots);
    free(p);
}

/* On the loop: which files, and refusals that need no disk access. */
static int plan_prepare(agent *a, const vm_def *def, disk_prep *p)
{
    for (size_t i = 0; i < def->ndisks; i++) {
        const vm_disk *d = &def->disks[i];
        prep_disk *out = &p->disks[p->n];
        pool *pl = d->path ? NULL : pool_find(a, d->pool);
        if (d->cdrom && !d->path && !d->pool[0])
            continue;
        if (!d->path && !pl) {
            snprintf(p->err, sizeof(p->err), "disks[%zu].pool: no pool named '%s'", i, d->pool);
            return -EINVAL;
        }
        if (pl && pl->spec.kind == IMG_POOL_PHY && d->format != VM_DISK_RAW) {
            snprintf(p->err, sizeof(p->err), "disks[%zu].format: pool %s is the block device %s, given raw",
                     i, d->pool, pl->spec.path);
            return -EINVAL;
        }
        if (pl && !pl->active) {
            if (d->size) {
                snprintf(p->err, sizeof(p->err), "disks[%zu].pool: %s is not started", i, d->pool);
                return -EINVAL;
            }
            continue;   /* checked when the VM starts */
        }
        if (disk_source_path(a, d, out->path, sizeof(out->path)) < 0)
            return -ENAMETOOLONG;
        out->size = pl && pl->spec.kind == IMG_POOL_PHY ? 0 : d->size;
        out->format = d->format == VM_DISK_RAW || d->cdrom ? IMG_FORMAT_RAW : IMG_FORMAT_QCOW2;
        snprintf(out->what, sizeof(out->what), "disks[%zu]", i);
        p->n++;
    }
    return 0;
}

int disk_prepare(agent *a, const vm_def *def, disk_prepare_cb *cb, void *opaque, char *err, size_t errlen)
{
    return disk_prepare_then(a, def, NULL, NULL, cb, opaque, err, errlen);
}

int disk_prepare_then(agent *a, const vm_def *def, agent_work_fn *more, void *more_arg, disk_prepare_cb *cb,
                      void *opaque, char *err, size_t errlen)
{
    disk_prep *p = calloc(1, sizeof(*p));
    int r;

    if (!p)
        return -ENOMEM;
    p->more = more;
    p->more_arg = more_arg;
    p->cb = cb;
    p->opaque = opaque;
    if ((r = plan_prepare(a, def, p)) < 0) {
        snprintf(err, errlen, "%s", p->err);
        free(p);
        return r;
    }
    p->created = json_object_new_array();
    if (!(p->roots = pool_roots(a)) || (r = agent_work(a->loop, run_prepare, after_prepare, p)) < 0) {
        json_object_put(p->created);
        pool_roots_free(p->roots);
        free(p);
        snprintf(err, errlen, "out of memory");
        return r < 0 ? r : -ENOMEM;
    }
    return 0;
}

typedef struct removal {
    struct json_object *created;
    void (*done)(void *opaque);
    void *opaque;
} removal;

static void run_remove(void *arg)
{
    removal *m = arg;

    for (size_t i = 0; i < json_object_array_length(m->created); i++)
        statefile_remove_durable(json_object_get_string(json_object_array_get_idx(m->created, i)));
}

static void after_remove(void *arg)
{
    removal *m = arg;

    json_object_put(m->created);
    if (m->done)
        m->done(m->opaque);
    free(m);
}

void disk_remove_created(agent *a, struct json_object *created, void (*done)(void *opaque), void *opaque)
{
    removal *m = malloc(sizeof(*m));
    removal now = { created, done, opaque };

    if (m) {
        *m = now;
        if (created && json_object_array_length(created) > 0 && agent_work(a->loop, run_remove, after_remove, m) == 0)
            return;
        free(m);
    }
    /* Nothing to remove, or no way to queue it: at once, on the loop. */
    if (created)
        run_remove(&now);
    json_object_put(created);
    if (done)
        done(opaque);
}
