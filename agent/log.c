/* log.c: priority-prefixed lines on stderr, one write per line so lines from
 * a crash or a concurrent writer never interleave mid-line. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static log_level max_level = LOG_LEVEL_INFO;

void log_set_level(log_level max)
{
    max_level = max;
}

int log_parse_level(const char *s, log_level *ret)
{
    static const struct { const char *name; log_level level; } names[] = {
        { "err", LOG_LEVEL_ERR },       { "error", LOG_LEVEL_ERR },
        { "warning", LOG_LEVEL_WARNING }, { "warn", LOG_LEVEL_WARNING },
        { "notice", LOG_LEVEL_NOTICE }, { "info", LOG_LEVEL_INFO },
        { "debug", LOG_LEVEL_DEBUG },
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i].name) == 0) {
            *ret = names[i].level;
            return 0;
        }
    }
    return -1;
}

void log_msg(log_level level, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    int n;

    if (level > max_level)
        return;
    n = snprintf(line, sizeof(line), "<%d>", (int)level);
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof(line) - 1)
        n = (int)sizeof(line) - 2;
    /* Newlines inside a message would forge new entries with their own prefix. */
    for (char *p = line; p < line + n; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    line[n++] = '\n';
    (void)!write(STDERR_FILENO, line, (size_t)n);
}
