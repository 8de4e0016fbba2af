/* sd_ingest.h: the http-source role's data endpoint: POST /stream/<projectId>/<sourceId>/<secret>.
 *
 * Threads: the endpoint runs on N event loops (source.http.loops), each with its own state; the
 * handler, the tick and the sync notifications of a loop's requests all run on its thread. The
 * routing table is rebuilt by sd_reconcile_run() (roles/sd_reconcile.h) on a control thread and
 * published with sd_ingest_publish(); a loop reads it under its own read lock for the synchronous
 * part of a request only. */
#ifndef SD_INGEST_H
#define SD_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "net/sd_http.h"

/* Server header of every data endpoint response (the reference's). */
#define SD_INGEST_SERVER "Keboola/Stream/HTTPSource"

struct sd_config;
struct sd_eval_pool;
struct sd_health;
struct sd_ingest;
struct sd_storage;
struct sd_mapping;
struct sd_sink_slot;

struct sd_route_sink {
    char *sink_id;
    struct sd_mapping *mapping; /* owned */
    struct sd_sink_slot *slot;  /* borrowed from storage; valid while the routes are published */
    struct sd_mseries *m_duration, *m_bytes; /* record metrics, error_type "" (never freed) */
};

struct sd_route_source {
    int64_t project_id;
    int64_t branch_id;
    char *source_id;
    char secret[49];
    int is_enabled;
    struct sd_route_sink *sinks; /* enabled sinks, sorted by sink id */
    size_t nsinks;
    int has_template;       /* a sink maps with a template column */
    int64_t heavy_until_ms; /* loop threads (atomic): map on the template workers until then */
    struct sd_mseries *m_duration, *m_bytes; /* record metrics, has_error false (never freed) */
};

struct sd_routes {
    struct sd_route_source *sources; /* sorted by (project_id, source_id) */
    size_t n;
};

/* Creates the data endpoint over storage (borrowed; it becomes storage's sync listener, so
 * create the endpoint before any sink is activated) for nloops event loops (at most
 * SD_STORAGE_MAX_APPENDERS). Borrows eval_pool (NULL or closed: records with templates are mapped
 * on the loop) and health (GET /health-check). cfg is read here only. Returns owned; free with
 * sd_ingest_destroy. */
struct sd_ingest *sd_ingest_create(const struct sd_config *cfg, struct sd_storage *storage,
                                   struct sd_eval_pool *eval_pool, struct sd_health *health,
                                   size_t nloops);
/* The argument of loop i's handler, tick, after-round hook and idle check (below). */
void *sd_ingest_loop_arg(struct sd_ingest *in, size_t i);
/* Tells the endpoint loop i (results of other threads for its requests are posted to it); before
 * the loop runs and any sink is activated. */
void sd_ingest_attach(struct sd_ingest *in, size_t i, struct sd_http_loop *loop);
/* Replaces the routing table (takes ownership of routes) and frees the previous one after no
 * request uses it any more. Any thread. */
void sd_ingest_publish(struct sd_ingest *in, struct sd_routes *routes);
void sd_routes_free(struct sd_routes *routes);
/* Resolves the record metric series of src and its sinks (core/sd_metrics_reg.h); called by
 * whoever builds the routes, off the data path (it may take the registry's mutex). */
void sd_ingest_route_metrics(struct sd_route_source *src);
/* Stops routing records (later requests get 503 shutdown) and frees the routing table, so
 * storage may close the sinks' slots. Any thread. */
void sd_ingest_shutdown(struct sd_ingest *in);
/* sd_http_handler_fn of a source loop (arg: sd_ingest_loop_arg). */
void sd_ingest_handle(void *loop_arg, struct sd_http_req *req);
/* After each round of the loop's events: sends what the round's appends queued for writer nodes
 * (sd_storage_flush). Loop thread. */
void sd_ingest_after_round(struct sd_http_loop *loop, void *loop_arg);
/* sd_http_tick_fn: answers parked requests whose sync did not come within the timeout. */
void sd_ingest_tick(struct sd_http_loop *loop, void *loop_arg);
/* 1 when no request of the loop waits for a sync or a template worker (its drain check). */
int sd_ingest_is_idle(void *loop_arg);
/* After the loop stopped. */
void sd_ingest_destroy(struct sd_ingest *in);

struct sd_config_bindings;
/* The keys the data endpoint reads (for the registry). */
extern const struct sd_config_bindings sd_ingest_config_bindings;

#endif
