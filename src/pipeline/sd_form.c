/* sd_form.c: form bodies (application/x-www-form-urlencoded) to JSON text; rules in sd_form.h.
 *
 * DESIGN. The pairs are decoded into a jansson tree (objects are hash tables, so many keys stay
 * linear) that is dumped compactly into the caller's buffer; the record context then validates
 * and navigates that text with sd_json like any JSON body. Forms are the uncommon content type,
 * so a temporary tree per body is fine. No recursion on input (the key segments are walked in a
 * loop; jansson's dump recurses at most 128 levels, bounded by the segment limit). */
#include "pipeline/sd_form.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "core/sd_error.h"
#include "pipeline/sd_json.h"

/* The JSON depth of a key is its segment count (the root object holds the first), plus one for
 * an append ("[]"): at most the JSON depth limit. */
#define FORM_MAX_SEGMENTS SD_JSON_MAX_DEPTH

struct form_seg {
    const char *p; /* into the decoded key */
    size_t len;
    int is_index; /* all digits (an array index where an array is, or is created) */
    size_t index;
};

struct form_ctx {
    struct sd_buf key;
    struct sd_buf value;
    struct form_seg segs[FORM_MAX_SEGMENTS];
    size_t nsegs;
    int append;
    char *err;
    size_t errlen;
};

/* Writes at most 48 bytes of s into the error message, non-printable bytes as '?'. */
static void form_err(struct form_ctx *c, const char *what, const char *s, size_t len)
{
    char shown[52];
    size_t n = len > 48 ? 48 : len;

    if (c->err == NULL || c->errlen == 0) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        shown[i] = (b >= 0x20 && b < 0x7F) ? (char)b : '?';
    }
    if (len > n) {
        memcpy(shown + n, "...", 3);
        n += 3;
    }
    shown[n] = '\0';
    if (s != NULL) {
        snprintf(c->err, c->errlen, "%s \"%s\"", what, shown);
    } else {
        snprintf(c->err, c->errlen, "%s", what);
    }
}

/* Percent-decodes src[0..len) into out (reset first). Returns 0, SD_EPARSE or -ENOMEM. */
static int form_unescape(struct form_ctx *c, const char *src, size_t len, struct sd_buf *out)
{
    char *w;
    int rc;
    int h;
    int l;

    sd_buf_reset(out);
    rc = sd_buf_reserve(out, len);
    if (rc != 0) {
        return rc;
    }
    w = out->data;
    for (size_t i = 0; i < len; i++) {
        char ch = src[i];
        if (ch == '+') {
            *w++ = ' ';
        } else if (ch == '%') {
            h = i + 1 < len ? sd_hex_digit((unsigned char)src[i + 1]) : -1;
            l = i + 2 < len ? sd_hex_digit((unsigned char)src[i + 2]) : -1;
            if (h < 0 || l < 0) {
                form_err(c, "invalid URL escape", src + i, len - i < 3 ? len - i : 3);
                return SD_EPARSE;
            }
            *w++ = (char)(h * 16 + l);
            i += 2;
        } else {
            *w++ = ch;
        }
    }
    out->len = (size_t)(w - out->data);
    out->data[out->len] = '\0';
    return 0;
}

/* Splits the decoded key into c->segs. Returns 0 or SD_EPARSE. */
static int form_parse_key(struct form_ctx *c)
{
    const char *k = c->key.data;
    size_t len = c->key.len;
    const char *br = memchr(k, '[', len);
    size_t i;
    size_t start;
    struct form_seg *s;

    c->nsegs = 0;
    c->append = 0;
    s = &c->segs[c->nsegs++];
    s->p = k;
    s->len = br ? (size_t)(br - k) : len;
    s->is_index = 0;
    if (br == NULL) {
        return 0;
    }
    i = s->len;
    while (i < len) {
        if (k[i] != '[') {
            goto bad;
        }
        start = ++i;
        while (i < len && k[i] != ']' && k[i] != '[') {
            i++;
        }
        if (i >= len || k[i] != ']') {
            goto bad;
        }
        if (i == start) {
            if (i + 1 != len) {
                goto bad; /* "[]" only at the end */
            }
            if (c->nsegs >= FORM_MAX_SEGMENTS) {
                goto deep;
            }
            c->append = 1;
            return 0;
        }
        if (c->nsegs >= FORM_MAX_SEGMENTS) {
            goto deep;
        }
        s = &c->segs[c->nsegs++];
        s->p = k + start;
        s->len = i - start;
        s->is_index = 1;
        s->index = 0;
        for (size_t j = start; j < i; j++) {
            if (k[j] < '0' || k[j] > '9' || s->index > 100000000) {
                s->is_index = 0;
                break;
            }
            s->index = s->index * 10 + (size_t)(k[j] - '0');
        }
        i++;
    }
    return 0;
bad:
    form_err(c, "unable to parse key", k, len);
    return SD_EPARSE;
deep:
    form_err(c, "key nested too deeply", k, len);
    return SD_EPARSE;
}

/* Returns the child of node at segment s, or NULL. *bad is set when s cannot address node. */
static json_t *form_get(json_t *node, const struct form_seg *s, int *bad)
{
    *bad = 0;
    if (json_is_object(node)) {
        return json_object_getn(node, s->p, s->len);
    }
    if (json_is_array(node) && s->is_index) {
        return json_array_get(node, s->index);
    }
    *bad = 1;
    return NULL;
}

/* Sets the child of node at segment s to v (takes the reference). Returns 0, SD_EPARSE, or
 * -ENOMEM. */
static int form_set(struct form_ctx *c, json_t *node, const struct form_seg *s, json_t *v)
{
    int rc = -1;

    if (v == NULL) {
        return -ENOMEM;
    }
    if (json_is_object(node)) {
        rc = json_object_setn_new_nocheck(node, s->p, s->len, v);
    } else if (json_is_array(node) && s->is_index && s->index < json_array_size(node)) {
        rc = json_array_set_new(node, s->index, v);
    } else if (json_is_array(node) && s->is_index && s->index == json_array_size(node)) {
        rc = json_array_append_new(node, v);
    } else {
        json_decref(v);
        form_err(c, "array index out of range in key", c->key.data, c->key.len);
        return SD_EPARSE;
    }
    return rc == 0 ? 0 : -ENOMEM;
}

static int form_apply(struct form_ctx *c, json_t *root)
{
    json_t *node = root;
    json_t *child;
    json_t *leaf;
    int bad;
    int rc;
    size_t last = c->nsegs - 1;

    /* Walk or create the containers down to the last segment. */
    for (size_t i = 0; i < last; i++) {
        child = form_get(node, &c->segs[i], &bad);
        if (bad) {
            goto conflict;
        }
        if (child == NULL) {
            child = c->segs[i + 1].is_index ? json_array() : json_object();
            rc = form_set(c, node, &c->segs[i], child);
            if (rc != 0) {
                return rc;
            }
        } else if (!json_is_object(child) && !json_is_array(child)) {
            goto conflict;
        }
        node = child;
    }
    leaf = json_stringn_nocheck(c->value.data ? c->value.data : "", c->value.len);
    if (leaf == NULL) {
        return -ENOMEM;
    }
    if (!c->append) {
        child = form_get(node, &c->segs[last], &bad);
        if (bad) {
            json_decref(leaf);
            goto conflict;
        }
        return form_set(c, node, &c->segs[last], leaf);
    }
    child = form_get(node, &c->segs[last], &bad);
    if (bad || (child != NULL && !json_is_array(child))) {
        json_decref(leaf);
        form_err(c, "invalid square brackets in key", c->key.data, c->key.len);
        return SD_EPARSE;
    }
    if (child == NULL) {
        child = json_array();
        rc = form_set(c, node, &c->segs[last], child);
        if (rc != 0) {
            json_decref(leaf);
            return rc;
        }
    }
    return json_array_append_new(child, leaf) == 0 ? 0 : -ENOMEM;
conflict:
    form_err(c, "key conflicts with an earlier key", c->key.data, c->key.len);
    return SD_EPARSE;
}

static int form_pair(struct form_ctx *c, json_t *root, const char *p, size_t len)
{
    const char *eq = memchr(p, '=', len);
    size_t klen = eq ? (size_t)(eq - p) : len;
    int rc;

    if (memchr(p, ';', len) != NULL) {
        form_err(c, "invalid semicolon separator in query", NULL, 0);
        return SD_EPARSE;
    }
    rc = form_unescape(c, p, klen, &c->key);
    if (rc == 0) {
        rc = form_unescape(c, eq ? eq + 1 : p + len, eq ? len - klen - 1 : 0, &c->value);
    }
    if (rc != 0) {
        return rc;
    }
    if (!sd_json_utf8_valid(c->key.data, c->key.len) ||
        !sd_json_utf8_valid(c->value.data, c->value.len)) {
        form_err(c, "invalid UTF-8", NULL, 0);
        return SD_EPARSE;
    }
    if (memchr(c->key.data, '\0', c->key.len) != NULL) {
        form_err(c, "NUL character in a key", NULL, 0);
        return SD_EPARSE;
    }
    rc = form_parse_key(c);
    if (rc != 0) {
        return rc;
    }
    return form_apply(c, root);
}

static int form_dump_cb(const char *buffer, size_t size, void *data)
{
    return sd_buf_append((struct sd_buf *)data, buffer, size) == 0 ? 0 : -1;
}

int sd_form_to_json(const char *body, size_t len, struct sd_buf *out, char *err, size_t errlen)
{
    struct form_ctx c;
    json_t *root = json_object();
    size_t start_len = out->len;
    const char *end = body + len;
    const char *p = body;
    const char *amp;
    int rc = 0;

    memset(&c, 0, sizeof(c));
    c.err = err;
    c.errlen = errlen;
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    if (root == NULL) {
        return -ENOMEM;
    }
    while (p < end) {
        amp = memchr(p, '&', (size_t)(end - p));
        if (amp == NULL) {
            amp = end;
        }
        if (amp > p) {
            rc = form_pair(&c, root, p, (size_t)(amp - p));
            if (rc != 0) {
                break;
            }
        }
        p = amp + 1;
    }
    if (rc == 0 && json_dump_callback(root, form_dump_cb, out, JSON_COMPACT) != 0) {
        rc = -ENOMEM;
    }
    if (rc != 0) {
        out->len = start_len;
        if (out->data != NULL) {
            out->data[start_len] = '\0';
        }
    }
    json_decref(root);
    sd_buf_fini(&c.key);
    sd_buf_fini(&c.value);
    return rc;
}
