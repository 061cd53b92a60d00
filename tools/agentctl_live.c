/* agentctl_live.c: verbs on a running VM: hotplug (disks, NICs, vCPUs,
 * memory, the balloon), VNC credentials and password, and the serial
 * console, which turns the connection into the guest's serial port. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <json-c/json.h>

#include "agentctl.h"
#include "agentctl_args.h"
#include "agentctl_conn.h"
#include "agentctl_print.h"

#define DETACH_TIMEOUT_MAX 3600
#define EXPIRE_MAX 86400
#define VNC_PASSWORD_MAX 8
#define CONSOLE_ESCAPE 0x1d       /* Ctrl-] */
#define WAIT_HOTPLUG_S 120        /* a detach waits up to its own --timeout on top */

static void print_fields(const ctl_request *req, struct json_object *value)
{
    ctl_print_fields(stdout, value, NULL);
}

/* NAME THING, THING as an object (JSON text) or as the definition's short string. */
static int parse_device(int argc, char **argv, ctl_request *req, const char *key)
{
    struct json_object *dev = NULL;
    const char *text;
    int r = ctl_no_options(argc, argv);

    if (r == 0)
        r = ctl_positionals(argc, argv, 2, 2);
    if (r != 0)
        return r;
    text = argv[optind + 1];
    if (text[0] == '{' && (r = ctl_parse_json_arg(argv[0], key, text, &dev)) != 0)
        return r;
    req->vm = argv[optind];
    req->args = ctl_string_args("name", req->vm);
    json_object_object_add(req->args, key, dev ? dev : json_object_new_string(text));
    req->wait_s = WAIT_HOTPLUG_S;
    return 0;
}

static int parse_disk_attach(int argc, char **argv, ctl_request *req)
{
    return parse_device(argc, argv, req, "disk");
}

static int parse_nic_attach(int argc, char **argv, ctl_request *req)
{
    return parse_device(argc, argv, req, "nic");
}

/* NAME ID [--timeout SECONDS], ID sent as key. */
static int parse_detach(int argc, char **argv, ctl_request *req, const char *key)
{
    static const struct option opts[] = {
        { "timeout", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    uint64_t timeout = 0;
    int ch, r;

    while ((ch = ctl_getopt(argc, argv, opts)) != -1) {
        if (ch != 't')
            return ch == 'h' ? CTL_HELP : -EINVAL;
        if (ctl_parse_count(optarg, DETACH_TIMEOUT_MAX, &timeout) < 0 || timeout == 0)
            return ctl_usage_error(argv[0], "--timeout wants seconds (1 to %d), not '%s'", DETACH_TIMEOUT_MAX,
                                   optarg);
    }
    if ((r = ctl_positionals(argc, argv, 2, 2)) != 0)
        return r;
    req->vm = argv[optind];
    req->args = ctl_string_args("name", req->vm);
    json_object_object_add(req->args, key, json_object_new_string(argv[optind + 1]));
    if (timeout)
        json_object_object_add(req->args, "timeout", json_object_new_int64((int64_t)timeout));
    req->wait_s = WAIT_HOTPLUG_S + (int)timeout;
    return 0;
}

static int parse_disk_detach(int argc, char **argv, ctl_request *req)
{
    return parse_detach(argc, argv, req, "target");
}

static int parse_nic_detach(int argc, char **argv, ctl_request *req)
{
    return parse_detach(argc, argv, req, "mac");
}

/* NAME VALUE, VALUE as a number or a size string. */
static int parse_amount(int argc, char **argv, ctl_request *req, const char *key)
{
    int r = ctl_no_options(argc, argv);

    if (r == 0)
        r = ctl_positionals(argc, argv, 2, 2);
    if (r != 0)
        return r;
    req->vm = argv[optind];
    req->args = ctl_string_args("name", req->vm);
    json_object_object_add(req->args, key, ctl_scalar_value(argv[optind + 1]));
    req->wait_s = WAIT_HOTPLUG_S;
    return 0;
}

static int parse_vcpus(int argc, char **argv, ctl_request *req)
{
    return parse_amount(argc, argv, req, "vcpus");
}

static int parse_memory(int argc, char **argv, ctl_request *req)
{
    return parse_amount(argc, argv, req, "memory");
}

static int parse_balloon(int argc, char **argv, ctl_request *req)
{
    return parse_amount(argc, argv, req, "target");
}

/* ---- VNC ------------------------------------------------------------------------ */

static int parse_vnc(int argc, char **argv, ctl_request *req)
{
    static const struct option opts[] = {
        { "expire", required_argument, NULL, 'e' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    uint64_t expire = 0;
    int ch, r;

    while ((ch = ctl_getopt(argc, argv, opts)) != -1) {
        if (ch != 'e')
            return ch == 'h' ? CTL_HELP : -EINVAL;
        if (ctl_parse_count(optarg, EXPIRE_MAX, &expire) < 0 || expire == 0)
            return ctl_usage_error(argv[0], "--expire wants seconds (1 to %d), not '%s'", EXPIRE_MAX, optarg);
    }
    if ((r = ctl_positionals(argc, argv, 1, 1)) != 0)
        return r;
    req->vm = argv[optind];
    req->args = ctl_string_args("name", req->vm);
    if (expire)
        json_object_object_add(req->args, "expire", json_object_new_int64((int64_t)expire));
    return 0;
}

/* The password's one line from standard input: never argv, which any user
 * on the host can read in /proc. */
static int read_password(const char *verb, char out[VNC_PASSWORD_MAX + 2])
{
    size_t n;

    if (isatty(STDIN_FILENO))
        fputs("VNC password: ", stderr);
    if (!fgets(out, VNC_PASSWORD_MAX + 2, stdin))
        return ctl_usage_error(verb, "no password on standard input");
    n = strcspn(out, "\r\n");
    if (out[n] == '\0' && !feof(stdin))
        return ctl_usage_error(verb, "the password is longer than %d characters", VNC_PASSWORD_MAX);
    out[n] = '\0';
    if (n == 0)
        return ctl_usage_error(verb, "the password is empty (use --clear to remove it)");
    return 0;
}

static int parse_vnc_password(int argc, char **argv, ctl_request *req)
{
    static const struct option opts[] = {
        { "clear", no_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    char password[VNC_PASSWORD_MAX + 2];
    bool clear = false;
    int ch, r;

    while ((ch = ctl_getopt(argc, argv, opts)) != -1) {
        if (ch != 'c')
            return ch == 'h' ? CTL_HELP : -EINVAL;
        clear = true;
    }
    if ((r = ctl_positionals(argc, argv, 1, 1)) != 0 || (!clear && (r = read_password(argv[0], password)) != 0))
        return r;
    req->vm = argv[optind];
    req->args = ctl_string_args("name", req->vm);
    if (clear)
        json_object_object_add(req->args, "clear", json_object_new_boolean(1));
    else
        json_object_object_add(req->args, "password", json_object_new_string(password));
    explicit_bzero(password, sizeof(password));
    return 0;
}

/* ---- the console -------------------------------------------------------------------- */

static int parse_console(int argc, char **argv, ctl_request *req)
{
    static const ctl_flag flags[] = {
        { "readonly", "readonly", CTL_FLAG_TRUE },
        { "takeover", "takeover", CTL_FLAG_TRUE },
    };
    struct json_object *args = json_object_new_object();
    int r = ctl_flag_args(argc, argv, flags, sizeof(flags) / sizeof(flags[0]), args);

    if (r == 0)
        r = ctl_positionals(argc, argv, 1, 1);
    if (r != 0) {
        json_object_put(args);
        return r;
    }
    req->vm = argv[optind];
    json_object_object_add(args, "name", json_object_new_string(req->vm));
    req->args = args;
    return 0;
}

static struct termios saved_tty;
static bool tty_raw;

static void tty_restore(void)
{
    if (tty_raw)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
    tty_raw = false;
}

/* Raw: every key goes to the guest as typed, Ctrl-C included. */
static void tty_make_raw(void)
{
    struct termios t;

    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tty) < 0)
        return;
    t = saved_tty;
    cfmakeraw(&t);
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) == 0) {
        tty_raw = true;
        atexit(tty_restore);
    }
}

static bool write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Keys to the agent up to the escape; false when the user left. */
static bool forward_keys(int sock, bool *left)
{
    char buf[4096], *esc;
    ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

    if (n <= 0) {
        *left = true;    /* standard input ended: as good as Ctrl-] */
        return false;
    }
    esc = memchr(buf, CONSOLE_ESCAPE, (size_t)n);
    if (!write_all(sock, buf, esc ? (size_t)(esc - buf) : (size_t)n))
        return false;
    *left = esc != NULL;
    return !esc;
}

static bool forward_output(int sock)
{
    char buf[65536];
    ssize_t n = read(sock, buf, sizeof(buf));

    return n > 0 && write_all(STDOUT_FILENO, buf, (size_t)n);
}

/* Copies both ways until Ctrl-] (0) or the agent closes the console (3). */
static int pump(ctl_conn *c)
{
    struct pollfd p[2] = { { .fd = STDIN_FILENO, .events = POLLIN }, { .fd = c->fd, .events = POLLIN } };
    bool left = false;

    /* Console bytes that came with the reply. */
    if (c->len > c->start && !write_all(STDOUT_FILENO, c->buf + c->start, c->len - c->start))
        return CTL_EXIT_CONNECT;
    tty_make_raw();
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if ((p[0].revents & (POLLIN | POLLHUP)) && !forward_keys(c->fd, &left))
            break;
        if ((p[1].revents & (POLLIN | POLLHUP)) && !forward_output(c->fd))
            break;
    }
    tty_restore();
    if (left)
        return CTL_EXIT_OK;
    fputs("\r\nagentctl: the agent closed the console\n", stderr);
    return CTL_EXIT_CONNECT;
}

static int run_console(const ctl_options *o, const ctl_request *req)
{
    int64_t deadline = ctl_deadline_after(req->wait_s);
    struct json_object *value = NULL;
    ctl_conn c;
    int r;

    ctl_conn_init(&c);
    if ((r = ctl_connect(&c, o->socket, deadline)) < 0 || (r = ctl_negotiate(&c, deadline)) < 0 ||
        (r = ctl_call(&c, req->command, req->args, deadline, NULL, NULL, &value)) < 0) {
        fputs("agentctl: ", stderr);
        ctl_put_safe(stderr, c.err[0] ? c.err : strerror(-r), 0);
        fputc('\n', stderr);
        ctl_conn_close(&c);
        return r == CTL_ERR_REFUSED ? CTL_EXIT_REFUSED : CTL_EXIT_CONNECT;
    }
    json_object_put(value);
    if (isatty(STDIN_FILENO))
        fprintf(stderr, "agentctl: console of %s; Ctrl-] leaves\r\n", req->vm);
    r = pump(&c);
    ctl_conn_close(&c);
    return r;
}

static const ctl_verb live_verbs[] = {
    { "console", "console-attach", NULL, "NAME [--readonly] [--takeover]",
      "Connects the terminal to the VM's serial console (xCAT's rcons) in raw mode;\n"
      "Ctrl-] leaves. One writer at a time: --takeover drops the current one,\n"
      "--readonly only watches.\n",
      parse_console, NULL, run_console },
    { "disk-attach", "disk-attach", NULL, "NAME DISK",
      "Attaches a disk to a running VM and adds it to its definition. DISK is a\n"
      "disk as in a definition: JSON ('{\"path\": \"/images/d.qcow2\"}',\n"
      "'{\"size\": \"20G\", \"bus\": \"virtio-scsi\"}') or the short form (20G,\n"
      "POOL:SIZE[:FORMAT]).\n",
      parse_disk_attach, print_fields, NULL },
    { "disk-detach", "disk-detach", NULL, "NAME TARGET [--timeout SECONDS]",
      "Detaches the disk TARGET (sdb) once the guest lets go (default 30 s) and\n"
      "removes it from the definition; its file stays.\n",
      parse_disk_detach, print_fields, NULL },
    { "nic-attach", "nic-attach", NULL, "NAME BRIDGE|NIC",
      "Attaches a NIC on BRIDGE (or a NIC as JSON: '{\"bridge\": \"br0\", \"vlan\": 42}')\n"
      "to a running VM and adds it to its definition; prints its MAC.\n",
      parse_nic_attach, print_fields, NULL },
    { "nic-detach", "nic-detach", NULL, "NAME MAC [--timeout SECONDS]",
      "Detaches the NIC with that MAC and removes it from the definition.\n",
      parse_nic_detach, print_fields, NULL },
    { "vcpus", "vcpus-set", NULL, "NAME COUNT",
      "Sets a running VM's vCPUs (up to max-vcpus; CPUs it started with stay).\n",
      parse_vcpus, print_fields, NULL },
    { "memory", "memory-set", NULL, "NAME SIZE",
      "Grows a running VM's memory to SIZE (MiB, or 2G) up to max-memory.\n",
      parse_memory, print_fields, NULL },
    { "balloon", "balloon-set", NULL, "NAME SIZE",
      "Asks the guest to keep only SIZE of its memory (virtio-balloon).\n",
      parse_balloon, print_fields, NULL },
    { "vnc", "vnc-credentials", NULL, "NAME [--expire SECONDS]",
      "Makes a one-time VNC password (xCAT's getrvidparms) and prints host, port,\n"
      "display and password; it expires after --expire seconds (default 60).\n",
      parse_vnc, print_fields, NULL },
    { "vnc-password", "vnc-password", "VNC password set", "NAME [--clear]",
      "Sets the VM's persistent VNC password (xCAT's vidpassword), read from\n"
      "standard input, at most 8 characters; --clear removes it.\n",
      parse_vnc_password, ctl_print_done, NULL },
};

const ctl_verb *ctl_live_verbs(size_t *ret_n)
{
    *ret_n = sizeof(live_verbs) / sizeof(live_verbs[0]);
    return live_verbs;
}
