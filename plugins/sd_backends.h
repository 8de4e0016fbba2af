/* sd_backends.h: the one registry of every backend of every kind (state store, staging, table
 * storage), looked up by kind and the name a config gives. */
#ifndef SD_BACKENDS_H
#define SD_BACKENDS_H

#include <stddef.h>

enum sd_backend_kind { SD_BACKEND_STATE, SD_BACKEND_STAGING, SD_BACKEND_TABLES };

struct sd_backend {
    enum sd_backend_kind kind;
    const char *name; /* the config value (state.backend, staging.backend, tables.backend) */
    const void *ops; /* the kind's ops table (struct sd_state_ops, ...); NULL: planned, not built */
};

/* The registry, sd_nbackends rows. */
extern const struct sd_backend sd_backends[];
extern const size_t sd_nbackends;

/* Sets *ops to the ops table of the backend of kind called name. Returns 0; -ENOTSUP for a
 * known name that has no backend yet (a config naming it fails clearly, not as a typo);
 * SD_EINVAL for a name that is no backend of that kind (or NULL). */
int sd_backend_find(enum sd_backend_kind kind, const char *name, const void **ops);

#endif
