/* sd_gzip_pool.c: shared compression workers of the `parallel` gzip implementation.
 *
 * DESIGN. `submit_mu` admits one batch at a time and is only tried (a busy pool makes the
 * submitter compress its jobs alone). The admitted submitter publishes its job array under
 * `mu` and wakes the workers; workers and submitter take the next job index under `mu` and
 * compress without it, each with its own compressor (a job is a whole member, so no state
 * crosses jobs); the submitter waits on `done_cv` until every job is done, then unpublishes
 * the array, so no worker touches it after the run returns. Ownership: the jobs and their
 * output buffers belong to the submitter; the workers' compressors to the pool. */
#include "pipeline/sd_gzip_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

struct sd__worker {
    struct sd_gzip_pool *pool;
    struct sd_gzip *gz;
    pthread_t tid;
    int started;
};

struct sd_gzip_pool {
    pthread_mutex_t submit_mu;
    pthread_mutex_t mu;
    pthread_cond_t work_cv;
    pthread_cond_t done_cv;
    int level;
    struct sd_gzip_job *jobs; /* njobs entries of the admitted submitter */
    size_t njobs;
    size_t next;
    size_t done;
    int stop;
    int nworkers;
    struct sd__worker *workers;
};

/* Takes and runs jobs until none is left; gz must have no open member. */
static void sd__pool_work(struct sd_gzip_pool *pool, struct sd_gzip *gz)
{
    for (;;) {
        struct sd_gzip_job *job;
        pthread_mutex_lock(&pool->mu);
        if (pool->next >= pool->njobs) {
            pthread_mutex_unlock(&pool->mu);
            return;
        }
        job = &pool->jobs[pool->next++];
        pthread_mutex_unlock(&pool->mu);

        job->out.len = 0;
        job->rc = sd_gzip_compress(gz, job->in, job->len, 1, &job->out);

        pthread_mutex_lock(&pool->mu);
        pool->done++;
        if (pool->done == pool->njobs) {
            pthread_cond_broadcast(&pool->done_cv);
        }
        pthread_mutex_unlock(&pool->mu);
    }
}

static void *sd__pool_main(void *arg)
{
    struct sd__worker *wk = arg;
    struct sd_gzip_pool *pool = wk->pool;

    for (;;) {
        pthread_mutex_lock(&pool->mu);
        while (!pool->stop && pool->next >= pool->njobs) {
            pthread_cond_wait(&pool->work_cv, &pool->mu);
        }
        if (pool->stop) {
            pthread_mutex_unlock(&pool->mu);
            return NULL;
        }
        pthread_mutex_unlock(&pool->mu);
        sd__pool_work(pool, wk->gz);
    }
}

void sd_gzip_pool_destroy(struct sd_gzip_pool *pool)
{
    if (pool == NULL) {
        return;
    }
    pthread_mutex_lock(&pool->mu);
    pool->stop = 1;
    pthread_cond_broadcast(&pool->work_cv);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < pool->nworkers; i++) {
        if (pool->workers[i].started) {
            pthread_join(pool->workers[i].tid, NULL);
        }
        sd_gzip_destroy(pool->workers[i].gz);
    }
    free(pool->workers);
    pthread_cond_destroy(&pool->work_cv);
    pthread_cond_destroy(&pool->done_cv);
    pthread_mutex_destroy(&pool->mu);
    pthread_mutex_destroy(&pool->submit_mu);
    free(pool);
}

int sd_gzip_pool_create(enum sd_gzip_impl impl, int level, int nworkers, struct sd_gzip_pool **out)
{
    struct sd_gzip_pool *pool = calloc(1, sizeof(*pool));
    int rc = 0;

    *out = NULL;
    if (pool == NULL) {
        return -ENOMEM;
    }
    pthread_mutex_init(&pool->submit_mu, NULL);
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->work_cv, NULL);
    pthread_cond_init(&pool->done_cv, NULL);
    pool->level = level;
    pool->workers = calloc((size_t)nworkers, sizeof(*pool->workers));
    if (pool->workers == NULL) {
        sd_gzip_pool_destroy(pool);
        return -ENOMEM;
    }
    pool->nworkers = nworkers;
    for (int i = 0; i < nworkers; i++) {
        struct sd__worker *wk = &pool->workers[i];
        wk->pool = pool;
        rc = sd_gzip_create(impl, level, &wk->gz);
        if (rc != 0) {
            break;
        }
        rc = -pthread_create(&wk->tid, NULL, sd__pool_main, wk);
        if (rc != 0) {
            break;
        }
        wk->started = 1;
    }
    if (rc != 0) {
        sd_gzip_pool_destroy(pool);
        return rc;
    }
    *out = pool;
    return 0;
}

int sd_gzip_pool_level(const struct sd_gzip_pool *pool)
{
    return pool->level;
}

void sd_gzip_pool_run(struct sd_gzip_pool *pool, struct sd_gzip_job *jobs, size_t n,
                      struct sd_gzip *gz)
{
    if (pthread_mutex_trylock(&pool->submit_mu) != 0) {
        for (size_t i = 0; i < n; i++) {
            jobs[i].out.len = 0;
            jobs[i].rc = sd_gzip_compress(gz, jobs[i].in, jobs[i].len, 1, &jobs[i].out);
        }
        return;
    }
    pthread_mutex_lock(&pool->mu);
    pool->jobs = jobs;
    pool->njobs = n;
    pool->next = 0;
    pool->done = 0;
    pthread_cond_broadcast(&pool->work_cv);
    pthread_mutex_unlock(&pool->mu);

    sd__pool_work(pool, gz);

    pthread_mutex_lock(&pool->mu);
    while (pool->done < pool->njobs) {
        pthread_cond_wait(&pool->done_cv, &pool->mu);
    }
    pool->jobs = NULL;
    pool->njobs = 0;
    pool->next = 0;
    pool->done = 0;
    pthread_mutex_unlock(&pool->mu);
    pthread_mutex_unlock(&pool->submit_mu);
}
