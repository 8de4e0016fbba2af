/* sd_opt.h: the typed table of every configuration key (reference §4.1 plus the keys DESIGN.md §2
 * adds) and the parsers and formatters of option values.
 *
 * The table is static const data: every function here is pure and thread-safe. Values are text
 * in the reference's spellings (sizes "1MB", "1536KB"; durations "200ms", "1h30m"); defaults are
 * written as text too and parsed by the same code as user input. */
#ifndef SD_OPT_H
#define SD_OPT_H

#include <stddef.h>
#include <stdint.h>

struct sd_buf;

enum sd_opt_type {
    SD_OPT_BOOL,
    SD_OPT_INT,
    SD_OPT_FLOAT,
    SD_OPT_SIZE,
    SD_OPT_DURATION,
    SD_OPT_STRING,
    SD_OPT_ENUM,
    SD_OPT_LIST
};

enum {
    SD_OPT_SECRET = 1 << 0,    /* value never printed (dump, errors) */
    SD_OPT_PROTECTED = 1 << 1, /* visible in entity settings, not user-modifiable */
    SD_OPT_ENTITY = 1 << 2     /* has a per-source/sink settings form (reference §4.1: 27 keys) */
};

/* Marks of keys that do nothing in standalone streamd (sd_opt_mark). */
enum sd_opt_mark {
    SD_OPT_WORKS = 0,
    SD_OPT_CLUSTER = 1, /* used by the distributed mode only (issues 12/13): warned when set */
    SD_OPT_NOT_APPLICABLE = 2, /* cannot apply to streamd: warned when set */
    SD_OPT_REJECTED = 3        /* cannot apply, and setting it would promise what streamd does not
                                * do: a config error when set */
};

struct sd_opt {
    const char *key; /* reference spelling, e.g. "source.http.maxRequestBodySize" */
    enum sd_opt_type type;
    const char *def;  /* default as text, parsed like user input; "" = empty/unset */
    int64_t min, max; /* both 0 = unbounded. INT: value; SIZE: bytes; DURATION: ms; FLOAT: value
                       * (compared as double); LIST: item count. INT64_MAX = no upper bound. */
    const char *const *enum_values; /* NULL-terminated, for ENUM */
    unsigned flags;                 /* SD_OPT_SECRET | SD_OPT_PROTECTED | SD_OPT_ENTITY */
    const char *desc;               /* one sentence naming the unit */
};

/* Returns the whole table, sorted by key (strcmp order); *n receives its length (n may be NULL).
 * The table is static: never free it. */
const struct sd_opt *sd_opt_table(size_t *n);

/* Returns the option named key (exact, case-sensitive), or NULL if there is none. */
const struct sd_opt *sd_opt_find(const char *key);

/* Returns the mark of opt and sets *why (if not NULL) to one sentence saying what the key is for
 * in the reference and why it does nothing here (NULL for SD_OPT_WORKS). Marks are given to
 * groups of keys by prefix (e.g. every "etcd." key is SD_OPT_CLUSTER). */
enum sd_opt_mark sd_opt_mark(const struct sd_opt *opt, const char **why);

/* The word of a mark as printed by the dump and docs/CONFIG.md: "cluster", "not applicable",
 * "rejected"; "" for SD_OPT_WORKS. */
const char *sd_opt_mark_name(enum sd_opt_mark mark);

/* Parses text per opt's type and checks its bounds or enum values.
 * Results: BOOL 0/1, INT value, SIZE bytes, DURATION ms, ENUM index into enum_values and LIST
 * item count go to *num; FLOAT goes to *dbl (and its truncation to *num). num and dbl may be NULL.
 * Accepted text: BOOL true/false/yes/no/on/off/1/0 (any case); INT decimal; FLOAT decimal or
 * exponent form; SIZE as sd_parse_size; DURATION as sd_parse_duration; ENUM one of enum_values
 * (any case); LIST comma-separated items, blanks around items trimmed, no empty item ("" = an
 * empty list); STRING anything.
 * Returns 0, or SD_EINVAL with err (if not NULL) reset and set to a message naming the key, the
 * value ("***" for SD_OPT_SECRET options) and the bounds, e.g.
 * `invalid value "5MB" for "source.http.maxRequestBodySize": must be between 100B and 4MB`. */
int sd_opt_parse(const struct sd_opt *opt, const char *text, int64_t *num, double *dbl,
                 struct sd_buf *err);

/* Parses a size: digits then an optional unit B, KB, MB, GB, TB (multiples of 1024; also K, M, G,
 * T, KiB, MiB, GiB, TiB; any case; blanks allowed between number and unit). Plain digits are
 * bytes. Returns 0 with *bytes set, or SD_EINVAL (empty, negative, fraction, unknown unit,
 * overflow of int64). */
int sd_parse_size(const char *text, int64_t *bytes);

/* Parses a Go-style duration: "0", or one or more <number><unit> parts, number with an optional
 * fraction, unit ns, us, ms, s, m or h ("200ms", "10s", "5m", "1h30m", "1.5s"). The result must be
 * a whole number of milliseconds. Returns 0 with *ms set, or SD_EINVAL (empty, sign, missing unit,
 * sub-millisecond precision, overflow). */
int sd_parse_duration(const char *text, int64_t *ms);

/* Writes the canonical text of a size into out (always NUL-terminated when outlen > 0): the
 * largest of TB, GB, MB, KB, B that divides bytes exactly ("1MB", "1536KB", "100B", "0B"). 24
 * bytes always suffice. */
void sd_format_size(int64_t bytes, char *out, size_t outlen);

/* Writes the canonical text of a duration into out: hours, minutes, seconds and milliseconds parts
 * with zero parts left out ("200ms", "10s", "1m", "1h30m", "1s500ms"; 0 is "0s"). 40 bytes always
 * suffice. sd_parse_duration reads it back exactly. */
void sd_format_duration(int64_t ms, char *out, size_t outlen);

/* Writes the environment variable name of key into out (DESIGN.md §2): '_' before every run of
 * capital letters (not at the start of a dotted part), '.' -> '_', upper-cased, prefixed STREAM_.
 * "storage.volumesPath" -> "STREAM_STORAGE_VOLUMES_PATH", "nodeID" -> "STREAM_NODE_ID",
 * "storage.statistics.cache.L2.enabled" -> "STREAM_STORAGE_STATISTICS_CACHE_L2_ENABLED",
 * "debugHTTPClient" -> "STREAM_DEBUG_HTTPCLIENT". Truncates (NUL-terminated) to outlen. */
void sd_opt_env_name(const char *key, char *out, size_t outlen);

/* Like sd_opt_env_name, but also splits a capital run before its last letter when a lower-case
 * letter follows ("debugHTTPClient" -> "STREAM_DEBUG_HTTP_CLIENT"). The loader accepts this
 * spelling as an alias. Equal to sd_opt_env_name for every key without such a run. */
void sd_opt_env_name_alt(const char *key, char *out, size_t outlen);

/* Returns the key of the table nearest to key (edit distance, or a key ending in "." + key),
 * or NULL when none is close enough to suggest. */
const char *sd_opt_suggest(const char *key);

/* Internal to src/config: appends text to buf double-quoted, with '"', '\\' and control bytes
 * escaped and anything past 200 bytes replaced by "...". */
void sd__opt_echo(struct sd_buf *buf, const char *text);

#endif
