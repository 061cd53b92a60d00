/* qemu_devices.h: devices as QMP device_add arguments, shared by the
 * command line (the same object written as driver,key=value,...) and by
 * hotplug, so a device attached to a running VM and the same device after
 * a restart are one definition. Also the hotplug ports: a q35 VM gets
 * hotplug-slots pcie-root-ports ("hp0".. at slots 0x10..), a pc VM uses
 * slots 0x10.. of pci.0 directly; a disk or NIC with a slot sits there.
 * Internal to agent/. */
#ifndef AGENTD_QEMU_DEVICES_H
#define AGENTD_QEMU_DEVICES_H

#include <stddef.h>

#include "qemu_argv.h"
#include "qemu_argv_buf.h"

struct json_object;

typedef enum qemu_machine_family { QEMU_MACHINE_Q35, QEMU_MACHINE_PC, QEMU_MACHINE_OTHER } qemu_machine_family;

qemu_machine_family qemu_machine_family_of(const char *machine);

/* -device pcie-root-port for each hotplug slot of a q35 VM. */
void qemu_push_hotplug_ports(argv_buf *b, const vm_def *def);
/* Adds bus (and addr) for hotplug slot to a device object. */
void qemu_slot_place(const vm_def *def, int slot, struct json_object *dev);
/* The lowest hotplug slot no disk or NIC of def holds, or -1 when all are. */
int qemu_free_hotplug_slot(const vm_def *def);
/* -device driver,key=value,... from a device_add object (taken). */
void qemu_push_device(argv_buf *b, struct json_object *dev);

/* The disk's blockdev-add objects, bottom of the chain first. */
struct json_object *qemu_disk_file_node(const vm_disk *d, const qemu_disk_node *n, size_t k);
struct json_object *qemu_disk_format_node(const vm_disk *d, const qemu_disk_chain *c, size_t k);
/* "drive-sda", "drive-sda-1" (k > 0: backing nodes), "file-sda", ... */
void qemu_disk_node_name(char *out, size_t len, const char *kind, const vm_disk *d, size_t k);
/* Live snapshots' overlays of one disk are numbered 1 to this, less one. */
#define QEMU_SNAPSHOT_NODES_MAX 65
/* A live snapshot's overlay n of disk d, at path: "file-T-sN" and
 * "drive-T-sN" (qcow2, no backing: blockdev-snapshot gives it one). */
void qemu_disk_snapshot_node_name(char *out, size_t len, const char *kind, const vm_disk *d, unsigned n);
struct json_object *qemu_disk_snapshot_file_node(const vm_disk *d, const char *path, unsigned n);
struct json_object *qemu_disk_snapshot_format_node(const vm_disk *d, unsigned n);
/* The lowest scsi-id on scsi0 that no disk of def, started as def says,
 * holds; -1 when none is free. */
int qemu_disk_free_scsi_id(const vm_def *def);
/* device_add for disk i, which has a slot (a hotplug port or a scsi-id). */
struct json_object *qemu_disk_slot_device(const vm_def *def, size_t i);

/* A NIC's ids, from its MAC (unique on the host): "nic-525400123456", "net-...". */
void qemu_nic_ids(const vm_nic *n, char dev[24], char netdev[24]);
/* netdev_add for NIC n, its tap fds (and vhost fds, or NULL) passed
 * earlier with getfd under these names ("a" or "a:b:c"). */
struct json_object *qemu_nic_netdev(const vm_nic *n, const char *tap_fds, const char *vhost_fds);
/* device_add for NIC n on netdev. */
struct json_object *qemu_nic_device(const vm_def *def, const vm_nic *n);

#endif
