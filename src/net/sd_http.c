/* sd_http.c: libh2o-evloop glue: loop threads, listeners, cross-thread messages, responses.
 *
 * DESIGN: one h2o context per loop, each with its own globalconf (so the data endpoint and the
 * API can have different body limits and timeouts), HTTP/2 upgrade off, the Server header set
 * by us. Other threads never touch h2o objects: they post a message through an
 * h2o_multithread queue and the loop thread runs it. Stopping posts a message that closes the
 * listeners; the loop then keeps running until its owner reports idle or the drain deadline
 * passes, so parked requests still get their answers. SIGPIPE must be ignored by the process
 * (sd_cli does it) before any loop starts.
 *
 * Connections: every accepted socket gets a struct sd_http_conn through its on_close callback
 * (unused by h2o's HTTP/1 layer), which counts it against max_connections and unlinks it when
 * h2o closes it. The listeners are read only below the cap and outside an accept back-off.
 * h2o 2.2.5 has one silent timer over idle + head + body; a sweep on the loop enforces each part
 * by shutdown() of the descriptor, so h2o sees EOF and frees the connection on its own path,
 * and h2o's timer stays as a backstop. Before the handler runs, the head h2o parsed (still at
 * the start of the socket's input) is checked by sd_http_framing; a refused one gets 400 and
 * Connection: close, so whatever follows it is never executed.
 *
 * Group of loops: sd_http_loop_join makes loops serve one acceptor's listeners. The acceptor
 * accept4()s and hands each descriptor to the loop with the fewest open connections (a posted
 * message); the socket is created on the loop that serves it (h2o's buffer caches are per
 * thread). Connection counts are atomics, so the acceptor sees its group's total for the cap.
 *
 * A parked request keeps its connection polled: h2o stops reading a connection while a request is
 * with the handler and resumes after the answer; when the answer comes a round later, that is an
 * epoll_ctl DEL and ADD per request (about a tenth of the loop's time). sd_http reads on into the
 * socket's input meanwhile (bounded), where h2o finds the next request when it resumes; since that
 * input may then move, a request's body is first copied out of it into the request's pool.
 *
 * Errors h2o answers itself while reading a body (413, 400 for broken chunks) bind the
 * request to the host's fallback path, where a filter rewrites them to our JSON error.
 *
 * Lingering close: when we answer and close while input may still be arriving (those errors,
 * the framing 400), closing a socket with unread input makes the kernel send RST, and the
 * client, still sending, loses the answer. So the connection's descriptor is dup()ed when the
 * answer is chosen; h2o's close() then releases only its own descriptor, and on_close wraps the
 * duplicate in a new socket: write side shut (the client sees the answer and EOF), input read
 * and discarded until EOF, SD_HTTP_LINGER_IDLE_MS without input, SD_HTTP_LINGER_MS in all or
 * SD_HTTP_LINGER_MAX_BYTES, then closed (nginx's lingering_close, lingering_timeout and
 * lingering_time). A lingering connection still counts against max_connections; without a
 * spare descriptor for dup() it closes at once as before. */
#include "net/sd_http.h"
#include "net/sd_listen.h"
#include "net/sd_http_framing.h"
#include "core/sd_alloc.h"
#include "core/sd_error.h"
#include "core/sd_log.h"
#include "core/sd_metrics_reg.h"
#include "core/sd_time.h"
#include "pipeline/sd_record.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <h2o.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct sd_http_handler {
    h2o_handler_t super;
    struct sd_http_loop *loop;
};

/* On the host's fallback path: turns the errors h2o answers itself into our JSON. */
struct sd_http_error_filter {
    h2o_filter_t super;
    struct sd_http_loop *loop;
};

struct sd_http_error_ostream {
    h2o_ostream_t super;
    struct sd_http_loop *loop;
};

struct sd_http_msg {
    h2o_multithread_message_t super;
    sd_http_task_fn fn;
    void *arg;
    struct sd_http_msg *next_pending; /* posted before the loop started (start_lock) */
};

/* One accepted connection, tracked from accept to the close of its socket (the socket's
 * on_close callback, which neither h2o's HTTP/1 layer nor its evloop use). */
struct sd_http_conn {
    h2o_linklist_t link; /* in loop->conns */
    struct sd_http_loop *loop;
    h2o_socket_t *sock;
    struct sd_http_busy *busy; /* the request a handler has, or NULL */
    int64_t since_ms;          /* accept, or the end of the last request */
    int64_t head_start_ms;     /* when bytes of the next request were first seen (0 = none yet) */
    int has_served;            /* a request reached the handler: waiting is keep-alive idle */
    int is_closing;            /* shut down by the sweep; h2o closes it on the EOF */
    int linger_fd;             /* dup() of the descriptor to linger on after h2o's close, or -1 */
    int is_lingering;          /* sock is our own socket over linger_fd, discarding input */
    int64_t linger_last_ms;    /* lingering: start, or the last input */
    size_t linger_bytes;       /* lingering: input discarded so far */
};

struct sd_http_loop {
    struct sd_http_loop_opts opts;
    h2o_globalconf_t conf;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_evloop_t *evloop;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    h2o_timeout_t tick_timeout;
    h2o_timeout_entry_t tick_entry;
    h2o_timeout_t sweep_timeout; /* connection timeouts and the end of an accept back-off */
    h2o_timeout_entry_t sweep_entry;
    h2o_socket_t *listeners[SD_HTTP_MAX_LISTENERS]; /* loop thread */
    int listen_fds[SD_HTTP_MAX_LISTENERS];          /* bound by listen(), wrapped at start */
    size_t nlisteners;
    /* Loops serving the same listeners (sd_http_loop_join): the acceptor lists them all, itself
     * first. index = place in that list (0 = acceptor or a loop on its own). */
    struct sd_http_loop *group[SD_HTTP_MAX_LOOPS];
    size_t ngroup;
    size_t index;
    size_t next_pick; /* acceptor thread: where the search for the least busy loop starts */
    struct sd_mseries *m_requests; /* requests handled (server = opts.name, loop = index) */
    /* Loop thread: accepted connections (struct sd_http_conn) and whether the listeners are
     * being read (off at max_connections or during an accept back-off). nconns (atomic) also
     * counts connections the acceptor handed over that this loop has not adopted yet. */
    h2o_linklist_t conns;
    size_t nconns;
    int is_accepting;
    int64_t backoff_until_ms;  /* accept back-off in progress until then (0 = none) */
    int64_t backoff_logged_ms; /* last warning of a failed accept (0 = none yet) */
    int64_t full_logged_ms;    /* last warning that max_connections was reached (0 = none) */
    size_t nlingering;         /* of conns: closed by h2o, still discarding input */
    pthread_t thread;
    pthread_mutex_t start_lock;
    pthread_cond_t start_cond;
    int is_started; /* under start_lock (read atomically): the loop thread has built its h2o
                     * objects */
    struct sd_http_msg *pending, *pending_tail; /* under start_lock: posted before is_started */
    int is_running;
    int is_stopping; /* loop thread only */
    int64_t stop_deadline_ms;
};

/* Lives in a request's pool: disposing the request (response done or connection closed)
 * ends the connection's busy time. */
struct sd_http_busy {
    struct sd_http_conn *conn;
};

#define SD_HTTP_SWEEP_MS 100
#define SD_HTTP_ACCEPT_BATCH 32
#define SD_HTTP_BACKOFF_MS 100
#define SD_HTTP_LOG_EVERY_MS 60000  /* at most one warning a minute per kind */
#define SD_HTTP_LINGER_MS 10000     /* lingering close: at most this long in all, */
#define SD_HTTP_LINGER_IDLE_MS 2000 /* this long without input, */
#define SD_HTTP_LINGER_MAX_BYTES (64u * 1024 * 1024) /* and this much input discarded */

static void sd__http_on_accept(h2o_socket_t *listener, const char *err);
static void sd__http_on_conn_close(void *data);
static json_t *sd__http_error_json(int status, const char *name, const char *message);
static char *sd__http_dump(json_t *json, int pretty);

/* Open connections of the loops serving loop's listeners (the acceptor's group, or loop). */
static size_t sd__http_open_conns(const struct sd_http_loop *loop)
{
    size_t total = __atomic_load_n(&loop->nconns, __ATOMIC_RELAXED);

    for (size_t i = 1; i < loop->ngroup; i++) {
        total += __atomic_load_n(&loop->group[i]->nconns, __ATOMIC_RELAXED);
    }
    return total;
}

/* Reads the listeners exactly while a connection may be accepted. A joined loop has none; the
 * acceptor learns of connections its group closed at its next sweep. */
static void sd__http_update_accepting(struct sd_http_loop *loop)
{
    int want =
        loop->backoff_until_ms == 0 && sd__http_open_conns(loop) < loop->opts.max_connections;

    if (want == loop->is_accepting) {
        return;
    }
    for (size_t i = 0; i < loop->nlisteners; i++) {
        if (want) {
            h2o_socket_read_start(loop->listeners[i], sd__http_on_accept);
        } else {
            h2o_socket_read_stop(loop->listeners[i]);
        }
    }
    loop->is_accepting = want;
}

static void sd__http_on_busy_done(void *p)
{
    struct sd_http_busy *busy = p;

    if (busy->conn != NULL) {
        busy->conn->busy = NULL;
        busy->conn->since_ms = sd_mono_ms();
        busy->conn->head_start_ms = 0;
    }
}

/* A struct sd_http_req is h2o's request itself, cast (no allocation per request). */
static h2o_req_t *sd__h2o_req(struct sd_http_req *req)
{
    return (h2o_req_t *)req;
}

static struct sd_http_req *sd__http_req(h2o_req_t *req)
{
    return (struct sd_http_req *)req;
}

/* The tracked connection of req, or NULL if req did not come through our accept. */
static struct sd_http_conn *sd__http_conn_of(h2o_req_t *req)
{
    h2o_socket_t *sock = NULL;

    if (req->conn->callbacks->get_socket != NULL) {
        sock = req->conn->callbacks->get_socket(req->conn);
    }
    if (sock == NULL || sock->on_close.cb != sd__http_on_conn_close) {
        return NULL;
    }
    return sock->on_close.data;
}

/* conn (or NULL) is about to be answered and closed while input may still be arriving:
 * keep a duplicate of its descriptor to linger on once h2o has closed its own. */
static void sd__http_linger_after_close(struct sd_http_conn *conn)
{
    if (conn != NULL && conn->linger_fd < 0) {
        conn->linger_fd = fcntl(h2o_socket_get_fd(conn->sock), F_DUPFD_CLOEXEC, 0);
    }
}

/* While a request is with the handler, h2o stops reading its connection and resumes after the
 * answer: with the answer a round later (a parked request), that is an epoll_ctl DEL and ADD per
 * request. Reading on instead (into the socket's input, where h2o finds the next request when it
 * resumes) keeps the descriptor registered. Input past the bound, EOF or an error stop reading,
 * as h2o would have; h2o then meets them when it resumes. */
#define SD_HTTP_BUSY_INPUT_MAX (64u * 1024)

static void sd__http_on_read_while_busy(h2o_socket_t *sock, const char *err)
{
    struct sd_http_conn *conn = sock->on_close.data;

    if (err != NULL || conn->busy == NULL || sock->input->size > SD_HTTP_BUSY_INPUT_MAX) {
        h2o_socket_read_stop(sock);
    }
}

/* Whether conn may read on while req is with the handler: only when h2o copied the request head
 * out of the socket's input (it does for a request with a body), and after the body, which h2o
 * leaves in that input, is copied into the request's pool, since reading may move the input. */
static int sd__http_detach_body(h2o_req_t *req, struct sd_http_conn *conn)
{
    const h2o_buffer_t *in = conn->sock->input;
    char *copy;

    if (req->entity.base == NULL) {
        return 0;
    }
    if (req->entity.base >= in->bytes && req->entity.base < in->bytes + in->size) {
        copy = h2o_mem_alloc_pool(&req->pool, req->entity.len + 1);
        memcpy(copy, req->entity.base, req->entity.len);
        req->entity.base = copy;
    }
    return 1;
}

static int sd__http_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct sd_http_loop *loop = ((struct sd_http_handler *)self)->loop;
    struct sd_http_conn *conn = sd__http_conn_of(req);
    const char *why = "connection state unknown";
    int is_polled;

    /* h2o leaves the head as received at the start of the socket's input (header names
     * lower-cased); the body, if any, follows it. */
    if (conn == NULL ||
        sd_http_framing_check(conn->sock->input->bytes, conn->sock->input->size, &why) != 0) {
        req->http1_is_persistent = 0;
        sd__http_linger_after_close(conn);
        if (loop->opts.server_header != NULL) {
            sd_http_add_header(sd__http_req(req), "Server", loop->opts.server_header);
        }
        sd_http_send_error(sd__http_req(req), 400, loop->opts.bad_request_error, why);
        return 0;
    }
    conn->busy = h2o_mem_alloc_shared(&req->pool, sizeof(*conn->busy), sd__http_on_busy_done);
    conn->busy->conn = conn;
    conn->has_served = 1;
    sd_mreg_add(loop->m_requests, 1);
    is_polled = sd__http_detach_body(req, conn);
    loop->opts.handler(loop->opts.handler_arg, sd__http_req(req));
    if (is_polled) {
        h2o_socket_read_start(conn->sock, sd__http_on_read_while_busy);
    }
    return 0;
}

/* Forgets a connection whose socket is closed. */
static void sd__http_conn_free(struct sd_http_conn *conn)
{
    struct sd_http_loop *loop = conn->loop;

    if (conn->linger_fd >= 0) {
        close(conn->linger_fd);
    }
    if (conn->is_lingering) {
        loop->nlingering--;
    }
    h2o_linklist_unlink(&conn->link);
    free(conn);
    __atomic_sub_fetch(&loop->nconns, 1, __ATOMIC_RELAXED);
    sd__http_update_accepting(loop);
}

static void sd__http_on_linger_close(void *data)
{
    struct sd_http_conn *conn = data;

    conn->linger_fd = -1; /* closed with the socket that wrapped it */
    sd__http_conn_free(conn);
}

/* Discards what arrives on a lingering connection; closes at EOF, on an error or past the
 * byte bound (the sweep enforces the time bounds). */
static void sd__http_on_linger_read(h2o_socket_t *sock, const char *err)
{
    struct sd_http_conn *conn = sock->data;

    if (err == NULL) {
        conn->linger_bytes += sock->input->size;
        h2o_buffer_consume(&sock->input, sock->input->size);
        conn->linger_last_ms = sd_mono_ms();
    }
    if (err != NULL || conn->linger_bytes > SD_HTTP_LINGER_MAX_BYTES) {
        h2o_socket_close(sock);
    }
}

/* h2o closed its descriptor of conn: linger on the duplicate if one was made, else forget. */
static void sd__http_on_conn_close(void *data)
{
    struct sd_http_conn *conn = data;
    struct sd_http_loop *loop = conn->loop;

    if (conn->busy != NULL) {
        conn->busy->conn = NULL;
        conn->busy = NULL;
    }
    if (conn->linger_fd < 0 || conn->is_closing || loop->is_stopping) {
        sd__http_conn_free(conn);
        return;
    }
    /* FIN after the answer; the client's input is read below until it closes too. */
    shutdown(conn->linger_fd, SHUT_WR);
    conn->sock = h2o_evloop_socket_create(loop->ctx.loop, conn->linger_fd, 0);
    conn->linger_fd = -1; /* owned by the socket now */
    conn->sock->data = conn;
    conn->sock->on_close.cb = sd__http_on_linger_close;
    conn->sock->on_close.data = conn;
    conn->is_lingering = 1;
    conn->since_ms = conn->linger_last_ms = sd_mono_ms();
    loop->nlingering++;
    h2o_socket_read_start(conn->sock, sd__http_on_linger_read);
}

/* Whether a lingering connection has lingered long enough (or the loop stops). */
static int sd__http_linger_is_over(struct sd_http_conn *conn, int64_t now)
{
    return conn->loop->is_stopping || now - conn->since_ms >= SD_HTTP_LINGER_MS ||
           now - conn->linger_last_ms >= SD_HTTP_LINGER_IDLE_MS;
}

/* Whether the buffered bytes hold a complete request head (up to its empty line). */
static int sd__http_has_head(const h2o_buffer_t *in)
{
    return memmem(in->bytes, in->size, "\n\r\n", 3) != NULL ||
           memmem(in->bytes, in->size, "\n\n", 2) != NULL;
}

/* Whether conn has waited too long: idle after a response, for a complete head, or for its
 * whole request; while the loop stops, a connection without a request is over-due at once. A
 * connection whose request is with the handler is never over-due here. */
static int sd__http_is_overdue(struct sd_http_conn *conn, int64_t now)
{
    const struct sd_http_loop_opts *o = &conn->loop->opts;
    const h2o_buffer_t *in = conn->sock->input;

    if (conn->busy != NULL || conn->is_closing) {
        return 0;
    }
    if (in->size == 0) {
        conn->head_start_ms = 0;
        return conn->loop->is_stopping ||
               now - conn->since_ms >=
                   (conn->has_served ? o->idle_timeout_ms : o->header_timeout_ms);
    }
    if (conn->head_start_ms == 0) {
        conn->head_start_ms = conn->has_served ? now : conn->since_ms;
    }
    if (now - conn->head_start_ms >= o->request_timeout_ms) {
        return 1;
    }
    return now - conn->head_start_ms >= o->header_timeout_ms && !sd__http_has_head(in);
}

/* Every SD_HTTP_SWEEP_MS: ends an accept back-off and closes over-due connections. Closing is a
 * shutdown() of the descriptor: h2o sees EOF (or a failed write) and frees the connection
 * through its own path. */
static void sd__http_on_sweep(h2o_timeout_entry_t *entry)
{
    struct sd_http_loop *loop = H2O_STRUCT_FROM_MEMBER(struct sd_http_loop, sweep_entry, entry);
    int64_t now = sd_mono_ms();

    if (loop->backoff_until_ms != 0 && now >= loop->backoff_until_ms) {
        loop->backoff_until_ms = 0;
    }
    sd__http_update_accepting(loop);
    for (h2o_linklist_t *node = loop->conns.next, *next; node != &loop->conns; node = next) {
        struct sd_http_conn *conn = H2O_STRUCT_FROM_MEMBER(struct sd_http_conn, link, node);
        next = node->next; /* closing a lingering connection frees it */
        if (conn->is_lingering) {
            if (sd__http_linger_is_over(conn, now)) {
                h2o_socket_close(conn->sock);
            }
        } else if (sd__http_is_overdue(conn, now)) {
            conn->is_closing = 1;
            shutdown(h2o_socket_get_fd(conn->sock), SHUT_RDWR);
        }
    }
    h2o_timeout_link(loop->ctx.loop, &loop->sweep_timeout, &loop->sweep_entry);
}

static void sd__http_on_accept(h2o_socket_t *listener, const char *err);

static void sd__http_on_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    struct sd_http_loop *loop = H2O_STRUCT_FROM_MEMBER(struct sd_http_loop, receiver, receiver);

    while (!h2o_linklist_is_empty(messages)) {
        struct sd_http_msg *msg =
            H2O_STRUCT_FROM_MEMBER(struct sd_http_msg, super.link, messages->next);
        h2o_linklist_unlink(&msg->super.link);
        msg->fn(loop, msg->arg);
        free(msg);
    }
}

static void sd__http_on_tick(h2o_timeout_entry_t *entry)
{
    struct sd_http_loop *loop = H2O_STRUCT_FROM_MEMBER(struct sd_http_loop, tick_entry, entry);

    loop->opts.tick(loop, loop->opts.tick_arg);
    h2o_timeout_link(loop->ctx.loop, &loop->tick_timeout, &loop->tick_entry);
}

struct sd_http_loop *sd_http_loop_create(const struct sd_http_loop_opts *opts)
{
    struct sd_http_loop *loop = sd_xcalloc(1, sizeof(*loop));

    loop->opts = *opts;
    /* a head is part of its request: the request timeout bounds it too */
    if (loop->opts.header_timeout_ms > loop->opts.request_timeout_ms) {
        loop->opts.header_timeout_ms = loop->opts.request_timeout_ms;
    }
    loop->group[0] = loop;
    loop->ngroup = 1;
    pthread_mutex_init(&loop->start_lock, NULL);
    pthread_cond_init(&loop->start_cond, NULL);
    return loop;
}

void sd_http_loop_set_handler_arg(struct sd_http_loop *loop, void *arg)
{
    loop->opts.handler_arg = arg;
}

int sd_http_loop_join(struct sd_http_loop *acceptor, struct sd_http_loop *loop)
{
    if (acceptor->ngroup == SD_HTTP_MAX_LOOPS) {
        return SD_ELIMIT;
    }
    loop->index = acceptor->ngroup;
    acceptor->group[acceptor->ngroup++] = loop;
    return 0;
}

/* Replaces h2o's plain-text body (one final send: h2o_send_inline) with our JSON error. */
static void sd__http_error_do_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs,
                                   size_t bufcnt, h2o_send_state_t state)
{
    const struct sd_http_loop_opts *o = &((struct sd_http_error_ostream *)self)->loop->opts;
    char message[256];
    char *text;
    h2o_iovec_t body = {NULL, 0};

    if (req->res.status == 413) {
        snprintf(message, sizeof(message), "Request body size is over the maximum \"%s\".",
                 o->body_limit_text);
        text = sd__http_dump(sd__http_error_json(413, o->body_too_large_error, message), 1);
    } else { /* 400: h2o's text says what is wrong with the framing */
        snprintf(message, sizeof(message), "Request body framing is invalid: %.*s.",
                 bufcnt > 0 ? (int)bufs[0].len : 0, bufcnt > 0 ? bufs[0].base : "");
        text = sd__http_dump(sd__http_error_json(400, o->bad_request_error, message), 1);
    }
    if (text != NULL) {
        body = h2o_strdup(&req->pool, text, strlen(text));
        free(text);
    }
    req->res.content_length = body.len;
    h2o_ostream_send_next(self, req, bufcnt > 0 ? &body : NULL, bufcnt > 0 ? 1 : 0, state);
}

static void sd__http_error_on_setup(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    struct sd_http_loop *loop = ((struct sd_http_error_filter *)self)->loop;
    struct sd_http_error_ostream *os;

    if (req->res.status == 413 || req->res.status == 400) {
        sd_log_info("http", "%s: %s", loop->opts.name,
                    req->res.status == 413 ? "request body size is over the maximum"
                                           : "request body framing is invalid");
        /* h2o stopped reading the body to answer: the rest may still be on its way */
        sd__http_linger_after_close(sd__http_conn_of(req));
        memset(&req->res.headers, 0, sizeof(req->res.headers));
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       H2O_STRLIT("application/json"));
        if (loop->opts.server_header != NULL) {
            sd_http_add_header(sd__http_req(req), "Server", loop->opts.server_header);
        }
        os = (struct sd_http_error_ostream *)h2o_add_ostream(req, sizeof(*os), slot);
        os->super.do_send = sd__http_error_do_send;
        os->loop = loop;
        slot = &os->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

/* Creates every h2o object of the loop. Runs on the loop thread: h2o keeps per-thread buffer
 * caches (thread-local allocators), and a socket created on one thread allocates from that
 * thread's cache forever, so objects made on the main thread and used by several loop
 * threads would share one unlocked cache and corrupt the heap. */
static void sd__http_setup(struct sd_http_loop *loop)
{
    h2o_hostconf_t *host;
    h2o_pathconf_t *path;
    struct sd_http_handler *handler;
    struct sd_http_error_filter *errors;
    struct sd_buf labels = SD_BUF_INIT;
    char index[24];

    snprintf(index, sizeof(index), "%zu", loop->index);
    sd_mreg_label(&labels, "server", loop->opts.name);
    sd_mreg_label(&labels, "loop", index);
    loop->m_requests = sd_mreg_series(SD_M_HTTP_LOOP_REQUESTS, sd_buf_cstr(&labels));
    sd_buf_fini(&labels);
    h2o_config_init(&loop->conf);
    loop->conf.server_name = h2o_iovec_init(H2O_STRLIT(""));
    loop->conf.max_request_entity_size = loop->opts.max_request_body_bytes;
    /* h2o's one timer runs from the end of a response over idle, head and body; the sweep
     * enforces each part, h2o's timer only backs it up. */
    loop->conf.http1.req_timeout =
        (uint64_t)(loop->opts.idle_timeout_ms + loop->opts.request_timeout_ms + 1000);
    loop->conf.http1.upgrade_to_http2 = 0;
    host = h2o_config_register_host(&loop->conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    path = h2o_config_register_path(host, "/", 0);
    handler = (struct sd_http_handler *)h2o_create_handler(path, sizeof(*handler));
    handler->super.on_req = sd__http_on_req;
    handler->loop = loop;
    errors =
        (struct sd_http_error_filter *)h2o_create_filter(&host->fallback_path, sizeof(*errors));
    errors->super.on_setup_ostream = sd__http_error_on_setup;
    errors->loop = loop;

    loop->evloop = h2o_evloop_create();
    h2o_context_init(&loop->ctx, loop->evloop, &loop->conf);
    loop->accept_ctx.ctx = &loop->ctx;
    loop->accept_ctx.hosts = loop->conf.hosts;
    loop->queue = h2o_multithread_create_queue(loop->ctx.loop);
    h2o_multithread_register_receiver(loop->queue, &loop->receiver, sd__http_on_messages);
    if (loop->opts.tick != NULL && loop->opts.tick_ms > 0) {
        h2o_timeout_init(loop->ctx.loop, &loop->tick_timeout, (uint64_t)loop->opts.tick_ms);
        loop->tick_entry.cb = sd__http_on_tick;
        h2o_timeout_link(loop->ctx.loop, &loop->tick_timeout, &loop->tick_entry);
    }
    h2o_linklist_init_anchor(&loop->conns);
    h2o_timeout_init(loop->ctx.loop, &loop->sweep_timeout, SD_HTTP_SWEEP_MS);
    loop->sweep_entry.cb = sd__http_on_sweep;
    h2o_timeout_link(loop->ctx.loop, &loop->sweep_timeout, &loop->sweep_entry);
    for (size_t i = 0; i < loop->nlisteners; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_create(loop->ctx.loop, loop->listen_fds[i],
                                                      H2O_SOCKET_FLAG_DONT_READ);
        sock->data = loop;
        loop->listeners[i] = sock;
        loop->listen_fds[i] = -1; /* owned by the socket now */
    }
    sd__http_update_accepting(loop);
}

/* accept() failed for want of descriptors or memory: stop reading the listeners (they would
 * stay readable and the loop would spin) and try again after SD_HTTP_BACKOFF_MS. Warns at most
 * once a minute: at the edge of the limit accepts can fail and succeed in turn. */
static void sd__http_accept_backoff(struct sd_http_loop *loop, int err)
{
    int64_t now = sd_mono_ms();

    if (loop->backoff_logged_ms == 0 || now - loop->backoff_logged_ms >= SD_HTTP_LOG_EVERY_MS) {
        sd_log_warn("http",
                    "%s: accept failed (%s) with %zu connections open: pausing accepts, "
                    "retrying every %d ms",
                    loop->opts.name, sd_strerror(-err), sd__http_open_conns(loop),
                    SD_HTTP_BACKOFF_MS);
        loop->backoff_logged_ms = now;
    }
    loop->backoff_until_ms = now + SD_HTTP_BACKOFF_MS;
}

/* Loop thread: serves an accepted connection (already counted in loop->nconns). */
static void sd__http_adopt(struct sd_http_loop *loop, int fd)
{
    struct sd_http_conn *conn;
    h2o_socket_t *sock;
    int one = 1;

    if (loop->is_stopping) {
        close(fd);
        __atomic_sub_fetch(&loop->nconns, 1, __ATOMIC_RELAXED);
        return;
    }
    /* small answers go out at once, pipelined ones too */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (loop->opts.send_buffer_bytes > 0) {
        int size = (int)loop->opts.send_buffer_bytes;
        /* a refused size leaves the default: nothing to do about it per connection */
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    }
    sock = h2o_evloop_socket_create(loop->ctx.loop, fd, H2O_SOCKET_FLAG_IS_ACCEPTED_CONNECTION);
    conn = sd_xcalloc(1, sizeof(*conn));
    conn->loop = loop;
    conn->sock = sock;
    conn->linger_fd = -1;
    conn->since_ms = sd_mono_ms();
    sock->on_close.cb = sd__http_on_conn_close;
    sock->on_close.data = conn;
    h2o_linklist_insert(&loop->conns, &conn->link);
    h2o_accept(&loop->accept_ctx, sock);
}

/* A connection handed over by the acceptor (the descriptor is the argument). */
static void sd__http_on_handover(struct sd_http_loop *loop, void *arg)
{
    sd__http_adopt(loop, (int)(intptr_t)arg);
}

/* Acceptor thread: the loop of the group with the fewest open connections, from the one after
 * the last pick (so ties go in turn). */
static struct sd_http_loop *sd__http_pick(struct sd_http_loop *acceptor)
{
    struct sd_http_loop *best = NULL;
    size_t best_conns = SIZE_MAX;

    for (size_t k = 0; k < acceptor->ngroup; k++) {
        struct sd_http_loop *l = acceptor->group[(acceptor->next_pick + k) % acceptor->ngroup];
        size_t n = __atomic_load_n(&l->nconns, __ATOMIC_RELAXED);
        if (n < best_conns) {
            best = l;
            best_conns = n;
        }
    }
    acceptor->next_pick = (best->index + 1) % acceptor->ngroup;
    return best;
}

static void sd__http_on_accept(h2o_socket_t *listener, const char *err)
{
    struct sd_http_loop *loop = listener->data;
    size_t open_conns = sd__http_open_conns(loop);

    if (err != NULL) {
        return;
    }
    for (int i = 0; i < SD_HTTP_ACCEPT_BATCH && open_conns < loop->opts.max_connections; i++) {
        int fd = accept4(h2o_socket_get_fd(listener), NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct sd_http_loop *target;
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                sd__http_accept_backoff(loop, errno);
            }
            break;
        }
        target = sd__http_pick(loop);
        __atomic_add_fetch(&target->nconns, 1, __ATOMIC_RELAXED);
        open_conns++;
        if (target == loop) {
            sd__http_adopt(loop, fd);
        } else {
            sd_http_loop_post(target, sd__http_on_handover, (void *)(intptr_t)fd);
        }
    }
    if (open_conns >= loop->opts.max_connections &&
        (loop->full_logged_ms == 0 ||
         sd_mono_ms() - loop->full_logged_ms >= SD_HTTP_LOG_EVERY_MS)) {
        loop->full_logged_ms = sd_mono_ms();
        sd_log_warn("http", "%s: %zu connections open, the limit: new ones wait until some close",
                    loop->opts.name, open_conns);
    }
    sd__http_update_accepting(loop);
}

int sd_http_loop_listen(struct sd_http_loop *loop, const char *addr, char *url, size_t url_len)
{
    char shown[INET6_ADDRSTRLEN + 2];
    int fd, port, is_wildcard;

    if (loop->nlisteners == SD_HTTP_MAX_LISTENERS) {
        return SD_EINVAL;
    }
    fd = sd_listen_tcp(addr, &port, shown, sizeof(shown), &is_wildcard);
    if (fd < 0) {
        return fd;
    }
    snprintf(url, url_len, "http://%s:%d", shown, port);
    loop->listen_fds[loop->nlisteners++] = fd; /* wrapped by the loop thread at start */
    return 0;
}

static void sd__http_teardown(struct sd_http_loop *loop);

static void *sd__http_thread_main(void *arg)
{
    struct sd_http_loop *loop = arg;
    char name[48];

    if (loop->index == 0) {
        snprintf(name, sizeof(name), "sd-%s", loop->opts.name);
    } else {
        snprintf(name, sizeof(name), "sd-%s-%zu", loop->opts.name, loop->index);
    }
    name[15] = '\0'; /* the kernel's limit */
    pthread_setname_np(pthread_self(), name);
    sd__http_setup(loop);
    pthread_mutex_lock(&loop->start_lock);
    __atomic_store_n(&loop->is_started, 1, __ATOMIC_RELEASE);
    /* what was posted before the receiver existed, in order */
    while (loop->pending != NULL) {
        struct sd_http_msg *msg = loop->pending;
        loop->pending = msg->next_pending;
        h2o_multithread_send_message(&loop->receiver, &msg->super);
    }
    loop->pending_tail = NULL;
    pthread_cond_signal(&loop->start_cond);
    pthread_mutex_unlock(&loop->start_lock);
    for (;;) {
        h2o_evloop_run(loop->ctx.loop, loop->is_stopping ? 50 : INT32_MAX);
        if (loop->opts.after_round != NULL) {
            loop->opts.after_round(loop, loop->opts.after_round_arg);
        }
        if (loop->is_stopping) {
            int idle = (loop->opts.is_idle == NULL || loop->opts.is_idle(loop->opts.is_idle_arg)) &&
                       h2o_linklist_is_empty(&loop->ctx.http1._conns) && loop->nlingering == 0;
            if (idle || sd_mono_ms() >= loop->stop_deadline_ms) {
                break;
            }
        }
    }
    sd__http_teardown(loop);
    return NULL;
}

int sd_http_loop_start(struct sd_http_loop *loop)
{
    int rc = pthread_create(&loop->thread, NULL, sd__http_thread_main, loop);
    if (rc != 0) {
        return -rc;
    }
    /* Posting needs the loop's receiver: wait until the thread has built it. */
    pthread_mutex_lock(&loop->start_lock);
    while (!loop->is_started) {
        pthread_cond_wait(&loop->start_cond, &loop->start_lock);
    }
    pthread_mutex_unlock(&loop->start_lock);
    loop->is_running = 1;
    return 0;
}

void sd_http_loop_post(struct sd_http_loop *loop, sd_http_task_fn fn, void *arg)
{
    struct sd_http_msg *msg = sd_xcalloc(1, sizeof(*msg));

    msg->fn = fn;
    msg->arg = arg;
    if (!__atomic_load_n(&loop->is_started, __ATOMIC_ACQUIRE)) {
        /* The receiver is built by the loop thread: keep the task until it runs (a writer's
         * final sync may come while the node is still starting). */
        pthread_mutex_lock(&loop->start_lock);
        if (!loop->is_started) {
            if (loop->pending_tail != NULL) {
                loop->pending_tail->next_pending = msg;
            } else {
                loop->pending = msg;
            }
            loop->pending_tail = msg;
            pthread_mutex_unlock(&loop->start_lock);
            return;
        }
        pthread_mutex_unlock(&loop->start_lock);
    }
    h2o_multithread_send_message(&loop->receiver, &msg->super);
}

struct sd_http_stop {
    int64_t drain_ms;
};

static void sd__http_close_listeners(struct sd_http_loop *loop, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < loop->nlisteners; i++) {
        h2o_socket_read_stop(loop->listeners[i]);
        h2o_socket_close(loop->listeners[i]);
    }
    loop->nlisteners = 0;
    loop->is_accepting = 0;
}

void sd_http_loop_close_listeners(struct sd_http_loop *loop)
{
    if (loop != NULL && loop->is_running) {
        sd_http_loop_post(loop, sd__http_close_listeners, NULL);
    }
}

static void sd__http_do_stop(struct sd_http_loop *loop, void *arg)
{
    struct sd_http_stop *stop = arg;

    sd__http_close_listeners(loop, NULL);
    /* Idle connections close at the next sweep, busy ones after their response. */
    h2o_context_request_shutdown(&loop->ctx);
    loop->stop_deadline_ms = sd_mono_ms() + stop->drain_ms;
    loop->is_stopping = 1;
    free(stop);
}

/* Posts the stop (the loop must be running). */
static void sd__http_post_stop(struct sd_http_loop *loop, int64_t drain_ms)
{
    struct sd_http_stop *stop = sd_xcalloc(1, sizeof(*stop));

    stop->drain_ms = drain_ms;
    sd_http_loop_post(loop, sd__http_do_stop, stop);
}

void sd_http_loops_stop(struct sd_http_loop *const *loops, size_t n, int64_t drain_ms)
{
    for (size_t i = 0; i < n; i++) {
        if (loops[i] != NULL && loops[i]->is_running) {
            sd__http_post_stop(loops[i], drain_ms);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (loops[i] != NULL && loops[i]->is_running) {
            pthread_join(loops[i]->thread, NULL);
            loops[i]->is_running = 0;
        }
    }
}

void sd_http_loop_stop(struct sd_http_loop *loop, int64_t drain_ms)
{
    sd_http_loops_stop(&loop, 1, drain_ms);
}

static void sd__http_teardown(struct sd_http_loop *loop)
{
    if (h2o_timeout_is_linked(&loop->tick_entry)) {
        h2o_timeout_unlink(&loop->tick_entry);
    }
    if (loop->opts.tick != NULL && loop->opts.tick_ms > 0) {
        h2o_timeout_dispose(loop->ctx.loop, &loop->tick_timeout);
    }
    h2o_timeout_unlink(&loop->sweep_entry);
    h2o_timeout_dispose(loop->ctx.loop, &loop->sweep_timeout);
    if (!h2o_linklist_is_empty(&loop->ctx.http1._conns) || loop->nlingering != 0) {
        /* Connections outlived the drain deadline: h2o cannot dispose a context that still
         * has them, and the process is about to exit anyway. */
        sd_log_warn("http", "%s: connections still open at exit", loop->opts.name);
        loop->evloop = NULL;
        return;
    }
    /* h2o_context_request_shutdown() arms the HTTP/2 graceful-shutdown timer even though
     * HTTP/2 is off; it must be unlinked before the context can be disposed. */
    if (h2o_timeout_is_linked(&loop->ctx.http2._graceful_shutdown_timeout)) {
        h2o_timeout_unlink(&loop->ctx.http2._graceful_shutdown_timeout);
    }
    h2o_multithread_unregister_receiver(loop->queue, &loop->receiver);
    h2o_multithread_destroy_queue(loop->queue);
    h2o_context_dispose(&loop->ctx);
    h2o_config_dispose(&loop->conf);
    h2o_evloop_destroy(loop->evloop);
    loop->evloop = NULL;
}

void sd_http_loop_destroy(struct sd_http_loop *loop)
{
    if (loop == NULL) {
        return;
    }
    for (size_t i = 0; i < loop->nlisteners; i++) {
        if (loop->listen_fds[i] >= 0 && loop->listeners[i] == NULL) {
            close(loop->listen_fds[i]); /* never started */
        }
    }
    while (loop->pending != NULL) { /* posted to a loop that never started */
        struct sd_http_msg *msg = loop->pending;
        loop->pending = msg->next_pending;
        if (msg->fn == sd__http_on_handover) {
            close((int)(intptr_t)msg->arg);
        }
        free(msg);
    }
    pthread_cond_destroy(&loop->start_cond);
    pthread_mutex_destroy(&loop->start_lock);
    free(loop);
}

static const char *sd__http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 507:
        return "Insufficient Storage";
    default:
        return "Unknown";
    }
}

void sd_http_add_header(struct sd_http_req *r, const char *name, const char *value)
{
    h2o_req_t *req = sd__h2o_req(r);
    h2o_iovec_t n = h2o_strdup(&req->pool, name, strlen(name));
    h2o_add_header_by_str(&req->pool, &req->res.headers, n.base, n.len, 1, NULL, value,
                          strlen(value));
}

void sd_http_send(struct sd_http_req *r, int status, const char *content_type, const char *body,
                  size_t len)
{
    h2o_req_t *req = sd__h2o_req(r);
    static h2o_generator_t generator = {NULL, NULL};
    h2o_iovec_t copy = h2o_strdup(&req->pool, body, len);

    req->res.status = status;
    req->res.reason = sd__http_reason(status);
    req->res.content_length = len;
    if (content_type != NULL) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                       strlen(content_type));
    }
    h2o_start_response(req, &generator);
    h2o_send(req, &copy, 1, H2O_SEND_STATE_FINAL);
}

/* Serializes json (takes ownership) as our answers are. Returns owned text or NULL. */
static char *sd__http_dump(json_t *json, int pretty)
{
    char *text = json_dumps(json, pretty ? JSON_INDENT(2) | JSON_PRESERVE_ORDER
                                         : JSON_COMPACT | JSON_PRESERVE_ORDER);

    json_decref(json);
    return text;
}

static json_t *sd__http_error_json(int status, const char *name, const char *message)
{
    json_t *body = json_object();

    json_object_set_new(body, "statusCode", json_integer(status));
    json_object_set_new(body, "error", json_string(name));
    json_object_set_new(body, "message", json_string(message));
    return body;
}

void sd_http_send_json(struct sd_http_req *req, int status, json_t *json, int pretty)
{
    char *text = sd__http_dump(json, pretty);
    size_t len;

    if (text == NULL) {
        sd_http_send(req, 500, "text/plain", "out of memory\n", 14);
        return;
    }
    len = strlen(text);
    sd_http_send(req, status, "application/json", text, len);
    free(text);
}

void sd_http_send_error(struct sd_http_req *req, int status, const char *name, const char *message)
{
    sd_http_send_json(req, status, sd__http_error_json(status, name, message), 1);
}

struct sd_str sd_http_header(struct sd_http_req *r, const char *lower_name)
{
    h2o_req_t *req = sd__h2o_req(r);
    ssize_t i = h2o_find_header_by_str(&req->headers, lower_name, strlen(lower_name), -1);
    struct sd_str v = {"", 0};

    if (i >= 0) {
        v.p = req->headers.entries[i].value.base;
        v.len = req->headers.entries[i].value.len;
    }
    return v;
}

/* Dotted IPv4 text of the 4 bytes at a (inet_ntop formats it with sprintf, a visible cost for
 * each record); out holds at least 16 bytes. */
static void sd__format_ipv4(const unsigned char *a, char *out)
{
    char *p = out;

    for (int i = 0; i < 4; i++) {
        unsigned v = a[i];
        if (v >= 100) {
            *p++ = (char)('0' + v / 100);
        }
        if (v >= 10) {
            *p++ = (char)('0' + v / 10 % 10);
        }
        *p++ = (char)('0' + v % 10);
        *p++ = i < 3 ? '.' : '\0';
    }
}

void sd_http_peer_ip(struct sd_http_req *r, char *out, size_t len)
{
    h2o_req_t *req = sd__h2o_req(r);
    struct sockaddr_storage ss;
    socklen_t sl = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);

    out[0] = '\0';
    if (sl == 0) {
        return;
    }
    if (ss.ss_family == AF_INET && len >= INET_ADDRSTRLEN) {
        sd__format_ipv4((const unsigned char *)&((struct sockaddr_in *)&ss)->sin_addr, out);
    } else if (ss.ss_family == AF_INET6) {
        struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a) && len >= INET_ADDRSTRLEN) {
            sd__format_ipv4(&a->s6_addr[12], out);
        } else {
            inet_ntop(AF_INET6, a, out, (socklen_t)len);
        }
    }
}

size_t sd_http_head_bytes(struct sd_http_req *r)
{
    h2o_req_t *req = sd__h2o_req(r);
    /* request line: METHOD SP PATH SP HTTP/1.1 CRLF; each header: name ": " value CRLF */
    size_t total = req->method.len + req->path.len + 12;

    for (size_t i = 0; i < req->headers.size; i++) {
        total += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    }
    if (req->authority.len > 0) {
        total += req->authority.len + 8; /* "Host: " + CRLF */
    }
    return total + 2;
}

struct sd_str sd_http_path(struct sd_http_req *r)
{
    h2o_req_t *req = sd__h2o_req(r);
    struct sd_str p = {req->path.base, req->path.len};

    if (req->query_at != SIZE_MAX && req->query_at < p.len) {
        p.len = req->query_at;
    }
    return p;
}

int sd_http_query_param(struct sd_http_req *r, const char *name, struct sd_str *value)
{
    h2o_req_t *req = sd__h2o_req(r);
    size_t nlen = strlen(name);
    const char *q, *end;

    if (req->query_at == SIZE_MAX) {
        return 0;
    }
    q = req->path.base + req->query_at + 1;
    end = req->path.base + req->path.len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(stop - q));
        const char *kend = eq ? eq : stop;
        if ((size_t)(kend - q) == nlen && memcmp(q, name, nlen) == 0) {
            value->p = eq ? eq + 1 : stop;
            value->len = (size_t)(stop - value->p);
            return 1;
        }
        q = stop + 1;
    }
    return 0;
}

int sd_http_url_decode(struct sd_str s, struct sd_buf *out)
{
    sd_buf_reset(out);
    if (sd_buf_reserve(out, s.len) != 0) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= s.len) {
                return SD_EPARSE;
            }
            hi = sd_hex_digit((unsigned char)s.p[i + 1]);
            lo = sd_hex_digit((unsigned char)s.p[i + 2]);
            if (hi < 0 || lo < 0) {
                return SD_EPARSE;
            }
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0') {
            return SD_EPARSE;
        }
        out->data[out->len++] = c;
    }
    out->data[out->len] = '\0';
    return 0;
}

/* ---- requests: accessors and the request as a record ---- */

struct sd_str sd_http_req_method(struct sd_http_req *r)
{
    h2o_req_t *req = sd__h2o_req(r);
    struct sd_str m = {req->method.base, req->method.len};

    return m;
}

int sd_http_req_body(struct sd_http_req *r, struct sd_str *body)
{
    h2o_req_t *req = sd__h2o_req(r);

    if (req->entity.base == NULL) { /* h2o: no body at all, unlike an empty one */
        *body = SD_STR_LIT("");
        return 0;
    }
    body->p = req->entity.base;
    body->len = req->entity.len;
    return 1;
}

char *sd_http_req_strdup(struct sd_http_req *r, const char *s)
{
    h2o_req_t *req = sd__h2o_req(r);

    return h2o_strdup(&req->pool, s, strlen(s)).base;
}

/* Room for a size_t in decimal. */
#define SD__HTTP_SIZE_DIGITS (sizeof("18446744073709551615") - 1)

void sd_http_req_record(struct sd_http_req *r, const struct sd_http_record_opts *opts,
                        struct sd_record *rec)
{
    h2o_req_t *req = sd__h2o_req(r);
    /* h2o keeps Host (the authority) and Content-Length (the entity) out of its headers */
    struct sd_header *h = h2o_mem_alloc_pool(&req->pool, sizeof(*h) * (req->headers.size + 2));
    size_t drop_len = opts->drop_header != NULL ? strlen(opts->drop_header) : 0;
    size_t names_len = SD__HTTP_SIZE_DIGITS, off = 0, k = 0;
    char *names; /* the canonical names, then the digits of Content-Length at the end */

    for (size_t i = 0; i < req->headers.size; i++) {
        names_len += req->headers.entries[i].name->len;
    }
    names = h2o_mem_alloc_pool(&req->pool, names_len);
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_iovec_t *name = req->headers.entries[i].name;
        if (drop_len > 0 && h2o_lcstris(name->base, name->len, opts->drop_header, drop_len)) {
            continue;
        }
        sd_header_canonicalize(name->base, name->len, names + off);
        h[k].name.p = names + off;
        h[k].name.len = name->len;
        h[k].value.p = req->headers.entries[i].value.base;
        h[k].value.len = req->headers.entries[i].value.len;
        off += name->len;
        k++;
    }
    if (opts->has_host && req->authority.len > 0) {
        h[k].name = SD_STR_LIT("Host");
        h[k].value.p = req->authority.base;
        h[k].value.len = req->authority.len;
        k++;
    }
    sd_record_init(rec);
    if (sd_http_req_body(r, &rec->body)) {
        char *end = names + names_len, *digits = end;
        size_t v = rec->body.len;
        do {
            *--digits = (char)('0' + v % 10);
            v /= 10;
        } while (v > 0);
        h[k].name = SD_STR_LIT("Content-Length");
        h[k].value.p = digits;
        h[k].value.len = (size_t)(end - digits);
        k++;
    }
    sd_record_sort_headers(h, k);
    rec->headers = h;
    rec->nheaders = k;
    rec->recv_time_ms = sd_now_ms();
    sd_http_peer_ip(r, rec->ip, sizeof(rec->ip));
    rec->content_type = sd_http_header(r, "content-type");
}
