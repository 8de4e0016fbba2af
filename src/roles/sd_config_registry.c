/* sd_config_registry.c: the binding table of every module that reads configuration. */
#include "roles/sd_config_registry.h"
#include "api/sd_api.h"
#include "roles/sd_cli_token.h"
#include "roles/sd_node_config.h"
#include "source/sd_ingest.h"
#include "staging/sd_staging.h"
#include "staging_s3/staging_s3.h"
#include "state/sd_state.h"
#include "state_etcd/state_etcd.h"
#include "storage/sd_operator.h"
#include "storage/sd_receiver.h"
#include "storage/sd_storage.h"
#include "tables/sd_tables.h"
#include "tables_postgres/tables_postgres.h"

#include <stddef.h>

const struct sd_config_bindings *const sd_config_registry[] = {
    &sd_node_config_bindings,
    &sd_token_config_bindings,
    &sd_api_config_bindings,
    &sd_ingest_config_bindings,
    &sd_state_config_bindings,
    &sd_storage_config_bindings,
    &sd_receiver_config_bindings,
    &sd_operator_config_bindings,
    &sd_staging_config_bindings,
    &sd_tables_config_bindings,
    &sd_tables_postgres_config_bindings,
    &sd_staging_s3_config_bindings,
    &sd_state_etcd_config_bindings,
    NULL,
};
