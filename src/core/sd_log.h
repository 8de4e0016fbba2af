/* sd_log.h: structured logging, one JSON object per line, as the reference logs: "time",
 * "level", "component", "message", plus "nodeId" and the context attributes of the entity a
 * line is about ("project.id", "branch.id", "source.id", "sink.id", "file.id", "volume.id",
 * "slice.id").
 *
 * Lines go to stderr until sd_log_set_fd() (the server sends its log stream to stdout, as the
 * reference does; commands and start-up errors stay on stderr). Thread-safe. Messages must
 * never contain secrets: callers redact ingestion secrets and API tokens before logging. */
#ifndef SD_LOG_H
#define SD_LOG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum sd_log_level { SD_LOG_DEBUG = 0, SD_LOG_INFO, SD_LOG_WARN, SD_LOG_ERROR };

void sd_log_set_level(enum sd_log_level level);
/* Where lines go from now on (a descriptor the caller keeps open). */
void sd_log_set_fd(int fd);
/* Adds "nodeId" to every line (copied, cut to 63 bytes). Call at start-up, before other
 * threads log. */
void sd_log_set_node(const char *node_id);

void sd_log_write(enum sd_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A line about the entity key "<project>/<branch>/<source>[/<sink>[/<fileOpenedAt>[/<volume>
 * /<sliceOpenedAt>]]]" (a source, sink, file or slice key; NULL = none): each segment becomes
 * its context attribute. */
void sd_log_key(enum sd_log_level level, const char *component, const char *key, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));

/* A limit of one line per interval for a noisy message (zero-initialise; one per message).
 * sd_log_limit_pass returns 1 when a line may be written now and then sets *suppressed to the
 * lines held back since the last one; 0 otherwise (counted). Any thread. */
struct sd_log_limit {
    int64_t next_ms;
    int64_t suppressed;
};
int sd_log_limit_pass(struct sd_log_limit *l, int64_t interval_ms, int64_t *suppressed);

#define sd_log_debug(comp, ...) sd_log_write(SD_LOG_DEBUG, comp, __VA_ARGS__)
#define sd_log_info(comp, ...) sd_log_write(SD_LOG_INFO, comp, __VA_ARGS__)
#define sd_log_warn(comp, ...) sd_log_write(SD_LOG_WARN, comp, __VA_ARGS__)
#define sd_log_error(comp, ...) sd_log_write(SD_LOG_ERROR, comp, __VA_ARGS__)

#ifdef __cplusplus
}
#endif

#endif
