/* test_http_loop.c: tasks posted to an event loop (src/net/sd_http.c) from other threads run on
 * it in order, also those posted before the loop started: a writer's final sync can come while
 * the node is still starting (a file rotated at start-up after a crash), and posting then used
 * to dereference the receiver the loop thread had not built yet. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "net/sd_http.h"

#include <pthread.h>
#include <string.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int ran[8];
static int nran;

static void record(struct sd_http_loop *loop, void *arg)
{
    (void)loop;
    pthread_mutex_lock(&mu);
    ran[nran++] = (int)(intptr_t)arg;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

static void no_requests(void *arg, struct sd_http_req *req)
{
    (void)arg;
    sd_http_send(req, 404, "text/plain", "", 0);
}

static void test_posts_before_start_run_once_started_in_order(void **state)
{
    struct sd_http_loop loop;
    struct sd_http_loop_opts o;

    (void)state;
    memset(&o, 0, sizeof(o));
    o.name = "test";
    o.max_request_body_bytes = 1024;
    o.body_too_large_error = "test.bodyTooLarge";
    o.header_timeout_ms = 1000;
    o.request_timeout_ms = 1000;
    o.idle_timeout_ms = 1000;
    o.max_connections = 4;
    o.bad_request_error = "test.badRequest";
    o.handler = no_requests;
    memset(&loop, 0, sizeof(loop));
    assert_int_equal(sd_http_loop_init(&loop, &o), 0);
    for (intptr_t i = 1; i <= 3; i++) {
        sd_http_loop_post(&loop, record, (void *)i);
    }
    assert_int_equal(nran, 0); /* nothing runs before the loop does */
    assert_int_equal(sd_http_loop_start(&loop), 0);
    sd_http_loop_post(&loop, record, (void *)(intptr_t)4);
    pthread_mutex_lock(&mu);
    while (nran < 4) {
        pthread_cond_wait(&cv, &mu);
    }
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(ran[i], i + 1);
    }
    sd_http_loop_stop(&loop, 100);
    sd_http_loop_fini(&loop);
}

static void test_posts_to_a_loop_that_never_started_are_freed(void **state)
{
    struct sd_http_loop loop;
    struct sd_http_loop_opts o;

    (void)state;
    memset(&o, 0, sizeof(o));
    o.name = "test";
    o.max_connections = 1;
    o.handler = no_requests;
    memset(&loop, 0, sizeof(loop));
    assert_int_equal(sd_http_loop_init(&loop, &o), 0);
    sd_http_loop_post(&loop, record, (void *)(intptr_t)9);
    sd_http_loop_fini(&loop); /* no leak under LeakSanitizer, nothing run */
    assert_int_not_equal(ran[nran > 0 ? nran - 1 : 0], 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_posts_before_start_run_once_started_in_order),
        cmocka_unit_test(test_posts_to_a_loop_that_never_started_are_freed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
