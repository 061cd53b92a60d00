/* fuzz_agent_request.c: libFuzzer target for the control protocol: request
 * framing and parsing, negotiation, permission checks, and every command's
 * argument validation, through a virtual client of an in-process agent.
 *
 * QEMU is a binary that does not exist, so nothing is ever launched. The
 * first byte picks an admin or a read-only client and whether it negotiated;
 * the agent persists across inputs, so definitions made by one input meet the
 * commands of later ones. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "agent/server.h"
#include "tests/support/agent_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uv_loop_t loop;
static agent a;
static bool ready;

static void discard(const char *line, size_t len, void *opaque)
{
}

static void init_once(void)
{
    static char dir[] = "/tmp/fuzz-agent-XXXXXX";

    if (ready)
        return;
    if (!mkdtemp(dir) || uv_loop_init(&loop) < 0 || agent_fixture_init(&a, &loop, dir) < 0)
        abort();
    ready = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char caps[] = "{\"execute\": \"qmp_capabilities\"}\n";
    client *c;

    init_once();
    if (size < 1)
        return 0;
    c = server_connect_virtual(a.server, data[0] & 1, discard, NULL);
    if (data[0] & 2)
        server_client_feed(c, caps, sizeof(caps) - 1);
    server_client_feed(c, (const char *)data + 1, size - 1);
    server_client_feed(c, "\n", 1);
    /* Closed before the loop turns, so the client is still ours to close
     * even when the server already closed it (an overlong line). */
    server_client_close(c);
    agent_fixture_settle(&a);
    return 0;
}
