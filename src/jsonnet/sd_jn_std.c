/* sd_jn_std.c: the std library's table of natives (sorted by name, binary-searched by the
 * compiler), the argument checks the natives share, and the type, number, math and boolean
 * functions and std.trace. Semantics follow libjsonnet 0.18 (the Debian jsonnet CLI) where it
 * has the function and go-jsonnet 0.22 (the reference's engine: its Go builtins, else
 * std.jsonnet) otherwise; errors name the function. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "core/sd_log.h"
#include "core/sd_time.h"
#include "jsonnet/sd_jn_std_int.h"

/* --- shared helpers ---------------------------------------------------------------------- */

const char *sd__jn_ordinal(unsigned argi)
{
    static const char *const names[] = {"first", "second", "third", "fourth", "fifth"};

    return argi < 5 ? names[argi] : "an";
}

static const char *with_article(enum sd_jn_type t)
{
    switch (t) {
    case SD_JN_NULL:
        return "null";
    case SD_JN_BOOL:
        return "a boolean";
    case SD_JN_NUMBER:
        return "a number";
    case SD_JN_STRING:
        return "a string";
    case SD_JN_ARRAY:
        return "an array";
    case SD_JN_OBJECT:
        return "an object";
    case SD_JN_FUNCTION:
        return "a function";
    default:
        return "a value";
    }
}

int sd__jn_want(struct sd_jn_vm *vm, const char *fn, unsigned argi, const struct sd_jn_val *v,
                enum sd_jn_type t)
{
    if (v->type == t) {
        return 0;
    }
    return sd_jn_throw(vm, "std.%s: %s argument must be %s, got %s", fn, sd__jn_ordinal(argi),
                       with_article(t), sd_jn_type_name(v->type));
}

int sd__jn_want_str_or_arr(struct sd_jn_vm *vm, const char *fn, unsigned argi,
                           const struct sd_jn_val *v)
{
    if (v->type == SD_JN_STRING || v->type == SD_JN_ARRAY) {
        return 0;
    }
    return sd_jn_throw(vm, "std.%s: %s argument must be a string or an array, got %s", fn,
                       sd__jn_ordinal(argi), sd_jn_type_name(v->type));
}

int sd__jn_want_int(struct sd_jn_vm *vm, const char *fn, unsigned argi, const struct sd_jn_val *v,
                    double *out)
{
    if (sd__jn_want(vm, fn, argi, v, SD_JN_NUMBER) != 0) {
        return SD_JN_ERR;
    }
    if (!isfinite(v->u.n)) {
        return sd_jn_throw(vm, "std.%s: %s argument must be a finite number", fn,
                           sd__jn_ordinal(argi));
    }
    *out = trunc(v->u.n);
    return 0;
}

void sd__jn_buf_string(struct sd_jn_vm *vm, struct sd_buf *b, struct sd_jn_val *out)
{
    *out = sd_jn_string(vm, b->len ? b->data : "", b->len);
}

int sd__jn_number_result(struct sd_jn_vm *vm, double x, struct sd_jn_val *out)
{
    if (isnan(x)) {
        return sd_jn_throw(vm, "not a number");
    }
    if (isinf(x)) {
        return sd_jn_throw(vm, "overflow");
    }
    *out = sd_jn_number(x);
    return 0;
}

int sd__jn_key_cmp(struct sd_jn_vm *vm, const struct sd_jn_val *a, const struct sd_jn_val *b,
                   int eq_first, int *cmp)
{
    int eq;

    if (a->type == SD_JN_NUMBER && b->type == SD_JN_NUMBER) {
        *cmp = a->u.n < b->u.n ? -1 : (a->u.n > b->u.n ? 1 : 0);
        return 0;
    }
    if (a->type == SD_JN_STRING && b->type == SD_JN_STRING) {
        int c = sd_jn_str_cmp(a->u.s, b->u.s);

        *cmp = c < 0 ? -1 : (c > 0 ? 1 : 0);
        return 0;
    }
    if (eq_first) {
        if (sd_jn_equal(vm, a, b, &eq) != 0) {
            return SD_JN_ERR;
        }
        if (eq) {
            *cmp = 0;
            return 0;
        }
    }
    return sd_jn_compare(vm, a, b, cmp);
}

/* --- types ------------------------------------------------------------------------------- */

SD__JN_NATIVE(type)
{
    const char *t = sd_jn_type_name(args[0].type);

    *out = sd_jn_string(vm, t, strlen(t));
    return 0;
}

SD__JN_NATIVE(isString)
{
    (void)vm;
    *out = sd_jn_bool(args[0].type == SD_JN_STRING);
    return 0;
}

SD__JN_NATIVE(isNumber)
{
    (void)vm;
    *out = sd_jn_bool(args[0].type == SD_JN_NUMBER);
    return 0;
}

SD__JN_NATIVE(isBoolean)
{
    (void)vm;
    *out = sd_jn_bool(args[0].type == SD_JN_BOOL);
    return 0;
}

SD__JN_NATIVE(isObject)
{
    (void)vm;
    *out = sd_jn_bool(args[0].type == SD_JN_OBJECT);
    return 0;
}

SD__JN_NATIVE(isArray)
{
    (void)vm;
    *out = sd_jn_bool(args[0].type == SD_JN_ARRAY);
    return 0;
}

SD__JN_NATIVE(isFunction)
{
    (void)vm;
    *out = sd_jn_bool(args[0].type == SD_JN_FUNCTION);
    return 0;
}

SD__JN_NATIVE(length)
{
    struct sd_jn_str **names;
    size_t n;

    switch (args[0].type) {
    case SD_JN_STRING:
        *out = sd_jn_number((double)args[0].u.s->ncp);
        return 0;
    case SD_JN_ARRAY:
        *out = sd_jn_number((double)sd_jn_arr_len(args[0].u.a));
        return 0;
    case SD_JN_OBJECT:
        if (sd_jn_obj_fields(vm, args[0].u.o, 0, &names, &n) != 0) {
            return SD_JN_ERR;
        }
        *out = sd_jn_number((double)n);
        return 0;
    case SD_JN_FUNCTION:
        *out = sd_jn_number((double)sd_jn_func_nparams(args[0].u.f));
        return 0;
    default:
        return sd_jn_throw(vm,
                           "std.length: argument must be a string, an array, an object or a "
                           "function, got %s",
                           sd_jn_type_name(args[0].type));
    }
}

SD__JN_NATIVE(toString)
{
    struct sd_buf b = sd_jn_buf(vm);

    if (args[0].type == SD_JN_STRING) {
        *out = args[0];
        return 0;
    }
    if (sd_jn_to_string(vm, &args[0], &b) != 0) {
        sd_buf_fini(&b);
        return SD_JN_ERR;
    }
    sd__jn_buf_string(vm, &b, out);
    sd_buf_fini(&b);
    return 0;
}

SD__JN_NATIVE(id)
{
    (void)vm;
    *out = args[0];
    return 0;
}

SD__JN_NATIVE(equals)
{
    int eq;

    if (sd_jn_equal(vm, &args[0], &args[1], &eq) != 0) {
        return SD_JN_ERR;
    }
    *out = sd_jn_bool(eq);
    return 0;
}

SD__JN_NATIVE(primitiveEquals)
{
    int eq;
    unsigned i;

    for (i = 0; i < 2; i++) {
        if (args[i].type == SD_JN_ARRAY || args[i].type == SD_JN_OBJECT ||
            args[i].type == SD_JN_FUNCTION) {
            return sd_jn_throw(vm, "std.primitiveEquals: operates on primitive types, got %s",
                               sd_jn_type_name(args[i].type));
        }
    }
    if (sd_jn_equal(vm, &args[0], &args[1], &eq) != 0) {
        return SD_JN_ERR;
    }
    *out = sd_jn_bool(eq);
    return 0;
}

SD__JN_NATIVE(assertEqual)
{
    struct sd_buf a = sd_jn_buf(vm);
    struct sd_buf b = sd_jn_buf(vm);
    int eq;
    int rc = SD_JN_ERR;

    if (sd_jn_equal(vm, &args[0], &args[1], &eq) != 0) {
        goto done;
    }
    if (eq) {
        *out = sd_jn_bool(1);
        rc = 0;
        goto done;
    }
    if (sd_jn_to_string(vm, &args[0], &a) != 0 || sd_jn_to_string(vm, &args[1], &b) != 0) {
        goto done;
    }
    rc = sd_jn_throw(vm, "Assertion failed. %.*s != %.*s", (int)a.len, a.len ? a.data : "",
                     (int)b.len, b.len ? b.data : "");
done:
    sd_buf_fini(&a);
    sd_buf_fini(&b);
    return rc;
}

/* --- numbers ----------------------------------------------------------------------------- */

/* One number argument x of std.<fn>, result f(x) checked for overflow. */
static int math1(struct sd_jn_vm *vm, const char *fn, const struct sd_jn_val *args,
                 double (*f)(double), struct sd_jn_val *out)
{
    if (sd__jn_want(vm, fn, 0, &args[0], SD_JN_NUMBER) != 0) {
        return SD_JN_ERR;
    }
    return sd__jn_number_result(vm, f(args[0].u.n), out);
}

SD__JN_NATIVE(floor)
{
    return math1(vm, "floor", args, floor, out);
}

SD__JN_NATIVE(ceil)
{
    return math1(vm, "ceil", args, ceil, out);
}

SD__JN_NATIVE(sqrt)
{
    return math1(vm, "sqrt", args, sqrt, out);
}

SD__JN_NATIVE(sin)
{
    return math1(vm, "sin", args, sin, out);
}

SD__JN_NATIVE(cos)
{
    return math1(vm, "cos", args, cos, out);
}

SD__JN_NATIVE(tan)
{
    return math1(vm, "tan", args, tan, out);
}

SD__JN_NATIVE(asin)
{
    return math1(vm, "asin", args, asin, out);
}

SD__JN_NATIVE(acos)
{
    return math1(vm, "acos", args, acos, out);
}

SD__JN_NATIVE(atan)
{
    return math1(vm, "atan", args, atan, out);
}

SD__JN_NATIVE(exp)
{
    return math1(vm, "exp", args, exp, out);
}

SD__JN_NATIVE(log)
{
    return math1(vm, "log", args, log, out);
}

static double round_half_up(double x)
{
    return floor(x + 0.5);
}

SD__JN_NATIVE(round)
{
    return math1(vm, "round", args, round_half_up, out);
}

SD__JN_NATIVE(abs)
{
    return math1(vm, "abs", args, fabs, out);
}

SD__JN_NATIVE(sign)
{
    if (sd__jn_want(vm, "sign", 0, &args[0], SD_JN_NUMBER) != 0) {
        return SD_JN_ERR;
    }
    *out = sd_jn_number(args[0].u.n > 0 ? 1 : (args[0].u.n < 0 ? -1 : 0));
    return 0;
}

SD__JN_NATIVE(mantissa)
{
    int e;

    if (sd__jn_want(vm, "mantissa", 0, &args[0], SD_JN_NUMBER) != 0) {
        return SD_JN_ERR;
    }
    *out = sd_jn_number(frexp(args[0].u.n, &e));
    return 0;
}

SD__JN_NATIVE(exponent)
{
    int e;

    if (sd__jn_want(vm, "exponent", 0, &args[0], SD_JN_NUMBER) != 0) {
        return SD_JN_ERR;
    }
    (void)frexp(args[0].u.n, &e);
    *out = sd_jn_number((double)e);
    return 0;
}

static int two_numbers(struct sd_jn_vm *vm, const char *fn, const struct sd_jn_val *args)
{
    if (sd__jn_want(vm, fn, 0, &args[0], SD_JN_NUMBER) != 0 ||
        sd__jn_want(vm, fn, 1, &args[1], SD_JN_NUMBER) != 0) {
        return SD_JN_ERR;
    }
    return 0;
}

SD__JN_NATIVE(pow)
{
    if (two_numbers(vm, "pow", args) != 0) {
        return SD_JN_ERR;
    }
    return sd__jn_number_result(vm, pow(args[0].u.n, args[1].u.n), out);
}

SD__JN_NATIVE(max)
{
    if (two_numbers(vm, "max", args) != 0) {
        return SD_JN_ERR;
    }
    *out = args[0].u.n > args[1].u.n ? args[0] : args[1];
    return 0;
}

SD__JN_NATIVE(min)
{
    if (two_numbers(vm, "min", args) != 0) {
        return SD_JN_ERR;
    }
    *out = args[0].u.n < args[1].u.n ? args[0] : args[1];
    return 0;
}

SD__JN_NATIVE(clamp)
{
    unsigned i;

    for (i = 0; i < 3; i++) {
        if (sd__jn_want(vm, "clamp", i, &args[i], SD_JN_NUMBER) != 0) {
            return SD_JN_ERR;
        }
    }
    if (args[0].u.n < args[1].u.n) {
        *out = args[1];
    } else if (args[0].u.n > args[2].u.n) {
        *out = args[2];
    } else {
        *out = args[0];
    }
    return 0;
}

SD__JN_NATIVE(modulo)
{
    if (two_numbers(vm, "modulo", args) != 0) {
        return SD_JN_ERR;
    }
    if (args[1].u.n == 0) {
        return sd_jn_throw(vm, "division by zero.");
    }
    return sd__jn_number_result(vm, fmod(args[0].u.n, args[1].u.n), out);
}

SD__JN_NATIVE(mod)
{
    if (args[0].type == SD_JN_NUMBER && args[1].type == SD_JN_NUMBER) {
        return sd__jn_std_modulo(vm, args, out);
    }
    if (args[0].type == SD_JN_STRING) {
        return sd_jn_format(vm, args[0].u.s, &args[1], out);
    }
    return sd_jn_throw(vm, "Operator %% cannot be used on types %s and %s.",
                       sd_jn_type_name(args[0].type), sd_jn_type_name(args[1].type));
}

static double deg2rad(double x)
{
    return x * SD_JN_STD_PI / 180;
}

static double rad2deg(double x)
{
    return x * 180 / SD_JN_STD_PI;
}

/* std.log(x) / std.log(2), as std.jsonnet defines it (not log2(): the last bit can differ). */
static double log2_std(double x)
{
    return log(x) / log(2);
}

static double log10_std(double x)
{
    return log(x) / log(10);
}

SD__JN_NATIVE(deg2rad)
{
    return math1(vm, "deg2rad", args, deg2rad, out);
}

SD__JN_NATIVE(rad2deg)
{
    return math1(vm, "rad2deg", args, rad2deg, out);
}

SD__JN_NATIVE(log2)
{
    return math1(vm, "log2", args, log2_std, out);
}

SD__JN_NATIVE(log10)
{
    return math1(vm, "log10", args, log10_std, out);
}

SD__JN_NATIVE(atan2)
{
    if (two_numbers(vm, "atan2", args) != 0) {
        return SD_JN_ERR;
    }
    return sd__jn_number_result(vm, atan2(args[0].u.n, args[1].u.n), out);
}

SD__JN_NATIVE(hypot)
{
    if (two_numbers(vm, "hypot", args) != 0) {
        return SD_JN_ERR;
    }
    return sd__jn_number_result(vm, hypot(args[0].u.n, args[1].u.n), out);
}

/* isEven/isOdd look at the integral part (2.5 is even), isInteger/isDecimal at the fraction,
 * as go-jsonnet's builtins (not std.jsonnet's round-based definitions). */
static int num_pred(struct sd_jn_vm *vm, const char *fn, const struct sd_jn_val *args,
                    double *ipart, double *frac)
{
    if (sd__jn_want(vm, fn, 0, &args[0], SD_JN_NUMBER) != 0) {
        return SD_JN_ERR;
    }
    *frac = modf(args[0].u.n, ipart);
    return 0;
}

SD__JN_NATIVE(isEven)
{
    double ip;
    double fr;

    if (num_pred(vm, "isEven", args, &ip, &fr) != 0) {
        return SD_JN_ERR;
    }
    *out = sd_jn_bool(fmod(ip, 2) == 0);
    return 0;
}

SD__JN_NATIVE(isOdd)
{
    double ip;
    double fr;

    if (num_pred(vm, "isOdd", args, &ip, &fr) != 0) {
        return SD_JN_ERR;
    }
    *out = sd_jn_bool(fmod(ip, 2) != 0);
    return 0;
}

SD__JN_NATIVE(isInteger)
{
    double ip;
    double fr;

    if (num_pred(vm, "isInteger", args, &ip, &fr) != 0) {
        return SD_JN_ERR;
    }
    *out = sd_jn_bool(fr == 0);
    return 0;
}

SD__JN_NATIVE(isDecimal)
{
    double ip;
    double fr;

    if (num_pred(vm, "isDecimal", args, &ip, &fr) != 0) {
        return SD_JN_ERR;
    }
    *out = sd_jn_bool(fr != 0);
    return 0;
}

/* --- booleans and misc ------------------------------------------------------------------- */

SD__JN_NATIVE(isNull)
{
    (void)vm;
    *out = sd_jn_bool(args[0].type == SD_JN_NULL);
    return 0;
}

static int two_booleans(struct sd_jn_vm *vm, const char *fn, const struct sd_jn_val *args)
{
    if (sd__jn_want(vm, fn, 0, &args[0], SD_JN_BOOL) != 0 ||
        sd__jn_want(vm, fn, 1, &args[1], SD_JN_BOOL) != 0) {
        return SD_JN_ERR;
    }
    return 0;
}

SD__JN_NATIVE(xor)
{
    if (two_booleans(vm, "xor", args) != 0) {
        return SD_JN_ERR;
    }
    *out = sd_jn_bool(args[0].u.b != args[1].u.b);
    return 0;
}

SD__JN_NATIVE(xnor)
{
    if (two_booleans(vm, "xnor", args) != 0) {
        return SD_JN_ERR;
    }
    *out = sd_jn_bool(args[0].u.b == args[1].u.b);
    return 0;
}

/* std.trace(str, rest): go-jsonnet prints "TRACE: <file>:<line> <str>" to stderr. A service
 * evaluates templates per record, so the line goes to the debug log instead, at most
 * SD__JN_TRACE_PER_SEC lines a second for the whole process (the rest are dropped). */
#define SD__JN_TRACE_PER_SEC 10

SD__JN_NATIVE(trace)
{
    static _Atomic int64_t window_s;
    static _Atomic int used;
    const char *file;
    unsigned line;
    int64_t now_s = sd_mono_ms() / 1000;
    int64_t w = atomic_load(&window_s);

    if (sd__jn_want(vm, "trace", 0, &args[0], SD_JN_STRING) != 0) {
        return SD_JN_ERR;
    }
    if (w != now_s && atomic_compare_exchange_strong(&window_s, &w, now_s)) {
        atomic_store(&used, 0);
    }
    if (atomic_fetch_add(&used, 1) < SD__JN_TRACE_PER_SEC) {
        sd_jn_call_site(vm, &file, &line);
        sd_log_debug("jsonnet", "TRACE: %s:%u %.*s", file, line, (int)args[0].u.s->len,
                     args[0].u.s->data);
    }
    *out = args[1];
    return 0;
}

/* --- the table --------------------------------------------------------------------------- */

/* clang-format off */
#define N1(name, p0) {#name, sd__jn_std_##name, 1, 1, {p0, NULL, NULL, NULL}}
#define N2(name, p0, p1) {#name, sd__jn_std_##name, 2, 2, {p0, p1, NULL, NULL}}
#define N3(name, p0, p1, p2) {#name, sd__jn_std_##name, 3, 3, {p0, p1, p2, NULL}}
#define N4(name, p0, p1, p2, p3) {#name, sd__jn_std_##name, 4, 4, {p0, p1, p2, p3}}
/* req of n parameters are required, the rest optional. */
#define NOPT(name, n, req, p0, p1, p2, p3) {#name, sd__jn_std_##name, n, req, {p0, p1, p2, p3}}
/* clang-format on */

const struct sd_jn_native sd_jn_std_natives[] = {
    N1(abs, "n"),
    N1(acos, "x"),
    N1(all, "arr"),
    N1(any, "arr"),
    N1(asciiLower, "str"),
    N1(asciiUpper, "str"),
    N1(asin, "x"),
    N2(assertEqual, "a", "b"),
    N1(atan, "x"),
    N2(atan2, "y", "x"),
    N1(avg, "arr"),
    N1(base64, "input"),
    N1(base64Decode, "str"),
    N1(base64DecodeBytes, "str"),
    N1(ceil, "x"),
    N1(char, "n"),
    N3(clamp, "x", "minVal", "maxVal"),
    N1(codepoint, "str"),
    N2(contains, "arr", "elem"),
    N1(cos, "x"),
    N2(count, "arr", "x"),
    N1(decodeUTF8, "arr"),
    N1(deepJoin, "arr"),
    N1(deg2rad, "x"),
    N1(encodeUTF8, "str"),
    N2(endsWith, "a", "b"),
    N2(equals, "a", "b"),
    N2(equalsIgnoreCase, "str1", "str2"),
    N1(escapeStringBash, "str_"),
    N1(escapeStringDollars, "str_"),
    N1(escapeStringJson, "str_"),
    N1(escapeStringPython, "str"),
    N1(escapeStringXML, "str_"),
    N1(exp, "x"),
    N1(exponent, "x"),
    N2(filter, "func", "arr"),
    N3(filterMap, "filter_func", "map_func", "arr"),
    N2(find, "value", "arr"),
    N2(findSubstr, "pat", "str"),
    N2(flatMap, "func", "arr"),
    N1(flattenArrays, "arrs"),
    N1(flattenDeepArray, "value"),
    N1(floor, "x"),
    N3(foldl, "func", "arr", "init"),
    N3(foldr, "func", "arr", "init"),
    N2(format, "str", "vals"),
    NOPT(get, 4, 2, "o", "f", "default", "inc_hidden"),
    N2(hypot, "x", "y"),
    N1(id, "x"),
    N1(isArray, "v"),
    N1(isBoolean, "v"),
    N1(isDecimal, "x"),
    N1(isEmpty, "str"),
    N1(isEven, "x"),
    N1(isFunction, "v"),
    N1(isInteger, "x"),
    N1(isNull, "v"),
    N1(isNumber, "v"),
    N1(isObject, "v"),
    N1(isOdd, "x"),
    N1(isString, "v"),
    N2(join, "sep", "arr"),
    N1(length, "x"),
    N1(lines, "arr"),
    N1(log, "x"),
    N1(log10, "x"),
    N1(log2, "x"),
    N2(lstripChars, "str", "chars"),
    N2(makeArray, "sz", "func"),
    N1(manifestIni, "ini"),
    N1(manifestJson, "value"),
    NOPT(manifestJsonEx, 4, 2, "value", "indent", "newline", "key_val_sep"),
    N1(manifestJsonMinified, "value"),
    N1(manifestPython, "v"),
    N1(manifestPythonVars, "conf"),
    N1(manifestToml, "value"),
    N2(manifestTomlEx, "value", "indent"),
    N1(manifestXmlJsonml, "value"),
    NOPT(manifestYamlDoc, 3, 1, "value", "indent_array_in_object", "quote_keys", NULL),
    NOPT(manifestYamlStream, 4, 1, "value", "indent_array_in_object", "c_document_end",
         "quote_keys"),
    N1(mantissa, "x"),
    N2(map, "func", "arr"),
    N2(mapWithIndex, "func", "arr"),
    N2(mapWithKey, "func", "obj"),
    N2(max, "a", "b"),
    NOPT(maxArray, 3, 1, "arr", "keyF", "onEmpty", NULL),
    N1(md5, "s"),
    N2(member, "arr", "x"),
    N2(mergePatch, "target", "patch"),
    N2(min, "a", "b"),
    NOPT(minArray, 3, 1, "arr", "keyF", "onEmpty", NULL),
    N2(mod, "a", "b"),
    N2(modulo, "a", "b"),
    N1(objectFields, "o"),
    N1(objectFieldsAll, "o"),
    N2(objectFieldsEx, "obj", "inc_hidden"),
    N2(objectHas, "o", "f"),
    N2(objectHasAll, "o", "f"),
    N3(objectHasEx, "obj", "fname", "inc_hidden"),
    N1(objectKeysValues, "o"),
    N1(objectKeysValuesAll, "o"),
    N2(objectRemoveKey, "obj", "key"),
    N1(objectValues, "o"),
    N1(objectValuesAll, "o"),
    N1(parseHex, "str"),
    N1(parseInt, "str"),
    N1(parseJson, "str"),
    N1(parseOctal, "str"),
    N1(parseYaml, "str"),
    N2(pow, "x", "n"),
    N2(primitiveEquals, "a", "b"),
    N1(prune, "a"),
    N1(rad2deg, "x"),
    N2(range, "from", "to"),
    N2(remove, "arr", "elem"),
    N2(removeAt, "arr", "i"),
    N2(repeat, "what", "count"),
    N1(reverse, "arr"),
    N1(round, "x"),
    N2(rstripChars, "str", "chars"),
    NOPT(set, 2, 1, "arr", "keyF", NULL, NULL),
    NOPT(setDiff, 3, 2, "a", "b", "keyF", NULL),
    NOPT(setInter, 3, 2, "a", "b", "keyF", NULL),
    NOPT(setMember, 3, 2, "x", "arr", "keyF", NULL),
    NOPT(setUnion, 3, 2, "a", "b", "keyF", NULL),
    N1(sha1, "str"),
    N1(sha256, "str"),
    N1(sha3, "s"),
    N1(sha512, "str"),
    N1(sign, "n"),
    N1(sin, "x"),
    N4(slice, "indexable", "index", "end", "step"),
    NOPT(sort, 2, 1, "arr", "keyF", NULL, NULL),
    N2(split, "str", "c"),
    N3(splitLimit, "str", "c", "maxsplits"),
    N3(splitLimitR, "str", "c", "maxsplits"),
    N1(sqrt, "x"),
    N2(startsWith, "a", "b"),
    N3(strReplace, "str", "from", "to"),
    N1(stringChars, "str"),
    N2(stripChars, "str", "chars"),
    N3(substr, "str", "from", "len"),
    N1(sum, "arr"),
    N1(tan, "x"),
    N1(toString, "a"),
    N2(trace, "str", "rest"),
    N1(trim, "str"),
    N1(type, "x"),
    NOPT(uniq, 2, 1, "arr", "keyF", NULL, NULL),
    N2(xnor, "x", "y"),
    N2(xor, "x", "y"),
};

const size_t sd_jn_std_nnatives = sizeof(sd_jn_std_natives) / sizeof(sd_jn_std_natives[0]);
