/* sd_wire_conn.c: one connection of the source -> writer protocol (see sd_wire_conn.h): a reader
 * thread that decodes and delivers frames and a sender thread that writes what was queued.
 *
 * DESIGN. Two threads per connection and one mutex `mu` guarding everything they share.
 * - Queue: sd_wire_conn_send encodes straight into `out` under mu; when the sender sleeps the
 *   caller writes the queue itself, non-blocking, and wakes the sender only for what the socket
 *   did not take (sd_wire_conn_queue leaves even that to sd_wire_conn_flush, so a burst of
 *   frames costs one write). While the sender writes, callers only queue. The sender
 *   swaps `out` with its own `writing` buffer, so it writes everything queued so far with one
 *   send loop and no lock held, while callers keep appending to the (new) `out`. `queued` counts
 *   the bytes in both buffers not yet written.
 * - Writes are non-blocking (MSG_DONTWAIT | MSG_NOSIGNAL); when the socket is full the sender
 *   polls for POLLOUT and for `wake_fd`, an eventfd that sd_wire_conn_shutdown writes, so a new
 *   linger deadline reaches a sender stuck behind a peer that does not read.
 * - Keep-alive: the sender waits on `cv` (monotonic clock) until keepalive_ms after it last
 *   started a write, then queues a PING. The reader answers PINGs by queueing a PONG through
 *   sd_wire_conn_send and swallows PONGs.
 * - Reading: the reader blocks in recv (one syscall per wake-up; the socket's SO_RCVTIMEO is the
 *   idle timeout, checked against the last byte received on the monotonic clock), reads into a
 * buffer bounded by max_frame + SD_WIRE_HEADER (the decoder refuses a header announcing more, so a
 * whole frame always fits) and decodes every whole frame in it before the next read. It stops
 * delivering once a shutdown was asked (also from inside on_frame: the frames after it are dropped)
 * and then reads only to see the end.
 * - Ending: sd_wire_conn_shutdown sets `is_closing` (sends fail with SD_ECLOSED from then on)
 *   and a linger deadline (now when called from the reader thread: no wait there, only what the
 *   socket takes at once goes out). The sender writes what is queued and then shuts the socket
 *   down itself (shutdown(2), SHUT_RDWR), or gives up at the deadline and does the same; a caller
 *   off the reader thread waits for that. A failed write also closes and shuts down (the queue
 *   is dropped); its -errno becomes the reason unless it is EPIPE, which is the peer's close.
 *   shutdown(2) wakes the reader, which sees the end, marks the connection over and calls
 *   on_close exactly once (reason 0 when a shutdown was asked, else what it saw: SD_EINVAL,
 *   -ETIMEDOUT, -errno, or the sender's write error behind an end of stream). The reader also
 *   shuts the socket down when it stops on its own, which fails any pending write at once.
 *   sd_wire_conn_free shuts down, joins the reader, stops and joins the sender, then closes the
 *   socket: the fd stays valid for both threads until neither can use it. */
#include "net/sd_wire_conn.h"
#include "core/sd_alloc.h"
#include "core/sd_cond.h"
#include "core/sd_error.h"
#include "core/sd_time.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* Reads go in steps of at most this much, so an idle connection does not hold a frame-sized
 * buffer; the buffer grows (up to the frame bound) only while a large frame arrives. */
#define SD__READ_STEP (64 * 1024)
/* A send buffer grown past this by a burst is given back once it has been written. */
#define SD__KEEP_CAP ((size_t)4 * 1024 * 1024)

struct sd_wire_conn {
    int fd;
    int wake_fd; /* eventfd: wakes the sender out of poll() when the linger deadline changes */
    struct sd_wire_conn_opts opts;
    size_t max_frame; /* reader thread only */
    pthread_t reader, sender;

    pthread_mutex_t mu;
    pthread_cond_t cv; /* monotonic: the sender's work and keep-alive, shutdown's wait */
    struct sd_buf out; /* frames queued, not yet taken by the sender */
    size_t queued;     /* bytes of out plus the bytes of the sender's batch not yet written */
    int64_t last_send_ms;
    int64_t linger_deadline_ms; /* INT64_MAX until a shutdown was asked */
    uint64_t ping_token;
    int write_err;         /* the sender's -errno, 0 if none */
    int is_shut;           /* shutdown(2) was called on fd */
    int is_sender_waiting; /* the sender sleeps on cv: a send must wake it */
    int is_stopping;       /* free: the sender exits */
    atomic_int is_closing; /* sends refused; also read by the reader between frames */
    int is_asked;          /* sd_wire_conn_shutdown was called */
};

/* Shuts the socket down once (mu held): wakes the reader and fails any pending write. */
static void sd__shut_locked(struct sd_wire_conn *c)
{
    if (!c->is_shut) {
        (void)shutdown(c->fd, SHUT_RDWR);
        c->is_shut = 1;
        pthread_cond_broadcast(&c->cv);
    }
}

/* ---- sender ---- */

/* Milliseconds poll() may wait before the linger deadline, -1 without one. */
static int sd__poll_timeout(int64_t deadline_ms)
{
    int64_t left;

    if (deadline_ms == INT64_MAX) {
        return -1;
    }
    left = deadline_ms - sd_mono_ms();
    return left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

/* Writes p[0..len) without blocking on a full socket longer than the linger deadline. Returns
 * 0, -errno, or -ETIMEDOUT when the deadline passed first. */
static int sd__write_all(struct sd_wire_conn *c, const char *p, size_t len)
{
    size_t off = 0;

    while (off < len) {
        ssize_t n = send(c->fd, p + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            off += (size_t)n;
            pthread_mutex_lock(&c->mu);
            c->queued -= (size_t)n;
            pthread_mutex_unlock(&c->mu);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd[2] = {{.fd = c->fd, .events = POLLOUT},
                                    {.fd = c->wake_fd, .events = POLLIN}};
            int timeout, pr;
            uint64_t v;

            pthread_mutex_lock(&c->mu);
            timeout = sd__poll_timeout(c->linger_deadline_ms);
            pthread_mutex_unlock(&c->mu);
            /* past the deadline the socket gets no more time, even if it drains meanwhile */
            if (timeout == 0) {
                return -ETIMEDOUT;
            }
            pr = poll(pfd, 2, timeout);
            if (pr == 0) {
                return -ETIMEDOUT;
            }
            if (pr < 0 && errno != EINTR) {
                return -errno;
            }
            if (pr > 0 && (pfd[1].revents & POLLIN) && read(c->wake_fd, &v, sizeof(v)) < 0) {
                return -errno;
            }
        } else {
            return n < 0 ? -errno : -EPIPE;
        }
    }
    return 0;
}

/* Queues a keep-alive PING (mu held; the queue is empty). */
static void sd__keepalive_locked(struct sd_wire_conn *c)
{
    struct sd_wire_msg ping = {.type = SD_WIRE_PING};
    size_t before = c->out.len;

    ping.seq = ++c->ping_token;
    (void)sd_wire_encode(&c->out, &ping); /* appends nothing if it fails (no memory) */
    c->queued += c->out.len - before;
}

static void *sd__sender_main(void *arg)
{
    struct sd_wire_conn *c = arg;
    struct sd_buf writing = SD_BUF_INIT;

    pthread_setname_np(pthread_self(), "sd-wire-wr");
    pthread_mutex_lock(&c->mu);
    for (;;) {
        if (c->out.len > 0 && !c->is_shut) {
            struct sd_buf t = c->out;
            int rc;

            c->out = writing;
            writing = t;
            c->last_send_ms = sd_mono_ms();
            pthread_mutex_unlock(&c->mu);
            rc = sd__write_all(c, writing.data, writing.len);
            pthread_mutex_lock(&c->mu);
            sd_buf_reset(&writing);
            if (writing.cap > SD__KEEP_CAP) {
                sd_buf_fini(&writing);
            }
            if (rc != 0) {
                /* nothing more can be written: the rest of the queue goes with the connection.
                 * A broken pipe is the peer's close, which the reader reports (reason 0). */
                if (!c->is_asked && rc != -EPIPE && c->write_err == 0) {
                    c->write_err = rc;
                }
                atomic_store(&c->is_closing, 1);
                sd_buf_reset(&c->out);
                c->queued = 0;
                sd__shut_locked(c);
            }
            pthread_cond_broadcast(&c->cv);
        } else if (atomic_load(&c->is_closing) && !c->is_shut) {
            sd__shut_locked(c); /* everything asked for was written */
        } else if (c->is_stopping) {
            break;
        } else if (c->opts.keepalive_ms > 0 && !atomic_load(&c->is_closing)) {
            int rc;
            c->is_sender_waiting = 1;
            rc = sd_cond_wait_until_ms(&c->cv, &c->mu, c->last_send_ms + c->opts.keepalive_ms);
            c->is_sender_waiting = 0;
            /* a caller may have written meanwhile (sd__write_now_locked) */
            if (rc == -ETIMEDOUT && c->out.len == 0 && !atomic_load(&c->is_closing) &&
                sd_mono_ms() >= c->last_send_ms + c->opts.keepalive_ms) {
                sd__keepalive_locked(c);
            }
        } else {
            c->is_sender_waiting = 1;
            pthread_cond_wait(&c->cv, &c->mu);
            c->is_sender_waiting = 0;
        }
    }
    pthread_mutex_unlock(&c->mu);
    sd_buf_fini(&writing);
    return NULL;
}

/* ---- reader ---- */

/* Delivers one decoded frame: PING is answered, PONG swallowed, the rest go to the owner. */
static void sd__dispatch(struct sd_wire_conn *c, const struct sd_wire_msg *m)
{
    if (m->type == SD_WIRE_PING) {
        struct sd_wire_msg pong = {.type = SD_WIRE_PONG, .seq = m->seq};
        (void)sd_wire_conn_send(c, &pong); /* SD_ECLOSED while closing: no answer needed */
    } else if (m->type != SD_WIRE_PONG) {
        c->opts.on_frame(c->opts.arg, c, m);
    }
}

/* Decodes and delivers every whole frame of b (consumed from the front). Returns 0 or SD_EINVAL
 * (malformed). Stops delivering when a shutdown is asked, also from on_frame. */
static int sd__deliver(struct sd_wire_conn *c, struct sd_buf *b)
{
    size_t off = 0;
    int rc = 0;

    while (!atomic_load(&c->is_closing)) {
        struct sd_wire_msg m;
        size_t used = 0;

        rc = sd_wire_decode((const uint8_t *)b->data + off, b->len - off, c->max_frame, &m, &used);
        if (rc != 1) {
            break;
        }
        off += used;
        sd__dispatch(c, &m);
    }
    if (atomic_load(&c->is_closing)) {
        off = b->len; /* nothing more is delivered: keep reading only to see the end */
    }
    memmove(b->data, b->data + off, b->len - off);
    b->len -= off;
    return rc < 0 ? SD_EINVAL : 0;
}

/* Reads until the end, delivering frames. Returns the reason the reader saw: 0 (end of stream),
 * SD_EINVAL, -ETIMEDOUT or -errno. */
static int sd__read_loop(struct sd_wire_conn *c)
{
    struct sd_buf b = SD_BUF_INIT;
    int64_t last_rx = sd_mono_ms();
    int rc = 0;

    for (;;) {
        size_t room = c->max_frame + SD_WIRE_HEADER - b.len;
        ssize_t n;

        rc = sd_buf_reserve(&b, room < SD__READ_STEP ? room : SD__READ_STEP);
        if (rc != 0) {
            break;
        }
        /* one blocking recv per wake-up (no poll before it); SO_RCVTIMEO (the idle timeout)
         * ends a wait that saw nothing. cap - len - 1: sd_buf keeps a spare byte for a NUL */
        n = recv(c->fd, b.data + b.len, b.cap - b.len - 1 < room ? b.cap - b.len - 1 : room, 0);
        if (n == 0) {
            rc = 0;
            break;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (c->opts.idle_timeout_ms > 0 &&
                    sd_mono_ms() >= last_rx + c->opts.idle_timeout_ms) {
                    rc = -ETIMEDOUT;
                    break;
                }
                continue;
            }
            if (errno == EINTR) {
                continue;
            }
            rc = -errno;
            break;
        }
        b.len += (size_t)n;
        last_rx = sd_mono_ms();
        rc = sd__deliver(c, &b);
        if (rc != 0) {
            break;
        }
    }
    sd_buf_fini(&b);
    return rc;
}

static void *sd__reader_main(void *arg)
{
    struct sd_wire_conn *c = arg;
    int reason;

    pthread_setname_np(pthread_self(), "sd-wire-rd");
    reason = sd__read_loop(c);
    pthread_mutex_lock(&c->mu);
    if (c->is_asked) {
        reason = 0;
    } else if (reason == 0 && c->write_err != 0) {
        reason = c->write_err; /* the end of stream came from the sender's failed write */
    }
    atomic_store(&c->is_closing, 1);
    sd__shut_locked(c);
    pthread_mutex_unlock(&c->mu);
    c->opts.on_close(c->opts.arg, c, reason);
    return NULL;
}

/* ---- interface ---- */

static void sd__conn_destroy(struct sd_wire_conn *c)
{
    close(c->fd);
    if (c->wake_fd >= 0) {
        close(c->wake_fd);
    }
    sd_buf_fini(&c->out);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

int sd_wire_conn_start(int fd, const struct sd_wire_conn_opts *opts, struct sd_wire_conn **out)
{
    struct sd_wire_conn *c;
    int proto = 0, one = 1, rc;
    socklen_t len = sizeof(proto);

    *out = NULL;
    if (opts->max_frame > SD_WIRE_MAX_FRAME || opts->on_frame == NULL || opts->on_close == NULL ||
        opts->keepalive_ms < 0 || opts->idle_timeout_ms < 0) {
        close(fd);
        return -EINVAL;
    }
    c = sd_xcalloc(1, sizeof(*c));
    c->fd = fd;
    c->opts = *opts;
    c->max_frame = opts->max_frame > 0 ? opts->max_frame : SD_WIRE_MAX_FRAME;
    c->linger_deadline_ms = INT64_MAX;
    c->last_send_ms = sd_mono_ms();
    sd_buf_init(&c->out);
    pthread_mutex_init(&c->mu, NULL);
    sd_cond_init_monotonic(&c->cv);
    c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->wake_fd < 0) {
        rc = -errno;
        sd__conn_destroy(c);
        return rc;
    }
    /* the reader blocks in recv, bounded by the idle timeout */
    (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    if (opts->idle_timeout_ms > 0) {
        struct timeval tv = {.tv_sec = opts->idle_timeout_ms / 1000,
                             .tv_usec = (opts->idle_timeout_ms % 1000) * 1000};
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    }
    if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) == 0 && proto == IPPROTO_TCP) {
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* latency only */
    }
    /* *out before the threads start: the callbacks may look the connection up through it */
    *out = c;
    rc = pthread_create(&c->sender, NULL, sd__sender_main, c);
    if (rc != 0) {
        *out = NULL;
        sd__conn_destroy(c);
        return -rc;
    }
    rc = pthread_create(&c->reader, NULL, sd__reader_main, c);
    if (rc != 0) {
        *out = NULL;
        pthread_mutex_lock(&c->mu);
        c->is_stopping = 1;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->sender, NULL);
        sd__conn_destroy(c);
        return -rc;
    }
    return 0;
}

/* With mu held and the sender asleep (so nobody else writes): writes what is queued from the
 * caller's thread, as much as the socket takes without waiting. Returns 1 when all of it went
 * out; else the sender is to write the rest (and to meet and report any error). */
static int sd__write_now_locked(struct sd_wire_conn *c)
{
    size_t off = 0;

    while (off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + off, c->out.len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            off += (size_t)n;
        } else if (!(n < 0 && errno == EINTR)) {
            break; /* full, or an error */
        }
    }
    if (off > 0) {
        memmove(c->out.data, c->out.data + off, c->out.len - off);
        c->out.len -= off;
        c->queued -= off;
        c->last_send_ms = sd_mono_ms();
    }
    return c->out.len == 0;
}

/* Wakes the sender for what is queued, or writes it at once when the sender sleeps (a thread
 * hand-off per burst costs more than the write). mu held. */
static void sd__kick_locked(struct sd_wire_conn *c)
{
    if (c->out.len > 0 && c->is_sender_waiting && !c->is_shut && !sd__write_now_locked(c)) {
        pthread_cond_broadcast(&c->cv);
    }
}

/* Queues m; sends it at once when asked to (sd__kick_locked). */
static int sd__send(struct sd_wire_conn *c, const struct sd_wire_msg *m, int wake)
{
    size_t before;
    int rc;

    pthread_mutex_lock(&c->mu);
    if (atomic_load(&c->is_closing)) {
        pthread_mutex_unlock(&c->mu);
        return SD_ECLOSED;
    }
    before = c->out.len;
    rc = sd_wire_encode(&c->out, m);
    if (rc == 0) {
        c->queued += c->out.len - before;
        if (wake) {
            sd__kick_locked(c);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int sd_wire_conn_send(struct sd_wire_conn *c, const struct sd_wire_msg *m)
{
    return sd__send(c, m, 1);
}

int sd_wire_conn_queue(struct sd_wire_conn *c, const struct sd_wire_msg *m)
{
    return sd__send(c, m, 0);
}

void sd_wire_conn_flush(struct sd_wire_conn *c)
{
    pthread_mutex_lock(&c->mu);
    if (!atomic_load(&c->is_closing)) {
        sd__kick_locked(c);
    }
    pthread_mutex_unlock(&c->mu);
}

size_t sd_wire_conn_queued(struct sd_wire_conn *c)
{
    size_t n;

    pthread_mutex_lock(&c->mu);
    n = c->queued;
    pthread_mutex_unlock(&c->mu);
    return n;
}

void sd_wire_conn_set_max_frame(struct sd_wire_conn *c, size_t max_frame)
{
    c->max_frame = max_frame > 0 && max_frame < SD_WIRE_MAX_FRAME ? max_frame : SD_WIRE_MAX_FRAME;
}

void sd_wire_conn_shutdown(struct sd_wire_conn *c, int64_t linger_ms)
{
    int is_reader = pthread_equal(pthread_self(), c->reader);
    int64_t deadline = sd_mono_ms() + (is_reader || linger_ms < 0 ? 0 : linger_ms);
    uint64_t one = 1;

    pthread_mutex_lock(&c->mu);
    c->is_asked = 1;
    atomic_store(&c->is_closing, 1);
    if (deadline < c->linger_deadline_ms) {
        c->linger_deadline_ms = deadline;
        /* a sender in poll() recomputes its timeout (the eventfd cannot fill: it is read) */
        (void)write(c->wake_fd, &one, sizeof(one));
    }
    pthread_cond_broadcast(&c->cv);
    while (!is_reader && !c->is_shut) {
        pthread_cond_wait(&c->cv, &c->mu);
    }
    pthread_mutex_unlock(&c->mu);
}

void sd_wire_conn_free(struct sd_wire_conn *c)
{
    if (c == NULL) {
        return;
    }
    sd_wire_conn_shutdown(c, 0);
    pthread_join(c->reader, NULL);
    pthread_mutex_lock(&c->mu);
    c->is_stopping = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->sender, NULL);
    sd__conn_destroy(c);
}
