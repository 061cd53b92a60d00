/* test_agent_e2e.c: agentd and real QEMU (tcg unless AGENTD_ACCEL says
 * otherwise): power life cycle, adoption after kill -9, crashes, races, hung
 * QEMUs, permissions and bad input. Each test runs its own agentd in a temp
 * directory and kills whatever QEMU it left behind. */
#include <errno.h>
#include <grp.h>
#include <setjmp.h>
#include <signal.h>
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
#include <uv.h>

#include "qmp/qmp.h"
#include "tests/support/agent_harness.h"
#include "tests/support/agent_e2e.h"

static int setup_fast_qmp_timeout(void **state)
{
    return setup_with(state, "qmp-timeout-ms = 1000\n");
}

static int setup_group_socket(void **state)
{
    return setup_with(state, "socket-group = nogroup\n");
}

static int setup_qemu_user(void **state)
{
    return setup_with(state, "qemu-user = nobody\n");
}

/* ---- the power life cycle -------------------------------------------------- */

static void guest_boots_and_powers_off_by_acpi(void **state)
{
    t *x = *state;

    define(x, guest_def("g1", NULL));
    assert_string_equal(query(x, "g1").state, "stopped");
    vm_cmd(x, "vm-start", "g1");
    vm_info i = query(x, "g1");
    assert_string_equal(i.state, "running");
    assert_true(i.pid > 0);
    assert_int_equal(count_qemu_with_uuid(i.uuid, NULL), 1);
    assert_int_equal(wait_file_contains(i.console, READY_LINE, 1, BOOT_MS), 0);

    struct json_object *reply = call_ok(x, "vm-shutdown", "{\"name\": \"g1\", \"timeout\": 30}"), *forced;
    assert_true(json_object_object_get_ex(agent_return(reply), "forced", &forced));
    assert_false(json_object_get_boolean(forced));
    json_object_put(reply);
    i = query(x, "g1");
    assert_string_equal(i.state, "stopped");
    assert_string_equal(i.reason, "guest-shutdown");
    assert_int_equal(count_qemu_with_uuid(i.uuid, NULL), 0);
}

static void destroy_ends_qemu_at_once(void **state)
{
    t *x = *state;

    define(x, bare_def("b1", NULL));
    vm_cmd(x, "vm-start", "b1");
    vm_info i = query(x, "b1");
    long long t0 = now_ms();
    vm_cmd(x, "vm-destroy", "b1");
    assert_true(now_ms() - t0 < 3000);
    i = query(x, "b1");
    assert_string_equal(i.state, "stopped");
    assert_string_equal(i.reason, "user");
    assert_int_equal(count_qemu_with_uuid(i.uuid, NULL), 0);
    /* The definition stays: it starts again. */
    vm_cmd(x, "vm-start", "b1");
    assert_string_equal(query(x, "b1").state, "running");
    vm_cmd(x, "vm-destroy", "b1");
}

static void shutdown_of_a_guest_that_ignores_it_times_out_then_forces(void **state)
{
    t *x = *state;

    /* No OS: nothing handles the power button. */
    define(x, bare_def("b2", NULL));
    vm_cmd(x, "vm-start", "b2");
    call_fails(x, "vm-shutdown", "{\"name\": \"b2\", \"timeout\": 1}", "Timeout", "b2 did not power off");
    assert_string_equal(query(x, "b2").state, "running");
    struct json_object *reply = call_ok(x, "vm-shutdown", "{\"name\": \"b2\", \"timeout\": 1, \"force\": true}"), *f;
    assert_true(json_object_object_get_ex(agent_return(reply), "forced", &f));
    assert_true(json_object_get_boolean(f));
    json_object_put(reply);
    assert_string_equal(query(x, "b2").state, "stopped");
}

static void reset_reboots_the_guest(void **state)
{
    t *x = *state;

    define(x, guest_def("g2", NULL));
    vm_cmd(x, "vm-start", "g2");
    vm_info i = query(x, "g2");
    assert_int_equal(wait_file_contains(i.console, READY_LINE, 1, BOOT_MS), 0);
    vm_cmd(x, "vm-reset", "g2");
    assert_int_equal(wait_file_contains(i.console, READY_LINE, 2, BOOT_MS), 0);
    vm_info after = query(x, "g2");
    assert_string_equal(after.state, "running");
    assert_int_equal(after.pid, i.pid);
    vm_cmd(x, "vm-destroy", "g2");
}

static void suspend_and_resume_match_qemu(void **state)
{
    t *x = *state;
    struct json_object *reply, *st;

    define(x, bare_def("b3", NULL));
    vm_cmd(x, "vm-start", "b3");
    vm_cmd(x, "vm-suspend", "b3");
    assert_string_equal(query(x, "b3").state, "paused");
    reply = call_ok(x, "vm-qmp", "{\"name\": \"b3\", \"command\": \"query-status\"}");
    assert_true(json_object_object_get_ex(agent_return(reply), "status", &st));
    assert_string_equal(json_object_get_string(st), "paused");
    json_object_put(reply);
    call_fails(x, "vm-suspend", "{\"name\": \"b3\"}", "InvalidState", NULL);
    vm_cmd(x, "vm-resume", "b3");
    assert_string_equal(query(x, "b3").state, "running");
    reply = call_ok(x, "vm-qmp", "{\"name\": \"b3\", \"command\": \"query-status\"}");
    assert_true(json_object_object_get_ex(agent_return(reply), "status", &st));
    assert_string_equal(json_object_get_string(st), "running");
    json_object_put(reply);
    vm_cmd(x, "vm-destroy", "b3");
}

/* ---- supervision ------------------------------------------------------------- */

static void kill_9_of_the_agent_loses_no_vm(void **state)
{
    t *x = *state;
    char name[16];
    vm_info before[5];

    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "a%d", i);
        define(x, bare_def(name, NULL));
        vm_cmd(x, "vm-start", name);
    }
    vm_cmd(x, "vm-suspend", "a4");
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "a%d", i);
        before[i] = query(x, name);
    }
    agent_close(&x->conn);
    agentd_stop(&x->agent, SIGKILL);
    for (int i = 0; i < 5; i++)
        assert_int_equal(count_qemu_with_uuid(before[i].uuid, NULL), 1);

    assert_int_equal(agentd_start(&x->agent), 0);
    assert_int_equal(agent_connect(&x->conn, x->agent.socket), 0);
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "a%d", i);
        /* Adoption announces each VM once QEMU told its real state. */
        vm_info now = query(x, name);
        for (int tries = 0; tries < 100 && strcmp(now.reason, "agent-restart") != 0; tries++) {
            usleep(20000);
            now = query(x, name);
        }
        assert_int_equal(now.pid, before[i].pid);
        assert_string_equal(now.state, before[i].state);
        assert_string_equal(now.reason, "agent-restart");
        assert_int_equal(count_qemu_with_uuid(before[i].uuid, NULL), 1);
    }
    assert_string_equal(before[4].state, "paused");
    /* Adopted VMs are fully managed: they stop on request. */
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "a%d", i);
        vm_cmd(x, "vm-destroy", name);
        assert_int_equal(count_qemu_with_uuid(before[i].uuid, NULL), 0);
    }
}

static void sigterm_of_the_agent_leaves_vms_running(void **state)
{
    t *x = *state;

    define(x, bare_def("s1", NULL));
    vm_cmd(x, "vm-start", "s1");
    vm_info i = query(x, "s1");
    agent_close(&x->conn);
    assert_int_equal(agentd_stop(&x->agent, SIGTERM), 0);
    assert_int_equal(count_qemu_with_uuid(i.uuid, NULL), 1);
    assert_int_equal(agentd_start(&x->agent), 0);
    assert_int_equal(agent_connect(&x->conn, x->agent.socket), 0);
    assert_int_equal(query(x, "s1").pid, i.pid);
    vm_cmd(x, "vm-destroy", "s1");
}

static void killed_qemu_is_reported_within_a_second(void **state)
{
    t *x = *state;
    struct json_object *ev, *data, *es, *sig;

    define(x, bare_def("c1", NULL));
    vm_cmd(x, "vm-start", "c1");
    vm_info i = query(x, "c1");
    agent_forget_events(&x->conn);
    long long t0 = now_ms();
    kill(i.pid, SIGKILL);
    assert_int_equal(agent_wait_state(&x->conn, "c1", "stopped", 5000, &ev), 0);
    assert_true(now_ms() - t0 < 1000);
    assert_true(json_object_object_get_ex(ev, "data", &data));
    assert_true(json_object_object_get_ex(data, "reason", &es));
    assert_string_equal(json_object_get_string(es), "crash");
    assert_true(json_object_object_get_ex(data, "exit-status", &es));
    assert_true(json_object_object_get_ex(es, "signal", &sig));
    assert_int_equal(json_object_get_int(sig), SIGKILL);
    json_object_put(ev);
    assert_string_equal(query(x, "c1").reason, "crash");
}

static void on_crash_restart_starts_a_new_qemu(void **state)
{
    t *x = *state;

    define(x, bare_def("c2", "\"on-crash\": \"restart\""));
    vm_cmd(x, "vm-start", "c2");
    vm_info i = query(x, "c2");
    agent_forget_events(&x->conn);
    kill(i.pid, SIGKILL);
    wait_state(x, "c2", "crashed", 5000);
    wait_state(x, "c2", "running", 15000);
    vm_info after = query(x, "c2");
    assert_true(after.pid > 0 && after.pid != i.pid);
    assert_string_equal(after.reason, "on-crash");
    assert_int_equal(count_qemu_with_uuid(i.uuid, NULL), 1);
    vm_cmd(x, "vm-destroy", "c2");
}

static void racing_starts_make_one_qemu(void **state)
{
    t *x = *state;
    agent_conn other;
    static const char line[] = "{\"execute\": \"vm-start\", \"arguments\": {\"name\": \"r1\"}, \"id\": 77}\n";
    struct json_object *r1, *r2;

    define(x, bare_def("r1", NULL));
    assert_int_equal(agent_connect(&other, x->agent.socket), 0);
    /* Both requests are on the wire before either is answered. */
    assert_int_equal(write(other.fd, line, sizeof(line) - 1), (ssize_t)(sizeof(line) - 1));
    assert_int_equal(agent_raw(&x->conn, line, sizeof(line) - 1, CALL_MS, &r1), 0);
    assert_int_equal(agent_raw(&other, "", 0, CALL_MS, &r2), 0);
    int ok = (agent_return(r1) != NULL) + (agent_return(r2) != NULL);
    assert_int_equal(ok, 1);
    const char *cls = agent_return(r1) ? agent_error_class(r2) : agent_error_class(r1);
    assert_true(strcmp(cls, "Busy") == 0 || strcmp(cls, "InvalidState") == 0);
    json_object_put(r1);
    json_object_put(r2);
    agent_close(&other);
    assert_int_equal(count_qemu_with_uuid(query(x, "r1").uuid, NULL), 1);
    vm_cmd(x, "vm-destroy", "r1");
}

static void destroy_cancels_a_start_in_progress(void **state)
{
    t *x = *state;
    static const char lines[] =
        "{\"execute\": \"vm-start\", \"arguments\": {\"name\": \"k1\"}, \"id\": \"start\"}\n"
        "{\"execute\": \"vm-destroy\", \"arguments\": {\"name\": \"k1\"}, \"id\": \"destroy\"}\n";
    struct json_object *a, *b, *start = NULL, *destroy = NULL, *id;

    define(x, bare_def("k1", NULL));
    /* Both arrive in one read: the destroy finds the start still spawning QEMU. */
    assert_int_equal(agent_raw(&x->conn, lines, sizeof(lines) - 1, CALL_MS, &a), 0);
    assert_int_equal(agent_raw(&x->conn, "", 0, CALL_MS, &b), 0);
    assert_true(json_object_object_get_ex(a, "id", &id));
    if (strcmp(json_object_get_string(id), "start") == 0) {
        start = a;
        destroy = b;
    } else {
        start = b;
        destroy = a;
    }
    assert_string_equal(agent_error_class(start), "GenericError");
    assert_non_null(strstr(agent_error_desc(start), "interrupted by vm-destroy"));
    assert_non_null(agent_return(destroy));
    vm_info i = query(x, "k1");
    assert_string_equal(i.state, "stopped");
    assert_int_equal(count_qemu_with_uuid(i.uuid, NULL), 0);
    json_object_put(a);
    json_object_put(b);
    /* And it starts normally afterwards. */
    vm_cmd(x, "vm-start", "k1");
    vm_cmd(x, "vm-destroy", "k1");
}

static void hung_qemu_slows_only_its_own_vm(void **state)
{
    t *x = *state;
    struct json_object *reply;

    define(x, bare_def("h1", NULL));
    define(x, bare_def("h2", NULL));
    vm_cmd(x, "vm-start", "h1");
    vm_cmd(x, "vm-start", "h2");
    vm_info i = query(x, "h1");
    kill(i.pid, SIGSTOP);
    call_fails(x, "vm-qmp", "{\"name\": \"h1\", \"command\": \"query-status\"}", "Timeout", NULL);
    assert_string_equal(query(x, "h1").state, "unresponsive");
    /* The agent and the other VM stay fast while h1 hangs. */
    long long t0 = now_ms();
    json_object_put(call_ok(x, "query-vms", NULL));
    assert_true(now_ms() - t0 < 100);
    t0 = now_ms();
    json_object_put(call_ok(x, "vm-qmp", "{\"name\": \"h2\", \"command\": \"query-status\"}"));
    assert_true(now_ms() - t0 < 500);
    agent_forget_events(&x->conn);
    kill(i.pid, SIGCONT);
    wait_state(x, "h1", "running", 10000);
    /* A hung QEMU still goes away on destroy: quit times out, signals follow. */
    kill(i.pid, SIGSTOP);
    vm_cmd(x, "vm-destroy", "h1");
    assert_int_equal(count_qemu_with_uuid(i.uuid, NULL), 0);
    vm_cmd(x, "vm-destroy", "h2");
    (void)reply;
}

static void qemu_runs_as_the_configured_user(void **state)
{
    t *x = *state;
    char path[64], line[256];
    int uid = -1;

    define(x, bare_def("u1", NULL));
    vm_cmd(x, "vm-start", "u1");
    vm_info i = query(x, "u1");
    snprintf(path, sizeof(path), "/proc/%d/status", i.pid);
    FILE *f = fopen(path, "re");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "Uid: %*d %d", &uid) == 1)
            break;
    fclose(f);
    assert_int_equal(uid, 65534);
    /* Still fully managed after dropping privileges. */
    json_object_put(call_ok(x, "vm-qmp", "{\"name\": \"u1\", \"command\": \"query-status\"}"));
    vm_cmd(x, "vm-destroy", "u1");
    assert_int_equal(count_qemu_with_uuid(i.uuid, NULL), 0);
}

/* ---- access and input ---------------------------------------------------------- */

static void non_admin_may_query_but_not_change(void **state)
{
    t *x = *state;
    struct group *g = getgrnam("nogroup");
    pid_t pid;
    int status;

    define(x, bare_def("p1", NULL));
    assert_non_null(g);
    pid = fork();
    if (pid == 0) {
        agent_conn c;
        struct json_object *r1, *r2;
        if (setgroups(0, NULL) < 0 || setgid(g->gr_gid) < 0 || setuid(65534) < 0)
            _exit(10);
        if (agent_connect(&c, x->agent.socket) < 0)
            _exit(11);
        if (agent_call(&c, "query-vms", NULL, 5000, &r1) < 0 || !agent_return(r1))
            _exit(12);
        if (agent_call(&c, "vm-start", "{\"name\": \"p1\"}", 5000, &r2) < 0 ||
            strcmp(agent_error_class(r2), "PermissionDenied") != 0)
            _exit(13);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_string_equal(query(x, "p1").state, "stopped");
}

static void bad_definitions_are_refused_naming_the_field(void **state)
{
    t *x = *state;
    static const struct { const char *def; const char *field; } bad[] = {
        { "{\"name\": \"v\", \"colour\": \"red\"}", "colour" },
        { "{\"name\": \"v\", \"memory\": -1}", "memory" },
        { "{\"name\": \"../x\"}", "name" },
        { "{\"name\": \"v\", \"vcpus\": 0}", "vcpus" },
        { "{\"name\": \"v\", \"memory\": \"2X\"}", "memory" },
        { "{\"memory\": 512}", "name" },
    };
    char args[256];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(args, sizeof(args), "{\"definition\": %s}", bad[i].def);
        call_fails(x, "vm-define", args, "InvalidParameter", bad[i].field);
    }
    call_fails(x, "vm-start", "{\"name\": \"nope\"}", "NotFound", NULL);
    call_fails(x, "vm-start", "{}", "InvalidParameter", "name");
    call_fails(x, "vm-start", "{\"name\": \"x\", \"bogus\": 1}", "InvalidParameter", "bogus");
    call_fails(x, "no-such-command", NULL, "CommandNotFound", NULL);
    struct json_object *vms = call_ok(x, "query-vms", NULL);
    assert_int_equal(json_object_array_length(agent_return(vms)), 0);
    json_object_put(vms);
}

static void two_megabyte_line_is_refused_and_the_agent_lives(void **state)
{
    t *x = *state;
    size_t n = 2u << 20;
    char *line = malloc(n + 1);
    struct json_object *reply;

    memset(line, 'a', n);
    line[n] = '\n';
    assert_int_equal(agent_raw(&x->conn, line, n + 1, CALL_MS, &reply), 0);
    assert_string_equal(agent_error_class(reply), "GenericError");
    json_object_put(reply);
    free(line);
    agent_close(&x->conn);
    assert_int_equal(agent_connect(&x->conn, x->agent.socket), 0);
    json_object_put(call_ok(x, "query-vms", NULL));
    /* Malformed JSON gets an error; the connection stays usable. */
    assert_int_equal(agent_raw(&x->conn, "{\"execute\": \n", 13, CALL_MS, &reply), 0);
    assert_string_equal(agent_error_class(reply), "GenericError");
    json_object_put(reply);
    json_object_put(call_ok(x, "query-vms", NULL));
}

/* ---- a stock QMP client ---------------------------------------------------------- */

typedef struct qmp_probe {
    int ready, done, status;
    size_t vms;
} qmp_probe;

static void probe_ready(qmp_client *c, int status, void *opaque)
{
    qmp_probe *p = opaque;
    p->ready = 1;
    p->status = status;
}

static void probe_reply(qmp_client *c, const qmp_reply *r, void *opaque)
{
    qmp_probe *p = opaque;
    p->done = 1;
    p->status = r->status;
    if (r->status == 0)
        p->vms = json_object_array_length(r->ret);
}

static void qmp_client_library_talks_to_the_agent(void **state)
{
    t *x = *state;
    uv_loop_t loop;
    qmp_client *c;
    qmp_probe p = { 0 };
    qmp_options o = { .path = x->agent.socket, .on_ready = probe_ready, .opaque = &p };

    define(x, bare_def("q1", NULL));
    uv_loop_init(&loop);
    assert_int_equal(qmp_client_new(&loop, &o, &c), 0);
    assert_int_equal(qmp_connect(c), 0);
    while (!p.ready)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(p.status, 0);
    assert_int_equal(qmp_execute(c, "query-vms", NULL, NULL, probe_reply, &p, NULL), 0);
    while (!p.done)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(p.status, 0);
    assert_int_equal(p.vms, 1);
    qmp_close(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

static void autostart_vms_start_with_the_agent(void **state)
{
    t *x = *state;

    define(x, bare_def("auto1", "\"autostart\": true"));
    define(x, bare_def("manual1", NULL));
    agent_close(&x->conn);
    agentd_stop(&x->agent, SIGTERM);
    assert_int_equal(agentd_start(&x->agent), 0);
    assert_int_equal(agent_connect(&x->conn, x->agent.socket), 0);
    wait_state(x, "auto1", "running", 15000);
    assert_string_equal(query(x, "auto1").reason, "autostart");
    assert_string_equal(query(x, "manual1").state, "stopped");
    vm_cmd(x, "vm-destroy", "auto1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(guest_boots_and_powers_off_by_acpi, setup, teardown),
        cmocka_unit_test_setup_teardown(destroy_ends_qemu_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(shutdown_of_a_guest_that_ignores_it_times_out_then_forces, setup, teardown),
        cmocka_unit_test_setup_teardown(reset_reboots_the_guest, setup, teardown),
        cmocka_unit_test_setup_teardown(suspend_and_resume_match_qemu, setup, teardown),
        cmocka_unit_test_setup_teardown(kill_9_of_the_agent_loses_no_vm, setup, teardown),
        cmocka_unit_test_setup_teardown(sigterm_of_the_agent_leaves_vms_running, setup, teardown),
        cmocka_unit_test_setup_teardown(killed_qemu_is_reported_within_a_second, setup, teardown),
        cmocka_unit_test_setup_teardown(on_crash_restart_starts_a_new_qemu, setup, teardown),
        cmocka_unit_test_setup_teardown(racing_starts_make_one_qemu, setup, teardown),
        cmocka_unit_test_setup_teardown(destroy_cancels_a_start_in_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(hung_qemu_slows_only_its_own_vm, setup_fast_qmp_timeout, teardown),
        cmocka_unit_test_setup_teardown(qemu_runs_as_the_configured_user, setup_qemu_user, teardown),
        cmocka_unit_test_setup_teardown(non_admin_may_query_but_not_change, setup_group_socket, teardown),
        cmocka_unit_test_setup_teardown(bad_definitions_are_refused_naming_the_field, setup, teardown),
        cmocka_unit_test_setup_teardown(two_megabyte_line_is_refused_and_the_agent_lives, setup, teardown),
        cmocka_unit_test_setup_teardown(qmp_client_library_talks_to_the_agent, setup, teardown),
        cmocka_unit_test_setup_teardown(autostart_vms_start_with_the_agent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
