/* sd_api.c: the configuration API's router: the route table (method, path pattern, handler,
 * authentication), matching a request against it, authentication, the path parameters every
 * branch route shares, CORS, and the small routes (index, health, tasks). The handlers live in
 * sd_api_sources.c, sd_api_sinks.c, sd_api_lifecycle.c, sd_api_settings.c, sd_api_stats.c,
 * sd_api_versions.c, sd_api_test.c, sd_api_aggregation.c and sd_api_docs.c; the helpers they
 * share in sd_api_reply.c, sd_api_store.c and sd_api_submit.c.
 *
 * DESIGN: a pattern is split into segments, "{name}" matching one non-empty segment and a last
 * "{*name}" the rest of the path (a task id contains '/'), as the reference's router does. The
 * first row whose pattern and method match wins, so a literal ("sources/deleted") is listed
 * before the parameter it shadows. Unknown paths get 404 endpointNotFound and known paths with
 * another method 405 methodNotAllowed, both before authentication, like the reference. Every
 * entity lookup is scoped by the token's projectId (never by a project taken from the
 * request), so a token only ever sees its own project. Handlers run on the API loop thread and
 * may block on the state store; the worker thread of sd_tasks runs the changes. Tokens never
 * reach a log line. docs/openapi3.yaml documents exactly the routes of the table (a unit test
 * compares them). */
#include "api/sd_api.h"
#include "api/sd_api_internal.h"
#include "config/sd_config.h"
#include "config/sd_config_bind.h"
#include "core/sd_alloc.h"
#include "core/sd_error.h"
#include "core/sd_log.h"
#include "state/sd_state.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SD_API_MAX_SEGS 10

#define SD_BRANCH "/v1/branches/{branchId}"
#define SD_SOURCE SD_BRANCH "/sources/{sourceId}"
#define SD_SINK SD_SOURCE "/sinks/{sinkId}"

static void sd__api_index(struct sd_api_ctx *c);
static void sd__api_health(struct sd_api_ctx *c);
static void sd__api_task_get(struct sd_api_ctx *c);

static const struct sd_api_route sd__routes[] = {
    {"GET", "/", sd__api_index, SD_API_AUTH_NONE, NULL},
    {"GET", "/health-check", sd__api_health, SD_API_AUTH_NONE, NULL},
    {"GET", "/v1", sd__api_index, SD_API_AUTH_NONE, NULL},
    {"GET", "/v1/documentation", sd__api_docs_handle, SD_API_AUTH_NONE, NULL},
    {"GET", "/v1/documentation/", sd__api_docs_handle, SD_API_AUTH_NONE, NULL},
    {"GET", "/v1/documentation/openapi3.yaml", sd__api_docs_handle, SD_API_AUTH_NONE, NULL},
    {"GET", "/v1/documentation/openapi3.json", sd__api_docs_handle, SD_API_AUTH_NONE, NULL},
    {"GET", "/v1/documentation/openapi.yaml", sd__api_docs_handle, SD_API_AUTH_NONE, NULL},
    {"GET", "/v1/documentation/openapi.json", sd__api_docs_handle, SD_API_AUTH_NONE, NULL},
    {"GET", "/v1/tasks/{*taskId}", sd__api_task_get, SD_API_AUTH_READ, NULL},
    {"GET", SD_BRANCH "/aggregation/sources", sd__api_aggregation_sources, SD_API_AUTH_READ, NULL},
    {"GET", SD_BRANCH "/sources", sd__api_sources_list, SD_API_AUTH_READ, NULL},
    {"POST", SD_BRANCH "/sources", sd__api_source_create, SD_API_AUTH_WRITE, NULL},
    {"GET", SD_BRANCH "/sources/deleted", sd__api_sources_deleted_list, SD_API_AUTH_READ, NULL},
    {"GET", SD_SOURCE, sd__api_source_get, SD_API_AUTH_READ, NULL},
    {"PATCH", SD_SOURCE, sd__api_source_update, SD_API_AUTH_WRITE, NULL},
    {"DELETE", SD_SOURCE, sd__api_source_delete, SD_API_AUTH_WRITE, NULL},
    {"PUT", SD_SOURCE "/disable", sd__api_source_switch, SD_API_AUTH_WRITE, "disable"},
    {"PUT", SD_SOURCE "/enable", sd__api_source_switch, SD_API_AUTH_WRITE, "enable"},
    {"PUT", SD_SOURCE "/undelete", sd__api_source_switch, SD_API_AUTH_WRITE, "undelete"},
    {"POST", SD_SOURCE "/rotate-secret", sd__api_source_rotate_secret, SD_API_AUTH_WRITE, NULL},
    {"GET", SD_SOURCE "/settings", sd__api_source_settings_get, SD_API_AUTH_READ, NULL},
    {"PATCH", SD_SOURCE "/settings", sd__api_source_settings_patch, SD_API_AUTH_WRITE, NULL},
    /* a dry run: read-only tokens may use it, as in the reference */
    {"POST", SD_SOURCE "/test", sd__api_source_test, SD_API_AUTH_READ, NULL},
    {"DELETE", SD_SOURCE "/statistics/clear", sd__api_source_stats_clear, SD_API_AUTH_WRITE, NULL},
    {"GET", SD_SOURCE "/versions", sd__api_source_versions_list, SD_API_AUTH_READ, NULL},
    {"GET", SD_SOURCE "/versions/{versionNumber}", sd__api_source_version_get, SD_API_AUTH_READ,
     NULL},
    {"PUT", SD_SOURCE "/versions/{versionNumber}/rollback", sd__api_source_version_rollback,
     SD_API_AUTH_WRITE, NULL},
    {"GET", SD_SOURCE "/sinks", sd__api_sinks_list, SD_API_AUTH_READ, NULL},
    {"POST", SD_SOURCE "/sinks", sd__api_sink_create, SD_API_AUTH_WRITE, NULL},
    {"GET", SD_SOURCE "/sinks/deleted", sd__api_sinks_deleted_list, SD_API_AUTH_READ, NULL},
    {"GET", SD_SINK, sd__api_sink_get, SD_API_AUTH_READ, NULL},
    {"PATCH", SD_SINK, sd__api_sink_update, SD_API_AUTH_WRITE, NULL},
    {"DELETE", SD_SINK, sd__api_sink_delete, SD_API_AUTH_WRITE, NULL},
    {"PUT", SD_SINK "/disable", sd__api_sink_switch, SD_API_AUTH_WRITE, "disable"},
    {"PUT", SD_SINK "/enable", sd__api_sink_switch, SD_API_AUTH_WRITE, "enable"},
    {"PUT", SD_SINK "/undelete", sd__api_sink_switch, SD_API_AUTH_WRITE, "undelete"},
    {"GET", SD_SINK "/settings", sd__api_sink_settings_get, SD_API_AUTH_READ, NULL},
    {"PATCH", SD_SINK "/settings", sd__api_sink_settings_patch, SD_API_AUTH_WRITE, NULL},
    {"GET", SD_SINK "/statistics/total", sd__api_sink_stats_total, SD_API_AUTH_READ, NULL},
    {"GET", SD_SINK "/statistics/files", sd__api_sink_stats_files, SD_API_AUTH_READ, NULL},
    {"DELETE", SD_SINK "/statistics/clear", sd__api_sink_stats_clear, SD_API_AUTH_WRITE, NULL},
    {"GET", SD_SINK "/versions", sd__api_sink_versions_list, SD_API_AUTH_READ, NULL},
    {"GET", SD_SINK "/versions/{versionNumber}", sd__api_sink_version_get, SD_API_AUTH_READ, NULL},
    {"PUT", SD_SINK "/versions/{versionNumber}/rollback", sd__api_sink_version_rollback,
     SD_API_AUTH_WRITE, NULL},
};

const struct sd_api_route *sd__api_routes(size_t *n)
{
    *n = sizeof(sd__routes) / sizeof(sd__routes[0]);
    return sd__routes;
}

/* A raw request path split into its segments (not decoded); "/" has none. */
struct sd_api_path {
    struct sd_str segs[SD_API_MAX_SEGS];
    size_t n;
    int is_too_long;
};

static void sd__split_path(struct sd_str path, struct sd_api_path *out)
{
    size_t start = 1;

    memset(out, 0, sizeof(*out));
    if (path.len <= 1) {
        return;
    }
    for (size_t i = 1; i <= path.len; i++) {
        if (i == path.len || path.p[i] == '/') {
            if (out->n == SD_API_MAX_SEGS) {
                out->is_too_long = 1;
                return;
            }
            out->segs[out->n].p = path.p + start;
            out->segs[out->n].len = i - start;
            out->n++;
            start = i + 1;
        }
    }
}

/* The raw (not decoded) path parameters every branch route shares. */
struct sd_api_params {
    struct sd_str branch, source, sink;
};

/* 1 if the split request path p matches pattern; then the raw branch, source and sink segments
 * the pattern names are stored in *params (a "{*name}" rest is left to its handler). */
static int sd__match(const char *pattern, const struct sd_api_path *p, struct sd_api_params *params)
{
    struct sd_api_path pat;
    size_t i;

    sd__split_path(sd_str_c(pattern), &pat);
    for (i = 0; i < pat.n; i++) {
        struct sd_str seg = pat.segs[i];
        struct sd_str name = {seg.p + 1, seg.len > 2 ? seg.len - 2 : 0};
        if (i >= p->n) {
            return 0;
        }
        if (seg.len == 0 || seg.p[0] != '{') {
            if (!sd_str_eq(seg, p->segs[i])) {
                return 0;
            }
        } else if (p->segs[i].len == 0) {
            return 0;
        } else if (name.p[0] == '*') {
            return 1;
        } else if (sd_str_eq(name, SD_STR_LIT("branchId"))) {
            params->branch = p->segs[i];
        } else if (sd_str_eq(name, SD_STR_LIT("sourceId"))) {
            params->source = p->segs[i];
        } else if (sd_str_eq(name, SD_STR_LIT("sinkId"))) {
            params->sink = p->segs[i];
        }
    }
    return i == p->n && !p->is_too_long;
}

/* Appends method to the comma-separated list allowed (of size size) unless it is there. */
static void sd__allow(char *allowed, size_t size, const char *method)
{
    size_t len = strlen(allowed);

    if (strstr(allowed, method) != NULL) {
        return;
    }
    snprintf(allowed + len, size - len, "%s%s", len > 0 ? ", " : "", method);
}

static void sd__send_method_not_allowed(struct sd_http_req *req, const char *allowed)
{
    struct sd_str method = sd_http_req_method(req);

    sd_http_add_header(req, "allow", allowed);
    sd__api_error(req, 405, "methodNotAllowed", "Method \"%.*s\" is not allowed here, use %s.",
                  (int)(method.len > 16 ? 16 : method.len), method.p, allowed);
}

static void sd__send_cors_preflight(struct sd_http_req *req)
{
    sd_http_add_header(req, "access-control-allow-origin", "*");
    sd_http_add_header(req, "access-control-allow-methods", "GET, POST, PATCH, DELETE, PUT");
    sd_http_add_header(req, "access-control-allow-headers",
                       "Content-Type, X-StorageApi-Token, X-KBC-ProjectId");
    sd_http_add_header(req, "access-control-max-age", "86400");
    sd_http_send(req, 200, "text/plain", "", 0);
}

/* Authenticates the request into c: any master token of the project may read, writes
 * (SD_API_AUTH_WRITE) need an admin token. Sends the error and returns nonzero on failure. */
static int sd__authenticate(struct sd_api_ctx *c, enum sd_api_auth auth)
{
    struct sd_str tok = sd_http_header(c->req, "x-storageapi-token");
    const char *space = tok.len > 0 ? memchr(tok.p, ' ', tok.len) : NULL;
    int rc;

    if (tok.len == 0) {
        sd__api_error(c->req, 400, "missingField",
                      "\"X-StorageApi-Token\" is missing from header.");
        return -1;
    }
    if (space != NULL) { /* an authorization scheme prefix ("Bearer <token>"), as the reference */
        tok.len -= (size_t)(space + 1 - tok.p);
        tok.p = space + 1;
    }
    rc = sd_auth_lookup(c->api->state, tok.p, tok.len, &c->token);
    if (rc == SD_ENOTFOUND) {
        sd__api_error(c->req, 401, "unauthorized", "Invalid access token.");
        return -1;
    }
    if (rc != 0) {
        sd__api_internal_error(c->req, "verifying the token", rc);
        return -1;
    }
    if (!c->token.is_master) {
        sd__api_error(c->req, 401, "masterTokenRequired",
                      "Please provide a master token of a project administrator.");
        return -1;
    }
    if (auth == SD_API_AUTH_WRITE && !c->token.is_admin) {
        sd__api_error(c->req, 403, "forbidden",
                      "Only admin token can do write operations on streams.");
        return -1;
    }
    c->project_id = c->token.project_id;
    /* Every API token is a master token; in streamd it stands for its own administrator, so the
     * reference's user members are the token's id and description. */
    snprintf(c->by.type, sizeof(c->by.type), "user");
    snprintf(c->by.token_id, sizeof(c->by.token_id), "%s", c->token.id);
    snprintf(c->by.token_desc, sizeof(c->by.token_desc), "%s", c->token.description);
    snprintf(c->by.user_id, sizeof(c->by.user_id), "%s", c->token.id);
    snprintf(c->by.user_name, sizeof(c->by.user_name), "%s", c->token.description);
    return 0;
}

/* 1 if s is what Go's strconv.Atoi reads: an optional sign and 1..18 digits. */
static int sd__is_go_int(const char *s)
{
    size_t n = 0;

    s += *s == '+' || *s == '-';
    while (isdigit((unsigned char)s[n])) {
        n++;
    }
    return n > 0 && n <= 18 && s[n] == '\0';
}

/* Decodes the branch segment: "default" or the id of the default branch. */
static int sd__parse_branch(struct sd_api_ctx *c, struct sd_str seg)
{
    struct sd_buf b = SD_BUF_INIT;
    const char *s;
    int rc = 0;

    if (sd_http_url_decode(seg, &b) != 0) {
        sd__api_error(c->req, 400, "badRequest", "Invalid branchId in the path.");
        sd_buf_fini(&b);
        return -1;
    }
    s = sd_buf_cstr(&b);
    if (strcmp(s, "default") == 0 || strcmp(s, "1") == 0) {
        c->branch_id = SD_DEFS_BRANCH_DEFAULT;
    } else if (sd__is_go_int(s)) { /* streamd's project has its default branch only */
        sd__api_error(c->req, 404, "branchNotFound", "Branch \"%.64s\" not found in the project.",
                      s);
        rc = -1;
    } else {
        sd__api_error(c->req, 400, "badRequest",
                      "Invalid branch: expected \"default\" or <int>, given \"%.64s\".", s);
        rc = -1;
    }
    sd_buf_fini(&b);
    return rc;
}

/* Decodes an id segment into out. Sends 400 (bad length or escape) or 404 (not an id that can
 * exist) and returns nonzero on failure. */
static int sd__parse_id(struct sd_api_ctx *c, struct sd_str seg, int is_sink,
                        char out[SD_DEFS_ID_MAX + 1])
{
    struct sd_buf b = SD_BUF_INIT;
    struct sd_defs_err err;
    const char *field = is_sink ? "sinkId" : "sourceId";
    int rc = 0;

    if (sd_http_url_decode(seg, &b) != 0) {
        sd__api_error(c->req, 400, "badRequest", "Invalid %s in the path.", field);
        rc = -1;
    } else if (sd_defs_check_length(field, sd_buf_cstr(&b), 1, SD_DEFS_ID_MAX, &err) != 0) {
        sd__api_validation_error(c->req, &err);
        rc = -1;
    } else if (!sd_defs_is_valid_id(b.data)) {
        sd__api_not_found(c->req, is_sink, 0, b.data);
        rc = -1;
    } else {
        memcpy(out, b.data, b.len + 1);
    }
    sd_buf_fini(&b);
    return rc;
}

static void sd__api_task_get(struct sd_api_ctx *c)
{
    struct sd_str path = sd_http_path(c->req);
    static const char prefix[] = "/v1/tasks/";
    struct sd_str rest = {path.p + sizeof(prefix) - 1, path.len - (sizeof(prefix) - 1)};
    struct sd_buf id = SD_BUF_INIT;
    json_t *task = NULL;
    int rc;

    if (sd_http_url_decode(rest, &id) != 0) {
        sd__api_error(c->req, 400, "badRequest", "Invalid taskId in the path.");
        goto out;
    }
    rc = sd_tasks_get(c->api->tasks, c->project_id, sd_buf_cstr(&id), &task);
    if (rc == SD_ENOTFOUND) {
        sd__api_error(c->req, 404, "taskNotFound", "Task \"%.256s\" not found.", id.data);
    } else if (rc != 0) {
        sd__api_internal_error(c->req, "reading the task", rc);
    } else {
        sd_http_send_json(c->req, 200, task, 1);
    }

out:
    sd_buf_fini(&id);
}

/* GET / and GET /v1: the API's name and where its documentation is. */
static void sd__api_index(struct sd_api_ctx *c)
{
    struct sd_api *api = c->api;
    struct sd_http_req *req = c->req;
    json_t *j = json_object();
    char *doc = sd_xasprintf("%s/v1/documentation", api->api_url);

    json_object_set_new(j, "api", json_string("stream"));
    json_object_set_new(j, "documentation", json_string(doc));
    free(doc);
    sd_http_send_json(req, 200, j, 1);
}

static void sd__api_health(struct sd_api_ctx *c)
{
    sd_http_send(c->req, 200, "text/plain", "OK\n", 3);
}

/* Authenticates c and decodes the branch, source and sink parameters of its route. Sends the
 * error and returns nonzero on failure. */
static int sd__prepare(struct sd_api_ctx *c, const struct sd_api_route *route,
                       const struct sd_api_params *params)
{
    if (route->auth == SD_API_AUTH_NONE) {
        return 0;
    }
    if (sd__authenticate(c, route->auth) != 0) {
        return -1;
    }
    if (params->branch.p != NULL && sd__parse_branch(c, params->branch) != 0) {
        return -1;
    }
    if (params->source.p != NULL && sd__parse_id(c, params->source, 0, c->source_id) != 0) {
        return -1;
    }
    if (params->sink.p != NULL && sd__parse_id(c, params->sink, 1, c->sink_id) != 0) {
        return -1;
    }
    if (route->action != NULL) {
        snprintf(c->action, sizeof(c->action), "%s", route->action);
    }
    return 0;
}

void sd_api_handle(void *arg, struct sd_http_req *req)
{
    struct sd_str path = sd_http_path(req);
    struct sd_str method = sd_http_req_method(req);
    const struct sd_api_route *route = NULL;
    struct sd_api_params params;
    struct sd_api_path p;
    struct sd_api_ctx *c;
    char allowed[64] = "";

    sd__split_path(path, &p);
    for (size_t i = 0; i < sizeof(sd__routes) / sizeof(sd__routes[0]); i++) {
        struct sd_api_params m;
        memset(&m, 0, sizeof(m));
        if (!sd__match(sd__routes[i].pattern, &p, &m)) {
            continue;
        }
        if (sd_str_eq(method, sd_str_c(sd__routes[i].method))) {
            route = &sd__routes[i];
            params = m;
            break;
        }
        sd__allow(allowed, sizeof(allowed), sd__routes[i].method);
    }
    if (route == NULL && allowed[0] == '\0') {
        sd__api_endpoint_not_found(req);
        return;
    }
    /* every routed path answers CORS, as the reference's */
    if (sd_str_eq(method, SD_STR_LIT("OPTIONS"))) {
        sd__send_cors_preflight(req);
        return;
    }
    if (sd_http_header(req, "origin").len > 0) {
        sd_http_add_header(req, "access-control-allow-origin", "*");
    }
    if (route == NULL) {
        sd__send_method_not_allowed(req, allowed);
        return;
    }
    c = sd_xcalloc(1, sizeof(*c));
    c->api = arg;
    c->req = req;
    if (sd__prepare(c, route, &params) == 0) {
        route->handler(c);
    }
    free(c);
}

/* The keys the API reads, filled once by sd_config_fill. */
struct sd_api_config {
    const char *admin_token;
    const char *data_dir;
    int task_cleanup;
    int64_t task_cleanup_interval_ms;
};

#define SD_API_BIND(field, key, type) SD_BIND(struct sd_api_config, field, key, type)
static const struct sd_config_binding sd_api_rows[] = {
    SD_API_BIND(admin_token, "auth.adminToken", SD_BIND_STR),
    SD_API_BIND(data_dir, "dataDir", SD_BIND_STR),
    SD_API_BIND(task_cleanup, "api.task.cleanupEnabled", SD_BIND_BOOL),
    SD_API_BIND(task_cleanup_interval_ms, "api.task.cleanupInterval", SD_BIND_I64),
};
const struct sd_config_bindings sd_api_config_bindings = SD_BINDINGS("api", sd_api_rows);

int sd__api_definitions_changed(struct sd_api *api, struct sd_buf *err)
{
    const struct sd_api_hooks *h = &api->hooks;

    return h->definitions_changed != NULL ? h->definitions_changed(h->arg, err) : 0;
}

int sd__api_rotate_sink(struct sd_api *api, const char *sink_key, struct sd_buf *err)
{
    const struct sd_api_hooks *h = &api->hooks;

    return h->rotate_sink != NULL ? h->rotate_sink(h->arg, sink_key, err) : 0;
}

int sd__api_sink_is_writing(struct sd_api *api, const char *sink_key)
{
    const struct sd_api_hooks *h = &api->hooks;

    return h->sink_is_writing != NULL && h->sink_is_writing(h->arg, sink_key);
}

int sd_api_create(const struct sd_api_deps *deps, struct sd_api **out, struct sd_buf *err)
{
    struct sd_api_config c;
    struct sd_api *api;
    int64_t cleanup_ms = 0;
    int rc;

    *out = NULL;
    sd_config_fill(deps->cfg, &sd_api_config_bindings, &c);
    rc = sd_auth_ensure_admin(deps->state, c.admin_token, c.data_dir, err);
    if (rc != 0) {
        return rc;
    }
    api = sd_xcalloc(1, sizeof(*api));
    api->cfg = deps->cfg;
    api->state = deps->state;
    api->tables = deps->tables;
    api->eval_pool = deps->eval_pool;
    api->loop = deps->loop;
    api->hooks = deps->hooks;
    api->api_url = deps->api_url ? deps->api_url : "";
    api->source_url = deps->source_url ? deps->source_url : "";
    if (c.task_cleanup) {
        cleanup_ms = c.task_cleanup_interval_ms;
    }
    rc = sd_tasks_create(deps->state, api->api_url, cleanup_ms, &api->tasks);
    if (rc != 0) {
        sd_buf_printf(err, "cannot start the task worker: %s", sd_strerror(rc));
        free(api);
        return rc;
    }
    *out = api;
    return 0;
}

void sd_api_destroy(struct sd_api *api)
{
    if (api == NULL) {
        return;
    }
    sd_tasks_destroy(api->tasks);
    sd__api_docs_destroy(api->docs);
    free(api);
}
