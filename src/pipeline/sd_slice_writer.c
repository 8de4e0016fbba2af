/* sd_slice_writer.c: the slice writer: group commit of CSV rows into a gzip (or plain) slice
 * file, with failure handling for failed writes and failed fdatasyncs.
 *
 * DESIGN. Threads: every open writer shares one sd_taskpool of writer threads (4 per CPU,
 * 4 to 32), started with the first open writer and stopped with the last. Appenders (any
 * thread) only copy rows into the pending batch under `mu`; no I/O happens under `mu`. The
 * first append of a batch schedules the writer's task (under `mu`, so close cannot detach it
 * in between). A held append leaves that to the appender's sd_slice_writer_start once its
 * round of appends is done: an event loop's requests read together share one batch, and the
 * woken writer thread does not preempt the loop in the middle of them. The start queues the
 * task after releasing `mu` (the pool wakes its thread after releasing its own lock too): a
 * woken writer thread that preempts the loop on its CPU then finds no lock held by it. The task
 * runs one batch per run, on one pool thread at a time, and owns the file descriptor, the
 * compressor and every file offset meanwhile: it swaps the pending batch out under `mu` (appenders
 * keep filling the other buffer), compresses it in one go ending at a sync-flush boundary, writes
 * it with pwrite at the tracked offset, fdatasyncs (disk mode), publishes the durable
 * statistics and calls the sync callback. An append (or start) during the run schedules the
 * task again, so the next batch follows at once (group commit) behind the other ready
 * writers. Close refuses appends, detaches the task (waiting for a running batch) and writes
 * what is left on its own thread. With the `parallel` implementation, a batch larger than the
 * block size is split at append boundaries into members compressed by the shared workers of
 * sd_gzip_pool (the writer's thread works too; when they serve another batch, the writer's
 * thread compresses alone).
 * Reservation: the first batch of a file reserves its space with fallocate, which sets the
 * file's size; the batch whose data reaches unwritten reserved blocks writes zeros a mebibyte
 * ahead (growing the reservation when the slice outgrows it), so a batch's fdatasync neither
 * writes a new size nor converts an extent. Close cuts the zero tail; after a crash, recovery
 * cuts it (zeros never continue a gzip stream or a row). A clean close of a slice's only file
 * records it in sd_slice_closed, so its upload need not verify it again.
 * Ownership: appended rows are copied; the batch buffers, output buffers, jobs and compressor
 * belong to the writer and are freed by sd_slice_writer_close.
 *
 * Failure behaviour. After each successful batch the writer records the good end offset and
 * the open member's CRC32 and length. A failed write fails only that batch: the file is cut
 * back to the good offset with ftruncate, the open member is completed there (empty final
 * block + trailer, or as a prefix of the next batch if that write fails too), the compressor
 * is reset, and the next batch starts a new member; one log line per failure episode. After
 * failed_batches_threshold failed batches in a row the writer reports itself not ready
 * (sd_slice_writer_is_ready) until a batch succeeds. A
 * failed fdatasync fails the batch and that fd is never synced again (fsyncgate): a
 * continuation file is opened, the old file is reopened by path, cut at its last synced
 * offset and its member completed, and the old fd is closed. If the continuation cannot be
 * opened, or an fdatasync fails on a continuation before it ever succeeded, the writer turns
 * unhealthy: pending batches fail and every append returns SD_EUNHEALTHY. */
#include "pipeline/sd_slice_writer.h"
#include "pipeline/sd_gzip_pool.h"
#include "pipeline/sd_slice_closed.h"
#include "core/sd_alloc.h"
#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "core/sd_fs.h"
#include "core/sd_log.h"
#include "core/sd_taskpool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SD__SW_DEFAULT_BLOCK ((size_t)256 << 10)
#define SD__SW_DEFAULT_PENDING ((size_t)64 << 20)
#define SD__SW_MAX_FILES 10000
#define SD__SW_MAX_THREADS 64
#define SD__SW_POOL_THREADS_PER_CPU 4
#define SD__SW_POOL_MIN_THREADS 4
#define SD__SW_POOL_MAX_THREADS 32
#define SD__SW_SHRINK_ABOVE ((size_t)1 << 20)
#define SD__SW_RESERVE_FLOOR_DIV 10           /* reservations leave a tenth of the volume free */
#define SD__SW_ZERO_AHEAD ((uint64_t)1 << 20) /* zeros written ahead of the data at a time */
#define SD__SW_ZERO_CHUNK ((size_t)64 << 10)
#define SD__SW_RESERVE_STEP ((uint64_t)4 << 20) /* the least a reservation grows by */

/* Rows and receive times of a batch. */
struct sd__batch_stats {
    uint64_t records;
    int64_t first_ms;
    int64_t last_ms;
};

/* A range of the batch compressed into one output (finish: the member ends with it). */
struct sd__piece {
    size_t off;
    size_t len;
    int finish;
};

/* One buffer to write, in order. */
struct sd__span {
    const char *p;
    size_t len;
};

struct sd_slice_writer {
    /* Immutable after open. */
    struct sd_slice_writer_opts opts; /* dir and node_id point at the copies below */
    char *dir;
    char *node_id;
    sd_slice_sync_fn cb;
    void *cb_arg;
    struct sd_task task; /* runs one batch on a shared writer thread */
    int has_shared;      /* holds a reference on sd__shared */

    /* Guarded by mu. */
    pthread_mutex_t mu;
    struct sd_buf pending;
    struct sd_buf pending_ends; /* size_t end offset of every append */
    size_t pending_appends;
    struct sd__batch_stats pending_st;
    uint64_t last_seq;
    size_t inflight_bytes;
    int closing;
    int unhealthy;
    int is_not_ready; /* failed_batches_threshold batches in a row failed */
    struct sd_slice_stats durable;

    /* The task's callback only (one thread at a time), and open/close before/after it. */
    struct sd_buf batch;
    struct sd_buf batch_ends;
    struct sd__batch_stats batch_st;
    uint64_t batch_seq; /* the batch's last sequence number */
    struct sd_buf out;
    struct sd_buf out_tail;
    struct sd__piece *pieces;
    size_t pieces_cap;
    struct sd__span *spans;
    size_t spans_cap;
    struct sd_gzip_job
        *jobs; /* compression jobs of a parallel batch; their out buffers are reused */
    size_t jobs_cap;
    struct sd_gzip *gz;
    struct sd_gzip_pool *pool; /* the shared compression workers, NULL: none at this level */
    int fd;
    char *path;
    int file_no;
    int file_fresh;             /* continuation file without a successful sync yet */
    int file_allocated;         /* the current file's space was preallocated (first batch) */
    uint64_t reserved_end;      /* the reservation's end (the file's size) while it is ahead */
    uint64_t zeroed_end;        /* blocks written (zeros or data) up to here: overwritten later */
    uint64_t off;               /* end of good data in the current file */
    struct sd_gzip_member good; /* the member open at off */
    uint64_t prev_files_bytes;
    int need_truncate;
    int need_complete;
    int write_failing;
    uint64_t failed_batches;
    uint32_t failed_in_row; /* consecutive failed batches */
    int is_unhealthy;       /* writer-thread copy of unhealthy */
    int final_rc;
};

/* ---- small helpers ---- */

static int sd__io_open(const struct sd_slice_writer *w, const char *path, int flags, mode_t mode)
{
    const struct sd_slice_io *io = w->opts.io;

    if (io != NULL && io->open != NULL) {
        return io->open(io->arg, path, flags, mode);
    }
    return open(path, flags, mode);
}

static int sd__io_fdatasync(const struct sd_slice_writer *w, int fd)
{
    const struct sd_slice_io *io = w->opts.io;
    int rc;

    if (io != NULL && io->fdatasync != NULL) {
        rc = io->fdatasync(io->arg, fd);
    } else {
        rc = fdatasync(fd);
    }
    return rc == 0 ? 0 : (errno != 0 ? -errno : -EIO);
}

static int sd__io_pwrite_all(const struct sd_slice_writer *w, int fd, const char *p, size_t len,
                             uint64_t off)
{
    const struct sd_slice_io *io = w->opts.io;

    while (len > 0) {
        ssize_t n;
        errno = 0;
        if (io != NULL && io->pwrite != NULL) {
            n = io->pwrite(io->arg, fd, p, len, (off_t)off);
        } else {
            n = pwrite(fd, p, len, (off_t)off);
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno != 0 ? -errno : -EIO;
        }
        if (n == 0) {
            return -EIO;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static void sd__stats_merge_times(struct sd_slice_stats *s, int64_t first_ms, int64_t last_ms)
{
    if (first_ms != 0 && (s->first_record_ms == 0 || first_ms < s->first_record_ms)) {
        s->first_record_ms = first_ms;
    }
    if (last_ms > s->last_record_ms) {
        s->last_record_ms = last_ms;
    }
}

/* File name of file number n (1 = the base name). */
static char *sd__file_path(const struct sd_slice_writer *w, int n)
{
    int gz = w->opts.compression == SD_COMPRESSION_GZIP;

    if (n <= 1) {
        return gz ? sd_xasprintf("%s/.slice-%s.csv.gz", w->dir, w->node_id)
                  : sd_xasprintf("%s/slice-%s.csv", w->dir, w->node_id);
    }
    return gz ? sd_xasprintf("%s/.slice-%s-%d.csv.gz", w->dir, w->node_id, n)
              : sd_xasprintf("%s/slice-%s-%d.csv", w->dir, w->node_id, n);
}

/* Returns the file number of name if it is one of this writer's files, else 0. */
static int sd__file_number(const struct sd_slice_writer *w, const char *name)
{
    int gz = w->opts.compression == SD_COMPRESSION_GZIP;
    const char *prefix = gz ? ".slice-" : "slice-";
    const char *suffix = gz ? ".csv.gz" : ".csv";
    size_t plen = strlen(prefix);
    size_t nlen = strlen(w->node_id);
    size_t slen = strlen(suffix);
    size_t len = strlen(name);
    const char *mid;
    size_t mlen;
    long n = 0;

    if (len < plen + nlen + slen || strncmp(name, prefix, plen) != 0 ||
        strncmp(name + plen, w->node_id, nlen) != 0 || strcmp(name + len - slen, suffix) != 0) {
        return 0;
    }
    mid = name + plen + nlen;
    mlen = len - plen - nlen - slen;
    if (mlen == 0) {
        return 1;
    }
    if (mid[0] != '-' || mlen < 2 || mlen > 6) {
        return 0;
    }
    for (size_t i = 1; i < mlen; i++) {
        if (mid[i] < '0' || mid[i] > '9') {
            return 0;
        }
        n = n * 10 + (mid[i] - '0');
    }
    return n >= 2 && n <= SD__SW_MAX_FILES ? (int)n : 0;
}

static int sd__jobs_reserve(struct sd_slice_writer *w, size_t n)
{
    struct sd_gzip_job *jobs;

    if (n <= w->jobs_cap) {
        return 0;
    }
    jobs = realloc(w->jobs, n * sizeof(*jobs));
    if (jobs == NULL) {
        return -ENOMEM;
    }
    for (size_t i = w->jobs_cap; i < n; i++) {
        memset(&jobs[i], 0, sizeof(jobs[i]));
        sd_buf_init(&jobs[i].out);
    }
    w->jobs = jobs;
    w->jobs_cap = n;
    return 0;
}

/* ---- batch compression ---- */

static int sd__reserve_array(void **arr, size_t *cap, size_t n, size_t elem)
{
    void *p;
    size_t ncap = *cap ? *cap : 16;

    if (n <= *cap) {
        return 0;
    }
    while (ncap < n) {
        ncap *= 2;
    }
    p = realloc(*arr, ncap * elem);
    if (p == NULL) {
        return -ENOMEM;
    }
    *arr = p;
    *cap = ncap;
    return 0;
}

/* Splits the batch into pieces: a member is finished at the first append boundary where its
 * input reaches the block size. member_in: input already in the open member. */
static int sd__split(struct sd_slice_writer *w, uint64_t member_in, size_t *npieces)
{
    const size_t *ends = (const size_t *)(void *)w->batch_ends.data;
    size_t nends = w->batch_ends.len / sizeof(size_t);
    size_t block = w->opts.gzip_block_size;
    size_t len = w->batch.len;
    size_t pos = 0;
    size_t k = 0;
    size_t n = 0;
    int rc;

    while (pos < len) {
        size_t need = member_in < block ? (size_t)(block - member_in) : 1;
        size_t target = len - pos > need ? pos + need : len;
        size_t lo = k;
        size_t hi = nends;
        size_t e;
        /* First append end >= target (ends are non-decreasing; the last is len). */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (ends[mid] < target) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        k = lo;
        e = k < nends ? ends[k] : len;
        rc = sd__reserve_array((void **)&w->pieces, &w->pieces_cap, n + 1, sizeof(*w->pieces));
        if (rc != 0) {
            return rc;
        }
        w->pieces[n].off = pos;
        w->pieces[n].len = e - pos;
        w->pieces[n].finish = member_in + (e - pos) >= block;
        member_in = w->pieces[n].finish ? 0 : member_in + (e - pos);
        pos = e;
        n++;
    }
    *npieces = n;
    return 0;
}

static int sd__add_span(struct sd_slice_writer *w, size_t *nspans, const char *p, size_t len)
{
    int rc;

    if (len == 0) {
        return 0;
    }
    rc = sd__reserve_array((void **)&w->spans, &w->spans_cap, *nspans + 1, sizeof(*w->spans));
    if (rc != 0) {
        return rc;
    }
    w->spans[*nspans].p = p;
    w->spans[*nspans].len = len;
    (*nspans)++;
    return 0;
}

/* Compresses the batch into spans to be written in order. */
static int sd__compress_batch(struct sd_slice_writer *w, size_t *nspans)
{
    struct sd_gzip_member m;
    size_t npieces = 0;
    size_t first_job;
    size_t last_job;
    int tail_open;
    int rc;

    w->out.len = 0;
    w->out_tail.len = 0;
    if (w->need_complete) {
        rc = sd_gzip_complete_member(w->good.crc, (uint32_t)w->good.in_bytes, &w->out);
        if (rc != 0) {
            return rc;
        }
    }
    sd_gzip_member_state(w->gz, &m);
    rc = sd__split(w, m.is_open ? m.in_bytes : 0, &npieces);
    if (rc != 0) {
        return rc;
    }
    if (w->pool == NULL || npieces < 3) {
        for (size_t i = 0; i < npieces && rc == 0; i++) {
            const struct sd__piece *pc = &w->pieces[i];
            rc = sd_gzip_compress(w->gz, w->batch.data + pc->off, pc->len, pc->finish, &w->out);
        }
        if (rc == 0) {
            rc = sd__add_span(w, nspans, w->out.data, w->out.len);
        }
        return rc;
    }
    /* Parallel: the writer does the first piece (it may continue the open member) and an
     * open last piece; the members in between are jobs. */
    tail_open = !w->pieces[npieces - 1].finish;
    first_job = 1;
    last_job = tail_open ? npieces - 1 : npieces;
    rc = sd__jobs_reserve(w, last_job - first_job);
    for (size_t i = first_job; i < last_job && rc == 0; i++) {
        struct sd_gzip_job *job = &w->jobs[i - first_job];
        job->in = w->batch.data + w->pieces[i].off;
        job->len = w->pieces[i].len;
        job->rc = 0;
    }
    if (rc == 0) {
        rc =
            sd_gzip_compress(w->gz, w->batch.data + w->pieces[0].off, w->pieces[0].len, 1, &w->out);
    }
    if (rc == 0) {
        sd_gzip_pool_run(w->pool, w->jobs, last_job - first_job, w->gz);
    }
    if (rc != 0) {
        return rc;
    }
    if (tail_open) {
        const struct sd__piece *pc = &w->pieces[npieces - 1];
        rc = sd_gzip_compress(w->gz, w->batch.data + pc->off, pc->len, 0, &w->out_tail);
        if (rc != 0) {
            return rc;
        }
    }
    rc = sd__add_span(w, nspans, w->out.data, w->out.len);
    for (size_t i = 0; i < last_job - first_job && rc == 0; i++) {
        const struct sd_gzip_job *job = &w->jobs[i];
        rc = job->rc != 0 ? job->rc : sd__add_span(w, nspans, job->out.data, job->out.len);
    }
    if (rc == 0) {
        rc = sd__add_span(w, nspans, w->out_tail.data, w->out_tail.len);
    }
    return rc;
}

/* ---- files ---- */

static int sd__io_fstatvfs(const struct sd_slice_writer *w, int fd, struct statvfs *out)
{
    const struct sd_slice_io *io = w->opts.io;

    if (io != NULL && io->fstatvfs != NULL) {
        return io->fstatvfs(io->arg, fd, out);
    }
    return fstatvfs(fd, out);
}

/* Reserves the file's blocks [from, to) and sets its size to at least to, unless that would
 * leave the volume less than a tenth of its size free: reservations of many sinks at once must
 * not fill it (their data still can, and then fails as a full volume does). Blocks reserved
 * this way read as zeros until written, and a batch written inside the size has no new size to
 * sync: its fdatasync costs a quarter less than an append's. The zero tail is cut at close;
 * after a crash, recovery cuts it as it cuts a torn batch (a zero byte is never a valid
 * continuation). Returns 1 if reserved (reserved_end is then to). On failure, the file is cut
 * back to keep (the end of what it holds): a failed fallocate may keep what it got. */
static int sd__reserve(struct sd_slice_writer *w, uint64_t from, uint64_t to, uint64_t keep)
{
    struct statvfs vfs;
    int err;

    if (sd__io_fstatvfs(w, w->fd, &vfs) == 0) {
        uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
        uint64_t floor = (uint64_t)vfs.f_blocks * vfs.f_frsize / SD__SW_RESERVE_FLOOR_DIV;
        if (avail < floor || avail - floor < to - from) {
            sd_log_debug("slice", "no reservation for %s: %llu bytes free", w->path,
                         (unsigned long long)avail);
            return 0;
        }
    }
    if (fallocate(w->fd, 0, (off_t)from, (off_t)(to - from)) == 0) {
        w->reserved_end = to;
        return 1;
    }
    err = errno;
    if (ftruncate(w->fd, (off_t)keep) != 0) {
        sd_log_warn("slice", "releasing preallocated space of %s failed: %s", w->path,
                    sd_strerror(-errno));
    }
    sd_log_warn("slice", "fallocate %llu bytes for %s failed: %s (continuing)",
                (unsigned long long)(to - from), w->path, sd_strerror(-err));
    return 0;
}

/* The reservation at a file's first data (an idle slice reserves nothing). */
static void sd__allocate(struct sd_slice_writer *w)
{
    if (w->opts.allocate && w->opts.allocate_bytes > 0 &&
        sd__reserve(w, 0, (uint64_t)w->opts.allocate_bytes, w->off)) {
        w->zeroed_end = w->off;
    }
}

/* Opens (creating when missing) file number n; the fd is positioned by offset, not seek. */
static int sd__open_file(struct sd_slice_writer *w, int n, int *fd_out, char **path_out,
                         uint64_t *size_out)
{
    char *path = sd__file_path(w, n);
    struct stat sb;
    int existed = stat(path, &sb) == 0;
    int fd;
    int rc;

    errno = 0;
    fd = sd__io_open(w, path, O_WRONLY | O_CREAT | O_CLOEXEC, SD_FILE_MODE);
    if (fd < 0) {
        rc = errno != 0 ? -errno : -EIO;
        free(path);
        return rc;
    }
    if (fstat(fd, &sb) != 0) {
        rc = -errno;
        close(fd);
        free(path);
        return rc;
    }
    sd_slice_closed_forget(fd); /* it may change from now on: its upload verifies it again */
    if (!existed) {
        rc = sd_fsync_dir(w->dir);
        if (rc != 0) {
            close(fd);
            free(path);
            return rc;
        }
    }
    *fd_out = fd;
    *path_out = path;
    *size_out = (uint64_t)sb.st_size;
    return 0;
}

/* Cuts the file at path to off and completes its open member there (a gzip file left empty
 * gets an empty member), through a new fd and without any fsync: the data up to off was
 * synced before, and recovery redoes the rest. Returns the bytes appended after off. */
static uint64_t sd__repair_by_path(struct sd_slice_writer *w, const char *path, uint64_t off,
                                   const struct sd_gzip_member *m)
{
    struct sd_buf tail = SD_BUF_INIT;
    uint64_t added = 0;
    int fd;
    int rc = 0;

    errno = 0;
    fd = sd__io_open(w, path, O_WRONLY | O_CLOEXEC, SD_FILE_MODE);
    if (fd < 0) {
        sd_log_error("slice", "reopen %s to cut it at %llu failed: %s", path,
                     (unsigned long long)off, sd_strerror(errno != 0 ? -errno : -EIO));
        return 0;
    }
    if (ftruncate(fd, (off_t)off) != 0) {
        rc = -errno;
    }
    if (rc == 0 && m->is_open) {
        rc = sd_gzip_complete_member(m->crc, (uint32_t)m->in_bytes, &tail);
    } else if (rc == 0 && off == 0 && w->gz != NULL) {
        rc = sd_gzip_empty_member(&tail);
    }
    if (rc == 0 && tail.len > 0) {
        rc = sd__io_pwrite_all(w, fd, tail.data, tail.len, off);
    }
    if (rc != 0) {
        sd_log_error("slice", "cutting %s at %llu failed: %s (recovery completes it)", path,
                     (unsigned long long)off, sd_strerror(rc));
    } else {
        added = tail.len;
    }
    sd_buf_fini(&tail);
    close(fd);
    return added;
}

/* ---- a batch (the writer's task, one thread at a time) ---- */

static void sd__set_unhealthy(struct sd_slice_writer *w)
{
    w->is_unhealthy = 1;
    pthread_mutex_lock(&w->mu);
    w->unhealthy = 1;
    pthread_mutex_unlock(&w->mu);
}

/* The open member (if any) in the file at w->off must be completed before new data. */
static void sd__abandon_member(struct sd_slice_writer *w)
{
    if (w->gz != NULL) {
        sd_gzip_reset(w->gz);
        if (w->good.is_open) {
            w->need_complete = 1;
        }
    }
}

static void sd__on_write_failure(struct sd_slice_writer *w, int err)
{
    w->failed_batches++;
    if (!w->write_failing) {
        w->write_failing = 1;
        sd_log_error("slice",
                     "write to %s at offset %llu failed: %s; batch failed, file cut "
                     "back, later batches are retried",
                     w->path, (unsigned long long)w->off, sd_strerror(err));
    }
    sd__abandon_member(w);
    w->reserved_end = 0; /* the cut gives the reservation back: later batches append */
    w->need_truncate = ftruncate(w->fd, (off_t)w->off) != 0;
    if (!w->need_truncate && w->need_complete) {
        struct sd_buf tail = SD_BUF_INIT;
        if (sd_gzip_complete_member(w->good.crc, (uint32_t)w->good.in_bytes, &tail) == 0 &&
            sd__io_pwrite_all(w, w->fd, tail.data, tail.len, w->off) == 0) {
            w->off += tail.len;
            w->need_complete = 0;
            memset(&w->good, 0, sizeof(w->good));
        } else if (ftruncate(w->fd, (off_t)w->off) != 0) {
            w->need_truncate = 1;
        }
        sd_buf_fini(&tail);
    }
}

static void sd__on_sync_failure(struct sd_slice_writer *w, int err)
{
    int old_fd = w->fd;
    char *old_path = w->path;
    uint64_t old_off = w->off;
    struct sd_gzip_member old_good = w->good;
    int was_fresh = w->file_fresh;
    int rc = 0;
    int nfd = -1;
    char *npath = NULL;
    uint64_t nsize = 0;

    w->failed_batches++;
    if (was_fresh || w->file_no >= SD__SW_MAX_FILES) {
        rc = SD_EUNHEALTHY;
    } else {
        rc = sd__open_file(w, w->file_no + 1, &nfd, &npath, &nsize);
        if (rc == 0 && nsize != 0) {
            /* A leftover file of that number: never append after unknown bytes. */
            close(nfd);
            free(npath);
            rc = -EEXIST;
        }
    }
    if (rc != 0) {
        sd_log_error("slice", "fdatasync of %s failed: %s; no new file (%s): writer unhealthy",
                     old_path, sd_strerror(err), sd_strerror(rc));
    } else {
        sd_log_error("slice",
                     "fdatasync of %s failed: %s; file closed at offset %llu, "
                     "continuing in %s",
                     old_path, sd_strerror(err), (unsigned long long)old_off, npath);
    }
    /* Never fsync old_fd again: cut the file through a new fd, then close the old one. */
    w->prev_files_bytes += old_off + sd__repair_by_path(w, old_path, old_off, &old_good);
    close(old_fd);
    free(old_path);
    if (w->gz != NULL) {
        sd_gzip_reset(w->gz);
    }
    memset(&w->good, 0, sizeof(w->good));
    w->need_complete = 0;
    w->need_truncate = 0;
    w->write_failing = 0;
    w->off = 0;
    if (rc != 0) {
        w->fd = -1;
        w->path = NULL;
        sd__set_unhealthy(w);
        return;
    }
    w->fd = nfd;
    w->path = npath;
    w->file_no++;
    w->file_fresh = 1;
    w->file_allocated = 0;
    w->reserved_end = 0;
}

/* Writes zeros over the reserved (unwritten) blocks after the data's end at, when the data
 * reached them: a later batch then overwrites written blocks, and its fdatasync has no extent
 * to convert (on ext4 150 us and 40 us of CPU instead of 215 and 60 for a 3 KB batch). The
 * batch's own sync takes the zeros along, a mebibyte at a time. A slice whose data outgrew its
 * reservation (the relative size follows the last slices, and a small one predicts little)
 * extends it by half, at least by 4 MiB, so its later batches are not appends; a slice that
 * stays small never reserves more. */
static int sd__zero_ahead(struct sd_slice_writer *w, uint64_t at)
{
    static const char zeros[SD__SW_ZERO_CHUNK];
    uint64_t end;

    if (at <= w->zeroed_end || w->reserved_end == 0) {
        return 0;
    }
    if (at >= w->reserved_end) {
        uint64_t grow =
            w->reserved_end / 2 > SD__SW_RESERVE_STEP ? w->reserved_end / 2 : SD__SW_RESERVE_STEP;
        if (!sd__reserve(w, w->reserved_end, at + grow, at)) {
            w->reserved_end = 0; /* no more growth or zeros for this file */
            return 0;
        }
    }
    end = at + SD__SW_ZERO_AHEAD < w->reserved_end ? at + SD__SW_ZERO_AHEAD : w->reserved_end;
    for (uint64_t o = at; o < end; o += SD__SW_ZERO_CHUNK) {
        size_t n = end - o < SD__SW_ZERO_CHUNK ? (size_t)(end - o) : SD__SW_ZERO_CHUNK;
        int rc = sd__io_pwrite_all(w, w->fd, zeros, n, o);
        if (rc != 0) {
            return rc;
        }
    }
    w->zeroed_end = end;
    return 0;
}

/* Writes and syncs the swapped-out batch. Returns 0 or the batch's failure. */
static int sd__write_batch(struct sd_slice_writer *w)
{
    size_t nspans = 0;
    uint64_t at;
    int rc = 0;

    if (w->is_unhealthy || w->fd < 0) {
        return SD_EUNHEALTHY;
    }
    if (w->batch.len == 0) {
        return 0;
    }
    if (w->need_truncate) {
        if (ftruncate(w->fd, (off_t)w->off) != 0) {
            return -errno;
        }
        w->need_truncate = 0;
    }
    if (!w->file_allocated) {
        /* Reserve at the first data, not at open: an idle slice reserves nothing. */
        sd__allocate(w);
        w->file_allocated = 1;
    }
    if (w->gz != NULL) {
        rc = sd__compress_batch(w, &nspans);
        if (rc != 0) {
            sd_log_error("slice", "compressing a batch for %s failed: %s", w->path,
                         sd_strerror(rc));
            sd__abandon_member(w);
            return rc;
        }
    } else {
        rc = sd__add_span(w, &nspans, w->batch.data, w->batch.len);
        if (rc != 0) {
            return rc;
        }
    }
    at = w->off;
    for (size_t i = 0; i < nspans && rc == 0; i++) {
        rc = sd__io_pwrite_all(w, w->fd, w->spans[i].p, w->spans[i].len, at);
        at += w->spans[i].len;
    }
    if (rc == 0) {
        rc = sd__zero_ahead(w, at);
    }
    if (rc != 0) {
        sd__on_write_failure(w, rc);
        return rc;
    }
    if (w->opts.sync_mode == SD_SYNC_DISK) {
        rc = sd__io_fdatasync(w, w->fd);
        if (rc != 0) {
            sd__on_sync_failure(w, rc);
            return rc;
        }
    }
    w->off = at;
    if (w->gz != NULL) {
        sd_gzip_member_state(w->gz, &w->good);
    }
    w->need_complete = 0;
    w->file_fresh = 0;
    if (w->write_failing) {
        w->write_failing = 0;
        sd_log_info("slice", "writes to %s succeed again after %llu failed batches", w->path,
                    (unsigned long long)w->failed_batches);
    }
    return 0;
}

/* Finishes the member, writes it and syncs: the end of the writer, in close. */
static void sd__finish_file(struct sd_slice_writer *w)
{
    int rc = 0;

    if (w->is_unhealthy || w->fd < 0) {
        w->final_rc = SD_EUNHEALTHY;
        goto done;
    }
    if (w->need_truncate && ftruncate(w->fd, (off_t)w->off) != 0) {
        rc = -errno;
        goto done;
    }
    w->need_truncate = 0;
    if (w->gz != NULL) {
        w->out.len = 0;
        if (w->need_complete) {
            rc = sd_gzip_complete_member(w->good.crc, (uint32_t)w->good.in_bytes, &w->out);
        } else {
            rc = sd_gzip_finish(w->gz, &w->out);
        }
        if (rc == 0 && w->off == 0 && w->out.len == 0) {
            /* A slice without data is still a valid gzip file. */
            rc = sd_gzip_empty_member(&w->out);
        }
        if (rc == 0 && w->out.len > 0) {
            rc = sd__io_pwrite_all(w, w->fd, w->out.data, w->out.len, w->off);
            if (rc != 0) {
                sd__on_write_failure(w, rc);
                if (!w->need_truncate && !w->need_complete) {
                    rc = 0; /* the member was completed after all */
                }
            } else {
                w->off += w->out.len;
                memset(&w->good, 0, sizeof(w->good));
            }
        }
        if (rc != 0) {
            goto done;
        }
    }
    if (w->file_allocated && w->opts.allocate && ftruncate(w->fd, (off_t)w->off) != 0) {
        /* Cuts the reservation's zero tail and gives its blocks back (the sync below makes the
         * size durable): a closed slice holds only its data. */
        rc = -errno;
        sd_log_error("slice", "cutting the reserved space of %s failed: %s", w->path,
                     sd_strerror(rc));
        goto done;
    }
    rc = sd__io_fdatasync(w, w->fd);
    if (rc != 0) {
        sd_log_error("slice", "final fdatasync of %s failed: %s", w->path, sd_strerror(rc));
    } else if (w->final_rc == 0 && w->file_no == 1 && w->prev_files_bytes == 0) {
        /* the slice's only file holds exactly the durable rows: its upload need not verify it */
        struct sd_slice_stats closed;
        pthread_mutex_lock(&w->mu);
        closed = w->durable;
        pthread_mutex_unlock(&w->mu);
        closed.compressed_bytes = w->off;
        sd_slice_closed_note(w->fd, &closed);
    }
done:
    if (rc != 0 && w->final_rc == 0) {
        w->final_rc = rc;
        sd_log_error("slice", "closing %s: %s", w->path != NULL ? w->path : w->dir,
                     sd_strerror(rc));
    }
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
    pthread_mutex_lock(&w->mu);
    w->durable.compressed_bytes = w->prev_files_bytes + w->off;
    pthread_mutex_unlock(&w->mu);
}

/* Frees a buffer that grew in a burst (over 1 MiB, last use under a quarter of it), so a
 * writer does not keep its peak memory forever. */
static void sd__maybe_shrink(struct sd_buf *b, size_t used)
{
    if (b->cap > SD__SW_SHRINK_ABOVE && used < b->cap / 4) {
        sd_buf_fini(b);
    }
}

static void sd__swap_bufs(struct sd_buf *a, struct sd_buf *b)
{
    struct sd_buf t = *a;
    *a = *b;
    *b = t;
}

/* Takes the pending batch (the task's callback or the closing thread). Returns 0 when there
 * was none. */
static int sd__take_batch(struct sd_slice_writer *w)
{
    int taken;

    pthread_mutex_lock(&w->mu);
    taken = w->pending_appends > 0;
    if (taken) {
        sd__swap_bufs(&w->pending, &w->batch);
        sd__swap_bufs(&w->pending_ends, &w->batch_ends);
        w->batch_st = w->pending_st;
        memset(&w->pending_st, 0, sizeof(w->pending_st));
        w->pending.len = 0;
        w->pending_ends.len = 0;
        w->pending_appends = 0;
        w->inflight_bytes = w->batch.len;
        w->batch_seq = w->last_seq;
    }
    pthread_mutex_unlock(&w->mu);
    return taken;
}

/* Writes and syncs the taken batch, publishes the durable statistics and calls back. */
static void sd__run_batch(struct sd_slice_writer *w)
{
    size_t batch_len = w->batch.len;
    int rc = sd__write_batch(w);

    sd__maybe_shrink(&w->out, w->out.len);
    sd__maybe_shrink(&w->out_tail, w->out_tail.len);
    sd__maybe_shrink(&w->batch_ends, w->batch_ends.len);
    sd__maybe_shrink(&w->batch, w->batch.len);

    w->failed_in_row = rc == 0 ? 0 : w->failed_in_row + 1;
    pthread_mutex_lock(&w->mu);
    w->inflight_bytes = 0;
    w->is_not_ready = w->opts.failed_batches_threshold > 0 &&
                      w->failed_in_row >= w->opts.failed_batches_threshold;
    if (rc == 0) {
        w->durable.records += w->batch_st.records;
        w->durable.uncompressed_bytes += batch_len;
        w->durable.compressed_bytes = w->prev_files_bytes + w->off;
        sd__stats_merge_times(&w->durable, w->batch_st.first_ms, w->batch_st.last_ms);
    }
    pthread_mutex_unlock(&w->mu);
    if (w->cb != NULL) {
        w->cb(w->cb_arg, w->batch_seq, rc);
    }
}

/* The task: one batch per run; an append during the run schedules the next one. */
static void sd__writer_run(void *arg)
{
    struct sd_slice_writer *w = arg;

    if (sd__take_batch(w)) {
        sd__run_batch(w);
    }
}

/* ---- threads shared by every writer ---- */

/* The writer threads, and the compression workers of the parallel implementation: created
 * with the first open writer, stopped with the last. */
static struct {
    pthread_mutex_t mu;
    int refs;
    struct sd_taskpool *tasks;
    struct sd_gzip_pool *gzip;
} sd__shared = {PTHREAD_MUTEX_INITIALIZER, 0, NULL, NULL};

static int sd__cpus(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    return cpus > 0 ? (int)cpus : 1;
}

static void sd__shared_release(void)
{
    pthread_mutex_lock(&sd__shared.mu);
    if (--sd__shared.refs == 0) {
        sd_taskpool_destroy(sd__shared.tasks);
        sd_gzip_pool_destroy(sd__shared.gzip);
        sd__shared.tasks = NULL;
        sd__shared.gzip = NULL;
    }
    pthread_mutex_unlock(&sd__shared.mu);
}

/* Takes a reference on the shared threads (starting them when needed), binds w's task to
 * them and points w->pool at the compression workers when they serve w's level. */
static int sd__shared_acquire(struct sd_slice_writer *w)
{
    int rc = 0;

    pthread_mutex_lock(&sd__shared.mu);
    if (sd__shared.tasks == NULL) {
        int n = sd__cpus() * SD__SW_POOL_THREADS_PER_CPU;
        n = n < SD__SW_POOL_MIN_THREADS ? SD__SW_POOL_MIN_THREADS : n;
        n = n > SD__SW_POOL_MAX_THREADS ? SD__SW_POOL_MAX_THREADS : n;
        rc = sd_taskpool_create(n, &sd__shared.tasks);
    }
    if (rc == 0 && sd__shared.gzip == NULL && w->gz != NULL &&
        w->opts.gzip_impl == SD_GZIP_PARALLEL) {
        int threads = w->opts.gzip_concurrency > 0 ? w->opts.gzip_concurrency : sd__cpus();
        int workers = (threads > SD__SW_MAX_THREADS ? SD__SW_MAX_THREADS : threads) - 1;
        if (workers > 0) {
            rc = sd_gzip_pool_create(w->opts.gzip_impl, w->opts.gzip_level, workers,
                                     &sd__shared.gzip);
        }
    }
    if (rc == 0) {
        sd__shared.refs++;
        sd_task_init(&w->task, sd__shared.tasks, sd__writer_run, w);
        w->has_shared = 1;
        if (sd__shared.gzip != NULL && w->gz != NULL && w->opts.gzip_impl == SD_GZIP_PARALLEL &&
            sd_gzip_pool_level(sd__shared.gzip) == w->opts.gzip_level) {
            w->pool = sd__shared.gzip;
        }
    } else if (sd__shared.refs == 0) {
        sd_taskpool_destroy(sd__shared.tasks);
        sd__shared.tasks = NULL;
    }
    pthread_mutex_unlock(&sd__shared.mu);
    return rc;
}

/* ---- public API ---- */

static void sd__writer_free(struct sd_slice_writer *w)
{
    if (w == NULL) {
        return;
    }
    if (w->has_shared) {
        sd_task_detach(&w->task);
        sd__shared_release();
    }
    if (w->fd >= 0) {
        close(w->fd);
    }
    sd_gzip_destroy(w->gz);
    sd_buf_fini(&w->pending);
    sd_buf_fini(&w->pending_ends);
    sd_buf_fini(&w->batch);
    sd_buf_fini(&w->batch_ends);
    sd_buf_fini(&w->out);
    sd_buf_fini(&w->out_tail);
    for (size_t i = 0; i < w->jobs_cap; i++) {
        sd_buf_fini(&w->jobs[i].out);
    }
    free(w->jobs);
    free(w->pieces);
    free(w->spans);
    free(w->path);
    free(w->dir);
    free(w->node_id);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

/* Recovers every existing file of this writer; returns the highest file number (0: none). */
static int sd__recover_files(struct sd_slice_writer *w, struct sd_slice_stats *st, int *last)
{
    DIR *d = opendir(w->dir);
    struct dirent *e;
    int max_n = 0;
    int rc = 0;

    *last = 0;
    if (d == NULL) {
        return -errno;
    }
    while ((e = readdir(d)) != NULL) {
        int n = sd__file_number(w, e->d_name);
        if (n > max_n) {
            max_n = n;
        }
    }
    closedir(d);
    for (int n = 1; n <= max_n && rc == 0; n++) {
        char *path = sd__file_path(w, n);
        struct sd_slice_stats fs;
        if (access(path, F_OK) == 0) {
            rc = sd_slice_recover(path, &fs);
            if (rc == 0) {
                st->records += fs.records;
                st->uncompressed_bytes += fs.uncompressed_bytes;
                st->compressed_bytes += fs.compressed_bytes;
                *last = n;
            }
        }
        free(path);
    }
    return rc;
}

int sd_slice_writer_open(const struct sd_slice_writer_opts *opts, sd_slice_sync_fn cb, void *arg,
                         struct sd_slice_writer **out, struct sd_slice_stats *recovered)
{
    struct sd_slice_writer *w;
    struct sd_slice_stats rst;
    struct stat sb;
    uint64_t size = 0;
    int last = 0;
    int dir_existed;
    int rc;

    *out = NULL;
    memset(&rst, 0, sizeof(rst));
    if (opts == NULL || opts->dir == NULL || opts->node_id == NULL || opts->node_id[0] == '\0' ||
        strchr(opts->node_id, '/') != NULL || opts->gzip_level < 0 || opts->gzip_level > 9 ||
        opts->gzip_concurrency < 0 ||
        (opts->compression != SD_COMPRESSION_NONE && opts->compression != SD_COMPRESSION_GZIP)) {
        return SD_EINVAL;
    }
    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return -ENOMEM;
    }
    w->fd = -1;
    pthread_mutex_init(&w->mu, NULL);
    w->opts = *opts;
    w->dir = sd_xstrdup(opts->dir);
    w->node_id = sd_xstrdup(opts->node_id);
    w->opts.dir = w->dir;
    w->opts.node_id = w->node_id;
    w->cb = cb;
    w->cb_arg = arg;
    if (w->opts.gzip_level == 0) {
        w->opts.gzip_level = 1;
    }
    if (w->opts.gzip_block_size == 0) {
        w->opts.gzip_block_size = SD__SW_DEFAULT_BLOCK;
    }
    if (w->opts.max_pending_bytes == 0) {
        w->opts.max_pending_bytes = SD__SW_DEFAULT_PENDING;
    }

    dir_existed = stat(w->dir, &sb) == 0;
    rc = sd_mkdir_p(w->dir, SD_DIR_MODE);
    if (rc == 0 && !dir_existed) {
        rc = sd_fsync_parent(w->dir);
    }
    if (rc == 0) {
        rc = sd__recover_files(w, &rst, &last);
    }
    if (rc == 0) {
        w->file_no = last > 0 ? last : 1;
        rc = sd__open_file(w, w->file_no, &w->fd, &w->path, &size);
    }
    if (rc == 0) {
        w->off = size;
        w->prev_files_bytes = rst.compressed_bytes >= size ? rst.compressed_bytes - size : 0;
        w->durable = rst;
        if (w->opts.compression == SD_COMPRESSION_GZIP) {
            rc = sd_gzip_create(w->opts.gzip_impl, w->opts.gzip_level, &w->gz);
        }
    }
    if (rc == 0) {
        rc = sd__shared_acquire(w);
    }
    if (rc != 0) {
        sd_log_error("slice", "opening slice writer in %s failed: %s", w->dir, sd_strerror(rc));
        sd__writer_free(w);
        return rc;
    }
    if (recovered != NULL) {
        *recovered = rst;
    }
    *out = w;
    return 0;
}

/* Both appends; start: the batch's first append queues the writer's task. */
static int sd__append(struct sd_slice_writer *w, const void *rows, size_t len, uint32_t nrows,
                      int64_t record_ms, uint64_t *seq, int start)
{
    size_t end;
    int rc = 0;

    pthread_mutex_lock(&w->mu);
    if (w->closing) {
        rc = SD_ECLOSED;
    } else if (w->unhealthy) {
        rc = SD_EUNHEALTHY;
    } else if (len > w->opts.max_pending_bytes ||
               w->pending.len + w->inflight_bytes > w->opts.max_pending_bytes - len) {
        rc = SD_ELIMIT;
    } else {
        size_t old_len = w->pending.len;
        rc = sd_buf_append(&w->pending, rows, len);
        if (rc == 0) {
            end = w->pending.len;
            rc = sd_buf_append(&w->pending_ends, &end, sizeof(end));
            if (rc != 0) {
                w->pending.len = old_len;
            }
        }
    }
    if (rc == 0) {
        w->pending_appends++;
        w->pending_st.records += nrows;
        if (w->pending_st.first_ms == 0 || (record_ms != 0 && record_ms < w->pending_st.first_ms)) {
            w->pending_st.first_ms = record_ms;
        }
        if (record_ms > w->pending_st.last_ms) {
            w->pending_st.last_ms = record_ms;
        }
        *seq = ++w->last_seq;
        if (start && w->pending_appends == 1) {
            /* The first append of a batch: queue the task (or rerun it after its batch). */
            sd_task_schedule(&w->task);
        }
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

int sd_slice_writer_append(struct sd_slice_writer *w, const void *rows, size_t len, uint32_t nrows,
                           int64_t record_ms, uint64_t *seq)
{
    return sd__append(w, rows, len, nrows, record_ms, seq, 1);
}

int sd_slice_writer_append_held(struct sd_slice_writer *w, const void *rows, size_t len,
                                uint32_t nrows, int64_t record_ms, uint64_t *seq)
{
    return sd__append(w, rows, len, nrows, record_ms, seq, 0);
}

void sd_slice_writer_start(struct sd_slice_writer *w)
{
    int start;

    pthread_mutex_lock(&w->mu);
    start = w->pending_appends > 0 && !w->closing;
    pthread_mutex_unlock(&w->mu);
    /* After unlocking: the woken writer thread takes mu first thing. The caller keeps the close
     * away, so the task is still bound. */
    if (start) {
        sd_task_schedule(&w->task);
    }
}

void sd_slice_writer_stats(struct sd_slice_writer *w, struct sd_slice_stats *out)
{
    pthread_mutex_lock(&w->mu);
    *out = w->durable;
    pthread_mutex_unlock(&w->mu);
}

int sd_slice_writer_is_ready(struct sd_slice_writer *w)
{
    int ready;

    pthread_mutex_lock(&w->mu);
    ready = !w->is_not_ready && !w->unhealthy;
    pthread_mutex_unlock(&w->mu);
    return ready;
}

int sd_slice_writer_is_unhealthy(struct sd_slice_writer *w)
{
    int u;

    pthread_mutex_lock(&w->mu);
    u = w->unhealthy;
    pthread_mutex_unlock(&w->mu);
    return u;
}

int sd_slice_writer_close(struct sd_slice_writer *w, struct sd_slice_stats *final_stats)
{
    int rc;

    if (w == NULL) {
        return 0;
    }
    pthread_mutex_lock(&w->mu);
    w->closing = 1;
    pthread_mutex_unlock(&w->mu);
    /* No append can schedule the task now: wait for its batch, then finish here. */
    sd_task_detach(&w->task);
    while (sd__take_batch(w)) {
        sd__run_batch(w);
    }
    sd__finish_file(w);
    rc = w->final_rc;
    if (final_stats != NULL) {
        *final_stats = w->durable;
    }
    sd__writer_free(w);
    return rc;
}
