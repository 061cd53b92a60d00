/* agentctl_args.h: reading a verb's argv, and building VM definitions from
 * flags or files.
 *
 * Values are passed through as typed: the agent validates definitions and
 * names the field it refuses, so checking them here too would only make two
 * sets of rules to keep in step. What is checked here is the shape of the
 * command line. Each function prints its own usage message. */
#ifndef AGENTD_AGENTCTL_ARGS_H
#define AGENTD_AGENTCTL_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;
struct option;

/* Prints "agentctl: VERB: message" and returns -EINVAL. */
int ctl_usage_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* getopt_long over a verb's argv (argv[0] is the verb), with -h/--help as
 * 'h'. Unknown options and missing values are reported and give '?'. */
int ctl_getopt(int argc, char **argv, const struct option *opts);

/* Runs getopt for verbs whose only option is --help: 0, CTL_HELP or -EINVAL. */
int ctl_no_options(int argc, char **argv);

/* A new {key: value} object of one string. */
struct json_object *ctl_string_args(const char *key, const char *value);

/* A number when s is all digits ("2", "1024"), else the string ("2:2", "1G"). */
struct json_object *ctl_scalar_value(const char *s);

typedef enum ctl_flag_kind {
    CTL_FLAG_STRING,   /* --flag VALUE: the value as a string */
    CTL_FLAG_SCALAR,   /* --flag VALUE: as ctl_scalar_value() */
    CTL_FLAG_TRUE,     /* --flag: true */
    CTL_FLAG_FALSE,    /* --flag: false */
} ctl_flag_kind;

typedef struct ctl_flag {
    const char *flag;   /* without the dashes */
    const char *key;    /* the member of the arguments it sets */
    ctl_flag_kind kind;
} ctl_flag;

#define CTL_FLAGS_MAX 16

/* Runs getopt over a verb's flags (at most CTL_FLAGS_MAX), each setting its
 * member of args, replacing a default put there before. Leaves optind at the
 * first argument that is not an option. 0, CTL_HELP or -EINVAL. */
int ctl_flag_args(int argc, char **argv, const ctl_flag *flags, size_t n, struct json_object *args);

/* Checks the count of arguments left after the options. */
int ctl_positionals(int argc, char **argv, int min, int max);

/* A decimal count in [0, max]; -EINVAL for anything else. */
int ctl_parse_count(const char *s, uint64_t max, uint64_t *ret);

/* Reads a JSON object from path, or standard input for "-". */
int ctl_read_json_file(const char *verb, const char *path, struct json_object **ret);

/* Parses a JSON object given on the command line. */
int ctl_parse_json_arg(const char *verb, const char *what, const char *text,
                       struct json_object **ret);

/* Runs getopt over define's flags (update's when for_update: no --name or
 * --uuid) and collects them as definition members. Leaves optind at the
 * first argument that is not an option. 0, CTL_HELP or -EINVAL. */
int ctl_definition_flags(int argc, char **argv, bool for_update, struct json_object **ret);

#endif
