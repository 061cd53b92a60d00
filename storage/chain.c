/* chain.c: opening an image and its backing chain. Each layer is opened,
 * identified by (st_dev, st_ino) to catch loops, sized, and for qcow2 its
 * header and L1 table validated. A backing file is followed only with the
 * format its overlay records, only if it resolves (after symlinks) inside
 * one of the caller's roots, and only to a bounded depth. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errmsg.h"
#include "layer.h"
#include "map.h"
#include "qcow2_header.h"
#include "storage.h"

#define ERR_MAX 512

const char *img_format_name(img_format f)
{
    switch (f) {
    case IMG_FORMAT_RAW:
        return "raw";
    case IMG_FORMAT_QCOW2:
        return "qcow2";
    }
    return NULL;
}

int img_format_parse(const char *s, img_format *ret)
{
    if (!s || !ret)
        return -EINVAL;
    if (strcmp(s, "raw") == 0)
        *ret = IMG_FORMAT_RAW;
    else if (strcmp(s, "qcow2") == 0)
        *ret = IMG_FORMAT_QCOW2;
    else
        return -EINVAL;
    return 0;
}

/* What img_open carries from layer to layer. */
typedef struct open_ctx {
    const img_open_options *o;
    unsigned max_depth;
    char **roots;                 /* realpath of each root that exists; NULL-terminated */
    bool roots_resolved;
    char logical[PATH_MAX];       /* the layer's path before symlinks: QEMU resolves
                                   * relative backing names against its directory */
    const char *top;              /* the path as the caller gave it, for messages */
    char *err;
    size_t errlen;
} open_ctx;

static void free_roots(open_ctx *c)
{
    for (size_t n = 0; c->roots && c->roots[n]; n++)
        free(c->roots[n]);
    free(c->roots);
}

static int resolve_roots(open_ctx *c)
{
    size_t n = 0, k = 0;

    if (c->roots_resolved)
        return 0;
    while (c->o && c->o->roots && c->o->roots[n])
        n++;
    c->roots = calloc(n + 1, sizeof(*c->roots));
    if (!c->roots)
        return -ENOMEM;
    for (size_t j = 0; j < n; j++) {
        char *r = realpath(c->o->roots[j], NULL);

        if (r)    /* a root that does not exist holds no backing file */
            c->roots[k++] = r;
    }
    c->roots_resolved = true;
    return 0;
}

static bool inside(const char *path, const char *root)
{
    size_t n = strlen(root);

    if (strcmp(root, "/") == 0)
        return true;
    return strncmp(path, root, n) == 0 && path[n] == '/';
}

static bool inside_roots(const open_ctx *c, const char *path)
{
    for (size_t j = 0; c->roots && c->roots[j]; j++)
        if (inside(path, c->roots[j]))
            return true;
    return false;
}

int img_path_in_roots(const char *real, const char *const *roots)
{
    img_open_options o = { .roots = roots };
    open_ctx c = { .o = &o };
    int r = resolve_roots(&c);

    if (r == 0)
        r = inside_roots(&c, real) ? 1 : 0;
    free_roots(&c);
    return r;
}

/* Layers are opened O_NONBLOCK so that a FIFO cannot hang the open; once
 * the file is known to be a regular file or a device, I/O blocks again. */
static int clear_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFL);

    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

/* The file's size: st_size for a regular file, BLKGETSIZE64 for a device. */
static int layer_size(img_layer *l, const struct stat *st, const char *name, open_ctx *c)
{
    uint64_t bytes;

    if ((S_ISREG(st->st_mode) || S_ISBLK(st->st_mode)) && clear_nonblock(l->fd) < 0)
        return img_errmsg(c->err, c->errlen, -errno, "%s: %m", name);
    if (S_ISREG(st->st_mode)) {
        l->file_end = (uint64_t)st->st_size;
        l->disk_bytes = (uint64_t)st->st_blocks * 512;
        return 0;
    }
    if (!S_ISBLK(st->st_mode))
        return img_errmsg(c->err, c->errlen, -EINVAL,
                          "%s: not a regular file or block device", name);
    if (ioctl(l->fd, BLKGETSIZE64, &bytes) < 0)
        return img_errmsg(c->err, c->errlen, -errno, "%s: cannot size the block device: %m",
                          name);
    l->file_end = bytes;
    l->disk_bytes = bytes;
    return 0;
}

static int check_not_in_chain(const img *i, size_t k, const char *name, open_ctx *c)
{
    for (size_t j = 0; j < k; j++)
        if (i->layers[j].dev == i->layers[k].dev && i->layers[j].ino == i->layers[k].ino)
            return img_errmsg(c->err, c->errlen, -ELOOP,
                              "%s: backing chain loops: this file is already layer %zu (%s)",
                              name, j, i->layers[j].path);
    return 0;
}

int qcow2_read_header(int fd, uint64_t file_end, qcow2_header *h, char *msg, size_t msglen)
{
    uint8_t first[512];
    size_t n = file_end < sizeof(first) ? (size_t)file_end : sizeof(first), want;
    uint8_t *buf;
    int r = img_pread_exact(fd, first, n, 0);

    if (r < 0)
        return img_errmsg(msg, msglen, r, "reading the header: %s", strerror(-r));
    /* At most 2 MiB: the cluster size is checked before it is used. */
    want = qcow2_header_bytes_wanted(first, n);
    if (want > file_end)
        want = (size_t)file_end;
    if (want < n)
        want = n;
    buf = malloc(want > 0 ? want : 1);
    if (!buf)
        return img_errmsg(msg, msglen, -ENOMEM, "no memory");
    memcpy(buf, first, n);
    r = img_pread_exact(fd, buf + n, want - n, n);
    if (r < 0)
        img_errmsg(msg, msglen, r, "reading the header: %s", strerror(-r));
    else
        r = qcow2_header_parse(buf, want, file_end, h, msg, msglen);
    free(buf);
    return r;
}

static int open_qcow2(img_layer *l, bool writable, const char *name, open_ctx *c)
{
    char msg[ERR_MAX] = "";
    qcow2_header h;
    int r = qcow2_read_header(l->fd, l->file_end, &h, msg, sizeof(msg));

    if (r < 0)
        return img_errmsg(c->err, c->errlen, r, "%s: %s", name, msg);
    if (writable && (h.incompatible_features & QCOW2_INCOMPAT_CORRUPT))
        return img_errmsg(c->err, c->errlen, -EACCES,
                          "%s: image is marked corrupt; refusing to open it writable", name);
    r = qcow2_layer_open(l, &h, msg, sizeof(msg));
    if (r < 0)
        return img_errmsg(c->err, c->errlen, r, "%s: %s", name, msg);
    l->virtual_size = h.size;
    return 0;
}

/* Opens layer k of i from an fd already open on it. */
static int setup_layer(img *i, size_t k, img_format format, bool writable, const char *name,
                       open_ctx *c)
{
    img_layer *l = &i->layers[k];
    struct stat st;
    int r;

    if (fstat(l->fd, &st) < 0)
        return img_errmsg(c->err, c->errlen, -errno, "%s: %m", name);
    l->dev = st.st_dev;
    l->ino = st.st_ino;
    l->format = format;
    r = check_not_in_chain(i, k, name, c);
    if (r < 0)
        return r;
    r = layer_size(l, &st, name, c);
    if (r < 0)
        return r;
    if (format == IMG_FORMAT_RAW) {
        l->virtual_size = l->file_end;
        return 0;
    }
    return open_qcow2(l, writable, name, c);
}

static int open_top(img *i, const char *path, img_format format, open_ctx *c)
{
    img_layer *l = &i->layers[0];
    bool writable = c->o && c->o->writable;

    if (strlen(path) >= PATH_MAX)
        return img_errmsg(c->err, c->errlen, -ENAMETOOLONG, "%s: path too long", path);
    l->fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK);
    if (l->fd < 0)
        return img_errmsg(c->err, c->errlen, -errno, "%s: %m", path);
    if (!realpath(path, l->path))
        snprintf(l->path, sizeof(l->path), "%s", path);
    snprintf(c->logical, sizeof(c->logical), "%s", path);
    i->depth = 1;
    return setup_layer(i, 0, format, writable, path, c);
}

/* The backing name as QEMU combines it: absolute as is, else relative to
 * the directory of the overlay's (unresolved) path. */
int img_backing_path(const char *overlay, const char *name, char *out)
{
    const char *slash = strrchr(overlay, '/');
    int n;

    if (name[0] == '/' || !slash)
        n = snprintf(out, PATH_MAX, "%s", name);
    else
        n = snprintf(out, PATH_MAX, "%.*s/%s", (int)(slash - overlay), overlay, name);
    return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

/* After open: the file the descriptor reaches must still be the confined
 * path (a symlink swapped in between realpath and open would show here).
 * Without /proc the realpath check stands alone. */
static int check_opened_path(int fd, const char *real)
{
    char link[64], target[PATH_MAX];
    ssize_t n;

    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, target, sizeof(target) - 1);
    if (n < 0)
        return errno == ENOENT ? 0 : -errno;
    target[n] = '\0';
    return strcmp(target, real) == 0 ? 0 : -EPERM;
}

static int check_backing_recorded(const qcow2_header *h, const char *name, img_format *fmt,
                                  open_ctx *c)
{
    if (!h->has_backing_format)
        return img_errmsg(c->err, c->errlen, -EINVAL,
                          "%s: backing file '%s' has no backing format recorded; "
                          "refusing to guess",
                          name, h->backing_file);
    if (img_format_parse(h->backing_format, fmt) < 0)
        return img_errmsg(c->err, c->errlen, -ENOTSUP,
                          "%s: backing format '%s' is not supported (raw or qcow2)", name,
                          h->backing_format);
    return 0;
}

/* Resolves layer k's backing file into real, confined to the roots. */
static int resolve_backing(const qcow2_header *h, const char *name, char *real, open_ctx *c)
{
    char combined[PATH_MAX];
    int r = img_backing_path(c->logical, h->backing_file, combined);

    if (r < 0)
        return img_errmsg(c->err, c->errlen, r, "%s: backing file path too long", name);
    r = resolve_roots(c);
    if (r < 0)
        return img_errmsg(c->err, c->errlen, r, "no memory");
    if (!realpath(combined, real))
        return img_errmsg(c->err, c->errlen, -errno, "%s: backing file '%s' (%s): %m", name,
                          h->backing_file, combined);
    if (!inside_roots(c, real))
        return img_errmsg(c->err, c->errlen, -EPERM,
                          "%s: backing file '%s' resolves to %s, outside the storage roots",
                          name, h->backing_file, real);
    snprintf(c->logical, sizeof(c->logical), "%s", combined);
    return 0;
}

static int open_backing(img *i, open_ctx *c)
{
    size_t k = i->depth;
    const img_layer *over = &i->layers[k - 1];
    const char *name = k == 1 ? c->top : over->path;
    img_layer *l = &i->layers[k];
    img_format fmt = IMG_FORMAT_RAW;
    int r = check_backing_recorded(&over->q->h, name, &fmt, c);

    if (r < 0)
        return r;
    if (k >= c->max_depth)
        return img_errmsg(c->err, c->errlen, -ELOOP,
                          "%s: backing chain deeper than %u layers", name, c->max_depth);
    r = resolve_backing(&over->q->h, name, l->path, c);
    if (r < 0)
        return r;
    l->fd = open(l->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (l->fd < 0)
        return img_errmsg(c->err, c->errlen, -errno, "%s: %m", l->path);
    i->depth = k + 1;
    r = check_opened_path(l->fd, l->path);
    if (r < 0)
        return img_errmsg(c->err, c->errlen, r, "%s: changed while it was opened", l->path);
    return setup_layer(i, k, fmt, false, l->path, c);
}

void img_close(img *i)
{
    if (!i)
        return;
    for (size_t k = 0; k < IMG_MAX_CHAIN; k++) {
        qcow2_layer_free(i->layers[k].q);
        if (i->layers[k].fd >= 0)
            close(i->layers[k].fd);
    }
    free(i);
}

static img *img_alloc(void)
{
    img *i = calloc(1, sizeof(*i));

    if (!i)
        return NULL;
    for (size_t k = 0; k < IMG_MAX_CHAIN; k++)
        i->layers[k].fd = -1;
    return i;
}

int img_open(const char *path, img_format format, const img_open_options *o, img **ret,
             char *err, size_t errlen)
{
    open_ctx c = { .o = o, .top = path, .err = err, .errlen = errlen, .max_depth = IMG_MAX_CHAIN };
    img *i;
    int r;

    if (!path || !ret || !img_format_name(format))
        return img_errmsg(err, errlen, -EINVAL, "invalid arguments");
    if (o && o->max_depth > 0 && o->max_depth < IMG_MAX_CHAIN)
        c.max_depth = o->max_depth;
    i = img_alloc();
    if (!i)
        return img_errmsg(err, errlen, -ENOMEM, "no memory");
    r = open_top(i, path, format, &c);
    while (r == 0) {
        const img_layer *l = &i->layers[i->depth - 1];

        if (l->format != IMG_FORMAT_QCOW2 || !l->q->h.has_backing)
            break;
        r = open_backing(i, &c);
    }
    free_roots(&c);
    if (r < 0) {
        img_close(i);
        return r;
    }
    *ret = i;
    return 0;
}

size_t img_depth(const img *i)
{
    return i->depth;
}

uint64_t img_virtual_size(const img *i)
{
    return i->layers[0].virtual_size;
}

static void fill_qcow2_info(const qcow2_header *h, img_layer_info *r)
{
    r->version = (int)h->version;
    r->cluster_size = h->cluster_size;
    r->refcount_bits = UINT32_C(1) << h->refcount_order;
    r->dirty = h->incompatible_features & QCOW2_INCOMPAT_DIRTY;
    r->corrupt = h->incompatible_features & QCOW2_INCOMPAT_CORRUPT;
    r->lazy_refcounts = h->compatible_features & QCOW2_COMPAT_LAZY_REFCOUNTS;
    r->has_backing = h->has_backing;
    snprintf(r->backing_file, sizeof(r->backing_file), "%s", h->backing_file);
    if (h->has_backing_format)
        (void)img_format_parse(h->backing_format, &r->backing_format);
}

int img_layer_info_get(const img *i, size_t layer, img_layer_info *ret)
{
    const img_layer *l;

    if (!i || !ret || layer >= i->depth)
        return -EINVAL;
    l = &i->layers[layer];
    memset(ret, 0, sizeof(*ret));
    snprintf(ret->path, sizeof(ret->path), "%s", l->path);
    ret->format = l->format;
    ret->virtual_size = l->virtual_size;
    ret->file_size = l->disk_bytes;
    if (l->q)
        fill_qcow2_info(&l->q->h, ret);
    return 0;
}
