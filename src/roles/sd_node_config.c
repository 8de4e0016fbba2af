/* sd_node_config.c: the binding table of the keys a node's start-up reads. */
#include "roles/sd_node_config.h"
#include "config/sd_config_bind.h"

#define SD_NODE_BIND(field, key, type) SD_BIND(struct sd_node_config, field, key, type)
static const struct sd_config_binding sd_node_rows[] = {
    SD_NODE_BIND(node_id, "nodeID", SD_BIND_STR),
    SD_NODE_BIND(debug_log, "debugLog", SD_BIND_BOOL),
    SD_NODE_BIND(data_dir, "dataDir", SD_BIND_STR),
    SD_NODE_BIND(state_backend, "state.backend", SD_BIND_STR),
    SD_NODE_BIND(state_path, "state.embedded.path", SD_BIND_STR),
    SD_NODE_BIND(staging_backend, "staging.backend", SD_BIND_STR),
    SD_NODE_BIND(staging_path, "staging.local.path", SD_BIND_STR),
    SD_NODE_BIND(tables_backend, "tables.backend", SD_BIND_STR),
    SD_NODE_BIND(tables_path, "tables.sqlite.path", SD_BIND_STR),
    SD_NODE_BIND(api_listen, "api.listen", SD_BIND_STR),
    SD_NODE_BIND(api_public_url, "api.publicUrl", SD_BIND_STR),
    SD_NODE_BIND(metrics_listen, "metrics.listen", SD_BIND_STR),
    SD_NODE_BIND(source_listen, "source.http.listen", SD_BIND_STR),
    SD_NODE_BIND(source_public_url, "source.http.publicUrl", SD_BIND_STR),
    SD_NODE_BIND(source_loops, "source.http.loops", SD_BIND_SIZE_T),
    SD_NODE_BIND(max_connections, "source.http.maxConnections", SD_BIND_SIZE_T),
    SD_NODE_BIND(max_request_body, "source.http.maxRequestBodySize", SD_BIND_SIZE_T),
    SD_NODE_BIND(header_timeout_ms, "source.http.readHeaderTimeout", SD_BIND_I64),
    SD_NODE_BIND(request_timeout_ms, "source.http.requestTimeout", SD_BIND_I64),
    SD_NODE_BIND(idle_timeout_ms, "source.http.idleTimeout", SD_BIND_I64),
    SD_NODE_BIND(shutdown_timeout_ms, "source.http.shutdownTimeout", SD_BIND_I64),
    SD_NODE_BIND(write_buffer, "source.http.writeBufferSize", SD_BIND_SIZE_T),
    SD_NODE_BIND(template_workers, "source.http.templateWorkers", SD_BIND_SIZE_T),
    SD_NODE_BIND(template_queue, "source.http.templateQueueSize", SD_BIND_SIZE_T),
    SD_NODE_BIND(volume_ttl_s, "storage.level.local.volume.registration.ttlSeconds", SD_BIND_I64),
    SD_NODE_BIND(startup_timeout_ms, "distribution.startupTimeout", SD_BIND_I64),
    SD_NODE_BIND(member_ttl_s, "distribution.ttlSeconds", SD_BIND_I64),
};
const struct sd_config_bindings sd_node_config_bindings = SD_BINDINGS("server", sd_node_rows);
