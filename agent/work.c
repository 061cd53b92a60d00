/* work.c: one thread-pool request per piece of blocking work. */
#include "work.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "log.h"

typedef struct work_req {
    uv_work_t req;
    agent_work_fn *work;
    agent_done_fn *done;
    void *arg;
} work_req;

static void run(uv_work_t *req)
{
    work_req *w = (work_req *)req;

    w->work(w->arg);
}

/* A queued request is never cancelled by us, so status is always 0. */
static void after(uv_work_t *req, int status)
{
    work_req *w = (work_req *)req;

    (void)status;
    w->done(w->arg);
    free(w);
}

int agent_work(uv_loop_t *loop, agent_work_fn *work, agent_done_fn *done, void *arg)
{
    work_req *w = malloc(sizeof(*w));
    int r;

    if (!w)
        return -ENOMEM;
    *w = (work_req){ .work = work, .done = done, .arg = arg };
    if ((r = uv_queue_work(loop, &w->req, run, after)) < 0) {
        free(w);
        return r;
    }
    return 0;
}

static void unlink_work(void *arg)
{
    char *path = arg;

    if (unlink(path) < 0 && errno != ENOENT)
        log_warn("removing %s: %s", path, strerror(errno));
}

void agent_unlink_later(uv_loop_t *loop, const char *path)
{
    char *p = strdup(path);

    if (!p || agent_work(loop, unlink_work, free, p) < 0) {
        log_warn("removing %s: cannot queue it; it stays", path);
        free(p);
    }
}
