/* agent_harness.h: runs agentd in a temp directory for end-to-end tests and
 * talks its control protocol over a blocking socket, with a deadline on every
 * wait. */
#ifndef AGENTD_TESTS_AGENT_HARNESS_H
#define AGENTD_TESTS_AGENT_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct json_object;

/* Test agents' cgroups live under this parent, each in a group named
 * after its temp dir. */
#define TEST_CGROUP_PARENT "agentd-test"

typedef struct agentd_proc {
    pid_t pid;
    char dir[128];          /* the temp root; state/, run/ and the socket are inside */
    char socket[192];
    char log[192];          /* agentd's own stderr */
    char config[192];
} agentd_proc;

typedef struct agent_conn {
    int fd;
    char *buf;
    size_t len, cap;
    int next_id;
    struct json_object *greeting;
    /* events seen while waiting for replies, oldest first */
    struct json_object *events;
} agent_conn;

/* Makes the temp dir and writes a config with the given extra "key = value"
 * lines (may be NULL); does not start agentd. */
int agentd_prepare(agentd_proc *p, const char *extra_config);
/* Starts agentd (path from AGENTD_BINARY or the AGENTD_BINARY_PATH macro) and
 * waits until its socket accepts. */
int agentd_start(agentd_proc *p);
/* SIGKILL (sig 9) or SIGTERM (15), and reap. VMs are not touched. */
int agentd_stop(agentd_proc *p, int sig);
/* Kills every QEMU whose command line mentions the temp dir, then removes it. */
void agentd_cleanup(agentd_proc *p);

/* Connects and negotiates capabilities. */
int agent_connect(agent_conn *c, const char *socket);
void agent_close(agent_conn *c);
/* Sends execute with args (JSON text, may be NULL) and waits for its reply;
 * *ret_reply is the whole reply object (caller puts). Events seen meanwhile
 * are kept in c->events. */
int agent_call(agent_conn *c, const char *execute, const char *args_json, int timeout_ms,
               struct json_object **ret_reply);
/* Sends a request without waiting: its id, or -errno. */
int agent_send(agent_conn *c, const char *execute, const char *args_json);
/* Waits for the reply to request id (events seen meanwhile are kept). */
int agent_wait_reply(agent_conn *c, int id, int timeout_ms, struct json_object **ret_reply);
/* Sends a raw line and reads the next non-event line. */
int agent_raw(agent_conn *c, const char *line, size_t len, int timeout_ms, struct json_object **ret_reply);
/* Drops the events kept so far, so later waits see only new ones. */
void agent_forget_events(agent_conn *c);
/* Waits for a VM_STATE event for vm with the given state (kept or new). */
int agent_wait_state(agent_conn *c, const char *vm, const char *state, int timeout_ms,
                     struct json_object **ret_event);
/* Convenience: the "return" of a successful call, or NULL; on error writes
 * the class into err_class (may be NULL). */
struct json_object *agent_return(struct json_object *reply);
const char *agent_error_class(struct json_object *reply);
const char *agent_error_desc(struct json_object *reply);

/* Waits until file contains needle at least count times. */
int wait_file_contains(const char *path, const char *needle, int count, int timeout_ms);
/* PIDs of live processes whose argv holds "-uuid UUID". */
int count_qemu_with_uuid(const char *uuid, pid_t *ret_pid);
long long now_ms(void);

#endif
