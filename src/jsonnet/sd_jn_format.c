/* sd_jn_format.c: the % operator and std.format: Python-style % formatting as Jsonnet's stdlib
 * defines it (libjsonnet 0.18's std.format): %[(key)][flags #0- +][width|*][.precision|*][hlL]
 * with conversions d i u o x X e E f F g G c s %. Numbers are rendered with the same double
 * arithmetic as the stdlib's Jsonnet code (digits by repeated division, rounding by adding 0.5,
 * exponents by log10), so results match it digit for digit, including its quirks (%g of 0 is an
 * "overflow" error, as std.log(0) is). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/sd_alloc.h"
#include "jsonnet/sd_jn_std_int.h"

#define FMT_NONE (-1.0) /* no precision given */

enum fmt_star { FMT_NUM, FMT_STAR };

struct fmt_code {
    size_t lit;     /* byte offset of the literal text before the code */
    size_t lit_len; /* its length */
    int is_code;    /* 0 for the trailing literal */
    const char *mkey;
    size_t mkey_len;
    int has_mkey;
    int alt, zero, left, blank, plus;
    enum fmt_star fw_kind;
    double fw;
    enum fmt_star prec_kind;
    double prec; /* FMT_NONE when absent */
    char ctype;  /* d o x e f g c s % */
    int caps;
};

/* --- parsing ----------------------------------------------------------------------------- */

static int truncated(struct sd_jn_vm *vm)
{
    return sd_jn_throw(vm, "Truncated format code.");
}

/* Parses the code after a '%' at s[*i]; advances *i past it. */
static int parse_code(struct sd_jn_vm *vm, const char *s, size_t len, size_t *i, struct fmt_code *c)
{
    size_t j = *i;
    uint32_t cp;
    size_t n;

    if (j >= len) {
        return truncated(vm);
    }
    if (s[j] == '(') {
        j++;
        c->mkey = s + j;
        while (j < len && s[j] != ')') {
            j++;
        }
        if (j >= len) {
            return truncated(vm);
        }
        c->mkey_len = (size_t)(s + j - c->mkey);
        c->has_mkey = 1;
        j++;
    }
    for (;; j++) {
        if (j >= len) {
            return truncated(vm);
        }
        if (s[j] == '#') {
            c->alt = 1;
        } else if (s[j] == '0') {
            c->zero = 1;
        } else if (s[j] == '-') {
            c->left = 1;
        } else if (s[j] == ' ') {
            c->blank = 1;
        } else if (s[j] == '+') {
            c->plus = 1;
        } else {
            break;
        }
    }
    c->fw_kind = FMT_NUM;
    c->fw = 0;
    if (s[j] == '*') {
        c->fw_kind = FMT_STAR;
        j++;
    } else {
        for (; j < len && s[j] >= '0' && s[j] <= '9'; j++) {
            c->fw = c->fw * 10 + (s[j] - '0');
        }
    }
    if (j >= len) {
        return truncated(vm);
    }
    c->prec_kind = FMT_NUM;
    c->prec = FMT_NONE;
    if (s[j] == '.') {
        j++;
        if (j < len && s[j] == '*') {
            c->prec_kind = FMT_STAR;
            j++;
        } else {
            c->prec = 0;
            for (; j < len && s[j] >= '0' && s[j] <= '9'; j++) {
                c->prec = c->prec * 10 + (s[j] - '0');
            }
        }
        if (j >= len) {
            return truncated(vm);
        }
    }
    if (s[j] == 'h' || s[j] == 'l' || s[j] == 'L') {
        j++;
        if (j >= len) {
            return truncated(vm);
        }
    }
    c->caps = 0;
    switch (s[j]) {
    case 'd':
    case 'i':
    case 'u':
        c->ctype = 'd';
        break;
    case 'o':
    case 'c':
    case 's':
    case '%':
        c->ctype = s[j];
        break;
    case 'x':
    case 'X':
    case 'e':
    case 'E':
    case 'f':
    case 'F':
    case 'g':
    case 'G':
        c->ctype = (char)(s[j] | 0x20);
        c->caps = s[j] < 'a';
        break;
    default:
        n = sd_utf8_decode(s + j, &cp);
        return sd_jn_throw(vm, "Unrecognised conversion type: %.*s", (int)n, s + j);
    }
    *i = j + 1;
    return 0;
}

/* Splits fmt into literals and codes: *codes (malloc'd) of *n entries, the last a literal. */
static int parse_codes(struct sd_jn_vm *vm, const struct sd_jn_str *fmt, struct fmt_code **codes,
                       size_t *n)
{
    const char *s = fmt->data;
    size_t len = fmt->len;
    size_t i = 0;
    size_t lit = 0;
    size_t cap = 8;
    const char *pct;

    *n = 0;
    *codes = sd_xmalloc(cap * sizeof(**codes));
    for (;;) {
        if (*n + 1 >= cap) {
            cap *= 2;
            *codes = sd_xrealloc(*codes, cap * sizeof(**codes));
        }
        pct = i < len ? memchr(s + i, '%', len - i) : NULL;
        memset(&(*codes)[*n], 0, sizeof(**codes));
        (*codes)[*n].lit = lit;
        if (pct == NULL) {
            (*codes)[*n].lit_len = len - lit;
            (*n)++;
            return 0;
        }
        i = (size_t)(pct - s);
        (*codes)[*n].lit_len = i - lit;
        (*codes)[*n].is_code = 1;
        i++;
        if (parse_code(vm, s, len, &i, &(*codes)[*n]) != 0) {
            return SD_JN_ERR;
        }
        lit = i;
        (*n)++;
    }
}

/* --- rendering --------------------------------------------------------------------------- */

/* Appends c so many times as jsonnet's padding(w, c): ceil(w) when w > 0. */
static void pad(struct sd_buf *b, double w, char c)
{
    for (; w > 0; w -= 1) {
        sd_buf_append_char(b, c);
    }
}

static int finite_or_overflow(struct sd_jn_vm *vm, double x)
{
    if (isfinite(x)) {
        return 0;
    }
    return sd_jn_throw(vm, isnan(x) ? "not a number" : "overflow");
}

/* The digits of mag (a whole number >= 1) in radix, most significant first, into d. */
static size_t radix_digits(double mag, int radix, char *d, size_t cap, int caps)
{
    static const char lower[] = "0123456789abcdef";
    static const char upper[] = "0123456789ABCDEF";
    size_t n = 0;
    size_t i;
    char t;

    while (mag != 0 && n < cap) {
        d[n++] = (caps ? upper : lower)[(int)fmod(mag, radix)];
        mag = floor(mag / radix);
    }
    for (i = 0; i < n / 2; i++) {
        t = d[i];
        d[i] = d[n - 1 - i];
        d[n - 1 - i] = t;
    }
    return n;
}

/* The sign column of a number: '-', '+' (flag +), ' ' (flag space) or nothing. */
static void put_sign(struct sd_buf *b, int neg, int plus, int blank)
{
    if (neg) {
        sd_buf_append_char(b, '-');
    } else if (plus) {
        sd_buf_append_char(b, '+');
    } else if (blank) {
        sd_buf_append_char(b, ' ');
    }
}

/* jsonnet's render_int. */
static void render_int(struct sd_buf *b, int neg, double mag, double min_chars, double min_digits,
                       int blank, int plus, int radix, const char *zero_prefix)
{
    char digits[1100]; /* a double below 2^1024 has at most 1024 binary digits */
    size_t nd;
    size_t plen = strlen(zero_prefix);
    double zp;

    if (mag == 0) {
        digits[0] = '0';
        nd = 1;
        plen = 0;
    } else {
        nd = radix_digits(mag, radix, digits, sizeof(digits), 0);
    }
    zp = min_chars - (neg || blank || plus ? 1 : 0);
    if (zp < min_digits) {
        zp = min_digits;
    }
    put_sign(b, neg, plus, blank);
    pad(b, zp - (double)(nd + plen), '0');
    sd_buf_append(b, zero_prefix, plen);
    sd_buf_append(b, digits, nd);
}

/* jsonnet's render_hex. */
static void render_hex(struct sd_buf *b, double n, double min_chars, double min_digits, int blank,
                       int plus, int add_zerox, int caps)
{
    char digits[300];
    size_t nd;
    double mag = floor(fabs(n));
    int neg = n < 0;
    double zp;

    if (mag == 0) {
        digits[0] = '0';
        nd = 1;
    } else {
        nd = radix_digits(mag, 16, digits, sizeof(digits), caps);
    }
    zp = min_chars - (neg || blank || plus ? 1 : 0) - (add_zerox ? 2 : 0);
    if (zp < min_digits) {
        zp = min_digits;
    }
    put_sign(b, neg, plus, blank);
    if (add_zerox) {
        sd_buf_append_str(b, caps ? "0X" : "0x");
    }
    pad(b, zp - (double)nd, '0');
    sd_buf_append(b, digits, nd);
}

/* jsonnet's render_float_dec (0.18: rounding carries into the whole part). */
static int render_float_dec(struct sd_jn_vm *vm, struct sd_buf *b, double n, double zero_pad,
                            int blank, int plus, int ensure_pt, int trailing, double prec)
{
    double a = fabs(n);
    double den = pow(10, prec);
    double num = a * den + 0.5;
    double whole;
    double frac;
    double dot = prec == 0 && !ensure_pt ? 0 : 1;
    struct sd_buf fs = sd_jn_buf(vm);
    size_t k;

    if (finite_or_overflow(vm, den) != 0 || finite_or_overflow(vm, num) != 0) {
        return SD_JN_ERR;
    }
    whole = (a > 0 ? 1 : 0) * floor(num / den);
    frac = fmod(floor(num), den);
    render_int(b, n < 0, whole, zero_pad - prec - dot, 0, blank, plus, 10, "");
    if (prec == 0) {
        if (ensure_pt) {
            sd_buf_append_char(b, '.');
        }
        return 0;
    }
    if (trailing || frac > 0) {
        render_int(&fs, 0, frac, prec, 0, 0, 0, 10, "");
        k = fs.len;
        if (!trailing) {
            while (k > 0 && fs.data[k - 1] == '0') {
                k--;
            }
        }
        sd_buf_append_char(b, '.');
        sd_buf_append(b, fs.data, k);
        sd_buf_fini(&fs);
    }
    return 0;
}

/* jsonnet's render_float_sci. */
static int render_float_sci(struct sd_jn_vm *vm, struct sd_buf *b, double n, double zero_pad,
                            int blank, int plus, int ensure_pt, int trailing, int caps, double prec)
{
    double e = 0;
    double mant;
    struct sd_buf suff = sd_jn_buf(vm);
    int rc;

    if (n != 0) {
        e = log(fabs(n));
        if (finite_or_overflow(vm, e) != 0) {
            return SD_JN_ERR;
        }
        e = floor(e / log(10));
    }
    sd_buf_append_char(&suff, caps ? 'E' : 'e');
    render_int(&suff, e < 0, fabs(e), 3, 0, 0, 1, 10, "");
    if (e == -324) {
        mant = n * 10 / pow(10, e + 1);
    } else {
        mant = n / pow(10, e);
    }
    if (finite_or_overflow(vm, mant) != 0) {
        sd_buf_fini(&suff);
        return SD_JN_ERR;
    }
    rc = render_float_dec(vm, b, mant, zero_pad - (double)suff.len, blank, plus, ensure_pt,
                          trailing, prec);
    if (rc == 0) {
        sd_buf_append(b, suff.data, suff.len);
    }
    sd_buf_fini(&suff);
    return rc;
}

/* Formats val by code c into b; where names the value for messages (an index or a key). */
static int format_code(struct sd_jn_vm *vm, struct sd_buf *b, const struct sd_jn_val *val,
                       const struct fmt_code *c, double fw, double prec, const char *where)
{
    double fpprec = prec != FMT_NONE ? prec : 6;
    double iprec = prec != FMT_NONE ? prec : 0;
    double zp = c->zero && !c->left ? fw : 0;
    double v;
    double t;
    double e;
    double before;
    char tmp[4];

    if (c->ctype == 's') {
        if (val->type == SD_JN_STRING) {
            sd_buf_append(b, val->u.s->data, val->u.s->len);
            return 0;
        }
        return sd_jn_to_string(vm, val, b);
    }
    if (c->ctype == 'c') {
        if (val->type == SD_JN_NUMBER) {
            t = trunc(val->u.n);
            if (!(t >= 0 && t <= 0x10FFFF) || (t >= 0xD800 && t <= 0xDFFF)) {
                return sd_jn_throw(vm, "%%c: invalid unicode code point, got %g", val->u.n);
            }
            sd_buf_append(b, tmp, sd_utf8_encode((uint32_t)t, tmp));
            return 0;
        }
        if (val->type == SD_JN_STRING) {
            if (val->u.s->ncp != 1) {
                return sd_jn_throw(vm, "%%c expected 1-sized string got: %zu", val->u.s->ncp);
            }
            sd_buf_append(b, val->u.s->data, val->u.s->len);
            return 0;
        }
        return sd_jn_throw(vm, "%%c expected number / string, got: %s", sd_jn_type_name(val->type));
    }
    if (val->type != SD_JN_NUMBER) {
        return sd_jn_throw(vm, "Format required number at %s, got %s", where,
                           sd_jn_type_name(val->type));
    }
    v = val->u.n;
    switch (c->ctype) {
    case 'd':
        render_int(b, v <= -1, floor(fabs(v)), zp, iprec, c->blank, c->plus, 10, "");
        return 0;
    case 'o':
        render_int(b, v <= -1, floor(fabs(v)), zp, iprec, c->blank, c->plus, 8, c->alt ? "0" : "");
        return 0;
    case 'x':
        render_hex(b, floor(v), zp, iprec, c->blank, c->plus, c->alt, c->caps);
        return 0;
    case 'f':
        return render_float_dec(vm, b, v, zp, c->blank, c->plus, c->alt, 1, fpprec);
    case 'e':
        return render_float_sci(vm, b, v, zp, c->blank, c->plus, c->alt, 1, c->caps, fpprec);
    default: /* 'g' */
        e = log(fabs(v));
        if (finite_or_overflow(vm, e) != 0) {
            return SD_JN_ERR;
        }
        e = floor(e / log(10));
        if (e < -4 || e >= fpprec) {
            return render_float_sci(vm, b, v, zp, c->blank, c->plus, c->alt, c->alt, c->caps,
                                    fpprec - 1);
        }
        before = e + 1 > 1 ? e + 1 : 1;
        return render_float_dec(vm, b, v, zp, c->blank, c->plus, c->alt, c->alt, fpprec - before);
    }
}

/* Appends s (tmp) padded to width fw with spaces, left or right. */
static void append_padded(struct sd_buf *b, const struct sd_buf *s, double fw, int left)
{
    double w = fw - (double)sd_utf8_count(s->data ? s->data : "", s->len);

    if (!left) {
        pad(b, w, ' ');
    }
    sd_buf_append(b, s->data ? s->data : "", s->len);
    if (left) {
        pad(b, w, ' ');
    }
}

/* A '*' width or precision taken from the values. */
static int star_value(struct sd_jn_vm *vm, struct sd_jn_arr *arr, size_t n, size_t *j, double *out)
{
    struct sd_jn_val v;

    if (*j >= n) {
        return sd_jn_throw(vm, "Not enough values to format: %zu, expected at least %zu", n, *j);
    }
    if (sd_jn_arr_get(vm, arr, *j, &v) != 0) {
        return SD_JN_ERR;
    }
    if (v.type != SD_JN_NUMBER) {
        return sd_jn_throw(vm, "Format: a * width or precision must be a number, got %s",
                           sd_jn_type_name(v.type));
    }
    *out = v.u.n;
    (*j)++;
    return 0;
}

int sd_jn_format(struct sd_jn_vm *vm, const struct sd_jn_str *fmt, const struct sd_jn_val *vals,
                 struct sd_jn_val *out)
{
    struct fmt_code *codes = NULL;
    struct fmt_code *c;
    struct sd_buf b = sd_jn_buf(vm);
    struct sd_buf tmp = sd_jn_buf(vm);
    struct sd_buf where = sd_jn_buf(vm);
    struct sd_jn_arr *arr = NULL;
    struct sd_jn_obj *obj = NULL;
    struct sd_jn_val v;
    size_t ncodes = 0;
    size_t nvals = 1;
    size_t i;
    size_t j = 0;
    double fw;
    double prec;
    int found;
    int rc = SD_JN_ERR;

    if (sd_jn_tick(vm, SD__JN_STR_TICKS(fmt->len)) != 0 ||
        parse_codes(vm, fmt, &codes, &ncodes) != 0) {
        goto done;
    }
    if (vals->type == SD_JN_ARRAY) {
        arr = vals->u.a;
        nvals = sd_jn_arr_len(arr);
    } else if (vals->type == SD_JN_OBJECT) {
        obj = vals->u.o;
    } else { /* a single value formats as a one-element array */
        arr = sd_jn_arr_new(vm, 1);
        sd_jn_arr_set(vm, arr, 0, *vals);
    }
    for (i = 0; i < ncodes; i++) {
        c = &codes[i];
        sd_buf_append(&b, fmt->data + c->lit, c->lit_len);
        if (!c->is_code) {
            continue;
        }
        if (sd_jn_tick(vm, 1) != 0) {
            goto done;
        }
        sd_buf_reset(&tmp);
        sd_buf_reset(&where);
        fw = c->fw;
        prec = c->prec;
        if (obj != NULL) {
            if (c->fw_kind == FMT_STAR) {
                sd_jn_throw(vm, "Cannot use * field width with object.");
                goto done;
            }
            if (sd_jn_tick(vm, SD__JN_TICKS_OF(fw > prec ? fw : prec)) != 0) {
                goto done;
            }
            if (c->ctype != '%') {
                if (c->prec_kind == FMT_STAR) {
                    sd_jn_throw(vm, "Cannot use * precision with object.");
                    goto done;
                }
                if (!c->has_mkey) {
                    sd_jn_throw(vm, "Mapping keys required.");
                    goto done;
                }
                sd_buf_append(&where, c->mkey, c->mkey_len);
                found = 0;
                if (sd_jn_obj_has(vm, obj, c->mkey, c->mkey_len, 1) &&
                    sd_jn_obj_get(vm, obj, c->mkey, c->mkey_len, &v, &found) != 0) {
                    goto done;
                }
                if (!found) {
                    sd_jn_throw(vm, "No such field: %s", sd_buf_cstr(&where));
                    goto done;
                }
                if (format_code(vm, &tmp, &v, c, fw, prec, sd_buf_cstr(&where)) != 0) {
                    goto done;
                }
            } else {
                sd_buf_append_char(&tmp, '%');
            }
            append_padded(&b, &tmp, fw, c->left);
            continue;
        }
        if (c->fw_kind == FMT_STAR && star_value(vm, arr, nvals, &j, &fw) != 0) {
            goto done;
        }
        if (c->prec_kind == FMT_STAR && star_value(vm, arr, nvals, &j, &prec) != 0) {
            goto done;
        }
        /* Padding costs a step per character. */
        if (sd_jn_tick(vm, SD__JN_TICKS_OF(fw > prec ? fw : prec)) != 0) {
            goto done;
        }
        if (c->ctype == '%') {
            sd_buf_append_char(&tmp, '%');
        } else {
            if (j >= nvals) {
                sd_jn_throw(vm, "Not enough values to format: %zu, expected more than %zu", nvals,
                            j);
                goto done;
            }
            if (sd_jn_arr_get(vm, arr, j, &v) != 0) {
                goto done;
            }
            sd_buf_printf(&where, "%zu", j);
            if (format_code(vm, &tmp, &v, c, fw, prec, sd_buf_cstr(&where)) != 0) {
                goto done;
            }
            j++;
        }
        append_padded(&b, &tmp, fw, c->left);
        if (sd_jn_tick(vm, SD__JN_STR_TICKS(tmp.len)) != 0) {
            goto done;
        }
    }
    if (obj == NULL && j < nvals) {
        sd_jn_throw(vm, "Too many values to format: %zu, expected %zu", nvals, j);
        goto done;
    }
    sd__jn_buf_string(vm, &b, out);
    rc = 0;
done:
    free(codes);
    sd_buf_fini(&b);
    sd_buf_fini(&tmp);
    sd_buf_fini(&where);
    return rc;
}
