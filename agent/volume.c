/* volume.c: listing, creating and deleting volumes, off the loop. */
#include "volume.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "agent.h"
#include "pool.h"
#include "statefile.h"
#include "work.h"

typedef struct volume_op {
    char **roots;                 /* active pools, copied on the loop */
    img_pool_kind kind;
    char path[PATH_MAX];          /* the pool's directory, or the volume */
    img_create_options create;
    char backing[PATH_MAX];
    int status;
    char err[512];
    struct json_object *ret;
    volume_cb *cb;
    void *opaque;
} volume_op;

static void after(void *arg)
{
    volume_op *o = arg;

    o->cb(o->opaque, o->status, o->ret, o->err);
    pool_roots_free(o->roots);
    free(o);
}

static int queue(agent *a, volume_op *o, agent_work_fn *fn)
{
    int r;

    if (!o->roots && !(o->roots = pool_roots(a)))
        r = -ENOMEM;
    else
        r = agent_work(a->loop, fn, after, o);
    if (r < 0) {
        pool_roots_free(o->roots);
        free(o);
    }
    return r;
}

static volume_op *op_new(volume_cb *cb, void *opaque)
{
    volume_op *o = calloc(1, sizeof(*o));

    if (o) {
        o->cb = cb;
        o->opaque = opaque;
    }
    return o;
}

/* qcow2 files start with "QFI\xfb"; anything else is listed as raw. */
static bool looks_qcow2(const char *path)
{
    unsigned char m[4];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    bool yes;

    if (fd < 0)
        return false;
    yes = pread(fd, m, 4, 0) == 4 && memcmp(m, "QFI\xfb", 4) == 0;
    close(fd);
    return yes;
}

static void add_image_facts(struct json_object *o, const char *path, img_format f, char **roots)
{
    img_open_options opt = { .roots = (const char *const *)roots, .max_depth = 2 };
    img_layer_info info;
    char err[256];
    img *i;

    if (img_open(path, f, &opt, &i, err, sizeof(err)) < 0) {
        json_object_object_add(o, "error", json_object_new_string(err));
        return;
    }
    img_layer_info_get(i, 0, &info);
    json_object_object_add(o, "virtual-size", json_object_new_int64((int64_t)info.virtual_size));
    json_object_object_add(o, "allocated", json_object_new_int64((int64_t)info.file_size));
    if (info.has_backing && img_depth(i) > 1) {
        img_layer_info_get(i, 1, &info);
        json_object_object_add(o, "backing", json_object_new_string(info.path));
    }
    img_close(i);
}

static struct json_object *describe(const char *dir, const char *name, char **roots)
{
    struct json_object *o = json_object_new_object();
    char path[PATH_MAX];
    img_format f;

    snprintf(path, sizeof(path), "%s%s%s", dir, name ? "/" : "", name ? name : "");
    f = looks_qcow2(path) ? IMG_FORMAT_QCOW2 : IMG_FORMAT_RAW;
    json_object_object_add(o, "name", json_object_new_string(name ? name : ""));
    json_object_object_add(o, "path", json_object_new_string(path));
    json_object_object_add(o, "format", json_object_new_string(img_format_name(f)));
    add_image_facts(o, path, f, roots);
    return o;
}

static bool listable(const char *dir, const struct dirent *e)
{
    char path[PATH_MAX];
    struct stat st;

    if (!pool_volume_name_valid(e->d_name) ||
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
        return false;
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static void run_list(void *arg)
{
    volume_op *o = arg;
    struct dirent **list;
    int n;

    o->ret = json_object_new_array();
    if (o->kind == IMG_POOL_PHY) {
        json_object_array_add(o->ret, describe(o->path, NULL, o->roots));
        return;
    }
    if ((n = scandir(o->path, &list, NULL, alphasort)) < 0) {
        o->status = -errno;
        snprintf(o->err, sizeof(o->err), "reading %s: %s", o->path, strerror(errno));
        return;
    }
    for (int i = 0; i < n; i++) {
        if (listable(o->path, list[i]))
            json_object_array_add(o->ret, describe(o->path, list[i]->d_name, o->roots));
        free(list[i]);
    }
    free(list);
}

int volume_list(pool *p, volume_cb *cb, void *opaque)
{
    volume_op *o = op_new(cb, opaque);

    if (!o)
        return -ENOMEM;
    o->kind = p->spec.kind;
    snprintf(o->path, sizeof(o->path), "%s", p->path);
    return queue(p->agent, o, run_list);
}

/* ---- create -------------------------------------------------------------- */

static void run_create(void *arg)
{
    volume_op *o = arg;
    img_layer_info info;
    img_open_options opt = { .roots = (const char *const *)o->roots, .max_depth = 1 };
    img *i;

    o->create.roots = (const char *const *)o->roots;
    o->create.backing_file = o->backing[0] ? o->backing : NULL;
    if ((o->status = img_create(o->path, &o->create, o->err, sizeof(o->err))) < 0)
        return;
    o->ret = json_object_new_object();
    json_object_object_add(o->ret, "path", json_object_new_string(o->path));
    if (img_open(o->path, o->create.format, &opt, &i, NULL, 0) == 0) {
        img_layer_info_get(i, 0, &info);
        json_object_object_add(o->ret, "virtual-size", json_object_new_int64((int64_t)info.virtual_size));
        img_close(i);
    }
}

int volume_create(agent *a, const volume_spec *s, volume_cb *cb, void *opaque)
{
    volume_op *o = op_new(cb, opaque);

    if (!o)
        return -ENOMEM;
    snprintf(o->path, sizeof(o->path), "%s", s->path);
    snprintf(o->backing, sizeof(o->backing), "%s", s->backing ? s->backing : "");
    o->create = (img_create_options){ .format = s->format, .size = s->size,
                                      .backing_format = s->backing_format };
    return queue(a, o, run_create);
}

/* ---- info and check ------------------------------------------------------ */

static struct json_object *layer_json(const img_layer_info *l)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "path", json_object_new_string(l->path));
    json_object_object_add(o, "format", json_object_new_string(img_format_name(l->format)));
    json_object_object_add(o, "virtual-size", json_object_new_int64((int64_t)l->virtual_size));
    json_object_object_add(o, "allocated", json_object_new_int64((int64_t)l->file_size));
    if (l->format != IMG_FORMAT_QCOW2)
        return o;
    json_object_object_add(o, "version", json_object_new_int(l->version));
    json_object_object_add(o, "cluster-size", json_object_new_int64(l->cluster_size));
    json_object_object_add(o, "refcount-bits", json_object_new_int64(l->refcount_bits));
    json_object_object_add(o, "dirty", json_object_new_boolean(l->dirty));
    json_object_object_add(o, "corrupt", json_object_new_boolean(l->corrupt));
    json_object_object_add(o, "lazy-refcounts", json_object_new_boolean(l->lazy_refcounts));
    if (l->has_backing) {
        json_object_object_add(o, "backing-file", json_object_new_string(l->backing_file));
        json_object_object_add(o, "backing-format", json_object_new_string(img_format_name(l->backing_format)));
    }
    return o;
}

static void run_info(void *arg)
{
    volume_op *o = arg;
    img_open_options opt = { .roots = (const char *const *)o->roots };
    img_format f = o->create.format;
    struct json_object *chain;
    img_layer_info info;
    img *i;

    if ((o->status = img_open(o->path, f, &opt, &i, o->err, sizeof(o->err))) < 0)
        return;
    o->ret = json_object_new_object();
    chain = json_object_new_array();
    for (size_t k = 0; k < img_depth(i); k++)
        if (img_layer_info_get(i, k, &info) == 0)
            json_object_array_add(chain, layer_json(&info));
    img_layer_info_get(i, 0, &info);
    json_object_object_add(o->ret, "path", json_object_new_string(info.path));
    json_object_object_add(o->ret, "format", json_object_new_string(img_format_name(f)));
    json_object_object_add(o->ret, "virtual-size", json_object_new_int64((int64_t)info.virtual_size));
    json_object_object_add(o->ret, "chain", chain);
    img_close(i);
}

int volume_info(agent *a, const char *path, const img_format *format, volume_cb *cb, void *opaque)
{
    volume_op *o = op_new(cb, opaque);

    if (!o)
        return -ENOMEM;
    snprintf(o->path, sizeof(o->path), "%s", path);
    o->create.format = format ? *format : looks_qcow2(path) ? IMG_FORMAT_QCOW2 : IMG_FORMAT_RAW;
    return queue(a, o, run_info);
}

static void run_check(void *arg)
{
    volume_op *o = arg;
    img_check_result res;

    if ((o->status = img_check(o->path, &res, o->err, sizeof(o->err))) < 0)
        return;
    o->ret = json_object_new_object();
    json_object_object_add(o->ret, "path", json_object_new_string(o->path));
    json_object_object_add(o->ret, "clean", json_object_new_boolean(res.leaked_clusters == 0 && res.corruptions == 0));
    json_object_object_add(o->ret, "leaked-clusters", json_object_new_int64((int64_t)res.leaked_clusters));
    json_object_object_add(o->ret, "corruptions", json_object_new_int64((int64_t)res.corruptions));
    json_object_object_add(o->ret, "allocated-clusters", json_object_new_int64((int64_t)res.allocated_clusters));
    json_object_object_add(o->ret, "fragmented-clusters", json_object_new_int64((int64_t)res.fragmented_clusters));
    if (res.first_problem[0])
        json_object_object_add(o->ret, "first-problem", json_object_new_string(res.first_problem));
}

int volume_check(agent *a, const char *path, volume_cb *cb, void *opaque)
{
    volume_op *o = op_new(cb, opaque);

    if (!o)
        return -ENOMEM;
    snprintf(o->path, sizeof(o->path), "%s", path);
    return queue(a, o, run_check);
}

/* ---- delete -------------------------------------------------------------- */

/* An image in dir whose backing file is target, by resolved path. */
static bool backs_any_in(const char *dir, const char *target, char **roots, char *who, size_t len)
{
    img_open_options opt = { .roots = (const char *const *)roots, .max_depth = 2 };
    struct dirent **list;
    bool found = false;
    int n = scandir(dir, &list, NULL, alphasort);

    for (int i = 0; i < n; i++) {
        char path[PATH_MAX];
        img_layer_info info;
        img *im;
        if (!found && listable(dir, list[i]) &&
            snprintf(path, sizeof(path), "%s/%s", dir, list[i]->d_name) < (int)sizeof(path) &&
            looks_qcow2(path) && img_open(path, IMG_FORMAT_QCOW2, &opt, &im, NULL, 0) == 0) {
            if (img_depth(im) > 1 && img_layer_info_get(im, 1, &info) == 0 &&
                strcmp(info.path, target) == 0) {
                snprintf(who, len, "%s", path);
                found = true;
            }
            img_close(im);
        }
        free(list[i]);
    }
    if (n >= 0)
        free(list);
    return found;
}

static int delete_one(const char *path, char **roots, char *err, size_t errlen)
{
    char real[PATH_MAX], who[PATH_MAX];
    int r;

    if (!realpath(path, real)) {
        r = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return r;
    }
    for (char **root = roots; *root; root++) {
        if (backs_any_in(*root, real, roots, who, sizeof(who))) {
            snprintf(err, errlen, "%s is the backing file of %s: delete that first", path, who);
            return -EBUSY;
        }
    }
    if ((r = statefile_remove_durable(path)) < 0)
        snprintf(err, errlen, "removing %s: %s", path, strerror(-r));
    return r;
}

static void run_delete(void *arg)
{
    volume_op *o = arg;

    o->status = delete_one(o->path, o->roots, o->err, sizeof(o->err));
}

int volume_delete(agent *a, const char *path, volume_cb *cb, void *opaque)
{
    volume_op *o = op_new(cb, opaque);

    if (!o)
        return -ENOMEM;
    snprintf(o->path, sizeof(o->path), "%s", path);
    return queue(a, o, run_delete);
}

/* ---- delete several ------------------------------------------------------- */

typedef struct delete_many {
    volume_op op;
    char (*paths)[PATH_MAX];
    size_t n;
} delete_many;

/* Each in turn; one that cannot go does not stop the others. */
static void run_delete_many(void *arg)
{
    delete_many *d = arg;
    char err[512];

    d->op.ret = json_object_new_array();
    for (size_t i = 0; i < d->n; i++) {
        if (delete_one(d->paths[i], d->op.roots, err, sizeof(err)) == 0)
            continue;
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "path", json_object_new_string(d->paths[i]));
        json_object_object_add(o, "error", json_object_new_string(err));
        json_object_array_add(d->op.ret, o);
    }
}

static void after_delete_many(void *arg)
{
    delete_many *d = arg;

    d->op.cb(d->op.opaque, 0, d->op.ret, "");
    pool_roots_free(d->op.roots);
    free(d->paths);
    free(d);
}

int volume_delete_many(agent *a, const char *const *paths, size_t n, volume_cb *cb, void *opaque)
{
    delete_many *d = calloc(1, sizeof(*d));
    int r = -ENOMEM;

    if (!d)
        return -ENOMEM;
    d->op.cb = cb;
    d->op.opaque = opaque;
    d->n = n;
    if (!(d->paths = calloc(n + 1, PATH_MAX)) || !(d->op.roots = pool_roots(a)))
        goto fail;
    for (size_t i = 0; i < n; i++)
        snprintf(d->paths[i], PATH_MAX, "%s", paths[i]);
    if ((r = agent_work(a->loop, run_delete_many, after_delete_many, d)) == 0)
        return 0;
fail:
    pool_roots_free(d->op.roots);
    free(d->paths);
    free(d);
    return r;
}
