/* test_cond.c: unit tests of core/sd_cond: waits on the monotonic clock end at their timeout or
 * deadline, a past deadline times out at once, and a signal ends a wait early. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>

#include "core/sd_cond.h"
#include "core/sd_time.h"

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int is_set;
};

static int setup(void **state)
{
    static struct waiter w;

    pthread_mutex_init(&w.mu, NULL);
    sd_cond_init_monotonic(&w.cv);
    w.is_set = 0;
    *state = &w;
    return 0;
}

static int teardown(void **state)
{
    struct waiter *w = *state;

    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    return 0;
}

/* The deadline is on sd_mono_ms's clock: a cv timed on CLOCK_REALTIME would return at once. */
static void test_until_times_out_at_deadline(void **state)
{
    struct waiter *w = *state;
    int64_t deadline = sd_mono_ms() + 80;
    int rc;

    pthread_mutex_lock(&w->mu);
    do {
        rc = sd_cond_wait_until_ms(&w->cv, &w->mu, deadline);
    } while (rc == 0);
    pthread_mutex_unlock(&w->mu);
    assert_int_equal(rc, -ETIMEDOUT);
    assert_true(sd_mono_ms() >= deadline);
    assert_true(sd_mono_ms() < deadline + 5000);
}

static void test_until_past_deadline_returns_at_once(void **state)
{
    struct waiter *w = *state;
    int64_t start = sd_mono_ms();
    int rc;

    pthread_mutex_lock(&w->mu);
    rc = sd_cond_wait_until_ms(&w->cv, &w->mu, start - 1000);
    assert_int_equal(sd_cond_wait_until_ms(&w->cv, &w->mu, -5), -ETIMEDOUT);
    pthread_mutex_unlock(&w->mu);
    assert_int_equal(rc, -ETIMEDOUT);
    assert_true(sd_mono_ms() - start < 1000);
}

static void *signaller(void *arg)
{
    struct waiter *w = arg;

    pthread_mutex_lock(&w->mu);
    w->is_set = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void test_until_signal_ends_wait(void **state)
{
    struct waiter *w = *state;
    int64_t deadline = sd_mono_ms() + 30000;
    pthread_t t;

    pthread_mutex_lock(&w->mu);
    assert_int_equal(pthread_create(&t, NULL, signaller, w), 0);
    while (!w->is_set) {
        assert_int_equal(sd_cond_wait_until_ms(&w->cv, &w->mu, deadline), 0);
    }
    pthread_mutex_unlock(&w->mu);
    pthread_join(t, NULL);
    assert_true(sd_mono_ms() < deadline - 20000);
}

static void test_wait_ms_waits_its_timeout(void **state)
{
    struct waiter *w = *state;
    int64_t start = sd_mono_ms();
    int waits = 0;

    pthread_mutex_lock(&w->mu);
    while (sd_mono_ms() - start < 60) {
        sd_cond_wait_ms(&w->cv, &w->mu, 61);
        waits++;
    }
    pthread_mutex_unlock(&w->mu);
    /* one wait (a few with spurious wake-ups), not a spin of waits that return at once */
    assert_in_range(waits, 1, 3);
    assert_true(sd_mono_ms() - start < 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_until_times_out_at_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_until_past_deadline_returns_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_until_signal_ends_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_ms_waits_its_timeout, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
