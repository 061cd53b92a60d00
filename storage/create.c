/* create.c: new images, qcow2 or raw. An image is written whole into a
 * temp file in the target's directory, fsynced, opened back as a reader
 * would open it, renamed into place without replacing anything and the
 * directory fsynced: a crash or an error leaves either nothing or the whole
 * image. A new qcow2 image is laid out as a fresh one from qemu-img: the
 * header cluster, the refcount table, the refcount blocks, the L1 table, and
 * nothing else; the L1 clusters are left as a hole, which reads as zeros. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "errmsg.h"
#include "layer.h"
#include "qcow2_build.h"
#include "qcow2_header.h"
#include "refcount.h"
#include "storage.h"
#include "tempfile.h"

#define SIZE_ALIGN 512u                  /* qemu-img rounds sizes up to sectors */
#define MSG_MAX 512

/* What img_create was asked for, validated. */
typedef struct create_req {
    const char *path;
    img_format format;
    uint64_t size;
    uint32_t cluster_size;
    const char *backing;             /* NULL: none */
    img_format backing_format;
    const char *const *roots;
} create_req;

/* Where everything of a new qcow2 image goes, in clusters from 0. */
typedef struct qcow2_plan {
    unsigned cluster_bits;
    uint64_t cluster_size;
    uint32_t l1_size;
    uint64_t reftable_clusters;
    uint64_t refblocks;
    uint64_t l1_clusters;
    uint64_t clusters;               /* the whole file */
} qcow2_plan;

int img_pwrite_exact(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;

    if (off > (uint64_t)INT64_MAX || len > (uint64_t)INT64_MAX - off)
        return -EINVAL;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static uint64_t div_round_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

/* ---- validation ---- */

int img_check_new_path(const char *path, char *err, size_t errlen)
{
    const char *slash = strrchr(path, '/');
    struct stat st;

    if (path[0] == '\0' || (slash && slash[1] == '\0'))
        return img_errmsg(err, errlen, -EINVAL, "'%s': not a file name", path);
    if (strlen(path) >= PATH_MAX)
        return img_errmsg(err, errlen, -ENAMETOOLONG, "%s: path too long", path);
    if (lstat(path, &st) == 0)
        return img_errmsg(err, errlen, -EEXIST, "%s: already exists; refusing to overwrite it",
                          path);
    if (errno != ENOENT)
        return img_errmsg(err, errlen, -errno, "%s: %m", path);
    return 0;
}

/* The size rounded up to whole sectors, as qemu-img does, and bounded. */
int img_round_size(const char *path, uint64_t size, uint64_t *ret, char *err, size_t errlen)
{
    if (size > QCOW2_MAX_VIRTUAL_SIZE)
        return img_errmsg(err, errlen, -EFBIG,
                          "%s: size %" PRIu64 " too large (at most 2^61 bytes)", path, size);
    *ret = (size + SIZE_ALIGN - 1) & ~(uint64_t)(SIZE_ALIGN - 1);
    return 0;
}

int img_check_cluster_size(const char *path, uint32_t cs, char *err, size_t errlen)
{
    uint32_t lo = UINT32_C(1) << QCOW2_MIN_CLUSTER_BITS, hi = UINT32_C(1) << QCOW2_MAX_CLUSTER_BITS;

    if (cs < lo || cs > hi || (cs & (cs - 1)) != 0)
        return img_errmsg(err, errlen, -EINVAL,
                          "%s: cluster size %" PRIu32
                          " invalid (a power of two from 512 to 2 MiB)",
                          path, cs);
    return 0;
}

static int check_backing_name(const create_req *q, char *err, size_t errlen)
{
    size_t n = strlen(q->backing);

    if (n == 0)
        return img_errmsg(err, errlen, -EINVAL, "%s: empty backing file name", q->path);
    if (n > IMG_BACKING_NAME_MAX)
        return img_errmsg(err, errlen, -ENAMETOOLONG,
                          "%s: backing file name too long (%zu bytes, at most %d)", q->path, n,
                          IMG_BACKING_NAME_MAX);
    if (!img_format_name(q->backing_format))
        return img_errmsg(err, errlen, -EINVAL, "%s: invalid backing format", q->path);
    return 0;
}

/* The backing file, named as the new image will name it, must resolve
 * inside the roots and open as a chain with the format given; its size is
 * the new image's when none was asked for. */
static int check_backing(create_req *q, char *err, size_t errlen)
{
    img_open_options o = { .roots = q->roots };
    char combined[PATH_MAX], real[PATH_MAX], msg[MSG_MAX] = "";
    img *b = NULL;
    int r = check_backing_name(q, err, errlen);

    if (r < 0)
        return r;
    if (img_backing_path(q->path, q->backing, combined) < 0)
        return img_errmsg(err, errlen, -ENAMETOOLONG, "%s: backing file path too long",
                          q->path);
    if (!realpath(combined, real))
        return img_errmsg(err, errlen, -errno, "%s: backing file '%s' (%s): %m", q->path,
                          q->backing, combined);
    r = img_path_in_roots(real, q->roots);
    if (r < 0)
        return img_errmsg(err, errlen, r, "no memory");
    if (r == 0)
        return img_errmsg(err, errlen, -EPERM,
                          "%s: backing file '%s' resolves to %s, outside the storage roots",
                          q->path, q->backing, real);
    r = img_open(combined, q->backing_format, &o, &b, msg, sizeof(msg));
    if (r < 0)
        return img_errmsg(err, errlen, r, "%s: backing file '%s': %s", q->path, q->backing,
                          msg);
    if (img_depth(b) >= IMG_MAX_CHAIN)
        r = img_errmsg(err, errlen, -ELOOP,
                       "%s: backing file '%s' is a chain of %zu layers already (at most %d)",
                       q->path, q->backing, img_depth(b), IMG_MAX_CHAIN);
    else if (q->size == 0)
        r = img_round_size(q->path, img_virtual_size(b), &q->size, err, errlen);
    img_close(b);
    return r;
}

static int check_raw(const create_req *q, char *err, size_t errlen)
{
    if (q->backing)
        return img_errmsg(err, errlen, -EINVAL, "%s: a raw image has no backing file",
                          q->path);
    if (q->size == 0)
        return img_errmsg(err, errlen, -EINVAL, "%s: size 0: a new image needs a size",
                          q->path);
    return 0;
}

static int check_qcow2(create_req *q, char *err, size_t errlen)
{
    int r = img_check_cluster_size(q->path, q->cluster_size, err, errlen);

    if (r < 0)
        return r;
    if (q->backing)
        return check_backing(q, err, errlen);
    if (q->size == 0)
        return img_errmsg(err, errlen, -EINVAL,
                          "%s: size 0: a new image needs a size or a backing file", q->path);
    return 0;
}

static int check_request(const char *path, const img_create_options *o, create_req *q,
                         char *err, size_t errlen)
{
    int r;

    if (!path || !o || !img_format_name(o->format))
        return img_errmsg(err, errlen, -EINVAL, "invalid arguments");
    *q = (create_req){ .path = path, .format = o->format,
                       .cluster_size = o->cluster_size ? o->cluster_size : QCOW2_DEFAULT_CLUSTER_SIZE,
                       .backing = o->backing_file, .backing_format = o->backing_format,
                       .roots = o->roots };
    r = img_check_new_path(path, err, errlen);
    if (r == 0)
        r = img_round_size(path, o->size, &q->size, err, errlen);
    if (r == 0)
        r = q->format == IMG_FORMAT_RAW ? check_raw(q, err, errlen) : check_qcow2(q, err, errlen);
    return r;
}

/* ---- the qcow2 layout ---- */

/* The new image's header, for the plan p (NULL: only what its size needs). */
static qcow2_new_header new_header(const create_req *q, const qcow2_plan *p);

static int plan_l1(const create_req *q, qcow2_plan *p, char *err, size_t errlen)
{
    int64_t entries = qcow2_l1_entries_for(q->size, p->cluster_bits);

    if (entries < 0)
        return img_errmsg(err, errlen, -EFBIG,
                          "%s: size %" PRIu64 " needs an L1 table of %" PRIu64
                          " entries with %" PRIu64
                          "-byte clusters (at most %u); use a larger cluster size",
                          q->path, q->size,
                          div_round_up(q->size, UINT64_C(1) << (2 * p->cluster_bits - 3)),
                          p->cluster_size, QCOW2_MAX_L1_BYTES / 8);
    p->l1_size = (uint32_t)entries;
    p->l1_clusters = div_round_up((uint64_t)entries * 8, p->cluster_size);
    return 0;
}

static int plan_qcow2(const create_req *q, qcow2_plan *p, char *err, size_t errlen)
{
    qcow2_new_header n = new_header(q, NULL);
    qcow2_refcount_layout lay;
    int r;

    *p = (qcow2_plan){ .cluster_bits = (unsigned)__builtin_ctz(q->cluster_size),
                       .cluster_size = q->cluster_size };
    if (qcow2_new_header_bytes(&n) > p->cluster_size)
        return img_errmsg(err, errlen, -ENAMETOOLONG,
                          "%s: the backing file name (%zu bytes) does not fit in the header "
                          "cluster (%" PRIu64 " bytes); use a larger cluster size",
                          q->path, strlen(q->backing), p->cluster_size);
    r = plan_l1(q, p, err, errlen);
    if (r < 0)
        return r;
    r = qcow2_refcount_layout_for(p->cluster_bits, QCOW2_NEW_REFCOUNT_ORDER, 1 + p->l1_clusters,
                                  &lay);
    if (r < 0)
        return img_errmsg(err, errlen, r, "%s: refcount table too large", q->path);
    p->reftable_clusters = lay.table_clusters;
    p->refblocks = lay.blocks;
    p->clusters = 1 + p->reftable_clusters + p->refblocks + p->l1_clusters;
    return 0;
}

static uint64_t reftable_offset(const qcow2_plan *p)
{
    return p->cluster_size;
}

static uint64_t refblocks_offset(const qcow2_plan *p)
{
    return (1 + p->reftable_clusters) * p->cluster_size;
}

static uint64_t l1_offset(const qcow2_plan *p)
{
    return (1 + p->reftable_clusters + p->refblocks) * p->cluster_size;
}

/* ---- writing qcow2 ---- */

static qcow2_new_header new_header(const create_req *q, const qcow2_plan *p)
{
    qcow2_new_header n = { .size = q->size, .backing = q->backing,
                           .backing_format = q->backing_format };

    if (p)
        n = (qcow2_new_header){ .cluster_bits = p->cluster_bits, .size = q->size,
                                .l1_size = p->l1_size, .l1_offset = l1_offset(p),
                                .reftable_offset = reftable_offset(p),
                                .reftable_clusters = (uint32_t)p->reftable_clusters,
                                .backing = q->backing, .backing_format = q->backing_format };
    return n;
}

/* Only the bytes in use are written, here and in the refcount blocks: the
 * rest of each cluster stays a hole and reads as zeros. */
static int write_header(int fd, const qcow2_plan *p, const create_req *q)
{
    qcow2_new_header n = new_header(q, p);
    uint8_t *b = calloc(1, p->cluster_size);
    int r;

    if (!b)
        return -ENOMEM;
    qcow2_new_header_build(b, &n);
    r = img_pwrite_exact(fd, b, qcow2_new_header_bytes(&n), 0);
    free(b);
    return r;
}

static int write_qcow2(int fd, const create_req *q, char *err, size_t errlen)
{
    qcow2_plan p;
    int r = plan_qcow2(q, &p, err, errlen);

    if (r < 0)
        return r;
    if (ftruncate(fd, (off_t)(p.clusters * p.cluster_size)) < 0)
        return img_errmsg(err, errlen, -errno, "%s: cannot size the new image: %m", q->path);
    r = write_header(fd, &p, q);
    /* Every cluster of the file is metadata and has refcount 1. */
    if (r == 0)
        r = qcow2_write_refcounts(fd, p.cluster_bits, p.clusters, refblocks_offset(&p),
                                  p.refblocks, reftable_offset(&p));
    if (r < 0)
        return img_errmsg(err, errlen, r, "%s: writing the new image: %s", q->path,
                          strerror(-r));
    return 0;
}

static int write_raw(int fd, const create_req *q, char *err, size_t errlen)
{
    if (ftruncate(fd, (off_t)q->size) < 0)
        return img_errmsg(err, errlen, -errno, "%s: cannot size the new image to %" PRIu64
                          " bytes: %m", q->path, q->size);
    return 0;
}

/* ---- the temp file and its installation ---- */

static int write_image(const create_req *q, char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    int fd = img_temp_open(q->path, tmp, err, errlen), r;

    if (fd < 0)
        return fd;
    r = q->format == IMG_FORMAT_RAW ? write_raw(fd, q, err, errlen) : write_qcow2(fd, q, err, errlen);
    if (r < 0) {
        close(fd);
        unlink(tmp);
        return r;
    }
    return img_temp_commit(fd, tmp, q->path, q->format, q->roots, false, err, errlen);
}

int img_create(const char *path, const img_create_options *o, char *err, size_t errlen)
{
    create_req q;
    int r = check_request(path, o, &q, err, errlen);

    if (r < 0)
        return r;
    return write_image(&q, err, errlen);
}

int img_overlay(const char *path, const char *backing, img_format backing_format,
                const char *const *roots, char *err, size_t errlen)
{
    img_create_options o = { .format = IMG_FORMAT_QCOW2, .backing_file = backing,
                             .backing_format = backing_format, .roots = roots };

    if (!backing)
        return img_errmsg(err, errlen, -EINVAL, "invalid arguments");
    return img_create(path, &o, err, errlen);
}
