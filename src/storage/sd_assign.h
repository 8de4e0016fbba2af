/* sd_assign.h: assignments, pure (no I/O): the volumes of a new file (reference
 * volume/assignment.VolumesFor for one node): up to `count` volumes, the most preferred type
 * first, then less preferred types, then any other type; volumes of one priority are ordered by
 * a stable hash of the seed, type and label, so one seed always gives one assignment. And the
 * share of a sink's writing slices one source node writes (reference router/assignment). */
#ifndef SD_ASSIGN_H
#define SD_ASSIGN_H

#include <stddef.h>
#include <stdint.h>

/* A candidate volume; strings borrowed. */
struct sd_assign_volume {
    const char *type;
    const char *label;
};

/* Writes to out[] the indexes into vols[0..nvols) of the assigned volumes, in assignment order,
 * and returns how many: min(count, nvols). preferred[0..npreferred) lists types, most preferred
 * first. out must hold nvols entries. */
size_t sd_assign_volumes(const struct sd_assign_volume *vols, size_t nvols, size_t count,
                         const char *const *preferred, size_t npreferred, uint64_t seed,
                         size_t *out);

/* The slices source node node_id writes, of nslices (sorted by key) among the nodes[0..nnodes)
 * of its group (sorted; node_id need not be among them yet: it counts at its sorted place):
 * perNode = max(ceil(nslices / nodes), min_per_node), at most nslices, starting at slice
 * index * perNode and wrapping around, so every slice has a writer and each node writes to at
 * least min_per_node slices when there are that many. Writes the slice indexes to out (room for
 * nslices) and returns how many. */
size_t sd_assign_slices(size_t nslices, const char *const *nodes, size_t nnodes,
                        const char *node_id, size_t min_per_node, size_t *out);

#endif
