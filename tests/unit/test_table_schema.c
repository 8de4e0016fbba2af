/* test_table_schema.c: unit tests of tables/sd_table_schema: schema checks, comparing a found
 * table's columns and key with a schema, the message lists, and the SQL both backends share. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "core/sd_error.h"
#include "tables/sd_table_schema.h"

static const char *const cols[] = {"id", "quo\"te", "v"};
static const unsigned char key_id[] = {1, 0, 0}, key_none[] = {0, 0, 0}, key_all[] = {1, 1, 1};
static const unsigned char key_v_id[] = {1, 0, 1};

static void test_keys(void **state)
{
    struct sd_table_schema plain = {cols, 3, NULL}, zero = {cols, 3, key_none};
    struct sd_table_schema keyed = {cols, 3, key_id};

    (void)state;
    assert_false(sd_table_schema_has_key(&plain));
    assert_false(sd_table_schema_has_key(&zero));
    assert_true(sd_table_schema_has_key(&keyed));
    assert_true(sd_table_schema_is_key(&keyed, 0));
    assert_false(sd_table_schema_is_key(&keyed, 1));
    assert_false(sd_table_schema_is_key(&plain, 0));
}

static void test_check(void **state)
{
    static const char *const empty[] = {"a", ""};
    struct sd_table_schema none = {cols, 0, NULL}, bad = {empty, 2, NULL}, ok = {cols, 3, NULL};
    struct sd_buf err = SD_BUF_INIT;

    (void)state;
    assert_int_equal(sd_table_schema_check(NULL, &err), SD_EINVAL);
    assert_string_equal(sd_buf_cstr(&err), "a table needs at least one column");
    assert_int_equal(sd_table_schema_check(&none, &err), SD_EINVAL);
    assert_int_equal(sd_table_schema_check(&bad, &err), SD_EINVAL);
    assert_string_equal(sd_buf_cstr(&err), "column 2 has an empty name");
    assert_int_equal(sd_table_schema_check(&bad, NULL), SD_EINVAL);
    assert_int_equal(sd_table_schema_check(&ok, &err), 0);
    sd_buf_fini(&err);
}

static void test_matches(void **state)
{
    static const char *const text3[] = {"text", "TEXT", "Text"};
    static const char *const typed[] = {"text", "integer", "text"};
    static const char *const reordered[] = {"quo\"te", "id", "v"};
    static const unsigned char found_id[] = {1, 0, 0};
    struct sd_table_schema plain = {cols, 3, NULL}, keyed = {cols, 3, key_id};

    (void)state;
    assert_true(sd_table_schema_matches(&plain, cols, text3, NULL, 3));
    assert_false(sd_table_schema_matches(&plain, cols, typed, NULL, 3));
    assert_false(sd_table_schema_matches(&plain, reordered, text3, NULL, 3));
    assert_false(sd_table_schema_matches(&plain, cols, text3, NULL, 2));
    /* key flags count only when the caller found them */
    assert_true(sd_table_schema_matches(&keyed, cols, text3, NULL, 3));
    assert_true(sd_table_schema_matches(&keyed, cols, text3, found_id, 3));
    assert_false(sd_table_schema_matches(&plain, cols, text3, found_id, 3));
    assert_false(sd_table_schema_matches(&keyed, cols, text3, key_none, 3));
}

static void test_key_matches(void **state)
{
    static const char *const id_v[] = {"id", "v"}, *const v_id[] = {"v", "id"};
    struct sd_table_schema plain = {cols, 3, NULL}, both = {cols, 3, key_v_id};

    (void)state;
    assert_true(sd_table_schema_key_matches(&plain, NULL, 0));
    assert_false(sd_table_schema_key_matches(&plain, id_v, 1));
    assert_true(sd_table_schema_key_matches(&both, id_v, 2));
    assert_false(sd_table_schema_key_matches(&both, v_id, 2)); /* key order is mapping order */
    assert_false(sd_table_schema_key_matches(&both, id_v, 1));
    assert_false(sd_table_schema_key_matches(&both, NULL, 0));
}

static void test_describe(void **state)
{
    static const char *const types[] = {"TEXT", "", "integer"};
    static const unsigned char pk[] = {1, 0, 1};
    struct sd_table_schema plain = {cols, 3, NULL}, both = {cols, 3, key_v_id};
    struct sd_buf b = SD_BUF_INIT;

    (void)state;
    sd_table_describe(&b, cols, types, pk, 3);
    assert_string_equal(sd_buf_cstr(&b),
                        "(\"id\" PRIMARY KEY, \"quo\"te\" (no type), \"v\" integer PRIMARY KEY)");
    sd_buf_reset(&b);
    sd_table_describe(&b, cols, NULL, NULL, 3);
    assert_string_equal(sd_buf_cstr(&b), "(\"id\", \"quo\"te\", \"v\")");
    sd_buf_reset(&b);
    sd_table_describe(&b, cols, NULL, NULL, 0);
    assert_string_equal(sd_buf_cstr(&b), "()");
    sd_buf_reset(&b);
    sd_table_describe_key(&b, &both);
    assert_string_equal(sd_buf_cstr(&b), "(\"id\", \"v\")");
    sd_buf_reset(&b);
    sd_table_describe_key(&b, &plain);
    assert_string_equal(sd_buf_cstr(&b), "()");
    sd_buf_fini(&b);
}

static void test_sql(void **state)
{
    struct sd_table_schema plain = {cols, 3, NULL}, zero = {cols, 3, key_none};
    struct sd_table_schema keyed = {cols, 3, key_id}, all = {cols, 3, key_all};
    struct sd_buf b = SD_BUF_INIT;

    (void)state;
    assert_int_equal(sd_table_sql_ident(&b, "a\"\"b\""), 0);
    assert_string_equal(sd_buf_cstr(&b), "\"a\"\"\"\"b\"\"\"");
    sd_buf_reset(&b);
    assert_int_equal(sd_table_sql_names(&b, &keyed, 0), 0);
    assert_string_equal(sd_buf_cstr(&b), "(\"id\", \"quo\"\"te\", \"v\")");
    sd_buf_reset(&b);
    assert_int_equal(sd_table_sql_names(&b, &keyed, 1), 0);
    assert_string_equal(sd_buf_cstr(&b), "(\"id\")");
    sd_buf_reset(&b);
    assert_int_equal(sd_table_sql_define(&b, &plain, "TEXT"), 0);
    assert_string_equal(sd_buf_cstr(&b), "(\"id\" TEXT, \"quo\"\"te\" TEXT, \"v\" TEXT)");
    sd_buf_reset(&b);
    assert_int_equal(sd_table_sql_define(&b, &zero, "TEXT"), 0); /* all-zero flags: no key */
    assert_string_equal(sd_buf_cstr(&b), "(\"id\" TEXT, \"quo\"\"te\" TEXT, \"v\" TEXT)");
    sd_buf_reset(&b);
    assert_int_equal(sd_table_sql_define(&b, &keyed, "text NOT NULL"), 0);
    assert_string_equal(sd_buf_cstr(&b), "(\"id\" text NOT NULL, \"quo\"\"te\" text NOT NULL, "
                                         "\"v\" text NOT NULL, PRIMARY KEY (\"id\"))");
    sd_buf_reset(&b);
    assert_int_equal(sd_table_sql_on_conflict(&b, &keyed), 0);
    assert_string_equal(sd_buf_cstr(&b), "ON CONFLICT (\"id\") DO UPDATE SET \"quo\"\"te\" = "
                                         "excluded.\"quo\"\"te\", \"v\" = excluded.\"v\"");
    sd_buf_reset(&b);
    assert_int_equal(sd_table_sql_on_conflict(&b, &all), 0);
    assert_string_equal(sd_buf_cstr(&b), "ON CONFLICT (\"id\", \"quo\"\"te\", \"v\") DO NOTHING");
    sd_buf_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),     cmocka_unit_test(test_check),
        cmocka_unit_test(test_matches),  cmocka_unit_test(test_key_matches),
        cmocka_unit_test(test_describe), cmocka_unit_test(test_sql),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
