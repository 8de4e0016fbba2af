/* tables_postgres.c: the "postgres" table-storage backend (libpq): a table id
 * "in.c-demo.events" is table "events" in schema "in.c-demo" (quoted identifiers, TEXT columns
 * in mapping order); streamd's import ledger is "_streamd"."import_ledger"(project, slice_key,
 * table_id, rows, imported_at), keyed by (project, slice_key).
 *
 * DESIGN: one database holds every project. Project 1 (the standalone project) owns the schemas
 * named by its table ids; project N != 1 owns schemas "_streamd_p<N>_<bucket>", a prefix no
 * table id may start with, so projects never share a table. The context is a small pool of
 * connections (tables.postgres.poolSize, plus one kept for the API's table checks), each opened
 * on first use, checked by the BEGIN every call starts with and reopened when the server
 * dropped it; a connection lost in the middle of a call fails that call (nothing committed),
 * and the caller retries.
 *
 * An import is one READ COMMITTED transaction: the table check (and its creation under an
 * advisory lock on the schema, so concurrent creators do not race), then per slice a ledger row
 * inserted first with ON CONFLICT DO NOTHING (a concurrent importer of the same slice makes it
 * wait, then skip), the slice's rows re-encoded from sd_csv_reader into one COPY ... FROM STDIN
 * (FORMAT csv) with every field quoted (so an empty value is '' and never NULL), and the row
 * count. A reader error ends the COPY with PQputCopyEnd(errmsg), which aborts the transaction
 * (CAVEATS #13). Rows are streamed in 64 KiB chunks, never a whole slice. Values are stored as
 * the database encoding takes them: a UTF8 database refuses bytes that are not UTF-8
 * (SD_ECORRUPT), a SQL_ASCII one stores any byte but NUL. The connection URL is never logged
 * or put in a message. Errors are returned as codes with a message in err. */
#include "tables_postgres/tables_postgres.h"

#include "config/sd_config.h"
#include "config/sd_config_bind.h"
#include "core/sd_alloc.h"
#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "pipeline/sd_csv.h"
#include "tables/sd_csv_reader.h"
#include "tables/sd_table_schema.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* PostgreSQL truncates longer identifiers (NAMEDATALEN - 1): such names are refused. */
#define TABLES_PG_MAX_IDENT 63
/* Bytes of encoded rows gathered before one PQputCopyData. */
#define TABLES_PG_COPY_CHUNK 65536
/* Class of the advisory locks taken while creating tables (an arbitrary constant, "stmd"). */
#define TABLES_PG_LOCK_CLASS "1937010020"
#define TABLES_PG_SCHEMA "_streamd"
#define TABLES_PG_LEDGER "\"" TABLES_PG_SCHEMA "\".\"import_ledger\""

/* The tables.postgres.* keys. */
struct tables_pg_config {
    int64_t pool_size;
    int64_t connect_timeout_ms;
    int64_t statement_timeout_ms;
};

#define TABLES_PG_BIND(field, key, type) SD_BIND(struct tables_pg_config, field, key, type)
static const struct sd_config_binding tables_pg_rows[] = {
    TABLES_PG_BIND(pool_size, "tables.postgres.poolSize", SD_BIND_I64),
    TABLES_PG_BIND(connect_timeout_ms, "tables.postgres.connectTimeout", SD_BIND_I64),
    TABLES_PG_BIND(statement_timeout_ms, "tables.postgres.statementTimeout", SD_BIND_I64),
};
const struct sd_config_bindings sd_tables_postgres_config_bindings =
    SD_BINDINGS("tables.postgres", tables_pg_rows);

struct tables_pg {
    char *url;
    char connect_timeout[24]; /* seconds, for libpq */
    char options[96];         /* statement_timeout, and notices off */
    pthread_mutex_t mu;       /* guards idle and nidle */
    pthread_cond_t freed;     /* a connection was returned */
    PGconn **idle;            /* slots not in use (NULL: not connected yet) */
    size_t nidle;
};

/* A table id split into its PostgreSQL names. */
struct tables_pg_name {
    char schema[TABLES_PG_MAX_IDENT + 1];
    char table[TABLES_PG_MAX_IDENT + 1];
};

/* ---- helpers ---------------------------------------------------------------------------- */

/* Maps a failed result (or, when res is NULL, the connection's state) to our code. */
static int tables_pg_code(PGconn *conn, const PGresult *res)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    if (PQstatus(conn) != CONNECTION_OK || state == NULL) {
        return -EIO;
    }
    if (strcmp(state, "57014") == 0) {
        return -ETIMEDOUT; /* statement_timeout */
    }
    if (strcmp(state, "53100") == 0) {
        return -ENOSPC;
    }
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0) {
        return -EBUSY;
    }
    if (strncmp(state, "22", 2) == 0) {
        return SD_ECORRUPT; /* data exception: e.g. bytes invalid in the database encoding */
    }
    if (strncmp(state, "23", 2) == 0) {
        return SD_ECONFLICT;
    }
    if (strncmp(state, "28", 2) == 0 || strcmp(state, "42501") == 0) {
        return -EACCES; /* authorization, insufficient privilege */
    }
    if (strncmp(state, "42", 2) == 0) {
        return SD_EINVAL;
    }
    return -EIO;
}

/* Writes "<what>: <server message>" into err, clears res and returns the mapped code. */
static int tables_pg_fail(struct sd_buf *err, PGconn *conn, PGresult *res, const char *what)
{
    const char *m = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    int rc = tables_pg_code(conn, res);

    if (m == NULL) {
        m = PQerrorMessage(conn);
    }
    sd_buf_setf(err, "%s: %.*s", what, (int)strcspn(m, "\n"), m);
    PQclear(res);
    return rc;
}

/* Runs one statement with text parameters; 0 when it answered want (res kept in *out when out
 * is not NULL, else cleared). */
static int tables_pg_run(PGconn *conn, const char *sql, int n, const char *const *params,
                         ExecStatusType want, PGresult **out, struct sd_buf *err, const char *what)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);

    if (PQresultStatus(res) != want) {
        return tables_pg_fail(err, conn, res, what);
    }
    if (out != NULL) {
        *out = res;
    } else {
        PQclear(res);
    }
    return 0;
}

static int tables_pg_exec(PGconn *conn, const char *sql, struct sd_buf *err)
{
    return tables_pg_run(conn, sql, 0, NULL, PGRES_COMMAND_OK, NULL, err, sql);
}

/* Appends "schema"."table". */
static int tables_pg_qualified(struct sd_buf *b, const struct tables_pg_name *n)
{
    int rc = sd_table_sql_ident(b, n->schema);

    if (rc == 0) {
        rc = sd_buf_append_char(b, '.');
    }
    return rc == 0 ? sd_table_sql_ident(b, n->table) : rc;
}

/* Splits table_id at its last '.' into the project's schema and the table name, refusing
 * reserved, empty and over-long names. */
static int tables_pg_name_of(int64_t project, const char *table_id, struct tables_pg_name *out,
                             struct sd_buf *err)
{
    const char *dot;
    int n;

    if (table_id == NULL || table_id[0] == '\0') {
        sd_buf_setf(err, "empty table id");
        return SD_EINVAL;
    }
    if (project < 0) {
        sd_buf_setf(err, "invalid project id %" PRId64, project);
        return SD_EINVAL;
    }
    /* "_streamd" also covers the internal prefix "_streamd_"; "pg_" schemas are the server's */
    if (strncmp(table_id, TABLES_PG_SCHEMA, strlen(TABLES_PG_SCHEMA)) == 0 ||
        strncmp(table_id, "pg_", 3) == 0) {
        sd_buf_setf(err, "table id \"%s\" is reserved", table_id);
        return SD_EINVAL;
    }
    dot = strrchr(table_id, '.');
    if (dot == NULL || dot == table_id || dot[1] == '\0') {
        sd_buf_setf(err, "table id \"%s\" is not <bucket>.<table>", table_id);
        return SD_EINVAL;
    }
    if (project == 1) {
        n = snprintf(out->schema, sizeof(out->schema), "%.*s", (int)(dot - table_id), table_id);
    } else {
        n = snprintf(out->schema, sizeof(out->schema), TABLES_PG_SCHEMA "_p%" PRId64 "_%.*s",
                     project, (int)(dot - table_id), table_id);
    }
    if (n < 0 || (size_t)n >= sizeof(out->schema) || strlen(dot + 1) >= sizeof(out->table)) {
        sd_buf_setf(err, "table id \"%s\": a PostgreSQL name is at most %d bytes", table_id,
                    TABLES_PG_MAX_IDENT);
        return SD_EINVAL;
    }
    strcpy(out->table, dot + 1);
    return 0;
}

/* Checks sc (sd_table_schema_check), refusing column names PostgreSQL would truncate. */
static int tables_pg_check_columns(const struct sd_table_schema *sc, struct sd_buf *err)
{
    int rc = sd_table_schema_check(sc, err);

    for (size_t i = 0; rc == 0 && i < sc->ncolumns; i++) {
        if (strlen(sc->columns[i]) > TABLES_PG_MAX_IDENT) {
            sd_buf_setf(err, "column \"%s\": a PostgreSQL name is at most %d bytes", sc->columns[i],
                        TABLES_PG_MAX_IDENT);
            rc = SD_EINVAL;
        }
    }
    return rc;
}

/* ---- the connection pool ---------------------------------------------------------------- */

/* Opens a connection and makes sure the ledger exists. */
static int tables_pg_connect(struct tables_pg *pg, PGconn **out, struct sd_buf *err)
{
    static const char *const keys[] = {"dbname", "connect_timeout", "options", "application_name",
                                       NULL};
    const char *vals[] = {pg->url, pg->connect_timeout, pg->options, "streamd", NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    int rc;

    *out = NULL;
    if (conn == NULL) {
        sd_buf_setf(err, "connecting to PostgreSQL: out of memory");
        return -ENOMEM;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        rc = tables_pg_fail(err, conn, NULL, "connecting to PostgreSQL");
        PQfinish(conn);
        return rc;
    }
    rc = tables_pg_exec(conn, "BEGIN", err);
    if (rc == 0) {
        rc = tables_pg_run(conn, "SELECT pg_advisory_xact_lock(" TABLES_PG_LOCK_CLASS ", 0)", 0,
                           NULL, PGRES_TUPLES_OK, NULL, err, "locking the ledger");
    }
    if (rc == 0) {
        rc = tables_pg_exec(conn, "CREATE SCHEMA IF NOT EXISTS \"" TABLES_PG_SCHEMA "\"", err);
    }
    if (rc == 0) {
        rc = tables_pg_exec(conn,
                            "CREATE TABLE IF NOT EXISTS " TABLES_PG_LEDGER " ("
                            "project bigint NOT NULL, slice_key text NOT NULL, "
                            "table_id text NOT NULL, rows bigint NOT NULL, "
                            "imported_at timestamptz NOT NULL DEFAULT now(), "
                            "PRIMARY KEY (project, slice_key))",
                            err);
    }
    if (rc == 0) {
        rc = tables_pg_exec(conn,
                            "CREATE INDEX IF NOT EXISTS import_ledger_table ON " TABLES_PG_LEDGER
                            " (project, table_id)",
                            err);
    }
    if (rc == 0) {
        rc = tables_pg_exec(conn, "COMMIT", err);
    }
    if (rc != 0) {
        PQfinish(conn);
        return rc;
    }
    *out = conn;
    return 0;
}

#define TABLES_PG_BEGIN "BEGIN ISOLATION LEVEL READ COMMITTED"

/* Takes a slot from the pool (waiting while none is free; a call that is not a check leaves the
 * last free slot to checks, so the API's table checks never wait for imports) and returns its
 * connection with a READ COMMITTED transaction begun (CAVEATS #14: the ledger insert waits for a
 * concurrent importer instead of failing). A connection the server dropped since its last use
 * (a restart) is replaced once, transparently: nothing was done on it yet. */
static int tables_pg_acquire(struct tables_pg *pg, int check, PGconn **out, struct sd_buf *err)
{
    PGconn *conn;
    PGresult *res;
    int rc;

    *out = NULL;
    pthread_mutex_lock(&pg->mu);
    while (pg->nidle == 0 || (!check && pg->nidle == 1)) {
        pthread_cond_wait(&pg->freed, &pg->mu);
    }
    conn = pg->idle[--pg->nidle];
    pthread_mutex_unlock(&pg->mu);
    if (conn != NULL) {
        res = PQexec(conn, TABLES_PG_BEGIN);
        if (PQresultStatus(res) == PGRES_COMMAND_OK) {
            PQclear(res);
            *out = conn;
            return 0;
        }
        PQclear(res);
        PQfinish(conn);
    }
    rc = tables_pg_connect(pg, &conn, err);
    if (rc == 0) {
        rc = tables_pg_exec(conn, TABLES_PG_BEGIN, err);
        if (rc != 0) {
            PQfinish(conn);
        }
    }
    if (rc != 0) {
        pthread_mutex_lock(&pg->mu);
        pg->idle[pg->nidle++] = NULL;
        pthread_cond_broadcast(&pg->freed);
        pthread_mutex_unlock(&pg->mu);
        return rc;
    }
    *out = conn;
    return 0;
}

/* Returns a connection to the pool, rolling back a transaction the caller left open (after a
 * failure, or a read); a broken connection is closed (its slot reconnects on next use). */
static void tables_pg_release(struct tables_pg *pg, PGconn *conn)
{
    if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE) {
        PQclear(PQexec(conn, "ROLLBACK"));
    }
    if (PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) != PQTRANS_IDLE) {
        PQfinish(conn);
        conn = NULL;
    }
    pthread_mutex_lock(&pg->mu);
    pg->idle[pg->nidle++] = conn;
    pthread_cond_broadcast(&pg->freed);
    pthread_mutex_unlock(&pg->mu);
}

/* ---- tables ----------------------------------------------------------------------------- */

/* The values of column col of res, one per row (owned array of borrowed strings, valid until
 * res is cleared; free() it). */
static const char **tables_pg_values(const PGresult *res, int col)
{
    int n = PQntuples(res);
    const char **v = sd_xcalloc(n > 0 ? (size_t)n : 1, sizeof(*v));

    for (int i = 0; i < n; i++) {
        v[i] = PQgetvalue(res, i, col);
    }
    return v;
}

/* Checks that table n's primary key is sc's key columns in mapping order (none for none):
 * 0, or SD_ECONFLICT with err naming both. */
static int tables_pg_check_key(PGconn *conn, const char *table_id, const struct tables_pg_name *n,
                               const struct sd_table_schema *sc, struct sd_buf *err)
{
    const char *params[] = {n->schema, n->table};
    struct sd_buf want = SD_BUF_INIT, have = SD_BUF_INIT;
    PGresult *res = NULL;
    const char **key;
    int rc;

    rc = tables_pg_run(conn,
                       "SELECT a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
                       "JOIN pg_namespace s ON s.oid = c.relnamespace CROSS JOIN LATERAL "
                       "unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) JOIN pg_attribute a ON "
                       "a.attrelid = c.oid AND a.attnum = k.attnum WHERE s.nspname = $1 AND "
                       "c.relname = $2 AND i.indisprimary ORDER BY k.ord",
                       2, params, PGRES_TUPLES_OK, &res, err, "reading the table's primary key");
    if (rc != 0) {
        return rc;
    }
    key = tables_pg_values(res, 0);
    if (!sd_table_schema_key_matches(sc, key, (size_t)PQntuples(res))) {
        sd_table_describe(&have, key, NULL, NULL, (size_t)PQntuples(res));
        sd_table_describe_key(&want, sc);
        sd_buf_setf(err, "table \"%s\" has primary key %s, the mapping has %s", table_id,
                    sd_buf_cstr(&have), sd_buf_cstr(&want));
        rc = SD_ECONFLICT;
    }
    free(key);
    PQclear(res);
    sd_buf_fini(&want);
    sd_buf_fini(&have);
    return rc;
}

/* Checks table n against columns: *exists = 1 when it exists with exactly them, 0 when it is
 * missing; SD_ECONFLICT (err naming both lists) when it differs or is not a table. */
static int tables_pg_check(PGconn *conn, const char *table_id, const struct tables_pg_name *n,
                           const struct sd_table_schema *sc, int *exists, struct sd_buf *err)
{
    const char *params[] = {n->schema, n->table};
    PGresult *res = NULL;
    struct sd_buf want = SD_BUF_INIT;
    struct sd_buf have = SD_BUF_INIT;
    const char **names, **types;
    int rc;

    *exists = 0;
    rc = tables_pg_run(conn,
                       "SELECT c.relkind FROM pg_class c JOIN pg_namespace s ON s.oid = "
                       "c.relnamespace WHERE s.nspname = $1 AND c.relname = $2",
                       2, params, PGRES_TUPLES_OK, &res, err, "looking up the table");
    if (rc != 0) {
        return rc;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        return 0;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "r") != 0 && strcmp(PQgetvalue(res, 0, 0), "p") != 0) {
        sd_buf_setf(err, "\"%s\" exists in PostgreSQL but is not a table", table_id);
        PQclear(res);
        return SD_ECONFLICT;
    }
    PQclear(res);
    rc = tables_pg_run(conn,
                       "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute "
                       "a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace s ON s.oid = "
                       "c.relnamespace WHERE s.nspname = $1 AND c.relname = $2 AND a.attnum > 0 "
                       "AND NOT a.attisdropped ORDER BY a.attnum",
                       2, params, PGRES_TUPLES_OK, &res, err, "reading the table's columns");
    if (rc != 0) {
        return rc;
    }
    names = tables_pg_values(res, 0);
    types = tables_pg_values(res, 1);
    if (sd_table_schema_matches(sc, names, types, NULL, (size_t)PQntuples(res))) {
        PQclear(res);
        res = NULL;
        rc = tables_pg_check_key(conn, table_id, n, sc, err);
        *exists = rc == 0;
    } else {
        sd_table_describe(&have, names, types, NULL, (size_t)PQntuples(res));
        sd_table_describe(&want, sc->columns, NULL, NULL, sc->ncolumns);
        sd_buf_setf(err, "table \"%s\" has columns %s, the mapping has %s", table_id,
                    sd_buf_cstr(&have), sd_buf_cstr(&want));
        rc = SD_ECONFLICT;
    }
    free(names);
    free(types);
    PQclear(res);
    sd_buf_fini(&want);
    sd_buf_fini(&have);
    return rc;
}

/* ensure_table inside the caller's transaction: creation is serialized per schema by an
 * advisory lock held to the end of the transaction, and the check is repeated under it. */
static int tables_pg_ensure_locked(PGconn *conn, const char *table_id,
                                   const struct tables_pg_name *n, const struct sd_table_schema *sc,
                                   struct sd_buf *err)
{
    const char *params[] = {n->schema};
    struct sd_buf sql = SD_BUF_INIT;
    int exists = 0;
    int rc;

    rc = tables_pg_check(conn, table_id, n, sc, &exists, err);
    if (rc != 0 || exists) {
        return rc;
    }
    rc = tables_pg_run(conn, "SELECT pg_advisory_xact_lock(" TABLES_PG_LOCK_CLASS ", hashtext($1))",
                       1, params, PGRES_TUPLES_OK, NULL, err, "locking the schema");
    if (rc == 0) {
        rc = tables_pg_check(conn, table_id, n, sc, &exists, err);
    }
    if (rc != 0 || exists) {
        return rc;
    }
    rc = sd_buf_append_str(&sql, "CREATE SCHEMA IF NOT EXISTS ");
    if (rc == 0) {
        rc = sd_table_sql_ident(&sql, n->schema);
    }
    if (rc == 0) {
        rc = sd_buf_append_str(&sql, "; CREATE TABLE ");
    }
    if (rc == 0) {
        rc = tables_pg_qualified(&sql, n);
    }
    if (rc == 0) {
        rc = sd_buf_append_char(&sql, ' ');
    }
    if (rc == 0) {
        rc = sd_table_sql_define(&sql, sc, "text NOT NULL");
    }
    if (rc != 0) {
        sd_buf_setf(err, "out of memory");
    } else {
        PGresult *res = PQexec(conn, sd_buf_cstr(&sql));

        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            rc = tables_pg_fail(err, conn, res, "creating the table");
        } else {
            PQclear(res);
        }
    }
    sd_buf_fini(&sql);
    return rc;
}

/* ---- ops -------------------------------------------------------------------------------- */

static int tables_pg_open(const struct sd_config *cfg, const char *location, void **ctx)
{
    struct tables_pg_config c = {4, 10000, 0};
    struct tables_pg *pg;

    *ctx = NULL;
    if (location == NULL || location[0] == '\0') {
        return SD_EINVAL;
    }
    if (cfg != NULL) {
        sd_config_fill(cfg, &sd_tables_postgres_config_bindings, &c);
    }
    pg = sd_xcalloc(1, sizeof(*pg));
    pg->url = sd_xstrdup(location);
    /* libpq's connect_timeout is in whole seconds; 0 would mean "wait forever" */
    snprintf(pg->connect_timeout, sizeof(pg->connect_timeout), "%" PRId64,
             c.connect_timeout_ms < 1000 ? 1 : (c.connect_timeout_ms + 999) / 1000);
    snprintf(pg->options, sizeof(pg->options),
             "-c statement_timeout=%" PRId64 " -c client_min_messages=warning",
             c.statement_timeout_ms);
    pthread_mutex_init(&pg->mu, NULL);
    pthread_cond_init(&pg->freed, NULL);
    /* one slot more than the pool size: the one kept for checks (tables_pg_acquire) */
    pg->nidle = (size_t)(c.pool_size > 0 ? c.pool_size : 1) + 1;
    pg->idle = sd_xcalloc(pg->nidle, sizeof(PGconn *));
    *ctx = pg;
    return 0;
}

static void tables_pg_close(void *ctx)
{
    struct tables_pg *pg = ctx;

    if (pg == NULL) {
        return;
    }
    for (size_t i = 0; i < pg->nidle; i++) {
        PQfinish(pg->idle[i]);
    }
    free(pg->idle);
    pthread_cond_destroy(&pg->freed);
    pthread_mutex_destroy(&pg->mu);
    free(pg->url);
    free(pg);
}

/* Runs ensure (create = 1) or check (create = 0) for one table. */
static int tables_pg_ensure_or_check(void *ctx, int64_t project, const char *table_id,
                                     const struct sd_table_schema *sc, int create,
                                     struct sd_buf *err)
{
    struct tables_pg_name n;
    PGconn *conn;
    int exists = 0;
    int rc;

    rc = tables_pg_name_of(project, table_id, &n, err);
    if (rc == 0) {
        rc = tables_pg_check_columns(sc, err);
    }
    if (rc == 0) {
        rc = tables_pg_acquire(ctx, !create, &conn, err);
    }
    if (rc != 0) {
        return rc;
    }
    if (!create) {
        rc = tables_pg_check(conn, table_id, &n, sc, &exists, err);
    } else {
        rc = tables_pg_ensure_locked(conn, table_id, &n, sc, err);
        if (rc == 0) {
            rc = tables_pg_exec(conn, "COMMIT", err);
        }
    }
    tables_pg_release(ctx, conn);
    return rc;
}

static int tables_pg_ensure_table(void *ctx, int64_t project, const char *table_id,
                                  const struct sd_table_schema *sc, struct sd_buf *err)
{
    return tables_pg_ensure_or_check(ctx, project, table_id, sc, 1, err);
}

static int tables_pg_check_table(void *ctx, int64_t project, const char *table_id,
                                 const struct sd_table_schema *sc, struct sd_buf *err)
{
    return tables_pg_ensure_or_check(ctx, project, table_id, sc, 0, err);
}

/* Streams every row of s into the open COPY; returns 0 (COPY ended) or the error (COPY
 * aborted with the message, err set). *rows = rows sent. */
static int tables_pg_copy_rows(PGconn *conn, size_t ncolumns, const struct sd_import_slice *s,
                               uint64_t *rows, struct sd_buf *err)
{
    struct sd_csv_reader *r = NULL;
    struct sd_buf chunk = SD_BUF_INIT;
    const struct sd_str *f;
    size_t nf;
    int rc;

    *rows = 0;
    rc = sd_csv_reader_open(s->read, s->arg, &r);
    if (rc != 0) {
        sd_buf_setf(err, "slice %s: %s", s->slice_key, sd_strerror(rc));
    }
    while (rc == 0) {
        rc = sd_csv_reader_next(r, &f, &nf);
        if (rc < 0) {
            const char *why = sd_csv_reader_error(r);

            sd_buf_setf(err, "slice %s: %s", s->slice_key, why[0] != '\0' ? why : sd_strerror(rc));
        }
        if (rc <= 0) {
            break;
        }
        rc = 0;
        if (nf != ncolumns) {
            sd_buf_setf(err, "slice %s: row %" PRIu64 " has %zu fields, expected %zu", s->slice_key,
                        *rows + 1, nf, ncolumns);
            rc = SD_ECORRUPT;
            break;
        }
        for (size_t i = 0; rc == 0 && i < nf; i++) {
            if (memchr(f[i].p, '\0', f[i].len) != NULL) {
                sd_buf_setf(err,
                            "slice %s: row %" PRIu64 " holds a NUL byte, which PostgreSQL "
                            "text cannot store",
                            s->slice_key, *rows + 1);
                rc = SD_ECORRUPT;
            } else {
                rc = sd_csv_field(&chunk, f[i].p, f[i].len, i == 0);
            }
        }
        if (rc == 0) {
            rc = sd_csv_end_row(&chunk);
        }
        if (rc == -ENOMEM) {
            sd_buf_setf(err, "slice %s: out of memory", s->slice_key);
        }
        if (rc == 0 && chunk.len >= TABLES_PG_COPY_CHUNK) {
            if (PQputCopyData(conn, chunk.data, (int)chunk.len) != 1) {
                rc = tables_pg_fail(err, conn, NULL, "sending rows");
            }
            sd_buf_reset(&chunk);
        }
        if (rc == 0) {
            (*rows)++;
        }
    }
    if (rc == 0 && chunk.len > 0 && PQputCopyData(conn, chunk.data, (int)chunk.len) != 1) {
        rc = tables_pg_fail(err, conn, NULL, "sending rows");
    }
    sd_csv_reader_close(r);
    sd_buf_fini(&chunk);
    /* a failed slice aborts the COPY, and with it the transaction (CAVEATS #13) */
    if (PQputCopyEnd(conn, rc == 0 ? NULL : "streamd: the slice could not be read") != 1 &&
        rc == 0) {
        rc = tables_pg_fail(err, conn, NULL, "ending the COPY");
    }
    return rc;
}

/* The stage of a keyed import: a temporary table (dropped at commit) with the target's columns
 * and the arrival order of each row. */
#define TABLES_PG_STAGE "pg_temp.\"_streamd_stage\""

/* Creates the stage for sc's columns unless this transaction has it. */
static int tables_pg_stage_create(PGconn *conn, const struct sd_table_schema *sc,
                                  struct sd_buf *err)
{
    struct sd_buf sql = SD_BUF_INIT;
    int rc = sd_buf_append_str(&sql, "CREATE TEMP TABLE IF NOT EXISTS \"_streamd_stage\" (");

    for (size_t i = 0; rc == 0 && i < sc->ncolumns; i++) {
        rc = sd_table_sql_ident(&sql, sc->columns[i]);
        if (rc == 0) {
            rc = sd_buf_append_str(&sql, " text NOT NULL, ");
        }
    }
    if (rc == 0) {
        rc = sd_buf_append_str(&sql, "\"_streamd_seq\" bigserial) ON COMMIT DROP");
    }
    rc = rc == 0 ? tables_pg_exec(conn, sd_buf_cstr(&sql), err) : rc;
    sd_buf_fini(&sql);
    return rc;
}

/* Moves the stage into table n: the last row of each key wins (an upsert, as an incremental
 * load into a table with a primary key), then empties the stage. */
static int tables_pg_stage_merge(PGconn *conn, const struct tables_pg_name *n,
                                 const struct sd_table_schema *sc, struct sd_buf *err)
{
    struct sd_buf sql = SD_BUF_INIT, cols = SD_BUF_INIT, key = SD_BUF_INIT;
    int rc;

    rc = sd_table_sql_names(&cols, sc, 0);
    rc = rc == 0 ? sd_table_sql_names(&key, sc, 1) : rc;
    rc = rc == 0 ? sd_buf_append_str(&sql, "INSERT INTO ") : rc;
    if (rc == 0) {
        rc = tables_pg_qualified(&sql, n);
    }
    if (rc == 0) {
        /* DISTINCT ON keeps the first row of each key in ORDER BY order: the newest */
        rc = sd_buf_printf(&sql,
                           " %s SELECT DISTINCT ON %s %.*s FROM " TABLES_PG_STAGE
                           " ORDER BY %.*s, \"_streamd_seq\" DESC ",
                           sd_buf_cstr(&cols), sd_buf_cstr(&key), (int)(cols.len - 2),
                           sd_buf_cstr(&cols) + 1, (int)(key.len - 2), sd_buf_cstr(&key) + 1);
    }
    rc = rc == 0 ? sd_table_sql_on_conflict(&sql, sc) : rc;
    rc = rc == 0 ? tables_pg_exec(conn, sd_buf_cstr(&sql), err) : rc;
    rc = rc == 0 ? tables_pg_exec(conn, "TRUNCATE " TABLES_PG_STAGE, err) : rc;
    sd_buf_fini(&sql);
    sd_buf_fini(&cols);
    sd_buf_fini(&key);
    return rc;
}

/* Imports one slice whose ledger row was just inserted: COPY (into the stage, merged after,
 * when the table has a key), then the row count. */
static int tables_pg_import_slice(PGconn *conn, const struct tables_pg_name *n,
                                  const struct sd_table_schema *sc, int64_t project,
                                  const struct sd_import_slice *s, uint64_t *rows,
                                  struct sd_buf *err)
{
    size_t ncolumns = sc->ncolumns;
    int keyed = sd_table_schema_has_key(sc);
    struct sd_buf sql = SD_BUF_INIT;
    char project_s[24];
    char rows_s[24];
    PGresult *res;
    int rc;

    *rows = 0;
    rc = keyed ? tables_pg_stage_create(conn, sc, err) : 0;
    if (rc != 0) {
        return rc;
    }
    rc = sd_buf_append_str(&sql, "COPY ");
    if (rc == 0) {
        rc = keyed ? sd_buf_append_str(&sql, TABLES_PG_STAGE) : tables_pg_qualified(&sql, n);
    }
    if (rc == 0) {
        rc = sd_buf_append_char(&sql, ' ');
    }
    if (rc == 0) {
        rc = sd_table_sql_names(&sql, sc, 0);
    }
    if (rc == 0) {
        rc = sd_buf_append_str(&sql, " FROM STDIN (FORMAT csv)");
    }
    if (rc != 0) {
        sd_buf_setf(err, "out of memory");
        sd_buf_fini(&sql);
        return rc;
    }
    res = PQexec(conn, sd_buf_cstr(&sql));
    sd_buf_fini(&sql);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        return tables_pg_fail(err, conn, res, "starting the COPY");
    }
    PQclear(res);
    rc = tables_pg_copy_rows(conn, ncolumns, s, rows, err);
    /* the COPY's outcome: drain every result */
    while ((res = PQgetResult(conn)) != NULL) {
        if (rc == 0 && PQresultStatus(res) != PGRES_COMMAND_OK) {
            char what[256];

            snprintf(what, sizeof(what), "slice %s: COPY", s->slice_key);
            rc = tables_pg_fail(err, conn, res, what);
        } else {
            PQclear(res);
        }
    }
    if (rc == 0 && keyed) {
        rc = tables_pg_stage_merge(conn, n, sc, err);
    }
    if (rc == 0) {
        const char *params[] = {project_s, s->slice_key, rows_s};

        snprintf(project_s, sizeof(project_s), "%" PRId64, project);
        snprintf(rows_s, sizeof(rows_s), "%" PRIu64, *rows);
        rc = tables_pg_run(
            conn, "UPDATE " TABLES_PG_LEDGER " SET rows = $3 WHERE project = $1 AND slice_key = $2",
            3, params, PGRES_COMMAND_OK, NULL, err, "writing the import ledger");
    }
    if (rc != 0) {
        *rows = 0;
    }
    return rc;
}

/* Claims slice_key in the ledger: 1 when this transaction inserted its row, 0 when it was
 * there (a concurrent importer's row is waited for), or an error. */
static int tables_pg_claim(PGconn *conn, int64_t project, const char *slice_key,
                           const char *table_id, struct sd_buf *err)
{
    char project_s[24];
    const char *params[] = {project_s, slice_key, table_id};
    PGresult *res = NULL;
    int rc;

    snprintf(project_s, sizeof(project_s), "%" PRId64, project);
    rc = tables_pg_run(conn,
                       "INSERT INTO " TABLES_PG_LEDGER " (project, slice_key, table_id, rows) "
                       "VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING",
                       3, params, PGRES_COMMAND_OK, &res, err, "writing the import ledger");
    if (rc != 0) {
        return rc;
    }
    rc = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    return rc;
}

static int tables_pg_import(void *ctx, int64_t project, const char *table_id,
                            const struct sd_table_schema *sc, const struct sd_import_slice *slices,
                            size_t nslices, uint64_t *rows, struct sd_buf *err)
{
    struct tables_pg_name n;
    PGconn *conn;
    uint64_t total = 0;
    uint64_t got;
    int rc;

    if (rows != NULL) {
        *rows = 0;
    }
    rc = tables_pg_name_of(project, table_id, &n, err);
    if (rc == 0) {
        rc = tables_pg_check_columns(sc, err);
    }
    for (size_t i = 0; rc == 0 && i < nslices; i++) {
        if (slices[i].slice_key == NULL || slices[i].slice_key[0] == '\0' ||
            slices[i].read == NULL) {
            sd_buf_setf(err, "slice %zu has no key or no source", i + 1);
            rc = SD_EINVAL;
        }
    }
    if (rc == 0) {
        rc = tables_pg_acquire(ctx, 0, &conn, err);
    }
    if (rc != 0) {
        return rc;
    }
    rc = tables_pg_ensure_locked(conn, table_id, &n, sc, err);
    for (size_t i = 0; rc == 0 && i < nslices; i++) {
        rc = tables_pg_claim(conn, project, slices[i].slice_key, table_id, err);
        if (rc == 1) {
            rc = tables_pg_import_slice(conn, &n, sc, project, &slices[i], &got, err);
            total += got;
        }
    }
    if (rc == 0) {
        rc = tables_pg_exec(conn, "COMMIT", err);
    }
    if (rc != 0) {
        total = 0;
    }
    tables_pg_release(ctx, conn);
    if (rows != NULL) {
        *rows = total;
    }
    return rc;
}

static int tables_pg_is_imported(void *ctx, int64_t project, const char *slice_key)
{
    char project_s[24];
    const char *params[] = {project_s, slice_key};
    PGresult *res = NULL;
    PGconn *conn;
    int rc;

    if (slice_key == NULL) {
        return SD_EINVAL;
    }
    rc = tables_pg_acquire(ctx, 0, &conn, NULL);
    if (rc != 0) {
        return rc;
    }
    snprintf(project_s, sizeof(project_s), "%" PRId64, project);
    rc = tables_pg_run(conn,
                       "SELECT 1 FROM " TABLES_PG_LEDGER " WHERE project = $1 AND slice_key = $2",
                       2, params, PGRES_TUPLES_OK, &res, NULL, "reading the import ledger");
    if (rc == 0) {
        rc = PQntuples(res) > 0;
        PQclear(res);
    }
    tables_pg_release(ctx, conn);
    return rc;
}

static int tables_pg_drop_table(void *ctx, int64_t project, const char *table_id)
{
    struct tables_pg_name n;
    struct sd_buf sql = SD_BUF_INIT;
    char project_s[24];
    const char *params[] = {project_s, table_id};
    PGconn *conn;
    int rc;

    rc = tables_pg_name_of(project, table_id, &n, NULL);
    if (rc == 0) {
        rc = tables_pg_acquire(ctx, 0, &conn, NULL);
    }
    if (rc != 0) {
        return rc;
    }
    snprintf(project_s, sizeof(project_s), "%" PRId64, project);
    rc = sd_buf_append_str(&sql, "DROP TABLE IF EXISTS ");
    if (rc == 0) {
        rc = tables_pg_qualified(&sql, &n);
    }
    if (rc == 0) {
        rc = tables_pg_exec(conn, sd_buf_cstr(&sql), NULL);
    }
    if (rc == 0) {
        rc = tables_pg_run(conn,
                           "DELETE FROM " TABLES_PG_LEDGER " WHERE project = $1 AND table_id = $2",
                           2, params, PGRES_COMMAND_OK, NULL, NULL, "clearing the import ledger");
    }
    if (rc == 0) {
        rc = tables_pg_exec(conn, "COMMIT", NULL);
    }
    tables_pg_release(ctx, conn);
    sd_buf_fini(&sql);
    return rc;
}

const struct sd_tables_ops sd_tables_postgres_ops = {
    .name = "postgres",
    .open = tables_pg_open,
    .close = tables_pg_close,
    .ensure_table = tables_pg_ensure_table,
    .check_table = tables_pg_check_table,
    .import = tables_pg_import,
    .is_imported = tables_pg_is_imported,
    .drop_table = tables_pg_drop_table,
};
