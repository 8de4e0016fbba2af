/* sd_json.h: the C API of the JSON shim (sd_json.cpp): strict validation of request bodies
 * (simdjson DOM, with an own validator as the fallback for numbers simdjson cannot hold) and
 * path lookups that return values in a compact JSON encoding that keeps numbers' original text.
 *
 * Accepted documents are exactly the RFC 8259 JSON texts that are valid UTF-8, contain no lone
 * surrogate escapes and nest at most SD_JSON_MAX_DEPTH levels. Every function may be called from
 * any thread; each thread uses its own parser. */
#ifndef SD_JSON_H
#define SD_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "core/sd_buf.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Deepest accepted nesting of arrays and objects (128 nested '[' are fine, 129 are not). */
#define SD_JSON_MAX_DEPTH 128

struct sd_json_doc;

/* Validates buf[0..len) and returns a document for lookups in *out (owned; free with
 * sd_json_doc_free). The document BORROWS buf: the bytes must stay valid and unchanged until the
 * document is freed. Rejects invalid JSON, invalid UTF-8, lone surrogate escapes and nesting
 * deeper than SD_JSON_MAX_DEPTH with SD_EPARSE and a short reason in err (errlen bytes, always
 * NUL-terminated when errlen > 0). Accepts integers beyond 64 bits and 1e400. Returns 0,
 * SD_EPARSE or -ENOMEM. Never recurses on the input: deep documents cannot overflow the stack. */
int sd_json_parse(const char *buf, size_t len, struct sd_json_doc **out, char *err, size_t errlen);
/* Frees a document (NULL is fine). */
void sd_json_doc_free(struct sd_json_doc *doc);

/* Looks up a path (syntax `a.b[0].c`, `a[0][1]`, `[0]`; keys are the bytes between '.', '[' and
 * ']') in doc. Sets *found to 0 or 1. When found, appends to out: the decoded string (UTF-8, no
 * quotes) when raw_string is set and the value is a string; otherwise the value's compact JSON
 * encoding (numbers as their original text, keys in document order, strings with only '"', '\\'
 * and control characters escaped). Duplicate keys: the first one wins. Returns 0, SD_EINVAL when
 * the bytes to append would contain a NUL character (out is left as it was), SD_EPARSE for a
 * bad path, or -ENOMEM. */
int sd_json_path(const struct sd_json_doc *doc, const char *path, size_t path_len, int raw_string,
                 struct sd_buf *out, int *found);
/* Validates a path's syntax. Returns 0, SD_EPARSE or -ENOMEM. */
int sd_json_path_check(const char *path, size_t len);

/* A compiled path: the segments of a path parsed once (used by sd_mapping per column). */
struct sd_json_seg {
    const char *key; /* points into the compiled path's own copy; NULL for an array index */
    size_t key_len;
    size_t index;
};
struct sd_json_cpath {
    struct sd_json_seg *segs;
    size_t nsegs;
    char *text; /* owned copy of the path */
};

/* Compiles path into cp (owned memory; release with sd_json_cpath_fini). Returns 0, SD_EPARSE
 * (with a reason in err when err is not NULL) or -ENOMEM. */
int sd_json_cpath_compile(const char *path, size_t len, struct sd_json_cpath *cp, char *err,
                          size_t errlen);
/* Releases a compiled path (a zeroed one is fine). */
void sd_json_cpath_fini(struct sd_json_cpath *cp);
/* sd_json_path with a compiled path. Same results, SD_EPARSE excepted. */
int sd_json_cpath_lookup(const struct sd_json_doc *doc, const struct sd_json_cpath *cp,
                         int raw_string, struct sd_buf *out, int *found);

/* Events of sd_json_cpath_walk, in document order. p/len: the number's original text (NUMBER),
 * the decoded string (STRING, KEY: valid UTF-8, may contain NUL), else NULL/0. A KEY is followed
 * by the events of its member's value. */
enum sd_json_event {
    SD_JSON_EV_NULL,
    SD_JSON_EV_TRUE,
    SD_JSON_EV_FALSE,
    SD_JSON_EV_NUMBER,
    SD_JSON_EV_STRING,
    SD_JSON_EV_KEY,
    SD_JSON_EV_ARRAY_BEGIN,
    SD_JSON_EV_ARRAY_END,
    SD_JSON_EV_OBJECT_BEGIN,
    SD_JSON_EV_OBJECT_END
};
/* A visitor: returns 0 to go on, any other value to stop the walk (which then returns it). The
 * bytes at p are valid only during the call. */
typedef int (*sd_json_visit_fn)(void *ctx, enum sd_json_event ev, const char *p, size_t len);

/* Looks up cp in doc (cp NULL or without segments: the whole document) and, when found, walks
 * the value found with fn: one event per scalar, BEGIN/END around arrays and objects, KEY before
 * every member (duplicate keys are reported as they appear). Iterative: the depth is bounded
 * by SD_JSON_MAX_DEPTH, never by the C stack. Sets *found to 0 or 1. Returns 0, the visitor's
 * nonzero value, or -ENOMEM. */
int sd_json_cpath_walk(const struct sd_json_doc *doc, const struct sd_json_cpath *cp,
                       sd_json_visit_fn fn, void *ctx, int *found);

/* Appends the whole document in its compact encoding (as a non-raw path lookup would). Returns 0
 * or -ENOMEM. */
int sd_json_doc_compact(const struct sd_json_doc *doc, struct sd_buf *out);

/* Appends s[0..len) as a quoted JSON string: '"', '\\' and control characters escaped (\n \r \t
 * \b \f, others \u00XX), other bytes as is; bytes that are not valid UTF-8 become U+FFFD (as Go's
 * json.Marshal does). Returns 0 or -ENOMEM. */
int sd_json_write_string(struct sd_buf *out, const char *s, size_t len);

/* Returns 1 when s[0..len) is valid UTF-8 (no overlong forms, no surrogates), else 0. */
int sd_json_utf8_valid(const char *s, size_t len);

/* The fallback validator alone (no simdjson), with the same acceptance rules as sd_json_parse.
 * Exported for tests and fuzzing. Returns 0 or SD_EPARSE with a reason in err. */
int sd_json_validate_slow(const char *buf, size_t len, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
