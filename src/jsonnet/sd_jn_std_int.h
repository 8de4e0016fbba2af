/* sd_jn_std_int.h: private to the std library (sd_jn_std*.c): the natives each file defines, and
 * the argument checks and buffer helpers they share. The table of natives is in sd_jn_std.c. */
#ifndef SD_JN_STD_INT_H
#define SD_JN_STD_INT_H

#include <stddef.h>
#include <stdint.h>

#include "core/sd_buf.h"
#include "jsonnet/sd_jn_value.h"

/* Steps charged per byte of string processed: one per 16 bytes (plus one per call). */
#define SD__JN_STR_TICKS(len) (1 + (uint64_t)(len) / 16)

/* Steps for a count given as a double, saturated (a huge count then fails the step limit
 * instead of overflowing a conversion). */
#define SD__JN_TICKS_OF(x) ((x) > 1e15 ? (uint64_t)1e15 : ((x) > 0 ? (uint64_t)(x) : 0))

/* Raises "std.<fn>: <ordinal> argument must be <a type>, got <type>" unless v has type t. argi is
 * 0-based. Returns 0 or SD_JN_ERR. */
int sd__jn_want(struct sd_jn_vm *vm, const char *fn, unsigned argi, const struct sd_jn_val *v,
                enum sd_jn_type t);
/* As sd__jn_want for "a string or an array" (either type passes). */
int sd__jn_want_str_or_arr(struct sd_jn_vm *vm, const char *fn, unsigned argi,
                           const struct sd_jn_val *v);
/* "first", "second", ... for argi 0, 1, .... */
const char *sd__jn_ordinal(unsigned argi);
/* Reads a number argument as a whole count/index: it must be a number (else the type error);
 * the fraction is truncated toward zero; NaN and infinities are errors. */
int sd__jn_want_int(struct sd_jn_vm *vm, const char *fn, unsigned argi, const struct sd_jn_val *v,
                    double *out);
/* *out = a new string from the buffer's bytes (valid UTF-8). */
void sd__jn_buf_string(struct sd_jn_vm *vm, struct sd_buf *b, struct sd_jn_val *out);
/* Number result: an error ("overflow" / "not a number") unless x is finite, as jsonnet's math. */
int sd__jn_number_result(struct sd_jn_vm *vm, double x, struct sd_jn_val *out);
/* Ordering of two set/sort keys: fast paths for numbers and strings, sd_jn_compare otherwise.
 * With eq_first, values equal by == (objects too) compare as 0, as jsonnet's set functions
 * test == before <. Returns 0 or SD_JN_ERR. */
int sd__jn_key_cmp(struct sd_jn_vm *vm, const struct sd_jn_val *a, const struct sd_jn_val *b,
                   int eq_first, int *cmp);

#define SD__JN_NATIVE(name)                                                                        \
    int sd__jn_std_##name(struct sd_jn_vm *vm, struct sd_jn_val *args, struct sd_jn_val *out)

/* sd_jn_std.c: types, numbers, math, booleans, misc. */
SD__JN_NATIVE(abs);
SD__JN_NATIVE(acos);
SD__JN_NATIVE(asin);
SD__JN_NATIVE(assertEqual);
SD__JN_NATIVE(atan);
SD__JN_NATIVE(atan2);
SD__JN_NATIVE(ceil);
SD__JN_NATIVE(clamp);
SD__JN_NATIVE(cos);
SD__JN_NATIVE(deg2rad);
SD__JN_NATIVE(equals);
SD__JN_NATIVE(exp);
SD__JN_NATIVE(exponent);
SD__JN_NATIVE(floor);
SD__JN_NATIVE(hypot);
SD__JN_NATIVE(id);
SD__JN_NATIVE(isArray);
SD__JN_NATIVE(isBoolean);
SD__JN_NATIVE(isDecimal);
SD__JN_NATIVE(isEven);
SD__JN_NATIVE(isFunction);
SD__JN_NATIVE(isInteger);
SD__JN_NATIVE(isNull);
SD__JN_NATIVE(isNumber);
SD__JN_NATIVE(isObject);
SD__JN_NATIVE(isOdd);
SD__JN_NATIVE(isString);
SD__JN_NATIVE(length);
SD__JN_NATIVE(log);
SD__JN_NATIVE(log10);
SD__JN_NATIVE(log2);
SD__JN_NATIVE(mantissa);
SD__JN_NATIVE(max);
SD__JN_NATIVE(min);
SD__JN_NATIVE(mod);
SD__JN_NATIVE(modulo);
SD__JN_NATIVE(pow);
SD__JN_NATIVE(primitiveEquals);
SD__JN_NATIVE(rad2deg);
SD__JN_NATIVE(round);
SD__JN_NATIVE(sign);
SD__JN_NATIVE(sin);
SD__JN_NATIVE(sqrt);
SD__JN_NATIVE(tan);
SD__JN_NATIVE(toString);
SD__JN_NATIVE(trace);
SD__JN_NATIVE(type);
SD__JN_NATIVE(xnor);
SD__JN_NATIVE(xor);

/* sd_jn_std_str.c: strings, encodings, hashes. */
SD__JN_NATIVE(asciiLower);
SD__JN_NATIVE(asciiUpper);
SD__JN_NATIVE(base64);
SD__JN_NATIVE(base64Decode);
SD__JN_NATIVE(base64DecodeBytes);
SD__JN_NATIVE(char);
SD__JN_NATIVE(codepoint);
SD__JN_NATIVE(decodeUTF8);
SD__JN_NATIVE(encodeUTF8);
SD__JN_NATIVE(endsWith);
SD__JN_NATIVE(equalsIgnoreCase);
SD__JN_NATIVE(escapeStringBash);
SD__JN_NATIVE(escapeStringDollars);
SD__JN_NATIVE(escapeStringJson);
SD__JN_NATIVE(escapeStringPython);
SD__JN_NATIVE(escapeStringXML);
SD__JN_NATIVE(findSubstr);
SD__JN_NATIVE(format);
SD__JN_NATIVE(isEmpty);
SD__JN_NATIVE(lstripChars);
SD__JN_NATIVE(md5);
SD__JN_NATIVE(parseHex);
SD__JN_NATIVE(parseInt);
SD__JN_NATIVE(parseOctal);
SD__JN_NATIVE(rstripChars);
SD__JN_NATIVE(sha1);
SD__JN_NATIVE(sha256);
SD__JN_NATIVE(sha3);
SD__JN_NATIVE(sha512);
SD__JN_NATIVE(split);
SD__JN_NATIVE(splitLimit);
SD__JN_NATIVE(splitLimitR);
SD__JN_NATIVE(startsWith);
SD__JN_NATIVE(strReplace);
SD__JN_NATIVE(stringChars);
SD__JN_NATIVE(stripChars);
SD__JN_NATIVE(substr);
SD__JN_NATIVE(trim);

/* sd_jn_std_arr.c: arrays, sets, higher-order functions. */
SD__JN_NATIVE(all);
SD__JN_NATIVE(any);
SD__JN_NATIVE(avg);
SD__JN_NATIVE(contains);
SD__JN_NATIVE(count);
SD__JN_NATIVE(deepJoin);
SD__JN_NATIVE(filter);
SD__JN_NATIVE(filterMap);
SD__JN_NATIVE(find);
SD__JN_NATIVE(flatMap);
SD__JN_NATIVE(flattenArrays);
SD__JN_NATIVE(flattenDeepArray);
SD__JN_NATIVE(foldl);
SD__JN_NATIVE(foldr);
SD__JN_NATIVE(join);
SD__JN_NATIVE(lines);
SD__JN_NATIVE(makeArray);
SD__JN_NATIVE(map);
SD__JN_NATIVE(mapWithIndex);
SD__JN_NATIVE(maxArray);
SD__JN_NATIVE(member);
SD__JN_NATIVE(minArray);
SD__JN_NATIVE(range);
SD__JN_NATIVE(remove);
SD__JN_NATIVE(removeAt);
SD__JN_NATIVE(repeat);
SD__JN_NATIVE(reverse);
SD__JN_NATIVE(set);
SD__JN_NATIVE(setDiff);
SD__JN_NATIVE(setInter);
SD__JN_NATIVE(setMember);
SD__JN_NATIVE(setUnion);
SD__JN_NATIVE(slice);
SD__JN_NATIVE(sort);
SD__JN_NATIVE(sum);
SD__JN_NATIVE(uniq);

/* sd_jn_std_obj.c: objects, JSON in and out. */
SD__JN_NATIVE(get);
SD__JN_NATIVE(manifestJson);
SD__JN_NATIVE(manifestJsonEx);
SD__JN_NATIVE(manifestJsonMinified);
SD__JN_NATIVE(mapWithKey);
SD__JN_NATIVE(mergePatch);
SD__JN_NATIVE(objectFields);
SD__JN_NATIVE(objectFieldsAll);
SD__JN_NATIVE(objectFieldsEx);
SD__JN_NATIVE(objectHas);
SD__JN_NATIVE(objectHasAll);
SD__JN_NATIVE(objectHasEx);
SD__JN_NATIVE(objectKeysValues);
SD__JN_NATIVE(objectKeysValuesAll);
SD__JN_NATIVE(objectRemoveKey);
SD__JN_NATIVE(objectValues);
SD__JN_NATIVE(objectValuesAll);
SD__JN_NATIVE(parseJson);
SD__JN_NATIVE(prune);

/* sd_jn_std_fmt.c: manifesting other formats. */
SD__JN_NATIVE(manifestIni);
SD__JN_NATIVE(manifestPython);
SD__JN_NATIVE(manifestPythonVars);
SD__JN_NATIVE(manifestToml);
SD__JN_NATIVE(manifestTomlEx);
SD__JN_NATIVE(manifestXmlJsonml);
SD__JN_NATIVE(manifestYamlDoc);
SD__JN_NATIVE(manifestYamlStream);

/* sd_jn_std_yaml.c: YAML in. */
SD__JN_NATIVE(parseYaml);

#endif
