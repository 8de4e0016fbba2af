/* sd_eval_pool.c: worker threads and a bounded FIFO of template evaluation jobs (see
 * sd_eval_pool.h).
 *
 * DESIGN: one mutex guards the ring of queued jobs and the stopping flag; workers wait on a
 * condition variable. A worker lowers its own priority (Linux nice applies per thread) so the
 * event loops win the CPU when both want it. On stop, workers keep taking jobs until the ring is
 * empty, running each cancelled, so every submitter gets its answer; the thread's template VM is
 * freed before it exits. */
#include "pipeline/sd_eval_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/sd_error.h"
#include "core/sd_log.h"
#include "core/sd_time.h"
#include "pipeline/sd_template.h"

#define SD_EVAL_POOL_MAX_THREADS 8
#define SD_EVAL_POOL_NICE 5

struct sd_eval_job {
    sd_eval_job_fn fn;
    void *arg;
};

struct sd_eval_pool {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    struct sd_eval_job *ring; /* max_queued slots */
    size_t max_queued;
    size_t head; /* next job to run */
    size_t n;    /* queued jobs */
    int is_stopping;
    unsigned nthreads; /* started */
    pthread_t threads[SD_EVAL_POOL_MAX_THREADS];
};

static void *sd__eval_worker(void *arg)
{
    struct sd_eval_pool *pool = arg;

    /* best effort: at worst the workers compete with the loops as equals */
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), SD_EVAL_POOL_NICE);
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        struct sd_eval_job job;
        int is_cancelled;
        while (pool->n == 0 && !pool->is_stopping) {
            pthread_cond_wait(&pool->ready, &pool->lock);
        }
        if (pool->n == 0) {
            break;
        }
        job = pool->ring[pool->head];
        pool->head = (pool->head + 1) % pool->max_queued;
        pool->n--;
        is_cancelled = pool->is_stopping;
        pthread_mutex_unlock(&pool->lock);
        sd_template_set_deadline(sd_mono_ms() + SD_TEMPLATE_MAX_JOB_MS);
        job.fn(job.arg, is_cancelled);
        pthread_mutex_lock(&pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);
    sd_template_thread_cleanup();
    return NULL;
}

int sd_eval_pool_create(unsigned nthreads, size_t max_queued, struct sd_eval_pool **out)
{
    struct sd_eval_pool *pool;
    int rc = 0;

    *out = NULL;
    if (nthreads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = cores > 0 ? (unsigned)cores : 1;
    }
    if (nthreads > SD_EVAL_POOL_MAX_THREADS) {
        nthreads = SD_EVAL_POOL_MAX_THREADS;
    }
    pool = calloc(1, sizeof(*pool));
    if (pool == NULL) {
        return -ENOMEM;
    }
    pool->max_queued = max_queued > 0 ? max_queued : 1;
    pool->ring = calloc(pool->max_queued, sizeof(*pool->ring));
    if (pool->ring == NULL) {
        free(pool);
        return -ENOMEM;
    }
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->ready, NULL);
    for (; pool->nthreads < nthreads; pool->nthreads++) {
        rc = -pthread_create(&pool->threads[pool->nthreads], NULL, sd__eval_worker, pool);
        if (rc != 0) {
            break;
        }
    }
    if (rc != 0) {
        sd_eval_pool_destroy(pool);
        return rc;
    }
    sd_log_info("eval-pool", "%u template workers, queue of %zu", pool->nthreads, pool->max_queued);
    *out = pool;
    return 0;
}

int sd_eval_pool_submit(struct sd_eval_pool *pool, sd_eval_job_fn fn, void *arg)
{
    int rc = 0;

    pthread_mutex_lock(&pool->lock);
    if (pool->is_stopping) {
        rc = SD_ECLOSED;
    } else if (pool->n == pool->max_queued) {
        rc = SD_ELIMIT;
    } else {
        struct sd_eval_job *slot = &pool->ring[(pool->head + pool->n) % pool->max_queued];
        slot->fn = fn;
        slot->arg = arg;
        pool->n++;
        pthread_cond_signal(&pool->ready);
    }
    pthread_mutex_unlock(&pool->lock);
    return rc;
}

int sd_eval_pool_is_open(const struct sd_eval_pool *pool)
{
    return pool != NULL && !__atomic_load_n(&pool->is_stopping, __ATOMIC_ACQUIRE);
}

void sd_eval_pool_close(struct sd_eval_pool *pool)
{
    unsigned nthreads;

    if (pool == NULL) {
        return;
    }
    pthread_mutex_lock(&pool->lock);
    __atomic_store_n(&pool->is_stopping, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&pool->ready);
    nthreads = pool->nthreads;
    pool->nthreads = 0; /* joined once, whoever closes again */
    pthread_mutex_unlock(&pool->lock);
    for (unsigned i = 0; i < nthreads; i++) {
        pthread_join(pool->threads[i], NULL);
    }
}

void sd_eval_pool_destroy(struct sd_eval_pool *pool)
{
    if (pool == NULL) {
        return;
    }
    sd_eval_pool_close(pool);
    pthread_cond_destroy(&pool->ready);
    pthread_mutex_destroy(&pool->lock);
    free(pool->ring);
    free(pool);
}
