/* test_server.c: the control protocol through virtual clients: negotiation,
 * request validation, permissions, replies to any id, events, definitions. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <uv.h>

#include "agent/pool.h"
#include "agent/server.h"
#include "agent/statefile.h"
#include "agent/vm.h"
#include "agent/vm_save.h"
#include "agent/vm_send.h"
#include "agent/vm_snapshot.h"
#include "tests/support/agent_fixture.h"
#include "tests/support/fake_sysfs.h"

typedef struct out {
    struct json_object *lines;   /* every line the client received, parsed */
} out;

typedef struct fx {
    uv_loop_t loop;
    agent a;
    char dir[64];
    out admin_out, user_out;
    client *admin, *user;
} fx;

static void sink(const char *data, size_t len, void *opaque)
{
    out *o = opaque;
    char *copy = strndup(data, len);
    struct json_object *j = json_tokener_parse(copy);

    free(copy);
    json_object_array_add(o->lines, j ? j : json_object_new_string("<not json>"));
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));

    strcpy(f->dir, "/tmp/srv-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    uv_loop_init(&f->loop);
    assert_int_equal(agent_fixture_init(&f->a, &f->loop, f->dir), 0);
    f->admin_out.lines = json_object_new_array();
    f->user_out.lines = json_object_new_array();
    f->admin = server_connect_virtual(f->a.server, true, sink, &f->admin_out);
    f->user = server_connect_virtual(f->a.server, false, sink, &f->user_out);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    char cmd[128];

    agent_fixture_free(&f->a);
    uv_loop_close(&f->loop);
    json_object_put(f->admin_out.lines);
    json_object_put(f->user_out.lines);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static struct json_object *last(out *o)
{
    size_t n = json_object_array_length(o->lines);
    return n ? json_object_array_get_idx(o->lines, n - 1) : NULL;
}

/* Feeds one line and returns the last line received after the loop settled. */
static struct json_object *send_line(fx *f, client *c, out *o, const char *line)
{
    server_client_feed(c, line, strlen(line));
    agent_fixture_settle(&f->a);
    return last(o);
}

static const char *member_str(struct json_object *o, const char *a, const char *b)
{
    struct json_object *x, *y;
    if (!o || !json_object_object_get_ex(o, a, &x))
        return "";
    if (!b)
        return json_object_get_string(x);
    return json_object_object_get_ex(x, b, &y) ? json_object_get_string(y) : "";
}

static void negotiate(fx *f)
{
    send_line(f, f->admin, &f->admin_out, "{\"execute\": \"qmp_capabilities\"}\n");
    send_line(f, f->user, &f->user_out, "{\"execute\": \"qmp_capabilities\"}\n");
}

static void greeting_looks_like_qmp(void **state)
{
    fx *f = *state;
    struct json_object *g = json_object_array_get_idx(f->admin_out.lines, 0), *qmp, *caps;

    assert_true(json_object_object_get_ex(g, "QMP", &qmp));
    assert_true(json_object_object_get_ex(qmp, "capabilities", &caps));
    assert_true(json_object_is_type(caps, json_type_array));
    assert_string_equal(member_str(qmp, "version", "package"), "agentd 0.1.0");
}

static void commands_before_negotiation_are_refused(void **state)
{
    fx *f = *state;
    struct json_object *r = send_line(f, f->admin, &f->admin_out, "{\"execute\": \"query-vms\", \"id\": 1}\n");

    assert_string_equal(member_str(r, "error", "class"), "CommandNotFound");
    r = send_line(f, f->admin, &f->admin_out, "{\"execute\": \"qmp_capabilities\", \"id\": 2}\n");
    assert_non_null(json_object_object_get_ex(r, "return", NULL) ? r : NULL);
    r = send_line(f, f->admin, &f->admin_out, "{\"execute\": \"qmp_capabilities\", \"id\": 3}\n");
    assert_string_equal(member_str(r, "error", "class"), "CommandNotFound");
}

static void any_id_comes_back_unchanged(void **state)
{
    fx *f = *state;
    struct json_object *r, *id;

    negotiate(f);
    r = send_line(f, f->admin, &f->admin_out,
                  "{\"execute\": \"query-vms\", \"id\": {\"tag\": [1, \"two\"]}}\n");
    assert_true(json_object_object_get_ex(r, "id", &id));
    assert_string_equal(json_object_to_json_string_ext(id, JSON_C_TO_STRING_PLAIN), "{\"tag\":[1,\"two\"]}");
    r = send_line(f, f->admin, &f->admin_out, "{\"execute\": \"query-vms\"}\n");
    assert_false(json_object_object_get_ex(r, "id", NULL));
}

static void malformed_requests_get_errors_and_the_session_goes_on(void **state)
{
    fx *f = *state;
    static const struct { const char *line; const char *cls; const char *desc; } bad[] = {
        { "not json\n", "GenericError", "JSON parse error" },
        { "[1, 2]\n", "GenericError", "JSON parse error" },
        { "{\"execute\": 5}\n", "GenericError", "expected" },
        { "{\"execute\": \"query-vms\"} {}\n", "GenericError", "JSON parse error" },
        { "{\"execute\": \"query-vms\", \"extra\": 1}\n", "GenericError", "extra" },
        { "{\"execute\": \"query-vm\", \"arguments\": [1]}\n", "InvalidParameter", "arguments" },
        { "{\"execute\": \"no-such\"}\n", "CommandNotFound", "The command no-such" },
        { "{\"execute\": \"query-vm\", \"arguments\": {}}\n", "InvalidParameter", "name" },
        { "{\"execute\": \"query-vm\", \"arguments\": {\"name\": 3}}\n", "InvalidParameter", "name" },
        { "{\"execute\": \"query-vm\", \"arguments\": {\"name\": \"x\", \"y\": 1}}\n", "InvalidParameter", "y" },
        { "{\"execute\": \"query-vm\", \"arguments\": {\"name\": \"ghost\"}}\n", "NotFound", "no VM" },
        { "{\"execute\": \"query-events\", \"arguments\": {\"after\": -1}}\n", "InvalidParameter", "after" },
        { "{\"execute\": \"vm-define\", \"arguments\": {\"definition\": \"b {\"}}\n", "InvalidParameter",
          "definition: must be an object" },
        { "{\"execute\": \"vm-define\", \"arguments\": {}}\n", "InvalidParameter", "definition: missing" },
    };

    negotiate(f);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t before = json_object_array_length(f->admin_out.lines);
        struct json_object *r = send_line(f, f->admin, &f->admin_out, bad[i].line);
        /* One request, one reply: a second would go to a freed request. */
        assert_int_equal(json_object_array_length(f->admin_out.lines), before + 1);
        assert_string_equal(member_str(r, "error", "class"), bad[i].cls);
        if (!strstr(member_str(r, "error", "desc"), bad[i].desc))
            fail_msg("'%s': desc '%s' lacks '%s'", bad[i].line, member_str(r, "error", "desc"), bad[i].desc);
    }
    struct json_object *r = send_line(f, f->admin, &f->admin_out, "{\"execute\": \"query-vms\"}\n");
    assert_true(json_object_object_get_ex(r, "return", NULL));
}

static void non_admins_may_only_query(void **state)
{
    fx *f = *state;
    struct json_object *r;

    negotiate(f);
    r = send_line(f, f->user, &f->user_out, "{\"execute\": \"query-host\"}\n");
    assert_true(json_object_object_get_ex(r, "return", NULL));
    static const char *const refused[] = { "vm-define", "vm-update", "vm-undefine", "vm-start",
                                           "vm-shutdown", "vm-destroy", "vm-reset", "vm-suspend",
                                           "vm-resume", "vm-qmp" };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        char line[128];
        snprintf(line, sizeof(line), "{\"execute\": \"%s\", \"arguments\": {\"name\": \"x\"}}\n", refused[i]);
        r = send_line(f, f->user, &f->user_out, line);
        assert_string_equal(member_str(r, "error", "class"), "PermissionDenied");
    }
}

static void define_update_and_undefine_round_trip_with_events(void **state)
{
    fx *f = *state;
    struct json_object *r, *v;
    char path[256];

    negotiate(f);
    r = send_line(f, f->admin, &f->admin_out,
                  "{\"execute\": \"vm-define\", \"arguments\": {\"definition\": {\"name\": \"vm1\", \"vcpus\": \"2:2\", \"memory\": \"1G\"}}, \"id\": 1}\n");
    assert_string_equal(member_str(r, "return", "name"), "vm1");
    assert_true(json_object_object_get_ex(json_object_object_get(r, "return"), "created", &v));
    assert_true(json_object_get_boolean(v));
    snprintf(path, sizeof(path), "%s/vms/vm1.json", f->dir);
    assert_int_equal(access(path, F_OK), 0);
    /* The non-admin client saw the event too. */
    bool seen = false;
    for (size_t i = 0; i < json_object_array_length(f->user_out.lines); i++)
        seen |= strcmp(member_str(json_object_array_get_idx(f->user_out.lines, i), "event", NULL), "VM_DEFINED") == 0;
    assert_true(seen);

    r = send_line(f, f->admin, &f->admin_out,
                  "{\"execute\": \"vm-update\", \"arguments\": {\"name\": \"vm1\", \"changes\": {\"memory\": 2048, \"labels\": {\"owner\": \"ops\"}}}}\n");
    assert_true(json_object_object_get_ex(json_object_object_get(r, "return"), "restart-needed", &v));
    assert_int_equal(json_object_array_length(v), 0); /* stopped: nothing waits for a restart */
    r = send_line(f, f->admin, &f->admin_out, "{\"execute\": \"query-vm\", \"arguments\": {\"name\": \"vm1\"}}\n");
    assert_true(json_object_object_get_ex(json_object_object_get(r, "return"), "definition", &v));
    assert_int_equal(json_object_get_int(json_object_object_get(v, "memory")), 2048);
    /* xCAT's "2:2" is kept as the topology it names. */
    struct json_object *vc = json_object_object_get(v, "vcpus");
    assert_int_equal(json_object_get_int(json_object_object_get(vc, "sockets")), 2);
    assert_int_equal(json_object_get_int(json_object_object_get(vc, "cores")), 2);

    r = send_line(f, f->admin, &f->admin_out,
                  "{\"execute\": \"vm-update\", \"arguments\": {\"name\": \"vm1\", \"changes\": {\"name\": \"vm2\"}}}\n");
    assert_string_equal(member_str(r, "error", "class"), "InvalidParameter");
    r = send_line(f, f->admin, &f->admin_out,
                  "{\"execute\": \"vm-update\", \"arguments\": {\"name\": \"vm1\", \"changes\": {\"memory\": -5}}}\n");
    assert_string_equal(member_str(r, "error", "class"), "InvalidParameter");

    r = send_line(f, f->admin, &f->admin_out, "{\"execute\": \"vm-undefine\", \"arguments\": {\"name\": \"vm1\"}}\n");
    assert_true(json_object_object_get_ex(r, "return", NULL));
    assert_int_equal(access(path, F_OK), -1);
    r = send_line(f, f->admin, &f->admin_out, "{\"execute\": \"query-vms\"}\n");
    assert_int_equal(json_object_array_length(json_object_object_get(r, "return")), 0);
}

static void redefining_keeps_the_uuid_and_duplicate_uuids_are_refused(void **state)
{
    fx *f = *state;
    struct json_object *r;
    char uuid[64], line[512];

    negotiate(f);
    r = send_line(f, f->admin, &f->admin_out,
                  "{\"execute\": \"vm-define\", \"arguments\": {\"definition\": {\"name\": \"a\"}}}\n");
    snprintf(uuid, sizeof(uuid), "%s", member_str(r, "return", "uuid"));
    r = send_line(f, f->admin, &f->admin_out,
                  "{\"execute\": \"vm-define\", \"arguments\": {\"definition\": {\"name\": \"a\", \"memory\": 1024}}}\n");
    assert_string_equal(member_str(r, "return", "uuid"), uuid);
    snprintf(line, sizeof(line),
             "{\"execute\": \"vm-define\", \"arguments\": {\"definition\": {\"name\": \"b\", \"uuid\": \"%s\"}}}\n", uuid);
    r = send_line(f, f->admin, &f->admin_out, line);
    assert_string_equal(member_str(r, "error", "class"), "InvalidParameter");
    assert_non_null(strstr(member_str(r, "error", "desc"), "uuid"));
}

/* The MAC of a NIC stays when the definition is replaced without one, and
 * a MAC another VM has is refused. */
static void macs_are_kept_across_redefinitions_and_unique_on_the_host(void **state)
{
    fx *f = *state;
    struct json_object *r;
    char mac[32];

    negotiate(f);
    send_line(f, f->admin, &f->admin_out,
              "{\"execute\": \"vm-define\", \"arguments\": {\"definition\": {\"name\": \"a\", \"nics\": \"br0\"}}}\n");
    r = send_line(f, f->admin, &f->admin_out, "{\"execute\": \"query-vm\", \"arguments\": {\"name\": \"a\"}}\n");
    {
        struct json_object *ret, *def, *nics;
        assert_true(json_object_object_get_ex(r, "return", &ret));
        assert_true(json_object_object_get_ex(ret, "definition", &def));
        assert_true(json_object_object_get_ex(def, "nics", &nics));
        snprintf(mac, sizeof(mac), "%s",
                 member_str(json_object_array_get_idx(nics, 0), "mac", NULL));
    }
    assert_int_equal(strlen(mac), 17);
    send_line(f, f->admin, &f->admin_out,
              "{\"execute\": \"vm-define\", \"arguments\": {\"definition\": {\"name\": \"a\", \"memory\": 256, "
              "\"nics\": [{\"bridge\": \"br1\"}]}}}\n");
    r = send_line(f, f->admin, &f->admin_out, "{\"execute\": \"query-vm\", \"arguments\": {\"name\": \"a\"}}\n");
    assert_non_null(strstr(json_object_to_json_string(r), mac));
    {
        char line[512];
        snprintf(line, sizeof(line),
                 "{\"execute\": \"vm-define\", \"arguments\": {\"definition\": {\"name\": \"b\", "
                 "\"nics\": [{\"bridge\": \"br0\", \"mac\": \"%s\"}]}}}\n", mac);
        r = send_line(f, f->admin, &f->admin_out, line);
    }
    assert_string_equal(member_str(r, "error", "class"), "InvalidParameter");
    assert_non_null(strstr(member_str(r, "error", "desc"), "nics[0].mac:"));
    assert_non_null(strstr(member_str(r, "error", "desc"), "is a NIC of a"));
}

static void starting_with_a_missing_qemu_fails_cleanly(void **state)
{
    fx *f = *state;
    struct json_object *r;

    negotiate(f);
    send_line(f, f->admin, &f->admin_out,
              "{\"execute\": \"vm-define\", \"arguments\": {\"definition\": {\"name\": \"a\"}}}\n");
    r = send_line(f, f->admin, &f->admin_out, "{\"execute\": \"vm-start\", \"arguments\": {\"name\": \"a\"}}\n");
    assert_string_equal(member_str(r, "error", "class"), "GenericError");
    assert_non_null(strstr(member_str(r, "error", "desc"), "/nonexistent/qemu-system-x86_64"));
    r = send_line(f, f->admin, &f->admin_out, "{\"execute\": \"query-vm\", \"arguments\": {\"name\": \"a\"}}\n");
    assert_string_equal(member_str(json_object_object_get(r, "return"), "runtime", "state"), "stopped");
    r = send_line(f, f->admin, &f->admin_out, "{\"execute\": \"vm-destroy\", \"arguments\": {\"name\": \"a\"}}\n");
    assert_string_equal(member_str(r, "error", "class"), "InvalidState");
}

/* ---- passthrough against a fake sysfs -------------------------------------------------- */

#define HOSTDEV "0000:01:00.2"

static fake *use_fake_sysfs(fx *f)
{
    fake *k = fake_sysfs_new();

    f->a.sysfs_write = fake_kernel_write;
    f->a.sysfs_opaque = k;
    free(f->a.cfg.sysfs_root);
    f->a.cfg.sysfs_root = strdup(k->root);
    return k;
}

static struct json_object *define_and_start(fx *f, const char *name, const char *passthrough)
{
    char line[512];

    snprintf(line, sizeof(line), "{\"execute\": \"vm-define\", \"arguments\": {\"definition\": "
             "{\"name\": \"%s\", \"passthrough\": \"%s\"}}}\n", name, passthrough);
    send_line(f, f->admin, &f->admin_out, line);
    snprintf(line, sizeof(line), "{\"execute\": \"vm-start\", \"arguments\": {\"name\": \"%s\"}}\n", name);
    return send_line(f, f->admin, &f->admin_out, line);
}

/* QEMU here is a script that exits at once, as a QEMU refusing its
 * command line would: the device went to vfio-pci before the exec and is
 * back on its driver after the exit. */
static void a_passed_through_device_is_bound_for_qemu_and_returned_when_it_ends(void **state)
{
    fx *f = *state;
    fake *k = use_fake_sysfs(f);
    char script[128], now[64];
    struct json_object *r;
    FILE *fp;

    snprintf(script, sizeof(script), "%s/qemu", f->dir);
    fp = fopen(script, "w");
    fputs("#!/bin/sh\nexit 1\n", fp);
    fclose(fp);
    chmod(script, 0755);
    free(f->a.cfg.qemu_binary);
    f->a.cfg.qemu_binary = strdup(script);
    fake_add_device(k, HOSTDEV, "0x020000", "ixgbevf", 7);
    negotiate(f);
    r = define_and_start(f, "pt", "devpassthrough:pci_0000_01_00_2");
    assert_string_equal(member_str(r, "error", "class"), "GenericError");
    assert_non_null(strstr(member_str(r, "error", "desc"), "QEMU exited during start"));
    fake_assert_log(k, 6, "/sys/bus/pci/devices/" HOSTDEV "/driver_override=vfio-pci",
                    "/sys/bus/pci/drivers/ixgbevf/unbind=" HOSTDEV, "/sys/bus/pci/drivers_probe=" HOSTDEV,
                    "/sys/bus/pci/drivers/vfio-pci/unbind=" HOSTDEV,
                    "/sys/bus/pci/devices/" HOSTDEV "/driver_override=\n",
                    "/sys/bus/pci/drivers/ixgbevf/bind=" HOSTDEV);
    fake_driver_of(k, HOSTDEV, now);
    assert_string_equal(now, "ixgbevf");
    fake_sysfs_free(k);
}

static void a_start_that_cannot_spawn_returns_the_device_at_once(void **state)
{
    fx *f = *state;
    fake *k = use_fake_sysfs(f);
    struct json_object *r;
    char now[64];

    fake_add_device(k, HOSTDEV, "0x020000", "", 7);
    negotiate(f);
    r = define_and_start(f, "pt", HOSTDEV);
    assert_non_null(strstr(member_str(r, "error", "desc"), "/nonexistent/qemu-system-x86_64"));
    fake_assert_log(k, 4, "/sys/bus/pci/devices/" HOSTDEV "/driver_override=vfio-pci",
                    "/sys/bus/pci/drivers_probe=" HOSTDEV, "/sys/bus/pci/drivers/vfio-pci/unbind=" HOSTDEV,
                    "/sys/bus/pci/devices/" HOSTDEV "/driver_override=\n");
    fake_driver_of(k, HOSTDEV, now);
    assert_string_equal(now, "");
    fake_sysfs_free(k);
}

static void a_group_with_a_foreign_device_or_a_held_device_is_refused(void **state)
{
    fx *f = *state;
    fake *k = use_fake_sysfs(f);
    struct json_object *r;
    vm *holder;

    fake_add_device(k, HOSTDEV, "0x020000", "igb", 7);
    fake_add_device(k, "0000:01:00.3", "0x020000", "igb", 7);
    negotiate(f);
    r = define_and_start(f, "pt", HOSTDEV);
    assert_string_equal(member_str(r, "error", "desc"),
                        "passthrough[0]: " HOSTDEV ": IOMMU group 7 also holds 0000:01:00.3, which this VM does "
                        "not take; a group moves to vfio-pci whole, so pass it through too");
    fake_assert_log(k, 0);
    /* As if VM "holder" were running with the device. */
    send_line(f, f->admin, &f->admin_out,
              "{\"execute\": \"vm-define\", \"arguments\": {\"definition\": {\"name\": \"holder\"}}}\n");
    holder = vm_find(&f->a, "holder");
    holder->held_devs.n = 1;
    snprintf(holder->held_devs.dev[0].host, sizeof(holder->held_devs.dev[0].host), HOSTDEV);
    r = send_line(f, f->admin, &f->admin_out, "{\"execute\": \"vm-start\", \"arguments\": {\"name\": \"pt\"}}\n");
    assert_string_equal(member_str(r, "error", "desc"), "passthrough[0]: " HOSTDEV " is held by VM holder");
    holder->held_devs.n = 0;
    fake_assert_log(k, 0);
    fake_sysfs_free(k);
}

/* The agent was down when its QEMU died: the runtime record still says
 * which devices went to vfio-pci and from which driver. */
static void an_agent_restarted_after_its_qemu_died_returns_the_devices(void **state)
{
    fx *f = *state;
    fake *k = use_fake_sysfs(f);
    char text[512], now[64];
    vm *v;
    FILE *fp;

    fake_add_device(k, HOSTDEV, "0x020000", "vfio-pci", 7);
    negotiate(f);
    send_line(f, f->admin, &f->admin_out, "{\"execute\": \"vm-define\", \"arguments\": {\"definition\": "
              "{\"name\": \"pt\", \"passthrough\": [\"" HOSTDEV "\"]}}}\n");
    v = vm_find(&f->a, "pt");
    snprintf(text, sizeof(text), "{\"pid\": 999999999, \"start-ticks\": 1, \"uuid\": \"%s\", "
             "\"hostdevs\": [{\"host\": \"" HOSTDEV "\", \"driver\": \"ixgbevf\"}]}", v->def.uuid);
    assert_int_equal(statefile_mkdir_p(v->run_dir, 0750), 0);
    fp = fopen(v->runtime_path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    assert_int_equal(vm_adopt(v), 0);
    agent_fixture_settle(&f->a);
    fake_assert_log(k, 3, "/sys/bus/pci/drivers/vfio-pci/unbind=" HOSTDEV,
                    "/sys/bus/pci/devices/" HOSTDEV "/driver_override=\n",
                    "/sys/bus/pci/drivers/ixgbevf/bind=" HOSTDEV);
    fake_driver_of(k, HOSTDEV, now);
    assert_string_equal(now, "ixgbevf");
    fake_sysfs_free(k);
}

static void sriov_vfs_are_listed_and_their_count_set_unless_one_is_held(void **state)
{
    fx *f = *state;
    fake *k = use_fake_sysfs(f);
    struct json_object *r, *ret;
    vm *holder;

    fake_add_pf(k, 8, 2);
    negotiate(f);
    r = send_line(f, f->user, &f->user_out,
                  "{\"execute\": \"host-sriov\", \"arguments\": {\"pf\": \"pci_0000_03_00_0\"}}\n");
    ret = json_object_object_get(r, "return");
    assert_int_equal(json_object_get_int(json_object_object_get(ret, "numvfs")), 2);
    assert_string_equal(member_str(ret, "netdev", NULL), "enp3s0f0");
    assert_string_equal(member_str(json_object_array_get_idx(json_object_object_get(ret, "vfs"), 1), "host", NULL),
                        "0000:03:10.2");
    r = send_line(f, f->user, &f->user_out,
                  "{\"execute\": \"host-sriov-set\", \"arguments\": {\"pf\": \"" FAKE_PF "\", \"numvfs\": 4}}\n");
    assert_string_equal(member_str(r, "error", "class"), "PermissionDenied");
    r = send_line(f, f->admin, &f->admin_out,
                  "{\"execute\": \"host-sriov-set\", \"arguments\": {\"pf\": \"" FAKE_PF "\", \"numvfs\": 9}}\n");
    assert_string_equal(member_str(r, "error", "desc"), "numvfs: " FAKE_PF " supports at most 8 virtual functions");
    r = send_line(f, f->admin, &f->admin_out,
                  "{\"execute\": \"host-sriov-set\", \"arguments\": {\"pf\": \"0000:03:00.9\", \"numvfs\": 1}}\n");
    assert_string_equal(member_str(r, "error", "class"), "InvalidParameter");
    send_line(f, f->admin, &f->admin_out,
              "{\"execute\": \"vm-define\", \"arguments\": {\"definition\": {\"name\": \"holder\"}}}\n");
    holder = vm_find(&f->a, "holder");
    holder->held_devs.n = 1;
    snprintf(holder->held_devs.dev[0].host, sizeof(holder->held_devs.dev[0].host), "0000:03:10.2");
    r = send_line(f, f->admin, &f->admin_out,
                  "{\"execute\": \"host-sriov-set\", \"arguments\": {\"pf\": \"" FAKE_PF "\", \"numvfs\": 4}}\n");
    assert_string_equal(member_str(r, "error", "desc"),
                        "numvfs: VF 0000:03:10.2 of " FAKE_PF " is passed through to VM holder");
    holder->held_devs.n = 0;
    fake_assert_log(k, 0);
    r = send_line(f, f->admin, &f->admin_out,
                  "{\"execute\": \"host-sriov-set\", \"arguments\": {\"pf\": \"" FAKE_PF "\", \"numvfs\": 4}}\n");
    assert_non_null(json_object_object_get(r, "return"));
    fake_assert_log(k, 2, "/sys/bus/pci/devices/" FAKE_PF "/sriov_numvfs=0",
                    "/sys/bus/pci/devices/" FAKE_PF "/sriov_numvfs=4");
    fake_sysfs_free(k);
}

static void query_events_replays_what_a_client_missed(void **state)
{
    fx *f = *state;
    struct json_object *r, *events, *missed;

    negotiate(f);
    for (int i = 0; i < 3; i++) {
        char line[256];
        snprintf(line, sizeof(line),
                 "{\"execute\": \"vm-define\", \"arguments\": {\"definition\": {\"name\": \"e%d\"}}}\n", i);
        send_line(f, f->admin, &f->admin_out, line);
    }
    r = send_line(f, f->admin, &f->admin_out, "{\"execute\": \"query-events\", \"arguments\": {\"after\": 1}}\n");
    r = json_object_object_get(r, "return");
    assert_true(json_object_object_get_ex(r, "events", &events));
    assert_int_equal(json_object_array_length(events), 2);
    assert_int_equal(json_object_get_int(json_object_object_get(json_object_array_get_idx(events, 0), "seq")), 2);
    assert_true(json_object_object_get_ex(r, "missed", &missed));
    assert_false(json_object_get_boolean(missed));
    /* The ring holds 64 here: asking from 0 after 70 events says some were lost. */
    for (int i = 0; i < 70; i++) {
        char line[256];
        snprintf(line, sizeof(line),
                 "{\"execute\": \"vm-define\", \"arguments\": {\"definition\": {\"name\": \"e0\", \"memory\": %d}}}\n", 64 + i);
        send_line(f, f->admin, &f->admin_out, line);
    }
    r = send_line(f, f->admin, &f->admin_out, "{\"execute\": \"query-events\"}\n");
    assert_true(json_object_get_boolean(json_object_object_get(json_object_object_get(r, "return"), "missed")));
}

static void an_overlong_line_closes_the_client(void **state)
{
    fx *f = *state;
    size_t n = (1u << 20) + 10;
    char *big = malloc(n);

    negotiate(f);
    memset(big, 'x', n);
    server_client_feed(f->admin, big, n);
    agent_fixture_settle(&f->a);
    assert_string_equal(member_str(last(&f->admin_out), "error", "class"), "GenericError");
    assert_non_null(strstr(member_str(last(&f->admin_out), "error", "desc"), "1 MiB"));
    f->admin = NULL;
    free(big);
}

/* ---- save and restore, without QEMU -------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static const char *vm_error(fx *f, const char *command, const char *args)
{
    char line[1024];

    snprintf(line, sizeof(line), "{\"execute\": \"%s\", \"arguments\": %s}\n", command, args);
    return member_str(send_line(f, f->admin, &f->admin_out, line), "error", "class");
}

static vm *define_bare(fx *f, const char *name)
{
    char line[256];

    snprintf(line, sizeof(line), "{\"execute\": \"vm-define\", \"arguments\": {\"definition\": "
             "{\"name\": \"%s\"}}}\n", name);
    send_line(f, f->admin, &f->admin_out, line);
    return vm_find(&f->a, name);
}

static void save_and_restore_refuse_bad_arguments_and_wrong_states(void **state)
{
    fx *f = *state;

    negotiate(f);
    define_bare(f, "sv");
    assert_string_equal(vm_error(f, "vm-save", "{\"name\": \"sv\"}"), "InvalidParameter");
    assert_non_null(strstr(member_str(last(&f->admin_out), "error", "desc"), "file"));
    assert_string_equal(vm_error(f, "vm-save", "{\"name\": \"sv\", \"file\": \"/tmp/x\", \"timeout\": 0}"),
                        "InvalidParameter");
    assert_string_equal(vm_error(f, "vm-save", "{\"name\": \"sv\", \"file\": \"/tmp/x\", \"bogus\": 1}"),
                        "InvalidParameter");
    assert_string_equal(vm_error(f, "vm-save", "{\"name\": \"sv\", \"file\": \"/tmp/x\"}"), "InvalidState");
    assert_string_equal(vm_error(f, "vm-save", "{\"name\": \"nope\", \"file\": \"/tmp/x\"}"), "NotFound");
    assert_string_equal(vm_error(f, "vm-restore", "{\"name\": \"sv\"}"), "InvalidState");
    assert_string_equal(vm_error(f, "vm-save-discard", "{\"name\": \"sv\"}"), "InvalidState");
}

/* Offline migration's checks come before anything is written, and name the
 * field; a sent record found at start keeps the VM from starting anywhere
 * but on the destination, until it is confirmed. */
static void send_and_receive_refuse_bad_input_and_a_sent_vm_stays_sent(void **state)
{
    fx *f = *state;
    char text[256];
    vm *v;

    negotiate(f);
    v = define_bare(f, "sd");
    assert_string_equal(vm_error(f, "vm-send", "{\"name\": \"nope\"}"), "NotFound");
    assert_string_equal(vm_error(f, "vm-send-confirm", "{\"name\": \"sd\"}"), "InvalidParameter");
    assert_non_null(strstr(member_str(last(&f->admin_out), "error", "desc"), "completed"));
    assert_string_equal(vm_error(f, "vm-send-confirm", "{\"name\": \"sd\", \"completed\": true}"),
                        "InvalidState");
    assert_string_equal(vm_error(f, "vm-receive", "{\"definition\": {\"name\": \"r1\"}}"), "InvalidParameter");
    assert_non_null(strstr(member_str(last(&f->admin_out), "error", "desc"), "disks"));
    assert_string_equal(vm_error(f, "vm-receive", "{\"definition\": {\"name\": \"r1\"}, \"disks\": []}"),
                        "InvalidParameter");
    assert_non_null(strstr(member_str(last(&f->admin_out), "error", "desc"), "definition.uuid"));
    snprintf(text, sizeof(text), "{\"definition\": {\"name\": \"sd\", \"uuid\": \"%s\"}, \"disks\": []}",
             "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9");
    assert_string_equal(vm_error(f, "vm-receive", text), "Exists");
    assert_string_equal(vm_error(f, "vm-receive",
                                 "{\"definition\": {\"name\": \"r1\", \"uuid\": "
                                 "\"0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9\", \"disks\": [{\"size\": \"1M\"}]}, "
                                 "\"disks\": [{\"target\": \"vdz\", \"virtual-size\": 1048576}]}"),
                        "InvalidParameter");
    assert_non_null(strstr(member_str(last(&f->admin_out), "error", "desc"), "disks[0].target"));
    assert_null(vm_find(&f->a, "r1"));

    snprintf(text, sizeof(text), "{\"uuid\": \"%s\", \"sent-at\": 1}", v->def.uuid);
    write_file(v->sent_path, text);
    vm_send_load(v);
    assert_string_equal(vm_state_name(v), "sent");
    assert_string_equal(vm_error(f, "vm-start", "{\"name\": \"sd\"}"), "InvalidState");
    assert_string_equal(vm_error(f, "vm-send", "{\"name\": \"sd\"}"), "InvalidState");
    assert_string_equal(vm_error(f, "vm-undefine", "{\"name\": \"sd\"}"), "InvalidState");
    assert_string_equal(vm_error(f, "vm-update", "{\"name\": \"sd\", \"changes\": {\"memory\": 512}}"),
                        "InvalidState");
    assert_string_equal(vm_error(f, "vm-send-confirm", "{\"name\": \"sd\", \"completed\": false}"), "");
    assert_string_equal(vm_state_name(v), "stopped");
    assert_int_equal(access(v->sent_path, F_OK), -1);

    /* A record of an earlier VM of the same name (another uuid) is stale. */
    write_file(v->sent_path, "{\"uuid\": \"11111111-2222-4333-8444-555555555555\"}");
    vm_send_load(v);
    assert_string_equal(vm_state_name(v), "stopped");
    assert_int_equal(access(v->sent_path, F_OK), -1);
}

/* A saved record found at start makes the VM saved: nothing boots, changes
 * or removes it until it is restored or its state discarded. */
static void a_saved_record_keeps_the_vm_saved_until_discarded(void **state)
{
    fx *f = *state;
    char state_file[128], text[512];
    vm *v;

    negotiate(f);
    v = define_bare(f, "sv");
    snprintf(state_file, sizeof(state_file), "%s/sv.state", f->dir);
    write_file(state_file, "QEVM");
    snprintf(text, sizeof(text), "{\"file\": \"%s\", \"size\": 4, \"resume\": true, \"disks\": []}", state_file);
    write_file(v->saved_path, text);
    vm_save_load(v);
    assert_string_equal(vm_state_name(v), "saved");
    send_line(f, f->admin, &f->admin_out, "{\"execute\": \"query-vm\", \"arguments\": {\"name\": \"sv\"}}\n");
    assert_string_equal(member_str(json_object_object_get(last(&f->admin_out), "return"), "runtime", "state"),
                        "saved");
    assert_string_equal(vm_error(f, "vm-start", "{\"name\": \"sv\"}"), "InvalidState");
    assert_string_equal(vm_error(f, "vm-undefine", "{\"name\": \"sv\", \"force\": true}"), "InvalidState");
    assert_string_equal(vm_error(f, "vm-update", "{\"name\": \"sv\", \"changes\": {\"memory\": 512}}"),
                        "InvalidState");
    assert_string_equal(vm_error(f, "vm-destroy", "{\"name\": \"sv\"}"), "InvalidState");
    assert_string_equal(vm_error(f, "vm-define", "{\"definition\": {\"name\": \"sv\", \"memory\": 512}}"),
                        "InvalidState");
    assert_non_null(strstr(member_str(last(&f->admin_out), "error", "desc"), "sv is saved"));
    assert_string_equal(vm_error(f, "master-create", "{\"master\": \"m1\", \"vm\": \"sv\"}"), "InvalidState");
    assert_non_null(strstr(member_str(last(&f->admin_out), "error", "desc"), "sv is saved"));
    assert_int_equal(access(v->saved_path, F_OK), 0);

    /* QEMU cannot be found here, so the restore fails after the checks pass: still saved. */
    assert_string_equal(vm_error(f, "vm-restore", "{\"name\": \"sv\"}"), "GenericError");
    assert_string_equal(vm_state_name(v), "saved");
    assert_int_equal(access(v->saved_path, F_OK), 0);
    assert_int_equal(access(state_file, F_OK), 0);

    assert_string_equal(vm_error(f, "vm-save-discard", "{\"name\": \"sv\"}"), "");
    assert_string_equal(vm_state_name(v), "stopped");
    assert_int_equal(access(v->saved_path, F_OK), -1);
    assert_int_equal(access(state_file, F_OK), -1);
}

static void a_damaged_saved_record_refuses_the_restore_but_can_be_discarded(void **state)
{
    fx *f = *state;
    vm *v;

    negotiate(f);
    v = define_bare(f, "sv");
    write_file(v->saved_path, "{\"file\": \"relative\"");
    vm_save_load(v);
    assert_string_equal(vm_state_name(v), "saved");
    assert_string_equal(vm_error(f, "vm-restore", "{\"name\": \"sv\"}"), "InvalidState");
    assert_non_null(strstr(member_str(last(&f->admin_out), "error", "desc"), "damaged"));
    assert_string_equal(vm_error(f, "vm-save-discard", "{\"name\": \"sv\"}"), "");
    assert_string_equal(vm_state_name(v), "stopped");
}

/* The agent died mid-save and so did QEMU: no record, so the VM is stopped
 * and the half-written file goes; with the record, it is saved. */
static void a_save_interrupted_with_its_qemu_leaves_stopped_or_saved(void **state)
{
    fx *f = *state;
    char file[128], part[160], text[1024];
    vm *v;

    negotiate(f);
    v = define_bare(f, "sv");
    snprintf(file, sizeof(file), "%s/sv.state", f->dir);
    snprintf(part, sizeof(part), "%s.part", file);
    for (int recorded = 0; recorded < 2; recorded++) {
        write_file(part, "half");
        snprintf(text, sizeof(text), "{\"pid\": 999999999, \"start-ticks\": 1, \"uuid\": \"%s\", "
                 "\"save\": {\"op\": \"saving\", \"file\": \"%s\", \"resume\": true}}", v->def.uuid, file);
        assert_int_equal(statefile_mkdir_p(v->run_dir, 0750), 0);
        write_file(v->runtime_path, text);
        if (recorded) {
            snprintf(text, sizeof(text), "{\"file\": \"%s\", \"size\": 4, \"resume\": true, \"disks\": []}", file);
            write_file(v->saved_path, text);
            vm_save_load(v);
        }
        assert_int_equal(vm_adopt(v), 0);
        agent_fixture_settle(&f->a);
        assert_string_equal(vm_state_name(v), recorded ? "saved" : "stopped");
        assert_int_equal(access(part, F_OK), recorded ? 0 : -1);
        assert_null(v->save_mark);
    }
}

/* An agent answers before its pools are up; a start that comes while its
 * disk's pool is still being started waits for it and goes on (here to
 * the missing QEMU), instead of failing with "not started". */
static void a_start_waits_for_its_pool_being_started(void **state)
{
    fx *f = *state;
    char line[512];
    struct json_object *r;

    negotiate(f);
    snprintf(line, sizeof(line), "{\"execute\": \"pool-define\", \"arguments\": {\"definition\": "
             "{\"name\": \"late\", \"location\": \"dir://%s/late\"}}}\n", f->dir);
    send_line(f, f->admin, &f->admin_out, line);
    send_line(f, f->admin, &f->admin_out, "{\"execute\": \"vm-define\", \"arguments\": {\"definition\": "
              "{\"name\": \"w\", \"disks\": [{\"pool\": \"late\", \"volume\": \"w.raw\", \"format\": \"raw\"}]}}}\n");
    snprintf(line, sizeof(line), "%s/late/w.raw", f->dir);
    assert_int_equal(statefile_mkdir_p(dirname(strdupa(line)), 0700), 0);
    write_file(line, "");
    r = send_line(f, f->admin, &f->admin_out, "{\"execute\": \"vm-start\", \"arguments\": {\"name\": \"w\"}}\n");
    assert_string_equal(member_str(r, "error", "desc"), "disks[0].pool: late is not started");
    /* Both fed before the loop runs: the start finds the pool starting. */
    const char *both = "{\"execute\": \"pool-start\", \"arguments\": {\"name\": \"late\"}, \"id\": 1}\n"
                       "{\"execute\": \"vm-start\", \"arguments\": {\"name\": \"w\"}, \"id\": 2}\n";
    server_client_feed(f->admin, both, strlen(both));
    assert_true(pool_find(&f->a, "late")->starting);
    agent_fixture_settle(&f->a);
    r = last(&f->admin_out);
    assert_int_equal(json_object_get_int(json_object_object_get(r, "id")), 2);
    assert_string_equal(member_str(r, "error", "class"), "GenericError");
    assert_non_null(strstr(member_str(r, "error", "desc"), "/nonexistent/qemu-system-x86_64"));
    assert_true(pool_find(&f->a, "late")->active);
}

/* ---- snapshots of a stopped VM, without QEMU -------------------------------- */

static const char *snap_call(fx *f, const char *command, const char *snap)
{
    char args[256];

    snprintf(args, sizeof(args), "{\"name\": \"sn\", \"snapshot\": \"%s\"}", snap);
    return vm_error(f, command, args);
}

/* The pool "default" in the test's directory, as an agent's own would be. */
static void start_default_pool(fx *f)
{
    char args[256];

    snprintf(args, sizeof(args), "{\"definition\": {\"name\": \"default\", \"location\": \"dir://%s/images\"}}",
             f->dir);
    assert_string_equal(vm_error(f, "pool-define", args), "");
    assert_string_equal(vm_error(f, "pool-start", "{\"name\": \"default\"}"), "");
}

static void snapshots_are_recorded_reverted_and_deleted_and_survive_a_reload(void **state)
{
    fx *f = *state;
    char top[PATH_MAX], path[PATH_MAX];
    vm *v;

    negotiate(f);
    start_default_pool(f);
    send_line(f, f->admin, &f->admin_out, "{\"execute\": \"vm-define\", \"arguments\": {\"definition\": "
              "{\"name\": \"sn\", \"disks\": [{\"size\": \"1M\"}, {\"cdrom\": true}]}}}\n");
    v = vm_find(&f->a, "sn");
    assert_non_null(v);
    assert_string_equal(snap_call(f, "snapshot-create", "bad/name"), "InvalidParameter");
    assert_string_equal(snap_call(f, "snapshot-create", ""), "InvalidParameter");
    assert_string_equal(snap_call(f, "snapshot-revert", "s1"), "NotFound");
    /* An overlay's name taken by a file that is not ours: refused, the file kept. */
    snprintf(path, sizeof(path), "%s/images/sn.sda.taken.qcow2", f->dir);
    write_file(path, "keep");
    assert_string_equal(snap_call(f, "snapshot-create", "taken"), "Exists");
    assert_int_equal(access(path, F_OK), 0);
    assert_string_equal(v->def.disks[0].volume, "sn.sda.qcow2");
    assert_string_equal(snap_call(f, "snapshot-create", "s1"), "");
    assert_string_equal(snap_call(f, "snapshot-create", "s1"), "Exists");
    /* The writable disk moved to its overlay; the cdrom was left alone. */
    assert_string_equal(v->def.disks[0].volume, "sn.sda.s1.qcow2");
    assert_false(v->def.disks[1].volume[0]);
    assert_string_equal(snap_call(f, "snapshot-create", "s2"), "");
    snprintf(top, sizeof(top), "%s/images/sn.sda.s2.qcow2", f->dir);
    assert_int_equal(access(top, F_OK), 0);

    /* Revert to s1: s2 and what was written after s1 go. */
    assert_string_equal(snap_call(f, "snapshot-revert", "s1"), "");
    assert_int_equal(access(top, F_OK), -1);
    snprintf(path, sizeof(path), "%s/images/sn.sda.s1.qcow2", f->dir);
    assert_int_equal(access(path, F_OK), -1);   /* replaced by a fresh overlay */
    assert_non_null(strstr(v->def.disks[0].volume, "sn.sda.s1."));
    struct json_object *list = vm_snapshot_list(v);
    assert_int_equal(json_object_array_length(list), 1);
    json_object_put(list);

    /* The record is read back as written. */
    json_object_put(v->snapshots);
    v->snapshots = NULL;
    vm_snapshot_load(v);
    list = vm_snapshot_list(v);
    assert_int_equal(json_object_array_length(list), 1);
    json_object_put(list);

    /* Deleting s1 merges the original image into the overlay, which stays the disk. */
    snprintf(path, sizeof(path), "%s/images/sn.sda.qcow2", f->dir);
    assert_int_equal(access(path, F_OK), 0);
    assert_string_equal(snap_call(f, "snapshot-delete", "s1"), "");
    assert_int_equal(access(path, F_OK), -1);
    list = vm_snapshot_list(v);
    assert_int_equal(json_object_array_length(list), 0);
    json_object_put(list);
    assert_string_equal(snap_call(f, "snapshot-delete", "s1"), "NotFound");
}

/* What the watching client saw when its error came: the image's presence. */
typedef struct error_watch {
    char image[PATH_MAX];
    bool errored;
    bool image_there_at_error;
} error_watch;

static void watch_sink(const char *data, size_t len, void *opaque)
{
    error_watch *w = opaque;

    if (memmem(data, len, "\"error\"", 7) && !w->errored) {
        w->errored = true;
        w->image_there_at_error = access(w->image, F_OK) == 0;
    }
}

/* The definition file cannot be written (a directory stands at its path):
 * the disk made for it is removed before the error is sent, so nothing
 * is left of a define the caller was told failed. The removal runs on a
 * pool thread, so an error sent before it would race it: ten defines make
 * that race show. */
static void a_define_that_cannot_be_saved_removes_its_new_disk_before_the_error(void **state)
{
    fx *f = *state;
    const char *caps = "{\"execute\": \"qmp_capabilities\"}\n";
    char blocker[PATH_MAX], define[256];
    error_watch w;
    client *c;

    negotiate(f);
    start_default_pool(f);
    c = server_connect_virtual(f->a.server, true, watch_sink, &w);
    server_client_feed(c, caps, strlen(caps));
    agent_fixture_settle(&f->a);
    for (int i = 0; i < 10; i++) {
        memset(&w, 0, sizeof(w));
        snprintf(w.image, sizeof(w.image), "%s/images/nd%d.sda.qcow2", f->dir, i);
        snprintf(blocker, sizeof(blocker), "%s/vms/nd%d.json/keep", f->dir, i);
        assert_int_equal(statefile_mkdir_p(blocker, 0700), 0);
        snprintf(define, sizeof(define), "{\"execute\": \"vm-define\", \"arguments\": {\"definition\": "
                 "{\"name\": \"nd%d\", \"disks\": [{\"size\": \"1M\"}]}}}\n", i);
        server_client_feed(c, define, strlen(define));
        agent_fixture_settle(&f->a);
        assert_true(w.errored);
        assert_false(w.image_there_at_error);
        assert_int_equal(access(w.image, F_OK), -1);
    }
    assert_null(vm_find(&f->a, "nd0"));
    server_client_close(c);
    agent_fixture_settle(&f->a);
}

static void undefine_purge_deletes_the_snapshots_images_too(void **state)
{
    fx *f = *state;
    char cmd[512];
    struct json_object *r;

    negotiate(f);
    start_default_pool(f);
    send_line(f, f->admin, &f->admin_out, "{\"execute\": \"vm-define\", \"arguments\": {\"definition\": "
              "{\"name\": \"sn\", \"disks\": [{\"size\": \"1M\"}, {\"size\": \"1M\"}]}}}\n");
    assert_string_equal(snap_call(f, "snapshot-create", "s1"), "");
    assert_string_equal(snap_call(f, "snapshot-create", "s2"), "");
    r = send_line(f, f->admin, &f->admin_out,
                  "{\"execute\": \"vm-undefine\", \"arguments\": {\"name\": \"sn\", \"purge\": true}}\n");
    assert_int_equal(json_object_array_length(json_object_object_get(json_object_object_get(r, "return"),
                                                                     "deleted")), 6);
    assert_int_equal(json_object_array_length(json_object_object_get(json_object_object_get(r, "return"),
                                                                     "kept")), 0);
    snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A %s/images)\" && test ! -e %s/vms/sn.snapshots", f->dir, f->dir);
    assert_int_equal(system(cmd), 0);
}

/* The agent stopped between a spawn and its runtime record: the QEMU it
 * launched (found by pidfile and uuid) is ended at the next start, and a
 * process that only reuses the pid is left alone. */
static void a_qemu_launched_but_never_recorded_is_ended_on_adoption(void **state)
{
    fx *f = *state;
    char text[32];
    int status;
    vm *v;

    negotiate(f);
    v = define_bare(f, "orphan");
    for (int ours = 1; ours >= 0; ours--) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            execlp("python3", "python3", "-c", "import time; time.sleep(30)", "-uuid",
                   ours ? v->def.uuid : "00000000-0000-0000-0000-000000000000", (char *)NULL);
            _exit(127);
        }
        usleep(200000);   /* exec'd: its command line is python's */
        assert_int_equal(statefile_mkdir_p(v->run_dir, 0750), 0);
        snprintf(text, sizeof(text), "%d\n", (int)pid);
        write_file(v->pidfile, text);
        assert_int_equal(vm_adopt(v), 0);
        if (!ours) {
            assert_int_equal(waitpid(pid, &status, WNOHANG), 0);   /* still running */
            kill(pid, SIGKILL);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        assert_int_equal(access(v->pidfile, F_OK), -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(greeting_looks_like_qmp, setup, teardown),
        cmocka_unit_test_setup_teardown(commands_before_negotiation_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(any_id_comes_back_unchanged, setup, teardown),
        cmocka_unit_test_setup_teardown(malformed_requests_get_errors_and_the_session_goes_on, setup, teardown),
        cmocka_unit_test_setup_teardown(non_admins_may_only_query, setup, teardown),
        cmocka_unit_test_setup_teardown(define_update_and_undefine_round_trip_with_events, setup, teardown),
        cmocka_unit_test_setup_teardown(redefining_keeps_the_uuid_and_duplicate_uuids_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(macs_are_kept_across_redefinitions_and_unique_on_the_host, setup, teardown),
        cmocka_unit_test_setup_teardown(starting_with_a_missing_qemu_fails_cleanly, setup, teardown),
        cmocka_unit_test_setup_teardown(a_passed_through_device_is_bound_for_qemu_and_returned_when_it_ends, setup, teardown),
        cmocka_unit_test_setup_teardown(a_start_that_cannot_spawn_returns_the_device_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(a_group_with_a_foreign_device_or_a_held_device_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(an_agent_restarted_after_its_qemu_died_returns_the_devices, setup, teardown),
        cmocka_unit_test_setup_teardown(sriov_vfs_are_listed_and_their_count_set_unless_one_is_held, setup, teardown),
        cmocka_unit_test_setup_teardown(query_events_replays_what_a_client_missed, setup, teardown),
        cmocka_unit_test_setup_teardown(an_overlong_line_closes_the_client, setup, teardown),
        cmocka_unit_test_setup_teardown(save_and_restore_refuse_bad_arguments_and_wrong_states, setup, teardown),
        cmocka_unit_test_setup_teardown(a_saved_record_keeps_the_vm_saved_until_discarded, setup, teardown),
        cmocka_unit_test_setup_teardown(a_damaged_saved_record_refuses_the_restore_but_can_be_discarded, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_save_interrupted_with_its_qemu_leaves_stopped_or_saved, setup, teardown),
        cmocka_unit_test_setup_teardown(snapshots_are_recorded_reverted_and_deleted_and_survive_a_reload, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(undefine_purge_deletes_the_snapshots_images_too, setup, teardown),
        cmocka_unit_test_setup_teardown(a_define_that_cannot_be_saved_removes_its_new_disk_before_the_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_start_waits_for_its_pool_being_started, setup, teardown),
        cmocka_unit_test_setup_teardown(a_qemu_launched_but_never_recorded_is_ended_on_adoption, setup, teardown),
        cmocka_unit_test_setup_teardown(send_and_receive_refuse_bad_input_and_a_sent_vm_stays_sent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
