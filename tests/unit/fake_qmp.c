/* fake_qmp.c: the scripted QMP server behind the unit tests. */
#include "fake_qmp.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct fake_conn {
    int fd;
    char buf[1 << 16];
    size_t len;
    int pending_fd;
};

struct fake_qmp {
    pthread_t thread;
    char path[108];
    int delay_ms;
    fake_script script;
    void *arg;
};

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static int listen_on(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    unlink(path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static void *server_main(void *p)
{
    fake_qmp *s = p;
    fake_conn *c = calloc(1, sizeof(*c));
    int lfd;

    sleep_ms(s->delay_ms);
    lfd = listen_on(s->path);
    if (lfd < 0 || !c) {
        free(c);
        return NULL;
    }
    struct pollfd pfd = { .fd = lfd, .events = POLLIN };
    if (poll(&pfd, 1, 10000) == 1) {
        c->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        c->pending_fd = -1;
        if (c->fd >= 0) {
            s->script(c, s->arg);
            close(c->fd);
        }
    }
    close(lfd);
    unlink(s->path);
    free(c);
    return NULL;
}

fake_qmp *fake_qmp_start(const char *path, int listen_delay_ms, fake_script script, void *arg)
{
    fake_qmp *s = calloc(1, sizeof(*s));

    snprintf(s->path, sizeof(s->path), "%s", path);
    s->delay_ms = listen_delay_ms;
    s->script = script;
    s->arg = arg;
    if (pthread_create(&s->thread, NULL, server_main, s) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

void fake_qmp_stop(fake_qmp *s)
{
    if (!s)
        return;
    pthread_join(s->thread, NULL);
    free(s);
}

int fake_send_bytes(fake_conn *c, const void *data, size_t n)
{
    const char *p = data;

    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int fake_send(fake_conn *c, const char *text)
{
    return fake_send_bytes(c, text, strlen(text));
}

static void take_fd(fake_conn *c, struct msghdr *msg)
{
    for (struct cmsghdr *h = CMSG_FIRSTHDR(msg); h; h = CMSG_NXTHDR(msg, h)) {
        if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
            int fd;
            memcpy(&fd, CMSG_DATA(h), sizeof(fd));
            if (c->pending_fd >= 0)
                close(c->pending_fd);
            c->pending_fd = fd;
        }
    }
}

static int fill(fake_conn *c, int timeout_ms)
{
    struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
    union {
        char buf[CMSG_SPACE(sizeof(int) * 4)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { c->buf + c->len, sizeof(c->buf) - c->len - 1 };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                          .msg_controllen = sizeof(ctl.buf) };

    if (iov.iov_len == 0)
        return -EMSGSIZE;
    int r = poll(&pfd, 1, timeout_ms);
    if (r == 0)
        return -ETIMEDOUT;
    ssize_t n = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC);
    if (n <= 0)
        return -ECONNRESET;
    take_fd(c, &msg);
    c->len += (size_t)n;
    return 0;
}

int fake_read_line_fd(fake_conn *c, char *buf, size_t len, int timeout_ms, int *ret_fd)
{
    char *nl;
    int r;

    while (!(nl = memchr(c->buf, '\n', c->len)))
        if ((r = fill(c, timeout_ms)) < 0)
            return r;
    size_t n = (size_t)(nl - c->buf);
    snprintf(buf, len, "%.*s", (int)n, c->buf);
    memmove(c->buf, nl + 1, c->len - n - 1);
    c->len -= n + 1;
    if (ret_fd) {
        *ret_fd = c->pending_fd;
        c->pending_fd = -1;
    }
    return 0;
}

int fake_read_line(fake_conn *c, char *buf, size_t len, int timeout_ms)
{
    return fake_read_line_fd(c, buf, len, timeout_ms, NULL);
}

uint64_t fake_id_of(const char *line)
{
    const char *p = strstr(line, "\"id\":");

    return p ? strtoull(p + 5, NULL, 10) : 0;
}

void fake_command_of(const char *line, char *buf, size_t len)
{
    const char *p = strstr(line, "\"execute\":\"");

    buf[0] = '\0';
    if (p) {
        p += 11;
        snprintf(buf, len, "%.*s", (int)strcspn(p, "\""), p);
    }
}

int fake_greet(fake_conn *c, bool offer_oob, char *caps_line, size_t len)
{
    char line[4096], reply[128];
    int r;

    r = fake_send(c, offer_oob
        ? "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 1, \"minor\": 2, \"major\": 7}, "
          "\"package\": \"fake\"}, \"capabilities\": [\"oob\"]}}\r\n"
        : "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 6}, "
          "\"package\": \"fake\"}, \"capabilities\": []}}\r\n");
    if (r < 0 || (r = fake_read_line(c, line, sizeof(line), 5000)) < 0)
        return r;
    if (caps_line)
        snprintf(caps_line, len, "%s", line);
    if (!strstr(line, "\"qmp_capabilities\""))
        return -EPROTO;
    snprintf(reply, sizeof(reply), "{\"return\": {}, \"id\": %llu}\r\n",
             (unsigned long long)fake_id_of(line));
    return fake_send(c, reply);
}

void fake_hangup(fake_conn *c)
{
    shutdown(c->fd, SHUT_RDWR);
}

int fake_wait_hangup(fake_conn *c, int timeout_ms)
{
    for (;;) {
        int r = fill(c, timeout_ms);
        if (r == -ECONNRESET)
            return 0;
        if (r < 0 && r != -EMSGSIZE)
            return r;
        c->len = 0;
    }
}
