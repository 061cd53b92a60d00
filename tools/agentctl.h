/* agentctl.h: what agentctl's pieces share: options, a parsed request, verbs.
 *
 * A verb turns its argv into a request (a protocol command and its
 * arguments) before any connection is made, so a usage error never touches
 * the socket; after the reply, the same verb prints the value for humans. */
#ifndef AGENTD_AGENTCTL_H
#define AGENTD_AGENTCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;

/* Exit statuses. */
#define CTL_EXIT_OK 0
#define CTL_EXIT_REFUSED 1   /* the agent answered with an error */
#define CTL_EXIT_USAGE 2     /* bad flags, verb or arguments */
#define CTL_EXIT_CONNECT 3   /* no agent, or the conversation broke */
#define CTL_EXIT_INTERRUPTED 130   /* Ctrl-C before the reply, as a shell reports it */

/* A verb parser's answer when --help was asked for. */
#define CTL_HELP 1

#define CTL_DEFAULT_SOCKET "/run/agentd/agentd.sock"
#define CTL_DEFAULT_WAIT_S 30
/* A request's wait_s when its reply may take as long as it takes. */
#define CTL_WAIT_FOREVER (-1)

typedef struct ctl_options {
    const char *socket;
    bool json;
    int wait_s;            /* --timeout; 0: the verb's own */
} ctl_options;

typedef struct ctl_verb ctl_verb;

typedef struct ctl_request {
    const ctl_verb *verb;
    const char *command;          /* the protocol command */
    struct json_object *args;     /* owned; NULL sends no "arguments" */
    const char *vm;               /* the name from argv (a VM, pool, master), for messages */
    const char *job_vm;           /* a long job's VM, whose progress is shown; or NULL */
    int wait_s;                   /* how long this verb waits for its reply, or CTL_WAIT_FOREVER */
    const char *peer;             /* migrate's DEST: the other agent's socket */
    bool paused;                  /* start --paused */
    int64_t after;                /* events --after; -1 when not given */
} ctl_request;

struct ctl_verb {
    const char *name;
    const char *command;          /* the protocol command it sends */
    const char *done;             /* "destroyed": what a plain {} reply means */
    const char *synopsis;         /* arguments, after the verb's name */
    const char *help;             /* what it does, one or more lines */
    /* 0, CTL_HELP, or -EINVAL after printing why. */
    int (*parse)(int argc, char **argv, ctl_request *req);
    /* Human output for the reply's value; NULL for events and the console. */
    void (*print)(const ctl_request *req, struct json_object *value);
    /* A verb that runs its own conversation (the console); NULL for most. */
    int (*run)(const ctl_options *o, const ctl_request *req);
};

const ctl_verb *ctl_verb_find(const char *name);
/* The verbs in the order help lists them; NULL past the last. */
const ctl_verb *ctl_verb_at(size_t i);

/* The verb tables of agentctl_live.c, agentctl_migrate.c, agentctl_storage.c
 * and agentctl_master.c. */
const ctl_verb *ctl_storage_verbs(size_t *ret_n);
const ctl_verb *ctl_master_verbs(size_t *ret_n);
const ctl_verb *ctl_live_verbs(size_t *ret_n);
const ctl_verb *ctl_migrate_verbs(size_t *ret_n);
const ctl_verb *ctl_save_verbs(size_t *ret_n);
const ctl_verb *ctl_move_verbs(size_t *ret_n);

/* Parsers and a printer that verbs in several files share (agentctl_verbs.c). */
int ctl_parse_nothing(int argc, char **argv, ctl_request *req);
/* NAME --completed|--failed (migrate-confirm, send-confirm). */
int ctl_parse_confirm(int argc, char **argv, ctl_request *req);
/* VERB NAME, sending {"name": NAME}. */
int ctl_parse_name(int argc, char **argv, ctl_request *req);
/* "NAME done", done being the verb's word for a plain {} reply. */
void ctl_print_done(const ctl_request *req, struct json_object *value);

/* The events verb: streams until a signal (0) or the agent leaves (3). */
int ctl_run_events(const ctl_options *o, const ctl_request *req);

#endif
