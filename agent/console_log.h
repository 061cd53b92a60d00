/* console_log.h: each VM's console log (QEMU writes it, appending) kept
 * under console-log-max-kib: checked every few seconds on the thread pool;
 * one that grew past the limit is copied to NAME.console.log.1 (replacing
 * the older copy, atomically) and emptied. QEMU appends with O_APPEND, so
 * it carries on at the new end. What the guest prints between the copy and
 * the cut (microseconds) is lost. */
#ifndef AGENTD_CONSOLE_LOG_H
#define AGENTD_CONSOLE_LOG_H

typedef struct agent agent;

/* Starts the periodic check (nothing when the limit is 0). */
int console_log_start(agent *a);
void console_log_stop(agent *a);

#endif
