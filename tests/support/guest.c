/* Boots the test guest (tools/mkguest) in QEMU for end-to-end tests and speaks the
 * line protocol its init serves on the serial console: "?<id> <command>" out,
 * "=<id> <data>" lines and one ".<id> ok|err <message>" line back. Every wait has
 * a deadline, so a hung guest fails a test instead of hanging it. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "guest.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/deadline.h"

#define GUEST_APPEND "console=ttyS0 quiet loglevel=1 panic=-1"
#define DEFAULT_START_TIMEOUT_MS 10000
#define KILL_REAP_TIMEOUT_MS 5000
#define RETRY_INTERVAL_MS 10
#define FIXED_ARGC 40
#define FALLBACK_FD_LIMIT 4096
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static void close_fdp(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}
static void free_p(void *p)
{
    free(*(void **)p);
}
#define _cleanup_close_ __attribute__((cleanup(close_fdp)))
#define _cleanup_free_ __attribute__((cleanup(free_p)))

/* Everything the QEMU command line needs, formatted before fork so the child
 * only calls async-signal-safe functions. */
struct qemu_cmd {
    char binary[PATH_MAX];
    char kernel[PATH_MAX];
    char initrd[PATH_MAX];
    char pidfile[PATH_MAX];
    char memory[16];
    char vcpus[16];
    char serial_spec[2 * PATH_MAX];
    char qmp_spec[PATH_MAX];
    const char **argv;
};

static int format(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int format(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size)
        return -ENAMETOOLONG;
    return 0;
}

static const char *pick(const char *given, const char *env_name, const char *fallback)
{
    const char *env;

    if (given)
        return given;
    env = getenv(env_name);
    return env && *env ? env : fallback;
}

static const char *default_guest_dir(void)
{
#ifdef AGENTD_GUEST_DIR
    return AGENTD_GUEST_DIR;
#else
    return NULL;
#endif
}

/* Resolved in the parent, so a missing binary is -ENOENT from guest_launch
 * rather than an exit status of the child. */
static int find_binary(const char *name, char *ret_path, size_t size)
{
    const char *dir;
    const char *end;
    char candidate[PATH_MAX];

    if (strchr(name, '/'))
        return access(name, X_OK) < 0 ? -errno : format(ret_path, size, "%s", name);
    for (dir = getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin"; *dir; dir = *end ? end + 1 : end) {
        end = strchrnul(dir, ':');
        if (end == dir)
            continue;
        if (format(candidate, sizeof(candidate), "%.*s/%s", (int)(end - dir), dir, name) == 0 &&
            access(candidate, X_OK) == 0)
            return format(ret_path, size, "%s", candidate);
    }
    return -ENOENT;
}

static int set_paths(const char *run_dir, struct guest *g)
{
    int r;

    /* QEMU option values cannot hold a bare comma, and -qmp unix: has no escape. */
    if (strchr(run_dir, ','))
        return -EINVAL;
    r = format(g->serial_path, sizeof(g->serial_path), "%s/serial.sock", run_dir);
    if (r == 0)
        r = format(g->qmp_path, sizeof(g->qmp_path), "%s/qmp.sock", run_dir);
    if (r == 0)
        r = format(g->log_path, sizeof(g->log_path), "%s/serial.log", run_dir);
    if (r == 0)
        r = format(g->stderr_path, sizeof(g->stderr_path), "%s/qemu.stderr", run_dir);
    return r;
}

static int format_cmd_strings(const struct guest_opts *o, const struct guest *g, struct qemu_cmd *c)
{
    const char *dir = pick(o->guest_dir, "AGENTD_GUEST_DIR", default_guest_dir());
    int r;

    if (!dir)
        return -EINVAL;
    if (o->memory_mb < 0 || o->vcpus < 0)
        return -EINVAL;
    r = format(c->kernel, sizeof(c->kernel), "%s/vmlinuz", dir);
    if (r == 0)
        r = format(c->initrd, sizeof(c->initrd), "%s/initrd.img", dir);
    if (r == 0)
        r = format(c->pidfile, sizeof(c->pidfile), "%s/qemu.pid", o->run_dir);
    if (r == 0)
        r = format(c->memory, sizeof(c->memory), "%d", o->memory_mb ? o->memory_mb : 256);
    if (r == 0)
        r = format(c->vcpus, sizeof(c->vcpus), "%d", o->vcpus ? o->vcpus : 1);
    if (r == 0)
        r = format(c->serial_spec, sizeof(c->serial_spec),
                   "socket,id=ser0,path=%s,server=on,wait=off,logfile=%s", g->serial_path, g->log_path);
    if (r == 0)
        r = format(c->qmp_spec, sizeof(c->qmp_spec), "unix:%s,server=on,wait=off", g->qmp_path);
    if (r < 0)
        return r;
    /* Checked here so a guest that was never built fails with a clear -ENOENT. */
    if (access(c->kernel, R_OK) < 0 || access(c->initrd, R_OK) < 0)
        return -errno;
    return 0;
}

static size_t count_args(const char *const *args)
{
    size_t n = 0;

    while (args && args[n])
        n++;
    return n;
}

static int build_argv(const struct guest_opts *o, struct qemu_cmd *c)
{
    const char *accel = pick(o->accel, "AGENTD_ACCEL", "tcg");
    size_t extra = count_args(o->extra_args);
    const char **a;
    size_t n = 0;

    if (extra > 4096)
        return -E2BIG;
    a = calloc(FIXED_ARGC + extra + 1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a[n++] = c->binary;
    a[n++] = "-nodefaults";
    a[n++] = "-no-user-config";
    a[n++] = "-display";
    a[n++] = "none";
    a[n++] = "-machine";
    a[n++] = "q35";
    a[n++] = "-accel";
    a[n++] = accel;
    a[n++] = "-m";
    a[n++] = c->memory;
    a[n++] = "-smp";
    a[n++] = c->vcpus;
    a[n++] = "-kernel";
    a[n++] = c->kernel;
    a[n++] = "-initrd";
    a[n++] = c->initrd;
    a[n++] = "-append";
    a[n++] = GUEST_APPEND;
    a[n++] = "-chardev";
    a[n++] = c->serial_spec;
    a[n++] = "-serial";
    a[n++] = "chardev:ser0";
    a[n++] = "-qmp";
    a[n++] = c->qmp_spec;
    a[n++] = "-pidfile";
    a[n++] = c->pidfile;
    if (o->paused)
        a[n++] = "-S";
    if (o->no_reboot)
        a[n++] = "-no-reboot";
    for (size_t i = 0; i < extra; i++)
        a[n++] = o->extra_args[i];
    a[n] = NULL;
    c->argv = a;
    return 0;
}

static int prepare_cmd(const struct guest_opts *o, const struct guest *g, struct qemu_cmd *c)
{
    int r = find_binary(pick(o->qemu, "AGENTD_QEMU", "qemu-system-x86_64"), c->binary, sizeof(c->binary));

    if (r == 0)
        r = format_cmd_strings(o, g, c);
    if (r == 0)
        r = build_argv(o, c);
    return r;
}

/* The child inherits the test's signal mask and ignored signals; QEMU must
 * start from defaults or it may ignore the SIGTERM a test sends it. */
static void reset_signals(void)
{
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    sigset_t none;

    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &dfl, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* An fd the test itself inherited without O_CLOEXEC (a harness's pipe, say) must
 * not reach QEMU: held open there, it keeps the harness waiting for EOF. */
static void mark_inherited_fds_cloexec(void)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
        return;
#endif
    for (int fd = 3; fd < FALLBACK_FD_LIMIT; fd++)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/* Runs in the forked child: only async-signal-safe calls. Its own session keeps
 * QEMU out of the terminal's process group; PDEATHSIG kills it when the thread
 * that forked it dies, so a crashed test never leaves an orphan QEMU. */
static void exec_qemu(const struct qemu_cmd *c, int null_fd, int out_fd, int status_fd, pid_t parent)
{
    int err;

    reset_signals();
    setsid();
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
        _exit(127);
    if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 ||
        dup2(out_fd, STDERR_FILENO) < 0)
        goto fail;
    mark_inherited_fds_cloexec();
    execv(c->binary, (char *const *)c->argv);
fail:
    err = errno;
    (void)!write(status_fd, &err, sizeof(err));
    _exit(127);
}

/* The status pipe is O_CLOEXEC: EOF means execv succeeded, an int is its errno. */
static int read_exec_status(int fd, int64_t deadline)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int err = 0;
    ssize_t n;

    for (;;) {
        int r = poll(&p, 1, remaining_ms(deadline));
        if (r == 0)
            return -ETIMEDOUT;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        n = read(fd, &err, sizeof(err));
        if (n < 0 && errno == EINTR)
            continue;
        if (n == (ssize_t)sizeof(err))
            return err > 0 ? -err : -EIO;
        return n == 0 ? 0 : -EIO;
    }
}

static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -1 : fd;
#else
    (void)pid;
    return -1;
#endif
}

static int spawn_qemu(const struct qemu_cmd *c, struct guest *g, int64_t deadline)
{
    _cleanup_close_ int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    _cleanup_close_ int out_fd = open(g->stderr_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    _cleanup_close_ int status_rd = -1;
    _cleanup_close_ int status_wr = -1;
    int pipe_fds[2];
    pid_t parent = getpid();
    pid_t pid;

    if (null_fd < 0 || out_fd < 0)
        return -errno;
    if (pipe2(pipe_fds, O_CLOEXEC) < 0)
        return -errno;
    status_rd = pipe_fds[0];
    status_wr = pipe_fds[1];
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0)
        exec_qemu(c, null_fd, out_fd, status_wr, parent);
    g->pid = pid;
    g->pidfd = open_pidfd(pid);
    close(status_wr);
    status_wr = -1;
    return read_exec_status(status_rd, deadline);
}

/* Returns 1 once QEMU has been reaped (its status kept in g), 0 while it runs. */
static int reap(struct guest *g)
{
    int status;
    pid_t r;

    if (g->pid < 0)
        return 1;
    r = waitpid(g->pid, &status, WNOHANG);
    if (r < 0)
        return errno == EINTR ? 0 : -errno;
    if (r == 0)
        return 0;
    g->exit_status = status;
    g->pid = -1;
    close_fdp(&g->pidfd);
    g->pidfd = -1;
    return 1;
}

static void wait_for_child(struct guest *g, int timeout_ms)
{
    struct pollfd p = { .fd = g->pidfd, .events = POLLIN };

    if (g->pidfd >= 0)
        poll(&p, 1, timeout_ms);
    else
        sleep_ms(timeout_ms < RETRY_INTERVAL_MS ? timeout_ms : RETRY_INTERVAL_MS);
}

static int connect_unix(const char *path, int *ret_fd)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    *ret_fd = fd;
    return 0;
}

/* QEMU creates its sockets some milliseconds after exec; until then connect
 * fails with ENOENT (or ECONNREFUSED before listen). */
static int connect_serial(struct guest *g, int64_t deadline)
{
    for (;;) {
        int r = connect_unix(g->serial_path, &g->serial_fd);
        if (r == 0)
            return 0;
        if (r != -ENOENT && r != -ECONNREFUSED && r != -EAGAIN)
            return r;
        r = reap(g);
        if (r != 0)
            return r < 0 ? r : -ECHILD;
        if (remaining_ms(deadline) == 0)
            return -ETIMEDOUT;
        sleep_ms(RETRY_INTERVAL_MS);
    }
}

/* The QMP socket is created just after the serial one; tests connect to it as
 * soon as guest_launch returns, so it must exist by then. */
static int wait_qmp_socket(struct guest *g, int64_t deadline)
{
    struct stat st;

    while (stat(g->qmp_path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
        int r = reap(g);
        if (r != 0)
            return r < 0 ? r : -ECHILD;
        if (remaining_ms(deadline) == 0)
            return -ETIMEDOUT;
        sleep_ms(RETRY_INTERVAL_MS);
    }
    return 0;
}

static void guest_reset(struct guest *g)
{
    memset(g, 0, sizeof(*g));
    g->pid = -1;
    g->serial_fd = -1;
    g->pidfd = -1;
    g->launched = true;
}

int guest_attach(struct guest *g, const char *serial_path)
{
    int r;

    guest_reset(g);   /* pid -1: guest_kill closes the socket and kills nothing */
    if (format(g->serial_path, sizeof(g->serial_path), "%s", serial_path) < 0)
        return -ENAMETOOLONG;
    if ((r = connect_unix(g->serial_path, &g->serial_fd)) < 0)
        return r;
    return 0;
}

static int launch(const struct guest_opts *o, struct guest *g, struct qemu_cmd *c)
{
    int64_t deadline = now_ms() + (o->start_timeout_ms > 0 ? o->start_timeout_ms : DEFAULT_START_TIMEOUT_MS);
    int r;

    if (!o->run_dir)
        return -EINVAL;
    r = set_paths(o->run_dir, g);
    if (r < 0)
        return r;
    r = prepare_cmd(o, g, c);
    if (r < 0)
        return r;
    /* A socket left by an earlier run would refuse connections and fool the wait. */
    unlink(g->serial_path);
    unlink(g->qmp_path);
    r = spawn_qemu(c, g, deadline);
    if (r == 0)
        r = connect_serial(g, deadline);
    if (r == 0)
        r = wait_qmp_socket(g, deadline);
    return r;
}

int guest_launch(const struct guest_opts *o, struct guest *g)
{
    _cleanup_free_ struct qemu_cmd *c = calloc(1, sizeof(*c));
    int r;

    guest_reset(g);
    if (!c)
        return -ENOMEM;
    r = launch(o, g, c);
    free(c->argv);
    if (r < 0)
        guest_kill(g);
    return r;
}

/* Takes the first complete line out of the buffer, without \n or a trailing \r.
 * A line too long for the buffer is handed out truncated, and its tail dropped
 * when it arrives. Returns 1 with a line, 0 when more input is needed. */
static int take_line(struct guest *g, char *line, bool *ret_truncated)
{
    for (;;) {
        char *nl = memchr(g->buf, '\n', g->buf_len);
        size_t n = nl ? (size_t)(nl - g->buf) : g->buf_len;
        bool is_tail = g->line_truncated;

        if (!nl && g->buf_len < sizeof(g->buf))
            return 0;
        memcpy(line, g->buf, n);
        line[n] = '\0';
        if (n > 0 && line[n - 1] == '\r')
            line[n - 1] = '\0';
        g->buf_len -= nl ? n + 1 : n;
        memmove(g->buf, g->buf + (nl ? n + 1 : n), g->buf_len);
        g->line_truncated = !nl;
        if (!is_tail) {
            *ret_truncated = !nl;
            return 1;
        }
    }
}

static int fill_buffer(struct guest *g, int64_t deadline)
{
    struct pollfd p = { .fd = g->serial_fd, .events = POLLIN };
    ssize_t n;
    int r;

    if (g->serial_fd < 0)
        return -EBADF;
    r = poll(&p, 1, remaining_ms(deadline));
    if (r == 0)
        return -ETIMEDOUT;
    if (r < 0)
        return errno == EINTR ? 0 : -errno;
    n = read(g->serial_fd, g->buf + g->buf_len, sizeof(g->buf) - g->buf_len);
    if (n == 0)
        return -EPIPE;
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 0 : -errno;
    g->buf_len += (size_t)n;
    return 0;
}

/* line must hold GUEST_LINE_MAX + 1 bytes. */
static int next_line(struct guest *g, int64_t deadline, char *line, bool *ret_truncated)
{
    for (;;) {
        if (take_line(g, line, ret_truncated))
            return 0;
        int r = fill_buffer(g, deadline);
        if (r < 0)
            return r;
    }
}

int guest_wait_line(struct guest *g, const char *prefix, int timeout_ms, char *ret_line, size_t len)
{
    int64_t deadline = now_ms() + timeout_ms;
    char line[GUEST_LINE_MAX + 1];
    size_t plen = strlen(prefix);
    bool truncated;

    for (;;) {
        int r = next_line(g, deadline, line, &truncated);
        if (r < 0)
            return r;
        if (strncmp(line, prefix, plen) != 0)
            continue;
        if (!ret_line)
            return 0;
        if (strlen(line) >= len)
            return -ENOBUFS;
        strcpy(ret_line, line);
        return 0;
    }
}

int guest_wait_ready(struct guest *g, int timeout_ms)
{
    return guest_wait_line(g, GUEST_READY_LINE, timeout_ms, NULL, 0);
}

static int send_all(struct guest *g, const char *data, size_t size, int64_t deadline)
{
    struct pollfd p = { .fd = g->serial_fd, .events = POLLOUT };

    while (size > 0) {
        int r = poll(&p, 1, remaining_ms(deadline));
        if (r == 0)
            return -ETIMEDOUT;
        if (r < 0 && errno != EINTR)
            return -errno;
        /* MSG_NOSIGNAL: a QEMU that died must be an error, not a SIGPIPE. */
        ssize_t n = send(g->serial_fd, data, size, MSG_NOSIGNAL);
        if (n < 0 && errno != EINTR && errno != EAGAIN)
            return -errno;
        if (n > 0) {
            data += n;
            size -= (size_t)n;
        }
    }
    return 0;
}

/* The data lines of one query, joined with \n. */
struct query_output {
    char *text;
    size_t cap;
    size_t used;
    unsigned lines;
    bool overflow;
    bool truncated;
};

static void output_append(struct query_output *out, const char *s)
{
    size_t need = strlen(s) + (out->lines > 0);

    out->lines++;
    if (out->used + need >= out->cap) {
        out->overflow = true;
        return;
    }
    if (out->lines > 1)
        out->text[out->used++] = '\n';
    strcpy(out->text + out->used, s);
    out->used += strlen(s);
}

/* Returns what follows "<kind><id>" and one space in line, or NULL when the
 * line is not a reply of that kind to that id. */
static const char *reply_body(const char *line, char kind, unsigned id)
{
    char head[16];
    int n = snprintf(head, sizeof(head), "%c%u", kind, id);
    const char *rest;

    if (strncmp(line, head, (size_t)n) != 0)
        return NULL;
    rest = line + n;
    if (*rest == ' ')
        return rest + 1;
    return *rest == '\0' ? rest : NULL;
}

/* Reads until the final line of query id; data lines go to out. Returns 0 for
 * "ok", -EIO for "err" with the message in err_msg. */
static int collect_reply(struct guest *g, unsigned id, int64_t deadline, struct query_output *out,
                         char *err_msg, size_t err_size)
{
    char line[GUEST_LINE_MAX + 1];
    const char *body;
    bool truncated;

    for (;;) {
        int r = next_line(g, deadline, line, &truncated);
        if (r < 0)
            return r;
        if ((body = reply_body(line, '=', id))) {
            out->truncated |= truncated;
            output_append(out, body);
        } else if ((body = reply_body(line, '.', id))) {
            if (strcmp(body, "ok") == 0)
                return 0;
            snprintf(err_msg, err_size, "%s", strncmp(body, "err ", 4) == 0 ? body + 4 : body);
            return -EIO;
        }
    }
}

int guest_query(struct guest *g, const char *command, int timeout_ms, char *ret_out, size_t len)
{
    int64_t deadline = now_ms() + timeout_ms;
    char request[GUEST_LINE_MAX];
    char err_msg[GUEST_LINE_MAX];
    struct query_output out = { 0 };
    _cleanup_free_ char *text = NULL;
    unsigned id = ++g->next_id;
    int r;

    if (strpbrk(command, "\r\n"))
        return -EINVAL;
    r = snprintf(request, sizeof(request), "?%u %s\n", id, command);
    if (r < 0 || (size_t)r >= sizeof(request))
        return -E2BIG;
    out.cap = ret_out ? len : 0;
    text = out.text = out.cap ? calloc(1, out.cap) : NULL;
    if (out.cap && !text)
        return -ENOMEM;
    r = send_all(g, request, (size_t)r, deadline);
    if (r == 0)
        r = collect_reply(g, id, deadline, &out, err_msg, sizeof(err_msg));
    if (r == -EIO && ret_out && len > 0)
        snprintf(ret_out, len, "%s", err_msg);
    if (r < 0)
        return r;
    if (ret_out && out.overflow)
        return -ENOBUFS;
    if (out.truncated)
        return -EMSGSIZE;
    if (ret_out && len > 0)
        memcpy(ret_out, text, out.used + 1);
    return 0;
}

int guest_wait_exit(struct guest *g, int timeout_ms, int *ret_status)
{
    int64_t deadline = now_ms() + timeout_ms;

    if (!g->launched)
        return -ECHILD;
    for (;;) {
        int r = reap(g);
        if (r < 0)
            return r;
        if (r > 0) {
            if (ret_status)
                *ret_status = g->exit_status;
            return 0;
        }
        int left = remaining_ms(deadline);
        if (left == 0)
            return -ETIMEDOUT;
        wait_for_child(g, left);
    }
}

void guest_kill(struct guest *g)
{
    if (!g->launched)
        return;
    if (g->pid > 0) {
        /* The whole session: QEMU is its leader, and helpers it started die too. */
        if (kill(-g->pid, SIGKILL) < 0)
            kill(g->pid, SIGKILL);
        guest_wait_exit(g, KILL_REAP_TIMEOUT_MS, NULL);
    }
    close_fdp(&g->serial_fd);
    g->serial_fd = -1;
    close_fdp(&g->pidfd);
    g->pidfd = -1;
}
