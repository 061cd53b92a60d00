/* bench_clone.c: an attached clone made through agentctl against the same
 * overlay made by qemu-img, whole commands, side by side in one run.
 *
 * agentctl's command does everything `clone MASTER NEW` means: connect,
 * derive the new VM's definition, open the master's chain, write the
 * overlay (synced, verified, renamed into place) and save the definition
 * durably. qemu-img's does only the overlay, without syncing it. Rounds
 * alternate which goes first, and each command starts after a sync (not
 * timed), so that neither pays in its own fsyncs for the dirty data the
 * other left; the pool is on /var/tmp (a real disk here), not tmpfs, so
 * syncs cost what they cost.
 *
 * Usage: bench_clone [--rounds N] [--dir DIR]   (DIR default /var/tmp) */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "tests/bench/bench_util.h"
#include "tests/support/agent_harness.h"

#define CALL_MS 120000

static double time_command(char *const argv[])
{
    bench_run r;

    return bench_command(argv, &r) < 0 ? -1 : r.seconds;
}

static int call(agent_conn *c, const char *cmd, const char *args)
{
    struct json_object *reply;

    if (agent_call(c, cmd, args, CALL_MS, &reply) < 0)
        return -1;
    if (!agent_return(reply)) {
        fprintf(stderr, "%s: %s\n", cmd, agent_error_desc(reply));
        json_object_put(reply);
        return -1;
    }
    json_object_put(reply);
    return 0;
}

/* A master with 64 MiB of data in a 1 GiB disk, made by the agent. */
static int make_master(agent_conn *c, const char *pool)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd),
             "qemu-img create -q -f raw %s/src.raw 1G && "
             "dd if=/dev/urandom of=%s/src.raw bs=1M count=64 conv=notrunc status=none && "
             "qemu-img convert -O qcow2 %s/src.raw %s/src.sda.qcow2 && rm %s/src.raw",
             pool, pool, pool, pool, pool);
    if (bench_sh(cmd) < 0)
        return -1;
    if (call(c, "vm-define", "{\"definition\": {\"name\": \"src\", \"memory\": 64, "
                             "\"disks\": [{\"pool\": \"default\", \"volume\": \"src.sda.qcow2\"}]}}") < 0)
        return -1;
    return call(c, "master-create", "{\"vm\": \"src\", \"master\": \"m\", \"detached\": true}");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "rounds", required_argument, NULL, 'r' },
        { "dir", required_argument, NULL, 'd' },
        { NULL, 0, NULL, 0 },
    };
    const char *base = "/var/tmp";
    int rounds = 30, ch, rc = 1;
    char pool[512], config[700], master[600];
    agentd_proc p;
    agent_conn c;

    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'r')
            rounds = atoi(optarg);
        else if (ch == 'd')
            base = optarg;
        else
            return 2;
    }
    if (rounds < 3 || rounds > 1000)
        return 2;
    snprintf(pool, sizeof(pool), "%s/agentd-bench-clone-XXXXXX", base);
    if (!mkdtemp(pool))
        return 1;
    snprintf(config, sizeof(config), "default-pool = dir://%s\nlog-level = warning\n", pool);
    snprintf(master, sizeof(master), "%s/m.sda.qcow2", pool);
    if (agentd_prepare(&p, config) < 0 || agentd_start(&p) < 0 || agent_connect(&c, p.socket) < 0 ||
        make_master(&c, pool) < 0) {
        fprintf(stderr, "bench_clone: setup failed (see %s)\n", p.log);
        goto out;
    }

    double *ours = calloc((size_t)rounds, sizeof(double)), *theirs = calloc((size_t)rounds, sizeof(double));
    double *floor_ms = calloc((size_t)rounds, sizeof(double));
    char *version[] = { AGENTCTL_PATH, "--socket", p.socket, "version", NULL };
    for (int i = 0; i < rounds; i++) {
        char name[32], overlay[700];
        snprintf(name, sizeof(name), "c%d", i);
        snprintf(overlay, sizeof(overlay), "%s/q%d.qcow2", pool, i);
        char *agentctl[] = { AGENTCTL_PATH, "--socket", p.socket, "clone", "m", name, NULL };
        char *qemu_img[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-b", master, "-F", "qcow2", overlay, NULL };
        for (int k = 0; k < 2; k++) {
            bool agent_turn = (i + k) % 2 == 0;
            double t;
            /* Each command starts from clean caches: neither pays, in its
             * own syncs, for the dirty data the other left behind. */
            sync();
            t = time_command(agent_turn ? agentctl : qemu_img);
            if (t < 0) {
                fprintf(stderr, "bench_clone: %s failed in round %d\n", agent_turn ? "agentctl" : "qemu-img", i);
                goto out;
            }
            (agent_turn ? ours : theirs)[i] = t;
        }
        sync();
        floor_ms[i] = time_command(version);
    }
    double o50 = bench_pct(ours, rounds, 0.5), o90 = bench_pct(ours, rounds, 0.9);
    double t50 = bench_pct(theirs, rounds, 0.5), t90 = bench_pct(theirs, rounds, 0.9);
    printf("attached clone, whole commands, %d rounds each, pool on %s\n", rounds, base);
    printf("  agentctl clone m NEW                          p50 %7.2f ms  p90 %7.2f ms\n", o50 * 1e3, o90 * 1e3);
    printf("  qemu-img create -f qcow2 -b M -F qcow2 NEW    p50 %7.2f ms  p90 %7.2f ms\n", t50 * 1e3, t90 * 1e3);
    printf("  agentctl version (start, connect, one reply)  p50 %7.2f ms\n", bench_pct(floor_ms, rounds, 0.5) * 1e3);
    printf("  agentctl is %.2fx faster at the median (target: 3x)\n", t50 / o50);
    rc = 0;
out:
    agent_close(&c);
    agentd_cleanup(&p);
    snprintf(config, sizeof(config), "rm -rf '%s'", pool);
    bench_sh(config);
    return rc;
}
