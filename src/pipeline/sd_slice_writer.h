/* sd_slice_writer.h: the slice writer: appends CSV rows to a local slice file, compressed
 * (gzip members) or plain, with group commit on threads shared by every writer.
 *
 * Appenders (any thread, no I/O) copy complete rows into a pending batch and get a sequence
 * number. The first append of a batch queues the writer on a process-wide pool of writer
 * threads (4 per CPU, 4 to 32; an idle writer costs no thread); one pool thread at a time
 * takes the writer's whole batch, compresses it in one go ending at a
 * sync-flush boundary, writes it, fdatasyncs (sync mode disk) and reports through the sync
 * callback that every sequence number up to the batch's last is durable; the next batch,
 * filled meanwhile, is queued at once, so one fdatasync covers every record that arrived while
 * the previous one ran. A gzip member is finished at the first append boundary where its
 * input reaches gzip_block_size, and the next member starts right after it (with the
 * `parallel` implementation, the members of a large batch are compressed by worker threads
 * shared by every writer, one batch at a time; a batch that finds them busy is compressed by
 * its own writer thread). Different writers write and fdatasync in parallel, up to the pool.
 *
 * Files of a slice (all in opts->dir, data = their concatenation in order):
 *   gzip: .slice-<node_id>.csv.gz, then .slice-<node_id>-2.csv.gz, -3, ... (continuations)
 *   none: slice-<node_id>.csv, then slice-<node_id>-2.csv, ...
 * A continuation file is started only after an fdatasync failure (never retried on that fd).
 *
 * Failures: a failed write (ENOSPC, EIO) fails that batch only (callback rc < 0), the file is
 * cut back to the last good offset and its member completed; later batches are tried again.
 * A failed fdatasync fails the batch, the file is closed without another fsync, cut at its
 * last synced offset with its member completed, and writing continues in a continuation
 * file; when that cannot be opened, or its own first fdatasync fails, the writer is
 * unhealthy and every later append returns SD_EUNHEALTHY. */
#ifndef SD_SLICE_WRITER_H
#define SD_SLICE_WRITER_H

#include "pipeline/sd_gzip.h"
#include "pipeline/sd_slice_recover.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/statvfs.h>
#include <sys/types.h>

/* encoding.sync.mode: disk = fdatasync before the callback; cache = write() returned. */
enum sd_sync_mode { SD_SYNC_DISK, SD_SYNC_CACHE };

/* Test seam (SQLite test_vfs style): optional replacements for the writer's file calls, with
 * the syscalls' conventions (-1 and errno on failure). A NULL table or NULL member means the
 * real syscall. Called from a writer thread (open also from sd_slice_writer_open, and every
 * call from sd_slice_writer_close for what is left at close). Tests
 * use it to inject EIO/ENOSPC on the Nth call and to count fdatasync calls per fd. */
struct sd_slice_io {
    int (*open)(void *arg, const char *path, int flags, mode_t mode);
    ssize_t (*pwrite)(void *arg, int fd, const void *buf, size_t len, off_t off);
    int (*fdatasync)(void *arg, int fd);
    int (*fstatvfs)(void *arg, int fd, struct statvfs *out); /* before a reservation */
    void *arg;
};

struct sd_slice_writer_opts {
    const char *dir;     /* slice directory, created (mkdir -p, 0700) if missing */
    const char *node_id; /* file name part (see above); files are created 0600 */
    enum sd_compression compression;
    enum sd_gzip_impl gzip_impl;
    int gzip_level;         /* 1-9 (ISA-L uses at most 3); 0 = 1 */
    size_t gzip_block_size; /* a member is finished at the first append boundary where its
                             * input reaches this (appends are never split); 0 = 256 KiB */
    int gzip_concurrency;   /* parallel impl: threads compressing one batch; 0 = CPUs */
    enum sd_sync_mode sync_mode;
    size_t max_pending_bytes; /* budget of appended rows not yet written (pending batch and
                               * the batch being written); beyond -> SD_ELIMIT; 0 = 64 MiB */
    int allocate;             /* fallocate allocate_bytes for each file before its first write
                               * (an idle writer reserves nothing), setting the file's size so a
                               * batch's sync writes no new size, unless that leaves the volume
                               * less than a tenth of its size free (a burst of sinks cannot
                               * fill it with reservations); a file outgrowing it reserves
                               * more, under the same floor; the zero tail is cut at close;
                               * failure is logged, not fatal */
    int64_t allocate_bytes;   /* bytes to reserve per file (the caller picks static or relative) */
    const struct sd_slice_io *io;      /* test seam, NULL = real syscalls; borrowed for the
                                        * writer's lifetime */
    uint32_t failed_batches_threshold; /* consecutive failed batches after which the writer is
                                        * not ready until a batch succeeds (reference
                                        * encoding.failedChunksThreshold); 0 = never */
};

/* Called after each batch, from a pool thread (or the thread in sd_slice_writer_close for the
 * batches left at close), never for two batches of one writer at once. rc == 0: every append with
 * seq <= synced_seq is durable (disk mode: fdatasync returned; cache mode: write returned).
 * rc < 0: every append with seq in (previous synced_seq, seq] failed and will never be
 * acknowledged. Calls come in increasing seq order. Must not block; may call
 * sd_slice_writer_append and sd_slice_writer_stats (no lock is held), never close. */
typedef void (*sd_slice_sync_fn)(void *arg, uint64_t seq, int rc);

struct sd_slice_writer;

/* Opens (creating or continuing) the slice files of node_id in opts->dir: existing files are
 * first recovered (sd_slice_recover) and new data is appended as new gzip members after the
 * last one. Starts the shared writer threads if this is the only open writer. opts is copied
 * (strings too). *recovered (optional) receives the statistics of the existing data. Returns 0 with
 * *out owned by the caller (sd_slice_writer_close), SD_EINVAL for bad options, or -errno (mkdir,
 * open, recovery). */
int sd_slice_writer_open(const struct sd_slice_writer_opts *opts, sd_slice_sync_fn cb, void *arg,
                         struct sd_slice_writer **out, struct sd_slice_stats *recovered);

/* Appends nrows complete CSV rows (len bytes, never a partial row) from any thread without
 * I/O: copies them into the pending batch and wakes the writer. *seq receives the sequence
 * number to wait for (the callback with a seq >= it reports the outcome). record_ms is the
 * receive time of the rows. Returns 0, SD_ELIMIT (pending budget full: answer 503),
 * SD_EUNHEALTHY (the writer failed permanently: 503), SD_ECLOSED, or -ENOMEM. */
int sd_slice_writer_append(struct sd_slice_writer *w, const void *rows, size_t len, uint32_t nrows,
                           int64_t record_ms, uint64_t *seq);

/* Like sd_slice_writer_append, but the batch's write and sync wait for sd_slice_writer_start (or
 * an unheld append, or the close): an event loop holds the appends of one round and starts them
 * together, so they share a batch. */
int sd_slice_writer_append_held(struct sd_slice_writer *w, const void *rows, size_t len,
                                uint32_t nrows, int64_t record_ms, uint64_t *seq);

/* Queues the write and sync of the held appends (a no-op when none wait or the writer closes).
 * Any thread, but never while sd_slice_writer_close runs or after it (the caller orders the
 * two, as storage does with a lock around the start and the close's begin). */
void sd_slice_writer_start(struct sd_slice_writer *w);

/* Statistics of durable data so far (synced batches plus recovered data). Thread-safe. */
void sd_slice_writer_stats(struct sd_slice_writer *w, struct sd_slice_stats *out);

/* Returns 0 while the last failed_batches_threshold batches (or more) in a row failed, or once
 * the writer is unhealthy; else 1. Appends are still accepted while not ready (the batches
 * are retried on the same file); the caller reports it (readiness). Thread-safe. */
int sd_slice_writer_is_ready(struct sd_slice_writer *w);

/* Returns 1 once the writer is unhealthy (every append fails with SD_EUNHEALTHY). */
int sd_slice_writer_is_unhealthy(struct sd_slice_writer *w);

/* Stops intake (appends return SD_ECLOSED), writes and syncs everything pending (their
 * callbacks fire), finishes the gzip member, fdatasyncs, closes the file, stops the shared
 * threads if this was the last open writer and frees w. A writer that ends cleanly with a
 * single file records it in sd_slice_closed with its durable statistics (every file it opens
 * loses its record there). Must not be called from the callback. Returns 0, or the first error
 * that left the slice without all accepted data (SD_EUNHEALTHY or the final write/sync error).
 * *final_stats (optional) receives the durable statistics. */
int sd_slice_writer_close(struct sd_slice_writer *w, struct sd_slice_stats *final_stats);

#endif
