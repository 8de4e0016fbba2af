/* test_slice_writer.c: unit tests of pipeline/sd_slice_writer and pipeline/sd_slice_recover:
 * group commit from many threads, every compression mode, reopening, recovery at every cut
 * point of a file, garbage tails, injected write and fdatasync failures (through the
 * sd_slice_io seam), back-pressure, and a SIGKILL of a writing child process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/sd_alloc.h"
#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "core/sd_fs.h"
#include "pipeline/sd_gzip.h"
#include "pipeline/sd_slice_closed.h"
#include "pipeline/sd_slice_recover.h"
#include "pipeline/sd_slice_writer.h"

#include "test_inflate.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_SEQ (1u << 20)
#define MAX_FDS 1024

/* ---- helpers ---- */

struct tctx {
    char dir[4096];
};

static int setup_dir(void **state)
{
    const char *base = getenv("SD_TEST_TMPDIR");
    struct tctx *t = calloc(1, sizeof(*t));

    if (base == NULL || base[0] == '\0') {
        base = "/tmp";
    }
    sd_mkdir_p(base, 0755);
    snprintf(t->dir, sizeof(t->dir), "%s/test_slice_writer.XXXXXX", base);
    if (mkdtemp(t->dir) == NULL) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static int teardown_dir(void **state)
{
    struct tctx *t = *state;
    sd_rm_rf(t->dir);
    free(t);
    return 0;
}

static int gzip_t(const char *path)
{
    char cmd[8300];
    int st;

    snprintf(cmd, sizeof(cmd), "gzip -t '%s' 2>/dev/null", path);
    st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *file_path(const char *dir, const char *node, int n, int gz)
{
    char buf[8300];
    if (n <= 1) {
        snprintf(buf, sizeof(buf), gz ? "%s/.slice-%s.csv.gz" : "%s/slice-%s.csv", dir, node);
    } else {
        snprintf(buf, sizeof(buf), gz ? "%s/.slice-%s-%d.csv.gz" : "%s/slice-%s-%d.csv", dir, node,
                 n);
    }
    return strdup(buf);
}

/* Reads and decodes one slice file into out; returns members (gzip) or 0, -1 if invalid. */
static int read_file_content(const char *path, int gz, struct sd_buf *out, size_t *file_len)
{
    char *data = NULL;
    size_t len = 0;
    int rc;

    if (sd_read_file(path, &data, &len) != 0) {
        return -1;
    }
    if (file_len != NULL) {
        *file_len = len;
    }
    if (gz) {
        rc = sd_test_inflate_all(data, len, out);
    } else {
        sd_buf_append(out, data, len);
        rc = 0;
    }
    free(data);
    return rc;
}

/* Concatenated content of all files of a slice (file 1, 2, ...). */
static int read_slice(const char *dir, const char *node, int gz, struct sd_buf *out,
                      size_t *total_file_bytes)
{
    int members = 0;
    size_t total = 0;

    for (int n = 1; n < 100; n++) {
        char *p = file_path(dir, node, n, gz);
        size_t flen = 0;
        int rc;
        if (access(p, F_OK) != 0) {
            free(p);
            break;
        }
        rc = read_file_content(p, gz, out, &flen);
        free(p);
        if (rc < 0) {
            return -1;
        }
        members += rc;
        total += flen;
    }
    if (total_file_bytes != NULL) {
        *total_file_bytes = total;
    }
    return members;
}

/* Records the sync callbacks. */
struct rec {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t last_seq;
    uint64_t calls;
    uint64_t failed_batches;
    int order_violation;
    int last_rc;
    uint8_t *status; /* per seq: 0 unknown, 1 durable, 2 failed */
};

static void rec_init(struct rec *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->status = calloc(MAX_SEQ, 1);
}

static void rec_fini(struct rec *r)
{
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r->status);
}

static void rec_cb(void *arg, uint64_t seq, int rc)
{
    struct rec *r = arg;

    pthread_mutex_lock(&r->mu);
    if (seq <= r->last_seq || seq >= MAX_SEQ) {
        r->order_violation = 1;
    } else {
        for (uint64_t s = r->last_seq + 1; s <= seq; s++) {
            r->status[s] = rc == 0 ? 1 : 2;
        }
        r->last_seq = seq;
    }
    r->calls++;
    r->last_rc = rc;
    if (rc != 0) {
        r->failed_batches++;
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static int rec_wait(struct rec *r, uint64_t seq)
{
    int st;
    pthread_mutex_lock(&r->mu);
    while (r->last_seq < seq) {
        pthread_cond_wait(&r->cv, &r->mu);
    }
    st = r->status[seq];
    pthread_mutex_unlock(&r->mu);
    return st;
}

static void default_opts(struct sd_slice_writer_opts *o, const char *dir)
{
    memset(o, 0, sizeof(*o));
    o->dir = dir;
    o->node_id = "n1";
    o->compression = SD_COMPRESSION_GZIP;
    o->gzip_impl = SD_GZIP_FAST;
    o->gzip_level = 1;
    o->gzip_block_size = 256 * 1024;
    o->sync_mode = SD_SYNC_DISK;
    o->max_pending_bytes = 64 << 20;
}

static int make_row(char *buf, size_t cap, const char *tag, uint64_t i, size_t pad)
{
    int n =
        snprintf(buf, cap, "\"%s\",\"%llu\",\"multi\nline \"\"q\"\" ", tag, (unsigned long long)i);
    size_t len = (size_t)n;

    for (size_t k = 0; k < pad && len + 3 < cap; k++) {
        buf[len++] = (char)('a' + (i * 7 + k * 13) % 26);
    }
    buf[len++] = '"';
    buf[len++] = '\n';
    buf[len] = '\0';
    return (int)len;
}

/* Appends one row and waits for its callback; returns the status (1 durable, 2 failed) or
 * the append's error code. */
static int append_wait(struct sd_slice_writer *w, struct rec *r, const char *row, uint64_t *seq)
{
    uint64_t s = 0;
    int rc = sd_slice_writer_append(w, row, strlen(row), 1, 1000, &s);
    if (rc != 0) {
        return rc;
    }
    if (seq != NULL) {
        *seq = s;
    }
    return rec_wait(r, s);
}

/* ---- fault injection through sd_slice_io ---- */

struct fault {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int write_calls;
    int fail_write[8]; /* call numbers (1-based) to fail */
    int partial_write; /* write half of the data before failing */
    int write_errno;
    int sync_calls;
    int fail_sync[8];
    int sync_errno;
    int fd_syncs[MAX_FDS];
    int fd_failed[MAX_FDS];
    int syncs_after_failure; /* fdatasync on an fd after it failed: must stay 0 */
    const char *fail_open_substr;
    int sync_delay_ms;
    int gate_closed; /* fdatasync blocks while set */
};

static void fault_init(struct fault *f)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->write_errno = ENOSPC;
    f->sync_errno = EIO;
}

static void fault_fini(struct fault *f)
{
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
}

static int in_list(const int *list, int n)
{
    for (int i = 0; i < 8; i++) {
        if (list[i] == n) {
            return 1;
        }
    }
    return 0;
}

static int fault_open(void *arg, const char *path, int flags, mode_t mode)
{
    struct fault *f = arg;
    if (f->fail_open_substr != NULL && strstr(path, f->fail_open_substr) != NULL) {
        errno = EACCES;
        return -1;
    }
    return open(path, flags, mode);
}

static ssize_t fault_pwrite(void *arg, int fd, const void *buf, size_t len, off_t off)
{
    struct fault *f = arg;
    int n;

    pthread_mutex_lock(&f->mu);
    n = ++f->write_calls;
    pthread_mutex_unlock(&f->mu);
    if (in_list(f->fail_write, n)) {
        if (f->partial_write && len > 1) {
            (void)!pwrite(fd, buf, len / 2, off);
        }
        errno = f->write_errno;
        return -1;
    }
    return pwrite(fd, buf, len, off);
}

static int fault_fdatasync(void *arg, int fd)
{
    struct fault *f = arg;
    int n;
    int fail;

    pthread_mutex_lock(&f->mu);
    while (f->gate_closed) {
        pthread_cond_wait(&f->cv, &f->mu);
    }
    n = ++f->sync_calls;
    if (fd >= 0 && fd < MAX_FDS) {
        f->fd_syncs[fd]++;
        if (f->fd_failed[fd]) {
            f->syncs_after_failure++;
        }
    }
    fail = in_list(f->fail_sync, n);
    if (fail && fd >= 0 && fd < MAX_FDS) {
        f->fd_failed[fd] = 1;
    }
    pthread_mutex_unlock(&f->mu);
    if (f->sync_delay_ms > 0) {
        usleep((useconds_t)f->sync_delay_ms * 1000);
    }
    if (fail) {
        errno = f->sync_errno;
        return -1;
    }
    return fdatasync(fd);
}

static void fault_set_gate(struct fault *f, int closed)
{
    pthread_mutex_lock(&f->mu);
    f->gate_closed = closed;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static struct sd_slice_io fault_io(struct fault *f)
{
    struct sd_slice_io io = {fault_open, fault_pwrite, fault_fdatasync, NULL, f};
    return io;
}

/* Writer options on dir whose I/O goes through the (configured) fault f, and a fresh record of
 * its callbacks. */
static void faulty_writer_opts(const char *dir, struct fault *f, struct sd_slice_io *io,
                               struct rec *r, struct sd_slice_writer_opts *o)
{
    *io = fault_io(f);
    rec_init(r);
    default_opts(o, dir);
    o->io = io;
}

/* ---- many threads ---- */

struct app_rec {
    uint64_t seq;
    uint32_t len;
    char *row;
};

struct thr {
    struct sd_slice_writer *w;
    int id;
    int count;
    size_t pad;
    struct app_rec *recs;
    uint32_t rows_total;
};

static void *thr_main(void *arg)
{
    struct thr *t = arg;
    char buf[8192];

    for (int i = 0; i < t->count; i++) {
        char tag[32];
        int n;
        uint32_t nrows = 1;
        int rc;
        snprintf(tag, sizeof(tag), "t%d", t->id);
        n = make_row(buf, sizeof(buf), tag, (uint64_t)i, t->pad + (size_t)(i % 7) * 11);
        if (i % 5 == 0) { /* some appends carry two rows */
            n += make_row(buf + n, sizeof(buf) - (size_t)n, tag, (uint64_t)i + 1000000, 3);
            nrows = 2;
        }
        do {
            rc = sd_slice_writer_append(t->w, buf, (size_t)n, nrows, 1700000000000 + i,
                                        &t->recs[i].seq);
            if (rc == SD_ELIMIT) {
                usleep(200);
            }
        } while (rc == SD_ELIMIT);
        if (rc != 0) {
            t->recs[i].seq = 0;
            continue;
        }
        t->recs[i].row = strndup(buf, (size_t)n);
        t->recs[i].len = (uint32_t)n;
        t->rows_total += nrows;
    }
    return NULL;
}

static int cmp_app(const void *a, const void *b)
{
    const struct app_rec *x = a;
    const struct app_rec *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* nthreads x count appends; checks callbacks, content, stats. Returns members. */
static int run_threads(const struct tctx *t, struct sd_slice_writer_opts *o, int nthreads,
                       int count, size_t pad)
{
    struct sd_slice_writer *w = NULL;
    struct rec r;
    struct thr th[16];
    pthread_t tids[16];
    struct app_rec *all = calloc((size_t)nthreads * (size_t)count, sizeof(*all));
    size_t nall = 0;
    uint64_t rows = 0;
    struct sd_buf expect = SD_BUF_INIT;
    struct sd_buf got = SD_BUF_INIT;
    struct sd_slice_stats st;
    struct sd_slice_stats rst;
    size_t file_bytes = 0;
    int gz = o->compression == SD_COMPRESSION_GZIP;
    int members;

    rec_init(&r);
    o->dir = t->dir;
    assert_int_equal(sd_slice_writer_open(o, rec_cb, &r, &w, &rst), 0);
    assert_int_equal(rst.records, 0);
    for (int i = 0; i < nthreads; i++) {
        th[i].w = w;
        th[i].id = i;
        th[i].count = count;
        th[i].pad = pad;
        th[i].recs = calloc((size_t)count, sizeof(struct app_rec));
        th[i].rows_total = 0;
        pthread_create(&tids[i], NULL, thr_main, &th[i]);
    }
    for (int i = 0; i < nthreads; i++) {
        pthread_join(tids[i], NULL);
        for (int k = 0; k < count; k++) {
            if (th[i].recs[k].seq != 0) {
                all[nall++] = th[i].recs[k];
            }
        }
        rows += th[i].rows_total;
        free(th[i].recs);
    }
    assert_int_equal(nall, (size_t)nthreads * (size_t)count);
    assert_int_equal(sd_slice_writer_close(w, &st), 0);
    qsort(all, nall, sizeof(*all), cmp_app);
    for (size_t i = 0; i < nall; i++) {
        assert_int_equal(all[i].seq, i + 1); /* seqs are dense from 1 */
        sd_buf_append(&expect, all[i].row, all[i].len);
        free(all[i].row);
    }
    free(all);
    /* Every seq acknowledged, in order, with rc 0. */
    assert_false(r.order_violation);
    assert_int_equal(r.last_seq, nall);
    assert_int_equal(r.failed_batches, 0);
    for (size_t s = 1; s <= nall; s++) {
        assert_int_equal(r.status[s], 1);
    }
    members = read_slice(t->dir, "n1", gz, &got, &file_bytes);
    assert_true(members >= 0);
    assert_int_equal(got.len, expect.len);
    assert_memory_equal(got.data, expect.data, expect.len);
    assert_int_equal(st.records, rows);
    assert_int_equal(st.uncompressed_bytes, expect.len);
    assert_int_equal(st.compressed_bytes, file_bytes);
    assert_int_equal(st.first_record_ms, 1700000000000);
    assert_int_equal(st.last_record_ms, 1700000000000 + count - 1);
    if (gz) {
        char *p = file_path(t->dir, "n1", 1, 1);
        assert_int_equal(gzip_t(p), 0);
        free(p);
    }
    sd_buf_fini(&expect);
    sd_buf_fini(&got);
    rec_fini(&r);
    return members;
}

static void test_threads_fast(void **state)
{
    struct sd_slice_writer_opts o;
    default_opts(&o, NULL);
    run_threads(*state, &o, 8, 400, 200);
}

static void test_threads_standard(void **state)
{
    struct sd_slice_writer_opts o;
    default_opts(&o, NULL);
    o.gzip_impl = SD_GZIP_STANDARD;
    o.gzip_level = 6;
    run_threads(*state, &o, 4, 300, 100);
}

/* Parallel with a small block size and slow syncs, so batches span many members. */
static void test_threads_parallel(void **state)
{
    struct sd_slice_writer_opts o;
    struct fault f;
    struct sd_slice_io io;
    int members;

    fault_init(&f);
    f.sync_delay_ms = 15;
    io = fault_io(&f);
    default_opts(&o, NULL);
    o.gzip_impl = SD_GZIP_PARALLEL;
    o.gzip_concurrency = 3;
    o.gzip_block_size = 16 * 1024;
    o.io = &io;
    members = run_threads(*state, &o, 6, 400, 600);
    /* ~1.2 MB of rows in 16 KiB blocks. */
    assert_true(members >= 40);
    fault_fini(&f);
}

static void test_threads_cache_mode(void **state)
{
    struct sd_slice_writer_opts o;
    struct fault f;
    struct sd_slice_io io;

    fault_init(&f);
    io = fault_io(&f);
    default_opts(&o, NULL);
    o.sync_mode = SD_SYNC_CACHE;
    o.io = &io;
    run_threads(*state, &o, 4, 300, 50);
    /* Cache mode: only the close syncs. */
    assert_int_equal(f.sync_calls, 1);
    fault_fini(&f);
}

static void test_threads_no_compression(void **state)
{
    struct sd_slice_writer_opts o;
    struct tctx *t = *state;
    char *p;
    default_opts(&o, NULL);
    o.compression = SD_COMPRESSION_NONE;
    run_threads(t, &o, 4, 300, 50);
    p = file_path(t->dir, "n1", 1, 0);
    assert_int_equal(access(p, F_OK), 0);
    free(p);
}

/* Members end at the first append boundary where the input reaches the block size. */
static void test_block_size(void **state)
{
    struct tctx *t = *state;
    struct sd_slice_writer_opts o;
    struct sd_slice_writer *w = NULL;
    struct rec r;
    struct sd_buf got = SD_BUF_INIT;
    char row[400];

    rec_init(&r);
    default_opts(&o, t->dir);
    o.gzip_block_size = 1000;
    assert_int_equal(sd_slice_writer_open(&o, rec_cb, &r, &w, NULL), 0);
    memset(row, 'x', 299);
    row[0] = '"';
    row[297] = '"';
    row[298] = '\n';
    row[299] = '\0';
    for (int i = 0; i < 10; i++) {
        assert_int_equal(append_wait(w, &r, row, NULL), 1);
    }
    assert_int_equal(sd_slice_writer_close(w, NULL), 0);
    /* 4 appends (1196 bytes) per member: 4 + 4 + 2. */
    assert_int_equal(read_slice(t->dir, "n1", 1, &got, NULL), 3);
    assert_int_equal(got.len, 2990);
    sd_buf_fini(&got);
    rec_fini(&r);
}

/* ---- reopen ---- */

static void reopen_case(const struct tctx *t, enum sd_compression comp)
{
    struct sd_slice_writer_opts o;
    struct sd_slice_writer *w = NULL;
    struct rec r;
    struct sd_slice_stats rst;
    struct sd_slice_stats st;
    struct sd_buf expect = SD_BUF_INIT;
    struct sd_buf got = SD_BUF_INIT;
    char row[512];
    size_t file_bytes = 0;
    int gz = comp == SD_COMPRESSION_GZIP;

    default_opts(&o, t->dir);
    o.compression = comp;
    for (int session = 0; session < 3; session++) {
        rec_init(&r);
        assert_int_equal(sd_slice_writer_open(&o, rec_cb, &r, &w, &rst), 0);
        assert_int_equal(rst.records, (uint64_t)session * 20);
        assert_int_equal(rst.uncompressed_bytes, expect.len);
        for (int i = 0; i < 20; i++) {
            int n = make_row(row, sizeof(row), "s", (uint64_t)(session * 100 + i), 40);
            sd_buf_append(&expect, row, (size_t)n);
            assert_int_equal(append_wait(w, &r, row, NULL), 1);
        }
        assert_int_equal(sd_slice_writer_close(w, &st), 0);
        assert_int_equal(st.records, (uint64_t)(session + 1) * 20);
        rec_fini(&r);
    }
    assert_true(read_slice(t->dir, "n1", gz, &got, &file_bytes) >= (gz ? 3 : 0));
    assert_int_equal(got.len, expect.len);
    assert_memory_equal(got.data, expect.data, expect.len);
    assert_int_equal(st.compressed_bytes, file_bytes);
    assert_int_equal(st.uncompressed_bytes, expect.len);
    sd_buf_fini(&expect);
    sd_buf_fini(&got);
}

static void test_reopen_gzip(void **state)
{
    reopen_case(*state, SD_COMPRESSION_GZIP);
}

static void test_reopen_none(void **state)
{
    reopen_case(*state, SD_COMPRESSION_NONE);
}

static void test_invalid_opts(void **state)
{
    struct tctx *t = *state;
    struct sd_slice_writer_opts o;
    struct sd_slice_writer *w = NULL;

    default_opts(&o, t->dir);
    o.node_id = "a/b";
    assert_int_equal(sd_slice_writer_open(&o, rec_cb, NULL, &w, NULL), SD_EINVAL);
    default_opts(&o, t->dir);
    o.gzip_level = 10;
    assert_int_equal(sd_slice_writer_open(&o, rec_cb, NULL, &w, NULL), SD_EINVAL);
    assert_null(w);
}

static void test_allocate(void **state)
{
    struct tctx *t = *state;
    struct sd_slice_writer_opts o;
    struct sd_slice_writer *w = NULL;
    struct rec r;
    struct sd_slice_stats st;
    struct stat sb;
    char row[512];
    char *p;

    rec_init(&r);
    default_opts(&o, t->dir);
    o.allocate = 1;
    o.allocate_bytes = 4 << 20;
    assert_int_equal(sd_slice_writer_open(&o, rec_cb, &r, &w, NULL), 0);
    p = file_path(t->dir, "n1", 1, 1);
    /* An idle writer reserves nothing; the first data reserves the space, close cuts the
     * unused rest. */
    assert_int_equal(stat(p, &sb), 0);
    assert_true((int64_t)sb.st_blocks * 512 < (1 << 20));
    make_row(row, sizeof(row), "a", 1, 10);
    assert_int_equal(append_wait(w, &r, row, NULL), 1);
    assert_int_equal(stat(p, &sb), 0);
    assert_true((int64_t)sb.st_blocks * 512 >= (4 << 20));
    /* The reservation sets the size (a batch's sync then writes no new size). */
    assert_int_equal(sb.st_size, 4 << 20);
    assert_int_equal(append_wait(w, &r, row, NULL), 1);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_size, 4 << 20);
    assert_int_equal(sd_slice_writer_close(w, &st), 0);
    assert_int_equal(stat(p, &sb), 0);
    assert_true((int64_t)sb.st_blocks * 512 < (1 << 20));
    assert_int_equal((uint64_t)sb.st_size, st.compressed_bytes);
    assert_int_equal(sb.st_mode & 0777, SD_FILE_MODE);
    assert_int_equal(gzip_t(p), 0);
    free(p);
    rec_fini(&r);
}

/* A file caught while its writer has a reservation (as a crash leaves it: the synced rows,
 * then zeros up to the reserved size) recovers to exactly its synced rows. */
static void allocated_crash_case(const struct tctx *t, enum sd_compression comp)
{
    struct sd_slice_writer_opts o;
    struct sd_slice_writer *w = NULL;
    struct rec r;
    struct sd_slice_stats st;
    struct sd_buf expect = SD_BUF_INIT;
    struct sd_buf got = SD_BUF_INIT;
    char *copy = sd_xasprintf("%s/crashed", t->dir);
    char *p = file_path(t->dir, "n1", 1, comp == SD_COMPRESSION_GZIP);
    char *data = NULL;
    size_t len = 0;
    char row[512];

    rec_init(&r);
    default_opts(&o, t->dir);
    o.compression = comp;
    o.allocate = 1;
    o.allocate_bytes = 1 << 20;
    assert_int_equal(sd_slice_writer_open(&o, rec_cb, &r, &w, NULL), 0);
    for (int i = 0; i < 3; i++) {
        int n = make_row(row, sizeof(row), "c", (uint64_t)i, 30);
        sd_buf_append(&expect, row, (size_t)n);
        assert_int_equal(append_wait(w, &r, row, NULL), 1);
    }
    assert_int_equal(sd_read_file(p, &data, &len), 0);
    assert_int_equal(len, 1 << 20);
    assert_int_equal(data[len - 1], 0);
    assert_int_equal(sd_write_file_atomic(copy, data, len, SD_FILE_MODE), 0);
    assert_int_equal(sd_slice_recover(copy, &st), 0);
    assert_int_equal(st.records, 3);
    assert_int_equal(read_file_content(copy, comp == SD_COMPRESSION_GZIP, &got, &len),
                     comp == SD_COMPRESSION_GZIP ? 1 : 0);
    assert_int_equal(len, st.compressed_bytes);
    assert_int_equal(got.len, expect.len);
    assert_memory_equal(got.data, expect.data, expect.len);
    assert_int_equal(sd_slice_writer_close(w, NULL), 0);
    free(data);
    free(copy);
    free(p);
    sd_buf_fini(&expect);
    sd_buf_fini(&got);
    rec_fini(&r);
}

static void test_allocate_crash_gzip(void **state)
{
    allocated_crash_case(*state, SD_COMPRESSION_GZIP);
}

static void test_allocate_crash_none(void **state)
{
    allocated_crash_case(*state, SD_COMPRESSION_NONE);
}

/* The writes of a writer: how many bytes went to the file, and how many of them were zeros
 * written at or after the highest offset data reached. */
struct write_log {
    uint64_t data_end;
    uint64_t zero_bytes;
    uint64_t zero_end;
};

static ssize_t logged_pwrite(void *arg, int fd, const void *buf, size_t len, off_t off)
{
    struct write_log *l = arg;
    const char *p = buf;
    size_t i = 0;

    while (i < len && p[i] == 0) {
        i++;
    }
    if (len >= 4096 && i == len) {
        l->zero_bytes += len;
        l->zero_end = (uint64_t)off + len;
    } else if ((uint64_t)off + len > l->data_end) {
        l->data_end = (uint64_t)off + len;
    }
    return pwrite(fd, buf, len, off);
}

/* Opens a writer of plain CSV in dir reserving 1.5 MiB per file, its I/O through io, and a
 * fresh record r of its callbacks. */
static void open_reserving(const char *dir, const struct sd_slice_io *io, struct rec *r,
                           struct sd_slice_writer **w)
{
    struct sd_slice_writer_opts o;

    rec_init(r);
    default_opts(&o, dir);
    o.compression = SD_COMPRESSION_NONE;
    o.allocate = 1;
    o.allocate_bytes = (3 << 20) / 2;
    o.io = io;
    assert_int_equal(sd_slice_writer_open(&o, rec_cb, r, w, NULL), 0);
}

/* The batch whose data reaches unwritten reserved blocks writes a mebibyte of zeros after its
 * data (synced with it); the batches after it overwrite them and write none. A slice outgrowing
 * its reservation extends it (by 4 MiB at least) and goes on zeroing ahead; close cuts the
 * file at its data. */
static void test_allocate_zero_ahead(void **state)
{
    struct tctx *t = *state;
    struct sd_slice_writer *w = NULL;
    struct write_log l = {0, 0, 0};
    struct sd_slice_io io = {NULL, logged_pwrite, NULL, NULL, &l};
    struct sd_slice_stats st;
    struct rec r;
    struct stat sb;
    char row[512];
    char *p = file_path(t->dir, "n1", 1, 0);
    uint64_t first_end;

    open_reserving(t->dir, &io, &r, &w);
    make_row(row, sizeof(row), "z", 1, 300);
    assert_int_equal(append_wait(w, &r, row, NULL), 1);
    first_end = l.data_end;
    assert_int_equal(l.zero_end, first_end + (1 << 20));
    assert_int_equal(l.zero_bytes, 1 << 20);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(append_wait(w, &r, row, NULL), 1);
    }
    assert_int_equal(l.zero_bytes, 1 << 20);
    /* Past the zeros: the rest of the reservation, which does not grow yet. */
    while (l.data_end <= first_end + (1 << 20)) {
        assert_int_equal(append_wait(w, &r, row, NULL), 1);
    }
    assert_int_equal(l.zero_end, (3 << 20) / 2);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_size, (3 << 20) / 2);
    /* The data outgrew it: 4 MiB more after the data, and zeros a mebibyte ahead again. */
    while (l.data_end <= (3 << 20) / 2) {
        assert_int_equal(append_wait(w, &r, row, NULL), 1);
    }
    assert_int_equal(l.zero_end, l.data_end + (1 << 20));
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal((uint64_t)sb.st_size, l.data_end + (4 << 20));
    assert_int_equal(sd_slice_writer_close(w, &st), 0);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal((uint64_t)sb.st_size, st.compressed_bytes);
    assert_int_equal((uint64_t)sb.st_size, l.data_end);
    free(p);
    rec_fini(&r);
}

/* A volume as fstatvfs reports it to the writer (real I/O otherwise). */
struct fake_volume {
    uint64_t total;
    uint64_t avail;
};

static int fake_fstatvfs(void *arg, int fd, struct statvfs *out)
{
    const struct fake_volume *v = arg;

    (void)fd;
    memset(out, 0, sizeof(*out));
    out->f_frsize = 4096;
    out->f_bsize = 4096;
    out->f_blocks = v->total / 4096;
    out->f_bavail = v->avail / 4096;
    return 0;
}

/* Blocks of the first slice file of node in dir after one durable row. */
static int64_t blocks_after_one_row(const char *dir, const char *node, const struct sd_slice_io *io)
{
    struct sd_slice_writer_opts o;
    struct sd_slice_writer *w = NULL;
    struct rec r;
    struct stat sb;
    char row[128];
    char *p = file_path(dir, node, 1, 1);

    rec_init(&r);
    default_opts(&o, dir);
    o.node_id = node;
    o.allocate = 1;
    o.allocate_bytes = 4 << 20;
    o.io = io;
    assert_int_equal(sd_slice_writer_open(&o, rec_cb, &r, &w, NULL), 0);
    make_row(row, sizeof(row), "v", 1, 10);
    assert_int_equal(append_wait(w, &r, row, NULL), 1);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sd_slice_writer_close(w, NULL), 0);
    free(p);
    rec_fini(&r);
    return (int64_t)sb.st_blocks * 512;
}

/* A reservation never takes the volume below a tenth of its size free. */
static void test_allocate_keeps_volume_floor(void **state)
{
    struct tctx *t = *state;
    struct fake_volume v = {(uint64_t)1 << 30, (uint64_t)100 << 20};
    struct sd_slice_io io = {NULL, NULL, NULL, fake_fstatvfs, &v};

    /* 100 MiB free of 1 GiB: under the 102.4 MiB floor, no reservation. */
    assert_true(blocks_after_one_row(t->dir, "low", &io) < (1 << 20));
    /* 500 MiB free: 4 MiB fit above the floor. */
    v.avail = (uint64_t)500 << 20;
    assert_true(blocks_after_one_row(t->dir, "high", &io) >= (4 << 20));
}

/* A reservation that would take the volume below its floor does not grow: the slice goes on
 * appending past it. */
static void test_allocate_growth_keeps_volume_floor(void **state)
{
    struct tctx *t = *state;
    /* 1 GiB volume, 104.4 MiB free: the 1.5 MiB reservation fits above the 102.4 MiB floor, 4
     * MiB more do not. */
    struct fake_volume v = {(uint64_t)1 << 30, ((uint64_t)1 << 30) / 10 + (2 << 20)};
    struct sd_slice_io io = {NULL, NULL, NULL, fake_fstatvfs, &v};
    struct sd_slice_writer *w = NULL;
    struct sd_slice_stats now;
    struct rec r;
    struct stat sb;
    char row[512];
    char *p = file_path(t->dir, "n1", 1, 0);

    open_reserving(t->dir, &io, &r, &w);
    make_row(row, sizeof(row), "f", 1, 300);
    assert_int_equal(append_wait(w, &r, row, NULL), 1);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_size, (3 << 20) / 2);
    do {
        assert_int_equal(append_wait(w, &r, row, NULL), 1);
        sd_slice_writer_stats(w, &now);
    } while (now.compressed_bytes <= (3 << 20) / 2);
    assert_int_equal(append_wait(w, &r, row, NULL), 1);
    sd_slice_writer_stats(w, &now);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal((uint64_t)sb.st_size, now.compressed_bytes);
    assert_int_equal(sd_slice_writer_close(w, NULL), 0);
    free(p);
    rec_fini(&r);
}

/* ---- recovery ---- */

/* A 3-member file as the writer makes it: members 1 and 2 finished, member 3 open; every
 * batch ends with a sync flush. sync_off/sync_len: file offset and content length after
 * each batch. */
struct built {
    struct sd_buf file;
    struct sd_buf content;
    size_t sync_off[16];
    size_t sync_len[16];
    int nsync;
};

static void build_file(struct built *b, enum sd_gzip_impl impl, int finish_last)
{
    struct sd_gzip *gz = NULL;
    char row[600];
    uint64_t i = 0;

    memset(b, 0, sizeof(*b));
    assert_int_equal(sd_gzip_create(impl, 1, &gz), 0);
    for (int member = 0; member < 3; member++) {
        for (int batch = 0; batch < 3; batch++) {
            struct sd_buf in = SD_BUF_INIT;
            int finish = batch == 2 && (member < 2 || finish_last);
            for (int k = 0; k < 1 + batch; k++, i++) {
                int n = make_row(row, sizeof(row), "r", i, (size_t)((i * 37) % 60));
                sd_buf_append(&in, row, (size_t)n);
            }
            sd_gzip_compress(gz, in.data, in.len, finish, &b->file);
            sd_buf_append(&b->content, in.data, in.len);
            b->sync_off[b->nsync] = b->file.len;
            b->sync_len[b->nsync] = b->content.len;
            b->nsync++;
            sd_buf_fini(&in);
        }
    }
    sd_gzip_destroy(gz);
}

static void built_fini(struct built *b)
{
    sd_buf_fini(&b->file);
    sd_buf_fini(&b->content);
}

/* Rows counted as recovery counts them (per member; '\n' outside quotes). */
static uint64_t count_rows(const char *p, size_t n, int *ends_at_row)
{
    int q = 0;
    uint64_t rows = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '"') {
            q = !q;
        } else if (p[i] == '\n' && !q) {
            rows++;
        }
    }
    *ends_at_row = n == 0 || (!q && p[n - 1] == '\n');
    return rows;
}

static void check_cut_points(const struct tctx *t, enum sd_gzip_impl impl)
{
    struct built b;
    char path[4200];

    build_file(&b, impl, 0);
    snprintf(path, sizeof(path), "%s/.slice-cut.csv.gz", t->dir);
    for (size_t cut = 0; cut <= b.file.len; cut++) {
        struct sd_slice_stats st;
        struct sd_buf got = SD_BUF_INIT;
        size_t flen = 0;
        size_t synced = 0;
        int at_row;
        uint64_t rows;
        for (int k = 0; k < b.nsync; k++) {
            if (b.sync_off[k] <= cut) {
                synced = b.sync_len[k];
            }
        }
        assert_int_equal(sd_write_file_atomic(path, b.file.data, cut, 0640), 0);
        assert_int_equal(sd_slice_recover(path, &st), 0);
        assert_true(read_file_content(path, 1, &got, &flen) >= 0);
        /* A prefix of the rows, holding every synced row, ending at a row end. */
        assert_true(got.len >= synced);
        assert_true(got.len <= b.content.len);
        assert_memory_equal(got.data, b.content.data, got.len);
        rows = count_rows(got.data, got.len, &at_row);
        assert_true(at_row);
        assert_int_equal(st.records, rows);
        assert_int_equal(st.uncompressed_bytes, got.len);
        assert_int_equal(st.compressed_bytes, flen);
        /* A cut exactly at a sync point keeps exactly the synced rows. */
        for (int k = 0; k < b.nsync; k++) {
            if (b.sync_off[k] == cut) {
                assert_int_equal(got.len, b.sync_len[k]);
            }
        }
        if (cut % 211 == 0 || cut == b.file.len) {
            assert_int_equal(gzip_t(path), 0);
            /* Recovery of a recovered file changes nothing. */
            assert_int_equal(sd_slice_recover(path, &st), 0);
            {
                size_t flen2 = 0;
                struct sd_buf again = SD_BUF_INIT;
                read_file_content(path, 1, &again, &flen2);
                assert_int_equal(flen2, flen);
                assert_int_equal(again.len, got.len);
                sd_buf_fini(&again);
            }
        }
        sd_buf_fini(&got);
    }
    built_fini(&b);
}

static void test_recover_every_cut_fast(void **state)
{
    check_cut_points(*state, SD_GZIP_FAST);
}

static void test_recover_every_cut_zlib(void **state)
{
    check_cut_points(*state, SD_GZIP_STANDARD);
}

static void recover_expect(const char *path, const void *data, size_t len, const char *expect,
                           size_t expect_len, int expect_members)
{
    struct sd_slice_stats st;
    struct sd_buf got = SD_BUF_INIT;
    size_t flen = 0;

    assert_int_equal(sd_write_file_atomic(path, data, len, 0640), 0);
    assert_int_equal(sd_slice_recover(path, &st), 0);
    assert_int_equal(read_file_content(path, 1, &got, &flen), expect_members);
    assert_int_equal(got.len, expect_len);
    assert_memory_equal(got.data, expect, expect_len);
    assert_int_equal(st.compressed_bytes, flen);
    assert_int_equal(gzip_t(path), 0);
    sd_buf_fini(&got);
}

static void test_recover_garbage(void **state)
{
    struct tctx *t = *state;
    struct built b;
    struct sd_buf f = SD_BUF_INIT;
    char path[4200];
    unsigned char junk[4096];
    size_t m1_end;

    build_file(&b, SD_GZIP_FAST, 1);
    snprintf(path, sizeof(path), "%s/.slice-g.csv.gz", t->dir);
    srand(7);
    for (size_t i = 0; i < sizeof(junk); i++) {
        junk[i] = (unsigned char)rand();
    }
    /* Valid file + random tail: the file is cut back to exactly the valid members. */
    for (size_t n = 1; n < sizeof(junk); n = n * 3 + 1) {
        f.len = 0;
        sd_buf_append(&f, b.file.data, b.file.len);
        sd_buf_append(&f, junk, n);
        recover_expect(path, f.data, f.len, b.content.data, b.content.len, 3);
    }
    /* Zeros after the data (a power loss extending the size). */
    memset(junk, 0, sizeof(junk));
    f.len = 0;
    sd_buf_append(&f, b.file.data, b.file.len);
    sd_buf_append(&f, junk, sizeof(junk));
    recover_expect(path, f.data, f.len, b.content.data, b.content.len, 3);
    /* A gzip magic followed by junk. */
    f.len = 0;
    sd_buf_append(&f, b.file.data, b.file.len);
    sd_buf_append(&f, "\x1f\x8b\x08\x00garbage", 11);
    recover_expect(path, f.data, f.len, b.content.data, b.content.len, 3);
    /* Garbage between member 1 and member 2: only member 1 is kept. */
    m1_end = b.sync_off[2];
    f.len = 0;
    sd_buf_append(&f, b.file.data, m1_end);
    sd_buf_append(&f, "GARBAGE!", 8);
    sd_buf_append(&f, b.file.data + m1_end, b.file.len - m1_end);
    recover_expect(path, f.data, f.len, b.content.data, b.sync_len[2], 1);
    /* A bad trailer CRC on the last member: its rows up to the last flush are kept. */
    f.len = 0;
    sd_buf_append(&f, b.file.data, b.file.len);
    f.data[f.len - 6] ^= 0x55;
    recover_expect(path, f.data, f.len, b.content.data, b.sync_len[7], 3);
    /* An empty file gets an empty member. */
    recover_expect(path, "", 0, "", 0, 1);
    sd_buf_fini(&f);
    built_fini(&b);
}

static void test_recover_plain(void **state)
{
    struct tctx *t = *state;
    char path[4200];
    const char *data = "\"a\",\"b\"\n\"c\",\"multi\nline \"\"x\"\"\"\n\"partial\",\"ro";
    const char *keep = "\"a\",\"b\"\n\"c\",\"multi\nline \"\"x\"\"\"\n";
    struct sd_slice_stats st;
    char *back = NULL;
    size_t len = 0;

    snprintf(path, sizeof(path), "%s/slice-p.csv", t->dir);
    assert_int_equal(sd_write_file_atomic(path, data, strlen(data), 0640), 0);
    assert_int_equal(sd_slice_recover(path, &st), 0);
    assert_int_equal(sd_read_file(path, &back, &len), 0);
    assert_int_equal(len, strlen(keep));
    assert_memory_equal(back, keep, len);
    assert_int_equal(st.records, 2);
    assert_int_equal(st.uncompressed_bytes, len);
    assert_int_equal(st.compressed_bytes, len);
    free(back);
    /* A NUL byte (never written by streamd) starts garbage. */
    assert_int_equal(sd_write_file_atomic(path, "\"a\"\n\"b\"\n\0\"c\"\n", 13, 0640), 0);
    assert_int_equal(sd_slice_recover(path, &st), 0);
    assert_int_equal(sd_read_file(path, &back, &len), 0);
    assert_int_equal(len, 8);
    assert_int_equal(st.records, 2);
    free(back);
    assert_int_equal(sd_slice_recover("/nonexistent/slice-x.csv", &st), -ENOENT);
}

/* ---- failure injection ---- */

static void write_failure_case(const struct tctx *t, enum sd_compression comp, const int *fails,
                               int partial)
{
    struct sd_slice_writer_opts o;
    struct sd_slice_writer *w = NULL;
    struct fault f;
    struct sd_slice_io io;
    struct rec r;
    struct sd_buf expect = SD_BUF_INIT;
    struct sd_buf got = SD_BUF_INIT;
    struct sd_slice_stats st;
    char row[512];
    int gz = comp == SD_COMPRESSION_GZIP;
    int failed = 0;
    size_t flen = 0;

    fault_init(&f);
    memcpy(f.fail_write, fails, sizeof(f.fail_write));
    f.partial_write = partial;
    io = fault_io(&f);
    rec_init(&r);
    default_opts(&o, t->dir);
    o.compression = comp;
    o.io = &io;
    assert_int_equal(sd_slice_writer_open(&o, rec_cb, &r, &w, NULL), 0);
    for (int i = 0; i < 12; i++) {
        int n = make_row(row, sizeof(row), "w", (uint64_t)i, 30 + (size_t)i);
        int s = append_wait(w, &r, row, NULL);
        assert_true(s == 1 || s == 2);
        if (s == 1) {
            sd_buf_append(&expect, row, (size_t)n);
        } else {
            failed++;
        }
    }
    assert_true(failed >= 1);
    assert_int_equal(r.failed_batches, (uint64_t)failed);
    assert_false(sd_slice_writer_is_unhealthy(w));
    assert_int_equal(sd_slice_writer_close(w, &st), 0);
    assert_true(read_slice(t->dir, "n1", gz, &got, &flen) >= 0);
    assert_int_equal(got.len, expect.len);
    assert_memory_equal(got.data, expect.data, expect.len);
    assert_int_equal(st.records, 12 - (uint64_t)failed);
    assert_int_equal(st.uncompressed_bytes, expect.len);
    assert_int_equal(st.compressed_bytes, flen);
    if (gz) {
        char *p = file_path(t->dir, "n1", 1, 1);
        assert_int_equal(gzip_t(p), 0);
        free(p);
    }
    sd_buf_fini(&expect);
    sd_buf_fini(&got);
    rec_fini(&r);
    fault_fini(&f);
}

static void test_write_failure(void **state)
{
    int fails[8] = {3};
    write_failure_case(*state, SD_COMPRESSION_GZIP, fails, 0);
}

static void test_write_failure_partial(void **state)
{
    int fails[8] = {3, 7};
    write_failure_case(*state, SD_COMPRESSION_GZIP, fails, 1);
}

/* failed_batches_threshold (encoding.failedChunksThreshold): not ready after that many failed
 * batches in a row, still accepting appends, ready again after a successful batch. */
static void test_failed_batches_threshold(void **state)
{
    const struct tctx *t = *state;
    struct sd_slice_writer_opts o;
    struct sd_slice_writer *w = NULL;
    struct fault f;
    struct sd_slice_io io;
    struct rec r;
    char row[64];

    fault_init(&f);
    f.fail_write[0] = 1; /* plain files: one write per batch */
    f.fail_write[1] = 2;
    f.fail_write[2] = 3;
    f.fail_write[3] = 5;
    io = fault_io(&f);
    rec_init(&r);
    default_opts(&o, t->dir);
    o.compression = SD_COMPRESSION_NONE;
    o.failed_batches_threshold = 3;
    o.io = &io;
    assert_int_equal(sd_slice_writer_open(&o, rec_cb, &r, &w, NULL), 0);
    make_row(row, sizeof(row), "t", 1, 10);
    assert_int_equal(append_wait(w, &r, row, NULL), 2);
    assert_int_equal(append_wait(w, &r, row, NULL), 2);
    assert_true(sd_slice_writer_is_ready(w)); /* two in a row: below the threshold */
    assert_int_equal(append_wait(w, &r, row, NULL), 2);
    assert_false(sd_slice_writer_is_ready(w));
    assert_false(sd_slice_writer_is_unhealthy(w));
    assert_int_equal(append_wait(w, &r, row, NULL), 1); /* accepted and written */
    assert_true(sd_slice_writer_is_ready(w));
    assert_int_equal(append_wait(w, &r, row, NULL), 2); /* one failure alone: still ready */
    assert_true(sd_slice_writer_is_ready(w));
    assert_int_equal(sd_slice_writer_close(w, NULL), 0);
    rec_fini(&r);
    fault_fini(&f);
}

/* The completion write fails too: it goes in front of the next batch. */
static void test_write_failure_completion_fails(void **state)
{
    int fails[8] = {3, 4, 5, 9};
    write_failure_case(*state, SD_COMPRESSION_GZIP, fails, 1);
}

static void test_write_failure_none(void **state)
{
    int fails[8] = {2, 3, 6};
    write_failure_case(*state, SD_COMPRESSION_NONE, fails, 1);
}

static void test_fdatasync_failure(void **state)
{
    struct tctx *t = *state;
    struct sd_slice_writer_opts o;
    struct sd_slice_writer *w = NULL;
    struct fault f;
    struct sd_slice_io io;
    struct rec r;
    struct sd_buf expect = SD_BUF_INIT;
    struct sd_buf got = SD_BUF_INIT;
    struct sd_buf f1 = SD_BUF_INIT;
    struct sd_slice_stats st;
    struct sd_slice_stats rst;
    char row[512];
    char *p1 = file_path(t->dir, "n1", 1, 1);
    char *p2 = file_path(t->dir, "n1", 2, 1);
    size_t flen = 0;

    fault_init(&f);
    f.fail_sync[0] = 4;
    faulty_writer_opts(t->dir, &f, &io, &r, &o);
    assert_int_equal(sd_slice_writer_open(&o, rec_cb, &r, &w, NULL), 0);
    for (int i = 0; i < 8; i++) {
        int n = make_row(row, sizeof(row), "f", (uint64_t)i, 20);
        int s = append_wait(w, &r, row, NULL);
        assert_int_equal(s, i == 3 ? 2 : 1);
        if (s == 1) {
            sd_buf_append(&expect, row, (size_t)n);
        }
        if (i == 2) {
            /* Rows 0-2 are the content of file 1. */
            sd_buf_append(&f1, expect.data, expect.len);
        }
    }
    assert_false(sd_slice_writer_is_unhealthy(w));
    assert_int_equal(sd_slice_writer_close(w, &st), 0);
    /* fsyncgate: the failed fd was never synced again. */
    assert_int_equal(f.syncs_after_failure, 0);
    assert_int_equal(access(p2, F_OK), 0);
    assert_int_equal(gzip_t(p1), 0);
    assert_int_equal(gzip_t(p2), 0);
    assert_int_equal(read_file_content(p1, 1, &got, NULL), 1);
    assert_int_equal(got.len, f1.len);
    assert_memory_equal(got.data, f1.data, f1.len);
    got.len = 0;
    assert_true(read_slice(t->dir, "n1", 1, &got, &flen) >= 2);
    assert_int_equal(got.len, expect.len);
    assert_memory_equal(got.data, expect.data, expect.len);
    assert_int_equal(st.records, 7);
    assert_int_equal(st.compressed_bytes, flen);

    /* Reopening continues in the continuation file. */
    rec_fini(&r);
    rec_init(&r);
    default_opts(&o, t->dir);
    assert_int_equal(sd_slice_writer_open(&o, rec_cb, &r, &w, &rst), 0);
    assert_int_equal(rst.records, 7);
    assert_int_equal(rst.compressed_bytes, flen);
    {
        int n = make_row(row, sizeof(row), "f", 99, 20);
        assert_int_equal(append_wait(w, &r, row, NULL), 1);
        sd_buf_append(&expect, row, (size_t)n);
    }
    assert_int_equal(sd_slice_writer_close(w, &st), 0);
    got.len = 0;
    assert_true(read_slice(t->dir, "n1", 1, &got, NULL) >= 3);
    assert_int_equal(got.len, expect.len);
    assert_memory_equal(got.data, expect.data, expect.len);
    got.len = 0;
    assert_int_equal(read_file_content(p1, 1, &got, NULL), 1);
    assert_int_equal(got.len, f1.len);
    free(p1);
    free(p2);
    sd_buf_fini(&expect);
    sd_buf_fini(&got);
    sd_buf_fini(&f1);
    rec_fini(&r);
    fault_fini(&f);
}

/* The continuation cannot be opened: unhealthy. */
static void test_fdatasync_failure_unhealthy_open(void **state)
{
    struct tctx *t = *state;
    struct sd_slice_writer_opts o;
    struct sd_slice_writer *w = NULL;
    struct fault f;
    struct sd_slice_io io;
    struct rec r;
    struct sd_buf expect = SD_BUF_INIT;
    struct sd_buf got = SD_BUF_INIT;
    char row[512];
    uint64_t seq;
    char *p1 = file_path(t->dir, "n1", 1, 1);

    fault_init(&f);
    f.fail_sync[0] = 2;
    f.fail_open_substr = "-2.csv";
    faulty_writer_opts(t->dir, &f, &io, &r, &o);
    assert_int_equal(sd_slice_writer_open(&o, rec_cb, &r, &w, NULL), 0);
    make_row(row, sizeof(row), "u", 0, 5);
    assert_int_equal(append_wait(w, &r, row, NULL), 1);
    sd_buf_append(&expect, row, strlen(row));
    assert_int_equal(append_wait(w, &r, row, NULL), 2);
    assert_true(sd_slice_writer_is_unhealthy(w));
    assert_int_equal(sd_slice_writer_append(w, row, strlen(row), 1, 0, &seq), SD_EUNHEALTHY);
    assert_int_equal(sd_slice_writer_close(w, NULL), SD_EUNHEALTHY);
    assert_int_equal(f.syncs_after_failure, 0);
    assert_int_equal(gzip_t(p1), 0);
    assert_int_equal(read_file_content(p1, 1, &got, NULL), 1);
    assert_int_equal(got.len, expect.len);
    assert_memory_equal(got.data, expect.data, expect.len);
    free(p1);
    sd_buf_fini(&expect);
    sd_buf_fini(&got);
    rec_fini(&r);
    fault_fini(&f);
}

/* The continuation's first fdatasync fails too: unhealthy. */
static void test_fdatasync_failure_twice(void **state)
{
    struct tctx *t = *state;
    struct sd_slice_writer_opts o;
    struct sd_slice_writer *w = NULL;
    struct fault f;
    struct sd_slice_io io;
    struct rec r;
    struct sd_buf got = SD_BUF_INIT;
    char row[512];
    uint64_t seq;

    fault_init(&f);
    f.fail_sync[0] = 2;
    f.fail_sync[1] = 3;
    faulty_writer_opts(t->dir, &f, &io, &r, &o);
    assert_int_equal(sd_slice_writer_open(&o, rec_cb, &r, &w, NULL), 0);
    make_row(row, sizeof(row), "u", 0, 5);
    assert_int_equal(append_wait(w, &r, row, NULL), 1);
    assert_int_equal(append_wait(w, &r, row, NULL), 2);
    assert_false(sd_slice_writer_is_unhealthy(w));
    assert_int_equal(append_wait(w, &r, row, NULL), 2);
    assert_true(sd_slice_writer_is_unhealthy(w));
    assert_int_equal(sd_slice_writer_append(w, row, strlen(row), 1, 0, &seq), SD_EUNHEALTHY);
    assert_int_equal(sd_slice_writer_close(w, NULL), SD_EUNHEALTHY);
    assert_int_equal(f.syncs_after_failure, 0);
    assert_true(read_slice(t->dir, "n1", 1, &got, NULL) >= 1);
    assert_int_equal(got.len, strlen(row));
    sd_buf_fini(&got);
    rec_fini(&r);
    fault_fini(&f);
}

/* Opens a writer (default options but the compression, node n1) on dir, appends rows tagged tag
 * and closes it; returns the close's result. */
static int write_rows_as(const char *dir, enum sd_compression comp, const char *tag, int rows,
                         struct sd_slice_stats *st)
{
    struct sd_slice_writer_opts o;
    struct sd_slice_writer *w = NULL;
    struct rec r;
    char row[512];
    int rc;

    rec_init(&r);
    default_opts(&o, dir);
    o.compression = comp;
    assert_int_equal(sd_slice_writer_open(&o, rec_cb, &r, &w, NULL), 0);
    for (int i = 0; i < rows; i++) {
        make_row(row, sizeof(row), tag, (uint64_t)i, 30);
        assert_int_equal(append_wait(w, &r, row, NULL), 1);
    }
    rc = sd_slice_writer_close(w, st);
    rec_fini(&r);
    return rc;
}

/* The same with gzip. */
static int write_rows(const char *dir, const char *tag, int rows, struct sd_slice_stats *st)
{
    return write_rows_as(dir, SD_COMPRESSION_GZIP, tag, rows, st);
}

/* A slice whose only file closed cleanly is recorded with the statistics a verification would
 * find; the record is taken once, and a writer's open or any change of the file drops it. */
static void test_closed_record(void **state)
{
    struct tctx *t = *state;
    struct sd_slice_stats st;
    struct sd_slice_stats got;
    struct sd_slice_stats verified;
    struct sd_slice_writer_opts o;
    struct sd_slice_writer *w = NULL;
    struct rec r;
    struct stat sb;
    char *p1 = file_path(t->dir, "n1", 1, 1);
    int fd;

    assert_int_equal(write_rows(t->dir, "c", 5, &st), 0);
    assert_int_equal(sd_slice_closed_take(p1, &got), 1);
    assert_int_equal(sd_slice_recover(p1, &verified), 0);
    assert_int_equal(got.records, 5);
    assert_int_equal(got.records, verified.records);
    assert_int_equal(got.uncompressed_bytes, verified.uncompressed_bytes);
    assert_int_equal(stat(p1, &sb), 0);
    assert_int_equal(got.compressed_bytes, (uint64_t)sb.st_size);
    assert_int_equal(sd_slice_closed_take(p1, &got), 0); /* taken once */

    /* Continued by a second writer: its open drops the record, its clean close records the
     * whole file. */
    assert_int_equal(write_rows(t->dir, "d", 1, &st), 0);
    rec_init(&r);
    default_opts(&o, t->dir);
    assert_int_equal(sd_slice_writer_open(&o, rec_cb, &r, &w, NULL), 0);
    assert_int_equal(sd_slice_closed_take(p1, &got), 0);
    assert_int_equal(sd_slice_writer_close(w, NULL), 0);
    rec_fini(&r);
    assert_int_equal(sd_slice_closed_take(p1, &got), 1);
    assert_int_equal(got.records, 6);

    /* A byte appended after the close: not what was recorded, verified instead. */
    assert_int_equal(write_rows(t->dir, "e", 1, &st), 0);
    fd = open(p1, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);
    assert_int_equal(sd_slice_closed_take(p1, &got), 0);
    assert_int_equal(sd_slice_recover(p1, &verified), 0);
    assert_int_equal(verified.records, 7);

    /* Renamed after the close (its change time moves): verified instead. */
    assert_int_equal(write_rows(t->dir, "f", 1, &st), 0);
    {
        struct timespec pause = {0, 20 * 1000 * 1000}; /* past the clock tick of the close */
        char *moved = file_path(t->dir, "moved", 1, 1);
        nanosleep(&pause, NULL);
        assert_int_equal(rename(p1, moved), 0);
        assert_int_equal(rename(moved, p1), 0);
        free(moved);
    }
    assert_int_equal(sd_slice_closed_take(p1, &got), 0);
    free(p1);

    /* Plain CSV: the same record. */
    p1 = file_path(t->dir, "n1", 1, 0);
    assert_int_equal(write_rows_as(t->dir, SD_COMPRESSION_NONE, "h", 4, &st), 0);
    assert_int_equal(sd_slice_closed_take(p1, &got), 1);
    assert_int_equal(sd_slice_recover(p1, &verified), 0);
    assert_int_equal(got.records, 4);
    assert_int_equal(got.records, verified.records);
    assert_int_equal(got.uncompressed_bytes, verified.uncompressed_bytes);
    assert_int_equal(got.compressed_bytes, verified.compressed_bytes);
    free(p1);
}

/* A slice that needed a continuation file (a failed fdatasync) or whose close failed is never
 * recorded: its files are verified at upload. */
static void test_closed_record_not_after_failures(void **state)
{
    struct tctx *t = *state;
    struct sd_slice_writer_opts o;
    struct sd_slice_writer *w = NULL;
    struct fault f;
    struct sd_slice_io io;
    struct rec r;
    struct sd_slice_stats got;
    char row[512];
    char *p1 = file_path(t->dir, "n1", 1, 1);
    char *p2 = file_path(t->dir, "n1", 2, 1);

    fault_init(&f);
    f.fail_sync[0] = 2;
    faulty_writer_opts(t->dir, &f, &io, &r, &o);
    assert_int_equal(sd_slice_writer_open(&o, rec_cb, &r, &w, NULL), 0);
    make_row(row, sizeof(row), "g", 0, 5);
    assert_int_equal(append_wait(w, &r, row, NULL), 1);
    assert_int_equal(append_wait(w, &r, row, NULL), 2);
    assert_int_equal(append_wait(w, &r, row, NULL), 1);
    assert_int_equal(sd_slice_writer_close(w, NULL), 0);
    assert_int_equal(access(p2, F_OK), 0);
    assert_int_equal(sd_slice_closed_take(p1, &got), 0);
    assert_int_equal(sd_slice_closed_take(p2, &got), 0);
    rec_fini(&r);
    fault_fini(&f);

    /* The final fdatasync of the close fails. */
    fault_init(&f);
    f.fail_sync[0] = 2;
    faulty_writer_opts(t->dir, &f, &io, &r, &o);
    o.node_id = "n2";
    assert_int_equal(sd_slice_writer_open(&o, rec_cb, &r, &w, NULL), 0);
    assert_int_equal(append_wait(w, &r, row, NULL), 1);
    assert_true(sd_slice_writer_close(w, NULL) != 0);
    free(p1);
    p1 = file_path(t->dir, "n2", 1, 1);
    assert_int_equal(sd_slice_closed_take(p1, &got), 0);
    rec_fini(&r);
    fault_fini(&f);
    free(p1);
    free(p2);
}

/* The pending budget answers SD_ELIMIT while the writer is stuck in a sync. */
static void test_back_pressure(void **state)
{
    struct tctx *t = *state;
    struct sd_slice_writer_opts o;
    struct sd_slice_writer *w = NULL;
    struct fault f;
    struct sd_slice_io io;
    struct rec r;
    struct sd_buf expect = SD_BUF_INIT;
    struct sd_buf got = SD_BUF_INIT;
    struct sd_slice_stats st;
    char row[128];
    uint64_t seq = 0;
    uint64_t last = 0;
    int accepted = 0;
    int rc = 0;
    size_t rowlen;

    fault_init(&f);
    faulty_writer_opts(t->dir, &f, &io, &r, &o);
    o.max_pending_bytes = 10000;
    memset(row, 'x', 99);
    row[0] = '"';
    row[98] = '"';
    row[99] = '\n';
    row[100] = '\0';
    rowlen = strlen(row);
    fault_set_gate(&f, 1);
    assert_int_equal(sd_slice_writer_open(&o, rec_cb, &r, &w, NULL), 0);
    for (int i = 0; i < 1000; i++) {
        rc = sd_slice_writer_append(w, row, rowlen, 1, 0, &seq);
        if (rc != 0) {
            break;
        }
        accepted++;
        last = seq;
        sd_buf_append(&expect, row, rowlen);
    }
    assert_int_equal(rc, SD_ELIMIT);
    assert_int_equal(accepted, 100); /* 100 rows of 100 bytes fill the budget */
    fault_set_gate(&f, 0);
    assert_int_equal(rec_wait(&r, last), 1);
    /* Budget free again. */
    assert_int_equal(sd_slice_writer_append(w, row, rowlen, 1, 0, &seq), 0);
    sd_buf_append(&expect, row, rowlen);
    assert_int_equal(sd_slice_writer_close(w, &st), 0);
    assert_int_equal(st.records, 101);
    assert_true(read_slice(t->dir, "n1", 1, &got, NULL) >= 1);
    assert_int_equal(got.len, expect.len);
    sd_buf_fini(&expect);
    sd_buf_fini(&got);
    rec_fini(&r);
    fault_fini(&f);
}

/* Held appends (an event loop's round) wait for sd_slice_writer_start and then share one
 * batch; the close writes held appends nobody started. */
static void test_held_appends(void **state)
{
    struct tctx *t = *state;
    struct sd_slice_writer_opts o;
    struct sd_slice_writer *w = NULL;
    struct fault f;
    struct sd_slice_io io;
    struct rec r;
    struct sd_slice_stats st;
    uint64_t seq = 0;
    int writes, syncs;
    uint64_t calls;

    fault_init(&f);
    faulty_writer_opts(t->dir, &f, &io, &r, &o);
    assert_int_equal(sd_slice_writer_open(&o, rec_cb, &r, &w, NULL), 0);
    sd_slice_writer_start(w); /* nothing held: no batch */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sd_slice_writer_append_held(w, "\"a\"\n", 4, 1, 1000, &seq), 0);
    }
    usleep(200 * 1000);
    pthread_mutex_lock(&f.mu);
    writes = f.write_calls;
    syncs = f.sync_calls;
    pthread_mutex_unlock(&f.mu);
    pthread_mutex_lock(&r.mu);
    calls = r.calls;
    pthread_mutex_unlock(&r.mu);
    assert_int_equal(writes, 0);
    assert_int_equal(syncs, 0);
    assert_int_equal(calls, 0);

    sd_slice_writer_start(w);
    assert_int_equal(rec_wait(&r, seq), 1);
    pthread_mutex_lock(&f.mu);
    writes = f.write_calls;
    pthread_mutex_unlock(&f.mu);
    assert_int_equal(writes, 1); /* the three rows in one batch */
    assert_int_equal(r.calls, 1);

    assert_int_equal(sd_slice_writer_append_held(w, "\"b\"\n", 4, 1, 1000, &seq), 0);
    assert_int_equal(sd_slice_writer_close(w, &st), 0);
    assert_int_equal(rec_wait(&r, seq), 1);
    assert_int_equal(st.records, 4);
    rec_fini(&r);
    fault_fini(&f);
}

/* Appends during close answer SD_ECLOSED; what was accepted before is still written. */
struct closer {
    struct sd_slice_writer *w;
    int rc;
    struct sd_slice_stats st;
};

static void *closer_main(void *arg)
{
    struct closer *c = arg;
    c->rc = sd_slice_writer_close(c->w, &c->st);
    return NULL;
}

static void test_closed(void **state)
{
    struct tctx *t = *state;
    struct sd_slice_writer_opts o;
    struct fault f;
    struct sd_slice_io io;
    struct rec r;
    struct closer c;
    pthread_t tid;
    struct sd_buf got = SD_BUF_INIT;
    const char *row = "\"closing\"\n";
    uint64_t seq;
    uint64_t accepted = 0;
    int rc = 0;

    fault_init(&f);
    faulty_writer_opts(t->dir, &f, &io, &r, &o);
    memset(&c, 0, sizeof(c));
    assert_int_equal(sd_slice_writer_open(&o, rec_cb, &r, &c.w, NULL), 0);
    fault_set_gate(&f, 1);
    assert_int_equal(sd_slice_writer_append(c.w, row, strlen(row), 1, 0, &seq), 0);
    accepted++;
    pthread_create(&tid, NULL, closer_main, &c);
    /* The writer is stuck in its sync, so close cannot finish: c.w stays valid. */
    for (int i = 0; i < 5000; i++) {
        rc = sd_slice_writer_append(c.w, row, strlen(row), 1, 0, &seq);
        if (rc != 0) {
            break;
        }
        accepted++;
        usleep(1000);
    }
    assert_int_equal(rc, SD_ECLOSED);
    fault_set_gate(&f, 0);
    pthread_join(tid, NULL);
    assert_int_equal(c.rc, 0);
    assert_int_equal(c.st.records, accepted);
    assert_int_equal(r.last_seq, accepted);
    assert_true(read_slice(t->dir, "n1", 1, &got, NULL) >= 1);
    assert_int_equal(got.len, accepted * strlen(row));
    sd_buf_fini(&got);
    rec_fini(&r);
    fault_fini(&f);
}

/* ---- many writers on the shared writer threads ---- */

static int thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

/* The last callback of a writer (without rec's per-seq table, for many writers). */
struct last_cb {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t seq;
    int failed;
    int order_violation;
};

static void last_cb_fn(void *arg, uint64_t seq, int rc)
{
    struct last_cb *l = arg;

    pthread_mutex_lock(&l->mu);
    l->order_violation |= seq <= l->seq;
    l->seq = seq;
    l->failed += rc != 0;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

/* Waits up to 10 s for the callback of seq; returns 1 if it came. */
static int last_cb_wait(struct last_cb *l, uint64_t seq)
{
    struct timespec ts;
    int ok;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&l->mu);
    while (l->seq < seq && pthread_cond_timedwait(&l->cv, &l->mu, &ts) == 0) {
    }
    ok = l->seq >= seq;
    pthread_mutex_unlock(&l->mu);
    return ok;
}

#define MANY_WRITERS 200
#define MANY_APPENDERS 4
#define MANY_ROWS 5

struct many {
    struct sd_slice_writer *w[MANY_WRITERS];
    struct last_cb cb[MANY_WRITERS];
    uint64_t last[MANY_WRITERS];
    int failed_appends;
};

struct many_thr {
    struct many *m;
    int id;
};

static void *many_main(void *arg)
{
    struct many_thr *mt = arg;
    char row[256];

    for (int k = 0; k < MANY_ROWS; k++) {
        for (int j = mt->id; j < MANY_WRITERS; j += MANY_APPENDERS) {
            int n = make_row(row, sizeof(row), "m", (uint64_t)(j * MANY_ROWS + k), 20);
            if (sd_slice_writer_append(mt->m->w[j], row, (size_t)n, 1, 1000, &mt->m->last[j]) !=
                0) {
                __atomic_add_fetch(&mt->m->failed_appends, 1, __ATOMIC_SEQ_CST);
            }
        }
    }
    return NULL;
}

/* 200 open writers share the writer threads (idle ones cost none): appends from 4 threads to
 * all of them become durable in each writer's own file, and the threads stop with the last
 * writer. */
static void test_many_writers(void **state)
{
    struct tctx *t = *state;
    struct many *m = calloc(1, sizeof(*m));
    struct many_thr mts[MANY_APPENDERS];
    pthread_t tids[MANY_APPENDERS];
    struct sd_slice_writer_opts o;
    int before = thread_count();
    char node[32];
    char row[256];

    default_opts(&o, t->dir);
    o.node_id = node;
    for (int j = 0; j < MANY_WRITERS; j++) {
        pthread_mutex_init(&m->cb[j].mu, NULL);
        pthread_cond_init(&m->cb[j].cv, NULL);
        snprintf(node, sizeof(node), "w%d", j);
        assert_int_equal(sd_slice_writer_open(&o, last_cb_fn, &m->cb[j], &m->w[j], NULL), 0);
    }
    /* The shared pool has at most 32 threads, whatever the number of writers. */
    assert_true(thread_count() - before <= 32);
    for (int i = 0; i < MANY_APPENDERS; i++) {
        mts[i].m = m;
        mts[i].id = i;
        pthread_create(&tids[i], NULL, many_main, &mts[i]);
    }
    for (int i = 0; i < MANY_APPENDERS; i++) {
        pthread_join(tids[i], NULL);
    }
    assert_int_equal(m->failed_appends, 0);
    for (int j = 0; j < MANY_WRITERS; j++) {
        assert_true(last_cb_wait(&m->cb[j], m->last[j]));
        assert_int_equal(m->last[j], MANY_ROWS);
    }
    for (int j = 0; j < MANY_WRITERS; j++) {
        struct sd_slice_stats st;
        struct sd_buf got = SD_BUF_INIT;
        struct sd_buf expect = SD_BUF_INIT;
        char *p;

        assert_int_equal(sd_slice_writer_close(m->w[j], &st), 0);
        assert_int_equal(st.records, MANY_ROWS);
        assert_int_equal(m->cb[j].failed, 0);
        assert_int_equal(m->cb[j].order_violation, 0);
        for (int k = 0; k < MANY_ROWS; k++) {
            int n = make_row(row, sizeof(row), "m", (uint64_t)(j * MANY_ROWS + k), 20);
            sd_buf_append(&expect, row, (size_t)n);
        }
        snprintf(node, sizeof(node), "w%d", j);
        p = file_path(t->dir, node, 1, 1);
        assert_true(read_file_content(p, 1, &got, NULL) >= 1);
        assert_int_equal(got.len, expect.len);
        assert_memory_equal(got.data, expect.data, got.len);
        free(p);
        sd_buf_fini(&got);
        sd_buf_fini(&expect);
        pthread_mutex_destroy(&m->cb[j].mu);
        pthread_cond_destroy(&m->cb[j].cv);
    }
    assert_int_equal(thread_count(), before);
    free(m);
}

/* One writer stuck in its fdatasync holds one shared thread only: another writer's batches
 * still become durable meanwhile, and the stuck one completes once its disk answers. */
static void test_stuck_sync_isolated(void **state)
{
    struct tctx *t = *state;
    struct sd_slice_writer_opts oa;
    struct sd_slice_writer_opts ob;
    struct sd_slice_writer *a = NULL;
    struct sd_slice_writer *b = NULL;
    struct fault f;
    struct sd_slice_io io;
    struct rec ra;
    struct last_cb lb;
    const char *row = "\"row\"\n";
    uint64_t sa = 0;
    uint64_t sb = 0;

    fault_init(&f);
    faulty_writer_opts(t->dir, &f, &io, &ra, &oa);
    oa.node_id = "a";
    default_opts(&ob, t->dir);
    ob.node_id = "b";
    memset(&lb, 0, sizeof(lb));
    pthread_mutex_init(&lb.mu, NULL);
    pthread_cond_init(&lb.cv, NULL);
    assert_int_equal(sd_slice_writer_open(&oa, rec_cb, &ra, &a, NULL), 0);
    assert_int_equal(sd_slice_writer_open(&ob, last_cb_fn, &lb, &b, NULL), 0);
    fault_set_gate(&f, 1);
    assert_int_equal(sd_slice_writer_append(a, row, strlen(row), 1, 0, &sa), 0);
    usleep(20 * 1000); /* a's batch reaches its fdatasync and blocks there */
    for (int i = 0; i < 20; i++) {
        assert_int_equal(sd_slice_writer_append(b, row, strlen(row), 1, 0, &sb), 0);
        assert_true(last_cb_wait(&lb, sb));
    }
    pthread_mutex_lock(&ra.mu);
    assert_int_equal(ra.last_seq, 0); /* still stuck */
    pthread_mutex_unlock(&ra.mu);
    fault_set_gate(&f, 0);
    assert_int_equal(rec_wait(&ra, sa), 1);
    assert_int_equal(sd_slice_writer_close(a, NULL), 0);
    assert_int_equal(sd_slice_writer_close(b, NULL), 0);
    assert_int_equal(lb.failed, 0);
    pthread_mutex_destroy(&lb.mu);
    pthread_cond_destroy(&lb.cv);
    rec_fini(&ra);
    fault_fini(&f);
}

/* ---- SIGKILL of a writing process ---- */

struct kill_child {
    int ackfd;
};

static void kill_cb(void *arg, uint64_t seq, int rc)
{
    struct kill_child *k = arg;
    if (rc == 0) {
        (void)!write(k->ackfd, &seq, sizeof(seq));
    }
}

static void kill_child_main(const char *dir, int ackfd, enum sd_gzip_impl impl,
                            int64_t allocate_bytes)
{
    struct sd_slice_writer_opts o;
    struct sd_slice_writer *w = NULL;
    struct kill_child k = {ackfd};
    char row[512];
    uint64_t i = 1;
    time_t start = time(NULL);

    default_opts(&o, dir);
    o.gzip_impl = impl;
    o.gzip_concurrency = 2;
    o.gzip_block_size = 32 * 1024;
    o.allocate = allocate_bytes > 0;
    o.allocate_bytes = allocate_bytes;
    if (sd_slice_writer_open(&o, kill_cb, &k, &w, NULL) != 0) {
        _exit(3);
    }
    while (time(NULL) - start < 20) {
        uint64_t seq;
        int n = make_row(row, sizeof(row), "k", i, (size_t)(i % 90));
        int rc = sd_slice_writer_append(w, row, (size_t)n, 1, 0, &seq);
        if (rc == SD_ELIMIT) {
            usleep(100);
            continue;
        }
        if (rc != 0 || seq != i) {
            _exit(4);
        }
        i++;
    }
    _exit(5);
}

/* Kills a writer appending as fast as it can after run_ms and recovers its file; with
 * allocate_bytes, the file reserved that much and the recovery cuts the zero tail. */
static void kill_case(const struct tctx *t, enum sd_gzip_impl impl, int run_ms,
                      int64_t allocate_bytes)
{
    int p[2];
    pid_t pid;
    uint64_t acked = 0;
    uint64_t rows;
    uint64_t seq;
    struct sd_buf got = SD_BUF_INIT;
    struct sd_buf expect = SD_BUF_INIT;
    char row[512];
    char *path = file_path(t->dir, "n1", 1, 1);
    struct sd_slice_stats st;
    int status;
    ssize_t n;
    struct timespec until;

    assert_int_equal(pipe(p), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        kill_child_main(t->dir, p[1], impl, allocate_bytes);
    }
    close(p[1]);
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += (long)run_ms * 1000000;
    until.tv_sec += until.tv_nsec / 1000000000;
    until.tv_nsec %= 1000000000;
    for (;;) {
        struct timespec now;
        n = read(p[0], &seq, sizeof(seq));
        assert_int_equal(n, (ssize_t)sizeof(seq));
        assert_true(seq > acked);
        acked = seq;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > until.tv_sec ||
            (now.tv_sec == until.tv_sec && now.tv_nsec >= until.tv_nsec)) {
            break;
        }
    }
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    /* Acks written before the kill are acknowledged too. */
    while ((n = read(p[0], &seq, sizeof(seq))) == (ssize_t)sizeof(seq)) {
        assert_true(seq > acked);
        acked = seq;
    }
    close(p[0]);
    assert_true(acked > 0);
    if (allocate_bytes > 0) {
        struct stat sb;
        assert_int_equal(stat(path, &sb), 0);
        assert_int_equal(sb.st_size, allocate_bytes);
    }
    assert_int_equal(sd_slice_recover(path, &st), 0);
    assert_int_equal(gzip_t(path), 0);
    assert_true(read_file_content(path, 1, &got, NULL) >= 1);
    /* The file holds rows 1..K in order with K >= every acknowledged seq. */
    for (rows = 0; expect.len < got.len;) {
        int len;
        rows++;
        len = make_row(row, sizeof(row), "k", rows, (size_t)(rows % 90));
        sd_buf_append(&expect, row, (size_t)len);
    }
    assert_true(rows >= acked);
    assert_int_equal(got.len, expect.len);
    assert_memory_equal(got.data, expect.data, expect.len);
    assert_int_equal(st.records, rows);
    /* A writer continues the recovered file. */
    {
        struct sd_slice_writer_opts o;
        struct sd_slice_writer *w = NULL;
        struct rec r;
        struct sd_slice_stats rst;
        int len = make_row(row, sizeof(row), "k", 0, 1);
        rec_init(&r);
        default_opts(&o, t->dir);
        assert_int_equal(sd_slice_writer_open(&o, rec_cb, &r, &w, &rst), 0);
        assert_int_equal(rst.records, st.records);
        assert_int_equal(append_wait(w, &r, row, NULL), 1);
        assert_int_equal(sd_slice_writer_close(w, NULL), 0);
        sd_buf_append(&expect, row, (size_t)len);
        got.len = 0;
        assert_true(read_file_content(path, 1, &got, NULL) >= 2);
        assert_int_equal(got.len, expect.len);
        assert_memory_equal(got.data, expect.data, expect.len);
        rec_fini(&r);
    }
    sd_rm_rf(t->dir);
    sd_mkdir_p(t->dir, 0750);
    free(path);
    sd_buf_fini(&got);
    sd_buf_fini(&expect);
}

static void test_kill_fast(void **state)
{
    kill_case(*state, SD_GZIP_FAST, 150, 0);
    kill_case(*state, SD_GZIP_FAST, 400, 0);
}

static void test_kill_parallel(void **state)
{
    kill_case(*state, SD_GZIP_PARALLEL, 300, 0);
}

static void test_kill_allocated(void **state)
{
    kill_case(*state, SD_GZIP_FAST, 150, (int64_t)1 << 30);
    kill_case(*state, SD_GZIP_PARALLEL, 300, (int64_t)1 << 30);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_threads_fast, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_threads_standard, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_threads_parallel, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_threads_cache_mode, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_threads_no_compression, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_block_size, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_reopen_gzip, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_reopen_none, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_invalid_opts, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_allocate, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_allocate_zero_ahead, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_allocate_crash_gzip, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_allocate_crash_none, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_allocate_keeps_volume_floor, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_allocate_growth_keeps_volume_floor, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_recover_every_cut_fast, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_recover_every_cut_zlib, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_recover_garbage, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_recover_plain, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_write_failure, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_failed_batches_threshold, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_write_failure_partial, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_write_failure_completion_fails, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_write_failure_none, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_fdatasync_failure, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_fdatasync_failure_unhealthy_open, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_fdatasync_failure_twice, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_closed_record, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_closed_record_not_after_failures, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_back_pressure, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_closed, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_held_appends, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_many_writers, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_stuck_sync_isolated, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_kill_fast, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_kill_parallel, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_kill_allocated, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
