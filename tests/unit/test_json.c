/* test_json.c: unit tests of pipeline/sd_json: validation (invalid JSON, invalid UTF-8, depth
 * limits without stack overflow, big numbers), path syntax, lookups, the compact encoding and the
 * fallback validator's agreement with simdjson. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "pipeline/sd_json.h"

static int parse_len(const char *text, size_t len)
{
    struct sd_json_doc *doc = NULL;
    char err[128];
    int rc = sd_json_parse(text, len, &doc, err, sizeof(err));

    if (rc == 0) {
        assert_non_null(doc);
    } else {
        assert_null(doc);
        assert_true(strlen(err) > 0);
    }
    sd_json_doc_free(doc);
    /* The fallback validator alone agrees. */
    assert_int_equal(sd_json_validate_slow(text, len, err, sizeof(err)), rc);
    return rc;
}

static int parse(const char *text)
{
    return parse_len(text, strlen(text));
}

/* Looks up path in text; returns the rc and leaves the value (or "<missing>") in out. */
static int lookup(const char *text, const char *path, int raw, struct sd_buf *out)
{
    struct sd_json_doc *doc;
    char err[128];
    int found = -1;
    int rc;

    sd_buf_reset(out);
    assert_int_equal(sd_json_parse(text, strlen(text), &doc, err, sizeof(err)), 0);
    rc = sd_json_path(doc, path, strlen(path), raw, out, &found);
    if (rc == 0 && !found) {
        assert_int_equal(out->len, 0);
        sd_buf_append_str(out, "<missing>");
    }
    sd_json_doc_free(doc);
    return rc;
}

static void expect(const char *text, const char *path, int raw, const char *expected)
{
    struct sd_buf out = SD_BUF_INIT;

    assert_int_equal(lookup(text, path, raw, &out), 0);
    assert_string_equal(sd_buf_cstr(&out), expected);
    sd_buf_fini(&out);
}

static void test_valid(void **state)
{
    static const char *const docs[] = {
        "{}",
        "[]",
        "0",
        "-0",
        "1.5e-3",
        "\"s\"",
        "true",
        "false",
        "null",
        " \t\r\n{ \"a\" : [ 1 , 2 ] } \n",
        "{\"a\":{\"b\":[{},[],\"\\u00e9\\n\\/\"]}}",
        "\"\\ud83d\\ude00\"",
        "\"\xf0\x9f\x98\x80 \xc3\xa9\"",
        "{\"a\":1,\"a\":2}",
        "[\"\x7f\"]",
        "1E+2",
        "[0.0e0]",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        assert_int_equal(parse(docs[i]), 0);
    }
}

static void test_invalid(void **state)
{
    static const char *const docs[] = {
        "",
        "   ",
        "{",
        "}",
        "[1,]",
        "{\"a\":1,}",
        "{a:1}",
        "{\"a\" 1}",
        "[1 2]",
        "01",
        "1.",
        ".5",
        "-",
        "+1",
        "1e",
        "1e+",
        "tru",
        "nul",
        "True",
        "'a'",
        "\"a",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "{} x",
        "[] []",
        "NaN",
        "Infinity",
        "[-]",
        "\"\t\"",
        "\"a\nb\"",
        "/* c */ 1",
        "\xef\xbb\xbf{}",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        assert_int_equal(parse(docs[i]), SD_EPARSE);
    }
}

static void test_invalid_utf8(void **state)
{
    static const char *const docs[] = {
        "\"\xff\"",     "\"\xc0\xaf\"", "\"\xed\xa0\x80\"",   "\"\xf4\x90\x80\x80\"",
        "\"\xe2\x82\"", "\"\x80\"",     "[\"ok\", \"\xc3\"]", "{\"\xfe\":1}",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        assert_int_equal(parse(docs[i]), SD_EPARSE);
    }
    assert_int_equal(sd_json_utf8_valid("\xc3\xa9", 2), 1);
    assert_int_equal(sd_json_utf8_valid("\xc3", 1), 0);
}

static void test_nul(void **state)
{
    struct sd_buf out = SD_BUF_INIT;

    (void)state;
    /* A raw NUL is invalid JSON, inside or after the document. */
    assert_int_equal(parse_len("\"a\0b\"", 5), SD_EPARSE);
    assert_int_equal(parse_len("{}\0", 3), SD_EPARSE);
    /* An escaped NUL is valid JSON, but cannot be written as a raw string. */
    assert_int_equal(lookup("{\"a\":\"x\\u0000y\"}", "a", 1, &out), SD_EINVAL);
    assert_int_equal(out.len, 0);
    expect("{\"a\":\"x\\u0000y\"}", "a", 0, "\"x\\u0000y\"");
    sd_buf_fini(&out);
}

static char *nested(size_t depth, int closed, char open, char close)
{
    char *s = malloc(2 * depth + 1);
    size_t n = 0;

    assert_non_null(s);
    for (size_t i = 0; i < depth; i++) {
        s[n++] = open;
        if (open == '{') {
            /* {"a":{"a":...}} is built below instead */
        }
    }
    for (size_t i = 0; closed && i < depth; i++) {
        s[n++] = close;
    }
    s[n] = '\0';
    return s;
}

static char *nested_objects(size_t depth)
{
    struct sd_buf b = SD_BUF_INIT;

    for (size_t i = 0; i < depth; i++) {
        sd_buf_append_str(&b, "{\"a\":");
    }
    sd_buf_append_str(&b, "1");
    for (size_t i = 0; i < depth; i++) {
        sd_buf_append_char(&b, '}');
    }
    return sd_buf_steal(&b);
}

static void test_depth(void **state)
{
    char *s;

    (void)state;
    s = nested(128, 1, '[', ']');
    assert_int_equal(parse(s), 0);
    free(s);
    s = nested(129, 1, '[', ']');
    assert_int_equal(parse(s), SD_EPARSE);
    free(s);
    s = nested_objects(128);
    assert_int_equal(parse(s), 0);
    free(s);
    s = nested_objects(129);
    assert_int_equal(parse(s), SD_EPARSE);
    free(s);
    /* Far too deep, closed and unclosed: rejected without recursion. */
    s = nested(100000, 1, '[', ']');
    assert_int_equal(parse(s), SD_EPARSE);
    free(s);
    s = nested(100000, 0, '[', ']');
    assert_int_equal(parse(s), SD_EPARSE);
    free(s);
    s = nested_objects(100000);
    assert_int_equal(parse(s), SD_EPARSE);
    free(s);
}

static void test_depth_message(void **state)
{
    struct sd_json_doc *doc = NULL;
    char err[128];
    char *s = nested(129, 1, '[', ']');

    (void)state;
    assert_int_equal(sd_json_parse(s, strlen(s), &doc, err, sizeof(err)), SD_EPARSE);
    assert_non_null(strstr(err, "128"));
    free(s);
}

static void test_big_numbers(void **state)
{
    static const char doc[] = "{\"big\":123456789012345678901234567890,\"inf\":1e400,"
                              "\"neg\":-98765432109876543210987654321,\"f\":1.50,\"e\":1E+2,"
                              "\"tiny\":1e-400,\"arr\":[18446744073709551616, 1.0e400 ]}";

    (void)state;
    assert_int_equal(parse(doc), 0);
    assert_int_equal(parse("123456789012345678901234567890"), 0);
    assert_int_equal(parse("1e400"), 0);
    assert_int_equal(parse("[1e400, 01]"), SD_EPARSE);
    assert_int_equal(parse("[1e400, \"\xff\"]"), SD_EPARSE);
    expect(doc, "big", 0, "123456789012345678901234567890");
    expect(doc, "big", 1, "123456789012345678901234567890");
    expect(doc, "inf", 0, "1e400");
    expect(doc, "neg", 0, "-98765432109876543210987654321");
    expect(doc, "f", 0, "1.50");
    expect(doc, "e", 0, "1E+2");
    expect(doc, "tiny", 0, "1e-400");
    expect(doc, "arr", 0, "[18446744073709551616,1.0e400]");
    expect(doc, "arr[1]", 0, "1.0e400");
    expect("[1.000, -0, 2e5]", "[1]", 0, "-0");
}

static const char sample[] =
    "{\n"
    "  \"id\": \"abc\",\n"
    "  \"user\": {\"id\": 42, \"name\": \"J\\u00f6rg \\\"Q\\\"\", \"tags\": [\"a\", \"b\"]},\n"
    "  \"items\": [ {\"sku\": \"x1\", \"qty\": 2}, {\"sku\": \"x2\", \"qty\": 3.25} ],\n"
    "  \"matrix\": [[1, 2], [3, [4, 5]]],\n"
    "  \"flags\": {\"on\": true, \"off\": false, \"none\": null},\n"
    "  \"esc\\u0061ped\": \"k\",\n"
    "  \"dup\": 1, \"dup\": 2,\n"
    "  \"empty\": \"\", \"ws\": \"a b\",\n"
    "  \"text\": \"line1\\nline2\\ttab\\/slash\\\\ \\u0001 \\u00e9 \\ud83d\\ude00\",\n"
    "  \"a.b\": 7, \"\": 8\n"
    "}";

static void test_paths(void **state)
{
    (void)state;
    expect(sample, "id", 0, "\"abc\"");
    expect(sample, "id", 1, "abc");
    expect(sample, "user.id", 0, "42");
    expect(sample, "user.id", 1, "42");
    expect(sample, "user.name", 1, "J\xc3\xb6rg \"Q\"");
    expect(sample, "user.name", 0, "\"J\xc3\xb6rg \\\"Q\\\"\"");
    expect(sample, "user.tags", 0, "[\"a\",\"b\"]");
    expect(sample, "user.tags", 1, "[\"a\",\"b\"]");
    expect(sample, "user.tags[1]", 1, "b");
    expect(sample, "items[1].qty", 0, "3.25");
    expect(sample, "items[0]", 0, "{\"sku\":\"x1\",\"qty\":2}");
    expect(sample, "matrix[1][1][0]", 0, "4");
    expect(sample, "matrix[1]", 0, "[3,[4,5]]");
    expect(sample, "flags", 0, "{\"on\":true,\"off\":false,\"none\":null}");
    expect(sample, "flags.none", 1, "null");
    expect(sample, "flags.off", 0, "false");
    expect(sample, "escaped", 1, "k");
    expect(sample, "dup", 0, "1");
    expect(sample, "empty", 0, "\"\"");
    expect(sample, "empty", 1, "");
    expect(sample, "ws", 1, "a b");
    expect(sample, "text", 1, "line1\nline2\ttab/slash\\ \x01 \xc3\xa9 \xf0\x9f\x98\x80");
    expect(sample, "text", 0,
           "\"line1\\nline2\\ttab/slash\\\\ \\u0001 \xc3\xa9 \xf0\x9f\x98\x80\"");
    /* Missing and mismatching paths. */
    expect(sample, "nope", 0, "<missing>");
    expect(sample, "user.nope", 0, "<missing>");
    expect(sample, "user.tags[2]", 0, "<missing>");
    expect(sample, "user[0]", 0, "<missing>");
    expect(sample, "user.tags.a", 0, "<missing>");
    expect(sample, "id.x", 0, "<missing>");
    expect(sample, "id[0]", 0, "<missing>");
    expect(sample, "a.b", 0, "<missing>");
    expect(sample, "[0]", 0, "<missing>");
    /* Root arrays. */
    expect("[[10, {\"k\": [true]}]]", "[0][1].k[0]", 0, "true");
    expect(" [ \"r\" ] ", "[0]", 1, "r");
    expect("[]", "[0]", 0, "<missing>");
    expect("{}", "a", 0, "<missing>");
    expect("\"scalar\"", "a", 0, "<missing>");
}

static void test_path_appends(void **state)
{
    struct sd_buf out = SD_BUF_INIT;
    struct sd_json_doc *doc;
    int found;

    (void)state;
    assert_int_equal(sd_json_parse(sample, strlen(sample), &doc, NULL, 0), 0);
    sd_buf_append_str(&out, "prefix:");
    assert_int_equal(sd_json_path(doc, "user.id", 7, 0, &out, &found), 0);
    assert_int_equal(found, 1);
    assert_string_equal(sd_buf_cstr(&out), "prefix:42");
    assert_int_equal(sd_json_path(doc, "x..y", 4, 0, &out, &found), SD_EPARSE);
    assert_int_equal(found, 0);
    assert_string_equal(sd_buf_cstr(&out), "prefix:42");
    sd_json_doc_free(doc);
    sd_buf_fini(&out);
}

static void test_path_syntax(void **state)
{
    static const char *const good[] = {
        "a",     "a.b",     "a.b[0].c", "a[0][1]",    "[0]",
        "[0].a", "a b.c-d", "a[00]",    "\xc3\xa9.x", "a.b.c.d.e.f.g",
    };
    static const char *const bad[] = {
        "",
        ".",
        ".a",
        "a.",
        "a..b",
        "a[",
        "a[]",
        "a[x]",
        "a[-1]",
        "a[0",
        "a]",
        "a[0]b",
        "a.[0]",
        "[0]a",
        "a[0]]",
        "a[1 ]",
        "a[99999999999999999999999]",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(sd_json_path_check(good[i], strlen(good[i])), 0);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(sd_json_path_check(bad[i], strlen(bad[i])), SD_EPARSE);
    }
    assert_int_equal(sd_json_path_check("a\0b", 3), SD_EPARSE);
}

static void test_compiled_path(void **state)
{
    struct sd_json_cpath cp;
    char err[96];

    (void)state;
    assert_int_equal(sd_json_cpath_compile("a.b[12][3].c", 12, &cp, err, sizeof(err)), 0);
    assert_int_equal(cp.nsegs, 5);
    assert_int_equal(cp.segs[0].key_len, 1);
    assert_memory_equal(cp.segs[0].key, "a", 1);
    assert_memory_equal(cp.segs[1].key, "b", 1);
    assert_null(cp.segs[2].key);
    assert_int_equal(cp.segs[2].index, 12);
    assert_null(cp.segs[3].key);
    assert_int_equal(cp.segs[3].index, 3);
    assert_memory_equal(cp.segs[4].key, "c", 1);
    assert_string_equal(cp.text, "a.b[12][3].c");
    sd_json_cpath_fini(&cp);
    assert_int_equal(sd_json_cpath_compile("a..b", 4, &cp, err, sizeof(err)), SD_EPARSE);
    assert_non_null(strstr(err, "empty key"));
    assert_null(cp.segs);
    sd_json_cpath_fini(&cp);
}

static void test_compact(void **state)
{
    struct sd_buf out = SD_BUF_INIT;
    struct sd_json_doc *doc;
    static const char text[] = " { \"a\" : [ 1 , { } , [ ] , \"x y\" ] , \"b\\/\" : \"\\u0041\" } ";

    (void)state;
    assert_int_equal(sd_json_parse(text, strlen(text), &doc, NULL, 0), 0);
    assert_int_equal(sd_json_doc_compact(doc, &out), 0);
    assert_string_equal(sd_buf_cstr(&out), "{\"a\":[1,{},[],\"x y\"],\"b/\":\"A\"}");
    sd_json_doc_free(doc);
    sd_buf_fini(&out);
}

static void test_write_string(void **state)
{
    struct sd_buf out = SD_BUF_INIT;

    (void)state;
    assert_int_equal(sd_json_write_string(&out, "a\"b\\c\n\r\t\b\f\x01<>&/\xc3\xa9", 17), 0);
    assert_string_equal(sd_buf_cstr(&out), "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001<>&/\xc3\xa9\"");
    sd_buf_reset(&out);
    assert_int_equal(sd_json_write_string(&out, "x\xffy\xc3", 4), 0);
    assert_string_equal(sd_buf_cstr(&out), "\"x\xef\xbf\xbdy\xef\xbf\xbd\"");
    sd_buf_reset(&out);
    assert_int_equal(sd_json_write_string(&out, "a\0b", 3), 0);
    assert_string_equal(sd_buf_cstr(&out), "\"a\\u0000b\"");
    sd_buf_reset(&out);
    assert_int_equal(sd_json_write_string(&out, "", 0), 0);
    assert_string_equal(sd_buf_cstr(&out), "\"\"");
    sd_buf_fini(&out);
}

static void test_large_document(void **state)
{
    struct sd_buf text = SD_BUF_INIT;
    struct sd_buf out = SD_BUF_INIT;

    (void)state;
    /* Grows the parser past its kept capacity, then parses small documents again. */
    sd_buf_append_char(&text, '[');
    for (int i = 0; i < 300000; i++) {
        sd_buf_printf(&text, "%s{\"i\":%d}", i ? "," : "", i);
    }
    sd_buf_append_str(&text, "]");
    assert_int_equal(parse(text.data), 0);
    expect(text.data, "[299999].i", 0, "299999");
    assert_int_equal(lookup(sample, "user.id", 0, &out), 0);
    assert_string_equal(sd_buf_cstr(&out), "42");
    sd_buf_fini(&text);
    sd_buf_fini(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),         cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_invalid_utf8),  cmocka_unit_test(test_nul),
        cmocka_unit_test(test_depth),         cmocka_unit_test(test_depth_message),
        cmocka_unit_test(test_big_numbers),   cmocka_unit_test(test_paths),
        cmocka_unit_test(test_path_appends),  cmocka_unit_test(test_path_syntax),
        cmocka_unit_test(test_compiled_path), cmocka_unit_test(test_compact),
        cmocka_unit_test(test_write_string),  cmocka_unit_test(test_large_document),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
