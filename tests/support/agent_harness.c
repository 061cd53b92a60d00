/* agent_harness.c: agentd under test, and a blocking protocol client. */
#include "agent_harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#define LINE_CAP (64u << 20)

long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

static const char *agentd_binary(void)
{
    const char *env = getenv("AGENTD_BINARY");
#ifdef AGENTD_BINARY_PATH
    return env && *env ? env : AGENTD_BINARY_PATH;
#else
    return env && *env ? env : "agentd";
#endif
}

int agentd_prepare(agentd_proc *p, const char *extra_config)
{
    FILE *f;

    memset(p, 0, sizeof(*p));
    /* Short: unix socket paths of VMs below it must fit 108 bytes. */
    strcpy(p->dir, "/tmp/agt-XXXXXX");
    if (!mkdtemp(p->dir))
        return -errno;
    /* Other users must reach the socket inside (its own mode guards it). */
    chmod(p->dir, 0755);
    snprintf(p->socket, sizeof(p->socket), "%s/agentd.sock", p->dir);
    snprintf(p->log, sizeof(p->log), "%s/agentd.log", p->dir);
    snprintf(p->config, sizeof(p->config), "%s/agentd.conf", p->dir);
    if (!(f = fopen(p->config, "we")))
        return -errno;
    fprintf(f, "state-dir = %s/state\nrun-dir = %s/run\nsocket = %s\naccel = %s\nlog-level = debug\n",
            p->dir, p->dir, p->socket, getenv("AGENTD_ACCEL") ? getenv("AGENTD_ACCEL") : "tcg");
    if (getenv("AGENTD_QEMU"))
        fprintf(f, "qemu = %s\n", getenv("AGENTD_QEMU"));
    /* A cgroup parent of this agent's own: agents of parallel tests never
     * share a VM's group. */
    fprintf(f, "cgroup-parent = " TEST_CGROUP_PARENT "/%s\n", p->dir + strlen("/tmp/"));
    if (extra_config)
        fputs(extra_config, f);
    fclose(f);
    return 0;
}

static int socket_connect(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int agentd_start(agentd_proc *p)
{
    const char *bin = agentd_binary();
    pid_t pid = fork();

    if (pid < 0)
        return -errno;
    if (pid == 0) {
        int fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            dup2(fd, STDOUT_FILENO);
        }
        setpgid(0, 0);
        execl(bin, bin, "--foreground", "--config", p->config, (char *)NULL);
        _exit(127);
    }
    p->pid = pid;
    for (long long end = now_ms() + 10000; now_ms() < end; sleep_ms(10)) {
        int fd = socket_connect(p->socket);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            p->pid = 0;
            return -ECHILD;
        }
    }
    return -ETIMEDOUT;
}

int agentd_stop(agentd_proc *p, int sig)
{
    int status = 0;

    if (p->pid <= 0)
        return 0;
    kill(p->pid, sig);
    for (long long end = now_ms() + 10000; now_ms() < end; sleep_ms(5)) {
        if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
            p->pid = 0;
            return status;
        }
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &status, 0);
    p->pid = 0;
    return -ETIMEDOUT;
}

/* QEMUs are found by their command line mentioning our temp dir. */
static void kill_our_qemus(const char *dir)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    char path[64], buf[8192];

    if (!d)
        return;
    while ((e = readdir(d))) {
        pid_t pid = atoi(e->d_name);
        if (pid <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
            continue;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] == '\0')
                buf[i] = ' ';
        buf[n] = '\0';
        if (strstr(buf, "qemu") && strstr(buf, dir)) {
            kill(pid, SIGCONT);
            kill(pid, SIGKILL);
        }
    }
    closedir(d);
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    char child[1024];

    if (!d) {
        unlink(path);
        return;
    }
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
        remove_tree(child);
    }
    closedir(d);
    rmdir(path);
}

/* The agent's cgroups under every hierarchy (groups of QEMUs it left, then
 * its parent); rmdir only, as cgroupfs wants. */
static void remove_test_cgroups(const char *leaf)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd),
             "for d in /sys/fs/cgroup/*/" TEST_CGROUP_PARENT "/%s /sys/fs/cgroup/" TEST_CGROUP_PARENT "/%s; do "
             "[ -d \"$d\" ] && find \"$d\" -depth -type d -exec rmdir {} + 2>/dev/null; done; true",
             leaf, leaf);
    if (system(cmd) != 0)
        return;
}

void agentd_cleanup(agentd_proc *p)
{
    if (!p->dir[0])
        return;
    agentd_stop(p, SIGKILL);
    kill_our_qemus(p->dir);
    /* Reap QEMUs that were our children (started by an agent we forked? no:
     * by agentd, so they are its children or init's); give them a moment. */
    sleep_ms(50);
    remove_test_cgroups(p->dir + strlen("/tmp/"));
    if (!getenv("AGENTD_KEEP_TEST_DIRS"))
        remove_tree(p->dir);
    p->dir[0] = '\0';
}

/* ---- protocol client ------------------------------------------------------- */

static int read_line(agent_conn *c, int timeout_ms, struct json_object **ret)
{
    long long end = now_ms() + timeout_ms;

    for (;;) {
        char *nl = c->buf ? memchr(c->buf, '\n', c->len) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - c->buf);
            *nl = '\0';
            struct json_object *o = json_tokener_parse(c->buf);
            memmove(c->buf, nl + 1, c->len - n - 1);
            c->len -= n + 1;
            if (!o)
                return -EPROTO;
            *ret = o;
            return 0;
        }
        if (c->cap - c->len < 65536) {
            size_t cap = c->cap ? c->cap * 2 : 65536 * 2;
            if (cap > LINE_CAP)
                return -EMSGSIZE;
            char *b = realloc(c->buf, cap);
            if (!b)
                return -ENOMEM;
            c->buf = b;
            c->cap = cap;
        }
        struct pollfd p = { .fd = c->fd, .events = POLLIN };
        long long left = end - now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return -ETIMEDOUT;
        ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (n <= 0)
            return -ECONNRESET;
        c->len += (size_t)n;
    }
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
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

static bool is_event(struct json_object *o)
{
    return json_object_object_get_ex(o, "event", NULL);
}

/* The next line that is not an event; events are kept. */
static int next_reply(agent_conn *c, int timeout_ms, struct json_object **ret)
{
    long long end = now_ms() + timeout_ms;

    for (;;) {
        struct json_object *o;
        int r = read_line(c, (int)(end - now_ms() > 0 ? end - now_ms() : 0), &o);
        if (r < 0)
            return r;
        if (!is_event(o)) {
            *ret = o;
            return 0;
        }
        json_object_array_add(c->events, o);
    }
}

int agent_connect(agent_conn *c, const char *socket)
{
    struct json_object *reply;
    int r;

    memset(c, 0, sizeof(*c));
    c->events = json_object_new_array();
    if ((c->fd = socket_connect(socket)) < 0)
        return c->fd;
    if ((r = read_line(c, 5000, &c->greeting)) < 0)
        return r;
    if ((r = agent_call(c, "qmp_capabilities", NULL, 5000, &reply)) < 0)
        return r;
    r = agent_return(reply) ? 0 : -EPROTO;
    json_object_put(reply);
    return r;
}

void agent_close(agent_conn *c)
{
    if (c->fd > 0)
        close(c->fd);
    free(c->buf);
    json_object_put(c->greeting);
    json_object_put(c->events);
    memset(c, 0, sizeof(*c));
}

int agent_raw(agent_conn *c, const char *line, size_t len, int timeout_ms, struct json_object **ret)
{
    int r = send_all(c->fd, line, len);

    /* The agent may answer and hang up before taking all of a bad request. */
    if (r < 0 && r != -EPIPE && r != -ECONNRESET)
        return r;
    return next_reply(c, timeout_ms, ret);
}

void agent_forget_events(agent_conn *c)
{
    json_object_put(c->events);
    c->events = json_object_new_array();
}

int agent_send(agent_conn *c, const char *execute, const char *args_json)
{
    char *line;
    int id = ++c->next_id, r;

    if (asprintf(&line, "{\"execute\": \"%s\"%s%s, \"id\": %d}\n", execute,
                 args_json ? ", \"arguments\": " : "", args_json ? args_json : "", id) < 0)
        return -ENOMEM;
    r = send_all(c->fd, line, strlen(line));
    free(line);
    return r < 0 ? r : id;
}

int agent_wait_reply(agent_conn *c, int id, int timeout_ms, struct json_object **ret_reply)
{
    long long end = now_ms() + timeout_ms;
    int r;

    for (;;) {
        struct json_object *o, *rid;
        if ((r = next_reply(c, (int)(end - now_ms() > 0 ? end - now_ms() : 0), &o)) < 0)
            return r;
        if (json_object_object_get_ex(o, "id", &rid) && json_object_get_int(rid) == id) {
            *ret_reply = o;
            return 0;
        }
        json_object_put(o);
    }
}

int agent_call(agent_conn *c, const char *execute, const char *args_json, int timeout_ms,
               struct json_object **ret_reply)
{
    int id = agent_send(c, execute, args_json);

    if (id < 0)
        return id;
    return agent_wait_reply(c, id, timeout_ms, ret_reply);
}

static bool event_matches(struct json_object *ev, const char *vm, const char *state)
{
    struct json_object *name, *data, *v, *s;

    return json_object_object_get_ex(ev, "event", &name) &&
           strcmp(json_object_get_string(name), "VM_STATE") == 0 &&
           json_object_object_get_ex(ev, "data", &data) &&
           json_object_object_get_ex(data, "vm", &v) && strcmp(json_object_get_string(v), vm) == 0 &&
           json_object_object_get_ex(data, "state", &s) && strcmp(json_object_get_string(s), state) == 0;
}

/* Takes the first matching kept event out of the list. */
static struct json_object *take_kept(agent_conn *c, const char *vm, const char *state)
{
    size_t n = json_object_array_length(c->events);

    for (size_t i = 0; i < n; i++) {
        struct json_object *ev = json_object_array_get_idx(c->events, i);
        if (event_matches(ev, vm, state)) {
            json_object_get(ev);
            json_object_array_del_idx(c->events, i, 1);
            return ev;
        }
    }
    return NULL;
}

int agent_wait_state(agent_conn *c, const char *vm, const char *state, int timeout_ms,
                     struct json_object **ret_event)
{
    long long end = now_ms() + timeout_ms;
    struct json_object *ev = take_kept(c, vm, state);

    while (!ev) {
        struct json_object *o;
        int r = read_line(c, (int)(end - now_ms() > 0 ? end - now_ms() : 0), &o);
        if (r < 0)
            return r;
        if (is_event(o) && event_matches(o, vm, state))
            ev = o;
        else if (is_event(o))
            json_object_array_add(c->events, o);
        else
            json_object_put(o);
    }
    if (ret_event)
        *ret_event = ev;
    else
        json_object_put(ev);
    return 0;
}

struct json_object *agent_return(struct json_object *reply)
{
    struct json_object *r;

    return reply && json_object_object_get_ex(reply, "return", &r) ? r : NULL;
}

static const char *error_member(struct json_object *reply, const char *key)
{
    struct json_object *e, *v;

    if (!reply || !json_object_object_get_ex(reply, "error", &e) || !json_object_object_get_ex(e, key, &v))
        return "";
    return json_object_get_string(v);
}

const char *agent_error_class(struct json_object *reply)
{
    return error_member(reply, "class");
}

const char *agent_error_desc(struct json_object *reply)
{
    return error_member(reply, "desc");
}

/* ---- files and processes --------------------------------------------------- */

static int count_in_file(const char *path, const char *needle)
{
    FILE *f = fopen(path, "re");
    char *buf;
    size_t n;
    int count = 0;

    if (!f)
        return 0;
    buf = malloc(4 << 20);
    n = fread(buf, 1, (4 << 20) - 1, f);
    fclose(f);
    buf[n] = '\0';
    for (char *p = buf; (p = memmem(p, n - (size_t)(p - buf), needle, strlen(needle))); p++)
        count++;
    free(buf);
    return count;
}

int wait_file_contains(const char *path, const char *needle, int count, int timeout_ms)
{
    for (long long end = now_ms() + timeout_ms; now_ms() < end; sleep_ms(50))
        if (count_in_file(path, needle) >= count)
            return 0;
    return -ETIMEDOUT;
}

int count_qemu_with_uuid(const char *uuid, pid_t *ret_pid)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    char path[64], buf[8192], state[256];
    int count = 0;

    if (!d)
        return -errno;
    while ((e = readdir(d))) {
        pid_t pid = atoi(e->d_name);
        if (pid <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%d/stat", pid);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        char *ok = fgets(state, sizeof(state), f);
        fclose(f);
        /* Zombies have ended; they are not running VMs. */
        char *paren = ok ? strrchr(state, ')') : NULL;
        if (!paren || paren[2] == 'Z')
            continue;
        snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        for (ssize_t i = 0; i + 1 < n; i += (ssize_t)strlen(buf + i) + 1) {
            if (strcmp(buf + i, "-uuid") == 0 && i + 6 < n && strcmp(buf + i + 6, uuid) == 0) {
                count++;
                if (ret_pid)
                    *ret_pid = pid;
                break;
            }
        }
    }
    closedir(d);
    return count;
}
