/* test_operator_sink_gone.c: a coordinator drops the files of a sink only when the state store
 * says the sink is gone, never when reading the sink's definition fails (an etcd leader change
 * once made a coordinator drop an importing file "of a deleted sink", and its acknowledged
 * records with it).
 *
 * DESIGN: the store is the embedded one behind a wrapper whose reads of definition/sink/ keys
 * fail while `failing` is set. One importing file of a sink without a definition, whose import
 * keeps failing (its staged object is missing), sits before a coordinator: while the reads
 * fail it must stay; once they answer "not found" it is dropped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_tmpdir.h"
#include "config/sd_config.h"
#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "core/sd_fs.h"
#include "core/sd_time.h"
#include "staging/sd_staging.h"
#include "state/sd_state.h"
#include "storage/sd_entity.h"
#include "storage/sd_files.h"
#include "storage/sd_operator.h"
#include "tables/sd_tables.h"

#include "sink_files_fixture.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const struct sd_state_ops *real_ops;
static volatile int failing;

static int failing_get(void *ctx, const char *key, struct sd_kv *out)
{
    if (failing && strncmp(key, "definition/sink/", 16) == 0) {
        return SD_EUNHEALTHY; /* as the etcd backend while no leader answers */
    }
    return real_ops->get(ctx, key, out);
}

/* Moves entity kind/key to new_state (read just before); staged_key: a slice's object. */
static void move(struct sd_state *st, const char *kind, const char *key, const char *new_state,
                 const char *staged_key)
{
    struct sd_entity_batch *b = calloc(1, sizeof(*b));
    int64_t rev = 0;
    int rc;
    json_t *j = sd_entity_read(st, kind, key, &rev, &rc);

    assert_non_null(j);
    if (staged_key != NULL) {
        json_object_set_new(json_object_get(j, "staging"), "key", json_string(staged_key));
    }
    sd_entity_move(b, kind, key, j, rev, new_state, sd_now_ms());
    assert_int_equal(sd_entity_commit(st, b, NULL), 0);
    json_decref(j);
    free(b);
}

static int file_exists(struct sd_state *st, const char *file_key)
{
    char key[300];
    struct sd_kv kv;
    int rc;

    snprintf(key, sizeof(key), "storage/file/all/%s", file_key);
    rc = real_ops->get(st->ctx, key, &kv);
    if (rc == 0) {
        sd_kv_free(&kv);
    }
    return rc == 0;
}

static void test_importing_file_stays_while_the_sink_cannot_be_read(void **state)
{
    char dir[512], data_dir_set[600], staging_path[600];
    const char *sets[] = {
        data_dir_set,
        "storage.level.staging.operator.sliceRotationCheckInterval=100ms",
        "storage.retry.initialInterval=100ms",
        "storage.retry.maxInterval=200ms",
    };
    struct sd_config_args args = {NULL, NULL, sets, sizeof(sets) / sizeof(sets[0]), NULL};
    struct sd_config *cfg = NULL;
    struct sd_state *real = NULL;
    struct sd_state_ops ops;
    struct sd_state wrapped;
    struct sd_operator_deps d;
    struct sd_operator *op = NULL;
    struct sd_buf err = SD_BUF_INIT;
    pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
    json_t *vol;
    char *file_key, slice_key[300];
    struct sd_kvs kvs;
    int64_t deadline;

    (void)state;
    sd_test_mkdtemp(dir, sizeof(dir), "sinkgone");
    snprintf(data_dir_set, sizeof(data_dir_set), "dataDir=%s", dir);
    snprintf(staging_path, sizeof(staging_path), "%s/staging", dir);
    assert_int_equal(sd_config_load(&args, &cfg, &err), 0);
    assert_int_equal(sd_state_open(cfg, &real), 0);
    real_ops = real->ops;
    ops = *real->ops;
    ops.get = failing_get;
    wrapped = (struct sd_state){&ops, real->ctx};

    /* an importing file (one uploaded slice) of a sink whose definition is gone */
    vol = json_pack("{s:s, s:s, s:s, s:s, s:s}", "volumeId", "vol1", "nodeId", "n1", "path", dir,
                    "type", "default", "label", "1");
    fixture_put_json(real, "storage/volume/writer/vol1", vol);
    json_decref(vol);
    file_key = fixture_open_file(real, cfg, NULL);
    memset(&kvs, 0, sizeof(kvs));
    assert_int_equal(sd_state_range(real, "storage/slice/all/", 0, &kvs), 0);
    assert_int_equal(kvs.n, 1);
    snprintf(slice_key, sizeof(slice_key), "%s", kvs.items[0].key + strlen("storage/slice/all/"));
    sd_kvs_free(&kvs);
    move(real, "slice", slice_key, "closing", NULL);
    move(real, "slice", slice_key, "uploading", NULL);
    move(real, "slice", slice_key, "uploaded", "1/2/src/snk/missing.csv.gz"); /* never staged */
    move(real, "file", file_key, "closing", NULL);
    move(real, "file", file_key, "importing", NULL);

    memset(&d, 0, sizeof(d));
    d.state = &wrapped;
    d.node_id = "coordinator";
    d.slots_lock = &slots_lock;
    assert_int_equal(sd_staging_open_backend("local", cfg, staging_path, &d.staging), 0);
    assert_int_equal(sd_tables_open(cfg, &d.tables), 0);
    failing = 1;
    assert_int_equal(sd_operator_start(cfg, &d, &op), 0);
    usleep(1500 * 1000); /* about fifteen passes, each failing to read the sink */
    assert_true(file_exists(real, file_key));
    /* the store answers: the sink is gone, so is its file */
    failing = 0;
    for (deadline = sd_now_ms() + 10000; file_exists(real, file_key);) {
        assert_true(sd_now_ms() < deadline);
        usleep(100 * 1000);
    }
    sd_operator_stop(op);
    sd_tables_close(d.tables);
    sd_staging_close(d.staging);
    sd_state_close(real);
    sd_config_destroy(cfg);
    free(file_key);
    sd_buf_fini(&err);
    sd_rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_importing_file_stays_while_the_sink_cannot_be_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
