/* frame.c: line framing over a growable buffer.
 *
 * QEMU writes one JSON object a line. A reply may arrive in many reads and a
 * read may carry many replies, so the buffer keeps the unfinished tail and
 * remembers how far it has searched for '\n': a 10 MB reply costs one pass,
 * not one pass per read. */
#include "qmp.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FRAME_INITIAL_CAP 65536

void qmp_frame_init(qmp_frame *f, size_t max_line)
{
    memset(f, 0, sizeof(*f));
    f->max = max_line;
}

void qmp_frame_free(qmp_frame *f)
{
    free(f->buf);
    qmp_frame_init(f, f->max);
}

void qmp_frame_reset(qmp_frame *f)
{
    f->len = f->start = f->scan = 0;
}

/* Drops the lines already handed out so the tail starts at offset 0. */
static void frame_compact(qmp_frame *f)
{
    if (f->start == 0)
        return;
    memmove(f->buf, f->buf + f->start, f->len - f->start);
    f->len -= f->start;
    f->scan -= f->start;
    f->start = 0;
}

static int frame_grow(qmp_frame *f, size_t need)
{
    /* One byte more than the longest line, for its '\n', plus room for the
     * NUL that qmp_frame_next writes over it. */
    size_t limit = f->max + 2;
    size_t cap = f->cap ? f->cap : FRAME_INITIAL_CAP;

    if (need > limit)
        need = limit;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
    if (cap > limit && limit >= FRAME_INITIAL_CAP)
        cap = limit;
    if (cap <= f->cap)
        return 0;
    char *b = realloc(f->buf, cap);
    if (!b)
        return -ENOMEM;
    f->buf = b;
    f->cap = cap;
    return 0;
}

int qmp_frame_reserve(qmp_frame *f, size_t min, char **ret_ptr, size_t *ret_avail)
{
    if (f->start > 0 && (f->start == f->len || f->cap - f->len < min))
        frame_compact(f);
    if (f->cap - f->len < min) {
        int r = frame_grow(f, f->len + min);
        if (r < 0)
            return r;
    }
    if (f->cap == f->len)
        return -EMSGSIZE;
    *ret_ptr = f->buf + f->len;
    *ret_avail = f->cap - f->len;
    return 0;
}

void qmp_frame_commit(qmp_frame *f, size_t n)
{
    f->len += n;
}

int qmp_frame_next(qmp_frame *f, char **ret_line, size_t *ret_len)
{
    size_t from = f->scan > f->start ? f->scan : f->start;
    char *nl = memchr(f->buf + from, '\n', f->len - from);

    if (!nl) {
        f->scan = f->len;
        return f->len - f->start > f->max ? -EMSGSIZE : 0;
    }
    size_t end = (size_t)(nl - f->buf);
    char *line = f->buf + f->start;
    size_t n = end - f->start;

    if (n > f->max)
        return -EMSGSIZE;
    if (n > 0 && line[n - 1] == '\r')
        n--;
    line[n] = '\0';
    f->start = end + 1;
    f->scan = f->start;
    *ret_line = line;
    *ret_len = n;
    return 1;
}
