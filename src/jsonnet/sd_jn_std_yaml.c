/* sd_jn_std_yaml.c: std.parseYaml with go-jsonnet 0.22's results: the text is cut into documents
 * at "---" lines as go-jsonnet's reader does (any such line makes the result an array of the
 * documents, else it is the one document), and each document is read with libyaml's event
 * parser and converted as sigs.k8s.io/yaml (yaml.v2 then JSON) does: YAML 1.1 plain scalars
 * (yes/no/on/off/y/n booleans, ~ null, 0x/0o/0b/leading-0 integers, '_' in numbers), merge keys
 * (<<), later duplicate keys winning, non-string keys written as strings, infinities and NaN
 * rejected.
 *
 * Bounds: aliases share the anchored value (no copy), and each use is charged the steps its
 * expansion would take, so an alias bomb ("billion laughs") fails the step limit instead of
 * growing; every buffer counts against the memory limit; nesting is bounded by
 * SD__JN_YAML_MAX_DEPTH. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "jsonnet/sd_jn_std_int.h"

#define SD__JN_YAML_MAX_DEPTH 1000

/* What a scalar resolves to. */
enum ykind { Y_NULL, Y_BOOL, Y_INT, Y_FLOAT, Y_STR, Y_MERGE };

struct yscalar {
    enum ykind kind;
    int b;
    double n;
};

static int is_one_of(const char *s, const char *const *words)
{
    for (; *words != NULL; words++) {
        if (strcmp(s, *words) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Go's strconv.ParseInt(s, 0, 64) / ParseUint over s without '_': [+-], then 0x / 0o / 0b /
 * leading 0 (octal) / decimal digits. Returns 1 with *out. Values beyond 64 bits fail. */
static int go_parse_int(const char *s, double *out)
{
    int neg = 0;
    int base = 10;
    const char *p = s;
    unsigned long long v = 0;
    unsigned long long lim;
    int d;

    if (*p == '+' || *p == '-') {
        neg = *p == '-';
        p++;
    }
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        p += 2;
    } else if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O')) {
        base = 8;
        p += 2;
    } else if (p[0] == '0' && (p[1] == 'b' || p[1] == 'B')) {
        base = 2;
        p += 2;
    } else if (p[0] == '0' && p[1] != '\0') {
        base = 8;
        p++;
    }
    if (*p == '\0') {
        return 0;
    }
    lim = neg ? (1ULL << 63) : UINT64_MAX;
    for (; *p != '\0'; p++) {
        if (*p >= '0' && *p <= '9') {
            d = *p - '0';
        } else if (*p >= 'a' && *p <= 'f') {
            d = *p - 'a' + 10;
        } else if (*p >= 'A' && *p <= 'F') {
            d = *p - 'A' + 10;
        } else {
            return 0;
        }
        if (d >= base || v > (lim - (unsigned)d) / (unsigned)base) {
            return 0;
        }
        v = v * (unsigned)base + (unsigned)d;
    }
    *out = neg && v != 0 ? -(double)v : (double)v;
    return 1;
}

/* yaml.v2's float syntax: ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$ */
static int yaml_float_syntax(const char *p)
{
    size_t n = 0;

    if (*p == '+' || *p == '-') {
        p++;
    }
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++) {
            n++;
        }
        if (n == 0) {
            return 0;
        }
    } else {
        for (; *p >= '0' && *p <= '9'; p++) {
            n++;
        }
        if (n == 0) {
            return 0;
        }
        if (*p == '.') {
            for (p++; *p >= '0' && *p <= '9'; p++) {
            }
        }
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') {
            p++;
        }
        for (n = 0; *p >= '0' && *p <= '9'; p++) {
            n++;
        }
        if (n == 0) {
            return 0;
        }
    }
    return *p == '\0';
}

/* Resolves a plain scalar as yaml.v2 does. plain is scratch of at least strlen(s) + 1 bytes. */
static struct yscalar resolve_plain(const char *s, char *plain)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"y",    "Y",    "yes", "Yes", "YES", "true",
                                        "True", "TRUE", "on",  "On",  "ON",  NULL};
    static const char *const falses[] = {"n",     "N",     "no",  "No",  "NO",  "false",
                                         "False", "FALSE", "off", "Off", "OFF", NULL};
    static const char *const infs[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", NULL};
    static const char *const ninfs[] = {"-.inf", "-.Inf", "-.INF", NULL};
    static const char *const nans[] = {".nan", ".NaN", ".NAN", NULL};
    struct yscalar r = {Y_STR, 0, 0};
    size_t k = 0;

    if (is_one_of(s, nulls)) {
        r.kind = Y_NULL;
    } else if (is_one_of(s, trues) || is_one_of(s, falses)) {
        r.kind = Y_BOOL;
        r.b = is_one_of(s, trues);
    } else if (strcmp(s, "<<") == 0) {
        r.kind = Y_MERGE;
    } else if (is_one_of(s, infs) || is_one_of(s, ninfs) || is_one_of(s, nans)) {
        r.kind = Y_FLOAT;
        r.n = is_one_of(s, nans) ? NAN : (is_one_of(s, infs) ? INFINITY : -INFINITY);
    } else if (strchr("+-.0123456789", s[0]) != NULL) {
        for (; *s != '\0'; s++) {
            if (*s != '_') {
                plain[k++] = *s;
            }
        }
        plain[k] = '\0';
        if (go_parse_int(plain, &r.n)) {
            r.kind = Y_INT;
        } else if (yaml_float_syntax(plain) && isfinite(strtod(plain, NULL))) {
            r.kind = Y_FLOAT; /* out of range (1e400) stays a string, as ParseFloat fails */
            r.n = strtod(plain, NULL);
        }
    }
    return r;
}

/* --- building values from events ---------------------------------------------------------- */

struct ynode {
    struct sd_jn_val v;
    uint64_t size; /* nodes in its expansion, aliases expanded (the steps a copy would take) */
};

struct ypair {
    struct sd_jn_str *key;
    struct sd_jn_val v;
    size_t pos;
};

struct yframe {
    int is_map;
    char *anchor;        /* to register when the node ends (malloc'd), or NULL */
    struct sd_buf items; /* struct ynode (sequence) or struct ypair (mapping) */
    int has_key;
    struct sd_jn_str *key;
    int key_is_merge;
    uint64_t size;
};

struct yanchor {
    char *name;
    struct ynode node;
};

struct ybuild {
    struct sd_jn_vm *vm;
    struct yframe *frames;
    size_t depth;
    struct sd_buf anchors; /* struct yanchor, latest definition last */
    struct ynode doc;
    int has_doc;
    char *scratch;
};

static int pair_cmp(const void *a, const void *b)
{
    const struct ypair *x = a;
    const struct ypair *y = b;
    int c = sd_jn_str_cmp(x->key, y->key);

    if (c != 0) {
        return c;
    }
    return x->pos < y->pos ? -1 : (x->pos > y->pos ? 1 : 0);
}

static struct sd_jn_val build_object(struct sd_jn_vm *vm, struct sd_buf *items)
{
    struct ypair *p = (struct ypair *)items->data;
    size_t n = items->len / sizeof(*p);
    size_t keep = 0;
    size_t i;
    struct sd_jn_obj *o;

    if (n > 1) {
        qsort(p, n, sizeof(*p), pair_cmp);
    }
    for (i = 0; i < n; i++) { /* of equal keys, the last one given wins */
        if (i + 1 == n || sd_jn_str_cmp(p[i].key, p[i + 1].key) != 0) {
            p[keep++] = p[i];
        }
    }
    o = sd_jn_obj_new(vm, keep);
    for (i = 0; i < keep; i++) {
        sd_jn_obj_set(vm, o, i, p[i].key, p[i].v);
    }
    return sd_jn_object(o);
}

static int add_pair(struct ybuild *yb, struct yframe *f, struct sd_jn_str *key,
                    const struct sd_jn_val *v)
{
    struct ypair p = {key, *v, f->items.len / sizeof(struct ypair)};

    if (sd_buf_append(&f->items, &p, sizeof(p)) != 0) {
        return sd_jn_tick(yb->vm, 1) == 0 ? sd_jn_throw(yb->vm, "std.parseYaml: out of memory")
                                          : SD_JN_ERR;
    }
    return 0;
}

/* A merge key's value: a mapping, or a sequence of mappings (the earlier ones win). */
static int merge(struct ybuild *yb, struct yframe *f, const struct sd_jn_val *v)
{
    struct sd_jn_str **names;
    struct sd_jn_val e;
    size_t n;
    size_t i;
    size_t j;

    if (v->type == SD_JN_OBJECT) {
        if (sd_jn_obj_fields(yb->vm, v->u.o, 0, &names, &n) != 0 || sd_jn_tick(yb->vm, n) != 0) {
            return SD_JN_ERR;
        }
        for (i = 0; i < n; i++) {
            int found;
            if (sd_jn_obj_get(yb->vm, v->u.o, names[i]->data, names[i]->len, &e, &found) != 0 ||
                add_pair(yb, f, names[i], &e) != 0) {
                return SD_JN_ERR;
            }
        }
        return 0;
    }
    if (v->type == SD_JN_ARRAY) {
        for (j = sd_jn_arr_len(v->u.a); j-- > 0;) {
            if (sd_jn_arr_get(yb->vm, v->u.a, j, &e) != 0) {
                return SD_JN_ERR;
            }
            if (e.type != SD_JN_OBJECT) {
                break;
            }
            if (merge(yb, f, &e) != 0) {
                return SD_JN_ERR;
            }
        }
        if (j == (size_t)-1) {
            return 0;
        }
    }
    return sd_jn_throw(yb->vm, "failed to parse YAML: yaml: map merge requires map or sequence "
                               "of maps as the value");
}

/* A mapping key as sigs.k8s.io/yaml writes it: strings as they are, numbers and booleans in
 * Go's text; other keys are an error. */
static int key_string(struct ybuild *yb, const struct ynode *node, enum ykind kind,
                      struct sd_jn_str **out)
{
    struct sd_buf b = sd_jn_buf(yb->vm);
    const struct sd_jn_val *v = &node->v;
    int p;

    switch (v->type) {
    case SD_JN_STRING:
        *out = v->u.s;
        sd_buf_fini(&b);
        return 0;
    case SD_JN_BOOL:
        sd_buf_append_str(&b, v->u.b ? "true" : "false");
        break;
    case SD_JN_NUMBER:
        if (kind == Y_INT) {
            sd_buf_printf(&b, "%.0f", v->u.n);
        } else { /* strconv.FormatFloat(f, 'g', -1, 32) */
            for (p = 1; p < 9; p++) {
                char t[40];
                snprintf(t, sizeof(t), "%.*g", p, v->u.n);
                if ((float)strtod(t, NULL) == (float)v->u.n) {
                    break;
                }
            }
            sd_buf_printf(&b, "%.*g", p, v->u.n);
        }
        break;
    default:
        sd_buf_fini(&b);
        return sd_jn_throw(yb->vm, "failed to parse YAML: unsupported map key of type %s",
                           sd_jn_type_name(v->type));
    }
    *out = sd_jn_str_new(yb->vm, b.data, b.len);
    sd_buf_fini(&b);
    return 0;
}

/* Hands a finished node (of the given scalar kind, or Y_STR for collections) to its parent. */
static int deliver(struct ybuild *yb, const struct ynode *node, enum ykind kind)
{
    struct yframe *f;

    if (yb->depth == 0) {
        if (!yb->has_doc) {
            yb->doc = *node;
            yb->has_doc = 1;
        }
        return 0;
    }
    f = &yb->frames[yb->depth - 1];
    f->size += node->size;
    if (!f->is_map) {
        if (sd_buf_append(&f->items, node, sizeof(*node)) != 0) {
            return sd_jn_tick(yb->vm, 1) == 0 ? sd_jn_throw(yb->vm, "std.parseYaml: out of memory")
                                              : SD_JN_ERR;
        }
        return 0;
    }
    if (!f->has_key) {
        f->has_key = 1;
        f->key_is_merge = kind == Y_MERGE;
        return f->key_is_merge ? 0 : key_string(yb, node, kind, &f->key);
    }
    f->has_key = 0;
    if (f->key_is_merge) {
        return merge(yb, f, &node->v);
    }
    return add_pair(yb, f, f->key, &node->v);
}

static int add_anchor(struct ybuild *yb, char *name, const struct ynode *node)
{
    struct yanchor a = {name, *node};

    if (sd_buf_append(&yb->anchors, &a, sizeof(a)) != 0) {
        free(name);
        return sd_jn_tick(yb->vm, 1) == 0 ? sd_jn_throw(yb->vm, "std.parseYaml: out of memory")
                                          : SD_JN_ERR;
    }
    return 0;
}

static char *dup_anchor(const yaml_char_t *a)
{
    return a != NULL ? strdup((const char *)a) : NULL;
}

/* The next node is a mapping's key. */
static int is_key(const struct ybuild *yb)
{
    return yb->depth > 0 && yb->frames[yb->depth - 1].is_map && !yb->frames[yb->depth - 1].has_key;
}

static int on_scalar(struct ybuild *yb, const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    struct yscalar r = {Y_STR, 0, 0};
    struct ynode node = {sd_jn_null(), 1};

    if (sd_jn_tick(yb->vm, SD__JN_STR_TICKS(len)) != 0) {
        return SD_JN_ERR;
    }
    if (tag != NULL && (strcmp(tag, YAML_STR_TAG) == 0 || strcmp(tag, "!") == 0)) {
        r.kind = Y_STR;
    } else if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE || tag != NULL) {
        if (strlen(s) == len) { /* a NUL inside keeps it a string */
            r = resolve_plain(s, yb->scratch);
        }
    }
    switch (r.kind) {
    case Y_NULL:
        break;
    case Y_BOOL:
        node.v = sd_jn_bool(r.b);
        break;
    case Y_INT:
    case Y_FLOAT:
        if (isfinite(r.n)) {
            node.v = sd_jn_number(r.n);
        } else if (is_key(yb)) { /* a key is written as yaml.v2 marshals it */
            const char *k = isnan(r.n) ? ".nan" : (r.n > 0 ? ".inf" : "-.inf");
            node.v = sd_jn_string(yb->vm, k, strlen(k));
            r.kind = Y_STR;
        } else {
            return sd_jn_throw(yb->vm, "failed to parse YAML: json: unsupported value: %s", s);
        }
        break;
    case Y_MERGE:
    case Y_STR:
        if (!sd_utf8_valid(s, len)) {
            return sd_jn_throw(yb->vm, "failed to parse YAML: invalid UTF-8");
        }
        node.v = sd_jn_string(yb->vm, s, len);
        break;
    }
    if (ev->data.scalar.anchor != NULL &&
        add_anchor(yb, dup_anchor(ev->data.scalar.anchor), &node) != 0) {
        return SD_JN_ERR;
    }
    return deliver(yb, &node, r.kind);
}

static int on_alias(struct ybuild *yb, const yaml_event_t *ev)
{
    const struct yanchor *a = (const struct yanchor *)yb->anchors.data;
    size_t i = yb->anchors.len / sizeof(*a);

    while (i-- > 0) {
        if (strcmp(a[i].name, (const char *)ev->data.alias.anchor) == 0) {
            if (sd_jn_tick(yb->vm, a[i].node.size) != 0) { /* what expanding it would cost */
                return SD_JN_ERR;
            }
            return deliver(yb, &a[i].node, a[i].node.v.type == SD_JN_STRING ? Y_STR : Y_INT);
        }
    }
    return sd_jn_throw(yb->vm, "failed to parse YAML: yaml: unknown anchor '%s' referenced",
                       (const char *)ev->data.alias.anchor);
}

static int on_start(struct ybuild *yb, int is_map, const yaml_char_t *anchor)
{
    struct yframe *f;

    if (yb->depth >= SD__JN_YAML_MAX_DEPTH) {
        return sd_jn_throw(yb->vm, "failed to parse YAML: nested more than %d levels deep",
                           SD__JN_YAML_MAX_DEPTH);
    }
    f = &yb->frames[yb->depth++];
    memset(f, 0, sizeof(*f));
    f->is_map = is_map;
    f->anchor = dup_anchor(anchor);
    f->items = sd_jn_buf(yb->vm);
    f->size = 1;
    return 0;
}

static void frame_fini(struct yframe *f)
{
    free(f->anchor);
    sd_buf_fini(&f->items);
}

static int on_end(struct ybuild *yb)
{
    struct yframe *f = &yb->frames[yb->depth - 1];
    struct ynode node = {sd_jn_null(), f->size};
    char *anchor = f->anchor;
    int rc;

    if (f->is_map) {
        node.v = build_object(yb->vm, &f->items);
    } else {
        const struct ynode *items = (const struct ynode *)f->items.data;
        size_t n = f->items.len / sizeof(*items);
        struct sd_jn_arr *a = sd_jn_arr_new(yb->vm, n);
        for (size_t i = 0; i < n; i++) {
            sd_jn_arr_set(yb->vm, a, i, items[i].v);
        }
        node.v = sd_jn_array(a);
    }
    f->anchor = NULL;
    frame_fini(f);
    yb->depth--;
    if (anchor != NULL && add_anchor(yb, anchor, &node) != 0) {
        return SD_JN_ERR;
    }
    rc = deliver(yb, &node, Y_STR);
    return rc;
}

/* Parses one document's text (go-jsonnet hands yaml.v2 each chunk; yaml.v2 reads the first
 * document in it) into *out; a chunk without a document (comments only) is null. */
static int parse_doc(struct sd_jn_vm *vm, const char *p, size_t len, struct yframe *frames,
                     char *scratch, struct sd_jn_val *out)
{
    struct ybuild yb;
    yaml_parser_t parser;
    yaml_event_t ev;
    int rc = SD_JN_ERR;
    int done = 0;
    size_t i;

    memset(&yb, 0, sizeof(yb));
    yb.vm = vm;
    yb.anchors = sd_jn_buf(vm);
    yb.frames = frames;
    yb.scratch = scratch;
    if (!yaml_parser_initialize(&parser)) {
        return sd_jn_throw(vm, "std.parseYaml: out of memory");
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)p, len);
    while (!done) {
        if (!yaml_parser_parse(&parser, &ev)) {
            sd_jn_throw(vm, "failed to parse YAML: yaml: line %zu: %s",
                        (size_t)parser.problem_mark.line + 1,
                        parser.problem != NULL ? parser.problem : "syntax error");
            goto out;
        }
        switch (ev.type) {
        case YAML_SCALAR_EVENT:
            rc = on_scalar(&yb, &ev);
            break;
        case YAML_ALIAS_EVENT:
            rc = on_alias(&yb, &ev);
            break;
        case YAML_SEQUENCE_START_EVENT:
            rc = on_start(&yb, 0, ev.data.sequence_start.anchor);
            break;
        case YAML_MAPPING_START_EVENT:
            rc = on_start(&yb, 1, ev.data.mapping_start.anchor);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            rc = on_end(&yb);
            break;
        case YAML_DOCUMENT_END_EVENT:
        case YAML_STREAM_END_EVENT:
            done = 1; /* the first document only */
            rc = 0;
            break;
        default:
            rc = sd_jn_tick(vm, 1);
            break;
        }
        yaml_event_delete(&ev);
        if (rc != 0) {
            goto out;
        }
    }
    *out = yb.has_doc ? yb.doc.v : sd_jn_null();
    rc = 0;
out:
    if (rc == 0) {
        rc = sd_jn_tick(vm, 1); /* reports a buffer's growth past the memory limit */
    }
    yaml_parser_delete(&parser);
    while (yb.depth > 0) {
        frame_fini(&yb.frames[--yb.depth]);
    }
    for (i = 0; i < yb.anchors.len / sizeof(struct yanchor); i++) {
        free(((struct yanchor *)yb.anchors.data)[i].name);
    }
    sd_buf_fini(&yb.anchors);
    return rc;
}

/* --- splitting into documents ------------------------------------------------------------- */

/* A line "---" followed by white space only: go-jsonnet's document separator. */
static int is_separator(const char *line, size_t len)
{
    size_t i;

    if (len < 3 || memcmp(line, "---", 3) != 0) {
        return 0;
    }
    for (i = 3; i < len; i++) {
        if (strchr(" \t\r\n\v\f", line[i]) == NULL) {
            return 0;
        }
    }
    return 1;
}

SD__JN_NATIVE(parseYaml)
{
    struct sd_buf docs = sd_jn_buf(vm); /* struct sd_jn_val */
    struct yframe *frames = NULL;
    char *scratch = NULL;
    const char *s;
    size_t len;
    size_t pos = 0;
    size_t start = 0;
    int stream = 0;
    struct sd_jn_val v;
    struct sd_jn_arr *a;
    size_t n;
    size_t i;
    int rc = SD_JN_ERR;

    if (sd__jn_want(vm, "parseYaml", 0, &args[0], SD_JN_STRING) != 0) {
        goto done;
    }
    s = args[0].u.s->data;
    len = args[0].u.s->len;
    if (sd_jn_tick(vm, SD__JN_STR_TICKS(len)) != 0) {
        goto done;
    }
    frames = calloc(SD__JN_YAML_MAX_DEPTH, sizeof(*frames));
    scratch = malloc(len + 1);
    if (frames == NULL || scratch == NULL) {
        sd_jn_throw(vm, "std.parseYaml: out of memory");
        goto done;
    }
    while (pos <= len) {
        const char *nl = pos < len ? memchr(s + pos, '\n', len - pos) : NULL;
        size_t end = nl != NULL ? (size_t)(nl - s) : len;
        int sep = is_separator(s + pos, end - pos);

        if (sep || end == len) {
            size_t chunk_end = sep ? pos : len;
            stream |= sep;
            if (chunk_end > start) {
                if (parse_doc(vm, s + start, chunk_end - start, frames, scratch, &v) != 0) {
                    goto done;
                }
                if (sd_buf_append(&docs, &v, sizeof(v)) != 0) {
                    if (sd_jn_tick(vm, 1) == 0) {
                        sd_jn_throw(vm, "std.parseYaml: out of memory");
                    }
                    goto done;
                }
            }
            start = end + 1;
        }
        if (nl == NULL) {
            break;
        }
        pos = end + 1;
    }
    n = docs.len / sizeof(struct sd_jn_val);
    if (!stream) {
        *out = n > 0 ? *(struct sd_jn_val *)docs.data : sd_jn_null();
        rc = 0;
        goto done;
    }
    a = sd_jn_arr_new(vm, n);
    for (i = 0; i < n; i++) {
        memcpy(&v, docs.data + i * sizeof(v), sizeof(v));
        sd_jn_arr_set(vm, a, i, v);
    }
    *out = sd_jn_array(a);
    rc = 0;
done:
    free(frames);
    free(scratch);
    sd_buf_fini(&docs);
    return rc;
}
