/* test_slice_recover.c: unit tests of the CSV row tracking of pipeline/sd_slice_recover (a
 * static helper, so the .c is included): the memchr-based scan counts the same rows, row-end
 * offsets, quote state and NUL cut as a plain byte-by-byte reading of the rule ('"' toggles
 * quotes, '\n' outside quotes ends a row, a NUL starts garbage), over random CSV-like data fed
 * in random chunks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../src/pipeline/sd_slice_recover.c"

/* The rule, one byte at a time. */
static void ref_scan(struct sd__rows *r, const unsigned char *p, size_t n)
{
    if (r->saw_nul) {
        r->bytes += n;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '"') {
            r->in_quotes = !r->in_quotes;
        } else if (p[i] == '\n' && !r->in_quotes) {
            r->rows++;
            r->bytes_at_row_end = r->bytes + i + 1;
        } else if (p[i] == '\0') {
            r->saw_nul = 1;
            r->at_row_end = 0;
            r->bytes += n;
            return;
        }
    }
    if (n > 0) {
        r->at_row_end = (p[n - 1] == '\n' && !r->in_quotes);
    }
    r->bytes += n;
}

static uint64_t rnd_state = 88172645463325252ull;

static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

static void assert_same(const struct sd__rows *a, const struct sd__rows *b)
{
    assert_int_equal(a->in_quotes, b->in_quotes);
    assert_int_equal(a->at_row_end, b->at_row_end);
    assert_int_equal(a->saw_nul, b->saw_nul);
    assert_int_equal(a->rows, b->rows);
    assert_int_equal(a->bytes_at_row_end, b->bytes_at_row_end);
    assert_int_equal(a->bytes, b->bytes);
}

static void test_scan_matches_the_rule(void **state)
{
    static unsigned char buf[1 << 16];

    (void)state;
    for (int round = 0; round < 2000; round++) {
        struct sd__rows fast, ref;
        size_t len = rnd() % sizeof(buf), pos = 0;
        int with_nul = round % 7 == 0;
        for (size_t i = 0; i < len; i++) {
            uint64_t x = rnd() % 100;
            /* long field runs, doubled quotes, separators and row ends, rarely a NUL */
            buf[i] = x < 8 ? '"' : x < 11 ? '\n' : x < 14 ? ',' : 'a' + (unsigned char)(x % 26);
            if (with_nul && rnd() % 5000 == 0) {
                buf[i] = '\0';
            }
        }
        sd__rows_init(&fast);
        sd__rows_init(&ref);
        while (pos <= len) {
            size_t chunk = len - pos > 0 ? rnd() % (len - pos + 1) : 0;
            sd__rows_scan(&fast, buf + pos, chunk);
            ref_scan(&ref, buf + pos, chunk);
            assert_same(&fast, &ref);
            pos += chunk;
            if (chunk == 0 && pos == len) {
                break;
            }
        }
    }
}

/* The quoted forms streamd writes: a newline inside a field is no row end, "" is a quote. */
static void test_scan_quoted_rows(void **state)
{
    const char *csv = "\"a\",\"b\nc\"\n\"say \"\"hi\"\"\",\"\"\n\"x\"";
    struct sd__rows r;

    (void)state;
    sd__rows_init(&r);
    sd__rows_scan(&r, (const unsigned char *)csv, strlen(csv));
    assert_int_equal(r.rows, 2);
    assert_int_equal(r.bytes_at_row_end, strlen(csv) - 3);
    assert_int_equal(r.at_row_end, 0);
    assert_int_equal(r.in_quotes, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_matches_the_rule),
        cmocka_unit_test(test_scan_quoted_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
