/* sd_csv.h: the CSV row writer, the only module that knows quoting.
 *
 * The format is the reference's (fastcsv): every field is enclosed in '"', a '"' inside is
 * doubled, nothing else is escaped (newlines stay inside the quotes), fields are separated by
 * ',', rows end with '\n', and there is no header row. */
#ifndef SD_CSV_H
#define SD_CSV_H

#include <stddef.h>

#include "core/sd_buf.h"

/* Appends one quoted field with the bytes value[0..len) (as is, '"' doubled), preceded by ','
 * unless first is set. Returns 0 or -ENOMEM (row is then unchanged). */
int sd_csv_field(struct sd_buf *row, const char *value, size_t len, int first);

/* Turns the bytes row->data[start..row->len), which the caller appended raw, into one quoted
 * field in place (preceded by ',' unless first), so a value can be produced straight into the
 * row without a copy. Returns 0 or -ENOMEM (row is then unchanged). */
int sd_csv_field_tail(struct sd_buf *row, size_t start, int first);

/* Ends the row ('\n'). Returns 0 or -ENOMEM. */
int sd_csv_end_row(struct sd_buf *row);

#endif
