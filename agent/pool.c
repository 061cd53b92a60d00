/* pool.c: pool definitions, their files, and volume paths. */
#include "pool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>

#include <json-c/json.h>

#include "agent.h"
#include "log.h"
#include "statefile.h"

#define POOL_FILE_MAX (64u * 1024)

pool *pool_find(agent *a, const char *name)
{
    for (pool *p = a->pools; p; p = p->next)
        if (!p->undefined && strcmp(p->name, name) == 0)
            return p;
    return NULL;
}

void pool_append(agent *a, pool *p)
{
    pool **pp = &a->pools;

    while (*pp)
        pp = &(*pp)->next;
    *pp = p;
}

void pool_unlink(agent *a, pool *p)
{
    for (pool **pp = &a->pools; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            return;
        }
    }
}

void pool_free(pool *p)
{
    if (!p)
        return;
    /* Only an agent that ends with a start in flight leaves waiters. */
    while (p->started) {
        pool_waiter *w = p->started;
        p->started = w->next;
        free(w);
    }
    statefile_writer_free(p->file);
    free(p);
}

static bool json_field(struct json_object *o, const char *key, json_type t, struct json_object **ret,
                       char *err, size_t errlen)
{
    *ret = NULL;
    if (!json_object_object_get_ex(o, key, ret))
        return true;
    if (!json_object_is_type(*ret, t)) {
        snprintf(err, errlen, "%s: must be a %s", key, t == json_type_string ? "string" : "boolean");
        return false;
    }
    return true;
}

static int check_members(struct json_object *def, char *err, size_t errlen)
{
    json_object_object_foreach(def, key, val) {
        (void)val;
        if (strcmp(key, "name") && strcmp(key, "location") && strcmp(key, "autostart")) {
            snprintf(err, errlen, "%.64s: unknown field", key);
            return -EINVAL;
        }
    }
    return 0;
}

/* The fixed parts of a pool: where its volumes are once it is active. */
static int set_location(agent *a, pool *p, const img_pool_spec *spec, char *err, size_t errlen)
{
    p->spec = *spec;
    if (img_pool_spec_format(spec, p->location, sizeof(p->location)) < 0) {
        snprintf(err, errlen, "location: too long");
        return -ENAMETOOLONG;
    }
    int n = spec->kind == IMG_POOL_NFS
                ? snprintf(p->path, sizeof(p->path), "%s/%s", a->mnt_dir, p->name)
                : snprintf(p->path, sizeof(p->path), "%s", spec->path);
    if (n >= (int)sizeof(p->path) ||
        snprintf(p->file_path, sizeof(p->file_path), "%s/%s.json", a->pools_dir, p->name) >=
            (int)sizeof(p->file_path)) {
        snprintf(err, errlen, "name: too long for this host's state directory");
        return -ENAMETOOLONG;
    }
    return 0;
}

static int parse_definition(struct json_object *def, const char **name, const char **loc,
                            bool *autostart, char *err, size_t errlen)
{
    struct json_object *n, *l, *as;

    if (!json_object_is_type(def, json_type_object)) {
        snprintf(err, errlen, "definition: must be an object");
        return -EINVAL;
    }
    if (check_members(def, err, errlen) < 0 ||
        !json_field(def, "name", json_type_string, &n, err, errlen) ||
        !json_field(def, "location", json_type_string, &l, err, errlen) ||
        !json_field(def, "autostart", json_type_boolean, &as, err, errlen))
        return -EINVAL;
    if (!n || !vmdef_name_valid(json_object_get_string(n))) {
        snprintf(err, errlen, "name: %s", n ? "1 to 64 letters, digits, '.', '_' or '-', not starting with '.' or '-'"
                                            : "missing");
        return -EINVAL;
    }
    if (!l) {
        snprintf(err, errlen, "location: missing (dir:///path, phy:/dev/x or nfs://server/export)");
        return -EINVAL;
    }
    *name = json_object_get_string(n);
    *loc = json_object_get_string(l);
    *autostart = as ? json_object_get_boolean(as) : true;
    return 0;
}

int pool_new_from_json(agent *a, struct json_object *def, pool **ret, char *err, size_t errlen)
{
    const char *name, *loc;
    char msg[512];
    img_pool_spec spec;
    bool autostart;
    pool *p;
    int r;

    if ((r = parse_definition(def, &name, &loc, &autostart, err, errlen)) < 0)
        return r;
    if ((r = img_pool_spec_parse(loc, &spec, msg, sizeof(msg))) < 0) {
        snprintf(err, errlen, "location: %s", msg);
        return r;
    }
    if (!(p = calloc(1, sizeof(*p))))
        return -ENOMEM;
    p->agent = a;
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->autostart = autostart;
    if ((r = set_location(a, p, &spec, err, errlen)) < 0) {
        free(p);
        return r;
    }
    *ret = p;
    return 0;
}

static const char *kind_name(img_pool_kind k)
{
    switch (k) {
    case IMG_POOL_DIR: return "dir";
    case IMG_POOL_PHY: return "phy";
    default: return "nfs";
    }
}

struct json_object *pool_definition_json(const pool *p)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "name", json_object_new_string(p->name));
    json_object_object_add(o, "location", json_object_new_string(p->location));
    json_object_object_add(o, "autostart", json_object_new_boolean(p->autostart));
    return o;
}

struct json_object *pool_summary_json(const pool *p)
{
    struct json_object *o = pool_definition_json(p);

    json_object_object_add(o, "kind", json_object_new_string(kind_name(p->spec.kind)));
    json_object_object_add(o, "active", json_object_new_boolean(p->active));
    /* A start (an agent's own at its start, too), stop or undefine is in
     * flight: "active" may be about to change. */
    json_object_object_add(o, "busy", json_object_new_boolean(p->busy));
    json_object_object_add(o, "path", json_object_new_string(p->path));
    return o;
}

int pool_save(pool *p, void (*cb)(int status, void *opaque), void *opaque)
{
    struct json_object *o = pool_definition_json(p);
    size_t len;
    const char *text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PRETTY, &len);
    int r;

    if (!p->file && !(p->file = statefile_writer_new(p->agent->loop, p->file_path, 0600))) {
        json_object_put(o);
        return -ENOMEM;
    }
    r = statefile_writer_put(p->file, text, len, cb, opaque);
    json_object_put(o);
    return r;
}

/* ---- volumes ------------------------------------------------------------- */

bool pool_volume_name_valid(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > POOL_VOLUME_MAX || name[0] == '.' || name[0] == '-')
        return false;
    for (const char *c = name; *c; c++)
        if (!(*c >= 'a' && *c <= 'z') && !(*c >= 'A' && *c <= 'Z') && !(*c >= '0' && *c <= '9') &&
            !strchr("._+-", *c))
            return false;
    return true;
}

int pool_volume_path(const pool *p, const char *volume, char *buf, size_t len)
{
    if (!p->active)
        return -ENOENT;
    if (p->spec.kind == IMG_POOL_PHY) {
        if (volume && *volume)
            return -EINVAL;
        return snprintf(buf, len, "%s", p->path) >= (int)len ? -ENAMETOOLONG : 0;
    }
    if (!volume || !pool_volume_name_valid(volume))
        return -EINVAL;
    return snprintf(buf, len, "%s/%s", p->path, volume) >= (int)len ? -ENAMETOOLONG : 0;
}

pool *pool_of_path(agent *a, const char *path, const char **ret_volume)
{
    for (pool *p = a->pools; p; p = p->next) {
        size_t n = strlen(p->path);
        if (p->undefined || !p->active)
            continue;
        if (p->spec.kind == IMG_POOL_PHY) {
            if (strcmp(p->path, path) == 0) {
                *ret_volume = "";
                return p;
            }
            continue;
        }
        const char *rest = path + n;
        if (strncmp(path, p->path, n) == 0 && rest[0] == '/' && !strchr(rest + 1, '/') &&
            pool_volume_name_valid(rest + 1)) {
            *ret_volume = rest + 1;
            return p;
        }
    }
    return NULL;
}

char **pool_roots(agent *a)
{
    size_t n = 0, i = 0;
    char **roots;

    for (pool *p = a->pools; p; p = p->next)
        n++;
    if (!(roots = calloc(n + 1, sizeof(*roots))))
        return NULL;
    for (pool *p = a->pools; p; p = p->next) {
        if (p->undefined || !p->active)
            continue;
        if (!(roots[i++] = strdup(p->path))) {
            pool_roots_free(roots);
            return NULL;
        }
    }
    return roots;
}

void pool_roots_free(char **roots)
{
    if (!roots)
        return;
    for (char **r = roots; *r; r++)
        free(*r);
    free(roots);
}

/* ---- loading ------------------------------------------------------------- */

static void load_one(agent *a, const char *file)
{
    char path[PATH_MAX], err[512], *text;
    struct json_object *j;
    pool *p;

    if (snprintf(path, sizeof(path), "%s/%s", a->pools_dir, file) >= (int)sizeof(path))
        return;
    if (statefile_read(path, POOL_FILE_MAX, &text, NULL) < 0) {
        log_err("%s: unreadable; skipped", path);
        return;
    }
    j = json_tokener_parse(text);
    free(text);
    if (!j || pool_new_from_json(a, j, &p, err, sizeof(err)) < 0) {
        log_err("%s: invalid pool definition (%s); skipped", path, j ? err : "not JSON");
        json_object_put(j);
        return;
    }
    json_object_put(j);
    if (strcmp(p->file_path, path) != 0 || pool_find(a, p->name)) {
        log_err("%s: holds pool '%s', not its file name; skipped", path, p->name);
        pool_free(p);
        return;
    }
    pool_append(a, p);
}

static bool is_json(const char *name)
{
    size_t n = strlen(name);
    return name[0] != '.' && n > 5 && strcmp(name + n - 5, ".json") == 0;
}

static void define_default(agent *a)
{
    char loc[PATH_MAX + 16], err[512];
    struct json_object *def = json_object_new_object();
    pool *p;

    if (a->cfg.default_pool)
        snprintf(loc, sizeof(loc), "%s", a->cfg.default_pool);
    else
        snprintf(loc, sizeof(loc), "dir://%s/images", a->cfg.state_dir);
    json_object_object_add(def, "name", json_object_new_string(POOL_DEFAULT));
    json_object_object_add(def, "location", json_object_new_string(loc));
    if (pool_new_from_json(a, def, &p, err, sizeof(err)) < 0) {
        log_err("default-pool: %s", err);
        json_object_put(def);
        return;
    }
    json_object_put(def);
    struct json_object *o = pool_definition_json(p);
    const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
    if (statefile_write_atomic(p->file_path, text, strlen(text), 0600) < 0)
        log_err("%s: cannot write the default pool", p->file_path);
    json_object_put(o);
    pool_append(a, p);
    log_info("pool %s defined at %s", p->name, p->location);
}

static int only_json(const struct dirent *e)
{
    return is_json(e->d_name);
}

void pools_load(agent *a)
{
    struct dirent **list;
    int n = scandir(a->pools_dir, &list, only_json, alphasort);

    for (int i = 0; i < n; i++) {
        load_one(a, list[i]->d_name);
        free(list[i]);
    }
    if (n >= 0)
        free(list);
    if (!pool_find(a, POOL_DEFAULT))
        define_default(a);
}
