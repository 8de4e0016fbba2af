/* test_tables_sqlite_vfs.c: unit tests of plugins/tables_sqlite/tables_sqlite_vfs: a database in
 * WAL mode opened through the "streamd" VFS hands its writes to the disk in chunks (about one
 * per TABLES_SQLITE_VFS_CHUNK written, WAL and checkpoint), and reads back what it committed,
 * also through the default VFS; registering twice is fine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tables_sqlite/tables_sqlite_vfs.h"
#include "test_tmpdir.h"

static int64_t count_rows(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int64_t n;

    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT count(*), sum(length(v)) FROM t", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    n = sqlite3_column_int64(st, 0);
    assert_int_equal(sqlite3_column_int64(st, 1), n * 1000);
    sqlite3_finalize(st);
    return n;
}

static void test_writes_leave_in_chunks(void **state)
{
    char dir[256], path[300];
    sqlite3 *db = NULL;
    sqlite3_stmt *ins = NULL;
    char value[1000];
    uint64_t before;

    (void)state;
    sd_test_mkdtemp(dir, sizeof(dir), "tsvfs");
    snprintf(path, sizeof(path), "%s/db.sqlite", dir);
    assert_int_equal(tables_sqlite_vfs_register(), SQLITE_OK);
    assert_int_equal(tables_sqlite_vfs_register(), SQLITE_OK);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                     TABLES_SQLITE_VFS_NAME),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                                  "CREATE TABLE t (v TEXT)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    memset(value, 'x', sizeof(value));
    before = tables_sqlite_vfs_chunks();
    assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO t VALUES (?1)", -1, &ins, NULL),
                     SQLITE_OK);
    for (int i = 0; i < 8000; i++) { /* 8 MB of rows */
        sqlite3_bind_text(ins, 1, value, (int)sizeof(value), SQLITE_STATIC);
        assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL),
                     SQLITE_OK);
    /* about 8 MB into the WAL and 8 MB into the database: at least a chunk per MiB of each,
     * less what the syncs took (each sync writes what is pending) */
    assert_true(tables_sqlite_vfs_chunks() - before >= 10);
    assert_int_equal(count_rows(db), 8000);
    sqlite3_close(db);
    /* the file is an ordinary SQLite database */
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(count_rows(db), 8000);
    sqlite3_close(db);
    sd_rm_rf(dir);
}

/* Temporary files (no name) and small writes go through unchanged. */
static void test_temp_files_and_small_writes(void **state)
{
    sqlite3 *db = NULL;
    uint64_t before = tables_sqlite_vfs_chunks();

    (void)state;
    assert_int_equal(tables_sqlite_vfs_register(), SQLITE_OK);
    assert_int_equal(sqlite3_open_v2("", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                     TABLES_SQLITE_VFS_NAME),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE t (v TEXT); INSERT INTO t VALUES "
                                  "(printf('%.1000c', 'y'))",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(count_rows(db), 1);
    sqlite3_close(db);
    assert_int_equal(tables_sqlite_vfs_chunks(), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writes_leave_in_chunks),
        cmocka_unit_test(test_temp_files_and_small_writes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
