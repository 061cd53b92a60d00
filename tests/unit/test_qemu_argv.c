/* test_qemu_argv.c: the QEMU command line, as golden argv arrays, and the
 * values it refuses to put on one. */
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

#include "agent/qemu_argv.h"
#include "agent/vmdef.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define UUID "0b5ec5d2-4a4c-4a6e-9d43-6a0cd3b2c1f0"
#define DEF(members) "{\"name\":\"vm1\",\"uuid\":\"" UUID "\"" members "}"

static const qemu_host tcg_72 = {"qemu-system-x86_64", VM_ACCEL_TCG, NULL, 70200};
static const qemu_host kvm_72 = {"qemu-system-x86_64", VM_ACCEL_KVM, NULL, 70200};
static const qemu_host kvm_72_as_qemu = {"qemu-system-x86_64", VM_ACCEL_KVM, "qemu", 70200};
static const qemu_host kvm_91_as_qemu = {"/usr/bin/qemu-system-x86_64", VM_ACCEL_KVM, "qemu",
                                         90100};

static const qemu_paths default_paths = {
    .qmp_socket = "/run/agentd/vm1/qmp.sock",
    .serial_socket = "/run/agentd/vm1/serial.sock",
    .console_log = "/var/lib/agentd/logs/vm1.log",
    .pidfile = "/run/agentd/vm1/qemu.pid",
};

static const qemu_paths comma_paths = {
    .qmp_socket = "/run/a,b/qmp.sock",
    .serial_socket = "/run/a,b/serial.sock",
    .console_log = "/var/log/x,,y.log",
    .pidfile = "/run/a,b/qemu.pid",
};

/* The parts every command line shares, for the rows after the first. */
#define HEAD(binary)                                                                             \
    binary "\n-name\nguest=vm1,debug-threads=on\n-uuid\n" UUID                                    \
           "\n-S\n-nodefaults\n-no-user-config\n"
#define MONITOR                                                                                  \
    "-chardev\nsocket,id=qmp,path=/run/agentd/vm1/qmp.sock,server=on,wait=off\n"                 \
    "-mon\nchardev=qmp,mode=control\n"                                                           \
    "-pidfile\n/run/agentd/vm1/qemu.pid\n"                                                       \
    "-chardev\nsocket,id=serial0,path=/run/agentd/vm1/serial.sock,server=on,wait=off,"           \
    "logfile=/var/lib/agentd/logs/vm1.log,logappend=on\n"                                        \
    "-serial\nchardev:serial0\n"
#define SANDBOX(elevate)                                                                         \
    "-display\nnone\n-sandbox\non,obsolete=deny,elevateprivileges=" elevate                      \
    ",spawn=deny,resourcecontrol=deny\n"
/* The q35 hotplug ports of a definition's default hotplug-slots (4). */
#define BALLOON "-device\nvirtio-balloon-pci,id=balloon0\n"
#define PORTS                                                                                    \
    "-device\npcie-root-port,id=hp0,bus=pcie.0,addr=0x10,chassis=1\n"                            \
    "-device\npcie-root-port,id=hp1,bus=pcie.0,addr=0x11,chassis=2\n"                            \
    "-device\npcie-root-port,id=hp2,bus=pcie.0,addr=0x12,chassis=3\n"                            \
    "-device\npcie-root-port,id=hp3,bus=pcie.0,addr=0x13,chassis=4\n"                            \
    BALLOON
#define TAIL "-msg\ntimestamp=on"

static const struct golden {
    const char *what;
    const char *def;
    const qemu_host *host;
    const qemu_paths *paths;
    const char *argv; /* elements joined by '\n' */
} golden[] = {
    {
        "minimal definition on a tcg host",
        DEF(""),
        &tcg_72,
        &default_paths,
        "qemu-system-x86_64\n"
        "-name\nguest=vm1,debug-threads=on\n"
        "-uuid\n" UUID "\n"
        "-S\n-nodefaults\n-no-user-config\n"
        "-machine\nq35\n"
        "-accel\ntcg\n"
        "-m\n512M\n"
        "-smp\n1,sockets=1,cores=1,threads=1,maxcpus=1\n"
        "-chardev\nsocket,id=qmp,path=/run/agentd/vm1/qmp.sock,server=on,wait=off\n"
        "-mon\nchardev=qmp,mode=control\n"
        "-pidfile\n/run/agentd/vm1/qemu.pid\n"
        "-chardev\nsocket,id=serial0,path=/run/agentd/vm1/serial.sock,server=on,wait=off,"
        "logfile=/var/lib/agentd/logs/vm1.log,logappend=on\n"
        "-serial\nchardev:serial0\n"
        "-display\nnone\n"
        "-sandbox\non,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny\n"
        PORTS "-msg\ntimestamp=on",
    },
    {
        "kvm host passes the host cpu through",
        DEF(",\"vcpus\":2,\"memory\":\"1G\""),
        &kvm_72,
        &default_paths,
        HEAD("qemu-system-x86_64") "-machine\nq35\n-accel\nkvm\n-cpu\nhost\n-m\n1024M\n"
        "-smp\n2,sockets=2,cores=1,threads=1,maxcpus=2\n" MONITOR SANDBOX("deny") PORTS TAIL,
    },
    {
        "tcg chosen by the definition on a kvm host has no -cpu",
        DEF(",\"accel\":\"tcg\""),
        &kvm_72,
        &default_paths,
        HEAD("qemu-system-x86_64") "-machine\nq35\n-accel\ntcg\n-m\n512M\n"
        "-smp\n1,sockets=1,cores=1,threads=1,maxcpus=1\n" MONITOR SANDBOX("deny") PORTS TAIL,
    },
    {
        "cpu model and machine from the definition",
        DEF(",\"machine\":\"pc-q35-7.2\",\"cpu-model\":\"Skylake-Server\""),
        &kvm_72,
        &default_paths,
        HEAD("qemu-system-x86_64") "-machine\npc-q35-7.2\n-accel\nkvm\n-cpu\nSkylake-Server\n"
        "-m\n512M\n-smp\n1,sockets=1,cores=1,threads=1,maxcpus=1\n" MONITOR SANDBOX("deny") PORTS TAIL,
    },
    {
        "topology with max-vcpus and max-memory scales the sockets",
        DEF(",\"vcpus\":{\"sockets\":1,\"cores\":2,\"threads\":2},\"max-vcpus\":8,"
            "\"memory\":\"2G\",\"max-memory\":\"8G\""),
        &kvm_72,
        &default_paths,
        HEAD("qemu-system-x86_64") "-machine\nq35\n-accel\nkvm\n-cpu\nhost\n"
        "-m\nsize=2048M,slots=8,maxmem=8192M\n"
        "-smp\n4,sockets=2,cores=2,threads=2,maxcpus=8\n" MONITOR SANDBOX("deny") PORTS TAIL,
    },
    {
        "direct kernel boot keeps the command line whole",
        DEF(",\"kernel\":\"/var/lib/agentd/boot/vmlinuz\","
            "\"initrd\":\"/var/lib/agentd/boot/initrd.img\","
            "\"cmdline\":\"console=ttyS0 root=/dev/vda1 "
            "ip=10.0.0.2::10.0.0.1:255.255.255.0,eth0\""),
        &tcg_72,
        &default_paths,
        HEAD("qemu-system-x86_64") "-machine\nq35\n-accel\ntcg\n-m\n512M\n"
        "-smp\n1,sockets=1,cores=1,threads=1,maxcpus=1\n" MONITOR SANDBOX("deny")
        "-kernel\n/var/lib/agentd/boot/vmlinuz\n"
        "-initrd\n/var/lib/agentd/boot/initrd.img\n"
        "-append\nconsole=ttyS0 root=/dev/vda1 ip=10.0.0.2::10.0.0.1:255.255.255.0,eth0\n" PORTS TAIL,
    },
    {
        "boot order with the network first",
        DEF(",\"boot\":\"network,disk,cdrom\""),
        &tcg_72,
        &default_paths,
        HEAD("qemu-system-x86_64") "-machine\nq35\n-accel\ntcg\n-m\n512M\n"
        "-smp\n1,sockets=1,cores=1,threads=1,maxcpus=1\n" MONITOR SANDBOX("deny")
        "-boot\norder=ncd\n" PORTS TAIL,
    },
    {
        "run-as user on qemu 7.2 uses -runas",
        DEF(""),
        &kvm_72_as_qemu,
        &default_paths,
        HEAD("qemu-system-x86_64") "-machine\nq35\n-accel\nkvm\n-cpu\nhost\n-m\n512M\n"
        "-smp\n1,sockets=1,cores=1,threads=1,maxcpus=1\n" MONITOR SANDBOX("allow")
        PORTS "-runas\nqemu\n" TAIL,
    },
    {
        "run-as user on qemu 9.1 uses -run-with",
        DEF(""),
        &kvm_91_as_qemu,
        &default_paths,
        HEAD("/usr/bin/qemu-system-x86_64") "-machine\nq35\n-accel\nkvm\n-cpu\nhost\n-m\n512M\n"
        "-smp\n1,sockets=1,cores=1,threads=1,maxcpus=1\n" MONITOR SANDBOX("allow")
        PORTS "-run-with\nuser=qemu\n" TAIL,
    },
    {
        "commas in paths inside option strings are doubled",
        DEF(""),
        &tcg_72,
        &comma_paths,
        HEAD("qemu-system-x86_64") "-machine\nq35\n-accel\ntcg\n-m\n512M\n"
        "-smp\n1,sockets=1,cores=1,threads=1,maxcpus=1\n"
        "-chardev\nsocket,id=qmp,path=/run/a,,b/qmp.sock,server=on,wait=off\n"
        "-mon\nchardev=qmp,mode=control\n"
        "-pidfile\n/run/a,b/qemu.pid\n"
        "-chardev\nsocket,id=serial0,path=/run/a,,b/serial.sock,server=on,wait=off,"
        "logfile=/var/log/x,,,,y.log,logappend=on\n"
        "-serial\nchardev:serial0\n" SANDBOX("deny") PORTS TAIL,
    },
};

static void parse_def(const char *text, vm_def *ret)
{
    struct json_object *o = json_tokener_parse(text);
    char err[VM_ERR_MAX] = "";
    int r;

    assert_non_null(o);
    r = vmdef_from_json(o, ret, err, sizeof(err));
    json_object_put(o);
    if (r != 0)
        print_message("refused %s: %s\n", text, err);
    assert_int_equal(r, 0);
}

static char *join(char **argv)
{
    size_t len = 1;
    char *s;

    for (char **p = argv; *p; p++)
        len += strlen(*p) + 1;
    s = calloc(1, len);
    assert_non_null(s);
    for (char **p = argv; *p; p++) {
        if (p != argv)
            strcat(s, "\n");
        strcat(s, *p);
    }
    return s;
}

static void each_definition_gives_its_golden_command_line(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(golden); i++) {
        const struct golden *g = &golden[i];
        char err[VM_ERR_MAX] = "";
        char **argv = NULL;
        char *joined;
        vm_def d;

        print_message("%s\n", g->what);
        parse_def(g->def, &d);
        assert_int_equal(qemu_argv_build(&d, g->host, g->paths, &argv, err, sizeof(err)), 0);
        joined = join(argv);
        assert_string_equal(joined, g->argv);
        free(joined);
        qemu_argv_free(argv);
        vmdef_free(&d);
    }
}

static void definition_built_in_code_with_max_vcpus_zero_uses_vcpus(void **state)
{
    char **argv = NULL;
    vm_def d;
    size_t i;

    parse_def(DEF(",\"vcpus\":\"2:2\""), &d);
    d.max_vcpus = 0;
    assert_int_equal(qemu_argv_build(&d, &tcg_72, &default_paths, &argv, NULL, 0), 0);
    for (i = 0; argv[i] && strcmp(argv[i], "-smp") != 0; i++)
        ;
    assert_non_null(argv[i]);
    assert_string_equal(argv[i + 1], "4,sockets=2,cores=2,threads=1,maxcpus=4");
    qemu_argv_free(argv);
    vmdef_free(&d);
}

/* The arguments from the first "-blockdev" or "-device" on, joined. */
static char *disk_part(char **argv)
{
    for (char **p = argv; *p; p++)
        if (!strcmp(*p, "-blockdev") || (!strcmp(*p, "-device") && strncmp(p[1], "virtio-balloon", 14)))
            return join(p);
    return strdup("");
}

/* A qcow2 overlay on a qcow2 master on a raw base, a raw block device, an
 * empty cdrom and a SCSI disk that discards. */
static void disks_get_a_blockdev_per_chain_node_and_a_device_each(void **state)
{
    static const qemu_disk_chain chains[] = {
        { 3, { { "/p/vm1.sda.qcow2", "qcow2", false }, { "/p/m,1.qcow2", "qcow2", false },
               { "/p/base.raw", "raw", false } } },
        { 1, { { "/dev/sdb1", "raw", true } } },
        { 0, { { NULL, NULL, false } } },
        { 1, { { "/p/vm1.sdd.qcow2", "qcow2", false } } },
    };
    qemu_paths paths = default_paths;
    char **argv = NULL, *got;
    vm_def d;

    parse_def(DEF(",\"hotplug-slots\":0,\"disks\":[{\"volume\":\"vm1.sda.qcow2\",\"boot-index\":1},"
                  "{\"path\":\"/dev/sdb1\",\"format\":\"raw\",\"io\":\"native\","
                  "\"cache\":\"directsync\"},{\"cdrom\":true},"
                  "{\"volume\":\"vm1.sdd.qcow2\",\"bus\":\"virtio-scsi\",\"discard\":true,\"cache\":\"unsafe\"}]"),
              &d);
    paths.disks = chains;
    paths.ndisks = 4;
    assert_int_equal(qemu_argv_build(&d, &tcg_72, &paths, &argv, NULL, 0), 0);
    got = disk_part(argv);
    assert_string_equal(got,
        "-blockdev\n{\"driver\":\"file\",\"filename\":\"\\/p\\/base.raw\",\"node-name\":\"file-sda-2\","
        "\"aio\":\"threads\",\"read-only\":true,\"cache\":{\"direct\":true,\"no-flush\":false}}\n"
        "-blockdev\n{\"driver\":\"raw\",\"node-name\":\"drive-sda-2\",\"file\":\"file-sda-2\",\"read-only\":true,"
        "\"cache\":{\"direct\":true,\"no-flush\":false}}\n"
        "-blockdev\n{\"driver\":\"file\",\"filename\":\"\\/p\\/m,1.qcow2\",\"node-name\":\"file-sda-1\","
        "\"aio\":\"threads\",\"read-only\":true,\"cache\":{\"direct\":true,\"no-flush\":false}}\n"
        "-blockdev\n{\"driver\":\"qcow2\",\"node-name\":\"drive-sda-1\",\"file\":\"file-sda-1\",\"read-only\":true,"
        "\"cache\":{\"direct\":true,\"no-flush\":false},\"backing\":\"drive-sda-2\"}\n"
        "-blockdev\n{\"driver\":\"file\",\"filename\":\"\\/p\\/vm1.sda.qcow2\",\"node-name\":\"file-sda\","
        "\"aio\":\"threads\",\"read-only\":false,\"cache\":{\"direct\":true,\"no-flush\":false}}\n"
        "-blockdev\n{\"driver\":\"qcow2\",\"node-name\":\"drive-sda\",\"file\":\"file-sda\",\"read-only\":false,"
        "\"cache\":{\"direct\":true,\"no-flush\":false},\"backing\":\"drive-sda-1\"}\n"
        "-blockdev\n{\"driver\":\"host_device\",\"filename\":\"\\/dev\\/sdb1\",\"node-name\":\"file-sdb\","
        "\"aio\":\"native\",\"read-only\":false,\"cache\":{\"direct\":true,\"no-flush\":false}}\n"
        "-blockdev\n{\"driver\":\"raw\",\"node-name\":\"drive-sdb\",\"file\":\"file-sdb\",\"read-only\":false,"
        "\"cache\":{\"direct\":true,\"no-flush\":false}}\n"
        "-blockdev\n{\"driver\":\"file\",\"filename\":\"\\/p\\/vm1.sdd.qcow2\",\"node-name\":\"file-sdd\","
        "\"aio\":\"threads\",\"read-only\":false,\"cache\":{\"direct\":false,\"no-flush\":true},\"discard\":\"unmap\"}\n"
        "-blockdev\n{\"driver\":\"qcow2\",\"node-name\":\"drive-sdd\",\"file\":\"file-sdd\",\"read-only\":false,"
        "\"cache\":{\"direct\":false,\"no-flush\":true},\"discard\":\"unmap\",\"backing\":null}\n"
        "-device\nvirtio-blk-pci,drive=drive-sda,id=disk-sda,bootindex=1\n"
        "-device\nvirtio-blk-pci,drive=drive-sdb,id=disk-sdb,write-cache=off\n"
        "-device\nide-cd,bus=ide.0,id=disk-sdc\n"
        "-device\nvirtio-scsi-pci,id=scsi0\n"
        "-device\nscsi-hd,bus=scsi0.0,channel=0,scsi-id=0,lun=0,drive=drive-sdd,id=disk-sdd\n"
        TAIL);
    free(got);
    qemu_argv_free(argv);
    vmdef_free(&d);
}

/* A hotplugged disk or NIC keeps its port (or scsi-id) at the next start,
 * and a disk placed at start never takes it. */
static void slotted_devices_keep_their_port_and_scsi_id(void **state)
{
    static const qemu_disk_chain chains[] = {
        { 1, { { "/p/a.qcow2", "qcow2", false } } },
        { 1, { { "/p/b.qcow2", "qcow2", false } } },
        { 1, { { "/p/c.qcow2", "qcow2", false } } },
    };
    static const qemu_nic_fds fds[] = { { .tap = { 4 }, .ntap = 1 } };
    qemu_paths paths = default_paths;
    char **argv = NULL, err[VM_ERR_MAX] = "", *got;
    vm_def d;

    parse_def(DEF(",\"hotplug-slots\":2,\"disks\":[{\"volume\":\"a.qcow2\",\"slot\":1},"
                  "{\"volume\":\"b.qcow2\",\"bus\":\"virtio-scsi\"},"
                  "{\"volume\":\"c.qcow2\",\"bus\":\"virtio-scsi\",\"slot\":0}],"
                  "\"nics\":[{\"bridge\":\"br0\",\"mac\":\"52:54:00:00:00:01\",\"slot\":0}]"),
              &d);
    paths.disks = chains;
    paths.ndisks = 3;
    paths.nics = fds;
    paths.nnics = 1;
    assert_int_equal(qemu_argv_build(&d, &tcg_72, &paths, &argv, err, sizeof(err)), 0);
    got = join(argv);
    assert_non_null(strstr(got, "-device\npcie-root-port,id=hp1,bus=pcie.0,addr=0x11,chassis=2\n" BALLOON "-blockdev"));
    assert_null(strstr(got, "id=hp2"));
    assert_non_null(strstr(got, "-device\nvirtio-blk-pci,id=disk-sda,drive=drive-sda,bus=hp1,addr=0x0\n"));
    assert_non_null(strstr(got, "scsi-hd,bus=scsi0.0,channel=0,scsi-id=1,lun=0,drive=drive-sdb,id=disk-sdb\n"));
    assert_non_null(strstr(got, "-device\nscsi-hd,id=disk-sdc,drive=drive-sdc,bus=scsi0.0,channel=0,scsi-id=0,lun=0\n"));
    assert_non_null(strstr(got, "id=nic-525400000001,bus=hp0,addr=0x0\n"));
    free(got);
    qemu_argv_free(argv);
    vmdef_free(&d);
}

/* Taps come as fds the agent made: one per queue, vhost for each when
 * there is; e1000 and rtl8139 take the same netdev. */
static void nics_get_a_tap_netdev_over_passed_fds_and_a_device_with_their_mac(void **state)
{
    static const qemu_nic_fds fds[] = {
        { .tap = { 4 }, .ntap = 1, .vhost = { 5 }, .nvhost = 1 },
        { .tap = { 6, 7 }, .ntap = 2 },
        { .tap = { 8 }, .ntap = 1 },
    };
    qemu_paths paths = default_paths;
    char **argv = NULL, err[VM_ERR_MAX] = "", *got;
    vm_def d;

    parse_def(DEF(",\"nics\":[{\"bridge\":\"br0\",\"mac\":\"52:54:00:00:00:01\",\"boot-index\":0},"
                  "{\"bridge\":\"br1\",\"mac\":\"52:54:00:00:00:02\",\"queues\":2},"
                  "{\"bridge\":\"br0\",\"mac\":\"52:54:00:00:00:03\",\"model\":\"e1000\"}]"),
              &d);
    assert_int_equal(qemu_argv_build(&d, &tcg_72, &paths, &argv, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "paths.nics"));
    paths.nics = fds;
    paths.nnics = 3;
    assert_int_equal(qemu_argv_build(&d, &tcg_72, &paths, &argv, err, sizeof(err)), 0);
    got = join(argv);
    assert_non_null(strstr(got,
        "-netdev\ntap,id=net-525400000001,fd=4,vhost=on,vhostfd=5\n"
        "-device\nvirtio-net-pci,netdev=net-525400000001,mac=52:54:00:00:00:01,id=nic-525400000001,bootindex=0\n"
        "-netdev\ntap,id=net-525400000002,fds=6:7\n"
        "-device\nvirtio-net-pci,netdev=net-525400000002,mac=52:54:00:00:00:02,id=nic-525400000002,mq=on,"
        "vectors=6\n"
        "-netdev\ntap,id=net-525400000003,fd=8\n"
        "-device\ne1000,netdev=net-525400000003,mac=52:54:00:00:00:03,id=nic-525400000003\n"));
    assert_null(strstr(got, "/dev/net/tun"));
    free(got);
    qemu_argv_free(argv);
    vmdef_free(&d);
}

static void passed_through_devices_get_a_vfio_device_each(void **state)
{
    qemu_paths paths = default_paths;
    char **argv = NULL, err[VM_ERR_MAX] = "", *got;
    vm_def d;

    parse_def(DEF(",\"passthrough\":\"devpassthrough:0000:01:00.2,pci_0000_3b_00_1\""), &d);
    assert_int_equal(qemu_argv_build(&d, &tcg_72, &paths, &argv, err, sizeof(err)), 0);
    got = join(argv);
    assert_non_null(strstr(got, "-device\nvfio-pci,host=0000:01:00.2,id=hostdev0\n"
                                "-device\nvfio-pci,host=0000:3b:00.1,id=hostdev1\n"));
    free(got);
    qemu_argv_free(argv);
    vmdef_free(&d);
}

static void a_vnc_display_is_password_protected_on_the_hosts_address(void **state)
{
    qemu_paths paths = default_paths;
    char **argv = NULL, err[VM_ERR_MAX] = "", *got;
    vm_def d;

    parse_def(DEF(",\"vnc\":true"), &d);
    assert_int_equal(qemu_argv_build(&d, &tcg_72, &paths, &argv, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "paths.vnc"));
    paths.vnc_listen = "10.0.0.5";
    paths.vnc_port = 5907;
    assert_int_equal(qemu_argv_build(&d, &tcg_72, &paths, &argv, err, sizeof(err)), 0);
    got = join(argv);
    assert_non_null(strstr(got, "-vnc\n10.0.0.5:7,password=on\n"));
    assert_null(strstr(got, "password=s"));
    free(got);
    qemu_argv_free(argv);
    paths.vnc_listen = "fd00::5";
    assert_int_equal(qemu_argv_build(&d, &tcg_72, &paths, &argv, err, sizeof(err)), 0);
    got = join(argv);
    assert_non_null(strstr(got, "-vnc\n[fd00::5]:7,password=on\n"));
    free(got);
    qemu_argv_free(argv);
    vmdef_free(&d);
}

/* The channel qemu-ga looks for, on a controller at a fixed slot; nothing
 * of it without guest-agent, so turning it on moves no other device. */
static void a_guest_agent_gets_its_named_channel_at_a_fixed_slot(void **state)
{
    qemu_paths paths = default_paths;
    char **argv = NULL, err[VM_ERR_MAX] = "", *got;
    vm_def d;

    parse_def(DEF(""), &d);
    assert_int_equal(qemu_argv_build(&d, &tcg_72, &paths, &argv, err, sizeof(err)), 0);
    got = join(argv);
    assert_null(strstr(got, "virtio-serial"));
    free(got);
    qemu_argv_free(argv);
    vmdef_free(&d);

    parse_def(DEF(",\"guest-agent\":true"), &d);
    assert_int_equal(qemu_argv_build(&d, &tcg_72, &paths, &argv, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "paths.qga_socket"));
    paths.qga_socket = "/run/agentd/vms/x,y/qga.sock";
    assert_int_equal(qemu_argv_build(&d, &tcg_72, &paths, &argv, err, sizeof(err)), 0);
    got = join(argv);
    assert_non_null(strstr(got, "-chardev\nsocket,id=qga0,path=/run/agentd/vms/x,,y/qga.sock,server=on,wait=off\n"));
    assert_non_null(strstr(got, "-device\nvirtio-serial-pci,id=vserial0,bus=pcie.0,addr=0xf\n"));
    assert_non_null(strstr(got, "-device\nvirtserialport,bus=vserial0.0,chardev=qga0,name=org.qemu.guest_agent.0\n"));
    free(got);
    qemu_argv_free(argv);
    vmdef_free(&d);
}

static void disks_without_chains_or_ports_are_refused(void **state)
{
    static const qemu_disk_chain unopened[] = { { 0, { { NULL, NULL, false } } } };
    static const qemu_disk_chain one[] = { { 1, { { "/p/a.qcow2", "qcow2", false } } } };
    qemu_paths paths = default_paths;
    char err[VM_ERR_MAX] = "";
    char **argv = NULL;
    char json[1024];
    size_t n;
    vm_def d;

    parse_def(DEF(",\"disks\":[\"1G\"]"), &d);
    assert_int_equal(qemu_argv_build(&d, &tcg_72, &paths, &argv, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "paths.disks"));
    paths.disks = unopened;
    paths.ndisks = 1;
    assert_int_equal(qemu_argv_build(&d, &tcg_72, &paths, &argv, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "not opened"));
    vmdef_free(&d);
    /* seven SATA disks for q35's six ports */
    n = (size_t)snprintf(json, sizeof(json), "{\"name\":\"vm1\",\"disks\":[");
    for (int i = 0; i < 7; i++)
        n += (size_t)snprintf(json + n, sizeof(json) - n, "%s{\"cdrom\":true}", i ? "," : "");
    snprintf(json + n, sizeof(json) - n, "]}");
    parse_def(json, &d);
    {
        qemu_disk_chain none[7] = { { 0 } };
        paths.disks = none;
        paths.ndisks = 7;
        assert_int_equal(qemu_argv_build(&d, &tcg_72, &paths, &argv, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "6 ports"));
    }
    vmdef_free(&d);
    paths.disks = one;
    paths.ndisks = 1;
    parse_def(DEF(",\"machine\":\"microvm\",\"disks\":[{\"volume\":\"a.qcow2\",\"bus\":\"sata\"}]"), &d);
    assert_int_equal(qemu_argv_build(&d, &tcg_72, &paths, &argv, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "no SATA or IDE ports"));
    vmdef_free(&d);
}

static void assert_refused(const vm_def *d, const qemu_host *h, const qemu_paths *p,
                           const char *field)
{
    char err[VM_ERR_MAX] = "";
    char **argv = (char **)0x1;
    size_t n = strlen(field);

    assert_int_equal(qemu_argv_build(d, h, p, &argv, err, sizeof(err)), -EINVAL);
    print_message("  -> %s\n", err);
    assert_true(strncmp(err, field, n) == 0 && err[n] == ':');
    assert_ptr_equal(argv, (char **)0x1);
}

#define NEWLINE_PATH "/run/agentd/vm1\n-daemonize"

static void a_path_with_a_newline_or_none_is_refused_naming_the_path(void **state)
{
    static const struct {
        qemu_paths paths;
        const char *field;
    } cases[] = {
        {{.qmp_socket = NEWLINE_PATH, .serial_socket = "/s", .console_log = "/l", .pidfile = "/p"}, "paths.qmp_socket"},
        {{.qmp_socket = "/q", .serial_socket = NEWLINE_PATH, .console_log = "/l", .pidfile = "/p"}, "paths.serial_socket"},
        {{.qmp_socket = "/q", .serial_socket = "/s", .console_log = NEWLINE_PATH, .pidfile = "/p"}, "paths.console_log"},
        {{.qmp_socket = "/q", .serial_socket = "/s", .console_log = "/l", .pidfile = NEWLINE_PATH}, "paths.pidfile"},
        {{.qmp_socket = NULL, .serial_socket = "/s", .console_log = "/l", .pidfile = "/p"}, "paths.qmp_socket"},
        {{.qmp_socket = "/q", .serial_socket = "/s", .console_log = "", .pidfile = "/p"}, "paths.console_log"},
        {{.qmp_socket = "/q", .serial_socket = "/s", .console_log = "/l", .pidfile = NULL}, "paths.pidfile"},
    };
    vm_def d;

    parse_def(DEF(""), &d);
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
        assert_refused(&d, &tcg_72, &cases[i].paths, cases[i].field);
    vmdef_free(&d);
}

static void a_kernel_path_with_a_newline_is_refused_naming_kernel(void **state)
{
    vm_def d;

    parse_def(DEF(",\"kernel\":\"/boot/vmlinuz\""), &d);
    free(d.kernel);
    d.kernel = strdup("/boot/vmlinuz\n-daemonize");
    assert_non_null(d.kernel);
    assert_refused(&d, &tcg_72, &default_paths, "kernel");
    vmdef_free(&d);
}

static void a_definition_built_in_code_cannot_inject_options(void **state)
{
    vm_def d;

    parse_def(DEF(""), &d);
    memcpy(d.name, "vm1,debug-threads=off", sizeof("vm1,debug-threads=off"));
    assert_refused(&d, &tcg_72, &default_paths, "name");
    memcpy(d.name, "vm1", sizeof("vm1"));
    memcpy(d.machine, "q35,accel=xen", sizeof("q35,accel=xen"));
    assert_refused(&d, &tcg_72, &default_paths, "machine");
    vmdef_free(&d);
}

static void a_host_without_binary_or_accelerator_is_refused(void **state)
{
    qemu_host h = tcg_72;
    vm_def d;

    parse_def(DEF(""), &d);
    h.binary = NULL;
    assert_refused(&d, &h, &default_paths, "host.binary");
    h = tcg_72;
    h.accel = VM_ACCEL_DEFAULT;
    assert_refused(&d, &h, &default_paths, "host.accel");
    h = tcg_72;
    h.run_as = "";
    assert_refused(&d, &h, &default_paths, "host.run_as");
    vmdef_free(&d);
}

static void a_run_as_user_with_a_comma_is_escaped_for_run_with(void **state)
{
    qemu_host h = kvm_91_as_qemu;
    char **argv = NULL;
    char *joined;
    vm_def d;

    h.run_as = "a,b";
    parse_def(DEF(""), &d);
    assert_int_equal(qemu_argv_build(&d, &h, &default_paths, &argv, NULL, 0), 0);
    joined = join(argv);
    assert_non_null(strstr(joined, "\n-run-with\nuser=a,,b\n"));
    free(joined);
    qemu_argv_free(argv);
    vmdef_free(&d);
}

static void an_inherited_qmp_socket_is_named_by_its_fd(void **state)
{
    qemu_paths p = default_paths;
    char **argv = NULL;
    char *joined;
    vm_def d;

    p.qmp_fd = 3;
    parse_def(DEF(""), &d);
    assert_int_equal(qemu_argv_build(&d, &tcg_72, &p, &argv, NULL, 0), 0);
    joined = join(argv);
    assert_non_null(strstr(joined, "\n-chardev\nsocket,id=qmp,fd=3,server=on,wait=off\n-mon\n"));
    assert_null(strstr(joined, "qmp.sock"));
    free(joined);
    qemu_argv_free(argv);
    vmdef_free(&d);
}

/* The address comes later, with migrate-incoming: none on the command line. */
static void an_incoming_migration_waits_with_incoming_defer(void **state)
{
    qemu_paths p = default_paths;
    char **argv = NULL;
    char *joined;
    vm_def d;

    parse_def(DEF(""), &d);
    assert_int_equal(qemu_argv_build(&d, &tcg_72, &p, &argv, NULL, 0), 0);
    joined = join(argv);
    assert_null(strstr(joined, "-incoming"));
    free(joined);
    qemu_argv_free(argv);
    p.incoming = true;
    assert_int_equal(qemu_argv_build(&d, &tcg_72, &p, &argv, NULL, 0), 0);
    joined = join(argv);
    assert_non_null(strstr(joined, "\n-incoming\ndefer\n"));
    assert_non_null(strstr(joined, "\n-S\n"));
    free(joined);
    qemu_argv_free(argv);
    vmdef_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_definition_gives_its_golden_command_line),
        cmocka_unit_test(an_inherited_qmp_socket_is_named_by_its_fd),
        cmocka_unit_test(an_incoming_migration_waits_with_incoming_defer),
        cmocka_unit_test(disks_get_a_blockdev_per_chain_node_and_a_device_each),
        cmocka_unit_test(disks_without_chains_or_ports_are_refused),
        cmocka_unit_test(nics_get_a_tap_netdev_over_passed_fds_and_a_device_with_their_mac),
        cmocka_unit_test(passed_through_devices_get_a_vfio_device_each),
        cmocka_unit_test(slotted_devices_keep_their_port_and_scsi_id),
        cmocka_unit_test(a_vnc_display_is_password_protected_on_the_hosts_address),
        cmocka_unit_test(a_guest_agent_gets_its_named_channel_at_a_fixed_slot),
        cmocka_unit_test(definition_built_in_code_with_max_vcpus_zero_uses_vcpus),
        cmocka_unit_test(a_path_with_a_newline_or_none_is_refused_naming_the_path),
        cmocka_unit_test(a_kernel_path_with_a_newline_is_refused_naming_kernel),
        cmocka_unit_test(a_definition_built_in_code_cannot_inject_options),
        cmocka_unit_test(a_host_without_binary_or_accelerator_is_refused),
        cmocka_unit_test(a_run_as_user_with_a_comma_is_escaped_for_run_with),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
