/* sd_membership.c: group membership and key ownership (see sd_membership.h).
 *
 * DESIGN: the session keeps the announcement key; a follower (sd_state_follow) of the group's
 * nodes prefix re-reads the member list after every change and swaps in a new ring under a
 * mutex. Member ids are the key suffixes, so a garbled value cannot misplace a member. */
#include "cluster/sd_membership.h"
#include "cluster/sd_ring.h"
#include "cluster/sd_session.h"
#include "core/sd_alloc.h"
#include "core/sd_error.h"
#include "core/sd_log.h"
#include "state/sd_state.h"
#include "state/sd_state_follow.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct sd_membership {
    struct sd_state *st;
    struct sd_session *session;
    char *node_id;
    char *prefix; /* runtime/distribution/group/<group>/nodes/ */
    pthread_mutex_t mu;
    struct sd_ring *ring; /* under mu */
    struct sd_state_follow *follow;
};

static void sd__membership_reload(void *arg)
{
    struct sd_membership *m = arg;
    struct sd_kvs kvs;
    const char **ids;
    struct sd_ring *ring, *old;
    size_t skip = strlen(m->prefix);

    memset(&kvs, 0, sizeof(kvs));
    if (sd_state_range(m->st, m->prefix, 0, &kvs) != 0) {
        return; /* the follower calls again after its watch recovers */
    }
    ids = sd_xcalloc(kvs.n + 1, sizeof(*ids));
    for (size_t i = 0; i < kvs.n; i++) {
        ids[i] = kvs.items[i].key + skip;
    }
    ring = sd_ring_create(ids, kvs.n);
    free(ids);
    sd_kvs_free(&kvs);
    pthread_mutex_lock(&m->mu);
    old = m->ring;
    m->ring = ring;
    pthread_mutex_unlock(&m->mu);
    if (sd_ring_members(old) != sd_ring_members(ring)) {
        sd_log_info("membership", "%s: %zu members", m->prefix, sd_ring_members(ring));
    }
    sd_ring_destroy(old);
}

int sd_membership_start(struct sd_state *st, struct sd_session *session, const char *group,
                        const char *node_id, struct sd_membership **out)
{
    struct sd_membership *m = sd_xcalloc(1, sizeof(*m));
    char *key;
    int rc;

    m->st = st;
    m->session = session;
    m->node_id = sd_xstrdup(node_id);
    m->prefix = sd_xasprintf("runtime/distribution/group/%s/nodes/", group);
    pthread_mutex_init(&m->mu, NULL);
    key = sd_xasprintf("%s%s", m->prefix, node_id);
    (void)sd_session_keep(session, key, node_id); /* put again with every lease anyway */
    free(key);
    rc = sd_state_follow_start(st, m->prefix, group, sd__membership_reload, m, &m->follow);
    if (rc != 0) {
        sd_membership_stop(m);
        return rc;
    }
    *out = m;
    return 0;
}

int sd_membership_is_owner(struct sd_membership *m, const char *key)
{
    const char *owner;
    int mine;

    if (!sd_session_is_live(m->session)) {
        return 0;
    }
    pthread_mutex_lock(&m->mu);
    owner = sd_ring_owner(m->ring, key);
    mine = owner != NULL && strcmp(owner, m->node_id) == 0;
    pthread_mutex_unlock(&m->mu);
    return mine;
}

size_t sd_membership_size(struct sd_membership *m)
{
    size_t n;

    pthread_mutex_lock(&m->mu);
    n = sd_ring_members(m->ring);
    pthread_mutex_unlock(&m->mu);
    return n;
}

void sd_membership_stop(struct sd_membership *m)
{
    if (m == NULL) {
        return;
    }
    sd_state_follow_stop(m->follow);
    sd_ring_destroy(m->ring);
    pthread_mutex_destroy(&m->mu);
    free(m->node_id);
    free(m->prefix);
    free(m);
}
