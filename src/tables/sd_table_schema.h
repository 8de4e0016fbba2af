/* sd_table_schema.h: what the SQL table backends (plugins/tables_sqlite, plugins/tables_postgres)
 * do alike with a struct sd_table_schema: check it, compare it with the columns and key of a
 * table they found, describe both in their refusal messages, and write its columns, key and
 * upsert clause in SQL. Each backend keeps its own catalog queries and the SQL that differs. */
#ifndef SD_TABLE_SCHEMA_H
#define SD_TABLE_SCHEMA_H

#include <stddef.h>

#include "core/sd_buf.h"
#include "tables/sd_tables.h"

/* 1 when column i of s is a primary-key column. */
int sd_table_schema_is_key(const struct sd_table_schema *s, size_t i);

/* 1 when s has a primary key (at least one flag set: all-zero flags are no key). */
int sd_table_schema_has_key(const struct sd_table_schema *s);

/* Checks s for a table call: at least one column, none with an empty name. 0, or SD_EINVAL
 * with err (may be NULL) saying why. */
int sd_table_schema_check(const struct sd_table_schema *s, struct sd_buf *err);

/* 1 when a found table's columns are s's: the same count, names in the same order, every type
 * "text" (any case) and, when is_key is not NULL, the same key columns (is_key[i] nonzero for
 * a key column). names and types hold n strings; types may not be NULL. */
int sd_table_schema_matches(const struct sd_table_schema *s, const char *const *names,
                            const char *const *types, const unsigned char *is_key, size_t n);

/* 1 when a found primary key, names[0..n) in key order, is s's key columns in mapping order
 * (n = 0 matches a schema without a key). */
int sd_table_schema_key_matches(const struct sd_table_schema *s, const char *const *names,
                                size_t n);

/* Appends a column list for a message: ("a", "b" integer, "c" PRIMARY KEY): each name in
 * double quotes as it is, its type when types is not NULL and the type is not "text" (any
 * case; "(no type)" when empty), " PRIMARY KEY" when is_key is not NULL and is_key[i] is set. */
void sd_table_describe(struct sd_buf *b, const char *const *names, const char *const *types,
                       const unsigned char *is_key, size_t n);

/* Appends s's key columns in mapping order as a message list: ("a", "b"); "()" without a key. */
void sd_table_describe_key(struct sd_buf *b, const struct sd_table_schema *s);

/* Appends name as an SQL quoted identifier ('"' doubled). 0 or -ENOMEM. */
int sd_table_sql_ident(struct sd_buf *b, const char *name);

/* Appends ("a", "b", ...): s's columns (only its key columns when key_only), as quoted
 * identifiers in mapping order. 0 or -ENOMEM. */
int sd_table_sql_names(struct sd_buf *b, const struct sd_table_schema *s, int key_only);

/* Appends the column definitions of CREATE TABLE: ("a" <type>, "b" <type>, PRIMARY KEY ("a")),
 * the key clause only when s has a key. 0 or -ENOMEM. */
int sd_table_sql_define(struct sd_buf *b, const struct sd_table_schema *s, const char *type);

/* Appends the upsert clause of an insert into a table with s's key:
 * ON CONFLICT ("k", ...) DO UPDATE SET "c" = excluded."c", ... (DO NOTHING when every column is
 * in the key: the row is already there). s must have a key. 0 or -ENOMEM. */
int sd_table_sql_on_conflict(struct sd_buf *b, const struct sd_table_schema *s);

#endif
