/* etcd_watch.h: watches of the etcd backend: one streaming POST /v3/watch per watch, on its
 * own thread, resumed transparently after a cut or silent stream. */
#ifndef ETCD_WATCH_H
#define ETCD_WATCH_H

#include "state/sd_state.h"

struct etcd_client;
struct etcd_watches;

/* The watches of one store. */
struct etcd_watches *etcd_watches_create(struct etcd_client *c);
/* Ends every remaining watch (callbacks get SD_ECLOSED unless already ended), joins their
 * threads and frees everything. */
void etcd_watches_destroy(struct etcd_watches *ws);

/* sd_state_watch: start_rev must be > 0 (the backend resolves 0 to the current revision + 1
 * before). Returns 0. */
int etcd_watch_start(struct etcd_watches *ws, const char *prefix, int64_t start_rev, sd_watch_fn cb,
                     void *arg, struct sd_watch **out);
/* sd_state_unwatch. */
void etcd_watch_stop(struct etcd_watches *ws, struct sd_watch *w);

#endif
