/* test_live_e2e.c: live operations through agentd and real QEMU (tcg):
 * cgroup limits, disk and NIC hotplug, VNC credentials checked by a real
 * RFB client, the serial console through the agent. The guest's own view
 * (its block devices, its interfaces) and the host's files are what is
 * checked, not the agent's answers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "tests/support/agent_e2e.h"
#include "tests/support/agent_harness.h"
#include "tests/support/guest.h"
#include "tests/support/rfb.h"

/* ---- helpers --------------------------------------------------------------- */

static void boot(t *x, const char *vm)
{
    vm_cmd(x, "vm-start", vm);
    assert_int_equal(wait_file_contains(query(x, vm).console, READY_LINE, 1, BOOT_MS), 0);
}

static bool read_text(const char *path, char *out, size_t len)
{
    FILE *f = fopen(path, "re");
    size_t n;

    if (!f)
        return false;
    n = fread(out, 1, len - 1, f);
    out[n] = '\0';
    fclose(f);
    out[strcspn(out, "\n")] = '\0';
    return true;
}

/* /sys/fs/cgroup/CONTROLLER/agentd-test/LEAF/vm-NAME/FILE */
static void cgroup_file(t *x, const char *controller, const char *vm, const char *file, char *out, size_t len)
{
    snprintf(out, len, "/sys/fs/cgroup/%s/" TEST_CGROUP_PARENT "/%s/vm-%s%s%s", controller,
             x->agent.dir + strlen("/tmp/"), vm, file ? "/" : "", file ? file : "");
}

static bool on_cgroup_v1(void)
{
    return access("/sys/fs/cgroup/cpu/cpu.shares", F_OK) == 0 &&
           access("/sys/fs/cgroup/memory/memory.limit_in_bytes", F_OK) == 0;
}

/* ---- cgroups ---------------------------------------------------------------- */

/* vm-update of "half"'s limits; its restart-needed must be want (JSON). */
static void assert_live_limit(t *x, const char *changes, const char *want)
{
    char args[256];
    struct json_object *reply;

    snprintf(args, sizeof(args), "{\"name\": \"half\", \"changes\": %s}", changes);
    reply = call_ok(x, "vm-update", args);
    assert_string_equal(json_object_to_json_string_ext(member(agent_return(reply), "restart-needed"),
                                                       JSON_C_TO_STRING_PLAIN), want);
    json_object_put(reply);
}

/* "half"'s cgroup file reads want within a second (written on the thread pool). */
static void wait_cgroup_text(t *x, const char *controller, const char *file, const char *want)
{
    char path[512], text[64] = "";

    cgroup_file(x, controller, "half", file, path, sizeof(path));
    for (int i = 0; i < 50 && !(read_text(path, text, sizeof(text)) && !strcmp(text, want)); i++)
        usleep(20000);
    assert_string_equal(text, want);
}

/* OpenNebula's CPU=0.5 is half the weight of CPU=1.0. */
static void each_qemu_gets_its_cgroup_with_the_weights_asked_for(void **state)
{
    t *x = *state;
    char path[512], text[64], pid[16];

    if (!on_cgroup_v1())
        skip();
    define(x, guest_def("half", "\"cpu-shares\": 0.5, \"memory-limit\": \"768M\""));
    define(x, guest_def("whole", "\"cpu-shares\": 1.0"));
    boot(x, "half");
    vm_cmd(x, "vm-start", "whole");
    cgroup_file(x, "cpu", "half", "cpu.shares", path, sizeof(path));
    assert_true(read_text(path, text, sizeof(text)));
    assert_string_equal(text, "512");
    cgroup_file(x, "cpu", "whole", "cpu.shares", path, sizeof(path));
    assert_true(read_text(path, text, sizeof(text)));
    assert_string_equal(text, "1024");
    cgroup_file(x, "memory", "half", "memory.limit_in_bytes", path, sizeof(path));
    assert_true(read_text(path, text, sizeof(text)));
    assert_string_equal(text, "805306368");
    cgroup_file(x, "cpu", "half", "cgroup.procs", path, sizeof(path));
    snprintf(pid, sizeof(pid), "%d", query(x, "half").pid);
    assert_true(read_text(path, text, sizeof(text)));
    assert_string_equal(text, pid);
    /* Changed on the running VM: the weight and a raised cap at once, a
     * lowered cap (which could get the guest killed) at the next start. */
    assert_live_limit(x, "{\"cpu-shares\": 2.0, \"memory-limit\": \"1G\"}", "[]");
    wait_cgroup_text(x, "cpu", "cpu.shares", "2048");
    wait_cgroup_text(x, "memory", "memory.limit_in_bytes", "1073741824");
    assert_live_limit(x, "{\"memory-limit\": \"512M\"}", "[\"memory-limit\"]");
    usleep(300000);   /* the group's write, had there been one, is done by now */
    wait_cgroup_text(x, "memory", "memory.limit_in_bytes", "1073741824");
    /* An agent killed and started again finds the groups and keeps them. */
    agent_close(&x->conn);
    agentd_stop(&x->agent, 9);
    assert_int_equal(agentd_start(&x->agent), 0);
    assert_int_equal(agent_connect(&x->conn, x->agent.socket), 0);
    /* Its adoption was announced before this connection existed: ask. */
    for (int i = 0; i < 200 && strcmp(query(x, "half").state, "running"); i++)
        usleep(100000);
    assert_string_equal(query(x, "half").state, "running");
    assert_true(read_text(path, text, sizeof(text)));
    assert_string_equal(text, pid);
    vm_cmd(x, "vm-destroy", "half");
    vm_cmd(x, "vm-destroy", "whole");
    cgroup_file(x, "cpu", "half", NULL, path, sizeof(path));
    for (int i = 0; i < 100 && access(path, F_OK) == 0; i++)
        usleep(20000);
    assert_int_equal(access(path, F_OK), -1);
    cgroup_file(x, "memory", "whole", NULL, path, sizeof(path));
    for (int i = 0; i < 100 && access(path, F_OK) == 0; i++)
        usleep(20000);
    assert_int_equal(access(path, F_OK), -1);
}

/* The cap covers QEMU itself: one at the guest's RAM is refused. */
static void a_memory_limit_at_the_guests_ram_is_refused(void **state)
{
    t *x = *state;

    call_fails(x, "vm-define", "{\"definition\": {\"name\": \"tight\", \"memory\": 256, \"memory-limit\": 256}}",
               "InvalidParameter", "memory-limit: must be more than the guest's memory");
}

/* ---- disk hotplug ------------------------------------------------------------- */

/* A file of random data in the default pool, and its md5. */
static void data_file(t *x, const char *name, int mb, char *path, size_t len, char *md5, size_t md5len)
{
    snprintf(path, len, "%s/state/images/%s", x->agent.dir, name);
    sh("dd if=/dev/urandom of='%s' bs=1M count=%d status=none", path, mb);
    sh_out(md5, md5len, "md5sum '%s' | cut -d' ' -f1", path);
}

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = text; (p = strstr(p, line)); p += n)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

/* Whether the guest lists block device dev of size bytes, asked until it
 * matches want (hotplug reaches the guest a moment after QEMU). */
static bool guest_disk_is(t *x, const char *vm, const char *dev, uint64_t size, bool want)
{
    char out[GUEST_LINE_MAX], line[64];
    bool has = !want;

    snprintf(line, sizeof(line), "%s %llu", dev, (unsigned long long)size);
    for (int i = 0; i < 40 && has != want; i++) {
        if (i)
            usleep(250000);
        guest_ask(x, vm, "blk", out, sizeof(out));
        has = has_line(out, line);
    }
    return has == want;
}

static void assert_guest_reads(t *x, const char *vm, const char *dev, int mb, const char *md5)
{
    char cmd[64], out[128];

    snprintf(cmd, sizeof(cmd), "sum %s 0 %d", dev, mb << 20);
    guest_ask(x, vm, cmd, out, sizeof(out));
    assert_string_equal(out, md5);
}

/* The node names QEMU has, from query-named-block-nodes through vm-qmp. */
static void block_nodes(t *x, const char *vm, char *out, size_t len)
{
    char args[256];
    struct json_object *reply, *nodes;
    size_t at = 0;

    snprintf(args, sizeof(args), "{\"name\": \"%s\", \"command\": \"query-named-block-nodes\"}", vm);
    reply = call_ok(x, "vm-qmp", args);
    nodes = agent_return(reply);
    out[0] = '\0';
    for (size_t i = 0; i < json_object_array_length(nodes) && at < len; i++)
        at += (size_t)snprintf(out + at, len - at, "%s ",
                               json_object_get_string(member(json_object_array_get_idx(nodes, i), "node-name")));
    json_object_put(reply);
}

static struct json_object *definition_disks(t *x, const char *vm, struct json_object **reply)
{
    char *a = name_arg(vm);

    *reply = call_ok(x, "query-vm", a);
    free(a);
    return member(member(agent_return(*reply), "definition"), "disks");
}

static void a_disk_attached_to_a_running_guest_is_read_keeps_its_place_and_goes_on_detach(void **state)
{
    t *x = *state;
    char path[512], md5[64], args[1024], nodes[4096];
    struct json_object *reply, *disks, *r;

    define(x, guest_def("hp", NULL));
    boot(x, "hp");
    data_file(x, "data.raw", 8, path, sizeof(path), md5, sizeof(md5));
    snprintf(args, sizeof(args), "{\"name\": \"hp\", \"disk\": {\"path\": \"%s\", \"format\": \"raw\"}}", path);
    r = call_ok(x, "disk-attach", args);
    assert_string_equal(json_object_get_string(member(agent_return(r), "device")), "disk-sda");
    assert_int_equal(json_object_get_int(member(agent_return(r), "slot")), 0);
    json_object_put(r);
    assert_true(guest_disk_is(x, "hp", "vda", 8u << 20, true));
    assert_guest_reads(x, "hp", "vda", 8, md5);
    /* Saved with its slot and the host's attach cache. */
    disks = definition_disks(x, "hp", &reply);
    assert_int_equal(json_object_array_length(disks), 1);
    assert_int_equal(json_object_get_int(member(json_object_array_get_idx(disks, 0), "slot")), 0);
    assert_string_equal(json_object_get_string(member(json_object_array_get_idx(disks, 0), "cache")), "writeback");
    json_object_put(reply);

    /* After a restart it is where it was, and still detachable. */
    vm_cmd(x, "vm-destroy", "hp");
    vm_cmd(x, "vm-start", "hp");
    assert_int_equal(wait_file_contains(query(x, "hp").console, READY_LINE, 2, BOOT_MS), 0);
    assert_true(guest_disk_is(x, "hp", "vda", 8u << 20, true));
    assert_guest_reads(x, "hp", "vda", 8, md5);

    call_ok_put(x, "disk-detach", "{\"name\": \"hp\", \"target\": \"sda\"}");
    assert_true(guest_disk_is(x, "hp", "vda", 8u << 20, false));
    block_nodes(x, "hp", nodes, sizeof(nodes));
    assert_null(strstr(nodes, "-sda"));
    disks = definition_disks(x, "hp", &reply);
    assert_int_equal(disks ? json_object_array_length(disks) : 0, 0);
    json_object_put(reply);
}

static void a_scsi_disk_attaches_to_the_vms_controller_and_detaches(void **state)
{
    t *x = *state;
    char path[512], md5[64], args[1024], nodes[4096];

    define(x, guest_def("hs", "\"disks\": [{\"size\": \"16M\", \"bus\": \"virtio-scsi\"}]"));
    boot(x, "hs");
    assert_true(guest_disk_is(x, "hs", "sda", 16u << 20, true));
    data_file(x, "scsi.raw", 4, path, sizeof(path), md5, sizeof(md5));
    snprintf(args, sizeof(args),
             "{\"name\": \"hs\", \"disk\": {\"path\": \"%s\", \"format\": \"raw\", \"bus\": \"virtio-scsi\"}}", path);
    call_ok_put(x, "disk-attach", args);
    assert_true(guest_disk_is(x, "hs", "sdb", 4u << 20, true));
    assert_guest_reads(x, "hs", "sdb", 4, md5);
    call_ok_put(x, "disk-detach", "{\"name\": \"hs\", \"target\": \"sdb\"}");
    assert_true(guest_disk_is(x, "hs", "sdb", 4u << 20, false));
    assert_true(guest_disk_is(x, "hs", "sda", 16u << 20, true));
    block_nodes(x, "hs", nodes, sizeof(nodes));
    assert_null(strstr(nodes, "-sdb"));
    assert_non_null(strstr(nodes, "drive-sda"));
}

/* A port taken behind the agent's back makes device_add fail: the nodes
 * added for it, the file made for it and the disk in the definition file
 * are gone when the error comes. */
static void a_failed_attach_leaves_no_block_node_and_no_file(void **state)
{
    t *x = *state;
    char nodes[4096], file[512];
    struct json_object *reply, *disks;

    define(x, guest_def("hf", NULL));
    boot(x, "hf");
    call_ok_put(x, "vm-qmp", "{\"name\": \"hf\", \"command\": \"device_add\", \"arguments\": "
                             "{\"driver\": \"virtio-rng-pci\", \"id\": \"squatter\", \"bus\": \"hp0\"}}");
    call_fails(x, "disk-attach", "{\"name\": \"hf\", \"disk\": {\"size\": \"8M\"}}", "GenericError",
               "device_add: ");
    /* Gone before the error was told: looked at first, right away. */
    snprintf(file, sizeof(file), "%s/state/images/hf.sda.qcow2", x->agent.dir);
    assert_int_equal(access(file, F_OK), -1);
    block_nodes(x, "hf", nodes, sizeof(nodes));
    assert_null(strstr(nodes, "-sda"));
    disks = definition_disks(x, "hf", &reply);
    assert_int_equal(disks ? json_object_array_length(disks) : 0, 0);
    json_object_put(reply);
    /* The file too: it was written ahead with the disk, and written back
     * before the error was told. */
    snprintf(file, sizeof(file), "%s/state/vms/hf.json", x->agent.dir);
    struct json_object *saved = json_object_from_file(file);
    assert_non_null(saved);
    disks = member(saved, "disks");
    assert_int_equal(disks ? json_object_array_length(disks) : 0, 0);
    json_object_put(saved);
}

static void attaching_needs_a_running_vm_and_a_free_slot(void **state)
{
    t *x = *state;

    define(x, bare_def("full", "\"hotplug-slots\": 0"));
    call_fails(x, "disk-attach", "{\"name\": \"full\", \"disk\": {\"size\": \"8M\"}}", "InvalidState",
               "full is stopped");
    vm_cmd(x, "vm-start", "full");
    call_fails(x, "disk-attach", "{\"name\": \"full\", \"disk\": {\"size\": \"8M\"}}", "LimitReached",
               "full: all 0 hotplug slots are taken");
    call_fails(x, "disk-attach", "{\"name\": \"full\", \"disk\": {\"size\": \"8M\", \"bus\": \"virtio-scsi\"}}",
               "InvalidParameter", "disk.bus: full has no virtio-scsi controller");
    call_fails(x, "disk-attach", "{\"name\": \"full\", \"disk\": {\"size\": \"8M\", \"bus\": \"sata\"}}",
               "InvalidParameter", "disk.bus: sata disks cannot be attached");
    call_fails(x, "disk-attach", "{\"name\": \"full\", \"disk\": {\"size\": \"eight\"}}",
               "InvalidParameter", "disks[0].size");
    call_fails(x, "disk-detach", "{\"name\": \"full\", \"target\": \"sdz\"}", "NotFound", "target: ");
}

/* ---- vCPUs and memory --------------------------------------------------------- */

static void guest_run_line(t *x, const char *vm, const char *command, char *out, size_t len)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "run %s", command);
    guest_ask(x, vm, cmd, out, len);
}

static long guest_mem_kib(t *x, const char *vm)
{
    char out[64];

    guest_ask(x, vm, "mem", out, sizeof(out));
    return atol(out);
}

/* What the guest's kernel lists as present, asked until it is want. */
static void wait_present_cpus(t *x, const char *vm, const char *want)
{
    char out[64] = "";

    for (int i = 0; i < 40 && strcmp(out, want); i++) {
        if (i)
            usleep(250000);
        guest_run_line(x, vm, "cat /sys/devices/system/cpu/present", out, sizeof(out));
    }
    assert_string_equal(out, want);
}

static int query_vcpus(t *x, const char *vm)
{
    char *a = name_arg(vm);
    struct json_object *r = call_ok(x, "query-vm", a);
    int n = json_object_get_int(member(member(agent_return(r), "definition"), "vcpus"));

    free(a);
    json_object_put(r);
    return n;
}

static void set_ok(t *x, const char *cmd, const char *args, const char *key, int64_t want)
{
    struct json_object *r = call_ok(x, cmd, args);

    assert_int_equal(json_object_get_int64(member(agent_return(r), key)), want);
    json_object_put(r);
}

static void the_guest_sees_vcpus_come_and_go_up_to_max_vcpus(void **state)
{
    t *x = *state;
    char out[64];

    define(x, guest_def("cpu", "\"vcpus\": 2, \"max-vcpus\": 4"));
    boot(x, "cpu");
    wait_present_cpus(x, "cpu", "0-1");
    set_ok(x, "vcpus-set", "{\"name\": \"cpu\", \"vcpus\": 4}", "vcpus", 4);
    wait_present_cpus(x, "cpu", "0-3");
    /* No udev in the guest: it onlines them itself, as a guest agent would. */
    guest_run_line(x, "cpu", "sh -c 'echo 1 > /sys/devices/system/cpu/cpu2/online; "
                             "echo 1 > /sys/devices/system/cpu/cpu3/online'", out, sizeof(out));
    guest_ask(x, "cpu", "cpus", out, sizeof(out));
    assert_string_equal(out, "4 0-3");
    set_ok(x, "vcpus-set", "{\"name\": \"cpu\", \"vcpus\": 2}", "vcpus", 2);
    wait_present_cpus(x, "cpu", "0-1");
    assert_int_equal(query_vcpus(x, "cpu"), 2);
    call_fails(x, "vcpus-set", "{\"name\": \"cpu\", \"vcpus\": 5}", "LimitReached", "vcpus: 5 is above max-vcpus (4)");
    call_fails(x, "vcpus-set", "{\"name\": \"cpu\", \"vcpus\": 1}", "InvalidParameter", "vcpus: under tcg");
}

static void the_guest_gets_more_memory_up_to_max_memory_and_gives_some_back_to_the_balloon(void **state)
{
    t *x = *state;
    char out[64];
    long before, grown, ballooned = 0;
    struct json_object *reply;

    define(x, guest_def("mem", "\"max-memory\": 1024"));
    boot(x, "mem");
    before = guest_mem_kib(x, "mem");
    set_ok(x, "memory-set", "{\"name\": \"mem\", \"memory\": \"512M\"}", "memory", 512);
    /* The guest's kernel leaves hotplugged blocks offline until told. */
    for (int i = 0; i < 40; i++) {
        guest_run_line(x, "mem", "sh -c 'for f in /sys/devices/system/memory/memory*/state; do "
                                 "grep -q offline $f && echo online > $f; done; true'", out, sizeof(out));
        if ((grown = guest_mem_kib(x, "mem")) >= before + 256 * 1024 - 1024)
            break;
        usleep(250000);
    }
    assert_true(grown >= before + 256 * 1024 - 1024);
    reply = call_ok(x, "query-vm", "{\"name\": \"mem\"}");
    assert_int_equal(json_object_get_int(member(member(agent_return(reply), "definition"), "memory")), 512);
    json_object_put(reply);
    call_fails(x, "memory-set", "{\"name\": \"mem\", \"memory\": 2048}", "LimitReached", "memory: 2048 MiB is above");
    call_fails(x, "memory-set", "{\"name\": \"mem\", \"memory\": 600}", "InvalidParameter", "memory: grows in steps");
    call_fails(x, "memory-set", "{\"name\": \"mem\", \"memory\": 256}", "InvalidParameter", "memory: 256 MiB is not above");

    set_ok(x, "balloon-set", "{\"name\": \"mem\", \"target\": 256}", "target", 256);
    for (int i = 0; i < 80; i++) {
        if ((ballooned = guest_mem_kib(x, "mem")) <= grown - 200 * 1024)
            break;
        usleep(250000);
    }
    assert_true(ballooned <= grown - 200 * 1024);
    call_fails(x, "balloon-set", "{\"name\": \"mem\", \"target\": 4096}", "InvalidParameter", "target: ");
}

/* ---- VNC ---------------------------------------------------------------------------- */

typedef struct vnc_creds {
    char host[64], password[16];
    unsigned port;
} vnc_creds;

static vnc_creds credentials(t *x, const char *args)
{
    struct json_object *r = call_ok(x, "vnc-credentials", args), *ret = agent_return(r);
    vnc_creds c;

    snprintf(c.host, sizeof(c.host), "%s", json_object_get_string(member(ret, "host")));
    snprintf(c.password, sizeof(c.password), "%s", json_object_get_string(member(ret, "password")));
    c.port = (unsigned)json_object_get_int(member(ret, "port"));
    assert_string_equal(json_object_get_string(member(ret, "protocol")), "vnc");
    json_object_put(r);
    return c;
}

static int login(const vnc_creds *c, const char *password)
{
    char reason[256];

    return rfb_vnc_login(c->host, c->port, password, 10000, reason, sizeof(reason));
}

static void a_real_rfb_client_gets_in_with_one_time_credentials_and_not_after_they_expire(void **state)
{
    t *x = *state;
    vnc_creds c, again;

    define(x, bare_def("vnc", "\"vnc\": true"));
    vm_cmd(x, "vm-start", "vnc");
    c = credentials(x, "{\"name\": \"vnc\", \"expire\": 3}");
    assert_int_equal(strlen(c.password), 8);
    assert_int_equal(login(&c, c.password), 0);
    assert_int_equal(login(&c, "wrong123"), 1);
    assert_int_equal(login(&c, c.password), 0);
    sleep(4);
    assert_int_equal(login(&c, c.password), 1);

    /* A persistent password works, and one-time credentials do not leave it behind. */
    call_ok_put(x, "vnc-password", "{\"name\": \"vnc\", \"password\": \"s3cret\"}");
    assert_int_equal(login(&c, "s3cret"), 0);
    again = credentials(x, "{\"name\": \"vnc\", \"expire\": 2}");
    assert_int_equal(login(&again, again.password), 0);
    assert_int_equal(login(&again, "s3cret"), 1);
    sleep(3);
    assert_int_equal(login(&again, again.password), 1);
    assert_int_equal(login(&again, "s3cret"), 0);
}

/* ---- the serial console through the agent ----------------------------------------- */

/* Reads one line (without '\n') from a blocking socket with a receive timeout. */
static bool read_line(int fd, char *out, size_t len)
{
    size_t n = 0;
    char ch;

    while (n + 1 < len) {
        if (read(fd, &ch, 1) != 1)
            return false;
        if (ch == '\n')
            break;
        out[n++] = ch;
    }
    out[n] = '\0';
    return true;
}

static void send_text(int fd, const char *text)
{
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
}

/* A connection to the agent that sent console-attach with args, and then
 * typed; reply gets the answer line (events skipped). */
static int console_connect(t *x, const char *args, const char *typed, char *reply, size_t len)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct timeval tv = { .tv_sec = 20 };
    char line[4096], req[1024];
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", x->agent.socket);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_true(read_line(fd, line, sizeof(line)));
    send_text(fd, "{\"execute\": \"qmp_capabilities\"}\n");
    assert_true(read_line(fd, line, sizeof(line)));
    /* The request and what is typed after it, in one write. */
    snprintf(req, sizeof(req), "{\"execute\": \"console-attach\", \"arguments\": %s}\n%s", args, typed);
    send_text(fd, req);
    do
        assert_true(read_line(fd, reply, len));
    while (!strncmp(reply, "{\"event\"", 9));
    return fd;
}

/* Raw console bytes until a line starting with prefix. */
static void wait_console_line(int fd, const char *prefix)
{
    char line[4096];

    do
        if (!read_line(fd, line, sizeof(line)))
            fail_msg("the console closed or went quiet before '%s'", prefix);
    while (strncmp(line, prefix, strlen(prefix)));
}

static void text_typed_on_the_console_reaches_the_guest_and_one_writer_at_a_time(void **state)
{
    t *x = *state;
    char reply[1024], line[4096];
    int w, busy, watcher, taker;

    define(x, guest_def("con", NULL));
    boot(x, "con");
    w = console_connect(x, "{\"name\": \"con\"}", "?41 ping\n", reply, sizeof(reply));
    assert_string_equal(reply, "{\"return\":{}}");
    wait_console_line(w, "=41 pong");
    wait_console_line(w, ".41 ok");

    busy = console_connect(x, "{\"name\": \"con\"}", "", reply, sizeof(reply));
    assert_non_null(strstr(reply, "\"Busy\""));
    close(busy);

    watcher = console_connect(x, "{\"name\": \"con\", \"readonly\": true}", "?42 ping\n", reply, sizeof(reply));
    assert_string_equal(reply, "{\"return\":{}}");
    send_text(w, "?43 ping\n");
    wait_console_line(watcher, "=43 pong");   /* the watcher's own typing went nowhere */
    wait_console_line(w, "=43 pong");

    taker = console_connect(x, "{\"name\": \"con\", \"takeover\": true}", "?44 ping\n", reply, sizeof(reply));
    assert_string_equal(reply, "{\"return\":{}}");
    wait_console_line(taker, "=44 pong");
    wait_console_line(w, "[agentd: another client took over the console]");
    assert_false(read_line(w, line, sizeof(line)));   /* and then it is closed */
    close(w);
    close(watcher);
    close(taker);
    call_fails(x, "console-attach", "{\"name\": \"nope\"}", "NotFound", NULL);
}

/* agentctl console with a pipe for a terminal: the keys reach the guest,
 * its answer comes out, Ctrl-] leaves with status 0. */
static void agentctl_console_types_into_the_guest_and_leaves_on_ctrl_bracket(void **state)
{
    t *x = *state;
    char cmd[1024], out[8192];
    size_t n;
    FILE *p;

    define(x, guest_def("ctl", NULL));
    boot(x, "ctl");
    snprintf(cmd, sizeof(cmd), "(printf '?61 ping\\n'; sleep 3; printf '\\035') | %s -s %s console ctl",
             AGENTCTL_PATH, x->agent.socket);
    assert_non_null(p = popen(cmd, "r"));
    n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    if (!strstr(out, "=61 pong"))
        fail_msg("agentctl console printed '%s'", out);
}

static void the_console_log_stays_within_its_limit(void **state)
{
    t *x = *state;
    char reply[1024], log1[600];
    struct stat st;
    int w;

    define(x, guest_def("chatty", NULL));
    boot(x, "chatty");
    w = console_connect(x, "{\"name\": \"chatty\"}", "?51 run seq 1 4000\n", reply, sizeof(reply));
    wait_console_line(w, ".51 ok");
    close(w);
    vm_info info = query(x, "chatty");
    snprintf(log1, sizeof(log1), "%s.1", info.console);
    /* Checked every 5 s: a check in the middle of the output cuts twice. */
    for (int i = 0; i < 200; i++) {
        if (stat(log1, &st) == 0 && stat(info.console, &st) == 0 && st.st_size <= 8 * 1024)
            break;
        usleep(100000);
    }
    assert_int_equal(stat(info.console, &st), 0);
    assert_true(st.st_size <= 8 * 1024);
    assert_int_equal(stat(log1, &st), 0);
    assert_true(st.st_size > 8 * 1024);
}

static int setup_small_console_log(void **state)
{
    return setup_with(state, "console-log-max-kib = 8\n");
}

static int setup_hotplug(void **state)
{
    return setup_with(state, "attach-cache = writeback\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(each_qemu_gets_its_cgroup_with_the_weights_asked_for, setup, teardown),
        cmocka_unit_test_setup_teardown(a_memory_limit_at_the_guests_ram_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(a_disk_attached_to_a_running_guest_is_read_keeps_its_place_and_goes_on_detach,
                                        setup_hotplug, teardown),
        cmocka_unit_test_setup_teardown(a_scsi_disk_attaches_to_the_vms_controller_and_detaches, setup, teardown),
        cmocka_unit_test_setup_teardown(a_failed_attach_leaves_no_block_node_and_no_file, setup, teardown),
        cmocka_unit_test_setup_teardown(attaching_needs_a_running_vm_and_a_free_slot, setup, teardown),
        cmocka_unit_test_setup_teardown(the_guest_sees_vcpus_come_and_go_up_to_max_vcpus, setup, teardown),
        cmocka_unit_test_setup_teardown(the_guest_gets_more_memory_up_to_max_memory_and_gives_some_back_to_the_balloon,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(text_typed_on_the_console_reaches_the_guest_and_one_writer_at_a_time, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(agentctl_console_types_into_the_guest_and_leaves_on_ctrl_bracket, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(the_console_log_stays_within_its_limit, setup_small_console_log, teardown),
        cmocka_unit_test_setup_teardown(a_real_rfb_client_gets_in_with_one_time_credentials_and_not_after_they_expire,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
