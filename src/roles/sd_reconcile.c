/* sd_reconcile.c: reconciliation of storage and routing with the stored definitions.
 *
 * DESIGN: the definitions in the state store are the only truth. Reconcile reads every active
 * source and sink, gives the enabled sinks a slot in storage (writing the slices the coordinator
 * opened for this node), compiles their mappings into a new routing table, publishes it to the
 * data endpoint, and only then closes the sinks that are no longer wanted, so no request can see
 * a closed slot. It runs
 * at start-up and after each committed API change, serialized by the node's slot lock. */
#include "roles/sd_reconcile.h"
#include "core/sd_alloc.h"
#include "core/sd_error.h"
#include "core/sd_log.h"
#include "defs/sd_settings.h"
#include "pipeline/sd_mapping.h"
#include "source/sd_ingest.h"
#include "state/sd_state.h"
#include "storage/sd_storage.h"
#include "tables/sd_tables.h"

#include <stdlib.h>
#include <string.h>

struct sd_reconcile {
    const struct sd_config *cfg;
    struct sd_state *state;
    struct sd_storage *storage;
    struct sd_ingest *ingest;
    struct sd_tables *tables;
    pthread_mutex_t *slots_lock;
};

struct sd_reconcile *sd_reconcile_create(const struct sd_config *cfg, struct sd_state *state,
                                         struct sd_storage *storage, struct sd_ingest *ingest,
                                         struct sd_tables *tables, pthread_mutex_t *slots_lock)
{
    struct sd_reconcile *rec = sd_xcalloc(1, sizeof(*rec));

    rec->cfg = cfg;
    rec->state = state;
    rec->storage = storage;
    rec->ingest = ingest;
    rec->tables = tables;
    rec->slots_lock = slots_lock;
    return rec;
}

void sd_reconcile_destroy(struct sd_reconcile *rec)
{
    free(rec);
}

static json_t *sd__load_all(struct sd_reconcile *rec, const char *prefix)
{
    json_t *out = json_array();
    struct sd_kvs kvs;

    memset(&kvs, 0, sizeof(kvs));
    if (sd_state_range(rec->state, prefix, 0, &kvs) != 0) {
        return out;
    }
    for (size_t i = 0; i < kvs.n; i++) {
        json_t *j = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
        if (j != NULL) {
            json_array_append_new(out, j);
        }
    }
    sd_kvs_free(&kvs);
    return out;
}

static int sd__cmp_sources(const void *a, const void *b)
{
    const struct sd_route_source *x = a, *y = b;
    if (x->project_id != y->project_id) {
        return x->project_id < y->project_id ? -1 : 1;
    }
    return strcmp(x->source_id, y->source_id);
}

static int sd__cmp_sinks(const void *a, const void *b)
{
    const struct sd_route_sink *x = a, *y = b;
    return strcmp(x->sink_id, y->sink_id);
}

static int sd__same_source(const json_t *sink, const struct sd_route_source *src)
{
    return json_integer_value(json_object_get(sink, "projectId")) == src->project_id &&
           json_integer_value(json_object_get(sink, "branchId")) == src->branch_id &&
           strcmp(json_string_value(json_object_get(sink, "sourceId")) ?: "", src->source_id) == 0;
}

static char *sd__sink_key(const json_t *sink)
{
    return sd_xasprintf("%lld/%lld/%s/%s",
                        (long long)json_integer_value(json_object_get(sink, "projectId")),
                        (long long)json_integer_value(json_object_get(sink, "branchId")),
                        json_string_value(json_object_get(sink, "sourceId")) ?: "",
                        json_string_value(json_object_get(sink, "sinkId")) ?: "");
}

/* Adds the enabled sinks of src to its route, activating them in storage. */
static int sd__route_sinks(struct sd_reconcile *rec, const json_t *src_json, json_t *sinks,
                           struct sd_route_source *src, json_t *wanted, struct sd_buf *err)
{
    size_t i;
    json_t *sink;
    int rc = 0;

    src->sinks = sd_xcalloc(json_array_size(sinks) + 1, sizeof(*src->sinks));
    json_array_foreach(sinks, i, sink)
    {
        struct sd_route_sink *rs = &src->sinks[src->nsinks];
        struct sd_buf merr = SD_BUF_INIT;
        json_t *columns;
        char *key;
        int r;

        if (!sd__same_source(sink, src) || json_object_get(sink, "disabled") != NULL) {
            continue;
        }
        columns =
            json_object_get(json_object_get(json_object_get(sink, "table"), "mapping"), "columns");
        r = sd_mapping_compile(columns, &rs->mapping, &merr);
        if (r == 0 && rec->tables != NULL) {
            r = sd_tables_ensure_mapping_table(
                rec->tables, json_integer_value(json_object_get(sink, "projectId")),
                json_string_value(json_object_get(json_object_get(sink, "table"), "tableId")),
                columns, &merr);
            if (r != 0) {
                sd_mapping_destroy(rs->mapping);
                rs->mapping = NULL;
            }
        }
        if (r == 0) {
            json_t *settings = sd_settings_snapshot(rec->cfg, src_json, sink);
            r = sd_storage_sink_activate(rec->storage, sink, settings, &rs->slot);
            json_decref(settings);
        }
        if (r != 0) {
            sd_log_error("reconcile", "sink %s/%s cannot be activated: %s", src->source_id,
                         json_string_value(json_object_get(sink, "sinkId")), sd_buf_cstr(&merr));
            if (rc == 0) {
                sd_buf_append(err, merr.data, merr.len);
                rc = r;
            }
            sd_buf_fini(&merr);
            continue;
        }
        sd_buf_fini(&merr);
        src->has_template |= sd_mapping_has_template(rs->mapping);
        rs->sink_id = sd_xstrdup(json_string_value(json_object_get(sink, "sinkId")));
        key = sd__sink_key(sink);
        json_object_set_new(wanted, key, json_true());
        free(key);
        src->nsinks++;
    }
    qsort(src->sinks, src->nsinks, sizeof(*src->sinks), sd__cmp_sinks);
    return rc;
}

int sd_reconcile_run(struct sd_reconcile *rec, struct sd_buf *err)
{
    json_t *sources, *sinks, *wanted, *active, *src_json;
    struct sd_routes *routes;
    size_t i;
    int rc = 0;

    pthread_mutex_lock(rec->slots_lock);
    sources = sd__load_all(rec, "definition/source/active/");
    sinks = sd__load_all(rec, "definition/sink/active/");
    wanted = json_object(); /* {sinkKey: true} */
    routes = sd_xcalloc(1, sizeof(*routes));
    routes->sources = sd_xcalloc(json_array_size(sources) + 1, sizeof(*routes->sources));
    json_array_foreach(sources, i, src_json)
    {
        struct sd_route_source *src = &routes->sources[routes->n++];
        const char *secret =
            json_string_value(json_object_get(json_object_get(src_json, "http"), "secret"));
        int r;

        src->project_id = json_integer_value(json_object_get(src_json, "projectId"));
        src->branch_id = json_integer_value(json_object_get(src_json, "branchId"));
        src->source_id = sd_xstrdup(json_string_value(json_object_get(src_json, "sourceId")) ?: "");
        snprintf(src->secret, sizeof(src->secret), "%s", secret ? secret : "");
        src->is_enabled = json_object_get(src_json, "disabled") == NULL;
        if (src->is_enabled && rec->storage != NULL) {
            r = sd__route_sinks(rec, src_json, sinks, src, wanted, err);
            sd_ingest_route_metrics(src);
            if (r != 0 && rc == 0) {
                rc = r;
            }
        }
    }
    qsort(routes->sources, routes->n, sizeof(*routes->sources), sd__cmp_sources);
    if (rec->storage != NULL) {
        sd_storage_sync_slices(rec->storage); /* new slots open their writers before routing */
    }
    if (rec->ingest != NULL) {
        sd_ingest_publish(rec->ingest, routes);
    } else {
        sd_routes_free(routes);
    }
    if (rec->storage != NULL) {
        active = sd_storage_active_sinks(rec->storage);
        int closed = 0;
        json_array_foreach(active, i, src_json)
        {
            const char *key = json_string_value(src_json);
            if (json_object_get(wanted, key) == NULL) {
                sd_storage_sink_deactivate(rec->storage, key);
                closed = 1;
            }
        }
        json_decref(active);
        if (closed) {
            sd_storage_sync_slices(rec->storage); /* report the closes (close-sync) */
        }
    }
    json_decref(wanted);
    json_decref(sources);
    json_decref(sinks);
    pthread_mutex_unlock(rec->slots_lock);
    return rc;
}
