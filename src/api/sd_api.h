/* sd_api.h: the configuration API (api role, reference §2.3): routes under /v1 with
 * X-StorageApi-Token auth (local tokens, api/sd_auth.h), sources and table sinks, async tasks
 * (api/sd_tasks.h), plus "/", "/v1" and "/health-check".
 *
 * Threads: sd_api_handle runs on the API loop thread (it may block on the state store: that
 * loop is not the data endpoint's); definition changes run as tasks on the API's worker
 * thread, which tells the process through its hooks (struct sd_api_hooks) after each committed
 * change. */
#ifndef SD_API_H
#define SD_API_H

#include "core/sd_buf.h"
#include "net/sd_http.h"

struct sd_api;
struct sd_config;
struct sd_eval_pool;
struct sd_state;
struct sd_tables;

/* What the API asks of the roles running in its process after it committed a change of the
 * definitions. Each function may be NULL: nothing to do in this process (another node follows
 * the definitions by itself). They run on the task worker thread, and definitions_changed also
 * on the API loop thread (rotate-secret answers synchronously), so they must be thread-safe;
 * the API waits for each. */
struct sd_api_hooks {
    /* The stored sources and sinks changed: bring storage and routing in line and return 0, or
     * a negative code with a message in err (the API then reports or rolls back the change). */
    int (*definitions_changed)(void *arg, struct sd_buf *err);
    /* Start a new file of the sink "<p>/<b>/<source>/<sink>" so changed settings take effect;
     * 0 for a sink without a file here, else a negative code with a message in err. */
    int (*rotate_sink)(void *arg, const char *sink_key, struct sd_buf *err);
    /* 1 if the sink currently writes a file in this process (a table change then closes the
     * old file before the new mapping takes over). */
    int (*sink_is_writing)(void *arg, const char *sink_key);
    void *arg;
};

/* What the API uses; all borrowed and outliving the API. */
struct sd_api_deps {
    const struct sd_config *cfg;    /* keys of sd_api_config_bindings, effective settings */
    struct sd_state *state;         /* definitions, tokens, tasks */
    struct sd_tables *tables;       /* NULL: no table checks or drops in this process */
    struct sd_eval_pool *eval_pool; /* the test endpoint's templates (NULL or closed: inline) */
    struct sd_http_loop *loop;      /* the API loop (template results are posted to it) */
    const char *api_url;            /* public URL of the API; absolute, no trailing slash */
    const char *source_url;         /* public URL of the data endpoint; same form */
    struct sd_api_hooks hooks;
};

/* Creates the API (deps copied): makes sure the admin token exists (auth.adminToken, or a
 * generated one written to <dataDir>/admin-token), finishes tasks a previous run left
 * "processing", and starts the task worker. Returns 0 with *out owned (free with
 * sd_api_destroy), or an error with a message in err. */
int sd_api_create(const struct sd_api_deps *deps, struct sd_api **out, struct sd_buf *err);

/* Stops the task worker after the running task finishes (queued tasks end as "interrupted")
 * and frees api. Call after the API loop has stopped. NULL is fine. */
void sd_api_destroy(struct sd_api *api);

/* The sd_http_handler_fn of the API loop; api is the struct sd_api. Answers every request. */
void sd_api_handle(void *api, struct sd_http_req *req);

struct sd_config_bindings;
/* The keys the API reads (for the registry). */
extern const struct sd_config_bindings sd_api_config_bindings;

#endif
