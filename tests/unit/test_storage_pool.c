/* test_storage_pool.c: storage pool locations: the xCAT vmstorage forms
 * accepted and the fields they give, the canonical form and its round trip,
 * the refusals and the message each one gives, and the output left
 * untouched when parsing fails. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "storage/storage.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ERR_LEN 512
#define POISON 0xa5

static void parse_ok(const char *s, img_pool_spec *ret)
{
    char err[ERR_LEN] = "";
    int r = img_pool_spec_parse(s, ret, err, sizeof(err));

    if (r != 0)
        print_message("refused '%s': %s\n", s, err);
    assert_int_equal(r, 0);
}

static void assert_spec_equal(const img_pool_spec *a, const img_pool_spec *b)
{
    assert_int_equal(a->kind, b->kind);
    assert_string_equal(a->path, b->path);
    assert_string_equal(a->server, b->server);
    assert_string_equal(a->export_path, b->export_path);
}

/* ---- good inputs ---- */

static const struct good_case {
    const char *in;
    img_pool_kind kind;
    const char *path;
    const char *server;
    const char *export_path;
    const char *canonical;
} good_cases[] = {
    {"dir:///var/lib/libvirt/images", IMG_POOL_DIR, "/var/lib/libvirt/images", "", "",
     "dir:///var/lib/libvirt/images"},
    {"/var/lib/x", IMG_POOL_DIR, "/var/lib/x", "", "", "dir:///var/lib/x"},
    {"/var//lib///x//", IMG_POOL_DIR, "/var/lib/x", "", "", "dir:///var/lib/x"},
    {"/var/./lib/.", IMG_POOL_DIR, "/var/lib", "", "", "dir:///var/lib"},
    {"/", IMG_POOL_DIR, "/", "", "", "dir:///"},
    {"dir:////", IMG_POOL_DIR, "/", "", "", "dir:///"},
    {"DIR:///srv/pool", IMG_POOL_DIR, "/srv/pool", "", "", "dir:///srv/pool"},
    {"/srv/vm images/a:b", IMG_POOL_DIR, "/srv/vm images/a:b", "", "",
     "dir:///srv/vm images/a:b"},
    {"/srv/...", IMG_POOL_DIR, "/srv/...", "", "", "dir:///srv/..."},
    {"phy:/dev/sdb1", IMG_POOL_PHY, "/dev/sdb1", "", "", "phy:/dev/sdb1"},
    {"phy:/dev//mapper/vg-lv/", IMG_POOL_PHY, "/dev/mapper/vg-lv", "", "",
     "phy:/dev/mapper/vg-lv"},
    {"PHY:/dev/disk/by-id/wwn-0x5000c500a1b2c3d4", IMG_POOL_PHY,
     "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4", "", "",
     "phy:/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"},
    {"nfs://10.0.0.1/install/vms/", IMG_POOL_NFS, "", "10.0.0.1", "/install/vms",
     "nfs://10.0.0.1/install/vms"},
    {"nfs://[fd00::1]/x", IMG_POOL_NFS, "", "fd00::1", "/x", "nfs://[fd00::1]/x"},
    {"nfs://[::ffff:10.0.0.1]//a//b/", IMG_POOL_NFS, "", "::ffff:10.0.0.1", "/a/b",
     "nfs://[::ffff:10.0.0.1]/a/b"},
    {"nfs://nas.example/export", IMG_POOL_NFS, "", "nas.example", "/export",
     "nfs://nas.example/export"},
    {"nfs://NAS-01.Example.org/", IMG_POOL_NFS, "", "NAS-01.Example.org", "/",
     "nfs://NAS-01.Example.org/"},
};

static void good_locations_parse_into_the_expected_fields(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(good_cases); i++) {
        const struct good_case *c = &good_cases[i];
        img_pool_spec p;

        memset(&p, POISON, sizeof(p));
        print_message("%s\n", c->in);
        parse_ok(c->in, &p);
        assert_int_equal(p.kind, c->kind);
        assert_string_equal(p.path, c->path);
        assert_string_equal(p.server, c->server);
        assert_string_equal(p.export_path, c->export_path);
    }
}

static void good_locations_format_canonically_and_parse_back_to_the_same_spec(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(good_cases); i++) {
        const struct good_case *c = &good_cases[i];
        img_pool_spec p, again;
        char buf[PATH_MAX + 300];
        int n;

        parse_ok(c->in, &p);
        n = img_pool_spec_format(&p, buf, sizeof(buf));
        assert_int_equal(n, (int)strlen(c->canonical));
        assert_string_equal(buf, c->canonical);
        parse_ok(buf, &again);
        assert_spec_equal(&p, &again);
    }
}

/* ---- bad inputs ---- */

static const struct bad_case {
    const char *in;
    int error;
    const char *message;     /* a substring of the message */
} bad_cases[] = {
    {"", -EINVAL, "empty"},
    {"var/lib/x", -EINVAL, "not an absolute path"},
    {"./x", -EINVAL, "not an absolute path"},
    {"dir://var/lib", -EINVAL, "not an absolute path"},
    {"dir://", -EINVAL, "not an absolute path"},
    {"dir:/var/lib", -EINVAL, "needs '//'"},
    {"nfs:/host/x", -EINVAL, "needs '//'"},
    {"/var/../etc", -EINVAL, "'..' component"},
    {"/var/lib/..", -EINVAL, "'..' component"},
    {"phy:/dev/../etc/passwd", -EINVAL, "'..' component"},
    {"nfs://h/a/../b", -EINVAL, "'..' component"},
    {"/var/lib\nx", -EINVAL, "control character (0x0a) at offset 8"},
    {"/var/lib\tx", -EINVAL, "control character (0x09)"},
    {"nfs://h\x7f/x", -EINVAL, "control character (0x7f)"},
    {"\x1b[2J/x", -EINVAL, "control character (0x1b) at offset 0"},
    {"iscsi://10.0.0.1/iqn", -EINVAL, "unknown scheme 'iscsi'"},
    {"lvm:vg0", -EINVAL, "unknown scheme 'lvm'"},
    {":/x", -EINVAL, "unknown scheme ''"},
    {"phy:sdb1", -EINVAL, "not an absolute path"},
    {"phy:", -EINVAL, "not an absolute path"},
    {"phy:/tmp/disk.img", -EINVAL, "not under /dev/"},
    {"phy:/dev", -EINVAL, "not under /dev/"},
    {"phy:/dev/", -EINVAL, "not under /dev/"},
    {"phy:/devices/sdb", -EINVAL, "not under /dev/"},
    {"nfs://", -EINVAL, "no export path"},
    {"nfs://host", -EINVAL, "no export path"},
    {"nfs:///export", -EINVAL, "empty server"},
    {"nfs://[]/x", -EINVAL, "empty server"},
    {"nfs://fd00::1/x", -EINVAL, "IPv6 address must be in brackets"},
    {"nfs://host:2049/x", -EINVAL, "IPv6 address must be in brackets"},
    {"nfs://[fd00::1]:2049/x", -EINVAL, "must close with ']'"},
    {"nfs://[fd00::1/x", -EINVAL, "must close with ']'"},
    {"nfs://[10.0.0.1]/x", -EINVAL, "not an IPv6 address"},
    {"nfs://[fd00::g]/x", -EINVAL, "not an IPv6 address"},
    {"nfs://[fe80::1%eth0]/x", -EINVAL, "not an IPv6 address"},
    {"nfs://host_1/x", -EINVAL, "character outside [A-Za-z0-9.-]"},
    {"nfs://user@host/x", -EINVAL, "character outside [A-Za-z0-9.-]"},
    {"nfs://host]/x", -EINVAL, "character outside [A-Za-z0-9.-]"},
    {"nfs://h\xc3\xa9/x", -EINVAL, "character outside [A-Za-z0-9.-]"},
    {"nfs://-o/x", -EINVAL, "starts with '-'"},
    {"nfs://.host/x", -EINVAL, "starts with '.'"},
};

static void bad_locations_are_refused_with_a_message_and_leave_ret_untouched(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++) {
        const struct bad_case *c = &bad_cases[i];
        img_pool_spec p, poison;
        char err[ERR_LEN] = "";
        int r;

        memset(&p, POISON, sizeof(p));
        memset(&poison, POISON, sizeof(poison));
        r = img_pool_spec_parse(c->in, &p, err, sizeof(err));
        print_message("'%s': %d %s\n", c->in, r, err);
        assert_int_equal(r, c->error);
        assert_non_null(strstr(err, c->message));
        assert_memory_equal(&p, &poison, sizeof(p));
    }
}

/* ---- lengths ---- */

/* A path of exactly len bytes: "/" followed by 'a's, with a '/' every 200
 * bytes so no component exceeds NAME_MAX. */
static char *long_path(const char *prefix, size_t len)
{
    size_t plen = strlen(prefix);
    char *s = malloc(plen + len + 1);

    assert_non_null(s);
    memcpy(s, prefix, plen);
    for (size_t i = 0; i < len; i++)
        s[plen + i] = i % 200 == 0 ? '/' : 'a';
    if (s[plen + len - 1] == '/')
        s[plen + len - 1] = 'a';
    s[plen + len] = '\0';
    return s;
}

static void paths_longer_than_path_max_are_refused_and_the_longest_that_fits_is_accepted(
    void **state)
{
    static const char *const prefixes[] = {"", "dir://", "phy:/dev", "nfs://h"};

    for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++) {
        size_t base = i == 2 ? strlen("/dev") : 0;
        char *fits = long_path(prefixes[i], PATH_MAX - 1 - base);
        char *over = long_path(prefixes[i], PATH_MAX - base);
        char err[ERR_LEN] = "";
        img_pool_spec p, poison;

        parse_ok(fits, &p);
        assert_int_equal(strlen(i == 3 ? p.export_path : p.path), PATH_MAX - 1);
        memset(&p, POISON, sizeof(p));
        memset(&poison, POISON, sizeof(poison));
        assert_int_equal(img_pool_spec_parse(over, &p, err, sizeof(err)), -ENAMETOOLONG);
        assert_non_null(strstr(err, "longer than"));
        assert_memory_equal(&p, &poison, sizeof(p));
        free(fits);
        free(over);
    }
}

static void folded_slashes_do_not_count_against_the_length(void **state)
{
    char *s = malloc(3 * PATH_MAX);
    img_pool_spec p;

    assert_non_null(s);
    memset(s, '/', 3 * PATH_MAX - 3);
    strcpy(s + 3 * PATH_MAX - 3, "x/");
    parse_ok(s, &p);
    assert_string_equal(p.path, "/x");
    free(s);
}

static void servers_longer_than_255_bytes_are_refused(void **state)
{
    char in[300 + 16], err[ERR_LEN] = "";
    img_pool_spec p;

    strcpy(in, "nfs://");
    memset(in + 6, 'h', 255);
    strcpy(in + 6 + 255, "/x");
    parse_ok(in, &p);
    assert_int_equal(strlen(p.server), 255);

    memset(in + 6, 'h', 256);
    strcpy(in + 6 + 256, "/x");
    assert_int_equal(img_pool_spec_parse(in, &p, err, sizeof(err)), -ENAMETOOLONG);
    assert_non_null(strstr(err, "NFS server is longer than 255 bytes"));
}

/* ---- format and the error buffer ---- */

static void format_refuses_a_buffer_too_small_and_an_unknown_kind(void **state)
{
    const char *canonical = "nfs://[fd00::1]/x";
    img_pool_spec p;
    char buf[64];
    size_t n = strlen(canonical);

    parse_ok(canonical, &p);
    assert_int_equal(img_pool_spec_format(&p, buf, n + 1), (int)n);
    assert_string_equal(buf, canonical);
    assert_int_equal(img_pool_spec_format(&p, buf, n), -ENOBUFS);
    assert_int_equal(img_pool_spec_format(&p, NULL, 0), -ENOBUFS);
    p.kind = (img_pool_kind)42;
    assert_int_equal(img_pool_spec_format(&p, buf, sizeof(buf)), -EINVAL);
}

static void parse_refuses_without_an_error_buffer(void **state)
{
    img_pool_spec p;
    char err[4] = "xyz";

    assert_int_equal(img_pool_spec_parse("relative", &p, NULL, 0), -EINVAL);
    assert_int_equal(img_pool_spec_parse(NULL, &p, NULL, 0), -EINVAL);
    assert_int_equal(img_pool_spec_parse("relative", &p, err, sizeof(err)), -EINVAL);
    assert_int_equal(strlen(err), 3);    /* truncated, terminated */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_locations_parse_into_the_expected_fields),
        cmocka_unit_test(good_locations_format_canonically_and_parse_back_to_the_same_spec),
        cmocka_unit_test(bad_locations_are_refused_with_a_message_and_leave_ret_untouched),
        cmocka_unit_test(
            paths_longer_than_path_max_are_refused_and_the_longest_that_fits_is_accepted),
        cmocka_unit_test(folded_slashes_do_not_count_against_the_length),
        cmocka_unit_test(servers_longer_than_255_bytes_are_refused),
        cmocka_unit_test(format_refuses_a_buffer_too_small_and_an_unknown_kind),
        cmocka_unit_test(parse_refuses_without_an_error_buffer),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
