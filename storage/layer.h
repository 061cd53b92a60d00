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

struct qcow2_header;

/* pread of exactly len bytes at off: -EIO if the file ends first (read.c). */
int img_pread_exact(int fd, void *buf, size_t len, uint64_t off);

/* Inflates one compressed cluster (raw deflate, as QEMU writes it): it must
 * produce exactly outlen bytes; -EIO otherwise (read.c). */
int qcow2_inflate_cluster(const uint8_t *in, size_t inlen, uint8_t *out, size_t outlen);

/* pwrite of exactly len bytes at off (create.c). */
int img_pwrite_exact(int fd, const void *buf, size_t len, uint64_t off);

/* What every writer of a new image checks first (create.c), each with a
 * message naming path: that path is a file name that does not exist yet
 * (-EEXIST otherwise); a virtual size rounded up to whole sectors, as
 * qemu-img does, into *ret (-EFBIG past 2^61 bytes); a qcow2 cluster size,
 * a power of two from 512 to 2 MiB (-EINVAL). */
int img_check_new_path(const char *path, char *err, size_t errlen);
int img_round_size(const char *path, uint64_t size, uint64_t *ret, char *err, size_t errlen);
int img_check_cluster_size(const char *path, uint32_t cs, char *err, size_t errlen);

/* Reads and parses the header cluster of the qcow2 file open on fd, whose
 * size is file_end; a message in msg names what is wrong (chain.c). */
int qcow2_read_header(int fd, uint64_t file_end, struct qcow2_header *h, char *msg,
                      size_t msglen);

/* A backing name as QEMU combines it with its overlay's path: absolute as
 * is, else relative to the overlay's directory; out holds PATH_MAX bytes.
 * -ENAMETOOLONG if it does not fit (chain.c). */
int img_backing_path(const char *overlay, const char *name, char *out);

/* 1 if real (a resolved path) lies inside one of roots (resolved here), 0 if
 * not, -ENOMEM (chain.c). */
int img_path_in_roots(const char *real, const char *const *roots);

#endif
