/* qemu_img.h: what QEMU's own tools say about an image, for the storage
 * tests: qemu-img's JSON output, its check counts, its compare verdict, and
 * that no temp file of the image layer was left in a test's dir. Every
 * failure is a cmocka assertion. */
#ifndef AGENTD_TESTS_QEMU_IMG_H
#define AGENTD_TESTS_QEMU_IMG_H

#include <stdint.h>

#include <json-c/json.h>

#include "testdir.h"

/* `qemu-img CMD --output=json PATH`, parsed; its exit status in *status. */
json_object *test_qemu_json(const testdir *d, int *status, const char *cmd, const char *path);
json_object *test_jget(json_object *o, const char *key);
/* An integer member, 0 when absent (qemu-img leaves out zero counts). */
uint64_t test_jint(json_object *o, const char *key);
const char *test_jstr(json_object *o, const char *key);

typedef struct test_qemu_check {
    int status;
    uint64_t leaks, corruptions, allocated, fragmented;
} test_qemu_check;

test_qemu_check test_qemu_img_check(const testdir *d, const char *path);
/* qemu-img check exits 0 and finds no leak and no corruption. */
void test_assert_qemu_clean(const testdir *d, const char *path);
/* qemu-img compare -f FA -F FB A B says they are identical. */
void test_assert_qemu_identical(const char *a, const char *fa, const char *b, const char *fb);
/* No ".tmp-" file is in the test's dir. */
void test_assert_no_temp_files(const testdir *d);

#endif
