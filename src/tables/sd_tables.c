/* sd_tables.c: sd_tables_open.
 *
 * DESIGN: the tables.backend name picks an ops table from the backend registry (sd_backends.h):
 * "sqlite" (plugins/tables_sqlite, at tables.sqlite.path) and "postgres"
 * (plugins/tables_postgres, at tables.postgres.url, which is never logged: it may hold a
 * password). Backends that are planned but not built yet ("keboola") are known names that
 * answer -ENOTSUP, so a config naming them fails clearly instead of as a typo. sd_tables_open
 * only reads config and delegates; the backend owns its context, connections and locks.
 * Nothing here keeps state between calls. The outcome of an open is logged once, here, where
 * the caller receives the code. */
#include "tables/sd_tables.h"

#include "config/sd_config.h"
#include "config/sd_config_bind.h"
#include "core/sd_alloc.h"
#include "core/sd_error.h"
#include "core/sd_log.h"
#include "sd_backends.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int sd_tables_open_backend(const char *name, const struct sd_config *cfg, const char *location,
                           struct sd_tables **out)
{
    const struct sd_tables_ops *ops;
    const void *found;
    struct sd_tables *t;
    void *ctx = NULL;
    int rc;

    *out = NULL;
    rc = sd_backend_find(SD_BACKEND_TABLES, name, &found);
    if (rc != 0) {
        return rc;
    }
    ops = found;
    if (location == NULL || location[0] == '\0') {
        return SD_EINVAL;
    }
    rc = ops->open(cfg, location, &ctx);
    if (rc != 0) {
        return rc;
    }
    t = sd_xmalloc(sizeof(*t));
    t->ops = ops;
    t->ctx = ctx;
    *out = t;
    return 0;
}

/* The keys that choose the table storage, filled once by sd_config_fill. */
struct sd_tables_config {
    const char *backend;
    const char *sqlite_path;
    const char *postgres_url;
};

#define SD_TABLES_BIND(field, key) SD_BIND(struct sd_tables_config, field, key, SD_BIND_STR)
static const struct sd_config_binding sd_tables_rows[] = {
    SD_TABLES_BIND(backend, "tables.backend"),
    SD_TABLES_BIND(sqlite_path, "tables.sqlite.path"),
    SD_TABLES_BIND(postgres_url, "tables.postgres.url"),
};
const struct sd_config_bindings sd_tables_config_bindings = SD_BINDINGS("tables", sd_tables_rows);

int sd_tables_open(const struct sd_config *cfg, struct sd_tables **out)
{
    struct sd_tables_config c;
    const char *backend;
    const char *where = "";
    int rc;

    sd_config_fill(cfg, &sd_tables_config_bindings, &c);
    backend = c.backend;
    if (strcmp(backend, "sqlite") == 0) {
        where = c.sqlite_path;
    }
    rc = sd_tables_open_backend(backend, cfg,
                                strcmp(backend, "postgres") == 0 ? c.postgres_url : where, out);
    if (rc == -ENOTSUP) {
        sd_log_error("tables", "tables.backend %s is not supported yet", backend);
    } else if (rc != 0 && strcmp(backend, "postgres") == 0 && c.postgres_url[0] == '\0') {
        sd_log_error("tables", "tables.backend postgres needs tables.postgres.url");
    } else if (rc != 0) {
        sd_log_error("tables", "open %s table storage at %s: %s", backend, where, sd_strerror(rc));
    } else if (strcmp(backend, "postgres") == 0) {
        sd_log_info("tables", "opened postgres table storage"); /* the URL may hold a password */
    } else {
        sd_log_info("tables", "opened %s table storage at %s", backend, where);
    }
    return rc;
}

struct sd_table_schema *sd_table_schema_from_json(const json_t *columns)
{
    size_t n = json_array_size(columns);
    size_t size = sizeof(struct sd_table_schema) + (n + 1) * sizeof(char *) + n;
    struct sd_table_schema *s;
    const char **names;
    unsigned char *is_pk;
    char *text;
    int any_pk = 0;

    for (size_t i = 0; i < n; i++) {
        size +=
            strlen(json_string_value(json_object_get(json_array_get(columns, i), "name")) ?: "") +
            1;
    }
    s = sd_xcalloc(1, size);
    names = (const char **)(s + 1);
    is_pk = (unsigned char *)(names + n + 1);
    text = (char *)(is_pk + n);
    for (size_t i = 0; i < n; i++) {
        const json_t *col = json_array_get(columns, i);
        const char *name = json_string_value(json_object_get(col, "name")) ?: "";
        size_t len = strlen(name) + 1;

        memcpy(text, name, len);
        names[i] = text;
        text += len;
        is_pk[i] = json_is_true(json_object_get(col, "primaryKey"));
        any_pk |= is_pk[i];
    }
    s->columns = names;
    s->ncolumns = n;
    s->is_pk = any_pk ? is_pk : NULL;
    return s;
}

void sd_tables_close(struct sd_tables *t)
{
    if (t == NULL) {
        return;
    }
    t->ops->close(t->ctx);
    free(t);
}

int sd_tables_ensure_mapping_table(struct sd_tables *t, int64_t project, const char *table_id,
                                   const json_t *columns, struct sd_buf *err)
{
    struct sd_table_schema *schema = sd_table_schema_from_json(columns);
    int rc = sd_tables_ensure_table(t, project, table_id, schema, err);

    free(schema);
    return rc;
}
