/* sd_slice_closed.h: the slice files that their writer closed cleanly in this process (every
 * row synced, the file cut to its data and synced), with their statistics. The upload takes a
 * file's statistics from here instead of verifying it again with sd_slice_recover, as long as
 * no writer opened the file again since its close (a writer's open forgets its record) and the
 * file still has the same device, inode, size, modification and change time. A file not found
 * here (written before a restart, a continuation after a failed sync, a changed file, a record
 * dropped because too many closed files wait) is verified as before. */
#ifndef SD_SLICE_CLOSED_H
#define SD_SLICE_CLOSED_H

#include "pipeline/sd_slice_recover.h"

/* Records that the file open as fd, closed cleanly by its writer, holds exactly the data stats
 * describes. Any thread. Out of room, the oldest record is dropped (that file is then
 * verified). A file that cannot be stat'ed is not recorded. */
void sd_slice_closed_note(int fd, const struct sd_slice_stats *stats);

/* Forgets the record of the file open as fd, if any: a writer opening a file calls it, since
 * the file may change from then on. Any thread. */
void sd_slice_closed_forget(int fd);

/* If the file at path is recorded and unchanged since, copies its statistics to *stats and
 * returns 1; else returns 0. Either way the file's record is forgotten: a second take, or a
 * take after the file changed, finds nothing. Any thread. */
int sd_slice_closed_take(const char *path, struct sd_slice_stats *stats);

#endif
