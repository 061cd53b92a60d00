/* master.c: the masters table: load, describe, and find by disk. */
#include "master.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "agent.h"
#include "disk.h"
#include "log.h"
#include "pool.h"
#include "statefile.h"

#define MASTER_FILE_MAX (1u << 20)

master *master_find(agent *a, const char *name)
{
    for (master *m = a->masters; m; m = m->next)
        if (strcmp(m->def.name, name) == 0)
            return m;
    return NULL;
}

void master_free(master *m)
{
    if (!m)
        return;
    statefile_writer_free(m->file);
    vmdef_free(&m->def);
    free(m);
}

static void add_string(struct json_object *o, const char *key, const char *value)
{
    json_object_object_add(o, key, json_object_new_string(value));
}

/* xCAT's vmmaster "storage" column: the pools of its disks. */
static struct json_object *storage_json(const master *m)
{
    char buf[2048] = "";
    size_t used = 0;

    for (size_t i = 0; i < m->def.ndisks; i++) {
        const pool *p = m->def.disks[i].cdrom ? NULL : pool_find(m->agent, m->def.disks[i].pool);
        if (p && !strstr(buf, p->location) && used < sizeof(buf))
            used += (size_t)snprintf(buf + used, sizeof(buf) - used, "%s%s", used ? "," : "", p->location);
    }
    return json_object_new_string(buf);
}

static struct json_object *disks_json(const master *m)
{
    struct json_object *arr = json_object_new_array();
    char path[PATH_MAX];

    for (size_t i = 0; i < m->def.ndisks; i++) {
        const vm_disk *d = &m->def.disks[i];
        struct json_object *o;
        if (d->cdrom)
            continue;
        o = json_object_new_object();
        add_string(o, "target", d->target);
        add_string(o, "pool", d->pool);
        add_string(o, "volume", d->volume);
        if (disk_source_path(m->agent, d, path, sizeof(path)) == 0)
            add_string(o, "path", path);
        json_object_array_add(arr, o);
    }
    return arr;
}

struct json_object *master_json(const master *m)
{
    struct json_object *o = json_object_new_object();
    char when[64];
    struct tm tm;
    time_t t = (time_t)m->created;

    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    add_string(o, "name", m->def.name);
    add_string(o, "os", m->os);
    add_string(o, "arch", m->arch);
    add_string(o, "profile", m->profile);
    json_object_object_add(o, "storage", storage_json(m));
    add_string(o, "nics", "");
    add_string(o, "created", when);
    add_string(o, "originator", m->originator);
    add_string(o, "from-vm", m->from_vm);
    json_object_object_add(o, "disks", disks_json(m));
    json_object_object_add(o, "definition", vmdef_to_json(&m->def));
    return o;
}

const char *master_of_path(agent *a, const char *path)
{
    char mine[PATH_MAX];

    for (master *m = a->masters; m; m = m->next)
        for (size_t i = 0; i < m->def.ndisks; i++)
            if (!m->def.disks[i].cdrom &&
                disk_source_path(a, &m->def.disks[i], mine, sizeof(mine)) == 0 && strcmp(mine, path) == 0)
                return m->def.name;
    return NULL;
}

struct json_object *master_of_path_json(agent *a, const char *path)
{
    const char *m = master_of_path(a, path);
    return m ? json_object_new_string(m) : NULL;
}

/* ---- loading --------------------------------------------------------------- */

static void copy_field(struct json_object *o, const char *key, char *buf, size_t len)
{
    struct json_object *v;

    if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
        snprintf(buf, len, "%s", json_object_get_string(v));
}

int master_from_json(agent *a, struct json_object *o, master **ret, char *err, size_t errlen)
{
    struct json_object *def, *created;
    master *m = calloc(1, sizeof(*m));

    if (!m)
        return -ENOMEM;
    if (!json_object_object_get_ex(o, "definition", &def) ||
        vmdef_from_json(def, &m->def, err, errlen) < 0) {
        if (!def)
            snprintf(err, errlen, "definition: missing");
        free(m);
        return -EINVAL;
    }
    m->agent = a;
    copy_field(o, "os", m->os, sizeof(m->os));
    copy_field(o, "arch", m->arch, sizeof(m->arch));
    copy_field(o, "profile", m->profile, sizeof(m->profile));
    copy_field(o, "originator", m->originator, sizeof(m->originator));
    copy_field(o, "from-vm", m->from_vm, sizeof(m->from_vm));
    if (json_object_object_get_ex(o, "created", &created))
        m->created = json_object_get_int64(created);
    snprintf(m->file_path, sizeof(m->file_path), "%s/%s.json", a->masters_dir, m->def.name);
    *ret = m;
    return 0;
}

struct json_object *master_record_json(const master *m)
{
    struct json_object *o = json_object_new_object();

    add_string(o, "os", m->os);
    add_string(o, "arch", m->arch);
    add_string(o, "profile", m->profile);
    add_string(o, "originator", m->originator);
    add_string(o, "from-vm", m->from_vm);
    json_object_object_add(o, "created", json_object_new_int64(m->created));
    json_object_object_add(o, "definition", vmdef_to_json(&m->def));
    return o;
}

static void load_one(agent *a, const char *file)
{
    char path[PATH_MAX], err[512], *text;
    struct json_object *j;
    master *m;

    if (snprintf(path, sizeof(path), "%s/%s", a->masters_dir, file) >= (int)sizeof(path))
        return;
    if (statefile_read(path, MASTER_FILE_MAX, &text, NULL) < 0) {
        log_err("%s: unreadable; skipped", path);
        return;
    }
    j = json_tokener_parse(text);
    free(text);
    if (!j || master_from_json(a, j, &m, err, sizeof(err)) < 0) {
        log_err("%s: invalid master (%s); skipped", path, j ? err : "not JSON");
        json_object_put(j);
        return;
    }
    json_object_put(j);
    if (strcmp(m->file_path, path) != 0 || master_find(a, m->def.name)) {
        log_err("%s: holds master '%s', not its file name; skipped", path, m->def.name);
        master_free(m);
        return;
    }
    master_append(a, m);
}

static int only_json(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return e->d_name[0] != '.' && n > 5 && strcmp(e->d_name + n - 5, ".json") == 0;
}

void masters_load(agent *a)
{
    struct dirent **list;
    int n = scandir(a->masters_dir, &list, only_json, alphasort);

    for (int i = 0; i < n; i++) {
        load_one(a, list[i]->d_name);
        free(list[i]);
    }
    if (n >= 0)
        free(list);
}

void master_append(agent *a, master *m)
{
    master **pp = &a->masters;

    while (*pp)
        pp = &(*pp)->next;
    *pp = m;
}

void master_unlink(agent *a, master *m)
{
    for (master **pp = &a->masters; *pp; pp = &(*pp)->next) {
        if (*pp == m) {
            *pp = m->next;
            return;
        }
    }
}

int master_save(master *m, void (*cb)(int status, void *opaque), void *opaque)
{
    struct json_object *o;
    size_t len;
    const char *text;
    int r;

    if (!m->file && !(m->file = statefile_writer_new(m->agent->loop, m->file_path, 0600)))
        return -ENOMEM;
    o = master_record_json(m);
    text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PRETTY, &len);
    r = statefile_writer_put(m->file, text, len, cb, opaque);
    json_object_put(o);
    return r;
}
