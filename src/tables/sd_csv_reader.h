/* sd_csv_reader.h: an incremental reader of streamd's own CSV (pipeline/sd_csv.h writes it),
 * plain or gzip, pulled from a byte source.
 *
 * Accepted format, strictly: every field is enclosed in '"', a '"' inside a field is doubled,
 * fields are separated by ',', every row (the last one too) ends with '\n', no header row, no
 * other escaping ('\r' and '\n' inside quotes are field bytes). Anything else is SD_ECORRUPT:
 * an unquoted or empty field, an empty line, a byte other than '"', ',' or '\n' after a closing
 * quote, a row without its final '\n', a row longer than SD_CSV_READER_MAX_ROW bytes or with
 * more than SD_CSV_READER_MAX_FIELDS fields.
 *
 * When the first two bytes of the source are the gzip magic (1f 8b), the source is read as a
 * concatenation of gzip members (a slice file, or several of them), each inflated in turn; a
 * truncated or damaged member, or trailing bytes that are not a member, is SD_ECORRUPT. Other
 * input is read as plain CSV. Empty input has no rows.
 *
 * One reader is used by one thread at a time. It keeps one row in memory (plus two 64 KiB
 * buffers), so a reader's memory is bounded by SD_CSV_READER_MAX_ROW whatever the input. */
#ifndef SD_CSV_READER_H
#define SD_CSV_READER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/sd_buf.h"

/* Reads up to len bytes into buf. Returns the count (> 0), 0 at the end of the data, or -errno
 * (-EINTR is retried by the reader; any other error is returned by sd_csv_reader_next as is).
 * Called only from sd_csv_reader_next, on the caller's thread. */
typedef ssize_t (*sd_byte_source_fn)(void *arg, void *buf, size_t len);

/* Longest row accepted, in decoded (unquoted) bytes of all its fields: 64 MiB, far above the
 * reference's largest encoded row (2 MB, encoder.rowSizeLimit), so that a damaged file (a
 * missing closing quote) cannot make the reader buffer the whole file. */
#define SD_CSV_READER_MAX_ROW (64u << 20)
/* Most fields accepted in one row (SQLite allows at most 32767 columns, Keboola far fewer). */
#define SD_CSV_READER_MAX_FIELDS 65536u

struct sd_csv_reader;

/* Creates a reader over src/arg (both borrowed until sd_csv_reader_close; nothing is read
 * yet). Returns 0 with *out owned by the caller (free with sd_csv_reader_close), or -ENOMEM. */
int sd_csv_reader_open(sd_byte_source_fn src, void *arg, struct sd_csv_reader **out);

/* Reads the next row. Returns 1 with *fields pointing to an array of *nfields (>= 1) views of
 * the unquoted field values (any bytes, NUL included; an empty field has len 0 and a non-NULL
 * p). The array and the bytes are owned by the reader and valid until the next call or close.
 * Returns 0 at the end of the input (and again on later calls); SD_ECORRUPT for malformed CSV
 * or gzip, with sd_csv_reader_error() naming the byte offset; -ENOMEM; or the source's -errno.
 * An error is final: later calls return it again. */
int sd_csv_reader_next(struct sd_csv_reader *r, const struct sd_str **fields, size_t *nfields);

/* Describes the last error of r ("" when none): for CSV errors the row number and the byte
 * offset in the decoded CSV, e.g. "row 3, offset 118: unquoted field"; for gzip errors the
 * byte offset in the compressed input. The string is owned by r. */
const char *sd_csv_reader_error(const struct sd_csv_reader *r);

/* Rows returned so far, and decoded CSV bytes consumed so far (for progress and messages). */
uint64_t sd_csv_reader_rows(const struct sd_csv_reader *r);
uint64_t sd_csv_reader_offset(const struct sd_csv_reader *r);

/* Frees r and its buffers (the source is not touched). NULL is fine. */
void sd_csv_reader_close(struct sd_csv_reader *r);

#endif
