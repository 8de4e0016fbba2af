/* sd_metrics_reg.c: the metric registry (see sd_metrics_reg.h).
 *
 * DESIGN
 * One static table describes the reference's instruments: the Prometheus name its exporter
 * (go.opentelemetry.io/otel/exporters/prometheus v0.65, otlptranslator's
 * UnderscoreEscapingWithSuffixes: dots -> underscores, the unit appended unless the name holds
 * it already - "ms" -> milliseconds, other units as written - and _total for counters), help,
 * type and histogram bounds. Series live in a per-metric append-only list plus a chained hash
 * for lookups; both change only under one mutex, taken when a series is resolved or rendered.
 * Updates touch only the series' atomics (relaxed: a scrape may see a histogram's count one
 * record ahead of its buckets, which Prometheus tolerates). A histogram's sum is kept in
 * thousandths of its unit, so it needs no floating-point atomics. */
#include "core/sd_metrics_reg.h"
#include "core/sd_alloc.h"
#include "core/sd_buf.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#define SD_MREG_HASH 1024
#define SD_MREG_MAX_BOUNDS 16
#define SD_MREG_MAX_VOLUMES 64

enum sd_mtype { SD_MT_COUNTER, SD_MT_GAUGE, SD_MT_HISTOGRAM };

struct sd_mdef {
    const char *name;
    const char *help;
    enum sd_mtype type;
    const double *bounds; /* histograms */
    size_t nbounds;
};

struct sd_mseries {
    struct sd_mseries *next;      /* the metric's list, in creation order */
    struct sd_mseries *hash_next; /* the hash chain */
    enum sd_metric metric;
    _Atomic(struct sd_mseries *) variant;             /* cache of sd_mreg_with */
    _Atomic int64_t value;                            /* counter/gauge value; a histogram's count */
    _Atomic uint64_t sum_milli;                       /* histogram: sum x 1000 */
    _Atomic uint64_t buckets[SD_MREG_MAX_BOUNDS + 1]; /* histogram: per bound, then +Inf */
    char labels[];
};

struct sd_mvolume {
    char *labels;
    char *path;
};

/* The OpenTelemetry SDK's default explicit bucket boundaries. */
static const double sd__default_bounds[] = {0,   5,   10,   25,   50,   75,   100,  250,
                                            500, 750, 1000, 2500, 5000, 7500, 10000};
/* keboola.go.stream.operation.duration's boundaries (storage/node/trace.go). */
static const double sd__op_bounds[] = {0,    10,    30,    100,    300,    1000,
                                       3000, 10000, 30000, 100000, 300000, 1000000};

#define SD_HIST(b) SD_MT_HISTOGRAM, b, sizeof(b) / sizeof(b[0])

static const struct sd_mdef sd__defs[SD_M__COUNT] = {
    [SD_M_SOURCE_RECORD_DURATION] = {"keboola_go_stream_source_record_duration_milliseconds",
                                     "Duration of source requests.", SD_HIST(sd__default_bounds)},
    [SD_M_SOURCE_IN_BYTES] = {"keboola_go_stream_source_in_bytes_B_total", "Source request length.",
                              SD_MT_COUNTER, NULL, 0},
    [SD_M_SINK_RECORD_DURATION] = {"keboola_go_stream_sink_record_duration_milliseconds",
                                   "Duration of source requests dispatched to sink.",
                                   SD_HIST(sd__default_bounds)},
    [SD_M_SINK_ENCODED_BYTES] = {"keboola_go_stream_sink_encoded_bytes_B_total",
                                 "Bytes written to sink.", SD_MT_COUNTER, NULL, 0},
    [SD_M_OPERATION_DURATION] = {"keboola_go_stream_operation_duration_milliseconds",
                                 "Duration of operator processing.", SD_HIST(sd__op_bounds)},
    [SD_M_OPERATION_COMPRESSED] = {"keboola_go_stream_operation_bytes_compressed_B_total",
                                   "Compressed bytes processed by operator.", SD_MT_COUNTER, NULL,
                                   0},
    [SD_M_OPERATION_UNCOMPRESSED] = {"keboola_go_stream_operation_bytes_uncompressed_B_total",
                                     "Uncompressed bytes processed by operator.", SD_MT_COUNTER,
                                     NULL, 0},
    [SD_M_FILEROTATION_FAILED] = {"keboola_go_stream_operation_filerotation_failed_count",
                                  "Count of failed file rotations", SD_HIST(sd__default_bounds)},
    [SD_M_SLICEROTATION_FAILED] = {"keboola_go_stream_operation_slicerotation_failed_count",
                                   "Count of failed slice rotations", SD_HIST(sd__default_bounds)},
    [SD_M_FILEIMPORT_FAILED] = {"keboola_go_stream_operation_fileimport_failed_count",
                                "Count of file imports that will be retried",
                                SD_HIST(sd__default_bounds)},
    [SD_M_SLICEUPLOAD_FAILED] = {"keboola_go_stream_operation_sliceupload_failed_count",
                                 "Count of slice uploads that will be retried",
                                 SD_HIST(sd__default_bounds)},
    [SD_M_FILECLEANUP_FAILED] = {"keboola_go_stream_operation_filecleanup_failed_count",
                                 "Count of failed file cleanup tasks", SD_HIST(sd__default_bounds)},
    [SD_M_JOBCLEANUP_FAILED] = {"keboola_go_stream_operation_jobcleanup_failed_count",
                                "Count of failed job cleanup tasks", SD_HIST(sd__default_bounds)},
    [SD_M_TASK_RUNNING] = {"keboola_go_task_running", "Background running tasks count.",
                           SD_MT_GAUGE, NULL, 0},
    [SD_M_TASK_DURATION] = {"keboola_go_task_duration_milliseconds", "Background task duration.",
                            SD_HIST(sd__default_bounds)},
    [SD_M_HTTP_LOOP_REQUESTS] = {"streamd_http_loop_requests_total",
                                 "Requests handled by each event loop of a server.", SD_MT_COUNTER,
                                 NULL, 0},
};

static struct {
    pthread_mutex_t mu;
    struct sd_mseries *head[SD_M__COUNT], **tail[SD_M__COUNT];
    size_t n[SD_M__COUNT];
    struct sd_mseries *overflow[SD_M__COUNT];
    struct sd_mseries *hash[SD_MREG_HASH];
    struct sd_mvolume volumes[SD_MREG_MAX_VOLUMES];
    size_t nvolumes;
} sd__reg = {.mu = PTHREAD_MUTEX_INITIALIZER};

static uint64_t sd__hash(enum sd_metric m, const char *s)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)m; /* FNV-1a */

    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    }
    return h;
}

/* New series appended to m's list (mu held). */
static struct sd_mseries *sd__series_new(enum sd_metric m, const char *labels)
{
    size_t len = strlen(labels);
    struct sd_mseries *s = sd_xcalloc(1, sizeof(*s) + len + 1);

    memcpy(s->labels, labels, len);
    s->metric = m;
    if (sd__reg.tail[m] == NULL) {
        sd__reg.tail[m] = &sd__reg.head[m];
    }
    *sd__reg.tail[m] = s;
    sd__reg.tail[m] = &s->next;
    return s;
}

struct sd_mseries *sd_mreg_series(enum sd_metric m, const char *labels)
{
    size_t slot = (size_t)(sd__hash(m, labels) % SD_MREG_HASH);
    struct sd_mseries *s;

    pthread_mutex_lock(&sd__reg.mu);
    for (s = sd__reg.hash[slot]; s != NULL; s = s->hash_next) {
        if (s->metric == m && strcmp(s->labels, labels) == 0) {
            break;
        }
    }
    if (s == NULL && sd__reg.n[m] < SD_MREG_MAX_SERIES) {
        s = sd__series_new(m, labels);
        s->hash_next = sd__reg.hash[slot];
        sd__reg.hash[slot] = s;
        sd__reg.n[m]++;
    } else if (s == NULL) {
        if (sd__reg.overflow[m] == NULL) {
            sd__reg.overflow[m] = sd__series_new(m, "otel_metric_overflow=\"true\"");
        }
        s = sd__reg.overflow[m];
    }
    pthread_mutex_unlock(&sd__reg.mu);
    return s;
}

void sd_mreg_add(struct sd_mseries *s, int64_t delta)
{
    atomic_fetch_add_explicit(&s->value, delta, memory_order_relaxed);
}

void sd_mreg_observe(struct sd_mseries *s, double value)
{
    const struct sd_mdef *d = &sd__defs[s->metric];
    size_t i = 0;

    while (i < d->nbounds && value > d->bounds[i]) { /* bounds are inclusive upper limits */
        i++;
    }
    atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum_milli, value > 0 ? (uint64_t)(value * 1000.0 + 0.5) : 0,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&s->value, 1, memory_order_relaxed);
}

double sd_mreg_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* Where key's value starts in labels (after `key="`), or NULL. */
static const char *sd__label_value(const char *labels, const char *key)
{
    size_t klen = strlen(key);

    for (const char *p = labels; (p = strstr(p, key)) != NULL; p += klen) {
        if ((p == labels || p[-1] == ',') && p[klen] == '=' && p[klen + 1] == '"') {
            return p + klen + 2;
        }
    }
    return NULL;
}

/* 1 when the (unescaped) value at v, up to its closing quote, equals value. */
static int sd__value_is(const char *v, const char *value)
{
    size_t n = strlen(value);

    return strncmp(v, value, n) == 0 && v[n] == '"';
}

struct sd_mseries *sd_mreg_with(struct sd_mseries *s, const char *key, const char *value)
{
    struct sd_mseries *v = atomic_load_explicit(&s->variant, memory_order_acquire);
    const char *at = sd__label_value(s->labels, key), *vat, *end;
    size_t start;
    struct sd_buf b = SD_BUF_INIT;

    if (at == NULL || sd__value_is(at, value)) {
        return s;
    }
    vat = v != NULL ? sd__label_value(v->labels, key) : NULL;
    if (vat != NULL && sd__value_is(vat, value)) {
        return v;
    }
    for (end = at; *end && *end != '"'; end += end[0] == '\\' && end[1] ? 2 : 1) {
    }
    start = (size_t)(at - s->labels) - strlen(key) - 2;      /* where `key="` starts */
    sd_buf_append(&b, s->labels, start > 0 ? start - 1 : 0); /* without the comma before it */
    sd_mreg_label(&b, key, value);
    if (*end) {
        sd_buf_append_str(&b, end + 1);
    }
    v = sd_mreg_series(s->metric, sd_buf_cstr(&b));
    sd_buf_fini(&b);
    atomic_store_explicit(&s->variant, v, memory_order_release);
    return v;
}

void sd_mreg_label(struct sd_buf *b, const char *key, const char *value)
{
    if (b->len > 0) {
        sd_buf_append_char(b, ',');
    }
    sd_buf_append_str(b, key);
    sd_buf_append_str(b, "=\"");
    for (const char *p = value ? value : ""; *p; p++) {
        if (*p == '\\' || *p == '"') {
            sd_buf_append_char(b, '\\');
            sd_buf_append_char(b, *p);
        } else if (*p == '\n') {
            sd_buf_append_str(b, "\\n");
        } else {
            sd_buf_append_char(b, *p);
        }
    }
    sd_buf_append_char(b, '"');
}

void sd_mreg_label_key(struct sd_buf *b, int64_t project_id, int64_t branch_id,
                       const char *source_id, const char *sink_id)
{
    char num[24];

    snprintf(num, sizeof(num), "%" PRId64, project_id);
    sd_mreg_label(b, "project_id", num);
    snprintf(num, sizeof(num), "%" PRId64, branch_id);
    sd_mreg_label(b, "branch_id", num);
    sd_mreg_label(b, "source_id", source_id);
    if (sink_id != NULL) {
        sd_mreg_label(b, "sink_id", sink_id);
    }
}

struct sd_mseries *sd_mreg_sink_series(enum sd_metric m, const char *sink_key, const char *extra)
{
    char source[128], sink[128];
    long long project, branch;
    struct sd_buf b = SD_BUF_INIT;
    struct sd_mseries *s;

    if (sink_key == NULL ||
        sscanf(sink_key, "%lld/%lld/%127[^/]/%127[^/]", &project, &branch, source, sink) != 4) {
        project = branch = -1; /* never a real key: visible, and one series for all */
        snprintf(source, sizeof(source), "?");
        snprintf(sink, sizeof(sink), "?");
    }
    sd_mreg_label_key(&b, project, branch, source, sink);
    if (extra != NULL && *extra) {
        sd_buf_append_char(&b, ',');
        sd_buf_append_str(&b, extra);
    }
    s = sd_mreg_series(m, sd_buf_cstr(&b));
    sd_buf_fini(&b);
    return s;
}

void sd_mreg_operation(const char *operation, const char *key, double duration_ms,
                       const char *error_type, int64_t compressed, int64_t uncompressed)
{
    struct sd_buf b = SD_BUF_INIT;

    sd_mreg_label(&b, "error_type", error_type);
    sd_mreg_label(&b, "operation", operation);
    sd_mreg_observe(sd_mreg_sink_series(SD_M_OPERATION_DURATION, key, sd_buf_cstr(&b)),
                    duration_ms);
    if (compressed >= 0) {
        sd_mreg_add(sd_mreg_sink_series(SD_M_OPERATION_COMPRESSED, key, sd_buf_cstr(&b)),
                    compressed);
    }
    if (uncompressed >= 0) {
        sd_mreg_add(sd_mreg_sink_series(SD_M_OPERATION_UNCOMPRESSED, key, sd_buf_cstr(&b)),
                    uncompressed);
    }
    sd_buf_fini(&b);
}

void sd_mreg_operation_failed(enum sd_metric m, const char *key, int64_t attempt)
{
    static const char *const ops[] = {
        [SD_M_FILEROTATION_FAILED] = "filerotation", [SD_M_SLICEROTATION_FAILED] = "slicerotation",
        [SD_M_FILEIMPORT_FAILED] = "fileimport",     [SD_M_SLICEUPLOAD_FAILED] = "sliceupload",
        [SD_M_FILECLEANUP_FAILED] = "filecleanup",   [SD_M_JOBCLEANUP_FAILED] = "jobcleanup"};
    struct sd_buf b = SD_BUF_INIT;

    sd_mreg_label(&b, "operation",
                  (size_t)m < sizeof(ops) / sizeof(ops[0]) && ops[m] ? ops[m] : "");
    sd_mreg_observe(sd_mreg_sink_series(m, key, sd_buf_cstr(&b)), (double)attempt);
    sd_buf_fini(&b);
}

void sd_mreg_task_started(const char *task_type)
{
    struct sd_buf b = SD_BUF_INIT;

    sd_mreg_label(&b, "task_type", task_type);
    sd_mreg_add(sd_mreg_series(SD_M_TASK_RUNNING, sd_buf_cstr(&b)), 1);
    sd_buf_fini(&b);
}

void sd_mreg_task_finished(const char *task_type, int is_success, double duration_ms)
{
    struct sd_buf b = SD_BUF_INIT;

    sd_mreg_label(&b, "task_type", task_type);
    sd_mreg_add(sd_mreg_series(SD_M_TASK_RUNNING, sd_buf_cstr(&b)), -1);
    sd_mreg_label(&b, "is_success", is_success ? "true" : "false");
    if (!is_success) {
        sd_mreg_label(&b, "is_application_error", "false");
        sd_mreg_label(&b, "error_type", "other");
    }
    sd_mreg_observe(sd_mreg_series(SD_M_TASK_DURATION, sd_buf_cstr(&b)), duration_ms);
    sd_buf_fini(&b);
}

void sd_mreg_volume(const char *volume_id, const char *type, const char *label, const char *path)
{
    struct sd_buf b = SD_BUF_INIT;

    sd_mreg_label(&b, "volume_id", volume_id);
    sd_mreg_label(&b, "volume_type", type);
    sd_mreg_label(&b, "volume_label", label);
    sd_mreg_label(&b, "volume_path", path);
    pthread_mutex_lock(&sd__reg.mu);
    if (sd__reg.nvolumes < SD_MREG_MAX_VOLUMES) {
        sd__reg.volumes[sd__reg.nvolumes].labels = sd_buf_steal(&b);
        sd__reg.volumes[sd__reg.nvolumes].path = sd_xstrdup(path);
        sd__reg.nvolumes++;
    }
    pthread_mutex_unlock(&sd__reg.mu);
    sd_buf_fini(&b);
}

static void sd__render_header(struct sd_buf *out, const char *name, const char *help,
                              const char *type)
{
    sd_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* "{labels}" or "{labels,extra}" or "{extra}" or "". */
static void sd__render_labels(struct sd_buf *out, const char *labels, const char *extra)
{
    if (!*labels && !*extra) {
        return;
    }
    sd_buf_printf(out, "{%s%s%s}", labels, *labels && *extra ? "," : "", extra);
}

static void sd__render_series(struct sd_buf *out, const struct sd_mdef *d,
                              const struct sd_mseries *s)
{
    char le[48];
    uint64_t cumulative = 0;

    if (d->type != SD_MT_HISTOGRAM) {
        sd_buf_append_str(out, d->name);
        sd__render_labels(out, s->labels, "");
        sd_buf_printf(out, " %" PRId64 "\n", atomic_load_explicit(&s->value, memory_order_relaxed));
        return;
    }
    for (size_t i = 0; i <= d->nbounds; i++) {
        cumulative += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
        if (i < d->nbounds) {
            snprintf(le, sizeof(le), "le=\"%g\"", d->bounds[i]);
        } else {
            snprintf(le, sizeof(le), "le=\"+Inf\"");
        }
        sd_buf_printf(out, "%s_bucket", d->name);
        sd__render_labels(out, s->labels, le);
        sd_buf_printf(out, " %" PRIu64 "\n", cumulative);
    }
    sd_buf_printf(out, "%s_sum", d->name);
    sd__render_labels(out, s->labels, "");
    sd_buf_printf(out, " %.3f\n",
                  (double)atomic_load_explicit(&s->sum_milli, memory_order_relaxed) / 1000.0);
    sd_buf_printf(out, "%s_count", d->name);
    sd__render_labels(out, s->labels, "");
    /* the count is the +Inf bucket, so the two always agree within a scrape */
    sd_buf_printf(out, " %" PRIu64 "\n", cumulative);
}

/* The writer node's gauges (storage/node/writernode): disk per volume, descriptors. */
static void sd__render_writer(struct sd_buf *out, long fds_used, long fds_total)
{
    static const char *const names[2] = {"keboola_go_stream_writer_disk_used_B",
                                         "keboola_go_stream_writer_disk_total_B"};
    static const char *const helps[2] = {"Amount of disk space used.", "Total disk size."};

    for (int k = 0; k < 2 && sd__reg.nvolumes > 0; k++) {
        sd__render_header(out, names[k], helps[k], "gauge");
        for (size_t i = 0; i < sd__reg.nvolumes; i++) {
            struct statvfs st;
            uint64_t total, avail;
            if (statvfs(sd__reg.volumes[i].path, &st) != 0) {
                continue;
            }
            total = (uint64_t)st.f_blocks * st.f_frsize;
            avail = (uint64_t)st.f_bavail * st.f_frsize;
            sd_buf_printf(out, "%s{%s} %" PRIu64 "\n", names[k], sd__reg.volumes[i].labels,
                          k == 0 ? total - avail : total);
        }
    }
    sd__render_header(out, "keboola_go_stream_writer_file_descriptor_used_fd",
                      "Amount of file descriptors currently used.", "gauge");
    sd_buf_printf(out, "keboola_go_stream_writer_file_descriptor_used_fd %ld\n", fds_used);
    sd__render_header(out, "keboola_go_stream_writer_file_descriptor_total_fd",
                      "Limit of available file descriptors.", "gauge");
    sd_buf_printf(out, "keboola_go_stream_writer_file_descriptor_total_fd %ld\n", fds_total);
}

void sd_mreg_render(struct sd_buf *out, long fds_used, long fds_total)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};

    sd__render_header(out, "target_info", "Target metadata", "gauge");
    sd_buf_append_str(out, "target_info{service_name=\"stream\"} 1\n");
    pthread_mutex_lock(&sd__reg.mu);
    for (int m = 0; m < SD_M__COUNT; m++) {
        const struct sd_mdef *d = &sd__defs[m];
        if (sd__reg.head[m] == NULL) {
            continue;
        }
        sd__render_header(out, d->name, d->help, types[d->type]);
        for (const struct sd_mseries *s = sd__reg.head[m]; s != NULL; s = s->next) {
            sd__render_series(out, d, s);
        }
    }
    sd__render_writer(out, fds_used, fds_total);
    pthread_mutex_unlock(&sd__reg.mu);
}
