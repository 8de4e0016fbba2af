/* sd_record.c: the record context: header names, content types, the lazily parsed body and the
 * headers column's JSON.
 *
 * DESIGN. A record is filled by the HTTP receiver (borrowed headers and body) and read by every
 * sink's mapping on the same thread. What more than one column or sink needs is computed once
 * and cached in the record: the parsed body (or the failure to parse it, with its status) and
 * the headers JSON. Nothing here logs; failures are returned as HTTP statuses with the
 * reference's error names, and only -ENOMEM is left to the caller. */
#include "pipeline/sd_record.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/sd_error.h"
#include "pipeline/sd_form.h"
#include "pipeline/sd_json.h"

enum { BODY_UNPARSED = 0, BODY_OK = 1, BODY_FAILED = 2 };

void sd_record_init(struct sd_record *rec)
{
    memset(rec, 0, sizeof(*rec));
    sd_buf_init(&rec->scratch);
    sd_buf_init(&rec->headers_json);
}

void sd_record_fini(struct sd_record *rec)
{
    sd_json_doc_free(rec->doc);
    rec->doc = NULL;
    rec->body_state = BODY_UNPARSED;
    rec->headers_state = 0;
    sd_buf_fini(&rec->scratch);
    sd_buf_fini(&rec->headers_json);
}

/* RFC 7230 token characters: the bytes Go accepts in a header name it canonicalizes. */
static int is_token_char(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return 1;
    }
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

void sd_header_canonicalize(const char *name, size_t len, char *out)
{
    int upper = 1;

    for (size_t i = 0; i < len; i++) {
        if (!is_token_char((unsigned char)name[i])) {
            memmove(out, name, len);
            return;
        }
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (upper && c >= 'a' && c <= 'z') {
            c = (char)(c - 'a' + 'A');
        } else if (!upper && c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
        }
        out[i] = c;
        upper = c == '-';
    }
}

void sd_record_sort_headers(struct sd_header *headers, size_t n)
{
    /* Insertion sort: stable, and h2o caps a request at 100 header lines. */
    for (size_t i = 1; i < n; i++) {
        struct sd_header h = headers[i];
        size_t j = i;
        while (j > 0 && sd_str_cmp(headers[j - 1].name, h.name) > 0) {
            headers[j] = headers[j - 1];
            j--;
        }
        headers[j] = h;
    }
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int prefix_ci(struct sd_str s, const char *prefix)
{
    size_t n = strlen(prefix);

    if (s.len < n) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (lower((unsigned char)s.p[i]) != prefix[i]) {
            return 0;
        }
    }
    return 1;
}

static struct sd_str trim_leading(struct sd_str s)
{
    while (s.len > 0 && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++;
        s.len--;
    }
    return s;
}

int sd_content_type_is_json(struct sd_str ct)
{
    static const char app[] = "application/";
    const char *semi;
    struct sd_str sub;

    ct = trim_leading(ct);
    semi = ct.len ? memchr(ct.p, ';', ct.len) : NULL;
    if (semi != NULL) {
        ct.len = (size_t)(semi - ct.p);
    }
    while (ct.len > 0 && (ct.p[ct.len - 1] == ' ' || ct.p[ct.len - 1] == '\t')) {
        ct.len--;
    }
    if (!prefix_ci(ct, app)) {
        return 0;
    }
    sub.p = ct.p + sizeof(app) - 1;
    sub.len = ct.len - (sizeof(app) - 1);
    if (sub.len == 4) {
        return prefix_ci(sub, "json");
    }
    if (sub.len <= 5 || !prefix_ci((struct sd_str){sub.p + sub.len - 5, 5}, "+json")) {
        return 0;
    }
    for (size_t i = 0; i < sub.len - 5; i++) {
        unsigned char c = (unsigned char)sub.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

int sd_content_type_is_form(struct sd_str ct)
{
    return prefix_ci(trim_leading(ct), "application/x-www-form-urlencoded");
}

/* Copies at most max bytes of s into out (outlen), non-printable bytes as '?'. */
static void printable(char *out, size_t outlen, struct sd_str s, size_t max)
{
    size_t n = s.len < max ? s.len : max;

    if (n >= outlen) {
        n = outlen - 1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        out[i] = (c >= 0x20 && c < 0x7F) ? (char)c : '?';
    }
    out[n] = '\0';
}

static void fill_err(const struct sd_record *rec, struct sd_map_error *err)
{
    if (err == NULL) {
        return;
    }
    err->status = rec->body_status;
    err->name = rec->body_status == 415 ? "stream.in.unsupportedMediaType" : "stream.in.badRequest";
    snprintf(err->message, sizeof(err->message), "%s", rec->body_error);
}

static int body_fail(struct sd_record *rec, int status, struct sd_map_error *err)
{
    rec->body_state = BODY_FAILED;
    rec->body_status = status;
    fill_err(rec, err);
    return status;
}

int sd_record_parse_body(struct sd_record *rec, struct sd_map_error *err)
{
    char why[128];
    char ct[52];
    int rc;

    if (rec->body_state == BODY_OK) {
        return 0;
    }
    if (rec->body_state == BODY_FAILED) {
        fill_err(rec, err);
        return rec->body_status;
    }
    why[0] = '\0';
    if (sd_content_type_is_json(rec->content_type)) {
        rc = sd_json_parse(rec->body.p, rec->body.len, &rec->doc, why, sizeof(why));
        if (rc == -ENOMEM) {
            return rc;
        }
        if (rc != 0) {
            snprintf(rec->body_error, sizeof(rec->body_error), "invalid JSON: %s", why);
            return body_fail(rec, 400, err);
        }
    } else if (sd_content_type_is_form(rec->content_type)) {
        sd_buf_reset(&rec->scratch);
        rc = sd_form_to_json(rec->body.p, rec->body.len, &rec->scratch, why, sizeof(why));
        if (rc == 0) {
            rc = sd_json_parse(rec->scratch.data, rec->scratch.len, &rec->doc, why, sizeof(why));
        }
        if (rc == -ENOMEM) {
            return rc;
        }
        if (rc != 0) {
            snprintf(rec->body_error, sizeof(rec->body_error), "invalid form data: %s", why);
            return body_fail(rec, 400, err);
        }
    } else {
        printable(ct, sizeof(ct), rec->content_type, sizeof(ct) - 1);
        snprintf(rec->body_error, sizeof(rec->body_error),
                 "unsupported content type \"%s\", supported types: application/json and "
                 "application/x-www-form-urlencoded",
                 ct);
        return body_fail(rec, 415, err);
    }
    rec->body_state = BODY_OK;
    return 0;
}

int sd_record_headers_json(struct sd_record *rec, struct sd_str *out)
{
    struct sd_buf *b = &rec->headers_json;
    const struct sd_header *h;
    size_t pos;
    int rc = 0;

    if (rec->headers_state == 0) {
        size_t plain = 2; /* the braces, then per header its text, 2 quotes each and 2 marks */
        for (size_t i = 0; i < rec->nheaders; i++) {
            plain += rec->headers[i].name.len + rec->headers[i].value.len + 6;
        }
        sd_buf_reset(b);
        rc = sd_buf_reserve(b, plain); /* one allocation instead of a doubling for each */
        if (rc == 0) {
            rc = sd_buf_append_char(b, '{');
        }
        for (size_t i = 0; rc == 0 && i < rec->nheaders; i++) {
            h = &rec->headers[i];
            if (i > 0 && sd_str_eq(h->name, rec->headers[i - 1].name)) {
                /* Same name again: continue the previous string with ", value". */
                b->len--;
                rc = sd_buf_append(b, ", ", 2);
                pos = b->len;
                if (rc == 0) {
                    rc = sd_json_write_string(b, h->value.p, h->value.len);
                }
                if (rc == 0) {
                    memmove(b->data + pos, b->data + pos + 1, b->len - pos - 1);
                    b->len--;
                    b->data[b->len] = '\0';
                }
                continue;
            }
            if (i > 0) {
                rc = sd_buf_append_char(b, ',');
            }
            if (rc == 0) {
                rc = sd_json_write_string(b, h->name.p, h->name.len);
            }
            if (rc == 0) {
                rc = sd_buf_append_char(b, ':');
            }
            if (rc == 0) {
                rc = sd_json_write_string(b, h->value.p, h->value.len);
            }
        }
        if (rc == 0) {
            rc = sd_buf_append_char(b, '}');
        }
        if (rc != 0) {
            return rc;
        }
        rec->headers_state = 1;
    }
    out->p = b->data;
    out->len = b->len;
    return 0;
}
