/* sd_tables.h: the table-storage interface (the "Keboola Storage" of the seed: projects and
 * their tables) and the opening of its backends (listed in sd_backends.c).
 *
 * A sink's file is imported into a table by handing its staged slices to sd_tables_import.
 * Import is exactly-once per slice: a slice's rows and a ledger entry naming the slice are
 * committed in one transaction, so an import that is retried (after a crash, a timeout, a lost
 * answer) adds nothing for the slices that made it. Backends: "sqlite" (one database file per
 * project, standalone default; plugins/tables_sqlite), "postgres" (plugins/tables_postgres) and
 * later "keboola". Every backend passes tests/unit/tables_contract.h.
 *
 * Table model: table_id is the table's exact name ("in.c-bucket.table"); its schema (struct
 * sd_table_schema) is the sink mapping's column names, in mapping order, all text, and the
 * columns marked "primaryKey": true, which form the table's primary key (in mapping order);
 * nothing else is in the table. A table with a primary key is loaded by upsert: a row whose key
 * is already in the table replaces that row (also a row earlier in the same slice or call).
 * Values are stored byte-exact (an empty CSV field is the empty string, never NULL). The
 * backend's own bookkeeping lives beside the tables under names starting with "_streamd_";
 * such table ids (and "sqlite_..." ones in the sqlite backend) are refused with SD_EINVAL.
 *
 * Return codes: 0, a negated errno (-EIO, -ENOSPC, -EBUSY when the database stayed locked past
 * the busy timeout, -ENOMEM), or SD_EINVAL, SD_ECONFLICT, SD_ECORRUPT. Where a call takes
 * err (may be NULL), a failure resets it and writes a one-line message for the user (for
 * the task's error reason or the log). A call that returned 0 is durable.
 *
 * Threads: every call is thread-safe (calls for one project are serialized inside the
 * backend), except that sd_tables_close must not race with any other call. Calls block (disk
 * sync, network): never call them from an event-loop thread. */
#ifndef SD_TABLES_H
#define SD_TABLES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/sd_buf.h"
#include "tables/sd_csv_reader.h"

struct sd_config;

/* Prefix of the backend's own tables in a project's storage. */
#define SD_TABLES_INTERNAL_PREFIX "_streamd_"

/* One staged slice to import. All members are borrowed for the duration of the call. */
struct sd_import_slice {
    const char *slice_key;  /* unique id of the slice: the ledger key */
    sd_byte_source_fn read; /* the slice's staged bytes (gzip or plain CSV, sd_csv_reader) */
    void *arg;
};

/* A table's schema. columns[0..ncolumns) are borrowed C strings, non-empty and distinct;
 * is_pk is NULL (no primary key) or ncolumns flags, nonzero for a primary-key column. */
struct sd_table_schema {
    const char *const *columns;
    size_t ncolumns;
    const unsigned char *is_pk;
};

/* A backend. Every call has the contract of the sd_tables_* wrapper of the same name below;
 * ctx is what open returned. Backends are listed in sd_tables.c and picked by name. */
struct sd_tables_ops {
    const char *name; /* "sqlite" */
    /* Opens the backend at location (sqlite: a directory, created if missing, holding one
     * database per project, <location>/project-<projectId>.sqlite, WAL mode, each created on
     * demand). cfg is borrowed and may be NULL for "sqlite". */
    int (*open)(const struct sd_config *cfg, const char *location, void **ctx);
    void (*close)(void *ctx);
    int (*ensure_table)(void *ctx, int64_t project, const char *table_id,
                        const struct sd_table_schema *schema, struct sd_buf *err);
    int (*check_table)(void *ctx, int64_t project, const char *table_id,
                       const struct sd_table_schema *schema, struct sd_buf *err);
    int (*import)(void *ctx, int64_t project, const char *table_id,
                  const struct sd_table_schema *schema, const struct sd_import_slice *slices,
                  size_t nslices, uint64_t *rows, struct sd_buf *err);
    int (*is_imported)(void *ctx, int64_t project, const char *slice_key);
    int (*drop_table)(void *ctx, int64_t project, const char *table_id);
};

/* An open table storage: a backend and its context. */
struct sd_tables {
    const struct sd_tables_ops *ops;
    void *ctx;
};

/* The backends (plugins/tables_*). */
extern const struct sd_tables_ops sd_tables_sqlite_ops;

/* Opens the backend named by config key "tables.backend": "sqlite" at "tables.sqlite.path" (the
 * config loader defaults it to <dataDir>/tables), "postgres" at "tables.postgres.url";
 * "keboola" returns -ENOTSUP for now. cfg is borrowed. Logs the outcome once. On success *out
 * is owned by the caller; close with sd_tables_close. */
int sd_tables_open(const struct sd_config *cfg, struct sd_tables **out);

/* Opens backend name at location (see struct sd_tables_ops.open). cfg may be NULL for
 * "sqlite". Returns 0, SD_EINVAL (unknown name, NULL location), -ENOTSUP ("keboola": not built
 * yet) or the backend's error (-errno). Does not log. */
int sd_tables_open_backend(const char *name, const struct sd_config *cfg, const char *location,
                           struct sd_tables **out);

/* Closes the backend (its connections) and frees t. No call on t may be in flight or follow.
 * NULL is fine. */
void sd_tables_close(struct sd_tables *t);

/* Makes sure table table_id of project exists with exactly schema (borrowed): its columns in
 * this order, all text, and its primary key: creates it when missing (an empty table, durable
 * on return). An existing table with this schema: 0, nothing changed. An existing table with
 * other columns (names, order, count or a non-text type) or another primary key (other
 * columns, or a key where none is wanted or the reverse): SD_ECONFLICT, err naming the
 * expected and the actual schema. SD_EINVAL for an empty or reserved table id, no columns, or
 * names the backend refuses (err says why). */
static inline int sd_tables_ensure_table(struct sd_tables *t, int64_t project, const char *table_id,
                                         const struct sd_table_schema *schema, struct sd_buf *err)
{
    return t->ops->ensure_table(t->ctx, project, table_id, schema, err);
}

/* Tells, changing nothing, whether sd_tables_ensure_table would succeed: 0 when table_id is
 * missing or has exactly this schema, otherwise its error and message (SD_ECONFLICT, SD_EINVAL
 * or a storage error). Reads only, so it is quick; the API checks a sink's table with it before
 * accepting the sink. Another writer may still create the table differently meanwhile. */
static inline int sd_tables_check_table(struct sd_tables *t, int64_t project, const char *table_id,
                                        const struct sd_table_schema *schema, struct sd_buf *err)
{
    return t->ops->check_table(t->ctx, project, table_id, schema, err);
}

/* Imports, in ONE transaction, every slice of slices[0..nslices) whose slice_key is not yet in
 * the project's ledger: all of its rows, in order, appended to table_id (upserted when the
 * schema has a primary key: slices in the given order, rows in file order, the last row with
 * a key wins), plus one ledger row per slice (slice_key, table_id, row count, time). Slices already
 * in the ledger (also a key repeated within the call) are skipped without calling their read
 * function, so a retried import adds nothing. The table is first ensured exactly as by
 * sd_tables_ensure_table (created when missing, SD_ECONFLICT when it has another schema). Each row
 * must have exactly schema->ncolumns fields. On success *rows (may be NULL) = rows written by this
 * call, an upsert that replaced a row included (0 when every slice was imported before) and
 * everything is durable. On any failure nothing is committed (no row, no ledger entry) and *rows =
 * 0: SD_ECORRUPT for malformed CSV or gzip or a row with the wrong field count, a source's -errno,
 * SD_ECONFLICT, SD_EINVAL, or a storage error; err names the slice (and the row and byte offset
 * when it is the data). Concurrent imports of the same slice, from threads or processes, insert its
 * rows once. */
static inline int sd_tables_import(struct sd_tables *t, int64_t project, const char *table_id,
                                   const struct sd_table_schema *schema,
                                   const struct sd_import_slice *slices, size_t nslices,
                                   uint64_t *rows, struct sd_buf *err)
{
    return t->ops->import(t->ctx, project, table_id, schema, slices, nslices, rows, err);
}

/* Returns 1 if slice_key is in the project's ledger (its import committed), 0 if not (also
 * when the project has no storage yet; nothing is created), or < 0 on error. Used by recovery
 * to decide whether a file whose import outcome is unknown must be imported again. */
static inline int sd_tables_is_imported(struct sd_tables *t, int64_t project, const char *slice_key)
{
    return t->ops->is_imported(t->ctx, project, slice_key);
}

/* Drops table table_id of project and removes its ledger rows (so its slices could be
 * imported again), in one transaction. A missing table is fine (its ledger rows are still
 * removed). Returns 0, SD_EINVAL for a reserved table id, or a storage error. */
static inline int sd_tables_drop_table(struct sd_tables *t, int64_t project, const char *table_id)
{
    return t->ops->drop_table(t->ctx, project, table_id);
}

/* A schema copied out of a sink mapping's "columns" JSON array (each member's "name", and
 * "primaryKey": true for a key column; a missing name is ""), owned by the caller as one block:
 * free() it. is_pk is NULL when no column is a key. */
struct sd_table_schema *sd_table_schema_from_json(const json_t *columns);

/* sd_tables_ensure_table with the schema of a sink mapping's "columns" JSON array. */
int sd_tables_ensure_mapping_table(struct sd_tables *t, int64_t project, const char *table_id,
                                   const json_t *columns, struct sd_buf *err);

struct sd_config_bindings;
/* The keys that choose the table storage (for the registry). */
extern const struct sd_config_bindings sd_tables_config_bindings;

#endif
