/* sd_files.h: the lifecycle of a sink's files and slices across the writer nodes, as guarded
 * transactions in the state store (the coordinator's side of reference §4.2 and §1.5).
 *
 * A sink's writing file has one slice on each live writer node that serves it (the node's
 * storage.level.local.volume.assignment volumes; writer nodes are the live announcements under
 * storage/volume/writer/). The coordinator that owns the sink opens the file, adds slices for
 * writer nodes that join, rotates each slice (upload trigger: the slice closes and its successor
 * opens on the same volume) and the whole file (import trigger: the file and its writing slices
 * close and the next file opens), and closes the file when the sink stops. Every change of a
 * file's slices also stores the file again, so two changes of one file conflict and one is
 * retried: the reference's lock operator.file.<fileKey> as a compare.
 *
 * Writer nodes follow their slices and switch their writers; each reports the revision up to
 * which it has closed the writers of slices that left "writing" under
 * runtime/closesync/source/node/<nodeID> (close-sync, with the node's lease). A slice moves from
 * "closing" to "uploading" only when every reporting node is at or past the slice's revision. */
#ifndef SD_FILES_H
#define SD_FILES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/sd_buf.h"

struct sd_state;

#define SD_FILES_CLOSESYNC_PREFIX "runtime/closesync/source/node/"

/* How new slices are placed and encoded; strings borrowed. */
struct sd_files_config {
    size_t assignment_count;            /* volumes per writer node */
    const char *const *preferred_types; /* most preferred first */
    size_t npreferred;
    const char *compression; /* "gzip" or "none" */
};

/* Opens the next writing file of the sink described by meta (projectId, branchId, sourceId,
 * sinkId, columns, tableId) with settings (the effective settings snapshot, recorded in the
 * file) and one slice per assigned volume of every live writer node. With old_file_key, the old
 * file and its writing slices move to "closing" in the same transaction, which applies only if
 * none of them changed since read. Retried at a later millisecond on a conflict. *file_key_out
 * (may be NULL) gets the new key. Returns 0, SD_ENOTFOUND with "no volume is available for the
 * file" when no writer node is live, or an error with err set. */
int sd_files_open(struct sd_state *state, const struct sd_files_config *c, const json_t *meta,
                  const json_t *settings, const char *old_file_key, char **file_key_out,
                  struct sd_buf *err);
/* Rotates a writing slice: it moves to "closing" and its successor opens on the same volume in
 * the same file. SD_ECONFLICT when the slice or its file changed meanwhile (nothing stored). */
int sd_files_rotate_slice(struct sd_state *state, const struct sd_files_config *c,
                          const char *slice_key, struct sd_buf *err);
/* Adds a slice to the writing file for every live writer node that has no writing slice in it.
 * Returns how many nodes were added (0 when none was missing) or a negative code with err. */
int sd_files_add_slices(struct sd_state *state, const struct sd_files_config *c,
                        const char *file_key, struct sd_buf *err);
/* Moves a writing file and its writing slices to "closing" (the sink stopped). */
int sd_files_close(struct sd_state *state, const char *file_key, struct sd_buf *err);
/* The lowest close-sync report of the writer nodes: a slice that moved to "closing" at a
 * revision <= it is no longer written by anyone. INT64_MAX when no node reports (none writes),
 * -1 when the reports cannot be read. */
int64_t sd_files_closesync_rev(struct sd_state *state);
/* The fields of a sink's files from its definition: {projectId, branchId, sourceId, sinkId,
 * columns, tableId} (owned). */
json_t *sd_files_sink_meta(const json_t *sink);
/* 1 if volume_id is announced by a live writer node. */
int sd_files_volume_is_live(struct sd_state *state, const char *volume_id);

#endif
