/* test_qmp_client.c: the QMP client against a scripted fake server. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <uv.h>

#include "fake_qmp.h"
#include "qmp/qmp.h"

typedef struct reply_rec {
    int calls;
    int status;
    char ret[256];
    char err_class[64];
    char err_desc[256];
} reply_rec;

typedef struct harness {
    uv_loop_t loop;
    uv_timer_t tick;
    char dir[64];
    char path[128];
    qmp_client *c;
    fake_qmp *srv;
    int ready_calls, ready_status;
    int disc_calls, disc_status;
    int events;
    char last_event[64];
    char last_event_data[256];
} harness;

static void on_ready(qmp_client *c, int status, void *opaque)
{
    harness *h = opaque;
    h->ready_calls++;
    h->ready_status = status;
}

static void on_disconnect(qmp_client *c, int status, void *opaque)
{
    harness *h = opaque;
    h->disc_calls++;
    h->disc_status = status;
}

static void on_event(qmp_client *c, const char *event, struct json_object *data,
                     int64_t sec, int64_t usec, void *opaque)
{
    harness *h = opaque;
    h->events++;
    snprintf(h->last_event, sizeof(h->last_event), "%s", event);
    snprintf(h->last_event_data, sizeof(h->last_event_data), "%s",
             data ? json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN) : "");
}

static void on_reply(qmp_client *c, const qmp_reply *r, void *opaque)
{
    reply_rec *rec = opaque;
    rec->calls++;
    rec->status = r->status;
    snprintf(rec->ret, sizeof(rec->ret), "%s",
             r->ret ? json_object_to_json_string_ext(r->ret, JSON_C_TO_STRING_PLAIN) : "");
    snprintf(rec->err_class, sizeof(rec->err_class), "%s", r->err_class ? r->err_class : "");
    snprintf(rec->err_desc, sizeof(rec->err_desc), "%s", r->err_desc ? r->err_desc : "");
}

static void on_tick(uv_timer_t *t) {}

static int setup(void **state)
{
    harness *h = calloc(1, sizeof(*h));

    strcpy(h->dir, "/tmp/qmp-test-XXXXXX");
    assert_non_null(mkdtemp(h->dir));
    snprintf(h->path, sizeof(h->path), "%s/qmp.sock", h->dir);
    assert_int_equal(uv_loop_init(&h->loop), 0);
    uv_timer_init(&h->loop, &h->tick);
    uv_timer_start(&h->tick, on_tick, 5, 5);
    *state = h;
    return 0;
}

static void close_walk(uv_handle_t *handle, void *arg)
{
    if (!uv_is_closing(handle))
        uv_close(handle, NULL);
}

static int teardown(void **state)
{
    harness *h = *state;

    if (h->c)
        qmp_close(h->c);
    fake_qmp_stop(h->srv);
    uv_walk(&h->loop, close_walk, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&h->loop), 0);
    unlink(h->path);
    rmdir(h->dir);
    free(h);
    return 0;
}

/* Runs the loop until *flag >= want or timeout_ms passes. */
static void run_until(harness *h, const int *flag, int want, int timeout_ms)
{
    uv_update_time(&h->loop);
    uint64_t end = uv_now(&h->loop) + (uint64_t)timeout_ms;

    while (*flag < want && uv_now(&h->loop) < end)
        uv_run(&h->loop, UV_RUN_ONCE);
}

static void run_for(harness *h, int ms)
{
    int never = 0;
    run_until(h, &never, 1, ms);
}

static void start(harness *h, fake_script script, void *arg, int delay_ms, uint32_t cmd_timeout_ms)
{
    qmp_options o = {
        .path = h->path,
        .connect_timeout_ms = 3000,
        .command_timeout_ms = cmd_timeout_ms,
        .on_ready = on_ready,
        .on_disconnect = on_disconnect,
        .on_event = on_event,
        .opaque = h,
    };

    h->srv = fake_qmp_start(h->path, delay_ms, script, arg);
    assert_non_null(h->srv);
    assert_int_equal(qmp_client_new(&h->loop, &o, &h->c), 0);
    assert_int_equal(qmp_connect(h->c), 0);
}

static void start_ready(harness *h, fake_script script, void *arg)
{
    start(h, script, arg, 0, 2000);
    run_until(h, &h->ready_calls, 1, 5000);
    assert_int_equal(h->ready_calls, 1);
    assert_int_equal(h->ready_status, 0);
    assert_int_equal(qmp_get_state(h->c), QMP_STATE_READY);
}

static void send_reply(fake_conn *c, uint64_t id, const char *ret)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "{\"return\": %s, \"id\": %llu}\r\n", ret, (unsigned long long)id);
    fake_send(c, buf);
}

/* ---- negotiation ------------------------------------------------------- */

static char caps_seen[1024];

static void script_greet_oob(fake_conn *c, void *arg)
{
    fake_greet(c, true, caps_seen, sizeof(caps_seen));
    fake_wait_hangup(c, 5000);
}

static void negotiation_enables_oob_when_offered(void **state)
{
    harness *h = *state;
    int major, minor, micro;

    start_ready(h, script_greet_oob, NULL);
    assert_non_null(strstr(caps_seen, "\"enable\":[\"oob\"]"));
    assert_true(qmp_oob_enabled(h->c));
    assert_int_equal(qmp_qemu_version(h->c, &major, &minor, &micro), 0);
    assert_int_equal(major * 10000 + minor * 100 + micro, 70201);
}

static void script_greet_plain(fake_conn *c, void *arg)
{
    fake_greet(c, false, caps_seen, sizeof(caps_seen));
    fake_wait_hangup(c, 5000);
}

static void negotiation_without_oob_when_not_offered(void **state)
{
    harness *h = *state;
    qmp_exec_options o = { .fd = -1, .oob = true };

    start_ready(h, script_greet_plain, NULL);
    assert_null(strstr(caps_seen, "oob"));
    assert_false(qmp_oob_enabled(h->c));
    assert_int_equal(qmp_execute(h->c, "migrate-pause", NULL, &o, NULL, NULL, NULL), -EOPNOTSUPP);
}

static void execute_checks_state_and_command_name(void **state)
{
    harness *h = *state;
    qmp_options o = { .path = h->path };

    assert_int_equal(qmp_client_new(&h->loop, &o, &h->c), 0);
    assert_int_equal(qmp_execute(h->c, "query-status", NULL, NULL, NULL, NULL, NULL), -ENOTCONN);
    qmp_close(h->c);
    h->c = NULL;

    start_ready(h, script_greet_plain, NULL);
    assert_int_equal(qmp_execute(h->c, "bad\"name", NULL, NULL, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(qmp_execute(h->c, "", NULL, NULL, NULL, NULL, NULL), -EINVAL);
    struct json_object *arr = json_object_new_array();
    assert_int_equal(qmp_execute(h->c, "stop", arr, NULL, NULL, NULL, NULL), -EINVAL);
    json_object_put(arr);
}

/* ---- framing ----------------------------------------------------------- */

static void script_reply_byte_by_byte(fake_conn *c, void *arg)
{
    char line[1024], reply[256];
    fake_greet(c, false, NULL, 0);
    if (fake_read_line(c, line, sizeof(line), 5000) < 0)
        return;
    snprintf(reply, sizeof(reply),
             "{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": %llu}\r\n",
             (unsigned long long)fake_id_of(line));
    for (size_t i = 0; reply[i]; i++) {
        fake_send_bytes(c, &reply[i], 1);
        usleep(200);
    }
    fake_wait_hangup(c, 5000);
}

static void reply_split_into_single_bytes_is_reassembled(void **state)
{
    harness *h = *state;
    reply_rec rec = { 0 };

    start_ready(h, script_reply_byte_by_byte, NULL);
    assert_int_equal(qmp_execute(h->c, "query-status", NULL, NULL, on_reply, &rec, NULL), 0);
    run_until(h, &rec.calls, 1, 5000);
    assert_int_equal(rec.calls, 1);
    assert_int_equal(rec.status, 0);
    assert_string_equal(rec.ret, "{\"status\":\"running\",\"running\":true}");
}

static void script_events_and_replies_in_one_write(fake_conn *c, void *arg)
{
    char line[1024], burst[2048];
    uint64_t ids[2];
    fake_greet(c, false, NULL, 0);
    for (int i = 0; i < 2; i++) {
        if (fake_read_line(c, line, sizeof(line), 5000) < 0)
            return;
        ids[i] = fake_id_of(line);
    }
    snprintf(burst, sizeof(burst),
             "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}\r\n"
             "{\"return\": {\"n\": 1}, \"id\": %llu}\r\n"
             "{\"timestamp\": {\"seconds\": 3, \"microseconds\": 4}, \"event\": \"RESUME\", \"data\": {\"x\": 1}}\r\n"
             "{\"return\": {\"n\": 2}, \"id\": %llu}\r\n",
             (unsigned long long)ids[0], (unsigned long long)ids[1]);
    fake_send(c, burst);
    fake_wait_hangup(c, 5000);
}

static void events_and_replies_in_one_read_are_all_delivered(void **state)
{
    harness *h = *state;
    reply_rec a = { 0 }, b = { 0 };

    start_ready(h, script_events_and_replies_in_one_write, NULL);
    assert_int_equal(qmp_execute(h->c, "stop", NULL, NULL, on_reply, &a, NULL), 0);
    assert_int_equal(qmp_execute(h->c, "cont", NULL, NULL, on_reply, &b, NULL), 0);
    run_until(h, &b.calls, 1, 5000);
    assert_int_equal(a.calls, 1);
    assert_string_equal(a.ret, "{\"n\":1}");
    assert_int_equal(b.calls, 1);
    assert_string_equal(b.ret, "{\"n\":2}");
    assert_int_equal(h->events, 2);
    assert_string_equal(h->last_event, "RESUME");
    assert_string_equal(h->last_event_data, "{\"x\":1}");
}

static void script_out_of_order(fake_conn *c, void *arg)
{
    char line[1024];
    uint64_t ids[3];
    fake_greet(c, false, NULL, 0);
    for (int i = 0; i < 3; i++) {
        if (fake_read_line(c, line, sizeof(line), 5000) < 0)
            return;
        ids[i] = fake_id_of(line);
    }
    send_reply(c, ids[2], "\"third\"");
    send_reply(c, 999999, "\"nobody asked\"");
    send_reply(c, ids[0], "\"first\"");
    fake_send(c, "{\"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"no such device\"}, \"id\": ");
    char tail[64];
    snprintf(tail, sizeof(tail), "%llu}\r\n", (unsigned long long)ids[1]);
    fake_send(c, tail);
    fake_wait_hangup(c, 5000);
}

static void out_of_order_replies_reach_their_own_commands(void **state)
{
    harness *h = *state;
    reply_rec r[3] = { 0 };
    qmp_stats st;

    start_ready(h, script_out_of_order, NULL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(qmp_execute(h->c, "x", NULL, NULL, on_reply, &r[i], NULL), 0);
    run_until(h, &r[1].calls, 1, 5000);
    assert_int_equal(r[0].calls, 1);
    assert_string_equal(r[0].ret, "\"first\"");
    assert_int_equal(r[2].calls, 1);
    assert_string_equal(r[2].ret, "\"third\"");
    assert_int_equal(r[1].calls, 1);
    assert_int_equal(r[1].status, QMP_ERR_REMOTE);
    assert_string_equal(r[1].err_class, "DeviceNotFound");
    assert_string_equal(r[1].err_desc, "no such device");
    qmp_get_stats(h->c, &st);
    assert_int_equal(st.stray_replies, 1);
    assert_int_equal(qmp_pending_count(h->c), 0);
    assert_int_equal(qmp_get_state(h->c), QMP_STATE_READY);
}

/* ---- failures ---------------------------------------------------------- */

static void script_malformed(fake_conn *c, void *arg)
{
    char line[1024];
    fake_greet(c, false, NULL, 0);
    if (fake_read_line(c, line, sizeof(line), 5000) < 0)
        return;
    fake_send(c, (const char *)arg);
    fake_wait_hangup(c, 5000);
}

static void check_protocol_error(harness *h, const char *bad, int want)
{
    reply_rec a = { 0 }, b = { 0 };

    start_ready(h, script_malformed, (void *)bad);
    assert_int_equal(qmp_execute(h->c, "query-status", NULL, NULL, on_reply, &a, NULL), 0);
    assert_int_equal(qmp_execute(h->c, "query-kvm", NULL, NULL, on_reply, &b, NULL), 0);
    run_until(h, &h->disc_calls, 1, 5000);
    assert_int_equal(h->disc_calls, 1);
    assert_int_equal(h->disc_status, want);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, want);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, want);
    assert_int_equal(qmp_get_state(h->c), QMP_STATE_IDLE);
    run_for(h, 50);
    assert_int_equal(a.calls, 1);
}

static void malformed_json_fails_pending_commands_with_eproto(void **state)
{
    check_protocol_error(*state, "{\"return\": {\"status\": }\r\n", -EPROTO);
}

static void json_that_is_not_an_object_is_a_protocol_error(void **state)
{
    check_protocol_error(*state, "[1, 2, 3]\r\n", -EPROTO);
}

static void two_objects_on_one_line_are_a_protocol_error(void **state)
{
    check_protocol_error(*state, "{\"return\": {}, \"id\": 2} {\"return\": {}}\r\n", -EPROTO);
}

static void unknown_message_shape_is_a_protocol_error(void **state)
{
    check_protocol_error(*state, "{\"hello\": 1}\r\n", -EPROTO);
}

static void script_silent(fake_conn *c, void *arg)
{
    char line[1024];
    fake_greet(c, false, NULL, 0);
    while (fake_read_line(c, line, sizeof(line), 5000) == 0)
        ;
}

static void silent_server_times_out_each_command_once(void **state)
{
    harness *h = *state;
    reply_rec a = { 0 }, b = { 0 };
    qmp_exec_options fast = { .fd = -1, .timeout_ms = 100 };
    qmp_stats st;

    start(h, script_silent, NULL, 0, 300);
    run_until(h, &h->ready_calls, 1, 5000);
    assert_int_equal(h->ready_status, 0);
    uv_update_time(&h->loop);
    uint64_t t0 = uv_now(&h->loop);
    assert_int_equal(qmp_execute(h->c, "query-status", NULL, NULL, on_reply, &a, NULL), 0);
    assert_int_equal(qmp_execute(h->c, "query-status", NULL, &fast, on_reply, &b, NULL), 0);
    run_until(h, &b.calls, 1, 2000);
    uint64_t tb = uv_now(&h->loop) - t0;
    assert_int_equal(b.status, -ETIMEDOUT);
    assert_int_equal(a.calls, 0);
    run_until(h, &a.calls, 1, 2000);
    uint64_t ta = uv_now(&h->loop) - t0;
    assert_int_equal(a.status, -ETIMEDOUT);
    assert_true(tb >= 100 && tb < 250);
    assert_true(ta >= 300 && ta < 500);
    run_for(h, 100);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    qmp_get_stats(h->c, &st);
    assert_int_equal(st.timeouts, 2);
    /* A timeout does not cost the connection. */
    assert_int_equal(qmp_get_state(h->c), QMP_STATE_READY);
}

static void script_hangup_mid_reply(fake_conn *c, void *arg)
{
    char line[1024];
    fake_greet(c, false, NULL, 0);
    if (fake_read_line(c, line, sizeof(line), 5000) < 0)
        return;
    fake_send(c, "{\"return\": {\"status\": \"runn");
    usleep(20000);
    fake_hangup(c);
}

static void hangup_mid_reply_fails_pending_once_with_econnreset(void **state)
{
    harness *h = *state;
    reply_rec a = { 0 };

    start_ready(h, script_hangup_mid_reply, NULL);
    assert_int_equal(qmp_execute(h->c, "query-status", NULL, NULL, on_reply, &a, NULL), 0);
    run_until(h, &a.calls, 1, 5000);
    assert_int_equal(a.status, -ECONNRESET);
    run_for(h, 50);
    assert_int_equal(a.calls, 1);
    assert_int_equal(h->disc_calls, 1);
    assert_int_equal(h->disc_status, -ECONNRESET);
}

static void script_huge_line(fake_conn *c, void *arg)
{
    char line[1024];
    size_t n = (size_t)(uintptr_t)arg;
    fake_greet(c, false, NULL, 0);
    if (fake_read_line(c, line, sizeof(line), 5000) < 0)
        return;
    char *big = malloc(n + 64);
    int k = sprintf(big, "{\"return\": \"");
    memset(big + k, 'x', n);
    sprintf(big + k + n, "\", \"id\": %llu}\r\n", (unsigned long long)fake_id_of(line));
    fake_send(c, big);
    free(big);
    fake_wait_hangup(c, 5000);
}

typedef struct size_rec {
    int calls;
    size_t got;
} size_rec;

static void on_string_reply(qmp_client *c, const qmp_reply *r, void *opaque)
{
    size_rec *rec = opaque;
    rec->calls++;
    if (r->status == 0 && json_object_is_type(r->ret, json_type_string))
        rec->got = (size_t)json_object_get_string_len(r->ret);
}

static void ten_megabyte_reply_arrives_whole(void **state)
{
    harness *h = *state;
    const size_t n = 10u << 20;
    size_rec rec = { 0 };

    start_ready(h, script_huge_line, (void *)(uintptr_t)n);
    assert_int_equal(qmp_execute(h->c, "query-qmp-schema", NULL, NULL, on_string_reply, &rec, NULL), 0);
    run_until(h, &rec.calls, 1, 10000);
    assert_int_equal(rec.calls, 1);
    assert_int_equal(rec.got, n);
}

static void script_greet_then_huge_line(fake_conn *c, void *arg)
{
    script_huge_line(c, arg);
}

static void line_over_the_limit_disconnects_with_emsgsize(void **state)
{
    harness *h = *state;
    reply_rec a = { 0 };
    qmp_options o = { .path = h->path, .max_message = 4096, .on_ready = on_ready,
                      .on_disconnect = on_disconnect, .opaque = h };

    h->srv = fake_qmp_start(h->path, 0, script_greet_then_huge_line, (void *)(uintptr_t)100000);
    assert_int_equal(qmp_client_new(&h->loop, &o, &h->c), 0);
    assert_int_equal(qmp_connect(h->c), 0);
    run_until(h, &h->ready_calls, 1, 5000);
    assert_int_equal(h->ready_status, 0);
    assert_int_equal(qmp_execute(h->c, "x", NULL, NULL, on_reply, &a, NULL), 0);
    run_until(h, &a.calls, 1, 5000);
    assert_int_equal(a.status, -EMSGSIZE);
    assert_int_equal(h->disc_status, -EMSGSIZE);
}

/* ---- volume ------------------------------------------------------------ */

#define PIPELINED 10000

static void script_echo_ids(fake_conn *c, void *arg)
{
    char line[1024], out[64 * 1024];
    size_t used = 0;
    fake_greet(c, false, NULL, 0);
    for (int i = 0; i < PIPELINED; i++) {
        if (fake_read_line(c, line, sizeof(line), 5000) < 0)
            return;
        used += (size_t)snprintf(out + used, sizeof(out) - used, "{\"return\": %llu, \"id\": %llu}\r\n",
                                 (unsigned long long)fake_id_of(line),
                                 (unsigned long long)fake_id_of(line));
        if (used > sizeof(out) - 128 || i == PIPELINED - 1) {
            fake_send_bytes(c, out, used);
            used = 0;
        }
    }
    fake_wait_hangup(c, 5000);
}

static int pipelined_done, pipelined_wrong;

static void on_pipelined(qmp_client *c, const qmp_reply *r, void *opaque)
{
    uint64_t want = (uint64_t)(uintptr_t)opaque;
    if (r->status != 0 || (uint64_t)json_object_get_int64(r->ret) != want || r->id != want)
        pipelined_wrong++;
    pipelined_done++;
}

static void ten_thousand_pipelined_commands_are_all_answered(void **state)
{
    harness *h = *state;

    pipelined_done = pipelined_wrong = 0;
    start_ready(h, script_echo_ids, NULL);
    for (int i = 0; i < PIPELINED; i++) {
        uint64_t id;
        /* The id is only known after the call, so pass the next one expected. */
        uint64_t expect = (uint64_t)i + 2; /* id 1 was qmp_capabilities */
        assert_int_equal(qmp_execute(h->c, "query-status", NULL, NULL, on_pipelined,
                                     (void *)(uintptr_t)expect, &id), 0);
        assert_int_equal(id, expect);
    }
    assert_int_equal(qmp_pending_count(h->c), PIPELINED);
    run_until(h, &pipelined_done, PIPELINED, 20000);
    assert_int_equal(pipelined_done, PIPELINED);
    assert_int_equal(pipelined_wrong, 0);
    assert_int_equal(qmp_pending_count(h->c), 0);
}

/* ---- descriptors ------------------------------------------------------- */

/* A stream socket may deliver a descriptor together with bytes sent before
 * it, so the server only checks that exactly one arrived with these two lines. */
static void script_receive_fd(fake_conn *c, void *arg)
{
    char line1[1024], line2[1024];
    int fd1 = -1, fd2 = -1;
    fake_greet(c, false, NULL, 0);
    if (fake_read_line_fd(c, line1, sizeof(line1), 5000, &fd1) < 0 ||
        fake_read_line_fd(c, line2, sizeof(line2), 5000, &fd2) < 0)
        return;
    int fd = fd1 >= 0 ? fd1 : fd2;
    send_reply(c, fake_id_of(line1), "\"first\"");
    if (fd >= 0 && (fd1 < 0 || fd2 < 0) && write(fd, "through the socket", 18) == 18)
        send_reply(c, fake_id_of(line2), "\"wrote\"");
    else
        send_reply(c, fake_id_of(line2), "\"wrong descriptors\"");
    if (fd1 >= 0)
        close(fd1);
    if (fd2 >= 0)
        close(fd2);
    fake_wait_hangup(c, 5000);
}

static void descriptor_travels_with_its_command(void **state)
{
    harness *h = *state;
    reply_rec a = { 0 }, b = { 0 };
    int p[2];
    char buf[64] = { 0 };

    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    start_ready(h, script_receive_fd, NULL);
    struct json_object *args = json_object_new_object();
    json_object_object_add(args, "fdname", json_object_new_string("tap0"));
    qmp_exec_options o = { .fd = p[1] };
    assert_int_equal(qmp_execute(h->c, "query-status", NULL, NULL, on_reply, &a, NULL), 0);
    assert_int_equal(qmp_execute(h->c, "getfd", args, &o, on_reply, &b, NULL), 0);
    json_object_put(args);
    /* The library keeps its own duplicate: the caller may close at once. */
    close(p[1]);
    run_until(h, &b.calls, 1, 5000);
    assert_string_equal(a.ret, "\"first\"");
    assert_string_equal(b.ret, "\"wrote\"");
    assert_int_equal(read(p[0], buf, sizeof(buf) - 1), 18);
    assert_string_equal(buf, "through the socket");
    close(p[0]);
}

/* QEMU keeps only the descriptors of its latest read: a second getfd must not
 * reach it before the first was answered, nor may commands queued behind it. */
static void script_gate(fake_conn *c, void *arg)
{
    char line[1024], out[64];
    int fd = -1;
    fake_greet(c, false, NULL, 0);
    if (fake_read_line_fd(c, line, sizeof(line), 5000, &fd) < 0 || fd < 0)
        return;
    (void)!write(fd, "A", 1);
    close(fd);
    /* Nothing more may arrive until the first descriptor command is answered. */
    int early = fake_read_line(c, out, sizeof(out), 300);
    send_reply(c, fake_id_of(line), early == -ETIMEDOUT ? "\"held\"" : "\"leaked\"");
    for (int i = 0; i < 2; i++) {
        fd = -1;
        if (fake_read_line_fd(c, line, sizeof(line), 5000, &fd) < 0)
            return;
        if (fd >= 0) {
            (void)!write(fd, "B", 1);
            close(fd);
        }
        send_reply(c, fake_id_of(line), fd >= 0 ? "\"fd\"" : "\"nofd\"");
    }
    fake_wait_hangup(c, 5000);
}

static void second_descriptor_waits_for_the_first_reply(void **state)
{
    harness *h = *state;
    reply_rec r[3] = { 0 };
    int pa[2], pb[2];
    char buf[8] = { 0 };

    assert_int_equal(pipe2(pa, O_CLOEXEC), 0);
    assert_int_equal(pipe2(pb, O_CLOEXEC), 0);
    start_ready(h, script_gate, NULL);
    qmp_exec_options oa = { .fd = pa[1] }, ob = { .fd = pb[1] };
    assert_int_equal(qmp_execute(h->c, "getfd", NULL, &oa, on_reply, &r[0], NULL), 0);
    assert_int_equal(qmp_execute(h->c, "getfd", NULL, &ob, on_reply, &r[1], NULL), 0);
    assert_int_equal(qmp_execute(h->c, "query-status", NULL, NULL, on_reply, &r[2], NULL), 0);
    run_until(h, &r[2].calls, 1, 5000);
    assert_string_equal(r[0].ret, "\"held\"");
    assert_string_equal(r[1].ret, "\"fd\"");
    assert_string_equal(r[2].ret, "\"nofd\"");
    assert_int_equal(read(pa[0], buf, 1), 1);
    assert_int_equal(read(pb[0], buf + 1, 1), 1);
    assert_string_equal(buf, "AB");
    close(pa[0]);
    close(pa[1]);
    close(pb[0]);
    close(pb[1]);
}

/* ---- connecting and closing ------------------------------------------ */

static void connect_retries_until_the_socket_appears(void **state)
{
    harness *h = *state;

    start(h, script_greet_plain, NULL, 300, 1000);
    run_until(h, &h->ready_calls, 1, 5000);
    assert_int_equal(h->ready_calls, 1);
    assert_int_equal(h->ready_status, 0);
}

static void connect_gives_up_at_the_deadline(void **state)
{
    harness *h = *state;
    qmp_options o = { .path = h->path, .connect_timeout_ms = 200, .on_ready = on_ready, .opaque = h };

    assert_int_equal(qmp_client_new(&h->loop, &o, &h->c), 0);
    uv_update_time(&h->loop);
    uint64_t t0 = uv_now(&h->loop);
    assert_int_equal(qmp_connect(h->c), 0);
    run_until(h, &h->ready_calls, 1, 3000);
    assert_int_equal(h->ready_calls, 1);
    assert_int_equal(h->ready_status, -ETIMEDOUT);
    uint64_t took = uv_now(&h->loop) - t0;
    assert_true(took >= 200 && took < 400);
    assert_int_equal(qmp_get_state(h->c), QMP_STATE_IDLE);
}

static void close_while_connecting_reports_nothing(void **state)
{
    harness *h = *state;
    qmp_options o = { .path = h->path, .connect_timeout_ms = 200, .on_ready = on_ready, .opaque = h };

    assert_int_equal(qmp_client_new(&h->loop, &o, &h->c), 0);
    assert_int_equal(qmp_connect(h->c), 0);
    assert_int_equal(qmp_get_state(h->c), QMP_STATE_CONNECTING);
    run_for(h, 20);
    qmp_close(h->c);
    h->c = NULL;
    run_for(h, 400);
    assert_int_equal(h->ready_calls, 0);
}

static void script_no_greeting(fake_conn *c, void *arg)
{
    fake_wait_hangup(c, 5000);
}

static void missing_greeting_times_out_the_connect(void **state)
{
    harness *h = *state;
    qmp_options o = { .path = h->path, .connect_timeout_ms = 200, .on_ready = on_ready, .opaque = h };

    h->srv = fake_qmp_start(h->path, 0, script_no_greeting, NULL);
    assert_int_equal(qmp_client_new(&h->loop, &o, &h->c), 0);
    assert_int_equal(qmp_connect(h->c), 0);
    run_until(h, &h->ready_calls, 1, 3000);
    assert_int_equal(h->ready_status, -ETIMEDOUT);
}

static void close_inside_reply_callback(qmp_client *c, const qmp_reply *r, void *opaque)
{
    reply_rec *rec = opaque;
    on_reply(c, r, opaque);
    if (rec->calls == 1)
        qmp_close(c);
}

static void close_from_a_callback_cancels_the_rest_once(void **state)
{
    harness *h = *state;
    reply_rec a = { 0 }, b = { 0 };

    start_ready(h, script_events_and_replies_in_one_write, NULL);
    assert_int_equal(qmp_execute(h->c, "stop", NULL, NULL, close_inside_reply_callback, &a, NULL), 0);
    assert_int_equal(qmp_execute(h->c, "cont", NULL, NULL, on_reply, &b, NULL), 0);
    run_until(h, &b.calls, 1, 5000);
    h->c = NULL; /* closed by the callback */
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, 0);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, -ECANCELED);
    run_for(h, 50);
    assert_int_equal(b.calls, 1);
    assert_int_equal(h->disc_calls, 0);
}

static void forgotten_command_never_calls_back(void **state)
{
    harness *h = *state;
    reply_rec a = { 0 }, b = { 0 };
    uint64_t id;

    start_ready(h, script_events_and_replies_in_one_write, NULL);
    assert_int_equal(qmp_execute(h->c, "stop", NULL, NULL, on_reply, &a, &id), 0);
    assert_int_equal(qmp_execute(h->c, "cont", NULL, NULL, on_reply, &b, NULL), 0);
    assert_int_equal(qmp_forget(h->c, id), 0);
    run_until(h, &b.calls, 1, 5000);
    assert_int_equal(b.calls, 1);
    assert_int_equal(a.calls, 0);
    assert_int_equal(qmp_forget(h->c, 123456), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(negotiation_enables_oob_when_offered, setup, teardown),
        cmocka_unit_test_setup_teardown(negotiation_without_oob_when_not_offered, setup, teardown),
        cmocka_unit_test_setup_teardown(execute_checks_state_and_command_name, setup, teardown),
        cmocka_unit_test_setup_teardown(reply_split_into_single_bytes_is_reassembled, setup, teardown),
        cmocka_unit_test_setup_teardown(events_and_replies_in_one_read_are_all_delivered, setup, teardown),
        cmocka_unit_test_setup_teardown(out_of_order_replies_reach_their_own_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(malformed_json_fails_pending_commands_with_eproto, setup, teardown),
        cmocka_unit_test_setup_teardown(json_that_is_not_an_object_is_a_protocol_error, setup, teardown),
        cmocka_unit_test_setup_teardown(two_objects_on_one_line_are_a_protocol_error, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_message_shape_is_a_protocol_error, setup, teardown),
        cmocka_unit_test_setup_teardown(silent_server_times_out_each_command_once, setup, teardown),
        cmocka_unit_test_setup_teardown(hangup_mid_reply_fails_pending_once_with_econnreset, setup, teardown),
        cmocka_unit_test_setup_teardown(ten_megabyte_reply_arrives_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(line_over_the_limit_disconnects_with_emsgsize, setup, teardown),
        cmocka_unit_test_setup_teardown(ten_thousand_pipelined_commands_are_all_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(descriptor_travels_with_its_command, setup, teardown),
        cmocka_unit_test_setup_teardown(second_descriptor_waits_for_the_first_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(connect_retries_until_the_socket_appears, setup, teardown),
        cmocka_unit_test_setup_teardown(connect_gives_up_at_the_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_greeting_times_out_the_connect, setup, teardown),
        cmocka_unit_test_setup_teardown(close_while_connecting_reports_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(close_from_a_callback_cancels_the_rest_once, setup, teardown),
        cmocka_unit_test_setup_teardown(forgotten_command_never_calls_back, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
