/* sd_mapping.c: compiling a sink's columns and writing one CSV row per record.
 *
 * DESIGN. Compilation (control plane, sink create/update) validates the API JSON, parses every
 * path into segments and pre-encodes every default value, so writing a row does no parsing of
 * the mapping and no allocation beyond growing the caller's row buffer: values are produced
 * straight into the row (path lookups write there and are quoted in place by sd_csv). A compiled
 * mapping is immutable and shared by threads; the per-record state (parsed body, headers JSON)
 * lives in the record. Errors are returned as HTTP statuses with the reference's names; the row
 * buffer is restored on every error. Template columns are compiled Jsonnet programs
 * (sd_template) evaluated on the calling thread's VM straight into the row. */
#include "pipeline/sd_mapping.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/sd_alloc.h"
#include "core/sd_error.h"
#include "core/sd_time.h"
#include "pipeline/sd_csv.h"
#include "pipeline/sd_json.h"
#include "pipeline/sd_template.h"
#include "pipeline/sd_uuid.h"

#define SD_MAPPING_MAX_COLUMNS 100

struct sd_column {
    enum sd_column_type type;
    char *name;
    int raw_string;
    struct sd_json_cpath path; /* path columns */
    int has_default;
    char *def; /* the bytes written for a missing path (owned) */
    size_t def_len;
    struct sd_template *tpl; /* template columns (owned) */
};

struct sd_mapping {
    size_t n;
    int needs_body;
    int has_template;
    struct sd_column cols[];
};

static const struct {
    const char *name;
    enum sd_column_type type;
} column_types[] = {
    {"uuid", SD_COL_UUID},         {"datetime", SD_COL_DATETIME}, {"ip", SD_COL_IP},
    {"body", SD_COL_BODY},         {"headers", SD_COL_HEADERS},   {"path", SD_COL_PATH},
    {"template", SD_COL_TEMPLATE},
};

void sd_mapping_destroy(struct sd_mapping *m)
{
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < m->n; i++) {
        free(m->cols[i].name);
        free(m->cols[i].def);
        sd_json_cpath_fini(&m->cols[i].path);
        sd_template_destroy(m->cols[i].tpl);
    }
    free(m);
}

/* Reads an optional boolean member. Returns 0 or SD_EINVAL (message appended). */
static int opt_bool(const json_t *col, size_t i, const char *key, int *val, struct sd_buf *err)
{
    const json_t *v = json_object_get(col, key);

    *val = 0;
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_boolean(v)) {
        sd_buf_printf(err, "\"columns[%zu].%s\" must be a boolean", i, key);
        return SD_EINVAL;
    }
    *val = json_is_true(v);
    return 0;
}

/* Compiles the members of a path column. Returns 0, SD_EINVAL or -ENOMEM. */
static int compile_path(const json_t *col, size_t i, struct sd_column *c, struct sd_buf *err)
{
    const json_t *p = json_object_get(col, "path");
    const json_t *d = json_object_get(col, "defaultValue");
    struct sd_buf enc = SD_BUF_INIT;
    char why[96];
    int rc;

    if (p == NULL || json_is_null(p) || (json_is_string(p) && json_string_length(p) == 0)) {
        sd_buf_printf(err, "\"columns[%zu].path\" is required", i);
        return SD_EINVAL;
    }
    if (!json_is_string(p)) {
        sd_buf_printf(err, "\"columns[%zu].path\" must be a string", i);
        return SD_EINVAL;
    }
    rc = sd_json_cpath_compile(json_string_value(p), json_string_length(p), &c->path, why,
                               sizeof(why));
    if (rc == SD_EPARSE) {
        sd_buf_printf(err, "\"columns[%zu].path\" is invalid: %s", i, why);
        return SD_EINVAL;
    }
    if (rc != 0) {
        return rc;
    }
    rc = opt_bool(col, i, "rawString", &c->raw_string, err);
    if (rc != 0 || d == NULL || json_is_null(d)) {
        return rc;
    }
    if (!json_is_string(d)) {
        sd_buf_printf(err, "\"columns[%zu].defaultValue\" must be a string", i);
        return SD_EINVAL;
    }
    if (c->raw_string) {
        if (memchr(json_string_value(d), '\0', json_string_length(d)) != NULL) {
            sd_buf_printf(err, "\"columns[%zu].defaultValue\" must not contain a NUL character", i);
            return SD_EINVAL;
        }
        rc = sd_buf_append(&enc, json_string_value(d), json_string_length(d));
    } else {
        rc = sd_json_write_string(&enc, json_string_value(d), json_string_length(d));
    }
    if (rc != 0) {
        sd_buf_fini(&enc);
        return rc;
    }
    c->has_default = 1;
    c->def_len = enc.len;
    c->def = sd_buf_steal(&enc);
    return 0;
}

/* Compiles the members of a template column: template {language: "jsonnet", content} and
 * rawString. Returns 0, SD_EINVAL or -ENOMEM. */
static int compile_template(const json_t *col, size_t i, struct sd_column *c, struct sd_buf *err)
{
    const json_t *t = json_object_get(col, "template");
    const json_t *lang;
    const json_t *content;
    struct sd_buf why = SD_BUF_INIT;
    size_t len;
    int rc;

    if (t == NULL || json_is_null(t)) {
        sd_buf_printf(err, "\"columns[%zu].template\" is required", i);
        return SD_EINVAL;
    }
    if (!json_is_object(t)) {
        sd_buf_printf(err, "\"columns[%zu].template\" must be an object", i);
        return SD_EINVAL;
    }
    lang = json_object_get(t, "language");
    if (lang == NULL || json_is_null(lang)) {
        sd_buf_printf(err, "\"columns[%zu].template.language\" is required", i);
        return SD_EINVAL;
    }
    if (!json_is_string(lang) || strcmp(json_string_value(lang), "jsonnet") != 0 ||
        json_string_length(lang) != strlen("jsonnet")) {
        sd_buf_printf(err, "\"columns[%zu].template.language\" must be one of jsonnet", i);
        return SD_EINVAL;
    }
    content = json_object_get(t, "content");
    if (content == NULL || json_is_null(content) ||
        (json_is_string(content) && json_string_length(content) == 0)) {
        sd_buf_printf(err, "\"columns[%zu].template.content\" is required", i);
        return SD_EINVAL;
    }
    if (!json_is_string(content)) {
        sd_buf_printf(err, "\"columns[%zu].template.content\" must be a string", i);
        return SD_EINVAL;
    }
    /* The reference counts characters (code points), as its validator does. */
    len = 0;
    for (size_t k = 0; k < json_string_length(content); k++) {
        len += ((unsigned char)json_string_value(content)[k] & 0xC0) != 0x80;
    }
    if (len > SD_TEMPLATE_MAX_CONTENT) {
        sd_buf_printf(err, "\"columns[%zu].template.content\" must be at most %d characters", i,
                      SD_TEMPLATE_MAX_CONTENT);
        return SD_EINVAL;
    }
    rc = opt_bool(col, i, "rawString", &c->raw_string, err);
    if (rc != 0) {
        return rc;
    }
    rc =
        sd_template_compile(json_string_value(content), json_string_length(content), &c->tpl, &why);
    if (rc == SD_EPARSE) {
        sd_buf_printf(err, "\"columns[%zu].template\" is invalid: %s", i, sd_buf_cstr(&why));
        rc = SD_EINVAL;
    }
    sd_buf_fini(&why);
    return rc;
}

static int compile_column(const json_t *col, size_t i, struct sd_mapping *m, struct sd_buf *err)
{
    struct sd_column *c = &m->cols[i];
    const json_t *t;
    const json_t *name;
    const char *tname;
    size_t k;
    int pk;
    int rc;

    if (!json_is_object(col)) {
        sd_buf_printf(err, "\"columns[%zu]\" must be an object", i);
        return SD_EINVAL;
    }
    t = json_object_get(col, "type");
    if (t == NULL || json_is_null(t)) {
        sd_buf_printf(err, "\"columns[%zu].type\" is required", i);
        return SD_EINVAL;
    }
    if (!json_is_string(t)) {
        sd_buf_printf(err, "\"columns[%zu].type\" must be a string", i);
        return SD_EINVAL;
    }
    tname = json_string_value(t);
    for (k = 0; k < sizeof(column_types) / sizeof(column_types[0]); k++) {
        if (strcmp(tname, column_types[k].name) == 0) {
            break;
        }
    }
    if (k == sizeof(column_types) / sizeof(column_types[0]) ||
        strlen(tname) != json_string_length(t)) {
        sd_buf_printf(err,
                      "\"columns[%zu].type\" must be one of uuid, datetime, ip, body, headers, "
                      "path, template",
                      i);
        return SD_EINVAL;
    }
    c->type = column_types[k].type;
    name = json_object_get(col, "name");
    if (name == NULL || json_is_null(name) ||
        (json_is_string(name) && json_string_length(name) == 0)) {
        sd_buf_printf(err, "\"columns[%zu].name\" is required", i);
        return SD_EINVAL;
    }
    if (!json_is_string(name)) {
        sd_buf_printf(err, "\"columns[%zu].name\" must be a string", i);
        return SD_EINVAL;
    }
    if (strlen(json_string_value(name)) != json_string_length(name)) {
        sd_buf_printf(err, "\"columns[%zu].name\" must not contain a NUL character", i);
        return SD_EINVAL;
    }
    /* Table columns are one case-insensitive namespace (SQLite, Keboola Storage). */
    for (k = 0; k < i; k++) {
        if (strcasecmp(m->cols[k].name, json_string_value(name)) == 0) {
            sd_buf_printf(err,
                          "\"columns[%zu].name\" \"%s\" duplicates the name \"%s\" of "
                          "columns[%zu] (column names ignore case)",
                          i, json_string_value(name), m->cols[k].name, k);
            return SD_EINVAL;
        }
    }
    c->name = sd_xstrdup(json_string_value(name));
    rc = opt_bool(col, i, "primaryKey", &pk, err);
    if (rc != 0) {
        return rc;
    }
    if (c->type == SD_COL_TEMPLATE) {
        rc = compile_template(col, i, c, err);
        m->has_template = 1;
        if (rc == 0 && sd_template_uses_body(c->tpl)) {
            m->needs_body = 1;
        }
        return rc;
    }
    if (c->type == SD_COL_PATH) {
        m->needs_body = 1;
        return compile_path(col, i, c, err);
    }
    return 0;
}

int sd_mapping_compile(const json_t *columns, struct sd_mapping **out, struct sd_buf *err)
{
    struct sd_mapping *m;
    size_t n;
    int rc = 0;

    *out = NULL;
    if (!json_is_array(columns)) {
        sd_buf_append_str(err, "\"columns\" must be an array");
        return SD_EINVAL;
    }
    n = json_array_size(columns);
    if (n < 1) {
        sd_buf_append_str(err, "\"columns\" must contain at least 1 item");
        return SD_EINVAL;
    }
    if (n > SD_MAPPING_MAX_COLUMNS) {
        sd_buf_printf(err, "\"columns\" must contain at most %d items", SD_MAPPING_MAX_COLUMNS);
        return SD_EINVAL;
    }
    m = sd_xcalloc(1, sizeof(*m) + n * sizeof(m->cols[0]));
    for (size_t i = 0; rc == 0 && i < n; i++) {
        m->n = i + 1;
        rc = compile_column(json_array_get(columns, i), i, m, err);
    }
    if (rc != 0) {
        sd_mapping_destroy(m);
        return rc;
    }
    *out = m;
    return 0;
}

size_t sd_mapping_ncolumns(const struct sd_mapping *m)
{
    return m->n;
}

const char *sd_mapping_column_name(const struct sd_mapping *m, size_t i)
{
    return m->cols[i].name;
}

enum sd_column_type sd_mapping_column_type(const struct sd_mapping *m, size_t i)
{
    return m->cols[i].type;
}

int sd_mapping_needs_body(const struct sd_mapping *m)
{
    return m->needs_body;
}

int sd_mapping_has_template(const struct sd_mapping *m)
{
    return m->has_template;
}

static int map_fail(struct sd_map_error *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int map_fail(struct sd_map_error *err, int status, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL) {
        err->status = status;
        switch (status) {
        case 400:
            err->name = "stream.in.badRequest";
            break;
        case 413:
            err->name = "stream.in.payloadTooLarge";
            break;
        case 415:
            err->name = "stream.in.unsupportedMediaType";
            break;
        default:
            err->name = "stream.in.genericError";
            break;
        }
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
    }
    return status;
}

static void put2(char *w, unsigned v)
{
    w[0] = (char)('0' + v / 10);
    w[1] = (char)('0' + v % 10);
}

/* sd_time_format_iso without gmtime_r and snprintf (it runs for every record): the civil date
 * from the day count with the era arithmetic of the proleptic Gregorian calendar. */
static void format_datetime(int64_t ms, char *out)
{
    int64_t days;
    unsigned sod;
    unsigned doe;
    unsigned yoe;
    unsigned doy;
    unsigned mp;
    unsigned day;
    unsigned month;
    unsigned year;

    if (ms < 0 || ms >= 253402300800000LL) { /* before 1970 or after 9999 */
        sd_time_format_iso(ms, out);
        return;
    }
    days = ms / 86400000;
    sod = (unsigned)(ms / 1000 % 86400);
    doe = (unsigned)((days + 719468) % 146097); /* day of the 400-year era (from 0000-03-01) */
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153; /* month from March = 0 */
    day = doy - (153 * mp + 2) / 5 + 1;
    month = mp < 10 ? mp + 3 : mp - 9;
    year = yoe + (unsigned)((days + 719468) / 146097) * 400 + (month <= 2);
    put2(out, year / 100);
    put2(out + 2, year % 100);
    out[4] = '-';
    put2(out + 5, month);
    out[7] = '-';
    put2(out + 8, day);
    out[10] = 'T';
    put2(out + 11, sod / 3600);
    out[13] = ':';
    put2(out + 14, sod / 60 % 60);
    out[16] = ':';
    put2(out + 17, sod % 60);
    out[19] = '.';
    out[20] = (char)('0' + ms % 1000 / 100);
    put2(out + 21, (unsigned)(ms % 100));
    out[23] = 'Z';
    out[24] = '\0';
}

/* Writes one path column's field. Returns 0, an HTTP status (err filled) or -ENOMEM. */
static int write_path(const struct sd_column *c, struct sd_record *rec, int first,
                      struct sd_buf *out, struct sd_map_error *err)
{
    size_t vstart = out->len;
    int found;
    int rc;

    rc = sd_record_parse_body(rec, err);
    if (rc != 0) {
        return rc;
    }
    rc = sd_json_cpath_lookup(rec->doc, &c->path, c->raw_string, out, &found);
    if (rc == SD_EINVAL) {
        return map_fail(err, 400, "a value to be written contains a NUL character (column \"%s\")",
                        c->name);
    }
    if (rc != 0) {
        return rc;
    }
    if (!found) {
        if (!c->has_default) {
            return map_fail(err, 500, "path \"%s\" not found in the body", c->path.text);
        }
        rc = sd_buf_append(out, c->def, c->def_len);
        if (rc != 0) {
            return rc;
        }
    }
    return sd_csv_field_tail(out, vstart, first);
}

/* Writes one template column's field: the value evaluated straight into the row, then quoted in
 * place. Returns 0, an HTTP status (err filled) or -ENOMEM. */
static int write_template(const struct sd_column *c, struct sd_record *rec, int first,
                          struct sd_buf *out, struct sd_map_error *err)
{
    size_t vstart = out->len;
    struct sd_map_error terr;
    int rc;

    memset(&terr, 0, sizeof(terr));
    rc = sd_template_eval(c->tpl, rec, c->raw_string, out, &terr);
    if (rc == 500) {
        return map_fail(err, 500, "column \"%s\": %s", c->name, terr.message);
    }
    if (rc != 0) {
        if (rc > 0 && err != NULL) {
            *err = terr; /* the body's own 400/415, as path columns report it */
        }
        return rc;
    }
    if (out->len > vstart && memchr(out->data + vstart, '\0', out->len - vstart) != NULL) {
        out->len = vstart;
        out->data[vstart] = '\0';
        return map_fail(err, 400, "a value to be written contains a NUL character (column \"%s\")",
                        c->name);
    }
    return sd_csv_field_tail(out, vstart, first);
}

static int write_body(const struct sd_column *c, const struct sd_record *rec, int first,
                      struct sd_buf *out, struct sd_map_error *err)
{
    if (rec->body.len > 0 && memchr(rec->body.p, '\0', rec->body.len) != NULL) {
        return map_fail(err, 400, "a value to be written contains a NUL character (column \"%s\")",
                        c->name);
    }
    if (!sd_json_utf8_valid(rec->body.p, rec->body.len)) {
        return map_fail(err, 400, "the body is not valid UTF-8 (column \"%s\")", c->name);
    }
    return sd_csv_field(out, rec->body.p, rec->body.len, first);
}

int sd_mapping_write_row(const struct sd_mapping *m, struct sd_record *rec, size_t row_size_limit,
                         struct sd_buf *out, struct sd_map_error *err)
{
    size_t start = out->len;
    size_t limit = row_size_limit ? row_size_limit : SIZE_MAX;
    char tmp[SD_UUID_STR_LEN + 1];
    struct sd_str hj;
    int over = 0;
    int rc = 0;

    for (size_t i = 0; i < m->n && rc == 0; i++) {
        const struct sd_column *c = &m->cols[i];
        int first = i == 0;
        switch (c->type) {
        case SD_COL_UUID:
            sd_uuid_v7(rec->recv_time_ms, tmp);
            rc = sd_csv_field(out, tmp, SD_UUID_STR_LEN, first);
            break;
        case SD_COL_DATETIME:
            format_datetime(rec->recv_time_ms, tmp);
            rc = sd_csv_field(out, tmp, SD_TIME_ISO_LEN, first);
            break;
        case SD_COL_IP:
            rc = sd_csv_field(out, rec->ip, strnlen(rec->ip, sizeof(rec->ip)), first);
            break;
        case SD_COL_BODY:
            if (rec->body.len > limit - (out->len - start)) {
                rc = 413;
                over = 1;
                break;
            }
            rc = write_body(c, rec, first, out, err);
            break;
        case SD_COL_HEADERS:
            rc = sd_record_headers_json(rec, &hj);
            if (rc == 0) {
                rc = sd_csv_field(out, hj.p, hj.len, first);
            }
            break;
        case SD_COL_PATH:
            rc = write_path(c, rec, first, out, err);
            break;
        case SD_COL_TEMPLATE:
            rc = write_template(c, rec, first, out, err);
            break;
        }
        if (rc == 0 && out->len - start > limit) {
            rc = 413;
            over = 1;
        }
    }
    if (rc == 0) {
        rc = sd_csv_end_row(out);
    }
    if (rc == 0 && out->len - start > limit) {
        rc = 413;
        over = 1;
    }
    if (over) { /* a column's own 413 (a template value over its limit) keeps its message */
        map_fail(err, 413, "the CSV row exceeds the row size limit of %zu bytes", row_size_limit);
    }
    if (rc != 0) {
        out->len = start;
        if (out->data != NULL) {
            out->data[start] = '\0';
        }
    }
    return rc;
}
