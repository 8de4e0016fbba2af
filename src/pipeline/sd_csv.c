/* sd_csv.c: CSV fields and rows (see sd_csv.h for the format).
 *
 * DESIGN. Pure functions over a caller-owned sd_buf; no state, thread-safe for distinct rows.
 * Each call reserves the exact room first, so a failed allocation leaves the row unchanged. The
 * common case (no '"' in the value) is one memchr and one memcpy. */
#include "pipeline/sd_csv.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

/* Counts '"' in p[0..len). */
static size_t count_quotes(const char *p, size_t len)
{
    const char *end = p + len;
    const char *q;
    size_t n = 0;

    while (p < end && (q = memchr(p, '"', (size_t)(end - p))) != NULL) {
        n++;
        p = q + 1;
    }
    return n;
}

/* Copies src[0..len) to dst doubling every '"'; returns the bytes written. */
static size_t copy_doubling(char *dst, const char *src, size_t len)
{
    const char *end = src + len;
    const char *q;
    char *w = dst;

    while (src < end) {
        q = memchr(src, '"', (size_t)(end - src));
        if (q == NULL) {
            memcpy(w, src, (size_t)(end - src));
            w += end - src;
            break;
        }
        memcpy(w, src, (size_t)(q - src + 1));
        w += q - src + 1;
        *w++ = '"';
        src = q + 1;
    }
    return (size_t)(w - dst);
}

int sd_csv_field(struct sd_buf *row, const char *value, size_t len, int first)
{
    size_t quotes = count_quotes(value, len);
    size_t need;
    char *w;
    int rc;

    if (len > SIZE_MAX / 2 - 4) {
        return -ENOMEM;
    }
    need = len + quotes + 3;
    rc = sd_buf_reserve(row, need);
    if (rc != 0) {
        return rc;
    }
    w = row->data + row->len;
    if (!first) {
        *w++ = ',';
    }
    *w++ = '"';
    w += copy_doubling(w, value, len);
    *w++ = '"';
    row->len = (size_t)(w - row->data);
    row->data[row->len] = '\0';
    return 0;
}

int sd_csv_field_tail(struct sd_buf *row, size_t start, int first)
{
    size_t len = row->len - start;
    size_t quotes = count_quotes(row->data + start, len);
    size_t prefix = first ? 1 : 2;
    size_t grow = prefix + 1 + quotes;
    char *v;
    char *w;
    char *r;
    int rc;

    rc = sd_buf_reserve(row, grow);
    if (rc != 0) {
        return rc;
    }
    v = row->data + start;
    if (quotes == 0) {
        memmove(v + prefix, v, len);
    } else {
        /* Walk backwards so every byte moves right by the quotes not yet passed. */
        r = v + len;
        w = v + prefix + len + quotes;
        while (r > v) {
            r--;
            *--w = *r;
            if (*r == '"') {
                *--w = '"';
            }
        }
    }
    if (!first) {
        v[0] = ',';
    }
    v[prefix - 1] = '"';
    row->len += grow;
    row->data[row->len - 1] = '"';
    row->data[row->len] = '\0';
    return 0;
}

int sd_csv_end_row(struct sd_buf *row)
{
    return sd_buf_append_char(row, '\n');
}
