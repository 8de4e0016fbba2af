/* sd_state_follow.h: follows a key prefix of the state store and calls back when it changed.
 *
 * A node keeps its own view of what others write (definitions, file and slice states) by
 * re-reading a prefix whenever it changed. A follower watches the prefix and calls fn on its
 * own thread: once at start, then after every change, coalesced (changes that arrive while fn
 * runs cause one more call, not one each). A watch that ends (history compacted past its
 * revision, store errors such as an unreachable etcd) is re-subscribed from a fresh read with
 * backoff, and fn is called again since a change may have been missed in the gap; fn must
 * therefore read the current state rather than rely on what changed. */
#ifndef SD_STATE_FOLLOW_H
#define SD_STATE_FOLLOW_H

struct sd_state;
struct sd_state_follow;

typedef void (*sd_state_follow_fn)(void *arg);

/* Starts following prefix of st (borrowed; it must stay open until sd_state_follow_stop).
 * name labels log lines. Returns 0 and sets *out, or -errno (thread creation). */
int sd_state_follow_start(struct sd_state *st, const char *prefix, const char *name,
                          sd_state_follow_fn fn, void *arg, struct sd_state_follow **out);

/* Stops the follower: waits for a running fn to return, ends the watch and frees f. Call it
 * before closing the store. NULL is fine. Never from inside fn. */
void sd_state_follow_stop(struct sd_state_follow *f);

/* How many times the follower subscribed (1 after start, +1 per re-subscription): for tests
 * and the log. Thread-safe. */
unsigned sd_state_follow_subscriptions(struct sd_state_follow *f);

#endif
