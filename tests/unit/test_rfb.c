/* test_rfb.c: the RFB test client's DES against published known answers, its
 * VNC Authentication response against values computed by other DES
 * implementations, and its handshake against a scripted loopback server. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/support/rfb.h"

#define LOGIN_TIMEOUT_MS 5000
#define SERVER_WAIT_MS 5000

static void hex_to_bytes(const char *hex, uint8_t *out, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

static void assert_des(const char *key_hex, const char *plain_hex, const char *cipher_hex)
{
    uint8_t key[8], plain[8], expected[8], out[8];

    hex_to_bytes(key_hex, key, sizeof(key));
    hex_to_bytes(plain_hex, plain, sizeof(plain));
    hex_to_bytes(cipher_hex, expected, sizeof(expected));
    rfb_des_encrypt_block(key, plain, out);
    assert_memory_equal(out, expected, sizeof(out));
}

/* The worked example of J. Orlin Grabbe, "The DES Algorithm Illustrated". */
static void test_des_matches_the_illustrated_worked_example(void **state)
{
    assert_des("133457799BBCDFF1", "0123456789ABCDEF", "85E813540F0AB405");
}

/* The first entry of the classic test set in Schneier's Applied Cryptography
 * (each vector here was also checked with `openssl enc -des-ecb`). */
static void test_des_encrypts_zeros_under_the_zero_key(void **state)
{
    assert_des("0000000000000000", "0000000000000000", "8CA64DE9C1B123A7");
}

/* "Now is t" under 0123456789ABCDEF, the first block of FIPS 81's ECB example. */
static void test_des_encrypts_now_is_t_as_published(void **state)
{
    assert_des("0123456789ABCDEF", "4E6F772069732074", "3FA40E8A984D4815");
}

/* A widely quoted vector whose ciphertext is all zeros. */
static void test_des_encrypts_a_known_block_to_zeros(void **state)
{
    assert_des("0E329232EA6D0D73", "8787878787878787", "0000000000000000");
}

/* The low bit of each key byte is parity, which DES never reads. */
static void test_des_ignores_the_key_parity_bits(void **state)
{
    assert_des("0101010101010101", "0000000000000000", "8CA64DE9C1B123A7");
}

static const uint8_t s3cret_challenge[16] = {
    0x5a, 0x3c, 0x96, 0xe1, 0x0f, 0x72, 0xc8, 0x4b,
    0x19, 0xd6, 0xa0, 0x37, 0x8e, 0x65, 0xf2, 0x2d,
};

/* Computed outside this code: the key is "s3cret" zero-padded to 8 bytes with
 * each byte's bits mirrored (python3: ceccc64ea62e0000), then
 *   echo 5a3c96e10f72c84b19d6a0378e65f22d | xxd -r -p |
 *     openssl enc -des-ecb -provider legacy -provider default -K ceccc64ea62e0000 -nopad
 * (OpenSSL 3.0.19), which python3-cryptography 48 (TripleDES with K1=K2=K3,
 * ECB) reproduces. Without the mirroring the answer would be
 * b8c4a42ae91852dcd8c10c0dcc31e285. */
static const uint8_t s3cret_response[16] = {
    0x93, 0x37, 0x13, 0xf3, 0x7d, 0x26, 0xf9, 0x36,
    0xcc, 0x70, 0x3f, 0x06, 0x8c, 0x1d, 0x45, 0xbf,
};

static void test_vnc_response_matches_openssl_with_mirrored_key_bytes(void **state)
{
    uint8_t response[16];

    rfb_vnc_response("s3cret", s3cret_challenge, response);
    assert_memory_equal(response, s3cret_response, sizeof(response));
}

/* Expected value obtained as above, with key "password" mirrored
 * (0e86ceceeef64e26) and challenge 00112233445566778899aabbccddeeff. */
static void test_vnc_response_uses_only_the_first_eight_password_characters(void **state)
{
    uint8_t challenge[16], expected[16], longer[16], exact[16];

    hex_to_bytes("00112233445566778899aabbccddeeff", challenge, sizeof(challenge));
    hex_to_bytes("b7b9c87777661a7a2299733209bfdfce", expected, sizeof(expected));
    rfb_vnc_response("password123", challenge, longer);
    rfb_vnc_response("password", challenge, exact);
    assert_memory_equal(longer, expected, sizeof(longer));
    assert_memory_equal(exact, expected, sizeof(exact));
}

/* A loopback server that sends its whole script at once (and then, if told
 * to, hangs up), and records what the client sends until the client closes. */
typedef struct fake_server {
    int listen_fd;
    unsigned port;
    const uint8_t *script;
    size_t script_len;
    bool hang_up;
    uint8_t received[256];
    size_t received_len;
    pthread_t thread;
} fake_server;

static int wait_readable(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };

    return poll(&p, 1, SERVER_WAIT_MS) == 1 ? 0 : -1;
}

static void *fake_server_run(void *opaque)
{
    fake_server *s = opaque;
    int fd;

    if (wait_readable(s->listen_fd) < 0)
        return NULL;
    fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return NULL;
    /* A hang-up is only half a close, so that what the client sends after
     * it meets no reset and the client sees the end of the stream. */
    if (send(fd, s->script, s->script_len, MSG_NOSIGNAL) == (ssize_t)s->script_len) {
        if (s->hang_up)
            shutdown(fd, SHUT_WR);
        while (s->received_len < sizeof(s->received) && wait_readable(fd) == 0) {
            ssize_t n = recv(fd, s->received + s->received_len,
                             sizeof(s->received) - s->received_len, 0);
            if (n <= 0)
                break;
            s->received_len += (size_t)n;
        }
    }
    close(fd);
    return NULL;
}

static int listen_loopback(unsigned *port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void fake_server_start(fake_server *s, const uint8_t *script, size_t len, bool hang_up)
{
    *s = (fake_server){ .script = script, .script_len = len, .hang_up = hang_up };
    s->listen_fd = listen_loopback(&s->port);
    assert_int_equal(pthread_create(&s->thread, NULL, fake_server_run, s), 0);
}

static void fake_server_stop(fake_server *s)
{
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
}

#define SCRIPT(literal) (const uint8_t *)(literal), sizeof(literal) - 1
#define V38 "RFB 003.008\n"
#define OFFER_VNC_AUTH "\x01\x02"
#define CHALLENGE "\x5a\x3c\x96\xe1\x0f\x72\xc8\x4b\x19\xd6\xa0\x37\x8e\x65\xf2\x2d"
#define ACCEPTED "\x00\x00\x00\x00"
/* 640x480, a 32-bit true-colour PIXEL_FORMAT. */
#define SERVER_INIT_FIXED "\x02\x80\x01\xe0" \
    "\x20\x18\x00\x01\x00\xff\x00\xff\x00\xff\x10\x08\x00\x00\x00\x00"

/* A server answer, and what the login must make of it. */
typedef struct handshake_case {
    const char *what;
    const uint8_t *script;
    size_t script_len;
    bool hang_up;      /* the server closes right after its script */
    int timeout_ms;
    int expected;
    const char *reason; /* what reason must hold */
} handshake_case;

static const handshake_case handshake_cases[] = {
    { "a greeting that is not RFB", SCRIPT("HTTP/1.1 200"), false, LOGIN_TIMEOUT_MS, -EPROTO, "" },
    { "a server older than 3.8", SCRIPT("RFB 003.003\n"), false, LOGIN_TIMEOUT_MS, -ENOTSUP, "" },
    { "no security types, and why", SCRIPT(V38 "\x00" "\x00\x00\x00\x08" "too many"), false,
      LOGIN_TIMEOUT_MS, -ECONNREFUSED, "too many" },
    { "a reason longer than any server sends", SCRIPT(V38 "\x00" "\x00\x01\x00\x00"), false,
      LOGIN_TIMEOUT_MS, -EPROTO, "" },
    { "only the None security type", SCRIPT(V38 "\x01\x01"), false, LOGIN_TIMEOUT_MS, -ENOTSUP, "" },
    { "a hang-up before the challenge", SCRIPT(V38 OFFER_VNC_AUTH), true, LOGIN_TIMEOUT_MS,
      -ECONNRESET, "" },
    { "silence after the security types", SCRIPT(V38 OFFER_VNC_AUTH), false, 300, -ETIMEDOUT, "" },
    { "the password refused, and why",
      SCRIPT(V38 OFFER_VNC_AUTH CHALLENGE "\x00\x00\x00\x01" "\x00\x00\x00\x15" "Authentication failed"),
      false, LOGIN_TIMEOUT_MS, 1, "Authentication failed" },
    { "a desktop name longer than any server sends",
      SCRIPT(V38 OFFER_VNC_AUTH CHALLENGE ACCEPTED SERVER_INIT_FIXED "\x00\x10\x00\x00"), false,
      LOGIN_TIMEOUT_MS, -EPROTO, "" },
};

static void test_login_reports_each_broken_or_refusing_server_answer(void **state)
{
    for (size_t i = 0; i < sizeof(handshake_cases) / sizeof(handshake_cases[0]); i++) {
        const handshake_case *c = &handshake_cases[i];
        char reason[64] = "untouched";
        fake_server s;

        fake_server_start(&s, c->script, c->script_len, c->hang_up);
        int r = rfb_vnc_login("127.0.0.1", s.port, "s3cret", c->timeout_ms, reason, sizeof(reason));
        fake_server_stop(&s);
        if (r != c->expected || strcmp(reason, c->reason) != 0)
            print_message("%s: got %d \"%s\", want %d \"%s\"\n", c->what, r, reason, c->expected,
                          c->reason);
        assert_int_equal(r, c->expected);
        assert_string_equal(reason, c->reason);
    }
}

static void test_login_sends_version_choice_response_and_shared_flag(void **state)
{
    static const uint8_t script[] = V38 OFFER_VNC_AUTH CHALLENGE ACCEPTED SERVER_INIT_FIXED
        "\x00\x00\x00\x04" "QEMU";
    uint8_t expected[12 + 1 + 16 + 1];
    fake_server s;

    memcpy(expected, "RFB 003.008\n", 12);
    expected[12] = 2;
    memcpy(expected + 13, s3cret_response, 16);
    expected[29] = 1;
    fake_server_start(&s, script, sizeof(script) - 1, false);
    int r = rfb_vnc_login("127.0.0.1", s.port, "s3cret", LOGIN_TIMEOUT_MS, NULL, 0);
    fake_server_stop(&s);
    assert_int_equal(r, 0);
    assert_int_equal(s.received_len, sizeof(expected));
    assert_memory_equal(s.received, expected, sizeof(expected));
}

static void test_login_to_a_closed_port_is_refused(void **state)
{
    unsigned port;
    int fd = listen_loopback(&port);

    close(fd);
    assert_int_equal(rfb_vnc_login("127.0.0.1", port, "s3cret", LOGIN_TIMEOUT_MS, NULL, 0),
                     -ECONNREFUSED);
}

/* A name lookup could block past the deadline, so names are not accepted. */
static void test_login_takes_only_numeric_addresses(void **state)
{
    assert_int_equal(rfb_vnc_login("localhost", 5900, "s3cret", LOGIN_TIMEOUT_MS, NULL, 0), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_des_matches_the_illustrated_worked_example),
        cmocka_unit_test(test_des_encrypts_zeros_under_the_zero_key),
        cmocka_unit_test(test_des_encrypts_now_is_t_as_published),
        cmocka_unit_test(test_des_encrypts_a_known_block_to_zeros),
        cmocka_unit_test(test_des_ignores_the_key_parity_bits),
        cmocka_unit_test(test_vnc_response_matches_openssl_with_mirrored_key_bytes),
        cmocka_unit_test(test_vnc_response_uses_only_the_first_eight_password_characters),
        cmocka_unit_test(test_login_reports_each_broken_or_refusing_server_answer),
        cmocka_unit_test(test_login_sends_version_choice_response_and_shared_flag),
        cmocka_unit_test(test_login_to_a_closed_port_is_refused),
        cmocka_unit_test(test_login_takes_only_numeric_addresses),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
