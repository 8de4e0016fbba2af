/* sd_api.c: the configuration API's router, authentication, CORS, shared response helpers and
 * the task endpoint. Source and sink handlers live in sd_api_sources.c and sd_api_sinks.c,
 * settings in sd_api_settings.c and statistics in sd_api_stats.c.
 *
 * DESIGN: a request is routed by splitting the raw path into segments (each percent-decoded
 * on use; a task id is the decoded rest of the path, since it contains '/'). Unknown paths get
 * 404 routeNotFound and known paths with another method 405 methodNotAllowed, both before
 * authentication, like the reference. Every entity lookup is scoped by the token's projectId
 * (never by a project taken from the request), so a token only ever sees its own project.
 * Handlers run on the API loop thread and may block on the state store; the worker thread of
 * sd_tasks runs the changes. Tokens never reach a log line. */
#include "api/sd_api.h"
#include "api/sd_api_internal.h"
#include "config/sd_config.h"
#include "config/sd_config_bind.h"
#include "core/sd_alloc.h"
#include "core/sd_error.h"
#include "core/sd_log.h"
#include "core/sd_time.h"
#include "roles/sd_server.h"
#include "state/sd_state.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SD_API_MAX_SEGS 10

enum sd_api_route {
    SD_ROUTE_NONE,
    SD_ROUTE_ROOT,
    SD_ROUTE_HEALTH,
    SD_ROUTE_V1,
    SD_ROUTE_DOCS,
    SD_ROUTE_SOURCES,
    SD_ROUTE_SOURCE,
    SD_ROUTE_SINKS,
    SD_ROUTE_SINK,
    SD_ROUTE_SOURCE_SETTINGS,
    SD_ROUTE_SOURCE_STATS_CLEAR,
    SD_ROUTE_SINK_SETTINGS,
    SD_ROUTE_SINK_STATS_TOTAL,
    SD_ROUTE_SINK_STATS_FILES,
    SD_ROUTE_SINK_STATS_CLEAR,
    SD_ROUTE_SOURCE_VERSIONS,
    SD_ROUTE_SOURCE_VERSION,
    SD_ROUTE_SOURCE_VERSION_ROLLBACK,
    SD_ROUTE_SINK_VERSIONS,
    SD_ROUTE_SINK_VERSION,
    SD_ROUTE_SINK_VERSION_ROLLBACK,
    SD_ROUTE_SOURCE_TEST,
    SD_ROUTE_AGGREGATION,
    SD_ROUTE_SOURCE_SWITCH,
    SD_ROUTE_SOURCE_ROTATE,
    SD_ROUTE_SINK_SWITCH,
    SD_ROUTE_TASK
};

enum sd_api_method {
    SD_M_GET = 1,
    SD_M_POST = 2,
    SD_M_DELETE = 4,
    SD_M_OTHER = 8,
    SD_M_PATCH = 16,
    SD_M_PUT = 32
};

struct sd_api_path {
    struct sd_str segs[SD_API_MAX_SEGS];
    size_t n;
    int is_too_long;
};

void sd__api_error(h2o_req_t *req, int status, const char *name, const char *fmt, ...)
{
    char full_name[96];
    char message[1280];
    va_list ap;

    snprintf(full_name, sizeof(full_name), "stream.api.%s", name);
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    sd_http_send_error(req, status, full_name, message);
}

void sd__api_internal_error(h2o_req_t *req, const char *what, int rc)
{
    if (rc == SD_EUNHEALTHY) { /* the state store logged it once and recovers by itself */
        sd_http_add_header(req, "Retry-After", "1");
        sd__api_error(req, 503, "stateStoreUnavailable",
                      "The state store cannot store changes now: %s failed; retry later.", what);
        return;
    }
    sd_log_error("api", "%s: %s", what, sd_strerror(rc));
    sd__api_error(req, 500, "internalError", "Application error: %s failed (%s).", what,
                  sd_strerror(rc));
}

void sd__api_validation_error(h2o_req_t *req, const struct sd_defs_err *err)
{
    sd__api_error(req, 400, err->name ? err->name : "badRequest", "%s", err->message);
}

char *sd__api_dump(const json_t *value)
{
    char *text = json_dumps(value, JSON_COMPACT);

    if (text == NULL) {
        abort(); /* out of memory */
    }
    return text;
}

void sd__api_list_entities(struct sd_api_ctx *c, int is_sink, int deleted,
                           sd__api_list_extend_fn extend)
{
    struct sd_api_page page;
    struct sd_buf prefix = SD_BUF_INIT;
    struct sd_kvs kvs;
    const char *last_id = "";
    json_t *list = NULL, *out;
    int64_t count = 0;
    int rc;

    memset(&kvs, 0, sizeof(kvs));
    if (sd__api_page(c, &page) != 0) {
        return;
    }
    if (is_sink) {
        if (sd__api_get_source(c, NULL, NULL) != 0) {
            return;
        }
        sd_defs_sinks_prefix(&prefix, c->project_id, c->branch_id, c->source_id, deleted);
    } else {
        sd_defs_sources_prefix(&prefix, c->project_id, c->branch_id, deleted);
    }
    rc = sd_state_range(c->api->state, sd_buf_cstr(&prefix), 0, &kvs);
    if (rc != 0) {
        sd__api_internal_error(c->req, is_sink ? "listing sinks" : "listing sources", rc);
        goto out;
    }
    list = json_array();
    for (size_t i = 0; i < kvs.n && count < page.limit; i++) {
        const char *id = kvs.items[i].key + prefix.len;
        json_t *stored, *entity;
        if (page.after_id[0] != '\0' && strcmp(id, page.after_id) <= 0) {
            continue;
        }
        stored = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
        if (stored == NULL) {
            continue;
        }
        entity = is_sink ? sd_defs_sink_to_api(stored)
                         : sd_defs_source_to_api(stored, c->api->source_url);
        json_decref(stored);
        json_array_append_new(list, entity);
        if (extend != NULL && extend(c, id, entity) != 0) {
            goto out;
        }
        last_id = id;
        count++;
    }
    out = json_object();
    json_object_set_new(out, "projectId", json_integer(c->project_id));
    json_object_set_new(out, "branchId", json_integer(c->branch_id));
    if (is_sink) {
        json_object_set_new(out, "sourceId", json_string(c->source_id));
    }
    json_object_set_new(out, "page", sd__api_page_json(&page, (int64_t)kvs.n, last_id));
    json_object_set_new(out, is_sink ? "sinks" : "sources", list);
    list = NULL;
    sd_http_send_json(c->req, 200, out, 1);

out:
    json_decref(list);
    sd_kvs_free(&kvs);
    sd_buf_fini(&prefix);
}

int sd__api_create_commit(struct sd_state *st, const struct sd__api_create *cr,
                          const json_t *entity, struct sd_txn_result *res)
{
    json_t *version_rec = sd_defs_version_record(entity);
    char *text = sd__api_dump(entity);
    char *version_text = sd__api_dump(version_rec);
    struct sd_cmp cmps[3];
    struct sd_op ops[3];
    struct sd_txn txn;
    size_t ncmps = 2;
    size_t nops = 0;
    int rc;

    json_decref(version_rec);
    memset(cmps, 0, sizeof(cmps));
    cmps[0].key = cr->key;
    cmps[0].target = SD_CMP_CREATE_REV;
    cmps[0].result = SD_CMP_EQUAL;
    cmps[0].num = 0;
    cmps[1].key = cr->deleted_key;
    cmps[1].target = SD_CMP_MOD_REV;
    cmps[1].result = SD_CMP_EQUAL;
    cmps[1].num = cr->prev_rev;
    if (cr->guard_key != NULL) {
        cmps[2].key = cr->guard_key;
        cmps[2].target = SD_CMP_MOD_REV;
        cmps[2].result = SD_CMP_EQUAL;
        cmps[2].num = cr->guard_rev;
        ncmps = 3;
    }
    memset(ops, 0, sizeof(ops));
    ops[nops].type = SD_OP_PUT;
    ops[nops].key = cr->key;
    ops[nops].value = text;
    ops[nops++].value_len = strlen(text);
    ops[nops].type = SD_OP_PUT;
    ops[nops].key = cr->version_key;
    ops[nops].value = version_text;
    ops[nops++].value_len = strlen(version_text);
    if (cr->prev != NULL) {
        ops[nops].type = SD_OP_DELETE;
        ops[nops++].key = cr->deleted_key;
    }
    memset(&txn, 0, sizeof(txn));
    txn.cmps = cmps;
    txn.ncmps = ncmps;
    txn.then_ops = ops;
    txn.nthen = nops;
    rc = sd_state_txn(st, &txn, res);
    free(text);
    free(version_text);
    return rc;
}

int sd__api_create_predecessor(struct sd_state *st, struct sd__api_create *cr, json_t *entity,
                               const char *description, const struct sd_defs_by *by, json_t **prev,
                               int64_t *number)
{
    int rc = sd__api_load(st, cr->deleted_key, prev, &cr->prev_rev);

    *number = 1;
    if (rc == SD_ENOTFOUND) {
        *prev = NULL;
        cr->prev_rev = 0;
        rc = 0;
    } else if (rc == 0) {
        *number = sd_defs_version_number(*prev) + 1;
        sd_defs_set_version(entity, *number, description, by, sd_now_ms());
    }
    cr->prev = *prev;
    return rc;
}

/* Undoes a committed create (the entity and its version removed, the predecessor restored);
 * a failure is logged. */
static void sd__api_create_rollback(struct sd_state *st, const struct sd__api_create *cr)
{
    struct sd_op ops[3];
    struct sd_txn txn;
    struct sd_txn_result res;
    char *prev_text = NULL;
    size_t nops = 0;

    memset(ops, 0, sizeof(ops));
    memset(&res, 0, sizeof(res));
    ops[nops].type = SD_OP_DELETE;
    ops[nops++].key = cr->key;
    ops[nops].type = SD_OP_DELETE;
    ops[nops++].key = cr->version_key;
    if (cr->prev != NULL) {
        prev_text = sd__api_dump(cr->prev);
        ops[nops].type = SD_OP_PUT;
        ops[nops].key = cr->deleted_key;
        ops[nops].value = prev_text;
        ops[nops++].value_len = strlen(prev_text);
    }
    memset(&txn, 0, sizeof(txn));
    txn.then_ops = ops;
    txn.nthen = nops;
    if (sd_state_txn(st, &txn, &res) != 0) {
        sd_log_error("api", "cannot roll back the creation of %s", cr->key);
    }
    sd_txn_result_free(&res);
    free(prev_text);
}

int sd__api_create_reconcile(struct sd_api *api, const struct sd__api_create *cr, const char *what,
                             struct sd_buf *error)
{
    struct sd_buf rerr = SD_BUF_INIT;
    int rc = sd_server_reconcile(api->srv, &rerr);

    if (rc != 0) {
        sd__api_create_rollback(api->state, cr);
        sd_buf_printf(error, "%s has not been created: %s", what, sd_buf_cstr(&rerr));
        sd_buf_reset(&rerr);
        (void)sd_server_reconcile(api->srv, &rerr);
    }
    sd_buf_fini(&rerr);
    return rc;
}

json_t *sd__api_body(struct sd_api_ctx *c)
{
    h2o_req_t *req = c->req;
    json_error_t jerr;
    json_t *body;

    if (req->entity.base == NULL || req->entity.len == 0) {
        sd__api_error(req, 400, "badRequest", "The request body is empty, expected a JSON object.");
        return NULL;
    }
    body = json_loadb(req->entity.base, req->entity.len, JSON_REJECT_DUPLICATES, &jerr);
    if (body == NULL) {
        sd__api_error(req, 400, "badRequest",
                      "The request body is not valid JSON: %s (line %d, column %d).", jerr.text,
                      jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        sd__api_error(req, 400, "badRequest", "The request body must be a JSON object.");
        return NULL;
    }
    return body;
}

int sd__api_page(struct sd_api_ctx *c, struct sd_api_page *page)
{
    struct sd_buf tmp = SD_BUF_INIT;
    struct sd_str v;
    int rc = 0;

    memset(page, 0, sizeof(*page));
    page->limit = 100;
    if (sd_http_query_param(c->req, "afterId", &v) && v.len > 0) {
        if (sd_http_url_decode(v, &tmp) != 0 || tmp.len >= sizeof(page->after_id)) {
            sd__api_error(c->req, 400, "badRequest", "Invalid afterId query parameter.");
            rc = SD_EINVAL;
            goto out;
        }
        memcpy(page->after_id, tmp.data, tmp.len);
        page->after_id[tmp.len] = '\0';
    }
    if (sd_http_query_param(c->req, "limit", &v) && v.len > 0) {
        char *end;
        long long n;
        if (sd_http_url_decode(v, &tmp) != 0) {
            sd__api_error(c->req, 400, "badRequest", "Invalid limit query parameter.");
            rc = SD_EINVAL;
            goto out;
        }
        errno = 0;
        n = strtoll(sd_buf_cstr(&tmp), &end, 10);
        if (errno != 0 || end == tmp.data || *end != '\0') {
            sd__api_error(c->req, 400, "badRequest",
                          "Invalid value \"%.32s\" for limit, must be an integer.", tmp.data);
            rc = SD_EINVAL;
            goto out;
        }
        if (n < 1 || n > 100) {
            sd__api_error(c->req, 400, "invalidRange",
                          "Limit must be %s or equal than %d but got value %lld.",
                          n < 1 ? "greater" : "lesser", n < 1 ? 1 : 100, n);
            rc = SD_EINVAL;
            goto out;
        }
        page->limit = n;
    }

out:
    sd_buf_fini(&tmp);
    return rc;
}

json_t *sd__api_page_json(const struct sd_api_page *page, int64_t total, const char *last_id)
{
    json_t *j = json_object();

    json_object_set_new(j, "limit", json_integer(page->limit));
    json_object_set_new(j, "totalCount", json_integer(total));
    json_object_set_new(j, "afterId", json_string(page->after_id));
    json_object_set_new(j, "lastId", json_string(last_id ? last_id : ""));
    return j;
}

int sd__api_load(struct sd_state *st, const char *key, json_t **out, int64_t *mod_rev)
{
    struct sd_kv kv;
    int rc;

    *out = NULL;
    memset(&kv, 0, sizeof(kv));
    rc = sd_state_get(st, key, &kv);
    if (rc != 0) {
        return rc;
    }
    *out = json_loadb(kv.value, kv.value_len, 0, NULL);
    if (mod_rev != NULL) {
        *mod_rev = kv.mod_rev;
    }
    sd_kv_free(&kv);
    return json_is_object(*out) ? 0 : SD_ECORRUPT;
}

void sd__api_submit(struct sd_api_ctx *c, const struct sd_task_spec *spec,
                    const char *conflict_name, const char *conflict_message)
{
    json_t *task = NULL;
    int rc = sd_tasks_submit(c->api->tasks, spec, &task);

    if (rc == 0) {
        sd_http_send_json(c->req, 202, task, 1);
    } else if (rc == SD_ECONFLICT) {
        sd__api_error(c->req, 409, conflict_name, "%s", conflict_message);
    } else if (rc == SD_ELIMIT && spec->quota != NULL) {
        sd__api_error(c->req, 422, "resourceLimitReached", "Maximum number of %s is %zu.",
                      spec->quota->what, spec->quota->max);
    } else if (spec->claim != NULL && spec->claim->why->len > 0) {
        sd__api_error(c->req, 400, "badRequest", "%s", sd_buf_cstr(spec->claim->why));
    } else if (rc == SD_ECLOSED) {
        sd__api_error(c->req, 503, "serviceUnavailable", "The service is shutting down.");
    } else {
        sd__api_internal_error(c->req, "storing the task", rc);
    }
}

json_t *sd__api_task_outputs(const char *api_url, int64_t project_id, int64_t branch_id,
                             const char *source_id, const char *sink_id, int with_url)
{
    json_t *out = json_object();

    if (with_url) {
        char *url = sink_id != NULL ? sd_xasprintf("%s/v1/branches/%" PRId64 "/sources/%s/sinks/%s",
                                                   api_url, branch_id, source_id, sink_id)
                                    : sd_xasprintf("%s/v1/branches/%" PRId64 "/sources/%s", api_url,
                                                   branch_id, source_id);
        json_object_set_new(out, "url", json_string(url));
        free(url);
    }
    json_object_set_new(out, "projectId", json_integer(project_id));
    json_object_set_new(out, "branchId", json_integer(branch_id));
    json_object_set_new(out, "sourceId", json_string(source_id));
    if (sink_id != NULL) {
        json_object_set_new(out, "sinkId", json_string(sink_id));
    }
    return out;
}

void sd__api_quota(struct sd_api_ctx *c, const char *source_id, const char *sink_id,
                   struct sd_buf *prefix, struct sd_buf *key, struct sd_task_quota *q)
{
    memset(q, 0, sizeof(*q));
    if (sink_id != NULL) {
        sd_defs_sinks_prefix(prefix, c->project_id, c->branch_id, source_id, 0);
        sd_defs_sink_key(key, c->project_id, c->branch_id, source_id, sink_id, 0);
        q->max = SD_DEFS_SINKS_MAX;
        q->what = "sinks per source";
    } else {
        sd_defs_sources_prefix(prefix, c->project_id, c->branch_id, 0);
        sd_defs_source_key(key, c->project_id, c->branch_id, source_id, 0);
        q->max = SD_DEFS_SOURCES_MAX;
        q->what = "sources per branch";
    }
    q->prefix = sd_buf_cstr(prefix);
    q->key = sd_buf_cstr(key);
}

void sd__api_submit_entity_task(struct sd_api_ctx *c, int is_sink, const char *type, sd_task_fn fn,
                                void *arg, sd_task_free_fn free_arg,
                                const struct sd_task_quota *quota,
                                const struct sd_task_claim *claim)
{
    struct sd_task_spec spec;
    char *object_key, *lock_key, *conflict;

    if (is_sink) {
        object_key = sd_xasprintf("%" PRId64 "/%s/%s", c->branch_id, c->source_id, c->sink_id);
        lock_key = sd_xasprintf("sink/%" PRId64 "/%" PRId64 "/%s/%s", c->project_id, c->branch_id,
                                c->source_id, c->sink_id);
        conflict = sd_xasprintf("Another task is already running on sink \"%s\".", c->sink_id);
    } else {
        object_key = sd_xasprintf("%" PRId64 "/%s", c->branch_id, c->source_id);
        lock_key = sd_xasprintf("source/%" PRId64 "/%" PRId64 "/%s", c->project_id, c->branch_id,
                                c->source_id);
        conflict = sd_xasprintf("Another task is already running on source \"%s\".", c->source_id);
    }
    memset(&spec, 0, sizeof(spec));
    spec.project_id = c->project_id;
    spec.type = type;
    spec.object_key = object_key;
    spec.lock_key = lock_key;
    spec.fn = fn;
    spec.arg = arg;
    spec.free_arg = free_arg;
    spec.quota = quota;
    spec.claim = claim;
    sd__api_submit(c, &spec, "conflict", conflict);
    free(object_key);
    free(lock_key);
    free(conflict);
}

/* Splits the raw path "/a/b/c" into segments (not decoded). */
static void sd__split_path(struct sd_str path, struct sd_api_path *out)
{
    size_t i = 1, start = 1;

    memset(out, 0, sizeof(*out));
    if (path.len <= 1) {
        return; /* "/" */
    }
    for (; i <= path.len; i++) {
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

static int sd__seg_is(struct sd_str seg, const char *lit)
{
    return sd_str_eq(seg, sd_str_c(lit));
}

/* Matches the version, test and aggregation routes (p has a "v1" first segment and no empty
 * segment); SD_ROUTE_NONE for any other path. */
static enum sd_api_route sd__match_versions(const struct sd_api_path *p)
{
    int is_sink;

    if (p->n == 5 && sd__seg_is(p->segs[1], "branches") && sd__seg_is(p->segs[3], "aggregation") &&
        sd__seg_is(p->segs[4], "sources")) {
        return SD_ROUTE_AGGREGATION;
    }
    if (p->n < 6 || !sd__seg_is(p->segs[1], "branches") || !sd__seg_is(p->segs[3], "sources")) {
        return SD_ROUTE_NONE;
    }
    if (p->n == 6 && sd__seg_is(p->segs[5], "test")) {
        return SD_ROUTE_SOURCE_TEST;
    }
    is_sink = p->n >= 8 && sd__seg_is(p->segs[5], "sinks");
    if (!sd__seg_is(p->segs[is_sink ? 7 : 5], "versions")) {
        return SD_ROUTE_NONE;
    }
    switch (p->n - (is_sink ? 2 : 0)) {
    case 6:
        return is_sink ? SD_ROUTE_SINK_VERSIONS : SD_ROUTE_SOURCE_VERSIONS;
    case 7:
        return is_sink ? SD_ROUTE_SINK_VERSION : SD_ROUTE_SOURCE_VERSION;
    case 8:
        if (sd__seg_is(p->segs[p->n - 1], "rollback")) {
            return is_sink ? SD_ROUTE_SINK_VERSION_ROLLBACK : SD_ROUTE_SOURCE_VERSION_ROLLBACK;
        }
        return SD_ROUTE_NONE;
    default:
        return SD_ROUTE_NONE;
    }
}

/* Matches the lifecycle routes: PUT .../disable, /enable, /undelete of a source or a sink and
 * POST .../rotate-secret (p has a "v1" first segment and no empty segment). The lists of
 * deleted entities are the GET of the entity routes with the id "deleted" (an id that cannot
 * be created). */
static enum sd_api_route sd__match_lifecycle(const struct sd_api_path *p)
{
    struct sd_str last;

    if (p->n < 6 || !sd__seg_is(p->segs[1], "branches") || !sd__seg_is(p->segs[3], "sources")) {
        return SD_ROUTE_NONE;
    }
    last = p->segs[p->n - 1];
    if (p->n == 6 && sd__seg_is(last, "rotate-secret")) {
        return SD_ROUTE_SOURCE_ROTATE;
    }
    if (!sd__seg_is(last, "disable") && !sd__seg_is(last, "enable") &&
        !sd__seg_is(last, "undelete")) {
        return SD_ROUTE_NONE;
    }
    if (p->n == 6) {
        return SD_ROUTE_SOURCE_SWITCH;
    }
    return p->n == 8 && sd__seg_is(p->segs[5], "sinks") ? SD_ROUTE_SINK_SWITCH : SD_ROUTE_NONE;
}

static enum sd_api_route sd__match(struct sd_str path, const struct sd_api_path *p)
{
    enum sd_api_route ext;

    static const char tasks_prefix[] = "/v1/tasks/";

    if (path.len == 1 && path.p[0] == '/') {
        return SD_ROUTE_ROOT;
    }
    if (sd__api_docs_is_path(path)) {
        return SD_ROUTE_DOCS;
    }
    if (path.len > sizeof(tasks_prefix) - 1 &&
        memcmp(path.p, tasks_prefix, sizeof(tasks_prefix) - 1) == 0) {
        return SD_ROUTE_TASK;
    }
    if (p->is_too_long || p->n == 0) {
        return SD_ROUTE_NONE;
    }
    for (size_t i = 0; i < p->n; i++) {
        if (p->segs[i].len == 0) {
            return SD_ROUTE_NONE;
        }
    }
    if (p->n == 1 && sd__seg_is(p->segs[0], "health-check")) {
        return SD_ROUTE_HEALTH;
    }
    if (!sd__seg_is(p->segs[0], "v1")) {
        return SD_ROUTE_NONE;
    }
    if (p->n == 1) {
        return SD_ROUTE_V1;
    }
    ext = sd__match_versions(p);
    if (ext != SD_ROUTE_NONE) {
        return ext;
    }
    ext = sd__match_lifecycle(p);
    if (ext != SD_ROUTE_NONE) {
        return ext;
    }
    if (p->n < 4 || !sd__seg_is(p->segs[1], "branches") || !sd__seg_is(p->segs[3], "sources")) {
        return SD_ROUTE_NONE;
    }
    switch (p->n) {
    case 4:
        return SD_ROUTE_SOURCES;
    case 5:
        return SD_ROUTE_SOURCE;
    case 6:
        if (sd__seg_is(p->segs[5], "settings")) {
            return SD_ROUTE_SOURCE_SETTINGS;
        }
        return sd__seg_is(p->segs[5], "sinks") ? SD_ROUTE_SINKS : SD_ROUTE_NONE;
    case 7:
        if (sd__seg_is(p->segs[5], "statistics") && sd__seg_is(p->segs[6], "clear")) {
            return SD_ROUTE_SOURCE_STATS_CLEAR;
        }
        return sd__seg_is(p->segs[5], "sinks") ? SD_ROUTE_SINK : SD_ROUTE_NONE;
    case 8:
        return sd__seg_is(p->segs[5], "sinks") && sd__seg_is(p->segs[7], "settings")
                   ? SD_ROUTE_SINK_SETTINGS
                   : SD_ROUTE_NONE;
    case 9:
        if (!sd__seg_is(p->segs[5], "sinks") || !sd__seg_is(p->segs[7], "statistics")) {
            return SD_ROUTE_NONE;
        }
        if (sd__seg_is(p->segs[8], "total")) {
            return SD_ROUTE_SINK_STATS_TOTAL;
        }
        if (sd__seg_is(p->segs[8], "files")) {
            return SD_ROUTE_SINK_STATS_FILES;
        }
        return sd__seg_is(p->segs[8], "clear") ? SD_ROUTE_SINK_STATS_CLEAR : SD_ROUTE_NONE;
    default:
        return SD_ROUTE_NONE;
    }
}

static unsigned sd__allowed(enum sd_api_route r)
{
    switch (r) {
    case SD_ROUTE_SOURCES:
    case SD_ROUTE_SINKS:
        return SD_M_GET | SD_M_POST;
    case SD_ROUTE_SOURCE:
    case SD_ROUTE_SINK:
        return SD_M_GET | SD_M_PATCH | SD_M_DELETE;
    case SD_ROUTE_SOURCE_SWITCH:
    case SD_ROUTE_SINK_SWITCH:
        return SD_M_PUT;
    case SD_ROUTE_SOURCE_ROTATE:
        return SD_M_POST;
    case SD_ROUTE_SOURCE_SETTINGS:
    case SD_ROUTE_SINK_SETTINGS:
        return SD_M_GET | SD_M_PATCH;
    case SD_ROUTE_SOURCE_STATS_CLEAR:
    case SD_ROUTE_SINK_STATS_CLEAR:
        return SD_M_DELETE;
    case SD_ROUTE_SOURCE_VERSION_ROLLBACK:
    case SD_ROUTE_SINK_VERSION_ROLLBACK:
        return SD_M_PUT;
    case SD_ROUTE_SOURCE_TEST:
        return SD_M_POST;
    case SD_ROUTE_NONE:
        return 0;
    default:
        return SD_M_GET;
    }
}

static unsigned sd__method(h2o_req_t *req)
{
    struct sd_str m = {req->method.base, req->method.len};

    if (sd_str_eq(m, SD_STR_LIT("GET"))) {
        return SD_M_GET;
    }
    if (sd_str_eq(m, SD_STR_LIT("POST"))) {
        return SD_M_POST;
    }
    if (sd_str_eq(m, SD_STR_LIT("DELETE"))) {
        return SD_M_DELETE;
    }
    if (sd_str_eq(m, SD_STR_LIT("PATCH"))) {
        return SD_M_PATCH;
    }
    if (sd_str_eq(m, SD_STR_LIT("PUT"))) {
        return SD_M_PUT;
    }
    return SD_M_OTHER;
}

static void sd__send_method_not_allowed(h2o_req_t *req, unsigned allowed)
{
    char list[64] = "";

    if (allowed & SD_M_GET) {
        strcat(list, "GET");
    }
    if (allowed & SD_M_POST) {
        strcat(list, list[0] ? ", POST" : "POST");
    }
    if (allowed & SD_M_PATCH) {
        strcat(list, list[0] ? ", PATCH" : "PATCH");
    }
    if (allowed & SD_M_PUT) {
        strcat(list, list[0] ? ", PUT" : "PUT");
    }
    if (allowed & SD_M_DELETE) {
        strcat(list, list[0] ? ", DELETE" : "DELETE");
    }
    sd_http_add_header(req, "allow", list);
    sd__api_error(req, 405, "methodNotAllowed", "Method \"%.*s\" is not allowed here, use %s.",
                  (int)(req->method.len > 16 ? 16 : req->method.len), req->method.base, list);
}

static void sd__send_cors_preflight(h2o_req_t *req)
{
    sd_http_add_header(req, "access-control-allow-origin", "*");
    sd_http_add_header(req, "access-control-allow-methods", "GET, POST, PATCH, DELETE, PUT");
    sd_http_add_header(req, "access-control-allow-headers",
                       "Content-Type, X-StorageApi-Token, X-KBC-ProjectId");
    sd_http_add_header(req, "access-control-max-age", "86400");
    sd_http_send(req, 200, "text/plain", "", 0);
}

/* 1 for a request that changes nothing although its method is not GET: the dry run
 * POST /v1/branches/{branchId}/sources/{sourceId}/test (read-only tokens may use it, as in the
 * reference). */
static int sd__is_dry_run(const struct sd_api_path *p)
{
    return p->n == 6 && sd__seg_is(p->segs[3], "sources") && sd__seg_is(p->segs[5], "test");
}

/* Authenticates the request into c. Every method but GET writes (except the dry run) and needs
 * an admin token. Sends the error and returns nonzero on failure. */
static int sd__authenticate(struct sd_api_ctx *c, unsigned method, const struct sd_api_path *p)
{
    struct sd_str tok = sd_http_header(c->req, "x-storageapi-token");
    int rc;

    if (tok.len == 0) {
        sd__api_error(c->req, 400, "missingField", "Missing X-StorageApi-Token header.");
        return -1;
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
    if (method != SD_M_GET && !sd__is_dry_run(p) && !c->token.is_admin) {
        sd__api_error(c->req, 403, "forbidden",
                      "Only admin token can do write operations on streams.");
        return -1;
    }
    c->project_id = c->token.project_id;
    c->by.type = "user";
    c->by.token_id = c->token.id;
    c->by.token_desc = c->token.description;
    return 0;
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
    } else {
        sd__api_error(c->req, 400, "badRequest",
                      "Branch \"%.64s\" is not supported: only the default branch (\"default\" or "
                      "%d) exists.",
                      s, SD_DEFS_BRANCH_DEFAULT);
        rc = -1;
    }
    sd_buf_fini(&b);
    return rc;
}

/* Decodes an id segment into out. Sends 400 (bad length or escape) or 404 (not an id that can
 * exist) and returns nonzero on failure. */
static int sd__parse_id(struct sd_api_ctx *c, struct sd_str seg, const char *field,
                        const char *not_found_name, const char *what, char out[SD_DEFS_ID_MAX + 1])
{
    struct sd_buf b = SD_BUF_INIT;
    struct sd_defs_err err;
    int rc = 0;

    if (sd_http_url_decode(seg, &b) != 0) {
        sd__api_error(c->req, 400, "badRequest", "Invalid %s in the path.", field);
        rc = -1;
    } else if (sd_defs_check_length(field, sd_buf_cstr(&b), 1, SD_DEFS_ID_MAX, &err) != 0) {
        sd__api_validation_error(c->req, &err);
        rc = -1;
    } else if (!sd_defs_is_valid_id(b.data)) {
        sd__api_error(c->req, 404, not_found_name, "%s \"%s\" not found.", what, b.data);
        rc = -1;
    } else {
        memcpy(out, b.data, b.len + 1);
    }
    sd_buf_fini(&b);
    return rc;
}

static void sd__handle_task(struct sd_api_ctx *c, struct sd_str path)
{
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

static void sd__handle_v1(struct sd_api *api, h2o_req_t *req)
{
    json_t *j = json_object();
    char *doc = sd_xasprintf("%s/v1/documentation", api->api_url);

    json_object_set_new(j, "api", json_string("stream"));
    json_object_set_new(j, "documentation", json_string(doc));
    free(doc);
    sd_http_send_json(req, 200, j, 1);
}

static int sd__is_v1_path(struct sd_str path)
{
    return path.len >= 3 && memcmp(path.p, "/v1", 3) == 0 && (path.len == 3 || path.p[3] == '/');
}

void sd_api_handle(void *arg, h2o_req_t *req)
{
    struct sd_api *api = arg;
    struct sd_str path = sd_http_path(req);
    struct sd_api_path p;
    struct sd_api_ctx *c;
    enum sd_api_route route;
    unsigned method = sd__method(req);
    unsigned allowed;

    if (sd__is_v1_path(path)) {
        if (sd_str_eq((struct sd_str){req->method.base, req->method.len}, SD_STR_LIT("OPTIONS"))) {
            sd__send_cors_preflight(req);
            return;
        }
        if (sd_http_header(req, "origin").len > 0) {
            sd_http_add_header(req, "access-control-allow-origin", "*");
        }
    }
    sd__split_path(path, &p);
    route = sd__match(path, &p);
    allowed = sd__allowed(route);
    if (route == SD_ROUTE_NONE) {
        sd__api_error(req, 404, "routeNotFound", "Route \"%.*s\" not found.",
                      (int)(path.len > 256 ? 256 : path.len), path.p);
        return;
    }
    if (!(allowed & method)) {
        sd__send_method_not_allowed(req, allowed);
        return;
    }
    switch (route) {
    case SD_ROUTE_ROOT:
        sd_http_add_header(req, "location", "/v1");
        sd_http_send(req, 301, "text/plain", "", 0);
        return;
    case SD_ROUTE_HEALTH:
        sd_http_send(req, 200, "text/plain", "OK\n", 3);
        return;
    case SD_ROUTE_V1:
        sd__handle_v1(api, req);
        return;
    case SD_ROUTE_DOCS:
        sd__api_docs_handle(api, req, path);
        return;
    default:
        break;
    }

    c = sd_xcalloc(1, sizeof(*c));
    c->api = api;
    c->req = req;
    if (sd__authenticate(c, method, &p) != 0) {
        goto out;
    }
    if (route == SD_ROUTE_TASK) {
        sd__handle_task(c, path);
        goto out;
    }
    if (sd__parse_branch(c, p.segs[2]) != 0) {
        goto out;
    }
    if (route != SD_ROUTE_SOURCES && route != SD_ROUTE_AGGREGATION &&
        sd__parse_id(c, p.segs[4], "sourceId", "sourceNotFound", "Source", c->source_id) != 0) {
        goto out;
    }
    if ((route == SD_ROUTE_SINK_VERSIONS || route == SD_ROUTE_SINK_VERSION ||
         route == SD_ROUTE_SINK_VERSION_ROLLBACK || route == SD_ROUTE_SINK ||
         route == SD_ROUTE_SINK_SETTINGS || route == SD_ROUTE_SINK_STATS_TOTAL ||
         route == SD_ROUTE_SINK_STATS_FILES || route == SD_ROUTE_SINK_STATS_CLEAR ||
         route == SD_ROUTE_SINK_SWITCH) &&
        sd__parse_id(c, p.segs[6], "sinkId", "sinkNotFound", "Sink", c->sink_id) != 0) {
        goto out;
    }
    switch (route) {
    case SD_ROUTE_SOURCES:
        if (method == SD_M_GET) {
            sd__api_sources_list(c);
        } else {
            sd__api_source_create(c);
        }
        break;
    case SD_ROUTE_SOURCE:
        if (method == SD_M_GET && strcmp(c->source_id, "deleted") == 0) {
            sd__api_sources_deleted_list(c);
        } else if (method == SD_M_GET) {
            sd__api_source_get(c);
        } else if (method == SD_M_PATCH) {
            sd__api_source_update(c);
        } else {
            sd__api_source_delete(c);
        }
        break;
    case SD_ROUTE_SINKS:
        if (method == SD_M_GET) {
            sd__api_sinks_list(c);
        } else {
            sd__api_sink_create(c);
        }
        break;
    case SD_ROUTE_SINK:
        if (method == SD_M_GET && strcmp(c->sink_id, "deleted") == 0) {
            sd__api_sinks_deleted_list(c);
        } else if (method == SD_M_GET) {
            sd__api_sink_get(c);
        } else if (method == SD_M_PATCH) {
            sd__api_sink_update(c);
        } else {
            sd__api_sink_delete(c);
        }
        break;
    case SD_ROUTE_SOURCE_SETTINGS:
        if (method == SD_M_GET) {
            sd__api_source_settings_get(c);
        } else {
            sd__api_source_settings_patch(c);
        }
        break;
    case SD_ROUTE_SINK_SETTINGS:
        if (method == SD_M_GET) {
            sd__api_sink_settings_get(c);
        } else {
            sd__api_sink_settings_patch(c);
        }
        break;
    case SD_ROUTE_SOURCE_STATS_CLEAR:
        sd__api_source_stats_clear(c);
        break;
    case SD_ROUTE_SINK_STATS_TOTAL:
        sd__api_sink_stats_total(c);
        break;
    case SD_ROUTE_SINK_STATS_FILES:
        sd__api_sink_stats_files(c);
        break;
    case SD_ROUTE_SINK_STATS_CLEAR:
        sd__api_sink_stats_clear(c);
        break;
    case SD_ROUTE_SOURCE_VERSIONS:
        sd__api_source_versions_list(c);
        break;
    case SD_ROUTE_SOURCE_VERSION:
        sd__api_source_version_get(c);
        break;
    case SD_ROUTE_SOURCE_VERSION_ROLLBACK:
        sd__api_source_version_rollback(c);
        break;
    case SD_ROUTE_SINK_VERSIONS:
        sd__api_sink_versions_list(c);
        break;
    case SD_ROUTE_SINK_VERSION:
        sd__api_sink_version_get(c);
        break;
    case SD_ROUTE_SINK_VERSION_ROLLBACK:
        sd__api_sink_version_rollback(c);
        break;
    case SD_ROUTE_SOURCE_TEST:
        sd__api_source_test(c);
        break;
    case SD_ROUTE_AGGREGATION:
        sd__api_aggregation_sources(c);
        break;
    case SD_ROUTE_SOURCE_SWITCH:
    case SD_ROUTE_SINK_SWITCH:
        snprintf(c->action, sizeof(c->action), "%.*s", (int)p.segs[p.n - 1].len, p.segs[p.n - 1].p);
        if (route == SD_ROUTE_SOURCE_SWITCH) {
            sd__api_source_switch(c);
        } else {
            sd__api_sink_switch(c);
        }
        break;
    case SD_ROUTE_SOURCE_ROTATE:
        sd__api_source_rotate_secret(c);
        break;
    default:
        sd__api_error(req, 404, "routeNotFound", "Route not found.");
        break;
    }

out:
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

int sd_api_create(struct sd_server *srv, struct sd_api **out, struct sd_buf *err)
{
    struct sd_api_config c;
    struct sd_api *api;
    int64_t cleanup_ms = 0;
    int rc;

    *out = NULL;
    sd_config_fill(srv->cfg, &sd_api_config_bindings, &c);
    rc = sd_auth_ensure_admin(srv->state, c.admin_token, c.data_dir, err);
    if (rc != 0) {
        return rc;
    }
    api = sd_xcalloc(1, sizeof(*api));
    api->srv = srv;
    api->state = srv->state;
    api->api_url = srv->api_public_url ? srv->api_public_url : "";
    api->source_url = srv->source_public_url ? srv->source_public_url : "";
    if (c.task_cleanup) {
        cleanup_ms = c.task_cleanup_interval_ms;
    }
    rc = sd_tasks_create(srv->state, api->api_url, cleanup_ms, &api->tasks);
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
