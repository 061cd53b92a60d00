/* agentctl.c: the administrator's command line for agentd.
 *
 * agentctl speaks only the control protocol (docs/protocol.md): it connects,
 * negotiates, sends one command, prints the reply and exits with a status a
 * script can act on (see CTL_EXIT_* in agentctl.h). Everything on the command
 * line is checked before the socket is opened, so a typo costs no request. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "agentctl.h"
#include "agentctl_args.h"
#include "agentctl_conn.h"
#include "agentctl_job.h"
#include "agentctl_print.h"

#define WAIT_MAX_S 86400
#define HELP_WIDTH 80

/* The length of the next piece of a synopsis that must stay on one line: a
 * word, or a bracketed group with its spaces ("[--pool POOL]"). */
static size_t piece_len(const char *s, size_t len)
{
    int depth = 0;
    size_t n = 0;

    for (; n < len && s[n] != '\n' && (depth > 0 || s[n] != ' '); n++)
        depth += s[n] == '[' || s[n] == '(' ? 1 : s[n] == ']' || s[n] == ')' ? -1 : 0;
    return n;
}

/* Writes len bytes of a synopsis after text ending at column col, each piece
 * after a space, wrapping before HELP_WIDTH to lines indented by indent. Its
 * forms (separated by '\n') are joined by "or". Ends the line. */
static void put_wrapped(FILE *f, const char *s, size_t len, size_t col, size_t indent)
{
    bool fresh = false;   /* at the start of a continuation line */
    const char *piece;
    size_t i = 0, n;

    while (i < len) {
        if (s[i] == ' ') {
            i++;
            continue;
        }
        piece = s[i] == '\n' ? "or" : s + i;
        n = s[i] == '\n' ? 2 : piece_len(piece, len - i);
        i += s[i] == '\n' ? 1 : n;
        if (!fresh && col + 1 + n >= HELP_WIDTH) {
            fprintf(f, "\n%*s", (int)indent, "");
            col = indent;
            fresh = true;
        }
        if (!fresh) {
            fputc(' ', f);
            col++;
        }
        fprintf(f, "%.*s", (int)n, piece);
        col += n;
        fresh = false;
    }
    fputc('\n', f);
}

/* A usage line for each of the verb's forms. */
static void print_synopsis(FILE *f, const ctl_verb *v)
{
    const char *s = v->synopsis, *nl;
    const char *lead = "usage:";
    int col;

    do {
        nl = strchr(s, '\n');
        col = fprintf(f, "%-6s agentctl [OPTIONS] %s", lead, v->name);
        put_wrapped(f, s, nl ? (size_t)(nl - s) : strlen(s), col < 0 ? 0 : (size_t)col, 10);
        lead = "";
        s = nl + 1;
    } while (nl);
}

/* The synopsis's length with its forms joined by " or ". */
static size_t joined_len(const char *s)
{
    size_t n = strlen(s);

    for (; (s = strchr(s, '\n')); s++)
        n += 3;
    return n;
}

/* One entry of the verb list. A verb's forms are joined by "or" when they
 * fit on one line, else each starts a line of its own. */
static void print_verb_line(FILE *f, const ctl_verb *v, int width)
{
    size_t indent = (size_t)width + 3, col;
    const char *s = v->synopsis, *nl;

    if (!*s) {
        fprintf(f, "  %s\n", v->name);
        return;
    }
    fprintf(f, "  %-*s", width, v->name);
    if (indent + joined_len(s) < HELP_WIDTH || !strchr(s, '\n')) {
        put_wrapped(f, s, strlen(s), indent - 1, indent);
        return;
    }
    for (col = indent - 1; s; s = nl ? nl + 1 : NULL) {
        nl = strchr(s, '\n');
        if (col == 0)
            col = (size_t)fprintf(f, "%*s", (int)(indent - 1), "");
        put_wrapped(f, s, nl ? (size_t)(nl - s) : strlen(s), col, indent + 2);
        col = 0;
    }
}

static int verb_name_width(void)
{
    const ctl_verb *v;
    size_t width = 0;

    for (size_t i = 0; (v = ctl_verb_at(i)); i++)
        width = strlen(v->name) > width ? strlen(v->name) : width;
    return (int)width;
}

static void print_usage(FILE *f)
{
    int width = verb_name_width();
    const ctl_verb *v;

    fprintf(f,
            "usage: agentctl [-s SOCKET] [--json] [--timeout SECONDS] VERB [ARGS...]\n"
            "\n"
            "Talks to agentd over its control socket.\n"
            "\n"
            "Options:\n"
            "  -s, --socket PATH   the agent's socket (default: $AGENTD_SOCKET, else\n"
            "                      " CTL_DEFAULT_SOCKET ")\n"
            "  --json              print the agent's JSON reply instead of text\n"
            "  --timeout SECONDS   how long to wait for the agent (default %d s; start %s)\n"
            "  -h, --help          this help; agentctl VERB --help for a verb's\n"
            "\n"
            "Verbs:\n",
            CTL_DEFAULT_WAIT_S,
            "90 s,\n                      destroy 60 s, shutdown its --timeout + 30 s or 330 s,\n"
            "                      pool-start and pool-stop 120 s; master-create and clone\n"
            "                      wait for their reply without a limit");
    for (size_t i = 0; (v = ctl_verb_at(i)); i++)
        print_verb_line(f, v, width);
    fprintf(f, "\nExit status: 0 done; 1 the agent refused or failed; 2 usage error;\n"
               "3 no agent at the socket, no answer in time, or a broken conversation;\n"
               "130 interrupted by Ctrl-C before the reply came.\n");
}

static void print_verb_help(const ctl_verb *v)
{
    print_synopsis(stdout, v);
    printf("\n%s", v->help);
}

static int usage_exit(const ctl_verb *v)
{
    if (v) {
        print_synopsis(stderr, v);
        fprintf(stderr, "Try 'agentctl %s --help'.\n", v->name);
    } else {
        fprintf(stderr, "usage: agentctl [-s SOCKET] [--json] [--timeout SECONDS] VERB [ARGS...]\n"
                        "Try 'agentctl --help'.\n");
    }
    return CTL_EXIT_USAGE;
}

/* Parses the options before the verb; returns the verb's index in argv,
 * 0 after printing help, or -EINVAL. */
static int parse_global(int argc, char **argv, ctl_options *o)
{
    static const struct option opts[] = {
        { "socket", required_argument, NULL, 's' },
        { "json", no_argument, NULL, 'j' },
        { "timeout", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    uint64_t secs;
    int ch;

    opterr = 0;
    while ((ch = getopt_long(argc, argv, "+:s:h", opts, NULL)) != -1) {
        if (ch == 's')
            o->socket = optarg;
        else if (ch == 'j')
            o->json = true;
        else if (ch == 't' && (ctl_parse_count(optarg, WAIT_MAX_S, &secs) < 0 || secs == 0))
            return ctl_usage_error("--timeout", "wants seconds (1 to %d), not '%s'", WAIT_MAX_S, optarg);
        else if (ch == 't')
            o->wait_s = (int)secs;
        else if (ch == 'h')
            return 0;
        else if (ch == ':')
            return ctl_usage_error(argv[optind - 1], "needs a value");
        else
            return ctl_usage_error(optopt ? (char[]){ '-', (char)optopt, 0 } : argv[optind - 1],
                                   "unknown option");
    }
    if (optind >= argc) {
        fprintf(stderr, "agentctl: no verb given\n");
        return -EINVAL;
    }
    return optind;
}

static void default_socket(ctl_options *o)
{
    const char *env = getenv("AGENTD_SOCKET");

    if (!o->socket)
        o->socket = env && *env ? env : CTL_DEFAULT_SOCKET;
}

/* A request the agent would refuse for its size is a usage error, found here. */
static int check_request_size(const ctl_request *req)
{
    char *text = ctl_request_text(req->command, req->args, 1);
    size_t len = text ? strlen(text) : 0;

    free(text);
    if (!text)
        return ctl_usage_error(req->verb->name, "out of memory");
    if (len > CTL_REQUEST_MAX)
        return ctl_usage_error(req->verb->name, "the request is %zu bytes; the agent accepts %u",
                               len, CTL_REQUEST_MAX);
    return 0;
}

/* How long connecting and negotiating may take. A job's reply has no limit,
 * but an agent that does not even greet is still an error. */
static int greeting_wait_s(const ctl_request *req)
{
    return req->wait_s == CTL_WAIT_FOREVER ? CTL_DEFAULT_WAIT_S : req->wait_s;
}

static int fail_exit(const ctl_options *o, const ctl_request *req, const ctl_conn *c, int r,
                     bool negotiated)
{
    if (r == -EINTR) {
        fputs("agentctl: interrupted\n", stderr);
        return CTL_EXIT_INTERRUPTED;
    }
    if (r == CTL_ERR_REFUSED) {
        fputs("agentctl: ", stderr);
        ctl_put_safe(stderr, c->err, 1);
        fputc('\n', stderr);
        return CTL_EXIT_REFUSED;
    }
    if (r == -ETIMEDOUT && negotiated)
        fprintf(stderr, "agentctl: %s: no answer to %s within %d s; it may still complete\n",
                o->socket, req->verb->name, req->wait_s);
    else if (r == -ETIMEDOUT)
        fprintf(stderr, "agentctl: %s: the agent did not greet within %d s\n", o->socket,
                greeting_wait_s(req));
    else
        fprintf(stderr, "agentctl: %s: %s\n", o->socket, c->err[0] ? c->err : strerror(-r));
    return CTL_EXIT_CONNECT;
}

static void print_reply(const ctl_options *o, const ctl_request *req, struct json_object *value)
{
    if (o->json)
        ctl_print_json(stdout, value);
    else
        req->verb->print(req, value);
}

/* Negotiates and asks; *negotiated tells an agent that never answered the
 * request from one that never greeted. */
static int converse(const ctl_options *o, const ctl_request *req, ctl_conn *c, int64_t deadline,
                    bool *negotiated, struct json_object **ret_value)
{
    int r = ctl_negotiate(c, deadline);

    if (r < 0)
        return r;
    *negotiated = true;
    if (req->wait_s == CTL_WAIT_FOREVER)
        deadline = CTL_FOREVER;
    if (req->job_vm)
        return ctl_job_call(c, req, o->json, deadline, ret_value);
    return ctl_call(c, req->command, req->args, deadline, NULL, NULL, ret_value);
}

static int run_call(const ctl_options *o, const ctl_request *req)
{
    int64_t deadline = ctl_deadline_after(greeting_wait_s(req));
    struct json_object *value = NULL;
    bool negotiated = false;
    ctl_conn c;
    int r, code = CTL_EXIT_OK;

    ctl_conn_init(&c);
    if (req->job_vm && (c.stop_fd = ctl_job_signal_fd()) < 0) {
        fprintf(stderr, "agentctl: signalfd: %s\n", strerror(-c.stop_fd));
        return CTL_EXIT_CONNECT;
    }
    r = ctl_connect(&c, o->socket, deadline);
    if (r < 0) {
        fprintf(stderr, "agentctl: cannot connect to %s: %s\n", o->socket, c.err);
        code = CTL_EXIT_CONNECT;
    } else if ((r = converse(o, req, &c, deadline, &negotiated, &value)) == 0) {
        print_reply(o, req, value);
    } else {
        code = fail_exit(o, req, &c, r, negotiated);
    }
    json_object_put(value);
    ctl_conn_close(&c);
    if (c.stop_fd >= 0)
        close(c.stop_fd);
    return code;
}

/* "agentctl help [VERB]" is the same as --help. */
static int run_help(int argc, char **argv)
{
    const ctl_verb *v = argc > 1 ? ctl_verb_find(argv[1]) : NULL;

    if (argc > 1 && !v) {
        fprintf(stderr, "agentctl: unknown verb '%s'\n", argv[1]);
        return usage_exit(NULL);
    }
    if (v)
        print_verb_help(v);
    else
        print_usage(stdout);
    return CTL_EXIT_OK;
}

static int run_verb(const ctl_options *o, const ctl_verb *v, int argc, char **argv)
{
    ctl_request req = { .verb = v, .command = v->command, .wait_s = CTL_DEFAULT_WAIT_S, .after = -1 };
    int r, code;

    optind = 0;  /* glibc: start getopt afresh on the verb's argv */
    r = v->parse(argc, argv, &req);
    if (r == CTL_HELP)
        print_verb_help(v);
    if (r == 0)
        r = check_request_size(&req);
    if (r != 0) {
        json_object_put(req.args);
        return r == CTL_HELP ? CTL_EXIT_OK : usage_exit(v);
    }
    if (o->wait_s)
        req.wait_s = o->wait_s;
    code = v->run ? v->run(o, &req) : v->print ? run_call(o, &req) : ctl_run_events(o, &req);
    json_object_put(req.args);
    return code;
}

int main(int argc, char **argv)
{
    ctl_options o = { 0 };
    const ctl_verb *v;
    int i = parse_global(argc, argv, &o);

    if (i < 0)
        return usage_exit(NULL);
    if (i == 0) {
        print_usage(stdout);
        return CTL_EXIT_OK;
    }
    default_socket(&o);
    if (strcmp(argv[i], "help") == 0)
        return run_help(argc - i, argv + i);
    v = ctl_verb_find(argv[i]);
    if (!v) {
        fprintf(stderr, "agentctl: unknown verb '%s'\n", argv[i]);
        return usage_exit(NULL);
    }
    return run_verb(&o, v, argc - i, argv + i);
}
