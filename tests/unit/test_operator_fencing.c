/* test_operator_fencing.c: two storage coordinators that both think they own a sink (as two
 * nodes do for a moment when their views of the group differ) import its files on one state
 * store: every file transition is applied exactly once (the store's history of each file entity
 * shows each state once) and every record reaches the table once.
 *
 * DESIGN: one writer node's operator (storage + staging) uploads the slices; two coordinator
 * operators (staging + tables, no storage, no membership: each coordinates every sink) race on
 * the files; the test rotates 30 one-record files through them. The history is replayed with a
 * watch from revision 1 (the embedded store keeps the last 10,000 revisions). */
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
#include "staging/sd_staging.h"
#include "state/sd_state.h"
#include "storage/sd_operator.h"
#include "storage/sd_storage.h"
#include "tables/sd_tables.h"

#include "sink_files_fixture.h"

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SINK_KEY "1/2/src/snk"
#define NFILES 30

static void on_sync(void *arg, struct sd_slice_handle *slice, uint64_t seq, int rc)
{
    (void)arg;
    (void)seq;
    if (rc == SD_ECLOSED) {
        sd_storage_slice_release(slice);
    }
}

static size_t count_prefix(struct sd_state *st, const char *prefix)
{
    struct sd_kvs kvs;
    size_t n;

    memset(&kvs, 0, sizeof(kvs));
    assert_int_equal(sd_state_range(st, prefix, 0, &kvs), 0);
    n = kvs.n;
    sd_kvs_free(&kvs);
    return n;
}

/* The replayed history: every state each file entity was put in, as "<key> <state>" lines. */
struct history {
    pthread_mutex_t mu;
    json_t *puts; /* {"<fileKey>": ["writing", "closing", ...]} */
    int64_t rev;
};

static void on_history(const struct sd_watch_event *events, size_t n, int64_t rev, int rc,
                       void *arg)
{
    struct history *h = arg;

    (void)rc;
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < n; i++) {
        json_t *j, *list;
        if (events[i].type != SD_WATCH_PUT) {
            continue;
        }
        j = json_loadb(events[i].kv->value, events[i].kv->value_len, 0, NULL);
        list = json_object_get(h->puts, events[i].kv->key);
        if (list == NULL) {
            list = json_array();
            json_object_set_new(h->puts, events[i].kv->key, list);
        }
        json_array_append(list, json_object_get(j, "state"));
        json_decref(j);
    }
    if (n > 0) {
        h->rev = rev;
    }
    pthread_mutex_unlock(&h->mu);
}

static void test_racing_coordinators_apply_each_transition_once(void **state)
{
    char dir[256], data_dir_set[300], staging_path[300], db_path[300];
    const char *sets[] = {
        data_dir_set,
        "storage.level.local.writer.allocation.enabled=false",
        "storage.diskCleanup.enabled=false",
        "storage.level.staging.operator.sliceUploadCheckInterval=500ms",
        "storage.level.target.operator.fileImportCheckInterval=500ms",
        "storage.level.staging.operator.sliceRotationCheckInterval=100ms",
        "storage.level.target.operator.fileRotationCheckInterval=100ms",
        "storage.level.staging.upload.minInterval=30m",
        "storage.level.target.import.minInterval=24h",
    };
    struct sd_config_args args = {NULL, NULL, sets, sizeof(sets) / sizeof(sets[0]), NULL};
    struct sd_config *cfg = NULL;
    struct sd_health *health = sd_health_create();
    pthread_mutex_t slots_lock;
    struct sd_operator_deps writer, coord;
    struct sd_operator *ops[3] = {NULL, NULL, NULL};
    struct sd_state *st = NULL;
    struct sd_storage *storage = NULL;
    struct sd_staging *staging = NULL;
    struct sd_tables *tables = NULL;
    struct sd_sink_slot *slot;
    struct sd_slice_handle *slice;
    struct sd_buf err = SD_BUF_INIT;
    struct sd_watch *w = NULL;
    struct history h;
    json_t *sink, *settings, *states;
    char *file_key;
    const char *key;
    sqlite3 *db;
    sqlite3_stmt *q;
    uint64_t seq;
    int64_t deadline;

    (void)state;
    sd_test_mkdtemp(dir, sizeof(dir), "fencing");
    snprintf(data_dir_set, sizeof(data_dir_set), "dataDir=%s", dir);
    snprintf(staging_path, sizeof(staging_path), "%s/staging", dir);
    pthread_mutex_init(&slots_lock, NULL);
    assert_int_equal(sd_config_load(&args, &cfg, &err), 0);
    assert_int_equal(sd_state_open(cfg, &st), 0);
    assert_int_equal(sd_storage_open(cfg, st, health, "writer-1", &storage, &err), 0);
    sd_storage_set_sync_listener(storage, on_sync, NULL);
    assert_int_equal(sd_staging_open_backend("local", cfg, staging_path, &staging), 0);
    assert_int_equal(sd_tables_open(cfg, &tables), 0);
    writer = (struct sd_operator_deps){st, storage, staging, NULL, "writer-1", &slots_lock, NULL};
    coord = (struct sd_operator_deps){st, NULL, staging, tables, "coordinator", &slots_lock, NULL};
    assert_int_equal(sd_operator_start(cfg, &writer, &ops[0]), 0);
    assert_int_equal(sd_operator_start(cfg, &coord, &ops[1]), 0);
    assert_int_equal(sd_operator_start(cfg, &coord, &ops[2]), 0);

    /* 30 files of one record each: the test rotates them as a coordinator would */
    fixture_define(st, storage);
    file_key = fixture_open_file(st, cfg, NULL);
    sink = fixture_sink();
    settings = json_object();
    assert_int_equal(sd_storage_sink_activate(storage, sink, settings, &slot), 0);
    fixture_sync(storage, &slots_lock);
    for (int i = 0; i < NFILES; i++) {
        char row[32], *next;
        int len = snprintf(row, sizeof(row), "\"r%d\"\n", i);
        assert_int_equal(sd_storage_append(slot, 0, row, (size_t)len, 1, sd_now_ms(), &slice, &seq),
                         0);
        sd_storage_flush(storage, 0);
        next = fixture_open_file(st, cfg, file_key);
        free(file_key);
        file_key = next;
        fixture_sync(storage, &slots_lock);
        usleep(30 * 1000);
    }
    free(file_key);
    json_decref(sink);
    json_decref(settings);
    for (deadline = sd_now_ms() + 60000;
         count_prefix(st, "storage/file/level/target/" SINK_KEY "/") < NFILES;) {
        assert_true(sd_now_ms() < deadline);
        usleep(100 * 1000);
    }
    usleep(1500 * 1000); /* a late duplicate transition would land now */
    for (int i = 0; i < 3; i++) {
        sd_operator_stop(ops[i]);
    }

    /* every state of every file entity was put once */
    memset(&h, 0, sizeof(h));
    pthread_mutex_init(&h.mu, NULL);
    h.puts = json_object();
    assert_int_equal(sd_state_watch(st, "storage/file/all/", 1, on_history, &h, &w), 0);
    for (deadline = sd_now_ms() + 10000;;) {
        struct sd_kvs kvs;
        int64_t now_rev, seen;
        memset(&kvs, 0, sizeof(kvs));
        assert_int_equal(sd_state_range(st, "storage/file/all/", 1, &kvs), 0);
        now_rev = kvs.rev;
        sd_kvs_free(&kvs);
        pthread_mutex_lock(&h.mu);
        seen = h.rev;
        pthread_mutex_unlock(&h.mu);
        if (seen > 0 && json_object_size(h.puts) >= NFILES + 1 && seen >= now_rev - 50) {
            break;
        }
        assert_true(sd_now_ms() < deadline);
        usleep(50 * 1000);
    }
    usleep(300 * 1000);
    sd_state_unwatch(st, w);
    json_object_foreach(h.puts, key, states)
    {
        size_t i, k;
        json_t *a, *b;
        json_array_foreach(states, i, a)
        {
            json_array_foreach(states, k, b)
            {
                if (k > i && json_equal(a, b)) {
                    fail_msg("file %s was put in state %s twice", key, json_string_value(a));
                }
            }
        }
    }
    json_decref(h.puts);
    pthread_mutex_destroy(&h.mu);

    /* and every record is in the table once */
    snprintf(db_path, sizeof(db_path), "%s/tables/project-1.sqlite", dir);
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT count(*), count(DISTINCT body) FROM \"in.c-b.t\"",
                                        -1, &q, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(q, 0), NFILES);
    assert_int_equal(sqlite3_column_int(q, 1), NFILES);
    sqlite3_finalize(q);
    sqlite3_close(db);

    sd_storage_close(storage);
    sd_tables_close(tables);
    sd_staging_close(staging);
    sd_state_close(st);
    sd_health_destroy(health);
    sd_config_destroy(cfg);
    pthread_mutex_destroy(&slots_lock);
    sd_buf_fini(&err);
    sd_rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_racing_coordinators_apply_each_transition_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
