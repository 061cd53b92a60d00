/* statefile.h: state files written atomically, off the event loop.
 *
 * A write goes to a temp file in the same directory, is fsynced, renamed over
 * the target, and the directory is fsynced: a crash at any instant leaves the
 * old file or the new one. The blocking part runs on libuv's thread pool.
 * Writes to one file go through one statefile_writer, which keeps them in
 * order and coalesces a burst into the newest content. */
#ifndef AGENTD_STATEFILE_H
#define AGENTD_STATEFILE_H

#include <stddef.h>
#include <sys/types.h>

typedef struct uv_loop_s uv_loop_t;
typedef struct statefile_writer statefile_writer;

/* status is 0 once content at least as new as what was put is durable. */
typedef void (*statefile_cb)(int status, void *opaque);

int statefile_write_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* statefile_write_atomic in two steps, for a caller that must make
 * something else durable between them: stage writes and fsyncs the temp
 * file (its name into tmp, PATH_MAX bytes), install renames it over path
 * and fsyncs the directory (removing the temp file if the rename fails). */
int statefile_stage(const char *path, const void *data, size_t len, mode_t mode, char *tmp);
int statefile_install(const char *tmp, const char *path);
int statefile_remove_durable(const char *path);
/* Reads a whole file of at most max bytes, NUL-terminated. */
int statefile_read(const char *path, size_t max, char **ret_data, size_t *ret_len);
/* mkdir -p with the given mode for missing components. */
int statefile_mkdir_p(const char *path, mode_t mode);

statefile_writer *statefile_writer_new(uv_loop_t *loop, const char *path, mode_t mode);
/* Queues data (copied; NULL removes the file). cb may be NULL. */
int statefile_writer_put(statefile_writer *w, const char *data, size_t len, statefile_cb cb, void *opaque);
/* Frees now, or after the write in flight ends. Data already put is still
 * written, but no callback runs after this. */
void statefile_writer_free(statefile_writer *w);

#endif
