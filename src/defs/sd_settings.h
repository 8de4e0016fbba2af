/* sd_settings.h: effective per-sink settings: service config, overridden by the source's
 * settings, overridden by the sink's (reference §4.1). Entities keep their overrides in a
 * "config" member: {"<key>": <value>, ...} with JSON numbers, strings ("5MB", "30s") or
 * booleans, parsed by the option table like any config value. */
#ifndef SD_SETTINGS_H
#define SD_SETTINGS_H

#include <jansson.h>
#include <stdint.h>

#include "core/sd_buf.h"

struct sd_config;

/* The keys snapshotted into every new file entity (its "settings" member), read by the
 * storage operators: slice and file rotation triggers and minimum intervals. */
extern const char *const sd_settings_snapshot_keys[];

/* Effective value of key as a number (INT value, SIZE bytes, DURATION ms, BOOL 0/1).
 * source and sink may be NULL. An override that does not parse falls back to the next layer. */
int64_t sd_settings_int(const struct sd_config *cfg, const json_t *source, const json_t *sink,
                        const char *key);
/* Returns a new object {key: number} of every snapshot key's effective value. */
json_t *sd_settings_snapshot(const struct sd_config *cfg, const json_t *source, const json_t *sink);
/* Reads key from a snapshot object; def when missing. */
int64_t sd_settings_get(const json_t *snapshot, const char *key, int64_t def);

#endif
