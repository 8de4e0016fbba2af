/* sd_session.c: a kept-alive lease with the node's announcing keys (see sd_session.h).
 *
 * DESIGN: one thread per session. Without a lease it grants one (retrying with backoff from
 * 100 ms up to a third of the TTL), puts every kept key with it and turns live. With a lease it
 * sleeps a third of the TTL, then renews: SD_ENOTFOUND (expired, or revoked by someone) loses the
 * lease at once; other errors lose it only when the last renewal is a TTL old, since the store
 * may simply be slow or failing over. Keys are put one by one: a key missing for a moment after
 * a new grant is fine for announcements. */
#include "cluster/sd_session.h"
#include "state/sd_state.h"
#include "core/sd_alloc.h"
#include "core/sd_cond.h"
#include "core/sd_error.h"
#include "core/sd_log.h"
#include "core/sd_time.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SD_SESSION_BACKOFF_FIRST_MS 100

struct sd_session_key {
    char *key;
    char *value;
};

struct sd_session {
    struct sd_state *st;
    int64_t ttl_ms;
    char *name;
    sd_session_fn on_change;
    void *arg;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC; signalled on stop and on becoming live */
    struct sd_session_key *keys;
    size_t nkeys;
    int64_t lease;      /* 0: none */
    int64_t renewed_ms; /* monotonic time of the last grant or renewal */
    int is_live;
    int is_stopping;
};

static void sd__session_set_live(struct sd_session *s, int is_live)
{
    if (s->is_live == is_live) {
        return;
    }
    s->is_live = is_live;
    pthread_cond_broadcast(&s->cv);
    if (s->on_change != NULL) {
        pthread_mutex_unlock(&s->mu);
        s->on_change(s->arg, is_live);
        pthread_mutex_lock(&s->mu);
    }
}

/* Grants a lease and puts the kept keys with it (mu held; released around store calls). */
static int sd__session_grant(struct sd_session *s)
{
    int64_t lease = 0;
    int rc;

    pthread_mutex_unlock(&s->mu);
    rc = sd_state_lease_grant(s->st, (s->ttl_ms + 999) / 1000, &lease);
    pthread_mutex_lock(&s->mu);
    if (rc != 0) {
        return rc;
    }
    s->lease = lease;
    s->renewed_ms = sd_mono_ms();
    for (size_t i = 0; i < s->nkeys && rc == 0; i++) {
        char *key = sd_xstrdup(s->keys[i].key), *value = sd_xstrdup(s->keys[i].value);
        pthread_mutex_unlock(&s->mu);
        rc = sd_state_put(s->st, key, value, strlen(value), lease, NULL);
        pthread_mutex_lock(&s->mu);
        free(key);
        free(value);
    }
    if (rc != 0) {
        s->lease = 0; /* the keys are put again with the next lease; this one expires */
    }
    return rc;
}

/* Renews the lease (mu held; released around the store call). Returns 0 while it holds. */
static int sd__session_renew(struct sd_session *s)
{
    int64_t lease = s->lease, ttl = 0;
    int rc;

    pthread_mutex_unlock(&s->mu);
    rc = sd_state_lease_keepalive(s->st, lease, &ttl);
    pthread_mutex_lock(&s->mu);
    if (rc == 0 && ttl > 0) {
        s->renewed_ms = sd_mono_ms();
        return 0;
    }
    if (rc == 0 || rc == SD_ENOTFOUND) {
        sd_log_warn("session", "%s: lease %lld expired", s->name, (long long)lease);
        return SD_ENOTFOUND;
    }
    if (sd_mono_ms() - s->renewed_ms >= s->ttl_ms) {
        sd_log_warn("session", "%s: lease %lld not renewed for %lld ms (%s)", s->name,
                    (long long)lease, (long long)s->ttl_ms, sd_strerror(rc));
        return rc;
    }
    return 0; /* keep trying within the TTL */
}

static void *sd__session_main(void *arg)
{
    struct sd_session *s = arg;
    int64_t backoff_ms = SD_SESSION_BACKOFF_FIRST_MS, period_ms = s->ttl_ms / 3;

    pthread_mutex_lock(&s->mu);
    while (!s->is_stopping) {
        int rc;
        if (s->lease == 0) {
            rc = sd__session_grant(s);
            if (rc != 0) {
                sd_log_warn("session", "%s: cannot get a lease (%s); retrying in %lld ms", s->name,
                            sd_strerror(rc), (long long)backoff_ms);
                sd_cond_wait_ms(&s->cv, &s->mu, backoff_ms);
                backoff_ms = backoff_ms * 2 < period_ms ? backoff_ms * 2 : period_ms;
                continue;
            }
            backoff_ms = SD_SESSION_BACKOFF_FIRST_MS;
            sd__session_set_live(s, 1);
            continue;
        }
        sd_cond_wait_ms(&s->cv, &s->mu, period_ms);
        if (s->is_stopping) {
            break;
        }
        if (sd__session_renew(s) != 0) {
            s->lease = 0;
            sd__session_set_live(s, 0);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int sd_session_start(struct sd_state *st, int64_t ttl_s, const char *name, sd_session_fn on_change,
                     void *arg, struct sd_session **out)
{
    struct sd_session *s = sd_xcalloc(1, sizeof(*s));
    int rc;

    s->st = st;
    s->ttl_ms = (ttl_s < 1 ? 1 : ttl_s) * 1000;
    s->name = sd_xstrdup(name);
    s->on_change = on_change;
    s->arg = arg;
    pthread_mutex_init(&s->mu, NULL);
    sd_cond_init_monotonic(&s->cv);
    rc = pthread_create(&s->thread, NULL, sd__session_main, s);
    if (rc != 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s->name);
        free(s);
        return -rc;
    }
    *out = s;
    return 0;
}

int sd_session_keep(struct sd_session *s, const char *key, const char *value)
{
    int64_t lease;
    int rc = 0;

    pthread_mutex_lock(&s->mu);
    s->keys = sd_xrealloc(s->keys, (s->nkeys + 1) * sizeof(*s->keys));
    s->keys[s->nkeys++] = (struct sd_session_key){sd_xstrdup(key), sd_xstrdup(value)};
    lease = s->is_live ? s->lease : 0;
    pthread_mutex_unlock(&s->mu);
    if (lease != 0) {
        rc = sd_state_put(s->st, key, value, strlen(value), lease, NULL);
    }
    return rc;
}

int sd_session_wait_live(struct sd_session *s, int64_t timeout_ms)
{
    int64_t deadline = sd_mono_ms() + timeout_ms;
    int live;

    pthread_mutex_lock(&s->mu);
    while (!s->is_live && sd_mono_ms() < deadline) {
        sd_cond_wait_ms(&s->cv, &s->mu, deadline - sd_mono_ms());
    }
    live = s->is_live;
    pthread_mutex_unlock(&s->mu);
    return live;
}

int sd_session_is_live(struct sd_session *s)
{
    int live;

    pthread_mutex_lock(&s->mu);
    live = s->is_live && sd_mono_ms() - s->renewed_ms < s->ttl_ms;
    pthread_mutex_unlock(&s->mu);
    return live;
}

void sd_session_stop(struct sd_session *s)
{
    if (s == NULL) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->is_stopping = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    if (s->lease != 0) {
        (void)sd_state_lease_revoke(s->st, s->lease);
    }
    for (size_t i = 0; i < s->nkeys; i++) {
        free(s->keys[i].key);
        free(s->keys[i].value);
    }
    free(s->keys);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s->name);
    free(s);
}
