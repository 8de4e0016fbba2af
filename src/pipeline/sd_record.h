/* sd_record.h: the record context, everything the columns of a table mapping may read about one
 * received record: receive time, client IP, headers, raw body, and the body parsed lazily (at most
 * once, shared by every sink's columns).
 *
 * A record is used by one thread at a time (parsing fills its private cache). The receiver owns
 * the headers and the body; the record only borrows them until sd_record_fini. */
#ifndef SD_RECORD_H
#define SD_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "core/sd_buf.h"

struct sd_json_doc;

/* One request header. name is canonical (see sd_header_canonicalize). */
struct sd_header {
    struct sd_str name;
    struct sd_str value;
};

struct sd_record {
    int64_t recv_time_ms;            /* server clock when the handler started */
    char ip[48];                     /* peer IP text, NUL-terminated */
    const struct sd_header *headers; /* borrowed, sorted by name (sd_record_sort_headers) */
    size_t nheaders;
    struct sd_str body;         /* raw body, borrowed; may be empty */
    struct sd_str content_type; /* raw Content-Type header value or empty */
    /* private: the body parsed at most once per record (sd_record_parse_body) */
    int body_state;  /* 0 not parsed, 1 parsed, 2 failed */
    int body_status; /* the HTTP status of the failure */
    struct sd_json_doc *doc;
    char body_error[160];
    struct sd_buf scratch; /* owned: the form body as JSON text (doc points into it) */
    /* private: the headers column's JSON, built at most once per record */
    int headers_state; /* 0 not built, 1 built */
    struct sd_buf headers_json;
};

/* Error result of parsing a body or mapping a record: an HTTP status, the reference's error name
 * and a message for the response. */
struct sd_map_error {
    int status;
    const char *name; /* "stream.in.badRequest", "stream.in.unsupportedMediaType",
                         "stream.in.payloadTooLarge", "stream.in.genericError" (static) */
    char message[256];
};

/* Zeroes rec and initializes its private parts. */
void sd_record_init(struct sd_record *rec);
/* Frees the parsed body and the scratch buffers (not the borrowed headers and body); rec can
 * then be initialized again. */
void sd_record_fini(struct sd_record *rec);

/* Writes the canonical form of the header name name[0..len) into out (len bytes; out may equal
 * name), as Go's CanonicalMIMEHeaderKey: the first letter and every letter after '-' upper-case,
 * the others lower-case ("content-type" -> "Content-Type"); a name with a byte that is not an
 * HTTP token character is copied unchanged. */
void sd_header_canonicalize(const char *name, size_t len, char *out);

/* Sorts headers by name (bytewise), keeping the order of headers with equal names. */
void sd_record_sort_headers(struct sd_header *headers, size_t n);

/* Returns 1 for application/json or application/<x>+json, case-insensitive, parameters
 * (";charset=utf-8") ignored. */
int sd_content_type_is_json(struct sd_str content_type);
/* Returns 1 when content_type starts with application/x-www-form-urlencoded (case-insensitive). */
int sd_content_type_is_form(struct sd_str content_type);

/* Parses the body once according to content_type: JSON, form (sd_form_to_json) or neither (415).
 * Returns 0 (rec->doc is then set) or the HTTP status to answer (400, 415) with *err filled, or
 * -ENOMEM. Idempotent: later calls return the cached result. */
int sd_record_parse_body(struct sd_record *rec, struct sd_map_error *err);

/* Returns the headers column's value: a compact JSON object of all headers, names as given
 * (canonical, sorted), values as JSON strings (equal names joined with ", ", bytes that are not
 * UTF-8 replaced by U+FFFD). Built once per record; the view is valid until sd_record_fini.
 * Returns 0 or -ENOMEM. */
int sd_record_headers_json(struct sd_record *rec, struct sd_str *out);

#endif
