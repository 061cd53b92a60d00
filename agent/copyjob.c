/* copyjob.c: an img_copy driven by the loop. The engine is started on the
 * thread pool (it opens and reads the source chain's headers), then its
 * eventfd is watched; each wake-up runs one step, which never blocks. */
#include "copyjob.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "agent.h"
#include "pool.h"
#include "work.h"

struct copyjob {
    agent *a;
    char src[PATH_MAX], dst[PATH_MAX], backing[PATH_MAX];
    img_format src_format, dst_format, backing_format;
    char **roots;
    img_copy *copy;
    uv_poll_t *poll;
    bool cancelled;
    bool finishing;            /* img_copy_finish queued: copy belongs to the pool thread */
    int status;
    char err[512];
    copyjob_progress_fn *progress;
    copyjob_done_fn *done;
    void *opaque;
};

static void on_progress(void *opaque, uint64_t done, uint64_t total)
{
    copyjob *j = opaque;

    j->progress(j->opaque, done, total);
}

static void run_start(void *arg)
{
    copyjob *j = arg;
    img_copy_options o = { .format = j->dst_format, .roots = (const char *const *)j->roots,
                           .progress = on_progress, .opaque = j };

    if (j->backing[0]) {
        o.backing_file = j->backing;
        o.backing_format = j->backing_format;
        o.replace = true;
    }

    j->status = img_copy_start(j->src, j->src_format, j->dst, &o, &j->copy, j->err, sizeof(j->err));
}

static void end(copyjob *j)
{
    j->done(j->opaque, j->status, j->err);
    pool_roots_free(j->roots);
    free(j);
}

static void free_poll(uv_handle_t *h)
{
    copyjob *j = h->data;

    free(h);
    end(j);
}

/* Finishing removes the temp file on failure: small, but a disk operation,
 * so it runs on the pool. */
static void run_finish(void *arg)
{
    copyjob *j = arg;

    j->status = img_copy_finish(j->copy, j->err, sizeof(j->err));
    j->copy = NULL;
}

static void after_finish(void *arg)
{
    copyjob *j = arg;

    if (j->poll) {
        uv_close((uv_handle_t *)j->poll, free_poll);
        return;
    }
    end(j);
}

static void finish(copyjob *j)
{
    j->finishing = true;
    uv_poll_stop(j->poll);
    if (agent_work(j->a->loop, run_finish, after_finish, j) < 0) {
        run_finish(j);
        after_finish(j);
    }
}

static void on_ready(uv_poll_t *h, int status, int events)
{
    copyjob *j = h->data;
    int r = img_copy_step(j->copy);

    (void)status, (void)events;
    if (r != 0)
        finish(j);
}

static void after_start(void *arg)
{
    copyjob *j = arg;
    int r;

    if (j->status < 0) {
        end(j);
        return;
    }
    if (j->cancelled)
        img_copy_cancel(j->copy);
    if (!(j->poll = malloc(sizeof(*j->poll))) || uv_poll_init(j->a->loop, j->poll, img_copy_fd(j->copy)) < 0) {
        free(j->poll);
        j->poll = NULL;
        img_copy_cancel(j->copy);
        run_finish(j);
        end(j);
        return;
    }
    j->poll->data = j;
    if ((r = uv_poll_start(j->poll, UV_READABLE, on_ready)) < 0) {
        img_copy_cancel(j->copy);
        finish(j);
        return;
    }
    /* The first step submits the first reads; later ones follow completions. */
    on_ready(j->poll, 0, UV_READABLE);
}

int copyjob_start(agent *a, const copyjob_spec *s, copyjob_progress_fn *progress, copyjob_done_fn *done,
                  void *opaque, copyjob **ret)
{
    copyjob *j = calloc(1, sizeof(*j));
    int r;

    if (!j)
        return -ENOMEM;
    *j = (copyjob){ .a = a, .src_format = s->src_format, .dst_format = s->dst_format, .progress = progress,
                    .done = done, .opaque = opaque };
    snprintf(j->src, sizeof(j->src), "%s", s->src);
    snprintf(j->dst, sizeof(j->dst), "%s", s->dst);
    if (s->backing) {
        snprintf(j->backing, sizeof(j->backing), "%s", s->backing);
        j->backing_format = s->backing_format;
    }
    if (!(j->roots = pool_roots(a))) {
        free(j);
        return -ENOMEM;
    }
    if ((r = agent_work(a->loop, run_start, after_start, j)) < 0) {
        pool_roots_free(j->roots);
        free(j);
        return r;
    }
    *ret = j;
    return 0;
}

void copyjob_cancel(copyjob *j)
{
    j->cancelled = true;
    if (j->copy && !j->finishing)
        img_copy_cancel(j->copy);
}
