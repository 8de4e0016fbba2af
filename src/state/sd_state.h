/* sd_state.h: the state-store interface (etcd v3 semantics) and the opening of its backends (listed
 * in sd_backends.c).
 *
 * Everything streamd keeps as coordination state (definitions, file and slice entities,
 * statistics, leases, locks) goes through this interface. Backends: "embedded" (in-process,
 * durable in the data dir) and "etcd" (an etcd cluster). Both pass tests/unit/state_contract.h.
 *
 * Semantics, as in etcd v3:
 * - One global revision counter, incremented exactly once per put/delete/txn that changes at
 *   least one key. Calls that change nothing leave it as it is.
 * - Per key: create_rev (revision of the put that created it), mod_rev (last change),
 *   version (puts since creation, 1 after the first), lease (0 = none).
 * - A missing key compares as create_rev = mod_rev = version = 0, so "key absent" is
 *   CMP(key, SD_CMP_CREATE_REV, SD_CMP_EQUAL, 0). A VALUE compare on a missing key is false.
 * - Keys are non-empty C strings; values are arbitrary bytes. Limits (as etcd defaults): at
 *   most SD_STATE_MAX_TXN_OPS ops per txn branch (SD_ELIMIT) and about SD_STATE_MAX_REQUEST
 *   bytes of keys plus values per call (SD_ELIMIT).
 *
 * Return codes: 0, a negated errno, or SD_ENOTFOUND, SD_ECONFLICT, SD_EINVAL, SD_ELIMIT,
 * SD_ECLOSED, SD_EUNHEALTHY (the backend cannot persist writes now: the call, or a write it
 * depended on, failed and nothing of it is applied; reads keep working and writes are accepted
 * again once the backend can persist),
 * SD_ECORRUPT (open found damaged data). A call that returned 0 is durable. A networked
 * backend also returns -ETIMEDOUT (a request sent but not answered: a write may or may not
 * have applied) and -EACCES (credentials refused); see plugins/state_etcd/state_etcd.h.
 *
 * Threads: every call is thread-safe, except that sd_state_close must not race with any other
 * call on the same store. Calls block (disk sync, network); never call them from an event
 * loop thread that must stay responsive. */
#ifndef SD_STATE_H
#define SD_STATE_H

#include <stddef.h>
#include <stdint.h>

struct sd_config;
struct sd_health;

/* etcd's default --max-txn-ops. */
#define SD_STATE_MAX_TXN_OPS 128
/* etcd's default --max-request-bytes. */
#define SD_STATE_MAX_REQUEST (1572864)

/* One key-value pair, owned: key and value are heap strings freed by sd_kv_free. value is
 * NUL-terminated for convenience (value_len does not count the NUL); it may be NULL only in
 * DELETE watch events. */
struct sd_kv {
    char *key;
    char *value;
    size_t value_len;
    int64_t create_rev, mod_rev, version, lease;
};

/* A list of pairs sorted by key. rev is the store revision the read saw; more is 1 when a
 * limit cut the result short. Owned; free with sd_kvs_free. */
struct sd_kvs {
    struct sd_kv *items;
    size_t n;
    int64_t rev;
    int more;
};

/* Frees the members of kv (not kv itself) and zeroes it. NULL is fine. */
void sd_kv_free(struct sd_kv *kv);
/* Frees every item and the items array (not kvs itself) and zeroes it. NULL is fine. */
void sd_kvs_free(struct sd_kvs *kvs);

enum sd_cmp_target { SD_CMP_MOD_REV, SD_CMP_CREATE_REV, SD_CMP_VERSION, SD_CMP_VALUE };
enum sd_cmp_result { SD_CMP_EQUAL, SD_CMP_NOT_EQUAL, SD_CMP_LESS, SD_CMP_GREATER };

/* "target(key) result num" (or "value(key) result value" for SD_CMP_VALUE, comparing bytes
 * as memcmp with the shorter value first on a common prefix). All pointers are borrowed. */
struct sd_cmp {
    const char *key;
    enum sd_cmp_target target;
    enum sd_cmp_result result;
    int64_t num;
    const char *value;
    size_t value_len;
};

enum sd_op_type { SD_OP_PUT, SD_OP_DELETE, SD_OP_DELETE_PREFIX, SD_OP_GET, SD_OP_RANGE_PREFIX };

/* One txn op. key is the prefix for SD_OP_DELETE_PREFIX and SD_OP_RANGE_PREFIX. value,
 * value_len and lease are used by SD_OP_PUT only. All pointers are borrowed. */
struct sd_op {
    enum sd_op_type type;
    const char *key;
    const char *value;
    size_t value_len;
    int64_t lease;
};

/* If every compare holds, apply then_ops, else else_ops; all of it atomically, as one
 * revision. Ops apply in order, so a GET after a PUT of the same branch sees the PUT. The
 * same key written twice in one branch (or a PUT/DELETE inside a DELETE_PREFIX of the same
 * branch) is SD_EINVAL. */
struct sd_txn {
    const struct sd_cmp *cmps;
    size_t ncmps;
    const struct sd_op *then_ops;
    size_t nthen;
    const struct sd_op *else_ops;
    size_t nelse;
};

/* Owned result of a txn; free with sd_txn_result_free. rev is the store revision after the
 * txn (unchanged when the branch taken changed nothing). reads holds one sd_kvs per GET or
 * RANGE_PREFIX op of the branch taken, in op order (a GET of a missing key gives n = 0). */
struct sd_txn_result {
    int succeeded;
    int64_t rev;
    struct sd_kvs *reads;
    size_t nreads;
};

/* Frees the reads (not r itself) and zeroes r. NULL is fine. */
void sd_txn_result_free(struct sd_txn_result *r);

enum sd_watch_event_type { SD_WATCH_PUT, SD_WATCH_DELETE };

/* kv is borrowed for the duration of the callback only. For DELETE: kv->key is set,
 * kv->mod_rev is the deletion revision, value is NULL and the other numbers are 0. */
struct sd_watch_event {
    enum sd_watch_event_type type;
    const struct sd_kv *kv;
};

/* Watch callback. Called with the events of one revision (one put/delete/txn) matching the
 * watched prefix at a time, in revision order, from a dispatcher thread owned by the store
 * (never from the thread calling put/txn). events == NULL, n == 0 and rc < 0 means the watch
 * ended: SD_ECONFLICT when start_rev was already compacted, SD_ECLOSED when the store is
 * closing; no further calls follow. The callback must not block long (it delays every watch
 * of the store); it may call the store, including sd_state_unwatch on its own watch. */
typedef void (*sd_watch_fn)(const struct sd_watch_event *events, size_t n, int64_t rev, int rc,
                            void *arg);

struct sd_watch;

/* A backend. Every call has the contract of the sd_state_* wrapper of the same name below.
 * Backends are listed in sd_state.c and picked by name. */
struct sd_state_ops {
    const char *name;
    int (*open)(const struct sd_config *cfg, const char *path_or_endpoint, void **ctx);
    void (*close)(void *ctx);
    int (*get)(void *ctx, const char *key, struct sd_kv *out);
    int (*range)(void *ctx, const char *prefix, int64_t limit, struct sd_kvs *out);
    int (*put)(void *ctx, const char *key, const void *value, size_t len, int64_t lease,
               int64_t *rev);
    int (*del)(void *ctx, const char *key, int is_prefix, int64_t *deleted, int64_t *rev);
    int (*txn)(void *ctx, const struct sd_txn *txn, struct sd_txn_result *out);
    int (*lease_grant)(void *ctx, int64_t ttl_s, int64_t *lease_id);
    int (*lease_keepalive)(void *ctx, int64_t lease_id, int64_t *ttl_s);
    int (*lease_revoke)(void *ctx, int64_t lease_id);
    int (*watch)(void *ctx, const char *prefix, int64_t start_rev, sd_watch_fn cb, void *arg,
                 struct sd_watch **out);
    void (*unwatch)(void *ctx, struct sd_watch *w);
    void (*set_health)(void *ctx, struct sd_health *h);
};

/* An open store: a backend and its context. */
struct sd_state {
    const struct sd_state_ops *ops;
    void *ctx;
};

/* Opens the backend named by config key "state.backend" (default "embedded", or "etcd" when
 * "etcd.endpoint" is set), at "state.embedded.path" (default "<dataDir>/state") for the
 * embedded backend, or at "etcd.endpoint" with the etcd.* keys (plugins/state_etcd). An unknown
 * name is SD_EINVAL. cfg is
 * borrowed. On success *out is owned by the caller; close with sd_state_close. */
int sd_state_open(const struct sd_config *cfg, struct sd_state **out);

/* Opens backend name ("embedded" or "etcd") at path_or_endpoint (a directory for "embedded",
 * created if missing; the etcd.endpoint list for "etcd"). cfg may be NULL for "embedded". Returns
 * 0, SD_EINVAL (unknown name), SD_ECORRUPT (stored data damaged before its tail) or -errno. */
int sd_state_open_backend(const char *name, const struct sd_config *cfg,
                          const char *path_or_endpoint, struct sd_state **out);

/* Closes st: ends every remaining watch (its callback gets rc = SD_ECLOSED, after which the
 * store frees it; do not unwatch it afterwards), stops background threads and frees st. No
 * other call on st may be in flight or follow, except from watch callbacks, which then get
 * SD_ECLOSED. NULL is fine. */
void sd_state_close(struct sd_state *st);

/* Looks up key. On success *out holds an owned copy (free with sd_kv_free). Returns 0 or
 * SD_ENOTFOUND. */
static inline int sd_state_get(struct sd_state *st, const char *key, struct sd_kv *out)
{
    return st->ops->get(st->ctx, key, out);
}

/* Reads every key starting with prefix ("" = all), sorted by key. limit > 0 returns at most
 * limit items and sets out->more when more existed; limit 0 means no limit. *out is owned
 * (free with sd_kvs_free), also when empty. */
static inline int sd_state_range(struct sd_state *st, const char *prefix, int64_t limit,
                                 struct sd_kvs *out)
{
    return st->ops->range(st->ctx, prefix, limit, out);
}

/* Sets key to len bytes at value, attached to lease (0 = none; an unknown or expired lease is
 * SD_ENOTFOUND). A put always creates a revision; *rev (may be NULL) receives it. */
static inline int sd_state_put(struct sd_state *st, const char *key, const void *value, size_t len,
                               int64_t lease, int64_t *rev)
{
    return st->ops->put(st->ctx, key, value, len, lease, rev);
}

/* Deletes key, or every key starting with key when is_prefix. *deleted (may be NULL) gets the
 * count, *rev (may be NULL) the store revision after the call (unchanged when nothing was
 * deleted). Deleting nothing is not an error. */
static inline int sd_state_del(struct sd_state *st, const char *key, int is_prefix,
                               int64_t *deleted, int64_t *rev)
{
    return st->ops->del(st->ctx, key, is_prefix, deleted, rev);
}

/* Runs txn (see struct sd_txn). A failed compare is not an error: out->succeeded is 0 and
 * the else branch ran. *out is owned; free with sd_txn_result_free. Returns 0, SD_EINVAL,
 * SD_ELIMIT, SD_ENOTFOUND (a PUT names an unknown lease; nothing is applied) or an error. */
static inline int sd_state_txn(struct sd_state *st, const struct sd_txn *txn,
                               struct sd_txn_result *out)
{
    return st->ops->txn(st->ctx, txn, out);
}

/* Grants a lease of ttl_s seconds (> 0) and returns its id (never 0) in *lease_id. */
static inline int sd_state_lease_grant(struct sd_state *st, int64_t ttl_s, int64_t *lease_id)
{
    return st->ops->lease_grant(st->ctx, ttl_s, lease_id);
}

/* Restarts the lease's countdown at its full TTL, returned in *ttl_s (may be NULL).
 * SD_ENOTFOUND when the lease expired, was revoked or never existed. */
static inline int sd_state_lease_keepalive(struct sd_state *st, int64_t lease_id, int64_t *ttl_s)
{
    return st->ops->lease_keepalive(st->ctx, lease_id, ttl_s);
}

/* Revokes the lease and deletes the keys attached to it (as one revision). SD_ENOTFOUND when
 * unknown. Expired leases are revoked the same way by the store itself. */
static inline int sd_state_lease_revoke(struct sd_state *st, int64_t lease_id)
{
    return st->ops->lease_revoke(st->ctx, lease_id);
}

/* Watches keys starting with prefix. start_rev 0 delivers revisions after the current one;
 * start_rev > 0 first replays history from start_rev when it is still kept, else cb gets
 * rc = SD_ECONFLICT once (re-read with sd_state_range and watch from its rev + 1). cb and arg
 * are borrowed until the watch ends. *out is owned; release with sd_state_unwatch. */
static inline int sd_state_watch(struct sd_state *st, const char *prefix, int64_t start_rev,
                                 sd_watch_fn cb, void *arg, struct sd_watch **out)
{
    return st->ops->watch(st->ctx, prefix, start_rev, cb, arg, out);
}

/* Stops and frees w. After it returns, cb is never called again (if called from inside cb
 * itself, the running call completes and no other follows). NULL is fine. */
static inline void sd_state_unwatch(struct sd_state *st, struct sd_watch *w)
{
    st->ops->unwatch(st->ctx, w);
}

/* Makes the store report to h (borrowed; must outlive st): while it cannot persist writes it
 * marks component "state" broken there with the reason, and clears it once writes succeed
 * again. Call once after open, before other threads use st. */
static inline void sd_state_set_health(struct sd_state *st, struct sd_health *h)
{
    st->ops->set_health(st->ctx, h);
}

/* Request checks shared by the backends, so that every backend refuses the same requests
 * before doing anything. Each returns 0, SD_EINVAL or SD_ELIMIT. */
/* A key: non-empty. */
int sd_state_check_key(const char *key);
/* A put: its key, value (NULL only when len is 0), lease (>= 0) and size. */
int sd_state_check_put(const char *key, const void *value, size_t len, int64_t lease);
/* A txn: compares, op kinds and keys, at most SD_STATE_MAX_TXN_OPS per branch, etcd's rule
 * against a key written twice in a branch, and the total size. */
int sd_state_check_txn(const struct sd_txn *txn);
/* 1 for PUT, DELETE and DELETE_PREFIX. */
int sd_state_op_is_write(const struct sd_op *op);

struct sd_config_bindings;
/* The keys that choose the state store (for the registry). */
extern const struct sd_config_bindings sd_state_config_bindings;

#endif
