/* test_config.c: unit tests of src/config: the option table, value parsers and formatters,
 * environment names, the layered loader (YAML, JSON, environment, --set), derived defaults,
 * cross-field checks, getters and the dump. Temp files go below $SD_TEST_TMPDIR (else /tmp). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config/sd_config.h"
#include "config/sd_config_doc.h"
#include "config/sd_opt.h"
#include "core/sd_alloc.h"
#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "core/sd_fs.h"
#include "net/sd_http.h"

/* ---- helpers ---- */

struct tmp {
    char dir[512];
};

static void tmp_make(struct tmp *t)
{
    const char *base = getenv("SD_TEST_TMPDIR");

    if (base == NULL || *base == '\0') {
        base = "/tmp";
    }
    assert_int_equal(sd_mkdir_p(base, 0755), 0);
    snprintf(t->dir, sizeof(t->dir), "%s/test_config-XXXXXX", base);
    assert_non_null(mkdtemp(t->dir));
}

static void tmp_remove(struct tmp *t)
{
    assert_int_equal(sd_rm_rf(t->dir), 0);
}

/* Writes text to <dir>/<name>; returns the owned path. */
static char *tmp_file(struct tmp *t, const char *name, const char *text)
{
    char *path = sd_xasprintf("%s/%s", t->dir, name);

    assert_int_equal(sd_write_file_atomic(path, text, strlen(text), 0644), 0);
    return path;
}

static int contains(const char *haystack, const char *needle)
{
    return haystack != NULL && strstr(haystack, needle) != NULL;
}

#define assert_contains(h, n)                                                                      \
    do {                                                                                           \
        if (!contains((h), (n))) {                                                                 \
            fail_msg("\"%s\" does not contain \"%s\"", (h) ? (h) : "(null)", (n));                 \
        }                                                                                          \
    } while (0)

#define assert_not_contains(h, n)                                                                  \
    do {                                                                                           \
        if (contains((h), (n))) {                                                                  \
            fail_msg("\"%s\" contains \"%s\"", (h), (n));                                          \
        }                                                                                          \
    } while (0)

/* Loads with the given --set values only; expects success. */
static struct sd_config *load_sets(const char *const *sets, size_t nsets)
{
    struct sd_config_args args = {0};
    struct sd_config *cfg = NULL;
    struct sd_buf err = SD_BUF_INIT;
    int rc;

    args.sets = sets;
    args.nsets = nsets;
    rc = sd_config_load(&args, &cfg, &err);
    if (rc != 0) {
        fail_msg("load failed: %s", sd_buf_cstr(&err));
    }
    sd_buf_fini(&err);
    assert_non_null(cfg);
    return cfg;
}

/* Loads args expecting failure; returns the owned error message. */
static char *load_fail(const struct sd_config_args *args)
{
    struct sd_config *cfg = (struct sd_config *)&cfg; /* any non-NULL value */
    struct sd_buf err = SD_BUF_INIT;
    int rc = sd_config_load(args, &cfg, &err);

    assert_int_not_equal(rc, 0);
    assert_null(cfg);
    assert_true(err.len > 0);
    return sd_buf_steal(&err);
}

static char *load_fail_set(const char *set)
{
    struct sd_config_args args = {0};

    args.sets = &set;
    args.nsets = 1;
    return load_fail(&args);
}

/* ---- table ---- */

static void test_table_sorted_and_findable(void **state)
{
    size_t n = 0;
    const struct sd_opt *t = sd_opt_table(&n);
    size_t i;

    (void)state;
    assert_true(n >= 140);
    for (i = 0; i < n; i++) {
        if (i > 0 && strcmp(t[i - 1].key, t[i].key) >= 0) {
            fail_msg("table not sorted at \"%s\" / \"%s\"", t[i - 1].key, t[i].key);
        }
        assert_ptr_equal(sd_opt_find(t[i].key), &t[i]);
        assert_non_null(t[i].desc);
        assert_true(strlen(t[i].desc) > 10);
        assert_true(t[i].type != SD_OPT_ENUM || t[i].enum_values != NULL);
    }
    assert_null(sd_opt_find("source.http.listn"));
    assert_null(sd_opt_find("Source.http.listen"));
    assert_null(sd_opt_find(""));
    assert_null(sd_opt_find("zzz"));
}

static void test_table_defaults_valid(void **state)
{
    size_t n = 0;
    const struct sd_opt *t = sd_opt_table(&n);
    struct sd_buf err = SD_BUF_INIT;
    size_t i;

    (void)state;
    for (i = 0; i < n; i++) {
        if (sd_opt_parse(&t[i], t[i].def, NULL, NULL, &err) != 0) {
            fail_msg("default of %s does not parse: %s", t[i].key, sd_buf_cstr(&err));
        }
    }
    sd_buf_fini(&err);
}

static void test_table_flags(void **state)
{
    size_t n = 0;
    const struct sd_opt *t = sd_opt_table(&n);
    size_t i;
    size_t entity = 0;
    size_t protected_keys = 0;
    const char *const user[] = {
        "storage.level.local.encoding.sync.wait",
        "storage.level.staging.upload.trigger.count",
        "storage.level.staging.upload.trigger.size",
        "storage.level.staging.upload.trigger.interval",
        "storage.level.target.import.trigger.count",
        "storage.level.target.import.trigger.size",
        "storage.level.target.import.trigger.interval",
    };
    const char *const secrets[] = {"etcd.password", "encryption.aes.secretKey", "auth.adminToken"};

    (void)state;
    for (i = 0; i < n; i++) {
        if (t[i].flags & SD_OPT_ENTITY) {
            entity++;
        }
        if (t[i].flags & SD_OPT_PROTECTED) {
            protected_keys++;
            assert_true(t[i].flags & SD_OPT_ENTITY);
        }
    }
    assert_int_equal(entity, 27);
    assert_int_equal(protected_keys, 20);
    for (i = 0; i < sizeof(user) / sizeof(user[0]); i++) {
        const struct sd_opt *o = sd_opt_find(user[i]);
        assert_non_null(o);
        assert_int_equal(o->flags & (SD_OPT_ENTITY | SD_OPT_PROTECTED), SD_OPT_ENTITY);
    }
    for (i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        assert_true(sd_opt_find(secrets[i])->flags & SD_OPT_SECRET);
    }
    assert_true(sd_opt_find("storage.level.local.encoding.compression.gzip.level")->flags &
                SD_OPT_PROTECTED);
    assert_false(sd_opt_find("storage.level.local.encoding.encoder.rowSizeLimit")->flags &
                 SD_OPT_ENTITY);
    assert_false(sd_opt_find("storage.level.target.import.minInterval")->flags & SD_OPT_ENTITY);
    assert_false(sd_opt_find("source.http.listen")->flags & SD_OPT_SECRET);
}

static void test_table_ranges(void **state)
{
    const struct sd_opt *o;

    (void)state;
    o = sd_opt_find("source.http.maxRequestBodySize");
    assert_int_equal(o->type, SD_OPT_SIZE);
    assert_string_equal(o->def, "1MB");
    assert_int_equal(o->min, 100);
    assert_int_equal(o->max, 4 * 1024 * 1024);
    o = sd_opt_find("source.http.requestTimeout");
    assert_int_equal(o->type, SD_OPT_DURATION);
    assert_int_equal(o->min, 1000);
    assert_int_equal(o->max, 60000);
    o = sd_opt_find("source.http.maxConnections");
    assert_int_equal(o->type, SD_OPT_INT);
    assert_int_equal(o->min, 100);
    assert_int_equal(o->max, 1000000);
    o = sd_opt_find("storage.level.target.import.maxSlices");
    assert_int_equal(o->min, 50);
    assert_int_equal(o->max, 149);
    /* service-level minimum lowered to 1s (DESIGN.md §2) */
    assert_int_equal(sd_opt_find("storage.level.target.import.minInterval")->min, 1000);
    assert_int_equal(sd_opt_find("storage.level.staging.upload.minInterval")->min, 1000);
    assert_int_equal(sd_opt_find("storage.retry.initialInterval")->min, 100);
    assert_int_equal(sd_opt_find("storage.level.local.volume.assignment.preferredTypes")->type,
                     SD_OPT_LIST);
    assert_int_equal(sd_opt_find("storage.retry.multiplier")->type, SD_OPT_FLOAT);
    assert_int_equal(sd_opt_find("source.http.listen")->type, SD_OPT_STRING);
    assert_int_equal(sd_opt_find("state.backend")->type, SD_OPT_ENUM);
}

/* ---- parsers and formatters ---- */

static void test_parse_size(void **state)
{
    static const struct {
        const char *text;
        int64_t bytes;
    } ok[] = {
        {"0", 0},
        {"100", 100},
        {"100B", 100},
        {"1KB", 1024},
        {"1536KB", 1536 * 1024},
        {"1MB", 1024 * 1024},
        {"2GB", INT64_C(2) * 1024 * 1024 * 1024},
        {"1TB", INT64_C(1) << 40},
        {"16kb", 16 * 1024},
        {"64M", 64 * 1024 * 1024},
        {"8MiB", 8 * 1024 * 1024},
        {"5 MB", 5 * 1024 * 1024},
        {"9223372036854775807", INT64_MAX},
    };
    static const char *const bad[] = {
        "",      "5XB",  "-1",   "-1MB",         "1.5MB",
        "MB",    " 1MB", "1MB ", "1 ",           "1,0B",
        "0x10",  "1e3",  "1KBB", "8589934592GB", "9223372036854775808",
        "1 M B",
    };
    size_t i;
    int64_t v;

    (void)state;
    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        v = -1;
        if (sd_parse_size(ok[i].text, &v) != 0) {
            fail_msg("size \"%s\" rejected", ok[i].text);
        }
        assert_int_equal(v, ok[i].bytes);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (sd_parse_size(bad[i], &v) != SD_EINVAL) {
            fail_msg("size \"%s\" accepted", bad[i]);
        }
    }
    assert_int_equal(sd_parse_size(NULL, &v), SD_EINVAL);
}

static void test_parse_duration(void **state)
{
    static const struct {
        const char *text;
        int64_t ms;
    } ok[] = {
        {"0", 0},         {"0s", 0},           {"200ms", 200},         {"10s", 10000},
        {"5m", 300000},   {"1h30m", 5400000},  {"1.5s", 1500},         {"168h", 604800000},
        {"1m30s", 90000}, {"2h0m0s", 7200000}, {"1000000ns", 1},       {"1000us", 1},
        {".5s", 500},     {"1.25m", 75000},    {"1h1m1s1ms", 3661001}, {"0.1s", 100},
        {"0.3s", 300},    {"5ms", 5},          {"1.0001h", 3600360},
    };
    static const char *const bad[] = {
        "",         "-1s",   "+1s",  "10",    "1",
        "s",        "1x",    "1.5",  "1 s",   " 1s",
        "1s ",      "1.5ms", "1ns",  "1..5s", "1s-1",
        "ms",       "1d",    "1S",   "1H",    "9999999999999999999s",
        "3000000h", ".s",    "1e3s",
    };
    size_t i;
    int64_t v;

    (void)state;
    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        v = -1;
        if (sd_parse_duration(ok[i].text, &v) != 0) {
            fail_msg("duration \"%s\" rejected", ok[i].text);
        }
        if (v != ok[i].ms) {
            fail_msg("duration \"%s\" = %lld, want %lld", ok[i].text, (long long)v,
                     (long long)ok[i].ms);
        }
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (sd_parse_duration(bad[i], &v) != SD_EINVAL) {
            fail_msg("duration \"%s\" accepted", bad[i]);
        }
    }
    assert_int_equal(sd_parse_duration(NULL, &v), SD_EINVAL);
}

static void test_format_size(void **state)
{
    static const struct {
        int64_t bytes;
        const char *text;
    } cases[] = {
        {0, "0B"},
        {100, "100B"},
        {1024, "1KB"},
        {1536 * 1024, "1536KB"},
        {1024 * 1024, "1MB"},
        {5 * 1024 * 1024, "5MB"},
        {INT64_C(2) * 1024 * 1024 * 1024, "2GB"},
        {1025, "1025B"},
        {INT64_C(3) << 40, "3TB"},
    };
    static const int64_t round[] = {0,
                                    1,
                                    100,
                                    1023,
                                    1024,
                                    1025,
                                    65536,
                                    1572864,
                                    104857600,
                                    4294967296,
                                    INT64_MAX,
                                    123456789012,
                                    INT64_C(7) << 50};
    char buf[32];
    size_t i;
    int64_t v;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sd_format_size(cases[i].bytes, buf, sizeof(buf));
        assert_string_equal(buf, cases[i].text);
    }
    for (i = 0; i < sizeof(round) / sizeof(round[0]); i++) {
        sd_format_size(round[i], buf, sizeof(buf));
        assert_int_equal(sd_parse_size(buf, &v), 0);
        assert_int_equal(v, round[i]);
    }
    /* truncation keeps a terminated string */
    sd_format_size(1536 * 1024, buf, 4);
    assert_string_equal(buf, "153");
}

static void test_format_duration(void **state)
{
    static const struct {
        int64_t ms;
        const char *text;
    } cases[] = {
        {0, "0s"},        {50, "50ms"},        {200, "200ms"},         {1000, "1s"},
        {10000, "10s"},   {60000, "1m"},       {5400000, "1h30m"},     {1500, "1s500ms"},
        {90000, "1m30s"}, {604800000, "168h"}, {3661001, "1h1m1s1ms"},
    };
    static const int64_t round[] = {0,
                                    1,
                                    999,
                                    1000,
                                    59999,
                                    60000,
                                    3599999,
                                    3600000,
                                    86400000,
                                    123456789,
                                    INT64_MAX / 1000000,
                                    7 * 24 * 3600 * INT64_C(1000)};
    char buf[48];
    size_t i;
    int64_t v;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sd_format_duration(cases[i].ms, buf, sizeof(buf));
        assert_string_equal(buf, cases[i].text);
    }
    for (i = 0; i < sizeof(round) / sizeof(round[0]); i++) {
        sd_format_duration(round[i], buf, sizeof(buf));
        if (sd_parse_duration(buf, &v) != 0 || v != round[i]) {
            fail_msg("round trip of %lld via \"%s\" failed", (long long)round[i], buf);
        }
    }
}

static void test_opt_parse_messages(void **state)
{
    struct sd_buf err = SD_BUF_INIT;
    int64_t num = 0;
    double dbl = 0;

    (void)state;
    assert_int_equal(
        sd_opt_parse(sd_opt_find("source.http.maxRequestBodySize"), "5MB", &num, NULL, &err),
        SD_EINVAL);
    assert_string_equal(sd_buf_cstr(&err), "invalid value \"5MB\" for "
                                           "\"source.http.maxRequestBodySize\": must be between "
                                           "100B and 4MB");
    assert_int_equal(
        sd_opt_parse(sd_opt_find("source.http.maxRequestBodySize"), "4MB", &num, NULL, &err), 0);
    assert_int_equal(num, 4 * 1024 * 1024);
    assert_int_equal(
        sd_opt_parse(sd_opt_find("source.http.requestTimeout"), "500ms", &num, NULL, &err),
        SD_EINVAL);
    assert_contains(sd_buf_cstr(&err), "must be between 1s and 1m");
    assert_int_equal(sd_opt_parse(sd_opt_find("encryption.provider"), "rot13", &num, NULL, &err),
                     SD_EINVAL);
    assert_contains(sd_buf_cstr(&err), "must be one of: none, aes, gcp, aws, azure");
    assert_int_equal(sd_opt_parse(sd_opt_find("pprof.enabled"), "maybe", &num, NULL, &err),
                     SD_EINVAL);
    assert_contains(sd_buf_cstr(&err), "\"pprof.enabled\"");
    assert_int_equal(sd_opt_parse(sd_opt_find("pprof.enabled"), "YES", &num, NULL, &err), 0);
    assert_int_equal(num, 1);
    assert_int_equal(sd_opt_parse(sd_opt_find("storage.retry.multiplier"), "0.5", NULL, &dbl, &err),
                     SD_EINVAL);
    assert_contains(sd_buf_cstr(&err), "must be between 1 and 100");
    assert_int_equal(sd_opt_parse(sd_opt_find("storage.retry.multiplier"), "2.5", NULL, &dbl, &err),
                     0);
    assert_true(dbl == 2.5);
    assert_int_equal(
        sd_opt_parse(sd_opt_find("source.http.maxConnections"), "12x", &num, NULL, &err),
        SD_EINVAL);
    assert_contains(sd_buf_cstr(&err), "not an integer");
    assert_int_equal(
        sd_opt_parse(sd_opt_find("storage.level.local.writer.network.pipelineBalancer"),
                     "ROUNDROBIN", &num, NULL, &err),
        0);
    assert_int_equal(num, 1);
    /* lists */
    assert_int_equal(sd_opt_parse(sd_opt_find("storage.level.local.volume.assignment."
                                              "preferredTypes"),
                                  "", &num, NULL, &err),
                     SD_EINVAL);
    assert_contains(sd_buf_cstr(&err), "at least 1 item");
    assert_int_equal(sd_opt_parse(sd_opt_find("storage.level.local.volume.assignment."
                                              "preferredTypes"),
                                  "a,,b", &num, NULL, &err),
                     SD_EINVAL);
    assert_int_equal(sd_opt_parse(sd_opt_find("storage.level.local.volume.assignment."
                                              "preferredTypes"),
                                  " ssd , hdd ", &num, NULL, &err),
                     0);
    assert_int_equal(num, 2);
    /* secrets are never echoed */
    assert_int_equal(sd_opt_parse(sd_opt_find("etcd.password"), "hunter2", NULL, NULL, &err), 0);
    sd_buf_fini(&err);
}

static void test_env_names(void **state)
{
    static const char *const cases[][2] = {
        {"storage.volumesPath", "STREAM_STORAGE_VOLUMES_PATH"},
        {"nodeID", "STREAM_NODE_ID"},
        {"storage.level.target.import.minInterval",
         "STREAM_STORAGE_LEVEL_TARGET_IMPORT_MIN_INTERVAL"},
        {"source.http.maxRequestBodySize", "STREAM_SOURCE_HTTP_MAX_REQUEST_BODY_SIZE"},
        {"storage.statistics.cache.L2.enabled", "STREAM_STORAGE_STATISTICS_CACHE_L2_ENABLED"},
        {"source.http.listen", "STREAM_SOURCE_HTTP_LISTEN"},
        {"storageApiHost", "STREAM_STORAGE_API_HOST"},
        {"debugHTTPClient", "STREAM_DEBUG_HTTPCLIENT"},
        {"auth.adminToken", "STREAM_AUTH_ADMIN_TOKEN"},
    };
    char buf[128];
    size_t n = 0;
    const struct sd_opt *t = sd_opt_table(&n);
    size_t i;
    size_t j;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sd_opt_env_name(cases[i][0], buf, sizeof(buf));
        assert_string_equal(buf, cases[i][1]);
    }
    sd_opt_env_name_alt("debugHTTPClient", buf, sizeof(buf));
    assert_string_equal(buf, "STREAM_DEBUG_HTTP_CLIENT");
    sd_opt_env_name_alt("nodeID", buf, sizeof(buf));
    assert_string_equal(buf, "STREAM_NODE_ID");
    sd_opt_env_name("nodeID", buf, 8);
    assert_string_equal(buf, "STREAM_");
    /* every key has its own name */
    for (i = 0; i < n; i++) {
        char a[128];
        sd_opt_env_name(t[i].key, a, sizeof(a));
        for (j = i + 1; j < n; j++) {
            sd_opt_env_name(t[j].key, buf, sizeof(buf));
            if (strcmp(a, buf) == 0) {
                fail_msg("%s and %s share %s", t[i].key, t[j].key, a);
            }
        }
    }
}

static void test_suggest(void **state)
{
    (void)state;
    assert_string_equal(sd_opt_suggest("source.http.listn"), "source.http.listen");
    assert_string_equal(sd_opt_suggest("nodeId"), "nodeID");
    assert_string_equal(sd_opt_suggest("maxRequestBodySize"), "source.http.maxRequestBodySize");
    assert_null(sd_opt_suggest("completely.unrelated.thing.here"));
    assert_null(sd_opt_suggest(""));
}

/* ---- loader ---- */

static void test_defaults(void **state)
{
    struct sd_config *cfg = load_sets(NULL, 0);
    const char *const *items = NULL;

    (void)state;
    assert_string_equal(sd_config_str(cfg, "source.http.listen"), "0.0.0.0:7000");
    assert_string_equal(sd_config_str(cfg, "api.listen"), "0.0.0.0:8000");
    assert_string_equal(sd_config_str(cfg, "metrics.listen"), "0.0.0.0:9000");
    assert_string_equal(sd_config_str(cfg, "nodeID"), "standalone");
    assert_string_equal(sd_config_str(cfg, "hostname"), "127.0.0.1");
    assert_string_equal(sd_config_str(cfg, "storageApiHost"), "");
    assert_string_equal(sd_config_str(cfg, "dataDir"), "./data");
    assert_string_equal(sd_config_str(cfg, "storage.volumesPath"), "./data/volumes");
    assert_string_equal(sd_config_str(cfg, "state.backend"), "embedded");
    assert_string_equal(sd_config_str(cfg, "staging.backend"), "local");
    assert_string_equal(sd_config_str(cfg, "tables.backend"), "sqlite");
    assert_string_equal(sd_config_str(cfg, "source.http.publicUrl"), "");
    assert_string_equal(sd_config_str(cfg, "auth.adminToken"), "");
    assert_int_equal(sd_config_int(cfg, "source.http.maxRequestBodySize"), 1024 * 1024);
    assert_string_equal(sd_config_str(cfg, "source.http.maxRequestBodySize"), "1MB");
    assert_int_equal(sd_config_int(cfg, "source.http.readBufferSize"), 16 * 1024);
    assert_int_equal(sd_config_int(cfg, "source.http.requestTimeout"), 30000);
    assert_int_equal(sd_config_int(cfg, "source.http.maxConnections"), 200000);
    assert_int_equal(sd_config_int(cfg, "storage.level.local.encoding.encoder.rowSizeLimit"),
                     1536 * 1024);
    assert_string_equal(sd_config_str(cfg, "storage.level.local.encoding.encoder.rowSizeLimit"),
                        "1536KB");
    assert_int_equal(sd_config_int(cfg, "storage.level.local.encoding.sync.checkInterval"), 5);
    assert_int_equal(sd_config_int(cfg, "storage.level.staging.upload.minInterval"), 10000);
    assert_int_equal(sd_config_int(cfg, "storage.level.target.import.minInterval"), 60000);
    assert_int_equal(sd_config_int(cfg, "storage.level.target.import.trigger.size"),
                     50 * 1024 * 1024);
    assert_int_equal(sd_config_int(cfg, "storage.metadataCleanup.activeFileExpiration"),
                     168 * 3600 * 1000);
    assert_int_equal(sd_config_int(cfg, "storage.retry.initialInterval"), 120000);
    assert_int_equal(sd_config_int(cfg, "storage.retry.maxInterval"), 3 * 3600 * 1000);
    assert_true(sd_config_float(cfg, "storage.retry.multiplier") == 4.0);
    assert_true(sd_config_bool(cfg, "storage.level.local.encoding.sync.wait"));
    assert_false(sd_config_bool(cfg, "pprof.enabled"));
    assert_string_equal(sd_config_str(cfg, "storage.level.local.encoding.compression.type"),
                        "gzip");
    assert_int_equal(
        sd_config_list(cfg, "storage.level.local.volume.assignment.preferredTypes", &items), 1);
    assert_string_equal(items[0], "default");
    assert_null(items[1]);
    assert_false(sd_config_is_set(cfg, "source.http.listen"));
    assert_false(sd_config_is_set(cfg, "storage.volumesPath"));
    sd_config_destroy(cfg);
}

static void test_layering_yaml(void **state)
{
    struct tmp t;
    char *path;
    struct sd_config_args args = {0};
    struct sd_config *cfg = NULL;
    struct sd_buf err = SD_BUF_INIT;
    const char *const *items = NULL;
    char *env[] = {"PATH=/usr/bin", "STREAM_SOURCE_HTTP_READ_BUFFER_SIZE=32KB",
                   "STREAM_NODE_ID=from-env", "STREAM_DEBUG_LOG=true", NULL};
    const char *sets[] = {"nodeID=from-set", "source.http.writeBufferSize=8KB"};

    (void)state;
    tmp_make(&t);
    path = tmp_file(&t, "streamd.yaml",
                    "# comment\n"
                    "nodeID: from-file\n"
                    "source:\n"
                    "  http:\n"
                    "    listen: 127.0.0.1:7777\n"
                    "    readBufferSize: 8KB\n"
                    "    writeBufferSize: 2KB\n"
                    "    requestTimeout: 5s\n"
                    "storage.level:\n"
                    "  local.volume.assignment:\n"
                    "    preferredTypes: [ssd, hdd]\n"
                    "  target.import.minInterval: 2s\n"
                    "storage.retry.multiplier: 2.5\n"
                    "hostname: ~\n"
                    "etcd:\n"
                    "  password: \"s3cret: yes\"\n");
    args.file = path;
    args.envp = env;
    args.sets = sets;
    args.nsets = 2;
    if (sd_config_load(&args, &cfg, &err) != 0) {
        fail_msg("load failed: %s", sd_buf_cstr(&err));
    }
    /* file only */
    assert_string_equal(sd_config_str(cfg, "source.http.listen"), "127.0.0.1:7777");
    assert_int_equal(sd_config_int(cfg, "source.http.requestTimeout"), 5000);
    assert_int_equal(sd_config_int(cfg, "storage.level.target.import.minInterval"), 2000);
    assert_true(sd_config_float(cfg, "storage.retry.multiplier") == 2.5);
    assert_string_equal(sd_config_str(cfg, "etcd.password"), "s3cret: yes");
    assert_int_equal(
        sd_config_list(cfg, "storage.level.local.volume.assignment.preferredTypes", &items), 2);
    assert_string_equal(items[0], "ssd");
    assert_string_equal(items[1], "hdd");
    assert_string_equal(sd_config_str(cfg, "storage.level.local.volume.assignment.preferredTypes"),
                        "ssd,hdd");
    /* null keeps the default and is not "set" */
    assert_string_equal(sd_config_str(cfg, "hostname"), "127.0.0.1");
    assert_false(sd_config_is_set(cfg, "hostname"));
    /* env beats file */
    assert_int_equal(sd_config_int(cfg, "source.http.readBufferSize"), 32 * 1024);
    assert_true(sd_config_bool(cfg, "debugLog"));
    /* --set beats env and file */
    assert_string_equal(sd_config_str(cfg, "nodeID"), "from-set");
    assert_int_equal(sd_config_int(cfg, "source.http.writeBufferSize"), 8 * 1024);
    assert_true(sd_config_is_set(cfg, "nodeID"));
    assert_true(sd_config_is_set(cfg, "source.http.listen"));
    assert_false(sd_config_is_set(cfg, "api.listen"));
    sd_config_destroy(cfg);
    free(path);
    sd_buf_fini(&err);
    tmp_remove(&t);
}

static void test_layering_json(void **state)
{
    struct tmp t;
    char *path;
    struct sd_config_args args = {0};
    struct sd_config *cfg = NULL;
    struct sd_buf err = SD_BUF_INIT;
    const char *const *items = NULL;
    char *env[] = {"STREAM_STORAGE_LEVEL_TARGET_IMPORT_MIN_INTERVAL=3s",
                   "STREAM_STORAGE_LEVEL_LOCAL_VOLUME_ASSIGNMENT_PREFERRED_TYPES=a, b ,c", NULL};
    const char *sets[] = {"storage.level.target.import.minInterval=4s"};

    (void)state;
    tmp_make(&t);
    path = tmp_file(&t, "streamd.json",
                    "{\"storage\": {\"level\": {\"target\": {\"import\": {\"minInterval\": \"2s\","
                    " \"maxSlices\": 60}}, \"local.encoding.sync.wait\": false}},"
                    " \"source.http.maxConnections\": 1000,"
                    " \"storage.retry.multiplier\": 1.5,"
                    " \"storage.level.local.volume.assignment.preferredTypes\": [\"x\"],"
                    " \"api\": {\"publicUrl\": \"http://example.com:8000\", \"listen\": null},"
                    " \"tables\": {\"backend\": \"postgres\"}}");
    args.file = path;
    args.envp = env;
    args.sets = sets;
    args.nsets = 1;
    if (sd_config_load(&args, &cfg, &err) != 0) {
        fail_msg("load failed: %s", sd_buf_cstr(&err));
    }
    assert_int_equal(sd_config_int(cfg, "storage.level.target.import.maxSlices"), 60);
    assert_false(sd_config_bool(cfg, "storage.level.local.encoding.sync.wait"));
    assert_int_equal(sd_config_int(cfg, "source.http.maxConnections"), 1000);
    assert_true(sd_config_float(cfg, "storage.retry.multiplier") == 1.5);
    assert_string_equal(sd_config_str(cfg, "api.publicUrl"), "http://example.com:8000");
    assert_string_equal(sd_config_str(cfg, "api.listen"), "0.0.0.0:8000");
    assert_string_equal(sd_config_str(cfg, "tables.backend"), "postgres");
    /* env list beats file list, --set beats env beats file */
    assert_int_equal(
        sd_config_list(cfg, "storage.level.local.volume.assignment.preferredTypes", &items), 3);
    assert_string_equal(items[0], "a");
    assert_string_equal(items[1], "b");
    assert_string_equal(items[2], "c");
    assert_int_equal(sd_config_int(cfg, "storage.level.target.import.minInterval"), 4000);
    sd_config_destroy(cfg);

    /* without --set the env value wins over the file */
    args.nsets = 0;
    assert_int_equal(sd_config_load(&args, &cfg, &err), 0);
    assert_int_equal(sd_config_int(cfg, "storage.level.target.import.minInterval"), 3000);
    sd_config_destroy(cfg);
    /* without env the file value stands */
    args.envp = NULL;
    assert_int_equal(sd_config_load(&args, &cfg, &err), 0);
    assert_int_equal(sd_config_int(cfg, "storage.level.target.import.minInterval"), 2000);
    sd_config_destroy(cfg);
    free(path);
    sd_buf_fini(&err);
    tmp_remove(&t);
}

static void test_unknown_key_in_file(void **state)
{
    struct tmp t;
    struct sd_config_args args = {0};
    char *msg;

    (void)state;
    tmp_make(&t);
    args.file = tmp_file(&t, "bad.yml", "source:\n  http:\n    listn: 1.2.3.4:1\n");
    msg = load_fail(&args);
    assert_contains(msg, "unknown config key \"source.http.listn\" (did you mean "
                         "\"source.http.listen\"?)");
    assert_contains(msg, "bad.yml");
    assert_contains(msg, "line 3");
    free(msg);
    free((char *)args.file);

    args.file = tmp_file(&t, "bad.json", "{\"source\": {\"http\": {\"listn\": \"x\"}}}");
    msg = load_fail(&args);
    assert_contains(msg, "unknown config key \"source.http.listn\" (did you mean "
                         "\"source.http.listen\"?)");
    free(msg);
    free((char *)args.file);

    /* an unknown key with a null value is still unknown */
    args.file = tmp_file(&t, "null.yaml", "nodeIDD:\n");
    msg = load_fail(&args);
    assert_contains(msg, "unknown config key \"nodeIDD\" (did you mean \"nodeID\"?)");
    free(msg);
    free((char *)args.file);
    tmp_remove(&t);
}

static void test_unknown_key_in_set(void **state)
{
    char *msg;

    (void)state;
    msg = load_fail_set("source.http.listn=127.0.0.1:0");
    assert_contains(
        msg, "unknown config key \"source.http.listn\" (did you mean \"source.http.listen\"?)");
    free(msg);
    msg = load_fail_set("no.such.thing.at.all.anywhere=1");
    assert_contains(msg, "unknown config key \"no.such.thing.at.all.anywhere\"");
    assert_not_contains(msg, "did you mean");
    free(msg);
    msg = load_fail_set("nodeID");
    assert_contains(msg, "expected KEY=VALUE");
    free(msg);
    msg = load_fail_set("=x");
    assert_contains(msg, "expected KEY=VALUE");
    free(msg);
}

static void test_out_of_range(void **state)
{
    struct tmp t;
    struct sd_config_args args = {0};
    char *env[] = {"STREAM_SOURCE_HTTP_MAX_CONNECTIONS=5", NULL};
    char *msg;

    (void)state;
    msg = load_fail_set("source.http.maxRequestBodySize=5MB");
    assert_contains(msg, "invalid value \"5MB\" for \"source.http.maxRequestBodySize\": must be "
                         "between 100B and 4MB");
    assert_contains(msg, "--set");
    free(msg);
    msg = load_fail_set("storage.level.target.import.minInterval=500ms");
    assert_contains(msg, "\"500ms\"");
    assert_contains(msg, "between 1s and 24h");
    free(msg);
    msg = load_fail_set("storage.level.target.import.trigger.interval=10s");
    assert_contains(msg, "between 30s and 24h");
    free(msg);
    msg = load_fail_set("source.http.readBufferSize=5XB");
    assert_contains(msg, "invalid value \"5XB\" for \"source.http.readBufferSize\"");
    free(msg);
    msg = load_fail_set("storage.retry.initialInterval=-1s");
    assert_contains(msg, "\"-1s\"");
    free(msg);
    msg = load_fail_set("state.backend=zookeeper");
    assert_contains(msg, "must be one of: embedded, etcd");
    free(msg);

    args.envp = env;
    msg = load_fail(&args);
    assert_contains(msg, "STREAM_SOURCE_HTTP_MAX_CONNECTIONS");
    assert_contains(msg, "must be between 100 and 1000000");
    free(msg);

    tmp_make(&t);
    args.envp = NULL;
    args.file = tmp_file(&t, "range.yaml", "distribution:\n  ttlSeconds: 31\n");
    msg = load_fail(&args);
    assert_contains(msg, "invalid value \"31\" for \"distribution.ttlSeconds\": must be between 1 "
                         "and 30");
    assert_contains(msg, "line 2");
    free(msg);
    free((char *)args.file);
    tmp_remove(&t);
}

static void test_file_errors(void **state)
{
    struct tmp t;
    struct sd_config_args args = {0};
    char *msg;
    static const char *const bad_yaml[][2] = {
        {"a.yaml", "nodeID: [unclosed\n"},
        {"b.yaml", "- just\n- a list\n"},
        {"c.yaml", "pprof: &b {enabled: true}\ndatadog: *b\n"},
        {"d.yaml", "pprof:\n  enabled:\n    deeper: 1\n"},
        {"e.yaml", "nodeID: [a, b]\n"},
        {"f.yaml", "nodeID: a\n---\nnodeID: b\n"},
        {"g.yaml", "storage.level.local.volume.assignment.preferredTypes: [\"a,b\"]\n"},
        {"h.yaml", "storage.level.local.volume.assignment.preferredTypes: [[a]]\n"},
        {"i.json", "[1, 2]"},
        {"j.json", "{\"nodeID\": "},
        {"k.json", "{\"nodeID\": {\"x\": 1}}"},
        {"l.json", "{\"pprof\": {\"enabled\": [true]}}"},
        {"m.yaml", "? [a]\n: b\n"},
    };
    size_t i;

    (void)state;
    tmp_make(&t);
    for (i = 0; i < sizeof(bad_yaml) / sizeof(bad_yaml[0]); i++) {
        args.file = tmp_file(&t, bad_yaml[i][0], bad_yaml[i][1]);
        msg = load_fail(&args);
        assert_contains(msg, bad_yaml[i][0]);
        free(msg);
        free((char *)args.file);
    }
    args.file = tmp_file(&t, "alias.yaml", "pprof: &b {enabled: true}\ndatadog: *b\n");
    msg = load_fail(&args);
    assert_contains(msg, "aliases are not supported");
    assert_contains(msg, "line 2");
    free(msg);
    free((char *)args.file);

    args.file = tmp_file(&t, "conf.toml", "nodeID = 1\n");
    msg = load_fail(&args);
    assert_contains(msg, "unsupported file extension");
    free(msg);
    free((char *)args.file);

    args.file = "/nonexistent/dir/streamd.yaml";
    msg = load_fail(&args);
    assert_contains(msg, "cannot read config file");
    free(msg);

    /* empty documents are fine */
    {
        struct sd_config *cfg = NULL;
        args.file = tmp_file(&t, "empty.yaml", "# nothing\n");
        assert_int_equal(sd_config_load(&args, &cfg, NULL), 0);
        sd_config_destroy(cfg);
        free((char *)args.file);
        args.file = tmp_file(&t, "empty.json", "{}");
        assert_int_equal(sd_config_load(&args, &cfg, NULL), 0);
        sd_config_destroy(cfg);
        free((char *)args.file);
    }
    tmp_remove(&t);
}

/* Runs a load with envp while stderr goes to a file; returns what was logged (owned). */
static char *load_capturing_stderr(char **envp, int *rc)
{
    struct tmp t;
    struct sd_config_args args = {0};
    struct sd_config *cfg = NULL;
    char *path;
    char *logged = NULL;
    int saved;
    int fd;

    tmp_make(&t);
    path = sd_xasprintf("%s/stderr.txt", t.dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    fflush(stderr);
    saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    args.envp = envp;
    *rc = sd_config_load(&args, &cfg, NULL);
    fflush(stderr);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    close(fd);
    assert_int_equal(sd_read_file(path, &logged, NULL), 0);
    sd_config_destroy(cfg);
    free(path);
    tmp_remove(&t);
    return logged;
}

static void test_unknown_env_is_warning(void **state)
{
    char *env[] = {"HOME=/root", "STREAM_NO_SUCH_OPTION=1", "STREAMD_OTHER=1",
                   "STREAM_SOURCE_HTTP_LISTEN=127.0.0.1:0", NULL};
    char *ok_env[] = {"STREAM_NODE_ID=n1", "STREAM_DEBUG_HTTP_CLIENT=false", NULL};
    char *logged;
    int rc = -1;

    (void)state;
    logged = load_capturing_stderr(env, &rc);
    assert_int_equal(rc, 0);
    assert_contains(logged, "STREAM_NO_SUCH_OPTION");
    assert_contains(logged, "\"level\":\"warn\"");
    assert_not_contains(logged, "STREAMD_OTHER");
    assert_not_contains(logged, "STREAM_SOURCE_HTTP_LISTEN");
    free(logged);

    /* known names (including the word-split alias) log nothing */
    logged = load_capturing_stderr(ok_env, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(logged, "");
    free(logged);
}

/* Keys marked cluster or not applicable warn when set to another value than the default;
 * rejected keys and the cloud KMS providers are errors. */
static void test_marked_keys(void **state)
{
    char *cluster_env[] = {"STREAM_WATCH_TELEMETRY_INTERVAL=1m", "STREAM_DATADOG_ENABLED=false",
                           "STREAM_PPROF_LISTEN=0.0.0.0:4000", NULL};
    char *aes_env[] = {"STREAM_ENCRYPTION_PROVIDER=aes",
                       "STREAM_ENCRYPTION_AES_SECRET_KEY=0123456789abcdef0123456789abcdef", NULL};
    const char *why = NULL;
    char *logged;
    char *msg;
    int rc = -1;

    (void)state;
    assert_int_equal(sd_opt_mark(sd_opt_find("watchTelemetryInterval"), &why), SD_OPT_CLUSTER);
    assert_non_null(why);
    assert_int_equal(sd_opt_mark(sd_opt_find("etcd.endpoint"), &why), SD_OPT_WORKS);
    assert_int_equal(sd_opt_mark(sd_opt_find("source.http.listen"), &why), SD_OPT_WORKS);
    assert_null(why);
    assert_int_equal(sd_opt_mark(sd_opt_find("encryption.gcp.kmsKeyId"), NULL), SD_OPT_REJECTED);
    assert_int_equal(sd_opt_mark(sd_opt_find("storageApiHost"), NULL), SD_OPT_NOT_APPLICABLE);

    logged = load_capturing_stderr(cluster_env, &rc);
    assert_int_equal(rc, 0);
    assert_contains(logged, "\\\"watchTelemetryInterval\\\" is set but has no effect in standalone "
                            "streamd "
                            "(cluster)");
    assert_contains(logged, "\\\"datadog.enabled\\\" is set but has no effect in streamd "
                            "(not applicable)");
    /* set to its default: nothing to warn about */
    assert_not_contains(logged, "pprof.listen");
    free(logged);

    logged = load_capturing_stderr(aes_env, &rc);
    assert_int_equal(rc, 0);
    assert_contains(logged, "encryption.provider");
    assert_contains(logged, "encryption.aes.secretKey");
    assert_not_contains(logged, "0123456789abcdef");
    free(logged);

    msg = load_fail_set("encryption.provider=aws");
    assert_contains(msg, "invalid value \"aws\" for \"encryption.provider\": cloud KMS");
    free(msg);
    msg = load_fail_set("encryption.gcp.kmsKeyId=projects/p/keys/k");
    assert_contains(msg, "config key \"encryption.gcp.kmsKeyId\" is not supported by streamd");
    free(msg);
}

/* docs/CONFIG.md: one table row per key, in table order, with env name, type, default, range,
 * effect and mark. */
static void test_config_doc(void **state)
{
    struct sd_buf out = SD_BUF_INIT;
    size_t n = 0, i, rows = 0;
    const struct sd_opt *t = sd_opt_table(&n);
    const char *p;

    (void)state;
    sd_config_doc(&out);
    for (p = out.data; (p = strstr(p, "\n| `")) != NULL; p++) {
        rows++;
    }
    assert_int_equal(rows, n);
    for (i = 1; i < n; i++) {
        char *a = sd_xasprintf("\n| `%s` |", t[i - 1].key);
        char *b = sd_xasprintf("\n| `%s` |", t[i].key);
        assert_true(strstr(out.data, a) < strstr(out.data, b));
        free(a);
        free(b);
    }
    assert_contains(out.data, "| `source.http.maxRequestBodySize` | "
                              "`STREAM_SOURCE_HTTP_MAX_REQUEST_BODY_SIZE` | size | `1MB` | "
                              "100B .. 4MB | Maximum size of one request body (bytes). |  |\n");
    assert_contains(out.data, "| `api.task.cleanupInterval` | `STREAM_API_TASK_CLEANUP_INTERVAL` "
                              "| duration | `1h` | 1s .. 24h |");
    assert_contains(out.data, "| enum | `none` | `none`, `aes`, `gcp`, `aws`, `azure` |");
    assert_contains(out.data, "| `etcd.endpoint` | `STREAM_ETCD_ENDPOINT` | string |  | - |");
    assert_contains(out.data, "| **cluster**: Telemetry of the etcd watchers of a cluster node.");
    assert_contains(out.data, "| **rejected**: Cloud KMS encryption (encryption.provider aws)");
    assert_contains(out.data, "Secret: never printed. |");
    assert_contains(out.data, "| list | `default` | items 1 .. any |");
    sd_buf_fini(&out);
}

static void test_env_values(void **state)
{
    char *env[] = {"STREAM_ADMIN_TOKEN=my-admin-token-0123456789",
                   "STREAM_STORAGE_STATISTICS_CACHE_L2_ENABLED=false",
                   "STREAM_DEBUG_HTTP_CLIENT=true",
                   "STREAM_ETCD_ENDPOINT=",
                   "STREAM_STORAGE_VOLUMES_PATH=/mnt/volumes",
                   NULL};
    struct sd_config_args args = {0};
    struct sd_config *cfg = NULL;

    (void)state;
    args.envp = env;
    assert_int_equal(sd_config_load(&args, &cfg, NULL), 0);
    assert_string_equal(sd_config_str(cfg, "auth.adminToken"), "my-admin-token-0123456789");
    assert_true(sd_config_is_set(cfg, "auth.adminToken"));
    assert_false(sd_config_bool(cfg, "storage.statistics.cache.L2.enabled"));
    assert_true(sd_config_bool(cfg, "debugHTTPClient"));
    /* empty value = unset */
    assert_string_equal(sd_config_str(cfg, "etcd.endpoint"), "");
    assert_false(sd_config_is_set(cfg, "etcd.endpoint"));
    assert_string_equal(sd_config_str(cfg, "state.backend"), "embedded");
    assert_string_equal(sd_config_str(cfg, "storage.volumesPath"), "/mnt/volumes");
    sd_config_destroy(cfg);
}

static void test_derived(void **state)
{
    struct sd_config_args args = {0};
    struct sd_config *cfg = NULL;
    struct sd_buf err = SD_BUF_INIT;
    const char *sets[] = {"tables.sqlite.path=/elsewhere/tables"};
    const char *etcd_sets[] = {"etcd.endpoint=127.0.0.1:2379"};
    const char *explicit_sets[] = {"etcd.endpoint=127.0.0.1:2379", "state.backend=embedded"};
    char *msg;

    (void)state;
    args.data_dir = "/tmp/d/";
    args.sets = sets;
    args.nsets = 1;
    assert_int_equal(sd_config_load(&args, &cfg, &err), 0);
    assert_string_equal(sd_config_str(cfg, "dataDir"), "/tmp/d/");
    assert_true(sd_config_is_set(cfg, "dataDir"));
    assert_string_equal(sd_config_str(cfg, "storage.volumesPath"), "/tmp/d/volumes");
    assert_string_equal(sd_config_str(cfg, "state.embedded.path"), "/tmp/d/state");
    assert_string_equal(sd_config_str(cfg, "staging.local.path"), "/tmp/d/staging");
    assert_string_equal(sd_config_str(cfg, "tables.sqlite.path"), "/elsewhere/tables");
    assert_false(sd_config_is_set(cfg, "storage.volumesPath"));
    sd_config_destroy(cfg);

    /* --set dataDir after --data-dir wins */
    {
        const char *dd[] = {"dataDir=/var/lib/streamd"};
        args.sets = dd;
        assert_int_equal(sd_config_load(&args, &cfg, &err), 0);
        assert_string_equal(sd_config_str(cfg, "state.embedded.path"), "/var/lib/streamd/state");
        sd_config_destroy(cfg);
    }

    /* state.backend follows etcd.endpoint unless set explicitly */
    args.data_dir = NULL;
    args.sets = etcd_sets;
    assert_int_equal(sd_config_load(&args, &cfg, &err), 0);
    assert_string_equal(sd_config_str(cfg, "state.backend"), "etcd");
    assert_false(sd_config_is_set(cfg, "state.backend"));
    sd_config_destroy(cfg);
    args.sets = explicit_sets;
    args.nsets = 2;
    assert_int_equal(sd_config_load(&args, &cfg, &err), 0);
    assert_string_equal(sd_config_str(cfg, "state.backend"), "embedded");
    sd_config_destroy(cfg);

    /* cross-field checks */
    msg = load_fail_set("state.backend=etcd");
    assert_contains(msg, "etcd.endpoint");
    free(msg);
    msg = load_fail_set("auth.adminToken=short-token");
    assert_contains(msg, "auth.adminToken");
    assert_contains(msg, "16");
    assert_not_contains(msg, "short-token");
    free(msg);
    msg = load_fail_set("encryption.provider=aes");
    assert_contains(msg, "encryption.aes.secretKey");
    free(msg);
    msg = load_fail_set("storage.retry.initialInterval=4h");
    assert_contains(msg, "storage.retry.maxInterval");
    free(msg);
    msg = load_fail_set("dataDir=");
    assert_contains(msg, "dataDir");
    free(msg);
    sd_buf_fini(&err);
}

static void test_set_after_load(void **state)
{
    struct sd_config *cfg = load_sets(NULL, 0);
    struct sd_buf err = SD_BUF_INIT;

    (void)state;
    assert_int_equal(sd_config_set(cfg, "api.publicUrl", "http://127.0.0.1:4321", &err), 0);
    assert_string_equal(sd_config_str(cfg, "api.publicUrl"), "http://127.0.0.1:4321");
    assert_true(sd_config_is_set(cfg, "api.publicUrl"));
    assert_int_equal(sd_config_set(cfg, "source.http.requestTimeout", "45s", &err), 0);
    assert_int_equal(sd_config_int(cfg, "source.http.requestTimeout"), 45000);
    /* a rejected value keeps the old one */
    assert_int_equal(sd_config_set(cfg, "source.http.requestTimeout", "2m", &err), SD_EINVAL);
    assert_contains(sd_buf_cstr(&err), "must be between 1s and 1m");
    assert_int_equal(sd_config_int(cfg, "source.http.requestTimeout"), 45000);
    assert_int_equal(sd_config_set(cfg, "auth.adminToken", "too-short", &err), SD_EINVAL);
    assert_string_equal(sd_config_str(cfg, "auth.adminToken"), "");
    assert_int_equal(sd_config_set(cfg, "api.publicUrll", "x", &err), SD_EINVAL);
    assert_contains(sd_buf_cstr(&err), "did you mean \"api.publicUrl\"?");
    assert_int_equal(sd_config_set(cfg, "storage.level.local.volume.assignment.preferredTypes",
                                   "fast,slow", &err),
                     0);
    assert_int_equal(
        sd_config_list(cfg, "storage.level.local.volume.assignment.preferredTypes", NULL), 2);
    sd_config_destroy(cfg);
    sd_buf_fini(&err);
}

static void test_getters(void **state)
{
    const char *sets[] = {"pprof.enabled=on", "storage.level.local.encoding.compression.type=NONE",
                          "source.http.maxRequestBodySize=1048576",
                          "storage.level.staging.upload.trigger.interval=90s"};
    struct sd_config *cfg = load_sets(sets, 4);

    (void)state;
    assert_int_equal(sd_config_bool(cfg, "pprof.enabled"), 1);
    assert_int_equal(sd_config_int(cfg, "pprof.enabled"), 1);
    assert_string_equal(sd_config_str(cfg, "pprof.enabled"), "true");
    assert_string_equal(sd_config_str(cfg, "storage.level.local.encoding.compression.type"),
                        "none");
    assert_string_equal(sd_config_str(cfg, "source.http.maxRequestBodySize"), "1MB");
    assert_string_equal(sd_config_str(cfg, "storage.level.staging.upload.trigger.interval"),
                        "1m30s");
    assert_int_equal(sd_config_int(cfg, "storage.level.staging.upload.trigger.interval"), 90000);
    assert_string_equal(sd_config_str(cfg, "storage.retry.multiplier"), "4");
    assert_string_equal(sd_config_str(cfg, "source.http.maxConnections"), "200000");
    sd_config_destroy(cfg);
}

/* Calls a getter the wrong way in a child; expects it to abort. */
static void expect_abort(int which)
{
    pid_t pid;
    int status = 0;

    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct sd_config *cfg = NULL;
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, STDERR_FILENO);
        if (sd_config_load(NULL, &cfg, NULL) != 0) {
            _exit(3);
        }
        switch (which) {
        case 0:
            (void)sd_config_bool(cfg, "source.http.maxConnections");
            break;
        case 1:
            (void)sd_config_int(cfg, "no.such.key");
            break;
        case 2:
            (void)sd_config_list(cfg, "nodeID", NULL);
            break;
        default:
            (void)sd_config_float(cfg, "source.http.requestTimeout");
            break;
        }
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

static void test_getter_misuse_aborts(void **state)
{
    int i;

    (void)state;
    for (i = 0; i < 4; i++) {
        expect_abort(i);
    }
}

/* source.http.loops accepts exactly as many loops as one sd_http group can join (the node
 * asserts at compile time that storage has an appender for each). */
static void test_loops_bound_is_the_group_limit(void **state)
{
    const struct sd_opt *o = sd_opt_find("source.http.loops");

    (void)state;
    assert_non_null(o);
    assert_int_equal(o->max, SD_HTTP_MAX_LOOPS);
}

static void test_dump(void **state)
{
    char *env[] = {"STREAM_ADMIN_TOKEN=my-admin-token-0123456789", NULL};
    const char *sets[] = {"nodeID=node: one", "storage.level.local.volume.assignment."
                                              "preferredTypes=ssd,hdd"};
    struct sd_config_args args = {0};
    struct sd_config *cfg = NULL;
    struct sd_config *back = NULL;
    struct sd_buf out = SD_BUF_INIT;
    struct sd_buf err = SD_BUF_INIT;
    json_error_t jerr;
    json_t *root;
    struct tmp t;
    char *path;
    size_t n = 0;
    const struct sd_opt *tab = sd_opt_table(&n);
    const char *prev = NULL;
    char *line;
    char *save = NULL;
    size_t lines = 0;

    (void)state;
    args.envp = env;
    args.sets = sets;
    args.nsets = 2;
    assert_int_equal(sd_config_load(&args, &cfg, &err), 0);

    sd_config_dump(cfg, 0, &out);
    assert_contains(out.data, "auth.adminToken: \"***\"\n");
    assert_not_contains(out.data, "my-admin-token");
    assert_contains(out.data, "etcd.password: \"\"\n");
    assert_contains(out.data, "watchTelemetryInterval: 5m  # cluster\n");
    assert_contains(out.data, "pprof.enabled: false  # not applicable\n");
    assert_contains(out.data, "encryption.aws.region: \"\"  # rejected\n");
    assert_contains(out.data, "source.http.listen: 0.0.0.0:7000\n");
    assert_contains(out.data, "source.http.maxRequestBodySize: 1MB\n");
    assert_contains(out.data, "source.http.requestTimeout: 30s\n");
    assert_contains(out.data, "nodeID: \"node: one\"\n");
    assert_contains(out.data, "storage.level.local.volume.assignment.preferredTypes: [ssd, hdd]\n");
    /* one line per key, sorted */
    {
        char *copy = sd_xstrdup(out.data);
        for (line = strtok_r(copy, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
            if (prev != NULL) {
                assert_true(strcmp(prev, line) < 0);
            }
            prev = line;
            lines++;
        }
        assert_int_equal(lines, n);
        free(copy);
    }

    /* the YAML dump loads back (but for the redacted secret) */
    tmp_make(&t);
    sd_config_set(cfg, "auth.adminToken", "", &err);
    sd_buf_reset(&out);
    sd_config_dump(cfg, 0, &out);
    path = tmp_file(&t, "dump.yaml", out.data);
    memset(&args, 0, sizeof(args));
    args.file = path;
    if (sd_config_load(&args, &back, &err) != 0) {
        fail_msg("reloading the dump failed: %s", sd_buf_cstr(&err));
    }
    assert_string_equal(sd_config_str(back, "nodeID"), "node: one");
    assert_int_equal(
        sd_config_list(back, "storage.level.local.volume.assignment.preferredTypes", NULL), 2);
    sd_config_destroy(back);
    free(path);
    tmp_remove(&t);

    /* JSON */
    assert_int_equal(sd_config_set(cfg, "auth.adminToken", "another-admin-token-42", &err), 0);
    sd_buf_reset(&out);
    sd_config_dump(cfg, 1, &out);
    assert_not_contains(out.data, "another-admin-token");
    root = json_loads(out.data, 0, &jerr);
    assert_non_null(root);
    assert_int_equal(json_object_size(root), n + 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(root, "$marks"),
                                                          "watchTelemetryInterval")),
                        "cluster");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(root, "$marks"), "datadog.enabled")),
        "not applicable");
    assert_null(json_object_get(json_object_get(root, "$marks"), "source.http.listen"));
    assert_string_equal(json_string_value(json_object_get(root, "auth.adminToken")), "***");
    assert_string_equal(json_string_value(json_object_get(root, "source.http.listen")),
                        "0.0.0.0:7000");
    assert_int_equal(json_integer_value(json_object_get(root, "source.http.maxConnections")),
                     200000);
    assert_true(json_is_true(json_object_get(root, "storage.level.local.encoding.sync.wait")));
    assert_true(json_real_value(json_object_get(root, "storage.retry.multiplier")) == 4.0);
    assert_string_equal(json_string_value(json_object_get(root, "source.http.maxRequestBodySize")),
                        "1MB");
    assert_int_equal(json_array_size(json_object_get(
                         root, "storage.level.local.volume.assignment.preferredTypes")),
                     2);
    /* keys in table order */
    {
        char *first = sd_xasprintf("{\n  \"%s\":", tab[0].key);
        assert_true(strncmp(out.data, first, strlen(first)) == 0);
        free(first);
    }
    json_decref(root);

    /* the JSON dump loads back too: the loader skips "$marks" */
    tmp_make(&t);
    sd_config_set(cfg, "auth.adminToken", "", &err);
    sd_buf_reset(&out);
    sd_config_dump(cfg, 1, &out);
    path = tmp_file(&t, "dump.json", out.data);
    memset(&args, 0, sizeof(args));
    args.file = path;
    if (sd_config_load(&args, &back, &err) != 0) {
        fail_msg("reloading the JSON dump failed: %s", sd_buf_cstr(&err));
    }
    assert_string_equal(sd_config_str(back, "nodeID"), "node: one");
    sd_config_destroy(back);
    free(path);
    tmp_remove(&t);
    sd_config_destroy(cfg);
    sd_buf_fini(&out);
    sd_buf_fini(&err);
}

static void test_apply_text(void **state)
{
    struct sd_config *cfg = load_sets(NULL, 0);
    struct sd_buf err = SD_BUF_INIT;
    const char *yaml = "pprof: {listen: \"127.0.0.1:4001\"}\n";
    const char *json = "{\"pprof.enabled\": true}";
    const char *nul = "nodeID: \"a\\0b\"\n";

    (void)state;
    assert_int_equal(sd_config_apply_text(cfg, yaml, strlen(yaml), 0, "inline", &err), 0);
    assert_string_equal(sd_config_str(cfg, "pprof.listen"), "127.0.0.1:4001");
    assert_int_equal(sd_config_apply_text(cfg, json, strlen(json), 1, "x", &err), 0);
    assert_true(sd_config_bool(cfg, "pprof.enabled"));
    assert_int_equal(sd_config_apply_text(cfg, nul, strlen(nul), 0, "nul", &err), SD_EINVAL);
    assert_contains(sd_buf_cstr(&err), "NUL");
    sd_config_destroy(cfg);
    sd_buf_fini(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_sorted_and_findable),
        cmocka_unit_test(test_table_defaults_valid),
        cmocka_unit_test(test_table_flags),
        cmocka_unit_test(test_table_ranges),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_format_size),
        cmocka_unit_test(test_format_duration),
        cmocka_unit_test(test_opt_parse_messages),
        cmocka_unit_test(test_env_names),
        cmocka_unit_test(test_suggest),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_layering_yaml),
        cmocka_unit_test(test_layering_json),
        cmocka_unit_test(test_unknown_key_in_file),
        cmocka_unit_test(test_unknown_key_in_set),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_unknown_env_is_warning),
        cmocka_unit_test(test_marked_keys),
        cmocka_unit_test(test_config_doc),
        cmocka_unit_test(test_env_values),
        cmocka_unit_test(test_derived),
        cmocka_unit_test(test_set_after_load),
        cmocka_unit_test(test_getters),
        cmocka_unit_test(test_getter_misuse_aborts),
        cmocka_unit_test(test_loops_bound_is_the_group_limit),
        cmocka_unit_test(test_dump),
        cmocka_unit_test(test_apply_text),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
