/* vm_disks.c: disk files and chains for a VM's start. */
#include "vm_disks.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent.h"
#include "disk.h"
#include "pool.h"
#include "storage/storage.h"

static int locate_one(agent *a, const vm_disk *d, size_t i, char *buf, char *err, size_t errlen)
{
    pool *p = NULL;

    if (d->cdrom && !d->path && !d->pool[0]) {
        buf[0] = '\0';
        return 0;
    }
    if (!d->path && (!(p = pool_find(a, d->pool)) || !p->active)) {
        snprintf(err, errlen, "disks[%zu].pool: %s %s", i, d->pool,
                 !p ? "is not defined" : p->starting ? "is being started; try again once it is active"
                                                     : "is not started");
        return -EINVAL;
    }
    if (disk_source_path(a, d, buf, PATH_MAX) < 0) {
        snprintf(err, errlen, "disks[%zu]: path too long", i);
        return -ENAMETOOLONG;
    }
    return 0;
}

int vm_disks_locate(agent *a, const vm_def *def, vm_disk_files *ret, char *err, size_t errlen)
{
    int r;

    memset(ret, 0, sizeof(*ret));
    ret->ndisks = def->ndisks;
    for (size_t i = 0; i < def->ndisks; i++)
        if ((r = locate_one(a, &def->disks[i], i, ret->source[i], err, errlen)) < 0)
            return r;
    if (!(ret->roots = pool_roots(a)))
        return -ENOMEM;
    return 0;
}

static bool is_block_device(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISBLK(st.st_mode);
}

/* The file itself, after symlinks, must lie in an active pool, as every
 * backing file must (storage/ checks those). */
static bool inside_pools(const char *path, char **roots)
{
    char real[PATH_MAX], root[PATH_MAX];

    if (!realpath(path, real))
        return false;
    for (char **r = roots; *r; r++) {
        size_t n;
        if (!realpath(*r, root))
            continue;
        n = strlen(root);
        if (strcmp(real, root) == 0 || (strncmp(real, root, n) == 0 && (real[n] == '/' || n == 1)))
            return true;
    }
    return false;
}

static int open_chain(const vm_disk *d, size_t i, vm_disk_files *f, char *err, size_t errlen)
{
    img_open_options o = { .roots = (const char *const *)f->roots, .writable = !d->readonly && !d->cdrom };
    img_format fmt = d->format == VM_DISK_RAW || d->cdrom ? IMG_FORMAT_RAW : IMG_FORMAT_QCOW2;
    qemu_disk_chain *c = &f->chains[i];
    char msg[512];
    img *im;
    int r;

    if (!f->source[i][0])
        return 0;   /* an empty cdrom drive */
    if (!inside_pools(f->source[i], f->roots)) {
        snprintf(err, errlen, "disks[%zu] (%s): %s is not inside an active pool", i, d->target, f->source[i]);
        return -EACCES;
    }
    if ((r = img_open(f->source[i], fmt, &o, &im, msg, sizeof(msg))) < 0) {
        snprintf(err, errlen, "disks[%zu] (%s): %s", i, d->target, msg);
        return r;
    }
    c->depth = img_depth(im);
    for (size_t l = 0; l < c->depth; l++) {
        img_layer_info info;
        img_layer_info_get(im, l, &info);
        snprintf(f->node_paths[i][l], PATH_MAX, "%s", info.path);
        c->nodes[l].path = f->node_paths[i][l];
        c->nodes[l].format = img_format_name(info.format);
        c->nodes[l].block_device = is_block_device(info.path);
    }
    img_close(im);
    return 0;
}

int vm_disks_open(const vm_def *def, vm_disk_files *f, char *err, size_t errlen)
{
    int r;

    for (size_t i = 0; i < def->ndisks; i++)
        if ((r = open_chain(&def->disks[i], i, f, err, errlen)) < 0)
            return r;
    return 0;
}

int vm_disks_open_one(const vm_def *def, size_t i, vm_disk_files *f, char *err, size_t errlen)
{
    return open_chain(&def->disks[i], i, f, err, errlen);
}

void vm_disk_files_free(vm_disk_files *f)
{
    if (!f)
        return;
    pool_roots_free(f->roots);
    free(f);
}
