/* cmd_args.h: argument checking for command handlers. Each function answers
 * the request with an InvalidParameter (or NotFound) error naming the
 * argument and returns false (or NULL) when the argument is wrong. */
#ifndef AGENTD_CMD_ARGS_H
#define AGENTD_CMD_ARGS_H

#include <stdbool.h>
#include <stdint.h>

struct json_object;
typedef struct request request;
typedef struct vm vm;
typedef struct vm_result vm_result;
typedef struct pool pool;

/* Refuses members of args not in allowed (NULL-terminated). */
bool args_known(request *r, struct json_object *args, const char *const *allowed);
struct json_object *arg(struct json_object *args, const char *key);
bool arg_string(request *r, struct json_object *args, const char *key, bool required,
                const char **ret);
bool arg_bool(request *r, struct json_object *args, const char *key, bool def, bool *ret);
bool arg_uint(request *r, struct json_object *args, const char *key, int64_t def,
              int64_t min, int64_t max, int64_t *ret);
struct json_object *arg_object(request *r, struct json_object *args, const char *key,
                               bool required, bool *ok);
/* A size in bytes: a whole number, or a string like "20G" (K, M, G, T: binary
 * units); def when absent. */
bool arg_size(request *r, struct json_object *args, const char *key, uint64_t def, uint64_t *ret);
/* The VM named by "name". */
vm *arg_vm(request *r, struct json_object *args);
/* The pool named by key. */
pool *arg_pool(request *r, struct json_object *args, const char *key);

/* Answers r from a job's outcome. */
void reply_result(request *r, const vm_result *res);
/* A vm_done_cb whose opaque is the request. */
void on_job_done(vm *v, const vm_result *res, void *opaque);
/* Answers a refused job starter (started < 0) at once. */
void run_job(request *r, int started, const vm_result *refusal);

#endif
