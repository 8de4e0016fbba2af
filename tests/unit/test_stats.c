/* test_stats.c: unit tests of storage/sd_stats: value arithmetic (saturating subtraction,
 * timestamps), parsing and JSON forms, prefix sums per level, sink totals with a reset, the
 * file listing with per-file statistics and the hiding of files opened before a reset.
 *
 * DESIGN: single-threaded cmocka runner; each test opens a fresh embedded state store in its
 * own temp directory (under $SD_TEST_TMPDIR, else /tmp) and removes it at the end. Statistics
 * and file entities are written directly with the keys the storage layer uses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_tmpdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sd_error.h"
#include "core/sd_fs.h"
#include "core/sd_time.h"
#include "state/sd_state.h"
#include "storage/sd_stats.h"

#define SINK "1/1/src/snk"
#define FILE_A "2024-01-01T10:00:00.000Z"
#define FILE_B "2024-01-01T11:00:00.000Z"
#define T0 "2024-01-01T10:00:01.000Z"
#define T1 "2024-01-01T10:30:00.000Z"
#define T2 "2024-01-01T11:00:05.000Z"

struct fixture {
    char dir[512];
    struct sd_state *st;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    sd_test_mkdtemp(fx->dir, sizeof(fx->dir), "sd-stats");
    assert_int_equal(sd_state_open_backend("embedded", NULL, fx->dir, &fx->st), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    sd_state_close(fx->st);
    sd_rm_rf(fx->dir);
    free(fx);
    return 0;
}

static void put(struct sd_state *st, const char *key, const char *value)
{
    assert_int_equal(sd_state_put(st, key, value, strlen(value), 0, NULL), 0);
}

/* Writes the statistics of one slice and node at a level. */
static void put_stats(struct sd_state *st, const char *level, const char *file, const char *slice,
                      const char *node, int64_t records, int64_t compressed, const char *first,
                      const char *last)
{
    char key[256], value[512];

    snprintf(key, sizeof(key), "storage/stats/%s/%s/%s/vol1/%s/%s", level, SINK, file, slice, node);
    snprintf(value, sizeof(value),
             "{\"firstRecordAt\":\"%s\",\"lastRecordAt\":\"%s\",\"recordsCount\":%lld,"
             "\"uncompressedSize\":%lld,\"compressedSize\":%lld}",
             first, last, (long long)records, (long long)(records * 10), (long long)compressed);
    put(st, key, value);
}

static void put_file(struct sd_state *st, const char *file, const char *json)
{
    char key[256];

    snprintf(key, sizeof(key), "storage/file/all/%s/%s", SINK, file);
    put(st, key, json);
}

static int64_t ms(const char *iso)
{
    int64_t v = 0;

    assert_int_equal(sd_time_parse_iso(iso, &v), 0);
    return v;
}

static void test_add_sub(void **state)
{
    struct sd_stats_value a = {ms(T1), ms(T1), 5, 50, 20, 20};
    struct sd_stats_value b = {ms(T0), ms(T2), 3, 30, 10, 0};
    struct sd_stats_value zero = {0, 0, 0, 0, 0, 0};

    (void)state;
    sd_stats_add(&a, &b);
    assert_int_equal(a.records, 8);
    assert_int_equal(a.uncompressed_bytes, 80);
    assert_int_equal(a.compressed_bytes, 30);
    assert_int_equal(a.staging_bytes, 20);
    assert_int_equal(a.first_record_ms, ms(T0));
    assert_int_equal(a.last_record_ms, ms(T2));
    /* unknown timestamps (0) never win */
    sd_stats_add(&a, &zero);
    assert_int_equal(a.first_record_ms, ms(T0));
    assert_int_equal(a.last_record_ms, ms(T2));

    sd_stats_sub(&a, &b);
    assert_int_equal(a.records, 5);
    assert_int_equal(a.compressed_bytes, 20);
    assert_int_equal(a.first_record_ms, ms(T0)); /* kept while records remain */
    /* saturating at 0, and no timestamps without records */
    b.records = 100;
    b.compressed_bytes = 1000;
    sd_stats_sub(&a, &b);
    assert_int_equal(a.records, 0);
    assert_int_equal(a.compressed_bytes, 0);
    assert_int_equal(a.uncompressed_bytes, 20);
    assert_int_equal(a.first_record_ms, 0);
    assert_int_equal(a.last_record_ms, 0);
}

static void test_parse_and_json(void **state)
{
    static const char text[] = "{\"firstRecordAt\":\"" T0 "\",\"lastRecordAt\":\"" T1 "\","
                               "\"recordsCount\":7,\"uncompressedSize\":70,"
                               "\"compressedSize\":33,\"stagingSize\":33}";
    struct sd_stats_value v, back;
    json_t *j;
    char *dumped;

    (void)state;
    assert_int_equal(sd_stats_parse(text, strlen(text), &v), 0);
    assert_int_equal(v.records, 7);
    assert_int_equal(v.uncompressed_bytes, 70);
    assert_int_equal(v.compressed_bytes, 33);
    assert_int_equal(v.staging_bytes, 33);
    assert_int_equal(v.first_record_ms, ms(T0));
    assert_int_equal(v.last_record_ms, ms(T1));

    /* stored form round-trips */
    j = sd_stats_to_json(&v);
    dumped = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    assert_int_equal(sd_stats_parse(dumped, strlen(dumped), &back), 0);
    free(dumped);
    assert_memory_equal(&v, &back, sizeof(v));

    /* the API Level: no stagingSize, timestamps only when known */
    j = sd_stats_level_json(&v);
    assert_string_equal(json_string_value(json_object_get(j, "firstRecordAt")), T0);
    assert_int_equal(json_integer_value(json_object_get(j, "recordsCount")), 7);
    assert_int_equal(json_integer_value(json_object_get(j, "compressedSize")), 33);
    assert_int_equal(json_integer_value(json_object_get(j, "uncompressedSize")), 70);
    assert_null(json_object_get(j, "stagingSize"));
    json_decref(j);
    memset(&v, 0, sizeof(v));
    j = sd_stats_level_json(&v);
    assert_null(json_object_get(j, "firstRecordAt"));
    assert_null(json_object_get(j, "lastRecordAt"));
    assert_int_equal(json_object_size(j), 3);
    json_decref(j);

    /* missing members are 0; garbage is rejected */
    assert_int_equal(sd_stats_parse("{}", 2, &v), 0);
    assert_int_equal(v.records, 0);
    assert_int_equal(sd_stats_parse("[1]", 3, &v), SD_EPARSE);
    assert_int_equal(sd_stats_parse("{\"firstRecordAt\":\"x\"}", 21, &v), SD_EPARSE);
}

static void test_sum_prefix_and_levels(void **state)
{
    struct fixture *fx = *state;
    struct sd_stats_value sum;
    struct sd_stats_agg agg;
    json_t *j, *levels;

    put_stats(fx->st, "local", FILE_B, T2, "node1", 4, 40, T2, T2);
    put_stats(fx->st, "local", FILE_B, T2, "node2", 1, 10, T2, T2);
    put_stats(fx->st, "staging", FILE_A, T1, "node1", 10, 100, T1, T1);
    put_stats(fx->st, "target", FILE_A, T0, "node1", 20, 200, T0, T1);
    /* another sink whose id shares the prefix must not count */
    put(fx->st, "storage/stats/target/" SINK "x/" FILE_A "/vol1/" T0 "/node1",
        "{\"recordsCount\":1000}");
    /* a damaged value is skipped */
    put(fx->st, "storage/stats/target/" SINK "/" FILE_A "/vol1/" T1 "/node9", "not json");

    assert_int_equal(sd_stats_sum_prefix(fx->st, "storage/stats/local/" SINK "/", &sum), 0);
    assert_int_equal(sum.records, 5);
    assert_int_equal(sum.compressed_bytes, 50);

    assert_int_equal(sd_stats_sink(fx->st, SINK, &agg), 0);
    assert_int_equal(agg.levels[SD_STATS_LOCAL].records, 5);
    assert_int_equal(agg.levels[SD_STATS_STAGING].records, 10);
    assert_int_equal(agg.levels[SD_STATS_TARGET].records, 20);
    assert_int_equal(agg.total.records, 35);
    assert_int_equal(agg.total.compressed_bytes, 350);
    assert_int_equal(agg.total.uncompressed_bytes, 350);
    assert_int_equal(agg.total.first_record_ms, ms(T0));
    assert_int_equal(agg.total.last_record_ms, ms(T2));

    assert_int_equal(sd_stats_file(fx->st, SINK "/" FILE_A, &agg), 0);
    assert_int_equal(agg.levels[SD_STATS_LOCAL].records, 0);
    assert_int_equal(agg.total.records, 30);

    /* API form: levels without records are left out, total always present */
    j = sd_stats_agg_json(&agg);
    levels = json_object_get(j, "levels");
    assert_null(json_object_get(levels, "local"));
    assert_non_null(json_object_get(levels, "staging"));
    assert_non_null(json_object_get(levels, "target"));
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "total"), "recordsCount")), 30);
    json_decref(j);

    /* an unknown sink has zero totals */
    assert_int_equal(sd_stats_sink(fx->st, "1/1/src/none", &agg), 0);
    assert_int_equal(agg.total.records, 0);
    j = sd_stats_agg_json(&agg);
    assert_int_equal(json_object_size(json_object_get(j, "levels")), 0);
    json_decref(j);
}

static void test_reset(void **state)
{
    struct fixture *fx = *state;
    struct sd_stats_agg agg;
    struct sd_stats_reset reset;
    const char *keys[] = {SINK};

    put_stats(fx->st, "local", FILE_B, T2, "node1", 4, 40, T2, T2);
    put_stats(fx->st, "target", FILE_A, T0, "node1", 20, 200, T0, T1);

    assert_int_equal(sd_stats_reset_get(fx->st, SINK, &reset), 0);
    assert_int_equal(reset.reset_at_ms, 0);
    assert_int_equal(sd_stats_reset(fx->st, keys, 1, ms(T2)), 0);
    assert_int_equal(sd_stats_reset_get(fx->st, SINK, &reset), 0);
    assert_int_equal(reset.reset_at_ms, ms(T2));
    assert_int_equal(reset.levels[SD_STATS_TARGET].records, 20);
    assert_int_equal(reset.levels[SD_STATS_LOCAL].records, 0);

    /* the target level is cleared; data still in flight keeps counting */
    assert_int_equal(sd_stats_sink(fx->st, SINK, &agg), 0);
    assert_int_equal(agg.levels[SD_STATS_TARGET].records, 0);
    assert_int_equal(agg.levels[SD_STATS_TARGET].first_record_ms, 0);
    assert_int_equal(agg.levels[SD_STATS_LOCAL].records, 4);
    assert_int_equal(agg.total.records, 4);

    /* the in-flight slice reaches the target: counted once, totals do not jump */
    assert_int_equal(sd_state_del(fx->st, "storage/stats/local/" SINK "/", 1, NULL, NULL), 0);
    put_stats(fx->st, "target", FILE_B, T2, "node1", 4, 40, T2, T2);
    assert_int_equal(sd_stats_sink(fx->st, SINK, &agg), 0);
    assert_int_equal(agg.levels[SD_STATS_LOCAL].records, 0);
    assert_int_equal(agg.levels[SD_STATS_TARGET].records, 4);
    assert_int_equal(agg.levels[SD_STATS_TARGET].compressed_bytes, 40);
    assert_int_equal(agg.total.records, 4);

    /* a second reset replaces the marker */
    assert_int_equal(sd_stats_reset(fx->st, keys, 1, ms(T2) + 1000), 0);
    assert_int_equal(sd_stats_sink(fx->st, SINK, &agg), 0);
    assert_int_equal(agg.total.records, 0);
    assert_int_equal(agg.total.compressed_bytes, 0);

    /* a damaged marker is reported, not ignored */
    put(fx->st, "storage/stats/reset/" SINK, "{\"resetAt\":5}");
    assert_int_equal(sd_stats_sink(fx->st, SINK, &agg), SD_ECORRUPT);

    /* limits: nothing to do for 0 sinks, at most 100 */
    assert_int_equal(sd_stats_reset(fx->st, keys, 0, 1), 0);
    assert_int_equal(sd_stats_reset(fx->st, keys, 101, 1), SD_ELIMIT);
}

static void test_reset_many_sinks(void **state)
{
    struct fixture *fx = *state;
    struct sd_stats_agg agg;
    const char *keys[] = {SINK, "1/1/src/other"};

    put_stats(fx->st, "target", FILE_A, T0, "node1", 20, 200, T0, T1);
    put(fx->st, "storage/stats/target/1/1/src/other/" FILE_A "/vol1/" T0 "/node1",
        "{\"recordsCount\":3,\"compressedSize\":9}");
    assert_int_equal(sd_stats_reset(fx->st, keys, 2, ms(T2)), 0);
    assert_int_equal(sd_stats_sink(fx->st, SINK, &agg), 0);
    assert_int_equal(agg.total.records, 0);
    assert_int_equal(sd_stats_sink(fx->st, "1/1/src/other", &agg), 0);
    assert_int_equal(agg.total.records, 0);
    assert_int_equal(agg.total.compressed_bytes, 0);
}

static void test_files(void **state)
{
    struct fixture *fx = *state;
    struct sd_stats_files files;
    const char *keys[] = {SINK};

    put_file(fx->st, FILE_A,
             "{\"state\":\"imported\",\"openedAt\":\"" FILE_A "\",\"importedAt\":\"" T1 "\"}");
    put_file(fx->st, FILE_B, "{\"state\":\"writing\",\"openedAt\":\"" FILE_B "\"}");
    /* a slice entity below a file is not a file */
    put(fx->st, "storage/file/all/" SINK "/" FILE_B "/vol1", "{\"state\":\"writing\"}");
    /* a file of another sink whose id shares the prefix */
    put(fx->st, "storage/file/all/" SINK "x/" FILE_A, "{\"state\":\"writing\"}");
    put_stats(fx->st, "target", FILE_A, T0, "node1", 20, 200, T0, T1);
    put_stats(fx->st, "target", FILE_A, T1, "node1", 5, 50, T1, T1);
    put_stats(fx->st, "local", FILE_B, T2, "node1", 4, 40, T2, T2);
    put_stats(fx->st, "staging", FILE_B, T2, "node2", 2, 20, T2, T2);
    /* statistics of a file without an entity are ignored */
    put_stats(fx->st, "target", "2023-01-01T00:00:00.000Z", T0, "node1", 99, 99, T0, T0);

    assert_int_equal(sd_stats_sink_files(fx->st, SINK, &files), 0);
    assert_int_equal(files.n, 2);
    assert_string_equal(files.items[0].key, SINK "/" FILE_A);
    assert_string_equal(files.items[1].key, SINK "/" FILE_B);
    assert_int_equal(files.items[0].opened_at_ms, ms(FILE_A));
    assert_string_equal(json_string_value(json_object_get(files.items[0].entity, "state")),
                        "imported");
    assert_int_equal(files.items[0].agg.levels[SD_STATS_TARGET].records, 25);
    assert_int_equal(files.items[0].agg.total.records, 25);
    assert_int_equal(files.items[0].agg.total.compressed_bytes, 250);
    assert_int_equal(files.items[1].agg.levels[SD_STATS_LOCAL].records, 4);
    assert_int_equal(files.items[1].agg.levels[SD_STATS_STAGING].records, 2);
    assert_int_equal(files.items[1].agg.total.records, 6);
    assert_int_equal(files.reset.reset_at_ms, 0);
    sd_stats_files_fini(&files);
    assert_int_equal(files.n, 0);
    assert_null(files.items);

    /* a reset between the two files hides the older one */
    assert_int_equal(sd_stats_reset(fx->st, keys, 1, ms(FILE_A) + 1), 0);
    assert_int_equal(sd_stats_sink_files(fx->st, SINK, &files), 0);
    assert_int_equal(files.n, 1);
    assert_string_equal(files.items[0].key, SINK "/" FILE_B);
    assert_int_equal(files.items[0].agg.total.records, 6);
    assert_int_equal(files.reset.reset_at_ms, ms(FILE_A) + 1);
    sd_stats_files_fini(&files);

    /* a reset after every file hides them all; an empty sink lists nothing */
    assert_int_equal(sd_stats_reset(fx->st, keys, 1, ms(T2)), 0);
    assert_int_equal(sd_stats_sink_files(fx->st, SINK, &files), 0);
    assert_int_equal(files.n, 0);
    sd_stats_files_fini(&files);
    assert_int_equal(sd_stats_sink_files(fx->st, "1/1/src/none", &files), 0);
    assert_int_equal(files.n, 0);
    sd_stats_files_fini(&files);
    sd_stats_files_fini(NULL);
}

#define FX_TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_sub),      cmocka_unit_test(test_parse_and_json),
        FX_TEST(test_sum_prefix_and_levels), FX_TEST(test_reset),
        FX_TEST(test_reset_many_sinks),      FX_TEST(test_files),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
