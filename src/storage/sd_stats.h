/* sd_stats.h: reading and aggregating slice statistics, and their reset (reference §5).
 *
 * Statistics live in the state store per slice and node, at
 * "storage/stats/<level>/<sliceKey>/<nodeId>" with level local, staging or target, as JSON
 * {firstRecordAt?, lastRecordAt?, recordsCount, uncompressedSize, compressedSize, stagingSize?}.
 * A slice's keys move from level to level with the slice, so summing every key under
 * "storage/stats/<level>/<objectKey>/" gives the object's (sink, file, slice) level totals.
 *
 * Reset (".../statistics/clear"): "storage/stats/reset/<sinkKey>" holds
 * {resetAt, levels:{target: <sum of the target level at reset time>}}. As in the reference,
 * only the target level is reset: data still in local or staging keeps counting, and is counted
 * once more when it reaches the target, so totals never jump back. Reads subtract the stored
 * level sums (saturating at 0), and files opened before resetAt are left out of file listings.
 *
 * Every read is one state-store transaction, so the levels of one answer are a consistent
 * snapshot (a slice moving between levels is counted exactly once). Functions are thread-safe
 * (they only call the store, which may block: never call them from a loop that must stay
 * responsive, as for every store call). */
#ifndef SD_STATS_H
#define SD_STATS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct sd_state;

enum sd_stats_level { SD_STATS_LOCAL, SD_STATS_STAGING, SD_STATS_TARGET, SD_STATS_NLEVELS };

/* One statistics value: a slice's, or the sum over an object. Timestamps are ms since the
 * epoch, 0 when unknown. */
struct sd_stats_value {
    int64_t first_record_ms;
    int64_t last_record_ms;
    int64_t records;
    int64_t uncompressed_bytes;
    int64_t compressed_bytes;
    int64_t staging_bytes;
};

/* The aggregated view of an object: one value per level, and their sum. */
struct sd_stats_agg {
    struct sd_stats_value levels[SD_STATS_NLEVELS];
    struct sd_stats_value total;
};

/* A sink's reset marker: reset_at_ms 0 = never reset; levels: the sums subtracted. */
struct sd_stats_reset {
    int64_t reset_at_ms;
    struct sd_stats_value levels[SD_STATS_NLEVELS];
};

/* One file of a sink with its statistics (no reset applied: a listed file was opened after the
 * last reset, so all of its data counts). */
struct sd_stats_file {
    char *key;      /* "<sinkKey>/<fileOpenedAt>", owned */
    json_t *entity; /* the file entity, owned reference */
    int64_t opened_at_ms;
    struct sd_stats_agg agg;
    /* The not yet uploaded slice of the file with the most failed attempts (its entity, owned
     * reference), or NULL: an upload that keeps failing holds the file back although the file
     * itself has not failed. */
    json_t *failing_slice;
};

/* The files of a sink, sorted by key (= by openedAt). Owned; free with sd_stats_files_fini. */
struct sd_stats_files {
    struct sd_stats_file *items;
    size_t n;
    struct sd_stats_reset reset;
};

/* Returns "local", "staging" or "target". */
const char *sd_stats_level_name(enum sd_stats_level level);

/* dst += v: counts and sizes added, the earliest first and the latest last record kept. */
void sd_stats_add(struct sd_stats_value *dst, const struct sd_stats_value *v);

/* dst -= v, each count and size saturating at 0; timestamps are kept unless no record is left,
 * then they are cleared. */
void sd_stats_sub(struct sd_stats_value *dst, const struct sd_stats_value *v);

/* Parses a stored statistics value (JSON text of len bytes). Missing members count as 0.
 * Returns 0, or SD_EPARSE (not a JSON object, or a malformed timestamp). */
int sd_stats_parse(const char *text, size_t len, struct sd_stats_value *out);

/* Returns the stored form of v (new reference): what sd_stats_parse reads back. */
json_t *sd_stats_to_json(const struct sd_stats_value *v);

/* Returns the API "Level" object of v (new reference): {firstRecordAt?, lastRecordAt?,
 * recordsCount, compressedSize, uncompressedSize}. */
json_t *sd_stats_level_json(const struct sd_stats_value *v);

/* Returns the API {total, levels:{local?, staging?, target?}} of a (new reference); a level is
 * present only when it holds records. */
json_t *sd_stats_agg_json(const struct sd_stats_agg *a);

/* Sums every statistics value under prefix (e.g. "storage/stats/target/<sinkKey>/") into *out
 * (zeroed first). Unparsable values are skipped. Returns 0 or a state-store error. */
int sd_stats_sum_prefix(struct sd_state *st, const char *prefix, struct sd_stats_value *out);

/* Reads the reset marker of sink_key ("<p>/<b>/<source>/<sink>") into *out (zeroed when the
 * sink was never reset). Returns 0, SD_ECORRUPT (unreadable marker) or a state-store error. */
int sd_stats_reset_get(struct sd_state *st, const char *sink_key, struct sd_stats_reset *out);

/* Aggregates the statistics of a sink with its reset applied. Returns 0 or an error. */
int sd_stats_sink(struct sd_state *st, const char *sink_key, struct sd_stats_agg *out);

/* Aggregates the statistics of one file ("<sinkKey>/<fileOpenedAt>"), no reset applied.
 * Returns 0 or an error. */
int sd_stats_file(struct sd_state *st, const char *file_key, struct sd_stats_agg *out);

/* Lists the file entities of a sink (storage/file/all/<sinkKey>/...) that were opened after
 * the sink's last reset, each with its statistics, plus the reset marker. *out is reset first
 * and owned by the caller (also on failure). Returns 0 or an error. */
int sd_stats_sink_files(struct sd_state *st, const char *sink_key, struct sd_stats_files *out);

/* Frees the members of f (not f itself) and zeroes it. NULL is fine. */
void sd_stats_files_fini(struct sd_stats_files *f);

/* Resets the statistics of n sinks (at most 100) as of now_ms: for each, the current target
 * sum becomes its marker. The sums are read in one transaction and the markers written in
 * another. Returns 0, SD_ELIMIT (n too large) or a state-store error. */
int sd_stats_reset(struct sd_state *st, const char *const *sink_keys, size_t n, int64_t now_ms);

#endif
