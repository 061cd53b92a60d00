/* fuzz_storage_open.c: libFuzzer target for the image layer's whole read
 * path on an untrusted file: the input is written to a temp dir and opened
 * as qcow2 (header, extensions, L1 validation, backing resolution), then
 * mapped across its virtual size and read at a few offsets (L2 entries,
 * compressed clusters, the chain below).
 *
 * The temp dir is the only root and holds a small raw file, base.raw, so an
 * input naming it as its raw backing file opens a two-layer chain; an input
 * naming fuzz.qcow2 names itself and must be refused as a loop. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/storage.h"

#define MAX_EXTENTS 256
#define READ_MAX (1u << 20)
#define BASE_BYTES (64u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static char path[128];

static void write_file(const char *p, const void *buf, size_t len)
{
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    if (fd < 0 || (len > 0 && write(fd, buf, len) != (ssize_t)len))
        abort();
    close(fd);
}

static void cleanup(void)
{
    char base[128];

    snprintf(base, sizeof(base), "%s/base.raw", dir);
    unlink(base);
    unlink(path);
    rmdir(dir);
}

static void setup(void)
{
    char base[128];
    uint8_t *pattern = malloc(BASE_BYTES);

    snprintf(dir, sizeof(dir), "/tmp/fuzz_storage_open.XXXXXX");
    if (!pattern || !mkdtemp(dir))
        abort();
    for (unsigned k = 0; k < BASE_BYTES; k++)
        pattern[k] = (uint8_t)(k * 31 + (k >> 9));
    snprintf(base, sizeof(base), "%s/base.raw", dir);
    write_file(base, pattern, BASE_BYTES);
    free(pattern);
    snprintf(path, sizeof(path), "%s/fuzz.qcow2", dir);
    atexit(cleanup);
}

/* The extents must tile [0, size) exactly, whatever the image says. */
static void walk_map(img *i, uint64_t size)
{
    uint64_t off = 0;

    for (int n = 0; n < MAX_EXTENTS && off < size; n++) {
        img_extent e;

        if (img_map(i, off, size - off, &e) < 0)
            return;
        if (e.offset != off || e.length == 0 || e.length > size - off ||
            e.kind > IMG_EXTENT_UNALLOCATED || e.layer >= img_depth(i))
            abort();
        off += e.length;
    }
}

static void read_at(img *i, uint64_t size, uint64_t off, uint8_t *buf)
{
    size_t len;

    if (size == 0)
        return;
    off %= size;
    len = size - off < READ_MAX ? (size_t)(size - off) : READ_MAX;
    (void)img_read(i, off, buf, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t *buf;
    const char *const roots[] = { dir, NULL };
    img_open_options o = { .roots = roots };
    img_layer_info info;
    char err[512];
    uint64_t vsize, seed = 0;
    img *i = NULL;

    if (!buf) {
        setup();
        buf = malloc(READ_MAX);
        if (!buf)
            abort();
    }
    write_file(path, data, size);
    if (img_open(path, IMG_FORMAT_QCOW2, &o, &i, err, sizeof(err)) < 0)
        return 0;
    for (size_t k = 0; k < img_depth(i); k++)
        if (img_layer_info_get(i, k, &info) < 0)
            abort();
    vsize = img_virtual_size(i);
    walk_map(i, vsize);
    if (size >= 8)
        memcpy(&seed, data + size - 8, 8);
    read_at(i, vsize, 0, buf);
    read_at(i, vsize, vsize / 2, buf);
    read_at(i, vsize, vsize > READ_MAX ? vsize - READ_MAX : 0, buf);
    read_at(i, vsize, seed, buf);
    img_close(i);
    return 0;
}
