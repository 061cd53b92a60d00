/* vmdef.h: a VM definition, validated field by field.
 *
 * The definition is the contract with the management node: it is what
 * vm-define takes, what query-vm returns under "definition", and what is
 * stored in STATE_DIR/vms/NAME.json. Parsing refuses unknown fields and names
 * the offending field in its error. Devices (disks, nics, vnc, passthrough)
 * arrive with later layers and slot in as further members. */
#ifndef AGENTD_VMDEF_H
#define AGENTD_VMDEF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;

#define VM_NAME_MAX 64
#define VM_UUID_LEN 36
#define VM_LABELS_MAX 64
#define VM_BOOT_MAX 4
#define VM_PATH_MAX 4095
#define VM_CMDLINE_MAX 4096
#define VM_MODEL_MAX 64
#define VM_MAX_VCPUS 1024
#define VM_MAX_MEMORY_MIB (16u * 1024 * 1024) /* 16 TiB */
#define VM_ERR_MAX 256

typedef enum vm_on_crash {
    VM_ON_CRASH_DESTROY,  /* stay stopped, reason crashed (default) */
    VM_ON_CRASH_RESTART,  /* start again */
    VM_ON_CRASH_PRESERVE, /* keep the crashed state and its logs for inspection */
} vm_on_crash;

typedef enum vm_accel {
    VM_ACCEL_DEFAULT, /* the host's setting */
    VM_ACCEL_KVM,
    VM_ACCEL_TCG,
} vm_accel;

typedef enum vm_boot_dev {
    VM_BOOT_DISK,    /* "disk" -> c */
    VM_BOOT_CDROM,   /* "cdrom" -> d */
    VM_BOOT_NETWORK, /* "network" -> n */
} vm_boot_dev;

#define VM_DISKS_MAX 32
#define VM_SLOT_MAX 255
#define VM_HOTPLUG_SLOTS_MAX 15   /* q35: ports at 0x10..0x1e; 0x1f is the ICH9 LPC */
#define VM_HOTPLUG_SLOTS_DEFAULT 4
#define VM_VOLUME_MAX 255
#define VM_TARGET_MAX 7

typedef enum vm_disk_format { VM_DISK_QCOW2, VM_DISK_RAW } vm_disk_format;

typedef enum vm_disk_bus {
    VM_DISK_VIRTIO_BLK,      /* "virtio-blk", the default */
    VM_DISK_VIRTIO_SCSI,     /* "virtio-scsi": scsi-hd on one virtio-scsi controller */
    VM_DISK_SATA,            /* "sata": the AHCI controller */
    VM_DISK_IDE,             /* "ide": PIIX IDE on pc machines, AHCI ports on q35 */
} vm_disk_bus;

typedef enum vm_disk_cache {
    VM_CACHE_NONE,           /* the default: O_DIRECT, guest flushes honoured */
    VM_CACHE_WRITEBACK,
    VM_CACHE_WRITETHROUGH,
    VM_CACHE_DIRECTSYNC,
    VM_CACHE_UNSAFE,
} vm_disk_cache;

typedef enum vm_disk_io { VM_IO_THREADS, VM_IO_NATIVE, VM_IO_URING } vm_disk_io;

/* One disk: a volume in a pool, or a path inside a pool, or (a cdrom) an
 * ISO or nothing. */
typedef struct vm_disk {
    char target[VM_TARGET_MAX + 1];   /* "sda": unique, names the file NAME.sda.qcow2 */
    char pool[VM_NAME_MAX + 1];       /* "" with a path, or an empty cdrom */
    char volume[VM_VOLUME_MAX + 1];
    char *path;                       /* absolute, or NULL */
    uint64_t size;                    /* bytes: create the file at define time when missing */
    vm_disk_format format;            /* never guessed: qcow2 unless stated */
    vm_disk_bus bus;
    vm_disk_cache cache;
    vm_disk_io io;
    bool readonly;
    bool cdrom;
    bool discard;                     /* unmap what the guest discards */
    int boot_index;                   /* -1: none */
    int slot;                         /* -1: placed at start; else virtio-blk: hotplug port, scsi: scsi-id */
} vm_disk;

const char *vm_disk_bus_name(vm_disk_bus b);
const char *vm_disk_cache_name(vm_disk_cache c);
const char *vm_disk_io_name(vm_disk_io i);

#define VM_NICS_MAX 16
#define VM_TRUNKS_MAX 64
#define VM_IFNAME_MAX 15

typedef enum vm_nic_model {
    VM_NIC_VIRTIO,           /* "virtio": virtio-net-pci, vhost-net when the host has it */
    VM_NIC_E1000,
    VM_NIC_RTL8139,
} vm_nic_model;

/* One NIC: a tap on a host bridge. */
typedef struct vm_nic {
    char bridge[VM_IFNAME_MAX + 1];
    vm_nic_model model;
    uint8_t mac[6];                   /* generated once when defined, then kept */
    uint16_t vlan;                    /* 0: none; else the port's untagged pvid */
    uint16_t trunks[VM_TRUNKS_MAX];   /* tagged VLANs */
    size_t ntrunks;
    unsigned queues;                  /* virtio multi-queue; 1 by default */
    int boot_index;                   /* -1: none (network boot when set) */
    int slot;                         /* -1: placed at start; else its hotplug port */
    char guest_name[VM_IFNAME_MAX + 1];   /* RHEV's ifname, for the management node */
} vm_nic;

const char *vm_nic_model_name(vm_nic_model m);

#define VM_HOSTDEVS_MAX 16
#define VM_PCI_TEXT 13

/* A host PCI device passed through with VFIO (xCAT's devpassthrough). */
typedef struct vm_hostdev {
    char host[VM_PCI_TEXT];           /* "0000:01:00.2", canonical */
    uint8_t mac[6];                   /* an SR-IOV VF's MAC, set through its PF; zero: leave it */
    uint16_t vlan;                    /* an SR-IOV VF's VLAN; 0: none */
} vm_hostdev;

typedef struct vm_label {
    char *key;
    char *value;
} vm_label;

typedef struct vm_def {
    char name[VM_NAME_MAX + 1];
    char uuid[VM_UUID_LEN + 1];   /* lower-case 8-4-4-4-12 */
    /* vcpus = sockets * cores * threads; max_vcpus >= vcpus (0: same as vcpus) */
    uint32_t vcpus, sockets, cores, threads, max_vcpus;
    bool topology_explicit;   /* vcpus came as "S:C[:T]" or an object: written back that way */
    uint64_t memory_mib, max_memory_mib;   /* max 0: no memory hotplug, else > memory */
    char machine[VM_MODEL_MAX + 1];         /* default "q35" */
    char cpu_model[VM_MODEL_MAX + 1];       /* "" : by accelerator (host for kvm) */
    vm_accel accel;
    vm_boot_dev boot[VM_BOOT_MAX];
    size_t nboot;
    char *kernel, *initrd, *cmdline;        /* NULL when absent */
    uint32_t serial_speed;                  /* 0: no serial speed set (default 115200 in docs) */
    bool autostart;
    vm_on_crash on_crash;
    vm_disk disks[VM_DISKS_MAX];
    size_t ndisks;
    vm_nic nics[VM_NICS_MAX];
    size_t nnics;
    vm_hostdev hostdevs[VM_HOSTDEVS_MAX];
    size_t nhostdevs;
    bool vnc;                               /* a VNC display, password-protected */
    bool guest_agent;                       /* a virtio-serial channel for qemu-ga */
    uint32_t hotplug_slots;                 /* PCI ports kept free for hotplugged disks and NICs */
    uint32_t cpu_weight;                    /* cgroup weight 1..10000 (cpu-shares x 100); 0: the default */
    uint64_t memory_limit_mib;              /* cgroup memory limit; 0: none */
    vm_label labels[VM_LABELS_MAX];
    size_t nlabels;
} vm_def;

/* Parses and validates. On failure returns -EINVAL and writes a message that
 * starts with the field's name ("memory: must be at least 16 MiB") into err.
 * A missing uuid is generated (a failure to read randomness is returned as
 * its negative errno). ret is untouched on failure. */
int vmdef_from_json(struct json_object *obj, vm_def *ret, char *err, size_t errlen);
/* The canonical JSON form: every field, defaults made explicit; only what
 * has no value of its own when unset (accel: the host's; kernel, initrd,
 * cmdline, serial) is left out. NULL when out of memory. */
struct json_object *vmdef_to_json(const vm_def *def);
void vmdef_free(vm_def *def);
int vmdef_copy(const vm_def *src, vm_def *ret);
/* Checks every rule vmdef_from_json enforces on a definition built in code,
 * with the same messages. -EINVAL when one fails. */
int vmdef_validate(const vm_def *def, char *err, size_t errlen);
/* Same definition, field by field (max_vcpus 0 equals max_vcpus == vcpus). */
bool vmdef_equal(const vm_def *a, const vm_def *b);

/* Fields whose change only takes effect on the next start of a running VM. */
bool vmdef_needs_restart(const vm_def *a, const vm_def *b, const char **ret_field);

bool vmdef_name_valid(const char *name);
/* "512", "512M", "2G", "1T", "2048MiB" -> MiB; -EINVAL on anything else. */
int vmdef_parse_memory(const char *s, uint64_t *ret_mib);
/* "1073741824", "20G", "512M", "1T", "4KiB" -> bytes (binary units, as
 * qemu-img takes them); -EINVAL or -ERANGE otherwise. */
int vmdef_parse_size(const char *s, uint64_t *ret_bytes);

const char *vm_on_crash_name(vm_on_crash v);
const char *vm_accel_name(vm_accel v);

#endif
