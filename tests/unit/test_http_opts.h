/* test_http_opts.h: the options of an HTTP loop in the unit tests (a small body limit, 5 s
 * timeouts, test error names) with the given handler, its argument and connection cap. */
#ifndef TEST_HTTP_OPTS_H
#define TEST_HTTP_OPTS_H

#include <string.h>

#include "net/sd_http.h"

static inline struct sd_http_loop *test_http_loop(sd_http_handler_fn handler, void *arg,
                                                  size_t max_connections)
{
    struct sd_http_loop_opts o;

    memset(&o, 0, sizeof(o));
    o.name = "test";
    o.max_request_body_bytes = 1024;
    o.body_too_large_error = "test.bodyTooLarge";
    o.header_timeout_ms = 5000;
    o.request_timeout_ms = 5000;
    o.idle_timeout_ms = 5000;
    o.max_connections = max_connections;
    o.bad_request_error = "test.badRequest";
    o.handler = handler;
    o.handler_arg = arg;
    return sd_http_loop_create(&o);
}

#endif
