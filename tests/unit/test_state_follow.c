/* test_state_follow.c: the prefix follower against the embedded store: it calls back once at
 * start, after changes under its prefix only, coalesced while the callback runs, and again
 * after its watch ended because the history was compacted past its revision (a gap), after
 * which it keeps following. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test_tmpdir.h"
#include "core/sd_fs.h"
#include "core/sd_time.h"
#include "state/sd_state.h"
#include "state/sd_state_follow.h"
#include "state_embedded/state_embedded.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

struct fixture {
    char dir[256];
    struct sd_state *st;
};

/* What the callback saw: how often it ran and the value of "watched/last" it read. */
struct seen {
    atomic_int calls;
    atomic_int slow_ms;
    struct sd_state *st;
    pthread_mutex_t mu;
    char last[32];
};

static void on_change(void *arg)
{
    struct seen *s = arg;
    struct sd_kv kv;
    int slow = atomic_load(&s->slow_ms);

    if (slow > 0) {
        usleep((useconds_t)slow * 1000);
    }
    memset(&kv, 0, sizeof(kv));
    pthread_mutex_lock(&s->mu);
    if (sd_state_get(s->st, "watched/last", &kv) == 0) {
        snprintf(s->last, sizeof(s->last), "%s", kv.value);
    }
    pthread_mutex_unlock(&s->mu);
    sd_kv_free(&kv);
    atomic_fetch_add(&s->calls, 1);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    sd_test_mkdtemp(fx->dir, sizeof(fx->dir), "follow");
    assert_int_equal(sd_state_open_backend("embedded", NULL, fx->dir, &fx->st), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    sd_state_close(fx->st);
    sd_rm_rf(fx->dir);
    free(fx);
    return 0;
}

static void put(struct sd_state *st, const char *key, const char *value)
{
    assert_int_equal(sd_state_put(st, key, value, strlen(value), 0, NULL), 0);
}

/* Waits up to 5 s for s->calls >= n. */
static void wait_calls(struct seen *s, int n)
{
    int64_t deadline = sd_mono_ms() + 5000;

    while (atomic_load(&s->calls) < n) {
        assert_true(sd_mono_ms() < deadline);
        usleep(2000);
    }
}

static void init_seen(struct seen *s, struct sd_state *st)
{
    memset(s, 0, sizeof(*s));
    s->st = st;
    pthread_mutex_init(&s->mu, NULL);
}

static void test_calls_at_start_and_after_changes_under_the_prefix(void **state)
{
    struct fixture *fx = *state;
    struct sd_state_follow *f = NULL;
    struct seen s;

    init_seen(&s, fx->st);
    assert_int_equal(sd_state_follow_start(fx->st, "watched/", "test", on_change, &s, &f), 0);
    wait_calls(&s, 1); /* the start */
    put(fx->st, "watched/last", "one");
    wait_calls(&s, 2);
    assert_string_equal(s.last, "one");
    /* a key outside the prefix calls nothing */
    put(fx->st, "other/key", "x");
    usleep(300 * 1000);
    assert_int_equal(atomic_load(&s.calls), 2);
    /* a delete is a change too */
    assert_int_equal(sd_state_del(fx->st, "watched/last", 0, NULL, NULL), 0);
    wait_calls(&s, 3);
    assert_int_equal(sd_state_follow_subscriptions(f), 1);
    sd_state_follow_stop(f);
    pthread_mutex_destroy(&s.mu);
}

static void test_changes_during_a_call_coalesce_into_one_more(void **state)
{
    struct fixture *fx = *state;
    struct sd_state_follow *f = NULL;
    struct seen s;
    char v[16];

    init_seen(&s, fx->st);
    assert_int_equal(sd_state_follow_start(fx->st, "watched/", "test", on_change, &s, &f), 0);
    wait_calls(&s, 1);
    atomic_store(&s.slow_ms, 200);
    for (int i = 0; i < 100; i++) {
        snprintf(v, sizeof(v), "v%d", i);
        put(fx->st, "watched/last", v);
    }
    /* the last call reads the last value; far fewer calls than changes */
    for (int64_t deadline = sd_mono_ms() + 5000;;) {
        pthread_mutex_lock(&s.mu);
        int done = strcmp(s.last, "v99") == 0;
        pthread_mutex_unlock(&s.mu);
        if (done) {
            break;
        }
        assert_true(sd_mono_ms() < deadline);
        usleep(10 * 1000);
    }
    usleep(500 * 1000); /* no late calls pile up */
    assert_in_range(atomic_load(&s.calls), 2, 6);
    sd_state_follow_stop(f);
    pthread_mutex_destroy(&s.mu);
}

/* The follower subscribes with a range read of its prefix: this backend wraps the embedded one
 * and makes the first range report an old revision that the history no longer holds, so the
 * watch from it ends with SD_ECONFLICT, as after an etcd compaction. */
static struct sd_state_ops stale_ops;
static atomic_int stale_left;

static int stale_range(void *ctx, const char *prefix, int64_t limit, struct sd_kvs *out)
{
    int rc = sd_state_embedded_ops.range(ctx, prefix, limit, out);

    if (rc == 0 && atomic_fetch_sub(&stale_left, 1) > 0) {
        out->rev = 1;
    }
    return rc;
}

static void test_a_compacted_watch_is_followed_again_with_a_call(void **state)
{
    struct fixture *fx = *state;
    struct sd_state stale;
    struct sd_state_follow *f = NULL;
    struct sd_state_embedded_limits lim = {0, 0, 1, 0};
    struct seen s;

    for (int i = 0; i < 10; i++) {
        put(fx->st, "other/fill", "x");
    }
    sd_state_embedded_set_limits(fx->st->ctx, &lim); /* history: the last revision only */
    stale_ops = sd_state_embedded_ops;
    stale_ops.range = stale_range;
    stale = (struct sd_state){&stale_ops, fx->st->ctx};
    atomic_store(&stale_left, 1);
    init_seen(&s, &stale);
    assert_int_equal(sd_state_follow_start(&stale, "watched/", "test", on_change, &s, &f), 0);
    /* the first watch ends at once; the follower subscribes again and calls for the gap (one
     * call may cover both the start and the gap: they coalesce) */
    for (int64_t deadline = sd_mono_ms() + 5000; sd_state_follow_subscriptions(f) < 2;) {
        assert_true(sd_mono_ms() < deadline);
        usleep(2000);
    }
    wait_calls(&s, 1);
    put(fx->st, "watched/last", "after the gap");
    for (int64_t deadline = sd_mono_ms() + 5000;;) {
        pthread_mutex_lock(&s.mu);
        int done = strcmp(s.last, "after the gap") == 0;
        pthread_mutex_unlock(&s.mu);
        if (done) {
            break;
        }
        assert_true(sd_mono_ms() < deadline);
        usleep(2000);
    }
    assert_int_equal(sd_state_follow_subscriptions(f), 2);
    sd_state_follow_stop(f);
    pthread_mutex_destroy(&s.mu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_calls_at_start_and_after_changes_under_the_prefix,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_changes_during_a_call_coalesce_into_one_more, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_compacted_watch_is_followed_again_with_a_call, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
