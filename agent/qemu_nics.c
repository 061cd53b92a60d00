/* qemu_nics.c: a VM's NICs on the QEMU command line: a tap netdev over the
 * fds the agent made (QEMU never opens /dev/net/tun, and needs no
 * privilege for it), with vhost-net fds when there are, and the device of
 * the NIC's model with its MAC. Ids follow the NIC's place ("net0",
 * "nic0"), so a device keeps its name across restarts. Passed-through PCI
 * devices are here too: most are NICs (SR-IOV VFs). */
#include "errbuf.h"
#include "qemu_argv.h"
#include "qemu_argv_buf.h"
#include "qemu_nics.h"

#include <stdio.h>
#include <string.h>

#include "net/net.h"

static const char *const device_models[] = {
    [VM_NIC_VIRTIO] = "virtio-net-pci", [VM_NIC_E1000] = "e1000", [VM_NIC_RTL8139] = "rtl8139",
};

int qemu_nics_check(const vm_def *def, const qemu_paths *paths, errbuf *e)
{
    if (paths->nnics != def->nnics)
        return errbuf_fail(e, "paths.nics: %zu sets of fds for %zu NICs", paths->nnics, def->nnics);
    for (size_t i = 0; i < def->nnics; i++) {
        const qemu_nic_fds *f = &paths->nics[i];
        if (f->ntap != def->nics[i].queues || f->ntap > QEMU_NIC_QUEUES_MAX)
            return errbuf_fail(e, "paths.nics[%zu]: %u tap fds for %u queues", i, f->ntap, def->nics[i].queues);
        if (f->nvhost && f->nvhost != f->ntap)
            return errbuf_fail(e, "paths.nics[%zu]: %u vhost fds for %u queues", i, f->nvhost, f->ntap);
        for (unsigned q = 0; q < f->ntap; q++)
            if (f->tap[q] <= 2 || (f->nvhost && f->vhost[q] <= 2))
                return errbuf_fail(e, "paths.nics[%zu]: fd numbers must be above 2", i);
    }
    return 0;
}

/* "3" or "3:4:5" for fds=/vhostfds=. */
static void fd_list(char *out, size_t len, const int *fds, unsigned n)
{
    size_t at = 0;

    out[0] = '\0';
    for (unsigned q = 0; q < n && at < len; q++)
        at += (size_t)snprintf(out + at, len - at, "%s%d", q ? ":" : "", fds[q]);
}

static void push_netdev(argv_buf *b, size_t i, const qemu_nic_fds *f)
{
    char taps[160], vhosts[160];

    fd_list(taps, sizeof(taps), f->tap, f->ntap);
    fd_list(vhosts, sizeof(vhosts), f->vhost, f->nvhost);
    argv_push(b, "-netdev");
    if (f->nvhost)
        argv_pushf(b, "tap,id=net%zu,%s=%s,vhost=on,%s=%s", i, f->ntap > 1 ? "fds" : "fd", taps,
                   f->ntap > 1 ? "vhostfds" : "vhostfd", vhosts);
    else
        argv_pushf(b, "tap,id=net%zu,%s=%s", i, f->ntap > 1 ? "fds" : "fd", taps);
}

static void push_nic_device(argv_buf *b, size_t i, const vm_nic *n)
{
    char mac[NET_MAC_TEXT], mq[48] = "", boot[32] = "";

    net_mac_format(n->mac, mac);
    /* Each queue pair wants two vectors, plus config and control. */
    if (n->queues > 1)
        snprintf(mq, sizeof(mq), ",mq=on,vectors=%u", 2 * n->queues + 2);
    if (n->boot_index >= 0)
        snprintf(boot, sizeof(boot), ",bootindex=%d", n->boot_index);
    argv_push(b, "-device");
    argv_pushf(b, "%s,netdev=net%zu,mac=%s,id=nic%zu%s%s", device_models[n->model], i, mac, i, mq, boot);
}

void qemu_push_nics(argv_buf *b, const vm_def *def, const qemu_paths *paths)
{
    for (size_t i = 0; i < def->nnics; i++) {
        push_netdev(b, i, &paths->nics[i]);
        push_nic_device(b, i, &def->nics[i]);
    }
}

/* Host PCI devices, bound to vfio-pci by the agent before the start. */
void qemu_push_hostdevs(argv_buf *b, const vm_def *def)
{
    for (size_t i = 0; i < def->nhostdevs; i++) {
        argv_push(b, "-device");
        argv_pushf(b, "vfio-pci,host=%s,id=hostdev%zu", def->hostdevs[i].host, i);
    }
}
