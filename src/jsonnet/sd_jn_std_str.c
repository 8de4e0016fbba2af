/* sd_jn_std_str.c: the std library's string natives: substrings, splitting, replacing, case,
 * stripping, searching, integer parsing, std.format, and the encodings and hashes (base64, UTF-8,
 * md5/sha via libcrypto). Strings are UTF-8 indexed by code point; searches run on bytes, which
 * UTF-8's self-synchronisation makes equivalent. */
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

#include <openssl/evp.h>

#include "core/sd_alloc.h"
#include "jsonnet/sd_jn_std_int.h"

/* A string argument's bytes. */
#define SDATA(v) ((v).u.s->data)
#define SLEN(v) ((v).u.s->len)

static int want_strings(struct sd_jn_vm *vm, const char *fn, struct sd_jn_val *args, unsigned n)
{
    unsigned i;

    for (i = 0; i < n; i++) {
        if (sd__jn_want(vm, fn, i, &args[i], SD_JN_STRING) != 0) {
            return SD_JN_ERR;
        }
    }
    return 0;
}

/* First byte offset >= from where pat occurs in s, or (size_t)-1. */
static size_t find_bytes(const char *s, size_t len, const char *pat, size_t plen, size_t from)
{
    const char *p;

    if (plen == 0 || plen > len) {
        return (size_t)-1;
    }
    while (from + plen <= len) {
        p = memchr(s + from, (unsigned char)pat[0], len - plen + 1 - from);
        if (p == NULL) {
            return (size_t)-1;
        }
        if (memcmp(p, pat, plen) == 0) {
            return (size_t)(p - s);
        }
        from = (size_t)(p - s) + 1;
    }
    return (size_t)-1;
}

/* Last byte offset o with o + plen <= end where pat occurs in s, or (size_t)-1. */
static size_t rfind_bytes(const char *s, size_t end, const char *pat, size_t plen)
{
    size_t o;

    if (plen == 0 || plen > end) {
        return (size_t)-1;
    }
    o = end - plen + 1;
    while (o-- > 0) {
        if (s[o] == pat[0] && memcmp(s + o, pat, plen) == 0) {
            return o;
        }
    }
    return (size_t)-1;
}

SD__JN_NATIVE(substr)
{
    const struct sd_jn_str *s;
    double from;
    double len;
    size_t a;
    size_t b;

    if (sd__jn_want(vm, "substr", 0, &args[0], SD_JN_STRING) != 0 ||
        sd__jn_want_int(vm, "substr", 1, &args[1], &from) != 0 ||
        sd__jn_want_int(vm, "substr", 2, &args[2], &len) != 0) {
        return SD_JN_ERR;
    }
    if (from < 0) {
        return sd_jn_throw(vm, "std.substr: second argument must not be negative, got %g",
                           args[1].u.n);
    }
    if (len < 0) {
        return sd_jn_throw(vm, "std.substr: third argument must not be negative, got %g",
                           args[2].u.n);
    }
    s = args[0].u.s;
    if (from >= (double)s->ncp || len == 0) {
        *out = sd_jn_string(vm, "", 0);
        return 0;
    }
    if (from + len > (double)s->ncp) {
        len = (double)s->ncp - from;
    }
    a = sd_jn_str_offset(s, (size_t)from);
    b = sd_jn_str_offset(s, (size_t)from + (size_t)len);
    if (sd_jn_tick(vm, SD__JN_STR_TICKS(b - a)) != 0) {
        return SD_JN_ERR;
    }
    *out = sd_jn_string(vm, s->data + a, b - a);
    return 0;
}

SD__JN_NATIVE(startsWith)
{
    if (want_strings(vm, "startsWith", args, 2) != 0) {
        return SD_JN_ERR;
    }
    *out = sd_jn_bool(SLEN(args[1]) <= SLEN(args[0]) &&
                      memcmp(SDATA(args[0]), SDATA(args[1]), SLEN(args[1])) == 0);
    return 0;
}

SD__JN_NATIVE(endsWith)
{
    if (want_strings(vm, "endsWith", args, 2) != 0) {
        return SD_JN_ERR;
    }
    *out = sd_jn_bool(
        SLEN(args[1]) <= SLEN(args[0]) &&
        memcmp(SDATA(args[0]) + SLEN(args[0]) - SLEN(args[1]), SDATA(args[1]), SLEN(args[1])) == 0);
    return 0;
}

/* Splits s at sep, at most maxsplits times (-1: no limit), from the left or the right. */
static int split_common(struct sd_jn_vm *vm, const char *fn, struct sd_jn_val *args, double max,
                        int from_right, struct sd_jn_val *out)
{
    const char *s;
    const char *sep;
    size_t len;
    size_t slen;
    size_t *cuts = NULL; /* byte offsets of the separators used, in string order */
    size_t ncuts = 0;
    size_t cap = 0;
    size_t pos;
    size_t i;
    size_t start;
    size_t end;
    struct sd_jn_arr *a;
    int rc = SD_JN_ERR;

    if (want_strings(vm, fn, args, 2) != 0) {
        return SD_JN_ERR;
    }
    s = SDATA(args[0]);
    len = SLEN(args[0]);
    sep = SDATA(args[1]);
    slen = SLEN(args[1]);
    if (slen == 0) {
        return sd_jn_throw(vm, "std.%s: the separator must not be empty", fn);
    }
    if (sd_jn_tick(vm, SD__JN_STR_TICKS(len)) != 0) {
        return SD_JN_ERR;
    }
    if (!from_right || max < 0) {
        pos = 0;
        while ((max < 0 || (double)ncuts < max) &&
               (pos = find_bytes(s, len, sep, slen, pos)) != (size_t)-1) {
            if (ncuts == cap) {
                cap = cap ? cap * 2 : 16;
                cuts = sd_xrealloc(cuts, cap * sizeof(*cuts));
            }
            cuts[ncuts++] = pos;
            pos += slen;
        }
    } else {
        end = len;
        while ((double)ncuts < max && (pos = rfind_bytes(s, end, sep, slen)) != (size_t)-1) {
            if (ncuts == cap) {
                cap = cap ? cap * 2 : 16;
                cuts = sd_xrealloc(cuts, cap * sizeof(*cuts));
            }
            cuts[ncuts++] = pos;
            end = pos;
        }
        for (i = 0; i < ncuts / 2; i++) {
            pos = cuts[i];
            cuts[i] = cuts[ncuts - 1 - i];
            cuts[ncuts - 1 - i] = pos;
        }
    }
    if (sd_jn_tick(vm, ncuts) != 0) {
        goto done;
    }
    a = sd_jn_arr_new(vm, ncuts + 1);
    start = 0;
    for (i = 0; i <= ncuts; i++) {
        end = i < ncuts ? cuts[i] : len;
        sd_jn_arr_set(vm, a, i, sd_jn_string(vm, s + start, end - start));
        start = end + slen;
    }
    *out = sd_jn_array(a);
    rc = 0;
done:
    free(cuts);
    return rc;
}

SD__JN_NATIVE(split)
{
    return split_common(vm, "split", args, -1, 0, out);
}

static int split_limit(struct sd_jn_vm *vm, const char *fn, struct sd_jn_val *args, int from_right,
                       struct sd_jn_val *out)
{
    double max;

    if (sd__jn_want_int(vm, fn, 2, &args[2], &max) != 0) {
        return SD_JN_ERR;
    }
    if (max < 0) {
        max = -1; /* any negative count means "no limit", as libjsonnet's native */
    }
    return split_common(vm, fn, args, max, from_right, out);
}

SD__JN_NATIVE(splitLimit)
{
    return split_limit(vm, "splitLimit", args, 0, out);
}

SD__JN_NATIVE(splitLimitR)
{
    return split_limit(vm, "splitLimitR", args, 1, out);
}

SD__JN_NATIVE(strReplace)
{
    struct sd_buf b = sd_jn_buf(vm);
    const char *s;
    size_t len;
    size_t flen;
    size_t pos = 0;
    size_t at;

    if (want_strings(vm, "strReplace", args, 3) != 0) {
        return SD_JN_ERR;
    }
    s = SDATA(args[0]);
    len = SLEN(args[0]);
    flen = SLEN(args[1]);
    if (flen == 0) {
        return sd_jn_throw(vm, "std.strReplace: 'from' string must not be zero length.");
    }
    if (sd_jn_tick(vm, SD__JN_STR_TICKS(len)) != 0) {
        return SD_JN_ERR;
    }
    at = find_bytes(s, len, SDATA(args[1]), flen, 0);
    if (at == (size_t)-1) {
        *out = args[0];
        return 0;
    }
    while (at != (size_t)-1) {
        sd_buf_append(&b, s + pos, at - pos);
        sd_buf_append(&b, SDATA(args[2]), SLEN(args[2]));
        if (sd_jn_tick(vm, SD__JN_STR_TICKS(SLEN(args[2]))) != 0) {
            sd_buf_fini(&b);
            return SD_JN_ERR;
        }
        pos = at + flen;
        at = find_bytes(s, len, SDATA(args[1]), flen, pos);
    }
    sd_buf_append(&b, s + pos, len - pos);
    sd__jn_buf_string(vm, &b, out);
    sd_buf_fini(&b);
    return 0;
}

static int ascii_case(struct sd_jn_vm *vm, const char *fn, struct sd_jn_val *args, int upper,
                      struct sd_jn_val *out)
{
    struct sd_jn_str *r;
    const struct sd_jn_str *s;
    size_t i;
    char c;

    if (sd__jn_want(vm, fn, 0, &args[0], SD_JN_STRING) != 0 ||
        sd_jn_tick(vm, SD__JN_STR_TICKS(SLEN(args[0]))) != 0) {
        return SD_JN_ERR;
    }
    s = args[0].u.s;
    r = sd_jn_str_new(vm, s->data, s->len);
    for (i = 0; i < r->len; i++) {
        c = r->data[i];
        if (upper && c >= 'a' && c <= 'z') {
            r->data[i] = (char)(c - 'a' + 'A');
        } else if (!upper && c >= 'A' && c <= 'Z') {
            r->data[i] = (char)(c - 'A' + 'a');
        }
    }
    out->type = SD_JN_STRING;
    out->u.s = r;
    return 0;
}

SD__JN_NATIVE(asciiLower)
{
    return ascii_case(vm, "asciiLower", args, 0, out);
}

SD__JN_NATIVE(asciiUpper)
{
    return ascii_case(vm, "asciiUpper", args, 1, out);
}

SD__JN_NATIVE(stringChars)
{
    const struct sd_jn_str *s;
    struct sd_jn_arr *a;
    size_t i;
    size_t off = 0;
    size_t n;
    uint32_t cp;

    if (sd__jn_want(vm, "stringChars", 0, &args[0], SD_JN_STRING) != 0) {
        return SD_JN_ERR;
    }
    s = args[0].u.s;
    if (sd_jn_tick(vm, s->ncp) != 0) {
        return SD_JN_ERR;
    }
    a = sd_jn_arr_new(vm, s->ncp);
    for (i = 0; i < s->ncp; i++) {
        n = sd_utf8_decode(s->data + off, &cp);
        sd_jn_arr_set(vm, a, i, sd_jn_string(vm, s->data + off, n));
        off += n;
    }
    *out = sd_jn_array(a);
    return 0;
}

SD__JN_NATIVE(codepoint)
{
    uint32_t cp;

    if (sd__jn_want(vm, "codepoint", 0, &args[0], SD_JN_STRING) != 0) {
        return SD_JN_ERR;
    }
    if (args[0].u.s->ncp != 1) {
        return sd_jn_throw(vm, "std.codepoint: takes a string of length 1, got length %zu",
                           args[0].u.s->ncp);
    }
    (void)sd_utf8_decode(args[0].u.s->data, &cp);
    *out = sd_jn_number((double)cp);
    return 0;
}

SD__JN_NATIVE(char)
{
    char tmp[4];
    double t;

    if (sd__jn_want(vm, "char", 0, &args[0], SD_JN_NUMBER) != 0) {
        return SD_JN_ERR;
    }
    t = trunc(args[0].u.n);
    if (!(t >= 0 && t <= 0x10FFFF) || (t >= 0xD800 && t <= 0xDFFF)) {
        return sd_jn_throw(vm, "std.char: invalid unicode code point, got %g", args[0].u.n);
    }
    *out = sd_jn_string(vm, tmp, sd_utf8_encode((uint32_t)t, tmp));
    return 0;
}

/* The code points of a strip set: a string's, or an array's one-character strings. */
struct cpset {
    uint32_t *cps;
    size_t n;
};

static int cpset_init(struct sd_jn_vm *vm, const char *fn, struct sd_jn_val *chars,
                      struct cpset *set)
{
    size_t i;
    size_t off = 0;
    size_t len;
    struct sd_jn_val e;

    set->n = 0;
    set->cps = NULL;
    if (chars->type == SD_JN_STRING) {
        set->cps = sd_jn_alloc(vm, (chars->u.s->ncp + 1) * sizeof(uint32_t));
        for (i = 0; i < chars->u.s->ncp; i++) {
            off += sd_utf8_decode(chars->u.s->data + off, &set->cps[set->n++]);
        }
        return 0;
    }
    if (chars->type != SD_JN_ARRAY) {
        return sd_jn_throw(vm, "std.%s: second argument must be a string or an array, got %s", fn,
                           sd_jn_type_name(chars->type));
    }
    len = sd_jn_arr_len(chars->u.a);
    if (sd_jn_tick(vm, len) != 0) {
        return SD_JN_ERR;
    }
    set->cps = sd_jn_alloc(vm, (len + 1) * sizeof(uint32_t));
    for (i = 0; i < len; i++) {
        if (sd_jn_arr_get(vm, chars->u.a, i, &e) != 0) {
            return SD_JN_ERR;
        }
        if (e.type == SD_JN_STRING && e.u.s->ncp == 1) {
            (void)sd_utf8_decode(e.u.s->data, &set->cps[set->n++]);
        }
    }
    return 0;
}

static int cpset_has(const struct cpset *set, uint32_t cp)
{
    size_t i;

    for (i = 0; i < set->n; i++) {
        if (set->cps[i] == cp) {
            return 1;
        }
    }
    return 0;
}

/* Strips code points of set from the left and/or right of s. */
static void strip(struct sd_jn_vm *vm, const struct sd_jn_str *s, const struct cpset *set, int left,
                  int right, struct sd_jn_val *out)
{
    size_t a = 0;
    size_t b = s->len;
    size_t n;
    uint32_t cp;

    if (left) {
        while (a < b) {
            n = sd_utf8_decode(s->data + a, &cp);
            if (!cpset_has(set, cp)) {
                break;
            }
            a += n;
        }
    }
    if (right) {
        while (b > a) {
            n = 1;
            while (n < b - a && ((unsigned char)s->data[b - n] & 0xC0) == 0x80) {
                n++;
            }
            (void)sd_utf8_decode(s->data + b - n, &cp);
            if (!cpset_has(set, cp)) {
                break;
            }
            b -= n;
        }
    }
    if (a == 0 && b == s->len) {
        out->type = SD_JN_STRING;
        out->u.s = (struct sd_jn_str *)s;
        return;
    }
    *out = sd_jn_string(vm, s->data + a, b - a);
}

static int strip_native(struct sd_jn_vm *vm, const char *fn, struct sd_jn_val *args, int left,
                        int right, struct sd_jn_val *out)
{
    struct cpset set;

    if (sd__jn_want(vm, fn, 0, &args[0], SD_JN_STRING) != 0 ||
        cpset_init(vm, fn, &args[1], &set) != 0 ||
        sd_jn_tick(vm, SD__JN_STR_TICKS(SLEN(args[0])) * (1 + set.n / 16)) != 0) {
        return SD_JN_ERR;
    }
    strip(vm, args[0].u.s, &set, left, right, out);
    return 0;
}

SD__JN_NATIVE(stripChars)
{
    return strip_native(vm, "stripChars", args, 1, 1, out);
}

SD__JN_NATIVE(lstripChars)
{
    return strip_native(vm, "lstripChars", args, 1, 0, out);
}

SD__JN_NATIVE(rstripChars)
{
    return strip_native(vm, "rstripChars", args, 0, 1, out);
}

SD__JN_NATIVE(trim)
{
    static uint32_t ws[] = {' ', '\t', '\n', '\f', '\r', 0x85, 0xA0};
    struct cpset set = {ws, sizeof(ws) / sizeof(ws[0])};

    if (sd__jn_want(vm, "trim", 0, &args[0], SD_JN_STRING) != 0 ||
        sd_jn_tick(vm, SD__JN_STR_TICKS(SLEN(args[0]))) != 0) {
        return SD_JN_ERR;
    }
    strip(vm, args[0].u.s, &set, 1, 1, out);
    return 0;
}

SD__JN_NATIVE(isEmpty)
{
    if (sd__jn_want(vm, "isEmpty", 0, &args[0], SD_JN_STRING) != 0) {
        return SD_JN_ERR;
    }
    *out = sd_jn_bool(SLEN(args[0]) == 0);
    return 0;
}

SD__JN_NATIVE(findSubstr)
{
    const struct sd_jn_str *pat;
    const struct sd_jn_str *s;
    double *idx = NULL;
    size_t n = 0;
    size_t cap = 0;
    size_t off = 0; /* byte offset of the candidate */
    size_t cpi = 0; /* its code point index */
    size_t next;
    size_t i;
    struct sd_jn_arr *a;

    if (want_strings(vm, "findSubstr", args, 2) != 0) {
        return SD_JN_ERR;
    }
    pat = args[0].u.s;
    s = args[1].u.s;
    if (sd_jn_tick(vm, SD__JN_STR_TICKS(s->len)) != 0) {
        return SD_JN_ERR;
    }
    while (pat->len > 0 &&
           (next = find_bytes(s->data, s->len, pat->data, pat->len, off)) != (size_t)-1) {
        /* Count the code points between the previous candidate and this match. */
        for (; off < next; off++) {
            if (((unsigned char)s->data[off] & 0xC0) != 0x80) {
                cpi++;
            }
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            idx = sd_xrealloc(idx, cap * sizeof(*idx));
        }
        idx[n++] = (double)cpi;
        /* Overlapping matches: the next candidate is the next code point. */
        off++;
        cpi++;
        while (off < s->len && ((unsigned char)s->data[off] & 0xC0) == 0x80) {
            off++;
        }
    }
    if (sd_jn_tick(vm, n) != 0) {
        free(idx);
        return SD_JN_ERR;
    }
    a = sd_jn_arr_new(vm, n);
    for (i = 0; i < n; i++) {
        sd_jn_arr_set(vm, a, i, sd_jn_number(idx[i]));
    }
    free(idx);
    *out = sd_jn_array(a);
    return 0;
}

/* The text of std.escapeString*'s argument: a string as is, anything else std.toString'd into
 * tmp (which the caller finis). Charges steps for its length. */
static int text_of(struct sd_jn_vm *vm, const struct sd_jn_val *v, struct sd_buf *tmp,
                   const char **p, size_t *len)
{
    if (v->type == SD_JN_STRING) {
        *p = v->u.s->data;
        *len = v->u.s->len;
    } else {
        if (sd_jn_to_string(vm, v, tmp) != 0) {
            return SD_JN_ERR;
        }
        *p = tmp->len ? tmp->data : "";
        *len = tmp->len;
    }
    return sd_jn_tick(vm, SD__JN_STR_TICKS(*len));
}

SD__JN_NATIVE(escapeStringJson)
{
    struct sd_buf s = sd_jn_buf(vm);
    struct sd_buf b = sd_jn_buf(vm);
    const char *p;
    size_t len;
    int rc = SD_JN_ERR;

    if (text_of(vm, &args[0], &s, &p, &len) == 0) {
        sd_jn_escape_string(&b, p, len);
        sd__jn_buf_string(vm, &b, out);
        rc = 0;
    }
    sd_buf_fini(&s);
    sd_buf_fini(&b);
    return rc;
}

SD__JN_NATIVE(escapeStringPython)
{
    return sd__jn_std_escapeStringJson(vm, args, out);
}

/* Appends open, the text of v with every byte that has a replacement in subst (indexed by byte)
 * replaced by it, then close. */
static int escape_bytes(struct sd_jn_vm *vm, const struct sd_jn_val *v,
                        const char *const subst[256], const char *open, const char *close,
                        struct sd_jn_val *out)
{
    struct sd_buf s = sd_jn_buf(vm);
    struct sd_buf b = sd_jn_buf(vm);
    const char *p;
    size_t len;
    size_t i;
    size_t run = 0;
    int rc = SD_JN_ERR;

    if (text_of(vm, v, &s, &p, &len) != 0) {
        goto done;
    }
    sd_buf_append_str(&b, open);
    for (i = 0; i < len; i++) {
        const char *r = subst[(unsigned char)p[i]];
        if (r != NULL) {
            sd_buf_append(&b, p + run, i - run);
            sd_buf_append_str(&b, r);
            run = i + 1;
        }
    }
    sd_buf_append(&b, p + run, len - run);
    sd_buf_append_str(&b, close);
    sd__jn_buf_string(vm, &b, out);
    rc = 0;
done:
    sd_buf_fini(&s);
    sd_buf_fini(&b);
    return rc;
}

SD__JN_NATIVE(escapeStringBash)
{
    static const char *const subst[256] = {['\''] = "'\"'\"'"};

    return escape_bytes(vm, &args[0], subst, "'", "'", out);
}

SD__JN_NATIVE(escapeStringDollars)
{
    static const char *const subst[256] = {['$'] = "$$"};

    return escape_bytes(vm, &args[0], subst, "", "", out);
}

SD__JN_NATIVE(escapeStringXML)
{
    static const char *const subst[256] = {
        ['<'] = "&lt;", ['>'] = "&gt;", ['&'] = "&amp;", ['"'] = "&quot;", ['\''] = "&apos;"};

    return escape_bytes(vm, &args[0], subst, "", "", out);
}

/* The process's C.UTF-8 character classes for Unicode case mapping, or (locale_t)0 when the
 * locale is missing (then only ASCII letters fold). */
static locale_t utf8_locale;
static pthread_once_t utf8_locale_once = PTHREAD_ONCE_INIT;

static void utf8_locale_init(void)
{
    utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

static int fold_equal(uint32_t a, uint32_t b)
{
    if (a == b) {
        return 1;
    }
    if (utf8_locale == (locale_t)0) {
        if (a < 128 && b < 128) {
            return (a | 0x20) == (b | 0x20) && (a | 0x20) >= 'a' && (a | 0x20) <= 'z';
        }
        return 0;
    }
    return towlower_l((wint_t)a, utf8_locale) == towlower_l((wint_t)b, utf8_locale) ||
           towupper_l((wint_t)a, utf8_locale) == towupper_l((wint_t)b, utf8_locale);
}

/* Unicode simple case folding, code point by code point, as Go's strings.EqualFold (which
 * go-jsonnet uses; std.jsonnet's asciiLower version folds ASCII only). */
SD__JN_NATIVE(equalsIgnoreCase)
{
    const struct sd_jn_str *a;
    const struct sd_jn_str *b;
    size_t i = 0;
    size_t j = 0;
    uint32_t ca;
    uint32_t cb;

    if (want_strings(vm, "equalsIgnoreCase", args, 2) != 0) {
        return SD_JN_ERR;
    }
    a = args[0].u.s;
    b = args[1].u.s;
    if (sd_jn_tick(vm, SD__JN_STR_TICKS(a->len)) != 0) {
        return SD_JN_ERR;
    }
    pthread_once(&utf8_locale_once, utf8_locale_init);
    *out = sd_jn_bool(0);
    if (a->ncp != b->ncp) {
        return 0;
    }
    while (i < a->len && j < b->len) {
        i += sd_utf8_decode(a->data + i, &ca);
        j += sd_utf8_decode(b->data + j, &cb);
        if (!fold_equal(ca, cb)) {
            return 0;
        }
    }
    *out = sd_jn_bool(1);
    return 0;
}

SD__JN_NATIVE(format)
{
    if (sd__jn_want(vm, "format", 0, &args[0], SD_JN_STRING) != 0) {
        return SD_JN_ERR;
    }
    return sd_jn_format(vm, args[0].u.s, &args[1], out);
}

/* --- integers ---------------------------------------------------------------------------- */

/* jsonnet's parse_nat: digits 0-9, a-z/A-Z as 10.., each below base. */
static int parse_nat(struct sd_jn_vm *vm, const char *fn, const struct sd_jn_str *whole,
                     const char *p, size_t len, int base, double *out)
{
    double v = 0;
    size_t i;
    int c;
    int d;

    for (i = 0; i < len; i++) {
        c = (unsigned char)p[i];
        if (c >= 'a') {
            d = c - 'a' + 10;
        } else if (c >= 'A') {
            d = c - 'A' + 10;
        } else {
            d = c - '0';
        }
        if (d < 0 || d >= base || c >= 0x80) {
            return sd_jn_throw(vm, "std.%s: %s is not a base %d integer", fn, whole->data, base);
        }
        v = v * base + d;
    }
    *out = v;
    return 0;
}

SD__JN_NATIVE(parseInt)
{
    const struct sd_jn_str *s;
    double v;

    if (sd__jn_want(vm, "parseInt", 0, &args[0], SD_JN_STRING) != 0) {
        return SD_JN_ERR;
    }
    s = args[0].u.s;
    if (s->len == 0 || (s->len == 1 && s->data[0] == '-')) {
        return sd_jn_throw(vm, "std.parseInt: Not an integer: \"%s\"", s->data);
    }
    if (s->data[0] == '-') {
        if (parse_nat(vm, "parseInt", s, s->data + 1, s->len - 1, 10, &v) != 0) {
            return SD_JN_ERR;
        }
        v = -v;
    } else if (parse_nat(vm, "parseInt", s, s->data, s->len, 10, &v) != 0) {
        return SD_JN_ERR;
    }
    return sd__jn_number_result(vm, v, out);
}

SD__JN_NATIVE(parseOctal)
{
    double v;

    if (sd__jn_want(vm, "parseOctal", 0, &args[0], SD_JN_STRING) != 0) {
        return SD_JN_ERR;
    }
    if (SLEN(args[0]) == 0) {
        return sd_jn_throw(vm, "std.parseOctal: Not an octal number: \"\"");
    }
    if (parse_nat(vm, "parseOctal", args[0].u.s, SDATA(args[0]), SLEN(args[0]), 8, &v) != 0) {
        return SD_JN_ERR;
    }
    return sd__jn_number_result(vm, v, out);
}

SD__JN_NATIVE(parseHex)
{
    double v;

    if (sd__jn_want(vm, "parseHex", 0, &args[0], SD_JN_STRING) != 0) {
        return SD_JN_ERR;
    }
    if (SLEN(args[0]) == 0) {
        return sd_jn_throw(vm, "std.parseHex: Not hexadecimal: \"\"");
    }
    if (parse_nat(vm, "parseHex", args[0].u.s, SDATA(args[0]), SLEN(args[0]), 16, &v) != 0) {
        return SD_JN_ERR;
    }
    return sd__jn_number_result(vm, v, out);
}

/* --- encodings and hashes ---------------------------------------------------------------- */

/* The bytes of a byte-ish argument: a string's code points (each < 256) or an array of integers
 * 0..255. *bytes is arena memory. */
static int arg_bytes(struct sd_jn_vm *vm, const char *fn, struct sd_jn_val *v,
                     unsigned char **bytes, size_t *n)
{
    const struct sd_jn_str *s;
    struct sd_jn_val e;
    size_t i;
    size_t off = 0;
    uint32_t cp;

    if (v->type == SD_JN_STRING) {
        s = v->u.s;
        if (sd_jn_tick(vm, SD__JN_STR_TICKS(s->len)) != 0) {
            return SD_JN_ERR;
        }
        *bytes = sd_jn_alloc(vm, s->ncp + 1);
        for (i = 0; i < s->ncp; i++) {
            off += sd_utf8_decode(s->data + off, &cp);
            if (cp > 255) {
                return sd_jn_throw(vm,
                                   "std.%s: can only encode strings of code points below 256 "
                                   "and arrays of bytes, got code point %u",
                                   fn, (unsigned)cp);
            }
            (*bytes)[i] = (unsigned char)cp;
        }
        *n = s->ncp;
        return 0;
    }
    if (v->type != SD_JN_ARRAY) {
        return sd_jn_throw(vm, "std.%s: argument must be a string or an array of bytes, got %s", fn,
                           sd_jn_type_name(v->type));
    }
    *n = sd_jn_arr_len(v->u.a);
    if (sd_jn_tick(vm, *n) != 0) {
        return SD_JN_ERR;
    }
    *bytes = sd_jn_alloc(vm, *n + 1);
    for (i = 0; i < *n; i++) {
        if (sd_jn_arr_get(vm, v->u.a, i, &e) != 0) {
            return SD_JN_ERR;
        }
        if (e.type != SD_JN_NUMBER || !(e.u.n >= 0 && e.u.n <= 255) || e.u.n != floor(e.u.n)) {
            return sd_jn_throw(vm, "std.%s: element %zu is not a byte (an integer 0..255)", fn, i);
        }
        (*bytes)[i] = (unsigned char)e.u.n;
    }
    return 0;
}

SD__JN_NATIVE(base64)
{
    unsigned char *bytes;
    size_t n;
    size_t outlen;
    unsigned char *enc;

    if (arg_bytes(vm, "base64", &args[0], &bytes, &n) != 0) {
        return SD_JN_ERR;
    }
    outlen = (n + 2) / 3 * 4;
    enc = sd_jn_alloc(vm, outlen + 1);
    /* EVP_EncodeBlock takes an int length: encode in chunks of a multiple of 3 bytes. */
    {
        size_t done = 0;
        size_t w = 0;
        size_t chunk;

        while (done < n) {
            chunk = n - done < 3u * (1u << 20) ? n - done : 3u * (1u << 20);
            w += (size_t)EVP_EncodeBlock(enc + w, bytes + done, (int)chunk);
            done += chunk;
        }
        outlen = w;
    }
    *out = sd_jn_string(vm, (const char *)enc, outlen);
    return 0;
}

static int b64_value(int c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

/* Decodes strict base64 (length a multiple of 4, '=' padding only at the end) into arena bytes. */
static int b64_decode(struct sd_jn_vm *vm, const char *fn, const struct sd_jn_val *arg,
                      unsigned char **bytes, size_t *n)
{
    const struct sd_jn_str *s;
    size_t i;
    size_t k;
    size_t w = 0;
    int v[4];
    int pad;

    if (sd__jn_want(vm, fn, 0, arg, SD_JN_STRING) != 0) {
        return SD_JN_ERR;
    }
    s = arg->u.s;
    if (s->len % 4 != 0) {
        return sd_jn_throw(vm, "std.%s: Not a base64 encoded string \"%s\"", fn, s->data);
    }
    if (sd_jn_tick(vm, SD__JN_STR_TICKS(s->len)) != 0) {
        return SD_JN_ERR;
    }
    *bytes = sd_jn_alloc(vm, s->len / 4 * 3 + 1);
    for (i = 0; i < s->len; i += 4) {
        pad = 0;
        for (k = 0; k < 4; k++) {
            v[k] = b64_value((unsigned char)s->data[i + k]);
            if (v[k] < 0) {
                if (s->data[i + k] == '=' && i + 4 == s->len && k >= 2) {
                    pad++;
                    v[k] = 0;
                    continue;
                }
                return sd_jn_throw(vm, "std.%s: Not a base64 encoded string \"%s\"", fn, s->data);
            }
            if (pad > 0) {
                /* data after '=' */
                return sd_jn_throw(vm, "std.%s: Not a base64 encoded string \"%s\"", fn, s->data);
            }
        }
        (*bytes)[w++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
        if (pad < 2) {
            (*bytes)[w++] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
        }
        if (pad < 1) {
            (*bytes)[w++] = (unsigned char)((v[2] & 3) << 6 | v[3]);
        }
    }
    *n = w;
    return 0;
}

SD__JN_NATIVE(base64DecodeBytes)
{
    unsigned char *bytes;
    size_t n;
    size_t i;
    struct sd_jn_arr *a;

    if (b64_decode(vm, "base64DecodeBytes", &args[0], &bytes, &n) != 0) {
        return SD_JN_ERR;
    }
    a = sd_jn_arr_new(vm, n);
    for (i = 0; i < n; i++) {
        sd_jn_arr_set(vm, a, i, sd_jn_number(bytes[i]));
    }
    *out = sd_jn_array(a);
    return 0;
}

SD__JN_NATIVE(base64Decode)
{
    unsigned char *bytes;
    size_t n;
    size_t i;
    struct sd_buf b = sd_jn_buf(vm);
    char tmp[4];

    if (b64_decode(vm, "base64Decode", &args[0], &bytes, &n) != 0) {
        return SD_JN_ERR;
    }
    /* Each byte becomes the code point of its value, as jsonnet's std.char(b). */
    sd_buf_reserve(&b, n * 2);
    for (i = 0; i < n; i++) {
        sd_buf_append(&b, tmp, sd_utf8_encode(bytes[i], tmp));
    }
    sd__jn_buf_string(vm, &b, out);
    sd_buf_fini(&b);
    return 0;
}

SD__JN_NATIVE(encodeUTF8)
{
    struct sd_jn_arr *a;
    size_t i;

    if (sd__jn_want(vm, "encodeUTF8", 0, &args[0], SD_JN_STRING) != 0 ||
        sd_jn_tick(vm, SLEN(args[0])) != 0) {
        return SD_JN_ERR;
    }
    a = sd_jn_arr_new(vm, SLEN(args[0]));
    for (i = 0; i < SLEN(args[0]); i++) {
        sd_jn_arr_set(vm, a, i, sd_jn_number((unsigned char)SDATA(args[0])[i]));
    }
    *out = sd_jn_array(a);
    return 0;
}

SD__JN_NATIVE(decodeUTF8)
{
    unsigned char *bytes;
    size_t n;
    size_t i = 0;
    size_t k;
    struct sd_buf b = sd_jn_buf(vm);

    if (args[0].type != SD_JN_ARRAY) {
        return sd__jn_want(vm, "decodeUTF8", 0, &args[0], SD_JN_ARRAY);
    }
    if (arg_bytes(vm, "decodeUTF8", &args[0], &bytes, &n) != 0) {
        return SD_JN_ERR;
    }
    sd_buf_reserve(&b, n);
    while (i < n) {
        k = sd_utf8_seq_len((const char *)bytes + i, n - i);
        if (k > 0) {
            sd_buf_append(&b, bytes + i, k);
            i += k;
        } else {
            sd_buf_append(&b, "\xEF\xBF\xBD", 3); /* U+FFFD for each invalid byte */
            i++;
        }
    }
    sd__jn_buf_string(vm, &b, out);
    sd_buf_fini(&b);
    return 0;
}

static int digest(struct sd_jn_vm *vm, const char *fn, const EVP_MD *md, struct sd_jn_val *args,
                  struct sd_jn_val *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    char text[2 * EVP_MAX_MD_SIZE];
    unsigned int i;

    if (sd__jn_want(vm, fn, 0, &args[0], SD_JN_STRING) != 0 ||
        sd_jn_tick(vm, SD__JN_STR_TICKS(SLEN(args[0]))) != 0) {
        return SD_JN_ERR;
    }
    if (EVP_Digest(SDATA(args[0]), SLEN(args[0]), d, &dlen, md, NULL) != 1) {
        return sd_jn_throw(vm, "std.%s: the digest failed", fn);
    }
    for (i = 0; i < dlen; i++) {
        text[2 * i] = hex[d[i] >> 4];
        text[2 * i + 1] = hex[d[i] & 15];
    }
    *out = sd_jn_string(vm, text, 2 * (size_t)dlen);
    return 0;
}

SD__JN_NATIVE(md5)
{
    return digest(vm, "md5", EVP_md5(), args, out);
}

SD__JN_NATIVE(sha1)
{
    return digest(vm, "sha1", EVP_sha1(), args, out);
}

SD__JN_NATIVE(sha256)
{
    return digest(vm, "sha256", EVP_sha256(), args, out);
}

SD__JN_NATIVE(sha512)
{
    return digest(vm, "sha512", EVP_sha512(), args, out);
}

/* SHA3-512, as go-jsonnet's std.sha3. */
SD__JN_NATIVE(sha3)
{
    return digest(vm, "sha3", EVP_sha3_512(), args, out);
}
