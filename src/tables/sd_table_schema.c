/* sd_table_schema.c: checking, comparing, describing and declaring a table schema, shared by
 * the SQL table backends (see sd_table_schema.h). */
#include "tables/sd_table_schema.h"

#include "core/sd_error.h"

#include <string.h>
#include <strings.h>

int sd_table_schema_is_key(const struct sd_table_schema *s, size_t i)
{
    return s->is_pk != NULL && s->is_pk[i] != 0;
}

int sd_table_schema_has_key(const struct sd_table_schema *s)
{
    for (size_t i = 0; i < s->ncolumns; i++) {
        if (sd_table_schema_is_key(s, i)) {
            return 1;
        }
    }
    return 0;
}

int sd_table_schema_check(const struct sd_table_schema *s, struct sd_buf *err)
{
    if (s == NULL || s->ncolumns == 0 || s->columns == NULL) {
        sd_buf_setf(err, "a table needs at least one column");
        return SD_EINVAL;
    }
    for (size_t i = 0; i < s->ncolumns; i++) {
        if (s->columns[i] == NULL || s->columns[i][0] == '\0') {
            sd_buf_setf(err, "column %zu has an empty name", i + 1);
            return SD_EINVAL;
        }
    }
    return 0;
}

int sd_table_schema_matches(const struct sd_table_schema *s, const char *const *names,
                            const char *const *types, const unsigned char *is_key, size_t n)
{
    if (n != s->ncolumns) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], s->columns[i]) != 0 || strcasecmp(types[i], "text") != 0) {
            return 0;
        }
        if (is_key != NULL && (is_key[i] != 0) != sd_table_schema_is_key(s, i)) {
            return 0;
        }
    }
    return 1;
}

int sd_table_schema_key_matches(const struct sd_table_schema *s, const char *const *names, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < s->ncolumns; i++) {
        if (sd_table_schema_is_key(s, i)) {
            if (k >= n || strcmp(names[k], s->columns[i]) != 0) {
                return 0;
            }
            k++;
        }
    }
    return k == n;
}

void sd_table_describe(struct sd_buf *b, const char *const *names, const char *const *types,
                       const unsigned char *is_key, size_t n)
{
    (void)sd_buf_append_char(b, '(');
    for (size_t i = 0; i < n; i++) {
        (void)sd_buf_printf(b, "%s\"%s\"", i > 0 ? ", " : "", names[i]);
        if (types != NULL && strcasecmp(types[i], "text") != 0) {
            (void)sd_buf_printf(b, " %s", types[i][0] != '\0' ? types[i] : "(no type)");
        }
        if (is_key != NULL && is_key[i]) {
            (void)sd_buf_append_str(b, " PRIMARY KEY");
        }
    }
    (void)sd_buf_append_char(b, ')');
}

void sd_table_describe_key(struct sd_buf *b, const struct sd_table_schema *s)
{
    size_t k = 0;

    (void)sd_buf_append_char(b, '(');
    for (size_t i = 0; i < s->ncolumns; i++) {
        if (sd_table_schema_is_key(s, i)) {
            (void)sd_buf_printf(b, "%s\"%s\"", k++ > 0 ? ", " : "", s->columns[i]);
        }
    }
    (void)sd_buf_append_char(b, ')');
}

int sd_table_sql_ident(struct sd_buf *b, const char *name)
{
    int rc = sd_buf_append_char(b, '"');

    for (const char *p = name; rc == 0 && *p != '\0'; p++) {
        rc = *p == '"' ? sd_buf_append_str(b, "\"\"") : sd_buf_append_char(b, *p);
    }
    return rc == 0 ? sd_buf_append_char(b, '"') : rc;
}

int sd_table_sql_names(struct sd_buf *b, const struct sd_table_schema *s, int key_only)
{
    int rc = sd_buf_append_char(b, '(');

    for (size_t i = 0, k = 0; rc == 0 && i < s->ncolumns; i++) {
        if (!key_only || sd_table_schema_is_key(s, i)) {
            rc = sd_buf_append_str(b, k++ > 0 ? ", " : "");
            if (rc == 0) {
                rc = sd_table_sql_ident(b, s->columns[i]);
            }
        }
    }
    return rc == 0 ? sd_buf_append_char(b, ')') : rc;
}

int sd_table_sql_define(struct sd_buf *b, const struct sd_table_schema *s, const char *type)
{
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < s->ncolumns; i++) {
        rc = sd_buf_append_str(b, i == 0 ? "(" : ", ");
        if (rc == 0) {
            rc = sd_table_sql_ident(b, s->columns[i]);
        }
        if (rc == 0) {
            rc = sd_buf_printf(b, " %s", type);
        }
    }
    if (rc == 0 && sd_table_schema_has_key(s)) {
        rc = sd_buf_append_str(b, ", PRIMARY KEY ");
        if (rc == 0) {
            rc = sd_table_sql_names(b, s, 1);
        }
    }
    return rc == 0 ? sd_buf_append_char(b, ')') : rc;
}

int sd_table_sql_on_conflict(struct sd_buf *b, const struct sd_table_schema *s)
{
    const char *sep = " DO UPDATE SET ";
    int rc = sd_buf_append_str(b, "ON CONFLICT ");

    if (rc == 0) {
        rc = sd_table_sql_names(b, s, 1);
    }
    for (size_t i = 0; rc == 0 && i < s->ncolumns; i++) {
        if (!sd_table_schema_is_key(s, i)) {
            rc = sd_buf_append_str(b, sep);
            sep = ", ";
            if (rc == 0) {
                rc = sd_table_sql_ident(b, s->columns[i]);
            }
            if (rc == 0) {
                rc = sd_buf_append_str(b, " = excluded.");
            }
            if (rc == 0) {
                rc = sd_table_sql_ident(b, s->columns[i]);
            }
        }
    }
    if (rc == 0 && sep[0] != ',') {
        rc = sd_buf_append_str(b, " DO NOTHING");
    }
    return rc;
}
