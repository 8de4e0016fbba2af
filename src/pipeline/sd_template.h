/* sd_template.h: template columns: Jsonnet programs compiled once per column and evaluated per
 * record with the reference's record functions (spec/reference.md §3.2):
 *
 *   Ip()                        the client IP
 *   Now([format])               the receive time in UTC; default "%Y-%m-%dT%H:%M:%S.%fZ"
 *                               (strftime directives as the reference's lestrrat strftime, plus
 *                               %f = milliseconds, three digits)
 *   HeaderStr()                 "Name: value\n" per header name, lines sorted
 *   Header([header[, default]]) no name or '': an object of all headers (canonical names, equal
 *                               names joined with ", " as the headers column); else the value of
 *                               the canonicalized name, the default, or the error
 *                               `header "X-Name" not found`
 *   BodyStr()                   the raw body
 *   Body([path[, default]])     no path or '': the parsed body; else the value at the path (path
 *                               column syntax, a.b[1].c), the default, or the error
 *                               `path "a.b" not found in the body`; a body that cannot be parsed
 *                               fails the evaluation with the status and message path columns give
 *                               (400 invalid JSON or form, 415 unsupported content type)
 *
 * The body is parsed once per record (sd_record_parse_body, shared with path columns); Body()
 * converts only the subtree it returns into Jsonnet values.
 *
 * Limits of one evaluation (the VM of each thread is created with them):
 *   SD_TEMPLATE_MAX_STEPS   1 000 000 evaluation steps
 *   SD_TEMPLATE_MAX_CALLS   500 nested calls (the reference: "max stack frames exceeded.")
 *   SD_TEMPLATE_MAX_STACK   1 MiB of C stack
 *   SD_TEMPLATE_MAX_MEMORY  64 MiB of evaluation memory (values and every string built on the
 *                           way, manifests included)
 *   SD_TEMPLATE_MAX_TIME_MS 500 ms of wall-clock time (natives included); all the columns of
 *                           a record together get SD_TEMPLATE_MAX_JOB_MS on the template
 *                           workers, so a record fails within a second whatever its templates do
 *   SD_TEMPLATE_MAX_OUTPUT  2 MiB of output, the largest row size limit
 *                           (storage.level.local.encoding.encoder.rowSizeLimit); the mapping
 *                           checks the row's own limit after the evaluation.
 *
 * Threads: a compiled template is immutable and shared by threads. Each thread that evaluates
 * gets its own VM (created on first use, kept in a pthread key and freed when the thread exits;
 * sd_template_thread_cleanup frees it earlier, e.g. on the main thread before exit). */
#ifndef SD_TEMPLATE_H
#define SD_TEMPLATE_H

#include <stddef.h>

#include "core/sd_buf.h"
#include "jsonnet/sd_jn_value.h"
#include "pipeline/sd_record.h"

#define SD_TEMPLATE_MAX_STEPS 1000000u
#define SD_TEMPLATE_MAX_CALLS 500u
#define SD_TEMPLATE_MAX_STACK (1024u * 1024u)
#define SD_TEMPLATE_MAX_MEMORY (64u * 1024u * 1024u)
#define SD_TEMPLATE_MAX_OUTPUT (2u * 1024u * 1024u)
#define SD_TEMPLATE_MAX_TIME_MS 500u
/* Wall-clock time of all the evaluations of one job of the template workers (a record's columns
 * for every sink, or a test request), pipeline/sd_eval_pool.h. */
#define SD_TEMPLATE_MAX_JOB_MS 1000
/* Longest template content the API accepts (reference: 1-4096 characters). */
#define SD_TEMPLATE_MAX_CONTENT 4096

struct sd_template;

/* The record functions as host natives for sd_jn_compile (their host pointer is the
 * struct sd_record * given to sd_jn_eval). */
extern const struct sd_jn_native sd_template_natives[];
extern const size_t sd_template_nnatives;

/* Compiles the Jsonnet program src[0..len) with the record functions. On success *out is owned
 * (free with sd_template_destroy). A syntax or static error returns SD_EPARSE with the engine's
 * "line:column: message" appended to err. Returns 0, SD_EPARSE or -ENOMEM. */
int sd_template_compile(const char *src, size_t len, struct sd_template **out, struct sd_buf *err);
/* Frees a template (NULL is fine). */
void sd_template_destroy(struct sd_template *t);
/* Returns 1 when the template may call Body() (the identifier appears in its source). */
int sd_template_uses_body(const struct sd_template *t);

/* Evaluates t for rec on the calling thread's VM and appends the value to out: compact JSON, or
 * with raw_string a string result as its raw bytes (SD_JN_OUT_RAW). Returns 0; an HTTP status
 * with err filled: 400 or 415 when Body() met a body that cannot be parsed (the message is the
 * body's parse error, as path columns report it), 413 when the value alone exceeds
 * SD_TEMPLATE_MAX_OUTPUT, 500 stream.in.genericError for any other
 * error (err->message is the engine's message alone, e.g. `path "a.b" not found in the body`);
 * or -ENOMEM. out is restored on any error. */
int sd_template_eval(const struct sd_template *t, struct sd_record *rec, int raw_string,
                     struct sd_buf *out, struct sd_map_error *err);
/* After a failed sd_template_eval on this thread: where the error happened in the template
 * (1-based line and column; 0, 0 when unknown). */
void sd_template_error_pos(unsigned *line, unsigned *col);

/* Ends the calling thread's later evaluations at the sd_mono_ms() time deadline_ms (0 = none)
 * when it comes before SD_TEMPLATE_MAX_TIME_MS: one budget for all the columns of a record. */
void sd_template_set_deadline(int64_t deadline_ms);
/* Caps the steps of the calling thread's later evaluations together at budget
 * (SD_JN_NO_STEP_BUDGET = no cap): a cheap attempt where a long evaluation must not run. After a
 * failed sd_template_eval, sd_template_budget_exhausted() returns 1 when it ran out of this
 * budget (its result says nothing about the template then), 0 for a real failure. */
void sd_template_set_step_budget(uint64_t budget);
int sd_template_budget_exhausted(void);

/* Frees the calling thread's VM and caches now (they are recreated on the next evaluation). */
void sd_template_thread_cleanup(void);

#endif
