/* sd_csv.c: CSV fields and rows (see sd_csv.h for the format).
 *
 * DESIGN. Pure functions over a caller-owned sd_buf; no state, thread-safe for distinct rows.
 * Each call reserves the exact room first, so a failed allocation leaves the row unchanged.
 * Values are scanned 16 bytes at a time (SSE2, with a plain loop elsewhere): bodies full of
 * JSON quotes are the common case. */
#include "pipeline/sd_csv.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Values up to this size reserve room for doubling every byte instead of counting quotes. */
#define CSV_NO_COUNT_MAX (64 * 1024)

/* Counts '"' in p[0..len). */
static size_t count_quotes(const char *p, size_t len)
{
    const char *end = p + len;
    size_t n = 0;

#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, quote));
        /* Popcount of 16 bits without needing the POPCNT instruction. */
        m = m - ((m >> 1) & 0x5555);
        m = (m & 0x3333) + ((m >> 2) & 0x3333);
        m = (m + (m >> 4)) & 0x0F0F;
        n += (m + (m >> 8)) & 0x1F;
        p += 16;
    }
#endif
    for (; p < end; p++) {
        n += *p == '"';
    }
    return n;
}

/* Copies src[0..len) to dst doubling every '"'; returns the bytes written (len + quotes). dst
 * must have room for one byte more than that. */
static size_t copy_doubling(char *dst, const char *src, size_t len)
{
    const char *end = src + len;
    char *w = dst;

#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"');
    while (end - src >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)src);
        if (_mm_movemask_epi8(_mm_cmpeq_epi8(v, quote)) == 0) {
            _mm_storeu_si128((__m128i *)w, v);
            w += 16;
            src += 16;
            continue;
        }
        for (int i = 0; i < 16; i++) {
            char c = *src++;
            /* Branch-free: quotes come at unpredictable places in JSON bodies. */
            w[0] = c;
            w[1] = '"';
            w += 1 + (c == '"');
        }
    }
#endif
    while (src < end) {
        char c = *src++;
        w[0] = c;
        w[1] = '"';
        w += 1 + (c == '"');
    }
    return (size_t)(w - dst);
}

int sd_csv_field(struct sd_buf *row, const char *value, size_t len, int first)
{
    size_t need;
    char *w;
    int rc;

    if (len > SIZE_MAX / 2 - 4) {
        return -ENOMEM;
    }
    /* Small values: room for the worst case saves a counting pass. */
    need = len <= CSV_NO_COUNT_MAX ? 2 * len + 3 : len + count_quotes(value, len) + 3;
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
