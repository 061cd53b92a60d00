/* config.c: the config file parser and the settings table it shares with
 * the command-line flags (a flag --state-dir sets the key state-dir). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_LINE_MAX 4096

typedef int (*setter)(agent_config *c, const char *value, char *err, size_t errlen);

static int set_string(char **field, const char *value)
{
    char *copy = strdup(value);

    if (!copy)
        return -ENOMEM;
    free(*field);
    *field = copy;
    return 0;
}

static int parse_u32(const char *value, uint32_t min, uint32_t max, uint32_t *ret)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(value, &end, 10);
    if (errno || end == value || *end || value[0] == '-' || v < min || v > max)
        return -EINVAL;
    *ret = (uint32_t)v;
    return 0;
}

#define STRING_SETTER(fn, member)                                              \
    static int fn(agent_config *c, const char *v, char *err, size_t errlen)     \
    {                                                                          \
        (void)err, (void)errlen;                                               \
        return set_string(&c->member, v);                                      \
    }

STRING_SETTER(set_state_dir, state_dir)
STRING_SETTER(set_run_dir, run_dir)
STRING_SETTER(set_socket, socket_path)
STRING_SETTER(set_socket_group, socket_group)
STRING_SETTER(set_admin_group, admin_group)
STRING_SETTER(set_qemu, qemu_binary)
STRING_SETTER(set_qemu_user, qemu_user)
STRING_SETTER(set_log_file, log_file)
STRING_SETTER(set_default_pool, default_pool)
STRING_SETTER(set_mount_nfs, mount_nfs)
STRING_SETTER(set_umount, umount)
STRING_SETTER(set_sysfs_root, sysfs_root)
STRING_SETTER(set_vnc_listen, vnc_listen)
STRING_SETTER(set_migration_address, migration_address)

/* "none" turns per-VM cgroups off. */
static int set_cgroup_parent(agent_config *c, const char *v, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    if (!strcmp(v, "none")) {
        free(c->cgroup_parent);
        c->cgroup_parent = NULL;
        return 0;
    }
    return set_string(&c->cgroup_parent, v);
}

/* OpenNebula's DEFAULT_ATTACH_CACHE. */
static int set_attach_cache(agent_config *c, const char *v, char *err, size_t errlen)
{
    static const char *const caches[] = { "none", "writeback", "writethrough", "directsync", "unsafe" };

    for (size_t i = 0; i < sizeof(caches) / sizeof(caches[0]); i++)
        if (!strcmp(v, caches[i])) {
            snprintf(c->attach_cache, sizeof(c->attach_cache), "%s", v);
            return 0;
        }
    snprintf(err, errlen, "attach-cache: must be none, writeback, writethrough, directsync or unsafe, not '%s'", v);
    return -EINVAL;
}

static int set_accel(agent_config *c, const char *v, char *err, size_t errlen)
{
    if (strcmp(v, "auto") == 0)
        c->accel = AGENT_ACCEL_AUTO;
    else if (strcmp(v, "kvm") == 0)
        c->accel = AGENT_ACCEL_KVM;
    else if (strcmp(v, "tcg") == 0)
        c->accel = AGENT_ACCEL_TCG;
    else {
        snprintf(err, errlen, "accel: must be kvm, tcg or auto, not '%s'", v);
        return -EINVAL;
    }
    return 0;
}

static int set_create_bridges(agent_config *c, const char *v, char *err, size_t errlen)
{
    if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1"))
        c->create_bridges = true;
    else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0"))
        c->create_bridges = false;
    else {
        snprintf(err, errlen, "create-bridges: must be yes or no, not '%s'", v);
        return -EINVAL;
    }
    return 0;
}

static int set_log_level(agent_config *c, const char *v, char *err, size_t errlen)
{
    if (log_parse_level(v, &c->log_level) < 0) {
        snprintf(err, errlen, "log-level: must be err, warning, notice, info or debug");
        return -EINVAL;
    }
    return 0;
}

#define U32_SETTER(fn, member, key, min, max)                                  \
    static int fn(agent_config *c, const char *v, char *err, size_t errlen)     \
    {                                                                          \
        if (parse_u32(v, min, max, &c->member) == 0)                           \
            return 0;                                                          \
        snprintf(err, errlen, "%s: must be a whole number from %u to %u", key, \
                 (unsigned)(min), (unsigned)(max));                            \
        return -EINVAL;                                                        \
    }

U32_SETTER(set_qmp_timeout, qmp_timeout_ms, "qmp-timeout-ms", 10, 600000)
U32_SETTER(set_start_timeout, start_timeout_ms, "start-timeout-ms", 100, 600000)
U32_SETTER(set_stop_timeout, stop_timeout_ms, "stop-timeout-ms", 10, 600000)
U32_SETTER(set_shutdown_timeout, shutdown_timeout_s, "shutdown-timeout", 1, 86400)
U32_SETTER(set_mount_timeout, mount_timeout_ms, "mount-timeout-ms", 100, 600000)
U32_SETTER(set_vnc_port_min, vnc_port_min, "vnc-port-min", 5900, 65535)
U32_SETTER(set_vnc_port_max, vnc_port_max, "vnc-port-max", 5900, 65535)
U32_SETTER(set_migration_port_min, migration_port_min, "migration-port-min", 1024, 65535)
U32_SETTER(set_migration_port_max, migration_port_max, "migration-port-max", 1024, 65535)
U32_SETTER(set_migration_incoming_timeout, migration_incoming_timeout_s, "migration-incoming-timeout", 1, 86400)
U32_SETTER(set_console_log_max, console_log_max_kib, "console-log-max-kib", 0, 4194304)

static const struct {
    const char *key;
    setter fn;
} settings[] = {
    { "state-dir", set_state_dir },
    { "run-dir", set_run_dir },
    { "socket", set_socket },
    { "socket-group", set_socket_group },
    { "admin-group", set_admin_group },
    { "qemu", set_qemu },
    { "qemu-user", set_qemu_user },
    { "log-file", set_log_file },
    { "accel", set_accel },
    { "log-level", set_log_level },
    { "create-bridges", set_create_bridges },
    { "qmp-timeout-ms", set_qmp_timeout },
    { "start-timeout-ms", set_start_timeout },
    { "stop-timeout-ms", set_stop_timeout },
    { "shutdown-timeout", set_shutdown_timeout },
    { "default-pool", set_default_pool },
    { "mount-nfs", set_mount_nfs },
    { "umount", set_umount },
    { "sysfs-root", set_sysfs_root },
    { "cgroup-parent", set_cgroup_parent },
    { "attach-cache", set_attach_cache },
    { "console-log-max-kib", set_console_log_max },
    { "vnc-listen", set_vnc_listen },
    { "vnc-port-min", set_vnc_port_min },
    { "vnc-port-max", set_vnc_port_max },
    { "mount-timeout-ms", set_mount_timeout },
    { "migration-address", set_migration_address },
    { "migration-port-min", set_migration_port_min },
    { "migration-port-max", set_migration_port_max },
    { "migration-incoming-timeout", set_migration_incoming_timeout },
};

int config_set(agent_config *c, const char *key, const char *value, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
        if (strcmp(settings[i].key, key) == 0) {
            int r = settings[i].fn(c, value, err, errlen);
            if (r == -ENOMEM)
                snprintf(err, errlen, "out of memory");
            return r;
        }
    }
    snprintf(err, errlen, "unknown setting '%s'", key);
    return -EINVAL;
}

void config_init_defaults(agent_config *c)
{
    memset(c, 0, sizeof(*c));
    c->state_dir = strdup("/var/lib/agentd");
    c->run_dir = strdup("/run/agentd");
    c->socket_path = strdup("/run/agentd/agentd.sock");
    c->qemu_binary = strdup("qemu-system-x86_64");
    c->accel = AGENT_ACCEL_AUTO;
    c->log_level = LOG_LEVEL_INFO;
    c->qmp_timeout_ms = 10000;
    c->start_timeout_ms = 30000;
    c->stop_timeout_ms = 5000;
    c->shutdown_timeout_s = 120;
    c->mount_nfs = strdup("/sbin/mount.nfs");
    c->umount = strdup("/bin/umount");
    c->mount_timeout_ms = 60000;
    c->vnc_listen = strdup("127.0.0.1");
    c->cgroup_parent = strdup("agentd");
    snprintf(c->attach_cache, sizeof(c->attach_cache), "none");
    c->console_log_max_kib = 1024;
    c->vnc_port_min = 5900;
    c->vnc_port_max = 5999;
    c->migration_address = strdup("127.0.0.1");
    c->migration_port_min = 49152;
    c->migration_port_max = 49215;
    c->migration_incoming_timeout_s = 300;
}

static char *trim(char *s)
{
    char *end;

    while (*s == ' ' || *s == '\t')
        s++;
    end = s + strlen(s);
    while (end > s && strchr(" \t\r\n", end[-1]))
        *--end = '\0';
    return s;
}

static int parse_line(agent_config *c, char *line, char *err, size_t errlen)
{
    char *s = trim(line), *eq;

    if (*s == '\0' || *s == '#')
        return 0;
    eq = strchr(s, '=');
    if (!eq) {
        snprintf(err, errlen, "expected 'key = value'");
        return -EINVAL;
    }
    *eq = '\0';
    return config_set(c, trim(s), trim(eq + 1), err, errlen);
}

int config_load_file(agent_config *c, const char *path, bool must_exist, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    char line[CONFIG_LINE_MAX], msg[512];
    int lineno = 0, r = 0;

    if (!f) {
        if (errno == ENOENT && !must_exist)
            return 0;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -errno;
    }
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(err, errlen, "%s:%d: line too long", path, lineno);
            r = -EINVAL;
            break;
        }
        if ((r = parse_line(c, line, msg, sizeof(msg))) < 0) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, msg);
            break;
        }
    }
    fclose(f);
    return r;
}

void config_free(agent_config *c)
{
    free(c->config_file);
    free(c->state_dir);
    free(c->run_dir);
    free(c->socket_path);
    free(c->socket_group);
    free(c->admin_group);
    free(c->qemu_binary);
    free(c->qemu_user);
    free(c->log_file);
    free(c->default_pool);
    free(c->mount_nfs);
    free(c->umount);
    free(c->sysfs_root);
    free(c->vnc_listen);
    free(c->migration_address);
    free(c->cgroup_parent);
    memset(c, 0, sizeof(*c));
}

const char *config_accel_name(agent_accel a)
{
    switch (a) {
    case AGENT_ACCEL_KVM: return "kvm";
    case AGENT_ACCEL_TCG: return "tcg";
    default: return "auto";
    }
}
