/* errmsg.h: the one error message a storage call leaves in its caller's
 * buffer. Internal to storage/. */
#ifndef AGENTD_STORAGE_ERRMSG_H
#define AGENTD_STORAGE_ERRMSG_H

#include <stddef.h>

/* Formats the message into err (if there is one and it has room) and
 * returns r, a negative errno, so that callers can `return img_errmsg(...)`. */
int img_errmsg(char *err, size_t errlen, int r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
