/* test_eval_pool.c: the template evaluation pool's life cycle as its borrowers see it: jobs run
 * while it is open, a full queue answers SD_ELIMIT, and after sd_eval_pool_close it reports
 * closed, refuses jobs with SD_ECLOSED and runs the queued ones cancelled, until destroy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "core/sd_error.h"
#include "pipeline/sd_eval_pool.h"

/* A job that waits for the gate, then counts its run (and whether it was cancelled). */
struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int is_open;
    int started;
    int ran;
    int cancelled;
};

static void gated_job(void *arg, int is_cancelled)
{
    struct gate *g = arg;

    pthread_mutex_lock(&g->lock);
    g->started++;
    pthread_cond_broadcast(&g->cond);
    while (!g->is_open && !is_cancelled) {
        pthread_cond_wait(&g->cond, &g->lock);
    }
    g->ran++;
    g->cancelled += is_cancelled;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

static void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->is_open = 1;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

static void gate_wait(struct gate *g, const int *counter, int n)
{
    pthread_mutex_lock(&g->lock);
    while (*counter < n) {
        pthread_cond_wait(&g->cond, &g->lock);
    }
    pthread_mutex_unlock(&g->lock);
}

static void *close_main(void *pool)
{
    sd_eval_pool_close(pool);
    return NULL;
}

static void test_open_close_destroy(void **state)
{
    struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0};
    struct sd_eval_pool *pool = NULL;

    (void)state;
    assert_false(sd_eval_pool_is_open(NULL));
    assert_int_equal(sd_eval_pool_create(1, 1, &pool), 0);
    assert_true(sd_eval_pool_is_open(pool));
    /* the one worker blocks on the first job; the second fills the queue of one */
    assert_int_equal(sd_eval_pool_submit(pool, gated_job, &g), 0);
    gate_wait(&g, &g.started, 1);
    assert_int_equal(sd_eval_pool_submit(pool, gated_job, &g), 0);
    assert_int_equal(sd_eval_pool_submit(pool, gated_job, &g), SD_ELIMIT);
    gate_open(&g);
    gate_wait(&g, &g.ran, 2);
    assert_int_equal(g.cancelled, 0);

    sd_eval_pool_close(pool);
    assert_false(sd_eval_pool_is_open(pool));
    assert_int_equal(sd_eval_pool_submit(pool, gated_job, &g), SD_ECLOSED);
    sd_eval_pool_close(pool); /* again: nothing to join */
    assert_int_equal(g.ran, 2);
    sd_eval_pool_destroy(pool);
    sd_eval_pool_destroy(NULL);
}

static void test_close_cancels_queued_jobs(void **state)
{
    struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0};
    struct sd_eval_pool *pool = NULL;
    pthread_t closer;

    (void)state;
    assert_int_equal(sd_eval_pool_create(1, 4, &pool), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sd_eval_pool_submit(pool, gated_job, &g), 0);
    }
    gate_wait(&g, &g.started, 1); /* the first job runs and waits at the gate */
    assert_int_equal(pthread_create(&closer, NULL, close_main, pool), 0);
    while (sd_eval_pool_is_open(pool)) {
        sched_yield();
    }
    /* closing: later submits fail; the running job finishes, the two queued ones run cancelled */
    assert_int_equal(sd_eval_pool_submit(pool, gated_job, &g), SD_ECLOSED);
    gate_open(&g);
    assert_int_equal(pthread_join(closer, NULL), 0);
    assert_int_equal(g.ran, 3);
    assert_int_equal(g.cancelled, 2);
    sd_eval_pool_destroy(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_close_destroy),
        cmocka_unit_test(test_close_cancels_queued_jobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
