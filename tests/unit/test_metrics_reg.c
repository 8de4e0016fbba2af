/* test_metrics_reg.c: the metric registry: series identity, histogram buckets and sums, label
 * escaping, label variants (sd_mreg_with), the cardinality cap with its overflow series, and
 * concurrent updates that lose nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sd_buf.h"
#include "core/sd_metrics_reg.h"

/* The rendered exposition contains line (a whole line). */
static int sd__has_line(const char *text, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = text; (p = strstr(p, line)) != NULL; p += n) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n') {
            return 1;
        }
    }
    return 0;
}

static char *sd__render(void)
{
    struct sd_buf out = SD_BUF_INIT;

    sd_mreg_render(&out, 7, 1024);
    return sd_buf_steal(&out);
}

static void test_histogram_and_counter(void **state)
{
    struct sd_mseries *d = sd_mreg_series(SD_M_SOURCE_RECORD_DURATION, "source_id=\"h\"");
    struct sd_mseries *b = sd_mreg_series(SD_M_SOURCE_IN_BYTES, "source_id=\"h\"");
    char *text;

    (void)state;
    assert_ptr_equal(d, sd_mreg_series(SD_M_SOURCE_RECORD_DURATION, "source_id=\"h\""));
    sd_mreg_observe(d, 0);    /* le="0" */
    sd_mreg_observe(d, 5);    /* bounds are inclusive: le="5" */
    sd_mreg_observe(d, 7.25); /* le="10" */
    sd_mreg_observe(d, 1e9);  /* +Inf only */
    sd_mreg_add(b, 1000);
    sd_mreg_add(b, 24);
    text = sd__render();
    assert_true(sd__has_line(text, "# TYPE keboola_go_stream_source_record_duration_milliseconds "
                                   "histogram"));
    assert_true(sd__has_line(
        text, "keboola_go_stream_source_record_duration_milliseconds_bucket{source_id=\"h\","
              "le=\"0\"} 1"));
    assert_true(sd__has_line(
        text, "keboola_go_stream_source_record_duration_milliseconds_bucket{source_id=\"h\","
              "le=\"5\"} 2"));
    assert_true(sd__has_line(
        text, "keboola_go_stream_source_record_duration_milliseconds_bucket{source_id=\"h\","
              "le=\"10000\"} 3"));
    assert_true(sd__has_line(
        text, "keboola_go_stream_source_record_duration_milliseconds_bucket{source_id=\"h\","
              "le=\"+Inf\"} 4"));
    assert_true(sd__has_line(
        text, "keboola_go_stream_source_record_duration_milliseconds_count{source_id=\"h\"} 4"));
    assert_true(sd__has_line(text, "keboola_go_stream_source_record_duration_milliseconds_sum{"
                                   "source_id=\"h\"} 1000000012.250"));
    assert_true(sd__has_line(text, "# TYPE keboola_go_stream_source_in_bytes_B_total counter"));
    assert_true(sd__has_line(text, "keboola_go_stream_source_in_bytes_B_total{source_id=\"h\"} "
                                   "1024"));
    assert_true(sd__has_line(text, "keboola_go_stream_writer_file_descriptor_used_fd 7"));
    assert_true(sd__has_line(text, "keboola_go_stream_writer_file_descriptor_total_fd 1024"));
    assert_true(sd__has_line(text, "target_info{service_name=\"stream\"} 1"));
    /* a metric without series is left out, as the exporter does */
    assert_null(strstr(text, "jobcleanup"));
    free(text);
}

static void test_labels_escaped_and_variants(void **state)
{
    struct sd_buf b = SD_BUF_INIT;
    struct sd_mseries *ok, *err, *err2;
    char *text;

    (void)state;
    sd_mreg_label_key(&b, 12, 34, "a\"b\\c\nd", "k");
    sd_mreg_label(&b, "error_type", "");
    sd_mreg_label(&b, "sink_type", "table");
    assert_string_equal(sd_buf_cstr(&b),
                        "project_id=\"12\",branch_id=\"34\",source_id=\"a\\\"b\\\\"
                        "c\\nd\",sink_id=\"k\",error_type=\"\",sink_type=\"table\"");
    ok = sd_mreg_series(SD_M_SINK_ENCODED_BYTES, sd_buf_cstr(&b));
    err = sd_mreg_with(ok, "error_type", "insufficientStorage");
    assert_ptr_not_equal(ok, err);
    assert_ptr_equal(sd_mreg_with(ok, "error_type", "insufficientStorage"), err); /* cached */
    assert_ptr_equal(sd_mreg_with(ok, "error_type", ""), ok);
    assert_ptr_equal(sd_mreg_with(ok, "no_such_label", "x"), ok);
    err2 = sd_mreg_with(ok, "error_type", "writeFailed");
    assert_ptr_not_equal(err2, err);
    assert_ptr_equal(sd_mreg_with(ok, "error_type", "insufficientStorage"), err); /* looked up */
    sd_mreg_add(err, 5);
    text = sd__render();
    assert_true(sd__has_line(text, "keboola_go_stream_sink_encoded_bytes_B_total{project_id=\"12\","
                                   "branch_id=\"34\",source_id=\"a\\\"b\\\\c\\nd\",sink_id=\"k\","
                                   "error_type=\"insufficientStorage\",sink_type=\"table\"} 5"));
    free(text);
    sd_buf_fini(&b);
}

static void test_sink_series_from_keys(void **state)
{
    char *text;

    (void)state;
    sd_mreg_operation("sliceupload", "1/2/src/snk/2026-01-01T00:00:00.000Z/vol/x", 12.5, "", 100,
                      -1);
    sd_mreg_operation_failed(SD_M_FILEIMPORT_FAILED, "1/2/src/snk/2026-01-01T00:00:00.000Z", 3);
    sd_mreg_operation("fileimport", "not a key", 1, "other", -1, -1);
    text = sd__render();
    assert_true(sd__has_line(text, "keboola_go_stream_operation_bytes_compressed_B_total{"
                                   "project_id=\"1\",branch_id=\"2\",source_id=\"src\",sink_id="
                                   "\"snk\",error_type=\"\",operation=\"sliceupload\"} 100"));
    assert_null(strstr(text, "keboola_go_stream_operation_bytes_uncompressed_B_total"));
    assert_true(sd__has_line(text, "keboola_go_stream_operation_fileimport_failed_count_sum{"
                                   "project_id=\"1\",branch_id=\"2\",source_id=\"src\",sink_id="
                                   "\"snk\",operation=\"fileimport\"} 3.000"));
    assert_true(sd__has_line(text, "keboola_go_stream_operation_duration_milliseconds_count{"
                                   "project_id=\"-1\",branch_id=\"-1\",source_id=\"?\",sink_id="
                                   "\"?\",error_type=\"other\",operation=\"fileimport\"} 1"));
    free(text);
}

static void test_cardinality_cap(void **state)
{
    char labels[64];
    struct sd_mseries *first = NULL, *over;
    char *text;

    (void)state;
    for (int i = 0; i < SD_MREG_MAX_SERIES; i++) {
        struct sd_mseries *s;
        snprintf(labels, sizeof(labels), "task_type=\"t%d\"", i);
        s = sd_mreg_series(SD_M_TASK_RUNNING, labels);
        first = first ? first : s;
        assert_ptr_equal(sd_mreg_series(SD_M_TASK_RUNNING, labels), s);
    }
    over = sd_mreg_series(SD_M_TASK_RUNNING, "task_type=\"one-too-many\"");
    assert_ptr_equal(sd_mreg_series(SD_M_TASK_RUNNING, "task_type=\"another\""), over);
    assert_ptr_not_equal(over, first);
    /* existing series keep working */
    assert_ptr_equal(sd_mreg_series(SD_M_TASK_RUNNING, "task_type=\"t0\""), first);
    sd_mreg_add(over, 2);
    text = sd__render();
    assert_true(sd__has_line(text, "keboola_go_task_running{otel_metric_overflow=\"true\"} 2"));
    free(text);
}

static void *sd__adder(void *arg)
{
    struct sd_mseries *s = arg;

    for (int i = 0; i < 100000; i++) {
        sd_mreg_observe(s, 1);
    }
    return NULL;
}

static void test_concurrent_updates(void **state)
{
    struct sd_mseries *s = sd_mreg_series(SD_M_SINK_RECORD_DURATION, "sink_id=\"c\"");
    pthread_t t[4];
    char *text;

    (void)state;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, sd__adder, s), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
    }
    text = sd__render();
    assert_true(sd__has_line(
        text, "keboola_go_stream_sink_record_duration_milliseconds_count{sink_id=\"c\"} 400000"));
    assert_true(sd__has_line(
        text, "keboola_go_stream_sink_record_duration_milliseconds_sum{sink_id=\"c\"} 400000.000"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_histogram_and_counter),
        cmocka_unit_test(test_labels_escaped_and_variants),
        cmocka_unit_test(test_sink_series_from_keys),
        cmocka_unit_test(test_cardinality_cap),
        cmocka_unit_test(test_concurrent_updates),
    };

    return cmocka_run_group_tests_name("metrics_reg", tests, NULL, NULL);
}
