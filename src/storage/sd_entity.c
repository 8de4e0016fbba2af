/* sd_entity.c: file and slice entities in the state store and the guarded batches that change
 * them (see sd_entity.h). */
#include "storage/sd_entity.h"
#include "storage/sd_states.h"
#include "core/sd_alloc.h"
#include "core/sd_error.h"
#include "core/sd_log.h"
#include "core/sd_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t sd_entity_time_ms(const json_t *j, const char *field)
{
    const char *s = json_string_value(json_object_get(j, field));
    int64_t ms = 0;

    if (s != NULL) {
        sd_time_parse_iso(s, &ms);
    }
    return ms;
}

const char *sd_entity_state(const json_t *j)
{
    return json_string_value(json_object_get(j, "state")) ?: "";
}

const char *sd_entity_level(const char *kind, const char *state)
{
    if (strcmp(state, "imported") == 0) {
        return "target";
    }
    if (strcmp(state, "uploaded") == 0 ||
        (strcmp(kind, "file") == 0 && strcmp(state, "importing") == 0)) {
        return "staging";
    }
    return "local";
}

json_t *sd_entity_read(struct sd_state *state, const char *kind, const char *key, int64_t *mod_rev,
                       int *rc)
{
    char *all_key = sd_xasprintf("storage/%s/all/%s", kind, key);
    struct sd_kv kv;
    json_t *j = NULL;

    memset(&kv, 0, sizeof(kv));
    *rc = sd_state_get(state, all_key, &kv);
    free(all_key);
    if (*rc == 0) {
        j = json_loadb(kv.value, kv.value_len, 0, NULL);
        *mod_rev = kv.mod_rev;
        *rc = j != NULL ? 0 : SD_ECORRUPT;
    }
    sd_kv_free(&kv);
    return j;
}

char *sd_entity_own(struct sd_entity_batch *b, char *s)
{
    b->owned[b->nowned++] = s;
    return s;
}

void sd_entity_put(struct sd_entity_batch *b, char *key, const json_t *value)
{
    char *text = sd_entity_own(b, json_dumps(value, JSON_COMPACT | JSON_PRESERVE_ORDER));

    b->ops[b->n++] = (struct sd_op){SD_OP_PUT, sd_entity_own(b, key), text, strlen(text), 0};
}

void sd_entity_del(struct sd_entity_batch *b, char *key)
{
    b->ops[b->n++] = (struct sd_op){SD_OP_DELETE, sd_entity_own(b, key), NULL, 0, 0};
}

int sd_entity_fits(const struct sd_entity_batch *b, size_t n)
{
    return b->n + n <= SD_STATE_MAX_TXN_OPS && b->ncmps + n <= sizeof(b->cmps) / sizeof(b->cmps[0]);
}

/* Adds the compare (target of the "all" copy == num) and the puts of the "all" and level copies
 * of entity j. */
static void sd__store(struct sd_entity_batch *b, const char *kind, const char *key, const json_t *j,
                      const char *level, enum sd_cmp_target target, int64_t num)
{
    char *all_key = sd_entity_own(b, sd_xasprintf("storage/%s/all/%s", kind, key));

    b->cmps[b->ncmps++] = (struct sd_cmp){all_key, target, SD_CMP_EQUAL, num, NULL, 0};
    sd_entity_put(b, sd_xstrdup(all_key), j);
    sd_entity_put(b, sd_xasprintf("storage/%s/level/%s/%s", kind, level, key), j);
}

void sd_entity_move(struct sd_entity_batch *b, const char *kind, const char *key, json_t *j,
                    int64_t mod_rev, const char *new_state, int64_t now)
{
    const char *old_level = sd_entity_level(kind, sd_entity_state(j));
    const char *new_level = sd_entity_level(kind, new_state);
    char ts[SD_TIME_ISO_LEN + 1], at_key[32];
    static const char *const retry_fields[] = {"retryAttempt", "retryReason", "firstFailedAt",
                                               "lastFailedAt", "retryAfter"};

    if (!sd_states_transition_ok(kind, sd_entity_state(j), new_state)) {
        /* Never store an impossible state; the commit of this batch then does nothing. */
        sd_log_key(SD_LOG_ERROR, "storage", key, "refused %s %s transition %s -> %s", kind, key,
                   sd_entity_state(j), new_state);
        b->n = 0;
        return;
    }
    if (strcmp(sd_entity_state(j), new_state) != 0) {
        sd_log_key(SD_LOG_DEBUG, "storage", key, "%s %s -> %s", kind, sd_entity_state(j),
                   new_state);
        sd_time_format_iso(now, ts);
        snprintf(at_key, sizeof(at_key), "%sAt", new_state);
        json_object_set_new(j, at_key, json_string(ts));
        json_object_set_new(j, "state", json_string(new_state));
        for (size_t i = 0; i < sizeof(retry_fields) / sizeof(retry_fields[0]); i++) {
            json_object_del(j, retry_fields[i]);
        }
    }
    sd__store(b, kind, key, j, new_level, SD_CMP_MOD_REV, mod_rev);
    if (strcmp(old_level, new_level) != 0) {
        sd_entity_del(b, sd_xasprintf("storage/%s/level/%s/%s", kind, old_level, key));
    }
}

void sd_entity_create(struct sd_entity_batch *b, const char *kind, const char *key, const json_t *j)
{
    sd__store(b, kind, key, j, sd_entity_level(kind, sd_entity_state(j)), SD_CMP_CREATE_REV, 0);
}

void sd_entity_discard(struct sd_entity_batch *b)
{
    for (size_t i = 0; i < b->nowned; i++) {
        free(b->owned[i]);
    }
    b->n = 0;
    b->ncmps = 0;
    b->nowned = 0;
}

int sd_entity_commit(struct sd_state *state, struct sd_entity_batch *b, int64_t *rev)
{
    struct sd_txn txn;
    struct sd_txn_result res;
    int rc = 0;

    memset(&txn, 0, sizeof(txn));
    memset(&res, 0, sizeof(res));
    txn.cmps = b->cmps;
    txn.ncmps = b->ncmps;
    txn.then_ops = b->ops;
    txn.nthen = b->n;
    if (b->n > 0) {
        rc = sd_state_txn(state, &txn, &res);
        if (rc == 0) {
            if (!res.succeeded) {
                rc = SD_ECONFLICT;
            } else if (rev != NULL) {
                *rev = res.rev;
            }
            sd_txn_result_free(&res);
        }
    }
    sd_entity_discard(b);
    return rc;
}
