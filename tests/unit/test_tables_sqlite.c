/* test_tables_sqlite.c: the table-storage contract suite against the "sqlite" backend, plus
 * its own tests: the file layout and WAL mode, a user's reader connection during an import,
 * SIGKILL right after an import returned, opening from the config, SQLite's case-insensitive
 * names, tables a user created with other types, and a damaged database file.
 *
 * DESIGN: the suite's direct reads open their own sqlite3 connection on the project file, as a
 * user would. The crash test fork()s a child that imports with its own handle and SIGKILLs
 * itself the moment the import returns; the child reports failures only through its exit code
 * (no cmocka calls), and the parent asserts on what the file holds afterwards. */
#include "tables_contract.h"

#include "config/sd_config.h"

#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the backend under test and direct reads -------------------------------------------- */

static int open_sqlite(const char *dir, struct sd_tables **out)
{
    return sd_tables_open_backend("sqlite", NULL, dir, out);
}

static char *project_path(const char *dir, int64_t project)
{
    char *p = NULL;

    assert_true(asprintf(&p, "%s/project-%lld.sqlite", dir, (long long)project) > 0);
    return p;
}

/* Opens the project file as a user would; NULL when it does not exist. */
static sqlite3 *user_open(const char *dir, int64_t project)
{
    char *path = project_path(dir, project);
    sqlite3 *db = NULL;

    if (access(path, F_OK) != 0) {
        free(path);
        return NULL;
    }
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    free(path);
    return db;
}

/* PRAGMA page_size of a connection. */
static int page_size(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int n;

    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void quote_ident(struct sd_buf *b, const char *name)
{
    assert_int_equal(sd_buf_append_char(b, '"'), 0);
    for (const char *p = name; *p != '\0'; p++) {
        if (*p == '"') {
            assert_int_equal(sd_buf_append_char(b, '"'), 0);
        }
        assert_int_equal(sd_buf_append_char(b, *p), 0);
    }
    assert_int_equal(sd_buf_append_char(b, '"'), 0);
}

static int read_table_sqlite(const char *dir, int64_t project, const char *table_id,
                             struct tc_table *out)
{
    sqlite3 *db = user_open(dir, project);
    sqlite3_stmt *st = NULL;
    struct sd_buf sql = SD_BUF_INIT;
    size_t cap = 0;
    int found;

    memset(out, 0, sizeof(*out));
    if (db == NULL) {
        return SD_ENOTFOUND;
    }
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                        "name = ?1",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, table_id, -1, SQLITE_STATIC);
    found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    if (!found) {
        sqlite3_close(db);
        return SD_ENOTFOUND;
    }
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_xinfo(?1)", -1, &st, NULL),
        SQLITE_OK);
    sqlite3_bind_text(st, 1, table_id, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        out->cols = realloc(out->cols, (out->ncols + 1) * sizeof(char *));
        assert_non_null(out->cols);
        out->cols[out->ncols++] = strdup((const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);

    assert_int_equal(sd_buf_append_str(&sql, "SELECT * FROM "), 0);
    quote_ident(&sql, table_id);
    assert_int_equal(sd_buf_append_str(&sql, " ORDER BY rowid"), 0);
    assert_int_equal(sqlite3_prepare_v2(db, sql.data, -1, &st, NULL), SQLITE_OK);
    assert_int_equal((size_t)sqlite3_column_count(st), out->ncols);
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (out->nrows == cap) {
            cap = cap ? cap * 2 : 64;
            out->cells = realloc(out->cells, cap * out->ncols * sizeof(struct tc_value));
            assert_non_null(out->cells);
        }
        for (size_t j = 0; j < out->ncols; j++) {
            struct tc_value *v = &out->cells[out->nrows * out->ncols + j];
            memset(v, 0, sizeof(*v));
            if (sqlite3_column_type(st, (int)j) == SQLITE_NULL) {
                v->is_null = 1;
                continue;
            }
            /* values are stored as TEXT: anything else would not be byte-exact */
            assert_int_equal(sqlite3_column_type(st, (int)j), SQLITE_TEXT);
            v->len = (size_t)sqlite3_column_bytes(st, (int)j);
            v->p = malloc(v->len + 1);
            assert_non_null(v->p);
            if (v->len > 0) {
                memcpy(v->p, sqlite3_column_blob(st, (int)j), v->len);
            }
            v->p[v->len] = '\0';
        }
        out->nrows++;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    sd_buf_fini(&sql);
    return 0;
}

static int list_tables_sqlite(const char *dir, int64_t project, char ***names, size_t *n)
{
    sqlite3 *db = user_open(dir, project);
    sqlite3_stmt *st = NULL;

    *names = NULL;
    *n = 0;
    if (db == NULL) {
        return 0;
    }
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT name FROM sqlite_master WHERE type = 'table' "
                                        "ORDER BY name",
                                        -1, &st, NULL),
                     SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        *names = realloc(*names, (*n + 1) * sizeof(char *));
        assert_non_null(*names);
        (*names)[(*n)++] = strdup((const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return 0;
}

static const struct tc_backend sqlite_backend = {"sqlite", open_sqlite, read_table_sqlite,
                                                 list_tables_sqlite};

static int64_t user_count(sqlite3 *db, const char *table_id)
{
    struct sd_buf sql = SD_BUF_INIT;
    sqlite3_stmt *st = NULL;
    int64_t n;

    assert_int_equal(sd_buf_append_str(&sql, "SELECT count(*) FROM "), 0);
    quote_ident(&sql, table_id);
    assert_int_equal(sqlite3_prepare_v2(db, sql.data, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sd_buf_fini(&sql);
    return n;
}

/* ---- sqlite-only tests ------------------------------------------------------------------ */

/* One database file per project, named as documented, in WAL mode. */
static void test_file_layout_wal(void **state)
{
    struct tc_fixture *fx = *state;
    struct tc_data d;
    struct tc_src src;
    struct sd_import_slice s;
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    char *path;
    struct stat sb;

    tc_data_make(&d, "d", 3);
    src = tc_src_of(&d.gz);
    s = tc_slice("slice-1", &src);
    assert_int_equal(tc_import(fx, 42, "in.c-b.t", &s, 1), 3);
    path = project_path(fx->dir, 42);
    assert_int_equal(stat(path, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    free(path);
    path = project_path(fx->dir, 1);
    assert_int_not_equal(access(path, F_OK), 0);
    free(path);
    /* is_imported and drop_table on a project without a database create nothing */
    assert_int_equal(sd_tables_is_imported(fx->t, 1, "slice-1"), 0);
    assert_int_equal(sd_tables_drop_table(fx->t, 1, "in.c-b.t"), 0);
    path = project_path(fx->dir, 1);
    assert_int_not_equal(access(path, F_OK), 0);
    free(path);

    db = user_open(fx->dir, 42);
    assert_non_null(db);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    assert_int_equal(page_size(db), 32768); /* new databases: larger pages (fewer writes) */
    sqlite3_close(db);
    tc_data_free(&d);
}

/* A database made before streamd chose its page size keeps its own and is imported into. */
static void test_existing_page_size_kept(void **state)
{
    struct tc_fixture *fx = *state;
    struct tc_data d;
    struct tc_src src;
    struct sd_import_slice s;
    char *path = project_path(fx->dir, 7);
    sqlite3 *db = NULL;

    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "PRAGMA page_size=4096; PRAGMA journal_mode=WAL; "
                                  "CREATE TABLE mine (x TEXT)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    free(path);
    tc_data_make(&d, "e", 5);
    src = tc_src_of(&d.gz);
    s = tc_slice("slice-1", &src);
    assert_int_equal(tc_import(fx, 7, "in.c-b.t", &s, 1), 5);
    db = user_open(fx->dir, 7);
    assert_non_null(db);
    assert_int_equal(page_size(db), 4096);
    sqlite3_close(db);
    tc_data_free(&d);
}

/* A source that, in the middle of the import (the write transaction open), reads the table
 * through a user's connection. */
struct probe_src {
    struct tc_src src;
    sqlite3 *user;
    struct sd_tables *tables; /* check_table's answer during the import goes to check_rc */
    int probed;
    int64_t seen;
    int rc;
    int check_rc;
};

static ssize_t probe_read(void *arg, void *buf, size_t len)
{
    struct probe_src *p = arg;
    sqlite3_stmt *st = NULL;

    if (!p->probed && p->src.pos > p->src.len / 2) {
        p->probed = 1;
        p->rc = sqlite3_prepare_v2(p->user, "SELECT count(*) FROM \"in.c-b.t\"", -1, &st, NULL);
        if (p->rc == SQLITE_OK) {
            p->rc = sqlite3_step(st);
            p->seen = sqlite3_column_int64(st, 0);
        }
        sqlite3_finalize(st);
        p->check_rc =
            sd_tables_check_table(p->tables, 1, "in.c-b.t", TC_SCHEMA(tc_cols, TC_NCOLS), NULL);
    }
    return tc_src_read(&p->src, buf, len);
}

/* Users can read while streamd writes: a reader inside a read transaction keeps its snapshot
 * and does not block the import; a reader during the import sees the committed rows only, and
 * so does check_table. */
static void test_reader_during_import(void **state)
{
    struct tc_fixture *fx = *state;
    struct tc_data a, b;
    struct tc_src sa, sb;
    struct sd_import_slice s;
    struct probe_src probe;
    sqlite3 *reader;

    tc_data_make(&a, "a", 10);
    tc_data_make(&b, "b", 2000);
    sa = tc_src_of(&a.gz);
    s = tc_slice("slice-a", &sa);
    assert_int_equal(tc_import(fx, 1, "in.c-b.t", &s, 1), 10);

    reader = user_open(fx->dir, 1);
    assert_non_null(reader);
    sqlite3_busy_timeout(reader, 0); /* a lock would fail at once, not wait */
    assert_int_equal(sqlite3_exec(reader, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(user_count(reader, "in.c-b.t"), 10);

    sb = tc_src_of(&b.csv);
    sb.chunk = 512;
    s = tc_slice("slice-b", &sb);
    assert_int_equal(tc_import(fx, 1, "in.c-b.t", &s, 1), 2000);
    assert_int_equal(user_count(reader, "in.c-b.t"), 10); /* its snapshot */
    assert_int_equal(sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(user_count(reader, "in.c-b.t"), 2010);

    memset(&probe, 0, sizeof(probe));
    probe.src = tc_src_of(&b.csv);
    probe.src.chunk = 512;
    probe.user = reader;
    probe.tables = fx->t;
    probe.check_rc = -1;
    s = (struct sd_import_slice){"slice-c", probe_read, &probe};
    assert_int_equal(tc_import(fx, 1, "in.c-b.t", &s, 1), 2000);
    assert_true(probe.probed);
    assert_int_equal(probe.rc, SQLITE_ROW);
    assert_int_equal(probe.seen, 2010);
    /* check_table (the API thread's) answers while the import holds the project's connection */
    assert_int_equal(probe.check_rc, 0);
    assert_int_equal(user_count(reader, "in.c-b.t"), 4010);
    sqlite3_close(reader);
    tc_data_free(&a);
    tc_data_free(&b);
}

/* A child imports three slices and SIGKILLs itself the moment the last import returns: every
 * committed row is there afterwards, and the ledger knows the slices. */
static void test_kill_after_import(void **state)
{
    struct tc_fixture *fx = *state;
    struct tc_data d[3];
    struct tc_table t;
    struct tc_src src;
    struct sd_import_slice s;
    struct sd_tables *t2 = NULL;
    uint64_t rows = 1;
    int status = 0;
    pid_t pid;

    tc_data_make(&d[0], "k0", 100);
    tc_data_make(&d[1], "k1", 1);
    tc_data_make(&d[2], "k2", 500);
    sd_tables_close(fx->t); /* the child has the storage to itself */
    fx->t = NULL;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct sd_tables *ct = NULL;
        static const char *const keys[] = {"slice-k0", "slice-k1", "slice-k2"};
        if (open_sqlite(fx->dir, &ct) != 0) {
            _exit(2);
        }
        for (int i = 0; i < 3; i++) {
            src = tc_src_of(&d[i].gz);
            s = tc_slice(keys[i], &src);
            if (sd_tables_import(ct, 1, "in.c-b.t", TC_SCHEMA(tc_cols, TC_NCOLS), &s, 1, &rows,
                                 NULL) != 0 ||
                rows != d[i].nrows) {
                _exit(3);
            }
        }
        raise(SIGKILL);
        _exit(4);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);

    t = tc_read(fx, 1, "in.c-b.t");
    assert_int_equal(t.nrows, 601);
    tc_assert_rows_at(&t, 0, &d[0]);
    tc_assert_rows_at(&t, 100, &d[1]);
    tc_assert_rows_at(&t, 101, &d[2]);
    tc_table_free(&t);

    assert_int_equal(open_sqlite(fx->dir, &t2), 0);
    assert_int_equal(sd_tables_is_imported(t2, 1, "slice-k2"), 1);
    src = tc_src_of(&d[2].gz);
    s = tc_slice("slice-k2", &src);
    assert_int_equal(
        sd_tables_import(t2, 1, "in.c-b.t", TC_SCHEMA(tc_cols, TC_NCOLS), &s, 1, &rows, NULL), 0);
    assert_int_equal(rows, 0);
    assert_int_equal(src.reads, 0);
    fx->t = t2;
    for (int i = 0; i < 3; i++) {
        tc_data_free(&d[i]);
    }
}

/* sd_tables_open follows tables.backend and tables.sqlite.path (<dataDir>/tables). */
static void test_open_from_config(void **state)
{
    struct tc_fixture *fx = *state;
    const char *sets[] = {"tables.backend=keboola"};
    struct sd_config_args args = {NULL, fx->dir, NULL, 0, NULL};
    struct sd_config *cfg = NULL;
    struct sd_tables *t = NULL;
    struct sd_buf err = SD_BUF_INIT;
    char *path;

    assert_int_equal(sd_config_load(&args, &cfg, &err), 0);
    assert_int_equal(sd_tables_open(cfg, &t), 0);
    assert_string_equal(t->ops->name, "sqlite");
    assert_int_equal(sd_tables_ensure_table(t, 1, "in.c-b.t", TC_SCHEMA(tc_cols, TC_NCOLS), &err),
                     0);
    sd_tables_close(t);
    sd_config_destroy(cfg);
    assert_true(asprintf(&path, "%s/tables/project-1.sqlite", fx->dir) > 0);
    assert_int_equal(access(path, F_OK), 0);
    free(path);

    args.sets = sets;
    args.nsets = 1;
    assert_int_equal(sd_config_load(&args, &cfg, &err), 0);
    assert_int_equal(sd_tables_open(cfg, &t), -ENOTSUP);
    assert_null(t);
    sd_config_destroy(cfg);

    assert_int_equal(sd_tables_open_backend("keboola", NULL, fx->dir, &t), -ENOTSUP);
    assert_int_equal(sd_tables_open_backend("nope", NULL, fx->dir, &t), SD_EINVAL);
    assert_int_equal(sd_tables_open_backend("sqlite", NULL, "", &t), SD_EINVAL);
    assert_null(t);
    sd_buf_fini(&err);
}

/* SQLite names ignore ASCII case: a table id differing only in case conflicts instead of
 * silently sharing the table, and dropping it leaves the other table alone. */
static void test_case_clash(void **state)
{
    struct tc_fixture *fx = *state;
    struct sd_buf err = SD_BUF_INIT;
    struct tc_table t;

    assert_int_equal(
        sd_tables_ensure_table(fx->t, 1, "in.c-b.t", TC_SCHEMA(tc_cols, TC_NCOLS), &err), 0);
    assert_int_equal(
        sd_tables_ensure_table(fx->t, 1, "in.c-b.T", TC_SCHEMA(tc_cols, TC_NCOLS), &err),
        SD_ECONFLICT);
    assert_non_null(strstr(err.data, "in.c-b.T"));
    assert_non_null(strstr(err.data, "ignore case"));
    sd_buf_reset(&err);
    assert_int_equal(
        sd_tables_check_table(fx->t, 1, "in.c-b.T", TC_SCHEMA(tc_cols, TC_NCOLS), &err),
        SD_ECONFLICT);
    assert_non_null(strstr(err.data, "ignore case"));
    assert_int_equal(sd_tables_drop_table(fx->t, 1, "in.c-b.T"), 0);
    t = tc_read(fx, 1, "in.c-b.t");
    tc_table_free(&t);
    assert_int_equal(
        sd_tables_ensure_table(fx->t, 1, "SQLITE_x", TC_SCHEMA(tc_cols, TC_NCOLS), &err),
        SD_EINVAL);
    sd_buf_fini(&err);
}

/* Tables and views a user made with the same name but other types or kinds conflict. */
static void test_user_objects_conflict(void **state)
{
    struct tc_fixture *fx = *state;
    struct sd_buf err = SD_BUF_INIT;
    sqlite3 *db;

    assert_int_equal(
        sd_tables_ensure_table(fx->t, 1, "in.c-b.t", TC_SCHEMA(tc_cols, TC_NCOLS), &err), 0);
    db = user_open(fx->dir, 1);
    assert_non_null(db);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE \"in.c-b.int\" (id INTEGER, value TEXT, note "
                                  "TEXT); CREATE VIEW \"in.c-b.view\" AS SELECT 1",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(
        sd_tables_ensure_table(fx->t, 1, "in.c-b.int", TC_SCHEMA(tc_cols, TC_NCOLS), &err),
        SD_ECONFLICT);
    assert_non_null(strstr(err.data, "INTEGER"));
    assert_int_equal(
        sd_tables_ensure_table(fx->t, 1, "in.c-b.view", TC_SCHEMA(tc_cols, TC_NCOLS), &err),
        SD_ECONFLICT);
    assert_non_null(strstr(err.data, "view"));
    sd_buf_fini(&err);
}

/* A damaged database file is reported, not crashed on. */
static void test_damaged_file(void **state)
{
    struct tc_fixture *fx = *state;
    struct sd_buf err = SD_BUF_INIT;
    char junk[8192];
    char *path = project_path(fx->dir, 9);
    int rc;

    memset(junk, 'x', sizeof(junk));
    assert_int_equal(sd_write_file_atomic(path, junk, sizeof(junk), 0644), 0);
    rc = sd_tables_ensure_table(fx->t, 9, "in.c-b.t", TC_SCHEMA(tc_cols, TC_NCOLS), &err);
    assert_int_equal(rc, SD_ECORRUPT);
    assert_true(err.len > 0);
    assert_true(sd_tables_is_imported(fx->t, 9, "k") < 0);
    free(path);
    sd_buf_fini(&err);
}

/* A key becomes the table's PRIMARY KEY, columns in mapping order, visible to users' tools; a
 * user's table whose key differs is named with its key in the conflict message. */
static void test_primary_key_declared(void **state)
{
    struct tc_fixture *fx = *state;
    static const char *const cols[] = {"v", "b", "a"};
    static const unsigned char pk[] = {0, 1, 1};
    struct sd_buf err = SD_BUF_INIT;
    sqlite3_stmt *st = NULL;
    sqlite3 *db;

    assert_int_equal(sd_tables_ensure_table(fx->t, 1, "in.c-b.pk", TC_SCHEMA_PK(cols, 3, pk), &err),
                     0);
    db = user_open(fx->dir, 1);
    assert_non_null(db);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT name FROM pragma_table_info('in.c-b.pk') "
                                        "WHERE pk > 0 ORDER BY pk",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "b");
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "a");
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    assert_int_equal(
        sqlite3_exec(db,
                     "CREATE TABLE \"in.c-b.user\" (\"v\" TEXT PRIMARY KEY, \"b\" TEXT, "
                     "\"a\" TEXT)",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(
        sd_tables_check_table(fx->t, 1, "in.c-b.user", TC_SCHEMA_PK(cols, 3, pk), &err),
        SD_ECONFLICT);
    assert_string_equal(sd_buf_cstr(&err),
                        "table \"in.c-b.user\" exists with columns (\"v\" PRIMARY KEY, \"b\", "
                        "\"a\"), expected (\"v\", \"b\" PRIMARY KEY, \"a\" PRIMARY KEY)");
    sd_buf_fini(&err);
}

/* A sink mapping's columns JSON gives the schema: names in order, the key from
 * "primaryKey": true only (false, a missing member or no key at all: no flag). */
static void test_schema_from_json(void **state)
{
    json_t *cols = json_loads("[{\"name\":\"a\",\"primaryKey\":false},{\"name\":\"b\","
                              "\"primaryKey\":true},{\"name\":\"c\"},{\"name\":\"d\","
                              "\"primaryKey\":true}]",
                              0, NULL);
    json_t *plain =
        json_loads("[{\"name\":\"x\",\"primaryKey\":false},{\"type\":\"body\"}]", 0, NULL);
    struct sd_table_schema *s;

    (void)state;
    s = sd_table_schema_from_json(cols);
    assert_int_equal(s->ncolumns, 4);
    assert_string_equal(s->columns[0], "a");
    assert_string_equal(s->columns[3], "d");
    assert_non_null(s->is_pk);
    assert_int_equal(s->is_pk[0], 0);
    assert_int_equal(s->is_pk[1], 1);
    assert_int_equal(s->is_pk[2], 0);
    assert_int_equal(s->is_pk[3], 1);
    free(s);
    s = sd_table_schema_from_json(plain);
    assert_int_equal(s->ncolumns, 2);
    assert_string_equal(s->columns[0], "x");
    assert_string_equal(s->columns[1], "");
    assert_null(s->is_pk);
    free(s);
    json_decref(cols);
    json_decref(plain);
}

#define SQ_TEST(f) cmocka_unit_test_prestate_setup_teardown(f, tc_setup, tc_teardown, be)

int main(void)
{
    void *be = (void *)&sqlite_backend;
    const struct CMUnitTest tests[] = {
        TC_CONTRACT_TESTS(be),
        SQ_TEST(test_file_layout_wal),
        SQ_TEST(test_existing_page_size_kept),
        SQ_TEST(test_reader_during_import),
        SQ_TEST(test_kill_after_import),
        SQ_TEST(test_open_from_config),
        SQ_TEST(test_case_clash),
        SQ_TEST(test_user_objects_conflict),
        SQ_TEST(test_damaged_file),
        SQ_TEST(test_primary_key_declared),
        cmocka_unit_test(test_schema_from_json),
    };

    return cmocka_run_group_tests_name("tables_sqlite", tests, NULL, NULL);
}
