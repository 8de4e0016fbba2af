/* sd_parallel.c: a bounded parallel loop. DESIGN: the items are handed out through one index
 * under a mutex; helper threads are started per call and joined before return (the cleanups run
 * a pass every few minutes, so no pool is kept). */
#include "storage/sd_parallel.h"

#include <pthread.h>

struct sd_parallel {
    pthread_mutex_t lock;
    size_t next;
    size_t n;
    sd_parallel_fn fn;
    void *arg;
};

static void *sd__parallel_main(void *arg)
{
    struct sd_parallel *p = arg;

    for (;;) {
        size_t i;
        pthread_mutex_lock(&p->lock);
        i = p->next;
        if (i < p->n) {
            p->next++;
        }
        pthread_mutex_unlock(&p->lock);
        if (i >= p->n) {
            return NULL;
        }
        p->fn(i, p->arg);
    }
}

void sd_parallel_for(size_t n, int concurrency, sd_parallel_fn fn, void *arg)
{
    struct sd_parallel p = {PTHREAD_MUTEX_INITIALIZER, 0, n, fn, arg};
    pthread_t threads[SD_PARALLEL_MAX_THREADS];
    size_t nthreads = 0;

    if (concurrency > SD_PARALLEL_MAX_THREADS) {
        concurrency = SD_PARALLEL_MAX_THREADS;
    }
    while (nthreads + 1 < (size_t)concurrency && nthreads + 1 < n &&
           pthread_create(&threads[nthreads], NULL, sd__parallel_main, &p) == 0) {
        nthreads++;
    }
    sd__parallel_main(&p); /* the caller's thread works too */
    for (size_t i = 0; i < nthreads; i++) {
        pthread_join(threads[i], NULL);
    }
    pthread_mutex_destroy(&p.lock);
}
