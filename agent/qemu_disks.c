/* qemu_disks.c: a VM's disks on the QEMU command line.
 *
 * Every node of every chain gets its own -blockdev with its driver and
 * format named, bottom first, each format node naming its backing node (or
 * null), so QEMU never opens a file the agent did not check and never
 * probes a format. The options are written as JSON (built by json-c), so a
 * path needs no escaping. Devices follow: virtio-blk-pci, scsi-hd/scsi-cd on
 * one virtio-scsi controller, ide-hd/ide-cd on the AHCI (q35) or PIIX IDE
 * (pc) ports. Ids are derived from the disk's target ("disk-sda"), so a
 * device keeps its name across restarts. */
#include "errbuf.h"
#include "qemu_argv.h"
#include "qemu_argv_buf.h"
#include "qemu_devices.h"
#include "qemu_disks.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#define Q35_AHCI_PORTS 6          /* the ICH9 AHCI built into q35: ide.0 .. ide.5 */
#define PC_IDE_DEVICES 4          /* PIIX: two buses, master and slave */
#define PC_AHCI_PORTS 6           /* an ich9-ahci added to a pc machine */

/* ---- checks -------------------------------------------------------------------- */

static bool has_media(const vm_disk *d)
{
    return !d->cdrom || d->path || d->volume[0];
}

typedef struct bus_count {
    unsigned ahci, ide, scsi;
} bus_count;

static void count_buses(const vm_def *def, bus_count *c)
{
    qemu_machine_family f = qemu_machine_family_of(def->machine);

    *c = (bus_count){ 0 };
    for (size_t i = 0; i < def->ndisks; i++) {
        vm_disk_bus b = def->disks[i].bus;
        if (b == VM_DISK_VIRTIO_SCSI)
            c->scsi++;
        else if (b == VM_DISK_SATA || (b == VM_DISK_IDE && f == QEMU_MACHINE_Q35))
            c->ahci++;
        else if (b == VM_DISK_IDE)
            c->ide++;
    }
}

static int check_buses(const vm_def *def, errbuf *e)
{
    qemu_machine_family f = qemu_machine_family_of(def->machine);
    bus_count c;

    count_buses(def, &c);
    if (f == QEMU_MACHINE_OTHER && (c.ahci || c.ide))
        return errbuf_fail(e, "disks: machine %s has no SATA or IDE ports (use virtio-blk or virtio-scsi)",
                           def->machine);
    if (c.ahci > (f == QEMU_MACHINE_Q35 ? Q35_AHCI_PORTS : PC_AHCI_PORTS))
        return errbuf_fail(e, "disks: %u SATA disks, but the machine has %d ports", c.ahci,
                           f == QEMU_MACHINE_Q35 ? Q35_AHCI_PORTS : PC_AHCI_PORTS);
    if (c.ide > PC_IDE_DEVICES)
        return errbuf_fail(e, "disks: %u IDE disks, but the machine has %d places", c.ide, PC_IDE_DEVICES);
    return 0;
}

int qemu_disks_check(const vm_def *def, const qemu_paths *paths, errbuf *e)
{
    if (paths->ndisks != def->ndisks)
        return errbuf_fail(e, "paths.disks: %zu chains for %zu disks", paths->ndisks, def->ndisks);
    for (size_t i = 0; i < def->ndisks; i++) {
        const qemu_disk_chain *c = &paths->disks[i];
        if (has_media(&def->disks[i]) && (c->depth == 0 || c->depth > QEMU_CHAIN_MAX))
            return errbuf_fail(e, "paths.disks[%zu]: the chain is not opened", i);
        for (size_t k = 0; k < c->depth; k++) {
            if (!c->nodes[k].path || !c->nodes[k].path[0] || strchr(c->nodes[k].path, '\n'))
                return errbuf_fail(e, "paths.disks[%zu]: node %zu has no usable path", i, k);
            if (!c->nodes[k].format || (strcmp(c->nodes[k].format, "qcow2") && strcmp(c->nodes[k].format, "raw")))
                return errbuf_fail(e, "paths.disks[%zu]: node %zu has no format", i, k);
            if (k + 1 < c->depth && strcmp(c->nodes[k].format, "qcow2") != 0)
                return errbuf_fail(e, "paths.disks[%zu]: a raw node cannot have a backing node", i);
        }
    }
    return check_buses(def, e);
}

/* ---- -blockdev ------------------------------------------------------------------- */

void qemu_disk_node_name(char *out, size_t len, const char *kind, const vm_disk *d, size_t k)
{
    if (k == 0)
        snprintf(out, len, "%s-%s", kind, d->target);
    else
        snprintf(out, len, "%s-%s-%zu", kind, d->target, k);
}

static struct json_object *cache_json(const vm_disk *d)
{
    struct json_object *o = json_object_new_object();
    bool direct = d->cache == VM_CACHE_NONE || d->cache == VM_CACHE_DIRECTSYNC;

    json_object_object_add(o, "direct", json_object_new_boolean(direct));
    json_object_object_add(o, "no-flush", json_object_new_boolean(d->cache == VM_CACHE_UNSAFE));
    return o;
}

/* Options every node of the disk shares. */
static void add_common(struct json_object *o, const vm_disk *d, size_t k)
{
    json_object_object_add(o, "read-only", json_object_new_boolean(k > 0 || d->readonly || d->cdrom));
    json_object_object_add(o, "cache", cache_json(d));
    if (d->discard)
        json_object_object_add(o, "discard", json_object_new_string("unmap"));
}

static void push_json(argv_buf *b, struct json_object *o)
{
    argv_push(b, "-blockdev");
    if (!o) {
        argv_push_owned(b, NULL);
        return;
    }
    argv_push(b, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
}

struct json_object *qemu_disk_file_node(const vm_disk *d, const qemu_disk_node *n, size_t k)
{
    struct json_object *o = json_object_new_object();
    char name[32];

    qemu_disk_node_name(name, sizeof(name), "file", d, k);
    json_object_object_add(o, "driver", json_object_new_string(n->block_device ? "host_device" : "file"));
    json_object_object_add(o, "filename", json_object_new_string(n->path));
    json_object_object_add(o, "node-name", json_object_new_string(name));
    json_object_object_add(o, "aio", json_object_new_string(vm_disk_io_name(d->io)));
    add_common(o, d, k);
    return o;
}

struct json_object *qemu_disk_format_node(const vm_disk *d, const qemu_disk_chain *c, size_t k)
{
    struct json_object *o = json_object_new_object();
    char name[32], file[32], backing[32];

    qemu_disk_node_name(name, sizeof(name), "drive", d, k);
    qemu_disk_node_name(file, sizeof(file), "file", d, k);
    json_object_object_add(o, "driver", json_object_new_string(c->nodes[k].format));
    json_object_object_add(o, "node-name", json_object_new_string(name));
    json_object_object_add(o, "file", json_object_new_string(file));
    add_common(o, d, k);
    if (strcmp(c->nodes[k].format, "qcow2") == 0) {
        /* null: QEMU must not open the backing file the image names itself. */
        if (k + 1 < c->depth) {
            qemu_disk_node_name(backing, sizeof(backing), "drive", d, k + 1);
            json_object_object_add(o, "backing", json_object_new_string(backing));
        } else {
            json_object_object_add(o, "backing", NULL);
        }
    }
    return o;
}

void qemu_disk_snapshot_node_name(char *out, size_t len, const char *kind, const vm_disk *d, unsigned n)
{
    snprintf(out, len, "%s-%s-s%u", kind, d->target, n);
}

/* The options of a chain's top node, under the overlay's own names. */
struct json_object *qemu_disk_snapshot_file_node(const vm_disk *d, const char *path, unsigned n)
{
    qemu_disk_node node = { .path = path, .format = "qcow2" };
    struct json_object *o = qemu_disk_file_node(d, &node, 0);
    char name[48];

    qemu_disk_snapshot_node_name(name, sizeof(name), "file", d, n);
    json_object_object_add(o, "node-name", json_object_new_string(name));
    return o;
}

struct json_object *qemu_disk_snapshot_format_node(const vm_disk *d, unsigned n)
{
    qemu_disk_chain c = { .depth = 1, .nodes = { { .format = "qcow2" } } };
    struct json_object *o = qemu_disk_format_node(d, &c, 0);
    char name[48];

    qemu_disk_snapshot_node_name(name, sizeof(name), "drive", d, n);
    json_object_object_add(o, "node-name", json_object_new_string(name));
    qemu_disk_snapshot_node_name(name, sizeof(name), "file", d, n);
    json_object_object_add(o, "file", json_object_new_string(name));
    return o;
}

static void push_chain(argv_buf *b, const vm_disk *d, const qemu_disk_chain *c)
{
    for (size_t k = c->depth; k-- > 0;) {
        push_json(b, qemu_disk_file_node(d, &c->nodes[k], k));
        push_json(b, qemu_disk_format_node(d, c, k));
    }
}

/* ---- -device ------------------------------------------------------------------------ */

typedef struct placement {
    qemu_machine_family family;
    unsigned ahci, ide, scsi;     /* next port of each */
    bool scsi_controller, pc_ahci;
} placement;

static const char *device_model(const vm_disk *d)
{
    switch (d->bus) {
    case VM_DISK_VIRTIO_BLK:
        return "virtio-blk-pci";
    case VM_DISK_VIRTIO_SCSI:
        return d->cdrom ? "scsi-cd" : "scsi-hd";
    default:
        return d->cdrom ? "ide-cd" : "ide-hd";
    }
}

/* Controllers a disk needs, once each. */
static void push_controllers(argv_buf *b, const vm_disk *d, placement *p)
{
    if (d->bus == VM_DISK_VIRTIO_SCSI && !p->scsi_controller) {
        argv_push(b, "-device");
        argv_push(b, "virtio-scsi-pci,id=scsi0");
        p->scsi_controller = true;
    }
    if (d->bus == VM_DISK_SATA && p->family == QEMU_MACHINE_PC && !p->pc_ahci) {
        argv_push(b, "-device");
        argv_push(b, "ich9-ahci,id=sata0");
        p->pc_ahci = true;
    }
}

/* The next scsi-id no disk holds as its slot: a disk placed at start
 * never takes the place a hotplugged one keeps. */
static unsigned next_scsi_id(const vm_def *def, placement *p)
{
    for (;; p->scsi++) {
        bool taken = false;
        for (size_t j = 0; j < def->ndisks; j++)
            taken |= def->disks[j].bus == VM_DISK_VIRTIO_SCSI && def->disks[j].slot == (int)p->scsi;
        if (!taken)
            return p->scsi++;
    }
}

/* Where the device plugs in, as ",bus=..." options. */
static void place(char *out, size_t len, const vm_def *def, const vm_disk *d, placement *p)
{
    bool ahci = d->bus == VM_DISK_SATA || (d->bus == VM_DISK_IDE && p->family == QEMU_MACHINE_Q35);

    if (d->bus == VM_DISK_VIRTIO_BLK)
        out[0] = '\0';
    else if (d->bus == VM_DISK_VIRTIO_SCSI)
        snprintf(out, len, ",bus=scsi0.0,channel=0,scsi-id=%u,lun=0", next_scsi_id(def, p));
    else if (ahci)
        snprintf(out, len, ",bus=%s.%u", p->family == QEMU_MACHINE_Q35 ? "ide" : "sata0", p->ahci++);
    else {
        snprintf(out, len, ",bus=ide.%u,unit=%u", p->ide / 2, p->ide % 2);
        p->ide++;
    }
}

#define SCSI_IDS 256   /* virtio-scsi's targets */

int qemu_disk_free_scsi_id(const vm_def *def)
{
    bool used[SCSI_IDS] = { false };
    placement p = { .family = qemu_machine_family_of(def->machine) };

    for (size_t i = 0; i < def->ndisks; i++) {
        const vm_disk *d = &def->disks[i];
        unsigned id;
        if (d->bus != VM_DISK_VIRTIO_SCSI)
            continue;
        id = d->slot >= 0 ? (unsigned)d->slot : next_scsi_id(def, &p);
        if (id < SCSI_IDS)
            used[id] = true;
    }
    for (int id = 0; id < SCSI_IDS; id++)
        if (!used[id])
            return id;
    return -1;
}

struct json_object *qemu_disk_slot_device(const vm_def *def, size_t i)
{
    const vm_disk *d = &def->disks[i];
    struct json_object *o = json_object_new_object();
    char id[16], drive[16];

    snprintf(id, sizeof(id), "disk-%s", d->target);
    snprintf(drive, sizeof(drive), "drive-%s", d->target);
    json_object_object_add(o, "driver", json_object_new_string(device_model(d)));
    json_object_object_add(o, "id", json_object_new_string(id));
    json_object_object_add(o, "drive", json_object_new_string(drive));
    if (d->bus == VM_DISK_VIRTIO_SCSI) {
        json_object_object_add(o, "bus", json_object_new_string("scsi0.0"));
        json_object_object_add(o, "channel", json_object_new_int(0));
        json_object_object_add(o, "scsi-id", json_object_new_int(d->slot));
        json_object_object_add(o, "lun", json_object_new_int(0));
    } else {
        qemu_slot_place(def, d->slot, o);
    }
    if (d->boot_index >= 0)
        json_object_object_add(o, "bootindex", json_object_new_int(d->boot_index));
    /* Writethrough is the guest seeing no volatile cache. */
    if (d->cache == VM_CACHE_WRITETHROUGH || d->cache == VM_CACHE_DIRECTSYNC)
        json_object_object_add(o, "write-cache", json_object_new_boolean(0));
    return o;
}

static void push_device(argv_buf *b, const vm_def *def, size_t i, placement *p)
{
    const vm_disk *d = &def->disks[i];
    bool wt = d->cache == VM_CACHE_WRITETHROUGH || d->cache == VM_CACHE_DIRECTSYNC;
    char where[64], drive[48] = "", boot[32] = "";

    push_controllers(b, d, p);
    if (d->slot >= 0 && has_media(d)) {
        qemu_push_device(b, qemu_disk_slot_device(def, i));
        return;
    }
    place(where, sizeof(where), def, d, p);
    if (has_media(d))
        snprintf(drive, sizeof(drive), ",drive=drive-%s", d->target);
    if (d->boot_index >= 0)
        snprintf(boot, sizeof(boot), ",bootindex=%d", d->boot_index);
    argv_push(b, "-device");
    /* Writethrough is the guest seeing no volatile cache. */
    argv_pushf(b, "%s%s%s,id=disk-%s%s%s", device_model(d), where, drive, d->target, boot,
               wt && !d->cdrom ? ",write-cache=off" : "");
}

void qemu_push_disks(argv_buf *b, const vm_def *def, const qemu_paths *paths)
{
    placement p = { .family = qemu_machine_family_of(def->machine) };

    for (size_t i = 0; i < def->ndisks; i++)
        if (has_media(&def->disks[i]))
            push_chain(b, &def->disks[i], &paths->disks[i]);
    for (size_t i = 0; i < def->ndisks; i++)
        push_device(b, def, i, &p);
}
