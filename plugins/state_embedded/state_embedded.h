/* state_embedded.h: the "embedded" state backend (in-process store with etcd semantics,
 * persisted in a directory) and its tuning hooks for tests and tools.
 *
 * Files in the store directory: "snapshot" (full state at some log sequence), "wal" (framed,
 * checksummed records appended after the snapshot), "wal.new" (present only while a
 * compaction switches logs) and "LOCK" (flock: one process per directory). */
#ifndef STATE_EMBEDDED_H
#define STATE_EMBEDDED_H

#include "state/sd_state.h"

#include <stddef.h>
#include <stdint.h>

extern const struct sd_state_ops sd_state_embedded_ops;

/* Tunables. 0 in a field keeps the current value. */
struct sd_state_embedded_limits {
    uint64_t wal_max_bytes;   /* compact when the log exceeds this (default 64 MiB) */
    uint64_t wal_max_records; /* ... or holds this many records (default 100000) */
    size_t history_revs;      /* revisions kept for watch replays (default 10000) */
    size_t history_bytes;     /* and at most about this many bytes of them (default 64 MiB) */
};

/* Changes the tunables of an open embedded store (ctx = sd_state->ctx). Thread-safe. */
void sd_state_embedded_set_limits(void *ctx, const struct sd_state_embedded_limits *lim);

/* Writes a snapshot now and starts a new log; returns when both are durable. Returns 0,
 * SD_EUNHEALTHY or -errno. Thread-safe; blocks for the snapshot write. */
int sd_state_embedded_compact(void *ctx);

/* Counters for tests and metrics. */
struct sd_state_embedded_stats {
    uint64_t syncs;       /* fdatasync calls on the log */
    uint64_t records;     /* records appended since open */
    uint64_t compactions; /* snapshots written since open */
    uint64_t wal_bytes;   /* size of the current log */
};

/* Fills *out with the counters of an open embedded store. Thread-safe. */
void sd_state_embedded_stats(void *ctx, struct sd_state_embedded_stats *out);

#endif
