/* test_config_bind.c: unit tests of the typed config bindings (config/sd_config_bind.h): every
 * registered module table is valid, a fill writes each field type, and a bad binding aborts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config/sd_config.h"
#include "config/sd_config_bind.h"
#include "config/sd_opt.h"
#include "core/sd_buf.h"
#include "defs/sd_settings.h"
#include "roles/sd_config_registry.h"

static void test_registry_tables_valid(void **state)
{
    struct sd_buf err = SD_BUF_INIT;
    size_t i, j, k, tables = 0;

    (void)state;
    for (i = 0; sd_config_registry[i] != NULL; i++) {
        const struct sd_config_bindings *b = sd_config_registry[i];
        assert_non_null(b->module);
        assert_true(b->n > 0);
        for (j = 0; j < b->n; j++) {
            if (sd_config_binding_check(b, &b->rows[j], &err) == NULL) {
                fail_msg("%s", sd_buf_cstr(&err));
            }
            for (k = 0; k < j; k++) {
                /* two rows of one table on one field would let the later silently win */
                assert_true(b->rows[k].offset != b->rows[j].offset);
            }
        }
        tables++;
    }
    assert_true(tables >= 5);
    sd_buf_fini(&err);
}

static int is_bound(const char *key)
{
    size_t i, j;

    for (i = 0; sd_config_registry[i] != NULL; i++) {
        for (j = 0; j < sd_config_registry[i]->n; j++) {
            if (strcmp(sd_config_registry[i]->rows[j].key, key) == 0) {
                return 1;
            }
        }
    }
    return 0;
}

/* Read per sink through the entity settings (defs/sd_settings.c). */
static int is_setting(const char *key)
{
    size_t i;

    for (i = 0; sd_settings_snapshot_keys[i] != NULL; i++) {
        if (strcmp(sd_settings_snapshot_keys[i], key) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Every key of the option table is bound by a module, read through the entity settings, or
 * marked (cluster, not applicable, rejected) with a reason. */
static void test_every_key_read_or_marked(void **state)
{
    size_t n = 0, i, marked = 0;
    const struct sd_opt *t = sd_opt_table(&n);
    const char *why;

    (void)state;
    for (i = 0; i < n; i++) {
        const char *key = t[i].key;
        enum sd_opt_mark m = sd_opt_mark(&t[i], &why);
        int read = is_bound(key) || is_setting(key);

        if (m != SD_OPT_WORKS) {
            assert_non_null(why);
            assert_true(strlen(why) > 20);
            if (m != SD_OPT_CLUSTER && is_bound(key)) { /* cluster keys may pick the mode */
                fail_msg("\"%s\" is marked %s but a module reads it", key, sd_opt_mark_name(m));
            }
            marked++;
            continue;
        }
        if (!read) {
            fail_msg("\"%s\" is neither read by a module nor marked in src/config/sd_opt.c", key);
        }
    }
    /* sd_settings reads these as numbers (sd_config_int) */
    for (i = 0; sd_settings_snapshot_keys[i] != NULL; i++) {
        const struct sd_opt *o = sd_opt_find(sd_settings_snapshot_keys[i]);
        assert_non_null(o);
        assert_true(o->type == SD_OPT_INT || o->type == SD_OPT_SIZE || o->type == SD_OPT_DURATION ||
                    o->type == SD_OPT_BOOL);
    }
    assert_true(marked > 40);
}

struct sample {
    int flag;
    int level;
    int64_t timeout_ms;
    size_t body;
    double factor;
    const char *listen;
    const char *mode;
    struct sd_config_strlist types;
};

#define S_BIND(field, key, type) SD_BIND(struct sample, field, key, type)
static const struct sd_config_binding sample_rows[] = {
    S_BIND(flag, "pprof.enabled", SD_BIND_BOOL),
    S_BIND(level, "storage.level.local.encoding.compression.gzip.level", SD_BIND_INT),
    S_BIND(timeout_ms, "source.http.requestTimeout", SD_BIND_I64),
    S_BIND(body, "source.http.maxRequestBodySize", SD_BIND_SIZE_T),
    S_BIND(factor, "storage.retry.multiplier", SD_BIND_DOUBLE),
    S_BIND(listen, "api.listen", SD_BIND_STR),
    S_BIND(mode, "storage.level.local.encoding.sync.mode", SD_BIND_STR),
    S_BIND(types, "storage.level.local.volume.assignment.preferredTypes", SD_BIND_LIST),
};
static const struct sd_config_bindings sample = SD_BINDINGS("sample", sample_rows);

static void test_fill(void **state)
{
    const char *sets[] = {"pprof.enabled=yes",
                          "source.http.requestTimeout=45s",
                          "source.http.maxRequestBodySize=2MB",
                          "storage.retry.multiplier=2.5",
                          "api.listen=127.0.0.1:0",
                          "storage.level.local.encoding.sync.mode=CACHE",
                          "storage.level.local.volume.assignment.preferredTypes=ssd, hdd",
                          "storage.level.local.encoding.compression.gzip.level=7"};
    struct sd_config_args args = {.sets = sets, .nsets = 8};
    struct sd_config *cfg = NULL;
    struct sample s;

    (void)state;
    assert_int_equal(sd_config_load(&args, &cfg, NULL), 0);
    memset(&s, 0xa5, sizeof(s));
    sd_config_fill(cfg, &sample, &s);
    assert_int_equal(s.flag, 1);
    assert_int_equal(s.level, 7);
    assert_int_equal(s.timeout_ms, 45000);
    assert_int_equal(s.body, 2 * 1024 * 1024);
    assert_true(s.factor == 2.5);
    assert_string_equal(s.listen, "127.0.0.1:0");
    assert_string_equal(s.mode, "cache");
    assert_int_equal(s.types.n, 2);
    assert_string_equal(s.types.items[0], "ssd");
    assert_string_equal(s.types.items[1], "hdd");
    assert_null(s.types.items[2]);
    sd_config_destroy(cfg);
}

static void test_check_rejects_bad_rows(void **state)
{
    static const struct sd_config_binding bad[] = {
        S_BIND(timeout_ms, "source.http.requestTimeot", SD_BIND_I64), /* typo */
        S_BIND(flag, "source.http.requestTimeout", SD_BIND_BOOL),     /* duration as bool */
        S_BIND(listen, "source.http.maxConnections", SD_BIND_STR),    /* int as string */
        S_BIND(body, "storage.retry.multiplier", SD_BIND_SIZE_T),     /* float as size */
        S_BIND(factor, "api.listen", SD_BIND_DOUBLE),                 /* string as double */
        S_BIND(types, "api.listen", SD_BIND_LIST),                    /* string as list */
        S_BIND(level, "source.http.maxRequestBodySize", SD_BIND_INT), /* size as int */
    };
    static const struct sd_config_bindings t = SD_BINDINGS("bad", bad);
    struct sd_buf err = SD_BUF_INIT;
    size_t i;

    (void)state;
    for (i = 0; i < t.n; i++) {
        assert_null(sd_config_binding_check(&t, &bad[i], &err));
        assert_non_null(strstr(sd_buf_cstr(&err), "bad: "));
        assert_non_null(strstr(sd_buf_cstr(&err), bad[i].key));
    }
    assert_non_null(strstr(sd_buf_cstr(&err), "another type"));
    assert_non_null(sd_config_binding_check(&sample, &sample_rows[0], &err));
    sd_buf_fini(&err);
}

static void test_fill_bad_row_aborts(void **state)
{
    static const struct sd_config_binding bad[] = {
        S_BIND(timeout_ms, "source.http.requestTimeout", SD_BIND_I64),
        S_BIND(timeout_ms, "no.such.key", SD_BIND_I64),
    };
    static const struct sd_config_bindings t = SD_BINDINGS("bad", bad);
    pid_t pid;
    int status = 0;

    (void)state;
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct sd_config *cfg = NULL;
        struct sample s;
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, STDERR_FILENO);
        if (sd_config_load(NULL, &cfg, NULL) != 0) {
            _exit(3);
        }
        sd_config_fill(cfg, &t, &s);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_tables_valid),
        cmocka_unit_test(test_every_key_read_or_marked),
        cmocka_unit_test(test_fill),
        cmocka_unit_test(test_check_rejects_bad_rows),
        cmocka_unit_test(test_fill_bad_row_aborts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
