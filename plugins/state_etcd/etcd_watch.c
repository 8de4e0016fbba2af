/* etcd_watch.c: watches of the etcd backend (see etcd_watch.h).
 *
 * DESIGN: each watch owns a thread and a curl multi handle driving one POST /v3/watch at a
 * time, so curl_multi_wakeup interrupts it at once for unwatch and close. The stream is
 * newline-delimited JSON; events are grouped by mod_revision (etcd never splits a revision
 * across responses) and handed to the callback one revision at a time, from this thread.
 * next_rev is the revision after the last one delivered (or acknowledged by a progress
 * notification); every (re)connection asks for start_revision = next_rev, and batches below it
 * are dropped, so a resumed stream neither loses nor repeats events. A stream that ends, fails,
 * is canceled for another reason than compaction, or stays silent longer than the client's
 * silence limit is reopened: at once when it was merely idle (etcd's progress notifications are
 * rare by default), else after a backoff (100 ms doubling to 2 s while nothing valid arrives);
 * a compacted start ends the watch with SD_ECONFLICT. */
#include "state_etcd/etcd_watch.h"

#include "core/sd_alloc.h"
#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "core/sd_log.h"
#include "core/sd_time.h"
#include "state_etcd/etcd_client.h"
#include "state_etcd/etcd_codec.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Longest line of a watch stream kept (a batch of large values). */
#define WATCH_LINE_MAX (256 * 1024 * 1024)

enum watch_stop { WATCH_RUNNING = 0, WATCH_UNWATCHED, WATCH_CLOSING };
enum watch_outcome { WATCH_GOING = 0, WATCH_RETRY, WATCH_SILENT, WATCH_COMPACTED };

struct sd_watch {
    struct etcd_watches *ws;
    char *prefix;
    int64_t next_rev;
    sd_watch_fn cb;
    void *arg;
    pthread_t thread;
    atomic_int stop;
    int ended;    /* the final callback was made */
    int detached; /* unwatched from its own callback: the thread frees it */
    CURLM *multi;
    /* the current stream */
    CURL *easy;
    struct sd_buf line;
    int64_t last_data_ms;
    int outcome;
    int healthy; /* the stream carried a valid message */
    int idle;    /* it went silent after a valid answer: reopen at once */
    int unauthenticated;
    const char *why;
    struct sd_watch *next;
};

struct etcd_watches {
    struct etcd_client *c;
    pthread_mutex_t mu;
    struct sd_watch *list;
};

struct etcd_watches *etcd_watches_create(struct etcd_client *c)
{
    struct etcd_watches *ws = sd_xcalloc(1, sizeof(*ws));

    ws->c = c;
    pthread_mutex_init(&ws->mu, NULL);
    return ws;
}

static void watch_free(struct sd_watch *w)
{
    curl_multi_cleanup(w->multi);
    sd_buf_fini(&w->line);
    free(w->prefix);
    free(w);
}

/* Hands the events of m to the callback, one revision at a time. */
static void watch_deliver(struct sd_watch *w, const struct etcd_watch_msg *m)
{
    struct sd_watch_event *evs = sd_xcalloc(m->n > 0 ? m->n : 1, sizeof(*evs));

    for (size_t i = 0, j; i < m->n; i = j) {
        int64_t rev = m->kvs[i].mod_rev;

        for (j = i; j < m->n && m->kvs[j].mod_rev == rev; j++) {
            evs[j - i].type = m->types[j];
            evs[j - i].kv = &m->kvs[j];
        }
        if (atomic_load(&w->stop) != WATCH_RUNNING) {
            break;
        }
        if (rev < w->next_rev) {
            continue; /* already delivered before a reconnection */
        }
        w->cb(evs, j - i, rev, 0, w->arg);
        w->next_rev = rev + 1;
    }
    free(evs);
}

/* Handles one message of the stream. */
static void watch_message(struct sd_watch *w, const char *p, size_t len)
{
    struct etcd_watch_msg m;

    if (etcd_parse_watch_msg(p, len, etcd_client_ns(w->ws->c), &m) != 0) {
        w->outcome = WATCH_RETRY;
        w->why = "garbled stream";
    } else if (m.is_error) {
        w->outcome = WATCH_RETRY;
        w->unauthenticated = m.err_code == 16;
        w->why = "the stream ended with an error";
    } else if (m.canceled) {
        w->outcome = m.compact_rev > 0 ? WATCH_COMPACTED : WATCH_RETRY;
        w->unauthenticated = m.err_code == 16;
        w->why = "etcd canceled the watch";
    } else if (m.n > 0) {
        watch_deliver(w, &m);
        w->healthy = 1;
    } else {
        if (!m.created && m.rev >= w->next_rev) {
            w->next_rev = m.rev + 1; /* progress: everything up to m.rev was sent */
        }
        w->healthy = 1;
    }
    etcd_watch_msg_free(&m);
}

static size_t watch_write(char *p, size_t size, size_t n, void *arg)
{
    struct sd_watch *w = arg;
    long status = 0;
    size_t start = 0;

    (void)size;
    w->last_data_ms = sd_mono_ms();
    if (w->line.len + n > WATCH_LINE_MAX || sd_buf_append(&w->line, p, n) != 0) {
        return 0;
    }
    curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        return n; /* an error document: read whole at the end */
    }
    for (size_t i = 0; i < w->line.len && w->outcome == WATCH_GOING; i++) {
        if (w->line.data[i] == '\n') {
            if (i > start) {
                watch_message(w, w->line.data + start, i - start);
            }
            start = i + 1;
        }
    }
    if (start > 0) {
        memmove(w->line.data, w->line.data + start, w->line.len - start);
        w->line.len -= start;
    }
    return n;
}

/* Runs one stream until it ends, fails, goes silent or the watch stops. */
static void watch_stream(struct sd_watch *w)
{
    struct etcd_client *c = w->ws->c;
    json_t *req = json_object(), *body = json_object();
    struct etcd_stream s;
    CURLcode cc = CURLE_OK;
    long status = 0;
    curl_off_t connect_us = 0;
    int done = 0, running = 0, unreachable = 0;

    etcd_set_prefix(req, etcd_client_ns(c), w->prefix);
    etcd_set_int(req, "start_revision", w->next_rev);
    json_object_set_new(req, "progress_notify", json_true());
    json_object_set_new(body, "create_request", req);
    etcd_client_stream_init(c, "/v3/watch", body, &s);
    json_decref(body);
    w->easy = s.easy;
    w->outcome = WATCH_GOING;
    w->unauthenticated = 0;
    w->why = "the stream ended";
    sd_buf_reset(&w->line);
    w->last_data_ms = sd_mono_ms();
    curl_easy_setopt(s.easy, CURLOPT_WRITEFUNCTION, watch_write);
    curl_easy_setopt(s.easy, CURLOPT_WRITEDATA, w);
    curl_multi_add_handle(w->multi, s.easy);
    while (!done && w->outcome == WATCH_GOING && atomic_load(&w->stop) == WATCH_RUNNING) {
        CURLMsg *msg;
        int left;

        curl_multi_perform(w->multi, &running);
        while ((msg = curl_multi_info_read(w->multi, &left)) != NULL) {
            if (msg->msg == CURLMSG_DONE) {
                cc = msg->data.result;
                done = 1;
            }
        }
        if (!done && sd_mono_ms() - w->last_data_ms > etcd_client_silence_ms(c)) {
            w->outcome = WATCH_SILENT;
        }
        if (!done && w->outcome == WATCH_GOING) {
            curl_multi_poll(w->multi, NULL, 0, 200, NULL);
        }
    }
    curl_easy_getinfo(s.easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(s.easy, CURLINFO_CONNECT_TIME_T, &connect_us);
    if (w->outcome == WATCH_SILENT && (connect_us == 0 || status == 0)) {
        /* silent because the endpoint never accepted or never answered: try the next one */
        w->outcome = WATCH_RETRY;
        w->why = connect_us == 0 ? "no connection" : "no answer";
        unreachable = 1;
    }
    if (done && w->outcome == WATCH_GOING && atomic_load(&w->stop) == WATCH_RUNNING) {
        if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST || status == 503 ||
            (cc == CURLE_OPERATION_TIMEDOUT && connect_us == 0)) {
            unreachable = 1;
            w->why = status == 503 ? "no leader (503)" : curl_easy_strerror(cc);
        } else if (cc == CURLE_OK && status == 200 && w->line.len > 0) {
            watch_message(w, w->line.data, w->line.len); /* a last line without newline */
        } else if (cc == CURLE_OK && status != 200) {
            int code;
            const char *msg;
            json_t *err =
                json_loadb(w->line.data != NULL ? w->line.data : "", w->line.len, 0, NULL);
            w->unauthenticated = etcd_parse_error(err, &code, &msg) && code == 16;
            json_decref(err);
            w->why = "etcd refused the watch";
        } else if (cc != CURLE_OK) {
            w->why = curl_easy_strerror(cc);
        }
        if (w->outcome == WATCH_GOING) {
            w->outcome = WATCH_RETRY;
        }
    }
    curl_multi_remove_handle(w->multi, s.easy);
    w->easy = NULL;
    if (w->outcome == WATCH_SILENT) {
        /* etcd sends progress notifications rarely by default: an idle watch is normal */
        w->idle = 1;
        sd_log_debug("state", "etcd watch of \"%s\": the stream went silent; reopening", w->prefix);
        w->outcome = WATCH_RETRY;
    } else if (w->outcome == WATCH_RETRY && atomic_load(&w->stop) == WATCH_RUNNING) {
        etcd_client_stream_failed(c, &s, unreachable, w->unauthenticated, w->why);
    }
    etcd_client_stream_free(&s);
}

static void *watch_main(void *arg)
{
    struct sd_watch *w = arg;
    int64_t backoff_ms = 100;

    while (atomic_load(&w->stop) == WATCH_RUNNING) {
        w->healthy = 0;
        w->idle = 0;
        watch_stream(w);
        if (w->outcome == WATCH_COMPACTED && atomic_load(&w->stop) == WATCH_RUNNING) {
            w->ended = 1;
            w->cb(NULL, 0, 0, SD_ECONFLICT, w->arg);
            break;
        }
        if (atomic_load(&w->stop) != WATCH_RUNNING) {
            break;
        }
        backoff_ms = w->healthy ? 100 : (backoff_ms * 2 > 2000 ? 2000 : backoff_ms * 2);
        if (!w->idle) {
            curl_multi_poll(w->multi, NULL, 0, (int)backoff_ms, NULL);
        }
    }
    if (atomic_load(&w->stop) == WATCH_CLOSING && !w->ended) {
        w->ended = 1;
        w->cb(NULL, 0, 0, SD_ECLOSED, w->arg);
    }
    if (w->detached) {
        watch_free(w);
    }
    return NULL;
}

int etcd_watch_start(struct etcd_watches *ws, const char *prefix, int64_t start_rev, sd_watch_fn cb,
                     void *arg, struct sd_watch **out)
{
    struct sd_watch *w = sd_xcalloc(1, sizeof(*w));

    w->ws = ws;
    w->prefix = sd_xstrdup(prefix);
    w->next_rev = start_rev;
    w->cb = cb;
    w->arg = arg;
    w->multi = curl_multi_init();
    sd_buf_init(&w->line);
    atomic_init(&w->stop, WATCH_RUNNING);
    pthread_mutex_lock(&ws->mu);
    w->next = ws->list;
    ws->list = w;
    pthread_mutex_unlock(&ws->mu);
    *out = w;
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        sd_log_error("state", "etcd watch: pthread_create failed");
        abort();
    }
    return 0;
}

void etcd_watch_stop(struct etcd_watches *ws, struct sd_watch *w)
{
    struct sd_watch **pp;
    int found = 0;

    if (w == NULL) {
        return;
    }
    pthread_mutex_lock(&ws->mu);
    for (pp = &ws->list; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            found = 1;
            break;
        }
    }
    pthread_mutex_unlock(&ws->mu);
    if (pthread_equal(pthread_self(), w->thread)) {
        /* from its own callback: the running call completes, then the thread ends; while the
         * store closes (not found), close joins and frees it */
        atomic_store(&w->stop, WATCH_UNWATCHED);
        if (found) {
            w->detached = 1;
            pthread_detach(w->thread);
        }
        return;
    }
    atomic_store(&w->stop, WATCH_UNWATCHED);
    curl_multi_wakeup(w->multi);
    pthread_join(w->thread, NULL);
    watch_free(w);
}

void etcd_watches_destroy(struct etcd_watches *ws)
{
    struct sd_watch *list, *w, *next;

    if (ws == NULL) {
        return;
    }
    pthread_mutex_lock(&ws->mu);
    list = ws->list;
    ws->list = NULL;
    pthread_mutex_unlock(&ws->mu);
    for (w = list; w != NULL; w = w->next) {
        int expected = WATCH_RUNNING;
        atomic_compare_exchange_strong(&w->stop, &expected, WATCH_CLOSING);
        curl_multi_wakeup(w->multi);
    }
    for (w = list; w != NULL; w = next) {
        next = w->next;
        pthread_join(w->thread, NULL);
        watch_free(w);
    }
    pthread_mutex_destroy(&ws->mu);
    free(ws);
}
