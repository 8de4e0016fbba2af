/* staging_s3.h: the "s3" staging backend (any S3-compatible object store, libcurl with SigV4).
 *
 * sd_staging_s3_ops (listed in the backend registry, sd_backends.c) reads the staging.s3.* keys;
 * sd_staging_s3_open_opts opens a store from explicit options (tests, tools). */
#ifndef SD_STAGING_S3_H
#define SD_STAGING_S3_H

#include <stdint.h>

#include "staging/sd_staging.h"

/* Options of one store. Strings are copied by open. */
struct sd_staging_s3_opts {
    const char *endpoint;          /* "http(s)://host[:port]", no path */
    const char *region;            /* signing region, e.g. "us-east-1" */
    const char *bucket;            /* existing bucket */
    const char *prefix;            /* key prefix inside the bucket ("" = none; '/' added) */
    const char *access_key_id;     /* credentials (never logged or returned in errors) */
    const char *secret_access_key; /* ditto */
    int force_path_style;          /* 1: endpoint/bucket/key; 0: bucket.host/key */
    int64_t request_timeout_ms;    /* a request without progress for this long fails */
    int64_t multipart_threshold;   /* objects larger than this use multipart upload */
    int64_t part_size;             /* multipart part size (S3: >= 5 MiB) */
};

/* Opens a store (no request is sent). Returns 0 with *ctx set, or SD_EINVAL for a missing or
 * malformed option. */
int sd_staging_s3_open_opts(const struct sd_staging_s3_opts *o, void **ctx);

/* Sets out to the URL of key ("" = the bucket) with query q (NULL = none; already canonical:
 * sorted by name, RFC 3986 encoded). Exposed for the addressing tests. */
struct sd_buf;
void sd_staging_s3_url(void *ctx, struct sd_buf *out, const char *key, const char *q);

struct sd_config;
/* Sets out to where cfg's staging.s3.* keys point ("s3://bucket/prefix at endpoint"; no
 * credentials), for messages. */
void sd_staging_s3_location(const struct sd_config *cfg, struct sd_buf *out);

struct sd_config_bindings;
/* The staging.s3.* keys. */
extern const struct sd_config_bindings sd_staging_s3_config_bindings;

#endif
