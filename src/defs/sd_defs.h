/* sd_defs.h: the definition entities (sources and table sinks): id normalization, request
 * validation, the stored JSON form, version records, ingestion secrets and the state-store keys.
 *
 * Stored form (the value under the keys below): the API JSON of the entity, plus
 * "http":{"secret":"<48 chars>"} for sources instead of "http":{"url":...}. projectId and
 * branchId are JSON integers, ids are strings. An entity is enabled when it has no "disabled"
 * member, soft-deleted entities live under the "deleted" prefix and carry "deleted":{at,by}.
 *
 * Keys (reference §1.5):
 *   definition/source/{active,deleted}/<projectId>/<branchId>/<sourceId>
 *   definition/source/version/<projectId>/<branchId>/<sourceId>/<0000000001>
 *   definition/sink/{active,deleted}/<projectId>/<branchId>/<sourceId>/<sinkId>
 *   definition/sink/version/<projectId>/<branchId>/<sourceId>/<sinkId>/<0000000001>
 *
 * Pure functions over caller-owned memory (no I/O, no state store); thread-safe. Validation
 * failures fill a struct sd_defs_err with the API error name and a message for the 400 answer. */
#ifndef SD_DEFS_H
#define SD_DEFS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/sd_buf.h"

#define SD_DEFS_ID_MAX 48
#define SD_DEFS_NAME_MAX 40
#define SD_DEFS_DESCRIPTION_MAX 4096
#define SD_DEFS_SECRET_LEN 48
#define SD_DEFS_SOURCES_MAX 100 /* per branch */
#define SD_DEFS_SINKS_MAX 100   /* per source */
#define SD_DEFS_COLUMNS_MAX 100 /* per sink */
#define SD_DEFS_TABLE_NAME_MAX 96
/* Column names as the destination (Keboola Storage) accepts them: at most 64 characters of
 * [a-zA-Z0-9_-], starting and ending with a letter or digit. The pattern is shown in messages
 * and in docs/openapi3.yaml; it needs no escaping inside a quoted string. */
#define SD_DEFS_COLUMN_NAME_MAX 64
#define SD_DEFS_COLUMN_NAME_PATTERN "^[a-zA-Z0-9]([a-zA-Z0-9_-]*[a-zA-Z0-9])?$"
#define SD_DEFS_BRANCH_DEFAULT 1

/* A validation failure: name is the API error name without the "stream.api." prefix (a static
 * string such as "invalidLength"), message a sentence naming the field. */
/* Long enough for a refused value of any length the API accepts, quoted. */
#define SD_DEFS_ERR_MESSAGE_MAX 8192
struct sd_defs_err {
    const char *name;
    char message[SD_DEFS_ERR_MESSAGE_MAX];
};

/* The actor of a change ("by" in the API), copied by value into tasks. Empty strings are left out
 * of the JSON, as the reference's omitempty members. */
struct sd_defs_by {
    char type[8];         /* "user", or "" for "system" */
    char token_id[32];    /* the API token */
    char token_desc[128]; /* its description */
    char user_id[32];     /* the administrator the token stands for (reference: its admin) */
    char user_name[128];
};

/* A validated create-source request. Strings are borrowed from the request JSON. */
struct sd_defs_source_input {
    char source_id[SD_DEFS_ID_MAX + 1];
    const char *type;
    const char *name;
    const char *description;
};

/* A validated create-sink request. Pointers are borrowed from the request JSON. The columns
 * have the right shape (array of 1..100 objects with string "type" and a "name" as
 * SD_DEFS_COLUMN_NAME_PATTERN says); compiling them (pipeline/sd_mapping, which also refuses
 * names equal but for case) is the caller's job. */
struct sd_defs_sink_input {
    char sink_id[SD_DEFS_ID_MAX + 1];
    const char *type;
    const char *name;
    const char *description;
    const char *table_type;
    const char *table_id;
    const json_t *columns;
    const json_t *allowed_signals; /* NULL when absent */
};

/* Writes n characters drawn uniformly from alphabet (getrandom, a CSPRNG) plus a NUL into
 * out[n + 1]. Aborts if the kernel's random source fails. */
void sd_defs_random_chars(char *out, size_t n, const char *alphabet);

/* Writes a new ingestion secret: SD_DEFS_SECRET_LEN characters of [0-9a-zA-Z] plus a NUL. */
void sd_defs_new_secret(char out[SD_DEFS_SECRET_LEN + 1]);

/* Normalizes in (UTF-8) to a kebab-case id into out (reset first): Latin letters with accents
 * are folded to ASCII, CamelCase is split ("CamelCase" -> "camel-case", "HTTPServer" ->
 * "http-server"), every run of other characters becomes one '-', leading and trailing '-' are
 * trimmed, letters are lower-cased. Returns 0, or SD_EINVAL when the result is empty. No length
 * limit is applied. */
int sd_defs_normalize_id(const char *in, struct sd_buf *out);

/* Resolves the id of a new entity: the normalized given id (a JSON string of 1..48 characters;
 * NULL = absent), or when absent the id normalized from name, cut to 48 characters. field is
 * "sourceId" or "sinkId" (for messages). Returns 0 with out filled, or SD_EINVAL with err. */
int sd_defs_resolve_id(const char *field, const json_t *given, const char *name,
                       char out[SD_DEFS_ID_MAX + 1], struct sd_defs_err *err);

/* 1 if id is a normalized id: 1..48 characters of [a-z0-9-], not starting or ending with '-'. */
int sd_defs_is_valid_id(const char *id);

/* Appends the len bytes at s to out as Go's %q (and the reference's messages) writes a string:
 * quoted, '"' and '\\' escaped, control characters as escapes. */
void sd_defs_append_quoted(struct sd_buf *out, const char *s, size_t len);
/* Checks that the UTF-8 text value has min..max characters (code points). field names it in the
 * message ("body.name"). Returns 0, or SD_EINVAL with err ("invalidLength"). */
int sd_defs_check_length(const char *field, const char *value, size_t min, size_t max,
                         struct sd_defs_err *err);

/* Checks a Keboola table id "<stage>.c-<bucket>.<table>": stage "in" or "out", bucket and table
 * names of 1..96 characters of [a-zA-Z0-9_-]. Returns 0, or SD_EINVAL with err ("badRequest"). */
int sd_defs_check_table_id(const char *field, const char *table_id, struct sd_defs_err *err);

/* Validates a create-source body (an object: sourceId?, type, name, description?). type "otlp"
 * is valid JSON-wise but rejected here as not supported yet. Returns 0 with *in filled (borrowing
 * from body), or SD_EINVAL with err. */
int sd_defs_parse_source_create(const json_t *body, struct sd_defs_source_input *in,
                                struct sd_defs_err *err);

/* Validates a create-sink body (sinkId?, type "table", name, description?, allowedSignals?,
 * table{type "keboola", tableId, mapping{columns[1..100]}}). Returns 0 with *in filled
 * (borrowing from body), or SD_EINVAL with err. */
int sd_defs_parse_sink_create(const json_t *body, struct sd_defs_sink_input *in,
                              struct sd_defs_err *err);

/* Returns the "by" object of an actor (new reference). */
json_t *sd_defs_by_json(const struct sd_defs_by *by);

/* Builds the stored form of a new source (version 1, "New source.", created = now). Returns a
 * new reference. */
json_t *sd_defs_source_build(int64_t project_id, int64_t branch_id,
                             const struct sd_defs_source_input *in, const char *secret,
                             const struct sd_defs_by *by, int64_t now_ms);

/* Builds the stored form of a new sink of source_id (version 1, "New sink."). Only the known
 * column members are kept. Returns a new reference. */
json_t *sd_defs_sink_build(int64_t project_id, int64_t branch_id, const char *source_id,
                           const struct sd_defs_sink_input *in, const struct sd_defs_by *by,
                           int64_t now_ms);

/* Writes the 16-hex-character hash of the entity's content (everything but version, created,
 * deleted, disabled and the secret) plus a NUL into out[17]. */
void sd_defs_version_hash(const json_t *entity, char out[17]);

/* Sets entity.version to {number, hash, description, at, by}, recomputing the hash. */
void sd_defs_set_version(json_t *entity, int64_t number, const char *description,
                         const struct sd_defs_by *by, int64_t now_ms);

/* Returns entity.version.number, 0 when missing. */
int64_t sd_defs_version_number(const json_t *entity);

/* Versions kept per source or sink (reference: 1000). */
#define SD_DEFS_VERSIONS_MAX 1000
/* Sets *number to the entity's next version number, or returns SD_ELIMIT with the reference's
 * message in err ("Version count limit reached in the sink, the maximum is 1000.") when the
 * entity already has SD_DEFS_VERSIONS_MAX versions. what: "source" or "sink". */
int sd_defs_next_version(const json_t *entity, const char *what, int64_t *number,
                         struct sd_buf *err);

/* Sets entity.deleted to {at, by}. */
void sd_defs_set_deleted(json_t *entity, const struct sd_defs_by *by, int64_t now_ms);

/* Sets entity.disabled to {at, by, reason}. */
void sd_defs_set_disabled(json_t *entity, const struct sd_defs_by *by, const char *reason,
                          int64_t now_ms);

/* A validated update (PATCH) body of a source or a sink. Every member is optional: NULL when
 * absent. Pointers are borrowed from the request JSON. For sinks, table members are validated
 * like on create (shape only; compiling the mapping is the caller's job). */
struct sd_defs_update {
    const char *change_description;
    const char *name;
    const char *description;
    const char *type;
    const json_t *allowed_signals; /* sinks */
    const char *table_type;        /* sinks */
    const char *table_id;          /* sinks */
    const json_t *columns;         /* sinks */
};

/* Validates an update body of a source (is_sink 0: changeDescription?, name?, description?,
 * type? "http") or a sink (is_sink 1: also allowedSignals?, table?{type?, tableId?,
 * mapping?{columns}}). Returns 0 with *u filled, or SD_EINVAL with err. */
int sd_defs_parse_update(const json_t *body, int is_sink, struct sd_defs_update *u,
                         struct sd_defs_err *err);

/* Applies a validated update to a copy of the stored entity (new reference); only the known
 * column members are kept. The version is not touched. */
json_t *sd_defs_apply_update(const json_t *stored, const struct sd_defs_update *u);

/* Returns the API form of a stored source (new reference): http.secret replaced by http.url =
 * "<source_public_url>/stream/<projectId>/<sourceId>/<secret>". */
json_t *sd_defs_source_to_api(const json_t *stored, const char *source_public_url);
/* Returns a new copy of a stored sink as the API shows it (without the settings overrides in
 * "config", which only the settings endpoints show). */
json_t *sd_defs_sink_to_api(const json_t *stored);

/* Returns the version record of a stored entity (new reference): the entity without secrets. */
json_t *sd_defs_version_record(const json_t *stored);

/* Key builders. Each resets out and writes the NUL-terminated key (sd_buf_cstr(out)). */
void sd_defs_source_key(struct sd_buf *out, int64_t project, int64_t branch, const char *source_id,
                        int deleted);
void sd_defs_sink_key(struct sd_buf *out, int64_t project, int64_t branch, const char *source_id,
                      const char *sink_id, int deleted);
/* Prefix of every source of a branch ("definition/source/active/<p>/<b>/"). */
void sd_defs_sources_prefix(struct sd_buf *out, int64_t project, int64_t branch, int deleted);
/* Prefix of every sink of a source ("definition/sink/active/<p>/<b>/<sourceId>/"). */
void sd_defs_sinks_prefix(struct sd_buf *out, int64_t project, int64_t branch,
                          const char *source_id, int deleted);
void sd_defs_source_version_key(struct sd_buf *out, int64_t project, int64_t branch,
                                const char *source_id, int64_t number);
void sd_defs_sink_version_key(struct sd_buf *out, int64_t project, int64_t branch,
                              const char *source_id, const char *sink_id, int64_t number);

#endif
