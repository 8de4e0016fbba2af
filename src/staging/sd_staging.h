/* sd_staging.h: the staging-storage interface (an object store: key -> bytes) and its backend
 * registry.
 *
 * Closed slices are uploaded here by the storage-reader and imported from here into tables
 * (reference §4.6). Backends: "local" (a directory; standalone mode and tests) and "s3" (an
 * S3-compatible object store, plugins/staging_s3).
 * Every backend passes tests/unit/staging_contract.h.
 *
 * Keys are relative paths with '/' separators, at most SD_STAGING_KEY_MAX bytes and
 * SD_STAGING_SEGMENT_MAX segments. Each segment is non-empty, at most SD_STAGING_SEGMENT_LEN
 * bytes, not "." or "..", and contains no backslash, no control character (bytes 0x01-0x1f,
 * 0x7f) and not the text ".tmp-" (reserved for the temp files of uploads in progress). Anything
 * else is SD_EINVAL, checked before any I/O, so no call creates anything outside the staging
 * location. A prefix (list, del_prefix) follows the same rules except that it may be empty (every
 * key) and its last segment may be empty or partial ("a/b" matches "a/b/c" and "a/bc").
 *
 * Objects appear atomically: a reader sees the old object, the new one or none, never a part of
 * one. A put that returned 0 is durable (fsynced). Putting a key again replaces the object.
 *
 * Return codes: 0, a negated errno (an I/O failure of the store, e.g. -EROFS, -ENOTDIR, -ENOSPC,
 * -EACCES when the local directory is unusable; -ENOENT when an input file of put_files is
 * missing), SD_ENOTFOUND (no object at key), SD_EINVAL (bad key, prefix or argument).
 *
 * Threads: every call is thread-safe; several threads may put and read the same or different
 * keys at once (concurrent puts of one key end with one of the objects, complete). Only
 * sd_staging_close must not race with any other call on the same store, and every reader must be
 * closed before it. Calls block (disk sync, network): keep them off event-loop threads. */
#ifndef SD_STAGING_H
#define SD_STAGING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sd_buf;
struct sd_config;
/* An open object being read. Opaque: each backend defines its own and casts. */
struct sd_staging_reader;

/* S3's limit on key length. */
#define SD_STAGING_KEY_MAX 1024
/* Longest key segment: leaves room for the temp suffix within a file name (NAME_MAX 255). */
#define SD_STAGING_SEGMENT_LEN 200
/* Most segments in a key (bounds directory depth in the local backend). */
#define SD_STAGING_SEGMENT_MAX 32

/* A backend. Every call has the contract of the sd_staging_* wrapper of the same name below;
 * ctx is what open returned. Backends never log: they return codes, sd_staging_open logs. */
struct sd_staging_ops {
    const char *name;
    /* Opens the store at location (local: a directory, created with its parents if missing;
     * leftover temp files of interrupted uploads are removed). cfg is borrowed and may be NULL
     * (the local backend does not read it). Returns 0 with *ctx set, or -errno / SD_EINVAL. */
    int (*open)(const struct sd_config *cfg, const char *location, void **ctx);
    void (*close)(void *ctx);
    int (*put_files)(void *ctx, const char *key, const char *const *paths, size_t npaths,
                     uint64_t *size);
    int (*head)(void *ctx, const char *key, uint64_t *size);
    int (*open_read)(void *ctx, const char *key, struct sd_staging_reader **out);
    ssize_t (*read)(struct sd_staging_reader *r, void *buf, size_t len);
    void (*close_read)(struct sd_staging_reader *r);
    int (*del)(void *ctx, const char *key);
    int (*del_prefix)(void *ctx, const char *prefix);
    int (*list)(void *ctx, const char *prefix, char ***keys, size_t *n);
};

/* An open store: a backend and its context. */
struct sd_staging {
    const struct sd_staging_ops *ops;
    void *ctx;
};

/* The backends, listed in the backend registry (sd_backends.c). */
extern const struct sd_staging_ops sd_staging_local_ops;
extern const struct sd_staging_ops sd_staging_s3_ops;

/* Opens the backend named by config key "staging.backend" ("local" or "s3") at its location
 * ("staging.local.path", which the config loader defaults to <dataDir>/staging; s3 reads its
 * staging.s3.* keys itself). cfg is borrowed and must outlive the store. Logs the outcome. Returns
 * 0 with *out owned by the caller (close with sd_staging_close), or the backend's code; *out is
 * NULL on failure. */
int sd_staging_open(const struct sd_config *cfg, struct sd_staging **out);

/* Opens backend name at location (see sd_staging_ops.open). An unknown name is SD_EINVAL. Does
 * not log. */
int sd_staging_open_backend(const char *name, const struct sd_config *cfg, const char *location,
                            struct sd_staging **out);

/* Closes the backend and frees st. No call may be running or start on st, and no reader may be
 * open. NULL is fine. */
void sd_staging_close(struct sd_staging *st);

/* Frees a key list returned by sd_staging_list. NULL is fine. */
void sd_staging_keys_free(char **keys, size_t n);

/* Returns 0 if key is a valid object key (rules above), else SD_EINVAL. For backends. */
int sd_staging_key_check(const char *key);
/* Returns 0 if prefix is a valid key prefix (rules above), else SD_EINVAL. For backends. */
int sd_staging_prefix_check(const char *prefix);

/* Stores the concatenation of the files at paths[0..npaths) (in order; typically the gzip files
 * of one slice, whose concatenation is valid gzip) as object key, replacing any object there
 * atomically. npaths may be 0 (an empty object). Paths and key are borrowed. Sets *size (if not
 * NULL) to the bytes stored. Idempotent: a retry after any failure is safe. Local: writes
 * key.tmp-<random> in the final directory, fsyncs, renames over key, fsyncs the directory; a temp
 * file left by a crash is removed by the next put of that key or the next open. Returns 0,
 * SD_EINVAL, or -errno (nothing is stored then). */
static inline int sd_staging_put_files(struct sd_staging *st, const char *key,
                                       const char *const *paths, size_t npaths, uint64_t *size)
{
    return st->ops->put_files(st->ctx, key, paths, npaths, size);
}

/* Sets *size (if not NULL) to the size of object key. Returns 0, SD_ENOTFOUND, SD_EINVAL or
 * -errno. */
static inline int sd_staging_head(struct sd_staging *st, const char *key, uint64_t *size)
{
    return st->ops->head(st->ctx, key, size);
}

/* Opens object key for reading from its start. A reader never mixes two versions of an object:
 * if the object is replaced or deleted meanwhile, it goes on returning the version it opened
 * (local) or fails a read with -errno (a backend that cannot pin a version). Returns 0 with *out
 * owned by the caller (close with sd_staging_close_read), SD_ENOTFOUND, SD_EINVAL or -errno; *out
 * is NULL on failure. */
static inline int sd_staging_open_read(struct sd_staging *st, const char *key,
                                       struct sd_staging_reader **out)
{
    return st->ops->open_read(st->ctx, key, out);
}

/* Reads up to len bytes into buf. Returns the count (> 0), 0 at the end of the object, or -errno.
 * A reader is used by one thread at a time. */
static inline ssize_t sd_staging_read(struct sd_staging *st, struct sd_staging_reader *r, void *buf,
                                      size_t len)
{
    return st->ops->read(r, buf, len);
}

/* Closes and frees r. NULL is fine. */
static inline void sd_staging_close_read(struct sd_staging *st, struct sd_staging_reader *r)
{
    if (r != NULL) {
        st->ops->close_read(r);
    }
}

/* Deletes object key. A missing key is fine. Returns 0, SD_EINVAL or -errno. */
static inline int sd_staging_del(struct sd_staging *st, const char *key)
{
    return st->ops->del(st->ctx, key);
}

/* Deletes every object whose key starts with prefix ("" = all of them). Uploads in progress
 * meanwhile may survive. Returns 0, SD_EINVAL or -errno (some objects may be deleted then). */
static inline int sd_staging_del_prefix(struct sd_staging *st, const char *prefix)
{
    return st->ops->del_prefix(st->ctx, prefix);
}

/* Lists the keys that start with prefix ("" = all), sorted by strcmp (byte order). Temp files of
 * uploads are never listed. Sets *keys (NULL when *n is 0) to an owned array of owned strings,
 * free with sd_staging_keys_free. Returns 0, SD_EINVAL or -errno (*keys NULL and *n 0 then). */
static inline int sd_staging_list(struct sd_staging *st, const char *prefix, char ***keys,
                                  size_t *n)
{
    return st->ops->list(st->ctx, prefix, keys, n);
}

/* Sets out to the object key of a slice, as the reference names it (§4.6):
 * "<project>/<branch>/<source_id>/<sink_id>/<file_opened_at>/<slice_opened_at>_<volume_id>"
 * plus ".gz" when gzip is non-zero. Timestamps are passed formatted as
 * "2006-01-02T15:04:05.000Z". out is reset first; if a string is NULL or memory runs out it is
 * left empty, which every staging call rejects as SD_EINVAL. All strings are borrowed. */
void sd_staging_slice_key(struct sd_buf *out, int64_t project, int64_t branch,
                          const char *source_id, const char *sink_id, const char *file_opened_at,
                          const char *slice_opened_at, const char *volume_id, int gzip);

#ifdef __cplusplus
}
#endif

struct sd_config_bindings;
/* The keys that choose the staging storage (for the registry). */
extern const struct sd_config_bindings sd_staging_config_bindings;

#endif
