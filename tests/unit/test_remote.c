/* test_remote.c: the source -> writer path in one process: a source node's files on a writer
 * node (storage/sd_remote) written through the writer's listener (storage/sd_receiver) into a
 * real writer storage (sd_storage_open) over the embedded state store. It proves the failure
 * rules of docs/PROTOCOL.md: results come in order and the file holds exactly what was reported
 * durable; a file the writer cannot open never takes appends; a writer that dies, goes silent
 * or is no longer announced fails (never acknowledges) what was in flight; the file comes back
 * when a writer is reachable at the address again (reconnects back off, also when the handshake
 * never completes; a reconnect takes the file over from a connection the writer still holds);
 * a full window refuses appends; a graceful stop (DRAIN) loses nothing and its files reopen when
 * the writer is back; a bad peer loses only its own connection (its own files are closed); no
 * result comes after sd_remote_close returned.
 *
 * DESIGN: where a test must hold frames in flight, a proxy thread stands between the source and
 * the receiver at a fixed loopback port (the writer's address as the source knows it): it can
 * stop forwarding either direction (the bytes wait in the socket buffers), cut every connection,
 * stop and restart listening on the same port, and forward to another receiver. Callbacks run on
 * reader threads, where cmocka cannot fail a test: they record what they saw and the tests
 * assert it afterwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_inflate.h"
#include "test_tmpdir.h"
#include "config/sd_config.h"
#include "core/sd_buf.h"
#include "core/sd_cond.h"
#include "core/sd_error.h"
#include "core/sd_fs.h"
#include "core/sd_health.h"
#include "core/sd_time.h"
#include "net/sd_wire.h"
#include "state/sd_state.h"
#include "storage/sd_files.h"
#include "storage/sd_receiver.h"
#include "storage/sd_remote.h"
#include "storage/sd_storage.h"

#include "sink_files_fixture.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define WRITER_ID "w1"
#define SOURCE_ID "source-1"
#define WAIT_MS 10000 /* the longest any expected event may take */
#define MAX_PAIRS 8

/* ---- sync results of one file, as the callback saw them ---- */

struct counts {
    int calls;
    uint64_t last;    /* seq of the last result */
    uint64_t durable; /* highest seq reported durable */
    uint64_t failed;  /* highest seq reported failed */
    int nfailed;      /* failure results */
    int disorder;     /* results whose seq did not increase */
    int after_close;  /* results delivered after the test set `closed` */
};

struct rec {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct counts c;
    atomic_int closed; /* set by the test once sd_remote_close returned */
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

static void on_sync(void *arg, uint64_t seq, int rc)
{
    struct rec *r = arg;

    pthread_mutex_lock(&r->mu);
    r->c.calls++;
    r->c.disorder += seq <= r->c.last;
    r->c.after_close += atomic_load(&r->closed);
    r->c.last = seq;
    if (rc == 0) {
        r->c.durable = seq;
    } else {
        r->c.failed = seq;
        r->c.nfailed++;
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Waits until a result covers seq; returns whether one did in time. */
static int rec_wait(struct rec *r, uint64_t seq)
{
    int64_t deadline = sd_mono_ms() + WAIT_MS;
    int ok;

    pthread_mutex_lock(&r->mu);
    while (r->c.last < seq && sd_cond_wait_until_ms(&r->cv, &r->mu, deadline) != -ETIMEDOUT) {
    }
    ok = r->c.last >= seq;
    pthread_mutex_unlock(&r->mu);
    return ok;
}

/* A copy of r's counters (the callback may run meanwhile). */
static struct counts rec_get(struct rec *r)
{
    struct counts c;

    pthread_mutex_lock(&r->mu);
    c = r->c;
    pthread_mutex_unlock(&r->mu);
    return c;
}

/* ---- rows ---- */

/* Row i of a test: one quoted CSV field and a newline. */
static size_t row(char *out, size_t cap, const char *tag, int i)
{
    return (size_t)snprintf(out, cap, "\"%s-%d\"\n", tag, i);
}

/* Appends rows from..to (one record each), asserts each gets the next local seq, and sends them
 * (sd_remote_flush, as the data endpoint does after each round of its loop). */
static void append_rows(struct sd_remote *remote, struct sd_remote_file *f, const char *tag,
                        int from, int to, uint64_t first_seq)
{
    for (int i = from; i <= to; i++) {
        char buf[64];
        size_t len = row(buf, sizeof(buf), tag, i);
        uint64_t seq = 0;
        assert_int_equal(sd_remote_append(f, buf, len, 1, &seq), 0);
        assert_int_equal(seq, first_seq + (uint64_t)(i - from));
    }
    sd_remote_flush(remote);
}

/* The bytes of rows from..to. */
static void expect_rows(struct sd_buf *out, const char *tag, int from, int to)
{
    for (int i = from; i <= to; i++) {
        char buf[64];
        sd_buf_append(out, buf, row(buf, sizeof(buf), tag, i));
    }
}

/* ---- the writer node, its storage and a "writing" slice on its volume ---- */

struct env {
    char dir[512];
    struct sd_config *cfg;
    struct sd_state *st;
    struct sd_health *health;
    struct sd_storage *storage;
    struct sd_receiver *recv;
    char slice_key[512];   /* the writing slice on the writer's volume */
    char slice_dir[1024];  /* its directory */
    char foreign_key[512]; /* with a foreign volume: the writing slice on it */
    struct sd_remote *remote;
};

/* Announces a volume of another writer node (its slices are not on ours). */
static void announce_foreign(struct env *e)
{
    json_t *v = json_pack("{s:s, s:s, s:s, s:s, s:s}", "volumeId", "volX", "nodeId", "w2", "path",
                          "/volumes/x", "type", "default", "label", "x");

    fixture_put_json(e->st, "storage/volume/writer/volX", v);
    json_decref(v);
}

/* The writing slice on our volume (mine != 0) or on another node's: its key and directory. */
static void find_slice(struct env *e, int mine, char *key, size_t key_len, char *dir,
                       size_t dir_len)
{
    const char *prefix = "storage/slice/level/local/";
    struct sd_kvs kvs;
    int found = 0;

    memset(&kvs, 0, sizeof(kvs));
    assert_int_equal(sd_state_range(e->st, prefix, 0, &kvs), 0);
    for (size_t i = 0; i < kvs.n; i++) {
        json_t *j = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
        const char *state = json_string_value(json_object_get(j, "state"));
        const char *vol = json_string_value(json_object_get(j, "volumeId"));
        const char *d = json_string_value(json_object_get(json_object_get(j, "local"), "dir"));
        if (state != NULL && strcmp(state, "writing") == 0 &&
            !!sd_storage_has_volume(e->storage, vol) == !!mine) {
            snprintf(key, key_len, "%s", kvs.items[i].key + strlen(prefix));
            if (dir != NULL) {
                snprintf(dir, dir_len, "%s", d);
            }
            found++;
        }
        json_decref(j);
    }
    sd_kvs_free(&kvs);
    assert_int_equal(found, 1);
}

/* Stores a second writing slice on our volume, a copy of the first with its own key and
 * directory (as another sink's would be); its key goes to out. */
static void put_second_slice(struct env *e, char *out, size_t len)
{
    char key[800], dir[1100];
    struct sd_kv kv;
    json_t *j;

    snprintf(key, sizeof(key), "storage/slice/level/local/%s", e->slice_key);
    memset(&kv, 0, sizeof(kv));
    assert_int_equal(sd_state_get(e->st, key, &kv), 0);
    j = json_loadb(kv.value, kv.value_len, 0, NULL);
    assert_non_null(j);
    snprintf(dir, sizeof(dir), "%s-second", e->slice_dir);
    json_object_set_new(json_object_get(j, "local"), "dir", json_string(dir));
    snprintf(out, len, "%s-second", e->slice_key);
    snprintf(key, sizeof(key), "storage/slice/level/local/%s", out);
    fixture_put_json(e->st, key, j);
    json_decref(j);
    sd_kv_free(&kv);
}

static void env_start_receiver(struct env *e, struct sd_receiver **out)
{
    struct sd_buf err = SD_BUF_INIT;

    assert_int_equal(sd_receiver_start(e->cfg, e->storage, WRITER_ID, out, &err), 0);
    sd_buf_fini(&err);
}

/* Tells the source node where writer node WRITER_ID listens. */
static void env_point_at(struct env *e, const char *address)
{
    json_t *writers = json_pack("{s:s}", WRITER_ID, address);

    sd_remote_set_writers(e->remote, writers);
    json_decref(writers);
}

/* The source node's options unless a test says otherwise (the reference's defaults). */
static const struct sd_remote_opts default_remote = {
    .node_id = SOURCE_ID,
    .keepalive_ms = 5000,
    .window = 8 * 1024 * 1024,
    .close_timeout_ms = WAIT_MS,
};

/* A writer node "w1" (storage + receiver on 127.0.0.1:0) with a file of the fixture's sink that
 * has a writing slice on its volume (and one on another node's volume with foreign), and a
 * source node SOURCE_ID with options remote (NULL: default_remote). The source is not pointed
 * at the writer yet. */
static struct env *env_open(int foreign, const struct sd_remote_opts *remote)
{
    struct env *e = calloc(1, sizeof(*e));
    char data_dir_set[600];
    const char *sets[] = {
        data_dir_set,
        "storage.level.local.writer.allocation.enabled=false",
        "storage.diskCleanup.enabled=false",
        "storage.statistics.sync.interval=100ms",
        "storage.level.local.writer.network.listen=127.0.0.1:0",
        "storage.level.local.writer.network.shutdownTimeout=10s",
    };
    struct sd_config_args args = {NULL, NULL, sets, sizeof(sets) / sizeof(sets[0]), NULL};
    struct sd_buf err = SD_BUF_INIT;

    assert_non_null(e);
    sd_test_mkdtemp(e->dir, sizeof(e->dir), "remote");
    snprintf(data_dir_set, sizeof(data_dir_set), "dataDir=%s", e->dir);
    assert_int_equal(sd_config_load(&args, &e->cfg, &err), 0);
    assert_int_equal(sd_state_open(e->cfg, &e->st), 0);
    e->health = sd_health_create();
    assert_int_equal(sd_storage_open(e->cfg, e->st, e->health, WRITER_ID, &e->storage, &err), 0);
    fixture_define(e->st, e->storage);
    if (foreign) {
        announce_foreign(e);
    }
    free(fixture_open_file(e->st, e->cfg, NULL));
    find_slice(e, 1, e->slice_key, sizeof(e->slice_key), e->slice_dir, sizeof(e->slice_dir));
    if (foreign) {
        find_slice(e, 0, e->foreign_key, sizeof(e->foreign_key), NULL, 0);
    }
    env_start_receiver(e, &e->recv);
    assert_int_equal(sd_remote_create(remote != NULL ? remote : &default_remote, &e->remote), 0);
    sd_buf_fini(&err);
    return e;
}

static void env_close(struct env *e)
{
    sd_remote_destroy(e->remote);
    sd_receiver_stop(e->recv);
    sd_storage_close(e->storage);
    sd_health_destroy(e->health);
    sd_state_close(e->st);
    sd_config_destroy(e->cfg);
    sd_rm_rf(e->dir);
    free(e);
}

/* Opens SOURCE_ID's file of the writing slice and waits until it takes appends. */
static struct sd_remote_file *open_ready(struct env *e, struct rec *r)
{
    struct sd_remote_file *f = sd_remote_open(e->remote, WRITER_ID, e->slice_key, on_sync, r);

    assert_non_null(f);
    assert_int_equal(sd_remote_wait_open(f, sd_mono_ms() + WAIT_MS), 1);
    assert_int_equal(sd_remote_file_is_ready(f), 1);
    return f;
}

/* 1 if node's file in the slice directory is complete gzip members that decode to want. */
static int file_holds(struct env *e, const char *node, const struct sd_buf *want)
{
    char path[1200];
    char *data = NULL;
    size_t len = 0;
    struct sd_buf got = SD_BUF_INIT;
    int ok;

    snprintf(path, sizeof(path), "%s/.slice-%s.csv.gz", e->slice_dir, node);
    ok = sd_read_file(path, &data, &len) == 0 && sd_test_inflate_all(data, len, &got) >= 1 &&
         got.len == want->len && memcmp(got.data, want->data, want->len) == 0;
    free(data);
    sd_buf_fini(&got);
    return ok;
}

/* The source node's file decodes to want. */
static void assert_file_holds(struct env *e, const struct sd_buf *want)
{
    assert_true(file_holds(e, SOURCE_ID, want));
}

/* recordsCount of the source node's statistics of the slice (-1 when there are none). */
static json_int_t stats_records(struct env *e)
{
    char key[700];
    struct sd_kv kv;
    json_int_t n = -1;

    snprintf(key, sizeof(key), "storage/stats/local/%s/" SOURCE_ID, e->slice_key);
    memset(&kv, 0, sizeof(kv));
    if (sd_state_get(e->st, key, &kv) == 0) {
        json_t *j = json_loadb(kv.value, kv.value_len, 0, NULL);
        n = json_integer_value(json_object_get(j, "recordsCount"));
        json_decref(j);
    }
    sd_kv_free(&kv);
    return n;
}

/* Waits until the statistics say want records are durable on the writer. */
static int stats_wait(struct env *e, json_int_t want)
{
    int64_t deadline = sd_mono_ms() + WAIT_MS;

    while (stats_records(e) != want && sd_mono_ms() < deadline) {
        usleep(20 * 1000);
    }
    return stats_records(e) == want;
}

/* ---- sockets ---- */

/* A blocking TCP connection to "127.0.0.1:port" text, or -1. */
static int connect_to(const char *address)
{
    const char *colon = strrchr(address, ':');
    struct sockaddr_in sa;
    int fd;

    assert_non_null(colon);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static int write_all(int fd, const void *p, size_t len)
{
    const char *c = p;

    while (len > 0) {
        ssize_t n = send(fd, c, len, MSG_NOSIGNAL);
        if (n <= 0) {
            return -1;
        }
        c += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---- a proxy at a fixed port in front of a receiver ---- */

struct proxy {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int port;
    char target[320]; /* the receiver it forwards to */
    int want_listen;
    int hold_up;         /* source -> writer bytes wait */
    int hold_down;       /* writer -> source bytes wait */
    int want_cut;        /* close every connection */
    int want_cut_source; /* close the source's side of every connection only */
    int want_stop;
    uint64_t loops; /* poll rounds begun with the requests above */
    int accepts;    /* connections accepted */
    int held_down;  /* bytes from the receivers waiting in the proxy's sockets */
    /* the thread's own */
    int listen_fd;
    int down[MAX_PAIRS], up[MAX_PAIRS]; /* the source's side, the receiver's side */
    int npairs;
    int zombies[MAX_PAIRS]; /* receiver's sides left open, never read, closed at the stop */
    int nzombies;
};

static int proxy_bind(int port)
{
    struct sockaddr_in sa;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 16) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void proxy_close_pair(struct proxy *p, int i)
{
    close(p->down[i]);
    if (p->up[i] >= 0) {
        close(p->up[i]);
    }
    p->npairs--;
    p->down[i] = p->down[p->npairs];
    p->up[i] = p->up[p->npairs];
}

/* Moves what fd has to the other side of pair i; 0, or -1 when the pair ended (closed). */
static int proxy_pump(struct proxy *p, int i, int from_down)
{
    char buf[65536];
    ssize_t n = read(from_down ? p->down[i] : p->up[i], buf, sizeof(buf));

    if (n <= 0 || write_all(from_down ? p->up[i] : p->down[i], buf, (size_t)n) != 0) {
        proxy_close_pair(p, i);
        return -1;
    }
    return 0;
}

static void *proxy_main(void *arg)
{
    struct proxy *p = arg;

    for (;;) {
        struct pollfd fds[1 + 2 * MAX_PAIRS];
        int owner[1 + 2 * MAX_PAIRS]; /* pair index * 2 + (1 = from the source's side) */
        int nfds = 0, hold_up, hold_down;
        char target[320];

        pthread_mutex_lock(&p->mu);
        if (p->want_stop) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        if (p->want_cut) {
            while (p->npairs > 0) {
                proxy_close_pair(p, 0);
            }
            p->want_cut = 0;
        }
        if (p->want_cut_source) {
            while (p->npairs > 0 && p->nzombies < MAX_PAIRS) {
                p->zombies[p->nzombies++] = p->up[0];
                p->up[0] = -1;
                proxy_close_pair(p, 0);
            }
            p->want_cut_source = 0;
        }
        if (p->want_listen && p->listen_fd < 0) {
            p->listen_fd = proxy_bind(p->port);
        } else if (!p->want_listen && p->listen_fd >= 0) {
            close(p->listen_fd);
            p->listen_fd = -1;
        }
        hold_up = p->hold_up;
        hold_down = p->hold_down;
        snprintf(target, sizeof(target), "%s", p->target);
        p->held_down = 0;
        for (int i = 0; i < p->npairs; i++) {
            int n = 0;
            p->held_down += ioctl(p->up[i], FIONREAD, &n) == 0 ? n : 0;
        }
        p->loops++;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);

        if (p->listen_fd >= 0) {
            fds[nfds] = (struct pollfd){.fd = p->listen_fd, .events = POLLIN};
            owner[nfds++] = -1;
        }
        for (int i = 0; i < p->npairs; i++) {
            if (!hold_up) {
                fds[nfds] = (struct pollfd){.fd = p->down[i], .events = POLLIN};
                owner[nfds++] = i * 2 + 1;
            }
            if (!hold_down) {
                fds[nfds] = (struct pollfd){.fd = p->up[i], .events = POLLIN};
                owner[nfds++] = i * 2;
            }
        }
        if (poll(fds, (nfds_t)nfds, 20) <= 0) {
            continue;
        }
        for (int k = 0; k < nfds; k++) {
            if (fds[k].revents == 0) {
                continue;
            }
            if (owner[k] < 0) {
                int down = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
                int up = down >= 0 ? connect_to(target) : -1;
                pthread_mutex_lock(&p->mu);
                p->accepts += down >= 0;
                pthread_mutex_unlock(&p->mu);
                if (up >= 0 && p->npairs < MAX_PAIRS) {
                    p->down[p->npairs] = down;
                    p->up[p->npairs++] = up;
                } else {
                    if (up >= 0) {
                        close(up);
                    }
                    if (down >= 0) {
                        close(down);
                    }
                }
            } else if (proxy_pump(p, owner[k] / 2, owner[k] % 2) != 0) {
                break; /* the pairs moved: poll again */
            }
        }
    }
    while (p->npairs > 0) {
        proxy_close_pair(p, 0);
    }
    while (p->nzombies > 0) {
        close(p->zombies[--p->nzombies]);
    }
    if (p->listen_fd >= 0) {
        close(p->listen_fd);
    }
    return NULL;
}

/* Waits until the proxy thread has begun two rounds since the caller's change: its poll set
 * follows the change from then on. */
static void proxy_settle(struct proxy *p)
{
    uint64_t until;

    pthread_mutex_lock(&p->mu);
    until = p->loops + 2;
    while (p->loops < until) {
        sd_cond_wait_ms(&p->cv, &p->mu, 100);
    }
    pthread_mutex_unlock(&p->mu);
}

/* A proxy on a free loopback port, listening, forwarding to target. */
static struct proxy *proxy_start(const char *target)
{
    struct proxy *p = calloc(1, sizeof(*p));
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);

    assert_non_null(p);
    pthread_mutex_init(&p->mu, NULL);
    sd_cond_init_monotonic(&p->cv);
    snprintf(p->target, sizeof(p->target), "%s", target);
    p->listen_fd = proxy_bind(0);
    assert_true(p->listen_fd >= 0);
    assert_int_equal(getsockname(p->listen_fd, (struct sockaddr *)&sa, &len), 0);
    p->port = ntohs(sa.sin_port);
    p->want_listen = 1;
    assert_int_equal(pthread_create(&p->thread, NULL, proxy_main, p), 0);
    return p;
}

/* The address the source knows the writer by. */
static void proxy_address(struct proxy *p, char *out, size_t len)
{
    snprintf(out, len, "127.0.0.1:%d", p->port);
}

enum proxy_op { HOLD_UP, HOLD_DOWN, RELEASE, CUT_AND_DEAF, CUT_SOURCE_SIDE, LISTEN };

/* HOLD_*: stop forwarding a direction; RELEASE: forward both; CUT_AND_DEAF: close every
 * connection and stop listening (connections are refused); CUT_SOURCE_SIDE: close the source's
 * side of every connection, leaving the receiver's side open and silent (a connection the
 * receiver cannot see dead); LISTEN: listen again on the same port, forwarding to target (NULL:
 * the same). Returns once the proxy follows. */
static void proxy_do(struct proxy *p, enum proxy_op op, const char *target)
{
    pthread_mutex_lock(&p->mu);
    switch (op) {
    case HOLD_UP:
        p->hold_up = 1;
        break;
    case HOLD_DOWN:
        p->hold_down = 1;
        break;
    case RELEASE:
        p->hold_up = p->hold_down = 0;
        break;
    case CUT_AND_DEAF:
        p->want_cut = 1;
        p->want_listen = 0;
        break;
    case CUT_SOURCE_SIDE:
        p->want_cut_source = 1;
        break;
    case LISTEN:
        if (target != NULL) {
            snprintf(p->target, sizeof(p->target), "%s", target);
        }
        p->want_listen = 1;
        break;
    }
    pthread_mutex_unlock(&p->mu);
    proxy_settle(p);
    if (op == LISTEN) {
        pthread_mutex_lock(&p->mu);
        assert_true(p->listen_fd >= 0); /* the port was free again */
        pthread_mutex_unlock(&p->mu);
    }
}

static int proxy_accepts(struct proxy *p)
{
    int n;

    pthread_mutex_lock(&p->mu);
    n = p->accepts;
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* Waits until more than n bytes from the receiver wait in the proxy (held down); returns
 * whether they did in time. */
static int proxy_wait_held(struct proxy *p, int n)
{
    int64_t deadline = sd_mono_ms() + WAIT_MS;
    int ok;

    pthread_mutex_lock(&p->mu);
    while (p->held_down <= n && sd_mono_ms() < deadline) {
        sd_cond_wait_ms(&p->cv, &p->mu, 100);
    }
    ok = p->held_down > n;
    pthread_mutex_unlock(&p->mu);
    return ok;
}

static void proxy_stop(struct proxy *p)
{
    pthread_mutex_lock(&p->mu);
    p->want_stop = 1;
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* ---- 1. the normal path ---- */

static void test_appends_are_durable_in_order_and_in_the_file(void **state)
{
    struct env *e = env_open(0, NULL);
    struct sd_buf want = SD_BUF_INIT;
    struct sd_remote_file *f;
    struct rec r;
    struct counts got;
    const char *three = "\"many-1\"\n\"many-2\"\n\"many-3\"\n";
    uint64_t seq = 0;
    DIR *d;
    struct dirent *de;
    int files = 0;

    (void)state;
    rec_init(&r);
    env_point_at(e, sd_receiver_address(e->recv));
    f = open_ready(e, &r);
    append_rows(e->remote, f, "row", 1, 20, 1);
    /* a chunk of several records is one append */
    assert_int_equal(sd_remote_append(f, three, strlen(three), 3, &seq), 0);
    sd_remote_flush(e->remote);
    assert_int_equal(seq, 21);
    assert_true(rec_wait(&r, 21));
    got = rec_get(&r);
    assert_int_equal(got.durable, 21);
    assert_int_equal(got.nfailed, 0);
    assert_int_equal(got.disorder, 0);
    assert_true(got.calls >= 1);
    assert_int_equal(sd_remote_close(f), 0);
    atomic_store(&r.closed, 1);
    /* the file of this source node, and nothing else, in the slice directory */
    expect_rows(&want, "row", 1, 20);
    sd_buf_append(&want, three, strlen(three));
    assert_file_holds(e, &want);
    d = opendir(e->slice_dir);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            assert_string_equal(de->d_name, ".slice-" SOURCE_ID ".csv.gz");
            files++;
        }
    }
    closedir(d);
    assert_int_equal(files, 1);
    /* the statistics are the source node's, final at the close */
    assert_int_equal(stats_records(e), 23);
    got = rec_get(&r);
    assert_int_equal(got.after_close, 0);
    sd_buf_fini(&want);
    rec_fini(&r);
    env_close(e);
}

/* ---- 2. files the writer cannot open ---- */

/* f is refused promptly, never ready, takes no appends, and reports nothing. */
static void assert_refused(struct env *e, const char *slice_key)
{
    struct rec r;
    struct counts got;
    struct sd_remote_file *f;
    int64_t started = sd_mono_ms();
    uint64_t seq = 0;

    rec_init(&r);
    f = sd_remote_open(e->remote, WRITER_ID, slice_key, on_sync, &r);
    assert_int_equal(sd_remote_wait_open(f, started + WAIT_MS), 0);
    assert_true(sd_mono_ms() - started < WAIT_MS / 2); /* refused, not timed out */
    assert_int_equal(sd_remote_file_is_ready(f), 0);
    assert_int_equal(sd_remote_append(f, "\"x\"\n", 4, 1, &seq), SD_EUNHEALTHY);
    usleep(100 * 1000);
    assert_int_equal(sd_remote_file_is_ready(f), 0);
    assert_int_equal(sd_remote_append(f, "\"x\"\n", 4, 1, &seq), SD_EUNHEALTHY);
    assert_int_equal(sd_remote_close(f), SD_EUNHEALTHY);
    got = rec_get(&r);
    assert_int_equal(got.calls, 0);
    rec_fini(&r);
}

static void test_a_slice_the_writer_cannot_open_takes_no_appends(void **state)
{
    struct env *e = env_open(1, NULL);
    struct sd_buf err = SD_BUF_INIT, want = SD_BUF_INIT;
    char closing[512], missing[600], path[1200];
    struct sd_remote_file *f;
    struct rec r;

    (void)state;
    rec_init(&r);
    env_point_at(e, sd_receiver_address(e->recv));
    /* not on this writer's volumes */
    assert_refused(e, e->foreign_key);
    /* does not exist */
    snprintf(missing, sizeof(missing), "%s0", e->slice_key);
    assert_refused(e, missing);
    /* not writing: the slice rotated away (closing); its successor is writing */
    snprintf(closing, sizeof(closing), "%s", e->slice_key);
    assert_int_equal(sd_files_rotate_slice(e->st, &fixture_files, closing, &err), 0);
    find_slice(e, 1, e->slice_key, sizeof(e->slice_key), e->slice_dir, sizeof(e->slice_dir));
    assert_string_not_equal(closing, e->slice_key);
    assert_refused(e, closing);
    snprintf(path, sizeof(path), "%s/.slice-" SOURCE_ID ".csv.gz", e->slice_dir);
    assert_int_equal(access(path, F_OK), -1); /* nothing was written anywhere yet */
    /* the refusals cost nothing else: the same connection opens the writing slice */
    f = open_ready(e, &r);
    append_rows(e->remote, f, "ok", 1, 3, 1);
    assert_true(rec_wait(&r, 3));
    assert_int_equal(rec_get(&r).durable, 3);
    assert_int_equal(sd_remote_close(f), 0);
    expect_rows(&want, "ok", 1, 3);
    assert_file_holds(e, &want);
    sd_buf_fini(&want);
    sd_buf_fini(&err);
    rec_fini(&r);
    env_close(e);
}

/* ---- 3. the writer dies with appends in flight ---- */

static void test_a_dead_writer_fails_what_was_in_flight_and_comes_back(void **state)
{
    struct env *e = env_open(0, NULL);
    struct proxy *p = proxy_start(sd_receiver_address(e->recv));
    struct sd_receiver *second = NULL;
    struct sd_buf want = SD_BUF_INIT;
    struct sd_remote_file *f;
    struct rec r;
    struct counts got;
    char address[64];
    int64_t until;
    uint64_t seq = 0;

    (void)state;
    rec_init(&r);
    proxy_address(p, address, sizeof(address));
    env_point_at(e, address);
    f = open_ready(e, &r);
    append_rows(e->remote, f, "row", 1, 4, 1);
    assert_true(rec_wait(&r, 4));
    /* the writer's answers stop on the way: 5 appends reach its disk, unanswered */
    proxy_do(p, HOLD_DOWN, NULL);
    append_rows(e->remote, f, "row", 5, 9, 5);
    assert_true(stats_wait(e, 9));
    got = rec_get(&r);
    assert_int_equal(got.durable, 4);
    assert_int_equal(got.last, 4);
    /* the writer dies: its connections break, and nothing answers at its address */
    proxy_do(p, CUT_AND_DEAF, NULL);
    sd_receiver_stop(e->recv);
    e->recv = NULL;
    assert_true(rec_wait(&r, 9));
    got = rec_get(&r);
    assert_int_equal(got.durable, 4); /* failed, never durable: though on the writer's disk */
    assert_int_equal(got.failed, 9);
    assert_int_equal(got.nfailed, 1);
    assert_int_equal(got.disorder, 0);
    /* no appends while it is away, through several reconnect attempts */
    until = sd_mono_ms() + 700;
    while (sd_mono_ms() < until) {
        assert_int_equal(sd_remote_file_is_ready(f), 0);
        assert_int_equal(sd_remote_append(f, "\"x\"\n", 4, 1, &seq), SD_EUNHEALTHY);
        usleep(50 * 1000);
    }
    /* a new writer at the same address: the file is opened again and continues */
    env_start_receiver(e, &second);
    proxy_do(p, RELEASE, NULL);
    proxy_do(p, LISTEN, sd_receiver_address(second));
    assert_int_equal(sd_remote_wait_open(f, sd_mono_ms() + 3 * WAIT_MS), 1);
    append_rows(e->remote, f, "row", 10, 14, 10);
    assert_true(rec_wait(&r, 14));
    got = rec_get(&r);
    assert_int_equal(got.durable, 14);
    assert_int_equal(got.nfailed, 1);
    assert_int_equal(got.disorder, 0);
    assert_int_equal(sd_remote_close(f), 0);
    /* the file continued: what the dead writer synced stays, then the new rows */
    expect_rows(&want, "row", 1, 14);
    assert_file_holds(e, &want);
    assert_int_equal(stats_records(e), 14);
    sd_remote_destroy(e->remote);
    e->remote = NULL;
    proxy_stop(p);
    e->recv = second;
    sd_buf_fini(&want);
    rec_fini(&r);
    env_close(e);
}

/* The source reconnects while the writer still holds its old connection (it cannot see it
 * dead): the writer ends the old one, closes the file there and opens it on the new one. */
static void test_a_reconnect_takes_the_file_over_from_a_stale_connection(void **state)
{
    struct env *e = env_open(0, NULL);
    struct proxy *p = proxy_start(sd_receiver_address(e->recv));
    struct sd_buf want = SD_BUF_INIT;
    struct sd_remote_file *f;
    struct rec r;
    struct counts got;
    char address[64];
    int64_t started;

    (void)state;
    rec_init(&r);
    proxy_address(p, address, sizeof(address));
    env_point_at(e, address);
    f = open_ready(e, &r);
    append_rows(e->remote, f, "row", 1, 3, 1);
    assert_true(rec_wait(&r, 3));
    proxy_do(p, HOLD_DOWN, NULL);
    append_rows(e->remote, f, "row", 4, 5, 4);
    assert_true(stats_wait(e, 5));
    /* only the source sees its connection end */
    proxy_do(p, CUT_SOURCE_SIDE, NULL);
    proxy_do(p, RELEASE, NULL);
    assert_true(rec_wait(&r, 5));
    got = rec_get(&r);
    assert_int_equal(got.durable, 3);
    assert_int_equal(got.failed, 5);
    started = sd_mono_ms();
    assert_int_equal(sd_remote_wait_open(f, started + 3 * WAIT_MS), 1);
    assert_true(sd_mono_ms() - started < WAIT_MS / 2); /* taken over, not waited out */
    append_rows(e->remote, f, "row", 6, 8, 6);
    assert_true(rec_wait(&r, 8));
    got = rec_get(&r);
    assert_int_equal(got.durable, 8);
    assert_int_equal(got.nfailed, 1);
    assert_int_equal(sd_remote_close(f), 0);
    expect_rows(&want, "row", 1, 8);
    assert_file_holds(e, &want);
    assert_int_equal(stats_records(e), 8);
    sd_remote_destroy(e->remote);
    e->remote = NULL;
    proxy_stop(p);
    sd_buf_fini(&want);
    rec_fini(&r);
    env_close(e);
}

/* A writer address that accepts connections but never completes the handshake (here: nothing
 * behind the proxy) is retried with the same backoff as one that refuses them. */
static void test_reconnects_back_off_when_the_handshake_never_completes(void **state)
{
    struct env *e = env_open(0, NULL);
    struct sd_receiver *gone = NULL;
    struct proxy *p;
    struct sd_remote_file *f;
    struct rec r;
    char dead[320], address[64];
    int attempts;

    (void)state;
    rec_init(&r);
    env_start_receiver(e, &gone);
    snprintf(dead, sizeof(dead), "%s", sd_receiver_address(gone));
    sd_receiver_stop(gone);
    p = proxy_start(dead);
    proxy_address(p, address, sizeof(address));
    env_point_at(e, address);
    f = sd_remote_open(e->remote, WRITER_ID, e->slice_key, on_sync, &r);
    /* 100 ms doubling: attempts at about 0, 0.1, 0.3, 0.7 and 1.5 s in 3 s */
    usleep(3000 * 1000);
    attempts = proxy_accepts(p);
    assert_true(attempts >= 2);
    assert_true(attempts <= 8);
    /* and it gets there once the writer answers */
    proxy_do(p, LISTEN, sd_receiver_address(e->recv));
    assert_int_equal(sd_remote_wait_open(f, sd_mono_ms() + 3 * WAIT_MS), 1);
    assert_int_equal(sd_remote_close(f), 0);
    sd_remote_destroy(e->remote);
    e->remote = NULL;
    proxy_stop(p);
    rec_fini(&r);
    env_close(e);
}

/* A writer that goes silent without closing (a partition): after 3 keep-alive intervals
 * without a frame the source gives the connection up and fails what was in flight. */
static void test_a_silent_writer_is_given_up_and_its_appends_fail(void **state)
{
    struct sd_remote_opts o = default_remote;
    struct sd_buf want = SD_BUF_INIT;
    struct env *e;
    struct proxy *p;
    struct sd_remote_file *f;
    struct rec r;
    struct counts got;
    char address[64];
    int64_t silent_at;

    (void)state;
    o.keepalive_ms = 200; /* closed after 600 ms of silence */
    e = env_open(0, &o);
    p = proxy_start(sd_receiver_address(e->recv));
    rec_init(&r);
    proxy_address(p, address, sizeof(address));
    env_point_at(e, address);
    f = open_ready(e, &r);
    append_rows(e->remote, f, "row", 1, 2, 1);
    assert_true(rec_wait(&r, 2));
    proxy_do(p, HOLD_UP, NULL);
    proxy_do(p, HOLD_DOWN, NULL);
    silent_at = sd_mono_ms();
    append_rows(e->remote, f, "row", 3, 4, 3);
    assert_true(rec_wait(&r, 4));
    assert_true(sd_mono_ms() - silent_at >= 500); /* the idle timeout, not something else */
    got = rec_get(&r);
    assert_int_equal(got.durable, 2);
    assert_int_equal(got.failed, 4);
    assert_int_equal(sd_remote_append(f, "\"x\"\n", 4, 1, &(uint64_t){0}), SD_EUNHEALTHY);
    /* what the silent connection carried is lost with it; the file comes back */
    proxy_do(p, CUT_AND_DEAF, NULL);
    proxy_do(p, RELEASE, NULL);
    proxy_do(p, LISTEN, NULL);
    assert_int_equal(sd_remote_wait_open(f, sd_mono_ms() + 3 * WAIT_MS), 1);
    append_rows(e->remote, f, "row", 5, 5, 5);
    assert_true(rec_wait(&r, 5));
    assert_int_equal(rec_get(&r).durable, 5);
    assert_int_equal(sd_remote_close(f), 0);
    expect_rows(&want, "row", 1, 2);
    expect_rows(&want, "row", 5, 5);
    assert_file_holds(e, &want);
    sd_remote_destroy(e->remote);
    e->remote = NULL;
    proxy_stop(p);
    sd_buf_fini(&want);
    rec_fini(&r);
    env_close(e);
}

/* The writer node is no longer announced: its files fail at once (what was in flight too) and
 * stay failed when it is announced again; new files open there again. */
static void test_a_writer_node_that_is_gone_fails_its_files_for_good(void **state)
{
    struct env *e = env_open(0, NULL);
    struct proxy *p = proxy_start(sd_receiver_address(e->recv));
    json_t *none = json_object();
    struct sd_remote_file *f, *g;
    struct rec r, rg;
    struct counts got;
    char address[64];
    int64_t started;
    uint64_t seq = 0;

    (void)state;
    rec_init(&r);
    rec_init(&rg);
    proxy_address(p, address, sizeof(address));
    env_point_at(e, address);
    f = open_ready(e, &r);
    proxy_do(p, HOLD_DOWN, NULL);
    append_rows(e->remote, f, "row", 1, 3, 1);
    sd_remote_set_writers(e->remote, none);
    got = rec_get(&r); /* reported before sd_remote_set_writers returned */
    assert_int_equal(got.failed, 3);
    assert_int_equal(got.durable, 0);
    assert_int_equal(sd_remote_file_is_ready(f), 0);
    assert_int_equal(sd_remote_append(f, "\"x\"\n", 4, 1, &seq), SD_EUNHEALTHY);
    proxy_do(p, RELEASE, NULL);
    env_point_at(e, address);
    started = sd_mono_ms();
    assert_int_equal(sd_remote_wait_open(f, started + WAIT_MS), 0);
    assert_true(sd_mono_ms() - started < 1000); /* failed for good: nothing to wait for */
    assert_int_equal(sd_remote_append(f, "\"x\"\n", 4, 1, &seq), SD_EUNHEALTHY);
    g = open_ready(e, &rg);
    append_rows(e->remote, g, "again", 1, 2, 1);
    assert_true(rec_wait(&rg, 2));
    assert_int_equal(rec_get(&rg).durable, 2);
    assert_int_equal(sd_remote_close(g), 0);
    assert_int_equal(sd_remote_close(f), SD_EUNHEALTHY);
    got = rec_get(&r);
    assert_int_equal(got.calls, 1);
    json_decref(none);
    sd_remote_destroy(e->remote);
    e->remote = NULL;
    proxy_stop(p);
    rec_fini(&r);
    rec_fini(&rg);
    env_close(e);
}

/* A connection carries at most `window` bytes of appends without their results: the file is
 * not ready and refuses with SD_ELIMIT until results give the bytes back. */
static void test_a_full_window_refuses_appends_until_results_come(void **state)
{
    struct sd_remote_opts o = default_remote;
    struct env *e;
    struct proxy *p;
    struct sd_remote_file *f;
    struct rec r;
    char address[64], buf[64];
    size_t inflight = 0, len;
    uint64_t seq = 0, n = 0;
    int rc;

    (void)state;
    o.window = 64;
    e = env_open(0, &o);
    p = proxy_start(sd_receiver_address(e->recv));
    rec_init(&r);
    proxy_address(p, address, sizeof(address));
    env_point_at(e, address);
    f = open_ready(e, &r);
    proxy_do(p, HOLD_DOWN, NULL);
    for (;;) {
        len = row(buf, sizeof(buf), "w", (int)n + 1);
        rc = sd_remote_append(f, buf, len, 1, &seq);
        if (rc != 0) {
            break;
        }
        sd_remote_flush(e->remote);
        inflight += len;
        n++;
        assert_true(n < 100);
    }
    assert_int_equal(rc, SD_ELIMIT);
    assert_true(inflight >= 64);      /* refused only once the window was full */
    assert_true(inflight - len < 64); /* and not before */
    assert_int_equal(sd_remote_file_is_ready(f), 0);
    proxy_do(p, RELEASE, NULL);
    assert_true(rec_wait(&r, n));
    assert_int_equal(rec_get(&r).durable, n);
    assert_int_equal(sd_remote_file_is_ready(f), 1);
    assert_int_equal(sd_remote_append(f, buf, len, 1, &seq), 0);
    sd_remote_flush(e->remote);
    assert_int_equal(seq, n + 1);
    assert_true(rec_wait(&r, n + 1));
    assert_int_equal(sd_remote_close(f), 0);
    sd_remote_destroy(e->remote);
    e->remote = NULL;
    proxy_stop(p);
    rec_fini(&r);
    env_close(e);
}

/* ---- 4. graceful stop ---- */

struct stopper {
    pthread_t thread;
    struct sd_receiver *recv;
    atomic_int is_done;
};

static void *stopper_main(void *arg)
{
    struct stopper *s = arg;

    sd_receiver_stop(s->recv);
    atomic_store(&s->is_done, 1);
    return NULL;
}

static void test_a_graceful_stop_loses_nothing(void **state)
{
    struct env *e = env_open(0, NULL);
    struct proxy *p = proxy_start(sd_receiver_address(e->recv));
    struct stopper s;
    struct sd_buf want = SD_BUF_INIT;
    struct sd_remote_file *f;
    struct rec r;
    struct counts got;
    char address[64];
    int64_t deadline;
    uint64_t seq = 0;

    (void)state;
    rec_init(&r);
    proxy_address(p, address, sizeof(address));
    env_point_at(e, address);
    f = open_ready(e, &r);
    /* appends on their way to the writer when it starts its shutdown */
    proxy_do(p, HOLD_UP, NULL);
    append_rows(e->remote, f, "row", 1, 6, 1);
    memset(&s, 0, sizeof(s));
    s.recv = e->recv;
    e->recv = NULL;
    assert_int_equal(pthread_create(&s.thread, NULL, stopper_main, &s), 0);
    /* DRAIN: the file takes no appends at once, while the writer still waits for its close */
    deadline = sd_mono_ms() + WAIT_MS;
    while (sd_remote_file_is_ready(f) && sd_mono_ms() < deadline) {
        usleep(5 * 1000);
    }
    assert_int_equal(sd_remote_file_is_ready(f), 0);
    assert_int_equal(sd_remote_append(f, "\"x\"\n", 4, 1, &seq), SD_EUNHEALTHY);
    usleep(200 * 1000);
    assert_int_equal(atomic_load(&s.is_done), 0);
    assert_int_equal(rec_get(&r).calls, 0);
    /* the appends and the close reach the writer: every append is durable, none failed */
    proxy_do(p, RELEASE, NULL);
    assert_int_equal(pthread_join(s.thread, NULL), 0);
    assert_true(rec_wait(&r, 6));
    got = rec_get(&r);
    assert_int_equal(got.durable, 6);
    assert_int_equal(got.nfailed, 0);
    assert_int_equal(got.disorder, 0);
    /* the writer is back at its address: the file is opened again and continues */
    env_start_receiver(e, &e->recv);
    proxy_do(p, LISTEN, sd_receiver_address(e->recv));
    assert_int_equal(sd_remote_wait_open(f, sd_mono_ms() + 3 * WAIT_MS), 1);
    append_rows(e->remote, f, "row", 7, 9, 7);
    assert_true(rec_wait(&r, 9));
    got = rec_get(&r);
    assert_int_equal(got.durable, 9);
    assert_int_equal(got.nfailed, 0);
    assert_int_equal(sd_remote_close(f), 0);
    expect_rows(&want, "row", 1, 9);
    assert_file_holds(e, &want);
    sd_remote_destroy(e->remote);
    e->remote = NULL;
    proxy_stop(p);
    sd_buf_fini(&want);
    rec_fini(&r);
    env_close(e);
}

/* A file whose OPEN crossed the writer's DRAIN (refused: draining) is opened again when the
 * writer is back, like the files the DRAIN closed. */
static void test_an_open_crossing_the_drain_is_retried_when_the_writer_is_back(void **state)
{
    struct env *e = env_open(0, NULL);
    struct proxy *p = proxy_start(sd_receiver_address(e->recv));
    struct stopper s;
    struct sd_remote_file *f, *g;
    struct rec r, rg;
    char address[64], second[700];

    (void)state;
    rec_init(&r);
    rec_init(&rg);
    proxy_address(p, address, sizeof(address));
    env_point_at(e, address);
    put_second_slice(e, second, sizeof(second));
    f = open_ready(e, &r); /* keeps the draining writer waiting for its close */
    /* the DRAIN is on its way when the source opens another file */
    proxy_do(p, HOLD_DOWN, NULL);
    memset(&s, 0, sizeof(s));
    s.recv = e->recv;
    e->recv = NULL;
    assert_int_equal(pthread_create(&s.thread, NULL, stopper_main, &s), 0);
    assert_true(proxy_wait_held(p, 0)); /* the writer is draining: its DRAIN waits */
    g = sd_remote_open(e->remote, WRITER_ID, second, on_sync, &rg);
    assert_true(proxy_wait_held(p, SD_WIRE_HEADER)); /* and its answer to the OPEN after it */
    proxy_do(p, RELEASE, NULL);
    assert_int_equal(pthread_join(s.thread, NULL), 0);
    /* back: both files are opened again */
    env_start_receiver(e, &e->recv);
    proxy_do(p, LISTEN, sd_receiver_address(e->recv));
    assert_int_equal(sd_remote_wait_open(f, sd_mono_ms() + 3 * WAIT_MS), 1);
    assert_int_equal(sd_remote_wait_open(g, sd_mono_ms() + WAIT_MS), 1);
    assert_int_equal(sd_remote_close(g), 0);
    assert_int_equal(sd_remote_close(f), 0);
    sd_remote_destroy(e->remote);
    e->remote = NULL;
    proxy_stop(p);
    rec_fini(&r);
    rec_fini(&rg);
    env_close(e);
}

/* ---- 5. bad peers ---- */

/* Sends bytes on a new raw connection to address and reads until the receiver ends it. Returns
 * the code of the first ERROR frame (0 if none came), or 1 when the connection stayed open
 * WAIT_MS. */
static int raw_peer(const char *address, const void *bytes, size_t len)
{
    int fd = connect_to(address);
    struct sd_buf in = SD_BUF_INIT;
    int64_t deadline = sd_mono_ms() + WAIT_MS;
    int code = 0, is_over = 0;

    assert_true(fd >= 0);
    assert_int_equal(write_all(fd, bytes, len), 0);
    while (!is_over && sd_mono_ms() < deadline) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        char buf[4096];
        ssize_t n;
        if (poll(&pfd, 1, 100) <= 0) {
            continue;
        }
        n = read(fd, buf, sizeof(buf));
        if (n <= 0) {
            is_over = 1;
            break;
        }
        sd_buf_append(&in, buf, (size_t)n);
        for (;;) {
            struct sd_wire_msg m;
            size_t used = 0;
            int rc = sd_wire_decode((const uint8_t *)in.data, in.len, SD_WIRE_MAX_FRAME, &m, &used);
            assert_true(rc >= 0); /* the receiver sends only frames */
            if (rc == 0) {
                break;
            }
            if (m.type == SD_WIRE_ERROR && code == 0) {
                code = m.rc;
            }
            memmove(in.data, in.data + used, in.len - used);
            in.len -= used;
        }
    }
    close(fd);
    sd_buf_fini(&in);
    return is_over ? code : 1;
}

static void encode(struct sd_buf *out, const struct sd_wire_msg *m)
{
    assert_int_equal(sd_wire_encode(out, m), 0);
}

/* The file still works: n more appends from seq on are durable, nothing failed. */
static void assert_still_works(struct env *e, struct sd_remote_file *f, struct rec *r, int n,
                               uint64_t seq)
{
    append_rows(e->remote, f, "ok", (int)seq, (int)seq + n - 1, seq);
    assert_true(rec_wait(r, seq + (uint64_t)n - 1));
    assert_int_equal(rec_get(r).durable, seq + (uint64_t)n - 1);
    assert_int_equal(rec_get(r).nfailed, 0);
}

static void test_a_bad_peer_loses_only_its_connection(void **state)
{
    struct env *e = env_open(0, NULL);
    const char *address;
    struct sd_buf b = SD_BUF_INIT, want = SD_BUF_INIT, raw = SD_BUF_INIT;
    int64_t deadline;
    struct sd_wire_msg m;
    struct sd_remote_file *f;
    unsigned char garbage[64];
    struct rec r;
    int rc;

    (void)state;
    rec_init(&r);
    address = sd_receiver_address(e->recv);
    env_point_at(e, address);
    f = open_ready(e, &r);
    assert_still_works(e, f, &r, 2, 1);
    /* garbage: a header announcing more than any frame */
    memset(garbage, 0xff, sizeof(garbage));
    rc = raw_peer(address, garbage, sizeof(garbage));
    assert_true(rc == 0 || rc == SD_WIRE_E_MALFORMED); /* closed, maybe with a reason */
    assert_still_works(e, f, &r, 2, 3);
    /* an APPEND before HELLO */
    memset(&m, 0, sizeof(m));
    m.type = SD_WIRE_APPEND;
    m.flags = SD_WIRE_FLAG_ALIGNED;
    m.file = 1;
    m.seq = 1;
    m.records = 1;
    m.rows = (const uint8_t *)"\"x\"\n";
    m.rows_len = 4;
    encode(&b, &m);
    assert_int_equal(raw_peer(address, b.data, b.len), SD_WIRE_E_MALFORMED);
    assert_still_works(e, f, &r, 2, 5);
    /* a HELLO with versions 2..3 only */
    sd_buf_reset(&b);
    memset(&m, 0, sizeof(m));
    m.type = SD_WIRE_HELLO;
    m.version_min = 2;
    m.version_max = 3;
    m.text = "raw-1";
    m.text_len = 5;
    encode(&b, &m);
    assert_int_equal(raw_peer(address, b.data, b.len), SD_WIRE_E_VERSION);
    assert_still_works(e, f, &r, 2, 7);
    /* a source node "raw-1" that writes a row in its own file of the slice, then garbage: its
     * connection ends, and its file is synced and closed (a complete gzip member) */
    sd_buf_reset(&b);
    memset(&m, 0, sizeof(m));
    m.type = SD_WIRE_HELLO;
    m.version_min = m.version_max = SD_WIRE_VERSION;
    m.text = "raw-1";
    m.text_len = 5;
    encode(&b, &m);
    memset(&m, 0, sizeof(m));
    m.type = SD_WIRE_OPEN;
    m.file = 7;
    m.text = e->slice_key;
    m.text_len = strlen(e->slice_key);
    m.json = "{}";
    m.json_len = 2;
    encode(&b, &m);
    memset(&m, 0, sizeof(m));
    m.type = SD_WIRE_APPEND;
    m.flags = SD_WIRE_FLAG_ALIGNED;
    m.file = 7;
    m.seq = 1;
    m.records = 1;
    m.rows = (const uint8_t *)"\"raw\"\n";
    m.rows_len = 6;
    encode(&b, &m);
    sd_buf_append(&b, garbage, 16);
    rc = raw_peer(address, b.data, b.len);
    assert_true(rc == 0 || rc == SD_WIRE_E_MALFORMED);
    sd_buf_append(&raw, "\"raw\"\n", 6);
    deadline = sd_mono_ms() + WAIT_MS;
    while (!file_holds(e, "raw-1", &raw) && sd_mono_ms() < deadline) {
        usleep(20 * 1000);
    }
    assert_true(file_holds(e, "raw-1", &raw));
    assert_still_works(e, f, &r, 2, 9);
    assert_int_equal(sd_remote_close(f), 0);
    expect_rows(&want, "ok", 1, 10);
    assert_file_holds(e, &want);
    sd_buf_fini(&raw);
    sd_buf_fini(&b);
    sd_buf_fini(&want);
    rec_fini(&r);
    env_close(e);
}

/* ---- 6. results racing the close ---- */

#define RACE_APPENDS 40 /* per appender thread */

struct appender {
    pthread_t thread;
    struct sd_remote_file *f;
    int id;
    int failures; /* appends that did not return 0 */
};

static void *appender_main(void *arg)
{
    struct appender *a = arg;

    for (int i = 0; i < RACE_APPENDS; i++) {
        char buf[64], tag[16];
        uint64_t seq = 0;
        snprintf(tag, sizeof(tag), "t%d", a->id);
        a->failures += sd_remote_append(a->f, buf, row(buf, sizeof(buf), tag, i), 1, &seq) != 0;
    }
    return NULL;
}

/* Two threads append RACE_APPENDS each to f at once; returns the appends that failed. */
static int append_twice(struct sd_remote_file *f)
{
    struct appender a[2];

    for (int i = 0; i < 2; i++) {
        memset(&a[i], 0, sizeof(a[i]));
        a[i].f = f;
        a[i].id = i;
        assert_int_equal(pthread_create(&a[i].thread, NULL, appender_main, &a[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(a[i].thread, NULL), 0);
    }
    return a[0].failures + a[1].failures;
}

struct closer {
    pthread_t thread;
    struct sd_remote_file *f;
    struct rec *r;
    int rc;
};

static void *closer_main(void *arg)
{
    struct closer *c = arg;

    c->rc = sd_remote_close(c->f);
    atomic_store(&c->r->closed, 1);
    return NULL;
}

/* Closes f from another thread while the main thread releases the writer's answers after
 * release_ms (-1: they flow already); returns the close's result. */
static int close_racing(struct proxy *p, struct sd_remote_file *f, struct rec *r, int release_ms)
{
    struct closer c = {.f = f, .r = r};

    assert_int_equal(pthread_create(&c.thread, NULL, closer_main, &c), 0);
    if (release_ms >= 0) {
        usleep((useconds_t)release_ms * 1000);
        proxy_do(p, RELEASE, NULL);
    }
    assert_int_equal(pthread_join(c.thread, NULL), 0);
    return c.rc;
}

static void test_no_result_after_the_close(void **state)
{
    struct sd_remote_opts o = default_remote;
    struct env *e;
    struct proxy *p;
    struct rec r[12], fin;
    struct counts got;
    struct sd_remote_file *f;
    char address[64];

    (void)state;
    o.close_timeout_ms = 1000;
    e = env_open(0, &o);
    p = proxy_start(sd_receiver_address(e->recv));
    proxy_address(p, address, sizeof(address));
    env_point_at(e, address);
    /* the writer's answers come only after the close gave up: all failed, then silence */
    rec_init(&r[0]);
    f = open_ready(e, &r[0]);
    proxy_do(p, HOLD_DOWN, NULL);
    assert_int_equal(append_twice(f), 0);
    assert_int_equal(close_racing(p, f, &r[0], -1), -ETIMEDOUT);
    got = rec_get(&r[0]);
    assert_int_equal(got.last, 2 * RACE_APPENDS);
    assert_int_equal(got.failed, 2 * RACE_APPENDS);
    assert_int_equal(got.durable, 0);
    assert_int_equal(got.calls, 1);
    proxy_do(p, RELEASE, NULL);
    /* the answers arrive now, before the next file's OPENED (one stream, in order) */
    rec_init(&r[1]);
    f = open_ready(e, &r[1]);
    /* the answers arrive while the close waits for them */
    proxy_do(p, HOLD_DOWN, NULL);
    assert_int_equal(append_twice(f), 0);
    assert_int_equal(close_racing(p, f, &r[1], 100), 0);
    got = rec_get(&r[1]);
    assert_int_equal(got.durable, 2 * RACE_APPENDS);
    assert_int_equal(got.nfailed, 0);
    /* the answers race the close with nothing held, again and again */
    for (int i = 2; i < 12; i++) {
        rec_init(&r[i]);
        f = open_ready(e, &r[i]);
        assert_int_equal(append_twice(f), 0);
        assert_int_equal(close_racing(p, f, &r[i], -1), 0);
        got = rec_get(&r[i]);
        assert_int_equal(got.durable, 2 * RACE_APPENDS);
        assert_int_equal(got.nfailed, 0);
    }
    /* every late frame has been read by now (the OPENED of a later file came after it) */
    rec_init(&fin);
    f = open_ready(e, &fin);
    assert_int_equal(sd_remote_close(f), 0);
    for (int i = 0; i < 12; i++) {
        struct counts c = rec_get(&r[i]);
        assert_int_equal(c.after_close, 0);
        assert_int_equal(c.disorder, 0);
        rec_fini(&r[i]);
    }
    rec_fini(&fin);
    sd_remote_destroy(e->remote);
    e->remote = NULL;
    proxy_stop(p);
    env_close(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_appends_are_durable_in_order_and_in_the_file),
        cmocka_unit_test(test_a_slice_the_writer_cannot_open_takes_no_appends),
        cmocka_unit_test(test_a_dead_writer_fails_what_was_in_flight_and_comes_back),
        cmocka_unit_test(test_a_reconnect_takes_the_file_over_from_a_stale_connection),
        cmocka_unit_test(test_reconnects_back_off_when_the_handshake_never_completes),
        cmocka_unit_test(test_a_silent_writer_is_given_up_and_its_appends_fail),
        cmocka_unit_test(test_a_writer_node_that_is_gone_fails_its_files_for_good),
        cmocka_unit_test(test_a_full_window_refuses_appends_until_results_come),
        cmocka_unit_test(test_a_graceful_stop_loses_nothing),
        cmocka_unit_test(test_an_open_crossing_the_drain_is_retried_when_the_writer_is_back),
        cmocka_unit_test(test_a_bad_peer_loses_only_its_connection),
        cmocka_unit_test(test_no_result_after_the_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
