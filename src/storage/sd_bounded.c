/* sd_bounded.c: steps bounded by a timeout, abandoned to the background when they overrun.
 *
 * DESIGN: each run starts a detached thread for the step and waits on a condition variable
 * with a deadline. A job record is shared by the waiter and the step's thread under one mutex:
 * whoever is last frees it. If the step ends in time, the waiter frees the job and returns the
 * step's result; the caller keeps arg. On timeout the waiter marks the job abandoned and leaves
 * it in the busy list; the step's thread, when it ends, unlinks the job and frees arg and the
 * job. Destroy waits for the busy list to empty: an abandoned step still uses the stores the
 * owner closes next, so shutdown is bounded by the longest stuck step, as a synchronous step
 * would be. Nothing is cancelled: every bounded step must be safe to repeat while a previous
 * attempt may still complete (idempotent staging puts, ledger-guarded imports). */
#include "storage/sd_bounded.h"
#include "core/sd_alloc.h"
#include "core/sd_cond.h"
#include "core/sd_time.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct sd_bounded_job {
    struct sd_bounded *owner;
    char *key;
    sd_bounded_fn fn;
    void *arg;
    sd_bounded_free_fn free_fn;
    int rc;
    int is_done;
    int is_abandoned;
    struct sd_bounded_job *next; /* busy list (abandoned jobs) */
};

struct sd_bounded {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* a job ended */
    struct sd_bounded_job *busy;
};

struct sd_bounded *sd_bounded_create(void)
{
    struct sd_bounded *b = sd_xcalloc(1, sizeof(*b));

    pthread_mutex_init(&b->lock, NULL);
    sd_cond_init_monotonic(&b->cond);
    return b;
}

static void sd__job_free(struct sd_bounded_job *job)
{
    free(job->key);
    free(job);
}

static void *sd__job_main(void *arg)
{
    struct sd_bounded_job *job = arg;
    struct sd_bounded *b = job->owner;
    int rc = job->fn(job->arg);

    pthread_mutex_lock(&b->lock);
    job->rc = rc;
    job->is_done = 1;
    if (job->is_abandoned) {
        struct sd_bounded_job **pp;
        for (pp = &b->busy; *pp != NULL; pp = &(*pp)->next) {
            if (*pp == job) {
                *pp = job->next;
                break;
            }
        }
        if (job->free_fn != NULL) {
            job->free_fn(job->arg);
        }
        sd__job_free(job);
    }
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

static int sd__is_busy_locked(struct sd_bounded *b, const char *key)
{
    for (struct sd_bounded_job *j = b->busy; j != NULL; j = j->next) {
        if (strcmp(j->key, key) == 0) {
            return 1;
        }
    }
    return 0;
}

int sd_bounded_is_busy(struct sd_bounded *b, const char *key)
{
    int busy;

    pthread_mutex_lock(&b->lock);
    busy = sd__is_busy_locked(b, key);
    pthread_mutex_unlock(&b->lock);
    return busy;
}

int sd_bounded_run(struct sd_bounded *b, const char *key, sd_bounded_fn fn, void *arg,
                   sd_bounded_free_fn free_fn, int64_t timeout_ms)
{
    struct sd_bounded_job *job;
    int64_t deadline_ms;
    pthread_attr_t attr;
    pthread_t thread;
    int rc;

    if (sd_bounded_is_busy(b, key)) {
        return -EBUSY;
    }
    job = sd_xcalloc(1, sizeof(*job));
    job->owner = b;
    job->key = sd_xstrdup(key);
    job->fn = fn;
    job->arg = arg;
    job->free_fn = free_fn;
    deadline_ms = sd_mono_ms() + timeout_ms;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&thread, &attr, sd__job_main, job);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        sd__job_free(job);
        return -rc;
    }
    pthread_mutex_lock(&b->lock);
    while (!job->is_done) {
        if (sd_cond_wait_until_ms(&b->cond, &b->lock, deadline_ms) == -ETIMEDOUT && !job->is_done) {
            job->is_abandoned = 1;
            job->next = b->busy;
            b->busy = job;
            pthread_mutex_unlock(&b->lock);
            return -ETIMEDOUT;
        }
    }
    rc = job->rc;
    pthread_mutex_unlock(&b->lock);
    sd__job_free(job);
    return rc;
}

void sd_bounded_destroy(struct sd_bounded *b)
{
    if (b == NULL) {
        return;
    }
    pthread_mutex_lock(&b->lock);
    while (b->busy != NULL) {
        pthread_cond_wait(&b->cond, &b->lock);
    }
    pthread_mutex_unlock(&b->lock);
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->lock);
    free(b);
}
