/* vm_vnc.h: a VM's VNC display.
 *
 * The display gets a port from the host's range at each start and QEMU
 * opens it with password=on, so nobody connects before a password is set
 * over QMP. A persistent password (xCAT's vidpassword) is kept in
 * STATE/vms/NAME.vnc-password, mode 0600 in a 0700 directory, and set after
 * each start; never on a command line, never logged. One-time credentials
 * (xCAT's getrvidparms) replace it until they expire, after which the
 * persistent one (if any) is set again. */
#ifndef AGENTD_VM_VNC_H
#define AGENTD_VM_VNC_H

#include <stddef.h>
#include <stdint.h>

#include "vm.h"

#define VM_VNC_PASSWORD_MAX 8      /* VNC authentication uses 8 bytes of it */

/* On the loop, at launch: the lowest port of the range no other VM of this
 * agent has and that can be bound now. */
int vm_vnc_pick_port(vm *v, char *err, size_t errlen);
/* At agent start (before the loop serves): reads the persistent password. */
void vm_vnc_load_password(vm *v);
/* QMP is up after a start: sets the persistent password, if any. */
void vm_vnc_on_qmp_ready(vm *v);
/* QEMU ended: the port is free again, an expiry timer stopped. */
void vm_vnc_on_exit(vm *v);

/* Stores (password NULL: removes) the persistent password durably, and sets
 * it on a running VM's display. */
int vm_vnc_set_password(vm *v, const char *password, vm_done_cb cb, void *opaque, vm_result *res);
/* A random one-time password, set and expiring after expire_s: cb gets
 * {"host", "port", "display", "protocol", "password", "expires-at"}. */
int vm_vnc_credentials(vm *v, uint32_t expire_s, vm_done_cb cb, void *opaque, vm_result *res);

/* query-vm's "vnc" runtime member, or NULL without a display. */
struct json_object *vm_vnc_runtime_json(const vm *v);

#endif
