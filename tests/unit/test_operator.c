/* test_operator.c: unit tests of storage/sd_operator driven through a real storage writer,
 * state store and table store, with a staging backend whose uploads hang until the test
 * releases them: an upload that overruns storage.level.staging.operator.sliceUploadTimeout is
 * abandoned and recorded as the reference's "slice upload timeout" with a retry time, and once
 * the store answers again the retry uploads the slice.
 *
 * DESIGN: one scenario with a 30 s timeout (the reference's minimum), so it takes about 31 s.
 * The hanging backend wraps the local backend and blocks put_files on a gate (mutex +
 * condition); everything else is delegated. State is read back from the state store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/sd_config.h"
#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "core/sd_fs.h"
#include "core/sd_health.h"
#include "core/sd_time.h"
#include "staging/sd_staging.h"
#include "state/sd_state.h"
#include "storage/sd_operator.h"
#include "storage/sd_storage.h"
#include "tables/sd_tables.h"

#include "sink_files_fixture.h"

#define SINK_KEY "1/2/src/snk"

/* ---- a staging backend whose puts wait for the gate ---- */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int is_open;
    int puts;
    struct sd_staging *inner;
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, NULL};

static int hang_put_files(void *ctx, const char *key, const char *const *paths, size_t npaths,
                          uint64_t *size)
{
    (void)ctx;
    pthread_mutex_lock(&gate.lock);
    gate.puts++;
    while (!gate.is_open) {
        pthread_cond_wait(&gate.cond, &gate.lock);
    }
    pthread_mutex_unlock(&gate.lock);
    return sd_staging_put_files(gate.inner, key, paths, npaths, size);
}

static int hang_open(const struct sd_config *cfg, const char *location, void **ctx)
{
    (void)cfg;
    (void)location;
    *ctx = NULL;
    return 0;
}

static void hang_close(void *ctx)
{
    (void)ctx;
}

static int hang_head(void *ctx, const char *key, uint64_t *size)
{
    (void)ctx;
    return sd_staging_head(gate.inner, key, size);
}

static int hang_open_read(void *ctx, const char *key, struct sd_staging_reader **out)
{
    (void)ctx;
    return sd_staging_open_read(gate.inner, key, out);
}

static ssize_t hang_read(struct sd_staging_reader *r, void *buf, size_t len)
{
    return sd_staging_read(gate.inner, r, buf, len);
}

static void hang_close_read(struct sd_staging_reader *r)
{
    sd_staging_close_read(gate.inner, r);
}

static int hang_del(void *ctx, const char *key)
{
    (void)ctx;
    return sd_staging_del(gate.inner, key);
}

static int hang_del_prefix(void *ctx, const char *prefix)
{
    (void)ctx;
    return sd_staging_del_prefix(gate.inner, prefix);
}

static int hang_list(void *ctx, const char *prefix, char ***keys, size_t *n)
{
    (void)ctx;
    return sd_staging_list(gate.inner, prefix, keys, n);
}

static const struct sd_staging_ops hang_ops = {
    "hang",    hang_open,       hang_close, hang_put_files,  hang_head, hang_open_read,
    hang_read, hang_close_read, hang_del,   hang_del_prefix, hang_list,
};

/* ---- helpers ---- */

static void on_sync(void *arg, struct sd_slice_handle *slice, uint64_t seq, int rc)
{
    (void)arg;
    (void)seq;
    if (rc == SD_ECLOSED) {
        sd_storage_slice_release(slice);
    }
}

/* The stored slice entity of the sink's only uploading/uploaded slice (owned), or NULL. */
static json_t *find_slice(struct sd_state *state, const char *want_state)
{
    struct sd_kvs kvs;
    json_t *found = NULL;

    memset(&kvs, 0, sizeof(kvs));
    assert_int_equal(sd_state_range(state, "storage/slice/all/" SINK_KEY "/", 0, &kvs), 0);
    for (size_t i = 0; i < kvs.n && found == NULL; i++) {
        json_t *j = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
        if (strcmp(json_string_value(json_object_get(j, "state")) ?: "", want_state) == 0) {
            found = j;
        } else {
            json_decref(j);
        }
    }
    sd_kvs_free(&kvs);
    return found;
}

static void test_stuck_upload_is_abandoned_and_retried(void **state)
{
    const char *base = getenv("SD_TEST_TMPDIR");
    char dir[512], data_dir_set[600], staging_path[600];
    const char *sets[] = {
        data_dir_set,
        "storage.level.local.writer.allocation.enabled=false",
        "storage.diskCleanup.enabled=false",
        "storage.level.staging.operator.sliceUploadTimeout=30s",
        "storage.level.staging.operator.sliceUploadCheckInterval=500ms",
        "storage.level.staging.upload.minInterval=30m",
        "storage.level.target.import.minInterval=24h",
        "storage.retry.initialInterval=100ms",
        "storage.retry.maxInterval=200ms",
    };
    struct sd_config_args args = {NULL, NULL, sets, sizeof(sets) / sizeof(sets[0]), NULL};
    struct sd_staging hang = {&hang_ops, NULL};
    struct sd_config *cfg = NULL;
    struct sd_health *health;
    pthread_mutex_t slots_lock;
    struct sd_operator_deps d;
    struct sd_operator *op = NULL;
    struct sd_sink_slot *slot;
    struct sd_slice_handle *slice;
    struct sd_buf err = SD_BUF_INIT;
    json_t *sink, *settings, *j = NULL;
    char *file_key, slice_key[256];
    uint64_t seq;
    int64_t t0;

    (void)state;
    if (base == NULL || base[0] == '\0') {
        base = "/tmp";
    }
    assert_int_equal(sd_mkdir_p(base, 0755), 0);
    snprintf(dir, sizeof(dir), "%s/sd-operator-XXXXXX", base);
    assert_non_null(mkdtemp(dir));
    snprintf(data_dir_set, sizeof(data_dir_set), "dataDir=%s", dir);
    snprintf(staging_path, sizeof(staging_path), "%s/staging", dir);
    memset(&d, 0, sizeof(d));
    pthread_mutex_init(&slots_lock, NULL);
    d.slots_lock = &slots_lock;
    assert_int_equal(sd_config_load(&args, &cfg, &err), 0);
    d.node_id = sd_config_str(cfg, "nodeID");
    health = sd_health_create();
    assert_int_equal(sd_state_open(cfg, &d.state), 0);
    assert_int_equal(sd_storage_open(cfg, d.state, health, d.node_id, &d.storage, &err), 0);
    sd_storage_set_sync_listener(d.storage, on_sync, NULL);
    assert_int_equal(sd_staging_open_backend("local", cfg, staging_path, &gate.inner), 0);
    d.staging = &hang;
    assert_int_equal(sd_tables_open(cfg, &d.tables), 0);

    /* one sink, one record, then a rotation: the slice waits for its upload */
    fixture_define(d.state, d.storage);
    file_key = fixture_open_file(d.state, cfg, NULL);
    sink = fixture_sink();
    settings = json_object();
    assert_int_equal(sd_storage_sink_activate(d.storage, sink, settings, &slot), 0);
    fixture_sync(d.storage, &slots_lock);
    assert_int_equal(sd_storage_append(slot, 0, "a\n", 2, 1, sd_now_ms(), &slice, &seq), 0);
    sd_storage_flush(d.storage, 0);
    j = find_slice(d.state, "writing");
    assert_non_null(j);
    snprintf(slice_key, sizeof(slice_key), "%s/%s/%s", file_key,
             json_string_value(json_object_get(j, "volumeId")),
             json_string_value(json_object_get(j, "sliceOpenedAt")));
    json_decref(j);
    j = NULL;
    assert_int_equal(sd_files_rotate_slice(d.state, &fixture_files, slice_key, &err), 0);
    fixture_sync(d.storage, &slots_lock);
    json_decref(sink);
    json_decref(settings);
    free(file_key);

    t0 = sd_now_ms();
    assert_int_equal(sd_operator_start(cfg, &d, &op), 0);
    /* the slice moves to uploading (close-sync), the upload hangs; after the timeout the
     * attempt is abandoned and recorded */
    while ((j = find_slice(d.state, "uploading")) == NULL ||
           json_object_get(j, "retryReason") == NULL) {
        json_decref(j);
        assert_true(sd_now_ms() - t0 < 60000);
        usleep(200000);
    }
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "retryReason")),
                        "slice upload timeout");
    assert_int_equal(json_integer_value(json_object_get(j, "retryAttempt")), 1);
    assert_non_null(json_object_get(j, "retryAfter"));
    assert_true(sd_now_ms() - t0 >= 29000);
    json_decref(j);
    /* still hanging: no second attempt runs beside the abandoned one */
    usleep(1000000);
    pthread_mutex_lock(&gate.lock);
    assert_int_equal(gate.puts, 1);
    gate.is_open = 1;
    pthread_cond_broadcast(&gate.cond);
    pthread_mutex_unlock(&gate.lock);
    /* the store answers again: the retry uploads the slice */
    while ((j = find_slice(d.state, "uploaded")) == NULL) {
        assert_true(sd_now_ms() - t0 < 90000);
        usleep(200000);
    }
    assert_non_null(json_object_get(json_object_get(j, "staging"), "key"));
    json_decref(j);

    sd_operator_stop(op);
    sd_storage_close(d.storage);
    sd_tables_close(d.tables);
    sd_staging_close(gate.inner);
    sd_state_close(d.state);
    sd_health_destroy(health);
    sd_config_destroy(cfg);
    pthread_mutex_destroy(&slots_lock);
    sd_buf_fini(&err);
    sd_rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stuck_upload_is_abandoned_and_retried),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
