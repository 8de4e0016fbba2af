/* test_utf8.c: unit tests of core/sd_utf8: every code point encodes, decodes and validates back;
 * overlong forms, surrogates, values above U+10FFFF, stray continuation bytes and truncated
 * sequences are invalid; counting code points agrees with decoding, at every alignment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "core/sd_utf8.h"

static void test_round_trip_every_code_point(void **state)
{
    char buf[4];

    (void)state;
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        uint32_t back = 0;
        size_t n;
        if (cp >= 0xD800 && cp <= 0xDFFF) {
            continue;
        }
        n = sd_utf8_encode(cp, buf);
        assert_int_equal(n, cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4);
        assert_int_equal(sd_utf8_seq_len(buf, n), n);
        assert_int_equal(sd_utf8_decode(buf, &back), n);
        assert_int_equal(back, cp);
        assert_int_equal(sd_utf8_count(buf, n), 1);
    }
}

static void test_unencodable_become_replacement(void **state)
{
    char buf[4];
    uint32_t cp = 0;

    (void)state;
    assert_int_equal(sd_utf8_encode(0xD800, buf), 3);
    sd_utf8_decode(buf, &cp);
    assert_int_equal(cp, 0xFFFD);
    assert_int_equal(sd_utf8_encode(0x110000, buf), 3);
    sd_utf8_decode(buf, &cp);
    assert_int_equal(cp, 0xFFFD);
}

static void test_invalid_sequences(void **state)
{
    static const char *const bad[] = {
        "\x80",             /* stray continuation byte */
        "\xC0\xAF",         /* overlong '/' */
        "\xC1\xBF",         /* overlong */
        "\xE0\x80\xAF",     /* overlong, 3 bytes */
        "\xED\xA0\x80",     /* surrogate U+D800 */
        "\xED\xBF\xBF",     /* surrogate U+DFFF */
        "\xF0\x80\x80\xAF", /* overlong, 4 bytes */
        "\xF4\x90\x80\x80", /* U+110000 */
        "\xF5\x80\x80\x80", /* lead byte beyond F4 */
        "\xFF",             /* never valid */
        "\xE2\x82",         /* truncated euro sign */
        "\xC3",             /* truncated */
        "\xC3\x28",         /* bad continuation */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(sd_utf8_seq_len(bad[i], strlen(bad[i])), 0);
        assert_int_equal(sd_utf8_valid(bad[i], strlen(bad[i])), 0);
    }
    assert_int_equal(sd_utf8_valid("", 0), 1);
    assert_int_equal(sd_utf8_valid("a\0b", 3), 1); /* NUL is a code point */
    assert_int_equal(sd_utf8_valid("ok \xE2\x82\xAC \xF0\x9F\x98\x80", 11), 1);
}

static void test_count_at_every_alignment(void **state)
{
    /* ASCII, 2-, 3- and 4-byte sequences mixed, long enough for the 8-byte loop */
    static const char text[] = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80 the quick brown fox "
                               "\xC3\xA9\xC3\xA9\xC3\xA9\xE6\x97\xA5\xE6\x9C\xAC end";
    size_t len = sizeof(text) - 1;

    (void)state;
    for (size_t start = 0; start < len; start++) {
        size_t naive = 0;
        if (sd_utf8_seq_len(text + start, len - start) == 0) {
            continue; /* not a sequence start */
        }
        for (size_t i = start; i < len;) {
            uint32_t cp;
            i += sd_utf8_decode(text + i, &cp);
            naive++;
        }
        assert_int_equal(sd_utf8_count(text + start, len - start), naive);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_code_point),
        cmocka_unit_test(test_unencodable_become_replacement),
        cmocka_unit_test(test_invalid_sequences),
        cmocka_unit_test(test_count_at_every_alignment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
