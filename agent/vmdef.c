/* vmdef.c: parsing, validation and the canonical JSON form of a VM definition.
 *
 * Parsing runs in two passes. Each member is type-checked and converted by
 * its own parser, which accepts the several spellings management nodes use
 * (xCAT's "2:2" vCPUs, "2G" of memory, "network,disk" boot orders); then
 * vmdef_validate checks the whole definition, including the rules that tie
 * fields together. The second pass is public so that a definition built in
 * code meets the same rules before it reaches a QEMU command line. */
#include "errbuf.h"
#include "vmdef.h"
#include "vmdef_parse.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <json-c/json.h>

#define STR_(x) #x
#define STR(x) STR_(x)

#define VM_DEFAULT_MEMORY_MIB 512
#define VM_MIN_MEMORY_MIB 16
#define VM_LABEL_KEY_MAX 64
#define VM_LABEL_VALUE_MAX 1024

#define TOKEN_CHARS "letters, digits, '.', '_' or '-'"
#define VCPUS_MSG \
    "vcpus: must be a positive integer, \"S:C[:T]\", or {\"sockets\",\"cores\",\"threads\"}"
#define MEMORY_MSG "must be a whole number of MiB of at least 16 (or with a unit: 512M, 2G, 1T)"
#define UUID_MSG "uuid: must be 32 hex digits written 8-4-4-4-12"
#define BOOT_MSG \
    "boot: must be a list of \"disk\", \"cdrom\" and \"network\", " \
    "or a string like \"network,disk\""
#define SERIAL_MSG "serial: speed must be one of 9600, 19200, 38400, 57600 or 115200"


static int fail_nomem(errbuf *e, const char *field)
{
    errbuf_fail(e, "%s: out of memory", field);
    return -ENOMEM;
}

/* ---- names of enumerations ---- */

static const char *const accel_names[] = {
    [VM_ACCEL_DEFAULT] = "default",
    [VM_ACCEL_KVM] = "kvm",
    [VM_ACCEL_TCG] = "tcg",
};

static const char *const on_crash_names[] = {
    [VM_ON_CRASH_DESTROY] = "destroy",
    [VM_ON_CRASH_RESTART] = "restart",
    [VM_ON_CRASH_PRESERVE] = "preserve",
};

static const char *const boot_names[] = {
    [VM_BOOT_DISK] = "disk",
    [VM_BOOT_CDROM] = "cdrom",
    [VM_BOOT_NETWORK] = "network",
};

/* The spellings xCAT ("network,disk") and RHEV ("hd,network") use as well. */
static const struct {
    const char *alias;
    vm_boot_dev dev;
} boot_aliases[] = {
    {"disk", VM_BOOT_DISK},       {"hd", VM_BOOT_DISK},     {"cdrom", VM_BOOT_CDROM},
    {"cd", VM_BOOT_CDROM},        {"network", VM_BOOT_NETWORK}, {"net", VM_BOOT_NETWORK},
    {"pxe", VM_BOOT_NETWORK},
};

static const struct {
    const char *suffix;
    uint64_t mib;
} memory_units[] = {
    {"", 1},     {"m", 1},       {"mib", 1},           {"g", 1024},
    {"gib", 1024}, {"t", 1024 * 1024}, {"tib", 1024 * 1024},
};

int vmdef_name_index(const char *const *names, size_t n, size_t first, const char *s)
{
    for (size_t i = first; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return (int)i;
    return -1;
}

const char *vm_on_crash_name(vm_on_crash v)
{
    return (unsigned)v < ARRAY_SIZE(on_crash_names) ? on_crash_names[v] : "unknown";
}

const char *vm_accel_name(vm_accel v)
{
    return (unsigned)v < ARRAY_SIZE(accel_names) ? accel_names[v] : "unknown";
}

/* ---- character-level checks ---- */

static bool is_token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

/* True when s is min..max characters, each a letter, digit, '.', '_' or '-':
 * nothing a shell, a path or a QEMU option string would give a meaning to. */
bool vmdef_token_valid(const char *s, size_t min, size_t max)
{
    size_t n = strnlen(s, max + 1);

    if (n < min || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_token_char(s[i]))
            return false;
    return true;
}

static bool has_control_char(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

static bool has_dotdot_component(const char *s)
{
    for (const char *c = s; (c = strstr(c, "..")) != NULL; c++)
        if ((c == s || c[-1] == '/') && (c[2] == '\0' || c[2] == '/'))
            return true;
    return false;
}

/* A name becomes a file name and a QEMU -name value, so it is never a path
 * ('/', "..") and never looks like an option (leading '-'). */
static const char *name_problem(const char *s)
{
    size_t n = strnlen(s, VM_NAME_MAX + 1);

    if (n == 0)
        return "must not be empty";
    if (n > VM_NAME_MAX)
        return "must be at most " STR(VM_NAME_MAX) " characters";
    if (!vmdef_token_valid(s, 1, VM_NAME_MAX))
        return "may only contain letters, digits, '.', '_' and '-'";
    if (s[0] == '.' || s[0] == '-')
        return "must not start with '.' or '-'";
    return NULL;
}

bool vmdef_name_valid(const char *name)
{
    return name && !name_problem(name);
}

const char *vmdef_path_problem(const char *s)
{
    if (strnlen(s, VM_PATH_MAX + 1) > VM_PATH_MAX)
        return "must be at most " STR(VM_PATH_MAX) " characters";
    if (s[0] != '/')
        return "must be an absolute path";
    if (has_control_char(s))
        return "must not contain control characters";
    if (has_dotdot_component(s))
        return "must not contain a '..' component";
    return NULL;
}

static const char *cmdline_problem(const char *s)
{
    if (strnlen(s, VM_CMDLINE_MAX + 1) > VM_CMDLINE_MAX)
        return "must be at most " STR(VM_CMDLINE_MAX) " characters";
    if (strpbrk(s, "\r\n"))
        return "must not contain a newline";
    return NULL;
}

/* Lower-case canonical form only; parse_uuid folds upper case first. */
static bool uuid_valid(const char *s)
{
    for (size_t i = 0; i < VM_UUID_LEN; i++) {
        char c = s[i];
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;

        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return s[VM_UUID_LEN] == '\0';
}

static int uuid_generate(char out[VM_UUID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t b[16];
    ssize_t n;
    char *p = out;

    do
        n = getrandom(b, sizeof(b), 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if ((size_t)n != sizeof(b))
        return -EIO;
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4: random */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* the RFC 4122 variant */
    for (size_t i = 0; i < sizeof(b); i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 0xf];
    }
    *p = '\0';
    return 0;
}

static bool serial_speed_valid(uint64_t speed)
{
    return speed == 9600 || speed == 19200 || speed == 38400 || speed == 57600 ||
           speed == 115200;
}

/* ---- numbers ---- */

/* Decimal digits at *p, at least one; -ERANGE past UINT64_MAX. */
static int parse_digits(const char **p, uint64_t *ret)
{
    const char *s = *p;
    uint64_t v = 0;

    if (*s < '0' || *s > '9')
        return -EINVAL;
    for (; *s >= '0' && *s <= '9'; s++)
        if (__builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v))
            return -ERANGE;
    *p = s;
    *ret = v;
    return 0;
}

int vmdef_parse_memory(const char *s, uint64_t *ret_mib)
{
    uint64_t n, mib;

    if (!s || parse_digits(&s, &n) < 0)
        return -EINVAL;
    for (size_t i = 0; i < ARRAY_SIZE(memory_units); i++) {
        if (strcasecmp(s, memory_units[i].suffix) != 0)
            continue;
        if (__builtin_mul_overflow(n, memory_units[i].mib, &mib))
            return -EINVAL;
        *ret_mib = mib;
        return 0;
    }
    return -EINVAL;
}

int vmdef_parse_size(const char *s, uint64_t *ret_bytes)
{
    static const char units[] = "KMGT";
    const char *u;
    uint64_t n;
    int r;

    if (!s || (r = parse_digits(&s, &n)) < 0)
        return s ? r : -EINVAL;
    if (*s == '\0') {
        *ret_bytes = n;
        return 0;
    }
    if (!(u = strchr(units, *s >= 'a' ? *s - 32 : *s)) || !*u ||
        (s[1] && strcasecmp(s + 1, "iB") != 0 && strcasecmp(s + 1, "B") != 0))
        return -EINVAL;
    if (__builtin_mul_overflow(n, UINT64_C(1) << (10 * (u - units + 1)), ret_bytes))
        return -ERANGE;
    return 0;
}

/* ---- JSON accessors that never trust the type ---- */

/* A JSON string C can see all of: one with an embedded NUL is refused, since
 * everything after it would silently vanish. */
const char *vmdef_json_cstr(struct json_object *v)
{
    const char *s;

    if (!json_object_is_type(v, json_type_string))
        return NULL;
    s = json_object_get_string(v);
    if (strlen(s) != (size_t)json_object_get_string_len(v))
        return NULL;
    return s;
}

/* A non-negative JSON integer. Doubles are refused: 2.5 vCPUs has no meaning,
 * and json-c clamps integers beyond int64 to INT64_MAX, which every range
 * check here refuses. */
bool vmdef_json_uint(struct json_object *v, uint64_t *ret)
{
    int64_t i;

    if (!json_object_is_type(v, json_type_int))
        return false;
    i = json_object_get_int64(v);
    if (i < 0)
        return false;
    *ret = (uint64_t)i;
    return true;
}

int vmdef_json_mib(struct json_object *v, uint64_t *ret)
{
    const char *s;

    if (vmdef_json_uint(v, ret))
        return 0;
    s = vmdef_json_cstr(v);
    return s ? vmdef_parse_memory(s, ret) : -EINVAL;
}

/* Refuses members of a nested object other than the allowed ones. */
int vmdef_only_members(struct json_object *o, const char *field, const char *const *allowed,
                        size_t nallowed, errbuf *e)
{
    struct json_object_iterator it = json_object_iter_begin(o);
    struct json_object_iterator end = json_object_iter_end(o);

    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        const char *key = json_object_iter_peek_name(&it);

        if (vmdef_name_index(allowed, nallowed, 0, key) < 0)
            return errbuf_fail(e, "%s.%.64s: unknown field", field, key);
    }
    return 0;
}

/* ---- one parser per member ---- */

static int parse_name(struct json_object *v, vm_def *d, errbuf *e)
{
    const char *s = vmdef_json_cstr(v);
    const char *problem;

    if (!s)
        return errbuf_fail(e, "name: must be a string");
    problem = name_problem(s);
    if (problem)
        return errbuf_fail(e, "name: %s", problem);
    memcpy(d->name, s, strlen(s) + 1);
    return 0;
}

static int parse_uuid(struct json_object *v, vm_def *d, errbuf *e)
{
    const char *s = vmdef_json_cstr(v);
    char lower[VM_UUID_LEN + 1];

    if (!s || strlen(s) != VM_UUID_LEN)
        return errbuf_fail(e, UUID_MSG);
    for (size_t i = 0; i <= VM_UUID_LEN; i++)
        lower[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
    if (!uuid_valid(lower))
        return errbuf_fail(e, UUID_MSG);
    memcpy(d->uuid, lower, sizeof(lower));
    return 0;
}

static int set_vcpu_count(vm_def *d, uint64_t n, errbuf *e)
{
    if (n < 1 || n > VM_MAX_VCPUS)
        return errbuf_fail(e, "vcpus: must be from 1 to %d", VM_MAX_VCPUS);
    d->vcpus = d->sockets = (uint32_t)n;
    d->cores = d->threads = 1;
    d->topology_explicit = false;
    return 0;
}

/* t is sockets, cores, threads. Each is bounded before the product, so the
 * product cannot overflow. */
static int set_topology(vm_def *d, const uint64_t t[3], errbuf *e)
{
    for (size_t i = 0; i < 3; i++)
        if (t[i] < 1 || t[i] > VM_MAX_VCPUS)
            return errbuf_fail(e, "vcpus: sockets, cores and threads must each be from 1 to %d",
                        VM_MAX_VCPUS);
    if (t[0] * t[1] * t[2] > VM_MAX_VCPUS)
        return errbuf_fail(e, "vcpus: sockets * cores * threads must be at most %d", VM_MAX_VCPUS);
    d->sockets = (uint32_t)t[0];
    d->cores = (uint32_t)t[1];
    d->threads = (uint32_t)t[2];
    d->vcpus = d->sockets * d->cores * d->threads;
    d->topology_explicit = true;
    return 0;
}

/* "N", or "S:C" / "S:C:T" as xCAT and RHEV write sockets and cores. */
static int parse_vcpus_string(const char *s, vm_def *d, errbuf *e)
{
    uint64_t t[3] = {1, 1, 1};
    size_t n = 0;

    for (;;) {
        if (n == 3 || parse_digits(&s, &t[n]) < 0)
            return errbuf_fail(e, VCPUS_MSG);
        n++;
        if (*s == '\0')
            break;
        if (*s++ != ':')
            return errbuf_fail(e, VCPUS_MSG);
    }
    return n == 1 ? set_vcpu_count(d, t[0], e) : set_topology(d, t, e);
}

static const char *const topology_members[] = {"sockets", "cores", "threads"};

static int parse_vcpus_object(struct json_object *v, vm_def *d, errbuf *e)
{
    uint64_t t[3] = {1, 1, 1};
    int r = vmdef_only_members(v, "vcpus", topology_members, 3, e);

    if (r < 0)
        return r;
    for (size_t i = 0; i < 3; i++) {
        struct json_object *m;

        if (json_object_object_get_ex(v, topology_members[i], &m) && !vmdef_json_uint(m, &t[i]))
            return errbuf_fail(e, "vcpus.%s: must be a positive integer", topology_members[i]);
    }
    return set_topology(d, t, e);
}

static int parse_vcpus(struct json_object *v, vm_def *d, errbuf *e)
{
    uint64_t n;
    const char *s;

    if (vmdef_json_uint(v, &n))
        return set_vcpu_count(d, n, e);
    if (json_object_is_type(v, json_type_object))
        return parse_vcpus_object(v, d, e);
    s = vmdef_json_cstr(v);
    if (s)
        return parse_vcpus_string(s, d, e);
    return errbuf_fail(e, VCPUS_MSG);
}

static int parse_max_vcpus(struct json_object *v, vm_def *d, errbuf *e)
{
    uint64_t n;

    if (!vmdef_json_uint(v, &n) || n > VM_MAX_VCPUS)
        return errbuf_fail(e, "max-vcpus: must be an integer from 0 (same as vcpus) to %d", VM_MAX_VCPUS);
    d->max_vcpus = (uint32_t)n;
    return 0;
}

static int parse_memory(struct json_object *v, vm_def *d, errbuf *e)
{
    if (vmdef_json_mib(v, &d->memory_mib) < 0)
        return errbuf_fail(e, "memory: " MEMORY_MSG);
    return 0;
}

static int parse_max_memory(struct json_object *v, vm_def *d, errbuf *e)
{
    if (vmdef_json_mib(v, &d->max_memory_mib) < 0)
        return errbuf_fail(e, "max-memory: must be 0 (no memory hotplug), or a size: 4096, \"4G\"");
    return 0;
}

static int parse_model(struct json_object *v, const char *field, size_t min, char *out, errbuf *e)
{
    const char *s = vmdef_json_cstr(v);

    if (!s || !vmdef_token_valid(s, min, VM_MODEL_MAX))
        return errbuf_fail(e, "%s: must be %s%d " TOKEN_CHARS, field, min ? "1 to " : "at most ",
                    VM_MODEL_MAX);
    memcpy(out, s, strlen(s) + 1);
    return 0;
}

static int parse_machine(struct json_object *v, vm_def *d, errbuf *e)
{
    return parse_model(v, "machine", 1, d->machine, e);
}

static int parse_cpu_model(struct json_object *v, vm_def *d, errbuf *e)
{
    return parse_model(v, "cpu-model", 0, d->cpu_model, e);
}

static int parse_accel(struct json_object *v, vm_def *d, errbuf *e)
{
    const char *s = vmdef_json_cstr(v);
    /* "default" is only the name of the unset value; it is spelled by leaving
     * the member out. */
    int i = s ? vmdef_name_index(accel_names, ARRAY_SIZE(accel_names), VM_ACCEL_KVM, s) : -1;

    if (i < 0)
        return errbuf_fail(e, "accel: must be \"kvm\" or \"tcg\"");
    d->accel = (vm_accel)i;
    return 0;
}

static int add_boot(vm_def *d, const char *tok, size_t len, errbuf *e)
{
    size_t i;

    for (i = 0; i < ARRAY_SIZE(boot_aliases); i++)
        if (strlen(boot_aliases[i].alias) == len && memcmp(boot_aliases[i].alias, tok, len) == 0)
            break;
    if (i == ARRAY_SIZE(boot_aliases))
        return errbuf_fail(e, "boot: unknown device \"%.*s\" (disk, cdrom or network)",
                    (int)(len < 32 ? len : 32), tok);
    for (size_t j = 0; j < d->nboot; j++)
        if (d->boot[j] == boot_aliases[i].dev)
            return errbuf_fail(e, "boot: \"%s\" is listed twice", boot_names[d->boot[j]]);
    if (d->nboot == VM_BOOT_MAX)
        return errbuf_fail(e, "boot: at most %d devices", VM_BOOT_MAX);
    d->boot[d->nboot++] = boot_aliases[i].dev;
    return 0;
}

/* "network,disk": an empty string is an empty list. */
static int parse_boot_string(const char *s, vm_def *d, errbuf *e)
{
    while (*s) {
        size_t len = strcspn(s, ",");
        int r = add_boot(d, s, len, e);

        if (r < 0)
            return r;
        s += len;
        if (*s == ',' && *++s == '\0')
            return add_boot(d, s, 0, e);
    }
    return 0;
}

static int parse_boot_array(struct json_object *v, vm_def *d, errbuf *e)
{
    size_t n = json_object_array_length(v);

    if (n > VM_BOOT_MAX)
        return errbuf_fail(e, "boot: at most %d devices", VM_BOOT_MAX);
    for (size_t i = 0; i < n; i++) {
        const char *s = vmdef_json_cstr(json_object_array_get_idx(v, i));
        int r;

        if (!s)
            return errbuf_fail(e, BOOT_MSG);
        r = add_boot(d, s, strlen(s), e);
        if (r < 0)
            return r;
    }
    return 0;
}

static int parse_boot(struct json_object *v, vm_def *d, errbuf *e)
{
    const char *s;

    if (json_object_is_type(v, json_type_array))
        return parse_boot_array(v, d, e);
    s = vmdef_json_cstr(v);
    if (!s)
        return errbuf_fail(e, BOOT_MSG);
    return parse_boot_string(s, d, e);
}

static int set_string(char **out, const char *s, const char *field, errbuf *e)
{
    char *copy = strdup(s);

    if (!copy)
        return fail_nomem(e, field);
    free(*out);
    *out = copy;
    return 0;
}

static int parse_path(struct json_object *v, const char *field, char **out, errbuf *e)
{
    const char *s = vmdef_json_cstr(v);
    const char *problem;

    if (!s)
        return errbuf_fail(e, "%s: must be a string", field);
    problem = vmdef_path_problem(s);
    if (problem)
        return errbuf_fail(e, "%s: %s", field, problem);
    return set_string(out, s, field, e);
}

static int parse_kernel(struct json_object *v, vm_def *d, errbuf *e)
{
    return parse_path(v, "kernel", &d->kernel, e);
}

static int parse_initrd(struct json_object *v, vm_def *d, errbuf *e)
{
    return parse_path(v, "initrd", &d->initrd, e);
}

static int parse_cmdline(struct json_object *v, vm_def *d, errbuf *e)
{
    const char *s = vmdef_json_cstr(v);
    const char *problem;

    if (!s)
        return errbuf_fail(e, "cmdline: must be a string");
    problem = cmdline_problem(s);
    if (problem)
        return errbuf_fail(e, "cmdline: %s", problem);
    return set_string(&d->cmdline, s, "cmdline", e);
}

static const char *const serial_members[] = {"speed"};

/* 115200, or {"speed": 115200}; the object leaves room for more settings. */
static int parse_serial(struct json_object *v, vm_def *d, errbuf *e)
{
    struct json_object *speed = v;
    uint64_t n;

    if (json_object_is_type(v, json_type_object)) {
        int r = vmdef_only_members(v, "serial", serial_members, 1, e);

        if (r < 0)
            return r;
        if (!json_object_object_get_ex(v, "speed", &speed)) {
            d->serial_speed = 0;
            return 0;
        }
    }
    if (!vmdef_json_uint(speed, &n) || !serial_speed_valid(n))
        return errbuf_fail(e, SERIAL_MSG);
    d->serial_speed = (uint32_t)n;
    return 0;
}

static int parse_autostart(struct json_object *v, vm_def *d, errbuf *e)
{
    if (!json_object_is_type(v, json_type_boolean))
        return errbuf_fail(e, "autostart: must be true or false");
    d->autostart = json_object_get_boolean(v);
    return 0;
}

static int parse_on_crash(struct json_object *v, vm_def *d, errbuf *e)
{
    const char *s = vmdef_json_cstr(v);
    int i = s ? vmdef_name_index(on_crash_names, ARRAY_SIZE(on_crash_names), 0, s) : -1;

    if (i < 0)
        return errbuf_fail(e, "on-crash: must be \"destroy\", \"restart\" or \"preserve\"");
    d->on_crash = (vm_on_crash)i;
    return 0;
}

static int add_label(vm_def *d, const char *key, struct json_object *v, errbuf *e)
{
    const char *s = vmdef_json_cstr(v);
    vm_label *l;

    if (!vmdef_token_valid(key, 1, VM_LABEL_KEY_MAX))
        return errbuf_fail(e, "labels: keys must be 1 to %d " TOKEN_CHARS, VM_LABEL_KEY_MAX);
    if (!s)
        return errbuf_fail(e, "labels.%s: must be a string", key);
    if (strlen(s) > VM_LABEL_VALUE_MAX)
        return errbuf_fail(e, "labels.%s: must be at most %d characters", key, VM_LABEL_VALUE_MAX);
    l = &d->labels[d->nlabels++];
    l->key = strdup(key);
    l->value = strdup(s);
    if (!l->key || !l->value)
        return fail_nomem(e, "labels");
    return 0;
}

static int label_cmp(const void *a, const void *b)
{
    return strcmp(((const vm_label *)a)->key, ((const vm_label *)b)->key);
}

/* Labels are kept sorted by key, so that two definitions with the same labels
 * compare and serialize the same whatever order a client sent them in. */
static int parse_labels(struct json_object *v, vm_def *d, errbuf *e)
{
    struct json_object_iterator it, end;

    if (!json_object_is_type(v, json_type_object))
        return errbuf_fail(e, "labels: must be an object of strings");
    if (json_object_object_length(v) > VM_LABELS_MAX)
        return errbuf_fail(e, "labels: at most %d labels", VM_LABELS_MAX);
    it = json_object_iter_begin(v);
    end = json_object_iter_end(v);
    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        int r = add_label(d, json_object_iter_peek_name(&it), json_object_iter_peek_value(&it), e);

        if (r < 0)
            return r;
    }
    qsort(d->labels, d->nlabels, sizeof(d->labels[0]), label_cmp);
    return 0;
}

typedef int (*field_parser)(struct json_object *v, vm_def *d, errbuf *e);

static const struct field {
    const char *name;
    field_parser parse;
} fields[] = {
    {"name", parse_name},
    {"uuid", parse_uuid},
    {"vcpus", parse_vcpus},
    {"max-vcpus", parse_max_vcpus},
    {"memory", parse_memory},
    {"max-memory", parse_max_memory},
    {"machine", parse_machine},
    {"cpu-model", parse_cpu_model},
    {"accel", parse_accel},
    {"boot", parse_boot},
    {"kernel", parse_kernel},
    {"initrd", parse_initrd},
    {"cmdline", parse_cmdline},
    {"serial", parse_serial},
    {"autostart", parse_autostart},
    {"on-crash", parse_on_crash},
    {"labels", parse_labels},
    {"disks", vmdef_disks_parse},
    {"nics", vmdef_nics_parse},
    {"passthrough", vmdef_passthrough_parse},
    {"vnc", vmdef_vnc_parse},
    {"guest-agent", vmdef_guest_agent_parse},
    {"hotplug-slots", vmdef_hotplug_slots_parse},
    {"cpu-shares", vmdef_cpu_shares_parse},
    {"memory-limit", vmdef_memory_limit_parse},
};

static const struct field *find_field(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
        if (strcmp(fields[i].name, name) == 0)
            return &fields[i];
    return NULL;
}

static int parse_members(struct json_object *obj, vm_def *d, errbuf *e)
{
    struct json_object_iterator it = json_object_iter_begin(obj);
    struct json_object_iterator end = json_object_iter_end(obj);

    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        const char *key = json_object_iter_peek_name(&it);
        const struct field *f = find_field(key);
        int r;

        if (!f)
            return errbuf_fail(e, "%.64s: unknown field", key);
        r = f->parse(json_object_iter_peek_value(&it), d, e);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- validation of a whole definition ---- */

static uint32_t effective_max_vcpus(const vm_def *d)
{
    return d->max_vcpus ? d->max_vcpus : d->vcpus;
}

static int validate_identity(const vm_def *d, errbuf *e)
{
    const char *problem = name_problem(d->name);

    if (problem)
        return errbuf_fail(e, "name: %s", problem);
    if (!uuid_valid(d->uuid))
        return errbuf_fail(e, UUID_MSG);
    return 0;
}

static bool in_vcpu_range(uint32_t n)
{
    return n >= 1 && n <= VM_MAX_VCPUS;
}

/* QEMU refuses a topology that does not multiply out to maxcpus, and it can
 * only add whole sockets, so maxcpus must be a multiple of cores * threads. */
static int validate_cpus(const vm_def *d, errbuf *e)
{
    uint32_t max = effective_max_vcpus(d);

    if (!in_vcpu_range(d->vcpus))
        return errbuf_fail(e, "vcpus: must be from 1 to %d", VM_MAX_VCPUS);
    if (!in_vcpu_range(d->sockets) || !in_vcpu_range(d->cores) || !in_vcpu_range(d->threads) ||
        (uint64_t)d->sockets * d->cores * d->threads != d->vcpus)
        return errbuf_fail(e, "vcpus: must equal sockets * cores * threads");
    if (max < d->vcpus || max > VM_MAX_VCPUS)
        return errbuf_fail(e, "max-vcpus: must be from vcpus (%" PRIu32 ") to %d", d->vcpus, VM_MAX_VCPUS);
    if (max % (d->cores * d->threads) != 0)
        return errbuf_fail(e, "max-vcpus: must be a multiple of cores * threads (%" PRIu32 ")",
                    d->cores * d->threads);
    return 0;
}

/* QEMU refuses memory slots when maxmem equals the initial size, so a
 * max-memory equal to memory is refused here rather than at start. */
static int validate_memory(const vm_def *d, errbuf *e)
{
    if (d->memory_mib < VM_MIN_MEMORY_MIB)
        return errbuf_fail(e, "memory: " MEMORY_MSG);
    if (d->memory_mib > VM_MAX_MEMORY_MIB)
        return errbuf_fail(e, "memory: must be at most %u MiB (16T)", VM_MAX_MEMORY_MIB);
    if (d->max_memory_mib != 0 &&
        (d->max_memory_mib <= d->memory_mib || d->max_memory_mib > VM_MAX_MEMORY_MIB))
        return errbuf_fail(e, "max-memory: must be 0 (no memory hotplug), or more than memory (%" PRIu64
                       " MiB) and at most %u MiB", d->memory_mib, VM_MAX_MEMORY_MIB);
    return 0;
}

static int validate_machine(const vm_def *d, errbuf *e)
{
    if (!vmdef_token_valid(d->machine, 1, VM_MODEL_MAX))
        return errbuf_fail(e, "machine: must be 1 to %d " TOKEN_CHARS, VM_MODEL_MAX);
    if (!vmdef_token_valid(d->cpu_model, 0, VM_MODEL_MAX))
        return errbuf_fail(e, "cpu-model: must be at most %d " TOKEN_CHARS, VM_MODEL_MAX);
    if ((unsigned)d->accel >= ARRAY_SIZE(accel_names))
        return errbuf_fail(e, "accel: must be \"kvm\" or \"tcg\"");
    return 0;
}

static int validate_boot(const vm_def *d, errbuf *e)
{
    bool seen[ARRAY_SIZE(boot_names)] = {false};

    if (d->nboot > VM_BOOT_MAX)
        return errbuf_fail(e, "boot: at most %d devices", VM_BOOT_MAX);
    for (size_t i = 0; i < d->nboot; i++) {
        if ((unsigned)d->boot[i] >= ARRAY_SIZE(boot_names))
            return errbuf_fail(e, BOOT_MSG);
        if (seen[d->boot[i]])
            return errbuf_fail(e, "boot: \"%s\" is listed twice", boot_names[d->boot[i]]);
        seen[d->boot[i]] = true;
    }
    return 0;
}

/* An initrd or a command line without a kernel would be silently ignored by
 * QEMU; refusing it tells the user their direct boot is not set up. */
static int validate_direct_boot(const vm_def *d, errbuf *e)
{
    const char *problem;

    if (d->kernel && (problem = vmdef_path_problem(d->kernel)))
        return errbuf_fail(e, "kernel: %s", problem);
    if (d->initrd && (problem = vmdef_path_problem(d->initrd)))
        return errbuf_fail(e, "initrd: %s", problem);
    if (d->cmdline && (problem = cmdline_problem(d->cmdline)))
        return errbuf_fail(e, "cmdline: %s", problem);
    if (d->initrd && !d->kernel)
        return errbuf_fail(e, "initrd: requires kernel");
    if (d->cmdline && !d->kernel)
        return errbuf_fail(e, "cmdline: requires kernel");
    return 0;
}

static int validate_labels(const vm_def *d, errbuf *e)
{
    if (d->nlabels > VM_LABELS_MAX)
        return errbuf_fail(e, "labels: at most %d labels", VM_LABELS_MAX);
    for (size_t i = 0; i < d->nlabels; i++) {
        const vm_label *l = &d->labels[i];

        if (!l->key || !vmdef_token_valid(l->key, 1, VM_LABEL_KEY_MAX))
            return errbuf_fail(e, "labels: keys must be 1 to %d " TOKEN_CHARS, VM_LABEL_KEY_MAX);
        if (!l->value || strnlen(l->value, VM_LABEL_VALUE_MAX + 1) > VM_LABEL_VALUE_MAX)
            return errbuf_fail(e, "labels.%s: must be a string of at most %d characters", l->key,
                        VM_LABEL_VALUE_MAX);
        for (size_t j = 0; j < i; j++)
            if (strcmp(d->labels[j].key, l->key) == 0)
                return errbuf_fail(e, "labels.%s: is given twice", l->key);
    }
    return 0;
}

static int validate_misc(const vm_def *d, errbuf *e)
{
    if (d->serial_speed != 0 && !serial_speed_valid(d->serial_speed))
        return errbuf_fail(e, SERIAL_MSG);
    if ((unsigned)d->on_crash >= ARRAY_SIZE(on_crash_names))
        return errbuf_fail(e, "on-crash: must be \"destroy\", \"restart\" or \"preserve\"");
    return 0;
}

static int validate(const vm_def *d, errbuf *e)
{
    int r;

    if ((r = validate_identity(d, e)) < 0 || (r = validate_cpus(d, e)) < 0 ||
        (r = validate_memory(d, e)) < 0 || (r = validate_machine(d, e)) < 0 ||
        (r = validate_boot(d, e)) < 0 || (r = validate_direct_boot(d, e)) < 0 ||
        (r = validate_misc(d, e)) < 0 || (r = validate_labels(d, e)) < 0 ||
        (r = vmdef_disks_validate(d, e)) < 0 || (r = vmdef_nics_validate(d, e)) < 0 ||
        (r = vmdef_passthrough_validate(d, e)) < 0 || (r = vmdef_host_validate(d, e)) < 0)
        return r;
    return 0;
}

int vmdef_validate(const vm_def *def, char *err, size_t errlen)
{
    errbuf e = {err, errlen};

    return validate(def, &e);
}

/* ---- from JSON ---- */

static void def_init(vm_def *d)
{
    memset(d, 0, sizeof(*d));
    d->vcpus = d->sockets = d->cores = d->threads = 1;
    d->memory_mib = VM_DEFAULT_MEMORY_MIB;
    memcpy(d->machine, "q35", sizeof("q35"));
    d->accel = VM_ACCEL_DEFAULT;
    d->on_crash = VM_ON_CRASH_DESTROY;
    d->hotplug_slots = VM_HOTPLUG_SLOTS_DEFAULT;
}

static int fill_uuid(struct json_object *obj, vm_def *d, errbuf *e)
{
    int r;

    if (json_object_object_get_ex(obj, "uuid", NULL))
        return 0;
    r = uuid_generate(d->uuid);
    if (r < 0)
        errbuf_fail(e, "uuid: cannot generate one: %s", strerror(-r));
    return r;
}

static int parse_definition(struct json_object *obj, vm_def *d, errbuf *e)
{
    int r;

    if (!json_object_is_type(obj, json_type_object))
        return errbuf_fail(e, "definition: must be a JSON object");
    r = parse_members(obj, d, e);
    if (r < 0)
        return r;
    if (!json_object_object_get_ex(obj, "name", NULL))
        return errbuf_fail(e, "name: is required");
    r = fill_uuid(obj, d, e);
    if (r < 0)
        return r;
    if ((r = vmdef_disks_finish(d, e)) < 0 || (r = vmdef_nics_finish(d, e)) < 0)
        return r;
    /* Stored explicitly so the canonical form states the real limit. */
    if (d->max_vcpus == 0)
        d->max_vcpus = d->vcpus;
    return validate(d, e);
}

int vmdef_from_json(struct json_object *obj, vm_def *ret, char *err, size_t errlen)
{
    errbuf e = {err, errlen};
    vm_def d;
    int r;

    def_init(&d);
    r = parse_definition(obj, &d, &e);
    if (r < 0) {
        vmdef_free(&d);
        return r;
    }
    *ret = d;
    return 0;
}

/* ---- to JSON ---- */

/* Adds v under key; a NULL v is the failed allocation of the caller's
 * constructor, reported here so the callers stay one line each. */
static int add(struct json_object *o, const char *key, struct json_object *v)
{
    if (!v || json_object_object_add(o, key, v) < 0) {
        json_object_put(v);
        return -ENOMEM;
    }
    return 0;
}

static int add_uint(struct json_object *o, const char *key, uint64_t v)
{
    return add(o, key, json_object_new_int64((int64_t)v));
}

static int add_str(struct json_object *o, const char *key, const char *s)
{
    return s ? add(o, key, json_object_new_string(s)) : 0;
}

static struct json_object *topology_to_json(const vm_def *d)
{
    struct json_object *o = json_object_new_object();

    if (o && (add_uint(o, "sockets", d->sockets) < 0 || add_uint(o, "cores", d->cores) < 0 ||
              add_uint(o, "threads", d->threads) < 0)) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

static int add_cpus_memory(struct json_object *o, const vm_def *d)
{
    struct json_object *vcpus = d->topology_explicit ? topology_to_json(d)
                                                     : json_object_new_int64(d->vcpus);

    if (add(o, "vcpus", vcpus) < 0 || add_uint(o, "max-vcpus", effective_max_vcpus(d)) < 0 ||
        add_uint(o, "memory", d->memory_mib) < 0 ||
        add_uint(o, "max-memory", d->max_memory_mib) < 0)
        return -ENOMEM;
    return 0;
}

static struct json_object *boot_to_json(const vm_def *d)
{
    struct json_object *a = json_object_new_array();

    for (size_t i = 0; a && i < d->nboot && i < VM_BOOT_MAX; i++) {
        const char *name = (unsigned)d->boot[i] < ARRAY_SIZE(boot_names) ? boot_names[d->boot[i]]
                                                                          : "unknown";
        struct json_object *s = json_object_new_string(name);

        if (!s || json_object_array_add(a, s) < 0) {
            json_object_put(s);
            json_object_put(a);
            return NULL;
        }
    }
    return a;
}

static int add_machine_boot(struct json_object *o, const vm_def *d)
{
    if (add_str(o, "machine", d->machine) < 0 || add_str(o, "cpu-model", d->cpu_model) < 0 ||
        (d->accel != VM_ACCEL_DEFAULT && add_str(o, "accel", vm_accel_name(d->accel)) < 0) ||
        add(o, "boot", boot_to_json(d)) < 0 || add_str(o, "kernel", d->kernel) < 0 ||
        add_str(o, "initrd", d->initrd) < 0 || add_str(o, "cmdline", d->cmdline) < 0)
        return -ENOMEM;
    return 0;
}

static struct json_object *serial_to_json(const vm_def *d)
{
    struct json_object *o = json_object_new_object();

    if (o && add_uint(o, "speed", d->serial_speed) < 0) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

static struct json_object *labels_to_json(const vm_def *d)
{
    struct json_object *o = json_object_new_object();

    for (size_t i = 0; o && i < d->nlabels && i < VM_LABELS_MAX; i++) {
        if (add_str(o, d->labels[i].key, d->labels[i].value) < 0) {
            json_object_put(o);
            return NULL;
        }
    }
    return o;
}

static int add_runtime(struct json_object *o, const vm_def *d)
{
    if ((d->serial_speed != 0 && add(o, "serial", serial_to_json(d)) < 0) ||
        add(o, "autostart", json_object_new_boolean(d->autostart)) < 0 ||
        add_str(o, "on-crash", vm_on_crash_name(d->on_crash)) < 0 ||
        add(o, "disks", vmdef_disks_to_json(d)) < 0 || add(o, "nics", vmdef_nics_to_json(d)) < 0 ||
        add(o, "passthrough", vmdef_passthrough_to_json(d)) < 0 || vmdef_host_to_json(d, o) < 0 ||
        add(o, "labels", labels_to_json(d)) < 0)
        return -ENOMEM;
    return 0;
}

struct json_object *vmdef_to_json(const vm_def *def)
{
    struct json_object *o = json_object_new_object();

    if (!o)
        return NULL;
    if (add_str(o, "name", def->name) < 0 || add_str(o, "uuid", def->uuid) < 0 ||
        add_cpus_memory(o, def) < 0 || add_machine_boot(o, def) < 0 || add_runtime(o, def) < 0) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* ---- comparison, copy, free ---- */

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static const char *hardware_difference(const vm_def *a, const vm_def *b)
{
    if (a->vcpus != b->vcpus || a->sockets != b->sockets || a->cores != b->cores ||
        a->threads != b->threads)
        return "vcpus";
    if (effective_max_vcpus(a) != effective_max_vcpus(b))
        return "max-vcpus";
    if (a->memory_mib != b->memory_mib)
        return "memory";
    if (a->max_memory_mib != b->max_memory_mib)
        return "max-memory";
    if (strncmp(a->machine, b->machine, sizeof(a->machine)) != 0)
        return "machine";
    if (strncmp(a->cpu_model, b->cpu_model, sizeof(a->cpu_model)) != 0)
        return "cpu-model";
    if (a->accel != b->accel)
        return "accel";
    return NULL;
}

static const char *boot_difference(const vm_def *a, const vm_def *b)
{
    if (a->nboot != b->nboot || a->nboot > VM_BOOT_MAX ||
        memcmp(a->boot, b->boot, a->nboot * sizeof(a->boot[0])) != 0)
        return "boot";
    if (!str_eq(a->kernel, b->kernel))
        return "kernel";
    if (!str_eq(a->initrd, b->initrd))
        return "initrd";
    if (!str_eq(a->cmdline, b->cmdline))
        return "cmdline";
    if (a->serial_speed != b->serial_speed)
        return "serial";
    return NULL;
}

/* Whether vcpus came as a topology changes how it is written, not what QEMU
 * runs, so it is no reason to restart. */
static const char *restart_difference(const vm_def *a, const vm_def *b)
{
    const char *field;

    if (strncmp(a->name, b->name, sizeof(a->name)) != 0)
        return "name";
    if (strncmp(a->uuid, b->uuid, sizeof(a->uuid)) != 0)
        return "uuid";
    if ((field = hardware_difference(a, b)) || (field = boot_difference(a, b)))
        return field;
    if (!vmdef_disks_equal(a, b))
        return "disks";
    if (!vmdef_nics_equal(a, b))
        return "nics";
    if ((field = vmdef_host_difference(a, b)))
        return field;
    return vmdef_passthrough_equal(a, b) ? NULL : "passthrough";
}

bool vmdef_needs_restart(const vm_def *a, const vm_def *b, const char **ret_field)
{
    const char *field = restart_difference(a, b);

    if (!field)
        return false;
    if (ret_field)
        *ret_field = field;
    return true;
}

static bool labels_equal(const vm_def *a, const vm_def *b)
{
    if (a->nlabels != b->nlabels || a->nlabels > VM_LABELS_MAX)
        return false;
    for (size_t i = 0; i < a->nlabels; i++)
        if (!str_eq(a->labels[i].key, b->labels[i].key) ||
            !str_eq(a->labels[i].value, b->labels[i].value))
            return false;
    return true;
}

bool vmdef_equal(const vm_def *a, const vm_def *b)
{
    return !restart_difference(a, b) && a->topology_explicit == b->topology_explicit &&
           a->autostart == b->autostart && a->on_crash == b->on_crash && labels_equal(a, b);
}

static int dup_optional(const char *s, char **ret)
{
    char *copy = NULL;

    if (s && !(copy = strdup(s)))
        return -ENOMEM;
    *ret = copy;
    return 0;
}

static int copy_heap_members(const vm_def *src, vm_def *d)
{
    if (dup_optional(src->kernel, &d->kernel) < 0 || dup_optional(src->initrd, &d->initrd) < 0 ||
        dup_optional(src->cmdline, &d->cmdline) < 0)
        return -ENOMEM;
    if (vmdef_disks_copy(src, d) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < src->nlabels; i++) {
        d->nlabels = i + 1;
        if (dup_optional(src->labels[i].key, &d->labels[i].key) < 0 ||
            dup_optional(src->labels[i].value, &d->labels[i].value) < 0)
            return -ENOMEM;
    }
    return 0;
}

int vmdef_copy(const vm_def *src, vm_def *ret)
{
    vm_def d = *src;

    if (src->nlabels > VM_LABELS_MAX || src->ndisks > VM_DISKS_MAX)
        return -EINVAL;
    /* Nothing heap-owned is shared with src: clear before copying, so that
     * vmdef_free on a half-made copy frees only what the copy allocated. */
    d.kernel = d.initrd = d.cmdline = NULL;
    for (size_t i = 0; i < d.ndisks; i++)
        d.disks[i].path = NULL;
    memset(d.labels, 0, sizeof(d.labels));
    d.nlabels = 0;
    if (copy_heap_members(src, &d) < 0) {
        vmdef_free(&d);
        return -ENOMEM;
    }
    *ret = d;
    return 0;
}

void vmdef_free(vm_def *def)
{
    if (!def)
        return;
    free(def->kernel);
    free(def->initrd);
    free(def->cmdline);
    def->kernel = def->initrd = def->cmdline = NULL;
    for (size_t i = 0; i < def->nlabels && i < VM_LABELS_MAX; i++) {
        free(def->labels[i].key);
        free(def->labels[i].value);
        def->labels[i].key = def->labels[i].value = NULL;
    }
    def->nlabels = 0;
    vmdef_disks_free(def);
}
