/* errmsg.c: see errmsg.h. */
#include "errmsg.h"

#include <stdarg.h>
#include <stdio.h>

int img_errmsg(char *err, size_t errlen, int r, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return r;
}
