/* sd_node_config.h: the configuration keys a node's start-up reads (listeners, backends, data
 * directory, leases), one struct filled by sd_config_fill with sd_node_config_bindings. */
#ifndef SD_NODE_CONFIG_H
#define SD_NODE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* The keys the node start-up reads, filled once by sd_config_fill. */
struct sd_node_config {
    const char *node_id;
    const char *data_dir;
    const char *state_backend;
    const char *state_path;
    const char *staging_backend;
    const char *staging_path;
    const char *tables_backend;
    const char *tables_path;
    const char *api_listen;
    const char *api_public_url;
    const char *metrics_listen;
    const char *source_listen;
    const char *source_public_url;
    size_t source_loops; /* source.http.loops: 0 = one per CPU we may run on, at most 16 */
    size_t max_connections;
    size_t max_request_body;
    int64_t header_timeout_ms;
    int64_t request_timeout_ms;
    int64_t idle_timeout_ms;
    int64_t shutdown_timeout_ms;
    size_t write_buffer;
    size_t template_workers;
    size_t template_queue;
    int debug_log;
    int64_t volume_ttl_s;       /* storage.level.local.volume.registration.ttlSeconds */
    int64_t member_ttl_s;       /* distribution.ttlSeconds: membership in the groups */
    int64_t startup_timeout_ms; /* distribution.startupTimeout: registration at start-up */
};

struct sd_config_bindings;
/* The keys the node start-up reads (for the node and the registry). */
extern const struct sd_config_bindings sd_node_config_bindings;

#endif
