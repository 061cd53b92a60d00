/* frame.h: splits a byte stream into lines, the framing QMP uses.
 * Internal to qmp/; the fuzz target drives it directly. */
#ifndef AGENTD_QMP_FRAME_H
#define AGENTD_QMP_FRAME_H

#include <stddef.h>

typedef struct qmp_frame {
    char *buf;
    size_t len;    /* bytes held */
    size_t start;  /* first byte not yet returned as a line */
    size_t scan;   /* bytes before this offset are known to hold no '\n' */
    size_t cap;
    size_t max;    /* longest line accepted, without its '\n' */
} qmp_frame;

void qmp_frame_init(qmp_frame *f, size_t max_line);
void qmp_frame_free(qmp_frame *f);
void qmp_frame_reset(qmp_frame *f);

/* Space to read into: at least min bytes unless the line limit forbids it. */
int qmp_frame_reserve(qmp_frame *f, size_t min, char **ret_ptr, size_t *ret_avail);
void qmp_frame_commit(qmp_frame *f, size_t n);

/* Returns 1 and the next complete line (NUL-terminated in place, '\n' and a
 * trailing '\r' removed), 0 when no complete line is buffered, or -EMSGSIZE
 * when the line being received is longer than the limit. The line stays valid
 * until the next reserve. */
int qmp_frame_next(qmp_frame *f, char **ret_line, size_t *ret_len);

#endif
