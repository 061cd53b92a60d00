/* qemu_devices.c: device_add objects and hotplug ports (see qemu_devices.h). */
#include "qemu_devices.h"

#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "net/net.h"

#define HOTPLUG_FIRST_SLOT 0x10

qemu_machine_family qemu_machine_family_of(const char *machine)
{
    if (strncmp(machine, "q35", 3) == 0 || strncmp(machine, "pc-q35", 6) == 0)
        return QEMU_MACHINE_Q35;
    if (strcmp(machine, "pc") == 0 || strncmp(machine, "pc-", 3) == 0)
        return QEMU_MACHINE_PC;
    return QEMU_MACHINE_OTHER;
}

/* Fixed addresses and chassis numbers: the guest sees the same ports, in
 * the same places, at every start. */
void qemu_push_hotplug_ports(argv_buf *b, const vm_def *def)
{
    if (qemu_machine_family_of(def->machine) != QEMU_MACHINE_Q35)
        return;
    for (uint32_t k = 0; k < def->hotplug_slots; k++) {
        argv_push(b, "-device");
        argv_pushf(b, "pcie-root-port,id=hp%u,bus=pcie.0,addr=0x%x,chassis=%u", k, HOTPLUG_FIRST_SLOT + k,
                   k + 1);
    }
}

void qemu_slot_place(const vm_def *def, int slot, struct json_object *dev)
{
    char bus[16], addr[16];

    if (qemu_machine_family_of(def->machine) == QEMU_MACHINE_Q35) {
        snprintf(bus, sizeof(bus), "hp%d", slot);
        json_object_object_add(dev, "bus", json_object_new_string(bus));
        /* A root port's one place: QEMU would put a second device beside it. */
        json_object_object_add(dev, "addr", json_object_new_string("0x0"));
        return;
    }
    snprintf(addr, sizeof(addr), "0x%x", HOTPLUG_FIRST_SLOT + slot);
    json_object_object_add(dev, "bus", json_object_new_string("pci.0"));
    json_object_object_add(dev, "addr", json_object_new_string(addr));
}

int qemu_free_hotplug_slot(const vm_def *def)
{
    for (uint32_t k = 0; k < def->hotplug_slots; k++) {
        bool taken = false;
        for (size_t i = 0; i < def->ndisks; i++)
            taken |= def->disks[i].bus == VM_DISK_VIRTIO_BLK && def->disks[i].slot == (int)k;
        for (size_t i = 0; i < def->nnics; i++)
            taken |= def->nics[i].slot == (int)k;
        if (!taken)
            return (int)k;
    }
    return -1;
}

/* Values are ids, bus names, numbers and booleans: none holds a comma. */
void qemu_push_device(argv_buf *b, struct json_object *dev)
{
    struct json_object *driver;
    char text[1024];
    size_t at;

    argv_push(b, "-device");
    if (!dev || !json_object_object_get_ex(dev, "driver", &driver)) {
        argv_push_owned(b, NULL);
        json_object_put(dev);
        return;
    }
    at = (size_t)snprintf(text, sizeof(text), "%s", json_object_get_string(driver));
    json_object_object_foreach(dev, key, val) {
        if (!strcmp(key, "driver") || at >= sizeof(text))
            continue;
        if (json_object_is_type(val, json_type_boolean))
            at += (size_t)snprintf(text + at, sizeof(text) - at, ",%s=%s", key,
                                   json_object_get_boolean(val) ? "on" : "off");
        else
            at += (size_t)snprintf(text + at, sizeof(text) - at, ",%s=%s", key, json_object_get_string(val));
    }
    if (at >= sizeof(text))
        argv_push_owned(b, NULL);
    else
        argv_push(b, text);
    json_object_put(dev);
}

void qemu_nic_ids(const vm_nic *n, char dev[24], char netdev[24])
{
    static const char hex[] = "0123456789abcdef";
    char m[13];

    for (int i = 0; i < 6; i++) {
        m[2 * i] = hex[n->mac[i] >> 4];
        m[2 * i + 1] = hex[n->mac[i] & 15];
    }
    m[12] = '\0';
    snprintf(dev, 24, "nic-%s", m);
    snprintf(netdev, 24, "net-%s", m);
}

struct json_object *qemu_nic_netdev(const vm_nic *n, const char *tap_fds, const char *vhost_fds)
{
    struct json_object *o = json_object_new_object();
    bool multi = n->queues > 1;
    char dev[24], netdev[24];

    qemu_nic_ids(n, dev, netdev);
    json_object_object_add(o, "type", json_object_new_string("tap"));
    json_object_object_add(o, "id", json_object_new_string(netdev));
    json_object_object_add(o, multi ? "fds" : "fd", json_object_new_string(tap_fds));
    if (vhost_fds) {
        json_object_object_add(o, "vhost", json_object_new_boolean(1));
        json_object_object_add(o, multi ? "vhostfds" : "vhostfd", json_object_new_string(vhost_fds));
    }
    return o;
}

static const char *const nic_models[] = {
    [VM_NIC_VIRTIO] = "virtio-net-pci", [VM_NIC_E1000] = "e1000", [VM_NIC_RTL8139] = "rtl8139",
};

struct json_object *qemu_nic_device(const vm_def *def, const vm_nic *n)
{
    struct json_object *o = json_object_new_object();
    char mac[NET_MAC_TEXT], dev[24], netdev[24];

    net_mac_format(n->mac, mac);
    qemu_nic_ids(n, dev, netdev);
    json_object_object_add(o, "driver", json_object_new_string(nic_models[n->model]));
    json_object_object_add(o, "netdev", json_object_new_string(netdev));
    json_object_object_add(o, "mac", json_object_new_string(mac));
    json_object_object_add(o, "id", json_object_new_string(dev));
    /* Each queue pair wants two vectors, plus config and control. */
    if (n->queues > 1) {
        json_object_object_add(o, "mq", json_object_new_boolean(1));
        json_object_object_add(o, "vectors", json_object_new_int((int)(2 * n->queues + 2)));
    }
    if (n->boot_index >= 0)
        json_object_object_add(o, "bootindex", json_object_new_int(n->boot_index));
    if (n->slot >= 0)
        qemu_slot_place(def, n->slot, o);
    return o;
}
