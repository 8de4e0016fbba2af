/* sd_jn_std_fmt.c: the std library's manifest natives for formats other than JSON: INI, Python,
 * TOML, XML (JsonML) and YAML (documents and streams), with go-jsonnet 0.22's text: TOML and
 * YAML follow its Go builtins, the others std.jsonnet. Recursion follows the value's nesting,
 * bounded by SD__JN_FMT_MAX_DEPTH. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonnet/sd_jn_std_int.h"

#define SD__JN_FMT_MAX_DEPTH 500

static int too_deep(struct sd_jn_vm *vm, const char *fn, unsigned depth)
{
    if (depth > SD__JN_FMT_MAX_DEPTH) {
        return sd_jn_throw(vm, "std.%s: value nested more than %d levels deep", fn,
                           SD__JN_FMT_MAX_DEPTH);
    }
    return sd_jn_tick(vm, 1);
}

/* The visible fields of o, sorted. */
static int visible_fields(struct sd_jn_vm *vm, struct sd_jn_obj *o, struct sd_jn_str ***names,
                          size_t *n)
{
    return sd_jn_obj_fields(vm, o, 0, names, n) != 0 || sd_jn_tick(vm, *n + 1) != 0 ? SD_JN_ERR : 0;
}

static int field(struct sd_jn_vm *vm, struct sd_jn_obj *o, const struct sd_jn_str *name,
                 struct sd_jn_val *out)
{
    int found = 0;

    if (sd_jn_obj_get(vm, o, name->data, name->len, out, &found) != 0) {
        return SD_JN_ERR;
    }
    return found ? 0 : sd_jn_throw(vm, "field does not exist: %s", name->data);
}

static void put(struct sd_buf *b, const struct sd_jn_str *s)
{
    sd_buf_append(b, s->data, s->len);
}

/* Ends a native that built its text in b. */
static int finish(struct sd_jn_vm *vm, int rc, struct sd_buf *b, struct sd_jn_val *out)
{
    if (rc == 0) {
        sd__jn_buf_string(vm, b, out);
    }
    sd_buf_fini(b);
    return rc;
}

/* --- INI --------------------------------------------------------------------------------- */

/* "k = v" lines of an INI section body (an array value gives one line per element). */
static int ini_body(struct sd_jn_vm *vm, const struct sd_jn_val *body, struct sd_buf *b)
{
    struct sd_jn_str **names;
    struct sd_jn_val v;
    struct sd_jn_val e;
    size_t n;
    size_t i;
    size_t j;

    if (sd__jn_want(vm, "manifestIni", 0, body, SD_JN_OBJECT) != 0 ||
        visible_fields(vm, body->u.o, &names, &n) != 0) {
        return SD_JN_ERR;
    }
    for (i = 0; i < n; i++) {
        if (field(vm, body->u.o, names[i], &v) != 0) {
            return SD_JN_ERR;
        }
        for (j = 0; j < (v.type == SD_JN_ARRAY ? sd_jn_arr_len(v.u.a) : 1); j++) {
            if (v.type == SD_JN_ARRAY) {
                if (sd_jn_arr_get(vm, v.u.a, j, &e) != 0) {
                    return SD_JN_ERR;
                }
            } else {
                e = v;
            }
            put(b, names[i]);
            sd_buf_append_str(b, " = ");
            if (sd_jn_to_string(vm, &e, b) != 0) {
                return SD_JN_ERR;
            }
            sd_buf_append_char(b, '\n');
        }
    }
    return 0;
}

SD__JN_NATIVE(manifestIni)
{
    struct sd_buf b = sd_jn_buf(vm);
    struct sd_jn_str **names;
    struct sd_jn_val v;
    struct sd_jn_val sections;
    size_t n;
    size_t i;
    int rc = SD_JN_ERR;
    int found = 0;

    if (sd__jn_want(vm, "manifestIni", 0, &args[0], SD_JN_OBJECT) != 0) {
        goto done;
    }
    if (sd_jn_obj_has(vm, args[0].u.o, "main", 4, 0)) {
        if (sd_jn_obj_get(vm, args[0].u.o, "main", 4, &v, &found) != 0 || ini_body(vm, &v, &b)) {
            goto done;
        }
    }
    if (sd_jn_obj_get(vm, args[0].u.o, "sections", 8, &sections, &found) != 0) {
        goto done;
    }
    if (!found) {
        sd_jn_throw(vm, "field does not exist: sections");
        goto done;
    }
    if (sd__jn_want(vm, "manifestIni", 0, &sections, SD_JN_OBJECT) != 0 ||
        visible_fields(vm, sections.u.o, &names, &n) != 0) {
        goto done;
    }
    for (i = 0; i < n; i++) {
        if (field(vm, sections.u.o, names[i], &v) != 0) {
            goto done;
        }
        sd_buf_append_char(&b, '[');
        put(&b, names[i]);
        sd_buf_append_str(&b, "]\n");
        if (ini_body(vm, &v, &b) != 0) {
            goto done;
        }
    }
    rc = 0;
done:
    return finish(vm, rc, &b, out);
}

/* --- Python ------------------------------------------------------------------------------ */

static int python(struct sd_jn_vm *vm, const struct sd_jn_val *v, unsigned depth, struct sd_buf *b)
{
    struct sd_jn_str **names;
    struct sd_jn_val e;
    size_t n;
    size_t i;

    if (too_deep(vm, "manifestPython", depth) != 0) {
        return SD_JN_ERR;
    }
    switch (v->type) {
    case SD_JN_OBJECT:
        if (visible_fields(vm, v->u.o, &names, &n) != 0) {
            return SD_JN_ERR;
        }
        sd_buf_append_char(b, '{');
        for (i = 0; i < n; i++) {
            if (field(vm, v->u.o, names[i], &e) != 0) {
                return SD_JN_ERR;
            }
            sd_buf_append_str(b, i ? ", " : "");
            sd_jn_escape_string(b, names[i]->data, names[i]->len);
            sd_buf_append_str(b, ": ");
            if (python(vm, &e, depth + 1, b) != 0) {
                return SD_JN_ERR;
            }
        }
        sd_buf_append_char(b, '}');
        return 0;
    case SD_JN_ARRAY:
        sd_buf_append_char(b, '[');
        for (i = 0; i < sd_jn_arr_len(v->u.a); i++) {
            sd_buf_append_str(b, i ? ", " : "");
            if (sd_jn_arr_get(vm, v->u.a, i, &e) != 0 || python(vm, &e, depth + 1, b) != 0) {
                return SD_JN_ERR;
            }
        }
        sd_buf_append_char(b, ']');
        return 0;
    case SD_JN_STRING:
        sd_jn_escape_string(b, v->u.s->data, v->u.s->len);
        return 0;
    case SD_JN_NUMBER:
        sd_jn_format_number(b, v->u.n);
        return 0;
    case SD_JN_BOOL:
        sd_buf_append_str(b, v->u.b ? "True" : "False");
        return 0;
    case SD_JN_NULL:
        sd_buf_append_str(b, "None");
        return 0;
    default:
        return sd_jn_throw(vm, "cannot manifest function");
    }
}

SD__JN_NATIVE(manifestPython)
{
    struct sd_buf b = sd_jn_buf(vm);

    return finish(vm, python(vm, &args[0], 0, &b), &b, out);
}

SD__JN_NATIVE(manifestPythonVars)
{
    struct sd_buf b = sd_jn_buf(vm);
    struct sd_jn_str **names;
    struct sd_jn_val v;
    size_t n;
    size_t i;
    int rc = SD_JN_ERR;

    if (sd__jn_want(vm, "manifestPythonVars", 0, &args[0], SD_JN_OBJECT) != 0 ||
        visible_fields(vm, args[0].u.o, &names, &n) != 0) {
        goto done;
    }
    for (i = 0; i < n; i++) {
        put(&b, names[i]);
        sd_buf_append_str(&b, " = ");
        if (field(vm, args[0].u.o, names[i], &v) != 0 || python(vm, &v, 1, &b) != 0) {
            goto done;
        }
        sd_buf_append_char(&b, '\n');
    }
    rc = 0;
done:
    return finish(vm, rc, &b, out);
}

/* --- XML (JsonML) ------------------------------------------------------------------------ */

static int jsonml(struct sd_jn_vm *vm, const struct sd_jn_val *v, unsigned depth, struct sd_buf *b)
{
    struct sd_jn_val tag;
    struct sd_jn_val attrs;
    struct sd_jn_val e;
    struct sd_jn_str **names;
    size_t len;
    size_t first = 1;
    size_t n;
    size_t i;

    if (too_deep(vm, "manifestXmlJsonml", depth) != 0) {
        return SD_JN_ERR;
    }
    if (v->type == SD_JN_STRING) {
        put(b, v->u.s);
        return 0;
    }
    if (v->type != SD_JN_ARRAY || sd_jn_arr_len(v->u.a) == 0) {
        return sd_jn_throw(vm,
                           "std.manifestXmlJsonml: an element must be a string or a "
                           "non-empty array [tag, {attributes}, children...], got %s",
                           v->type == SD_JN_ARRAY ? "an empty array" : sd_jn_type_name(v->type));
    }
    len = sd_jn_arr_len(v->u.a);
    if (sd_jn_arr_get(vm, v->u.a, 0, &tag) != 0) {
        return SD_JN_ERR;
    }
    if (tag.type != SD_JN_STRING) {
        return sd_jn_throw(vm, "std.manifestXmlJsonml: a tag must be a string, got %s",
                           sd_jn_type_name(tag.type));
    }
    sd_buf_append_char(b, '<');
    put(b, tag.u.s);
    if (len > 1) {
        if (sd_jn_arr_get(vm, v->u.a, 1, &attrs) != 0) {
            return SD_JN_ERR;
        }
        if (attrs.type == SD_JN_OBJECT) {
            first = 2;
            if (visible_fields(vm, attrs.u.o, &names, &n) != 0) {
                return SD_JN_ERR;
            }
            for (i = 0; i < n; i++) {
                sd_buf_append_char(b, ' ');
                put(b, names[i]);
                sd_buf_append_str(b, "=\"");
                if (field(vm, attrs.u.o, names[i], &e) != 0 || sd_jn_to_string(vm, &e, b) != 0) {
                    return SD_JN_ERR;
                }
                sd_buf_append_char(b, '"');
            }
        }
    }
    sd_buf_append_char(b, '>');
    for (i = first; i < len; i++) {
        if (sd_jn_arr_get(vm, v->u.a, i, &e) != 0 || jsonml(vm, &e, depth + 1, b) != 0) {
            return SD_JN_ERR;
        }
    }
    sd_buf_append_str(b, "</");
    put(b, tag.u.s);
    sd_buf_append_char(b, '>');
    return 0;
}

SD__JN_NATIVE(manifestXmlJsonml)
{
    struct sd_buf b = sd_jn_buf(vm);

    if (args[0].type != SD_JN_ARRAY) {
        sd_buf_fini(&b);
        return sd_jn_throw(vm, "Expected a JSONML value (an array), got %s",
                           sd_jn_type_name(args[0].type));
    }
    return finish(vm, jsonml(vm, &args[0], 0, &b), &b, out);
}

/* --- TOML -------------------------------------------------------------------------------- */

/* Where a TOML value is, for errors: keys and indexes from the top, printed as go-jsonnet
 * prints its path ("[a 0 b]"). */
struct tpath {
    const struct tpath *up;
    const struct sd_jn_str *key; /* NULL: index */
    size_t index;
};

static void tpath_print(struct sd_buf *b, const struct tpath *p)
{
    if (p == NULL) {
        return;
    }
    if (p->up != NULL) {
        tpath_print(b, p->up);
        sd_buf_append_char(b, ' ');
    }
    if (p->key != NULL) {
        put(b, p->key);
    } else {
        sd_buf_printf(b, "%zu", p->index);
    }
}

static int tpath_error(struct sd_jn_vm *vm, const char *what, const struct tpath *p)
{
    struct sd_buf b = sd_jn_buf(vm);
    int rc;

    sd_buf_append_char(&b, '[');
    tpath_print(&b, p);
    sd_buf_append_char(&b, ']');
    rc = sd_jn_throw(vm, "Tried to manifest %s at %s", what, sd_buf_cstr(&b));
    sd_buf_fini(&b);
    return rc;
}

/* A key bare when it is [A-Za-z0-9_-]+, '' when empty, else a quoted string. */
static void toml_key(struct sd_buf *b, const struct sd_jn_str *k)
{
    size_t i;

    if (k->len == 0) {
        sd_buf_append_str(b, "''");
        return;
    }
    for (i = 0; i < k->len; i++) {
        char c = k->data[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_')) {
            sd_jn_escape_string(b, k->data, k->len);
            return;
        }
    }
    put(b, k);
}

/* go-jsonnet's unparseNumber: integers as "%.0f", others "%.17g". */
static void toml_number(struct sd_buf *b, double x)
{
    sd_buf_printf(b, x == floor(x) ? "%.0f" : "%.17g", x);
}

/* A section: an object, or a non-empty array of objects only. */
static int toml_is_section(struct sd_jn_vm *vm, const struct sd_jn_val *v, int *is)
{
    struct sd_jn_val e;
    size_t i;

    *is = v->type == SD_JN_OBJECT;
    if (v->type != SD_JN_ARRAY || sd_jn_arr_len(v->u.a) == 0) {
        return 0;
    }
    for (i = 0; i < sd_jn_arr_len(v->u.a); i++) {
        if (sd_jn_arr_get(vm, v->u.a, i, &e) != 0) {
            return SD_JN_ERR;
        }
        if (e.type != SD_JN_OBJECT) {
            return 0;
        }
    }
    *is = 1;
    return 0;
}

struct toml {
    struct sd_jn_vm *vm;
    const struct sd_jn_str *indent;
    struct sd_buf *b;
};

static int toml_value(struct toml *t, const struct sd_jn_val *v, const struct tpath *path,
                      int is_inline, unsigned depth)
{
    struct sd_buf *b = t->b;
    struct sd_jn_str **names;
    struct sd_jn_val e;
    size_t n;
    size_t i;

    if (too_deep(t->vm, "manifestTomlEx", depth) != 0) {
        return SD_JN_ERR;
    }
    switch (v->type) {
    case SD_JN_NULL:
        return tpath_error(t->vm, "\"null\"", path);
    case SD_JN_BOOL:
        sd_buf_append_str(b, v->u.b ? "true" : "false");
        return 0;
    case SD_JN_NUMBER:
        toml_number(b, v->u.n);
        return 0;
    case SD_JN_STRING:
        sd_jn_escape_string(b, v->u.s->data, v->u.s->len);
        return 0;
    case SD_JN_ARRAY:
        n = sd_jn_arr_len(v->u.a);
        if (n == 0) {
            sd_buf_append_str(b, "[]");
            return 0;
        }
        sd_buf_append_str(b, is_inline ? "[ " : "[\n");
        for (i = 0; i < n; i++) {
            struct tpath p = {path, NULL, i};
            if (i > 0) {
                sd_buf_append_str(b, is_inline ? ", " : ",\n");
            }
            if (!is_inline) {
                put(b, t->indent);
            }
            if (sd_jn_arr_get(t->vm, v->u.a, i, &e) != 0 || toml_value(t, &e, &p, 1, depth + 1)) {
                return SD_JN_ERR;
            }
        }
        sd_buf_append_str(b, is_inline ? " ]" : "\n]");
        return 0;
    case SD_JN_OBJECT:
        if (visible_fields(t->vm, v->u.o, &names, &n) != 0) {
            return SD_JN_ERR;
        }
        sd_buf_append_str(b, "{ ");
        for (i = 0; i < n; i++) {
            struct tpath p = {path, names[i], 0};
            sd_buf_append_str(b, i ? ", " : "");
            toml_key(b, names[i]);
            sd_buf_append_str(b, " = ");
            if (field(t->vm, v->u.o, names[i], &e) != 0 || toml_value(t, &e, &p, 1, depth + 1)) {
                return SD_JN_ERR;
            }
        }
        sd_buf_append_str(b, " }");
        return 0;
    default:
        return tpath_error(t->vm, "function", path);
    }
}

/* The dotted header keys of a table: the keys of path (indexes skipped). */
struct tkeys {
    const struct tkeys *up;
    const struct sd_jn_str *key;
};

static void toml_header(struct sd_buf *b, const struct tkeys *k)
{
    if (k->up != NULL) {
        toml_header(b, k->up);
        sd_buf_append_char(b, '.');
    }
    toml_key(b, k->key);
}

static int toml_table(struct toml *t, struct sd_jn_obj *o, const struct tkeys *keys,
                      const struct tpath *path, size_t level, unsigned depth);

/* "[a.b]" or "[[a.b]]" (array) at level, then the table's body a level deeper. */
static int toml_section(struct toml *t, struct sd_jn_obj *o, const struct tkeys *keys,
                        const struct tpath *path, size_t level, int array, unsigned depth)
{
    struct sd_jn_str **names;
    size_t n;
    size_t i;

    for (i = 0; i < level; i++) {
        put(t->b, t->indent);
    }
    sd_buf_append_str(t->b, array ? "[[" : "[");
    toml_header(t->b, keys);
    sd_buf_append_str(t->b, array ? "]]" : "]");
    if (visible_fields(t->vm, o, &names, &n) != 0) {
        return SD_JN_ERR;
    }
    if (n > 0) {
        sd_buf_append_char(t->b, '\n');
    }
    return toml_table(t, o, keys, path, level + 1, depth + 1);
}

/* A table's body at level: its plain keys first ("k = v" lines, a multi-line array's lines
 * indented too), then each section after a blank line. */
static int toml_table(struct toml *t, struct sd_jn_obj *o, const struct tkeys *keys,
                      const struct tpath *path, size_t level, unsigned depth)
{
    struct sd_buf line = sd_jn_buf(t->vm);
    struct sd_buf *b = t->b;
    struct sd_jn_str **names;
    struct sd_jn_val v;
    struct sd_jn_val e;
    size_t n;
    size_t i;
    size_t j;
    size_t k;
    size_t nplain = 0;
    int is;
    int rc = SD_JN_ERR;

    if (too_deep(t->vm, "manifestTomlEx", depth) != 0 ||
        visible_fields(t->vm, o, &names, &n) != 0) {
        goto done;
    }
    for (i = 0; i < n; i++) {
        struct tpath p = {path, names[i], 0};
        if (field(t->vm, o, names[i], &v) != 0 || toml_is_section(t->vm, &v, &is) != 0) {
            goto done;
        }
        if (is) {
            continue;
        }
        if (nplain++ > 0) {
            sd_buf_append_char(b, '\n');
        }
        for (k = 0; k < level; k++) {
            put(b, t->indent);
        }
        sd_buf_reset(&line);
        t->b = &line;
        toml_key(&line, names[i]);
        sd_buf_append_str(&line, " = ");
        rc = toml_value(t, &v, &p, 0, depth + 1);
        t->b = b;
        if (rc != 0) {
            goto done;
        }
        rc = SD_JN_ERR;
        for (j = 0; j < line.len; j++) {
            sd_buf_append_char(b, line.data[j]);
            for (k = 0; line.data[j] == '\n' && k < level; k++) {
                put(b, t->indent);
            }
        }
    }
    for (i = 0; i < n; i++) {
        struct tpath p = {path, names[i], 0};
        struct tkeys kk = {keys, names[i]};
        if (field(t->vm, o, names[i], &v) != 0 || toml_is_section(t->vm, &v, &is) != 0) {
            goto done;
        }
        if (!is) {
            continue;
        }
        sd_buf_append_str(b, "\n\n");
        if (v.type == SD_JN_OBJECT) {
            if (toml_section(t, v.u.o, &kk, &p, level, 0, depth) != 0) {
                goto done;
            }
            continue;
        }
        for (j = 0; j < sd_jn_arr_len(v.u.a); j++) {
            struct tpath pj = {&p, NULL, j};
            if (j > 0) {
                sd_buf_append_str(b, "\n\n");
            }
            if (sd_jn_arr_get(t->vm, v.u.a, j, &e) != 0 ||
                toml_section(t, e.u.o, &kk, &pj, level, 1, depth) != 0) {
                goto done;
            }
        }
    }
    rc = 0;
done:
    sd_buf_fini(&line);
    return rc;
}

SD__JN_NATIVE(manifestTomlEx)
{
    struct sd_buf b = sd_jn_buf(vm);
    struct toml t = {vm, NULL, &b};

    if (sd__jn_want(vm, "manifestTomlEx", 1, &args[1], SD_JN_STRING) != 0) {
        sd_buf_fini(&b);
        return SD_JN_ERR;
    }
    if (args[0].type != SD_JN_OBJECT) {
        sd_buf_fini(&b);
        return sd_jn_throw(vm, "TOML body must be an object. Got %s",
                           sd_jn_type_name(args[0].type));
    }
    t.indent = args[1].u.s;
    return finish(vm, toml_table(&t, args[0].u.o, NULL, NULL, 0, 0), &b, out);
}

SD__JN_NATIVE(manifestToml)
{
    struct sd_jn_val a[2] = {args[0], sd_jn_string(vm, "  ", 2)};

    return sd__jn_std_manifestTomlEx(vm, a, out);
}

/* --- YAML -------------------------------------------------------------------------------- */

#define YAML_INDENT "  "

/* x as Go's strconv.FormatFloat(x, 'f', -1, 64): the shortest digits that read back as x,
 * written without an exponent. */
static void yaml_number(struct sd_buf *b, double x)
{
    char e[40];
    char digits[20];
    int prec;
    int exp10;
    size_t nd = 0;
    size_t i;
    const char *p;

    for (prec = 1; prec <= 17; prec++) {
        snprintf(e, sizeof(e), "%.*e", prec - 1, x);
        if (strtod(e, NULL) == x) {
            break;
        }
    }
    p = e;
    if (*p == '-') {
        sd_buf_append_char(b, '-');
        p++;
    }
    for (; *p != 'e'; p++) {
        if (*p != '.') {
            digits[nd++] = *p;
        }
    }
    exp10 = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0') {
        nd--;
    }
    if (exp10 < 0) {
        sd_buf_append_str(b, "0.");
        for (i = 0; i < (size_t)(-exp10 - 1); i++) {
            sd_buf_append_char(b, '0');
        }
        sd_buf_append(b, digits, nd);
        return;
    }
    for (i = 0; i <= (size_t)exp10 || i < nd; i++) {
        if (i == (size_t)exp10 + 1) {
            sd_buf_append_char(b, '.');
        }
        sd_buf_append_char(b, i < nd ? digits[i] : '0');
    }
}

static int ascii_ieq(const char *a, size_t alen, const char *b)
{
    size_t i;

    if (alen != strlen(b)) {
        return 0;
    }
    for (i = 0; i < alen; i++) {
        char c = a[i];
        if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
        }
        if (c != b[i]) {
            return 0;
        }
    }
    return 1;
}

/* Go's strconv.ParseFloat accepting s (only the characters a bare key may hold reach here:
 * letters, digits, _ - / .): [-]inf/infinity/nan, or decimal digits with one '.', an optional
 * exponent, '_' only between digits; a result out of range is an error there. */
static int go_parses_float(const char *s, size_t len)
{
    char tmp[64];
    size_t i = 0;
    size_t k = 0;
    size_t ndig = 0;
    int seen_dot = 0;
    char prev = '^';
    double d;

    if (len > 0 && s[0] == '-') {
        i = 1;
    }
    if (ascii_ieq(s + i, len - i, "inf") || ascii_ieq(s + i, len - i, "infinity") ||
        (i == 0 && ascii_ieq(s, len, "nan"))) {
        return 1;
    }
    if (len - i >= 2 && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
        return 0; /* hex floats need a 'p' exponent, which a bare key cannot spell with '+' */
    }
    for (; i < len; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') {
            ndig++;
        } else if (c == '_') {
            if (prev < '0' || prev > '9') {
                return 0;
            }
        } else if (c == '.' && !seen_dot) {
            seen_dot = 1;
        } else {
            break;
        }
        prev = c;
    }
    if (prev == '_' || ndig == 0) {
        return 0;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '-' || s[i] == '+')) {
            i++;
        }
        if (i >= len || s[i] < '0' || s[i] > '9') {
            return 0;
        }
        for (prev = '0'; i < len && ((s[i] >= '0' && s[i] <= '9') || s[i] == '_'); i++) {
            if (s[i] == '_' && (prev < '0' || prev > '9')) {
                return 0;
            }
            prev = s[i];
        }
        if (prev == '_') {
            return 0;
        }
    }
    if (i != len) {
        return 0;
    }
    for (i = 0; i < len && k + 1 < sizeof(tmp); i++) {
        if (s[i] != '_') {
            tmp[k++] = s[i];
        }
    }
    tmp[k] = '\0';
    d = strtod(tmp, NULL);
    return len >= sizeof(tmp) || isfinite(d);
}

/* go-jsonnet's yamlBareSafe: a key that needs no quotes in YAML. */
static int yaml_bare_safe(const struct sd_jn_str *k)
{
    static const char *const reserved[] = {"true", "false", "yes",  "no",    "on",    "off",
                                           "y",    "n",     ".nan", "-.inf", "+.inf", ".inf",
                                           "null", "-",     "---",  "''"};
    const char *s = k->data;
    size_t len = k->len;
    size_t i;
    size_t j;
    size_t dashes = 0;
    int digits_dashes = 1;

    if (len == 0) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '/' || c == '.')) {
            return 0;
        }
        dashes += c == '-';
        digits_dashes &= (c >= '0' && c <= '9') || c == '-';
    }
    for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        if (ascii_ieq(s, len, reserved[i])) {
            return 0;
        }
    }
    if (digits_dashes && dashes == 2) { /* ^(?:[0-9]*-){2}[0-9]*$: a date */
        return 0;
    }
    /* ^[-+]?0b[0-1_]+$ */
    i = s[0] == '-' ? 1 : 0;
    if (len > i + 2 && s[i] == '0' && s[i + 1] == 'b') {
        for (j = i + 2; j < len && (s[j] == '0' || s[j] == '1' || s[j] == '_'); j++) {
        }
        if (j == len) {
            return 0;
        }
    }
    /* [-+]?0x[0-9a-fA-F_]+ anywhere */
    for (i = 0; i + 2 < len; i++) {
        char c = s[i + 2];
        if (s[i] == '0' && s[i + 1] == 'x' &&
            ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
             c == '_')) {
            return 0;
        }
    }
    /* strconv.Atoi accepts [-]digits, strconv.ParseFloat decimal floats */
    return !go_parses_float(s, len);
}

struct yaml {
    struct sd_jn_vm *vm;
    int indent_array_in_object;
    int quote_keys;
    struct sd_buf *b;
};

static int is_nonempty_array(const struct sd_jn_val *v)
{
    return v->type == SD_JN_ARRAY && sd_jn_arr_len(v->u.a) > 0;
}

/* go-jsonnet's manifestYamlDoc. cindent is the indentation of the value's own lines. */
static int yaml_value(struct yaml *y, const struct sd_jn_val *v, size_t cindent, unsigned depth)
{
    struct sd_buf *b = y->b;
    struct sd_jn_str **names;
    struct sd_jn_val e;
    size_t n;
    size_t i;
    size_t k;
    size_t ci;

    if (too_deep(y->vm, "manifestYamlDoc", depth) != 0) {
        return SD_JN_ERR;
    }
    switch (v->type) {
    case SD_JN_NULL:
        sd_buf_append_str(b, "null");
        return 0;
    case SD_JN_BOOL:
        sd_buf_append_str(b, v->u.b ? "true" : "false");
        return 0;
    case SD_JN_NUMBER:
        yaml_number(b, v->u.n);
        return 0;
    case SD_JN_STRING: {
        const char *s = v->u.s->data;
        size_t len = v->u.s->len;
        if (len == 0) {
            sd_buf_append_str(b, "\"\"");
        } else if (s[len - 1] == '\n') { /* a literal block, one trailing newline dropped */
            sd_buf_append_char(b, '|');
            len--;
            for (i = 0;;) {
                const char *nl = memchr(s + i, '\n', len - i);
                size_t end = nl != NULL ? (size_t)(nl - s) : len;
                sd_buf_append_char(b, '\n');
                for (k = 0; k < cindent; k++) {
                    sd_buf_append_str(b, YAML_INDENT);
                }
                sd_buf_append_str(b, YAML_INDENT);
                sd_buf_append(b, s + i, end - i);
                if (nl == NULL) {
                    break;
                }
                i = end + 1;
            }
        } else {
            sd_jn_escape_string(b, s, len);
        }
        return 0;
    }
    case SD_JN_ARRAY:
        n = sd_jn_arr_len(v->u.a);
        if (n == 0) {
            sd_buf_append_str(b, "[]");
            return 0;
        }
        for (i = 0; i < n; i++) {
            if (i > 0) {
                sd_buf_append_char(b, '\n');
                for (k = 0; k < cindent; k++) {
                    sd_buf_append_str(b, YAML_INDENT);
                }
            }
            if (sd_jn_arr_get(y->vm, v->u.a, i, &e) != 0) {
                return SD_JN_ERR;
            }
            sd_buf_append_char(b, '-');
            if (is_nonempty_array(&e)) {
                sd_buf_append_char(b, '\n');
                for (k = 0; k <= cindent; k++) {
                    sd_buf_append_str(b, YAML_INDENT);
                }
            } else {
                sd_buf_append_char(b, ' ');
            }
            ci = cindent + (e.type == SD_JN_ARRAY || e.type == SD_JN_OBJECT);
            if (yaml_value(y, &e, ci, depth + 1) != 0) {
                return SD_JN_ERR;
            }
        }
        return 0;
    case SD_JN_OBJECT:
        if (visible_fields(y->vm, v->u.o, &names, &n) != 0) {
            return SD_JN_ERR;
        }
        if (n == 0) {
            sd_buf_append_str(b, "{}");
            return 0;
        }
        for (i = 0; i < n; i++) {
            if (field(y->vm, v->u.o, names[i], &e) != 0) {
                return SD_JN_ERR;
            }
            if (i > 0) {
                sd_buf_append_char(b, '\n');
                for (k = 0; k < cindent; k++) {
                    sd_buf_append_str(b, YAML_INDENT);
                }
            }
            if (y->quote_keys || !yaml_bare_safe(names[i])) {
                sd_jn_escape_string(b, names[i]->data, names[i]->len);
            } else {
                put(b, names[i]);
            }
            sd_buf_append_char(b, ':');
            ci = cindent;
            if (is_nonempty_array(&e)) {
                sd_buf_append_char(b, '\n');
                for (k = 0; k < cindent; k++) {
                    sd_buf_append_str(b, YAML_INDENT);
                }
                if (y->indent_array_in_object) {
                    sd_buf_append_str(b, YAML_INDENT);
                    ci++;
                }
            } else if (e.type == SD_JN_OBJECT) {
                struct sd_jn_str **sub;
                size_t nsub;
                if (visible_fields(y->vm, e.u.o, &sub, &nsub) != 0) {
                    return SD_JN_ERR;
                }
                if (nsub > 0) {
                    sd_buf_append_char(b, '\n');
                    for (k = 0; k <= cindent; k++) {
                        sd_buf_append_str(b, YAML_INDENT);
                    }
                    ci++;
                } else {
                    sd_buf_append_char(b, ' ');
                }
            } else {
                sd_buf_append_char(b, ' ');
            }
            if (yaml_value(y, &e, ci, depth + 1) != 0) {
                return SD_JN_ERR;
            }
        }
        return 0;
    default:
        return 0; /* go-jsonnet writes nothing for a function */
    }
}

/* The optional boolean argument i (def when absent). */
static int opt_bool(struct sd_jn_vm *vm, const char *fn, const struct sd_jn_val *args, unsigned i,
                    int def, int *out)
{
    if (args[i].type == SD_JN_ABSENT) {
        *out = def;
        return 0;
    }
    if (sd__jn_want(vm, fn, i, &args[i], SD_JN_BOOL) != 0) {
        return SD_JN_ERR;
    }
    *out = args[i].u.b;
    return 0;
}

SD__JN_NATIVE(manifestYamlDoc)
{
    struct sd_buf b = sd_jn_buf(vm);
    struct yaml y = {vm, 0, 1, &b};

    if (opt_bool(vm, "manifestYamlDoc", args, 1, 0, &y.indent_array_in_object) != 0 ||
        opt_bool(vm, "manifestYamlDoc", args, 2, 1, &y.quote_keys) != 0) {
        sd_buf_fini(&b);
        return SD_JN_ERR;
    }
    return finish(vm, yaml_value(&y, &args[0], 0, 0), &b, out);
}

/* std.jsonnet's: "---\n" + the documents joined by "\n---\n" + "\n...\n" (or "\n" without
 * c_document_end). */
SD__JN_NATIVE(manifestYamlStream)
{
    struct sd_buf b = sd_jn_buf(vm);
    struct yaml y = {vm, 0, 1, &b};
    struct sd_jn_val e;
    int doc_end;
    size_t i;
    int rc = SD_JN_ERR;

    if (args[0].type != SD_JN_ARRAY) {
        sd_buf_fini(&b);
        return sd_jn_throw(vm, "manifestYamlStream only takes arrays, got %s",
                           sd_jn_type_name(args[0].type));
    }
    if (opt_bool(vm, "manifestYamlStream", args, 1, 0, &y.indent_array_in_object) != 0 ||
        opt_bool(vm, "manifestYamlStream", args, 2, 1, &doc_end) != 0 ||
        opt_bool(vm, "manifestYamlStream", args, 3, 1, &y.quote_keys) != 0) {
        goto done;
    }
    sd_buf_append_str(&b, "---\n");
    for (i = 0; i < sd_jn_arr_len(args[0].u.a); i++) {
        if (i > 0) {
            sd_buf_append_str(&b, "\n---\n");
        }
        if (sd_jn_arr_get(vm, args[0].u.a, i, &e) != 0 || yaml_value(&y, &e, 0, 0) != 0) {
            goto done;
        }
    }
    sd_buf_append_str(&b, doc_end ? "\n...\n" : "\n");
    rc = 0;
done:
    return finish(vm, rc, &b, out);
}
