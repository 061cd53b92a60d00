/* rfb.h: just enough of an RFB (VNC) client for the end-to-end tests to tell
 * whether a VNC password opens a session on QEMU: single DES (FIPS 46-3), the
 * VNC Authentication response (RFC 6143 section 7.2.2), and a login that goes
 * as far as the ServerInit message of RFB 3.8. */
#ifndef AGENTD_TESTS_SUPPORT_RFB_H
#define AGENTD_TESTS_SUPPORT_RFB_H

#include <stddef.h>
#include <stdint.h>

/* Encrypts one 64-bit block with DES; the key's parity bits are ignored. */
void rfb_des_encrypt_block(const uint8_t key[8], const uint8_t in[8], uint8_t out[8]);

/* The answer to a VNC Authentication challenge: the password (truncated or
 * zero-padded to 8 bytes, each byte's bits mirrored) is the DES key that
 * encrypts the two halves of the challenge. */
void rfb_vnc_response(const char *password, const uint8_t challenge[16], uint8_t response[16]);

/* Logs in to the RFB server at host (a numeric IPv4 or IPv6 address) and port
 * with VNC Authentication, within timeout_ms in all, and reads the ServerInit
 * message. Returns 0 when the session opened, 1 when the server refused the
 * password, or a negative errno: -ETIMEDOUT, -ECONNREFUSED (also when the server
 * refuses before authentication), -ECONNRESET (it closed mid-handshake),
 * -EPROTO (a malformed answer), -ENOTSUP (no VNC Authentication, or a protocol
 * older than 3.8). Any reason string the server sends goes into reason, which
 * is "" otherwise; reason may be NULL. */
int rfb_vnc_login(const char *host, unsigned port, const char *password, int timeout_ms,
                  char *reason, size_t reason_len);

#endif
