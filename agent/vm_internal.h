/* vm_internal.h: what vm.c, vm_run.c and vm_jobs.c share. Not for callers
 * outside the VM runtime. */
#ifndef AGENTD_VM_INTERNAL_H
#define AGENTD_VM_INTERNAL_H

#include "vm.h"

#include <stdarg.h>

#include "qmp/qmp.h"

/* Moves the state machine and emits VM_STATE (extra members may be NULL; taken). */
void vm_set_state(vm *v, vm_state state, const char *reason, struct json_object *extra);
/* Ends the job and reports its result. */
void vm_job_finish_ok(vm *v, struct json_object *ret);
void vm_job_finish_error(vm *v, const char *err_class, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void vm_refuse(vm_result *res, const char *err_class, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A QMP command with the agent's timeout; a timeout marks the VM unresponsive
 * and a later answer marks it responsive again. */
int vm_qmp(vm *v, const char *command, struct json_object *args, qmp_reply_cb cb, void *opaque);
/* The same, passing fd (borrowed) with the command (getfd). */
int vm_qmp_fd(vm *v, const char *command, struct json_object *args, int fd, qmp_reply_cb cb, void *opaque);
void vm_mark_responsive(vm *v, bool responsive);

/* Starts a job timer (one per VM). */
void vm_job_timer_start(vm *v, uint64_t ms, void (*fire)(vm *v));
void vm_job_timer_stop(vm *v);

/* Sends SIGTERM or SIGKILL through the pidfd. */
void vm_signal(vm *v, int sig);
/* Starts the stop ladder: quit, SIGTERM, SIGKILL. */
void vm_stop_process(vm *v);

/* vm_run.c */
void vm_connect_qmp(vm *v, uint32_t timeout_ms);
void vm_close_qmp(vm *v);
void vm_write_runtime(vm *v);
/* Launches QEMU for the VM's job (a start, or an incoming migration). */
int vm_launch(vm *v, char *err, size_t errlen);

#endif
