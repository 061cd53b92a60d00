/* fake_qmp.h: a scripted QMP server for unit tests.
 *
 * The server runs a script function on its own thread with a blocking socket,
 * so a test can make it misbehave precisely (split frames, stay silent, hang
 * up mid-reply) while the client under test runs on the test's libuv loop. */
#ifndef AGENTD_TEST_FAKE_QMP_H
#define AGENTD_TEST_FAKE_QMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fake_conn fake_conn;
typedef void (*fake_script)(fake_conn *conn, void *arg);

typedef struct fake_qmp fake_qmp;

/* Listens on path after listen_delay_ms, accepts one client, runs script. */
fake_qmp *fake_qmp_start(const char *path, int listen_delay_ms, fake_script script, void *arg);
/* Waits for the script to end (it must end by itself) and frees the server. */
void fake_qmp_stop(fake_qmp *s);

int fake_send(fake_conn *c, const char *text);
int fake_send_bytes(fake_conn *c, const void *data, size_t n);
/* Reads one line (without its '\n'); -ETIMEDOUT or -ECONNRESET. */
int fake_read_line(fake_conn *c, char *buf, size_t len, int timeout_ms);
/* Like fake_read_line, also returning a descriptor that came with it, or -1. */
int fake_read_line_fd(fake_conn *c, char *buf, size_t len, int timeout_ms, int *ret_fd);
/* The "id" of a command line, or 0. */
uint64_t fake_id_of(const char *line);
/* The "execute" name of a command line, copied into buf. */
void fake_command_of(const char *line, char *buf, size_t len);
/* Sends the greeting, expects qmp_capabilities, answers it. */
int fake_greet(fake_conn *c, bool offer_oob, char *caps_line, size_t len);
void fake_hangup(fake_conn *c);
/* Waits until the client closes its end; -ETIMEDOUT otherwise. */
int fake_wait_hangup(fake_conn *c, int timeout_ms);

#endif
