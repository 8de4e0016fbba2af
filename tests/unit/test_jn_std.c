/* test_jn_std.c: unit tests of the Jsonnet std library natives (sd_jn_std*.c, sd_jn_format.c):
 * small programs compiled and evaluated through the public API, compared as compact JSON, for
 * every native, their type errors (SD_EINVAL with a message naming the function), std.format's
 * conversions, parseJson's strictness and depth bound, manifestJsonEx's 0.18 layout, and the
 * step limit on big inputs. Expected values are libjsonnet 0.18's (the jsonnet CLI) except
 * numbers, which print in the shortest round-trip form, and functions 0.18 lacks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "jsonnet/sd_jn_value.h"
#include "jsonnet/sd_jsonnet.h"

/* Evaluates src; returns the sd_jn_eval rc with the output or the error message in res. */
static int run(const char *src, const struct sd_jn_limits *limits, struct sd_buf *res)
{
    struct sd_jn_program *prog = NULL;
    struct sd_jn_vm *vm;
    struct sd_buf err = SD_BUF_INIT;
    int rc;

    sd_buf_reset(res);
    rc = sd_jn_compile(src, strlen(src), "test", NULL, 0, &prog, &err);
    if (rc != 0) {
        fprintf(stderr, "compile error in %s: %s\n", src, sd_buf_cstr(&err));
        sd_buf_fini(&err);
        return rc;
    }
    vm = sd_jn_vm_new(limits);
    assert_non_null(vm);
    rc = sd_jn_eval(prog, vm, NULL, SD_JN_OUT_COMPACT, res, &err);
    if (rc != 0) {
        sd_buf_reset(res);
        sd_buf_append(res, err.data ? err.data : "", err.len);
    }
    sd_jn_vm_free(vm);
    sd_jn_program_free(prog);
    sd_buf_fini(&err);
    return rc;
}

static void expect(const char *src, const char *expected)
{
    struct sd_buf res = SD_BUF_INIT;
    int rc = run(src, NULL, &res);

    if (rc != 0 || strcmp(sd_buf_cstr(&res), expected) != 0) {
        fprintf(stderr, "program:  %s\nexpected: %s\ngot (%d): %s\n", src, expected, rc,
                sd_buf_cstr(&res));
    }
    assert_int_equal(rc, 0);
    assert_string_equal(sd_buf_cstr(&res), expected);
    sd_buf_fini(&res);
}

/* The program fails at run time with a message containing part. */
static void expect_error(const char *src, const char *part)
{
    struct sd_buf res = SD_BUF_INIT;
    int rc = run(src, NULL, &res);

    if (rc != SD_EINVAL || strstr(sd_buf_cstr(&res), part) == NULL) {
        fprintf(stderr, "program:  %s\nexpected error with: %s\ngot (%d): %s\n", src, part, rc,
                sd_buf_cstr(&res));
    }
    assert_int_equal(rc, SD_EINVAL);
    assert_non_null(strstr(sd_buf_cstr(&res), part));
    sd_buf_fini(&res);
}

static void test_table(void **state)
{
    size_t i;

    (void)state;
    assert_true(sd_jn_std_nnatives > 100);
    for (i = 0; i < sd_jn_std_nnatives; i++) {
        if (i > 0) {
            assert_true(strcmp(sd_jn_std_natives[i - 1].name, sd_jn_std_natives[i].name) < 0);
        }
        assert_true(sd_jn_std_natives[i].nparams <= SD_JN_NATIVE_MAX_PARAMS);
        assert_true(sd_jn_std_natives[i].nrequired <= sd_jn_std_natives[i].nparams);
        assert_non_null(sd_jn_std_natives[i].fn);
    }
}

static void test_types(void **state)
{
    (void)state;
    expect("[std.type(x) for x in [null, true, 1, 'a', [], {}, std.type]]",
           "[\"null\",\"boolean\",\"number\",\"string\",\"array\",\"object\",\"function\"]");
    expect("[std.isString('a'), std.isString(1), std.isNumber(1), std.isBoolean(false), "
           "std.isObject({}), std.isArray([]), std.isFunction(std.id), std.isFunction({})]",
           "[true,false,true,true,true,true,true,false]");
    expect("[std.length('h\u00e9llo'), std.length([1, 2]), std.length({a: 1, b:: 2}), "
           "std.length(function(a, b) a)]",
           "[5,2,1,2]");
    expect_error("std.length(1)", "std.length");
    expect("[std.toString(1.5), std.toString(0.1), std.toString('a'), std.toString([1, 'a']), "
           "std.toString({b: null})]",
           "[\"1.5\",\"0.1\",\"a\",\"[1, \\\"a\\\"]\",\"{\\\"b\\\": null}\"]");
    expect("std.id(3)", "3");
    expect("[std.equals({a: [1, 2]}, {a: [1, 2]}), std.equals(1, '1'), std.primitiveEquals(1, 1)]",
           "[true,false,true]");
    expect("std.assertEqual({a: 1}, {a: 1})", "true");
    expect_error("std.assertEqual(1, 2)", "Assertion failed. 1 != 2");
}

static void test_strings(void **state)
{
    (void)state;
    expect("std.substr('h\u00e9llo', 1, 3)", "\"\u00e9ll\"");
    expect("[std.substr('hello', 1, 10), std.substr('hello', 10, 3), std.substr('hello', 1.7, 2)]",
           "[\"ello\",\"\",\"el\"]");
    expect_error("std.substr(1, 2, 3)", "std.substr: first argument must be a string, got number");
    expect_error("std.substr('a', -1, 3)", "std.substr");
    expect("[std.startsWith('hello', 'he'), std.startsWith('he', 'hello'), "
           "std.endsWith('hello', 'lo'), std.endsWith('lo', 'hello')]",
           "[true,false,true,false]");
    expect_error("std.startsWith(1, 'a')", "std.startsWith");
    expect("std.split('a,b,,c', ',')", "[\"a\",\"b\",\"\",\"c\"]");
    expect("std.split('a::b::c', '::')", "[\"a\",\"b\",\"c\"]");
    expect("std.split('', ',')", "[\"\"]");
    expect("std.splitLimit('a,b,c', ',', 1)", "[\"a\",\"b,c\"]");
    expect("std.splitLimit('a,b,c', ',', -1)", "[\"a\",\"b\",\"c\"]");
    expect("std.splitLimitR('a,b,c', ',', 1)", "[\"a,b\",\"c\"]");
    expect("std.splitLimitR('aaa', 'aa', 1)", "[\"a\",\"\"]");
    expect_error("std.split('abc', '')", "std.split");
    expect_error("std.splitLimit('abc', ',', 'x')", "std.splitLimit: third argument");
    expect("[std.strReplace('aXbXXc', 'XX', 'Y'), std.strReplace('aaaa', 'aa', 'b'), "
           "std.strReplace('abc', 'z', 'y'), std.strReplace('\u00e9a\u00e9', '\u00e9', '')]",
           "[\"aXbYc\",\"bb\",\"abc\",\"a\"]");
    expect_error("std.strReplace('a', '', 'x')", "must not be zero length");
    expect("[std.asciiLower('HeLLo \u00c9'), std.asciiUpper('hello \u00e9')]",
           "[\"hello \u00c9\",\"HELLO \u00e9\"]");
    expect_error("std.asciiUpper(1)", "std.asciiUpper");
    expect("std.stringChars('a\u00e9\u20ac')", "[\"a\",\"\u00e9\",\"\u20ac\"]");
    expect("[std.codepoint('\u20ac'), std.char(233), std.char(128512)]",
           "[8364,\"\u00e9\",\"\U0001F600\"]");
    expect_error("std.codepoint('ab')", "std.codepoint");
    expect_error("std.char(-1)", "std.char");
    expect("[std.stripChars('  abc  ', ' '), std.lstripChars('xxabcxx', 'x'), "
           "std.rstripChars('xxabcxx', 'x'), std.stripChars('abcba', ['a', 'b']), "
           "std.stripChars('\u00e9a\u00e9', '\u00e9')]",
           "[\"abc\",\"abcxx\",\"xxabc\",\"c\",\"a\"]");
    expect("[std.trim(' \\t\\n a b \\r\\f'), std.trim(''), std.trim('x')]", "[\"a b\",\"\",\"x\"]");
    expect_error("std.trim(1)", "std.trim");
    expect("[std.isEmpty(''), std.isEmpty('a')]", "[true,false]");
    expect("[std.findSubstr('aa', 'aaaa'), std.findSubstr('\u00e9', 'a\u00e9b\u00e9'), "
           "std.findSubstr('', 'abc'), std.findSubstr('abcd', 'abc')]",
           "[[0,1,2],[1,3],[],[]]");
    expect_error("std.findSubstr(1, 'a')", "std.findSubstr");
    expect("std.escapeStringJson('a\"b\\\\c\\n\\t\\u0001\u00e9')",
           "\"\\\"a\\\\\\\"b\\\\\\\\c\\\\n\\\\t\\\\u0001\u00e9\\\"\"");
    expect("std.escapeStringJson(12)", "\"\\\"12\\\"\"");
    expect("std.lines(['a', null, 'b'])", "\"a\\nb\\n\"");
    expect(
        "[std.join(',', ['a', null, 'b']), std.join('', []), std.join([0], [[1], null, [2, 3]])]",
        "[\"a,b\",\"\",[1,0,2,3]]");
    expect_error("std.join(',', ['a', 1])", "std.join");
    expect_error("std.join(1, [])", "std.join");
    expect_error("std.join(',', 'ab')", "std.join");
    expect("std.deepJoin(['a', ['b', ['c', 'd']], []])", "\"abcd\"");
    expect_error("std.deepJoin(['a', 1])", "std.deepJoin");
}

static void test_integers(void **state)
{
    (void)state;
    expect("[std.parseInt('-123'), std.parseInt('0042'), std.parseOctal('777'), "
           "std.parseHex('DeadBeef'), std.parseHex('ff')]",
           "[-123,42,511,3735928559,255]");
    expect_error("std.parseInt('12a')", "12a is not a base 10 integer");
    expect_error("std.parseInt('')", "std.parseInt");
    expect_error("std.parseInt('-')", "std.parseInt");
    expect_error("std.parseInt('+5')", "std.parseInt");
    expect_error("std.parseOctal('8')", "std.parseOctal");
    expect_error("std.parseHex('g')", "std.parseHex");
    expect_error("std.parseInt(5)", "std.parseInt: first argument must be a string");
}

static void test_format(void **state)
{
    (void)state;
    expect("std.format('%s/%d', ['x', 3])", "\"x/3\"");
    expect("'%d %i %u' % [1.9, -1.9, 3]", "\"1 -1 3\"");
    expect("'%05d|%-5d|%+d|% d' % [42, 42, 42, 42]", "\"00042|42   |+42| 42\"");
    expect("'%o %#o %x %#X %5.3x' % [8, 8, 255, 255, 10]", "\"10 010 ff 0XFF   00a\"");
    expect("'%f %.2f %.0f %#.0f %10.3f' % [1.5, 2.675, 2.5, 3, -3.14159]",
           "\"1.500000 2.68 3 3.     -3.142\"");
    expect("'%e %E %.2e %10.1e' % [12345.6789, 0.000123, 0, -1e100]",
           "\"1.234568e+04 1.230000E-04 0.00e+00  -1.0e+100\"");
    expect("'%g %g %g %G %g %#g' % [100000, 1000000, 0.0001, 0.00001, 123.456, 1.5]",
           "\"100000 1000000 0.0001 1E-05 123.456 1.50000\""); /* log10 quirk, as jsonnet */
    expect("'%g' % [1e7]", "\"1e+07\"");
    expect("'%e' % 1000", "\"10.000000e+02\""); /* jsonnet's log10 rounding */
    expect("'%c%c' % [65, '\u00e9']", "\"A\u00e9\"");
    expect("'%s %s' % [[1, 2], {a: 1}]", "\"[1, 2] {\\\"a\\\": 1}\"");
    expect("'%(a)s-%(b)05.1f' % {a: 'x', b: 2.25}", "\"x-002.3\"");
    expect("'%%|%5%|%-5%|' % []", "\"%|    %|%    |\"");
    expect("'%*d|%-*d|%.*f' % [5, 1, 4, 2, 3, 3.14159]", "\"    1|2   |3.142\"");
    expect("'%s' % 'x'", "\"x\"");
    expect("'%s' % [[1, 2]]", "\"[1, 2]\"");
    expect("'%10s|%-10s|' % ['\u00e9', 'ab']", "\"         \u00e9|ab        |\"");
    expect("'%x %d' % [-255.5, -0.5]", "\"-100 0\"");
    expect("'%.3s' % ['abcdef']", "\"abcdef\"");
    expect("'%5.1f%%' % [99.44]", "\" 99.4%\"");
    expect("'%d' % [1e20]", "\"100000000000000000000\"");
    expect("'%.2f' % [0.999]", "\"1.00\"");
    expect("'%.15g' % [0.1]", "\"0.1\"");
    expect("'%(a)s %(a)s' % {a:: 'h'}", "\"h h\"");
    expect("std.mod('%d-%s', [1, 'x'])", "\"1-x\"");
    expect_error("'%s %s' % [1]", "Not enough values to format: 1, expected more than 1");
    expect_error("'%s' % [1, 2]", "Too many values to format: 2, expected 1");
    expect_error("'%z' % [1]", "Unrecognised conversion type: z");
    expect_error("'%' % []", "Truncated format code.");
    expect_error("'%(a' % {}", "Truncated format code.");
    expect_error("'%d' % ['x']", "Format required number at 0, got string");
    expect_error("'%(x)s' % {}", "No such field: x");
    expect_error("'%s' % {a: 1}", "Mapping keys required.");
    expect_error("'%(a)*d' % {a: 1}", "Cannot use * field width with object.");
    expect_error("'%c' % ['xy']", "%c expected 1-sized string got: 2");
    expect_error("'%g' % [0]", "overflow");
    expect_error("std.format(1, [])", "std.format: first argument must be a string");
}

static void test_json(void **state)
{
    (void)state;
    expect("std.parseJson('[1, 2.5, -0, 1e3, \"a\\\\u00e9\\\\n\", true, false, null, "
           "{\"x\": {}}]')",
           "[1,2.5,0,1000,\"a\u00e9\\n\",true,false,null,{\"x\":{}}]");
    expect("std.parseJson(' {\"a\": 1, \"a\": 2, \"b\": [ ]} ')", "{\"a\":2,\"b\":[]}");
    expect("std.parseJson('\"\\\\ud83d\\\\ude00\"')", "\"\U0001F600\"");
    expect("std.parseJson('{\"b\": 1, \"a\": {\"c\": [1, {\"d\": null}]}}').a.c[1]",
           "{\"d\":null}");
    expect_error("std.parseJson('[1,')", "JSON parse error at line 1, column 4");
    expect_error("std.parseJson('{\"a\": }')", "JSON parse error");
    expect_error("std.parseJson('01')", "JSON parse error");
    expect_error("std.parseJson('1e400')", "JSON parse error");
    expect_error("std.parseJson('[1] x')", "JSON parse error");
    expect_error("std.parseJson('\"\\\\ud800\"')", "JSON parse error");
    expect_error("std.parseJson('\"a\\nb\"')", "JSON parse error");
    expect_error("std.parseJson(\"{'a': 1}\")", "JSON parse error");
    expect_error("std.parseJson('')", "JSON parse error");
    expect_error("std.parseJson(1)", "std.parseJson: first argument must be a string");
    /* Nesting is bounded without recursion: 999 levels parse, 100000 fail cleanly. */
    expect("std.length(std.parseJson(std.join('', std.repeat(['['], 999)) + "
           "std.join('', std.repeat([']'], 999))))",
           "1");
    expect_error("std.parseJson(std.repeat('[', 100000))", "nesting");

    expect("std.manifestJson({a: [1, 2], b: {c: 'x'}, d: []})",
           "\"{\\n    \\\"a\\\": [\\n        1,\\n        2\\n    ],\\n    \\\"b\\\": {\\n        "
           "\\\"c\\\": \\\"x\\\"\\n    },\\n    \\\"d\\\": [\\n\\n    ]\\n}\"");
    expect("std.manifestJsonMinified({a: [1, 2], b: {c: 'x'}, d: [], e:: 1})",
           "\"{\\\"a\\\":[1,2],\\\"b\\\":{\\\"c\\\":\\\"x\\\"},\\\"d\\\":[]}\"");
    expect("std.manifestJsonEx([], '  ')", "\"[\\n\\n]\"");
    expect("std.manifestJsonEx({a: {}, b: 0.1}, '  ')",
           "\"{\\n  \\\"a\\\": {\\n\\n  },\\n  \\\"b\\\": 0.1\\n}\"");
    expect("std.manifestJsonEx([1, [2]], ' ', '', ' = ')", "\"[ 1, [  2 ]]\"");
    expect("std.manifestJsonEx({a: 1}, '', '\\n', '=')", "\"{\\n\\\"a\\\"=1\\n}\"");
    expect_error("std.manifestJsonEx({a: [function(x) x]}, '  ')",
                 "Tried to manifest function at [\"a\", 0]");
    expect_error("std.manifestJsonEx({}, 1)", "std.manifestJsonEx");
}

static void test_objects(void **state)
{
    (void)state;
    expect("[std.objectFields({b: 1, a: 2, c:: 3}), std.objectFieldsAll({b: 1, a: 2, c:: 3})]",
           "[[\"a\",\"b\"],[\"a\",\"b\",\"c\"]]");
    expect("[std.objectValues({b: 1, a: 2, c:: 3}), std.objectValuesAll({b: 1, a: 2, c:: 3})]",
           "[[2,1],[2,1,3]]");
    expect("[std.objectHas({a:: 1}, 'a'), std.objectHasAll({a:: 1}, 'a'), "
           "std.objectHas({a: 1}, 'b'), std.objectHasEx({a:: 1}, 'a', true)]",
           "[false,true,false,true]");
    expect("[std.get({a: 1}, 'a'), std.get({a: 1}, 'b'), std.get({a: 1}, 'b', 'd'), "
           "std.get({a:: 1}, 'a'), std.get({a:: 1}, 'a', 5, false)]",
           "[1,null,\"d\",1,5]");
    expect("std.objectFields({a: 1} + {b: 2})", "[\"a\",\"b\"]");
    expect_error("std.objectFields([])", "std.objectFields: first argument must be an object");
    expect_error("std.objectHas({}, 1)", "std.objectHas: second argument must be a string");
    expect_error("std.get([], 'a')", "std.get");
    expect("std.mapWithKey(function(k, v) k + v, {a: '1', b: '2', h:: 'x'})",
           "{\"a\":\"a1\",\"b\":\"b2\"}");
    expect_error("std.mapWithKey(1, {})", "std.mapWithKey");
    expect("std.mergePatch({a: 1, b: {c: 2, d: 3}}, {b: {c: null, e: 4}, f: null, g: {h: null}})",
           "{\"a\":1,\"b\":{\"d\":3,\"e\":4},\"g\":{}}");
    expect("[std.mergePatch([1], {a: 1}), std.mergePatch({a: 1}, 5), std.mergePatch({a: 1}, {})]",
           "[{\"a\":1},5,{\"a\":1}]");
    expect("std.prune({a: null, b: [], c: {d: null}, e: [null, 1, {}], f: 0, g: '', h: false})",
           "{\"e\":[1],\"f\":0,\"g\":\"\",\"h\":false}");
    expect("std.prune([null, [null], 1])", "[1]");
}

static void test_higher_order(void **state)
{
    (void)state;
    expect("std.map(function(x) x * 2, [1, 2, 3])", "[2,4,6]");
    expect("std.map(function(c) c + c, 'ab')", "[\"aa\",\"bb\"]");
    expect("std.mapWithIndex(function(i, x) i + x, [10, 20])", "[10,21]");
    expect("std.filter(function(x) x > 1, [1, 2, 3])", "[2,3]");
    expect_error("std.filter(function(x) 1, [1])", "filter function must return boolean");
    expect_error("std.map(1, [])", "std.map: first argument must be a function");
    expect_error("std.map(function(x) x, 1)", "std.map: second argument");
    expect("std.filterMap(function(x) x > 1, function(x) x * 10, [1, 2, 3])", "[20,30]");
    expect("[std.flatMap(function(x) [x, x], [1, 2]), std.flatMap(function(x) x + '!', 'ab')]",
           "[[1,1,2,2],\"a!b!\"]");
    expect("std.foldl(function(a, b) a + b, [1, 2, 3], 10)", "16");
    expect("std.foldl(function(a, b) [b] + a, [1, 2, 3], [])", "[3,2,1]");
    expect("std.foldr(function(a, b) a + b, ['a', 'b', 'c'], '')", "\"abc\"");
    expect("std.foldr(function(x, acc) acc + [x], [1, 2, 3], [])", "[3,2,1]");
    expect("std.foldl(function(a, b) a + b, 'abc', '')", "\"abc\"");
    expect("std.makeArray(3, function(i) i * i)", "[0,1,4]");
    expect_error("std.makeArray(-1, function(i) i)", "std.makeArray");
    expect("[std.range(2, 5), std.range(5, 2), std.range(1.5, 3.2)]", "[[2,3,4,5],[],[1,2,3]]");
    expect("[std.repeat('ab', 3), std.repeat([1, 2], 2), std.repeat('x', 0)]",
           "[\"ababab\",[1,2,1,2],\"\"]");
    expect_error("std.repeat(1, 2)", "std.repeat");
    expect("std.flattenArrays([[1], [], [2, [3]]])", "[1,2,[3]]");
    expect_error("std.flattenArrays([[1], 2])", "std.flattenArrays");
    expect("[std.reverse([1, 2, 3]), std.reverse([]), std.reverse('ab')]",
           "[[3,2,1],[],[\"b\",\"a\"]]");
    expect("[std.slice([1, 2, 3, 4, 5], 1, 4, 2), std.slice('hello', null, null, 2), "
           "std.slice([1, 2, 3], 0, 10, null), std.slice('h\u00e9llo', 1, 3, 1)]",
           "[[2,4],\"hlo\",[1,2,3],\"\u00e9l\"]");
    expect_error("std.slice('abc', -1, null, null)", "std.slice");
    expect_error("std.slice('abc', 0, 1, 0)", "std.slice");
    expect("[std.member([1, 2], 2), std.member([1, 2], 3), std.member('hello', 'll')]",
           "[true,false,true]");
    expect("[std.count([1, 2, 1, 1], 1), std.find(1, [1, 2, 1]), std.contains([1, [2]], [2])]",
           "[3,[0,2],true]");
    expect("[std.all([]), std.all([true, true]), std.all([true, false]), std.any([]), "
           "std.any([false, true])]",
           "[true,true,false,false,true]");
    expect("std.all([false, 1])", "false"); /* stops at the first false */
    expect_error("std.all([true, 1])", "std.all");
    expect_error("std.any('a')", "std.any");
    expect("[std.sum([]), std.sum([1, 2, 3.5]), std.avg([1, 2, 3, 4])]", "[0,6.5,2.5]");
    expect_error("std.avg([])", "std.avg");
    expect_error("std.sum(['a'])", "std.sum");
    /* Lazy elements survive array-building natives. */
    expect("std.join([], [[error 'x'], [1]])[1]", "1");
    expect("std.flattenArrays([[1, error 'x']])[0]", "1");
}

static void test_sets(void **state)
{
    (void)state;
    expect("std.sort([3, 1, 2, 1])", "[1,1,2,3]");
    expect("std.sort(['b', 'a', 'C', '\u00e9'])", "[\"C\",\"a\",\"b\",\"\u00e9\"]");
    expect("std.sort([{k: 2, v: 'a'}, {k: 1, v: 'b'}, {k: 2, v: 'c'}], function(x) x.k)",
           "[{\"k\":1,\"v\":\"b\"},{\"k\":2,\"v\":\"a\"},{\"k\":2,\"v\":\"c\"}]");
    expect("std.sort([[2, 1], [1, 3], [1, 2]])", "[[1,2],[1,3],[2,1]]");
    expect("std.sort(std.range(1, 100), function(x) -x)[0:3]", "[100,99,98]");
    expect_error("std.sort([1, 'a'])", "");
    expect_error("std.sort([true, false])", "");
    expect("std.uniq([1, 1, 2, 2, 1])", "[1,2,1]");
    expect("std.uniq(['a', 'A', 'b'], std.asciiLower)", "[\"a\",\"b\"]");
    expect("std.set([3, 1, 2, 3, 1])", "[1,2,3]");
    expect("std.set(['b', 'a', 'B'], std.asciiLower)", "[\"a\",\"b\"]");
    expect("std.setInter([1, 2, 3], [2, 3, 4])", "[2,3]");
    expect("std.setUnion([1, 3, 5], [2, 3, 4])", "[1,2,3,4,5]");
    expect("std.setDiff([1, 2, 3, 4], [2, 4])", "[1,3]");
    expect("std.setUnion([{a: 1}], [{a: 1}])", "[{\"a\":1}]");
    expect("std.setInter(['a', 'B'], ['b'], std.asciiLower)", "[\"B\"]");
    expect("[std.setMember(2, [1, 2, 3]), std.setMember(5, [1, 2, 3]), "
           "std.setMember('B', ['a', 'b'], std.asciiLower)]",
           "[true,false,true]");
    expect_error("std.setUnion(1, [])", "std.setUnion");
    expect_error("std.sort([], 1)", "std.sort: second argument must be a function");
}

static void test_encodings(void **state)
{
    (void)state;
    expect("[std.base64('hello world'), std.base64([0, 255, 128]), std.base64(''), "
           "std.base64('\u00e9')]",
           "[\"aGVsbG8gd29ybGQ=\",\"AP+A\",\"\",\"6Q==\"]");
    expect("[std.base64Decode('aGVsbG8gd29ybGQ='), std.base64Decode(''), "
           "std.base64DecodeBytes('AP+A'), std.base64Decode('6Q==')]",
           "[\"hello world\",\"\",[0,255,128],\"\u00e9\"]");
    expect_error("std.base64([256])", "std.base64");
    expect_error("std.base64('\u20ac')", "std.base64");
    expect_error("std.base64Decode('aGVsbG8=x')", "Not a base64 encoded string");
    expect_error("std.base64Decode('a===')", "Not a base64 encoded string");
    expect_error("std.base64Decode('YW!j')", "Not a base64 encoded string");
    expect_error("std.base64Decode('=aaa')", "Not a base64 encoded string");
    expect_error("std.base64Decode(1)", "std.base64Decode");
    expect("[std.md5(''), std.md5('hello'), std.md5('\u00e9')]",
           "[\"d41d8cd98f00b204e9800998ecf8427e\",\"5d41402abc4b2a76b9719d911017c592\","
           "\"66ddcd97cfdeabb2f6fb8a999b4bc76f\"]");
    expect("std.sha256('abc')",
           "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"");
    expect_error("std.md5(1)", "std.md5");
    expect("std.encodeUTF8('a\u00e9\u20ac')", "[97,195,169,226,130,172]");
    expect("[std.decodeUTF8([97, 195, 169, 226, 130, 172]), std.decodeUTF8([255, 97])]",
           "[\"a\u00e9\u20ac\",\"\uFFFDa\"]");
    expect_error("std.decodeUTF8([300])", "std.decodeUTF8");
    expect_error("std.decodeUTF8('a')", "std.decodeUTF8");
}

static void test_math(void **state)
{
    (void)state;
    expect("[std.floor(-1.5), std.ceil(-1.5), std.abs(-3), std.sign(-0.5), std.sign(0), "
           "std.max(1, 2), std.min(1, 2), std.pow(2, 10), std.sqrt(16), std.round(2.5), "
           "std.round(-2.5), std.clamp(5, 1, 3)]",
           "[-2,-1,3,-1,0,2,1,1024,4,3,-2,3]");
    expect("[std.exp(0), std.log(1), std.sin(0), std.cos(0), std.tan(0), std.asin(0), "
           "std.acos(1), std.atan(0)]",
           "[1,0,0,1,0,0,0,0]");
    expect("[std.mod(7, 3), std.mod(-7, 3), std.modulo(7.5, 2), std.mantissa(8), "
           "std.exponent(8)]",
           "[1,-1,1.5,0.5,4]");
    expect_error("std.log(0)", "overflow");
    expect_error("std.sqrt(-1)", "not a number");
    expect_error("std.pow(10, 400)", "overflow");
    expect_error("std.modulo(1, 0)", "division by zero");
    expect_error("std.abs('x')", "std.abs: first argument must be a number, got string");
    expect_error("std.max(1, 'a')", "std.max: second argument must be a number");
    expect_error("std.mod(true, 1)", "Operator % cannot be used on types boolean and number");
}

static void test_limits(void **state)
{
    struct sd_jn_limits lim = {0};
    struct sd_buf res = SD_BUF_INIT;

    (void)state;
    /* Big inputs run in one native call each and stay linear. */
    expect("std.length(std.join(',', std.makeArray(100000, function(i) 'x')))", "199999");
    expect("std.length(std.split(std.repeat('a,', 100000), ','))", "100001");
    expect("std.sort(std.makeArray(50000, function(i) (i * 7919) % 50000))[49999]", "49999");
    expect("std.length(std.manifestJsonMinified(std.range(1, 10000)))", "48895");
    expect("std.length(std.parseJson(std.manifestJsonMinified(std.range(1, 10000))))", "10000");
    /* The step limit stops natives on huge inputs. */
    lim.max_steps = 10000;
    assert_int_equal(run("std.length(std.range(1, 1000000))", &lim, &res), SD_EINVAL);
    assert_int_equal(run("std.length(std.repeat('abc', 10000000))", &lim, &res), SD_EINVAL);
    sd_buf_fini(&res);
}

/* go-jsonnet 0.22's functions whose errors libjsonnet 0.18 (the differential oracle) does not
 * share; the values are in jsonnet_cases/std_go022.jsonnet-cases. */
static void test_go022(void **state)
{
    struct sd_jn_limits lim = {0};
    struct sd_buf res = SD_BUF_INIT;

    (void)state;
    expect_error("std.parseYaml('a: [1, 2')", "failed to parse YAML: yaml: line ");
    expect_error("std.parseYaml('a: .inf')", "unsupported value");
    expect_error("std.parseYaml('a: *nope')", "unknown anchor 'nope'");
    expect_error("std.parseYaml('? [a]\\n: 1')", "unsupported map key");
    expect_error("std.parseYaml('a: 1\\n---\\nb: [')", "failed to parse YAML");
    expect_error("std.removeAt([1, 2, 3], 3)", "Index 3 out of bounds, not within [0, 3)");
    expect_error("std.removeAt([1, 2, 3], -1)", "out of bounds");
    expect_error("std.removeAt([1, 2, 3], 0.5)", "Expected an integer");
    expect_error("std.minArray([])", "Expected at least one element in array. Got none");
    expect_error("std.maxArray([1], onEmpty=error 'eager')", "eager");
    expect_error("std.log2(-1)", "not a number");
    expect_error("std.xnor(true, null)", "std.xnor: second argument must be a boolean, got null");
    expect_error("std.isOdd(null)", "std.isOdd: first argument must be a number");
    expect_error("std.manifestToml({ a: [1, null] })", "Tried to manifest \"null\" at [a 1]");
    expect_error("std.manifestToml(1)", "TOML body must be an object. Got number");
    expect_error("std.manifestYamlStream(1)", "manifestYamlStream only takes arrays, got number");
    expect_error("std.manifestPython([function(x) x])", "cannot manifest function");
    expect_error("std.manifestXmlJsonml([1])", "a tag must be a string, got number");
    expect_error("std.trace(1, 2)", "std.trace: first argument must be a string");
    /* go-jsonnet writes nothing for a function inside a YAML document */
    expect("std.manifestYamlDoc({ a: function(x) x })", "\"\\\"a\\\": \"");
    expect("std.parseYaml('y: 1')", "{\"true\":1}"); /* yaml.v2: y is a boolean */
    expect("std.trace('msg', [1])", "[1]");
    /* A deep value stops at the nesting bound instead of the C stack. */
    expect_error("std.manifestPython(std.foldl(function(a, i) [a], std.range(1, 600), 0))",
                 "nested more than");
    expect_error("std.parseYaml(std.repeat('[', 2000))", "nested more than 1000 levels");
    expect("std.length(std.flattenDeepArray(std.foldl(function(a, i) [a, i], std.range(1, 3000), "
           "0)))",
           "3001");
    /* An alias bomb costs the steps of its expansion, a fraction of its size in memory. */
    lim.max_steps = 200000;
    lim.max_memory = 16u << 20;
    assert_int_equal(run("std.length(std.parseYaml('a: &a [1,1,1,1,1,1,1,1,1,1]\\n"
                         "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\\n"
                         "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\\n"
                         "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\\n"
                         "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\\n"
                         "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\\n'))",
                         &lim, &res),
                     SD_EINVAL);
    assert_non_null(strstr(sd_buf_cstr(&res), "step"));
    assert_int_equal(run("std.length(std.parseYaml('a: &a [1,1]\\nb: [*a,*a]'))", &lim, &res), 0);
    assert_string_equal(sd_buf_cstr(&res), "2");
    sd_buf_fini(&res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),   cmocka_unit_test(test_types),
        cmocka_unit_test(test_strings), cmocka_unit_test(test_integers),
        cmocka_unit_test(test_format),  cmocka_unit_test(test_json),
        cmocka_unit_test(test_objects), cmocka_unit_test(test_higher_order),
        cmocka_unit_test(test_sets),    cmocka_unit_test(test_encodings),
        cmocka_unit_test(test_math),    cmocka_unit_test(test_limits),
        cmocka_unit_test(test_go022),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
