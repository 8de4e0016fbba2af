/* sd_log.c: JSON-lines logger (see sd_log.h).
 *
 * DESIGN
 * Each line is formatted into a local buffer and written with one write(2), so lines from
 * different threads never interleave. The level and the descriptor are atomics; the node id is
 * set once before other threads start. Nothing is buffered: a crash loses no written line. */
#include "core/sd_log.h"
#include "core/sd_buf.h"
#include "core/sd_time.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static _Atomic int sd__log_level = SD_LOG_INFO;
static _Atomic int sd__log_fd = STDERR_FILENO;
static char sd__log_node[64];

static const char *const sd__level_names[] = {"debug", "info", "warn", "error"};
/* The reference's attribute of each segment of an entity key. */
static const char *const sd__key_attrs[] = {"project.id", "branch.id", "source.id", "sink.id",
                                            "file.id",    "volume.id", "slice.id"};

void sd_log_set_level(enum sd_log_level level)
{
    atomic_store(&sd__log_level, (int)level);
}

void sd_log_set_fd(int fd)
{
    atomic_store(&sd__log_fd, fd);
}

void sd_log_set_node(const char *node_id)
{
    snprintf(sd__log_node, sizeof(sd__log_node), "%s", node_id ? node_id : "");
}

static void sd__json_escape(struct sd_buf *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
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

static void sd__attr(struct sd_buf *line, const char *name, const char *value, size_t len)
{
    sd_buf_append_str(line, ",\"");
    sd_buf_append_str(line, name);
    sd_buf_append_str(line, "\":\"");
    sd__json_escape(line, value, len);
    sd_buf_append_char(line, '"');
}

static void sd__vwrite(enum sd_log_level level, const char *component, const char *key,
                       const char *fmt, va_list ap)
{
    char msg[2048];
    char ts[SD_TIME_ISO_LEN + 1];
    struct sd_buf line = SD_BUF_INIT;
    ssize_t ignored;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    sd_time_format_iso(sd_now_ms(), ts);
    sd_buf_printf(&line, "{\"time\":\"%s\",\"level\":\"%s\",\"component\":\"", ts,
                  sd__level_names[level]);
    sd__json_escape(&line, component, strlen(component));
    sd_buf_append_str(&line, "\",\"message\":\"");
    sd__json_escape(&line, msg, strlen(msg));
    sd_buf_append_char(&line, '"');
    if (sd__log_node[0]) {
        sd__attr(&line, "nodeId", sd__log_node, strlen(sd__log_node));
    }
    for (size_t i = 0; key != NULL && *key && i < sizeof(sd__key_attrs) / sizeof(char *); i++) {
        size_t n = strcspn(key, "/");
        sd__attr(&line, sd__key_attrs[i], key, n);
        key += n + (key[n] == '/');
    }
    sd_buf_append_str(&line, "}\n");
    ignored = write(atomic_load(&sd__log_fd), line.data, line.len);
    (void)ignored;
    sd_buf_fini(&line);
}

void sd_log_write(enum sd_log_level level, const char *component, const char *fmt, ...)
{
    va_list ap;

    if ((int)level < atomic_load(&sd__log_level)) {
        return;
    }
    va_start(ap, fmt);
    sd__vwrite(level, component, NULL, fmt, ap);
    va_end(ap);
}

void sd_log_key(enum sd_log_level level, const char *component, const char *key, const char *fmt,
                ...)
{
    va_list ap;

    if ((int)level < atomic_load(&sd__log_level)) {
        return;
    }
    va_start(ap, fmt);
    sd__vwrite(level, component, key, fmt, ap);
    va_end(ap);
}

int sd_log_limit_pass(struct sd_log_limit *l, int64_t interval_ms, int64_t *suppressed)
{
    int64_t now = sd_mono_ms();
    int64_t next = __atomic_load_n(&l->next_ms, __ATOMIC_RELAXED);

    if (now < next || !__atomic_compare_exchange_n(&l->next_ms, &next, now + interval_ms, 0,
                                                   __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        __atomic_fetch_add(&l->suppressed, 1, __ATOMIC_RELAXED);
        return 0;
    }
    *suppressed = __atomic_exchange_n(&l->suppressed, 0, __ATOMIC_RELAXED);
    return 1;
}
