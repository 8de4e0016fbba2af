/* sd_staging.c: sd_staging_open, the key and prefix rules shared by every backend, and the
 * slice object key.
 *
 * DESIGN: the staging.backend name picks an ops table from the backend registry
 * (sd_backends.h). sd_staging_open only reads config and delegates; the backend owns its context
 * and files. Nothing here keeps state between calls, so every function is thread-safe. Errors are
 * logged once, here at open, where the caller gets a code and decides what to do; the backends and
 * the per-object wrappers only return codes (the uploader logs and retries with backoff). */
#include "staging/sd_staging.h"

#include "config/sd_config.h"
#include "config/sd_config_bind.h"
#include "core/sd_alloc.h"
#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "core/sd_log.h"
#include "sd_backends.h"
#include "staging_s3/staging_s3.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

int sd_staging_open_backend(const char *name, const struct sd_config *cfg, const char *location,
                            struct sd_staging **out)
{
    const struct sd_staging_ops *ops;
    const void *found;
    struct sd_staging *st;
    void *ctx = NULL;
    int rc;

    *out = NULL;
    if (location == NULL) {
        return SD_EINVAL;
    }
    rc = sd_backend_find(SD_BACKEND_STAGING, name, &found);
    if (rc != 0) {
        return rc;
    }
    ops = found;
    rc = ops->open(cfg, location, &ctx);
    if (rc != 0) {
        return rc;
    }
    st = sd_xmalloc(sizeof(*st));
    st->ops = ops;
    st->ctx = ctx;
    *out = st;
    return 0;
}

/* The keys that choose the staging storage, filled once by sd_config_fill. */
struct sd_staging_config {
    const char *backend;
    const char *local_path;
};

#define SD_STAGING_BIND(field, key) SD_BIND(struct sd_staging_config, field, key, SD_BIND_STR)
static const struct sd_config_binding sd_staging_rows[] = {
    SD_STAGING_BIND(backend, "staging.backend"),
    SD_STAGING_BIND(local_path, "staging.local.path"),
};
const struct sd_config_bindings sd_staging_config_bindings =
    SD_BINDINGS("staging", sd_staging_rows);

int sd_staging_open(const struct sd_config *cfg, struct sd_staging **out)
{
    struct sd_staging_config c;
    struct sd_buf s3_where = SD_BUF_INIT;
    const char *backend;
    const char *where;
    int rc;

    /* the config loader validates the enum and derives the local path below dataDir */
    sd_config_fill(cfg, &sd_staging_config_bindings, &c);
    backend = c.backend;
    where = c.local_path;
    if (strcmp(backend, "s3") == 0) {
        sd_staging_s3_location(cfg, &s3_where);
        where = sd_buf_cstr(&s3_where);
    }
    rc = sd_staging_open_backend(backend, cfg, where, out);

    if (rc != 0) {
        sd_log_error("staging", "open %s staging storage at %s: %s", backend, where,
                     sd_strerror(rc));
    } else {
        sd_log_info("staging", "opened %s staging storage at %s", backend, where);
    }
    sd_buf_fini(&s3_where);
    return rc;
}

void sd_staging_close(struct sd_staging *st)
{
    if (st == NULL) {
        return;
    }
    st->ops->close(st->ctx);
    free(st);
}

void sd_staging_keys_free(char **keys, size_t n)
{
    if (keys == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        free(keys[i]);
    }
    free(keys);
}

/* Checks one complete segment [p, p + len). */
static int staging_segment_ok(const char *p, size_t len)
{
    if (len == 0 || len > SD_STAGING_SEGMENT_LEN) {
        return 0;
    }
    if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) {
        return 0;
    }
    if (memmem(p, len, ".tmp-", 5) != NULL) {
        return 0;
    }
    return 1;
}

/* Checks s as a key (is_prefix 0) or a prefix (is_prefix 1). */
static int staging_check(const char *s, int is_prefix)
{
    const char *seg;
    size_t len, nseg = 0;

    if (s == NULL) {
        return SD_EINVAL;
    }
    len = strlen(s);
    if ((len == 0 && !is_prefix) || len > SD_STAGING_KEY_MAX || s[0] == '/') {
        return SD_EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c == 0x7f || c == '\\') {
            return SD_EINVAL;
        }
    }
    seg = s;
    for (;;) {
        const char *slash = strchr(seg, '/');

        if (slash == NULL) {
            break;
        }
        if (!staging_segment_ok(seg, (size_t)(slash - seg))) {
            return SD_EINVAL;
        }
        nseg++;
        seg = slash + 1;
    }
    /* the last segment: complete in a key; in a prefix only a filter on names, so it may be
     * empty or partial, but must not carry the reserved temp marker or be too long */
    if (!is_prefix) {
        if (!staging_segment_ok(seg, strlen(seg))) {
            return SD_EINVAL;
        }
    } else if (strlen(seg) > SD_STAGING_SEGMENT_LEN || strstr(seg, ".tmp-") != NULL) {
        return SD_EINVAL;
    }
    if (nseg + 1 > SD_STAGING_SEGMENT_MAX) {
        return SD_EINVAL;
    }
    return 0;
}

int sd_staging_key_check(const char *key)
{
    return staging_check(key, 0);
}

int sd_staging_prefix_check(const char *prefix)
{
    return staging_check(prefix, 1);
}

void sd_staging_slice_key(struct sd_buf *out, int64_t project, int64_t branch,
                          const char *source_id, const char *sink_id, const char *file_opened_at,
                          const char *slice_opened_at, const char *volume_id, int gzip)
{
    sd_buf_reset(out);
    if (source_id == NULL || sink_id == NULL || file_opened_at == NULL || slice_opened_at == NULL ||
        volume_id == NULL) {
        return;
    }
    if (sd_buf_printf(out, "%" PRId64 "/%" PRId64 "/%s/%s/%s/%s_%s%s", project, branch, source_id,
                      sink_id, file_opened_at, slice_opened_at, volume_id,
                      gzip ? ".gz" : "") != 0) {
        sd_buf_reset(out);
    }
}
