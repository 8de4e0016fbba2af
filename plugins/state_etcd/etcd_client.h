/* etcd_client.h: the HTTP side of the etcd backend: endpoints with failover, authentication,
 * unary JSON calls and the setup of watch streams, over libcurl.
 *
 * Failover: a request that cannot reach the current endpoint (connect error) or gets 503 (no
 * leader) is sent to the next one; the endpoint that answered becomes the current one. */
#ifndef ETCD_CLIENT_H
#define ETCD_CLIENT_H

#include "state_etcd/state_etcd.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct etcd_client;
struct sd_health;

/* Opens a client (copies o) and, with a user name, authenticates. Returns 0, SD_EINVAL (bad
 * option), -EACCES (wrong credentials), SD_EUNHEALTHY (no endpoint reachable), -ETIMEDOUT. */
int etcd_client_open(const struct sd_state_etcd_opts *o, struct etcd_client **out);
void etcd_client_close(struct etcd_client *c);

/* The key prefix ("" or ending with '/'). */
const char *etcd_client_ns(const struct etcd_client *c);
/* How long a watch stream may stay silent before it is reconnected. */
int64_t etcd_client_silence_ms(const struct etcd_client *c);
void etcd_client_set_health(struct etcd_client *c, struct sd_health *h);

/* POSTs body (borrowed) to path ("/v3/kv/range") and on success sets *resp to the parsed
 * answer (owned; json_decref). Returns 0 or the code of an error answer (etcd_error_rc),
 * SD_EUNHEALTHY (no endpoint reachable or none has a leader: nothing was applied),
 * -ETIMEDOUT (sent but not answered in time: the outcome is unknown) or -EPROTO. */
int etcd_client_call(struct etcd_client *c, const char *path, const json_t *body, json_t **resp);

/* A stream request: an easy handle POSTing body to path on the current endpoint with the
 * client's headers and timeouts (the caller sets the write callback and adds it to a multi
 * handle). Free with etcd_client_stream_free. */
struct etcd_stream {
    CURL *easy;
    struct curl_slist *hdrs;
    char *body;
    size_t endpoint; /* index of the endpoint it goes to */
};
void etcd_client_stream_init(struct etcd_client *c, const char *path, const json_t *body,
                             struct etcd_stream *s);
void etcd_client_stream_free(struct etcd_stream *s);
/* Reports a stream that failed: unreachable moves on to the next endpoint, unauthenticated
 * renews the token. what is logged (at most once in a while) with the endpoint. */
void etcd_client_stream_failed(struct etcd_client *c, const struct etcd_stream *s, int unreachable,
                               int unauthenticated, const char *what);

#endif
