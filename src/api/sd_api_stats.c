/* sd_api_stats.c: the statistics endpoints (reference §2.3, §5): a sink's totals per level,
 * its files with their statistics, and the reset of a sink's or a source's statistics.
 *
 * DESIGN: thin handlers over storage/sd_stats.h, which reads each answer in one state-store
 * transaction. The reset is synchronous (200 with an empty body, as the reference answers) and
 * writes one marker per sink; it never touches the statistics themselves, so it cannot race
 * with the operator moving them between levels. Reads need a master token, resets an admin
 * token (the router checks both). Handlers run on the API loop thread and block on the store
 * like the other API handlers. */
#include "api/sd_api_internal.h"
#include "core/sd_alloc.h"
#include "core/sd_error.h"
#include "core/sd_time.h"
#include "state/sd_state.h"
#include "storage/sd_stats.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *sd__sink_key(const struct sd_api_ctx *c)
{
    return sd_xasprintf("%" PRId64 "/%" PRId64 "/%s/%s", c->project_id, c->branch_id, c->source_id,
                        c->sink_id);
}

void sd__api_sink_stats_total(struct sd_api_ctx *c)
{
    struct sd_stats_agg agg;
    char *key;
    int rc;

    if (sd__api_get_sink(c, NULL, NULL) != 0) {
        return;
    }
    key = sd__sink_key(c);
    rc = sd_stats_sink(c->api->state, key, &agg);
    free(key);
    if (rc != 0) {
        sd__api_internal_error(c->req, "reading the statistics", rc);
        return;
    }
    sd_http_send_json(c->req, 200, sd_stats_agg_json(&agg), 1);
}

static int sd__is_imported(const struct sd_stats_file *f)
{
    const char *state = json_string_value(json_object_get(f->entity, "state"));
    return state != NULL && strcmp(state, "imported") == 0;
}

/* The entity whose retry members the file shows: its own after a failed import, else its slice
 * whose upload keeps failing (a staging outage holds the file back without failing it). */
static const json_t *sd__retry_entity(const struct sd_stats_file *f)
{
    if (json_integer_value(json_object_get(f->entity, "retryAttempt")) <= 0 &&
        f->failing_slice != NULL) {
        return f->failing_slice;
    }
    return f->entity;
}

static int sd__has_retry_reason(const struct sd_stats_file *f)
{
    return json_object_get(sd__retry_entity(f), "retryReason") != NULL;
}

int sd__api_cmp_files(const void *pa, const void *pb)
{
    const struct sd_stats_file *a = *(const struct sd_stats_file *const *)pa;
    const struct sd_stats_file *b = *(const struct sd_stats_file *const *)pb;
    int d = sd__is_imported(b) - sd__is_imported(a);

    if (d == 0) {
        d = sd__has_retry_reason(a) - sd__has_retry_reason(b);
    }
    if (d == 0) {
        d = a->opened_at_ms < b->opened_at_ms ? -1 : a->opened_at_ms > b->opened_at_ms;
    }
    return d != 0 ? d : strcmp(a->key, b->key);
}

json_t *sd__api_file_json(const struct sd_stats_file *f)
{
    static const char *const members[] = {"state",       "openedAt",   "closingAt",
                                          "importingAt", "importedAt", "retryAttempt",
                                          "retryReason", "retryAfter"};
    enum { SD_FIRST_RETRY_MEMBER = 5 };
    json_t *j = json_object(), *stats;

    for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
        const json_t *from = i < SD_FIRST_RETRY_MEMBER ? f->entity : sd__retry_entity(f);
        json_t *v = json_object_get(from, members[i]);
        if (v != NULL && !json_is_null(v)) {
            json_object_set(j, members[i], v);
        }
    }
    if (json_object_get(j, "openedAt") == NULL) {
        char ts[SD_TIME_ISO_LEN + 1];
        sd_time_format_iso(f->opened_at_ms, ts);
        json_object_set_new(j, "openedAt", json_string(ts));
    }
    stats = sd_stats_agg_json(&f->agg);
    if (f->agg.total.records == 0) {
        /* The reference has no statistics of a file without records. */
        json_object_set_new(stats, "total", json_null());
    }
    json_object_set_new(j, "statistics", stats);
    return j;
}

void sd__api_sink_stats_files(struct sd_api_ctx *c)
{
    struct sd_stats_files files;
    struct sd_stats_file **sorted = NULL;
    json_t *list, *out;
    size_t n = 0;
    int failed_only = 0;
    char *key;
    int rc;

    memset(&files, 0, sizeof(files));
    if (sd__api_query_bool(c->req, "failedFiles", &failed_only) != 0 ||
        sd__api_get_sink(c, NULL, NULL) != 0) {
        return;
    }
    key = sd__sink_key(c);
    rc = sd_stats_sink_files(c->api->state, key, &files);
    free(key);
    if (rc != 0) {
        sd__api_internal_error(c->req, "reading the files", rc);
        return;
    }
    sorted = files.n ? sd_xcalloc(files.n, sizeof(*sorted)) : NULL;
    for (size_t i = 0; i < files.n; i++) {
        struct sd_stats_file *f = &files.items[i];
        if (failed_only && (sd__is_imported(f) || json_integer_value(json_object_get(
                                                      sd__retry_entity(f), "retryAttempt")) <= 0)) {
            continue;
        }
        sorted[n++] = f;
    }
    if (n > 1) {
        qsort(sorted, n, sizeof(*sorted), sd__api_cmp_files);
    }
    list = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(list, sd__api_file_json(sorted[i]));
    }
    out = json_object();
    json_object_set_new(out, "files", list);
    sd_http_send_json(c->req, 200, out, 1);
    free(sorted);
    sd_stats_files_fini(&files);
}

void sd__api_sink_stats_clear(struct sd_api_ctx *c)
{
    char *key;
    const char *keys[1];
    int rc;

    if (sd__api_get_sink(c, NULL, NULL) != 0) {
        return;
    }
    key = sd__sink_key(c);
    keys[0] = key;
    rc = sd_stats_reset(c->api->state, keys, 1, sd_now_ms());
    free(key);
    if (rc != 0) {
        sd__api_internal_error(c->req, "resetting the statistics", rc);
        return;
    }
    sd_http_send(c->req, 200, "text/plain", "", 0);
}

void sd__api_source_stats_clear(struct sd_api_ctx *c)
{
    struct sd_buf prefix = SD_BUF_INIT;
    struct sd_kvs kvs;
    char **keys = NULL;
    int rc;

    memset(&kvs, 0, sizeof(kvs));
    if (sd__api_get_source(c, NULL, NULL) != 0) {
        return;
    }
    sd_defs_sinks_prefix(&prefix, c->project_id, c->branch_id, c->source_id, 0);
    rc = sd_state_range(c->api->state, sd_buf_cstr(&prefix), 0, &kvs);
    if (rc == 0 && kvs.n > 0) {
        keys = sd_xcalloc(kvs.n, sizeof(*keys));
        for (size_t i = 0; i < kvs.n; i++) {
            keys[i] = sd_xasprintf("%" PRId64 "/%" PRId64 "/%s/%s", c->project_id, c->branch_id,
                                   c->source_id, kvs.items[i].key + prefix.len);
        }
        rc = sd_stats_reset(c->api->state, (const char *const *)keys, kvs.n, sd_now_ms());
    }
    if (rc != 0) {
        sd__api_internal_error(c->req, "resetting the statistics", rc);
    } else {
        sd_http_send(c->req, 200, "text/plain", "", 0);
    }
    for (size_t i = 0; keys != NULL && i < kvs.n; i++) {
        free(keys[i]);
    }
    free(keys);
    sd_kvs_free(&kvs);
    sd_buf_fini(&prefix);
}
