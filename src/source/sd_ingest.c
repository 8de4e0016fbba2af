/* sd_ingest.c: the data endpoint: route and authenticate by URL secret, map the record for
 * every enabled sink, append the CSV rows to the sinks' slices and answer once the sync
 * covering them has returned.
 *
 * DESIGN: the endpoint runs on N event loops, each with its own parked requests, record buffers
 * and template VM (thread-local); they share the routing table and the sinks' slots (storage
 * serializes appends per slot). Everything here runs on a loop thread except
 * sd_ingest_publish() and the sync listener, which only posts messages to the loops. A request
 * that waits for syncs is "parked": a struct sd_pending with one waiter per waiting sink, queued
 * per slice and loop in append (= sequence) order; each append is marked with its loop
 * (storage's appender), and a sync is posted to every loop marked on its slice, whose message
 * pops that loop's waiters of the slice up to its sequence. The
 * pending request is reference-counted by its waiters, so a request answered early (timeout)
 * stays valid until its last waiter is popped. Status = max over sinks, as in the reference.
 *
 * A record of a source with template columns is first mapped on the loop under a small step
 * budget (SD_INGEST_INLINE_STEPS for all its evaluations together). When that is not enough the
 * attempt is dropped (nothing was appended), the source is marked heavy for a while, and the
 * record, like the source's next ones, goes to the template workers (pipeline/sd_eval_pool.h),
 * so no long evaluation runs on the loop: the loop hands the record (views into the unanswered
 * request) to a worker, which maps every sink's row under the routes' read lock and posts the rows
 * back; the loop then routes the request again (the routes may have changed), appends and parks it
 * like any record. Appends stay on the loop, so waiters are queued in sequence order before their
 * sync can come. il->njobs keeps the loop's drain waiting for records on the workers. */
#include "source/sd_ingest.h"
#include "config/sd_config.h"
#include "config/sd_config_bind.h"
#include "config/sd_opt.h"
#include "core/sd_alloc.h"
#include "core/sd_error.h"
#include "core/sd_health.h"
#include "core/sd_log.h"
#include "core/sd_metrics_reg.h"
#include "core/sd_time.h"
#include "pipeline/sd_eval_pool.h"
#include "pipeline/sd_mapping.h"
#include "pipeline/sd_record.h"
#include "pipeline/sd_template.h"
#include "storage/sd_storage.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Steps all the template evaluations of one record may take on the loop thread (about 0.1 ms;
 * a typical template takes tens), and how long a source that needed more maps on the template
 * workers before it is tried on the loop again. */
#define SD_INGEST_INLINE_STEPS 10000
#define SD_INGEST_HEAVY_MS 10000

struct sd_sink_result {
    const char *sink_id; /* borrowed from the routes, copied below when parked */
    int status;          /* 0 = still waiting */
    char error[64];
    char message[320];
    struct sd_mseries *m_duration, *m_bytes; /* the route sink's (never freed) */
    size_t bytes;                            /* CSV bytes appended */
    double start_ms;                         /* sd_mreg_now_ms() when the record came */
};

struct sd_link {
    struct sd_link *prev, *next;
};

struct sd_pending {
    struct sd_link link; /* parked list, oldest last (answered ones are unlinked); first member */
    struct sd_ingest_loop *il;
    struct sd_http_req *req; /* NULL once answered */
    int refs;                /* waiters + the request itself while unanswered */
    int waiting;             /* sinks still waiting for their sync */
    int is_verbose;
    int64_t deadline_ms;
    int64_t project_id;
    int64_t branch_id;
    char source_id[49];
    struct sd_mseries *m_duration, *m_bytes; /* the route source's (never freed) */
    double start_ms;                         /* sd_mreg_now_ms() when the record came */
    size_t nsinks;
    struct sd_sink_result results[];
};

struct sd_waiter {
    struct sd_pending *p;
    size_t index;
    uint64_t seq;
    struct sd_waiter *next;
};

struct sd_waitq {
    struct sd_waiter *head, *tail;
};

struct sd_sync_msg {
    struct sd_ingest_loop *il; /* the loop it is posted to */
    struct sd_slice_handle *slice;
    uint64_t seq;
    int rc;
};

struct sd_ingest {
    struct sd_storage *storage;     /* appends (borrowed); flushed after each loop round
                                     * until the shutdown (under the routes' lock) */
    struct sd_eval_pool *eval_pool; /* borrowed; maps records with templates while open */
    struct sd_health *health;       /* borrowed; answers GET /health-check */
    struct sd_ingest_loop **loops;  /* one per event loop of the data endpoint */
    size_t nloops;
    /* The routing table (atomic pointer) is read under the reader's loop's routes_lock (a loop
     * takes only its own, so loops share no written cache line per record). A publisher swaps
     * the pointer, then takes and releases each loop's lock in turn for writing, which waits
     * only for that loop's readers of the old table (never holding one loop while waiting for
     * another), and frees it. */
    pthread_mutex_t publish_lock; /* one publisher swaps at a time */
    struct sd_routes *routes;
    int is_shutting_down; /* atomic; set once, before the last swap */
    size_t read_buffer_bytes;
    size_t row_size_limit;
    int64_t request_timeout_ms;
};

/* What one event loop of the data endpoint owns; touched by its thread only, but for
 * routes_lock (a template worker holds it for reading while it maps one of the loop's records;
 * a publisher takes it for writing to wait for the loop's readers). */
struct sd_ingest_loop {
    struct sd_ingest *in;
    struct sd_http_loop *loop; /* borrowed; where results for its requests are posted */
    unsigned index;            /* its storage appender number */
    pthread_rwlock_t routes_lock;
    struct sd_buf rows;           /* CSV of the current record */
    struct sd_mapped_row *mapped; /* the rows of the current record, per sink */
    size_t mapped_cap;
    struct sd_link parked; /* sentinel of the parked list */
    size_t nparked;
    size_t njobs; /* records on the evaluation pool */
};

/* One sink's row of a record, mapped on the loop or by a pool worker. */
struct sd_mapped_row {
    char *sink_id;
    int rc; /* of sd_mapping_write_row */
    struct sd_map_error merr;
    size_t off, len; /* the row in its csv buffer */
};

/* A record of a source with template sinks, mapped on the evaluation pool. The record borrows
 * the parked request's memory, valid while the request is unanswered. */
struct sd_ingest_job {
    struct sd_ingest_loop *il;
    struct sd_http_req *req;
    struct sd_str parts[3]; /* project, source, secret: routed again when the rows come back */
    int64_t project_id;
    int64_t deadline_ms;
    struct sd_record rec;
    int is_done;      /* the worker mapped the record */
    int is_cancelled; /* not mapped: the pool stopped (else it waited past its timeout) */
    struct sd_mapped_row *rows;
    size_t nrows;
    struct sd_buf csv;
};

/* ---- routing table ---- */

void sd_routes_free(struct sd_routes *routes)
{
    if (routes == NULL) {
        return;
    }
    for (size_t i = 0; i < routes->n; i++) {
        struct sd_route_source *s = &routes->sources[i];
        for (size_t k = 0; k < s->nsinks; k++) {
            free(s->sinks[k].sink_id);
            sd_mapping_destroy(s->sinks[k].mapping);
        }
        free(s->sinks);
        free(s->source_id);
    }
    free(routes->sources);
    free(routes);
}

void sd_ingest_route_metrics(struct sd_route_source *src)
{
    struct sd_buf b = SD_BUF_INIT;

    sd_mreg_label_key(&b, src->project_id, src->branch_id, src->source_id, NULL);
    sd_mreg_label(&b, "has_error", "false");
    sd_mreg_label(&b, "source_type", "http");
    src->m_duration = sd_mreg_series(SD_M_SOURCE_RECORD_DURATION, sd_buf_cstr(&b));
    src->m_bytes = sd_mreg_series(SD_M_SOURCE_IN_BYTES, sd_buf_cstr(&b));
    for (size_t i = 0; i < src->nsinks; i++) {
        sd_buf_reset(&b);
        sd_mreg_label_key(&b, src->project_id, src->branch_id, src->source_id,
                          src->sinks[i].sink_id);
        sd_mreg_label(&b, "error_type", "");
        sd_mreg_label(&b, "sink_type", "table");
        src->sinks[i].m_duration = sd_mreg_series(SD_M_SINK_RECORD_DURATION, sd_buf_cstr(&b));
        src->sinks[i].m_bytes = sd_mreg_series(SD_M_SINK_ENCODED_BYTES, sd_buf_cstr(&b));
    }
    sd_buf_fini(&b);
}

/* Replaces the routing table (NULL and shutting down when is_shutdown) and frees the old one
 * once no reader can still use it. */
static void sd__swap_routes(struct sd_ingest *in, struct sd_routes *routes, int is_shutdown)
{
    struct sd_routes *old;

    pthread_mutex_lock(&in->publish_lock);
    if (__atomic_load_n(&in->is_shutting_down, __ATOMIC_ACQUIRE)) {
        old = routes;
    } else {
        if (is_shutdown) {
            __atomic_store_n(&in->is_shutting_down, 1, __ATOMIC_RELEASE);
        }
        old = __atomic_exchange_n(&in->routes, routes, __ATOMIC_ACQ_REL);
    }
    pthread_mutex_unlock(&in->publish_lock);
    for (size_t i = 0; i < in->nloops; i++) { /* each loop's readers of the old table are done */
        pthread_rwlock_wrlock(&in->loops[i]->routes_lock);
        pthread_rwlock_unlock(&in->loops[i]->routes_lock);
    }
    sd_routes_free(old);
}

void sd_ingest_publish(struct sd_ingest *in, struct sd_routes *routes)
{
    sd__swap_routes(in, routes, 0);
}

void sd_ingest_shutdown(struct sd_ingest *in)
{
    sd__swap_routes(in, NULL, 1);
}

/* The routing table, for a reader holding its loop's routes_lock. */
static struct sd_routes *sd__routes(struct sd_ingest *in)
{
    return __atomic_load_n(&in->routes, __ATOMIC_ACQUIRE);
}

/* Whether the endpoint shuts down, for a reader holding its loop's routes_lock. */
static int sd__is_shutting_down(struct sd_ingest *in)
{
    return __atomic_load_n(&in->is_shutting_down, __ATOMIC_ACQUIRE);
}

static const struct sd_route_source *sd__find_source(const struct sd_routes *r, int64_t project,
                                                     const char *id, size_t id_len)
{
    size_t lo = 0, hi = r ? r->n : 0;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const struct sd_route_source *s = &r->sources[mid];
        int cmp;
        if (s->project_id != project) {
            cmp = s->project_id < project ? -1 : 1;
        } else {
            size_t sl = strlen(s->source_id);
            cmp = memcmp(s->source_id, id, sl < id_len ? sl : id_len);
            if (cmp == 0) {
                cmp = sl < id_len ? -1 : sl > id_len ? 1 : 0;
            }
        }
        if (cmp == 0) {
            return s;
        }
        if (cmp < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

/* Constant-time comparison of the URL secret with the stored one. */
static int sd__secret_matches(const char *stored, const char *given, size_t given_len)
{
    size_t stored_len = strlen(stored);
    unsigned char diff = (unsigned char)(stored_len != given_len);

    for (size_t i = 0; i < stored_len; i++) {
        unsigned char g = i < given_len ? (unsigned char)given[i] : 0;
        diff |= (unsigned char)(stored[i] ^ g);
    }
    return diff == 0;
}

/* ---- responses ---- */

static void sd__send_error(struct sd_http_req *req, int status, const char *name,
                           const char *message)
{
    sd_http_add_header(req, "Server", SD_INGEST_SERVER);
    if (status == 503 || status == 507 || status == 429) {
        sd_http_add_header(req, "Retry-After", "1");
    }
    sd_http_send_error(req, status, name, message);
}

static void sd__send_shutdown(struct sd_http_req *req)
{
    sd__send_error(req, 503, "stream.in.shutdown", "The node is shutting down, retry later.");
}

static void sd__send_text(struct sd_http_req *req, int status, const char *text)
{
    sd_http_add_header(req, "Server", SD_INGEST_SERVER);
    sd_http_send(req, status, "text/plain", text, strlen(text));
}

/* The reference's source record metrics (sink/router): duration and body length. */
static void sd__observe_source(const struct sd_pending *p, int has_error)
{
    struct sd_mseries *d = p->m_duration, *b = p->m_bytes;

    if (d != NULL) {
        struct sd_str body;
        d = has_error ? sd_mreg_with(d, "has_error", "true") : d;
        b = has_error ? sd_mreg_with(b, "has_error", "true") : b;
        sd_mreg_observe(d, sd_mreg_now_ms() - p->start_ms);
        sd_http_req_body(p->req, &body);
        sd_mreg_add(b, (int64_t)body.len);
    }
}

/* The reference's log line of a record some sinks refused (error for 5xx, warn for 4xx), at
 * most one a second per level: a failing sink fails every record. */
static void sd__log_failed(const struct sd_pending *p, int status, int failed)
{
    static struct sd_log_limit limits[2];
    struct sd_buf sinks = SD_BUF_INIT;
    char key[96], note[64] = "";
    int64_t held = 0;

    if (failed == 0 || !sd_log_limit_pass(&limits[status >= 500], 1000, &held)) {
        return;
    }
    for (size_t i = 0; i < p->nsinks; i++) {
        if (p->results[i].status >= 300) {
            sd_buf_printf(&sinks, "%ssink %s: %s", sinks.len ? "; " : "", p->results[i].sink_id,
                          p->results[i].message);
        }
    }
    if (held > 0) {
        snprintf(note, sizeof(note), " (%lld similar lines held back)", (long long)held);
    }
    snprintf(key, sizeof(key), "%lld/%lld/%s", (long long)p->project_id, (long long)p->branch_id,
             p->source_id);
    sd_log_key(status >= 500 ? SD_LOG_ERROR : SD_LOG_WARN, "sink.router", key,
               "source record processing failed: %d/%zu sinks failed. Failed sinks: %s%s", failed,
               p->nsinks, sd_buf_cstr(&sinks), note);
    sd_buf_fini(&sinks);
}

static void sd__respond(struct sd_pending *p)
{
    struct sd_http_req *req = p->req;
    int status = 200, failed = 0, ok = 0;
    json_t *body, *source, *sinks;
    char msg[96];

    for (size_t i = 0; i < p->nsinks; i++) {
        if (p->results[i].status > status) {
            status = p->results[i].status;
        }
        if (p->results[i].status >= 300) {
            failed++;
        } else {
            ok++;
        }
    }
    sd__observe_source(p, failed > 0);
    sd__log_failed(p, status, failed);
    if (failed == 0 && !p->is_verbose) {
        if (status == 503 || status == 507) {
            sd_http_add_header(req, "Retry-After", "1");
        }
        sd__send_text(req, status, "OK");
        return;
    }
    sinks = json_array();
    for (size_t i = 0; i < p->nsinks; i++) {
        struct sd_sink_result *r = &p->results[i];
        json_t *s = json_object();
        json_object_set_new(s, "sinkId", json_string(r->sink_id));
        json_object_set_new(s, "statusCode", json_integer(r->status));
        if (r->error[0]) {
            json_object_set_new(s, "error", json_string(r->error));
        }
        json_object_set_new(s, "message", json_string(r->message));
        json_array_append_new(sinks, s);
    }
    if (p->nsinks == 0) {
        snprintf(msg, sizeof(msg), "No enabled sink found.");
    } else if (failed == 0) {
        snprintf(msg, sizeof(msg), "Successfully written to %zu/%zu sinks.", p->nsinks, p->nsinks);
    } else {
        snprintf(msg, sizeof(msg), "Written to %d/%zu sinks.", ok, p->nsinks);
    }
    source = json_object();
    json_object_set_new(source, "projectId", json_integer(p->project_id));
    json_object_set_new(source, "sourceId", json_string(p->source_id));
    json_object_set_new(source, "branchId", json_integer(p->branch_id));
    json_object_set_new(source, "statusCode", json_integer(status));
    if (failed) {
        json_object_set_new(source, "error", json_string("stream.in.writeFailed"));
    }
    json_object_set_new(source, "message", json_string(msg));
    json_object_set_new(source, "sinks", sinks);
    body = json_object();
    json_object_set_new(body, "statusCode", json_integer(status));
    if (failed) {
        json_object_set_new(body, "error", json_string("stream.in.writeFailed"));
    }
    json_object_set_new(body, "message", json_string(msg));
    json_object_set_new(body, "sources", json_pack("[o]", source));
    sd_http_add_header(req, "Server", SD_INGEST_SERVER);
    if (status == 503 || status == 507) {
        sd_http_add_header(req, "Retry-After", "1");
    }
    sd_http_send_json(req, status, body, 1);
}

static void sd__pending_unref(struct sd_pending *p)
{
    if (--p->refs == 0) {
        free(p);
    }
}

/* Answers a parked request and unlinks it; the caller then drops the request's reference. */
static void sd__pending_answer(struct sd_pending *p)
{
    sd__respond(p);
    p->req = NULL;
    p->link.prev->next = p->link.next;
    p->link.next->prev = p->link.prev;
    p->il->nparked--;
}

static void sd__copy_text(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;

    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

/* The reference's sink record metrics: duration and CSV bytes, error_type = the error's name
 * (the code without its "stream.in." prefix). */
static void sd__observe_sink(const struct sd_sink_result *r, const char *error)
{
    const char *name = error != NULL ? strrchr(error, '.') : NULL;
    struct sd_mseries *d = r->m_duration, *b = r->m_bytes;

    if (d != NULL) {
        d = name != NULL ? sd_mreg_with(d, "error_type", name + 1) : d;
        b = name != NULL ? sd_mreg_with(b, "error_type", name + 1) : b;
        sd_mreg_observe(d, sd_mreg_now_ms() - r->start_ms);
        sd_mreg_add(b, (int64_t)r->bytes);
    }
}

/* Per sink and record on the hot path: plain copies, no printf. */
static void sd__set_result(struct sd_sink_result *r, int status, const char *error,
                           const char *message)
{
    sd__observe_sink(r, error);
    r->status = status;
    sd__copy_text(r->error, sizeof(r->error), error);
    sd__copy_text(r->message, sizeof(r->message), message);
}

static void sd__result_from_rc(struct sd_sink_result *r, int rc)
{
    if (rc == -ENOSPC || rc == -EDQUOT) {
        sd__set_result(r, 507, "stream.in.insufficientStorage",
                       "Insufficient storage: the local volume is full, retry later.");
    } else if (rc == SD_ELIMIT) {
        sd__set_result(r, 503, "stream.in.tooManyPendingRecords",
                       "Too many records wait for the disk, retry later.");
    } else if (rc == SD_EUNHEALTHY || rc == SD_ECLOSED) {
        sd__set_result(r, 503, "stream.in.noPipelineReady",
                       "The sink's local storage is not available, retry later.");
    } else {
        char msg[160];
        snprintf(msg, sizeof(msg), "Cannot write the record to local storage: %s.",
                 sd_strerror(rc));
        sd__set_result(r, 500, "stream.in.writeFailed", msg);
    }
}

/* ---- sync notifications (writer threads -> loop) ---- */

static void sd__on_sync_msg(struct sd_http_loop *loop, void *arg)
{
    struct sd_sync_msg *msg = arg;
    void **slot = sd_storage_slice_waiters(msg->slice, msg->il->index);
    struct sd_waitq *q = *slot;

    (void)loop;
    while (q != NULL && q->head != NULL && (msg->rc == SD_ECLOSED || q->head->seq <= msg->seq)) {
        struct sd_waiter *w = q->head;
        struct sd_pending *p = w->p;
        q->head = w->next;
        if (q->head == NULL) {
            q->tail = NULL;
        }
        if (p->req != NULL) {
            struct sd_sink_result *r = &p->results[w->index];
            if (msg->rc == 0) {
                sd__set_result(r, 200, NULL, "processed");
            } else {
                sd__result_from_rc(r, msg->rc);
            }
            if (--p->waiting == 0) {
                sd__pending_answer(p);
                p->refs--; /* the request's own reference; the waiter's is dropped below */
            }
        }
        sd__pending_unref(p);
        free(w);
    }
    if (msg->rc == SD_ECLOSED) {
        free(q);
        *slot = NULL;
        sd_storage_slice_release(msg->slice);
    }
    free(msg);
}

/* Writer thread: tells every loop that appended to slice (and so may have waiters there). */
static void sd__sync_listener(void *arg, struct sd_slice_handle *slice, uint64_t seq, int rc)
{
    struct sd_ingest *in = arg;
    uint64_t appenders = sd_storage_slice_appenders(slice);

    if (appenders == 0 && rc == SD_ECLOSED) {
        sd_storage_slice_release(slice);
    }
    for (size_t i = 0; i < in->nloops; i++) {
        struct sd_sync_msg *msg;
        if ((appenders & ((uint64_t)1 << i)) == 0) {
            continue;
        }
        msg = sd_xcalloc(1, sizeof(*msg));
        msg->il = in->loops[i];
        msg->slice = slice;
        msg->seq = seq;
        msg->rc = rc;
        sd_http_loop_post(in->loops[i]->loop, sd__on_sync_msg, msg);
    }
}

static void sd__park(struct sd_pending *p, struct sd_slice_handle *slice, size_t index,
                     uint64_t seq)
{
    void **slot = sd_storage_slice_waiters(slice, p->il->index);
    struct sd_waitq *q = *slot;
    struct sd_waiter *w = sd_xcalloc(1, sizeof(*w));

    if (q == NULL) {
        q = sd_xcalloc(1, sizeof(*q));
        *slot = q;
    }
    w->p = p;
    w->index = index;
    w->seq = seq;
    if (q->tail) {
        q->tail->next = w;
    } else {
        q->head = w;
    }
    q->tail = w;
    p->refs++;
    p->waiting++;
}

/* ---- the request ---- */

/* A record keeps every header, and Host as the client sent it. */
static const struct sd_http_record_opts sd__record_opts = {.has_host = 1, .drop_header = NULL};

static int sd__split_path(struct sd_str path, struct sd_str parts[3])
{
    const char *p = path.p + strlen("/stream/");
    const char *end = path.p + path.len;

    for (int i = 0; i < 3; i++) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *stop = slash ? slash : end;
        if (stop == p || (i < 2 && slash == NULL) || (i == 2 && slash != NULL)) {
            return -1;
        }
        parts[i].p = p;
        parts[i].len = (size_t)(stop - p);
        p = stop + 1;
    }
    return 0;
}

static int sd__parse_project(struct sd_str s, int64_t *out)
{
    int64_t v = 0;

    if (s.len == 0 || s.len > 18) {
        return -1;
    }
    for (size_t i = 0; i < s.len; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') {
            return -1;
        }
        v = v * 10 + (s.p[i] - '0');
    }
    *out = v;
    return 0;
}

static void sd__send_cors(struct sd_http_req *req)
{
    sd_http_add_header(req, "Allow", "OPTIONS, POST");
    sd_http_add_header(req, "Access-Control-Allow-Methods", "OPTIONS, POST");
    sd_http_add_header(req, "Access-Control-Allow-Headers", "*");
    sd_http_add_header(req, "Access-Control-Expose-Headers", "*");
    sd_http_add_header(req, "Access-Control-Allow-Origin", "*");
    sd__send_text(req, 200, "");
}

/* Looks the source of parts up, with the routes read-locked, and checks its secret. Returns it
 * with the lock held; or NULL, lock released, after answering the request's error. */
static const struct sd_route_source *sd__route(struct sd_ingest_loop *il, struct sd_http_req *req,
                                               const struct sd_str parts[3], int64_t project)
{
    const struct sd_route_source *src;

    pthread_rwlock_rdlock(&il->routes_lock);
    if (sd__is_shutting_down(il->in)) {
        pthread_rwlock_unlock(&il->routes_lock);
        sd__send_shutdown(req);
        return NULL;
    }
    src = sd__find_source(sd__routes(il->in), project, parts[1].p, parts[1].len);
    if (src == NULL || !sd__secret_matches(src->secret, parts[2].p, parts[2].len)) {
        pthread_rwlock_unlock(&il->routes_lock);
        sd__send_error(req, 404, "stream.in.noSourceFound",
                       "The specified combination of projectId, sourceId and secret was not "
                       "found.");
        return NULL;
    }
    if (!src->is_enabled) {
        pthread_rwlock_unlock(&il->routes_lock);
        sd__send_error(req, 404, "stream.in.disabledSource", "The source is disabled.");
        return NULL;
    }
    return src;
}

/* A pending request for the sinks of src (results still empty). */
static struct sd_pending *sd__pending_new(struct sd_ingest_loop *il, struct sd_http_req *req,
                                          const struct sd_route_source *src, int64_t deadline_ms)
{
    struct sd_pending *p = sd_xcalloc(1, sizeof(*p) + src->nsinks * sizeof(p->results[0]));
    int64_t request_timeout_ms = il->in->request_timeout_ms;
    struct sd_str verbose;

    p->il = il;
    p->req = req;
    p->refs = 1;
    p->project_id = src->project_id;
    p->branch_id = src->branch_id;
    /* (a copy: the routes table may be replaced while p waits; calloc ended it) */
    memcpy(p->source_id, src->source_id, strnlen(src->source_id, sizeof(p->source_id) - 1));
    p->nsinks = src->nsinks;
    p->is_verbose = sd_http_query_param(req, "verbose", &verbose) && verbose.len == 4 &&
                    memcmp(verbose.p, "true", 4) == 0;
    p->deadline_ms = deadline_ms;
    p->m_duration = src->m_duration;
    p->m_bytes = src->m_bytes;
    /* the record came at deadline - requestTimeout (a whole ms, same clock); within that ms
     * (the inline path) the precise time now is used: one clock read per record */
    p->start_ms = sd_mreg_now_ms();
    if (p->start_ms - (double)(deadline_ms - request_timeout_ms) >= 1.0) {
        p->start_ms = (double)(deadline_ms - request_timeout_ms);
    }
    for (size_t i = 0; i < src->nsinks; i++) {
        /* Sink ids outlive the routes table only through this copy. */
        const char *id = src->sinks[i].sink_id;
        p->results[i].sink_id = sd_http_req_strdup(req, id);
        p->results[i].m_duration = src->sinks[i].m_duration;
        p->results[i].m_bytes = src->sinks[i].m_bytes;
        p->results[i].start_ms = p->start_ms;
    }
    return p;
}

/* Links p into the parked list; answers it now if nothing waits. */
static void sd__pending_start(struct sd_ingest_loop *il, struct sd_pending *p)
{
    p->link.next = il->parked.next;
    p->link.prev = &il->parked;
    il->parked.next->prev = &p->link;
    il->parked.next = &p->link;
    il->nparked++;
    if (p->waiting == 0) {
        sd__pending_answer(p);
        sd__pending_unref(p);
    }
}

/* Appends sink i's row to its slot and parks p on the sync, or sets the result. */
static void sd__deliver(struct sd_pending *p, size_t i, struct sd_sink_slot *slot, const char *row,
                        size_t len, int64_t recv_time_ms)
{
    struct sd_slice_handle *slice = NULL;
    uint64_t seq = 0;
    int rc = sd_storage_append(slot, p->il->index, row, len, 1, recv_time_ms, &slice, &seq);

    p->results[i].bytes = rc == 0 ? len : 0;
    if (rc != 0) {
        sd__result_from_rc(&p->results[i], rc);
    } else if (sd_storage_slot_wait(slot)) {
        sd__park(p, slice, i, seq);
    } else {
        sd__set_result(&p->results[i], 202, NULL, "accepted");
    }
}

/* Appends sink i's mapped row m (in csv) to its slot, or sets the mapping's error as its
 * result. */
static void sd__deliver_mapped(struct sd_pending *p, size_t i, struct sd_sink_slot *slot,
                               const struct sd_mapped_row *m, const struct sd_buf *csv,
                               int64_t recv_time_ms)
{
    if (m->rc < 0) {
        sd__set_result(&p->results[i], 500, "stream.in.genericError", "Out of memory.");
    } else if (m->rc > 0) {
        sd__set_result(&p->results[i], m->rc, m->merr.name, m->merr.message);
    } else {
        sd__deliver(p, i, slot, csv->data + m->off, m->len, recv_time_ms);
    }
}

/* The template workers' queue is full (or the record waited in it past its timeout). */
static void sd__send_busy(struct sd_http_req *req)
{
    sd__send_error(req, 503, "stream.in.templatesBusy",
                   "Too many records wait for template evaluation, retry later.");
}

static void sd__job_free(struct sd_ingest_job *job)
{
    for (size_t i = 0; i < job->nrows; i++) {
        free(job->rows[i].sink_id);
    }
    free(job->rows);
    sd_buf_fini(&job->csv);
    free(job);
}

/* Loop thread: the worker's rows come back; route the request again (the routes may have
 * changed meanwhile) and append each sink's row as the inline path does. */
static void sd__on_mapped(struct sd_http_loop *loop, void *arg)
{
    struct sd_ingest_job *job = arg;
    struct sd_ingest_loop *il = job->il;
    const struct sd_route_source *src;
    struct sd_pending *p;

    (void)loop;
    il->njobs--;
    if (job->is_cancelled) {
        sd__send_shutdown(job->req);
    } else if (!job->is_done) {
        sd__send_busy(job->req);
    }
    src = job->is_done ? sd__route(il, job->req, job->parts, job->project_id) : NULL;
    if (src == NULL) {
        sd__job_free(job);
        return;
    }
    p = sd__pending_new(il, job->req, src, job->deadline_ms);
    for (size_t i = 0; i < src->nsinks; i++) {
        const struct sd_route_sink *sink = &src->sinks[i];
        const struct sd_mapped_row *m = NULL;
        for (size_t k = 0; k < job->nrows && m == NULL; k++) {
            m = strcmp(job->rows[k].sink_id, sink->sink_id) == 0 ? &job->rows[k] : NULL;
        }
        if (m == NULL) { /* a sink added while the record was mapped */
            sd__set_result(&p->results[i], 503, "stream.in.noPipelineReady",
                           "The sink changed while the record was mapped, retry later.");
        } else {
            sd__deliver_mapped(p, i, sink->slot, m, &job->csv, job->rec.recv_time_ms);
        }
    }
    pthread_rwlock_unlock(&il->routes_lock);
    sd__job_free(job);
    sd__pending_start(il, p);
}

/* Maps rec for every sink of src into csv, rows[i] for sink i (routes read-locked). */
static void sd__map_rows(const struct sd_ingest *in, const struct sd_route_source *src,
                         struct sd_record *rec, struct sd_buf *csv, struct sd_mapped_row *rows)
{
    for (size_t i = 0; i < src->nsinks; i++) {
        struct sd_mapped_row *m = &rows[i];
        memset(&m->merr, 0, sizeof(m->merr));
        m->off = csv->len;
        m->rc = sd_mapping_write_row(src->sinks[i].mapping, rec, in->row_size_limit, csv, &m->merr);
        m->len = csv->len - m->off;
    }
}

/* Pool worker: maps the record for every sink of its source (under the routes' read lock) and
 * posts the rows back to the loop. */
static void sd__map_job(void *arg, int is_cancelled)
{
    struct sd_ingest_job *job = arg;
    struct sd_ingest_loop *il = job->il;
    struct sd_ingest *in = il->in;
    const struct sd_route_source *src;

    job->is_cancelled = is_cancelled;
    if (!is_cancelled && sd_mono_ms() < job->deadline_ms) {
        pthread_rwlock_rdlock(&il->routes_lock);
        src = sd__find_source(sd__routes(in), job->project_id, job->parts[1].p, job->parts[1].len);
        if (src != NULL) {
            job->rows = sd_xcalloc(src->nsinks + 1, sizeof(*job->rows));
            job->nrows = src->nsinks;
            sd__map_rows(in, src, &job->rec, &job->csv, job->rows);
            for (size_t i = 0; i < src->nsinks; i++) {
                job->rows[i].sink_id = sd_xstrdup(src->sinks[i].sink_id);
            }
        }
        pthread_rwlock_unlock(&il->routes_lock);
        job->is_done = 1;
    }
    sd_record_fini(&job->rec);
    sd_http_loop_post(il->loop, sd__on_mapped, job);
}

/* Hands the record to the evaluation pool (routes read-locked by the caller); answers 503 when
 * the pool's queue is full. */
static void sd__ingest_on_pool(struct sd_ingest_loop *il, struct sd_http_req *req,
                               const struct sd_str parts[3], int64_t project)
{
    struct sd_ingest *in = il->in;
    struct sd_ingest_job *job = sd_xcalloc(1, sizeof(*job));
    int rc;

    job->il = il;
    job->req = req;
    memcpy(job->parts, parts, sizeof(job->parts));
    job->project_id = project;
    job->deadline_ms = sd_mono_ms() + in->request_timeout_ms;
    sd_http_req_record(req, &sd__record_opts, &job->rec);
    sd_buf_init(&job->csv);
    rc = sd_eval_pool_submit(in->eval_pool, sd__map_job, job);
    if (rc != 0) {
        sd_record_fini(&job->rec);
        sd__job_free(job);
        if (rc == SD_ECLOSED) {
            sd__send_shutdown(req);
        } else {
            sd__send_busy(req);
        }
        return;
    }
    il->njobs++;
}

/* Loop thread: maps the record for every sink of src and appends its rows (routes read-locked;
 * released when it returns 1). For a source with templates (is_budgeted) all its evaluations
 * share SD_INGEST_INLINE_STEPS: a record that needs more is dropped unwritten and left to the
 * template workers (returns 0, lock held), and so are the source's next records for
 * SD_INGEST_HEAVY_MS. Cheap templates skip two thread hand-offs; costly ones hold up the loop
 * once per source and period at most. */
static int sd__ingest_here(struct sd_ingest_loop *il, struct sd_http_req *req,
                           const struct sd_route_source *src, int is_budgeted)
{
    struct sd_ingest *in = il->in;
    struct sd_mapped_row *rows;
    struct sd_pending *p;
    struct sd_record rec;
    int64_t now = sd_mono_ms();
    int is_heavy = 0;

    if (is_budgeted && now < __atomic_load_n(&src->heavy_until_ms, __ATOMIC_RELAXED)) {
        return 0;
    }
    if (src->nsinks > il->mapped_cap) {
        free(il->mapped);
        il->mapped = sd_xcalloc(src->nsinks, sizeof(*il->mapped));
        il->mapped_cap = src->nsinks;
    }
    rows = il->mapped;
    sd_http_req_record(req, &sd__record_opts, &rec);
    sd_buf_reset(&il->rows);
    if (is_budgeted) {
        sd_template_set_step_budget(SD_INGEST_INLINE_STEPS);
    }
    sd__map_rows(in, src, &rec, &il->rows, rows);
    if (is_budgeted) {
        for (size_t i = 0; i < src->nsinks && !is_heavy; i++) {
            is_heavy = rows[i].rc != 0 && sd_template_budget_exhausted();
        }
        sd_template_set_step_budget(SD_JN_NO_STEP_BUDGET);
    }
    if (is_heavy) {
        __atomic_store_n(&((struct sd_route_source *)src)->heavy_until_ms, now + SD_INGEST_HEAVY_MS,
                         __ATOMIC_RELAXED);
        sd_record_fini(&rec);
        return 0;
    }
    p = sd__pending_new(il, req, src, now + in->request_timeout_ms);
    for (size_t i = 0; i < src->nsinks; i++) {
        sd__deliver_mapped(p, i, src->sinks[i].slot, &rows[i], &il->rows, rec.recv_time_ms);
    }
    sd_record_fini(&rec);
    pthread_rwlock_unlock(&il->routes_lock);
    sd__pending_start(il, p);
    return 1;
}

static void sd__ingest(struct sd_ingest_loop *il, struct sd_http_req *req, struct sd_str parts[3])
{
    struct sd_ingest *in = il->in;
    const struct sd_route_source *src;
    int64_t project;

    if (sd__parse_project(parts[0], &project) != 0) {
        sd__send_error(req, 400, "stream.in.badRequest", "Invalid project ID.");
        return;
    }
    src = sd__route(il, req, parts, project);
    if (src == NULL) {
        return;
    }
    /* templates may run long: never beyond a small budget on the loop */
    if (!sd__ingest_here(il, req, src, sd_eval_pool_is_open(in->eval_pool) && src->has_template)) {
        sd__ingest_on_pool(il, req, parts, project);
        pthread_rwlock_unlock(&il->routes_lock);
    }
}

void sd_ingest_handle(void *arg, struct sd_http_req *req)
{
    struct sd_ingest_loop *il = arg;
    struct sd_ingest *in = il->in;
    struct sd_str path = sd_http_path(req);
    struct sd_str method = sd_http_req_method(req);
    struct sd_str parts[3];
    struct sd_buf health = SD_BUF_INIT;
    int health_status;

    if (sd_http_head_bytes(req) > in->read_buffer_bytes) {
        char limit[24], message[80];
        sd_format_size((int64_t)in->read_buffer_bytes, limit, sizeof(limit));
        snprintf(message, sizeof(message), "Request header size is over the maximum \"%s\".",
                 limit);
        sd__send_error(req, 413, "stream.in.headerTooLarge", message);
        return;
    }
    if (sd_str_eq(method, SD_STR_LIT("GET")) &&
        (health_status = sd_health_route(in->health, path.p, path.len, &health)) != 0) {
        sd__send_text(req, health_status, sd_buf_cstr(&health));
        sd_buf_fini(&health);
        return;
    }
    if (path.len > strlen("/stream/") && memcmp(path.p, "/stream/", 8) == 0 &&
        sd__split_path(path, parts) == 0) {
        if (sd_str_eq(method, SD_STR_LIT("POST"))) {
            sd__ingest(il, req, parts);
            return;
        }
        if (sd_str_eq(method, SD_STR_LIT("OPTIONS"))) {
            sd__send_cors(req);
            return;
        }
        sd_http_add_header(req, "Allow", "OPTIONS, POST");
        sd__send_error(req, 405, "stream.in.methodNotAllowed",
                       "Method not allowed, please send data using POST.");
        return;
    }
    sd__send_error(
        req, 404, "stream.in.routeNotFound",
        "Not found, please send data using POST /stream/<projectID>/<sourceID>/<secret>");
}

void sd_ingest_after_round(struct sd_http_loop *loop, void *arg)
{
    struct sd_ingest_loop *il = arg;

    (void)loop;
    /* under the routes lock: once sd_ingest_shutdown returned, storage may be closed */
    pthread_rwlock_rdlock(&il->routes_lock);
    if (!sd__is_shutting_down(il->in)) {
        sd_storage_flush(il->in->storage, il->index);
    }
    pthread_rwlock_unlock(&il->routes_lock);
}

void sd_ingest_tick(struct sd_http_loop *loop, void *arg)
{
    struct sd_ingest_loop *il = arg;
    int64_t now = sd_mono_ms();
    struct sd_link *l = il->parked.prev;

    (void)loop;
    /* The list is newest-first: walk from the oldest while deadlines have passed. */
    while (l != &il->parked && ((struct sd_pending *)l)->deadline_ms <= now) {
        struct sd_pending *p = (struct sd_pending *)l;
        struct sd_link *prev = l->prev;
        for (size_t i = 0; i < p->nsinks; i++) {
            if (p->results[i].status == 0) {
                sd__set_result(&p->results[i], 503, "stream.in.syncTimeout",
                               "The record was not synced to disk within the request timeout.");
            }
        }
        sd__pending_answer(p);
        sd__pending_unref(p);
        l = prev;
    }
}

int sd_ingest_is_idle(void *arg)
{
    struct sd_ingest_loop *il = arg;
    return il->nparked == 0 && il->njobs == 0;
}

#define SD_INGEST_BIND(field, key, type) SD_BIND(struct sd_ingest, field, key, type)
static const struct sd_config_binding sd_ingest_rows[] = {
    SD_INGEST_BIND(read_buffer_bytes, "source.http.readBufferSize", SD_BIND_SIZE_T),
    SD_INGEST_BIND(row_size_limit, "storage.level.local.encoding.encoder.rowSizeLimit",
                   SD_BIND_SIZE_T),
    SD_INGEST_BIND(request_timeout_ms, "source.http.requestTimeout", SD_BIND_I64),
};
const struct sd_config_bindings sd_ingest_config_bindings = SD_BINDINGS("source", sd_ingest_rows);

struct sd_ingest *sd_ingest_create(const struct sd_config *cfg, struct sd_storage *storage,
                                   struct sd_eval_pool *eval_pool, struct sd_health *health,
                                   size_t nloops)
{
    struct sd_ingest *in = sd_xcalloc(1, sizeof(*in));

    in->eval_pool = eval_pool;
    in->health = health;
    in->storage = storage;
    sd_config_fill(cfg, &sd_ingest_config_bindings, in);
    pthread_mutex_init(&in->publish_lock, NULL);
    in->nloops = nloops;
    in->loops = sd_xcalloc(nloops, sizeof(*in->loops));
    for (size_t i = 0; i < nloops; i++) {
        /* each on its own allocation: a loop's lock and counters share no cache line */
        struct sd_ingest_loop *il = sd_xcalloc(1, sizeof(*il));
        il->in = in;
        il->index = (unsigned)i;
        pthread_rwlock_init(&il->routes_lock, NULL);
        sd_buf_init(&il->rows);
        il->parked.next = il->parked.prev = &il->parked;
        in->loops[i] = il;
    }
    sd_storage_set_sync_listener(storage, sd__sync_listener, in);
    return in;
}

void *sd_ingest_loop_arg(struct sd_ingest *in, size_t i)
{
    return in->loops[i];
}

void sd_ingest_attach(struct sd_ingest *in, size_t i, struct sd_http_loop *loop)
{
    in->loops[i]->loop = loop;
}

void sd_ingest_destroy(struct sd_ingest *in)
{
    if (in == NULL) {
        return;
    }
    sd_routes_free(in->routes);
    for (size_t i = 0; i < in->nloops; i++) {
        struct sd_ingest_loop *il = in->loops[i];
        pthread_rwlock_destroy(&il->routes_lock);
        sd_buf_fini(&il->rows);
        free(il->mapped);
        free(il);
    }
    free(in->loops);
    pthread_mutex_destroy(&in->publish_lock);
    free(in);
}
