/* vm_qmpseq.h: a hotplug as a list of QMP steps run in order on a VM, each
 * with the step that undoes it. When a step fails, the undo steps of those
 * that succeeded run in reverse, so a failed device_add takes the blockdev
 * or netdev it needed with it and QEMU is left as it was.
 *
 * A step may also wait for DEVICE_DELETED of a device (with a deadline):
 * QEMU sends it when the guest let go, which may be before the reply to
 * device_del (a SCSI disk) or long after (a PCI device the guest must
 * release), so the events are recorded from the moment the sequence runs.
 * One sequence per VM at a time; it belongs to the VM's job. */
#ifndef AGENTD_VM_QMPSEQ_H
#define AGENTD_VM_QMPSEQ_H

#include <stdbool.h>
#include <stdint.h>

struct json_object;
typedef struct vm vm;
typedef struct vm_qmpseq vm_qmpseq;

/* status 0, or -1 with QMP's class ("GenericError", "Timeout", ...) and a
 * description naming the step ("device_add: Bus 'hp0' is full"). */
typedef void vm_qmpseq_cb(vm *v, int status, const char *err_class, const char *err_desc, void *opaque);

vm_qmpseq *vm_qmpseq_new(vm *v);
void vm_qmpseq_free(vm_qmpseq *s);

/* A command (args taken, may be NULL) sent with fd when fd >= 0 (borrowed:
 * QEMU gets its own copy). undo (may be NULL) is run with undo_args (taken)
 * if a later step fails. */
void vm_qmpseq_add(vm_qmpseq *s, const char *command, struct json_object *args, int fd,
                   const char *undo, struct json_object *undo_args);
/* getfd of fd (borrowed) as fdname, undone with closefd unless a later
 * step (netdev_add) took the fd over. */
void vm_qmpseq_add_getfd(vm_qmpseq *s, const char *fdname, int fd);
/* A command whose failure is logged and passed over (cleanup of what a
 * removed device used). */
void vm_qmpseq_add_tolerant(vm_qmpseq *s, const char *command, struct json_object *args);
/* Waits for DEVICE_DELETED of device id for at most timeout_ms. */
void vm_qmpseq_add_wait_deleted(vm_qmpseq *s, const char *id, uint32_t timeout_ms);

/* Runs the steps; cb is called once, after which the sequence frees itself.
 * -ENOTCONN (nothing run, cb not called) when QMP is not ready. */
int vm_qmpseq_run(vm_qmpseq *s, vm_qmpseq_cb *cb, void *opaque);

/* From the VM's QMP event handler: true when a running sequence took the event. */
bool vm_qmpseq_on_event(vm *v, const char *event, struct json_object *data);

#endif
