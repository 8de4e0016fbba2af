/* sd_time.h: clocks and the reference's timestamp formats. */
#ifndef SD_TIME_H
#define SD_TIME_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Length of "2006-01-02T15:04:05.000Z". */
#define SD_TIME_ISO_LEN 24

/* Wall clock, milliseconds since the Unix epoch. */
int64_t sd_now_ms(void);
/* Wall clock, microseconds since the Unix epoch. */
int64_t sd_now_us(void);
/* Monotonic clock, milliseconds. */
int64_t sd_mono_ms(void);
/* Writes ms as UTC "2006-01-02T15:04:05.000Z" plus NUL into out[SD_TIME_ISO_LEN + 1]. */
void sd_time_format_iso(int64_t ms, char *out);
/* Like sd_time_format_iso but with '.' and ':' replaced by '-' (used in directory names). */
void sd_time_format_path(int64_t ms, char *out);
/* Parses the ISO form back to ms. Returns 0 or SD_EPARSE. */
int sd_time_parse_iso(const char *s, int64_t *ms);
/* Time of an entity key whose last '/'-separated segment is an ISO timestamp (file and slice
 * keys end with their open time); 0 when it has none. */
int64_t sd_time_of_key(const char *key);

#ifdef __cplusplus
}
#endif

#endif
