/* layer.h: an opened chain as chain.c builds it and map.c and read.c use
 * it: one img_layer per image file, top first. Internal to storage/. */
#ifndef AGENTD_STORAGE_LAYER_H
#define AGENTD_STORAGE_LAYER_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "storage.h"

struct qcow2_layer;

typedef struct img_layer {
    int fd;
    img_format format;
    char path[PATH_MAX];          /* resolved (realpath) */
    uint64_t virtual_size;
    uint64_t file_end;            /* apparent size: every on-disk offset must be below it */
    uint64_t disk_bytes;          /* st_blocks * 512, or the device size */
    dev_t dev;
    ino_t ino;
    struct qcow2_layer *q;        /* qcow2 only */
} img_layer;

struct img {
    size_t depth;
    img_layer layers[IMG_MAX_CHAIN];
};

/* pread of exactly len bytes at off: -EIO if the file ends first (read.c). */
int img_pread_exact(int fd, void *buf, size_t len, uint64_t off);

#endif
