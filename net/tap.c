/* tap.c: a VM NIC's tap, made on /dev/net/tun by the agent (QEMU gets the
 * fds, never the device path), then put on its bridge over rtnetlink. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "net.h"
#include "net_internal.h"

static int tap_queue(const char *name, bool multi)
{
    struct ifreq ifr = { 0 };
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC), r;

    if (fd < 0)
        return -errno;
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (multi ? IFF_MULTI_QUEUE : 0);
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

void net_tap_close(net_tap *t)
{
    for (unsigned i = 0; i < t->nfds; i++)
        if (t->fds[i] >= 0)
            close(t->fds[i]);
    t->nfds = 0;
}

/* The name must be free: TUNSETIFF would otherwise attach to an existing
 * tap (another VM's, if it is persistent or shares the name). */
static int open_queues(net_nl *nl, const net_tap_spec *s, net_tap *t, char *err, size_t errlen)
{
    unsigned n = s->queues ? s->queues : 1;
    net_link l;
    int fd;

    if (net_link_get(nl, s->name, &l) == 0)
        return net_errmsg(err, errlen, -EEXIST, "tap %s: a link of that name exists already", s->name);
    for (unsigned i = 0; i < n; i++) {
        if ((fd = tap_queue(s->name, n > 1)) < 0)
            return net_errmsg(err, errlen, fd, "tap %s: /dev/net/tun: %s", s->name, strerror(-fd));
        t->fds[t->nfds++] = fd;
    }
    return 0;
}

static int check_spec(const net_tap_spec *s, char *err, size_t errlen)
{
    const char *problem;

    if ((problem = net_ifname_problem(s->name)))
        return net_errmsg(err, errlen, -EINVAL, "tap: '%.32s' %s", s->name ? s->name : "", problem);
    if ((problem = net_ifname_problem(s->bridge)))
        return net_errmsg(err, errlen, -EINVAL, "bridge: '%.32s' %s", s->bridge ? s->bridge : "", problem);
    if (s->queues > NET_QUEUES_MAX)
        return net_errmsg(err, errlen, -EINVAL, "queues: at most %d", NET_QUEUES_MAX);
    return 0;
}

static int join_bridge(net_nl *nl, const net_tap_spec *s, const net_link *br, net_tap *t, char *err,
                       size_t errlen)
{
    net_link tap;
    int r;

    t->mtu = s->mtu ? s->mtu : br->mtu;
    if ((r = net_link_get(nl, s->name, &tap)) < 0)
        return net_errmsg(err, errlen, r, "tap %s: gone after it was made: %s", s->name, strerror(-r));
    t->ifindex = tap.ifindex;
    if ((r = net_link_set_mtu(nl, tap.ifindex, t->mtu)) < 0)
        return net_errmsg(err, errlen, r, "tap %s: MTU %u: %s", s->name, t->mtu, strerror(-r));
    if ((r = net_link_set_master(nl, tap.ifindex, br->ifindex)) < 0)
        return net_errmsg(err, errlen, r, "tap %s: joining bridge %s: %s", s->name, s->bridge, strerror(-r));
    if ((s->vlan || s->ntrunks) &&
        (r = net_port_vlans_set(nl, tap.ifindex, s->vlan, s->trunks, s->ntrunks, err, errlen)) < 0)
        return r;
    if ((r = net_link_set_up(nl, tap.ifindex, true)) < 0)
        return net_errmsg(err, errlen, r, "tap %s: bringing it up: %s", s->name, strerror(-r));
    return 0;
}

int net_bridge_get(net_nl *nl, const char *name, net_link *ret, char *err, size_t errlen)
{
    const char *problem;
    int r;

    if ((problem = net_ifname_problem(name)))
        return net_errmsg(err, errlen, -EINVAL, "bridge: '%.32s' %s", name ? name : "", problem);
    if ((r = net_link_get(nl, name, ret)) < 0)
        return net_errmsg(err, errlen, r, "bridge: %s %s", name, r == -ENODEV ? "does not exist" : strerror(-r));
    if (strcmp(ret->kind, "bridge") != 0)
        return net_errmsg(err, errlen, -EINVAL, "bridge: %s is not a bridge (%s)", name,
                          ret->kind[0] ? ret->kind : "a plain device");
    return 0;
}

int net_tap_attach_to(net_nl *nl, const net_tap_spec *s, const net_link *br, net_tap *ret, char *err,
                      size_t errlen)
{
    net_tap t = { .nfds = 0 };
    int r;

    if ((r = check_spec(s, err, errlen)) < 0)
        return r;
    if ((r = open_queues(nl, s, &t, err, errlen)) < 0 || (r = join_bridge(nl, s, br, &t, err, errlen)) < 0) {
        net_tap_close(&t);    /* the tap goes with its last fd */
        return r;
    }
    *ret = t;
    return 0;
}

int net_tap_attach(net_nl *nl, const net_tap_spec *s, net_tap *ret, char *err, size_t errlen)
{
    net_link br;
    int r;

    if ((r = check_spec(s, err, errlen)) < 0 || (r = net_bridge_get(nl, s->bridge, &br, err, errlen)) < 0)
        return r;
    return net_tap_attach_to(nl, s, &br, ret, err, errlen);
}

int net_vhost_open(void)
{
    int fd = open("/dev/vhost-net", O_RDWR | O_CLOEXEC);

    return fd < 0 ? -errno : fd;
}
