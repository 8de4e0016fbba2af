/* tables_sqlite_vfs.c: an SQLite VFS over the default one whose database and WAL writes are
 * handed to the disk in chunks as they are made (tables_sqlite_vfs.h).
 *
 * DESIGN: a shim in SQLite's documented way: our file object is followed in memory by the
 * default VFS's (szOsFile adds both), xOpen opens the real file and then, for a main database
 * or WAL file, a read-only descriptor of our own on the same path (sync_file_range acts on the
 * file's pages, whichever descriptor names it). xWrite forwards the write and adds it to the
 * file's pending range; once TABLES_SQLITE_VFS_CHUNK bytes are pending, it starts their
 * writeback and waits for it (SYNC_FILE_RANGE_WAIT_BEFORE | WRITE | WAIT_AFTER), in the
 * writing thread (the import's, at background I/O priority). A failed hand-off is ignored: it is
 * advice, and SQLite's own sync reports any write error. Every other call is forwarded
 * unchanged. Files are used by one connection at a time (SQLite's rule), so the pending range
 * needs no lock; the chunk counter is atomic. */
#include "tables_sqlite/tables_sqlite_vfs.h"

#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

struct tsv_file {
    sqlite3_file base; /* pMethods = &tsv_io once the real file is open */
    sqlite3_file *real;
    int fd;           /* ours, for sync_file_range; -1 for files we do not stream */
    sqlite3_int64 lo; /* pending range [lo, hi) */
    sqlite3_int64 hi;
    sqlite3_int64 bytes; /* bytes written into it */
};

static sqlite3_vfs tsv_vfs;
static atomic_uint_fast64_t tsv_nchunks;

#define TSV_ROOT ((sqlite3_vfs *)tsv_vfs.pAppData)
#define TSV_REAL(f) (((struct tsv_file *)(f))->real)

static void tsv_reset(struct tsv_file *f)
{
    f->lo = f->hi = f->bytes = 0;
}

static int tsv_close(sqlite3_file *file)
{
    struct tsv_file *f = (struct tsv_file *)file;
    int rc = f->real->pMethods->xClose(f->real);

    if (f->fd >= 0) {
        close(f->fd);
        f->fd = -1;
    }
    return rc;
}

static int tsv_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
    return TSV_REAL(f)->pMethods->xRead(TSV_REAL(f), buf, amt, off);
}

static int tsv_write(sqlite3_file *file, const void *buf, int amt, sqlite3_int64 off)
{
    struct tsv_file *f = (struct tsv_file *)file;
    int rc = f->real->pMethods->xWrite(f->real, buf, amt, off);

    if (rc != SQLITE_OK || f->fd < 0) {
        return rc;
    }
    if (f->bytes == 0 || off < f->lo) {
        f->lo = off;
    }
    if (f->bytes == 0 || off + amt > f->hi) {
        f->hi = off + amt;
    }
    f->bytes += amt;
    if (f->bytes >= TABLES_SQLITE_VFS_CHUNK) {
        (void)sync_file_range(f->fd, f->lo, f->hi - f->lo,
                              SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                  SYNC_FILE_RANGE_WAIT_AFTER);
        atomic_fetch_add(&tsv_nchunks, 1);
        tsv_reset(f);
    }
    return rc;
}

static int tsv_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return TSV_REAL(f)->pMethods->xTruncate(TSV_REAL(f), size);
}

static int tsv_sync(sqlite3_file *file, int flags)
{
    struct tsv_file *f = (struct tsv_file *)file;

    tsv_reset(f); /* the sync writes whatever is pending */
    return f->real->pMethods->xSync(f->real, flags);
}

static int tsv_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return TSV_REAL(f)->pMethods->xFileSize(TSV_REAL(f), size);
}

static int tsv_lock(sqlite3_file *f, int lock)
{
    return TSV_REAL(f)->pMethods->xLock(TSV_REAL(f), lock);
}

static int tsv_unlock(sqlite3_file *f, int lock)
{
    return TSV_REAL(f)->pMethods->xUnlock(TSV_REAL(f), lock);
}

static int tsv_check_reserved(sqlite3_file *f, int *out)
{
    return TSV_REAL(f)->pMethods->xCheckReservedLock(TSV_REAL(f), out);
}

static int tsv_file_control(sqlite3_file *f, int op, void *arg)
{
    return TSV_REAL(f)->pMethods->xFileControl(TSV_REAL(f), op, arg);
}

static int tsv_sector_size(sqlite3_file *f)
{
    return TSV_REAL(f)->pMethods->xSectorSize(TSV_REAL(f));
}

static int tsv_device_characteristics(sqlite3_file *f)
{
    return TSV_REAL(f)->pMethods->xDeviceCharacteristics(TSV_REAL(f));
}

static int tsv_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **out)
{
    return TSV_REAL(f)->pMethods->xShmMap(TSV_REAL(f), pg, pgsz, extend, out);
}

static int tsv_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return TSV_REAL(f)->pMethods->xShmLock(TSV_REAL(f), offset, n, flags);
}

static void tsv_shm_barrier(sqlite3_file *f)
{
    TSV_REAL(f)->pMethods->xShmBarrier(TSV_REAL(f));
}

static int tsv_shm_unmap(sqlite3_file *f, int delete_flag)
{
    return TSV_REAL(f)->pMethods->xShmUnmap(TSV_REAL(f), delete_flag);
}

static int tsv_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **out)
{
    return TSV_REAL(f)->pMethods->xFetch(TSV_REAL(f), off, amt, out);
}

static int tsv_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return TSV_REAL(f)->pMethods->xUnfetch(TSV_REAL(f), off, p);
}

/* Version 3 methods; a real file of an older version gets io methods without what it lacks. */
#define TSV_IO_V1_METHODS                                                                          \
    tsv_close, tsv_read, tsv_write, tsv_truncate, tsv_sync, tsv_file_size, tsv_lock, tsv_unlock,   \
        tsv_check_reserved, tsv_file_control, tsv_sector_size, tsv_device_characteristics
#define TSV_IO_V2_METHODS                                                                          \
    TSV_IO_V1_METHODS, tsv_shm_map, tsv_shm_lock, tsv_shm_barrier, tsv_shm_unmap
static const sqlite3_io_methods tsv_io = {3, TSV_IO_V2_METHODS, tsv_fetch, tsv_unfetch};
static const sqlite3_io_methods tsv_io_v2 = {2, TSV_IO_V2_METHODS, NULL, NULL};
static const sqlite3_io_methods tsv_io_v1 = {1,   TSV_IO_V1_METHODS, NULL, NULL, NULL, NULL, NULL,
                                             NULL};

static int tsv_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
                    int *out_flags)
{
    struct tsv_file *f = (struct tsv_file *)file;
    int version;
    int rc;

    (void)vfs;
    memset(f, 0, sizeof(*f));
    f->fd = -1;
    f->real = (sqlite3_file *)(f + 1);
    rc = TSV_ROOT->xOpen(TSV_ROOT, name, f->real, flags, out_flags);
    if (f->real->pMethods == NULL) {
        return rc; /* nothing to close: SQLite sees pMethods NULL */
    }
    version = f->real->pMethods->iVersion;
    f->base.pMethods = version >= 3 ? &tsv_io : version == 2 ? &tsv_io_v2 : &tsv_io_v1;
    if (rc == SQLITE_OK && name != NULL && (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)) != 0) {
        f->fd = open(name, O_RDONLY | O_CLOEXEC);
    }
    return rc;
}

static int tsv_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void)vfs;
    return TSV_ROOT->xDelete(TSV_ROOT, name, sync_dir);
}

static int tsv_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    return TSV_ROOT->xAccess(TSV_ROOT, name, flags, out);
}

static int tsv_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return TSV_ROOT->xFullPathname(TSV_ROOT, name, n, out);
}

static void *tsv_dl_open(sqlite3_vfs *vfs, const char *name)
{
    (void)vfs;
    return TSV_ROOT->xDlOpen(TSV_ROOT, name);
}

static void tsv_dl_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    TSV_ROOT->xDlError(TSV_ROOT, n, out);
}

static void (*tsv_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
    (void)vfs;
    return TSV_ROOT->xDlSym(TSV_ROOT, h, sym);
}

static void tsv_dl_close(sqlite3_vfs *vfs, void *h)
{
    (void)vfs;
    TSV_ROOT->xDlClose(TSV_ROOT, h);
}

static int tsv_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return TSV_ROOT->xRandomness(TSV_ROOT, n, out);
}

static int tsv_sleep(sqlite3_vfs *vfs, int us)
{
    (void)vfs;
    return TSV_ROOT->xSleep(TSV_ROOT, us);
}

static int tsv_current_time(sqlite3_vfs *vfs, double *out)
{
    (void)vfs;
    return TSV_ROOT->xCurrentTime(TSV_ROOT, out);
}

static int tsv_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return TSV_ROOT->xGetLastError(TSV_ROOT, n, out);
}

static int tsv_current_time_i64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    (void)vfs;
    return TSV_ROOT->xCurrentTimeInt64(TSV_ROOT, out);
}

static pthread_once_t tsv_once = PTHREAD_ONCE_INIT;
static int tsv_register_rc = SQLITE_ERROR;

static void tsv_register_once(void)
{
    sqlite3_vfs *root = sqlite3_vfs_find(NULL);

    if (root == NULL || root->iVersion < 2) {
        return; /* SQLITE_ERROR: the unix VFS of every supported SQLite is version 3 */
    }
    tsv_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(struct tsv_file) + root->szOsFile,
        .mxPathname = root->mxPathname,
        .zName = TABLES_SQLITE_VFS_NAME,
        .pAppData = root,
        .xOpen = tsv_open,
        .xDelete = tsv_delete,
        .xAccess = tsv_access,
        .xFullPathname = tsv_full_pathname,
        .xDlOpen = tsv_dl_open,
        .xDlError = tsv_dl_error,
        .xDlSym = tsv_dl_sym,
        .xDlClose = tsv_dl_close,
        .xRandomness = tsv_randomness,
        .xSleep = tsv_sleep,
        .xCurrentTime = tsv_current_time,
        .xGetLastError = tsv_last_error,
        .xCurrentTimeInt64 = tsv_current_time_i64,
    };
    tsv_register_rc = sqlite3_vfs_register(&tsv_vfs, 0);
}

int tables_sqlite_vfs_register(void)
{
    pthread_once(&tsv_once, tsv_register_once);
    return tsv_register_rc;
}

uint64_t tables_sqlite_vfs_chunks(void)
{
    return atomic_load(&tsv_nchunks);
}
