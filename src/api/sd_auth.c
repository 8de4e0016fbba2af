/* sd_auth.c: local Storage API tokens: SHA-256 hashing, lookup, creation and the admin token.
 *
 * DESIGN: the state store holds only hashes ("auth/token/<sha256hex>"), so a copy of the data
 * dir does not leak usable tokens; a lookup is one point read by hash. Tokens never reach a log
 * line or an error message. The admin token of project 1 is recorded under "auth/admin"; the
 * start-up check runs once, before the API loop starts, so it needs no lock of its own; its
 * writes are single transactions guarded by the marker's revision. */
#include "api/sd_auth.h"
#include "core/sd_alloc.h"
#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "core/sd_fs.h"
#include "core/sd_log.h"
#include "core/sd_time.h"
#include "defs/sd_defs.h"
#include "state/sd_state.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SD_AUTH_MARKER_KEY "auth/admin"
#define SD_AUTH_TOKEN_MAX 1024
#define SD_AUTH_TOKEN_PREFIX "auth/token/"

static const char sd__token_alphabet[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

void sd_auth_hash(const char *token, size_t len, char out[SD_AUTH_HASH_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (EVP_Digest(token, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        abort(); /* libcrypto without SHA-256 or out of memory */
    }
    for (unsigned int i = 0; i < mdlen; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[SD_AUTH_HASH_HEX_LEN] = '\0';
}

static void sd__token_key(struct sd_buf *out, const char *hash)
{
    sd_buf_reset(out);
    sd_buf_printf(out, SD_AUTH_TOKEN_PREFIX "%s", hash);
}

/* Builds the stored record of a token (new reference). */
static json_t *sd__record(const struct sd_auth_token *t, int64_t now_ms)
{
    char at[SD_TIME_ISO_LEN + 1];
    json_t *j = json_object();

    sd_time_format_iso(now_ms, at);
    json_object_set_new(j, "id", json_string(t->id));
    json_object_set_new(j, "projectId", json_integer(t->project_id));
    json_object_set_new(j, "isMaster", json_boolean(t->is_master));
    json_object_set_new(j, "isAdmin", json_boolean(t->is_admin));
    json_object_set_new(j, "description", json_string(t->description));
    json_object_set_new(j, "created", json_string(at));
    return j;
}

static void sd__new_info(struct sd_auth_token *t, int64_t project_id, int is_master, int is_admin,
                         const char *description)
{
    memset(t, 0, sizeof(*t));
    /* A numeric id like the Storage API's, random so it reveals nothing about the token. */
    sd_defs_random_chars(t->id, 9, "0123456789");
    if (t->id[0] == '0') {
        t->id[0] = '1';
    }
    t->project_id = project_id;
    t->is_master = is_master;
    t->is_admin = is_admin;
    snprintf(t->description, sizeof(t->description), "%s", description ? description : "");
}

/* Parses a stored record into *out. Returns 0 or SD_ECORRUPT. */
static int sd__parse_record(const char *value, size_t len, struct sd_auth_token *out)
{
    json_t *j = json_loadb(value, len, 0, NULL);
    const char *id, *desc, *created;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(j)) {
        json_decref(j);
        return SD_ECORRUPT;
    }
    id = json_string_value(json_object_get(j, "id"));
    desc = json_string_value(json_object_get(j, "description"));
    created = json_string_value(json_object_get(j, "created"));
    snprintf(out->id, sizeof(out->id), "%s", id ? id : "");
    out->project_id = json_integer_value(json_object_get(j, "projectId"));
    out->is_master = json_is_true(json_object_get(j, "isMaster"));
    out->is_admin = json_is_true(json_object_get(j, "isAdmin"));
    snprintf(out->description, sizeof(out->description), "%s", desc ? desc : "");
    snprintf(out->created, sizeof(out->created), "%s", created ? created : "");
    json_decref(j);
    return 0;
}

int sd_auth_lookup(struct sd_state *st, const char *token, size_t len, struct sd_auth_token *out)
{
    char hash[SD_AUTH_HASH_HEX_LEN + 1];
    struct sd_buf key = SD_BUF_INIT;
    struct sd_kv kv;
    int rc;

    memset(out, 0, sizeof(*out));
    if (len == 0 || len > SD_AUTH_TOKEN_MAX) {
        return SD_ENOTFOUND;
    }
    sd_auth_hash(token, len, hash);
    sd__token_key(&key, hash);
    memset(&kv, 0, sizeof(kv));
    rc = sd_state_get(st, sd_buf_cstr(&key), &kv);
    sd_buf_fini(&key);
    if (rc != 0) {
        return rc;
    }
    rc = sd__parse_record(kv.value, kv.value_len, out);
    sd_kv_free(&kv);
    return rc;
}

static int sd__token_cmp(const void *a, const void *b)
{
    const struct sd_auth_token *x = a, *y = b;

    if (x->project_id != y->project_id) {
        return x->project_id < y->project_id ? -1 : 1;
    }
    if (strlen(x->id) != strlen(y->id)) {
        return strlen(x->id) < strlen(y->id) ? -1 : 1;
    }
    return strcmp(x->id, y->id);
}

int sd_auth_token_list(struct sd_state *st, int64_t project_id, struct sd_auth_token **out,
                       size_t *n)
{
    struct sd_kvs kvs;
    struct sd_auth_token *list = NULL;
    size_t count = 0;
    int rc;

    *out = NULL;
    *n = 0;
    memset(&kvs, 0, sizeof(kvs));
    rc = sd_state_range(st, SD_AUTH_TOKEN_PREFIX, 0, &kvs);
    if (rc != 0) {
        goto out;
    }
    list = sd_xcalloc(kvs.n + 1, sizeof(*list));
    for (size_t i = 0; i < kvs.n; i++) {
        rc = sd__parse_record(kvs.items[i].value, kvs.items[i].value_len, &list[count]);
        if (rc != 0) {
            goto out;
        }
        if (project_id <= 0 || list[count].project_id == project_id) {
            count++;
        }
    }
    qsort(list, count, sizeof(*list), sd__token_cmp);
    *out = list;
    *n = count;
    list = NULL;

out:
    free(list);
    sd_kvs_free(&kvs);
    return rc;
}

int sd_auth_token_revoke(struct sd_state *st, const char *id, struct sd_auth_token *info)
{
    struct sd_kvs kvs;
    struct sd_auth_token t;
    struct sd_cmp cmp;
    struct sd_op op;
    struct sd_txn txn;
    struct sd_txn_result res;
    int rc;

    memset(&kvs, 0, sizeof(kvs));
    memset(&res, 0, sizeof(res));
    rc = sd_state_range(st, SD_AUTH_TOKEN_PREFIX, 0, &kvs);
    if (rc != 0) {
        goto out;
    }
    rc = SD_ENOTFOUND;
    for (size_t i = 0; i < kvs.n; i++) {
        if (sd__parse_record(kvs.items[i].value, kvs.items[i].value_len, &t) != 0 ||
            strcmp(t.id, id) != 0) {
            continue;
        }
        /* Delete only the record that was read, so a concurrent change is not lost. */
        memset(&cmp, 0, sizeof(cmp));
        cmp.key = kvs.items[i].key;
        cmp.target = SD_CMP_MOD_REV;
        cmp.result = SD_CMP_EQUAL;
        cmp.num = kvs.items[i].mod_rev;
        memset(&op, 0, sizeof(op));
        op.type = SD_OP_DELETE;
        op.key = kvs.items[i].key;
        memset(&txn, 0, sizeof(txn));
        txn.cmps = &cmp;
        txn.ncmps = 1;
        txn.then_ops = &op;
        txn.nthen = 1;
        rc = sd_state_txn(st, &txn, &res);
        if (rc == 0 && !res.succeeded) {
            rc = SD_ECONFLICT;
        }
        if (rc == 0 && info != NULL) {
            *info = t;
        }
        break;
    }

out:
    sd_txn_result_free(&res);
    sd_kvs_free(&kvs);
    return rc;
}

int sd_auth_token_create(struct sd_state *st, int64_t project_id, int is_master, int is_admin,
                         const char *description, char token_out[SD_AUTH_GENERATED_LEN + 1],
                         struct sd_auth_token *info)
{
    char hash[SD_AUTH_HASH_HEX_LEN + 1];
    struct sd_auth_token t;
    struct sd_buf key = SD_BUF_INIT;
    struct sd_auth_token *list = NULL;
    size_t n = 0;
    char *value;
    json_t *rec;
    int64_t now;
    int is_taken, rc;

    /* A fresh id, so that revoking by id names exactly one token. */
    rc = sd_auth_token_list(st, 0, &list, &n);
    if (rc != 0) {
        return rc;
    }
    do {
        sd__new_info(&t, project_id, is_master, is_admin, description);
        is_taken = 0;
        for (size_t i = 0; i < n; i++) {
            is_taken |= strcmp(list[i].id, t.id) == 0;
        }
    } while (is_taken);
    free(list);
    sd_defs_random_chars(token_out, SD_AUTH_GENERATED_LEN, sd__token_alphabet);
    sd_auth_hash(token_out, SD_AUTH_GENERATED_LEN, hash);
    sd__token_key(&key, hash);
    now = sd_now_ms();
    sd_time_format_iso(now, t.created);
    rec = sd__record(&t, now);
    value = json_dumps(rec, JSON_COMPACT);
    rc = sd_state_put(st, sd_buf_cstr(&key), value, strlen(value), 0, NULL);
    free(value);
    json_decref(rec);
    sd_buf_fini(&key);
    if (rc == 0 && info != NULL) {
        *info = t;
    }
    return rc;
}

/* Reads the marker: *hash gets the recorded admin token hash ("" when none), *mod_rev its
 * revision (0 when absent). */
static int sd__read_marker(struct sd_state *st, char hash[SD_AUTH_HASH_HEX_LEN + 1],
                           int64_t *mod_rev)
{
    struct sd_kv kv;
    json_t *j;
    int rc;

    hash[0] = '\0';
    *mod_rev = 0;
    memset(&kv, 0, sizeof(kv));
    rc = sd_state_get(st, SD_AUTH_MARKER_KEY, &kv);
    if (rc == SD_ENOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    *mod_rev = kv.mod_rev;
    j = json_loadb(kv.value, kv.value_len, 0, NULL);
    if (json_is_string(json_object_get(j, "tokenHash"))) {
        snprintf(hash, SD_AUTH_HASH_HEX_LEN + 1, "%s",
                 json_string_value(json_object_get(j, "tokenHash")));
    }
    json_decref(j);
    sd_kv_free(&kv);
    return 0;
}

/* Commits hash as the admin token of project 1 (record + marker), removing the previous admin
 * token old_hash (may be ""), if the marker still has revision marker_rev. */
static int sd__commit_admin(struct sd_state *st, const char *hash, const char *old_hash,
                            int64_t marker_rev)
{
    struct sd_auth_token t;
    struct sd_buf key = SD_BUF_INIT, old_key = SD_BUF_INIT;
    struct sd_cmp cmp;
    struct sd_op ops[3];
    struct sd_txn txn;
    struct sd_txn_result res;
    char at[SD_TIME_ISO_LEN + 1];
    char *rec_text, *marker_text;
    json_t *rec, *marker;
    size_t nops = 0;
    int64_t now = sd_now_ms();
    int rc;

    sd__new_info(&t, SD_AUTH_ADMIN_PROJECT, 1, 1, "Admin token");
    rec = sd__record(&t, now);
    rec_text = json_dumps(rec, JSON_COMPACT);
    sd_time_format_iso(now, at);
    marker = json_pack("{s:s, s:s}", "tokenHash", hash, "created", at);
    marker_text = json_dumps(marker, JSON_COMPACT);
    sd__token_key(&key, hash);

    memset(&cmp, 0, sizeof(cmp));
    cmp.key = SD_AUTH_MARKER_KEY;
    cmp.target = SD_CMP_MOD_REV;
    cmp.result = SD_CMP_EQUAL;
    cmp.num = marker_rev;
    memset(ops, 0, sizeof(ops));
    if (old_hash[0] != '\0' && strcmp(old_hash, hash) != 0) {
        sd__token_key(&old_key, old_hash);
        ops[nops].type = SD_OP_DELETE;
        ops[nops++].key = sd_buf_cstr(&old_key);
    }
    ops[nops].type = SD_OP_PUT;
    ops[nops].key = sd_buf_cstr(&key);
    ops[nops].value = rec_text;
    ops[nops++].value_len = strlen(rec_text);
    ops[nops].type = SD_OP_PUT;
    ops[nops].key = SD_AUTH_MARKER_KEY;
    ops[nops].value = marker_text;
    ops[nops++].value_len = strlen(marker_text);
    memset(&txn, 0, sizeof(txn));
    txn.cmps = &cmp;
    txn.ncmps = 1;
    txn.then_ops = ops;
    txn.nthen = nops;
    memset(&res, 0, sizeof(res));
    rc = sd_state_txn(st, &txn, &res);
    if (rc == 0 && !res.succeeded) {
        rc = SD_ECONFLICT;
    }
    sd_txn_result_free(&res);
    free(rec_text);
    free(marker_text);
    json_decref(rec);
    json_decref(marker);
    sd_buf_fini(&key);
    sd_buf_fini(&old_key);
    return rc;
}

static int sd__token_exists(struct sd_state *st, const char *hash)
{
    struct sd_buf key = SD_BUF_INIT;
    struct sd_kv kv;
    int rc;

    sd__token_key(&key, hash);
    memset(&kv, 0, sizeof(kv));
    rc = sd_state_get(st, sd_buf_cstr(&key), &kv);
    sd_kv_free(&kv);
    sd_buf_fini(&key);
    return rc;
}

int sd_auth_ensure_admin(struct sd_state *st, const char *configured, const char *data_dir,
                         struct sd_buf *err)
{
    char hash[SD_AUTH_HASH_HEX_LEN + 1], old_hash[SD_AUTH_HASH_HEX_LEN + 1];
    char token[SD_AUTH_GENERATED_LEN + 2];
    char *path = NULL;
    int64_t marker_rev;
    int rc;

    rc = sd__read_marker(st, old_hash, &marker_rev);
    if (rc != 0) {
        sd_buf_printf(err, "cannot read the admin token marker: %s", sd_strerror(rc));
        return rc;
    }
    if (configured != NULL && configured[0] != '\0') {
        sd_auth_hash(configured, strlen(configured), hash);
        if (strcmp(hash, old_hash) == 0 && (rc = sd__token_exists(st, hash)) == 0) {
            return 0;
        }
        rc = sd__commit_admin(st, hash, old_hash, marker_rev);
        if (rc != 0) {
            sd_buf_printf(err, "cannot store the admin token: %s", sd_strerror(rc));
            return rc;
        }
        if (old_hash[0] != '\0' && strcmp(old_hash, hash) != 0) {
            sd_log_info("auth", "auth.adminToken changed: the previous admin token is revoked");
        }
        return 0;
    }
    if (marker_rev != 0) {
        return 0; /* an admin token exists (generated earlier or configured before) */
    }
    sd_defs_random_chars(token, SD_AUTH_GENERATED_LEN, sd__token_alphabet);
    sd_auth_hash(token, SD_AUTH_GENERATED_LEN, hash);
    token[SD_AUTH_GENERATED_LEN] = '\n';
    token[SD_AUTH_GENERATED_LEN + 1] = '\0';
    rc = sd_mkdir_p(data_dir, SD_DIR_MODE);
    if (rc == 0) {
        path = sd_xasprintf("%s/admin-token", data_dir);
        rc = sd_write_file_atomic(path, token, SD_AUTH_GENERATED_LEN + 1, SD_FILE_MODE);
    }
    explicit_bzero(token, sizeof(token));
    if (rc != 0) {
        sd_buf_printf(err, "cannot write %s/admin-token: %s", data_dir, sd_strerror(rc));
        goto out;
    }
    rc = sd__commit_admin(st, hash, "", 0);
    if (rc != 0) {
        sd_buf_printf(err, "cannot store the generated admin token: %s", sd_strerror(rc));
        goto out;
    }
    sd_log_info("auth", "generated a master admin token for project 1 in %s", path);

out:
    free(path);
    return rc;
}
