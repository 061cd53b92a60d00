/* test_rfb_e2e.c: VNC password authentication as a real qemu-system-x86_64
 * enforces it, through the RFB test client. Each test gets its own QEMU with
 * no machine (-machine none), a password-protected VNC display on a free
 * loopback port, and a QMP socket that sets and expires the password. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "tests/support/deadline.h"

#include "tests/support/rfb.h"

#define PASSWORD "s3cret"
#define LOGIN_TIMEOUT_MS 10000
#define QMP_TIMEOUT_MS 10000
#define START_TIMEOUT_MS 10000
#define RETRY_INTERVAL_MS 10
#define VNC_BASE_PORT 5900
/* Displays from 200 up (ports 6100 and up) stay clear of the usual VNC
 * displays and of X11's ports 6000-6063. */
#define FIRST_DISPLAY 200
#define DISPLAY_SPREAD 500
#define DISPLAY_PROBES 50
/* Another process may take the display between our probe and QEMU's bind. */
#define LAUNCH_TRIES 5

typedef struct vnc_qemu {
    pid_t pid;               /* -1 once reaped */
    int qmp_fd;
    unsigned port;           /* the VNC display's TCP port */
    char dir[64];
    char qmp_path[108];
    char log_path[128];
    size_t buf_len;
    char buf[16384];         /* QMP bytes read but not yet split into lines */
} vnc_qemu;

static bool loopback_port_is_free(unsigned port)
{
    struct sockaddr_in a = {
        .sin_family = AF_INET,
        .sin_port = htons((uint16_t)port),
        .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
    };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool free_port;

    if (fd < 0)
        return false;
    free_port = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return free_port;
}

/* The first display from start whose port nobody holds, or -1. */
static int find_free_display(unsigned start)
{
    for (unsigned d = start; d < start + DISPLAY_PROBES; d++) {
        if (loopback_port_is_free(VNC_BASE_PORT + d))
            return (int)d;
    }
    return -1;
}

/* Runs in the forked child. Its own session lets teardown kill QEMU with
 * everything it started; PDEATHSIG kills it if the test dies first. */
static void exec_qemu(const char *binary, char *const argv[], int log_fd, pid_t parent)
{
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    setsid();
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
        _exit(127);
    if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
        dup2(log_fd, STDERR_FILENO) < 0)
        _exit(127);
    execvp(binary, argv);
    _exit(127);
}

static int spawn_qemu(vnc_qemu *q, unsigned display)
{
    const char *binary = getenv("AGENTD_QEMU") ? getenv("AGENTD_QEMU") : "qemu-system-x86_64";
    char vnc_spec[64], qmp_spec[160];
    char *argv[] = {
        (char *)binary, "-machine", "none", "-nodefaults", "-display", "none",
        "-vnc", vnc_spec, "-qmp", qmp_spec, NULL,
    };
    pid_t parent = getpid();
    int log_fd;

    snprintf(vnc_spec, sizeof(vnc_spec), "127.0.0.1:%u,password=on", display);
    snprintf(qmp_spec, sizeof(qmp_spec), "unix:%s,server=on,wait=off", q->qmp_path);
    log_fd = open(q->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0)
        return -errno;
    q->pid = fork();
    if (q->pid == 0)
        exec_qemu(binary, argv, log_fd, parent);
    close(log_fd);
    if (q->pid < 0)
        return -errno;
    q->port = VNC_BASE_PORT + display;
    return 0;
}

static void kill_qemu(vnc_qemu *q)
{
    if (q->qmp_fd >= 0)
        close(q->qmp_fd);
    q->qmp_fd = -1;
    if (q->pid > 0) {
        if (kill(-q->pid, SIGKILL) < 0)
            kill(q->pid, SIGKILL);
        while (waitpid(q->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    q->pid = -1;
    q->buf_len = 0;
    unlink(q->qmp_path);
}

/* QEMU creates the QMP socket during start-up; until then connect fails.
 * Returns -ECHILD when QEMU exited instead (its display was taken, say). */
static int connect_qmp(vnc_qemu *q, int64_t deadline_ms)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };

    snprintf(a.sun_path, sizeof(a.sun_path), "%s", q->qmp_path);
    for (;;) {
        if (waitpid(q->pid, NULL, WNOHANG) == q->pid) {
            q->pid = -1;
            return -ECHILD;
        }
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -errno;
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
            q->qmp_fd = fd;
            return 0;
        }
        close(fd);
        if (remaining_ms(deadline_ms) == 0)
            return -ETIMEDOUT;
        sleep_ms(RETRY_INTERVAL_MS);
    }
}

/* One line of QMP output without its "\r\n", or a negative errno. */
static int qmp_read_line(vnc_qemu *q, char *line, size_t size, int64_t deadline_ms)
{
    for (;;) {
        char *nl = memchr(q->buf, '\n', q->buf_len);
        if (nl) {
            size_t len = (size_t)(nl - q->buf);
            if (len >= size)
                return -EMSGSIZE;
            memcpy(line, q->buf, len);
            line[len > 0 && line[len - 1] == '\r' ? len - 1 : len] = '\0';
            q->buf_len -= len + 1;
            memmove(q->buf, nl + 1, q->buf_len);
            return 0;
        }
        if (q->buf_len == sizeof(q->buf))
            return -EMSGSIZE;
        struct pollfd p = { .fd = q->qmp_fd, .events = POLLIN };
        int r = poll(&p, 1, remaining_ms(deadline_ms));
        if (r == 0)
            return -ETIMEDOUT;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        ssize_t n = read(q->qmp_fd, q->buf + q->buf_len, sizeof(q->buf) - q->buf_len);
        if (n == 0)
            return -ECONNRESET;
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n > 0)
            q->buf_len += (size_t)n;
    }
}

/* Reads lines until one that has member key, skipping events; 0 when found. */
static int qmp_read_until(vnc_qemu *q, const char *key, int64_t deadline_ms)
{
    char line[sizeof(q->buf)];

    for (;;) {
        int r = qmp_read_line(q, line, sizeof(line), deadline_ms);
        if (r < 0)
            return r;
        json_object *o = json_tokener_parse(line);
        bool has_key = o && json_object_object_get_ex(o, key, NULL);
        bool is_error = o && json_object_object_get_ex(o, "error", NULL);
        json_object_put(o);
        if (has_key)
            return 0;
        if (is_error) {
            print_message("QMP: %s\n", line);
            return -EIO;
        }
    }
}

/* Sends a command and waits for its "return". */
static int qmp_execute(vnc_qemu *q, const char *command)
{
    int64_t deadline_ms = now_ms() + QMP_TIMEOUT_MS;
    size_t len = strlen(command);

    if (write(q->qmp_fd, command, len) != (ssize_t)len || write(q->qmp_fd, "\n", 1) != 1)
        return -EIO;
    return qmp_read_until(q, "return", deadline_ms);
}

static int start_qmp_session(vnc_qemu *q)
{
    int r = qmp_read_until(q, "QMP", now_ms() + QMP_TIMEOUT_MS);

    return r < 0 ? r : qmp_execute(q, "{\"execute\":\"qmp_capabilities\"}");
}

/* Returns 0 with QEMU running and its QMP session open. */
static int launch_qemu(vnc_qemu *q)
{
    unsigned start = FIRST_DISPLAY + (unsigned)getpid() % DISPLAY_SPREAD;

    for (int i = 0; i < LAUNCH_TRIES; i++) {
        int display = find_free_display(start);
        if (display < 0)
            return -EADDRINUSE;
        int r = spawn_qemu(q, (unsigned)display);
        if (r < 0)
            return r;
        r = connect_qmp(q, now_ms() + START_TIMEOUT_MS);
        if (r == 0)
            return start_qmp_session(q);
        kill_qemu(q);
        if (r != -ECHILD)
            return r;
        start = (unsigned)display + 1;
    }
    return -EADDRINUSE;
}

static void print_qemu_log(const vnc_qemu *q)
{
    char text[4096];
    FILE *f = fopen(q->log_path, "re");
    size_t n;

    if (!f)
        return;
    n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    print_message("QEMU said:\n%s\n", text);
}

static int teardown(void **state)
{
    vnc_qemu *q = *state;

    if (!q)
        return 0;
    kill_qemu(q);
    unlink(q->log_path);
    rmdir(q->dir);
    free(q);
    *state = NULL;
    return 0;
}

static int setup(void **state)
{
    vnc_qemu *q = calloc(1, sizeof(*q));
    int r;

    if (!q)
        return -1;
    q->pid = -1;
    q->qmp_fd = -1;
    snprintf(q->dir, sizeof(q->dir), "/tmp/agentd-rfb-XXXXXX");
    if (!mkdtemp(q->dir)) {
        free(q);
        return -1;
    }
    *state = q;
    snprintf(q->qmp_path, sizeof(q->qmp_path), "%s/qmp.sock", q->dir);
    snprintf(q->log_path, sizeof(q->log_path), "%s/qemu.log", q->dir);
    r = launch_qemu(q);
    if (r < 0) {
        print_message("launching QEMU: %s\n", strerror(-r));
        print_qemu_log(q);
        /* cmocka runs no teardown after a failed setup. */
        teardown(state);
        return -1;
    }
    return 0;
}

static void set_password(vnc_qemu *q)
{
    assert_int_equal(qmp_execute(q, "{\"execute\":\"set_password\",\"arguments\":"
                                    "{\"protocol\":\"vnc\",\"password\":\"" PASSWORD "\"}}"), 0);
}

static void expire_password_now(vnc_qemu *q)
{
    assert_int_equal(qmp_execute(q, "{\"execute\":\"expire_password\",\"arguments\":"
                                    "{\"protocol\":\"vnc\",\"time\":\"now\"}}"), 0);
}

/* A fresh connection per attempt: QEMU closes one whose login failed. */
static int login(const vnc_qemu *q, const char *password, char *reason, size_t reason_len)
{
    int r = rfb_vnc_login("127.0.0.1", q->port, password, LOGIN_TIMEOUT_MS, reason, reason_len);

    if (r != 0)
        print_message("login with \"%s\" on port %u: %d (%s) \"%s\"\n", password, q->port, r,
                      r < 0 ? strerror(-r) : "refused", reason);
    return r;
}

/* With password=on and no password set, QEMU lets nobody in. Setting one
 * afterwards opens the door, so the refusal was the missing password's. */
static void test_login_is_refused_until_a_password_is_set(void **state)
{
    vnc_qemu *q = *state;
    char reason[256];

    assert_int_not_equal(login(q, PASSWORD, reason, sizeof(reason)), 0);
    set_password(q);
    assert_int_equal(login(q, PASSWORD, reason, sizeof(reason)), 0);
}

static void test_right_password_logs_in(void **state)
{
    vnc_qemu *q = *state;
    char reason[256];

    set_password(q);
    assert_int_equal(login(q, PASSWORD, reason, sizeof(reason)), 0);
}

/* RFB 3.8 says why; a later login with the right password still works. */
static void test_wrong_password_is_refused_with_a_reason(void **state)
{
    vnc_qemu *q = *state;
    char reason[256];

    set_password(q);
    assert_int_equal(login(q, "wrong", reason, sizeof(reason)), 1);
    assert_true(reason[0] != '\0');
    assert_int_equal(login(q, PASSWORD, reason, sizeof(reason)), 0);
}

static void test_right_password_is_refused_once_expired(void **state)
{
    vnc_qemu *q = *state;
    char reason[256];

    set_password(q);
    assert_int_equal(login(q, PASSWORD, reason, sizeof(reason)), 0);
    expire_password_now(q);
    assert_int_equal(login(q, PASSWORD, reason, sizeof(reason)), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_login_is_refused_until_a_password_is_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_right_password_logs_in, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_password_is_refused_with_a_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(test_right_password_is_refused_once_expired, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
