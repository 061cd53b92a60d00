/* test_migrate_e2e.c: live migration between two agentd on one machine,
 * through real QEMU (tcg). The two agents have their own state, sockets and
 * migration ports and share one storage directory, a pool of the same path
 * on both. Each case ends the way a management node would check it: exactly
 * one QEMU runs the guest, the agent that owns the VM says it runs, the
 * other has no such VM, and the guest answers. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "tests/support/agent_e2e.h"
#include "tests/support/agent_harness.h"
#include "tests/support/guest.h"

#define VM "mig"
/* A whole migration of the guest at full speed, or a slow one to its end. */
#define MIGRATE_MS 120000
/* How long an ending QEMU or a restarted agent takes to settle. */
#define SETTLE_MS 30000
/* The slow migrations: at 8 MiB/s the guest's 100 MiB or so of RAM in use
 * take about 12 s, long enough to cut a step while bytes flow. */
#define SLOW_OPTS "\"bandwidth\": 8"
#define FLOWING_BYTES (1 << 20)

/* Two agents: a is where the guest starts. */
typedef struct pair {
    t a, b;
    char shared[160];   /* the storage both see, under a's temp dir */
} pair;

/* ---- two agents ------------------------------------------------------------ */

static void start_agent(t *x)
{
    assert_int_equal(agentd_start(&x->agent), 0);
    assert_int_equal(agent_connect(&x->conn, x->agent.socket), 0);
}

static void define_shared_pool(t *x, const char *path)
{
    char args[512];

    snprintf(args, sizeof(args), "{\"definition\": {\"name\": \"shared\", \"location\": \"dir://%s\"}}", path);
    call_ok_put(x, "pool-define", args);
    call_ok_put(x, "pool-start", "{\"name\": \"shared\"}");
}

/* Disjoint port ranges: each agent's incoming QEMU listens on its own. */
static int setup_pair(void **state)
{
    pair *p = calloc(1, sizeof(*p));

    assert_non_null(p);
    assert_int_equal(agentd_prepare(&p->a.agent, "migration-port-min = 49300\nmigration-port-max = 49309\n"), 0);
    assert_int_equal(agentd_prepare(&p->b.agent, "migration-port-min = 49310\nmigration-port-max = 49319\n"), 0);
    snprintf(p->shared, sizeof(p->shared), "%s/shared", p->a.agent.dir);
    start_agent(&p->a);
    start_agent(&p->b);
    define_shared_pool(&p->a, p->shared);
    define_shared_pool(&p->b, p->shared);
    *state = p;
    return 0;
}

/* b first: the shared storage lives in a's temp dir. Cleanup kills every
 * QEMU naming either dir, so a failed case leaves none running. */
static int teardown_pair(void **state)
{
    pair *p = *state;

    agent_close(&p->b.conn);
    agent_close(&p->a.conn);
    agentd_cleanup(&p->b.agent);
    agentd_cleanup(&p->a.agent);
    free(p);
    return 0;
}

static void restart_agent(t *x)
{
    agent_close(&x->conn);
    agentd_stop(&x->agent, SIGKILL);
    start_agent(x);
}

/* ---- the guest ---------------------------------------------------------------- */

/* The test guest with its disk in the shared pool. */
static void boot_guest(t *x)
{
    define(x, guest_def(VM, "\"disks\": [{\"pool\": \"shared\", \"size\": \"16M\"}]"));
    vm_cmd(x, "vm-start", VM);
    assert_int_equal(wait_file_contains(query(x, VM).console, READY_LINE, 1, BOOT_MS), 0);
}

/* RAM that does not compress, so a slow migration takes a while. */
static void fill_guest_memory(t *x)
{
    guest_run(x, VM, "dd if=/dev/urandom of=/tmp/fill bs=1M count=16 2>/dev/null");
}

/* Data the guest writes to its disk in the shared pool, and its md5. */
static void write_disk(t *x, char *md5, size_t len)
{
    char out[GUEST_LINE_MAX];

    guest_run(x, VM, "dd if=/dev/urandom of=/dev/vda bs=1M count=4 conv=fsync 2>/dev/null");
    guest_ask(x, VM, "sum vda 0 4194304", out, sizeof(out));
    snprintf(md5, len, "%s", out);
}

/* Read back past the guest's page cache, so from the file this QEMU opened. */
static void assert_disk_reads(t *x, const char *md5)
{
    char out[GUEST_LINE_MAX];

    guest_run(x, VM, "sync; echo 3 >/proc/sys/vm/drop_caches");
    guest_ask(x, VM, "sum vda 0 4194304", out, sizeof(out));
    assert_string_equal(out, md5);
}

/* ---- what must hold at the end ------------------------------------------------- */

static bool has_vm(t *x)
{
    struct json_object *reply;
    char *a = name_arg(VM);
    bool has;

    assert_int_equal(agent_call(&x->conn, "query-vm", a, CALL_MS, &reply), 0);
    free(a);
    has = agent_return(reply) != NULL;
    if (!has)
        assert_string_equal(agent_error_class(reply), "NotFound");
    json_object_put(reply);
    return has;
}

/* An incoming VM goes on its own when its QEMU ends: wait for that. */
static void wait_gone(t *x)
{
    for (long long end = now_ms() + SETTLE_MS; now_ms() < end; usleep(100000))
        if (!has_vm(x))
            return;
    fail_msg("%s is still on %s (%s)", VM, x->agent.dir, query(x, VM).state);
}

/* Exactly one QEMU runs the guest, the owner's; the other agent has no VM. */
static void assert_runs_only_on(t *owner, t *other, const char *uuid)
{
    vm_info i = query(owner, VM);
    char out[GUEST_LINE_MAX];
    pid_t pid = 0;

    assert_string_equal(i.state, "running");
    assert_int_equal(count_qemu_with_uuid(uuid, &pid), 1);
    assert_int_equal(pid, i.pid);
    assert_false(has_vm(other));
    guest_ask(owner, VM, "ping", out, sizeof(out));
    assert_string_equal(out, "pong");
}

/* ---- the three steps --------------------------------------------------------------- */

/* Step 1: dst waits for the stream of src's VM; the URI to send it to. */
static char *incoming_args(t *src)
{
    char *a = name_arg(VM), *args;
    struct json_object *reply = call_ok(src, "query-vm", a);

    free(a);
    if (asprintf(&args, "{\"definition\": %s}",
                 json_object_to_json_string_ext(member(agent_return(reply), "definition"), JSON_C_TO_STRING_PLAIN)) < 0)
        abort();
    json_object_put(reply);
    return args;
}

static void incoming(t *src, t *dst, char *uri, size_t len)
{
    char *args = incoming_args(src);
    struct json_object *r;

    r = call_ok(dst, "vm-migrate-incoming", args);
    free(args);
    snprintf(uri, len, "%s", json_object_get_string(member(agent_return(r), "uri")));
    json_object_put(r);
    assert_string_equal(query(dst, VM).state, "incoming");
}

static char *migrate_args(const char *uri, const char *opts)
{
    char *s;

    if (asprintf(&s, "{\"name\": \"" VM "\", \"uri\": \"%s\"%s%s}", uri, opts ? ", " : "", opts ? opts : "") < 0)
        abort();
    return s;
}

/* Step 3: the destination takes the guest, the source lets it go. */
static void hand_over(t *src, t *dst)
{
    assert_string_equal(query(src, VM).state, "migrated");
    vm_cmd(dst, "vm-migrate-finish", VM);
    call_ok_put(src, "vm-migrate-confirm", "{\"name\": \"" VM "\", \"completed\": true}");
}

/* All three steps at full speed. */
static void migrate(t *src, t *dst)
{
    char uri[128], *args;
    struct json_object *reply;

    incoming(src, dst, uri, sizeof(uri));
    args = migrate_args(uri, NULL);
    assert_int_equal(agent_call(&src->conn, "vm-migrate", args, MIGRATE_MS, &reply), 0);
    free(args);
    if (!agent_return(reply))
        fail_msg("vm-migrate: %s: %s", agent_error_class(reply), agent_error_desc(reply));
    /* QEMU's figures, read after its migration thread filled them in. */
    assert_true(json_object_get_int64(member(agent_return(reply), "total-time-ms")) > 0);
    assert_true(json_object_get_int64(member(agent_return(reply), "transferred")) > 0);
    json_object_put(reply);
    hand_over(src, dst);
}

/* ---- a slow migration in flight -------------------------------------------------- */

/* vm-migrate sent on a connection of its own (the test's other calls go on
 * the agent's usual one), and where its reply is awaited. */
typedef struct in_flight {
    agent_conn conn;
    int id;
} in_flight;

static bool progress_past(agent_conn *c, int64_t bytes)
{
    for (size_t i = 0; i < json_object_array_length(c->events); i++) {
        struct json_object *ev = json_object_array_get_idx(c->events, i);
        if (!strcmp(json_object_get_string(member(ev, "event")), "VM_MIGRATION_PROGRESS") &&
            json_object_get_int64(member(member(ev, "data"), "transferred")) >= bytes)
            return true;
    }
    return false;
}

/* Steps 1 and 2 of a slow migration, returning once bytes flow: the reply
 * must not have come yet, or there is nothing in flight to cut. */
static void start_slow(t *src, t *dst, in_flight *f)
{
    char uri[128], *args;

    incoming(src, dst, uri, sizeof(uri));
    assert_int_equal(agent_connect(&f->conn, src->agent.socket), 0);
    args = migrate_args(uri, SLOW_OPTS);
    assert_true((f->id = agent_send(&f->conn, "vm-migrate", args)) > 0);
    free(args);
    for (long long end = now_ms() + SETTLE_MS; now_ms() < end;) {
        struct json_object *reply;
        if (agent_wait_reply(&f->conn, f->id, 200, &reply) == 0)
            fail_msg("vm-migrate ended before it could be cut: %s", json_object_to_json_string(reply));
        if (progress_past(&f->conn, FLOWING_BYTES))
            return;
    }
    fail_msg("no VM_MIGRATION_PROGRESS past %d bytes", FLOWING_BYTES);
}

/* The guest booted on a with RAM that takes a while to send, and a slow
 * migration to b under way; a's VM as it was before. */
static vm_info slow_migration_in_flight(pair *p, in_flight *f)
{
    vm_info i;

    boot_guest(&p->a);
    fill_guest_memory(&p->a);
    i = query(&p->a, VM);
    start_slow(&p->a, &p->b, f);
    return i;
}

/* The reply of the vm-migrate in flight (-errno when the connection went). */
static int finish_wait(in_flight *f, struct json_object **reply)
{
    int r = agent_wait_reply(&f->conn, f->id, MIGRATE_MS, reply);

    agent_close(&f->conn);
    return r;
}

static void assert_migrate_failed(in_flight *f, const char *cls)
{
    struct json_object *reply;

    assert_int_equal(finish_wait(f, &reply), 0);
    if (agent_return(reply))
        fail_msg("vm-migrate succeeded: %s", json_object_to_json_string(reply));
    assert_string_equal(agent_error_class(reply), cls);
    json_object_put(reply);
}

/* The caller's cleanup after a failed step 2: the destination's VM goes.
 * Its QEMU may have ended on its own already, taking the VM with it. */
static void drop_incoming(t *dst)
{
    struct json_object *reply;
    char *a = name_arg(VM);

    assert_int_equal(agent_call(&dst->conn, "vm-destroy", a, CALL_MS, &reply), 0);
    free(a);
    if (!agent_return(reply))
        assert_string_equal(agent_error_class(reply), "NotFound");
    json_object_put(reply);
    wait_gone(dst);
}

/* A caller that lost track asks both agents and decides: the source's
 * migrated VM means the stream is whole and the destination takes it;
 * a running one means it stays. The owner is returned. */
static t *resolve(t *src, t *dst)
{
    char state[32];

    snprintf(state, sizeof(state), "%s", query(src, VM).state);
    if (!strcmp(state, "migrated")) {
        /* Only the agent resumes a guest whose stream completed. */
        call_fails(src, "vm-qmp", "{\"name\": \"" VM "\", \"command\": \"cont\"}", "InvalidState", NULL);
        call_fails(dst, "vm-qmp", "{\"name\": \"" VM "\", \"command\": \"cont\"}", "InvalidState", NULL);
        hand_over(src, dst);
        return dst;
    }
    assert_string_equal(state, "running");
    drop_incoming(dst);
    return src;
}

/* A restarted agent adopts its VMs after its socket is up: ask until then. */
/* Waits while the source still sends (its state is migrating). */
static void wait_source_settled(t *src)
{
    for (long long end = now_ms() + MIGRATE_MS; now_ms() < end; usleep(200000))
        if (strcmp(query(src, VM).state, "migrating"))
            return;
    fail_msg("%s still migrating after %d ms", VM, MIGRATE_MS);
}

/* ---- cases ------------------------------------------------------------------------ */

static void a_running_guest_migrates_and_its_counter_goes_on_then_migrates_back(void **state)
{
    pair *p = *state;
    long first, last, seen_on_a;
    char on_b[256], md5[64];
    vm_info i;

    boot_guest(&p->a);
    i = query(&p->a, VM);
    write_disk(&p->a, md5, sizeof(md5));
    guest_start_counter(&p->a, VM);
    wait_tick_past(&p->a, VM, 1, SETTLE_MS, &first, &seen_on_a);

    migrate(&p->a, &p->b);
    console_ticks(i.console, 0, &first, &seen_on_a);
    assert_true(seen_on_a > 1);
    /* The same guest goes on counting: not a fresh boot at 0. */
    wait_tick_past(&p->b, VM, seen_on_a, SETTLE_MS, &first, &last);
    assert_true(first > seen_on_a);
    assert_true(first <= seen_on_a + 2);
    assert_runs_only_on(&p->b, &p->a, i.uuid);
    assert_disk_reads(&p->b, md5);

    snprintf(on_b, sizeof(on_b), "%s", query(&p->b, VM).console);
    migrate(&p->b, &p->a);
    console_ticks(on_b, 0, &first, &last);
    wait_tick_past(&p->a, VM, last, SETTLE_MS, &first, &seen_on_a);
    assert_runs_only_on(&p->a, &p->b, i.uuid);
}

static void the_destinations_qemu_killed_mid_transfer_leaves_the_guest_running_on_the_source(void **state)
{
    pair *p = *state;
    pid_t dst_qemu;
    in_flight f;
    vm_info i;

    i = slow_migration_in_flight(p, &f);
    dst_qemu = query(&p->b, VM).pid;
    assert_true(dst_qemu > 0);
    assert_int_equal(kill(dst_qemu, SIGKILL), 0);
    assert_migrate_failed(&f, "GenericError");
    assert_string_equal(query(&p->a, VM).state, "running");
    wait_gone(&p->b);
    assert_runs_only_on(&p->a, &p->b, i.uuid);
}

/* The destination's QEMU does not need its agent to receive: the stream
 * goes on, and the restarted agent finds the VM incoming again. */
static void the_destination_agent_killed_mid_transfer(void **state)
{
    pair *p = *state;
    struct json_object *reply;
    in_flight f;
    vm_info i;
    t *owner;

    i = slow_migration_in_flight(p, &f);
    restart_agent(&p->b);
    wait_query_state(&p->b, VM, "incoming", SETTLE_MS);
    assert_int_equal(finish_wait(&f, &reply), 0);
    if (!agent_return(reply))
        fail_msg("vm-migrate: %s: %s", agent_error_class(reply), agent_error_desc(reply));
    json_object_put(reply);
    owner = resolve(&p->a, &p->b);
    assert_ptr_equal(owner, &p->b);
    assert_runs_only_on(&p->b, &p->a, i.uuid);
}

/* The source's QEMU sends on without its agent; the restarted agent finds
 * where the stream got to. */
static void the_source_agent_killed_and_restarted_during_migration(void **state)
{
    pair *p = *state;
    struct json_object *reply;
    char now[32];
    in_flight f;
    vm_info i;
    t *owner;

    i = slow_migration_in_flight(p, &f);
    restart_agent(&p->a);
    assert_true(finish_wait(&f, &reply) < 0);
    /* The restarted agent knows from its records that a migration was
     * under way: never running while QEMU sends or holds the paused guest,
     * or a caller settling it now would decide wrong. */
    snprintf(now, sizeof(now), "%s", query(&p->a, VM).state);
    if (strcmp(now, "migrating") && strcmp(now, "migrated"))
        fail_msg("adopted mid-migration, %s is %s", VM, now);
    wait_source_settled(&p->a);
    owner = resolve(&p->a, &p->b);
    assert_ptr_equal(owner, &p->b);
    assert_runs_only_on(&p->b, &p->a, i.uuid);
}

static void a_cancelled_migration_leaves_the_guest_running_on_the_source(void **state)
{
    pair *p = *state;
    in_flight f;
    vm_info i;

    i = slow_migration_in_flight(p, &f);
    vm_cmd(&p->a, "vm-migrate-cancel", VM);
    assert_migrate_failed(&f, "Cancelled");
    assert_string_equal(query(&p->a, VM).state, "running");
    drop_incoming(&p->b);
    assert_runs_only_on(&p->a, &p->b, i.uuid);
}

/* Storage the destination does not have (here: its pool stopped) is
 * refused before any QEMU, and leaves no VM there. */
static void a_destination_without_the_disks_refuses_and_keeps_nothing(void **state)
{
    pair *p = *state;
    char *args;
    pid_t pid;

    define(&p->a, guest_def(VM, "\"disks\": [{\"pool\": \"shared\", \"size\": \"16M\"}]"));
    call_ok_put(&p->b, "pool-stop", "{\"name\": \"shared\"}");
    args = incoming_args(&p->a);
    call_fails(&p->b, "vm-migrate-incoming", args, "GenericError", "disks[0]");
    free(args);
    assert_false(has_vm(&p->b));
    assert_int_equal(count_qemu_with_uuid(query(&p->a, VM).uuid, &pid), 0);
    assert_string_equal(query(&p->a, VM).state, "stopped");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_running_guest_migrates_and_its_counter_goes_on_then_migrates_back,
                                        setup_pair, teardown_pair),
        cmocka_unit_test_setup_teardown(
            the_destinations_qemu_killed_mid_transfer_leaves_the_guest_running_on_the_source, setup_pair,
            teardown_pair),
        cmocka_unit_test_setup_teardown(the_destination_agent_killed_mid_transfer, setup_pair, teardown_pair),
        cmocka_unit_test_setup_teardown(the_source_agent_killed_and_restarted_during_migration, setup_pair,
                                        teardown_pair),
        cmocka_unit_test_setup_teardown(a_destination_without_the_disks_refuses_and_keeps_nothing, setup_pair,
                                        teardown_pair),
        cmocka_unit_test_setup_teardown(a_cancelled_migration_leaves_the_guest_running_on_the_source, setup_pair,
                                        teardown_pair),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
