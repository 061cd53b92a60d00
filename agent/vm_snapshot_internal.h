/* vm_snapshot_internal.h: what vm_snapshot.c (the record, create, revert,
 * delete of a stopped VM) and vm_snapshot_stream.c (delete on a running VM,
 * by QEMU's block-stream) share. Not for other callers. */
#ifndef AGENTD_VM_SNAPSHOT_INTERNAL_H
#define AGENTD_VM_SNAPSHOT_INTERNAL_H

#include <limits.h>
#include <stdbool.h>

#include "storage/storage.h"
#include "vm.h"
#include "vm_disks.h"
#include "vm_snapshot.h"

typedef enum snap_kind { OP_CREATE, OP_REVERT, OP_DELETE } snap_kind;

typedef struct snap_disk {
    size_t index;                 /* in the definition */
    char target[VM_TARGET_MAX + 1];
    char state[PATH_MAX];         /* the image the snapshot froze */
    char overlay[PATH_MAX];       /* the image written on top of it */
    char fresh[PATH_MAX];         /* revert: the new empty overlay */
    img_format state_format;
    /* A delete: the chain as the image layer resolves it (snapshot_locate). */
    char overlay_real[PATH_MAX];
    char state_real[PATH_MAX];
    char base_real[PATH_MAX];     /* the state's backing, "" for none */
    char base_name[PATH_MAX];     /* the backing name the overlay is to carry */
    img_format base_format;
} snap_disk;

typedef struct snap_op {
    vm *v;
    snap_kind kind;
    bool live;                    /* create on a running VM: QEMU switches to the overlays */
    char name[VM_SNAPSHOT_NAME_MAX + 1];
    vm_disk_files *files;         /* the pools' roots */
    size_t n;
    snap_disk disks[VM_DISKS_MAX];
    char (*drop)[PATH_MAX];       /* removed once everything is recorded */
    size_t ndrop;
    struct json_object *next;     /* the record after the operation */
    struct json_object *ret;
    vm_def old;                   /* the definition before, put back on failure */
    bool def_changed;
    bool made;                    /* the new images exist: a failure removes them */
    bool freeze_sent;             /* live create: the guest agent was asked to freeze; thaw follows */
    bool frozen;                  /* ... and said it froze the file systems */
    int switch_status;            /* live create: QEMU's answer, kept while the guest thaws */
    char switch_class[32];
    char switch_desc[512];
    int status;
    char err[1024];
    /* A delete on a running VM: the disk being streamed, QEMU's nodes. */
    size_t streaming;
    struct json_object *nodes;
    char job_id[48];
    char state_nodes[2][64];      /* the state's format and protocol nodes, deleted after */
} snap_op;

void snapshot_op_free(snap_op *op);
/* On failure: the files this operation made go, nothing else; the job ends. */
void snapshot_fail(snap_op *op, const char *err_class, const char *desc);
/* Writes op->next as the record, ends the job, then removes op->drop. */
void snapshot_save_record(snap_op *op);
const char *snapshot_file_name(const char *path);
/* Where d's chain is, from the image layer (thread pool): its overlay must
 * still be backed by its state. 0, or an error with op->err set. */
int snapshot_locate(snap_op *op, snap_disk *d);

/* vm_snapshot_stream.c: op (a delete, its disks loaded, its job begun) on a
 * running or paused VM: each state merged into the overlay above it by
 * block-stream, one disk after the other, then the record. */
void snapshot_stream_start(snap_op *op);

#endif
