/* sd_reconcile.h: reconciliation of a node's storage slots and data-endpoint routing with the
 * source and sink definitions in the state store.
 *
 * Used by the wiring (roles/sd_node.c): at start-up, and through the API's hooks after every
 * committed change of a source or sink, and after every change of the slices (the coordinator's
 * rotations). Every change of storage's slots (activate, sync, deactivate) is made under
 * slots_lock, which the node shares with the storage operator. */
#ifndef SD_RECONCILE_H
#define SD_RECONCILE_H

#include <pthread.h>

struct sd_buf;
struct sd_config;
struct sd_ingest;
struct sd_reconcile;
struct sd_state;
struct sd_storage;
struct sd_tables;

/* All borrowed and outliving the reconciler. storage NULL: no sinks are activated (routes
 * carry no sinks); ingest NULL: the routing table is built and dropped; tables NULL: a sink's
 * table is not created or checked. Returns owned; free with sd_reconcile_destroy. */
struct sd_reconcile *sd_reconcile_create(const struct sd_config *cfg, struct sd_state *state,
                                         struct sd_storage *storage, struct sd_ingest *ingest,
                                         struct sd_tables *tables, pthread_mutex_t *slots_lock);
/* Brings storage (slots and their writers) and the data endpoint's routing table in line with
 * the definitions in the state store. Idempotent; thread-safe (serialized by slots_lock).
 * Returns 0, or a negative code with a message in err (e.g. no volume available). */
int sd_reconcile_run(struct sd_reconcile *rec, struct sd_buf *err);
/* NULL is fine. */
void sd_reconcile_destroy(struct sd_reconcile *rec);

#endif
