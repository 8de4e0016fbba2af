/* tables_postgres.h: the "postgres" table-storage backend (see tables_postgres.c) and its
 * configuration keys (tables.postgres.poolSize, .connectTimeout, .statementTimeout; the
 * connection URL, tables.postgres.url, is the location sd_tables_open passes). */
#ifndef TABLES_POSTGRES_H
#define TABLES_POSTGRES_H

#include "config/sd_config_bind.h"
#include "tables/sd_tables.h"

extern const struct sd_tables_ops sd_tables_postgres_ops;
extern const struct sd_config_bindings sd_tables_postgres_config_bindings;

#endif
