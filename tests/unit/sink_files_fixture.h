/* sink_files_fixture.h: a sink of the storage unit tests as the coordinator sees it: its source
 * and sink definitions, the writer's volumes announced, its files opened and rotated through
 * sd_files and the writer's slots following them (what the wiring does between nodes). */
#ifndef SINK_FILES_FIXTURE_H
#define SINK_FILES_FIXTURE_H

#include "config/sd_config.h"
#include "defs/sd_settings.h"
#include "state/sd_state.h"
#include "storage/sd_files.h"
#include "storage/sd_storage.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURE_SINK_KEY "1/2/src/snk"

static const struct sd_files_config fixture_files = {1, NULL, 0, "gzip"};

/* The sink "snk" of source "src" (project 1, branch 2) writing "body" to table in.c-b.t. */
static inline json_t *fixture_sink(void)
{
    return json_pack("{s:i, s:i, s:s, s:s, s:{s:s, s:{s:[{s:s, s:s}]}}}", "projectId", 1,
                     "branchId", 2, "sourceId", "src", "sinkId", "snk", "table", "tableId",
                     "in.c-b.t", "mapping", "columns", "type", "body", "name", "body");
}

static inline json_t *fixture_source(void)
{
    return json_pack("{s:i, s:i, s:s}", "projectId", 1, "branchId", 2, "sourceId", "src");
}

static inline void fixture_put_json(struct sd_state *st, const char *key, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);
    assert_int_equal(sd_state_put(st, key, text, strlen(text), 0, NULL), 0);
    free(text);
}

/* Stores the definitions and announces the writer's volumes (storage may be NULL). */
static inline void fixture_define(struct sd_state *st, struct sd_storage *storage)
{
    json_t *sink = fixture_sink(), *src = fixture_source(), *vols, *value;
    const char *key;

    fixture_put_json(st, "definition/source/active/1/2/src", src);
    fixture_put_json(st, "definition/sink/active/" FIXTURE_SINK_KEY, sink);
    if (storage != NULL) {
        vols = sd_storage_volume_announcements(storage, NULL);
        json_object_foreach(vols, key, value)
        {
            const char *text = json_string_value(value);
            assert_int_equal(sd_state_put(st, key, text, strlen(text), 0, NULL), 0);
        }
        json_decref(vols);
    }
    json_decref(sink);
    json_decref(src);
}

/* Opens the sink's next file (closing old_file_key, may be NULL) with the settings a
 * coordinator computes from cfg; returns its key (owned). */
static inline char *fixture_open_file(struct sd_state *st, const struct sd_config *cfg,
                                      const char *old_file_key)
{
    json_t *sink = fixture_sink(), *src = fixture_source();
    json_t *settings = sd_settings_snapshot(cfg, src, sink), *meta = sd_files_sink_meta(sink);
    struct sd_buf err = SD_BUF_INIT;
    char *file_key = NULL;

    assert_int_equal(
        sd_files_open(st, &fixture_files, meta, settings, old_file_key, &file_key, &err), 0);
    json_decref(settings);
    json_decref(meta);
    json_decref(sink);
    json_decref(src);
    sd_buf_fini(&err);
    return file_key;
}

/* The writer's slots follow the store (as its follower of the slices does). */
static inline void fixture_sync(struct sd_storage *storage, pthread_mutex_t *slots_lock)
{
    pthread_mutex_lock(slots_lock);
    assert_int_equal(sd_storage_sync_slices(storage), 0);
    pthread_mutex_unlock(slots_lock);
}

#endif
