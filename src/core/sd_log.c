/* sd_log.c: JSON-lines logger. Each line is formatted into a local buffer and written with one
 * write(2), so lines from different threads never interleave. */
#include "core/sd_log.h"
#include "core/sd_buf.h"
#include "core/sd_time.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

static _Atomic int sd__log_level = SD_LOG_INFO;

static const char *const sd__level_names[] = {"debug", "info", "warn", "error"};

void sd_log_set_level(enum sd_log_level level)
{
    atomic_store(&sd__log_level, (int)level);
}

static void sd__json_escape(struct sd_buf *out, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            sd_buf_append_char(out, '\\');
            sd_buf_append_char(out, (char)c);
        } else if (c < 0x20) {
            sd_buf_printf(out, "\\u%04x", c);
        } else {
            sd_buf_append_char(out, (char)c);
        }
    }
}

void sd_log_write(enum sd_log_level level, const char *component, const char *fmt, ...)
{
    char msg[2048];
    char ts[SD_TIME_ISO_LEN + 1];
    struct sd_buf line = SD_BUF_INIT;
    va_list ap;
    ssize_t ignored;

    if ((int)level < atomic_load(&sd__log_level)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sd_time_format_iso(sd_now_ms(), ts);
    sd_buf_printf(&line, "{\"time\":\"%s\",\"level\":\"%s\",\"component\":\"", ts,
                  sd__level_names[level]);
    sd__json_escape(&line, component);
    sd_buf_append_str(&line, "\",\"message\":\"");
    sd__json_escape(&line, msg);
    sd_buf_append_str(&line, "\"}\n");
    ignored = write(STDERR_FILENO, line.data, line.len);
    (void)ignored;
    sd_buf_fini(&line);
}
