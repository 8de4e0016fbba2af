/* sd_operator.c: the slice and file state machines: a coordinator's files, a reader's uploads.
 *
 * DESIGN: one thread wakes every check interval (the smallest of the reference's operator
 * check intervals) and makes one pass:
 *   0. (writer) this node's slots follow their slices (sd_storage_sync_slices), for a slice
 *      that could not be opened before (full disk) or a change its follower missed;
 *   1. (coordinator) the files of the sinks it owns (sd_operator_sinks_changed, sd_files): a
 *      sink without a writing file gets one, a writer node that joined gets its slice, a
 *      settings or mapping change rotates the file, the upload triggers rotate each writing
 *      slice and the import triggers the file (sd_conditions, from the settings recorded in the
 *      file), each rotation under slice/fileRotationTimeout; a stopped sink's file closes;
 *   2. (coordinator) closing slices move to "uploading" once every writer node's close-sync
 *      report has reached the revision they closed at;
 *   3. (reader) upload: each "uploading" slice on this node's volumes whose writer is closed
 *      and whose retryAfter passed is recovered/verified, renamed to its visible name and put
 *      to staging as one object, under sliceUploadTimeout; then "uploaded" with its statistics
 *      moved to the staging level, and the local files are deleted;
 *   4. (coordinator) files in "closing" whose slices are all uploaded move to "importing";
 *   5. (coordinator) import: every "importing" file is imported into its table in one
 *      transaction with a ledger row per slice (a retried import adds nothing), under
 *      fileImportTimeout; then its slices and the file move to "imported" with statistics at
 *      the target level, and staged objects are deleted;
 *   6. (coordinator) metadata cleanup (at start, then every storage.metadataCleanup.interval;
 *      see sd__cleanup): expired imported files are deleted with their slices, their target
 *      statistics rolled into the sink's "_sum" key so totals do not change; files that stayed
 *      in another state longer than activeFileExpiration are dropped with their staged objects.
 * Steps under a timeout run on their own thread (sd_bounded): past the timeout the operator
 * records the reference's failure ("slice upload timeout", ...) and moves on; the abandoned
 * attempt runs to its end in the background and its entity is skipped until then.
 * A failed step records retryAttempt, retryReason, first/lastFailedAt and retryAfter on the
 * entity (backoff storage.retry.*, +-10 % jitter) and is skipped until then. Nothing is
 * deleted before the next level holds it. Every transition compares the revision the entity
 * was read at (sd_entity), so one applied by another coordinator meanwhile is not applied
 * again. */
#include "storage/sd_operator.h"
#include "storage/sd_entity.h"
#include "storage/sd_files.h"
#include "storage/sd_states.h"
#include "storage/sd_bounded.h"
#include "storage/sd_conditions.h"
#include "storage/sd_parallel.h"
#include "cluster/sd_membership.h"
#include "config/sd_config.h"
#include "config/sd_config_bind.h"
#include "core/sd_alloc.h"
#include "core/sd_bgprio.h"
#include "core/sd_cond.h"
#include "core/sd_error.h"
#include "core/sd_fs.h"
#include "core/sd_log.h"
#include "core/sd_metrics_reg.h"
#include "core/sd_time.h"
#include "defs/sd_settings.h"
#include "pipeline/sd_slice_closed.h"
#include "pipeline/sd_slice_recover.h"
#include "staging/sd_staging.h"
#include "state/sd_state.h"
#include "storage/sd_storage.h"
#include "tables/sd_tables.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define SD_OP_MAX_FILES_PER_SLICE 64

/* The operator's configuration, read once at start (sd__operator_config). */
struct sd_operator_config {
    int64_t check_intervals_ms[4]; /* the four operator check intervals */
    int64_t check_ms;              /* the smallest of them */
    int64_t retry_initial_ms;
    double retry_multiplier;
    int64_t retry_max_ms;
    int64_t slice_rotation_timeout_ms;
    int64_t slice_upload_timeout_ms;
    int64_t file_rotation_timeout_ms;
    int64_t file_import_timeout_ms;
    int64_t import_expiration_ms; /* import.trigger.expiration */
    int is_cleanup_enabled;
    int64_t cleanup_interval_ms;
    int64_t archived_file_expiration_ms;
    int64_t active_file_expiration_ms;
    int64_t archived_file_retention;
    int64_t cleanup_error_tolerance;
    int64_t cleanup_concurrency;
    size_t assignment_count;
    struct sd_config_strlist preferred_types; /* borrowed from the config */
    const char *compression;                  /* encoding.compression.type of new slices */
};

#define SD_OPERATOR_BIND(field, key, type) SD_BIND(struct sd_operator_config, field, key, type)
static const struct sd_config_binding sd_operator_rows[] = {
    SD_OPERATOR_BIND(check_intervals_ms[0],
                     "storage.level.staging.operator.sliceRotationCheckInterval", SD_BIND_I64),
    SD_OPERATOR_BIND(check_intervals_ms[1],
                     "storage.level.staging.operator.sliceUploadCheckInterval", SD_BIND_I64),
    SD_OPERATOR_BIND(check_intervals_ms[2],
                     "storage.level.target.operator.fileRotationCheckInterval", SD_BIND_I64),
    SD_OPERATOR_BIND(check_intervals_ms[3], "storage.level.target.operator.fileImportCheckInterval",
                     SD_BIND_I64),
    SD_OPERATOR_BIND(retry_initial_ms, "storage.retry.initialInterval", SD_BIND_I64),
    SD_OPERATOR_BIND(retry_multiplier, "storage.retry.multiplier", SD_BIND_DOUBLE),
    SD_OPERATOR_BIND(retry_max_ms, "storage.retry.maxInterval", SD_BIND_I64),
    SD_OPERATOR_BIND(slice_rotation_timeout_ms,
                     "storage.level.staging.operator.sliceRotationTimeout", SD_BIND_I64),
    SD_OPERATOR_BIND(slice_upload_timeout_ms, "storage.level.staging.operator.sliceUploadTimeout",
                     SD_BIND_I64),
    SD_OPERATOR_BIND(file_rotation_timeout_ms, "storage.level.target.operator.fileRotationTimeout",
                     SD_BIND_I64),
    SD_OPERATOR_BIND(file_import_timeout_ms, "storage.level.target.operator.fileImportTimeout",
                     SD_BIND_I64),
    SD_OPERATOR_BIND(import_expiration_ms, "storage.level.target.import.trigger.expiration",
                     SD_BIND_I64),
    SD_OPERATOR_BIND(is_cleanup_enabled, "storage.metadataCleanup.enable", SD_BIND_BOOL),
    SD_OPERATOR_BIND(cleanup_interval_ms, "storage.metadataCleanup.interval", SD_BIND_I64),
    SD_OPERATOR_BIND(archived_file_expiration_ms, "storage.metadataCleanup.archivedFileExpiration",
                     SD_BIND_I64),
    SD_OPERATOR_BIND(active_file_expiration_ms, "storage.metadataCleanup.activeFileExpiration",
                     SD_BIND_I64),
    SD_OPERATOR_BIND(archived_file_retention,
                     "storage.metadataCleanup.archivedFileRetentionPerSink", SD_BIND_I64),
    SD_OPERATOR_BIND(cleanup_error_tolerance, "storage.metadataCleanup.errorTolerance",
                     SD_BIND_I64),
    SD_OPERATOR_BIND(cleanup_concurrency, "storage.metadataCleanup.concurrency", SD_BIND_I64),
    SD_OPERATOR_BIND(assignment_count, "storage.level.local.volume.assignment.count",
                     SD_BIND_SIZE_T),
    SD_OPERATOR_BIND(preferred_types, "storage.level.local.volume.assignment.preferredTypes",
                     SD_BIND_LIST),
    SD_OPERATOR_BIND(compression, "storage.level.local.encoding.compression.type", SD_BIND_STR),
};
const struct sd_config_bindings sd_operator_config_bindings =
    SD_BINDINGS("operator", sd_operator_rows);

struct sd_operator {
    struct sd_operator_deps d; /* borrowed */
    struct sd_operator_config cfg;
    struct sd_bounded *steps; /* rotations, uploads and imports under their timeouts */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int is_running;
    int is_kicked;
    int64_t next_cleanup_ms;
    const struct sd_config *config; /* borrowed: the settings snapshots of the sinks */
    struct sd_files_config files;   /* how new slices are placed and encoded */
    pthread_mutex_t files_lock;     /* one pass over the sinks' files at a time */
    json_t *sink_errors;            /* {sinkKey: last logged file error} (files_lock) */
};

/* ---- small helpers ---- */

/* Adds the ops moving every statistics key of a slice from one level to another. */
static void sd__batch_move_stats(struct sd_state *state, struct sd_entity_batch *b,
                                 const char *slice_key, const char *from, const char *to,
                                 int64_t staging_size)
{
    char *prefix = sd_xasprintf("storage/stats/%s/%s/", from, slice_key);
    struct sd_kvs kvs;

    memset(&kvs, 0, sizeof(kvs));
    if (sd_state_range(state, prefix, 0, &kvs) == 0) {
        for (size_t i = 0; i < kvs.n && b->n + 2 <= 120; i++) {
            json_t *j = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
            const char *node = kvs.items[i].key + strlen(prefix);
            if (j == NULL) {
                continue;
            }
            if (staging_size >= 0) {
                json_object_set_new(j, "stagingSize", json_integer(staging_size));
            }
            sd_entity_put(b, sd_xasprintf("storage/stats/%s/%s/%s", to, slice_key, node), j);
            sd_entity_del(b, sd_xstrdup(kvs.items[i].key));
            json_decref(j);
        }
        sd_kvs_free(&kvs);
    }
    free(prefix);
}

/* Records a failed attempt on the entity with the next retryAfter. */
static void sd__record_failure(struct sd_operator *op, const char *kind, const char *key, json_t *j,
                               int64_t mod_rev, const char *reason)
{
    struct sd_entity_batch *b = sd_xcalloc(1, sizeof(*b));
    int64_t now = sd_now_ms();
    int64_t attempt = json_integer_value(json_object_get(j, "retryAttempt")) + 1;
    double delay =
        (double)op->cfg.retry_initial_ms * pow(op->cfg.retry_multiplier, (double)(attempt - 1));
    uint16_t rnd = 0;
    char ts[SD_TIME_ISO_LEN + 1];
    int rc;

    if (delay > (double)op->cfg.retry_max_ms) {
        delay = (double)op->cfg.retry_max_ms;
    }
    if (getrandom(&rnd, sizeof(rnd), 0) == (ssize_t)sizeof(rnd)) {
        delay *= 0.9 + 0.2 * ((double)rnd / 65535.0); /* +-10 % jitter */
    }
    sd_time_format_iso(now, ts);
    json_object_set_new(j, "retryAttempt", json_integer(attempt));
    json_object_set_new(j, "retryReason", json_string(reason));
    if (json_object_get(j, "firstFailedAt") == NULL) {
        json_object_set_new(j, "firstFailedAt", json_string(ts));
    }
    json_object_set_new(j, "lastFailedAt", json_string(ts));
    sd_time_format_iso(now + (int64_t)delay, ts);
    json_object_set_new(j, "retryAfter", json_string(ts));
    sd_entity_move(b, kind, key, j, mod_rev, sd_entity_state(j), now);
    rc = sd_entity_commit(op->d.state, b, NULL);
    if (rc == SD_ECONFLICT) {
        sd_log_key(SD_LOG_INFO, "operator", key, "%s %s changed meanwhile: failure not recorded",
                   kind, key);
    } else if (rc != 0) {
        sd_log_key(SD_LOG_ERROR, "operator", key, "cannot record the failure of %s %s", kind, key);
    }
    free(b);
    sd_mreg_operation_failed(strcmp(kind, "slice") == 0 ? SD_M_SLICEUPLOAD_FAILED
                                                        : SD_M_FILEIMPORT_FAILED,
                             key, attempt - 1);
    sd_log_key(SD_LOG_WARN, "operator", key, "%s %s failed (attempt %lld, retry after %s): %s",
               kind, key, (long long)attempt, ts, reason);
}

/* 1 while an abandoned step (kind "upload"/"import") of the entity key still runs. */
static int sd__step_is_busy(struct sd_operator *op, const char *kind, const char *key)
{
    char *busy_key = sd_xasprintf("%s/%s", kind, key);
    int busy = sd_bounded_is_busy(op->steps, busy_key);

    free(busy_key);
    return busy;
}

/* 1 if this node coordinates the sink of key ("<sinkKey>" or "<sinkKey>/<fileOpenedAt>..."):
 * its file transitions, imports and cleanup. Uploads are by volume instead (sd__slices). */
static int sd__coordinates(struct sd_operator *op, const char *sink_key, size_t len)
{
    char *sink;
    int mine;

    if (op->d.coordination == NULL) {
        return 1;
    }
    sink = sd_xstrndup(sink_key, len);
    mine = sd_membership_is_owner(op->d.coordination, sink);
    free(sink);
    return mine;
}

/* The length of the sink key a file key "<p>/<b>/<source>/<sink>/<openedAt>" starts with. */
static size_t sd__sink_key_len(const char *file_key)
{
    const char *slash = strrchr(file_key, '/');

    return slash != NULL ? (size_t)(slash - file_key) : strlen(file_key);
}

/* The length of the sink key a slice key "<sinkKey>/<fileOpenedAt>/<volumeId>/<openedAt>"
 * starts with. */
static size_t sd__sink_key_len_of_slice(const char *slice_key)
{
    size_t len = strlen(slice_key);

    for (int i = 0; i < 3; i++) {
        while (len > 0 && slice_key[len - 1] != '/') {
            len--;
        }
        len = len > 0 ? len - 1 : 0;
    }
    return len;
}

static int sd__retry_due(const json_t *j, int64_t now)
{
    return sd_entity_time_ms(j, "retryAfter") <= now;
}

/* Sums the statistics under prefix into records/compressed/uncompressed. */
static void sd__sum_stats(struct sd_state *state, const char *prefix, const char *skip_prefix,
                          int64_t *records, int64_t *compressed)
{
    struct sd_kvs kvs;

    memset(&kvs, 0, sizeof(kvs));
    if (sd_state_range(state, prefix, 0, &kvs) != 0) {
        return;
    }
    for (size_t i = 0; i < kvs.n; i++) {
        json_t *j;
        if (skip_prefix != NULL &&
            strncmp(kvs.items[i].key, skip_prefix, strlen(skip_prefix)) == 0) {
            continue;
        }
        j = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
        *records += json_integer_value(json_object_get(j, "recordsCount"));
        *compressed += json_integer_value(json_object_get(j, "compressedSize"));
        json_decref(j);
    }
    sd_kvs_free(&kvs);
}

static size_t sd__count(struct sd_state *state, const char *prefix)
{
    struct sd_kvs kvs;
    size_t n = 0;

    memset(&kvs, 0, sizeof(kvs));
    if (sd_state_range(state, prefix, 0, &kvs) == 0) {
        n = kvs.n;
        sd_kvs_free(&kvs);
    }
    return n;
}

/* ---- 1. the files of the sinks: open, add writer nodes, rotate, close ---- */

/* The sink's effective settings and file meta from the definitions loaded for the pass. */
struct sd_sink_view {
    const char *sink_key;
    const json_t *sink;
    json_t *settings; /* snapshot (owned) */
    json_t *meta;     /* sd_files_sink_meta (owned) */
};

/* Logs a sink's file error once per different message (a pass runs every check interval). */
static void sd__sink_error(struct sd_operator *op, const char *sink_key, int rc, struct sd_buf *err)
{
    const char *msg = err->len ? sd_buf_cstr(err) : sd_strerror(rc);
    const char *last = json_string_value(json_object_get(op->sink_errors, sink_key));

    if (rc == SD_ECONFLICT || (last != NULL && strcmp(last, msg) == 0)) {
        return; /* another coordinator or step got there first: the next pass decides again */
    }
    json_object_set_new(op->sink_errors, sink_key, json_string(msg));
    sd_log_key(SD_LOG_ERROR, "operator", sink_key, "files of sink %s: %s", sink_key, msg);
}

/* The live statistics of slice_key if this node writes it, else the stored ones (the sum over
 * the nodes that wrote it, at most storage.statistics.sync.interval old). */
static void sd__slice_totals(struct sd_operator *op, json_t *open, const char *slice_key,
                             int64_t *records, int64_t *compressed)
{
    char *prefix = sd_xasprintf("storage/stats/local/%s/", slice_key);
    size_t i;
    json_t *e;

    *records = *compressed = 0;
    sd__sum_stats(op->d.state, prefix, NULL, records, compressed);
    free(prefix);
    json_array_foreach(open, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "sliceKey")), slice_key) == 0) {
            int64_t r = json_integer_value(json_object_get(e, "records"));
            int64_t c = json_integer_value(json_object_get(e, "compressedSize"));
            *records = r > *records ? r : *records;
            *compressed = c > *compressed ? c : *compressed;
        }
    }
}

/* A slice rotation (slice_key) or a file rotation (file_key: the file it closes, with the
 * sink's meta and settings for the next one), run under its timeout. */
struct sd_rotate_step {
    struct sd_operator *op;
    char *slice_key;
    char *file_key;
    json_t *meta;
    json_t *settings;
    struct sd_buf err;
};

static int sd__rotate_step(void *arg)
{
    struct sd_rotate_step *r = arg;

    if (r->slice_key != NULL) {
        return sd_files_rotate_slice(r->op->d.state, &r->op->files, r->slice_key, &r->err);
    }
    return sd_files_open(r->op->d.state, &r->op->files, r->meta, r->settings, r->file_key, NULL,
                         &r->err);
}

static void sd__rotate_step_free(void *arg)
{
    struct sd_rotate_step *r = arg;

    free(r->slice_key);
    free(r->file_key);
    json_decref(r->meta);
    json_decref(r->settings);
    sd_buf_fini(&r->err);
    free(r);
}

/* Runs a rotation of the sink under sliceRotationTimeout (a slice) or fileRotationTimeout (its
 * file); past the timeout it goes on in the background and the sink is skipped until it ends.
 * size: the bytes it moves on (metrics). Returns 1 if it rotated. */
static int sd__rotate(struct sd_operator *op, const struct sd_sink_view *v, const char *slice_key,
                      const char *file_key, int64_t size)
{
    struct sd_rotate_step *r = sd_xcalloc(1, sizeof(*r));
    char *busy_key = sd_xasprintf("rotate/%s", v->sink_key);
    double t0 = sd_mreg_now_ms();
    int rc;

    r->op = op;
    r->slice_key = slice_key != NULL ? sd_xstrdup(slice_key) : NULL;
    r->file_key = slice_key == NULL ? sd_xstrdup(file_key) : NULL;
    r->meta = json_incref(v->meta);
    r->settings = json_incref(v->settings);
    sd_buf_init(&r->err);
    rc = sd_bounded_run(op->steps, busy_key, sd__rotate_step, r, sd__rotate_step_free,
                        slice_key != NULL ? op->cfg.slice_rotation_timeout_ms
                                          : op->cfg.file_rotation_timeout_ms);
    sd_mreg_operation(slice_key != NULL ? "slicerotation" : "filerotation", v->sink_key,
                      sd_mreg_now_ms() - t0, rc ? "other" : "", rc ? -1 : size, -1);
    free(busy_key);
    if (rc == -ETIMEDOUT) {
        sd_log_key(SD_LOG_ERROR, "operator", v->sink_key, "rotation of sink %s abandoned: %s",
                   v->sink_key,
                   slice_key != NULL ? "slice rotation timeout" : "file rotation timeout");
        return 0; /* the step is the runner's now */
    }
    if (rc != 0) {
        sd__sink_error(op, v->sink_key, rc, &r->err);
    }
    sd__rotate_step_free(r);
    return rc == 0;
}

/* The writing file of a sink: its writing slices rotate on the upload triggers, the file on the
 * import triggers (from the settings recorded in the file). Returns 1 if anything rotated. */
static int sd__rotate_file(struct sd_operator *op, const struct sd_sink_view *v,
                           const char *file_key, const json_t *file, json_t *open, int64_t now)
{
    struct sd_state *state = op->d.state;
    const json_t *s = json_object_get(file, "settings");
    struct sd_file_totals totals = {0, 0, 0};
    char *prefix = sd_xasprintf("storage/slice/all/%s/", file_key);
    char *busy_key = sd_xasprintf("rotate/%s", v->sink_key);
    enum sd_import_cause cause;
    struct sd_kvs kvs;
    int rotated = 0, is_busy = sd_bounded_is_busy(op->steps, busy_key);

    free(busy_key);
    if (is_busy) {
        free(prefix);
        return 0; /* an abandoned rotation of this sink still runs */
    }
    memset(&kvs, 0, sizeof(kvs));
    if (sd_state_range(state, prefix, 0, &kvs) != 0) {
        free(prefix);
        return 0;
    }
    free(prefix);
    totals.slices = (int64_t)kvs.n;
    prefix = sd_xasprintf("storage/stats/staging/%s/", file_key);
    sd__sum_stats(state, prefix, NULL, &totals.records, &totals.compressed_bytes);
    free(prefix);
    for (size_t i = 0; i < kvs.n; i++) { /* local slices: upload triggers */
        const char *slice_key = kvs.items[i].key + strlen("storage/slice/all/");
        json_t *slice = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
        int64_t records, compressed;
        if (strcmp(sd_entity_level("slice", sd_entity_state(slice)), "local") != 0) {
            json_decref(slice);
            continue;
        }
        sd__slice_totals(op, open, slice_key, &records, &compressed);
        totals.records += records;
        totals.compressed_bytes += compressed;
        if (strcmp(sd_entity_state(slice), "writing") == 0 &&
            sd_should_upload(s, now, sd_time_of_key(slice_key), records, compressed) &&
            sd_files_volume_is_live(state, json_string_value(json_object_get(slice, "volumeId")))) {
            rotated |= sd__rotate(op, v, slice_key, NULL, compressed);
        }
        json_decref(slice);
    }
    sd_kvs_free(&kvs);
    cause = sd_should_import(s, now, sd_time_of_key(file_key),
                             sd_entity_time_ms(json_object_get(file, "staging"), "expiration"),
                             op->cfg.import_expiration_ms, &totals);
    if (cause != SD_IMPORT_NONE) {
        sd_log_key(SD_LOG_INFO, "operator", file_key, "rotating file %s, import condition met: %s",
                   file_key, sd_import_cause_name(cause));
        rotated |= sd__rotate(op, v, NULL, file_key, totals.compressed_bytes);
    }
    return rotated;
}

/* One sink this node coordinates: v NULL when it stopped (disabled, deleted, or its source
 * did): its writing file closes; else its writing file is opened (once its table accepts the
 * mapping), takes writer nodes that joined, rotates on a settings or mapping change, and on its
 * triggers. */
static int sd__sink_files(struct sd_operator *op, const struct sd_sink_view *v,
                          const char *sink_key, const char *file_key, const json_t *file,
                          json_t *open, int64_t now)
{
    struct sd_buf err = SD_BUF_INIT;
    int rc = 0, changed = 0;

    if (v == NULL) {
        rc = file_key != NULL ? sd_files_close(op->d.state, file_key, &err) : 0;
        changed = rc == 0 && file_key != NULL;
    } else if (file_key == NULL) {
        /* a sink whose table refuses its mapping gets no file */
        rc = sd_tables_ensure_mapping_table(
            op->d.tables, json_integer_value(json_object_get(v->meta, "projectId")),
            json_string_value(json_object_get(v->meta, "tableId")),
            json_object_get(v->meta, "columns"), &err);
        if (rc == 0) {
            rc = sd_files_open(op->d.state, &op->files, v->meta, v->settings, NULL, NULL, &err);
        }
        changed = rc == 0;
    } else if (!json_equal(json_object_get(file, "settings"), v->settings) ||
               !json_equal(json_object_get(file, "columns"), json_object_get(v->meta, "columns")) ||
               !json_equal(json_object_get(json_object_get(file, "target"), "tableId"),
                           json_object_get(v->meta, "tableId"))) {
        rc = sd_files_open(op->d.state, &op->files, v->meta, v->settings, file_key, NULL, &err);
        changed = rc == 0;
    } else {
        rc = sd_files_add_slices(op->d.state, &op->files, file_key, &err);
        changed = rc > 0;
        rc = rc > 0 ? 0 : rc;
        if (rc == 0) {
            changed |= sd__rotate_file(op, v, file_key, file, open, now);
        }
    }
    if (rc != 0) {
        sd__sink_error(op, sink_key, rc, &err);
    } else {
        json_object_del(op->sink_errors, sink_key);
    }
    sd_buf_fini(&err);
    return changed;
}

/* The definition of sink_key's source in sources (definition/source/active/ items). */
static json_t *sd__source_of(const struct sd_kvs *sources, const char *sink_key)
{
    const char *slash = strrchr(sink_key, '/');
    size_t len = slash != NULL ? (size_t)(slash - sink_key) : 0;
    size_t plen = strlen("definition/source/active/");

    for (size_t i = 0; i < sources->n; i++) {
        const char *k = sources->items[i].key + plen;
        if (strlen(k) == len && strncmp(k, sink_key, len) == 0) {
            return json_loadb(sources->items[i].value, sources->items[i].value_len, 0, NULL);
        }
    }
    return NULL;
}

int sd_operator_sinks_changed(struct sd_operator *op, const char *only_sink_key)
{
    struct sd_state *state = op->d.state;
    struct sd_kvs sources, sinks, files;
    json_t *writing = json_object(), *open, *seen = json_object();
    size_t plen = strlen("definition/sink/active/");
    int64_t now = sd_now_ms();
    int rc, changed = 0;
    const char *key;
    json_t *value;

    memset(&sources, 0, sizeof(sources));
    memset(&sinks, 0, sizeof(sinks));
    memset(&files, 0, sizeof(files));
    pthread_mutex_lock(&op->files_lock);
    rc = sd_state_range(state, "definition/source/active/", 0, &sources);
    if (rc == 0) {
        rc = sd_state_range(state, "definition/sink/active/", 0, &sinks);
    }
    if (rc == 0) {
        rc = sd_state_range(state, "storage/file/level/local/", 0, &files);
    }
    open = op->d.storage != NULL ? sd_storage_open_slices(op->d.storage) : json_array();
    /* the writing file of each sink: {sinkKey: [fileKey, file]} */
    for (size_t i = 0; rc == 0 && i < files.n; i++) {
        const char *fk = files.items[i].key + strlen("storage/file/level/local/");
        json_t *file = json_loadb(files.items[i].value, files.items[i].value_len, 0, NULL);
        size_t klen = sd__sink_key_len(fk);
        if (file != NULL && strcmp(sd_entity_state(file), "writing") == 0 &&
            sd__coordinates(op, fk, klen)) {
            char *sk = sd_xstrndup(fk, klen);
            json_object_set_new(writing, sk, json_pack("[s, o]", fk, file));
            free(sk);
        } else {
            json_decref(file);
        }
    }
    for (size_t i = 0; rc == 0 && i < sinks.n; i++) {
        const char *sink_key = sinks.items[i].key + plen;
        json_t *sink, *src, *w;
        struct sd_sink_view v;
        if ((only_sink_key != NULL && strcmp(only_sink_key, sink_key) != 0) ||
            !sd__coordinates(op, sink_key, strlen(sink_key))) {
            continue;
        }
        json_object_set_new(seen, sink_key, json_true());
        sink = json_loadb(sinks.items[i].value, sinks.items[i].value_len, 0, NULL);
        src = sd__source_of(&sources, sink_key);
        w = json_object_get(writing, sink_key);
        memset(&v, 0, sizeof(v));
        v.sink_key = sink_key;
        v.sink = sink;
        if (sink != NULL && src != NULL && json_object_get(sink, "disabled") == NULL &&
            json_object_get(src, "disabled") == NULL) {
            v.settings = sd_settings_snapshot(op->config, src, sink);
            v.meta = sd_files_sink_meta(sink);
        }
        changed |= sd__sink_files(op, v.meta != NULL ? &v : NULL, sink_key,
                                  json_string_value(json_array_get(w, 0)), json_array_get(w, 1),
                                  open, now);
        json_decref(v.settings);
        json_decref(v.meta);
        json_decref(sink);
        json_decref(src);
    }
    /* writing files of sinks that are gone */
    json_object_foreach(writing, key, value)
    {
        if (rc == 0 && json_object_get(seen, key) == NULL &&
            (only_sink_key == NULL || strcmp(only_sink_key, key) == 0)) {
            changed |= sd__sink_files(op, NULL, key, json_string_value(json_array_get(value, 0)),
                                      NULL, open, now);
        }
    }
    pthread_mutex_unlock(&op->files_lock);
    if (changed && op->d.storage != NULL) {
        /* this node writes too: switch its writers now rather than at its follower's call */
        pthread_mutex_lock(op->d.slots_lock);
        sd_storage_sync_slices(op->d.storage);
        pthread_mutex_unlock(op->d.slots_lock);
    }
    json_decref(open);
    json_decref(writing);
    json_decref(seen);
    sd_kvs_free(&sources);
    sd_kvs_free(&sinks);
    sd_kvs_free(&files);
    return rc;
}

/* ---- 2. + 3. slices: closing -> uploading -> uploaded ---- */

/* 1 if an open slice of sd_storage_open_slices() has field ("sliceKey", "fileKey") == key. */
static int sd__is_open(json_t *open, const char *field, const char *key)
{
    size_t i;
    json_t *e;

    json_array_foreach(open, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, field)), key) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Continuation number of a slice file name: ".slice-N.csv.gz" -> 1, ".slice-N-3.csv.gz" -> 3. */
static int sd__slice_file_order(const char *name, const char *node_id)
{
    const char *p = strstr(name, "slice-");
    size_t nl = strlen(node_id);

    if (p == NULL) {
        return INT_MAX;
    }
    p += 6;
    if (strncmp(p, node_id, nl) != 0) {
        return INT_MAX - 1;
    }
    p += nl;
    return *p == '-' ? atoi(p + 1) : 1;
}

struct sd_slice_file {
    char path[PATH_MAX];
    int order;
};

static int sd__cmp_slice_files(const void *a, const void *b)
{
    const struct sd_slice_file *x = a, *y = b;
    if (x->order != y->order) {
        return x->order < y->order ? -1 : 1;
    }
    return strcmp(x->path, y->path);
}

/* Lists, verifies (recovery is idempotent; a file closed cleanly in this process and unchanged
 * since is taken as its writer left it) and renames to their visible names the files of a
 * slice directory. Returns the number of files (paths in files) or a negative error. */
static int sd__prepare_slice_files(const char *node_id, const char *dir,
                                   struct sd_slice_file *files, int64_t *records)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    *records = 0;
    if (d == NULL) {
        return errno == ENOENT ? 0 : -errno;
    }
    while ((e = readdir(d)) != NULL && n < SD_OP_MAX_FILES_PER_SLICE) {
        struct sd_slice_stats stats;
        char path[PATH_MAX];
        int rc;
        if (strstr(e->d_name, "slice-") == NULL || strstr(e->d_name, ".tmp") != NULL) {
            continue;
        }
        if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path)) {
            continue;
        }
        /* a file its writer closed cleanly here and that is unchanged since needs no pass */
        rc = sd_slice_closed_take(path, &stats) ? 0 : sd_slice_recover(path, &stats);
        if (rc != 0) {
            closedir(d);
            return rc;
        }
        *records += (int64_t)stats.records;
        if (e->d_name[0] == '.') { /* hidden while written: visible once verified */
            char visible[PATH_MAX];
            snprintf(visible, sizeof(visible), "%s/%s", dir, e->d_name + 1);
            if (rename(path, visible) != 0) {
                rc = -errno;
                closedir(d);
                return rc;
            }
            memcpy(path, visible, sizeof(path));
        }
        memcpy(files[n].path, path, sizeof(path));
        files[n].order = sd__slice_file_order(strrchr(path, '/') + 1, node_id);
        n++;
    }
    closedir(d);
    /* The renames are not synced: lost in a crash, they leave hidden names, which every pass
     * (this one, recovery, disk cleanup) handles alike; the staged object is what is synced. */
    qsort(files, (size_t)n, sizeof(*files), sd__cmp_slice_files);
    return n;
}

/* The upload of one slice's files, run under sliceUploadTimeout: verify and rename the local
 * files, then put them to staging as one object (idempotent: a retry while an abandoned attempt
 * still runs stores the same object). */
struct sd_upload_step {
    struct sd_staging *staging;
    const char *node_id;
    char *dir;         /* NULL: no local files */
    char *staging_key; /* object key */
    int64_t records;   /* out */
    uint64_t size;     /* out */
    char reason[256];  /* out, on failure */
};

static int sd__upload_step(void *arg)
{
    struct sd_upload_step *u = arg;
    struct sd_slice_file *files = sd_xcalloc(SD_OP_MAX_FILES_PER_SLICE, sizeof(*files));
    const char *paths[SD_OP_MAX_FILES_PER_SLICE];
    int n, rc = 0;

    sd_bgprio_thread_start("sd-upload");
    n = u->dir ? sd__prepare_slice_files(u->node_id, u->dir, files, &u->records) : 0;
    if (n < 0) {
        snprintf(u->reason, sizeof(u->reason), "slice files cannot be verified: %s",
                 sd_strerror(n));
        rc = n;
    } else if (u->records > 0) {
        for (int i = 0; i < n; i++) {
            paths[i] = files[i].path;
        }
        rc = sd_staging_put_files(u->staging, u->staging_key, paths, (size_t)n, &u->size);
        if (rc != 0) {
            snprintf(u->reason, sizeof(u->reason), "upload to staging failed: %s", sd_strerror(rc));
        }
    }
    free(files);
    return rc;
}

static void sd__upload_step_free(void *arg)
{
    struct sd_upload_step *u = arg;

    free(u->dir);
    free(u->staging_key);
    free(u);
}

static void sd__upload_slice(struct sd_operator *op, const char *slice_key, json_t *slice,
                             int64_t mod_rev)
{
    struct sd_state *state = op->d.state;
    const char *dir = json_string_value(json_object_get(json_object_get(slice, "local"), "dir"));
    struct sd_upload_step *u = sd_xcalloc(1, sizeof(*u));
    struct sd_entity_batch *b = sd_xcalloc(1, sizeof(*b));
    struct sd_buf key = SD_BUF_INIT;
    char *busy_key = sd_xasprintf("upload/%s", slice_key);
    double t0 = sd_mreg_now_ms();
    int64_t now, size = 0;
    int rc = 0;

    sd_log_key(SD_LOG_DEBUG, "operator", slice_key, "uploading slice %s", slice_key);
    sd_staging_slice_key(
        &key, json_integer_value(json_object_get(slice, "projectId")),
        json_integer_value(json_object_get(slice, "branchId")),
        json_string_value(json_object_get(slice, "sourceId")),
        json_string_value(json_object_get(slice, "sinkId")),
        json_string_value(json_object_get(slice, "fileOpenedAt")),
        json_string_value(json_object_get(slice, "sliceOpenedAt")),
        json_string_value(json_object_get(slice, "volumeId")),
        strcmp(json_string_value(json_object_get(json_object_get(slice, "local"), "compression"))
                   ?: "",
               "gzip") == 0);
    u->staging = op->d.staging;
    u->node_id = op->d.node_id;
    u->dir = dir ? sd_xstrdup(dir) : NULL;
    u->staging_key = sd_xstrdup(sd_buf_cstr(&key));
    rc = sd_bounded_run(op->steps, busy_key, sd__upload_step, u, sd__upload_step_free,
                        op->cfg.slice_upload_timeout_ms);
    if (rc == -ETIMEDOUT) {
        u = NULL; /* the abandoned step owns it now */
        sd__record_failure(op, "slice", slice_key, slice, mod_rev, "slice upload timeout");
        goto done;
    }
    if (rc != 0) {
        sd__record_failure(op, "slice", slice_key, slice, mod_rev,
                           u->reason[0] ? u->reason : sd_strerror(rc));
        goto done;
    }
    if (u->records > 0) {
        json_object_set_new(json_object_get(slice, "staging"), "key", json_string(u->staging_key));
    } else {
        json_object_set_new(slice, "isEmpty", json_true());
    }
    now = sd_now_ms();
    size = (int64_t)u->size;
    sd__batch_move_stats(state, b, slice_key, "local", "staging", (int64_t)u->size);
    sd_entity_move(b, "slice", slice_key, slice, mod_rev, "uploaded", now);
    rc = sd_entity_commit(state, b, NULL);
    if (rc != 0) {
        sd_log_key(SD_LOG_ERROR, "operator", slice_key,
                   "slice %s uploaded but its state cannot be stored: %s", slice_key,
                   sd_strerror(rc));
        goto done;
    }
    /* The staged object (or nothing, for an empty slice) now holds the data. Not synced: a
     * removal lost in a crash leaves a directory that the disk cleanup removes with its entity,
     * and a sync here would only add a device flush beside the slice writers' own. */
    if (dir != NULL) {
        sd_rm_rf(dir);
    }
    sd_log_key(SD_LOG_INFO, "operator", slice_key, "slice %s uploaded (%lld records, %llu bytes)",
               slice_key, (long long)u->records, (unsigned long long)u->size);
done:
    sd_mreg_operation("sliceupload", slice_key, sd_mreg_now_ms() - t0,
                      rc != 0 || strcmp(sd_entity_state(slice), "uploaded") != 0 ? "other" : "",
                      size, -1);
    if (u != NULL) {
        sd__upload_step_free(u);
    }
    sd_buf_fini(&key);
    free(busy_key);
    free(b);
}

/* 2. a closing slice of a sink this node coordinates moves to "uploading" once every writer
 * node's close-sync report has reached the revision it closed at; 3. an uploading slice on this
 * node's volumes whose writer is closed is uploaded. */
static void sd__slices(struct sd_operator *op, int64_t now)
{
    struct sd_state *state = op->d.state;
    json_t *open = op->d.storage != NULL ? sd_storage_open_slices(op->d.storage) : json_array();
    int64_t released_rev = op->d.tables != NULL ? sd_files_closesync_rev(state) : -1;
    struct sd_kvs kvs;

    memset(&kvs, 0, sizeof(kvs));
    if (sd_state_range(state, "storage/slice/level/local/", 0, &kvs) == 0) {
        for (size_t i = 0; i < kvs.n; i++) {
            const char *key = kvs.items[i].key + strlen("storage/slice/level/local/");
            json_t *slice = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
            const char *st = sd_entity_state(slice);
            int64_t mod_rev = kvs.items[i].mod_rev;
            if (strcmp(st, "closing") == 0 && mod_rev <= released_rev &&
                sd__coordinates(op, key, sd__sink_key_len_of_slice(key))) {
                struct sd_entity_batch *b = sd_xcalloc(1, sizeof(*b));
                sd_entity_move(b, "slice", key, slice, mod_rev, "uploading", now);
                /* the entity now says "uploading" (st pointed into its old state): upload it
                 * only if that was stored */
                st = sd_entity_commit(state, b, &mod_rev) == 0 ? "uploading" : "";
                free(b);
            }
            if (strcmp(st, "uploading") == 0 && op->d.storage != NULL &&
                sd_storage_has_volume(op->d.storage,
                                      json_string_value(json_object_get(slice, "volumeId"))) &&
                !sd__is_open(open, "sliceKey", key) &&
                !sd_storage_slice_is_closing(op->d.storage, key) && sd__retry_due(slice, now) &&
                !sd__step_is_busy(op, "upload", key)) {
                sd__upload_slice(op, key, slice, mod_rev);
            }
            json_decref(slice);
        }
        sd_kvs_free(&kvs);
    }
    json_decref(open);
}

/* ---- 4. + 5. files: closing -> importing -> imported ---- */

struct sd_staged_read {
    struct sd_staging *staging;
    struct sd_staging_reader *reader;
};

static ssize_t sd__staged_read(void *arg, void *buf, size_t len)
{
    struct sd_staged_read *r = arg;
    return sd_staging_read(r->staging, r->reader, buf, len);
}

/* The import of one file's staged slices into its table, run under fileImportTimeout. The
 * tables ledger makes a retry add nothing that an abandoned attempt committed meanwhile. */
struct sd_import_step {
    struct sd_staging *staging;
    struct sd_tables *tables;
    int64_t project;
    char *table_id;
    struct sd_table_schema *schema; /* the file's mapping columns (owned) */
    char **slice_keys;              /* non-empty staged slices: entity keys ... */
    char **staged_keys;             /* ... and their staging object keys */
    size_t nslices;
    uint64_t rows;     /* out */
    struct sd_buf err; /* out, on failure */
};

static int sd__import_step(void *arg)
{
    struct sd_import_step *m = arg;
    struct sd_import_slice *slices = sd_xcalloc(m->nslices + 1, sizeof(*slices));
    struct sd_staged_read *reads = sd_xcalloc(m->nslices + 1, sizeof(*reads));
    size_t nopen = 0;
    int rc = 0;

    sd_bgprio_thread_start("sd-import");
    for (size_t i = 0; i < m->nslices && rc == 0; i++) {
        reads[i].staging = m->staging;
        rc = sd_staging_open_read(m->staging, m->staged_keys[i], &reads[i].reader);
        if (rc != 0) {
            sd_buf_printf(&m->err, "staged slice %s cannot be read: %s", m->staged_keys[i],
                          sd_strerror(rc));
        } else {
            slices[i].slice_key = m->slice_keys[i];
            slices[i].read = sd__staged_read;
            slices[i].arg = &reads[i];
            nopen++;
        }
    }
    if (rc == 0 && m->nslices > 0) {
        rc = sd_tables_ensure_table(m->tables, m->project, m->table_id, m->schema, &m->err);
        if (rc == 0) {
            rc = sd_tables_import(m->tables, m->project, m->table_id, m->schema, slices, m->nslices,
                                  &m->rows, &m->err);
        }
    }
    for (size_t i = 0; i < nopen; i++) {
        sd_staging_close_read(m->staging, reads[i].reader);
    }
    free(slices);
    free(reads);
    return rc;
}

static void sd__import_step_free(void *arg)
{
    struct sd_import_step *m = arg;

    for (size_t i = 0; i < m->nslices; i++) {
        free(m->slice_keys[i]);
        free(m->staged_keys[i]);
    }
    free(m->schema);
    free(m->slice_keys);
    free(m->staged_keys);
    free(m->table_id);
    sd_buf_fini(&m->err);
    free(m);
}

/* Orders a file's slices (and their staged keys, the same permutation) by openedAt, the last
 * part of "<fileKey>/<volumeId>/<openedAt>", not by volume: rows reach the table in the order
 * they were written, so with a primary key the latest row wins. Insertion sort: n is small. */
static void sd__order_slices(char **slice_keys, char **staged_keys, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i;
             j > 0 && strcmp(strrchr(slice_keys[j - 1], '/'), strrchr(slice_keys[j], '/')) > 0;
             j--) {
            char *k = slice_keys[j], *st = staged_keys[j];
            slice_keys[j] = slice_keys[j - 1];
            staged_keys[j] = staged_keys[j - 1];
            slice_keys[j - 1] = k;
            staged_keys[j - 1] = st;
        }
    }
}

static void sd__import_file(struct sd_operator *op, const char *file_key, json_t *file,
                            int64_t mod_rev)
{
    struct sd_state *state = op->d.state;
    char *prefix = sd_xasprintf("storage/slice/all/%s/", file_key);
    char *busy_key = sd_xasprintf("import/%s", file_key);
    json_t *columns_json = json_object_get(file, "columns");
    struct sd_import_step *m = sd_xcalloc(1, sizeof(*m));
    struct sd_entity_batch *b = sd_xcalloc(1, sizeof(*b));
    struct sd_kvs kvs;
    double t0 = sd_mreg_now_ms();
    int64_t now;
    int rc = 0;

    m->staging = op->d.staging;
    m->tables = op->d.tables;
    m->project = json_integer_value(json_object_get(file, "projectId"));
    m->table_id = sd_xstrdup(
        json_string_value(json_object_get(json_object_get(file, "target"), "tableId")) ?: "");
    m->schema = sd_table_schema_from_json(columns_json);
    sd_buf_init(&m->err);
    sd_log_key(SD_LOG_DEBUG, "operator", file_key, "importing file %s into %s", file_key,
               m->table_id);
    memset(&kvs, 0, sizeof(kvs));
    rc = sd_state_range(state, prefix, 0, &kvs);
    if (rc != 0) {
        goto done;
    }
    m->slice_keys = sd_xcalloc(kvs.n + 1, sizeof(char *));
    m->staged_keys = sd_xcalloc(kvs.n + 1, sizeof(char *));
    for (size_t i = 0; i < kvs.n; i++) {
        json_t *slice = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
        const char *skey =
            json_string_value(json_object_get(json_object_get(slice, "staging"), "key"));
        if (!json_is_true(json_object_get(slice, "isEmpty")) && skey != NULL) {
            m->slice_keys[m->nslices] = sd_xstrdup(kvs.items[i].key + strlen("storage/slice/all/"));
            m->staged_keys[m->nslices] = sd_xstrdup(skey);
            m->nslices++;
        }
        json_decref(slice);
    }
    sd__order_slices(m->slice_keys, m->staged_keys, m->nslices);
    rc = sd_bounded_run(op->steps, busy_key, sd__import_step, m, sd__import_step_free,
                        op->cfg.file_import_timeout_ms);
    if (rc == -ETIMEDOUT) {
        m = NULL; /* the abandoned step owns it now */
        sd__record_failure(op, "file", file_key, file, mod_rev, "file import timeout");
        goto done;
    }
    if (rc != 0) {
        sd__record_failure(op, "file", file_key, file, mod_rev,
                           m->err.len ? sd_buf_cstr(&m->err) : sd_strerror(rc));
        goto done;
    }
    /* Committed in the table: move every slice (with its statistics) and then the file.
     * A crash in between repeats these moves; the ledger keeps the rows single. */
    now = sd_now_ms();
    for (size_t i = 0; i < kvs.n; i++) {
        json_t *slice = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
        const char *skey = kvs.items[i].key + strlen("storage/slice/all/");
        if (strcmp(sd_entity_state(slice), "imported") != 0) {
            sd__batch_move_stats(state, b, skey, "staging", "target", -1);
            sd_entity_move(b, "slice", skey, slice, kvs.items[i].mod_rev, "imported", now);
            int r = sd_entity_commit(state, b, NULL);
            rc = rc != 0 ? rc : r;
        }
        json_decref(slice);
    }
    if (rc == 0) {
        sd_entity_move(b, "file", file_key, file, mod_rev, "imported", now);
        rc = sd_entity_commit(state, b, NULL);
    }
    if (rc == SD_ECONFLICT) {
        /* another coordinator of the sink moved it first (the ledger kept the rows single) */
        sd_log_key(SD_LOG_INFO, "operator", file_key, "file %s was moved meanwhile", file_key);
        goto done;
    }
    if (rc != 0) {
        sd_log_key(SD_LOG_ERROR, "operator", file_key,
                   "file %s imported but its state cannot be stored", file_key);
        goto done;
    }
    for (size_t i = 0; i < kvs.n; i++) {
        json_t *slice = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
        const char *skey =
            json_string_value(json_object_get(json_object_get(slice, "staging"), "key"));
        if (skey != NULL) {
            sd_staging_del(op->d.staging, skey);
        }
        json_decref(slice);
    }
    sd_log_key(SD_LOG_INFO, "operator", file_key, "file %s imported into %s (%llu rows)", file_key,
               m->table_id, (unsigned long long)m->rows);
done:
    sd_mreg_operation("fileimport", file_key, sd_mreg_now_ms() - t0,
                      rc != 0 || strcmp(sd_entity_state(file), "imported") != 0 ? "other" : "", -1,
                      -1);
    if (m != NULL) {
        sd__import_step_free(m);
    }
    sd_kvs_free(&kvs);
    free(busy_key);
    free(prefix);
    free(b);
}

/* 1 if the sink of a file key ("<p>/<b>/<source>/<sink>/<fileOpenedAt>") still has a
 * definition, active or soft-deleted. A cascade delete removes both: its data is dropped. */
static int sd__sink_exists(struct sd_state *state, const char *file_key)
{
    const char *slash = strrchr(file_key, '/');
    char *active, *deleted;
    struct sd_kv kv;
    int exists, rc;

    if (slash == NULL) {
        return 1;
    }
    active = sd_xasprintf("definition/sink/active/%.*s", (int)(slash - file_key), file_key);
    deleted = sd_xasprintf("definition/sink/deleted/%.*s", (int)(slash - file_key), file_key);
    memset(&kv, 0, sizeof(kv));
    rc = sd_state_get(state, active, &kv);
    if (rc == SD_ENOTFOUND) {
        rc = sd_state_get(state, deleted, &kv);
    }
    /* only a sink known to be gone drops its files: a failed read (etcd unreachable) is not
     * an answer, and dropping would lose acknowledged records */
    exists = rc != SD_ENOTFOUND;
    sd_kv_free(&kv);
    free(active);
    free(deleted);
    return exists;
}

/* Drops a file that will never be imported (of a hard-deleted sink, or expired while still
 * active): its staged objects, statistics, slices and itself. Local slice directories are left
 * to the disk cleanup, as in the reference. Returns 0 or the state store's code. */
static int sd__purge_file(struct sd_operator *op, const char *file_key)
{
    struct sd_state *state = op->d.state;
    char *prefix = sd_xasprintf("storage/slice/all/%s/", file_key);
    static const char *const levels[] = {"local", "staging", "target"};
    struct sd_entity_batch *b = sd_xcalloc(1, sizeof(*b));
    struct sd_kvs kvs;
    int rc = 0;

    memset(&kvs, 0, sizeof(kvs));
    if (sd_state_range(state, prefix, 0, &kvs) == 0) {
        for (size_t i = 0; i < kvs.n && rc == 0; i++) {
            json_t *slice = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
            const char *skey = kvs.items[i].key + strlen("storage/slice/all/");
            const char *staged =
                json_string_value(json_object_get(json_object_get(slice, "staging"), "key"));
            if (staged != NULL) {
                sd_staging_del(op->d.staging, staged);
            }
            for (size_t l = 0; l < 3; l++) {
                char *stats = sd_xasprintf("storage/stats/%s/%s/", levels[l], skey);
                b->ops[b->n++] =
                    (struct sd_op){SD_OP_DELETE_PREFIX, sd_entity_own(b, stats), NULL, 0, 0};
                sd_entity_del(b, sd_xasprintf("storage/slice/level/%s/%s", levels[l], skey));
            }
            sd_entity_del(b, sd_xstrdup(kvs.items[i].key));
            rc = sd_entity_commit(state, b, NULL);
            json_decref(slice);
        }
        sd_kvs_free(&kvs);
    }
    if (rc == 0) {
        for (size_t l = 0; l < 3; l++) {
            sd_entity_del(b, sd_xasprintf("storage/file/level/%s/%s", levels[l], file_key));
        }
        sd_entity_del(b, sd_xasprintf("storage/file/all/%s", file_key));
        rc = sd_entity_commit(state, b, NULL);
    }
    free(b);
    free(prefix);
    return rc;
}

/* 1 when file keys a and b ("<sink key>/<openedAt>") belong to one sink. */
static int sd__same_sink(const char *a, const char *b)
{
    const char *slash = strrchr(a, '/');
    size_t n = slash != NULL ? (size_t)(slash - a) : strlen(a);

    return strncmp(a, b, n) == 0 && b[n] == '/' && strchr(b + n + 1, '/') == NULL;
}

static void sd__files(struct sd_operator *op, int64_t now)
{
    struct sd_state *state = op->d.state;
    struct sd_kvs kvs;

    memset(&kvs, 0, sizeof(kvs));
    if (sd_state_range(state, "storage/file/level/local/", 0, &kvs) == 0) {
        for (size_t i = 0; i < kvs.n; i++) {
            const char *key = kvs.items[i].key + strlen("storage/file/level/local/");
            json_t *file = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
            char *prefix = sd_xasprintf("storage/slice/level/local/%s/", key);
            if (strcmp(sd_entity_state(file), "closing") == 0 &&
                sd__coordinates(op, key, sd__sink_key_len(key)) && sd__count(state, prefix) == 0) {
                struct sd_entity_batch *b = sd_xcalloc(1, sizeof(*b));
                int64_t records = 0, compressed = 0;
                char *stats = sd_xasprintf("storage/stats/staging/%s/", key);
                sd__sum_stats(state, stats, NULL, &records, &compressed);
                if (records == 0) {
                    json_object_set_new(file, "isEmpty", json_true());
                }
                sd_entity_move(b, "file", key, file, kvs.items[i].mod_rev, "importing", now);
                sd_entity_commit(state, b, NULL);
                free(stats);
                free(b);
            }
            free(prefix);
            json_decref(file);
        }
        sd_kvs_free(&kvs);
    }
    memset(&kvs, 0, sizeof(kvs));
    /* A sink's files are imported one at a time, oldest first (keys sort by openedAt): with a
     * primary key, a later file's row must replace an earlier one's, never the reverse. */
    if (sd_state_range(state, "storage/file/level/staging/", 0, &kvs) == 0) {
        const char *first = NULL; /* the oldest file still importing of the sink at hand */
        for (size_t i = 0; i < kvs.n; i++) {
            const char *key = kvs.items[i].key + strlen("storage/file/level/staging/");
            json_t *file = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
            if (!sd__coordinates(op, key, sd__sink_key_len(key))) {
                json_decref(file); /* another coordinator's sink */
                continue;
            }
            if (strcmp(sd_entity_state(file), "importing") == 0 && !sd__sink_exists(state, key)) {
                if (sd__purge_file(op, key) == 0) {
                    sd_log_key(SD_LOG_INFO, "operator", key, "file %s of a deleted sink dropped",
                               key);
                }
            } else if (strcmp(sd_entity_state(file), "importing") == 0 &&
                       (first == NULL || !sd__same_sink(first, key))) {
                first = key;
                if (sd__retry_due(file, now) && !sd__step_is_busy(op, "import", key)) {
                    sd__import_file(op, key, file, kvs.items[i].mod_rev);
                }
            }
            json_decref(file);
        }
        sd_kvs_free(&kvs);
    }
}

/* ---- 6. metadata cleanup ---- */

static void sd__add_level(json_t *sum, const json_t *add)
{
    static const char *const counters[] = {"recordsCount", "uncompressedSize", "compressedSize",
                                           "stagingSize"};
    const char *first = json_string_value(json_object_get(add, "firstRecordAt"));
    const char *last = json_string_value(json_object_get(add, "lastRecordAt"));
    const char *sum_first = json_string_value(json_object_get(sum, "firstRecordAt"));
    const char *sum_last = json_string_value(json_object_get(sum, "lastRecordAt"));

    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
        json_int_t v = json_integer_value(json_object_get(sum, counters[i])) +
                       json_integer_value(json_object_get(add, counters[i]));
        json_object_set_new(sum, counters[i], json_integer(v));
    }
    /* ISO timestamps of one fixed width compare as strings. */
    if (first != NULL && (sum_first == NULL || strcmp(first, sum_first) < 0)) {
        json_object_set_new(sum, "firstRecordAt", json_string(first));
    }
    if (last != NULL && (sum_last == NULL || strcmp(last, sum_last) > 0)) {
        json_object_set_new(sum, "lastRecordAt", json_string(last));
    }
}

/* Deletes one imported file: slice by slice (statistics rolled into the sink's sum in the
 * same transaction), then the file. Each step is atomic; a crash between steps leaves a
 * consistent subset that the next cleanup finishes. */
static int sd__delete_file(struct sd_operator *op, const char *sink_key, const char *file_key)
{
    struct sd_state *state = op->d.state;
    char *sum_key = sd_xasprintf("storage/stats/target/%s/_sum", sink_key);
    char *prefix = sd_xasprintf("storage/slice/all/%s/", file_key);
    struct sd_entity_batch *b = sd_xcalloc(1, sizeof(*b));
    struct sd_kvs slices;
    int rc = 0;

    memset(&slices, 0, sizeof(slices));
    rc = sd_state_range(state, prefix, 0, &slices);
    for (size_t i = 0; rc == 0 && i < slices.n; i++) {
        const char *skey = slices.items[i].key + strlen("storage/slice/all/");
        char *stats_prefix = sd_xasprintf("storage/stats/target/%s/", skey);
        struct sd_kvs stats;
        struct sd_kv kv;
        json_t *sum = NULL;

        if (sd_state_get(state, sum_key, &kv) == 0) {
            sum = json_loadb(kv.value, kv.value_len, 0, NULL);
            sd_kv_free(&kv);
        }
        if (sum == NULL) {
            sum = json_object();
        }
        memset(&stats, 0, sizeof(stats));
        if (sd_state_range(state, stats_prefix, 0, &stats) == 0) {
            for (size_t k = 0; k < stats.n && b->n < 100; k++) {
                json_t *j = json_loadb(stats.items[k].value, stats.items[k].value_len, 0, NULL);
                if (j != NULL) {
                    sd__add_level(sum, j);
                    json_decref(j);
                }
                sd_entity_del(b, sd_xstrdup(stats.items[k].key));
            }
            sd_kvs_free(&stats);
        }
        sd_entity_put(b, sd_xstrdup(sum_key), sum);
        sd_entity_del(b, sd_xstrdup(slices.items[i].key));
        sd_entity_del(b, sd_xasprintf("storage/slice/level/target/%s", skey));
        rc = sd_entity_commit(state, b, NULL);
        json_decref(sum);
        free(stats_prefix);
    }
    sd_kvs_free(&slices);
    if (rc == 0) {
        sd_entity_del(b, sd_xasprintf("storage/file/all/%s", file_key));
        sd_entity_del(b, sd_xasprintf("storage/file/level/target/%s", file_key));
        rc = sd_entity_commit(state, b, NULL);
    }
    free(b);
    free(prefix);
    free(sum_key);
    return rc;
}

/* Time of the file's last state change ("<state>At", "openedAt" while writing). */
static int64_t sd__last_state_change_ms(const json_t *file)
{
    char at_key[32];
    int64_t ms;

    snprintf(at_key, sizeof(at_key), "%sAt", sd_entity_state(file));
    ms = sd_entity_time_ms(file, at_key);
    return ms > 0 ? ms : sd_entity_time_ms(file, "openedAt");
}

/* The expired files of one sink, deleted in order by one thread (the `_sum` statistics of a
 * sink are read, added to and written back: one writer per sink). */
struct sd_cleanup_sink {
    char *sink;
    json_t *files;  /* [[fileKey, isImported], ...] */
    int is_skipped; /* deleted or disabled long ago */
};

struct sd_cleanup_run {
    struct sd_operator *op;
    struct sd_cleanup_sink *sinks;
    pthread_mutex_t lock;
    int64_t deleted;
    int64_t errors;
};

static void sd__cleanup_sink_files(size_t i, void *arg)
{
    struct sd_cleanup_run *run = arg;
    struct sd_cleanup_sink *cs = &run->sinks[i];
    size_t k;
    json_t *e;

    json_array_foreach(cs->files, k, e)
    {
        const char *file_key = json_string_value(json_array_get(e, 0));
        int is_stopped, rc;
        pthread_mutex_lock(&run->lock);
        is_stopped = run->errors > run->op->cfg.cleanup_error_tolerance;
        pthread_mutex_unlock(&run->lock);
        if (is_stopped) {
            return;
        }
        rc = json_is_true(json_array_get(e, 1)) ? sd__delete_file(run->op, cs->sink, file_key)
                                                : sd__purge_file(run->op, file_key);
        pthread_mutex_lock(&run->lock);
        if (rc == 0) {
            run->deleted++;
        } else {
            run->errors++;
        }
        pthread_mutex_unlock(&run->lock);
        if (rc == 0) {
            sd_log_key(SD_LOG_INFO, "operator", file_key, "deleted expired file %s", file_key);
        } else {
            sd_log_key(SD_LOG_ERROR, "operator", file_key, "cannot delete expired file \"%s\": %s",
                       file_key, sd_strerror(rc));
        }
    }
}

/* 1 if the sink "<p>/<b>/<source>/<sink>" was deleted or disabled more than `ms` ago: the
 * reference's metadata cleanup leaves such sinks alone. */
static int sd__sink_gone_longer_than(struct sd_state *state, const char *sink_key, int64_t now,
                                     int64_t ms)
{
    static const char *const kinds[] = {"active", "deleted"};
    int gone = 0;

    for (size_t i = 0; i < 2 && !gone; i++) {
        char *key = sd_xasprintf("definition/sink/%s/%s", kinds[i], sink_key);
        struct sd_kv kv;
        if (sd_state_get(state, key, &kv) == 0) {
            json_t *sink = json_loadb(kv.value, kv.value_len, 0, NULL);
            int64_t deleted = sd_entity_time_ms(json_object_get(sink, "deleted"), "at");
            int64_t disabled = sd_entity_time_ms(json_object_get(sink, "disabled"), "at");
            gone = (deleted > 0 && now - deleted > ms) || (disabled > 0 && now - disabled > ms);
            json_decref(sink);
            sd_kv_free(&kv);
        }
        free(key);
    }
    return gone;
}

/* Metadata cleanup (reference metacleanup): per sink, files newest first; an imported file is
 * deleted when its import is older than archivedFileExpiration and more than
 * archivedFileRetentionPerSink newer files precede it; any other file when its last state change
 * is older than activeFileExpiration (except the file a local writer has open: its slot would
 * lose its entities). Sinks deleted or disabled longer than both expirations ago are left alone,
 * as in the reference. Sinks are cleaned by up to `concurrency` threads, each sink's files in
 * order by one of them; a pass stops once more than errorTolerance deletions failed. */
static void sd__cleanup(struct sd_operator *op, int64_t now)
{
    const struct sd_operator_config *c = &op->cfg;
    struct sd_cleanup_run run;
    struct sd_kvs kvs;
    json_t *open;
    size_t nsinks = 0;
    int64_t index = 0, total = 0;

    if (!c->is_cleanup_enabled || now < op->next_cleanup_ms) {
        return;
    }
    op->next_cleanup_ms = now + c->cleanup_interval_ms;
    memset(&kvs, 0, sizeof(kvs));
    if (sd_state_range(op->d.state, "storage/file/all/", 0, &kvs) != 0) {
        return;
    }
    memset(&run, 0, sizeof(run));
    run.op = op;
    run.sinks = sd_xcalloc(kvs.n + 1, sizeof(*run.sinks));
    pthread_mutex_init(&run.lock, NULL);
    open = op->d.storage != NULL ? sd_storage_open_slices(op->d.storage) : json_array();
    /* Keys sort by sink, then by open time: walk backwards to see each sink's newest first. */
    for (size_t i = kvs.n; i-- > 0;) {
        const char *file_key = kvs.items[i].key + strlen("storage/file/all/");
        const char *slash = strrchr(file_key, '/');
        struct sd_cleanup_sink *cs = nsinks ? &run.sinks[nsinks - 1] : NULL;
        json_t *file;
        int64_t age, file_index;
        int is_imported, is_expired;
        if (slash == NULL) {
            continue;
        }
        if (cs == NULL || strlen(cs->sink) != (size_t)(slash - file_key) ||
            strncmp(cs->sink, file_key, (size_t)(slash - file_key)) != 0) {
            cs = &run.sinks[nsinks++];
            cs->sink = sd_xstrndup(file_key, (size_t)(slash - file_key));
            cs->files = json_array();
            cs->is_skipped = !sd__coordinates(op, cs->sink, strlen(cs->sink)) ||
                             sd__sink_gone_longer_than(op->d.state, cs->sink, now,
                                                       c->archived_file_expiration_ms +
                                                           c->active_file_expiration_ms);
            index = 0;
        }
        file_index = index++;
        total++;
        file = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
        age = now - sd__last_state_change_ms(file);
        is_imported = strcmp(sd_entity_state(file), "imported") == 0;
        is_expired =
            is_imported
                ? age >= c->archived_file_expiration_ms && file_index > c->archived_file_retention
                : age >= c->active_file_expiration_ms && !sd__is_open(open, "fileKey", file_key) &&
                      !sd__step_is_busy(op, "import", file_key);
        if (is_expired && !cs->is_skipped) {
            json_array_append_new(cs->files, json_pack("[s, b]", file_key, is_imported));
        }
        json_decref(file);
    }
    json_decref(open);
    sd_kvs_free(&kvs);
    sd_parallel_for(nsinks, (int)c->cleanup_concurrency, sd__cleanup_sink_files, &run);
    if (run.errors > c->cleanup_error_tolerance) {
        sd_log_error("operator", "local storage metadata cleanup failed: %lld errors",
                     (long long)run.errors);
    }
    sd_log_info("operator", "cleanup deleted %lld files, retained %lld files, %lld errors",
                (long long)run.deleted, (long long)(total - run.deleted), (long long)run.errors);
    for (size_t i = 0; i < nsinks; i++) {
        free(run.sinks[i].sink);
        json_decref(run.sinks[i].files);
    }
    free(run.sinks);
    pthread_mutex_destroy(&run.lock);
}

/* ---- the thread ---- */

static void *sd__operator_main(void *arg)
{
    struct sd_operator *op = arg;

    pthread_setname_np(pthread_self(), "sd-operator");
    pthread_mutex_lock(&op->lock);
    while (op->is_running) {
        if (!op->is_kicked) {
            sd_cond_wait_ms(&op->cond, &op->lock, op->cfg.check_ms);
        }
        op->is_kicked = 0;
        if (!op->is_running) {
            break;
        }
        pthread_mutex_unlock(&op->lock);
        if (op->d.storage != NULL && pthread_mutex_trylock(op->d.slots_lock) == 0) {
            /* writers whose slice could not be opened (full disk), or a missed change */
            sd_storage_sync_slices(op->d.storage);
            pthread_mutex_unlock(op->d.slots_lock);
        }
        if (op->d.tables != NULL) { /* storage-coordinator: the files of its sinks */
            sd_operator_sinks_changed(op, NULL);
        }
        sd__slices(op, sd_now_ms()); /* closing -> uploading (coordinator), uploads (reader) */
        if (op->d.tables != NULL) {  /* storage-coordinator: imports, cleanup */
            sd__files(op, sd_now_ms());
            sd__cleanup(op, sd_now_ms());
        }
        pthread_mutex_lock(&op->lock);
    }
    pthread_mutex_unlock(&op->lock);
    return NULL;
}

/* Reads every key the operator uses (reference staging/target operator, retry and
 * metadataCleanup configs). */
static void sd__operator_config(const struct sd_config *cfg, struct sd_operator_config *c)
{
    sd_config_fill(cfg, &sd_operator_config_bindings, c);
    c->check_ms = INT64_MAX;
    for (size_t i = 0; i < sizeof(c->check_intervals_ms) / sizeof(c->check_intervals_ms[0]); i++) {
        if (c->check_intervals_ms[i] < c->check_ms) {
            c->check_ms = c->check_intervals_ms[i];
        }
    }
}

int sd_operator_start(const struct sd_config *cfg, const struct sd_operator_deps *deps,
                      struct sd_operator **out)
{
    struct sd_operator *op = sd_xcalloc(1, sizeof(*op));
    int rc;

    op->d = *deps;
    op->config = cfg;
    sd__operator_config(cfg, &op->cfg);
    op->files.assignment_count = op->cfg.assignment_count;
    op->files.preferred_types = (const char *const *)op->cfg.preferred_types.items;
    op->files.npreferred = op->cfg.preferred_types.n;
    op->files.compression = op->cfg.compression;
    op->sink_errors = json_object();
    pthread_mutex_init(&op->files_lock, NULL);
    op->steps = sd_bounded_create();
    /* the reference's first cleanup runs at once, then every interval */
    op->next_cleanup_ms = sd_now_ms();
    pthread_mutex_init(&op->lock, NULL);
    sd_cond_init_monotonic(&op->cond);
    op->is_running = 1;
    rc = pthread_create(&op->thread, NULL, sd__operator_main, op);
    if (rc != 0) {
        pthread_mutex_destroy(&op->lock);
        pthread_cond_destroy(&op->cond);
        pthread_mutex_destroy(&op->files_lock);
        json_decref(op->sink_errors);
        sd_bounded_destroy(op->steps);
        free(op);
        return -rc;
    }
    *out = op;
    return 0;
}

void sd_operator_kick(struct sd_operator *op)
{
    pthread_mutex_lock(&op->lock);
    op->is_kicked = 1;
    pthread_cond_signal(&op->cond);
    pthread_mutex_unlock(&op->lock);
}

void sd_operator_stop(struct sd_operator *op)
{
    if (op == NULL) {
        return;
    }
    pthread_mutex_lock(&op->lock);
    op->is_running = 0;
    pthread_cond_signal(&op->cond);
    pthread_mutex_unlock(&op->lock);
    pthread_join(op->thread, NULL);
    sd_bounded_destroy(op->steps); /* abandoned steps use staging, tables and storage */
    pthread_mutex_destroy(&op->lock);
    pthread_cond_destroy(&op->cond);
    pthread_mutex_destroy(&op->files_lock);
    json_decref(op->sink_errors);
    free(op);
}
