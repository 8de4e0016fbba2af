/* test_uuid.c: unit tests of pipeline/sd_uuid: format, version, variant, the embedded
 * timestamp, ordering within a millisecond and uniqueness. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "pipeline/sd_uuid.h"

static void check_format(const char *u)
{
    assert_int_equal(strlen(u), SD_UUID_STR_LEN);
    for (int i = 0; i < SD_UUID_STR_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            assert_int_equal(u[i], '-');
        } else {
            assert_non_null(strchr("0123456789abcdef", u[i]));
        }
    }
    assert_int_equal(u[14], '7');           /* version */
    assert_non_null(strchr("89ab", u[19])); /* variant 10 */
}

static int64_t uuid_ms(const char *u)
{
    char hex[13];

    memcpy(hex, u, 8);
    memcpy(hex + 8, u + 9, 4);
    hex[12] = '\0';
    return (int64_t)strtoll(hex, NULL, 16);
}

static void test_format_and_time(void **state)
{
    char u[SD_UUID_STR_LEN + 1];
    const int64_t ms = 1732500000123LL;

    (void)state;
    sd_uuid_v7(ms, u);
    check_format(u);
    assert_int_equal(uuid_ms(u), ms);
    sd_uuid_v7(0, u);
    check_format(u);
    assert_memory_equal(u, "00000000-0000-7", 15);
}

static void test_increasing(void **state)
{
    char prev[SD_UUID_STR_LEN + 1];
    char u[SD_UUID_STR_LEN + 1];
    int64_t ms = 1732500000000LL;

    (void)state;
    sd_uuid_v7(ms, prev);
    /* Within one ms and across ms, one thread's ids sort in creation order. */
    for (int i = 0; i < 5000; i++) {
        if (i % 1000 == 999) {
            ms++;
        }
        sd_uuid_v7(ms, u);
        check_format(u);
        assert_int_equal(uuid_ms(u), ms);
        /* 1000 ids per ms: below the 2048 the counter is sure to hold. */
        assert_true(strcmp(prev, u) < 0);
        memcpy(prev, u, sizeof(u));
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void test_unique(void **state)
{
    enum { N = 20000 };
    char(*ids)[SD_UUID_STR_LEN + 1] = malloc(N * sizeof(*ids));

    (void)state;
    assert_non_null(ids);
    for (int i = 0; i < N; i++) {
        sd_uuid_v7(1000 + i / 4000, ids[i]);
    }
    qsort(ids, N, sizeof(*ids), cmp_str);
    for (int i = 1; i < N; i++) {
        assert_true(strcmp(ids[i - 1], ids[i]) != 0);
    }
    free(ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_and_time),
        cmocka_unit_test(test_increasing),
        cmocka_unit_test(test_unique),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
