/* test_mapping.c: unit tests of pipeline/sd_mapping, pipeline/sd_record and the template columns
 * (pipeline/sd_template): compile errors, every column type, header names and the headers JSON,
 * content types, form bodies, the record functions of templates, the error statuses
 * (400/413/415/500) with their names, and the row size limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "core/sd_time.h"
#include "jsonnet/sd_jsonnet.h"
#include "pipeline/sd_mapping.h"
#include "pipeline/sd_record.h"
#include "pipeline/sd_template.h"
#include "pipeline/sd_uuid.h"

#define REC_MS 1732500000123LL

/* ---- helpers ---- */

/* Splits one CSV row (sd_csv format) into fields; returns the field count or -1. */
static int csv_split(const char *row, size_t len, struct sd_buf *fields, int max)
{
    size_t i = 0;
    int n = 0;

    while (n < max) {
        sd_buf_reset(&fields[n]);
        if (i >= len || row[i] != '"') {
            return -1;
        }
        i++;
        for (;;) {
            if (i >= len) {
                return -1;
            }
            if (row[i] == '"') {
                if (i + 1 < len && row[i + 1] == '"') {
                    sd_buf_append_char(&fields[n], '"');
                    i += 2;
                    continue;
                }
                i++;
                break;
            }
            sd_buf_append_char(&fields[n], row[i]);
            i++;
        }
        sd_buf_cstr(&fields[n]);
        n++;
        if (i < len && row[i] == ',') {
            i++;
            continue;
        }
        if (i + 1 == len && row[i] == '\n') {
            return n;
        }
        return -1;
    }
    return -1;
}

static struct sd_mapping *compile(const char *columns_json)
{
    json_error_t jerr;
    json_t *cols = json_loads(columns_json, 0, &jerr);
    struct sd_buf err = SD_BUF_INIT;
    struct sd_mapping *m = NULL;
    int rc;

    assert_non_null(cols);
    rc = sd_mapping_compile(cols, &m, &err);
    if (rc != 0) {
        fail_msg("compile failed: %s", sd_buf_cstr(&err));
    }
    json_decref(cols);
    sd_buf_fini(&err);
    return m;
}

static void expect_compile_error(const char *columns_json, const char *message)
{
    json_error_t jerr;
    json_t *cols = json_loads(columns_json, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    struct sd_buf err = SD_BUF_INIT;
    struct sd_mapping *m = (struct sd_mapping *)&err;

    assert_non_null(cols);
    assert_int_equal(sd_mapping_compile(cols, &m, &err), SD_EINVAL);
    assert_null(m);
    assert_string_equal(sd_buf_cstr(&err), message);
    json_decref(cols);
    sd_buf_fini(&err);
}

struct fixture {
    struct sd_header headers[8];
    char names[8][32];
    struct sd_record rec;
};

static void rec_setup(struct fixture *f, const char *content_type, const char *body,
                      size_t body_len)
{
    static const char *const raw[][2] = {
        {"x-custom", "v1"}, {"content-type", NULL}, {"USER-AGENT", "curl/8 \"q\""},
        {"x-custom", "v2"}, {"accept", "*/*"},
    };
    size_t n = 0;

    sd_record_init(&f->rec);
    f->rec.recv_time_ms = REC_MS;
    strcpy(f->rec.ip, "192.0.2.7");
    for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
        const char *v = raw[i][1] ? raw[i][1] : content_type;
        if (v == NULL) {
            continue;
        }
        sd_header_canonicalize(raw[i][0], strlen(raw[i][0]), f->names[n]);
        f->headers[n].name.p = f->names[n];
        f->headers[n].name.len = strlen(raw[i][0]);
        f->headers[n].value = sd_str_c(v);
        n++;
    }
    sd_record_sort_headers(f->headers, n);
    f->rec.headers = f->headers;
    f->rec.nheaders = n;
    f->rec.body.p = body;
    f->rec.body.len = body_len;
    f->rec.content_type = content_type ? sd_str_c(content_type) : SD_STR_LIT("");
}

static void rec_setup_str(struct fixture *f, const char *content_type, const char *body)
{
    rec_setup(f, content_type, body, strlen(body));
}

/* Writes a row and expects success; splits it into fields. */
static int row_ok(const struct sd_mapping *m, struct sd_record *rec, struct sd_buf *fields, int max)
{
    struct sd_buf out = SD_BUF_INIT;
    struct sd_map_error err;
    int n;
    int rc;

    memset(&err, 0, sizeof(err));
    rc = sd_mapping_write_row(m, rec, 0, &out, &err);
    if (rc != 0) {
        fail_msg("write_row: %d %s", rc, err.message);
    }
    n = csv_split(out.data, out.len, fields, max);
    assert_int_equal(n, (int)sd_mapping_ncolumns(m));
    sd_buf_fini(&out);
    return n;
}

static void row_err(const struct sd_mapping *m, struct sd_record *rec, size_t limit, int status,
                    const char *name, const char *message)
{
    struct sd_buf out = SD_BUF_INIT;
    struct sd_map_error err;

    memset(&err, 0, sizeof(err));
    sd_buf_append_str(&out, "previous row\n");
    assert_int_equal(sd_mapping_write_row(m, rec, limit, &out, &err), status);
    assert_int_equal(err.status, status);
    assert_string_equal(err.name, name);
    if (strstr(err.message, message) == NULL) {
        fail_msg("message \"%s\" lacks \"%s\"", err.message, message);
    }
    assert_string_equal(sd_buf_cstr(&out), "previous row\n");
    sd_buf_fini(&out);
}

static void fields_fini(struct sd_buf *fields, int n)
{
    for (int i = 0; i < n; i++) {
        sd_buf_fini(&fields[i]);
    }
}

/* ---- tests ---- */

static void test_canonical_names(void **state)
{
    static const char *const cases[][2] = {
        {"content-type", "Content-Type"},
        {"x-custom", "X-Custom"},
        {"X-CUSTOM-ID", "X-Custom-Id"},
        {"host", "Host"},
        {"a_b", "A_b"},
        {"x--y", "X--Y"},
        {"1abc-def", "1abc-Def"},
        {"foo bar", "foo bar"},
        {"x-\xc3\xa9", "x-\xc3\xa9"},
        {"", ""},
        {"WWW-Authenticate", "Www-Authenticate"},
    };
    char out[64];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = strlen(cases[i][0]);
        memset(out, 0, sizeof(out));
        sd_header_canonicalize(cases[i][0], len, out);
        assert_string_equal(out, cases[i][1]);
    }
    /* In place. */
    strcpy(out, "content-length");
    sd_header_canonicalize(out, strlen(out), out);
    assert_string_equal(out, "Content-Length");
}

static void test_sort_headers(void **state)
{
    struct sd_header h[5] = {
        {SD_STR_LIT("X-B"), SD_STR_LIT("1")}, {SD_STR_LIT("Accept"), SD_STR_LIT("2")},
        {SD_STR_LIT("X-B"), SD_STR_LIT("3")}, {SD_STR_LIT("X"), SD_STR_LIT("4")},
        {SD_STR_LIT("Abc"), SD_STR_LIT("5")},
    };
    static const char *const names[] = {"Abc", "Accept", "X", "X-B", "X-B"};
    static const char *const values[] = {"5", "2", "4", "1", "3"};

    (void)state;
    sd_record_sort_headers(h, 5);
    for (int i = 0; i < 5; i++) {
        assert_true(sd_str_eq(h[i].name, sd_str_c(names[i])));
        assert_true(sd_str_eq(h[i].value, sd_str_c(values[i])));
    }
}

static void test_content_types(void **state)
{
    static const char *const json[] = {
        "application/json",         "APPLICATION/JSON",         "application/json; charset=utf-8",
        " application/json ",       "application/vnd.api+json", "application/ld+json;x=y",
        "Application/Problem+JSON",
    };
    static const char *const not_json[] = {
        "",
        "text/json",
        "application/jsonx",
        "application/+json",
        "application/a/b+json",
        "application/x-www-form-urlencoded",
        "application/ json",
        "json",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(json) / sizeof(json[0]); i++) {
        assert_int_equal(sd_content_type_is_json(sd_str_c(json[i])), 1);
    }
    for (size_t i = 0; i < sizeof(not_json) / sizeof(not_json[0]); i++) {
        assert_int_equal(sd_content_type_is_json(sd_str_c(not_json[i])), 0);
    }
    assert_int_equal(
        sd_content_type_is_form(SD_STR_LIT("application/x-www-form-urlencoded; charset=UTF-8")), 1);
    assert_int_equal(sd_content_type_is_form(SD_STR_LIT("Application/X-WWW-Form-Urlencoded")), 1);
    assert_int_equal(sd_content_type_is_form(SD_STR_LIT("multipart/form-data")), 0);
}

static void test_compile_errors(void **state)
{
    struct sd_buf many = SD_BUF_INIT;

    (void)state;
    expect_compile_error("{}", "\"columns\" must be an array");
    expect_compile_error("[]", "\"columns\" must contain at least 1 item");
    expect_compile_error("[1]", "\"columns[0]\" must be an object");
    expect_compile_error("[{\"name\":\"a\"}]", "\"columns[0].type\" is required");
    expect_compile_error("[{\"type\":5,\"name\":\"a\"}]", "\"columns[0].type\" must be a string");
    expect_compile_error("[{\"type\":\"uuid\",\"name\":\"a\"},{\"type\":\"foo\",\"name\":\"b\"}]",
                         "\"columns[1].type\" must be one of uuid, datetime, ip, body, headers, "
                         "path, template");
    expect_compile_error("[{\"type\":\"uuid\"}]", "\"columns[0].name\" is required");
    expect_compile_error("[{\"type\":\"uuid\",\"name\":\"\"}]", "\"columns[0].name\" is required");
    expect_compile_error("[{\"type\":\"uuid\",\"name\":[]}]",
                         "\"columns[0].name\" must be a string");
    expect_compile_error("[{\"type\":\"uuid\",\"name\":\"a\"},{\"type\":\"ip\",\"name\":\"a\"}]",
                         "\"columns[1].name\" \"a\" duplicates the name \"a\" of columns[0] "
                         "(column names ignore case)");
    expect_compile_error("[{\"type\":\"uuid\",\"name\":\"Id\"},{\"type\":\"ip\",\"name\":\"b\"},"
                         "{\"type\":\"body\",\"name\":\"iD\"}]",
                         "\"columns[2].name\" \"iD\" duplicates the name \"Id\" of columns[0] "
                         "(column names ignore case)");
    expect_compile_error("[{\"type\":\"uuid\",\"name\":\"a\"},{\"type\":\"path\",\"name\":\"b\","
                         "\"rawString\":true},{\"type\":\"path\",\"name\":\"c\"}]",
                         "\"columns[1].path\" is required");
    expect_compile_error("[{\"type\":\"path\",\"name\":\"c\",\"path\":\"\"}]",
                         "\"columns[0].path\" is required");
    expect_compile_error("[{\"type\":\"path\",\"name\":\"c\",\"path\":1}]",
                         "\"columns[0].path\" must be a string");
    expect_compile_error("[{\"type\":\"path\",\"name\":\"c\",\"path\":\"a..b\"}]",
                         "\"columns[0].path\" is invalid: empty key at offset 2");
    expect_compile_error("[{\"type\":\"path\",\"name\":\"c\",\"path\":\"a[x]\"}]",
                         "\"columns[0].path\" is invalid: expected digits and ']' after '[' at "
                         "offset 2");
    expect_compile_error("[{\"type\":\"path\",\"name\":\"c\",\"path\":\"a\",\"rawString\":1}]",
                         "\"columns[0].rawString\" must be a boolean");
    expect_compile_error("[{\"type\":\"path\",\"name\":\"c\",\"path\":\"a\",\"defaultValue\":1}]",
                         "\"columns[0].defaultValue\" must be a string");
    expect_compile_error("[{\"type\":\"path\",\"name\":\"c\",\"path\":\"a\",\"rawString\":true,"
                         "\"defaultValue\":\"x\\u0000\"}]",
                         "\"columns[0].defaultValue\" must not contain a NUL character");
    expect_compile_error("[{\"type\":\"uuid\",\"name\":\"a\",\"primaryKey\":\"yes\"}]",
                         "\"columns[0].primaryKey\" must be a boolean");
    expect_compile_error("[{\"type\":\"template\",\"name\":\"t\"}]",
                         "\"columns[0].template\" is required");
    expect_compile_error("[{\"type\":\"template\",\"name\":\"t\",\"template\":\"Ip()\"}]",
                         "\"columns[0].template\" must be an object");
    expect_compile_error("[{\"type\":\"template\",\"name\":\"t\",\"template\":{"
                         "\"content\":\"Ip()\"}}]",
                         "\"columns[0].template.language\" is required");
    expect_compile_error("[{\"type\":\"template\",\"name\":\"t\",\"template\":{\"language\":"
                         "\"go\",\"content\":\"Ip()\"}}]",
                         "\"columns[0].template.language\" must be one of jsonnet");
    expect_compile_error("[{\"type\":\"template\",\"name\":\"t\",\"template\":{\"language\":"
                         "\"jsonnet\",\"content\":\"\"}}]",
                         "\"columns[0].template.content\" is required");
    expect_compile_error("[{\"type\":\"template\",\"name\":\"t\",\"template\":{\"language\":"
                         "\"jsonnet\",\"content\":7}}]",
                         "\"columns[0].template.content\" must be a string");
    expect_compile_error("[{\"type\":\"template\",\"name\":\"t\",\"rawString\":\"y\","
                         "\"template\":{\"language\":\"jsonnet\",\"content\":\"Ip()\"}}]",
                         "\"columns[0].rawString\" must be a boolean");
    sd_buf_append_str(&many, "[{\"type\":\"template\",\"name\":\"t\",\"template\":{"
                             "\"language\":\"jsonnet\",\"content\":\"");
    for (int i = 0; i < 4097; i++) {
        sd_buf_append_char(&many, ' ');
    }
    sd_buf_append_str(&many, "\"}}]");
    expect_compile_error(many.data, "\"columns[0].template.content\" must be at most 4096 "
                                    "characters");
    sd_buf_reset(&many);
    sd_buf_append_char(&many, '[');
    for (int i = 0; i < 101; i++) {
        sd_buf_printf(&many, "%s{\"type\":\"ip\",\"name\":\"c%d\"}", i ? "," : "", i);
    }
    sd_buf_append_char(&many, ']');
    expect_compile_error(many.data, "\"columns\" must contain at most 100 items");
    sd_buf_fini(&many);
}

static void test_compile_ok(void **state)
{
    struct sd_mapping *m;
    struct sd_buf cols = SD_BUF_INIT;

    (void)state;
    m = compile("[{\"type\":\"uuid\",\"name\":\"id\",\"primaryKey\":true},"
                "{\"type\":\"datetime\",\"name\":\"t\"},{\"type\":\"ip\",\"name\":\"ip\"},"
                "{\"type\":\"body\",\"name\":\"b\"},{\"type\":\"headers\",\"name\":\"h\"},"
                "{\"type\":\"path\",\"name\":\"p\",\"path\":\"a.b\",\"defaultValue\":null,"
                "\"extra\":1}]");
    assert_int_equal(sd_mapping_ncolumns(m), 6);
    assert_string_equal(sd_mapping_column_name(m, 0), "id");
    assert_int_equal(sd_mapping_column_type(m, 0), SD_COL_UUID);
    assert_int_equal(sd_mapping_column_type(m, 1), SD_COL_DATETIME);
    assert_int_equal(sd_mapping_column_type(m, 2), SD_COL_IP);
    assert_int_equal(sd_mapping_column_type(m, 3), SD_COL_BODY);
    assert_int_equal(sd_mapping_column_type(m, 4), SD_COL_HEADERS);
    assert_int_equal(sd_mapping_column_type(m, 5), SD_COL_PATH);
    assert_string_equal(sd_mapping_column_name(m, 5), "p");
    assert_int_equal(sd_mapping_needs_body(m), 1);
    sd_mapping_destroy(m);
    m = compile("[{\"type\":\"body\",\"name\":\"b\"}]");
    assert_int_equal(sd_mapping_needs_body(m), 0);
    sd_mapping_destroy(m);
    sd_buf_append_char(&cols, '[');
    for (int i = 0; i < 100; i++) {
        sd_buf_printf(&cols, "%s{\"type\":\"ip\",\"name\":\"c%d\"}", i ? "," : "", i);
    }
    sd_buf_append_char(&cols, ']');
    m = compile(cols.data);
    assert_int_equal(sd_mapping_ncolumns(m), 100);
    sd_mapping_destroy(m);
    sd_buf_fini(&cols);
    sd_mapping_destroy(NULL);
}

static const char all_columns[] =
    "[{\"type\":\"uuid\",\"name\":\"id\"},{\"type\":\"datetime\",\"name\":\"t\"},"
    "{\"type\":\"ip\",\"name\":\"ip\"},{\"type\":\"body\",\"name\":\"body\"},"
    "{\"type\":\"headers\",\"name\":\"h\"},"
    "{\"type\":\"path\",\"name\":\"p1\",\"path\":\"user.name\",\"rawString\":true},"
    "{\"type\":\"path\",\"name\":\"p2\",\"path\":\"user.name\"},"
    "{\"type\":\"path\",\"name\":\"p3\",\"path\":\"items[1]\"},"
    "{\"type\":\"path\",\"name\":\"p4\",\"path\":\"missing\",\"defaultValue\":\"d \\\"q\\\"\"},"
    "{\"type\":\"path\",\"name\":\"p5\",\"path\":\"missing\",\"defaultValue\":\"d \\\"q\\\"\","
    "\"rawString\":true},"
    "{\"type\":\"path\",\"name\":\"p6\",\"path\":\"big\"}]";

static const char body_json[] = "{\"user\": {\"name\": \"Ann, \\\"A\\\"\\n\"},"
                                " \"items\": [1, {\"k\": [true, null]}], \"big\": 1e400}";

static void test_all_columns(void **state)
{
    struct fixture f;
    struct sd_mapping *m = compile(all_columns);
    struct sd_buf fields[11];
    char when[SD_TIME_ISO_LEN + 1];

    (void)state;
    memset(fields, 0, sizeof(fields));
    rec_setup_str(&f, "application/json", body_json);
    row_ok(m, &f.rec, fields, 11);
    assert_int_equal(fields[0].len, SD_UUID_STR_LEN);
    assert_int_equal(fields[0].data[14], '7');
    assert_memory_equal(fields[0].data, "0193", 4); /* 1732500000123 = 0x0193_6229_1a7b */
    sd_time_format_iso(REC_MS, when);
    assert_string_equal(fields[1].data, when);
    assert_string_equal(fields[1].data, "2024-11-25T02:00:00.123Z");
    assert_string_equal(fields[2].data, "192.0.2.7");
    assert_string_equal(fields[3].data, body_json);
    assert_string_equal(fields[4].data, "{\"Accept\":\"*/*\",\"Content-Type\":\"application/json\","
                                        "\"User-Agent\":\"curl/8 \\\"q\\\"\","
                                        "\"X-Custom\":\"v1, v2\"}");
    assert_string_equal(fields[5].data, "Ann, \"A\"\n");
    assert_string_equal(fields[6].data, "\"Ann, \\\"A\\\"\\n\"");
    assert_string_equal(fields[7].data, "{\"k\":[true,null]}");
    assert_string_equal(fields[8].data, "\"d \\\"q\\\"\"");
    assert_string_equal(fields[9].data, "d \"q\"");
    assert_string_equal(fields[10].data, "1e400");
    /* The body was parsed once and is cached for further sinks. */
    assert_int_equal(f.rec.body_state, 1);
    row_ok(m, &f.rec, fields, 11);
    assert_string_equal(fields[5].data, "Ann, \"A\"\n");
    fields_fini(fields, 11);
    sd_record_fini(&f.rec);
    sd_mapping_destroy(m);
}

static void test_exact_row(void **state)
{
    struct fixture f;
    struct sd_mapping *m = compile("[{\"type\":\"ip\",\"name\":\"ip\"},"
                                   "{\"type\":\"body\",\"name\":\"b\"},"
                                   "{\"type\":\"path\",\"name\":\"a\",\"path\":\"a\"},"
                                   "{\"type\":\"path\",\"name\":\"r\",\"path\":\"a\","
                                   "\"rawString\":true}]");
    struct sd_buf out = SD_BUF_INIT;
    struct sd_map_error err;

    (void)state;
    rec_setup_str(&f, "application/json", "{\"a\": \"x,\\\"y\\\"\\r\\n\"}");
    assert_int_equal(sd_mapping_write_row(m, &f.rec, 0, &out, &err), 0);
    assert_string_equal(sd_buf_cstr(&out),
                        "\"192.0.2.7\",\"{\"\"a\"\": \"\"x,\\\"\"y\\\"\"\\r\\n\"\"}\","
                        "\"\"\"x,\\\"\"y\\\"\"\\r\\n\"\"\",\"x,\"\"y\"\"\r\n\"\n");
    sd_buf_fini(&out);
    sd_record_fini(&f.rec);
    sd_mapping_destroy(m);
}

static void test_no_body_parse_without_path(void **state)
{
    struct fixture f;
    struct sd_mapping *m = compile("[{\"type\":\"ip\",\"name\":\"ip\"},"
                                   "{\"type\":\"body\",\"name\":\"b\"}]");
    struct sd_buf fields[2];

    (void)state;
    memset(fields, 0, sizeof(fields));
    /* Neither JSON nor a supported content type: fine without path columns. */
    rec_setup_str(&f, "text/plain", "{not json");
    row_ok(m, &f.rec, fields, 2);
    assert_string_equal(fields[1].data, "{not json");
    assert_int_equal(f.rec.body_state, 0);
    fields_fini(fields, 2);
    sd_record_fini(&f.rec);
    sd_mapping_destroy(m);
}

static void test_form_body(void **state)
{
    struct fixture f;
    struct sd_mapping *m = compile("[{\"type\":\"path\",\"name\":\"a\",\"path\":\"a.b\","
                                   "\"rawString\":true},"
                                   "{\"type\":\"path\",\"name\":\"l\",\"path\":\"list\"},"
                                   "{\"type\":\"path\",\"name\":\"l1\",\"path\":\"list[1]\"}]");
    struct sd_buf fields[3];

    (void)state;
    memset(fields, 0, sizeof(fields));
    rec_setup_str(&f, "application/x-www-form-urlencoded; charset=utf-8",
                  "a[b]=hello+w%C3%B6rld&list[]=1&list[]=2");
    row_ok(m, &f.rec, fields, 3);
    assert_string_equal(fields[0].data, "hello w\xc3\xb6rld");
    assert_string_equal(fields[1].data, "[\"1\",\"2\"]");
    assert_string_equal(fields[2].data, "\"2\"");
    fields_fini(fields, 3);
    sd_record_fini(&f.rec);
    sd_mapping_destroy(m);
}

static void test_errors(void **state)
{
    struct fixture f;
    struct sd_mapping *m = compile("[{\"type\":\"ip\",\"name\":\"ip\"},"
                                   "{\"type\":\"path\",\"name\":\"p\",\"path\":\"a.b\","
                                   "\"rawString\":true}]");
    struct sd_mapping *mb = compile("[{\"type\":\"body\",\"name\":\"b\"}]");

    (void)state;
    rec_setup_str(&f, "application/json", "{\"a\":");
    row_err(m, &f.rec, 0, 400, "stream.in.badRequest", "invalid JSON: ");
    /* Cached: the same answer again. */
    row_err(m, &f.rec, 0, 400, "stream.in.badRequest", "invalid JSON: ");
    sd_record_fini(&f.rec);

    rec_setup_str(&f, "text/plain", "{\"a\":{\"b\":1}}");
    row_err(m, &f.rec, 0, 415, "stream.in.unsupportedMediaType",
            "unsupported content type \"text/plain\", supported types: application/json and "
            "application/x-www-form-urlencoded");
    sd_record_fini(&f.rec);

    rec_setup_str(&f, NULL, "{\"a\":{\"b\":1}}");
    row_err(m, &f.rec, 0, 415, "stream.in.unsupportedMediaType", "unsupported content type \"\"");
    sd_record_fini(&f.rec);

    rec_setup_str(&f, "application/json", "{\"a\":{\"c\":1}}");
    row_err(m, &f.rec, 0, 500, "stream.in.genericError", "path \"a.b\" not found in the body");
    sd_record_fini(&f.rec);

    rec_setup_str(&f, "application/json", "{\"a\":{\"b\":\"x\\u0000\"}}");
    row_err(m, &f.rec, 0, 400, "stream.in.badRequest",
            "a value to be written contains a NUL character");
    sd_record_fini(&f.rec);

    rec_setup_str(&f, "application/json", "{\"a\":{\"b\":\"\xff\"}}");
    row_err(m, &f.rec, 0, 400, "stream.in.badRequest", "invalid JSON: invalid UTF-8");
    sd_record_fini(&f.rec);

    rec_setup_str(&f, "application/x-www-form-urlencoded", "a[b]=1;");
    row_err(m, &f.rec, 0, 400, "stream.in.badRequest", "invalid form data: ");
    sd_record_fini(&f.rec);

    rec_setup(&f, "text/plain", "a\0b", 3);
    row_err(mb, &f.rec, 0, 400, "stream.in.badRequest",
            "a value to be written contains a NUL character");
    sd_record_fini(&f.rec);

    rec_setup_str(&f, "text/plain", "caf\xe9");
    row_err(mb, &f.rec, 0, 400, "stream.in.badRequest", "not valid UTF-8");
    sd_record_fini(&f.rec);
    sd_mapping_destroy(m);
    sd_mapping_destroy(mb);
}

static void test_row_size_limit(void **state)
{
    struct fixture f;
    struct sd_mapping *m = compile("[{\"type\":\"body\",\"name\":\"b\"},"
                                   "{\"type\":\"path\",\"name\":\"p\",\"path\":\"s\","
                                   "\"rawString\":true}]");
    struct sd_buf out = SD_BUF_INIT;
    struct sd_map_error err;
    static const char body[] = "{\"s\":\"abc\"}"; /* 11 bytes */
    /* "{""s"":""abc""}" (17) + ,"abc" (6) + \n = 24 */
    const size_t exact = 24;

    (void)state;
    rec_setup_str(&f, "application/json", body);
    assert_int_equal(sd_mapping_write_row(m, &f.rec, exact, &out, &err), 0);
    assert_int_equal(out.len, exact);
    row_err(m, &f.rec, exact - 1, 413, "stream.in.payloadTooLarge", "row size limit of 23 bytes");
    row_err(m, &f.rec, 5, 413, "stream.in.payloadTooLarge", "row size limit");
    sd_buf_fini(&out);
    sd_record_fini(&f.rec);
    sd_mapping_destroy(m);
}

static void test_datetime_values(void **state)
{
    static const int64_t times[] = {
        0,                /* 1970-01-01 */
        951782400000LL,   /* 2000-02-29 */
        951868799999LL,   /* 2000-02-29T23:59:59.999 */
        1709164800000LL,  /* 2024-02-29 */
        1735689599999LL,  /* 2024-12-31T23:59:59.999 */
        4107542400000LL,  /* 2100-03-01 */
        253402300799999LL /* 9999-12-31T23:59:59.999 */
    };
    struct sd_mapping *m = compile("[{\"type\":\"datetime\",\"name\":\"t\"}]");
    struct sd_buf fields[1];
    struct fixture f;
    char want[SD_TIME_ISO_LEN + 1];
    uint64_t ms = 1;

    (void)state;
    memset(fields, 0, sizeof(fields));
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]) + 2000; i++) {
        rec_setup_str(&f, NULL, "");
        if (i < sizeof(times) / sizeof(times[0])) {
            f.rec.recv_time_ms = times[i];
        } else {
            ms = ms * 6364136223846793005ULL + 1442695040888963407ULL;
            f.rec.recv_time_ms = (int64_t)(ms % 253402300800000ULL);
        }
        row_ok(m, &f.rec, fields, 1);
        sd_time_format_iso(f.rec.recv_time_ms, want);
        assert_string_equal(fields[0].data, want);
        sd_record_fini(&f.rec);
    }
    fields_fini(fields, 1);
    sd_mapping_destroy(m);
}

static void test_headers_json(void **state)
{
    struct sd_record rec;
    struct sd_header h[4] = {
        {SD_STR_LIT("A"), SD_STR_LIT("x\xff")},
        {SD_STR_LIT("B"), SD_STR_LIT("1")},
        {SD_STR_LIT("B"), SD_STR_LIT("2\"")},
        {SD_STR_LIT("B"), SD_STR_LIT("3")},
    };
    struct sd_str out;

    (void)state;
    sd_record_init(&rec);
    assert_int_equal(sd_record_headers_json(&rec, &out), 0);
    assert_true(sd_str_eq(out, SD_STR_LIT("{}")));
    sd_record_fini(&rec);
    sd_record_init(&rec);
    rec.headers = h;
    rec.nheaders = 4;
    assert_int_equal(sd_record_headers_json(&rec, &out), 0);
    assert_true(sd_str_eq(out, SD_STR_LIT("{\"A\":\"x\xef\xbf\xbd\",\"B\":\"1, 2\\\", 3\"}")));
    sd_record_fini(&rec);
}

/* ---- template columns ---- */

static const char tpl_body[] = "{\"a\": 1, \"c\": {\"d\": \"e\", \"f\": {\"g\": \"abcdefghij\"}},"
                               " \"arr\": [1, 2.5, \"x\\\"y\", null, true, false, {}, []],"
                               " \"dup\": {\"k\": 1, \"k\": 2}, \"u\": \"\\u00e9\\ud83d\\ude00\","
                               " \"n\": -1.5e3}";

/* Compiles one template column (content as a JSON string literal's content). */
static struct sd_mapping *tpl_compile(const char *content, int raw)
{
    json_t *cols =
        json_pack("[{s:s, s:s, s:b, s:{s:s, s:s}}]", "type", "template", "name", "t", "rawString",
                  raw, "template", "language", "jsonnet", "content", content);
    struct sd_buf err = SD_BUF_INIT;
    struct sd_mapping *m = NULL;

    assert_non_null(cols);
    if (sd_mapping_compile(cols, &m, &err) != 0) {
        fail_msg("compile of %s failed: %s", content, sd_buf_cstr(&err));
    }
    json_decref(cols);
    sd_buf_fini(&err);
    return m;
}

/* Evaluates a template for a JSON record with tpl_body and compares the field. */
static void tpl_expect(const char *content, int raw, const char *want)
{
    struct fixture f;
    struct sd_mapping *m = tpl_compile(content, raw);
    struct sd_buf fields[1];

    memset(fields, 0, sizeof(fields));
    rec_setup_str(&f, "application/json", tpl_body);
    row_ok(m, &f.rec, fields, 1);
    if (strcmp(fields[0].data, want) != 0) {
        fail_msg("%s: got %s, want %s", content, fields[0].data, want);
    }
    fields_fini(fields, 1);
    sd_record_fini(&f.rec);
    sd_mapping_destroy(m);
}

static void tpl_expect_err(const char *content, int raw, const char *content_type, const char *body,
                           size_t limit, int status, const char *name, const char *message)
{
    struct fixture f;
    struct sd_mapping *m = tpl_compile(content, raw);

    rec_setup_str(&f, content_type, body);
    row_err(m, &f.rec, limit, status, name, message);
    sd_record_fini(&f.rec);
    sd_mapping_destroy(m);
}

static void test_template_compile(void **state)
{
    json_t *cols = json_loads("[{\"type\":\"ip\",\"name\":\"ip\"},{\"type\":\"template\","
                              "\"name\":\"t\",\"template\":{\"language\":\"jsonnet\","
                              "\"content\":\"{\\n  a: Body('a'\\n\"}}]",
                              0, NULL);
    struct sd_buf err = SD_BUF_INIT;
    struct sd_mapping *m = NULL;
    const char *msg;

    (void)state;
    assert_non_null(cols);
    assert_int_equal(sd_mapping_compile(cols, &m, &err), SD_EINVAL);
    assert_null(m);
    msg = sd_buf_cstr(&err);
    /* The position is the content's line:column. */
    if (strncmp(msg, "\"columns[1].template\" is invalid: 3:1: ",
                strlen("\"columns[1].template\" is invalid: 3:1: ")) != 0) {
        fail_msg("unexpected message: %s", msg);
    }
    json_decref(cols);
    sd_buf_fini(&err);

    /* Unknown functions fail when the sink is saved, not per record. */
    cols = json_loads("[{\"type\":\"template\",\"name\":\"t\",\"template\":{\"language\":"
                      "\"jsonnet\",\"content\":\"Foo('a')\"}}]",
                      0, NULL);
    assert_int_equal(sd_mapping_compile(cols, &m, &err), SD_EINVAL);
    assert_non_null(strstr(sd_buf_cstr(&err), "\"columns[0].template\" is invalid: 1:1"));
    json_decref(cols);
    sd_buf_fini(&err);

    /* Only templates that mention Body parse the body. */
    m = tpl_compile("Ip() + BodyStr()", 0);
    assert_int_equal(sd_mapping_needs_body(m), 0);
    assert_int_equal(sd_mapping_column_type(m, 0), SD_COL_TEMPLATE);
    sd_mapping_destroy(m);
    m = tpl_compile("local b = Body; b('a')", 0);
    assert_int_equal(sd_mapping_needs_body(m), 1);
    sd_mapping_destroy(m);
}

static void test_template_values(void **state)
{
    (void)state;
    tpl_expect("Body('a') + \":\" + Body('c.f.g')", 0, "\"1:abcdefghij\"");
    tpl_expect("Body('a') + \":\" + Body('c.f.g')", 1, "1:abcdefghij");
    tpl_expect("Body('c.f.g')", 1, "abcdefghij");
    tpl_expect("Body('a')", 1, "1");
    tpl_expect("{a: Body('a'), g: Body('c.f.g'), ip: Ip(), n: Body('n')}", 0,
               "{\"a\":1,\"g\":\"abcdefghij\",\"ip\":\"192.0.2.7\",\"n\":-1500}");
    tpl_expect("Body('arr')", 0, "[1,2.5,\"x\\\"y\",null,true,false,{},[]]");
    tpl_expect("Body('arr[2]')", 1, "x\"y");
    tpl_expect("Body('dup')", 0, "{\"k\":1}");
    tpl_expect("Body('u')", 1, "\xc3\xa9\xf0\x9f\x98\x80");
    tpl_expect("std.objectFields(Body())", 0, "[\"a\",\"arr\",\"c\",\"dup\",\"n\",\"u\"]");
    tpl_expect("Body()['c']", 0, "{\"d\":\"e\",\"f\":{\"g\":\"abcdefghij\"}}");
    tpl_expect("Body('', 'x').a", 0, "1");
    tpl_expect("Body('c.x', 'def')", 0, "\"def\"");
    tpl_expect("Body('c.x', {d: 1})", 0, "{\"d\":1}");
    tpl_expect("Body('a[0]', null)", 0, "null");
    tpl_expect("Body('bad..path', 7)", 0, "7");
    tpl_expect("Body(path='c.d')", 1, "e");
    tpl_expect("Ip()", 0, "\"192.0.2.7\"");
    tpl_expect("Header('x-custom')", 1, "v1, v2");
    tpl_expect("Header('ACCEPT')", 0, "\"*/*\"");
    tpl_expect("Header('x-none', 'd')", 0, "\"d\"");
    tpl_expect("Header()", 0,
               "{\"Accept\":\"*/*\",\"Content-Type\":\"application/json\","
               "\"User-Agent\":\"curl/8 \\\"q\\\"\",\"X-Custom\":\"v1, v2\"}");
    tpl_expect("Header('')['Accept']", 1, "*/*");
    tpl_expect("HeaderStr()", 1,
               "Accept: */*\nContent-Type: application/json\nUser-Agent: curl/8 \"q\"\n"
               "X-Custom: v1, v2\n");
    tpl_expect("BodyStr()", 1, tpl_body);
    tpl_expect("Now()", 0, "\"2024-11-25T02:00:00.123Z\"");
    tpl_expect("Now('%Y/%j %a %A %b %B %p %I %V %G %U %W %u %w %e %C %y %D %F %T %R %r')", 1,
               "2024/330 Mon Monday Nov November AM 02 48 2024 47 48 1 1 25 20 24 11/25/24 "
               "2024-11-25 02:00:00 02:00 02:00:00 AM");
    tpl_expect("Now('%c|%h|%k|%l|%x|%X|%v|%g|%Z|%z|%%|%f|%n|%t|%H%M%S|%d%m|%M')", 1,
               "Mon Nov 25 02:00:00 2024|Nov| 2| 2|11/25/24|02:00:00|25-Nov-2024|24|UTC|+0000|%|"
               "123|\n|\t|020000|2511|00");
    tpl_expect("Now(format='%Y')", 0, "\"2024\"");
    tpl_expect("'x' + Ip()", 1, "x192.0.2.7");
}

static void test_template_errors(void **state)
{
    (void)state;
    tpl_expect_err("Body('x.y')", 0, "application/json", tpl_body, 0, 500, "stream.in.genericError",
                   "column \"t\": path \"x.y\" not found in the body");
    tpl_expect_err("Header('x-nope')", 0, "application/json", tpl_body, 0, 500,
                   "stream.in.genericError", "column \"t\": header \"X-Nope\" not found");
    tpl_expect_err("Now('%Q')", 0, "application/json", tpl_body, 0, 500, "stream.in.genericError",
                   "datetime format \"%Q\" is invalid: failed to compile format: pattern "
                   "compilation failed: lookup failed: '%Q' was not found in specification set");
    tpl_expect_err("Now('%')", 0, "application/json", tpl_body, 0, 500, "stream.in.genericError",
                   "stray % at the end of pattern");
    tpl_expect_err("Body(1)", 0, "application/json", tpl_body, 0, 500, "stream.in.genericError",
                   "the path must be a string");
    tpl_expect_err("error 'boom'", 0, "application/json", tpl_body, 0, 500,
                   "stream.in.genericError", "column \"t\": ");
    /* A body that cannot be parsed: the status and message of path columns. */
    tpl_expect_err("{a: Body('a')}", 0, "text/plain", tpl_body, 0, 415,
                   "stream.in.unsupportedMediaType", "unsupported content type \"text/plain\"");
    tpl_expect_err("Body('a', 'd')", 0, "application/json", "{\"a\":", 0, 400,
                   "stream.in.badRequest", "invalid JSON: ");
    tpl_expect_err("Body()", 0, "application/x-www-form-urlencoded", "a[b]=1;", 0, 400,
                   "stream.in.badRequest", "invalid form data: ");
    /* NUL bytes are refused as in other columns; the row limit applies to the value. */
    tpl_expect_err("'a\\u0000b'", 1, "application/json", tpl_body, 0, 400, "stream.in.badRequest",
                   "a value to be written contains a NUL character (column \"t\")");
    tpl_expect_err("std.join('', ['xy' for i in std.range(1, 2000)])", 0, "application/json",
                   tpl_body, 1024, 413, "stream.in.payloadTooLarge", "row size limit");
    /* a value over the template output limit is refused even without a row limit */
    tpl_expect_err("local d(s, n) = if n == 0 then s else d(s + s, n - 1); d('x', 22)", 1,
                   "application/json", tpl_body, 0, 413, "stream.in.payloadTooLarge",
                   "output limit (2097152 bytes) exceeded");
    /* Runaway templates end with an error, never a crash or a hang. */
    tpl_expect_err("local f(x) = x + f(x + 1); {r: f(1)}", 0, "application/json", tpl_body, 0, 500,
                   "stream.in.genericError", "column \"t\": ");
    tpl_expect_err("local f(x) = if x == 0 then 0 else f(x - 1); f(100000000)", 0,
                   "application/json", tpl_body, 0, 500, "stream.in.genericError",
                   "column \"t\": ");
}

static void test_template_form_and_text(void **state)
{
    struct fixture f;
    struct sd_mapping *m = tpl_compile("{b: Body('a.b'), l: Body('list'), ip: Ip()}", 0);
    struct sd_mapping *mt = tpl_compile("Ip() + ' ' + BodyStr()", 1);
    struct sd_buf fields[1];

    (void)state;
    memset(fields, 0, sizeof(fields));
    rec_setup_str(&f, "application/x-www-form-urlencoded", "a[b]=h%C3%A9+x&list[]=1&list[]=2");
    row_ok(m, &f.rec, fields, 1);
    assert_string_equal(fields[0].data,
                        "{\"b\":\"h\xc3\xa9 x\",\"ip\":\"192.0.2.7\",\"l\":[\"1\",\"2\"]}");
    sd_record_fini(&f.rec);
    /* No Body(): any content type is fine, and the body is not parsed. */
    rec_setup_str(&f, "text/plain", "{not json");
    row_ok(mt, &f.rec, fields, 1);
    assert_string_equal(fields[0].data, "192.0.2.7 {not json");
    assert_int_equal(f.rec.body_state, 0);
    sd_record_fini(&f.rec);
    fields_fini(fields, 1);
    sd_mapping_destroy(m);
    sd_mapping_destroy(mt);
}

/* The record functions need sd_template_eval's record and VM: elsewhere they fail cleanly. */
static void test_template_natives_elsewhere(void **state)
{
    struct sd_jn_program *prog = NULL;
    struct sd_jn_vm *vm = sd_jn_vm_new(NULL);
    struct sd_buf out = SD_BUF_INIT;
    struct sd_buf err = SD_BUF_INIT;
    struct fixture f;

    (void)state;
    assert_non_null(vm);
    assert_int_equal(
        sd_jn_compile("Ip()", 4, "t", sd_template_natives, sd_template_nnatives, &prog, &err), 0);
    assert_int_equal(sd_jn_eval(prog, vm, NULL, SD_JN_OUT_COMPACT, &out, &err), SD_EINVAL);
    assert_string_equal(sd_buf_cstr(&err), "Ip() is only available in template columns");
    sd_jn_program_free(prog);
    sd_buf_reset(&err);
    assert_int_equal(
        sd_jn_compile("Body('a')", 9, "t", sd_template_natives, sd_template_nnatives, &prog, &err),
        0);
    rec_setup_str(&f, "application/json", tpl_body);
    assert_int_equal(sd_jn_eval(prog, vm, &f.rec, SD_JN_OUT_COMPACT, &out, &err), SD_EINVAL);
    assert_string_equal(sd_buf_cstr(&err), "Body() is only available in template columns");
    sd_record_fini(&f.rec);
    sd_jn_program_free(prog);
    sd_jn_vm_free(vm);
    sd_buf_fini(&out);
    sd_buf_fini(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_names),
        cmocka_unit_test(test_sort_headers),
        cmocka_unit_test(test_content_types),
        cmocka_unit_test(test_compile_errors),
        cmocka_unit_test(test_compile_ok),
        cmocka_unit_test(test_all_columns),
        cmocka_unit_test(test_exact_row),
        cmocka_unit_test(test_no_body_parse_without_path),
        cmocka_unit_test(test_form_body),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_row_size_limit),
        cmocka_unit_test(test_headers_json),
        cmocka_unit_test(test_datetime_values),
        cmocka_unit_test(test_template_compile),
        cmocka_unit_test(test_template_values),
        cmocka_unit_test(test_template_errors),
        cmocka_unit_test(test_template_form_and_text),
        cmocka_unit_test(test_template_natives_elsewhere),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    sd_template_thread_cleanup(); /* the main thread's VM (other threads free theirs on exit) */
    return rc;
}
