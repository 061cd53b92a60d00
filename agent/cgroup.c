/* cgroup.c: per-VM cgroups on v1 and v2 hosts; see cgroup.h. */
#include "cgroup.h"
#include "errbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CG_NAME_MAX 64
#define CG_TEXT_MAX 4096

void (*cg_test_after_mkdir)(const char *dir);
void (*cg_test_before_rmdir)(const char *dir);

static int pathf(char out[PATH_MAX], const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int pathf(char out[PATH_MAX], const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(out, PATH_MAX, fmt, ap);
    va_end(ap);
    return n < 0 ? -EINVAL : n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

static bool name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/* One path component of ours: never "." or "..", nor a hidden name, so no
 * name can climb out of the hierarchy or collide with the kernel's files. */
static bool valid_component(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max || s[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!name_char(s[i]))
            return false;
    return true;
}

static int check_name(const char *name, char *err, size_t errlen)
{
    if (!name || !valid_component(name, strlen(name), CG_NAME_MAX))
        return err_format(err, errlen, -EINVAL,
                    "name: must be 1..%d characters of A-Z a-z 0-9 . _ -, not starting with '.'", CG_NAME_MAX);
    return 0;
}

static int check_parent(const char *parent, char *err, size_t errlen)
{
    const char *s = parent;

    if (!parent || !*parent || strlen(parent) >= PATH_MAX)
        return err_format(err, errlen, -EINVAL, "parent: must not be empty");
    for (;;) {
        size_t len = strcspn(s, "/");

        if (!valid_component(s, len, NAME_MAX))
            return err_format(err, errlen, -EINVAL,
                        "parent: '/'-separated names of A-Z a-z 0-9 . _ -, none starting with '.'");
        if (!s[len])
            return 0;
        s += len + 1;
    }
}

/* cgroup files take a value in one write(): the kernel parses each write on
 * its own, so a value split in two would be two (wrong) values. O_TRUNC is
 * ignored by cgroupfs and keeps a fake tree's regular files exact. */
static int write_value(const char *path, const char *value, char *err, size_t errlen)
{
    size_t len = strlen(value);
    ssize_t n;
    int fd, r = 0;

    if ((fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)) < 0)
        return err_format(err, errlen, -errno, "%s: %s", path, strerror(errno));
    n = write(fd, value, len);
    if (n < 0)
        r = err_format(err, errlen, -errno, "%s: writing %s: %s", path, value, strerror(errno));
    else if ((size_t)n != len)
        r = err_format(err, errlen, -EIO, "%s: writing %s: short write (%zd of %zu bytes)", path, value, n, len);
    close(fd);
    return r;
}

/* Reads a small file whole into buf (NUL-terminated); -EFBIG if it does not
 * fit, since a truncated controller list would be misread. */
static int read_text(const char *path, char *buf, size_t size)
{
    size_t len = 0;
    ssize_t n;
    int fd, r = 0;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return -errno;
    while ((n = read(fd, buf + len, size - 1 - len)) > 0)
        if ((len += (size_t)n) == size - 1) {
            r = -EFBIG;
            break;
        }
    if (n < 0)
        r = -errno;
    close(fd);
    buf[len] = '\0';
    return r;
}

static bool has_word(const char *text, const char *word)
{
    size_t wlen = strlen(word);

    for (const char *s = text; *s;) {
        size_t len;

        s += strspn(s, " \t\n,");
        len = strcspn(s, " \t\n,");
        if (len == wlen && !memcmp(s, word, len))
            return true;
        s += len;
    }
    return false;
}

/* /proc/self/mounts writes space, tab, newline and backslash as \ooo. */
static void unescape_octal(char *s)
{
    char *out = s;

    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' &&
            s[3] <= '7') {
            *out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 3;
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
}

typedef struct cg_mounts {
    char cpu[PATH_MAX], memory[PATH_MAX], unified[PATH_MAX];
} cg_mounts;

/* The first mount of each kind wins, as later ones are bind mounts of a
 * part of the same hierarchy. */
static void note_mount(cg_mounts *m, char *line)
{
    char *save, *dir, *type, *opts;

    if (!strtok_r(line, " \n", &save) || !(dir = strtok_r(NULL, " \n", &save)) ||
        !(type = strtok_r(NULL, " \n", &save)) || !(opts = strtok_r(NULL, " \n", &save)))
        return;
    unescape_octal(dir);
    if (strlen(dir) >= PATH_MAX)
        return;
    if (!strcmp(type, "cgroup")) {
        if (!m->cpu[0] && has_word(opts, "cpu"))
            strcpy(m->cpu, dir);
        if (!m->memory[0] && has_word(opts, "memory"))
            strcpy(m->memory, dir);
    } else if (!strcmp(type, "cgroup2") && !m->unified[0]) {
        strcpy(m->unified, dir);
    }
}

static int read_mounts(const char *path, cg_mounts *m, char *err, size_t errlen)
{
    char *line = NULL;
    size_t cap = 0;
    FILE *f;
    int r = 0;

    if (!(f = fopen(path, "re")))
        return err_format(err, errlen, -errno, "%s: %s", path, strerror(errno));
    errno = 0;
    while (getline(&line, &cap, f) >= 0)
        note_mount(m, line);
    if (ferror(f))
        r = err_format(err, errlen, errno ? -errno : -EIO, "%s: reading: %s", path, strerror(errno ? errno : EIO));
    free(line);
    fclose(f);
    return r;
}

static int add_hierarchy(cg_host *h, const char *prefix, const char *mnt, unsigned controllers, char *err,
                         size_t errlen)
{
    cg_hierarchy *hy = &h->h[h->n];

    if (pathf(hy->root, "%s%s", prefix ? prefix : "", mnt) < 0)
        return err_format(err, errlen, -ENAMETOOLONG, "%s%s: path too long", prefix ? prefix : "", mnt);
    hy->controllers = controllers;
    h->n++;
    return 0;
}

static int pick_v1(cg_host *h, const cg_mounts *m, const char *prefix, char *err, size_t errlen)
{
    int r = 0;

    h->mode = CG_V1;
    if (m->cpu[0] && m->memory[0] && !strcmp(m->cpu, m->memory))
        return add_hierarchy(h, prefix, m->cpu, CG_CPU | CG_MEMORY, err, errlen);
    if (m->cpu[0])
        r = add_hierarchy(h, prefix, m->cpu, CG_CPU, err, errlen);
    if (r == 0 && m->memory[0])
        r = add_hierarchy(h, prefix, m->memory, CG_MEMORY, err, errlen);
    return r;
}

/* v2 is usable only when its root offers both controllers: on a hybrid host
 * the cgroup2 mount exists but they are bound to v1. */
static int pick_v2(cg_host *h, const cg_mounts *m, const char *prefix, char *err, size_t errlen)
{
    char path[PATH_MAX], text[CG_TEXT_MAX];
    int r;

    if ((r = add_hierarchy(h, prefix, m->unified, CG_CPU | CG_MEMORY, err, errlen)) < 0)
        return r;
    if (pathf(path, "%s/cgroup.controllers", h->h[0].root) < 0)
        return err_format(err, errlen, -ENAMETOOLONG, "%s/cgroup.controllers: path too long", h->h[0].root);
    if ((r = read_text(path, text, sizeof(text))) < 0)
        return err_format(err, errlen, r, "%s: %s", path, strerror(-r));
    if (has_word(text, "cpu") && has_word(text, "memory"))
        h->mode = CG_V2;
    else
        h->n = 0;
    return 0;
}

int cg_host_detect(const char *mounts_path, const char *sysfs_cgroup_root, const char *parent, cg_host *ret,
                   char *err, size_t errlen)
{
    cg_mounts m = {.cpu = ""};
    cg_host h = {.mode = CG_NONE};
    int r;

    if ((r = check_parent(parent, err, errlen)) < 0)
        return r;
    strcpy(h.parent, parent);
    if ((r = read_mounts(mounts_path ? mounts_path : "/proc/self/mounts", &m, err, errlen)) < 0)
        return r;
    if (m.cpu[0] || m.memory[0])
        r = pick_v1(&h, &m, sysfs_cgroup_root, err, errlen);
    else if (m.unified[0])
        r = pick_v2(&h, &m, sysfs_cgroup_root, err, errlen);
    if (r < 0)
        return r;
    *ret = h;
    return 0;
}

/* Appends "/" and len bytes of seg to dir. */
static int append(char dir[PATH_MAX], const char *seg, size_t len, char *err, size_t errlen)
{
    size_t n = strlen(dir);

    if (n + 1 + len >= PATH_MAX)
        return err_format(err, errlen, -ENAMETOOLONG, "%s/%.*s: path too long", dir, (int)len, seg);
    dir[n] = '/';
    memcpy(dir + n + 1, seg, len);
    dir[n + 1 + len] = '\0';
    return 0;
}

static int vm_dir(const cg_host *h, const cg_hierarchy *hy, const char *vm_name, char out[PATH_MAX], char *err,
                  size_t errlen)
{
    if (pathf(out, "%s/%s/vm-%s", hy->root, h->parent, vm_name) < 0)
        return err_format(err, errlen, -ENAMETOOLONG, "%s/%s/vm-%s: path too long", hy->root, h->parent, vm_name);
    return 0;
}

/* An existing directory is a group left by an earlier run (or a parent
 * shared with other VMs): used as it is. */
static int make_dir(const char *dir, char *err, size_t errlen)
{
    if (mkdir(dir, 0755) == 0) {
        if (cg_test_after_mkdir)
            cg_test_after_mkdir(dir);
        return 0;
    }
    if (errno == EEXIST)
        return 0;
    return err_format(err, errlen, -errno, "%s: mkdir: %s", dir, strerror(errno));
}

/* A v2 group gets cpu.weight and memory.max only when its parent enables
 * the controllers for its children. The write is refused when the group
 * holds processes (EBUSY) or lies above a delegation boundary; that is
 * fine when whoever owns it has enabled them already. */
static int enable_controllers(const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX], text[CG_TEXT_MAX], why[PATH_MAX + 128];
    int r;

    if (pathf(path, "%s/cgroup.subtree_control", dir) < 0)
        return err_format(err, errlen, -ENAMETOOLONG, "%s/cgroup.subtree_control: path too long", dir);
    if ((r = write_value(path, "+cpu +memory", why, sizeof(why))) == 0)
        return 0;
    if (read_text(path, text, sizeof(text)) == 0 && has_word(text, "cpu") && has_word(text, "memory"))
        return 0;
    return err_format(err, errlen, r, "%s", why);
}

static int write_limits(cg_mode mode, unsigned controllers, const char *dir, const cg_limits *lim, char *err,
                        size_t errlen)
{
    uint32_t weight = lim->cpu_weight ? lim->cpu_weight : 100;
    char path[PATH_MAX], value[32];
    int r;

    if (controllers & CG_CPU) {
        if (mode == CG_V1)
            snprintf(value, sizeof(value), "%" PRIu64, cg_shares_from_weight(weight));
        else
            snprintf(value, sizeof(value), "%" PRIu32, weight);
        if (pathf(path, "%s/%s", dir, mode == CG_V1 ? "cpu.shares" : "cpu.weight") < 0)
            return err_format(err, errlen, -ENAMETOOLONG, "%s: path too long", dir);
        if ((r = write_value(path, value, err, errlen)) < 0)
            return r;
    }
    if (controllers & CG_MEMORY) {
        /* "-1" and "max" lift a limit a reused group may still have. */
        if (lim->memory_max)
            snprintf(value, sizeof(value), "%" PRIu64, lim->memory_max);
        else
            snprintf(value, sizeof(value), "%s", mode == CG_V1 ? "-1" : "max");
        if (pathf(path, "%s/%s", dir, mode == CG_V1 ? "memory.limit_in_bytes" : "memory.max") < 0)
            return err_format(err, errlen, -ENAMETOOLONG, "%s: path too long", dir);
        if ((r = write_value(path, value, err, errlen)) < 0)
            return r;
    }
    return 0;
}

/* Walks from the hierarchy's root down through PARENT to the VM's group,
 * making what is missing (and on v2 enabling the controllers at each
 * level above the VM's group). */
static int create_in(const cg_host *h, const cg_hierarchy *hy, const char *vm_name, const cg_limits *lim, char *err,
                     size_t errlen)
{
    char dir[PATH_MAX], leaf[CG_NAME_MAX + 4];
    bool v2 = h->mode == CG_V2;
    int r;

    strcpy(dir, hy->root);
    if (v2 && (r = enable_controllers(dir, err, errlen)) < 0)
        return r;
    for (const char *s = h->parent; *s;) {
        size_t len = strcspn(s, "/");

        if ((r = append(dir, s, len, err, errlen)) < 0 || (r = make_dir(dir, err, errlen)) < 0 ||
            (v2 && (r = enable_controllers(dir, err, errlen)) < 0))
            return r;
        s += len + (s[len] == '/');
    }
    snprintf(leaf, sizeof(leaf), "vm-%s", vm_name);
    if ((r = append(dir, leaf, strlen(leaf), err, errlen)) < 0 || (r = make_dir(dir, err, errlen)) < 0)
        return r;
    return write_limits(h->mode, hy->controllers, dir, lim, err, errlen);
}

static int check_limits(const cg_host *h, const cg_limits *lim, char *err, size_t errlen)
{
    unsigned have = 0;

    if (lim->cpu_weight > 10000)
        return err_format(err, errlen, -EINVAL, "cpu_weight: must be 1..10000 (0 for the default), not %" PRIu32,
                    lim->cpu_weight);
    for (size_t i = 0; i < h->n; i++)
        have |= h->h[i].controllers;
    if (lim->cpu_weight && !(have & CG_CPU))
        return err_format(err, errlen, -EOPNOTSUPP, "cpu_weight: this host has no cgroup cpu controller");
    if (lim->memory_max && !(have & CG_MEMORY))
        return err_format(err, errlen, -EOPNOTSUPP, "memory_max: this host has no cgroup memory controller");
    return 0;
}

static int check_usable(const cg_host *h, const char *vm_name, char *err, size_t errlen)
{
    if (h->mode == CG_NONE || h->n == 0)
        return err_format(err, errlen, -EOPNOTSUPP, "cgroups: no cpu or memory controller on this host");
    return check_name(vm_name, err, errlen);
}

int cg_vm_create(const cg_host *h, const char *vm_name, const cg_limits *lim, char *err, size_t errlen)
{
    int r;

    if ((r = check_usable(h, vm_name, err, errlen)) < 0 || (r = check_limits(h, lim, err, errlen)) < 0)
        return r;
    for (size_t i = 0; i < h->n; i++)
        if ((r = create_in(h, &h->h[i], vm_name, lim, err, errlen)) < 0)
            return r;
    return 0;
}

int cg_vm_attach(const cg_host *h, const char *vm_name, pid_t pid, char *err, size_t errlen)
{
    char dir[PATH_MAX], path[PATH_MAX], value[24];
    int r;

    if ((r = check_usable(h, vm_name, err, errlen)) < 0)
        return r;
    if (pid <= 0)
        return err_format(err, errlen, -EINVAL, "pid: must be positive, not %d", (int)pid);
    snprintf(value, sizeof(value), "%d", (int)pid);
    for (size_t i = 0; i < h->n; i++) {
        if ((r = vm_dir(h, &h->h[i], vm_name, dir, err, errlen)) < 0)
            return r;
        if (pathf(path, "%s/cgroup.procs", dir) < 0)
            return err_format(err, errlen, -ENAMETOOLONG, "%s/cgroup.procs: path too long", dir);
        if ((r = write_value(path, value, err, errlen)) < 0)
            return r;
    }
    return 0;
}

static int procs_has(FILE *f, pid_t pid)
{
    char *line = NULL, *end;
    size_t cap = 0;
    int found = 0;

    errno = 0;
    while (!found && getline(&line, &cap, f) >= 0) {
        long v = strtol(line, &end, 10);

        found = end != line && v == (long)pid;
    }
    free(line);
    if (!found && ferror(f))
        return errno ? -errno : -EIO;
    return found;
}

int cg_vm_find(const cg_host *h, const char *vm_name, pid_t pid)
{
    char dir[PATH_MAX], path[PATH_MAX];
    FILE *f;
    int r;

    if ((r = check_usable(h, vm_name, NULL, 0)) < 0)
        return r;
    if (pid <= 0)
        return -EINVAL;
    if ((r = vm_dir(h, &h->h[0], vm_name, dir, NULL, 0)) < 0 || (r = pathf(path, "%s/cgroup.procs", dir)) < 0)
        return r;
    if (!(f = fopen(path, "re")))
        return errno == ENOENT ? 0 : -errno;
    r = procs_has(f, pid);
    fclose(f);
    return r;
}

int cg_vm_remove(const cg_host *h, const char *vm_name, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    int r, first = 0;

    if ((r = check_name(vm_name, err, errlen)) < 0)
        return r;
    for (size_t i = 0; i < h->n; i++) {
        if ((r = vm_dir(h, &h->h[i], vm_name, dir, first ? NULL : err, errlen)) < 0) {
            first = first ? first : r;
            continue;
        }
        if (cg_test_before_rmdir)
            cg_test_before_rmdir(dir);
        if (rmdir(dir) < 0 && errno != ENOENT && !first) {
            first = -errno;
            err_format(err, errlen, first, "%s: rmdir: %s", dir, strerror(errno));
        }
    }
    return first;
}

const char *cg_mode_name(const cg_host *h)
{
    switch (h->mode) {
    case CG_V1:
        return "v1";
    case CG_V2:
        return "v2";
    default:
        return "none";
    }
}

/* cpu * 100 + 0.5 truncated is round() for the positive values left after
 * the checks, without needing libm. */
uint32_t cg_weight_from_cpu(double cpu)
{
    uint32_t w;

    if (!(cpu > 0))
        return 1;
    if (cpu >= 100)
        return 10000;
    w = (uint32_t)(cpu * 100 + 0.5);
    return w < 1 ? 1 : w;
}

uint64_t cg_shares_from_weight(uint32_t weight)
{
    uint64_t shares = (uint64_t)weight * 1024 / 100;

    return shares < 2 ? 2 : shares > 262144 ? 262144 : shares;
}
