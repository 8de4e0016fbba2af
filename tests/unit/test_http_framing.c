/* test_http_framing.c: unit tests of net/sd_http_framing: heads with clear framing pass, and
 * each ambiguous framing of RFC 9112 (CL+TE, duplicate CL or TE, TE in HTTP/1.0, missing or
 * duplicate Host, folded lines, bare LF, malformed heads) is refused with its reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "core/sd_error.h"
#include "net/sd_http_framing.h"

static void expect_ok(const char *head)
{
    const char *why = NULL;

    if (sd_http_framing_check(head, strlen(head), &why) != 0) {
        fail_msg("refused (%s): %s", why, head);
    }
}

static void expect_refused(const char *head, const char *reason)
{
    const char *why = NULL;

    assert_int_equal(sd_http_framing_check(head, strlen(head), &why), SD_EPARSE);
    assert_non_null(why);
    if (strstr(why, reason) == NULL) {
        fail_msg("reason \"%s\" lacks \"%s\" for: %s", why, reason, head);
    }
}

static void test_clear_framing(void **state)
{
    (void)state;
    expect_ok("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect_ok("GET / HTTP/1.0\r\n\r\n");
    expect_ok("POST /x HTTP/1.1\r\nhost: a\r\nContent-Length: 3\r\n\r\nabc");
    expect_ok(
        "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    /* the body may hold anything, even what would be a bad head */
    expect_ok("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nx\ny: z\n\n");
    expect_ok("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\tc \r\nX-Content-Length: 1\r\n\r\n");
}

static void test_content_length_and_te(void **state)
{
    (void)state;
    expect_refused("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n",
                   "both Content-Length and Transfer-Encoding");
    expect_refused("POST /x HTTP/1.1\r\nHost: a\r\ntransfer-encoding: chunked\r\n"
                   "content-length: 5\r\n\r\n",
                   "both Content-Length and Transfer-Encoding");
    expect_refused("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                   "more than one Content-Length");
    expect_refused("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                   "more than one Content-Length");
    expect_refused("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n",
                   "more than one Transfer-Encoding");
    expect_refused("POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.0");
}

static void test_host(void **state)
{
    (void)state;
    expect_refused("GET / HTTP/1.1\r\n\r\n", "without a Host");
    expect_refused("GET / HTTP/1.1\r\nHost: a\r\nHOST: b\r\n\r\n", "more than one Host");
    expect_refused("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", "more than one Host");
}

static void test_line_syntax(void **state)
{
    (void)state;
    expect_refused("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", "folded");
    expect_refused("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", "folded");
    expect_refused("GET / HTTP/1.1\nHost: a\r\n\r\n", "bare LF");
    expect_refused("GET / HTTP/1.1\r\nHost: a\n\n", "bare LF");
    expect_refused("GET / HTTP/1.1\r\nHost: a\r\n\n", "bare LF");
    expect_refused("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "bare LF");
}

static void test_malformed(void **state)
{
    (void)state;
    expect_refused("", "malformed or incomplete");
    expect_refused("GET / HTTP/1.1\r\nHost: a\r\n", "malformed or incomplete");
    expect_refused("GET / HTTP/1.1\r\nBad Name: a\r\n\r\n", "malformed or incomplete");
    expect_refused("GET / HTTP/1.1\r\n: a\r\n\r\n", "malformed or incomplete");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clear_framing), cmocka_unit_test(test_content_length_and_te),
        cmocka_unit_test(test_host),          cmocka_unit_test(test_line_syntax),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
