/* sd_membership.h: this node's place in a distribution group and which keys it owns there.
 *
 * A member announces itself at runtime/distribution/group/<group>/nodes/<nodeID> (the
 * reference's key, value = the node id) through its session, follows the group's members and
 * builds the same consistent-hash ring (sd_ring) as every other member, so the owner of a key
 * (a sink key for coordinator work) is decided locally. While the session is not live the node
 * owns nothing: another member takes over once the lost lease has expired. */
#ifndef SD_MEMBERSHIP_H
#define SD_MEMBERSHIP_H

#include <stddef.h>

struct sd_state;
struct sd_session;
struct sd_membership;

/* Joins group as node_id through session (both borrowed until sd_membership_stop). Returns 0
 * or -errno. Ownership follows the group within a moment of each change. */
int sd_membership_start(struct sd_state *st, struct sd_session *session, const char *group,
                        const char *node_id, struct sd_membership **out);

/* 1 if this node owns key now: its session is live and the ring of the members it last saw
 * maps key to it. */
int sd_membership_is_owner(struct sd_membership *m, const char *key);

/* How many members the node last saw in the group (itself included once registered). */
size_t sd_membership_size(struct sd_membership *m);

/* Stops following the group and frees m. The announcement key goes with the session. */
void sd_membership_stop(struct sd_membership *m);

#endif
