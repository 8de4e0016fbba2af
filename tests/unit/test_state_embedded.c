/* test_state_embedded.c: the state contract suite against the "embedded" backend, plus its
 * own durability tests: reopen, torn and corrupt logs, crash (SIGKILL) durability, compaction
 * and its crash-safe log switch, watch history limits, the directory lock, group commit and
 * recovery from a log that fails to write or sync (ENOSPC, EIO) without a restart.
 *
 * DESIGN: single-threaded cmocka runner; crash tests fork() a child that uses its own store
 * and dies by SIGKILL, while the parent only reopens the directory afterwards. Every test
 * works in a fresh temp directory that it removes at the end. Log faults are injected by this
 * binary's own write() and fdatasync(), which the linker prefers to libc's: they fail calls on
 * the store's log descriptors while armed and pass everything else through. */
#include "state_contract.h"

#include "config/sd_config.h"
#include "core/sd_buf.h"
#include "core/sd_health.h"
#include "state_embedded/state_embedded.h"

#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int open_embedded(const char *dir, struct sd_state **out)
{
    return sd_state_open_backend("embedded", NULL, dir, out);
}

static const struct sc_backend embedded = {"embedded", open_embedded};

/* ---- helpers ---------------------------------------------------------------------------- */

struct dir_fixture {
    char dir[512];
};

static int dir_setup(void **state)
{
    struct dir_fixture *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    sc_make_tmpdir(fx->dir, sizeof(fx->dir), "embedded");
    *state = fx;
    return 0;
}

static int dir_teardown(void **state)
{
    struct dir_fixture *fx = *state;

    sd_rm_rf(fx->dir);
    free(fx);
    return 0;
}

static struct sd_state *reopen(const char *dir)
{
    struct sd_state *st = NULL;

    assert_int_equal(open_embedded(dir, &st), 0);
    return st;
}

static char *path_in(const char *dir, const char *name)
{
    static __thread char buf[600];

    snprintf(buf, sizeof(buf), "%s/%s", dir, name);
    return buf;
}

static off_t file_size(const char *path)
{
    struct stat sb;

    return stat(path, &sb) == 0 ? sb.st_size : -1;
}

static void append_bytes(const char *path, const void *p, size_t len)
{
    int fd = open(path, O_WRONLY | O_APPEND);

    assert_true(fd >= 0);
    assert_int_equal(sd_write_all(fd, p, len), 0);
    close(fd);
}

/* Copies all keys of st (with their numbers) into a fresh sd_kvs. */
static void dump(struct sd_state *st, struct sd_kvs *out)
{
    assert_int_equal(sd_state_range(st, "", 0, out), 0);
}

static void assert_same(const struct sd_kvs *a, const struct sd_kvs *b)
{
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->rev, b->rev);
    for (size_t i = 0; i < a->n; i++) {
        assert_string_equal(a->items[i].key, b->items[i].key);
        assert_int_equal(a->items[i].value_len, b->items[i].value_len);
        assert_memory_equal(a->items[i].value, b->items[i].value, a->items[i].value_len);
        assert_int_equal(a->items[i].create_rev, b->items[i].create_rev);
        assert_int_equal(a->items[i].mod_rev, b->items[i].mod_rev);
        assert_int_equal(a->items[i].version, b->items[i].version);
        assert_int_equal(a->items[i].lease, b->items[i].lease);
    }
}

/* A mix of every kind of change. Returns the lease it leaves alive. */
static int64_t write_mix(struct sd_state *st, int n)
{
    int64_t lease = 0, dead = 0;
    char key[64], val[64];

    assert_int_equal(sd_state_lease_grant(st, 30, &lease), 0);
    assert_int_equal(sd_state_lease_grant(st, 30, &dead), 0);
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "mix/%04d", i % 97);
        snprintf(val, sizeof(val), "value-%d", i);
        assert_int_equal(sd_state_put(st, key, val, strlen(val), i % 5 == 0 ? lease : 0, NULL), 0);
        if (i % 7 == 0) {
            snprintf(key, sizeof(key), "mix/%04d", (i * 3) % 97);
            assert_int_equal(sd_state_del(st, key, 0, NULL, NULL), 0);
        }
        if (i % 50 == 0) {
            struct sd_op ops[2] = {{SD_OP_PUT, "txn/a", val, strlen(val), dead},
                                   {SD_OP_DELETE_PREFIX, "mix/001", NULL, 0, 0}};
            struct sd_txn txn = {NULL, 0, ops, 2, NULL, 0};
            struct sd_txn_result res;
            assert_int_equal(sd_state_txn(st, &txn, &res), 0);
            sd_txn_result_free(&res);
        }
    }
    assert_int_equal(sd_state_put(st, "bin", "\0\1\2", 3, 0, NULL), 0);
    assert_int_equal(sd_state_lease_revoke(st, dead), 0);
    return lease;
}

/* ---- log faults ------------------------------------------------------------------------- */

static atomic_int fault_write_errno;    /* armed: writes to a log fail (after half the bytes) */
static atomic_int fault_sync_errno;     /* armed: fdatasync of a log fails */
static atomic_int fault_failed_fd = -1; /* the log descriptor whose fdatasync failed */
static atomic_int fault_syncs_after;    /* fdatasync on it afterwards: must stay 0 */

/* fd is open on a store's "wal" or "wal.new". */
static int is_log_fd(int fd)
{
    char link[64], target[600];
    ssize_t n;

    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, target, sizeof(target) - 1);
    if (n <= 0) {
        return 0;
    }
    target[n] = '\0';
    return (n >= 4 && strcmp(target + n - 4, "/wal") == 0) ||
           (n >= 8 && strcmp(target + n - 8, "/wal.new") == 0);
}

ssize_t write(int fd, const void *buf, size_t len)
{
    int e = atomic_load(&fault_write_errno);

    if (e != 0 && is_log_fd(fd)) {
        if (len > 1) {
            (void)syscall(SYS_write, fd, buf, len / 2);
        }
        errno = e;
        return -1;
    }
    return syscall(SYS_write, fd, buf, len);
}

int fdatasync(int fd)
{
    int e = atomic_load(&fault_sync_errno);

    if ((e != 0 || atomic_load(&fault_failed_fd) >= 0) && is_log_fd(fd)) {
        if (fd == atomic_load(&fault_failed_fd)) {
            atomic_fetch_add(&fault_syncs_after, 1);
        }
        if (e != 0) {
            atomic_store(&fault_failed_fd, fd);
            errno = e;
            return -1;
        }
    }
    return (int)syscall(SYS_fdatasync, fd);
}

struct fault_watch {
    atomic_int lost_events; /* events of writes that failed: must stay 0 */
    atomic_int later_events;
};

static void fault_watch_cb(const struct sd_watch_event *ev, size_t n, int64_t rev, int rc,
                           void *arg)
{
    struct fault_watch *fw = arg;

    (void)rev;
    (void)rc;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ev[i].kv->key, "b") == 0 || strcmp(ev[i].kv->key, "c") == 0) {
            atomic_fetch_add(&fw->lost_events, 1);
        } else if (strcmp(ev[i].kv->key, "d") == 0) {
            atomic_fetch_add(&fw->later_events, 1);
        }
    }
}

/* The log fails (errno_slot armed with err), then works again: the failed writes are applied
 * nowhere (memory, watches, disk), reads go on meanwhile, the health registry says "state" is
 * broken, and writes are accepted again without a reopen. */
static void run_log_fault(const char *dir, atomic_int *errno_slot, int err)
{
    struct sd_health *h = sd_health_create();
    struct sd_state *st = reopen(dir);
    struct fault_watch fw = {0, 0};
    struct sd_watch *w = NULL;
    struct sd_kv kv;
    struct sd_kvs kvs;
    struct sd_buf why = SD_BUF_INIT;
    struct sd_op op = {SD_OP_PUT, "c", "3", 1, 0};
    struct sd_txn txn = {NULL, 0, &op, 1, NULL, 0};
    struct sd_txn_result res;
    int64_t lease = 0, a_rev = 0, d_rev = 0, deadline;

    sd_state_set_health(st, h);
    assert_int_equal(sd_state_watch(st, "", 0, fault_watch_cb, &fw, &w), 0);
    assert_int_equal(sd_state_put(st, "a", "1", 1, 0, &a_rev), 0);

    atomic_store(errno_slot, err);
    assert_int_equal(sd_state_put(st, "b", "2", 1, 0, NULL), SD_EUNHEALTHY);
    assert_false(sd_health_is_ok(h));
    assert_int_equal(sd_health_render(h, &why), 503);
    assert_non_null(strstr(sd_buf_cstr(&why), "state: cannot write"));
    assert_int_equal(sd_state_txn(st, &txn, &res), SD_EUNHEALTHY);
    assert_int_equal(sd_state_lease_grant(st, 10, &lease), SD_EUNHEALTHY);
    /* reads keep working and see nothing of the failed writes */
    assert_int_equal(sd_state_get(st, "a", &kv), 0);
    assert_string_equal(kv.value, "1");
    sd_kv_free(&kv);
    assert_int_equal(sd_state_get(st, "b", &kv), SD_ENOTFOUND);
    assert_int_equal(sd_state_range(st, "", 0, &kvs), 0);
    assert_int_equal(kvs.n, 1);
    assert_int_equal(kvs.rev, a_rev);
    sd_kvs_free(&kvs);

    atomic_store(errno_slot, 0);
    deadline = sd_now_ms() + 5000;
    while (sd_state_put(st, "d", "4", 1, 0, &d_rev) != 0) {
        assert_true(sd_now_ms() < deadline);
        usleep(20000);
    }
    assert_true(sd_health_is_ok(h));
    assert_int_equal(d_rev, a_rev + 1);
    assert_int_equal(sd_state_get(st, "b", &kv), SD_ENOTFOUND);
    assert_int_equal(atomic_load(&fault_syncs_after), 0);
    while (atomic_load(&fw.later_events) == 0) {
        assert_true(sd_now_ms() < deadline);
        usleep(5000);
    }
    assert_int_equal(atomic_load(&fw.lost_events), 0);
    sd_state_unwatch(st, w);
    sd_state_close(st);

    st = reopen(dir);
    assert_int_equal(sd_state_range(st, "", 0, &kvs), 0);
    assert_int_equal(kvs.n, 2);
    assert_string_equal(kvs.items[0].key, "a");
    assert_string_equal(kvs.items[1].key, "d");
    assert_int_equal(kvs.rev, d_rev);
    sd_kvs_free(&kvs);
    sd_state_close(st);
    sd_buf_fini(&why);
    sd_health_destroy(h);
    atomic_store(&fault_failed_fd, -1);
}

/* Writers racing a log that fails for a while: outcomes of every put, by thread and attempt. */
#define RACE_THREADS 4
#define RACE_PUTS 300

struct race {
    struct sd_state *st;
    int id;
    int rc[RACE_PUTS];
};

static void *race_main(void *arg)
{
    struct race *r = arg;
    char key[64];

    for (int i = 0; i < RACE_PUTS; i++) {
        snprintf(key, sizeof(key), "race/%d/%03d", r->id, i);
        r->rc[i] = sd_state_put(r->st, key, key, strlen(key), 0, NULL);
        assert_true(r->rc[i] == 0 || r->rc[i] == SD_EUNHEALTHY);
        usleep(500);
    }
    return NULL;
}

/* ---- tests ------------------------------------------------------------------------------ */

/* Concurrent writers while the log fails and recovers, with frequent compactions: every
 * acknowledged put is there after a reopen, every failed one nowhere. */
static void test_log_fault_racing_writers(void **state)
{
    struct dir_fixture *fx = *state;
    struct sd_state *st = reopen(fx->dir);
    struct race races[RACE_THREADS];
    pthread_t threads[RACE_THREADS];
    struct sd_state_embedded_limits lim = {0, 40, 0, 0}; /* compactions meet the failures */
    struct sd_kv kv;
    int ok = 0, failed = 0;
    int64_t deadline;

    sd_state_embedded_set_limits(st->ctx, &lim);
    for (int t = 0; t < RACE_THREADS; t++) {
        races[t].st = st;
        races[t].id = t;
        assert_int_equal(pthread_create(&threads[t], NULL, race_main, &races[t]), 0);
    }
    usleep(50000);
    atomic_store(&fault_write_errno, ENOSPC);
    usleep(100000);
    atomic_store(&fault_write_errno, 0);
    for (int t = 0; t < RACE_THREADS; t++) {
        pthread_join(threads[t], NULL);
    }
    deadline = sd_now_ms() + 5000;
    while (sd_state_put(st, "race/after", "x", 1, 0, NULL) != 0) { /* writes come back */
        assert_true(sd_now_ms() < deadline);
        usleep(20000);
    }
    sd_state_close(st);
    st = reopen(fx->dir);
    for (int t = 0; t < RACE_THREADS; t++) {
        for (int i = 0; i < RACE_PUTS; i++) {
            char key[64];
            snprintf(key, sizeof(key), "race/%d/%03d", t, i);
            assert_int_equal(sd_state_get(st, key, &kv), races[t].rc[i] == 0 ? 0 : SD_ENOTFOUND);
            sd_kv_free(&kv);
            ok += races[t].rc[i] == 0;
            failed += races[t].rc[i] != 0;
        }
    }
    assert_true(failed > 0);
    assert_int_equal(sd_state_get(st, "race/after", &kv), 0);
    sd_kv_free(&kv);
    printf("# racing writers: %d acknowledged, %d failed\n", ok, failed);
    sd_state_close(st);
}

static void test_log_enospc_recovers(void **state)
{
    struct dir_fixture *fx = *state;

    run_log_fault(fx->dir, &fault_write_errno, ENOSPC);
}

/* fsyncgate: the descriptor whose fdatasync failed is never synced again. */
static void test_log_eio_recovers(void **state)
{
    struct dir_fixture *fx = *state;

    run_log_fault(fx->dir, &fault_sync_errno, EIO);
}

static void test_persist_reopen(void **state)
{
    struct dir_fixture *fx = *state;
    struct sd_state *st = reopen(fx->dir);
    struct sd_kvs before, after;
    int64_t lease, rev, ttl = 0;

    lease = write_mix(st, 300);
    dump(st, &before);
    assert_true(before.n > 50);
    sd_state_close(st);

    st = reopen(fx->dir);
    dump(st, &after);
    assert_same(&before, &after);
    /* the lease survived and keys keep their attachment */
    assert_int_equal(sd_state_lease_keepalive(st, lease, &ttl), 0);
    assert_int_equal(ttl, 30);
    assert_int_equal(sd_state_put(st, "new", "x", 1, lease, &rev), 0);
    assert_int_equal(rev, before.rev + 1);
    /* and lease ids are not reused */
    {
        int64_t l2 = 0;
        assert_int_equal(sd_state_lease_grant(st, 5, &l2), 0);
        assert_true(l2 > lease);
    }
    assert_int_equal(sd_state_lease_revoke(st, lease), 0);
    sd_kvs_free(&after);
    dump(st, &after);
    sd_state_close(st);

    st = reopen(fx->dir);
    sd_kvs_free(&before);
    dump(st, &before);
    assert_same(&before, &after);
    assert_int_equal(sd_state_lease_keepalive(st, lease, &ttl), SD_ENOTFOUND);
    sd_kvs_free(&before);
    sd_kvs_free(&after);
    sd_state_close(st);
}

static void test_torn_tail(void **state)
{
    struct dir_fixture *fx = *state;
    struct sd_state *st = reopen(fx->dir);
    struct sd_kvs before, after;
    char *wal;
    size_t len;
    off_t good;

    write_mix(st, 100);
    dump(st, &before);
    sd_state_close(st);
    good = file_size(path_in(fx->dir, "wal"));
    assert_true(good > 0);

    /* garbage after the last record */
    append_bytes(path_in(fx->dir, "wal"), "garbage\xff\x00garbage", 16);
    st = reopen(fx->dir);
    dump(st, &after);
    assert_same(&before, &after);
    sd_kvs_free(&after);
    sd_state_close(st);
    assert_int_equal(file_size(path_in(fx->dir, "wal")), good);

    /* a torn copy of the start of the log (a real frame cut short), then zeros */
    assert_int_equal(sd_read_file(path_in(fx->dir, "wal"), &wal, &len), 0);
    append_bytes(path_in(fx->dir, "wal"), wal, len > 40 ? 40 : len - 1);
    free(wal);
    wal = calloc(1, 4096);
    append_bytes(path_in(fx->dir, "wal"), wal, 4096);
    free(wal);
    st = reopen(fx->dir);
    dump(st, &after);
    assert_same(&before, &after);
    /* the log stays appendable after the truncation */
    assert_int_equal(sd_state_put(st, "after", "1", 1, 0, NULL), 0);
    sd_kvs_free(&after);
    sd_state_close(st);
    st = reopen(fx->dir);
    sc_assert_value(st, "after", "1");
    sd_state_close(st);
    sd_kvs_free(&before);
}

static void test_corrupt_middle(void **state)
{
    struct dir_fixture *fx = *state;
    struct sd_state *st = reopen(fx->dir);
    char *wal;
    size_t len;
    int fd;

    write_mix(st, 50);
    sd_state_close(st);
    assert_int_equal(sd_read_file(path_in(fx->dir, "wal"), &wal, &len), 0);
    assert_true(len > 100);
    wal[30] ^= 0x40; /* inside the first frame's payload */
    fd = open(path_in(fx->dir, "wal"), O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(sd_write_all(fd, wal, len), 0);
    close(fd);
    free(wal);
    assert_int_equal(open_embedded(fx->dir, &st), SD_ECORRUPT);
    assert_null(st);
    /* the damaged log was left alone */
    assert_true(file_size(path_in(fx->dir, "wal")) > 100);
}

static void test_corrupt_snapshot(void **state)
{
    struct dir_fixture *fx = *state;
    struct sd_state *st = reopen(fx->dir);
    char *snap;
    size_t len;

    write_mix(st, 50);
    assert_int_equal(sd_state_embedded_compact(st->ctx), 0);
    sd_state_close(st);
    assert_int_equal(sd_read_file(path_in(fx->dir, "snapshot"), &snap, &len), 0);
    snap[len / 2] ^= 1;
    assert_int_equal(sd_write_file_atomic(path_in(fx->dir, "snapshot"), snap, len, 0644), 0);
    free(snap);
    assert_int_equal(open_embedded(fx->dir, &st), SD_ECORRUPT);
}

#define CRASH_PUTS 300

static void crash_child_sequential(const char *dir)
{
    struct sd_state *st = NULL;
    char key[32];

    if (open_embedded(dir, &st) != 0) {
        _exit(2);
    }
    for (int i = 0; i < CRASH_PUTS; i++) {
        snprintf(key, sizeof(key), "crash/%04d", i);
        if (sd_state_put(st, key, key, strlen(key), 0, NULL) != 0) {
            _exit(3);
        }
    }
    raise(SIGKILL);
    _exit(4);
}

static void test_crash_durability(void **state)
{
    struct dir_fixture *fx = *state;
    struct sd_state *st;
    struct sd_kvs kvs;
    int status = 0;
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        crash_child_sequential(fx->dir);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    st = reopen(fx->dir);
    assert_int_equal(sd_state_range(st, "crash/", 0, &kvs), 0);
    assert_int_equal(kvs.n, CRASH_PUTS);
    assert_int_equal(kvs.rev, CRASH_PUTS);
    for (int i = 0; i < CRASH_PUTS; i++) {
        assert_string_equal(kvs.items[i].key, kvs.items[i].value);
    }
    sd_kvs_free(&kvs);
    sd_state_close(st);
}

struct ack_arg {
    struct sd_state *st;
    int fd;
    int id;
};

static void *ack_writer(void *p)
{
    struct ack_arg *a = p;
    char key[32];

    for (int i = 0;; i++) {
        int32_t v = a->id * 1000000 + i;
        snprintf(key, sizeof(key), "ack/%d", v);
        if (sd_state_put(a->st, key, "x", 1, 0, NULL) != 0) {
            _exit(3);
        }
        if (sd_write_all(a->fd, &v, sizeof(v)) != 0) {
            _exit(4);
        }
    }
    return NULL;
}

/* The parent kills the child at an arbitrary point while 4 threads write; every put whose
 * acknowledgement reached the parent must be there after reopening. */
static void test_crash_midstream(void **state)
{
    struct dir_fixture *fx = *state;
    struct sd_state *st;
    int pfd[2], status = 0;
    int32_t *acked = calloc(1 << 20, sizeof(int32_t));
    size_t nacked = 0;
    pid_t pid;
    char key[32];
    struct sd_kv kv;

    assert_non_null(acked);
    assert_int_equal(pipe(pfd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct ack_arg args[4];
        pthread_t th[4];
        close(pfd[0]);
        if (open_embedded(fx->dir, &st) != 0) {
            _exit(2);
        }
        for (int i = 0; i < 4; i++) {
            args[i] = (struct ack_arg){st, pfd[1], i};
            pthread_create(&th[i], NULL, ack_writer, &args[i]);
        }
        for (;;) {
            pause();
        }
    }
    close(pfd[1]);
    for (;;) {
        ssize_t n = read(pfd[0], &acked[nacked], sizeof(int32_t));
        if (n <= 0) {
            break;
        }
        assert_int_equal(n, sizeof(int32_t));
        if (++nacked == 400) {
            kill(pid, SIGKILL);
        }
        assert_true(nacked < (1 << 20));
    }
    close(pfd[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_true(nacked >= 400);

    st = reopen(fx->dir);
    for (size_t i = 0; i < nacked; i++) {
        snprintf(key, sizeof(key), "ack/%d", acked[i]);
        assert_int_equal(sd_state_get(st, key, &kv), 0);
        sd_kv_free(&kv);
    }
    sd_state_close(st);
    free(acked);
}

static void test_compaction_reopen(void **state)
{
    struct dir_fixture *fx = *state;
    struct sd_state_embedded_limits lim = {0, 40, 0, 0};
    struct sd_state_embedded_stats stats;
    struct sd_state *st = reopen(fx->dir);
    struct sd_kvs before, after;
    int64_t deadline;

    sd_state_embedded_set_limits(st->ctx, &lim);
    write_mix(st, 600);
    deadline = sd_mono_ms() + sc_timeout_ms(5000);
    do {
        sd_state_embedded_stats(st->ctx, &stats);
        sc_sleep_ms(stats.compactions == 0 ? 20 : 0);
    } while (stats.compactions == 0 && sd_mono_ms() < deadline);
    assert_true(stats.compactions >= 1);
    assert_true(file_size(path_in(fx->dir, "snapshot")) > 0);
    dump(st, &before);
    sd_state_close(st);

    st = reopen(fx->dir);
    dump(st, &after);
    assert_same(&before, &after);
    sd_kvs_free(&after);
    /* a forced compaction leaves an empty log and the same state */
    assert_int_equal(sd_state_embedded_compact(st->ctx), 0);
    assert_int_equal(file_size(path_in(fx->dir, "wal")), 0);
    assert_true(file_size(path_in(fx->dir, "wal.new")) < 0);
    sd_state_close(st);
    st = reopen(fx->dir);
    dump(st, &after);
    assert_same(&before, &after);
    assert_int_equal(sd_state_put(st, "more", "1", 1, 0, NULL), 0);
    sd_state_close(st);
    st = reopen(fx->dir);
    sc_assert_value(st, "more", "1");
    sd_state_close(st);
    sd_kvs_free(&before);
    sd_kvs_free(&after);
}

/* Builds the on-disk state of a crash in the middle of a log switch: the log split in two at
 * a frame boundary, "wal" plus "wal.new", with or without the new snapshot. */
static void test_interrupted_compaction(void **state)
{
    struct dir_fixture *fx = *state;
    struct sd_state *st = reopen(fx->dir);
    struct sd_kvs before, after;
    char *wal;
    size_t len;
    off_t split;

    write_mix(st, 100);
    sd_state_close(st);
    split = file_size(path_in(fx->dir, "wal"));
    st = reopen(fx->dir);
    write_mix(st, 100);
    dump(st, &before);
    sd_state_close(st);

    assert_int_equal(sd_read_file(path_in(fx->dir, "wal"), &wal, &len), 0);
    assert_true((size_t)split < len);
    assert_int_equal(
        sd_write_file_atomic(path_in(fx->dir, "wal.new"), wal + split, len - (size_t)split, 0644),
        0);
    assert_int_equal(truncate(path_in(fx->dir, "wal"), split), 0);
    free(wal);

    st = reopen(fx->dir);
    dump(st, &after);
    assert_same(&before, &after);
    sd_kvs_free(&after);
    sd_state_close(st);
    /* open finished the switch */
    assert_true(file_size(path_in(fx->dir, "wal.new")) < 0);
    assert_true(file_size(path_in(fx->dir, "snapshot")) > 0);
    st = reopen(fx->dir);
    dump(st, &after);
    assert_same(&before, &after);
    sd_kvs_free(&after);
    sd_kvs_free(&before);
    sd_state_close(st);
}

static void test_watch_compacted(void **state)
{
    struct dir_fixture *fx = *state;
    struct sd_state_embedded_limits lim = {0, 0, 5, 0};
    struct sd_state *st = reopen(fx->dir);
    struct sc_collector c, ok;
    struct sd_watch *w = NULL, *w2 = NULL;
    char key[16];
    int64_t last = 0;

    sc_collector_init(&c);
    sc_collector_init(&ok);
    sd_state_embedded_set_limits(st->ctx, &lim);
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), "c/%d", i);
        last = sc_put(st, key, "v");
    }
    assert_int_equal(sd_state_watch(st, "c/", 2, sc_collect, &c, &w), 0);
    assert_int_equal(sc_wait_end(&c, 5000), SD_ECONFLICT);
    assert_int_equal(sd_state_watch(st, "c/", last - 4, sc_collect, &ok, &w2), 0);
    assert_int_equal(sc_wait_batches(&ok, 5, 5000), 5);
    sc_put(st, "c/x", "v");
    sc_sleep_ms(100);
    pthread_mutex_lock(&c.mu);
    assert_int_equal(c.ends, 1);
    assert_int_equal(c.nbatches, 0);
    pthread_mutex_unlock(&c.mu);
    assert_int_equal(sc_wait_batches(&ok, 6, 5000), 6);
    sd_state_unwatch(st, w);
    sd_state_unwatch(st, w2);
    sd_state_close(st);
    sc_collector_fini(&c);
    sc_collector_fini(&ok);
}

/* Revisions still in the log can be watched from after a restart. */
static void test_watch_history_after_reopen(void **state)
{
    struct dir_fixture *fx = *state;
    struct sd_state *st = reopen(fx->dir);
    struct sc_collector c;
    struct sd_watch *w = NULL;
    int64_t first;

    sc_collector_init(&c);
    first = sc_put(st, "h/1", "a");
    sc_put(st, "h/2", "b");
    sc_put(st, "h/3", "c");
    sd_state_close(st);
    st = reopen(fx->dir);
    assert_int_equal(sd_state_watch(st, "h/", first + 1, sc_collect, &c, &w), 0);
    assert_int_equal(sc_wait_batches(&c, 2, 5000), 2);
    assert_string_equal(c.batches[0].ev[0].key, "h/2");
    assert_string_equal(c.batches[1].ev[0].value, "c");
    sd_state_unwatch(st, w);
    sd_state_close(st);
    sc_collector_fini(&c);
}

static void test_lock_exclusive(void **state)
{
    struct dir_fixture *fx = *state;
    struct sd_state *st = reopen(fx->dir);
    struct sd_state *st2 = NULL;

    assert_int_equal(open_embedded(fx->dir, &st2), -EBUSY);
    assert_null(st2);
    sd_state_close(st);
    st2 = reopen(fx->dir);
    sd_state_close(st2);
    assert_int_equal(sd_state_open_backend("nope", NULL, fx->dir, &st2), SD_EINVAL);
    /* etcd reads its etcd.* keys: no config, no store */
    assert_int_equal(sd_state_open_backend("etcd", NULL, "http://127.0.0.1:1", &st2), SD_EINVAL);
}

/* sd_state_open picks the backend and path from the config: <dataDir>/state by default. */
static void test_open_from_config(void **state)
{
    struct dir_fixture *fx = *state;
    struct sd_config_args args = {NULL, fx->dir, NULL, 0, NULL};
    struct sd_config *cfg = NULL;
    struct sd_state *st = NULL;
    struct sd_buf err = SD_BUF_INIT;

    assert_int_equal(sd_config_load(&args, &cfg, &err), 0);
    assert_int_equal(sd_state_open(cfg, &st), 0);
    sc_put(st, "k", "v");
    sd_state_close(st);
    assert_true(file_size(path_in(fx->dir, "state/wal")) > 0);
    sd_config_destroy(cfg);
    sd_buf_fini(&err);
}

struct bench_arg {
    struct sd_state *st;
    int id, n;
};

static void *bench_main(void *p)
{
    struct bench_arg *a = p;
    char key[32], val[128];

    memset(val, 'v', sizeof(val));
    for (int i = 0; i < a->n; i++) {
        snprintf(key, sizeof(key), "b/%d/%d", a->id, i);
        assert_int_equal(sd_state_put(a->st, key, val, sizeof(val), 0, NULL), 0);
    }
    return NULL;
}

static double bench(struct sd_state *st, int threads, int per, uint64_t *syncs)
{
    pthread_t th[16];
    struct bench_arg args[16];
    struct sd_state_embedded_stats s0, s1;
    int64_t t0 = sd_now_us(), t1;

    sd_state_embedded_stats(st->ctx, &s0);
    for (int i = 0; i < threads; i++) {
        args[i] = (struct bench_arg){st, i, per};
        assert_int_equal(pthread_create(&th[i], NULL, bench_main, &args[i]), 0);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
    }
    t1 = sd_now_us();
    sd_state_embedded_stats(st->ctx, &s1);
    *syncs = s1.syncs - s0.syncs;
    return (double)(threads * per) * 1e6 / (double)(t1 - t0 > 0 ? t1 - t0 : 1);
}

static void test_group_commit(void **state)
{
    struct dir_fixture *fx = *state;
    struct sd_state *st = reopen(fx->dir);
    uint64_t syncs1, syncs8;
    double r1, r8;

    r1 = bench(st, 1, 400, &syncs1);
    r8 = bench(st, 8, 250, &syncs8);
    printf("# group commit: 1 thread %.0f puts/s (%llu syncs for 400), "
           "8 threads %.0f puts/s (%llu syncs for 2000)\n",
           r1, (unsigned long long)syncs1, r8, (unsigned long long)syncs8);
    assert_int_equal(syncs1, 400);
    assert_true(syncs8 < 2000);
    sd_state_close(st);
}

#define DIR_TEST(f) cmocka_unit_test_setup_teardown(f, dir_setup, dir_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        SC_CONTRACT_TESTS((void *)&embedded),
        DIR_TEST(test_persist_reopen),
        DIR_TEST(test_torn_tail),
        DIR_TEST(test_corrupt_middle),
        DIR_TEST(test_corrupt_snapshot),
        DIR_TEST(test_crash_durability),
        DIR_TEST(test_crash_midstream),
        DIR_TEST(test_compaction_reopen),
        DIR_TEST(test_interrupted_compaction),
        DIR_TEST(test_watch_compacted),
        DIR_TEST(test_watch_history_after_reopen),
        DIR_TEST(test_lock_exclusive),
        DIR_TEST(test_open_from_config),
        DIR_TEST(test_group_commit),
        DIR_TEST(test_log_enospc_recovers),
        DIR_TEST(test_log_eio_recovers),
        DIR_TEST(test_log_fault_racing_writers),
    };

    return cmocka_run_group_tests_name("state_embedded", tests, NULL, NULL);
}
