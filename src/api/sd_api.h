/* sd_api.h: the configuration API (api role, reference §2.3): routes under /v1 with
 * X-StorageApi-Token auth (local tokens, api/sd_auth.h), sources and table sinks, async tasks
 * (api/sd_tasks.h), plus "/", "/v1" and "/health-check".
 *
 * Threads: sd_api_handle runs on the API loop thread (it may block on the state store: that
 * loop is not the data endpoint's); definition changes run as tasks on the API's worker
 * thread, which calls sd_server_reconcile after each committed change. */
#ifndef SD_API_H
#define SD_API_H

#include "core/sd_buf.h"
#include "net/sd_http.h"

struct sd_server;
struct sd_api;

/* Creates the API of srv (borrowed; srv->cfg, srv->state, srv->api_public_url and
 * srv->source_public_url must be set and outlive the API): makes sure the admin token exists
 * (auth.adminToken, or a generated one written to <dataDir>/admin-token), finishes tasks a
 * previous run left "processing", and starts the task worker. Returns 0 with *out owned (free
 * with sd_api_destroy), or an error with a message in err. */
int sd_api_create(struct sd_server *srv, struct sd_api **out, struct sd_buf *err);

/* Stops the task worker after the running task finishes (queued tasks end as "interrupted")
 * and frees api. Call after the API loop has stopped. NULL is fine. */
void sd_api_destroy(struct sd_api *api);

/* The sd_http_handler_fn of the API loop; api is the struct sd_api. Answers every request. */
void sd_api_handle(void *api, h2o_req_t *req);

struct sd_config_bindings;
/* The keys the API reads (for the registry). */
extern const struct sd_config_bindings sd_api_config_bindings;

#endif
