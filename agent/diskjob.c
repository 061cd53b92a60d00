/* diskjob.c: a clone's disk operations, one after the other. */
#include "diskjob.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "copyjob.h"
#include "log.h"
#include "pool.h"
#include "statefile.h"
#include "work.h"

struct diskjob {
    agent *a;
    diskjob_spec s;
    size_t cur;
    bool *made;                    /* per op: its dst is a file this job created */
    bool cancelled;
    copyjob *copy;
    char **roots;
    int status;
    char err[512];
};

static void next(diskjob *j);
static void diskjob_free(diskjob *j);

static void set_error(diskjob *j, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_error(diskjob *j, int status, const char *fmt, ...)
{
    va_list ap;

    j->status = status;
    va_start(ap, fmt);
    vsnprintf(j->err, sizeof(j->err), fmt, ap);
    va_end(ap);
}

/* ---- the end --------------------------------------------------------------- */

static void run_rollback(void *arg)
{
    diskjob *j = arg;

    for (size_t i = 0; i < j->s.nops; i++)
        if (j->made[i] && statefile_remove_durable(j->s.ops[i].dst) < 0)
            log_err("removing %s after a failed clone: %s", j->s.ops[i].dst, strerror(errno));
}

static void after_rollback(void *arg)
{
    diskjob *j = arg;

    j->s.done(j->s.opaque, j->status, j->err);
    diskjob_free(j);
}

static void finish(diskjob *j)
{
    if (j->status == 0 || agent_work(j->a->loop, run_rollback, after_rollback, j) < 0)
        after_rollback(j);
}

/* ---- sizes, for the progress lines ------------------------------------------ */

static void run_measure(void *arg)
{
    diskjob *j = arg;
    img_open_options o = { .roots = (const char *const *)j->roots };

    for (size_t i = 0; i < j->s.nops && j->status == 0; i++) {
        diskop *op = &j->s.ops[i];
        img_layer_info info;
        img *im;
        if ((j->status = img_open(op->src, op->src_format, &o, &im, j->err, sizeof(j->err))) < 0)
            return;
        op->virtual_size = img_virtual_size(im);
        for (size_t l = 0; l < img_depth(im); l++)
            if (img_layer_info_get(im, l, &info) == 0)
                op->allocated += info.file_size;
        img_close(im);
    }
}

static void after_measure(void *arg)
{
    diskjob *j = arg;

    if (j->status < 0)
        finish(j);
    else
        next(j);
}

/* ---- copies ------------------------------------------------------------------ */

static void on_copy_progress(void *opaque, uint64_t done, uint64_t total)
{
    diskjob *j = opaque;

    j->s.progress(j->s.opaque, &j->s.ops[j->cur], done, total, NULL);
}

static void on_copy_done(void *opaque, int status, const char *err)
{
    diskjob *j = opaque;

    j->copy = NULL;
    if (status < 0) {
        set_error(j, status, "%s", err);
        finish(j);
        return;
    }
    /* A rebase replaced a disk that was there before: never removed. */
    j->made[j->cur] = j->s.ops[j->cur].kind == DISKOP_COPY;
    j->cur++;
    next(j);
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static void announce_copy(diskjob *j, const diskop *op)
{
    char msg[PATH_MAX + 128];

    if (op->kind == DISKOP_REBASE)
        snprintf(msg, sizeof(msg), "Rebasing %s onto %s (keeping only what differs)", base_name(op->dst),
                 base_name(op->src));
    else
        snprintf(msg, sizeof(msg), "Cloning %s (currently is %llu MB and has a capacity of %lluMB)",
                 base_name(op->src), (unsigned long long)(op->allocated >> 20),
                 (unsigned long long)(op->virtual_size >> 20));
    j->s.progress(j->s.opaque, op, 0, op->virtual_size, msg);
}

static const char *backing_name(const diskop *op);

static void start_copy(diskjob *j, diskop *op)
{
    copyjob_spec cs = { .src = op->src, .src_format = op->src_format, .dst = op->dst,
                        .dst_format = op->dst_format };
    int r;

    if (op->kind == DISKOP_REBASE) {
        /* The disk at dst is rewritten as an overlay of src storing only
         * what differs from it (nothing, when it was just copied). */
        cs = (copyjob_spec){ .src = op->dst, .src_format = op->dst_format, .dst = op->dst,
                             .dst_format = IMG_FORMAT_QCOW2, .backing = backing_name(op),
                             .backing_format = op->src_format };
    }
    announce_copy(j, op);
    if ((r = copyjob_start(j->a, &cs, on_copy_progress, on_copy_done, j, &j->copy)) < 0) {
        set_error(j, r, "copying %s: %s", op->src, strerror(-r));
        finish(j);
    }
}

/* ---- overlays ---------------------------------------------------------------- */

static bool same_dir(const char *a, const char *b)
{
    size_t la = (size_t)(base_name(a) - a), lb = (size_t)(base_name(b) - b);
    return la == lb && strncmp(a, b, la) == 0;
}

/* Relative when side by side, so a pool can move as a whole. */
static const char *backing_name(const diskop *op)
{
    return same_dir(op->src, op->dst) ? base_name(op->src) : op->src;
}

static void make_overlay(diskjob *j, const diskop *op, const char *at)
{
    j->status = img_overlay(at, backing_name(op), op->src_format, (const char *const *)j->roots, j->err,
                            sizeof(j->err));
}

static void run_overlay(void *arg)
{
    diskjob *j = arg;

    make_overlay(j, &j->s.ops[j->cur], j->s.ops[j->cur].dst);
}

static void after_file_op(void *arg)
{
    diskjob *j = arg;

    if (j->status < 0) {
        finish(j);
        return;
    }
    j->made[j->cur] = true;
    j->cur++;
    next(j);
}

/* ---- the sequence ------------------------------------------------------------ */

static void next(diskjob *j)
{
    diskop *op;
    int r;

    if (j->cancelled) {
        set_error(j, -ECANCELED, "cancelled");
        finish(j);
        return;
    }
    if (j->cur == j->s.nops) {
        finish(j);
        return;
    }
    op = &j->s.ops[j->cur];
    if (op->kind != DISKOP_OVERLAY) {
        start_copy(j, op);
        return;
    }
    j->s.progress(j->s.opaque, op, 0, 0, NULL);
    if ((r = agent_work(j->a->loop, run_overlay, after_file_op, j)) < 0) {
        set_error(j, r, "queueing work on %s: %s", op->dst, strerror(-r));
        finish(j);
    }
}

/* Sizes matter only for the progress lines of copies. */
static bool needs_measure(const diskjob_spec *s)
{
    for (size_t i = 0; i < s->nops; i++)
        if (s->ops[i].kind != DISKOP_OVERLAY)
            return true;
    return false;
}

diskop *diskjob_add(diskjob_spec *s)
{
    diskop *ops = reallocarray(s->ops, s->nops + 1, sizeof(*ops));

    if (!ops)
        return NULL;
    s->ops = ops;
    memset(&ops[s->nops], 0, sizeof(ops[0]));
    return &ops[s->nops++];
}

void diskjob_spec_free(diskjob_spec *s)
{
    free(s->ops);
    s->ops = NULL;
    s->nops = 0;
}

static void diskjob_free(diskjob *j)
{
    pool_roots_free(j->roots);
    diskjob_spec_free(&j->s);
    free(j->made);
    free(j);
}

int diskjob_start(agent *a, diskjob_spec *s, diskjob **ret)
{
    diskjob *j = calloc(1, sizeof(*j));
    int r;

    if (!j) {
        diskjob_spec_free(s);
        return -ENOMEM;
    }
    j->a = a;
    j->s = *s;
    s->ops = NULL;
    s->nops = 0;
    if (!(j->made = calloc(j->s.nops + 1, sizeof(*j->made))) || !(j->roots = pool_roots(a))) {
        diskjob_free(j);
        return -ENOMEM;
    }
    if (!needs_measure(&j->s)) {
        *ret = j;
        next(j);
        return 0;
    }
    if ((r = agent_work(a->loop, run_measure, after_measure, j)) < 0) {
        diskjob_free(j);
        return r;
    }
    *ret = j;
    return 0;
}

void diskjob_cancel(diskjob *j)
{
    j->cancelled = true;
    if (j->copy)
        copyjob_cancel(j->copy);
}
