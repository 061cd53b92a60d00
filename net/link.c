/* link.c: links over rtnetlink with libmnl: one request at a time, each
 * acknowledged (or dumped to NLMSG_DONE) before the next, with the socket's
 * receive timeout bounding every wait. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include "net.h"
#include "net_internal.h"

struct net_nl {
    struct mnl_socket *sock;
    unsigned portid;
    unsigned seq;
};

int net_nl_open(int timeout_ms, net_nl **ret)
{
    struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
    net_nl *nl = calloc(1, sizeof(*nl));
    int r;

    if (!nl)
        return -ENOMEM;
    if (!(nl->sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC))) {
        r = -errno;
        free(nl);
        return r;
    }
    if (mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0 ||
        setsockopt(mnl_socket_get_fd(nl->sock), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
        r = -errno;
        mnl_socket_close(nl->sock);
        free(nl);
        return r;
    }
    nl->portid = mnl_socket_get_portid(nl->sock);
    nl->seq = (unsigned)time(NULL);
    *ret = nl;
    return 0;
}

void net_nl_close(net_nl *nl)
{
    if (!nl)
        return;
    mnl_socket_close(nl->sock);
    free(nl);
}

/* ---- requests ------------------------------------------------------------ */

struct nlmsghdr *net_nl_request(net_nl *nl, char *buf, uint16_t type, uint16_t flags, uint8_t family,
                                int ifindex)
{
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    struct ifinfomsg *ifm;

    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | flags;
    nlh->nlmsg_seq = ++nl->seq;
    ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
    ifm->ifi_family = family;
    ifm->ifi_index = ifindex;
    return nlh;
}

/* Sends nlh and runs cb on every reply until the ack or NLMSG_DONE. */
int net_nl_talk(net_nl *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    unsigned seq = nlh->nlmsg_seq;
    ssize_t n;
    int r;

    if (mnl_socket_sendto(nl->sock, nlh, nlh->nlmsg_len) < 0)
        return -errno;
    for (;;) {
        if ((n = mnl_socket_recvfrom(nl->sock, buf, sizeof(buf))) < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
        r = mnl_cb_run(buf, (size_t)n, seq, nl->portid, cb, data);
        if (r < 0)
            return -errno;
        if (r == MNL_CB_STOP)
            return 0;
    }
}

/* ---- reading links --------------------------------------------------------------- */

static int linkinfo_attr(const struct nlattr *a, void *data)
{
    net_link *l = data;

    if (mnl_attr_get_type(a) == IFLA_INFO_KIND && mnl_attr_validate(a, MNL_TYPE_STRING) == 0)
        snprintf(l->kind, sizeof(l->kind), "%s", mnl_attr_get_str(a));
    return MNL_CB_OK;
}

static int link_attr(const struct nlattr *a, void *data)
{
    net_link *l = data;

    switch (mnl_attr_get_type(a)) {
    case IFLA_IFNAME:
        if (mnl_attr_validate(a, MNL_TYPE_STRING) == 0)
            snprintf(l->name, sizeof(l->name), "%s", mnl_attr_get_str(a));
        break;
    case IFLA_MTU:
        if (mnl_attr_validate(a, MNL_TYPE_U32) == 0)
            l->mtu = mnl_attr_get_u32(a);
        break;
    case IFLA_MASTER:
        if (mnl_attr_validate(a, MNL_TYPE_U32) == 0)
            l->master = (int)mnl_attr_get_u32(a);
        break;
    case IFLA_ADDRESS:
        if (mnl_attr_get_payload_len(a) == NET_MAC_LEN)
            memcpy(l->mac, mnl_attr_get_payload(a), NET_MAC_LEN);
        break;
    case IFLA_LINKINFO:
        mnl_attr_parse_nested(a, linkinfo_attr, l);
        break;
    }
    return MNL_CB_OK;
}

static int parse_link(const struct nlmsghdr *nlh, net_link *l)
{
    const struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);

    if (nlh->nlmsg_type != RTM_NEWLINK || nlh->nlmsg_len < NLMSG_LENGTH(sizeof(*ifm)))
        return -1;
    memset(l, 0, sizeof(*l));
    l->ifindex = ifm->ifi_index;
    l->up = (ifm->ifi_flags & IFF_UP) != 0;
    return mnl_attr_parse(nlh, sizeof(*ifm), link_attr, l) < 0 ? -1 : 0;
}

static int one_link(const struct nlmsghdr *nlh, void *data)
{
    parse_link(nlh, data);
    return MNL_CB_OK;
}

int net_link_get(net_nl *nl, const char *name, net_link *ret)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh;
    net_link l = { 0 };
    int r;

    if (net_ifname_problem(name))
        return -EINVAL;
    nlh = net_nl_request(nl, buf, RTM_GETLINK, NLM_F_ACK, AF_UNSPEC, 0);
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    if ((r = net_nl_talk(nl, nlh, one_link, &l)) < 0)
        return r;
    if (l.ifindex == 0)
        return -ENODEV;
    *ret = l;
    return 0;
}

typedef struct link_list {
    net_link *v;
    size_t n, cap;
    int err;
} link_list;

static int add_link(const struct nlmsghdr *nlh, void *data)
{
    link_list *ll = data;

    if (ll->n == ll->cap) {
        size_t cap = ll->cap ? ll->cap * 2 : 16;
        net_link *v = reallocarray(ll->v, cap, sizeof(*v));
        if (!v) {
            ll->err = -ENOMEM;
            return MNL_CB_OK;
        }
        ll->v = v;
        ll->cap = cap;
    }
    if (parse_link(nlh, &ll->v[ll->n]) == 0)
        ll->n++;
    return MNL_CB_OK;
}

int net_link_list(net_nl *nl, net_link **ret, size_t *n)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = net_nl_request(nl, buf, RTM_GETLINK, NLM_F_DUMP, AF_UNSPEC, 0);
    link_list ll = { 0 };
    int r = net_nl_talk(nl, nlh, add_link, &ll);

    if (r == 0)
        r = ll.err;
    if (r < 0) {
        free(ll.v);
        return r;
    }
    *ret = ll.v;
    *n = ll.n;
    return 0;
}

/* ---- changing links ---------------------------------------------------------------- */

int net_link_set_up(net_nl *nl, int ifindex, bool up)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = net_nl_request(nl, buf, RTM_NEWLINK, NLM_F_ACK, AF_UNSPEC, ifindex);
    struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);

    ifm->ifi_change = IFF_UP;
    ifm->ifi_flags = up ? IFF_UP : 0;
    return net_nl_talk(nl, nlh, NULL, NULL);
}

int net_link_set_mtu(net_nl *nl, int ifindex, unsigned mtu)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = net_nl_request(nl, buf, RTM_NEWLINK, NLM_F_ACK, AF_UNSPEC, ifindex);

    mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
    return net_nl_talk(nl, nlh, NULL, NULL);
}

int net_link_set_master(net_nl *nl, int ifindex, int master)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = net_nl_request(nl, buf, RTM_NEWLINK, NLM_F_ACK, AF_UNSPEC, ifindex);

    mnl_attr_put_u32(nlh, IFLA_MASTER, (uint32_t)master);
    return net_nl_talk(nl, nlh, NULL, NULL);
}

int net_link_delete(net_nl *nl, int ifindex)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = net_nl_request(nl, buf, RTM_DELLINK, NLM_F_ACK, AF_UNSPEC, ifindex);

    return net_nl_talk(nl, nlh, NULL, NULL);
}

int net_bridge_create(net_nl *nl, const char *name, bool vlan_filtering, char *err, size_t errlen)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh;
    struct nlattr *info, *data;
    const char *problem = net_ifname_problem(name);
    net_link l;
    int r;

    if (problem)
        return net_errmsg(err, errlen, -EINVAL, "bridge: '%.32s' %s", name, problem);
    nlh = net_nl_request(nl, buf, RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, AF_UNSPEC, 0);
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
    mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
    /* Only when asked: a kernel without VLAN filtering refuses the
     * attribute even set to 0. */
    if (vlan_filtering) {
        data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
        mnl_attr_put_u8(nlh, IFLA_BR_VLAN_FILTERING, 1);
        mnl_attr_nest_end(nlh, data);
    }
    mnl_attr_nest_end(nlh, info);
    if ((r = net_nl_talk(nl, nlh, NULL, NULL)) == -EOPNOTSUPP && vlan_filtering)
        return net_errmsg(err, errlen, r, "bridge %s: this kernel has no bridge VLAN filtering "
                          "(CONFIG_BRIDGE_VLAN_FILTERING)", name);
    if (r < 0)
        return net_errmsg(err, errlen, r, "bridge %s: cannot create it: %s", name, strerror(-r));
    if ((r = net_link_get(nl, name, &l)) < 0 || (r = net_link_set_up(nl, l.ifindex, true)) < 0)
        return net_errmsg(err, errlen, r, "bridge %s: cannot bring it up: %s", name, strerror(-r));
    return 0;
}

/* ---- bridge VLANs ------------------------------------------------------------------- */

static int port_vlan(net_nl *nl, int port, uint16_t type, uint16_t vid, uint16_t flags)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = net_nl_request(nl, buf, type, NLM_F_ACK, AF_BRIDGE, port);
    struct bridge_vlan_info v = { .flags = flags, .vid = vid };
    struct nlattr *spec = mnl_attr_nest_start(nlh, IFLA_AF_SPEC);

    mnl_attr_put(nlh, IFLA_BRIDGE_VLAN_INFO, sizeof(v), &v);
    mnl_attr_nest_end(nlh, spec);
    return net_nl_talk(nl, nlh, NULL, NULL);
}

static bool vlan_valid(unsigned v)
{
    return v >= NET_VLAN_MIN && v <= NET_VLAN_MAX;
}

int net_port_vlans_set(net_nl *nl, int port, uint16_t pvid, const uint16_t *trunks, size_t ntrunks,
                       char *err, size_t errlen)
{
    int r;

    if ((pvid && !vlan_valid(pvid)) || ntrunks > NET_TRUNKS_MAX)
        return net_errmsg(err, errlen, -EINVAL, "vlan: must be from %d to %d", NET_VLAN_MIN, NET_VLAN_MAX);
    for (size_t i = 0; i < ntrunks; i++)
        if (!vlan_valid(trunks[i]))
            return net_errmsg(err, errlen, -EINVAL, "trunks: %u is outside %d..%d", trunks[i], NET_VLAN_MIN,
                              NET_VLAN_MAX);
    /* The port came with the bridge's default pvid; it must not stay in
     * VLAN 1 as well. ENOENT: it was not there. */
    if ((r = port_vlan(nl, port, RTM_DELLINK, 1, 0)) < 0 && r != -ENOENT)
        return net_errmsg(err, errlen, r, "vlan: removing the default VLAN 1: %s", strerror(-r));
    if (pvid && (r = port_vlan(nl, port, RTM_SETLINK, pvid, BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED)) < 0)
        return net_errmsg(err, errlen, r, "vlan %u: %s (is VLAN filtering on for the bridge?)", pvid,
                          strerror(-r));
    for (size_t i = 0; i < ntrunks; i++)
        if ((r = port_vlan(nl, port, RTM_SETLINK, trunks[i], 0)) < 0)
            return net_errmsg(err, errlen, r, "trunks: VLAN %u: %s", trunks[i], strerror(-r));
    return 0;
}

/* ---- SR-IOV virtual functions ------------------------------------------------------ */

int net_vf_set(net_nl *nl, int pf, unsigned vf, const uint8_t *mac, uint16_t vlan, char *err, size_t errlen)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = net_nl_request(nl, buf, RTM_NEWLINK, NLM_F_ACK, AF_UNSPEC, pf);
    struct nlattr *list, *info;
    int r;

    if (vlan > NET_VLAN_MAX)
        return net_errmsg(err, errlen, -EINVAL, "vlan: must be from %d to %d", NET_VLAN_MIN, NET_VLAN_MAX);
    list = mnl_attr_nest_start(nlh, IFLA_VFINFO_LIST);
    info = mnl_attr_nest_start(nlh, IFLA_VF_INFO);
    if (mac) {
        struct ifla_vf_mac m = { .vf = vf };
        memcpy(m.mac, mac, NET_MAC_LEN);
        mnl_attr_put(nlh, IFLA_VF_MAC, sizeof(m), &m);
    }
    {
        struct ifla_vf_vlan v = { .vf = vf, .vlan = vlan, .qos = 0 };
        mnl_attr_put(nlh, IFLA_VF_VLAN, sizeof(v), &v);
    }
    mnl_attr_nest_end(nlh, info);
    mnl_attr_nest_end(nlh, list);
    if ((r = net_nl_talk(nl, nlh, NULL, NULL)) < 0)
        return net_errmsg(err, errlen, r, "VF %u of link %d: %s%s", vf, pf, strerror(-r),
                          r == -EOPNOTSUPP || r == -EINVAL ? " (is it an SR-IOV physical function?)" : "");
    return 0;
}
