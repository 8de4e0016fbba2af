/* tables_contract.h: the contract test suite every table-storage backend (sd_tables_ops) must
 * pass: "sqlite" now, "postgres" later.
 *
 * Header-only (static functions), because each tests/unit/test_*.c is its own executable. A
 * runner defines a struct tc_backend with three functions: open the backend on a location
 * (called once per test for the fixture, and again when a test needs a second, independent
 * handle on the same storage), and two that read the storage behind the backend's back (a
 * table's columns and rows, the list of tables), so the suite can check what a user of the
 * storage would see, not only what the interface reports. It registers TC_CONTRACT_TESTS(&be)
 * in its cmocka test array. Each test gets a fresh temp directory (under $SD_TEST_TMPDIR, else
 * /tmp) and a fresh handle; a backend that does not store files there (postgres) may use the
 * directory's name to derive a fresh database.
 *
 * DESIGN: slices are built in memory with the real CSV writer (pipeline/sd_csv) and zlib gzip,
 * served by a counting source (so "skipped without reading" is checked), optionally in small
 * chunks or failing after some bytes. Tests run one at a time on the cmocka thread; the
 * concurrency test starts its threads behind a barrier and joins them before asserting (no
 * cmocka asserts on other threads). */
#ifndef TABLES_CONTRACT_H
#define TABLES_CONTRACT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <zlib.h>

#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "core/sd_fs.h"
#include "pipeline/sd_csv.h"
#include "tables/sd_tables.h"

/* One stored value, owned. */
struct tc_value {
    char *p; /* NUL-terminated copy (len does not count the NUL); NULL when is_null */
    size_t len;
    int is_null;
};

/* A table as read directly from the storage, owned (tc_table_free). */
struct tc_table {
    size_t ncols;
    char **cols; /* column names in table order */
    size_t nrows;
    struct tc_value *cells; /* nrows * ncols, row-major, rows in insertion order */
    /* Set by a reader whose storage keeps imports in order but not the rows inside one import
     * (a PostgreSQL heap reuses free space): the rows of one slice are then compared as a
     * multiset, each slice's rows still at their positions. */
    int unordered_within_slice;
};

/* Opens the backend under test on location dir (a fresh empty directory per test). */
typedef int (*tc_open_fn)(const char *dir, struct sd_tables **out);
/* Reads table_id of project from the storage, bypassing the backend. Returns 0 or
 * SD_ENOTFOUND (no table of exactly that name). */
typedef int (*tc_read_table_fn)(const char *dir, int64_t project, const char *table_id,
                                struct tc_table *out);
/* Lists every table in the project's storage (user tables and bookkeeping), owned strings in
 * an owned array. No storage yet: 0 with *n = 0. */
typedef int (*tc_list_tables_fn)(const char *dir, int64_t project, char ***names, size_t *n);

struct tc_backend {
    const char *name;
    tc_open_fn open;
    tc_read_table_fn read_table;
    tc_list_tables_fn list_tables;
};

/* Per-test fixture. */
struct tc_fixture {
    const struct tc_backend *be;
    char dir[512];
    struct sd_tables *t;
};

/* ---- helpers ---------------------------------------------------------------------------- */

static void tc_table_free(struct tc_table *t)
{
    for (size_t i = 0; i < t->ncols; i++) {
        free(t->cols[i]);
    }
    for (size_t i = 0; i < t->nrows * t->ncols; i++) {
        free(t->cells[i].p);
    }
    free(t->cols);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}

static void tc_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
}

/* Creates a fresh empty temp directory into buf. */
static void tc_make_tmpdir(char *buf, size_t len, const char *tag)
{
    const char *base = getenv("SD_TEST_TMPDIR");

    if (base == NULL || base[0] == '\0') {
        base = "/tmp";
    }
    assert_int_equal(sd_mkdir_p(base, 0755), 0);
    assert_true((size_t)snprintf(buf, len, "%s/sd-tables-%s-XXXXXX", base, tag) < len);
    assert_non_null(mkdtemp(buf));
}

static int tc_setup(void **state)
{
    const struct tc_backend *be = *state;
    struct tc_fixture *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    fx->be = be;
    tc_make_tmpdir(fx->dir, sizeof(fx->dir), be->name);
    assert_int_equal(be->open(fx->dir, &fx->t), 0);
    *state = fx;
    return 0;
}

static int tc_teardown(void **state)
{
    struct tc_fixture *fx = *state;

    sd_tables_close(fx->t);
    sd_rm_rf(fx->dir);
    free(fx);
    return 0;
}

/* Rows of test data: nrows x ncols C strings (static or owned by the caller). */
struct tc_rows {
    size_t nrows;
    size_t ncols;
    const char *const *v; /* row-major */
    const size_t *lens;   /* value lengths (values may hold any byte but NUL) or NULL: strlen */
};

static size_t tc_len(const struct tc_rows *r, size_t i)
{
    return r->lens != NULL ? r->lens[i] : strlen(r->v[i]);
}

/* Encodes rows as streamd CSV (the real writer). */
static void tc_csv(const struct tc_rows *r, struct sd_buf *out)
{
    for (size_t i = 0; i < r->nrows; i++) {
        for (size_t j = 0; j < r->ncols; j++) {
            size_t k = i * r->ncols + j;
            assert_int_equal(sd_csv_field(out, r->v[k], tc_len(r, k), j == 0), 0);
        }
        assert_int_equal(sd_csv_end_row(out), 0);
    }
}

/* Appends data as one gzip member (zlib). */
static void tc_gzip_member(const void *data, size_t len, struct sd_buf *out)
{
    z_stream zs;
    unsigned char chunk[16384];
    int zrc;

    memset(&zs, 0, sizeof(zs));
    assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
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

/* Appends data as gzip split into members of about member_size input bytes each (cutting
 * rows and fields at arbitrary points, as the slice writer's members may). */
static void tc_gzip(const void *data, size_t len, size_t member_size, struct sd_buf *out)
{
    const char *p = data;
    size_t n;

    if (len == 0) {
        tc_gzip_member(p, 0, out);
        return;
    }
    while (len > 0) {
        n = len < member_size ? len : member_size;
        tc_gzip_member(p, n, out);
        p += n;
        len -= n;
    }
}

/* An in-memory byte source that counts its calls. */
struct tc_src {
    const char *data;
    size_t len;
    size_t pos;
    size_t chunk;   /* at most this many bytes per read; 0 = as many as asked */
    size_t fail_at; /* return fail_rc once pos reaches this; 0 = never */
    int fail_rc;
    int reads; /* calls made */
};

static ssize_t tc_src_read(void *arg, void *buf, size_t len)
{
    struct tc_src *s = arg;
    size_t n = s->len - s->pos;

    s->reads++;
    if (s->fail_at > 0 && s->pos >= s->fail_at) {
        return s->fail_rc;
    }
    if (n > len) {
        n = len;
    }
    if (s->chunk > 0 && n > s->chunk) {
        n = s->chunk;
    }
    if (s->fail_at > 0 && s->pos + n > s->fail_at) {
        n = s->fail_at - s->pos;
    }
    if (n > 0) {
        memcpy(buf, s->data + s->pos, n);
    }
    s->pos += n;
    return (ssize_t)n;
}

static struct tc_src tc_src_of(const struct sd_buf *b)
{
    struct tc_src s;

    memset(&s, 0, sizeof(s));
    s.data = b->data;
    s.len = b->len;
    return s;
}

static struct sd_import_slice tc_slice(const char *key, struct tc_src *src)
{
    struct sd_import_slice s = {key, tc_src_read, src};

    return s;
}

/* Values that stress the CSV path and byte-exact storage. */
static const char *const tc_tricky[] = {
    "",
    "plain",
    "with,comma",
    "with \"quotes\" inside",
    "\"",
    "\"\"",
    ",",
    "line\nbreak",
    "cr\r\nlf",
    "\r",
    "unicode \xc5\xbe\xc3\xa1 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80",
    "  spaces  ",
    "'single' ; DROP TABLE x; --",
    "NULL",
    "007",
    "1e3",
    "tab\there",
};
#define TC_NTRICKY (sizeof(tc_tricky) / sizeof(tc_tricky[0]))

static const char *const tc_cols[] = {"id", "value", "note"};
#define TC_NCOLS 3

/* A schema without a primary key (a compound literal: valid in the enclosing block). */
#define TC_SCHEMA(cols, n) (&(const struct sd_table_schema){(cols), (n), NULL})
/* The same with key flags. */
#define TC_SCHEMA_PK(cols, n, pk) (&(const struct sd_table_schema){(cols), (n), (pk)})

/* A generated slice: nrows rows of (id "<tag>-<i>", a tricky value, "" or a note). */
struct tc_data {
    size_t nrows;
    char **vals; /* nrows * TC_NCOLS, owned */
    struct sd_buf csv;
    struct sd_buf gz;
};

static void tc_data_make(struct tc_data *d, const char *tag, size_t nrows)
{
    struct tc_rows r;

    memset(d, 0, sizeof(*d));
    d->nrows = nrows;
    d->vals = calloc(nrows * TC_NCOLS + 1, sizeof(char *));
    assert_non_null(d->vals);
    for (size_t i = 0; i < nrows; i++) {
        char buf[64];
        snprintf(buf, sizeof(buf), "%s-%zu", tag, i);
        d->vals[i * TC_NCOLS] = strdup(buf);
        d->vals[i * TC_NCOLS + 1] = strdup(tc_tricky[i % TC_NTRICKY]);
        d->vals[i * TC_NCOLS + 2] = strdup(i % 3 == 0 ? "" : tc_tricky[(i * 7) % TC_NTRICKY]);
    }
    r.nrows = nrows;
    r.ncols = TC_NCOLS;
    r.v = (const char *const *)d->vals;
    r.lens = NULL;
    sd_buf_init(&d->csv);
    sd_buf_init(&d->gz);
    tc_csv(&r, &d->csv);
    tc_gzip(d->csv.data, d->csv.len, 4096, &d->gz);
}

static void tc_data_free(struct tc_data *d)
{
    for (size_t i = 0; i < d->nrows * TC_NCOLS; i++) {
        free(d->vals[i]);
    }
    free(d->vals);
    sd_buf_fini(&d->csv);
    sd_buf_fini(&d->gz);
}

static struct tc_table tc_read(const struct tc_fixture *fx, int64_t project, const char *table_id)
{
    struct tc_table t;

    memset(&t, 0, sizeof(t));
    assert_int_equal(fx->be->read_table(fx->dir, project, table_id, &t), 0);
    return t;
}

static void tc_assert_columns(const struct tc_table *t, const char *const *cols, size_t n)
{
    assert_int_equal(t->ncols, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(t->cols[i], cols[i]);
    }
}

/* Compares rows a and b of t (ncols cells each) byte for byte. */
static int tc_row_cmp(const struct tc_value *a, const struct tc_value *b, size_t ncols)
{
    for (size_t j = 0; j < ncols; j++) {
        size_t n = a[j].len < b[j].len ? a[j].len : b[j].len;
        int c = memcmp(a[j].p != NULL ? a[j].p : "", b[j].p != NULL ? b[j].p : "", n);

        if (c != 0) {
            return c;
        }
        if (a[j].len != b[j].len) {
            return a[j].len < b[j].len ? -1 : 1;
        }
    }
    return 0;
}

static size_t tc_sort_ncols;

static int tc_row_qsort_cmp(const void *a, const void *b)
{
    return tc_row_cmp(a, b, tc_sort_ncols);
}

/* Asserts that rows [from, from + nrows) of t are the rows vals (nrows x ncols C strings), byte
 * for byte, non-NULL: in order, or as a multiset when t->unordered_within_slice. */
static void tc_assert_values_at(const struct tc_table *t, size_t from, char *const *vals,
                                size_t nrows, size_t ncols)
{
    struct tc_value *want = calloc(nrows * ncols + 1, sizeof(*want));
    struct tc_value *have = calloc(nrows * ncols + 1, sizeof(*have));

    assert_non_null(want);
    assert_non_null(have);
    assert_true(t->nrows >= from + nrows);
    assert_int_equal(t->ncols, ncols);
    for (size_t k = 0; k < nrows * ncols; k++) {
        assert_false(t->cells[from * ncols + k].is_null);
        have[k] = t->cells[from * ncols + k];
        want[k].p = vals[k];
        want[k].len = strlen(vals[k]);
    }
    if (t->unordered_within_slice && nrows > 0) {
        tc_sort_ncols = ncols;
        qsort(want, nrows, ncols * sizeof(*want), tc_row_qsort_cmp);
        qsort(have, nrows, ncols * sizeof(*have), tc_row_qsort_cmp);
    }
    for (size_t k = 0; k < nrows * ncols; k++) {
        assert_int_equal(have[k].len, want[k].len);
        assert_memory_equal(have[k].p, want[k].p, have[k].len);
    }
    free(want);
    free(have);
}

/* Asserts that rows [from, from + d->nrows) of t are d's rows (tc_assert_values_at). */
static void tc_assert_rows_at(const struct tc_table *t, size_t from, const struct tc_data *d)
{
    tc_assert_values_at(t, from, d->vals, d->nrows, TC_NCOLS);
}

static uint64_t tc_import(struct tc_fixture *fx, int64_t project, const char *table_id,
                          const struct sd_import_slice *slices, size_t n)
{
    struct sd_buf err = SD_BUF_INIT;
    uint64_t rows = 12345;
    int rc = sd_tables_import(fx->t, project, table_id, TC_SCHEMA(tc_cols, TC_NCOLS), slices, n,
                              &rows, &err);

    if (rc != 0) {
        fail_msg("import: %s: %s", sd_strerror(rc), err.len > 0 ? err.data : "");
    }
    sd_buf_fini(&err);
    return rows;
}

static size_t tc_nrows(const struct tc_fixture *fx, int64_t project, const char *table_id)
{
    struct tc_table t = tc_read(fx, project, table_id);
    size_t n = t.nrows;

    tc_table_free(&t);
    return n;
}

/* ---- tests ------------------------------------------------------------------------------ */

/* ensure_table creates the table with exactly the columns, in order; again is fine; other
 * columns conflict with a message naming both lists. */
static void tc_test_ensure_table(void **state)
{
    struct tc_fixture *fx = *state;
    static const char *const cols[] = {"id",      "Body",    "with space",
                                       "dot.ted", "quo\"te", "\xc5\xbe"};
    static const char *const reordered[] = {"Body",    "id",      "with space",
                                            "dot.ted", "quo\"te", "\xc5\xbe"};
    static const char *const renamed[] = {"id",      "body",    "with space",
                                          "dot.ted", "quo\"te", "\xc5\xbe"};
    static const char *const more[] = {"id",      "Body",     "with space", "dot.ted",
                                       "quo\"te", "\xc5\xbe", "extra"};
    struct sd_buf err = SD_BUF_INIT;
    struct tc_table t;

    assert_int_equal(fx->be->read_table(fx->dir, 1, "in.c-b.t", &t), SD_ENOTFOUND);
    assert_int_equal(sd_tables_ensure_table(fx->t, 1, "in.c-b.t", TC_SCHEMA(cols, 6), &err), 0);
    t = tc_read(fx, 1, "in.c-b.t");
    tc_assert_columns(&t, cols, 6);
    assert_int_equal(t.nrows, 0);
    tc_table_free(&t);

    assert_int_equal(sd_tables_ensure_table(fx->t, 1, "in.c-b.t", TC_SCHEMA(cols, 6), &err), 0);

    assert_int_equal(sd_tables_ensure_table(fx->t, 1, "in.c-b.t", TC_SCHEMA(reordered, 6), &err),
                     SD_ECONFLICT);
    assert_non_null(strstr(err.data, "in.c-b.t"));
    assert_non_null(strstr(err.data, "id"));
    assert_non_null(strstr(err.data, "Body"));
    sd_buf_reset(&err);
    assert_int_equal(sd_tables_ensure_table(fx->t, 1, "in.c-b.t", TC_SCHEMA(renamed, 6), &err),
                     SD_ECONFLICT);
    assert_non_null(strstr(err.data, "body"));
    assert_non_null(strstr(err.data, "Body"));
    sd_buf_reset(&err);
    assert_int_equal(sd_tables_ensure_table(fx->t, 1, "in.c-b.t", TC_SCHEMA(more, 7), &err),
                     SD_ECONFLICT);
    assert_non_null(strstr(err.data, "extra"));
    sd_buf_reset(&err);
    assert_int_equal(sd_tables_ensure_table(fx->t, 1, "in.c-b.t", TC_SCHEMA(cols, 5), &err),
                     SD_ECONFLICT);
    assert_true(err.len > 0);

    /* nothing changed by the failed calls */
    t = tc_read(fx, 1, "in.c-b.t");
    tc_assert_columns(&t, cols, 6);
    tc_table_free(&t);

    /* a second table in the same project, and the same id in another project */
    assert_int_equal(
        sd_tables_ensure_table(fx->t, 1, "in.c-b.u", TC_SCHEMA(tc_cols, TC_NCOLS), &err), 0);
    assert_int_equal(
        sd_tables_ensure_table(fx->t, 2, "in.c-b.t", TC_SCHEMA(tc_cols, TC_NCOLS), &err), 0);
    t = tc_read(fx, 2, "in.c-b.t");
    tc_assert_columns(&t, tc_cols, TC_NCOLS);
    tc_table_free(&t);
    sd_buf_fini(&err);
}

/* check_table answers as ensure_table would and changes nothing: no table, no database. */
static void tc_test_check_table(void **state)
{
    struct tc_fixture *fx = *state;
    static const char *const other[] = {"id", "other"};
    static const char *const empty_name[] = {"a", ""};
    struct sd_buf err = SD_BUF_INIT;
    struct tc_table t;

    assert_int_equal(
        sd_tables_check_table(fx->t, 1, "in.c-b.t", TC_SCHEMA(tc_cols, TC_NCOLS), &err), 0);
    assert_int_equal(fx->be->read_table(fx->dir, 1, "in.c-b.t", &t), SD_ENOTFOUND);
    assert_int_equal(
        sd_tables_ensure_table(fx->t, 1, "in.c-b.t", TC_SCHEMA(tc_cols, TC_NCOLS), &err), 0);
    assert_int_equal(
        sd_tables_check_table(fx->t, 1, "in.c-b.t", TC_SCHEMA(tc_cols, TC_NCOLS), &err), 0);
    assert_int_equal(sd_tables_check_table(fx->t, 1, "in.c-b.t", TC_SCHEMA(other, 2), &err),
                     SD_ECONFLICT);
    assert_non_null(strstr(err.data, "other"));
    assert_int_equal(sd_tables_check_table(fx->t, 1, "in.c-b.u", TC_SCHEMA(other, 2), &err), 0);
    assert_int_equal(fx->be->read_table(fx->dir, 1, "in.c-b.u", &t), SD_ENOTFOUND);
    assert_int_equal(sd_tables_check_table(fx->t, 1, "in.c-b.t", TC_SCHEMA(empty_name, 2), &err),
                     SD_EINVAL);
    assert_int_equal(sd_tables_check_table(fx->t, 1, SD_TABLES_INTERNAL_PREFIX "x",
                                           TC_SCHEMA(tc_cols, TC_NCOLS), &err),
                     SD_EINVAL);
    t = tc_read(fx, 1, "in.c-b.t");
    tc_assert_columns(&t, tc_cols, TC_NCOLS);
    tc_table_free(&t);
    sd_buf_fini(&err);
}

/* Invalid arguments are refused before anything is created. */
static void tc_test_invalid_args(void **state)
{
    struct tc_fixture *fx = *state;
    static const char *const empty_name[] = {"a", ""};
    struct sd_buf err = SD_BUF_INIT;
    struct tc_src src;
    struct sd_import_slice s;
    struct sd_buf csv = SD_BUF_INIT;

    assert_int_equal(sd_tables_ensure_table(fx->t, 1, "", TC_SCHEMA(tc_cols, TC_NCOLS), &err),
                     SD_EINVAL);
    assert_true(err.len > 0);
    assert_int_equal(sd_tables_ensure_table(fx->t, 1, "in.c-b.t", TC_SCHEMA(tc_cols, 0), &err),
                     SD_EINVAL);
    assert_int_equal(sd_tables_ensure_table(fx->t, 1, "in.c-b.t", TC_SCHEMA(empty_name, 2), &err),
                     SD_EINVAL);
    assert_int_equal(sd_tables_ensure_table(fx->t, 1, SD_TABLES_INTERNAL_PREFIX "x",
                                            TC_SCHEMA(tc_cols, TC_NCOLS), &err),
                     SD_EINVAL);
    assert_int_equal(sd_tables_ensure_table(fx->t, 1, SD_TABLES_INTERNAL_PREFIX "import_ledger",
                                            TC_SCHEMA(tc_cols, TC_NCOLS), &err),
                     SD_EINVAL);
    assert_int_equal(sd_buf_append_str(&csv, "\"a\",\"b\",\"c\"\n"), 0);
    src = tc_src_of(&csv);
    s = tc_slice("k", &src);
    assert_int_equal(sd_tables_import(fx->t, 1, SD_TABLES_INTERNAL_PREFIX "import_ledger",
                                      TC_SCHEMA(tc_cols, TC_NCOLS), &s, 1, NULL, &err),
                     SD_EINVAL);
    s.slice_key = "";
    assert_int_equal(
        sd_tables_import(fx->t, 1, "in.c-b.t", TC_SCHEMA(tc_cols, TC_NCOLS), &s, 1, NULL, &err),
        SD_EINVAL);
    assert_int_equal(src.reads, 0);
    assert_int_equal(sd_tables_drop_table(fx->t, 1, SD_TABLES_INTERNAL_PREFIX "import_ledger"),
                     SD_EINVAL);
    sd_buf_fini(&csv);
    sd_buf_fini(&err);
}

/* Two slices (gzip and plain) land byte-exact and in order; the ledger knows both. */
static void tc_test_import_two_slices(void **state)
{
    struct tc_fixture *fx = *state;
    struct tc_data a, b;
    struct tc_src sa, sb;
    struct sd_import_slice s[2];
    struct tc_table t;

    tc_data_make(&a, "a", 100);
    tc_data_make(&b, "b", 37);
    sa = tc_src_of(&a.gz);
    sb = tc_src_of(&b.csv);
    sb.chunk = 7;
    s[0] = tc_slice("slice-a", &sa);
    s[1] = tc_slice("slice-b", &sb);
    assert_int_equal(sd_tables_is_imported(fx->t, 1, "slice-a"), 0);
    assert_int_equal(tc_import(fx, 1, "in.c-b.t", s, 2), 137);
    t = tc_read(fx, 1, "in.c-b.t");
    tc_assert_columns(&t, tc_cols, TC_NCOLS);
    assert_int_equal(t.nrows, 137);
    tc_assert_rows_at(&t, 0, &a);
    tc_assert_rows_at(&t, 100, &b);
    tc_table_free(&t);
    assert_int_equal(sd_tables_is_imported(fx->t, 1, "slice-a"), 1);
    assert_int_equal(sd_tables_is_imported(fx->t, 1, "slice-b"), 1);
    assert_int_equal(sd_tables_is_imported(fx->t, 1, "slice-c"), 0);
    assert_int_equal(sd_tables_is_imported(fx->t, 2, "slice-a"), 0);
    tc_data_free(&a);
    tc_data_free(&b);
}

/* A retried import adds nothing and does not read the slices; a mix imports only the new one;
 * a key repeated within one call is imported once. */
static void tc_test_reimport(void **state)
{
    struct tc_fixture *fx = *state;
    struct tc_data a, b, c;
    struct tc_src sa, sb, sc, sc2;
    struct sd_import_slice s[3];
    struct tc_table t;

    tc_data_make(&a, "a", 20);
    tc_data_make(&b, "b", 30);
    tc_data_make(&c, "c", 40);
    sa = tc_src_of(&a.gz);
    sb = tc_src_of(&b.gz);
    s[0] = tc_slice("slice-a", &sa);
    s[1] = tc_slice("slice-b", &sb);
    assert_int_equal(tc_import(fx, 1, "in.c-b.t", s, 2), 50);

    sa = tc_src_of(&a.gz);
    sb = tc_src_of(&b.gz);
    assert_int_equal(tc_import(fx, 1, "in.c-b.t", s, 2), 0);
    assert_int_equal(sa.reads, 0);
    assert_int_equal(sb.reads, 0);
    assert_int_equal(tc_nrows(fx, 1, "in.c-b.t"), 50);

    sa = tc_src_of(&a.gz);
    sc = tc_src_of(&c.csv);
    sc2 = tc_src_of(&c.csv);
    s[0] = tc_slice("slice-a", &sa);
    s[1] = tc_slice("slice-c", &sc);
    s[2] = tc_slice("slice-c", &sc2);
    assert_int_equal(tc_import(fx, 1, "in.c-b.t", s, 3), 40);
    assert_int_equal(sa.reads, 0);
    assert_true(sc.reads > 0);
    assert_int_equal(sc2.reads, 0);

    t = tc_read(fx, 1, "in.c-b.t");
    assert_int_equal(t.nrows, 90);
    tc_assert_rows_at(&t, 0, &a);
    tc_assert_rows_at(&t, 20, &b);
    tc_assert_rows_at(&t, 50, &c);
    tc_table_free(&t);

    /* a fresh handle on the same storage sees the same ledger */
    {
        struct sd_tables *t2 = NULL;
        uint64_t rows = 1;
        assert_int_equal(fx->be->open(fx->dir, &t2), 0);
        assert_int_equal(sd_tables_is_imported(t2, 1, "slice-c"), 1);
        sc = tc_src_of(&c.csv);
        s[0] = tc_slice("slice-c", &sc);
        assert_int_equal(
            sd_tables_import(t2, 1, "in.c-b.t", TC_SCHEMA(tc_cols, TC_NCOLS), s, 1, &rows, NULL),
            0);
        assert_int_equal(rows, 0);
        assert_int_equal(sc.reads, 0);
        sd_tables_close(t2);
    }
    assert_int_equal(tc_nrows(fx, 1, "in.c-b.t"), 90);
    tc_data_free(&a);
    tc_data_free(&b);
    tc_data_free(&c);
}

/* A failing import commits nothing: not the good slice before the bad one, no ledger row. */
static void tc_check_failure(struct tc_fixture *fx, struct tc_src *bad, int expected_rc,
                             const struct tc_data *base)
{
    struct tc_data good;
    struct tc_src sg;
    struct sd_import_slice s[2];
    struct sd_buf err = SD_BUF_INIT;
    struct tc_table t;
    uint64_t rows = 99;

    tc_data_make(&good, "good", 25);
    sg = tc_src_of(&good.gz);
    s[0] = tc_slice("slice-good", &sg);
    s[1] = tc_slice("slice-bad", bad);
    assert_int_equal(
        sd_tables_import(fx->t, 1, "in.c-b.t", TC_SCHEMA(tc_cols, TC_NCOLS), s, 2, &rows, &err),
        expected_rc);
    assert_int_equal(rows, 0);
    assert_non_null(strstr(err.data, "slice-bad"));
    assert_int_equal(sd_tables_is_imported(fx->t, 1, "slice-good"), 0);
    assert_int_equal(sd_tables_is_imported(fx->t, 1, "slice-bad"), 0);
    t = tc_read(fx, 1, "in.c-b.t");
    assert_int_equal(t.nrows, base->nrows);
    tc_assert_rows_at(&t, 0, base);
    tc_table_free(&t);

    /* the good slice alone still imports afterwards */
    sg = tc_src_of(&good.gz);
    assert_int_equal(tc_import(fx, 1, "in.c-b.t", s, 1), 25);
    assert_int_equal(sd_tables_drop_table(fx->t, 1, "in.c-b.t"), 0);
    sd_buf_fini(&err);
    tc_data_free(&good);
}

static void tc_import_base(struct tc_fixture *fx, struct tc_data *base)
{
    struct tc_src sb;
    struct sd_import_slice s;

    tc_data_make(base, "base", 10);
    sb = tc_src_of(&base->csv);
    s = tc_slice("slice-base", &sb);
    assert_int_equal(tc_import(fx, 1, "in.c-b.t", &s, 1), 10);
}

static void tc_test_failures_commit_nothing(void **state)
{
    struct tc_fixture *fx = *state;
    struct tc_data base, d;
    struct sd_buf buf = SD_BUF_INIT;
    struct tc_src bad;

    tc_data_make(&d, "d", 50);

    /* a row with a wrong field count (in the middle of the slice) */
    tc_import_base(fx, &base);
    assert_int_equal(sd_buf_append(&buf, d.csv.data, d.csv.len), 0);
    assert_int_equal(sd_buf_append_str(&buf, "\"x\",\"y\"\n\"p\",\"q\",\"r\"\n"), 0);
    bad = tc_src_of(&buf);
    tc_check_failure(fx, &bad, SD_ECORRUPT, &base);
    tc_data_free(&base);

    /* too many fields */
    tc_import_base(fx, &base);
    sd_buf_reset(&buf);
    assert_int_equal(sd_buf_append_str(&buf, "\"x\",\"y\",\"z\",\"w\"\n"), 0);
    bad = tc_src_of(&buf);
    tc_check_failure(fx, &bad, SD_ECORRUPT, &base);
    tc_data_free(&base);

    /* truncated gzip */
    tc_import_base(fx, &base);
    bad = tc_src_of(&d.gz);
    bad.len = d.gz.len - 5;
    tc_check_failure(fx, &bad, SD_ECORRUPT, &base);
    tc_data_free(&base);

    /* damaged gzip (a flipped byte in the compressed data) */
    tc_import_base(fx, &base);
    sd_buf_reset(&buf);
    tc_gzip_member(d.csv.data, d.csv.len, &buf); /* one member: the middle is deflate data */
    buf.data[buf.len / 2] ^= 0x55;
    bad = tc_src_of(&buf);
    tc_check_failure(fx, &bad, SD_ECORRUPT, &base);
    tc_data_free(&base);

    /* malformed CSV (unquoted field) */
    tc_import_base(fx, &base);
    sd_buf_reset(&buf);
    assert_int_equal(sd_buf_append_str(&buf, "\"x\",\"y\",\"z\"\n\"x\",y,\"z\"\n"), 0);
    bad = tc_src_of(&buf);
    tc_check_failure(fx, &bad, SD_ECORRUPT, &base);
    tc_data_free(&base);

    /* the source fails part-way */
    tc_import_base(fx, &base);
    bad = tc_src_of(&d.csv);
    bad.fail_at = d.csv.len / 2;
    bad.fail_rc = -EIO;
    tc_check_failure(fx, &bad, -EIO, &base);
    tc_data_free(&base);

    sd_buf_fini(&buf);
    tc_data_free(&d);
}

/* Import creates a missing table as ensure_table would, and refuses one with other
 * columns without importing anything. */
static void tc_test_import_ensures_table(void **state)
{
    struct tc_fixture *fx = *state;
    static const char *const other[] = {"id", "other"};
    struct tc_data d;
    struct tc_src src;
    struct sd_import_slice s;
    struct sd_buf err = SD_BUF_INIT;
    struct tc_table t;

    tc_data_make(&d, "d", 5);
    src = tc_src_of(&d.csv);
    s = tc_slice("slice-d", &src);
    assert_int_equal(tc_import(fx, 1, "in.c-new.t", &s, 1), 5);
    t = tc_read(fx, 1, "in.c-new.t");
    tc_assert_columns(&t, tc_cols, TC_NCOLS);
    tc_assert_rows_at(&t, 0, &d);
    tc_table_free(&t);

    assert_int_equal(sd_tables_ensure_table(fx->t, 1, "in.c-b.o", TC_SCHEMA(other, 2), &err), 0);
    src = tc_src_of(&d.csv);
    s = tc_slice("slice-e", &src);
    assert_int_equal(
        sd_tables_import(fx->t, 1, "in.c-b.o", TC_SCHEMA(tc_cols, TC_NCOLS), &s, 1, NULL, &err),
        SD_ECONFLICT);
    assert_non_null(strstr(err.data, "other"));
    assert_int_equal(src.reads, 0);
    assert_int_equal(sd_tables_is_imported(fx->t, 1, "slice-e"), 0);
    assert_int_equal(tc_nrows(fx, 1, "in.c-b.o"), 0);
    sd_buf_fini(&err);
    tc_data_free(&d);
}

/* Empty slices (no bytes, an empty gzip member) are imported with no rows. */
static void tc_test_empty_slices(void **state)
{
    struct tc_fixture *fx = *state;
    struct sd_buf empty = SD_BUF_INIT;
    struct sd_buf gz = SD_BUF_INIT;
    struct tc_src s1, s2;
    struct sd_import_slice s[2];

    tc_gzip_member("", 0, &gz);
    s1 = tc_src_of(&empty);
    s2 = tc_src_of(&gz);
    s[0] = tc_slice("slice-empty", &s1);
    s[1] = tc_slice("slice-empty-gz", &s2);
    assert_int_equal(tc_import(fx, 1, "in.c-b.t", s, 2), 0);
    assert_int_equal(sd_tables_is_imported(fx->t, 1, "slice-empty"), 1);
    assert_int_equal(sd_tables_is_imported(fx->t, 1, "slice-empty-gz"), 1);
    assert_int_equal(tc_nrows(fx, 1, "in.c-b.t"), 0);
    sd_buf_fini(&empty);
    sd_buf_fini(&gz);
}

/* Values with every byte but NUL, big values and many rows survive byte-exact. */
static void tc_test_byte_exact_values(void **state)
{
    struct tc_fixture *fx = *state;
    static const char *const cols[] = {"v"};
    enum { NROWS = 5000 };
    char **vals = calloc(NROWS, sizeof(char *));
    struct tc_rows r;
    struct sd_buf csv = SD_BUF_INIT;
    struct sd_buf gz = SD_BUF_INIT;
    struct tc_src src;
    struct sd_import_slice s;
    struct sd_buf err = SD_BUF_INIT;
    struct tc_table t;
    uint64_t rows = 0;

    assert_non_null(vals);
    for (size_t i = 0; i < NROWS; i++) {
        size_t len = i == 0 ? 255 : (i == 1 ? 300000 : i % 64);
        vals[i] = malloc(len + 1);
        assert_non_null(vals[i]);
        for (size_t k = 0; k < len; k++) {
            vals[i][k] = (char)(1 + (i * 131 + k * 7) % 255); /* 1..255 */
        }
        if (i == 0) {
            for (size_t k = 0; k < len; k++) {
                vals[i][k] = (char)(k + 1);
            }
        }
        vals[i][len] = '\0';
    }
    r.nrows = NROWS;
    r.ncols = 1;
    r.v = (const char *const *)vals;
    r.lens = NULL;
    tc_csv(&r, &csv);
    tc_gzip(csv.data, csv.len, 65536, &gz);
    src = tc_src_of(&gz);
    src.chunk = 1000;
    s = tc_slice("slice-bytes", &src);
    assert_int_equal(
        sd_tables_import(fx->t, 7, "in.c-b.bytes", TC_SCHEMA(cols, 1), &s, 1, &rows, &err), 0);
    assert_int_equal(rows, NROWS);
    t = tc_read(fx, 7, "in.c-b.bytes");
    assert_int_equal(t.nrows, NROWS);
    tc_assert_values_at(&t, 0, vals, NROWS, 1);
    tc_table_free(&t);
    for (size_t i = 0; i < NROWS; i++) {
        free(vals[i]);
    }
    free(vals);
    sd_buf_fini(&csv);
    sd_buf_fini(&gz);
    sd_buf_fini(&err);
}

#define TC_THREADS 4
#define TC_ROUNDS 4

struct tc_thread_arg {
    struct sd_tables *t;
    const struct tc_data *d;
    pthread_barrier_t *barrier;
    uint64_t rows[TC_ROUNDS];
    int rc[TC_ROUNDS];
};

static void *tc_import_main(void *p)
{
    struct tc_thread_arg *a = p;

    for (int i = 0; i < TC_ROUNDS; i++) {
        struct tc_src src = tc_src_of(&a->d->gz);
        char key[32];
        struct sd_import_slice s;

        snprintf(key, sizeof(key), "slice-race-%d", i);
        s = tc_slice(key, &src);
        src.chunk = 256; /* slow enough for the imports to overlap */
        pthread_barrier_wait(a->barrier);
        a->rc[i] = sd_tables_import(a->t, 1, "in.c-b.t", TC_SCHEMA(tc_cols, TC_NCOLS), &s, 1,
                                    &a->rows[i], NULL);
    }
    return NULL;
}

/* Threads importing the same slice at once, half on the shared handle and half on handles of
 * their own (separate connections): the rows land once, and no import fails. The first round
 * also races on creating the table. */
static void tc_test_concurrent_same_slice(void **state)
{
    struct tc_fixture *fx = *state;
    pthread_t th[TC_THREADS];
    struct tc_thread_arg args[TC_THREADS];
    struct sd_tables *own[TC_THREADS] = {NULL};
    pthread_barrier_t barrier;
    struct tc_data d;
    struct tc_table t;

    tc_data_make(&d, "race", 3000);
    pthread_barrier_init(&barrier, NULL, TC_THREADS);
    memset(args, 0, sizeof(args));
    for (int i = 0; i < TC_THREADS; i++) {
        if (i % 2 == 1) {
            assert_int_equal(fx->be->open(fx->dir, &own[i]), 0);
        }
        args[i].t = own[i] != NULL ? own[i] : fx->t;
        args[i].d = &d;
        args[i].barrier = &barrier;
    }
    for (int i = 0; i < TC_THREADS; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, tc_import_main, &args[i]), 0);
    }
    for (int i = 0; i < TC_THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    for (int r = 0; r < TC_ROUNDS; r++) {
        uint64_t total = 0;
        for (int i = 0; i < TC_THREADS; i++) {
            assert_int_equal(args[i].rc[r], 0);
            assert_true(args[i].rows[r] == 0 || args[i].rows[r] == 3000);
            total += args[i].rows[r];
        }
        assert_int_equal(total, 3000);
    }
    for (int i = 0; i < TC_THREADS; i++) {
        sd_tables_close(own[i]);
    }
    t = tc_read(fx, 1, "in.c-b.t");
    assert_int_equal(t.nrows, 3000 * TC_ROUNDS);
    for (int r = 0; r < TC_ROUNDS; r++) {
        tc_assert_rows_at(&t, 3000 * (size_t)r, &d);
    }
    tc_table_free(&t);
    pthread_barrier_destroy(&barrier);
    tc_data_free(&d);
}

/* drop_table removes the table and its ledger rows (its slices import again); a missing table
 * is fine; other tables and their ledger rows stay. */
static void tc_test_drop_table(void **state)
{
    struct tc_fixture *fx = *state;
    struct tc_data a, b;
    struct tc_src sa, sb;
    struct sd_import_slice s;
    struct tc_table t;
    uint64_t rows = 0;

    tc_data_make(&a, "a", 12);
    tc_data_make(&b, "b", 8);
    assert_int_equal(sd_tables_drop_table(fx->t, 1, "in.c-b.none"), 0);
    assert_int_equal(sd_tables_drop_table(fx->t, 5, "in.c-b.none"), 0);
    sa = tc_src_of(&a.gz);
    s = tc_slice("slice-a", &sa);
    assert_int_equal(tc_import(fx, 1, "in.c-b.t", &s, 1), 12);
    sb = tc_src_of(&b.gz);
    s = tc_slice("slice-b", &sb);
    assert_int_equal(
        sd_tables_import(fx->t, 1, "in.c-b.keep", TC_SCHEMA(tc_cols, TC_NCOLS), &s, 1, &rows, NULL),
        0);
    assert_int_equal(rows, 8);

    assert_int_equal(sd_tables_drop_table(fx->t, 1, "in.c-b.t"), 0);
    assert_int_equal(fx->be->read_table(fx->dir, 1, "in.c-b.t", &t), SD_ENOTFOUND);
    assert_int_equal(sd_tables_is_imported(fx->t, 1, "slice-a"), 0);
    assert_int_equal(sd_tables_is_imported(fx->t, 1, "slice-b"), 1);
    assert_int_equal(tc_nrows(fx, 1, "in.c-b.keep"), 8);
    assert_int_equal(sd_tables_drop_table(fx->t, 1, "in.c-b.t"), 0);

    sa = tc_src_of(&a.gz);
    s = tc_slice("slice-a", &sa);
    assert_int_equal(tc_import(fx, 1, "in.c-b.t", &s, 1), 12);
    t = tc_read(fx, 1, "in.c-b.t");
    assert_int_equal(t.nrows, 12);
    tc_assert_rows_at(&t, 0, &a);
    tc_table_free(&t);
    tc_data_free(&a);
    tc_data_free(&b);
}

/* The bookkeeping lives in "_streamd_" tables; the user's table has only the mapping columns
 * and only the imported rows. */
static void tc_test_bookkeeping_separate(void **state)
{
    struct tc_fixture *fx = *state;
    struct tc_data d;
    struct tc_src src;
    struct sd_import_slice s;
    struct tc_table t;
    char **names = NULL;
    size_t n = 0;
    int user = 0;

    assert_int_equal(fx->be->list_tables(fx->dir, 1, &names, &n), 0);
    assert_int_equal(n, 0);
    tc_names_free(names, n);

    tc_data_make(&d, "d", 9);
    src = tc_src_of(&d.gz);
    s = tc_slice("slice-d", &src);
    assert_int_equal(tc_import(fx, 1, "in.c-b.t", &s, 1), 9);
    names = NULL;
    assert_int_equal(fx->be->list_tables(fx->dir, 1, &names, &n), 0);
    assert_true(n >= 2);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], "in.c-b.t") == 0) {
            user++;
        } else {
            assert_memory_equal(names[i], SD_TABLES_INTERNAL_PREFIX,
                                strlen(SD_TABLES_INTERNAL_PREFIX));
        }
    }
    assert_int_equal(user, 1);
    tc_names_free(names, n);

    t = tc_read(fx, 1, "in.c-b.t");
    tc_assert_columns(&t, tc_cols, TC_NCOLS);
    assert_int_equal(t.nrows, 9);
    tc_assert_rows_at(&t, 0, &d);
    tc_table_free(&t);
    tc_data_free(&d);
}

/* Projects are separate: the same slice key and table id in two projects are two imports. */
static void tc_test_projects_separate(void **state)
{
    struct tc_fixture *fx = *state;
    struct tc_data d;
    struct tc_src src;
    struct sd_import_slice s;

    tc_data_make(&d, "d", 6);
    src = tc_src_of(&d.gz);
    s = tc_slice("slice-x", &src);
    assert_int_equal(tc_import(fx, 1, "in.c-b.t", &s, 1), 6);
    src = tc_src_of(&d.gz);
    assert_int_equal(tc_import(fx, 2, "in.c-b.t", &s, 1), 6);
    assert_int_equal(sd_tables_is_imported(fx->t, 1, "slice-x"), 1);
    assert_int_equal(sd_tables_is_imported(fx->t, 2, "slice-x"), 1);
    assert_int_equal(sd_tables_is_imported(fx->t, 3, "slice-x"), 0);
    assert_int_equal(tc_nrows(fx, 1, "in.c-b.t"), 6);
    assert_int_equal(tc_nrows(fx, 2, "in.c-b.t"), 6);
    assert_int_equal(sd_tables_drop_table(fx->t, 2, "in.c-b.t"), 0);
    assert_int_equal(tc_nrows(fx, 1, "in.c-b.t"), 6);
    assert_int_equal(sd_tables_is_imported(fx->t, 1, "slice-x"), 1);
    tc_data_free(&d);
}

/* A primary key is part of the schema: the same key again is fine, no key, another key or a
 * key on a table created without one conflict (ensure and check alike), with a message. */
static void tc_test_primary_key_schema(void **state)
{
    struct tc_fixture *fx = *state;
    static const unsigned char pk_id[] = {1, 0, 0}, pk_value[] = {0, 1, 0};
    static const unsigned char pk_both[] = {1, 1, 0}, pk_none[] = {0, 0, 0};
    struct sd_buf err = SD_BUF_INIT;
    struct tc_table t;

    assert_int_equal(
        sd_tables_ensure_table(fx->t, 1, "in.c-b.pk", TC_SCHEMA_PK(tc_cols, TC_NCOLS, pk_id), &err),
        0);
    t = tc_read(fx, 1, "in.c-b.pk");
    tc_assert_columns(&t, tc_cols, TC_NCOLS);
    tc_table_free(&t);
    assert_int_equal(
        sd_tables_ensure_table(fx->t, 1, "in.c-b.pk", TC_SCHEMA_PK(tc_cols, TC_NCOLS, pk_id), &err),
        0);
    assert_int_equal(
        sd_tables_check_table(fx->t, 1, "in.c-b.pk", TC_SCHEMA_PK(tc_cols, TC_NCOLS, pk_id), &err),
        0);
    /* all-zero flags are no key at all */
    assert_int_equal(sd_tables_ensure_table(fx->t, 1, "in.c-b.pk",
                                            TC_SCHEMA_PK(tc_cols, TC_NCOLS, pk_none), &err),
                     SD_ECONFLICT);
    sd_buf_reset(&err);
    assert_int_equal(
        sd_tables_ensure_table(fx->t, 1, "in.c-b.pk", TC_SCHEMA(tc_cols, TC_NCOLS), &err),
        SD_ECONFLICT);
    assert_non_null(strstr(sd_buf_cstr(&err), "in.c-b.pk"));
    sd_buf_reset(&err);
    assert_int_equal(sd_tables_check_table(fx->t, 1, "in.c-b.pk",
                                           TC_SCHEMA_PK(tc_cols, TC_NCOLS, pk_value), &err),
                     SD_ECONFLICT);
    assert_non_null(strstr(sd_buf_cstr(&err), "in.c-b.pk"));
    assert_int_equal(sd_tables_ensure_table(fx->t, 1, "in.c-b.pk",
                                            TC_SCHEMA_PK(tc_cols, TC_NCOLS, pk_both), &err),
                     SD_ECONFLICT);
    /* a table made without a key does not gain one */
    assert_int_equal(
        sd_tables_ensure_table(fx->t, 1, "in.c-b.nopk", TC_SCHEMA(tc_cols, TC_NCOLS), &err), 0);
    sd_buf_reset(&err);
    assert_int_equal(sd_tables_ensure_table(fx->t, 1, "in.c-b.nopk",
                                            TC_SCHEMA_PK(tc_cols, TC_NCOLS, pk_id), &err),
                     SD_ECONFLICT);
    assert_non_null(strstr(sd_buf_cstr(&err), "in.c-b.nopk"));
    assert_int_equal(sd_tables_check_table(fx->t, 1, "in.c-b.nopk",
                                           TC_SCHEMA_PK(tc_cols, TC_NCOLS, pk_none), &err),
                     0);
    /* an import with another key fails and commits nothing */
    {
        static const char *const v[] = {"k", "v", "n"};
        struct tc_rows r = {1, TC_NCOLS, v, NULL};
        struct sd_buf csv = SD_BUF_INIT;
        struct tc_src src;
        struct sd_import_slice sl;
        uint64_t rows = 7;

        tc_csv(&r, &csv);
        src = tc_src_of(&csv);
        sl = tc_slice("slice-pk-conflict", &src);
        assert_int_equal(sd_tables_import(fx->t, 1, "in.c-b.pk", TC_SCHEMA(tc_cols, TC_NCOLS), &sl,
                                          1, &rows, &err),
                         SD_ECONFLICT);
        assert_int_equal(rows, 0);
        assert_int_equal(sd_tables_is_imported(fx->t, 1, "slice-pk-conflict"), 0);
        assert_int_equal(tc_nrows(fx, 1, "in.c-b.pk"), 0);
        sd_buf_fini(&csv);
    }
    sd_buf_fini(&err);
}

/* The one row of t whose cells at key columns (flags) equal key[] (row-major values as in
 * tc_rows); fails unless exactly one row matches. */
static size_t tc_find_row(const struct tc_table *t, const unsigned char *pk, const char *const *key)
{
    size_t found = SIZE_MAX;

    for (size_t i = 0; i < t->nrows; i++) {
        int same = 1;
        for (size_t j = 0; j < t->ncols && same; j++) {
            same = !pk[j] || (!t->cells[i * t->ncols + j].is_null &&
                              strcmp(t->cells[i * t->ncols + j].p, key[j]) == 0);
        }
        if (same) {
            assert_int_equal(found, SIZE_MAX);
            found = i;
        }
    }
    assert_int_not_equal(found, SIZE_MAX);
    return found;
}

/* Asserts that t holds exactly the rows of want (nwant x t->ncols, row-major), any order. */
static void tc_assert_rows_by_key(const struct tc_table *t, const unsigned char *pk,
                                  const char *const *want, size_t nwant)
{
    assert_int_equal(t->nrows, nwant);
    for (size_t i = 0; i < nwant; i++) {
        size_t r = tc_find_row(t, pk, want + i * t->ncols);
        for (size_t j = 0; j < t->ncols; j++) {
            assert_false(t->cells[r * t->ncols + j].is_null);
            assert_string_equal(t->cells[r * t->ncols + j].p, want[i * t->ncols + j]);
        }
    }
}

/* Imports rows (ncols wide) as one plain slice named key with schema; returns the row count. */
static uint64_t tc_import_rows(struct tc_fixture *fx, const char *table_id,
                               const struct sd_table_schema *schema, const char *key,
                               const char *const *v, size_t nrows)
{
    struct tc_rows r = {nrows, schema->ncolumns, v, NULL};
    struct sd_buf csv = SD_BUF_INIT, err = SD_BUF_INIT;
    struct tc_src src;
    struct sd_import_slice sl;
    uint64_t rows = 12345;
    int rc;

    tc_csv(&r, &csv);
    src = tc_src_of(&csv);
    src.chunk = 5;
    sl = tc_slice(key, &src);
    rc = sd_tables_import(fx->t, 1, table_id, schema, &sl, 1, &rows, &err);
    if (rc != 0) {
        fail_msg("import: %s: %s", sd_strerror(rc), err.len > 0 ? err.data : "");
    }
    sd_buf_fini(&csv);
    sd_buf_fini(&err);
    return rows;
}

/* With a primary key an import upserts: within one slice, across the slices of one call and
 * across calls, the last row with a key wins; a retried slice changes nothing (exactly once:
 * replaying the old slice would bring its old values back). */
static void tc_test_primary_key_upsert(void **state)
{
    struct tc_fixture *fx = *state;
    static const unsigned char pk[] = {1, 0, 0};
    static const char *const a[] = {
        "k1", "a1", "", "k2", "a2", "x", "k1", "a1-again", "y", "k3", "", "",
    };
    static const char *const b[] = {"k2", "b2", "", "k4", "b4", "z"};
    static const char *const c[] = {"k4", "c4", "w", "k1", "c1", "q"};
    static const char *const after_a[] = {"k1", "a1-again", "y", "k2", "a2", "x", "k3", "", ""};
    static const char *const after_bc[] = {"k1", "c1", "q", "k2", "b2", "",
                                           "k3", "",   "",  "k4", "c4", "w"};
    const struct sd_table_schema *schema = TC_SCHEMA_PK(tc_cols, TC_NCOLS, pk);
    struct sd_buf csv_b = SD_BUF_INIT, csv_c = SD_BUF_INIT, err = SD_BUF_INIT;
    struct tc_rows rb = {2, TC_NCOLS, b, NULL}, rc_rows = {2, TC_NCOLS, c, NULL};
    struct tc_src sb, sc;
    struct sd_import_slice s[2];
    struct tc_table t;
    uint64_t rows = 0;

    assert_int_equal(tc_import_rows(fx, "in.c-b.pk", schema, "slice-a", a, 4), 4);
    t = tc_read(fx, 1, "in.c-b.pk");
    tc_assert_columns(&t, tc_cols, TC_NCOLS);
    tc_assert_rows_by_key(&t, pk, after_a, 3);
    tc_table_free(&t);

    /* two slices in one call, in order: c's k4 replaces b's */
    tc_csv(&rb, &csv_b);
    tc_csv(&rc_rows, &csv_c);
    sb = tc_src_of(&csv_b);
    sc = tc_src_of(&csv_c);
    s[0] = tc_slice("slice-b", &sb);
    s[1] = tc_slice("slice-c", &sc);
    assert_int_equal(sd_tables_import(fx->t, 1, "in.c-b.pk", schema, s, 2, &rows, &err), 0);
    assert_int_equal(rows, 4);
    t = tc_read(fx, 1, "in.c-b.pk");
    tc_assert_rows_by_key(&t, pk, after_bc, 4);
    tc_table_free(&t);

    /* slice-a again: already in the ledger, its old values do not come back */
    assert_int_equal(tc_import_rows(fx, "in.c-b.pk", schema, "slice-a", a, 4), 0);
    t = tc_read(fx, 1, "in.c-b.pk");
    tc_assert_rows_by_key(&t, pk, after_bc, 4);
    tc_table_free(&t);
    assert_int_equal(sd_tables_is_imported(fx->t, 1, "slice-c"), 1);
    sd_buf_fini(&csv_b);
    sd_buf_fini(&csv_c);
    sd_buf_fini(&err);
}

/* A key of several columns (not the first ones) compares them together; a key of every
 * column keeps one copy of a repeated row; values are compared byte-exact ("a" is not "A"). */
static void tc_test_primary_key_composite(void **state)
{
    struct tc_fixture *fx = *state;
    static const char *const cols[] = {"value", "k1", "k2"};
    static const unsigned char pk[] = {0, 1, 1}, pk_all[] = {1, 1, 1};
    static const char *const v[] = {
        "1", "a", "x", "2", "a", "y", "3", "A", "x", "4", "a", "x", "5", "", "", "6", "", "",
    };
    static const char *const want[] = {"4", "a", "x", "2", "a", "y", "3", "A", "x", "6", "", ""};
    static const char *const dup[] = {"1", "a", "x", "1", "a", "x", "1", "a", "X"};
    static const char *const want_all[] = {"1", "a", "x", "2", "a", "y", "3", "A", "x", "4", "a",
                                           "x", "5", "",  "",  "6", "",  "",  "1", "a", "X"};
    struct tc_table t;

    assert_int_equal(tc_import_rows(fx, "in.c-b.comp", TC_SCHEMA_PK(cols, 3, pk), "s1", v, 6), 6);
    t = tc_read(fx, 1, "in.c-b.comp");
    tc_assert_columns(&t, cols, 3);
    tc_assert_rows_by_key(&t, pk, want, 4);
    tc_table_free(&t);

    assert_int_equal(tc_import_rows(fx, "in.c-b.all", TC_SCHEMA_PK(cols, 3, pk_all), "s2", v, 6),
                     6);
    assert_int_equal(tc_import_rows(fx, "in.c-b.all", TC_SCHEMA_PK(cols, 3, pk_all), "s3", dup, 3),
                     3);
    t = tc_read(fx, 1, "in.c-b.all");
    tc_assert_rows_by_key(&t, pk_all, want_all, 7);
    tc_table_free(&t);
}

/* The whole suite for one backend, for a cmocka test array. */
#define TC_TEST(f, be) cmocka_unit_test_prestate_setup_teardown(f, tc_setup, tc_teardown, (be))
#define TC_CONTRACT_TESTS(be)                                                                      \
    TC_TEST(tc_test_ensure_table, be), TC_TEST(tc_test_check_table, be),                           \
        TC_TEST(tc_test_invalid_args, be), TC_TEST(tc_test_import_two_slices, be),                 \
        TC_TEST(tc_test_reimport, be), TC_TEST(tc_test_failures_commit_nothing, be),               \
        TC_TEST(tc_test_import_ensures_table, be), TC_TEST(tc_test_empty_slices, be),              \
        TC_TEST(tc_test_byte_exact_values, be), TC_TEST(tc_test_concurrent_same_slice, be),        \
        TC_TEST(tc_test_drop_table, be), TC_TEST(tc_test_bookkeeping_separate, be),                \
        TC_TEST(tc_test_projects_separate, be), TC_TEST(tc_test_primary_key_schema, be),           \
        TC_TEST(tc_test_primary_key_upsert, be), TC_TEST(tc_test_primary_key_composite, be)

#endif
