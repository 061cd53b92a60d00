/* qemu_argv.h: the QEMU command line for a VM, as an argv array.
 *
 * Never a shell string: every user-supplied value lands in its own argv
 * element, and values embedded in QEMU option strings have their commas
 * doubled (QEMU's escape) or are refused. */
#ifndef AGENTD_QEMU_ARGV_H
#define AGENTD_QEMU_ARGV_H

#include "vmdef.h"

typedef struct qemu_host {
    const char *binary;       /* e.g. "qemu-system-x86_64" */
    vm_accel accel;           /* the host default, KVM or TCG (never DEFAULT) */
    const char *run_as;       /* user QEMU drops to, or NULL to stay as the agent */
    int qemu_version;         /* major*10000 + minor*100 + micro, e.g. 70200 */
} qemu_host;

#define QEMU_CHAIN_MAX 16

/* One image of a disk's chain, as storage/ opened and checked it. */
typedef struct qemu_disk_node {
    const char *path;
    const char *format;       /* "qcow2" or "raw" */
    bool block_device;        /* host_device instead of file */
} qemu_disk_node;

/* A disk's chain, top first; depth 0 for a cdrom drive without media. */
typedef struct qemu_disk_chain {
    size_t depth;
    qemu_disk_node nodes[QEMU_CHAIN_MAX];
} qemu_disk_chain;

#define QEMU_NIC_QUEUES_MAX 16

/* The fds (numbers in QEMU's process) of a NIC's tap queues, and of
 * vhost-net for each queue (nvhost 0: no vhost). */
typedef struct qemu_nic_fds {
    int tap[QEMU_NIC_QUEUES_MAX];
    unsigned ntap;
    int vhost[QEMU_NIC_QUEUES_MAX];
    unsigned nvhost;
} qemu_nic_fds;

#define QEMU_VNC_PORT_BASE 5900

typedef struct qemu_paths {
    const char *qmp_socket;   /* QEMU listens here for the agent's QMP client */
    /* When > 2: a socket already listening on qmp_socket that QEMU inherits
     * as this fd number, so the agent can connect before QEMU is up; 0: QEMU
     * binds qmp_socket itself. */
    int qmp_fd;
    const char *serial_socket;/* the serial console chardev */
    const char *qga_socket;   /* the guest agent's channel, for a definition with guest-agent */
    const char *console_log;  /* everything the guest prints on its serial port */
    const char *pidfile;
    const qemu_disk_chain *disks;   /* one per disk of the definition */
    size_t ndisks;
    const qemu_nic_fds *nics;       /* one per NIC of the definition */
    size_t nnics;
    const char *vnc_listen;   /* an IP address: a VM with vnc gets its display there */
    unsigned vnc_port;        /* 5900 and up (QEMU takes a display number, port - 5900) */
    bool incoming;            /* -incoming defer: waits for a migration stream */
} qemu_paths;

/* Builds a NULL-terminated argv; free it with qemu_argv_free(). -EINVAL with a
 * message in err when a value cannot be expressed safely. */
int qemu_argv_build(const vm_def *def, const qemu_host *host, const qemu_paths *paths,
                    char ***ret_argv, char *err, size_t errlen);
void qemu_argv_free(char **argv);

#endif
