/* sd_time.c: clocks and UTC timestamp formatting in the reference's fixed-width layout,
 * which sorts lexicographically in keys and directory names. */
#include "core/sd_time.h"
#include "core/sd_error.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t sd_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sd_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t sd_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sd_time_format_iso(int64_t ms, char *out)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    char tmp[64];

    gmtime_r(&secs, &tm);
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (tm.tm_year + 1900) % 10000,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    memcpy(out, tmp, SD_TIME_ISO_LEN);
    out[SD_TIME_ISO_LEN] = '\0';
}

void sd_time_format_path(int64_t ms, char *out)
{
    sd_time_format_iso(ms, out);
    for (char *p = out; *p; p++) {
        if (*p == '.' || *p == ':') {
            *p = '-';
        }
    }
}

int sd_time_parse_iso(const char *s, int64_t *ms)
{
    struct tm tm;
    int msec = 0;
    int n = 0;

    memset(&tm, 0, sizeof(tm));
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &msec, &n) != 7 ||
        n != SD_TIME_ISO_LEN || s[n] != '\0') {
        return SD_EPARSE;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *ms = (int64_t)timegm(&tm) * 1000 + msec;
    return 0;
}

int64_t sd_time_of_key(const char *key)
{
    const char *slash = strrchr(key, '/');
    int64_t ms = 0;

    if (slash != NULL && sd_time_parse_iso(slash + 1, &ms) != 0) {
        ms = 0;
    }
    return ms;
}
