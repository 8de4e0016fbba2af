/* sd_csv_reader.c: a pull parser of streamd's CSV (always-quoted fields, '"' doubled, ','
 * separator, '\n' row end, no header) over a byte source, with transparent gunzip of
 * multi-member gzip input.
 *
 * DESIGN: two layers. The decode layer (reader_fill) makes the next run of decoded CSV bytes
 * available in data[data_pos..data_len): for plain input that is the raw read buffer itself
 * (no copy); for gzip input it inflates the raw buffer into a second buffer with ISA-L's
 * isal_inflate (gzip wrapper only: header parsed, CRC-32 and length checked), resetting the
 * inflater after every member end so that concatenated members read as one stream. ISA-L rather
 * than zlib: an import inflates every staged byte, and zlib's inflate and CRC-32 were a sixth of
 * an import's CPU, and ISA-L takes a third of their time (docs/BENCHMARKS.md, issue 14). The parse
 * layer is a three-state machine (at a field start, inside a quoted field, just after a quote) that
 * copies unquoted field bytes into one row buffer, using memchr to skip to the next quote, and
 * records where each field starts; the views handed out are built from those offsets when the row
 * ends, because the row buffer may move while it grows. The reader is strict: it accepts exactly
 * what pipeline/sd_csv writes and reports anything else as SD_ECORRUPT with the row number and the
 * byte offset. Errors are sticky. One thread at a time; no locks, no globals. */
#include "tables/sd_csv_reader.h"

#include "core/sd_error.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l/igzip_lib.h>

/* Size of the raw and the decoded buffer. */
#define READER_BUF_SIZE (64 * 1024)

enum reader_mode { MODE_DETECT, MODE_PLAIN, MODE_GZIP };

enum reader_state {
    ST_FIELD_START, /* expects the opening quote of a field */
    ST_IN_FIELD,    /* inside a quoted field */
    ST_QUOTE        /* just after a quote inside a field: '"', ',' or '\n' follows */
};

struct sd_csv_reader {
    sd_byte_source_fn src;
    void *arg;
    enum reader_mode mode;
    int src_eof; /* the source returned 0; it is not called again */
    int at_end;  /* next() returned 0 */
    int rc;      /* sticky error, 0 if none */
    char err[256];

    unsigned char *raw; /* bytes read from the source */
    unsigned char *dec; /* inflated bytes (gzip mode) */

    /* decoded bytes not yet parsed: data[data_pos..data_len); data_base is the decoded offset
     * of data[0] */
    const unsigned char *data;
    size_t data_len;
    size_t data_pos;
    uint64_t data_base;

    /* gzip mode */
    struct inflate_state *zs; /* NULL until a gzip magic is seen */
    int member_done;          /* the last inflate ended a member */
    int gz_pending;           /* the last inflate filled the output: it may hold more output */
    uint64_t raw_total;       /* compressed bytes read from the source */

    /* the current row */
    struct sd_buf row;   /* unquoted bytes of every field, back to back */
    size_t *starts;      /* starts[i] = offset of field i in row */
    struct sd_str *view; /* the views handed out */
    size_t nfields;
    size_t fcap;
    uint64_t rows;
};

static int reader_fail(struct sd_csv_reader *r, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int reader_fail(struct sd_csv_reader *r, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->err, sizeof(r->err), fmt, ap);
    va_end(ap);
    r->rc = rc;
    return rc;
}

/* Fails with SD_ECORRUPT naming the row and the decoded offset of data[data_pos]. */
static int reader_corrupt(struct sd_csv_reader *r, const char *what)
{
    return reader_fail(r, SD_ECORRUPT, "row %" PRIu64 ", offset %" PRIu64 ": %s", r->rows + 1,
                       r->data_base + r->data_pos, what);
}

/* Reads from the source into buf, retrying EINTR. Returns > 0, 0 at the end, or < 0. */
static ssize_t reader_read(struct sd_csv_reader *r, unsigned char *buf, size_t len)
{
    ssize_t n;
    int rc;

    if (r->src_eof) {
        return 0;
    }
    do {
        n = r->src(r->arg, buf, len);
    } while (n == -EINTR);
    if (n < 0) {
        rc = n < INT_MIN ? -EIO : (int)n;
        return reader_fail(r, rc, "reading the source: %s", sd_strerror(rc));
    }
    if ((size_t)n > len) {
        return reader_fail(r, SD_EINVAL, "the source returned %zd bytes for a %zu-byte read", n,
                           len);
    }
    if (n == 0) {
        r->src_eof = 1;
    }
    r->raw_total += (uint64_t)n;
    return n;
}

/* The compressed offset the inflater has reached (bytes it holds in its bit buffer count as
 * read), for messages. */
static uint64_t reader_gz_offset(const struct sd_csv_reader *r)
{
    return r->raw_total - r->zs->avail_in;
}

/* Readies the inflater for a gzip member. */
static void reader_gz_start(struct sd_csv_reader *r)
{
    isal_inflate_reset(r->zs);
    r->zs->crc_flag = ISAL_GZIP;
}

/* What an isal_inflate error means. */
static const char *reader_gz_error(int zrc)
{
    switch (zrc) {
    case ISAL_INVALID_WRAPPER:
        return "invalid member header";
    case ISAL_UNSUPPORTED_METHOD:
        return "unsupported compression method";
    case ISAL_INCORRECT_CHECKSUM:
        return "checksum mismatch";
    case ISAL_INVALID_LOOKBACK:
        return "invalid distance";
    case ISAL_INVALID_SYMBOL:
        return "invalid code";
    default:
        return "invalid block";
    }
}

/* Reads the first bytes and picks plain or gzip. Returns 0 or < 0. */
static int reader_detect(struct sd_csv_reader *r)
{
    size_t have = 0;
    ssize_t n;

    while (have < 2) {
        n = reader_read(r, r->raw + have, READER_BUF_SIZE - have);
        if (n < 0) {
            return (int)n;
        }
        if (n == 0) {
            break;
        }
        have += (size_t)n;
    }
    if (have >= 2 && r->raw[0] == 0x1f && r->raw[1] == 0x8b) {
        r->zs = malloc(sizeof(*r->zs));
        if (r->zs == NULL) {
            return reader_fail(r, -ENOMEM, "out of memory");
        }
        isal_inflate_init(r->zs);
        reader_gz_start(r);
        r->zs->next_in = r->raw;
        r->zs->avail_in = (uint32_t)have;
        r->mode = MODE_GZIP;
        return 0;
    }
    r->mode = MODE_PLAIN;
    r->data = r->raw;
    r->data_len = have;
    r->data_pos = 0;
    return 0;
}

/* Inflates the next run of decoded bytes. Returns 1, 0 at the clean end, or < 0. */
static int reader_fill_gzip(struct sd_csv_reader *r)
{
    struct inflate_state *zs = r->zs;
    ssize_t n;
    size_t produced;
    uint32_t in_before;
    int zrc;

    for (;;) {
        if (zs->avail_in == 0 && !r->gz_pending) {
            if (r->src_eof) {
                if (r->member_done) {
                    return 0;
                }
                return reader_fail(r, SD_ECORRUPT,
                                   "gzip: truncated member at compressed offset %" PRIu64,
                                   r->raw_total);
            }
            n = reader_read(r, r->raw, READER_BUF_SIZE);
            if (n < 0) {
                return (int)n;
            }
            if (n == 0) {
                continue;
            }
            zs->next_in = r->raw;
            zs->avail_in = (uint32_t)n;
        }
        if (r->member_done) {
            /* more bytes after a member's end: they must be the next member */
            reader_gz_start(r);
            r->member_done = 0;
        }
        in_before = zs->avail_in;
        zs->next_out = r->dec;
        zs->avail_out = READER_BUF_SIZE;
        zrc = isal_inflate(zs);
        produced = READER_BUF_SIZE - zs->avail_out;
        if (zrc != ISAL_DECOMP_OK) {
            return reader_fail(r, SD_ECORRUPT, "gzip: %s at compressed offset %" PRIu64,
                               reader_gz_error(zrc), reader_gz_offset(r));
        }
        /* a full output may leave more output inside the inflater; a finished member none */
        r->member_done = zs->block_state == ISAL_BLOCK_FINISH;
        r->gz_pending = zs->avail_out == 0 && !r->member_done;
        if (produced == 0 && in_before > 0 && zs->avail_in == in_before && !r->member_done) {
            /* input left and room for output, yet nothing moved: never loop on it */
            return reader_fail(r, SD_ECORRUPT, "gzip: no progress at compressed offset %" PRIu64,
                               reader_gz_offset(r));
        }
        if (produced > 0) {
            r->data = r->dec;
            r->data_len = produced;
            r->data_pos = 0;
            return 1;
        }
    }
}

/* Makes the next decoded bytes available in data[data_pos..data_len). Returns 1, 0 at the
 * end of the input, or < 0 (message set). */
static int reader_fill(struct sd_csv_reader *r)
{
    ssize_t n;
    int rc;

    r->data_base += r->data_len;
    r->data_len = 0;
    r->data_pos = 0;
    if (r->mode == MODE_DETECT) {
        rc = reader_detect(r);
        if (rc < 0) {
            return rc;
        }
        if (r->mode == MODE_PLAIN && r->data_len > 0) {
            return 1;
        }
    }
    if (r->mode == MODE_GZIP) {
        return reader_fill_gzip(r);
    }
    n = reader_read(r, r->raw, READER_BUF_SIZE);
    if (n <= 0) {
        return (int)n;
    }
    r->data = r->raw;
    r->data_len = (size_t)n;
    return 1;
}

/* Starts a new field at the current end of the row. */
static int reader_add_field(struct sd_csv_reader *r)
{
    size_t cap;
    size_t *starts;
    struct sd_str *view;

    if (r->nfields == SD_CSV_READER_MAX_FIELDS) {
        return reader_corrupt(r, "too many fields");
    }
    if (r->nfields == r->fcap) {
        cap = r->fcap * 2;
        starts = realloc(r->starts, cap * sizeof(*starts));
        if (starts == NULL) {
            return reader_fail(r, -ENOMEM, "out of memory");
        }
        r->starts = starts;
        view = realloc(r->view, cap * sizeof(*view));
        if (view == NULL) {
            return reader_fail(r, -ENOMEM, "out of memory");
        }
        r->view = view;
        r->fcap = cap;
    }
    r->starts[r->nfields++] = r->row.len;
    return 0;
}

static int reader_append(struct sd_csv_reader *r, const unsigned char *p, size_t len)
{
    if (len > SD_CSV_READER_MAX_ROW - r->row.len) {
        return reader_corrupt(r, "row too long");
    }
    if (sd_buf_append(&r->row, p, len) != 0) {
        return reader_fail(r, -ENOMEM, "out of memory");
    }
    return 0;
}

int sd_csv_reader_open(sd_byte_source_fn src, void *arg, struct sd_csv_reader **out)
{
    struct sd_csv_reader *r;

    *out = NULL;
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return -ENOMEM;
    }
    r->src = src;
    r->arg = arg;
    r->mode = MODE_DETECT;
    r->fcap = 16;
    r->raw = malloc(READER_BUF_SIZE);
    r->dec = malloc(READER_BUF_SIZE);
    r->starts = malloc(r->fcap * sizeof(*r->starts));
    r->view = malloc(r->fcap * sizeof(*r->view));
    sd_buf_init(&r->row);
    if (r->raw == NULL || r->dec == NULL || r->starts == NULL || r->view == NULL ||
        sd_buf_reserve(&r->row, 256) != 0) {
        sd_csv_reader_close(r);
        return -ENOMEM;
    }
    *out = r;
    return 0;
}

int sd_csv_reader_next(struct sd_csv_reader *r, const struct sd_str **fields, size_t *nfields)
{
    enum reader_state state = ST_FIELD_START;
    const unsigned char *p;
    const unsigned char *q;
    size_t avail;
    int rc;

    *fields = NULL;
    *nfields = 0;
    if (r->rc != 0) {
        return r->rc;
    }
    if (r->at_end) {
        return 0;
    }
    sd_buf_reset(&r->row);
    r->nfields = 0;
    for (;;) {
        if (r->data_pos == r->data_len) {
            rc = reader_fill(r);
            if (rc < 0) {
                return rc;
            }
            if (rc == 0) {
                if (state == ST_FIELD_START && r->nfields == 0) {
                    r->at_end = 1;
                    return 0;
                }
                return reader_corrupt(r, state == ST_IN_FIELD ? "unterminated quoted field"
                                                              : "row without final newline");
            }
        }
        p = r->data + r->data_pos;
        avail = r->data_len - r->data_pos;
        switch (state) {
        case ST_FIELD_START:
            if (*p != '"') {
                return reader_corrupt(r, *p == '\n' && r->nfields == 0 ? "empty line"
                                                                       : "unquoted field");
            }
            rc = reader_add_field(r);
            if (rc != 0) {
                return rc;
            }
            r->data_pos++;
            state = ST_IN_FIELD;
            break;
        case ST_IN_FIELD:
            q = memchr(p, '"', avail);
            rc = reader_append(r, p, q != NULL ? (size_t)(q - p) : avail);
            if (rc != 0) {
                return rc;
            }
            if (q != NULL) {
                r->data_pos += (size_t)(q - p) + 1;
                state = ST_QUOTE;
            } else {
                r->data_pos += avail;
            }
            break;
        case ST_QUOTE:
            if (*p == '"') {
                rc = reader_append(r, p, 1);
                if (rc != 0) {
                    return rc;
                }
                state = ST_IN_FIELD;
            } else if (*p == ',') {
                state = ST_FIELD_START;
            } else if (*p == '\n') {
                r->data_pos++;
                for (size_t i = 0; i < r->nfields; i++) {
                    size_t end = i + 1 < r->nfields ? r->starts[i + 1] : r->row.len;
                    r->view[i].p = r->row.data + r->starts[i];
                    r->view[i].len = end - r->starts[i];
                }
                r->rows++;
                *fields = r->view;
                *nfields = r->nfields;
                return 1;
            } else {
                return reader_corrupt(r, "unexpected byte after closing quote");
            }
            r->data_pos++;
            break;
        }
    }
}

const char *sd_csv_reader_error(const struct sd_csv_reader *r)
{
    return r->err;
}

uint64_t sd_csv_reader_rows(const struct sd_csv_reader *r)
{
    return r->rows;
}

uint64_t sd_csv_reader_offset(const struct sd_csv_reader *r)
{
    return r->data_base + r->data_pos;
}

void sd_csv_reader_close(struct sd_csv_reader *r)
{
    if (r == NULL) {
        return;
    }
    free(r->zs);
    sd_buf_fini(&r->row);
    free(r->raw);
    free(r->dec);
    free(r->starts);
    free(r->view);
    free(r);
}
