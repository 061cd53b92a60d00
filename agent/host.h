/* host.h: facts about the host the agent learns once at start. */
#ifndef AGENTD_HOST_H
#define AGENTD_HOST_H

#include <stdbool.h>
#include <stddef.h>

/* Runs "BINARY -version" (bounded by timeout_ms) and parses "version X.Y.Z".
 * Returns major*10000+minor*100+micro, or -errno. */
int host_probe_qemu(const char *binary, int timeout_ms, char *ret_str, size_t len);
/* Runs argv (blocking: off the loop) with stdin from /dev/null, its stdout
 * and stderr together into out (NUL-terminated, truncated to outlen), for at
 * most timeout_ms; its wait status in ret_status. -ETIMEDOUT (it is killed)
 * or -errno when it cannot run. */
int host_run(char *const argv[], int timeout_ms, char *out, size_t outlen, int *ret_status);
/* Whether /dev/kvm can be opened for use. */
bool host_kvm_usable(void);

#endif
