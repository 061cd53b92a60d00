/* log.h: the daemon's log, on stderr in a form journald understands.
 *
 * Each line starts with a syslog priority in angle brackets ("<6>"), which
 * journald turns into the entry's priority; outside journald the prefix is
 * still readable. Secrets (VNC passwords, keys) are never passed here. */
#ifndef AGENTD_LOG_H
#define AGENTD_LOG_H

typedef enum log_level {
    LOG_LEVEL_ERR = 3,
    LOG_LEVEL_WARNING = 4,
    LOG_LEVEL_NOTICE = 5,
    LOG_LEVEL_INFO = 6,
    LOG_LEVEL_DEBUG = 7,
} log_level;

void log_set_level(log_level max);
int log_parse_level(const char *s, log_level *ret);
void log_msg(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_LEVEL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
