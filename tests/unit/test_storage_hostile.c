/* test_storage_hostile.c: images built byte by byte (as QEMU's qemu-iotests
 * 080 does) with one field made hostile each: img_open must refuse them
 * with the expected errno and a message naming the problem, or, for bad
 * L2 entries found only when used, img_map and img_read must fail with -EIO.
 * Backing chains that loop, go too deep or leave the storage roots are
 * refused too. Run under ASan in the sanitizer build: no crash, no leak. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "storage/storage.h"
#include "tests/support/testdir.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The hand-made image: 4 KiB clusters, 1 MiB virtual size, one L1 entry,
 * one L2 table with one data cluster (guest cluster 0, filled with 0xd5). */
#define CS 4096u
#define NCLUSTERS 6u
#define IMG_BYTES (CS * NCLUSTERS)
#define OFF_RT (1 * CS)
#define OFF_RB (2 * CS)
#define OFF_L1 (3 * CS)
#define OFF_L2 (4 * CS)
#define OFF_DATA (5 * CS)
#define HDR_LEN 112u
#define VSIZE (UINT64_C(1) << 20)
#define COPIED (UINT64_C(1) << 63)
#define COMPRESSED (UINT64_C(1) << 62)
#define DATA_BYTE 0xd5

#define EXT_BACKING_FORMAT 0xe2792acau
#define EXT_FEATURE_TABLE 0x6803f857u

/* ---- bytes ---- */

static void put16(uint8_t *b, size_t off, uint16_t v)
{
    b[off] = (uint8_t)(v >> 8);
    b[off + 1] = (uint8_t)v;
}

static void put32(uint8_t *b, size_t off, uint32_t v)
{
    put16(b, off, (uint16_t)(v >> 16));
    put16(b, off + 2, (uint16_t)v);
}

static void put64(uint8_t *b, size_t off, uint64_t v)
{
    put32(b, off, (uint32_t)(v >> 32));
    put32(b, off + 4, (uint32_t)v);
}

static size_t put_ext(uint8_t *b, size_t off, uint32_t type, const void *data, uint32_t len)
{
    put32(b, off, type);
    put32(b, off + 4, len);
    memcpy(b + off + 8, data, len);
    return off + 8 + ((len + 7u) & ~7u);
}

/* A valid v3 image; backing and backing_fmt may be NULL. */
static void build(uint8_t *b, const char *backing, const char *backing_fmt)
{
    size_t ext = HDR_LEN;

    memset(b, 0, IMG_BYTES);
    put32(b, 0, 0x514649fbu);
    put32(b, 4, 3);
    put32(b, 20, 12);
    put64(b, 24, VSIZE);
    put32(b, 36, 1);
    put64(b, 40, OFF_L1);
    put64(b, 48, OFF_RT);
    put32(b, 56, 1);
    put32(b, 96, 4);
    put32(b, 100, HDR_LEN);
    if (backing_fmt)
        ext = put_ext(b, ext, EXT_BACKING_FORMAT, backing_fmt, (uint32_t)strlen(backing_fmt));
    ext = put_ext(b, ext, 0, "", 0);
    if (backing) {
        put64(b, 8, ext);
        put32(b, 16, (uint32_t)strlen(backing));
        memcpy(b + ext, backing, strlen(backing));
    }
    put64(b, OFF_RT, OFF_RB);
    for (unsigned c = 0; c < NCLUSTERS; c++)
        put16(b, OFF_RB + 2 * c, 1);
    put64(b, OFF_L1, OFF_L2 | COPIED);
    put64(b, OFF_L2, OFF_DATA | COPIED);
    memset(b + OFF_DATA, DATA_BYTE, CS);
}

static void write_bytes(const char *path, const uint8_t *b, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, b, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

/* Writes a hand-made image (optionally with a backing file) into the dir. */
static void make_image(const testdir *d, const char *name, const char *backing,
                       const char *backing_fmt)
{
    static uint8_t b[IMG_BYTES];

    build(b, backing, backing_fmt);
    write_bytes(testdir_path(d, name), b, sizeof(b));
}

/* img_open must fail with want and a message containing msg; the message
 * is left in err. */
static void expect_refused_err(const char *path, const img_open_options *o, int want,
                               const char *msg, char *err, size_t errlen)
{
    img *i = NULL;
    int r;

    err[0] = '\0';
    r = img_open(path, IMG_FORMAT_QCOW2, o, &i, err, errlen);
    if (r != want || !strstr(err, msg))
        print_message("got %d \"%s\", want %d \"...%s...\"\n", r, err, want, msg);
    assert_int_equal(r, want);
    assert_null(i);
    assert_non_null(strstr(err, msg));
}

static void expect_refused(const char *path, const img_open_options *o, int want,
                           const char *msg)
{
    char err[1024];

    expect_refused_err(path, o, want, msg, err, sizeof(err));
}

static img *expect_opened(const char *path, const img_open_options *o)
{
    char err[1024] = "";
    img *i = NULL;
    int r = img_open(path, IMG_FORMAT_QCOW2, o, &i, err, sizeof(err));

    if (r != 0)
        print_message("refused: %d %s\n", r, err);
    assert_int_equal(r, 0);
    return i;
}

/* ---- the table: one hostile field each ---- */

typedef struct hostile_case {
    const char *name;
    void (*make)(uint8_t *b, size_t *len);
    bool writable;
    int err;
    const char *msg;
} hostile_case;

static void bad_magic(uint8_t *b, size_t *len) { put32(b, 0, 0x514649fau); }
static void version_1(uint8_t *b, size_t *len) { put32(b, 4, 1); }
static void version_4(uint8_t *b, size_t *len) { put32(b, 4, 4); }
static void cluster_bits_8(uint8_t *b, size_t *len) { put32(b, 20, 8); }
static void cluster_bits_22(uint8_t *b, size_t *len) { put32(b, 20, 22); }
static void huge_l1(uint8_t *b, size_t *len) { put32(b, 36, 0x10000000u); }
static void l1_over_header(uint8_t *b, size_t *len) { put64(b, 40, 0); }
static void l1_past_eof(uint8_t *b, size_t *len) { put64(b, 40, 0x100000u); }
static void l1_unaligned(uint8_t *b, size_t *len) { put64(b, 40, OFF_L1 + 8); }
static void l1_runs_past_eof(uint8_t *b, size_t *len) { put32(b, 36, 1024); put64(b, 40, OFF_DATA); }
static void l1_too_small(uint8_t *b, size_t *len) { put64(b, 24, 3 * VSIZE); }
static void reftable_past_eof(uint8_t *b, size_t *len) { put64(b, 48, 0x100000u); }
static void reftable_over_header(uint8_t *b, size_t *len) { put64(b, 48, 0); }
static void reftable_huge(uint8_t *b, size_t *len) { put32(b, 56, 0x10000u); }
static void reftable_empty(uint8_t *b, size_t *len) { put32(b, 56, 0); }
static void refcount_order_7(uint8_t *b, size_t *len) { put32(b, 96, 7); }
static void header_length_8192(uint8_t *b, size_t *len) { put32(b, 100, 8192); }
static void header_length_108(uint8_t *b, size_t *len) { put32(b, 100, 108); }
static void header_length_96(uint8_t *b, size_t *len) { put32(b, 100, 96); }
static void virtual_size_2_62(uint8_t *b, size_t *len) { put64(b, 24, UINT64_C(1) << 62); }
static void snapshots_too_many(uint8_t *b, size_t *len) { put32(b, 60, 70000); }
static void snapshots_unaligned(uint8_t *b, size_t *len) { put32(b, 60, 1); put64(b, 64, OFF_DATA + 8); }
static void snapshots_past_eof(uint8_t *b, size_t *len) { put32(b, 60, 1); put64(b, 64, 0x100000u); }
static void encrypted_aes(uint8_t *b, size_t *len) { put32(b, 32, 1); }
static void encrypted_luks(uint8_t *b, size_t *len) { put32(b, 32, 2); }
static void unknown_bit_5(uint8_t *b, size_t *len) { put64(b, 72, UINT64_C(1) << 5); }
static void external_data_file(uint8_t *b, size_t *len) { put64(b, 72, UINT64_C(1) << 2); }
static void extended_l2(uint8_t *b, size_t *len) { put64(b, 72, UINT64_C(1) << 4); }
static void corrupt_bit(uint8_t *b, size_t *len) { put64(b, 72, UINT64_C(1) << 1); }
static void short_file(uint8_t *b, size_t *len) { *len = 100; }
static void empty_file(uint8_t *b, size_t *len) { *len = 0; }
static void l1_entry_reserved(uint8_t *b, size_t *len) { put64(b, OFF_L1, OFF_L2 | UINT64_C(1) << 56); }
static void l1_entry_unaligned(uint8_t *b, size_t *len) { put64(b, OFF_L1, OFF_L2 + 512); }
static void l1_entry_past_eof(uint8_t *b, size_t *len) { put64(b, OFF_L1, 0x100000u); }
static void l1_entry_last_cluster_cut(uint8_t *b, size_t *len) { *len -= 1; put64(b, OFF_L1, OFF_DATA); }

static void zstd(uint8_t *b, size_t *len)
{
    put64(b, 72, UINT64_C(1) << 3);
    b[104] = 1;
}

static void compression_type_without_bit(uint8_t *b, size_t *len) { b[104] = 1; }

static void extension_past_cluster(uint8_t *b, size_t *len)
{
    put32(b, HDR_LEN, 0x12345678u);
    put32(b, HDR_LEN + 4, 5000);
}

static void extension_without_end(uint8_t *b, size_t *len)
{
    put32(b, HDR_LEN, 0x12345678u);
    put32(b, HDR_LEN + 4, CS - HDR_LEN - 8);
}

/* An unknown bit the image names in its feature table: the name is shown. */
static void unknown_bit_named(uint8_t *b, size_t *len)
{
    uint8_t entry[48] = { 0, 40 };
    size_t off;

    memcpy(entry + 2, "frobnicate", 10);
    off = put_ext(b, HDR_LEN, EXT_FEATURE_TABLE, entry, sizeof(entry));
    put_ext(b, off, 0, "", 0);
    put64(b, 72, UINT64_C(1) << 40);
}

static void backing_name_2000(uint8_t *b, size_t *len)
{
    put64(b, 8, 512);
    put32(b, 16, 2000);
}

static void backing_name_past_cluster(uint8_t *b, size_t *len)
{
    put64(b, 8, CS - 100);
    put32(b, 16, 200);
}

static void backing_name_over_header(uint8_t *b, size_t *len)
{
    put64(b, 8, 16);
    put32(b, 16, 10);
}

static void backing_name_with_nul(uint8_t *b, size_t *len)
{
    build(b, "base.qcow2", "qcow2");
    b[HDR_LEN + 16 + 8 + 2] = 0;    /* after the format extension and the end marker */
}

static void backing_without_format(uint8_t *b, size_t *len) { build(b, "base.qcow2", NULL); }
static void backing_format_vmdk(uint8_t *b, size_t *len) { build(b, "base.qcow2", "vmdk"); }
static void backing_format_too_long(uint8_t *b, size_t *len) { build(b, "base.qcow2", "qcow2qcow2qcow2qcow2"); }

static void backing_format_twice(uint8_t *b, size_t *len)
{
    size_t off = put_ext(b, HDR_LEN, EXT_BACKING_FORMAT, "qcow2", 5);

    off = put_ext(b, off, EXT_BACKING_FORMAT, "raw", 3);
    off = put_ext(b, off, 0, "", 0);
    put64(b, 8, off);
    put32(b, 16, 10);
    memcpy(b + off, "base.qcow2", 10);
}

static const hostile_case hostile_cases[] = {
    { "bad magic", bad_magic, false, -EINVAL, "not a qcow2 image (bad magic)" },
    { "version 1", version_1, false, -ENOTSUP, "unsupported qcow2 version 1" },
    { "version 4", version_4, false, -ENOTSUP, "unsupported qcow2 version 4" },
    { "cluster_bits 8", cluster_bits_8, false, -EINVAL, "cluster_bits 8 out of range" },
    { "cluster_bits 22", cluster_bits_22, false, -EINVAL, "cluster_bits 22 out of range" },
    { "huge L1", huge_l1, false, -EFBIG, "L1 table too large (268435456 entries" },
    { "L1 over the header", l1_over_header, false, -EINVAL,
      "L1 table (offset 0x0) overlaps the header cluster" },
    { "L1 past EOF", l1_past_eof, false, -EINVAL,
      "L1 table (offset 0x100000, 8 bytes) extends past the end of the file" },
    { "L1 unaligned", l1_unaligned, false, -EINVAL, "L1 table (offset 0x3008) is not cluster-aligned" },
    { "L1 running past EOF", l1_runs_past_eof, false, -EINVAL,
      "L1 table (offset 0x5000, 8192 bytes) extends past the end of the file" },
    { "L1 too small", l1_too_small, false, -EINVAL, "does not cover the virtual size" },
    { "refcount table past EOF", reftable_past_eof, false, -EINVAL,
      "refcount table (offset 0x100000, 4096 bytes) extends past the end of the file" },
    { "refcount table over the header", reftable_over_header, false, -EINVAL,
      "refcount table (offset 0x0) overlaps the header cluster" },
    { "refcount table huge", reftable_huge, false, -EFBIG, "refcount table too large" },
    { "refcount table empty", reftable_empty, false, -EINVAL, "no refcount table" },
    { "refcount_order 7", refcount_order_7, false, -EINVAL, "refcount_order 7 out of range" },
    { "header_length 8192", header_length_8192, false, -EINVAL,
      "header_length 8192 runs past the header cluster" },
    { "header_length 108", header_length_108, false, -EINVAL, "header_length 108 invalid" },
    { "header_length 96", header_length_96, false, -EINVAL, "header_length 96 invalid" },
    { "virtual size 2^62", virtual_size_2_62, false, -EFBIG, "virtual size 4611686018427387904 too large" },
    { "70000 snapshots", snapshots_too_many, false, -EFBIG, "too many snapshots (70000" },
    { "snapshot table unaligned", snapshots_unaligned, false, -EINVAL,
      "snapshot table (offset 0x5008) is not cluster-aligned" },
    { "snapshot table past EOF", snapshots_past_eof, false, -EINVAL,
      "snapshot table (offset 0x100000, 40 bytes) extends past the end of the file" },
    { "extension past the cluster", extension_past_cluster, false, -EINVAL,
      "header extension 0x12345678 at offset 0x70 (5000 bytes) runs past the end of its area" },
    { "extensions without an end marker", extension_without_end, false, -EINVAL,
      "header extensions have no end marker" },
    { "backing name 2000 bytes", backing_name_2000, false, -EINVAL,
      "backing file name too long (2000 bytes, at most 1023)" },
    { "backing name past the cluster", backing_name_past_cluster, false, -EINVAL,
      "backing file name (offset 0xf9c, 200 bytes) runs past the header cluster" },
    { "backing name over the header", backing_name_over_header, false, -EINVAL,
      "backing file name (offset 0x10) overlaps the header" },
    { "backing name with a NUL", backing_name_with_nul, false, -EINVAL,
      "backing file name contains a NUL byte" },
    { "backing without a format", backing_without_format, false, -EINVAL,
      "backing file 'base.qcow2' has no backing format recorded; refusing to guess" },
    { "backing format vmdk", backing_format_vmdk, false, -ENOTSUP,
      "backing format 'vmdk' is not supported" },
    { "backing format too long", backing_format_too_long, false, -EINVAL,
      "backing format extension invalid (20 bytes)" },
    { "backing format twice", backing_format_twice, false, -EINVAL,
      "backing format extension appears twice" },
    { "unknown incompatible bit", unknown_bit_5, false, -ENOTSUP,
      "unknown incompatible feature bit 5" },
    { "unknown incompatible bit, named", unknown_bit_named, false, -ENOTSUP,
      "unknown incompatible feature bit 40 (frobnicate)" },
    { "external data file", external_data_file, false, -ENOTSUP, "external data files are not supported" },
    { "extended L2", extended_l2, false, -ENOTSUP, "extended L2 entries are not supported" },
    { "zstd", zstd, false, -ENOTSUP, "zstd compression is not supported" },
    { "compression type without its bit", compression_type_without_bit, false, -EINVAL,
      "compression_type 1 set without its incompatible feature bit" },
    { "AES encryption", encrypted_aes, false, -ENOTSUP, "encrypted images are not supported (crypt_method 1)" },
    { "LUKS encryption", encrypted_luks, false, -ENOTSUP, "encrypted images are not supported (crypt_method 2)" },
    { "corrupt, writable", corrupt_bit, true, -EACCES,
      "image is marked corrupt; refusing to open it writable" },
    { "file shorter than a cluster", short_file, false, -EINVAL,
      "shorter than its header cluster (100 of 4096 bytes)" },
    { "empty file", empty_file, false, -EINVAL, "too short for a qcow2 header (0 bytes)" },
    { "L1 entry with reserved bits", l1_entry_reserved, false, -EINVAL,
      "L1 entry 0 (0x0100000000004000) has reserved bits set" },
    { "L1 entry unaligned", l1_entry_unaligned, false, -EINVAL,
      "L1 entry 0: L2 table offset 0x4200 is not cluster-aligned" },
    { "L1 entry past EOF", l1_entry_past_eof, false, -EINVAL,
      "L1 entry 0: L2 table (offset 0x100000) extends past the end of the file" },
    { "L1 entry on a cut last cluster", l1_entry_last_cluster_cut, false, -EINVAL,
      "L1 entry 0: L2 table (offset 0x5000) extends past the end of the file" },
};

static void every_hostile_header_is_refused_with_its_errno_and_message(void **state)
{
    testdir *d = *state;
    static uint8_t b[IMG_BYTES];

    for (size_t k = 0; k < ARRAY_SIZE(hostile_cases); k++) {
        const hostile_case *c = &hostile_cases[k];
        img_open_options o = { .writable = c->writable };
        size_t len = sizeof(b);
        char name[64], err[1024];

        print_message("case: %s\n", c->name);
        build(b, NULL, NULL);
        c->make(b, &len);
        snprintf(name, sizeof(name), "case%zu.qcow2", k);
        write_bytes(testdir_path(d, name), b, len);
        expect_refused_err(testdir_path(d, name), &o, c->err, c->msg, err, sizeof(err));
        assert_non_null(strstr(err, name));    /* the message names the file */
    }
}

/* ---- the baseline the table mutates ---- */

static void the_hand_made_image_is_valid_and_reads_its_data(void **state)
{
    testdir *d = *state;
    char ok_path[PATH_MAX];
    char *check[] = { "qemu-img", "check", "-q", "-f", "qcow2", ok_path, NULL };
    uint8_t buf[2 * CS], want[2 * CS];
    img_layer_info li;
    img_extent e;
    img *i;

    make_image(d, "ok.qcow2", NULL, NULL);
    snprintf(ok_path, sizeof(ok_path), "%s", testdir_path(d, "ok.qcow2"));
    assert_int_equal(test_run_argv(check, NULL, false), 0);
    i = expect_opened(testdir_path(d, "ok.qcow2"), NULL);
    assert_int_equal(img_virtual_size(i), VSIZE);
    assert_int_equal(img_read(i, 0, buf, sizeof(buf)), 0);
    memset(want, DATA_BYTE, CS);
    memset(want + CS, 0, CS);
    assert_memory_equal(buf, want, sizeof(buf));
    assert_int_equal(img_map(i, 0, VSIZE, &e), 0);
    assert_int_equal(e.kind, IMG_EXTENT_DATA);
    assert_int_equal(e.host_offset, OFF_DATA);
    assert_int_equal(e.length, CS);
    assert_int_equal(img_layer_info_get(i, 0, &li), 0);
    assert_int_equal(li.version, 3);
    assert_false(li.dirty);
    assert_false(li.corrupt);
    img_close(i);
}

static void a_corrupt_image_opens_read_only_but_not_writable(void **state)
{
    testdir *d = *state;
    static uint8_t b[IMG_BYTES];
    img_open_options rw = { .writable = true };
    img_layer_info li;
    img *i;

    build(b, NULL, NULL);
    put64(b, 72, UINT64_C(1) << 1 | UINT64_C(1));    /* corrupt and dirty */
    write_bytes(testdir_path(d, "corrupt.qcow2"), b, sizeof(b));
    expect_refused(testdir_path(d, "corrupt.qcow2"), &rw, -EACCES, "marked corrupt");
    i = expect_opened(testdir_path(d, "corrupt.qcow2"), NULL);
    assert_int_equal(img_layer_info_get(i, 0, &li), 0);
    assert_true(li.corrupt);
    assert_true(li.dirty);
    img_close(i);
    /* Without the corrupt bit, writable is fine. */
    make_image(d, "fine.qcow2", NULL, NULL);
    i = expect_opened(testdir_path(d, "fine.qcow2"), &rw);
    img_close(i);
}

/* ---- L2 entries: found bad only when used ---- */

typedef struct l2_case {
    const char *name;
    uint64_t entry;    /* for guest cluster 1 */
    uint32_t version;
    int map_err;       /* img_map's result: a well-formed descriptor of bad bytes maps */
} l2_case;

static const l2_case l2_cases[] = {
    { "data past EOF", UINT64_C(0x100000) | COPIED, 3, -EIO },
    { "data cluster cut by EOF", (uint64_t)IMG_BYTES | COPIED, 3, -EIO },
    { "data unaligned", (OFF_DATA + 512) | COPIED, 3, -EIO },
    { "data with reserved bits", OFF_DATA | COPIED | UINT64_C(1) << 57, 3, -EIO },
    { "data with reserved low bits", OFF_DATA | COPIED | 2, 3, -EIO },
    { "zero flag in v2", 1, 2, -EIO },
    { "compressed past EOF", COMPRESSED | UINT64_C(0x100000), 3, -EIO },
    { "compressed in the header", COMPRESSED | 100, 3, -EIO },
    { "compressed past 2^56", COMPRESSED | UINT64_C(1) << 56 | OFF_DATA, 3, -EIO },
    { "compressed garbage", COMPRESSED | OFF_RB, 3, 0 },
    { "compressed, too short", COMPRESSED | (OFF_DATA + CS - 1), 3, 0 },
};

static void bad_l2_entries_fail_map_and_read_with_eio(void **state)
{
    testdir *d = *state;
    static uint8_t b[IMG_BYTES];
    uint8_t buf[CS], buf2[2 * CS];

    for (size_t k = 0; k < ARRAY_SIZE(l2_cases); k++) {
        const l2_case *c = &l2_cases[k];
        img_extent e;
        img *i;

        print_message("case: %s\n", c->name);
        build(b, NULL, NULL);
        if (c->version == 2) {
            put32(b, 4, 2);    /* v2: the header ends at 72; 72..111 were zero anyway */
        }
        put64(b, OFF_L2 + 8, c->entry);
        write_bytes(testdir_path(d, "l2.qcow2"), b, sizeof(b));
        i = expect_opened(testdir_path(d, "l2.qcow2"), NULL);
        assert_int_equal(img_read(i, 0, buf, sizeof(buf)), 0);
        assert_int_equal(buf[0], DATA_BYTE);
        assert_int_equal(img_read(i, CS, buf, sizeof(buf)), -EIO);
        assert_int_equal(img_read(i, CS + 100, buf, 1), -EIO);
        assert_int_equal(img_map(i, CS, CS, &e), c->map_err);
        assert_int_equal(img_read(i, 0, buf2, sizeof(buf2)), -EIO);
        /* A run from cluster 0 ends before the bad entry; nothing is left
         * cached from the failures: cluster 0 still reads. */
        assert_int_equal(img_map(i, 0, VSIZE, &e), 0);
        assert_int_equal(e.kind, IMG_EXTENT_DATA);
        assert_int_equal(e.length, CS);
        assert_int_equal(img_read(i, 0, buf, 1), 0);
        assert_int_equal(buf[0], DATA_BYTE);
        img_close(i);
    }
}

/* Raw deflate with QEMU's 4 KiB window, as qcow2 stores a compressed cluster. */
static size_t deflate_cluster(const uint8_t *in, uint8_t *out, size_t outlen)
{
    z_stream z = { 0 };
    size_t n;

    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, -12, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)in;
    z.avail_in = CS;
    z.next_out = out;
    z.avail_out = (uInt)outlen;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    n = outlen - z.avail_out;
    deflateEnd(&z);
    return n;
}

/* Positive controls for the table above: a zero cluster, and a compressed
 * cluster at an unaligned offset in a cluster appended to the image. */
static void a_good_zero_flag_and_compressed_cluster_read_correctly(void **state)
{
    testdir *d = *state;
    static uint8_t b[IMG_BYTES + CS];
    uint8_t buf[CS], want[CS];
    uint64_t coff = IMG_BYTES + 0x1f0, extra;
    char img_path[PATH_MAX], raw_path[PATH_MAX];
    char *check[] = { "qemu-img", "check", "-q", "-f", "qcow2", img_path, NULL };
    char *convert[] = { "qemu-img", "convert", "-f", "qcow2", "-O", "raw", img_path, raw_path,
                        NULL };
    size_t clen;
    img_extent e;
    img *i;
    int fd;

    snprintf(img_path, sizeof(img_path), "%s", testdir_path(d, "zc.qcow2"));
    snprintf(raw_path, sizeof(raw_path), "%s", testdir_path(d, "zc.raw"));
    build(b, NULL, NULL);
    for (unsigned k = 0; k < CS; k++)
        want[k] = (uint8_t)(k * 7 / 13);
    clen = deflate_cluster(want, b + coff, sizeof(b) - coff);
    extra = (coff + clen - 1) / 512 - coff / 512;    /* sectors past the first */
    put64(b, OFF_L2 + 16, 1);                        /* cluster 2: zero */
    put64(b, OFF_L2 + 24, COMPRESSED | extra << (62 - (12 - 8)) | coff);   /* cluster 3 */
    put16(b, OFF_RB + 2 * NCLUSTERS, 1);
    write_bytes(img_path, b, sizeof(b));

    /* QEMU agrees that the image is sound and reads the same bytes. */
    assert_int_equal(test_run_argv(check, NULL, false), 0);
    assert_int_equal(test_run_argv(convert, NULL, false), 0);
    fd = open(raw_path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, CS, 3 * CS), CS);
    close(fd);
    assert_memory_equal(buf, want, sizeof(want));

    i = expect_opened(img_path, NULL);
    assert_int_equal(img_map(i, 2 * CS, 3 * CS, &e), 0);
    assert_int_equal(e.kind, IMG_EXTENT_ZERO);
    assert_int_equal(e.length, CS);
    assert_int_equal(img_map(i, 3 * CS + 5, 3 * CS, &e), 0);
    assert_int_equal(e.kind, IMG_EXTENT_COMPRESSED);
    assert_int_equal(e.length, CS - 5);
    assert_int_equal(img_read(i, 3 * CS, buf, sizeof(buf)), 0);
    assert_memory_equal(buf, want, sizeof(want));
    assert_int_equal(img_read(i, 2 * CS, buf, sizeof(buf)), 0);
    memset(want, 0, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
    img_close(i);
}

/* ---- backing chains ---- */

static void a_backing_loop_is_refused(void **state)
{
    testdir *d = *state;
    const char *const roots[] = { d->path, NULL };
    img_open_options o = { .roots = roots };

    make_image(d, "a.qcow2", "b.qcow2", "qcow2");
    make_image(d, "b.qcow2", "a.qcow2", "qcow2");
    expect_refused(testdir_path(d, "a.qcow2"), &o, -ELOOP, "backing chain loops");
    make_image(d, "self.qcow2", "self.qcow2", "qcow2");
    expect_refused(testdir_path(d, "self.qcow2"), &o, -ELOOP, "backing chain loops");
    /* A loop through a symlink to the same file is the same file. */
    assert_int_equal(symlink("c.qcow2", testdir_path(d, "c-link.qcow2")), 0);
    make_image(d, "c.qcow2", "c-link.qcow2", "qcow2");
    expect_refused(testdir_path(d, "c.qcow2"), &o, -ELOOP, "already layer 0");
}

static void a_chain_deeper_than_the_limit_is_refused(void **state)
{
    testdir *d = *state;
    const char *const roots[] = { d->path, NULL };
    img_open_options o = { .roots = roots };
    char name[32], backing[32];
    img *i;

    /* c0 -> c1 -> ... -> c16: 17 layers. */
    for (int k = 0; k <= IMG_MAX_CHAIN; k++) {
        snprintf(name, sizeof(name), "c%d.qcow2", k);
        snprintf(backing, sizeof(backing), "c%d.qcow2", k + 1);
        make_image(d, name, k < IMG_MAX_CHAIN ? backing : NULL,
                   k < IMG_MAX_CHAIN ? "qcow2" : NULL);
    }
    expect_refused(testdir_path(d, "c0.qcow2"), &o, -ELOOP, "backing chain deeper than 16 layers");
    i = expect_opened(testdir_path(d, "c1.qcow2"), &o);
    assert_int_equal(img_depth(i), IMG_MAX_CHAIN);
    img_close(i);
    o.max_depth = 3;
    expect_refused(testdir_path(d, "c13.qcow2"), &o, -ELOOP, "backing chain deeper than 3 layers");
    i = expect_opened(testdir_path(d, "c14.qcow2"), &o);
    assert_int_equal(img_depth(i), 3);
    img_close(i);
}

/* pool/ is the root; outside.qcow2 sits next to it. */
static void backing_files_outside_the_roots_are_refused(void **state)
{
    testdir *d = *state;
    char pool[PATH_MAX], pool2[PATH_MAX], abs_outside[PATH_MAX + 16];
    const char *roots[] = { pool, NULL };
    img_open_options o = { .roots = roots };
    img *i;

    snprintf(pool, sizeof(pool), "%s", testdir_path(d, "pool"));
    snprintf(pool2, sizeof(pool2), "%s", testdir_path(d, "pool2"));
    assert_int_equal(mkdir(pool, 0755), 0);
    assert_int_equal(mkdir(pool2, 0755), 0);
    make_image(d, "outside.qcow2", NULL, NULL);
    make_image(d, "pool2/sibling.qcow2", NULL, NULL);
    make_image(d, "pool/inside.qcow2", NULL, NULL);

    make_image(d, "pool/dotdot.qcow2", "../outside.qcow2", "qcow2");
    expect_refused(testdir_path(d, "pool/dotdot.qcow2"), &o, -EPERM, "outside the storage roots");

    snprintf(abs_outside, sizeof(abs_outside), "%s/outside.qcow2", d->path);
    make_image(d, "pool/absolute.qcow2", abs_outside, "qcow2");
    expect_refused(testdir_path(d, "pool/absolute.qcow2"), &o, -EPERM, "outside the storage roots");

    assert_int_equal(symlink("../outside.qcow2", testdir_path(d, "pool/link-out.qcow2")), 0);
    make_image(d, "pool/via-link.qcow2", "link-out.qcow2", "qcow2");
    expect_refused(testdir_path(d, "pool/via-link.qcow2"), &o, -EPERM, "outside the storage roots");

    /* "pool2" shares a prefix with "pool" but is not inside it. */
    make_image(d, "pool/prefix.qcow2", "../pool2/sibling.qcow2", "qcow2");
    expect_refused(testdir_path(d, "pool/prefix.qcow2"), &o, -EPERM, "outside the storage roots");

    /* No roots: no backing file at all. */
    make_image(d, "pool/plain-over.qcow2", "inside.qcow2", "qcow2");
    expect_refused(testdir_path(d, "pool/plain-over.qcow2"), NULL, -EPERM,
                   "outside the storage roots");

    /* Positive controls: a relative name and a symlink that stay inside. */
    i = expect_opened(testdir_path(d, "pool/plain-over.qcow2"), &o);
    assert_int_equal(img_depth(i), 2);
    img_close(i);
    assert_int_equal(symlink("inside.qcow2", testdir_path(d, "pool/link-in.qcow2")), 0);
    make_image(d, "pool/via-link-in.qcow2", "link-in.qcow2", "qcow2");
    i = expect_opened(testdir_path(d, "pool/via-link-in.qcow2"), &o);
    img_close(i);
    /* The root itself given through a symlink still holds its files. */
    assert_int_equal(symlink("pool", testdir_path(d, "pool-link")), 0);
    snprintf(pool, sizeof(pool), "%s", testdir_path(d, "pool-link"));
    i = expect_opened(testdir_path(d, "pool/plain-over.qcow2"), &o);
    img_close(i);
}

static void a_missing_backing_file_is_refused(void **state)
{
    testdir *d = *state;
    const char *const roots[] = { d->path, NULL };
    img_open_options o = { .roots = roots };

    make_image(d, "orphan.qcow2", "gone.qcow2", "qcow2");
    expect_refused(testdir_path(d, "orphan.qcow2"), &o, -ENOENT, "backing file 'gone.qcow2'");
}

static void things_that_are_not_images_are_refused(void **state)
{
    testdir *d = *state;
    const char *const roots[] = { d->path, NULL };
    img_open_options o = { .roots = roots };
    char err[256];
    img *i = NULL;

    assert_int_equal(img_open(d->path, IMG_FORMAT_RAW, NULL, &i, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "not a regular file or block device"));
    /* A FIFO, as the image or as its backing file: refused, not waited on. */
    assert_int_equal(mkfifo(testdir_path(d, "fifo"), 0600), 0);
    assert_int_equal(img_open(testdir_path(d, "fifo"), IMG_FORMAT_QCOW2, NULL, &i, err,
                              sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "not a regular file or block device"));
    make_image(d, "over-fifo.qcow2", "fifo", "raw");
    expect_refused(testdir_path(d, "over-fifo.qcow2"), &o, -EINVAL,
                   "not a regular file or block device");
    /* A character device is not an image either. */
    assert_int_equal(img_open("/dev/null", IMG_FORMAT_RAW, NULL, &i, err, sizeof(err)), -EINVAL);
    assert_int_equal(img_open(testdir_path(d, "nope"), IMG_FORMAT_QCOW2, NULL, &i, err,
                              sizeof(err)),
                     -ENOENT);
    assert_int_equal(img_open(testdir_path(d, "nope"), (img_format)7, NULL, &i, err, sizeof(err)),
                     -EINVAL);
    assert_null(i);
}

#define T(f) cmocka_unit_test_setup_teardown(f, testdir_setup, testdir_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(the_hand_made_image_is_valid_and_reads_its_data),
        T(every_hostile_header_is_refused_with_its_errno_and_message),
        T(a_corrupt_image_opens_read_only_but_not_writable),
        T(bad_l2_entries_fail_map_and_read_with_eio),
        T(a_good_zero_flag_and_compressed_cluster_read_correctly),
        T(a_backing_loop_is_refused),
        T(a_chain_deeper_than_the_limit_is_refused),
        T(backing_files_outside_the_roots_are_refused),
        T(a_missing_backing_file_is_refused),
        T(things_that_are_not_images_are_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
