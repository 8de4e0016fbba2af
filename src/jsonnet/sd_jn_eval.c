/* sd_jn_eval.c: the Jsonnet evaluator, the VM (limits, errors) and the public compile/eval entry
 * points.
 *
 * DESIGN. eval() walks the resolved AST. Tail positions (local bodies, if branches, assert
 * continuations, tailstrict calls) loop instead of recursing, so `tailstrict` recursion runs in
 * constant C stack as in the jsonnet CLI; other calls recurse and count against max_calls
 * ("max stack frames exceeded."). Every eval() entry charges one step and checks the C stack
 * against a budget derived from the thread's real stack, so deep inputs end in an error, never
 * a crash. Laziness: local binds, arguments, array elements and object fields are thunks, forced
 * at most once (a thunk that is re-entered while running is an infinite recursion error). Field
 * values are cached per object as self. */
#include "jsonnet/sd_jn_int.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sd_alloc.h"
#include "core/sd_error.h"
#include "core/sd_time.h"

#define JN_DEFAULT_STEPS 10000000ULL
#define JN_DEFAULT_CALLS 500
#define JN_DEFAULT_STACK (4u << 20)
#define JN_DEFAULT_MEMORY ((size_t)256 << 20)
#define JN_DEFAULT_OUTPUT ((size_t)64 << 20)
#define JN_DEFAULT_TIME_MS 60000u
/* Steps between two looks at the clock (a step costs tens of nanoseconds, the clock ~20 ns). */
#define JN_CLOCK_STEPS 1024u
#define JN_STACK_RESERVE (256u << 10)

static int eval(struct sd_jn_vm *vm, const struct jn_node *n, struct jn_env *env,
                struct sd_jn_val *out);

/* --- errors and limits ---------------------------------------------------------------------- */

static int vthrow(struct sd_jn_vm *vm, const struct jn_node *node, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static int vthrow(struct sd_jn_vm *vm, const struct jn_node *node, const char *fmt, va_list ap)
{
    if (!vm->failed) {
        vm->failed = 1;
        vm->err_node = node;
        sd_buf_reset(&vm->err);
        sd_buf_vprintf(&vm->err, fmt, ap);
    }
    return SD_JN_ERR;
}

/* An error whose message is the user's text (error / assert): kept byte for byte, but a NUL
 * becomes "\u0000" and an empty text a placeholder, so the message is always a readable,
 * non-empty C string. */
static int throw_text(struct sd_jn_vm *vm, const struct jn_node *node, const char *p, size_t len)
{
    if (vm->failed) {
        return SD_JN_ERR;
    }
    vm->failed = 1;
    vm->err_node = node;
    sd_buf_reset(&vm->err);
    if (len == 0) {
        sd_buf_append_str(&vm->err, "(empty error message)");
    }
    for (size_t i = 0; i < len; i++) {
        const char *nul = memchr(p + i, '\0', len - i);
        size_t run = nul != NULL ? (size_t)(nul - (p + i)) : len - i;
        sd_buf_append(&vm->err, p + i, run);
        i += run;
        if (i < len) {
            sd_buf_append_str(&vm->err, "\\u0000");
        }
    }
    return SD_JN_ERR;
}

int jn_throw_at(struct sd_jn_vm *vm, const struct jn_node *node, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vthrow(vm, node, fmt, ap);
    va_end(ap);
    return rc;
}

int sd_jn_throw(struct sd_jn_vm *vm, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vthrow(vm, vm->call_node, fmt, ap);
    va_end(ap);
    return rc;
}

int jn_memory_error(struct sd_jn_vm *vm)
{
    return sd_jn_throw(vm, "memory limit (%zu bytes) exceeded", vm->limits.max_memory);
}

int sd_jn_tick(struct sd_jn_vm *vm, uint64_t n)
{
    vm->steps += n;
    if (vm->steps > vm->step_cap) {
        if (vm->step_cap < vm->limits.max_steps) {
            vm->budget_exhausted = 1;
            return sd_jn_throw(vm, "evaluation step budget (%llu) exhausted",
                               (unsigned long long)vm->step_cap);
        }
        return sd_jn_throw(vm, "evaluation step limit (%llu) exceeded",
                           (unsigned long long)vm->limits.max_steps);
    }
    if (vm->mem.used > vm->limits.max_memory || vm->mem.is_exceeded) {
        return jn_memory_error(vm);
    }
    if (vm->steps >= vm->clock_steps) {
        vm->clock_steps = vm->steps + JN_CLOCK_STEPS;
        if (sd_mono_ms() > vm->deadline_ms) {
            return sd_jn_throw(vm, "evaluation time limit exceeded");
        }
    }
    return 0;
}

struct sd_buf sd_jn_buf(struct sd_jn_vm *vm)
{
    struct sd_buf b;

    sd_buf_init_budget(&b, &vm->mem);
    return b;
}

void *sd_jn_host(struct sd_jn_vm *vm)
{
    return vm->host;
}

/* Charges a step and checks the C stack budget. */
static int enter(struct sd_jn_vm *vm, const struct jn_node *n)
{
    const char *here = __builtin_frame_address(0);

    if ((size_t)(vm->stack_base - here) > vm->stack_budget) {
        return jn_throw_at(vm, n, "max stack depth exceeded (expression nested too deeply)");
    }
    if (++vm->steps > vm->step_cap || vm->steps >= vm->clock_steps ||
        vm->mem.used > vm->limits.max_memory || vm->mem.is_exceeded) {
        vm->call_node = n;
        return sd_jn_tick(vm, 0);
    }
    return 0;
}

/* --- environments and thunks ---------------------------------------------------------------- */

static struct jn_env *env_new(struct sd_jn_vm *vm, struct jn_env *up, unsigned n)
{
    struct jn_env *e = sd_jn_alloc(vm, sizeof(*e) + sizeof(e->slots[0]) * n);

    e->up = up;
    e->n = n;
    if (up != NULL) {
        e->self = up->self;
        e->super_depth = up->super_depth;
    }
    return e;
}

static struct sd_jn_thunk *thunk_new(struct sd_jn_vm *vm, const struct jn_node *expr,
                                     struct jn_env *env)
{
    struct sd_jn_thunk *t = sd_jn_alloc(vm, sizeof(*t));

    switch (expr->kind) { /* literals need no laziness */
    case JN_LIT_NULL:
        t->state = JN_THUNK_DONE;
        t->v = sd_jn_null();
        return t;
    case JN_LIT_TRUE:
    case JN_LIT_FALSE:
        t->state = JN_THUNK_DONE;
        t->v = sd_jn_bool(expr->kind == JN_LIT_TRUE);
        return t;
    case JN_LIT_NUMBER:
        t->state = JN_THUNK_DONE;
        t->v = sd_jn_number(expr->u.num);
        return t;
    case JN_LIT_STRING:
        t->state = JN_THUNK_DONE;
        t->v = jn_string_of(expr->u.str);
        return t;
    default:
        t->expr = expr;
        t->env = env;
        return t;
    }
}

int jn_force(struct sd_jn_vm *vm, struct sd_jn_thunk *t, struct sd_jn_val *out)
{
    int rc;

    if (t->state == JN_THUNK_DONE) {
        *out = t->v;
        return 0;
    }
    if (t->state == JN_THUNK_RUNNING) {
        return jn_throw_at(vm, t->expr, "infinite recursion: a value depends on itself");
    }
    t->state = JN_THUNK_RUNNING;
    rc = eval(vm, t->expr, t->env, &t->v);
    if (rc != 0) {
        t->state = JN_THUNK_PENDING;
        return rc;
    }
    t->state = JN_THUNK_DONE;
    t->env = NULL;
    *out = t->v;
    return 0;
}

/* --- objects -------------------------------------------------------------------------------- */

struct sd_jn_obj *jn_obj_extend(struct sd_jn_vm *vm, struct sd_jn_obj *left,
                                struct sd_jn_obj *right)
{
    struct sd_jn_obj *o = sd_jn_alloc(vm, sizeof(*o));

    o->kind = JN_OBJ_EXTENDED;
    o->left = left;
    o->right = right;
    o->nlayers = left->nlayers + right->nlayers;
    o->has_asserts = left->has_asserts | right->has_asserts;
    return o;
}

static struct jn_ofield *find_from(struct sd_jn_vm *vm, struct sd_jn_obj *o, const char *name,
                                   size_t len, unsigned min_depth, unsigned offset,
                                   struct sd_jn_obj **layer, unsigned *depth)
{
    for (;;) {
        if (o->kind == JN_OBJ_SIMPLE) {
            struct jn_ofield *f = offset >= min_depth ? jn_simple_field(vm, o, name, len) : NULL;
            if (f != NULL) {
                *layer = o;
                *depth = offset;
            }
            return f;
        }
        if (offset + o->right->nlayers > min_depth) {
            struct jn_ofield *f =
                find_from(vm, o->right, name, len, min_depth, offset, layer, depth);
            if (f != NULL) {
                return f;
            }
        }
        offset += o->right->nlayers;
        o = o->left;
    }
}

struct jn_ofield *jn_find_field(struct sd_jn_vm *vm, struct sd_jn_obj *o, const char *name,
                                size_t len, unsigned min_depth, struct sd_jn_obj **layer,
                                unsigned *depth)
{
    if (min_depth >= o->nlayers) {
        return NULL;
    }
    return find_from(vm, o, name, len, min_depth, 0, layer, depth);
}

/* The frame field bodies and asserts of layer run in: self bound, super below the layer, and the
 * layer's locals ($ first for the outermost object). */
static struct jn_env *layer_frame(struct sd_jn_vm *vm, struct sd_jn_obj *self,
                                  struct sd_jn_obj *layer, unsigned depth, struct jn_env *up)
{
    const struct jn_node *node = layer->node;
    struct jn_env *e = env_new(vm, up, node->nbinds);

    e->self = self;
    e->super_depth = depth + 1;
    for (unsigned i = 0; i < node->nbinds; i++) {
        e->slots[i] = thunk_new(vm, node->binds[i].body, e);
    }
    return e;
}

static int binary_add(struct sd_jn_vm *vm, const struct jn_node *at, struct sd_jn_val *a,
                      struct sd_jn_val *b, struct sd_jn_val *out);

/* Evaluates field f of layer (at depth) with self bound. */
static int eval_field(struct sd_jn_vm *vm, struct sd_jn_obj *self, struct sd_jn_obj *layer,
                      struct jn_ofield *f, unsigned depth, struct sd_jn_val *out)
{
    struct jn_env *e;
    int rc;

    if (f->body == NULL) {
        return jn_force(vm, f->value, out);
    }
    e = layer_frame(vm, self, layer, depth, f->env);
    rc = eval(vm, f->body, e, out);
    if (rc == 0 && f->plus) {
        struct sd_jn_obj *below;
        unsigned below_depth;
        struct jn_ofield *sf =
            jn_find_field(vm, self, f->name->data, f->name->len, depth + 1, &below, &below_depth);
        if (sf != NULL) {
            struct sd_jn_val left;
            struct sd_jn_val right = *out;
            rc = eval_field(vm, self, below, sf, below_depth, &left);
            if (rc == 0) {
                rc = binary_add(vm, f->body, &left, &right, out);
            }
        }
    }
    return rc;
}

static int run_layer_asserts(struct sd_jn_vm *vm, struct sd_jn_obj *self, struct sd_jn_obj *o,
                             unsigned offset)
{
    while (o->kind == JN_OBJ_EXTENDED) {
        int rc = run_layer_asserts(vm, self, o->right, offset);
        if (rc != 0) {
            return rc;
        }
        offset += o->right->nlayers;
        o = o->left;
    }
    if (o->node == NULL || o->node->nasserts == 0) {
        return 0;
    }
    for (unsigned i = 0; i < o->node->nasserts; i++) {
        const struct jn_node *a = o->node->asserts[i];
        struct jn_env *e = layer_frame(vm, self, o, offset, o->env);
        struct sd_jn_val c;
        int rc = eval(vm, a->a, e, &c);
        if (rc != 0) {
            return rc;
        }
        if (c.type != SD_JN_BOOL) {
            return jn_throw_at(vm, a, "assert condition must be a boolean, got %s",
                               sd_jn_type_name(c.type));
        }
        if (!c.u.b) {
            struct sd_jn_val m;
            struct sd_buf msg = sd_jn_buf(vm);
            if (a->b == NULL) {
                return jn_throw_at(vm, a, "object assertion failed");
            }
            rc = eval(vm, a->b, e, &m);
            if (rc == 0) {
                rc = sd_jn_to_string(vm, &m, &msg);
            }
            if (rc == 0) {
                rc = throw_text(vm, a, msg.data, msg.len);
            }
            sd_buf_fini(&msg);
            return rc;
        }
    }
    return 0;
}

int jn_obj_check_asserts(struct sd_jn_vm *vm, struct sd_jn_obj *o)
{
    int rc;

    if (!o->has_asserts || o->asserts_state != 0) {
        return 0;
    }
    o->asserts_state = 1;
    rc = run_layer_asserts(vm, o, o, 0);
    o->asserts_state = rc == 0 ? 2 : 0;
    return rc;
}

static struct jn_cache_entry *cache_slot(struct sd_jn_vm *vm, struct sd_jn_obj *o, const char *name,
                                         size_t len)
{
    size_t h;

    if (o->cache_cap == 0 || (o->cache_n + 1) * 2 > o->cache_cap) {
        size_t cap = o->cache_cap ? o->cache_cap * 2 : 8;
        struct jn_cache_entry *old = o->cache;
        size_t old_cap = o->cache_cap;
        o->cache = sd_jn_alloc(vm, sizeof(*o->cache) * cap);
        o->cache_cap = cap;
        for (size_t i = 0; i < old_cap; i++) {
            if (old[i].name != NULL) {
                size_t k = jn_name_hash(old[i].name->data, old[i].name->len) & (cap - 1);
                while (o->cache[k].name != NULL) {
                    k = (k + 1) & (cap - 1);
                }
                o->cache[k] = old[i];
            }
        }
    }
    for (h = jn_name_hash(name, len) & (o->cache_cap - 1); o->cache[h].name != NULL;
         h = (h + 1) & (o->cache_cap - 1)) {
        if (jn_str_eq(o->cache[h].name, name, len)) {
            return &o->cache[h];
        }
    }
    return &o->cache[h];
}

/* o[name] with o as self. *found is 0 when o has no such field. */
static int obj_index(struct sd_jn_vm *vm, struct sd_jn_obj *o, const char *name, size_t len,
                     struct sd_jn_val *out, int *found)
{
    struct jn_cache_entry *ce;
    struct sd_jn_obj *layer;
    struct jn_ofield *f;
    unsigned depth;
    int rc;

    if (jn_obj_check_asserts(vm, o) != 0) {
        return SD_JN_ERR;
    }
    ce = cache_slot(vm, o, name, len);
    if (ce->name != NULL) {
        *found = 1;
        if (ce->value->state == JN_THUNK_RUNNING) {
            return sd_jn_throw(vm, "infinite recursion: field \"%s\" depends on itself",
                               ce->name->data);
        }
        *out = ce->value->v;
        return 0;
    }
    f = jn_find_field(vm, o, name, len, 0, &layer, &depth);
    *found = f != NULL;
    if (f == NULL) {
        return 0;
    }
    if (f->body == NULL && layer == o) { /* a built object's constant: no caching needed */
        return jn_force(vm, f->value, out);
    }
    ce->name = f->name;
    ce->value = sd_jn_alloc(vm, sizeof(*ce->value));
    ce->value->state = JN_THUNK_RUNNING;
    o->cache_n++;
    rc = eval_field(vm, o, layer, f, depth, &ce->value->v);
    if (rc != 0) {
        return rc; /* the entry stays RUNNING: an error ends the whole evaluation */
    }
    /* the table may have grown meanwhile: find the entry again */
    ce = cache_slot(vm, o, name, len);
    ce->value->state = JN_THUNK_DONE;
    *out = ce->value->v;
    return 0;
}

int sd_jn_obj_get(struct sd_jn_vm *vm, struct sd_jn_obj *o, const char *name, size_t len,
                  struct sd_jn_val *out, int *found)
{
    return obj_index(vm, o, name, len, out, found);
}

/* --- functions ------------------------------------------------------------------------------ */

size_t sd_jn_func_nparams(const struct sd_jn_func *f)
{
    return f->kind == JN_FUNC_NATIVE ? f->native->nparams : f->fn->nparams;
}

static struct sd_jn_val func_val(struct sd_jn_vm *vm, const struct sd_jn_native *native,
                                 const struct jn_node *fn, struct jn_env *env)
{
    struct sd_jn_func *f = sd_jn_alloc(vm, sizeof(*f));
    struct sd_jn_val v;

    f->kind = native != NULL ? JN_FUNC_NATIVE : JN_FUNC_CLOSURE;
    f->native = native;
    f->fn = fn;
    f->env = env;
    v.type = SD_JN_FUNCTION;
    v.u.f = f;
    return v;
}

/* "std." for the std library's natives (messages name them as written), "" for host globals. */
static const char *std_prefix(const struct sd_jn_native *nat)
{
    return nat >= sd_jn_std_natives && nat < sd_jn_std_natives + sd_jn_std_nnatives ? "std." : "";
}

static int call_native(struct sd_jn_vm *vm, const struct jn_node *at,
                       const struct sd_jn_native *nat, struct sd_jn_val *args,
                       struct sd_jn_val *out)
{
    const struct jn_node *saved = vm->call_node;
    int rc;

    for (unsigned i = 0; i < nat->nrequired; i++) {
        if (args[i].type == SD_JN_ABSENT) {
            return jn_throw_at(vm, at, "%s%s: missing argument: %s", std_prefix(nat), nat->name,
                               nat->params[i]);
        }
    }
    vm->call_node = at;
    rc = nat->fn(vm, args, out);
    if (rc == 0 && vm->mem.is_exceeded) { /* a buffer it grew hit the memory limit */
        rc = jn_memory_error(vm);
    }
    vm->call_node = saved;
    return vm->failed ? SD_JN_ERR : rc; /* e.g. a value it built hit the memory limit */
}

/* Maps the application's arguments to a native's parameters, evaluating them. */
static int apply_native(struct sd_jn_vm *vm, const struct jn_node *n, struct jn_env *env,
                        const struct sd_jn_native *nat, struct sd_jn_val *out)
{
    struct sd_jn_val args[SD_JN_NATIVE_MAX_PARAMS];
    int rc;

    if (n->npositional > nat->nparams) {
        return jn_throw_at(vm, n, "%s%s: too many arguments: takes %u, got %u", std_prefix(nat),
                           nat->name, nat->nparams, n->npositional);
    }
    for (unsigned i = 0; i < SD_JN_NATIVE_MAX_PARAMS; i++) {
        args[i].type = SD_JN_ABSENT;
    }
    for (unsigned i = 0; i < n->nargs; i++) {
        unsigned slot = i;
        if (n->args[i].name != NULL) {
            for (slot = 0; slot < nat->nparams; slot++) {
                if (jn_str_eq(n->args[i].name, nat->params[slot], strlen(nat->params[slot]))) {
                    break;
                }
            }
            if (slot == nat->nparams) {
                return jn_throw_at(vm, n, "%s%s: function has no parameter %s", std_prefix(nat),
                                   nat->name, n->args[i].name->data);
            }
            if (args[slot].type != SD_JN_ABSENT) {
                return jn_throw_at(vm, n, "%s%s: argument %s given twice", std_prefix(nat),
                                   nat->name, nat->params[slot]);
            }
        }
        rc = eval(vm, n->args[i].expr, env, &args[slot]);
        if (rc != 0) {
            return rc;
        }
    }
    return call_native(vm, n, nat, args, out);
}

/* Builds the call frame of closure f for the application n (arguments as thunks in env). */
static int bind_closure(struct sd_jn_vm *vm, const struct jn_node *n, struct jn_env *env,
                        const struct sd_jn_func *f, struct jn_env **frame)
{
    const struct jn_node *fn = f->fn;
    struct jn_env *e = env_new(vm, f->env, fn->nparams);

    if (n->npositional > fn->nparams) {
        return jn_throw_at(vm, n, "too many arguments: function takes %u, got %u", fn->nparams,
                           n->npositional);
    }
    for (unsigned i = 0; i < n->nargs; i++) {
        unsigned slot = i;
        if (n->args[i].name != NULL) {
            for (slot = 0; slot < fn->nparams; slot++) {
                if (fn->params[slot].name->len == n->args[i].name->len &&
                    memcmp(fn->params[slot].name->data, n->args[i].name->data,
                           n->args[i].name->len) == 0) {
                    break;
                }
            }
            if (slot == fn->nparams) {
                return jn_throw_at(vm, n, "function has no parameter %s", n->args[i].name->data);
            }
            if (e->slots[slot] != NULL) {
                return jn_throw_at(vm, n, "argument %s given twice", n->args[i].name->data);
            }
        }
        e->slots[slot] = thunk_new(vm, n->args[i].expr, env);
        if (n->tailstrict) {
            struct sd_jn_val v;
            if (jn_force(vm, e->slots[slot], &v) != 0) {
                return SD_JN_ERR;
            }
        }
    }
    for (unsigned i = 0; i < fn->nparams; i++) {
        if (e->slots[i] == NULL) {
            if (fn->params[i].def == NULL) {
                return jn_throw_at(vm, n, "missing argument: %s", fn->params[i].name->data);
            }
            e->slots[i] = thunk_new(vm, fn->params[i].def, e);
        }
    }
    *frame = e;
    return 0;
}

int sd_jn_call_lazy(struct sd_jn_vm *vm, const struct sd_jn_val *fnv, size_t nargs,
                    struct sd_jn_thunk *const *args, struct sd_jn_val *out)
{
    const struct sd_jn_func *f;
    struct jn_env *e;
    int rc;

    if (fnv->type != SD_JN_FUNCTION) {
        return sd_jn_throw(vm, "expected a function, got %s", sd_jn_type_name(fnv->type));
    }
    f = fnv->u.f;
    if (nargs > sd_jn_func_nparams(f)) {
        return sd_jn_throw(vm, "too many arguments: function takes %zu, got %zu",
                           sd_jn_func_nparams(f), nargs);
    }
    if (f->kind == JN_FUNC_NATIVE) {
        struct sd_jn_val a[SD_JN_NATIVE_MAX_PARAMS];
        for (size_t i = 0; i < SD_JN_NATIVE_MAX_PARAMS; i++) {
            a[i].type = SD_JN_ABSENT;
        }
        for (size_t i = 0; i < nargs; i++) {
            if (jn_force(vm, args[i], &a[i]) != 0) {
                return SD_JN_ERR;
            }
        }
        return call_native(vm, vm->call_node, f->native, a, out);
    }
    e = env_new(vm, f->env, f->fn->nparams);
    for (size_t i = 0; i < f->fn->nparams; i++) {
        if (i < nargs) {
            e->slots[i] = args[i];
        } else if (f->fn->params[i].def != NULL) {
            e->slots[i] = thunk_new(vm, f->fn->params[i].def, e);
        } else {
            return sd_jn_throw(vm, "missing argument: %s", f->fn->params[i].name->data);
        }
    }
    if (++vm->calls > vm->limits.max_calls) {
        vm->calls--;
        return sd_jn_throw(vm, "max stack frames exceeded.");
    }
    rc = eval(vm, f->fn->a, e, out);
    vm->calls--;
    return rc;
}

int sd_jn_call(struct sd_jn_vm *vm, const struct sd_jn_val *fnv, size_t nargs,
               const struct sd_jn_val *args, struct sd_jn_val *out)
{
    struct sd_jn_thunk *t[SD_JN_NATIVE_MAX_PARAMS];
    struct sd_jn_thunk **th = t;

    if (nargs > SD_JN_NATIVE_MAX_PARAMS) {
        th = sd_jn_alloc(vm, sizeof(*th) * nargs);
    }
    for (size_t i = 0; i < nargs; i++) {
        th[i] = jn_thunk_done(vm, args[i]);
    }
    return sd_jn_call_lazy(vm, fnv, nargs, th, out);
}

struct sd_jn_thunk *sd_jn_arr_elem(struct sd_jn_arr *a, size_t i)
{
    return a->items[i];
}

struct sd_jn_thunk *sd_jn_thunk_of(struct sd_jn_vm *vm, const struct sd_jn_val *v)
{
    return jn_thunk_done(vm, *v);
}

/* A thunk that calls fn(args) when forced: a frame holding the function and the arguments,
 * evaluated by the JN_CALL_VALUE node. */
static const struct jn_node call_value_node = {.kind = JN_CALL_VALUE};

static struct sd_jn_thunk *call_thunk(struct sd_jn_vm *vm, const struct sd_jn_val *fn, size_t nargs,
                                      struct sd_jn_thunk *const *args)
{
    struct jn_env *e = env_new(vm, NULL, (unsigned)nargs + 1);
    struct sd_jn_thunk *t = sd_jn_alloc(vm, sizeof(*t));

    e->slots[0] = jn_thunk_done(vm, *fn);
    for (size_t i = 0; i < nargs; i++) {
        e->slots[i + 1] = args[i];
    }
    t->expr = &call_value_node;
    t->env = e;
    return t;
}

void sd_jn_arr_set_call(struct sd_jn_vm *vm, struct sd_jn_arr *a, size_t i,
                        const struct sd_jn_val *fn, size_t nargs, struct sd_jn_thunk *const *args)
{
    if (i < a->n) {
        a->items[i] = call_thunk(vm, fn, nargs, args);
    }
}

void sd_jn_obj_set_call(struct sd_jn_vm *vm, struct sd_jn_obj *o, size_t i, struct sd_jn_str *name,
                        const struct sd_jn_val *fn, size_t nargs, struct sd_jn_thunk *const *args)
{
    if (i >= o->nfields) {
        return;
    }
    o->fields[i].name = name;
    o->fields[i].hide = JN_HIDE_INHERIT;
    o->fields[i].value = call_thunk(vm, fn, nargs, args);
}

void sd_jn_obj_set_hidden(struct sd_jn_obj *o, size_t i)
{
    if (i < o->nfields) {
        o->fields[i].hide = JN_HIDE_HIDDEN;
    }
}

struct sd_jn_val sd_jn_std_fn(struct sd_jn_vm *vm, const char *name)
{
    return func_val(vm, jn_std_lookup(name, strlen(name)), NULL, NULL);
}

void sd_jn_call_site(const struct sd_jn_vm *vm, const char **file, unsigned *line)
{
    *file = vm->prog_name != NULL ? vm->prog_name : "";
    *line = vm->call_node != NULL ? vm->call_node->line : 0;
}

/* --- operators ------------------------------------------------------------------------------ */

static int check_number(struct sd_jn_vm *vm, const struct jn_node *at, double d,
                        struct sd_jn_val *out)
{
    if (isnan(d)) {
        return jn_throw_at(vm, at, "not a number");
    }
    if (isinf(d)) {
        return jn_throw_at(vm, at, "overflow");
    }
    *out = sd_jn_number(d);
    return 0;
}

static int concat_strings(struct sd_jn_vm *vm, struct sd_jn_val *a, struct sd_jn_val *b,
                          struct sd_jn_val *out)
{
    struct sd_jn_str *s;
    struct sd_buf tmp = sd_jn_buf(vm);
    const char *pa;
    const char *pb;
    size_t la;
    size_t lb;
    size_t na = 0;
    size_t nb = 0;
    int rc = 0;

    if (a->type == SD_JN_STRING) {
        pa = a->u.s->data;
        la = a->u.s->len;
        na = a->u.s->ncp;
    } else {
        rc = sd_jn_to_string(vm, a, &tmp);
        pa = NULL;
        la = tmp.len;
    }
    if (rc == 0 && b->type == SD_JN_STRING) {
        pb = b->u.s->data;
        lb = b->u.s->len;
        nb = b->u.s->ncp;
    } else if (rc == 0) {
        size_t before = tmp.len;
        rc = sd_jn_to_string(vm, b, &tmp);
        pb = NULL;
        lb = tmp.len - before;
    } else {
        pb = NULL;
        lb = 0;
    }
    if (rc != 0) {
        sd_buf_fini(&tmp);
        return rc;
    }
    if (pa == NULL) {
        pa = tmp.data;
    }
    if (pb == NULL) {
        pb = tmp.data + (a->type == SD_JN_STRING ? 0 : la);
    }
    if (!jn_fits(vm, la + lb, 1)) {
        sd_buf_fini(&tmp);
        return SD_JN_ERR;
    }
    s = sd_jn_alloc(vm, sizeof(*s) + la + lb + 1);
    if (la > 0) {
        memcpy(s->data, pa, la);
    }
    if (lb > 0) {
        memcpy(s->data + la, pb, lb);
    }
    s->len = la + lb;
    if (a->type != SD_JN_STRING || b->type != SD_JN_STRING) {
        s->ncp = sd_utf8_count(s->data, s->len);
    } else {
        s->ncp = na + nb;
    }
    sd_buf_fini(&tmp);
    *out = jn_string_of(s);
    return 0;
}

static int binary_add(struct sd_jn_vm *vm, const struct jn_node *at, struct sd_jn_val *a,
                      struct sd_jn_val *b, struct sd_jn_val *out)
{
    if (a->type == SD_JN_NUMBER && b->type == SD_JN_NUMBER) {
        return check_number(vm, at, a->u.n + b->u.n, out);
    }
    if (a->type == SD_JN_STRING || b->type == SD_JN_STRING) {
        vm->call_node = at;
        return concat_strings(vm, a, b, out);
    }
    if (a->type == SD_JN_ARRAY && b->type == SD_JN_ARRAY) {
        *out = sd_jn_array(sd_jn_arr_concat(vm, a->u.a, b->u.a));
        return 0;
    }
    if (a->type == SD_JN_OBJECT && b->type == SD_JN_OBJECT) {
        *out = sd_jn_object(jn_obj_extend(vm, a->u.o, b->u.o));
        return 0;
    }
    return jn_throw_at(vm, at, "binary operator + does not operate on %s and %s",
                       sd_jn_type_name(a->type), sd_jn_type_name(b->type));
}

static const char *op_text(int op)
{
    static const char *const t[] = {"*",  "/",  "%",  "+",  "-",  "<<", ">>", "<",
                                    "<=", ">",  ">=", "in", "==", "!=", "&",  "^",
                                    "|",  "&&", "||", "-",  "+",  "!",  "~"};
    return (unsigned)op < sizeof(t) / sizeof(t[0]) ? t[op] : "?";
}

/* Numbers as 64-bit integers for the bitwise operators. */
static int to_int(struct sd_jn_vm *vm, const struct jn_node *at, double d, int64_t *out)
{
    if (d < -9223372036854775808.0 || d >= 9223372036854775808.0) {
        return jn_throw_at(vm, at, "bitwise operator argument %g is out of range", d);
    }
    *out = (int64_t)d;
    return 0;
}

static int binary(struct sd_jn_vm *vm, const struct jn_node *n, struct sd_jn_val *a,
                  struct sd_jn_val *b, struct sd_jn_val *out)
{
    int64_t x = 0;
    int64_t y = 0;
    int c = 0;

    switch (n->op) {
    case JN_OP_ADD:
        return binary_add(vm, n, a, b, out);
    case JN_OP_EQ:
    case JN_OP_NE:
        vm->call_node = n;
        if (sd_jn_equal(vm, a, b, &c) != 0) {
            return SD_JN_ERR;
        }
        *out = sd_jn_bool(n->op == JN_OP_EQ ? c : !c);
        return 0;
    case JN_OP_LT:
    case JN_OP_LE:
    case JN_OP_GT:
    case JN_OP_GE:
        vm->call_node = n;
        if (sd_jn_compare(vm, a, b, &c) != 0) {
            return SD_JN_ERR;
        }
        *out = sd_jn_bool(n->op == JN_OP_LT   ? c < 0
                          : n->op == JN_OP_LE ? c <= 0
                          : n->op == JN_OP_GT ? c > 0
                                              : c >= 0);
        return 0;
    case JN_OP_IN:
        if (a->type != SD_JN_STRING || b->type != SD_JN_OBJECT) {
            return jn_throw_at(vm, n, "operator in needs a string and an object, got %s and %s",
                               sd_jn_type_name(a->type), sd_jn_type_name(b->type));
        }
        *out = sd_jn_bool(sd_jn_obj_has(vm, b->u.o, a->u.s->data, a->u.s->len, 1));
        return 0;
    case JN_OP_MOD:
        if (a->type == SD_JN_STRING) {
            vm->call_node = n;
            return sd_jn_format(vm, a->u.s, b, out);
        }
        break;
    default:
        break;
    }
    if (a->type != SD_JN_NUMBER || b->type != SD_JN_NUMBER) {
        return jn_throw_at(vm, n, "binary operator %s does not operate on %s and %s",
                           op_text(n->op), sd_jn_type_name(a->type), sd_jn_type_name(b->type));
    }
    switch (n->op) {
    case JN_OP_MUL:
        return check_number(vm, n, a->u.n * b->u.n, out);
    case JN_OP_DIV:
        if (b->u.n == 0) {
            return jn_throw_at(vm, n, "division by zero");
        }
        return check_number(vm, n, a->u.n / b->u.n, out);
    case JN_OP_MOD:
        if (b->u.n == 0) {
            return jn_throw_at(vm, n, "division by zero");
        }
        return check_number(vm, n, fmod(a->u.n, b->u.n), out);
    case JN_OP_SUB:
        return check_number(vm, n, a->u.n - b->u.n, out);
    default:
        break;
    }
    if (to_int(vm, n, a->u.n, &x) != 0 || to_int(vm, n, b->u.n, &y) != 0) {
        return SD_JN_ERR;
    }
    switch (n->op) {
    case JN_OP_SHL:
    case JN_OP_SHR:
        if (y < 0) {
            return jn_throw_at(vm, n, "shift by negative exponent");
        }
        y %= 64;
        *out = sd_jn_number(n->op == JN_OP_SHL ? (double)(int64_t)((uint64_t)x << y)
                                               : (double)(x >> y));
        return 0;
    case JN_OP_BAND:
        *out = sd_jn_number((double)(x & y));
        return 0;
    case JN_OP_BXOR:
        *out = sd_jn_number((double)(x ^ y));
        return 0;
    default:
        *out = sd_jn_number((double)(x | y));
        return 0;
    }
}

static int unary(struct sd_jn_vm *vm, const struct jn_node *n, struct sd_jn_val *a,
                 struct sd_jn_val *out)
{
    int64_t x = 0;

    if (n->op == JN_OP_NOT) {
        if (a->type != SD_JN_BOOL) {
            return jn_throw_at(vm, n, "unary operator ! does not operate on %s",
                               sd_jn_type_name(a->type));
        }
        *out = sd_jn_bool(!a->u.b);
        return 0;
    }
    if (a->type != SD_JN_NUMBER) {
        return jn_throw_at(vm, n, "unary operator %s does not operate on %s", op_text(n->op),
                           sd_jn_type_name(a->type));
    }
    switch (n->op) {
    case JN_OP_NEG:
        *out = sd_jn_number(-a->u.n);
        return 0;
    case JN_OP_PLUS:
        *out = *a;
        return 0;
    default:
        if (to_int(vm, n, a->u.n, &x) != 0) {
            return SD_JN_ERR;
        }
        *out = sd_jn_number((double)~x);
        return 0;
    }
}

static int index_value(struct sd_jn_vm *vm, const struct jn_node *n, struct sd_jn_val *t,
                       struct sd_jn_val *i, struct sd_jn_val *out)
{
    int found;

    if (t->type == SD_JN_OBJECT) {
        if (i->type != SD_JN_STRING) {
            return jn_throw_at(vm, n, "object index must be a string, got %s",
                               sd_jn_type_name(i->type));
        }
        vm->call_node = n;
        if (obj_index(vm, t->u.o, i->u.s->data, i->u.s->len, out, &found) != 0) {
            return SD_JN_ERR;
        }
        if (!found) {
            return jn_throw_at(vm, n, "field does not exist: %s", i->u.s->data);
        }
        return 0;
    }
    if (t->type == SD_JN_ARRAY || t->type == SD_JN_STRING) {
        size_t len = t->type == SD_JN_ARRAY ? t->u.a->n : t->u.s->ncp;
        size_t k;
        if (i->type != SD_JN_NUMBER) {
            return jn_throw_at(vm, n, "%s index must be a number, got %s", sd_jn_type_name(t->type),
                               sd_jn_type_name(i->type));
        }
        if (floor(i->u.n) != i->u.n) {
            return jn_throw_at(vm, n, "%s index must be an integer, got %g",
                               sd_jn_type_name(t->type), i->u.n);
        }
        if (i->u.n < 0 || i->u.n >= (double)len) {
            return jn_throw_at(vm, n, "index out of bounds: %g not within [0, %zu)", i->u.n, len);
        }
        k = (size_t)i->u.n;
        if (t->type == SD_JN_ARRAY) {
            return jn_force(vm, t->u.a->items[k], out);
        }
        {
            size_t off = sd_jn_str_offset(t->u.s, k);
            uint32_t cp;
            size_t l = sd_utf8_decode(t->u.s->data + off, &cp);
            *out = sd_jn_string(vm, t->u.s->data + off, l);
        }
        return 0;
    }
    return jn_throw_at(vm, n, "cannot index a value of type %s", sd_jn_type_name(t->type));
}

/* --- std as a value ------------------------------------------------------------------------- */

static struct sd_jn_obj *std_object(struct sd_jn_vm *vm)
{
    if (vm->std_obj == NULL) {
        struct sd_jn_obj *o = sd_jn_obj_new(vm, sd_jn_std_nnatives + 1);
        for (size_t i = 0; i < sd_jn_std_nnatives; i++) {
            const char *name = sd_jn_std_natives[i].name;
            sd_jn_obj_set(vm, o, i, sd_jn_str_new(vm, name, strlen(name)),
                          func_val(vm, &sd_jn_std_natives[i], NULL, NULL));
            o->fields[i].hide = JN_HIDE_HIDDEN;
        }
        sd_jn_obj_set(vm, o, sd_jn_std_nnatives, sd_jn_str_new(vm, "pi", 2),
                      sd_jn_number(SD_JN_STD_PI));
        o->fields[sd_jn_std_nnatives].hide = JN_HIDE_HIDDEN;
        vm->std_obj = o;
    }
    return vm->std_obj;
}

/* --- literals: arrays, objects, comprehensions ---------------------------------------------- */

static int field_name(struct sd_jn_vm *vm, const struct jn_node *at, struct sd_jn_val *v,
                      struct sd_jn_str **name)
{
    if (v->type == SD_JN_NULL) {
        *name = NULL;
        return 0;
    }
    if (v->type != SD_JN_STRING) {
        return jn_throw_at(vm, at, "field name must be a string, got %s", sd_jn_type_name(v->type));
    }
    *name = v->u.s;
    return 0;
}

/* A linear scan: charged as steps (a comparison costs a fraction of a step), so a comprehension
 * of many fields cannot do quadratic work within its step limit. */
static int check_duplicate(struct sd_jn_vm *vm, const struct jn_node *at, struct sd_jn_obj *o,
                           struct sd_jn_str *name)
{
    const struct jn_node *saved = vm->call_node;
    int rc;

    vm->call_node = at; /* where a limit error points */
    rc = sd_jn_tick(vm, o->nfields / 8);
    vm->call_node = saved;
    if (rc != 0) {
        return SD_JN_ERR;
    }
    for (size_t i = 0; i < o->nfields; i++) {
        if (jn_str_eq(o->fields[i].name, name->data, name->len)) {
            return jn_throw_at(vm, at, "duplicate field name: \"%s\"", name->data);
        }
    }
    return 0;
}

static int eval_object(struct sd_jn_vm *vm, const struct jn_node *n, struct jn_env *env,
                       struct sd_jn_val *out)
{
    struct sd_jn_obj *o = sd_jn_obj_new(vm, n->nfields);

    o->node = n;
    o->env = env;
    o->has_asserts = n->nasserts > 0;
    o->nfields = 0;
    for (unsigned i = 0; i < n->nfields; i++) {
        const struct jn_field *f = &n->fields[i];
        struct jn_ofield *of;
        struct sd_jn_str *name = f->name;
        if (f->name_expr != NULL) {
            struct sd_jn_val nv;
            if (eval(vm, f->name_expr, env, &nv) != 0 ||
                field_name(vm, f->name_expr, &nv, &name) != 0) {
                return SD_JN_ERR;
            }
            if (name == NULL) {
                continue;
            }
            if (check_duplicate(vm, f->name_expr, o, name) != 0) {
                return SD_JN_ERR;
            }
        }
        of = &o->fields[o->nfields++];
        of->name = name;
        of->hide = f->hide;
        of->plus = f->plus;
        of->body = f->body;
        of->env = env;
    }
    *out = sd_jn_object(o);
    return 0;
}

/* Runs a comprehension's specs from spec i, calling emit for every innermost binding. */
struct comp_ctx {
    const struct jn_node *n;
    struct sd_jn_obj *obj;      /* object comprehension */
    struct sd_jn_thunk **items; /* array comprehension */
    size_t nitems, cap;
};

static int comp_emit(struct sd_jn_vm *vm, struct comp_ctx *cx, struct jn_env *env)
{
    const struct jn_node *n = cx->n;

    if (n->kind == JN_ARRAY_COMP) {
        if (cx->nitems == cx->cap) {
            size_t cap = cx->cap ? cx->cap * 2 : 8;
            struct sd_jn_thunk **items = sd_jn_alloc(vm, sizeof(*items) * cap);
            if (cx->nitems > 0) {
                memcpy(items, cx->items, sizeof(*items) * cx->nitems);
            }
            cx->items = items;
            cx->cap = cap;
        }
        cx->items[cx->nitems++] = thunk_new(vm, n->a, env);
        return 0;
    }
    {
        const struct jn_field *f = &n->fields[0];
        struct sd_jn_val nv;
        struct sd_jn_str *name = NULL;
        struct jn_ofield *of;
        if (eval(vm, f->name_expr, env, &nv) != 0 ||
            field_name(vm, f->name_expr, &nv, &name) != 0) {
            return SD_JN_ERR;
        }
        if (name == NULL) {
            return 0;
        }
        if (check_duplicate(vm, f->name_expr, cx->obj, name) != 0) {
            return SD_JN_ERR;
        }
        if (cx->obj->nfields == cx->cap) {
            size_t cap = cx->cap ? cx->cap * 2 : 8;
            struct jn_ofield *fields = sd_jn_alloc(vm, sizeof(*fields) * cap);
            if (cx->obj->nfields > 0) {
                memcpy(fields, cx->obj->fields, sizeof(*fields) * cx->obj->nfields);
            }
            cx->obj->fields = fields;
            cx->cap = cap;
        }
        of = &cx->obj->fields[cx->obj->nfields++];
        of->name = name;
        of->hide = f->hide;
        of->body = f->body;
        of->env = env;
        return 0;
    }
}

static int comp_run(struct sd_jn_vm *vm, struct comp_ctx *cx, unsigned i, struct jn_env *env)
{
    const struct jn_comp_spec *s;
    struct sd_jn_val v;

    if (i == cx->n->nspecs) {
        return comp_emit(vm, cx, env);
    }
    if (enter(vm, cx->n) != 0) {
        return SD_JN_ERR;
    }
    s = &cx->n->specs[i];
    if (s->is_if) {
        if (eval(vm, s->expr, env, &v) != 0) {
            return SD_JN_ERR;
        }
        if (v.type != SD_JN_BOOL) {
            return jn_throw_at(vm, s->expr, "if condition must be a boolean, got %s",
                               sd_jn_type_name(v.type));
        }
        return v.u.b ? comp_run(vm, cx, i + 1, env) : 0;
    }
    if (eval(vm, s->expr, env, &v) != 0) {
        return SD_JN_ERR;
    }
    if (v.type != SD_JN_ARRAY) {
        return jn_throw_at(vm, s->expr, "for loop must iterate over an array, got %s",
                           sd_jn_type_name(v.type));
    }
    for (size_t k = 0; k < v.u.a->n; k++) {
        struct jn_env *e = env_new(vm, env, 1);
        e->slots[0] = v.u.a->items[k];
        if (comp_run(vm, cx, i + 1, e) != 0) {
            return SD_JN_ERR;
        }
    }
    return 0;
}

static int eval_comprehension(struct sd_jn_vm *vm, const struct jn_node *n, struct jn_env *env,
                              struct sd_jn_val *out)
{
    struct comp_ctx cx;

    memset(&cx, 0, sizeof(cx));
    cx.n = n;
    if (n->kind == JN_OBJECT_COMP) {
        cx.obj = sd_jn_obj_new(vm, 0);
        cx.obj->node = n;
        cx.obj->env = env;
    }
    if (comp_run(vm, &cx, 0, env) != 0) {
        return SD_JN_ERR;
    }
    if (n->kind == JN_OBJECT_COMP) {
        *out = sd_jn_object(cx.obj);
    } else {
        struct sd_jn_arr *a = sd_jn_alloc(vm, sizeof(*a));
        a->n = cx.nitems;
        a->items = cx.items;
        *out = sd_jn_array(a);
    }
    return 0;
}

static int eval_array(struct sd_jn_vm *vm, const struct jn_node *n, struct jn_env *env,
                      struct sd_jn_val *out)
{
    struct sd_jn_arr *a = sd_jn_alloc(vm, sizeof(*a));

    a->n = n->nitems;
    a->items = n->nitems > 0 ? sd_jn_alloc(vm, sizeof(*a->items) * n->nitems) : NULL;
    for (unsigned i = 0; i < n->nitems; i++) {
        a->items[i] = thunk_new(vm, n->items[i], env);
    }
    *out = sd_jn_array(a);
    return 0;
}

static int eval_slice(struct sd_jn_vm *vm, const struct jn_node *n, struct jn_env *env,
                      struct sd_jn_val *out)
{
    struct sd_jn_val args[SD_JN_NATIVE_MAX_PARAMS];
    const struct jn_node *parts[4] = {n->a, n->b, n->c, n->d};

    for (unsigned i = 0; i < SD_JN_NATIVE_MAX_PARAMS; i++) {
        args[i] = sd_jn_null();
        if (parts[i] != NULL && eval(vm, parts[i], env, &args[i]) != 0) {
            return SD_JN_ERR;
        }
    }
    return call_native(vm, n, n->u.native, args, out);
}

static int eval_message(struct sd_jn_vm *vm, const struct jn_node *at, const struct jn_node *msg,
                        struct jn_env *env, const char *fallback)
{
    struct sd_jn_val m;
    struct sd_buf text = sd_jn_buf(vm);
    int rc;

    if (msg == NULL) {
        return jn_throw_at(vm, at, "%s", fallback);
    }
    if (eval(vm, msg, env, &m) != 0) {
        return SD_JN_ERR;
    }
    rc = sd_jn_to_string(vm, &m, &text);
    if (rc == 0) {
        rc = throw_text(vm, at, text.data, text.len);
    }
    sd_buf_fini(&text);
    return rc;
}

/* --- the evaluator -------------------------------------------------------------------------- */

static int eval(struct sd_jn_vm *vm, const struct jn_node *n, struct jn_env *env,
                struct sd_jn_val *out)
{
    struct sd_jn_val a;
    struct sd_jn_val b;
    int rc;

    for (;;) {
        if (enter(vm, n) != 0) {
            return SD_JN_ERR;
        }
        switch (n->kind) {
        case JN_LIT_NULL:
            *out = sd_jn_null();
            return 0;
        case JN_LIT_TRUE:
        case JN_LIT_FALSE:
            *out = sd_jn_bool(n->kind == JN_LIT_TRUE);
            return 0;
        case JN_LIT_NUMBER:
            *out = sd_jn_number(n->u.num);
            return 0;
        case JN_LIT_STRING:
            *out = jn_string_of(n->u.str);
            return 0;
        case JN_SELF:
            *out = sd_jn_object(env->self);
            return 0;
        case JN_VAR: {
            struct jn_env *e = env;
            for (unsigned d = n->u.var.depth; d > 0; d--) {
                e = e->up;
            }
            return jn_force(vm, e->slots[n->u.var.slot], out);
        }
        case JN_STD:
            *out = sd_jn_object(std_object(vm));
            return 0;
        case JN_NATIVE:
            *out = func_val(vm, n->u.native, NULL, NULL);
            return 0;
        case JN_SUPER_INDEX:
        case JN_IN_SUPER: {
            struct sd_jn_obj *layer;
            unsigned depth;
            struct jn_ofield *f;
            if (eval(vm, n->a, env, &a) != 0) {
                return SD_JN_ERR;
            }
            if (a.type != SD_JN_STRING) {
                return jn_throw_at(vm, n, "super index must be a string, got %s",
                                   sd_jn_type_name(a.type));
            }
            f = jn_find_field(vm, env->self, a.u.s->data, a.u.s->len, env->super_depth, &layer,
                              &depth);
            if (n->kind == JN_IN_SUPER) {
                *out = sd_jn_bool(f != NULL);
                return 0;
            }
            if (f == NULL) {
                if (env->super_depth >= env->self->nlayers) {
                    return jn_throw_at(vm, n, "attempt to use super when there is no super class");
                }
                return jn_throw_at(vm, n, "field does not exist: %s", a.u.s->data);
            }
            return eval_field(vm, env->self, layer, f, depth, out);
        }
        case JN_LOCAL: {
            struct jn_env *e = env_new(vm, env, n->nbinds);
            for (unsigned i = 0; i < n->nbinds; i++) {
                e->slots[i] = thunk_new(vm, n->binds[i].body, e);
            }
            env = e;
            n = n->a;
            continue;
        }
        case JN_IF:
            if (eval(vm, n->a, env, &a) != 0) {
                return SD_JN_ERR;
            }
            if (a.type != SD_JN_BOOL) {
                return jn_throw_at(vm, n, "if condition must be a boolean, got %s",
                                   sd_jn_type_name(a.type));
            }
            if (!a.u.b && n->c == NULL) {
                *out = sd_jn_null();
                return 0;
            }
            n = a.u.b ? n->b : n->c;
            continue;
        case JN_BINARY:
            if (eval(vm, n->a, env, &a) != 0) {
                return SD_JN_ERR;
            }
            if (n->op == JN_OP_AND || n->op == JN_OP_OR) {
                if (a.type != SD_JN_BOOL) {
                    return jn_throw_at(vm, n, "binary operator %s does not operate on %s",
                                       op_text(n->op), sd_jn_type_name(a.type));
                }
                if (a.u.b == (n->op == JN_OP_OR)) {
                    *out = a;
                    return 0;
                }
                if (eval(vm, n->b, env, &b) != 0) {
                    return SD_JN_ERR;
                }
                if (b.type != SD_JN_BOOL) {
                    return jn_throw_at(vm, n, "binary operator %s does not operate on %s",
                                       op_text(n->op), sd_jn_type_name(b.type));
                }
                *out = b;
                return 0;
            }
            if (eval(vm, n->b, env, &b) != 0) {
                return SD_JN_ERR;
            }
            return binary(vm, n, &a, &b, out);
        case JN_UNARY:
            if (eval(vm, n->a, env, &a) != 0) {
                return SD_JN_ERR;
            }
            return unary(vm, n, &a, out);
        case JN_INDEX:
            if (eval(vm, n->a, env, &a) != 0 || eval(vm, n->b, env, &b) != 0) {
                return SD_JN_ERR;
            }
            return index_value(vm, n, &a, &b, out);
        case JN_SLICE:
            return eval_slice(vm, n, env, out);
        case JN_APPLY: {
            struct jn_env *frame = NULL;
            if (n->a->kind == JN_NATIVE) {
                return apply_native(vm, n, env, n->a->u.native, out);
            }
            if (eval(vm, n->a, env, &a) != 0) {
                return SD_JN_ERR;
            }
            if (a.type != SD_JN_FUNCTION) {
                return jn_throw_at(vm, n, "only functions can be called, got %s",
                                   sd_jn_type_name(a.type));
            }
            if (a.u.f->kind == JN_FUNC_NATIVE) {
                return apply_native(vm, n, env, a.u.f->native, out);
            }
            if (bind_closure(vm, n, env, a.u.f, &frame) != 0) {
                return SD_JN_ERR;
            }
            if (n->tailstrict) {
                env = frame;
                n = a.u.f->fn->a;
                continue;
            }
            if (++vm->calls > vm->limits.max_calls) {
                vm->calls--;
                return jn_throw_at(vm, n, "max stack frames exceeded.");
            }
            rc = eval(vm, a.u.f->fn->a, frame, out);
            vm->calls--;
            return rc;
        }
        case JN_FUNCTION:
            *out = func_val(vm, NULL, n, env);
            return 0;
        case JN_ARRAY:
            return eval_array(vm, n, env, out);
        case JN_ARRAY_COMP:
        case JN_OBJECT_COMP:
            return eval_comprehension(vm, n, env, out);
        case JN_OBJECT:
            return eval_object(vm, n, env, out);
        case JN_ERROR:
            return eval_message(vm, n, n->a, env, "error");
        case JN_ASSERT:
            if (eval(vm, n->a, env, &a) != 0) {
                return SD_JN_ERR;
            }
            if (a.type != SD_JN_BOOL) {
                return jn_throw_at(vm, n, "assert condition must be a boolean, got %s",
                                   sd_jn_type_name(a.type));
            }
            if (!a.u.b) {
                return eval_message(vm, n, n->b, env, "assertion failed");
            }
            n = n->c;
            continue;
        case JN_CALL_VALUE:
            return sd_jn_call_lazy(vm, &env->slots[0]->v, env->n - 1, env->slots + 1, out);
        default:
            return jn_throw_at(vm, n, "internal error: unknown node %d", n->kind);
        }
    }
}

/* --- equality and ordering ------------------------------------------------------------------ */

int sd_jn_equal(struct sd_jn_vm *vm, const struct sd_jn_val *a, const struct sd_jn_val *b, int *eq)
{
    if (enter(vm, vm->call_node) != 0) {
        return SD_JN_ERR;
    }
    *eq = 0;
    if (a->type != b->type) {
        return 0;
    }
    switch (a->type) {
    case SD_JN_NULL:
        *eq = 1;
        return 0;
    case SD_JN_BOOL:
        *eq = a->u.b == b->u.b;
        return 0;
    case SD_JN_NUMBER:
        *eq = a->u.n == b->u.n;
        return 0;
    case SD_JN_STRING:
        *eq = a->u.s->len == b->u.s->len && memcmp(a->u.s->data, b->u.s->data, a->u.s->len) == 0;
        return 0;
    case SD_JN_ARRAY:
        if (a->u.a->n != b->u.a->n) {
            return 0;
        }
        for (size_t i = 0; i < a->u.a->n; i++) {
            struct sd_jn_val x;
            struct sd_jn_val y;
            if (jn_force(vm, a->u.a->items[i], &x) != 0 ||
                jn_force(vm, b->u.a->items[i], &y) != 0 || sd_jn_equal(vm, &x, &y, eq) != 0) {
                return SD_JN_ERR;
            }
            if (!*eq) {
                return 0;
            }
        }
        *eq = 1;
        return 0;
    case SD_JN_OBJECT: {
        struct sd_jn_str **fa;
        struct sd_jn_str **fb;
        size_t na;
        size_t nb;
        if (sd_jn_obj_fields(vm, a->u.o, 0, &fa, &na) != 0 ||
            sd_jn_obj_fields(vm, b->u.o, 0, &fb, &nb) != 0) {
            return SD_JN_ERR;
        }
        if (na != nb) {
            return 0;
        }
        for (size_t i = 0; i < na; i++) {
            if (fa[i]->len != fb[i]->len || memcmp(fa[i]->data, fb[i]->data, fa[i]->len) != 0) {
                return 0;
            }
        }
        for (size_t i = 0; i < na; i++) {
            struct sd_jn_val x;
            struct sd_jn_val y;
            int found;
            if (obj_index(vm, a->u.o, fa[i]->data, fa[i]->len, &x, &found) != 0 ||
                obj_index(vm, b->u.o, fa[i]->data, fa[i]->len, &y, &found) != 0 ||
                sd_jn_equal(vm, &x, &y, eq) != 0) {
                return SD_JN_ERR;
            }
            if (!*eq) {
                return 0;
            }
        }
        *eq = 1;
        return 0;
    }
    default:
        return sd_jn_throw(vm, "cannot test equality of functions");
    }
}

int sd_jn_compare(struct sd_jn_vm *vm, const struct sd_jn_val *a, const struct sd_jn_val *b,
                  int *cmp)
{
    if (enter(vm, vm->call_node) != 0) {
        return SD_JN_ERR;
    }
    if (a->type != b->type) {
        return sd_jn_throw(vm, "cannot compare %s with %s", sd_jn_type_name(a->type),
                           sd_jn_type_name(b->type));
    }
    switch (a->type) {
    case SD_JN_NUMBER:
        *cmp = a->u.n < b->u.n ? -1 : a->u.n > b->u.n;
        return 0;
    case SD_JN_STRING:
        *cmp = sd_jn_str_cmp(a->u.s, b->u.s);
        return 0;
    case SD_JN_ARRAY:
        for (size_t i = 0; i < a->u.a->n && i < b->u.a->n; i++) {
            struct sd_jn_val x;
            struct sd_jn_val y;
            if (jn_force(vm, a->u.a->items[i], &x) != 0 ||
                jn_force(vm, b->u.a->items[i], &y) != 0 || sd_jn_compare(vm, &x, &y, cmp) != 0) {
                return SD_JN_ERR;
            }
            if (*cmp != 0) {
                return 0;
            }
        }
        *cmp = a->u.a->n < b->u.a->n ? -1 : a->u.a->n > b->u.a->n;
        return 0;
    default:
        return sd_jn_throw(vm, "values of type %s cannot be compared", sd_jn_type_name(a->type));
    }
}

/* --- VM and entry points -------------------------------------------------------------------- */

struct sd_jn_vm *sd_jn_vm_new(const struct sd_jn_limits *limits)
{
    struct sd_jn_vm *vm = sd_xcalloc(1, sizeof(*vm));

    if (limits != NULL) {
        vm->limits = *limits;
    }
    if (vm->limits.max_steps == 0) {
        vm->limits.max_steps = JN_DEFAULT_STEPS;
    }
    vm->step_budget = SD_JN_NO_STEP_BUDGET;
    if (vm->limits.max_calls == 0) {
        vm->limits.max_calls = JN_DEFAULT_CALLS;
    }
    if (vm->limits.max_stack == 0) {
        vm->limits.max_stack = JN_DEFAULT_STACK;
    }
    if (vm->limits.max_memory == 0) {
        vm->limits.max_memory = JN_DEFAULT_MEMORY;
    }
    if (vm->limits.max_output == 0) {
        vm->limits.max_output = JN_DEFAULT_OUTPUT;
    }
    if (vm->limits.max_time_ms == 0) {
        vm->limits.max_time_ms = JN_DEFAULT_TIME_MS;
    }
    vm->mem.max = vm->limits.max_memory;
    return vm;
}

void sd_jn_vm_free(struct sd_jn_vm *vm)
{
    if (vm == NULL) {
        return;
    }
    jn_chunks_free(vm->chunks);
    sd_buf_fini(&vm->err);
    free(vm);
}

void sd_jn_vm_set_deadline(struct sd_jn_vm *vm, int64_t deadline_ms)
{
    vm->outer_deadline_ms = deadline_ms;
}

void sd_jn_vm_set_step_budget(struct sd_jn_vm *vm, uint64_t budget)
{
    vm->step_budget = budget;
}

int sd_jn_vm_budget_exhausted(const struct sd_jn_vm *vm)
{
    return vm->budget_exhausted;
}

void sd_jn_vm_error_pos(const struct sd_jn_vm *vm, unsigned *line, unsigned *col)
{
    *line = vm->err_node != NULL ? vm->err_node->line : 0;
    *col = vm->err_node != NULL ? vm->err_node->col : 0;
}

/* The C stack this thread may spend: the configured budget, but never more than the thread's
 * stack holds below the current frame (minus a reserve for the natives and libc). */
static size_t stack_budget(struct sd_jn_vm *vm, const char *here)
{
    if (vm->stack_size_cap == 0) {
        pthread_attr_t attr;
        void *addr;
        size_t size;
        vm->stack_size_cap = (size_t)1 << 20;
        if (pthread_getattr_np(pthread_self(), &attr) == 0) {
            if (pthread_attr_getstack(&attr, &addr, &size) == 0 && here > (const char *)addr) {
                size_t room = (size_t)(here - (const char *)addr);
                vm->stack_size_cap =
                    room > 2 * JN_STACK_RESERVE ? room - JN_STACK_RESERVE : room / 2;
            }
            pthread_attr_destroy(&attr);
        }
    }
    return vm->limits.max_stack < vm->stack_size_cap ? vm->limits.max_stack : vm->stack_size_cap;
}

int sd_jn_compile(const char *src, size_t len, const char *name, const struct sd_jn_native *globals,
                  size_t nglobals, struct sd_jn_program **out, struct sd_buf *err)
{
    struct sd_jn_program *p = sd_xcalloc(1, sizeof(*p));
    int rc;

    *out = NULL;
    rc = jn_parse(src, len, globals, nglobals, &p->chunks, &p->root, err);
    if (rc != 0) {
        sd_jn_program_free(p);
        return rc;
    }
    p->name = sd_xstrdup(name != NULL ? name : "");
    *out = p;
    return 0;
}

void sd_jn_program_free(struct sd_jn_program *prog)
{
    if (prog == NULL) {
        return;
    }
    jn_chunks_free(prog->chunks);
    free(prog->name);
    free(prog);
}

int sd_jn_eval(const struct sd_jn_program *prog, struct sd_jn_vm *vm, void *host,
               enum sd_jn_output form, struct sd_buf *out, struct sd_buf *err)
{
    size_t start = out->len;
    struct sd_buf_budget *out_budget = out->budget;
    struct sd_jn_val v;
    struct jn_env *root;
    int rc;

    out->budget = &vm->mem; /* the output's growth counts against the memory limit too */
    vm->deadline_ms = sd_mono_ms() + vm->limits.max_time_ms;
    if (vm->outer_deadline_ms != 0 && vm->outer_deadline_ms < vm->deadline_ms) {
        vm->deadline_ms = vm->outer_deadline_ms;
    }
    vm->clock_steps = JN_CLOCK_STEPS;
    vm->stack_base = __builtin_frame_address(0);
    vm->stack_budget = stack_budget(vm, vm->stack_base);
    vm->failed = 0;
    vm->output_exceeded = 0;
    vm->err_node = NULL;
    vm->call_node = prog->root;
    vm->steps = 0;
    vm->step_cap = vm->step_budget < vm->limits.max_steps ? vm->step_budget : vm->limits.max_steps;
    vm->budget_exhausted = 0;
    vm->calls = 0;
    vm->host = host;
    vm->prog_name = prog->name;
    vm->std_obj = NULL;
    root = env_new(vm, NULL, 0);
    rc = eval(vm, prog->root, root, &v);
    if (rc == 0) {
        vm->call_node = prog->root;
        if (form == SD_JN_OUT_RAW && v.type == SD_JN_STRING) {
            rc = sd_buf_append(out, v.u.s->data, v.u.s->len) == 0 ? 0 : -ENOMEM;
        } else {
            rc = sd_jn_manifest(
                vm, &v, form == SD_JN_OUT_PRETTY ? &sd_jn_style_pretty : &sd_jn_style_compact, out);
            if (rc == 0 && form == SD_JN_OUT_PRETTY) {
                rc = sd_buf_append_char(out, '\n') == 0 ? 0 : -ENOMEM;
            }
        }
        if (rc != SD_JN_ERR && vm->mem.is_exceeded) {
            rc = jn_memory_error(vm);
        } else if (rc == 0 && out->len - start > vm->limits.max_output) {
            vm->output_exceeded = 1;
            rc = sd_jn_throw(vm, "output limit (%zu bytes) exceeded", vm->limits.max_output);
        }
    }
    if (rc != 0) {
        out->len = start;
        if (out->data != NULL) {
            out->data[start] = '\0';
        }
        if (rc != -ENOMEM) {
            sd_buf_append(err, vm->err.data != NULL ? vm->err.data : "error", vm->err.len);
            rc = vm->output_exceeded ? SD_ELIMIT : SD_EINVAL;
        }
    }
    out->budget = out_budget;
    if (vm->step_budget != SD_JN_NO_STEP_BUDGET) {
        vm->step_budget -= vm->steps < vm->step_budget ? vm->steps : vm->step_budget;
    }
    vm->host = NULL;
    vm->prog_name = NULL;
    jn_arena_reset(vm);
    return rc;
}
