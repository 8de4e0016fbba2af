/* test_csv.c: unit tests of pipeline/sd_csv: byte-exact fields and rows for commas, quotes,
 * CR/LF, unicode, empty values, and in-place quoting of a value written into the row. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "core/sd_buf.h"
#include "pipeline/sd_csv.h"

static void assert_buf(const struct sd_buf *b, const char *expected, size_t len)
{
    assert_int_equal(b->len, len);
    assert_memory_equal(b->data, expected, len);
    assert_int_equal(b->data[b->len], '\0');
}

#define ASSERT_BUF(b, lit) assert_buf((b), (lit), sizeof(lit) - 1)

static void test_plain_row(void **state)
{
    struct sd_buf row = SD_BUF_INIT;

    (void)state;
    assert_int_equal(sd_csv_field(&row, "a", 1, 1), 0);
    assert_int_equal(sd_csv_field(&row, "b,c", 3, 0), 0);
    assert_int_equal(sd_csv_field(&row, "", 0, 0), 0);
    assert_int_equal(sd_csv_end_row(&row), 0);
    ASSERT_BUF(&row, "\"a\",\"b,c\",\"\"\n");
    sd_buf_fini(&row);
}

static void test_specials(void **state)
{
    struct sd_buf row = SD_BUF_INIT;
    static const char v1[] = "say \"hi\"";
    static const char v2[] = "line1\r\nline2\n";
    static const char v3[] = "\xc5\xbelu\xc5\xa5ou\xc4\x8dk\xc3\xbd \xf0\x9f\x98\x80";
    static const char v4[] = "\"";
    static const char v5[] = "=1+2 @x\t-";

    (void)state;
    assert_int_equal(sd_csv_field(&row, v1, sizeof(v1) - 1, 1), 0);
    assert_int_equal(sd_csv_field(&row, v2, sizeof(v2) - 1, 0), 0);
    assert_int_equal(sd_csv_field(&row, v3, sizeof(v3) - 1, 0), 0);
    assert_int_equal(sd_csv_field(&row, v4, sizeof(v4) - 1, 0), 0);
    assert_int_equal(sd_csv_field(&row, v5, sizeof(v5) - 1, 0), 0);
    assert_int_equal(sd_csv_end_row(&row), 0);
    ASSERT_BUF(&row,
               "\"say \"\"hi\"\"\",\"line1\r\nline2\n\",\"\xc5\xbelu\xc5\xa5ou\xc4\x8dk\xc3\xbd "
               "\xf0\x9f\x98\x80\",\"\"\"\",\"=1+2 @x\t-\"\n");
    sd_buf_fini(&row);
}

static void test_two_rows_appended(void **state)
{
    struct sd_buf row = SD_BUF_INIT;

    (void)state;
    assert_int_equal(sd_csv_field(&row, "1", 1, 1), 0);
    assert_int_equal(sd_csv_end_row(&row), 0);
    assert_int_equal(sd_csv_field(&row, "2", 1, 1), 0);
    assert_int_equal(sd_csv_field(&row, "x\"", 2, 0), 0);
    assert_int_equal(sd_csv_end_row(&row), 0);
    ASSERT_BUF(&row, "\"1\"\n\"2\",\"x\"\"\"\n");
    sd_buf_fini(&row);
}

/* The value is written raw at the end of the row, then quoted in place. */
static void tail(struct sd_buf *row, const char *v, int first)
{
    size_t start = row->len;

    assert_int_equal(sd_buf_append(row, v, strlen(v)), 0);
    assert_int_equal(sd_csv_field_tail(row, start, first), 0);
}

static void test_field_tail(void **state)
{
    struct sd_buf row = SD_BUF_INIT;
    struct sd_buf ref = SD_BUF_INIT;
    static const char *const values[] = {
        "", "a", "\"", "\"\"", "a\"b\"c", "\"start", "end\"", "x,y\n\r", "{\"k\":\"v\"}",
    };
    size_t n = sizeof(values) / sizeof(values[0]);

    (void)state;
    for (size_t i = 0; i < n; i++) {
        tail(&row, values[i], i == 0);
        assert_int_equal(sd_csv_field(&ref, values[i], strlen(values[i]), i == 0), 0);
        assert_int_equal(row.len, ref.len);
        assert_memory_equal(row.data, ref.data, ref.len);
    }
    /* Empty buffer, first field. */
    sd_buf_fini(&row);
    assert_int_equal(sd_csv_field_tail(&row, 0, 1), 0);
    ASSERT_BUF(&row, "\"\"");
    sd_buf_fini(&row);
    sd_buf_fini(&ref);
}

static void test_binary_bytes_kept(void **state)
{
    struct sd_buf row = SD_BUF_INIT;
    static const char v[] = {'a', '\0', 'b', '\xff'};

    (void)state;
    assert_int_equal(sd_csv_field(&row, v, sizeof(v), 1), 0);
    assert_buf(&row, "\"a\0b\xff\"", 6);
    sd_buf_fini(&row);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_row),         cmocka_unit_test(test_specials),
        cmocka_unit_test(test_two_rows_appended), cmocka_unit_test(test_field_tail),
        cmocka_unit_test(test_binary_bytes_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
