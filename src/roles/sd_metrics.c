/* sd_metrics.c: the metrics listener: /metrics in the Prometheus text format (the process
 * metrics read from /proc at request time, then the registry's metrics, core/sd_metrics_reg.h)
 * plus the health checks (readiness /health-check and liveness /livez, core/sd_health.h).
 *
 * DESIGN
 * Runs on the API loop thread. Nothing here is on the data path: the process figures are read
 * per scrape with stdio (procfs files report st_size 0, so they are read to EOF, never by
 * their size). */
#include "roles/sd_metrics.h"
#include "core/sd_alloc.h"
#include "core/sd_buf.h"
#include "core/sd_health.h"
#include "core/sd_metrics_reg.h"
#include "core/sd_time.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

struct sd_metrics {
    struct sd_health *health; /* borrowed */
    int64_t started_ms;
};

/* The process figures of one scrape. */
struct sd_proc_stats {
    double cpu_seconds;
    double start_time_seconds;
    long threads;
    unsigned long long virtual_bytes;
    unsigned long long resident_bytes;
    long open_fds;
    long max_fds;
};

struct sd_metrics *sd_metrics_create(struct sd_health *health)
{
    struct sd_metrics *m = sd_xcalloc(1, sizeof(*m));

    m->health = health;
    m->started_ms = sd_now_ms();
    return m;
}

void sd_metrics_destroy(struct sd_metrics *m)
{
    free(m);
}

/* Seconds since the epoch at boot ("btime" of /proc/stat), or 0. */
static long long sd__boot_time(void)
{
    FILE *f = fopen("/proc/stat", "re");
    char line[256];
    long long btime = 0;

    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "btime %lld", &btime) == 1) {
            break;
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return btime;
}

/* Fields of /proc/self/stat (proc(5)): threads (20), start time in ticks (22), virtual size
 * in bytes (23) and resident pages (24), counted after the command name's closing ')'. */
static void sd__read_stat(struct sd_proc_stats *ps)
{
    FILE *f = fopen("/proc/self/stat", "re");
    char buf[1024];
    char *p;
    unsigned long long starttime = 0, rss_pages = 0;
    long ticks = sysconf(_SC_CLK_TCK);

    if (f == NULL) {
        return;
    }
    p = fgets(buf, sizeof(buf), f) != NULL ? strrchr(buf, ')') : NULL;
    fclose(f);
    if (p == NULL ||
        sscanf(p + 1,
               " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %ld %*d "
               "%llu %llu %llu",
               &ps->threads, &starttime, &ps->virtual_bytes, &rss_pages) != 4) {
        return;
    }
    ps->resident_bytes = rss_pages * (unsigned long long)sysconf(_SC_PAGESIZE);
    if (ticks > 0) {
        ps->start_time_seconds = (double)sd__boot_time() + (double)starttime / (double)ticks;
    }
}

static void sd__read_proc(struct sd_proc_stats *ps)
{
    struct rusage ru;
    struct rlimit rl;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;

    memset(ps, 0, sizeof(*ps));
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        ps->cpu_seconds = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                          (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        ps->max_fds = rl.rlim_cur == RLIM_INFINITY ? -1 : (long)rl.rlim_cur;
    }
    while (d != NULL && (e = readdir(d)) != NULL) {
        ps->open_fds += e->d_name[0] != '.';
    }
    if (d != NULL) {
        ps->open_fds -= ps->open_fds > 0; /* the directory's own descriptor */
        closedir(d);
    }
    sd__read_stat(ps);
}

static void sd__render_process(struct sd_buf *out, const struct sd_proc_stats *ps,
                               double uptime_seconds)
{
    sd_buf_printf(out,
                  "# HELP process_cpu_seconds_total Total user and system CPU time spent in "
                  "seconds.\n"
                  "# TYPE process_cpu_seconds_total counter\n"
                  "process_cpu_seconds_total %.3f\n"
                  "# HELP process_open_fds Number of open file descriptors.\n"
                  "# TYPE process_open_fds gauge\n"
                  "process_open_fds %ld\n"
                  "# HELP process_max_fds Maximum number of open file descriptors.\n"
                  "# TYPE process_max_fds gauge\n"
                  "process_max_fds %ld\n"
                  "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
                  "# TYPE process_virtual_memory_bytes gauge\n"
                  "process_virtual_memory_bytes %llu\n"
                  "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                  "# TYPE process_resident_memory_bytes gauge\n"
                  "process_resident_memory_bytes %llu\n"
                  "# HELP process_start_time_seconds Start time of the process since unix epoch "
                  "in seconds.\n"
                  "# TYPE process_start_time_seconds gauge\n"
                  "process_start_time_seconds %.2f\n"
                  "# HELP process_threads Number of OS threads in the process.\n"
                  "# TYPE process_threads gauge\n"
                  "process_threads %ld\n"
                  "# HELP streamd_uptime_seconds Seconds since the process started.\n"
                  "# TYPE streamd_uptime_seconds gauge\n"
                  "streamd_uptime_seconds %.3f\n",
                  ps->cpu_seconds, ps->open_fds, ps->max_fds, ps->virtual_bytes, ps->resident_bytes,
                  ps->start_time_seconds, ps->threads, uptime_seconds);
}

void sd_metrics_handle(void *arg, struct sd_http_req *req)
{
    struct sd_metrics *m = arg;
    struct sd_str path = sd_http_path(req);
    struct sd_buf out = SD_BUF_INIT;
    struct sd_proc_stats ps;
    int status = sd_health_route(m->health, path.p, path.len, &out);

    if (status != 0) {
        sd_http_send(req, status, "text/plain", out.data, out.len);
        sd_buf_fini(&out);
        return;
    }
    if (!(path.len == 8 && memcmp(path.p, "/metrics", 8) == 0)) {
        sd_http_send_error(req, 404, "stream.metrics.routeNotFound", "Not found, see /metrics.");
        return;
    }
    sd__read_proc(&ps);
    sd__render_process(&out, &ps, (double)(sd_now_ms() - m->started_ms) / 1000.0);
    sd_mreg_render(&out, ps.open_fds, ps.max_fds);
    sd_http_send(req, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
    sd_buf_fini(&out);
}
