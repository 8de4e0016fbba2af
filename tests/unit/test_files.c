/* test_files.c: the coordinator's file lifecycle across writer nodes (sd_files) on the embedded
 * store, and a writer following it (sd_storage_sync_slices): a file takes a slice on every live
 * writer node, slice and file rotations and closes move exactly what they should, a change of an
 * entity read earlier conflicts, a writer node that joins gets its slice, and a writer switches
 * its slot to the new slice and reports close-sync only after the old writer is closed. */
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
#include "core/sd_health.h"
#include "core/sd_time.h"
#include "state/sd_state.h"
#include "storage/sd_files.h"
#include "storage/sd_storage.h"

#include "sink_files_fixture.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct env {
    char dir[512];
    struct sd_config *cfg;
    struct sd_state *st;
};

static struct env *env_open(void)
{
    struct env *e = calloc(1, sizeof(*e));
    char data_dir_set[600];
    const char *sets[] = {
        data_dir_set,
        "storage.level.local.writer.allocation.enabled=false",
        "storage.diskCleanup.enabled=false",
        "storage.statistics.sync.interval=100ms",
    };
    struct sd_config_args args = {NULL, NULL, sets, sizeof(sets) / sizeof(sets[0]), NULL};
    struct sd_buf err = SD_BUF_INIT;

    sd_test_mkdtemp(e->dir, sizeof(e->dir), "files");
    snprintf(data_dir_set, sizeof(data_dir_set), "dataDir=%s", e->dir);
    assert_int_equal(sd_config_load(&args, &e->cfg, &err), 0);
    assert_int_equal(sd_state_open(e->cfg, &e->st), 0);
    sd_buf_fini(&err);
    return e;
}

static void env_close(struct env *e)
{
    sd_state_close(e->st);
    sd_config_destroy(e->cfg);
    sd_rm_rf(e->dir);
    free(e);
}

/* Announces a writer volume of node_id. */
static void announce(struct env *e, const char *volume_id, const char *node_id)
{
    char key[128];
    json_t *v = json_pack("{s:s, s:s, s:s, s:s, s:s}", "volumeId", volume_id, "nodeId", node_id,
                          "path", "/volumes/x", "type", "default", "label", volume_id);

    snprintf(key, sizeof(key), "storage/volume/writer/%s", volume_id);
    fixture_put_json(e->st, key, v);
    json_decref(v);
}

/* {key: state} of every entity of kind under the sink. */
static json_t *states(struct env *e, const char *kind)
{
    char prefix[128];
    struct sd_kvs kvs;
    json_t *out = json_object();

    snprintf(prefix, sizeof(prefix), "storage/%s/all/" FIXTURE_SINK_KEY "/", kind);
    memset(&kvs, 0, sizeof(kvs));
    assert_int_equal(sd_state_range(e->st, prefix, 0, &kvs), 0);
    for (size_t i = 0; i < kvs.n; i++) {
        json_t *j = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
        json_object_set(out, kvs.items[i].key + strlen(prefix), json_object_get(j, "state"));
        json_decref(j);
    }
    sd_kvs_free(&kvs);
    return out;
}

/* How many entities of kind are in state, and (out, may be NULL) the key of the last one. */
static size_t count_in(struct env *e, const char *kind, const char *state, char *out, size_t len)
{
    json_t *all = states(e, kind), *v;
    const char *key;
    size_t n = 0;

    json_object_foreach(all, key, v)
    {
        if (strcmp(json_string_value(v), state) == 0) {
            n++;
            if (out != NULL) {
                snprintf(out, len, "%s/%s", FIXTURE_SINK_KEY, key);
            }
        }
    }
    json_decref(all);
    return n;
}

static void test_a_file_has_a_slice_on_every_writer_node(void **state)
{
    struct env *e = env_open();
    char *file_key;
    struct sd_kvs kvs;
    json_t *nodes = json_object();

    (void)state;
    announce(e, "volA", "n1");
    announce(e, "volB", "n2");
    announce(e, "volC", "n2"); /* assignment.count 1: one of n2's volumes */
    file_key = fixture_open_file(e->st, e->cfg, NULL);
    assert_int_equal(count_in(e, "file", "writing", NULL, 0), 1);
    assert_int_equal(count_in(e, "slice", "writing", NULL, 0), 2);
    memset(&kvs, 0, sizeof(kvs));
    assert_int_equal(sd_state_range(e->st, "storage/slice/level/local/", 0, &kvs), 0);
    for (size_t i = 0; i < kvs.n; i++) {
        json_t *j = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
        const char *vol = json_string_value(json_object_get(j, "volumeId"));
        const char *dir = json_string_value(json_object_get(json_object_get(j, "local"), "dir"));
        json_object_set_new(nodes, strcmp(vol, "volA") == 0 ? "n1" : "n2", json_true());
        assert_int_equal(strncmp(dir, "/volumes/x/" FIXTURE_SINK_KEY "/", 23), 0);
        assert_int_equal(strncmp(kvs.items[i].key + strlen("storage/slice/level/local/"), file_key,
                                 strlen(file_key)),
                         0);
        json_decref(j);
    }
    sd_kvs_free(&kvs);
    assert_int_equal(json_object_size(nodes), 2);
    json_decref(nodes);
    free(file_key);
    env_close(e);
}

static void test_no_writer_node_no_file(void **state)
{
    struct env *e = env_open();
    json_t *sink = fixture_sink(), *meta = sd_files_sink_meta(sink), *settings = json_object();
    struct sd_buf err = SD_BUF_INIT;

    (void)state;
    assert_int_equal(sd_files_open(e->st, &fixture_files, meta, settings, NULL, NULL, &err),
                     SD_ENOTFOUND);
    assert_string_equal(sd_buf_cstr(&err), "no volume is available for the file");
    assert_int_equal(count_in(e, "file", "writing", NULL, 0), 0);
    json_decref(sink);
    json_decref(meta);
    json_decref(settings);
    sd_buf_fini(&err);
    env_close(e);
}

static void test_too_many_writer_nodes_for_one_transaction(void **state)
{
    struct env *e = env_open();
    json_t *sink = fixture_sink(), *meta = sd_files_sink_meta(sink), *settings = json_object();
    struct sd_buf err = SD_BUF_INIT;

    (void)state;
    for (int i = 0; i < 64; i++) {
        char vol[16], node[16];
        snprintf(vol, sizeof(vol), "vol%02d", i);
        snprintf(node, sizeof(node), "n%02d", i);
        announce(e, vol, node);
    }
    /* etcd refuses a transaction of more than 128 operations: nothing is stored, clearly */
    assert_int_equal(sd_files_open(e->st, &fixture_files, meta, settings, NULL, NULL, &err),
                     -E2BIG);
    assert_string_equal(sd_buf_cstr(&err), "too many slices for one transaction");
    assert_int_equal(count_in(e, "file", "writing", NULL, 0), 0);
    assert_int_equal(count_in(e, "slice", "writing", NULL, 0), 0);
    json_decref(sink);
    json_decref(meta);
    json_decref(settings);
    sd_buf_fini(&err);
    env_close(e);
}

static void test_rotations_and_close_move_what_they_should(void **state)
{
    struct env *e = env_open();
    struct sd_buf err = SD_BUF_INIT;
    char *f1, *f2, slice_key[256], again[256];

    (void)state;
    announce(e, "volA", "n1");
    announce(e, "volB", "n2");
    f1 = fixture_open_file(e->st, e->cfg, NULL);
    /* slice rotation: the slice closes, its successor opens on its volume in the same file */
    assert_int_equal(count_in(e, "slice", "writing", slice_key, sizeof(slice_key)), 2);
    assert_int_equal(sd_files_rotate_slice(e->st, &fixture_files, slice_key, &err), 0);
    assert_int_equal(count_in(e, "slice", "writing", NULL, 0), 2);
    assert_int_equal(count_in(e, "slice", "closing", again, sizeof(again)), 1);
    assert_string_equal(again, slice_key);
    /* a rotation of what is no longer writing changes nothing */
    assert_int_equal(sd_files_rotate_slice(e->st, &fixture_files, slice_key, &err), SD_ECONFLICT);
    assert_int_equal(count_in(e, "slice", "writing", NULL, 0), 2);
    /* file rotation: the file and its writing slices close, the next file opens with 2 slices */
    f2 = fixture_open_file(e->st, e->cfg, f1);
    assert_int_equal(count_in(e, "file", "closing", NULL, 0), 1);
    assert_int_equal(count_in(e, "file", "writing", NULL, 0), 1);
    assert_int_equal(count_in(e, "slice", "closing", NULL, 0), 3);
    assert_int_equal(count_in(e, "slice", "writing", NULL, 0), 2);
    /* rotating a closed file again is refused (another coordinator did it first) */
    {
        json_t *sink = fixture_sink(), *meta = sd_files_sink_meta(sink), *s = json_object();
        assert_int_equal(sd_files_open(e->st, &fixture_files, meta, s, f1, NULL, &err),
                         SD_ECONFLICT);
        json_decref(sink);
        json_decref(meta);
        json_decref(s);
    }
    assert_int_equal(count_in(e, "file", "writing", NULL, 0), 1);
    /* the sink stops: its file and writing slices close, nothing opens */
    assert_int_equal(sd_files_close(e->st, f2, &err), 0);
    assert_int_equal(count_in(e, "file", "writing", NULL, 0), 0);
    assert_int_equal(count_in(e, "slice", "writing", NULL, 0), 0);
    assert_int_equal(count_in(e, "slice", "closing", NULL, 0), 5);
    assert_int_equal(sd_files_close(e->st, f2, &err), SD_ECONFLICT);
    free(f1);
    free(f2);
    sd_buf_fini(&err);
    env_close(e);
}

static void test_a_writer_node_that_joins_gets_its_slice(void **state)
{
    struct env *e = env_open();
    struct sd_buf err = SD_BUF_INIT;
    char *f1;

    (void)state;
    announce(e, "volA", "n1");
    f1 = fixture_open_file(e->st, e->cfg, NULL);
    assert_int_equal(count_in(e, "slice", "writing", NULL, 0), 1);
    assert_int_equal(sd_files_add_slices(e->st, &fixture_files, f1, &err), 0);
    announce(e, "volB", "n2");
    assert_int_equal(sd_files_add_slices(e->st, &fixture_files, f1, &err), 1);
    assert_int_equal(count_in(e, "slice", "writing", NULL, 0), 2);
    assert_int_equal(sd_files_add_slices(e->st, &fixture_files, f1, &err), 0);
    free(f1);
    sd_buf_fini(&err);
    env_close(e);
}

static void test_closesync_rev_is_the_lowest_report(void **state)
{
    struct env *e = env_open();

    (void)state;
    assert_true(sd_files_closesync_rev(e->st) == INT64_MAX);
    assert_int_equal(sd_state_put(e->st, SD_FILES_CLOSESYNC_PREFIX "n1", "9", 1, 0, NULL), 0);
    assert_int_equal(sd_state_put(e->st, SD_FILES_CLOSESYNC_PREFIX "n2", "5", 1, 0, NULL), 0);
    assert_int_equal(sd_files_closesync_rev(e->st), 5);
    env_close(e);
}

/* ---- a writer following the files ---- */

struct reports {
    pthread_mutex_t mu;
    int64_t rev;
    int calls;
};

static int on_closesync(void *arg, int64_t rev)
{
    struct reports *r = arg;

    pthread_mutex_lock(&r->mu);
    r->rev = rev;
    r->calls++;
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static void on_sync(void *arg, struct sd_slice_handle *slice, uint64_t seq, int rc)
{
    (void)arg;
    (void)seq;
    if (rc == SD_ECLOSED) {
        sd_storage_slice_release(slice);
    }
}

static int64_t mod_rev_of(struct env *e, const char *slice_key)
{
    char key[300];
    struct sd_kv kv;
    int64_t rev;

    snprintf(key, sizeof(key), "storage/slice/all/%s", slice_key);
    assert_int_equal(sd_state_get(e->st, key, &kv), 0);
    rev = kv.mod_rev;
    sd_kv_free(&kv);
    return rev;
}

static void test_a_writer_follows_its_slices_and_reports_closesync(void **state)
{
    struct env *e = env_open();
    struct sd_health *health = sd_health_create();
    struct reports r = {PTHREAD_MUTEX_INITIALIZER, 0, 0};
    pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
    struct sd_storage *storage = NULL;
    struct sd_sink_slot *slot;
    struct sd_slice_handle *slice;
    struct sd_buf err = SD_BUF_INIT;
    json_t *sink = fixture_sink(), *settings = json_object();
    char *f1, *f2, first[256], second[256];
    uint64_t seq;

    (void)state;
    assert_int_equal(sd_storage_open(e->cfg, e->st, health, "n1", &storage, &err), 0);
    sd_storage_set_sync_listener(storage, on_sync, NULL);
    sd_storage_set_closesync(storage, on_closesync, &r);
    fixture_define(e->st, storage);
    /* a slot without a slice yet refuses appends: nothing is written outside a slice */
    assert_int_equal(sd_storage_sink_activate(storage, sink, settings, &slot), 0);
    assert_int_equal(sd_storage_append(slot, 0, "a\n", 2, 1, sd_now_ms(), &slice, &seq),
                     SD_ECLOSED);
    f1 = fixture_open_file(e->st, e->cfg, NULL);
    fixture_sync(storage, &slots_lock);
    assert_int_equal(sd_storage_append(slot, 0, "a\n", 2, 1, sd_now_ms(), &slice, &seq), 0);
    assert_int_equal(count_in(e, "slice", "writing", first, sizeof(first)), 1);
    /* slice rotation: the slot writes the successor; the report covers the old slice's close */
    assert_int_equal(sd_files_rotate_slice(e->st, &fixture_files, first, &err), 0);
    fixture_sync(storage, &slots_lock);
    assert_int_equal(count_in(e, "slice", "writing", second, sizeof(second)), 1);
    assert_string_not_equal(first, second);
    assert_int_equal(sd_storage_append(slot, 0, "b\n", 2, 1, sd_now_ms(), &slice, &seq), 0);
    pthread_mutex_lock(&r.mu);
    assert_true(r.rev >= mod_rev_of(e, first));
    pthread_mutex_unlock(&r.mu);
    assert_false(sd_storage_slice_is_closing(storage, first));
    /* file rotation: the slot moves to the new file */
    f2 = fixture_open_file(e->st, e->cfg, f1);
    fixture_sync(storage, &slots_lock);
    assert_int_equal(sd_storage_append(slot, 0, "c\n", 2, 1, sd_now_ms(), &slice, &seq), 0);
    {
        json_t *open = sd_storage_open_slices(storage);
        assert_int_equal(json_array_size(open), 1);
        assert_string_equal(json_string_value(json_object_get(json_array_get(open, 0), "fileKey")),
                            f2);
        json_decref(open);
    }
    /* the sink stops: the slot is paused, its writer closed, and the report says so */
    assert_int_equal(sd_files_close(e->st, f2, &err), 0);
    fixture_sync(storage, &slots_lock);
    assert_int_equal(sd_storage_append(slot, 0, "d\n", 2, 1, sd_now_ms(), &slice, &seq),
                     SD_ECLOSED);
    assert_int_equal(count_in(e, "slice", "closing", second, sizeof(second)), 3);
    pthread_mutex_lock(&r.mu);
    assert_true(r.rev >= mod_rev_of(e, second));
    pthread_mutex_unlock(&r.mu);
    sd_storage_close(storage);
    json_decref(sink);
    json_decref(settings);
    free(f1);
    free(f2);
    sd_buf_fini(&err);
    sd_health_destroy(health);
    env_close(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_file_has_a_slice_on_every_writer_node),
        cmocka_unit_test(test_no_writer_node_no_file),
        cmocka_unit_test(test_too_many_writer_nodes_for_one_transaction),
        cmocka_unit_test(test_rotations_and_close_move_what_they_should),
        cmocka_unit_test(test_a_writer_node_that_joins_gets_its_slice),
        cmocka_unit_test(test_closesync_rev_is_the_lowest_report),
        cmocka_unit_test(test_a_writer_follows_its_slices_and_reports_closesync),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
