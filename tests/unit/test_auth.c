/* test_auth.c: unit tests of api/sd_auth: SHA-256 hashing, token creation (only the hash is a
 * key, the token text is in no stored value), lookup, listing per project and revocation by id,
 * and the admin token of project 1 (configured, replaced, revoked and re-created).
 *
 * DESIGN: single-threaded cmocka runner; each test opens a fresh embedded state store in its
 * own temp directory (under $SD_TEST_TMPDIR, else /tmp) and removes it at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_tmpdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/sd_auth.h"
#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "core/sd_fs.h"
#include "state/sd_state.h"

struct fixture {
    char dir[512];
    struct sd_state *st;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    sd_test_mkdtemp(fx->dir, sizeof(fx->dir), "sd-auth");
    assert_int_equal(sd_state_open_backend("embedded", NULL, fx->dir, &fx->st), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    sd_state_close(fx->st);
    sd_rm_rf(fx->dir);
    free(fx);
    return 0;
}

static void test_hash(void **state)
{
    char out[SD_AUTH_HASH_HEX_LEN + 1];

    (void)state;
    sd_auth_hash("abc", 3, out);
    assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sd_auth_hash("", 0, out);
    assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* 1 when text occurs in any stored key or value. */
static int stored_anywhere(struct sd_state *st, const char *text)
{
    struct sd_kvs kvs;
    int found = 0;

    assert_int_equal(sd_state_range(st, "", 0, &kvs), 0);
    for (size_t i = 0; i < kvs.n; i++) {
        if (strstr(kvs.items[i].key, text) != NULL ||
            (kvs.items[i].value != NULL && strstr(kvs.items[i].value, text) != NULL)) {
            found = 1;
        }
    }
    sd_kvs_free(&kvs);
    return found;
}

static void test_create_lookup_list_revoke(void **state)
{
    struct fixture *fx = *state;
    char a[SD_AUTH_GENERATED_LEN + 1], b[SD_AUTH_GENERATED_LEN + 1], c[SD_AUTH_GENERATED_LEN + 1];
    char hash[SD_AUTH_HASH_HEX_LEN + 1];
    struct sd_auth_token ia, ib, ic, t, *list = NULL;
    size_t n = 0;

    assert_int_equal(sd_auth_token_create(fx->st, 2, 1, 1, "two admin", a, &ia), 0);
    assert_int_equal(sd_auth_token_create(fx->st, 1, 1, 0, "one reader", b, &ib), 0);
    assert_int_equal(sd_auth_token_create(fx->st, 2, 0, 0, "", c, &ic), 0);
    assert_int_equal(strlen(a), SD_AUTH_GENERATED_LEN);
    assert_string_not_equal(a, b);
    assert_true(ia.created[0] != '\0');
    assert_string_not_equal(ia.id, ib.id);

    /* only hashes are stored */
    assert_false(stored_anywhere(fx->st, a));
    assert_false(stored_anywhere(fx->st, b));
    sd_auth_hash(a, strlen(a), hash);
    assert_true(stored_anywhere(fx->st, hash));

    assert_int_equal(sd_auth_lookup(fx->st, a, strlen(a), &t), 0);
    assert_string_equal(t.id, ia.id);
    assert_int_equal(t.project_id, 2);
    assert_true(t.is_master && t.is_admin);
    assert_string_equal(t.description, "two admin");
    assert_string_equal(t.created, ia.created);
    assert_int_equal(sd_auth_lookup(fx->st, b, strlen(b), &t), 0);
    assert_true(t.is_master && !t.is_admin);
    assert_int_equal(sd_auth_lookup(fx->st, c, strlen(c), &t), 0);
    assert_true(!t.is_master && !t.is_admin);
    assert_int_equal(sd_auth_lookup(fx->st, a, strlen(a) - 1, &t), SD_ENOTFOUND);
    assert_int_equal(sd_auth_lookup(fx->st, "", 0, &t), SD_ENOTFOUND);

    assert_int_equal(sd_auth_token_list(fx->st, 0, &list, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(list[0].project_id, 1);
    assert_string_equal(list[0].id, ib.id);
    assert_int_equal(list[1].project_id, 2);
    assert_int_equal(list[2].project_id, 2);
    free(list);
    assert_int_equal(sd_auth_token_list(fx->st, 2, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_true(strcmp(list[0].id, ia.id) == 0 || strcmp(list[1].id, ia.id) == 0);
    free(list);
    assert_int_equal(sd_auth_token_list(fx->st, 7, &list, &n), 0);
    assert_int_equal(n, 0);
    free(list);

    assert_int_equal(sd_auth_token_revoke(fx->st, ia.id, &t), 0);
    assert_int_equal(t.project_id, 2);
    assert_int_equal(sd_auth_lookup(fx->st, a, strlen(a), &t), SD_ENOTFOUND);
    assert_int_equal(sd_auth_token_revoke(fx->st, ia.id, NULL), SD_ENOTFOUND);
    assert_int_equal(sd_auth_token_revoke(fx->st, "", NULL), SD_ENOTFOUND);
    assert_int_equal(sd_auth_lookup(fx->st, b, strlen(b), &t), 0);
    assert_int_equal(sd_auth_token_list(fx->st, 0, &list, &n), 0);
    assert_int_equal(n, 2);
    free(list);
}

static void test_admin_token(void **state)
{
    struct fixture *fx = *state;
    struct sd_buf err = SD_BUF_INIT;
    struct sd_auth_token t, *list = NULL;
    const char *one = "first-admin-token-0123456789";
    const char *two = "second-admin-token-0123456789";
    size_t n = 0;

    assert_int_equal(sd_auth_ensure_admin(fx->st, one, fx->dir, &err), 0);
    assert_int_equal(sd_auth_lookup(fx->st, one, strlen(one), &t), 0);
    assert_int_equal(t.project_id, SD_AUTH_ADMIN_PROJECT);
    assert_true(t.is_master && t.is_admin);
    /* the same again changes nothing */
    assert_int_equal(sd_auth_ensure_admin(fx->st, one, fx->dir, &err), 0);
    assert_int_equal(sd_auth_token_list(fx->st, 0, &list, &n), 0);
    assert_int_equal(n, 1);
    free(list);
    /* a new configured token replaces the old one */
    assert_int_equal(sd_auth_ensure_admin(fx->st, two, fx->dir, &err), 0);
    assert_int_equal(sd_auth_lookup(fx->st, one, strlen(one), &t), SD_ENOTFOUND);
    assert_int_equal(sd_auth_lookup(fx->st, two, strlen(two), &t), 0);
    /* revoked, then configured again at the next start: valid again */
    assert_int_equal(sd_auth_token_revoke(fx->st, t.id, NULL), 0);
    assert_int_equal(sd_auth_lookup(fx->st, two, strlen(two), &t), SD_ENOTFOUND);
    assert_int_equal(sd_auth_ensure_admin(fx->st, two, fx->dir, &err), 0);
    assert_int_equal(sd_auth_lookup(fx->st, two, strlen(two), &t), 0);
    assert_false(stored_anywhere(fx->st, two));
    sd_buf_fini(&err);
}

#define FX_TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash),
        FX_TEST(test_create_lookup_list_revoke),
        FX_TEST(test_admin_token),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
