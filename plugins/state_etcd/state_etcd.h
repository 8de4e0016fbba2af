/* state_etcd.h: the "etcd" state backend: the sd_state contract over the v3 JSON gateway of
 * an etcd 3.4+ cluster (libcurl + jansson).
 *
 * Every key is stored under etcd.namespace and returned without it, so several clusters can
 * share one etcd. Errors beyond the sd_state.h contract:
 * - SD_EUNHEALTHY: no endpoint could be reached or none has a leader; nothing was applied
 *   (reads fail the same way: there is no local copy). The caller tries again later. Logged (rate-limited) with the endpoint, never a password.
 * - -ETIMEDOUT: a request was sent but not answered within etcd.connectTimeout, so a write
 *   may or may not have applied: the caller tries again with a txn comparing revisions.
 * - -EACCES: the credentials were refused (at open: a clear error, logged).
 * - -EPROTO: an answer etcd should not send (garbled JSON, keys outside the namespace).
 * Both SD_EUNHEALTHY and -ETIMEDOUT mark the store unhealthy (sd_state_set_health) until a
 * request succeeds again.
 * Watches: one streaming POST per watch on its own thread; a stream that ends, fails or stays
 * silent (no event or progress notification for etcd.keepAliveInterval +
 * etcd.keepAliveTimeout) is reopened from the last delivered revision + 1. */
#ifndef STATE_ETCD_H
#define STATE_ETCD_H

#include "state/sd_state.h"

#include <stdint.h>

extern const struct sd_state_ops sd_state_etcd_ops;

/* Options of one store; strings are copied by open. */
struct sd_state_etcd_opts {
    const char *endpoints; /* "host:port" or URLs, comma-separated; tried in order */
    const char *ns;        /* key prefix; '/' is appended unless empty (as the reference) */
    const char *username;  /* "" or NULL = no authentication */
    const char *password;  /* never logged */
    int64_t connect_timeout_ms;
    int64_t keepalive_interval_ms;
    int64_t keepalive_timeout_ms;
    int debug_log; /* log every request at debug level */
};

/* Opens a store from explicit options (tests, tools). Returns 0 with *out set (close with
 * sd_state_close), or an error as above. */
int sd_state_etcd_open_opts(const struct sd_state_etcd_opts *o, struct sd_state **out);

struct sd_config_bindings;
/* The etcd.* keys. */
extern const struct sd_config_bindings sd_state_etcd_config_bindings;

#endif
