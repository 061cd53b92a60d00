/* qemu_argv_buf.c: see qemu_argv_buf.h. */
#include "qemu_argv_buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void argv_push_owned(argv_buf *b, char *s)
{
    if (!s && !b->err)
        b->err = -ENOMEM;
    if (b->err) {
        free(s);
        return;
    }
    if (b->n + 2 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        char **v = reallocarray(b->v, cap, sizeof(*v));

        if (!v) {
            free(s);
            b->err = -ENOMEM;
            return;
        }
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = s;
    b->v[b->n] = NULL;
}

void argv_push(argv_buf *b, const char *s)
{
    argv_push_owned(b, strdup(s));
}

void argv_pushf(argv_buf *b, const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    argv_push_owned(b, s);
}
