/* sd_files.c: the lifecycle of a sink's files and slices across the writer nodes (see
 * sd_files.h). Every function reads what it changes, builds one guarded batch (sd_entity) and
 * commits it; nothing here touches a disk. */
#include "storage/sd_files.h"
#include "storage/sd_assign.h"
#include "storage/sd_entity.h"
#include "core/sd_alloc.h"
#include "core/sd_error.h"
#include "core/sd_log.h"
#include "core/sd_time.h"
#include "state/sd_state.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SD_FILES_MAX_VOLUMES 256
#define SD_FILES_OPEN_ATTEMPTS 10

/* The live writer volumes: [{volumeId, nodeId, path, type, label}] sorted by key, or NULL with
 * *rc set when they cannot be read. */
static json_t *sd__volumes(struct sd_state *state, int *rc)
{
    struct sd_kvs kvs;
    json_t *out;

    memset(&kvs, 0, sizeof(kvs));
    *rc = sd_state_range(state, "storage/volume/writer/", 0, &kvs);
    if (*rc != 0) {
        return NULL;
    }
    out = json_array();
    for (size_t i = 0; i < kvs.n && i < SD_FILES_MAX_VOLUMES; i++) {
        json_t *v = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
        if (json_string_value(json_object_get(v, "volumeId")) != NULL &&
            json_string_value(json_object_get(v, "nodeId")) != NULL &&
            json_string_value(json_object_get(v, "path")) != NULL) {
            json_array_append(out, v);
        }
        json_decref(v);
    }
    sd_kvs_free(&kvs);
    return out;
}

int sd_files_volume_is_live(struct sd_state *state, const char *volume_id)
{
    char *key = sd_xasprintf("storage/volume/writer/%s", volume_id);
    struct sd_kv kv;
    int rc;

    memset(&kv, 0, sizeof(kv));
    rc = sd_state_get(state, key, &kv);
    sd_kv_free(&kv);
    free(key);
    return rc == 0;
}

/* The volumes a new file takes on the writer node of volumes[i] (reference
 * assignment.VolumesFor over that node's volumes), appended to picked. */
static void sd__assign_node(const struct sd_files_config *c, json_t *volumes, const char *node_id,
                            uint64_t seed, json_t *picked)
{
    struct sd_assign_volume cand[SD_FILES_MAX_VOLUMES];
    json_t *mine[SD_FILES_MAX_VOLUMES];
    size_t at[SD_FILES_MAX_VOLUMES], n = 0, k;
    size_t i;
    json_t *v;

    json_array_foreach(volumes, i, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "nodeId")), node_id) == 0) {
            cand[n].type = json_string_value(json_object_get(v, "type")) ?: "";
            cand[n].label = json_string_value(json_object_get(v, "label")) ?: "";
            mine[n++] = v;
        }
    }
    k = sd_assign_volumes(cand, n, c->assignment_count, c->preferred_types, c->npreferred, seed,
                          at);
    for (size_t j = 0; j < k; j++) {
        json_array_append(picked, mine[at[j]]);
    }
}

/* The assigned volumes of every live writer node not in skip_nodes ({nodeId: true}, NULL:
 * none skipped). */
static json_t *sd__assign(const struct sd_files_config *c, json_t *volumes, json_t *skip_nodes,
                          uint64_t seed)
{
    json_t *picked = json_array(), *done = skip_nodes ? json_copy(skip_nodes) : json_object(), *v;
    size_t i;

    json_array_foreach(volumes, i, v)
    {
        const char *node = json_string_value(json_object_get(v, "nodeId"));
        if (json_object_get(done, node) == NULL) {
            json_object_set_new(done, node, json_true());
            sd__assign_node(c, volumes, node, seed, picked);
        }
    }
    json_decref(done);
    return picked;
}

/* The key of the sink meta describes: "<p>/<b>/<source>/<sink>". */
static char *sd__sink_key(const json_t *meta)
{
    return sd_xasprintf("%lld/%lld/%s/%s",
                        (long long)json_integer_value(json_object_get(meta, "projectId")),
                        (long long)json_integer_value(json_object_get(meta, "branchId")),
                        json_string_value(json_object_get(meta, "sourceId")) ?: "",
                        json_string_value(json_object_get(meta, "sinkId")) ?: "");
}

/* Adds the creation of a writing slice of file (key file_key, entity file) on a volume whose
 * slice directories of this file are under file_dir, opened at now. */
static void sd__create_slice(struct sd_entity_batch *b, const struct sd_files_config *c,
                             const char *file_key, const json_t *file, const char *volume_id,
                             const char *file_dir, int64_t now)
{
    int gz = strcmp(c->compression, "gzip") == 0;
    char ts[SD_TIME_ISO_LEN + 1], path_ts[SD_TIME_ISO_LEN + 1], staging_path[64];
    char *dir, *key;
    json_t *slice;

    sd_time_format_iso(now, ts);
    sd_time_format_path(now, path_ts);
    dir = sd_xasprintf("%s/%s", file_dir, path_ts);
    key = sd_xasprintf("%s/%s/%s", file_key, volume_id, ts);
    snprintf(staging_path, sizeof(staging_path), "%s_%s%s", ts, volume_id, gz ? ".gz" : "");
    slice = json_pack("{s:O, s:O, s:O, s:O, s:O, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s}, s:{s:s}}",
                      "projectId", json_object_get(file, "projectId"), "branchId",
                      json_object_get(file, "branchId"), "sourceId",
                      json_object_get(file, "sourceId"), "sinkId", json_object_get(file, "sinkId"),
                      "fileOpenedAt", json_object_get(file, "fileOpenedAt"), "volumeId", volume_id,
                      "sliceOpenedAt", ts, "state", "writing", "local", "dir", dir,
                      "filenamePrefix", "slice", "filenameExtension", gz ? ".csv.gz" : ".csv",
                      "compression", c->compression, "staging", "path", staging_path);
    sd_entity_create(b, "slice", key, slice);
    json_decref(slice);
    free(dir);
    free(key);
}

/* The directory of a file's slices on a volume: "<volume path>/<sinkKey>/<fileOpenedAt>". */
static char *sd__file_dir(const json_t *volume, const char *sink_key, int64_t file_ms)
{
    char f[SD_TIME_ISO_LEN + 1];

    sd_time_format_path(file_ms, f);
    return sd_xasprintf("%s/%s/%s", json_string_value(json_object_get(volume, "path")), sink_key,
                        f);
}

/* Adds the creation of one slice per volume in picked to file (and the volume ids to its
 * assignment). -E2BIG when they do not fit in one transaction (with room for the file's own
 * ops), else 0. */
static int sd__create_slices(struct sd_entity_batch *b, const struct sd_files_config *c,
                             const char *sink_key, const char *file_key, json_t *file,
                             json_t *picked, int64_t now)
{
    json_t *ids = json_object_get(json_object_get(file, "assignment"), "volumes");
    int64_t file_ms = sd_entity_time_ms(file, "fileOpenedAt");
    size_t i;
    json_t *v;

    json_array_foreach(picked, i, v)
    {
        char *dir;
        const char *id = json_string_value(json_object_get(v, "volumeId"));
        if (!sd_entity_fits(b, 2 + 3)) {
            return -E2BIG;
        }
        dir = sd__file_dir(v, sink_key, file_ms);
        sd__create_slice(b, c, file_key, file, id, dir, now);
        json_array_append_new(ids, json_string(id));
        free(dir);
    }
    return 0;
}

/* Adds the move of the file's writing slices to "closing". Returns 0 or the store's error. */
static int sd__close_slices(struct sd_state *state, struct sd_entity_batch *b, const char *file_key,
                            int64_t now)
{
    char *prefix = sd_xasprintf("storage/slice/all/%s/", file_key);
    struct sd_kvs kvs;
    int rc;

    memset(&kvs, 0, sizeof(kvs));
    rc = sd_state_range(state, prefix, 0, &kvs);
    for (size_t i = 0; rc == 0 && i < kvs.n; i++) {
        json_t *slice = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
        if (slice != NULL && strcmp(sd_entity_state(slice), "writing") == 0) {
            if (!sd_entity_fits(b, 3)) {
                rc = -E2BIG;
            } else {
                sd_entity_move(b, "slice", kvs.items[i].key + strlen("storage/slice/all/"), slice,
                               kvs.items[i].mod_rev, "closing", now);
            }
        }
        json_decref(slice);
    }
    sd_kvs_free(&kvs);
    free(prefix);
    return rc;
}

/* One attempt of sd_files_open at a millisecond after *min_ms (set to the one used). */
static int sd__open_once(struct sd_state *state, const struct sd_files_config *c,
                         const json_t *meta, const json_t *settings, const char *old_file_key,
                         json_t *volumes, int64_t *min_ms, char **file_key_out)
{
    int64_t now = sd_now_ms() > *min_ms ? sd_now_ms() : *min_ms + 1;
    struct sd_entity_batch *b = sd_xcalloc(1, sizeof(*b));
    char *sink_key = sd__sink_key(meta), *file_key;
    char ts[SD_TIME_ISO_LEN + 1];
    json_t *types = json_array(), *file, *picked, *old = NULL;
    int64_t old_rev = 0;
    int rc = 0;

    *min_ms = now;
    sd_time_format_iso(now, ts);
    file_key = sd_xasprintf("%s/%s", sink_key, ts);
    for (size_t i = 0; i < c->npreferred; i++) {
        json_array_append_new(types, json_string(c->preferred_types[i]));
    }
    file =
        json_pack("{s:O, s:O, s:O, s:O, s:s, s:s, s:s, s:{s:{s:I, s:o}, s:[]}, s:O, s:{s:O}, "
                  "s:O}",
                  "projectId", json_object_get(meta, "projectId"), "branchId",
                  json_object_get(meta, "branchId"), "sourceId", json_object_get(meta, "sourceId"),
                  "sinkId", json_object_get(meta, "sinkId"), "fileOpenedAt", ts, "state", "writing",
                  "openedAt", ts, "assignment", "config", "count", (json_int_t)c->assignment_count,
                  "preferredTypes", types, "volumes", "columns", json_object_get(meta, "columns"),
                  "target", "tableId", json_object_get(meta, "tableId"), "settings", settings);
    picked = sd__assign(c, volumes, NULL, (uint64_t)now);
    rc = sd__create_slices(b, c, sink_key, file_key, file, picked, now);
    if (rc == 0) {
        sd_entity_create(b, "file", file_key, file);
    }
    if (rc == 0 && old_file_key != NULL) {
        old = sd_entity_read(state, "file", old_file_key, &old_rev, &rc);
        if (old != NULL && strcmp(sd_entity_state(old), "writing") == 0) {
            rc = sd__close_slices(state, b, old_file_key, now);
            if (rc == 0 && !sd_entity_fits(b, 3)) {
                rc = -E2BIG;
            }
            if (rc == 0) {
                sd_entity_move(b, "file", old_file_key, old, old_rev, "closing", now);
            }
        } else if (rc == 0 || rc == SD_ENOTFOUND) {
            rc = SD_ECONFLICT; /* closed or gone meanwhile: the caller decides again */
        }
    }
    if (rc == 0) {
        rc = sd_entity_commit(state, b, NULL);
    } else {
        sd_entity_discard(b);
    }
    if (rc == 0 && file_key_out != NULL) {
        *file_key_out = file_key;
        file_key = NULL;
    }
    json_decref(old);
    json_decref(picked);
    json_decref(file);
    free(file_key);
    free(sink_key);
    free(b);
    return rc;
}

int sd_files_open(struct sd_state *state, const struct sd_files_config *c, const json_t *meta,
                  const json_t *settings, const char *old_file_key, char **file_key_out,
                  struct sd_buf *err)
{
    int64_t min_ms = 0;
    json_t *volumes;
    int rc;

    volumes = sd__volumes(state, &rc);
    if (volumes == NULL) {
        sd_buf_printf(err, "cannot read the writer volumes: %s", sd_strerror(rc));
        return rc;
    }
    if (json_array_size(volumes) == 0) {
        json_decref(volumes);
        sd_buf_printf(err, "no volume is available for the file");
        return SD_ENOTFOUND;
    }
    if (old_file_key != NULL) {
        min_ms = sd_time_of_key(old_file_key); /* the next file opens after the old one */
    }
    rc = SD_ECONFLICT;
    for (int attempt = 0; attempt < SD_FILES_OPEN_ATTEMPTS && rc == SD_ECONFLICT; attempt++) {
        rc = sd__open_once(state, c, meta, settings, old_file_key, volumes, &min_ms, file_key_out);
        if (rc == SD_ECONFLICT && old_file_key != NULL) {
            break; /* the old file changed: the caller reads it again */
        }
    }
    json_decref(volumes);
    if (rc == SD_ECONFLICT) {
        sd_buf_printf(err, "the sink's files changed meanwhile");
    } else if (rc == -E2BIG) {
        sd_buf_printf(err, "too many slices for one transaction");
    } else if (rc != 0) {
        sd_buf_printf(err, "cannot store the file: %s", sd_strerror(rc));
    }
    return rc;
}

/* The directory of slice's file on its volume: its "local.dir" without the last component. */
static char *sd__slice_file_dir(const json_t *slice)
{
    const char *dir = json_string_value(json_object_get(json_object_get(slice, "local"), "dir"));
    const char *slash = dir != NULL ? strrchr(dir, '/') : NULL;

    return slash != NULL ? sd_xstrndup(dir, (size_t)(slash - dir)) : NULL;
}

/* Reads the writing file of a slice or file key's file (file_key), for a change of its slices:
 * NULL with *rc SD_ECONFLICT when it is no longer writing. */
static json_t *sd__writing_file(struct sd_state *state, const char *file_key, int64_t *rev, int *rc)
{
    json_t *file = sd_entity_read(state, "file", file_key, rev, rc);

    if (file != NULL && strcmp(sd_entity_state(file), "writing") != 0) {
        json_decref(file);
        *rc = SD_ECONFLICT;
        return NULL;
    }
    if (*rc == SD_ENOTFOUND) {
        *rc = SD_ECONFLICT;
    }
    return file;
}

int sd_files_rotate_slice(struct sd_state *state, const struct sd_files_config *c,
                          const char *slice_key, struct sd_buf *err)
{
    struct sd_entity_batch *b = sd_xcalloc(1, sizeof(*b));
    int64_t now = sd_now_ms(), slice_rev = 0, file_rev = 0;
    const char *vol_slash = strrchr(slice_key, '/');
    char *file_key = NULL, *dir = NULL;
    json_t *slice = NULL, *file = NULL;
    int rc;

    slice = sd_entity_read(state, "slice", slice_key, &slice_rev, &rc);
    if (slice != NULL && strcmp(sd_entity_state(slice), "writing") != 0) {
        rc = SD_ECONFLICT;
    }
    if (rc == 0 && vol_slash != NULL) {
        file_key = sd_xstrndup(slice_key, (size_t)(vol_slash - slice_key));
        *strrchr(file_key, '/') = '\0'; /* "<fileKey>/<volumeId>" -> "<fileKey>" */
        file = sd__writing_file(state, file_key, &file_rev, &rc);
    }
    dir = slice != NULL ? sd__slice_file_dir(slice) : NULL;
    if (rc == 0 && (file == NULL || dir == NULL)) {
        rc = SD_ECORRUPT;
    }
    if (rc == 0) {
        /* a successor in the same millisecond as its slice would get the slice's key */
        if (now <= sd_entity_time_ms(slice, "sliceOpenedAt")) {
            now = sd_entity_time_ms(slice, "sliceOpenedAt") + 1;
        }
        sd__create_slice(b, c, file_key, file,
                         json_string_value(json_object_get(slice, "volumeId")), dir, now);
        sd_entity_move(b, "slice", slice_key, slice, slice_rev, "closing", now);
        sd_entity_move(b, "file", file_key, file, file_rev, "writing", now);
        rc = sd_entity_commit(state, b, NULL);
    }
    if (rc != 0 && rc != SD_ECONFLICT) {
        sd_buf_printf(err, "cannot rotate slice %s: %s", slice_key, sd_strerror(rc));
    }
    sd_entity_discard(b);
    json_decref(slice);
    json_decref(file);
    free(file_key);
    free(dir);
    free(b);
    return rc;
}

int sd_files_add_slices(struct sd_state *state, const struct sd_files_config *c,
                        const char *file_key, struct sd_buf *err)
{
    struct sd_entity_batch *b = sd_xcalloc(1, sizeof(*b));
    char *prefix = sd_xasprintf("storage/slice/level/local/%s/", file_key);
    json_t *volumes = NULL, *file = NULL, *served = json_object(), *picked = NULL;
    int64_t now = sd_now_ms(), file_rev = 0;
    char *sink_key = sd_xstrndup(file_key, (size_t)(strrchr(file_key, '/') - file_key));
    struct sd_kvs kvs;
    int rc;

    memset(&kvs, 0, sizeof(kvs));
    file = sd__writing_file(state, file_key, &file_rev, &rc);
    if (rc == 0) {
        volumes = sd__volumes(state, &rc);
    }
    if (rc == 0) {
        rc = sd_state_range(state, prefix, 0, &kvs);
    }
    /* the nodes that have a writing slice in the file */
    for (size_t i = 0; rc == 0 && i < kvs.n; i++) {
        json_t *slice = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
        const char *vol = json_string_value(json_object_get(slice, "volumeId"));
        size_t k;
        json_t *v;
        json_array_foreach(volumes, k, v)
        {
            if (vol != NULL && strcmp(sd_entity_state(slice), "writing") == 0 &&
                strcmp(json_string_value(json_object_get(v, "volumeId")), vol) == 0) {
                json_object_set_new(served, json_string_value(json_object_get(v, "nodeId")),
                                    json_true());
            }
        }
        json_decref(slice);
    }
    if (rc == 0) {
        picked = sd__assign(c, volumes, served, (uint64_t)now);
        if (json_array_size(picked) > 0) {
            if (now <= sd_entity_time_ms(file, "fileOpenedAt")) {
                now = sd_entity_time_ms(file, "fileOpenedAt") + 1;
            }
            rc = sd__create_slices(b, c, sink_key, file_key, file, picked, now);
            if (rc == 0) {
                sd_entity_move(b, "file", file_key, file, file_rev, "writing", now);
                rc = sd_entity_commit(state, b, NULL);
            }
        }
    }
    if (rc != 0 && rc != SD_ECONFLICT) {
        sd_buf_printf(err, "cannot add slices to file %s: %s", file_key, sd_strerror(rc));
    }
    if (rc == 0) {
        rc = (int)json_array_size(picked);
    }
    sd_kvs_free(&kvs);
    json_decref(volumes);
    json_decref(file);
    json_decref(served);
    json_decref(picked);
    sd_entity_discard(b);
    free(prefix);
    free(sink_key);
    free(b);
    return rc;
}

int sd_files_close(struct sd_state *state, const char *file_key, struct sd_buf *err)
{
    struct sd_entity_batch *b = sd_xcalloc(1, sizeof(*b));
    int64_t now = sd_now_ms(), rev = 0;
    json_t *file;
    int rc;

    file = sd__writing_file(state, file_key, &rev, &rc);
    if (rc == 0) {
        rc = sd__close_slices(state, b, file_key, now);
    }
    if (rc == 0) {
        sd_entity_move(b, "file", file_key, file, rev, "closing", now);
        rc = sd_entity_commit(state, b, NULL);
    }
    if (rc != 0 && rc != SD_ECONFLICT) {
        sd_buf_printf(err, "cannot close file %s: %s", file_key, sd_strerror(rc));
    }
    sd_entity_discard(b);
    json_decref(file);
    free(b);
    return rc;
}

int64_t sd_files_closesync_rev(struct sd_state *state)
{
    struct sd_kvs kvs;
    int64_t lowest = INT64_MAX;

    memset(&kvs, 0, sizeof(kvs));
    if (sd_state_range(state, SD_FILES_CLOSESYNC_PREFIX, 0, &kvs) != 0) {
        return -1;
    }
    for (size_t i = 0; i < kvs.n; i++) {
        char text[32];
        size_t len =
            kvs.items[i].value_len < sizeof(text) - 1 ? kvs.items[i].value_len : sizeof(text) - 1;
        int64_t rev;
        memcpy(text, kvs.items[i].value, len);
        text[len] = '\0';
        rev = strtoll(text, NULL, 10);
        lowest = rev < lowest ? rev : lowest;
    }
    sd_kvs_free(&kvs);
    return lowest;
}

json_t *sd_files_sink_meta(const json_t *sink)
{
    json_t *table = json_object_get(sink, "table");

    return json_pack("{s:O, s:O, s:O, s:O, s:O, s:O}", "projectId",
                     json_object_get(sink, "projectId"), "branchId",
                     json_object_get(sink, "branchId"), "sourceId",
                     json_object_get(sink, "sourceId"), "sinkId", json_object_get(sink, "sinkId"),
                     "columns", json_object_get(json_object_get(table, "mapping"), "columns"),
                     "tableId", json_object_get(table, "tableId"));
}
