/* sd_http.h: the only module that knows libh2o: event-loop threads with listeners, a handler
 * callback per loop, response helpers and cross-thread wake-ups.
 *
 * Threads: each struct sd_http_loop runs one h2o event loop in its own thread. Handlers run on
 * that thread. Other threads talk to a loop only through sd_http_loop_post(). A handler may
 * answer later ("park" the request) from the loop thread; nothing times a parked request out
 * unless its owner does.
 *
 * Limits: a loop holds at most max_connections open connections (accepting pauses at the cap
 * and resumes below it, and backs off while accept() lacks descriptors or memory), closes
 * connections that stay idle or send their request too slowly, and answers 400 and closes for
 * a request head with ambiguous framing (net/sd_http_framing) before the handler runs. Every
 * error h2o itself answers while reading a body (413 over the limit, 400 for broken chunked
 * framing) is rewritten to our JSON error. After such an answer the rest of the body may still
 * be arriving: the connection then lingers as nginx's does (its write side is shut, input is
 * read and discarded for a bounded time and amount, then it closes), so the client reads the
 * answer instead of a reset. */
#ifndef SD_HTTP_H
#define SD_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/sd_buf.h"

struct sd_http_loop;
struct sd_record;

/* One request, opaque to the handlers. It and every view its accessors return stay valid until
 * it is answered. */
struct sd_http_req;

/* Handles one complete request on the loop thread. Must answer (now or later, on this thread). */
typedef void (*sd_http_handler_fn)(void *arg, struct sd_http_req *req);
/* Runs on the loop thread for a message posted with sd_http_loop_post. */
typedef void (*sd_http_task_fn)(struct sd_http_loop *loop, void *arg);
/* Runs on the loop thread every tick_ms (timeouts of parked requests, etc.). */
typedef void (*sd_http_tick_fn)(struct sd_http_loop *loop, void *arg);

struct sd_http_loop_opts {
    const char *name; /* for logs and the thread name */
    /* Over it the answer is 413 {"statusCode":413,"error":body_too_large_error,"message":
     * "Request body size is over the maximum \"<body_limit_text>\"."}, sent as soon as the
     * excess is known (from Content-Length, or while a chunked body arrives). */
    size_t max_request_body_bytes;
    const char *body_too_large_error; /* "stream.in.bodyTooLarge" */
    char body_limit_text[24];         /* the limit as the reference spells it, "1MB" */
    /* Timeouts: a complete head within header_timeout_ms of accept or of a request's first byte
     * (at most request_timeout_ms), the whole request within request_timeout_ms of its first
     * byte, and the next request's first byte within idle_timeout_ms of a response. */
    int64_t header_timeout_ms;
    int64_t request_timeout_ms;
    int64_t idle_timeout_ms;
    size_t max_connections; /* open connections; accepting pauses at this many */
    /* Kernel send buffer (SO_SNDBUF) of each accepted connection; 0 = the system's default. */
    size_t send_buffer_bytes;
    /* Error name of the 400 for ambiguous or broken framing ("stream.in.badRequest"), and the
     * Server header of the answers sd_http itself gives (or NULL). */
    const char *bad_request_error;
    const char *server_header;
    sd_http_handler_fn handler;
    void *handler_arg;
    sd_http_tick_fn tick; /* optional */
    void *tick_arg;
    int64_t tick_ms;
    /* Optional: runs on the loop thread after each round of events (what the handlers of the
     * round queued can go out in one write). */
    sd_http_tick_fn after_round;
    void *after_round_arg;
    /* Optional: the owner's "nothing in flight" check for a drain (loop thread). */
    int (*is_idle)(void *arg);
    void *is_idle_arg;
};

#define SD_HTTP_MAX_LISTENERS 4
/* Loops that may share one set of listeners (sd_http_loop_join). */
#define SD_HTTP_MAX_LOOPS 64

/* Creates a loop (no thread, no h2o object yet: those are made on the loop thread, since h2o's
 * buffer caches are per thread). opts is copied. Free with sd_http_loop_destroy. */
struct sd_http_loop *sd_http_loop_create(const struct sd_http_loop_opts *opts);
/* Sets the handler's argument (before the loop starts). */
void sd_http_loop_set_handler_arg(struct sd_http_loop *loop, void *arg);
/* Makes loop serve acceptor's listeners too (both created, neither started; loop has no
 * listener of its own): acceptor accepts every connection and hands it to whichever of itself
 * and the loops joined to it has the fewest open connections (ties in turn), so connections
 * spread evenly however few there are; acceptor's max_connections then bounds them together.
 * Returns 0, or SD_ELIMIT past SD_HTTP_MAX_LOOPS. */
int sd_http_loop_join(struct sd_http_loop *acceptor, struct sd_http_loop *loop);
/* Binds "host:port" (port 0 = any) and starts accepting once the loop runs. Writes the URL
 * "http://HOST:PORT" (127.0.0.1 when bound to 0.0.0.0) into url. Returns 0 or -errno. */
int sd_http_loop_listen(struct sd_http_loop *loop, const char *addr, char *url, size_t url_len);
/* Starts the loop thread and returns once it can take posts. */
int sd_http_loop_start(struct sd_http_loop *loop);
/* From any thread: runs fn(loop, arg) on the loop thread soon; posted before the loop started,
 * once it has (in order). */
void sd_http_loop_post(struct sd_http_loop *loop, sd_http_task_fn fn, void *arg);
/* From another thread: stops accepting new connections (existing ones go on). */
void sd_http_loop_close_listeners(struct sd_http_loop *loop);
/* From another thread: closes the listeners, lets in-flight work finish (until is_idle says so
 * or drain_ms passes), then stops and joins the loop thread. NULL or not running: a no-op. */
void sd_http_loop_stop(struct sd_http_loop *loop, int64_t drain_ms);
/* sd_http_loop_stop for n loops (NULL entries skipped) at once: each drains in parallel. */
void sd_http_loops_stop(struct sd_http_loop *const *loops, size_t n, int64_t drain_ms);
/* Frees the loop (after stop; the loop thread disposed its h2o objects itself). NULL is a
 * no-op. */
void sd_http_loop_destroy(struct sd_http_loop *loop);

/* Responses (loop thread). The body is copied. */
void sd_http_send(struct sd_http_req *req, int status, const char *content_type, const char *body,
                  size_t len);
/* Sends json (takes ownership), compact or indented. */
void sd_http_send_json(struct sd_http_req *req, int status, json_t *json, int pretty);
/* Sends {"statusCode":status,"error":name,"message":message}. */
void sd_http_send_error(struct sd_http_req *req, int status, const char *name, const char *message);
/* Adds a response header (name and value copied into the request pool). */
void sd_http_add_header(struct sd_http_req *req, const char *name, const char *value);

/* Request helpers. Returns the value of header name (lower-case) or an empty view. */
struct sd_str sd_http_header(struct sd_http_req *req, const char *lower_name);
/* Writes the peer IP text into out. */
void sd_http_peer_ip(struct sd_http_req *req, char *out, size_t len);
/* Total bytes of the request head as the client sent it (request line + header lines). */
size_t sd_http_head_bytes(struct sd_http_req *req);
/* Looks up a query parameter of the request path (not decoded). Returns 1 if found. */
int sd_http_query_param(struct sd_http_req *req, const char *name, struct sd_str *value);
/* Path without the query string. */
struct sd_str sd_http_path(struct sd_http_req *req);
/* The request method ("GET"). */
struct sd_str sd_http_req_method(struct sd_http_req *req);
/* Sets body to the request body. Returns 1 when the request has one (even of length 0), else 0
 * (body is then an empty view). */
int sd_http_req_body(struct sd_http_req *req, struct sd_str *body);
/* Returns a NUL-terminated copy of s in the request's memory (freed with the request). */
char *sd_http_req_strdup(struct sd_http_req *req, const char *s);

/* What differs between the endpoints that turn a request into a record. */
struct sd_http_record_opts {
    int has_host;            /* add Host (the request's authority), as the data endpoint does */
    const char *drop_header; /* lower-case name of a header left out (or NULL) */
};
/* Initializes rec (sd_record_init) and fills it from the request: the headers with canonical
 * names (sd_header_canonicalize; but opts->drop_header), plus Host when opts->has_host and the
 * request names one, plus Content-Length when it has a body, sorted (sd_record_sort_headers);
 * the body (empty when none), the Content-Type value, the receive time (now) and the peer IP.
 * rec borrows the request's memory (two allocations from its pool): valid until the request is
 * answered. */
void sd_http_req_record(struct sd_http_req *req, const struct sd_http_record_opts *opts,
                        struct sd_record *rec);

/* Percent-decodes s into out (NUL-terminated). Returns 0, or SD_EPARSE on a bad escape or a
 * decoded NUL byte. */
int sd_http_url_decode(struct sd_str s, struct sd_buf *out);

#endif
