/* macs.h: NIC MAC addresses across the host. A MAC is generated once, when
 * its NIC is defined, and kept: a definition replaced without MACs keeps
 * the old NICs' addresses, and no two VMs on the host share one. */
#ifndef AGENTD_MACS_H
#define AGENTD_MACS_H

#include <stddef.h>

#include "vmdef.h"

struct json_object;
typedef struct agent agent;
typedef struct vm vm;

/* NICs that def_json (the definition as the client sent it) gives no MAC
 * take the MAC of the old definition's NIC at the same place. */
void macs_keep(struct json_object *def_json, const vm_def *old, vm_def *def);

/* Every MAC of def is unused by the host's other VMs (self excepted): a
 * generated one that collides is generated again, one the client gave is
 * refused (-EINVAL, err naming the NIC and the VM that has it). */
int macs_make_unique(agent *a, struct json_object *def_json, vm_def *def, const vm *self, char *err,
                     size_t errlen);

#endif
