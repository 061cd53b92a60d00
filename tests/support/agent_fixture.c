/* agent_fixture.c: see agent_fixture.h. */
#include "agent_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "agent/events.h"
#include "agent/log.h"
#include "agent/pool.h"
#include "agent/server.h"
#include "agent/statefile.h"
#include "agent/vm.h"

static void to_clients(const char *line, size_t len, void *opaque)
{
    agent *a = opaque;

    if (a->server)
        server_broadcast(line, len, a->server);
}

int agent_fixture_init(agent *a, uv_loop_t *loop, const char *dir)
{
    char err[256];

    memset(a, 0, sizeof(*a));
    a->loop = loop;
    log_set_level(getenv("AGENTD_TEST_LOG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERR);
    config_init_defaults(&a->cfg);
    free(a->cfg.qemu_binary);
    a->cfg.qemu_binary = strdup("/nonexistent/qemu-system-x86_64");
    a->accel = VM_ACCEL_TCG;
    a->lock_fd = -1;
    snprintf(a->hostname, sizeof(a->hostname), "fixture");
    snprintf(a->qemu_version_str, sizeof(a->qemu_version_str), "7.2.0");
    a->qemu_version = 70200;
    a->epoch = 1;
    snprintf(a->vms_dir, sizeof(a->vms_dir), "%s/vms", dir);
    snprintf(a->logs_dir, sizeof(a->logs_dir), "%s/logs", dir);
    snprintf(a->run_vms_dir, sizeof(a->run_vms_dir), "%s/run", dir);
    snprintf(a->pools_dir, sizeof(a->pools_dir), "%s/pools", dir);
    if (statefile_mkdir_p(a->vms_dir, 0700) < 0 || statefile_mkdir_p(a->logs_dir, 0700) < 0 ||
        statefile_mkdir_p(a->run_vms_dir, 0700) < 0 || statefile_mkdir_p(a->pools_dir, 0700) < 0)
        return -1;
    a->events = event_log_new(64, to_clients, a);
    return server_new(a, &a->server, err, sizeof(err));
}

void agent_fixture_settle(agent *a)
{
    /* Thread-pool completions and idle-deferred frees arrive on later turns;
     * with no socket and no QEMU nothing else keeps the loop alive. */
    uv_run(a->loop, UV_RUN_DEFAULT);
}

void agent_fixture_free(agent *a)
{
    server_stop(a->server);
    a->server = NULL;
    while (a->vms) {
        vm *v = a->vms;
        a->vms = v->next;
        vm_free(v);
    }
    while (a->pools) {
        pool *p = a->pools;
        a->pools = p->next;
        pool_free(p);
    }
    uv_run(a->loop, UV_RUN_DEFAULT);
    event_log_free(a->events);
    agent_vms_changed(a);
    config_free(&a->cfg);
}
