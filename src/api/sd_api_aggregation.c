/* sd_api_aggregation.c: the UI's aggregation endpoint (reference §2.3,
 * GET /v1/branches/{branchId}/aggregation/sources): the branch's sources, paginated like the
 * sources list, each with its sinks[], each sink with statistics{total, levels, files}.
 *
 * DESIGN: composed from what the other endpoints answer: a source as in the sources list (API
 * form, http.url), a sink as in the sinks list, its total and levels as the sink's
 * statistics/total endpoint (reset applied) and its files as statistics/files (the files opened
 * after the last reset, in the same order: imported first, then without a retry reason, then by
 * openedAt). Each sink is read in its own store calls (sd_stats reads one sink consistently),
 * so the answer is not one snapshot of the whole branch. Runs on the API loop thread. */
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

/* Returns the statistics{total, levels, files} of sink_key (new reference) in *out. */
static int sd__agg_sink_stats(struct sd_state *st, const char *sink_key, json_t **out)
{
    struct sd_stats_agg agg;
    struct sd_stats_files files;
    struct sd_stats_file **sorted = NULL;
    json_t *stats = NULL, *list;
    int rc;

    memset(&files, 0, sizeof(files));
    *out = NULL;
    rc = sd_stats_sink(st, sink_key, &agg);
    if (rc == 0) {
        rc = sd_stats_sink_files(st, sink_key, &files);
    }
    if (rc != 0) {
        goto out;
    }
    stats = sd_stats_agg_json(&agg);
    if (files.n > 0) {
        sorted = sd_xcalloc(files.n, sizeof(*sorted));
        for (size_t i = 0; i < files.n; i++) {
            sorted[i] = &files.items[i];
        }
        qsort(sorted, files.n, sizeof(*sorted), sd__api_cmp_files);
    }
    list = json_array();
    for (size_t i = 0; i < files.n; i++) {
        json_array_append_new(list, sd__api_file_json(sorted[i]));
    }
    json_object_set_new(stats, "files", list);
    *out = stats;

out:
    free(sorted);
    sd_stats_files_fini(&files);
    return rc;
}

/* Returns the sinks[] of source_id with their statistics (new reference) in *out. */
static int sd__agg_sinks(struct sd_api_ctx *c, const char *source_id, json_t **out)
{
    struct sd_buf prefix = SD_BUF_INIT;
    struct sd_kvs kvs;
    json_t *list = json_array();
    int rc;

    memset(&kvs, 0, sizeof(kvs));
    *out = NULL;
    sd_defs_sinks_prefix(&prefix, c->project_id, c->branch_id, source_id, 0);
    rc = sd_state_range(c->api->state, sd_buf_cstr(&prefix), 0, &kvs);
    for (size_t i = 0; rc == 0 && i < kvs.n; i++) {
        json_t *sink = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
        json_t *stats = NULL;
        char *sink_key;
        if (sink == NULL) {
            continue;
        }
        sink_key = sd_xasprintf("%" PRId64 "/%" PRId64 "/%s/%s", c->project_id, c->branch_id,
                                source_id, kvs.items[i].key + prefix.len);
        rc = sd__agg_sink_stats(c->api->state, sink_key, &stats);
        free(sink_key);
        if (rc == 0) {
            json_object_del(sink, "config"); /* as sd_defs_sink_to_api shows a sink */
            json_object_set_new(sink, "statistics", stats);
            json_array_append(list, sink);
        }
        json_decref(sink);
    }
    if (rc == 0) {
        *out = list;
        list = NULL;
    }
    json_decref(list);
    sd_kvs_free(&kvs);
    sd_buf_fini(&prefix);
    return rc;
}

/* Adds sinks[] with their statistics to a listed source. */
static int sd__agg_extend(struct sd_api_ctx *c, const char *id, json_t *source)
{
    json_t *sinks = NULL;
    int rc = sd__agg_sinks(c, id, &sinks);

    if (rc != 0) {
        sd__api_internal_error(c->req, "reading the sinks and their statistics", rc);
        return rc;
    }
    json_object_set_new(source, "sinks", sinks);
    return 0;
}

void sd__api_aggregation_sources(struct sd_api_ctx *c)
{
    sd__api_list_entities(c, 0, 0, sd__agg_extend);
}
