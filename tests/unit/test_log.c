/* test_log.c: the JSON-lines logger: fields and escaping, the context attributes of an entity
 * key, nodeId, level filtering, the output descriptor, and the per-message rate limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/sd_log.h"

static int sd__pipe[2];

static int setup(void **state)
{
    (void)state;
    if (pipe2(sd__pipe, O_NONBLOCK) != 0) {
        return -1;
    }
    sd_log_set_fd(sd__pipe[1]);
    sd_log_set_level(SD_LOG_INFO);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sd_log_set_fd(STDERR_FILENO);
    close(sd__pipe[0]);
    close(sd__pipe[1]);
    return 0;
}

/* What the logger wrote since the last call (NUL-terminated in buf). */
static const char *sd__drain(char *buf, size_t cap)
{
    ssize_t n = read(sd__pipe[0], buf, cap - 1);

    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static void test_fields_and_escaping(void **state)
{
    char buf[4096];
    const char *out;

    (void)state;
    sd_log_info("storage", "a \"quoted\" \\ line\nbreak %d", 7);
    out = sd__drain(buf, sizeof(buf));
    assert_non_null(strstr(out, "\"level\":\"info\",\"component\":\"storage\","
                                "\"message\":\"a \\\"quoted\\\" \\\\ line\\u000abreak 7\"}\n"));
    assert_string_equal(out + strlen(out) - 2, "}\n");
    assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1); /* one line */
}

static void test_key_attributes_and_node(void **state)
{
    char buf[4096];
    const char *out;

    (void)state;
    sd_log_set_node("node-1");
    sd_log_key(SD_LOG_WARN, "operator",
               "1/2/src/snk/2026-01-01T00:00:00.000Z/vol/2026-01-01T00:00:01.000Z", "slice failed");
    out = sd__drain(buf, sizeof(buf));
    assert_non_null(strstr(out,
                           "\"message\":\"slice failed\",\"nodeId\":\"node-1\","
                           "\"project.id\":\"1\",\"branch.id\":\"2\",\"source.id\":\"src\","
                           "\"sink.id\":\"snk\",\"file.id\":\"2026-01-01T00:00:00.000Z\","
                           "\"volume.id\":\"vol\",\"slice.id\":\"2026-01-01T00:00:01.000Z\"}\n"));
    sd_log_key(SD_LOG_ERROR, "sink.router", "1/2/src", "x");
    out = sd__drain(buf, sizeof(buf));
    assert_non_null(strstr(out, "\"source.id\":\"src\"}\n"));
    assert_null(strstr(out, "sink.id"));
    sd_log_key(SD_LOG_ERROR, "api", NULL, "no key");
    out = sd__drain(buf, sizeof(buf));
    assert_non_null(strstr(out, "\"message\":\"no key\",\"nodeId\":\"node-1\"}\n"));
    sd_log_set_node("");
}

static void test_levels(void **state)
{
    char buf[4096];

    (void)state;
    sd_log_debug("x", "hidden");
    sd_log_key(SD_LOG_DEBUG, "x", "1/2/s", "hidden too");
    assert_string_equal(sd__drain(buf, sizeof(buf)), "");
    sd_log_set_level(SD_LOG_DEBUG);
    sd_log_debug("x", "shown");
    assert_non_null(strstr(sd__drain(buf, sizeof(buf)), "\"level\":\"debug\""));
    sd_log_set_level(SD_LOG_INFO);
}

static void test_rate_limit(void **state)
{
    struct sd_log_limit limit = {0, 0};
    int64_t held = -1;
    int passed = 0;

    (void)state;
    assert_int_equal(sd_log_limit_pass(&limit, 60000, &held), 1);
    assert_int_equal(held, 0);
    for (int i = 0; i < 100; i++) {
        passed += sd_log_limit_pass(&limit, 60000, &held);
    }
    assert_int_equal(passed, 0);
    assert_int_equal(limit.suppressed, 100);
    limit.next_ms = 0; /* the interval is over */
    assert_int_equal(sd_log_limit_pass(&limit, 60000, &held), 1);
    assert_int_equal(held, 100);
    assert_int_equal(limit.suppressed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_and_escaping),
        cmocka_unit_test(test_key_attributes_and_node),
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_rate_limit),
    };

    return cmocka_run_group_tests_name("log", tests, setup, teardown);
}
