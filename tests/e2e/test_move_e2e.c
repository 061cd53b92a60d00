/* test_move_e2e.c: offline migration between two agentd on one machine,
 * each with its own default pool (no shared storage). The disks must arrive
 * with the same guest content (qemu-img compare against copies taken
 * before), pass qemu-img check, and boot; whatever breaks the move, the VM
 * is defined on exactly one side with its disks, and the other side has no
 * file of it left, not even a temp file. */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "tests/support/agent_e2e.h"
#include "tests/support/agent_harness.h"

#define VM "mv"
#define SETTLE_MS 30000
#define DISKS "\"disks\": [{\"size\": \"32M\"}, {\"size\": \"8M\", \"format\": \"raw\"}]"
#define STREAM_MAX (64u << 20)
#define END_FRAME 24

typedef struct pair {
    t a, b;
    char copies[2][256];   /* the disks' guest content before a move, as raw files */
} pair;

static void start_agent(t *x)
{
    assert_int_equal(agentd_start(&x->agent), 0);
    assert_int_equal(agent_connect(&x->conn, x->agent.socket), 0);
}

static int setup_pair(void **state)
{
    pair *p = calloc(1, sizeof(*p));

    assert_non_null(p);
    assert_int_equal(agentd_prepare(&p->a.agent, NULL), 0);
    assert_int_equal(agentd_prepare(&p->b.agent, NULL), 0);
    start_agent(&p->a);
    start_agent(&p->b);
    *state = p;
    return 0;
}

static int teardown_pair(void **state)
{
    pair *p = *state;

    agent_close(&p->b.conn);
    agent_close(&p->a.conn);
    agentd_cleanup(&p->b.agent);
    agentd_cleanup(&p->a.agent);
    for (int i = 0; i < 2; i++)
        if (p->copies[i][0])
            unlink(p->copies[i]);
    free(p);
    return 0;
}

static void restart_agent(t *x)
{
    agent_close(&x->conn);
    agentd_stop(&x->agent, SIGKILL);
    start_agent(x);
}

/* ---- disks ---------------------------------------------------------------------- */

static void image_path(const t *x, int disk, char *buf, size_t len)
{
    snprintf(buf, len, "%s/state/images/" VM ".%s", x->agent.dir, disk == 0 ? "sda.qcow2" : "sdb.raw");
}

/* Data in both disks, written from the host, and their content kept aside. */
static void define_with_data(pair *p)
{
    char path[256];

    define(&p->a, guest_def(VM, DISKS));
    image_path(&p->a, 0, path, sizeof(path));
    sh("qemu-io -f qcow2 -c 'write -P 0xab 1M 3M' -c 'write -P 0x11 30M 100k' %s >/dev/null", path);
    snprintf(p->copies[0], sizeof(p->copies[0]), "%s.sda.raw", p->a.agent.dir);
    sh("qemu-img convert -O raw %s %s", path, p->copies[0]);
    image_path(&p->a, 1, path, sizeof(path));
    sh("qemu-io -f raw -c 'write -P 0x5a 4k 8k' -c 'write -P 0x77 7M 1M' %s >/dev/null", path);
    snprintf(p->copies[1], sizeof(p->copies[1]), "%s.sdb.raw", p->a.agent.dir);
    sh("cp --sparse=always %s %s", path, p->copies[1]);
}

/* x holds both disks, whole and with the content they had. */
static void assert_disks_on(const pair *p, const t *x)
{
    char path[256];

    image_path(x, 0, path, sizeof(path));
    assert_int_equal(sh_status("qemu-img check -q %s", path), 0);
    assert_int_equal(sh_status("qemu-img compare -q -f qcow2 -F raw %s %s", path, p->copies[0]), 0);
    image_path(x, 1, path, sizeof(path));
    assert_int_equal(sh_status("cmp -s %s %s", path, p->copies[1]), 0);
}

/* x's pool directory holds nothing (no disk, no temp file). */
static void assert_no_files(const t *x)
{
    char dir[256];
    struct dirent *e;
    DIR *d;

    snprintf(dir, sizeof(dir), "%s/state/images", x->agent.dir);
    assert_non_null(d = opendir(dir));
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            fail_msg("%s/%s is left", dir, e->d_name);
    closedir(d);
}

static bool has_vm(t *x)
{
    struct json_object *reply;
    char *a = name_arg(VM);
    bool has;

    assert_int_equal(agent_call(&x->conn, "query-vm", a, CALL_MS, &reply), 0);
    free(a);
    has = agent_return(reply) != NULL;
    json_object_put(reply);
    return has;
}

static void wait_gone(t *x)
{
    long long end = now_ms() + SETTLE_MS;

    while (has_vm(x)) {
        assert_true(now_ms() < end);
        usleep(100 * 1000);
    }
}

static int agentctl_move(const t *from, const t *to)
{
    return sh_status("%s -s %s move " VM " %s >/dev/null 2>&1", AGENTCTL_PATH, from->agent.socket,
                     to->agent.socket);
}

/* ---- the stream, by hand ---------------------------------------------------------- */

typedef struct stream {
    agent_conn src, dst;
    char *bytes;           /* the whole stream from the source */
    size_t len;
} stream;

/* vm-send on a, vm-receive on b, and the source's whole stream read. */
static void open_stream(pair *p, stream *s)
{
    struct json_object *reply, *ret, *args, *disks;
    char *a = name_arg(VM);

    assert_int_equal(agent_connect(&s->src, p->a.agent.socket), 0);
    assert_int_equal(agent_connect(&s->dst, p->b.agent.socket), 0);
    assert_int_equal(agent_call(&s->src, "vm-send", a, CALL_MS, &reply), 0);
    free(a);
    assert_non_null(ret = agent_return(reply));
    args = json_object_new_object();
    json_object_object_add(args, "definition", json_object_get(member(ret, "definition")));
    disks = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(member(ret, "disks")); i++) {
        struct json_object *d = json_object_array_get_idx(member(ret, "disks"), i), *o = json_object_new_object();
        json_object_object_add(o, "target", json_object_get(member(d, "target")));
        json_object_object_add(o, "virtual-size", json_object_get(member(d, "virtual-size")));
        json_object_array_add(disks, o);
    }
    json_object_object_add(args, "disks", disks);
    json_object_put(reply);
    assert_int_equal(agent_call(&s->dst, "vm-receive", json_object_to_json_string(args), CALL_MS, &reply), 0);
    json_object_put(args);
    assert_non_null(agent_return(reply));
    json_object_put(reply);
    /* What came with the reply, then the rest until the source closes. */
    assert_non_null(s->bytes = malloc(STREAM_MAX));
    memcpy(s->bytes, s->src.buf, s->src.len);
    s->len = s->src.len;
    for (ssize_t n; (n = read(s->src.fd, s->bytes + s->len, STREAM_MAX - s->len)) > 0;)
        s->len += (size_t)n;
    assert_true(s->len > END_FRAME && s->len < STREAM_MAX);
}

/* false when the destination closed first (it gave up on the stream). */
static bool forward(stream *s, size_t from, size_t to)
{
    for (size_t at = from; at < to;) {
        ssize_t n = send(s->dst.fd, s->bytes + at, to - at, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        at += (size_t)n;
    }
    return true;
}

static void close_stream(stream *s)
{
    agent_close(&s->src);
    agent_close(&s->dst);
    free(s->bytes);
}

/* ---- cases ------------------------------------------------------------------------ */

/* kvmsh's offline migration in one command, and back; the guest boots there. */
static void test_move_and_back(void **state)
{
    pair *p = *state;
    char path[256];

    define_with_data(p);
    assert_int_equal(agentctl_move(&p->a, &p->b), 0);
    assert_false(has_vm(&p->a));
    assert_no_files(&p->a);
    vm_info i = query(&p->b, VM);
    assert_string_equal(i.state, "stopped");
    assert_string_equal(i.reason, "received");
    assert_disks_on(p, &p->b);
    image_path(&p->b, 1, path, sizeof(path));
    assert_int_equal(sh_status("test $(du -k %s | cut -f1) -lt 8192", path), 0);   /* still sparse */

    vm_cmd(&p->b, "vm-start", VM);
    assert_int_equal(wait_file_contains(query(&p->b, VM).console, READY_LINE, 1, BOOT_MS), 0);
    vm_cmd(&p->b, "vm-destroy", VM);
    /* A running VM is refused, and nothing moves. */
    assert_int_equal(sh_status("%s -s %s start " VM " >/dev/null", AGENTCTL_PATH, p->b.agent.socket), 0);
    assert_int_equal(agentctl_move(&p->b, &p->a), 1);
    vm_cmd(&p->b, "vm-destroy", VM);

    assert_int_equal(agentctl_move(&p->b, &p->a), 0);
    assert_false(has_vm(&p->b));
    assert_no_files(&p->b);
    assert_disks_on(p, &p->a);
}

/* A destination that refuses leaves the source as it was. */
static void test_refused_by_destination(void **state)
{
    pair *p = *state;

    define_with_data(p);
    define(&p->b, bare_def(VM, NULL));
    assert_int_equal(agentctl_move(&p->a, &p->b), 1);
    wait_query_state(&p->a, VM, "stopped", SETTLE_MS);
    assert_disks_on(p, &p->a);
    vm_cmd(&p->b, "vm-undefine", VM);
    assert_no_files(&p->b);
}

/* The stream cut off: the source is stopped again, the destination keeps nothing. */
static void test_stream_cut(void **state)
{
    pair *p = *state;
    stream s = { 0 };

    define_with_data(p);
    open_stream(p, &s);
    assert_true(forward(&s, 0, s.len / 2));
    close_stream(&s);
    wait_gone(&p->b);
    assert_no_files(&p->b);
    /* The source sent everything (its record is written) but nobody
     * confirmed: it stays sent, across a restart, until told. */
    vm_info i = query(&p->a, VM);
    assert_string_equal(i.state, "sent");
    restart_agent(&p->a);
    assert_string_equal(query(&p->a, VM).state, "sent");
    call_fails(&p->a, "vm-start", "{\"name\": \"" VM "\"}", "InvalidState", NULL);
    call_fails(&p->a, "vm-undefine", "{\"name\": \"" VM "\"}", "InvalidState", NULL);
    call_ok_put(&p->a, "vm-send-confirm", "{\"name\": \"" VM "\", \"completed\": false}");
    assert_string_equal(query(&p->a, VM).state, "stopped");
    assert_disks_on(p, &p->a);
}

/* The destination killed with both disks installed but the definition not
 * saved: its next start removes them. */
static void test_destination_killed(void **state)
{
    pair *p = *state;
    stream s = { 0 };
    char path[256];

    define_with_data(p);
    open_stream(p, &s);
    assert_true(forward(&s, 0, s.len - END_FRAME));
    image_path(&p->b, 1, path, sizeof(path));
    for (long long end = now_ms() + SETTLE_MS; access(path, F_OK) < 0; usleep(50 * 1000))
        assert_true(now_ms() < end);
    usleep(500 * 1000);   /* the record saying so */
    agentd_stop(&p->b.agent, SIGKILL);
    close_stream(&s);
    agent_close(&p->b.conn);
    start_agent(&p->b);
    assert_false(has_vm(&p->b));
    assert_no_files(&p->b);
    call_ok_put(&p->a, "vm-send-confirm", "{\"name\": \"" VM "\", \"completed\": false}");
    assert_disks_on(p, &p->a);
}

/* A damaged byte is caught by its frame's CRC, and the receive is undone. */
static void test_damaged_stream(void **state)
{
    pair *p = *state;
    stream s = { 0 };
    char line[1024] = "";
    size_t n = 0;

    define_with_data(p);
    open_stream(p, &s);
    s.bytes[s.len / 2] ^= 0x40;
    forward(&s, 0, s.len);   /* it may stop reading at the damaged frame */
    /* The verdict comes as one event line on the stream's connection. */
    for (ssize_t k; n < sizeof(line) - 1 && !memchr(line, '\n', n) &&
                    (k = read(s.dst.fd, line + n, sizeof(line) - 1 - n)) > 0;)
        n += (size_t)k;
    line[n] = '\0';
    assert_non_null(strstr(line, "VM_RECEIVED"));
    assert_non_null(strstr(line, "failed"));
    assert_non_null(strstr(line, "damaged (CRC-32"));
    close_stream(&s);
    wait_gone(&p->b);
    assert_no_files(&p->b);
    call_ok_put(&p->a, "vm-send-confirm", "{\"name\": \"" VM "\", \"completed\": false}");
    assert_disks_on(p, &p->a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_move_and_back, setup_pair, teardown_pair),
        cmocka_unit_test_setup_teardown(test_refused_by_destination, setup_pair, teardown_pair),
        cmocka_unit_test_setup_teardown(test_stream_cut, setup_pair, teardown_pair),
        cmocka_unit_test_setup_teardown(test_destination_killed, setup_pair, teardown_pair),
        cmocka_unit_test_setup_teardown(test_damaged_stream, setup_pair, teardown_pair),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
