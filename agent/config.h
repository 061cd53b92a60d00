/* config.h: host configuration: one key = value file, flags override it.
 *
 * Every path the daemon touches comes from here, so tests run the whole
 * daemon in a temporary directory. */
#ifndef AGENTD_CONFIG_H
#define AGENTD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

typedef enum agent_accel {
    AGENT_ACCEL_AUTO,
    AGENT_ACCEL_KVM,
    AGENT_ACCEL_TCG,
} agent_accel;

typedef struct agent_config {
    char *config_file;
    char *state_dir;       /* definitions and logs */
    char *run_dir;         /* sockets, pidfiles, runtime records */
    char *socket_path;
    char *socket_group;    /* may connect (mode 0660); NULL: the agent's group */
    char *admin_group;     /* may run state-changing commands; NULL: root and the agent's uid only */
    char *qemu_binary;
    char *qemu_user;       /* QEMU drops to this user; NULL: stays as the agent */
    char *log_file;        /* stderr goes here when set */
    char *default_pool;    /* location of the pool "default" made at first start;
                            * NULL: dir://STATE_DIR/images */
    char *mount_nfs;       /* mounts an nfs pool: HELPER SERVER:/EXPORT DIR */
    char *umount;          /* unmounts it: HELPER DIR */
    char *vnc_listen;      /* VNC displays bind here (an IP address) */
    uint32_t vnc_port_min, vnc_port_max;   /* the host's VNC range, from 5900 */
    char *migration_address;            /* incoming live migrations listen here (an IP address) */
    uint32_t migration_port_min, migration_port_max;
    uint32_t migration_incoming_timeout_s;   /* no stream by then: the incoming QEMU goes */
    char *cgroup_parent;   /* each QEMU's cgroup is PARENT/vm-NAME; NULL: cgroups off */
    char *sysfs_root;      /* where sysfs is for passthrough; NULL: "/" (tests: a fake tree) */
    char attach_cache[16]; /* the cache of a disk attached to a running VM that names none */
    agent_accel accel;
    log_level log_level;
    bool foreground;
    bool create_bridges;   /* a NIC's missing bridge is made (no VLAN filtering unless a NIC needs it) */
    uint32_t qmp_timeout_ms;       /* each QMP command */
    uint32_t start_timeout_ms;     /* QEMU launched to QMP ready */
    uint32_t stop_timeout_ms;      /* each step of destroy: quit, SIGTERM, SIGKILL */
    uint32_t shutdown_timeout_s;   /* vm-shutdown default */
    uint32_t mount_timeout_ms;     /* each mount or unmount of a pool */
    uint32_t console_log_max_kib;  /* a VM's console log is cut back past this; 0: never */
} agent_config;

void config_init_defaults(agent_config *c);
/* Reads the file; a missing file is an error only if it was named explicitly.
 * err gets "FILE:LINE: message". */
int config_load_file(agent_config *c, const char *path, bool must_exist, char *err, size_t errlen);
/* Applies one setting by its file key ("state-dir", "accel", ...). */
int config_set(agent_config *c, const char *key, const char *value, char *err, size_t errlen);
void config_free(agent_config *c);
const char *config_accel_name(agent_accel a);

#endif
