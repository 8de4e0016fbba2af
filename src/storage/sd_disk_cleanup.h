/* sd_disk_cleanup.h: removal of local slice directories that no slice entity names any more
 * (reference writernode/diskcleanup): orphans left when a crash or a metadata cleanup removed
 * the entities but not the files. */
#ifndef SD_DISK_CLEANUP_H
#define SD_DISK_CLEANUP_H

#include <stddef.h>

struct sd_state;

/* One pass over the volume directories paths[0..npaths): lists the slice directories on disk
 * (<volume>/<project>/<branch>/<source>/<sink>/<file>/<slice>), then every slice entity's
 * local.dir in the state store, and removes the directories no entity names, using up to
 * concurrency threads, then the parent directories left empty. Listing the disk before the
 * store keeps a slice opened meanwhile (its entity is stored before its directory is made).
 * Returns the number of directories removed, or a negative code when the store cannot be read
 * (nothing is removed then). Blocking; any thread but an event loop. */
int sd_disk_cleanup_pass(struct sd_state *state, const char *const *paths, size_t npaths,
                         int concurrency);

#endif
