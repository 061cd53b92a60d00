/* work.h: blocking work (disk, mounts, image metadata) on libuv's thread pool.
 *
 * The event loop never waits on a disk; a handler hands the blocking part to
 * agent_work and continues in the done callback, on the loop. */
#ifndef AGENTD_WORK_H
#define AGENTD_WORK_H

typedef struct uv_loop_s uv_loop_t;

typedef void agent_work_fn(void *arg);            /* on a pool thread */
typedef void agent_done_fn(void *arg);            /* back on the loop */

/* Queues work(arg) and then done(arg). -errno when it cannot be queued (then
 * neither runs). */
int agent_work(uv_loop_t *loop, agent_work_fn *work, agent_done_fn *done, void *arg);

/* Removes the file at path on the thread pool (an image or state file may
 * be on slow storage); a failure other than ENOENT is logged. */
void agent_unlink_later(uv_loop_t *loop, const char *path);

#endif
