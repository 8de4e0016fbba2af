/* state_etcd.c: the "etcd" state backend: sd_state_ops over etcd's v3 JSON gateway (see
 * state_etcd.h).
 *
 * DESIGN: a thin mapping. Each call is checked first with the same rules as every backend
 * (sd_state_check_*: too many txn ops is SD_ELIMIT before anything is sent), then becomes one
 * request (range, put, deleterange, txn, lease grant/keepalive/revoke) whose answer gives the
 * revision in its header; etcd itself supplies the semantics the contract asks for (one
 * revision per change, compares on missing keys, lease revocation as one revision). The
 * transport (endpoints, failover, auth, health) is etcd_client.c, the JSON/base64 codec
 * etcd_codec.c, watches etcd_watch.c. */
#include "state_etcd/state_etcd.h"

#include "config/sd_config.h"
#include "config/sd_config_bind.h"
#include "core/sd_alloc.h"
#include "core/sd_error.h"
#include "state_etcd/etcd_client.h"
#include "state_etcd/etcd_codec.h"
#include "state_etcd/etcd_watch.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct etcd_store {
    struct etcd_client *c;
    struct etcd_watches *ws;
    atomic_int closing;
};

/* ---- configuration ---------------------------------------------------------------------- */

struct etcd_config {
    const char *ns;
    const char *username;
    const char *password;
    int64_t connect_timeout;
    int64_t keepalive_timeout;
    int64_t keepalive_interval;
    int debug_log;
};

#define ETCD_BIND(field, key, type) SD_BIND(struct etcd_config, field, key, type)
static const struct sd_config_binding etcd_rows[] = {
    ETCD_BIND(ns, "etcd.namespace", SD_BIND_STR),
    ETCD_BIND(username, "etcd.username", SD_BIND_STR),
    ETCD_BIND(password, "etcd.password", SD_BIND_STR),
    ETCD_BIND(connect_timeout, "etcd.connectTimeout", SD_BIND_I64),
    ETCD_BIND(keepalive_timeout, "etcd.keepAliveTimeout", SD_BIND_I64),
    ETCD_BIND(keepalive_interval, "etcd.keepAliveInterval", SD_BIND_I64),
    ETCD_BIND(debug_log, "etcd.debugLog", SD_BIND_BOOL),
};
const struct sd_config_bindings sd_state_etcd_config_bindings = SD_BINDINGS("etcd", etcd_rows);

/* ---- calls ------------------------------------------------------------------------------ */

/* Sends req (consumed) to path; *resp is owned on success. */
static int es_call(struct etcd_store *s, const char *path, json_t *req, json_t **resp)
{
    int rc;

    *resp = NULL;
    if (atomic_load(&s->closing)) {
        json_decref(req);
        return SD_ECLOSED;
    }
    rc = etcd_client_call(s->c, path, req, resp);
    json_decref(req);
    return rc;
}

/* Runs a range request (consumed) into *out (owned, also when empty). */
static int es_range_req(struct etcd_store *s, json_t *req, struct sd_kvs *out)
{
    json_t *resp;
    int64_t rev = 0;
    int rc = es_call(s, "/v3/kv/range", req, &resp);

    memset(out, 0, sizeof(*out));
    if (rc == 0) {
        rc = etcd_header_rev(resp, &rev);
    }
    if (rc == 0) {
        rc = etcd_parse_range(resp, etcd_client_ns(s->c), rev, out);
    }
    if (rc != 0) {
        sd_kvs_free(out);
    }
    json_decref(resp);
    return rc;
}

static int es_get(void *ctx, const char *key, struct sd_kv *out)
{
    struct etcd_store *s = ctx;
    struct sd_kvs kvs;
    json_t *req;
    int rc = sd_state_check_key(key);

    memset(out, 0, sizeof(*out));
    if (rc != 0) {
        return rc;
    }
    req = json_object();
    etcd_set_b64(req, "key", etcd_client_ns(s->c), key, strlen(key));
    rc = es_range_req(s, req, &kvs);
    if (rc == 0 && kvs.n == 0) {
        rc = SD_ENOTFOUND;
    }
    if (rc == 0) {
        *out = kvs.items[0];
        memset(&kvs.items[0], 0, sizeof(kvs.items[0]));
    }
    sd_kvs_free(&kvs);
    return rc;
}

static int es_range(void *ctx, const char *prefix, int64_t limit, struct sd_kvs *out)
{
    struct etcd_store *s = ctx;
    json_t *req;

    memset(out, 0, sizeof(*out));
    if (prefix == NULL || limit < 0) {
        return SD_EINVAL;
    }
    req = json_object();
    etcd_set_prefix(req, etcd_client_ns(s->c), prefix);
    if (limit > 0) {
        etcd_set_int(req, "limit", limit);
    }
    return es_range_req(s, req, out);
}

/* The current revision of the store. */
static int es_current_rev(struct etcd_store *s, int64_t *rev)
{
    struct sd_kvs kvs;
    json_t *req = json_object();
    int rc;

    etcd_set_b64(req, "key", etcd_client_ns(s->c), "", 1); /* any key: "<ns>\0" */
    json_object_set_new(req, "count_only", json_true());
    rc = es_range_req(s, req, &kvs);
    *rev = kvs.rev;
    sd_kvs_free(&kvs);
    return rc;
}

static json_t *es_put_req(struct etcd_store *s, const char *key, const void *value, size_t len,
                          int64_t lease)
{
    json_t *req = json_object();

    etcd_set_b64(req, "key", etcd_client_ns(s->c), key, strlen(key));
    etcd_set_b64(req, "value", "", value, len);
    if (lease != 0) {
        etcd_set_int(req, "lease", lease);
    }
    return req;
}

static json_t *es_del_req(struct etcd_store *s, const char *key, int is_prefix)
{
    json_t *req = json_object();

    if (is_prefix) {
        etcd_set_prefix(req, etcd_client_ns(s->c), key);
    } else {
        etcd_set_b64(req, "key", etcd_client_ns(s->c), key, strlen(key));
    }
    return req;
}

static int es_put(void *ctx, const char *key, const void *value, size_t len, int64_t lease,
                  int64_t *rev)
{
    struct etcd_store *s = ctx;
    json_t *resp;
    int64_t r = 0;
    int rc = sd_state_check_put(key, value, len, lease);

    if (rc != 0) {
        return rc;
    }
    rc = es_call(s, "/v3/kv/put", es_put_req(s, key, value, len, lease), &resp);
    if (rc == 0) {
        rc = etcd_header_rev(resp, &r);
    }
    if (rc == 0 && rev != NULL) {
        *rev = r;
    }
    json_decref(resp);
    return rc;
}

static int es_del(void *ctx, const char *key, int is_prefix, int64_t *deleted, int64_t *rev)
{
    struct etcd_store *s = ctx;
    json_t *resp;
    int64_t r = 0, d = 0;
    int rc = is_prefix ? (key == NULL ? SD_EINVAL : 0) : sd_state_check_key(key);

    if (rc != 0) {
        return rc;
    }
    rc = es_call(s, "/v3/kv/deleterange", es_del_req(s, key, is_prefix), &resp);
    if (rc == 0) {
        rc = etcd_header_rev(resp, &r);
    }
    if (rc == 0) {
        rc = etcd_get_int(resp, "deleted", &d);
    }
    if (rc == 0) {
        if (deleted != NULL) {
            *deleted = d;
        }
        if (rev != NULL) {
            *rev = r;
        }
    }
    json_decref(resp);
    return rc;
}

/* ---- transactions ----------------------------------------------------------------------- */

static json_t *es_cmp_json(struct etcd_store *s, const struct sd_cmp *c)
{
    static const char *const targets[] = {"MOD", "CREATE", "VERSION", "VALUE"};
    static const char *const fields[] = {"mod_revision", "create_revision", "version", NULL};
    static const char *const results[] = {"EQUAL", "NOT_EQUAL", "LESS", "GREATER"};
    json_t *j = json_object();

    etcd_set_b64(j, "key", etcd_client_ns(s->c), c->key, strlen(c->key));
    json_object_set_new(j, "target", json_string(targets[c->target]));
    json_object_set_new(j, "result", json_string(results[c->result]));
    if (c->target == SD_CMP_VALUE) {
        etcd_set_b64(j, "value", "", c->value, c->value_len);
    } else {
        etcd_set_int(j, fields[c->target], c->num);
    }
    return j;
}

static json_t *es_ops_json(struct etcd_store *s, const struct sd_op *ops, size_t n)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < n; i++) {
        const struct sd_op *op = &ops[i];
        json_t *req;
        const char *kind;

        switch (op->type) {
        case SD_OP_PUT:
            req = es_put_req(s, op->key, op->value, op->value_len, op->lease);
            kind = "request_put";
            break;
        case SD_OP_DELETE:
        case SD_OP_DELETE_PREFIX:
            req = es_del_req(s, op->key, op->type == SD_OP_DELETE_PREFIX);
            kind = "request_delete_range";
            break;
        case SD_OP_GET:
            req = json_object();
            etcd_set_b64(req, "key", etcd_client_ns(s->c), op->key, strlen(op->key));
            kind = "request_range";
            break;
        default: /* SD_OP_RANGE_PREFIX (sd_state_check_txn refused anything else) */
            req = json_object();
            etcd_set_prefix(req, etcd_client_ns(s->c), op->key);
            kind = "request_range";
            break;
        }
        json_array_append_new(arr, json_pack("{s:o}", kind, req));
    }
    return arr;
}

/* Fills out->reads from the responses of the branch taken. */
static int es_txn_reads(struct etcd_store *s, const json_t *resp, const struct sd_op *ops, size_t n,
                        struct sd_txn_result *out)
{
    const json_t *responses = json_object_get(resp, "responses");
    size_t nreads = 0;

    for (size_t i = 0; i < n; i++) {
        nreads += ops[i].type == SD_OP_GET || ops[i].type == SD_OP_RANGE_PREFIX;
    }
    if (nreads == 0) {
        return 0;
    }
    if (!json_is_array(responses) || json_array_size(responses) != n) {
        return -EPROTO;
    }
    out->reads = sd_xcalloc(nreads, sizeof(*out->reads));
    for (size_t i = 0; i < n; i++) {
        const json_t *r;
        int rc;

        if (ops[i].type != SD_OP_GET && ops[i].type != SD_OP_RANGE_PREFIX) {
            continue;
        }
        r = json_object_get(json_array_get(responses, i), "response_range");
        rc = etcd_parse_range(r, etcd_client_ns(s->c), out->rev, &out->reads[out->nreads]);
        out->nreads++;
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int es_txn(void *ctx, const struct sd_txn *txn, struct sd_txn_result *out)
{
    struct etcd_store *s = ctx;
    json_t *req, *cmps, *resp;
    const json_t *ok;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = sd_state_check_txn(txn);
    if (rc != 0) {
        return rc;
    }
    req = json_object();
    cmps = json_array();
    for (size_t i = 0; i < txn->ncmps; i++) {
        json_array_append_new(cmps, es_cmp_json(s, &txn->cmps[i]));
    }
    json_object_set_new(req, "compare", cmps);
    json_object_set_new(req, "success", es_ops_json(s, txn->then_ops, txn->nthen));
    json_object_set_new(req, "failure", es_ops_json(s, txn->else_ops, txn->nelse));
    rc = es_call(s, "/v3/kv/txn", req, &resp);
    if (rc == 0) {
        rc = etcd_header_rev(resp, &out->rev);
    }
    if (rc == 0) {
        ok = json_object_get(resp, "succeeded");
        if (ok != NULL && !json_is_boolean(ok)) {
            rc = -EPROTO;
        }
        out->succeeded = json_is_true(ok);
    }
    if (rc == 0) {
        rc = out->succeeded ? es_txn_reads(s, resp, txn->then_ops, txn->nthen, out)
                            : es_txn_reads(s, resp, txn->else_ops, txn->nelse, out);
    }
    if (rc != 0) {
        sd_txn_result_free(out);
    }
    json_decref(resp);
    return rc;
}

/* ---- leases ----------------------------------------------------------------------------- */

static int es_lease_grant(void *ctx, int64_t ttl_s, int64_t *lease_id)
{
    struct etcd_store *s = ctx;
    json_t *req, *resp;
    int rc;

    if (ttl_s <= 0) {
        return SD_EINVAL;
    }
    req = json_object();
    etcd_set_int(req, "TTL", ttl_s);
    rc = es_call(s, "/v3/lease/grant", req, &resp);
    if (rc == 0) {
        rc = etcd_get_int(resp, "ID", lease_id);
    }
    if (rc == 0 && *lease_id == 0) {
        rc = -EPROTO;
    }
    json_decref(resp);
    return rc;
}

static int es_lease_keepalive(void *ctx, int64_t lease_id, int64_t *ttl_s)
{
    struct etcd_store *s = ctx;
    json_t *req = json_object(), *resp;
    int64_t ttl = 0;
    int rc;

    etcd_set_int(req, "ID", lease_id);
    rc = es_call(s, "/v3/lease/keepalive", req, &resp);
    if (rc == 0) {
        const json_t *result = json_object_get(resp, "result");
        rc = json_is_object(result) ? etcd_get_int(result, "TTL", &ttl) : -EPROTO;
    }
    if (rc == 0 && ttl <= 0) {
        rc = SD_ENOTFOUND; /* an expired lease answers without TTL */
    }
    if (rc == 0 && ttl_s != NULL) {
        *ttl_s = ttl;
    }
    json_decref(resp);
    return rc;
}

static int es_lease_revoke(void *ctx, int64_t lease_id)
{
    struct etcd_store *s = ctx;
    json_t *req = json_object(), *resp;
    int rc;

    etcd_set_int(req, "ID", lease_id);
    rc = es_call(s, "/v3/lease/revoke", req, &resp);
    json_decref(resp);
    return rc;
}

/* ---- watches, health, lifetime ---------------------------------------------------------- */

static int es_watch(void *ctx, const char *prefix, int64_t start_rev, sd_watch_fn cb, void *arg,
                    struct sd_watch **out)
{
    struct etcd_store *s = ctx;
    int rc = 0;

    *out = NULL;
    if (prefix == NULL || cb == NULL || start_rev < 0) {
        return SD_EINVAL;
    }
    if (atomic_load(&s->closing)) {
        return SD_ECLOSED;
    }
    if (start_rev == 0) {
        rc = es_current_rev(s, &start_rev);
        start_rev++;
    }
    return rc != 0 ? rc : etcd_watch_start(s->ws, prefix, start_rev, cb, arg, out);
}

static void es_unwatch(void *ctx, struct sd_watch *w)
{
    struct etcd_store *s = ctx;

    etcd_watch_stop(s->ws, w);
}

static void es_set_health(void *ctx, struct sd_health *h)
{
    struct etcd_store *s = ctx;

    etcd_client_set_health(s->c, h);
}

static void es_close(void *ctx)
{
    struct etcd_store *s = ctx;

    if (s == NULL) {
        return;
    }
    atomic_store(&s->closing, 1);
    etcd_watches_destroy(s->ws);
    etcd_client_close(s->c);
    free(s);
}

static int es_open_opts(const struct sd_state_etcd_opts *o, void **ctx)
{
    struct etcd_store *s;
    struct etcd_client *c;
    int rc = etcd_client_open(o, &c);

    *ctx = NULL;
    if (rc != 0) {
        return rc;
    }
    s = sd_xcalloc(1, sizeof(*s));
    s->c = c;
    s->ws = etcd_watches_create(c);
    atomic_init(&s->closing, 0);
    *ctx = s;
    return 0;
}

int sd_state_etcd_open_opts(const struct sd_state_etcd_opts *o, struct sd_state **out)
{
    void *ctx;
    int rc = es_open_opts(o, &ctx);

    *out = NULL;
    if (rc == 0) {
        *out = sd_xmalloc(sizeof(**out));
        (*out)->ops = &sd_state_etcd_ops;
        (*out)->ctx = ctx;
    }
    return rc;
}

static int es_open(const struct sd_config *cfg, const char *endpoint, void **ctx)
{
    struct etcd_config ec;
    struct sd_state_etcd_opts o;

    *ctx = NULL;
    if (cfg == NULL) {
        return SD_EINVAL;
    }
    sd_config_fill(cfg, &sd_state_etcd_config_bindings, &ec);
    o = (struct sd_state_etcd_opts){endpoint,
                                    ec.ns,
                                    ec.username,
                                    ec.password,
                                    ec.connect_timeout,
                                    ec.keepalive_interval,
                                    ec.keepalive_timeout,
                                    ec.debug_log};
    return es_open_opts(&o, ctx);
}

const struct sd_state_ops sd_state_etcd_ops = {
    .name = "etcd",
    .open = es_open,
    .close = es_close,
    .get = es_get,
    .range = es_range,
    .put = es_put,
    .del = es_del,
    .txn = es_txn,
    .lease_grant = es_lease_grant,
    .lease_keepalive = es_lease_keepalive,
    .lease_revoke = es_lease_revoke,
    .watch = es_watch,
    .unwatch = es_unwatch,
    .set_health = es_set_health,
};
