/* sd_server.h: the process-wide context passed explicitly to every role (no mutable globals).
 *
 * Standalone runs every role in one process: the API loop thread (configuration API, health,
 * metrics), the source loop thread (data endpoint), slice-writer threads, and the state store.
 * Definitions (sources, sinks) live in the state store; after any change of them the API calls
 * sd_server_reconcile(), which opens or closes sink files and republishes the routing table of
 * the data endpoint. */
#ifndef SD_SERVER_H
#define SD_SERVER_H

#include <pthread.h>
#include <stdint.h>

#include "net/sd_http.h"

struct sd_config;
struct sd_state;
struct sd_storage;
struct sd_ingest;
struct sd_api;
struct sd_staging;
struct sd_tables;
struct sd_operator;
struct sd_health;
struct sd_eval_pool;

struct sd_server {
    struct sd_config *cfg;          /* owned */
    struct sd_state *state;         /* owned */
    struct sd_storage *storage;     /* owned; storage-writer role */
    struct sd_ingest *ingest;       /* owned; http-source role */
    struct sd_api *api;             /* owned; api role */
    struct sd_staging *staging;     /* owned; storage-reader role */
    struct sd_tables *tables;       /* owned; storage-coordinator role (imports, table checks) */
    struct sd_operator *storage_op; /* owned; storage-reader + storage-coordinator roles */
    struct sd_health *health;       /* owned; readiness of every backend (core/sd_health.h) */
    struct sd_eval_pool *eval_pool; /* owned; template evaluations of the data endpoint and the
                                       API's test endpoint (NULL: they run inline) */
    const char *node_id;            /* from cfg */
    struct sd_http_loop api_loop;
    struct sd_http_loop source_loop;
    char api_url[128];
    char source_url[128];
    char metrics_url[128];
    const char *api_public_url;    /* api.publicUrl or api_url; absolute, no trailing slash */
    const char *source_public_url; /* source.http.publicUrl or source_url */
    pthread_mutex_t reconcile_lock;
};

/* Brings storage (open files and writers) and the data endpoint's routing table in line with
 * the definitions in the state store. Idempotent; thread-safe (serialized by reconcile_lock).
 * Called at start-up and by the API after every committed change of a source or sink.
 * Returns 0, or a negative code with a message in err (e.g. no volume available). */
struct sd_buf;
int sd_server_reconcile(struct sd_server *srv, struct sd_buf *err);

/* Rotates the active file of the sink "<p>/<b>/<source>/<sink>" (a settings change takes
 * effect in the new file), after reconciling so the slot has the new settings. No-op for an
 * inactive sink. Thread-safe. Returns 0 or a negative code with a message in err. */
int sd_server_rotate_sink(struct sd_server *srv, const char *sink_key, struct sd_buf *err);

#endif
