/* test_qmp_frame.c: line framing and message classification. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "qmp/qmp.h"
#include "qmp/message.h"

static void feed(qmp_frame *f, const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        char *p;
        size_t avail;
        assert_int_equal(qmp_frame_reserve(f, 1, &p, &avail), 0);
        size_t k = n < avail ? n : avail;
        memcpy(p, s, k);
        qmp_frame_commit(f, k);
        s += k;
        n -= k;
    }
}

static void line_is_returned_only_once_complete(void **state)
{
    qmp_frame f;
    char *line;
    size_t len;

    qmp_frame_init(&f, 1024);
    feed(&f, "{\"return\"");
    assert_int_equal(qmp_frame_next(&f, &line, &len), 0);
    feed(&f, ": {}}\r");
    assert_int_equal(qmp_frame_next(&f, &line, &len), 0);
    feed(&f, "\n{\"ev");
    assert_int_equal(qmp_frame_next(&f, &line, &len), 1);
    assert_string_equal(line, "{\"return\": {}}");
    assert_int_equal(len, 14);
    assert_int_equal(qmp_frame_next(&f, &line, &len), 0);
    qmp_frame_free(&f);
}

static void several_lines_in_one_read_come_out_in_order(void **state)
{
    qmp_frame f;
    char *line;
    size_t len;

    qmp_frame_init(&f, 1024);
    feed(&f, "a\r\nbb\n\nccc\n");
    assert_int_equal(qmp_frame_next(&f, &line, &len), 1);
    assert_string_equal(line, "a");
    assert_int_equal(qmp_frame_next(&f, &line, &len), 1);
    assert_string_equal(line, "bb");
    assert_int_equal(qmp_frame_next(&f, &line, &len), 1);
    assert_int_equal(len, 0);
    assert_int_equal(qmp_frame_next(&f, &line, &len), 1);
    assert_string_equal(line, "ccc");
    assert_int_equal(qmp_frame_next(&f, &line, &len), 0);
    qmp_frame_free(&f);
}

static void line_at_the_limit_passes_and_one_byte_more_is_refused(void **state)
{
    qmp_frame f;
    char *line;
    size_t len;
    char big[102];

    memset(big, 'x', 100);
    big[100] = '\n';
    big[101] = '\0';
    qmp_frame_init(&f, 100);
    feed(&f, big);
    assert_int_equal(qmp_frame_next(&f, &line, &len), 1);
    assert_int_equal(len, 100);
    big[100] = 'x';
    feed(&f, big);
    assert_int_equal(qmp_frame_next(&f, &line, &len), -EMSGSIZE);
    qmp_frame_free(&f);
}

static void buffer_grows_for_a_long_line_fed_in_pieces(void **state)
{
    qmp_frame f;
    char *line;
    size_t len;
    char chunk[4097];

    memset(chunk, 'y', 4096);
    chunk[4096] = '\0';
    qmp_frame_init(&f, 1 << 20);
    for (int i = 0; i < 100; i++) {
        feed(&f, chunk);
        assert_int_equal(qmp_frame_next(&f, &line, &len), 0);
    }
    feed(&f, "\n");
    assert_int_equal(qmp_frame_next(&f, &line, &len), 1);
    assert_int_equal(len, 409600);
    qmp_frame_free(&f);
}

static int parse(const char *s, qmp_msg *m)
{
    json_tokener *tok = json_tokener_new();
    int r = qmp_msg_parse(tok, s, strlen(s), m);
    json_tokener_free(tok);
    return r;
}

static void greeting_is_recognised_with_its_capabilities(void **state)
{
    qmp_msg m;

    assert_int_equal(parse("{\"QMP\": {\"version\": {}, \"capabilities\": [\"oob\"]}}", &m), 0);
    assert_int_equal(m.kind, QMP_MSG_GREETING);
    assert_true(qmp_greeting_has_cap(m.greeting, "oob"));
    assert_false(qmp_greeting_has_cap(m.greeting, "other"));
    qmp_msg_release(&m);
}

static void return_and_error_carry_their_ids(void **state)
{
    qmp_msg m;

    assert_int_equal(parse("{\"return\": [1], \"id\": 42}", &m), 0);
    assert_int_equal(m.kind, QMP_MSG_RETURN);
    assert_true(m.has_id);
    assert_int_equal(m.id, 42);
    assert_true(json_object_is_type(m.ret, json_type_array));
    qmp_msg_release(&m);

    assert_int_equal(parse("{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"nope\"}, \"id\": 7}", &m), 0);
    assert_int_equal(m.kind, QMP_MSG_ERROR);
    assert_int_equal(m.id, 7);
    assert_string_equal(m.err_class, "CommandNotFound");
    assert_string_equal(m.err_desc, "nope");
    qmp_msg_release(&m);
}

static void ids_we_never_send_do_not_match(void **state)
{
    qmp_msg m;

    assert_int_equal(parse("{\"return\": {}, \"id\": \"42\"}", &m), 0);
    assert_false(m.has_id);
    qmp_msg_release(&m);
    assert_int_equal(parse("{\"return\": {}, \"id\": -3}", &m), 0);
    assert_false(m.has_id);
    qmp_msg_release(&m);
    assert_int_equal(parse("{\"return\": {}}", &m), 0);
    assert_false(m.has_id);
    qmp_msg_release(&m);
}

static void error_with_wrong_member_types_gets_defaults(void **state)
{
    qmp_msg m;

    assert_int_equal(parse("{\"error\": {\"class\": 5}}", &m), 0);
    assert_string_equal(m.err_class, "GenericError");
    assert_string_equal(m.err_desc, "(no description)");
    qmp_msg_release(&m);
    assert_int_equal(parse("{\"error\": \"flat\"}", &m), -EPROTO);
}

static void event_has_name_data_and_timestamp(void **state)
{
    qmp_msg m;

    assert_int_equal(parse("{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 12}, "
                           "\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true}}", &m), 0);
    assert_int_equal(m.kind, QMP_MSG_EVENT);
    assert_string_equal(m.event, "SHUTDOWN");
    assert_int_equal(m.ts_sec, 1700000000);
    assert_int_equal(m.ts_usec, 12);
    assert_non_null(m.data);
    qmp_msg_release(&m);
    assert_int_equal(parse("{\"event\": 3}", &m), -EPROTO);
}

static void anything_but_one_known_object_is_refused(void **state)
{
    qmp_msg m;
    static const char *const bad[] = {
        "", "   ", "[]", "42", "\"str\"", "{", "{\"return\": }", "{\"x\": 1}",
        "{\"return\": 1} {\"return\": 2}", "{\"return\": 1}x", "null",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(parse(bad[i], &m), -EPROTO);
    assert_int_equal(parse("{\"return\": 1}  \t", &m), 0);
    qmp_msg_release(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(line_is_returned_only_once_complete),
        cmocka_unit_test(several_lines_in_one_read_come_out_in_order),
        cmocka_unit_test(line_at_the_limit_passes_and_one_byte_more_is_refused),
        cmocka_unit_test(buffer_grows_for_a_long_line_fed_in_pieces),
        cmocka_unit_test(greeting_is_recognised_with_its_capabilities),
        cmocka_unit_test(return_and_error_carry_their_ids),
        cmocka_unit_test(ids_we_never_send_do_not_match),
        cmocka_unit_test(error_with_wrong_member_types_gets_defaults),
        cmocka_unit_test(event_has_name_data_and_timestamp),
        cmocka_unit_test(anything_but_one_known_object_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
