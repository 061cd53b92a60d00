/* qemu_img.c: see qemu_img.h. */
#include "qemu_img.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

json_object *test_qemu_json(const testdir *d, int *status, const char *cmd, const char *path)
{
    const char *out = testdir_path(d, "out.json");
    int r = test_run_status(out, "qemu-img", cmd, "--output=json", path, NULL);
    json_object *j = json_object_from_file(out);

    if (status)
        *status = r;
    if (!j)
        print_message("qemu-img %s %s: exit %d, no JSON\n", cmd, path, r);
    assert_non_null(j);
    return j;
}

json_object *test_jget(json_object *o, const char *key)
{
    json_object *v = NULL;

    json_object_object_get_ex(o, key, &v);
    return v;
}

uint64_t test_jint(json_object *o, const char *key)
{
    json_object *v = test_jget(o, key);

    return v ? (uint64_t)json_object_get_int64(v) : 0;
}

const char *test_jstr(json_object *o, const char *key)
{
    json_object *v = test_jget(o, key);

    return v ? json_object_get_string(v) : "";
}

test_qemu_check test_qemu_img_check(const testdir *d, const char *path)
{
    test_qemu_check q = { 0 };
    json_object *j = test_qemu_json(d, &q.status, "check", path);

    q.leaks = test_jint(j, "leaks");
    q.corruptions = test_jint(j, "corruptions");
    q.allocated = test_jint(j, "allocated-clusters");
    q.fragmented = test_jint(j, "fragmented-clusters");
    assert_int_equal(test_jint(j, "check-errors"), 0);
    json_object_put(j);
    return q;
}

void test_assert_qemu_clean(const testdir *d, const char *path)
{
    test_qemu_check q = test_qemu_img_check(d, path);

    if (q.status != 0 || q.leaks != 0 || q.corruptions != 0)
        print_message("qemu-img check %s: exit %d, %llu leaks, %llu corruptions\n", path, q.status,
                      (unsigned long long)q.leaks, (unsigned long long)q.corruptions);
    assert_int_equal(q.status, 0);
    assert_int_equal(q.leaks, 0);
    assert_int_equal(q.corruptions, 0);
}

void test_assert_qemu_identical(const char *a, const char *fa, const char *b, const char *fb)
{
    int r = test_run_status(NULL, "qemu-img", "compare", "-q", "-f", fa, "-F", fb, a, b, NULL);

    if (r != 0)
        print_message("qemu-img compare %s %s: exit %d (1: they differ)\n", a, b, r);
    assert_int_equal(r, 0);
}

void test_assert_no_temp_files(const testdir *d)
{
    DIR *dir = opendir(d->path);
    struct dirent *e;

    assert_non_null(dir);
    while ((e = readdir(dir)) != NULL) {
        if (strstr(e->d_name, ".tmp-"))
            print_message("left behind: %s\n", e->d_name);
        assert_null(strstr(e->d_name, ".tmp-"));
    }
    closedir(dir);
}
