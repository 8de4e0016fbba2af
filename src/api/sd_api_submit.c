/* sd_api_submit.c: submitting an API change as an asynchronous task (sd_tasks) and answering
 * 202 with it, or the reference's 409/422/400/503 answers; the entity-scoped lock and object
 * keys, quotas and the task's "outputs" object. */
#include "api/sd_api_internal.h"
#include "core/sd_alloc.h"
#include "core/sd_error.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

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
