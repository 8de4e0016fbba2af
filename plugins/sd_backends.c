/* sd_backends.c: the registry of every backend (state, staging, tables) and its lookup.
 *
 * DESIGN: a plain, greppable array of ops tables (no dlopen); adding a backend is one row here.
 * The modules of each kind (state/sd_state.c, staging/sd_staging.c, tables/sd_tables.c) look
 * their backend up here and own everything else (config, open, logging). */
#include "sd_backends.h"

#include "core/sd_error.h"
#include "staging/sd_staging.h"
#include "state_embedded/state_embedded.h"
#include "state_etcd/state_etcd.h"
#include "tables/sd_tables.h"
#include "tables_postgres/tables_postgres.h"

#include <errno.h>
#include <string.h>

const struct sd_backend sd_backends[] = {
    {SD_BACKEND_STATE, "embedded", &sd_state_embedded_ops},
    {SD_BACKEND_STATE, "etcd", &sd_state_etcd_ops},
    {SD_BACKEND_STAGING, "local", &sd_staging_local_ops},
    {SD_BACKEND_STAGING, "s3", &sd_staging_s3_ops},
    {SD_BACKEND_TABLES, "sqlite", &sd_tables_sqlite_ops},
    {SD_BACKEND_TABLES, "postgres", &sd_tables_postgres_ops},
    {SD_BACKEND_TABLES, "keboola", NULL},
};
const size_t sd_nbackends = sizeof(sd_backends) / sizeof(sd_backends[0]);

int sd_backend_find(enum sd_backend_kind kind, const char *name, const void **ops)
{
    *ops = NULL;
    if (name == NULL) {
        return SD_EINVAL;
    }
    for (size_t i = 0; i < sd_nbackends; i++) {
        if (sd_backends[i].kind == kind && strcmp(sd_backends[i].name, name) == 0) {
            *ops = sd_backends[i].ops;
            return *ops != NULL ? 0 : -ENOTSUP;
        }
    }
    return SD_EINVAL;
}
