/* fuzz_csv_reader.c: fuzz target for tables/sd_csv_reader (the import path's parser of staged
 * slices, plain or multi-member gzip).
 *
 * Input: byte 0 = flags (bits 0-3: the source returns at most 2^(k-1) bytes per read, 0 = no
 * limit; bits 4-5: the number of gzip members, 1-4, for the gzip re-read), then the data. The
 * data is read to the end and every row is re-encoded with the real CSV writer. Properties:
 * - each row has at least one field and every view has a non-NULL pointer;
 * - an error is SD_ECORRUPT with a message naming an offset, and it is sticky;
 * - accepted plain input is canonical: re-encoding the rows gives back exactly the input, and
 *   after an error the re-encoded rows are a prefix of the input;
 * - unless the data is itself gzip, the same data compressed into several members (cut at
 *   points taken from the input) and read with another chunking gives the same rows, the
 *   same return code and the same message (offsets are in the decoded stream). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <zlib.h>

#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "pipeline/sd_csv.h"
#include "tables/sd_csv_reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_csv_reader: check failed: %s (line %d)\n", #cond, __LINE__);     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct fz_src {
    const uint8_t *p;
    size_t len;
    size_t pos;
    size_t chunk;
    int ended;
};

static ssize_t fz_read(void *arg, void *buf, size_t len)
{
    struct fz_src *s = arg;
    size_t n = s->len - s->pos;

    CHECK(!s->ended); /* never called again after the end */
    if (n > len) {
        n = len;
    }
    if (s->chunk > 0 && n > s->chunk) {
        n = s->chunk;
    }
    if (n > 0) {
        memcpy(buf, s->p + s->pos, n);
    }
    s->pos += n;
    if (n == 0) {
        s->ended = 1;
    }
    return (ssize_t)n;
}

struct fz_result {
    int rc;
    char msg[256];
    struct sd_buf csv; /* the rows read, re-encoded */
};

static void fz_run(const uint8_t *p, size_t len, size_t chunk, struct fz_result *res)
{
    struct fz_src src = {p, len, 0, chunk, 0};
    struct sd_csv_reader *r = NULL;
    const struct sd_str *f;
    size_t nf;
    uint64_t rows = 0;
    int rc;

    sd_buf_init(&res->csv);
    CHECK(sd_csv_reader_open(fz_read, &src, &r) == 0);
    while ((rc = sd_csv_reader_next(r, &f, &nf)) == 1) {
        CHECK(nf >= 1 && nf <= SD_CSV_READER_MAX_FIELDS);
        for (size_t i = 0; i < nf; i++) {
            CHECK(f[i].p != NULL);
            CHECK(sd_csv_field(&res->csv, f[i].p, f[i].len, i == 0) == 0);
        }
        CHECK(sd_csv_end_row(&res->csv) == 0);
        rows++;
        CHECK(sd_csv_reader_rows(r) == rows);
    }
    res->rc = rc;
    snprintf(res->msg, sizeof(res->msg), "%s", sd_csv_reader_error(r));
    if (rc == 0) {
        CHECK(res->msg[0] == '\0');
        CHECK(sd_csv_reader_next(r, &f, &nf) == 0);
    } else {
        CHECK(rc == SD_ECORRUPT);
        CHECK(strstr(res->msg, "offset") != NULL);
        CHECK(sd_csv_reader_next(r, &f, &nf) == rc);
    }
    sd_csv_reader_close(r);
}

/* Appends p[0..len) as one gzip member. */
static void fz_gzip_member(const uint8_t *p, size_t len, struct sd_buf *out)
{
    z_stream zs;
    uLong bound;

    memset(&zs, 0, sizeof(zs));
    CHECK(deflateInit2(&zs, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    bound = deflateBound(&zs, (uLong)len) + 32;
    CHECK(sd_buf_reserve(out, bound) == 0);
    zs.next_in = (Bytef *)(uintptr_t)p;
    zs.avail_in = (uInt)len;
    zs.next_out = (Bytef *)out->data + out->len;
    zs.avail_out = (uInt)bound;
    CHECK(deflate(&zs, Z_FINISH) == Z_STREAM_END);
    out->len += bound - zs.avail_out;
    deflateEnd(&zs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_result plain, gz;
    struct sd_buf packed = SD_BUF_INIT;
    size_t chunk;
    size_t members;
    const uint8_t *p;
    size_t len;
    int is_gzip;

    if (size < 1) {
        return 0;
    }
    chunk = (data[0] & 0x0f) == 0 ? 0 : (size_t)1 << ((data[0] & 0x0f) - 1);
    members = 1 + ((data[0] >> 4) & 3);
    p = data + 1;
    len = size - 1;
    is_gzip = len >= 2 && p[0] == 0x1f && p[1] == 0x8b;

    fz_run(p, len, chunk, &plain);
    if (!is_gzip) {
        if (plain.rc == 0) {
            CHECK(plain.csv.len == len);
            CHECK(len == 0 || memcmp(plain.csv.data, p, len) == 0);
        } else {
            CHECK(plain.csv.len <= len);
            CHECK(plain.csv.len == 0 || memcmp(plain.csv.data, p, plain.csv.len) == 0);
        }

        /* the same bytes as gzip members, cut at points derived from the data */
        for (size_t m = 0, at = 0; m < members; m++) {
            size_t cut = m + 1 == members ? len : (len == 0 ? 0 : (size_t)p[m % len] % (len + 1));
            if (cut < at) {
                cut = at;
            }
            fz_gzip_member(p + at, cut - at, &packed);
            at = cut;
        }
        fz_run((const uint8_t *)packed.data, packed.len, chunk == 0 ? 1 : 0, &gz);
        CHECK(gz.rc == plain.rc);
        CHECK(strcmp(gz.msg, plain.msg) == 0);
        CHECK(gz.csv.len == plain.csv.len);
        CHECK(gz.csv.len == 0 || memcmp(gz.csv.data, plain.csv.data, gz.csv.len) == 0);
        sd_buf_fini(&gz.csv);
    }
    sd_buf_fini(&plain.csv);
    sd_buf_fini(&packed);
    return 0;
}
