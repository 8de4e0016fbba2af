/* sd_json.cpp: the one C++ file of streamd, a shim with a C API (sd_json.h) over simdjson.
 *
 * DESIGN. simdjson's DOM parser validates a body (grammar, UTF-8, escapes, depth <= 128) at
 * about a microsecond per KiB. Its tape keeps numbers only as parsed binary values, but a path
 * value must be written as the number's original text, and simdjson rejects valid numbers that
 * do not fit 64 bits (1e400, 2^64) with NUMBER_ERROR. So the tape is not used for lookups:
 * once a document is known to be valid, lookups walk the original text with a small navigator
 * (skipping values by scanning, never recursing), which returns original number text and works
 * the same for every valid document. When simdjson reports NUMBER_ERROR or DEPTH_ERROR (its
 * max_depth of 128 counts one level more than ours for non-empty containers), an own iterative
 * validator with the same acceptance rules decides instead; it also gives the error message
 * (with an offset) for every rejected document.
 *
 * Threads: one simdjson parser per thread (thread_local); documents are plain (pointer, length)
 * views and may be used from any thread. The navigator and the serializers are plain C-style
 * code: the rest of the project is C, and this file keeps C++ to the simdjson calls. */
#include "pipeline/sd_json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <simdjson.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/sd_error.h"
#include "core/sd_utf8.h"

/* A parser whose buffers grew past this for a big body is shrunk again after the parse. */
#define SD_JSON_KEEP_CAPACITY (1024 * 1024)
#define SD_JSON_INIT_CAPACITY (64 * 1024)

struct sd_json_doc {
    const char *text;
    size_t len;
};

namespace
{

struct sd_json_tls {
    simdjson::dom::parser parser;
    bool ready = false;
    sd_json_doc *spare = nullptr; /* one freed document kept for reuse */
    ~sd_json_tls()
    {
        free(spare);
    }
};

thread_local sd_json_tls tls;

} /* namespace */

static void set_err(char *err, size_t errlen, const char *why, size_t offset, int with_offset)
{
    if (err == NULL || errlen == 0) {
        return;
    }
    if (with_offset) {
        snprintf(err, errlen, "%s at offset %zu", why, offset);
    } else {
        snprintf(err, errlen, "%s", why);
    }
}

/* ---- UTF-8 ---------------------------------------------------------------------------- */

int sd_json_utf8_valid(const char *s, size_t len)
{
    if (len == 0) {
        return 1;
    }
    return simdjson::validate_utf8(s, len) ? 1 : 0;
}

static int hex_val(unsigned c)
{
    if (c >= '0' && c <= '9') {
        return (int)(c - '0');
    }
    c |= 0x20;
    if (c >= 'a' && c <= 'f') {
        return (int)(c - 'a' + 10);
    }
    return -1;
}

/* Reads 4 hex digits at s. Returns 1 and sets *cp, or 0. */
static int read_hex4(const unsigned char *s, size_t avail, unsigned *cp)
{
    unsigned v = 0;

    if (avail < 4) {
        return 0;
    }
    for (int i = 0; i < 4; i++) {
        int h = hex_val(s[i]);
        if (h < 0) {
            return 0;
        }
        v = (v << 4) | (unsigned)h;
    }
    *cp = v;
    return 1;
}

/* ---- the fallback validator ----------------------------------------------------------- */

static int is_ws(unsigned c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static int is_digit(unsigned c)
{
    return c >= '0' && c <= '9';
}

/* s[*pos] is '"'. On success *pos is just past the closing quote; returns NULL or a reason
 * (then *pos is where the problem is). */
static const char *v_string(const unsigned char *s, size_t len, size_t *pos)
{
    size_t i = *pos + 1;
    unsigned c;
    unsigned cp;
    unsigned lo = 0xDC00;
    size_t n;

    for (;;) {
        if (i >= len) {
            *pos = i;
            return "unterminated string";
        }
        c = s[i];
        if (c == '"') {
            *pos = i + 1;
            return NULL;
        }
        if (c < 0x20) {
            *pos = i;
            return "control character in a string";
        }
        if (c == '\\') {
            if (i + 1 >= len) {
                *pos = i + 1;
                return "unterminated string";
            }
            c = s[i + 1];
            if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' ||
                c == 't') {
                i += 2;
                continue;
            }
            if (c != 'u' || !read_hex4(s + i + 2, len - (i + 2), &cp)) {
                *pos = i;
                return "invalid escape in a string";
            }
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                *pos = i;
                return "lone surrogate escape in a string";
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (i + 7 < len && s[i + 6] == '\\' && s[i + 7] == 'u' &&
                    read_hex4(s + i + 8, len - (i + 8), &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
                    i += 12;
                    continue;
                }
                *pos = i;
                return "lone surrogate escape in a string";
            }
            i += 6;
            continue;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        n = sd_utf8_seq_len((const char *)s + i, len - i);
        if (n == 0) {
            *pos = i;
            return "invalid UTF-8";
        }
        i += n;
    }
}

static const char *v_number(const unsigned char *s, size_t len, size_t *pos)
{
    size_t i = *pos;

    if (s[i] == '-') {
        i++;
    }
    if (i >= len || !is_digit(s[i])) {
        *pos = i;
        return "invalid number";
    }
    if (s[i] == '0') {
        i++;
    } else {
        while (i < len && is_digit(s[i])) {
            i++;
        }
    }
    if (i < len && s[i] == '.') {
        i++;
        if (i >= len || !is_digit(s[i])) {
            *pos = i;
            return "invalid number";
        }
        while (i < len && is_digit(s[i])) {
            i++;
        }
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-')) {
            i++;
        }
        if (i >= len || !is_digit(s[i])) {
            *pos = i;
            return "invalid number";
        }
        while (i < len && is_digit(s[i])) {
            i++;
        }
    }
    *pos = i;
    return NULL;
}

static const char *v_literal(const unsigned char *s, size_t len, size_t *pos)
{
    static const char *const words[] = {"true", "false", "null"};
    size_t i = *pos;

    for (size_t w = 0; w < 3; w++) {
        size_t wl = strlen(words[w]);
        if (s[i] == (unsigned char)words[w][0]) {
            if (len - i >= wl && memcmp(s + i, words[w], wl) == 0) {
                *pos = i + wl;
                return NULL;
            }
            return "invalid literal";
        }
    }
    return "unexpected character";
}

enum v_state { V_VALUE, V_KEY, V_AFTER };

int sd_json_validate_slow(const char *buf, size_t len, char *err, size_t errlen)
{
    const unsigned char *s = (const unsigned char *)buf;
    unsigned char stack[SD_JSON_MAX_DEPTH];
    size_t depth = 0;
    size_t i = 0;
    const char *why = NULL;
    enum v_state st = V_VALUE;
    unsigned c;

    while (i < len && is_ws(s[i])) {
        i++;
    }
    if (i >= len) {
        set_err(err, errlen, "empty document", 0, 0);
        return SD_EPARSE;
    }
    for (;;) {
        while (i < len && is_ws(s[i])) {
            i++;
        }
        if (st == V_AFTER && depth == 0) {
            if (i != len) {
                why = "unexpected data after the document";
            }
            break;
        }
        if (i >= len) {
            why = "unexpected end of input";
            break;
        }
        c = s[i];
        if (st == V_KEY) {
            if (c != '"') {
                why = "expected a string key";
                break;
            }
            if ((why = v_string(s, len, &i)) != NULL) {
                break;
            }
            while (i < len && is_ws(s[i])) {
                i++;
            }
            if (i >= len || s[i] != ':') {
                why = "expected ':'";
                break;
            }
            i++;
            st = V_VALUE;
            continue;
        }
        if (st == V_AFTER) {
            if (stack[depth - 1] == '{') {
                if (c == ',') {
                    i++;
                    st = V_KEY;
                } else if (c == '}') {
                    i++;
                    depth--;
                } else {
                    why = "expected ',' or '}'";
                    break;
                }
            } else {
                if (c == ',') {
                    i++;
                    st = V_VALUE;
                } else if (c == ']') {
                    i++;
                    depth--;
                } else {
                    why = "expected ',' or ']'";
                    break;
                }
            }
            continue;
        }
        /* V_VALUE */
        if (c == '{' || c == '[') {
            if (depth == SD_JSON_MAX_DEPTH) {
                why = "nesting deeper than 128 levels";
                break;
            }
            stack[depth++] = (unsigned char)c;
            i++;
            while (i < len && is_ws(s[i])) {
                i++;
            }
            if (i < len && s[i] == (c == '{' ? '}' : ']')) {
                i++;
                depth--;
                st = V_AFTER;
            } else {
                st = c == '{' ? V_KEY : V_VALUE;
            }
            continue;
        }
        if (c == '"') {
            why = v_string(s, len, &i);
        } else if (c == '-' || is_digit(c)) {
            why = v_number(s, len, &i);
        } else {
            why = v_literal(s, len, &i);
        }
        if (why != NULL) {
            break;
        }
        st = V_AFTER;
    }
    if (why != NULL) {
        set_err(err, errlen, why, i, 1);
        return SD_EPARSE;
    }
    return 0;
}

/* ---- parsing -------------------------------------------------------------------------- */

static const char *simdjson_reason(simdjson::error_code ec)
{
    switch (ec) {
    case simdjson::EMPTY:
        return "empty document";
    case simdjson::DEPTH_ERROR:
        return "nesting deeper than 128 levels";
    case simdjson::UTF8_ERROR:
        return "invalid UTF-8";
    case simdjson::UNESCAPED_CHARS:
        return "control character in a string";
    case simdjson::UNCLOSED_STRING:
        return "unterminated string";
    case simdjson::STRING_ERROR:
        return "invalid string";
    case simdjson::NUMBER_ERROR:
        return "invalid number";
    case simdjson::T_ATOM_ERROR:
    case simdjson::F_ATOM_ERROR:
    case simdjson::N_ATOM_ERROR:
        return "invalid literal";
    default:
        return "invalid JSON";
    }
}

static int ensure_parser(void)
{
    if (!tls.ready) {
        if (tls.parser.allocate(SD_JSON_INIT_CAPACITY, SD_JSON_MAX_DEPTH) != simdjson::SUCCESS) {
            return -ENOMEM;
        }
        tls.ready = true;
    }
    return 0;
}

int sd_json_parse(const char *buf, size_t len, struct sd_json_doc **out, char *err, size_t errlen)
{
    simdjson::error_code ec;
    sd_json_doc *doc;
    int rc;

    *out = NULL;
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    if (len == 0) {
        set_err(err, errlen, "empty document", 0, 0);
        return SD_EPARSE;
    }
    rc = ensure_parser();
    if (rc != 0) {
        return rc;
    }
    ec = tls.parser.parse(buf, len, true).error();
    if (tls.parser.capacity() > SD_JSON_KEEP_CAPACITY) {
        /* Give back the memory of a big body; a failure re-allocates on the next parse. */
        if (tls.parser.allocate(SD_JSON_INIT_CAPACITY, SD_JSON_MAX_DEPTH) != simdjson::SUCCESS) {
            tls.ready = false;
        }
    }
    if (ec == simdjson::MEMALLOC) {
        return -ENOMEM;
    }
    if (ec != simdjson::SUCCESS) {
        /* The own validator decides numbers simdjson cannot hold and documents at the depth
         * limit (simdjson's max_depth 128 admits only 127 levels of non-empty containers), and
         * words every error. */
        rc = sd_json_validate_slow(buf, len, err, errlen);
        if (rc == 0 && ec != simdjson::NUMBER_ERROR && ec != simdjson::DEPTH_ERROR) {
            set_err(err, errlen, simdjson_reason(ec), 0, 0);
            rc = SD_EPARSE;
        }
        if (rc != 0) {
            return rc;
        }
    }
    doc = tls.spare;
    tls.spare = nullptr;
    if (doc == nullptr) {
        doc = (sd_json_doc *)malloc(sizeof(*doc));
        if (doc == nullptr) {
            return -ENOMEM;
        }
    }
    doc->text = buf;
    doc->len = len;
    *out = doc;
    return 0;
}

void sd_json_doc_free(struct sd_json_doc *doc)
{
    if (doc == nullptr) {
        return;
    }
    if (tls.spare == nullptr) {
        tls.spare = doc;
        return;
    }
    free(doc);
}

/* ---- navigation over validated text --------------------------------------------------- */

static inline const char *nav_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) {
        p++;
    }
    return p;
}

/* Returns the first position in [p, end) holding '"' or '\\', or end. Never reads past end. */
static inline const char *find_quote_or_backslash(const char *p, const char *end)
{
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i bslash = _mm_set1_epi8('\\');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        unsigned m = (unsigned)_mm_movemask_epi8(
            _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)));
        if (m != 0) {
            return p + __builtin_ctz(m);
        }
        p += 16;
    }
#endif
    while (p < end && *p != '"' && *p != '\\') {
        p++;
    }
    return p;
}

/* Returns the first position in [p, end) holding one of '"' '{' '}' '[' ']', or end. */
static inline const char *find_structural(const char *p, const char *end)
{
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i fold = _mm_set1_epi8((char)0xDF); /* '{' -> '[', '}' -> ']' */
    const __m128i open = _mm_set1_epi8('[');
    const __m128i close = _mm_set1_epi8(']');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        __m128i f = _mm_and_si128(v, fold);
        unsigned m = (unsigned)_mm_movemask_epi8(
            _mm_or_si128(_mm_cmpeq_epi8(v, quote),
                         _mm_or_si128(_mm_cmpeq_epi8(f, open), _mm_cmpeq_epi8(f, close))));
        if (m != 0) {
            return p + __builtin_ctz(m);
        }
        p += 16;
    }
#endif
    while (p < end && *p != '"' && (*p & 0xDF) != '[' && (*p & 0xDF) != ']') {
        p++;
    }
    return p;
}

/* p is at an opening quote; returns the position of the closing quote and sets *escaped when
 * the string holds a backslash. */
static inline const char *nav_string_end(const char *p, const char *end, int *escaped)
{
    p++;
    for (;;) {
        p = find_quote_or_backslash(p, end);
        if (p >= end || *p == '"') {
            return p;
        }
        *escaped = 1;
        p += 2;
    }
}

/* Byte classes ending a number or literal: ',', '}', ']' and whitespace. */
static inline int nav_is_delim(char c)
{
    return c == ',' || c == '}' || c == ']' || c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* p is at the first byte of a value; returns the position just past it. */
static const char *nav_skip_value(const char *p, const char *end)
{
    size_t depth = 0;
    int escaped = 0;

    if (p >= end) {
        return end;
    }
    if (*p == '"') {
        return nav_string_end(p, end, &escaped) + 1;
    }
    if (*p == '{' || *p == '[') {
        for (;;) {
            p = find_structural(p, end);
            if (p >= end) {
                return end;
            }
            if (*p == '"') {
                p = nav_string_end(p, end, &escaped);
            } else if (*p == '{' || *p == '[') {
                depth++;
            } else if (--depth == 0) {
                return p + 1;
            }
            p++;
        }
    }
    while (p < end && !nav_is_delim(*p)) {
        p++;
    }
    return p;
}

/* Decodes the escape at r (r[0] == '\\') of a validated string. Writes the code point to *cp
 * and returns the number of bytes consumed. */
static size_t decode_escape(const char *r, unsigned *cp)
{
    unsigned v = 0;
    unsigned lo = 0xDC00;

    switch (r[1]) {
    case 'b':
        *cp = '\b';
        return 2;
    case 'f':
        *cp = '\f';
        return 2;
    case 'n':
        *cp = '\n';
        return 2;
    case 'r':
        *cp = '\r';
        return 2;
    case 't':
        *cp = '\t';
        return 2;
    case 'u':
        read_hex4((const unsigned char *)r + 2, 4, &v);
        if (v >= 0xD800 && v <= 0xDBFF) {
            read_hex4((const unsigned char *)r + 8, 4, &lo);
            *cp = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
            return 12;
        }
        *cp = v;
        return 6;
    default:
        *cp = (unsigned char)r[1];
        return 2;
    }
}

/* Compares the raw key r[0..rlen) (escaped when escaped is set) of a validated document with
 * key. */
static int key_eq(const char *r, size_t rlen, int escaped, const char *key, size_t klen)
{
    size_t i = 0;
    size_t j = 0;
    char tmp[4];
    unsigned cp;
    size_t n;

    if (!escaped) {
        return rlen == klen && memcmp(r, key, klen) == 0;
    }
    while (i < rlen) {
        if (r[i] != '\\') {
            if (j >= klen || r[i] != key[j]) {
                return 0;
            }
            i++;
            j++;
            continue;
        }
        i += decode_escape(r + i, &cp);
        n = sd_utf8_encode(cp, tmp);
        if (j + n > klen || memcmp(tmp, key + j, n) != 0) {
            return 0;
        }
        j += n;
    }
    return j == klen;
}

/* p is at '{'; returns the value of the first member named key, or NULL. */
static const char *nav_member(const char *p, const char *end, const char *key, size_t klen)
{
    const char *ks;
    const char *ke;
    int escaped;

    p = nav_ws(p + 1, end);
    if (p >= end || *p != '"') {
        return NULL;
    }
    for (;;) {
        ks = p + 1;
        escaped = 0;
        ke = nav_string_end(p, end, &escaped);
        p = nav_ws(ke + 1, end); /* ':' */
        p = nav_ws(p + 1, end);  /* the value */
        if (key_eq(ks, (size_t)(ke - ks), escaped, key, klen)) {
            return p;
        }
        p = nav_ws(nav_skip_value(p, end), end);
        if (p >= end || *p != ',') {
            return NULL;
        }
        p = nav_ws(p + 1, end);
    }
}

/* p is at '['; returns element idx, or NULL. */
static const char *nav_element(const char *p, const char *end, size_t idx)
{
    p = nav_ws(p + 1, end);
    if (p >= end || *p == ']') {
        return NULL;
    }
    for (size_t i = 0;; i++) {
        if (i == idx) {
            return p;
        }
        p = nav_ws(nav_skip_value(p, end), end);
        if (p >= end || *p != ',') {
            return NULL;
        }
        p = nav_ws(p + 1, end);
    }
}

/* ---- serialization -------------------------------------------------------------------- */

static const char hex_digits[] = "0123456789abcdef";

/* Writes code point cp as it appears inside a minimally escaped JSON string; returns bytes. */
static size_t put_escaped_cp(char *w, unsigned cp)
{
    switch (cp) {
    case '"':
        w[0] = '\\';
        w[1] = '"';
        return 2;
    case '\\':
        w[0] = '\\';
        w[1] = '\\';
        return 2;
    case '\n':
        w[0] = '\\';
        w[1] = 'n';
        return 2;
    case '\r':
        w[0] = '\\';
        w[1] = 'r';
        return 2;
    case '\t':
        w[0] = '\\';
        w[1] = 't';
        return 2;
    case '\b':
        w[0] = '\\';
        w[1] = 'b';
        return 2;
    case '\f':
        w[0] = '\\';
        w[1] = 'f';
        return 2;
    default:
        if (cp < 0x20) {
            memcpy(w, "\\u00", 4);
            w[4] = hex_digits[cp >> 4];
            w[5] = hex_digits[cp & 0xF];
            return 6;
        }
        return sd_utf8_encode(cp, w);
    }
}

/* Appends the compact encoding of the validated value text [p, vend). The encoding is never
 * longer than the text: every escape written replaces an escape at least as long. */
static int write_compact(const char *p, const char *vend, struct sd_buf *out)
{
    int rc = sd_buf_reserve(out, (size_t)(vend - p));
    char *w;
    const char *se;
    int escaped;
    unsigned cp;

    if (rc != 0) {
        return rc;
    }
    w = out->data + out->len;
    while (p < vend) {
        char c = *p;
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
            p++;
            continue;
        }
        if (c != '"') {
            *w++ = c;
            p++;
            continue;
        }
        escaped = 0;
        se = nav_string_end(p, vend, &escaped);
        if (!escaped) {
            memcpy(w, p, (size_t)(se - p + 1));
            w += se - p + 1;
            p = se + 1;
            continue;
        }
        *w++ = '"';
        p++;
        while (p < se) {
            if (*p != '\\') {
                *w++ = *p++;
                continue;
            }
            p += decode_escape(p, &cp);
            w += put_escaped_cp(w, cp);
        }
        *w++ = '"';
        p = se + 1;
    }
    out->len = (size_t)(w - out->data);
    out->data[out->len] = '\0';
    return 0;
}

/* Appends the decoded content of the validated string body r[0..rlen). With reject_nul, a NUL
 * character returns SD_EINVAL (out unchanged). Returns 0, SD_EINVAL or -ENOMEM. */
static int write_decoded(const char *r, size_t rlen, int reject_nul, struct sd_buf *out)
{
    int rc = sd_buf_reserve(out, rlen);
    const char *end = r + rlen;
    const char *bs;
    char *w;
    unsigned cp;

    if (rc != 0) {
        return rc;
    }
    w = out->data + out->len;
    while (r < end) {
        bs = (const char *)memchr(r, '\\', (size_t)(end - r));
        if (bs == NULL) {
            bs = end;
        }
        memcpy(w, r, (size_t)(bs - r));
        w += bs - r;
        r = bs;
        if (r >= end) {
            break;
        }
        r += decode_escape(r, &cp);
        if (cp == 0 && reject_nul) {
            out->data[out->len] = '\0';
            return SD_EINVAL;
        }
        w += sd_utf8_encode(cp, w);
    }
    out->len = (size_t)(w - out->data);
    out->data[out->len] = '\0';
    return 0;
}

int sd_json_write_string(struct sd_buf *out, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    size_t run;
    size_t n;
    char *w;
    int rc;

    /* Worst case: every byte becomes \u00XX (6) or U+FFFD (3). */
    if (len > (SIZE_MAX - 2) / 6) {
        return -ENOMEM;
    }
    rc = sd_buf_reserve(out, len * 6 + 2);
    if (rc != 0) {
        return rc;
    }
    w = out->data + out->len;
    *w++ = '"';
    while (i < len) {
        run = i;
        while (run < len && u[run] >= 0x20 && u[run] < 0x80 && u[run] != '"' && u[run] != '\\') {
            run++;
        }
        memcpy(w, s + i, run - i);
        w += run - i;
        i = run;
        if (i >= len) {
            break;
        }
        if (u[i] < 0x80) {
            w += put_escaped_cp(w, u[i]);
            i++;
            continue;
        }
        n = sd_utf8_seq_len((const char *)u + i, len - i);
        if (n == 0) {
            memcpy(w, "\xEF\xBF\xBD", 3);
            w += 3;
            i++;
            continue;
        }
        memcpy(w, s + i, n);
        w += n;
        i += n;
    }
    *w++ = '"';
    out->len = (size_t)(w - out->data);
    out->data[out->len] = '\0';
    return 0;
}

int sd_json_doc_compact(const struct sd_json_doc *doc, struct sd_buf *out)
{
    const char *end = doc->text + doc->len;
    const char *p = nav_ws(doc->text, end);

    return write_compact(p, nav_skip_value(p, end), out);
}

/* ---- paths ---------------------------------------------------------------------------- */

void sd_json_cpath_fini(struct sd_json_cpath *cp)
{
    free(cp->segs);
    free(cp->text);
    cp->segs = NULL;
    cp->text = NULL;
    cp->nsegs = 0;
}

int sd_json_cpath_compile(const char *path, size_t len, struct sd_json_cpath *cp, char *err,
                          size_t errlen)
{
    const char *why = NULL;
    size_t max_segs = 1;
    size_t i = 0;
    size_t start;
    size_t idx;
    struct sd_json_seg *seg;

    cp->segs = NULL;
    cp->text = NULL;
    cp->nsegs = 0;
    if (len == 0) {
        set_err(err, errlen, "empty path", 0, 0);
        return SD_EPARSE;
    }
    if (memchr(path, '\0', len) != NULL) {
        set_err(err, errlen, "NUL character in the path", 0, 0);
        return SD_EPARSE;
    }
    for (size_t k = 0; k < len; k++) {
        max_segs += path[k] == '.' || path[k] == '[';
    }
    cp->text = (char *)malloc(len + 1);
    cp->segs = (struct sd_json_seg *)calloc(max_segs, sizeof(*cp->segs));
    if (cp->text == NULL || cp->segs == NULL) {
        sd_json_cpath_fini(cp);
        return -ENOMEM;
    }
    memcpy(cp->text, path, len);
    cp->text[len] = '\0';
    path = cp->text;

    if (path[0] == '.') {
        why = "empty key";
    }
    while (why == NULL && i < len) {
        seg = &cp->segs[cp->nsegs];
        if (path[i] == '[') {
            i++;
            idx = 0;
            start = i;
            while (i < len && is_digit((unsigned char)path[i])) {
                if (idx > (SIZE_MAX - 9) / 10) {
                    why = "array index too large";
                    break;
                }
                idx = idx * 10 + (size_t)(path[i] - '0');
                i++;
            }
            if (why != NULL) {
                break;
            }
            if (i == start || i >= len || path[i] != ']') {
                why = "expected digits and ']' after '['";
                break;
            }
            i++;
            seg->key = NULL;
            seg->index = idx;
            cp->nsegs++;
            if (i < len && path[i] != '.' && path[i] != '[') {
                why = "expected '.' or '[' after ']'";
                break;
            }
        } else {
            start = i;
            while (i < len && path[i] != '.' && path[i] != '[' && path[i] != ']') {
                i++;
            }
            if (i < len && path[i] == ']') {
                why = "unexpected ']'";
                break;
            }
            seg->key = path + start;
            seg->key_len = i - start;
            cp->nsegs++;
        }
        if (i < len && path[i] == '.') {
            i++;
            if (i >= len || path[i] == '.' || path[i] == '[') {
                why = "empty key";
                break;
            }
        }
    }
    if (why == NULL && cp->nsegs > SD_JSON_MAX_DEPTH) {
        why = "path deeper than 128 levels";
    }
    if (why != NULL) {
        set_err(err, errlen, why, i, 1);
        sd_json_cpath_fini(cp);
        return SD_EPARSE;
    }
    return 0;
}

/* Returns the first byte of the value at cp in doc (NULL or no segments: the document), or
 * NULL when there is none. */
static const char *nav_lookup(const struct sd_json_doc *doc, const struct sd_json_cpath *cp)
{
    const char *end = doc->text + doc->len;
    const char *p = nav_ws(doc->text, end);
    const struct sd_json_seg *seg;
    size_t nsegs = cp != NULL ? cp->nsegs : 0;

    for (size_t i = 0; i < nsegs; i++) {
        seg = &cp->segs[i];
        if (p >= end) {
            return NULL;
        }
        if (seg->key != NULL) {
            p = *p == '{' ? nav_member(p, end, seg->key, seg->key_len) : NULL;
        } else {
            p = *p == '[' ? nav_element(p, end, seg->index) : NULL;
        }
        if (p == NULL) {
            return NULL;
        }
    }
    return p < end ? p : NULL;
}

int sd_json_cpath_lookup(const struct sd_json_doc *doc, const struct sd_json_cpath *cp,
                         int raw_string, struct sd_buf *out, int *found)
{
    const char *end = doc->text + doc->len;
    const char *p = nav_lookup(doc, cp);
    const char *vend;

    *found = 0;
    if (p == NULL) {
        return 0;
    }
    vend = nav_skip_value(p, end);
    *found = 1;
    if (raw_string && *p == '"') {
        return write_decoded(p + 1, (size_t)(vend - p - 2), 1, out);
    }
    return write_compact(p, vend, out);
}

int sd_json_path(const struct sd_json_doc *doc, const char *path, size_t path_len, int raw_string,
                 struct sd_buf *out, int *found)
{
    struct sd_json_cpath cp;
    int rc;

    *found = 0;
    rc = sd_json_cpath_compile(path, path_len, &cp, NULL, 0);
    if (rc != 0) {
        return rc;
    }
    rc = sd_json_cpath_lookup(doc, &cp, raw_string, out, found);
    sd_json_cpath_fini(&cp);
    return rc;
}

int sd_json_path_check(const char *path, size_t len)
{
    struct sd_json_cpath cp;
    int rc = sd_json_cpath_compile(path, len, &cp, NULL, 0);

    if (rc == 0) {
        sd_json_cpath_fini(&cp);
    }
    return rc;
}

/* ---- walking a value ------------------------------------------------------------------ */

/* Decodes the escaped, validated string body r[0..rlen) into scratch (NUL characters kept).
 * Returns 0 or -ENOMEM. */
static int decode_string(const char *r, size_t rlen, struct sd_buf *scratch)
{
    sd_buf_reset(scratch);
    return write_decoded(r, rlen, 0, scratch);
}

/* p is at the opening quote of a validated string: emits it as ev (STRING or KEY) and returns
 * the position after the closing quote in *next. Returns 0, the visitor's value or -ENOMEM. */
static int walk_string(const char *p, const char *end, enum sd_json_event ev, sd_json_visit_fn fn,
                       void *ctx, struct sd_buf *scratch, const char **next)
{
    int escaped = 0;
    const char *se = nav_string_end(p, end, &escaped);
    int rc;

    *next = se + 1;
    if (!escaped) {
        return fn(ctx, ev, p + 1, (size_t)(se - p - 1));
    }
    rc = decode_string(p + 1, (size_t)(se - p - 1), scratch);
    if (rc != 0) {
        return rc;
    }
    return fn(ctx, ev, scratch->data, scratch->len);
}

int sd_json_cpath_walk(const struct sd_json_doc *doc, const struct sd_json_cpath *cp,
                       sd_json_visit_fn fn, void *ctx, int *found)
{
    const char *end = doc->text + doc->len;
    const char *p = nav_lookup(doc, cp);
    const char *q;
    char stack[SD_JSON_MAX_DEPTH + 1]; /* '{' or '[' per open container */
    size_t depth = 0;
    struct sd_buf scratch = SD_BUF_INIT;
    int rc = 0;

    *found = p != NULL;
    if (p == NULL) {
        return 0;
    }
    for (;;) {
        /* p is at the first byte of a value. */
        switch (*p) {
        case '{':
        case '[':
            rc = fn(ctx, *p == '{' ? SD_JSON_EV_OBJECT_BEGIN : SD_JSON_EV_ARRAY_BEGIN, NULL, 0);
            if (rc != 0) {
                goto out;
            }
            q = nav_ws(p + 1, end);
            if (q < end && (*q == '}' || *q == ']')) {
                rc = fn(ctx, *q == '}' ? SD_JSON_EV_OBJECT_END : SD_JSON_EV_ARRAY_END, NULL, 0);
                p = q + 1;
                break;
            }
            stack[depth++] = *p;
            p = q;
            if (stack[depth - 1] == '{') {
                rc = walk_string(p, end, SD_JSON_EV_KEY, fn, ctx, &scratch, &q);
                if (rc != 0) {
                    goto out;
                }
                p = nav_ws(nav_ws(q, end) + 1, end); /* past ':' */
            }
            continue;
        case '"':
            rc = walk_string(p, end, SD_JSON_EV_STRING, fn, ctx, &scratch, &p);
            break;
        case 't':
            rc = fn(ctx, SD_JSON_EV_TRUE, NULL, 0);
            p += 4;
            break;
        case 'f':
            rc = fn(ctx, SD_JSON_EV_FALSE, NULL, 0);
            p += 5;
            break;
        case 'n':
            rc = fn(ctx, SD_JSON_EV_NULL, NULL, 0);
            p += 4;
            break;
        default:
            q = p;
            while (q < end && !nav_is_delim(*q)) {
                q++;
            }
            rc = fn(ctx, SD_JSON_EV_NUMBER, p, (size_t)(q - p));
            p = q;
            break;
        }
        /* After a complete value: close containers until one has a next item. */
        while (rc == 0) {
            if (depth == 0) {
                goto out;
            }
            p = nav_ws(p, end);
            if (p < end && *p == ',') {
                p = nav_ws(p + 1, end);
                if (stack[depth - 1] == '{') {
                    rc = walk_string(p, end, SD_JSON_EV_KEY, fn, ctx, &scratch, &q);
                    p = nav_ws(nav_ws(q, end) + 1, end);
                }
                break;
            }
            depth--;
            rc = fn(ctx, stack[depth] == '{' ? SD_JSON_EV_OBJECT_END : SD_JSON_EV_ARRAY_END, NULL,
                    0);
            p++;
        }
        if (rc != 0) {
            goto out;
        }
    }
out:
    sd_buf_fini(&scratch);
    return rc;
}
