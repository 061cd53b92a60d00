/* outq.h: bytes waiting to be written to QEMU, with the file descriptors
 * that must travel with them. Internal to qmp/. */
#ifndef AGENTD_QMP_OUTQ_H
#define AGENTD_QMP_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qmp_outq_fd {
    uint64_t pos;  /* stream offset of the first byte the fd rides with */
    int fd;        /* owned by the queue until sent */
    uint64_t tag;  /* the caller's name for it (the command id) */
} qmp_outq_fd;

typedef struct qmp_outq {
    char *buf;
    size_t start, len, cap;
    uint64_t base;            /* stream offset of buf[start] */
    qmp_outq_fd *fds;
    size_t fd_start, fd_len, fd_cap;
} qmp_outq;

void qmp_outq_init(qmp_outq *q);
/* Closes the descriptors not yet sent and frees the memory. */
void qmp_outq_clear(qmp_outq *q);
bool qmp_outq_empty(const qmp_outq *q);
/* Marks the start of the next appended bytes as carrying fd (owned from now). */
int qmp_outq_attach_fd(qmp_outq *q, int fd, uint64_t tag);
/* Moves the head of src into dst: its descriptor if one sits at the head, and
 * the bytes up to src's next descriptor. *ret_tag gets the moved descriptor's
 * tag, or 0 when none moved. */
int qmp_outq_move_segment(qmp_outq *dst, qmp_outq *src, uint64_t *ret_tag);
/* Makes room for n more bytes; appends within that room cannot fail. */
int qmp_outq_reserve(qmp_outq *q, size_t n);
int qmp_outq_append(qmp_outq *q, const char *data, size_t n);
/* Writes what the socket takes: 0 when all is sent, 1 when the socket is
 * full, -errno on a hard error. */
int qmp_outq_flush(qmp_outq *q, int sock);

#endif
