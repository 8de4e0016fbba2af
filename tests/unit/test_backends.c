/* test_backends.c: the backend registry: every built row is found by its kind and name and is
 * the ops table of that name, planned names answer -ENOTSUP, other names (or another kind's
 * name) SD_EINVAL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "core/sd_error.h"
#include "sd_backends.h"
#include "staging/sd_staging.h"
#include "state/sd_state.h"
#include "state_embedded/state_embedded.h"
#include "tables/sd_tables.h"

/* The name the ops table gives itself. */
static const char *ops_name(enum sd_backend_kind kind, const void *ops)
{
    switch (kind) {
    case SD_BACKEND_STATE:
        return ((const struct sd_state_ops *)ops)->name;
    case SD_BACKEND_STAGING:
        return ((const struct sd_staging_ops *)ops)->name;
    case SD_BACKEND_TABLES:
        return ((const struct sd_tables_ops *)ops)->name;
    }
    return NULL;
}

static void test_every_row_is_found(void **state)
{
    size_t built = 0;

    (void)state;
    for (size_t i = 0; i < sd_nbackends; i++) {
        const struct sd_backend *b = &sd_backends[i];
        const void *ops = &ops; /* must be overwritten */
        int rc = sd_backend_find(b->kind, b->name, &ops);

        if (b->ops == NULL) {
            assert_int_equal(rc, -ENOTSUP);
            assert_null(ops);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_ptr_equal(ops, b->ops);
        assert_string_equal(ops_name(b->kind, ops), b->name);
        built++;
    }
    assert_true(built >= 5); /* embedded, local, s3, sqlite, postgres */
}

static void test_known_backends(void **state)
{
    const void *ops;

    (void)state;
    assert_int_equal(sd_backend_find(SD_BACKEND_STATE, "embedded", &ops), 0);
    assert_ptr_equal(ops, &sd_state_embedded_ops);
    assert_int_equal(sd_backend_find(SD_BACKEND_STAGING, "s3", &ops), 0);
    assert_ptr_equal(ops, &sd_staging_s3_ops);
    assert_int_equal(sd_backend_find(SD_BACKEND_TABLES, "sqlite", &ops), 0);
    assert_ptr_equal(ops, &sd_tables_sqlite_ops);
    assert_int_equal(sd_backend_find(SD_BACKEND_TABLES, "keboola", &ops), -ENOTSUP);
    assert_null(ops);
}

static void test_unknown_names(void **state)
{
    const void *ops = &ops;

    (void)state;
    assert_int_equal(sd_backend_find(SD_BACKEND_STATE, "sqlite", &ops), SD_EINVAL);
    assert_null(ops);
    assert_int_equal(sd_backend_find(SD_BACKEND_TABLES, "local", &ops), SD_EINVAL);
    assert_int_equal(sd_backend_find(SD_BACKEND_STAGING, "Local", &ops), SD_EINVAL);
    assert_int_equal(sd_backend_find(SD_BACKEND_STAGING, "", &ops), SD_EINVAL);
    assert_int_equal(sd_backend_find(SD_BACKEND_STAGING, NULL, &ops), SD_EINVAL);
    assert_null(ops);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_row_is_found),
        cmocka_unit_test(test_known_backends),
        cmocka_unit_test(test_unknown_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
