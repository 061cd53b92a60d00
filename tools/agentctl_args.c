/* agentctl_args.c: a verb's argv into request arguments. */
#include "agentctl_args.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "agentctl.h"
#include "agentctl_conn.h"

/* A definition file larger than this could never fit in a request line. */
#define FILE_MAX (4u * CTL_REQUEST_MAX)
#define JSON_DEPTH 64
#define FLAG_BASE 256

int ctl_usage_error(const char *verb, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "agentctl: %s: ", verb);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return -EINVAL;
}

int ctl_getopt(int argc, char **argv, const struct option *opts)
{
    int ch;

    opterr = 0;
    ch = getopt_long(argc, argv, ":h", opts, NULL);
    if (ch == ':') {
        ctl_usage_error(argv[0], "option '%s' needs a value", argv[optind - 1]);
        return '?';
    }
    if (ch == '?') {
        if (optopt)
            ctl_usage_error(argv[0], "unknown option '-%c'", optopt);
        else
            ctl_usage_error(argv[0], "unknown option '%s'", argv[optind - 1]);
    }
    return ch;
}

int ctl_no_options(int argc, char **argv)
{
    static const struct option help_only[] = {
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int ch = ctl_getopt(argc, argv, help_only);

    if (ch == -1)
        return 0;
    return ch == 'h' ? CTL_HELP : -EINVAL;
}

struct json_object *ctl_string_args(const char *key, const char *value)
{
    struct json_object *args = json_object_new_object();

    json_object_object_add(args, key, json_object_new_string(value));
    return args;
}

static struct json_object *flag_value(const ctl_flag *f, const char *arg)
{
    switch (f->kind) {
    case CTL_FLAG_STRING:
        return json_object_new_string(arg);
    case CTL_FLAG_SCALAR:
        return ctl_scalar_value(arg);
    case CTL_FLAG_TRUE:
    case CTL_FLAG_FALSE:
        break;
    }
    return json_object_new_boolean(f->kind == CTL_FLAG_TRUE);
}

int ctl_flag_args(int argc, char **argv, const ctl_flag *flags, size_t n, struct json_object *args)
{
    struct option opts[CTL_FLAGS_MAX + 2];
    size_t i;
    int ch;

    if (n > CTL_FLAGS_MAX)
        return -E2BIG;
    for (i = 0; i < n; i++) {
        bool takes_value = flags[i].kind == CTL_FLAG_STRING || flags[i].kind == CTL_FLAG_SCALAR;
        opts[i] = (struct option){ flags[i].flag, takes_value ? required_argument : no_argument,
                                   NULL, FLAG_BASE + (int)i };
    }
    opts[i++] = (struct option){ "help", no_argument, NULL, 'h' };
    opts[i] = (struct option){ NULL, 0, NULL, 0 };
    while ((ch = ctl_getopt(argc, argv, opts)) != -1) {
        if (ch < FLAG_BASE)
            return ch == 'h' ? CTL_HELP : -EINVAL;
        json_object_object_add(args, flags[ch - FLAG_BASE].key,
                               flag_value(&flags[ch - FLAG_BASE], optarg));
    }
    return 0;
}

int ctl_positionals(int argc, char **argv, int min, int max)
{
    int n = argc - optind;

    if (n < min)
        return ctl_usage_error(argv[0], "missing argument");
    if (n > max)
        return ctl_usage_error(argv[0], "unexpected argument '%s'", argv[optind + max]);
    return 0;
}

int ctl_parse_count(const char *s, uint64_t max, uint64_t *ret)
{
    unsigned long long v;
    char *end;

    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -EINVAL;
    *ret = v;
    return 0;
}

/* Reads all of fd, refusing more than max bytes. The result is NUL-terminated. */
static int read_all(int fd, size_t max, char **ret, size_t *ret_len)
{
    size_t len = 0, cap = 0;
    char *buf = NULL, *grown;
    ssize_t n;

    for (;;) {
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 65536;
            grown = realloc(buf, cap + 1);
            if (!grown) {
                free(buf);
                return -ENOMEM;
            }
            buf = grown;
        }
        n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || len + (size_t)n > max) {
            free(buf);
            return n < 0 ? -errno : -EFBIG;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    *ret = buf;
    *ret_len = len;
    return 0;
}

static int only_space(const char *s)
{
    return s[strspn(s, " \t\r\n")] == '\0';
}

/* Parses text as exactly one JSON object. */
static int parse_object(const char *verb, const char *what, const char *text, size_t len,
                        struct json_object **ret)
{
    struct json_tokener *tok = json_tokener_new_ex(JSON_DEPTH);
    struct json_object *obj;
    enum json_tokener_error jerr;
    size_t end;

    if (!tok)
        return -ENOMEM;
    obj = json_tokener_parse_ex(tok, text, (int)len);
    jerr = json_tokener_get_error(tok);
    end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (strlen(text) != len) {
        json_object_put(obj);
        return ctl_usage_error(verb, "%s: contains a NUL byte", what);
    }
    if (!obj && jerr == json_tokener_continue)
        return ctl_usage_error(verb, "%s: invalid JSON: unexpected end", what);
    if (!obj || jerr != json_tokener_success || !only_space(text + end)) {
        json_object_put(obj);
        return ctl_usage_error(verb, "%s: invalid JSON: %s", what,
                               jerr == json_tokener_success ? "more than one value"
                                                             : json_tokener_error_desc(jerr));
    }
    if (!json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        return ctl_usage_error(verb, "%s: not a JSON object", what);
    }
    *ret = obj;
    return 0;
}

int ctl_parse_json_arg(const char *verb, const char *what, const char *text,
                       struct json_object **ret)
{
    return parse_object(verb, what, text, strlen(text), ret);
}

int ctl_read_json_file(const char *verb, const char *path, struct json_object **ret)
{
    bool from_stdin = strcmp(path, "-") == 0;
    const char *what = from_stdin ? "standard input" : path;
    int fd = from_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    size_t len = 0;
    char *text = NULL;
    int r;

    if (fd < 0)
        return ctl_usage_error(verb, "cannot open %s: %s", path, strerror(errno));
    r = read_all(fd, FILE_MAX, &text, &len);
    if (!from_stdin)
        close(fd);
    if (r == -EFBIG)
        return ctl_usage_error(verb, "%s: larger than %u KiB", what, FILE_MAX >> 10);
    if (r < 0)
        return ctl_usage_error(verb, "cannot read %s: %s", what, strerror(-r));
    r = parse_object(verb, what, text, len, ret);
    free(text);
    return r;
}

typedef enum def_kind {
    DEF_STRING,     /* passed through as a string */
    DEF_SCALAR,     /* a number when all digits ("2", "1024"), else a string ("2:2", "1G") */
    DEF_TRUE,
    DEF_FALSE,
    DEF_LABEL,      /* KEY=VALUE into the labels object */
    DEF_NO_LABELS,  /* an empty labels object: vm-update's way to drop them all */
} def_kind;

typedef struct def_flag {
    const char *flag;
    const char *key;
    def_kind kind;
    bool define_only;
} def_flag;

static const def_flag def_flags[] = {
    { "name", "name", DEF_STRING, true },
    { "uuid", "uuid", DEF_STRING, true },
    { "vcpus", "vcpus", DEF_SCALAR, false },
    { "max-vcpus", "max-vcpus", DEF_SCALAR, false },
    { "memory", "memory", DEF_SCALAR, false },
    { "max-memory", "max-memory", DEF_SCALAR, false },
    { "machine", "machine", DEF_STRING, false },
    { "cpu-model", "cpu-model", DEF_STRING, false },
    { "accel", "accel", DEF_STRING, false },
    { "kernel", "kernel", DEF_STRING, false },
    { "initrd", "initrd", DEF_STRING, false },
    { "cmdline", "cmdline", DEF_STRING, false },
    { "boot", "boot", DEF_STRING, false },
    { "serial", "serial", DEF_SCALAR, false },
    { "autostart", "autostart", DEF_TRUE, false },
    { "no-autostart", "autostart", DEF_FALSE, false },
    { "on-crash", "on-crash", DEF_STRING, false },
    { "label", "labels", DEF_LABEL, false },
    { "clear-labels", "labels", DEF_NO_LABELS, false },
};
#define DEF_NFLAGS (sizeof(def_flags) / sizeof(def_flags[0]))

static bool all_digits(const char *s)
{
    return *s && s[strspn(s, "0123456789")] == '\0' && strlen(s) <= 18;
}

struct json_object *ctl_scalar_value(const char *s)
{
    if (all_digits(s))
        return json_object_new_int64(strtoll(s, NULL, 10));
    return json_object_new_string(s);
}

/* Adds KEY=VALUE to the definition's labels, creating them on first use. */
static int add_label(const char *verb, struct json_object *def, const char *arg)
{
    const char *eq = strchr(arg, '=');
    struct json_object *labels;
    char *key;

    if (!eq || eq == arg)
        return ctl_usage_error(verb, "--label wants KEY=VALUE, not '%s'", arg);
    if (!json_object_object_get_ex(def, "labels", &labels)) {
        labels = json_object_new_object();
        json_object_object_add(def, "labels", labels);
    }
    key = strndup(arg, (size_t)(eq - arg));
    if (!key)
        return -ENOMEM;
    json_object_object_add(labels, key, json_object_new_string(eq + 1));
    free(key);
    return 0;
}

static int apply_flag(const char *verb, struct json_object *def, const def_flag *f, const char *arg)
{
    switch (f->kind) {
    case DEF_STRING:
        json_object_object_add(def, f->key, json_object_new_string(arg));
        return 0;
    case DEF_SCALAR:
        json_object_object_add(def, f->key, ctl_scalar_value(arg));
        return 0;
    case DEF_TRUE:
    case DEF_FALSE:
        json_object_object_add(def, f->key, json_object_new_boolean(f->kind == DEF_TRUE));
        return 0;
    case DEF_NO_LABELS:
        json_object_object_add(def, f->key, json_object_new_object());
        return 0;
    case DEF_LABEL:
        return add_label(verb, def, arg);
    }
    return -EINVAL;
}

/* getopt's table for the flags this verb takes, each flag's val its index. */
static void build_options(struct option *opts, bool for_update)
{
    size_t n = 0;

    for (size_t i = 0; i < DEF_NFLAGS; i++) {
        const def_flag *f = &def_flags[i];
        bool takes_value = f->kind == DEF_STRING || f->kind == DEF_SCALAR || f->kind == DEF_LABEL;
        if (for_update && f->define_only)
            continue;
        opts[n++] = (struct option){ f->flag, takes_value ? required_argument : no_argument,
                                     NULL, FLAG_BASE + (int)i };
    }
    opts[n++] = (struct option){ "help", no_argument, NULL, 'h' };
    opts[n] = (struct option){ NULL, 0, NULL, 0 };
}

int ctl_definition_flags(int argc, char **argv, bool for_update, struct json_object **ret)
{
    struct option opts[DEF_NFLAGS + 2];
    struct json_object *def = json_object_new_object();
    int ch, r = 0;

    if (!def)
        return -ENOMEM;
    build_options(opts, for_update);
    while (r == 0 && (ch = ctl_getopt(argc, argv, opts)) != -1) {
        if (ch == 'h')
            r = CTL_HELP;
        else if (ch >= FLAG_BASE)
            r = apply_flag(argv[0], def, &def_flags[ch - FLAG_BASE], optarg);
        else
            r = -EINVAL;
    }
    if (r != 0) {
        json_object_put(def);
        return r;
    }
    *ret = def;
    return 0;
}
