/* errbuf.h: a caller's message buffer that validation code writes its one
 * error message into ("memory: must be ..."). */
#ifndef AGENTD_ERRBUF_H
#define AGENTD_ERRBUF_H

#include <stddef.h>

typedef struct errbuf {
    char *buf;
    size_t len;
} errbuf;

/* Formats the message into e (if it has room) and returns -EINVAL. */
int errbuf_fail(errbuf *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The same for a plain buffer (err may be NULL); returns r. */
int err_format(char *err, size_t errlen, int r, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
