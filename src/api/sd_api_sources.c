/* sd_api_sources.c: the source endpoints: list, get, create (task), delete (task; with
 * ?cascade=true the hard delete of sd_api_lifecycle.c).
 *
 * DESIGN: handlers (API loop thread) validate and answer 4xx at once: a bad body 400, an
 * existing id 409, the per-branch limit 422 (a slot reserved at submit, sd_task_quota, so
 * creations still queued count too and no accepted task fails for the limit). The change itself
 * runs as a task on the worker
 * thread: one state-store transaction guarded by revisions (a new source only if its active key
 * is absent, CREATE_REV == 0, so of two parallel creates exactly one commits), then
 * the definitions_changed hook (struct sd_api_hooks). A failed reconcile after a create rolls the
 * source back. Creating over a soft-deleted source of the same id continues its version numbering
 * and drops the deleted copy (the reference's "create or undelete"). Delete is soft: the source and
 * its sinks move from the active to the deleted prefix in one transaction. A task argument is owned
 * by the task. */
#include "api/sd_api_internal.h"
#include "core/sd_alloc.h"
#include "core/sd_error.h"
#include "core/sd_log.h"
#include "core/sd_time.h"
#include "state/sd_state.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sd_source_task {
    struct sd_api *api;
    int64_t project_id;
    int64_t branch_id;
    char source_id[SD_DEFS_ID_MAX + 1];
    json_t *entity; /* create: the stored form to commit */
    struct sd_defs_by by;
};

static struct sd_source_task *sd__task_new(struct sd_api_ctx *c, const char *source_id)
{
    struct sd_source_task *a = sd_xcalloc(1, sizeof(*a));

    a->api = c->api;
    a->project_id = c->project_id;
    a->branch_id = c->branch_id;
    snprintf(a->source_id, sizeof(a->source_id), "%s", source_id);
    a->by = c->by;
    return a;
}

static void sd__task_free(void *arg)
{
    struct sd_source_task *a = arg;

    if (a != NULL) {
        json_decref(a->entity);
        free(a);
    }
}

void sd__api_sources_list(struct sd_api_ctx *c)
{
    sd__api_list_entities(c, 0, 0, NULL);
}

void sd__api_source_get(struct sd_api_ctx *c)
{
    struct sd_buf key = SD_BUF_INIT;
    json_t *stored = NULL;
    int rc;

    sd_defs_source_key(&key, c->project_id, c->branch_id, c->source_id, 0);
    rc = sd__api_load(c->api->state, sd_buf_cstr(&key), &stored, NULL);
    if (rc == SD_ENOTFOUND) {
        sd__api_not_found(c->req, 0, 0, c->source_id);
    } else if (rc != 0) {
        sd__api_internal_error(c->req, "reading the source", rc);
    } else {
        sd_http_send_json(c->req, 200, sd_defs_source_to_api(stored, c->api->source_url), 1);
    }
    json_decref(stored);
    sd_buf_fini(&key);
}

/* Worker thread: commits a new source, then reconciles (rolling back on failure). */
static int sd__source_create_run(void *arg, struct sd_task_outcome *out)
{
    struct sd_source_task *a = arg;
    struct sd_state *st = a->api->state;
    struct sd_buf key = SD_BUF_INIT, deleted_key = SD_BUF_INIT, version_key = SD_BUF_INIT;
    struct sd__api_create cr;
    json_t *prev = NULL;
    struct sd_txn_result res;
    int64_t number = 1;
    int rc;

    memset(&res, 0, sizeof(res));
    sd_defs_source_key(&key, a->project_id, a->branch_id, a->source_id, 0);
    sd_defs_source_key(&deleted_key, a->project_id, a->branch_id, a->source_id, 1);
    memset(&cr, 0, sizeof(cr));
    cr.key = sd_buf_cstr(&key);
    cr.deleted_key = sd_buf_cstr(&deleted_key);
    rc = sd__api_create_predecessor(st, &cr, a->entity, "New source.", &a->by, &prev, &number);
    if (rc != 0) {
        sd_buf_printf(&out->error, "Reading the state failed: %s.", sd_strerror(rc));
        goto out;
    }
    sd_defs_source_version_key(&version_key, a->project_id, a->branch_id, a->source_id, number);
    cr.version_key = sd_buf_cstr(&version_key);
    rc = sd__api_create_commit(st, &cr, a->entity, &res);
    if (rc != 0) {
        sd_buf_printf(&out->error, "Storing the source failed: %s.", sd_strerror(rc));
        goto out;
    }
    if (!res.succeeded) {
        sd_buf_printf(&out->error, SD_API_SOURCE_EXISTS, a->source_id);
        rc = SD_ECONFLICT;
        goto out;
    }

    rc = sd__api_create_reconcile(a->api, &cr, "Source", &out->error);
    if (rc != 0) {
        goto out;
    }
    out->result = "Source has been created successfully.";
    out->outputs =
        sd__api_task_outputs(a->api->api_url, a->project_id, a->branch_id, a->source_id, NULL, 1);

out:
    sd_txn_result_free(&res);
    json_decref(prev);
    sd_buf_fini(&key);
    sd_buf_fini(&deleted_key);
    sd_buf_fini(&version_key);
    return rc;
}

void sd__api_source_create(struct sd_api_ctx *c)
{
    struct sd_defs_source_input in;
    struct sd_defs_err err;
    struct sd_buf key = SD_BUF_INIT, prefix = SD_BUF_INIT;
    struct sd_task_spec spec;
    struct sd_task_quota quota;
    struct sd_source_task *a;
    struct sd_kv kv;
    char secret[SD_DEFS_SECRET_LEN + 1];
    char *object_key = NULL, *lock_key = NULL, *exists = NULL;
    json_t *body = sd__api_body(c);
    int rc;

    if (body == NULL) {
        return;
    }
    if (sd_defs_parse_source_create(body, &in, &err) != 0) {
        sd__api_validation_error(c->req, &err);
        goto out;
    }
    sd__api_quota(c, in.source_id, NULL, &prefix, &key, &quota);
    memset(&kv, 0, sizeof(kv));
    rc = sd_state_get(c->api->state, quota.key, &kv);
    sd_kv_free(&kv);
    if (rc == 0) {
        sd__api_error(c->req, 409, "sourceAlreadyExists", SD_API_SOURCE_EXISTS, in.source_id);
        goto out;
    }
    if (rc != SD_ENOTFOUND) {
        sd__api_internal_error(c->req, "reading sources", rc);
        goto out;
    }

    a = sd__task_new(c, in.source_id);
    sd_defs_new_secret(secret);
    a->entity = sd_defs_source_build(c->project_id, c->branch_id, &in, secret, &c->by, sd_now_ms());
    explicit_bzero(secret, sizeof(secret));
    object_key = sd_xasprintf("%" PRId64 "/%s", c->branch_id, in.source_id);
    lock_key = sd_xasprintf("source/%" PRId64 "/%" PRId64 "/%s", c->project_id, c->branch_id,
                            in.source_id);
    memset(&spec, 0, sizeof(spec));
    spec.project_id = c->project_id;
    spec.type = "api.create.source";
    spec.object_key = object_key;
    spec.lock_key = lock_key;
    spec.fn = sd__source_create_run;
    spec.arg = a;
    spec.free_arg = sd__task_free;
    spec.quota = &quota;
    exists = sd_xasprintf(SD_API_SOURCE_EXISTS, in.source_id);
    sd__api_submit(c, &spec, "sourceAlreadyExists", exists);

out:
    free(exists);
    free(object_key);
    free(lock_key);
    sd_buf_fini(&key);
    sd_buf_fini(&prefix);
    json_decref(body);
}

/* Worker thread: moves the source and its sinks to the deleted prefix, then reconciles. */
static int sd__source_delete_run(void *arg, struct sd_task_outcome *out)
{
    struct sd_source_task *a = arg;
    struct sd_state *st = a->api->state;
    struct sd_buf key = SD_BUF_INIT, deleted_key = SD_BUF_INIT, sinks_prefix = SD_BUF_INIT;
    struct sd_buf rerr = SD_BUF_INIT;
    struct sd_buf *sink_keys = NULL;
    struct sd_kvs sinks;
    struct sd_cmp *cmps = NULL;
    struct sd_op *ops = NULL;
    char **texts = NULL;
    struct sd_txn txn;
    struct sd_txn_result res;
    json_t *source = NULL;
    int64_t rev = 0, now = sd_now_ms();
    size_t ncmps = 0, nops = 0, ntexts = 0;
    int rc;

    memset(&sinks, 0, sizeof(sinks));
    memset(&res, 0, sizeof(res));
    sd_defs_source_key(&key, a->project_id, a->branch_id, a->source_id, 0);
    sd_defs_source_key(&deleted_key, a->project_id, a->branch_id, a->source_id, 1);
    sd_defs_sinks_prefix(&sinks_prefix, a->project_id, a->branch_id, a->source_id, 0);
    rc = sd__api_load(st, sd_buf_cstr(&key), &source, &rev);
    if (rc == SD_ENOTFOUND) {
        sd_buf_printf(&out->error, SD_API_SOURCE_NOT_FOUND, a->source_id);
        goto out;
    }
    if (rc == 0) {
        rc = sd_state_range(st, sd_buf_cstr(&sinks_prefix), 0, &sinks);
    }
    if (rc != 0) {
        sd_buf_printf(&out->error, "Reading the state failed: %s.", sd_strerror(rc));
        goto out;
    }
    if (sinks.n + 3 > SD_STATE_MAX_TXN_OPS) {
        sd_buf_printf(&out->error, "The source has too many sinks (%zu) to be deleted at once.",
                      sinks.n);
        rc = SD_ELIMIT;
        goto out;
    }
    cmps = sd_xcalloc(sinks.n + 1, sizeof(*cmps));
    ops = sd_xcalloc(sinks.n + 3, sizeof(*ops));
    texts = sd_xcalloc(sinks.n + 1, sizeof(*texts));
    sink_keys = sd_xcalloc(sinks.n + 1, sizeof(*sink_keys));

    cmps[ncmps].key = sd_buf_cstr(&key);
    cmps[ncmps].target = SD_CMP_MOD_REV;
    cmps[ncmps].result = SD_CMP_EQUAL;
    cmps[ncmps++].num = rev;
    sd_defs_set_deleted(source, &a->by, now);
    texts[ntexts] = sd__api_dump(source);
    ops[nops].type = SD_OP_DELETE;
    ops[nops++].key = sd_buf_cstr(&key);
    ops[nops].type = SD_OP_PUT;
    ops[nops].key = sd_buf_cstr(&deleted_key);
    ops[nops].value = texts[ntexts];
    ops[nops++].value_len = strlen(texts[ntexts++]);
    ops[nops].type = SD_OP_DELETE_PREFIX;
    ops[nops++].key = sd_buf_cstr(&sinks_prefix);
    for (size_t i = 0; i < sinks.n; i++) {
        json_t *sink = json_loadb(sinks.items[i].value, sinks.items[i].value_len, 0, NULL);
        const char *sink_id = sinks.items[i].key + sinks_prefix.len;

        cmps[ncmps].key = sinks.items[i].key;
        cmps[ncmps].target = SD_CMP_MOD_REV;
        cmps[ncmps].result = SD_CMP_EQUAL;
        cmps[ncmps++].num = sinks.items[i].mod_rev;
        if (sink == NULL) {
            continue;
        }
        sd_defs_set_deleted(sink, &a->by, now);
        texts[ntexts] = sd__api_dump(sink);
        json_decref(sink);
        sd_defs_sink_key(&sink_keys[i], a->project_id, a->branch_id, a->source_id, sink_id, 1);
        ops[nops].type = SD_OP_PUT;
        ops[nops].key = sd_buf_cstr(&sink_keys[i]);
        ops[nops].value = texts[ntexts];
        ops[nops++].value_len = strlen(texts[ntexts++]);
    }
    memset(&txn, 0, sizeof(txn));
    txn.cmps = cmps;
    txn.ncmps = ncmps;
    txn.then_ops = ops;
    txn.nthen = nops;
    rc = sd_state_txn(st, &txn, &res);
    if (rc != 0) {
        sd_buf_printf(&out->error, "Deleting the source failed: %s.", sd_strerror(rc));
        goto out;
    }
    if (!res.succeeded) {
        sd_buf_append_str(&out->error, "The source was changed concurrently, please retry.");
        rc = SD_ECONFLICT;
        goto out;
    }
    rc = sd__api_definitions_changed(a->api, &rerr);
    if (rc != 0) {
        sd_buf_printf(&out->error, "Source has been deleted, but storage was not updated: %s",
                      sd_buf_cstr(&rerr));
        goto out;
    }
    out->result = "Source has been deleted successfully.";
    out->outputs =
        sd__api_task_outputs(a->api->api_url, a->project_id, a->branch_id, a->source_id, NULL, 1);

out:
    for (size_t i = 0; i < ntexts; i++) {
        free(texts[i]);
    }
    for (size_t i = 0; sink_keys != NULL && i < sinks.n; i++) {
        sd_buf_fini(&sink_keys[i]);
    }
    free(texts);
    free(sink_keys);
    free(cmps);
    free(ops);
    sd_txn_result_free(&res);
    sd_kvs_free(&sinks);
    json_decref(source);
    sd_buf_fini(&key);
    sd_buf_fini(&deleted_key);
    sd_buf_fini(&sinks_prefix);
    sd_buf_fini(&rerr);
    return rc;
}

void sd__api_source_delete(struct sd_api_ctx *c)
{
    struct sd_buf key = SD_BUF_INIT;
    struct sd_task_spec spec;
    struct sd_kv kv;
    char *object_key, *lock_key, *conflict;
    int cascade;
    int rc;

    if (sd__api_query_bool(c->req, "cascade", &cascade) != 0) {
        return;
    }
    if (cascade) {
        sd__api_source_hard_delete(c);
        return;
    }
    sd_defs_source_key(&key, c->project_id, c->branch_id, c->source_id, 0);
    memset(&kv, 0, sizeof(kv));
    rc = sd_state_get(c->api->state, sd_buf_cstr(&key), &kv);
    sd_kv_free(&kv);
    sd_buf_fini(&key);
    if (rc == SD_ENOTFOUND) {
        sd__api_not_found(c->req, 0, 0, c->source_id);
        return;
    }
    if (rc != 0) {
        sd__api_internal_error(c->req, "reading the source", rc);
        return;
    }
    object_key = sd_xasprintf("%" PRId64 "/%s", c->branch_id, c->source_id);
    lock_key = sd_xasprintf("source/%" PRId64 "/%" PRId64 "/%s", c->project_id, c->branch_id,
                            c->source_id);
    conflict = sd_xasprintf("Another task is already running on source \"%s\".", c->source_id);
    memset(&spec, 0, sizeof(spec));
    spec.project_id = c->project_id;
    spec.type = "api.delete.source";
    spec.object_key = object_key;
    spec.lock_key = lock_key;
    spec.fn = sd__source_delete_run;
    spec.arg = sd__task_new(c, c->source_id);
    spec.free_arg = sd__task_free;
    sd__api_submit(c, &spec, "conflict", conflict);
    free(object_key);
    free(lock_key);
    free(conflict);
}
