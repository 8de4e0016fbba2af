/* sd_metrics.c: process metrics in the Prometheus text format, read from /proc at request
 * time (no counters on the hot path), plus the health checks of the metrics listener
 * (readiness /health-check and liveness /livez, core/sd_health.h). */
#include "roles/sd_metrics.h"
#include "core/sd_alloc.h"
#include "core/sd_buf.h"
#include "core/sd_fs.h"
#include "core/sd_health.h"
#include "core/sd_time.h"
#include "roles/sd_server.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sd_metrics {
    struct sd_server *srv;
    int64_t started_ms;
};

struct sd_metrics *sd_metrics_create(struct sd_server *srv)
{
    struct sd_metrics *m = sd_xcalloc(1, sizeof(*m));

    m->srv = srv;
    m->started_ms = sd_now_ms();
    return m;
}

void sd_metrics_destroy(struct sd_metrics *m)
{
    free(m);
}

static long sd__status_kb(const char *field)
{
    char *text = NULL;
    long value = 0;
    char *p;

    if (sd_read_file("/proc/self/status", &text, NULL) != 0) {
        return 0;
    }
    p = strstr(text, field);
    if (p != NULL) {
        value = strtol(p + strlen(field), NULL, 10);
    }
    free(text);
    return value;
}

static long sd__open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    long n = 0;

    while (d != NULL && (e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    if (d != NULL) {
        closedir(d);
    }
    return n;
}

void sd_metrics_handle(void *arg, h2o_req_t *req)
{
    struct sd_metrics *m = arg;
    struct sd_str path = sd_http_path(req);
    struct sd_buf out = SD_BUF_INIT;
    int status = sd_health_route(m->srv->health, path.p, path.len, &out);

    if (status != 0) {
        sd_http_send(req, status, "text/plain", out.data, out.len);
        sd_buf_fini(&out);
        return;
    }
    if (!(path.len == 8 && memcmp(path.p, "/metrics", 8) == 0)) {
        sd_http_send_error(req, 404, "stream.metrics.routeNotFound", "Not found, see /metrics.");
        return;
    }
    sd_buf_printf(&out,
                  "# HELP streamd_uptime_seconds Seconds since the process started.\n"
                  "# TYPE streamd_uptime_seconds gauge\n"
                  "streamd_uptime_seconds %.3f\n"
                  "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                  "# TYPE process_resident_memory_bytes gauge\n"
                  "process_resident_memory_bytes %ld\n"
                  "# HELP process_open_fds Number of open file descriptors.\n"
                  "# TYPE process_open_fds gauge\n"
                  "process_open_fds %ld\n"
                  "# HELP process_threads Number of threads.\n"
                  "# TYPE process_threads gauge\n"
                  "process_threads %ld\n",
                  (double)(sd_now_ms() - m->started_ms) / 1000.0, sd__status_kb("VmRSS:") * 1024,
                  sd__open_fds(), sd__status_kb("Threads:"));
    sd_http_send(req, 200, "text/plain; version=0.0.4", out.data, out.len);
    sd_buf_fini(&out);
}
