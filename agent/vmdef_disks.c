/* vmdef_disks.c: the "disks" member of a VM definition.
 *
 * A disk is an object ({"pool": "default", "volume": "vm1.sda.qcow2",
 * "format": "qcow2", "bus": "virtio-blk", ...}) or, as management nodes
 * write them, a string: "20G" (xCAT's mkvm -s 20G: a new disk of that size
 * in the pool "default") or "POOL:SIZE[:FORMAT]" (RHEV's storage domain
 * strings). What a disk leaves out is filled in the way xCAT names things:
 * targets sda, sdb, ... in order, and volumes NAME.TARGET.qcow2. The format
 * is never guessed from a file: qcow2 unless the definition says raw. */
#include "vmdef.h"
#include "vmdef_parse.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#define DISK_SIZE_MAX (UINT64_C(1) << 61)     /* the image layer's bound */
#define BOOT_INDEX_MAX 999
#define DEFAULT_POOL "default"

static const char *const format_names[] = { [VM_DISK_QCOW2] = "qcow2", [VM_DISK_RAW] = "raw" };
static const char *const bus_names[] = {
    [VM_DISK_VIRTIO_BLK] = "virtio-blk", [VM_DISK_VIRTIO_SCSI] = "virtio-scsi",
    [VM_DISK_SATA] = "sata", [VM_DISK_IDE] = "ide",
};
static const char *const cache_names[] = {
    [VM_CACHE_NONE] = "none", [VM_CACHE_WRITEBACK] = "writeback",
    [VM_CACHE_WRITETHROUGH] = "writethrough", [VM_CACHE_DIRECTSYNC] = "directsync",
    [VM_CACHE_UNSAFE] = "unsafe",
};
static const char *const io_names[] = { [VM_IO_THREADS] = "threads", [VM_IO_NATIVE] = "native",
                                        [VM_IO_URING] = "io_uring" };
static const char *const disk_members[] = {
    "target", "pool", "volume", "path", "size", "format", "bus",
    "cache", "io", "readonly", "cdrom", "discard", "boot-index", "slot",
};

const char *vm_disk_bus_name(vm_disk_bus b)
{
    return (unsigned)b < ARRAY_SIZE(bus_names) ? bus_names[b] : "unknown";
}

const char *vm_disk_cache_name(vm_disk_cache c)
{
    return (unsigned)c < ARRAY_SIZE(cache_names) ? cache_names[c] : "unknown";
}

const char *vm_disk_io_name(vm_disk_io i)
{
    return (unsigned)i < ARRAY_SIZE(io_names) ? io_names[i] : "unknown";
}

/* ---- what one disk may say ---------------------------------------------------- */

static bool target_valid(const char *s)
{
    size_t n = strnlen(s, VM_TARGET_MAX + 1);

    if (n == 0 || n > VM_TARGET_MAX || s[0] < 'a' || s[0] > 'z')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= '0' && s[i] <= '9'))
            return false;
    return true;
}

/* A file name inside a pool: never a path, never an option. */
static bool volume_valid(const char *s)
{
    size_t n = strnlen(s, VM_VOLUME_MAX + 1);

    if (n == 0 || n > VM_VOLUME_MAX || s[0] == '.' || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') &&
            !(s[i] >= '0' && s[i] <= '9') && !strchr("._+-", s[i]))
            return false;
    return true;
}

static bool pool_name_valid(const char *s)
{
    return vmdef_token_valid(s, 1, VM_NAME_MAX) && s[0] != '.' && s[0] != '-';
}

/* ---- parsing ------------------------------------------------------------------------ */

typedef struct disk_ctx {
    size_t i;
    errbuf *e;
    bool has_format, has_bus;
} disk_ctx;

static int enum_member(struct json_object *v, const char *const *names, size_t n, const char *what,
                       const disk_ctx *c, int *ret)
{
    const char *s = vmdef_json_cstr(v);
    int i = s ? vmdef_name_index(names, n, 0, s) : -1;
    char list[160] = "";

    if (i >= 0) {
        *ret = i;
        return 0;
    }
    for (size_t k = 0; k < n; k++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", k ? ", " : "", names[k]);
    return errbuf_fail(c->e, "disks[%zu].%s: must be one of %s", c->i, what, list);
}

static int string_member(struct json_object *v, char *out, size_t outlen, bool (*valid)(const char *),
                         const char *what, const char *rule, const disk_ctx *c)
{
    const char *s = vmdef_json_cstr(v);

    if (!s || !valid(s))
        return errbuf_fail(c->e, "disks[%zu].%s: %s", c->i, what, rule);
    snprintf(out, outlen, "%s", s);
    return 0;
}

static int bool_member(struct json_object *v, bool *out, const char *what, const disk_ctx *c)
{
    if (!json_object_is_type(v, json_type_boolean))
        return errbuf_fail(c->e, "disks[%zu].%s: must be true or false", c->i, what);
    *out = json_object_get_boolean(v);
    return 0;
}

static int size_member(struct json_object *v, vm_disk *d, const disk_ctx *c)
{
    const char *s = vmdef_json_cstr(v);
    uint64_t n;

    if (!vmdef_json_uint(v, &n) && (!s || vmdef_parse_size(s, &n) < 0))
        return errbuf_fail(c->e, "disks[%zu].size: must be a size in bytes or like \"20G\" (K, M, G, T)",
                           c->i);
    if (n == 0 || n > DISK_SIZE_MAX)
        return errbuf_fail(c->e, "disks[%zu].size: must be from 1 byte to 2^61 bytes", c->i);
    d->size = n;
    return 0;
}

static int path_member(struct json_object *v, vm_disk *d, const disk_ctx *c)
{
    const char *s = vmdef_json_cstr(v), *problem;

    if (!s)
        return errbuf_fail(c->e, "disks[%zu].path: must be a string", c->i);
    if ((problem = vmdef_path_problem(s)))
        return errbuf_fail(c->e, "disks[%zu].path: %s", c->i, problem);
    free(d->path);
    if (!(d->path = strdup(s)))
        return errbuf_fail(c->e, "disks[%zu].path: out of memory", c->i);
    return 0;
}

static int boot_index_member(struct json_object *v, vm_disk *d, const disk_ctx *c)
{
    uint64_t n;

    if (!vmdef_json_uint(v, &n) || n > BOOT_INDEX_MAX)
        return errbuf_fail(c->e, "disks[%zu].boot-index: must be a whole number from 0 to %d", c->i,
                           BOOT_INDEX_MAX);
    d->boot_index = (int)n;
    return 0;
}

static int slot_member(struct json_object *v, vm_disk *d, const disk_ctx *c)
{
    uint64_t n;

    if (!vmdef_json_uint(v, &n) || n > VM_SLOT_MAX)
        return errbuf_fail(c->e, "disks[%zu].slot: must be a whole number from 0 to %d", c->i, VM_SLOT_MAX);
    d->slot = (int)n;
    return 0;
}

static int member(const char *key, struct json_object *v, vm_disk *d, disk_ctx *c)
{
    int k = -1, r;

    if (!strcmp(key, "target"))
        return string_member(v, d->target, sizeof(d->target), target_valid, key,
                             "1 to 7 lower-case letters and digits, starting with a letter", c);
    if (!strcmp(key, "pool"))
        return string_member(v, d->pool, sizeof(d->pool), pool_name_valid, key,
                             "1 to 64 letters, digits, '.', '_' or '-'", c);
    if (!strcmp(key, "volume"))
        return string_member(v, d->volume, sizeof(d->volume), volume_valid, key,
                             "a file name of 1 to 255 letters, digits, '.', '_', '+' or '-'", c);
    if (!strcmp(key, "path"))
        return path_member(v, d, c);
    if (!strcmp(key, "size"))
        return size_member(v, d, c);
    if (!strcmp(key, "readonly"))
        return bool_member(v, &d->readonly, key, c);
    if (!strcmp(key, "cdrom"))
        return bool_member(v, &d->cdrom, key, c);
    if (!strcmp(key, "discard"))
        return bool_member(v, &d->discard, key, c);
    if (!strcmp(key, "boot-index"))
        return boot_index_member(v, d, c);
    if (!strcmp(key, "slot"))
        return slot_member(v, d, c);
    if (!strcmp(key, "format")) {
        c->has_format = true;
        r = enum_member(v, format_names, ARRAY_SIZE(format_names), key, c, &k);
        d->format = (vm_disk_format)k;
    } else if (!strcmp(key, "bus")) {
        c->has_bus = true;
        r = enum_member(v, bus_names, ARRAY_SIZE(bus_names), key, c, &k);
        d->bus = (vm_disk_bus)k;
    } else if (!strcmp(key, "cache")) {
        r = enum_member(v, cache_names, ARRAY_SIZE(cache_names), key, c, &k);
        d->cache = (vm_disk_cache)k;
    } else {
        r = enum_member(v, io_names, ARRAY_SIZE(io_names), key, c, &k);
        d->io = (vm_disk_io)k;
    }
    return r;
}

static int parse_object(struct json_object *v, vm_disk *d, disk_ctx *c)
{
    char field[32];
    struct json_object_iterator it, end;
    int r;

    snprintf(field, sizeof(field), "disks[%zu]", c->i);
    if ((r = vmdef_only_members(v, field, disk_members, ARRAY_SIZE(disk_members), c->e)) < 0)
        return r;
    it = json_object_iter_begin(v);
    end = json_object_iter_end(v);
    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
        if ((r = member(json_object_iter_peek_name(&it), json_object_iter_peek_value(&it), d, c)) < 0)
            return r;
    /* An ISO is raw and sits on an emulated drive unless told otherwise. */
    if (d->cdrom && !c->has_format)
        d->format = VM_DISK_RAW;
    if (d->cdrom && !c->has_bus)
        d->bus = VM_DISK_SATA;
    return 0;
}

/* "20G", or "POOL:SIZE[:FORMAT]". */
static int parse_string(const char *s, vm_disk *d, disk_ctx *c)
{
    char buf[VM_NAME_MAX + 64], *size = buf, *fmt = NULL, *colon;
    struct json_object *f;
    int r = 0, k = 0;

    if (strlen(s) >= sizeof(buf))
        return errbuf_fail(c->e, "disks[%zu]: must be \"SIZE\" or \"POOL:SIZE[:FORMAT]\"", c->i);
    memcpy(buf, s, strlen(s) + 1);
    if ((colon = strchr(buf, ':'))) {
        *colon = '\0';
        size = colon + 1;
        if (!pool_name_valid(buf))
            return errbuf_fail(c->e, "disks[%zu].pool: 1 to 64 letters, digits, '.', '_' or '-'", c->i);
        snprintf(d->pool, sizeof(d->pool), "%s", buf);
        if ((fmt = strchr(size, ':')))
            *fmt++ = '\0';
    }
    if (vmdef_parse_size(size, &d->size) < 0 || d->size == 0 || d->size > DISK_SIZE_MAX)
        return errbuf_fail(c->e, "disks[%zu].size: must be a size like \"20G\" (K, M, G, T)", c->i);
    if (fmt) {
        f = json_object_new_string(fmt);
        r = f ? enum_member(f, format_names, ARRAY_SIZE(format_names), "format", c, &k) : -ENOMEM;
        json_object_put(f);
        if (r == 0)
            d->format = (vm_disk_format)k;
    }
    return r;
}

static void disk_init(vm_disk *d)
{
    memset(d, 0, sizeof(*d));
    d->boot_index = -1;
    d->slot = -1;
}

int vmdef_disks_parse(struct json_object *v, vm_def *d, errbuf *e)
{
    size_t n;

    if (!json_object_is_type(v, json_type_array))
        return errbuf_fail(e, "disks: must be a list of disks");
    if ((n = json_object_array_length(v)) > VM_DISKS_MAX)
        return errbuf_fail(e, "disks: at most %d disks", VM_DISKS_MAX);
    vmdef_disks_free(d);
    for (size_t i = 0; i < n; i++) {
        struct json_object *o = json_object_array_get_idx(v, i);
        disk_ctx c = { .i = i, .e = e };
        const char *s = vmdef_json_cstr(o);
        int r;

        disk_init(&d->disks[i]);
        d->ndisks = i + 1;
        if (json_object_is_type(o, json_type_object))
            r = parse_object(o, &d->disks[i], &c);
        else if (s)
            r = parse_string(s, &d->disks[i], &c);
        else
            r = errbuf_fail(e, "disks[%zu]: must be an object or a string like \"20G\"", i);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- defaults that depend on the rest ----------------------------------------------------- */

static bool target_taken(const vm_def *d, const char *t)
{
    for (size_t i = 0; i < d->ndisks; i++)
        if (strcmp(d->disks[i].target, t) == 0)
            return true;
    return false;
}

/* sda .. sdz, then sdaa .. sdzz: the first one no disk has (there are
 * fewer disks than names). */
static void next_target(const vm_def *d, char *out)
{
    char t[VM_TARGET_MAX + 1];

    for (unsigned k = 0; k < 26 * 27; k++) {
        if (k < 26)
            snprintf(t, sizeof(t), "sd%c", 'a' + k);
        else
            snprintf(t, sizeof(t), "sd%c%c", 'a' + (k / 26 - 1), 'a' + k % 26);
        if (!target_taken(d, t)) {
            memcpy(out, t, sizeof(t));
            return;
        }
    }
}

int vmdef_disks_finish(vm_def *d, errbuf *e)
{
    for (size_t i = 0; i < d->ndisks; i++) {
        vm_disk *k = &d->disks[i];
        bool empty_cdrom = k->cdrom && !k->path && !k->volume[0] && !k->pool[0];

        if (!k->target[0])
            next_target(d, k->target);
        if (k->path || empty_cdrom)
            continue;
        if (!k->pool[0])
            snprintf(k->pool, sizeof(k->pool), "%s", DEFAULT_POOL);
        if (!k->volume[0] && !k->cdrom) {
            char vol[VM_VOLUME_MAX + 1];
            if (snprintf(vol, sizeof(vol), "%s.%s.%s", d->name, k->target, format_names[k->format]) >=
                (int)sizeof(vol))
                return errbuf_fail(e, "disks[%zu].volume: the name made from the VM's is too long", i);
            memcpy(k->volume, vol, sizeof(vol));
        }
    }
    return 0;
}

/* ---- validation ------------------------------------------------------------------------------ */

static int validate_source(const vm_disk *k, size_t i, errbuf *e)
{
    const char *problem;

    if (k->path && (k->pool[0] || k->volume[0]))
        return errbuf_fail(e, "disks[%zu].path: give a path or a pool and volume, not both", i);
    if (k->path && (problem = vmdef_path_problem(k->path)))
        return errbuf_fail(e, "disks[%zu].path: %s", i, problem);
    if (k->pool[0] && !pool_name_valid(k->pool))
        return errbuf_fail(e, "disks[%zu].pool: 1 to 64 letters, digits, '.', '_' or '-'", i);
    if (k->volume[0] && !volume_valid(k->volume))
        return errbuf_fail(e, "disks[%zu].volume: a file name of 1 to 255 letters, digits, '.', '_', '+' or '-'",
                           i);
    if (k->volume[0] && !k->pool[0])
        return errbuf_fail(e, "disks[%zu].pool: a volume needs its pool", i);
    if (!k->cdrom && !k->path && !k->volume[0])
        return errbuf_fail(e, "disks[%zu]: needs a volume (in a pool) or a path", i);
    return 0;
}

static int validate_kind(const vm_disk *k, size_t i, errbuf *e)
{
    if ((unsigned)k->format >= ARRAY_SIZE(format_names) || (unsigned)k->bus >= ARRAY_SIZE(bus_names) ||
        (unsigned)k->cache >= ARRAY_SIZE(cache_names) || (unsigned)k->io >= ARRAY_SIZE(io_names))
        return errbuf_fail(e, "disks[%zu]: unknown format, bus, cache or io", i);
    if (k->cdrom && k->bus == VM_DISK_VIRTIO_BLK)
        return errbuf_fail(e, "disks[%zu].bus: a cdrom needs sata, ide or virtio-scsi", i);
    /* QEMU's ide-hd refuses a read-only drive. */
    if (k->readonly && !k->cdrom && (k->bus == VM_DISK_SATA || k->bus == VM_DISK_IDE))
        return errbuf_fail(e, "disks[%zu].readonly: a sata or ide disk cannot be read-only (use virtio-blk or "
                           "virtio-scsi)", i);
    if (k->cdrom && k->size)
        return errbuf_fail(e, "disks[%zu].size: a cdrom's image is not made by the agent", i);
    if (k->cdrom && k->format != VM_DISK_RAW)
        return errbuf_fail(e, "disks[%zu].format: a cdrom is a raw ISO image", i);
    if (k->size > DISK_SIZE_MAX)
        return errbuf_fail(e, "disks[%zu].size: must be from 1 byte to 2^61 bytes", i);
    /* Linux AIO needs O_DIRECT: QEMU refuses it otherwise. */
    if (k->io == VM_IO_NATIVE && k->cache != VM_CACHE_NONE && k->cache != VM_CACHE_DIRECTSYNC)
        return errbuf_fail(e, "disks[%zu].io: native needs cache none or directsync", i);
    if (k->boot_index < -1 || k->boot_index > BOOT_INDEX_MAX)
        return errbuf_fail(e, "disks[%zu].boot-index: must be a whole number from 0 to %d", i,
                           BOOT_INDEX_MAX);
    return 0;
}

static int validate_unique(const vm_def *d, size_t i, errbuf *e)
{
    const vm_disk *k = &d->disks[i];

    for (size_t j = 0; j < i; j++) {
        const vm_disk *o = &d->disks[j];
        if (strcmp(o->target, k->target) == 0)
            return errbuf_fail(e, "disks[%zu].target: %s is also disks[%zu]'s", i, k->target, j);
        if (k->boot_index >= 0 && o->boot_index == k->boot_index)
            return errbuf_fail(e, "disks[%zu].boot-index: %d is also disks[%zu]'s", i, k->boot_index, j);
        if (k->volume[0] && strcmp(o->pool, k->pool) == 0 && strcmp(o->volume, k->volume) == 0)
            return errbuf_fail(e, "disks[%zu].volume: %s is also disks[%zu]'s", i, k->volume, j);
        if (k->path && o->path && strcmp(o->path, k->path) == 0)
            return errbuf_fail(e, "disks[%zu].path: %s is also disks[%zu]'s", i, k->path, j);
    }
    return 0;
}

int vmdef_disks_validate(const vm_def *d, errbuf *e)
{
    int r;

    if (d->ndisks > VM_DISKS_MAX)
        return errbuf_fail(e, "disks: at most %d disks", VM_DISKS_MAX);
    for (size_t i = 0; i < d->ndisks; i++) {
        if (!target_valid(d->disks[i].target))
            return errbuf_fail(e, "disks[%zu].target: 1 to 7 lower-case letters and digits, starting with a letter",
                               i);
        if ((r = validate_source(&d->disks[i], i, e)) < 0 || (r = validate_kind(&d->disks[i], i, e)) < 0 ||
            (r = validate_unique(d, i, e)) < 0)
            return r;
    }
    return 0;
}

/* ---- JSON, comparison, copies ----------------------------------------------------------------- */

static int put(struct json_object *o, const char *key, struct json_object *v)
{
    if (!v || json_object_object_add(o, key, v) < 0) {
        json_object_put(v);
        return -ENOMEM;
    }
    return 0;
}

/* Adds s under key; nothing when s is NULL or empty. */
static int put_str(struct json_object *o, const char *key, const char *s)
{
    return s && s[0] ? put(o, key, json_object_new_string(s)) : 0;
}

static int put_bool(struct json_object *o, const char *key, bool v)
{
    return put(o, key, json_object_new_boolean(v));
}

static struct json_object *disk_to_json(const vm_disk *k)
{
    struct json_object *o = json_object_new_object();

    if (!o || put_str(o, "target", k->target) < 0 || put_str(o, "pool", k->pool) < 0 ||
        put_str(o, "volume", k->volume) < 0 || put_str(o, "path", k->path) < 0 ||
        (k->size && put(o, "size", json_object_new_int64((int64_t)k->size)) < 0) ||
        put_str(o, "format", format_names[k->format]) < 0 || put_str(o, "bus", bus_names[k->bus]) < 0 ||
        put_str(o, "cache", cache_names[k->cache]) < 0 || put_str(o, "io", io_names[k->io]) < 0 ||
        put_bool(o, "readonly", k->readonly) < 0 || put_bool(o, "cdrom", k->cdrom) < 0 ||
        put_bool(o, "discard", k->discard) < 0 ||
        (k->boot_index >= 0 && put(o, "boot-index", json_object_new_int(k->boot_index)) < 0) ||
        (k->slot >= 0 && put(o, "slot", json_object_new_int(k->slot)) < 0)) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

struct json_object *vmdef_disks_to_json(const vm_def *d)
{
    struct json_object *a = json_object_new_array();

    for (size_t i = 0; a && i < d->ndisks && i < VM_DISKS_MAX; i++) {
        struct json_object *o = disk_to_json(&d->disks[i]);
        if (!o || json_object_array_add(a, o) < 0) {
            json_object_put(o);
            json_object_put(a);
            return NULL;
        }
    }
    return a;
}

static bool disk_equal(const vm_disk *a, const vm_disk *b)
{
    return strcmp(a->target, b->target) == 0 && strcmp(a->pool, b->pool) == 0 &&
           strcmp(a->volume, b->volume) == 0 && (a->path == b->path || (a->path && b->path && !strcmp(a->path, b->path))) &&
           a->size == b->size && a->format == b->format && a->bus == b->bus && a->cache == b->cache &&
           a->io == b->io && a->readonly == b->readonly && a->cdrom == b->cdrom && a->discard == b->discard &&
           a->boot_index == b->boot_index && a->slot == b->slot;
}

bool vmdef_disks_equal(const vm_def *a, const vm_def *b)
{
    if (a->ndisks != b->ndisks || a->ndisks > VM_DISKS_MAX)
        return false;
    for (size_t i = 0; i < a->ndisks; i++)
        if (!disk_equal(&a->disks[i], &b->disks[i]))
            return false;
    return true;
}

int vmdef_disks_copy(const vm_def *src, vm_def *d)
{
    for (size_t i = 0; i < src->ndisks && i < VM_DISKS_MAX; i++) {
        d->disks[i].path = NULL;
        if (src->disks[i].path && !(d->disks[i].path = strdup(src->disks[i].path)))
            return -ENOMEM;
    }
    return 0;
}

void vmdef_disks_free(vm_def *d)
{
    for (size_t i = 0; i < d->ndisks && i < VM_DISKS_MAX; i++) {
        free(d->disks[i].path);
        d->disks[i].path = NULL;
    }
    d->ndisks = 0;
}
