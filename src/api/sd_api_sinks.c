/* sd_api_sinks.c: the table sink endpoints of a source: list, get, create (task), delete (task).
 *
 * DESIGN: as for sources (sd_api_sources.c): handlers answer 4xx at once (400 for a bad body,
 * a column mapping that pipeline/sd_mapping rejects or a table that exists, or that a queued
 * task will make, with other columns or another case of its name (sd__api_check_sink and the
 * task's claim, also used by update, enable, undelete and rollback), 404 for a missing
 * source, 409 for an existing sink, 422 over 100 sinks, counting the creations still queued as
 * in sd_api_sources.c); the worker commits one transaction
 * guarded by the sink's CREATE_REV == 0 and the parent source's revision (a sink is never
 * created under a source that was deleted meanwhile), then calls the definitions_changed
 * hook (in one process, reconciliation, which opens the sink's file). When that fails the sink is
 * rolled back, so a sink that exists can also be written. */
#include "api/sd_api_internal.h"
#include "core/sd_alloc.h"
#include "core/sd_error.h"
#include "core/sd_log.h"
#include "core/sd_time.h"
#include "pipeline/sd_mapping.h"
#include "state/sd_state.h"
#include "tables/sd_tables.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sd_sink_task {
    struct sd_api *api;
    int64_t project_id;
    int64_t branch_id;
    char source_id[SD_DEFS_ID_MAX + 1];
    char sink_id[SD_DEFS_ID_MAX + 1];
    json_t *entity; /* create: the stored form to commit */
    struct sd_defs_by by;
};

static struct sd_sink_task *sd__task_new(struct sd_api_ctx *c, const char *sink_id)
{
    struct sd_sink_task *a = sd_xcalloc(1, sizeof(*a));

    a->api = c->api;
    a->project_id = c->project_id;
    a->branch_id = c->branch_id;
    snprintf(a->source_id, sizeof(a->source_id), "%s", c->source_id);
    snprintf(a->sink_id, sizeof(a->sink_id), "%s", sink_id);
    a->by = c->by;
    return a;
}

static void sd__task_free(void *arg)
{
    struct sd_sink_task *a = arg;

    if (a != NULL) {
        json_decref(a->entity);
        free(a);
    }
}

/* Reads the revision of the active source of c (404 sent when missing). */
static int sd__require_source(struct sd_api_ctx *c)
{
    struct sd_buf key = SD_BUF_INIT;
    struct sd_kv kv;
    int rc;

    sd_defs_source_key(&key, c->project_id, c->branch_id, c->source_id, 0);
    memset(&kv, 0, sizeof(kv));
    rc = sd_state_get(c->api->state, sd_buf_cstr(&key), &kv);
    sd_kv_free(&kv);
    sd_buf_fini(&key);
    if (rc == SD_ENOTFOUND) {
        sd__api_not_found(c->req, 0, 0, c->source_id);
    } else if (rc != 0) {
        sd__api_internal_error(c->req, "reading the source", rc);
    }
    return rc;
}

void sd__api_sinks_list(struct sd_api_ctx *c)
{
    sd__api_list_entities(c, 1, 0, NULL);
}

void sd__api_sink_get(struct sd_api_ctx *c)
{
    struct sd_buf key = SD_BUF_INIT;
    json_t *stored = NULL;
    int rc;

    if (sd__require_source(c) != 0) {
        return;
    }
    sd_defs_sink_key(&key, c->project_id, c->branch_id, c->source_id, c->sink_id, 0);
    rc = sd__api_load(c->api->state, sd_buf_cstr(&key), &stored, NULL);
    if (rc == SD_ENOTFOUND) {
        sd__api_not_found(c->req, 1, 0, c->sink_id);
    } else if (rc != 0) {
        sd__api_internal_error(c->req, "reading the sink", rc);
    } else {
        sd_http_send_json(c->req, 200, sd_defs_sink_to_api(stored), 1);
    }
    json_decref(stored);
    sd_buf_fini(&key);
}

/* Worker thread: commits a new sink, then reconciles (rolling back on failure). */
static int sd__sink_create_run(void *arg, struct sd_task_outcome *out)
{
    struct sd_sink_task *a = arg;
    struct sd_state *st = a->api->state;
    struct sd_buf key = SD_BUF_INIT, deleted_key = SD_BUF_INIT, version_key = SD_BUF_INIT;
    struct sd_buf source_key = SD_BUF_INIT;
    struct sd__api_create cr;
    json_t *prev = NULL;
    struct sd_txn_result res;
    struct sd_kv kv;
    int64_t source_rev = 0, number = 1;
    int rc;

    memset(&res, 0, sizeof(res));
    memset(&kv, 0, sizeof(kv));
    sd_defs_source_key(&source_key, a->project_id, a->branch_id, a->source_id, 0);
    sd_defs_sink_key(&key, a->project_id, a->branch_id, a->source_id, a->sink_id, 0);
    sd_defs_sink_key(&deleted_key, a->project_id, a->branch_id, a->source_id, a->sink_id, 1);
    rc = sd_state_get(st, sd_buf_cstr(&source_key), &kv);
    source_rev = kv.mod_rev;
    sd_kv_free(&kv);
    if (rc == SD_ENOTFOUND) {
        sd_buf_printf(&out->error, SD_API_SOURCE_NOT_FOUND, a->source_id);
        goto out;
    }
    memset(&cr, 0, sizeof(cr));
    cr.key = sd_buf_cstr(&key);
    cr.deleted_key = sd_buf_cstr(&deleted_key);
    if (rc == 0) {
        rc = sd__api_create_predecessor(st, &cr, a->entity, "New sink.", &a->by, &prev, &number);
    }
    if (rc != 0) {
        sd_buf_printf(&out->error, "Reading the state failed: %s.", sd_strerror(rc));
        goto out;
    }
    sd_defs_sink_version_key(&version_key, a->project_id, a->branch_id, a->source_id, a->sink_id,
                             number);
    cr.version_key = sd_buf_cstr(&version_key);
    cr.guard_key = sd_buf_cstr(&source_key);
    cr.guard_rev = source_rev;
    rc = sd__api_create_commit(st, &cr, a->entity, &res);
    if (rc != 0) {
        sd_buf_printf(&out->error, "Storing the sink failed: %s.", sd_strerror(rc));
        goto out;
    }
    if (!res.succeeded) {
        rc = sd_state_get(st, sd_buf_cstr(&key), &kv);
        sd_kv_free(&kv);
        if (rc == 0) {
            sd_buf_printf(&out->error, SD_API_SINK_EXISTS, a->sink_id);
        } else {
            sd_buf_append_str(&out->error, "The source was changed concurrently, please retry.");
        }
        rc = SD_ECONFLICT;
        goto out;
    }

    rc = sd__api_create_reconcile(a->api, &cr, "Sink", &out->error);
    if (rc != 0) {
        goto out;
    }
    out->result = "Sink has been created successfully.";
    out->outputs = sd__api_task_outputs(a->api->api_url, a->project_id, a->branch_id, a->source_id,
                                        a->sink_id, 1);

out:
    sd_txn_result_free(&res);
    json_decref(prev);
    sd_buf_fini(&key);
    sd_buf_fini(&deleted_key);
    sd_buf_fini(&version_key);
    sd_buf_fini(&source_key);
    return rc;
}

/* The claim's check (struct sd_task_claim), run at submit: the same test reconcile makes when
 * it opens the table, plus the tables other running tasks are making. */
static int sd__table_check(void *arg, const char *held)
{
    struct sd__api_table_claim *tc = arg;
    struct sd_buf err = SD_BUF_INIT;
    int rc;

    if (held != NULL) {
        sd_buf_printf(&tc->why,
                      "Invalid %s: a task still running sets table \"%s\" up with other columns "
                      "or another spelling; retry when it has finished.",
                      tc->where, tc->table_id);
        return SD_EINVAL;
    }
    rc = sd_tables_check_table(tc->tables, tc->project_id, tc->table_id, tc->schema, &err);
    if (rc == SD_ECONFLICT || rc == SD_EINVAL) {
        sd_buf_printf(&tc->why, "Invalid %s: %s.", tc->where, sd_buf_cstr(&err));
        rc = SD_EINVAL;
    }
    sd_buf_fini(&err);
    return rc;
}

/* When err is sd_mapping_compile's "a template does not compile" message
 * ("\"columns[N].template\" is invalid: L:C: message"), answers it as the reference words it,
 * 'Column "<name>" template is invalid: L:C Message.' (go-jsonnet's "L:C-E Message"; our
 * engine reports no end column, so only an unknown variable, whose span is its name, gets one),
 * and returns 1; otherwise returns 0. */
static int sd__template_error(struct sd_api_ctx *c, const json_t *columns, const char *err)
{
    static const char marker[] = "].template\" is invalid: ", unknown[] = "unknown variable: ";
    const char *why = strstr(err, marker), *name;
    struct sd_buf msg = SD_BUF_INIT;
    size_t index, pos;
    char *end;

    if (strncmp(err, "\"columns[", 9) != 0 || why == NULL) {
        return 0;
    }
    index = strtoul(err + 9, &end, 10);
    name = json_string_value(json_object_get(json_array_get(columns, index), "name"));
    if (end != why || name == NULL) {
        return 0;
    }
    why += sizeof(marker) - 1;
    sd_buf_printf(&msg, "column \"%s\" template is invalid: ", name);
    /* "L:C: message" -> "L:C Message"; an unknown variable spans its name: "L:C-E Message". */
    pos = strspn(why, "0123456789:");
    if (pos >= 2 && why[pos - 1] == ':' && why[pos] == ' ' && why[pos + 1] != '\0') {
        const char *text = why + pos + 1, *colon = memchr(why, ':', pos - 1);
        sd_buf_append(&msg, why, pos - 1);
        if (strncmp(text, unknown, sizeof(unknown) - 1) == 0 && colon != NULL) {
            sd_buf_printf(&msg, "-%lu",
                          strtoul(colon + 1, NULL, 10) + strlen(text + sizeof(unknown) - 1));
        }
        sd_buf_printf(&msg, " %c%s", (char)toupper((unsigned char)text[0]), text + 1);
    } else {
        sd_buf_append_str(&msg, why);
    }
    sd__api_sentence(&msg);
    sd__api_error(c->req, 400, "badRequest", "%s", sd_buf_cstr(&msg));
    sd_buf_fini(&msg);
    return 1;
}

int sd__api_check_sink(struct sd_api_ctx *c, const json_t *sink, const char *where,
                       struct sd__api_table_claim *tc)
{
    const json_t *table = json_object_get(sink, "table");
    const json_t *columns = json_object_get(json_object_get(table, "mapping"), "columns");
    const char *table_id = json_string_value(json_object_get(table, "tableId"));
    struct sd_buf err = SD_BUF_INIT, msg = SD_BUF_INIT;
    int rc;

    memset(tc, 0, sizeof(*tc));
    rc = sd_mapping_compile(columns, &tc->mapping, &err);
    if (rc == SD_EINVAL && sd__template_error(c, columns, sd_buf_cstr(&err))) {
        /* answered */
    } else if (rc == SD_EINVAL) {
        sd_buf_printf(&msg, "Invalid %s.mapping.columns: %s", where, sd_buf_cstr(&err));
        sd__api_sentence(&msg);
        sd__api_error(c->req, 400, "badRequest", "%s", sd_buf_cstr(&msg));
    } else if (rc != 0) {
        sd__api_internal_error(c->req, "compiling the mapping", rc);
    }
    sd_buf_fini(&err);
    sd_buf_fini(&msg);
    if (rc != 0 || c->api->tables == NULL || table_id == NULL) {
        return rc;
    }
    tc->tables = c->api->tables;
    tc->project_id = c->project_id;
    tc->table_id = sd_xstrdup(table_id);
    tc->where = where;
    tc->schema = sd_table_schema_from_json(columns);
    sd_buf_printf(&tc->key, "%" PRId64 "/", c->project_id);
    for (const char *p = table_id; *p != '\0'; p++) {
        sd_buf_append_char(&tc->key, (char)tolower((unsigned char)*p));
    }
    sd_buf_append_str(&tc->value, table_id);
    for (size_t i = 0; i < tc->schema->ncolumns; i++) {
        sd_buf_append_char(&tc->value, '\x1f');
        sd_buf_append_str(&tc->value, tc->schema->columns[i]);
        if (tc->schema->is_pk != NULL && tc->schema->is_pk[i]) {
            sd_buf_append_str(&tc->value, "\x1ePRIMARY KEY");
        }
    }
    tc->claim.key = sd_buf_cstr(&tc->key);
    tc->claim.value = sd_buf_cstr(&tc->value);
    tc->claim.check = sd__table_check;
    tc->claim.arg = tc;
    tc->claim.why = &tc->why;
    return 0;
}

const struct sd_task_claim *sd__api_claim(const struct sd__api_table_claim *tc)
{
    return tc->tables != NULL ? &tc->claim : NULL;
}

void sd__api_table_claim_fini(struct sd__api_table_claim *tc)
{
    sd_mapping_destroy(tc->mapping);
    free(tc->schema);
    free(tc->table_id);
    sd_buf_fini(&tc->key);
    sd_buf_fini(&tc->value);
    sd_buf_fini(&tc->why);
    memset(tc, 0, sizeof(*tc));
}

void sd__api_sink_create(struct sd_api_ctx *c)
{
    struct sd_defs_sink_input in;
    struct sd_defs_err err;
    struct sd_buf key = SD_BUF_INIT, prefix = SD_BUF_INIT;
    struct sd_task_spec spec;
    struct sd_task_quota quota;
    struct sd__api_table_claim tc;
    struct sd_sink_task *a = NULL;
    struct sd_kv kv;
    char *object_key = NULL, *lock_key = NULL, *conflict = NULL, *full_key = NULL;
    json_t *body = sd__api_body(c), *entity = NULL;
    int rc;

    memset(&tc, 0, sizeof(tc));
    if (body == NULL) {
        return;
    }
    if (sd_defs_parse_sink_create(body, &in, &err) != 0) {
        sd__api_validation_error(c->req, &err);
        goto out;
    }
    entity =
        sd_defs_sink_build(c->project_id, c->branch_id, c->source_id, &in, &c->by, sd_now_ms());
    if (sd__require_source(c) != 0) {
        goto out;
    }
    sd__api_quota(c, c->source_id, in.sink_id, &prefix, &key, &quota);
    memset(&kv, 0, sizeof(kv));
    rc = sd_state_get(c->api->state, quota.key, &kv);
    sd_kv_free(&kv);
    if (rc == 0) {
        sd__api_error(c->req, 409, "sinkAlreadyExists", SD_API_SINK_EXISTS, in.sink_id);
        goto out;
    }
    if (rc != SD_ENOTFOUND) {
        sd__api_internal_error(c->req, "reading sinks", rc);
        goto out;
    }
    if (sd__api_check_sink(c, entity, "body.table", &tc) != 0) {
        goto out;
    }

    a = sd__task_new(c, in.sink_id);
    a->entity = entity;
    entity = NULL;
    object_key = sd_xasprintf("%" PRId64 "/%s/%s", c->branch_id, c->source_id, in.sink_id);
    lock_key = sd_xasprintf("sink/%" PRId64 "/%" PRId64 "/%s/%s", c->project_id, c->branch_id,
                            c->source_id, in.sink_id);
    memset(&spec, 0, sizeof(spec));
    spec.project_id = c->project_id;
    spec.type = "api.create.sink";
    spec.object_key = object_key;
    spec.lock_key = lock_key;
    spec.fn = sd__sink_create_run;
    spec.arg = a;
    spec.free_arg = sd__task_free;
    spec.quota = &quota;
    spec.claim = sd__api_claim(&tc);
    /* A create still running holds the lock: the reference names the sink by its full key. */
    full_key = sd_xasprintf("%" PRId64 "/%" PRId64 "/%s/%s", c->project_id, c->branch_id,
                            c->source_id, in.sink_id);
    conflict = sd_xasprintf(SD_API_SINK_EXISTS, full_key);
    sd__api_submit(c, &spec, "sinkAlreadyExists", conflict);

out:
    free(full_key);
    free(conflict);
    sd__api_table_claim_fini(&tc);
    free(object_key);
    free(lock_key);
    sd_buf_fini(&key);
    sd_buf_fini(&prefix);
    json_decref(entity);
    json_decref(body);
}

/* Worker thread: moves the sink to the deleted prefix, then reconciles. */
static int sd__sink_delete_run(void *arg, struct sd_task_outcome *out)
{
    struct sd_sink_task *a = arg;
    struct sd_state *st = a->api->state;
    struct sd_buf key = SD_BUF_INIT, deleted_key = SD_BUF_INIT, rerr = SD_BUF_INIT;
    struct sd_cmp cmp;
    struct sd_op ops[2];
    struct sd_txn txn;
    struct sd_txn_result res;
    json_t *sink = NULL;
    char *text = NULL;
    int64_t rev = 0;
    int rc;

    memset(&res, 0, sizeof(res));
    sd_defs_sink_key(&key, a->project_id, a->branch_id, a->source_id, a->sink_id, 0);
    sd_defs_sink_key(&deleted_key, a->project_id, a->branch_id, a->source_id, a->sink_id, 1);
    rc = sd__api_load(st, sd_buf_cstr(&key), &sink, &rev);
    if (rc == SD_ENOTFOUND) {
        sd_buf_printf(&out->error, SD_API_SINK_NOT_FOUND, a->sink_id);
        goto out;
    }
    if (rc != 0) {
        sd_buf_printf(&out->error, "Reading the state failed: %s.", sd_strerror(rc));
        goto out;
    }
    sd_defs_set_deleted(sink, &a->by, sd_now_ms());
    text = sd__api_dump(sink);
    memset(&cmp, 0, sizeof(cmp));
    cmp.key = sd_buf_cstr(&key);
    cmp.target = SD_CMP_MOD_REV;
    cmp.result = SD_CMP_EQUAL;
    cmp.num = rev;
    memset(ops, 0, sizeof(ops));
    ops[0].type = SD_OP_DELETE;
    ops[0].key = sd_buf_cstr(&key);
    ops[1].type = SD_OP_PUT;
    ops[1].key = sd_buf_cstr(&deleted_key);
    ops[1].value = text;
    ops[1].value_len = strlen(text);
    memset(&txn, 0, sizeof(txn));
    txn.cmps = &cmp;
    txn.ncmps = 1;
    txn.then_ops = ops;
    txn.nthen = 2;
    rc = sd_state_txn(st, &txn, &res);
    if (rc != 0) {
        sd_buf_printf(&out->error, "Deleting the sink failed: %s.", sd_strerror(rc));
        goto out;
    }
    if (!res.succeeded) {
        sd_buf_append_str(&out->error, "The sink was changed concurrently, please retry.");
        rc = SD_ECONFLICT;
        goto out;
    }
    rc = sd__api_definitions_changed(a->api, &rerr);
    if (rc != 0) {
        sd_buf_printf(&out->error, "Sink has been deleted, but storage was not updated: %s",
                      sd_buf_cstr(&rerr));
        goto out;
    }
    out->result = "Sink has been deleted successfully.";
    out->outputs = sd__api_task_outputs(a->api->api_url, a->project_id, a->branch_id, a->source_id,
                                        a->sink_id, 1);

out:
    sd_txn_result_free(&res);
    json_decref(sink);
    free(text);
    sd_buf_fini(&key);
    sd_buf_fini(&deleted_key);
    sd_buf_fini(&rerr);
    return rc;
}

void sd__api_sink_delete(struct sd_api_ctx *c)
{
    struct sd_buf key = SD_BUF_INIT;
    struct sd_task_spec spec;
    struct sd_kv kv;
    char *object_key, *lock_key, *conflict;
    int rc;

    if (sd__require_source(c) != 0) {
        return;
    }
    sd_defs_sink_key(&key, c->project_id, c->branch_id, c->source_id, c->sink_id, 0);
    memset(&kv, 0, sizeof(kv));
    rc = sd_state_get(c->api->state, sd_buf_cstr(&key), &kv);
    sd_kv_free(&kv);
    sd_buf_fini(&key);
    if (rc == SD_ENOTFOUND) {
        sd__api_not_found(c->req, 1, 0, c->sink_id);
        return;
    }
    if (rc != 0) {
        sd__api_internal_error(c->req, "reading the sink", rc);
        return;
    }
    object_key = sd_xasprintf("%" PRId64 "/%s/%s", c->branch_id, c->source_id, c->sink_id);
    lock_key = sd_xasprintf("sink/%" PRId64 "/%" PRId64 "/%s/%s", c->project_id, c->branch_id,
                            c->source_id, c->sink_id);
    conflict = sd_xasprintf("Another task is already running on sink \"%s\".", c->sink_id);
    memset(&spec, 0, sizeof(spec));
    spec.project_id = c->project_id;
    spec.type = "api.delete.sink";
    spec.object_key = object_key;
    spec.lock_key = lock_key;
    spec.fn = sd__sink_delete_run;
    spec.arg = sd__task_new(c, c->sink_id);
    spec.free_arg = sd__task_free;
    sd__api_submit(c, &spec, "conflict", conflict);
    free(object_key);
    free(lock_key);
    free(conflict);
}
