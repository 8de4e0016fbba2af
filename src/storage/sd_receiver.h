/* sd_receiver.h: a writer node's side of the source -> writer protocol (docs/PROTOCOL.md): the
 * listener for source nodes, their connections, and the files they write through this node's
 * storage (sd_storage_net_open): appends go to the slice writers, their sync results go back as
 * SYNCED, closes as CLOSED. A graceful stop sends DRAIN and waits for the sources to close their
 * files before it ends the connections. A malformed frame or a protocol error ends that
 * connection only; its files are synced and closed. */
#ifndef SD_RECEIVER_H
#define SD_RECEIVER_H

#include "core/sd_buf.h"

struct sd_config;
struct sd_storage;
struct sd_receiver;

/* Listens on storage.level.local.writer.network.listen (port 0 = a free one) and serves source
 * nodes through storage (borrowed; it must outlive the receiver). node_id is sent in WELCOME
 * (borrowed). Returns 0 with *out, or -errno / SD_EINVAL with err. */
int sd_receiver_start(const struct sd_config *cfg, struct sd_storage *storage, const char *node_id,
                      struct sd_receiver **out, struct sd_buf *err);

/* Where source nodes reach this writer: "host:port" with the bound port, and `hostname` for a
 * wildcard listen host (the reference's nodeAddress). */
const char *sd_receiver_address(const struct sd_receiver *rc);

/* Stops accepting, sends DRAIN to every source node, waits until they have closed their files
 * (at most writer.network.shutdownTimeout), then ends the connections (files left open are
 * synced and closed) and frees rc. NULL is fine. */
void sd_receiver_stop(struct sd_receiver *rc);

struct sd_config_bindings;
/* The keys the receiver reads (for the registry). */
extern const struct sd_config_bindings sd_receiver_config_bindings;

#endif
