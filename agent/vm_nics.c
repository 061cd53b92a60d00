/* vm_nics.c: taps and vhost-net fds for a VM's start. */
#include "vm_nics.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define NL_TIMEOUT_MS 5000
#define TAP_INDEX_MAX 100     /* "vn" + 8 + "-" + 2 digits: 13 of the 15 characters */

void vm_nic_tap_name(const vm_def *def, size_t i, char out[IFNAMSIZ])
{
    snprintf(out, IFNAMSIZ, "vn%.8s-%zu", def->uuid, i);
}

static bool any_vlans(const vm_def *def, const char *bridge)
{
    for (size_t i = 0; i < def->nnics; i++)
        if (!strcmp(def->nics[i].bridge, bridge) && (def->nics[i].vlan || def->nics[i].ntrunks))
            return true;
    return false;
}

/* The NIC's bridge, made when it is missing and the host allows it. */
static int ensure_bridge(net_nl *nl, const vm_def *def, size_t i, bool create, net_link *br, char *err,
                         size_t errlen)
{
    const char *name = def->nics[i].bridge;
    char msg[256];
    int r;

    if ((r = net_bridge_get(nl, name, br, msg, sizeof(msg))) == 0)
        return 0;
    if (r != -ENODEV) {
        snprintf(err, errlen, "nics[%zu].%s", i, msg);     /* msg: "bridge: ..." */
        return r;
    }
    if (!create) {
        snprintf(err, errlen, "nics[%zu].bridge: %s does not exist (and create-bridges is off)", i, name);
        return -ENODEV;
    }
    if ((r = net_bridge_create(nl, name, any_vlans(def, name), msg, sizeof(msg))) < 0 && r != -EEXIST) {
        snprintf(err, errlen, "nics[%zu].bridge: %s", i, msg);
        return r;
    }
    if ((r = net_bridge_get(nl, name, br, msg, sizeof(msg))) < 0)
        snprintf(err, errlen, "nics[%zu].%s", i, msg);
    return r;
}

/* vhost-net for each queue of a virtio NIC; none at all where the host
 * has no /dev/vhost-net (QEMU then moves packets itself). */
static void open_vhost(const vm_nic *n, vm_nic_fds *f, size_t i)
{
    f->child[i].nvhost = 0;
    if (n->model != VM_NIC_VIRTIO)
        return;
    for (unsigned q = 0; q < n->queues; q++) {
        int fd = net_vhost_open();
        if (fd < 0) {
            for (unsigned k = 0; k < q; k++)
                close(f->vhost[i][k]);
            return;
        }
        f->vhost[i][q] = fd;
    }
    f->child[i].nvhost = n->queues;
}

static void number_fds(vm_nic_fds *f, size_t i, int first_fd)
{
    qemu_nic_fds *c = &f->child[i];

    c->ntap = f->taps[i].nfds;
    for (unsigned q = 0; q < c->ntap; q++) {
        c->tap[q] = first_fd + (int)f->nextra;
        f->extra[f->nextra++] = f->taps[i].fds[q];
    }
    for (unsigned q = 0; q < c->nvhost; q++) {
        c->vhost[q] = first_fd + (int)f->nextra;
        f->extra[f->nextra++] = f->vhost[i][q];
    }
}

static int open_nic(net_nl *nl, const vm_def *def, size_t i, bool create, int first_fd, vm_nic_fds *f,
                    char *err, size_t errlen)
{
    const vm_nic *n = &def->nics[i];
    char tap[IFNAMSIZ], msg[256] = "";
    net_tap_spec s = { .name = tap, .bridge = n->bridge, .queues = n->queues, .vlan = n->vlan,
                       .trunks = n->trunks, .ntrunks = n->ntrunks };
    net_link br;
    int r;

    vm_nic_tap_name(def, i, tap);
    if ((r = ensure_bridge(nl, def, i, create, &br, err, errlen)) < 0)
        return r;
    if ((r = net_tap_attach_to(nl, &s, &br, &f->taps[i], msg, sizeof(msg))) < 0) {
        snprintf(err, errlen, "nics[%zu]: %s", i, msg);
        return r;
    }
    f->nnics = i + 1;
    open_vhost(n, f, i);
    number_fds(f, i, first_fd);
    return 0;
}

int vm_nics_open(const vm_def *def, bool create_bridges, int first_fd, vm_nic_fds *f, char *err,
                 size_t errlen)
{
    net_nl *nl = NULL;
    int r = 0;

    memset(f, 0, sizeof(*f));
    if (def->nnics == 0)
        return 0;
    if ((r = net_nl_open(NL_TIMEOUT_MS, &nl)) < 0) {
        snprintf(err, errlen, "nics: netlink: %s", strerror(-r));
        return r;
    }
    for (size_t i = 0; i < def->nnics && r == 0; i++)
        r = open_nic(nl, def, i, create_bridges, first_fd, f, err, errlen);
    net_nl_close(nl);
    if (r < 0)
        vm_nics_close(f);
    return r;
}

/* A NIC added to a running VM: its tap takes the first index from i up
 * whose name is free (a NIC detached earlier may have left a gap below a
 * tap still in use). */
int vm_nics_open_one(const vm_def *def, size_t i, bool create_bridges, vm_nic_fds *f, char *err, size_t errlen)
{
    const vm_nic *n = &def->nics[i];
    char tap[IFNAMSIZ], msg[256] = "";
    net_tap_spec s = { .name = tap, .bridge = n->bridge, .queues = n->queues, .vlan = n->vlan,
                       .trunks = n->trunks, .ntrunks = n->ntrunks };
    net_nl *nl = NULL;
    net_link br;
    int r;

    memset(f, 0, sizeof(*f));
    if ((r = net_nl_open(NL_TIMEOUT_MS, &nl)) < 0) {
        snprintf(err, errlen, "nic: netlink: %s", strerror(-r));
        return r;
    }
    if ((r = ensure_bridge(nl, def, i, create_bridges, &br, err, errlen)) == 0) {
        r = -EEXIST;
        for (size_t k = i; k < TAP_INDEX_MAX && r == -EEXIST; k++) {
            vm_nic_tap_name(def, k, tap);
            r = net_tap_attach_to(nl, &s, &br, &f->taps[0], msg, sizeof(msg));
        }
        if (r < 0)
            snprintf(err, errlen, "nics[%zu]: %s", i, msg);
    }
    net_nl_close(nl);
    if (r < 0)
        return r;
    f->nnics = 1;
    open_vhost(n, f, 0);
    return 0;
}

void vm_nics_close(vm_nic_fds *f)
{
    for (size_t i = 0; i < f->nnics; i++) {
        net_tap_close(&f->taps[i]);
        for (unsigned q = 0; q < f->child[i].nvhost; q++)
            close(f->vhost[i][q]);
        f->child[i].nvhost = 0;
    }
    f->nnics = 0;
    f->nextra = 0;
}
