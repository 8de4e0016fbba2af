/* test_conditions.c: unit tests of storage/sd_conditions: the slice-upload and file-import
 * rotation conditions in the reference's order, including the staging-expiration trigger
 * (storage.level.target.import.trigger.expiration) and maxSlices overriding minInterval. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>

#include "storage/sd_conditions.h"

#define MIN_MS (60 * 1000)

static json_t *settings(void)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                     "storage.level.staging.upload.minInterval", (json_int_t)10000,
                     "storage.level.staging.upload.trigger.count", (json_int_t)100,
                     "storage.level.staging.upload.trigger.size", (json_int_t)5000,
                     "storage.level.staging.upload.trigger.interval", (json_int_t)30000,
                     "storage.level.target.import.minInterval", (json_int_t)MIN_MS,
                     "storage.level.target.import.maxSlices", (json_int_t)100,
                     "storage.level.target.import.trigger.count", (json_int_t)1000,
                     "storage.level.target.import.trigger.size", (json_int_t)50000,
                     "storage.level.target.import.trigger.interval", (json_int_t)(5 * MIN_MS),
                     "storage.level.target.import.trigger.slicesCount", (json_int_t)50);
}

static void test_upload(void **state)
{
    json_t *s = settings();

    (void)state;
    assert_false(sd_should_upload(s, 9999, 0, 500, 0));  /* before minInterval */
    assert_false(sd_should_upload(s, 60000, 0, 0, 0));   /* empty */
    assert_true(sd_should_upload(s, 10000, 0, 100, 0));  /* count */
    assert_true(sd_should_upload(s, 10000, 0, 1, 5000)); /* size */
    assert_false(sd_should_upload(s, 29999, 0, 1, 10));  /* nothing met */
    assert_true(sd_should_upload(s, 30000, 0, 1, 10));   /* interval */
    json_decref(s);
}

static void test_import_expiration(void **state)
{
    json_t *s = settings();
    struct sd_file_totals t = {1, 1, 10};
    int64_t now = 2 * MIN_MS, threshold = 30 * MIN_MS;

    (void)state;
    /* no expiration (local staging): only the ordinary triggers */
    assert_int_equal(sd_should_import(s, now, 0, 0, threshold, &t), SD_IMPORT_NONE);
    /* credentials expire in 31 min: not yet; in 30 min: import now */
    assert_int_equal(sd_should_import(s, now, 0, now + 31 * MIN_MS, threshold, &t), SD_IMPORT_NONE);
    assert_int_equal(sd_should_import(s, now, 0, now + 30 * MIN_MS + 999, threshold, &t),
                     SD_IMPORT_EXPIRATION);
    /* expiration fires for an empty file too, but not before minInterval */
    t.records = 0;
    assert_int_equal(sd_should_import(s, now, 0, now + MIN_MS, threshold, &t),
                     SD_IMPORT_EXPIRATION);
    assert_int_equal(sd_should_import(s, MIN_MS - 1, 0, MIN_MS, threshold, &t), SD_IMPORT_NONE);
    assert_string_equal(sd_import_cause_name(SD_IMPORT_EXPIRATION), "expiration");
    json_decref(s);
}

static void test_import_order(void **state)
{
    json_t *s = settings();
    struct sd_file_totals t = {100, 0, 0};

    (void)state;
    /* maxSlices overrides minInterval */
    assert_int_equal(sd_should_import(s, 0, 0, 0, 0, &t), SD_IMPORT_MAX_SLICES);
    t.slices = 50;
    assert_int_equal(sd_should_import(s, MIN_MS, 0, 0, 0, &t), SD_IMPORT_SLICES_COUNT);
    t.slices = 1;
    assert_int_equal(sd_should_import(s, 10 * MIN_MS, 0, 0, 0, &t), SD_IMPORT_NONE); /* empty */
    t.records = 1000;
    assert_int_equal(sd_should_import(s, MIN_MS, 0, 0, 0, &t), SD_IMPORT_COUNT);
    t.records = 1;
    t.compressed_bytes = 50000;
    assert_int_equal(sd_should_import(s, MIN_MS, 0, 0, 0, &t), SD_IMPORT_SIZE);
    t.compressed_bytes = 1;
    assert_int_equal(sd_should_import(s, 5 * MIN_MS - 1, 0, 0, 0, &t), SD_IMPORT_NONE);
    assert_int_equal(sd_should_import(s, 5 * MIN_MS, 0, 0, 0, &t), SD_IMPORT_TIME);
    json_decref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upload),
        cmocka_unit_test(test_import_expiration),
        cmocka_unit_test(test_import_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
