/* agent_fixture.h: an in-process agent (no socket, no QEMU) for unit tests
 * and fuzz targets that drive the protocol through virtual clients. */
#ifndef AGENTD_TESTS_AGENT_FIXTURE_H
#define AGENTD_TESTS_AGENT_FIXTURE_H

#include "agent/agent.h"

/* Fills a for a temp directory dir (created); QEMU is a binary that does not
 * exist, so a start fails at once instead of launching anything. */
int agent_fixture_init(agent *a, uv_loop_t *loop, const char *dir);
/* Runs the loop until thread-pool work and deferred frees are done. */
void agent_fixture_settle(agent *a);
void agent_fixture_free(agent *a);

#endif
