/* sd_jsonnet.h: the public API of streamd's Jsonnet engine: compile a program once, evaluate it
 * many times (one VM per thread), and write the value as JSON.
 *
 * The engine implements the Jsonnet language without imports (lexer, parser with line:column
 * errors, lazy evaluator with objects, inheritance, comprehensions, asserts) and a native std
 * library (sd_jn_std.c). Hosts add global functions (the record functions of template columns,
 * sd_template.c) as a table of natives given at compile time; their per-evaluation data is the
 * opaque host pointer given to sd_jn_eval. Every evaluation is bounded: steps, call depth,
 * C stack, memory (values and every buffer built on the way, output included), output size and
 * wall-clock time (struct sd_jn_limits), so no input can crash the process, exhaust its memory
 * or run long. */
#ifndef SD_JSONNET_H
#define SD_JSONNET_H

#include <stddef.h>
#include <stdint.h>

#include "core/sd_buf.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sd_jn_program; /* a compiled program: immutable, shareable by threads */
struct sd_jn_vm;      /* an evaluation context: one thread at a time, reused across evaluations */
struct sd_jn_native;  /* sd_jn_value.h */

/* Bounds of one evaluation. 0 in a field means the default given. */
struct sd_jn_limits {
    uint64_t max_steps;   /* evaluation steps (default 10 000 000) */
    unsigned max_calls;   /* depth of nested function calls (default 500, as the jsonnet CLI) */
    size_t max_stack;     /* bytes of C stack the evaluator may use (default 1 MiB) */
    size_t max_memory;    /* bytes of memory: values, and every buffer natives and the output grow
                             (default 256 MiB) */
    size_t max_output;    /* bytes of output (default 64 MiB) */
    unsigned max_time_ms; /* wall-clock time of one evaluation (default 60 000) */
};

/* How sd_jn_eval writes the value. */
enum sd_jn_output {
    SD_JN_OUT_PRETTY,  /* as the jsonnet CLI: 3-space indent, "[ ]"/"{ }" when empty, final '\n' */
    SD_JN_OUT_COMPACT, /* compact JSON, as the reference's template columns: {"a":1,"b":[]} */
    SD_JN_OUT_RAW      /* compact, but a string result is written as its raw bytes (rawString) */
};

/* Compiles src[0..len) (name is used in messages, e.g. "template" or a file name). globals is
 * an array of nglobals host functions callable by name (may be NULL). On success *out is an owned
 * program (free with sd_jn_program_free). A syntax or static error (unknown variable, unknown std
 * function, duplicate field or parameter, ...) returns SD_EPARSE with a message like
 * "1:5: unexpected end of input, expected ')'" (line:column of the error, 1-based) in err.
 * Returns 0, SD_EPARSE or -ENOMEM. */
int sd_jn_compile(const char *src, size_t len, const char *name, const struct sd_jn_native *globals,
                  size_t nglobals, struct sd_jn_program **out, struct sd_buf *err);
void sd_jn_program_free(struct sd_jn_program *prog);

/* Creates a VM with the given limits (NULL = defaults). Free with sd_jn_vm_free. */
struct sd_jn_vm *sd_jn_vm_new(const struct sd_jn_limits *limits);
void sd_jn_vm_free(struct sd_jn_vm *vm);
/* Also ends every later evaluation on vm at the sd_mono_ms() time deadline_ms (0 = none), when
 * that comes before its own max_time_ms: one time budget for several evaluations. */
void sd_jn_vm_set_deadline(struct sd_jn_vm *vm, int64_t deadline_ms);
/* Also caps the steps of every later evaluation on vm together at budget, until the next call
 * (SD_JN_NO_STEP_BUDGET = no cap): a small budget lets a host try cheap evaluations where a long
 * one would hurt and move the others elsewhere. An evaluation that runs out of this budget
 * (rather than its own max_steps) fails with sd_jn_vm_budget_exhausted() returning 1. */
#define SD_JN_NO_STEP_BUDGET UINT64_MAX
void sd_jn_vm_set_step_budget(struct sd_jn_vm *vm, uint64_t budget);
int sd_jn_vm_budget_exhausted(const struct sd_jn_vm *vm);

/* Evaluates prog and appends its value to out in the given form. host is passed to the host
 * functions (sd_jn_host). On a runtime error (error expression, failed assert, type error, limit
 * exceeded, a host function's error, a function value as the result) returns SD_EINVAL with the
 * message alone in err (e.g. `field "x" does not exist`, `path "a.b" not found in the body`, as
 * the reference reports it); sd_jn_vm_error_pos then gives where it happened. A value larger
 * than the output limit returns SD_ELIMIT (with a message). out is restored to its previous
 * length on any error. Returns 0, SD_EINVAL, SD_ELIMIT or -ENOMEM. */
int sd_jn_eval(const struct sd_jn_program *prog, struct sd_jn_vm *vm, void *host,
               enum sd_jn_output form, struct sd_buf *out, struct sd_buf *err);
/* After a failed sd_jn_eval: the 1-based line and column of the innermost expression being
 * evaluated (0, 0 when unknown). */
void sd_jn_vm_error_pos(const struct sd_jn_vm *vm, unsigned *line, unsigned *col);

#ifdef __cplusplus
}
#endif

#endif
