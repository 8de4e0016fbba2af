/* test_fd_budget.c: unit tests of net/sd_fd_budget: the data cap stays below the descriptor
 * limit minus the reserve, the API and metrics caps come out of the reserve, and small or huge
 * limits give sane caps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "net/sd_fd_budget.h"

static void test_split(void **state)
{
    struct sd_fd_budget b;

    (void)state;
    sd_fd_budget_split(1024, 200000, &b);
    assert_int_equal(b.data_max_connections, 768);
    assert_int_equal(b.api_max_connections, 64);
    assert_int_equal(b.metrics_max_connections, 16);
    /* the configured cap wins when it is lower */
    sd_fd_budget_split(1024, 100, &b);
    assert_int_equal(b.data_max_connections, 100);
    /* small limits: a reserve of at least 128, but never more than half */
    sd_fd_budget_split(256, 200000, &b);
    assert_int_equal(b.data_max_connections, 128);
    assert_int_equal(b.api_max_connections, 32);
    assert_int_equal(b.metrics_max_connections, 8);
    sd_fd_budget_split(16, 200000, &b);
    assert_int_equal(b.data_max_connections, 8);
    assert_true(b.api_max_connections >= 1 && b.metrics_max_connections >= 1);
    /* large limits: the configured cap and the fixed API and metrics ceilings */
    sd_fd_budget_split(1048576, 200000, &b);
    assert_int_equal(b.data_max_connections, 200000);
    assert_int_equal(b.api_max_connections, 1024);
    assert_int_equal(b.metrics_max_connections, 64);
    sd_fd_budget_split(UINT64_MAX, 1000000, &b);
    assert_int_equal(b.data_max_connections, 1000000);
}

static void test_init_raises_to_hard_limit(void **state)
{
    struct sd_fd_budget b;

    (void)state;
    sd_fd_budget_init(200000, &b);
    assert_true(b.nofile == b.nofile_hard || b.nofile_hard == UINT64_MAX);
    assert_true(b.data_max_connections + b.api_max_connections + b.metrics_max_connections <
                b.nofile);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_init_raises_to_hard_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
