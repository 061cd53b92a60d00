/* test_net.c: bridges, taps and VLANs made by net/ in a network namespace
 * of the test's own (unshare(CLONE_NEWNET) at start: nothing the test does
 * reaches the host's links, and the namespace goes with the process). What
 * was made is read back with iproute2's JSON output (`ip -d -j link show`,
 * `bridge -j vlan show`), not from net/'s own answers. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "net/net.h"

#define ERR_LEN 256

/* ---- iproute2's view ------------------------------------------------------ */

static json_object *run_json(const char *cmd)
{
    char buf[65536];
    size_t n = 0;
    FILE *p = popen(cmd, "r");
    json_object *j;

    assert_non_null(p);
    while (n < sizeof(buf) - 1 && !feof(p))
        n += fread(buf + n, 1, sizeof(buf) - 1 - n, p);
    buf[n] = '\0';
    pclose(p);
    j = json_tokener_parse(buf);
    if (!j)
        print_message("%s: no JSON: %s\n", cmd, buf);
    assert_non_null(j);
    return j;
}

static json_object *member(json_object *o, const char *key)
{
    json_object *v = NULL;

    json_object_object_get_ex(o, key, &v);
    return v;
}

/* The link as `ip -d -j link show` has it (caller puts the array). */
static json_object *ip_link(const char *name, json_object **arr)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "ip -d -j link show dev %s 2>/dev/null || echo []", name);
    *arr = run_json(cmd);
    return json_object_array_length(*arr) ? json_object_array_get_idx(*arr, 0) : NULL;
}

static bool link_exists(const char *name)
{
    json_object *arr;
    bool yes = ip_link(name, &arr) != NULL;

    json_object_put(arr);
    return yes;
}

/* "untagged pvid" etc. of a port's VLAN vid, or NULL when it has none. */
static bool port_vlan(const char *port, int vid, bool *pvid, bool *untagged)
{
    json_object *arr = run_json("bridge -j vlan show");
    bool found = false;

    for (size_t i = 0; i < json_object_array_length(arr) && !found; i++) {
        json_object *p = json_object_array_get_idx(arr, i), *vlans = member(p, "vlans");
        if (strcmp(json_object_get_string(member(p, "ifname")), port) != 0)
            continue;
        for (size_t k = 0; k < json_object_array_length(vlans) && !found; k++) {
            json_object *v = json_object_array_get_idx(vlans, k), *flags = member(v, "flags");
            if (json_object_get_int(member(v, "vlan")) != vid)
                continue;
            found = true;
            *pvid = *untagged = false;
            for (size_t f = 0; flags && f < json_object_array_length(flags); f++) {
                const char *s = json_object_get_string(json_object_array_get_idx(flags, f));
                *pvid |= !strcmp(s, "PVID");
                *untagged |= !strcmp(s, "Egress Untagged");
            }
        }
    }
    json_object_put(arr);
    return found;
}

/* ---- fixtures ---------------------------------------------------------------- */

static int setup_nl(void **state)
{
    net_nl *nl;

    if (net_nl_open(2000, &nl) < 0)
        return -1;
    *state = nl;
    return 0;
}

static int teardown_nl(void **state)
{
    net_nl *nl = *state;
    net_link *all;
    size_t n;

    /* Each test starts from a namespace with only lo. */
    if (net_link_list(nl, &all, &n) == 0) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(all[i].name, "lo") != 0)
                net_link_delete(nl, all[i].ifindex);
        free(all);
    }
    net_nl_close(nl);
    return 0;
}

/* Whether this kernel filters VLANs on bridges (Debian's does; the
 * development VM's does not, and has no 802.1Q either). */
static bool vlan_filtering_supported(net_nl *nl)
{
    char err[ERR_LEN] = "";
    net_link br;
    int r = net_bridge_create(nl, "br-probe", true, err, sizeof(err));

    if (r == 0 && net_link_get(nl, "br-probe", &br) == 0)
        net_link_delete(nl, br.ifindex);
    if (r == -EOPNOTSUPP)
        assert_non_null(strstr(err, "no bridge VLAN filtering"));
    return r == 0;
}

static void make_bridge(net_nl *nl, const char *name, bool vlans, unsigned mtu)
{
    char err[ERR_LEN] = "";
    net_link br;

    if (net_bridge_create(nl, name, vlans, err, sizeof(err)) != 0)
        fail_msg("bridge %s: %s", name, err);
    if (mtu) {
        /* A bridge without ports takes any MTU up to 65535 from its setting. */
        assert_int_equal(net_link_get(nl, name, &br), 0);
        assert_int_equal(net_link_set_mtu(nl, br.ifindex, mtu), 0);
    }
}

/* ---- tests -------------------------------------------------------------------------- */

static void a_bridge_is_created_up_and_listed(void **state)
{
    net_nl *nl = *state;
    json_object *arr, *l;
    net_link br;

    make_bridge(nl, "br-t0", false, 0);
    l = ip_link("br-t0", &arr);
    assert_non_null(l);
    assert_string_equal(json_object_get_string(member(member(l, "linkinfo"), "info_kind")), "bridge");
    assert_int_equal(json_object_get_int(member(member(member(l, "linkinfo"), "info_data"), "vlan_filtering")),
                     0);
    assert_non_null(strstr(json_object_to_json_string(member(l, "flags")), "\"UP\""));
    json_object_put(arr);
    assert_int_equal(net_link_get(nl, "br-t0", &br), 0);
    assert_string_equal(br.kind, "bridge");
    assert_true(br.up);
    assert_int_equal(net_link_get(nl, "nope0", &br), -ENODEV);
}

static void a_tap_joins_its_bridge_with_the_bridges_mtu_and_is_up(void **state)
{
    net_nl *nl = *state;
    net_tap_spec s = { .name = "tap-t1", .bridge = "br-t1" };
    char err[ERR_LEN] = "";
    json_object *arr, *l;
    net_tap t;

    make_bridge(nl, "br-t1", false, 9000);
    assert_int_equal(net_tap_attach(nl, &s, &t, err, sizeof(err)), 0);
    assert_int_equal(t.nfds, 1);
    assert_int_equal(t.mtu, 9000);
    assert_true(fcntl(t.fds[0], F_GETFD) & FD_CLOEXEC);
    l = ip_link("tap-t1", &arr);
    assert_non_null(l);
    assert_string_equal(json_object_get_string(member(l, "master")), "br-t1");
    assert_int_equal(json_object_get_int(member(l, "mtu")), 9000);
    assert_string_equal(json_object_get_string(member(member(l, "linkinfo"), "info_kind")), "tun");
    assert_string_equal(json_object_get_string(member(member(member(l, "linkinfo"), "info_data"), "type")), "tap");
    /* iproute2 6.1 writes these flags as JSON booleans */
    assert_false(json_object_get_boolean(member(member(member(l, "linkinfo"), "info_data"), "pi")));
    assert_true(json_object_get_boolean(member(member(member(l, "linkinfo"), "info_data"), "vnet_hdr")));
    assert_non_null(strstr(json_object_to_json_string(member(l, "flags")), "\"UP\""));
    json_object_put(arr);
    /* the tap lives as long as an fd of it: QEMU's, once it has them */
    net_tap_close(&t);
    assert_false(link_exists("tap-t1"));
}

/* A bridge looked up once takes several taps; a non-bridge is refused by
 * the lookup, before any tap is made. */
static void taps_join_a_bridge_looked_up_once(void **state)
{
    net_nl *nl = *state;
    net_tap_spec a = { .name = "tap-t6a", .bridge = "br-t6" }, b = { .name = "tap-t6b", .bridge = "br-t6" };
    char err[ERR_LEN] = "";
    json_object *arr;
    net_link br;
    net_tap ta, tb;

    make_bridge(nl, "br-t6", false, 1400);
    assert_int_equal(net_bridge_get(nl, "br-t6", &br, err, sizeof(err)), 0);
    assert_int_equal(net_tap_attach_to(nl, &a, &br, &ta, err, sizeof(err)), 0);
    assert_int_equal(net_tap_attach_to(nl, &b, &br, &tb, err, sizeof(err)), 0);
    assert_int_equal(tb.mtu, 1400);
    assert_string_equal(json_object_get_string(member(ip_link("tap-t6a", &arr), "master")), "br-t6");
    json_object_put(arr);
    assert_string_equal(json_object_get_string(member(ip_link("tap-t6b", &arr), "master")), "br-t6");
    json_object_put(arr);
    net_tap_close(&ta);
    net_tap_close(&tb);
    assert_int_equal(net_bridge_get(nl, "lo", &br, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "bridge: lo is not a bridge (a plain device)");
    assert_int_equal(net_bridge_get(nl, "br-none", &br, err, sizeof(err)), -ENODEV);
    assert_string_equal(err, "bridge: br-none does not exist");
}

static void a_tap_gets_its_vlan_untagged_and_its_trunks_tagged(void **state)
{
    net_nl *nl = *state;
    static const uint16_t trunks[] = { 200, 300 };
    net_tap_spec s = { .name = "tap-t2", .bridge = "br-t2", .vlan = 100, .trunks = trunks, .ntrunks = 2 };
    char err[ERR_LEN] = "";
    bool pvid, untagged;
    net_tap t;

    if (!vlan_filtering_supported(nl)) {
        print_message("this kernel has no bridge VLAN filtering: VLANs cannot be checked here\n");
        skip();
    }
    make_bridge(nl, "br-t2", true, 0);
    if (net_tap_attach(nl, &s, &t, err, sizeof(err)) != 0)
        fail_msg("attach: %s", err);
    assert_true(port_vlan("tap-t2", 100, &pvid, &untagged));
    assert_true(pvid && untagged);
    assert_true(port_vlan("tap-t2", 200, &pvid, &untagged));
    assert_false(pvid || untagged);
    assert_true(port_vlan("tap-t2", 300, &pvid, &untagged));
    assert_false(port_vlan("tap-t2", 1, &pvid, &untagged));   /* the default is gone */
    net_tap_close(&t);
}

static void a_multi_queue_tap_has_one_fd_per_queue(void **state)
{
    net_nl *nl = *state;
    net_tap_spec s = { .name = "tap-t3", .bridge = "br-t3", .queues = 4 };
    char err[ERR_LEN] = "";
    json_object *arr, *l;
    net_tap t;

    make_bridge(nl, "br-t3", false, 0);
    assert_int_equal(net_tap_attach(nl, &s, &t, err, sizeof(err)), 0);
    assert_int_equal(t.nfds, 4);
    l = ip_link("tap-t3", &arr);
    assert_true(json_object_get_boolean(member(member(member(l, "linkinfo"), "info_data"), "multi_queue")));
    json_object_put(arr);
    net_tap_close(&t);
}

static void refusals_name_the_field_and_leave_no_tap(void **state)
{
    net_nl *nl = *state;
    static const uint16_t bad_trunk[] = { 4095 };
    static const struct {
        net_tap_spec s;
        int r;
        const char *prefix;
    } cases[] = {
        { { .name = "tap-x", .bridge = "br-missing" }, -ENODEV, "bridge: br-missing does not exist" },
        { { .name = "tap-x", .bridge = "a-bridge-name-too-long" }, -EINVAL, "bridge: " },
        { { .name = "tap-x", .bridge = "br/x" }, -EINVAL, "bridge: " },
        { { .name = "tap-name-too-long", .bridge = "br-t4" }, -EINVAL, "tap: " },
        { { .name = "tap-x", .bridge = "br-t4", .vlan = 4095 }, -EINVAL, "vlan: " },
        { { .name = "tap-x", .bridge = "br-t4", .vlan = 100 }, -EOPNOTSUPP, "vlan 100: " },
        { { .name = "tap-x", .bridge = "br-t4", .trunks = bad_trunk, .ntrunks = 1 }, -EINVAL, "trunks: " },
        { { .name = "tap-x", .bridge = "br-t4", .queues = 17 }, -EINVAL, "queues: " },
        { { .name = "tap-x", .bridge = "lo" }, -EINVAL, "bridge: lo is not a bridge" },
    };
    net_tap t;

    make_bridge(nl, "br-t4", false, 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[ERR_LEN] = "";
        int r = net_tap_attach(nl, &cases[i].s, &t, err, sizeof(err));
        print_message("  -> %s\n", err);
        assert_int_equal(r, cases[i].r);
        assert_true(strncmp(err, cases[i].prefix, strlen(cases[i].prefix)) == 0);
        assert_false(link_exists("tap-x"));
    }
}

static void a_tap_name_in_use_is_refused(void **state)
{
    net_nl *nl = *state;
    net_tap_spec s = { .name = "tap-t5", .bridge = "br-t5" };
    char err[ERR_LEN] = "";
    net_tap t, t2;

    make_bridge(nl, "br-t5", false, 0);
    assert_int_equal(net_tap_attach(nl, &s, &t, err, sizeof(err)), 0);
    assert_int_equal(net_tap_attach(nl, &s, &t2, err, sizeof(err)), -EEXIST);
    assert_non_null(strstr(err, "exists already"));
    assert_true(link_exists("tap-t5"));       /* the first one is untouched */
    net_tap_close(&t);
}

/* No SR-IOV device here: what can be checked is that a link without VFs is
 * refused with a message that says what to look at. */
static void a_vf_setting_on_a_link_without_vfs_is_refused_clearly(void **state)
{
    net_nl *nl = *state;
    uint8_t mac[NET_MAC_LEN] = { 0x52, 0x54, 0, 1, 2, 3 };
    char err[ERR_LEN] = "";
    net_link br;

    make_bridge(nl, "br-vf", false, 0);
    assert_int_equal(net_link_get(nl, "br-vf", &br), 0);
    assert_true(net_vf_set(nl, br.ifindex, 0, mac, 100, err, sizeof(err)) < 0);
    print_message("  -> %s\n", err);
    assert_non_null(strstr(err, "VF 0 of link"));
    assert_int_equal(net_vf_set(nl, br.ifindex, 0, mac, 4095, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "vlan:"));
}

static void names_and_macs_are_checked(void **state)
{
    uint8_t mac[NET_MAC_LEN];
    char text[NET_MAC_TEXT];

    assert_null(net_ifname_problem("br0"));
    assert_null(net_ifname_problem("123456789012345"));
    assert_non_null(net_ifname_problem("1234567890123456"));
    assert_non_null(net_ifname_problem(""));
    assert_non_null(net_ifname_problem(".."));
    assert_non_null(net_ifname_problem("br 0"));
    assert_non_null(net_ifname_problem("br:0"));
    assert_int_equal(net_mac_parse("52:54:00:AB:cd:01", mac), 0);
    net_mac_format(mac, text);
    assert_string_equal(text, "52:54:00:ab:cd:01");
    assert_int_equal(net_mac_parse("52-54-00-ab-cd-01", mac), 0);
    assert_int_equal(net_mac_parse("52:54-00:ab:cd:01", mac), -EINVAL);
    assert_int_equal(net_mac_parse("01:00:5e:00:00:01", mac), -EINVAL);   /* multicast */
    assert_int_equal(net_mac_parse("52:54:00:ab:cd", mac), -EINVAL);
    assert_int_equal(net_mac_parse("52:54:00:ab:cd:0g", mac), -EINVAL);
    assert_int_equal(net_mac_generate(mac), 0);
    assert_true(mac[0] == 0x52 && mac[1] == 0x54 && mac[2] == 0x00);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_and_macs_are_checked),
#define T(f) cmocka_unit_test_setup_teardown(f, setup_nl, teardown_nl)
        T(a_bridge_is_created_up_and_listed),
        T(a_tap_joins_its_bridge_with_the_bridges_mtu_and_is_up),
        T(taps_join_a_bridge_looked_up_once),
        T(a_tap_gets_its_vlan_untagged_and_its_trunks_tagged),
        T(a_multi_queue_tap_has_one_fd_per_queue),
        T(refusals_name_the_field_and_leave_no_tap),
        T(a_tap_name_in_use_is_refused),
        T(a_vf_setting_on_a_link_without_vfs_is_refused_clearly),
#undef T
    };

    /* A namespace of the test's own; without the right to make one there is
     * nothing this test can check. */
    if (unshare(CLONE_NEWNET) < 0) {
        fprintf(stderr, "test_net: unshare(CLONE_NEWNET): %s: skipped\n", strerror(errno));
        return 77;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
