/* fuzz_mapping_csv.c: fuzz target for the mapper and the CSV writer as a round trip
 * (pipeline/sd_mapping, sd_record, sd_csv).
 *
 * Input: byte 0 = flags (bits 0-1 content type: JSON, JSON with charset, form, text/plain;
 * bit 2 rawString; bit 3 defaultValue; bit 4 a 96-byte row limit), then "<path>\n<body>". The
 * path is also sent as a header value, the receive time is a hash of the input. A row that is
 * written is read back with a small CSV reader and each field compared to the value it must
 * hold: the body bytes, the IP, the time (as sd_time_format_iso writes it),
 * a UUID v7, a headers object that sd_json accepts, and the path value looked up on its own.
 * A refused record must leave the output as it was, with a status and a name. The CSV writer is
 * also checked directly on the body bytes (sd_csv_field and sd_csv_field_tail agree and read
 * back to the value). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "core/sd_time.h"
#include "pipeline/sd_csv.h"
#include "pipeline/sd_json.h"
#include "pipeline/sd_mapping.h"
#include "pipeline/sd_record.h"
#include "pipeline/sd_uuid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_mapping_csv: check failed: %s (line %d)\n", #cond, __LINE__);    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define NCOLS 6

/* Reads one row (sd_csv format) starting at *pos into fields; returns the field count, or -1
 * when the bytes are not exactly such a row. */
static int csv_read_row(const char *s, size_t len, size_t *pos, struct sd_buf *fields, int max)
{
    size_t i = *pos;
    int n = 0;

    for (;;) {
        if (n == max || i >= len || s[i] != '"') {
            return -1;
        }
        sd_buf_reset(&fields[n]);
        i++;
        for (;;) {
            if (i >= len) {
                return -1;
            }
            if (s[i] == '"') {
                if (i + 1 < len && s[i + 1] == '"') {
                    sd_buf_append_char(&fields[n], '"');
                    i += 2;
                    continue;
                }
                i++;
                break;
            }
            sd_buf_append_char(&fields[n], s[i]);
            i++;
        }
        n++;
        if (i < len && s[i] == ',') {
            i++;
            continue;
        }
        if (i < len && s[i] == '\n') {
            *pos = i + 1;
            return n;
        }
        return -1;
    }
}

static int field_is(const struct sd_buf *f, const char *p, size_t len)
{
    return f->len == len && (len == 0 || memcmp(f->data, p, len) == 0);
}

static void check_csv(const char *v, size_t len)
{
    struct sd_buf a = SD_BUF_INIT;
    struct sd_buf b = SD_BUF_INIT;
    struct sd_buf f[2] = {SD_BUF_INIT, SD_BUF_INIT};
    size_t pos = 0;

    CHECK(sd_csv_field(&a, "x", 1, 1) == 0);
    CHECK(sd_csv_field(&a, v, len, 0) == 0);
    CHECK(sd_csv_end_row(&a) == 0);
    CHECK(sd_csv_field(&b, "x", 1, 1) == 0);
    CHECK(sd_buf_append(&b, v, len) == 0);
    CHECK(sd_csv_field_tail(&b, 3, 0) == 0);
    CHECK(sd_csv_end_row(&b) == 0);
    CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    CHECK(csv_read_row(a.data, a.len, &pos, f, 2) == 2 && pos == a.len);
    CHECK(field_is(&f[0], "x", 1) && field_is(&f[1], v, len));
    sd_buf_fini(&a);
    sd_buf_fini(&b);
    sd_buf_fini(&f[0]);
    sd_buf_fini(&f[1]);
}

/* The value the path column must hold, computed without the mapper. Returns 0 when known. */
static int expected_path(struct sd_record *rec, const char *path, size_t plen, int raw,
                         int has_default, struct sd_buf *out)
{
    struct sd_map_error err;
    int found = 0;
    int rc;

    rc = sd_record_parse_body(rec, &err);
    if (rc != 0) {
        return -1;
    }
    rc = sd_json_path(rec->doc, path, plen, raw, out, &found);
    if (rc != 0) {
        return -1;
    }
    if (!found) {
        if (!has_default) {
            return -1;
        }
        if (raw) {
            sd_buf_append_str(out, "d\"f");
        } else {
            sd_json_write_string(out, "d\"f", 3);
        }
    }
    return 0;
}

static struct sd_mapping *make_mapping(const char *path, size_t plen, int raw, int has_default)
{
    json_t *cols = json_array();
    json_t *pc = json_object();
    json_t *ps = json_stringn(path, plen);
    struct sd_buf err = SD_BUF_INIT;
    struct sd_mapping *m = NULL;
    static const char *const types[] = {"uuid", "datetime", "ip", "body", "headers"};
    int rc;

    if (ps == NULL) {
        json_decref(cols);
        json_decref(pc);
        return NULL; /* not UTF-8: the API would never hand it over */
    }
    for (int i = 0; i < 5; i++) {
        json_array_append_new(cols, json_pack("{s:s, s:s}", "type", types[i], "name", types[i]));
    }
    json_object_set_new(pc, "type", json_string("path"));
    json_object_set_new(pc, "name", json_string("p"));
    json_object_set_new(pc, "path", ps);
    json_object_set_new(pc, "rawString", json_boolean(raw));
    if (has_default) {
        json_object_set_new(pc, "defaultValue", json_string("d\"f"));
    }
    json_array_append_new(cols, pc);
    rc = sd_mapping_compile(cols, &m, &err);
    if (rc != 0) {
        CHECK(rc == SD_EINVAL && err.len > 0);
        CHECK(sd_json_path_check(path, plen) != 0);
    } else {
        CHECK(sd_json_path_check(path, plen) == 0);
    }
    json_decref(cols);
    sd_buf_fini(&err);
    return m;
}

/* A receive time from 1970 to 9999 derived from the input (FNV-1a), to vary the datetime. */
static int64_t recv_time(const uint8_t *data, size_t size)
{
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < size; i++) {
        h = (h ^ data[i]) * 1099511628211ULL;
    }
    return (int64_t)(h % 253402300800000ULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const ctypes[] = {"application/json",
                                         "application/vnd.x+json; charset=utf-8",
                                         "application/x-www-form-urlencoded", "text/plain"};
    const char *in = (const char *)data;
    const char *nl;
    const char *path;
    size_t plen;
    struct sd_header headers[3];
    struct sd_record rec;
    struct sd_record rec2;
    struct sd_mapping *m;
    struct sd_map_error err;
    struct sd_buf out = SD_BUF_INIT;
    struct sd_buf want = SD_BUF_INIT;
    struct sd_buf fields[NCOLS];
    struct sd_json_doc *doc;
    char when[SD_TIME_ISO_LEN + 1];
    size_t pos;
    size_t limit;
    unsigned flags;
    int raw;
    int has_default;
    int rc;

    if (size < 1) {
        return 0;
    }
    flags = data[0];
    in++;
    size--;
    nl = memchr(in, '\n', size < 128 ? size : 128);
    path = in;
    plen = nl ? (size_t)(nl - in) : 0;
    if (nl == NULL) {
        path = "a";
        plen = 1;
    }
    raw = (flags >> 2) & 1;
    has_default = (flags >> 3) & 1;
    limit = (flags >> 4) & 1 ? 96 : 0;

    sd_record_init(&rec);
    rec.recv_time_ms = recv_time(data, size + 1);
    strcpy(rec.ip, "2001:db8::1");
    headers[0].name = SD_STR_LIT("Content-Type");
    headers[0].value = sd_str_c(ctypes[flags & 3]);
    headers[1].name = SD_STR_LIT("X-Fuzz");
    headers[1].value.p = path;
    headers[1].value.len = plen;
    headers[2].name = SD_STR_LIT("X-Fuzz");
    headers[2].value = SD_STR_LIT("second");
    rec.headers = headers;
    rec.nheaders = 3;
    rec.content_type = headers[0].value;
    rec.body.p = nl ? nl + 1 : in;
    rec.body.len = nl ? size - (size_t)(nl + 1 - in) : size;

    check_csv(rec.body.p, rec.body.len);
    m = make_mapping(path, plen, raw, has_default);
    if (m == NULL) {
        sd_record_fini(&rec);
        return 0;
    }
    memset(fields, 0, sizeof(fields));
    sd_buf_append_str(&out, "prev\n");
    memset(&err, 0, sizeof(err));
    rc = sd_mapping_write_row(m, &rec, limit, &out, &err);
    CHECK(rc == 0 || rc == 400 || rc == 413 || rc == 415 || rc == 500);
    if (rc != 0) {
        CHECK(err.status == rc && err.name != NULL && err.message[0] != '\0');
        CHECK(out.len == 5 && memcmp(out.data, "prev\n", 5) == 0);
        goto done;
    }
    CHECK(limit == 0 || out.len - 5 <= limit);
    pos = 5;
    CHECK(csv_read_row(out.data, out.len, &pos, fields, NCOLS) == NCOLS && pos == out.len);
    CHECK(fields[0].len == SD_UUID_STR_LEN && fields[0].data[14] == '7');
    sd_time_format_iso(rec.recv_time_ms, when);
    CHECK(field_is(&fields[1], when, SD_TIME_ISO_LEN));
    CHECK(field_is(&fields[2], rec.ip, strlen(rec.ip)));
    CHECK(field_is(&fields[3], rec.body.p, rec.body.len));
    CHECK(sd_json_utf8_valid(rec.body.p, rec.body.len));
    CHECK(rec.body.len == 0 || memchr(rec.body.p, '\0', rec.body.len) == NULL);
    CHECK(sd_json_parse(fields[4].data, fields[4].len, &doc, NULL, 0) == 0);
    sd_json_doc_free(doc);
    /* The path value, computed on a fresh record. */
    sd_record_init(&rec2);
    rec2.body = rec.body;
    rec2.content_type = rec.content_type;
    CHECK(expected_path(&rec2, path, plen, raw, has_default, &want) == 0);
    CHECK(field_is(&fields[5], want.data, want.len));
    sd_record_fini(&rec2);
done:
    for (int i = 0; i < NCOLS; i++) {
        sd_buf_fini(&fields[i]);
    }
    sd_buf_fini(&out);
    sd_buf_fini(&want);
    sd_mapping_destroy(m);
    sd_record_fini(&rec);
    return 0;
}
