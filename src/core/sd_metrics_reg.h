/* sd_metrics_reg.h: the process-wide metric registry: the reference's OpenTelemetry instruments
 * (counters, gauges, histograms) under the names its Prometheus exporter gives them, updated
 * from hot paths without locks or allocations and rendered at scrape time.
 *
 * A series is one label set of one metric. Callers resolve a series once (sd_mreg_series:
 * a mutex and, the first time, an allocation) and keep the pointer: series are never freed,
 * so a pointer stays valid for the life of the process. Updating a series is one to three
 * relaxed atomic additions.
 *
 * Cardinality: each metric holds at most SD_MREG_MAX_SERIES label sets; later ones share one
 * overflow series labelled otel_metric_overflow="true" (as the OpenTelemetry SDK's cardinality
 * limit does). Label values are entity ids and enum words only; never secrets. */
#ifndef SD_METRICS_REG_H
#define SD_METRICS_REG_H

#include <stddef.h>
#include <stdint.h>

struct sd_buf;
struct sd_mseries;

/* Label sets per metric before the overflow series takes over. */
#define SD_MREG_MAX_SERIES 2000

enum sd_metric {
    SD_M_SOURCE_RECORD_DURATION, /* ms histogram: project/branch/source, has_error, source_type */
    SD_M_SOURCE_IN_BYTES,        /* counter of request body bytes, same labels */
    SD_M_SINK_RECORD_DURATION,   /* ms histogram: sink key, error_type, sink_type */
    SD_M_SINK_ENCODED_BYTES,     /* counter of CSV bytes appended, same labels */
    SD_M_OPERATION_DURATION,     /* ms histogram: sink key, operation, error_type[, condition] */
    SD_M_OPERATION_COMPRESSED,   /* counter of compressed bytes an operation processed */
    SD_M_OPERATION_UNCOMPRESSED, /* counter of uncompressed bytes an operation processed */
    SD_M_FILEROTATION_FAILED,    /* histograms of the retry attempt of a failed operation */
    SD_M_SLICEROTATION_FAILED,
    SD_M_FILEIMPORT_FAILED,
    SD_M_SLICEUPLOAD_FAILED,
    SD_M_FILECLEANUP_FAILED,
    SD_M_JOBCLEANUP_FAILED,
    SD_M_TASK_RUNNING,  /* gauge (up-down counter): task_type */
    SD_M_TASK_DURATION, /* ms histogram: task_type, is_success[, is_application_error, error_type]
                         */
    SD_M_HTTP_LOOP_REQUESTS, /* streamd's own: counter of requests per event loop: server, loop */
    SD_M__COUNT
};

/* Returns the series of metric m with the label set labels (rendered Prometheus labels without
 * braces, e.g. `project_id="1",source_id="a"`, built with sd_mreg_label; "" for none), creating
 * it on first use; the metric's overflow series once it holds SD_MREG_MAX_SERIES. Never NULL
 * (aborts on OOM). Any thread; takes a mutex: resolve once, not per record. */
struct sd_mseries *sd_mreg_series(enum sd_metric m, const char *labels);

/* Counter or gauge: adds delta (a counter's delta must be >= 0). Any thread; lock-free. */
void sd_mreg_add(struct sd_mseries *s, int64_t delta);
/* Histogram: records value (milliseconds or a count, as the metric's unit). Any thread;
 * lock-free. */
void sd_mreg_observe(struct sd_mseries *s, double value);

/* The series of the same metric as s with label key's value replaced by value (key must be in
 * s's labels; else s itself). The last variant asked of s is cached in s, so an error repeated
 * record after record costs no lock; another value takes sd_mreg_series's mutex. Any thread. */
struct sd_mseries *sd_mreg_with(struct sd_mseries *s, const char *key, const char *value);
/* CLOCK_MONOTONIC (the clock of sd_mono_ms) in milliseconds with sub-millisecond precision,
 * for durations. */
double sd_mreg_now_ms(void);

/* Appends `key="value"` (value escaped per the text format; a comma first unless b is empty)
 * to b. value NULL is "". */
void sd_mreg_label(struct sd_buf *b, const char *key, const char *value);
/* Appends the labels of a sink key, the reference's SinkKey.Telemetry(): project_id,
 * branch_id, source_id, sink_id (sink_id NULL: a source key). */
void sd_mreg_label_key(struct sd_buf *b, int64_t project_id, int64_t branch_id,
                       const char *source_id, const char *sink_id);
/* The series of the operation metric m for the sink key "<p>/<b>/<source>/<sink>" with the
 * extra labels extra (rendered, may be ""). A malformed key is labelled project_id="-1",
 * branch_id="-1", source_id="?", sink_id="?". */
struct sd_mseries *sd_mreg_sink_series(enum sd_metric m, const char *sink_key, const char *extra);

/* The reference's operator metrics of one finished operation ("slicerotation", "sliceupload",
 * "filerotation" or "fileimport") of the entity key (a sink key or a longer file/slice key):
 * its duration labelled with the sink key, operation and error_type ("" on success), and the
 * bytes it processed (a negative size is left out). Operator thread; takes the mutex. */
void sd_mreg_operation(const char *operation, const char *key, double duration_ms,
                       const char *error_type, int64_t compressed, int64_t uncompressed);
/* Records the retry attempt of a failed operation in m (one of the *_FAILED histograms) with
 * the sink key of key and the operation label. Operator thread; takes the mutex. */
void sd_mreg_operation_failed(enum sd_metric m, const char *key, int64_t attempt);

/* The reference's task metrics: a task of task_type starts (keboola_go_task_running + 1) or
 * finishes (running - 1, and its duration labelled task_type, is_success and, for a failure,
 * is_application_error and error_type). Task worker thread; takes the mutex. */
void sd_mreg_task_started(const char *task_type);
void sd_mreg_task_finished(const char *task_type, int is_success, double duration_ms);

/* Registers a local volume for the writer disk gauges (statfs of path at scrape time). Copies
 * the strings; at most 64 volumes, later ones are ignored. Any thread. */
void sd_mreg_volume(const char *volume_id, const char *type, const char *label, const char *path);

/* Appends every metric in the Prometheus text format 0.0.4 to out: target_info, the registry's
 * metrics (metrics without a series are left out, as the exporter does) and the writer gauges
 * (disk per volume; descriptors used and their limit as given: the caller reads them for its
 * process metrics too). Any thread. */
void sd_mreg_render(struct sd_buf *out, long fds_used, long fds_total);

#endif
