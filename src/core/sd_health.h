/* sd_health.h: the readiness registry: components report that they are broken (with a short
 * reason) and clear it once they work again; health checks read the result.
 *
 * A component is named by a short string ("state", "slice <volume>/<file>", ...). A set of the
 * same name replaces its reason. Readiness is "no component broken"; liveness is not tracked
 * here (a process that answers is alive). */
#ifndef SD_HEALTH_H
#define SD_HEALTH_H

#include <stddef.h>

struct sd_buf;
struct sd_health;

/* Component names are cut to this many bytes (NUL included). */
#define SD_HEALTH_NAME_MAX 192

/* Returns an empty registry (everything healthy); owned, free with sd_health_destroy. Aborts
 * on OOM. */
struct sd_health *sd_health_create(void);
/* Frees h. NULL is fine. */
void sd_health_destroy(struct sd_health *h);

/* Marks component broken with reason (both copied, cut to a short length). Returns 1 when it
 * was healthy before (the caller may log the start of the episode), else 0. h may be NULL
 * (nothing happens, returns 0). Thread-safe; never blocks on I/O. */
int sd_health_set(struct sd_health *h, const char *component, const char *reason);
/* Marks component healthy. Returns 1 when it was broken before, else 0. h may be NULL.
 * Thread-safe. */
int sd_health_clear(struct sd_health *h, const char *component);

/* 1 when no component is broken (one atomic load). h may be NULL (healthy). Thread-safe. */
int sd_health_is_ok(const struct sd_health *h);

/* Appends the readiness answer to out: "OK\n" when healthy, else one line per broken
 * component, "<component>: <reason>\n". Returns the HTTP status of a readiness check: 200 or
 * 503. h may be NULL (healthy). Thread-safe. */
int sd_health_render(struct sd_health *h, struct sd_buf *out);

/* Answers the health paths of a listener: "/health-check" is the readiness check (the
 * reference's path; sd_health_render) and "/livez" the liveness check (200 "OK\n" whenever the
 * process answers). path is the request path (len bytes, borrowed). Returns the HTTP status
 * with the text/plain body appended to out, or 0 (out untouched) for any other path. */
int sd_health_route(struct sd_health *h, const char *path, size_t len, struct sd_buf *out);

#endif
