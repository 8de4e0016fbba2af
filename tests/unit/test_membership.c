/* test_membership.c: two members of one group on the embedded store own every key exactly once
 * between them; when one member's session stops, the other owns every key; a member without a
 * live session owns nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test_tmpdir.h"
#include "cluster/sd_membership.h"
#include "cluster/sd_session.h"
#include "core/sd_error.h"
#include "core/sd_fs.h"
#include "core/sd_time.h"
#include "state/sd_state.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define NKEYS 200

static const char *key_at(int i)
{
    static char buf[64];
    snprintf(buf, sizeof(buf), "1/1/source/sink-%d", i);
    return buf;
}

static void wait_size(struct sd_membership *m, size_t n)
{
    for (int64_t deadline = sd_mono_ms() + 10000; sd_membership_size(m) != n;) {
        assert_true(sd_mono_ms() < deadline);
        usleep(5000);
    }
}

static void test_members_split_the_keys_and_the_survivor_takes_all(void **state)
{
    char dir[256];
    struct sd_state *st = NULL;
    struct sd_session *s1 = NULL, *s2 = NULL;
    struct sd_membership *m1 = NULL, *m2 = NULL;
    int owned1 = 0;

    (void)state;
    sd_test_mkdtemp(dir, sizeof(dir), "membership");
    assert_int_equal(sd_state_open_backend("embedded", NULL, dir, &st), 0);
    assert_int_equal(sd_session_start(st, 1, "n1", NULL, NULL, &s1), 0);
    assert_int_equal(sd_session_start(st, 1, "n2", NULL, NULL, &s2), 0);
    assert_int_equal(sd_membership_start(st, s1, "operator.file.import", "n1", &m1), 0);
    assert_int_equal(sd_membership_start(st, s2, "operator.file.import", "n2", &m2), 0);
    assert_true(sd_session_wait_live(s1, 5000) && sd_session_wait_live(s2, 5000));
    wait_size(m1, 2);
    wait_size(m2, 2);
    for (int i = 0; i < NKEYS; i++) {
        int a = sd_membership_is_owner(m1, key_at(i)), b = sd_membership_is_owner(m2, key_at(i));
        assert_int_equal(a + b, 1);
        owned1 += a;
    }
    assert_in_range(owned1, NKEYS / 5, NKEYS * 4 / 5);
    /* n2 leaves: its key goes with its session, and n1 owns everything */
    sd_membership_stop(m2);
    sd_session_stop(s2);
    wait_size(m1, 1);
    for (int i = 0; i < NKEYS; i++) {
        assert_true(sd_membership_is_owner(m1, key_at(i)));
    }
    sd_membership_stop(m1);
    sd_session_stop(s1);
    sd_state_close(st);
    sd_rm_rf(dir);
}

/* A store whose leases cannot be granted (as while etcd has no quorum). */
static struct sd_state_ops no_lease_ops;

static int no_lease_grant(void *ctx, int64_t ttl_s, int64_t *lease_id)
{
    (void)ctx;
    (void)ttl_s;
    (void)lease_id;
    return SD_EUNHEALTHY;
}

static void test_a_member_without_a_live_session_owns_nothing(void **state)
{
    char dir[256];
    struct sd_state *st = NULL, no_lease;
    struct sd_session *s = NULL;
    struct sd_membership *m = NULL;

    (void)state;
    sd_test_mkdtemp(dir, sizeof(dir), "membership");
    assert_int_equal(sd_state_open_backend("embedded", NULL, dir, &st), 0);
    no_lease_ops = *st->ops;
    no_lease_ops.lease_grant = no_lease_grant;
    no_lease = (struct sd_state){&no_lease_ops, st->ctx};
    /* the group still lists n1 (say, from before its lease was lost) */
    assert_int_equal(sd_state_put(st, "runtime/distribution/group/g/nodes/n1", "n1", 2, 0, NULL),
                     0);
    assert_int_equal(sd_session_start(&no_lease, 1, "n1", NULL, NULL, &s), 0);
    assert_int_equal(sd_membership_start(&no_lease, s, "g", "n1", &m), 0);
    wait_size(m, 1);
    assert_false(sd_session_wait_live(s, 300));
    assert_false(sd_membership_is_owner(m, "k"));
    sd_membership_stop(m);
    sd_session_stop(s);
    sd_state_close(st);
    sd_rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_members_split_the_keys_and_the_survivor_takes_all),
        cmocka_unit_test(test_a_member_without_a_live_session_owns_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
