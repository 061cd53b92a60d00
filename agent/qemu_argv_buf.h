/* qemu_argv_buf.h: the growing argv that qemu_argv.c and qemu_disks.c
 * build the QEMU command line in. Errors are sticky: after the first failed
 * allocation every push is a no-op, and the builder checks once at the end.
 * Internal to agent/. */
#ifndef AGENTD_QEMU_ARGV_BUF_H
#define AGENTD_QEMU_ARGV_BUF_H

#include <stddef.h>

typedef struct argv_buf {
    char **v;
    size_t n, cap;
    int err;
} argv_buf;

/* Appends s, taken over (NULL: a failed allocation, which sticks). */
void argv_push_owned(argv_buf *b, char *s);
void argv_push(argv_buf *b, const char *s);
void argv_pushf(argv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
