/* test_assign.c: unit tests of storage/sd_assign: volumes of the most preferred type first,
 * then the next preferred types, then any other; count bounds the result; one seed always
 * gives one assignment and different seeds spread files over volumes of equal priority. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "storage/sd_assign.h"

static const struct sd_assign_volume vols[] = {
    {"ssd", "1"}, {"hdd", "1"}, {"default", "1"}, {"hdd", "2"}, {"ssd", "2"},
};
#define NVOLS (sizeof(vols) / sizeof(vols[0]))

static void test_preferred_types_first(void **state)
{
    const char *const pref[] = {"hdd", "ssd"};
    size_t out[NVOLS];

    (void)state;
    assert_int_equal(sd_assign_volumes(vols, NVOLS, 2, pref, 2, 7, out), 2);
    assert_string_equal(vols[out[0]].type, "hdd");
    assert_string_equal(vols[out[1]].type, "hdd");
    assert_int_not_equal(out[0], out[1]);
    assert_int_equal(sd_assign_volumes(vols, NVOLS, 4, pref, 2, 7, out), 4);
    assert_string_equal(vols[out[2]].type, "ssd");
    assert_string_equal(vols[out[3]].type, "ssd");
    /* every volume when count exceeds them; unlisted types last */
    assert_int_equal(sd_assign_volumes(vols, NVOLS, 100, pref, 2, 7, out), NVOLS);
    assert_string_equal(vols[out[4]].type, "default");
}

static void test_missing_preferred_type_falls_through(void **state)
{
    const char *const pref[] = {"nvme", "default"};
    size_t out[NVOLS];

    (void)state;
    assert_int_equal(sd_assign_volumes(vols, NVOLS, 1, pref, 2, 1, out), 1);
    assert_string_equal(vols[out[0]].type, "default");
}

static void test_seed_is_stable_and_spreads(void **state)
{
    const char *const pref[] = {"hdd"};
    size_t a[NVOLS], b[NVOLS];
    int seen[NVOLS];

    (void)state;
    memset(seen, 0, sizeof(seen));
    for (uint64_t seed = 0; seed < 64; seed++) {
        sd_assign_volumes(vols, NVOLS, 1, pref, 1, seed, a);
        sd_assign_volumes(vols, NVOLS, 1, pref, 1, seed, b);
        assert_int_equal(a[0], b[0]);
        assert_string_equal(vols[a[0]].type, "hdd");
        seen[a[0]] = 1;
    }
    assert_true(seen[1] && seen[3]); /* both hdd volumes get files */
}

/* The reference's cases: every slice has a writer; each node writes at least min slices. */
static void test_slices_are_shared_by_source_nodes(void **state)
{
    const char *const nodes[] = {"s1", "s2", "s3"};
    size_t out[8];
    int writers[8];

    (void)state;
    /* 6 slices over 3 nodes, min 1: two each, disjoint */
    memset(writers, 0, sizeof(writers));
    for (size_t n = 0; n < 3; n++) {
        assert_int_equal(sd_assign_slices(6, nodes, 3, nodes[n], 1, out), 2);
        assert_int_equal(out[0], 2 * n);
        assert_int_equal(out[1], 2 * n + 1);
        writers[out[0]]++;
        writers[out[1]]++;
    }
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(writers[i], 1);
    }
    /* min 2 of 2 slices: every node writes both (fail-over between writers) */
    assert_int_equal(sd_assign_slices(2, nodes, 3, "s3", 2, out), 2);
    assert_true((out[0] == 0 && out[1] == 1) || (out[0] == 1 && out[1] == 0));
    /* min larger than the slices: capped */
    assert_int_equal(sd_assign_slices(1, nodes, 3, "s2", 5, out), 1);
    assert_int_equal(out[0], 0);
    /* 5 slices, 2 nodes, min 1: 3 each, wrapping around */
    assert_int_equal(sd_assign_slices(5, nodes, 2, "s2", 1, out), 3);
    assert_int_equal(out[0], 3);
    assert_int_equal(out[1], 4);
    assert_int_equal(out[2], 0);
    /* a node not registered yet counts at its sorted place */
    assert_int_equal(sd_assign_slices(4, nodes + 1, 2, "s1", 1, out), 2);
    assert_int_equal(out[0], 0);
    assert_int_equal(sd_assign_slices(4, nodes, 0, "s9", 1, out), 4);
    assert_int_equal(sd_assign_slices(0, nodes, 3, "s1", 2, out), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_preferred_types_first),
        cmocka_unit_test(test_missing_preferred_type_falls_through),
        cmocka_unit_test(test_seed_is_stable_and_spreads),
        cmocka_unit_test(test_slices_are_shared_by_source_nodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
