/* vm_snapshot_stream.c: snapshot-delete on a running or paused VM.
 *
 * Each disk's state (the image the snapshot froze) is merged into the
 * overlay above it by QEMU's block-stream, with the state's own backing as
 * the base: QEMU copies what only the state holds into the overlay, and
 * then the overlay's backing is the base, in its header and in QEMU's
 * graph. The guest's content never changes, and until the job completes the
 * old chain is whole, so a cancel or a failure at any point leaves a chain
 * that reads the same. The disks go one after the other; once all are
 * merged the record is written, and only then the states are removed.
 *
 * Where the chain is (the overlay, its state, the state's backing) comes
 * from the image layer on the thread pool, and QEMU's nodes are found by
 * their file names in query-named-block-nodes. */
#include "vm_snapshot_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "agent.h"
#include "json_get.h"
#include "log.h"
#include "vm_internal.h"
#include "work.h"

/* A state of tens of GiB streams in minutes; a stuck job is cancelled. */
#define STREAM_TIMEOUT_MS (3600u * 1000)

/* ---- where each chain is (thread pool) ---------------------------------------------- */

static void locate_work(void *arg)
{
    snap_op *op = arg;

    for (size_t i = 0; i < op->n && op->status == 0; i++)
        op->status = snapshot_locate(op, &op->disks[i]);
}

/* ---- QEMU's nodes ----------------------------------------------------------------------- */

static bool has_node(struct json_object *nodes, const char *name)
{
    for (size_t i = 0; nodes && i < json_object_array_length(nodes); i++) {
        const char *n = json_get_string(json_object_array_get_idx(nodes, i), "node-name");
        if (n && !strcmp(n, name))
            return true;
    }
    return false;
}

/* The format node ("drive-...") over the protocol node ("file-...") that
 * opened one of the two names, as the agent names every node it adds
 * (qemu_devices.c). By the protocol node, since a format node whose backing
 * was changed reports a json: file name. false when QEMU has none. */
static bool nodes_of(struct json_object *nodes, const char *path, const char *real, char fmt[64], char file[64])
{
    for (size_t i = 0; nodes && i < json_object_array_length(nodes); i++) {
        struct json_object *n = json_object_array_get_idx(nodes, i);
        const char *f = json_get_string(n, "file"), *drv = json_get_string(n, "drv");
        const char *name = json_get_string(n, "node-name");
        if (!f || !drv || !name || strcmp(drv, "file") || (strcmp(f, path) && strcmp(f, real)) ||
            strncmp(name, "file-", 5) || strlen(name) >= 64)
            continue;
        snprintf(file, 64, "%s", name);
        snprintf(fmt, 64, "drive-%s", name + 5);
        return has_node(nodes, fmt);
    }
    return false;
}

static void stream_next(snap_op *op);

static void stream_failed(snap_op *op, const char *err_class, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "disks[I]: " and what went wrong, for the disk being merged. */
static void stream_failed(snap_op *op, const char *err_class, const char *fmt, ...)
{
    char desc[1200];
    int n = snprintf(desc, sizeof(desc), "disks[%zu]: ", op->disks[op->streaming].index);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(desc + n, sizeof(desc) - (size_t)n, fmt, ap);
    va_end(ap);
    vm_job_timer_stop(op->v);
    snapshot_fail(op, err_class, desc);
}

static void on_state_node_deleted(qmp_client *c, const qmp_reply *r, void *opaque)
{
    snap_op *op = opaque;
    vm *v = op->v;

    if (v->snapshot != op)
        return;
    /* Left in QEMU's graph it only holds the file open; the file is removed anyway. */
    if (r->status < 0)
        log_warn("vm %s: blockdev-del of a merged snapshot state: %s", v->def.name, r->err_desc);
    if (op->state_nodes[1][0]) {
        struct json_object *args = json_object_new_object();
        json_object_object_add(args, "node-name", json_object_new_string(op->state_nodes[1]));
        op->state_nodes[1][0] = '\0';
        if (vm_qmp(v, "blockdev-del", args, on_state_node_deleted, op) == 0)
            return;
    }
    op->streaming++;
    stream_next(op);
}

/* The state is out of the chain: its nodes go (format, then protocol). */
static void stream_done(snap_op *op)
{
    struct json_object *args;

    vm_job_timer_stop(op->v);
    if (!op->state_nodes[0][0]) {
        op->streaming++;
        stream_next(op);
        return;
    }
    args = json_object_new_object();
    json_object_object_add(args, "node-name", json_object_new_string(op->state_nodes[0]));
    op->state_nodes[0][0] = '\0';
    if (vm_qmp(op->v, "blockdev-del", args, on_state_node_deleted, op) < 0)
        stream_failed(op, "GenericError", "QMP is not connected");
}

void vm_snapshot_on_event(vm *v, const char *event, struct json_object *data)
{
    snap_op *op = v->snapshot;
    const char *job, *error;

    if (!op || v->job != VM_JOB_SNAPSHOT || !op->job_id[0])
        return;
    if (strcmp(event, "BLOCK_JOB_COMPLETED") && strcmp(event, "BLOCK_JOB_CANCELLED"))
        return;
    if (!(job = json_get_string(data, "device")) || strcmp(job, op->job_id))
        return;
    op->job_id[0] = '\0';
    if (!strcmp(event, "BLOCK_JOB_CANCELLED"))
        stream_failed(op, "GenericError", "the merge was cancelled");
    else if ((error = json_get_string(data, "error")))
        stream_failed(op, "GenericError", "block-stream: %s", error);
    else
        stream_done(op);
}

void vm_snapshot_on_exit(vm *v)
{
    snap_op *op = v->snapshot;

    if (op) {
        log_warn("vm %s: QEMU ended while merging snapshot %s; the snapshot stays", v->def.name, op->name);
        snapshot_op_free(op);
    }
}

static void on_stream_timeout(vm *v)
{
    snap_op *op = v->snapshot;
    struct json_object *args = json_object_new_object();

    if (!op || !op->job_id[0]) {
        json_object_put(args);
        return;
    }
    /* The chain stays whole: a cancelled stream leaves the state in it. */
    json_object_object_add(args, "device", json_object_new_string(op->job_id));
    vm_qmp(v, "block-job-cancel", args, NULL, NULL);
    op->job_id[0] = '\0';
    stream_failed(op, "Timeout", "the merge did not complete within %u s", STREAM_TIMEOUT_MS / 1000);
}

static void on_stream_started(qmp_client *c, const qmp_reply *r, void *opaque)
{
    snap_op *op = opaque;

    if (op->v->snapshot != op)
        return;
    if (r->status < 0) {
        op->job_id[0] = '\0';
        stream_failed(op, "GenericError", "block-stream: %s", r->err_desc);
    }
}

/* block-stream for the disk at op->streaming, or the record once all are merged. */
static void stream_next(snap_op *op)
{
    struct json_object *args;
    char top[64], top_file[64], base[64], base_file[64];
    bool have_top, have_state, have_base = true;
    snap_disk *d;

    if (op->streaming >= op->n) {
        op->v->snapshot = NULL;
        snapshot_save_record(op);
        return;
    }
    d = &op->disks[op->streaming];
    have_top = nodes_of(op->nodes, d->overlay, d->overlay_real, top, top_file);
    have_state = nodes_of(op->nodes, d->state, d->state_real, op->state_nodes[0], op->state_nodes[1]);
    if (d->base_real[0])
        have_base = nodes_of(op->nodes, d->base_real, d->base_real, base, base_file);
    if (!have_top || !have_state || !have_base) {
        stream_failed(op, "GenericError", "QEMU does not have %s open",
                      !have_top ? d->overlay : !have_state ? d->state : d->base_real);
        return;
    }
    snprintf(op->job_id, sizeof(op->job_id), "snapshot-delete-%s", d->target);
    args = json_object_new_object();
    json_object_object_add(args, "job-id", json_object_new_string(op->job_id));
    json_object_object_add(args, "device", json_object_new_string(top));
    if (d->base_real[0]) {
        json_object_object_add(args, "base-node", json_object_new_string(base));
        json_object_object_add(args, "backing-file", json_object_new_string(d->base_name));
    }
    vm_job_timer_start(op->v, STREAM_TIMEOUT_MS, on_stream_timeout);
    if (vm_qmp(op->v, "block-stream", args, on_stream_started, op) < 0) {
        op->job_id[0] = '\0';
        stream_failed(op, "GenericError", "QMP is not connected");
    }
}

static void on_nodes(qmp_client *c, const qmp_reply *r, void *opaque)
{
    snap_op *op = opaque;

    if (op->v->snapshot != op)
        return;
    if (r->status < 0) {
        stream_failed(op, "GenericError", "query-named-block-nodes: %s", r->err_desc);
        return;
    }
    op->nodes = json_object_get(r->ret);
    stream_next(op);
}

static void located(void *arg)
{
    snap_op *op = arg;
    vm *v = op->v;

    v->pending_io--;
    if (op->status < 0) {
        snapshot_fail(op, "InvalidState", op->err);
        return;
    }
    /* QEMU may have ended while the chains were read. */
    if (!vm_has_process(v) || !v->qmp_ready) {
        snapshot_fail(op, "InvalidState", "QEMU is not running any more");
        return;
    }
    v->snapshot = op;
    if (vm_qmp(v, "query-named-block-nodes", NULL, on_nodes, op) < 0)
        stream_failed(op, "GenericError", "QMP is not connected");
}

void snapshot_stream_start(snap_op *op)
{
    op->v->pending_io++;
    if (agent_work(op->v->agent->loop, locate_work, located, op) < 0) {
        op->v->pending_io--;
        snapshot_fail(op, "GenericError", "queueing the image work: out of memory");
    }
}
