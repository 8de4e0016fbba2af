/* test_api_docs.c: unit tests of api/sd_api_docs.c: YAML scalar typing, YAML -> JSON (quoted
 * keys, aliases), JSON -> YAML round trips (strings that look like numbers stay strings), the
 * OpenAPI 3 -> 2 conversion and the HTML page of the embedded document, and the documentation
 * paths.
 *
 * DESIGN: includes the .c under test to reach its static helpers (STYLE §10); single-threaded
 * cmocka runner, no I/O. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "api/sd_api_docs.c"

static void expect_scalar(const char *text, json_t *want)
{
    json_t *got = sd__plain_scalar(text, strlen(text));

    if (!json_equal(got, want)) {
        fail_msg("plain scalar \"%s\" typed wrongly", text);
    }
    json_decref(got);
    json_decref(want);
}

static void test_plain_scalars(void **state)
{
    (void)state;
    expect_scalar("", json_null());
    expect_scalar("~", json_null());
    expect_scalar("null", json_null());
    expect_scalar("true", json_true());
    expect_scalar("false", json_false());
    expect_scalar("42", json_integer(42));
    expect_scalar("-7", json_integer(-7));
    expect_scalar("1.5", json_real(1.5));
    expect_scalar("1e3", json_real(1000.0));
    expect_scalar("1.0.0", json_string("1.0.0"));
    expect_scalar("+", json_string("+"));
    expect_scalar("-", json_string("-"));
    expect_scalar("12abc", json_string("12abc"));
    expect_scalar("True", json_string("True"));
}

static void test_yaml_to_json(void **state)
{
    static const char text[] = "a:\n"
                               "  \"200\": {x: 1}\n"
                               "  version: \"1.0\"\n"
                               "  list: [1, two, \"3\", null]\n"
                               "  base: &b {k: v}\n"
                               "  copy: *b\n"
                               "  folded: >-\n"
                               "    one\n"
                               "    two\n";
    json_t *got;
    json_t *want;

    (void)state;
    got = sd__yaml_to_json((const unsigned char *)text, sizeof(text) - 1);
    assert_non_null(got);
    want = json_pack("{s:{s:{s:i}, s:s, s:[i,s,s,n], s:{s:s}, s:{s:s}, s:s}}", "a", "200", "x", 1,
                     "version", "1.0", "list", 1, "two", "3", "base", "k", "v", "copy", "k", "v",
                     "folded", "one two");
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(want);

    assert_null(sd__yaml_to_json((const unsigned char *)"a: [1, 2", 8));
}

static void test_json_yaml_round_trip(void **state)
{
    json_t *in;
    json_t *back;
    char *yaml;

    (void)state;
    in = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:f, s:b, s:n, s:[s,s], s:{}, s:s}", "200", "ok",
                   "n", "123", "t", "true", "e", "", "colon", "a: b #c", "int", 5, "real", 2.5,
                   "bool", 1, "null", "list", "-", "~", "empty", "multi", "line one\nline two");
    yaml = sd__json_to_yaml(in);
    assert_non_null(yaml);
    back = sd__yaml_to_json((const unsigned char *)yaml, strlen(yaml));
    assert_non_null(back);
    if (!json_equal(in, back)) {
        fail_msg("round trip changed the value:\n%s", yaml);
    }
    json_decref(back);
    json_decref(in);
    free(yaml);
}

static json_t *embedded_doc(void)
{
    json_t *doc = sd__yaml_to_json(sd__openapi3_yaml, sd__openapi3_yaml_len);

    assert_non_null(doc);
    return doc;
}

static void test_openapi2(void **state)
{
    json_t *v3 = embedded_doc();
    json_t *v2 = sd__v3_to_v2(v3);
    char *text = json_dumps(v2, 0);
    const char *path;
    json_t *item;

    (void)state;
    assert_string_equal(json_string_value(json_object_get(v2, "swagger")), "2.0");
    assert_null(strstr(text, "#/components/"));
    assert_int_equal(
        json_object_size(json_object_get(v2, "definitions")),
        json_object_size(json_object_get(json_object_get(v3, "components"), "schemas")));
    assert_int_equal(json_object_size(json_object_get(v2, "paths")),
                     json_object_size(json_object_get(v3, "paths")));
    json_object_foreach(json_object_get(v2, "paths"), path, item)
    {
        const char *m;
        json_t *op;
        json_object_foreach(item, m, op)
        {
            json_t *params = strcmp(m, "parameters") == 0 ? op : json_object_get(op, "parameters");
            json_t *p;
            size_t i;
            json_array_foreach(params, i, p)
            {
                const char *in = json_string_value(json_object_get(p, "in"));
                if (in != NULL && strcmp(in, "body") != 0 && json_object_get(p, "schema")) {
                    fail_msg("%s %s: parameter keeps a schema", m, path);
                }
            }
            if (strcmp(m, "parameters") != 0 && json_object_get(op, "requestBody") != NULL) {
                fail_msg("%s %s: requestBody left in OpenAPI 2", m, path);
            }
        }
    }
    free(text);
    json_decref(v2);
    json_decref(v3);
}

static void test_html_lists_every_path(void **state)
{
    json_t *doc = embedded_doc();
    char *html = sd__html(doc);
    const char *path;
    json_t *item;

    (void)state;
    assert_non_null(strstr(html, "<!DOCTYPE html>"));
    assert_null(strstr(html, "<script"));
    json_object_foreach(json_object_get(doc, "paths"), path, item)
    {
        char *code = sd_xasprintf("<code>%s</code>", path);
        if (strstr(html, code) == NULL) {
            fail_msg("the page misses %s", path);
        }
        free(code);
    }
    free(html);
    json_decref(doc);
}

static void test_docs_paths(void **state)
{
    (void)state;
    assert_int_equal(sd__docs_file(sd_str_c("/v1/documentation")), 0);
    assert_int_equal(sd__docs_file(sd_str_c("/v1/documentation/")), 0);
    assert_int_equal(sd__docs_file(sd_str_c("/v1/documentation/openapi3.yaml")), 1);
    assert_int_equal(sd__docs_file(sd_str_c("/v1/documentation/openapi3.json")), 2);
    assert_int_equal(sd__docs_file(sd_str_c("/v1/documentation/openapi.yaml")), 3);
    assert_int_equal(sd__docs_file(sd_str_c("/v1/documentation/openapi.json")), 4);
    assert_int_equal(sd__docs_file(sd_str_c("/v1/documentation/openapi.yml")), -1);
    assert_int_equal(sd__docs_file(sd_str_c("/v1/documentation//")), -1);
    assert_int_equal(sd__docs_file(sd_str_c("/v1/documentationx")), -1);
    assert_int_equal(sd__docs_file(sd_str_c("/v1/docs")), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_scalars),         cmocka_unit_test(test_yaml_to_json),
        cmocka_unit_test(test_json_yaml_round_trip),  cmocka_unit_test(test_openapi2),
        cmocka_unit_test(test_html_lists_every_path), cmocka_unit_test(test_docs_paths),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
