/* sd_mapping.h: a table sink's column mapping, compiled once from the API's JSON and applied to
 * every record to produce one CSV row.
 *
 * Column values: uuid (v7 of the receive time), datetime (receive time, 2006-01-02T15:04:05.000Z),
 * ip, body (the raw bytes, which must be valid UTF-8 without NUL: otherwise 400, so a bad record
 * never fails a later table import), headers (sd_record_headers_json), path (sd_json lookup in
 * the parsed body; rawString writes a string value unquoted; when the path is missing the
 * defaultValue is written, as given with rawString, else as a JSON string), template (a Jsonnet
 * program with the record functions, sd_template.h: its value as compact JSON, or with
 * rawString a string value as its raw bytes). */
#ifndef SD_MAPPING_H
#define SD_MAPPING_H

#include <stddef.h>

#include <jansson.h>

#include "core/sd_buf.h"
#include "pipeline/sd_record.h"

enum sd_column_type {
    SD_COL_UUID,
    SD_COL_DATETIME,
    SD_COL_IP,
    SD_COL_BODY,
    SD_COL_HEADERS,
    SD_COL_PATH,
    SD_COL_TEMPLATE
};

struct sd_mapping;

/* Compiles the "columns" array of a sink's table mapping (borrowed), e.g.
 * [{"type":"uuid","name":"id"}, {"type":"path","name":"x","path":"a.b","defaultValue":"-",
 * "rawString":true}]; "primaryKey" (bool) is checked here and read by the table storage from the
 * same JSON (sd_table_schema_from_json), unknown members are ignored. On success
 * *out is an owned mapping (free with sd_mapping_destroy); it is immutable and may be shared by
 * threads. Validation errors return SD_EINVAL with a message for a 400 appended to err (e.g.
 * `"columns[2].path" is required`): not an array, not 1..100 columns, a missing, empty or
 * duplicate name, an unknown type, a missing or invalid path, members of the wrong type, a
 * template that is not {language: "jsonnet", content: 1..4096 characters} or does not compile
 * (`"columns[2].template" is invalid: 1:5: unexpected end of input, ...`, the line:column of the
 * error in the content). Returns 0, SD_EINVAL or -ENOMEM. */
int sd_mapping_compile(const json_t *columns, struct sd_mapping **out, struct sd_buf *err);
/* Frees a mapping (NULL is fine). */
void sd_mapping_destroy(struct sd_mapping *m);

size_t sd_mapping_ncolumns(const struct sd_mapping *m);
/* Returns column i's name (owned by m). */
const char *sd_mapping_column_name(const struct sd_mapping *m, size_t i);
enum sd_column_type sd_mapping_column_type(const struct sd_mapping *m, size_t i);
/* Returns 1 when a column reads the parsed body (path, or a template that mentions Body). */
int sd_mapping_needs_body(const struct sd_mapping *m);
/* Returns 1 when a column is a template: its rows may take long, so the data endpoint maps them
 * on the loop only under a small step budget, else on the evaluation pool (sd_eval_pool.h). */
int sd_mapping_has_template(const struct sd_mapping *m);

/* Appends one CSV row (sd_csv format, '\n'-terminated) for rec to out; out is not reset, and on
 * any error it is restored to its previous length. The body is parsed (once per record) only if
 * a column needs it. row_size_limit is the maximum size of the row in bytes, newline included
 * (0 = no limit). Returns 0, or an HTTP status with err filled: 400 stream.in.badRequest (body
 * not valid JSON/form, a NUL character or invalid UTF-8 in a value to be written), 413
 * stream.in.payloadTooLarge (row over the limit), 415 stream.in.unsupportedMediaType (a path
 * column and a content type that is neither JSON nor form), 500 stream.in.genericError (`path
 * "a.b" not found in the body` without a default; a template's runtime error as `column "x":
 * <message>`); or -ENOMEM. Uses rec from one thread; templates run on the calling thread's VM. */
int sd_mapping_write_row(const struct sd_mapping *m, struct sd_record *rec, size_t row_size_limit,
                         struct sd_buf *out, struct sd_map_error *err);

#endif
