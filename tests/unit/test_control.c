/* test_control.c: unit tests of roles/sd_control: the token requests on a store (create, list,
 * revoke; every malformed request is a badRequest answer and changes nothing) and the socket
 * (mode 0600, a request and its answer through sd_control_call, the effect visible at once to
 * sd_auth_lookup, removal at stop, a path too long for a unix socket).
 *
 * DESIGN: single-threaded cmocka runner (the control server adds its own thread); each test
 * opens a fresh embedded state store in its own temp directory (under $SD_TEST_TMPDIR, else
 * /tmp) and removes it at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_tmpdir.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/sd_auth.h"
#include "core/sd_error.h"
#include "core/sd_fs.h"
#include "roles/sd_control.h"
#include "state/sd_state.h"

struct fixture {
    char dir[512];
    struct sd_state *st;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    sd_test_mkdtemp(fx->dir, sizeof(fx->dir), "sd-ctl");
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

/* Runs the request text on the store; returns the answer. */
static json_t *exec_text(struct fixture *fx, const char *text)
{
    json_t *req = json_loads(text, JSON_ALLOW_NUL, NULL);
    json_t *answer;

    assert_non_null(req);
    answer = sd_control_exec(fx->st, req);
    json_decref(req);
    assert_non_null(answer);
    return answer;
}

static size_t count_tokens(struct fixture *fx)
{
    json_t *answer = exec_text(fx, "{\"cmd\":\"token.list\"}");
    size_t n = json_array_size(json_object_get(answer, "tokens"));

    json_decref(answer);
    return n;
}

static void test_create_list_revoke(void **state)
{
    struct fixture *fx = *state;
    struct sd_auth_token found;
    json_t *made, *answer, *record;
    const char *secret;
    char revoke[128];

    made = exec_text(fx, "{\"cmd\":\"token.create\",\"projectId\":7,\"isAdmin\":true,"
                         "\"isMaster\":false,\"description\":\"ci\"}");
    secret = json_string_value(json_object_get(made, "secret"));
    record = json_object_get(made, "token");
    assert_non_null(secret);
    assert_int_equal(strlen(secret), SD_AUTH_GENERATED_LEN);
    assert_int_equal(json_integer_value(json_object_get(record, "projectId")), 7);
    assert_true(json_is_true(json_object_get(record, "isAdmin")));
    assert_true(json_is_false(json_object_get(record, "isMaster")));
    assert_string_equal(json_string_value(json_object_get(record, "description")), "ci");
    assert_int_equal(sd_auth_lookup(fx->st, secret, strlen(secret), &found), 0);
    assert_int_equal(found.project_id, 7);

    answer = exec_text(fx, "{\"cmd\":\"token.list\",\"projectId\":7}");
    assert_int_equal(json_array_size(json_object_get(answer, "tokens")), 1);
    assert_null(json_object_get(json_array_get(json_object_get(answer, "tokens"), 0), "secret"));
    json_decref(answer);
    answer = exec_text(fx, "{\"cmd\":\"token.list\",\"projectId\":8}");
    assert_int_equal(json_array_size(json_object_get(answer, "tokens")), 0);
    json_decref(answer);

    snprintf(revoke, sizeof(revoke), "{\"cmd\":\"token.revoke\",\"id\":\"%s\"}",
             json_string_value(json_object_get(record, "id")));
    answer = exec_text(fx, revoke);
    assert_null(json_object_get(answer, "error"));
    json_decref(answer);
    assert_int_equal(sd_auth_lookup(fx->st, secret, strlen(secret), &found), SD_ENOTFOUND);
    answer = exec_text(fx, revoke);
    assert_string_equal(json_string_value(json_object_get(answer, "error")), "notFound");
    json_decref(answer);
    json_decref(made);
}

static void test_bad_requests(void **state)
{
    struct fixture *fx = *state;
    static const char *const bad[] = {
        "[]",
        "{}",
        "{\"cmd\":1}",
        "{\"cmd\":\"token.drop\"}",
        "{\"cmd\":\"token.create\"}",
        "{\"cmd\":\"token.create\",\"projectId\":0}",
        "{\"cmd\":\"token.create\",\"projectId\":1.5}",
        "{\"cmd\":\"token.create\",\"projectId\":1,\"isMaster\":1}",
        "{\"cmd\":\"token.create\",\"projectId\":1,\"description\":[]}",
        "{\"cmd\":\"token.create\",\"projectId\":1,\"description\":\"a\\u0000b\"}",
        "{\"cmd\":\"token.list\",\"projectId\":\"1\"}",
        "{\"cmd\":\"token.revoke\"}",
        "{\"cmd\":\"token.revoke\",\"id\":\"\"}",
        "{\"cmd\":\"token.revoke\",\"id\":\"1a\"}",
        "{\"cmd\":\"token.revoke\",\"id\":\"1111111111111111111111111111111111111\"}",
    };
    size_t before = count_tokens(fx);

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *answer = exec_text(fx, bad[i]);
        const char *error = json_string_value(json_object_get(answer, "error"));
        if (error == NULL || strcmp(error, "badRequest") != 0) {
            fail_msg("%s: answered %s", bad[i], json_dumps(answer, 0));
        }
        assert_non_null(json_string_value(json_object_get(answer, "message")));
        json_decref(answer);
    }
    assert_int_equal(count_tokens(fx), before);
}

static void test_socket(void **state)
{
    struct fixture *fx = *state;
    struct sd_control *ctl = NULL;
    struct sd_auth_token found;
    char path[600];
    struct stat sb;
    json_t *req, *answer = NULL;
    const char *secret;

    snprintf(path, sizeof(path), "%s/%s", fx->dir, SD_CONTROL_SOCKET);
    assert_int_equal(sd_control_start(fx->st, fx->dir, &ctl), 0);
    assert_int_equal(stat(path, &sb), 0);
    assert_true(S_ISSOCK(sb.st_mode));
    assert_int_equal(sb.st_mode & 07777, 0600);

    req = json_pack("{s:s, s:i}", "cmd", "token.create", "projectId", 3);
    assert_int_equal(sd_control_call(fx->dir, req, &answer), 0);
    secret = json_string_value(json_object_get(answer, "secret"));
    assert_non_null(secret);
    assert_int_equal(sd_auth_lookup(fx->st, secret, strlen(secret), &found), 0);
    assert_int_equal(found.project_id, 3);
    assert_true(found.is_master); /* the default */
    assert_false(found.is_admin);
    json_decref(answer);
    json_decref(req);

    sd_control_stop(ctl);
    assert_int_equal(stat(path, &sb), -1);
    req = json_pack("{s:s}", "cmd", "token.list");
    assert_int_equal(sd_control_call(fx->dir, req, &answer), -ENOENT);
    assert_null(answer);
    json_decref(req);
}

static void test_path_too_long(void **state)
{
    struct fixture *fx = *state;
    struct sd_control *ctl = NULL;
    char dir[300];
    json_t *answer = NULL, *req = json_pack("{s:s}", "cmd", "token.list");

    memset(dir, 'd', sizeof(dir) - 1);
    dir[sizeof(dir) - 1] = '\0';
    assert_int_equal(sd_control_start(fx->st, dir, &ctl), SD_EINVAL);
    assert_null(ctl);
    assert_int_equal(sd_control_call(dir, req, &answer), SD_EINVAL);
    json_decref(req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_list_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_path_too_long, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
