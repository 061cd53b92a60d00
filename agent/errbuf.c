/* errbuf.c: see errbuf.h. */
#include "errbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

int errbuf_fail(errbuf *e, const char *fmt, ...)
{
    va_list ap;

    if (e->buf && e->len > 0) {
        va_start(ap, fmt);
        vsnprintf(e->buf, e->len, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}
