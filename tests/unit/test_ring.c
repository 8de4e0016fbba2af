/* test_ring.c: the consistent-hash ring: every node computes the same owner whatever the order
 * of its member list, keys spread over the members, a leaving member moves only its own keys and
 * a joining one takes about its share, and an empty ring owns nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cluster/sd_ring.h"

#include <stdio.h>
#include <string.h>

#define NKEYS 10000

static const char *key_at(size_t i)
{
    static char buf[64];
    snprintf(buf, sizeof(buf), "1/1/source-%zu/sink-%zu", i % 97, i);
    return buf;
}

static void test_same_owner_whatever_the_member_order(void **state)
{
    const char *a[] = {"node-a", "node-b", "node-c"};
    const char *b[] = {"node-c", "node-a", "node-b", "node-a"};
    struct sd_ring *ra = sd_ring_create(a, 3), *rb = sd_ring_create(b, 4);

    (void)state;
    assert_int_equal(sd_ring_members(rb), 3);
    for (size_t i = 0; i < NKEYS; i++) {
        assert_string_equal(sd_ring_owner(ra, key_at(i)), sd_ring_owner(rb, key_at(i)));
    }
    sd_ring_destroy(ra);
    sd_ring_destroy(rb);
}

static void test_keys_spread_and_a_leaving_member_moves_only_its_keys(void **state)
{
    const char *four[] = {"n1", "n2", "n3", "n4"};
    const char *three[] = {"n1", "n2", "n4"};
    struct sd_ring *r4 = sd_ring_create(four, 4), *r3 = sd_ring_create(three, 3);
    size_t count[4] = {0}, moved = 0;

    (void)state;
    for (size_t i = 0; i < NKEYS; i++) {
        const char *o4 = sd_ring_owner(r4, key_at(i)), *o3 = sd_ring_owner(r3, key_at(i));
        count[o4[1] - '1']++;
        if (strcmp(o4, "n3") != 0) {
            assert_string_equal(o3, o4); /* keys of the members that stay do not move */
        } else {
            moved++;
        }
    }
    for (int m = 0; m < 4; m++) {
        assert_in_range(count[m], NKEYS / 4 * 6 / 10, NKEYS / 4 * 14 / 10); /* +-40 % */
    }
    assert_int_equal(moved, count[2]);
    sd_ring_destroy(r4);
    sd_ring_destroy(r3);
}

static void test_a_joining_member_takes_about_its_share(void **state)
{
    const char *two[] = {"api-1", "coord-1"};
    const char *three[] = {"api-1", "coord-1", "coord-2"};
    struct sd_ring *r2 = sd_ring_create(two, 2), *r3 = sd_ring_create(three, 3);
    size_t taken = 0;

    (void)state;
    for (size_t i = 0; i < NKEYS; i++) {
        const char *o3 = sd_ring_owner(r3, key_at(i));
        if (strcmp(o3, "coord-2") == 0) {
            taken++;
        } else {
            assert_string_equal(o3, sd_ring_owner(r2, key_at(i)));
        }
    }
    assert_in_range(taken, NKEYS / 3 * 6 / 10, NKEYS / 3 * 14 / 10);
    sd_ring_destroy(r2);
    sd_ring_destroy(r3);
}

static void test_empty_and_single_rings(void **state)
{
    const char *one[] = {"only"};
    struct sd_ring *empty = sd_ring_create(NULL, 0), *single = sd_ring_create(one, 1);

    (void)state;
    assert_null(sd_ring_owner(empty, "k"));
    assert_int_equal(sd_ring_members(empty), 0);
    for (size_t i = 0; i < 100; i++) {
        assert_string_equal(sd_ring_owner(single, key_at(i)), "only");
    }
    sd_ring_destroy(empty);
    sd_ring_destroy(single);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_owner_whatever_the_member_order),
        cmocka_unit_test(test_keys_spread_and_a_leaving_member_moves_only_its_keys),
        cmocka_unit_test(test_a_joining_member_takes_about_its_share),
        cmocka_unit_test(test_empty_and_single_rings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
