/* sd_operator.h: the storage-reader and storage-coordinator roles of a node: one thread that
 * rotates slices and files on their triggers, uploads closed slices to staging, imports staged
 * files into tables exactly once, retries failures with backoff, and deletes local and staged
 * data once the next level holds it (reference §4.2-§4.6). A node with storage (writer +
 * reader) rotates and uploads its own slices; a node with tables (coordinator) moves files,
 * imports and cleans up the sinks it coordinates; standalone does both. */
#ifndef SD_OPERATOR_H
#define SD_OPERATOR_H

#include <pthread.h>

struct sd_config;
struct sd_operator;
struct sd_staging;
struct sd_state;
struct sd_storage;
struct sd_tables;

/* What the operator works on; all borrowed, open, and outliving the operator. */
struct sd_operator_deps {
    struct sd_state *state;             /* file and slice entities, statistics */
    struct sd_storage *storage;         /* this node's writers: rotations, open slices, uploads;
                                           NULL on a node that does not write */
    struct sd_staging *staging;         /* uploads of closed slices */
    struct sd_tables *tables;           /* imports; NULL on a node that does not coordinate */
    const char *node_id;                /* this node's slices */
    pthread_mutex_t *slots_lock;        /* held around every change of storage's slots, shared with
                                           reconciliation (roles/sd_reconcile.h) */
    struct sd_membership *coordination; /* the sinks whose files this node imports and cleans
                                           up (their owner in the group); NULL: every sink */
};

/* Starts the operator thread (deps copied; cfg borrowed: the sinks' settings snapshots read it).
 * Returns 0 or -errno. */
int sd_operator_start(const struct sd_config *cfg, const struct sd_operator_deps *deps,
                      struct sd_operator **out);
/* With tables (a coordinator): brings the files of the sinks it coordinates (only_sink_key
 * "<p>/<b>/<source>/<sink>", or NULL for all) in line with their definitions now: opens the file
 * of a new or enabled sink (once its table accepts the mapping), adds writer nodes that joined,
 * rotates on a settings or mapping change and on the triggers, closes the file of a stopped
 * sink; with storage, this node's writers follow at once. Any thread. Returns 0 or the store's
 * error. */
int sd_operator_sinks_changed(struct sd_operator *op, const char *only_sink_key);
/* Wakes the operator for an immediate pass (any thread). */
void sd_operator_kick(struct sd_operator *op);
/* Stops and joins the thread after its current step; accepts NULL. */
void sd_operator_stop(struct sd_operator *op);

struct sd_config_bindings;
/* The keys the storage operator reads (for the registry). */
extern const struct sd_config_bindings sd_operator_config_bindings;

#endif
