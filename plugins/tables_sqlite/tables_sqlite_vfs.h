/* tables_sqlite_vfs.h: the SQLite VFS of the sqlite table backend: the default VFS with its
 * writes streamed to the disk.
 *
 * An import writes a table's new pages twice, each time as one burst: into the WAL (synced at
 * the commit) and into the database (synced by the checkpoint), tens of MiB per import. A
 * slice writer's fdatasync issued during such a sync waits until the device has the whole burst,
 * so every acknowledgement of that window waits for it (issue 14: 15-25 ms instead of 0.4 ms).
 * Through this VFS, every TABLES_SQLITE_VFS_CHUNK bytes written to a database or WAL file are
 * handed to the disk at once (sync_file_range: start writeback of the range written, wait for
 * it): the writes leave in chunks as they are made, at most one chunk of the import's is in the
 * device at a time, and the commit's and the checkpoint's syncs find little left to write.
 * Durability is SQLite's, unchanged (its syncs are forwarded as they are). */
#ifndef TABLES_SQLITE_VFS_H
#define TABLES_SQLITE_VFS_H

#include <stdint.h>

/* The VFS's name, for sqlite3_open_v2. */
#define TABLES_SQLITE_VFS_NAME "streamd"

/* Bytes written to one file between two hand-offs to the disk. */
#define TABLES_SQLITE_VFS_CHUNK ((int64_t)1 << 20)

/* Registers the VFS (not as the default) the first time; later calls do nothing. Returns an
 * SQLite result code. Any thread. */
int tables_sqlite_vfs_register(void);

/* The number of chunks handed to the disk so far, by every file of the VFS (for tests). */
uint64_t tables_sqlite_vfs_chunks(void);

#endif
