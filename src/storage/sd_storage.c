/* sd_storage.c: local volumes, file and slice entities, slice writers and their statistics.
 *
 * DESIGN: a volume is every directory two levels below storage.volumesPath (<type>/<label>),
 * holding a volume-id file and an flock'ed writer.lock. The coordinator owns the file and slice
 * entities (storage/sd_files.h): it opens a sink's file with a slice on each writer node and
 * rotates and closes them. An active sink has one slot here, pointed by sd_storage_sync_slices at
 * the sink's "writing" slice on our volumes, with a slice writer (served by threads shared by
 * every writer); when the slice leaves "writing" the slot switches to its successor and the old
 * writer is closed, then the node reports the revision it has caught up with (close-sync), so
 * the coordinator uploads a slice only after its writer is closed. A slice reserves disk space
 * at its first write (storage.level.local.writer.allocation: static for a sink's first slice,
 * then a share of its recent slices' sizes), so an idle sink reserves nothing. A stats thread
 * writes each open slice's synced statistics to storage/stats/local/<sliceKey>/<nodeID> every
 * storage.statistics.sync.interval and once more when the slice closes. Sync results go to one
 * listener (the data endpoint). Control calls (open, activate, sync, deactivate, close) are
 * serialized by the caller; appends come from the data endpoint's thread and only read the
 * slot's current slice under its lock. Nothing here changes an entity's state.
 */
#include "storage/sd_storage.h"
#include "storage/sd_assign.h"
#include "storage/sd_bounded.h"
#include "storage/sd_disk_cleanup.h"
#include "storage/sd_remote.h"
#include "config/sd_config.h"
#include "config/sd_config_bind.h"
#include "core/sd_alloc.h"
#include "core/sd_bgprio.h"
#include "core/sd_cond.h"
#include "core/sd_error.h"
#include "core/sd_fs.h"
#include "core/sd_health.h"
#include "core/sd_log.h"
#include "core/sd_metrics_reg.h"
#include "core/sd_time.h"
#include "defs/sd_settings.h"
#include "pipeline/sd_slice_writer.h"
#include "state/sd_state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define SD_VOLUME_ID_LEN 10
#define SD_STORAGE_MAX_PENDING_BYTES (64u * 1024 * 1024)
#define SD_STORAGE_MAX_VOLUMES 64
#define SD_STORAGE_ALLOC_HISTORY 10
#define SD_STORAGE_MAX_REMOTE 64       /* slices one source node writes per sink */
#define SD_STORAGE_REMOTE_OPEN_MS 3000 /* how long new files on writer nodes may take to open */
#define SD_STORAGE_LOCAL_SLICES                                                                    \
    "storage/slice/level/local/" /* slices whose largest sizes the relative allocation uses */
#define SD_STORAGE_WRITER_VOLUMES "storage/volume/writer/"
#define SD_STORAGE_SOURCE_NODES "runtime/distribution/group/" SD_STORAGE_SOURCE_GROUP "/nodes/"
#define SD_STORAGE_MAX_SOURCE_NODES 256

struct sd_volume {
    char id[SD_VOLUME_ID_LEN + 1];
    char *path;
    char *type;
    char *label;
    int lock_fd;
};

_Static_assert(SD_STORAGE_MAX_APPENDERS <= 64, "a slice's appenders are bits of a uint64_t");

struct sd_slice_handle {
    struct sd_storage *storage;
    struct sd_slice_writer *writer; /* a file on our volumes, or */
    struct sd_remote_file *remote;  /* (source-only node) our file on a writer node */
    char *key;      /* sliceKey: <p>/<b>/<src>/<sink>/<fileOpenedAt>/<volumeId>/<sliceOpenedAt> */
    char *file_key; /* <p>/<b>/<src>/<sink>/<fileOpenedAt> */
    char *node_id;  /* whose file: its name and statistics key (a source node's, for net files) */
    sd_slice_sync_fn net_fn; /* a source node's file (sd_storage_net_open): its sync results */
    void *net_arg;
    struct sd_slice_stats last_flushed;
    int is_reported_not_ready;   /* writer threads only (one callback at a time) */
    uint64_t appenders;          /* bit i: appender i appended here (atomic, set first) */
    uint64_t held;               /* bit i: appender i holds appends here until its flush (atomic) */
    pthread_mutex_t writer_lock; /* a start (sd_storage_flush) against the close of writer */
    int refs; /* releases left: 1, one per appender holding appends; after SD_ECLOSED, one
               * per appender (atomic) */
    void *waiters[SD_STORAGE_MAX_APPENDERS]; /* each owned by its appender's thread */
    struct sd_slice_handle *next_open;       /* list of open slices (stats thread) */
};

struct sd_sink_slot {
    char *sink_key;
    json_t *settings; /* effective settings snapshot (sd_settings), under lock */
    int wait;
    pthread_mutex_t lock;
    struct sd_slice_handle *slice; /* the writer of the sink's writing slice on our volumes;
                                    * NULL while there is none or it cannot be opened (disk
                                    * full): appends are refused until sd_storage_sync_slices
                                    * opens one */
    char *failed_key;              /* the slice whose writer could not be opened (logged once) */
    /* source-only node: the sink's slices assigned to this node (on writer nodes) and the
     * balancer's next pick */
    struct sd_slice_handle *remote[SD_STORAGE_MAX_REMOTE];
    size_t nremote;
    struct {
        size_t pick;    /* the balancer's slice for the appender's round (under lock) */
        uint64_t round; /* the appender's round it was picked in */
    } turns[SD_STORAGE_MAX_APPENDERS];
    uint64_t slice_bytes[SD_STORAGE_ALLOC_HISTORY]; /* compressed sizes of the last rotated
                                                     * slices (ring; rotations only) */
    size_t nslices_rotated;
    struct sd_storage *storage;
    struct sd_sink_slot *next;
};

/* The storage-writer's configuration, read once at open (sd__storage_config). */
struct sd_storage_config {
    const char *volumes_path;
    const char *hostname;
    const char *gzip_impl_name;
    enum sd_gzip_impl gzip_impl; /* from gzip_impl_name */
    int gzip_level;
    size_t gzip_block_size;
    int gzip_concurrency;
    const char *sync_mode_name;
    enum sd_sync_mode sync_mode; /* from sync_mode_name */
    int failed_batches_threshold;
    int is_allocation_enabled;
    int64_t allocation_static_bytes;
    int64_t allocation_relative_percent;
    int64_t stats_interval_ms;
    int64_t slice_close_timeout_ms;
    int64_t file_close_timeout_ms;
    int is_disk_cleanup_enabled;
    int64_t disk_cleanup_interval_ms;
    int disk_cleanup_concurrency;
    /* the source -> writer protocol (source-only nodes and writer nodes) */
    int min_slices;
    const char *balancer;
    int64_t keepalive_ms;
    size_t window;
    int64_t stream_close_timeout_ms;
};

#define SD_STORAGE_BIND(field, key, type) SD_BIND(struct sd_storage_config, field, key, type)
static const struct sd_config_binding sd_storage_rows[] = {
    SD_STORAGE_BIND(volumes_path, "storage.volumesPath", SD_BIND_STR),
    SD_STORAGE_BIND(hostname, "hostname", SD_BIND_STR),
    SD_STORAGE_BIND(gzip_impl_name, "storage.level.local.encoding.compression.gzip.implementation",
                    SD_BIND_STR),
    SD_STORAGE_BIND(gzip_level, "storage.level.local.encoding.compression.gzip.level", SD_BIND_INT),
    SD_STORAGE_BIND(gzip_block_size, "storage.level.local.encoding.compression.gzip.blockSize",
                    SD_BIND_SIZE_T),
    SD_STORAGE_BIND(gzip_concurrency, "storage.level.local.encoding.compression.gzip.concurrency",
                    SD_BIND_INT),
    SD_STORAGE_BIND(sync_mode_name, "storage.level.local.encoding.sync.mode", SD_BIND_STR),
    SD_STORAGE_BIND(failed_batches_threshold, "storage.level.local.encoding.failedChunksThreshold",
                    SD_BIND_INT),
    SD_STORAGE_BIND(is_allocation_enabled, "storage.level.local.writer.allocation.enabled",
                    SD_BIND_BOOL),
    SD_STORAGE_BIND(allocation_static_bytes, "storage.level.local.writer.allocation.static",
                    SD_BIND_I64),
    SD_STORAGE_BIND(allocation_relative_percent, "storage.level.local.writer.allocation.relative",
                    SD_BIND_I64),
    SD_STORAGE_BIND(stats_interval_ms, "storage.statistics.sync.interval", SD_BIND_I64),
    SD_STORAGE_BIND(slice_close_timeout_ms, "storage.level.staging.operator.sliceCloseTimeout",
                    SD_BIND_I64),
    SD_STORAGE_BIND(file_close_timeout_ms, "storage.level.target.operator.fileCloseTimeout",
                    SD_BIND_I64),
    SD_STORAGE_BIND(is_disk_cleanup_enabled, "storage.diskCleanup.enabled", SD_BIND_BOOL),
    SD_STORAGE_BIND(disk_cleanup_interval_ms, "storage.diskCleanup.interval", SD_BIND_I64),
    SD_STORAGE_BIND(disk_cleanup_concurrency, "storage.diskCleanup.concurrency", SD_BIND_INT),
    SD_STORAGE_BIND(min_slices, "storage.level.local.writer.network.minSlicesPerSourceNode",
                    SD_BIND_INT),
    SD_STORAGE_BIND(balancer, "storage.level.local.writer.network.pipelineBalancer", SD_BIND_STR),
    SD_STORAGE_BIND(keepalive_ms, "storage.level.local.writer.network.keepAliveInterval",
                    SD_BIND_I64),
    SD_STORAGE_BIND(window, "storage.level.local.writer.network.streamMaxWindow", SD_BIND_SIZE_T),
    SD_STORAGE_BIND(stream_close_timeout_ms,
                    "storage.level.local.writer.network.streamCloseTimeout", SD_BIND_I64),
};
const struct sd_config_bindings sd_storage_config_bindings =
    SD_BINDINGS("storage", sd_storage_rows);

struct sd_storage {
    struct sd_health *health; /* borrowed */
    struct sd_storage_config cfg;
    struct sd_state *state;
    const char *node_id;
    struct sd_volume volumes[SD_STORAGE_MAX_VOLUMES];
    size_t nvolumes;
    sd_storage_sync_fn listener;
    void *listener_arg;
    pthread_mutex_t lock; /* slots and open-slice list */
    struct sd_sink_slot *slots;
    struct sd_slice_handle *open_slices;
    pthread_t stats_thread;
    pthread_t cleanup_thread;
    int has_cleanup_thread;
    pthread_cond_t stats_cond; /* wakes the stats and disk cleanup threads at close */
    int is_running;
    struct sd_bounded *closes; /* slice closes under their timeouts */
    json_t *closing;           /* keys of slices whose writer is closing (set; under lock) */
    sd_storage_closesync_fn closesync_fn;
    void *closesync_arg;
    int64_t synced_rev;   /* the newest slice change the slots have caught up with (under lock) */
    int64_t reported_rev; /* the last close-sync report that was stored (under lock) */
    json_t *net_files;    /* {sliceKey: open files of source nodes} (under lock) */
    /* a source-only node: its files on the writer nodes */
    struct sd_remote *remote;
    size_t min_slices;                            /* writer.network.minSlicesPerSourceNode */
    uint64_t rounds[SD_STORAGE_MAX_APPENDERS];    /* each appender's rounds (sd_storage_flush;
                                                   * its loop thread only) */
    struct sd_buf held[SD_STORAGE_MAX_APPENDERS]; /* each appender's slices with held appends
                                                   * (handles; its loop thread only) */
    int is_random_pick;                           /* writer.network.pipelineBalancer rand */
};

static void sd__random_alnum(char *out, size_t n)
{
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    unsigned char rnd[64];
    size_t got = 0;

    while (got < n) {
        ssize_t r = getrandom(rnd, sizeof(rnd), 0);
        if (r <= 0) {
            continue;
        }
        for (ssize_t i = 0; i < r && got < n; i++) {
            if (rnd[i] < 248) { /* 248 = 4 * 62: no modulo bias */
                out[got++] = alphabet[rnd[i] % 62];
            }
        }
    }
    out[n] = '\0';
}

/* ---- volumes ---- */

static int sd__volume_load_id(struct sd_volume *v)
{
    char path[PATH_MAX];
    char *text = NULL;
    size_t len = 0;
    int rc;

    snprintf(path, sizeof(path), "%s/volume-id", v->path);
    rc = sd_read_file(path, &text, &len);
    if (rc == -ENOENT) {
        char id[SD_VOLUME_ID_LEN + 1];
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, SD_FILE_MODE);
        if (fd < 0) {
            return -errno;
        }
        sd__random_alnum(id, SD_VOLUME_ID_LEN);
        rc = sd_write_all(fd, id, SD_VOLUME_ID_LEN);
        if (rc == 0 && fsync(fd) != 0) {
            rc = -errno;
        }
        close(fd);
        if (rc == 0) {
            rc = sd_fsync_dir(v->path);
        }
        if (rc != 0) {
            return rc;
        }
        memcpy(v->id, id, sizeof(id));
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' ')) {
        len--;
    }
    if (len == 0 || len > SD_VOLUME_ID_LEN) {
        free(text);
        return SD_ECORRUPT;
    }
    memcpy(v->id, text, len);
    v->id[len] = '\0';
    free(text);
    return 0;
}

static int sd__volume_open(struct sd_storage *st, const char *root, const char *type,
                           const char *label, struct sd_buf *err)
{
    struct sd_volume *v = &st->volumes[st->nvolumes];
    char path[PATH_MAX];
    int rc;

    if (st->nvolumes == SD_STORAGE_MAX_VOLUMES) {
        sd_buf_printf(err, "too many volumes under %s (max %d)", root, SD_STORAGE_MAX_VOLUMES);
        return SD_ELIMIT;
    }
    memset(v, 0, sizeof(*v));
    v->lock_fd = -1;
    v->path = sd_xasprintf("%s/%s/%s", root, type, label);
    v->type = sd_xstrdup(type);
    v->label = sd_xstrdup(label);
    for (char *p = v->type; *p; p++) {
        *p = (char)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);
    }
    rc = sd__volume_load_id(v);
    if (rc != 0) {
        sd_buf_printf(err, "volume %s: cannot read or create volume-id: %s", v->path,
                      sd_strerror(rc));
        goto fail;
    }
    snprintf(path, sizeof(path), "%s/writer.lock", v->path);
    v->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, SD_FILE_MODE);
    if (v->lock_fd < 0 || flock(v->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = -errno;
        sd_buf_printf(err, "volume %s is locked by another writer (%s)", v->path, sd_strerror(rc));
        goto fail;
    }
    st->nvolumes++;
    sd_mreg_volume(v->id, v->type, v->label, v->path);
    return 0;

fail:
    if (v->lock_fd >= 0) {
        close(v->lock_fd);
    }
    free(v->path);
    free(v->type);
    free(v->label);
    return rc;
}

static int sd__is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int sd__open_volumes(struct sd_storage *st, struct sd_buf *err)
{
    const char *root = st->cfg.volumes_path;
    DIR *types;
    struct dirent *t;
    int rc = sd_mkdir_p(root, SD_DIR_MODE);

    if (rc != 0) {
        sd_buf_printf(err, "cannot create %s: %s", root, sd_strerror(rc));
        return rc;
    }
    types = opendir(root);
    if (types == NULL) {
        rc = -errno;
        sd_buf_printf(err, "cannot read %s: %s", root, sd_strerror(rc));
        return rc;
    }
    while (rc == 0 && (t = readdir(types)) != NULL) {
        char tpath[PATH_MAX];
        DIR *labels;
        struct dirent *l;
        if (t->d_name[0] == '.') {
            continue;
        }
        snprintf(tpath, sizeof(tpath), "%s/%s", root, t->d_name);
        if (!sd__is_dir(tpath) || (labels = opendir(tpath)) == NULL) {
            continue;
        }
        while (rc == 0 && (l = readdir(labels)) != NULL) {
            char lpath[PATH_MAX];
            if (l->d_name[0] == '.') {
                continue;
            }
            if (snprintf(lpath, sizeof(lpath), "%s/%s", tpath, l->d_name) >= (int)sizeof(lpath)) {
                continue;
            }
            if (sd__is_dir(lpath)) {
                rc = sd__volume_open(st, root, t->d_name, l->d_name, err);
            }
        }
        closedir(labels);
    }
    closedir(types);
    if (rc == 0 && st->nvolumes == 0) {
        char dpath[PATH_MAX];
        snprintf(dpath, sizeof(dpath), "%s/default/1", root);
        rc = sd_mkdir_p(dpath, SD_DIR_MODE);
        if (rc != 0) {
            sd_buf_printf(err, "cannot create %s: %s", dpath, sd_strerror(rc));
            return rc;
        }
        rc = sd__volume_open(st, root, "default", "1", err);
    }
    return rc;
}

json_t *sd_storage_volume_announcements(struct sd_storage *st, const char *node_address)
{
    json_t *out = json_object();

    for (size_t i = 0; i < st->nvolumes; i++) {
        struct sd_volume *v = &st->volumes[i];
        char key[128];
        json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "volumeId", v->id, "nodeId",
                              st->node_id, "hostname", st->cfg.hostname, "path", v->path, "type",
                              v->type, "label", v->label);
        char *text;
        if (node_address != NULL) {
            json_object_set_new(j, "nodeAddress", json_string(node_address));
        }
        text = json_dumps(j, JSON_COMPACT);
        snprintf(key, sizeof(key), "storage/volume/writer/%s", v->id);
        json_object_set_new(out, key, json_string(text));
        free(text);
        json_decref(j);
    }
    return out;
}

static struct sd_volume *sd__volume_by_id(struct sd_storage *st, const char *id)
{
    for (size_t i = 0; i < st->nvolumes; i++) {
        if (strcmp(st->volumes[i].id, id) == 0) {
            return &st->volumes[i];
        }
    }
    return NULL;
}

int sd_storage_has_volume(struct sd_storage *st, const char *volume_id)
{
    return volume_id != NULL && sd__volume_by_id(st, volume_id) != NULL;
}

/* ---- entities ---- */

static int sd__put_json(struct sd_storage *st, const char *key, json_t *value)
{
    char *text = json_dumps(value, JSON_COMPACT | JSON_PRESERVE_ORDER);
    int rc = sd_state_put(st->state, key, text, strlen(text), 0, NULL);
    free(text);
    return rc;
}

/* Reads every key the storage writer uses (reference local level: volumes, encoding,
 * writer allocation; staging/target operator close timeouts; statistics; disk cleanup). */
static void sd__storage_config(const struct sd_config *cfg, struct sd_storage_config *c)
{
    sd_config_fill(cfg, &sd_storage_config_bindings, c);
    c->gzip_impl = strcmp(c->gzip_impl_name, "standard") == 0 ? SD_GZIP_STANDARD
                   : strcmp(c->gzip_impl_name, "fast") == 0   ? SD_GZIP_FAST
                                                              : SD_GZIP_PARALLEL;
    c->sync_mode = strcmp(c->sync_mode_name, "cache") == 0 ? SD_SYNC_CACHE : SD_SYNC_DISK;
}

static void sd__writer_opts(struct sd_storage *st, struct sd_slice_writer_opts *o, const char *dir,
                            const char *node_id, const char *compression, int64_t allocate_bytes)
{
    const struct sd_storage_config *c = &st->cfg;

    memset(o, 0, sizeof(*o));
    o->dir = dir;
    o->node_id = node_id;
    o->compression = strcmp(compression, "none") == 0 ? SD_COMPRESSION_NONE : SD_COMPRESSION_GZIP;
    o->gzip_impl = c->gzip_impl;
    o->gzip_level = c->gzip_level;
    o->gzip_block_size = c->gzip_block_size;
    o->gzip_concurrency = c->gzip_concurrency;
    o->sync_mode = c->sync_mode;
    o->max_pending_bytes = SD_STORAGE_MAX_PENDING_BYTES;
    o->allocate = allocate_bytes > 0;
    o->allocate_bytes = allocate_bytes;
    o->failed_batches_threshold = (uint32_t)c->failed_batches_threshold;
}

/* storage.level.local.writer.allocation (reference diskalloc): the space a sink's next slice
 * reserves: `relative` percent of the largest of its last SD_STORAGE_ALLOC_HISTORY slices on
 * this node, so small sinks reserve little, or `static` while none of them had data (slot
 * NULL: the sink's first slice here); 0 when disabled. */
static int64_t sd__allocation_bytes(struct sd_storage *st, const struct sd_sink_slot *slot)
{
    uint64_t largest = 0;
    size_t n;

    if (!st->cfg.is_allocation_enabled) {
        return 0;
    }
    n = slot == NULL ? 0 : slot->nslices_rotated;
    for (size_t i = 0; i < n && i < SD_STORAGE_ALLOC_HISTORY; i++) {
        largest = slot->slice_bytes[i] > largest ? slot->slice_bytes[i] : largest;
    }
    if (largest == 0) {
        return st->cfg.allocation_static_bytes;
    }
    return (int64_t)(largest * (uint64_t)st->cfg.allocation_relative_percent / 100);
}

/* Remembers the size of the slice a sink rotates away from (for sd__allocation_bytes). */
static void sd__slot_note_rotation(struct sd_sink_slot *slot, struct sd_slice_handle *old)
{
    struct sd_slice_stats now;

    sd_slice_writer_stats(old->writer, &now);
    slot->slice_bytes[slot->nslices_rotated % SD_STORAGE_ALLOC_HISTORY] = now.compressed_bytes;
    slot->nslices_rotated++;
}

static void sd__on_writer_sync(void *arg, uint64_t seq, int rc)
{
    struct sd_slice_handle *slice = arg;
    struct sd_storage *st = slice->storage;
    char name[SD_HEALTH_NAME_MAX];

    /* readiness: an unhealthy writer refuses every append until its slice is rotated; a
     * writer whose last failedChunksThreshold batches failed is not ready until one succeeds */
    snprintf(name, sizeof(name), "slice %s", slice->key);
    if (rc < 0 && sd_slice_writer_is_unhealthy(slice->writer)) {
        sd_health_set(st->health, name, sd_strerror(rc));
    } else if (rc < 0 && !sd_slice_writer_is_ready(slice->writer)) {
        sd_health_set(st->health, name, sd_strerror(rc));
        slice->is_reported_not_ready = 1;
    } else if (rc == 0 && slice->is_reported_not_ready) {
        sd_health_clear(st->health, name);
        slice->is_reported_not_ready = 0;
    }
    if (slice->net_fn != NULL) {
        slice->net_fn(slice->net_arg, seq, rc);
    } else if (st->listener != NULL) {
        st->listener(st->listener_arg, slice, seq, rc);
    }
}

static void sd__stats_json_set(json_t *j, const struct sd_slice_stats *s)
{
    char ts[SD_TIME_ISO_LEN + 1];

    if (s->records > 0 && s->first_record_ms > 0) { /* unknown (0) after a recovery */
        sd_time_format_iso(s->first_record_ms, ts);
        json_object_set_new(j, "firstRecordAt", json_string(ts));
        sd_time_format_iso(s->last_record_ms, ts);
        json_object_set_new(j, "lastRecordAt", json_string(ts));
    }
    json_object_set_new(j, "recordsCount", json_integer((json_int_t)s->records));
    json_object_set_new(j, "uncompressedSize", json_integer((json_int_t)s->uncompressed_bytes));
    json_object_set_new(j, "compressedSize", json_integer((json_int_t)s->compressed_bytes));
}

static int sd__flush_slice_stats(struct sd_storage *st, struct sd_slice_handle *slice,
                                 const struct sd_slice_stats *s)
{
    char *key;
    json_t *j;
    int rc;

    if (memcmp(s, &slice->last_flushed, sizeof(*s)) == 0) {
        return 0;
    }
    key = sd_xasprintf("storage/stats/local/%s/%s", slice->key, slice->node_id);
    j = json_object();
    sd__stats_json_set(j, s);
    rc = sd__put_json(st, key, j);
    json_decref(j);
    free(key);
    if (rc == 0) {
        slice->last_flushed = *s;
    }
    return rc;
}

/* A handle of slice_key (no file yet); freed by sd_storage_slice_release. */
static struct sd_slice_handle *sd__slice_handle(struct sd_storage *st, const char *slice_key,
                                                const char *node_id)
{
    struct sd_slice_handle *slice = sd_xcalloc(1, sizeof(*slice));
    const char *slash = strrchr(slice_key, '/');

    slice->storage = st;
    slice->refs = 1;
    pthread_mutex_init(&slice->writer_lock, NULL);
    slice->key = sd_xstrdup(slice_key);
    slice->node_id = sd_xstrdup(node_id);
    /* "<fileKey>/<volumeId>/<sliceOpenedAt>" */
    while (slash != NULL && slash > slice_key && *--slash != '/') {
    }
    slice->file_key = sd_xstrndup(slice_key, slash != NULL ? (size_t)(slash - slice_key) : 0);
    return slice;
}

/* Opens the writer of node_id's file of an existing slice entity (recovering the file), and
 * links the handle; net_fn (NULL for our own slots' slices) receives its sync results. */
static int sd__slice_open(struct sd_storage *st, const char *slice_key, const char *node_id,
                          const char *dir, const char *compression, int64_t allocate_bytes,
                          sd_slice_sync_fn net_fn, void *net_arg, struct sd_slice_handle **out,
                          struct sd_slice_stats *recovered, struct sd_buf *err)
{
    struct sd_slice_handle *slice = sd__slice_handle(st, slice_key, node_id);
    struct sd_slice_writer_opts opts;
    int rc;

    slice->net_fn = net_fn;
    slice->net_arg = net_arg;
    sd__writer_opts(st, &opts, dir, node_id, compression, allocate_bytes);
    memset(recovered, 0, sizeof(*recovered));
    rc = sd_slice_writer_open(&opts, sd__on_writer_sync, slice, &slice->writer, recovered);
    if (rc != 0) {
        sd_buf_printf(err, "cannot open slice writer in %s: %s", dir, sd_strerror(rc));
        sd_storage_slice_release(slice);
        return rc;
    }
    memset(&slice->last_flushed, 0xff, sizeof(slice->last_flushed));
    sd__flush_slice_stats(st, slice, recovered);
    pthread_mutex_lock(&st->lock);
    slice->next_open = st->open_slices;
    st->open_slices = slice;
    pthread_mutex_unlock(&st->lock);
    *out = slice;
    return 0;
}

/* Unlinks a local writer's handle, closes the writer and stores its final statistics. Returns
 * the close's result (sd_slice_writer_close). */
static int sd__writer_close(struct sd_storage *st, struct sd_slice_handle *slice,
                            struct sd_slice_stats *final)
{
    char name[SD_HEALTH_NAME_MAX];
    struct sd_slice_handle **pp;
    struct sd_slice_writer *writer;
    int rc;

    pthread_mutex_lock(&st->lock);
    for (pp = &st->open_slices; *pp != NULL; pp = &(*pp)->next_open) {
        if (*pp == slice) {
            *pp = slice->next_open;
            break;
        }
    }
    pthread_mutex_unlock(&st->lock);
    memset(final, 0, sizeof(*final));
    pthread_mutex_lock(&slice->writer_lock); /* no start from here on (the close writes all) */
    writer = slice->writer;
    slice->writer = NULL;
    pthread_mutex_unlock(&slice->writer_lock);
    rc = sd_slice_writer_close(writer, final);
    snprintf(name, sizeof(name), "slice %s", slice->key);
    sd_health_clear(st->health, name);
    if (rc != 0) {
        sd_log_key(SD_LOG_ERROR, "storage", slice->key, "closing slice %s: %s", slice->key,
                   sd_strerror(rc));
    }
    sd__flush_slice_stats(st, slice, final);
    return rc;
}

/* Closes a slice's writer (or our file on a writer node), flushes its final statistics, and
 * hands the handle to the listener (or frees it when there is none). */
static void sd__slice_close(struct sd_storage *st, struct sd_slice_handle *slice)
{
    struct sd_slice_stats final;
    int rc;

    if (slice->remote != NULL) {
        rc = sd_remote_close(slice->remote);
        slice->remote = NULL;
        if (rc != 0) {
            sd_log_key(SD_LOG_WARN, "storage", slice->key,
                       "slice %s: the writer node did not confirm the close: %s", slice->key,
                       sd_strerror(rc));
        }
    } else {
        (void)sd__writer_close(st, slice, &final); /* logged there */
    }
    if (st->listener != NULL) {
        int appenders = __builtin_popcountll(__atomic_load_n(&slice->appenders, __ATOMIC_ACQUIRE));
        __atomic_add_fetch(&slice->refs, appenders > 0 ? appenders - 1 : 0, __ATOMIC_ACQ_REL);
        st->listener(st->listener_arg, slice, 0, SD_ECLOSED);
    } else {
        sd_storage_slice_release(slice);
    }
}

void sd_storage_slice_release(struct sd_slice_handle *slice)
{
    if (slice == NULL || __atomic_sub_fetch(&slice->refs, 1, __ATOMIC_ACQ_REL) > 0) {
        return;
    }
    pthread_mutex_destroy(&slice->writer_lock);
    free(slice->key);
    free(slice->file_key);
    free(slice->node_id);
    free(slice);
}

void **sd_storage_slice_waiters(struct sd_slice_handle *slice, unsigned appender)
{
    return &slice->waiters[appender];
}

uint64_t sd_storage_slice_appenders(const struct sd_slice_handle *slice)
{
    return __atomic_load_n(&slice->appenders, __ATOMIC_ACQUIRE);
}

/* Marks slice as appended by appender before the append, so the sync covering it sees the
 * mark (the writer's lock orders the two). */
static void sd__mark_appender(struct sd_slice_handle *slice, unsigned appender)
{
    uint64_t bit = (uint64_t)1 << appender;

    if ((__atomic_load_n(&slice->appenders, __ATOMIC_RELAXED) & bit) == 0) {
        __atomic_fetch_or(&slice->appenders, bit, __ATOMIC_RELEASE);
    }
}

/* 1 if kvs item i is a "writing" slice of sink_key on one of our volumes whose old writer is not
 * still closing; *volume (may be NULL) gets its volume id (borrowed from the item's JSON, which
 * the caller frees through *j). */
static int sd__is_writing_slice(struct sd_storage *st, const struct sd_kvs *kvs, size_t i,
                                const char *sink_key, json_t **j)
{
    const char *key = kvs->items[i].key + strlen(SD_STORAGE_LOCAL_SLICES);
    size_t klen = strlen(sink_key);

    *j = NULL;
    if (strncmp(key, sink_key, klen) != 0 || key[klen] != '/') {
        return 0;
    }
    *j = json_loadb(kvs->items[i].value, kvs->items[i].value_len, 0, NULL);
    return strcmp(json_string_value(json_object_get(*j, "state")) ?: "", "writing") == 0 &&
           sd_storage_has_volume(st, json_string_value(json_object_get(*j, "volumeId"))) &&
           json_string_value(json_object_get(json_object_get(*j, "local"), "dir")) != NULL &&
           !sd_storage_slice_is_closing(st, key);
}

/* The slice the slot of sink_key writes next, from kvs (a range of storage/slice/level/local/):
 * with several of our volumes assigned, the newest writing slice on the first volume after
 * after_volume (NULL: the first volume), so the sink's slices take turns on its volumes; its
 * index, or -1 when the sink has no writing slice here. */
static ssize_t sd__next_writing_slice(struct sd_storage *st, const struct sd_kvs *kvs,
                                      const char *sink_key, const char *after_volume)
{
    ssize_t best = -1, first = -1;
    char best_vol[SD_VOLUME_ID_LEN + 1] = "", first_vol[SD_VOLUME_ID_LEN + 1] = "";

    for (size_t i = 0; i < kvs->n; i++) {
        json_t *j;
        if (sd__is_writing_slice(st, kvs, i, sink_key, &j)) {
            const char *vol = json_string_value(json_object_get(j, "volumeId"));
            /* keys sort by file, volume, time: a later item of one volume is newer */
            if (first < 0 || strcmp(vol, first_vol) <= 0) {
                first = (ssize_t)i;
                snprintf(first_vol, sizeof(first_vol), "%s", vol);
            }
            if (after_volume != NULL && strcmp(vol, after_volume) > 0 &&
                (best < 0 || strcmp(vol, best_vol) <= 0)) {
                best = (ssize_t)i;
                snprintf(best_vol, sizeof(best_vol), "%s", vol);
            }
        }
        json_decref(j);
    }
    return best >= 0 ? best : first;
}

/* 1 if the slice key is still a writing slice of sink_key in kvs. */
static int sd__still_writing(struct sd_storage *st, const struct sd_kvs *kvs, const char *sink_key,
                             const char *slice_key)
{
    for (size_t i = 0; i < kvs->n; i++) {
        json_t *j;
        int found;
        if (strcmp(kvs->items[i].key + strlen(SD_STORAGE_LOCAL_SLICES), slice_key) != 0) {
            continue;
        }
        found = sd__is_writing_slice(st, kvs, i, sink_key, &j);
        json_decref(j);
        return found;
    }
    return 0;
}

/* Opens the writer of the slice entity kv (an item of a range of the local level). */
static int sd__slice_open_stored(struct sd_storage *st, const struct sd_kv *kv, int64_t allocate,
                                 struct sd_slice_handle **out, struct sd_buf *err)
{
    const char *key = kv->key + strlen(SD_STORAGE_LOCAL_SLICES);
    json_t *j = json_loadb(kv->value, kv->value_len, 0, NULL);
    json_t *local = json_object_get(j, "local");
    const char *dir = json_string_value(json_object_get(local, "dir"));
    const char *compression = json_string_value(json_object_get(local, "compression")) ?: "gzip";
    struct sd_slice_stats recovered;
    int rc = SD_ECORRUPT;

    if (dir != NULL) {
        rc = sd__slice_open(st, key, st->node_id, dir, compression, allocate, NULL, NULL, out,
                            &recovered, err);
    } else {
        sd_buf_printf(err, "slice %s has no local directory", key);
    }
    json_decref(j);
    return rc;
}

static void sd__slot_free(struct sd_sink_slot *slot)
{
    free(slot->failed_key);
    pthread_mutex_destroy(&slot->lock);
    json_decref(slot->settings);
    free(slot->sink_key);
    free(slot);
}

static struct sd_sink_slot *sd__slot_find(struct sd_storage *st, const char *sink_key)
{
    for (struct sd_sink_slot *s = st->slots; s != NULL; s = s->next) {
        if (strcmp(s->sink_key, sink_key) == 0) {
            return s;
        }
    }
    return NULL;
}

int sd_storage_sink_activate(struct sd_storage *st, const json_t *sink, const json_t *settings,
                             struct sd_sink_slot **out)
{
    char *sink_key = sd_xasprintf("%lld/%lld/%s/%s",
                                  (long long)json_integer_value(json_object_get(sink, "projectId")),
                                  (long long)json_integer_value(json_object_get(sink, "branchId")),
                                  json_string_value(json_object_get(sink, "sourceId")) ?: "",
                                  json_string_value(json_object_get(sink, "sinkId")) ?: "");
    struct sd_sink_slot *slot;

    pthread_mutex_lock(&st->lock);
    slot = sd__slot_find(st, sink_key);
    if (slot != NULL) {
        /* Settings take effect at the next rotation, except sync.wait. */
        pthread_mutex_lock(&slot->lock);
        json_decref(slot->settings);
        slot->settings = json_deep_copy(settings);
        slot->wait = (int)sd_settings_get(settings, "storage.level.local.encoding.sync.wait", 1);
        pthread_mutex_unlock(&slot->lock);
        free(sink_key);
    } else {
        slot = sd_xcalloc(1, sizeof(*slot));
        slot->sink_key = sink_key;
        slot->storage = st;
        slot->settings = json_deep_copy(settings);
        slot->wait = (int)sd_settings_get(settings, "storage.level.local.encoding.sync.wait", 1);
        pthread_mutex_init(&slot->lock, NULL);
        slot->next = st->slots;
        st->slots = slot;
    }
    pthread_mutex_unlock(&st->lock);
    *out = slot;
    return 0;
}

int sd_storage_sink_is_active(struct sd_storage *st, const char *sink_key)
{
    int active;

    pthread_mutex_lock(&st->lock);
    active = sd__slot_find(st, sink_key) != NULL;
    pthread_mutex_unlock(&st->lock);
    return active;
}

json_t *sd_storage_active_sinks(struct sd_storage *st)
{
    json_t *keys = json_array();

    pthread_mutex_lock(&st->lock);
    for (struct sd_sink_slot *s = st->slots; s != NULL; s = s->next) {
        json_array_append_new(keys, json_string(s->sink_key));
    }
    pthread_mutex_unlock(&st->lock);
    return keys;
}

int sd_storage_slot_wait(const struct sd_sink_slot *slot)
{
    return slot->wait;
}

/* The close of a writer whose slice left "writing" (or whose sink stopped), bounded by
 * sliceCloseTimeout (fileCloseTimeout when its file closed too): the writer's final batch and
 * sync, then its statistics. */
struct sd_close_step {
    struct sd_storage *st;
    struct sd_slice_handle *slice;
    char *slice_key;
};

static int sd__close_step(void *arg)
{
    struct sd_close_step *c = arg;

    sd__slice_close(c->st, c->slice);
    pthread_mutex_lock(&c->st->lock);
    json_object_del(c->st->closing, c->slice_key);
    pthread_mutex_unlock(&c->st->lock);
    return 0;
}

static void sd__close_step_free(void *arg)
{
    struct sd_close_step *c = arg;

    free(c->slice_key);
    free(c);
}

/* Marks a slice as closing before its slot lets go of it, so no upload starts before its
 * writer is closed (sd_storage_slice_is_closing); the close step unmarks it. Idempotent. */
static void sd__mark_closing(struct sd_storage *st, const char *slice_key)
{
    pthread_mutex_lock(&st->lock);
    json_object_set_new(st->closing, slice_key, json_true());
    pthread_mutex_unlock(&st->lock);
}

/* Closes slice (already detached from its slot) within timeout_ms; past it, the close goes on
 * in the background and the slice stays out of the upload (sd_storage_slice_is_closing) and
 * out of the close-sync report until its writer is closed. */
static void sd__close_bounded(struct sd_storage *st, struct sd_slice_handle *slice,
                              int64_t timeout_ms)
{
    struct sd_close_step *c = sd_xcalloc(1, sizeof(*c));
    char *busy_key = sd_xasprintf("close/%s", slice->key);
    int is_pending, rc;

    c->st = st;
    c->slice = slice;
    c->slice_key = sd_xstrdup(slice->key);
    sd__mark_closing(st, slice->key);
    rc = sd_bounded_run(st->closes, busy_key, sd__close_step, c, sd__close_step_free, timeout_ms);
    if (rc == -ETIMEDOUT) {
        sd_log_error("storage", "slice %s: close timeout, its writer closes in the background",
                     busy_key + 6);
    } else {
        pthread_mutex_lock(&st->lock);
        is_pending = json_object_get(st->closing, c->slice_key) != NULL;
        pthread_mutex_unlock(&st->lock);
        if (is_pending) {
            sd__close_step(c); /* no thread could be started (rc -errno): close here */
        }
        sd__close_step_free(c);
    }
    free(busy_key);
}

int sd_storage_slice_is_closing(struct sd_storage *st, const char *slice_key)
{
    int closing;

    pthread_mutex_lock(&st->lock);
    closing = json_object_get(st->closing, slice_key) != NULL ||
              json_object_get(st->net_files, slice_key) != NULL;
    pthread_mutex_unlock(&st->lock);
    return closing;
}

/* ---- a writer node: the files source nodes write on it ---- */

/* Counts the open files of source nodes in a slice (delta +1 or -1). */
static void sd__net_count(struct sd_storage *st, const char *slice_key, int delta)
{
    json_int_t n;

    pthread_mutex_lock(&st->lock);
    n = json_integer_value(json_object_get(st->net_files, slice_key)) + delta;
    if (n > 0) {
        json_object_set_new(st->net_files, slice_key, json_integer(n));
    } else {
        json_object_del(st->net_files, slice_key);
    }
    pthread_mutex_unlock(&st->lock);
}

int sd_storage_net_open(struct sd_storage *st, const char *slice_key, const char *source_id,
                        sd_slice_sync_fn fn, void *arg, struct sd_slice_handle **out,
                        uint64_t *durable, struct sd_buf *err)
{
    char *key = sd_xasprintf("%s%s", SD_STORAGE_LOCAL_SLICES, slice_key);
    struct sd_slice_stats recovered;
    struct sd_kv kv;
    json_t *j = NULL;
    const char *state, *dir;
    int rc;

    /* counted before the state is read: once the slice has left "writing", no upload of it can
     * start before this file is closed again (sd_storage_slice_is_closing) */
    sd__net_count(st, slice_key, 1);
    memset(&kv, 0, sizeof(kv));
    rc = sd_state_get(st->state, key, &kv);
    if (rc == 0) {
        j = json_loadb(kv.value, kv.value_len, 0, NULL);
    }
    state = json_string_value(json_object_get(j, "state"));
    dir = json_string_value(json_object_get(json_object_get(j, "local"), "dir"));
    if (rc != 0 && rc != SD_ENOTFOUND) {
        sd_buf_printf(err, "slice %s cannot be read: %s", slice_key, sd_strerror(rc));
    } else if (j == NULL) {
        sd_buf_printf(err, "slice %s does not exist", slice_key);
        rc = SD_ENOTFOUND;
    } else if (!sd_storage_has_volume(st, json_string_value(json_object_get(j, "volumeId"))) ||
               dir == NULL) {
        sd_buf_printf(err, "slice %s is not on a volume of this writer node", slice_key);
        rc = SD_ENOTFOUND;
    } else if (state == NULL || strcmp(state, "writing") != 0) {
        sd_buf_printf(err, "slice %s is %s, not writing", slice_key, state ?: "without a state");
        rc = SD_ECLOSED;
    } else {
        rc = sd__slice_open(
            st, slice_key, source_id, dir,
            json_string_value(json_object_get(json_object_get(j, "local"), "compression"))
                ?: "gzip",
            sd__allocation_bytes(st, NULL), fn, arg, out, &recovered, err);
    }
    if (rc == 0) {
        *durable = recovered.records;
    } else {
        sd__net_count(st, slice_key, -1);
    }
    json_decref(j);
    sd_kv_free(&kv);
    free(key);
    return rc;
}

int sd_storage_net_append(struct sd_slice_handle *h, const void *rows, size_t len, uint32_t nrows,
                          int64_t record_ms, uint64_t *seq)
{
    return sd_slice_writer_append(h->writer, rows, len, nrows, record_ms, seq);
}

int sd_storage_net_close(struct sd_slice_handle *h, struct sd_slice_stats *final)
{
    struct sd_storage *st = h->storage;
    struct sd_slice_stats stats;
    int rc = sd__writer_close(st, h, &stats);

    sd__net_count(st, h->key, -1);
    sd_storage_slice_release(h);
    if (final != NULL) {
        *final = stats;
    }
    return rc;
}

/* Reports the revision up to which every writer of a slice that left "writing" is closed
 * (close-sync), once no close goes on in the background. */
static void sd__report_closesync(struct sd_storage *st)
{
    int64_t rev;
    int is_due;

    pthread_mutex_lock(&st->lock);
    rev = st->synced_rev;
    is_due =
        st->closesync_fn != NULL && rev > st->reported_rev && json_object_size(st->closing) == 0;
    pthread_mutex_unlock(&st->lock);
    if (is_due && st->closesync_fn(st->closesync_arg, rev) == 0) {
        pthread_mutex_lock(&st->lock);
        if (rev > st->reported_rev) {
            st->reported_rev = rev;
        }
        pthread_mutex_unlock(&st->lock);
    }
}

/* Points the slot at the sink's writing slice in kvs: opens its writer, switches appends to it
 * and closes the old writer (bounded by the close timeouts). */
static void sd__slot_follow(struct sd_storage *st, struct sd_sink_slot *slot,
                            const struct sd_kvs *kvs)
{
    struct sd_slice_handle *old = slot->slice, *next = NULL;
    char old_volume[SD_VOLUME_ID_LEN + 1] = "";
    struct sd_buf err = SD_BUF_INIT;
    const char *key = NULL;
    ssize_t at;
    int is_new_file;

    if (old != NULL && sd__still_writing(st, kvs, slot->sink_key, old->key)) {
        return; /* still writing the slice the store names */
    }
    if (old != NULL) { /* "<fileKey>/<volumeId>/<sliceOpenedAt>" */
        const char *end = strrchr(old->key, '/'), *start = end;
        while (start > old->key && start[-1] != '/') {
            start--;
        }
        snprintf(old_volume, sizeof(old_volume), "%.*s", (int)(end - start), start);
    }
    at = sd__next_writing_slice(st, kvs, slot->sink_key, old != NULL ? old_volume : NULL);
    if (at < 0 && old == NULL) {
        return; /* nothing to write yet */
    }
    if (old != NULL) {
        sd__slot_note_rotation(slot, old); /* the next slice's allocation follows its size */
    }
    key = at >= 0 ? kvs->items[at].key + strlen(SD_STORAGE_LOCAL_SLICES) : NULL;
    if (key != NULL && sd__slice_open_stored(st, &kvs->items[at], sd__allocation_bytes(st, slot),
                                             &next, &err) != 0) {
        if (slot->failed_key == NULL || strcmp(slot->failed_key, key) != 0) {
            sd_log_key(SD_LOG_WARN, "storage", slot->sink_key,
                       "sink %s: slice %s cannot be opened (%s); intake paused", slot->sink_key,
                       key, sd_buf_cstr(&err));
            free(slot->failed_key);
            slot->failed_key = sd_xstrdup(key);
        }
        if (old == NULL) {
            sd_buf_fini(&err);
            return;
        }
    }
    sd_buf_fini(&err);
    is_new_file = old != NULL && next != NULL && strcmp(old->file_key, next->file_key) != 0;
    if (old != NULL) {
        sd__mark_closing(st, old->key); /* no upload before it is closed */
    }
    pthread_mutex_lock(&slot->lock);
    slot->slice = next;
    pthread_mutex_unlock(&slot->lock);
    if (next != NULL) {
        free(slot->failed_key);
        slot->failed_key = NULL;
        if (old != NULL) {
            sd_log_key(SD_LOG_INFO, "storage", next->key, "sink %s rotated to slice %s%s",
                       slot->sink_key, next->key, is_new_file ? " (new file)" : "");
        } else {
            sd_log_key(SD_LOG_INFO, "storage", next->key, "sink %s writes slice %s", slot->sink_key,
                       next->key);
        }
    }
    if (old != NULL) {
        sd__close_bounded(st, old,
                          next == NULL || is_new_file ? st->cfg.file_close_timeout_ms
                                                      : st->cfg.slice_close_timeout_ms);
    }
}

/* ---- a source-only node: the sink's slices on the writer nodes ---- */

static void sd__on_remote_sync(void *arg, uint64_t seq, int rc)
{
    struct sd_slice_handle *slice = arg;
    struct sd_storage *st = slice->storage;

    if (st->listener != NULL) {
        st->listener(st->listener_arg, slice, seq, rc);
    }
}

/* The writer nodes this node can reach: {volumeId: nodeId} of the announced volumes with a
 * nodeAddress, and their nodes {nodeId: "host:port"} for the connections. Returns 0 or the
 * store's error. */
static int sd__load_writers(struct sd_storage *st, json_t *volumes, json_t *nodes)
{
    struct sd_kvs kvs;
    int rc;

    memset(&kvs, 0, sizeof(kvs));
    rc = sd_state_range(st->state, SD_STORAGE_WRITER_VOLUMES, 0, &kvs);
    for (size_t i = 0; rc == 0 && i < kvs.n; i++) {
        json_t *j = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
        const char *node = json_string_value(json_object_get(j, "nodeId"));
        const char *address = json_string_value(json_object_get(j, "nodeAddress"));
        if (node != NULL && address != NULL && address[0] != '\0') {
            json_object_set_new(volumes, kvs.items[i].key + strlen(SD_STORAGE_WRITER_VOLUMES),
                                json_string(node));
            json_object_set_new(nodes, node, json_string(address));
        }
        json_decref(j);
    }
    sd_kvs_free(&kvs);
    return rc;
}

/* The members of this node's source group, sorted (the store ranges in key order). */
static int sd__load_source_nodes(struct sd_storage *st, json_t *out)
{
    struct sd_kvs kvs;
    int rc;

    memset(&kvs, 0, sizeof(kvs));
    rc = sd_state_range(st->state, SD_STORAGE_SOURCE_NODES, 0, &kvs);
    for (size_t i = 0; rc == 0 && i < kvs.n; i++) {
        json_array_append_new(out, json_string(kvs.items[i].key + strlen(SD_STORAGE_SOURCE_NODES)));
    }
    sd_kvs_free(&kvs);
    return rc;
}

/* The slot's handle of slice_key in its remote set, or NULL. */
static struct sd_slice_handle *sd__slot_remote(struct sd_sink_slot *slot, const char *slice_key)
{
    for (size_t i = 0; i < slot->nremote; i++) {
        if (strcmp(slot->remote[i]->key, slice_key) == 0) {
            return slot->remote[i];
        }
    }
    return NULL;
}

/* Points the slot at this node's share of its sink's writing slices on the writer nodes
 * (sd_assign_slices over the source group): opens our files on the slices that joined the share
 * and closes those on slices that left it (bounded by the close timeouts). */
static void sd__slot_follow_remote(struct sd_storage *st, struct sd_sink_slot *slot,
                                   const struct sd_kvs *kvs, const json_t *volumes,
                                   const char *const *nodes, size_t nnodes, int64_t deadline)
{
    struct sd_slice_handle *next[SD_STORAGE_MAX_REMOTE], *gone[SD_STORAGE_MAX_REMOTE];
    size_t writing[SD_STORAGE_MAX_REMOTE], picked[SD_STORAGE_MAX_REMOTE];
    size_t nwriting = 0, npicked, nnext = 0, ngone = 0;
    size_t klen = strlen(slot->sink_key);
    int is_new[SD_STORAGE_MAX_REMOTE], any_ready = 0;

    for (size_t i = 0; i < kvs->n && nwriting < SD_STORAGE_MAX_REMOTE; i++) {
        const char *key = kvs->items[i].key + strlen(SD_STORAGE_LOCAL_SLICES);
        json_t *j;
        if (strncmp(key, slot->sink_key, klen) != 0 || key[klen] != '/' ||
            sd_storage_slice_is_closing(st, key)) {
            continue;
        }
        j = json_loadb(kvs->items[i].value, kvs->items[i].value_len, 0, NULL);
        if (strcmp(json_string_value(json_object_get(j, "state")) ?: "", "writing") == 0 &&
            json_object_get(volumes, json_string_value(json_object_get(j, "volumeId")) ?: "")) {
            writing[nwriting++] = i;
        }
        json_decref(j);
    }
    npicked = sd_assign_slices(nwriting, nodes, nnodes, st->node_id, st->min_slices, picked);
    for (size_t p = 0; p < npicked; p++) {
        const struct sd_kv *kv = &kvs->items[writing[picked[p]]];
        const char *key = kv->key + strlen(SD_STORAGE_LOCAL_SLICES);
        struct sd_slice_handle *h = sd__slot_remote(slot, key);
        if (h != NULL && sd_remote_file_is_failed(h->remote)) {
            h = NULL; /* refused, or its writer came back as another node: a new file */
        }
        if (h == NULL) {
            json_t *j = json_loadb(kv->value, kv->value_len, 0, NULL);
            const char *writer = json_string_value(
                json_object_get(volumes, json_string_value(json_object_get(j, "volumeId"))));
            h = sd__slice_handle(st, key, st->node_id);
            h->remote = sd_remote_open(st->remote, writer, key, sd__on_remote_sync, h);
            sd_log_key(SD_LOG_INFO, "storage", key, "sink %s writes slice %s on writer node %s",
                       slot->sink_key, key, writer);
            json_decref(j);
        }
        is_new[nnext] = sd__slot_remote(slot, key) != h;
        next[nnext++] = h;
    }
    for (size_t i = 0; i < slot->nremote; i++) {
        int kept = 0;
        for (size_t k = 0; k < nnext; k++) {
            kept |= next[k] == slot->remote[i];
        }
        if (!kept) {
            sd__mark_closing(st, slot->remote[i]->key); /* no upload before it is closed */
            gone[ngone++] = slot->remote[i];
        }
    }
    /* the new files take over once open (reference: up to 3 s), so a rotation refuses nothing */
    for (size_t k = 0; k < nnext; k++) {
        if (is_new[k] && !sd_remote_writer_is_down(next[k]->remote)) {
            (void)sd_remote_wait_open(next[k]->remote, deadline);
        }
        any_ready |= sd_remote_file_is_ready(next[k]->remote);
    }
    /* none of the share takes records (its new slices were refused: the file rotated again
     * meanwhile, and the other writer is down): the slices leaving the share that still take
     * them stay until a later pass has a ready one. They stay marked closing, so this node's
     * close-sync report waits for them. */
    for (size_t i = 0; i < ngone && !any_ready; i++) {
        if (sd_remote_file_is_ready(gone[i]->remote) && nnext < SD_STORAGE_MAX_REMOTE) {
            next[nnext++] = gone[i];
            gone[i] = NULL;
        }
    }
    pthread_mutex_lock(&slot->lock);
    memcpy(slot->remote, next, nnext * sizeof(*next));
    slot->nremote = nnext;
    pthread_mutex_unlock(&slot->lock);
    for (size_t i = 0; i < ngone; i++) {
        if (gone[i] != NULL) {
            sd__close_bounded(st, gone[i], st->cfg.slice_close_timeout_ms);
        }
    }
}

/* sd_storage_sync_slices of a source-only node: the writer nodes, the source group, then every
 * slot's share of the slices in kvs. */
static int sd__sync_remote(struct sd_storage *st, const struct sd_kvs *kvs)
{
    json_t *volumes = json_object(), *writers = json_object(), *members = json_array(), *m;
    const char *nodes[SD_STORAGE_MAX_SOURCE_NODES];
    int64_t deadline = sd_mono_ms() + SD_STORAGE_REMOTE_OPEN_MS; /* for the whole pass */
    size_t nnodes = 0, i;
    int rc = sd__load_writers(st, volumes, writers);

    if (rc == 0) {
        rc = sd__load_source_nodes(st, members);
    }
    if (rc == 0) {
        sd_remote_set_writers(st->remote, writers);
        json_array_foreach(members, i, m)
        {
            if (nnodes < SD_STORAGE_MAX_SOURCE_NODES) {
                nodes[nnodes++] = json_string_value(m);
            }
        }
        for (struct sd_sink_slot *slot = st->slots; slot != NULL; slot = slot->next) {
            sd__slot_follow_remote(st, slot, kvs, volumes, nodes, nnodes, deadline);
        }
    }
    json_decref(volumes);
    json_decref(writers);
    json_decref(members);
    return rc;
}

int sd_storage_sync_slices(struct sd_storage *st)
{
    struct sd_kvs kvs;
    int rc;

    memset(&kvs, 0, sizeof(kvs));
    rc = sd_state_range(st->state, SD_STORAGE_LOCAL_SLICES, 0, &kvs);
    if (rc != 0) {
        return rc; /* the open writers go on; the next change or pass retries */
    }
    /* the slot list changes only under the node's slot lock, which the caller holds */
    if (st->remote != NULL) {
        rc = sd__sync_remote(st, &kvs);
    }
    for (struct sd_sink_slot *slot = st->slots; slot != NULL && st->remote == NULL;
         slot = slot->next) {
        sd__slot_follow(st, slot, &kvs);
    }
    if (rc != 0) {
        sd_kvs_free(&kvs);
        return rc;
    }
    /* caught up with every slice change seen: the newest revision among them (not the store's
     * revision, which moves with every write anywhere and would make a report each time) */
    pthread_mutex_lock(&st->lock);
    for (size_t i = 0; i < kvs.n; i++) {
        if (kvs.items[i].mod_rev > st->synced_rev) {
            st->synced_rev = kvs.items[i].mod_rev;
        }
    }
    pthread_mutex_unlock(&st->lock);
    sd_kvs_free(&kvs);
    sd__report_closesync(st);
    return 0;
}

void sd_storage_set_closesync(struct sd_storage *st, sd_storage_closesync_fn fn, void *arg)
{
    st->closesync_fn = fn;
    st->closesync_arg = arg;
}

int sd_storage_sink_deactivate(struct sd_storage *st, const char *sink_key)
{
    struct sd_sink_slot **pp, *slot = NULL;

    pthread_mutex_lock(&st->lock);
    for (pp = &st->slots; *pp != NULL; pp = &(*pp)->next) {
        if (strcmp((*pp)->sink_key, sink_key) == 0) {
            slot = *pp;
            *pp = slot->next;
            break;
        }
    }
    pthread_mutex_unlock(&st->lock);
    if (slot == NULL) {
        return 0;
    }
    if (slot->slice != NULL) {
        struct sd_slice_handle *slice = slot->slice;
        sd__mark_closing(st, slice->key);
        pthread_mutex_lock(&slot->lock);
        slot->slice = NULL;
        pthread_mutex_unlock(&slot->lock);
        sd__close_bounded(st, slice, st->cfg.file_close_timeout_ms);
    }
    if (slot->nremote > 0) {
        struct sd_slice_handle *gone[SD_STORAGE_MAX_REMOTE];
        size_t ngone = slot->nremote;
        memcpy(gone, slot->remote, ngone * sizeof(*gone));
        for (size_t i = 0; i < ngone; i++) {
            sd__mark_closing(st, gone[i]->key);
        }
        pthread_mutex_lock(&slot->lock);
        slot->nremote = 0;
        pthread_mutex_unlock(&slot->lock);
        for (size_t i = 0; i < ngone; i++) {
            sd__close_bounded(st, gone[i], st->cfg.file_close_timeout_ms);
        }
    }
    sd__slot_free(slot);
    return 0;
}

/* The balancer of a source-only node (reference pipelineBalancer): the first of the slot's
 * slices, from the next in turn (roundRobin) or a random one (rand), that takes the rows. Each
 * appender (event loop) has its own turn, which moves once per round of that loop, not per
 * record: a round's records of a sink go to one slice as one batch (one write, one sync on the
 * writer), and the rounds spread over the slices. */
static int sd__append_remote(struct sd_storage *st, struct sd_sink_slot *slot, unsigned appender,
                             const void *rows, size_t len, uint32_t nrows,
                             struct sd_slice_handle **slice, uint64_t *seq)
{
    size_t n = slot->nremote, start;
    uint64_t round = st->rounds[appender]; /* the appender's own thread */
    int rc = SD_EUNHEALTHY;

    if (n == 0) {
        return SD_ECLOSED;
    }
    if (slot->turns[appender].round != round) {
        slot->turns[appender].round = round;
        slot->turns[appender].pick =
            st->is_random_pick ? (size_t)random() : slot->turns[appender].pick + 1;
    }
    start = slot->turns[appender].pick;
    for (size_t k = 0; k < n; k++) {
        struct sd_slice_handle *h = slot->remote[(start + k) % n];
        sd__mark_appender(h, appender);
        rc = sd_remote_append(h->remote, rows, len, nrows, seq); /* refused when not ready */
        if (rc == 0) {
            *slice = h;
            return 0;
        }
    }
    return rc;
}

void sd_storage_flush(struct sd_storage *st, unsigned appender)
{
    struct sd_slice_handle **held = (struct sd_slice_handle **)st->held[appender].data;
    size_t nheld = st->held[appender].len / sizeof(*held);
    uint64_t bit = (uint64_t)1 << appender;

    for (size_t i = 0; i < nheld; i++) {
        __atomic_fetch_and(&held[i]->held, ~bit, __ATOMIC_RELAXED);
        pthread_mutex_lock(&held[i]->writer_lock);
        if (held[i]->writer != NULL) {
            sd_slice_writer_start(held[i]->writer);
        }
        pthread_mutex_unlock(&held[i]->writer_lock);
        sd_storage_slice_release(held[i]);
    }
    st->held[appender].len = 0;
    if (st->remote != NULL) {
        st->rounds[appender]++;
        sd_remote_flush(st->remote);
    }
}

/* Notes that appender holds appends to slice until its sd_storage_flush (which releases the
 * reference taken here). The appender's own thread. */
static void sd__hold(struct sd_storage *st, struct sd_slice_handle *slice, unsigned appender)
{
    uint64_t bit = (uint64_t)1 << appender;

    /* once per round: only this appender sets or clears its bit, so a load tells, and the other
     * appends of the round write nothing to the shared handle */
    if ((__atomic_load_n(&slice->held, __ATOMIC_RELAXED) & bit) != 0) {
        return;
    }
    __atomic_fetch_or(&slice->held, bit, __ATOMIC_RELAXED);
    if (sd_buf_append(&st->held[appender], &slice, sizeof(slice)) == 0) {
        __atomic_add_fetch(&slice->refs, 1, __ATOMIC_ACQ_REL);
    } else { /* out of memory: start the batch now */
        __atomic_fetch_and(&slice->held, ~bit, __ATOMIC_RELAXED);
        sd_slice_writer_start(slice->writer);
    }
}

int sd_storage_append(struct sd_sink_slot *slot, unsigned appender, const void *rows, size_t len,
                      uint32_t nrows, int64_t record_ms, struct sd_slice_handle **slice,
                      uint64_t *seq)
{
    int rc = SD_ECLOSED;

    pthread_mutex_lock(&slot->lock);
    if (slot->slice != NULL) {
        sd__mark_appender(slot->slice, appender);
        rc = sd_slice_writer_append_held(slot->slice->writer, rows, len, nrows, record_ms, seq);
        *slice = slot->slice;
        if (rc == 0) {
            sd__hold(slot->storage, slot->slice, appender);
        }
    } else if (slot->storage->remote != NULL) {
        rc = sd__append_remote(slot->storage, slot, appender, rows, len, nrows, slice, seq);
    }
    pthread_mutex_unlock(&slot->lock);
    return rc;
}

json_t *sd_storage_open_slices(struct sd_storage *st)
{
    json_t *out = json_array();

    pthread_mutex_lock(&st->lock);
    for (struct sd_sink_slot *s = st->slots; s != NULL; s = s->next) {
        struct sd_slice_stats stats;
        json_t *j;
        pthread_mutex_lock(&s->lock);
        if (s->slice == NULL) {
            pthread_mutex_unlock(&s->lock);
            continue;
        }
        sd_slice_writer_stats(s->slice->writer, &stats);
        j = json_pack("{s:s, s:s, s:s, s:O, s:I, s:I, s:I}", "sinkKey", s->sink_key, "fileKey",
                      s->slice->file_key, "sliceKey", s->slice->key, "settings", s->settings,
                      "records", (json_int_t)stats.records, "compressedSize",
                      (json_int_t)stats.compressed_bytes, "uncompressedSize",
                      (json_int_t)stats.uncompressed_bytes);
        pthread_mutex_unlock(&s->lock);
        json_array_append_new(out, j);
    }
    pthread_mutex_unlock(&st->lock);
    return out;
}

/* ---- statistics thread ---- */

static void *sd__stats_main(void *arg)
{
    struct sd_storage *st = arg;

    sd_bgprio_thread_start("sd-stats");
    pthread_mutex_lock(&st->lock);
    while (st->is_running) {
        sd_cond_wait_ms(&st->stats_cond, &st->lock, st->cfg.stats_interval_ms);
        if (!st->is_running) {
            break;
        }
        for (struct sd_slice_handle *s = st->open_slices; s != NULL; s = s->next_open) {
            struct sd_slice_stats now;
            sd_slice_writer_stats(s->writer, &now);
            /* The state store is thread-safe; holding our lock keeps the slice alive. */
            sd__flush_slice_stats(st, s, &now);
        }
        pthread_mutex_unlock(&st->lock);
        sd__report_closesync(st); /* after a close that ended in the background */
        pthread_mutex_lock(&st->lock);
    }
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

/* ---- disk cleanup thread ---- */

/* Removes slice directories no entity names: a pass at once, then every interval (reference
 * writernode/diskcleanup). */
static void *sd__disk_cleanup_main(void *arg)
{
    struct sd_storage *st = arg;
    const char *paths[SD_STORAGE_MAX_VOLUMES];

    sd_bgprio_thread_start("sd-diskclean");
    for (size_t i = 0; i < st->nvolumes; i++) {
        paths[i] = st->volumes[i].path;
    }
    pthread_mutex_lock(&st->lock);
    while (st->is_running) {
        int64_t deadline_ms;
        int removed;
        pthread_mutex_unlock(&st->lock);
        removed =
            sd_disk_cleanup_pass(st->state, paths, st->nvolumes, st->cfg.disk_cleanup_concurrency);
        if (removed < 0) {
            sd_log_error("storage", "local storage disk cleanup failed: %s", sd_strerror(removed));
        } else {
            sd_log_info("storage", "disk cleanup removed %d directories", removed);
        }
        pthread_mutex_lock(&st->lock);
        deadline_ms = sd_mono_ms() + st->cfg.disk_cleanup_interval_ms;
        while (st->is_running &&
               sd_cond_wait_until_ms(&st->stats_cond, &st->lock, deadline_ms) != -ETIMEDOUT) {
            /* woken early: only the close ends the wait */
        }
    }
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

/* ---- recovery of slices left by a previous run ---- */

/* Recovers the files of every local-level slice of our volumes that no sink reopens (closing
 * slices, or writing slices of sinks that are gone), so they are valid gzip for the upload. */
static void sd__recover_closed_slices(struct sd_storage *st)
{
    struct sd_kvs kvs;

    memset(&kvs, 0, sizeof(kvs));
    if (sd_state_range(st->state, "storage/slice/level/local/", 0, &kvs) != 0) {
        return;
    }
    for (size_t i = 0; i < kvs.n; i++) {
        json_t *j = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
        const char *state = json_string_value(json_object_get(j, "state"));
        const char *vol = json_string_value(json_object_get(j, "volumeId"));
        const char *dir = json_string_value(json_object_get(json_object_get(j, "local"), "dir"));
        if (state && strcmp(state, "closing") == 0 && vol && sd__volume_by_id(st, vol) && dir) {
            DIR *d = opendir(dir);
            struct dirent *e;
            while (d != NULL && (e = readdir(d)) != NULL) {
                char path[PATH_MAX];
                struct sd_slice_stats stats;
                if (strstr(e->d_name, "slice-") == NULL) {
                    continue;
                }
                snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
                if (sd_slice_recover(path, &stats) != 0) {
                    sd_log_error("storage", "recovery of %s failed", path);
                }
            }
            if (d != NULL) {
                closedir(d);
            }
        }
        json_decref(j);
    }
    sd_kvs_free(&kvs);
}

/* What a storage with volumes and one without share. */
static struct sd_storage *sd__storage_new(const struct sd_config *cfg, struct sd_state *state,
                                          struct sd_health *health, const char *node_id)
{
    struct sd_storage *st = sd_xcalloc(1, sizeof(*st));

    st->health = health;
    st->state = state;
    st->node_id = node_id;
    pthread_mutex_init(&st->lock, NULL);
    sd_cond_init_monotonic(&st->stats_cond);
    sd__storage_config(cfg, &st->cfg);
    st->closes = sd_bounded_create();
    st->closing = json_object();
    st->net_files = json_object();
    return st;
}

int sd_storage_open_source(const struct sd_config *cfg, struct sd_state *state,
                           struct sd_health *health, const char *node_id, struct sd_storage **out,
                           struct sd_buf *err)
{
    struct sd_storage *st = sd__storage_new(cfg, state, health, node_id);
    struct sd_remote_opts o = {
        .node_id = node_id,
        .keepalive_ms = st->cfg.keepalive_ms,
        .window = st->cfg.window,
        .close_timeout_ms = st->cfg.stream_close_timeout_ms,
    };
    int rc = sd_remote_create(&o, &st->remote);

    if (rc != 0) {
        sd_buf_printf(err, "cannot start the connections to writer nodes: %s", sd_strerror(rc));
        sd_storage_close(st);
        return rc;
    }
    st->min_slices = (size_t)st->cfg.min_slices;
    st->is_random_pick = strcmp(st->cfg.balancer, "rand") == 0;
    *out = st;
    return 0;
}

int sd_storage_open(const struct sd_config *cfg, struct sd_state *state, struct sd_health *health,
                    const char *node_id, struct sd_storage **out, struct sd_buf *err)
{
    struct sd_storage *st = sd__storage_new(cfg, state, health, node_id);
    int rc;

    rc = sd__open_volumes(st, err);
    if (rc != 0) {
        sd_storage_close(st);
        return rc;
    }
    sd__recover_closed_slices(st);
    st->is_running = 1;
    rc = pthread_create(&st->stats_thread, NULL, sd__stats_main, st);
    if (rc != 0) {
        st->is_running = 0;
        sd_buf_printf(err, "cannot start statistics thread");
        sd_storage_close(st);
        return -rc;
    }
    if (st->cfg.is_disk_cleanup_enabled) {
        rc = pthread_create(&st->cleanup_thread, NULL, sd__disk_cleanup_main, st);
        if (rc != 0) {
            sd_buf_printf(err, "cannot start the disk cleanup thread");
            sd_storage_close(st);
            return -rc;
        }
        st->has_cleanup_thread = 1;
    } else {
        sd_log_info("storage", "local storage disk cleanup is disabled");
    }
    *out = st;
    return 0;
}

void sd_storage_set_sync_listener(struct sd_storage *st, sd_storage_sync_fn fn, void *arg)
{
    st->listener = fn;
    st->listener_arg = arg;
}

void sd_storage_close(struct sd_storage *st)
{
    if (st == NULL) {
        return;
    }
    pthread_mutex_lock(&st->lock);
    if (st->is_running) {
        st->is_running = 0;
        pthread_cond_broadcast(&st->stats_cond);
        pthread_mutex_unlock(&st->lock);
        pthread_join(st->stats_thread, NULL);
    } else {
        pthread_mutex_unlock(&st->lock);
    }
    if (st->has_cleanup_thread) {
        pthread_join(st->cleanup_thread, NULL);
    }
    /* Shutdown keeps files "writing": the next start reopens and continues them. */
    while (st->slots != NULL) {
        struct sd_sink_slot *slot = st->slots;
        st->slots = slot->next;
        if (slot->slice != NULL) {
            sd__slice_close(st, slot->slice);
        }
        for (size_t i = 0; i < slot->nremote; i++) {
            sd__slice_close(st, slot->remote[i]);
        }
        sd__slot_free(slot);
    }
    for (size_t a = 0; a < SD_STORAGE_MAX_APPENDERS; a++) { /* holds the last round left */
        struct sd_slice_handle **held = (struct sd_slice_handle **)st->held[a].data;
        for (size_t i = 0; i < st->held[a].len / sizeof(*held); i++) {
            sd_storage_slice_release(held[i]);
        }
        sd_buf_fini(&st->held[a]);
    }
    sd_bounded_destroy(st->closes); /* closes in the background finish first */
    sd_remote_destroy(st->remote);
    json_decref(st->closing);
    json_decref(st->net_files);
    for (size_t i = 0; i < st->nvolumes; i++) {
        close(st->volumes[i].lock_fd);
        free(st->volumes[i].path);
        free(st->volumes[i].type);
        free(st->volumes[i].label);
    }
    pthread_cond_destroy(&st->stats_cond);
    pthread_mutex_destroy(&st->lock);
    free(st);
}
