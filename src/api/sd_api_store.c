/* sd_api_store.c: how API handlers read and create definition entities in the state store:
 * loading one entity, answering a page of a list, and the create transaction (commit, the
 * soft-deleted predecessor, rollback when the server cannot apply it). */
#include "api/sd_api_internal.h"
#include "core/sd_error.h"
#include "core/sd_log.h"
#include "core/sd_time.h"
#include "state/sd_state.h"

#include <stdlib.h>
#include <string.h>

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
    int rc = sd__api_definitions_changed(api, &rerr);

    if (rc != 0) {
        sd__api_create_rollback(api->state, cr);
        sd_buf_printf(error, "%s has not been created: %s", what, sd_buf_cstr(&rerr));
        sd_buf_reset(&rerr);
        (void)sd__api_definitions_changed(api, &rerr);
    }
    sd_buf_fini(&rerr);
    return rc;
}
