/* sd_api_versions.c: the version endpoints of sources and sinks (reference §2.3, §2.5): the
 * version list, one version's detail, and the rollback to a version (a task).
 *
 * DESIGN: every committed change of an entity also writes its version record (sd_defs.h keys
 * ".../version/.../<10-digit number>"), the stored entity without secrets. The list and the
 * detail answer the "version" member of those records. The list pages by version number: afterId
 * and lastId are the 10-digit numbers of the keys (afterId also accepts a plain number).
 * A rollback never rewrites history: the worker reads the current entity and the record of the
 * target version, builds the entity from the record's content (keeping the ids, the secret, the
 * created, disabled and deleted members of the current entity) and commits it as the next
 * version 'Rollback to version "N".' with its record, in one transaction guarded by the entity's
 * revision (retried on a concurrent change). A sink rollback then rotates the sink's file, so
 * the restored mapping and settings apply from the new file. When the restored table differs
 * and the sink has an open file, the rollback is committed with the sink held disabled first and
 * enabled after a reconcile closed the old file (as an update does), so no record mapped with
 * the restored definition lands in a file of the old table. When the restored definition cannot
 * be written (its table now has other columns), the previous definition is put back and the new
 * version record removed: the task fails and nothing changed. A source rollback that changes
 * the source's settings rotates the files of all its sinks, as a settings change does. */
#include "api/sd_api_internal.h"
#include "core/sd_alloc.h"
#include "core/sd_error.h"
#include "core/sd_log.h"
#include "core/sd_time.h"
#include "state/sd_state.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SD_ROLLBACK_MAX_ATTEMPTS 5
#define SD_ROLLBACK_REASON "Rolling back the sink."

struct sd_rollback_task {
    struct sd_api *api;
    int64_t project_id;
    int64_t branch_id;
    char source_id[SD_DEFS_ID_MAX + 1];
    char sink_id[SD_DEFS_ID_MAX + 1]; /* "" for a source */
    int64_t number;                   /* the version to roll back to */
    struct sd_defs_by by;
};

/* Writes the key of version number of a source, or of a sink when sink_id is not "". */
static void sd__version_key(struct sd_buf *out, int64_t project, int64_t branch,
                            const char *source_id, const char *sink_id, int64_t number)
{
    if (sink_id[0] != '\0') {
        sd_defs_sink_version_key(out, project, branch, source_id, sink_id, number);
    } else {
        sd_defs_source_version_key(out, project, branch, source_id, number);
    }
}

/* Loads the active entity of c: 0, or nonzero with the 404/500 sent. */
static int sd__require_entity(struct sd_api_ctx *c, int is_sink, json_t **out, int64_t *rev)
{
    return is_sink ? sd__api_get_sink(c, out, rev) : sd__api_get_source(c, out, rev);
}

/* Parses a decimal version number ("3" or "0000000003"). Returns 0 with *out, or SD_EINVAL. */
static int sd__parse_number(const char *s, int64_t *out)
{
    char *end;
    long long n;

    if (*s < '0' || *s > '9') {
        return SD_EINVAL;
    }
    errno = 0;
    n = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        return SD_EINVAL;
    }
    *out = n;
    return 0;
}

/* Reads {versionNumber} from the path: the segment after the last "versions" segment. Sends 400
 * and returns nonzero when it is not an integer >= 1. */
static int sd__version_param(struct sd_api_ctx *c, int64_t *out)
{
    struct sd_str path = sd_http_path(c->req);
    struct sd_buf seg = SD_BUF_INIT;
    struct sd_str raw = {NULL, 0};
    size_t i = 0;
    int rc;

    while (i < path.len) {
        size_t start = i + 1, end = start;
        while (end < path.len && path.p[end] != '/') {
            end++;
        }
        if (end - start == 8 && memcmp(path.p + start, "versions", 8) == 0 && end < path.len) {
            size_t vend = end + 1;
            while (vend < path.len && path.p[vend] != '/') {
                vend++;
            }
            raw.p = path.p + end + 1;
            raw.len = vend - end - 1;
        }
        i = end;
    }
    if (raw.p != NULL && sd_http_url_decode(raw, &seg) != 0) {
        sd_buf_reset(&seg);
        sd_buf_append(&seg, raw.p, raw.len);
    }
    rc = sd__api_int_param(c->req, "versionNumber", sd_buf_cstr(&seg), 1, INT64_MAX, out);
    sd_buf_fini(&seg);
    return rc;
}

/* Loads version record number of the entity of c. Sends 404 sourceVersionNotFound or
 * sinkVersionNotFound (or 500) and returns nonzero on failure. */
static int sd__load_version(struct sd_api_ctx *c, int is_sink, int64_t number, json_t **out)
{
    struct sd_buf key = SD_BUF_INIT;
    int rc;

    sd__version_key(&key, c->project_id, c->branch_id, c->source_id, is_sink ? c->sink_id : "",
                    number);
    rc = sd__api_load(c->api->state, sd_buf_cstr(&key), out, NULL);
    sd_buf_fini(&key);
    if (rc == SD_ENOTFOUND) {
        if (is_sink) {
            sd__api_error(c->req, 404, "sinkVersionNotFound",
                          "Sink version \"%s/%010" PRId64 "\" not found in the source.", c->sink_id,
                          number);
        } else {
            sd__api_error(c->req, 404, "sourceVersionNotFound",
                          "Source version \"%s/%010" PRId64 "\" not found in the branch.",
                          c->source_id, number);
        }
    } else if (rc != 0) {
        sd__api_internal_error(c->req, "reading the version", rc);
    }
    return rc;
}

/* Returns the Version object of a record (new reference). */
static json_t *sd__version_json(const json_t *record)
{
    json_t *v = json_object_get(record, "version");

    return json_is_object(v) ? json_deep_copy(v) : json_object();
}

static void sd__versions_list(struct sd_api_ctx *c, int is_sink)
{
    struct sd_api_page page;
    struct sd_buf prefix = SD_BUF_INIT;
    struct sd_kvs kvs;
    char last_id[24] = "";
    json_t *list, *out;
    int64_t after = 0, count = 0, total = 0;
    int rc;

    memset(&kvs, 0, sizeof(kvs));
    if (sd__api_page(c, &page) != 0) {
        return;
    }
    if (page.after_id[0] != '\0' && sd__parse_number(page.after_id, &after) != 0) {
        sd__api_error(c->req, 400, "badRequest",
                      "Invalid afterId \"%.32s\": expected a version number.", page.after_id);
        return;
    }
    if (sd__require_entity(c, is_sink, NULL, NULL) != 0) {
        return;
    }
    /* The prefix: a version key without its 10-digit number. */
    sd__version_key(&prefix, c->project_id, c->branch_id, c->source_id, is_sink ? c->sink_id : "",
                    0);
    prefix.len -= 10;
    rc = sd_state_range(c->api->state, sd_buf_cstr(&prefix), 0, &kvs);
    if (rc != 0) {
        sd__api_internal_error(c->req, "listing versions", rc);
        goto out;
    }
    list = json_array();
    for (size_t i = 0; i < kvs.n; i++) {
        const char *id = kvs.items[i].key + prefix.len;
        int64_t number = 0;
        json_t *record;
        if (sd__parse_number(id, &number) != 0 || number <= after) {
            continue;
        }
        total++;
        if (count >= page.limit) {
            continue;
        }
        record = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
        if (record == NULL) {
            continue;
        }
        json_array_append_new(list, sd__version_json(record));
        json_decref(record);
        snprintf(last_id, sizeof(last_id), "%s", id);
        count++;
    }
    out = json_object();
    json_object_set_new(out, "versions", list);
    json_object_set_new(out, "page", sd__api_page_json(&page, total, last_id));
    sd_http_send_json(c->req, 200, out, 1);

out:
    sd_kvs_free(&kvs);
    sd_buf_fini(&prefix);
}

static void sd__version_get(struct sd_api_ctx *c, int is_sink)
{
    json_t *record = NULL;
    int64_t number = 0;

    if (sd__version_param(c, &number) != 0 || sd__require_entity(c, is_sink, NULL, NULL) != 0 ||
        sd__load_version(c, is_sink, number, &record) != 0) {
        return;
    }
    sd_http_send_json(c->req, 200, sd__version_json(record), 1);
    json_decref(record);
}

/* Builds the rolled-back entity: the content of record with the identity and lifecycle members
 * (and the secret) of current. Returns a new reference. */
static json_t *sd__rollback_entity(const json_t *current, const json_t *record)
{
    static const char *const kept[] = {"projectId", "branchId", "sourceId", "sinkId",
                                       "created",   "disabled", "deleted",  "version"};
    json_t *entity = json_deep_copy(record);
    json_t *cur_http = json_object_get(current, "http");
    json_t *secret = json_object_get(cur_http, "secret");

    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
        json_t *v = json_object_get(current, kept[i]);
        if (v != NULL) {
            json_object_set_new(entity, kept[i], json_deep_copy(v));
        } else {
            json_object_del(entity, kept[i]);
        }
    }
    if (secret != NULL) {
        json_t *http = json_object_get(entity, "http");
        if (!json_is_object(http)) {
            http = json_object();
            json_object_set_new(entity, "http", http);
        }
        json_object_set(http, "secret", secret);
    }
    return entity;
}

/* 1 if the "config" members (settings) of a and b differ. */
static int sd__config_differs(const json_t *a, const json_t *b)
{
    json_t *ca = json_object_get(a, "config"), *cb = json_object_get(b, "config");

    if (ca == NULL || cb == NULL) {
        return ca != cb && json_object_size(ca ? ca : cb) > 0;
    }
    return !json_equal(ca, cb);
}

/* What the worker knows after committing a rollback. */
struct sd_rollback_state {
    struct sd_buf key;         /* the active key of the entity */
    struct sd_buf version_key; /* the new version record */
    json_t *old;               /* the entity before the rollback */
    json_t *entity;            /* the rolled-back entity */
    int64_t rev;               /* the revision of the commit */
    int is_two_phase;          /* committed disabled first: the sink's table changes */
    int is_config_changed;     /* the settings differ */
};

static void sd__rollback_state_fini(struct sd_rollback_state *s)
{
    sd_buf_fini(&s->key);
    sd_buf_fini(&s->version_key);
    json_decref(s->old);
    json_decref(s->entity);
}

/* Worker thread: puts entity at key guarded by rev (and deletes delete_key when not NULL).
 * Returns 0 with *new_rev, SD_ECONFLICT when key changed, or a store error. */
static int sd__put_guarded(struct sd_state *st, const char *key, const json_t *entity, int64_t rev,
                           const char *delete_key, int64_t *new_rev)
{
    char *text = sd__api_dump(entity);
    struct sd_cmp cmp;
    struct sd_op ops[2];
    struct sd_txn txn;
    struct sd_txn_result res;
    int rc;

    memset(&res, 0, sizeof(res));
    memset(&cmp, 0, sizeof(cmp));
    cmp.key = key;
    cmp.target = SD_CMP_MOD_REV;
    cmp.result = SD_CMP_EQUAL;
    cmp.num = rev;
    memset(ops, 0, sizeof(ops));
    ops[0].type = SD_OP_PUT;
    ops[0].key = key;
    ops[0].value = text;
    ops[0].value_len = strlen(text);
    ops[1].type = SD_OP_DELETE;
    ops[1].key = delete_key;
    memset(&txn, 0, sizeof(txn));
    txn.cmps = &cmp;
    txn.ncmps = 1;
    txn.then_ops = ops;
    txn.nthen = delete_key != NULL ? 2 : 1;
    rc = sd_state_txn(st, &txn, &res);
    if (rc == 0 && !res.succeeded) {
        rc = SD_ECONFLICT;
    }
    if (rc == 0) {
        *new_rev = res.rev;
    }
    sd_txn_result_free(&res);
    free(text);
    return rc;
}

/* The storage key "<p>/<b>/<source>/<sink>" of the task's sink (owned; free with free()). */
static char *sd__sink_storage_key(const struct sd_rollback_task *a)
{
    return sd_xasprintf("%" PRId64 "/%" PRId64 "/%s/%s", a->project_id, a->branch_id, a->source_id,
                        a->sink_id);
}

/* Worker thread: commits the rolled-back entity with its version record into s (zeroed by the
 * caller). A sink whose table definition changes while it has an open file is committed
 * disabled first (s->is_two_phase), as an update does, so reconcile closes the old file before
 * records are mapped with the restored definition. */
static int sd__rollback_commit(struct sd_rollback_task *a, struct sd_task_outcome *out,
                               struct sd_rollback_state *s)
{
    struct sd_state *st = a->api->state;
    int is_sink = a->sink_id[0] != '\0';
    const char *what = is_sink ? "Sink" : "Source";
    struct sd_buf target_key = SD_BUF_INIT;
    json_t *record = NULL, *version_rec, *staged = NULL;
    char *text = NULL, *version_text = NULL, *sink_key = NULL;
    char description[64];
    struct sd_cmp cmps[2];
    struct sd_op ops[2];
    struct sd_txn txn;
    struct sd_txn_result res;
    int64_t number;
    int rc = SD_ECONFLICT;

    memset(&res, 0, sizeof(res));
    if (is_sink) {
        sd_defs_sink_key(&s->key, a->project_id, a->branch_id, a->source_id, a->sink_id, 0);
        sink_key = sd__sink_storage_key(a);
    } else {
        sd_defs_source_key(&s->key, a->project_id, a->branch_id, a->source_id, 0);
    }
    sd__version_key(&target_key, a->project_id, a->branch_id, a->source_id, a->sink_id, a->number);
    snprintf(description, sizeof(description), "Rollback to version \"%" PRId64 "\".", a->number);
    for (int attempt = 0; attempt < SD_ROLLBACK_MAX_ATTEMPTS && rc == SD_ECONFLICT; attempt++) {
        json_decref(s->old);
        json_decref(record);
        json_decref(s->entity);
        json_decref(staged);
        free(text);
        free(version_text);
        sd_txn_result_free(&res);
        s->old = record = s->entity = staged = NULL;
        text = version_text = NULL;
        rc = sd__api_load(st, sd_buf_cstr(&s->key), &s->old, &s->rev);
        if (rc == SD_ENOTFOUND) {
            sd_buf_printf(&out->error, is_sink ? SD_API_SINK_NOT_FOUND : SD_API_SOURCE_NOT_FOUND,
                          is_sink ? a->sink_id : a->source_id);
            goto out;
        }
        if (rc == 0) {
            rc = sd__api_load(st, sd_buf_cstr(&target_key), &record, NULL);
            if (rc == SD_ENOTFOUND) {
                sd_buf_printf(&out->error, "%s version \"%s/%010" PRId64 "\" not found in the %s.",
                              what, is_sink ? a->sink_id : a->source_id, a->number,
                              is_sink ? "source" : "branch");
                goto out;
            }
        }
        if (rc != 0) {
            sd_buf_printf(&out->error, "Reading the state failed: %s.", sd_strerror(rc));
            goto out;
        }
        rc = sd_defs_next_version(s->old, is_sink ? "sink" : "source", &number, &out->error);
        if (rc != 0) {
            goto out;
        }
        s->entity = sd__rollback_entity(s->old, record);
        s->is_config_changed = sd__config_differs(s->old, s->entity);
        sd_defs_set_version(s->entity, number, description, &a->by, sd_now_ms());
        sd__version_key(&s->version_key, a->project_id, a->branch_id, a->source_id, a->sink_id,
                        number);
        s->is_two_phase =
            is_sink &&
            !json_equal(json_object_get(s->old, "table"), json_object_get(s->entity, "table")) &&
            sd__api_sink_is_writing(a->api, sink_key);
        if (s->is_two_phase) {
            staged = json_deep_copy(s->entity);
            sd_defs_set_disabled(staged, &a->by, SD_ROLLBACK_REASON, sd_now_ms());
        }
        text = sd__api_dump(staged != NULL ? staged : s->entity);
        version_rec = sd_defs_version_record(s->entity);
        version_text = sd__api_dump(version_rec);
        json_decref(version_rec);

        memset(cmps, 0, sizeof(cmps));
        cmps[0].key = sd_buf_cstr(&s->key);
        cmps[0].target = SD_CMP_MOD_REV;
        cmps[0].result = SD_CMP_EQUAL;
        cmps[0].num = s->rev;
        cmps[1].key = sd_buf_cstr(&s->version_key);
        cmps[1].target = SD_CMP_CREATE_REV;
        cmps[1].result = SD_CMP_EQUAL;
        cmps[1].num = 0;
        memset(ops, 0, sizeof(ops));
        ops[0].type = SD_OP_PUT;
        ops[0].key = sd_buf_cstr(&s->key);
        ops[0].value = text;
        ops[0].value_len = strlen(text);
        ops[1].type = SD_OP_PUT;
        ops[1].key = sd_buf_cstr(&s->version_key);
        ops[1].value = version_text;
        ops[1].value_len = strlen(version_text);
        memset(&txn, 0, sizeof(txn));
        txn.cmps = cmps;
        txn.ncmps = 2;
        txn.then_ops = ops;
        txn.nthen = 2;
        rc = sd_state_txn(st, &txn, &res);
        if (rc != 0) {
            sd_buf_printf(&out->error, "Storing the %s failed: %s.", is_sink ? "sink" : "source",
                          sd_strerror(rc));
            goto out;
        }
        rc = res.succeeded ? 0 : SD_ECONFLICT;
    }
    if (rc == SD_ECONFLICT) {
        sd_buf_printf(&out->error, "The %s was changed concurrently, please retry.",
                      is_sink ? "sink" : "source");
    } else if (rc == 0) {
        s->rev = res.rev;
    }

out:
    sd_txn_result_free(&res);
    json_decref(record);
    json_decref(staged);
    free(text);
    free(version_text);
    free(sink_key);
    sd_buf_fini(&target_key);
    return rc;
}

/* Worker thread: rotates the file of every sink of the source. */
static int sd__rotate_source_sinks(struct sd_rollback_task *a, struct sd_buf *err)
{
    struct sd_buf prefix = SD_BUF_INIT;
    struct sd_kvs kvs;
    char *sink_key;
    int rc;

    memset(&kvs, 0, sizeof(kvs));
    sd_defs_sinks_prefix(&prefix, a->project_id, a->branch_id, a->source_id, 0);
    rc = sd_state_range(a->api->state, sd_buf_cstr(&prefix), 0, &kvs);
    if (rc != 0) {
        sd_buf_printf(err, "cannot list the sinks: %s", sd_strerror(rc));
    }
    for (size_t i = 0; rc == 0 && i < kvs.n; i++) {
        sink_key = sd_xasprintf("%" PRId64 "/%" PRId64 "/%s/%s", a->project_id, a->branch_id,
                                a->source_id, kvs.items[i].key + prefix.len);
        rc = sd__api_rotate_sink(a->api, sink_key, err);
        free(sink_key);
    }
    sd_kvs_free(&kvs);
    sd_buf_fini(&prefix);
    return rc;
}

/* Worker thread: brings storage in line with a committed sink rollback (a new file with the
 * restored definition). When the definition cannot be written (e.g. its table now has other
 * columns), the old definition is restored and the new version record removed. */
static int sd__rollback_apply_sink(struct sd_rollback_task *a, struct sd_rollback_state *s,
                                   struct sd_task_outcome *out)
{
    struct sd_api *api = a->api;
    struct sd_buf rerr = SD_BUF_INIT, rerr2 = SD_BUF_INIT;
    char *sink_key = sd__sink_storage_key(a);
    int64_t ignored = 0;
    int rc;

    if (s->is_two_phase) {
        /* Phase 1 (committed): the sink is held disabled, so reconcile closes the old file. */
        rc = sd__api_definitions_changed(api, &rerr);
        if (rc == 0) {
            rc = sd__put_guarded(a->api->state, sd_buf_cstr(&s->key), s->entity, s->rev, NULL,
                                 &s->rev);
            if (rc != 0) {
                sd_buf_printf(&rerr, "storing the sink failed: %s", sd_strerror(rc));
            }
        }
        if (rc == 0) {
            rc = sd__api_definitions_changed(api, &rerr);
        }
    } else {
        rc = sd__api_rotate_sink(api, sink_key, &rerr);
    }
    if (rc != 0) {
        if (sd__put_guarded(a->api->state, sd_buf_cstr(&s->key), s->old, s->rev,
                            sd_buf_cstr(&s->version_key), &ignored) != 0) {
            sd_log_error("api", "cannot restore sink %s after a failed rollback", sink_key);
        }
        (void)sd__api_definitions_changed(api, &rerr2);
        sd_buf_printf(&out->error, "Sink has not been rolled back: %s", sd_buf_cstr(&rerr));
    }
    free(sink_key);
    sd_buf_fini(&rerr);
    sd_buf_fini(&rerr2);
    return rc;
}

static int sd__rollback_run(void *arg, struct sd_task_outcome *out)
{
    struct sd_rollback_task *a = arg;
    int is_sink = a->sink_id[0] != '\0';
    struct sd_rollback_state s;
    struct sd_buf rerr = SD_BUF_INIT;
    int rc;

    memset(&s, 0, sizeof(s));
    rc = sd__rollback_commit(a, out, &s);
    if (rc != 0) {
        goto out;
    }
    if (is_sink) {
        rc = sd__rollback_apply_sink(a, &s, out);
        if (rc != 0) {
            goto out;
        }
    } else if (s.is_config_changed) {
        rc = sd__rotate_source_sinks(a, &rerr);
        if (rc != 0) {
            sd_log_error("api",
                         "source %s rolled back to version %" PRId64 ", but rotation failed: %s",
                         a->source_id, a->number, sd_buf_cstr(&rerr));
            sd_buf_printf(&out->error,
                          "Source has been rolled back, but the files were not rotated: %s",
                          sd_buf_cstr(&rerr));
            goto out;
        }
    }
    out->result = is_sink ? "Sink version was rolled back successfully."
                          : "Source version was rolled back successfully.";
    out->outputs = sd__api_task_outputs(a->api->api_url, a->project_id, a->branch_id, a->source_id,
                                        is_sink ? a->sink_id : NULL, 1);

out:
    sd__rollback_state_fini(&s);
    sd_buf_fini(&rerr);
    return rc;
}

static void sd__version_rollback(struct sd_api_ctx *c, int is_sink)
{
    struct sd_rollback_task *a;
    json_t *record = NULL;
    int64_t number = 0;
    struct sd__api_table_claim tc;
    char where[64];
    int rc;

    if (sd__version_param(c, &number) != 0 || sd__require_entity(c, is_sink, NULL, NULL) != 0 ||
        sd__load_version(c, is_sink, number, &record) != 0) {
        return;
    }
    /* The version's mapping and table become the sink's: the same checks as an update. */
    memset(&tc, 0, sizeof(tc));
    snprintf(where, sizeof(where), "version %" PRId64 " table", number);
    rc = is_sink ? sd__api_check_sink(c, record, where, &tc) : 0;
    json_decref(record);
    if (rc != 0) {
        sd__api_table_claim_fini(&tc);
        return;
    }
    a = sd_xcalloc(1, sizeof(*a));
    a->api = c->api;
    a->project_id = c->project_id;
    a->branch_id = c->branch_id;
    a->number = number;
    snprintf(a->source_id, sizeof(a->source_id), "%s", c->source_id);
    snprintf(a->sink_id, sizeof(a->sink_id), "%s", is_sink ? c->sink_id : "");
    a->by = c->by;

    sd__api_submit_entity_task(c, is_sink,
                               is_sink ? "api.rollback.sinkVersion" : "api.rollback.sourceVersion",
                               sd__rollback_run, a, free, NULL, sd__api_claim(&tc));
    sd__api_table_claim_fini(&tc);
}

void sd__api_source_versions_list(struct sd_api_ctx *c)
{
    sd__versions_list(c, 0);
}

void sd__api_source_version_get(struct sd_api_ctx *c)
{
    sd__version_get(c, 0);
}

void sd__api_source_version_rollback(struct sd_api_ctx *c)
{
    sd__version_rollback(c, 0);
}

void sd__api_sink_versions_list(struct sd_api_ctx *c)
{
    sd__versions_list(c, 1);
}

void sd__api_sink_version_get(struct sd_api_ctx *c)
{
    sd__version_get(c, 1);
}

void sd__api_sink_version_rollback(struct sd_api_ctx *c)
{
    sd__version_rollback(c, 1);
}
