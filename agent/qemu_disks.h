/* qemu_disks.h: the disks' part of the QEMU command line (-blockdev per
 * chain node, -device per disk). Internal to agent/: qemu_argv.c calls it. */
#ifndef AGENTD_QEMU_DISKS_H
#define AGENTD_QEMU_DISKS_H

#include "errbuf.h"
#include "qemu_argv.h"
#include "qemu_argv_buf.h"

/* The chains match the disks, and the machine has the ports they need. */
int qemu_disks_check(const vm_def *def, const qemu_paths *paths, errbuf *e);
void qemu_push_disks(argv_buf *b, const vm_def *def, const qemu_paths *paths);

#endif
