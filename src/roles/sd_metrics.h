/* sd_metrics.h: the metrics listener (metrics.listen): Prometheus text at /metrics and
 * /health-check. */
#ifndef SD_METRICS_H
#define SD_METRICS_H

#include "net/sd_http.h"

struct sd_health;
struct sd_metrics;

/* Borrows health (the checks /health-check and /livez answer), which must outlive m. Returns
 * owned; free with sd_metrics_destroy. */
struct sd_metrics *sd_metrics_create(struct sd_health *health);
void sd_metrics_destroy(struct sd_metrics *m);
/* sd_http_handler_fn of the metrics loop. */
void sd_metrics_handle(void *metrics, struct sd_http_req *req);

#endif
