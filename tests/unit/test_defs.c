/* test_defs.c: unit tests of src/defs (id normalization, request validation, table ids, secrets,
 * stored form, keys), plus the pieces of src/api that need no server: token hashing and the
 * admin token file (sd_auth), and the task framework (sd_tasks) on an embedded state store.
 * Temp directories go below $SD_TEST_TMPDIR (else /tmp). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/sd_auth.h"
#include "api/sd_tasks.h"
#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "core/sd_fs.h"
#include "core/sd_time.h"
#include "defs/sd_defs.h"
#include "state/sd_state.h"

/* ---- helpers ---- */

static void make_tmp_dir(char *out, size_t len)
{
    const char *base = getenv("SD_TEST_TMPDIR");

    if (base == NULL || *base == '\0') {
        base = "/tmp";
    }
    assert_int_equal(sd_mkdir_p(base, 0755), 0);
    snprintf(out, len, "%s/test_defs.XXXXXX", base);
    assert_non_null(mkdtemp(out));
}

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);

    if (j == NULL) {
        fail_msg("bad test JSON: %s", e.text);
    }
    return j;
}

/* ---- id normalization ---- */

static void test_normalize_table(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"My Source", "my-source"},
        {"CamelCaseName", "camel-case-name"},
        {"  --x--  ", "x"},
        {"\xc3\x9cn\xc3\xaf"
         "code",
         "unicode"}, /* Ünïcode */
        {"HTTPServer", "http-server"},
        {"my_source.v2", "my-source-v2"},
        {"already-kebab-123", "already-kebab-123"},
        {"Stra\xc3\x9f"
         "e",
         "strasse"},                                            /* Straße */
        {"\xc5\xbdlut\xc3\xbd k\xc5\xaf\xc5\x88", "zluty-kun"}, /* Žlutý kůň */
        {"a\xe2\x82\xac"
         "b",
         "a-b"}, /* a€b */
        {"abc123Def", "abc123-def"},
        {"UPPER", "upper"},
        {"\xff\xfe"
         "x",
         "x"}, /* invalid UTF-8 is a separator */
    };
    struct sd_buf out = SD_BUF_INIT;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(sd_defs_normalize_id(cases[i].in, &out), 0);
        assert_string_equal(sd_buf_cstr(&out), cases[i].out);
    }
    sd_buf_fini(&out);
}

static void test_normalize_empty(void **state)
{
    struct sd_buf out = SD_BUF_INIT;

    (void)state;
    assert_int_equal(sd_defs_normalize_id("", &out), SD_EINVAL);
    assert_int_equal(sd_defs_normalize_id("  ", &out), SD_EINVAL);
    assert_int_equal(sd_defs_normalize_id("---", &out), SD_EINVAL);
    assert_int_equal(sd_defs_normalize_id("\xe2\x82\xac", &out), SD_EINVAL);
    sd_buf_fini(&out);
}

static void test_resolve_id(void **state)
{
    struct sd_defs_err err;
    char id[SD_DEFS_ID_MAX + 1];
    char long_name[64];
    json_t *given;

    (void)state;
    /* absent: from the name */
    assert_int_equal(sd_defs_resolve_id("sourceId", NULL, "My Source", id, &err), 0);
    assert_string_equal(id, "my-source");
    /* JSON null counts as absent */
    given = json_null();
    assert_int_equal(sd_defs_resolve_id("sourceId", given, "Abc", id, &err), 0);
    assert_string_equal(id, "abc");
    json_decref(given);
    /* given ids are normalized too */
    given = json_string("Given ID");
    assert_int_equal(sd_defs_resolve_id("sourceId", given, "ignored", id, &err), 0);
    assert_string_equal(id, "given-id");
    json_decref(given);
    /* a name giving no id */
    assert_int_equal(sd_defs_resolve_id("sinkId", NULL, "!!!", id, &err), SD_EINVAL);
    assert_string_equal(err.name, "badRequest");
    assert_non_null(strstr(err.message, "body.sinkId"));
    /* an id that normalizes to nothing */
    given = json_string("--");
    assert_int_equal(sd_defs_resolve_id("sinkId", given, "x", id, &err), SD_EINVAL);
    json_decref(given);
    /* 48 is fine, 49 is too long */
    memset(long_name, 'a', 48);
    long_name[48] = '\0';
    given = json_string(long_name);
    assert_int_equal(sd_defs_resolve_id("sourceId", given, "x", id, &err), 0);
    assert_int_equal(strlen(id), 48);
    json_decref(given);
    long_name[48] = 'a';
    long_name[49] = '\0';
    given = json_string(long_name);
    assert_int_equal(sd_defs_resolve_id("sourceId", given, "x", id, &err), SD_EINVAL);
    assert_string_equal(err.name, "invalidLength");
    assert_non_null(strstr(err.message, "body.sourceId"));
    json_decref(given);
    /* empty given id */
    given = json_string("");
    assert_int_equal(sd_defs_resolve_id("sourceId", given, "x", id, &err), SD_EINVAL);
    assert_string_equal(err.name, "invalidLength");
    json_decref(given);
    /* not a string */
    given = json_integer(5);
    assert_int_equal(sd_defs_resolve_id("sourceId", given, "x", id, &err), SD_EINVAL);
    assert_string_equal(err.name, "badRequest");
    json_decref(given);
    /* a CamelCase id growing past 48 when split is rejected when given ... */
    given = json_string("AbAbAbAbAbAbAbAbAbAbAbAbAbAbAbAbAbAbAbAbAbAbAbAb"); /* 48 chars */
    assert_int_equal(sd_defs_resolve_id("sourceId", given, "x", id, &err), SD_EINVAL);
    assert_string_equal(err.name, "invalidLength");
    json_decref(given);
    /* ... and cut to 48 (no trailing '-') when generated from the name */
    assert_int_equal(
        sd_defs_resolve_id("sourceId", NULL, "AbAbAbAbAbAbAbAbAbAbAbAbAbAbAbAbAbAbAbAb", id, &err),
        0);
    assert_true(strlen(id) <= 48);
    assert_true(id[strlen(id) - 1] != '-');
    assert_true(sd_defs_is_valid_id(id));
}

static void test_valid_id(void **state)
{
    (void)state;
    assert_true(sd_defs_is_valid_id("a"));
    assert_true(sd_defs_is_valid_id("my-source-1"));
    assert_false(sd_defs_is_valid_id(""));
    assert_false(sd_defs_is_valid_id("-a"));
    assert_false(sd_defs_is_valid_id("a-"));
    assert_false(sd_defs_is_valid_id("A"));
    assert_false(sd_defs_is_valid_id("a/b"));
    assert_false(sd_defs_is_valid_id("a.b"));
    assert_false(sd_defs_is_valid_id("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")); /* 49 */
}

/* ---- lengths and table ids ---- */

static void test_check_length(void **state)
{
    struct sd_defs_err err;
    char buf[SD_DEFS_DESCRIPTION_MAX + 2];

    (void)state;
    assert_int_equal(sd_defs_check_length("body.name", "x", 1, 40, &err), 0);
    assert_int_equal(sd_defs_check_length("body.name", "", 1, 40, &err), SD_EINVAL);
    assert_string_equal(err.name, "invalidLength");
    assert_non_null(strstr(err.message, "body.name"));
    assert_non_null(strstr(err.message, "greater or equal than 1"));
    /* 40 characters, counted as code points: 40 x "é" (80 bytes) is fine */
    buf[0] = '\0';
    for (int i = 0; i < 40; i++) {
        strcat(buf, "\xc3\xa9");
    }
    assert_int_equal(sd_defs_check_length("body.name", buf, 1, 40, &err), 0);
    strcat(buf, "x");
    assert_int_equal(sd_defs_check_length("body.name", buf, 1, 40, &err), SD_EINVAL);
    assert_non_null(strstr(err.message, "lesser or equal than 40"));
    assert_non_null(strstr(err.message, "len=41"));
    memset(buf, 'd', SD_DEFS_DESCRIPTION_MAX);
    buf[SD_DEFS_DESCRIPTION_MAX] = '\0';
    assert_int_equal(sd_defs_check_length("body.description", buf, 0, 4096, &err), 0);
    buf[SD_DEFS_DESCRIPTION_MAX] = 'd';
    buf[SD_DEFS_DESCRIPTION_MAX + 1] = '\0';
    assert_int_equal(sd_defs_check_length("body.description", buf, 0, 4096, &err), SD_EINVAL);
    assert_non_null(strstr(err.message, "body.description"));
}

static void test_table_id(void **state)
{
    static const char *const good[] = {"in.c-bucket.table", "out.c-b.t",
                                       "in.c-my_bucket-1.Tab_1-x"};
    static const char *const bad[] = {"",
                                      "in",
                                      "in.c-bucket",
                                      "sys.c-bucket.table",
                                      "in.bucket.table",
                                      "in.c-.table",
                                      "in.c-bucket.",
                                      "in.c-bucket.table.x",
                                      "in.c-buc ket.table",
                                      "in.c-bucket.ta\"ble",
                                      "IN.c-bucket.table",
                                      "in..table"};
    struct sd_defs_err err;
    char longname[200];

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(sd_defs_check_table_id("body.table.tableId", good[i], &err), 0);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(sd_defs_check_table_id("body.table.tableId", bad[i], &err), SD_EINVAL);
        assert_string_equal(err.name, "badRequest");
        assert_non_null(strstr(err.message, "body.table.tableId"));
    }
    snprintf(longname, sizeof(longname), "in.c-b.%0*d", 96, 0);
    assert_int_equal(sd_defs_check_table_id("t", longname, &err), 0);
    snprintf(longname, sizeof(longname), "in.c-b.%0*d", 97, 0);
    assert_int_equal(sd_defs_check_table_id("t", longname, &err), SD_EINVAL);
}

/* ---- request bodies ---- */

static void expect_source_error(const char *body, const char *name, const char *needle)
{
    struct sd_defs_source_input in;
    struct sd_defs_err err;
    json_t *j = parse(body);

    assert_int_equal(sd_defs_parse_source_create(j, &in, &err), SD_EINVAL);
    assert_string_equal(err.name, name);
    if (strstr(err.message, needle) == NULL) {
        fail_msg("message \"%s\" does not contain \"%s\"", err.message, needle);
    }
    json_decref(j);
}

static void test_parse_source(void **state)
{
    struct sd_defs_source_input in;
    struct sd_defs_err err;
    json_t *j;

    (void)state;
    j = parse("{\"name\":\"Github Webhook\",\"type\":\"http\",\"description\":\"d\"}");
    assert_int_equal(sd_defs_parse_source_create(j, &in, &err), 0);
    assert_string_equal(in.source_id, "github-webhook");
    assert_string_equal(in.name, "Github Webhook");
    assert_string_equal(in.description, "d");
    assert_string_equal(in.type, "http");
    json_decref(j);
    j = parse("{\"sourceId\":\"s1\",\"name\":\"n\",\"type\":\"http\"}");
    assert_int_equal(sd_defs_parse_source_create(j, &in, &err), 0);
    assert_string_equal(in.source_id, "s1");
    assert_string_equal(in.description, "");
    json_decref(j);

    expect_source_error("{\"type\":\"http\"}", "missingField", "\"name\"");
    expect_source_error("{\"name\":\"x\"}", "missingField", "\"type\"");
    expect_source_error("{\"name\":\"\",\"type\":\"http\"}", "invalidLength", "body.name");
    expect_source_error(
        "{\"name\":\"01234567890123456789012345678901234567890\",\"type\":\"http\"}",
        "invalidLength", "body.name");
    expect_source_error("{\"name\":5,\"type\":\"http\"}", "badRequest", "body.name");
    expect_source_error("{\"name\":\"x\",\"type\":\"ftp\"}", "invalidEnumValue", "body.type");
    expect_source_error("{\"name\":\"x\",\"type\":\"otlp\"}", "badRequest", "not supported yet");
    expect_source_error("{\"name\":\"x\",\"type\":\"http\",\"description\":[]}", "badRequest",
                        "body.description");
    expect_source_error("{\"name\":\"***\",\"type\":\"http\"}", "badRequest", "body.sourceId");
    expect_source_error("{\"name\":\"x\",\"type\":\"http\",\"sourceId\":\"\"}", "invalidLength",
                        "body.sourceId");
    /* several errors are merged in the reference's order; the first names the answer, a type
     * error stops before any of them (the reference decodes before it validates) */
    expect_source_error("{}", "missingField",
                        "\"type\" is missing from body; \"name\" is missing from body.");
    expect_source_error(
        "{\"name\":\"\",\"type\":\"ftp\",\"sourceId\":\"\"}", "invalidLength",
        "Length of body.sourceId must be greater or equal than 1 but got value \"\" "
        "(len=0); value of body.type must be one of \"http\", \"otlp\" but got value "
        "\"ftp\"; length of body.name must be greater or equal than 1 but got value "
        "\"\" (len=0)");
    expect_source_error("{\"name\":\"\",\"type\":7}", "badRequest", "body.type must be a string");
}

static void expect_sink_error(const char *body, const char *name, const char *needle)
{
    struct sd_defs_sink_input in;
    struct sd_defs_err err;
    json_t *j = parse(body);

    assert_int_equal(sd_defs_parse_sink_create(j, &in, &err), SD_EINVAL);
    assert_string_equal(err.name, name);
    if (strstr(err.message, needle) == NULL) {
        fail_msg("message \"%s\" does not contain \"%s\"", err.message, needle);
    }
    json_decref(j);
}

#define SINK_TABLE                                                                                 \
    "\"table\":{\"type\":\"keboola\",\"tableId\":\"in.c-b.t\",\"mapping\":"                        \
    "{\"columns\":[{\"type\":\"body\",\"name\":\"b\"}]}}"

static void test_parse_sink(void **state)
{
    struct sd_defs_sink_input in;
    struct sd_defs_err err;
    char big[4096];
    json_t *j;
    size_t len;

    (void)state;
    j = parse("{\"name\":\"Raw Data\",\"type\":\"table\"," SINK_TABLE "}");
    assert_int_equal(sd_defs_parse_sink_create(j, &in, &err), 0);
    assert_string_equal(in.sink_id, "raw-data");
    assert_string_equal(in.table_id, "in.c-b.t");
    assert_int_equal(json_array_size(in.columns), 1);
    assert_null(in.allowed_signals);
    json_decref(j);

    expect_sink_error("{\"name\":\"x\",\"type\":\"file\"," SINK_TABLE "}", "invalidEnumValue",
                      "body.type");
    expect_sink_error("{\"name\":\"x\",\"type\":\"table\"}", "missingField", "\"table\"");
    expect_sink_error("{\"name\":\"x\",\"type\":\"table\",\"table\":{\"type\":\"s3\"}}",
                      "invalidEnumValue", "body.table.type");
    expect_sink_error("{\"name\":\"x\",\"type\":\"table\",\"table\":{\"type\":\"keboola\"}}",
                      "missingField", "\"tableId\"");
    expect_sink_error("{\"name\":\"x\",\"type\":\"table\",\"table\":{\"type\":\"keboola\","
                      "\"tableId\":\"bad\",\"mapping\":{\"columns\":[]}}}",
                      "badRequest", "body.table.tableId");
    expect_sink_error("{\"name\":\"x\",\"type\":\"table\",\"table\":{\"type\":\"keboola\","
                      "\"tableId\":\"in.c-b.t\"}}",
                      "missingField", "\"mapping\"");
    expect_sink_error("{\"name\":\"x\",\"type\":\"table\",\"table\":{\"type\":\"keboola\","
                      "\"tableId\":\"in.c-b.t\",\"mapping\":{\"columns\":[]}}}",
                      "invalidLength", "body.table.mapping.columns");
    expect_sink_error("{\"name\":\"x\",\"type\":\"table\",\"table\":{\"type\":\"keboola\","
                      "\"tableId\":\"in.c-b.t\",\"mapping\":{\"columns\":[{\"type\":\"body\"}]}}}",
                      "missingField", "\"name\" is missing from body.table.mapping.columns[0]");
    expect_sink_error("{\"name\":\"x\",\"type\":\"table\",\"allowedSignals\":[\"x\"]," SINK_TABLE
                      "}",
                      "invalidEnumValue", "body.allowedSignals");

    /* 101 columns */
    len = (size_t)snprintf(big, sizeof(big),
                           "{\"name\":\"x\",\"type\":\"table\",\"table\":{\"type\":\"keboola\","
                           "\"tableId\":\"in.c-b.t\",\"mapping\":{\"columns\":[");
    for (int i = 0; i < 101; i++) {
        len += (size_t)snprintf(big + len, sizeof(big) - len,
                                "%s{\"type\":\"uuid\",\"name\":\"c%d\"}", i ? "," : "", i);
    }
    snprintf(big + len, sizeof(big) - len, "]}}}");
    expect_sink_error(big, "invalidLength", "lesser or equal than 100");
}

#define COLUMN_SINK(name)                                                                          \
    "{\"name\":\"x\",\"type\":\"table\",\"table\":{\"type\":\"keboola\",\"tableId\":\"in.c-b.t\"," \
    "\"mapping\":{\"columns\":[{\"type\":\"uuid\",\"name\":\"ok\"},{\"type\":\"body\","            \
    "\"name\":" name "}]}}}"
#define NAME_PATTERN_ERROR(value)                                                                  \
    "body.table.mapping.columns[1].name must match the regexp "                                    \
    "\"^[a-zA-Z0-9]([a-zA-Z0-9_-]*[a-zA-Z0-9])?$\" but got value " value

static void test_column_names(void **state)
{
    struct sd_defs_sink_input in;
    struct sd_defs_err err;
    char body[512], name[80];
    json_t *j;

    (void)state;
    /* 64 characters of every allowed kind pass, 65 do not */
    memset(name, 'a', sizeof(name));
    memcpy(name, "\"A-z_9", 6);
    snprintf(name + 65, sizeof(name) - 65, "\"");
    snprintf(body, sizeof(body), COLUMN_SINK("%s"), name);
    j = parse(body);
    assert_int_equal(sd_defs_parse_sink_create(j, &in, &err), 0);
    json_decref(j);
    snprintf(name + 65, sizeof(name) - 65, "b\"");
    snprintf(body, sizeof(body), COLUMN_SINK("%s"), name);
    expect_sink_error(
        body, "invalidLength",
        "Length of body.table.mapping.columns[1].name must be lesser or equal than 64 but got "
        "value \"A-z_9aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaab\" (len=65)");
    expect_sink_error(
        COLUMN_SINK("\"\""), "invalidLength",
        "Length of body.table.mapping.columns[1].name must be greater or equal than 1 but got "
        "value \"\" (len=0)");
    /* control characters, quotes and backslashes are shown escaped */
    expect_sink_error(COLUMN_SINK("\"a\\u0001b\""), "invalidPattern",
                      NAME_PATTERN_ERROR("\"a\\x01b\""));
    expect_sink_error(COLUMN_SINK("\"a\\nb\\t\""), "invalidPattern",
                      NAME_PATTERN_ERROR("\"a\\nb\\t\""));
    expect_sink_error(COLUMN_SINK("\"a\\\"b\\\\\""), "invalidPattern",
                      NAME_PATTERN_ERROR("\"a\\\"b\\\\\""));
    expect_sink_error(COLUMN_SINK("\"a\\u007f\""), "invalidPattern",
                      NAME_PATTERN_ERROR("\"a\\x7f\""));
    /* other characters, and '_' or '-' at either end */
    expect_sink_error(COLUMN_SINK("\"a b\""), "invalidPattern", NAME_PATTERN_ERROR("\"a b\""));
    expect_sink_error(COLUMN_SINK("\"a.b\""), "invalidPattern", NAME_PATTERN_ERROR("\"a.b\""));
    expect_sink_error(COLUMN_SINK("\"\u00e9\""), "invalidPattern",
                      NAME_PATTERN_ERROR("\"\xc3\xa9\""));
    expect_sink_error(COLUMN_SINK("\"_a\""), "invalidPattern", NAME_PATTERN_ERROR("\"_a\""));
    expect_sink_error(COLUMN_SINK("\"a-\""), "invalidPattern", NAME_PATTERN_ERROR("\"a-\""));
}

/* ---- entities and keys ---- */

static void test_source_entity(void **state)
{
    struct sd_defs_source_input in;
    struct sd_defs_err err;
    struct sd_defs_by by = {"user", "123", "admin", "123", "admin"};
    char secret[SD_DEFS_SECRET_LEN + 1], hash1[17], hash2[17];
    json_t *body = parse("{\"name\":\"S\",\"type\":\"http\"}");
    json_t *e, *api, *ver;
    char *url;

    (void)state;
    assert_int_equal(sd_defs_parse_source_create(body, &in, &err), 0);
    sd_defs_new_secret(secret);
    e = sd_defs_source_build(7, 1, &in, secret, &by, 1700000000000LL);
    assert_int_equal(json_integer_value(json_object_get(e, "projectId")), 7);
    assert_int_equal(json_integer_value(json_object_get(e, "branchId")), 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(e, "http"), "secret")),
                        secret);
    assert_int_equal(sd_defs_version_number(e), 1);
    ver = json_object_get(e, "version");
    assert_string_equal(json_string_value(json_object_get(ver, "description")), "New source.");
    assert_int_equal(strlen(json_string_value(json_object_get(ver, "hash"))), 16);
    assert_string_equal(json_string_value(json_object_get(ver, "at")), "2023-11-14T22:13:20.000Z");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ver, "by"), "tokenId")),
                        "123");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ver, "by"), "userName")),
                        "admin");
    assert_null(json_object_get(e, "disabled"));

    /* API form: url instead of the secret */
    api = sd_defs_source_to_api(e, "http://h:1");
    url = NULL;
    assert_null(json_object_get(json_object_get(api, "http"), "secret"));
    assert_true(asprintf(&url, "http://h:1/stream/7/s/%s", secret) > 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(api, "http"), "url")),
                        url);
    free(url);
    json_decref(api);

    /* the hash ignores version, lifecycle and the secret, but not the content */
    sd_defs_version_hash(e, hash1);
    sd_defs_set_deleted(e, &by, 1);
    json_object_set_new(json_object_get(e, "http"), "secret", json_string("other"));
    sd_defs_version_hash(e, hash2);
    assert_string_equal(hash1, hash2);
    json_object_set_new(e, "name", json_string("T"));
    sd_defs_version_hash(e, hash2);
    assert_string_not_equal(hash1, hash2);

    /* the version record has no secret */
    api = sd_defs_version_record(e);
    assert_null(json_object_get(json_object_get(api, "http"), "secret"));
    json_decref(api);
    json_decref(e);
    json_decref(body);
}

static void test_sink_entity(void **state)
{
    struct sd_defs_sink_input in;
    struct sd_defs_err err;
    struct sd_defs_by by = {"user", "1", "d", "", ""};
    json_t *body = parse("{\"sinkId\":\"k\",\"name\":\"K\",\"type\":\"table\","
                         "\"table\":{\"type\":\"keboola\",\"tableId\":\"in.c-b.t\",\"mapping\":"
                         "{\"columns\":[{\"type\":\"path\",\"name\":\"p\",\"path\":\"a.b\","
                         "\"rawString\":true,\"junk\":1}]}}}");
    json_t *e, *col;

    (void)state;
    assert_int_equal(sd_defs_parse_sink_create(body, &in, &err), 0);
    e = sd_defs_sink_build(1, 1, "src", &in, &by, 0);
    assert_string_equal(json_string_value(json_object_get(e, "sourceId")), "src");
    assert_string_equal(json_string_value(json_object_get(e, "sinkId")), "k");
    assert_string_equal(json_string_value(json_object_get(e, "type")), "table");
    col = json_array_get(
        json_object_get(json_object_get(json_object_get(e, "table"), "mapping"), "columns"), 0);
    assert_string_equal(json_string_value(json_object_get(col, "path")), "a.b");
    assert_true(json_is_true(json_object_get(col, "rawString")));
    assert_null(json_object_get(col, "junk"));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(e, "version"), "description")),
        "New sink.");
    json_decref(e);
    json_decref(body);
}

static void test_keys(void **state)
{
    struct sd_buf k = SD_BUF_INIT;

    (void)state;
    sd_defs_source_key(&k, 1, 1, "s", 0);
    assert_string_equal(sd_buf_cstr(&k), "definition/source/active/1/1/s");
    sd_defs_source_key(&k, 12, 1, "s", 1);
    assert_string_equal(sd_buf_cstr(&k), "definition/source/deleted/12/1/s");
    sd_defs_sink_key(&k, 1, 1, "s", "k", 0);
    assert_string_equal(sd_buf_cstr(&k), "definition/sink/active/1/1/s/k");
    sd_defs_sink_key(&k, 1, 1, "s", "k", 1);
    assert_string_equal(sd_buf_cstr(&k), "definition/sink/deleted/1/1/s/k");
    sd_defs_sources_prefix(&k, 1, 1, 0);
    assert_string_equal(sd_buf_cstr(&k), "definition/source/active/1/1/");
    sd_defs_sinks_prefix(&k, 1, 1, "s", 0);
    assert_string_equal(sd_buf_cstr(&k), "definition/sink/active/1/1/s/");
    sd_defs_source_version_key(&k, 1, 1, "s", 1);
    assert_string_equal(sd_buf_cstr(&k), "definition/source/version/1/1/s/0000000001");
    sd_defs_sink_version_key(&k, 1, 1, "s", "k", 12);
    assert_string_equal(sd_buf_cstr(&k), "definition/sink/version/1/1/s/k/0000000012");
    sd_buf_fini(&k);
}

/* ---- secrets ---- */

static void test_secret(void **state)
{
    enum { N = 200 };
    static char secrets[N][SD_DEFS_SECRET_LEN + 1];
    int seen[128] = {0};

    (void)state;
    for (int i = 0; i < N; i++) {
        sd_defs_new_secret(secrets[i]);
        assert_int_equal(strlen(secrets[i]), SD_DEFS_SECRET_LEN);
        for (int j = 0; j < SD_DEFS_SECRET_LEN; j++) {
            char c = secrets[i][j];
            assert_true((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
            seen[(int)c] = 1;
        }
        for (int j = 0; j < i; j++) {
            assert_string_not_equal(secrets[i], secrets[j]);
        }
    }
    /* 9600 draws from 62 symbols: every symbol shows up */
    for (const char *p = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"; *p;
         p++) {
        assert_true(seen[(int)*p]);
    }
}

/* ---- sd_auth ---- */

static void test_auth_hash(void **state)
{
    char hex[SD_AUTH_HASH_HEX_LEN + 1];

    (void)state;
    sd_auth_hash("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_auth_admin_token(void **state)
{
    char dir[512], path[600];
    struct sd_state *st = NULL;
    struct sd_auth_token t;
    struct sd_buf err = SD_BUF_INIT;
    struct stat sb;
    char *text = NULL, *again = NULL;
    size_t len = 0;

    (void)state;
    make_tmp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/state", dir);
    assert_int_equal(sd_state_open_backend("embedded", NULL, path, &st), 0);

    /* generated once, written with mode 0600, valid as master admin of project 1 */
    assert_int_equal(sd_auth_ensure_admin(st, NULL, dir, &err), 0);
    snprintf(path, sizeof(path), "%s/admin-token", dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(sd_read_file(path, &text, &len), 0);
    assert_true(len >= 33 && text[len - 1] == '\n');
    assert_int_equal(sd_auth_lookup(st, text, len - 1, &t), 0);
    assert_int_equal(t.project_id, 1);
    assert_true(t.is_master && t.is_admin);
    assert_int_equal(sd_auth_lookup(st, "nope", 4, &t), SD_ENOTFOUND);
    assert_int_equal(sd_auth_lookup(st, "", 0, &t), SD_ENOTFOUND);

    /* a second start keeps it */
    assert_int_equal(sd_auth_ensure_admin(st, "", dir, &err), 0);
    assert_int_equal(sd_read_file(path, &again, &len), 0);
    assert_string_equal(text, again);
    assert_int_equal(sd_auth_lookup(st, text, strlen(text) - 1, &t), 0);

    /* a configured token replaces it */
    assert_int_equal(sd_auth_ensure_admin(st, "configured-token-0123456789", dir, &err), 0);
    assert_int_equal(sd_auth_lookup(st, "configured-token-0123456789", 27, &t), 0);
    assert_true(t.is_master);
    assert_int_equal(sd_auth_lookup(st, text, strlen(text) - 1, &t), SD_ENOTFOUND);
    /* idempotent */
    assert_int_equal(sd_auth_ensure_admin(st, "configured-token-0123456789", dir, &err), 0);
    assert_int_equal(sd_auth_lookup(st, "configured-token-0123456789", 27, &t), 0);

    free(text);
    free(again);
    sd_buf_fini(&err);
    sd_state_close(st);
    sd_rm_rf(dir);
}

/* ---- sd_tasks ---- */

static int task_ok(void *arg, struct sd_task_outcome *out)
{
    (void)arg;
    out->result = "Done.";
    out->outputs = json_pack("{s:i}", "projectId", 1);
    return 0;
}

static int task_fail(void *arg, struct sd_task_outcome *out)
{
    (void)arg;
    sd_buf_append_str(&out->error, "Broken.");
    return -1;
}

static json_t *wait_task(struct sd_tasks *t, const char *task_id)
{
    json_t *rec = NULL;

    for (int i = 0; i < 500; i++) {
        assert_int_equal(sd_tasks_get(t, 1, task_id, &rec), 0);
        if (json_is_true(json_object_get(rec, "isFinished"))) {
            return rec;
        }
        json_decref(rec);
        usleep(10000);
    }
    fail_msg("task %s did not finish", task_id);
    return NULL;
}

static void test_tasks(void **state)
{
    char dir[512], path[600];
    struct sd_state *st = NULL;
    struct sd_tasks *t = NULL;
    struct sd_task_spec spec;
    json_t *task, *rec;
    int64_t deleted = -1;
    const char *id;

    (void)state;
    make_tmp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/state", dir);
    assert_int_equal(sd_state_open_backend("embedded", NULL, path, &st), 0);
    assert_int_equal(sd_tasks_create(st, "http://api", 0, &t), 0);

    memset(&spec, 0, sizeof(spec));
    spec.project_id = 1;
    spec.type = "api.create.source";
    spec.object_key = "1/src";
    spec.lock_key = "lock-a";
    spec.fn = task_ok;
    assert_int_equal(sd_tasks_submit(t, &spec, &task), 0);
    id = json_string_value(json_object_get(task, "taskId"));
    assert_true(strncmp(id, "api.create.source/1/src/", 24) == 0);
    assert_int_equal(strlen(id), 24 + SD_TIME_ISO_LEN + 6);
    assert_string_equal(json_string_value(json_object_get(task, "status")), "processing");
    assert_true(
        strncmp(json_string_value(json_object_get(task, "url")), "http://api/v1/tasks/", 20) == 0);
    rec = wait_task(t, id);
    assert_string_equal(json_string_value(json_object_get(rec, "status")), "success");
    assert_string_equal(json_string_value(json_object_get(rec, "result")), "Done.");
    assert_non_null(json_object_get(rec, "finishedAt"));
    assert_non_null(json_object_get(rec, "duration"));
    assert_non_null(json_object_get(rec, "outputs"));
    assert_false(sd_tasks_is_locked(t, "lock-a"));
    json_decref(rec);
    /* another project does not see it */
    assert_int_equal(sd_tasks_get(t, 2, id, &rec), SD_ENOTFOUND);
    json_decref(task);

    spec.fn = task_fail;
    assert_int_equal(sd_tasks_submit(t, &spec, &task), 0);
    rec = wait_task(t, json_string_value(json_object_get(task, "taskId")));
    assert_string_equal(json_string_value(json_object_get(rec, "status")), "error");
    assert_string_equal(json_string_value(json_object_get(rec, "error")), "Broken.");
    json_decref(rec);
    json_decref(task);

    /* cleanup: success after 1 h, errors after 48 h */
    assert_int_equal(sd_tasks_cleanup(t, sd_now_ms() + 2 * 3600 * 1000LL, &deleted), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(sd_tasks_cleanup(t, sd_now_ms() + 49 * 3600 * 1000LL, &deleted), 0);
    assert_int_equal(deleted, 1);
    sd_tasks_destroy(t);

    /* a record left "processing" is finished as interrupted at the next start */
    assert_int_equal(sd_state_put(st, "task/1/api.x/1/2020-01-01T00:00:00.000Z_aaaaa",
                                  "{\"taskId\":\"api.x/1/2020-01-01T00:00:00.000Z_aaaaa\","
                                  "\"status\":\"processing\",\"isFinished\":false,"
                                  "\"createdAt\":\"2020-01-01T00:00:00.000Z\"}",
                                  strlen("{\"taskId\":\"api.x/1/2020-01-01T00:00:00.000Z_aaaaa\","
                                         "\"status\":\"processing\",\"isFinished\":false,"
                                         "\"createdAt\":\"2020-01-01T00:00:00.000Z\"}"),
                                  0, NULL),
                     0);
    assert_int_equal(sd_tasks_create(st, "http://api", 0, &t), 0);
    assert_int_equal(sd_tasks_get(t, 1, "api.x/1/2020-01-01T00:00:00.000Z_aaaaa", &rec), 0);
    assert_string_equal(json_string_value(json_object_get(rec, "status")), "error");
    assert_true(json_is_true(json_object_get(rec, "isFinished")));
    assert_non_null(strstr(json_string_value(json_object_get(rec, "error")), "interrupted"));
    json_decref(rec);
    sd_tasks_destroy(t);

    sd_state_close(st);
    sd_rm_rf(dir);
}

static int block_fn(void *arg, struct sd_task_outcome *out)
{
    (void)arg;
    usleep(200000);
    out->result = "Slow.";
    return 0;
}

static void test_tasks_lock_conflict(void **state)
{
    char dir[512], path[600];
    struct sd_state *st = NULL;
    struct sd_tasks *t = NULL;
    struct sd_task_spec spec;
    json_t *task1, *task2 = NULL, *task3, *rec;

    (void)state;
    make_tmp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/state", dir);
    assert_int_equal(sd_state_open_backend("embedded", NULL, path, &st), 0);
    assert_int_equal(sd_tasks_create(st, "http://api", 0, &t), 0);
    memset(&spec, 0, sizeof(spec));
    spec.project_id = 1;
    spec.type = "api.create.sink";
    spec.object_key = "1/s/k";
    spec.lock_key = "sink/1/1/s/k";
    spec.fn = block_fn;
    assert_int_equal(sd_tasks_submit(t, &spec, &task1), 0);
    assert_true(sd_tasks_is_locked(t, "sink/1/1/s/k"));
    assert_int_equal(sd_tasks_submit(t, &spec, &task2), SD_ECONFLICT);
    assert_null(task2);
    /* queued behind the slow one; destroy lets the running task finish, interrupts the rest */
    spec.lock_key = "other";
    assert_int_equal(sd_tasks_submit(t, &spec, &task3), 0);
    usleep(50000);
    sd_tasks_destroy(t);
    assert_int_equal(sd_tasks_create(st, "http://api", 0, &t), 0);
    assert_int_equal(sd_tasks_get(t, 1, json_string_value(json_object_get(task1, "taskId")), &rec),
                     0);
    assert_string_equal(json_string_value(json_object_get(rec, "status")), "success");
    json_decref(rec);
    assert_int_equal(sd_tasks_get(t, 1, json_string_value(json_object_get(task3, "taskId")), &rec),
                     0);
    assert_string_equal(json_string_value(json_object_get(rec, "status")), "error");
    json_decref(rec);
    sd_tasks_destroy(t);
    json_decref(task1);
    json_decref(task3);
    sd_state_close(st);
    sd_rm_rf(dir);
}

static struct sd_state *g_quota_st;

/* Commits its key (arg) as the entity it creates, after a while. */
static int commit_fn(void *arg, struct sd_task_outcome *out)
{
    usleep(50000);
    assert_int_equal(sd_state_put(g_quota_st, arg, "{}", 2, 0, NULL), 0);
    out->result = "Created.";
    return 0;
}

static int submit_spec(struct sd_tasks *t, const char *lock, sd_task_fn fn, void *arg,
                       const struct sd_task_quota *quota, const struct sd_task_claim *claim,
                       json_t **task)
{
    struct sd_task_spec spec;

    memset(&spec, 0, sizeof(spec));
    spec.project_id = 1;
    spec.type = "api.create.thing";
    spec.object_key = lock;
    spec.lock_key = lock;
    spec.fn = fn;
    spec.arg = arg;
    spec.quota = quota;
    spec.claim = claim;
    *task = NULL;
    return sd_tasks_submit(t, &spec, task);
}

static int submit_quota(struct sd_tasks *t, const char *key, sd_task_fn fn, json_t **task)
{
    struct sd_task_quota quota = {"q/", key, 2, "things"};

    return submit_spec(t, key, fn, (void *)key, &quota, NULL, task);
}

static void finish(struct sd_tasks *t, json_t *task, const char *status)
{
    json_t *rec = wait_task(t, json_string_value(json_object_get(task, "taskId")));

    assert_string_equal(json_string_value(json_object_get(rec, "status")), status);
    json_decref(rec);
    json_decref(task);
}

static void test_tasks_quota(void **state)
{
    char dir[512], path[600];
    struct sd_state *st = NULL;
    struct sd_tasks *t = NULL;
    json_t *a, *b, *c, *d;
    int64_t deleted = 0;

    (void)state;
    make_tmp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/state", dir);
    assert_int_equal(sd_state_open_backend("embedded", NULL, path, &st), 0);
    g_quota_st = st;
    assert_int_equal(sd_tasks_create(st, "http://api", 0, &t), 0);
    /* queued creations count: the third is refused at once and keeps no lock */
    assert_int_equal(submit_quota(t, "q/a", commit_fn, &a), 0);
    assert_int_equal(submit_quota(t, "q/b", task_fail, &b), 0);
    assert_int_equal(submit_quota(t, "q/c", commit_fn, &c), SD_ELIMIT);
    assert_null(c);
    assert_false(sd_tasks_is_locked(t, "q/c"));
    finish(t, a, "success");
    finish(t, b, "error");
    /* a failed task freed its slot, a committed one holds it in the state store */
    assert_int_equal(submit_quota(t, "q/c", commit_fn, &c), 0);
    assert_int_equal(submit_quota(t, "q/d", commit_fn, &d), SD_ELIMIT);
    /* a key that exists already is not counted twice (its creation fails as a conflict) */
    assert_int_equal(submit_quota(t, "q/a", task_fail, &d), 0);
    finish(t, d, "error");
    finish(t, c, "success");
    /* a deleted entity frees its slot */
    assert_int_equal(sd_state_del(st, "q/a", 0, &deleted, NULL), 0);
    assert_int_equal(submit_quota(t, "q/d", commit_fn, &d), 0);
    finish(t, d, "success");
    sd_tasks_destroy(t);
    sd_state_close(st);
    sd_rm_rf(dir);
}

/* A claim check that records what it was shown and refuses a differing held value. */
struct claim_probe {
    const char *held;
    int calls;
};

static int claim_check(void *arg, const char *held)
{
    struct claim_probe *p = arg;

    p->calls++;
    p->held = held;
    return held != NULL ? SD_EINVAL : 0;
}

static int submit_claim(struct sd_tasks *t, const char *lock, const char *value,
                        struct claim_probe *probe, json_t **task)
{
    struct sd_buf why = SD_BUF_INIT;
    struct sd_task_claim claim = {"1/in.c-b.t", value, claim_check, probe, &why};
    int rc = submit_spec(t, lock, block_fn, NULL, NULL, &claim, task);

    sd_buf_fini(&why);
    return rc;
}

static void test_tasks_claim(void **state)
{
    char dir[512], path[600];
    struct sd_state *st = NULL;
    struct sd_tasks *t = NULL;
    struct claim_probe probe;
    json_t *a, *b, *c;

    (void)state;
    make_tmp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/state", dir);
    assert_int_equal(sd_state_open_backend("embedded", NULL, path, &st), 0);
    assert_int_equal(sd_tasks_create(st, "http://api", 0, &t), 0);
    memset(&probe, 0, sizeof(probe));
    assert_int_equal(submit_claim(t, "a", "in.c-b.t|x", &probe, &a), 0);
    assert_null(probe.held);
    /* while a runs, another value is shown to the check (which refuses it), the same is not */
    assert_int_equal(submit_claim(t, "b", "in.c-b.T|x", &probe, &b), SD_EINVAL);
    assert_string_equal(probe.held, "in.c-b.t|x");
    assert_null(b);
    assert_false(sd_tasks_is_locked(t, "b"));
    assert_int_equal(submit_claim(t, "c", "in.c-b.t|x", &probe, &c), 0);
    assert_null(probe.held);
    finish(t, a, "success");
    finish(t, c, "success");
    /* released when the tasks end */
    assert_int_equal(submit_claim(t, "b", "in.c-b.T|x", &probe, &b), 0);
    assert_null(probe.held);
    assert_int_equal(probe.calls, 4);
    finish(t, b, "success");
    sd_tasks_destroy(t);
    sd_state_close(st);
    sd_rm_rf(dir);
}

/* The reference's `by`: empty members are left out (omitempty), no members means "system". */
static void test_by_json_leaves_out_empty_members(void **state)
{
    struct sd_defs_by user = {"user", "42", "", "42", "Jane"};
    struct sd_defs_by system_by = {"", "", "", "", ""};
    json_t *j;
    char *text;

    (void)state;
    j = sd_defs_by_json(&user);
    text = json_dumps(j, JSON_PRESERVE_ORDER | JSON_COMPACT);
    assert_string_equal(
        text, "{\"type\":\"user\",\"tokenId\":\"42\",\"userId\":\"42\",\"userName\":\"Jane\"}");
    free(text);
    json_decref(j);
    j = sd_defs_by_json(&system_by);
    text = json_dumps(j, JSON_PRESERVE_ORDER | JSON_COMPACT);
    assert_string_equal(text, "{\"type\":\"system\"}");
    free(text);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_by_json_leaves_out_empty_members),
        cmocka_unit_test(test_normalize_table),
        cmocka_unit_test(test_normalize_empty),
        cmocka_unit_test(test_resolve_id),
        cmocka_unit_test(test_valid_id),
        cmocka_unit_test(test_check_length),
        cmocka_unit_test(test_table_id),
        cmocka_unit_test(test_parse_source),
        cmocka_unit_test(test_parse_sink),
        cmocka_unit_test(test_column_names),
        cmocka_unit_test(test_source_entity),
        cmocka_unit_test(test_sink_entity),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_secret),
        cmocka_unit_test(test_auth_hash),
        cmocka_unit_test(test_auth_admin_token),
        cmocka_unit_test(test_tasks),
        cmocka_unit_test(test_tasks_lock_conflict),
        cmocka_unit_test(test_tasks_quota),
        cmocka_unit_test(test_tasks_claim),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
