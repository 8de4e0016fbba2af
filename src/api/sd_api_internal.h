/* sd_api_internal.h: what the API's files (router, handlers, helpers) share: the API object, the
 * per-request context, the route table and the helpers of sd_api_reply.c, sd_api_store.c and
 * sd_api_submit.c. Not for other modules.
 *
 * Threads: handlers run on the API loop thread and may block on the state store; task
 * functions run on the task worker thread and touch only their own argument and the store. */
#ifndef SD_API_INTERNAL_H
#define SD_API_INTERNAL_H

#include <jansson.h>
#include <stdint.h>

#include "api/sd_auth.h"
#include "api/sd_tasks.h"
#include "defs/sd_defs.h"
#include "net/sd_http.h"

#include "api/sd_api.h"

struct sd_api_docs;
struct sd_state;
struct sd_stats_file;
struct sd_txn_result;

struct sd_api {
    const struct sd_config *cfg;    /* borrowed (deps) */
    struct sd_state *state;         /* borrowed (deps) */
    struct sd_tables *tables;       /* borrowed (deps); NULL: none in this process */
    struct sd_eval_pool *eval_pool; /* borrowed (deps) */
    struct sd_http_loop *loop;      /* borrowed (deps) */
    struct sd_api_hooks hooks;
    struct sd_tasks *tasks;   /* owned */
    const char *api_url;      /* borrowed (deps) */
    const char *source_url;   /* borrowed (deps) */
    struct sd_api_docs *docs; /* owned; built on the first documentation request */
};

/* One authenticated request on a branch route. Ids are decoded and NUL-terminated. */
struct sd_api_ctx {
    struct sd_api *api;
    struct sd_http_req *req;
    struct sd_auth_token token;
    struct sd_defs_by by;
    int64_t project_id;
    int64_t branch_id;
    char source_id[SD_DEFS_ID_MAX + 1];
    char sink_id[SD_DEFS_ID_MAX + 1];
    char action[16]; /* lifecycle routes: "disable", "enable", "undelete" */
};

/* Who may call a route: anyone, any master token of the project, or its admin tokens. */
enum sd_api_auth { SD_API_AUTH_NONE, SD_API_AUTH_READ, SD_API_AUTH_WRITE };

/* One row of the route table (sd_api.c). pattern is the path as docs/openapi3.yaml writes it,
 * "{name}" matching one segment and a last "{*name}" the rest of the path. Before handler runs,
 * the router authenticates (auth), decodes {branchId}, {sourceId} and {sinkId} into the context
 * (answering 400/404 for bad ones) and copies action (may be NULL) into c->action. */
struct sd_api_route {
    const char *method;
    const char *pattern;
    void (*handler)(struct sd_api_ctx *c);
    enum sd_api_auth auth;
    const char *action;
};
/* The route table and its length. */
const struct sd_api_route *sd__api_routes(size_t *n);

/* A list request's paging: afterId (decoded) and limit (1..100). */
struct sd_api_page {
    char after_id[SD_DEFS_ID_MAX * 4 + 1];
    int64_t limit;
};

/* The reference's texts of a missing source or sink (one "%s": the id). */
#define SD_API_SOURCE_NOT_FOUND "Source \"%s\" not found in the branch."
#define SD_API_SINK_NOT_FOUND "Sink \"%s\" not found in the source."
#define SD_API_DELETED_SOURCE_NOT_FOUND "Deleted source \"%s\" not found in the branch."
#define SD_API_DELETED_SINK_NOT_FOUND "Deleted sink \"%s\" not found in the source."
#define SD_API_SOURCE_EXISTS "Source \"%s\" already exists in the branch."
#define SD_API_SINK_EXISTS "Sink \"%s\" already exists in the source."

/* Helpers of sd_api_reply.c. */
/* Sends {"statusCode", "error":"stream.api.<name>", "message"}. */
void sd__api_error(struct sd_http_req *req, int status, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Makes msg a sentence as the reference words its errors (its strhelper.AsSentence): the first
 * letter upper case, and a final '.' when msg ends with a letter, a digit or a quote. */
void sd__api_sentence(struct sd_buf *msg);
/* Sends 404 endpointNotFound for the request's path (decoded, as the reference shows it). */
void sd__api_endpoint_not_found(struct sd_http_req *req);
/* Sends 404 sourceNotFound/sinkNotFound (deleted: deletedSourceNotFound/deletedSinkNotFound)
 * with the reference's text for id. */
void sd__api_not_found(struct sd_http_req *req, int is_sink, int deleted, const char *id);
/* Sends 500 for a state-store failure rc (logged once here). */
void sd__api_internal_error(struct sd_http_req *req, const char *what, int rc);
/* Sends a 400 for a validation failure. */
void sd__api_validation_error(struct sd_http_req *req, const struct sd_defs_err *err);
/* Parses the JSON request body; on failure sends 400 and returns NULL. */
json_t *sd__api_body(struct sd_api_ctx *c);
/* Parses afterId and limit; on failure sends 400 and returns nonzero. */
int sd__api_page(struct sd_api_ctx *c, struct sd_api_page *page);
/* Parses value (decoded) as the integer parameter name in min..max (INT64_MAX: no maximum)
 * into *out; otherwise sends 400 with the reference's (Goa's) texts: "Invalid value "x" for
 * "name", must be a integer; name must be greater or equal than 1 but got value 0."
 * (invalidFieldType) or "Name must be lesser or equal than 100 but got value 101."
 * (invalidRange), and returns SD_EINVAL. */
int sd__api_int_param(struct sd_http_req *req, const char *name, const char *value, int64_t min,
                      int64_t max, int64_t *out);
/* Reads the boolean query parameter name as Go's strconv.ParseBool does (absent or empty:
 * false) into *out; otherwise sends 400 invalidFieldType "Invalid value "x" for "name", must be
 * a boolean." and returns SD_EINVAL. */
int sd__api_query_bool(struct sd_http_req *req, const char *name, int *out);
/* Builds the "page" object of a list answer. */
json_t *sd__api_page_json(const struct sd_api_page *page, int64_t total, const char *last_id);
/* Helpers of sd_api_store.c. */
/* Reads key as JSON: 0 with *out (new reference) and *mod_rev (may be NULL), SD_ENOTFOUND, or
 * another error. */
int sd__api_load(struct sd_state *st, const char *key, json_t **out, int64_t *mod_rev);
/* Helpers of sd_api_submit.c. */
/* Submits a task and answers 202 with it, 409 conflict_name/conflict_message when its lock is
 * held, 422 resourceLimitReached when its quota is full, 400 with the claim's why when its
 * claim is refused, or an error. spec->arg is consumed. */
void sd__api_submit(struct sd_api_ctx *c, const struct sd_task_spec *spec,
                    const char *conflict_name, const char *conflict_message);
/* Submits a task on the request's source (is_sink 0) or sink (1): the object and lock keys of
 * that entity and the 409 "conflict" message when another task holds it. quota and claim (may
 * be NULL) as in sd_task_spec. arg is consumed. */
void sd__api_submit_entity_task(struct sd_api_ctx *c, int is_sink, const char *type, sd_task_fn fn,
                                void *arg, sd_task_free_fn free_arg,
                                const struct sd_task_quota *quota,
                                const struct sd_task_claim *claim);
/* Fills *q for a task that makes source source_id of the request's branch (sink_id NULL) or
 * sink sink_id of the request's source active: the limit of sources per branch or sinks per
 * source. prefix and key receive the strings q points to (the caller finishes them). */
void sd__api_quota(struct sd_api_ctx *c, const char *source_id, const char *sink_id,
                   struct sd_buf *prefix, struct sd_buf *key, struct sd_task_quota *q);
/* The "outputs" object of a task on a source (sink_id NULL) or sink: projectId, branchId,
 * sourceId[, sinkId], and with with_url the entity's API URL. Returns a new object. */
json_t *sd__api_task_outputs(const char *api_url, int64_t project_id, int64_t branch_id,
                             const char *source_id, const char *sink_id, int with_url);
/* Returns value as a compact JSON string (owned; free with free()). Aborts on out-of-memory. */
char *sd__api_dump(const json_t *value);

/* Adds to the API form entity of the listed source or sink id (the aggregation endpoint adds
 * its sinks). On failure it answers the request itself and returns nonzero. */
typedef int (*sd__api_list_extend_fn)(struct sd_api_ctx *c, const char *id, json_t *entity);
/* Answers a page (afterId, limit) of the branch's sources (is_sink 0) or the request source's
 * sinks (404 when the source does not exist), live or soft-deleted: {projectId, branchId
 * [, sourceId], page, sources|sinks}, each entity in its API form, extended by extend (may be
 * NULL). */
void sd__api_list_entities(struct sd_api_ctx *c, int is_sink, int deleted,
                           sd__api_list_extend_fn extend);

/* Statistics files (sd_api_stats.c, also used by the aggregation endpoint): the qsort order of
 * struct sd_stats_file pointers (imported first, then without a retry reason, then by openedAt,
 * as the reference), and a file as the API's SinkFile object (new reference). */
int sd__api_cmp_files(const void *pa, const void *pb);
json_t *sd__api_file_json(const struct sd_stats_file *f);

/* The process's hooks (struct sd_api_hooks, sd_api.c); a NULL hook does nothing: the first two
 * return 0, the last 0 (not writing). */
int sd__api_definitions_changed(struct sd_api *api, struct sd_buf *err);
int sd__api_rotate_sink(struct sd_api *api, const char *sink_key, struct sd_buf *err);
int sd__api_sink_is_writing(struct sd_api *api, const char *sink_key);

/* The keys of a source or sink being created, for sd__api_create_commit/_rollback. */
struct sd__api_create {
    const char *key;         /* the entity */
    const char *deleted_key; /* its soft-deleted copy */
    const char *version_key; /* its version record */
    const json_t *prev;      /* the soft-deleted predecessor (replaced by the create), or NULL */
    int64_t prev_rev;        /* mod revision of deleted_key when read (0: absent) */
    const char *guard_key;   /* a key that must not have changed (a sink's source), or NULL */
    int64_t guard_rev;       /* its mod revision when read */
};
/* Stores entity at key and its version record, in one transaction that succeeds only while key
 * does not exist and deleted_key (and guard_key) are unchanged; removes the soft-deleted copy.
 * Returns 0 (res->succeeded says whether the compares held) or a state error. */
int sd__api_create_commit(struct sd_state *st, const struct sd__api_create *cr,
                          const json_t *entity, struct sd_txn_result *res);
/* Reads the soft-deleted predecessor at cr->deleted_key into *prev (a new reference, NULL when
 * there is none) and cr->prev/prev_rev; with one, entity continues its version numbering
 * (*number = the predecessor's + 1, described as description). Returns 0 or a state error. */
int sd__api_create_predecessor(struct sd_state *st, struct sd__api_create *cr, json_t *entity,
                               const char *description, const struct sd_defs_by *by, json_t **prev,
                               int64_t *number);
/* After a committed create: tells the process (sd__api_definitions_changed); when that fails,
 * undoes the create, appends "<what> has not been created: <reason>" to error and tells it
 * again. Returns the first call's result. */
int sd__api_create_reconcile(struct sd_api *api, const struct sd__api_create *cr, const char *what,
                             struct sd_buf *error);

/* Documentation (sd_api_docs.c). The OpenAPI 3 document docs/openapi3.yaml, embedded at
 * build time (cmake/embed.cmake): sd__openapi3_yaml_len bytes plus a NUL. */
extern const unsigned char sd__openapi3_yaml[];
extern const size_t sd__openapi3_yaml_len;
/* Answers a documentation route (no token needed); builds and caches every form in
 * api->docs on first use. Loop thread only. */
void sd__api_docs_handle(struct sd_api_ctx *c);
/* The embedded document as JSON (new reference), or NULL when it does not parse. */
json_t *sd__api_docs_document(void);
/* Frees the cache (NULL allowed). */
void sd__api_docs_destroy(struct sd_api_docs *docs);

/* Source handlers (sd_api_sources.c). */
void sd__api_sources_list(struct sd_api_ctx *c);
void sd__api_source_create(struct sd_api_ctx *c);
void sd__api_source_get(struct sd_api_ctx *c);
void sd__api_source_delete(struct sd_api_ctx *c);

/* Sink handlers (sd_api_sinks.c). */
void sd__api_sinks_list(struct sd_api_ctx *c);
void sd__api_sink_create(struct sd_api_ctx *c);
void sd__api_sink_get(struct sd_api_ctx *c);
void sd__api_sink_delete(struct sd_api_ctx *c);

/* Loads the active source of c, or sends 404 sourceNotFound (or 500) and returns nonzero.
 * *out (may be NULL) gets a new reference, *mod_rev (may be NULL) its revision. */
int sd__api_get_source(struct sd_api_ctx *c, json_t **out, int64_t *mod_rev);
/* Loads the active sink of c (after its source), or sends 404 sourceNotFound/sinkNotFound (or
 * 500) and returns nonzero. *out (may be NULL) gets a new reference. */
int sd__api_get_sink(struct sd_api_ctx *c, json_t **out, int64_t *mod_rev);

struct sd_mapping;
struct sd_tables;

/* A sink's table as the claim of the task that stores the sink (struct sd_task_claim): named
 * by the project and the table id folded to lower case (how SQLite compares names), valued by
 * the exact id and the mapping's columns. Its check refuses, with 400, a table that exists
 * with other columns or another spelling, or that another queued or running task makes
 * differently, so the task cannot fail on the table. */
struct sd__api_table_claim {
    struct sd_task_claim claim;
    struct sd_tables *tables; /* borrowed; NULL = no table storage, nothing to claim */
    int64_t project_id;
    char *table_id;
    const char *where; /* names the table object in messages: "body.table" */
    struct sd_mapping *mapping;
    struct sd_table_schema *schema; /* the mapping's columns and primary key (owned) */
    struct sd_buf key, value, why;
};

/* Compiles the mapping of a sink about to be stored (stored form): on failure sends 400 (500)
 * and returns nonzero; otherwise fills *tc, whose sd__api_claim is the claim to submit the
 * task with. where as in struct sd__api_table_claim. Finish tc with sd__api_table_claim_fini
 * in every case (it must be zeroed or filled). */
int sd__api_check_sink(struct sd_api_ctx *c, const json_t *sink, const char *where,
                       struct sd__api_table_claim *tc);
/* The claim of tc, or NULL when there is nothing to claim. */
const struct sd_task_claim *sd__api_claim(const struct sd__api_table_claim *tc);
void sd__api_table_claim_fini(struct sd__api_table_claim *tc);

/* Lifecycle handlers (sd_api_lifecycle.c): update (PATCH), disable/enable/undelete (PUT, the
 * action in c->action), deleted lists, rotate-secret and the cascade (hard) delete. */
void sd__api_source_update(struct sd_api_ctx *c);
void sd__api_sink_update(struct sd_api_ctx *c);
void sd__api_source_switch(struct sd_api_ctx *c);
void sd__api_sink_switch(struct sd_api_ctx *c);
void sd__api_sources_deleted_list(struct sd_api_ctx *c);
void sd__api_sinks_deleted_list(struct sd_api_ctx *c);
void sd__api_source_rotate_secret(struct sd_api_ctx *c);
void sd__api_source_hard_delete(struct sd_api_ctx *c);

/* Settings handlers (sd_api_settings.c). */
void sd__api_source_settings_get(struct sd_api_ctx *c);
void sd__api_source_settings_patch(struct sd_api_ctx *c);
void sd__api_sink_settings_get(struct sd_api_ctx *c);
void sd__api_sink_settings_patch(struct sd_api_ctx *c);

/* Statistics handlers (sd_api_stats.c). */
void sd__api_sink_stats_total(struct sd_api_ctx *c);
void sd__api_sink_stats_files(struct sd_api_ctx *c);
void sd__api_sink_stats_clear(struct sd_api_ctx *c);
void sd__api_source_stats_clear(struct sd_api_ctx *c);

/* Version handlers (sd_api_versions.c): list, detail and rollback (task) of the versions of the
 * source (or sink) of c; the version number is read from the path. */
void sd__api_source_versions_list(struct sd_api_ctx *c);
void sd__api_source_version_get(struct sd_api_ctx *c);
void sd__api_source_version_rollback(struct sd_api_ctx *c);
void sd__api_sink_versions_list(struct sd_api_ctx *c);
void sd__api_sink_version_get(struct sd_api_ctx *c);
void sd__api_sink_version_rollback(struct sd_api_ctx *c);

/* Test endpoint (sd_api_test.c): the dry run of the request through every enabled sink. */
void sd__api_source_test(struct sd_api_ctx *c);

/* Aggregation endpoint (sd_api_aggregation.c): sources with their sinks and statistics. */
void sd__api_aggregation_sources(struct sd_api_ctx *c);

#endif
