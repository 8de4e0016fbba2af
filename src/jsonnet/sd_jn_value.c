/* sd_jn_value.c: the engine's memory and value model: the arena, UTF-8 strings, arrays, objects
 * built by natives, field enumeration and lookup, equality and ordering.
 *
 * DESIGN. Values are allocated from chunked arenas that are freed at once (the VM's after each
 * evaluation, the program's with the program), so natives never free and nothing leaks on an
 * error path. Strings keep their code-point count, so Jsonnet's code-point indexing is O(1) for
 * ASCII. A simple object with more than a few fields gets an open-addressing index on first
 * lookup, so a large parsed body costs O(1) per field access. */
#include "jsonnet/sd_jn_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sd_alloc.h"

#define JN_CHUNK_SIZE (64 * 1024)
#define JN_INDEX_MIN_FIELDS 8

void *jn_chunk_alloc(struct jn_chunk **chunks, size_t size, size_t *total)
{
    struct jn_chunk *c = *chunks;
    void *p;

    size = (size + 15) & ~(size_t)15;
    if (c == NULL || c->size - c->used < size) {
        size_t cap = size > JN_CHUNK_SIZE / 4 ? size : JN_CHUNK_SIZE;
        struct jn_chunk *nc = sd_xmalloc(sizeof(*nc) + cap);
        nc->size = cap;
        nc->used = 0;
        if (c != NULL && cap != JN_CHUNK_SIZE) {
            /* a big block goes behind the current chunk, which keeps serving small ones */
            nc->next = c->next;
            c->next = nc;
        } else {
            nc->next = c;
            *chunks = nc;
        }
        *total += sizeof(*nc) + cap;
        c = nc;
    }
    p = c->data + c->used;
    c->used += size;
    memset(p, 0, size);
    return p;
}

void jn_chunks_free(struct jn_chunk *chunks)
{
    while (chunks != NULL) {
        struct jn_chunk *next = chunks->next;
        free(chunks);
        chunks = next;
    }
}

void jn_arena_reset(struct sd_jn_vm *vm)
{
    struct jn_chunk *keep = vm->chunks;

    /* keep one standard chunk for the next evaluation */
    while (keep != NULL && keep->size != JN_CHUNK_SIZE) {
        keep = keep->next;
    }
    for (struct jn_chunk *c = vm->chunks; c != NULL;) {
        struct jn_chunk *next = c->next;
        if (c != keep) {
            free(c);
        }
        c = next;
    }
    /* every buffer of the evaluation has been freed: only the kept chunk stays charged */
    vm->chunks = keep;
    vm->mem.used = 0;
    vm->mem.is_exceeded = 0;
    if (keep != NULL) {
        keep->next = NULL;
        keep->used = 0;
        vm->mem.used = sizeof(*keep) + keep->size;
    }
}

void *sd_jn_alloc(struct sd_jn_vm *vm, size_t size)
{
    return jn_chunk_alloc(&vm->chunks, size, &vm->mem.used);
}

size_t sd_jn_str_offset(const struct sd_jn_str *s, size_t i)
{
    size_t off = 0;

    if (s->ncp == s->len) {
        return i;
    }
    while (i-- > 0 && off < s->len) {
        uint32_t cp;
        off += sd_utf8_decode(s->data + off, &cp);
    }
    return off;
}

/* --- strings -------------------------------------------------------------------------------- */

/* Whether n items of size bytes fit in what is left of the memory limit; if not, the VM fails
 * with the memory error (the caller then builds an empty value, and the evaluator reports the
 * error as soon as the native returns). */
int jn_fits(struct sd_jn_vm *vm, size_t n, size_t size)
{
    size_t left = vm->limits.max_memory > vm->mem.used ? vm->limits.max_memory - vm->mem.used : 0;

    if (n > 0 && size > 0 && n > left / size) {
        jn_memory_error(vm);
        return 0;
    }
    return 1;
}

struct sd_jn_str *sd_jn_str_new(struct sd_jn_vm *vm, const char *p, size_t len)
{
    struct sd_jn_str *s;

    if (!jn_fits(vm, len, 1)) {
        len = 0;
    }
    s = sd_jn_alloc(vm, sizeof(*s) + len + 1);

    if (len > 0) {
        memcpy(s->data, p, len);
    }
    s->len = len;
    s->ncp = sd_utf8_count(p, len);
    return s;
}

struct sd_jn_val jn_string_of(struct sd_jn_str *s)
{
    struct sd_jn_val v;

    v.type = SD_JN_STRING;
    v.u.s = s;
    return v;
}

struct sd_jn_val sd_jn_string(struct sd_jn_vm *vm, const char *p, size_t len)
{
    return jn_string_of(sd_jn_str_new(vm, p, len));
}

int jn_str_eq(const struct sd_jn_str *a, const char *p, size_t len)
{
    return a->len == len && memcmp(a->data, p, len) == 0;
}

const char *sd_jn_type_name(enum sd_jn_type t)
{
    static const char *const names[] = {"null",  "boolean", "number",   "string",
                                        "array", "object",  "function", "absent"};
    return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

/* --- thunks and arrays ---------------------------------------------------------------------- */

struct sd_jn_thunk *jn_thunk_done(struct sd_jn_vm *vm, struct sd_jn_val v)
{
    struct sd_jn_thunk *t = sd_jn_alloc(vm, sizeof(*t));

    t->state = JN_THUNK_DONE;
    t->v = v;
    return t;
}

struct sd_jn_arr *sd_jn_arr_new(struct sd_jn_vm *vm, size_t n)
{
    struct sd_jn_arr *a = sd_jn_alloc(vm, sizeof(*a));

    if (!jn_fits(vm, n, sizeof(*a->items) + sizeof(struct sd_jn_thunk))) {
        n = 0;
    }

    a->n = n;
    a->items = n > 0 ? sd_jn_alloc(vm, sizeof(*a->items) * n) : NULL;
    if (n > 0) {
        /* one block of done thunks, all null */
        struct sd_jn_thunk *t = sd_jn_alloc(vm, sizeof(*t) * n);
        for (size_t i = 0; i < n; i++) {
            t[i].state = JN_THUNK_DONE;
            a->items[i] = &t[i];
        }
    }
    return a;
}

void sd_jn_arr_set(struct sd_jn_vm *vm, struct sd_jn_arr *a, size_t i, struct sd_jn_val v)
{
    (void)vm;
    if (i >= a->n) { /* the array could not be allocated (memory limit) */
        return;
    }
    a->items[i]->state = JN_THUNK_DONE;
    a->items[i]->v = v;
}

size_t sd_jn_arr_len(const struct sd_jn_arr *a)
{
    return a->n;
}

int sd_jn_arr_get(struct sd_jn_vm *vm, struct sd_jn_arr *a, size_t i, struct sd_jn_val *out)
{
    return jn_force(vm, a->items[i], out);
}

struct sd_jn_arr *sd_jn_arr_concat(struct sd_jn_vm *vm, struct sd_jn_arr *a, struct sd_jn_arr *b)
{
    struct sd_jn_arr *r = sd_jn_alloc(vm, sizeof(*r));

    r->n = a->n + b->n;
    r->items = r->n > 0 ? sd_jn_alloc(vm, sizeof(*r->items) * r->n) : NULL;
    if (a->n > 0) {
        memcpy(r->items, a->items, sizeof(*r->items) * a->n);
    }
    if (b->n > 0) {
        memcpy(r->items + a->n, b->items, sizeof(*r->items) * b->n);
    }
    return r;
}

struct sd_jn_arr *sd_jn_arr_pick(struct sd_jn_vm *vm, struct sd_jn_arr *a, const size_t *idx,
                                 size_t n)
{
    struct sd_jn_arr *r = sd_jn_alloc(vm, sizeof(*r));

    r->n = n;
    r->items = n > 0 ? sd_jn_alloc(vm, sizeof(*r->items) * n) : NULL;
    for (size_t i = 0; i < n; i++) {
        r->items[i] = a->items[idx[i]];
    }
    return r;
}

struct sd_jn_arr *sd_jn_arr_slice(struct sd_jn_vm *vm, struct sd_jn_arr *a, size_t from, size_t to)
{
    struct sd_jn_arr *r = sd_jn_alloc(vm, sizeof(*r));

    if (to > a->n) {
        to = a->n;
    }
    r->n = from < to ? to - from : 0;
    r->items = a->items + (r->n > 0 ? from : 0);
    return r;
}

/* --- objects -------------------------------------------------------------------------------- */

struct sd_jn_obj *sd_jn_obj_new(struct sd_jn_vm *vm, size_t n)
{
    struct sd_jn_obj *o = sd_jn_alloc(vm, sizeof(*o));

    if (!jn_fits(vm, n, sizeof(*o->fields))) {
        n = 0;
    }

    o->kind = JN_OBJ_SIMPLE;
    o->nlayers = 1;
    o->nfields = n;
    o->fields = n > 0 ? sd_jn_alloc(vm, sizeof(*o->fields) * n) : NULL;
    return o;
}

void sd_jn_obj_set(struct sd_jn_vm *vm, struct sd_jn_obj *o, size_t i, struct sd_jn_str *name,
                   struct sd_jn_val v)
{
    if (i >= o->nfields) { /* the object could not be allocated (memory limit) */
        return;
    }
    o->fields[i].name = name;
    o->fields[i].hide = JN_HIDE_INHERIT;
    o->fields[i].value = jn_thunk_done(vm, v);
}

uint32_t jn_name_hash(const char *p, size_t len)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < len; i++) {
        h = (h ^ (unsigned char)p[i]) * 16777619u;
    }
    return h;
}

static void build_index(struct sd_jn_vm *vm, struct sd_jn_obj *o)
{
    size_t cap = 16;

    while (cap < o->nfields * 2) {
        cap *= 2;
    }
    o->index = sd_jn_alloc(vm, sizeof(*o->index) * cap);
    o->index_cap = cap;
    for (size_t i = 0; i < o->nfields; i++) {
        const struct sd_jn_str *s = o->fields[i].name;
        size_t h = jn_name_hash(s->data, s->len) & (cap - 1);
        while (o->index[h] != 0) {
            h = (h + 1) & (cap - 1);
        }
        o->index[h] = (uint32_t)(i + 1);
    }
}

struct jn_ofield *jn_simple_field(struct sd_jn_vm *vm, struct sd_jn_obj *o, const char *name,
                                  size_t len)
{
    if (o->nfields <= JN_INDEX_MIN_FIELDS) {
        for (size_t i = 0; i < o->nfields; i++) {
            if (jn_str_eq(o->fields[i].name, name, len)) {
                return &o->fields[i];
            }
        }
        return NULL;
    }
    if (o->index == NULL) {
        build_index(vm, o);
    }
    for (size_t h = jn_name_hash(name, len) & (o->index_cap - 1); o->index[h] != 0;
         h = (h + 1) & (o->index_cap - 1)) {
        struct jn_ofield *f = &o->fields[o->index[h] - 1];
        if (jn_str_eq(f->name, name, len)) {
            return f;
        }
    }
    return NULL;
}

struct field_vis {
    struct sd_jn_str *name;
    uint8_t hide;
};

static void collect_simple(const struct sd_jn_obj *o, struct field_vis *out, size_t *n)
{
    for (size_t i = 0; i < o->nfields; i++) {
        out[*n].name = o->fields[i].name;
        out[*n].hide = o->fields[i].hide;
        (*n)++;
    }
}

/* Collects every layer's fields from the bottom layer up. Extensions are usually left-deep
 * (a + b + c ...): the left spine is walked with an explicit stack, only right operands
 * recurse. */
static void collect_fields(struct sd_jn_vm *vm, struct sd_jn_obj *o, struct field_vis *out,
                           size_t *n)
{
    struct sd_jn_obj **rights;
    size_t nr = 0;
    struct sd_jn_obj *p;

    for (p = o; p->kind == JN_OBJ_EXTENDED; p = p->left) {
        nr++;
    }
    rights = sd_jn_alloc(vm, sizeof(*rights) * (nr + 1));
    nr = 0;
    for (p = o; p->kind == JN_OBJ_EXTENDED; p = p->left) {
        rights[nr++] = p->right;
    }
    collect_simple(p, out, n);
    while (nr-- > 0) {
        collect_fields(vm, rights[nr], out, n);
    }
}

static size_t count_fields(const struct sd_jn_obj *o)
{
    size_t n = 0;

    for (; o->kind == JN_OBJ_EXTENDED; o = o->left) {
        n += count_fields(o->right);
    }
    return n + o->nfields;
}

/* Stable merge sort of fv by name (equal names keep their layer order, bottom first). */
static void sort_fields(struct sd_jn_vm *vm, struct field_vis *fv, size_t k)
{
    struct field_vis *tmp = sd_jn_alloc(vm, sizeof(*tmp) * (k + 1));

    for (size_t width = 1; width < k; width *= 2) {
        for (size_t lo = 0; lo < k; lo += 2 * width) {
            size_t mid = lo + width < k ? lo + width : k;
            size_t hi = lo + 2 * width < k ? lo + 2 * width : k;
            size_t a = lo;
            size_t b = mid;
            size_t t = lo;
            while (a < mid && b < hi) {
                tmp[t++] = sd_jn_str_cmp(fv[b].name, fv[a].name) < 0 ? fv[b++] : fv[a++];
            }
            while (a < mid) {
                tmp[t++] = fv[a++];
            }
            while (b < hi) {
                tmp[t++] = fv[b++];
            }
        }
        memcpy(fv, tmp, sizeof(*fv) * k);
    }
}

int sd_jn_obj_fields(struct sd_jn_vm *vm, struct sd_jn_obj *o, int all, struct sd_jn_str ***names,
                     size_t *n)
{
    size_t total = count_fields(o);
    struct field_vis *fv;
    struct sd_jn_str **res;
    size_t k = 0;
    size_t out = 0;

    if (jn_obj_check_asserts(vm, o) != 0 || sd_jn_tick(vm, total) != 0) {
        return SD_JN_ERR;
    }
    fv = sd_jn_alloc(vm, sizeof(*fv) * (total + 1));
    collect_fields(vm, o, fv, &k);
    sort_fields(vm, fv, k);
    res = sd_jn_alloc(vm, sizeof(*res) * (total + 1));
    for (size_t i = 0; i < k;) {
        size_t j = i;
        uint8_t hide = JN_HIDE_INHERIT;
        /* the topmost layer that does not inherit decides; visible by default */
        for (; j < k && sd_jn_str_cmp(fv[j].name, fv[i].name) == 0; j++) {
            if (fv[j].hide != JN_HIDE_INHERIT) {
                hide = fv[j].hide;
            }
        }
        if (all || hide != JN_HIDE_HIDDEN) {
            res[out++] = fv[i].name;
        }
        i = j;
    }
    *names = res;
    *n = out;
    return 0;
}

int sd_jn_obj_has(struct sd_jn_vm *vm, struct sd_jn_obj *o, const char *name, size_t len, int all)
{
    struct sd_jn_obj *layer;
    unsigned depth;
    unsigned min = 0;

    if (all) {
        return jn_find_field(vm, o, name, len, 0, &layer, &depth) != NULL;
    }
    /* the topmost layer that does not inherit decides; visible by default */
    for (;;) {
        struct jn_ofield *f = jn_find_field(vm, o, name, len, min, &layer, &depth);
        if (f == NULL) {
            return min > 0;
        }
        if (f->hide != JN_HIDE_INHERIT) {
            return f->hide == JN_HIDE_VISIBLE;
        }
        min = depth + 1;
    }
}
