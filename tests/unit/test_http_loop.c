/* test_http_loop.c: tasks posted to an event loop (src/net/sd_http.c) from other threads run on
 * it in order, also those posted before the loop started: a writer's final sync can come while
 * the node is still starting (a file rotated at start-up after a crash), and posting then used
 * to dereference the receiver the loop thread had not built yet. Loops joined to an acceptor
 * share its connections evenly, and its connection limit bounds them together. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "net/sd_http.h"
#include "test_http_opts.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
    struct sd_http_loop *loop;

    (void)state;
    loop = test_http_loop(no_requests, NULL, 4);
    for (intptr_t i = 1; i <= 3; i++) {
        sd_http_loop_post(loop, record, (void *)i);
    }
    assert_int_equal(nran, 0); /* nothing runs before the loop does */
    assert_int_equal(sd_http_loop_start(loop), 0);
    sd_http_loop_post(loop, record, (void *)(intptr_t)4);
    pthread_mutex_lock(&mu);
    while (nran < 4) {
        pthread_cond_wait(&cv, &mu);
    }
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(ran[i], i + 1);
    }
    sd_http_loop_stop(loop, 100);
    sd_http_loop_destroy(loop);
}

static void test_posts_to_a_loop_that_never_started_are_freed(void **state)
{
    struct sd_http_loop *loop = test_http_loop(no_requests, NULL, 1);

    (void)state;
    sd_http_loop_post(loop, record, (void *)(intptr_t)9);
    sd_http_loop_destroy(loop); /* no leak under LeakSanitizer, nothing run */
    assert_int_not_equal(ran[nran > 0 ? nran - 1 : 0], 9);
}

/* Answers with the name of the loop that serves the request (its handler argument). */
static void answer_loop_name(void *arg, struct sd_http_req *req)
{
    sd_http_send(req, 200, "text/plain", arg, strlen(arg));
}

/* Connects to 127.0.0.1:port. */
static int connect_to(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* Sends one keep-alive request on fd and returns the first byte of the answer's body (the name
 * of the loop that served it). */
static char ask_loop(int fd)
{
    static const char request[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    char answer[1024];
    size_t got = 0;
    const char *body = NULL;

    assert_int_equal(send(fd, request, strlen(request), 0), (ssize_t)strlen(request));
    while (body == NULL || (size_t)(answer + got - body) < 1) {
        ssize_t r = recv(fd, answer + got, sizeof(answer) - 1 - got, 0);
        assert_true(r > 0);
        got += (size_t)r;
        answer[got] = '\0';
        body = strstr(answer, "\r\n\r\n");
        body = body != NULL ? body + 4 : NULL;
    }
    return body[0];
}

static struct sd_http_loop *group_loop(const char *name, size_t max_connections)
{
    return test_http_loop(answer_loop_name, (void *)name, max_connections);
}

/* Two loops joined to an acceptor: connections go to the loop with the fewest, in turn. */
static void test_joined_loops_share_the_connections_evenly(void **state)
{
    struct sd_http_loop *loops[3];
    char url[64];
    int fds[6], counts[3] = {0, 0, 0};

    (void)state;
    loops[0] = group_loop("0", 100);
    loops[1] = group_loop("1", 100);
    loops[2] = group_loop("2", 100);
    assert_int_equal(sd_http_loop_join(loops[0], loops[1]), 0);
    assert_int_equal(sd_http_loop_join(loops[0], loops[2]), 0);
    assert_int_equal(sd_http_loop_listen(loops[0], "127.0.0.1:0", url, sizeof(url)), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sd_http_loop_start(loops[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        fds[i] = connect_to(atoi(strrchr(url, ':') + 1));
        /* a request per connection: the next accept sees this one counted */
        counts[ask_loop(fds[i]) - '0']++;
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(counts[i], 2);
    }
    for (int i = 0; i < 6; i++) {
        assert_int_equal(ask_loop(fds[i]), ask_loop(fds[i])); /* a connection stays on its loop */
        close(fds[i]);
    }
    sd_http_loops_stop(loops, 3, 1000);
    for (int i = 0; i < 3; i++) {
        sd_http_loop_destroy(loops[i]);
    }
}

/* The acceptor's max_connections bounds the group: past it a connection waits in the backlog
 * until one closes, whichever loop served it. */
static void test_the_acceptor_limit_bounds_the_group(void **state)
{
    struct sd_http_loop *loops[2];
    char url[64];
    int a, b, c, port;
    char served_b;
    struct timeval tv = {0, 300000};

    (void)state;
    loops[0] = group_loop("0", 2);
    loops[1] = group_loop("1", 2);
    assert_int_equal(sd_http_loop_join(loops[0], loops[1]), 0);
    assert_int_equal(sd_http_loop_listen(loops[0], "127.0.0.1:0", url, sizeof(url)), 0);
    port = atoi(strrchr(url, ':') + 1);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sd_http_loop_start(loops[i]), 0);
    }
    a = connect_to(port);
    assert_int_equal(ask_loop(a), '0');
    b = connect_to(port);
    served_b = ask_loop(b);
    assert_int_equal(served_b, '1');
    c = connect_to(port); /* in the backlog: not accepted while two are open */
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    {
        static const char request[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
        char buf[16];
        assert_int_equal(send(c, request, strlen(request), 0), (ssize_t)strlen(request));
        assert_int_equal(recv(c, buf, sizeof(buf), 0), -1); /* no answer within 300 ms */
        tv.tv_sec = 5;
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        close(b); /* the joined loop's connection: the acceptor resumes at its next sweep */
        assert_true(recv(c, buf, sizeof(buf), MSG_PEEK) > 0);
    }
    close(a);
    close(c);
    sd_http_loops_stop(loops, 2, 1000);
    for (int i = 0; i < 2; i++) {
        sd_http_loop_destroy(loops[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_posts_before_start_run_once_started_in_order),
        cmocka_unit_test(test_posts_to_a_loop_that_never_started_are_freed),
        cmocka_unit_test(test_joined_loops_share_the_connections_evenly),
        cmocka_unit_test(test_the_acceptor_limit_bounds_the_group),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
