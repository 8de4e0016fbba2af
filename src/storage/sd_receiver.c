/* sd_receiver.c: a writer node's listener for source nodes (see sd_receiver.h).
 *
 * DESIGN: one thread accepts connections and frees those that ended; each connection's reader
 * thread (sd_wire_conn) handles its frames in order: the handshake, OPEN through
 * sd_storage_net_open (which checks the slice is "writing" on our volumes), APPEND into the
 * file's slice writer (no I/O: the writer's threads compress, write and fdatasync in batches,
 * and each batch's result goes back as SYNCED from the writer thread), CLOSE (the final sync,
 * then CLOSED with the statistics). Only the reader thread touches a connection's files; the
 * receiver's lock guards the connection list, the draining flag, and the set of (slice, source
 * node) files open on this node, so a source node that reconnected before its old connection
 * was seen dead cannot open a second writer on its file: the old connection is ended and its
 * close awaited first. */
#include "storage/sd_receiver.h"
#include "config/sd_config.h"
#include "config/sd_config_bind.h"
#include "core/sd_alloc.h"
#include "core/sd_cond.h"
#include "core/sd_error.h"
#include "core/sd_log.h"
#include "core/sd_time.h"
#include "net/sd_listen.h"
#include "net/sd_wire_conn.h"
#include "storage/sd_storage.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SD_RECEIVER_POLL_MS 200
#define SD_RECEIVER_TAKEOVER_MS 10000 /* how long an OPEN waits for a stale copy of its file */
#define SD_RECEIVER_LINGER_MS 1000

struct sd_receiver_config {
    const char *listen;
    const char *hostname;
    int64_t keepalive_ms;
    size_t window;
    int64_t shutdown_timeout_ms;
};

#define SD_RECEIVER_BIND(field, key, type) SD_BIND(struct sd_receiver_config, field, key, type)
static const struct sd_config_binding sd_receiver_rows[] = {
    SD_RECEIVER_BIND(listen, "storage.level.local.writer.network.listen", SD_BIND_STR),
    SD_RECEIVER_BIND(hostname, "hostname", SD_BIND_STR),
    SD_RECEIVER_BIND(keepalive_ms, "storage.level.local.writer.network.keepAliveInterval",
                     SD_BIND_I64),
    SD_RECEIVER_BIND(window, "storage.level.local.writer.network.streamMaxWindow", SD_BIND_SIZE_T),
    SD_RECEIVER_BIND(shutdown_timeout_ms, "storage.level.local.writer.network.shutdownTimeout",
                     SD_BIND_I64),
};
const struct sd_config_bindings sd_receiver_config_bindings =
    SD_BINDINGS("receiver", sd_receiver_rows);

struct sd_recv_conn;

struct sd_recv_file {
    struct sd_recv_conn *c;
    uint32_t id;
    struct sd_slice_handle *h;
    uint64_t seq;   /* the last append's number */
    char *open_key; /* "<sliceKey> <sourceNodeID>" in the receiver's set */
    struct sd_recv_file *next;
};

struct sd_recv_conn {
    struct sd_receiver *rc;
    struct sd_wire_conn *conn;
    char source_id[SD_WIRE_MAX_ID + 1];
    int is_welcomed;
    int is_over;   /* its end was handled (files closed): the accept thread frees it */
    size_t nfiles; /* under the receiver's lock */
    struct sd_recv_file *files;
    struct sd_recv_conn *next;
};

struct sd_receiver {
    struct sd_receiver_config cfg;
    struct sd_storage *storage;
    const char *node_id;
    int listen_fd;
    char address[320];
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* a file closed, a connection ended */
    int is_running;
    int is_draining;
    struct sd_recv_conn *conns;
    json_t *open; /* {"<sliceKey> <sourceNodeID>": true} */
};

/* ---- frames to the source ---- */

static void sd__send_error(struct sd_recv_conn *c, uint32_t file, int code, const char *text)
{
    struct sd_wire_msg m;

    memset(&m, 0, sizeof(m));
    m.type = SD_WIRE_ERROR;
    m.file = file;
    m.rc = code;
    m.text = text;
    m.text_len = strnlen(text, SD_WIRE_MAX_MESSAGE);
    (void)sd_wire_conn_send(c->conn, &m);
}

/* A protocol error: the connection is ended (its files are closed at its end). */
static void sd__violation(struct sd_recv_conn *c, const char *what)
{
    sd_log_error("receiver", "source node %s: %s: disconnecting",
                 c->source_id[0] ? c->source_id : "(no handshake)", what);
    sd__send_error(c, 0, SD_WIRE_E_MALFORMED, what);
    sd_wire_conn_shutdown(c->conn, 0);
}

/* Writer threads: a batch of the file is durable (rc 0) or failed. */
static void sd__on_file_sync(void *arg, uint64_t seq, int rc)
{
    struct sd_recv_file *f = arg;
    struct sd_wire_msg m;

    memset(&m, 0, sizeof(m));
    m.type = SD_WIRE_SYNCED;
    m.file = f->id;
    m.seq = seq;
    m.rc = rc == 0 ? 0 : SD_WIRE_E_WRITE;
    (void)sd_wire_conn_send(f->c->conn, &m); /* a connection that ended fails its appends */
}

/* ---- files (reader thread) ---- */

static struct sd_recv_file *sd__file_find(struct sd_recv_conn *c, uint32_t id)
{
    for (struct sd_recv_file *f = c->files; f != NULL; f = f->next) {
        if (f->id == id) {
            return f;
        }
    }
    return NULL;
}

/* Syncs and closes f (its last SYNCED frames are queued before this returns), unlinks and frees
 * it; *stats (optional) gets its final statistics. Returns the close's result. */
static int sd__file_close(struct sd_recv_conn *c, struct sd_recv_file *f,
                          struct sd_slice_stats *stats)
{
    struct sd_receiver *rc = c->rc;
    struct sd_recv_file **pp;
    int res = sd_storage_net_close(f->h, stats);

    for (pp = &c->files; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    }
    pthread_mutex_lock(&rc->lock);
    json_object_del(rc->open, f->open_key);
    c->nfiles--;
    pthread_cond_broadcast(&rc->cond);
    pthread_mutex_unlock(&rc->lock);
    free(f->open_key);
    free(f);
    return res;
}

/* Claims key in the set of open files. A copy open on another connection of the same source node
 * is stale (the node reconnected): that connection is ended and its close awaited. Returns 1 once
 * claimed. */
static int sd__claim(struct sd_recv_conn *c, const char *key)
{
    struct sd_receiver *rc = c->rc;
    int64_t deadline = sd_mono_ms() + SD_RECEIVER_TAKEOVER_MS;
    int claimed;

    pthread_mutex_lock(&rc->lock);
    while (json_object_get(rc->open, key) != NULL) {
        for (struct sd_recv_conn *o = rc->conns; o != NULL; o = o->next) {
            if (o != c && !o->is_over && strcmp(o->source_id, c->source_id) == 0) {
                sd_wire_conn_shutdown(o->conn, 0);
            }
        }
        if (sd_cond_wait_until_ms(&rc->cond, &rc->lock, deadline) == -ETIMEDOUT) {
            break;
        }
    }
    claimed = json_object_get(rc->open, key) == NULL;
    if (claimed) {
        json_object_set_new(rc->open, key, json_true());
        c->nfiles++;
    }
    pthread_mutex_unlock(&rc->lock);
    return claimed;
}

static void sd__on_open(struct sd_recv_conn *c, const struct sd_wire_msg *m)
{
    struct sd_receiver *rc = c->rc;
    char *slice_key = sd_xstrndup(m->text, m->text_len);
    struct sd_recv_file *f = sd_xcalloc(1, sizeof(*f));
    struct sd_buf err = SD_BUF_INIT;
    struct sd_wire_msg ok;
    uint64_t durable = 0;
    int is_draining, res;

    f->c = c;
    f->id = m->file;
    f->open_key = sd_xasprintf("%s %s", slice_key, c->source_id);
    pthread_mutex_lock(&rc->lock);
    is_draining = rc->is_draining;
    pthread_mutex_unlock(&rc->lock);
    if (is_draining) {
        sd__send_error(c, m->file, SD_WIRE_E_DRAINING, "the writer node is shutting down");
        goto refused;
    }
    if (!sd__claim(c, f->open_key)) {
        sd__send_error(c, m->file, SD_WIRE_E_OPEN, "the file is open on another connection");
        goto refused;
    }
    res = sd_storage_net_open(rc->storage, slice_key, c->source_id, sd__on_file_sync, f, &f->h,
                              &durable, &err);
    if (res != 0) {
        /* a slice that left "writing" meanwhile is a race of rotations, not a fault */
        sd_log_key(res == SD_ECLOSED ? SD_LOG_INFO : SD_LOG_WARN, "receiver", slice_key,
                   "source node %s cannot open slice %s: %s", c->source_id, slice_key,
                   sd_buf_cstr(&err));
        sd__send_error(c, m->file, SD_WIRE_E_OPEN, sd_buf_cstr(&err));
        pthread_mutex_lock(&rc->lock);
        json_object_del(rc->open, f->open_key);
        c->nfiles--;
        pthread_cond_broadcast(&rc->cond);
        pthread_mutex_unlock(&rc->lock);
        goto refused;
    }
    f->next = c->files;
    c->files = f;
    memset(&ok, 0, sizeof(ok));
    ok.type = SD_WIRE_OPENED;
    ok.file = m->file;
    ok.seq = durable;
    (void)sd_wire_conn_send(c->conn, &ok);
    sd_log_key(SD_LOG_DEBUG, "receiver", slice_key, "source node %s opened slice %s", c->source_id,
               slice_key);
    sd_buf_fini(&err);
    free(slice_key);
    return;

refused:
    sd_buf_fini(&err);
    free(f->open_key);
    free(f);
    free(slice_key);
}

static void sd__on_append(struct sd_recv_conn *c, const struct sd_wire_msg *m)
{
    struct sd_recv_file *f = sd__file_find(c, m->file);
    uint64_t seq = 0;
    int res;

    if (f == NULL) {
        sd__send_error(c, m->file, SD_WIRE_E_UNKNOWN_FILE, "no such open file");
        return;
    }
    if (m->seq != f->seq + 1) {
        sd__violation(c, "appends out of sequence");
        return;
    }
    res = sd_storage_net_append(f->h, m->rows, m->rows_len, m->records, sd_now_ms(), &seq);
    if (res != 0) {
        /* the file refuses appends (failed disk, pending budget): it is closed; the source
         * fails what it has in flight on it and writes to its other slices */
        sd__send_error(c, m->file, SD_WIRE_E_WRITE, sd_strerror(res));
        (void)sd__file_close(c, f, NULL);
        return;
    }
    f->seq = seq;
    if (seq != m->seq) {
        sd__violation(c, "appends out of sequence");
    }
}

static void sd__on_close_file(struct sd_recv_conn *c, const struct sd_wire_msg *m)
{
    struct sd_recv_file *f = sd__file_find(c, m->file);
    struct sd_slice_stats stats;
    struct sd_wire_msg closed;
    uint64_t seq;

    if (f == NULL) {
        sd__send_error(c, m->file, SD_WIRE_E_UNKNOWN_FILE, "no such open file");
        return;
    }
    seq = f->seq;
    memset(&stats, 0, sizeof(stats));
    memset(&closed, 0, sizeof(closed));
    closed.rc = sd__file_close(c, f, &stats) == 0 ? 0 : SD_WIRE_E_WRITE;
    closed.type = SD_WIRE_CLOSED;
    closed.file = m->file;
    closed.seq = seq;
    closed.stats[0] = stats.records;
    closed.stats[1] = stats.uncompressed_bytes;
    closed.stats[2] = stats.compressed_bytes;
    (void)sd_wire_conn_send(c->conn, &closed);
}

static void sd__on_hello(struct sd_recv_conn *c, const struct sd_wire_msg *m)
{
    struct sd_receiver *rc = c->rc;
    struct sd_wire_msg w;
    int is_draining;

    if (m->version_min > SD_WIRE_VERSION || m->version_max < SD_WIRE_VERSION) {
        sd__send_error(c, 0, SD_WIRE_E_VERSION, "no common protocol version (this node: 1)");
        sd_wire_conn_shutdown(c->conn, 0);
        return;
    }
    memcpy(c->source_id, m->text, m->text_len);
    c->source_id[m->text_len] = '\0';
    c->is_welcomed = 1;
    memset(&w, 0, sizeof(w));
    w.type = SD_WIRE_WELCOME;
    w.version = SD_WIRE_VERSION;
    /* a frame never exceeds the window it has to fit in */
    w.max_frame = rc->cfg.window < SD_WIRE_MAX_FRAME ? (uint32_t)rc->cfg.window : SD_WIRE_MAX_FRAME;
    w.window = (uint32_t)rc->cfg.window;
    w.text = rc->node_id;
    w.text_len = strlen(rc->node_id);
    (void)sd_wire_conn_send(c->conn, &w);
    sd_log_info("receiver", "source node %s connected", c->source_id);
    pthread_mutex_lock(&rc->lock);
    is_draining = rc->is_draining;
    pthread_mutex_unlock(&rc->lock);
    if (is_draining) {
        memset(&w, 0, sizeof(w));
        w.type = SD_WIRE_DRAIN;
        (void)sd_wire_conn_send(c->conn, &w);
    }
}

static void sd__on_frame(void *arg, struct sd_wire_conn *conn, const struct sd_wire_msg *m)
{
    struct sd_recv_conn *c = arg;

    (void)conn;
    if (!c->is_welcomed) {
        if (m->type == SD_WIRE_HELLO) {
            sd__on_hello(c, m);
        } else {
            sd__violation(c, "the first frame is not HELLO");
        }
        return;
    }
    switch (m->type) {
    case SD_WIRE_OPEN:
        if (sd__file_find(c, m->file) != NULL) {
            sd__violation(c, "OPEN of a file id in use");
        } else {
            sd__on_open(c, m);
        }
        break;
    case SD_WIRE_APPEND:
        sd__on_append(c, m);
        break;
    case SD_WIRE_SYNC:
        break; /* every batch is synced and answered with SYNCED anyway */
    case SD_WIRE_CLOSE:
        sd__on_close_file(c, m);
        break;
    default:
        sd__violation(c, "a frame a source node does not send");
        break;
    }
}

/* Reader thread, once: the files of the connection are synced and closed (their rows end at a
 * record boundary: appends are aligned), then the accept thread frees it. */
static void sd__on_conn_close(void *arg, struct sd_wire_conn *conn, int reason)
{
    struct sd_recv_conn *c = arg;
    struct sd_receiver *rc = c->rc;

    (void)conn;
    if (c->is_welcomed) {
        sd_log_info("receiver", "source node %s disconnected (%s), closing its %zu files",
                    c->source_id, reason == 0 ? "closed" : sd_strerror(reason), c->nfiles);
    }
    while (c->files != NULL) {
        (void)sd__file_close(c, c->files, NULL);
    }
    pthread_mutex_lock(&rc->lock);
    c->is_over = 1;
    pthread_cond_broadcast(&rc->cond);
    pthread_mutex_unlock(&rc->lock);
}

/* ---- the accept thread ---- */

/* Frees the connections that ended (lock held; released while freeing). */
static void sd__reap(struct sd_receiver *rc)
{
    struct sd_recv_conn **pp = &rc->conns, *c;

    while ((c = *pp) != NULL) {
        if (!c->is_over) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        pthread_mutex_unlock(&rc->lock);
        sd_wire_conn_free(c->conn);
        free(c);
        pthread_mutex_lock(&rc->lock);
        pp = &rc->conns; /* the list may have changed meanwhile */
    }
}

static void sd__accept(struct sd_receiver *rc, int fd)
{
    struct sd_recv_conn *c = sd_xcalloc(1, sizeof(*c));
    struct sd_wire_conn_opts o = {
        .keepalive_ms = rc->cfg.keepalive_ms,
        .idle_timeout_ms = 3 * rc->cfg.keepalive_ms,
        .on_frame = sd__on_frame,
        .on_close = sd__on_conn_close,
        .arg = c,
    };
    int res;

    c->rc = rc;
    /* listed before it starts: its end marks it for the reaper, under the same lock */
    pthread_mutex_lock(&rc->lock);
    res = sd_wire_conn_start(fd, &o, &c->conn);
    if (res == 0) {
        c->next = rc->conns;
        rc->conns = c;
    }
    pthread_mutex_unlock(&rc->lock);
    if (res != 0) {
        sd_log_error("receiver", "cannot serve a source node's connection: %s", sd_strerror(res));
        free(c);
    }
}

static void *sd__accept_main(void *arg)
{
    struct sd_receiver *rc = arg;

    pthread_setname_np(pthread_self(), "sd-receiver");
    pthread_mutex_lock(&rc->lock);
    while (rc->is_running) {
        struct pollfd pfd = {.fd = rc->listen_fd, .events = POLLIN};
        int fd;
        sd__reap(rc);
        pthread_mutex_unlock(&rc->lock);
        fd = poll(&pfd, 1, SD_RECEIVER_POLL_MS) > 0
                 ? accept4(rc->listen_fd, NULL, NULL, SOCK_CLOEXEC)
                 : -1;
        if (fd >= 0) {
            sd__accept(rc, fd);
        } else if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) {
            usleep(SD_RECEIVER_POLL_MS * 1000); /* out of descriptors: try again later */
        }
        pthread_mutex_lock(&rc->lock);
    }
    pthread_mutex_unlock(&rc->lock);
    return NULL;
}

/* ---- the interface ---- */

int sd_receiver_start(const struct sd_config *cfg, struct sd_storage *storage, const char *node_id,
                      struct sd_receiver **out, struct sd_buf *err)
{
    struct sd_receiver *rc = sd_xcalloc(1, sizeof(*rc));
    char shown[64];
    int port, is_wildcard, res;

    sd_config_fill(cfg, &sd_receiver_config_bindings, &rc->cfg);
    rc->storage = storage;
    rc->node_id = node_id;
    rc->open = json_object();
    pthread_mutex_init(&rc->lock, NULL);
    sd_cond_init_monotonic(&rc->cond);
    rc->listen_fd = sd_listen_tcp(rc->cfg.listen, &port, shown, sizeof(shown), &is_wildcard);
    if (rc->listen_fd < 0) {
        res = rc->listen_fd;
        sd_buf_printf(err, "cannot listen for source nodes on %s: %s", rc->cfg.listen,
                      sd_strerror(res));
        rc->listen_fd = -1;
        sd_receiver_stop(rc);
        return res;
    }
    snprintf(rc->address, sizeof(rc->address), "%s:%d", is_wildcard ? rc->cfg.hostname : shown,
             port);
    rc->is_running = 1;
    res = pthread_create(&rc->thread, NULL, sd__accept_main, rc);
    if (res != 0) {
        rc->is_running = 0;
        sd_buf_printf(err, "cannot start the listener for source nodes");
        sd_receiver_stop(rc);
        return -res;
    }
    sd_log_info("receiver", "listening for source nodes on %s (nodeAddress %s)", rc->cfg.listen,
                rc->address);
    *out = rc;
    return 0;
}

const char *sd_receiver_address(const struct sd_receiver *rc)
{
    return rc->address;
}

/* Sends DRAIN to every connection and waits until no file is open or the deadline passed. */
static void sd__drain(struct sd_receiver *rc)
{
    int64_t deadline = sd_mono_ms() + rc->cfg.shutdown_timeout_ms;
    size_t open = 0;

    pthread_mutex_lock(&rc->lock);
    rc->is_draining = 1;
    for (struct sd_recv_conn *c = rc->conns; c != NULL; c = c->next) {
        struct sd_wire_msg m;
        memset(&m, 0, sizeof(m));
        m.type = SD_WIRE_DRAIN;
        if (c->is_welcomed) { /* a later HELLO gets DRAIN after its WELCOME */
            (void)sd_wire_conn_send(c->conn, &m);
        }
    }
    for (;;) {
        open = 0;
        for (struct sd_recv_conn *c = rc->conns; c != NULL; c = c->next) {
            open += c->is_over ? 0 : c->nfiles;
        }
        if (open == 0 || sd_cond_wait_until_ms(&rc->cond, &rc->lock, deadline) == -ETIMEDOUT) {
            break;
        }
    }
    pthread_mutex_unlock(&rc->lock);
    if (open > 0) {
        sd_log_warn("receiver",
                    "%zu files of source nodes still open after shutdownTimeout: "
                    "closing them",
                    open);
    }
}

void sd_receiver_stop(struct sd_receiver *rc)
{
    if (rc == NULL) {
        return;
    }
    if (rc->is_running) {
        pthread_mutex_lock(&rc->lock);
        rc->is_running = 0;
        pthread_mutex_unlock(&rc->lock);
        pthread_join(rc->thread, NULL); /* no connection is accepted after this */
    }
    if (rc->listen_fd >= 0) {
        close(rc->listen_fd);
    }
    sd__drain(rc);
    pthread_mutex_lock(&rc->lock);
    while (rc->conns != NULL) {
        struct sd_recv_conn *c = rc->conns;
        rc->conns = c->next;
        pthread_mutex_unlock(&rc->lock);
        sd_wire_conn_shutdown(c->conn, SD_RECEIVER_LINGER_MS);
        sd_wire_conn_free(c->conn); /* its end closes its files */
        free(c);
        pthread_mutex_lock(&rc->lock);
    }
    pthread_mutex_unlock(&rc->lock);
    json_decref(rc->open);
    pthread_cond_destroy(&rc->cond);
    pthread_mutex_destroy(&rc->lock);
    free(rc);
}
