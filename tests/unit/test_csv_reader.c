/* test_csv_reader.c: unit tests of tables/sd_csv_reader: round trips through the real CSV
 * writer (commas, quotes, CR, LF, unicode, empty fields, NUL bytes, a 1 MB field), plain and
 * multi-member gzip (zlib members and the slice writer's ISA-L members with sync flushes and
 * completed members), sources that return one byte at a time, and every kind of malformed or
 * truncated input (SD_ECORRUPT with the offset), source errors and the size limits.
 *
 * DESIGN: single-threaded cmocka runner; inputs are built in memory and served by a source
 * with a configurable chunk size, so the same data is read through many buffer boundaries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "pipeline/sd_csv.h"
#include "pipeline/sd_gzip.h"
#include "tables/sd_csv_reader.h"

/* ---- helpers ---------------------------------------------------------------------------- */

struct mem_src {
    const char *data;
    size_t len;
    size_t pos;
    size_t chunk;   /* max bytes per read, 0 = no limit */
    size_t fail_at; /* fail once pos reaches this (0 = never) */
    int fail_rc;
    int eintr;     /* return -EINTR before every real read */
    int after_end; /* reads after the source returned 0 */
    int ended;
};

static ssize_t mem_read(void *arg, void *buf, size_t len)
{
    struct mem_src *s = arg;
    size_t n = s->len - s->pos;

    if (s->ended) {
        s->after_end++;
    }
    if (s->eintr) {
        s->eintr = 0;
        return -EINTR;
    }
    if (s->fail_at > 0 && s->pos >= s->fail_at) {
        return s->fail_rc;
    }
    if (n > len) {
        n = len;
    }
    if (s->chunk > 0 && n > s->chunk) {
        n = s->chunk;
    }
    if (n > 0) {
        memcpy(buf, s->data + s->pos, n);
    }
    s->pos += n;
    if (n == 0) {
        s->ended = 1;
    }
    return (ssize_t)n;
}

static struct mem_src mem_of(const void *data, size_t len, size_t chunk)
{
    struct mem_src s;

    memset(&s, 0, sizeof(s));
    s.data = data;
    s.len = len;
    s.chunk = chunk;
    return s;
}

/* A table of expected rows: values with explicit lengths. */
struct exp_val {
    const char *p;
    size_t len;
};

struct exp_rows {
    size_t nrows;
    const size_t *nfields;             /* per row */
    const struct exp_val *const *rows; /* rows[i][j] */
};

static void encode(const struct exp_rows *e, struct sd_buf *out)
{
    for (size_t i = 0; i < e->nrows; i++) {
        for (size_t j = 0; j < e->nfields[i]; j++) {
            assert_int_equal(sd_csv_field(out, e->rows[i][j].p, e->rows[i][j].len, j == 0), 0);
        }
        assert_int_equal(sd_csv_end_row(out), 0);
    }
}

static void gzip_member(const void *data, size_t len, int level, struct sd_buf *out)
{
    z_stream zs;
    unsigned char chunk[16384];
    int zrc;

    memset(&zs, 0, sizeof(zs));
    assert_int_equal(deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
                     Z_OK);
    zs.next_in = (unsigned char *)(uintptr_t)data;
    zs.avail_in = (uInt)len;
    do {
        zs.next_out = chunk;
        zs.avail_out = sizeof(chunk);
        zrc = deflate(&zs, Z_FINISH);
        assert_true(zrc == Z_OK || zrc == Z_STREAM_END || zrc == Z_BUF_ERROR);
        assert_int_equal(sd_buf_append(out, chunk, sizeof(chunk) - zs.avail_out), 0);
    } while (zrc != Z_STREAM_END);
    deflateEnd(&zs);
}

/* Gzip of data in members of member_size input bytes (cutting anywhere). */
static void gzip_members(const void *data, size_t len, size_t member_size, struct sd_buf *out)
{
    const char *p = data;

    while (len > 0) {
        size_t n = len < member_size ? len : member_size;
        gzip_member(p, n, 6, out);
        p += n;
        len -= n;
    }
}

/* Reads every row and compares with e; then expects the end (twice). */
static void expect_rows(struct mem_src *src, const struct exp_rows *e)
{
    struct sd_csv_reader *r = NULL;
    const struct sd_str *f;
    size_t nf;

    assert_int_equal(sd_csv_reader_open(mem_read, src, &r), 0);
    for (size_t i = 0; i < e->nrows; i++) {
        int rc = sd_csv_reader_next(r, &f, &nf);
        if (rc != 1) {
            fail_msg("row %zu: rc %d (%s)", i, rc, sd_csv_reader_error(r));
        }
        assert_int_equal(nf, e->nfields[i]);
        for (size_t j = 0; j < nf; j++) {
            assert_non_null(f[j].p);
            assert_int_equal(f[j].len, e->rows[i][j].len);
            if (f[j].len > 0) {
                assert_memory_equal(f[j].p, e->rows[i][j].p, f[j].len);
            }
        }
    }
    assert_int_equal(sd_csv_reader_next(r, &f, &nf), 0);
    assert_int_equal(nf, 0);
    assert_int_equal(sd_csv_reader_next(r, &f, &nf), 0);
    assert_int_equal(sd_csv_reader_rows(r), e->nrows);
    assert_string_equal(sd_csv_reader_error(r), "");
    assert_int_equal(src->after_end, 0);
    sd_csv_reader_close(r);
}

/* Reads until an error and returns it (and copies the message into msg). */
static int read_to_error(struct mem_src *src, char *msg, size_t msglen, uint64_t *rows)
{
    struct sd_csv_reader *r = NULL;
    const struct sd_str *f;
    size_t nf;
    int rc;

    assert_int_equal(sd_csv_reader_open(mem_read, src, &r), 0);
    while ((rc = sd_csv_reader_next(r, &f, &nf)) == 1) {
    }
    snprintf(msg, msglen, "%s", sd_csv_reader_error(r));
    if (rows != NULL) {
        *rows = sd_csv_reader_rows(r);
    }
    /* errors are sticky */
    assert_int_equal(sd_csv_reader_next(r, &f, &nf), rc);
    sd_csv_reader_close(r);
    return rc;
}

#define V(s)                                                                                       \
    {                                                                                              \
        (s), sizeof(s) - 1                                                                         \
    }

static const struct exp_val row0[] = {V("plain"), V("with,comma"), V("say \"hi\""), V("")};
static const struct exp_val row1[] = {V("line\nbreak"), V("cr\r\nlf"), V("\r"), V("\"")};
static const struct exp_val row2[] = {
    V("\xc5\xbe\xc3\xa1 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80")};
static const struct exp_val row3[] = {V(""), V(""), V("")};
static const struct exp_val row4[] = {V("nul\0inside"), V("\"\"\"\""), V(",,,"), V("\n\n")};
static const struct exp_val *const sample_rows[] = {row0, row1, row2, row3, row4};
static const size_t sample_nf[] = {4, 4, 1, 3, 4};
static const struct exp_rows sample = {5, sample_nf, sample_rows};

/* ---- tests ------------------------------------------------------------------------------ */

static void test_plain_rows(void **state)
{
    struct sd_buf csv = SD_BUF_INIT;
    struct mem_src src;
    static const size_t chunks[] = {0, 1, 2, 3, 7, 64};

    (void)state;
    encode(&sample, &csv);
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        src = mem_of(csv.data, csv.len, chunks[i]);
        expect_rows(&src, &sample);
    }
    /* the exact bytes of a literal input */
    {
        static const char lit[] = "\"a\",\"b\"\"c\",\"\"\n\"\"\n";
        static const struct exp_val l0[] = {V("a"), V("b\"c"), V("")};
        static const struct exp_val l1[] = {V("")};
        static const struct exp_val *const lr[] = {l0, l1};
        static const size_t lnf[] = {3, 1};
        static const struct exp_rows le = {2, lnf, lr};
        src = mem_of(lit, sizeof(lit) - 1, 0);
        expect_rows(&src, &le);
    }
    sd_buf_fini(&csv);
}

static void test_empty_input(void **state)
{
    static const struct exp_rows none = {0, NULL, NULL};
    struct sd_buf gz = SD_BUF_INIT;
    struct mem_src src;

    (void)state;
    src = mem_of("", 0, 0);
    expect_rows(&src, &none);
    gzip_member("", 0, 6, &gz);
    src = mem_of(gz.data, gz.len, 0);
    expect_rows(&src, &none);
    assert_int_equal(sd_gzip_empty_member(&gz), 0); /* two empty members */
    src = mem_of(gz.data, gz.len, 1);
    expect_rows(&src, &none);
    sd_buf_fini(&gz);
}

static void test_gzip_members(void **state)
{
    struct sd_buf csv = SD_BUF_INIT;
    struct sd_buf gz = SD_BUF_INIT;
    struct mem_src src;
    static const size_t members[] = {1, 5, 13, 1000000};
    static const size_t chunks[] = {0, 1, 3, 100};

    (void)state;
    encode(&sample, &csv);
    for (size_t m = 0; m < sizeof(members) / sizeof(members[0]); m++) {
        sd_buf_reset(&gz);
        gzip_members(csv.data, csv.len, members[m], &gz);
        for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
            src = mem_of(gz.data, gz.len, chunks[c]);
            expect_rows(&src, &sample);
        }
    }
    /* empty members between and after data members */
    sd_buf_reset(&gz);
    gzip_member(csv.data, 10, 1, &gz);
    assert_int_equal(sd_gzip_empty_member(&gz), 0);
    gzip_member(csv.data + 10, csv.len - 10, 9, &gz);
    assert_int_equal(sd_gzip_empty_member(&gz), 0);
    src = mem_of(gz.data, gz.len, 2);
    expect_rows(&src, &sample);
    sd_buf_fini(&csv);
    sd_buf_fini(&gz);
}

/* What the slice writer produces: ISA-L and zlib members with sync-flush points inside, and a
 * member completed after a cut (recovery). */
static void test_slice_writer_output(void **state)
{
    static const enum sd_gzip_impl impls[] = {SD_GZIP_STANDARD, SD_GZIP_FAST};
    struct sd_buf csv = SD_BUF_INIT;
    struct sd_buf gz = SD_BUF_INIT;
    struct sd_gzip *g = NULL;
    struct sd_gzip_member m;
    struct mem_src src;
    size_t half;

    (void)state;
    encode(&sample, &csv);
    half = csv.len / 2;
    for (size_t i = 0; i < sizeof(impls) / sizeof(impls[0]); i++) {
        sd_buf_reset(&gz);
        assert_int_equal(sd_gzip_create(impls[i], 1, &g), 0);
        assert_int_equal(sd_gzip_compress(g, csv.data, half, 0, &gz), 0);
        assert_int_equal(sd_gzip_compress(g, csv.data + half, csv.len - half, 1, &gz), 0);
        assert_int_equal(sd_gzip_compress(g, csv.data, 7, 0, &gz), 0);
        assert_int_equal(sd_gzip_compress(g, csv.data + 7, csv.len - 7, 0, &gz), 0);
        /* the second member is completed without the compressor, as recovery does */
        sd_gzip_member_state(g, &m);
        assert_true(m.is_open);
        assert_int_equal(sd_gzip_complete_member(m.crc, (uint32_t)m.in_bytes, &gz), 0);
        sd_gzip_reset(g);
        sd_gzip_destroy(g);
        g = NULL;
        {
            static const struct exp_val *rr[10];
            static size_t rnf[10];
            struct exp_rows twice = {10, rnf, rr};
            for (size_t k = 0; k < 10; k++) {
                rr[k] = sample_rows[k % 5];
                rnf[k] = sample_nf[k % 5];
            }
            src = mem_of(gz.data, gz.len, 0);
            expect_rows(&src, &twice);
            src = mem_of(gz.data, gz.len, 1);
            expect_rows(&src, &twice);
        }
    }
    sd_buf_fini(&csv);
    sd_buf_fini(&gz);
}

/* A 1 MB field with every byte value, plain and gzip, in various chunkings. */
static void test_big_field(void **state)
{
    enum { BIG = 1 << 20 };
    char *big = malloc(BIG);
    struct exp_val r0[3];
    const struct exp_val *rows[2];
    static const struct exp_val r1[] = {V("after")};
    size_t nf[2] = {3, 1};
    struct exp_rows e = {2, nf, rows};
    struct sd_buf csv = SD_BUF_INIT;
    struct sd_buf gz = SD_BUF_INIT;
    struct mem_src src;

    (void)state;
    assert_non_null(big);
    for (size_t i = 0; i < BIG; i++) {
        big[i] = (char)((i * 7919 + i / 256) & 0xff);
    }
    r0[0] = (struct exp_val){"x", 1};
    r0[1] = (struct exp_val){big, BIG};
    r0[2] = (struct exp_val){"", 0};
    rows[0] = r0;
    rows[1] = r1;
    encode(&e, &csv);
    gzip_members(csv.data, csv.len, 300000, &gz);
    src = mem_of(csv.data, csv.len, 0);
    expect_rows(&src, &e);
    src = mem_of(csv.data, csv.len, 4093);
    expect_rows(&src, &e);
    src = mem_of(gz.data, gz.len, 0);
    expect_rows(&src, &e);
    src = mem_of(gz.data, gz.len, 777);
    expect_rows(&src, &e);
    sd_buf_fini(&csv);
    sd_buf_fini(&gz);
    free(big);
}

/* One byte at a time through many rows (buffer boundaries at every position). */
static void test_one_byte_source(void **state)
{
    enum { NROWS = 2000 };
    static const struct exp_val *rows[NROWS];
    static size_t nf[NROWS];
    struct exp_rows e = {NROWS, nf, rows};
    struct sd_buf csv = SD_BUF_INIT;
    struct sd_buf gz = SD_BUF_INIT;
    struct mem_src src;

    (void)state;
    for (size_t i = 0; i < NROWS; i++) {
        rows[i] = sample_rows[i % 5];
        nf[i] = sample_nf[i % 5];
    }
    encode(&e, &csv);
    gzip_members(csv.data, csv.len, 10000, &gz);
    src = mem_of(csv.data, csv.len, 1);
    expect_rows(&src, &e);
    src = mem_of(gz.data, gz.len, 1);
    expect_rows(&src, &e);
    src = mem_of(gz.data, gz.len, 1);
    src.eintr = 1;
    expect_rows(&src, &e);
    sd_buf_fini(&csv);
    sd_buf_fini(&gz);
}

struct bad_case {
    const char *input;
    size_t len;
    uint64_t good_rows; /* rows returned before the error */
    const char *where;  /* expected in the message */
};

#define BAD(s, rows, where)                                                                        \
    {                                                                                              \
        (s), sizeof(s) - 1, (rows), (where)                                                        \
    }

static void test_malformed(void **state)
{
    static const struct bad_case cases[] = {
        BAD("a\n", 0, "row 1, offset 0: unquoted field"),
        BAD("\"a\",b\n", 0, "row 1, offset 4: unquoted field"),
        BAD("\"a\"x\n", 0, "row 1, offset 3: unexpected byte"),
        BAD("\"a\" \n", 0, "offset 3: unexpected byte"),
        BAD(" \"a\"\n", 0, "offset 0: unquoted field"),
        BAD("\"a\"\r\n", 0, "offset 3: unexpected byte"),
        BAD("\"a\",\n", 0, "offset 4: unquoted field"),
        BAD("\n", 0, "offset 0: empty line"),
        BAD("\"a\"\n\n", 1, "row 2, offset 4: empty line"),
        BAD("\"a\n", 0, "offset 3: unterminated quoted field"),
        BAD("\"a\"", 0, "offset 3: row without final newline"),
        BAD("\"a\",", 0, "offset 4: row without final newline"),
        BAD("\"a\",\"b\"\n\"c", 1, "row 2, offset 10: unterminated"),
        BAD("\"a\"\"", 0, "unterminated quoted field"),
        BAD("\"", 0, "offset 1: unterminated quoted field"),
        BAD("\x1f", 0, "offset 0: unquoted field"),
        BAD("\"a\"\"b\"c\"\n", 0, "offset 6: unexpected byte"),
    };
    char msg[300];
    uint64_t rows;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (size_t chunk = 0; chunk < 3; chunk++) {
            struct mem_src src = mem_of(cases[i].input, cases[i].len, chunk);
            int rc = read_to_error(&src, msg, sizeof(msg), &rows);
            if (rc != SD_ECORRUPT || strstr(msg, cases[i].where) == NULL) {
                fail_msg("case %zu: rc %d, message \"%s\", expected \"%s\"", i, rc, msg,
                         cases[i].where);
            }
            assert_int_equal(rows, cases[i].good_rows);
        }
    }
}

/* A gzip stream cut anywhere, or damaged, or followed by garbage, is SD_ECORRUPT. */
static void test_truncated_and_damaged_gzip(void **state)
{
    struct sd_buf csv = SD_BUF_INIT;
    struct sd_buf gz = SD_BUF_INIT;
    struct sd_buf bad = SD_BUF_INIT;
    struct mem_src src;
    char msg[300];
    uint64_t rows;
    size_t first_member;

    (void)state;
    encode(&sample, &csv);
    gzip_member(csv.data, csv.len / 2, 6, &gz);
    first_member = gz.len;
    gzip_member(csv.data + csv.len / 2, csv.len - csv.len / 2, 6, &gz);
    for (size_t cut = 2; cut < gz.len; cut++) {
        if (cut == first_member) {
            /* a cut at a member boundary is a valid (shorter) stream, but the CSV is cut
             * mid-row: still SD_ECORRUPT, from the CSV layer */
            src = mem_of(gz.data, cut, 0);
            assert_int_equal(read_to_error(&src, msg, sizeof(msg), NULL), SD_ECORRUPT);
            continue;
        }
        src = mem_of(gz.data, cut, cut % 3);
        if (read_to_error(&src, msg, sizeof(msg), NULL) != SD_ECORRUPT) {
            fail_msg("cut at %zu of %zu: not SD_ECORRUPT (%s)", cut, gz.len, msg);
        }
        if (cut > first_member + 10 || (cut > 10 && cut < first_member)) {
            assert_non_null(strstr(msg, "gzip"));
        }
    }
    src = mem_of(gz.data, gz.len - 1, 0);
    assert_int_equal(read_to_error(&src, msg, sizeof(msg), NULL), SD_ECORRUPT);
    assert_non_null(strstr(msg, "gzip: truncated member at compressed offset"));

    /* a flipped byte in the deflate data or the CRC */
    for (size_t k = 0; k < 3; k++) {
        size_t at = k == 0 ? first_member / 2 : (k == 1 ? first_member - 6 : gz.len - 3);
        sd_buf_reset(&bad);
        assert_int_equal(sd_buf_append(&bad, gz.data, gz.len), 0);
        bad.data[at] ^= 0x10;
        src = mem_of(bad.data, bad.len, 0);
        assert_int_equal(read_to_error(&src, msg, sizeof(msg), NULL), SD_ECORRUPT);
        assert_non_null(strstr(msg, "gzip"));
    }

    /* trailing garbage or zero padding after the last member */
    sd_buf_reset(&bad);
    assert_int_equal(sd_buf_append(&bad, gz.data, gz.len), 0);
    assert_int_equal(sd_buf_append(&bad, "\0\0\0\0", 4), 0);
    src = mem_of(bad.data, bad.len, 0);
    assert_int_equal(read_to_error(&src, msg, sizeof(msg), &rows), SD_ECORRUPT);
    assert_int_equal(rows, sample.nrows);
    assert_non_null(strstr(msg, "gzip"));
    sd_buf_reset(&bad);
    assert_int_equal(sd_buf_append(&bad, gz.data, gz.len), 0);
    assert_int_equal(sd_buf_append(&bad, "\"x\"\n", 4), 0);
    src = mem_of(bad.data, bad.len, 0);
    assert_int_equal(read_to_error(&src, msg, sizeof(msg), NULL), SD_ECORRUPT);

    /* valid gzip around malformed CSV: the offset is in the decoded stream */
    sd_buf_reset(&bad);
    gzip_member("\"ok\"\n\"a\"b\n", 10, 6, &bad);
    src = mem_of(bad.data, bad.len, 1);
    assert_int_equal(read_to_error(&src, msg, sizeof(msg), &rows), SD_ECORRUPT);
    assert_string_equal(msg, "row 2, offset 8: unexpected byte after closing quote");
    assert_int_equal(rows, 1);

    sd_buf_fini(&csv);
    sd_buf_fini(&gz);
    sd_buf_fini(&bad);
}

/* A failing source ends the read with its error, which sticks. */
static void test_source_error(void **state)
{
    struct sd_buf csv = SD_BUF_INIT;
    struct sd_buf gz = SD_BUF_INIT;
    struct mem_src src;
    char msg[300];

    (void)state;
    encode(&sample, &csv);
    gzip_member(csv.data, csv.len, 6, &gz);
    src = mem_of(csv.data, csv.len, 5);
    src.fail_at = 20;
    src.fail_rc = -EIO;
    assert_int_equal(read_to_error(&src, msg, sizeof(msg), NULL), -EIO);
    assert_non_null(strstr(msg, "reading the source"));
    src = mem_of(gz.data, gz.len, 5);
    src.fail_at = 1;
    src.fail_rc = -ECONNRESET;
    assert_int_equal(read_to_error(&src, msg, sizeof(msg), NULL), -ECONNRESET);
    sd_buf_fini(&csv);
    sd_buf_fini(&gz);
}

/* A source generating a pattern on the fly, for inputs too big to keep. */
struct gen_src {
    const char *head;
    size_t head_len;
    const char *unit;
    size_t unit_len;
    uint64_t total; /* bytes to produce after head */
    uint64_t pos;
};

static ssize_t gen_read(void *arg, void *buf, size_t len)
{
    struct gen_src *g = arg;
    char *out = buf;
    size_t n = 0;

    while (n < len && g->pos < g->head_len + g->total) {
        if (g->pos < g->head_len) {
            out[n++] = g->head[g->pos++];
        } else {
            out[n++] = g->unit[(g->pos++ - g->head_len) % g->unit_len];
        }
    }
    return (ssize_t)n;
}

static void test_limits(void **state)
{
    struct gen_src g;
    struct sd_csv_reader *r = NULL;
    const struct sd_str *f;
    size_t nf;

    (void)state;
    /* an unterminated field longer than the row limit */
    g = (struct gen_src){"\"", 1, "abcdefgh", 8, (uint64_t)SD_CSV_READER_MAX_ROW + 4096, 0};
    assert_int_equal(sd_csv_reader_open(gen_read, &g, &r), 0);
    assert_int_equal(sd_csv_reader_next(r, &f, &nf), SD_ECORRUPT);
    assert_non_null(strstr(sd_csv_reader_error(r), "row too long"));
    assert_true(g.pos < (uint64_t)SD_CSV_READER_MAX_ROW + 2 * 65536);
    sd_csv_reader_close(r);

    /* more fields than allowed */
    g = (struct gen_src){"", 0, "\"\",", 3, 3ull * (SD_CSV_READER_MAX_FIELDS + 10), 0};
    assert_int_equal(sd_csv_reader_open(gen_read, &g, &r), 0);
    assert_int_equal(sd_csv_reader_next(r, &f, &nf), SD_ECORRUPT);
    assert_non_null(strstr(sd_csv_reader_error(r), "too many fields"));
    sd_csv_reader_close(r);

    /* exactly the maximum number of fields is fine */
    {
        struct sd_buf row = SD_BUF_INIT;
        struct mem_src src;
        for (size_t i = 0; i < SD_CSV_READER_MAX_FIELDS; i++) {
            assert_int_equal(sd_csv_field(&row, "v", 1, i == 0), 0);
        }
        assert_int_equal(sd_csv_end_row(&row), 0);
        src = mem_of(row.data, row.len, 0);
        assert_int_equal(sd_csv_reader_open(mem_read, &src, &r), 0);
        assert_int_equal(sd_csv_reader_next(r, &f, &nf), 1);
        assert_int_equal(nf, SD_CSV_READER_MAX_FIELDS);
        assert_int_equal(f[nf - 1].len, 1);
        assert_int_equal(sd_csv_reader_offset(r), row.len);
        assert_int_equal(sd_csv_reader_next(r, &f, &nf), 0);
        sd_csv_reader_close(r);
        sd_buf_fini(&row);
    }
    sd_csv_reader_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_rows),   cmocka_unit_test(test_empty_input),
        cmocka_unit_test(test_gzip_members), cmocka_unit_test(test_slice_writer_output),
        cmocka_unit_test(test_big_field),    cmocka_unit_test(test_one_byte_source),
        cmocka_unit_test(test_malformed),    cmocka_unit_test(test_truncated_and_damaged_gzip),
        cmocka_unit_test(test_source_error), cmocka_unit_test(test_limits),
    };

    return cmocka_run_group_tests_name("csv_reader", tests, NULL, NULL);
}
