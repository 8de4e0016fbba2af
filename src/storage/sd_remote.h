/* sd_remote.h: a source node's side of the source -> writer protocol (docs/PROTOCOL.md): one
 * connection per writer node (reconnected with backoff while the node is announced), and the
 * slice files this node writes on them: appends without I/O, sync results from the writer, closes.
 *
 * A file survives its connection: when the connection breaks, every append not yet reported
 * durable is reported failed (never durable), and the file is opened again on the next
 * connection; appends are refused meanwhile. A writer's DRAIN (graceful shutdown) closes its
 * files: they take no more appends, and their syncs in flight still come. */
#ifndef SD_REMOTE_H
#define SD_REMOTE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct sd_remote;
struct sd_remote_file;

struct sd_remote_opts {
    const char *node_id;      /* this source node (copied) */
    int64_t keepalive_ms;     /* writer.network.keepAliveInterval: PING after this much silence;
                               * a connection silent for 3 times as long is closed */
    size_t window;            /* writer.network.streamMaxWindow: bytes of appends one connection
                               * carries before their sync (the writer may lower it) */
    int64_t close_timeout_ms; /* writer.network.streamCloseTimeout: how long a close waits */
};

/* A file's sync results, from a connection thread, in increasing seq, never two at once for one
 * file and never after sd_remote_close returned: every append with seq <= seq is durable (rc 0),
 * or every append with seq in (the previous result's seq, seq] failed (rc < 0). */
typedef void (*sd_remote_sync_fn)(void *arg, uint64_t seq, int rc);

int sd_remote_create(const struct sd_remote_opts *opts, struct sd_remote **out);

/* Sets the writer nodes, {nodeId: "host:port"}: connects to new ones, drops the connections of
 * nodes that are gone (their files fail and stay failed). */
void sd_remote_set_writers(struct sd_remote *r, const json_t *writers);

/* Starts writing this node's file of slice_key on writer node writer_id: the file is opened in
 * the background (appends are refused until the writer has opened it). Never fails. */
struct sd_remote_file *sd_remote_open(struct sd_remote *r, const char *writer_id,
                                      const char *slice_key, sd_remote_sync_fn fn, void *arg);

/* 1 when the file takes appends now: open on a connected writer that is not draining, with room
 * in its connection's window. */
int sd_remote_file_is_ready(struct sd_remote_file *f);

/* 1 when the file takes no appends ever again: the writer refused it, or its node is gone (a
 * writer node back at another address is a new node to the connections). */
int sd_remote_file_is_failed(struct sd_remote_file *f);

/* 1 when the file's writer node is down: gone, or not connected and an attempt (or its last
 * connection) failed since its last handshake; a new writer is not down while it connects. */
int sd_remote_writer_is_down(struct sd_remote_file *f);

/* Waits until the writer has opened the file (or refused it, or its node is gone, or deadline_ms
 * on the monotonic clock passed). Returns sd_remote_file_is_ready. */
int sd_remote_wait_open(struct sd_remote_file *f, int64_t deadline_ms);

/* Queues rows (complete CSV rows, nrows records) for the file's writer node; they are sent at
 * the next sd_remote_flush (one write for a burst of appends). Returns 0 with *seq (the sync
 * result covering it has a seq >= it), SD_ELIMIT (the connection's window is full), or
 * SD_EUNHEALTHY (not open, writer not connected or draining). Any thread. */
int sd_remote_append(struct sd_remote_file *f, const void *rows, size_t len, uint32_t nrows,
                     uint64_t *seq);

/* Sends what the appends since the last flush queued (the appender calls it after a burst, e.g.
 * once per round of its event loop). */
void sd_remote_flush(struct sd_remote *r);

/* Asks the writer to sync and close the file and waits for its answer, at most close_timeout_ms
 * (or until its connection breaks); appends not reported durable by then are reported failed.
 * No callback follows. Frees f. Returns 0 when the writer closed it, else SD_EUNHEALTHY or
 * -ETIMEDOUT. */
int sd_remote_close(struct sd_remote_file *f);

/* Closes every connection and frees r (its files must be closed). */
void sd_remote_destroy(struct sd_remote *r);

#endif
