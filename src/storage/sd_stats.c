/* sd_stats.c: sums of slice statistics per object and level, the reset markers, and the file
 * listing with per-file statistics behind the statistics endpoints.
 *
 * DESIGN: stateless functions over the state store. Each read is one transaction made of
 * RANGE_PREFIX (and GET) ops, so the three levels and the reset marker come from one revision:
 * a slice whose statistics move from local to staging between two reads can neither vanish nor
 * count twice. Values are summed while parsing; nothing is cached. Stored values that do not
 * parse are skipped (statistics are advisory; a damaged key must not break the endpoint).
 * Failures are returned, never logged: the API layer decides. */
#include "storage/sd_stats.h"
#include "core/sd_alloc.h"
#include "core/sd_error.h"
#include "core/sd_time.h"
#include "state/sd_state.h"

#include <stdlib.h>
#include <string.h>

#define SD_STATS_MAX_RESET 100

static const char *const sd_level_names[SD_STATS_NLEVELS] = {"local", "staging", "target"};

const char *sd_stats_level_name(enum sd_stats_level level)
{
    return (unsigned)level < SD_STATS_NLEVELS ? sd_level_names[level] : "";
}

void sd_stats_add(struct sd_stats_value *dst, const struct sd_stats_value *v)
{
    dst->records += v->records;
    dst->uncompressed_bytes += v->uncompressed_bytes;
    dst->compressed_bytes += v->compressed_bytes;
    dst->staging_bytes += v->staging_bytes;
    if (v->first_record_ms > 0 &&
        (dst->first_record_ms == 0 || v->first_record_ms < dst->first_record_ms)) {
        dst->first_record_ms = v->first_record_ms;
    }
    if (v->last_record_ms > dst->last_record_ms) {
        dst->last_record_ms = v->last_record_ms;
    }
}

static int64_t sd__sat_sub(int64_t a, int64_t b)
{
    return b >= a ? 0 : a - b;
}

void sd_stats_sub(struct sd_stats_value *dst, const struct sd_stats_value *v)
{
    dst->records = sd__sat_sub(dst->records, v->records);
    dst->uncompressed_bytes = sd__sat_sub(dst->uncompressed_bytes, v->uncompressed_bytes);
    dst->compressed_bytes = sd__sat_sub(dst->compressed_bytes, v->compressed_bytes);
    dst->staging_bytes = sd__sat_sub(dst->staging_bytes, v->staging_bytes);
    if (dst->records == 0) {
        dst->first_record_ms = 0;
        dst->last_record_ms = 0;
    }
}

static int64_t sd__nonneg(const json_t *j, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(j, key));
    return v > 0 ? (int64_t)v : 0;
}

static int sd__time_member(const json_t *j, const char *key, int64_t *out)
{
    json_t *v = json_object_get(j, key);

    *out = 0;
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_string(v) || sd_time_parse_iso(json_string_value(v), out) != 0) {
        return SD_EPARSE;
    }
    return 0;
}

static int sd__from_json(const json_t *j, struct sd_stats_value *out)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j)) {
        return SD_EPARSE;
    }
    if (sd__time_member(j, "firstRecordAt", &out->first_record_ms) != 0 ||
        sd__time_member(j, "lastRecordAt", &out->last_record_ms) != 0) {
        memset(out, 0, sizeof(*out));
        return SD_EPARSE;
    }
    out->records = sd__nonneg(j, "recordsCount");
    out->uncompressed_bytes = sd__nonneg(j, "uncompressedSize");
    out->compressed_bytes = sd__nonneg(j, "compressedSize");
    out->staging_bytes = sd__nonneg(j, "stagingSize");
    return 0;
}

int sd_stats_parse(const char *text, size_t len, struct sd_stats_value *out)
{
    json_t *j = json_loadb(text, len, 0, NULL);
    int rc = sd__from_json(j, out);

    json_decref(j);
    return rc;
}

static void sd__set_times(json_t *j, const struct sd_stats_value *v)
{
    char ts[SD_TIME_ISO_LEN + 1];

    if (v->first_record_ms > 0) {
        sd_time_format_iso(v->first_record_ms, ts);
        json_object_set_new(j, "firstRecordAt", json_string(ts));
    }
    if (v->last_record_ms > 0) {
        sd_time_format_iso(v->last_record_ms, ts);
        json_object_set_new(j, "lastRecordAt", json_string(ts));
    }
}

json_t *sd_stats_to_json(const struct sd_stats_value *v)
{
    json_t *j = json_object();

    sd__set_times(j, v);
    json_object_set_new(j, "recordsCount", json_integer(v->records));
    json_object_set_new(j, "uncompressedSize", json_integer(v->uncompressed_bytes));
    json_object_set_new(j, "compressedSize", json_integer(v->compressed_bytes));
    json_object_set_new(j, "stagingSize", json_integer(v->staging_bytes));
    return j;
}

json_t *sd_stats_level_json(const struct sd_stats_value *v)
{
    json_t *j = json_object();

    sd__set_times(j, v);
    json_object_set_new(j, "recordsCount", json_integer(v->records));
    json_object_set_new(j, "compressedSize", json_integer(v->compressed_bytes));
    json_object_set_new(j, "uncompressedSize", json_integer(v->uncompressed_bytes));
    return j;
}

json_t *sd_stats_agg_json(const struct sd_stats_agg *a)
{
    json_t *out = json_object();
    json_t *levels = json_object();

    for (int i = 0; i < SD_STATS_NLEVELS; i++) {
        if (a->levels[i].records > 0) {
            json_object_set_new(levels, sd_level_names[i], sd_stats_level_json(&a->levels[i]));
        }
    }
    json_object_set_new(out, "total", sd_stats_level_json(&a->total));
    json_object_set_new(out, "levels", levels);
    return out;
}

/* Adds every parsable value of kvs to *sum. */
static void sd__sum_kvs(const struct sd_kvs *kvs, struct sd_stats_value *sum)
{
    struct sd_stats_value v;

    for (size_t i = 0; i < kvs->n; i++) {
        if (sd_stats_parse(kvs->items[i].value, kvs->items[i].value_len, &v) == 0) {
            sd_stats_add(sum, &v);
        }
    }
}

/* Recomputes a->total from the levels. */
static void sd__agg_total(struct sd_stats_agg *a)
{
    memset(&a->total, 0, sizeof(a->total));
    for (int i = 0; i < SD_STATS_NLEVELS; i++) {
        sd_stats_add(&a->total, &a->levels[i]);
    }
}

static char *sd__level_prefix(int level, const char *object_key)
{
    return sd_xasprintf("storage/stats/%s/%s/", sd_level_names[level], object_key);
}

static char *sd__reset_key(const char *sink_key)
{
    return sd_xasprintf("storage/stats/reset/%s", sink_key);
}

int sd_stats_sum_prefix(struct sd_state *st, const char *prefix, struct sd_stats_value *out)
{
    struct sd_kvs kvs;
    int rc;

    memset(out, 0, sizeof(*out));
    memset(&kvs, 0, sizeof(kvs));
    rc = sd_state_range(st, prefix, 0, &kvs);
    if (rc == 0) {
        sd__sum_kvs(&kvs, out);
    }
    sd_kvs_free(&kvs);
    return rc;
}

/* Parses a reset marker {resetAt, levels:{<level>: value}}. */
static int sd__parse_reset(const struct sd_kv *kv, struct sd_stats_reset *out)
{
    json_t *j = json_loadb(kv->value, kv->value_len, 0, NULL);
    json_t *levels;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(j) || sd__time_member(j, "resetAt", &out->reset_at_ms) != 0) {
        rc = SD_ECORRUPT;
        goto out;
    }
    levels = json_object_get(j, "levels");
    for (int i = 0; i < SD_STATS_NLEVELS; i++) {
        json_t *v = json_object_get(levels, sd_level_names[i]);
        if (v != NULL && sd__from_json(v, &out->levels[i]) != 0) {
            rc = SD_ECORRUPT;
            goto out;
        }
    }

out:
    if (rc != 0) {
        memset(out, 0, sizeof(*out));
    }
    json_decref(j);
    return rc;
}

/* Reads the three level ranges of object_key (and, when reset_key is set, that key) in one
 * transaction. */
static int sd__read_levels(struct sd_state *st, const char *object_key, const char *reset_key,
                           struct sd_txn_result *res)
{
    struct sd_op ops[SD_STATS_NLEVELS + 1];
    char *prefixes[SD_STATS_NLEVELS];
    struct sd_txn txn;
    size_t n = 0;
    int rc;

    memset(ops, 0, sizeof(ops));
    for (int i = 0; i < SD_STATS_NLEVELS; i++) {
        prefixes[i] = sd__level_prefix(i, object_key);
        ops[n].type = SD_OP_RANGE_PREFIX;
        ops[n++].key = prefixes[i];
    }
    if (reset_key != NULL) {
        ops[n].type = SD_OP_GET;
        ops[n++].key = reset_key;
    }
    memset(&txn, 0, sizeof(txn));
    txn.then_ops = ops;
    txn.nthen = n;
    rc = sd_state_txn(st, &txn, res);
    if (rc == 0 && res->nreads != n) {
        sd_txn_result_free(res);
        rc = SD_ECORRUPT;
    }
    for (int i = 0; i < SD_STATS_NLEVELS; i++) {
        free(prefixes[i]);
    }
    return rc;
}

int sd_stats_reset_get(struct sd_state *st, const char *sink_key, struct sd_stats_reset *out)
{
    char *key = sd__reset_key(sink_key);
    struct sd_kv kv;
    int rc;

    memset(out, 0, sizeof(*out));
    memset(&kv, 0, sizeof(kv));
    rc = sd_state_get(st, key, &kv);
    if (rc == 0) {
        rc = sd__parse_reset(&kv, out);
    } else if (rc == SD_ENOTFOUND) {
        rc = 0;
    }
    sd_kv_free(&kv);
    free(key);
    return rc;
}

int sd_stats_sink(struct sd_state *st, const char *sink_key, struct sd_stats_agg *out)
{
    char *reset_key = sd__reset_key(sink_key);
    struct sd_txn_result res;
    struct sd_stats_reset reset;
    int rc;

    memset(out, 0, sizeof(*out));
    memset(&res, 0, sizeof(res));
    memset(&reset, 0, sizeof(reset));
    rc = sd__read_levels(st, sink_key, reset_key, &res);
    if (rc != 0) {
        goto out;
    }
    if (res.reads[SD_STATS_NLEVELS].n == 1) {
        rc = sd__parse_reset(&res.reads[SD_STATS_NLEVELS].items[0], &reset);
        if (rc != 0) {
            goto out;
        }
    }
    for (int i = 0; i < SD_STATS_NLEVELS; i++) {
        sd__sum_kvs(&res.reads[i], &out->levels[i]);
        sd_stats_sub(&out->levels[i], &reset.levels[i]);
    }
    sd__agg_total(out);

out:
    if (rc != 0) {
        memset(out, 0, sizeof(*out));
    }
    sd_txn_result_free(&res);
    free(reset_key);
    return rc;
}

int sd_stats_file(struct sd_state *st, const char *file_key, struct sd_stats_agg *out)
{
    struct sd_txn_result res;
    int rc;

    memset(out, 0, sizeof(*out));
    memset(&res, 0, sizeof(res));
    rc = sd__read_levels(st, file_key, NULL, &res);
    if (rc == 0) {
        for (int i = 0; i < SD_STATS_NLEVELS; i++) {
            sd__sum_kvs(&res.reads[i], &out->levels[i]);
        }
        sd__agg_total(out);
    }
    sd_txn_result_free(&res);
    return rc;
}

void sd_stats_files_fini(struct sd_stats_files *f)
{
    if (f == NULL) {
        return;
    }
    for (size_t i = 0; i < f->n; i++) {
        free(f->items[i].key);
        json_decref(f->items[i].entity);
        json_decref(f->items[i].failing_slice);
    }
    free(f->items);
    memset(f, 0, sizeof(*f));
}

/* Finds the file whose key ends in "/<id>" (id = the file's openedAt segment). Files are sorted
 * by key and share the sink prefix of skip bytes, so their ids are sorted too. */
static struct sd_stats_file *sd__find_file(struct sd_stats_files *f, size_t skip, const char *id,
                                           size_t id_len)
{
    size_t lo = 0, hi = f->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *k = f->items[mid].key + skip;
        size_t klen = strlen(k);
        int d = memcmp(k, id, klen < id_len ? klen : id_len);
        if (d == 0) {
            d = klen < id_len ? -1 : klen > id_len ? 1 : 0;
        }
        if (d == 0) {
            return &f->items[mid];
        }
        if (d < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

/* Adds the statistics of one level range to the files they belong to. */
static void sd__add_to_files(struct sd_stats_files *f, const struct sd_kvs *kvs, size_t prefix_len,
                             size_t sink_skip, int level)
{
    struct sd_stats_value v;

    for (size_t i = 0; i < kvs->n; i++) {
        const char *rest = kvs->items[i].key + prefix_len;
        const char *slash = strchr(rest, '/');
        struct sd_stats_file *file;
        if (slash == NULL) {
            continue;
        }
        file = sd__find_file(f, sink_skip, rest, (size_t)(slash - rest));
        if (file != NULL && sd_stats_parse(kvs->items[i].value, kvs->items[i].value_len, &v) == 0) {
            sd_stats_add(&file->agg.levels[level], &v);
        }
    }
}

/* Keeps, for each file, its slice with the most failed upload attempts that is still waiting to
 * be uploaded. Slice keys are "<sinkKey>/<fileId>/<volume>/<sliceId>" past the prefix. */
static void sd__add_failing_slices(struct sd_stats_files *f, const struct sd_kvs *kvs,
                                   size_t prefix_len, size_t sink_skip)
{
    for (size_t i = 0; i < kvs->n; i++) {
        const char *rest = kvs->items[i].key + prefix_len + sink_skip;
        const char *slash = strchr(rest, '/');
        struct sd_stats_file *file;
        json_t *slice;
        const char *state;
        if (slash == NULL ||
            (file = sd__find_file(f, sink_skip, rest, (size_t)(slash - rest))) == NULL) {
            continue;
        }
        slice = json_loadb(kvs->items[i].value, kvs->items[i].value_len, 0, NULL);
        state = json_string_value(json_object_get(slice, "state"));
        if (state != NULL && strcmp(state, "uploading") == 0 &&
            json_integer_value(json_object_get(slice, "retryAttempt")) >
                json_integer_value(json_object_get(file->failing_slice, "retryAttempt"))) {
            json_decref(file->failing_slice);
            file->failing_slice = json_incref(slice);
        }
        json_decref(slice);
    }
}

int sd_stats_sink_files(struct sd_state *st, const char *sink_key, struct sd_stats_files *out)
{
    char *files_prefix = sd_xasprintf("storage/file/all/%s/", sink_key);
    char *slices_prefix = sd_xasprintf("storage/slice/all/%s/", sink_key);
    char *prefixes[SD_STATS_NLEVELS];
    char *reset_key = sd__reset_key(sink_key);
    struct sd_op ops[SD_STATS_NLEVELS + 3];
    struct sd_txn txn;
    struct sd_txn_result res;
    const struct sd_kvs *files_kvs;
    size_t n = 0, file_skip = strlen("storage/file/all/"), sink_skip = strlen(sink_key) + 1;
    int rc;

    memset(out, 0, sizeof(*out));
    memset(&res, 0, sizeof(res));
    memset(ops, 0, sizeof(ops));
    ops[n].type = SD_OP_RANGE_PREFIX;
    ops[n++].key = files_prefix;
    for (int i = 0; i < SD_STATS_NLEVELS; i++) {
        prefixes[i] = sd__level_prefix(i, sink_key);
        ops[n].type = SD_OP_RANGE_PREFIX;
        ops[n++].key = prefixes[i];
    }
    ops[n].type = SD_OP_RANGE_PREFIX;
    ops[n++].key = slices_prefix;
    ops[n].type = SD_OP_GET;
    ops[n++].key = reset_key;
    memset(&txn, 0, sizeof(txn));
    txn.then_ops = ops;
    txn.nthen = n;
    rc = sd_state_txn(st, &txn, &res);
    if (rc == 0 && res.nreads != n) {
        rc = SD_ECORRUPT;
    }
    if (rc != 0) {
        goto out;
    }
    if (res.reads[n - 1].n == 1) {
        rc = sd__parse_reset(&res.reads[n - 1].items[0], &out->reset);
        if (rc != 0) {
            goto out;
        }
    }

    files_kvs = &res.reads[0];
    out->items = files_kvs->n ? sd_xcalloc(files_kvs->n, sizeof(out->items[0])) : NULL;
    for (size_t i = 0; i < files_kvs->n; i++) {
        const struct sd_kv *kv = &files_kvs->items[i];
        const char *key = kv->key + file_skip;
        struct sd_stats_file *file;
        json_t *entity;
        int64_t opened = 0;
        if (strchr(key + sink_skip, '/') != NULL) {
            continue; /* not a file entity of this sink */
        }
        entity = json_loadb(kv->value, kv->value_len, 0, NULL);
        if (!json_is_object(entity) ||
            (sd_time_parse_iso(json_string_value(json_object_get(entity, "openedAt")) ?: "",
                               &opened) != 0 &&
             sd_time_parse_iso(key + sink_skip, &opened) != 0)) {
            json_decref(entity);
            continue; /* unreadable entity */
        }
        if (out->reset.reset_at_ms > 0 && opened <= out->reset.reset_at_ms) {
            json_decref(entity);
            continue; /* hidden by the last reset */
        }
        file = &out->items[out->n++];
        file->key = sd_xstrdup(key);
        file->entity = entity;
        file->opened_at_ms = opened;
    }
    for (int i = 0; i < SD_STATS_NLEVELS; i++) {
        sd__add_to_files(out, &res.reads[1 + i], strlen(prefixes[i]), sink_skip, i);
    }
    sd__add_failing_slices(out, &res.reads[n - 2], strlen("storage/slice/all/"), sink_skip);
    for (size_t i = 0; i < out->n; i++) {
        sd__agg_total(&out->items[i].agg);
    }

out:
    if (rc != 0) {
        sd_stats_files_fini(out);
    }
    sd_txn_result_free(&res);
    for (int i = 0; i < SD_STATS_NLEVELS; i++) {
        free(prefixes[i]);
    }
    free(files_prefix);
    free(slices_prefix);
    free(reset_key);
    return rc;
}

int sd_stats_reset(struct sd_state *st, const char *const *sink_keys, size_t n, int64_t now_ms)
{
    struct sd_op ops[SD_STATS_MAX_RESET];
    char *keys[SD_STATS_MAX_RESET];
    char *texts[SD_STATS_MAX_RESET];
    char ts[SD_TIME_ISO_LEN + 1];
    struct sd_txn txn;
    struct sd_txn_result res;
    int rc;

    if (n == 0) {
        return 0;
    }
    if (n > SD_STATS_MAX_RESET) {
        return SD_ELIMIT;
    }
    memset(ops, 0, sizeof(ops));
    memset(texts, 0, sizeof(texts));
    memset(&res, 0, sizeof(res));
    for (size_t i = 0; i < n; i++) {
        keys[i] = sd__level_prefix(SD_STATS_TARGET, sink_keys[i]);
        ops[i].type = SD_OP_RANGE_PREFIX;
        ops[i].key = keys[i];
    }
    memset(&txn, 0, sizeof(txn));
    txn.then_ops = ops;
    txn.nthen = n;
    rc = sd_state_txn(st, &txn, &res);
    if (rc == 0 && res.nreads != n) {
        rc = SD_ECORRUPT;
    }
    for (size_t i = 0; i < n; i++) {
        free(keys[i]);
        keys[i] = NULL;
    }
    if (rc != 0) {
        goto out;
    }

    sd_time_format_iso(now_ms, ts);
    memset(ops, 0, sizeof(ops));
    for (size_t i = 0; i < n; i++) {
        struct sd_stats_value sum;
        json_t *marker, *levels;
        memset(&sum, 0, sizeof(sum));
        sd__sum_kvs(&res.reads[i], &sum);
        levels = json_object();
        json_object_set_new(levels, sd_level_names[SD_STATS_TARGET], sd_stats_to_json(&sum));
        marker = json_object();
        json_object_set_new(marker, "resetAt", json_string(ts));
        json_object_set_new(marker, "levels", levels);
        texts[i] = json_dumps(marker, JSON_COMPACT);
        json_decref(marker);
        if (texts[i] == NULL) {
            abort(); /* out of memory */
        }
        keys[i] = sd__reset_key(sink_keys[i]);
        ops[i].type = SD_OP_PUT;
        ops[i].key = keys[i];
        ops[i].value = texts[i];
        ops[i].value_len = strlen(texts[i]);
    }
    sd_txn_result_free(&res);
    memset(&txn, 0, sizeof(txn));
    txn.then_ops = ops;
    txn.nthen = n;
    rc = sd_state_txn(st, &txn, &res);
    for (size_t i = 0; i < n; i++) {
        free(keys[i]);
        free(texts[i]);
    }

out:
    sd_txn_result_free(&res);
    return rc;
}
