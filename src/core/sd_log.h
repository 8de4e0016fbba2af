/* sd_log.h: structured logging, one JSON object per line on stderr.
 *
 * Thread-safe. Messages must never contain secrets: callers redact ingestion secrets and
 * API tokens before logging (see sd_log_redact_path). */
#ifndef SD_LOG_H
#define SD_LOG_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum sd_log_level { SD_LOG_DEBUG = 0, SD_LOG_INFO, SD_LOG_WARN, SD_LOG_ERROR };

void sd_log_set_level(enum sd_log_level level);
void sd_log_write(enum sd_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define sd_log_debug(comp, ...) sd_log_write(SD_LOG_DEBUG, comp, __VA_ARGS__)
#define sd_log_info(comp, ...) sd_log_write(SD_LOG_INFO, comp, __VA_ARGS__)
#define sd_log_warn(comp, ...) sd_log_write(SD_LOG_WARN, comp, __VA_ARGS__)
#define sd_log_error(comp, ...) sd_log_write(SD_LOG_ERROR, comp, __VA_ARGS__)

#ifdef __cplusplus
}
#endif

#endif
