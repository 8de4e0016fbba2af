/* test_tables_postgres.c: the table-storage contract suite against the "postgres" backend on a
 * throwaway PostgreSQL 15 cluster, plus its own tests: the schema/table mapping of table ids
 * and projects, a connection killed in the middle of an import, a server restart between
 * calls, and opening from the config.
 *
 * DESIGN: main starts the cluster with tests/pg/pg_cluster.sh (as the postgres user, its own
 * port and /tmp directory) and stops it by PID at the end; a cluster that cannot start fails
 * the run. Each test's fresh temp directory names a fresh database (SQL_ASCII, so values with
 * any byte but NUL are stored as they are); the direct reads connect to it with libpq as a user
 * would, and map table ids to schemas the way the backend documents it. */
#include "tables_contract.h"

#include "config/sd_config.h"

#include <ctype.h>
#include <libpq-fe.h>

static char pg_dir[256];
static char pg_port[16];

/* ---- the cluster and direct reads ------------------------------------------------------- */

/* "host=... port=... dbname=<database of dir> user=postgres" into buf. */
static void conninfo_of(const char *dir, char *buf, size_t len)
{
    const char *base = strrchr(dir, '/') != NULL ? strrchr(dir, '/') + 1 : dir;
    char db[64];
    size_t n = 0;

    for (const char *p = base; *p != '\0' && n < sizeof(db) - 1; p++) {
        db[n++] = isalnum((unsigned char)*p) ? *p : '_'; /* case kept: the name is quoted */
    }
    db[n] = '\0';
    snprintf(buf, len, "host=127.0.0.1 port=%s user=postgres dbname=tc_%s", pg_port, db);
}

static PGconn *connect_or_fail(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);

    if (PQstatus(c) != CONNECTION_OK) {
        fail_msg("connect %s: %s", conninfo, PQerrorMessage(c));
    }
    return c;
}

/* Runs sql, asserting status want; returns the result (the caller clears it). */
static PGresult *pg_run(PGconn *c, const char *sql, int n, const char *const *params,
                        ExecStatusType want)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);

    if (PQresultStatus(r) != want) {
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    }
    return r;
}

/* Creates the test's database when it does not exist yet, then opens the backend on it. */
static int open_pg(const char *dir, struct sd_tables **out)
{
    char conninfo[512];
    char admin[256];
    const char *dbname;
    PGconn *c;
    PGresult *r;

    conninfo_of(dir, conninfo, sizeof(conninfo));
    dbname = strstr(conninfo, "dbname=") + 7;
    snprintf(admin, sizeof(admin), "host=127.0.0.1 port=%s user=postgres dbname=postgres", pg_port);
    c = connect_or_fail(admin);
    r = pg_run(c, "SELECT 1 FROM pg_database WHERE datname = $1", 1, &dbname, PGRES_TUPLES_OK);
    if (PQntuples(r) == 0) {
        char sql[256];

        snprintf(sql, sizeof(sql),
                 "CREATE DATABASE \"%s\" ENCODING 'SQL_ASCII' LC_COLLATE 'C' "
                 "LC_CTYPE 'C' TEMPLATE template0",
                 dbname);
        PQclear(pg_run(c, sql, 0, NULL, PGRES_COMMAND_OK));
    }
    PQclear(r);
    PQfinish(c);
    return sd_tables_open_backend("postgres", NULL, conninfo, out);
}

/* The backend's documented mapping: project 1 owns schema <bucket>, project N "_streamd_pN_". */
static void split_id(int64_t project, const char *table_id, char *schema, size_t slen,
                     const char **table)
{
    const char *dot = strrchr(table_id, '.');

    assert_non_null(dot);
    if (project == 1) {
        snprintf(schema, slen, "%.*s", (int)(dot - table_id), table_id);
    } else {
        snprintf(schema, slen, "_streamd_p%lld_%.*s", (long long)project, (int)(dot - table_id),
                 table_id);
    }
    *table = dot + 1;
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

static int read_table_pg(const char *dir, int64_t project, const char *table_id,
                         struct tc_table *out)
{
    char conninfo[512];
    char schema[256];
    const char *table;
    const char *params[2];
    struct sd_buf sql = SD_BUF_INIT;
    PGconn *c;
    PGresult *r;

    memset(out, 0, sizeof(*out));
    split_id(project, table_id, schema, sizeof(schema), &table);
    params[0] = schema;
    params[1] = table;
    conninfo_of(dir, conninfo, sizeof(conninfo));
    c = connect_or_fail(conninfo);
    r = pg_run(c,
               "SELECT a.attname FROM pg_attribute a JOIN pg_class t ON t.oid = a.attrelid JOIN "
               "pg_namespace s ON s.oid = t.relnamespace WHERE s.nspname = $1 AND t.relname = "
               "$2 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
               2, params, PGRES_TUPLES_OK);
    if (PQntuples(r) == 0) {
        PQclear(r);
        PQfinish(c);
        return SD_ENOTFOUND;
    }
    out->ncols = (size_t)PQntuples(r);
    out->cols = calloc(out->ncols, sizeof(char *));
    assert_non_null(out->cols);
    for (size_t i = 0; i < out->ncols; i++) {
        out->cols[i] = strdup(PQgetvalue(r, (int)i, 0));
    }
    PQclear(r);
    assert_int_equal(sd_buf_append_str(&sql, "SELECT * FROM "), 0);
    quote_ident(&sql, schema);
    assert_int_equal(sd_buf_append_char(&sql, '.'), 0);
    quote_ident(&sql, table);
    /* a heap keeps no row order: imports are in order of their transaction, slices of their
     * command (one COPY each); rows inside one COPY may fill free space left earlier */
    assert_int_equal(
        sd_buf_append_str(&sql, " ORDER BY xmin::text::bigint, cmin::text::bigint, ctid"), 0);
    r = pg_run(c, sql.data, 0, NULL, PGRES_TUPLES_OK);
    assert_int_equal((size_t)PQnfields(r), out->ncols);
    out->nrows = (size_t)PQntuples(r);
    out->unordered_within_slice = 1;
    out->cells = calloc(out->nrows * out->ncols + 1, sizeof(struct tc_value));
    assert_non_null(out->cells);
    for (size_t i = 0; i < out->nrows; i++) {
        for (size_t j = 0; j < out->ncols; j++) {
            struct tc_value *v = &out->cells[i * out->ncols + j];

            if (PQgetisnull(r, (int)i, (int)j)) {
                v->is_null = 1;
                continue;
            }
            v->len = (size_t)PQgetlength(r, (int)i, (int)j);
            v->p = malloc(v->len + 1);
            assert_non_null(v->p);
            memcpy(v->p, PQgetvalue(r, (int)i, (int)j), v->len + 1);
        }
    }
    PQclear(r);
    PQfinish(c);
    sd_buf_fini(&sql);
    return 0;
}

/* The project's user tables as "<table id>", and the bookkeeping schema's tables as
 * "_streamd_<table>"; nothing before the backend first connected. */
static int list_tables_pg(const char *dir, int64_t project, char ***names, size_t *n)
{
    char conninfo[512];
    char prefix[64];
    const char *params[1] = {prefix};
    PGconn *c;
    PGresult *r;

    *names = NULL;
    *n = 0;
    snprintf(prefix, sizeof(prefix), "_streamd_p%lld_", (long long)project);
    conninfo_of(dir, conninfo, sizeof(conninfo));
    c = connect_or_fail(conninfo);
    r = pg_run(c,
               "SELECT CASE WHEN schemaname = '_streamd' THEN '_streamd_' || tablename "
               "WHEN starts_with(schemaname, '_streamd_p') THEN substr(schemaname, "
               "length($1) + 1) || '.' || tablename ELSE schemaname || '.' || tablename END "
               "FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') "
               "AND (schemaname = '_streamd' OR CASE WHEN $1 = '_streamd_p1_' THEN NOT "
               "starts_with(schemaname, '_streamd_p') ELSE starts_with(schemaname, $1) END) "
               "ORDER BY 1",
               1, params, PGRES_TUPLES_OK);
    for (int i = 0; i < PQntuples(r); i++) {
        *names = realloc(*names, (*n + 1) * sizeof(char *));
        assert_non_null(*names);
        (*names)[(*n)++] = strdup(PQgetvalue(r, i, 0));
    }
    PQclear(r);
    PQfinish(c);
    return 0;
}

static const struct tc_backend pg_backend = {"postgres", open_pg, read_table_pg, list_tables_pg};

/* ---- own tests -------------------------------------------------------------------------- */

/* in.c-demo.events of project 1 is "in.c-demo"."events"; project 2's is in its own schema;
 * ids that are not <bucket>.<table> or name PostgreSQL's or streamd's schemas are refused. */
static void test_mapping(void **state)
{
    struct tc_fixture *fx = *state;
    char conninfo[512];
    struct sd_buf err = SD_BUF_INIT;
    PGconn *c;
    PGresult *r;

    assert_int_equal(
        sd_tables_ensure_table(fx->t, 1, "in.c-demo.events", TC_SCHEMA(tc_cols, TC_NCOLS), &err),
        0);
    assert_int_equal(
        sd_tables_ensure_table(fx->t, 2, "in.c-demo.events", TC_SCHEMA(tc_cols, TC_NCOLS), &err),
        0);
    conninfo_of(fx->dir, conninfo, sizeof(conninfo));
    c = connect_or_fail(conninfo);
    r = pg_run(c,
               "SELECT schemaname || '|' || tablename FROM pg_tables WHERE tablename = 'events' "
               "ORDER BY 1",
               0, NULL, PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 2);
    assert_string_equal(PQgetvalue(r, 0, 0), "_streamd_p2_in.c-demo|events");
    assert_string_equal(PQgetvalue(r, 1, 0), "in.c-demo|events");
    PQclear(r);
    PQfinish(c);
    assert_int_equal(sd_tables_ensure_table(fx->t, 1, "nodot", TC_SCHEMA(tc_cols, TC_NCOLS), &err),
                     SD_EINVAL);
    assert_non_null(strstr(err.data, "nodot"));
    assert_int_equal(
        sd_tables_ensure_table(fx->t, 1, "_streamd.x", TC_SCHEMA(tc_cols, TC_NCOLS), &err),
        SD_EINVAL);
    assert_int_equal(
        sd_tables_ensure_table(fx->t, 1, "pg_catalog.x", TC_SCHEMA(tc_cols, TC_NCOLS), &err),
        SD_EINVAL);
    assert_int_equal(
        sd_tables_ensure_table(
            fx->t, 1,
            "in.c-b.a_table_name_longer_than_sixty_three_bytes_would_be_cut_short_by_postgres",
            TC_SCHEMA(tc_cols, TC_NCOLS), &err),
        SD_EINVAL);
    sd_buf_fini(&err);
}

/* A source that kills every streamd connection to the server on its first read. */
struct killer {
    struct tc_src inner;
    const char *dir;
    int killed;
};

static ssize_t killer_read(void *arg, void *buf, size_t len)
{
    struct killer *k = arg;

    if (!k->killed) {
        char conninfo[512];
        PGconn *c;

        k->killed = 1;
        conninfo_of(k->dir, conninfo, sizeof(conninfo));
        c = PQconnectdb(conninfo);
        PQclear(PQexec(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                          "application_name = 'streamd'"));
        PQfinish(c);
    }
    return tc_src_read(&k->inner, buf, len);
}

/* The connection dies in the middle of an import: an error, nothing committed; the retry
 * (which reconnects) imports every row once. */
static void test_connection_lost(void **state)
{
    struct tc_fixture *fx = *state;
    struct tc_data d;
    struct killer k;
    struct sd_import_slice s;
    struct sd_buf err = SD_BUF_INIT;
    struct tc_table t;
    uint64_t rows = 7;
    int rc;

    tc_data_make(&d, "lost", 40);
    assert_int_equal(
        sd_tables_ensure_table(fx->t, 1, "in.c-b.t", TC_SCHEMA(tc_cols, TC_NCOLS), &err), 0);
    memset(&k, 0, sizeof(k));
    k.inner = tc_src_of(&d.gz);
    k.dir = fx->dir;
    s.slice_key = "slice-lost";
    s.read = killer_read;
    s.arg = &k;
    rc = sd_tables_import(fx->t, 1, "in.c-b.t", TC_SCHEMA(tc_cols, TC_NCOLS), &s, 1, &rows, &err);
    assert_int_equal(rc, -EIO);
    assert_int_equal(rows, 0);
    assert_true(err.len > 0);
    assert_int_equal(tc_nrows(fx, 1, "in.c-b.t"), 0);
    assert_int_equal(sd_tables_is_imported(fx->t, 1, "slice-lost"), 0);

    k.inner = tc_src_of(&d.gz);
    assert_int_equal(tc_import(fx, 1, "in.c-b.t", &s, 1), 40);
    t = tc_read(fx, 1, "in.c-b.t");
    assert_int_equal(t.nrows, 40);
    tc_assert_rows_at(&t, 0, &d);
    tc_table_free(&t);
    sd_buf_fini(&err);
    tc_data_free(&d);
}

/* A server restart between calls costs nothing: the next calls reconnect and succeed. */
static void test_server_restart(void **state)
{
    struct tc_fixture *fx = *state;
    struct tc_data d;
    struct tc_src src;
    struct sd_import_slice s;
    char cmd[512];

    tc_data_make(&d, "restart", 30);
    src = tc_src_of(&d.gz);
    s = tc_slice("slice-before", &src);
    assert_int_equal(tc_import(fx, 1, "in.c-b.t", &s, 1), 30);
    snprintf(cmd, sizeof(cmd), SD_SOURCE_DIR "/tests/pg/pg_cluster.sh restart %s", pg_dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(sd_tables_is_imported(fx->t, 1, "slice-before"), 1);
    src = tc_src_of(&d.gz);
    s = tc_slice("slice-after", &src);
    assert_int_equal(tc_import(fx, 1, "in.c-b.t", &s, 1), 30);
    assert_int_equal(tc_nrows(fx, 1, "in.c-b.t"), 60);
    tc_data_free(&d);
}

/* sd_tables_open with tables.backend=postgres reads the URL and the pool keys; a missing URL
 * fails the open. */
static void test_open_from_config(void **state)
{
    struct tc_fixture *fx = *state;
    char conninfo[512];
    char url_set[600];
    const char *sets[] = {"tables.backend=postgres", url_set, "tables.postgres.poolSize=1"};
    struct sd_config_args args = {NULL, fx->dir, NULL, 0, NULL};
    struct sd_config *cfg = NULL;
    struct sd_tables *t = NULL;
    struct sd_buf err = SD_BUF_INIT;

    conninfo_of(fx->dir, conninfo, sizeof(conninfo));
    snprintf(url_set, sizeof(url_set), "tables.postgres.url=%s", conninfo);
    args.sets = sets;
    args.nsets = 1;
    assert_int_equal(sd_config_load(&args, &cfg, &err), 0);
    assert_int_equal(sd_tables_open(cfg, &t), SD_EINVAL);
    assert_null(t);
    sd_config_destroy(cfg);

    args.nsets = 3;
    assert_int_equal(sd_config_load(&args, &cfg, &err), 0);
    assert_int_equal(sd_tables_open(cfg, &t), 0);
    assert_string_equal(t->ops->name, "postgres");
    assert_int_equal(sd_tables_ensure_table(t, 1, "in.c-cfg.t", TC_SCHEMA(tc_cols, TC_NCOLS), &err),
                     0);
    assert_int_equal(sd_tables_is_imported(t, 1, "none"), 0);
    sd_tables_close(t);
    assert_int_equal(tc_nrows(fx, 1, "in.c-cfg.t"), 0);
    sd_config_destroy(cfg);
    sd_buf_fini(&err);
}

/* ---- the cluster's lifetime ------------------------------------------------------------- */

static int cluster_start(void)
{
    FILE *p = popen(SD_SOURCE_DIR "/tests/pg/pg_cluster.sh start", "r");

    if (p == NULL || fscanf(p, "%255s %15s", pg_dir, pg_port) != 2) {
        fprintf(stderr, "test_tables_postgres: the PostgreSQL cluster did not start\n");
        if (p != NULL) {
            pclose(p);
        }
        return -1;
    }
    return pclose(p) == 0 ? 0 : -1;
}

static void cluster_stop(void)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), SD_SOURCE_DIR "/tests/pg/pg_cluster.sh stop %s", pg_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "test_tables_postgres: stopping the cluster failed\n");
    }
}

#define PG_TEST(f) cmocka_unit_test_prestate_setup_teardown(f, tc_setup, tc_teardown, be)

int main(void)
{
    void *be = (void *)&pg_backend;
    const struct CMUnitTest tests[] = {
        TC_CONTRACT_TESTS(be),        PG_TEST(test_mapping),          PG_TEST(test_connection_lost),
        PG_TEST(test_server_restart), PG_TEST(test_open_from_config),
    };
    int rc;

    if (cluster_start() != 0) {
        return 1;
    }
    rc = cmocka_run_group_tests_name("tables_postgres", tests, NULL, NULL);
    cluster_stop();
    return rc;
}
