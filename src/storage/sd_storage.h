/* sd_storage.h: the storage-writer role of a node: local volumes, one slice writer for the
 * "writing" slice of each active sink on them (following the slices the coordinator opens and
 * closes in the state store), close-sync reports, and the periodic flush of slice statistics.
 *
 * Threads: sd_storage_append() and sd_storage_flush() may be called from the data endpoint's
 * loop threads, any number at once; everything else from one control thread at a time
 * (reconciliation is serialized by the node's slot lock). Sync results of every writer are
 * delivered to the listener set with sd_storage_set_sync_listener(), from writer threads. */
#ifndef SD_STORAGE_H
#define SD_STORAGE_H

#include <jansson.h>
#include <stdint.h>

#include "core/sd_buf.h"
#include "pipeline/sd_slice_writer.h"

/* The distribution group of source-only nodes (reference storage.router.sources.<type>): a member
 * announces runtime/distribution/group/<group>/nodes/<nodeID>; the sinks' slices are shared among
 * the members (sd_assign_slices). */
#define SD_STORAGE_SOURCE_GROUP "storage.router.sources.http-source"

struct sd_config;
struct sd_health;
struct sd_state;
struct sd_storage;
struct sd_sink_slot;
struct sd_slice_handle;

/* Appenders (the data endpoint's event loops) are numbered 0 to SD_STORAGE_MAX_APPENDERS - 1. */
#define SD_STORAGE_MAX_APPENDERS 64

/* Called from a writer thread: every append on slice with seq <= seq is durable (rc == 0), or
 * the batch ending at seq failed (rc < 0); sd_storage_slice_appenders(slice) says which
 * appenders have appended there (each append's appender is marked before its sync can come).
 * After the slice's writer is closed, one last call with rc == SD_ECLOSED follows; the handle
 * must then be released with sd_storage_slice_release() once by each marked appender (on its
 * own thread, after its waiters of that slice are done), or once when none is marked. */
typedef void (*sd_storage_sync_fn)(void *arg, struct sd_slice_handle *slice, uint64_t seq, int rc);

/* Opens the volumes under storage.volumesPath (creating default/1 when there is none), takes
 * their writer.lock (sd_storage_volume_announcements announces them), and recovers every slice of
 * node_id left in a local state (writing/closing) so its files are valid gzip. Starts the
 * statistics thread and, with storage.diskCleanup.enabled, the disk cleanup thread (a pass at once,
 * then every storage.diskCleanup.interval). Borrows state, health (a volume's disk errors are
 * reported there) and node_id, which must outlive the storage; cfg is read here only. Returns 0 or
 * a negative code + err. */
int sd_storage_open(const struct sd_config *cfg, struct sd_state *state, struct sd_health *health,
                    const char *node_id, struct sd_storage **out, struct sd_buf *err);
/* The storage of a source-only node (http-source without storage-writer): no volumes; each
 * sink's slot writes this node's files on its share of the sink's writing slices on the writer
 * nodes that listen for source nodes (storage/volume/writer/ with a nodeAddress), over the
 * source -> writer protocol (sd_remote.h), and a balancer (writer.network.pipelineBalancer)
 * spreads the appends over those of them that are ready. Group members: SD_STORAGE_SOURCE_GROUP
 * (announced by the wiring, with close-sync reports). Same interface as sd_storage_open
 * otherwise. */
int sd_storage_open_source(const struct sd_config *cfg, struct sd_state *state,
                           struct sd_health *health, const char *node_id, struct sd_storage **out,
                           struct sd_buf *err);
/* Sets who receives sync results (before any sink is activated). */
void sd_storage_set_sync_listener(struct sd_storage *st, sd_storage_sync_fn fn, void *arg);
/* Gives the sink (its stored definition JSON) a slot that writes its "writing" slice on our
 * volumes (the coordinator opens files and slices, sd_files.h; sd_storage_sync_slices opens their
 * writers). settings is the effective settings snapshot (sd_settings_snapshot; copied); a call
 * for an active sink replaces the slot's copy. Returns 0 and the sink's slot (owned by storage,
 * valid until sd_storage_sink_deactivate or close). Idempotent. */
int sd_storage_sink_activate(struct sd_storage *st, const json_t *sink, const json_t *settings,
                             struct sd_sink_slot **out);
/* Follows the store: points every slot at its sink's "writing" slice on our volumes, opening
 * the new writer before appends switch to it and closing the old one (its final sync answers
 * its waiters; bounded by sliceCloseTimeout, fileCloseTimeout when the file changed, then in
 * the background), pauses a slot whose sink has no such slice (appends refused), and reports
 * close-sync (sd_storage_set_closesync). Callers hold the node's slot lock. Returns 0 or the
 * store's error (then nothing changed). */
int sd_storage_sync_slices(struct sd_storage *st);
/* Called with the store revision up to which every writer of a slice that left "writing" is
 * closed; returns 0 when the report was stored (runtime/closesync/source/node/<nodeID>). */
typedef int (*sd_storage_closesync_fn)(void *arg, int64_t rev);
/* Sets who stores close-sync reports (before any sink is activated). */
void sd_storage_set_closesync(struct sd_storage *st, sd_storage_closesync_fn fn, void *arg);
/* The keys announcing this writer's volumes to the cluster, {"storage/volume/writer/<id>":
 * "<JSON: volumeId, nodeId, hostname, path, type, label[, nodeAddress]>"} (owned); the wiring
 * keeps them in the state store with the node's volume lease, so they vanish when the node is
 * gone. node_address (host:port where source nodes reach this writer, NULL when it does not
 * listen for them) is the reference's nodeAddress. */
json_t *sd_storage_volume_announcements(struct sd_storage *st, const char *node_address);
/* 1 if volume_id is one of this writer's volumes (its slices are on this node's disk). */
int sd_storage_has_volume(struct sd_storage *st, const char *volume_id);
/* The open slice of every active sink: [{sinkKey, fileKey, sliceKey, settings, records,
 * compressedSize, uncompressedSize}] with live (synced) statistics. */
json_t *sd_storage_open_slices(struct sd_storage *st);
/* Closes the sink's writer and frees its slot (its file is closed by the coordinator; the data
 * stays for the upload). Waits at most storage.level.target.operator.fileCloseTimeout for the
 * writer; past it the close finishes in the background. No-op for an unknown sink key
 * "<p>/<b>/<source>/<sink>". */
int sd_storage_sink_deactivate(struct sd_storage *st, const char *sink_key);
/* Returns 1 while the writer of slice_key (rotated away or deactivated) is still closing, in
 * time or in the background after its close timeout: such a slice must not be uploaded yet. */
int sd_storage_slice_is_closing(struct sd_storage *st, const char *slice_key);
/* Returns 1 if the sink key currently has a slot. */
int sd_storage_sink_is_active(struct sd_storage *st, const char *sink_key);
/* Lists the sink keys with an open slot (owned strings in a json array). */
json_t *sd_storage_active_sinks(struct sd_storage *st);
/* Whether a 200 waits for the sync (storage.level.local.encoding.sync.wait) for this slot. */
int sd_storage_slot_wait(const struct sd_sink_slot *slot);
/* Appends CSV rows to the slot's current slice without blocking on I/O, for appender (below
 * SD_STORAGE_MAX_APPENDERS; any number of appenders may append to one slot at once). The rows'
 * write and sync start at the appender's next sd_storage_flush, so the records of one round
 * share a batch. On success sets the slice and seq to wait for. Returns 0, SD_ELIMIT
 * (back-pressure), SD_EUNHEALTHY, SD_ECLOSED. */
int sd_storage_append(struct sd_sink_slot *slot, unsigned appender, const void *rows, size_t len,
                      uint32_t nrows, int64_t record_ms, struct sd_slice_handle **slice,
                      uint64_t *seq);
/* Starts what appender appended since its last flush: the write and sync of each slice it
 * appended to on our volumes, and (a source-only node) the send to the writer nodes. Each loop
 * of the data endpoint calls it (as appender) after each of its rounds, so a round's records
 * share a batch and go out in one write per writer node, and the balancer's turn of that
 * appender moves. Appends wait for it: an appender must flush after its appends (sd_storage_close
 * writes what is left). */
void sd_storage_flush(struct sd_storage *st, unsigned appender);
/* Appender-side storage of appender's waiters on a slice (the data endpoint's bookkeeping;
 * storage never touches it). */
void **sd_storage_slice_waiters(struct sd_slice_handle *slice, unsigned appender);
/* The appenders that have appended to slice: bit i for appender i. Any thread. */
uint64_t sd_storage_slice_appenders(const struct sd_slice_handle *slice);
/* Drops one reference to a slice handle after its SD_ECLOSED notification (see
 * sd_storage_sync_fn); the last frees it. */
void sd_storage_slice_release(struct sd_slice_handle *slice);
/* A writer node's side of the source -> writer protocol (storage/sd_receiver.c): opens source
 * node source_id's file (slice-<sourceID>.csv[.gz]) in the directory of slice_key, which must be
 * a "writing" slice on one of our volumes (read from the store, never from the source). While
 * the file is open the slice counts as closing (no upload). fn receives its sync results (writer
 * threads; sd_slice_sync_fn); its statistics are stored as the source node's. Returns 0 with
 * *out and *durable (records already in the file), or SD_ENOTFOUND / SD_ECLOSED (no such
 * writing slice here) or the writer's error, with err. Any thread. */
int sd_storage_net_open(struct sd_storage *st, const char *slice_key, const char *source_id,
                        sd_slice_sync_fn fn, void *arg, struct sd_slice_handle **out,
                        uint64_t *durable, struct sd_buf *err);
/* Appends rows to a source node's file (sd_slice_writer_append). */
int sd_storage_net_append(struct sd_slice_handle *h, const void *rows, size_t len, uint32_t nrows,
                          int64_t record_ms, uint64_t *seq);
/* Syncs and closes a source node's file (its last sync results come first), stores its final
 * statistics (*final, optional) and frees h. Returns sd_slice_writer_close's result. */
int sd_storage_net_close(struct sd_slice_handle *h, struct sd_slice_stats *final);
/* Closes every writer (final syncs fire their callbacks), flushes statistics, unlocks the
 * volumes and frees. */
void sd_storage_close(struct sd_storage *st);

struct sd_config_bindings;
/* The keys the storage writer reads (for the registry). */
extern const struct sd_config_bindings sd_storage_config_bindings;

#endif
