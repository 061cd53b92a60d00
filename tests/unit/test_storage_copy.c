/* test_storage_copy.c: the io_uring copy engine (img_copy_*, img_rebase)
 * against QEMU's own tools. Every image the engine writes must pass
 * `qemu-img check` with no leak and compare equal (`qemu-img compare`) to
 * its source; sparseness is read back with `qemu-img map`. Sources are
 * made by qemu-img and qemu-io in every shape the reader supports. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "storage/storage.h"
#include "tests/support/qemu_img.h"
#include "tests/support/testdir.h"

#define ERR_LEN 512
#define MiB (UINT64_C(1) << 20)

/* ---- helpers ---------------------------------------------------------------- */

static const char *const *roots_of(const testdir *d)
{
    static const char *roots[2];

    roots[0] = d->path;
    roots[1] = NULL;
    return roots;
}

static int copy_into(const testdir *d, const char *src, const char *src_fmt, const char *dst,
                     img_copy_options *o, img_copy_stats *st, char *err)
{
    img_format f;

    assert_int_equal(img_format_parse(src_fmt, &f), 0);
    o->roots = roots_of(d);
    return img_copy_run(testdir_path(d, src), f, testdir_path(d, dst), o, st, err, ERR_LEN);
}

/* Copies src to dst in format out and asserts everything a user would. */
static img_copy_stats copy_ok(const testdir *d, const char *src, const char *src_fmt, const char *dst,
                              img_format out, uint32_t cluster_size)
{
    img_copy_options o = { .format = out, .cluster_size = cluster_size };
    img_copy_stats st;
    char err[ERR_LEN] = "";
    int r = copy_into(d, src, src_fmt, dst, &o, &st, err);

    if (r != 0)
        print_message("copy %s -> %s: %d %s\n", src, dst, r, err);
    assert_int_equal(r, 0);
    if (out == IMG_FORMAT_QCOW2)
        test_assert_qemu_clean(d, testdir_path(d, dst));
    test_assert_qemu_identical(testdir_path(d, src), src_fmt, testdir_path(d, dst), img_format_name(out));
    assert_int_equal(st.blocking_reads, 0);
    assert_true(st.buffer_bytes <= 16 * MiB);
    test_assert_no_temp_files(d);
    return st;
}

static void qcreate(const testdir *d, const char *name, const char *opts, const char *size)
{
    if (opts)
        test_run("qemu-img", "create", "-q", "-f", "qcow2", "-o", opts, testdir_path(d, name), size, NULL);
    else
        test_run("qemu-img", "create", "-q", "-f", "qcow2", testdir_path(d, name), size, NULL);
}

static void qover(const testdir *d, const char *name, const char *backing, const char *fmt)
{
    test_run("qemu-img", "create", "-q", "-f", "qcow2", "-b", backing, "-F", fmt, testdir_path(d, name), NULL);
}

static void qio(const testdir *d, const char *name, const char *const *cmds)
{
    test_qemu_io(testdir_path(d, name), cmds);
}

/* Data, explicit zeros, zero clusters and holes, in odd places. */
static void scribble(const testdir *d, const char *name)
{
    static const char *const cmds[] = {
        "write -P 0x11 0 1M",       "write -z 3M 1M",          "write -P 0 5M 64k",
        "write -P 0x22 6100k 300k", "write -P 0x33 11M 512",   "write -P 0x44 15872k 512k",
        NULL,
    };
    qio(d, name, cmds);
}

/* Each copy to qcow2 (same and other cluster sizes) and raw. */
static void copy_every_way(const testdir *d, const char *src, const char *fmt)
{
    copy_ok(d, src, fmt, "out.qcow2", IMG_FORMAT_QCOW2, 0);
    unlink(testdir_path(d, "out.qcow2"));
    copy_ok(d, src, fmt, "out4k.qcow2", IMG_FORMAT_QCOW2, 4096);
    unlink(testdir_path(d, "out4k.qcow2"));
    copy_ok(d, src, fmt, "out2m.qcow2", IMG_FORMAT_QCOW2, 2 * 1024 * 1024);
    unlink(testdir_path(d, "out2m.qcow2"));
    copy_ok(d, src, fmt, "out.raw", IMG_FORMAT_RAW, 0);
    unlink(testdir_path(d, "out.raw"));
}

/* ---- sources of every shape ---------------------------------------------------- */

static void shaped_case(void **state, const char *opts)
{
    testdir *d = *state;

    qcreate(d, "src.qcow2", opts, "16M");
    scribble(d, "src.qcow2");
    copy_every_way(d, "src.qcow2", "qcow2");
}

static void copies_of_images_with_512_byte_clusters_are_equal_and_clean(void **state)
{
    shaped_case(state, "cluster_size=512");
}

static void copies_of_images_with_4k_clusters_are_equal_and_clean(void **state)
{
    shaped_case(state, "cluster_size=4096");
}

static void copies_of_images_with_2m_clusters_are_equal_and_clean(void **state)
{
    shaped_case(state, "cluster_size=2M");
}

static void copies_of_version_2_images_are_equal_and_clean(void **state)
{
    testdir *d = *state;
    static const char *const cmds[] = { "write -P 0x55 0 2M", "write -P 0 4M 1M", "write -P 0x66 9M 70k", NULL };

    qcreate(d, "v2.qcow2", "compat=0.10", "16M");
    qio(d, "v2.qcow2", cmds);
    copy_every_way(d, "v2.qcow2", "qcow2");
}

static void copies_of_images_with_1_and_64_bit_refcounts_are_equal_and_clean(void **state)
{
    shaped_case(state, "refcount_bits=1");
    unlink(testdir_path(*state, "src.qcow2"));
    shaped_case(state, "refcount_bits=64");
}

static void copies_of_lazy_refcount_images_are_equal_and_clean(void **state)
{
    shaped_case(state, "lazy_refcounts=on");
}

static void copies_of_preallocated_images_are_equal_and_clean(void **state)
{
    shaped_case(state, "preallocation=metadata");
    unlink(testdir_path(*state, "src.qcow2"));
    shaped_case(state, "preallocation=full");
}

static void compressed_case(const testdir *d, const char *cs)
{
    char opts[64];
    FILE *f = fopen(testdir_path(d, "plain.raw"), "wb");

    assert_non_null(f);
    for (int i = 0; i < 200000; i++)
        fprintf(f, "line %d of a compressible file\n", i);
    fclose(f);
    snprintf(opts, sizeof(opts), "cluster_size=%s", cs);
    test_run("qemu-img", "convert", "-q", "-c", "-f", "raw", "-O", "qcow2", "-o", opts,
             testdir_path(d, "plain.raw"), testdir_path(d, "z.qcow2"), NULL);
    copy_every_way(d, "z.qcow2", "qcow2");
    unlink(testdir_path(d, "z.qcow2"));
}

static void copies_of_compressed_images_are_equal_and_clean(void **state)
{
    compressed_case(*state, "64k");
    compressed_case(*state, "512");
    compressed_case(*state, "2M");
}

static void a_chain_five_deep_is_flattened_into_one_equal_image(void **state)
{
    testdir *d = *state;
    char name[32], below[32], cmd[64];

    qcreate(d, "l0.qcow2", "cluster_size=4096", "24M");
    for (int k = 0; k < 5; k++) {
        const char *cmds[] = { cmd, "write -z 20M 64k", NULL };
        snprintf(name, sizeof(name), "l%d.qcow2", k);
        if (k > 0)
            qover(d, name, below, "qcow2");
        snprintf(cmd, sizeof(cmd), "write -P 0x%x %dM 3M", 0x70 + k, k * 2);
        qio(d, name, k == 4 ? cmds : (const char *const[]){ cmd, NULL });
        snprintf(below, sizeof(below), "%s", name);
    }
    copy_every_way(d, "l4.qcow2", "qcow2");
}

static void a_raw_base_under_qcow2_is_flattened_into_one_equal_image(void **state)
{
    testdir *d = *state;
    static const char *const cmds[] = { "write -P 0x99 1M 1M", "write -z 2M 512k", NULL };
    int fd;

    test_run("qemu-img", "create", "-q", "-f", "raw", testdir_path(d, "base.raw"), "5M", NULL);
    assert_true((fd = open(testdir_path(d, "base.raw"), O_WRONLY)) >= 0);
    assert_int_equal(pwrite(fd, "raw base bytes", 14, 2 * MiB + 100), 14);
    close(fd);
    qover(d, "top.qcow2", "base.raw", "raw");
    qio(d, "top.qcow2", cmds);
    copy_every_way(d, "top.qcow2", "qcow2");
    copy_ok(d, "base.raw", "raw", "copy.qcow2", IMG_FORMAT_QCOW2, 0);
}

static void a_size_that_is_not_a_cluster_multiple_is_copied_whole(void **state)
{
    testdir *d = *state;
    static const char *const cmds[] = { "write -P 0x12 0 1536", "write -P 0x34 9999872 5120", NULL };

    qcreate(d, "odd.qcow2", NULL, "10004992");
    qio(d, "odd.qcow2", cmds);
    copy_every_way(d, "odd.qcow2", "qcow2");
}

static void reads_past_a_shorter_backing_file_are_copied_as_zeros(void **state)
{
    testdir *d = *state;
    static const char *const base[] = { "write -P 0xab 0 2M", NULL };
    static const char *const top[] = { "write -P 0xcd 3M 64k", NULL };

    qcreate(d, "short.qcow2", NULL, "2M");
    qio(d, "short.qcow2", base);
    qover(d, "long.qcow2", "short.qcow2", "qcow2");
    test_run("qemu-img", "resize", "-q", testdir_path(d, "long.qcow2"), "6M", NULL);
    qio(d, "long.qcow2", top);
    copy_every_way(d, "long.qcow2", "qcow2");
}

/* ---- sparseness ------------------------------------------------------------------ */

typedef struct map_counts {
    uint64_t data, zero, hole;    /* bytes: data; zero clusters (present, zero); unallocated */
} map_counts;

static map_counts qemu_map_counts(const testdir *d, const char *path)
{
    json_object *arr = test_qemu_json(d, NULL, "map", path);
    map_counts m = { 0 };

    for (size_t k = 0; k < json_object_array_length(arr); k++) {
        json_object *e = json_object_array_get_idx(arr, k);
        uint64_t len = test_jint(e, "length");
        bool data = json_object_get_boolean(test_jget(e, "data"));
        bool present = json_object_get_boolean(test_jget(e, "present"));

        if (data)
            m.data += len;
        else if (present)
            m.zero += len;
        else
            m.hole += len;
    }
    json_object_put(arr);
    return m;
}

static void a_copy_stores_only_data_and_keeps_zeros_and_holes_apart(void **state)
{
    testdir *d = *state;
    map_counts m;

    qcreate(d, "src.qcow2", NULL, "16M");
    scribble(d, "src.qcow2");
    copy_ok(d, "src.qcow2", "qcow2", "out.qcow2", IMG_FORMAT_QCOW2, 0);
    m = qemu_map_counts(d, testdir_path(d, "out.qcow2"));
    /* 1M + 320k (300k at 6100k touches 5 clusters of 64k) + 64k + 512k of
     * data; the zero cluster range 3M..4M and the written zeros 5M..5M+64k
     * are zero clusters; the rest was never written. */
    assert_int_equal(m.data, 1 * MiB + 320 * 1024 + 64 * 1024 + 512 * 1024);
    assert_int_equal(m.zero, 1 * MiB + 64 * 1024);
    assert_int_equal(m.data + m.zero + m.hole, 16 * MiB);
}

static void a_raw_copy_leaves_holes_where_the_source_reads_zeros(void **state)
{
    testdir *d = *state;
    struct stat st;

    qcreate(d, "src.qcow2", NULL, "64M");
    scribble(d, "src.qcow2");
    copy_ok(d, "src.qcow2", "qcow2", "out.raw", IMG_FORMAT_RAW, 0);
    assert_int_equal(stat(testdir_path(d, "out.raw"), &st), 0);
    assert_int_equal(st.st_size, 64 * MiB);
    /* About 1.9 MiB of data; the zeros (1 MiB of zero clusters, 64k of
     * written zeros) and the rest are holes. */
    assert_true((uint64_t)st.st_blocks * 512 <= 2 * MiB + 64 * 1024);
}

/* ---- rebase -------------------------------------------------------------------------- */

static void assert_backing(const testdir *d, const char *path, const char *name)
{
    json_object *j = test_qemu_json(d, NULL, "info", path);

    assert_string_equal(test_jstr(j, "backing-filename"), name);
    assert_string_equal(test_jstr(j, "backing-filename-format"), "qcow2");
    json_object_put(j);
}

static void a_rebase_onto_an_identical_master_stores_nothing_and_reads_the_same(void **state)
{
    testdir *d = *state;
    char err[ERR_LEN] = "";
    map_counts m;

    qcreate(d, "vm.qcow2", NULL, "16M");
    scribble(d, "vm.qcow2");
    test_run("qemu-img", "convert", "-q", "-O", "raw", testdir_path(d, "vm.qcow2"), testdir_path(d, "before.raw"), NULL);
    copy_ok(d, "vm.qcow2", "qcow2", "master.qcow2", IMG_FORMAT_QCOW2, 0);
    assert_int_equal(img_rebase(testdir_path(d, "vm.qcow2"), "master.qcow2", IMG_FORMAT_QCOW2, roots_of(d),
                                err, sizeof(err)), 0);
    assert_backing(d, testdir_path(d, "vm.qcow2"), "master.qcow2");
    test_assert_qemu_clean(d, testdir_path(d, "vm.qcow2"));
    test_assert_qemu_identical(testdir_path(d, "before.raw"), "raw", testdir_path(d, "vm.qcow2"), "qcow2");
    m = qemu_map_counts(d, testdir_path(d, "vm.qcow2"));
    assert_int_equal(m.data + m.zero + m.hole, 16 * MiB);
    /* Everything the overlay reads comes from the master (depth 1). */
    {
        json_object *arr = test_qemu_json(d, NULL, "map", testdir_path(d, "vm.qcow2"));
        for (size_t k = 0; k < json_object_array_length(arr); k++) {
            json_object *e = json_object_array_get_idx(arr, k);
            if (json_object_get_boolean(test_jget(e, "present")))
                assert_int_equal(test_jint(e, "depth"), 1);
        }
        json_object_put(arr);
    }
    test_assert_no_temp_files(d);
}

static void a_rebase_stores_only_the_clusters_that_differ(void **state)
{
    testdir *d = *state;
    static const char *const changes[] = { "write -P 0xee 64k 64k", "write -P 0 0 64k", "write -P 0x5a 8M 64k", NULL };
    char err[ERR_LEN] = "";
    map_counts m;

    qcreate(d, "vm.qcow2", NULL, "16M");
    scribble(d, "vm.qcow2");
    copy_ok(d, "vm.qcow2", "qcow2", "master.qcow2", IMG_FORMAT_QCOW2, 0);
    qio(d, "vm.qcow2", changes);
    test_run("qemu-img", "convert", "-q", "-O", "raw", testdir_path(d, "vm.qcow2"), testdir_path(d, "before.raw"), NULL);
    assert_int_equal(img_rebase(testdir_path(d, "vm.qcow2"), "master.qcow2", IMG_FORMAT_QCOW2, roots_of(d),
                                err, sizeof(err)), 0);
    test_assert_qemu_clean(d, testdir_path(d, "vm.qcow2"));
    test_assert_qemu_identical(testdir_path(d, "before.raw"), "raw", testdir_path(d, "vm.qcow2"), "qcow2");
    {
        json_object *arr = test_qemu_json(d, NULL, "map", testdir_path(d, "vm.qcow2"));
        uint64_t own_data = 0, own_zero = 0;
        for (size_t k = 0; k < json_object_array_length(arr); k++) {
            json_object *e = json_object_array_get_idx(arr, k);
            if (test_jint(e, "depth") != 0 || !json_object_get_boolean(test_jget(e, "present")))
                continue;
            if (json_object_get_boolean(test_jget(e, "data")))
                own_data += test_jint(e, "length");
            else
                own_zero += test_jint(e, "length");
        }
        json_object_put(arr);
        /* Two clusters of new data; the first cluster, now zeros over the
         * master's data, is a zero cluster of the overlay. */
        assert_int_equal(own_data, 128 * 1024);
        assert_int_equal(own_zero, 64 * 1024);
    }
    m = qemu_map_counts(d, testdir_path(d, "vm.qcow2"));
    assert_int_equal(m.data + m.zero + m.hole, 16 * MiB);
}

/* ---- refusals --------------------------------------------------------------------- */

static void copies_that_must_be_refused_leave_nothing_behind(void **state)
{
    testdir *d = *state;
    img_copy_options o = { .format = IMG_FORMAT_QCOW2 };
    char err[ERR_LEN] = "";

    qcreate(d, "a.qcow2", NULL, "1M");
    qcreate(d, "b.qcow2", NULL, "1M");
    assert_int_equal(copy_into(d, "a.qcow2", "qcow2", "b.qcow2", &o, NULL, err), -EEXIST);
    assert_non_null(strstr(err, "already exists"));
    o = (img_copy_options){ .format = IMG_FORMAT_RAW, .backing_file = "a.qcow2" };
    assert_int_equal(copy_into(d, "a.qcow2", "qcow2", "c.raw", &o, NULL, err), -EINVAL);
    assert_non_null(strstr(err, "raw image has no backing file"));
    o = (img_copy_options){ .format = IMG_FORMAT_QCOW2, .backing_file = "a.qcow2", .replace = true };
    assert_int_equal(copy_into(d, "a.qcow2", "qcow2", "a.qcow2", &o, NULL, err), -ELOOP);
    assert_non_null(strstr(err, "backed by the image itself"));
    o = (img_copy_options){ .format = IMG_FORMAT_QCOW2, .backing_file = "/etc/passwd",
                            .backing_format = IMG_FORMAT_RAW };
    assert_true(copy_into(d, "a.qcow2", "qcow2", "d.qcow2", &o, NULL, err) < 0);
    assert_non_null(strstr(err, "outside"));
    o = (img_copy_options){ .format = IMG_FORMAT_QCOW2, .cluster_size = 3000 };
    assert_int_equal(copy_into(d, "a.qcow2", "qcow2", "e.qcow2", &o, NULL, err), -EINVAL);
    assert_non_null(strstr(err, "cluster size 3000"));
    assert_int_equal(access(testdir_path(d, "c.raw"), F_OK), -1);
    assert_int_equal(access(testdir_path(d, "d.qcow2"), F_OK), -1);
    assert_int_equal(access(testdir_path(d, "e.qcow2"), F_OK), -1);
    test_assert_no_temp_files(d);
}

/* ---- cancel, full disks, memory ---------------------------------------------------- */

static char *md5_of(const char *path)
{
    static char out[64];
    char cmd[PATH_MAX + 32];
    FILE *p;

    snprintf(cmd, sizeof(cmd), "md5sum '%s'", path);
    assert_non_null(p = popen(cmd, "r"));
    assert_non_null(fgets(out, sizeof(out), p));
    pclose(p);
    out[32] = '\0';
    return out;
}

static void make_big_source(const testdir *d, const char *name, const char *mb)
{
    char cmd[64];
    const char *const cmds[] = { cmd, NULL };

    qcreate(d, name, NULL, "1G");
    snprintf(cmd, sizeof(cmd), "write -P 0x42 0 %sM", mb);
    qio(d, name, cmds);
}

static void a_cancelled_copy_leaves_nothing_and_the_source_unchanged(void **state)
{
    testdir *d = *state;
    img_copy_options o = { .format = IMG_FORMAT_QCOW2, .roots = roots_of(d) };
    char err[ERR_LEN] = "", before[64];
    img_copy *c;
    int r, steps = 0;

    make_big_source(d, "src.qcow2", "64");
    snprintf(before, sizeof(before), "%s", md5_of(testdir_path(d, "src.qcow2")));
    assert_int_equal(img_copy_start(testdir_path(d, "src.qcow2"), IMG_FORMAT_QCOW2, testdir_path(d, "dst.qcow2"),
                                    &o, &c, err, sizeof(err)), 0);
    while ((r = img_copy_step(c)) == 0) {
        struct pollfd p = { .fd = img_copy_fd(c), .events = POLLIN };
        if (++steps == 3)
            img_copy_cancel(c);
        assert_true(poll(&p, 1, 10000) == 1);
    }
    assert_int_equal(r, -ECANCELED);
    assert_int_equal(img_copy_finish(c, err, sizeof(err)), -ECANCELED);
    assert_non_null(strstr(err, "cancelled"));
    assert_int_equal(access(testdir_path(d, "dst.qcow2"), F_OK), -1);
    test_assert_no_temp_files(d);
    assert_string_equal(md5_of(testdir_path(d, "src.qcow2")), before);
}

static void a_full_disk_fails_the_copy_and_leaves_nothing_behind(void **state)
{
    testdir *d = *state;
    img_copy_options o = { .format = IMG_FORMAT_QCOW2 };
    char small[PATH_MAX], err[ERR_LEN] = "", before[64];
    testdir sd;
    int r;

    testdir_path_into(small, d, "small");
    assert_int_equal(mkdir(small, 0755), 0);
    if (mount("tmpfs", small, "tmpfs", 0, "size=8m") < 0) {
        print_message("cannot mount a small tmpfs (%s): skipped\n", strerror(errno));
        skip();
    }
    make_big_source(d, "src.qcow2", "32");
    snprintf(before, sizeof(before), "%s", md5_of(testdir_path(d, "src.qcow2")));
    r = copy_into(d, "src.qcow2", "qcow2", "small/dst.qcow2", &o, NULL, err);
    snprintf(sd.path, sizeof(sd.path), "%s", small);
    if (r != -ENOSPC)
        print_message("copy into 8 MiB: %d %s\n", r, err);
    assert_int_equal(r, -ENOSPC);
    assert_non_null(strstr(err, "No space left"));
    assert_int_equal(access(testdir_path(d, "small/dst.qcow2"), F_OK), -1);
    test_assert_no_temp_files(&sd);
    assert_string_equal(md5_of(testdir_path(d, "src.qcow2")), before);
}

/* The small file system goes even when the test failed half-way. */
static int teardown_small(void **state)
{
    testdir *d = *state;

    umount2(testdir_path(d, "small"), MNT_DETACH);
    return testdir_teardown(state);
}

/* A 1 GiB image with 256 MiB of data is copied by this program run anew
 * (see main), so that its peak resident memory is the copy's alone. */
static void peak_memory_stays_far_below_64_mb_whatever_the_size(void **state)
{
    testdir *d = *state;
    char src[PATH_MAX], dst[PATH_MAX];
    struct rusage ru;
    int status;
    pid_t pid;

    make_big_source(d, "src.qcow2", "256");
    testdir_path_into(src, d, "src.qcow2");
    testdir_path_into(dst, d, "dst.qcow2");
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/proc/self/exe", "test_storage_copy", "--copy", d->path, src, dst, (char *)NULL);
        _exit(127);
    }
    assert_int_equal(wait4(pid, &status, 0, &ru), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    print_message("peak RSS of the copy: %ld KiB\n", ru.ru_maxrss);
#if defined(__SANITIZE_ADDRESS__)
    /* ASan's shadow memory and quarantine are not the copy's. */
    print_message("built with AddressSanitizer: the bound is not checked\n");
#else
    assert_true(ru.ru_maxrss < 64 * 1024);
#endif
    test_assert_qemu_identical(src, "qcow2", dst, "qcow2");
}

/* test_storage_copy --copy ROOT SRC DST: one copy, exit 0 on success. */
static int copy_command(char **argv)
{
    const char *roots[] = { argv[2], NULL };
    img_copy_options o = { .format = IMG_FORMAT_QCOW2, .roots = roots };
    char err[ERR_LEN] = "";
    int r = img_copy_run(argv[3], IMG_FORMAT_QCOW2, argv[4], &o, NULL, err, sizeof(err));

    if (r < 0)
        fprintf(stderr, "copy: %s\n", err);
    return r == 0 ? 0 : 1;
}

typedef struct progress_log {
    uint64_t last, total;
    unsigned calls;
    bool backwards;
} progress_log;

static void on_progress(void *opaque, uint64_t done, uint64_t total)
{
    progress_log *p = opaque;

    p->backwards |= done < p->last;
    p->last = done;
    p->total = total;
    p->calls++;
}

static void progress_grows_to_the_virtual_size(void **state)
{
    testdir *d = *state;
    progress_log p = { 0 };
    img_copy_options o = { .format = IMG_FORMAT_QCOW2, .progress = on_progress, .opaque = &p };
    char err[ERR_LEN] = "";

    make_big_source(d, "src.qcow2", "20");
    assert_int_equal(copy_into(d, "src.qcow2", "qcow2", "dst.qcow2", &o, NULL, err), 0);
    assert_false(p.backwards);
    assert_true(p.calls > 5);
    assert_int_equal(p.last, 1024 * MiB);
    assert_int_equal(p.total, 1024 * MiB);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, testdir_setup, testdir_teardown)
        T(copies_of_images_with_512_byte_clusters_are_equal_and_clean),
        T(copies_of_images_with_4k_clusters_are_equal_and_clean),
        T(copies_of_images_with_2m_clusters_are_equal_and_clean),
        T(copies_of_version_2_images_are_equal_and_clean),
        T(copies_of_images_with_1_and_64_bit_refcounts_are_equal_and_clean),
        T(copies_of_lazy_refcount_images_are_equal_and_clean),
        T(copies_of_preallocated_images_are_equal_and_clean),
        T(copies_of_compressed_images_are_equal_and_clean),
        T(a_chain_five_deep_is_flattened_into_one_equal_image),
        T(a_raw_base_under_qcow2_is_flattened_into_one_equal_image),
        T(a_size_that_is_not_a_cluster_multiple_is_copied_whole),
        T(reads_past_a_shorter_backing_file_are_copied_as_zeros),
        T(a_copy_stores_only_data_and_keeps_zeros_and_holes_apart),
        T(a_raw_copy_leaves_holes_where_the_source_reads_zeros),
        T(a_rebase_onto_an_identical_master_stores_nothing_and_reads_the_same),
        T(a_rebase_stores_only_the_clusters_that_differ),
        T(copies_that_must_be_refused_leave_nothing_behind),
        T(a_cancelled_copy_leaves_nothing_and_the_source_unchanged),
        cmocka_unit_test_setup_teardown(a_full_disk_fails_the_copy_and_leaves_nothing_behind, testdir_setup,
                                        teardown_small),
        T(peak_memory_stays_far_below_64_mb_whatever_the_size),
        T(progress_grows_to_the_virtual_size),
#undef T
    };
    if (argc == 5 && strcmp(argv[1], "--copy") == 0)
        return copy_command(argv);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
