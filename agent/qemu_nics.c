/* qemu_nics.c: a VM's NICs on the QEMU command line: a tap netdev over the
 * fds the agent made (QEMU never opens /dev/net/tun, and needs no
 * privilege for it), with vhost-net fds when there are, and the device of
 * the NIC's model with its MAC. Ids follow the NIC's MAC ("net-525400..",
 * "nic-525400.."), so a device keeps its name across restarts and hotplug. Passed-through PCI
 * devices are here too: most are NICs (SR-IOV VFs). */
#include "errbuf.h"
#include "qemu_argv.h"
#include "qemu_argv_buf.h"
#include "qemu_devices.h"
#include "qemu_nics.h"

#include <stdio.h>
#include <string.h>

#include "net/net.h"

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

static void push_netdev(argv_buf *b, const vm_nic *n, const qemu_nic_fds *f)
{
    char taps[160], vhosts[160], dev[24], netdev[24];

    qemu_nic_ids(n, dev, netdev);
    fd_list(taps, sizeof(taps), f->tap, f->ntap);
    fd_list(vhosts, sizeof(vhosts), f->vhost, f->nvhost);
    argv_push(b, "-netdev");
    if (f->nvhost)
        argv_pushf(b, "tap,id=%s,%s=%s,vhost=on,%s=%s", netdev, f->ntap > 1 ? "fds" : "fd", taps,
                   f->ntap > 1 ? "vhostfds" : "vhostfd", vhosts);
    else
        argv_pushf(b, "tap,id=%s,%s=%s", netdev, f->ntap > 1 ? "fds" : "fd", taps);
}

void qemu_push_nics(argv_buf *b, const vm_def *def, const qemu_paths *paths)
{
    for (size_t i = 0; i < def->nnics; i++) {
        push_netdev(b, &def->nics[i], &paths->nics[i]);
        qemu_push_device(b, qemu_nic_device(def, &def->nics[i]));
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
