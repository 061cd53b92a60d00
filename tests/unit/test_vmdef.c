/* test_vmdef.c: VM definitions: the forms each field accepts, the errors
 * that name the field, the canonical form and its round trip, copies, and
 * which changes need a restart. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "agent/vmdef.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define UUID "0b5ec5d2-4a4c-4a6e-9d43-6a0cd3b2c1f0"
/* A definition named vm1 with the given members added. */
#define WITH(members) "{\"name\":\"vm1\"," members "}"
/* The same with a fixed uuid, for comparisons between two parses. */
#define WITHU(members) "{\"name\":\"vm1\",\"uuid\":\"" UUID "\"," members "}"
#define NAME64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define NAME65 NAME64 "a"

static int parse(const char *text, vm_def *ret, char *err, size_t errlen)
{
    struct json_object *o = json_tokener_parse(text);
    int r;

    assert_non_null(o);
    r = vmdef_from_json(o, ret, err, errlen);
    json_object_put(o);
    return r;
}

static void parse_ok(const char *text, vm_def *ret)
{
    char err[VM_ERR_MAX] = "";
    int r = parse(text, ret, err, sizeof(err));

    if (r != 0)
        print_message("refused %s: %s\n", text, err);
    assert_int_equal(r, 0);
}

static char *to_text(const vm_def *d)
{
    struct json_object *o = vmdef_to_json(d);
    char *s;

    assert_non_null(o);
    s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                     JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    assert_non_null(s);
    return s;
}

/* Serializes d, parses the text again, and checks the two are equal. */
static void assert_round_trips(const vm_def *d)
{
    char *text = to_text(d);
    vm_def again;
    char *text_again;

    parse_ok(text, &again);
    assert_true(vmdef_equal(d, &again));
    text_again = to_text(&again);
    assert_string_equal(text, text_again);
    free(text_again);
    free(text);
    vmdef_free(&again);
}

/* ---- good inputs ---- */

static const struct vcpus_case {
    const char *json;
    uint32_t vcpus, sockets, cores, threads, max;
    bool topology;
} vcpus_cases[] = {
    {"{\"name\":\"vm1\"}", 1, 1, 1, 1, 1, false},
    {WITH("\"vcpus\":4"), 4, 4, 1, 1, 4, false},
    {WITH("\"vcpus\":\"4\""), 4, 4, 1, 1, 4, false},
    {WITH("\"vcpus\":1024"), 1024, 1024, 1, 1, 1024, false},
    {WITH("\"vcpus\":\"2:2\""), 4, 2, 2, 1, 4, true},
    {WITH("\"vcpus\":\"2:2:2\""), 8, 2, 2, 2, 8, true},
    {WITH("\"vcpus\":{\"sockets\":2,\"cores\":4}"), 8, 2, 4, 1, 8, true},
    {WITH("\"vcpus\":{\"threads\":2}"), 2, 1, 1, 2, 2, true},
    {WITH("\"vcpus\":{}"), 1, 1, 1, 1, 1, true},
    {WITH("\"vcpus\":2,\"max-vcpus\":8"), 2, 2, 1, 1, 8, false},
    {WITH("\"vcpus\":2,\"max-vcpus\":0"), 2, 2, 1, 1, 2, false},
    {WITH("\"vcpus\":\"1:2\",\"max-vcpus\":8"), 2, 1, 2, 1, 8, true},
};

static void each_form_of_vcpus_gives_its_topology(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(vcpus_cases); i++) {
        const struct vcpus_case *c = &vcpus_cases[i];
        vm_def d;

        print_message("%s\n", c->json);
        parse_ok(c->json, &d);
        assert_int_equal(d.vcpus, c->vcpus);
        assert_int_equal(d.sockets, c->sockets);
        assert_int_equal(d.cores, c->cores);
        assert_int_equal(d.threads, c->threads);
        assert_int_equal(d.max_vcpus, c->max);
        assert_int_equal(d.topology_explicit, c->topology);
        assert_round_trips(&d);
        vmdef_free(&d);
    }
}

static const struct memory_case {
    const char *json;
    uint64_t memory, max_memory;
} memory_cases[] = {
    {"{\"name\":\"vm1\"}", 512, 0},
    {WITH("\"memory\":1024"), 1024, 0},
    {WITH("\"memory\":16"), 16, 0},
    {WITH("\"memory\":\"512\""), 512, 0},
    {WITH("\"memory\":\"512M\""), 512, 0},
    {WITH("\"memory\":\"512MiB\""), 512, 0},
    {WITH("\"memory\":\"2G\""), 2048, 0},
    {WITH("\"memory\":\"2gib\""), 2048, 0},
    {WITH("\"memory\":\"1T\""), 1048576, 0},
    {WITH("\"memory\":\"16T\""), 16777216, 0},
    {WITH("\"memory\":\"2G\",\"max-memory\":\"8G\""), 2048, 8192},
    {WITH("\"memory\":1024,\"max-memory\":4096"), 1024, 4096},
    {WITH("\"memory\":1024,\"max-memory\":0"), 1024, 0},
    {WITH("\"memory\":1024,\"max-memory\":\"0\""), 1024, 0},
};

static void each_form_of_memory_gives_its_size_in_mib(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(memory_cases); i++) {
        const struct memory_case *c = &memory_cases[i];
        vm_def d;

        print_message("%s\n", c->json);
        parse_ok(c->json, &d);
        assert_int_equal(d.memory_mib, c->memory);
        assert_int_equal(d.max_memory_mib, c->max_memory);
        assert_round_trips(&d);
        vmdef_free(&d);
    }
}

static const struct boot_case {
    const char *json;
    size_t n;
    vm_boot_dev devs[VM_BOOT_MAX];
} boot_cases[] = {
    {"{\"name\":\"vm1\"}", 0, {0}},
    {WITH("\"boot\":[]"), 0, {0}},
    {WITH("\"boot\":\"\""), 0, {0}},
    {WITH("\"boot\":[\"network\",\"disk\"]"), 2, {VM_BOOT_NETWORK, VM_BOOT_DISK}},
    {WITH("\"boot\":[\"cdrom\",\"disk\",\"network\"]"), 3,
     {VM_BOOT_CDROM, VM_BOOT_DISK, VM_BOOT_NETWORK}},
    {WITH("\"boot\":\"network,disk\""), 2, {VM_BOOT_NETWORK, VM_BOOT_DISK}},
    {WITH("\"boot\":\"hd,network\""), 2, {VM_BOOT_DISK, VM_BOOT_NETWORK}},
    {WITH("\"boot\":\"cd\""), 1, {VM_BOOT_CDROM}},
    {WITH("\"boot\":\"pxe,hd\""), 2, {VM_BOOT_NETWORK, VM_BOOT_DISK}},
    {WITH("\"boot\":[\"net\",\"cd\",\"hd\"]"), 3, {VM_BOOT_NETWORK, VM_BOOT_CDROM, VM_BOOT_DISK}},
};

static void each_form_of_boot_gives_its_device_order(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(boot_cases); i++) {
        const struct boot_case *c = &boot_cases[i];
        vm_def d;

        print_message("%s\n", c->json);
        parse_ok(c->json, &d);
        assert_int_equal(d.nboot, c->n);
        for (size_t j = 0; j < c->n; j++)
            assert_int_equal(d.boot[j], c->devs[j]);
        assert_round_trips(&d);
        vmdef_free(&d);
    }
}

static void serial_speed_is_accepted_as_a_number_or_an_object(void **state)
{
    vm_def d;

    parse_ok(WITH("\"serial\":115200"), &d);
    assert_int_equal(d.serial_speed, 115200);
    vmdef_free(&d);
    parse_ok(WITH("\"serial\":{\"speed\":9600}"), &d);
    assert_int_equal(d.serial_speed, 9600);
    assert_round_trips(&d);
    vmdef_free(&d);
    parse_ok(WITH("\"serial\":{}"), &d);
    assert_int_equal(d.serial_speed, 0);
    vmdef_free(&d);
}

static void direct_kernel_boot_keeps_paths_and_command_line(void **state)
{
    vm_def d;

    parse_ok(WITH("\"kernel\":\"/boot/vmlinuz\",\"initrd\":\"/boot/initrd.img\","
                  "\"cmdline\":\"console=ttyS0 ip=10.0.0.2::10.0.0.1:255.255.255.0,eth0\""),
             &d);
    assert_string_equal(d.kernel, "/boot/vmlinuz");
    assert_string_equal(d.initrd, "/boot/initrd.img");
    assert_string_equal(d.cmdline, "console=ttyS0 ip=10.0.0.2::10.0.0.1:255.255.255.0,eth0");
    assert_round_trips(&d);
    vmdef_free(&d);
}

static void labels_are_kept_sorted_by_key(void **state)
{
    vm_def d;

    parse_ok(WITH("\"labels\":{\"ipaddress\":\"10.0.0.2\",\"hostname\":\"node1\","
                  "\"description\":\"\"}"),
             &d);
    assert_int_equal(d.nlabels, 3);
    assert_string_equal(d.labels[0].key, "description");
    assert_string_equal(d.labels[0].value, "");
    assert_string_equal(d.labels[1].key, "hostname");
    assert_string_equal(d.labels[1].value, "node1");
    assert_string_equal(d.labels[2].key, "ipaddress");
    assert_round_trips(&d);
    vmdef_free(&d);
}

static void names_of_up_to_64_letters_digits_dots_and_dashes_are_accepted(void **state)
{
    vm_def d;

    parse_ok("{\"name\":\"" NAME64 "\"}", &d);
    assert_string_equal(d.name, NAME64);
    vmdef_free(&d);
    parse_ok("{\"name\":\"Node_1.rack-2\"}", &d);
    vmdef_free(&d);
}

/* ---- bad inputs ---- */

static const struct bad_case {
    const char *json;
    const char *field;
} bad_cases[] = {
    {WITH("\"colour\":\"blue\""), "colour"},
    {"[]", "definition"},
    {"{}", "name"},
    {"{\"vcpus\":2}", "name"},
    {"{\"name\":\"../x\"}", "name"},
    {"{\"name\":\"\"}", "name"},
    {"{\"name\":\"" NAME65 "\"}", "name"},
    {"{\"name\":\"-rf\"}", "name"},
    {"{\"name\":\".hidden\"}", "name"},
    {"{\"name\":\"a b\"}", "name"},
    {"{\"name\":\"a,b\"}", "name"},
    {"{\"name\":\"vm\\u0000x\"}", "name"},
    {WITH("\"memory\":-1"), "memory"},
    {WITH("\"memory\":0"), "memory"},
    {WITH("\"memory\":\"0\""), "memory"},
    {WITH("\"memory\":15"), "memory"},
    {WITH("\"memory\":\"12Q\""), "memory"},
    {WITH("\"memory\":\"512MB\""), "memory"},
    {WITH("\"memory\":\"1.5G\""), "memory"},
    {WITH("\"memory\":\" 512\""), "memory"},
    {WITH("\"memory\":\"17T\""), "memory"},
    {WITH("\"memory\":\"99999999999999999999G\""), "memory"},
    {WITH("\"memory\":99999999999999999999"), "memory"},
    {WITH("\"memory\":-9223372036854775808"), "memory"},
    {WITH("\"memory\":1.5"), "memory"},
    {WITH("\"memory\":NaN"), "memory"},
    {WITH("\"memory\":1e400"), "memory"},
    {WITH("\"vcpus\":0"), "vcpus"},
    {WITH("\"vcpus\":-4"), "vcpus"},
    {WITH("\"vcpus\":2000"), "vcpus"},
    {WITH("\"vcpus\":9223372036854775808"), "vcpus"},
    {WITH("\"vcpus\":\"2:0\""), "vcpus"},
    {WITH("\"vcpus\":\"2:\""), "vcpus"},
    {WITH("\"vcpus\":\":2\""), "vcpus"},
    {WITH("\"vcpus\":\"2:2:2:2\""), "vcpus"},
    {WITH("\"vcpus\":\"32:32:2\""), "vcpus"},
    {WITH("\"vcpus\":\"4294967297:1\""), "vcpus"},
    {WITH("\"vcpus\":\"\""), "vcpus"},
    {WITH("\"vcpus\":{\"sockets\":0}"), "vcpus"},
    {WITH("\"vcpus\":{\"sockets\":2,\"dies\":2}"), "vcpus.dies"},
    {WITH("\"vcpus\":{\"cores\":\"2\"}"), "vcpus.cores"},
    {WITH("\"vcpus\":4,\"max-vcpus\":2"), "max-vcpus"},
    {WITH("\"max-vcpus\":1025"), "max-vcpus"},
    {WITH("\"vcpus\":\"1:2\",\"max-vcpus\":5"), "max-vcpus"},
    {WITH("\"memory\":\"2G\",\"max-memory\":\"1G\""), "max-memory"},
    {WITH("\"memory\":1024,\"max-memory\":1024"), "max-memory"},
    {WITH("\"max-memory\":\"32T\""), "max-memory"},
    {WITH("\"disks\":{}"), "disks"},
    {WITH("\"disks\":[5]"), "disks[0]"},
    {WITH("\"disks\":[{\"size\":\"20X\"}]"), "disks[0].size"},
    {WITH("\"disks\":[{\"size\":0}]"), "disks[0].size"},
    {WITH("\"disks\":[{\"size\":\"1G\",\"bus\":\"usb\"}]"), "disks[0].bus"},
    {WITH("\"disks\":[{\"size\":\"1G\",\"format\":\"vmdk\"}]"), "disks[0].format"},
    {WITH("\"disks\":[{\"size\":\"1G\",\"cache\":\"fast\"}]"), "disks[0].cache"},
    {WITH("\"disks\":[{\"size\":\"1G\",\"io\":\"aio\"}]"), "disks[0].io"},
    {WITH("\"disks\":[{\"size\":\"1G\",\"colour\":1}]"), "disks[0].colour"},
    {WITH("\"disks\":[{\"size\":\"1G\",\"readonly\":\"yes\"}]"), "disks[0].readonly"},
    {WITH("\"disks\":[{\"volume\":\"../etc/passwd\"}]"), "disks[0].volume"},
    {WITH("\"disks\":[{\"volume\":\"a/b\"}]"), "disks[0].volume"},
    {WITH("\"disks\":[{\"volume\":\"-o\"}]"), "disks[0].volume"},
    {WITH("\"disks\":[{\"pool\":\"a b\",\"size\":\"1G\"}]"), "disks[0].pool"},
    {WITH("\"disks\":[{\"path\":\"relative.qcow2\"}]"), "disks[0].path"},
    {WITH("\"disks\":[{\"path\":\"/x/../etc/shadow\"}]"), "disks[0].path"},
    {WITH("\"disks\":[{\"path\":\"/a.qcow2\",\"pool\":\"default\"}]"), "disks[0].path"},
    {WITH("\"disks\":[{\"target\":\"SDA\",\"size\":\"1G\"}]"), "disks[0].target"},
    {WITH("\"disks\":[{\"target\":\"sda,x\",\"size\":\"1G\"}]"), "disks[0].target"},
    {WITH("\"disks\":[{\"target\":\"sdb\",\"size\":\"1G\"},{\"target\":\"sdb\",\"size\":\"1G\"}]"),
     "disks[1].target"},
    {WITH("\"disks\":[{\"volume\":\"a.qcow2\"},{\"volume\":\"a.qcow2\"}]"), "disks[1].volume"},
    {WITH("\"disks\":[{\"cdrom\":true,\"bus\":\"virtio-blk\"}]"), "disks[0].bus"},
    {WITH("\"disks\":[{\"cdrom\":true,\"size\":\"1G\"}]"), "disks[0].size"},
    {WITH("\"disks\":[{\"cdrom\":true,\"format\":\"qcow2\"}]"), "disks[0].format"},
    {WITH("\"disks\":[{\"size\":\"1G\",\"io\":\"native\",\"cache\":\"writeback\"}]"), "disks[0].io"},
    {WITH("\"disks\":[{\"size\":\"1G\",\"readonly\":true,\"bus\":\"sata\"}]"), "disks[0].readonly"},
    {WITH("\"disks\":[{\"size\":\"1G\",\"boot-index\":-1}]"), "disks[0].boot-index"},
    {WITH("\"disks\":[{\"size\":\"1G\",\"boot-index\":1},{\"size\":\"1G\",\"boot-index\":1}]"),
     "disks[1].boot-index"},
    {WITH("\"disks\":[\"nfs1:1G:vmdk\"]"), "disks[0].format"},
    {WITH("\"disks\":[\"a b:1G\"]"), "disks[0].pool"},
    {WITH("\"disks\":[\"lots\"]"), "disks[0].size"},
    {WITH("\"nics\":5"), "nics"},
    {WITH("\"nics\":[{\"model\":\"virtio\"}]"), "nics[0].bridge"},
    {WITH("\"nics\":[{\"bridge\":\"a-bridge-name-too-long\"}]"), "nics[0].bridge"},
    {WITH("\"nics\":[{\"bridge\":\"br/0\"}]"), "nics[0].bridge"},
    {WITH("\"nics\":[{\"bridge\":\"br0\",\"model\":\"ne2k\"}]"), "nics[0].model"},
    {WITH("\"nics\":[{\"bridge\":\"br0\",\"mac\":\"52:54:00:zz:00:01\"}]"), "nics[0].mac"},
    {WITH("\"nics\":[{\"bridge\":\"br0\",\"mac\":\"01:00:5e:00:00:01\"}]"), "nics[0].mac"},
    {WITH("\"nics\":[{\"bridge\":\"br0\",\"vlan\":0}]"), "nics[0].vlan"},
    {WITH("\"nics\":[{\"bridge\":\"br0\",\"vlan\":4095}]"), "nics[0].vlan"},
    {WITH("\"nics\":[{\"bridge\":\"br0\",\"trunks\":[10,5000]}]"), "nics[0].trunks"},
    {WITH("\"nics\":[{\"bridge\":\"br0\",\"queues\":4,\"model\":\"e1000\"}]"), "nics[0].queues"},
    {WITH("\"nics\":[{\"bridge\":\"br0\",\"colour\":1}]"), "nics[0].colour"},
    {WITH("\"nics\":[{\"bridge\":\"br0\",\"mac\":\"52:54:00:00:00:01\"},"
          "{\"bridge\":\"br1\",\"mac\":\"52:54:00:00:00:01\"}]"), "nics[1].mac"},
    {WITH("\"disks\":[{\"size\":\"1G\",\"boot-index\":0}],\"nics\":[{\"bridge\":\"br0\",\"boot-index\":0}]"),
     "nics[0].boot-index"},
    {WITH("\"nics\":\"rhevm:eth0:maybe\""), "nics[0]"},
    {WITH("\"nics\":\"br0,b r1\""), "nics[1].bridge"},
    {WITH("\"passthrough\":7"), "passthrough"},
    {WITH("\"vnc\":\"yes\""), "vnc"},
    {WITH("\"guest-agent\":1"), "guest-agent"},
    {WITH("\"hotplug-slots\":16"), "hotplug-slots"},
    {WITH("\"disks\":[{\"size\":\"1G\",\"slot\":4}]"), "disks[0].slot"},
    {WITH("\"disks\":[{\"size\":\"1G\",\"slot\":1,\"bus\":\"sata\"}]"), "disks[0].slot"},
    {WITH("\"disks\":[{\"size\":\"1G\",\"slot\":1}],\"nics\":[{\"bridge\":\"br0\",\"slot\":1}]"), "disks[0].slot"},
    {WITH("\"disks\":[{\"size\":\"1G\",\"slot\":2,\"bus\":\"virtio-scsi\"},"
          "{\"size\":\"1G\",\"slot\":2,\"bus\":\"virtio-scsi\"}]"), "disks[1].slot"},
    {WITH("\"nics\":[{\"bridge\":\"br0\",\"slot\":0}],\"hotplug-slots\":0"), "nics[0].slot"},
    {WITH("\"cpu-shares\":0"), "cpu-shares"},
    {WITH("\"cpu-shares\":101"), "cpu-shares"},
    {WITH("\"cpu-shares\":\"half\""), "cpu-shares"},
    {WITH("\"memory-limit\":\"lots\""), "memory-limit"},
    {WITH("\"memory\":1024,\"memory-limit\":1024"), "memory-limit"},
    {WITH("\"memory\":1024,\"max-memory\":4096,\"memory-limit\":2048"), "memory-limit"},
    {WITH("\"passthrough\":\"devpassthrough:0000:01:00.8\""), "passthrough[0]"},
    {WITH("\"passthrough\":\"devpassthrough:0000:01:00.2,pci_0000_01_20_0\""), "passthrough[1]"},
    {WITH("\"passthrough\":[\"01:00\"]"), "passthrough[0]"},
    {WITH("\"passthrough\":[\"0000:01:00.2\",\"pci_0000_01_00_2\"]"), "passthrough[1]"},
    {WITH("\"passthrough\":[{\"mac\":\"52:54:00:00:00:01\"}]"), "passthrough[0].host"},
    {WITH("\"passthrough\":[{\"host\":\"0000:01:00.2\",\"vlan\":4095}]"), "passthrough[0].vlan"},
    {WITH("\"passthrough\":[{\"host\":\"0000:01:00.2\",\"mac\":\"ff:ff:ff:ff:ff:ff\"}]"),
     "passthrough[0].mac"},
    {WITH("\"passthrough\":[{\"host\":\"0000:01:00.2\",\"rom\":false}]"), "passthrough[0].rom"},
    {WITH("\"machine\":\"q35,accel=xen\""), "machine"},
    {WITH("\"machine\":\"\""), "machine"},
    {WITH("\"cpu-model\":\"host,+vmx\""), "cpu-model"},
    {WITH("\"accel\":\"xen\""), "accel"},
    {WITH("\"accel\":\"default\""), "accel"},
    {WITH("\"boot\":[\"disk\",\"hd\"]"), "boot"},
    {WITH("\"boot\":\"network,network\""), "boot"},
    {WITH("\"boot\":\"floppy\""), "boot"},
    {WITH("\"boot\":\"disk,\""), "boot"},
    {WITH("\"boot\":\",disk\""), "boot"},
    {WITH("\"boot\":[\"disk,cdrom\"]"), "boot"},
    {WITH("\"boot\":[\"disk\",\"cdrom\",\"network\",\"disk\",\"cdrom\"]"), "boot"},
    {WITH("\"kernel\":\"vmlinuz\""), "kernel"},
    {WITH("\"kernel\":\"\""), "kernel"},
    {WITH("\"kernel\":\"/boot/../etc/shadow\""), "kernel"},
    {WITH("\"kernel\":\"/boot/..\""), "kernel"},
    {WITH("\"kernel\":\"/boot/vmlinuz\\n\""), "kernel"},
    {WITH("\"initrd\":\"/boot/initrd.img\""), "initrd"},
    {WITH("\"kernel\":\"/k\",\"initrd\":\"initrd.img\""), "initrd"},
    {WITH("\"cmdline\":\"console=ttyS0\""), "cmdline"},
    {WITH("\"kernel\":\"/k\",\"cmdline\":\"a\\nb\""), "cmdline"},
    {WITH("\"labels\":{\"hostname\":5}"), "labels.hostname"},
    {WITH("\"labels\":{\"hostname\":null}"), "labels.hostname"},
    {WITH("\"labels\":{\"bad key\":\"x\"}"), "labels"},
    {WITH("\"labels\":{\"\":\"x\"}"), "labels"},
    {WITH("\"uuid\":\"not-a-uuid\""), "uuid"},
    {WITH("\"uuid\":\"0b5ec5d2-4a4c-4a6e-9d43-6a0cd3b2c1f\""), "uuid"},
    {WITH("\"uuid\":\"0b5ec5d2-4a4c-4a6e-9d43-6a0cd3b2c1fg\""), "uuid"},
    {WITH("\"uuid\":\"0b5ec5d24-a4c-4a6e-9d43-6a0cd3b2c1f0\""), "uuid"},
    {WITH("\"on-crash\":\"explode\""), "on-crash"},
    {WITH("\"serial\":1234"), "serial"},
    {WITH("\"serial\":0"), "serial"},
    {WITH("\"serial\":{\"speed\":1234}"), "serial"},
    {WITH("\"serial\":{\"baud\":9600}"), "serial.baud"},
};

static void assert_refused_naming(const char *json, const char *field)
{
    char err[VM_ERR_MAX] = "";
    vm_def d, pristine;
    size_t n = strlen(field);

    print_message("%s\n", json);
    memset(&d, 0xa5, sizeof(d));
    memset(&pristine, 0xa5, sizeof(pristine));
    assert_int_equal(parse(json, &d, err, sizeof(err)), -EINVAL);
    print_message("  -> %s\n", err);
    assert_true(strncmp(err, field, n) == 0 && err[n] == ':');
    assert_memory_equal(&d, &pristine, sizeof(d));
}

static void each_bad_value_is_refused_naming_its_field(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++)
        assert_refused_naming(bad_cases[i].json, bad_cases[i].field);
}

static const struct bad_case wrong_types[] = {
    {WITH("\"name\":5"), "name"},
    {"{\"name\":null}", "name"},
    {WITH("\"uuid\":5"), "uuid"},
    {WITH("\"vcpus\":true"), "vcpus"},
    {WITH("\"vcpus\":1.5"), "vcpus"},
    {WITH("\"vcpus\":[2,2]"), "vcpus"},
    {WITH("\"vcpus\":null"), "vcpus"},
    {WITH("\"max-vcpus\":\"8\""), "max-vcpus"},
    {WITH("\"memory\":true"), "memory"},
    {WITH("\"memory\":[512]"), "memory"},
    {WITH("\"max-memory\":{}"), "max-memory"},
    {WITH("\"machine\":35"), "machine"},
    {WITH("\"cpu-model\":[]"), "cpu-model"},
    {WITH("\"accel\":1"), "accel"},
    {WITH("\"boot\":5"), "boot"},
    {WITH("\"boot\":[1]"), "boot"},
    {WITH("\"kernel\":true"), "kernel"},
    {WITH("\"initrd\":1"), "initrd"},
    {WITH("\"cmdline\":{}"), "cmdline"},
    {WITH("\"serial\":\"9600\""), "serial"},
    {WITH("\"serial\":{\"speed\":\"9600\"}"), "serial"},
    {WITH("\"autostart\":\"yes\""), "autostart"},
    {WITH("\"autostart\":1"), "autostart"},
    {WITH("\"on-crash\":0"), "on-crash"},
    {WITH("\"labels\":\"hostname=node1\""), "labels"},
    {WITH("\"labels\":[]"), "labels"},
};

static void each_field_of_the_wrong_type_is_refused_naming_it(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(wrong_types); i++)
        assert_refused_naming(wrong_types[i].json, wrong_types[i].field);
}

static void too_many_labels_are_refused(void **state)
{
    char json[4096];
    size_t n = (size_t)snprintf(json, sizeof(json), "{\"name\":\"vm1\",\"labels\":{");

    for (int i = 0; i <= VM_LABELS_MAX; i++)
        n += (size_t)snprintf(json + n, sizeof(json) - n, "%s\"k%d\":\"v\"", i ? "," : "", i);
    snprintf(json + n, sizeof(json) - n, "}}");
    assert_refused_naming(json, "labels");
}

static void label_value_longer_than_1024_is_refused(void **state)
{
    char json[2048];
    char value[1026];
    vm_def d;

    memset(value, 'x', 1025);
    value[1025] = '\0';
    snprintf(json, sizeof(json), WITH("\"labels\":{\"description\":\"%s\"}"), value);
    assert_refused_naming(json, "labels.description");
    value[1024] = '\0';
    snprintf(json, sizeof(json), WITH("\"labels\":{\"description\":\"%s\"}"), value);
    parse_ok(json, &d);
    vmdef_free(&d);
}

static const vm_disk *disk(const vm_def *d, size_t i)
{
    assert_true(i < d->ndisks);
    return &d->disks[i];
}

/* xCAT's mkvm -s 20G, RHEV's domain:size:type, an ISO and a volume of
 * another pool, with what each leaves out filled in. */
static void disks_are_completed_as_xcat_names_them_and_round_trip(void **state)
{
    vm_def d;

    parse_ok(WITH("\"disks\":[\"20G\",{\"size\":1048576,\"format\":\"raw\",\"cache\":\"writeback\"},"
                  "{\"cdrom\":true,\"path\":\"/isos/rhel9.iso\",\"boot-index\":0},"
                  "{\"pool\":\"p2\",\"volume\":\"data.qcow2\",\"bus\":\"virtio-scsi\",\"discard\":true},"
                  "\"nfs1:5G:raw\",{\"target\":\"sda1\",\"volume\":\"x.qcow2\",\"io\":\"io_uring\"}]"),
             &d);
    assert_int_equal(d.ndisks, 6);
    assert_string_equal(disk(&d, 0)->target, "sda");
    assert_string_equal(disk(&d, 0)->pool, "default");
    assert_string_equal(disk(&d, 0)->volume, "vm1.sda.qcow2");
    assert_int_equal(disk(&d, 0)->size, UINT64_C(20) << 30);
    assert_int_equal(disk(&d, 0)->format, VM_DISK_QCOW2);
    assert_int_equal(disk(&d, 0)->bus, VM_DISK_VIRTIO_BLK);
    assert_int_equal(disk(&d, 0)->cache, VM_CACHE_NONE);
    assert_int_equal(disk(&d, 0)->boot_index, -1);
    assert_string_equal(disk(&d, 1)->volume, "vm1.sdb.raw");
    assert_int_equal(disk(&d, 1)->cache, VM_CACHE_WRITEBACK);
    assert_true(disk(&d, 2)->cdrom);
    assert_int_equal(disk(&d, 2)->format, VM_DISK_RAW);
    assert_int_equal(disk(&d, 2)->bus, VM_DISK_SATA);
    assert_string_equal(disk(&d, 2)->pool, "");
    assert_string_equal(disk(&d, 2)->path, "/isos/rhel9.iso");
    assert_int_equal(disk(&d, 2)->boot_index, 0);
    assert_string_equal(disk(&d, 3)->target, "sdd");
    assert_string_equal(disk(&d, 3)->volume, "data.qcow2");
    assert_true(disk(&d, 3)->discard);
    assert_string_equal(disk(&d, 4)->pool, "nfs1");
    assert_string_equal(disk(&d, 4)->volume, "vm1.sde.raw");
    assert_int_equal(disk(&d, 4)->size, UINT64_C(5) << 30);
    assert_string_equal(disk(&d, 5)->target, "sda1");
    assert_int_equal(disk(&d, 5)->io, VM_IO_URING);
    assert_round_trips(&d);
    vmdef_free(&d);
}

/* xCAT's vmnics, RHEV's network:ifname:installnic, and objects: MACs are
 * made once and kept through the canonical form. */
static void nics_are_read_in_every_form_and_keep_their_macs(void **state)
{
    char *text;
    vm_def d, again;

    parse_ok(WITH("\"nics\":\"br0,br1\""), &d);
    assert_int_equal(d.nnics, 2);
    assert_string_equal(d.nics[1].bridge, "br1");
    assert_int_equal(d.nics[0].model, VM_NIC_VIRTIO);
    assert_true(d.nics[0].mac[0] == 0x52 && d.nics[0].mac[1] == 0x54 && d.nics[0].mac[2] == 0x00);
    assert_memory_not_equal(d.nics[0].mac, d.nics[1].mac, 6);
    text = to_text(&d);
    parse_ok(text, &again);
    assert_memory_equal(again.nics[1].mac, d.nics[1].mac, 6);
    free(text);
    vmdef_free(&again);
    vmdef_free(&d);

    parse_ok(WITH("\"nics\":\"rhevm:eth0:yes|blue:eth1:no\""), &d);
    assert_int_equal(d.nnics, 2);
    assert_string_equal(d.nics[0].bridge, "rhevm");
    assert_string_equal(d.nics[0].guest_name, "eth0");
    assert_int_equal(d.nics[0].boot_index, 0);
    assert_int_equal(d.nics[1].boot_index, -1);
    vmdef_free(&d);

    parse_ok(WITH("\"nics\":[{\"bridge\":\"br0\",\"model\":\"e1000\",\"mac\":\"52:54:00:AA:bb:01\","
                  "\"vlan\":100,\"trunks\":[200,300]},{\"bridge\":\"br1\",\"queues\":4}]"),
             &d);
    assert_int_equal(d.nics[0].model, VM_NIC_E1000);
    assert_int_equal(d.nics[0].mac[3], 0xaa);
    assert_int_equal(d.nics[0].vlan, 100);
    assert_int_equal(d.nics[0].ntrunks, 2);
    assert_int_equal(d.nics[0].trunks[1], 300);
    assert_int_equal(d.nics[1].queues, 4);
    assert_round_trips(&d);
    vmdef_free(&d);
}

/* xCAT's othersettings devpassthrough string (with libvirt's pci_ names),
 * lists of addresses, and objects with an SR-IOV VF's MAC and VLAN. */
static void passthrough_devices_are_read_in_every_form(void **state)
{
    const char *field = NULL;
    vm_def d, e;

    parse_ok(WITHU("\"passthrough\":\"devpassthrough:0000:01:00.2,pci_0000_3B_00_1\""), &d);
    assert_int_equal(d.nhostdevs, 2);
    assert_string_equal(d.hostdevs[0].host, "0000:01:00.2");
    assert_string_equal(d.hostdevs[1].host, "0000:3b:00.1");
    assert_round_trips(&d);
    parse_ok(WITHU("\"passthrough\":[\"01:00.2\",{\"host\":\"0000:3b:00.1\"}]"), &e);
    assert_true(vmdef_equal(&d, &e));
    vmdef_free(&e);
    parse_ok(WITHU("\"passthrough\":[{\"host\":\"0000:03:10.2\",\"mac\":\"52:54:00:00:aa:01\",\"vlan\":42}]"),
             &e);
    assert_int_equal(e.hostdevs[0].vlan, 42);
    assert_int_equal(e.hostdevs[0].mac[4], 0xaa);
    assert_round_trips(&e);
    assert_true(vmdef_needs_restart(&d, &e, &field));
    assert_string_equal(field, "passthrough");
    vmdef_free(&e);
    vmdef_free(&d);
}

/* OpenNebula's CPU=0.5 is half the weight of CPU=1.0. */
static void cpu_shares_become_cgroup_weights_and_round_trip(void **state)
{
    const char *field = NULL;
    vm_def a, b;

    parse_ok(WITHU("\"cpu-shares\":0.5,\"memory-limit\":\"1G\",\"vnc\":true"), &a);
    assert_int_equal(a.cpu_weight, 50);
    assert_int_equal(a.memory_limit_mib, 1024);
    assert_true(a.vnc);
    assert_round_trips(&a);
    parse_ok(WITHU("\"cpu-shares\":1,\"memory-limit\":\"1G\",\"vnc\":true"), &b);
    assert_int_equal(b.cpu_weight, 2 * a.cpu_weight);
    assert_true(vmdef_needs_restart(&a, &b, &field));
    assert_string_equal(field, "cpu-shares");
    vmdef_free(&a);
    vmdef_free(&b);
}

static void a_change_of_disks_needs_a_restart(void **state)
{
    const char *field = NULL;
    vm_def a, b;

    parse_ok(WITHU("\"disks\":[\"20G\"]"), &a);
    parse_ok(WITHU("\"disks\":[{\"size\":\"20G\",\"cache\":\"unsafe\"}]"), &b);
    assert_true(vmdef_needs_restart(&a, &b, &field));
    assert_string_equal(field, "disks");
    assert_false(vmdef_equal(&a, &b));
    vmdef_free(&b);
    assert_int_equal(vmdef_copy(&a, &b), 0);
    assert_true(vmdef_equal(&a, &b));
    assert_ptr_not_equal(a.disks[0].volume, b.disks[0].volume);
    vmdef_free(&a);
    vmdef_free(&b);
}

static void a_missing_object_is_refused_without_crashing(void **state)
{
    char err[VM_ERR_MAX] = "";
    vm_def d;

    assert_int_equal(vmdef_from_json(NULL, &d, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "definition: must be a JSON object");
}

static void a_refusal_without_an_error_buffer_does_not_crash(void **state)
{
    struct json_object *o = json_tokener_parse(WITH("\"memory\":-1"));
    vm_def d;

    assert_int_equal(vmdef_from_json(o, &d, NULL, 0), -EINVAL);
    json_object_put(o);
}

/* ---- vmdef_parse_memory ---- */

static void memory_strings_parse_to_mib_or_are_refused(void **state)
{
    static const struct {
        const char *s;
        int r;
        uint64_t mib;
    } cases[] = {
        {"0", 0, 0},           {"512", 0, 512},      {"0512", 0, 512},
        {"512m", 0, 512},      {"2048MiB", 0, 2048}, {"2G", 0, 2048},
        {"3TiB", 0, 3145728},  {"", -EINVAL, 0},     {"M", -EINVAL, 0},
        {"-1", -EINVAL, 0},    {"+1", -EINVAL, 0},   {"512 M", -EINVAL, 0},
        {"1.5G", -EINVAL, 0},  {"12Q", -EINVAL, 0},  {"512MB", -EINVAL, 0},
        {"2Gi", -EINVAL, 0},   {"99999999999999999999", -EINVAL, 0},
        {"18014398509481984T", -EINVAL, 0},
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        uint64_t mib = 777;

        print_message("\"%s\"\n", cases[i].s);
        assert_int_equal(vmdef_parse_memory(cases[i].s, &mib), cases[i].r);
        assert_int_equal(mib, cases[i].r == 0 ? cases[i].mib : 777);
    }
}

/* ---- canonical form and uuid ---- */

static void canonical_form_makes_every_default_explicit(void **state)
{
    vm_def d;
    char *text;

    parse_ok("{\"name\":\"vm1\",\"uuid\":\"" UUID "\"}", &d);
    text = to_text(&d);
    assert_string_equal(text,
                        "{\"name\":\"vm1\",\"uuid\":\"" UUID "\",\"vcpus\":1,\"max-vcpus\":1,"
                        "\"memory\":512,\"max-memory\":0,\"machine\":\"q35\",\"cpu-model\":\"\","
                        "\"boot\":[],\"autostart\":false,\"on-crash\":\"destroy\",\"disks\":[],\"nics\":[],\"passthrough\":[],\"vnc\":false,\"guest-agent\":false,\"hotplug-slots\":4,\"labels\":{}}");
    free(text);
    vmdef_free(&d);
}

static void canonical_form_of_a_full_definition_round_trips(void **state)
{
    vm_def d;
    char *text;

    parse_ok("{\"labels\":{\"hostname\":\"node1\"},\"on-crash\":\"restart\",\"autostart\":true,"
             "\"serial\":{\"speed\":115200},\"cmdline\":\"console=ttyS0\",\"initrd\":\"/b/i\","
             "\"kernel\":\"/b/k\",\"boot\":\"hd,network\",\"accel\":\"kvm\","
             "\"cpu-model\":\"Skylake-Server\",\"machine\":\"pc-q35-7.2\",\"max-memory\":\"8G\","
             "\"memory\":\"2G\",\"max-vcpus\":8,\"vcpus\":\"2:2\",\"uuid\":\"" UUID "\","
             "\"name\":\"vm1\"}",
             &d);
    text = to_text(&d);
    assert_string_equal(text,
                        "{\"name\":\"vm1\",\"uuid\":\"" UUID "\","
                        "\"vcpus\":{\"sockets\":2,\"cores\":2,\"threads\":1},\"max-vcpus\":8,"
                        "\"memory\":2048,\"max-memory\":8192,\"machine\":\"pc-q35-7.2\","
                        "\"cpu-model\":\"Skylake-Server\",\"accel\":\"kvm\","
                        "\"boot\":[\"disk\",\"network\"],\"kernel\":\"/b/k\",\"initrd\":\"/b/i\","
                        "\"cmdline\":\"console=ttyS0\",\"serial\":{\"speed\":115200},"
                        "\"autostart\":true,\"on-crash\":\"restart\",\"disks\":[],\"nics\":[],\"passthrough\":[],\"vnc\":false,\"guest-agent\":false,\"hotplug-slots\":4,"
                        "\"labels\":{\"hostname\":\"node1\"}}");
    assert_round_trips(&d);
    free(text);
    vmdef_free(&d);
}

static bool is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static void uuid_is_generated_as_random_v4_when_absent(void **state)
{
    vm_def d;

    parse_ok("{\"name\":\"vm1\"}", &d);
    assert_int_equal(strlen(d.uuid), VM_UUID_LEN);
    for (size_t i = 0; i < VM_UUID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(d.uuid[i], '-');
        else
            assert_true(is_lower_hex(d.uuid[i]));
    }
    assert_int_equal(d.uuid[14], '4');
    assert_non_null(strchr("89ab", d.uuid[19]));
    vmdef_free(&d);
}

static void two_definitions_without_uuid_get_different_ones(void **state)
{
    vm_def a, b;

    parse_ok("{\"name\":\"vm1\"}", &a);
    parse_ok("{\"name\":\"vm1\"}", &b);
    assert_string_not_equal(a.uuid, b.uuid);
    vmdef_free(&a);
    vmdef_free(&b);
}

static void generated_uuid_survives_a_round_trip(void **state)
{
    vm_def d, again;
    char *text;

    parse_ok("{\"name\":\"vm1\"}", &d);
    text = to_text(&d);
    parse_ok(text, &again);
    assert_string_equal(again.uuid, d.uuid);
    free(text);
    vmdef_free(&d);
    vmdef_free(&again);
}

static void upper_case_uuid_is_stored_in_lower_case(void **state)
{
    vm_def d;

    parse_ok("{\"name\":\"vm1\",\"uuid\":\"0B5EC5D2-4A4C-4A6E-9D43-6A0CD3B2C1F0\"}", &d);
    assert_string_equal(d.uuid, UUID);
    vmdef_free(&d);
}

/* ---- copy, validate ---- */

static void copy_is_equal_and_outlives_the_original(void **state)
{
    vm_def *d = malloc(sizeof(*d));
    vm_def copy;

    assert_non_null(d);
    parse_ok(WITH("\"kernel\":\"/b/k\",\"cmdline\":\"quiet\","
                  "\"labels\":{\"a\":\"1\",\"b\":\"2\"}"),
             d);
    assert_int_equal(vmdef_copy(d, &copy), 0);
    assert_true(vmdef_equal(d, &copy));
    assert_ptr_not_equal(copy.kernel, d->kernel);
    vmdef_free(d);
    free(d);
    assert_string_equal(copy.kernel, "/b/k");
    assert_string_equal(copy.labels[1].value, "2");
    vmdef_free(&copy);
}

static void validate_refuses_a_definition_built_in_code_with_a_bad_name(void **state)
{
    vm_def d;
    char err[VM_ERR_MAX] = "";

    parse_ok(WITH("\"vcpus\":2"), &d);
    assert_int_equal(vmdef_validate(&d, err, sizeof(err)), 0);
    memcpy(d.name, "a,b", 4);
    assert_int_equal(vmdef_validate(&d, err, sizeof(err)), -EINVAL);
    assert_true(strncmp(err, "name:", 5) == 0);
    vmdef_free(&d);
}

static void validate_takes_max_vcpus_zero_as_vcpus(void **state)
{
    vm_def d;

    parse_ok(WITH("\"vcpus\":2"), &d);
    d.max_vcpus = 0;
    assert_int_equal(vmdef_validate(&d, NULL, 0), 0);
    vmdef_free(&d);
}

static void out_of_range_enumerations_have_a_printable_name(void **state)
{
    assert_string_equal(vm_accel_name(VM_ACCEL_TCG), "tcg");
    assert_string_equal(vm_accel_name((vm_accel)99), "unknown");
    assert_string_equal(vm_on_crash_name(VM_ON_CRASH_PRESERVE), "preserve");
    assert_string_equal(vm_on_crash_name((vm_on_crash)-1), "unknown");
}

/* ---- needs_restart ---- */

static bool needs_restart(const char *a_json, const char *b_json, const char **field)
{
    vm_def a, b;
    bool r;

    parse_ok(a_json, &a);
    parse_ok(b_json, &b);
    r = vmdef_needs_restart(&a, &b, field);
    vmdef_free(&a);
    vmdef_free(&b);
    return r;
}

static void labels_autostart_and_on_crash_change_without_restart(void **state)
{
    const char *field = "untouched";

    assert_false(needs_restart(WITHU("\"labels\":{\"hostname\":\"a\"}"),
                               WITHU("\"labels\":{\"hostname\":\"b\",\"rack\":\"4\"},"
                                     "\"autostart\":true,\"on-crash\":\"restart\""),
                               &field));
    assert_string_equal(field, "untouched");
}

static void vcpus_written_as_a_topology_is_no_reason_to_restart(void **state)
{
    const char *field = "untouched";

    assert_false(needs_restart(WITHU("\"vcpus\":4"), WITHU("\"vcpus\":{\"sockets\":4}"), &field));
    assert_string_equal(field, "untouched");
}

static void each_hardware_change_needs_restart_and_names_its_field(void **state)
{
    static const struct {
        const char *a, *b, *field;
    } cases[] = {
        {WITHU("\"vcpus\":4"), WITHU("\"vcpus\":\"2:2\""), "vcpus"},
        {WITHU("\"vcpus\":2"), WITHU("\"vcpus\":2,\"max-vcpus\":4"), "max-vcpus"},
        {WITHU("\"memory\":512"), WITHU("\"memory\":\"1G\""), "memory"},
        {WITHU("\"memory\":512"), WITHU("\"max-memory\":\"1G\""), "max-memory"},
        {WITHU("\"machine\":\"q35\""), WITHU("\"machine\":\"pc\""), "machine"},
        {WITHU("\"autostart\":true"), WITHU("\"cpu-model\":\"qemu64\""), "cpu-model"},
        {WITHU("\"accel\":\"kvm\""), WITHU("\"accel\":\"tcg\""), "accel"},
        {WITHU("\"boot\":\"disk,network\""), WITHU("\"boot\":\"network,disk\""), "boot"},
        {WITHU("\"kernel\":\"/a\""), WITHU("\"kernel\":\"/b\""), "kernel"},
        {WITHU("\"kernel\":\"/a\""), WITHU("\"kernel\":\"/a\",\"initrd\":\"/i\""), "initrd"},
        {WITHU("\"kernel\":\"/a\",\"cmdline\":\"x\""), WITHU("\"kernel\":\"/a\""), "cmdline"},
        {WITHU("\"serial\":9600"), WITHU("\"serial\":115200"), "serial"},
        {"{\"name\":\"vm1\",\"uuid\":\"" UUID "\"}", "{\"name\":\"vm2\",\"uuid\":\"" UUID "\"}",
         "name"},
        {"{\"name\":\"vm1\"}", "{\"name\":\"vm1\"}", "uuid"},
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        const char *field = NULL;

        print_message("%s -> %s\n", cases[i].a, cases[i].b);
        assert_true(needs_restart(cases[i].a, cases[i].b, &field));
        assert_string_equal(field, cases[i].field);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_form_of_vcpus_gives_its_topology),
        cmocka_unit_test(each_form_of_memory_gives_its_size_in_mib),
        cmocka_unit_test(each_form_of_boot_gives_its_device_order),
        cmocka_unit_test(serial_speed_is_accepted_as_a_number_or_an_object),
        cmocka_unit_test(direct_kernel_boot_keeps_paths_and_command_line),
        cmocka_unit_test(labels_are_kept_sorted_by_key),
        cmocka_unit_test(names_of_up_to_64_letters_digits_dots_and_dashes_are_accepted),
        cmocka_unit_test(each_bad_value_is_refused_naming_its_field),
        cmocka_unit_test(disks_are_completed_as_xcat_names_them_and_round_trip),
        cmocka_unit_test(a_change_of_disks_needs_a_restart),
        cmocka_unit_test(nics_are_read_in_every_form_and_keep_their_macs),
        cmocka_unit_test(passthrough_devices_are_read_in_every_form),
        cmocka_unit_test(cpu_shares_become_cgroup_weights_and_round_trip),
        cmocka_unit_test(each_field_of_the_wrong_type_is_refused_naming_it),
        cmocka_unit_test(too_many_labels_are_refused),
        cmocka_unit_test(label_value_longer_than_1024_is_refused),
        cmocka_unit_test(a_missing_object_is_refused_without_crashing),
        cmocka_unit_test(a_refusal_without_an_error_buffer_does_not_crash),
        cmocka_unit_test(memory_strings_parse_to_mib_or_are_refused),
        cmocka_unit_test(canonical_form_makes_every_default_explicit),
        cmocka_unit_test(canonical_form_of_a_full_definition_round_trips),
        cmocka_unit_test(uuid_is_generated_as_random_v4_when_absent),
        cmocka_unit_test(two_definitions_without_uuid_get_different_ones),
        cmocka_unit_test(generated_uuid_survives_a_round_trip),
        cmocka_unit_test(upper_case_uuid_is_stored_in_lower_case),
        cmocka_unit_test(copy_is_equal_and_outlives_the_original),
        cmocka_unit_test(validate_refuses_a_definition_built_in_code_with_a_bad_name),
        cmocka_unit_test(validate_takes_max_vcpus_zero_as_vcpus),
        cmocka_unit_test(out_of_range_enumerations_have_a_printable_name),
        cmocka_unit_test(labels_autostart_and_on_crash_change_without_restart),
        cmocka_unit_test(vcpus_written_as_a_topology_is_no_reason_to_restart),
        cmocka_unit_test(each_hardware_change_needs_restart_and_names_its_field),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
