/* sd_ring.h: a consistent-hash ring that decides which live node owns a key.
 *
 * Every node builds the same ring from the same member list (the node ids registered in a
 * distribution group), so ownership is decided without talking to anyone; when a member joins
 * or leaves, only the keys of the ring segments it takes or gives move. Each member is placed
 * at SD_RING_POINTS points; a key belongs to the member of the first point at or after the
 * key's hash, wrapping around. */
#ifndef SD_RING_H
#define SD_RING_H

#include <stddef.h>

#define SD_RING_POINTS 128

struct sd_ring;

/* Builds a ring of n member ids (copied; duplicates count once). n may be 0. */
struct sd_ring *sd_ring_create(const char *const *members, size_t n);

/* The member owning key (borrowed from the ring), or NULL for an empty ring. */
const char *sd_ring_owner(const struct sd_ring *r, const char *key);

/* The number of distinct members. */
size_t sd_ring_members(const struct sd_ring *r);

void sd_ring_destroy(struct sd_ring *r);

#endif
