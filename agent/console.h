/* console.h: a VM's serial console through control connections
 * (console-attach: xCAT's rcons, virsh console).
 *
 * While any client is attached the agent holds the one connection QEMU's
 * serial socket takes; what the guest prints goes to every attached
 * client, what the writer sends goes to the guest. One writer at a time;
 * more clients may watch read-only. The last client to leave closes the
 * agent's connection, so the socket is free again. */
#ifndef AGENTD_CONSOLE_H
#define AGENTD_CONSOLE_H

#include <stdbool.h>

typedef struct vm vm;
typedef struct request request;
typedef struct vm_console vm_console;

typedef struct console_attach_opts {
    bool readonly;    /* watch only */
    bool takeover;    /* become the writer even when there is one (it is dropped) */
} console_attach_opts;

/* Answers r: an error, or {} after which r's connection is the console. */
void console_attach(vm *v, request *r, const console_attach_opts *o);
/* The VM's QEMU ended, or the VM goes: every client is told and dropped. */
void console_close(vm *v, const char *why);

#endif
