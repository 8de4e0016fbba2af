/* etcd_codec.c: base64 and JSON of etcd's v3 JSON gateway (see etcd_codec.h).
 *
 * DESIGN: pure functions over jansson values, no I/O, no state. Base64 is OpenSSL's
 * EVP_EncodeBlock/EVP_DecodeBlock (libcrypto is already linked); decoding checks length and
 * padding itself, because EVP_DecodeBlock counts padding as zero bytes. */
#include "state_etcd/etcd_codec.h"

#include "core/sd_alloc.h"
#include "core/sd_error.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int etcd_set_b64(json_t *obj, const char *field, const char *ns, const void *p, size_t len)
{
    size_t nslen = strlen(ns), n = nslen + len;
    unsigned char *raw = sd_xmalloc(n + 1);
    char *enc = sd_xmalloc(4 * ((n + 2) / 3) + 1);
    int rc;

    memcpy(raw, ns, nslen);
    if (len > 0) {
        memcpy(raw + nslen, p, len);
    }
    EVP_EncodeBlock((unsigned char *)enc, raw, (int)n);
    rc = json_object_set_new(obj, field, json_string(enc)) == 0 ? 0 : -ENOMEM;
    free(raw);
    free(enc);
    return rc;
}

int etcd_set_prefix(json_t *obj, const char *ns, const char *prefix)
{
    size_t nslen = strlen(ns), plen = strlen(prefix), n = nslen + plen;
    char *end = sd_xmalloc(n + 1);
    int rc;

    memcpy(end, ns, nslen);
    memcpy(end + nslen, prefix, plen);
    /* etcd refuses an empty key: "\0" is the least key there is */
    rc = etcd_set_b64(obj, "key", "", n > 0 ? end : "", n > 0 ? n : 1);
    /* the range end of a prefix: the prefix with its last byte below 0xff incremented;
     * "\0" (every key from key on) when there is none */
    while (n > 0 && (unsigned char)end[n - 1] == 0xff) {
        n--;
    }
    if (n == 0) {
        end[0] = '\0';
        n = 1;
    } else {
        end[n - 1] = (char)((unsigned char)end[n - 1] + 1);
    }
    if (rc == 0) {
        rc = etcd_set_b64(obj, "range_end", "", end, n);
    }
    free(end);
    return rc;
}

int etcd_set_int(json_t *obj, const char *field, int64_t n)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%" PRId64, n);
    return json_object_set_new(obj, field, json_string(buf)) == 0 ? 0 : -ENOMEM;
}

int etcd_get_int(const json_t *obj, const char *field, int64_t *out)
{
    const json_t *v = json_is_object(obj) ? json_object_get(obj, field) : NULL;
    const char *s;
    char *end;
    long long n;

    *out = 0;
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (!json_is_string(v)) {
        return -EPROTO;
    }
    s = json_string_value(v);
    errno = 0;
    n = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        return -EPROTO;
    }
    *out = (int64_t)n;
    return 0;
}

int etcd_header_rev(const json_t *resp, int64_t *rev)
{
    const json_t *h = json_is_object(resp) ? json_object_get(resp, "header") : NULL;

    *rev = 0;
    if (!json_is_object(h) || etcd_get_int(h, "revision", rev) != 0 || *rev < 0) {
        return -EPROTO;
    }
    return 0;
}

/* Decodes the base64 string v into a heap buffer (NUL-terminated; *len excludes the NUL).
 * Absent or "" decodes to an empty value. */
static int codec_b64_decode(const json_t *v, char **out, size_t *len)
{
    const char *s;
    size_t n, pad = 0;
    unsigned char *buf;
    int got;

    *out = NULL;
    *len = 0;
    if (v != NULL && !json_is_string(v)) {
        return -EPROTO;
    }
    s = v != NULL ? json_string_value(v) : "";
    n = strlen(s);
    if (n % 4 != 0 || n > (size_t)INT32_MAX) {
        return -EPROTO;
    }
    if (n > 0 && s[n - 1] == '=') {
        pad = (n > 1 && s[n - 2] == '=') ? 2 : 1;
    }
    for (size_t i = 0; i + pad < n; i++) {
        if (s[i] == '=') {
            return -EPROTO;
        }
    }
    buf = sd_xmalloc(n / 4 * 3 + 1);
    got = n > 0 ? EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n) : 0;
    if (got < 0 || (size_t)got < pad) {
        free(buf);
        return -EPROTO;
    }
    got -= (int)pad;
    buf[got] = '\0';
    *out = (char *)buf;
    *len = (size_t)got;
    return 0;
}

int etcd_parse_kv(const json_t *j, const char *ns, struct sd_kv *out)
{
    size_t nslen = strlen(ns), klen;
    char *key = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(j)) {
        return -EPROTO;
    }
    rc = codec_b64_decode(json_object_get(j, "key"), &key, &klen);
    if (rc == 0 && (klen <= nslen || memcmp(key, ns, nslen) != 0 || strlen(key) != klen)) {
        rc = -EPROTO; /* outside the namespace, empty or with a NUL inside */
    }
    if (rc == 0) {
        out->key = sd_xstrdup(key + nslen);
        rc = codec_b64_decode(json_object_get(j, "value"), &out->value, &out->value_len);
    }
    if (rc == 0) {
        rc = etcd_get_int(j, "create_revision", &out->create_rev);
    }
    if (rc == 0) {
        rc = etcd_get_int(j, "mod_revision", &out->mod_rev);
    }
    if (rc == 0) {
        rc = etcd_get_int(j, "version", &out->version);
    }
    if (rc == 0) {
        rc = etcd_get_int(j, "lease", &out->lease);
    }
    free(key);
    if (rc != 0) {
        sd_kv_free(out);
    }
    return rc;
}

int etcd_parse_range(const json_t *resp, const char *ns, int64_t rev, struct sd_kvs *out)
{
    const json_t *kvs = json_is_object(resp) ? json_object_get(resp, "kvs") : NULL;
    const json_t *more = json_is_object(resp) ? json_object_get(resp, "more") : NULL;
    size_t n;

    memset(out, 0, sizeof(*out));
    out->rev = rev;
    if (!json_is_object(resp) || (kvs != NULL && !json_is_array(kvs)) ||
        (more != NULL && !json_is_boolean(more))) {
        return -EPROTO;
    }
    out->more = json_is_true(more);
    n = kvs != NULL ? json_array_size(kvs) : 0;
    if (n == 0) {
        return 0;
    }
    out->items = sd_xcalloc(n, sizeof(*out->items));
    for (size_t i = 0; i < n; i++) {
        int rc = etcd_parse_kv(json_array_get(kvs, i), ns, &out->items[i]);
        if (rc != 0) {
            return rc;
        }
        out->n++;
    }
    return 0;
}

int etcd_parse_error(const json_t *resp, int *code, const char **msg)
{
    const json_t *c, *m;

    *code = 0;
    *msg = "";
    if (!json_is_object(resp)) {
        return 0;
    }
    c = json_object_get(resp, "code");
    if (c == NULL) {
        c = json_object_get(resp, "grpc_code"); /* the error that ends a stream */
    }
    m = json_object_get(resp, "message");
    if (m == NULL) {
        m = json_object_get(resp, "error");
    }
    if (!json_is_integer(c) && !json_is_string(m)) {
        return 0;
    }
    *code = json_is_integer(c) ? (int)json_integer_value(c) : 2; /* 2: gRPC Unknown */
    *msg = json_is_string(m) ? json_string_value(m) : "";
    return 1;
}

int etcd_error_rc(int code, const char *msg)
{
    switch (code) {
    case 3: /* InvalidArgument */
        if (strstr(msg, "too many operations") != NULL || strstr(msg, "too large") != NULL) {
            return SD_ELIMIT;
        }
        if (strstr(msg, "authentication failed") != NULL || strstr(msg, "user name") != NULL) {
            return -EACCES;
        }
        return SD_EINVAL;
    case 4: /* DeadlineExceeded */
        return -ETIMEDOUT;
    case 5: /* NotFound */
        return SD_ENOTFOUND;
    case 7:  /* PermissionDenied */
    case 16: /* Unauthenticated */
        return -EACCES;
    case 11: /* OutOfRange: compacted */
        return SD_ECONFLICT;
    case 8:  /* ResourceExhausted: too many requests, no space */
    case 14: /* Unavailable: no leader, stopping */
        return SD_EUNHEALTHY;
    default:
        return -EPROTO;
    }
}

void etcd_watch_msg_free(struct etcd_watch_msg *m)
{
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < m->n; i++) {
        sd_kv_free(&m->kvs[i]);
    }
    free(m->kvs);
    free(m->types);
    memset(m, 0, sizeof(*m));
}

/* Parses result["events"] into m. */
static int codec_watch_events(const json_t *events, const char *ns, struct etcd_watch_msg *m)
{
    size_t n;

    if (events == NULL) {
        return 0;
    }
    if (!json_is_array(events)) {
        return -EPROTO;
    }
    n = json_array_size(events);
    if (n == 0) {
        return 0;
    }
    m->kvs = sd_xcalloc(n, sizeof(*m->kvs));
    m->types = sd_xcalloc(n, sizeof(*m->types));
    for (size_t i = 0; i < n; i++) {
        const json_t *ev = json_array_get(events, i);
        const json_t *type = json_is_object(ev) ? json_object_get(ev, "type") : NULL;
        int rc;

        if (!json_is_object(ev) || (type != NULL && !json_is_string(type))) {
            return -EPROTO;
        }
        if (type == NULL || strcmp(json_string_value(type), "PUT") == 0) {
            m->types[i] = SD_WATCH_PUT;
        } else if (strcmp(json_string_value(type), "DELETE") == 0) {
            m->types[i] = SD_WATCH_DELETE;
        } else {
            return -EPROTO;
        }
        rc = etcd_parse_kv(json_object_get(ev, "kv"), ns, &m->kvs[i]);
        if (rc != 0) {
            return rc;
        }
        m->n++;
        if (m->types[i] == SD_WATCH_DELETE) {
            struct sd_kv *kv = &m->kvs[i];
            free(kv->value);
            kv->value = NULL;
            kv->value_len = 0;
            kv->create_rev = kv->version = kv->lease = 0;
        }
        /* events are in revision order */
        if (m->kvs[i].mod_rev <= 0 || (i > 0 && m->kvs[i].mod_rev < m->kvs[i - 1].mod_rev)) {
            return -EPROTO;
        }
    }
    return 0;
}

int etcd_parse_watch_msg(const char *p, size_t len, const char *ns, struct etcd_watch_msg *m)
{
    json_t *root = json_loadb(p, len, 0, NULL);
    const json_t *res, *err, *reason;
    const char *msg;
    int rc = -EPROTO;

    memset(m, 0, sizeof(*m));
    if (!json_is_object(root)) {
        goto done;
    }
    err = json_object_get(root, "error");
    if (err != NULL) {
        m->is_error = 1;
        if (!etcd_parse_error(err, &m->err_code, &msg)) {
            m->err_code = 2;
        }
        rc = 0;
        goto done;
    }
    res = json_object_get(root, "result");
    if (!json_is_object(res)) {
        goto done;
    }
    m->created = json_is_true(json_object_get(res, "created"));
    m->canceled = json_is_true(json_object_get(res, "canceled"));
    reason = json_object_get(res, "cancel_reason");
    if (m->canceled && json_is_string(reason) &&
        (strstr(json_string_value(reason), "Unauthenticated") != NULL ||
         strstr(json_string_value(reason), "auth token") != NULL)) {
        m->err_code = 16; /* a watch created with an expired token */
    }
    if (etcd_get_int(res, "compact_revision", &m->compact_rev) != 0 ||
        etcd_header_rev(res, &m->rev) != 0) {
        goto done;
    }
    rc = codec_watch_events(json_object_get(res, "events"), ns, m);
done:
    json_decref(root);
    return rc;
}
