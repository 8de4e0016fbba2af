/* sd_fs.h: filesystem helpers with durability (Redis rdbSave / Postgres durable_rename):
 * temp file + fsync + rename + fsync of the directory. Functions return 0 or -errno. */
#ifndef SD_FS_H
#define SD_FS_H

#include <stddef.h>
#include <sys/types.h>

/* Modes of every file and directory streamd creates under its data dir: private to its user
 * (the data holds source secrets and records). A stricter umask still applies. */
#define SD_FILE_MODE 0600
#define SD_DIR_MODE 0700

#ifdef __cplusplus
extern "C" {
#endif

/* Creates path and its missing parents with mode; existing directories are fine. */
int sd_mkdir_p(const char *path, mode_t mode);
/* fsyncs the directory at path. */
int sd_fsync_dir(const char *path);
/* fsyncs the directory that contains path. */
int sd_fsync_parent(const char *path);
/* Atomically replaces path with data: writes a new path.tmp created with mode (a stale one is
 * removed first), fsyncs, renames, fsyncs the dir. */
int sd_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* Reads a whole file into an owned, NUL-terminated buffer (*out, free with free()). */
int sd_read_file(const char *path, char **out, size_t *len);
/* Writes all of len bytes to fd (retrying short writes and EINTR). */
int sd_write_all(int fd, const void *data, size_t len);
/* Removes group and other permissions from path (file or directory) when it has any, so data
 * created by an older version becomes private. A missing path is fine. */
int sd_make_private(const char *path);
/* Removes a directory tree (files and subdirectories). Missing path is fine. */
int sd_rm_rf(const char *path);

#ifdef __cplusplus
}
#endif

#endif
