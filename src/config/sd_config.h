/* sd_config.h: the effective configuration: defaults < config file < STREAM_* environment <
 * --set, validated against the option table (config/sd_opt.h), plus typed getters and the dump
 * behind `streamd config dump`.
 *
 * A struct sd_config is built once at start-up and then read by every role. Getters may be called
 * from any thread as long as no thread calls sd_config_set at the same time (set it up before the
 * roles start). */
#ifndef SD_CONFIG_H
#define SD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "config/sd_opt.h"

struct sd_buf;

/* Effective config: every key of the table has a value. */
struct sd_config;

struct sd_config_args {
    const char *file;        /* --config FILE or NULL; .yaml/.yml (libyaml) or .json (jansson) by
                              * extension; nested maps (a: {b: 1}) and/or dotted keys (a.b: 1);
                              * lists as arrays; a null value leaves the key unchanged */
    const char *data_dir;    /* --data-dir or NULL (same as --set dataDir=..., applied first) */
    const char *const *sets; /* "key=value" strings from --set, in order (later wins) */
    size_t nsets;
    char *const *envp; /* environment (NULL = none). STREAM_<NAME> maps to the key whose
                        * sd_opt_env_name (or sd_opt_env_name_alt) is that name, and
                        * STREAM_ADMIN_TOKEN to auth.adminToken. An empty value is ignored. An
                        * unknown STREAM_* name is logged as a warning (sd_log_warn), not an
                        * error. */
};

/* Builds the effective config. Layers, lowest first: defaults, file, environment, data_dir,
 * sets. Then derived defaults: storage.volumesPath = <dataDir>/volumes, state.embedded.path =
 * <dataDir>/state, staging.local.path = <dataDir>/staging, tables.sqlite.path = <dataDir>/tables
 * when empty; state.backend = etcd when etcd.endpoint is set and state.backend was not set. Then
 * cross-field checks: auth.adminToken, when set, has >= 16 characters; encryption.aes.secretKey
 * has 32 bytes when encryption.provider is aes; etcd.endpoint is set when state.backend is etcd;
 * storage.retry.initialInterval <= storage.retry.maxInterval; encryption.provider is none or aes
 * (the cloud KMS providers are refused); no key marked SD_OPT_REJECTED (sd_opt_mark) is set to
 * another value than its default.
 * args may be NULL (defaults only). Returns 0 with *out owned by the caller (free with
 * sd_config_destroy); or SD_EINVAL for an unknown key in the file or --set (the message suggests
 * the nearest valid key), a malformed --set, an unparsable or out-of-range value anywhere (the
 * message names key, value and bounds, and where the value came from), a malformed file or an
 * unsupported file extension; or -errno when the file cannot be read. On failure *out is NULL and
 * err (if not NULL) is reset and holds the message. Logs only warnings: one per unknown STREAM_*
 * variable, and one per key marked SD_OPT_CLUSTER or SD_OPT_NOT_APPLICABLE that is set to another
 * value than its default (naming the key and why it has no effect). */
int sd_config_load(const struct sd_config_args *args, struct sd_config **out, struct sd_buf *err);

/* Frees cfg and every string it handed out. NULL is fine. */
void sd_config_destroy(struct sd_config *cfg);

/* Typed getters. The returned pointers are borrowed from cfg and stay valid until cfg is
 * destroyed or the key is changed by sd_config_set. An unknown key or a getter of the wrong type
 * is a programming error: it is logged and the process aborts. */

/* Canonical text of any key ("1MB", "30s", "true", "a,b" for lists); the raw value of STRING
 * keys, including secrets. */
const char *sd_config_str(const struct sd_config *cfg, const char *key);
/* INT value, SIZE bytes, DURATION milliseconds, BOOL 0/1. */
int64_t sd_config_int(const struct sd_config *cfg, const char *key);
/* BOOL keys only: 0 or 1. */
int sd_config_bool(const struct sd_config *cfg, const char *key);
/* FLOAT keys only. */
double sd_config_float(const struct sd_config *cfg, const char *key);
/* LIST keys only: returns the item count and sets *items (if items is not NULL) to a
 * NULL-terminated array of the items. */
size_t sd_config_list(const struct sd_config *cfg, const char *key, const char *const **items);
/* 1 if key was set by the file, the environment, --set/--data-dir or sd_config_set; 0 if it has
 * its default (derived defaults count as defaults). */
int sd_config_is_set(const struct sd_config *cfg, const char *key);

/* Overrides one value after load (e.g. api.publicUrl once the port is known), with the same
 * parsing, range and cross-field checks as --set. Derived defaults are not recomputed (setting
 * dataDir later does not move storage.volumesPath). Returns 0, or SD_EINVAL with err (if not NULL)
 * reset and holding the message; on failure the old value is kept. Not thread-safe against
 * concurrent getters. */
int sd_config_set(struct sd_config *cfg, const char *key, const char *value, struct sd_buf *err);

/* Applies a config document held in memory as if it were a config file named name (used for
 * messages; its extension is not looked at): JSON when is_json, else YAML. Keys are set in
 * document order; cross-field checks are not run. Returns 0 or SD_EINVAL with err (if not NULL)
 * reset and holding the message; on failure some keys of the document may have been applied.
 * Used by the loader, tests and the fuzz target. */
int sd_config_apply_text(struct sd_config *cfg, const char *text, size_t len, int is_json,
                         const char *name, struct sd_buf *err);

/* Appends the effective config to out, sorted by key: YAML "key: value" lines (strings quoted
 * when YAML needs it, lists as [a, b]), or with as_json one JSON object with dotted keys (BOOL as
 * true/false, INT and FLOAT as numbers, LIST as arrays, everything else as strings). SECRET
 * values are printed as "***" when set. Marked keys (sd_opt_mark) carry their mark: a YAML
 * comment ("etcd.endpoint: \"\"  # cluster"), or in JSON the member "$marks", an object of key ->
 * mark name, which the loader skips. The output can be loaded back as a config file (except
 * redacted secrets). */
void sd_config_dump(const struct sd_config *cfg, int as_json, struct sd_buf *out);

#endif
