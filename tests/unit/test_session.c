/* test_session.c: a node's session against the embedded store: its kept keys exist with its
 * lease while it runs and vanish when it stops; a lease revoked behind its back is reported lost
 * and replaced, with the keys put again; a key kept later is put at once. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test_tmpdir.h"
#include "cluster/sd_session.h"
#include "core/sd_fs.h"
#include "core/sd_time.h"
#include "state/sd_state.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

struct fixture {
    char dir[256];
    struct sd_state *st;
};

static atomic_int went_live, went_dead;

static void on_change(void *arg, int is_live)
{
    (void)arg;
    atomic_fetch_add(is_live ? &went_live : &went_dead, 1);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    sd_test_mkdtemp(fx->dir, sizeof(fx->dir), "session");
    assert_int_equal(sd_state_open_backend("embedded", NULL, fx->dir, &fx->st), 0);
    atomic_store(&went_live, 0);
    atomic_store(&went_dead, 0);
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

/* The lease of key, 0 when the key is missing. */
static int64_t lease_of(struct sd_state *st, const char *key)
{
    struct sd_kv kv;
    int64_t lease;

    memset(&kv, 0, sizeof(kv));
    if (sd_state_get(st, key, &kv) != 0) {
        return 0;
    }
    lease = kv.lease;
    sd_kv_free(&kv);
    return lease;
}

static void wait_until(atomic_int *counter, int n)
{
    for (int64_t deadline = sd_mono_ms() + 10000; atomic_load(counter) < n;) {
        assert_true(sd_mono_ms() < deadline);
        usleep(5000);
    }
}

static void test_keys_live_with_the_session_and_vanish_when_it_stops(void **state)
{
    struct fixture *fx = *state;
    struct sd_session *s = NULL;

    assert_int_equal(sd_session_start(fx->st, 1, "test", on_change, NULL, &s), 0);
    assert_int_equal(sd_session_keep(s, "runtime/group/g/nodes/n1", "n1"), 0);
    assert_true(sd_session_wait_live(s, 5000));
    assert_true(lease_of(fx->st, "runtime/group/g/nodes/n1") > 0);
    /* kept alive past several TTLs */
    usleep(2500 * 1000);
    assert_true(sd_session_is_live(s));
    assert_true(lease_of(fx->st, "runtime/group/g/nodes/n1") > 0);
    /* a key kept while live is put at once */
    assert_int_equal(sd_session_keep(s, "storage/volume/writer/v1", "{}"), 0);
    assert_int_equal(lease_of(fx->st, "storage/volume/writer/v1"),
                     lease_of(fx->st, "runtime/group/g/nodes/n1"));
    assert_int_equal(atomic_load(&went_dead), 0);
    sd_session_stop(s);
    assert_int_equal(lease_of(fx->st, "runtime/group/g/nodes/n1"), 0);
    assert_int_equal(lease_of(fx->st, "storage/volume/writer/v1"), 0);
}

static void test_a_lost_lease_is_reported_and_replaced(void **state)
{
    struct fixture *fx = *state;
    struct sd_session *s = NULL;
    int64_t first, second;

    assert_int_equal(sd_session_start(fx->st, 1, "test", on_change, NULL, &s), 0);
    assert_int_equal(sd_session_keep(s, "runtime/group/g/nodes/n1", "n1"), 0);
    assert_true(sd_session_wait_live(s, 5000));
    first = lease_of(fx->st, "runtime/group/g/nodes/n1");
    assert_int_equal(sd_state_lease_revoke(fx->st, first), 0); /* as an expiry would */
    assert_int_equal(lease_of(fx->st, "runtime/group/g/nodes/n1"), 0);
    wait_until(&went_dead, 1);
    wait_until(&went_live, 2);
    second = lease_of(fx->st, "runtime/group/g/nodes/n1");
    assert_true(second > 0);
    assert_true(second != first);
    assert_true(sd_session_is_live(s));
    sd_session_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keys_live_with_the_session_and_vanish_when_it_stops,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_lost_lease_is_reported_and_replaced, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
