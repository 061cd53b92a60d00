/* bench_copy.c: a detached copy of a 3-layer chain holding 1.25 GiB of
 * data, made through agentctl (`master-create VM M --detached`: the agent's
 * io_uring engine flattens the VM's chain into a new standalone qcow2),
 * against `qemu-img convert -O qcow2` and `qemu-img convert -m 16 -W -O
 * qcow2` of the same chain, and `cp` of the flattened image as the floor
 * (the same bytes read and written, nothing decided). Whole commands, one
 * run, rounds rotating which goes first; the source stays in the page cache
 * for all of them.
 *
 * The agent's copy is durable when its command returns (fsync, rename,
 * directory fsync). On a disk (the default, /var/tmp) every other command
 * is followed by `sync OUTPUT` inside its timing, so all four leave the same
 * durable result; on tmpfs (--dir /dev/shm) syncs are free and what is
 * measured is the data movement alone. Before each command (not timed):
 * `sync`, and 2 GiB of memory touched and freed (bench_warm_memory).
 *
 * Peak memory: qemu-img's and cp's from wait4; the agent's is agentd's
 * VmHWM (its peak over its whole life, all rounds included).
 *
 * Usage: bench_copy [--rounds N] [--dir DIR] */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <json-c/json.h>

#include "tests/bench/bench_util.h"
#include "tests/support/agent_harness.h"

#define CALL_MS 600000
#define TMPFS_MAGIC_NUMBER 0x01021994
#define NCMD 4

enum { CMD_AGENT, CMD_CONVERT, CMD_CONVERT_TUNED, CMD_CP };

static const char *const cmd_names[NCMD] = {
    "agentctl master-create VM M --detached",
    "qemu-img convert -O qcow2",
    "qemu-img convert -m 16 -W -O qcow2",
    "cp (the floor)",
};

typedef struct bench {
    char pool[512];
    char top[600], flat[600], out[600];
    char socket[PATH_MAX];
    int sync_outputs;
    agentd_proc p;
    agent_conn c;
} bench;

static int call(bench *b, const char *cmd, const char *args)
{
    struct json_object *reply;
    int ok;

    if (agent_call(&b->c, cmd, args, CALL_MS, &reply) < 0)
        return -1;
    ok = agent_return(reply) != NULL;
    if (!ok)
        fprintf(stderr, "%s: %s\n", cmd, agent_error_desc(reply));
    json_object_put(reply);
    return ok ? 0 : -1;
}

/* base (512 MiB at 0), mid (512 MiB at 256 MiB), top (512 MiB at 1 GiB),
 * each a qcow2 overlay of the one before, in a 4 GiB disk: 1.25 GiB of
 * data once flattened. */
static int make_chain(bench *b)
{
    char cmd[4096];

    snprintf(cmd, sizeof(cmd),
             "cd '%s' && qemu-img create -q -f qcow2 base.qcow2 4G && "
             "qemu-io -f qcow2 -c 'write -P 0x11 0 512M' base.qcow2 >/dev/null && "
             "qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 mid.qcow2 && "
             "qemu-io -f qcow2 -c 'write -P 0x22 256M 512M' mid.qcow2 >/dev/null && "
             "qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 src.sda.qcow2 && "
             "qemu-io -f qcow2 -c 'write -P 0x33 1G 512M' src.sda.qcow2 >/dev/null && "
             "qemu-img convert -O qcow2 src.sda.qcow2 flat.qcow2",
             b->pool);
    if (bench_sh(cmd) < 0)
        return -1;
    snprintf(b->top, sizeof(b->top), "%s/src.sda.qcow2", b->pool);
    snprintf(b->flat, sizeof(b->flat), "%s/flat.qcow2", b->pool);
    snprintf(b->out, sizeof(b->out), "%s/out.qcow2", b->pool);
    return call(b, "vm-define", "{\"definition\": {\"name\": \"src\", \"memory\": 64, "
                               "\"disks\": [{\"pool\": \"default\", \"volume\": \"src.sda.qcow2\"}]}}");
}

static long agent_hwm_kib(const bench *b)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)b->p.pid);
    if (!(f = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* One command, timed; its output removed afterwards (not timed). */
static int run_one(bench *b, int which, int round, bench_run *ret)
{
    char master[32], script[2048], cleanup[1024];
    char *sh[] = { "sh", "-c", script, NULL };
    char *ctl[] = { AGENTCTL_PATH, "--socket", b->socket, "master-create", "src", master, "--detached", NULL };
    const char *sync = b->sync_outputs ? " && sync " : "";
    const char *sync_arg = b->sync_outputs ? b->out : "";
    int r;

    snprintf(master, sizeof(master), "m%d", round);
    if (which == CMD_CONVERT)
        snprintf(script, sizeof(script), "qemu-img convert -O qcow2 '%s' '%s'%s%s", b->top, b->out, sync, sync_arg);
    else if (which == CMD_CONVERT_TUNED)
        snprintf(script, sizeof(script), "qemu-img convert -m 16 -W -O qcow2 '%s' '%s'%s%s", b->top, b->out, sync,
                 sync_arg);
    else
        snprintf(script, sizeof(script), "cp '%s' '%s'%s%s", b->flat, b->out, sync, sync_arg);
    bench_sh("sync");
    bench_warm_memory(2048);
    r = bench_command(which == CMD_AGENT ? ctl : sh, ret);
    if (which == CMD_AGENT) {
        snprintf(cleanup, sizeof(cleanup), "{\"name\": \"%s\"}", master);
        return r < 0 ? r : call(b, "master-delete", cleanup);
    }
    snprintf(cleanup, sizeof(cleanup), "rm -f '%s'", b->out);
    bench_sh(cleanup);
    return r;
}

static void report(const bench *b, double t[NCMD][64], long rss[NCMD], int rounds, long hwm_before)
{
    double p50[NCMD], best[NCMD];

    for (int k = 0; k < NCMD; k++) {
        p50[k] = bench_pct(t[k], (size_t)rounds, 0.5);
        best[k] = t[k][0];
    }
    printf("detached copy of a 3-layer chain, 1.25 GiB of data in 4 GiB, %d rounds each, on %s%s\n", rounds,
           b->pool, b->sync_outputs ? " (every output synced inside its timing)" : "");
    for (int k = 0; k < NCMD; k++)
        printf("  %-40s p50 %7.3f s  best %7.3f s  peak RSS %6ld KiB\n", cmd_names[k], p50[k], best[k], rss[k]);
    printf("  agentd's VmHWM: %ld KiB before the copies, %ld KiB after all of them\n", hwm_before,
           agent_hwm_kib(b));
    printf("  default convert / agent: %.2fx (target: at least 1.3x)\n", p50[CMD_CONVERT] / p50[CMD_AGENT]);
    printf("  tuned convert / agent:   %.2fx (target: at least 1.0x)\n", p50[CMD_CONVERT_TUNED] / p50[CMD_AGENT]);
    printf("  agent / cp:              %.2fx (target: at most 1.25x)\n", p50[CMD_AGENT] / p50[CMD_CP]);
}

static int run(bench *b, int rounds)
{
    static double t[NCMD][64];
    long rss[NCMD] = { 0 }, hwm_before = agent_hwm_kib(b);

    for (int i = 0; i < rounds; i++) {
        for (int k = 0; k < NCMD; k++) {
            int which = (i + k) % NCMD;
            bench_run r;

            if (run_one(b, which, i, &r) < 0) {
                fprintf(stderr, "bench_copy: %s failed in round %d\n", cmd_names[which], i);
                return -1;
            }
            t[which][i] = r.seconds;
            if (getenv("BENCH_VERBOSE"))
                fprintf(stderr, "round %d %-40s %.3f s\n", i, cmd_names[which], r.seconds);
            if (r.max_rss_kib > rss[which])
                rss[which] = r.max_rss_kib;
        }
    }
    report(b, t, rss, rounds, hwm_before);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "rounds", required_argument, NULL, 'r' },
        { "dir", required_argument, NULL, 'd' },
        { NULL, 0, NULL, 0 },
    };
    const char *base = "/var/tmp";
    int rounds = 5, ch, rc = 1;
    char config[700], cmd[700];
    struct statfs sf;
    bench b = { 0 };

    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'r')
            rounds = atoi(optarg);
        else if (ch == 'd')
            base = optarg;
        else
            return 2;
    }
    if (rounds < 1 || rounds > 64)
        return 2;
    snprintf(b.pool, sizeof(b.pool), "%s/agentd-bench-copy-XXXXXX", base);
    if (!mkdtemp(b.pool))
        return 1;
    b.sync_outputs = statfs(b.pool, &sf) == 0 && sf.f_type != TMPFS_MAGIC_NUMBER;
    snprintf(config, sizeof(config), "default-pool = dir://%s\nlog-level = warning\n", b.pool);
    if (agentd_prepare(&b.p, config) < 0 || agentd_start(&b.p) < 0 || agent_connect(&b.c, b.p.socket) < 0 ||
        make_chain(&b) < 0) {
        fprintf(stderr, "bench_copy: setup failed (see %s)\n", b.p.log);
        goto out;
    }
    snprintf(b.socket, sizeof(b.socket), "%s", b.p.socket);
    rc = run(&b, rounds) < 0;
out:
    agent_close(&b.c);
    agentd_cleanup(&b.p);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", b.pool);
    bench_sh(cmd);
    return rc;
}
