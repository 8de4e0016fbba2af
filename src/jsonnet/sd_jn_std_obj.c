/* sd_jn_std_obj.c: the std library's object natives (fields, values, get, mapWithKey, mergePatch,
 * prune) and JSON in and out: std.manifestJsonEx and friends (the layout of libjsonnet 0.18,
 * written without recursion) and sd_jn_parse_json for std.parseJson (strict RFC 8259, iterative,
 * nesting bounded by SD__JN_JSON_MAX_DEPTH). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/sd_alloc.h"
#include "jsonnet/sd_jn_std_int.h"

/* Nesting bound of parsed JSON and of the recursive object natives (mergePatch, prune). */
#define SD__JN_JSON_MAX_DEPTH 1000

static struct sd_jn_val string_val(struct sd_jn_str *s)
{
    struct sd_jn_val v;

    v.type = SD_JN_STRING;
    v.u.s = s;
    return v;
}

static int want_obj(struct sd_jn_vm *vm, const char *fn, unsigned argi, const struct sd_jn_val *v)
{
    return sd__jn_want(vm, fn, argi, v, SD_JN_OBJECT);
}

/* --- fields and values ------------------------------------------------------------------- */

static int fields_native(struct sd_jn_vm *vm, const char *fn, struct sd_jn_val *args, int all,
                         struct sd_jn_val *out)
{
    struct sd_jn_str **names;
    struct sd_jn_arr *a;
    size_t n;
    size_t i;

    if (want_obj(vm, fn, 0, &args[0]) != 0 ||
        sd_jn_obj_fields(vm, args[0].u.o, all, &names, &n) != 0 || sd_jn_tick(vm, n + 1) != 0) {
        return SD_JN_ERR;
    }
    a = sd_jn_arr_new(vm, n);
    for (i = 0; i < n; i++) {
        sd_jn_arr_set(vm, a, i, string_val(names[i]));
    }
    *out = sd_jn_array(a);
    return 0;
}

SD__JN_NATIVE(objectFields)
{
    return fields_native(vm, "objectFields", args, 0, out);
}

SD__JN_NATIVE(objectFieldsAll)
{
    return fields_native(vm, "objectFieldsAll", args, 1, out);
}

SD__JN_NATIVE(objectFieldsEx)
{
    if (sd__jn_want(vm, "objectFieldsEx", 1, &args[1], SD_JN_BOOL) != 0) {
        return SD_JN_ERR;
    }
    return fields_native(vm, "objectFieldsEx", args, args[1].u.b, out);
}

static int has_native(struct sd_jn_vm *vm, const char *fn, struct sd_jn_val *args, int all,
                      struct sd_jn_val *out)
{
    if (want_obj(vm, fn, 0, &args[0]) != 0 || sd__jn_want(vm, fn, 1, &args[1], SD_JN_STRING) != 0) {
        return SD_JN_ERR;
    }
    *out = sd_jn_bool(sd_jn_obj_has(vm, args[0].u.o, args[1].u.s->data, args[1].u.s->len, all));
    return 0;
}

SD__JN_NATIVE(objectHas)
{
    return has_native(vm, "objectHas", args, 0, out);
}

SD__JN_NATIVE(objectHasAll)
{
    return has_native(vm, "objectHasAll", args, 1, out);
}

SD__JN_NATIVE(objectHasEx)
{
    if (sd__jn_want(vm, "objectHasEx", 2, &args[2], SD_JN_BOOL) != 0) {
        return SD_JN_ERR;
    }
    return has_native(vm, "objectHasEx", args, args[2].u.b, out);
}

/* Field name of o, which must exist. */
static int get_field(struct sd_jn_vm *vm, struct sd_jn_obj *o, const struct sd_jn_str *name,
                     struct sd_jn_val *out)
{
    int found = 0;

    if (sd_jn_obj_get(vm, o, name->data, name->len, out, &found) != 0) {
        return SD_JN_ERR;
    }
    if (!found) {
        return sd_jn_throw(vm, "field does not exist: %s", name->data);
    }
    return 0;
}

static int values_native(struct sd_jn_vm *vm, const char *fn, struct sd_jn_val *args, int all,
                         struct sd_jn_val *out)
{
    struct sd_jn_str **names;
    struct sd_jn_arr *a;
    struct sd_jn_val v;
    size_t n;
    size_t i;

    if (want_obj(vm, fn, 0, &args[0]) != 0 ||
        sd_jn_obj_fields(vm, args[0].u.o, all, &names, &n) != 0 || sd_jn_tick(vm, n + 1) != 0) {
        return SD_JN_ERR;
    }
    a = sd_jn_arr_new(vm, n);
    for (i = 0; i < n; i++) {
        if (get_field(vm, args[0].u.o, names[i], &v) != 0) {
            return SD_JN_ERR;
        }
        sd_jn_arr_set(vm, a, i, v);
    }
    *out = sd_jn_array(a);
    return 0;
}

SD__JN_NATIVE(objectValues)
{
    return values_native(vm, "objectValues", args, 0, out);
}

SD__JN_NATIVE(objectValuesAll)
{
    return values_native(vm, "objectValuesAll", args, 1, out);
}

SD__JN_NATIVE(get)
{
    int all = 1;
    int found = 0;

    if (want_obj(vm, "get", 0, &args[0]) != 0 ||
        sd__jn_want(vm, "get", 1, &args[1], SD_JN_STRING) != 0) {
        return SD_JN_ERR;
    }
    if (args[3].type != SD_JN_ABSENT) {
        if (sd__jn_want(vm, "get", 3, &args[3], SD_JN_BOOL) != 0) {
            return SD_JN_ERR;
        }
        all = args[3].u.b;
    }
    if (sd_jn_obj_has(vm, args[0].u.o, args[1].u.s->data, args[1].u.s->len, all)) {
        if (sd_jn_obj_get(vm, args[0].u.o, args[1].u.s->data, args[1].u.s->len, out, &found) != 0) {
            return SD_JN_ERR;
        }
        if (found) {
            return 0;
        }
    }
    *out = args[2].type == SD_JN_ABSENT ? sd_jn_null() : args[2];
    return 0;
}

/* [{key: k, value: o[k]}] for o's fields (all: hidden ones too), values lazy. */
static int keys_values(struct sd_jn_vm *vm, const char *fn, struct sd_jn_val *args, int all,
                       struct sd_jn_val *out)
{
    struct sd_jn_val get = sd_jn_std_fn(vm, "get");
    struct sd_jn_str *key = sd_jn_str_new(vm, "key", 3);
    struct sd_jn_str *value = sd_jn_str_new(vm, "value", 5);
    struct sd_jn_thunk *targs[2];
    struct sd_jn_str **names;
    struct sd_jn_arr *a;
    size_t n;
    size_t i;

    if (want_obj(vm, fn, 0, &args[0]) != 0 ||
        sd_jn_obj_fields(vm, args[0].u.o, all, &names, &n) != 0 || sd_jn_tick(vm, n + 1) != 0) {
        return SD_JN_ERR;
    }
    a = sd_jn_arr_new(vm, n);
    targs[0] = sd_jn_thunk_of(vm, &args[0]);
    for (i = 0; i < n; i++) {
        struct sd_jn_obj *kv = sd_jn_obj_new(vm, 2);
        struct sd_jn_val name = string_val(names[i]);

        sd_jn_obj_set(vm, kv, 0, key, name);
        targs[1] = sd_jn_thunk_of(vm, &name);
        sd_jn_obj_set_call(vm, kv, 1, value, &get, 2, targs);
        sd_jn_arr_set(vm, a, i, sd_jn_object(kv));
    }
    *out = sd_jn_array(a);
    return 0;
}

SD__JN_NATIVE(objectKeysValues)
{
    return keys_values(vm, "objectKeysValues", args, 0, out);
}

SD__JN_NATIVE(objectKeysValuesAll)
{
    return keys_values(vm, "objectKeysValuesAll", args, 1, out);
}

/* A new object with obj's fields but key, hidden ones staying hidden, values (lazy) taken from
 * obj, as go-jsonnet 0.22's builtin (obj's asserts are not carried over). */
SD__JN_NATIVE(objectRemoveKey)
{
    struct sd_jn_val get = sd_jn_std_fn(vm, "get");
    struct sd_jn_thunk *targs[2];
    struct sd_jn_str **names;
    struct sd_jn_obj *o;
    size_t n;
    size_t i;
    size_t k = 0;

    if (want_obj(vm, "objectRemoveKey", 0, &args[0]) != 0 ||
        sd__jn_want(vm, "objectRemoveKey", 1, &args[1], SD_JN_STRING) != 0 ||
        sd_jn_obj_fields(vm, args[0].u.o, 1, &names, &n) != 0 || sd_jn_tick(vm, n + 1) != 0) {
        return SD_JN_ERR;
    }
    o = sd_jn_obj_new(
        vm, n - (sd_jn_obj_has(vm, args[0].u.o, args[1].u.s->data, args[1].u.s->len, 1) ? 1 : 0));
    targs[0] = sd_jn_thunk_of(vm, &args[0]);
    for (i = 0; i < n; i++) {
        struct sd_jn_val name = string_val(names[i]);

        if (sd_jn_str_cmp(names[i], args[1].u.s) == 0) {
            continue;
        }
        targs[1] = sd_jn_thunk_of(vm, &name);
        sd_jn_obj_set_call(vm, o, k, names[i], &get, 2, targs);
        if (!sd_jn_obj_has(vm, args[0].u.o, names[i]->data, names[i]->len, 0)) {
            sd_jn_obj_set_hidden(o, k);
        }
        k++;
    }
    *out = sd_jn_object(o);
    return 0;
}

SD__JN_NATIVE(mapWithKey)
{
    struct sd_jn_str **names;
    struct sd_jn_obj *o;
    struct sd_jn_val cargs[2];
    size_t n;
    size_t i;

    if (sd__jn_want(vm, "mapWithKey", 0, &args[0], SD_JN_FUNCTION) != 0 ||
        want_obj(vm, "mapWithKey", 1, &args[1]) != 0 ||
        sd_jn_obj_fields(vm, args[1].u.o, 0, &names, &n) != 0 || sd_jn_tick(vm, n + 1) != 0) {
        return SD_JN_ERR;
    }
    o = sd_jn_obj_new(vm, n);
    for (i = 0; i < n; i++) {
        cargs[0] = string_val(names[i]);
        struct sd_jn_thunk *targs[2];
        if (get_field(vm, args[1].u.o, names[i], &cargs[1]) != 0) {
            return SD_JN_ERR;
        }
        targs[0] = sd_jn_thunk_of(vm, &cargs[0]);
        targs[1] = sd_jn_thunk_of(vm, &cargs[1]);
        sd_jn_obj_set_call(vm, o, i, names[i], &args[0], 2, targs);
    }
    *out = sd_jn_object(o);
    return 0;
}

/* --- mergePatch and prune ---------------------------------------------------------------- */

/* RFC 7396 as jsonnet's std.mergePatch: visible fields only; a null in the patch removes. */
static int merge_patch(struct sd_jn_vm *vm, const struct sd_jn_val *target,
                       const struct sd_jn_val *patch, unsigned depth, struct sd_jn_val *out)
{
    struct sd_jn_str **tf = NULL;
    struct sd_jn_str **pf;
    struct sd_jn_str **names;
    struct sd_jn_val *vals;
    struct sd_jn_val tv;
    struct sd_jn_val pv;
    struct sd_jn_val nullv = sd_jn_null();
    struct sd_jn_obj *o;
    size_t tn = 0;
    size_t pn;
    size_t i = 0;
    size_t j = 0;
    size_t n = 0;
    int c;

    if (patch->type != SD_JN_OBJECT) {
        *out = *patch;
        return 0;
    }
    if (depth > SD__JN_JSON_MAX_DEPTH) {
        return sd_jn_throw(vm, "std.mergePatch: objects nested deeper than %d levels",
                           SD__JN_JSON_MAX_DEPTH);
    }
    if (target->type == SD_JN_OBJECT && sd_jn_obj_fields(vm, target->u.o, 0, &tf, &tn) != 0) {
        return SD_JN_ERR;
    }
    if (sd_jn_obj_fields(vm, patch->u.o, 0, &pf, &pn) != 0 || sd_jn_tick(vm, tn + pn + 1) != 0) {
        return SD_JN_ERR;
    }
    names = sd_jn_alloc(vm, (tn + pn + 1) * sizeof(*names));
    vals = sd_jn_alloc(vm, (tn + pn + 1) * sizeof(*vals));
    while (i < tn || j < pn) {
        c = i >= tn ? 1 : (j >= pn ? -1 : sd_jn_str_cmp(tf[i], pf[j]));
        if (c < 0) {
            /* Only in the target: kept as is. */
            if (get_field(vm, target->u.o, tf[i], &vals[n]) != 0) {
                return SD_JN_ERR;
            }
            names[n++] = tf[i++];
            continue;
        }
        if (get_field(vm, patch->u.o, pf[j], &pv) != 0) {
            return SD_JN_ERR;
        }
        if (c == 0) {
            if (pv.type != SD_JN_NULL) {
                if (get_field(vm, target->u.o, tf[i], &tv) != 0 ||
                    merge_patch(vm, &tv, &pv, depth + 1, &vals[n]) != 0) {
                    return SD_JN_ERR;
                }
                names[n++] = pf[j];
            }
            i++;
            j++;
            continue;
        }
        if (pv.type != SD_JN_NULL) {
            if (merge_patch(vm, &nullv, &pv, depth + 1, &vals[n]) != 0) {
                return SD_JN_ERR;
            }
            names[n++] = pf[j];
        }
        j++;
    }
    o = sd_jn_obj_new(vm, n);
    for (i = 0; i < n; i++) {
        sd_jn_obj_set(vm, o, i, names[i], vals[i]);
    }
    *out = sd_jn_object(o);
    return 0;
}

SD__JN_NATIVE(mergePatch)
{
    return merge_patch(vm, &args[0], &args[1], 0, out);
}

/* std.prune's isContent of an already pruned value. */
static int is_content(const struct sd_jn_val *v, size_t nfields)
{
    switch (v->type) {
    case SD_JN_NULL:
        return 0;
    case SD_JN_ARRAY:
        return sd_jn_arr_len(v->u.a) > 0;
    case SD_JN_OBJECT:
        return nfields > 0;
    default:
        return 1;
    }
}

/* Prunes v into *out; *nfields = the visible fields of the result when it is an object. */
static int prune(struct sd_jn_vm *vm, const struct sd_jn_val *v, unsigned depth,
                 struct sd_jn_val *out, size_t *nfields)
{
    struct sd_jn_str **names;
    struct sd_jn_str **keep_names;
    struct sd_jn_val *keep;
    struct sd_jn_val e;
    struct sd_jn_val pe;
    struct sd_jn_arr *a;
    struct sd_jn_obj *o;
    size_t n;
    size_t k = 0;
    size_t i;
    size_t nf = 0;

    *nfields = 0;
    if (v->type != SD_JN_ARRAY && v->type != SD_JN_OBJECT) {
        *out = *v;
        return 0;
    }
    if (depth > SD__JN_JSON_MAX_DEPTH) {
        return sd_jn_throw(vm, "std.prune: values nested deeper than %d levels",
                           SD__JN_JSON_MAX_DEPTH);
    }
    if (v->type == SD_JN_ARRAY) {
        n = sd_jn_arr_len(v->u.a);
        if (sd_jn_tick(vm, n + 1) != 0) {
            return SD_JN_ERR;
        }
        keep = sd_jn_alloc(vm, (n + 1) * sizeof(*keep));
        for (i = 0; i < n; i++) {
            if (sd_jn_arr_get(vm, v->u.a, i, &e) != 0 || prune(vm, &e, depth + 1, &pe, &nf) != 0) {
                return SD_JN_ERR;
            }
            if (is_content(&pe, nf)) {
                keep[k++] = pe;
            }
        }
        a = sd_jn_arr_new(vm, k);
        for (i = 0; i < k; i++) {
            sd_jn_arr_set(vm, a, i, keep[i]);
        }
        *out = sd_jn_array(a);
        return 0;
    }
    if (sd_jn_obj_fields(vm, v->u.o, 0, &names, &n) != 0 || sd_jn_tick(vm, n + 1) != 0) {
        return SD_JN_ERR;
    }
    keep = sd_jn_alloc(vm, (n + 1) * sizeof(*keep));
    keep_names = sd_jn_alloc(vm, (n + 1) * sizeof(*keep_names));
    for (i = 0; i < n; i++) {
        if (get_field(vm, v->u.o, names[i], &e) != 0 || prune(vm, &e, depth + 1, &pe, &nf) != 0) {
            return SD_JN_ERR;
        }
        if (is_content(&pe, nf)) {
            keep_names[k] = names[i];
            keep[k++] = pe;
        }
    }
    o = sd_jn_obj_new(vm, k);
    for (i = 0; i < k; i++) {
        sd_jn_obj_set(vm, o, i, keep_names[i], keep[i]);
    }
    *out = sd_jn_object(o);
    *nfields = k;
    return 0;
}

SD__JN_NATIVE(prune)
{
    size_t nf;

    return prune(vm, &args[0], 0, out, &nf);
}

/* --- manifestJsonEx ---------------------------------------------------------------------- */

struct mframe {
    struct sd_jn_arr *a;      /* the array, or NULL for an object */
    struct sd_jn_obj *o;      /* the object */
    struct sd_jn_str **names; /* its visible fields, sorted */
    size_t n;
    size_t i; /* next element */
};

static void append_indent(struct sd_buf *b, const struct sd_jn_str *indent, size_t depth)
{
    size_t i;

    for (i = 0; i < depth; i++) {
        sd_buf_append(b, indent->data, indent->len);
    }
}

/* "[\"a\", 0]": where a manifest error happened. */
static void manifest_path(struct sd_buf *b, const struct mframe *st, size_t depth)
{
    size_t k;

    sd_buf_append_char(b, '[');
    for (k = 0; k < depth; k++) {
        if (k > 0) {
            sd_buf_append_str(b, ", ");
        }
        if (st[k].a) {
            sd_buf_printf(b, "%zu", st[k].i - 1);
        } else {
            sd_jn_escape_string(b, st[k].names[st[k].i - 1]->data, st[k].names[st[k].i - 1]->len);
        }
    }
    sd_buf_append_char(b, ']');
}

/* libjsonnet 0.18's std.manifestJsonEx: containers as open + newline, items joined by "," +
 * newline each indented one level deeper, newline + indent + close; so an empty container is
 * open + newline + newline + indent + close. */
static int manifest_ex(struct sd_jn_vm *vm, const struct sd_jn_val *value,
                       const struct sd_jn_str *indent, const struct sd_jn_str *newline,
                       const struct sd_jn_str *kvsep, struct sd_buf *b)
{
    struct mframe *st = NULL;
    struct mframe *f;
    size_t depth = 0;
    size_t cap = 0;
    struct sd_jn_val v = *value;
    struct sd_buf path = sd_jn_buf(vm);
    int rc = SD_JN_ERR;

    for (;;) {
        if (sd_jn_tick(vm, 1) != 0) {
            goto done;
        }
        switch (v.type) {
        case SD_JN_NULL:
            sd_buf_append_str(b, "null");
            break;
        case SD_JN_BOOL:
            sd_buf_append_str(b, v.u.b ? "true" : "false");
            break;
        case SD_JN_NUMBER:
            sd_jn_format_number(b, v.u.n);
            break;
        case SD_JN_STRING:
            if (sd_jn_tick(vm, SD__JN_STR_TICKS(v.u.s->len)) != 0) {
                goto done;
            }
            sd_jn_escape_string(b, v.u.s->data, v.u.s->len);
            break;
        case SD_JN_ARRAY:
        case SD_JN_OBJECT:
            if (depth == cap) {
                cap = cap ? cap * 2 : 16;
                st = sd_xrealloc(st, cap * sizeof(*st));
            }
            f = &st[depth];
            memset(f, 0, sizeof(*f));
            if (v.type == SD_JN_ARRAY) {
                f->a = v.u.a;
                f->n = sd_jn_arr_len(v.u.a);
                sd_buf_append_char(b, '[');
            } else {
                f->o = v.u.o;
                if (sd_jn_obj_fields(vm, v.u.o, 0, &f->names, &f->n) != 0) {
                    goto done;
                }
                sd_buf_append_char(b, '{');
            }
            sd_buf_append(b, newline->data, newline->len);
            depth++;
            break;
        default:
            manifest_path(&path, st, depth);
            sd_jn_throw(vm, "Tried to manifest function at %s", sd_buf_cstr(&path));
            goto done;
        }
        /* Close finished containers, then move to the next element. */
        for (;;) {
            if (depth == 0) {
                rc = 0;
                goto done;
            }
            f = &st[depth - 1];
            if (f->i < f->n) {
                break;
            }
            sd_buf_append(b, newline->data, newline->len);
            append_indent(b, indent, depth - 1);
            sd_buf_append_char(b, f->a ? ']' : '}');
            depth--;
        }
        if (f->i > 0) {
            sd_buf_append_char(b, ',');
            sd_buf_append(b, newline->data, newline->len);
        }
        append_indent(b, indent, depth);
        if (f->a) {
            if (sd_jn_arr_get(vm, f->a, f->i, &v) != 0) {
                goto done;
            }
        } else {
            sd_jn_escape_string(b, f->names[f->i]->data, f->names[f->i]->len);
            sd_buf_append(b, kvsep->data, kvsep->len);
            if (get_field(vm, f->o, f->names[f->i], &v) != 0) {
                goto done;
            }
        }
        f->i++;
    }
done:
    free(st);
    sd_buf_fini(&path);
    return rc;
}

static int manifest_native(struct sd_jn_vm *vm, const struct sd_jn_val *value, const char *indent,
                           const char *newline, const char *kvsep, struct sd_jn_val *out)
{
    struct sd_buf b = sd_jn_buf(vm);
    struct sd_jn_str *si = sd_jn_str_new(vm, indent, strlen(indent));
    struct sd_jn_str *sn = sd_jn_str_new(vm, newline, strlen(newline));
    struct sd_jn_str *sk = sd_jn_str_new(vm, kvsep, strlen(kvsep));

    if (manifest_ex(vm, value, si, sn, sk, &b) != 0) {
        sd_buf_fini(&b);
        return SD_JN_ERR;
    }
    sd__jn_buf_string(vm, &b, out);
    sd_buf_fini(&b);
    return 0;
}

SD__JN_NATIVE(manifestJson)
{
    return manifest_native(vm, &args[0], "    ", "\n", ": ", out);
}

SD__JN_NATIVE(manifestJsonMinified)
{
    return manifest_native(vm, &args[0], "", "", ":", out);
}

SD__JN_NATIVE(manifestJsonEx)
{
    struct sd_buf b = sd_jn_buf(vm);
    struct sd_jn_str *newline;
    struct sd_jn_str *kvsep;

    if (sd__jn_want(vm, "manifestJsonEx", 1, &args[1], SD_JN_STRING) != 0) {
        return SD_JN_ERR;
    }
    if (args[2].type == SD_JN_ABSENT) {
        newline = sd_jn_str_new(vm, "\n", 1);
    } else if (sd__jn_want(vm, "manifestJsonEx", 2, &args[2], SD_JN_STRING) != 0) {
        return SD_JN_ERR;
    } else {
        newline = args[2].u.s;
    }
    if (args[3].type == SD_JN_ABSENT) {
        kvsep = sd_jn_str_new(vm, ": ", 2);
    } else if (sd__jn_want(vm, "manifestJsonEx", 3, &args[3], SD_JN_STRING) != 0) {
        return SD_JN_ERR;
    } else {
        kvsep = args[3].u.s;
    }
    if (manifest_ex(vm, &args[0], args[1].u.s, newline, kvsep, &b) != 0) {
        sd_buf_fini(&b);
        return SD_JN_ERR;
    }
    sd__jn_buf_string(vm, &b, out);
    sd_buf_fini(&b);
    return 0;
}

/* --- parseJson --------------------------------------------------------------------------- */

struct jentry {
    struct sd_jn_str *key; /* NULL in arrays */
    struct sd_jn_val v;
};

struct jframe {
    int is_obj;
    size_t start;          /* first entry of this container in the entry stack */
    struct sd_jn_str *key; /* objects: the key of the value being parsed */
};

struct jparser {
    struct sd_jn_vm *vm;
    const char *p;
    size_t len;
    size_t pos;
    struct sd_buf sbuf; /* unescaped string bytes */
};

static int jerror(struct jparser *jp, const char *what)
{
    unsigned line = 1;
    unsigned col = 1;
    size_t i;

    for (i = 0; i < jp->pos && i < jp->len; i++) {
        if (jp->p[i] == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)jp->p[i] & 0xC0) != 0x80) {
            col++;
        }
    }
    return sd_jn_throw(jp->vm, "JSON parse error at line %u, column %u: %s", line, col, what);
}

static void jskip_ws(struct jparser *jp)
{
    char c;

    while (jp->pos < jp->len) {
        c = jp->p[jp->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            break;
        }
        jp->pos++;
    }
}

static int jhex4(struct jparser *jp, uint32_t *out)
{
    int k;
    int d;

    if (jp->len - jp->pos < 4) {
        return jerror(jp, "truncated \\u escape");
    }
    *out = 0;
    for (k = 0; k < 4; k++) {
        d = sd_hex_digit((unsigned char)jp->p[jp->pos + (size_t)k]);
        if (d < 0) {
            return jerror(jp, "invalid \\u escape");
        }
        *out = *out << 4 | (uint32_t)d;
    }
    jp->pos += 4;
    return 0;
}

/* Parses a string at jp->pos (at the opening quote). */
static int jstring(struct jparser *jp, struct sd_jn_str **out)
{
    size_t start;
    unsigned char c;
    uint32_t cp;
    uint32_t lo;
    char tmp[4];
    int escaped = 0;

    jp->pos++;
    start = jp->pos;
    sd_buf_reset(&jp->sbuf);
    for (;;) {
        if (jp->pos >= jp->len) {
            return jerror(jp, "unterminated string");
        }
        c = (unsigned char)jp->p[jp->pos];
        if (c == '"') {
            break;
        }
        if (c < 0x20) {
            return jerror(jp, "control character in string");
        }
        if (c != '\\') {
            if (escaped) {
                sd_buf_append_char(&jp->sbuf, (char)c);
            }
            jp->pos++;
            continue;
        }
        if (!escaped) {
            sd_buf_append(&jp->sbuf, jp->p + start, jp->pos - start);
            escaped = 1;
        }
        jp->pos++;
        if (jp->pos >= jp->len) {
            return jerror(jp, "unterminated string");
        }
        c = (unsigned char)jp->p[jp->pos++];
        switch (c) {
        case '"':
        case '\\':
        case '/':
            sd_buf_append_char(&jp->sbuf, (char)c);
            break;
        case 'b':
            sd_buf_append_char(&jp->sbuf, '\b');
            break;
        case 'f':
            sd_buf_append_char(&jp->sbuf, '\f');
            break;
        case 'n':
            sd_buf_append_char(&jp->sbuf, '\n');
            break;
        case 'r':
            sd_buf_append_char(&jp->sbuf, '\r');
            break;
        case 't':
            sd_buf_append_char(&jp->sbuf, '\t');
            break;
        case 'u':
            if (jhex4(jp, &cp) != 0) {
                return SD_JN_ERR;
            }
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return jerror(jp, "lone low surrogate in \\u escape");
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (jp->len - jp->pos < 2 || jp->p[jp->pos] != '\\' || jp->p[jp->pos + 1] != 'u') {
                    return jerror(jp, "high surrogate not followed by a low surrogate");
                }
                jp->pos += 2;
                if (jhex4(jp, &lo) != 0) {
                    return SD_JN_ERR;
                }
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    return jerror(jp, "high surrogate not followed by a low surrogate");
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            sd_buf_append(&jp->sbuf, tmp, sd_utf8_encode(cp, tmp));
            break;
        default:
            jp->pos--;
            return jerror(jp, "invalid escape in string");
        }
    }
    if (escaped) {
        *out = sd_jn_str_new(jp->vm, jp->sbuf.len ? jp->sbuf.data : "", jp->sbuf.len);
    } else {
        *out = sd_jn_str_new(jp->vm, jp->p + start, jp->pos - start);
    }
    jp->pos++;
    return sd_jn_tick(jp->vm, SD__JN_STR_TICKS(jp->pos - start));
}

static int jdigits(struct jparser *jp)
{
    size_t s = jp->pos;

    while (jp->pos < jp->len && jp->p[jp->pos] >= '0' && jp->p[jp->pos] <= '9') {
        jp->pos++;
    }
    return jp->pos > s;
}

static int jnumber(struct jparser *jp, double *out)
{
    size_t start = jp->pos;
    size_t n;
    int is_int = 1;
    char small[64];
    char *text;
    double d;

    if (jp->p[jp->pos] == '-') {
        jp->pos++;
    }
    if (jp->pos < jp->len && jp->p[jp->pos] == '0') {
        jp->pos++;
    } else if (!jdigits(jp)) {
        return jerror(jp, "invalid number");
    }
    if (jp->pos < jp->len && jp->p[jp->pos] == '.') {
        is_int = 0;
        jp->pos++;
        if (!jdigits(jp)) {
            return jerror(jp, "invalid number");
        }
    }
    if (jp->pos < jp->len && (jp->p[jp->pos] == 'e' || jp->p[jp->pos] == 'E')) {
        is_int = 0;
        jp->pos++;
        if (jp->pos < jp->len && (jp->p[jp->pos] == '+' || jp->p[jp->pos] == '-')) {
            jp->pos++;
        }
        if (!jdigits(jp)) {
            return jerror(jp, "invalid number");
        }
    }
    n = jp->pos - start;
    text = n < sizeof(small) ? small : sd_xmalloc(n + 1);
    memcpy(text, jp->p + start, n);
    text[n] = '\0';
    d = strtod(text, NULL);
    if (text != small) {
        free(text);
    }
    if (!isfinite(d)) {
        jp->pos = start;
        return jerror(jp, "number out of range");
    }
    /* "-0" is the integer 0, as libjsonnet's parser reads integers. */
    *out = is_int && d == 0 ? 0.0 : d;
    return 0;
}

static int jliteral(struct jparser *jp, const char *word)
{
    size_t n = strlen(word);

    if (jp->len - jp->pos < n || memcmp(jp->p + jp->pos, word, n) != 0) {
        return jerror(jp, "unexpected character");
    }
    jp->pos += n;
    return 0;
}

static int jentry_cmp(const void *a, const void *b)
{
    const struct jentry *x = *(const struct jentry *const *)a;
    const struct jentry *y = *(const struct jentry *const *)b;
    int c = sd_jn_str_cmp(x->key, y->key);

    if (c != 0) {
        return c;
    }
    return x < y ? -1 : (x > y ? 1 : 0);
}

/* Builds the container of entries [start, start + n): an array, or an object whose duplicate
 * keys keep their last value. */
static struct sd_jn_val jbuild(struct sd_jn_vm *vm, int is_obj, struct jentry *e, size_t n)
{
    struct sd_jn_arr *a;
    struct sd_jn_obj *o;
    struct jentry **sorted;
    size_t i;
    size_t m = 0;

    if (!is_obj) {
        a = sd_jn_arr_new(vm, n);
        for (i = 0; i < n; i++) {
            sd_jn_arr_set(vm, a, i, e[i].v);
        }
        return sd_jn_array(a);
    }
    sorted = sd_xmalloc((n + 1) * sizeof(*sorted));
    for (i = 0; i < n; i++) {
        sorted[i] = &e[i];
    }
    if (n > 1) {
        qsort(sorted, n, sizeof(*sorted), jentry_cmp);
    }
    for (i = 0; i < n; i++) {
        /* The last of a run of equal keys is the last one in the text. */
        if (i + 1 < n && sd_jn_str_cmp(sorted[i]->key, sorted[i + 1]->key) == 0) {
            continue;
        }
        sorted[m++] = sorted[i];
    }
    o = sd_jn_obj_new(vm, m);
    for (i = 0; i < m; i++) {
        sd_jn_obj_set(vm, o, i, sorted[i]->key, sorted[i]->v);
    }
    free(sorted);
    return sd_jn_object(o);
}

int sd_jn_parse_json(struct sd_jn_vm *vm, const char *p, size_t len, struct sd_jn_val *out)
{
    struct jparser jp;
    struct jframe *frames = NULL;
    struct jentry *ents = NULL;
    size_t nframes = 0;
    size_t cframes = 0;
    size_t nents = 0;
    size_t cents = 0;
    struct sd_jn_val v;
    struct sd_jn_str *s;
    struct jframe *f;
    char c;
    int rc = SD_JN_ERR;

    jp.vm = vm;
    jp.p = p;
    jp.len = len;
    jp.pos = 0;
    jp.sbuf = sd_jn_buf(vm);
    if (!sd_utf8_valid(p, len)) {
        sd_jn_throw(vm, "JSON parse error: invalid UTF-8");
        goto done;
    }
    for (;;) {
        /* A value. */
        if (sd_jn_tick(vm, 1) != 0) {
            goto done;
        }
        jskip_ws(&jp);
        if (jp.pos >= jp.len) {
            jerror(&jp, "unexpected end of input, expected a value");
            goto done;
        }
        c = p[jp.pos];
        if (c == '{' || c == '[') {
            if (nframes >= SD__JN_JSON_MAX_DEPTH) {
                jerror(&jp, "nesting deeper than 1000 levels");
                goto done;
            }
            if (nframes == cframes) {
                cframes = cframes ? cframes * 2 : 16;
                frames = sd_xrealloc(frames, cframes * sizeof(*frames));
            }
            f = &frames[nframes++];
            f->is_obj = c == '{';
            f->start = nents;
            f->key = NULL;
            jp.pos++;
            jskip_ws(&jp);
            if (jp.pos < jp.len && p[jp.pos] == (f->is_obj ? '}' : ']')) {
                jp.pos++;
                nframes--;
                v = jbuild(vm, f->is_obj, ents + nents, 0);
                goto have_value;
            }
            if (f->is_obj) {
                if (jp.pos >= jp.len || p[jp.pos] != '"') {
                    jerror(&jp, "expected a string key");
                    goto done;
                }
                if (jstring(&jp, &f->key) != 0) {
                    goto done;
                }
                jskip_ws(&jp);
                if (jp.pos >= jp.len || p[jp.pos] != ':') {
                    jerror(&jp, "expected ':'");
                    goto done;
                }
                jp.pos++;
            }
            continue;
        }
        if (c == '"') {
            if (jstring(&jp, &s) != 0) {
                goto done;
            }
            v.type = SD_JN_STRING;
            v.u.s = s;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            v.type = SD_JN_NUMBER;
            if (jnumber(&jp, &v.u.n) != 0) {
                goto done;
            }
        } else if (c == 't') {
            if (jliteral(&jp, "true") != 0) {
                goto done;
            }
            v = sd_jn_bool(1);
        } else if (c == 'f') {
            if (jliteral(&jp, "false") != 0) {
                goto done;
            }
            v = sd_jn_bool(0);
        } else if (c == 'n') {
            if (jliteral(&jp, "null") != 0) {
                goto done;
            }
            v = sd_jn_null();
        } else {
            jerror(&jp, "unexpected character, expected a value");
            goto done;
        }
    have_value:
        /* v is complete: add it to its container, closing containers that end here. */
        for (;;) {
            if (nframes == 0) {
                jskip_ws(&jp);
                if (jp.pos < jp.len) {
                    jerror(&jp, "unexpected text after the value");
                    goto done;
                }
                *out = v;
                rc = 0;
                goto done;
            }
            f = &frames[nframes - 1];
            if (nents == cents) {
                cents = cents ? cents * 2 : 64;
                ents = sd_xrealloc(ents, cents * sizeof(*ents));
            }
            ents[nents].key = f->key;
            ents[nents].v = v;
            nents++;
            jskip_ws(&jp);
            if (jp.pos >= jp.len) {
                jerror(&jp, "unexpected end of input");
                goto done;
            }
            c = p[jp.pos++];
            if (c == ',') {
                break;
            }
            if (c != (f->is_obj ? '}' : ']')) {
                jp.pos--;
                jerror(&jp, f->is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
                goto done;
            }
            if (sd_jn_tick(vm, nents - f->start) != 0) {
                goto done;
            }
            v = jbuild(vm, f->is_obj, ents + f->start, nents - f->start);
            nents = f->start;
            nframes--;
        }
        /* After ',': an object needs the next key. */
        if (f->is_obj) {
            jskip_ws(&jp);
            if (jp.pos >= jp.len || p[jp.pos] != '"') {
                jerror(&jp, "expected a string key");
                goto done;
            }
            if (jstring(&jp, &f->key) != 0) {
                goto done;
            }
            jskip_ws(&jp);
            if (jp.pos >= jp.len || p[jp.pos] != ':') {
                jerror(&jp, "expected ':'");
                goto done;
            }
            jp.pos++;
        }
    }
done:
    free(frames);
    free(ents);
    sd_buf_fini(&jp.sbuf);
    return rc;
}

SD__JN_NATIVE(parseJson)
{
    if (sd__jn_want(vm, "parseJson", 0, &args[0], SD_JN_STRING) != 0) {
        return SD_JN_ERR;
    }
    return sd_jn_parse_json(vm, args[0].u.s->data, args[0].u.s->len, out);
}
