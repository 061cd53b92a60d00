/* outq.c: the send queue.
 *
 * QEMU takes a passed descriptor as belonging to the command whose bytes
 * arrive with it, so each sendmsg() that carries a descriptor starts exactly
 * at the first byte of that command and stops before the next descriptor's
 * command. */
#include "outq.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void qmp_outq_init(qmp_outq *q)
{
    memset(q, 0, sizeof(*q));
}

void qmp_outq_clear(qmp_outq *q)
{
    for (size_t i = q->fd_start; i < q->fd_len; i++)
        close(q->fds[i].fd);
    free(q->buf);
    free(q->fds);
    qmp_outq_init(q);
}

bool qmp_outq_empty(const qmp_outq *q)
{
    return q->start == q->len;
}

static size_t next_chunk(const qmp_outq *q, int *ret_fd);

static uint64_t tail_pos(const qmp_outq *q)
{
    return q->base + (q->len - q->start);
}

int qmp_outq_attach_fd(qmp_outq *q, int fd, uint64_t tag)
{
    if (q->fd_start > 0 && q->fd_start == q->fd_len)
        q->fd_start = q->fd_len = 0;
    if (q->fd_len == q->fd_cap) {
        size_t cap = q->fd_cap ? q->fd_cap * 2 : 8;
        qmp_outq_fd *f = realloc(q->fds, cap * sizeof(*f));
        if (!f)
            return -ENOMEM;
        q->fds = f;
        q->fd_cap = cap;
    }
    q->fds[q->fd_len++] = (qmp_outq_fd){ .pos = tail_pos(q), .fd = fd, .tag = tag };
    return 0;
}

int qmp_outq_reserve(qmp_outq *q, size_t n)
{
    if (q->start > 0 && (q->start == q->len || q->start > q->cap / 2)) {
        memmove(q->buf, q->buf + q->start, q->len - q->start);
        q->len -= q->start;
        q->start = 0;
    }
    if (q->cap - q->len >= n)
        return 0;
    size_t cap = q->cap ? q->cap : 4096;
    while (cap - q->len < n) {
        if (cap > SIZE_MAX / 2)
            return -ENOMEM;
        cap *= 2;
    }
    char *b = realloc(q->buf, cap);
    if (!b)
        return -ENOMEM;
    q->buf = b;
    q->cap = cap;
    return 0;
}

int qmp_outq_append(qmp_outq *q, const char *data, size_t n)
{
    int r = qmp_outq_reserve(q, n);

    if (r < 0)
        return r;
    if (n)
        memcpy(q->buf + q->len, data, n);
    q->len += n;
    return 0;
}

int qmp_outq_move_segment(qmp_outq *dst, qmp_outq *src, uint64_t *ret_tag)
{
    int fd;
    size_t n = next_chunk(src, &fd);
    int r;

    *ret_tag = 0;
    if (fd >= 0) {
        if ((r = qmp_outq_attach_fd(dst, fd, src->fds[src->fd_start].tag)) < 0)
            return r;
        *ret_tag = src->fds[src->fd_start].tag;
        src->fd_start++;
    }
    if ((r = qmp_outq_append(dst, src->buf + src->start, n)) < 0)
        return r;
    src->start += n;
    src->base += n;
    if (qmp_outq_empty(src))
        src->start = src->len = 0;
    return 0;
}

static ssize_t send_chunk(int sock, const char *data, size_t n, int fd)
{
    struct iovec iov = { .iov_base = (void *)data, .iov_len = n };
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

    if (fd >= 0) {
        memset(&ctl, 0, sizeof(ctl));
        msg.msg_control = ctl.buf;
        msg.msg_controllen = sizeof(ctl.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    return sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* How many bytes from the head may go in one sendmsg, and with which fd. */
static size_t next_chunk(const qmp_outq *q, int *ret_fd)
{
    size_t n = q->len - q->start;
    size_t i = q->fd_start;

    *ret_fd = -1;
    if (i < q->fd_len && q->fds[i].pos == q->base) {
        *ret_fd = q->fds[i].fd;
        i++;
    }
    if (i < q->fd_len && q->fds[i].pos - q->base < n)
        n = (size_t)(q->fds[i].pos - q->base);
    return n;
}

int qmp_outq_flush(qmp_outq *q, int sock)
{
    while (!qmp_outq_empty(q)) {
        int fd;
        size_t n = next_chunk(q, &fd);
        ssize_t w = send_chunk(sock, q->buf + q->start, n, fd);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 1;
            return -errno;
        }
        if (fd >= 0) {
            close(fd);
            q->fd_start++;
        }
        q->start += (size_t)w;
        q->base += (uint64_t)w;
    }
    q->start = q->len = 0;
    return 0;
}
