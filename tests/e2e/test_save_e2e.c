/* test_save_e2e.c: vm-save, vm-restore and vm-save-discard, and external
 * snapshots, through agentd and real QEMU (tcg). The test guest prints a
 * counter on its console; a restored guest goes on from the next number,
 * never from 0, and a saved VM has no QEMU and cannot be started, changed
 * or restored over disks that changed. An agent killed mid-save or
 * mid-restore leaves the guest running once, or saved. A snapshot reverted
 * drops what the guest wrote since, and every image of the chain passes
 * qemu-img check after each step. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "tests/support/agent_e2e.h"
#include "tests/support/agent_harness.h"
#include "tests/support/guest.h"

#define VM "sv"
#define SAVE_MS 120000
#define SETTLE_MS 30000

static char uuid_of_vm[40];

static void boot_guest(t *x)
{
    define(x, guest_def(VM, "\"disks\": [{\"size\": \"16M\"}]"));
    vm_cmd(x, "vm-start", VM);
    assert_int_equal(wait_file_contains(query(x, VM).console, READY_LINE, 1, BOOT_MS), 0);
    snprintf(uuid_of_vm, sizeof(uuid_of_vm), "%s", query(x, VM).uuid);
}

static void state_file(t *x, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", x->agent.dir, name);
}

static bool exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

static long file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static struct json_object *save(t *x, const char *file)
{
    char args[512];
    struct json_object *reply;

    snprintf(args, sizeof(args), "{\"name\": \"" VM "\", \"file\": \"%s\"}", file);
    assert_int_equal(agent_call(&x->conn, "vm-save", args, SAVE_MS, &reply), 0);
    if (!agent_return(reply))
        fail_msg("vm-save: %s: %s", agent_error_class(reply), agent_error_desc(reply));
    return reply;
}

static void restore(t *x)
{
    char *a = name_arg(VM);
    struct json_object *reply;

    assert_int_equal(agent_call(&x->conn, "vm-restore", a, SAVE_MS, &reply), 0);
    free(a);
    if (!agent_return(reply))
        fail_msg("vm-restore: %s: %s", agent_error_class(reply), agent_error_desc(reply));
    json_object_put(reply);
}

/* Saved: no QEMU with the guest's uuid, and query-vm says so. */
static void assert_saved(t *x, const char *file)
{
    assert_string_equal(query(x, VM).state, "saved");
    assert_int_equal(count_qemu_with_uuid(uuid_of_vm, NULL), 0);
    assert_true(exists(file));
}

static void assert_runs_once(t *x, const char *state)
{
    vm_info i = query(x, VM);
    pid_t pid = 0;
    char out[GUEST_LINE_MAX];

    assert_string_equal(i.state, state);
    assert_int_equal(count_qemu_with_uuid(uuid_of_vm, &pid), 1);
    assert_int_equal(pid, i.pid);
    if (!strcmp(state, "running")) {
        guest_ask(x, VM, "ping", out, sizeof(out));
        assert_string_equal(out, "pong");
    }
}

/* The counter goes on after the point the console log had reached at
 * offset: its first tick there is the one after last_before. */
static void assert_counter_goes_on(t *x, long offset, long last_before)
{
    long first, last;
    char log[256];

    snprintf(log, sizeof(log), "%s", query(x, VM).console);
    wait_tick_past(x, VM, last_before + 1, SETTLE_MS, &first, &last);
    console_ticks(log, offset, &first, &last);
    assert_int_equal(first, last_before + 1);
}

/* The counter's last tick so far, and where the console log ends. */
static long counter_now(t *x, long *offset)
{
    long first, last;
    char log[256];

    snprintf(log, sizeof(log), "%s", query(x, VM).console);
    *offset = file_size(log);
    console_ticks(log, 0, &first, &last);
    return last;
}

static void restart_agent(t *x)
{
    agent_close(&x->conn);
    agentd_stop(&x->agent, SIGKILL);
    assert_int_equal(agentd_start(&x->agent), 0);
    assert_int_equal(agent_connect(&x->conn, x->agent.socket), 0);
}

/* ---- cases ----------------------------------------------------------------- */

static void a_saved_guest_restores_and_its_counter_goes_on(void **state)
{
    t *x = *state;
    char file[256], args[512];
    long first, last, offset;
    struct json_object *reply;

    boot_guest(x);
    guest_start_counter(x, VM);
    wait_tick_past(x, VM, 1, SETTLE_MS, &first, &last);
    state_file(x, "sv.state", file, sizeof(file));
    reply = save(x, file);
    assert_string_equal(json_object_get_string(member(agent_return(reply), "file")), file);
    assert_int_equal(json_object_get_int64(member(agent_return(reply), "size")), file_size(file));
    json_object_put(reply);
    last = counter_now(x, &offset);
    assert_saved(x, file);

    /* Nothing may boot it afresh or change it while its state is in the file. */
    char *a = name_arg(VM);
    call_fails(x, "vm-start", a, "InvalidState", "sv is saved");
    call_fails(x, "vm-undefine", a, "InvalidState", "sv is saved");
    call_fails(x, "vm-update", "{\"name\": \"" VM "\", \"changes\": {\"memory\": 512}}", "InvalidState", "sv is saved");
    free(a);
    snprintf(args, sizeof(args), "{\"name\": \"" VM "\", \"file\": \"%s.2\"}", file);
    call_fails(x, "vm-save", args, "InvalidState", NULL);

    /* The record outlives the agent. */
    restart_agent(x);
    assert_saved(x, file);
    assert_string_equal(json_object_get_string(member(member(member(agent_return(reply = call_ok(x, "query-vm",
                        "{\"name\": \"" VM "\"}")), "runtime"), "saved"), "file")), file);
    json_object_put(reply);

    restore(x);
    assert_runs_once(x, "running");
    assert_counter_goes_on(x, offset, last);
    assert_false(exists(file));   /* used once: it goes */
}

static void a_paused_guest_is_restored_paused(void **state)
{
    t *x = *state;
    char file[256];
    long first, last, offset;

    boot_guest(x);
    guest_start_counter(x, VM);
    wait_tick_past(x, VM, 1, SETTLE_MS, &first, &last);
    vm_cmd(x, "vm-suspend", VM);
    last = counter_now(x, &offset);
    state_file(x, "paused.state", file, sizeof(file));
    json_object_put(save(x, file));
    assert_saved(x, file);
    restore(x);
    assert_runs_once(x, "paused");
    vm_cmd(x, "vm-resume", VM);
    assert_runs_once(x, "running");
    assert_counter_goes_on(x, offset, last);
}

static void a_changed_disk_refuses_the_restore_and_discard_boots_it_afresh(void **state)
{
    t *x = *state;
    char file[256], taken[256], args[512], disk[512];
    struct json_object *reply;
    char *a = name_arg(VM);

    boot_guest(x);
    /* Bad requests leave the guest running and the files alone. */
    state_file(x, "taken", taken, sizeof(taken));
    sh("echo keep > %s", taken);
    snprintf(args, sizeof(args), "{\"name\": \"" VM "\", \"file\": \"%s\"}", taken);
    call_fails(x, "vm-save", args, "Exists", "file: ");
    call_fails(x, "vm-save", "{\"name\": \"" VM "\", \"file\": \"relative\"}", "InvalidParameter", "file: ");
    call_fails(x, "vm-save", "{\"name\": \"" VM "\"}", "InvalidParameter", "file");
    call_fails(x, "vm-restore", a, "InvalidState", NULL);
    assert_int_equal(file_size(taken), 5);
    assert_runs_once(x, "running");

    state_file(x, "sv.state", file, sizeof(file));
    reply = save(x, file);
    snprintf(disk, sizeof(disk), "%s", json_object_get_string(
        member(json_object_array_get_idx(member(agent_return(reply), "disks"), 0), "path")));
    json_object_put(reply);
    sh("touch %s", disk);   /* as if something wrote to it behind the agent's back */
    call_fails(x, "vm-restore", a, "InvalidState", "disks[0]: ");
    assert_saved(x, file);

    vm_cmd(x, "vm-save-discard", VM);
    assert_string_equal(query(x, VM).state, "stopped");
    for (long long end = now_ms() + SETTLE_MS; exists(file) && now_ms() < end;)
        usleep(50000);
    assert_false(exists(file));
    vm_cmd(x, "vm-start", VM);
    assert_int_equal(wait_file_contains(query(x, VM).console, READY_LINE, 2, BOOT_MS), 0);
    free(a);
}

/* The VM's runtime record holds needle: the agent got that far. */
static void wait_runtime_has(t *x, const char *needle)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/run/vms/" VM "/runtime.json", x->agent.dir);
    if (wait_file_contains(path, needle, 1, SETTLE_MS) != 0)
        fail_msg("%s never held %s", path, needle);
}

static void the_agent_killed_during_a_save_leaves_the_guest_running(void **state)
{
    t *x = *state;
    char file[256], part[300];
    long first, last, offset;
    agent_conn c;
    pid_t qemu = 0;

    boot_guest(x);
    guest_start_counter(x, VM);
    wait_tick_past(x, VM, 1, SETTLE_MS, &first, &last);
    assert_int_equal(count_qemu_with_uuid(uuid_of_vm, &qemu), 1);
    state_file(x, "sv.state", file, sizeof(file));
    snprintf(part, sizeof(part), "%s.part", file);
    last = counter_now(x, &offset);
    /* QEMU frozen: the save cannot finish before the agent dies. */
    kill(qemu, SIGSTOP);
    assert_int_equal(agent_connect(&c, x->agent.socket), 0);
    char args[512];
    snprintf(args, sizeof(args), "{\"name\": \"" VM "\", \"file\": \"%s\"}", file);
    assert_true(agent_send(&c, "vm-save", args) > 0);
    wait_runtime_has(x, "\"saving\"");
    assert_true(exists(part));
    agent_close(&c);
    agentd_stop(&x->agent, SIGKILL);
    kill(qemu, SIGCONT);
    assert_int_equal(agentd_start(&x->agent), 0);
    assert_int_equal(agent_connect(&x->conn, x->agent.socket), 0);

    wait_query_state(x, VM, "running", SETTLE_MS);
    assert_runs_once(x, "running");
    wait_tick_past(x, VM, last + 1, SETTLE_MS, &first, &last);
    for (long long end = now_ms() + SETTLE_MS; exists(part) && now_ms() < end;)
        usleep(50000);
    assert_false(exists(part));
    assert_false(exists(file));
}

static void the_agent_killed_during_a_restore_leaves_it_saved(void **state)
{
    t *x = *state;
    char file[256];
    long first, last, offset;
    agent_conn c;
    pid_t qemu = 0;
    char *a = name_arg(VM);

    boot_guest(x);
    guest_start_counter(x, VM);
    wait_tick_past(x, VM, 1, SETTLE_MS, &first, &last);
    state_file(x, "sv.state", file, sizeof(file));
    json_object_put(save(x, file));
    last = counter_now(x, &offset);

    assert_int_equal(agent_connect(&c, x->agent.socket), 0);
    assert_true(agent_send(&c, "vm-restore", a) > 0);
    wait_runtime_has(x, "\"restoring\"");
    assert_int_equal(count_qemu_with_uuid(uuid_of_vm, &qemu), 1);
    /* Frozen while it loads: the guest cannot have run from the state yet. */
    kill(qemu, SIGSTOP);
    agent_close(&c);
    agentd_stop(&x->agent, SIGKILL);
    kill(qemu, SIGCONT);
    assert_int_equal(agentd_start(&x->agent), 0);
    assert_int_equal(agent_connect(&x->conn, x->agent.socket), 0);

    /* The agent ends that QEMU and then says saved: wait for the saying,
     * not only for the QEMU to be gone. */
    wait_query_state(x, VM, "saved", SETTLE_MS);
    assert_saved(x, file);
    restore(x);
    assert_runs_once(x, "running");
    assert_counter_goes_on(x, offset, last);
    free(a);
}

/* ---- snapshots ---------------------------------------------------------------- */

#define DATA_BYTES "2097152"

static void write_and_sum(t *x, char *md5, size_t len)
{
    char out[GUEST_LINE_MAX];

    guest_run(x, VM, "dd if=/dev/urandom of=/dev/vda bs=1M count=2 conv=fsync 2>/dev/null");
    guest_ask(x, VM, "sum vda 0 " DATA_BYTES, out, sizeof(out));
    snprintf(md5, len, "%s", out);
}

/* Booted afresh (the console log grows by a readiness line each time). */
static void boot_again(t *x, int boots)
{
    vm_cmd(x, "vm-start", VM);
    assert_int_equal(wait_file_contains(query(x, VM).console, READY_LINE, boots, BOOT_MS), 0);
}

static void assert_disk_sum(t *x, const char *md5)
{
    char out[GUEST_LINE_MAX];

    guest_ask(x, VM, "sum vda 0 " DATA_BYTES, out, sizeof(out));
    assert_string_equal(out, md5);
}

/* Every image in the default pool passes qemu-img check; count of them. */
static int check_images(t *x)
{
    char out[64];

    /* -U: a running QEMU holds the images' locks; check reads them all the same. */
    sh("for f in %s/state/images/*.qcow2; do qemu-img check -U -q \"$f\" || exit 1; done", x->agent.dir);
    sh_out(out, sizeof(out), "ls %s/state/images/*.qcow2 | wc -l", x->agent.dir);
    return atoi(out);
}

static void snapshot(t *x, const char *cmd, const char *snap)
{
    char args[256];

    snprintf(args, sizeof(args), "{\"name\": \"" VM "\", \"snapshot\": \"%s\"}", snap);
    call_ok_put(x, cmd, args);
}

static void a_reverted_snapshot_drops_what_the_guest_wrote_and_deletes_merge_down(void **state)
{
    t *x = *state;
    char first[GUEST_LINE_MAX], later[GUEST_LINE_MAX];
    struct json_object *list;

    boot_guest(x);
    write_and_sum(x, first, sizeof(first));
    call_fails(x, "snapshot-revert", "{\"name\": \"" VM "\", \"snapshot\": \"s1\"}", "InvalidState", "sv is running");
    vm_cmd(x, "vm-destroy", VM);
    call_fails(x, "snapshot-create", "{\"name\": \"" VM "\", \"snapshot\": \"../x\"}", "InvalidParameter", "snapshot: ");
    call_fails(x, "snapshot-revert", "{\"name\": \"" VM "\", \"snapshot\": \"s1\"}", "NotFound", "snapshot: ");
    snapshot(x, "snapshot-create", "s1");
    call_fails(x, "snapshot-create", "{\"name\": \"" VM "\", \"snapshot\": \"s1\"}", "Exists", "snapshot: ");
    assert_int_equal(check_images(x), 2);

    boot_again(x, 2);
    assert_disk_sum(x, first);
    write_and_sum(x, later, sizeof(later));
    assert_string_not_equal(first, later);
    vm_cmd(x, "vm-destroy", VM);
    snapshot(x, "snapshot-revert", "s1");
    assert_int_equal(check_images(x), 2);   /* the written overlay went, a fresh one took its place */
    boot_again(x, 3);
    assert_disk_sum(x, first);              /* the write is gone */

    /* A second snapshot, then the first deleted: merged down, content kept. */
    write_and_sum(x, later, sizeof(later));
    vm_cmd(x, "vm-destroy", VM);
    snapshot(x, "snapshot-create", "s2");
    assert_int_equal(check_images(x), 3);
    snapshot(x, "snapshot-delete", "s1");
    assert_int_equal(check_images(x), 2);
    list = call_ok(x, "snapshot-list", "{\"name\": \"" VM "\"}");
    assert_int_equal(json_object_array_length(agent_return(list)), 1);
    assert_string_equal(json_object_get_string(member(json_object_array_get_idx(agent_return(list), 0), "name")),
                        "s2");
    json_object_put(list);
    boot_again(x, 4);
    assert_disk_sum(x, later);
    vm_cmd(x, "vm-destroy", VM);
    snapshot(x, "snapshot-delete", "s2");
    assert_int_equal(check_images(x), 1);
    boot_again(x, 5);
    assert_disk_sum(x, later);
}

/* Taken while the guest runs: QEMU moves to the overlays at once, and the
 * guest's writes after it are what a revert drops. */
static void a_live_snapshot_keeps_the_guest_running_and_reverts_like_any(void **state)
{
    t *x = *state;
    char first[GUEST_LINE_MAX], later[GUEST_LINE_MAX];
    struct json_object *reply;

    boot_guest(x);
    write_and_sum(x, first, sizeof(first));
    reply = call_ok(x, "snapshot-create", "{\"name\": \"" VM "\", \"snapshot\": \"live\"}");
    assert_true(json_object_get_boolean(member(agent_return(reply), "live")));
    json_object_put(reply);
    assert_runs_once(x, "running");
    assert_int_equal(check_images(x), 2);
    write_and_sum(x, later, sizeof(later));
    assert_string_not_equal(first, later);
    /* A second one on top of the first, still running. */
    snapshot(x, "snapshot-create", "live2");
    assert_disk_sum(x, later);
    assert_int_equal(check_images(x), 3);
    vm_cmd(x, "vm-destroy", VM);
    snapshot(x, "snapshot-revert", "live");
    assert_int_equal(check_images(x), 2);
    boot_again(x, 2);
    assert_disk_sum(x, first);
}

/* No state of a snapshot is open in QEMU any more: its file is out of the graph. */
static void assert_qemu_lacks(t *x, const char *file)
{
    struct json_object *reply = call_ok(x, "vm-qmp", "{\"name\": \"" VM "\", \"command\": "
                                        "\"query-named-block-nodes\"}");
    const char *text = json_object_to_json_string(agent_return(reply));

    assert_non_null(text);
    assert_null(strstr(text, file));
    json_object_put(reply);
}

/* Deleted while the guest runs: QEMU's block-stream merges each state into
 * the overlay above (with the state's backing as the base, or whole when it
 * has none), the guest reads what it wrote, and the state files go. */
static void a_live_delete_merges_while_the_guest_runs(void **state)
{
    t *x = *state;
    char first[GUEST_LINE_MAX], later[GUEST_LINE_MAX], last[GUEST_LINE_MAX], disk0[256], state2[256];
    struct json_object *list;

    boot_guest(x);
    write_and_sum(x, first, sizeof(first));
    snapshot(x, "snapshot-create", "s1");
    write_and_sum(x, later, sizeof(later));
    snapshot(x, "snapshot-create", "s2");
    write_and_sum(x, last, sizeof(last));
    assert_int_equal(check_images(x), 3);
    list = call_ok(x, "snapshot-list", "{\"name\": \"" VM "\"}");
    snprintf(disk0, sizeof(disk0), "%s",
             json_object_get_string(member(json_object_array_get_idx(
                 member(json_object_array_get_idx(agent_return(list), 0), "disks"), 0), "state")));
    snprintf(state2, sizeof(state2), "%s",
             json_object_get_string(member(json_object_array_get_idx(
                 member(json_object_array_get_idx(agent_return(list), 1), "disks"), 0), "state")));
    json_object_put(list);

    /* The newer first: its state has a backing (the disk's image), the base of the stream. */
    snapshot(x, "snapshot-delete", "s2");
    assert_runs_once(x, "running");
    assert_int_equal(check_images(x), 2);
    assert_int_equal(access(state2, F_OK), -1);
    assert_qemu_lacks(x, state2);
    guest_run(x, VM, "sync; echo 3 >/proc/sys/vm/drop_caches");
    assert_disk_sum(x, last);
    /* Then the first, whose state has no backing: the overlay is made whole. */
    snapshot(x, "snapshot-delete", "s1");
    assert_int_equal(check_images(x), 1);
    assert_int_equal(access(disk0, F_OK), -1);
    assert_qemu_lacks(x, disk0);
    list = call_ok(x, "snapshot-list", "{\"name\": \"" VM "\"}");
    assert_int_equal(json_object_array_length(agent_return(list)), 0);
    json_object_put(list);
    guest_run(x, VM, "sync; echo 3 >/proc/sys/vm/drop_caches");
    assert_disk_sum(x, last);
    vm_cmd(x, "vm-destroy", VM);
    boot_again(x, 2);
    assert_disk_sum(x, last);
}

/* With a guest agent, a live snapshot freezes the guest's file systems
 * right before QEMU switches and thaws them after; with a channel but no
 * agent answering, it goes ahead crash-consistent after a short wait. */
static void a_live_snapshot_freezes_through_the_guest_agent(void **state)
{
    t *x = *state;
    char log[GUEST_LINE_MAX];
    struct json_object *reply;

    define(x, guest_def(VM, "\"guest-agent\": true, \"disks\": [{\"size\": \"16M\"}]"));
    vm_cmd(x, "vm-start", VM);
    assert_int_equal(wait_file_contains(query(x, VM).console, READY_LINE, 1, BOOT_MS), 0);
    reply = call_ok(x, "snapshot-create", "{\"name\": \"" VM "\", \"snapshot\": \"frozen\"}");
    assert_true(json_object_get_boolean(member(agent_return(reply), "live")));
    assert_true(json_object_get_boolean(member(agent_return(reply), "frozen")));
    json_object_put(reply);
    guest_ask(x, VM, "run tr '\\n' ' ' </run/qga.log", log, sizeof(log));
    assert_string_equal(log, "freeze thaw ");
    assert_string_equal(query(x, VM).state, "running");

    define(x, bare_def("noagent", "\"guest-agent\": true, \"disks\": [{\"size\": \"1M\"}]"));
    vm_cmd(x, "vm-start", "noagent");
    long long t0 = now_ms();
    reply = call_ok(x, "snapshot-create", "{\"name\": \"noagent\", \"snapshot\": \"s\"}");
    assert_true(json_object_get_boolean(member(agent_return(reply), "live")));
    assert_false(json_object_get_boolean(member(agent_return(reply), "frozen")));
    json_object_put(reply);
    assert_true(now_ms() - t0 < 20000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_saved_guest_restores_and_its_counter_goes_on, setup, teardown),
        cmocka_unit_test_setup_teardown(a_paused_guest_is_restored_paused, setup, teardown),
        cmocka_unit_test_setup_teardown(a_changed_disk_refuses_the_restore_and_discard_boots_it_afresh, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(the_agent_killed_during_a_save_leaves_the_guest_running, setup, teardown),
        cmocka_unit_test_setup_teardown(the_agent_killed_during_a_restore_leaves_it_saved, setup, teardown),
        cmocka_unit_test_setup_teardown(a_reverted_snapshot_drops_what_the_guest_wrote_and_deletes_merge_down,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_live_delete_merges_while_the_guest_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(a_live_snapshot_freezes_through_the_guest_agent, setup, teardown),
        cmocka_unit_test_setup_teardown(a_live_snapshot_keeps_the_guest_running_and_reverts_like_any, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
