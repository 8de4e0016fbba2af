/* sd_bounded.h: steps bounded by a timeout (the reference's operator timeouts): a blocking step
 * runs on its own thread while the caller waits at most timeout_ms; a step that overruns is
 * abandoned (it runs to its end in the background) and its key stays busy until it ends, so the
 * caller never starts the same step twice at once.
 *
 * Threads: sd_bounded_run and sd_bounded_is_busy from one thread at a time (the operator);
 * steps run on their own detached threads. */
#ifndef SD_BOUNDED_H
#define SD_BOUNDED_H

#include <stdint.h>

struct sd_bounded;

/* A step: returns 0 or a negative code. Runs on its own thread; arg is its only input/output. */
typedef int (*sd_bounded_fn)(void *arg);
/* Frees a step's arg. */
typedef void (*sd_bounded_free_fn)(void *arg);

/* Returns an empty set of steps (owned; free with sd_bounded_destroy). */
struct sd_bounded *sd_bounded_create(void);
/* Runs fn(arg) under key and waits up to timeout_ms for it. Returns fn's result (the caller still
 * owns arg and reads the step's outputs from it), -ETIMEDOUT (arg now belongs to the step, freed
 * with free_fn when fn returns; key is busy until then), -EBUSY (an abandoned step of key still
 * runs; fn was not started; the caller owns arg) or -errno if no thread could be started. key is
 * copied. */
int sd_bounded_run(struct sd_bounded *b, const char *key, sd_bounded_fn fn, void *arg,
                   sd_bounded_free_fn free_fn, int64_t timeout_ms);
/* Returns 1 while an abandoned step of key still runs. */
int sd_bounded_is_busy(struct sd_bounded *b, const char *key);
/* Waits for every abandoned step to end (they use what the caller is about to close), then
 * frees. NULL is fine. */
void sd_bounded_destroy(struct sd_bounded *b);

#endif
