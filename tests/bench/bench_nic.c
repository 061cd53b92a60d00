/* bench_nic.c: setting up one VM NIC's host side (a tap with a vnet
 * header, the bridge's MTU, enslaved to the bridge, up) through net/
 * against the same steps done with iproute2 commands, side by side in one
 * run, in a network namespace of the program's own:
 *
 *   ip tuntap add dev T mode tap vnet_hdr
 *   ip link set dev T mtu 1500
 *   ip link set dev T master BR
 *   ip link set dev T up
 *
 * Each round also takes the tap down again (net/: closing its fd; ip: `ip
 * link del`), not timed. Rounds alternate which goes first.
 *
 * Usage: bench_nic [--rounds N] */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "tests/bench/bench_util.h"

#define BRIDGE "br-bench"

static double ours_once(net_nl *nl)
{
    net_tap_spec s = { .name = "tap-ours", .bridge = BRIDGE };
    char err[256];
    net_tap t;
    double t0 = bench_now_s(), dt;

    if (net_tap_attach(nl, &s, &t, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench_nic: %s\n", err);
        return -1;
    }
    dt = bench_now_s() - t0;
    net_tap_close(&t);
    return dt;
}

static double ip_once(void)
{
    static char *const steps[][10] = {
        { "ip", "tuntap", "add", "dev", "tap-ip", "mode", "tap", "vnet_hdr", NULL },
        { "ip", "link", "set", "dev", "tap-ip", "mtu", "1500", NULL },
        { "ip", "link", "set", "dev", "tap-ip", "master", BRIDGE, NULL },
        { "ip", "link", "set", "dev", "tap-ip", "up", NULL },
    };
    double t0 = bench_now_s(), dt;
    bench_run r;

    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
        if (bench_command(steps[i], &r) < 0)
            return -1;
    dt = bench_now_s() - t0;
    bench_sh("ip link del dev tap-ip");
    return dt;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = { { "rounds", required_argument, NULL, 'r' }, { NULL, 0, NULL, 0 } };
    int rounds = 200, ch;
    char err[256];
    double *ours, *ip;
    net_nl *nl;

    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch != 'r')
            return 2;
        rounds = atoi(optarg);
    }
    if (rounds < 3 || rounds > 100000)
        return 2;
    if (unshare(CLONE_NEWNET) < 0) {
        fprintf(stderr, "bench_nic: unshare(CLONE_NEWNET): %s (run as root)\n", strerror(errno));
        return 1;
    }
    if (net_nl_open(2000, &nl) < 0 || net_bridge_create(nl, BRIDGE, false, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench_nic: setup: %s\n", err);
        return 1;
    }
    ours = calloc((size_t)rounds, sizeof(*ours));
    ip = calloc((size_t)rounds, sizeof(*ip));
    for (int i = 0; i < rounds; i++) {
        bool ours_first = i % 2 == 0;
        if ((ours_first && (ours[i] = ours_once(nl)) < 0) || (ip[i] = ip_once()) < 0 ||
            (!ours_first && (ours[i] = ours_once(nl)) < 0))
            return 1;
    }
    double o50 = bench_pct(ours, (size_t)rounds, 0.5), i50 = bench_pct(ip, (size_t)rounds, 0.5);
    printf("one NIC's tap, MTU, bridge and up, %d rounds each, in a private network namespace\n", rounds);
    printf("  net/ (netlink, /dev/net/tun)   p50 %8.3f ms  p90 %8.3f ms\n", o50 * 1e3,
           bench_pct(ours, (size_t)rounds, 0.9) * 1e3);
    printf("  ip commands (4 processes)      p50 %8.3f ms  p90 %8.3f ms\n", i50 * 1e3,
           bench_pct(ip, (size_t)rounds, 0.9) * 1e3);
    printf("  net/ is %.1fx faster at the median (target: 10x)\n", i50 / o50);
    net_nl_close(nl);
    return 0;
}
