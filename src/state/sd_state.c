/* sd_state.c: sd_state_open and the result free helpers.
 *
 * DESIGN: the state.backend name picks an ops table from the backend registry (sd_backends.h).
 * sd_state_open only reads config and delegates; the backend owns its context, threads and
 * files. Nothing here keeps state between calls, so every function is thread-safe. Errors
 * are logged once here, at open, where the caller gets a code and decides what to do. */
#include "state/sd_state.h"

#include "config/sd_config.h"
#include "config/sd_config_bind.h"
#include "core/sd_alloc.h"
#include "core/sd_error.h"
#include "core/sd_log.h"
#include "sd_backends.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void sd_kv_free(struct sd_kv *kv)
{
    if (kv == NULL) {
        return;
    }
    free(kv->key);
    free(kv->value);
    memset(kv, 0, sizeof(*kv));
}

void sd_kvs_free(struct sd_kvs *kvs)
{
    if (kvs == NULL) {
        return;
    }
    for (size_t i = 0; i < kvs->n; i++) {
        sd_kv_free(&kvs->items[i]);
    }
    free(kvs->items);
    memset(kvs, 0, sizeof(*kvs));
}

void sd_txn_result_free(struct sd_txn_result *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->nreads; i++) {
        sd_kvs_free(&r->reads[i]);
    }
    free(r->reads);
    memset(r, 0, sizeof(*r));
}

int sd_state_open_backend(const char *name, const struct sd_config *cfg,
                          const char *path_or_endpoint, struct sd_state **out)
{
    const struct sd_state_ops *ops;
    const void *found;
    struct sd_state *st;
    void *ctx = NULL;
    int rc;

    *out = NULL;
    if (path_or_endpoint == NULL) {
        return SD_EINVAL;
    }
    rc = sd_backend_find(SD_BACKEND_STATE, name, &found);
    if (rc != 0) {
        return rc;
    }
    ops = found;
    rc = ops->open(cfg, path_or_endpoint, &ctx);
    if (rc != 0) {
        return rc;
    }
    st = sd_xmalloc(sizeof(*st));
    st->ops = ops;
    st->ctx = ctx;
    *out = st;
    return 0;
}

int sd_state_check_key(const char *key)
{
    return (key == NULL || key[0] == '\0') ? SD_EINVAL : 0;
}

int sd_state_check_put(const char *key, const void *value, size_t len, int64_t lease)
{
    if (sd_state_check_key(key) != 0 || (value == NULL && len > 0) || lease < 0) {
        return SD_EINVAL;
    }
    if (len > SD_STATE_MAX_REQUEST || strlen(key) + len > SD_STATE_MAX_REQUEST) {
        return SD_ELIMIT;
    }
    return 0;
}

int sd_state_op_is_write(const struct sd_op *op)
{
    return op->type == SD_OP_PUT || op->type == SD_OP_DELETE || op->type == SD_OP_DELETE_PREFIX;
}

/* Checks one branch: op kinds, keys, etcd's duplicate-key rule. Adds its bytes to *bytes. */
static int state_check_ops(const struct sd_op *ops, size_t n, size_t *bytes)
{
    if (n > 0 && ops == NULL) {
        return SD_EINVAL;
    }
    if (n > SD_STATE_MAX_TXN_OPS) {
        return SD_ELIMIT;
    }
    for (size_t i = 0; i < n; i++) {
        const struct sd_op *a = &ops[i];
        switch (a->type) {
        case SD_OP_PUT:
            if (sd_state_check_key(a->key) != 0 || (a->value == NULL && a->value_len > 0) ||
                a->lease < 0) {
                return SD_EINVAL;
            }
            *bytes += a->value_len;
            break;
        case SD_OP_DELETE:
        case SD_OP_GET:
            if (sd_state_check_key(a->key) != 0) {
                return SD_EINVAL;
            }
            break;
        case SD_OP_DELETE_PREFIX:
        case SD_OP_RANGE_PREFIX:
            if (a->key == NULL) {
                return SD_EINVAL;
            }
            break;
        default:
            return SD_EINVAL;
        }
        *bytes += strlen(a->key);
    }
    /* a put may not meet another put of the same key or any delete covering it */
    for (size_t i = 0; i < n; i++) {
        if (ops[i].type != SD_OP_PUT) {
            continue;
        }
        for (size_t j = 0; j < n; j++) {
            const struct sd_op *b = &ops[j];
            if (j == i || !sd_state_op_is_write(b)) {
                continue;
            }
            if ((b->type != SD_OP_DELETE_PREFIX && strcmp(ops[i].key, b->key) == 0) ||
                (b->type == SD_OP_DELETE_PREFIX &&
                 strncmp(ops[i].key, b->key, strlen(b->key)) == 0)) {
                return SD_EINVAL;
            }
        }
    }
    return 0;
}

int sd_state_check_txn(const struct sd_txn *txn)
{
    size_t bytes = 0;
    int rc;

    if (txn == NULL || (txn->ncmps > 0 && txn->cmps == NULL)) {
        return SD_EINVAL;
    }
    if (txn->ncmps > SD_STATE_MAX_TXN_OPS) {
        return SD_ELIMIT;
    }
    for (size_t i = 0; i < txn->ncmps; i++) {
        const struct sd_cmp *c = &txn->cmps[i];
        if (sd_state_check_key(c->key) != 0 || (unsigned)c->target > SD_CMP_VALUE ||
            (unsigned)c->result > SD_CMP_GREATER ||
            (c->target == SD_CMP_VALUE && c->value == NULL && c->value_len > 0)) {
            return SD_EINVAL;
        }
        bytes += strlen(c->key) + (c->target == SD_CMP_VALUE ? c->value_len : 0);
    }
    rc = state_check_ops(txn->then_ops, txn->nthen, &bytes);
    if (rc == 0) {
        rc = state_check_ops(txn->else_ops, txn->nelse, &bytes);
    }
    if (rc == 0 && bytes > SD_STATE_MAX_REQUEST) {
        rc = SD_ELIMIT;
    }
    return rc;
}

/* The keys that choose the state store, filled once by sd_config_fill. */
struct sd_state_config {
    const char *backend;
    const char *etcd_endpoint;
    const char *embedded_path;
};

#define SD_STATE_BIND(field, key) SD_BIND(struct sd_state_config, field, key, SD_BIND_STR)
static const struct sd_config_binding sd_state_rows[] = {
    SD_STATE_BIND(backend, "state.backend"),
    SD_STATE_BIND(etcd_endpoint, "etcd.endpoint"),
    SD_STATE_BIND(embedded_path, "state.embedded.path"),
};
const struct sd_config_bindings sd_state_config_bindings = SD_BINDINGS("state", sd_state_rows);

int sd_state_open(const struct sd_config *cfg, struct sd_state **out)
{
    struct sd_state_config c;
    const char *where;
    int rc;

    /* the config loader derives both defaults (etcd when etcd.endpoint is set; the path below
     * dataDir), so every key has a value here */
    sd_config_fill(cfg, &sd_state_config_bindings, &c);
    where = strcmp(c.backend, "etcd") == 0 ? c.etcd_endpoint : c.embedded_path;
    rc = sd_state_open_backend(c.backend, cfg, where, out);
    if (rc != 0) {
        sd_log_error("state", "open %s state store at %s: %s", c.backend, where, sd_strerror(rc));
    } else {
        sd_log_info("state", "opened %s state store at %s", c.backend, where);
    }
    return rc;
}

void sd_state_close(struct sd_state *st)
{
    if (st == NULL) {
        return;
    }
    st->ops->close(st->ctx);
    free(st);
}
