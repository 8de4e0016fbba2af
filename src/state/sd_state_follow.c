/* sd_state_follow.c: a prefix watch that re-subscribes after gaps and calls back, coalesced,
 * on its own thread (see sd_state_follow.h).
 *
 * DESIGN: the store's dispatcher thread only flags (changed, watch ended) under the mutex and
 * signals; the follower thread does everything that may block: subscribing (a range read for
 * the current revision, then a watch from the next one), unwatching an ended watch, calling fn,
 * and waiting out the backoff of a failed subscription (100 ms doubling to 5 s). */
#include "state/sd_state_follow.h"
#include "state/sd_state.h"
#include "core/sd_alloc.h"
#include "core/sd_cond.h"
#include "core/sd_error.h"
#include "core/sd_log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SD_FOLLOW_BACKOFF_FIRST_MS 100
#define SD_FOLLOW_BACKOFF_MAX_MS 5000

struct sd_state_follow {
    struct sd_state *st;
    char *prefix;
    char *name;
    sd_state_follow_fn fn;
    void *arg;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* CLOCK_MONOTONIC */
    struct sd_watch *watch; /* the follower thread's current watch, or NULL */
    int is_changed;         /* fn is due (a change, the start or a gap) */
    int is_watch_ended;     /* the watch ended with an error: unwatch and subscribe again */
    int is_store_closed;    /* the store ended the watch because it closes: never subscribe */
    int is_stopping;
    unsigned subscriptions;
};

static void sd__follow_on_watch(const struct sd_watch_event *events, size_t n, int64_t rev, int rc,
                                void *arg)
{
    struct sd_state_follow *f = arg;

    (void)events;
    (void)rev;
    pthread_mutex_lock(&f->mu);
    if (n > 0) {
        f->is_changed = 1;
    } else if (rc == SD_ECLOSED) {
        f->is_store_closed = 1;
    } else if (rc < 0) {
        f->is_watch_ended = 1;
    }
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

/* Reads the prefix's current revision and watches from the next one. Called without mu. */
static int sd__follow_subscribe(struct sd_state_follow *f, struct sd_watch **out)
{
    struct sd_kvs kvs;
    int rc;

    memset(&kvs, 0, sizeof(kvs));
    rc = sd_state_range(f->st, f->prefix, 1, &kvs);
    if (rc == 0) {
        rc = sd_state_watch(f->st, f->prefix, kvs.rev + 1, sd__follow_on_watch, f, out);
    }
    sd_kvs_free(&kvs);
    return rc;
}

static void *sd__follow_main(void *arg)
{
    struct sd_state_follow *f = arg;
    int64_t backoff_ms = SD_FOLLOW_BACKOFF_FIRST_MS;

    pthread_mutex_lock(&f->mu);
    while (!f->is_stopping) {
        if (f->is_watch_ended) {
            struct sd_watch *ended = f->watch;
            f->watch = NULL;
            f->is_watch_ended = 0;
            pthread_mutex_unlock(&f->mu);
            sd_state_unwatch(f->st, ended);
            pthread_mutex_lock(&f->mu);
            continue;
        }
        if (f->watch == NULL && !f->is_store_closed) {
            struct sd_watch *w = NULL;
            int rc;
            pthread_mutex_unlock(&f->mu);
            rc = sd__follow_subscribe(f, &w);
            pthread_mutex_lock(&f->mu);
            if (rc != 0) {
                sd_log_warn("follow", "%s: cannot watch %s (%s); retrying in %lld ms", f->name,
                            f->prefix, sd_strerror(rc), (long long)backoff_ms);
                sd_cond_wait_ms(&f->cv, &f->mu, backoff_ms);
                backoff_ms = backoff_ms * 2 < SD_FOLLOW_BACKOFF_MAX_MS ? backoff_ms * 2
                                                                       : SD_FOLLOW_BACKOFF_MAX_MS;
                continue;
            }
            if (f->subscriptions > 0) {
                sd_log_info("follow", "%s: watching %s again", f->name, f->prefix);
            }
            backoff_ms = SD_FOLLOW_BACKOFF_FIRST_MS;
            f->watch = w;
            f->subscriptions++;
            f->is_changed = 1; /* the start, or a gap that may have hidden a change */
            continue;
        }
        if (f->is_changed) {
            f->is_changed = 0;
            pthread_mutex_unlock(&f->mu);
            f->fn(f->arg);
            pthread_mutex_lock(&f->mu);
            continue;
        }
        pthread_cond_wait(&f->cv, &f->mu);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

int sd_state_follow_start(struct sd_state *st, const char *prefix, const char *name,
                          sd_state_follow_fn fn, void *arg, struct sd_state_follow **out)
{
    struct sd_state_follow *f = sd_xcalloc(1, sizeof(*f));
    int rc;

    f->st = st;
    f->prefix = sd_xstrdup(prefix);
    f->name = sd_xstrdup(name);
    f->fn = fn;
    f->arg = arg;
    pthread_mutex_init(&f->mu, NULL);
    sd_cond_init_monotonic(&f->cv);
    rc = pthread_create(&f->thread, NULL, sd__follow_main, f);
    if (rc != 0) {
        pthread_cond_destroy(&f->cv);
        pthread_mutex_destroy(&f->mu);
        free(f->prefix);
        free(f->name);
        free(f);
        return -rc;
    }
    *out = f;
    return 0;
}

void sd_state_follow_stop(struct sd_state_follow *f)
{
    if (f == NULL) {
        return;
    }
    pthread_mutex_lock(&f->mu);
    f->is_stopping = 1;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL);
    if (f->watch != NULL && !f->is_store_closed) {
        sd_state_unwatch(f->st, f->watch);
    }
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f->prefix);
    free(f->name);
    free(f);
}

unsigned sd_state_follow_subscriptions(struct sd_state_follow *f)
{
    unsigned n;

    pthread_mutex_lock(&f->mu);
    n = f->subscriptions;
    pthread_mutex_unlock(&f->mu);
    return n;
}
