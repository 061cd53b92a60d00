/* agent_e2e.c: shared pieces of agentd's end-to-end tests. */
#include "tests/support/agent_e2e.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "tests/support/guest.h"

const char *guest_dir(void)
{
    const char *d = getenv("AGENTD_GUEST_DIR");
    return d ? d : AGENTD_GUEST_DIR;
}

/* A definition of the test guest (boots to its readiness line). */
char *guest_def(const char *name, const char *extra)
{
    char *s;
    if (asprintf(&s, "{\"definition\": {\"name\": \"%s\", \"memory\": 256, \"kernel\": \"%s/vmlinuz\", "
                     "\"initrd\": \"%s/initrd.img\", \"cmdline\": \"console=ttyS0 quiet loglevel=1 panic=-1\"%s%s}}",
                 name, guest_dir(), guest_dir(), extra ? ", " : "", extra ? extra : "") < 0)
        abort();
    return s;
}

/* A VM with no OS: firmware finds nothing to boot and idles. Cheap to run many. */
char *bare_def(const char *name, const char *extra)
{
    char *s;
    if (asprintf(&s, "{\"definition\": {\"name\": \"%s\", \"memory\": 64%s%s}}", name,
                 extra ? ", " : "", extra ? extra : "") < 0)
        abort();
    return s;
}

int setup_with(void **state, const char *config)
{
    t *x = calloc(1, sizeof(*x));
    assert_int_equal(agentd_prepare(&x->agent, config), 0);
    assert_int_equal(agentd_start(&x->agent), 0);
    assert_int_equal(agent_connect(&x->conn, x->agent.socket), 0);
    *state = x;
    return 0;
}

int setup(void **state)
{
    return setup_with(state, NULL);
}




int teardown(void **state)
{
    t *x = *state;
    agent_close(&x->conn);
    agentd_cleanup(&x->agent);
    free(x);
    return 0;
}

struct json_object *call_ok(t *x, const char *cmd, const char *args)
{
    struct json_object *reply;
    assert_int_equal(agent_call(&x->conn, cmd, args, CALL_MS, &reply), 0);
    if (!agent_return(reply))
        fail_msg("%s %s: %s: %s", cmd, args ? args : "", agent_error_class(reply), agent_error_desc(reply));
    return reply;
}

void call_ok_put(t *x, const char *cmd, const char *args)
{
    json_object_put(call_ok(x, cmd, args));
}

void call_fails(t *x, const char *cmd, const char *args, const char *cls, const char *desc_prefix)
{
    struct json_object *reply;
    assert_int_equal(agent_call(&x->conn, cmd, args, CALL_MS, &reply), 0);
    assert_null(agent_return(reply));
    assert_string_equal(agent_error_class(reply), cls);
    if (desc_prefix && strncmp(agent_error_desc(reply), desc_prefix, strlen(desc_prefix)) != 0)
        fail_msg("%s: error '%s' does not start with '%s'", cmd, agent_error_desc(reply), desc_prefix);
    json_object_put(reply);
}

void define(t *x, char *def)
{
    call_ok_put(x, "vm-define", def);
    free(def);
}

char *name_arg(const char *name)
{
    char *s;
    if (asprintf(&s, "{\"name\": \"%s\"}", name) < 0)
        abort();
    return s;
}

void vm_cmd(t *x, const char *cmd, const char *name)
{
    char *a = name_arg(name);
    call_ok_put(x, cmd, a);
    free(a);
}

vm_info query(t *x, const char *name)
{
    vm_info i = { 0 };
    char *a = name_arg(name);
    struct json_object *reply = call_ok(x, "query-vm", a), *rt, *def, *v;
    free(a);
    assert_true(json_object_object_get_ex(agent_return(reply), "runtime", &rt));
    assert_true(json_object_object_get_ex(agent_return(reply), "definition", &def));
    json_object_object_get_ex(rt, "state", &v);
    snprintf(i.state, sizeof(i.state), "%s", json_object_get_string(v));
    json_object_object_get_ex(rt, "reason", &v);
    snprintf(i.reason, sizeof(i.reason), "%s", json_object_get_string(v));
    if (json_object_object_get_ex(rt, "pid", &v))
        i.pid = json_object_get_int(v);
    json_object_object_get_ex(rt, "console-log", &v);
    snprintf(i.console, sizeof(i.console), "%s", json_object_get_string(v));
    json_object_object_get_ex(def, "uuid", &v);
    snprintf(i.uuid, sizeof(i.uuid), "%s", json_object_get_string(v));
    json_object_put(reply);
    return i;
}

void wait_state(t *x, const char *vm, const char *state, int ms)
{
    if (agent_wait_state(&x->conn, vm, state, ms, NULL) < 0)
        fail_msg("%s never reached state %s (now %s)", vm, state, query(x, vm).state);
}

void wait_query_state(t *x, const char *vm, const char *state, int ms)
{
    for (long long end = now_ms() + ms; now_ms() < end; usleep(100000))
        if (!strcmp(query(x, vm).state, state))
            return;
    fail_msg("%s on %s never %s (now %s)", vm, x->agent.dir, state, query(x, vm).state);
}


/* One query of the guest's serial protocol (docs/testing.md), through the
 * VM's serial socket; fails the test when the guest answers with an error. */
struct json_object *member(struct json_object *o, const char *key)
{
    struct json_object *v = NULL;

    json_object_object_get_ex(o, key, &v);
    return v;
}

void guest_ask(t *x, const char *vm, const char *cmd, char *out, size_t len)
{
    char *a = name_arg(vm), sock[512];
    json_object *reply = call_ok(x, "query-vm", a);
    struct guest g;
    int r;

    free(a);
    snprintf(sock, sizeof(sock), "%s",
             json_object_get_string(member(member(agent_return(reply), "runtime"), "serial-socket")));
    json_object_put(reply);
    assert_int_equal(guest_attach(&g, sock), 0);
    r = guest_query(&g, cmd, GUEST_QUERY_MS, out, len);
    guest_kill(&g);
    if (r < 0)
        fail_msg("guest %s: %s: %d (%s)", vm, cmd, r, out);
}

void guest_run(t *x, const char *vm, const char *command)
{
    char cmd[512], out[GUEST_LINE_MAX];

    snprintf(cmd, sizeof(cmd), "run %s", command);
    guest_ask(x, vm, cmd, out, sizeof(out));
}

void guest_start_counter(t *x, const char *vm)
{
    guest_run(x, vm, "(i=0; while :; do echo tick $i >/dev/ttyS0; i=$((i+1)); sleep 1; done) >/dev/null 2>&1 &");
}

void console_ticks(const char *path, long offset, long *first, long *last)
{
    FILE *f = fopen(path, "re");
    char line[512];

    *first = *last = -1;
    if (!f)
        return;
    if (offset > 0 && fseek(f, offset, SEEK_SET) < 0) {
        fclose(f);
        return;
    }
    while (fgets(line, sizeof(line), f)) {
        char *at = strstr(line, "tick ");
        char *end;
        long n;
        if (!at)
            continue;
        n = strtol(at + 5, &end, 10);
        if (end == at + 5)
            continue;
        if (*first < 0)
            *first = n;
        *last = n;
    }
    fclose(f);
}

void wait_tick_past(t *x, const char *vm, long after, int ms, long *first, long *last)
{
    char log[256];

    snprintf(log, sizeof(log), "%s", query(x, vm).console);
    for (long long end = now_ms() + ms; now_ms() < end; usleep(100000)) {
        console_ticks(log, 0, first, last);
        if (*last > after)
            return;
    }
    fail_msg("%s: no tick past %ld (last %ld)", log, after, *last);
}

/* ---- shell commands ------------------------------------------------------ */

void sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (system(cmd) != 0)
        fail_msg("command failed: %s", cmd);
}

/* First line of a command's output. */
void sh_out(char *out, size_t len, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    FILE *p;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    assert_non_null(p = popen(cmd, "r"));
    if (!fgets(out, (int)len, p))
        out[0] = '\0';
    out[strcspn(out, "\n")] = '\0';
    pclose(p);
}

int sh_status(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    int st;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
