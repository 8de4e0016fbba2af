/* test_health.c: the readiness registry: set and clear per component, the rendered answer of
 * /health-check and /livez, many components, and concurrent setters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/sd_buf.h"
#include "core/sd_health.h"

static void test_set_clear_render(void **state)
{
    struct sd_health *h = sd_health_create();
    struct sd_buf out = SD_BUF_INIT;

    (void)state;
    assert_true(sd_health_is_ok(h));
    assert_int_equal(sd_health_render(h, &out), 200);
    assert_string_equal(sd_buf_cstr(&out), "OK\n");
    assert_int_equal(sd_health_set(h, "state", "cannot write wal: No space left on device"), 1);
    assert_int_equal(sd_health_set(h, "state", "cannot write wal: I/O error"), 0);
    assert_int_equal(sd_health_set(h, "slice a", "I/O error"), 1);
    assert_false(sd_health_is_ok(h));
    sd_buf_reset(&out);
    assert_int_equal(sd_health_render(h, &out), 503);
    assert_string_equal(sd_buf_cstr(&out),
                        "state: cannot write wal: I/O error\nslice a: I/O error\n");
    assert_int_equal(sd_health_clear(h, "state"), 1);
    assert_int_equal(sd_health_clear(h, "state"), 0);
    assert_false(sd_health_is_ok(h));
    assert_int_equal(sd_health_clear(h, "slice a"), 1);
    assert_true(sd_health_is_ok(h));
    sd_buf_fini(&out);
    sd_health_destroy(h);
}

static void test_route(void **state)
{
    struct sd_health *h = sd_health_create();
    struct sd_buf out = SD_BUF_INIT;

    (void)state;
    assert_int_equal(sd_health_route(h, "/metrics", 8, &out), 0);
    assert_int_equal(out.len, 0);
    sd_health_set(h, "state", "broken");
    assert_int_equal(sd_health_route(h, "/health-check", 13, &out), 503);
    sd_buf_reset(&out);
    assert_int_equal(sd_health_route(h, "/livez", 6, &out), 200);
    assert_string_equal(sd_buf_cstr(&out), "OK\n");
    sd_buf_reset(&out);
    assert_int_equal(sd_health_route(NULL, "/health-check", 13, &out), 200);
    sd_buf_fini(&out);
    sd_health_destroy(h);
}

/* Many broken components: broken until every one is cleared; clearing a healthy one changes
 * nothing. */
static void test_many_components(void **state)
{
    struct sd_health *h = sd_health_create();
    struct sd_buf out = SD_BUF_INIT;
    char name[32];

    (void)state;
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof(name), "slice %d", i);
        assert_int_equal(sd_health_set(h, name, "I/O error"), 1);
    }
    assert_int_equal(sd_health_render(h, &out), 503);
    assert_non_null(strstr(sd_buf_cstr(&out), "slice 39: I/O error\n"));
    assert_int_equal(sd_health_clear(h, "slice 99"), 0);
    for (int i = 0; i < 40; i++) {
        assert_false(sd_health_is_ok(h));
        snprintf(name, sizeof(name), "slice %d", i);
        assert_int_equal(sd_health_clear(h, name), 1);
    }
    assert_true(sd_health_is_ok(h));
    sd_buf_fini(&out);
    sd_health_destroy(h);
}

static void *flap(void *arg)
{
    struct sd_health *h = arg;
    char name[32];

    snprintf(name, sizeof(name), "t%lu", (unsigned long)pthread_self());
    for (int i = 0; i < 10000; i++) {
        sd_health_set(h, name, "x");
        sd_health_clear(h, name);
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    struct sd_health *h = sd_health_create();
    pthread_t t[4];

    (void)state;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, flap, h), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
    }
    assert_true(sd_health_is_ok(h));
    sd_health_destroy(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_clear_render),
        cmocka_unit_test(test_route),
        cmocka_unit_test(test_many_components),
        cmocka_unit_test(test_concurrent),
    };

    return cmocka_run_group_tests_name("health", tests, NULL, NULL);
}
