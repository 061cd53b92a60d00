/* pool.c: storage pool locations, parsed from the strings xCAT keeps in
 * vmstorage and formatted back in one canonical form. The strings come from
 * a database other tools write and end up in mount arguments and paths, so
 * everything outside a narrow grammar is refused rather than repaired:
 * only slashes and "." components are normalised. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "errmsg.h"
#include "storage.h"

#define DEV_PREFIX "/dev/"

/* Refuses control characters anywhere: they have no place in a path or a
 * host name and would garble the messages that quote the input. */
static int check_no_control(const char *s, char *err, size_t errlen)
{
    for (size_t i = 0; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c == 0x7f)
            return img_errmsg(err, errlen, -EINVAL,
                              "pool location has a control character (0x%02x) at offset %zu",
                              c, i);
    }
    return 0;
}

/* Copies the absolute path s into out (outlen bytes) with repeated slashes
 * folded and "." components and trailing slashes dropped. */
static int normalise_path(const char *s, const char *what, char *out, size_t outlen,
                          char *err, size_t errlen)
{
    size_t n = 0;

    if (s[0] != '/')
        return img_errmsg(err, errlen, -EINVAL, "%s is not an absolute path: '%s'", what, s);
    while (*s) {
        size_t clen;

        s += strspn(s, "/");
        clen = strcspn(s, "/");
        if (clen == 0 || (clen == 1 && s[0] == '.')) {
            s += clen;
            continue;
        }
        if (clen == 2 && s[0] == '.' && s[1] == '.')
            return img_errmsg(err, errlen, -EINVAL, "%s has a '..' component", what);
        if (n + 1 + clen + 1 > outlen)
            return img_errmsg(err, errlen, -ENAMETOOLONG, "%s is longer than %zu bytes",
                              what, outlen - 1);
        out[n++] = '/';
        memcpy(out + n, s, clen);
        n += clen;
        s += clen;
    }
    if (n == 0)
        out[n++] = '/';
    out[n] = '\0';
    return 0;
}

/* A host name or IPv4 literal: letters, digits, '.', '-', not starting
 * with '.' or '-' (a leading '-' would read as an option to mount). */
static int check_host_name(const char *h, char *err, size_t errlen)
{
    size_t bad = strspn(h, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-");

    if (h[bad] == ':')
        return img_errmsg(err, errlen, -EINVAL,
                          "NFS server '%s': an IPv6 address must be in brackets", h);
    if (h[bad])
        return img_errmsg(err, errlen, -EINVAL,
                          "NFS server '%s' has a character outside [A-Za-z0-9.-]", h);
    if (h[0] == '.' || h[0] == '-')
        return img_errmsg(err, errlen, -EINVAL, "NFS server '%s' starts with '%c'", h, h[0]);
    return 0;
}

/* Splits "server/export..." (what follows "nfs://") into p->server and
 * p->export_path. */
static int parse_nfs(const char *s, img_pool_spec *p, char *err, size_t errlen)
{
    const char *slash = strchr(s, '/');
    size_t len = slash ? (size_t)(slash - s) : strlen(s);
    bool bracketed = len > 0 && s[0] == '[';
    struct in6_addr a6;
    int r;

    if (!slash)
        return img_errmsg(err, errlen, -EINVAL, "NFS location has no export path");
    if (bracketed) {
        if (s[len - 1] != ']')
            return img_errmsg(err, errlen, -EINVAL,
                              "NFS server '%.*s': a '[' must close with ']' right before "
                              "the export path", (int)len, s);
        s++;
        len -= 2;
    }
    if (len == 0)
        return img_errmsg(err, errlen, -EINVAL, "NFS location has an empty server");
    if (len >= sizeof(p->server))
        return img_errmsg(err, errlen, -ENAMETOOLONG, "NFS server is longer than %zu bytes",
                          sizeof(p->server) - 1);
    memcpy(p->server, s, len);
    p->server[len] = '\0';
    if (bracketed && inet_pton(AF_INET6, p->server, &a6) != 1)
        return img_errmsg(err, errlen, -EINVAL, "NFS server '[%s]' is not an IPv6 address",
                          p->server);
    if (!bracketed && (r = check_host_name(p->server, err, errlen)) < 0)
        return r;
    return normalise_path(slash, "NFS export path", p->export_path, sizeof(p->export_path),
                          err, errlen);
}

static int parse_phy(const char *s, img_pool_spec *p, char *err, size_t errlen)
{
    int r = normalise_path(s, "phy device path", p->path, sizeof(p->path), err, errlen);

    if (r < 0)
        return r;
    if (strncmp(p->path, DEV_PREFIX, strlen(DEV_PREFIX)) != 0)
        return img_errmsg(err, errlen, -EINVAL, "phy device path '%s' is not under /dev/",
                          p->path);
    return 0;
}

/* Dispatches on the scheme: the letters before the first ':' when they
 * come before any '/'. */
static int parse_location(const char *s, img_pool_spec *p, char *err, size_t errlen)
{
    size_t slen = strcspn(s, ":/");

    if (s[slen] != ':') {
        p->kind = IMG_POOL_DIR;
        return normalise_path(s, "dir pool path", p->path, sizeof(p->path), err, errlen);
    }
    if (slen == 3 && strncasecmp(s, "dir://", 6) == 0) {
        p->kind = IMG_POOL_DIR;
        return normalise_path(s + 6, "dir pool path (after dir://)", p->path,
                              sizeof(p->path), err, errlen);
    }
    if (slen == 3 && strncasecmp(s, "phy:", 4) == 0) {
        p->kind = IMG_POOL_PHY;
        return parse_phy(s + 4, p, err, errlen);
    }
    if (slen == 3 && strncasecmp(s, "nfs://", 6) == 0) {
        p->kind = IMG_POOL_NFS;
        return parse_nfs(s + 6, p, err, errlen);
    }
    if (slen == 3 && (strncasecmp(s, "dir:", 4) == 0 || strncasecmp(s, "nfs:", 4) == 0))
        return img_errmsg(err, errlen, -EINVAL, "pool location '%s': '%.3s:' needs '//'", s,
                          s);
    return img_errmsg(err, errlen, -EINVAL, "pool location has an unknown scheme '%.*s'",
                      (int)(slen < 32 ? slen : 32), s);
}

int img_pool_spec_parse(const char *s, img_pool_spec *ret, char *err, size_t errlen)
{
    img_pool_spec p = {0};
    int r;

    if (!s || !*s)
        return img_errmsg(err, errlen, -EINVAL, "pool location is empty");
    r = check_no_control(s, err, errlen);
    if (r < 0)
        return r;
    r = parse_location(s, &p, err, errlen);
    if (r < 0)
        return r;
    *ret = p;
    return 0;
}

int img_pool_spec_format(const img_pool_spec *p, char *buf, size_t len)
{
    bool v6 = strchr(p->server, ':') != NULL;
    int n;

    switch (p->kind) {
    case IMG_POOL_DIR:
        n = snprintf(buf, len, "dir://%s", p->path);
        break;
    case IMG_POOL_PHY:
        n = snprintf(buf, len, "phy:%s", p->path);
        break;
    case IMG_POOL_NFS:
        n = snprintf(buf, len, "nfs://%s%s%s%s", v6 ? "[" : "", p->server, v6 ? "]" : "",
                     p->export_path);
        break;
    default:
        return -EINVAL;
    }
    if (n < 0)
        return -EINVAL;
    if ((size_t)n >= len)
        return -ENOBUFS;
    return n;
}
