/* test_http_req.c: a request as a record (sd_http_req_record in src/net/sd_http.c), as the data
 * endpoint and the API test endpoint build it: requests sent over loopback to a loop whose handler
 * answers with the record it got (headers one a line, then body, Content-Type and IP). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/sd_buf.h"
#include "core/sd_time.h"
#include "net/sd_http.h"
#include "test_http_opts.h"
#include "pipeline/sd_record.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static const struct sd_http_record_opts data_opts = {.has_host = 1, .drop_header = NULL};
static const struct sd_http_record_opts test_opts = {.has_host = 0,
                                                     .drop_header = "x-storageapi-token"};

/* Answers the record of the request, built with the options arg points to. */
static void echo_record(void *arg, struct sd_http_req *req)
{
    struct sd_buf out = SD_BUF_INIT;
    struct sd_record rec;
    int64_t before = sd_now_ms();

    sd_http_req_record(req, arg, &rec);
    for (size_t i = 0; i < rec.nheaders; i++) {
        sd_buf_printf(&out, "%.*s: %.*s\n", (int)rec.headers[i].name.len, rec.headers[i].name.p,
                      (int)rec.headers[i].value.len, rec.headers[i].value.p);
    }
    sd_buf_printf(&out, "body=%.*s type=%.*s ip=%s time=%s\n", (int)rec.body.len, rec.body.p,
                  (int)rec.content_type.len, rec.content_type.p, rec.ip,
                  rec.recv_time_ms >= before && rec.recv_time_ms <= sd_now_ms() ? "now" : "wrong");
    sd_http_send(req, 200, "text/plain", out.data, out.len);
    sd_record_fini(&rec);
    sd_buf_fini(&out);
}

struct server {
    struct sd_http_loop *loop;
    int port;
};

/* Fixture: a loop answering records built with ro, stopped by server_stop even when a test
 * fails. */
static int server_start(void **state, const struct sd_http_record_opts *ro)
{
    struct server *s = calloc(1, sizeof(*s));
    char url[64];

    if (s == NULL) {
        return -1;
    }
    *state = s;

    s->loop = test_http_loop(echo_record, (void *)ro, 4);
    if (sd_http_loop_listen(s->loop, "127.0.0.1:0", url, sizeof(url)) != 0) {
        return -1;
    }
    s->port = atoi(strrchr(url, ':') + 1);
    return sd_http_loop_start(s->loop);
}

static int data_server_start(void **state)
{
    return server_start(state, &data_opts);
}

static int api_test_server_start(void **state)
{
    return server_start(state, &test_opts);
}

static int server_stop(void **state)
{
    struct server *s = *state;

    sd_http_loop_stop(s->loop, 100);
    sd_http_loop_destroy(s->loop);
    free(s);
    return 0;
}

/* Sends request (which asks to close the connection after it) from the loopback address from
 * (NULL: 127.0.0.1) and returns the response body (owned), or NULL. */
static char *exchange(const struct server *s, const char *from, const char *request)
{
    struct sockaddr_in sa;
    struct timeval tv = {5, 0};
    struct sd_buf in = SD_BUF_INIT;
    char chunk[4096];
    const char *body;
    char *out = NULL;
    ssize_t n;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)s->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (from != NULL) {
        struct sockaddr_in local;
        memset(&local, 0, sizeof(local));
        local.sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, from, &local.sin_addr), 1);
        assert_int_equal(bind(fd, (struct sockaddr *)&local, sizeof(local)), 0);
    }
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(send(fd, request, strlen(request), MSG_NOSIGNAL), (ssize_t)strlen(request));
    while ((n = recv(fd, chunk, sizeof(chunk), 0)) > 0) {
        sd_buf_append(&in, chunk, (size_t)n);
    }
    close(fd);
    body = in.len > 0 ? strstr(sd_buf_cstr(&in), "\r\n\r\n") : NULL;
    if (body != NULL && strncmp(in.data, "HTTP/1.1 200 ", 13) == 0) {
        out = strdup(body + 4);
    }
    sd_buf_fini(&in);
    return out;
}

static void expect(const struct server *s, const char *request, const char *want)
{
    char *got = exchange(s, NULL, request);

    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static const char *const with_body = "POST /a HTTP/1.1\r\n"
                                     "Host: example.com:8080\r\n"
                                     "x-b: 2\r\n"
                                     "X-StorageApi-Token: secret\r\n"
                                     "content-type: application/json\r\n"
                                     "x-a: 1\r\n"
                                     "X-A: 3\r\n"
                                     "Content-Length: 7\r\n"
                                     "Connection: close\r\n"
                                     "\r\n"
                                     "{\"k\":1}";

/* The data endpoint: every header canonical and sorted (equal names in their order), Host
 * from the authority, Content-Length from the body. */
static void test_data_endpoint_record(void **state)
{
    const struct server *s = *state;

    expect(s, with_body,
           "Connection: close\n"
           "Content-Length: 7\n"
           "Content-Type: application/json\n"
           "Host: example.com:8080\n"
           "X-A: 1\n"
           "X-A: 3\n"
           "X-B: 2\n"
           "X-Storageapi-Token: secret\n"
           "body={\"k\":1} type=application/json ip=127.0.0.1 time=now\n");
    /* no body at all: no Content-Length; an empty one: 0 */
    expect(s, "GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
           "Connection: close\nHost: h\nbody= type= ip=127.0.0.1 time=now\n");
    expect(s, "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
           "Connection: close\nContent-Length: 0\nHost: h\nbody= type= ip=127.0.0.1 time=now\n");
    /* a chunked body is counted as received */
    expect(s,
           "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
           "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
           "Connection: close\nContent-Length: 5\nHost: h\nbody=abcde "
           "type= ip=127.0.0.1 time=now\n");
}

/* The record's ip is the peer's address, whatever the width of its numbers. */
static void test_peer_ip(void **state)
{
    const struct server *s = *state;
    static const char *const from[] = {"127.0.0.1", "127.10.200.5", "127.255.99.0", "127.100.9.10"};
    char want[64];

    for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
        char *got = exchange(s, from[i], "GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        assert_non_null(got);
        snprintf(want, sizeof(want), " ip=%s time=now\n", from[i]);
        assert_non_null(strstr(got, want));
        free(got);
    }
}

/* The API test endpoint: no Host, and the API token never reaches the record. */
static void test_api_test_endpoint_record(void **state)
{
    const struct server *s = *state;

    expect(s, with_body,
           "Connection: close\n"
           "Content-Length: 7\n"
           "Content-Type: application/json\n"
           "X-A: 1\n"
           "X-A: 3\n"
           "X-B: 2\n"
           "body={\"k\":1} type=application/json ip=127.0.0.1 time=now\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_data_endpoint_record, data_server_start, server_stop),
        cmocka_unit_test_setup_teardown(test_peer_ip, data_server_start, server_stop),
        cmocka_unit_test_setup_teardown(test_api_test_endpoint_record, api_test_server_start,
                                        server_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
