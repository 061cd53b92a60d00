/* test_net_e2e.c: NICs through agentd and real QEMU (tcg), in a network
 * namespace of the test's own (unshare at start; agentd, its bridges and
 * taps and the QEMUs all live in it and go with it). The guests' own view
 * (their MAC, a ping between them through busybox) is what proves the
 * wiring; iproute2 shows the host side. */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "tests/support/agent_e2e.h"
#include "tests/support/agent_harness.h"

#define BRIDGE "br-e2e"

/* ---- helpers --------------------------------------------------------------- */

static char *nic_guest(const char *name, const char *mac, const char *model)
{
    char extra[256];

    snprintf(extra, sizeof(extra), "\"nics\": [{\"bridge\": \"" BRIDGE "\", \"mac\": \"%s\", \"model\": \"%s\"}]",
             mac, model);
    return guest_def(name, extra);
}

static void boot(t *x, const char *vm)
{
    vm_cmd(x, "vm-start", vm);
    assert_int_equal(wait_file_contains(query(x, vm).console, READY_LINE, 1, BOOT_MS), 0);
}

/* The tap of the VM's first NIC, as vm_nics.c names it. */
static void tap_of(t *x, const char *vm, char *out, size_t len)
{
    snprintf(out, len, "vn%.8s-0", query(x, vm).uuid);
}

static bool link_exists(const char *name)
{
    return sh_status("ip link show dev %s >/dev/null 2>&1", name) == 0;
}

/* The tap is up, on the bridge, with the bridge's MTU. */
static void assert_tap_on_bridge(const char *tap)
{
    if (sh_status("ip -j -d link show dev %s | grep -q '\"master\":\"" BRIDGE "\"'", tap) != 0)
        fail_msg("%s is not on " BRIDGE, tap);
    assert_int_equal(sh_status("ip -j link show dev %s | grep -q '\"UP\"'", tap), 0);
    assert_int_equal(sh_status("ip -j link show dev %s | grep -q '\"mtu\":1500'", tap), 0);
}

static void wait_gone(const char *tap)
{
    for (int i = 0; i < 200 && link_exists(tap); i++)
        usleep(50000);
    assert_false(link_exists(tap));
}

/* The guest's "nic" line for eth0: "eth0 MAC up". */
static void assert_guest_mac(t *x, const char *vm, const char *mac)
{
    char out[512], want[64];

    guest_ask(x, vm, "nic", out, sizeof(out));
    snprintf(want, sizeof(want), "eth0 %s", mac);
    if (!strstr(out, want))
        fail_msg("%s sees '%s', not %s", vm, out, want);
}

static void guest_sh(t *x, const char *vm, const char *command)
{
    char cmd[512], out[2048];

    snprintf(cmd, sizeof(cmd), "run %s", command);
    guest_ask(x, vm, cmd, out, sizeof(out));
}

static void address_guests(t *x)
{
    guest_sh(x, "g1", "ip addr add 10.99.0.1/24 dev eth0");
    guest_sh(x, "g2", "ip addr add 10.99.0.2/24 dev eth0");
}

static void assert_ping(t *x)
{
    /* guest_ask fails the test when ping exits non-zero */
    guest_sh(x, "g1", "ping -c 3 -W 10 10.99.0.2");
    guest_sh(x, "g2", "ping -c 1 -W 10 10.99.0.1");
}

static int setup_bridges(void **state)
{
    return setup_with(state, "create-bridges = yes\n");
}

/* ---- tests ---------------------------------------------------------------------- */

static void two_guests_on_one_bridge_see_their_macs_and_ping_each_other(void **state)
{
    t *x = *state;
    char tap1[16], tap2[16];

    define(x, nic_guest("g1", "52:54:00:e2:e0:01", "virtio"));
    define(x, nic_guest("g2", "52:54:00:e2:e0:02", "virtio"));
    boot(x, "g1");
    boot(x, "g2");
    tap_of(x, "g1", tap1, sizeof(tap1));
    tap_of(x, "g2", tap2, sizeof(tap2));
    assert_tap_on_bridge(tap1);
    assert_tap_on_bridge(tap2);
    {
        json_object *host = call_ok(x, "query-host", NULL);
        assert_non_null(strstr(json_object_to_json_string_ext(member(agent_return(host), "bridges"), JSON_C_TO_STRING_PLAIN),
                               "\"name\":\"" BRIDGE "\""));
        json_object_put(host);
    }
    assert_guest_mac(x, "g1", "52:54:00:e2:e0:01");
    assert_guest_mac(x, "g2", "52:54:00:e2:e0:02");
    address_guests(x);
    assert_ping(x);

    /* taps go with their QEMU: on a stop, and on a crash */
    vm_cmd(x, "vm-destroy", "g1");
    wait_gone(tap1);
    kill(query(x, "g2").pid, SIGKILL);
    wait_state(x, "g2", "stopped", 20000);
    assert_string_equal(query(x, "g2").reason, "crash");
    wait_gone(tap2);
}

static void an_agent_restart_keeps_the_vms_networking(void **state)
{
    t *x = *state;
    char tap1[16];

    define(x, nic_guest("g1", "52:54:00:e2:e0:11", "virtio"));
    define(x, nic_guest("g2", "52:54:00:e2:e0:12", "virtio"));
    boot(x, "g1");
    boot(x, "g2");
    address_guests(x);
    agent_close(&x->conn);
    agentd_stop(&x->agent, SIGKILL);
    assert_int_equal(agentd_start(&x->agent), 0);
    assert_int_equal(agent_connect(&x->conn, x->agent.socket), 0);
    assert_string_equal(query(x, "g1").state, "running");
    tap_of(x, "g1", tap1, sizeof(tap1));
    assert_tap_on_bridge(tap1);
    assert_ping(x);
    vm_cmd(x, "vm-destroy", "g1");
    wait_gone(tap1);
    vm_cmd(x, "vm-destroy", "g2");
}

/* The cloud kernel of the test guest has no e1000 or rtl8139 driver, so
 * what is checked is QEMU's side: the device with its MAC on the PCI bus. */
static void e1000_and_rtl8139_nics_are_given_to_qemu_with_their_macs(void **state)
{
    t *x = *state;
    const char *models[] = { "e1000", "rtl8139" };

    for (size_t i = 0; i < 2; i++) {
        char name[16], mac[24], args[256];
        snprintf(name, sizeof(name), "m%zu", i);
        snprintf(mac, sizeof(mac), "52:54:00:e2:e1:%02zx", i);
        define(x, nic_guest(name, mac, models[i]));
        vm_cmd(x, "vm-start", name);
        snprintf(args, sizeof(args), "{\"name\": \"%s\", \"command\": \"qom-get\", \"arguments\": "
                                     "{\"path\": \"/machine/peripheral/nic-525400e2e1%02zx\", \"property\": \"mac\"}}", name, i);
        json_object *reply = call_ok(x, "vm-qmp", args);
        assert_string_equal(json_object_get_string(agent_return(reply)), mac);
        json_object_put(reply);
        snprintf(args, sizeof(args), "{\"name\": \"%s\", \"command\": \"qom-get\", \"arguments\": "
                                     "{\"path\": \"/machine/peripheral/nic-525400e2e1%02zx\", \"property\": \"type\"}}", name, i);
        reply = call_ok(x, "vm-qmp", args);
        assert_string_equal(json_object_get_string(agent_return(reply)), models[i]);
        json_object_put(reply);
        vm_cmd(x, "vm-destroy", name);
    }
}

static void a_missing_bridge_fails_the_start_naming_the_nic(void **state)
{
    t *x = *state;
    json_object *reply;

    define(x, guest_def("nb", "\"nics\": [\"br-nope\"]"));
    assert_int_equal(agent_call(&x->conn, "vm-start", "{\"name\": \"nb\"}", CALL_MS, &reply), 0);
    assert_null(agent_return(reply));
    if (!strstr(agent_error_desc(reply), "nics[0].bridge: br-nope does not exist"))
        fail_msg("vm-start: %s", agent_error_desc(reply));
    json_object_put(reply);
    assert_string_equal(query(x, "nb").state, "stopped");
    assert_false(link_exists("br-nope"));
}

/* ---- NIC hotplug ---------------------------------------------------------------- */

/* The guest's "nic" answer, asked until it does (want) or does not list mac. */
static bool guest_lists_mac(t *x, const char *vm, const char *mac, bool want)
{
    char out[512];
    bool has = !want;

    for (int i = 0; i < 40 && has != want; i++) {
        if (i)
            usleep(250000);
        guest_ask(x, vm, "nic", out, sizeof(out));
        has = strstr(out, mac) != NULL;
    }
    return has == want;
}

static void a_nic_attached_to_a_running_guest_reaches_its_peer_and_goes_on_detach(void **state)
{
    t *x = *state;
    char tap[16];
    struct json_object *r;

    define(x, nic_guest("g1", "52:54:00:e2:e0:01", "virtio"));
    define(x, guest_def("g2", NULL));
    boot(x, "g1");
    boot(x, "g2");
    r = call_ok(x, "nic-attach", "{\"name\": \"g2\", \"nic\": {\"bridge\": \"" BRIDGE "\", "
                                 "\"mac\": \"52:54:00:e2:e0:02\"}}");
    assert_string_equal(json_object_get_string(member(agent_return(r), "device")), "nic-525400e2e002");
    assert_int_equal(json_object_get_int(member(agent_return(r), "slot")), 0);
    json_object_put(r);
    /* g2 had no NIC: its tap is the VM's first. */
    tap_of(x, "g2", tap, sizeof(tap));
    assert_tap_on_bridge(tap);
    assert_true(guest_lists_mac(x, "g2", "52:54:00:e2:e0:02", true));
    address_guests(x);
    assert_ping(x);

    call_ok_put(x, "nic-detach", "{\"name\": \"g2\", \"mac\": \"52:54:00:e2:e0:02\"}");
    assert_true(guest_lists_mac(x, "g2", "52:54:00:e2:e0:02", false));
    wait_gone(tap);
    r = call_ok(x, "query-vm", "{\"name\": \"g2\"}");
    {
        struct json_object *nics = member(member(agent_return(r), "definition"), "nics");
        assert_int_equal(nics ? json_object_array_length(nics) : 0, 0);
    }
    json_object_put(r);
}

/* The NICs in the VM's definition file, as a restarted agent would read it. */
static size_t saved_nics(t *x, const char *vm)
{
    char file[512];
    struct json_object *saved, *nics;
    size_t n;

    snprintf(file, sizeof(file), "%s/state/vms/%s.json", x->agent.dir, vm);
    saved = json_object_from_file(file);
    nics = member(saved, "nics");
    n = nics ? json_object_array_length(nics) : 0;
    json_object_put(saved);
    return n;
}

/* Renames onto the definition files (an inotify of their directory). */
static int watch_definitions(t *x)
{
    char dir[512];
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

    snprintf(dir, sizeof(dir), "%s/state/vms", x->agent.dir);
    assert_true(fd >= 0);
    assert_true(inotify_add_watch(fd, dir, IN_MOVED_TO) >= 0);
    return fd;
}

/* How many of the renames queued so far went onto name; drains them. */
static int renamed_onto(int fd, const char *name)
{
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    int count = 0;

    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            count += ev->len && !strcmp(ev->name, name);
            p += sizeof(*ev) + ev->len;
        }
    }
    return count;
}

/* device_add fails on a port taken behind the agent's back: the netdev and
 * the fds go again (the same MAC attaches on another port at once, which a
 * netdev left behind under its id would refuse) and the tap is gone. */
static void a_failed_nic_attach_leaves_no_netdev_and_no_tap(void **state)
{
    t *x = *state;
    char tap[16];

    define(x, guest_def("g3", NULL));
    boot(x, "g3");
    tap_of(x, "g3", tap, sizeof(tap));
    call_ok_put(x, "vm-qmp", "{\"name\": \"g3\", \"command\": \"device_add\", \"arguments\": "
                             "{\"driver\": \"virtio-rng-pci\", \"id\": \"squatter\", \"bus\": \"hp0\"}}");
    call_fails(x, "nic-attach", "{\"name\": \"g3\", \"nic\": {\"bridge\": \"" BRIDGE "\", "
                                "\"mac\": \"52:54:00:e2:e0:03\"}}", "GenericError", "device_add: ");
    wait_gone(tap);
    call_ok_put(x, "nic-attach", "{\"name\": \"g3\", \"nic\": {\"bridge\": \"" BRIDGE "\", "
                                 "\"mac\": \"52:54:00:e2:e0:03\", \"slot\": 1}}");
    assert_true(guest_lists_mac(x, "g3", "52:54:00:e2:e0:03", true));
    call_fails(x, "nic-detach", "{\"name\": \"g3\", \"mac\": \"52:54:00:e2:e0:99\"}", "NotFound", "mac: ");
    call_fails(x, "nic-attach", "{\"name\": \"g3\", \"nic\": {\"bridge\": \"" BRIDGE "\", \"model\": \"ne2k\"}}",
               "InvalidParameter", "nics[1].model");
    /* Refused on the pool thread, after the definition was written ahead
     * with the NIC: the error comes once the file is back to the one NIC. */
    int w = watch_definitions(x);
    call_fails(x, "nic-attach", "{\"name\": \"g3\", \"nic\": {\"bridge\": \"lo\"}}", "InvalidParameter",
               "nics[1].bridge: lo is not a bridge");
    assert_true(renamed_onto(w, "g3.json") >= 1);
    assert_int_equal(saved_nics(x, "g3"), 1);
    usleep(300000);
    assert_int_equal(renamed_onto(w, "g3.json"), 0);   /* nothing was still to be written */
    close(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(two_guests_on_one_bridge_see_their_macs_and_ping_each_other, setup_bridges,
                                        teardown),
        cmocka_unit_test_setup_teardown(an_agent_restart_keeps_the_vms_networking, setup_bridges, teardown),
        cmocka_unit_test_setup_teardown(e1000_and_rtl8139_nics_are_given_to_qemu_with_their_macs, setup_bridges,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_missing_bridge_fails_the_start_naming_the_nic, setup, teardown),
        cmocka_unit_test_setup_teardown(a_nic_attached_to_a_running_guest_reaches_its_peer_and_goes_on_detach,
                                        setup_bridges, teardown),
        cmocka_unit_test_setup_teardown(a_failed_nic_attach_leaves_no_netdev_and_no_tap, setup_bridges, teardown),
    };

    if (unshare(CLONE_NEWNET) < 0) {
        fprintf(stderr, "test_net_e2e: unshare(CLONE_NEWNET): %s: skipped\n", strerror(errno));
        return 77;
    }
    if (system("ip link set dev lo up") != 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
