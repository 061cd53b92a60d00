/* test_storage_read.c: the image layer reads what QEMU reads. Each test
 * builds an image (or a chain) with qemu-img and qemu-io in a temp dir,
 * reads its whole virtual size through img_read and compares it byte for
 * byte with `qemu-img convert -O raw`, reads random pieces of it, and
 * checks img_map against `qemu-img map --output=json` (data, compressed,
 * zero or unallocated, from which layer, at which host offset). */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "storage/storage.h"
#include "tests/support/testdir.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GRANULE 512u
#define MAX_EXTENTS 100000u

typedef struct check_result {
    size_t depth;
    size_t extents;
    size_t kinds[4];              /* extents of each img_extent_kind */
    unsigned layers_with_data;    /* bit k: layer k has DATA or COMPRESSED extents */
    img_layer_info top;
} check_result;

/* ---- what QEMU says ---- */

/* One granule's state as an extent kind, layer and host offset. */
typedef struct gstate {
    img_extent_kind kind;
    unsigned layer;
    uint64_t host;    /* DATA only; UINT64_MAX when not compared */
} gstate;

/* The kinds storage.h defines, from qemu-img map's fields: data with an
 * offset is DATA, data without one COMPRESSED; present zeros are a zero
 * cluster (or a hole in a raw layer, which img_map calls DATA); not present
 * is UNALLOCATED in the last layer, and in any other layer the zeros past
 * its shorter backing file. */
static gstate qemu_state(json_object *e, uint64_t g, const bool *raw_layers, size_t depth)
{
    json_object *v;
    gstate s = { .host = UINT64_MAX };
    bool data, present;
    uint64_t start;

    json_object_object_get_ex(e, "depth", &v);
    s.layer = (unsigned)json_object_get_int(v);
    json_object_object_get_ex(e, "data", &v);
    data = json_object_get_boolean(v);
    json_object_object_get_ex(e, "present", &v);
    present = json_object_get_boolean(v);
    json_object_object_get_ex(e, "start", &v);
    start = (uint64_t)json_object_get_int64(v);
    if (data && json_object_object_get_ex(e, "offset", &v)) {
        s.kind = IMG_EXTENT_DATA;
        s.host = (uint64_t)json_object_get_int64(v) + (g - start);
    } else if (data) {
        s.kind = IMG_EXTENT_COMPRESSED;
    } else if (present) {
        s.kind = raw_layers[s.layer] ? IMG_EXTENT_DATA : IMG_EXTENT_ZERO;
    } else {
        s.kind = s.layer + 1 == depth ? IMG_EXTENT_UNALLOCATED : IMG_EXTENT_ZERO;
    }
    return s;
}

static gstate *qemu_map(const testdir *d, const char *path, const char *fmt, uint64_t size,
                        const bool *raw_layers, size_t depth)
{
    size_t n = (size_t)((size + GRANULE - 1) / GRANULE), filled = 0;
    gstate *g = calloc(n, sizeof(*g));
    json_object *arr;

    assert_non_null(g);
    test_run_out(testdir_path(d, "map.json"), "qemu-img", "map", "--output=json", "-f", fmt, path,
                 NULL);
    arr = json_object_from_file(testdir_path(d, "map.json"));
    assert_non_null(arr);
    for (size_t k = 0; k < json_object_array_length(arr); k++) {
        json_object *e = json_object_array_get_idx(arr, k), *v;
        uint64_t start, len;

        json_object_object_get_ex(e, "start", &v);
        start = (uint64_t)json_object_get_int64(v);
        json_object_object_get_ex(e, "length", &v);
        len = (uint64_t)json_object_get_int64(v);
        for (uint64_t o = (start + GRANULE - 1) / GRANULE * GRANULE; o < start + len && o < size;
             o += GRANULE, filled++)
            g[o / GRANULE] = qemu_state(e, o, raw_layers, depth);
    }
    json_object_put(arr);
    assert_int_equal(filled, n);
    return g;
}

/* ---- what img_map says ---- */

static gstate our_state(const img_extent *e, uint64_t g)
{
    gstate s = { .kind = e->kind, .layer = e->layer, .host = UINT64_MAX };

    if (e->kind == IMG_EXTENT_DATA)
        s.host = e->host_offset + (g - e->offset);
    return s;
}

static const char *kind_name(img_extent_kind k)
{
    static const char *const names[] = { "data", "compressed", "zero", "unallocated" };

    return names[k];
}

/* Walks img_map over the whole image: the extents must tile it exactly, and
 * each granule must be what QEMU says it is. Returns the number of extents. */
static size_t compare_map(img *i, const gstate *want, check_result *res)
{
    uint64_t size = img_virtual_size(i), off = 0;
    size_t count = 0;

    while (off < size) {
        img_extent e;

        assert_int_equal(img_map(i, off, size - off, &e), 0);
        assert_int_equal(e.offset, off);
        assert_true(e.length > 0 && e.length <= size - off);
        assert_true(++count < MAX_EXTENTS);
        res->kinds[e.kind]++;
        if (e.kind == IMG_EXTENT_DATA || e.kind == IMG_EXTENT_COMPRESSED)
            res->layers_with_data |= 1u << e.layer;
        for (uint64_t g = (off + GRANULE - 1) / GRANULE * GRANULE; g < off + e.length;
             g += GRANULE) {
            gstate ours = our_state(&e, g), theirs = want[g / GRANULE];
            bool same = ours.kind == theirs.kind && ours.layer == theirs.layer &&
                        (theirs.host == UINT64_MAX || ours.host == theirs.host);

            if (ours.kind == IMG_EXTENT_UNALLOCATED && theirs.kind == IMG_EXTENT_UNALLOCATED)
                same = true;    /* the layer of an unallocated run is not compared */
            if (!same)
                print_message("offset %llu: img_map %s layer %u host %llx, qemu %s layer %u "
                              "host %llx\n",
                              (unsigned long long)g, kind_name(ours.kind), ours.layer,
                              (unsigned long long)ours.host, kind_name(theirs.kind),
                              theirs.layer, (unsigned long long)theirs.host);
            assert_true(same);
        }
        off += e.length;
    }
    return count;
}

/* ---- the comparison every test makes ---- */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void compare_bytes(const uint8_t *ours, const uint8_t *want, uint64_t size)
{
    if (memcmp(ours, want, size) != 0) {
        uint64_t k = 0;

        while (ours[k] == want[k])
            k++;
        print_message("first difference at offset %llu: 0x%02x, qemu 0x%02x\n",
                      (unsigned long long)k, ours[k], want[k]);
        fail();
    }
}

/* Reads pieces at random offsets and lengths (crossing clusters, partial
 * sectors, compressed clusters read twice) and compares them too. */
static void compare_random_reads(img *i, const uint8_t *want, uint64_t size)
{
    uint64_t seed = 0x9e3779b97f4a7c15u;
    uint8_t *buf = malloc(256 * KiB);

    assert_non_null(buf);
    for (int n = 0; n < 300; n++) {
        uint64_t off = rng_next(&seed) % size;
        size_t len = (size_t)(rng_next(&seed) % (256 * KiB) + 1);

        if (len > size - off)
            len = (size_t)(size - off);
        assert_int_equal(img_read(i, off, buf, len), 0);
        assert_memory_equal(buf, want + off, len);
    }
    free(buf);
}

/* Opens path (format fmt; backing files confined to the test's dir), reads
 * everything, compares with qemu-img convert and qemu-img map. */
static check_result check_image(const testdir *d, const char *name, const char *fmt)
{
    char path[PATH_MAX], err[512] = "";
    const char *roots[] = { d->path, NULL };
    img_open_options o = { .roots = roots };
    img_format format;
    check_result res = { 0 };
    bool raw_layers[IMG_MAX_CHAIN] = { false };
    uint8_t *ours, *want;
    size_t want_len;
    uint64_t size;
    gstate *map;
    img *i = NULL;
    int r;

    snprintf(path, sizeof(path), "%s", testdir_path(d, name));
    assert_int_equal(img_format_parse(fmt, &format), 0);
    r = img_open(path, format, &o, &i, err, sizeof(err));
    if (r != 0)
        print_message("img_open %s: %d %s\n", path, r, err);
    assert_int_equal(r, 0);
    size = img_virtual_size(i);
    res.depth = img_depth(i);
    assert_int_equal(img_layer_info_get(i, 0, &res.top), 0);
    for (size_t k = 0; k < res.depth; k++) {
        img_layer_info li;

        assert_int_equal(img_layer_info_get(i, k, &li), 0);
        raw_layers[k] = li.format == IMG_FORMAT_RAW;
    }

    ours = malloc(size ? size : 1);
    assert_non_null(ours);
    assert_int_equal(img_read(i, 0, ours, size), 0);
    test_run("qemu-img", "convert", "-f", fmt, "-O", "raw", path, testdir_path(d, "expect.raw"),
             NULL);
    want = test_read_file(testdir_path(d, "expect.raw"), &want_len);
    assert_int_equal(want_len, size);
    compare_bytes(ours, want, size);
    compare_random_reads(i, want, size);

    map = qemu_map(d, path, fmt, size, raw_layers, res.depth);
    res.extents = compare_map(i, map, &res);

    free(map);
    free(want);
    free(ours);
    img_close(i);
    return res;
}

/* ---- building images ---- */

static void create(const testdir *d, const char *name, const char *opts, uint64_t size)
{
    if (opts)
        test_run("qemu-img", "create", "-q", "-f", "qcow2", "-o", opts, testdir_path(d, name),
                 test_decimal(size), NULL);
    else
        test_run("qemu-img", "create", "-q", "-f", "qcow2", testdir_path(d, name),
                 test_decimal(size), NULL);
}

static void create_over(const testdir *d, const char *name, const char *backing,
                        const char *backing_fmt)
{
    test_run("qemu-img", "create", "-q", "-f", "qcow2", "-b", backing, "-F", backing_fmt,
             testdir_path(d, name), NULL);
}

/* qemu-io on the qcow2 image name in d. */
static void qio(const testdir *d, const char *name, const char *const *cmds)
{
    test_qemu_io(testdir_path(d, name), cmds);
}

/* Writes that exercise partial clusters, cluster-crossing writes, zeroing
 * data and unallocated space, discards and the unaligned tail. */
static void scribble(const testdir *d, const char *name, uint64_t cs, uint64_t size)
{
    char c[8][96];

    snprintf(c[0], sizeof(c[0]), "write -P 0x11 0 %llu", (unsigned long long)(cs + cs / 2));
    snprintf(c[1], sizeof(c[1]), "write -P 0x22 %llu 300", (unsigned long long)(3 * cs - 100));
    snprintf(c[2], sizeof(c[2]), "write -P 0x33 %llu %llu", (unsigned long long)(size / 2),
             (unsigned long long)(4 * cs));
    snprintf(c[3], sizeof(c[3]), "write -z %llu %llu", (unsigned long long)(size / 2 + cs),
             (unsigned long long)cs);
    snprintf(c[4], sizeof(c[4]), "write -P 0x44 %llu 1000", (unsigned long long)(size - 1000));
    snprintf(c[5], sizeof(c[5]), "write -z %llu %llu", (unsigned long long)(size / 4),
             (unsigned long long)(2 * cs));
    snprintf(c[6], sizeof(c[6]), "discard %llu %llu", (unsigned long long)(size / 2 + 2 * cs),
             (unsigned long long)cs);
    qio(d, name, (const char *const[]){ c[0], c[1], c[2], c[3], c[4], c[5], c[6], NULL });
}

static void cluster_size_case(void **state, uint64_t cs, uint64_t size)
{
    testdir *d = *state;
    char opts[64];
    check_result r;

    snprintf(opts, sizeof(opts), "cluster_size=%llu", (unsigned long long)cs);
    create(d, "a.qcow2", opts, size);
    scribble(d, "a.qcow2", cs, size);
    r = check_image(d, "a.qcow2", "qcow2");
    assert_int_equal(r.depth, 1);
    assert_int_equal(r.top.version, 3);
    assert_int_equal(r.top.cluster_size, cs);
    assert_int_equal(r.top.virtual_size, size);
    assert_true(r.extents >= 5);
    assert_true(r.kinds[IMG_EXTENT_DATA] >= 3);
    assert_true(r.kinds[IMG_EXTENT_ZERO] >= 1);
    assert_true(r.kinds[IMG_EXTENT_UNALLOCATED] >= 1);
}

/* ---- the tests ---- */

static void images_with_512_byte_clusters_read_as_qemu_reads_them(void **state)
{
    cluster_size_case(state, 512, 4 * MiB);
}

static void images_with_4k_clusters_read_as_qemu_reads_them(void **state)
{
    cluster_size_case(state, 4 * KiB, 4 * MiB);
}

static void images_with_64k_clusters_read_as_qemu_reads_them(void **state)
{
    cluster_size_case(state, 64 * KiB, 4 * MiB);
}

static void images_with_2m_clusters_read_as_qemu_reads_them(void **state)
{
    cluster_size_case(state, 2 * MiB, 32 * MiB);
}

static void version_2_images_read_as_qemu_reads_them(void **state)
{
    testdir *d = *state;
    check_result r;

    create(d, "v2.qcow2", "compat=0.10", 4 * MiB);
    scribble(d, "v2.qcow2", 64 * KiB, 4 * MiB);
    r = check_image(d, "v2.qcow2", "qcow2");
    assert_int_equal(r.top.version, 2);
    assert_int_equal(r.top.refcount_bits, 16);
}

static void refcount_width_case(void **state, unsigned bits)
{
    testdir *d = *state;
    char opts[64];
    check_result r;

    snprintf(opts, sizeof(opts), "refcount_bits=%u,cluster_size=4096", bits);
    create(d, "rc.qcow2", opts, 2 * MiB);
    scribble(d, "rc.qcow2", 4 * KiB, 2 * MiB);
    r = check_image(d, "rc.qcow2", "qcow2");
    assert_int_equal(r.top.refcount_bits, bits);
}

static void one_bit_refcounts_are_read(void **state)
{
    refcount_width_case(state, 1);
}

static void sixteen_bit_refcounts_are_read(void **state)
{
    refcount_width_case(state, 16);
}

static void sixty_four_bit_refcounts_are_read(void **state)
{
    refcount_width_case(state, 64);
}

/* A raw source with random (incompressible: QEMU stores it plain), patterned
 * (compressible) and zero (left out) regions, converted with -c. */
static void compressed_case(void **state, uint64_t cs)
{
    testdir *d = *state;
    char opts[64], w[96], of[PATH_MAX + 3], seek[32], count[32];
    uint64_t rand_len = cs > 256 * KiB ? cs : 256 * KiB;
    uint64_t size = 3 * MiB + 2 * rand_len;
    check_result r;

    test_run("qemu-img", "create", "-q", "-f", "raw", testdir_path(d, "src.raw"),
             test_decimal(size), NULL);
    test_run("qemu-io", "-f", "raw", "-c", "write -P 0x5a 0 1M", "-c", "write -P 0x01 2M 700k",
             testdir_path(d, "src.raw"), NULL);
    snprintf(of, sizeof(of), "of=%s", testdir_path(d, "src.raw"));
    snprintf(seek, sizeof(seek), "seek=%llu", (unsigned long long)((3 * MiB + rand_len) / KiB));
    snprintf(count, sizeof(count), "count=%llu", (unsigned long long)(rand_len / KiB));
    test_run("dd", "if=/dev/urandom", of, "bs=1k", seek, count, "conv=notrunc", "status=none",
             NULL);
    snprintf(opts, sizeof(opts), "cluster_size=%llu", (unsigned long long)cs);
    test_run("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", opts,
             testdir_path(d, "src.raw"), testdir_path(d, "c.qcow2"), NULL);
    /* A partial write into a compressed cluster: QEMU inflates and rewrites it. */
    snprintf(w, sizeof(w), "write -P 0x77 %llu 100", (unsigned long long)(cs + 7));
    qio(d, "c.qcow2", (const char *const[]){ w, NULL });
    r = check_image(d, "c.qcow2", "qcow2");
    assert_int_equal(r.top.cluster_size, cs);
    assert_true(r.kinds[IMG_EXTENT_COMPRESSED] >= 2);
    assert_true(r.kinds[IMG_EXTENT_DATA] >= 1);    /* the random part and the rewrite */
}

static void compressed_clusters_read_as_qemu_reads_them(void **state)
{
    compressed_case(state, 64 * KiB);
}

static void compressed_512_byte_clusters_read_as_qemu_reads_them(void **state)
{
    compressed_case(state, 512);
}

static void compressed_2m_clusters_read_as_qemu_reads_them(void **state)
{
    compressed_case(state, 2 * MiB);
}

static void zero_clusters_read_as_zeros_and_map_as_zero(void **state)
{
    testdir *d = *state;
    img *i = NULL;
    char err[256];
    img_extent e;
    check_result r;

    create(d, "z.qcow2", NULL, 4 * MiB);
    qio(d, "z.qcow2",
        (const char *const[]){ "write -P 0x61 0 1M", "write -z 128k 128k",
                               "write -z -u 512k 64k", "write -z 2M 256k", NULL });
    r = check_image(d, "z.qcow2", "qcow2");
    assert_true(r.kinds[IMG_EXTENT_ZERO] >= 3);
    assert_int_equal(img_open(testdir_path(d, "z.qcow2"), IMG_FORMAT_QCOW2, NULL, &i, err,
                              sizeof(err)),
                     0);
    assert_int_equal(img_map(i, 128 * KiB, 4 * MiB - 128 * KiB, &e), 0);
    assert_int_equal(e.kind, IMG_EXTENT_ZERO);
    assert_int_equal(e.length, 128 * KiB);
    assert_int_equal(img_map(i, 2 * MiB + 1, 1, &e), 0);
    assert_int_equal(e.kind, IMG_EXTENT_ZERO);
    assert_int_equal(e.length, 1);
    img_close(i);
}

static void lazy_refcounts_and_a_dirty_image_are_read(void **state)
{
    testdir *d = *state;
    char *argv[] = { "qemu-io", "-f", "qcow2", "-c", "write -P 0x3c 64k 200k", "-c", "abort",
                     NULL, NULL };
    check_result r;

    create(d, "lazy.qcow2", "lazy_refcounts=on", 2 * MiB);
    argv[7] = (char *)testdir_path(d, "lazy.qcow2");
    assert_int_not_equal(test_run_argv(argv, NULL, false), 0);    /* aborted with the image dirty */
    r = check_image(d, "lazy.qcow2", "qcow2");
    assert_true(r.top.lazy_refcounts);
    assert_true(r.top.dirty);
}

static void metadata_preallocation_is_read(void **state)
{
    testdir *d = *state;

    create(d, "pm.qcow2", "preallocation=metadata,cluster_size=4096", 1 * MiB);
    qio(d, "pm.qcow2", (const char *const[]){ "write -P 0x12 5000 3000", NULL });
    check_image(d, "pm.qcow2", "qcow2");
}

static void full_preallocation_is_read(void **state)
{
    testdir *d = *state;

    create(d, "pf.qcow2", "preallocation=full", 1 * MiB);
    qio(d, "pf.qcow2", (const char *const[]){ "write -P 0x13 300k 70k", NULL });
    check_image(d, "pf.qcow2", "qcow2");
}

/* Five layers: each writes its own pattern, upper ones overwrite lower
 * data, zero it, discard it, and leave holes to the base. */
static void a_chain_five_deep_reads_as_qemu_reads_it(void **state)
{
    testdir *d = *state;
    check_result r;
    img *i = NULL;
    char err[256];
    img_layer_info li;
    const char *const roots[] = { d->path, NULL };
    img_open_options o = { .roots = roots };
    img_extent e;

    create(d, "l4.qcow2", NULL, 4 * MiB);
    qio(d, "l4.qcow2", (const char *const[]){ "write -P 0x44 0 4M", NULL });
    create_over(d, "l3.qcow2", "l4.qcow2", "qcow2");
    qio(d, "l3.qcow2", (const char *const[]){ "write -P 0x33 64k 448k", "write -z 1M 128k",
                                              NULL });
    create_over(d, "l2.qcow2", "l3.qcow2", "qcow2");
    qio(d, "l2.qcow2", (const char *const[]){ "write -P 0x22 100000 70000",
                                              "write -P 0x22 3M 64k", NULL });
    create_over(d, "l1.qcow2", "l2.qcow2", "qcow2");
    qio(d, "l1.qcow2", (const char *const[]){ "write -z 64k 64k", "write -P 0x11 1M 64k",
                                              "discard 3M 64k", NULL });
    create_over(d, "l0.qcow2", "l1.qcow2", "qcow2");
    qio(d, "l0.qcow2", (const char *const[]){ "write -P 0x0f 200k 10", "write -z 2M 1M", NULL });
    r = check_image(d, "l0.qcow2", "qcow2");
    assert_int_equal(r.depth, 5);
    assert_int_equal(r.layers_with_data, 0x1f);
    assert_true(r.kinds[IMG_EXTENT_ZERO] >= 3);
    assert_true(r.top.has_backing);
    assert_string_equal(r.top.backing_file, "l1.qcow2");
    assert_int_equal(r.top.backing_format, IMG_FORMAT_QCOW2);

    assert_int_equal(img_open(testdir_path(d, "l0.qcow2"), IMG_FORMAT_QCOW2, &o, &i, err,
                              sizeof(err)),
                     0);
    assert_int_equal(img_layer_info_get(i, 4, &li), 0);
    assert_string_equal(li.path, testdir_path(d, "l4.qcow2"));
    assert_false(li.has_backing);
    assert_int_equal(img_layer_info_get(i, 5, &li), -EINVAL);
    /* Zeroed in layer 1 over data in layers 3 and 4: zero, from layer 1. */
    assert_int_equal(img_map(i, 64 * KiB, 64 * KiB, &e), 0);
    assert_int_equal(e.kind, IMG_EXTENT_ZERO);
    assert_int_equal(e.layer, 1);
    img_close(i);
}

static void a_raw_base_under_qcow2_reads_as_qemu_reads_it(void **state)
{
    testdir *d = *state;
    check_result r;

    test_run("qemu-img", "create", "-q", "-f", "raw", testdir_path(d, "base.raw"), "3M", NULL);
    test_run("qemu-io", "-f", "raw", "-c", "write -P 0x71 0 1M", "-c", "write -P 0x72 2M 4k",
             testdir_path(d, "base.raw"), NULL);
    create_over(d, "top.qcow2", "base.raw", "raw");
    qio(d, "top.qcow2", (const char *const[]){ "write -P 0x73 512k 1M", "write -z 2M 64k",
                                               NULL });
    r = check_image(d, "top.qcow2", "qcow2");
    assert_int_equal(r.depth, 2);
    assert_int_equal(r.top.backing_format, IMG_FORMAT_RAW);
    assert_int_equal(r.layers_with_data, 0x3);
}

static void sizes_that_are_not_cluster_multiples_read_as_qemu_reads_them(void **state)
{
    testdir *d = *state;
    check_result r;

    /* A qcow2 whose last cluster is partly past the end of the disk. */
    create(d, "odd.qcow2", NULL, 1000448);
    qio(d, "odd.qcow2", (const char *const[]){ "write -P 0x19 983040 17408", NULL });
    r = check_image(d, "odd.qcow2", "qcow2");
    assert_int_equal(r.top.virtual_size, 1000448);

    /* A raw base of an odd byte count under an overlay rounded up to sectors. */
    test_run("qemu-img", "create", "-q", "-f", "raw", testdir_path(d, "odd.raw"), "1M", NULL);
    test_run("qemu-io", "-f", "raw", "-c", "write -P 0x29 0 1M", testdir_path(d, "odd.raw"), NULL);
    assert_int_equal(truncate(testdir_path(d, "odd.raw"), 1000001), 0);
    create_over(d, "over-odd.qcow2", "odd.raw", "raw");
    r = check_image(d, "over-odd.qcow2", "qcow2");
    assert_int_equal(r.depth, 2);
    assert_int_equal(r.top.virtual_size, 1000448);
    assert_int_equal(r.kinds[IMG_EXTENT_ZERO], 1);    /* the 447 bytes past the raw file */
}

static void reads_past_a_shorter_backing_file_are_zeros(void **state)
{
    testdir *d = *state;
    const char *const roots[] = { d->path, NULL };
    img_open_options o = { .roots = roots };
    img *i = NULL;
    char err[256];
    img_extent e;

    create(d, "short.qcow2", NULL, 1 * MiB);
    qio(d, "short.qcow2", (const char *const[]){ "write -P 0x55 0 1M", NULL });
    create_over(d, "long.qcow2", "short.qcow2", "qcow2");
    test_run("qemu-img", "resize", "-q", testdir_path(d, "long.qcow2"), "3M", NULL);
    qio(d, "long.qcow2", (const char *const[]){ "write -P 0x66 512k 64k",
                                                "write -P 0x66 2M 64k", NULL });
    check_image(d, "long.qcow2", "qcow2");

    assert_int_equal(img_open(testdir_path(d, "long.qcow2"), IMG_FORMAT_QCOW2, &o, &i, err,
                              sizeof(err)),
                     0);
    assert_int_equal(img_virtual_size(i), 3 * MiB);
    assert_int_equal(img_map(i, 1 * MiB, 2 * MiB, &e), 0);
    assert_int_equal(e.kind, IMG_EXTENT_ZERO);
    assert_int_equal(e.layer, 0);
    assert_int_equal(e.length, 1 * MiB);
    assert_int_equal(img_map(i, 1 * MiB - 512, 2 * MiB, &e), 0);
    assert_int_equal(e.kind, IMG_EXTENT_DATA);
    assert_int_equal(e.layer, 1);
    assert_int_equal(e.length, 512);
    img_close(i);
}

static void map_and_read_refuse_offsets_past_the_end(void **state)
{
    testdir *d = *state;
    img *i = NULL;
    char err[256], buf[16];
    img_extent e;

    create(d, "e.qcow2", NULL, 1 * MiB);
    assert_int_equal(img_open(testdir_path(d, "e.qcow2"), IMG_FORMAT_QCOW2, NULL, &i, err,
                              sizeof(err)),
                     0);
    assert_int_equal(img_map(i, 1 * MiB, 1, &e), -EINVAL);
    assert_int_equal(img_map(i, 0, 0, &e), -EINVAL);
    assert_int_equal(img_read(i, 1 * MiB - 8, buf, 16), -EINVAL);
    assert_int_equal(img_read(i, 1 * MiB - 16, buf, 16), 0);
    assert_int_equal(img_map(i, 0, UINT64_MAX, &e), 0);
    assert_int_equal(e.kind, IMG_EXTENT_UNALLOCATED);
    assert_int_equal(e.length, 1 * MiB);
    img_close(i);
}

static void format_names_round_trip(void **state)
{
    img_format f;

    (void)state;
    assert_int_equal(img_format_parse("qcow2", &f), 0);
    assert_int_equal(f, IMG_FORMAT_QCOW2);
    assert_string_equal(img_format_name(f), "qcow2");
    assert_int_equal(img_format_parse("raw", &f), 0);
    assert_string_equal(img_format_name(f), "raw");
    assert_int_equal(img_format_parse("vmdk", &f), -EINVAL);
    assert_int_equal(img_format_parse("QCOW2", &f), -EINVAL);
}

#define T(f) cmocka_unit_test_setup_teardown(f, testdir_setup, testdir_teardown)

int main(void)
{
    /* No core files: one test aborts qemu-io on purpose. */
    const struct rlimit no_core = { 0, 0 };
    const struct CMUnitTest tests[] = {
        T(images_with_512_byte_clusters_read_as_qemu_reads_them),
        T(images_with_4k_clusters_read_as_qemu_reads_them),
        T(images_with_64k_clusters_read_as_qemu_reads_them),
        T(images_with_2m_clusters_read_as_qemu_reads_them),
        T(version_2_images_read_as_qemu_reads_them),
        T(one_bit_refcounts_are_read),
        T(sixteen_bit_refcounts_are_read),
        T(sixty_four_bit_refcounts_are_read),
        T(compressed_clusters_read_as_qemu_reads_them),
        T(compressed_512_byte_clusters_read_as_qemu_reads_them),
        T(compressed_2m_clusters_read_as_qemu_reads_them),
        T(zero_clusters_read_as_zeros_and_map_as_zero),
        T(lazy_refcounts_and_a_dirty_image_are_read),
        T(metadata_preallocation_is_read),
        T(full_preallocation_is_read),
        T(a_chain_five_deep_reads_as_qemu_reads_it),
        T(a_raw_base_under_qcow2_reads_as_qemu_reads_it),
        T(sizes_that_are_not_cluster_multiples_read_as_qemu_reads_them),
        T(reads_past_a_shorter_backing_file_are_zeros),
        T(map_and_read_refuse_offsets_past_the_end),
        cmocka_unit_test(format_names_round_trip),
    };

    setrlimit(RLIMIT_CORE, &no_core);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
