/* qemu_nics.h: the NICs' part of the QEMU command line. Internal to
 * agent/: qemu_argv.c calls it. */
#ifndef AGENTD_QEMU_NICS_H
#define AGENTD_QEMU_NICS_H

#include "errbuf.h"
#include "qemu_argv.h"
#include "qemu_argv_buf.h"

/* One set of fds per NIC, one tap fd per queue, vhost for all or none. */
int qemu_nics_check(const vm_def *def, const qemu_paths *paths, errbuf *e);
void qemu_push_nics(argv_buf *b, const vm_def *def, const qemu_paths *paths);

/* -device vfio-pci,host=... for each passed-through device. */
void qemu_push_hostdevs(argv_buf *b, const vm_def *def);

#endif
