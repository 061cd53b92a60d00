/* writer.c: an image written from a stream of ascending extents, as an
 * offline migration receives a disk. The guest range is cut into units, a
 * cluster of a qcow2 image or 4 KiB of a raw one. A whole unit given in one
 * put is stored from the caller's buffer; a partial one is gathered in a
 * buffer until the stream moves past it. A unit of zeros is not stored. A
 * qcow2 image is laid out append-only, as copy_dst.c lays it out: the
 * header cluster, the L1 table after it, then data clusters and L2 tables
 * in the order they are finished. Only the L2 table of the span the stream
 * is in is kept; it is appended when the stream moves past the span. At
 * finish the refcounts, the L1 table and the header are written
 * (qcow2_append_finish): until then nothing refers to what was written. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bytes.h"
#include "errmsg.h"
#include "layer.h"
#include "map.h"
#include "qcow2_build.h"
#include "storage.h"
#include "tempfile.h"

#define RAW_UNIT_BITS 12u
/* Writeback is started every this many bytes written, so that the disk
 * works while the stream goes on and the final fsync finds little left. */
#define WRITEBACK_BYTES (UINT64_C(32) << 20)

struct img_writer {
    int fd;
    int status;                 /* a write failed: every later call fails with it */
    img_format format;
    char path[PATH_MAX];
    char tmp[PATH_MAX];
    uint64_t size;              /* virtual, a multiple of 512 */
    uint64_t next;              /* where the last put ended: the next starts at or after it */
    unsigned unit_bits;
    uint8_t *unit;              /* the partial unit the stream is inside */
    uint64_t unit_index;
    bool unit_held;             /* unit holds bytes given and is not stored yet */
    /* qcow2 */
    uint64_t *l2;               /* the current span's table, big-endian as on disk */
    uint64_t l2_index;          /* the span's L1 index */
    bool l2_used;
    uint64_t *l1;               /* host order */
    uint32_t l1_size;
    uint64_t next_cluster;      /* the first free host cluster */
    /* the file range written since writeback was last started */
    uint64_t wb_from, wb_end;
};

static uint64_t unit_bytes(const img_writer *w)
{
    return UINT64_C(1) << w->unit_bits;
}

/* ---- opening ---------------------------------------------------------------- */

static int plan_qcow2(img_writer *w, uint32_t cs, char *err, size_t errlen)
{
    int64_t entries;
    int r = img_check_cluster_size(w->path, cs, err, errlen);

    if (r < 0)
        return r;
    w->unit_bits = (unsigned)__builtin_ctz(cs);
    if ((entries = qcow2_l1_entries_for(w->size, w->unit_bits)) < 0)
        return img_errmsg(err, errlen, -EFBIG,
                          "%s: size %" PRIu64 " needs an L1 table of more than %u entries with %"
                          PRIu32 "-byte clusters; use a larger cluster size",
                          w->path, w->size, QCOW2_MAX_L1_BYTES / 8, cs);
    w->l1_size = (uint32_t)entries;
    w->next_cluster = 1 + ((uint64_t)entries * 8 + cs - 1) / cs;
    if (!(w->l1 = calloc(w->l1_size, sizeof(*w->l1))) || !(w->l2 = calloc(1, cs)))
        return img_errmsg(err, errlen, -ENOMEM, "%s: no memory for the L1 and L2 tables", w->path);
    return 0;
}

static int plan(img_writer *w, const img_writer_options *o, char *err, size_t errlen)
{
    uint32_t cs = o->cluster_size ? o->cluster_size : QCOW2_DEFAULT_CLUSTER_SIZE;
    int r = img_round_size(w->path, o->size, &w->size, err, errlen);

    if (r < 0)
        return r;
    if (w->size == 0)
        return img_errmsg(err, errlen, -EINVAL, "%s: size 0: a new image needs a size", w->path);
    w->format = o->format;
    w->unit_bits = RAW_UNIT_BITS;
    if (w->format == IMG_FORMAT_QCOW2 && (r = plan_qcow2(w, cs, err, errlen)) < 0)
        return r;
    if (!(w->unit = malloc(unit_bytes(w))))
        return img_errmsg(err, errlen, -ENOMEM, "%s: no memory for a cluster", w->path);
    return 0;
}

static int open_temp(img_writer *w, char *err, size_t errlen)
{
    if ((w->fd = img_temp_open(w->path, w->tmp, err, errlen)) < 0)
        return w->fd;
    if (w->format == IMG_FORMAT_RAW && ftruncate(w->fd, (off_t)w->size) < 0)
        return img_errmsg(err, errlen, -errno, "%s: cannot size the new image to %" PRIu64
                          " bytes: %m", w->path, w->size);
    return 0;
}

int img_writer_open(const char *path, const img_writer_options *o, img_writer **ret, char *err,
                    size_t errlen)
{
    img_writer *w;
    int r;

    if (!path || !o || !ret || !img_format_name(o->format))
        return img_errmsg(err, errlen, -EINVAL, "invalid arguments");
    if ((r = img_check_new_path(path, err, errlen)) < 0)
        return r;
    if (!(w = calloc(1, sizeof(*w))))
        return img_errmsg(err, errlen, -ENOMEM, "%s: no memory", path);
    w->fd = -1;
    snprintf(w->path, sizeof(w->path), "%s", path);
    r = plan(w, o, err, errlen);
    if (r == 0)
        r = open_temp(w, err, errlen);
    if (r < 0) {
        img_writer_abort(w);
        return r;
    }
    *ret = w;
    return 0;
}

const char *img_writer_temp(const img_writer *w)
{
    return w->tmp;
}

/* ---- storing units ---------------------------------------------------------- */

/* Writes at off and starts writeback once enough has accumulated. */
static int write_at(img_writer *w, const void *buf, size_t len, uint64_t off)
{
    int r = img_pwrite_exact(w->fd, buf, len, off);

    if (r < 0)
        return r;
    if (w->wb_end == w->wb_from)
        w->wb_from = off;
    w->wb_end = off + len;
    if (w->wb_end - w->wb_from >= WRITEBACK_BYTES) {
        /* Only a hint: the final fsync reports what fails. */
        (void)sync_file_range(w->fd, (off_t)w->wb_from, (off_t)(w->wb_end - w->wb_from),
                              SYNC_FILE_RANGE_WRITE);
        w->wb_from = w->wb_end;
    }
    return 0;
}

/* The current span's L2 table gets a cluster of its own, named in the L1
 * table; a span with nothing stored needs no table. */
static int flush_l2(img_writer *w)
{
    uint64_t host = w->next_cluster << w->unit_bits;
    int r;

    if (!w->l2_used)
        return 0;
    if ((r = write_at(w, w->l2, unit_bytes(w), host)) < 0)
        return r;
    w->next_cluster++;
    w->l1[w->l2_index] = host | QCOW2_OFLAG_COPIED;
    memset(w->l2, 0, unit_bytes(w));
    w->l2_used = false;
    return 0;
}

static int store_qcow2(img_writer *w, uint64_t index, const uint8_t *data)
{
    unsigned entry_bits = w->unit_bits - 3;
    uint64_t span = index >> entry_bits, host;
    int r;

    if (span != w->l2_index) {
        if ((r = flush_l2(w)) < 0)
            return r;
        w->l2_index = span;
    }
    if (img_is_zero(data, unit_bytes(w)))
        return 0;
    host = w->next_cluster << w->unit_bits;
    if ((r = write_at(w, data, unit_bytes(w), host)) < 0)
        return r;
    w->next_cluster++;
    w->l2[index & ((UINT64_C(1) << entry_bits) - 1)] = htobe64(host | QCOW2_OFLAG_COPIED);
    w->l2_used = true;
    return 0;
}

/* The file ends inside the last block when the size is not a multiple of it. */
static int store_raw(img_writer *w, uint64_t index, const uint8_t *data)
{
    uint64_t off = index << w->unit_bits, len = w->size - off;

    if (len > unit_bytes(w))
        len = unit_bytes(w);
    if (img_is_zero(data, (size_t)len))
        return 0;        /* a hole */
    return write_at(w, data, (size_t)len, off);
}

static int store(img_writer *w, uint64_t index, const uint8_t *data)
{
    return w->format == IMG_FORMAT_QCOW2 ? store_qcow2(w, index, data) : store_raw(w, index, data);
}

static int store_held(img_writer *w)
{
    if (!w->unit_held)
        return 0;
    w->unit_held = false;
    return store(w, w->unit_index, w->unit);
}

/* Bytes [within, within+n) of unit index go into the buffer, stored once
 * it is full. */
static int hold(img_writer *w, uint64_t index, uint64_t within, const uint8_t *p, size_t n)
{
    if (!w->unit_held) {
        memset(w->unit, 0, unit_bytes(w));
        w->unit_index = index;
        w->unit_held = true;
    }
    memcpy(w->unit + within, p, n);
    return within + n == unit_bytes(w) ? store_held(w) : 0;
}

static int put_units(img_writer *w, uint64_t offset, const uint8_t *p, size_t len)
{
    while (len > 0) {
        uint64_t index = offset >> w->unit_bits, within = offset & (unit_bytes(w) - 1);
        size_t n = len < unit_bytes(w) - within ? len : (size_t)(unit_bytes(w) - within);
        int r = 0;

        if (w->unit_held && w->unit_index != index)
            r = store_held(w);
        if (r == 0)
            r = n == unit_bytes(w) ? store(w, index, p) : hold(w, index, within, p, n);
        if (r < 0)
            return r;
        offset += n;
        p += n;
        len -= n;
    }
    return 0;
}

static int failed(const img_writer *w, char *err, size_t errlen)
{
    return img_errmsg(err, errlen, w->status, "%s: an earlier write failed: %s", w->path,
                      strerror(-w->status));
}

int img_writer_put(img_writer *w, uint64_t offset, const void *buf, size_t len, char *err,
                   size_t errlen)
{
    int r;

    if (w->status < 0)
        return failed(w, err, errlen);
    if (len > UINT64_MAX - offset || offset + len > w->size)
        return img_errmsg(err, errlen, -EINVAL, "%s: %zu bytes at %" PRIu64
                          " go past the virtual size %" PRIu64, w->path, len, offset, w->size);
    if (offset < w->next)
        return img_errmsg(err, errlen, -EINVAL, "%s: bytes at %" PRIu64 " come after bytes up to %"
                          PRIu64 ": extents must ascend without overlapping", w->path, offset,
                          w->next);
    w->next = offset + len;
    if ((r = put_units(w, offset, buf, len)) < 0) {
        w->status = r;
        return img_errmsg(err, errlen, r, "%s: writing the new image: %s", w->path, strerror(-r));
    }
    return 0;
}

/* ---- finishing ---------------------------------------------------------------- */

static int finish_units(img_writer *w, char *err, size_t errlen)
{
    int r = store_held(w);
    qcow2_new_header h = { .cluster_bits = w->unit_bits, .size = w->size, .l1_size = w->l1_size };

    if (r == 0 && w->format == IMG_FORMAT_QCOW2)
        r = flush_l2(w);
    if (r < 0)
        return img_errmsg(err, errlen, r, "%s: writing the new image: %s", w->path, strerror(-r));
    if (w->format != IMG_FORMAT_QCOW2)
        return 0;
    return qcow2_append_finish(w->fd, &h, w->l1, w->next_cluster, w->path, err, errlen);
}

int img_writer_finish(img_writer *w, char *err, size_t errlen)
{
    int r = w->status < 0 ? failed(w, err, errlen) : finish_units(w, err, errlen);

    if (r == 0) {
        /* img_temp_commit closes the fd and removes the temp file on failure. */
        r = img_temp_commit(w->fd, w->tmp, w->path, w->format, NULL, false, err, errlen);
        w->fd = -1;
    }
    img_writer_abort(w);
    return r;
}

void img_writer_abort(img_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0) {
        close(w->fd);
        unlink(w->tmp);
    }
    free(w->unit);
    free(w->l2);
    free(w->l1);
    free(w);
}
