/* sd_node.h: what runs in a node: the roles named on the command line, wired together in one
 * process (roles/sd_node.c is the only place that knows every role). */
#ifndef SD_NODE_H
#define SD_NODE_H

struct sd_config;

/* The roles of a node, as named on the command line. */
enum sd_node_role {
    SD_ROLE_API = 1 << 0,
    SD_ROLE_SOURCE = 1 << 1,
    SD_ROLE_WRITER = 1 << 2,
    SD_ROLE_READER = 1 << 3,
    SD_ROLE_COORDINATOR = 1 << 4,
    SD_ROLE_ALL = (1 << 5) - 1 /* standalone: no role argument */
};

/* The role called name ("api", "http-source", "storage-writer", "storage-reader",
 * "storage-coordinator"), or 0 for another word. */
unsigned sd_node_role_by_name(const char *name);

/* Runs the roles (a set of enum sd_node_role bits) with cfg (borrowed) until SIGTERM or SIGINT,
 * which the caller has blocked in every thread; writes the listener URLs as JSON to ready_file
 * (NULL: none) once every listener is bound. Returns the process exit code: 0 after a clean
 * shutdown, 1 when a role cannot start, 2 for a combination of roles that cannot run. */
int sd_node_run(struct sd_config *cfg, unsigned roles, const char *ready_file);

#endif
