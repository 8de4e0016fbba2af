/* test_bounded.c: unit tests of storage/sd_bounded: a step that ends in time returns its
 * result and leaves arg with the caller; a step that overruns returns -ETIMEDOUT within its
 * bound, keeps its key busy (a second run is refused) until it ends, then frees its arg; and
 * destroy waits for abandoned steps.
 *
 * DESIGN: steps block on a gate (mutex + condition) the test opens; no sleeps decide results. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "storage/sd_bounded.h"

struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int is_open;
    int ran;
    int freed;
};

static struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};

static void gate_reset(void)
{
    pthread_mutex_lock(&g.lock);
    g.is_open = 0;
    g.ran = 0;
    g.freed = 0;
    pthread_mutex_unlock(&g.lock);
}

static void gate_open(void)
{
    pthread_mutex_lock(&g.lock);
    g.is_open = 1;
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.lock);
}

static int step_wait_gate(void *arg)
{
    int *out = arg;

    pthread_mutex_lock(&g.lock);
    g.ran++;
    while (!g.is_open) {
        pthread_cond_wait(&g.cond, &g.lock);
    }
    pthread_mutex_unlock(&g.lock);
    *out = 42;
    return -5;
}

static void step_free(void *arg)
{
    pthread_mutex_lock(&g.lock);
    g.freed++;
    pthread_mutex_unlock(&g.lock);
    free(arg);
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_in_time_returns_result(void **state)
{
    struct sd_bounded *b = sd_bounded_create();
    int *out = calloc(1, sizeof(int));

    (void)state;
    gate_reset();
    gate_open();
    assert_int_equal(sd_bounded_run(b, "k", step_wait_gate, out, step_free, 10000), -5);
    assert_int_equal(*out, 42); /* the caller still owns arg and reads the output */
    assert_int_equal(g.freed, 0);
    assert_false(sd_bounded_is_busy(b, "k"));
    free(out);
    sd_bounded_destroy(b);
}

static void test_overrun_is_abandoned_and_key_busy(void **state)
{
    struct sd_bounded *b = sd_bounded_create();
    int *out = calloc(1, sizeof(int));
    int *other = calloc(1, sizeof(int));
    int64_t t0;

    (void)state;
    gate_reset();
    t0 = mono_ms();
    assert_int_equal(sd_bounded_run(b, "slice/a", step_wait_gate, out, step_free, 100), -ETIMEDOUT);
    assert_true(mono_ms() - t0 >= 100);
    assert_true(mono_ms() - t0 < 5000);
    assert_true(sd_bounded_is_busy(b, "slice/a"));
    assert_false(sd_bounded_is_busy(b, "slice/b"));
    /* the same step is not started twice while the abandoned one runs */
    assert_int_equal(sd_bounded_run(b, "slice/a", step_wait_gate, other, step_free, 100), -EBUSY);
    assert_int_equal(g.ran, 1);
    gate_open();
    sd_bounded_destroy(b); /* waits for the abandoned step, which frees its arg */
    assert_int_equal(g.freed, 1);
    free(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_time_returns_result),
        cmocka_unit_test(test_overrun_is_abandoned_and_key_busy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
