/* tempfile.h: how the image layer makes a file appear whole or not at all:
 * written under a temp name next to its target, synced, renamed into place,
 * and the directory synced. Internal to storage/. */
#ifndef AGENTD_STORAGE_TEMPFILE_H
#define AGENTD_STORAGE_TEMPFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "storage.h"

/* Opens a new file ".NAME.tmp-XXXXXXXX" next to path (read-write, 0644
 * minus umask, close-on-exec); its name goes into tmp (PATH_MAX bytes).
 * Returns the fd, or a negative errno with a message in err. */
int img_temp_open(const char *path, char *tmp, char *err, size_t errlen);

/* Renames tmp to path. Without replace an existing path is refused
 * (-EEXIST); where the filesystem cannot rename without replacing, a hard
 * link refuses an existing name too. With replace, path is swapped for tmp
 * in one rename. */
int img_temp_install(const char *tmp, const char *path, bool replace, char *err, size_t errlen);

/* fsyncs the directory that holds path. */
int img_sync_dir(const char *path, char *err, size_t errlen);

/* The end of every new image written into tmp (open on fd): fsync, close
 * (fd is closed in every case), open it back with img_open as a reader
 * would (backing files inside roots), install it at path (img_temp_install)
 * and sync the directory. On failure tmp is removed, and without replace
 * nothing is left at path either. */
int img_temp_commit(int fd, const char *tmp, const char *path, img_format format,
                    const char *const *roots, bool replace, char *err, size_t errlen);

#endif
