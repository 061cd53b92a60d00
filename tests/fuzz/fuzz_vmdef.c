/* fuzz_vmdef.c: libFuzzer target for the path every VM definition from a
 * management node takes: JSON text, vmdef_from_json, then the QEMU argv.
 *
 * Beyond not crashing, it checks two properties: a definition that parses
 * serializes to text that parses again into an equal definition, and every
 * definition that parses yields a command line. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "agent/qemu_argv.h"
#include "agent/vmdef.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const qemu_host host = {"qemu-system-x86_64", VM_ACCEL_KVM, "qemu", 70200};
static const qemu_host host_91 = {"qemu-system-x86_64", VM_ACCEL_TCG, NULL, 90100};
static const qemu_paths paths = {
    .qmp_socket = "/run/agentd/vm/qmp.sock",
    .serial_socket = "/run/agentd/vm/serial,0.sock",
    .console_log = "/var/lib/agentd/logs/vm.log",
    .pidfile = "/run/agentd/vm/qemu.pid",
    .vnc_listen = "127.0.0.1",
    .vnc_port = 5901,
};

static struct json_object *parse_bytes(json_tokener *tok, const char *s, size_t len)
{
    json_tokener_reset(tok);
    return json_tokener_parse_ex(tok, s, (int)len);
}

/* to_json -> text -> from_json must give the same definition back. */
static void check_round_trip(json_tokener *tok, const vm_def *d)
{
    struct json_object *o = vmdef_to_json(d);
    const char *text;
    struct json_object *again;
    vm_def d2;

    if (!o)
        abort();
    text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    again = parse_bytes(tok, text, strlen(text));
    if (!again || vmdef_from_json(again, &d2, NULL, 0) != 0 || !vmdef_equal(d, &d2))
        abort();
    if (vmdef_needs_restart(d, &d2, NULL))
        abort();
    vmdef_free(&d2);
    json_object_put(again);
    json_object_put(o);
}

/* What the agent would hand over for d: one opened chain per disk (an
 * empty drive for a cdrom without media), one tap fd per NIC queue. */
static void fake_resources(const vm_def *d, qemu_paths *p, qemu_disk_chain *chains, qemu_nic_fds *nics)
{
    int fd = 4;

    *p = paths;
    for (size_t i = 0; i < d->ndisks; i++) {
        const vm_disk *k = &d->disks[i];
        bool empty = k->cdrom && !k->path && !k->volume[0];
        chains[i] = (qemu_disk_chain){ .depth = empty ? 0 : 1 };
        chains[i].nodes[0] = (qemu_disk_node){ "/p/disk,1", k->format == VM_DISK_RAW ? "raw" : "qcow2", false };
    }
    for (size_t i = 0; i < d->nnics; i++) {
        nics[i] = (qemu_nic_fds){ .ntap = d->nics[i].queues };
        for (unsigned q = 0; q < nics[i].ntap; q++)
            nics[i].tap[q] = fd++;
    }
    p->disks = chains;
    p->ndisks = d->ndisks;
    p->nics = nics;
    p->nnics = d->nnics;
}

/* Every valid definition gets a command line, unless its machine lacks
 * the ports its disks ask for (a check that knows machines, made there). */
static void check_argv(const vm_def *d, const qemu_host *h)
{
    static qemu_disk_chain chains[VM_DISKS_MAX];
    static qemu_nic_fds nics[VM_NICS_MAX];
    char err[VM_ERR_MAX] = "";
    qemu_paths p;
    char **argv;

    fake_resources(d, &p, chains, nics);
    if (qemu_argv_build(d, h, &p, &argv, err, sizeof(err)) != 0) {
        if (strstr(err, "ports") || strstr(err, "places"))
            return;
        abort();
    }
    qemu_argv_free(argv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_tokener *tok;
    struct json_object *o;
    char err[VM_ERR_MAX];
    vm_def d;

    if (size > 1 << 16)
        return 0;
    if (!tok)
        tok = json_tokener_new();
    o = parse_bytes(tok, (const char *)data, size);
    if (!o)
        return 0;
    if (vmdef_from_json(o, &d, err, sizeof(err)) == 0) {
        check_round_trip(tok, &d);
        check_argv(&d, &host);
        check_argv(&d, &host_91);
        vmdef_free(&d);
    }
    json_object_put(o);
    return 0;
}
