/* test_storage_writer.c: images written from a stream of ascending extents
 * (img_writer_*). Each stream is random (seeded, the seed printed on a
 * failure): unaligned extents from 1 byte to several L2 spans, gaps, zero
 * runs, a last byte. The image must read back (img_read) as an in-memory
 * model of the stream, compare equal to a raw file of the model with
 * `qemu-img compare`, pass `qemu-img check` and img_check with no leak, and
 * store no all-zero cluster (a raw image: no all-zero block). Refusals
 * leave the directory as it was. */
#include <dirent.h>
#include <errno.h>
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

#include "storage/storage.h"
#include "tests/support/qemu_img.h"
#include "tests/support/testdir.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define TiB (UINT64_C(1) << 40)
#define ERR_LEN 512
#define RAW_BLOCK 4096u

/* ---- helpers ------------------------------------------------------------------ */

static bool exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

/* Entries of the test's dir other than "." and "..". */
static unsigned dir_entries(const testdir *d)
{
    DIR *dir = opendir(d->path);
    struct dirent *e;
    unsigned n = 0;

    assert_non_null(dir);
    while ((e = readdir(dir)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(dir);
    return n;
}

static void write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static img_writer *open_writer(const char *path, img_format format, uint64_t size, uint32_t cs)
{
    img_writer_options o = { .format = format, .size = size, .cluster_size = cs };
    img_writer *w = NULL;
    char err[ERR_LEN] = "";
    int r = img_writer_open(path, &o, &w, err, sizeof(err));

    if (r != 0)
        print_message("img_writer_open %s: %d %s\n", path, r, err);
    assert_int_equal(r, 0);
    assert_non_null(w);
    return w;
}

static void put_ok(img_writer *w, uint64_t off, const uint8_t *buf, size_t len)
{
    char err[ERR_LEN] = "";
    int r = img_writer_put(w, off, buf, len, err, sizeof(err));

    if (r != 0)
        print_message("put %zu bytes at %llu: %d %s\n", len, (unsigned long long)off, r, err);
    assert_int_equal(r, 0);
}

static void finish_ok(img_writer *w)
{
    char err[ERR_LEN] = "";
    int r = img_writer_finish(w, err, sizeof(err));

    if (r != 0)
        print_message("finish: %d %s\n", r, err);
    assert_int_equal(r, 0);
}

/* ---- the model of a stream ------------------------------------------------------ */

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static uint64_t below(uint64_t *s, uint64_t n)
{
    return n ? next_rand(s) % n : 0;
}

/* Random bytes, zeros, one odd byte among zeros, or one repeated byte. */
static void fill(uint64_t *s, uint8_t *p, size_t len)
{
    switch (below(s, 4)) {
    case 0:
        memset(p, 0, len);
        break;
    case 1:
        memset(p, 0, len);
        p[below(s, len)] = (uint8_t)(1 + below(s, 255));
        break;
    case 2:
        memset(p, (int)(1 + below(s, 255)), len);
        break;
    default:
        for (size_t k = 0; k < len; k++)
            p[k] = (uint8_t)next_rand(s);
    }
}

/* Lengths from 1 byte to a span and a half (cs * cs / 8 guest bytes). */
static uint64_t extent_length(uint64_t *s, uint32_t cs)
{
    uint64_t span = (uint64_t)cs * cs / 8, max = span + span / 2 < 4 * MiB ? span + span / 2 : 4 * MiB;

    switch (below(s, 6)) {
    case 0:
        return 1;
    case 1:
    case 2:
        return 1 + below(s, 2 * cs);
    case 3:
        return 1 + below(s, 8 * cs);
    case 4:
        return cs;
    default:
        return 1 + below(s, max);
    }
}

static uint64_t gap_length(uint64_t *s, uint32_t cs)
{
    uint64_t two_spans = (uint64_t)cs * cs / 4;

    switch (below(s, 4)) {
    case 0:
    case 1:
        return 0;
    case 2:
        return 1 + below(s, cs);
    default:
        return below(s, two_spans < MiB ? two_spans : MiB);
    }
}

/* Streams random extents over [0, end) into w and model; when end is the
 * size, the last put is the last byte alone. */
static void stream(img_writer *w, uint8_t *model, uint64_t size, uint64_t end, uint32_t cs,
                   uint64_t seed)
{
    uint64_t s = seed, pos = 0, stop = end == size ? size - 1 : end;
    uint8_t *buf = malloc(4 * MiB);

    assert_non_null(buf);
    while (pos < stop) {
        uint64_t len = extent_length(&s, cs);

        pos += gap_length(&s, cs);
        if (pos >= stop)
            break;
        if (len > stop - pos)
            len = stop - pos;
        fill(&s, buf, (size_t)len);
        memcpy(model + pos, buf, (size_t)len);
        put_ok(w, pos, buf, (size_t)len);
        pos += len;
    }
    if (end == size) {
        buf[0] = 0xa5;
        model[size - 1] = 0xa5;
        put_ok(w, size - 1, buf, 1);
    }
    free(buf);
}

/* Granules of model (cluster_size bytes) with a byte that is not zero. */
static uint64_t nonzero_granules(const uint8_t *model, uint64_t size, uint64_t granule)
{
    uint64_t n = 0;

    for (uint64_t at = 0; at < size; at += granule) {
        uint64_t len = size - at < granule ? size - at : granule;

        for (uint64_t k = 0; k < len; k++)
            if (model[at + k]) {
                n++;
                break;
            }
    }
    return n;
}

/* ---- what the image must be --------------------------------------------------------- */

static void assert_reads_as(const char *path, img_format format, const uint8_t *model, uint64_t size)
{
    img_open_options o = { 0 };
    char err[ERR_LEN] = "";
    img *i = NULL;
    uint8_t *buf = malloc(MiB);
    int r = img_open(path, format, &o, &i, err, sizeof(err));

    if (r != 0)
        print_message("img_open %s: %d %s\n", path, r, err);
    assert_int_equal(r, 0);
    assert_non_null(buf);
    assert_int_equal(img_virtual_size(i), size);
    for (uint64_t at = 0; at < size; at += MiB) {
        size_t len = (size_t)(size - at < MiB ? size - at : MiB);

        assert_int_equal(img_read(i, at, buf, len), 0);
        for (size_t k = 0; k < len; k++)
            if (buf[k] != model[at + k]) {
                print_message("%s: byte %llu reads %u, the stream gave %u\n", path,
                              (unsigned long long)(at + k), buf[k], model[at + k]);
                fail();
            }
    }
    img_close(i);
    free(buf);
}

static void assert_qcow2_stores_only_data(const testdir *d, const char *path, const uint8_t *model,
                                          uint64_t size, uint32_t cs)
{
    uint64_t want = nonzero_granules(model, size, cs);
    img_check_result res;
    char err[ERR_LEN] = "";

    if (img_check(path, &res, err, sizeof(err)) != 0)
        fail_msg("img_check %s: %s", path, err);
    if (res.leaked_clusters || res.corruptions)
        print_message("img_check %s: %s\n", path, res.first_problem);
    assert_int_equal(res.leaked_clusters, 0);
    assert_int_equal(res.corruptions, 0);
    assert_int_equal(res.allocated_clusters, want);
    test_assert_qemu_clean(d, path);
    assert_int_equal(test_qemu_img_check(d, path).allocated, want);
}

/* Holes where the model has all-zero blocks: the file takes no more than
 * its data blocks (and a little for the filesystem's extent tree). */
static void assert_raw_is_sparse(const char *path, const uint8_t *model, uint64_t size)
{
    uint64_t data = nonzero_granules(model, size, RAW_BLOCK) * RAW_BLOCK;
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    assert_int_equal((uint64_t)st.st_size, size);
    if ((uint64_t)st.st_blocks * 512 > data + 64 * KiB)
        print_message("%s: %llu bytes on disk for %llu bytes of data blocks\n", path,
                      (unsigned long long)st.st_blocks * 512, (unsigned long long)data);
    assert_true((uint64_t)st.st_blocks * 512 <= data + 64 * KiB);
    if (data + 64 * KiB < size)
        assert_true((uint64_t)st.st_blocks * 512 < size);
}

/* Everything a user would check of an image the stream wrote. */
static void assert_image_is_model(const testdir *d, const char *name, img_format format,
                                  const uint8_t *model, uint64_t size, uint32_t cs)
{
    char path[PATH_MAX], raw[PATH_MAX];

    testdir_path_into(path, d, name);
    testdir_path_into(raw, d, "model.raw");
    assert_reads_as(path, format, model, size);
    write_file(raw, model, (size_t)size);
    test_assert_qemu_identical(path, img_format_name(format), raw, "raw");
    unlink(raw);
    if (format == IMG_FORMAT_QCOW2)
        assert_qcow2_stores_only_data(d, path, model, size, cs);
    else
        assert_raw_is_sparse(path, model, size);
    test_assert_no_temp_files(d);
}

/* A random stream over [0, end) of an image of size bytes, written and checked. */
static void stream_case(const testdir *d, img_format format, uint64_t size, uint64_t end, uint32_t cs,
                        uint64_t seed)
{
    const char *name = format == IMG_FORMAT_QCOW2 ? "s.qcow2" : "s.raw";
    uint32_t unit = format == IMG_FORMAT_RAW ? RAW_BLOCK : cs ? cs : 65536;
    char path[PATH_MAX];
    uint8_t *model = calloc(1, (size_t)size);
    img_writer *w;

    print_message("stream: %s size %llu end %llu cluster %u seed %llu\n", img_format_name(format),
                  (unsigned long long)size, (unsigned long long)end, cs, (unsigned long long)seed);
    assert_non_null(model);
    testdir_path_into(path, d, name);
    w = open_writer(path, format, size, cs);
    stream(w, model, size, end, unit, seed);
    finish_ok(w);
    assert_image_is_model(d, name, format, model, size, unit);
    unlink(path);
    free(model);
}

/* ---- streams ------------------------------------------------------------------------- */

static void qcow2_with_512_byte_clusters_reads_back_as_streamed_across_many_l2_spans(void **state)
{
    testdir *d = *state;

    /* L2 spans of 32 KiB: a 2 MiB image has 64 of them and a partial last one. */
    for (uint64_t seed = 1; seed <= 6; seed++)
        stream_case(d, IMG_FORMAT_QCOW2, 2 * MiB + 3 * 512, 2 * MiB + 3 * 512, 512, seed);
    /* Streams that end before the size, inside a cluster. */
    stream_case(d, IMG_FORMAT_QCOW2, 2 * MiB, MiB + 77, 512, 7);
    stream_case(d, IMG_FORMAT_QCOW2, 2 * MiB, 20000, 512, 8);
}

static void qcow2_with_64k_clusters_reads_back_as_streamed(void **state)
{
    testdir *d = *state;

    for (uint64_t seed = 11; seed <= 13; seed++)
        stream_case(d, IMG_FORMAT_QCOW2, 6 * MiB - 512, 6 * MiB - 512, 0, seed);
    stream_case(d, IMG_FORMAT_QCOW2, 4 * MiB, 3 * MiB + 100, 65536, 14);
}

static void qcow2_with_4k_and_2m_clusters_reads_back_as_streamed(void **state)
{
    testdir *d = *state;

    /* 4 KiB clusters: spans of 2 MiB, crossed within one put too. */
    stream_case(d, IMG_FORMAT_QCOW2, 9 * MiB + 512, 9 * MiB + 512, 4096, 21);
    stream_case(d, IMG_FORMAT_QCOW2, 5 * MiB, 5 * MiB, 2 * 1024 * 1024, 22);
}

static void raw_reads_back_as_streamed_with_holes_for_zero_blocks(void **state)
{
    testdir *d = *state;

    for (uint64_t seed = 31; seed <= 33; seed++)
        stream_case(d, IMG_FORMAT_RAW, 4 * MiB + 1536, 4 * MiB + 1536, 0, seed);
    stream_case(d, IMG_FORMAT_RAW, 4 * MiB, 2 * MiB + 5, 0, 34);
}

/* A stream whose extents are all whole clusters, one put each, some zero. */
static void whole_cluster_puts_are_stored_and_zero_ones_left_out(void **state)
{
    testdir *d = *state;
    const uint64_t size = 3 * MiB, cs = 65536;
    uint8_t *model = calloc(1, size);
    img_writer *w = open_writer(testdir_path(d, "c.qcow2"), IMG_FORMAT_QCOW2, size, 0);

    assert_non_null(model);
    for (uint64_t at = 0; at < size; at += cs)
        if ((at / cs) % 3 != 1)
            memset(model + at, (at / cs) % 3 == 0 ? 0 : (int)(at / cs), cs);
    for (uint64_t at = 0; at < size; at += cs)
        put_ok(w, at, model + at, cs);
    finish_ok(w);
    assert_image_is_model(d, "c.qcow2", IMG_FORMAT_QCOW2, model, size, (uint32_t)cs);
    free(model);
}

static void an_empty_stream_gives_a_valid_all_zero_image(void **state)
{
    testdir *d = *state;
    const uint64_t size = 10 * MiB + 1024;    /* asked for 10 MiB + 1000: whole sectors */
    uint8_t *model = calloc(1, size);

    assert_non_null(model);
    finish_ok(open_writer(testdir_path(d, "e.qcow2"), IMG_FORMAT_QCOW2, 10 * MiB + 1000, 0));
    assert_image_is_model(d, "e.qcow2", IMG_FORMAT_QCOW2, model, size, 65536);
    finish_ok(open_writer(testdir_path(d, "e512.qcow2"), IMG_FORMAT_QCOW2, 10 * MiB + 1000, 512));
    assert_image_is_model(d, "e512.qcow2", IMG_FORMAT_QCOW2, model, size, 512);
    finish_ok(open_writer(testdir_path(d, "e.raw"), IMG_FORMAT_RAW, 10 * MiB + 1000, 0));
    assert_image_is_model(d, "e.raw", IMG_FORMAT_RAW, model, size, 0);
    free(model);
}

/* ---- refusals -------------------------------------------------------------------------- */

static void an_existing_path_is_refused_and_left_untouched(void **state)
{
    testdir *d = *state;
    char path[PATH_MAX], err[ERR_LEN] = "";
    img_writer_options o = { .format = IMG_FORMAT_QCOW2, .size = MiB };
    img_writer *w = NULL;
    size_t len;
    uint8_t *got;

    testdir_path_into(path, d, "taken.qcow2");
    write_file(path, "mine", 4);
    assert_int_equal(img_writer_open(path, &o, &w, err, sizeof(err)), -EEXIST);
    assert_null(w);
    assert_non_null(strstr(err, path));
    got = test_read_file(path, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(got, "mine", 4);
    free(got);
    assert_int_equal(dir_entries(d), 1);
}

/* Each refused put leaves the writer as it was: the stream goes on. */
static void puts_that_go_back_overlap_or_pass_the_size_are_refused(void **state)
{
    static const struct {
        uint64_t off, len;
    } bad[] = {
        { 500, 10 },                    /* before the last extent */
        { 1050, 100 },                  /* inside it */
        { 1099, 10 },                   /* overlapping its last byte */
        { MiB - 10, 11 },               /* past the size */
        { MiB, 1 },                     /* at the size */
        { UINT64_MAX - 2, 10 },         /* offset + len overflows */
    };
    testdir *d = *state;
    uint8_t *model = calloc(1, MiB), data[200];
    img_writer *w = open_writer(testdir_path(d, "o.qcow2"), IMG_FORMAT_QCOW2, MiB, 4096);

    assert_non_null(model);
    memset(data, 0x5a, sizeof(data));
    put_ok(w, 1000, data, 100);
    memcpy(model + 1000, data, 100);
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        char err[ERR_LEN] = "";

        assert_int_equal(img_writer_put(w, bad[k].off, data, bad[k].len, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "o.qcow2"));
    }
    put_ok(w, 1100, data, 200);             /* right after the last extent */
    memcpy(model + 1100, data, 200);
    put_ok(w, MiB - 1, data, 1);
    model[MiB - 1] = 0x5a;
    finish_ok(w);
    assert_image_is_model(d, "o.qcow2", IMG_FORMAT_QCOW2, model, MiB, 4096);
    free(model);
}

static void bad_cluster_sizes_and_sizes_are_refused_and_leave_nothing(void **state)
{
    static const struct {
        img_format format;
        uint64_t size;
        uint32_t cs;
        int want;
        const char *says;
    } bad[] = {
        { IMG_FORMAT_QCOW2, MiB, 256, -EINVAL, "cluster size 256" },
        { IMG_FORMAT_QCOW2, MiB, 3000, -EINVAL, "cluster size 3000" },
        { IMG_FORMAT_QCOW2, MiB, 4 << 20, -EINVAL, "cluster size 4194304" },
        { IMG_FORMAT_QCOW2, 0, 0, -EINVAL, "size 0" },
        { IMG_FORMAT_RAW, 0, 0, -EINVAL, "size 0" },
        { IMG_FORMAT_QCOW2, TiB, 512, -EFBIG, "L1 table" },
        { IMG_FORMAT_QCOW2, UINT64_C(1) << 62, 0, -EFBIG, "too large" },
        { IMG_FORMAT_RAW, UINT64_C(1) << 62, 0, -EFBIG, "too large" },
    };
    testdir *d = *state;
    char path[PATH_MAX];

    testdir_path_into(path, d, "bad.img");
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        img_writer_options o = { .format = bad[k].format, .size = bad[k].size, .cluster_size = bad[k].cs };
        char err[ERR_LEN] = "";
        img_writer *w = NULL;

        assert_int_equal(img_writer_open(path, &o, &w, err, sizeof(err)), bad[k].want);
        assert_null(w);
        if (!strstr(err, bad[k].says) || !strstr(err, path))
            print_message("case %zu: '%s' should name %s and say '%s'\n", k, err, path, bad[k].says);
        assert_non_null(strstr(err, bad[k].says));
        assert_non_null(strstr(err, path));
        assert_int_equal(dir_entries(d), 0);
    }
}

static void a_path_that_appears_before_finish_is_kept_and_the_temp_file_removed(void **state)
{
    testdir *d = *state;
    char path[PATH_MAX], tmp[PATH_MAX], err[ERR_LEN] = "";
    uint8_t data[4096];
    img_writer *w;
    size_t len;
    uint8_t *got;

    testdir_path_into(path, d, "late.qcow2");
    w = open_writer(path, IMG_FORMAT_QCOW2, MiB, 0);
    snprintf(tmp, sizeof(tmp), "%s", img_writer_temp(w));
    assert_true(exists(tmp));
    memset(data, 0x77, sizeof(data));
    put_ok(w, 8192, data, sizeof(data));
    write_file(path, "theirs", 6);
    assert_int_equal(img_writer_finish(w, err, sizeof(err)), -EEXIST);
    assert_non_null(strstr(err, path));
    got = test_read_file(path, &len);
    assert_int_equal(len, 6);
    assert_memory_equal(got, "theirs", 6);
    free(got);
    assert_false(exists(tmp));
    assert_int_equal(dir_entries(d), 1);
}

static void abort_leaves_no_file_in_the_directory(void **state)
{
    testdir *d = *state;
    char tmp[PATH_MAX];
    uint8_t data[1000];
    img_writer *w;

    memset(data, 0x42, sizeof(data));
    for (int f = 0; f < 2; f++) {
        w = open_writer(testdir_path(d, "gone.img"), f ? IMG_FORMAT_RAW : IMG_FORMAT_QCOW2, 4 * MiB, 512);
        snprintf(tmp, sizeof(tmp), "%s", img_writer_temp(w));
        assert_non_null(strstr(tmp, d->path));
        assert_non_null(strstr(tmp, ".tmp-"));
        put_ok(w, 12345, data, sizeof(data));
        put_ok(w, 3 * MiB, data, sizeof(data));
        assert_true(exists(tmp));
        img_writer_abort(w);
        assert_int_equal(dir_entries(d), 0);
    }
    img_writer_abort(NULL);
}

/* Fault table: a file size limit makes the data writes fail (EFBIG) after
 * the temp file exists; the failure sticks, finish removes the temp file. */
static void a_write_that_fails_fails_the_stream_and_leaves_nothing(void **state)
{
    /* Each 64 MiB, under a name of its own. */
    static const img_writer_options faults[] = {
        { .format = IMG_FORMAT_QCOW2 },
        { .format = IMG_FORMAT_QCOW2, .cluster_size = 512 },
        { .format = IMG_FORMAT_RAW },
    };
    testdir *d = *state;
    struct rlimit old, lim = { .rlim_cur = MiB };
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    uint8_t *data = malloc(4 * MiB);

    assert_non_null(data);
    memset(data, 0x99, 4 * MiB);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim.rlim_max = old.rlim_max;
    for (size_t k = 0; k < sizeof(faults) / sizeof(faults[0]); k++) {
        char name[32], err[ERR_LEN] = "";
        img_writer *w;
        int r1, r2, r3;

        snprintf(name, sizeof(name), "fault%zu.img", k);
        w = open_writer(testdir_path(d, name), faults[k].format, 64 * MiB, faults[k].cluster_size);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        r1 = img_writer_put(w, 0, data, 4 * MiB, err, sizeof(err));
        r2 = img_writer_put(w, 8 * MiB, data, 512, err, sizeof(err));
        r3 = img_writer_finish(w, err, sizeof(err));
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        assert_int_equal(r1, -EFBIG);
        assert_int_equal(r2, -EFBIG);
        assert_int_equal(r3, -EFBIG);
        assert_non_null(strstr(err, name));
        assert_int_equal(dir_entries(d), 0);
    }
    signal(SIGXFSZ, old_handler);
    free(data);
}

#define T(f) cmocka_unit_test_setup_teardown(f, testdir_setup, testdir_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(qcow2_with_512_byte_clusters_reads_back_as_streamed_across_many_l2_spans),
        T(qcow2_with_64k_clusters_reads_back_as_streamed),
        T(qcow2_with_4k_and_2m_clusters_reads_back_as_streamed),
        T(raw_reads_back_as_streamed_with_holes_for_zero_blocks),
        T(whole_cluster_puts_are_stored_and_zero_ones_left_out),
        T(an_empty_stream_gives_a_valid_all_zero_image),
        T(an_existing_path_is_refused_and_left_untouched),
        T(puts_that_go_back_overlap_or_pass_the_size_are_refused),
        T(bad_cluster_sizes_and_sizes_are_refused_and_leave_nothing),
        T(a_path_that_appears_before_finish_is_kept_and_the_temp_file_removed),
        T(abort_leaves_no_file_in_the_directory),
        T(a_write_that_fails_fails_the_stream_and_leaves_nothing),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
