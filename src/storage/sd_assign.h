/* sd_assign.h: volume assignment of a new file (reference volume/assignment.VolumesFor for one
 * node): up to `count` volumes, the most preferred type first, then less preferred types, then
 * any other type; volumes of one priority are ordered by a stable hash of the seed, type and
 * label, so one seed always gives one assignment. Pure; no I/O. */
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

#endif
