/* test_storage_write.c: images the image layer creates are images QEMU
 * accepts, and img_check counts what qemu-img check counts. Created images
 * go through `qemu-img check` and `qemu-img info`, are written by qemu-io
 * and read back; overlays are compared with `qemu-img compare`; refusals and
 * injected failures leave nothing behind; img_check runs on images qemu-img
 * made (every refcount width, compressed, zero clusters, snapshots,
 * bitmaps, chains) and on images damaged by hand, beside qemu-img check. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "storage/storage.h"
#include "tests/support/qemu_img.h"
#include "tests/support/testdir.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define TiB (UINT64_C(1) << 40)
#define ERR_LEN 512
#define COPIED_FLAG (UINT64_C(1) << 63)
#define OFFSET_MASK UINT64_C(0x00fffffffffffe00)

/* ---- temp dirs and files ---- */

/* Removes the test's dir and the dir beside it that some tests make
 * outside the roots, even when the test failed half-way. */
static int remove_dirs(void **state)
{
    testdir *d = *state;
    char outside[PATH_MAX + 16];

    snprintf(outside, sizeof(outside), "%s.outside", d->path);
    testdir_remove_tree(outside);
    return testdir_teardown(state);
}

static bool exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

/* A file of size bytes that compresses, with a seed in every line. */
static void write_pattern(const char *path, uint64_t size, unsigned seed)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    for (uint64_t n = 0, line = 0; n < size; line++) {
        char buf[64];
        int len = snprintf(buf, sizeof(buf), "%u:%llu\n", seed, (unsigned long long)line);
        size_t k = (size_t)len < size - n ? (size_t)len : (size_t)(size - n);

        assert_int_equal(fwrite(buf, 1, k, f), k);
        n += k;
    }
    assert_int_equal(fclose(f), 0);
}

static void copy_file(const char *from, const char *to)
{
    size_t len;
    uint8_t *buf = test_read_file(from, &len);
    FILE *f = fopen(to, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    free(buf);
}

/* ---- what the image layer says ---- */

static img_check_result our_check(const char *path)
{
    img_check_result res;
    char err[ERR_LEN] = "";
    int r = img_check(path, &res, err, sizeof(err));

    if (r != 0)
        print_message("img_check %s: %d %s\n", path, r, err);
    assert_int_equal(r, 0);
    return res;
}

/* img_check and qemu-img check count the same; returns ours. */
static img_check_result check_both(const testdir *d, const char *path)
{
    img_check_result ours = our_check(path);
    test_qemu_check q = test_qemu_img_check(d, path);

    if (ours.leaked_clusters != q.leaks || ours.corruptions != q.corruptions ||
        ours.allocated_clusters != q.allocated || ours.fragmented_clusters != q.fragmented)
        print_message("%s: img_check leaks %llu corruptions %llu allocated %llu fragmented "
                      "%llu (%s); qemu-img check %llu %llu %llu %llu\n",
                      path, (unsigned long long)ours.leaked_clusters,
                      (unsigned long long)ours.corruptions,
                      (unsigned long long)ours.allocated_clusters,
                      (unsigned long long)ours.fragmented_clusters, ours.first_problem,
                      (unsigned long long)q.leaks, (unsigned long long)q.corruptions,
                      (unsigned long long)q.allocated, (unsigned long long)q.fragmented);
    assert_int_equal(ours.leaked_clusters, q.leaks);
    assert_int_equal(ours.corruptions, q.corruptions);
    assert_int_equal(ours.allocated_clusters, q.allocated);
    assert_int_equal(ours.fragmented_clusters, q.fragmented);
    return ours;
}

static void assert_clean(const testdir *d, const char *path)
{
    img_check_result r = check_both(d, path);

    assert_int_equal(r.leaked_clusters, 0);
    assert_int_equal(r.corruptions, 0);
    assert_int_equal(test_qemu_img_check(d, path).status, 0);
}

static void create_qcow2(const char *path, uint64_t size, uint32_t cs)
{
    img_create_options o = { .format = IMG_FORMAT_QCOW2, .size = size, .cluster_size = cs };
    char err[ERR_LEN] = "";
    int r = img_create(path, &o, err, sizeof(err));

    if (r != 0)
        print_message("img_create %s: %d %s\n", path, r, err);
    assert_int_equal(r, 0);
}

static void overlay(const testdir *d, const char *name, const char *backing, img_format fmt)
{
    const char *roots[] = { d->path, NULL };
    char err[ERR_LEN] = "";
    int r = img_overlay(testdir_path(d, name), backing, fmt, roots, err, sizeof(err));

    if (r != 0)
        print_message("img_overlay %s: %d %s\n", name, r, err);
    assert_int_equal(r, 0);
}

static img *open_image(const testdir *d, const char *path, img_format fmt)
{
    const char *roots[] = { d->path, NULL };
    img_open_options o = { .roots = roots };
    char err[ERR_LEN] = "";
    img *i = NULL;
    int r = img_open(path, fmt, &o, &i, err, sizeof(err));

    if (r != 0)
        print_message("img_open %s: %d %s\n", path, r, err);
    assert_int_equal(r, 0);
    return i;
}

/* The image's guest bytes read through img_read must be `want`. */
static void assert_reads(const testdir *d, const char *path, img_format fmt, const uint8_t *want,
                         size_t len)
{
    img *i = open_image(d, path, fmt);
    uint8_t *buf = malloc(len);

    assert_non_null(buf);
    assert_true(img_virtual_size(i) >= len);
    assert_int_equal(img_read(i, 0, buf, len), 0);
    assert_memory_equal(buf, want, len);
    free(buf);
    img_close(i);
}

/* What `qemu-img convert -O raw` makes of an image. */
static uint8_t *qemu_raw(const testdir *d, const char *path, const char *fmt, size_t *len)
{
    const char *out = testdir_path(d, "convert.raw");
    uint8_t *buf;

    test_run("qemu-img", "convert", "-f", fmt, "-O", "raw", path, out, NULL);
    buf = test_read_file(out, len);
    unlink(out);
    return buf;
}

/* ---- creating qcow2 images ---- */

/* A new image: qemu-img check finds nothing, qemu-img info agrees on every
 * parameter, the file stays sparse, and it reads as zeros. */
static void created_image_case(const testdir *d, uint64_t size, uint32_t cs)
{
    char path[PATH_MAX];
    json_object *info, *data;
    uint8_t buf[4096], zeros[4096] = { 0 };
    uint64_t offs[] = { 0, size / 2, size - sizeof(buf) };
    struct stat st;
    img *i;

    testdir_path_into(path, d, "new.qcow2");
    create_qcow2(path, size, cs);
    assert_clean(d, path);
    info = test_qemu_json(d, NULL, "info", path);
    data = test_jget(test_jget(info, "format-specific"), "data");
    assert_string_equal(test_jstr(info, "format"), "qcow2");
    assert_int_equal(test_jint(info, "virtual-size"), size);
    assert_int_equal(test_jint(info, "cluster-size"), cs);
    assert_string_equal(test_jstr(data, "compat"), "1.1");
    assert_int_equal(test_jint(data, "refcount-bits"), 16);
    assert_string_equal(test_jstr(data, "compression-type"), "zlib");
    json_object_put(info);

    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size % cs, 0);
    assert_true((uint64_t)st.st_blocks * 512 <= 256 * KiB);    /* metadata only, L1 a hole */
    i = open_image(d, path, IMG_FORMAT_QCOW2);
    assert_int_equal(img_virtual_size(i), size);
    for (size_t k = 0; k < sizeof(offs) / sizeof(offs[0]); k++) {
        assert_int_equal(img_read(i, offs[k], buf, sizeof(buf)), 0);
        assert_memory_equal(buf, zeros, sizeof(buf));
    }
    img_close(i);
    assert_int_equal(unlink(path), 0);
}

static void new_qcow2_images_of_every_size_and_cluster_size_pass_qemu_img_check(void **state)
{
    static const struct {
        uint64_t size;
        uint32_t cs;
    } cases[] = {
        { MiB, 512 },           { MiB, 4096 },       { MiB, 65536 },     { MiB, 2 * MiB },
        { GiB, 512 },           { GiB, 4096 },       { GiB, 65536 },     { GiB, 2 * MiB },
        { TiB, 4096 },          { TiB, 65536 },      { TiB, 2 * MiB },
        /* An L1 of 25 MiB in 512-byte clusters: 201 refcount blocks, 4 table clusters. */
        { 100 * GiB, 512 },
        /* The largest size: an L1 table of exactly 32 MiB. */
        { UINT64_C(1) << 61, 2 * MiB },
    };

    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
        created_image_case(*state, cases[k].size, cases[k].cs);
}

static void qemu_io_writes_into_a_new_image_and_img_read_returns_its_data(void **state)
{
    testdir *d = *state;
    char path[PATH_MAX];
    uint8_t *want;
    size_t len;

    testdir_path_into(path, d, "w.qcow2");
    create_qcow2(path, 64 * MiB, 4096);
    test_qemu_io(path, (const char *const[]){ "write -P 0x5a 0 1M", "write -P 0xa5 33M 100k",
                                              "write -z 40M 64k", NULL });
    assert_clean(d, path);
    want = qemu_raw(d, path, "qcow2", &len);
    assert_int_equal(len, 64 * MiB);
    assert_int_equal(want[0], 0x5a);
    assert_int_equal(want[33 * MiB + 99 * KiB], 0xa5);
    assert_reads(d, path, IMG_FORMAT_QCOW2, want, len);
    free(want);
}

/* ---- overlays ---- */

static void assert_backing(const testdir *d, const char *path, const char *name, const char *fmt)
{
    json_object *info = test_qemu_json(d, NULL, "info", path);

    assert_string_equal(test_jstr(info, "backing-filename"), name);
    assert_string_equal(test_jstr(info, "backing-filename-format"), fmt);
    json_object_put(info);
}

static void an_overlay_of_a_qcow2_master_reads_it_and_leaves_it_unchanged(void **state)
{
    testdir *d = *state;
    uint8_t *want;
    size_t len;
    img_layer_info li;
    img *i;

    test_run("qemu-img", "create", "-q", "-f", "qcow2", testdir_path(d, "master.qcow2"),
             test_decimal(8 * MiB), NULL);
    test_qemu_io(testdir_path(d, "master.qcow2"),
                 (const char *const[]){ "write -P 0x11 0 1M", "write -P 0x22 5M 300k", NULL });
    overlay(d, "clone.qcow2", "master.qcow2", IMG_FORMAT_QCOW2);

    assert_backing(d, testdir_path(d, "clone.qcow2"), "master.qcow2", "qcow2");
    assert_clean(d, testdir_path(d, "clone.qcow2"));
    assert_int_equal(test_run_status(NULL, "qemu-img", "compare", testdir_path(d, "clone.qcow2"),
                                     testdir_path(d, "master.qcow2"), NULL),
                     0);
    want = qemu_raw(d, testdir_path(d, "master.qcow2"), "qcow2", &len);
    assert_reads(d, testdir_path(d, "clone.qcow2"), IMG_FORMAT_QCOW2, want, len);
    i = open_image(d, testdir_path(d, "clone.qcow2"), IMG_FORMAT_QCOW2);
    assert_int_equal(img_depth(i), 2);
    assert_int_equal(img_layer_info_get(i, 0, &li), 0);
    assert_true(li.has_backing);
    assert_string_equal(li.backing_file, "master.qcow2");
    assert_int_equal(li.backing_format, IMG_FORMAT_QCOW2);
    assert_int_equal(li.virtual_size, 8 * MiB);
    img_close(i);
    free(want);

    copy_file(testdir_path(d, "master.qcow2"), testdir_path(d, "master.copy"));
    test_qemu_io(testdir_path(d, "clone.qcow2"),
                 (const char *const[]){ "write -P 0x77 512k 1M", NULL });
    assert_int_equal(test_run_status(NULL, "qemu-img", "compare", testdir_path(d, "master.qcow2"),
                                     testdir_path(d, "master.copy"), NULL),
                     0);
    assert_int_equal(test_run_status(NULL, "qemu-img", "compare", testdir_path(d, "clone.qcow2"),
                                     testdir_path(d, "master.qcow2"), NULL),
                     1);
    assert_clean(d, testdir_path(d, "clone.qcow2"));
}

static void an_overlay_of_a_raw_base_takes_its_size_and_reads_its_data(void **state)
{
    testdir *d = *state;
    uint8_t *want, *after;
    size_t len, after_len;
    img *i;

    /* An odd size: the overlay rounds it up to whole sectors, as qemu-img. */
    write_pattern(testdir_path(d, "base.raw"), 3 * MiB + 1000, 7);
    overlay(d, "top.qcow2", "base.raw", IMG_FORMAT_RAW);
    assert_backing(d, testdir_path(d, "top.qcow2"), "base.raw", "raw");
    assert_clean(d, testdir_path(d, "top.qcow2"));
    i = open_image(d, testdir_path(d, "top.qcow2"), IMG_FORMAT_QCOW2);
    assert_int_equal(img_virtual_size(i), 3 * MiB + 1024);
    img_close(i);
    assert_int_equal(test_run_status(NULL, "qemu-img", "compare", "-f", "qcow2", "-F", "raw",
                                     testdir_path(d, "top.qcow2"), testdir_path(d, "base.raw"),
                                     NULL),
                     0);
    want = test_read_file(testdir_path(d, "base.raw"), &len);
    assert_reads(d, testdir_path(d, "top.qcow2"), IMG_FORMAT_QCOW2, want, len);

    test_qemu_io(testdir_path(d, "top.qcow2"),
                 (const char *const[]){ "write -P 0x33 1M 64k", NULL });
    after = test_read_file(testdir_path(d, "base.raw"), &after_len);
    assert_int_equal(after_len, len);
    assert_memory_equal(after, want, len);
    assert_int_equal(test_run_status(NULL, "qemu-img", "compare", "-f", "qcow2", "-F", "raw",
                                     testdir_path(d, "top.qcow2"), testdir_path(d, "base.raw"),
                                     NULL),
                     1);
    free(after);
    free(want);
}

static void an_image_with_a_backing_file_may_be_larger_than_it(void **state)
{
    testdir *d = *state;
    const char *roots[] = { d->path, NULL };
    img_create_options o = { .format = IMG_FORMAT_QCOW2, .size = 4 * MiB,
                             .backing_file = "small.raw", .backing_format = IMG_FORMAT_RAW,
                             .roots = roots };
    char err[ERR_LEN] = "";
    uint8_t *want, buf[4096], zeros[4096] = { 0 };
    size_t len;
    img *i;

    write_pattern(testdir_path(d, "small.raw"), MiB, 3);
    assert_int_equal(img_create(testdir_path(d, "big.qcow2"), &o, err, sizeof(err)), 0);
    assert_clean(d, testdir_path(d, "big.qcow2"));
    want = test_read_file(testdir_path(d, "small.raw"), &len);
    i = open_image(d, testdir_path(d, "big.qcow2"), IMG_FORMAT_QCOW2);
    assert_int_equal(img_virtual_size(i), 4 * MiB);
    assert_int_equal(img_read(i, 0, buf, sizeof(buf)), 0);
    assert_memory_equal(buf, want, sizeof(buf));
    assert_int_equal(img_read(i, 3 * MiB, buf, sizeof(buf)), 0);
    assert_memory_equal(buf, zeros, sizeof(buf));
    img_close(i);
    free(want);
}

/* ---- raw ---- */

static void a_new_raw_image_is_sparse_and_of_the_size_asked(void **state)
{
    testdir *d = *state;
    img_create_options o = { .format = IMG_FORMAT_RAW, .size = GiB };
    char err[ERR_LEN] = "";
    json_object *info;
    struct stat st;

    assert_int_equal(img_create(testdir_path(d, "disk.raw"), &o, err, sizeof(err)), 0);
    assert_int_equal(stat(testdir_path(d, "disk.raw"), &st), 0);
    assert_int_equal(st.st_size, GiB);
    assert_int_equal(st.st_blocks, 0);
    info = test_qemu_json(d, NULL, "info", testdir_path(d, "disk.raw"));
    assert_string_equal(test_jstr(info, "format"), "raw");
    assert_int_equal(test_jint(info, "virtual-size"), GiB);
    json_object_put(info);

    o.size = 1000;    /* rounded up to a sector, as qemu-img does */
    assert_int_equal(img_create(testdir_path(d, "odd.raw"), &o, err, sizeof(err)), 0);
    assert_int_equal(stat(testdir_path(d, "odd.raw"), &st), 0);
    assert_int_equal(st.st_size, 1024);
    test_assert_no_temp_files(d);
}

/* ---- refusals ---- */

typedef struct refusal {
    const char *what;
    const char *target;
    img_format format;
    uint64_t size;
    uint32_t cluster_size;
    const char *backing;          /* "@outside": a file outside the roots; "@long": 2000
                                   * bytes; "@dots": a 490-byte name of base.raw */
    img_format backing_format;
    bool no_roots;
    int want;
} refusal;

static const refusal refusals[] = {
    { "an existing target", "exists.qcow2", IMG_FORMAT_QCOW2, MiB, 0, NULL, 0, false, -EEXIST },
    { "an existing raw target", "exists.qcow2", IMG_FORMAT_RAW, MiB, 0, NULL, 0, false, -EEXIST },
    { "a backing file outside the roots", "t.qcow2", IMG_FORMAT_QCOW2, 0, 0, "@outside",
      IMG_FORMAT_RAW, false, -EPERM },
    { "a backing file without roots", "t.qcow2", IMG_FORMAT_QCOW2, 0, 0, "base.raw",
      IMG_FORMAT_RAW, true, -EPERM },
    { "a backing chain leaving the roots", "t.qcow2", IMG_FORMAT_QCOW2, 0, 0, "leaky.qcow2",
      IMG_FORMAT_QCOW2, false, -EPERM },
    { "a missing backing file", "t.qcow2", IMG_FORMAT_QCOW2, 0, 0, "missing.qcow2",
      IMG_FORMAT_QCOW2, false, -ENOENT },
    { "a backing file of another format", "t.qcow2", IMG_FORMAT_QCOW2, 0, 0, "base.raw",
      IMG_FORMAT_QCOW2, false, -EINVAL },
    { "size 0 without a backing file", "t.qcow2", IMG_FORMAT_QCOW2, 0, 0, NULL, 0, false,
      -EINVAL },
    { "a raw image of size 0", "t.raw", IMG_FORMAT_RAW, 0, 0, NULL, 0, false, -EINVAL },
    { "a raw image with a backing file", "t.raw", IMG_FORMAT_RAW, MiB, 0, "base.raw",
      IMG_FORMAT_RAW, false, -EINVAL },
    { "cluster size 1000", "t.qcow2", IMG_FORMAT_QCOW2, MiB, 1000, NULL, 0, false, -EINVAL },
    { "cluster size 256", "t.qcow2", IMG_FORMAT_QCOW2, MiB, 256, NULL, 0, false, -EINVAL },
    { "cluster size 4 MiB", "t.qcow2", IMG_FORMAT_QCOW2, MiB, 4 << 20, NULL, 0, false,
      -EINVAL },
    { "a backing name of 2000 bytes", "t.qcow2", IMG_FORMAT_QCOW2, 0, 0, "@long",
      IMG_FORMAT_RAW, false, -ENAMETOOLONG },
    { "a backing name that does not fit in a 512-byte header cluster", "t.qcow2",
      IMG_FORMAT_QCOW2, 0, 512, "@dots", IMG_FORMAT_RAW, false, -ENAMETOOLONG },
    { "1 TiB in 512-byte clusters (an L1 table of 256 MiB)", "t.qcow2", IMG_FORMAT_QCOW2, TiB,
      512, NULL, 0, false, -EFBIG },
    { "more than 2^61 bytes", "t.qcow2", IMG_FORMAT_QCOW2, (UINT64_C(1) << 61) + 512, 2 << 20,
      NULL, 0, false, -EFBIG },
    { "a raw image of more than 2^61 bytes", "t.raw", IMG_FORMAT_RAW, UINT64_MAX, 0, NULL, 0,
      false, -EFBIG },
    { "a target in a missing directory", "nodir/t.qcow2", IMG_FORMAT_QCOW2, MiB, 0, NULL, 0,
      false, -ENOENT },
};

typedef struct refusal_env {
    char outside_dir[PATH_MAX];   /* beside the test's dir, outside the roots; remove_dirs
                                   * removes it */
    char outside[PATH_MAX];       /* a raw image in it */
    char long_name[2001];
    char dots[600];
} refusal_env;

static void setup_refusals(const testdir *d, refusal_env *env)
{
    snprintf(env->outside_dir, sizeof(env->outside_dir), "%s.outside", d->path);
    snprintf(env->outside, sizeof(env->outside), "%s/out.raw", env->outside_dir);
    assert_int_equal(mkdir(env->outside_dir, 0700), 0);
    write_pattern(env->outside, MiB, 1);
    write_pattern(testdir_path(d, "base.raw"), MiB, 2);
    write_pattern(testdir_path(d, "exists.qcow2"), 4096, 3);
    test_run("qemu-img", "create", "-q", "-f", "qcow2", "-b", env->outside, "-F", "raw",
             testdir_path(d, "leaky.qcow2"), NULL);
    memset(env->long_name, 'a', 2000);
    env->long_name[2000] = '\0';
    env->dots[0] = '\0';
    for (int k = 0; k < 241; k++)
        strcat(env->dots, "./");
    strcat(env->dots, "base.raw");
}

static const char *refusal_backing(const refusal *t, const refusal_env *env)
{
    if (!t->backing)
        return NULL;
    if (strcmp(t->backing, "@outside") == 0)
        return env->outside;
    if (strcmp(t->backing, "@long") == 0)
        return env->long_name;
    if (strcmp(t->backing, "@dots") == 0)
        return env->dots;
    return t->backing;
}

static void creations_that_must_be_refused_leave_nothing_behind(void **state)
{
    testdir *d = *state;
    const char *roots[] = { d->path, NULL };
    refusal_env env;
    size_t before_len, after_len;
    uint8_t *before, *after;

    setup_refusals(d, &env);
    before = test_read_file(testdir_path(d, "exists.qcow2"), &before_len);
    for (size_t k = 0; k < sizeof(refusals) / sizeof(refusals[0]); k++) {
        const refusal *t = &refusals[k];
        img_create_options o = { .format = t->format, .size = t->size,
                                 .cluster_size = t->cluster_size,
                                 .backing_file = refusal_backing(t, &env),
                                 .backing_format = t->backing_format,
                                 .roots = t->no_roots ? NULL : roots };
        char err[ERR_LEN] = "";
        int r = img_create(testdir_path(d, t->target), &o, err, sizeof(err));

        if (r != t->want)
            print_message("%s: got %d (%s), want %d\n", t->what, r, err, t->want);
        assert_int_equal(r, t->want);
        assert_true(err[0] != '\0');
        if (t->want != -EEXIST)
            assert_false(exists(testdir_path(d, t->target)));
        test_assert_no_temp_files(d);
    }
    after = test_read_file(testdir_path(d, "exists.qcow2"), &after_len);
    assert_int_equal(after_len, before_len);
    assert_memory_equal(after, before, before_len);
    free(before);
    free(after);

    /* The name that does not fit in 512 bytes fits in 64 KiB and resolves. */
    overlay(d, "dots.qcow2", env.dots, IMG_FORMAT_RAW);
    assert_clean(d, testdir_path(d, "dots.qcow2"));
}

/* Fault table: the image creation fails where the file is sized (a file
 * size limit makes ftruncate fail with EFBIG), after the temp file exists. */
static void a_failure_after_the_temp_file_exists_leaves_nothing_behind(void **state)
{
    static const struct {
        const char *name;
        img_format format;
        uint64_t size;
        uint32_t cs;
    } faults[] = {
        { "f.raw", IMG_FORMAT_RAW, GiB, 0 },
        { "f1.qcow2", IMG_FORMAT_QCOW2, TiB, 4096 },         /* 4 MiB of L1 */
        { "f2.qcow2", IMG_FORMAT_QCOW2, GiB, 2 << 20 },      /* 4 clusters of 2 MiB */
    };
    testdir *d = *state;
    struct rlimit old, lim = { .rlim_cur = MiB, .rlim_max = RLIM_INFINITY };
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);

    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim.rlim_max = old.rlim_max;
    for (size_t k = 0; k < sizeof(faults) / sizeof(faults[0]); k++) {
        img_create_options o = { .format = faults[k].format, .size = faults[k].size,
                                 .cluster_size = faults[k].cs };
        char err[ERR_LEN] = "";
        int r;

        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        r = img_create(testdir_path(d, faults[k].name), &o, err, sizeof(err));
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        assert_int_equal(r, -EFBIG);
        assert_false(exists(testdir_path(d, faults[k].name)));
        test_assert_no_temp_files(d);
    }
    signal(SIGXFSZ, old_handler);
    /* Without the limit the same creations succeed. */
    for (size_t k = 0; k < sizeof(faults) / sizeof(faults[0]); k++) {
        img_create_options o = { .format = faults[k].format, .size = faults[k].size,
                                 .cluster_size = faults[k].cs };
        char err[ERR_LEN] = "";

        assert_int_equal(img_create(testdir_path(d, faults[k].name), &o, err, sizeof(err)), 0);
    }
}

/* ---- img_check on images qemu-img made ---- */

static void qcreate(const testdir *d, const char *name, const char *opts, uint64_t size)
{
    test_run("qemu-img", "create", "-q", "-f", "qcow2", "-o", opts, testdir_path(d, name),
             test_decimal(size), NULL);
}

static void img_check_agrees_with_qemu_on_every_refcount_width(void **state)
{
    testdir *d = *state;

    for (unsigned bits = 1; bits <= 64; bits *= 2) {
        char opts[64], name[32];

        snprintf(opts, sizeof(opts), "refcount_bits=%u,cluster_size=4096", bits);
        snprintf(name, sizeof(name), "rc%u.qcow2", bits);
        qcreate(d, name, opts, 16 * MiB);
        /* Discards of single clusters leave refcount 0 inside bytes of
         * narrow refcounts, so that a wrong bit order would show. */
        test_qemu_io(testdir_path(d, name),
                     (const char *const[]){ "write -P 1 0 1M", "discard 12k 4k",
                                            "discard 40k 8k", "discard 84k 4k",
                                            "write -P 2 8M 100k", "write -z 9M 64k",
                                            "write -z 0 8k", NULL });
        assert_true(check_both(d, testdir_path(d, name)).allocated_clusters > 200);
        assert_clean(d, testdir_path(d, name));
    }
}

static void img_check_agrees_with_qemu_on_compressed_images(void **state)
{
    testdir *d = *state;
    static const uint32_t sizes[] = { 512, 4096, 65536, 2 << 20 };

    write_pattern(testdir_path(d, "src.raw"), 3 * MiB, 5);
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        char opts[64];
        img_check_result r;

        snprintf(opts, sizeof(opts), "cluster_size=%u", sizes[k]);
        test_run("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", opts,
                 testdir_path(d, "src.raw"), testdir_path(d, "c.qcow2"), NULL);
        /* Rewriting some compressed clusters frees parts of host clusters
         * that other compressed clusters still share. */
        test_qemu_io(testdir_path(d, "c.qcow2"),
                     (const char *const[]){ "write -P 9 64k 8k", NULL });
        r = check_both(d, testdir_path(d, "c.qcow2"));
        assert_true(r.allocated_clusters > 0);
        assert_true(r.fragmented_clusters > 0);    /* compressed clusters count as such */
        assert_clean(d, testdir_path(d, "c.qcow2"));
        unlink(testdir_path(d, "c.qcow2"));
    }
}

static void img_check_agrees_with_qemu_on_cluster_sizes_versions_and_zero_clusters(void **state)
{
    testdir *d = *state;
    static const char *const opts[] = { "cluster_size=512", "cluster_size=2M",
                                        "compat=0.10", "lazy_refcounts=on" };

    for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
        qcreate(d, "z.qcow2", opts[k], 32 * MiB);
        /* Zeroing data keeps its cluster (a zero flag with an offset) in v3. */
        test_qemu_io(testdir_path(d, "z.qcow2"),
                     (const char *const[]){ "write -P 1 0 4M", "write -z 1M 2M",
                                            "write -z 20M 4M", "write -P 2 30M 1M",
                                            "write -P 3 2M 64k", NULL });
        assert_clean(d, testdir_path(d, "z.qcow2"));
        unlink(testdir_path(d, "z.qcow2"));
    }
}

static void img_check_agrees_with_qemu_on_snapshots_bitmaps_and_chains(void **state)
{
    testdir *d = *state;
    char s[PATH_MAX];

    testdir_path_into(s, d, "s.qcow2");
    qcreate(d, "s.qcow2", "cluster_size=65536", 8 * MiB);
    test_qemu_io(s, (const char *const[]){ "write -P 1 0 2M", NULL });
    test_run("qemu-img", "snapshot", "-c", "one", s, NULL);
    test_qemu_io(s, (const char *const[]){ "write -P 2 1M 2M", NULL });
    test_run("qemu-img", "snapshot", "-c", "two", s, NULL);
    test_qemu_io(s, (const char *const[]){ "write -P 3 0 512k", NULL });
    assert_clean(d, s);
    /* Enabled persistent bitmaps record the writes that follow. */
    test_run("qemu-img", "bitmap", "--add", s, "b0", NULL);
    test_run("qemu-img", "bitmap", "--add", "-g", "512k", s, "b1", NULL);
    test_qemu_io(s, (const char *const[]){ "write -P 4 4M 1M", NULL });
    assert_clean(d, s);

    test_run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "s.qcow2", "-F", "qcow2",
             testdir_path(d, "top.qcow2"), NULL);
    test_qemu_io(testdir_path(d, "top.qcow2"),
                 (const char *const[]){ "write -P 5 1M 64k", "write -z 6M 1M", NULL });
    assert_int_equal(check_both(d, testdir_path(d, "top.qcow2")).allocated_clusters, 1);
    assert_clean(d, testdir_path(d, "top.qcow2"));
}

/* ---- img_check on damaged images ---- */

static uint64_t be64_read(int fd, uint64_t off)
{
    uint8_t b[8];
    uint64_t v = 0;

    assert_int_equal(pread(fd, b, 8, (off_t)off), 8);
    for (int k = 0; k < 8; k++)
        v = v << 8 | b[k];
    return v;
}

static uint32_t be32_read(int fd, uint64_t off)
{
    uint8_t b[4];

    assert_int_equal(pread(fd, b, 4, (off_t)off), 4);
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static void be64_write(int fd, uint64_t off, uint64_t v)
{
    uint8_t b[8];

    for (int k = 7; k >= 0; k--, v >>= 8)
        b[k] = (uint8_t)v;
    assert_int_equal(pwrite(fd, b, 8, (off_t)off), 8);
}

static void be16_write(int fd, uint64_t off, uint16_t v)
{
    uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };

    assert_int_equal(pwrite(fd, b, 2, (off_t)off), 2);
}

/* Where things are in a small qemu-img image with 64 KiB clusters and
 * 16-bit refcounts, after data was written at guest offset 0. */
typedef struct layout {
    int fd;
    uint64_t cs;
    uint64_t refblock;            /* the first refcount block */
    uint64_t l1, l2;              /* the L1 table; the first L2 table */
    uint64_t data;                /* the first data cluster */
} layout;

static layout find_layout(const char *path)
{
    layout l = { .fd = open(path, O_RDWR | O_CLOEXEC) };

    assert_true(l.fd >= 0);
    l.cs = UINT64_C(1) << be32_read(l.fd, 20);
    l.refblock = be64_read(l.fd, be64_read(l.fd, 48)) & OFFSET_MASK;
    l.l1 = be64_read(l.fd, 40);
    l.l2 = be64_read(l.fd, l.l1) & OFFSET_MASK;
    l.data = be64_read(l.fd, l.l2) & OFFSET_MASK;
    assert_int_equal(l.cs, 65536);
    assert_true(l.refblock && l.l2 && l.data);
    return l;
}

static void set_refcount(const layout *l, uint64_t host, uint16_t v)
{
    be16_write(l->fd, l->refblock + 2 * (host / l->cs), v);
}

static void damage_header_refcount(const layout *l)
{
    set_refcount(l, 0, 2);
}

static void damage_unreferenced_cluster(const layout *l)
{
    struct stat st;

    assert_int_equal(fstat(l->fd, &st), 0);
    assert_int_equal(ftruncate(l->fd, st.st_size + (off_t)l->cs), 0);
    set_refcount(l, (uint64_t)st.st_size, 1);
}

static void damage_l2_refcount(const layout *l)
{
    set_refcount(l, l->l2, 0);
}

static void damage_copied_flag(const layout *l)
{
    be64_write(l->fd, l->l2 + 8, be64_read(l->fd, l->l2 + 8) & ~COPIED_FLAG);
}

static void damage_shared_data(const layout *l)
{
    set_refcount(l, l->data, 2);
}

static void damage_offset_past_the_end(const layout *l)
{
    be64_write(l->fd, l->l2 + 8 * 10, (UINT64_C(1) << 40) | COPIED_FLAG);    /* was unallocated */
}

static void damage_refblock_pointer(const layout *l)
{
    uint64_t reftable = be64_read(l->fd, 48);

    be64_write(l->fd, reftable + 8, UINT64_C(1) << 40);    /* a second block, past the end */
}

static void img_check_counts_damage_as_qemu_img_check_does(void **state)
{
    static const struct {
        const char *what;
        void (*damage)(const layout *l);
        uint64_t leaks, corruptions;
    } cases[] = {
        { "the header's refcount one too high", damage_header_refcount, 1, 0 },
        { "an unreferenced cluster with refcount 1", damage_unreferenced_cluster, 1, 0 },
        /* The refcount, and the L1 entry's COPIED flag that now lies. */
        { "an L2 table with refcount 0", damage_l2_refcount, 0, 2 },
        { "a COPIED flag cleared in an L2 entry", damage_copied_flag, 0, 1 },
        /* A leak, and a COPIED flag set on a cluster with refcount 2. */
        { "a data cluster with refcount 2", damage_shared_data, 1, 1 },
        /* Past the end, and a COPIED flag on refcount 0. */
        { "an L2 entry past the end of the file", damage_offset_past_the_end, 0, 2 },
        { "a refcount block past the end of the file", damage_refblock_pointer, 0, 1 },
    };
    testdir *d = *state;
    char path[PATH_MAX];

    testdir_path_into(path, d, "bad.qcow2");
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        img_check_result r;
        layout l;

        qcreate(d, "bad.qcow2", "cluster_size=65536", 16 * MiB);
        test_qemu_io(path, (const char *const[]){ "write -P 1 0 256k", NULL });
        l = find_layout(path);
        cases[k].damage(&l);
        close(l.fd);
        r = check_both(d, path);
        if (r.leaked_clusters != cases[k].leaks || r.corruptions != cases[k].corruptions)
            print_message("%s: leaks %llu corruptions %llu (%s)\n", cases[k].what,
                          (unsigned long long)r.leaked_clusters,
                          (unsigned long long)r.corruptions, r.first_problem);
        assert_int_equal(r.leaked_clusters, cases[k].leaks);
        assert_int_equal(r.corruptions, cases[k].corruptions);
        assert_true(r.first_problem[0] != '\0');
        assert_int_not_equal(test_qemu_img_check(d, path).status, 0);
        unlink(path);
    }
}

static void a_dirty_image_is_checked_with_a_note_that_refcounts_may_be_stale(void **state)
{
    testdir *d = *state;
    char path[PATH_MAX];
    img_check_result r;
    layout l;

    testdir_path_into(path, d, "dirty.qcow2");
    /* Clean refcounts under a dirty bit: nothing counted, only the note. */
    qcreate(d, "dirty.qcow2", "cluster_size=65536,lazy_refcounts=on", 16 * MiB);
    test_qemu_io(path, (const char *const[]){ "write -P 1 0 256k", NULL });
    l = find_layout(path);
    be64_write(l.fd, 72, be64_read(l.fd, 72) | 1);
    close(l.fd);
    r = our_check(path);
    assert_int_equal(r.leaked_clusters, 0);
    assert_int_equal(r.corruptions, 0);
    assert_non_null(strstr(r.first_problem, "dirty"));
    unlink(path);

    /* Stale refcounts: qemu-io dies before it writes them. */
    qcreate(d, "dirty.qcow2", "cluster_size=65536,lazy_refcounts=on", 16 * MiB);
    assert_int_not_equal(test_run_status(NULL, "qemu-io", "-f", "qcow2", "-c", "write -P 1 0 1M",
                                         "-c", "abort", path, NULL),
                         0);
    r = check_both(d, path);
    assert_true(r.corruptions >= 16);
    assert_non_null(strstr(r.first_problem, "dirty"));
}

static void img_check_refuses_what_it_cannot_check(void **state)
{
    testdir *d = *state;
    img_check_result r;
    char err[ERR_LEN] = "";

    write_pattern(testdir_path(d, "plain.raw"), MiB, 1);
    assert_int_equal(img_check(testdir_path(d, "plain.raw"), &r, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "magic"));
    assert_int_equal(img_check(testdir_path(d, "none.qcow2"), &r, err, sizeof(err)), -ENOENT);
}

/* ---- resizing images ---- */

static int resize(const char *path, img_format fmt, uint64_t size)
{
    char err[ERR_LEN] = "";
    int r = img_resize(path, fmt, size, err, sizeof(err));

    if (r != 0)
        print_message("img_resize %s: %d %s\n", path, r, err);
    return r;
}

static uint64_t qemu_virtual_size(const testdir *d, const char *path)
{
    json_object *info = test_qemu_json(d, NULL, "info", path);
    uint64_t size = test_jint(info, "virtual-size");

    json_object_put(info);
    return size;
}

static uint32_t l1_entries(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    uint32_t n;

    assert_true(fd >= 0);
    n = be32_read(fd, 36);
    close(fd);
    return n;
}

/* len bytes at off read as zeros through img_read. */
static void assert_zeros(const testdir *d, const char *path, uint64_t off, size_t len)
{
    img *i = open_image(d, path, IMG_FORMAT_QCOW2);
    uint8_t *buf = malloc(len), *zeros = calloc(1, len);

    assert_non_null(buf);
    assert_non_null(zeros);
    assert_int_equal(img_read(i, off, buf, len), 0);
    assert_memory_equal(buf, zeros, len);
    free(buf);
    free(zeros);
    img_close(i);
}

/* The 64 KiB at off read as pattern p through img_read. */
static void assert_tail_pattern(const testdir *d, const char *path, uint64_t off, uint8_t p)
{
    img *i = open_image(d, path, IMG_FORMAT_QCOW2);
    uint8_t buf[4096];

    for (uint64_t k = 0; k < 64 * KiB; k += sizeof(buf)) {
        assert_int_equal(img_read(i, off + k, buf, sizeof(buf)), 0);
        for (size_t j = 0; j < sizeof(buf); j++)
            assert_int_equal(buf[j], p);
    }
    img_close(i);
}

/* An image with data at its start and its end grows: QEMU and img_check
 * find it clean, the old data reads back, the new area reads as zeros and
 * takes writes at its very end. */
static void grown_image_case(const testdir *d, uint64_t size, uint32_t cs, uint64_t new_size,
                             bool new_l1)
{
    char path[PATH_MAX], before[PATH_MAX], cmd[2][64];
    uint8_t *want;
    size_t len;
    uint32_t old_l1;

    testdir_path_into(path, d, "g.qcow2");
    testdir_path_into(before, d, "before.raw");
    create_qcow2(path, size, cs);
    snprintf(cmd[0], sizeof(cmd[0]), "write -P 0x5a 0 %llu", (unsigned long long)(size / 2));
    snprintf(cmd[1], sizeof(cmd[1]), "write -P 0xa5 %llu 4k", (unsigned long long)(size - 4096));
    test_qemu_io(path, (const char *const[]){ cmd[0], cmd[1], NULL });
    test_run("qemu-img", "convert", "-f", "qcow2", "-O", "raw", path, before, NULL);
    old_l1 = l1_entries(path);

    assert_int_equal(resize(path, IMG_FORMAT_QCOW2, new_size), 0);
    assert_clean(d, path);
    assert_int_equal(qemu_virtual_size(d, path), new_size);
    assert_true(l1_entries(path) >= old_l1);
    if (new_l1)
        assert_true((uint64_t)l1_entries(path) * 8 > cs);    /* had to leave its cluster */
    /* qemu-img compare reads the larger image's extra bytes as zeros. */
    test_run("qemu-img", "compare", "-q", "-f", "raw", "-F", "qcow2", before, path, NULL);
    want = test_read_file(before, &len);
    assert_int_equal(len, size);
    assert_reads(d, path, IMG_FORMAT_QCOW2, want, len);
    free(want);
    assert_zeros(d, path, size, 64 * KiB);
    assert_zeros(d, path, new_size - 64 * KiB, 64 * KiB);

    snprintf(cmd[0], sizeof(cmd[0]), "write -P 0x33 %llu 64k",
             (unsigned long long)(new_size - 64 * KiB));
    test_qemu_io(path, (const char *const[]){ cmd[0], NULL });
    assert_clean(d, path);
    assert_tail_pattern(d, path, new_size - 64 * KiB, 0x33);
    unlink(path);
    unlink(before);
}

static void qcow2_images_grow_in_place_and_keep_their_data(void **state)
{
    static const struct {
        uint64_t size;
        uint32_t cs;
        uint64_t new_size;
        bool new_l1;
    } cases[] = {
        { MiB, 65536, 64 * MiB, false },          /* the L1's one entry still covers it */
        { MiB, 65536, 10 * GiB, false },          /* 20 entries, in the L1's cluster */
        { MiB, 512, 100 * MiB, true },            /* 3200 entries: 50 new clusters */
        { 4 * MiB, 512, GiB, true },              /* 512 clusters, new refcount blocks */
        { 16 * MiB, 4096, TiB + 512, true },      /* not a multiple of the cluster size */
    };

    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
        grown_image_case(*state, cases[k].size, cases[k].cs, cases[k].new_size,
                         cases[k].new_l1);
}

static void a_raw_image_grows_and_keeps_its_data(void **state)
{
    testdir *d = *state;
    char path[PATH_MAX];
    uint8_t *want, *got;
    size_t len, got_len;

    testdir_path_into(path, d, "g.raw");
    write_pattern(path, MiB + 100, 3);
    want = test_read_file(path, &len);
    assert_int_equal(resize(path, IMG_FORMAT_RAW, 3 * MiB + 1), 0);
    got = test_read_file(path, &got_len);
    assert_int_equal(got_len, 3 * MiB + 512);    /* rounded up to a sector */
    assert_memory_equal(got, want, len);
    for (size_t k = len; k < got_len; k++)
        assert_int_equal(got[k], 0);
    assert_int_equal(resize(path, IMG_FORMAT_RAW, 3 * MiB + 512), 0);    /* same size */
    free(want);
    free(got);
}

static void set_header_bits(const char *path, uint64_t bits)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);

    assert_true(fd >= 0);
    be64_write(fd, 72, be64_read(fd, 72) | bits);
    close(fd);
}

/* Refusal table: each image, the size asked and the error; the file must
 * be left byte for byte as it was. */
static void resizes_that_must_be_refused_leave_the_image_unchanged(void **state)
{
    testdir *d = *state;
    char q[PATH_MAX], snap[PATH_MAX], corrupt[PATH_MAX], dirty[PATH_MAX], raw[PATH_MAX];
    char full[PATH_MAX];

    testdir_path_into(q, d, "q.qcow2");
    testdir_path_into(snap, d, "snap.qcow2");
    testdir_path_into(corrupt, d, "corrupt.qcow2");
    testdir_path_into(dirty, d, "dirty.qcow2");
    testdir_path_into(raw, d, "r.raw");
    testdir_path_into(full, d, "full.qcow2");
    create_qcow2(q, 64 * MiB, 512);
    test_qemu_io(q, (const char *const[]){ "write -P 1 0 1M", NULL });
    copy_file(q, corrupt);
    set_header_bits(corrupt, 2);
    copy_file(q, dirty);
    set_header_bits(dirty, 1);
    copy_file(q, snap);
    test_run("qemu-img", "snapshot", "-c", "one", snap, NULL);
    write_pattern(raw, MiB, 2);
    /* 62 of the 64 refcount blocks its one reftable cluster can name are
     * in use: 2 GiB needs an L1 of 1024 clusters more than they count. */
    qcreate(d, "full.qcow2", "cluster_size=512", 8 * MiB);
    test_qemu_io(full, (const char *const[]){ "write -P 1 0 7680k", NULL });

    const struct {
        const char *path;
        img_format fmt;
        uint64_t size;
        int error;
        const char *says;
    } cases[] = {
        { q, IMG_FORMAT_QCOW2, 32 * MiB, -EINVAL, "shrinking" },
        { raw, IMG_FORMAT_RAW, MiB - 512, -EINVAL, "shrinking" },
        { q, IMG_FORMAT_QCOW2, (UINT64_C(1) << 61) + 1, -EFBIG, "2^61" },
        { q, IMG_FORMAT_QCOW2, TiB, -EFBIG, "L1 table" },    /* 256 MiB of L1 */
        { corrupt, IMG_FORMAT_QCOW2, GiB, -EACCES, "corrupt" },
        { dirty, IMG_FORMAT_QCOW2, GiB, -EBUSY, "dirty" },
        { snap, IMG_FORMAT_QCOW2, GiB, -ENOTSUP, "snapshots" },
        { full, IMG_FORMAT_QCOW2, 2 * GiB, -ENOTSUP, "refcount table" },
        { raw, IMG_FORMAT_QCOW2, GiB, -EINVAL, "magic" },
        { testdir_path(d, "none.qcow2"), IMG_FORMAT_QCOW2, GiB, -ENOENT, "none.qcow2" },
    };

    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        size_t before_len = 0, after_len;
        uint8_t *before = exists(cases[k].path) ? test_read_file(cases[k].path, &before_len)
                                                : NULL, *after;
        char err[ERR_LEN] = "";
        int r = img_resize(cases[k].path, cases[k].fmt, cases[k].size, err, sizeof(err));

        if (r != cases[k].error || !strstr(err, cases[k].says))
            print_message("case %zu: %d %s\n", k, r, err);
        assert_int_equal(r, cases[k].error);
        assert_non_null(strstr(err, cases[k].says));
        if (!before)
            continue;
        after = test_read_file(cases[k].path, &after_len);
        assert_int_equal(after_len, before_len);
        assert_memory_equal(after, before, before_len);
        free(before);
        free(after);
    }
    assert_clean(d, full);
}

/* A failure where the file is extended (a file size limit makes ftruncate
 * fail with EFBIG) leaves the image clean and of its old size. */
static void a_resize_that_fails_to_extend_the_file_leaves_the_image_clean(void **state)
{
    testdir *d = *state;
    char path[PATH_MAX];
    struct rlimit old, lim = { .rlim_cur = 2 * MiB };
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    int r;

    testdir_path_into(path, d, "f.qcow2");
    create_qcow2(path, MiB, 512);
    test_qemu_io(path, (const char *const[]){ "write -P 7 0 1M", NULL });
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim.rlim_max = old.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    r = resize(path, IMG_FORMAT_QCOW2, 8 * GiB);    /* 2 MiB of L1 */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_handler);
    assert_int_equal(r, -EFBIG);
    assert_clean(d, path);
    assert_int_equal(qemu_virtual_size(d, path), MiB);
    assert_int_equal(resize(path, IMG_FORMAT_QCOW2, 8 * GiB), 0);
    assert_clean(d, path);
}

#define T(f) cmocka_unit_test_setup_teardown(f, testdir_setup, remove_dirs)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(new_qcow2_images_of_every_size_and_cluster_size_pass_qemu_img_check),
        T(qemu_io_writes_into_a_new_image_and_img_read_returns_its_data),
        T(an_overlay_of_a_qcow2_master_reads_it_and_leaves_it_unchanged),
        T(an_overlay_of_a_raw_base_takes_its_size_and_reads_its_data),
        T(an_image_with_a_backing_file_may_be_larger_than_it),
        T(a_new_raw_image_is_sparse_and_of_the_size_asked),
        T(creations_that_must_be_refused_leave_nothing_behind),
        T(a_failure_after_the_temp_file_exists_leaves_nothing_behind),
        T(img_check_agrees_with_qemu_on_every_refcount_width),
        T(img_check_agrees_with_qemu_on_compressed_images),
        T(img_check_agrees_with_qemu_on_cluster_sizes_versions_and_zero_clusters),
        T(img_check_agrees_with_qemu_on_snapshots_bitmaps_and_chains),
        T(img_check_counts_damage_as_qemu_img_check_does),
        T(a_dirty_image_is_checked_with_a_note_that_refcounts_may_be_stale),
        T(img_check_refuses_what_it_cannot_check),
        T(qcow2_images_grow_in_place_and_keep_their_data),
        T(a_raw_image_grows_and_keeps_its_data),
        T(resizes_that_must_be_refused_leave_the_image_unchanged),
        T(a_resize_that_fails_to_extend_the_file_leaves_the_image_clean),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
