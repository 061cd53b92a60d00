/* test_qmp_e2e.c: the QMP library against a real qemu-system-x86_64 running
 * the test guest (accelerator from $AGENTD_ACCEL, tcg by default). */
#include <errno.h>
#include <fcntl.h>
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
#include "tests/support/guest.h"

#define READY_TIMEOUT_MS 30000

typedef struct e2e {
    uv_loop_t loop;
    uv_timer_t tick;
    char dir[64];
    struct guest g;
    qmp_client *c;
    int ready_calls, ready_status;
    int disc_calls, disc_status;
    char events[4096];   /* names of the events seen, space separated */
    int shutdown_guest;  /* the SHUTDOWN event said the guest asked for it */
} e2e;

typedef struct result {
    int calls;
    int status;
    char err_class[64];
    struct json_object *ret;
} result;

static void on_ready(qmp_client *c, int status, void *opaque)
{
    e2e *t = opaque;
    t->ready_calls++;
    t->ready_status = status;
}

static void on_disconnect(qmp_client *c, int status, void *opaque)
{
    e2e *t = opaque;
    t->disc_calls++;
    t->disc_status = status;
}

static void on_event(qmp_client *c, const char *event, struct json_object *data,
                     int64_t sec, int64_t usec, void *opaque)
{
    e2e *t = opaque;
    struct json_object *guest;
    size_t n = strlen(t->events);

    snprintf(t->events + n, sizeof(t->events) - n, "%s ", event);
    if (strcmp(event, "SHUTDOWN") == 0 && data && json_object_object_get_ex(data, "guest", &guest))
        t->shutdown_guest = json_object_get_boolean(guest);
}

static void on_result(qmp_client *c, const qmp_reply *r, void *opaque)
{
    result *res = opaque;
    res->calls++;
    res->status = r->status;
    snprintf(res->err_class, sizeof(res->err_class), "%s", r->err_class ? r->err_class : "");
    res->ret = r->ret ? json_object_get(r->ret) : NULL;
}

static void on_tick(uv_timer_t *t) {}

static void run_until(e2e *t, const int *flag, int want, int timeout_ms)
{
    uv_update_time(&t->loop);
    uint64_t end = uv_now(&t->loop) + (uint64_t)timeout_ms;

    while (*flag < want && uv_now(&t->loop) < end)
        uv_run(&t->loop, UV_RUN_ONCE);
}

/* Runs one command to completion; the caller puts res->ret. */
static void exec(e2e *t, const char *cmd, struct json_object *args, int fd, result *res)
{
    qmp_exec_options o = { .fd = fd, .timeout_ms = 10000 };

    memset(res, 0, sizeof(*res));
    assert_int_equal(qmp_execute(t->c, cmd, args, &o, on_result, res, NULL), 0);
    run_until(t, &res->calls, 1, 15000);
    assert_int_equal(res->calls, 1);
}

static const char *status_of(e2e *t)
{
    static char buf[32];
    result r;
    struct json_object *s;

    exec(t, "query-status", NULL, -1, &r);
    assert_int_equal(r.status, 0);
    assert_true(json_object_object_get_ex(r.ret, "status", &s));
    snprintf(buf, sizeof(buf), "%s", json_object_get_string(s));
    json_object_put(r.ret);
    return buf;
}

static int boot(void **state, bool paused, const char *const *extra)
{
    e2e *t = calloc(1, sizeof(*t));
    struct guest_opts go = { 0 };
    qmp_options qo = { 0 };

    strcpy(t->dir, "/tmp/qmp-e2e-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    go.run_dir = t->dir;
    go.paused = paused;
    go.extra_args = extra;
    assert_int_equal(guest_launch(&go, &t->g), 0);
    assert_int_equal(uv_loop_init(&t->loop), 0);
    uv_timer_init(&t->loop, &t->tick);
    uv_timer_start(&t->tick, on_tick, 10, 10);
    qo.path = t->g.qmp_path;
    qo.on_ready = on_ready;
    qo.on_disconnect = on_disconnect;
    qo.on_event = on_event;
    qo.opaque = t;
    assert_int_equal(qmp_client_new(&t->loop, &qo, &t->c), 0);
    assert_int_equal(qmp_connect(t->c), 0);
    run_until(t, &t->ready_calls, 1, 10000);
    assert_int_equal(t->ready_status, 0);
    *state = t;
    return 0;
}

static int boot_running(void **state)
{
    return boot(state, false, NULL);
}

static int boot_paused(void **state)
{
    return boot(state, true, NULL);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static int shut(void **state)
{
    e2e *t = *state;
    char path[128];

    if (t->c)
        qmp_close(t->c);
    guest_kill(&t->g);
    uv_walk(&t->loop, close_walk, NULL);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    uv_loop_close(&t->loop);
    static const char *const leftovers[] = { "qmp.sock", "serial.sock", "serial.log",
                                             "qemu.pid", "qemu.stderr", "disk.img" };
    for (size_t i = 0; i < sizeof(leftovers) / sizeof(leftovers[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", t->dir, leftovers[i]);
        unlink(path);
    }
    rmdir(t->dir);
    free(t);
    return 0;
}

static void negotiates_and_reports_the_qemu_version(void **state)
{
    e2e *t = *state;
    int major, minor, micro;

    assert_int_equal(qmp_get_state(t->c), QMP_STATE_READY);
    assert_int_equal(qmp_qemu_version(t->c, &major, &minor, &micro), 0);
    assert_true(major >= 7);
    /* QEMU 7.2 offers oob; the library turns it on. */
    assert_true(qmp_oob_enabled(t->c));
    assert_string_equal(status_of(t), "prelaunch");
}

static void stop_and_cont_change_the_run_state_and_raise_events(void **state)
{
    e2e *t = *state;
    result r;

    exec(t, "cont", NULL, -1, &r);
    assert_int_equal(r.status, 0);
    json_object_put(r.ret);
    assert_string_equal(status_of(t), "running");
    exec(t, "stop", NULL, -1, &r);
    assert_int_equal(r.status, 0);
    json_object_put(r.ret);
    assert_string_equal(status_of(t), "paused");
    exec(t, "cont", NULL, -1, &r);
    json_object_put(r.ret);
    assert_string_equal(status_of(t), "running");
    /* Events arrive on the same connection, interleaved with the replies. */
    int seen = 0;
    for (int i = 0; i < 100 && !seen; i++) {
        seen = strstr(t->events, "RESUME STOP RESUME") != NULL;
        if (!seen)
            run_until(t, &(int){ 0 }, 1, 20);
    }
    assert_non_null(strstr(t->events, "RESUME STOP RESUME"));
}

static void unknown_command_returns_the_qmp_error_class(void **state)
{
    e2e *t = *state;
    result r;

    exec(t, "no-such-command", NULL, -1, &r);
    assert_int_equal(r.status, QMP_ERR_REMOTE);
    assert_string_equal(r.err_class, "CommandNotFound");
    assert_int_equal(qmp_get_state(t->c), QMP_STATE_READY);
}

static void acpi_powerdown_makes_the_guest_power_off(void **state)
{
    e2e *t = *state;
    result r;
    int status;

    assert_int_equal(guest_wait_ready(&t->g, READY_TIMEOUT_MS), 0);
    exec(t, "system_powerdown", NULL, -1, &r);
    assert_int_equal(r.status, 0);
    json_object_put(r.ret);
    /* The guest's acpid sees the button and powers off; QEMU then exits. */
    assert_int_equal(guest_wait_exit(&t->g, 10000, &status), 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    run_until(t, &t->disc_calls, 1, 2000);
    assert_non_null(strstr(t->events, "POWERDOWN"));
    assert_non_null(strstr(t->events, "SHUTDOWN"));
    assert_int_equal(t->shutdown_guest, 1);
    assert_int_equal(t->disc_calls, 1);
}

static void getfd_hands_a_descriptor_to_qemu(void **state)
{
    e2e *t = *state;
    result r;
    int p[2];
    struct json_object *args;

    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    args = json_object_new_object();
    json_object_object_add(args, "fdname", json_object_new_string("testfd"));
    exec(t, "getfd", args, p[1], &r);
    assert_int_equal(r.status, 0);
    json_object_put(r.ret);
    /* QEMU now holds it under that name: closefd succeeds once, then fails. */
    exec(t, "closefd", args, -1, &r);
    assert_int_equal(r.status, 0);
    json_object_put(r.ret);
    exec(t, "closefd", args, -1, &r);
    assert_int_equal(r.status, QMP_ERR_REMOTE);
    json_object_put(args);
    /* getfd without a descriptor is refused by QEMU itself. */
    args = json_object_new_object();
    json_object_object_add(args, "fdname", json_object_new_string("nofd"));
    exec(t, "getfd", args, -1, &r);
    assert_int_equal(r.status, QMP_ERR_REMOTE);
    json_object_put(args);
    close(p[0]);
    close(p[1]);
}

static void add_fd_puts_the_descriptor_in_an_fdset(void **state)
{
    e2e *t = *state;
    result r;
    int p[2];
    struct json_object *args = json_object_new_object(), *v, *sets, *fds;

    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    json_object_object_add(args, "fdset-id", json_object_new_int(7));
    json_object_object_add(args, "opaque", json_object_new_string("pipe-write-end"));
    exec(t, "add-fd", args, p[1], &r);
    json_object_put(args);
    assert_int_equal(r.status, 0);
    assert_true(json_object_object_get_ex(r.ret, "fdset-id", &v));
    assert_int_equal(json_object_get_int(v), 7);
    json_object_put(r.ret);

    exec(t, "query-fdsets", NULL, -1, &r);
    assert_int_equal(r.status, 0);
    sets = r.ret;
    assert_int_equal(json_object_array_length(sets), 1);
    assert_true(json_object_object_get_ex(json_object_array_get_idx(sets, 0), "fds", &fds));
    assert_int_equal(json_object_array_length(fds), 1);
    assert_true(json_object_object_get_ex(json_object_array_get_idx(fds, 0), "opaque", &v));
    assert_string_equal(json_object_get_string(v), "pipe-write-end");
    json_object_put(sets);
    close(p[0]);
    close(p[1]);
}

static void killed_qemu_fails_pending_commands_and_disconnects(void **state)
{
    e2e *t = *state;
    result r;
    qmp_exec_options o = { .fd = -1, .timeout_ms = 10000 };

    /* A command that cannot be answered: QEMU is stopped before it reads it. */
    kill(t->g.pid, SIGSTOP);
    memset(&r, 0, sizeof(r));
    assert_int_equal(qmp_execute(t->c, "query-status", NULL, &o, on_result, &r, NULL), 0);
    kill(t->g.pid, SIGKILL);
    run_until(t, &r.calls, 1, 5000);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, -ECONNRESET);
    assert_int_equal(t->disc_calls, 1);
    assert_int_equal(qmp_get_state(t->c), QMP_STATE_IDLE);
}

static void guest_reports_the_disk_and_nic_it_was_given(void **state)
{
    e2e *t = *state;
    char out[1024], expect[128];

    assert_int_equal(guest_wait_ready(&t->g, READY_TIMEOUT_MS), 0);
    assert_int_equal(guest_query(&t->g, "blk", 10000, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "vda 2097152"));
    assert_int_equal(guest_query(&t->g, "nic", 10000, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "52:54:00:12:34:56"));
    assert_int_equal(guest_query(&t->g, "cpus", 10000, out, sizeof(out)), 0);
    assert_int_equal(atoi(out), 1);
    assert_int_equal(guest_query(&t->g, "mem", 10000, out, sizeof(out)), 0);
    assert_true(atoi(out) > 128 * 1024 && atoi(out) <= 256 * 1024);
    /* The disk image was filled with 0x5a bytes; md5 of 4096 of them. */
    assert_int_equal(guest_query(&t->g, "sum vda 8192 4096", 10000, out, sizeof(out)), 0);
    snprintf(expect, sizeof(expect), "%s", getenv("E2E_EXPECT_MD5") ? getenv("E2E_EXPECT_MD5") : "");
    assert_string_equal(out, expect);
}

static char disk_arg[160];

static int boot_with_disk_and_nic(void **state)
{
    static const char *extra[] = {
        "-drive", disk_arg,
        "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56",
        NULL,
    };
    char path[] = "/tmp/qmp-e2e-disk-XXXXXX";
    int fd = mkstemp(path);
    char block[4096];

    assert_true(fd >= 0);
    memset(block, 0x5a, sizeof(block));
    for (int i = 0; i < 512; i++)
        assert_int_equal(write(fd, block, sizeof(block)), (ssize_t)sizeof(block));
    close(fd);
    snprintf(disk_arg, sizeof(disk_arg), "file=%s,if=virtio,format=raw", path);
    int r = boot(state, false, extra);
    unlink(path); /* QEMU has it open */
    return r;
}

int main(void)
{
    /* md5 of 4096 bytes of 0x5a, computed here rather than trusted from the guest. */
    char cmd[] = "head -c 4096 /dev/zero | tr '\\0' 'Z' | md5sum";
    FILE *p = popen(cmd, "r");
    char md5[64] = "";
    if (p && fscanf(p, "%32s", md5) == 1)
        setenv("E2E_EXPECT_MD5", md5, 1);
    if (p)
        pclose(p);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(negotiates_and_reports_the_qemu_version, boot_paused, shut),
        cmocka_unit_test_setup_teardown(stop_and_cont_change_the_run_state_and_raise_events, boot_paused, shut),
        cmocka_unit_test_setup_teardown(unknown_command_returns_the_qmp_error_class, boot_paused, shut),
        cmocka_unit_test_setup_teardown(getfd_hands_a_descriptor_to_qemu, boot_paused, shut),
        cmocka_unit_test_setup_teardown(add_fd_puts_the_descriptor_in_an_fdset, boot_paused, shut),
        cmocka_unit_test_setup_teardown(killed_qemu_fails_pending_commands_and_disconnects, boot_paused, shut),
        cmocka_unit_test_setup_teardown(acpi_powerdown_makes_the_guest_power_off, boot_running, shut),
        cmocka_unit_test_setup_teardown(guest_reports_the_disk_and_nic_it_was_given, boot_with_disk_and_nic, shut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
