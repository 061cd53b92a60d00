/* agent_e2e.h: what end-to-end tests of agentd share: a per-test agent in a
 * temp directory, calls that assert their outcome, and VM definitions of
 * the test guest. Built into each e2e test that drives agentd. */
#ifndef AGENTD_TESTS_AGENT_E2E_H
#define AGENTD_TESTS_AGENT_E2E_H

#include <stddef.h>

#include "tests/support/agent_harness.h"

struct json_object;

#define READY_LINE "AGENTD-GUEST-READY"
#define BOOT_MS 40000
#define CALL_MS 30000

typedef struct t {
    agentd_proc agent;
    agent_conn conn;
} t;

/* state, reason, pid and uuid from query-vm. */
typedef struct vm_info {
    char state[32], reason[32], uuid[40], console[256];
    int pid;
} vm_info;

const char *guest_dir(void);
/* {"definition": ...} of the test guest (boots to its readiness line);
 * extra is more members, or NULL. Caller frees. */
char *guest_def(const char *name, const char *extra);
/* A VM with no OS: firmware finds nothing to boot and idles. */
char *bare_def(const char *name, const char *extra);

/* cmocka setup: agentd with extra config lines, connected. */
int setup_with(void **state, const char *config);
int setup(void **state);
int teardown(void **state);

/* The reply of a call that must succeed (the test fails otherwise). */
struct json_object *call_ok(t *x, const char *cmd, const char *args);
void call_ok_put(t *x, const char *cmd, const char *args);
/* A call that must fail with class cls and a description starting with
 * desc_prefix (NULL: any). */
void call_fails(t *x, const char *cmd, const char *args, const char *cls, const char *desc_prefix);
/* vm-define of def (freed). */
void define(t *x, char *def);
char *name_arg(const char *name);
void vm_cmd(t *x, const char *cmd, const char *name);
vm_info query(t *x, const char *name);
void wait_state(t *x, const char *vm, const char *state, int ms);
/* The same by asking query-vm: for a state reached before this connection. */
void wait_query_state(t *x, const char *vm, const char *state, int ms);

/* o's member key, or NULL. */
struct json_object *member(struct json_object *o, const char *key);
/* One query of the test guest's serial protocol (docs/testing.md) through
 * the VM's serial socket; the test fails when the guest answers an error. */
#define GUEST_QUERY_MS 120000
void guest_ask(t *x, const char *vm, const char *cmd, char *out, size_t len);

/* "run COMMAND" in the guest, which must succeed. */
void guest_run(t *x, const char *vm, const char *command);
/* A counter in the guest: "tick N" on its console every second, from 0. */
void guest_start_counter(t *x, const char *vm);
/* The numbers of the first and last "tick N" in a console log, -1 if none;
 * from byte offset on. */
void console_ticks(const char *path, long offset, long *first, long *last);
/* Waits until vm's console log shows a tick past after (the test fails
 * after ms); the first and last tick in it. */
void wait_tick_past(t *x, const char *vm, long after, int ms, long *first, long *last);

/* A shell command that must succeed; the first line of one's output; one's exit status. */
void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sh_out(char *out, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int sh_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
