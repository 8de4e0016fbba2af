/* test_wire_conn.c: one protocol connection (src/net/sd_wire_conn.c) over socketpair()s and real
 * loopback TCP pairs: frames go both ways whole, once and in per-thread order from several
 * threads at once; senders never block on the socket; a malformed frame, the peer's close and
 * the idle timeout each end the connection once with their reason; keep-alive holds a silent
 * connection open and PINGs are answered; shutdown works from inside on_frame, flushes with a
 * linger and gives up at its deadline; free works without shutdown. A raw socket plays the peer
 * where the test must see or forge the bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/sd_buf.h"
#include "core/sd_cond.h"
#include "core/sd_error.h"
#include "core/sd_time.h"
#include "net/sd_wire.h"
#include "net/sd_wire_conn.h"

#define NTHREADS 4   /* sender threads per side; their frames carry file 1..NTHREADS */
#define BIG_FILE 10  /* APPENDs with a file from here on carry rows_pattern(0, 0) bytes */
#define RAISE_FILE 9 /* on_frame raises the decoder's bound on this file */
#define RAISE_TO 4096

enum pair_kind { PAIR_UNIX, PAIR_TCP };

static const enum pair_kind unix_kind = PAIR_UNIX, tcp_kind = PAIR_TCP;

/* A duration of the test stretched by SD_TEST_TIMEOUT_MULTIPLIER (slow runs: valgrind); the
 * longest any expected event may take is T(10000). */
static int64_t T(int64_t ms)
{
    const char *m = getenv("SD_TEST_TIMEOUT_MULTIPLIER");
    int64_t k = m != NULL ? atoll(m) : 1;

    return ms * (k > 0 ? k : 1);
}

/* What the callbacks of one connection saw; the checks made in the callbacks (which run on the
 * reader thread, where cmocka cannot fail a test) are counted here and asserted afterwards. */
struct rec {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int frames;       /* frames delivered */
    int closes;       /* on_close calls */
    int reason;       /* of the last on_close */
    int bad;          /* frames out of order, cut or of a type that must not arrive */
    int after_close;  /* frames delivered after on_close */
    int wrong_thread; /* callbacks not on the thread named "sd-wire-rd" */
    uint64_t next_seq[NTHREADS];
    size_t big_len;      /* rows of the last APPEND with file >= BIG_FILE */
    uint8_t shutdown_on; /* on_frame replies SYNCED and shuts down on this type */
};

static void rec_init(struct rec *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    sd_cond_init_monotonic(&r->cv);
}

static void rec_fini(struct rec *r)
{
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
}

/* Waits until *field >= want (fields of r, under r->mu); returns whether it got there. */
static int rec_wait(struct rec *r, const int *field, int want, int64_t ms)
{
    int64_t deadline = sd_mono_ms() + ms;
    int ok;

    pthread_mutex_lock(&r->mu);
    while (*field < want && sd_mono_ms() < deadline) {
        sd_cond_wait_until_ms(&r->cv, &r->mu, deadline);
    }
    ok = *field >= want;
    pthread_mutex_unlock(&r->mu);
    return ok;
}

static int rec_get(struct rec *r, const int *field)
{
    int v;

    pthread_mutex_lock(&r->mu);
    v = *field;
    pthread_mutex_unlock(&r->mu);
    return v;
}

/* The rows of frame seq of file: a length and bytes that both depend on (file, seq), so a frame
 * cut, merged or delivered to the wrong place does not compare equal. */
static size_t rows_pattern(uint32_t file, uint64_t seq, uint8_t *out, size_t cap)
{
    size_t len = 1 + (size_t)((file * 7919u + seq * 104729u) % 3000u);

    if (len > cap) {
        len = cap;
    }
    for (size_t i = 0; i < len; i++) {
        out[i] = (uint8_t)(file * 31u + seq * 17u + i);
    }
    return len;
}

static int is_reader_thread(void)
{
    char name[16] = "";

    pthread_getname_np(pthread_self(), name, sizeof(name));
    return strcmp(name, "sd-wire-rd") == 0;
}

static int rows_match(uint32_t file, uint64_t seq, const uint8_t *rows, size_t len)
{
    uint8_t want[4096];
    size_t n = rows_pattern(file, seq, want, sizeof(want));

    return n == len && memcmp(want, rows, len) == 0;
}

static int big_rows_match(const uint8_t *rows, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (rows[i] != (uint8_t)(i * 13u + 5u)) {
            return 0;
        }
    }
    return 1;
}

static void on_frame(void *arg, struct sd_wire_conn *c, const struct sd_wire_msg *m)
{
    struct rec *r = arg;

    pthread_mutex_lock(&r->mu);
    r->wrong_thread += !is_reader_thread();
    r->after_close += r->closes > 0;
    r->frames++;
    if (m->type == SD_WIRE_PING || m->type == SD_WIRE_PONG) {
        r->bad++;
    } else if (m->type == SD_WIRE_APPEND && m->file >= 1 && m->file <= NTHREADS) {
        if (m->seq != r->next_seq[m->file - 1] ||
            !rows_match(m->file, m->seq, m->rows, m->rows_len)) {
            r->bad++;
        }
        r->next_seq[m->file - 1] = m->seq + 1;
    } else if (m->type == SD_WIRE_APPEND && m->file >= BIG_FILE) {
        r->big_len = big_rows_match(m->rows, m->rows_len) ? m->rows_len : 0;
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (m->type == SD_WIRE_APPEND && m->file == RAISE_FILE) {
        sd_wire_conn_set_max_frame(c, RAISE_TO);
    }
    if (r->shutdown_on != 0 && m->type == r->shutdown_on) {
        struct sd_wire_msg reply = {.type = SD_WIRE_SYNCED, .file = m->file, .seq = m->seq};
        int rc = sd_wire_conn_send(c, &reply);
        sd_wire_conn_shutdown(c, 0);
        pthread_mutex_lock(&r->mu);
        r->bad += rc != 0;
        pthread_mutex_unlock(&r->mu);
    }
}

static void on_close(void *arg, struct sd_wire_conn *c, int reason)
{
    struct rec *r = arg;

    (void)c;
    pthread_mutex_lock(&r->mu);
    r->wrong_thread += !is_reader_thread();
    r->closes++;
    r->reason = reason;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static struct sd_wire_conn *start(int fd, struct rec *r, int64_t keepalive_ms, int64_t idle_ms,
                                  size_t max_frame)
{
    struct sd_wire_conn_opts o = {.max_frame = max_frame,
                                  .keepalive_ms = keepalive_ms,
                                  .idle_timeout_ms = idle_ms,
                                  .on_frame = on_frame,
                                  .on_close = on_close,
                                  .arg = r};
    struct sd_wire_conn *c = NULL;

    assert_int_equal(sd_wire_conn_start(fd, &o, &c), 0);
    assert_non_null(c);
    return c;
}

/* Two connected stream sockets: a socketpair, or a loopback TCP connection on a free port. */
static void make_pair(enum pair_kind kind, int fds[2])
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int ls;

    if (kind == PAIR_UNIX) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        return;
    }
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(ls >= 0);
    assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(ls, 1), 0);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &len), 0);
    fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fds[0] >= 0);
    assert_int_equal(connect(fds[0], (struct sockaddr *)&a, sizeof(a)), 0);
    fds[1] = accept(ls, NULL, NULL);
    assert_true(fds[1] >= 0);
    close(ls);
}

static struct sd_wire_msg append_msg(uint32_t file, uint64_t seq, const uint8_t *rows, size_t len)
{
    return (struct sd_wire_msg){.type = SD_WIRE_APPEND,
                                .flags = SD_WIRE_FLAG_ALIGNED,
                                .file = file,
                                .seq = seq,
                                .records = 1,
                                .rows = rows,
                                .rows_len = len};
}

/* ---- the raw peer ---- */

static void raw_write(int fd, const void *p, size_t len)
{
    const char *b = p;

    while (len > 0) {
        ssize_t n = send(fd, b, len, MSG_NOSIGNAL);
        assert_true(n > 0);
        b += n;
        len -= (size_t)n;
    }
}

static void raw_append_frame(struct sd_buf *out, const struct sd_wire_msg *m)
{
    assert_int_equal(sd_wire_encode(out, m), 0);
}

struct raw {
    int fd;
    struct sd_buf in;
    size_t off;
};

/* Reads the next frame from the raw peer: 1 with *m (valid until the next call), 0 at the end
 * of stream, -1 when nothing came within ms or the bytes do not decode. */
static int raw_read(struct raw *r, struct sd_wire_msg *m, int64_t ms)
{
    int64_t deadline = sd_mono_ms() + ms;

    for (;;) {
        size_t used = 0;
        struct pollfd p = {.fd = r->fd, .events = POLLIN};
        int64_t left = deadline - sd_mono_ms();
        ssize_t n;
        int rc;

        assert_int_equal(sd_buf_reserve(&r->in, 256 * 1024), 0);
        rc = sd_wire_decode((const uint8_t *)r->in.data + r->off, r->in.len - r->off,
                            SD_WIRE_MAX_FRAME, m, &used);
        if (rc == 1) {
            r->off += used;
            return 1;
        }
        if (rc < 0 || left <= 0 || poll(&p, 1, (int)left) != 1) {
            return -1;
        }
        memmove(r->in.data, r->in.data + r->off, r->in.len - r->off);
        r->in.len -= r->off;
        r->off = 0;
        assert_int_equal(sd_buf_reserve(&r->in, 256 * 1024), 0);
        n = recv(r->fd, r->in.data + r->in.len, 256 * 1024, 0);
        if (n <= 0) {
            return n == 0 ? 0 : -1;
        }
        r->in.len += (size_t)n;
    }
}

/* ---- frames both ways from several threads ---- */

#define PER_THREAD 1500

struct sender_arg {
    struct sd_wire_conn *c;
    uint32_t file;
    int failures;
};

static void *sender_main(void *arg)
{
    struct sender_arg *a = arg;
    uint8_t rows[4096];

    for (uint64_t seq = 0; seq < PER_THREAD; seq++) {
        size_t len = rows_pattern(a->file, seq, rows, sizeof(rows));
        struct sd_wire_msg m = append_msg(a->file, seq, rows, len);
        a->failures += sd_wire_conn_send(a->c, &m) != 0;
    }
    return NULL;
}

/* Every frame of every sender thread arrived once, whole and in its order; nothing else came;
 * the callbacks ran on the reader thread; the connection ended once, by free. */
static void check_all_arrived(const struct rec *r)
{
    assert_int_equal(r->frames, NTHREADS * PER_THREAD);
    assert_int_equal(r->bad, 0);
    for (int t = 0; t < NTHREADS; t++) {
        assert_int_equal(r->next_seq[t], PER_THREAD);
    }
    assert_int_equal(r->closes, 1);
    assert_int_equal(r->reason, 0);
    assert_int_equal(r->wrong_thread, 0);
}

static void test_frames_both_ways(void **state)
{
    enum pair_kind kind = *(const enum pair_kind *)*state;
    struct rec ra, rb;
    struct sender_arg args[2 * NTHREADS];
    pthread_t th[2 * NTHREADS];
    struct sd_wire_conn *a, *b;
    int fds[2];

    rec_init(&ra);
    rec_init(&rb);
    make_pair(kind, fds);
    a = start(fds[0], &ra, 0, 0, 0);
    b = start(fds[1], &rb, 0, 0, 0);
    for (int i = 0; i < 2 * NTHREADS; i++) {
        args[i] =
            (struct sender_arg){.c = i < NTHREADS ? a : b, .file = (uint32_t)(i % NTHREADS) + 1};
        assert_int_equal(pthread_create(&th[i], NULL, sender_main, &args[i]), 0);
    }
    for (int i = 0; i < 2 * NTHREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    assert_true(rec_wait(&ra, &ra.frames, NTHREADS * PER_THREAD, T(10000)));
    assert_true(rec_wait(&rb, &rb.frames, NTHREADS * PER_THREAD, T(10000)));
    assert_int_equal(sd_wire_conn_queued(a), 0);
    sd_wire_conn_free(a);
    sd_wire_conn_free(b);
    check_all_arrived(&ra);
    check_all_arrived(&rb);
    rec_fini(&ra);
    rec_fini(&rb);
}

/* ---- senders never block ---- */

#define BULK_FRAMES 600
#define BULK_ROWS (16 * 1024)

static void send_bulk(struct sd_wire_conn *c)
{
    static uint8_t rows[BULK_ROWS];

    for (uint64_t seq = 0; seq < BULK_FRAMES; seq++) {
        struct sd_wire_msg m = append_msg(BIG_FILE, seq, rows, sizeof(rows));
        assert_int_equal(sd_wire_conn_send(c, &m), 0);
    }
}

/* Reads the bulk frames on the raw peer until the end of stream; returns how many came whole
 * and in order (stops counting at the first one that did not). */
static int read_bulk(struct raw *r)
{
    struct sd_wire_msg m;
    int n = 0;

    while (raw_read(r, &m, T(10000)) == 1) {
        if (m.type == SD_WIRE_APPEND && m.seq == (uint64_t)n && m.rows_len == BULK_ROWS) {
            n++;
        }
    }
    return n;
}

static void test_queue_grows_then_drains(void **state)
{
    struct rec r;
    struct raw peer = {.in = SD_BUF_INIT};
    struct sd_wire_msg m;
    struct sd_wire_conn *c;
    int fds[2];
    int64_t t0;

    (void)state;
    rec_init(&r);
    make_pair(PAIR_UNIX, fds);
    peer.fd = fds[1];
    c = start(fds[0], &r, 0, 0, 0);
    t0 = sd_mono_ms();
    send_bulk(c); /* ~10 MB to a peer that does not read: far beyond the socket's buffer */
    assert_true(sd_mono_ms() - t0 < T(5000));
    assert_true(sd_wire_conn_queued(c) > 4 * 1024 * 1024);
    for (int i = 0; i < BULK_FRAMES; i++) {
        assert_int_equal(raw_read(&peer, &m, T(10000)), 1);
        assert_int_equal(m.seq, (uint64_t)i);
        assert_int_equal(m.rows_len, BULK_ROWS);
    }
    t0 = sd_mono_ms();
    while (sd_wire_conn_queued(c) != 0 && sd_mono_ms() - t0 < T(10000)) {
        usleep(1000);
    }
    assert_int_equal(sd_wire_conn_queued(c), 0);
    sd_wire_conn_free(c);
    close(peer.fd);
    sd_buf_fini(&peer.in);
    rec_fini(&r);
}

/* ---- how a connection ends ---- */

static void test_malformed_frame_closes(void **state)
{
    enum pair_kind kind = *(const enum pair_kind *)*state;
    struct rec r;
    struct sd_buf out = SD_BUF_INIT;
    struct raw peer = {.in = SD_BUF_INIT};
    struct sd_wire_msg m;
    uint8_t rows[4096];
    struct sd_wire_conn *c;
    int fds[2];
    size_t len = rows_pattern(1, 0, rows, sizeof(rows)), second;

    rec_init(&r);
    make_pair(kind, fds);
    peer.fd = fds[1];
    c = start(fds[0], &r, 0, 0, 0);
    /* a valid frame, then a header of an unknown type, in one write */
    m = append_msg(1, 0, rows, len);
    raw_append_frame(&out, &m);
    second = out.len;
    raw_append_frame(&out, &m);
    out.data[second + 4] = (char)0xee; /* the type byte */
    raw_write(peer.fd, out.data, out.len);
    assert_true(rec_wait(&r, &r.closes, 1, T(10000)));
    assert_int_equal(rec_get(&r, &r.reason), SD_EINVAL);
    assert_int_equal(rec_get(&r, &r.frames), 1);
    /* the connection is over: sends refused, the peer sees the end, later frames go nowhere */
    m = append_msg(1, 1, rows, rows_pattern(1, 1, rows, sizeof(rows)));
    assert_int_equal(sd_wire_conn_send(c, &m), SD_ECLOSED);
    assert_int_equal(raw_read(&peer, &m, T(10000)), 0);
    sd_buf_reset(&out);
    raw_append_frame(&out, &m);
    (void)send(peer.fd, out.data, out.len, MSG_NOSIGNAL);
    usleep(100 * 1000);
    sd_wire_conn_free(c);
    assert_int_equal(r.frames, 1);
    assert_int_equal(r.closes, 1);
    assert_int_equal(r.after_close, 0);
    assert_int_equal(r.wrong_thread, 0);
    close(peer.fd);
    sd_buf_fini(&out);
    sd_buf_fini(&peer.in);
    rec_fini(&r);
}

static void test_peer_close(void **state)
{
    enum pair_kind kind = *(const enum pair_kind *)*state;
    struct rec r;
    struct raw peer = {.in = SD_BUF_INIT};
    struct sd_wire_msg m = {.type = SD_WIRE_SYNC, .file = 1, .seq = 1};
    struct sd_wire_conn *c;
    int fds[2];

    rec_init(&r);
    make_pair(kind, fds);
    peer.fd = fds[1];
    c = start(fds[0], &r, 0, 0, 0);
    assert_int_equal(sd_wire_conn_send(c, &m), 0);
    assert_int_equal(raw_read(&peer, &m, T(10000)), 1); /* read: a TCP close then sends no RST */
    assert_int_equal(m.type, SD_WIRE_SYNC);
    close(peer.fd);
    sd_buf_fini(&peer.in);
    assert_true(rec_wait(&r, &r.closes, 1, T(10000)));
    assert_int_equal(rec_get(&r, &r.reason), 0);
    assert_int_equal(sd_wire_conn_send(c, &m), SD_ECLOSED);
    sd_wire_conn_free(c);
    assert_int_equal(r.closes, 1);
    assert_int_equal(r.frames, 0);
    rec_fini(&r);
}

/* A TCP peer that resets the connection: an I/O error, reported as -errno. */
static void test_peer_reset(void **state)
{
    struct rec r;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    struct sd_wire_conn *c;
    int fds[2];

    (void)state;
    rec_init(&r);
    make_pair(PAIR_TCP, fds);
    c = start(fds[0], &r, 0, 0, 0);
    assert_int_equal(setsockopt(fds[1], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(fds[1]);
    assert_true(rec_wait(&r, &r.closes, 1, T(10000)));
    sd_wire_conn_free(c);
    assert_int_equal(r.reason, -ECONNRESET);
    assert_int_equal(r.closes, 1);
    rec_fini(&r);
}

static void test_idle_timeout(void **state)
{
    struct rec r;
    struct sd_wire_conn *c;
    int fds[2];
    int64_t t0 = sd_mono_ms(), took;

    (void)state;
    rec_init(&r);
    make_pair(PAIR_UNIX, fds);
    c = start(fds[0], &r, 0, T(200), 0);
    assert_true(rec_wait(&r, &r.closes, 1, T(10000)));
    took = sd_mono_ms() - t0;
    assert_int_equal(rec_get(&r, &r.reason), -ETIMEDOUT);
    assert_true(took >= T(200) - 10);
    assert_true(took < T(5000));
    sd_wire_conn_free(c);
    assert_int_equal(r.closes, 1);
    close(fds[1]);
    rec_fini(&r);
}

/* A keep-alive of T(50) ms on one side holds the other's T(250) ms idle timeout off for T(1000) ms,
 * and neither side delivers the PINGs and PONGs. */
static void test_keepalive_holds_silent_connection(void **state)
{
    enum pair_kind kind = *(const enum pair_kind *)*state;
    struct rec ra, rb;
    struct sd_wire_conn *a, *b;
    int fds[2];

    rec_init(&ra);
    rec_init(&rb);
    make_pair(kind, fds);
    a = start(fds[0], &ra, T(50), 0, 0);
    b = start(fds[1], &rb, 0, T(250), 0);
    usleep((useconds_t)T(1000) * 1000);
    assert_int_equal(rec_get(&ra, &ra.closes), 0);
    assert_int_equal(rec_get(&rb, &rb.closes), 0);
    sd_wire_conn_free(a);
    sd_wire_conn_free(b);
    assert_int_equal(ra.frames, 0);
    assert_int_equal(rb.frames, 0);
    rec_fini(&ra);
    rec_fini(&rb);
}

static void test_keepalive_sends_ping(void **state)
{
    struct rec r;
    struct raw peer = {.in = SD_BUF_INIT};
    struct sd_wire_msg m;
    struct sd_wire_conn *c;
    int fds[2];
    int64_t t0 = sd_mono_ms();

    (void)state;
    rec_init(&r);
    make_pair(PAIR_UNIX, fds);
    peer.fd = fds[1];
    c = start(fds[0], &r, T(100), 0, 0);
    assert_int_equal(raw_read(&peer, &m, T(10000)), 1);
    assert_int_equal(m.type, SD_WIRE_PING);
    assert_true(sd_mono_ms() - t0 >= T(100) - 10);
    sd_wire_conn_free(c);
    close(peer.fd);
    sd_buf_fini(&peer.in);
    rec_fini(&r);
}

static void test_ping_answered_by_pong(void **state)
{
    enum pair_kind kind = *(const enum pair_kind *)*state;
    struct rec r;
    struct sd_buf out = SD_BUF_INIT;
    struct raw peer = {.in = SD_BUF_INIT};
    struct sd_wire_msg m = {.type = SD_WIRE_PING, .seq = 0x1122334455667788ull};
    struct sd_wire_msg pong = {.type = SD_WIRE_PONG, .seq = 7};
    struct sd_wire_conn *c;
    int fds[2];

    rec_init(&r);
    make_pair(kind, fds);
    peer.fd = fds[1];
    c = start(fds[0], &r, 0, 0, 0);
    raw_append_frame(&out, &pong); /* swallowed */
    raw_append_frame(&out, &m);
    raw_write(peer.fd, out.data, out.len);
    assert_int_equal(raw_read(&peer, &m, T(10000)), 1);
    assert_int_equal(m.type, SD_WIRE_PONG);
    assert_int_equal(m.seq, 0x1122334455667788ull);
    sd_wire_conn_free(c);
    assert_int_equal(r.frames, 0);
    assert_int_equal(r.closes, 1);
    close(peer.fd);
    sd_buf_fini(&out);
    sd_buf_fini(&peer.in);
    rec_fini(&r);
}

static void test_send_refuses_bad_message(void **state)
{
    struct rec r;
    struct sd_wire_msg m = {.type = SD_WIRE_HELLO,
                            .version_min = 1,
                            .version_max = 1,
                            .text = "bad id!",
                            .text_len = 7};
    struct sd_wire_conn *c;
    int fds[2];

    (void)state;
    rec_init(&r);
    make_pair(PAIR_UNIX, fds);
    c = start(fds[0], &r, 0, 0, 0);
    assert_int_equal(sd_wire_conn_send(c, &m), SD_EINVAL);
    assert_int_equal(sd_wire_conn_queued(c), 0);
    sd_wire_conn_free(c);
    close(fds[1]);
    rec_fini(&r);
}

/* The decoder's bound: opts.max_frame at first, raised from on_frame, refused above it. */
static void test_max_frame(void **state)
{
    struct rec r;
    struct sd_buf out = SD_BUF_INIT;
    static uint8_t rows[RAISE_TO];
    struct sd_wire_msg m;
    struct sd_wire_conn *c;
    int fds[2];

    (void)state;
    for (size_t i = 0; i < sizeof(rows); i++) {
        rows[i] = (uint8_t)(i * 13u + 5u);
    }
    rec_init(&r);
    make_pair(PAIR_UNIX, fds);
    c = start(fds[0], &r, 0, 0, 100);
    m = append_msg(RAISE_FILE, 0, rows, 10);
    raw_append_frame(&out, &m);
    m = append_msg(BIG_FILE, 0, rows, 1000); /* beyond 100, within RAISE_TO */
    raw_append_frame(&out, &m);
    raw_write(fds[1], out.data, out.len);
    assert_true(rec_wait(&r, &r.frames, 2, T(10000)));
    assert_int_equal(rec_get(&r, &r.closes), 0);
    sd_buf_reset(&out);
    m = append_msg(BIG_FILE, 1, rows, RAISE_TO); /* header + payload > RAISE_TO */
    raw_append_frame(&out, &m);
    raw_write(fds[1], out.data, out.len);
    assert_true(rec_wait(&r, &r.closes, 1, T(10000)));
    sd_wire_conn_free(c);
    assert_int_equal(r.reason, SD_EINVAL);
    assert_int_equal(r.frames, 2);
    assert_int_equal(r.big_len, 1000);
    close(fds[1]);
    sd_buf_fini(&out);
    rec_fini(&r);
}

/* A frame of the largest size arrives whole over many reads. */
static void test_largest_frame(void **state)
{
    enum pair_kind kind = *(const enum pair_kind *)*state;
    struct rec r;
    struct sd_wire_msg m;
    struct sd_wire_conn *a, *b;
    size_t len = SD_WIRE_MAX_FRAME - 12; /* the APPEND's seq and records */
    uint8_t *rows = malloc(len + 1);     /* one more for the frame that does not fit */
    int fds[2];

    assert_non_null(rows);
    for (size_t i = 0; i <= len; i++) {
        rows[i] = (uint8_t)(i * 13u + 5u);
    }
    rec_init(&r);
    make_pair(kind, fds);
    a = start(fds[0], &r, 0, 0, 0);
    b = start(fds[1], &r, 0, 0, 0);
    m = append_msg(BIG_FILE, 0, rows, len);
    assert_int_equal(sd_wire_conn_send(a, &m), 0);
    m.rows_len = len + 1;
    assert_int_equal(sd_wire_conn_send(a, &m), SD_EINVAL);
    assert_true(rec_wait(&r, &r.frames, 1, T(10000)));
    sd_wire_conn_free(a);
    sd_wire_conn_free(b);
    assert_int_equal(r.big_len, len);
    assert_int_equal(r.frames, 1);
    free(rows);
    rec_fini(&r);
}

/* ---- shutdown and free ---- */

static void test_shutdown_from_on_frame(void **state)
{
    enum pair_kind kind = *(const enum pair_kind *)*state;
    struct rec r;
    struct sd_buf out = SD_BUF_INIT;
    struct raw peer = {.in = SD_BUF_INIT};
    struct sd_wire_msg m = {.type = SD_WIRE_SYNC, .file = 3, .seq = 5};
    uint8_t rows[4096];
    struct sd_wire_conn *c;
    int fds[2];

    rec_init(&r);
    r.shutdown_on = SD_WIRE_SYNC;
    make_pair(kind, fds);
    peer.fd = fds[1];
    c = start(fds[0], &r, 0, 0, 0);
    raw_append_frame(&out, &m);
    m = append_msg(1, 0, rows, rows_pattern(1, 0, rows, sizeof(rows)));
    raw_append_frame(&out, &m); /* comes after the shutdown: not delivered */
    raw_write(peer.fd, out.data, out.len);
    assert_true(rec_wait(&r, &r.closes, 1, T(10000)));
    assert_int_equal(rec_get(&r, &r.reason), 0);
    /* the reply queued before the shutdown arrives, then the end */
    assert_int_equal(raw_read(&peer, &m, T(10000)), 1);
    assert_int_equal(m.type, SD_WIRE_SYNCED);
    assert_int_equal(m.file, 3);
    assert_int_equal(m.seq, 5);
    assert_int_equal(raw_read(&peer, &m, T(10000)), 0);
    sd_wire_conn_free(c);
    assert_int_equal(r.frames, 1);
    assert_int_equal(r.closes, 1);
    assert_int_equal(r.wrong_thread, 0);
    close(peer.fd);
    sd_buf_fini(&out);
    sd_buf_fini(&peer.in);
    rec_fini(&r);
}

static void test_free_without_shutdown(void **state)
{
    enum pair_kind kind = *(const enum pair_kind *)*state;
    struct rec r;
    struct raw peer = {.in = SD_BUF_INIT};
    struct sd_wire_msg m = {.type = SD_WIRE_SYNC, .file = 1, .seq = 1};
    struct sd_wire_conn *c;
    int fds[2];
    int rc;

    rec_init(&r);
    make_pair(kind, fds);
    peer.fd = fds[1];
    c = start(fds[0], &r, 0, 0, 0);
    assert_int_equal(sd_wire_conn_send(c, &m), 0);
    sd_wire_conn_free(c);
    /* on_close came before free returned */
    assert_int_equal(r.closes, 1);
    assert_int_equal(r.reason, 0);
    /* the peer sees the end (after the SYNC if it went out in time) */
    rc = raw_read(&peer, &m, T(10000));
    if (rc == 1) {
        assert_int_equal(m.type, SD_WIRE_SYNC);
        rc = raw_read(&peer, &m, T(10000));
    }
    assert_int_equal(rc, 0);
    close(peer.fd);
    sd_buf_fini(&peer.in);
    rec_fini(&r);
}

struct bulk_reader {
    struct raw peer;
    int64_t delay_ms;
    int frames;
};

static void *bulk_reader_main(void *arg)
{
    struct bulk_reader *b = arg;

    usleep((useconds_t)b->delay_ms * 1000);
    b->frames = read_bulk(&b->peer);
    return NULL;
}

static void test_shutdown_linger_flushes(void **state)
{
    enum pair_kind kind = *(const enum pair_kind *)*state;
    struct rec r;
    struct bulk_reader br = {.peer = {.in = SD_BUF_INIT}, .delay_ms = 300};
    struct sd_wire_msg m = {.type = SD_WIRE_SYNC, .file = 1, .seq = 1};
    struct sd_wire_conn *c;
    pthread_t th;
    int fds[2];

    rec_init(&r);
    make_pair(kind, fds);
    br.peer.fd = fds[1];
    c = start(fds[0], &r, 0, 0, 0);
    send_bulk(c);
    assert_int_equal(pthread_create(&th, NULL, bulk_reader_main, &br), 0);
    sd_wire_conn_shutdown(c, T(10000)); /* waits for the peer that starts reading in 300 ms */
    assert_int_equal(sd_wire_conn_queued(c), 0);
    assert_int_equal(sd_wire_conn_send(c, &m), SD_ECLOSED);
    pthread_join(th, NULL);
    assert_int_equal(br.frames, BULK_FRAMES);
    assert_true(rec_wait(&r, &r.closes, 1, T(10000)));
    sd_wire_conn_shutdown(c, T(10000)); /* idempotent */
    sd_wire_conn_free(c);
    assert_int_equal(r.closes, 1);
    assert_int_equal(r.reason, 0);
    close(fds[1]);
    sd_buf_fini(&br.peer.in);
    rec_fini(&r);
}

/* A peer that never reads: shutdown returns at its linger deadline, not later. */
static void test_shutdown_linger_bounded(void **state)
{
    enum pair_kind kind = *(const enum pair_kind *)*state;
    struct rec r;
    struct sd_wire_conn *c;
    int fds[2];
    int64_t t0, took;

    rec_init(&r);
    make_pair(kind, fds);
    c = start(fds[0], &r, 0, 0, 0);
    send_bulk(c);
    t0 = sd_mono_ms();
    sd_wire_conn_shutdown(c, T(300));
    took = sd_mono_ms() - t0;
    assert_true(took >= T(300) - 10);
    assert_true(took < T(5000));
    assert_true(rec_wait(&r, &r.closes, 1, T(10000)));
    assert_int_equal(rec_get(&r, &r.reason), 0);
    sd_wire_conn_free(c);
    close(fds[1]);
    rec_fini(&r);
}

/* Once a shutdown was asked the reason is 0, also when the idle timeout strikes during the
 * linger (a peer that neither reads nor writes). */
static void test_shutdown_reason_is_zero(void **state)
{
    struct rec r;
    struct sd_wire_conn *c;
    int fds[2];
    int64_t t0, took;

    (void)state;
    rec_init(&r);
    make_pair(PAIR_UNIX, fds);
    c = start(fds[0], &r, 0, T(1000), 0);
    send_bulk(c);
    t0 = sd_mono_ms();
    sd_wire_conn_shutdown(c, T(8000));
    took = sd_mono_ms() - t0;
    assert_true(took < T(4000)); /* the idle timeout ended it, not the linger */
    assert_true(rec_wait(&r, &r.closes, 1, T(10000)));
    sd_wire_conn_free(c);
    assert_int_equal(r.reason, 0);
    close(fds[1]);
    rec_fini(&r);
}

static void test_tcp_nodelay(void **state)
{
    struct rec r;
    struct sd_wire_conn *c;
    int fds[2], v = 0;
    socklen_t len = sizeof(v);

    (void)state;
    rec_init(&r);
    make_pair(PAIR_TCP, fds);
    c = start(fds[0], &r, 0, 0, 0);
    assert_int_equal(getsockopt(fds[0], IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
    assert_int_equal(v, 1);
    sd_wire_conn_free(c);
    close(fds[1]);
    rec_fini(&r);
}

/* A test run over a socketpair and over loopback TCP, named by its pair. */
#define BOTH(t)                                                                                    \
    {#t "/unix", t, NULL, NULL, (void *)&unix_kind},                                               \
    {                                                                                              \
#t "/tcp", t, NULL, NULL, (void *)&tcp_kind                                                \
    }

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_frames_both_ways),
        cmocka_unit_test(test_queue_grows_then_drains),
        BOTH(test_malformed_frame_closes),
        BOTH(test_peer_close),
        cmocka_unit_test(test_peer_reset),
        cmocka_unit_test(test_idle_timeout),
        BOTH(test_keepalive_holds_silent_connection),
        cmocka_unit_test(test_keepalive_sends_ping),
        BOTH(test_ping_answered_by_pong),
        cmocka_unit_test(test_send_refuses_bad_message),
        cmocka_unit_test(test_max_frame),
        BOTH(test_largest_frame),
        BOTH(test_shutdown_from_on_frame),
        BOTH(test_free_without_shutdown),
        BOTH(test_shutdown_linger_flushes),
        BOTH(test_shutdown_linger_bounded),
        cmocka_unit_test(test_shutdown_reason_is_zero),
        cmocka_unit_test(test_tcp_nodelay),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
