/* sd_api_lifecycle.c: the lifecycle endpoints of sources and sinks (reference §2.3-§2.5):
 * update (PATCH), disable/enable/undelete (PUT), the lists of soft-deleted entities,
 * rotate-secret (synchronous) and the cascade (hard) delete of a source.
 *
 * DESIGN: as in sd_api_sources.c, a handler validates and answers 4xx at once and the change
 * runs as a task on the worker thread: one state-store transaction guarded by the revisions it
 * read, then the definitions_changed hook (struct sd_api_hooks; in one process, reconciliation,
 * which opens/closes the sinks' files and republishes the data endpoint's routing: a disabled
 * source answers 404 disabledSource, a disabled sink is skipped). Every change of an entity bumps
 * its version and writes the version record in the same transaction, except the cascades: sinks
 * disabled/enabled with their source and sinks restored with their source keep their version (so a
 * source with 100 sinks still fits in one transaction). A sink disabled with its source carries the
 * reason "Auto-disabled with the parent source."; enabling the source re-enables exactly those
 * sinks, while a sink disabled through the API (reason "API", as the reference) stays disabled.
 * Undeleting a source restores the sinks that were soft-deleted together with it (same deleted.at),
 * not the ones deleted before.
 *
 * A sink update whose table (tableId or mapping) changes while the sink writes a file runs in
 * two phases, because storage keeps the table and columns of an open file: first the new
 * definition is committed marked disabled and reconciled (the old file is closed with the old
 * mapping and is still imported), then committed enabled and reconciled (a new file with the
 * new mapping). So a row of the new mapping never lands in a file of the old one (its import
 * would fail on the column count). The price: records accepted between the two reconciles (a
 * few milliseconds) skip this sink, as for a disabled one; storage refreshing an open slot's
 * table and columns at rotation would remove that window. A crash between the phases leaves
 * the sink disabled with the reason "Updating the sink."; enabling it finishes the update.
 * When the second reconcile fails (e.g. the table exists with other columns) the old
 * definition is restored. Other updates commit, reconcile and rotate the sink's file.
 *
 * A cascade delete removes the source, its sinks (active and deleted) and all their version
 * records in one transaction (the ids can be reused at once), reconciles (closing the files),
 * then drops each sink's table in table storage unless another remaining sink writes to it. */
#include "api/sd_api_internal.h"
#include "core/sd_alloc.h"
#include "core/sd_error.h"
#include "core/sd_log.h"
#include "core/sd_time.h"
#include "pipeline/sd_mapping.h"
#include "state/sd_state.h"
#include "tables/sd_tables.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SD_LIFE_AUTO_REASON "Auto-disabled with the parent source."
#define SD_LIFE_USER_REASON "API"
#define SD_LIFE_UPDATING_REASON "Updating the sink."

enum sd_life_op {
    SD_LIFE_UPDATE,
    SD_LIFE_DISABLE,
    SD_LIFE_ENABLE,
    SD_LIFE_UNDELETE,
    SD_LIFE_HARD_DELETE
};

struct sd_life_task {
    struct sd_api *api;
    enum sd_life_op op;
    int is_sink;
    int64_t project_id;
    int64_t branch_id;
    char source_id[SD_DEFS_ID_MAX + 1];
    char sink_id[SD_DEFS_ID_MAX + 1];
    json_t *body; /* update: the validated request body */
    struct sd_defs_by by;
};

/* One transaction under construction; keys and values are owned by it. */
struct sd_life_txn {
    struct sd_cmp cmps[SD_STATE_MAX_TXN_OPS];
    struct sd_op ops[SD_STATE_MAX_TXN_OPS];
    char *owned[3 * SD_STATE_MAX_TXN_OPS];
    size_t ncmps;
    size_t nops;
    size_t nowned;
    int is_full;
};

static const char *sd__own(struct sd_life_txn *t, char *s)
{
    t->owned[t->nowned++] = s;
    return s;
}

static void sd__txn_put(struct sd_life_txn *t, const char *key, const json_t *value)
{
    struct sd_op *op;
    char *text;

    if (t->nops == SD_STATE_MAX_TXN_OPS) {
        t->is_full = 1;
        return;
    }
    text = sd__api_dump(value);
    op = &t->ops[t->nops++];
    op->type = SD_OP_PUT;
    op->key = sd__own(t, sd_xstrdup(key));
    op->value = sd__own(t, text);
    op->value_len = strlen(text);
}

static void sd__txn_del(struct sd_life_txn *t, const char *key, int is_prefix)
{
    struct sd_op *op;

    if (t->nops == SD_STATE_MAX_TXN_OPS) {
        t->is_full = 1;
        return;
    }
    op = &t->ops[t->nops++];
    op->type = is_prefix ? SD_OP_DELETE_PREFIX : SD_OP_DELETE;
    op->key = sd__own(t, sd_xstrdup(key));
}

/* Adds "mod_rev(key) == rev" (rev 0: the key is absent). */
static void sd__txn_cmp(struct sd_life_txn *t, const char *key, int64_t rev)
{
    struct sd_cmp *cmp;

    if (t->ncmps == SD_STATE_MAX_TXN_OPS) {
        t->is_full = 1;
        return;
    }
    cmp = &t->cmps[t->ncmps++];
    cmp->key = sd__own(t, sd_xstrdup(key));
    cmp->target = rev == 0 ? SD_CMP_CREATE_REV : SD_CMP_MOD_REV;
    cmp->result = SD_CMP_EQUAL;
    cmp->num = rev;
}

static void sd__txn_free(struct sd_life_txn *t)
{
    if (t == NULL) {
        return;
    }
    for (size_t i = 0; i < t->nowned; i++) {
        free(t->owned[i]);
    }
    free(t);
}

/* Commits t. Returns 0 (*rev = the new revision), SD_ECONFLICT when a compare failed, or an
 * error; the message goes to out->error. */
static int sd__txn_commit(struct sd_api *api, struct sd_life_txn *t, struct sd_task_outcome *out,
                          int64_t *rev)
{
    struct sd_txn txn;
    struct sd_txn_result res;
    int rc;

    if (t->is_full) {
        sd_buf_printf(&out->error,
                      "The change touches too many entities (at most %d) to be "
                      "committed at once.",
                      SD_STATE_MAX_TXN_OPS);
        return SD_ELIMIT;
    }
    memset(&txn, 0, sizeof(txn));
    memset(&res, 0, sizeof(res));
    txn.cmps = t->cmps;
    txn.ncmps = t->ncmps;
    txn.then_ops = t->ops;
    txn.nthen = t->nops;
    rc = sd_state_txn(api->state, &txn, &res);
    if (rc != 0) {
        sd_buf_printf(&out->error, "Storing the change failed: %s.", sd_strerror(rc));
    } else if (!res.succeeded) {
        sd_buf_append_str(&out->error, "The entity was changed concurrently, please retry.");
        rc = SD_ECONFLICT;
    } else if (rev != NULL) {
        *rev = res.rev;
    }
    sd_txn_result_free(&res);
    return rc;
}

static void sd__entity_key(const struct sd_life_task *a, int deleted, struct sd_buf *out)
{
    if (a->is_sink) {
        sd_defs_sink_key(out, a->project_id, a->branch_id, a->source_id, a->sink_id, deleted);
    } else {
        sd_defs_source_key(out, a->project_id, a->branch_id, a->source_id, deleted);
    }
}

static const char *sd__what(const struct sd_life_task *a)
{
    return a->is_sink ? "Sink" : "Source";
}

/* Bumps the version of entity and adds its version record to t. Returns 0 or SD_ELIMIT (the
 * message in out->error). */
static int sd__bump(const struct sd_life_task *a, json_t *entity, const char *description,
                    struct sd_life_txn *t, struct sd_task_outcome *out)
{
    struct sd_buf key = SD_BUF_INIT;
    int64_t number;
    json_t *rec;

    if (sd_defs_next_version(entity, a->is_sink ? "sink" : "source", &number, &out->error) != 0) {
        return SD_ELIMIT;
    }
    sd_defs_set_version(entity, number, description, &a->by, sd_now_ms());
    if (a->is_sink) {
        sd_defs_sink_version_key(&key, a->project_id, a->branch_id, a->source_id, a->sink_id,
                                 number);
    } else {
        sd_defs_source_version_key(&key, a->project_id, a->branch_id, a->source_id, number);
    }
    rec = sd_defs_version_record(entity);
    sd__txn_put(t, sd_buf_cstr(&key), rec);
    json_decref(rec);
    sd_buf_fini(&key);
    return 0;
}

static void sd__set_outputs(const struct sd_life_task *a, struct sd_task_outcome *out)
{
    out->outputs = sd__api_task_outputs(a->api->api_url, a->project_id, a->branch_id, a->source_id,
                                        a->is_sink ? a->sink_id : NULL, 1);
}

/* Loads key, the source (what "Source") or sink ("Sink") id; SD_ENOTFOUND (with the
 * reference's text) and errors are written to out->error. */
static int sd__load(const struct sd_life_task *a, const char *key, const char *what, const char *id,
                    json_t **entity, int64_t *rev, struct sd_task_outcome *out)
{
    int rc = sd__api_load(a->api->state, key, entity, rev);

    if (rc == SD_ENOTFOUND) {
        sd_buf_printf(&out->error, "%s \"%s\" not found in the %s.", what, id,
                      strcmp(what, "Sink") == 0 ? "source" : "branch");
    } else if (rc != 0) {
        sd_buf_printf(&out->error, "Reading the state failed: %s.", sd_strerror(rc));
    }
    return rc;
}

static int sd__reconcile(const struct sd_life_task *a, const char *done,
                         struct sd_task_outcome *out)
{
    struct sd_buf rerr = SD_BUF_INIT;
    int rc = sd__api_definitions_changed(a->api, &rerr);

    if (rc != 0) {
        sd_buf_printf(&out->error, "%s, but storage was not updated: %s", done, sd_buf_cstr(&rerr));
    }
    sd_buf_fini(&rerr);
    return rc;
}

static char *sd__sink_storage_key(const struct sd_life_task *a)
{
    return sd_xasprintf("%" PRId64 "/%" PRId64 "/%s/%s", a->project_id, a->branch_id, a->source_id,
                        a->sink_id);
}

/* ---- update ---- */

/* Worker: puts entity at key guarded by rev (no version change); *new_rev gets the revision. */
static int sd__put_guarded(const struct sd_life_task *a, const char *key, const json_t *entity,
                           int64_t rev, const char *version_key_to_delete, int64_t *new_rev,
                           struct sd_task_outcome *out)
{
    struct sd_life_txn *t = sd_xcalloc(1, sizeof(*t));
    int rc;

    if (rev >= 0) {
        sd__txn_cmp(t, key, rev);
    }
    sd__txn_put(t, key, entity);
    if (version_key_to_delete != NULL) {
        sd__txn_del(t, version_key_to_delete, 0);
    }
    rc = sd__txn_commit(a->api, t, out, new_rev);
    sd__txn_free(t);
    return rc;
}

static int sd__update_run(struct sd_life_task *a, struct sd_task_outcome *out)
{
    struct sd_buf key = SD_BUF_INIT, vkey = SD_BUF_INIT, rerr = SD_BUF_INIT;
    struct sd_life_txn *t = sd_xcalloc(1, sizeof(*t));
    struct sd_defs_update u;
    struct sd_defs_err err;
    json_t *old = NULL, *updated = NULL, *staged = NULL;
    char *sink_key = NULL;
    int64_t rev = 0, new_rev = 0;
    int two_phase = 0, rc;

    sd__entity_key(a, 0, &key);
    rc = sd__load(a, sd_buf_cstr(&key), sd__what(a), a->is_sink ? a->sink_id : a->source_id, &old,
                  &rev, out);
    if (rc != 0) {
        goto out;
    }
    rc = sd_defs_parse_update(a->body, a->is_sink, &u, &err);
    if (rc != 0) {
        sd_buf_append_str(&out->error, err.message);
        goto out;
    }
    updated = sd_defs_apply_update(old, &u);
    sd__txn_cmp(t, sd_buf_cstr(&key), rev);
    rc = sd__bump(a, updated,
                  u.change_description != NULL && u.change_description[0] != '\0'
                      ? u.change_description
                      : "Updated.",
                  t, out);
    if (rc != 0) {
        goto out;
    }
    if (a->is_sink) {
        sd_defs_sink_version_key(&vkey, a->project_id, a->branch_id, a->source_id, a->sink_id,
                                 sd_defs_version_number(updated));
        sink_key = sd__sink_storage_key(a);
        two_phase = !json_equal(json_object_get(old, "table"), json_object_get(updated, "table")) &&
                    sd__api_sink_is_writing(a->api, sink_key);
    }
    if (two_phase) {
        /* Phase 1: the new definition, held disabled, so reconcile closes the old file. */
        staged = json_deep_copy(updated);
        sd_defs_set_disabled(staged, &a->by, SD_LIFE_UPDATING_REASON, sd_now_ms());
        sd__txn_put(t, sd_buf_cstr(&key), staged);
    } else {
        sd__txn_put(t, sd_buf_cstr(&key), updated);
    }
    rc = sd__txn_commit(a->api, t, out, &new_rev);
    if (rc != 0) {
        goto out;
    }
    if (two_phase) {
        rc = sd__api_definitions_changed(a->api, &rerr);
        if (rc == 0) {
            rc = sd__put_guarded(a, sd_buf_cstr(&key), updated, new_rev, NULL, &new_rev, out);
            if (rc != 0) {
                goto out;
            }
        }
    }
    if (rc == 0) {
        sd_buf_reset(&rerr);
        rc = sd__api_definitions_changed(a->api, &rerr);
    }
    if (rc != 0) {
        if (a->is_sink) {
            /* The new definition cannot be written: restore the old one. */
            int64_t ignored = 0;
            struct sd_buf rerr2 = SD_BUF_INIT;
            if (sd__put_guarded(a, sd_buf_cstr(&key), old, new_rev, sd_buf_cstr(&vkey), &ignored,
                                out) != 0) {
                sd_log_error("api", "cannot restore sink %s after a failed update", sink_key);
            }
            (void)sd__api_definitions_changed(a->api, &rerr2);
            sd_buf_fini(&rerr2);
            sd_buf_reset(&out->error);
            sd_buf_printf(&out->error, "Sink has not been updated: %s", sd_buf_cstr(&rerr));
        } else {
            sd_buf_printf(&out->error, "Source has been updated, but storage was not updated: %s",
                          sd_buf_cstr(&rerr));
        }
        goto out;
    }
    if (a->is_sink && !two_phase) {
        /* The next file takes the new definition. */
        sd_buf_reset(&rerr);
        rc = sd__api_rotate_sink(a->api, sink_key, &rerr);
        if (rc != 0) {
            sd_buf_printf(&out->error, "Sink has been updated, but the file was not rotated: %s",
                          sd_buf_cstr(&rerr));
            goto out;
        }
    }
    out->result = a->is_sink ? "Sink has been updated successfully."
                             : "Source has been updated successfully.";
    sd__set_outputs(a, out);

out:
    sd__txn_free(t);
    json_decref(old);
    json_decref(updated);
    json_decref(staged);
    free(sink_key);
    sd_buf_fini(&key);
    sd_buf_fini(&vkey);
    sd_buf_fini(&rerr);
    return rc;
}

/* ---- disable / enable ---- */

static int sd__is_auto_disabled(const json_t *sink)
{
    const char *reason =
        json_string_value(json_object_get(json_object_get(sink, "disabled"), "reason"));

    return reason != NULL && strcmp(reason, SD_LIFE_AUTO_REASON) == 0;
}

static int sd__switch_run(struct sd_life_task *a, struct sd_task_outcome *out)
{
    int disable = a->op == SD_LIFE_DISABLE;
    struct sd_buf key = SD_BUF_INIT, source_key = SD_BUF_INIT, prefix = SD_BUF_INIT;
    struct sd_life_txn *t = sd_xcalloc(1, sizeof(*t));
    struct sd_kvs sinks;
    json_t *entity = NULL;
    int64_t rev = 0, source_rev = 0, now = sd_now_ms();
    int rc;

    memset(&sinks, 0, sizeof(sinks));
    sd_defs_source_key(&source_key, a->project_id, a->branch_id, a->source_id, 0);
    sd__entity_key(a, 0, &key);
    if (a->is_sink) {
        json_t *source = NULL;
        rc = sd__load(a, sd_buf_cstr(&source_key), "Source", a->source_id, &source, &source_rev,
                      out);
        json_decref(source);
        if (rc != 0) {
            goto out;
        }
    }
    rc = sd__load(a, sd_buf_cstr(&key), sd__what(a), a->is_sink ? a->sink_id : a->source_id,
                  &entity, &rev, out);
    if (rc != 0) {
        goto out;
    }
    sd__txn_cmp(t, sd_buf_cstr(&key), rev);
    if (disable) {
        sd_defs_set_disabled(entity, &a->by, SD_LIFE_USER_REASON, now);
    } else {
        json_object_del(entity, "disabled");
    }
    rc = sd__bump(a, entity, disable ? "Disabled." : "Enabled.", t, out);
    if (rc != 0) {
        goto out;
    }
    sd__txn_put(t, sd_buf_cstr(&key), entity);
    if (!a->is_sink) {
        /* Cascade to the sinks, without version changes. */
        sd_defs_sinks_prefix(&prefix, a->project_id, a->branch_id, a->source_id, 0);
        rc = sd_state_range(a->api->state, sd_buf_cstr(&prefix), 0, &sinks);
        if (rc != 0) {
            sd_buf_printf(&out->error, "Reading the sinks failed: %s.", sd_strerror(rc));
            goto out;
        }
        for (size_t i = 0; i < sinks.n; i++) {
            json_t *sink = json_loadb(sinks.items[i].value, sinks.items[i].value_len, 0, NULL);
            int has_disabled = json_object_get(sink, "disabled") != NULL;
            if (sink != NULL && disable && !has_disabled) {
                sd_defs_set_disabled(sink, &a->by, SD_LIFE_AUTO_REASON, now);
            } else if (sink != NULL && !disable && sd__is_auto_disabled(sink)) {
                json_object_del(sink, "disabled");
            } else {
                json_decref(sink);
                continue;
            }
            sd__txn_cmp(t, sinks.items[i].key, sinks.items[i].mod_rev);
            sd__txn_put(t, sinks.items[i].key, sink);
            json_decref(sink);
        }
    } else {
        sd__txn_cmp(t, sd_buf_cstr(&source_key), source_rev);
    }
    rc = sd__txn_commit(a->api, t, out, NULL);
    if (rc != 0) {
        goto out;
    }
    rc = sd__reconcile(a, disable ? "The entity has been disabled" : "The entity has been enabled",
                       out);
    if (rc != 0) {
        goto out;
    }
    if (a->is_sink) {
        out->result = disable ? "Sink has been disabled successfully."
                              : "Sink has been enabled successfully.";
    } else {
        out->result = disable ? "Source has been disabled successfully."
                              : "Source has been enabled successfully.";
    }
    sd__set_outputs(a, out);

out:
    sd__txn_free(t);
    sd_kvs_free(&sinks);
    json_decref(entity);
    sd_buf_fini(&key);
    sd_buf_fini(&source_key);
    sd_buf_fini(&prefix);
    return rc;
}

/* ---- undelete ---- */

static int sd__undelete_run(struct sd_life_task *a, struct sd_task_outcome *out)
{
    struct sd_buf key = SD_BUF_INIT, deleted_key = SD_BUF_INIT;
    struct sd_buf source_key = SD_BUF_INIT, dprefix = SD_BUF_INIT, skey = SD_BUF_INIT;
    struct sd_life_txn *t = sd_xcalloc(1, sizeof(*t));
    struct sd_kvs sinks;
    json_t *entity = NULL, *deleted_at;
    char *undeleted = NULL;
    int64_t rev = 0;
    int rc;

    memset(&sinks, 0, sizeof(sinks));
    sd__entity_key(a, 0, &key);
    sd__entity_key(a, 1, &deleted_key);
    if (a->is_sink) {
        json_t *source = NULL;
        int64_t source_rev = 0;
        sd_defs_source_key(&source_key, a->project_id, a->branch_id, a->source_id, 0);
        rc = sd__load(a, sd_buf_cstr(&source_key), "Source", a->source_id, &source, &source_rev,
                      out);
        json_decref(source);
        if (rc != 0) {
            goto out;
        }
        sd__txn_cmp(t, sd_buf_cstr(&source_key), source_rev);
    }
    rc = sd__load(a, sd_buf_cstr(&deleted_key), sd__what(a), a->is_sink ? a->sink_id : a->source_id,
                  &entity, &rev, out);
    if (rc != 0) {
        goto out;
    }
    deleted_at = json_incref(json_object_get(json_object_get(entity, "deleted"), "at"));
    sd__txn_cmp(t, sd_buf_cstr(&deleted_key), rev);
    sd__txn_cmp(t, sd_buf_cstr(&key), 0);
    json_object_del(entity, "deleted");
    /* the reference names the version the entity had when it was deleted */
    undeleted =
        sd_xasprintf("Undeleted to version \"%" PRId64 "\".", sd_defs_version_number(entity));
    rc = sd__bump(a, entity, undeleted, t, out);
    if (rc == 0 && !a->is_sink) {
        /* Restore the sinks deleted together with the source. */
        sd_defs_sinks_prefix(&dprefix, a->project_id, a->branch_id, a->source_id, 1);
        rc = sd_state_range(a->api->state, sd_buf_cstr(&dprefix), 0, &sinks);
        if (rc != 0) {
            sd_buf_printf(&out->error, "Reading the sinks failed: %s.", sd_strerror(rc));
        }
        for (size_t i = 0; rc == 0 && i < sinks.n; i++) {
            json_t *sink = json_loadb(sinks.items[i].value, sinks.items[i].value_len, 0, NULL);
            json_t *at = json_object_get(json_object_get(sink, "deleted"), "at");
            if (sink == NULL || deleted_at == NULL || at == NULL || !json_equal(at, deleted_at)) {
                json_decref(sink);
                continue;
            }
            json_object_del(sink, "deleted");
            sd_defs_sink_key(&skey, a->project_id, a->branch_id, a->source_id,
                             sinks.items[i].key + dprefix.len, 0);
            sd__txn_cmp(t, sinks.items[i].key, sinks.items[i].mod_rev);
            sd__txn_cmp(t, sd_buf_cstr(&skey), 0);
            sd__txn_del(t, sinks.items[i].key, 0);
            sd__txn_put(t, sd_buf_cstr(&skey), sink);
            json_decref(sink);
        }
    }
    json_decref(deleted_at);
    if (rc != 0) {
        goto out;
    }
    sd__txn_del(t, sd_buf_cstr(&deleted_key), 0);
    sd__txn_put(t, sd_buf_cstr(&key), entity);
    rc = sd__txn_commit(a->api, t, out, NULL);
    if (rc == SD_ECONFLICT) {
        sd_buf_reset(&out->error);
        sd_buf_printf(&out->error, "%s already exists or was changed concurrently.", sd__what(a));
    }
    if (rc != 0) {
        goto out;
    }
    rc =
        sd__reconcile(a, a->is_sink ? "Sink has been undeleted" : "Source has been undeleted", out);
    if (rc != 0) {
        goto out;
    }
    out->result = a->is_sink ? "Sink has been undeleted successfully."
                             : "Source has been undeleted successfully.";
    sd__set_outputs(a, out);

out:
    free(undeleted);
    sd__txn_free(t);
    sd_kvs_free(&sinks);
    json_decref(entity);
    sd_buf_fini(&key);
    sd_buf_fini(&deleted_key);
    sd_buf_fini(&source_key);
    sd_buf_fini(&dprefix);
    sd_buf_fini(&skey);
    return rc;
}

/* ---- cascade (hard) delete of a source ---- */

/* Adds the tableId of every sink in kvs to tables (once each). */
static void sd__collect_tables(const struct sd_kvs *kvs, json_t *tables)
{
    for (size_t i = 0; i < kvs->n; i++) {
        json_t *sink = json_loadb(kvs->items[i].value, kvs->items[i].value_len, 0, NULL);
        json_t *id = json_object_get(json_object_get(sink, "table"), "tableId");
        if (json_is_string(id)) {
            json_object_set_new(tables, json_string_value(id), json_true());
        }
        json_decref(sink);
    }
}

/* Drops the tables no remaining active sink of the project writes to. */
static int sd__drop_tables(struct sd_life_task *a, json_t *tables, struct sd_task_outcome *out)
{
    struct sd_buf prefix = SD_BUF_INIT;
    struct sd_kvs rest;
    const char *table_id;
    json_t *v, *used = json_object();
    int rc = 0;

    memset(&rest, 0, sizeof(rest));
    if (a->api->tables == NULL) {
        goto out;
    }
    sd_buf_printf(&prefix, "definition/sink/active/%" PRId64 "/", a->project_id);
    rc = sd_state_range(a->api->state, sd_buf_cstr(&prefix), 0, &rest);
    if (rc != 0) {
        sd_buf_printf(&out->error, "Source has been deleted, but reading the sinks failed: %s.",
                      sd_strerror(rc));
        goto out;
    }
    sd__collect_tables(&rest, used);
    json_object_foreach(tables, table_id, v)
    {
        int r;
        if (json_object_get(used, table_id) != NULL) {
            continue;
        }
        r = sd_tables_drop_table(a->api->tables, a->project_id, table_id);
        if (r != 0 && rc == 0) {
            sd_buf_printf(&out->error,
                          "Source has been deleted, but table \"%s\" was not dropped: %s.",
                          table_id, sd_strerror(r));
            rc = r;
        }
    }

out:
    json_decref(used);
    sd_kvs_free(&rest);
    sd_buf_fini(&prefix);
    return rc;
}

static int sd__hard_delete_run(struct sd_life_task *a, struct sd_task_outcome *out)
{
    struct sd_buf key = SD_BUF_INIT, deleted_key = SD_BUF_INIT, p = SD_BUF_INIT;
    struct sd_life_txn *t = sd_xcalloc(1, sizeof(*t));
    struct sd_kvs active, deleted;
    json_t *source = NULL, *tables = json_object();
    int64_t rev = 0;
    int rc;

    memset(&active, 0, sizeof(active));
    memset(&deleted, 0, sizeof(deleted));
    sd__entity_key(a, 0, &key);
    sd__entity_key(a, 1, &deleted_key);
    rc = sd__load(a, sd_buf_cstr(&key), "Source", a->source_id, &source, &rev, out);
    if (rc != 0) {
        goto out;
    }
    sd_defs_sinks_prefix(&p, a->project_id, a->branch_id, a->source_id, 0);
    rc = sd_state_range(a->api->state, sd_buf_cstr(&p), 0, &active);
    if (rc == 0) {
        sd_defs_sinks_prefix(&p, a->project_id, a->branch_id, a->source_id, 1);
        rc = sd_state_range(a->api->state, sd_buf_cstr(&p), 0, &deleted);
    }
    if (rc != 0) {
        sd_buf_printf(&out->error, "Reading the sinks failed: %s.", sd_strerror(rc));
        goto out;
    }
    sd__collect_tables(&active, tables);
    sd__collect_tables(&deleted, tables);

    sd__txn_cmp(t, sd_buf_cstr(&key), rev);
    sd__txn_del(t, sd_buf_cstr(&key), 0);
    sd__txn_del(t, sd_buf_cstr(&deleted_key), 0);
    sd_buf_reset(&p);
    sd_buf_printf(&p, "definition/source/version/%" PRId64 "/%" PRId64 "/%s/", a->project_id,
                  a->branch_id, a->source_id);
    sd__txn_del(t, sd_buf_cstr(&p), 1);
    sd_defs_sinks_prefix(&p, a->project_id, a->branch_id, a->source_id, 0);
    sd__txn_del(t, sd_buf_cstr(&p), 1);
    sd_defs_sinks_prefix(&p, a->project_id, a->branch_id, a->source_id, 1);
    sd__txn_del(t, sd_buf_cstr(&p), 1);
    sd_buf_reset(&p);
    sd_buf_printf(&p, "definition/sink/version/%" PRId64 "/%" PRId64 "/%s/", a->project_id,
                  a->branch_id, a->source_id);
    sd__txn_del(t, sd_buf_cstr(&p), 1);
    rc = sd__txn_commit(a->api, t, out, NULL);
    if (rc != 0) {
        goto out;
    }
    rc = sd__reconcile(a, "Source has been deleted", out);
    if (rc == 0) {
        rc = sd__drop_tables(a, tables, out);
    }
    if (rc != 0) {
        goto out;
    }
    out->result = "Source and its destination tables and bucket have been deleted.";
    sd__set_outputs(a, out);

out:
    sd__txn_free(t);
    sd_kvs_free(&active);
    sd_kvs_free(&deleted);
    json_decref(source);
    json_decref(tables);
    sd_buf_fini(&key);
    sd_buf_fini(&deleted_key);
    sd_buf_fini(&p);
    return rc;
}

/* ---- task plumbing ---- */

static int sd__life_run(void *arg, struct sd_task_outcome *out)
{
    struct sd_life_task *a = arg;

    switch (a->op) {
    case SD_LIFE_UPDATE:
        return sd__update_run(a, out);
    case SD_LIFE_DISABLE:
    case SD_LIFE_ENABLE:
        return sd__switch_run(a, out);
    case SD_LIFE_UNDELETE:
        return sd__undelete_run(a, out);
    case SD_LIFE_HARD_DELETE:
        return sd__hard_delete_run(a, out);
    }
    return SD_EINVAL;
}

static void sd__life_free(void *arg)
{
    struct sd_life_task *a = arg;

    if (a != NULL) {
        json_decref(a->body);
        free(a);
    }
}

/* Submits op on the source (is_sink 0) or sink of c. body (may be NULL) is consumed. An
 * undelete makes the entity active again, so it takes a slot of the limit. claim (may be NULL)
 * as in sd_task_spec. */
static void sd__life_submit(struct sd_api_ctx *c, enum sd_life_op op, int is_sink, json_t *body,
                            const struct sd_task_claim *claim)
{
    static const char *const names[] = {"update", "disable", "enable", "undelete", "delete"};
    struct sd_life_task *a = sd_xcalloc(1, sizeof(*a));
    struct sd_buf prefix = SD_BUF_INIT, key = SD_BUF_INIT;
    struct sd_task_quota quota;
    char *type;

    a->api = c->api;
    a->op = op;
    a->is_sink = is_sink;
    a->project_id = c->project_id;
    a->branch_id = c->branch_id;
    snprintf(a->source_id, sizeof(a->source_id), "%s", c->source_id);
    snprintf(a->sink_id, sizeof(a->sink_id), "%s", is_sink ? c->sink_id : "");
    a->by = c->by;
    a->body = body;
    type = sd_xasprintf("api.%s.%s", names[op], is_sink ? "sink" : "source");
    sd__api_quota(c, c->source_id, is_sink ? c->sink_id : NULL, &prefix, &key, &quota);
    sd__api_submit_entity_task(c, is_sink, type, sd__life_run, a, sd__life_free,
                               op == SD_LIFE_UNDELETE ? &quota : NULL, claim);
    free(type);
    sd_buf_fini(&prefix);
    sd_buf_fini(&key);
}

/* ---- handlers ---- */

static void sd__update(struct sd_api_ctx *c, int is_sink)
{
    struct sd_defs_update u;
    struct sd_defs_err err;
    struct sd__api_table_claim tc;
    json_t *body = NULL, *stored = NULL, *next = NULL;
    int rc;

    memset(&tc, 0, sizeof(tc));
    rc = is_sink ? sd__api_get_sink(c, &stored, NULL) : sd__api_get_source(c, NULL, NULL);
    if (rc != 0) {
        goto fail;
    }
    body = sd__api_body(c);
    if (body == NULL) {
        goto fail;
    }
    if (sd_defs_parse_update(body, is_sink, &u, &err) != 0) {
        sd__api_validation_error(c->req, &err);
        goto fail;
    }
    if (u.columns != NULL || u.table_id != NULL) {
        next = sd_defs_apply_update(stored, &u);
        if (sd__api_check_sink(c, next, "body.table", &tc) != 0) {
            goto fail;
        }
    }
    sd__life_submit(c, SD_LIFE_UPDATE, is_sink, body, sd__api_claim(&tc));
    body = NULL;

fail:
    sd__api_table_claim_fini(&tc);
    json_decref(stored);
    json_decref(next);
    json_decref(body);
}

void sd__api_source_update(struct sd_api_ctx *c)
{
    sd__update(c, 0);
}

void sd__api_sink_update(struct sd_api_ctx *c)
{
    sd__update(c, 1);
}

/* Answers 404 unless the deleted copy of the entity exists; *out (new reference) gets it. */
static int sd__require_deleted(struct sd_api_ctx *c, int is_sink, json_t **out)
{
    struct sd_buf key = SD_BUF_INIT;
    json_t *j = NULL;
    int rc;

    if (is_sink) {
        sd_defs_sink_key(&key, c->project_id, c->branch_id, c->source_id, c->sink_id, 1);
    } else {
        sd_defs_source_key(&key, c->project_id, c->branch_id, c->source_id, 1);
    }
    rc = sd__api_load(c->api->state, sd_buf_cstr(&key), &j, NULL);
    if (rc == SD_ENOTFOUND) {
        sd__api_not_found(c->req, is_sink, 1, is_sink ? c->sink_id : c->source_id);
    } else if (rc != 0) {
        sd__api_internal_error(c->req, "reading the deleted entity", rc);
    }
    *out = j;
    sd_buf_fini(&key);
    return rc;
}

static void sd__switch(struct sd_api_ctx *c, int is_sink)
{
    enum sd_life_op op = SD_LIFE_UNDELETE;
    struct sd__api_table_claim tc;
    json_t *entity = NULL;
    int rc;

    memset(&tc, 0, sizeof(tc));
    if (strcmp(c->action, "undelete") == 0) {
        rc = is_sink ? sd__api_get_source(c, NULL, NULL) : 0;
        if (rc == 0) {
            rc = sd__require_deleted(c, is_sink, &entity);
        }
    } else {
        op = strcmp(c->action, "disable") == 0 ? SD_LIFE_DISABLE : SD_LIFE_ENABLE;
        rc = is_sink ? sd__api_get_sink(c, &entity, NULL) : sd__api_get_source(c, NULL, NULL);
    }
    /* A sink that becomes active again opens its table: check it as a create would. */
    if (rc == 0 && is_sink && op != SD_LIFE_DISABLE) {
        rc = sd__api_check_sink(c, entity, "table", &tc);
    }
    json_decref(entity);
    if (rc == 0) {
        sd__life_submit(c, op, is_sink, NULL, sd__api_claim(&tc));
    }
    sd__api_table_claim_fini(&tc);
}

void sd__api_source_switch(struct sd_api_ctx *c)
{
    sd__switch(c, 0);
}

void sd__api_sink_switch(struct sd_api_ctx *c)
{
    sd__switch(c, 1);
}

void sd__api_source_hard_delete(struct sd_api_ctx *c)
{
    if (sd__api_get_source(c, NULL, NULL) != 0) {
        return;
    }
    sd__life_submit(c, SD_LIFE_HARD_DELETE, 0, NULL, NULL);
}

void sd__api_sources_deleted_list(struct sd_api_ctx *c)
{
    sd__api_list_entities(c, 0, 1, NULL);
}

void sd__api_sinks_deleted_list(struct sd_api_ctx *c)
{
    sd__api_list_entities(c, 1, 1, NULL);
}

void sd__api_source_rotate_secret(struct sd_api_ctx *c)
{
    struct sd_buf key = SD_BUF_INIT, vkey = SD_BUF_INIT, rerr = SD_BUF_INIT, why = SD_BUF_INIT;
    struct sd_cmp cmp;
    struct sd_op ops[2];
    struct sd_txn txn;
    struct sd_txn_result res;
    char secret[SD_DEFS_SECRET_LEN + 1];
    json_t *source = NULL, *http, *rec;
    char *text = NULL, *rec_text = NULL;
    int64_t rev = 0, number;
    int rc;

    memset(&res, 0, sizeof(res));
    if (sd__api_get_source(c, &source, &rev) != 0) {
        goto out;
    }
    http = json_object_get(source, "http");
    if (!json_is_object(http)) {
        http = json_object();
        json_object_set_new(source, "http", http);
    }
    sd_defs_new_secret(secret);
    json_object_set_new(http, "secret", json_string(secret));
    explicit_bzero(secret, sizeof(secret));
    /* a new version, as the reference's "Rotated secret." */
    if (sd_defs_next_version(source, "source", &number, &why) != 0) {
        sd__api_error(c->req, 409, "versionCountLimitReached", "%s", sd_buf_cstr(&why));
        goto out;
    }
    sd_defs_set_version(source, number, "Rotated secret.", &c->by, sd_now_ms());
    rec = sd_defs_version_record(source);
    rec_text = sd__api_dump(rec);
    json_decref(rec);
    text = sd__api_dump(source);
    sd_defs_source_key(&key, c->project_id, c->branch_id, c->source_id, 0);
    sd_defs_source_version_key(&vkey, c->project_id, c->branch_id, c->source_id, number);
    memset(&cmp, 0, sizeof(cmp));
    cmp.key = sd_buf_cstr(&key);
    cmp.target = SD_CMP_MOD_REV;
    cmp.result = SD_CMP_EQUAL;
    cmp.num = rev;
    memset(ops, 0, sizeof(ops));
    ops[0].type = SD_OP_PUT;
    ops[0].key = sd_buf_cstr(&key);
    ops[0].value = text;
    ops[0].value_len = strlen(text);
    ops[1].type = SD_OP_PUT;
    ops[1].key = sd_buf_cstr(&vkey);
    ops[1].value = rec_text;
    ops[1].value_len = strlen(rec_text);
    memset(&txn, 0, sizeof(txn));
    txn.cmps = &cmp;
    txn.ncmps = 1;
    txn.then_ops = ops;
    txn.nthen = 2;
    rc = sd_state_txn(c->api->state, &txn, &res);
    if (rc != 0) {
        sd__api_internal_error(c->req, "storing the new secret", rc);
        goto out;
    }
    if (!res.succeeded) {
        sd__api_error(c->req, 409, "conflict",
                      "Source \"%s\" was changed concurrently, please retry.", c->source_id);
        goto out;
    }
    /* The routing table of the data endpoint takes the new secret; the old one is invalid. */
    rc = sd__api_definitions_changed(c->api, &rerr);
    if (rc != 0) {
        sd_log_error("api", "secret of source %s rotated, but reconcile failed: %s", c->source_id,
                     sd_buf_cstr(&rerr));
    }
    sd_http_send_json(c->req, 200, sd_defs_source_to_api(source, c->api->source_url), 1);

out:
    if (text != NULL) {
        explicit_bzero(text, strlen(text));
    }
    free(text);
    free(rec_text);
    sd_txn_result_free(&res);
    json_decref(source);
    sd_buf_fini(&key);
    sd_buf_fini(&vkey);
    sd_buf_fini(&rerr);
    sd_buf_fini(&why);
}
