/* read.c: guest reads through a chain with blocking I/O: each extent that
 * img_map finds is read from its layer, inflated (compressed clusters, raw
 * deflate as QEMU writes it) or zero-filled. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "layer.h"
#include "map.h"

/* QEMU compresses clusters as raw deflate with a 4 KiB window. */
#define QCOW2_DEFLATE_WINDOW_BITS (-12)

int img_pread_exact(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;

    if (off > (uint64_t)INT64_MAX || len > (uint64_t)INT64_MAX - off)
        return -EINVAL;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)off);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;    /* the file ends before what its metadata promised */
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static int alloc_compressed_buffers(qcow2_layer *q)
{
    if (!q->cbuf)
        q->cbuf = malloc((size_t)q->h.cluster_size * 2);
    if (!q->zbuf)
        q->zbuf = malloc(q->h.cluster_size);
    return q->cbuf && q->zbuf ? 0 : -ENOMEM;
}

/* The input may hold more than the stream (the sector count is coarse), so
 * running out of output before the stream ends is success, as in QEMU. */
int qcow2_inflate_cluster(const uint8_t *in, size_t inlen, uint8_t *out, size_t outlen)
{
    z_stream s = { 0 };
    int zr;
    bool ok;

    if (inflateInit2(&s, QCOW2_DEFLATE_WINDOW_BITS) != Z_OK)
        return -ENOMEM;
    s.next_in = (Bytef *)in;
    s.avail_in = (uInt)inlen;
    s.next_out = out;
    s.avail_out = (uInt)outlen;
    zr = inflate(&s, Z_FINISH);
    ok = (zr == Z_STREAM_END || zr == Z_BUF_ERROR) && s.avail_out == 0;
    inflateEnd(&s);
    return ok ? 0 : -EIO;
}

/* Leaves the guest cluster described by run in q->zbuf. */
static int load_compressed(img_layer *l, const qcow2_run *run)
{
    qcow2_layer *q = l->q;
    int r;

    if (q->zbuf_ok && q->zbuf_desc == run->cdesc)
        return 0;
    r = alloc_compressed_buffers(q);
    if (r < 0)
        return r;
    q->zbuf_ok = false;
    /* clen <= 2 * cluster_size: the sector count field is cluster_bits - 8 bits wide. */
    r = img_pread_exact(l->fd, q->cbuf, run->clen, run->coffset);
    if (r < 0)
        return r;
    r = qcow2_inflate_cluster(q->cbuf, run->clen, q->zbuf, q->h.cluster_size);
    if (r < 0)
        return r;
    q->zbuf_desc = run->cdesc;
    q->zbuf_ok = true;
    return 0;
}

static int read_extent(img *i, const img_extent *e, const qcow2_run *run, uint8_t *p)
{
    img_layer *l = &i->layers[e->layer];
    int r;

    switch (e->kind) {
    case IMG_EXTENT_DATA:
        return img_pread_exact(l->fd, p, e->length, e->host_offset);
    case IMG_EXTENT_COMPRESSED:
        r = load_compressed(l, run);
        if (r < 0)
            return r;
        memcpy(p, l->q->zbuf + (e->offset & (l->q->h.cluster_size - 1)), e->length);
        return 0;
    case IMG_EXTENT_ZERO:
    case IMG_EXTENT_UNALLOCATED:
        memset(p, 0, e->length);
        return 0;
    }
    return -EIO;
}

int img_read(img *i, uint64_t offset, void *buf, size_t len)
{
    uint8_t *p = buf;

    if (!i || (!buf && len > 0))
        return -EINVAL;
    if (offset > i->layers[0].virtual_size || len > i->layers[0].virtual_size - offset)
        return -EINVAL;
    while (len > 0) {
        img_extent e;
        qcow2_run run;
        int r = img_map_run(i, offset, len, &e, &run);

        if (r < 0)
            return r;
        r = read_extent(i, &e, &run, p);
        if (r < 0)
            return r;
        p += e.length;
        offset += e.length;
        len -= (size_t)e.length;
    }
    return 0;
}
