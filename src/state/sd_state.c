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
