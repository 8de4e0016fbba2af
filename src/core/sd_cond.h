/* sd_cond.h: condition variables on the monotonic clock, for waits that a wall-clock jump must
 * not stretch or cut short. */
#ifndef SD_COND_H
#define SD_COND_H

#include <pthread.h>
#include <stdint.h>

/* Initializes cv to time its waits on CLOCK_MONOTONIC. */
void sd_cond_init_monotonic(pthread_cond_t *cv);

/* Waits on cv (initialized by sd_cond_init_monotonic, mu held) until signalled or ms passed. */
void sd_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms);

/* Waits on cv (initialized by sd_cond_init_monotonic, mu held) until signalled or the monotonic
 * clock (sd_mono_ms) reaches deadline_ms. Returns -ETIMEDOUT when the deadline passed, else 0
 * (signalled or a spurious wake-up: a caller that must wait out the deadline re-waits). */
int sd_cond_wait_until_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ms);

#endif
