/* console_log.c: see console_log.h. */
#include "console_log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "agent.h"
#include "log.h"
#include "vm.h"
#include "work.h"

#define CHECK_EVERY_MS 5000

typedef struct trim_work {
    vm *v;
    uint64_t max;
    char path[PATH_MAX];
    int status;
    bool trimmed;
} trim_work;

static int copy_fd(int from, int to)
{
    char buf[65536];
    ssize_t n;

    while ((n = read(from, buf, sizeof(buf))) > 0)
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(to, buf + done, (size_t)(n - done));
            if (w < 0)
                return -errno;
            done += w;
        }
    return n < 0 ? -errno : 0;
}

/* PATH -> PATH.1 through a temp file and a rename, then PATH emptied. */
static int rotate(const char *path)
{
    char old[PATH_MAX + 8], tmp[PATH_MAX + 8];
    int in, out, r;

    snprintf(old, sizeof(old), "%s.1", path);
    snprintf(tmp, sizeof(tmp), "%s.1.tmp", path);
    if ((in = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return -errno;
    if ((out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
        r = -errno;
        close(in);
        return r;
    }
    r = copy_fd(in, out);
    close(in);
    if (close(out) < 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, old) < 0)
        r = -errno;
    if (r < 0) {
        unlink(tmp);
        return r;
    }
    return truncate(path, 0) < 0 ? -errno : 0;
}

static void run_trim(void *arg)
{
    trim_work *w = arg;
    struct stat st;

    if (stat(w->path, &st) < 0 || (uint64_t)st.st_size <= w->max)
        return;
    w->status = rotate(w->path);
    w->trimmed = w->status == 0;
}

static void after_trim(void *arg)
{
    trim_work *w = arg;

    w->v->pending_io--;
    if (w->status < 0)
        log_warn("vm %s: cutting back its console log: %s", w->v->def.name, strerror(-w->status));
    else if (w->trimmed)
        log_debug("vm %s: console log past %llu bytes, kept as %s.1", w->v->def.name,
                  (unsigned long long)w->max, w->path);
    free(w);
}

static void check(uv_timer_t *t)
{
    agent *a = t->data;

    for (vm *v = a->vms; v; v = v->next) {
        trim_work *w;
        if (!vm_has_process(v) || !(w = calloc(1, sizeof(*w))))
            continue;
        w->v = v;
        w->max = (uint64_t)a->cfg.console_log_max_kib * 1024;
        snprintf(w->path, sizeof(w->path), "%s", v->console_log);
        v->pending_io++;
        if (agent_work(a->loop, run_trim, after_trim, w) < 0) {
            v->pending_io--;
            free(w);
        }
    }
}

int console_log_start(agent *a)
{
    if (a->cfg.console_log_max_kib == 0)
        return 0;
    if (!(a->console_log_timer = malloc(sizeof(*a->console_log_timer))))
        return -ENOMEM;
    uv_timer_init(a->loop, a->console_log_timer);
    a->console_log_timer->data = a;
    uv_timer_start(a->console_log_timer, check, CHECK_EVERY_MS, CHECK_EVERY_MS);
    /* A check pending is no reason for the loop to stay up. */
    uv_unref((uv_handle_t *)a->console_log_timer);
    return 0;
}

static void free_timer(uv_handle_t *h)
{
    free(h);
}

void console_log_stop(agent *a)
{
    if (!a->console_log_timer)
        return;
    uv_close((uv_handle_t *)a->console_log_timer, free_timer);
    a->console_log_timer = NULL;
}
