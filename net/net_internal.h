/* net_internal.h: what the files of net/ share. Internal to net/. */
#ifndef AGENTD_NET_INTERNAL_H
#define AGENTD_NET_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <libmnl/libmnl.h>

#include "net.h"

/* Formats the message into err (when there is room) and returns r. */
int net_errmsg(char *err, size_t errlen, int r, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* A request with an ifinfomsg header in buf (MNL_SOCKET_BUFFER_SIZE bytes). */
struct nlmsghdr *net_nl_request(net_nl *nl, char *buf, uint16_t type, uint16_t flags, uint8_t family,
                                int ifindex);
/* Sends it and runs cb (may be NULL) on each reply, until the
 * acknowledgement or the end of a dump; -errno from the kernel's error,
 * -ETIMEDOUT when it does not answer within the socket's timeout. */
int net_nl_talk(net_nl *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data);

/* ---- sysfs (passthrough.c, sriov.c) ---- */
struct net_sysfs;
/* root + the formatted path; -ENAMETOOLONG when it does not fit PATH_MAX. */
int net_sysfs_path(const struct net_sysfs *s, char *out, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int net_sysfs_write(const struct net_sysfs *s, const char *path, const char *value);
/* The file's text without its trailing newline. */
int net_sysfs_read(const char *path, char *out, size_t outlen);
int net_sysfs_read_uint(const char *path, unsigned long *ret);
/* The last component of the symlink's target ("ixgbe" for .../driver). */
int net_sysfs_link_name(const char *path, char *out, size_t outlen);

#endif
