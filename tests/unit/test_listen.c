/* test_listen.c: "host:port" splitting (also of the bracketed IPv6 addresses writers announce)
 * and a listening socket's bound port and shown host. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/sd_error.h"
#include "net/sd_listen.h"

#include <string.h>
#include <unistd.h>

static void test_addresses_split(void **state)
{
    char host[64], port[8];

    (void)state;
    assert_int_equal(sd_addr_split("127.0.0.1:6000", host, sizeof(host), port, sizeof(port)), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_string_equal(port, "6000");
    /* a writer listening on an IPv6 address announces it in brackets */
    assert_int_equal(sd_addr_split("[::1]:6000", host, sizeof(host), port, sizeof(port)), 0);
    assert_string_equal(host, "::1");
    assert_string_equal(port, "6000");
    assert_int_equal(sd_addr_split(":7000", host, sizeof(host), port, sizeof(port)), 0);
    assert_string_equal(host, "");
    assert_string_equal(port, "7000");
    assert_int_equal(sd_addr_split("writer-1:0", host, sizeof(host), port, sizeof(port)), 0);
    assert_string_equal(host, "writer-1");
    /* no port, an empty port, parts that do not fit */
    assert_int_equal(sd_addr_split("host", host, sizeof(host), port, sizeof(port)), SD_EINVAL);
    assert_int_equal(sd_addr_split("host:", host, sizeof(host), port, sizeof(port)), SD_EINVAL);
    assert_int_equal(sd_addr_split("host:123456789", host, sizeof(host), port, sizeof(port)),
                     SD_EINVAL);
    assert_int_equal(sd_addr_split("a-very-long-host-name:1", host, 8, port, sizeof(port)),
                     SD_EINVAL);
}

static void test_listen_reports_the_bound_port(void **state)
{
    char shown[64];
    int port = 0, wildcard = -1;
    int fd = sd_listen_tcp("127.0.0.1:0", &port, shown, sizeof(shown), &wildcard);

    (void)state;
    assert_true(fd >= 0);
    assert_true(port > 0);
    assert_int_equal(wildcard, 0);
    assert_string_equal(shown, "127.0.0.1");
    close(fd);
    assert_int_equal(sd_listen_tcp("nohost", &port, shown, sizeof(shown), &wildcard), SD_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addresses_split),
        cmocka_unit_test(test_listen_reports_the_bound_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
