/* sd_form.h: application/x-www-form-urlencoded bodies as JSON text, so path lookups on form
 * bodies share the JSON code path (sd_json).
 *
 * Semantics (after the reference's url.ParseQuery): pairs are separated by '&' (empty pairs are
 * skipped, a ';' is an error); a pair without '=' has the empty value; keys and values are
 * percent-decoded with '+' as space (a bad escape is an error) and must be valid UTF-8; keys
 * must not contain NUL. Every value is a JSON string. A key is a name plus optional bracket
 * segments: "a[b][c]=1" sets {"a":{"b":{"c":"1"}}}; "a[]=1&a[]=2" appends: {"a":["1","2"]} ("[]"
 * only as the last segment); an all-digit segment indexes an array ("a[0]=x&a[1]=y", at most one
 * past the end; on an existing object it is a plain key). A later plain assignment replaces the
 * earlier value; walking through a value of the wrong type is an error ("a=1&a[b]=2"), as is a
 * malformed key ("a[b", "a[b]c") or one nesting deeper than 128 levels (the JSON limit). Objects
 * keep first-insertion order. */
#ifndef SD_FORM_H
#define SD_FORM_H

#include <stddef.h>

#include "core/sd_buf.h"

/* Appends the JSON text (a compact object; "{}" for an empty body) of the form body
 * body[0..len) to out. Returns 0, SD_EPARSE with a reason in err (errlen bytes, NUL-terminated)
 * or -ENOMEM; on error out is left as it was. Thread-safe; allocates a temporary tree. */
int sd_form_to_json(const char *body, size_t len, struct sd_buf *out, char *err, size_t errlen);

#endif
