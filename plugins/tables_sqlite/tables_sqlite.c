/* tables_sqlite.c: the "sqlite" table-storage backend: one SQLite database per project,
 * <dir>/project-<projectId>.sqlite, holding the user's tables (exact table ids as quoted
 * names, TEXT columns in mapping order, PRIMARY KEY (...) of the mapping's key columns when it
 * has any) and streamd's import ledger,
 * "_streamd_import_ledger"(slice_key PRIMARY KEY, table_id, rows, imported_at).
 *
 * DESIGN: the context caches one connection per project database, opened on first use and
 * kept until close; each has its own mutex, so calls for one project are serialized while
 * different projects proceed in parallel (a second mutex guards only the list of
 * connections). Connections write through the "streamd" VFS, which hands their writes to the
 * disk in chunks as they are made (tables_sqlite_vfs.h), so an import's commit and checkpoint are
 * no bursts beside the slice writers' syncs. New databases get 32 KiB pages
 * (TABLES_SQLITE_PAGE_SIZE), connections an 8 MiB page cache (TABLES_SQLITE_CACHE_SIZE).
 * Connections run in WAL mode, so users can read a database while streamd writes it, with
 * synchronous=FULL, so a committed import survives kill -9 and power loss, and with a busy timeout,
 * so another writer (a second streamd process, a user) delays us instead of failing us at once. An
 * import is one BEGIN IMMEDIATE ... COMMIT: the table check (and its creation when missing), every
 * row of every slice not yet in the ledger, and one ledger row per such slice. BEGIN IMMEDIATE
 * takes the write lock before the ledger is read, so two importers of one slice (threads or
 * processes) cannot both miss its ledger row. Any failure, a source read error included, rolls the
 * whole transaction back. Rows are inserted through one prepared statement with values bound by
 * pointer and length: byte-exact,
 * '' for an empty field. A table with a primary key is loaded by INSERT ... ON CONFLICT (key) DO
 * UPDATE, so, rows going in one by one in order, the last row with a key wins. Errors are returned
 * as codes with a message in err; nothing is logged here. */
#include "tables/sd_tables.h"

#include "core/sd_alloc.h"
#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "core/sd_fs.h"
#include "core/sd_time.h"
#include "tables/sd_csv_reader.h"
#include "tables/sd_table_schema.h"
#include "tables_sqlite/tables_sqlite_vfs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* How long a call waits for another writer's lock before failing with -EBUSY. */
#define TABLES_SQLITE_BUSY_MS 30000
/* The same for check_table, which the API thread calls: a WAL reader is hardly ever busy. */
#define TABLES_SQLITE_CHECK_BUSY_MS 1000

#define TABLES_SQLITE_LEDGER "_streamd_import_ledger"

/* The page size of new databases. An import writes each page twice (into the WAL, then at the
 * checkpoint into the database), with a system call or two per page. Against SQLite's 4 KiB,
 * 16 KiB pages cut an import's CPU by about a third, and 32 KiB by a further sixth for appends (a
 * tenth for upserts of random keys); 64 KiB pages cost upserts of small rows more than 32 KiB
 * (docs/BENCHMARKS.md, issue 14). */
#define TABLES_SQLITE_PAGE_SIZE "32768"
/* Each connection's page cache (negative: KiB). An upsert of random keys rewrites pages all over
 * the table's index; with SQLite's default 2 MiB they spill to the WAL again and again, and the
 * VFS hands every spilled MiB to the disk: 200,000 keyed rows imported at 44k rows/s, against
 * 150k rows/s with 8 MiB (and 133k before the VFS, with the default cache and 4 KiB pages). The
 * cache fills only while a table that large is written, and is the connection's until close. */
#define TABLES_SQLITE_CACHE_SIZE "-8192"

/* One project database and its connection. */
struct tables_sqlite_db {
    struct tables_sqlite_db *next;
    int64_t project;
    pthread_mutex_t mu; /* serializes every use of conn and the statements */
    sqlite3 *conn;
    sqlite3_stmt *ledger_get; /* SELECT 1 ... WHERE slice_key = ?1 */
    sqlite3_stmt *ledger_put; /* INSERT (slice_key, table_id, rows, imported_at) */
    sqlite3_stmt *ledger_del; /* DELETE ... WHERE table_id = ?1 */
};

struct tables_sqlite {
    char *dir;
    pthread_mutex_t mu; /* guards dbs */
    struct tables_sqlite_db *dbs;
};

/* ---- helpers ---------------------------------------------------------------------------- */

/* Maps an SQLite result code to ours. */
static int tables_sqlite_code(int src)
{
    switch (src & 0xff) {
    case SQLITE_OK:
        return 0;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return SD_ECORRUPT;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return -EACCES;
    case SQLITE_CONSTRAINT:
        return SD_ECONFLICT;
    case SQLITE_ERROR:
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
        return SD_EINVAL;
    default:
        return -EIO;
    }
}

/* Writes "<what>: <sqlite message>" into err and returns the mapped code of src. */
static int tables_sqlite_fail(struct sd_buf *err, sqlite3 *conn, int src, const char *what)
{
    sd_buf_setf(err, "%s: %s", what, conn != NULL ? sqlite3_errmsg(conn) : sqlite3_errstr(src));
    return tables_sqlite_code(src);
}

/* Runs one statement without results. */
static int tables_sqlite_exec(sqlite3 *conn, const char *sql, struct sd_buf *err)
{
    int src = sqlite3_exec(conn, sql, NULL, NULL, NULL);

    if (src != SQLITE_OK) {
        return tables_sqlite_fail(err, conn, src, sql);
    }
    return 0;
}

/* Rolls back the open transaction, if SQLite has not already done so. */
static void tables_sqlite_rollback(sqlite3 *conn)
{
    if (!sqlite3_get_autocommit(conn)) {
        (void)sqlite3_exec(conn, "ROLLBACK", NULL, NULL, NULL);
    }
}

/* Checks a table id: non-empty, not one of our own or SQLite's names (SQLite compares names
 * without regard to ASCII case, so neither do we here). */
static int tables_sqlite_check_id(const char *table_id, struct sd_buf *err)
{
    size_t plen = strlen(SD_TABLES_INTERNAL_PREFIX);

    if (table_id == NULL || table_id[0] == '\0') {
        sd_buf_setf(err, "empty table id");
        return SD_EINVAL;
    }
    if (strncasecmp(table_id, SD_TABLES_INTERNAL_PREFIX, plen) == 0 ||
        strncasecmp(table_id, "sqlite_", 7) == 0) {
        sd_buf_setf(err, "table id \"%s\" is reserved", table_id);
        return SD_EINVAL;
    }
    return 0;
}

/* ---- connections ------------------------------------------------------------------------ */

static void tables_sqlite_db_free(struct tables_sqlite_db *d)
{
    if (d == NULL) {
        return;
    }
    sqlite3_finalize(d->ledger_get);
    sqlite3_finalize(d->ledger_put);
    sqlite3_finalize(d->ledger_del);
    sqlite3_close(d->conn);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

static int tables_sqlite_prepare(sqlite3 *conn, const char *sql, sqlite3_stmt **out,
                                 struct sd_buf *err)
{
    int src = sqlite3_prepare_v2(conn, sql, -1, out, NULL);

    if (src != SQLITE_OK) {
        return tables_sqlite_fail(err, conn, src, sql);
    }
    return 0;
}

/* Creates the database file at path private (SQLite gives its -wal and -shm files the
 * database's mode); an existing one and its companions lose group and other permissions. */
static int tables_sqlite_create_private(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char companion[PATH_MAX];
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, SD_FILE_MODE);
    int rc = 0;

    if (fd < 0) {
        return -errno;
    }
    close(fd);
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]) && rc == 0; i++) {
        snprintf(companion, sizeof(companion), "%s%s", path, suffixes[i]);
        rc = sd_make_private(companion);
    }
    return rc;
}

/* Opens (creating when missing) and sets up the database of project at path. */
static int tables_sqlite_db_open(const char *dir, const char *path, int64_t project,
                                 struct tables_sqlite_db **out, struct sd_buf *err)
{
    struct tables_sqlite_db *d = sd_xcalloc(1, sizeof(*d));
    sqlite3_stmt *st = NULL;
    int existed = access(path, F_OK) == 0;
    int src;
    int rc;

    *out = NULL;
    d->project = project;
    pthread_mutex_init(&d->mu, NULL);
    rc = tables_sqlite_create_private(path);
    if (rc != 0) {
        sd_buf_printf(err, "cannot create %s: %s", path, sd_strerror(rc));
        goto fail;
    }
    src = sqlite3_open_v2(path, &d->conn,
                          SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                          TABLES_SQLITE_VFS_NAME);
    if (src != SQLITE_OK) {
        rc = tables_sqlite_fail(err, d->conn, src, path);
        goto fail;
    }
    sqlite3_busy_timeout(d->conn, TABLES_SQLITE_BUSY_MS);
    /* Before the first write only: a new database gets larger pages (existing ones keep theirs) */
    rc = tables_sqlite_exec(d->conn, "PRAGMA page_size=" TABLES_SQLITE_PAGE_SIZE, err);
    if (rc != 0) {
        goto fail;
    }
    /* journal_mode answers the mode in effect: anything but "wal" (a file system without
     * shared memory, say) would block users' readers, so it is an error. While another
     * connection creates the database and switches it to WAL, the pragma answers SQLITE_BUSY at
     * once, without the busy handler: retry it for as long as the busy timeout. */
    rc = tables_sqlite_prepare(d->conn, "PRAGMA journal_mode=WAL", &st, err);
    if (rc != 0) {
        goto fail;
    }
    for (int64_t waited_ms = 0;; waited_ms += 10) {
        src = sqlite3_step(st);
        if (src != SQLITE_BUSY || waited_ms >= TABLES_SQLITE_BUSY_MS) {
            break;
        }
        sqlite3_reset(st);
        usleep(10 * 1000);
    }
    if (src != SQLITE_ROW) {
        rc = tables_sqlite_fail(err, d->conn, src, "PRAGMA journal_mode=WAL");
        goto fail;
    }
    if (sqlite3_column_text(st, 0) == NULL ||
        strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
        sd_buf_setf(err, "%s: cannot switch to WAL mode", path);
        rc = -ENOTSUP;
        goto fail;
    }
    sqlite3_finalize(st);
    st = NULL;
    rc = tables_sqlite_exec(d->conn, "PRAGMA synchronous=FULL", err);
    if (rc == 0) {
        rc = tables_sqlite_exec(d->conn, "PRAGMA cache_size=" TABLES_SQLITE_CACHE_SIZE, err);
    }
    if (rc == 0) {
        rc = tables_sqlite_exec(d->conn,
                                "CREATE TABLE IF NOT EXISTS \"" TABLES_SQLITE_LEDGER "\" ("
                                "\"slice_key\" TEXT PRIMARY KEY, "
                                "\"table_id\" TEXT NOT NULL, "
                                "\"rows\" INTEGER NOT NULL, "
                                "\"imported_at\" TEXT NOT NULL)",
                                err);
    }
    if (rc == 0) {
        rc = tables_sqlite_exec(d->conn,
                                "CREATE INDEX IF NOT EXISTS \"" TABLES_SQLITE_LEDGER "_table\" "
                                "ON \"" TABLES_SQLITE_LEDGER "\" (\"table_id\")",
                                err);
    }
    if (rc == 0) {
        rc = tables_sqlite_prepare(
            d->conn, "SELECT 1 FROM \"" TABLES_SQLITE_LEDGER "\" WHERE \"slice_key\" = ?1",
            &d->ledger_get, err);
    }
    if (rc == 0) {
        rc = tables_sqlite_prepare(d->conn,
                                   "INSERT INTO \"" TABLES_SQLITE_LEDGER
                                   "\" (\"slice_key\", \"table_id\", \"rows\", \"imported_at\") "
                                   "VALUES (?1, ?2, ?3, ?4)",
                                   &d->ledger_put, err);
    }
    if (rc == 0) {
        rc = tables_sqlite_prepare(
            d->conn, "DELETE FROM \"" TABLES_SQLITE_LEDGER "\" WHERE \"table_id\" = ?1",
            &d->ledger_del, err);
    }
    if (rc != 0) {
        goto fail;
    }
    if (!existed) {
        /* the new file's directory entry must survive power loss, as must the directory */
        rc = sd_fsync_dir(dir);
        if (rc == 0) {
            rc = sd_fsync_parent(dir);
        }
        if (rc != 0) {
            sd_buf_setf(err, "fsync %s: %s", dir, sd_strerror(rc));
            goto fail;
        }
    }
    *out = d;
    return 0;

fail:
    sqlite3_finalize(st);
    tables_sqlite_db_free(d);
    return rc;
}

/* Finds the cached connection of project, or opens it (only if create or the file exists;
 * otherwise SD_ENOTFOUND). The connection stays valid until the context is closed. */
static int tables_sqlite_get(struct tables_sqlite *ts, int64_t project, int create,
                             struct tables_sqlite_db **out, struct sd_buf *err)
{
    struct tables_sqlite_db *d;
    char *path;
    int rc = 0;

    *out = NULL;
    if (project < 0) {
        sd_buf_setf(err, "invalid project id %" PRId64, project);
        return SD_EINVAL;
    }
    pthread_mutex_lock(&ts->mu);
    for (d = ts->dbs; d != NULL; d = d->next) {
        if (d->project == project) {
            break;
        }
    }
    if (d == NULL) {
        path = sd_xasprintf("%s/project-%" PRId64 ".sqlite", ts->dir, project);
        if (!create && access(path, F_OK) != 0) {
            rc = SD_ENOTFOUND;
        } else {
            rc = tables_sqlite_db_open(ts->dir, path, project, &d, err);
        }
        if (rc == 0) {
            d->next = ts->dbs;
            ts->dbs = d;
        }
        free(path);
    }
    pthread_mutex_unlock(&ts->mu);
    *out = d;
    return rc;
}

/* ---- tables ----------------------------------------------------------------------------- */

/* Compares the existing table table_id (its exact name exists) with schema. */
static int tables_sqlite_compare(struct tables_sqlite_db *d, const char *table_id,
                                 const struct sd_table_schema *schema, struct sd_buf *err)
{
    sqlite3_stmt *st = NULL;
    char **names = NULL;
    char **types = NULL;
    unsigned char *pks = NULL;
    size_t n = 0;
    size_t cap = 0;
    int has_hidden = 0;
    int src;
    int rc;

    rc = tables_sqlite_prepare(d->conn, "SELECT name, type, hidden, pk FROM pragma_table_xinfo(?1)",
                               &st, err);
    if (rc != 0) {
        return rc;
    }
    sqlite3_bind_text(st, 1, table_id, -1, SQLITE_STATIC);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        const char *type = (const char *)sqlite3_column_text(st, 1);
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = sd_xrealloc(names, cap * sizeof(*names));
            types = sd_xrealloc(types, cap * sizeof(*types));
            pks = sd_xrealloc(pks, cap);
        }
        names[n] = sd_xstrdup(name != NULL ? name : "");
        types[n] = sd_xstrdup(type != NULL ? type : "");
        pks[n] = sqlite3_column_int(st, 3) > 0;
        has_hidden |= sqlite3_column_int(st, 2) != 0;
        n++;
    }
    if (src != SQLITE_DONE) {
        rc = tables_sqlite_fail(err, d->conn, src, "reading the table's columns");
    } else if (has_hidden || !sd_table_schema_matches(schema, (const char *const *)names,
                                                      (const char *const *)types, pks, n)) {
        if (err != NULL) {
            sd_buf_reset(err);
            (void)sd_buf_printf(err, "table \"%s\" exists with columns ", table_id);
            sd_table_describe(err, (const char *const *)names, (const char *const *)types, pks, n);
            (void)sd_buf_append_str(err, ", expected ");
            sd_table_describe(err, schema->columns, NULL, schema->is_pk, schema->ncolumns);
        }
        rc = SD_ECONFLICT;
    }
    sqlite3_finalize(st);
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
        free(types[i]);
    }
    free(names);
    free(types);
    free(pks);
    return rc;
}

/* check_table on d (caller holds d->mu): *exists = 1 when table_id is a table with exactly
 * these columns, 0 when no object of that name (ignoring case) exists. */
static int tables_sqlite_check_locked(struct tables_sqlite_db *d, const char *table_id,
                                      const struct sd_table_schema *schema, int *exists,
                                      struct sd_buf *err)
{
    sqlite3_stmt *st = NULL;
    char *found = NULL;
    char *kind = NULL;
    int src;
    int rc;

    *exists = 0;

    /* object names are one case-insensitive namespace in SQLite */
    rc = tables_sqlite_prepare(
        d->conn, "SELECT name, type FROM sqlite_master WHERE name = ?1 COLLATE NOCASE", &st, err);
    if (rc != 0) {
        return rc;
    }
    sqlite3_bind_text(st, 1, table_id, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        found = sd_xstrdup((const char *)sqlite3_column_text(st, 0));
        kind = sd_xstrdup((const char *)sqlite3_column_text(st, 1));
    } else if (src != SQLITE_DONE) {
        rc = tables_sqlite_fail(err, d->conn, src, "looking up the table");
    }
    sqlite3_finalize(st);
    if (rc != 0) {
        goto out;
    }
    if (found != NULL) {
        if (strcmp(kind, "table") != 0) {
            sd_buf_setf(err, "\"%s\" exists as a %s, not a table", found, kind);
            rc = SD_ECONFLICT;
        } else if (strcmp(found, table_id) != 0) {
            sd_buf_setf(err,
                        "table id \"%s\" clashes with existing table \"%s\" (SQLite "
                        "table names ignore case)",
                        table_id, found);
            rc = SD_ECONFLICT;
        } else {
            rc = tables_sqlite_compare(d, table_id, schema, err);
            *exists = rc == 0;
        }
    }

out:
    free(found);
    free(kind);
    return rc;
}

/* ensure_table inside the caller's transaction. */
static int tables_sqlite_ensure_locked(struct tables_sqlite_db *d, const char *table_id,
                                       const struct sd_table_schema *schema, struct sd_buf *err)
{
    struct sd_buf sql = SD_BUF_INIT;
    int exists = 0;
    int src;
    int rc;

    rc = tables_sqlite_check_locked(d, table_id, schema, &exists, err);
    if (rc != 0 || exists) {
        return rc;
    }
    rc = sd_buf_append_str(&sql, "CREATE TABLE ");
    if (rc == 0) {
        rc = sd_table_sql_ident(&sql, table_id);
    }
    if (rc == 0) {
        rc = sd_buf_append_char(&sql, ' ');
    }
    if (rc == 0) {
        rc = sd_table_sql_define(&sql, schema, "TEXT");
    }
    if (rc != 0) {
        sd_buf_setf(err, "out of memory");
        goto out;
    }
    src = sqlite3_exec(d->conn, sd_buf_cstr(&sql), NULL, NULL, NULL);
    if (src != SQLITE_OK) {
        rc = tables_sqlite_fail(err, d->conn, src, "creating the table");
    }

out:
    sd_buf_fini(&sql);
    return rc;
}

/* ---- ops -------------------------------------------------------------------------------- */

static int tables_sqlite_open(const struct sd_config *cfg, const char *location, void **ctx)
{
    struct tables_sqlite *ts;
    int rc;

    (void)cfg;
    *ctx = NULL;
    if (location == NULL || location[0] == '\0') {
        return SD_EINVAL;
    }
    if (tables_sqlite_vfs_register() != SQLITE_OK) {
        return -ENOMEM; /* sqlite3_vfs_register fails only for want of memory */
    }
    rc = sd_mkdir_p(location, SD_DIR_MODE);
    if (rc == 0) {
        rc = sd_make_private(location);
    }
    if (rc != 0) {
        return rc;
    }
    ts = sd_xcalloc(1, sizeof(*ts));
    ts->dir = sd_xstrdup(location);
    pthread_mutex_init(&ts->mu, NULL);
    *ctx = ts;
    return 0;
}

static void tables_sqlite_close(void *ctx)
{
    struct tables_sqlite *ts = ctx;
    struct tables_sqlite_db *d;

    if (ts == NULL) {
        return;
    }
    while ((d = ts->dbs) != NULL) {
        ts->dbs = d->next;
        tables_sqlite_db_free(d);
    }
    pthread_mutex_destroy(&ts->mu);
    free(ts->dir);
    free(ts);
}

/* Checks the table id and the columns of a table call. */
static int tables_sqlite_check_args(const char *table_id, const struct sd_table_schema *schema,
                                    struct sd_buf *err)
{
    int rc = tables_sqlite_check_id(table_id, err);

    return rc != 0 ? rc : sd_table_schema_check(schema, err);
}

static int tables_sqlite_ensure_table(void *ctx, int64_t project, const char *table_id,
                                      const struct sd_table_schema *schema, struct sd_buf *err)
{
    struct tables_sqlite_db *d;
    int rc;

    rc = tables_sqlite_check_args(table_id, schema, err);
    if (rc == 0) {
        rc = tables_sqlite_get(ctx, project, 1, &d, err);
    }
    if (rc != 0) {
        return rc;
    }
    pthread_mutex_lock(&d->mu);
    rc = tables_sqlite_exec(d->conn, "BEGIN IMMEDIATE", err);
    if (rc == 0) {
        rc = tables_sqlite_ensure_locked(d, table_id, schema, err);
    }
    if (rc == 0) {
        rc = tables_sqlite_exec(d->conn, "COMMIT", err);
    }
    if (rc != 0) {
        tables_sqlite_rollback(d->conn);
    }
    pthread_mutex_unlock(&d->mu);
    return rc;
}

/* Reads through a connection of its own, open for the call only, so that it never waits for
 * an import holding the project's connection (the API thread calls it); in WAL mode it reads
 * while a writer works. A project without a database has no table. */
static int tables_sqlite_check_table(void *ctx, int64_t project, const char *table_id,
                                     const struct sd_table_schema *schema, struct sd_buf *err)
{
    struct tables_sqlite *ts = ctx;
    struct tables_sqlite_db view;
    char *path;
    int exists = 0;
    int src;
    int rc;

    rc = tables_sqlite_check_args(table_id, schema, err);
    if (rc != 0) {
        return rc;
    }
    path = sd_xasprintf("%s/project-%" PRId64 ".sqlite", ts->dir, project);
    if (access(path, F_OK) != 0) {
        free(path);
        return 0;
    }
    memset(&view, 0, sizeof(view));
    src = sqlite3_open_v2(path, &view.conn, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) {
        rc = tables_sqlite_fail(err, view.conn, src, path);
    } else {
        sqlite3_busy_timeout(view.conn, TABLES_SQLITE_CHECK_BUSY_MS);
        rc = tables_sqlite_check_locked(&view, table_id, schema, &exists, err);
    }
    sqlite3_close(view.conn);
    free(path);
    return rc;
}

/* 1 if slice_key is in the ledger, 0 if not, < 0 on error. */
static int tables_sqlite_ledger_has(struct tables_sqlite_db *d, const char *slice_key,
                                    struct sd_buf *err)
{
    int src;
    int rc;

    sqlite3_bind_text(d->ledger_get, 1, slice_key, -1, SQLITE_STATIC);
    src = sqlite3_step(d->ledger_get);
    if (src == SQLITE_ROW) {
        rc = 1;
    } else if (src == SQLITE_DONE) {
        rc = 0;
    } else {
        rc = tables_sqlite_fail(err, d->conn, src, "reading the import ledger");
    }
    sqlite3_reset(d->ledger_get);
    sqlite3_clear_bindings(d->ledger_get);
    return rc;
}

/* Inserts every row of one slice with ins, then its ledger row. *rows = rows inserted. */
static int tables_sqlite_import_slice(struct tables_sqlite_db *d, sqlite3_stmt *ins,
                                      const char *table_id, size_t ncolumns,
                                      const struct sd_import_slice *s, uint64_t *rows,
                                      struct sd_buf *err)
{
    struct sd_csv_reader *r = NULL;
    const struct sd_str *f;
    char now[SD_TIME_ISO_LEN + 1];
    uint64_t n = 0;
    size_t nf;
    int src;
    int rc;

    *rows = 0;
    rc = sd_csv_reader_open(s->read, s->arg, &r);
    if (rc != 0) {
        sd_buf_setf(err, "slice %s: %s", s->slice_key, sd_strerror(rc));
        return rc;
    }
    while ((rc = sd_csv_reader_next(r, &f, &nf)) == 1) {
        if (nf != ncolumns) {
            sd_buf_setf(err, "slice %s: row %" PRIu64 " has %zu fields, expected %zu", s->slice_key,
                        n + 1, nf, ncolumns);
            rc = SD_ECORRUPT;
            goto out;
        }
        for (size_t i = 0; i < nf; i++) {
            /* a NULL pointer would bind SQL NULL: an empty field is '' */
            sqlite3_bind_text(ins, (int)i + 1, f[i].len > 0 ? f[i].p : "", (int)f[i].len,
                              SQLITE_STATIC);
        }
        src = sqlite3_step(ins);
        sqlite3_reset(ins);
        if (src != SQLITE_DONE) {
            rc = tables_sqlite_fail(err, d->conn, src, "inserting a row");
            goto out;
        }
        n++;
    }
    if (rc < 0) {
        sd_buf_setf(err, "slice %s: %s", s->slice_key,
                    sd_csv_reader_error(r)[0] != '\0' ? sd_csv_reader_error(r) : sd_strerror(rc));
        goto out;
    }
    sd_time_format_iso(sd_now_ms(), now);
    sqlite3_bind_text(d->ledger_put, 1, s->slice_key, -1, SQLITE_STATIC);
    sqlite3_bind_text(d->ledger_put, 2, table_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(d->ledger_put, 3, (sqlite3_int64)n);
    sqlite3_bind_text(d->ledger_put, 4, now, -1, SQLITE_STATIC);
    src = sqlite3_step(d->ledger_put);
    sqlite3_reset(d->ledger_put);
    sqlite3_clear_bindings(d->ledger_put);
    if (src != SQLITE_DONE) {
        rc = tables_sqlite_fail(err, d->conn, src, "writing the import ledger");
        goto out;
    }
    rc = 0;
    *rows = n;

out:
    sd_csv_reader_close(r);
    return rc;
}

/* Prepares INSERT INTO "table" ("c1", ...) VALUES (?1, ...), with a primary key followed by
 * ON CONFLICT ("k", ...) DO UPDATE SET "c" = excluded."c", ... (DO NOTHING when every column
 * is in the key: the row is already there). */
static int tables_sqlite_prepare_insert(struct tables_sqlite_db *d, const char *table_id,
                                        const struct sd_table_schema *schema, sqlite3_stmt **out,
                                        struct sd_buf *err)
{
    struct sd_buf sql = SD_BUF_INIT;
    int rc;

    rc = sd_buf_append_str(&sql, "INSERT INTO ");
    if (rc == 0) {
        rc = sd_table_sql_ident(&sql, table_id);
    }
    if (rc == 0) {
        rc = sd_buf_append_char(&sql, ' ');
    }
    if (rc == 0) {
        rc = sd_table_sql_names(&sql, schema, 0);
    }
    for (size_t i = 0; rc == 0 && i < schema->ncolumns; i++) {
        rc = sd_buf_printf(&sql, "%s?%zu", i == 0 ? " VALUES (" : ", ", i + 1);
    }
    if (rc == 0) {
        rc = sd_buf_append_char(&sql, ')');
    }
    if (rc == 0 && sd_table_schema_has_key(schema)) {
        rc = sd_buf_append_char(&sql, ' ');
        if (rc == 0) {
            rc = sd_table_sql_on_conflict(&sql, schema);
        }
    }
    if (rc != 0) {
        sd_buf_setf(err, "out of memory");
    } else {
        rc = tables_sqlite_prepare(d->conn, sd_buf_cstr(&sql), out, err);
    }
    sd_buf_fini(&sql);
    return rc;
}

static int tables_sqlite_import(void *ctx, int64_t project, const char *table_id,
                                const struct sd_table_schema *schema,
                                const struct sd_import_slice *slices, size_t nslices,
                                uint64_t *rows, struct sd_buf *err)
{
    struct tables_sqlite_db *d;
    sqlite3_stmt *ins = NULL;
    uint64_t total = 0;
    uint64_t n;
    int rc;

    if (rows != NULL) {
        *rows = 0;
    }
    rc = tables_sqlite_check_args(table_id, schema, err);
    for (size_t i = 0; rc == 0 && i < nslices; i++) {
        if (slices[i].slice_key == NULL || slices[i].slice_key[0] == '\0' ||
            slices[i].read == NULL) {
            sd_buf_setf(err, "slice %zu has no key or no source", i + 1);
            rc = SD_EINVAL;
        }
    }
    if (rc == 0) {
        rc = tables_sqlite_get(ctx, project, 1, &d, err);
    }
    if (rc != 0) {
        return rc;
    }
    pthread_mutex_lock(&d->mu);
    rc = tables_sqlite_exec(d->conn, "BEGIN IMMEDIATE", err);
    if (rc == 0) {
        rc = tables_sqlite_ensure_locked(d, table_id, schema, err);
    }
    if (rc == 0) {
        rc = tables_sqlite_prepare_insert(d, table_id, schema, &ins, err);
    }
    for (size_t i = 0; rc == 0 && i < nslices; i++) {
        rc = tables_sqlite_ledger_has(d, slices[i].slice_key, err);
        if (rc == 1) {
            /* imported before (or earlier in this call): skipped unread */
            rc = 0;
            continue;
        }
        if (rc == 0) {
            rc =
                tables_sqlite_import_slice(d, ins, table_id, schema->ncolumns, &slices[i], &n, err);
            total += n;
        }
    }
    sqlite3_finalize(ins);
    if (rc == 0) {
        rc = tables_sqlite_exec(d->conn, "COMMIT", err);
    }
    if (rc != 0) {
        tables_sqlite_rollback(d->conn);
        total = 0;
    }
    pthread_mutex_unlock(&d->mu);
    if (rows != NULL) {
        *rows = total;
    }
    return rc;
}

static int tables_sqlite_is_imported(void *ctx, int64_t project, const char *slice_key)
{
    struct tables_sqlite_db *d;
    int rc;

    if (slice_key == NULL) {
        return SD_EINVAL;
    }
    rc = tables_sqlite_get(ctx, project, 0, &d, NULL);
    if (rc == SD_ENOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    pthread_mutex_lock(&d->mu);
    rc = tables_sqlite_ledger_has(d, slice_key, NULL);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

static int tables_sqlite_drop_table(void *ctx, int64_t project, const char *table_id)
{
    struct tables_sqlite_db *d;
    struct sd_buf sql = SD_BUF_INIT;
    sqlite3_stmt *st = NULL;
    int exists = 0;
    int src;
    int rc;

    rc = tables_sqlite_check_id(table_id, NULL);
    if (rc != 0) {
        return rc;
    }
    rc = tables_sqlite_get(ctx, project, 0, &d, NULL);
    if (rc == SD_ENOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    pthread_mutex_lock(&d->mu);
    rc = tables_sqlite_exec(d->conn, "BEGIN IMMEDIATE", NULL);
    if (rc == 0) {
        /* the exact name only: "In.c-b.t" must not drop "in.c-b.t" */
        rc = tables_sqlite_prepare(
            d->conn, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1", &st, NULL);
    }
    if (rc == 0) {
        sqlite3_bind_text(st, 1, table_id, -1, SQLITE_STATIC);
        src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            exists = 1;
        } else if (src != SQLITE_DONE) {
            rc = tables_sqlite_code(src);
        }
        sqlite3_finalize(st);
    }
    if (rc == 0 && exists) {
        rc = sd_buf_append_str(&sql, "DROP TABLE ");
        if (rc == 0) {
            rc = sd_table_sql_ident(&sql, table_id);
        }
        if (rc == 0) {
            rc = tables_sqlite_exec(d->conn, sd_buf_cstr(&sql), NULL);
        }
    }
    if (rc == 0) {
        sqlite3_bind_text(d->ledger_del, 1, table_id, -1, SQLITE_STATIC);
        src = sqlite3_step(d->ledger_del);
        sqlite3_reset(d->ledger_del);
        sqlite3_clear_bindings(d->ledger_del);
        if (src != SQLITE_DONE) {
            rc = tables_sqlite_code(src);
        }
    }
    if (rc == 0) {
        rc = tables_sqlite_exec(d->conn, "COMMIT", NULL);
    }
    if (rc != 0) {
        tables_sqlite_rollback(d->conn);
    }
    pthread_mutex_unlock(&d->mu);
    sd_buf_fini(&sql);
    return rc;
}

const struct sd_tables_ops sd_tables_sqlite_ops = {
    .name = "sqlite",
    .open = tables_sqlite_open,
    .close = tables_sqlite_close,
    .ensure_table = tables_sqlite_ensure_table,
    .check_table = tables_sqlite_check_table,
    .import = tables_sqlite_import,
    .is_imported = tables_sqlite_is_imported,
    .drop_table = tables_sqlite_drop_table,
};
