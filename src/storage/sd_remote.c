/* sd_remote.c: a source node's connections to the writer nodes and its files on them (see
 * sd_remote.h, docs/PROTOCOL.md).
 *
 * DESIGN: one mutex guards every peer (writer node) and file; the connections' reader threads
 * (sd_wire_conn) take it for each frame, appenders (the data endpoint's loop) for each append,
 * and sync results are delivered under it, so a file's results are serialized and none comes
 * after its close. A connector thread (re)connects the peers without a connection, with backoff
 * (100 ms doubling to 5 s), frees ended connections and forgets peers that are gone. A file's
 * appends are numbered locally (seq, what callers wait for); on the wire they are numbered from
 * 1 per open (the writer's slice writer numbers appends the same way), so a reopen after a
 * reconnect only moves the file's base. Each connection carries at most `window` bytes of
 * appends not yet synced (a FIFO of the appends in flight per file gives back their bytes). */
#include "storage/sd_remote.h"
#include "core/sd_alloc.h"
#include "core/sd_cond.h"
#include "core/sd_error.h"
#include "core/sd_log.h"
#include "core/sd_time.h"
#include "net/sd_listen.h"
#include "net/sd_wire_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SD_REMOTE_BACKOFF_MIN_MS 100
#define SD_REMOTE_BACKOFF_MAX_MS 5000
#define SD_REMOTE_CONNECT_TIMEOUT_MS 2000
#define SD_REMOTE_APPEND_FIELDS 12 /* u64 seq + u32 records before the rows */

enum sd_remote_file_state {
    SD_RF_WAIT,     /* to be opened on the peer's next connection */
    SD_RF_OPENING,  /* OPEN sent */
    SD_RF_READY,    /* open: takes appends */
    SD_RF_DRAINING, /* the writer is shutting down: CLOSE sent, no appends */
    SD_RF_CLOSING,  /* sd_remote_close waits for CLOSED */
    SD_RF_DONE,     /* closed by the writer or the connection ended while closing */
    SD_RF_FAILED,   /* the writer refused it, or its node is gone: no appends, ever */
};

struct sd_remote_inflight {
    uint64_t seq; /* local */
    size_t bytes;
};

struct sd_remote_peer;

struct sd_remote_file {
    struct sd_remote *r;
    struct sd_remote_peer *peer; /* NULL: the writer node is unknown (failed) */
    char *slice_key;
    enum sd_remote_file_state state;
    uint32_t wire_id;                /* on the peer's current connection (OPENING and later) */
    uint64_t seq;                    /* the last append's local number */
    uint64_t settled;                /* every append up to it is reported (durable or failed) */
    uint64_t base;                   /* local seq = wire seq + base on the current open */
    struct sd_remote_inflight *ring; /* appends not yet settled, oldest first */
    size_t ring_cap, ring_head, ring_len;
    sd_remote_sync_fn fn;
    void *arg;
    struct sd_remote_file *next;
};

struct sd_remote_peer {
    struct sd_remote *r;
    char *node_id;
    char *address;
    struct sd_wire_conn *conn; /* the current connection, NULL while there is none */
    struct sd_wire_conn *dead; /* an ended connection the connector thread frees */
    int is_welcomed;
    int is_draining;
    int is_gone;
    int is_dirty;    /* appends queued since the last sd_remote_flush */
    size_t window;   /* agreed in the handshake */
    size_t inflight; /* bytes of appends not yet settled on conn */
    size_t max_frame;
    uint32_t next_wire_id;
    int64_t next_attempt_ms;
    int64_t backoff_ms;
    struct sd_remote_file *files;
    struct sd_remote_peer *next;
};

struct sd_remote {
    struct sd_remote_opts o;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* the connector's wake-ups; closes waiting for CLOSED */
    struct sd_remote_peer *peers;
    pthread_t thread;
    int is_running;
};

/* ---- files (under r->lock) ---- */

static void sd__inflight_push(struct sd_remote_file *f, uint64_t seq, size_t bytes)
{
    if (f->ring_len == f->ring_cap) {
        size_t cap = f->ring_cap ? f->ring_cap * 2 : 64;
        struct sd_remote_inflight *ring = sd_xcalloc(cap, sizeof(*ring));
        for (size_t i = 0; i < f->ring_len; i++) {
            ring[i] = f->ring[(f->ring_head + i) % f->ring_cap];
        }
        free(f->ring);
        f->ring = ring;
        f->ring_cap = cap;
        f->ring_head = 0;
    }
    f->ring[(f->ring_head + f->ring_len) % f->ring_cap] = (struct sd_remote_inflight){seq, bytes};
    f->ring_len++;
}

/* Reports every append up to seq (local) as settled with rc and gives their bytes back to the
 * connection's window. */
static void sd__settle(struct sd_remote_file *f, uint64_t seq, int rc)
{
    if (seq <= f->settled) {
        return;
    }
    while (f->ring_len > 0 && f->ring[f->ring_head].seq <= seq) {
        if (f->peer != NULL) {
            f->peer->inflight -= f->ring[f->ring_head].bytes;
        }
        f->ring_head = (f->ring_head + 1) % f->ring_cap;
        f->ring_len--;
    }
    f->settled = seq;
    f->fn(f->arg, seq, rc);
}

/* Every append not yet reported durable failed (connection lost, file refused or closed). */
static void sd__fail_pending(struct sd_remote_file *f, int rc)
{
    sd__settle(f, f->seq, rc);
}

static void sd__send_open(struct sd_remote_peer *p, struct sd_remote_file *f)
{
    struct sd_wire_msg m;

    memset(&m, 0, sizeof(m));
    m.type = SD_WIRE_OPEN;
    if (++p->next_wire_id == 0) { /* 0 is the connection itself */
        p->next_wire_id = 1;
    }
    m.file = f->wire_id = p->next_wire_id;
    m.text = f->slice_key;
    m.text_len = strlen(f->slice_key);
    m.json = "{}";
    m.json_len = 2;
    f->state = sd_wire_conn_send(p->conn, &m) == 0 ? SD_RF_OPENING : SD_RF_WAIT;
}

static struct sd_remote_file *sd__file_by_wire_id(struct sd_remote_peer *p, uint32_t id)
{
    for (struct sd_remote_file *f = p->files; f != NULL; f = f->next) {
        if (f->wire_id == id && f->state != SD_RF_WAIT && f->state != SD_RF_FAILED) {
            return f;
        }
    }
    return NULL;
}

static void sd__unlink_file(struct sd_remote_file *f)
{
    struct sd_remote_file **pp;

    if (f->peer == NULL) {
        return;
    }
    for (pp = &f->peer->files; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    }
    f->peer = NULL;
}

/* The next connection attempt to p waits its backoff, which doubles (up to the maximum) until
 * a handshake completes (r->lock held). */
static void sd__retry_later(struct sd_remote_peer *p)
{
    p->next_attempt_ms = sd_mono_ms() + p->backoff_ms;
    p->backoff_ms =
        p->backoff_ms * 2 > SD_REMOTE_BACKOFF_MAX_MS ? SD_REMOTE_BACKOFF_MAX_MS : p->backoff_ms * 2;
}

/* ---- frames from a writer (reader threads) ---- */

static void sd__on_welcome(struct sd_remote *r, struct sd_remote_peer *p, struct sd_wire_conn *c,
                           const struct sd_wire_msg *m)
{
    p->is_welcomed = 1;
    p->is_draining = 0;
    p->window = m->window < r->o.window ? m->window : r->o.window;
    p->max_frame = m->max_frame;
    p->backoff_ms = SD_REMOTE_BACKOFF_MIN_MS;
    sd_wire_conn_set_max_frame(c, m->max_frame);
    sd_log_info("remote", "connected to writer node %s at %s", p->node_id, p->address);
    for (struct sd_remote_file *f = p->files; f != NULL; f = f->next) {
        if (f->state == SD_RF_WAIT) {
            sd__send_open(p, f);
        }
    }
}

static void sd__on_file_frame(struct sd_remote *r, struct sd_remote_peer *p,
                              const struct sd_wire_msg *m)
{
    struct sd_remote_file *f = sd__file_by_wire_id(p, m->file);

    if (f == NULL) {
        return; /* a file closed meanwhile */
    }
    switch (m->type) {
    case SD_WIRE_OPENED:
        if (f->state == SD_RF_OPENING) {
            f->state = SD_RF_READY;
            f->base = f->seq;
            pthread_cond_broadcast(&r->cond);
        }
        break;
    case SD_WIRE_SYNCED:
        if (m->seq + f->base <= f->seq) {
            sd__settle(f, m->seq + f->base, m->rc == 0 ? 0 : SD_EUNHEALTHY);
        }
        break;
    case SD_WIRE_CLOSED:
        sd__fail_pending(f, SD_EUNHEALTHY); /* its final syncs came before */
        if (f->state == SD_RF_DRAINING) {
            f->state = SD_RF_WAIT; /* reopened on the writer's next connection */
        } else {
            f->state = SD_RF_DONE;
            pthread_cond_broadcast(&r->cond);
        }
        break;
    case SD_WIRE_ERROR:
        /* the writer logs why at the level it deserves (a rotation race is no fault) */
        sd_log_key(SD_LOG_INFO, "remote", f->slice_key,
                   "writer node %s refused the file of slice %s: %.*s (%d)", p->node_id,
                   f->slice_key, (int)m->text_len, m->text, m->rc);
        sd__fail_pending(f, SD_EUNHEALTHY);
        if (f->state == SD_RF_CLOSING) {
            f->state = SD_RF_DONE;
        } else if (m->rc == SD_WIRE_E_DRAINING) {
            f->state = SD_RF_WAIT; /* its OPEN crossed the DRAIN: opened when the writer is back */
        } else {
            f->state = SD_RF_FAILED;
        }
        pthread_cond_broadcast(&r->cond);
        break;
    default:
        break;
    }
}

/* DRAIN: the writer is shutting down: no new appends to it; close the files (their syncs in
 * flight still come), to be reopened when it is back. */
static void sd__on_drain(struct sd_remote_peer *p)
{
    p->is_draining = 1;
    sd_log_info("remote", "writer node %s is shutting down: its slices take no new records",
                p->node_id);
    for (struct sd_remote_file *f = p->files; f != NULL; f = f->next) {
        if (f->state == SD_RF_READY || f->state == SD_RF_OPENING) {
            struct sd_wire_msg m;
            memset(&m, 0, sizeof(m));
            m.type = SD_WIRE_CLOSE;
            m.file = f->wire_id;
            f->state = sd_wire_conn_send(p->conn, &m) == 0 ? SD_RF_DRAINING : SD_RF_WAIT;
        }
    }
}

static void sd__on_frame(void *arg, struct sd_wire_conn *c, const struct sd_wire_msg *m)
{
    struct sd_remote_peer *p = arg;
    struct sd_remote *r = p->r;

    pthread_mutex_lock(&r->lock);
    if (c != p->conn) {
        pthread_mutex_unlock(&r->lock);
        return;
    }
    if (m->type == SD_WIRE_ERROR && m->file == 0) {
        sd_log_error("remote", "writer node %s: %.*s (%d)", p->node_id, (int)m->text_len, m->text,
                     m->rc);
        sd_wire_conn_shutdown(c, 0);
    } else if (m->type == SD_WIRE_WELCOME && !p->is_welcomed) {
        sd__on_welcome(r, p, c, m);
    } else if (!p->is_welcomed || m->type == SD_WIRE_HELLO || m->type == SD_WIRE_WELCOME ||
               m->type == SD_WIRE_OPEN || m->type == SD_WIRE_APPEND || m->type == SD_WIRE_SYNC ||
               m->type == SD_WIRE_CLOSE) {
        sd_log_error("remote", "writer node %s sent an unexpected frame (type %u): disconnecting",
                     p->node_id, (unsigned)m->type);
        sd_wire_conn_shutdown(c, 0);
    } else if (m->type == SD_WIRE_DRAIN) {
        sd__on_drain(p);
    } else {
        sd__on_file_frame(r, p, m);
    }
    pthread_mutex_unlock(&r->lock);
}

/* The connection ended: every append in flight on it failed; files are reopened on the next
 * one; a close waiting for CLOSED is over. */
static void sd__on_close(void *arg, struct sd_wire_conn *c, int reason)
{
    struct sd_remote_peer *p = arg;
    struct sd_remote *r = p->r;

    pthread_mutex_lock(&r->lock);
    if (c == p->conn) {
        if (p->is_welcomed) {
            sd_log_warn("remote", "connection to writer node %s at %s ended: %s", p->node_id,
                        p->address, reason == 0 ? "closed" : sd_strerror(reason));
        }
        for (struct sd_remote_file *f = p->files; f != NULL; f = f->next) {
            sd__fail_pending(f, SD_EUNHEALTHY);
            if (f->state == SD_RF_CLOSING) {
                f->state = SD_RF_DONE;
            } else if (f->state != SD_RF_FAILED && f->state != SD_RF_DONE) {
                f->state = SD_RF_WAIT;
            }
        }
        p->inflight = 0;
        p->conn = NULL;
        p->dead = c;
        p->is_welcomed = 0;
        sd__retry_later(p); /* also when it ended before WELCOME: no retry loop at full speed */
        pthread_cond_broadcast(&r->cond);
    }
    pthread_mutex_unlock(&r->lock);
}

/* ---- the connector thread ---- */

/* A TCP connection to "host:port" within SD_REMOTE_CONNECT_TIMEOUT_MS: the fd or -errno. */
static int sd__connect(const char *address)
{
    char host[256], port[16];
    struct addrinfo hints, *res = NULL;
    int fd = -1, rc;

    /* "[v6]:port" as the writer announces an IPv6 address: the brackets are not the host's */
    if (sd_addr_split(address, host, sizeof(host), port, sizeof(port)) != 0) {
        return -EINVAL;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL) {
        return -EHOSTUNREACH;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        rc = -errno;
    } else if (connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
        rc = 0;
    } else if (errno != EINPROGRESS) {
        rc = -errno;
    } else {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t len = sizeof(err);
        rc = poll(&pfd, 1, SD_REMOTE_CONNECT_TIMEOUT_MS);
        if (rc == 0) {
            rc = -ETIMEDOUT;
        } else if (rc < 0) {
            rc = -errno;
        } else {
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            rc = -err;
        }
    }
    freeaddrinfo(res);
    if (rc == 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
        rc = -errno;
    }
    if (rc != 0 && fd >= 0) {
        close(fd);
    }
    return rc == 0 ? fd : rc;
}

/* Connects peer p (r->lock held; released while connecting) and sends HELLO. */
static void sd__peer_connect(struct sd_remote *r, struct sd_remote_peer *p)
{
    char *address = sd_xstrdup(p->address);
    struct sd_wire_conn_opts o = {
        .keepalive_ms = r->o.keepalive_ms,
        .idle_timeout_ms = 3 * r->o.keepalive_ms,
        .on_frame = sd__on_frame,
        .on_close = sd__on_close,
        .arg = p,
    };
    struct sd_wire_conn *c = NULL;
    struct sd_wire_msg hello;
    int fd, rc;

    pthread_mutex_unlock(&r->lock);
    fd = sd__connect(address);
    free(address);
    pthread_mutex_lock(&r->lock);
    rc = fd < 0 ? fd : 0;
    if (rc == 0 && (p->is_gone || !r->is_running)) {
        close(fd);
        return;
    }
    /* started under the lock: its frames and its end wait until conn is set */
    if (rc == 0 && (rc = sd_wire_conn_start(fd, &o, &c)) == 0) {
        p->conn = c;
        memset(&hello, 0, sizeof(hello));
        hello.type = SD_WIRE_HELLO;
        hello.version_min = SD_WIRE_VERSION;
        hello.version_max = SD_WIRE_VERSION;
        hello.text = r->o.node_id;
        hello.text_len = strlen(r->o.node_id);
        rc = sd_wire_conn_send(c, &hello);
        if (rc != 0) {
            sd_wire_conn_shutdown(c, 0);
        }
        return;
    }
    if (p->backoff_ms >= SD_REMOTE_BACKOFF_MAX_MS / 2) {
        sd_log_warn("remote", "cannot connect to writer node %s at %s: %s", p->node_id, p->address,
                    sd_strerror(rc));
    }
    sd__retry_later(p);
}

static void sd__peer_free(struct sd_remote_peer *p)
{
    free(p->node_id);
    free(p->address);
    free(p);
}

/* One pass over the peers (r->lock held): frees ended connections, forgets peers that are gone
 * and idle, connects those due. Returns 1 if it released the lock (the list may have changed). */
static int sd__connector_pass(struct sd_remote *r)
{
    for (struct sd_remote_peer **pp = &r->peers, *p; (p = *pp) != NULL; pp = &p->next) {
        if (p->dead != NULL) {
            struct sd_wire_conn *dead = p->dead;
            p->dead = NULL;
            pthread_mutex_unlock(&r->lock);
            sd_wire_conn_free(dead);
            pthread_mutex_lock(&r->lock);
            return 1;
        }
        if (p->is_gone && p->conn == NULL && p->files == NULL) {
            *pp = p->next;
            sd__peer_free(p);
            return 1;
        }
        if (!p->is_gone && p->conn == NULL && sd_mono_ms() >= p->next_attempt_ms) {
            sd__peer_connect(r, p);
            return 1;
        }
    }
    return 0;
}

static void *sd__connector_main(void *arg)
{
    struct sd_remote *r = arg;

    pthread_setname_np(pthread_self(), "sd-remote");
    pthread_mutex_lock(&r->lock);
    while (r->is_running) {
        if (!sd__connector_pass(r)) {
            sd_cond_wait_ms(&r->cond, &r->lock, SD_REMOTE_BACKOFF_MIN_MS);
        }
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* ---- the interface ---- */

int sd_remote_create(const struct sd_remote_opts *opts, struct sd_remote **out)
{
    struct sd_remote *r = sd_xcalloc(1, sizeof(*r));
    int rc;

    r->o = *opts;
    r->o.node_id = sd_xstrdup(opts->node_id);
    pthread_mutex_init(&r->lock, NULL);
    sd_cond_init_monotonic(&r->cond);
    r->is_running = 1;
    rc = pthread_create(&r->thread, NULL, sd__connector_main, r);
    if (rc != 0) {
        r->is_running = 0;
        sd_remote_destroy(r);
        return -rc;
    }
    *out = r;
    return 0;
}

static struct sd_remote_peer *sd__peer_find(struct sd_remote *r, const char *node_id)
{
    for (struct sd_remote_peer *p = r->peers; p != NULL; p = p->next) {
        if (!p->is_gone && strcmp(p->node_id, node_id) == 0) {
            return p;
        }
    }
    return NULL;
}

/* The writer node is gone (r->lock held): its connection ends, its files fail for good. */
static void sd__peer_gone(struct sd_remote_peer *p)
{
    p->is_gone = 1;
    for (struct sd_remote_file *f = p->files; f != NULL; f = f->next) {
        sd__fail_pending(f, SD_EUNHEALTHY);
        f->state = f->state == SD_RF_CLOSING ? SD_RF_DONE : SD_RF_FAILED;
    }
    if (p->conn != NULL) {
        sd_wire_conn_shutdown(p->conn, 0);
    }
}

void sd_remote_set_writers(struct sd_remote *r, const json_t *writers)
{
    const char *node;
    json_t *address;

    pthread_mutex_lock(&r->lock);
    for (struct sd_remote_peer *p = r->peers; p != NULL; p = p->next) {
        const char *now = json_string_value(json_object_get(writers, p->node_id));
        if (!p->is_gone && (now == NULL || strcmp(now, p->address) != 0)) {
            sd_log_info("remote", "writer node %s is gone", p->node_id);
            sd__peer_gone(p);
        }
    }
    json_object_foreach((json_t *)writers, node, address)
    {
        if (sd__peer_find(r, node) == NULL) {
            struct sd_remote_peer *p = sd_xcalloc(1, sizeof(*p));
            p->r = r;
            p->node_id = sd_xstrdup(node);
            p->address = sd_xstrdup(json_string_value(address));
            p->backoff_ms = SD_REMOTE_BACKOFF_MIN_MS;
            p->next = r->peers;
            r->peers = p;
        }
    }
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

struct sd_remote_file *sd_remote_open(struct sd_remote *r, const char *writer_id,
                                      const char *slice_key, sd_remote_sync_fn fn, void *arg)
{
    struct sd_remote_file *f = sd_xcalloc(1, sizeof(*f));

    f->r = r;
    f->slice_key = sd_xstrdup(slice_key);
    f->fn = fn;
    f->arg = arg;
    f->state = SD_RF_FAILED;
    pthread_mutex_lock(&r->lock);
    f->peer = writer_id != NULL ? sd__peer_find(r, writer_id) : NULL;
    if (f->peer != NULL) {
        f->next = f->peer->files;
        f->peer->files = f;
        f->state = SD_RF_WAIT;
        if (f->peer->conn != NULL && f->peer->is_welcomed && !f->peer->is_draining) {
            sd__send_open(f->peer, f);
        }
    }
    pthread_mutex_unlock(&r->lock);
    return f;
}

/* r->lock held. */
static int sd__is_ready(const struct sd_remote_file *f)
{
    const struct sd_remote_peer *p = f->peer;

    return f->state == SD_RF_READY && p != NULL && p->conn != NULL && !p->is_draining &&
           p->inflight < p->window;
}

int sd_remote_file_is_failed(struct sd_remote_file *f)
{
    int failed;

    pthread_mutex_lock(&f->r->lock);
    failed = f->state == SD_RF_FAILED;
    pthread_mutex_unlock(&f->r->lock);
    return failed;
}

int sd_remote_file_is_ready(struct sd_remote_file *f)
{
    int ready;

    pthread_mutex_lock(&f->r->lock);
    ready = sd__is_ready(f);
    pthread_mutex_unlock(&f->r->lock);
    return ready;
}

int sd_remote_writer_is_down(struct sd_remote_file *f)
{
    int down;

    pthread_mutex_lock(&f->r->lock);
    down = f->peer == NULL || f->peer->is_gone ||
           (f->peer->conn == NULL && f->peer->backoff_ms > SD_REMOTE_BACKOFF_MIN_MS);
    pthread_mutex_unlock(&f->r->lock);
    return down;
}

int sd_remote_wait_open(struct sd_remote_file *f, int64_t deadline_ms)
{
    struct sd_remote *r = f->r;
    int ready;

    pthread_mutex_lock(&r->lock);
    while ((f->state == SD_RF_OPENING || (f->state == SD_RF_WAIT && !f->peer->is_gone)) &&
           sd_cond_wait_until_ms(&r->cond, &r->lock, deadline_ms) != -ETIMEDOUT) {
    }
    ready = sd__is_ready(f);
    pthread_mutex_unlock(&r->lock);
    return ready;
}

int sd_remote_append(struct sd_remote_file *f, const void *rows, size_t len, uint32_t nrows,
                     uint64_t *seq)
{
    struct sd_remote *r = f->r;
    struct sd_remote_peer *p;
    struct sd_wire_msg m;
    int rc = 0;

    pthread_mutex_lock(&r->lock);
    p = f->peer;
    if (!sd__is_ready(f)) {
        rc = f->state == SD_RF_READY && p->inflight >= p->window ? SD_ELIMIT : SD_EUNHEALTHY;
    } else if (len + SD_REMOTE_APPEND_FIELDS > p->max_frame) {
        rc = SD_ELIMIT; /* a record larger than a frame (never with the default body limit) */
    } else {
        memset(&m, 0, sizeof(m));
        m.type = SD_WIRE_APPEND;
        m.flags = SD_WIRE_FLAG_ALIGNED;
        m.file = f->wire_id;
        m.seq = f->seq + 1 - f->base;
        m.records = nrows;
        m.rows = rows;
        m.rows_len = len;
        rc = sd_wire_conn_queue(p->conn, &m); /* written at the caller's sd_remote_flush */
        if (rc == 0) {
            p->is_dirty = 1;
            *seq = ++f->seq;
            sd__inflight_push(f, f->seq, len);
            p->inflight += len;
        } else {
            rc = SD_EUNHEALTHY;
        }
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

void sd_remote_flush(struct sd_remote *r)
{
    pthread_mutex_lock(&r->lock);
    for (struct sd_remote_peer *p = r->peers; p != NULL; p = p->next) {
        if (p->is_dirty && p->conn != NULL) {
            sd_wire_conn_flush(p->conn);
        }
        p->is_dirty = 0;
    }
    pthread_mutex_unlock(&r->lock);
}

int sd_remote_close(struct sd_remote_file *f)
{
    struct sd_remote *r = f->r;
    int64_t deadline = sd_mono_ms() + r->o.close_timeout_ms;
    int rc = 0;

    pthread_mutex_lock(&r->lock);
    if (f->state == SD_RF_READY || f->state == SD_RF_OPENING) {
        struct sd_wire_msg m;
        memset(&m, 0, sizeof(m));
        m.type = SD_WIRE_CLOSE;
        m.file = f->wire_id;
        f->state = sd_wire_conn_send(f->peer->conn, &m) == 0 ? SD_RF_CLOSING : SD_RF_DONE;
    } else if (f->state == SD_RF_DRAINING) {
        f->state = SD_RF_CLOSING; /* CLOSE sent at the DRAIN */
    } else if (f->state == SD_RF_FAILED) {
        rc = SD_EUNHEALTHY; /* refused, or its writer node is gone */
    }
    /* SD_RF_WAIT: closed by the writer already (at its DRAIN, or when the connection ended) */
    while (f->state == SD_RF_CLOSING) {
        if (sd_cond_wait_until_ms(&r->cond, &r->lock, deadline) == -ETIMEDOUT) {
            rc = -ETIMEDOUT;
            break;
        }
    }
    sd__fail_pending(f, SD_EUNHEALTHY);
    sd__unlink_file(f);
    pthread_mutex_unlock(&r->lock);
    free(f->ring);
    free(f->slice_key);
    free(f);
    return rc;
}

void sd_remote_destroy(struct sd_remote *r)
{
    if (r == NULL) {
        return;
    }
    pthread_mutex_lock(&r->lock);
    if (r->is_running) {
        r->is_running = 0;
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->lock);
        pthread_join(r->thread, NULL); /* no connection starts after this */
    } else {
        pthread_mutex_unlock(&r->lock);
    }
    while (r->peers != NULL) {
        struct sd_remote_peer *p = r->peers;
        struct sd_wire_conn *live, *dead;
        r->peers = p->next;
        pthread_mutex_lock(&r->lock);
        live = p->conn;
        dead = p->dead;
        p->dead = NULL;
        pthread_mutex_unlock(&r->lock);
        if (dead != NULL) {
            sd_wire_conn_free(dead);
        }
        if (live != NULL) {
            sd_wire_conn_free(live); /* its end moves it to p->dead: freed here, not there */
        }
        sd__peer_free(p);
    }
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free((char *)r->o.node_id);
    free(r);
}
