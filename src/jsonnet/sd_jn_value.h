/* sd_jn_value.h: Jsonnet values and the API native functions use (the std library, sd_jn_std*.c,
 * and host functions such as the template record functions): constructing values, reading
 * arrays and objects, calling function values, comparing, manifesting, raising errors.
 *
 * Memory: every value lives in the VM's arena and is freed all at once when the evaluation ends;
 * natives never free. Allocation never returns NULL. The constructors (strings, arrays, objects)
 * check the memory limit: a value that does not fit fails the evaluation and comes back empty
 * (setters ignore indexes beyond it), and the evaluator reports the error when the native
 * returns. Buffers natives grow come from sd_jn_buf and count against the same limit.
 * sd_jn_tick bounds steps, memory and time; natives call it in loops proportional to their
 * input, and size other scratch memory by existing values only.
 *
 * Errors: functions that can fail return 0 or SD_JN_ERR; after SD_JN_ERR the VM holds the message
 * and the caller must return SD_JN_ERR at once (sd_jn_throw sets a message and returns it). */
#ifndef SD_JN_VALUE_H
#define SD_JN_VALUE_H

#include <stddef.h>
#include <stdint.h>

#include "core/sd_buf.h"
#include "core/sd_utf8.h"
#include "jsonnet/sd_jsonnet.h"

#define SD_JN_ERR (-1)

enum sd_jn_type {
    SD_JN_NULL,
    SD_JN_BOOL,
    SD_JN_NUMBER,
    SD_JN_STRING,
    SD_JN_ARRAY,
    SD_JN_OBJECT,
    SD_JN_FUNCTION,
    SD_JN_ABSENT /* only as a native's argument: an optional parameter that was not given */
};

/* A string: UTF-8 bytes (NUL-terminated, may contain NUL), len bytes, ncp code points. Jsonnet
 * indexes strings by code point; ascii (ncp == len) makes that O(1). */
struct sd_jn_str {
    size_t len;
    size_t ncp;
    char data[];
};

struct sd_jn_arr;   /* elements are lazy: read them with sd_jn_arr_get */
struct sd_jn_obj;   /* fields are lazy and may be inherited: sd_jn_obj_get, sd_jn_obj_fields */
struct sd_jn_func;  /* a closure or a native: call with sd_jn_call */
struct sd_jn_thunk; /* a lazy value (internal) */

struct sd_jn_val {
    enum sd_jn_type type;
    union {
        int b;
        double n;
        struct sd_jn_str *s;
        struct sd_jn_arr *a;
        struct sd_jn_obj *o;
        struct sd_jn_func *f;
    } u;
};

/* A native function: std.<name> (sd_jn_std_natives) or a host global <name>. The evaluator binds
 * positional and named arguments to params (nrequired first, the rest optional: missing ones
 * arrive as SD_JN_ABSENT), forces them, and calls fn with args[nparams]. Wrong arity or an
 * unknown named argument is an error before fn runs. fn writes the result to *out and returns 0,
 * or returns SD_JN_ERR (sd_jn_throw). */
typedef int (*sd_jn_native_fn)(struct sd_jn_vm *vm, struct sd_jn_val *args, struct sd_jn_val *out);
struct sd_jn_native {
    const char *name;
    sd_jn_native_fn fn;
    unsigned nparams; /* at most SD_JN_NATIVE_MAX_PARAMS */
    unsigned nrequired;
    const char *params[4];
};
#define SD_JN_NATIVE_MAX_PARAMS 4

/* The std library's natives, sorted by name (sd_jn_std.c). The compiler resolves std.<name>
 * against this table; a name not in it is a compile error ("std.<name> is not supported"). */
extern const struct sd_jn_native sd_jn_std_natives[];
extern const size_t sd_jn_std_nnatives;
/* std.pi, the std library's one value that is not a function (std.jsonnet's
 * 3.14159265358979311600, the double nearest to pi). */
#define SD_JN_STD_PI 3.14159265358979311600

/* --- errors and limits ------------------------------------------------------------------- */

/* Sets the VM's error message (printf format) and returns SD_JN_ERR. */
int sd_jn_throw(struct sd_jn_vm *vm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Charges n evaluation steps; returns SD_JN_ERR (with a message) when the step, memory or time
 * limit is exceeded. */
int sd_jn_tick(struct sd_jn_vm *vm, uint64_t n);
/* An empty scratch buffer whose growth counts against the evaluation's memory limit (free it
 * with sd_buf_fini before the native returns). Growth past the limit fails (appends do nothing)
 * and the next sd_jn_tick, or the native's return, reports the memory error. Natives build
 * every string in such buffers. */
struct sd_buf sd_jn_buf(struct sd_jn_vm *vm);
/* Where the running native was called: the program's name and the call's 1-based line. */
void sd_jn_call_site(const struct sd_jn_vm *vm, const char **file, unsigned *line);
/* The host pointer of the current evaluation (sd_jn_eval). */
void *sd_jn_host(struct sd_jn_vm *vm);
/* "null", "boolean", "number", "string", "array", "object", "function". */
const char *sd_jn_type_name(enum sd_jn_type t);

/* --- construction ------------------------------------------------------------------------ */

/* Arena allocation (zeroed); never returns NULL. */
void *sd_jn_alloc(struct sd_jn_vm *vm, size_t size);
static inline struct sd_jn_val sd_jn_null(void)
{
    struct sd_jn_val v;
    v.type = SD_JN_NULL;
    v.u.n = 0;
    return v;
}
static inline struct sd_jn_val sd_jn_bool(int b)
{
    struct sd_jn_val v;
    v.type = SD_JN_BOOL;
    v.u.b = b != 0;
    return v;
}
static inline struct sd_jn_val sd_jn_number(double n)
{
    struct sd_jn_val v;
    v.type = SD_JN_NUMBER;
    v.u.n = n;
    return v;
}
/* A string copied from p[0..len) (must be valid UTF-8: check foreign bytes with sd_utf8_valid). */
struct sd_jn_val sd_jn_string(struct sd_jn_vm *vm, const char *p, size_t len);
struct sd_jn_str *sd_jn_str_new(struct sd_jn_vm *vm, const char *p, size_t len);
/* Code-point order of two strings (bytewise on UTF-8): <0, 0 or >0. */
static inline int sd_jn_str_cmp(const struct sd_jn_str *a, const struct sd_jn_str *b)
{
    struct sd_str x = {a->data, a->len};
    struct sd_str y = {b->data, b->len};

    return sd_str_cmp(x, y);
}
/* Byte offset of code point index i in s (i ≤ s->ncp). */
size_t sd_jn_str_offset(const struct sd_jn_str *s, size_t i);

/* A new array of n elements, all null until set. */
struct sd_jn_arr *sd_jn_arr_new(struct sd_jn_vm *vm, size_t n);
void sd_jn_arr_set(struct sd_jn_vm *vm, struct sd_jn_arr *a, size_t i, struct sd_jn_val v);
static inline struct sd_jn_val sd_jn_array(struct sd_jn_arr *a)
{
    struct sd_jn_val v;
    v.type = SD_JN_ARRAY;
    v.u.a = a;
    return v;
}
/* Laziness for natives (std.map, filter, makeArray, mapWithKey are lazy, as in Jsonnet): a
 * struct sd_jn_thunk * is an unforced value, either an array's element (sd_jn_arr_elem) or a
 * value wrapped by sd_jn_thunk_of. */
struct sd_jn_thunk *sd_jn_arr_elem(struct sd_jn_arr *a, size_t i);
struct sd_jn_thunk *sd_jn_thunk_of(struct sd_jn_vm *vm, const struct sd_jn_val *v);
/* Calls fn with unforced arguments (a closure forces only what it reads). Returns 0 or
 * SD_JN_ERR, as sd_jn_call. */
int sd_jn_call_lazy(struct sd_jn_vm *vm, const struct sd_jn_val *fn, size_t nargs,
                    struct sd_jn_thunk *const *args, struct sd_jn_val *out);
/* Sets element i of a to the lazy result of fn(args[0..nargs)): the call runs when the element
 * is first read, so an element nobody reads never fails. nargs ≤ SD_JN_NATIVE_MAX_PARAMS. */
void sd_jn_arr_set_call(struct sd_jn_vm *vm, struct sd_jn_arr *a, size_t i,
                        const struct sd_jn_val *fn, size_t nargs, struct sd_jn_thunk *const *args);
/* A new array of a's elements idx[0..n) (not forced). */
struct sd_jn_arr *sd_jn_arr_pick(struct sd_jn_vm *vm, struct sd_jn_arr *a, const size_t *idx,
                                 size_t n);
/* A new object of n visible fields set with sd_jn_obj_set (names must be distinct; every index
 * 0..n-1 must be set before the object is used). */
struct sd_jn_obj *sd_jn_obj_new(struct sd_jn_vm *vm, size_t n);
void sd_jn_obj_set(struct sd_jn_vm *vm, struct sd_jn_obj *o, size_t i, struct sd_jn_str *name,
                   struct sd_jn_val v);
/* sd_jn_obj_set with the lazy result of fn(args[0..nargs)) as the value. */
void sd_jn_obj_set_call(struct sd_jn_vm *vm, struct sd_jn_obj *o, size_t i, struct sd_jn_str *name,
                        const struct sd_jn_val *fn, size_t nargs, struct sd_jn_thunk *const *args);
/* Makes field i of o (set before) hidden (::). */
void sd_jn_obj_set_hidden(struct sd_jn_obj *o, size_t i);
/* The std library's native name as a function value (name must be in sd_jn_std_natives). */
struct sd_jn_val sd_jn_std_fn(struct sd_jn_vm *vm, const char *name);
static inline struct sd_jn_val sd_jn_object(struct sd_jn_obj *o)
{
    struct sd_jn_val v;
    v.type = SD_JN_OBJECT;
    v.u.o = o;
    return v;
}

/* --- reading ----------------------------------------------------------------------------- */

size_t sd_jn_arr_len(const struct sd_jn_arr *a);
/* Forces element i (< length) into *out. Returns 0 or SD_JN_ERR. */
int sd_jn_arr_get(struct sd_jn_vm *vm, struct sd_jn_arr *a, size_t i, struct sd_jn_val *out);
/* A new array: a's elements then b's (elements are shared, not forced). */
struct sd_jn_arr *sd_jn_arr_concat(struct sd_jn_vm *vm, struct sd_jn_arr *a, struct sd_jn_arr *b);
/* A new array of a's elements [from, to) (not forced). */
struct sd_jn_arr *sd_jn_arr_slice(struct sd_jn_vm *vm, struct sd_jn_arr *a, size_t from, size_t to);

/* The object's field names, sorted by code point, without duplicates: the visible ones, or all
 * (hidden too) when all is set. *names is an arena array. Runs the object's asserts first (as
 * field access does). Returns 0 or SD_JN_ERR. */
int sd_jn_obj_fields(struct sd_jn_vm *vm, struct sd_jn_obj *o, int all, struct sd_jn_str ***names,
                     size_t *n);
/* Returns 1 when o has the field (visible, or any when all is set), else 0. */
int sd_jn_obj_has(struct sd_jn_vm *vm, struct sd_jn_obj *o, const char *name, size_t len, int all);
/* Evaluates field name of o into *out (hidden fields too). *found is 0 when there is no such
 * field (then *out is untouched). Returns 0 or SD_JN_ERR. */
int sd_jn_obj_get(struct sd_jn_vm *vm, struct sd_jn_obj *o, const char *name, size_t len,
                  struct sd_jn_val *out, int *found);

/* Number of parameters of a function value (std.length of a function). */
size_t sd_jn_func_nparams(const struct sd_jn_func *f);
/* Calls function fn with nargs positional, already evaluated arguments. Returns 0 or SD_JN_ERR
 * (not a function, wrong arity, or the function's own error). */
int sd_jn_call(struct sd_jn_vm *vm, const struct sd_jn_val *fn, size_t nargs,
               const struct sd_jn_val *args, struct sd_jn_val *out);

/* Deep equality (==): *eq set to 0/1. Functions cannot be compared (error). */
int sd_jn_equal(struct sd_jn_vm *vm, const struct sd_jn_val *a, const struct sd_jn_val *b, int *eq);
/* Ordering (<): numbers, strings (by code point), arrays (lexicographic); other types or mixed
 * types are an error. *cmp is <0, 0 or >0. */
int sd_jn_compare(struct sd_jn_vm *vm, const struct sd_jn_val *a, const struct sd_jn_val *b,
                  int *cmp);

/* --- output ------------------------------------------------------------------------------ */

/* A JSON layout. Arrays print as open + (indent x depth+1) item (sep + indent...) close_pre +
 * (indent x depth) close; empty ones as empty_array / empty_object. */
struct sd_jn_style {
    const char *indent;       /* per level: "   ", or "" */
    const char *newline;      /* after '[' / '{' and before ']' / '}': "\n" or "" */
    const char *item_sep;     /* between items: ",\n", ", " or "," */
    const char *kv_sep;       /* between a key and its value: ": " or ":" */
    const char *empty_array;  /* "[ ]" or "[]" */
    const char *empty_object; /* "{ }" or "{}" */
};
extern const struct sd_jn_style sd_jn_style_pretty;  /* the jsonnet CLI's */
extern const struct sd_jn_style sd_jn_style_oneline; /* std.toString's: [1, 2], {"a": 1} */
extern const struct sd_jn_style sd_jn_style_compact; /* {"a":1} */

/* Appends v as JSON in the given style (forcing everything; hidden fields omitted; keys sorted).
 * A function anywhere in v is an error. Returns 0 or SD_JN_ERR. */
int sd_jn_manifest(struct sd_jn_vm *vm, const struct sd_jn_val *v, const struct sd_jn_style *st,
                   struct sd_buf *out);
/* Appends s as a quoted JSON string the way jsonnet escapes it: \" \\ \b \f \n \r \t, other
 * code points below 0x20 and 0x7f..0x9f as \u00xx, everything else as UTF-8. */
void sd_jn_escape_string(struct sd_buf *out, const char *s, size_t len);
/* Appends n in the shortest form that reads back as the same double ("0.1", "1e-07"), integers
 * without a fraction ("100000000000000000000"), as go-jsonnet prints numbers. */
void sd_jn_format_number(struct sd_buf *out, double n);
/* std.toString: a string as is, anything else in sd_jn_style_oneline. Returns 0 or SD_JN_ERR. */
int sd_jn_to_string(struct sd_jn_vm *vm, const struct sd_jn_val *v, struct sd_buf *out);

/* The % operator and std.format: formats fmt with vals (an array, an object for %(name)s, or a
 * single value), as Python's % does (sd_jn_format.c). Returns 0 or SD_JN_ERR. */
int sd_jn_format(struct sd_jn_vm *vm, const struct sd_jn_str *fmt, const struct sd_jn_val *vals,
                 struct sd_jn_val *out);

/* Parses JSON text (std.parseJson) into a value. Returns 0 or SD_JN_ERR. */
int sd_jn_parse_json(struct sd_jn_vm *vm, const char *p, size_t len, struct sd_jn_val *out);

#endif
