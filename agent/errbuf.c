/* errbuf.c: see errbuf.h. */
#include "errbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

__attribute__((format(printf, 3, 0))) static void format_into(char *buf, size_t len, const char *fmt, va_list ap)
{
    if (buf && len > 0)
        vsnprintf(buf, len, fmt, ap);
}

int errbuf_fail(errbuf *e, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    format_into(e->buf, e->len, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

int err_format(char *err, size_t errlen, int r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    format_into(err, errlen, fmt, ap);
    va_end(ap);
    return r;
}
