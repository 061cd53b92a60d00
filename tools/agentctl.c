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

#include <json-c/json.h>

#include "agentctl.h"
#include "agentctl_args.h"
#include "agentctl_conn.h"
#include "agentctl_print.h"

#define WAIT_MAX_S 86400

static void print_synopsis(FILE *f, const ctl_verb *v)
{
    const char *s = v->synopsis, *nl;
    const char *lead = "usage:";

    do {
        nl = strchr(s, '\n');
        fprintf(f, "%-6s agentctl [OPTIONS] %s %.*s\n", lead, v->name,
                (int)(nl ? nl - s : (long)strlen(s)), s);
        lead = "";
        s = nl + 1;
    } while (nl);
}

/* One line of the verb list; define's two forms share it. */
static void print_verb_line(FILE *f, const ctl_verb *v)
{
    const char *synopsis = strchr(v->synopsis, '\n') ? "FILE|- or --name NAME [FLAGS]" : v->synopsis;

    if (*synopsis)
        fprintf(f, "  %-9s %s\n", v->name, synopsis);
    else
        fprintf(f, "  %s\n", v->name);
}

static void print_usage(FILE *f)
{
    size_t n;
    const ctl_verb *v = ctl_verb_list(&n);

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
            "90 s,\n                      destroy 60 s, shutdown its --timeout + 30 s or 330 s");
    for (size_t i = 0; i < n; i++)
        print_verb_line(f, &v[i]);
    fprintf(f, "\nExit status: 0 done; 1 the agent refused or failed; 2 usage error;\n"
               "3 no agent at the socket, no answer in time, or a broken conversation.\n");
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

static int fail_exit(const ctl_options *o, const ctl_request *req, const ctl_conn *c, int r,
                     bool negotiated)
{
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
                req->wait_s);
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

static int run_call(const ctl_options *o, const ctl_request *req)
{
    int64_t deadline = ctl_deadline_after(req->wait_s);
    struct json_object *value = NULL;
    bool negotiated = false;
    ctl_conn c;
    int r, code = CTL_EXIT_OK;

    ctl_conn_init(&c);
    r = ctl_connect(&c, o->socket, deadline);
    if (r < 0) {
        fprintf(stderr, "agentctl: cannot connect to %s: %s\n", o->socket, c.err);
        return CTL_EXIT_CONNECT;
    }
    r = ctl_negotiate(&c, deadline);
    if (r == 0) {
        negotiated = true;
        r = ctl_call(&c, req->command, req->args, deadline, NULL, NULL, &value);
    }
    if (r == 0)
        print_reply(o, req, value);
    else
        code = fail_exit(o, req, &c, r, negotiated);
    json_object_put(value);
    ctl_conn_close(&c);
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
    code = v->print ? run_call(o, &req) : ctl_run_events(o, &req);
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
