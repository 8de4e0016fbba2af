/* test_api_routes.c: the API's route table (api/sd_api.c) against the embedded OpenAPI document
 * docs/openapi3.yaml: every documented path and method is routed, nothing is routed that is not
 * documented, no row is listed twice, and rows that change something need an admin token.
 *
 * DESIGN: reads the table through sd__api_routes and the document through
 * sd__api_docs_document, both from streamd_core; single-threaded cmocka runner, no I/O. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "api/sd_api_internal.h"

/* The route's pattern as OpenAPI writes it ("{*taskId}" -> "{taskId}"). */
static void openapi_path(const char *pattern, char *out, size_t size)
{
    size_t n = 0;

    for (const char *s = pattern; *s && n + 1 < size; s++) {
        if (*s == '*' && s > pattern && s[-1] == '{') {
            continue;
        }
        out[n++] = *s;
    }
    out[n] = '\0';
}

static void lower(const char *s, char *out, size_t size)
{
    size_t n = 0;

    for (; *s && n + 1 < size; s++) {
        out[n++] = (char)tolower((unsigned char)*s);
    }
    out[n] = '\0';
}

static void test_every_route_is_documented(void **state)
{
    json_t *doc = sd__api_docs_document(), *paths;
    const struct sd_api_route *routes;
    size_t n;

    (void)state;
    assert_non_null(doc);
    paths = json_object_get(doc, "paths");
    routes = sd__api_routes(&n);
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++) {
        char path[256], method[16];
        openapi_path(routes[i].pattern, path, sizeof(path));
        lower(routes[i].method, method, sizeof(method));
        if (json_object_get(json_object_get(paths, path), method) == NULL) {
            fail_msg("%s %s is routed but not documented", routes[i].method, path);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(routes[i].pattern, routes[j].pattern) == 0 &&
                strcmp(routes[i].method, routes[j].method) == 0) {
                fail_msg("%s %s is routed twice", routes[i].method, path);
            }
        }
        assert_non_null(routes[i].handler);
    }
    json_decref(doc);
}

static void test_every_documented_route_is_routed(void **state)
{
    static const char *const methods[] = {"get", "post", "put", "patch", "delete"};
    json_t *doc = sd__api_docs_document(), *item;
    const struct sd_api_route *routes;
    const char *path;
    size_t n, documented = 0;

    (void)state;
    assert_non_null(doc);
    routes = sd__api_routes(&n);
    json_object_foreach(json_object_get(doc, "paths"), path, item)
    {
        for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
            int found = 0;
            if (json_object_get(item, methods[m]) == NULL) {
                continue;
            }
            documented++;
            for (size_t i = 0; i < n && !found; i++) {
                char p[256], method[16];
                openapi_path(routes[i].pattern, p, sizeof(p));
                lower(routes[i].method, method, sizeof(method));
                found = strcmp(p, path) == 0 && strcmp(method, methods[m]) == 0;
            }
            if (!found) {
                fail_msg("%s %s is documented but not routed", methods[m], path);
            }
        }
    }
    assert_int_equal(documented, n);
    json_decref(doc);
}

/* Reads are open to every master token (and the dry-run test endpoint is a read); everything
 * else changes state and needs an admin token; only the index, health and documentation
 * routes need no token. */
static void test_auth_of_each_route(void **state)
{
    const struct sd_api_route *routes;
    size_t n;

    (void)state;
    routes = sd__api_routes(&n);
    for (size_t i = 0; i < n; i++) {
        const char *pat = routes[i].pattern;
        int is_public = strcmp(pat, "/") == 0 || strcmp(pat, "/v1") == 0 ||
                        strcmp(pat, "/health-check") == 0 ||
                        strncmp(pat, "/v1/documentation", 17) == 0;
        int is_read = strcmp(routes[i].method, "GET") == 0 ||
                      (strlen(pat) > 5 && strcmp(pat + strlen(pat) - 5, "/test") == 0);
        enum sd_api_auth want = is_public ? SD_API_AUTH_NONE
                                : is_read ? SD_API_AUTH_READ
                                          : SD_API_AUTH_WRITE;
        if (routes[i].auth != want) {
            fail_msg("%s %s has auth %d, expected %d", routes[i].method, pat, routes[i].auth, want);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_route_is_documented),
        cmocka_unit_test(test_every_documented_route_is_routed),
        cmocka_unit_test(test_auth_of_each_route),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
