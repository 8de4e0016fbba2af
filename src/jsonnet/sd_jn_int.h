/* sd_jn_int.h: the engine's internal structures, shared by the lexer/parser (sd_jn_parse.c), the
 * evaluator (sd_jn_eval.c), the value model (sd_jn_value.c) and the JSON writer
 * (sd_jn_manifest.c). Natives outside the core use sd_jn_value.h only.
 *
 * DESIGN. The parser produces an AST in which every variable is already resolved to a (frame
 * depth, slot) pair, every std.<name> to its native, and every host global to its native: the
 * evaluator never looks a name up by string. Environments are linked frames of thunks; each
 * frame also carries the self binding (the object `self` denotes and how many of its layers
 * `super` skips), so closures capture self with their frame. Objects are layers: a simple
 * object (fields of one literal, comprehension or native construction) or an extension of two
 * objects (a + b); fields are found from the top layer down, as in the Jsonnet specification's
 * inheritance model. All values live in the VM's arena, released at the end of an evaluation. */
#ifndef SD_JN_INT_H
#define SD_JN_INT_H

#include <stddef.h>
#include <stdint.h>

#include "jsonnet/sd_jn_value.h"

/* ---------------------------------------------------------------------------------------------
 * AST */

enum jn_kind {
    JN_LIT_NULL,
    JN_LIT_TRUE,
    JN_LIT_FALSE,
    JN_LIT_NUMBER, /* num */
    JN_LIT_STRING, /* str */
    JN_SELF,
    JN_SUPER_INDEX, /* super[a] (a = the field name expression) */
    JN_IN_SUPER,    /* a in super */
    JN_VAR,         /* depth, slot */
    JN_STD,         /* the std object as a value */
    JN_NATIVE,      /* native: a std function or host global, as a function value */
    JN_LOCAL,       /* binds[nbinds] in one recursive frame, then body */
    JN_IF,          /* a ? b : c (c may be NULL: null) */
    JN_BINARY,      /* op, a, b */
    JN_UNARY,       /* op, a */
    JN_INDEX,       /* a[b] */
    JN_SLICE,       /* a[b:c:d] (b, c, d may be NULL) */
    JN_APPLY,       /* a(args) */
    JN_FUNCTION,    /* params, body */
    JN_ARRAY,       /* items[n] */
    JN_ARRAY_COMP,  /* body, specs */
    JN_OBJECT,      /* object literal */
    JN_OBJECT_COMP, /* object comprehension */
    JN_ERROR,       /* error a */
    JN_ASSERT,      /* assert a : b; c */
    JN_CALL_VALUE   /* internal: a lazy call of slots[0] with the frame's other slots as args */
};

enum jn_op {
    JN_OP_MUL,
    JN_OP_DIV,
    JN_OP_MOD,
    JN_OP_ADD,
    JN_OP_SUB,
    JN_OP_SHL,
    JN_OP_SHR,
    JN_OP_LT,
    JN_OP_LE,
    JN_OP_GT,
    JN_OP_GE,
    JN_OP_IN,
    JN_OP_EQ,
    JN_OP_NE,
    JN_OP_BAND,
    JN_OP_BXOR,
    JN_OP_BOR,
    JN_OP_AND,
    JN_OP_OR,
    JN_OP_NEG,
    JN_OP_PLUS,
    JN_OP_NOT,
    JN_OP_BNOT
};

enum jn_hide { JN_HIDE_INHERIT, JN_HIDE_HIDDEN, JN_HIDE_VISIBLE };

struct jn_node;

struct jn_bind { /* local x = e, and object locals */
    struct sd_jn_str *name;
    struct jn_node *body;
};

struct jn_param {
    struct sd_jn_str *name;
    struct jn_node *def; /* NULL: required */
};

struct jn_arg {
    struct sd_jn_str *name; /* NULL: positional */
    struct jn_node *expr;
};

struct jn_field {
    struct sd_jn_str *name; /* fixed name, or NULL when name_expr computes it */
    struct jn_node *name_expr;
    struct jn_node *body;
    uint8_t hide;
    uint8_t plus; /* +: */
};

struct jn_comp_spec { /* for var in expr / if expr */
    int is_if;
    struct sd_jn_str *var; /* for: the variable */
    struct jn_node *expr;  /* for: the array; if: the condition */
};

struct jn_node {
    uint8_t kind;
    uint8_t op;
    uint8_t tailstrict;
    uint32_t line;
    uint32_t col;
    union {
        double num;
        struct sd_jn_str *str;
        struct {
            unsigned depth;
            unsigned slot;
        } var;
        const struct sd_jn_native *native;
    } u;
    struct jn_node *a, *b, *c, *d;
    /* JN_LOCAL binds; JN_OBJECT / JN_OBJECT_COMP locals */
    struct jn_bind *binds;
    unsigned nbinds;
    /* JN_FUNCTION */
    struct jn_param *params;
    unsigned nparams;
    /* JN_APPLY */
    struct jn_arg *args;
    unsigned nargs;
    unsigned npositional;
    /* JN_ARRAY items */
    struct jn_node **items;
    unsigned nitems;
    /* JN_OBJECT fields and asserts */
    struct jn_field *fields;
    unsigned nfields;
    struct jn_node **asserts; /* JN_ASSERT-like nodes: a = condition, b = message */
    unsigned nasserts;
    /* JN_ARRAY_COMP / JN_OBJECT_COMP */
    struct jn_comp_spec *specs;
    unsigned nspecs;
};

/* ---------------------------------------------------------------------------------------------
 * Runtime */

struct jn_env {
    struct jn_env *up;
    struct sd_jn_obj *self; /* NULL outside objects */
    unsigned super_depth;   /* super = self's layers below this many from the top */
    unsigned n;
    struct sd_jn_thunk *slots[];
};

enum jn_thunk_state { JN_THUNK_PENDING, JN_THUNK_RUNNING, JN_THUNK_DONE };

struct sd_jn_thunk {
    uint8_t state;
    struct sd_jn_val v;
    const struct jn_node *expr;
    struct jn_env *env;
};

struct sd_jn_arr {
    size_t n;
    struct sd_jn_thunk **items;
};

enum jn_func_kind { JN_FUNC_CLOSURE, JN_FUNC_NATIVE };

struct sd_jn_func {
    uint8_t kind;
    const struct jn_node *fn; /* closure: JN_FUNCTION node */
    struct jn_env *env;
    const struct sd_jn_native *native;
};

/* One field of a simple object. */
struct jn_ofield {
    struct sd_jn_str *name;
    uint8_t hide;
    uint8_t plus;
    const struct jn_node *body; /* NULL: value holds the (constant) value */
    struct jn_env *env;         /* the environment of body (before the object's locals) */
    struct sd_jn_thunk *value;
};

enum jn_obj_kind { JN_OBJ_SIMPLE, JN_OBJ_EXTENDED };

struct jn_cache_entry {
    struct sd_jn_str *name;
    struct sd_jn_thunk *value;
};

struct sd_jn_obj {
    uint8_t kind;
    uint8_t asserts_state; /* 0 not run, 1 running, 2 done (for this object as self) */
    uint8_t has_asserts;   /* this object or a layer has asserts */
    unsigned nlayers;
    /* simple */
    size_t nfields;
    struct jn_ofield *fields;
    uint32_t *index; /* open-addressing field index (nfields > 8), lazily built */
    size_t index_cap;
    const struct jn_node *node; /* the literal (locals, asserts, $), NULL for built objects */
    struct jn_env *env;         /* environment of the asserts */
    /* extended */
    struct sd_jn_obj *left, *right;
    /* field values with this object as self */
    struct jn_cache_entry *cache;
    size_t cache_n, cache_cap;
};

/* The arena: chunks freed all at once. */
struct jn_chunk {
    struct jn_chunk *next;
    size_t size;
    size_t used;
    char data[];
};

struct sd_jn_vm {
    struct sd_jn_limits limits;
    struct jn_chunk *chunks;
    struct sd_buf_budget mem; /* the arena's chunks plus every buffer of the evaluation */
    uint64_t steps;
    uint64_t step_cap;         /* this evaluation's: max_steps, or less under a step budget */
    uint64_t step_budget;      /* sd_jn_vm_set_step_budget's steps left, SD_JN_NO_STEP_BUDGET */
    int budget_exhausted;      /* the last evaluation failed on step_budget */
    uint64_t clock_steps;      /* look at the clock when steps reaches this */
    int64_t deadline_ms;       /* sd_mono_ms() after which the evaluation fails */
    int64_t outer_deadline_ms; /* sd_jn_vm_set_deadline's, 0 = none */
    unsigned calls;
    const char *stack_base;
    size_t stack_budget;
    size_t stack_size_cap; /* from the thread's stack size, 0 = not known yet */
    void *host;
    const char *prog_name;           /* the program being evaluated (std.trace) */
    const struct jn_node *err_node;  /* where the error happened */
    const struct jn_node *call_node; /* the application of the native being run */
    struct sd_buf err;
    int failed;
    int output_exceeded;       /* the error is the output limit */
    struct sd_jn_obj *std_obj; /* the std object, built when used as a value */
};

/* The compiled program. */
struct sd_jn_program {
    struct jn_node *root;
    struct jn_chunk *chunks; /* AST memory */
    char *name;
};

/* ---------------------------------------------------------------------------------------------
 * Internal functions */

/* sd_jn_value.c */
struct sd_jn_thunk *jn_thunk_done(struct sd_jn_vm *vm, struct sd_jn_val v);
void jn_arena_reset(struct sd_jn_vm *vm);
void *jn_chunk_alloc(struct jn_chunk **chunks, size_t size, size_t *total);
void jn_chunks_free(struct jn_chunk *chunks);
int jn_str_eq(const struct sd_jn_str *a, const char *p, size_t len);
/* FNV-1a of a field name: the field index of simple objects and the per-object value cache. */
uint32_t jn_name_hash(const char *p, size_t len);
/* 1 when n items of size bytes fit in the memory limit; else 0, and the VM has failed. */
int jn_fits(struct sd_jn_vm *vm, size_t n, size_t size);
struct sd_jn_val jn_string_of(struct sd_jn_str *s);
/* Simple-object field lookup (name in this layer only); returns the field or NULL. */
struct jn_ofield *jn_simple_field(struct sd_jn_vm *vm, struct sd_jn_obj *o, const char *name,
                                  size_t len);

/* sd_jn_eval.c */
int jn_force(struct sd_jn_vm *vm, struct sd_jn_thunk *t, struct sd_jn_val *out);
/* Fails the VM with the memory-limit error; returns SD_JN_ERR. */
int jn_memory_error(struct sd_jn_vm *vm);
int jn_throw_at(struct sd_jn_vm *vm, const struct jn_node *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Finds the field name in o's layers at or below depth min_depth from the top; returns its layer
 * (a simple object) and field, and *depth the layer's depth. */
struct jn_ofield *jn_find_field(struct sd_jn_vm *vm, struct sd_jn_obj *o, const char *name,
                                size_t len, unsigned min_depth, struct sd_jn_obj **layer,
                                unsigned *depth);
/* Runs the asserts of o (as self) once. */
int jn_obj_check_asserts(struct sd_jn_vm *vm, struct sd_jn_obj *o);
struct sd_jn_obj *jn_obj_extend(struct sd_jn_vm *vm, struct sd_jn_obj *left,
                                struct sd_jn_obj *right);

/* sd_jn_parse.c */
int jn_parse(const char *src, size_t len, const struct sd_jn_native *globals, size_t nglobals,
             struct jn_chunk **chunks, struct jn_node **root, struct sd_buf *err);
const struct sd_jn_native *jn_std_lookup(const char *name, size_t len);

#endif
