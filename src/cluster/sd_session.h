/* sd_session.h: a node's lease in the state store, kept alive, with the keys that announce the
 * node (group membership, volumes) attached to it.
 *
 * While the node runs, a thread renews the lease every third of its TTL. When the lease is lost
 * (the store says it expired, or no renewal succeeded for a whole TTL, e.g. etcd unreachable),
 * the session reports "not live": whatever the node owned through it (coordinator work, its
 * place in a group) must stop being acted on. It then grants a new lease as soon as the store
 * answers, puts the kept keys again with it and reports "live". Stopping revokes the lease, so
 * the node's keys vanish at once instead of after the TTL. */
#ifndef SD_SESSION_H
#define SD_SESSION_H

#include <stdint.h>

struct sd_state;
struct sd_session;

/* Called on the session's thread when it becomes live (1) or stops being live (0). */
typedef void (*sd_session_fn)(void *arg, int is_live);

/* Starts a session of ttl_s seconds (>= 1) on st (borrowed until sd_session_stop). name labels
 * log lines. on_change may be NULL. Returns 0 or -errno; the first lease is granted on the
 * session's thread (sd_session_wait_live waits for it). */
int sd_session_start(struct sd_state *st, int64_t ttl_s, const char *name, sd_session_fn on_change,
                     void *arg, struct sd_session **out);

/* Keeps key = value (copied) attached to the session's lease: put at once when live and again
 * with every new lease. Returns 0, or the store's error of the immediate put (the key is kept
 * and put with the next lease anyway). */
int sd_session_keep(struct sd_session *s, const char *key, const char *value);

/* Waits up to timeout_ms for the session to be live. Returns 1 if live, 0 on timeout. */
int sd_session_wait_live(struct sd_session *s, int64_t timeout_ms);

/* 1 while the session holds a lease the store renewed less than a TTL ago. */
int sd_session_is_live(struct sd_session *s);

/* Stops the thread, revokes the lease (best effort) and frees s. NULL is fine. */
void sd_session_stop(struct sd_session *s);

#endif
