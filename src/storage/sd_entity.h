/* sd_entity.h: file and slice entities in the state store and the guarded batches that change
 * them. An entity is JSON stored twice, as in the reference: "storage/<kind>/all/<key>" and
 * "storage/<kind>/level/<level>/<key>" (level from its state). Every change is a batch applied
 * in one transaction only if every entity it moves still has the revision it was read at (and
 * every entity it creates does not exist yet), so a transition that another node applied
 * meanwhile is never applied twice. Used by the coordinator's file lifecycle (sd_files) and the
 * operator. */
#ifndef SD_ENTITY_H
#define SD_ENTITY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "state/sd_state.h"

/* Ops, compares and the strings they point to (owned by the batch until commit). The adders do
 * not check the room left: callers check sd_entity_fits first (a move takes up to 3 ops and 1
 * compare, a create 2 ops and 1 compare), so a batch never exceeds etcd's 128 operations. */
struct sd_entity_batch {
    struct sd_op ops[SD_STATE_MAX_TXN_OPS];
    size_t n;
    struct sd_cmp cmps[48];
    size_t ncmps;
    char *owned[2 * SD_STATE_MAX_TXN_OPS + 48];
    size_t nowned;
};

/* The time in field (ISO 8601) of j in ms since the epoch; 0 when absent. */
int64_t sd_entity_time_ms(const json_t *j, const char *field);
/* The entity's "state" ("" when absent). */
const char *sd_entity_state(const json_t *j);
/* The storage level of an entity kind ("file", "slice") in state: local, staging or target. */
const char *sd_entity_level(const char *kind, const char *state);
/* Reads entity kind/key by its "all" copy; *mod_rev gets the revision it was read at. NULL with
 * *rc = SD_ENOTFOUND when it does not exist, or the store's error (then nothing may be decided
 * from its absence). */
json_t *sd_entity_read(struct sd_state *state, const char *kind, const char *key, int64_t *mod_rev,
                       int *rc);

/* Takes s (heap) into the batch's ownership and returns it. */
char *sd_entity_own(struct sd_entity_batch *b, char *s);
/* Adds a put of value (serialized now) under key (heap, taken). */
void sd_entity_put(struct sd_entity_batch *b, char *key, const json_t *value);
/* Adds a delete of key (heap, taken). */
void sd_entity_del(struct sd_entity_batch *b, char *key);
/* Adds the ops that store entity j (kind, key), read at mod_rev, in new_state (sets the state,
 * "<state>At" = now and clears the retry fields when the state changes): the compare that it is
 * still at mod_rev, the "all" copy, the copy at the new level and the removal of the copy at the
 * old level. new_state equal to the current state stores j as it is (a "touch" that makes
 * concurrent changes of the entity conflict). A transition sd_states_transition_ok refuses
 * empties the batch (its commit then does nothing) and is logged. */
void sd_entity_move(struct sd_entity_batch *b, const char *kind, const char *key, json_t *j,
                    int64_t mod_rev, const char *new_state, int64_t now);
/* Adds the ops that create entity j (kind, key) in its state, requiring that it does not exist. */
void sd_entity_create(struct sd_entity_batch *b, const char *kind, const char *key,
                      const json_t *j);
/* 1 when n more ops still fit in the batch. */
int sd_entity_fits(const struct sd_entity_batch *b, size_t n);
/* Frees what the batch holds without applying it. */
void sd_entity_discard(struct sd_entity_batch *b);
/* Commits the batch. Returns 0 (*rev, may be NULL, gets the revision the entities now have),
 * SD_ECONFLICT when an entity changed since it was read (nothing applied), or the store's
 * error. Empties the batch either way. */
int sd_entity_commit(struct sd_state *state, struct sd_entity_batch *b, int64_t *rev);

#endif
