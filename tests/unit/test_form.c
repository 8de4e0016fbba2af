/* test_form.c: unit tests of pipeline/sd_form: form bodies to JSON text (flat and nested keys,
 * appends, array indexes, percent-decoding, errors) and that the output is valid for sd_json. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "pipeline/sd_form.h"
#include "pipeline/sd_json.h"

static void expect_len(const char *body, size_t len, const char *json)
{
    struct sd_buf out = SD_BUF_INIT;
    struct sd_json_doc *doc;
    char err[128];

    assert_int_equal(sd_form_to_json(body, len, &out, err, sizeof(err)), 0);
    assert_string_equal(sd_buf_cstr(&out), json);
    assert_int_equal(sd_json_parse(out.data, out.len, &doc, err, sizeof(err)), 0);
    sd_json_doc_free(doc);
    sd_buf_fini(&out);
}

static void expect(const char *body, const char *json)
{
    expect_len(body, strlen(body), json);
}

static void expect_error(const char *body, const char *reason)
{
    struct sd_buf out = SD_BUF_INIT;
    char err[128];

    sd_buf_append_str(&out, "keep");
    assert_int_equal(sd_form_to_json(body, strlen(body), &out, err, sizeof(err)), SD_EPARSE);
    assert_string_equal(sd_buf_cstr(&out), "keep");
    if (strstr(err, reason) == NULL) {
        fail_msg("error \"%s\" lacks \"%s\"", err, reason);
    }
    sd_buf_fini(&out);
}

static void test_flat(void **state)
{
    (void)state;
    expect("", "{}");
    expect("&&", "{}");
    expect("one=two&three=four&five=&six&seven[]=eight&seven[]=nine",
           "{\"one\":\"two\",\"three\":\"four\",\"five\":\"\",\"six\":\"\","
           "\"seven\":[\"eight\",\"nine\"]}");
    expect("&a=1&", "{\"a\":\"1\"}");
    expect("a=1&a=2", "{\"a\":\"2\"}");
    expect("a=1&b=2&a=3", "{\"a\":\"3\",\"b\":\"2\"}");
    expect("=v", "{\"\":\"v\"}");
    expect("a==b", "{\"a\":\"=b\"}");
    expect("a]b=1", "{\"a]b\":\"1\"}");
}

static void test_decoding(void **state)
{
    (void)state;
    expect("k%20x=a+b%2Bc%26%3D", "{\"k x\":\"a b+c&=\"}");
    expect("n=%C3%A9%c3%a9", "{\"n\":\"\xc3\xa9\xc3\xa9\"}");
    expect("q=%22%5C%0A%09%2F", "{\"q\":\"\\\"\\\\\\n\\t/\"}");
    expect("z=%00", "{\"z\":\"\\u0000\"}");
    expect("e=\xf0\x9f\x98\x80", "{\"e\":\"\xf0\x9f\x98\x80\"}");
}

static void test_nested(void **state)
{
    (void)state;
    expect("a[b][c]=1&a[b][d]=2&a[e]=3", "{\"a\":{\"b\":{\"c\":\"1\",\"d\":\"2\"},\"e\":\"3\"}}");
    expect("a[b][]=1&a[b][]=2", "{\"a\":{\"b\":[\"1\",\"2\"]}}");
    expect("a[0]=x&a[1]=y", "{\"a\":[\"x\",\"y\"]}");
    expect("a[0]=x&a[0]=z", "{\"a\":[\"z\"]}");
    expect("a[0][k]=x&a[0][l]=y&a[1][k]=z", "{\"a\":[{\"k\":\"x\",\"l\":\"y\"},{\"k\":\"z\"}]}");
    expect("a[]=1&a[1]=2", "{\"a\":[\"1\",\"2\"]}");
    expect("a[x]=1&a[0]=2", "{\"a\":{\"x\":\"1\",\"0\":\"2\"}}");
    expect("a%5Bb%5D=1", "{\"a\":{\"b\":\"1\"}}");
    expect("a[b]=1&a=2", "{\"a\":\"2\"}");
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("a=1;b=2", "semicolon");
    expect_error("a=%zz", "invalid URL escape \"%zz\"");
    expect_error("a=%4", "invalid URL escape");
    expect_error("a=%", "invalid URL escape");
    expect_error("n=%FF", "invalid UTF-8");
    expect_error("%FF=1", "invalid UTF-8");
    expect_error("%00=1", "NUL");
    expect_error("a[b=1", "unable to parse key \"a[b\"");
    expect_error("a[b]c=1", "unable to parse key");
    expect_error("a[][b]=1", "unable to parse key");
    expect_error("a[b[c]]=1", "unable to parse key");
    expect_error("a=1&a[b]=2", "conflicts");
    expect_error("a[b]=1&a[]=2", "square brackets");
    expect_error("a=1&a[]=2", "square brackets");
    expect_error("a[1]=x", "out of range");
    expect_error("a[0]=x&a[k]=y", "conflicts");
}

static void test_depth(void **state)
{
    struct sd_buf key = SD_BUF_INIT;
    struct sd_buf out = SD_BUF_INIT;
    struct sd_json_doc *doc;
    char err[128];

    (void)state;
    sd_buf_append_str(&key, "a");
    for (int i = 0; i < 127; i++) {
        sd_buf_append_str(&key, "[k]");
    }
    sd_buf_append_str(&key, "=v");
    assert_int_equal(sd_form_to_json(key.data, key.len, &out, err, sizeof(err)), 0);
    assert_int_equal(sd_json_parse(out.data, out.len, &doc, err, sizeof(err)), 0);
    sd_json_doc_free(doc);
    sd_buf_reset(&key);
    sd_buf_append_str(&key, "a");
    for (int i = 0; i < 128; i++) {
        sd_buf_append_str(&key, "[k]");
    }
    sd_buf_append_str(&key, "=v");
    sd_buf_reset(&out);
    assert_int_equal(sd_form_to_json(key.data, key.len, &out, err, sizeof(err)), SD_EPARSE);
    assert_non_null(strstr(err, "nested too deeply"));
    /* An append adds a level. */
    sd_buf_reset(&key);
    sd_buf_append_str(&key, "a");
    for (int i = 0; i < 126; i++) {
        sd_buf_append_str(&key, "[k]");
    }
    sd_buf_append_str(&key, "[]=v");
    sd_buf_reset(&out);
    assert_int_equal(sd_form_to_json(key.data, key.len, &out, err, sizeof(err)), 0);
    sd_buf_reset(&key);
    sd_buf_append_str(&key, "a");
    for (int i = 0; i < 127; i++) {
        sd_buf_append_str(&key, "[k]");
    }
    sd_buf_append_str(&key, "[]=v");
    sd_buf_reset(&out);
    assert_int_equal(sd_form_to_json(key.data, key.len, &out, err, sizeof(err)), SD_EPARSE);
    sd_buf_fini(&key);
    sd_buf_fini(&out);
}

static void test_many_keys(void **state)
{
    struct sd_buf body = SD_BUF_INIT;
    struct sd_buf out = SD_BUF_INIT;
    struct sd_json_doc *doc;
    char err[128];
    int found;

    (void)state;
    for (int i = 0; i < 20000; i++) {
        sd_buf_printf(&body, "%sk%d=%d", i ? "&" : "", i, i);
    }
    assert_int_equal(sd_form_to_json(body.data, body.len, &out, err, sizeof(err)), 0);
    assert_int_equal(sd_json_parse(out.data, out.len, &doc, err, sizeof(err)), 0);
    sd_buf_reset(&body);
    assert_int_equal(sd_json_path(doc, "k19999", 6, 1, &body, &found), 0);
    assert_int_equal(found, 1);
    assert_string_equal(sd_buf_cstr(&body), "19999");
    sd_json_doc_free(doc);
    sd_buf_fini(&body);
    sd_buf_fini(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flat),   cmocka_unit_test(test_decoding),
        cmocka_unit_test(test_nested), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_depth),  cmocka_unit_test(test_many_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
