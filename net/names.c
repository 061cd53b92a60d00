/* names.c: interface names and MAC addresses, checked before they are used. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "net.h"
#include "net_internal.h"

int net_errmsg(char *err, size_t errlen, int r, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return r;
}

/* As the kernel's dev_valid_name. */
const char *net_ifname_problem(const char *name)
{
    size_t n;

    if (!name || !*name)
        return "must not be empty";
    if ((n = strnlen(name, IFNAMSIZ)) >= IFNAMSIZ)
        return "must be at most 15 characters";
    if (!strcmp(name, ".") || !strcmp(name, ".."))
        return "must not be '.' or '..'";
    for (size_t i = 0; i < n; i++)
        if (name[i] == '/' || name[i] == ':' || isspace((unsigned char)name[i]) || !isprint((unsigned char)name[i]))
            return "must not contain '/', ':', white space or control characters";
    return NULL;
}

static int hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int net_mac_parse(const char *s, uint8_t mac[NET_MAC_LEN])
{
    uint8_t m[NET_MAC_LEN];

    if (!s || strlen(s) != NET_MAC_TEXT - 1)
        return -EINVAL;
    for (int i = 0; i < NET_MAC_LEN; i++) {
        const char *p = s + 3 * i;
        int hi = hex(p[0]), lo = hex(p[1]);
        if (hi < 0 || lo < 0 || (i < NET_MAC_LEN - 1 && p[2] != ':' && p[2] != '-'))
            return -EINVAL;
        if (i > 0 && p[-1] != s[2])
            return -EINVAL;      /* one separator throughout */
        m[i] = (uint8_t)(hi << 4 | lo);
    }
    if (m[0] & 1)
        return -EINVAL;          /* multicast */
    memcpy(mac, m, NET_MAC_LEN);
    return 0;
}

void net_mac_format(const uint8_t mac[NET_MAC_LEN], char out[NET_MAC_TEXT])
{
    snprintf(out, NET_MAC_TEXT, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
             mac[5]);
}

int net_mac_generate(uint8_t mac[NET_MAC_LEN])
{
    uint8_t r[3];

    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return -errno;
    mac[0] = 0x52;
    mac[1] = 0x54;
    mac[2] = 0x00;
    memcpy(mac + 3, r, sizeof(r));
    return 0;
}
