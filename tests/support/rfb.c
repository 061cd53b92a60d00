/* rfb.c: see rfb.h. DES follows FIPS 46-3, whose tables number bits from 1
 * at the most significant end, so blocks are held in integers the same way
 * round; the handshake follows RFC 6143 for protocol version 3.8. */
#include "rfb.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/deadline.h"

#define DES_ROUNDS 16
#define MASK28 0x0fffffffu

#define RFB_VERSION_LEN 12
#define RFB_CHALLENGE_LEN 16
#define RFB_SECURITY_VNC_AUTH 2
#define RFB_CLIENT_INIT_SHARED 1
/* width, height (u16 each) and the 16-byte PIXEL_FORMAT before the name. */
#define RFB_SERVER_INIT_FIXED_LEN 20
/* Reason strings and desktop names are lengths read off the wire; nothing a
 * test server says needs more, so anything longer is a broken server. */
#define RFB_TEXT_MAX 4096

/* Initial permutation IP. */
static const uint8_t des_ip[64] = {
    58, 50, 42, 34, 26, 18, 10, 2,
    60, 52, 44, 36, 28, 20, 12, 4,
    62, 54, 46, 38, 30, 22, 14, 6,
    64, 56, 48, 40, 32, 24, 16, 8,
    57, 49, 41, 33, 25, 17,  9, 1,
    59, 51, 43, 35, 27, 19, 11, 3,
    61, 53, 45, 37, 29, 21, 13, 5,
    63, 55, 47, 39, 31, 23, 15, 7,
};

/* Final permutation, the inverse of IP. */
static const uint8_t des_fp[64] = {
    40, 8, 48, 16, 56, 24, 64, 32,
    39, 7, 47, 15, 55, 23, 63, 31,
    38, 6, 46, 14, 54, 22, 62, 30,
    37, 5, 45, 13, 53, 21, 61, 29,
    36, 4, 44, 12, 52, 20, 60, 28,
    35, 3, 43, 11, 51, 19, 59, 27,
    34, 2, 42, 10, 50, 18, 58, 26,
    33, 1, 41,  9, 49, 17, 57, 25,
};

/* Expansion E: the 32-bit half block to 48 bits. */
static const uint8_t des_e[48] = {
    32,  1,  2,  3,  4,  5,
     4,  5,  6,  7,  8,  9,
     8,  9, 10, 11, 12, 13,
    12, 13, 14, 15, 16, 17,
    16, 17, 18, 19, 20, 21,
    20, 21, 22, 23, 24, 25,
    24, 25, 26, 27, 28, 29,
    28, 29, 30, 31, 32,  1,
};

/* Permutation P of the S-box outputs. */
static const uint8_t des_p[32] = {
    16,  7, 20, 21,
    29, 12, 28, 17,
     1, 15, 23, 26,
     5, 18, 31, 10,
     2,  8, 24, 14,
    32, 27,  3,  9,
    19, 13, 30,  6,
    22, 11,  4, 25,
};

/* Permuted choice 1: the 56 key bits that matter, as C (28) then D (28). */
static const uint8_t des_pc1[56] = {
    57, 49, 41, 33, 25, 17,  9,
     1, 58, 50, 42, 34, 26, 18,
    10,  2, 59, 51, 43, 35, 27,
    19, 11,  3, 60, 52, 44, 36,
    63, 55, 47, 39, 31, 23, 15,
     7, 62, 54, 46, 38, 30, 22,
    14,  6, 61, 53, 45, 37, 29,
    21, 13,  5, 28, 20, 12,  4,
};

/* Permuted choice 2: a round's 48-bit key from C and D. */
static const uint8_t des_pc2[48] = {
    14, 17, 11, 24,  1,  5,
     3, 28, 15,  6, 21, 10,
    23, 19, 12,  4, 26,  8,
    16,  7, 27, 20, 13,  2,
    41, 52, 31, 37, 47, 55,
    30, 40, 51, 45, 33, 48,
    44, 49, 39, 56, 34, 53,
    46, 42, 50, 36, 29, 32,
};

/* How far C and D rotate left before each round. */
static const uint8_t des_shifts[DES_ROUNDS] = { 1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1 };

/* S1..S8, each indexed by row (outer bits) and column (inner four bits). */
static const uint8_t des_sbox[8][4][16] = {
    {
        { 14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7 },
        { 0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8 },
        { 4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0 },
        { 15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13 },
    },
    {
        { 15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10 },
        { 3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5 },
        { 0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15 },
        { 13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9 },
    },
    {
        { 10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8 },
        { 13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1 },
        { 13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7 },
        { 1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12 },
    },
    {
        { 7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15 },
        { 13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9 },
        { 10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4 },
        { 3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14 },
    },
    {
        { 2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9 },
        { 14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6 },
        { 4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14 },
        { 11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3 },
    },
    {
        { 12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11 },
        { 10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8 },
        { 9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6 },
        { 4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13 },
    },
    {
        { 4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1 },
        { 13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6 },
        { 1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2 },
        { 6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12 },
    },
    {
        { 13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7 },
        { 1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2 },
        { 7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8 },
        { 2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11 },
    },
};

static uint64_t load_be64(const uint8_t b[8])
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = (v << 8) | b[i];
    return v;
}

static void store_be64(uint8_t b[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        b[i] = (uint8_t)v;
        v >>= 8;
    }
}

/* Output bit i (from the top) is input bit table[i] of an in_bits-wide value,
 * counting from 1 at the top as the standard does. */
static uint64_t permute(uint64_t in, unsigned in_bits, const uint8_t *table, size_t n)
{
    uint64_t out = 0;

    for (size_t i = 0; i < n; i++)
        out = (out << 1) | ((in >> (in_bits - table[i])) & 1);
    return out;
}

static uint32_t rotl28(uint32_t v, unsigned n)
{
    return ((v << n) | (v >> (28 - n))) & MASK28;
}

static void des_key_schedule(const uint8_t key[8], uint64_t subkeys[DES_ROUNDS])
{
    uint64_t cd = permute(load_be64(key), 64, des_pc1, sizeof(des_pc1));
    uint32_t c = (uint32_t)(cd >> 28);
    uint32_t d = (uint32_t)cd & MASK28;

    for (int i = 0; i < DES_ROUNDS; i++) {
        c = rotl28(c, des_shifts[i]);
        d = rotl28(d, des_shifts[i]);
        subkeys[i] = permute(((uint64_t)c << 28) | d, 56, des_pc2, sizeof(des_pc2));
    }
}

/* Eight 6-bit groups in, eight 4-bit groups out; a group's first and last
 * bits pick the row, the middle four the column. */
static uint32_t des_substitute(uint64_t x)
{
    uint32_t out = 0;

    for (int i = 0; i < 8; i++) {
        unsigned six = (unsigned)(x >> (42 - 6 * i)) & 0x3f;
        unsigned row = ((six >> 4) & 2) | (six & 1);
        unsigned col = (six >> 1) & 0xf;
        out = (out << 4) | des_sbox[i][row][col];
    }
    return out;
}

/* The cipher function f(R, K). */
static uint32_t des_f(uint32_t r, uint64_t subkey)
{
    uint64_t expanded = permute(r, 32, des_e, sizeof(des_e));

    return (uint32_t)permute(des_substitute(expanded ^ subkey), 32, des_p, sizeof(des_p));
}

void rfb_des_encrypt_block(const uint8_t key[8], const uint8_t in[8], uint8_t out[8])
{
    uint64_t subkeys[DES_ROUNDS];
    uint64_t block;
    uint32_t l, r;

    des_key_schedule(key, subkeys);
    block = permute(load_be64(in), 64, des_ip, sizeof(des_ip));
    l = (uint32_t)(block >> 32);
    r = (uint32_t)block;
    for (int i = 0; i < DES_ROUNDS; i++) {
        uint32_t next = l ^ des_f(r, subkeys[i]);
        l = r;
        r = next;
    }
    /* The halves are not swapped after the last round: the preoutput is R16 L16. */
    store_be64(out, permute(((uint64_t)r << 32) | l, 64, des_fp, sizeof(des_fp)));
}

static uint8_t mirror_bits(uint8_t b)
{
    uint8_t m = 0;

    for (int i = 0; i < 8; i++) {
        m = (uint8_t)((m << 1) | (b & 1));
        b >>= 1;
    }
    return m;
}

void rfb_vnc_response(const char *password, const uint8_t challenge[16], uint8_t response[16])
{
    uint8_t key[8] = { 0 };
    size_t len = password ? strnlen(password, sizeof(key)) : 0;

    /* VNC's reference implementation fed DES its key bytes least significant
     * bit first, and every server since expects the same. */
    for (size_t i = 0; i < len; i++)
        key[i] = mirror_bits((uint8_t)password[i]);
    rfb_des_encrypt_block(key, challenge, response);
    rfb_des_encrypt_block(key, challenge + 8, response + 8);
}

/* One login's socket and the deadline every wait on it shares. */
typedef struct rfb_conn {
    int fd;
    int64_t deadline_ms;
} rfb_conn;

/* Waits until fd is ready for events, or the deadline passes. */
static int wait_fd(int fd, short events, int64_t deadline_ms)
{
    struct pollfd p = { .fd = fd, .events = events };

    for (;;) {
        int r = poll(&p, 1, remaining_ms(deadline_ms));
        if (r > 0)
            return 0;
        if (r == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

static int read_exact(const rfb_conn *c, void *buf, size_t len)
{
    uint8_t *p = buf;
    size_t done = 0;

    while (done < len) {
        int r = wait_fd(c->fd, POLLIN, c->deadline_ms);
        if (r < 0)
            return r;
        ssize_t n = recv(c->fd, p + done, len - done, MSG_DONTWAIT);
        if (n == 0)
            return -ECONNRESET;
        if (n < 0 && errno != EINTR && errno != EAGAIN)
            return -errno;
        if (n > 0)
            done += (size_t)n;
    }
    return 0;
}

static int write_all(const rfb_conn *c, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    size_t done = 0;

    while (done < len) {
        int r = wait_fd(c->fd, POLLOUT, c->deadline_ms);
        if (r < 0)
            return r;
        ssize_t n = send(c->fd, p + done, len - done, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno != EINTR && errno != EAGAIN)
            return -errno;
        if (n > 0)
            done += (size_t)n;
    }
    return 0;
}

static int read_u32(const rfb_conn *c, uint32_t *ret)
{
    uint8_t b[4];
    int r = read_exact(c, b, sizeof(b));

    if (r < 0)
        return r;
    *ret = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    return 0;
}

static int write_u8(const rfb_conn *c, uint8_t v)
{
    return write_all(c, &v, 1);
}

/* Waits out a non-blocking connect and returns its outcome. */
static int finish_connect(int fd, int64_t deadline_ms)
{
    int err = 0;
    socklen_t err_len = sizeof(err);
    int r = wait_fd(fd, POLLOUT, deadline_ms);

    if (r < 0)
        return r;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len) < 0)
        return -errno;
    return -err;
}

/* Returns the connected socket, or a negative errno. */
static int connect_addr(const struct addrinfo *ai, int64_t deadline_ms)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    int r = 0;

    if (fd < 0)
        return -errno;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
        r = errno == EINPROGRESS ? finish_connect(fd, deadline_ms) : -errno;
    if (r < 0) {
        close(fd);
        return r;
    }
    return fd;
}

/* Only numeric addresses: a name lookup would block with no deadline. */
static int rfb_connect(const char *host, unsigned port, int64_t deadline_ms)
{
    const struct addrinfo hints = {
        .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
        .ai_socktype = SOCK_STREAM,
    };
    struct addrinfo *list;
    char service[8];
    int fd = -EINVAL;

    if (!host || port > 65535)
        return -EINVAL;
    snprintf(service, sizeof(service), "%u", port);
    if (getaddrinfo(host, service, &hints, &list) != 0)
        return -EINVAL;
    for (const struct addrinfo *ai = list; ai; ai = ai->ai_next) {
        fd = connect_addr(ai, deadline_ms);
        if (fd >= 0 || fd == -ETIMEDOUT)
            break;
    }
    freeaddrinfo(list);
    return fd;
}

/* The value of three decimal digits, or -1. */
static int parse_3digits(const char *s)
{
    int v = 0;

    for (int i = 0; i < 3; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* The server's "RFB xxx.yyy\n" is the highest version it speaks; we answer
 * 3.8, whose security handshake is the only one this client knows. */
static int exchange_version(const rfb_conn *c)
{
    static const char ours[RFB_VERSION_LEN + 1] = "RFB 003.008\n";
    char v[RFB_VERSION_LEN];
    int major, minor;
    int r = read_exact(c, v, sizeof(v));

    if (r < 0)
        return r;
    if (memcmp(v, "RFB ", 4) != 0 || v[7] != '.' || v[11] != '\n')
        return -EPROTO;
    major = parse_3digits(v + 4);
    minor = parse_3digits(v + 8);
    if (major < 0 || minor < 0)
        return -EPROTO;
    if (major < 3 || (major == 3 && minor < 8))
        return -ENOTSUP;
    return write_all(c, ours, RFB_VERSION_LEN);
}

static void copy_reason(char *reason, size_t reason_len, const char *text, size_t len)
{
    if (!reason || reason_len == 0)
        return;
    if (len > reason_len - 1)
        len = reason_len - 1;
    memcpy(reason, text, len);
    reason[len] = '\0';
}

/* A u32 length and that much text; it is read whole even when reason is too
 * small for it. */
static int read_reason(const rfb_conn *c, char *reason, size_t reason_len)
{
    char text[RFB_TEXT_MAX];
    uint32_t len;
    int r = read_u32(c, &len);

    if (r < 0)
        return r;
    if (len > sizeof(text))
        return -EPROTO;
    r = read_exact(c, text, len);
    if (r < 0)
        return r;
    copy_reason(reason, reason_len, text, len);
    return 0;
}

/* An empty list of security types means the server refuses this connection
 * before any authentication, and says why. */
static int choose_vnc_auth(const rfb_conn *c, char *reason, size_t reason_len)
{
    uint8_t types[UINT8_MAX];
    uint8_t count;
    int r = read_exact(c, &count, 1);

    if (r < 0)
        return r;
    if (count == 0) {
        r = read_reason(c, reason, reason_len);
        return r < 0 ? r : -ECONNREFUSED;
    }
    r = read_exact(c, types, count);
    if (r < 0)
        return r;
    if (!memchr(types, RFB_SECURITY_VNC_AUTH, count))
        return -ENOTSUP;
    return write_u8(c, RFB_SECURITY_VNC_AUTH);
}

static int answer_challenge(const rfb_conn *c, const char *password)
{
    uint8_t challenge[RFB_CHALLENGE_LEN];
    uint8_t response[RFB_CHALLENGE_LEN];
    int r = read_exact(c, challenge, sizeof(challenge));

    if (r < 0)
        return r;
    rfb_vnc_response(password, challenge, response);
    return write_all(c, response, sizeof(response));
}

/* 0 when the password was accepted, 1 when refused (3.8 then says why). */
static int read_security_result(const rfb_conn *c, char *reason, size_t reason_len)
{
    uint32_t result;
    int r = read_u32(c, &result);

    if (r < 0)
        return r;
    if (result == 0)
        return 0;
    r = read_reason(c, reason, reason_len);
    return r < 0 ? r : 1;
}

/* ClientInit, then the ServerInit that only an open session sends. */
static int open_session(const rfb_conn *c)
{
    uint8_t fixed[RFB_SERVER_INIT_FIXED_LEN];
    char name[RFB_TEXT_MAX];
    uint32_t name_len;
    int r = write_u8(c, RFB_CLIENT_INIT_SHARED);

    if (r < 0)
        return r;
    r = read_exact(c, fixed, sizeof(fixed));
    if (r < 0)
        return r;
    r = read_u32(c, &name_len);
    if (r < 0)
        return r;
    if (name_len > sizeof(name))
        return -EPROTO;
    return read_exact(c, name, name_len);
}

static int login(const rfb_conn *c, const char *password, char *reason, size_t reason_len)
{
    int r = exchange_version(c);

    if (r < 0)
        return r;
    r = choose_vnc_auth(c, reason, reason_len);
    if (r < 0)
        return r;
    r = answer_challenge(c, password);
    if (r < 0)
        return r;
    r = read_security_result(c, reason, reason_len);
    if (r != 0)
        return r;
    return open_session(c);
}

int rfb_vnc_login(const char *host, unsigned port, const char *password, int timeout_ms,
                  char *reason, size_t reason_len)
{
    rfb_conn c = { .deadline_ms = now_ms() + (timeout_ms > 0 ? timeout_ms : 0) };
    int r;

    copy_reason(reason, reason_len, "", 0);
    c.fd = rfb_connect(host, port, c.deadline_ms);
    if (c.fd < 0)
        return c.fd;
    r = login(&c, password, reason, reason_len);
    close(c.fd);
    return r;
}
