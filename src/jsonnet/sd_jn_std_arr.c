/* sd_jn_std_arr.c: the std library's array natives: building (range, makeArray, repeat, slice),
 * joining and flattening, higher-order functions (map, filter, folds; strings are accepted where
 * jsonnet indexes them as arrays of characters), searching, sorting (a stable merge sort) and the
 * set functions over sorted arrays with an optional key function.
 *
 * Natives get forced arguments and return finished values, so higher-order natives call their
 * function for every element at once (jsonnet would call it lazily, per element used). Arrays
 * built from other arrays' elements (join, flattenArrays, slice, reverse) keep those elements
 * lazy. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/sd_alloc.h"
#include "jsonnet/sd_jn_std_int.h"

/* An indexable argument: an array, or a string seen as its one-character strings. */
struct seq {
    struct sd_jn_arr *a;       /* the array, or NULL for a string */
    const struct sd_jn_str *s; /* the string */
    size_t n;                  /* elements */
    size_t off;                /* string: byte offset of the next element read by seq_next */
};

static void seq_init(struct seq *q, const struct sd_jn_val *v)
{
    q->a = v->type == SD_JN_ARRAY ? v->u.a : NULL;
    q->s = v->type == SD_JN_STRING ? v->u.s : NULL;
    q->n = q->a ? sd_jn_arr_len(q->a) : q->s->ncp;
    q->off = 0;
}

/* Element i; strings must be read in order (i = 0, 1, ...). */
static int seq_next(struct sd_jn_vm *vm, struct seq *q, size_t i, struct sd_jn_val *out)
{
    uint32_t cp;
    size_t n;

    if (q->a) {
        return sd_jn_arr_get(vm, q->a, i, out);
    }
    n = sd_utf8_decode(q->s->data + q->off, &cp);
    *out = sd_jn_string(vm, q->s->data + q->off, n);
    q->off += n;
    return 0;
}

static int want_func(struct sd_jn_vm *vm, const char *fn, unsigned argi, const struct sd_jn_val *v)
{
    return sd__jn_want(vm, fn, argi, v, SD_JN_FUNCTION);
}

static int want_seq(struct sd_jn_vm *vm, const char *fn, unsigned argi, const struct sd_jn_val *v)
{
    return sd__jn_want_str_or_arr(vm, fn, argi, v);
}

static struct sd_jn_arr *empty_array(struct sd_jn_vm *vm)
{
    return sd_jn_arr_new(vm, 0);
}

/* Concatenates parts[0..n) (arrays) without forcing elements: pairwise, so the copying is
 * O(total x log n) rather than quadratic. parts is overwritten. */
static struct sd_jn_arr *concat_all(struct sd_jn_vm *vm, struct sd_jn_arr **parts, size_t n)
{
    size_t i;
    size_t w;

    if (n == 0) {
        return empty_array(vm);
    }
    while (n > 1) {
        w = 0;
        for (i = 0; i + 1 < n; i += 2) {
            parts[w++] = sd_jn_arr_concat(vm, parts[i], parts[i + 1]);
        }
        if (i < n) {
            parts[w++] = parts[i];
        }
        n = w;
    }
    return parts[0];
}

/* --- building ---------------------------------------------------------------------------- */

SD__JN_NATIVE(makeArray)
{
    double sz;
    size_t i;
    size_t n;
    struct sd_jn_arr *a;
    struct sd_jn_val idx;

    if (sd__jn_want_int(vm, "makeArray", 0, &args[0], &sz) != 0 ||
        want_func(vm, "makeArray", 1, &args[1]) != 0) {
        return SD_JN_ERR;
    }
    if (sz < 0) {
        return sd_jn_throw(vm, "std.makeArray: requires size >= 0, got %g", args[0].u.n);
    }
    if (sd_jn_tick(vm, SD__JN_TICKS_OF(sz)) != 0) {
        return SD_JN_ERR;
    }
    a = sd_jn_arr_new(vm, (size_t)sz);
    n = sd_jn_arr_len(a); /* 0 when it does not fit: no work for an array that failed */
    for (i = 0; i < n; i++) {
        struct sd_jn_thunk *arg;
        idx = sd_jn_number((double)i);
        arg = sd_jn_thunk_of(vm, &idx);
        sd_jn_arr_set_call(vm, a, i, &args[1], 1, &arg);
    }
    *out = sd_jn_array(a);
    return 0;
}

SD__JN_NATIVE(range)
{
    double from;
    double to;
    size_t i;
    size_t n;
    struct sd_jn_arr *a;

    if (sd__jn_want_int(vm, "range", 0, &args[0], &from) != 0 ||
        sd__jn_want_int(vm, "range", 1, &args[1], &to) != 0) {
        return SD_JN_ERR;
    }
    if (to < from) {
        *out = sd_jn_array(empty_array(vm));
        return 0;
    }
    if (sd_jn_tick(vm, SD__JN_TICKS_OF(to - from + 1)) != 0) {
        return SD_JN_ERR;
    }
    a = sd_jn_arr_new(vm, (size_t)(to - from + 1));
    n = sd_jn_arr_len(a); /* 0 when it does not fit: no work for an array that failed */
    for (i = 0; i < n; i++) {
        sd_jn_arr_set(vm, a, i, sd_jn_number(from + (double)i));
    }
    *out = sd_jn_array(a);
    return 0;
}

SD__JN_NATIVE(repeat)
{
    double count;
    size_t i;
    size_t n;
    struct sd_buf b = sd_jn_buf(vm);
    struct sd_jn_arr **parts;

    if (sd__jn_want_int(vm, "repeat", 1, &args[1], &count) != 0) {
        return SD_JN_ERR;
    }
    if (args[0].type != SD_JN_STRING && args[0].type != SD_JN_ARRAY) {
        return sd_jn_throw(vm, "std.repeat: first argument must be an array or a string, got %s",
                           sd_jn_type_name(args[0].type));
    }
    if (count < 0) {
        return sd_jn_throw(vm, "std.repeat: count must be >= 0, got %g", args[1].u.n);
    }
    n = (size_t)count;
    if (args[0].type == SD_JN_STRING) {
        if (sd_jn_tick(vm, SD__JN_TICKS_OF(count * (1 + (double)args[0].u.s->len / 16))) != 0) {
            return SD_JN_ERR;
        }
        sd_buf_reserve(&b, n * args[0].u.s->len);
        for (i = 0; i < n; i++) {
            sd_buf_append(&b, args[0].u.s->data, args[0].u.s->len);
        }
        sd__jn_buf_string(vm, &b, out);
        sd_buf_fini(&b);
        return 0;
    }
    if (sd_jn_tick(vm, SD__JN_TICKS_OF(count * (1 + (double)sd_jn_arr_len(args[0].u.a)))) != 0) {
        return SD_JN_ERR;
    }
    parts = sd_jn_alloc(vm, (n + 1) * sizeof(*parts));
    for (i = 0; i < n; i++) {
        parts[i] = args[0].u.a;
    }
    *out = sd_jn_array(concat_all(vm, parts, n));
    return 0;
}

/* A slice bound: null for the default, else a non-negative integer. */
static int slice_bound(struct sd_jn_vm *vm, const struct sd_jn_val *v, const char *what, double def,
                       double *out)
{
    if (v->type == SD_JN_NULL || v->type == SD_JN_ABSENT) {
        *out = def;
        return 0;
    }
    if (v->type != SD_JN_NUMBER) {
        return sd_jn_throw(vm, "std.slice: %s must be a number or null, got %s", what,
                           sd_jn_type_name(v->type));
    }
    if (v->u.n != floor(v->u.n)) {
        return sd_jn_throw(vm, "std.slice: %s must be an integer, got %g", what, v->u.n);
    }
    if (v->u.n < 0) {
        return sd_jn_throw(vm,
                           "std.slice: negative index, end, and steps are not supported, "
                           "got %s %g",
                           what, v->u.n);
    }
    *out = v->u.n;
    return 0;
}

SD__JN_NATIVE(slice)
{
    double from;
    double end;
    double step;
    double len;
    size_t i;
    size_t n;
    size_t k;
    size_t a;
    size_t b;
    size_t *idx;
    struct sd_buf buf = sd_jn_buf(vm);
    const struct sd_jn_str *s;

    if (want_seq(vm, "slice", 0, &args[0]) != 0) {
        return SD_JN_ERR;
    }
    len =
        args[0].type == SD_JN_ARRAY ? (double)sd_jn_arr_len(args[0].u.a) : (double)args[0].u.s->ncp;
    if (slice_bound(vm, &args[1], "index", 0, &from) != 0 ||
        slice_bound(vm, &args[2], "end", len, &end) != 0 ||
        slice_bound(vm, &args[3], "step", 1, &step) != 0) {
        return SD_JN_ERR;
    }
    if (step == 0) {
        return sd_jn_throw(vm, "std.slice: step must be greater than 0, got 0");
    }
    if (end > len) {
        end = len;
    }
    if (step > len) { /* only the first element is taken; keeps the conversions below exact */
        step = len + 1;
    }
    n = from >= end ? 0 : (size_t)ceil((end - from) / step);
    if (sd_jn_tick(vm, n + 1) != 0) {
        return SD_JN_ERR;
    }
    if (n == 0) {
        *out = args[0].type == SD_JN_ARRAY ? sd_jn_array(empty_array(vm)) : sd_jn_string(vm, "", 0);
        return 0;
    }
    if (args[0].type == SD_JN_ARRAY) {
        if (step == 1) {
            *out = sd_jn_array(sd_jn_arr_slice(vm, args[0].u.a, (size_t)from, (size_t)from + n));
            return 0;
        }
        /* every step-th element, not forced */
        idx = sd_jn_alloc(vm, n * sizeof(*idx));
        for (i = 0; i < n; i++) {
            idx[i] = (size_t)(from + (double)i * step);
        }
        *out = sd_jn_array(sd_jn_arr_pick(vm, args[0].u.a, idx, n));
        return 0;
    }
    s = args[0].u.s;
    if (step == 1) {
        a = sd_jn_str_offset(s, (size_t)from);
        b = sd_jn_str_offset(s, (size_t)from + n);
        *out = sd_jn_string(vm, s->data + a, b - a);
        return 0;
    }
    a = sd_jn_str_offset(s, (size_t)from);
    for (i = 0; i < n; i++) {
        uint32_t cp;

        b = sd_utf8_decode(s->data + a, &cp);
        sd_buf_append(&buf, s->data + a, b);
        /* Advance step code points. */
        for (k = 0; k < (size_t)step && a < s->len; k++) {
            a += sd_utf8_decode(s->data + a, &cp);
        }
    }
    sd__jn_buf_string(vm, &buf, out);
    sd_buf_fini(&buf);
    return 0;
}

SD__JN_NATIVE(reverse)
{
    struct seq q;
    struct sd_jn_arr *a;
    struct sd_jn_val v;
    size_t i;

    if (want_seq(vm, "reverse", 0, &args[0]) != 0) {
        return SD_JN_ERR;
    }
    seq_init(&q, &args[0]);
    if (sd_jn_tick(vm, q.n + 1) != 0) {
        return SD_JN_ERR;
    }
    if (q.a) {
        /* Keep the elements lazy: one-element slices, concatenated. */
        struct sd_jn_arr **parts = sd_jn_alloc(vm, (q.n + 1) * sizeof(*parts));

        for (i = 0; i < q.n; i++) {
            parts[i] = sd_jn_arr_slice(vm, q.a, q.n - 1 - i, q.n - i);
        }
        *out = sd_jn_array(concat_all(vm, parts, q.n));
        return 0;
    }
    a = sd_jn_arr_new(vm, q.n);
    for (i = 0; i < q.n; i++) {
        if (seq_next(vm, &q, i, &v) != 0) {
            return SD_JN_ERR;
        }
        sd_jn_arr_set(vm, a, q.n - 1 - i, v);
    }
    *out = sd_jn_array(a);
    return 0;
}

/* --- joining ----------------------------------------------------------------------------- */

SD__JN_NATIVE(join)
{
    struct sd_jn_arr *arr;
    struct sd_jn_arr **parts;
    struct sd_jn_val e;
    struct sd_buf b = sd_jn_buf(vm);
    size_t n;
    size_t i;
    size_t np = 0;
    int first = 1;

    if (sd__jn_want(vm, "join", 1, &args[1], SD_JN_ARRAY) != 0) {
        return SD_JN_ERR;
    }
    if (args[0].type != SD_JN_STRING && args[0].type != SD_JN_ARRAY) {
        return sd_jn_throw(vm, "std.join: first argument must be a string or an array, got %s",
                           sd_jn_type_name(args[0].type));
    }
    arr = args[1].u.a;
    n = sd_jn_arr_len(arr);
    if (sd_jn_tick(vm, n + 1) != 0) {
        return SD_JN_ERR;
    }
    if (args[0].type == SD_JN_STRING) {
        for (i = 0; i < n; i++) {
            if (sd_jn_arr_get(vm, arr, i, &e) != 0) {
                goto fail;
            }
            if (e.type == SD_JN_NULL) {
                continue;
            }
            if (e.type != SD_JN_STRING) {
                sd_jn_throw(vm, "std.join: expected string but arr[%zu] was %s", i,
                            sd_jn_type_name(e.type));
                goto fail;
            }
            if (!first) {
                sd_buf_append(&b, args[0].u.s->data, args[0].u.s->len);
            }
            first = 0;
            sd_buf_append(&b, e.u.s->data, e.u.s->len);
            if (sd_jn_tick(vm, SD__JN_STR_TICKS(e.u.s->len + args[0].u.s->len)) != 0) {
                goto fail;
            }
        }
        sd__jn_buf_string(vm, &b, out);
        sd_buf_fini(&b);
        return 0;
    }
    parts = sd_jn_alloc(vm, (2 * n + 1) * sizeof(*parts));
    for (i = 0; i < n; i++) {
        if (sd_jn_arr_get(vm, arr, i, &e) != 0) {
            return SD_JN_ERR;
        }
        if (e.type == SD_JN_NULL) {
            continue;
        }
        if (e.type != SD_JN_ARRAY) {
            return sd_jn_throw(vm, "std.join: expected array but arr[%zu] was %s", i,
                               sd_jn_type_name(e.type));
        }
        if (!first && sd_jn_arr_len(args[0].u.a) > 0) {
            parts[np++] = args[0].u.a;
        }
        first = 0;
        parts[np++] = e.u.a;
    }
    *out = sd_jn_array(concat_all(vm, parts, np));
    return 0;
fail:
    sd_buf_fini(&b);
    return SD_JN_ERR;
}

SD__JN_NATIVE(lines)
{
    struct sd_jn_val e;
    struct sd_buf b = sd_jn_buf(vm);
    size_t n;
    size_t i;

    if (sd__jn_want(vm, "lines", 0, &args[0], SD_JN_ARRAY) != 0) {
        return SD_JN_ERR;
    }
    n = sd_jn_arr_len(args[0].u.a);
    if (sd_jn_tick(vm, n + 1) != 0) {
        return SD_JN_ERR;
    }
    for (i = 0; i < n; i++) {
        if (sd_jn_arr_get(vm, args[0].u.a, i, &e) != 0) {
            goto fail;
        }
        if (e.type == SD_JN_NULL) {
            continue;
        }
        if (e.type != SD_JN_STRING) {
            sd_jn_throw(vm, "std.lines: expected string but arr[%zu] was %s", i,
                        sd_jn_type_name(e.type));
            goto fail;
        }
        sd_buf_append(&b, e.u.s->data, e.u.s->len);
        sd_buf_append_char(&b, '\n');
        if (sd_jn_tick(vm, SD__JN_STR_TICKS(e.u.s->len)) != 0) {
            goto fail;
        }
    }
    sd__jn_buf_string(vm, &b, out);
    sd_buf_fini(&b);
    return 0;
fail:
    sd_buf_fini(&b);
    return SD_JN_ERR;
}

SD__JN_NATIVE(deepJoin)
{
    struct frame {
        struct sd_jn_arr *a;
        size_t i;
    };
    struct frame *stack = NULL;
    size_t depth = 0;
    size_t cap = 0;
    struct sd_buf b = sd_jn_buf(vm);
    struct sd_jn_val e = args[0];
    int rc = SD_JN_ERR;

    for (;;) {
        if (sd_jn_tick(vm, 1) != 0) {
            goto done;
        }
        if (e.type == SD_JN_STRING) {
            sd_buf_append(&b, e.u.s->data, e.u.s->len);
        } else if (e.type == SD_JN_ARRAY) {
            if (depth == cap) {
                cap = cap ? cap * 2 : 16;
                stack = sd_xrealloc(stack, cap * sizeof(*stack));
            }
            stack[depth].a = e.u.a;
            stack[depth].i = 0;
            depth++;
        } else {
            sd_jn_throw(vm, "std.deepJoin: expected string or array, got %s",
                        sd_jn_type_name(e.type));
            goto done;
        }
        /* The next element: pop finished arrays. */
        while (depth > 0 && stack[depth - 1].i >= sd_jn_arr_len(stack[depth - 1].a)) {
            depth--;
        }
        if (depth == 0) {
            break;
        }
        if (sd_jn_arr_get(vm, stack[depth - 1].a, stack[depth - 1].i++, &e) != 0) {
            goto done;
        }
    }
    sd__jn_buf_string(vm, &b, out);
    rc = 0;
done:
    free(stack);
    sd_buf_fini(&b);
    return rc;
}

SD__JN_NATIVE(flattenArrays)
{
    struct sd_jn_arr **parts;
    struct sd_jn_val e;
    size_t n;
    size_t i;

    if (sd__jn_want(vm, "flattenArrays", 0, &args[0], SD_JN_ARRAY) != 0) {
        return SD_JN_ERR;
    }
    n = sd_jn_arr_len(args[0].u.a);
    if (sd_jn_tick(vm, n + 1) != 0) {
        return SD_JN_ERR;
    }
    parts = sd_jn_alloc(vm, (n + 1) * sizeof(*parts));
    for (i = 0; i < n; i++) {
        if (sd_jn_arr_get(vm, args[0].u.a, i, &e) != 0) {
            return SD_JN_ERR;
        }
        if (e.type != SD_JN_ARRAY) {
            return sd_jn_throw(vm, "std.flattenArrays: element %zu must be an array, got %s", i,
                               sd_jn_type_name(e.type));
        }
        parts[i] = e.u.a;
    }
    *out = sd_jn_array(concat_all(vm, parts, n));
    return 0;
}

/* --- higher-order ------------------------------------------------------------------------ */

/* map and mapWithIndex: f(elem) or f(i, elem) for every element of an array or string. */
static int map_common(struct sd_jn_vm *vm, const char *fn, struct sd_jn_val *args, int with_index,
                      struct sd_jn_val *out)
{
    struct seq q;
    struct sd_jn_arr *a;
    size_t i;

    if (want_func(vm, fn, 0, &args[0]) != 0 || want_seq(vm, fn, 1, &args[1]) != 0) {
        return SD_JN_ERR;
    }
    seq_init(&q, &args[1]);
    if (sd_jn_tick(vm, q.n + 1) != 0) {
        return SD_JN_ERR;
    }
    a = sd_jn_arr_new(vm, q.n);
    for (i = 0; i < q.n; i++) {
        struct sd_jn_thunk *cargs[2];
        struct sd_jn_val v = sd_jn_number((double)i);
        cargs[0] = sd_jn_thunk_of(vm, &v);
        if (q.a != NULL) {
            cargs[1] = sd_jn_arr_elem(q.a, i); /* elements stay lazy */
        } else {
            if (seq_next(vm, &q, i, &v) != 0) {
                return SD_JN_ERR;
            }
            cargs[1] = sd_jn_thunk_of(vm, &v);
        }
        sd_jn_arr_set_call(vm, a, i, &args[0], with_index ? 2 : 1, with_index ? cargs : cargs + 1);
    }
    *out = sd_jn_array(a);
    return 0;
}

SD__JN_NATIVE(map)
{
    return map_common(vm, "map", args, 0, out);
}

SD__JN_NATIVE(mapWithIndex)
{
    return map_common(vm, "mapWithIndex", args, 1, out);
}

/* The indexes of arr's elements for which pred returns true (a boolean, else an error), in
 * *kept (arena), *n of them. The elements are passed unforced: pred reads what it needs. */
static int filter_indexes(struct sd_jn_vm *vm, const char *fn, const struct sd_jn_val *pred,
                          struct sd_jn_arr *arr, size_t **kept, size_t *n)
{
    size_t len = sd_jn_arr_len(arr);
    size_t i;
    struct sd_jn_val r;

    if (sd_jn_tick(vm, len + 1) != 0) {
        return SD_JN_ERR;
    }
    *kept = sd_jn_alloc(vm, (len + 1) * sizeof(**kept));
    *n = 0;
    for (i = 0; i < len; i++) {
        struct sd_jn_thunk *e = sd_jn_arr_elem(arr, i);
        if (sd_jn_call_lazy(vm, pred, 1, &e, &r) != 0) {
            return SD_JN_ERR;
        }
        if (r.type != SD_JN_BOOL) {
            return sd_jn_throw(vm, "std.%s: filter function must return boolean, got: %s", fn,
                               sd_jn_type_name(r.type));
        }
        if (r.u.b) {
            (*kept)[(*n)++] = i;
        }
    }
    return 0;
}

static struct sd_jn_arr *array_of(struct sd_jn_vm *vm, const struct sd_jn_val *vals, size_t n)
{
    struct sd_jn_arr *a = sd_jn_arr_new(vm, n);
    size_t i;

    for (i = 0; i < n; i++) {
        sd_jn_arr_set(vm, a, i, vals[i]);
    }
    return a;
}

SD__JN_NATIVE(filter)
{
    size_t *kept;
    size_t n;

    if (want_func(vm, "filter", 0, &args[0]) != 0 ||
        sd__jn_want(vm, "filter", 1, &args[1], SD_JN_ARRAY) != 0 ||
        filter_indexes(vm, "filter", &args[0], args[1].u.a, &kept, &n) != 0) {
        return SD_JN_ERR;
    }
    *out = sd_jn_array(sd_jn_arr_pick(vm, args[1].u.a, kept, n));
    return 0;
}

SD__JN_NATIVE(filterMap)
{
    struct sd_jn_arr *a;
    size_t *kept;
    size_t n;
    size_t i;

    if (want_func(vm, "filterMap", 0, &args[0]) != 0 ||
        want_func(vm, "filterMap", 1, &args[1]) != 0 ||
        sd__jn_want(vm, "filterMap", 2, &args[2], SD_JN_ARRAY) != 0 ||
        filter_indexes(vm, "filterMap", &args[0], args[2].u.a, &kept, &n) != 0) {
        return SD_JN_ERR;
    }
    a = sd_jn_arr_new(vm, n);
    for (i = 0; i < n; i++) {
        struct sd_jn_thunk *e = sd_jn_arr_elem(args[2].u.a, kept[i]);
        sd_jn_arr_set_call(vm, a, i, &args[1], 1, &e);
    }
    *out = sd_jn_array(a);
    return 0;
}

SD__JN_NATIVE(flatMap)
{
    struct seq q;
    struct sd_jn_val e;
    struct sd_jn_val r;
    struct sd_jn_arr **parts;
    struct sd_buf b = sd_jn_buf(vm);
    size_t i;

    if (want_func(vm, "flatMap", 0, &args[0]) != 0 || want_seq(vm, "flatMap", 1, &args[1]) != 0) {
        return SD_JN_ERR;
    }
    seq_init(&q, &args[1]);
    if (sd_jn_tick(vm, q.n + 1) != 0) {
        return SD_JN_ERR;
    }
    if (q.a) {
        parts = sd_jn_alloc(vm, (q.n + 1) * sizeof(*parts));
        for (i = 0; i < q.n; i++) {
            if (seq_next(vm, &q, i, &e) != 0 || sd_jn_call(vm, &args[0], 1, &e, &r) != 0) {
                return SD_JN_ERR;
            }
            if (r.type != SD_JN_ARRAY) {
                return sd_jn_throw(vm,
                                   "std.flatMap: the function must return an array for an "
                                   "array, got %s",
                                   sd_jn_type_name(r.type));
            }
            parts[i] = r.u.a;
        }
        *out = sd_jn_array(concat_all(vm, parts, q.n));
        return 0;
    }
    for (i = 0; i < q.n; i++) {
        if (seq_next(vm, &q, i, &e) != 0 || sd_jn_call(vm, &args[0], 1, &e, &r) != 0) {
            goto fail;
        }
        if (r.type == SD_JN_NULL) {
            continue; /* as std.join skips nulls */
        }
        if (r.type != SD_JN_STRING) {
            sd_jn_throw(vm, "std.flatMap: the function must return a string for a string, got %s",
                        sd_jn_type_name(r.type));
            goto fail;
        }
        sd_buf_append(&b, r.u.s->data, r.u.s->len);
    }
    sd__jn_buf_string(vm, &b, out);
    sd_buf_fini(&b);
    return 0;
fail:
    sd_buf_fini(&b);
    return SD_JN_ERR;
}

static int fold(struct sd_jn_vm *vm, const char *fn, struct sd_jn_val *args, int right,
                struct sd_jn_val *out)
{
    struct seq q;
    struct sd_jn_val acc = args[2];
    struct sd_jn_val cargs[2];
    struct sd_jn_val *elems;
    size_t i;

    if (want_func(vm, fn, 0, &args[0]) != 0 || want_seq(vm, fn, 1, &args[1]) != 0) {
        return SD_JN_ERR;
    }
    seq_init(&q, &args[1]);
    if (sd_jn_tick(vm, q.n + 1) != 0) {
        return SD_JN_ERR;
    }
    if (!right) {
        for (i = 0; i < q.n; i++) {
            cargs[0] = acc;
            if (seq_next(vm, &q, i, &cargs[1]) != 0 ||
                sd_jn_call(vm, &args[0], 2, cargs, &acc) != 0) {
                return SD_JN_ERR;
            }
        }
        *out = acc;
        return 0;
    }
    if (q.a) {
        for (i = q.n; i-- > 0;) {
            if (sd_jn_arr_get(vm, q.a, i, &cargs[0]) != 0) {
                return SD_JN_ERR;
            }
            cargs[1] = acc;
            if (sd_jn_call(vm, &args[0], 2, cargs, &acc) != 0) {
                return SD_JN_ERR;
            }
        }
        *out = acc;
        return 0;
    }
    elems = sd_jn_alloc(vm, (q.n + 1) * sizeof(*elems));
    for (i = 0; i < q.n; i++) {
        (void)seq_next(vm, &q, i, &elems[i]);
    }
    for (i = q.n; i-- > 0;) {
        cargs[0] = elems[i];
        cargs[1] = acc;
        if (sd_jn_call(vm, &args[0], 2, cargs, &acc) != 0) {
            return SD_JN_ERR;
        }
    }
    *out = acc;
    return 0;
}

SD__JN_NATIVE(foldl)
{
    return fold(vm, "foldl", args, 0, out);
}

SD__JN_NATIVE(foldr)
{
    return fold(vm, "foldr", args, 1, out);
}

/* --- searching and aggregates ------------------------------------------------------------ */

SD__JN_NATIVE(count)
{
    struct sd_jn_val e;
    size_t n;
    size_t i;
    size_t c = 0;
    int eq;

    if (sd__jn_want(vm, "count", 0, &args[0], SD_JN_ARRAY) != 0) {
        return SD_JN_ERR;
    }
    n = sd_jn_arr_len(args[0].u.a);
    if (sd_jn_tick(vm, n + 1) != 0) {
        return SD_JN_ERR;
    }
    for (i = 0; i < n; i++) {
        if (sd_jn_arr_get(vm, args[0].u.a, i, &e) != 0 || sd_jn_equal(vm, &e, &args[1], &eq) != 0) {
            return SD_JN_ERR;
        }
        c += eq != 0;
    }
    *out = sd_jn_number((double)c);
    return 0;
}

/* Index of the first element of arr equal to x, or -1 in *at. */
static int index_of(struct sd_jn_vm *vm, struct sd_jn_arr *arr, const struct sd_jn_val *x,
                    size_t from, long long *at)
{
    struct sd_jn_val e;
    size_t n = sd_jn_arr_len(arr);
    size_t i;
    int eq;

    if (sd_jn_tick(vm, n + 1) != 0) {
        return SD_JN_ERR;
    }
    for (i = from; i < n; i++) {
        if (sd_jn_arr_get(vm, arr, i, &e) != 0 || sd_jn_equal(vm, &e, x, &eq) != 0) {
            return SD_JN_ERR;
        }
        if (eq) {
            *at = (long long)i;
            return 0;
        }
    }
    *at = -1;
    return 0;
}

SD__JN_NATIVE(member)
{
    long long at;
    struct sd_jn_val fargs[2];
    struct sd_jn_val r;

    if (args[0].type == SD_JN_ARRAY) {
        if (index_of(vm, args[0].u.a, &args[1], 0, &at) != 0) {
            return SD_JN_ERR;
        }
        *out = sd_jn_bool(at >= 0);
        return 0;
    }
    if (args[0].type == SD_JN_STRING) {
        if (args[1].type != SD_JN_STRING) {
            return sd_jn_throw(vm,
                               "std.member: second argument must be a string when the first "
                               "is, got %s",
                               sd_jn_type_name(args[1].type));
        }
        fargs[0] = args[1];
        fargs[1] = args[0];
        if (sd__jn_std_findSubstr(vm, fargs, &r) != 0) {
            return SD_JN_ERR;
        }
        *out = sd_jn_bool(sd_jn_arr_len(r.u.a) > 0);
        return 0;
    }
    return sd_jn_throw(vm, "std.member: first argument must be an array or a string, got %s",
                       sd_jn_type_name(args[0].type));
}

SD__JN_NATIVE(contains)
{
    long long at;

    if (sd__jn_want(vm, "contains", 0, &args[0], SD_JN_ARRAY) != 0 ||
        index_of(vm, args[0].u.a, &args[1], 0, &at) != 0) {
        return SD_JN_ERR;
    }
    *out = sd_jn_bool(at >= 0);
    return 0;
}

SD__JN_NATIVE(find)
{
    struct sd_jn_val *found;
    size_t n;
    size_t nf = 0;
    long long at = -1;

    if (sd__jn_want(vm, "find", 1, &args[1], SD_JN_ARRAY) != 0) {
        return SD_JN_ERR;
    }
    n = sd_jn_arr_len(args[1].u.a);
    found = sd_jn_alloc(vm, (n + 1) * sizeof(*found));
    for (;;) {
        if (index_of(vm, args[1].u.a, &args[0], (size_t)(at + 1), &at) != 0) {
            return SD_JN_ERR;
        }
        if (at < 0) {
            break;
        }
        found[nf++] = sd_jn_number((double)at);
    }
    *out = sd_jn_array(array_of(vm, found, nf));
    return 0;
}

/* all and any: every element a boolean; stops at the first that decides. */
static int all_any(struct sd_jn_vm *vm, const char *fn, struct sd_jn_val *args, int want,
                   struct sd_jn_val *out)
{
    struct sd_jn_val e;
    size_t n;
    size_t i;

    if (sd__jn_want(vm, fn, 0, &args[0], SD_JN_ARRAY) != 0) {
        return SD_JN_ERR;
    }
    n = sd_jn_arr_len(args[0].u.a);
    if (sd_jn_tick(vm, n + 1) != 0) {
        return SD_JN_ERR;
    }
    for (i = 0; i < n; i++) {
        if (sd_jn_arr_get(vm, args[0].u.a, i, &e) != 0) {
            return SD_JN_ERR;
        }
        if (e.type != SD_JN_BOOL) {
            return sd_jn_throw(vm, "std.%s: element %zu of type %s is not a boolean", fn, i,
                               sd_jn_type_name(e.type));
        }
        if (e.u.b == want) {
            *out = sd_jn_bool(want);
            return 0;
        }
    }
    *out = sd_jn_bool(!want);
    return 0;
}

SD__JN_NATIVE(all)
{
    return all_any(vm, "all", args, 0, out);
}

SD__JN_NATIVE(any)
{
    return all_any(vm, "any", args, 1, out);
}

static int sum_of(struct sd_jn_vm *vm, const char *fn, struct sd_jn_val *args, double *sum,
                  size_t *n)
{
    struct sd_jn_val e;
    size_t i;

    if (sd__jn_want(vm, fn, 0, &args[0], SD_JN_ARRAY) != 0) {
        return SD_JN_ERR;
    }
    *n = sd_jn_arr_len(args[0].u.a);
    if (sd_jn_tick(vm, *n + 1) != 0) {
        return SD_JN_ERR;
    }
    *sum = 0;
    for (i = 0; i < *n; i++) {
        if (sd_jn_arr_get(vm, args[0].u.a, i, &e) != 0) {
            return SD_JN_ERR;
        }
        if (e.type != SD_JN_NUMBER) {
            return sd_jn_throw(vm, "std.%s: element %zu must be a number, got %s", fn, i,
                               sd_jn_type_name(e.type));
        }
        *sum += e.u.n;
    }
    return 0;
}

SD__JN_NATIVE(sum)
{
    double s;
    size_t n;

    if (sum_of(vm, "sum", args, &s, &n) != 0) {
        return SD_JN_ERR;
    }
    return sd__jn_number_result(vm, s, out);
}

SD__JN_NATIVE(avg)
{
    double s;
    size_t n;

    if (sum_of(vm, "avg", args, &s, &n) != 0) {
        return SD_JN_ERR;
    }
    if (n == 0) {
        return sd_jn_throw(vm, "std.avg: Cannot calculate average of an empty array.");
    }
    return sd__jn_number_result(vm, s / (double)n, out);
}

/* --- sorting and sets -------------------------------------------------------------------- */

/* The forced elements of an array and their keys (keyF applied, or the elements themselves). */
struct keyed {
    struct sd_jn_val *vals;
    struct sd_jn_val *keys;
    size_t n;
};

static int keyed_init(struct sd_jn_vm *vm, const char *fn, unsigned argi, struct sd_jn_val *arr,
                      unsigned keyf_argi, struct sd_jn_val *keyf, struct keyed *k)
{
    size_t i;

    if (sd__jn_want(vm, fn, argi, arr, SD_JN_ARRAY) != 0) {
        return SD_JN_ERR;
    }
    if (keyf->type != SD_JN_ABSENT && want_func(vm, fn, keyf_argi, keyf) != 0) {
        return SD_JN_ERR;
    }
    k->n = sd_jn_arr_len(arr->u.a);
    if (sd_jn_tick(vm, k->n + 1) != 0) {
        return SD_JN_ERR;
    }
    k->vals = sd_jn_alloc(vm, (k->n + 1) * sizeof(*k->vals));
    k->keys = k->vals;
    if (keyf->type != SD_JN_ABSENT) {
        k->keys = sd_jn_alloc(vm, (k->n + 1) * sizeof(*k->keys));
    }
    for (i = 0; i < k->n; i++) {
        if (sd_jn_arr_get(vm, arr->u.a, i, &k->vals[i]) != 0) {
            return SD_JN_ERR;
        }
        if (keyf->type != SD_JN_ABSENT && sd_jn_call(vm, keyf, 1, &k->vals[i], &k->keys[i]) != 0) {
            return SD_JN_ERR;
        }
    }
    return 0;
}

/* Stable bottom-up merge sort of k by key; comparisons can fail (mixed types). */
static int keyed_sort(struct sd_jn_vm *vm, struct keyed *k)
{
    size_t *perm;
    size_t *tmp;
    size_t *swap;
    size_t width;
    size_t lo;
    size_t mid;
    size_t hi;
    size_t i;
    size_t j;
    size_t w;
    int cmp;
    int rc = SD_JN_ERR;
    struct sd_jn_val *vals;
    struct sd_jn_val *keys;

    if (k->n < 2) {
        return 0;
    }
    perm = sd_xmalloc(k->n * sizeof(*perm));
    tmp = sd_xmalloc(k->n * sizeof(*tmp));
    for (i = 0; i < k->n; i++) {
        perm[i] = i;
    }
    for (width = 1; width < k->n; width *= 2) {
        if (sd_jn_tick(vm, k->n) != 0) {
            goto done;
        }
        for (lo = 0; lo < k->n; lo += 2 * width) {
            mid = lo + width < k->n ? lo + width : k->n;
            hi = lo + 2 * width < k->n ? lo + 2 * width : k->n;
            i = lo;
            j = mid;
            w = lo;
            while (i < mid && j < hi) {
                if (sd__jn_key_cmp(vm, &k->keys[perm[j]], &k->keys[perm[i]], 0, &cmp) != 0) {
                    goto done;
                }
                /* Take from the right only when strictly smaller: stable. */
                tmp[w++] = cmp < 0 ? perm[j++] : perm[i++];
            }
            while (i < mid) {
                tmp[w++] = perm[i++];
            }
            while (j < hi) {
                tmp[w++] = perm[j++];
            }
        }
        swap = perm;
        perm = tmp;
        tmp = swap;
    }
    vals = sd_jn_alloc(vm, k->n * sizeof(*vals));
    keys = k->keys == k->vals ? vals : sd_jn_alloc(vm, k->n * sizeof(*keys));
    for (i = 0; i < k->n; i++) {
        vals[i] = k->vals[perm[i]];
        keys[i] = k->keys[perm[i]];
    }
    k->vals = vals;
    k->keys = keys;
    rc = 0;
done:
    free(perm);
    free(tmp);
    return rc;
}

/* Drops elements whose key == the key of the last element kept (std.uniq). */
static int keyed_uniq(struct sd_jn_vm *vm, struct keyed *k)
{
    size_t i;
    size_t w = 0;
    int eq;
    int same_arrays = k->keys == k->vals;

    for (i = 0; i < k->n; i++) {
        if (w > 0) {
            if (sd_jn_equal(vm, &k->keys[w - 1], &k->keys[i], &eq) != 0) {
                return SD_JN_ERR;
            }
            if (eq) {
                continue;
            }
        }
        k->vals[w] = k->vals[i];
        if (!same_arrays) {
            k->keys[w] = k->keys[i];
        }
        w++;
    }
    k->n = w;
    return 0;
}

SD__JN_NATIVE(sort)
{
    struct keyed k;

    if (keyed_init(vm, "sort", 0, &args[0], 1, &args[1], &k) != 0 || keyed_sort(vm, &k) != 0) {
        return SD_JN_ERR;
    }
    *out = sd_jn_array(array_of(vm, k.vals, k.n));
    return 0;
}

SD__JN_NATIVE(uniq)
{
    struct keyed k;

    if (keyed_init(vm, "uniq", 0, &args[0], 1, &args[1], &k) != 0 || keyed_uniq(vm, &k) != 0) {
        return SD_JN_ERR;
    }
    *out = sd_jn_array(array_of(vm, k.vals, k.n));
    return 0;
}

SD__JN_NATIVE(set)
{
    struct keyed k;

    if (keyed_init(vm, "set", 0, &args[0], 1, &args[1], &k) != 0 || keyed_sort(vm, &k) != 0 ||
        keyed_uniq(vm, &k) != 0) {
        return SD_JN_ERR;
    }
    *out = sd_jn_array(array_of(vm, k.vals, k.n));
    return 0;
}

enum set_op { SET_UNION, SET_INTER, SET_DIFF };

/* The merge of jsonnet's setUnion/setInter/setDiff over sorted a and b (keys compared with ==
 * first, then <). */
static int set_merge(struct sd_jn_vm *vm, const char *fn, struct sd_jn_val *args, enum set_op op,
                     struct sd_jn_val *out)
{
    struct keyed a;
    struct keyed b;
    struct sd_jn_val *res;
    size_t i = 0;
    size_t j = 0;
    size_t n = 0;
    int cmp;

    if (keyed_init(vm, fn, 0, &args[0], 2, &args[2], &a) != 0 ||
        keyed_init(vm, fn, 1, &args[1], 2, &args[2], &b) != 0) {
        return SD_JN_ERR;
    }
    res = sd_jn_alloc(vm, (a.n + b.n + 1) * sizeof(*res));
    while (i < a.n && j < b.n) {
        if (sd__jn_key_cmp(vm, &a.keys[i], &b.keys[j], 1, &cmp) != 0) {
            return SD_JN_ERR;
        }
        if (cmp == 0) {
            if (op != SET_DIFF) {
                res[n++] = a.vals[i];
            }
            i++;
            j++;
        } else if (cmp < 0) {
            if (op != SET_INTER) {
                res[n++] = a.vals[i];
            }
            i++;
        } else {
            if (op == SET_UNION) {
                res[n++] = b.vals[j];
            }
            j++;
        }
    }
    if (op != SET_INTER) {
        while (i < a.n) {
            res[n++] = a.vals[i++];
        }
    }
    if (op == SET_UNION) {
        while (j < b.n) {
            res[n++] = b.vals[j++];
        }
    }
    *out = sd_jn_array(array_of(vm, res, n));
    return 0;
}

SD__JN_NATIVE(setUnion)
{
    return set_merge(vm, "setUnion", args, SET_UNION, out);
}

SD__JN_NATIVE(setInter)
{
    return set_merge(vm, "setInter", args, SET_INTER, out);
}

SD__JN_NATIVE(setDiff)
{
    return set_merge(vm, "setDiff", args, SET_DIFF, out);
}

SD__JN_NATIVE(setMember)
{
    struct sd_jn_val key = args[0];
    struct sd_jn_val e;
    struct sd_jn_val ek;
    size_t n;
    size_t j;
    int cmp;

    if (sd__jn_want(vm, "setMember", 1, &args[1], SD_JN_ARRAY) != 0) {
        return SD_JN_ERR;
    }
    if (args[2].type != SD_JN_ABSENT && (want_func(vm, "setMember", 2, &args[2]) != 0 ||
                                         sd_jn_call(vm, &args[2], 1, &args[0], &key) != 0)) {
        return SD_JN_ERR;
    }
    n = sd_jn_arr_len(args[1].u.a);
    if (sd_jn_tick(vm, n + 1) != 0) {
        return SD_JN_ERR;
    }
    /* As jsonnet's setInter([x], arr): walk arr until an element's key is not below x's. */
    for (j = 0; j < n; j++) {
        if (sd_jn_arr_get(vm, args[1].u.a, j, &e) != 0) {
            return SD_JN_ERR;
        }
        ek = e;
        if (args[2].type != SD_JN_ABSENT && sd_jn_call(vm, &args[2], 1, &e, &ek) != 0) {
            return SD_JN_ERR;
        }
        if (sd__jn_key_cmp(vm, &key, &ek, 1, &cmp) != 0) {
            return SD_JN_ERR;
        }
        if (cmp <= 0) {
            *out = sd_jn_bool(cmp == 0);
            return 0;
        }
    }
    *out = sd_jn_bool(0);
    return 0;
}

/* std.minArray / std.maxArray (arr, keyF=id, onEmpty): the first element whose key is least
 * (sign -1) or greatest (sign 1), as go-jsonnet 0.22 (which returns the element, not its key).
 * onEmpty, when given, is the result for an empty array; it is evaluated even when unused, as
 * go-jsonnet does. */
static int extreme(struct sd_jn_vm *vm, const char *fn, struct sd_jn_val *args, int sign,
                   struct sd_jn_val *out)
{
    struct keyed k;
    size_t best = 0;
    size_t i;
    int cmp;

    if (keyed_init(vm, fn, 0, &args[0], 1, &args[1], &k) != 0) {
        return SD_JN_ERR;
    }
    if (k.n == 0) {
        if (args[2].type != SD_JN_ABSENT) {
            *out = args[2];
            return 0;
        }
        return sd_jn_throw(vm, "Expected at least one element in array. Got none");
    }
    for (i = 1; i < k.n; i++) {
        if (sd_jn_compare(vm, &k.keys[best], &k.keys[i], &cmp) != 0) {
            return SD_JN_ERR;
        }
        if (cmp * sign < 0) {
            best = i;
        }
    }
    *out = k.vals[best];
    return 0;
}

SD__JN_NATIVE(minArray)
{
    return extreme(vm, "minArray", args, -1, out);
}

SD__JN_NATIVE(maxArray)
{
    return extreme(vm, "maxArray", args, 1, out);
}

/* --- removing and flattening ------------------------------------------------------------- */

/* arr without element i (< its length); the other elements stay lazy. */
static struct sd_jn_arr *without(struct sd_jn_vm *vm, struct sd_jn_arr *a, size_t i)
{
    size_t n = sd_jn_arr_len(a);

    return sd_jn_arr_concat(vm, sd_jn_arr_slice(vm, a, 0, i), sd_jn_arr_slice(vm, a, i + 1, n));
}

SD__JN_NATIVE(removeAt)
{
    size_t n;
    double at;

    if (sd__jn_want(vm, "removeAt", 0, &args[0], SD_JN_ARRAY) != 0 ||
        sd__jn_want(vm, "removeAt", 1, &args[1], SD_JN_NUMBER) != 0) {
        return SD_JN_ERR;
    }
    at = args[1].u.n;
    if (at != floor(at)) {
        return sd_jn_throw(vm, "std.removeAt: Expected an integer, but got %.17g", at);
    }
    n = sd_jn_arr_len(args[0].u.a);
    if (!(at >= 0 && at < (double)n)) {
        return sd_jn_throw(vm, "std.removeAt: Index %.17g out of bounds, not within [0, %zu)", at,
                           n);
    }
    if (sd_jn_tick(vm, n + 1) != 0) {
        return SD_JN_ERR;
    }
    *out = sd_jn_array(without(vm, args[0].u.a, (size_t)at));
    return 0;
}

/* The first element equal to elem removed; arr itself when there is none. */
SD__JN_NATIVE(remove)
{
    long long at;

    if (sd__jn_want(vm, "remove", 0, &args[0], SD_JN_ARRAY) != 0 ||
        index_of(vm, args[0].u.a, &args[1], 0, &at) != 0) {
        return SD_JN_ERR;
    }
    *out = at < 0 ? args[0] : sd_jn_array(without(vm, args[0].u.a, (size_t)at));
    return 0;
}

/* Every non-array value inside value, depth first ([value] when it is not an array). */
SD__JN_NATIVE(flattenDeepArray)
{
    struct frame {
        struct sd_jn_arr *a;
        size_t i;
    };
    struct frame *stack = NULL;
    size_t depth = 0;
    size_t cap = 0;
    struct sd_buf items = sd_jn_buf(vm); /* the leaves, as struct sd_jn_val */
    struct sd_jn_val e = args[0];
    struct sd_jn_arr *r;
    size_t n;
    size_t i;
    int rc = SD_JN_ERR;

    for (;;) {
        if (sd_jn_tick(vm, 1) != 0) {
            goto done;
        }
        if (e.type == SD_JN_ARRAY) {
            if (depth == cap) {
                cap = cap ? cap * 2 : 16;
                stack = sd_xrealloc(stack, cap * sizeof(*stack));
            }
            stack[depth].a = e.u.a;
            stack[depth].i = 0;
            depth++;
        } else if (sd_buf_append(&items, &e, sizeof(e)) != 0) {
            if (sd_jn_tick(vm, 1) == 0) { /* not the memory limit (which the tick reports) */
                sd_jn_throw(vm, "std.flattenDeepArray: out of memory");
            }
            goto done;
        }
        while (depth > 0 && stack[depth - 1].i == sd_jn_arr_len(stack[depth - 1].a)) {
            depth--;
        }
        if (depth == 0) {
            break;
        }
        if (sd_jn_arr_get(vm, stack[depth - 1].a, stack[depth - 1].i++, &e) != 0) {
            goto done;
        }
    }
    n = items.len / sizeof(struct sd_jn_val);
    r = sd_jn_arr_new(vm, n);
    for (i = 0; i < n; i++) {
        struct sd_jn_val v;
        memcpy(&v, items.data + i * sizeof(v), sizeof(v));
        sd_jn_arr_set(vm, r, i, v);
    }
    *out = sd_jn_array(r);
    rc = 0;
done:
    free(stack);
    sd_buf_fini(&items);
    return rc;
}
