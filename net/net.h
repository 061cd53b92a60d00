/* net.h: host networking for VMs, done directly: network links over
 * rtnetlink (bridges, taps' MTU, master and state, bridge VLANs), taps over
 * /dev/net/tun, and MAC addresses. PCI passthrough is in passthrough.h.
 *
 * Knows nothing of VMs. Every call is blocking (netlink and ioctls answer
 * at once, with a receive timeout as a bound): the agent runs them on its
 * thread pool. Functions return 0 or a negative errno; messages go into the
 * caller's err buffer and name what was refused. The library never prints. */
#ifndef AGENTD_NET_H
#define AGENTD_NET_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NET_MAC_LEN 6
#define NET_MAC_TEXT 18              /* "52:54:00:12:34:56" and a NUL */
#define NET_VLAN_MIN 1
#define NET_VLAN_MAX 4094
#define NET_TRUNKS_MAX 64
#define NET_QUEUES_MAX 16

/* ---- names and addresses ------------------------------------------------ */

/* A Linux interface name: 1 to 15 bytes, not "." or "..", no '/', ':' or
 * white space. NULL when valid, else why not. */
const char *net_ifname_problem(const char *name);

/* "52:54:00:ab:cd:ef" (either case, ':' or '-'); -EINVAL otherwise, and for
 * a multicast address (a NIC's address must be unicast). */
int net_mac_parse(const char *s, uint8_t mac[NET_MAC_LEN]);
void net_mac_format(const uint8_t mac[NET_MAC_LEN], char out[NET_MAC_TEXT]);
/* 52:54:00 (QEMU's locally administered prefix) and three random bytes. */
int net_mac_generate(uint8_t mac[NET_MAC_LEN]);

/* ---- links over rtnetlink ------------------------------------------------- */

typedef struct net_nl net_nl;

/* A NETLINK_ROUTE socket (close-on-exec, replies awaited at most
 * timeout_ms) in the caller's network namespace. */
int net_nl_open(int timeout_ms, net_nl **ret);
void net_nl_close(net_nl *nl);

typedef struct net_link {
    int ifindex;
    char name[IFNAMSIZ];
    char kind[16];                   /* "bridge", "tun", "veth", ...; "" for a plain device */
    unsigned mtu;
    bool up;                         /* administratively up */
    int master;                      /* the bridge's ifindex when enslaved, else 0 */
    uint8_t mac[NET_MAC_LEN];
} net_link;

/* -ENODEV when there is no such link. */
int net_link_get(net_nl *nl, const char *name, net_link *ret);
/* Every link of the namespace; *ret is malloc'd (free it). */
int net_link_list(net_nl *nl, net_link **ret, size_t *n);

int net_link_set_up(net_nl *nl, int ifindex, bool up);
int net_link_set_mtu(net_nl *nl, int ifindex, unsigned mtu);
/* master 0 releases it from its bridge. */
int net_link_set_master(net_nl *nl, int ifindex, int master);
int net_link_delete(net_nl *nl, int ifindex);

/* Creates a bridge (-EEXIST if the name is taken), with VLAN filtering
 * when asked, and brings it up. */
int net_bridge_create(net_nl *nl, const char *name, bool vlan_filtering, char *err, size_t errlen);

/* A port's VLANs on a VLAN-filtering bridge: pvid (1..4094) untagged, or
 * 0 for none, and the tagged trunk ids; the bridge's default (VLAN 1
 * untagged) is removed first. */
int net_port_vlans_set(net_nl *nl, int port, uint16_t pvid, const uint16_t *trunks, size_t ntrunks,
                       char *err, size_t errlen);

/* SR-IOV: sets virtual function vf of the physical function pf (its
 * netdev's ifindex) to mac (NULL: left as it is) and vlan (0: none), as
 * `ip link set PF vf N mac M vlan V` does. */
int net_vf_set(net_nl *nl, int pf, unsigned vf, const uint8_t *mac, uint16_t vlan, char *err, size_t errlen);

/* ---- taps ---------------------------------------------------------------------- */

/* What a VM's NIC needs on the host: its tap on a bridge. */
typedef struct net_tap_spec {
    const char *name;                /* the tap's name (net_ifname_problem) */
    const char *bridge;
    unsigned queues;                 /* 0 or 1: one queue; more: IFF_MULTI_QUEUE */
    unsigned mtu;                    /* 0: the bridge's */
    uint16_t vlan;                   /* 0: none (the bridge's default) */
    const uint16_t *trunks;
    size_t ntrunks;
} net_tap_spec;

typedef struct net_tap {
    int fds[NET_QUEUES_MAX];         /* one per queue, close-on-exec: for QEMU's netdev */
    unsigned nfds;
    int ifindex;
    unsigned mtu;
} net_tap;

/* Makes the tap (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, one fd per queue),
 * gives it the MTU, enslaves it to the bridge, sets its VLANs, brings it up.
 * The tap is not persistent: it lives while one of its fds is open, so it
 * goes with the QEMU that holds them, and a failure here (after which the
 * fds are closed) leaves nothing behind. -ENODEV naming the bridge when it
 * does not exist; -EEXIST when the tap name is in use. */
int net_tap_attach(net_nl *nl, const net_tap_spec *s, net_tap *ret, char *err, size_t errlen);
/* The same on a bridge already looked up with net_bridge_get (several
 * taps on one bridge, or tap names tried in turn, look it up once). */
int net_tap_attach_to(net_nl *nl, const net_tap_spec *s, const net_link *bridge, net_tap *ret, char *err,
                      size_t errlen);
/* The link called name, which must be a bridge: -ENODEV ("does not
 * exist"), -EINVAL when it is something else or the name is bad; err then
 * starts with "bridge: ". */
int net_bridge_get(net_nl *nl, const char *name, net_link *ret, char *err, size_t errlen);
void net_tap_close(net_tap *t);

/* An fd of /dev/vhost-net (close-on-exec) for QEMU's vhost, or -errno
 * (-ENOENT where the module is not loaded). */
int net_vhost_open(void);

#endif
