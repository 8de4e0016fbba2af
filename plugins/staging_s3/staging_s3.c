/* staging_s3.c: the "s3" staging backend: one object per key in a bucket of an S3-compatible
 * store, under an optional key prefix, spoken to with libcurl and AWS SigV4.
 *
 * DESIGN: every call uses its own curl easy handle, so the context is read-only after open and
 * every call is thread-safe. Requests are signed by curl (CURLOPT_AWS_SIGV4) with an explicit
 * "x-amz-content-sha256: UNSIGNED-PAYLOAD" (curl 7.88 adds none) and queries written sorted and
 * RFC 3986 encoded, because curl 7.88 signs the path and query as written (CAVEATS.md). Bodies
 * are streamed from the input files (pread, never loaded whole); integrity comes from the ETag:
 * a single PUT must answer the MD5 of what was sent, each multipart part the MD5 of the part
 * and the completed upload the MD5 of the part MD5s plus its size on a HEAD, else the put fails
 * (SD_ECORRUPT; stores whose ETags are not MD5s, such as SSE-KMS buckets, are not supported).
 * Objects above the multipart threshold are uploaded in parts; a failed multipart upload is
 * aborted. A PUT replaces the object at once, so a retried put of a key is idempotent. A reader
 * is one GET driven through a curl multi handle whose write callback pauses the transfer while
 * its 64 KiB buffer is full, so it streams and keeps the version it opened. Credentials are only
 * handed to curl (never formatted into a message); an S3 refusal of the signature or key id is
 * -EKEYREJECTED ("Key was rejected by service"). The backend never logs. */
#include "staging_s3/staging_s3.h"

#include "config/sd_config.h"
#include "config/sd_config_bind.h"
#include "core/sd_alloc.h"
#include "core/sd_buf.h"
#include "core/sd_error.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Most bytes of a response body kept (error documents, listings of up to 1000 keys). */
#define S3_RESP_MAX (8 * 1024 * 1024)
/* Buffer of a reader; larger than CURL_MAX_WRITE_SIZE, so a drained buffer takes any chunk. */
#define S3_READ_BUF (64 * 1024)
/* S3's most parts in one multipart upload. */
#define S3_MAX_PARTS 10000

struct s3_ctx {
    char *scheme_host; /* "http://127.0.0.1:4568" */
    char *scheme;      /* "http://" or "https://" */
    char *host;        /* "127.0.0.1:4568" */
    char *bucket;
    char *prefix; /* "" or ends with '/' */
    char *access_key_id;
    char *secret_access_key;
    char *sigv4; /* "aws:amz:<region>:s3" */
    int force_path_style;
    long timeout_s;
    int64_t threshold;
    int64_t part_size;
};

/* ---- configuration ---------------------------------------------------------------------- */

struct s3_config {
    const char *endpoint;
    const char *region;
    const char *bucket;
    const char *prefix;
    const char *access_key_id;
    const char *secret_access_key;
    int force_path_style;
    int64_t request_timeout;
    int64_t multipart_threshold;
    int64_t part_size;
};

#define S3_BIND(field, key, type) SD_BIND(struct s3_config, field, key, type)
static const struct sd_config_binding s3_rows[] = {
    S3_BIND(endpoint, "staging.s3.endpoint", SD_BIND_STR),
    S3_BIND(region, "staging.s3.region", SD_BIND_STR),
    S3_BIND(bucket, "staging.s3.bucket", SD_BIND_STR),
    S3_BIND(prefix, "staging.s3.prefix", SD_BIND_STR),
    S3_BIND(access_key_id, "staging.s3.accessKeyId", SD_BIND_STR),
    S3_BIND(secret_access_key, "staging.s3.secretAccessKey", SD_BIND_STR),
    S3_BIND(force_path_style, "staging.s3.forcePathStyle", SD_BIND_BOOL),
    S3_BIND(request_timeout, "staging.s3.requestTimeout", SD_BIND_I64),
    S3_BIND(multipart_threshold, "staging.s3.multipartThreshold", SD_BIND_I64),
    S3_BIND(part_size, "staging.s3.partSize", SD_BIND_I64),
};
const struct sd_config_bindings sd_staging_s3_config_bindings = SD_BINDINGS("staging.s3", s3_rows);

void sd_staging_s3_location(const struct sd_config *cfg, struct sd_buf *out)
{
    struct s3_config c;

    sd_config_fill(cfg, &sd_staging_s3_config_bindings, &c);
    sd_buf_reset(out);
    if (sd_buf_printf(out, "s3://%s/%s at %s", c.bucket, c.prefix,
                      c.endpoint[0] != '\0' ? c.endpoint : "(no staging.s3.endpoint)") != 0) {
        sd_buf_reset(out);
    }
}

/* ---- context ---------------------------------------------------------------------------- */

static pthread_once_t s3_curl_once = PTHREAD_ONCE_INIT;

static void s3_curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void s3_ctx_free(struct s3_ctx *c)
{
    if (c == NULL) {
        return;
    }
    free(c->scheme_host);
    free(c->scheme);
    free(c->host);
    free(c->bucket);
    free(c->prefix);
    free(c->access_key_id);
    free(c->secret_access_key);
    free(c->sigv4);
    free(c);
}

/* Returns 1 if s is non-empty and made only of bytes in allowed. */
static int s3_only(const char *s, const char *allowed)
{
    return s != NULL && s[0] != '\0' && strspn(s, allowed) == strlen(s);
}

int sd_staging_s3_open_opts(const struct sd_staging_s3_opts *o, void **ctx)
{
    static const char dns[] = "abcdefghijklmnopqrstuvwxyz0123456789.-";
    struct s3_ctx *c;
    const char *host;
    size_t hostlen, plen;

    *ctx = NULL;
    if (o->endpoint == NULL || o->bucket == NULL || o->prefix == NULL || o->region == NULL) {
        return SD_EINVAL;
    }
    if (strncmp(o->endpoint, "http://", 7) == 0) {
        host = o->endpoint + 7;
    } else if (strncmp(o->endpoint, "https://", 8) == 0) {
        host = o->endpoint + 8;
    } else {
        return SD_EINVAL;
    }
    hostlen = strcspn(host, "/?#");
    /* nothing but an optional '/' may follow the host */
    if (hostlen == 0 || (host[hostlen] != '\0' && strcmp(host + hostlen, "/") != 0)) {
        return SD_EINVAL;
    }
    if (!s3_only(o->bucket, dns) || !s3_only(o->region, dns) || o->access_key_id == NULL ||
        o->access_key_id[0] == '\0' || o->secret_access_key == NULL ||
        o->secret_access_key[0] == '\0' || o->request_timeout_ms <= 0 || o->part_size < 1 ||
        o->multipart_threshold < 0) {
        return SD_EINVAL;
    }
    plen = strlen(o->prefix);
    if (plen > 0 && sd_staging_prefix_check(o->prefix) != 0) {
        return SD_EINVAL;
    }
    pthread_once(&s3_curl_once, s3_curl_init);
    c = sd_xcalloc(1, sizeof(*c));
    c->scheme = sd_xasprintf("%.*s", (int)(host - o->endpoint), o->endpoint);
    c->host = sd_xasprintf("%.*s", (int)hostlen, host);
    c->scheme_host = sd_xasprintf("%s%s", c->scheme, c->host);
    c->bucket = sd_xstrdup(o->bucket);
    c->prefix = sd_xasprintf("%s%s", o->prefix, plen > 0 && o->prefix[plen - 1] != '/' ? "/" : "");
    c->access_key_id = sd_xstrdup(o->access_key_id);
    c->secret_access_key = sd_xstrdup(o->secret_access_key);
    c->sigv4 = sd_xasprintf("aws:amz:%s:s3", o->region);
    c->force_path_style = o->force_path_style;
    c->timeout_s = (long)((o->request_timeout_ms + 999) / 1000);
    c->threshold = o->multipart_threshold;
    c->part_size = o->part_size;
    *ctx = c;
    return 0;
}

static int s3_open(const struct sd_config *cfg, const char *location, void **ctx)
{
    struct s3_config c;
    struct sd_staging_s3_opts o;

    (void)location;
    *ctx = NULL;
    if (cfg == NULL) {
        return SD_EINVAL;
    }
    sd_config_fill(cfg, &sd_staging_s3_config_bindings, &c);
    o.endpoint = c.endpoint;
    o.region = c.region;
    o.bucket = c.bucket;
    o.prefix = c.prefix;
    o.access_key_id = c.access_key_id;
    o.secret_access_key = c.secret_access_key;
    o.force_path_style = c.force_path_style;
    o.request_timeout_ms = c.request_timeout;
    o.multipart_threshold = c.multipart_threshold;
    o.part_size = c.part_size;
    return sd_staging_s3_open_opts(&o, ctx);
}

static void s3_close(void *ctx)
{
    s3_ctx_free(ctx);
}

/* ---- URLs ------------------------------------------------------------------------------- */

/* Appends s percent-encoded as S3 signs it (RFC 3986 unreserved kept, upper-case hex); '/' is
 * kept when keep_slash. */
static void s3_encode(struct sd_buf *out, const char *s, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";

    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~' || (keep_slash && *p == '/')) {
            sd_buf_append_char(out, (char)*p);
        } else {
            sd_buf_append_char(out, '%');
            sd_buf_append_char(out, hex[*p >> 4]);
            sd_buf_append_char(out, hex[*p & 15]);
        }
    }
}

void sd_staging_s3_url(void *ctx, struct sd_buf *out, const char *key, const char *q)
{
    struct s3_ctx *c = ctx;

    sd_buf_reset(out);
    if (c->force_path_style) {
        sd_buf_printf(out, "%s/%s/", c->scheme_host, c->bucket);
    } else {
        sd_buf_printf(out, "%s%s.%s/", c->scheme, c->bucket, c->host);
    }
    if (key[0] != '\0') {
        s3_encode(out, c->prefix, 1);
        s3_encode(out, key, 1);
    } else if (c->force_path_style) {
        out->len--; /* the bucket itself: "/bucket", not "/bucket/" */
    }
    if (q != NULL) {
        sd_buf_append_char(out, '?');
        sd_buf_append_str(out, q);
    }
    sd_buf_cstr(out);
}

/* ---- request bodies: a byte range of the concatenated input files ------------------------ */

struct s3_src {
    const int *fds;
    const int64_t *ends; /* ends[i]: end offset of file i in the concatenation */
    size_t n;
    int64_t start; /* range [start, start + len) of the concatenation */
    int64_t len;
    int64_t pos;       /* bytes of the range sent */
    EVP_MD_CTX *md5;   /* of the range */
    EVP_MD_CTX *whole; /* of everything sent so far in order (multipart), or NULL */
    EVP_MD_CTX *mark;  /* whole at the start of the range, restored on a rewind */
    int err;           /* -errno that aborted the read */
};

static size_t s3_src_read(char *buf, size_t size, size_t nitems, void *arg)
{
    struct s3_src *s = arg;
    size_t want = size * nitems, got = 0;

    while (got < want && s->pos < s->len) {
        int64_t off = s->start + s->pos;
        size_t i = 0;
        int64_t file_start;
        size_t chunk;
        ssize_t r;

        while (i < s->n && s->ends[i] <= off) {
            i++;
        }
        file_start = i == 0 ? 0 : s->ends[i - 1];
        chunk = want - got;
        if ((int64_t)chunk > s->ends[i] - off) {
            chunk = (size_t)(s->ends[i] - off);
        }
        if ((int64_t)chunk > s->len - s->pos) {
            chunk = (size_t)(s->len - s->pos);
        }
        r = pread(s->fds[i], buf + got, chunk, off - file_start);
        if (r <= 0) {
            /* an input file shrank or cannot be read: never send a short body */
            s->err = r < 0 ? -errno : -EIO;
            return CURL_READFUNC_ABORT;
        }
        EVP_DigestUpdate(s->md5, buf + got, (size_t)r);
        if (s->whole != NULL) {
            EVP_DigestUpdate(s->whole, buf + got, (size_t)r);
        }
        got += (size_t)r;
        s->pos += r;
    }
    return got;
}

/* curl rewinds a body it must send again (e.g. after a refused "Expect: 100-continue"). */
static int s3_src_seek(void *arg, curl_off_t offset, int origin)
{
    struct s3_src *s = arg;

    if (origin != SEEK_SET || offset != 0) {
        return CURL_SEEKFUNC_CANTSEEK;
    }
    s->pos = 0;
    EVP_DigestInit_ex(s->md5, EVP_md5(), NULL);
    if (s->whole != NULL) {
        EVP_MD_CTX_copy_ex(s->whole, s->mark);
    }
    return CURL_SEEKFUNC_OK;
}

/* ---- one request ------------------------------------------------------------------------ */

struct s3_call {
    const char *method;
    struct sd_buf url;
    struct s3_src *src; /* PUT body, or NULL */
    const char *body;   /* POST body, or NULL */
    struct sd_buf resp; /* response body, at most S3_RESP_MAX bytes */
    long status;
    char etag[128];         /* ETag header without quotes */
    curl_off_t content_len; /* Content-Length of the response, -1 if none */
};

static size_t s3_resp_write(char *p, size_t size, size_t nitems, void *arg)
{
    struct sd_buf *b = arg;
    size_t n = size * nitems;

    if (b->len + n <= S3_RESP_MAX) {
        sd_buf_append(b, p, n);
    }
    return n;
}

/* Copies value (trimmed, quotes and &quot; removed) into out. */
static void s3_etag_copy(char *out, size_t cap, const char *v, size_t len)
{
    size_t o = 0;

    for (size_t i = 0; i < len && o + 1 < cap; i++) {
        if (v[i] == '"' || v[i] == ' ' || v[i] == '\t' || v[i] == '\r' || v[i] == '\n') {
            continue;
        }
        if (len - i >= 6 && strncmp(v + i, "&quot;", 6) == 0) {
            i += 5;
            continue;
        }
        out[o++] = v[i];
    }
    out[o] = '\0';
}

static size_t s3_header(char *p, size_t size, size_t nitems, void *arg)
{
    struct s3_call *call = arg;
    size_t n = size * nitems;

    if (n > 5 && strncasecmp(p, "ETag:", 5) == 0) {
        s3_etag_copy(call->etag, sizeof(call->etag), p + 5, n - 5);
    }
    return n;
}

static int s3_curl_errno(CURLcode cc, const struct s3_src *src)
{
    switch (cc) {
    case CURLE_OK:
        return 0;
    case CURLE_ABORTED_BY_CALLBACK:
    case CURLE_READ_ERROR:
        return src != NULL && src->err != 0 ? src->err : -EIO;
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
        return -EHOSTUNREACH;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return -ECONNRESET;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    default:
        return -EIO;
    }
}

/* Maps an HTTP status and its S3 error document to a return code. */
static int s3_status_errno(long status, const char *body)
{
    if (status >= 200 && status < 300) {
        return 0;
    }
    if (body == NULL) {
        body = "";
    }
    if (status == 404) {
        return strstr(body, "<Code>NoSuchBucket</Code>") != NULL ? -ENXIO : SD_ENOTFOUND;
    }
    if (status == 403) {
        return strstr(body, "<Code>SignatureDoesNotMatch</Code>") != NULL ||
                       strstr(body, "<Code>InvalidAccessKeyId</Code>") != NULL
                   ? -EKEYREJECTED
                   : -EACCES;
    }
    if (status == 412) {
        return -ESTALE;
    }
    if (status == 429 || status == 503) {
        return -EAGAIN;
    }
    return status >= 500 ? -EIO : -EPROTO;
}

/* Sets up easy for call; *hdrs receives the header list to free after the transfer. */
static void s3_setup(struct s3_ctx *c, CURL *easy, struct s3_call *call, struct curl_slist **hdrs)
{
    struct curl_slist *h = curl_slist_append(NULL, "x-amz-content-sha256: UNSIGNED-PAYLOAD");

    call->status = 0;
    call->etag[0] = '\0';
    call->content_len = -1;
    sd_buf_reset(&call->resp);
    curl_easy_setopt(easy, CURLOPT_URL, sd_buf_cstr(&call->url));
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_AWS_SIGV4, c->sigv4);
    curl_easy_setopt(easy, CURLOPT_USERNAME, c->access_key_id);
    curl_easy_setopt(easy, CURLOPT_PASSWORD, c->secret_access_key);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT, c->timeout_s);
    /* a transfer that moves nothing for the timeout fails; a paused reader is not counted */
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, c->timeout_s);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, s3_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, call);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, s3_resp_write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &call->resp);
    if (strcmp(call->method, "HEAD") == 0) {
        curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    } else if (strcmp(call->method, "PUT") == 0) {
        curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(easy, CURLOPT_READFUNCTION, s3_src_read);
        curl_easy_setopt(easy, CURLOPT_READDATA, call->src);
        curl_easy_setopt(easy, CURLOPT_SEEKFUNCTION, s3_src_seek);
        curl_easy_setopt(easy, CURLOPT_SEEKDATA, call->src);
        curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)call->src->len);
    } else if (strcmp(call->method, "POST") == 0) {
        h = curl_slist_append(h, "Content-Type: application/xml");
        curl_easy_setopt(easy, CURLOPT_POST, 1L);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, call->body != NULL ? call->body : "");
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(call->body != NULL ? strlen(call->body) : 0));
    } else if (strcmp(call->method, "GET") != 0) {
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, call->method);
    }
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h);
    *hdrs = h;
}

/* Runs call to completion. Returns 0 for a 2xx answer, else the mapped error. */
static int s3_perform(struct s3_ctx *c, struct s3_call *call)
{
    CURL *easy = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    CURLcode cc;
    int rc;

    if (easy == NULL) {
        return -ENOMEM;
    }
    s3_setup(c, easy, call, &hdrs);
    cc = curl_easy_perform(easy);
    rc = s3_curl_errno(cc, call->src);
    if (rc == 0) {
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &call->status);
        curl_easy_getinfo(easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &call->content_len);
        rc = s3_status_errno(call->status, sd_buf_cstr(&call->resp));
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(easy);
    return rc;
}

static void s3_call_init(struct s3_call *call, const char *method)
{
    memset(call, 0, sizeof(*call));
    call->method = method;
    sd_buf_init(&call->url);
    sd_buf_init(&call->resp);
}

static void s3_call_fini(struct s3_call *call)
{
    sd_buf_fini(&call->url);
    sd_buf_fini(&call->resp);
}

/* ---- XML answers ------------------------------------------------------------------------ */

/* Returns the decoded text of the first <tag> element at or after *p (owned), and moves *p past
 * it; NULL if there is none. */
static char *s3_xml_next(const char **p, const char *tag)
{
    char open[64], close[64];
    const char *s, *e;
    struct sd_buf out = SD_BUF_INIT;

    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    s = strstr(*p, open);
    if (s == NULL) {
        return NULL;
    }
    s += strlen(open);
    e = strstr(s, close);
    if (e == NULL) {
        return NULL;
    }
    *p = e + strlen(close);
    while (s < e) {
        static const char *const ent[][2] = {
            {"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&apos;", "'"}};
        size_t i;

        for (i = 0; i < sizeof(ent) / sizeof(ent[0]); i++) {
            size_t l = strlen(ent[i][0]);

            if ((size_t)(e - s) >= l && strncmp(s, ent[i][0], l) == 0) {
                sd_buf_append_str(&out, ent[i][1]);
                s += l;
                break;
            }
        }
        if (i < sizeof(ent) / sizeof(ent[0])) {
            continue;
        }
        if (s[0] == '&' && s[1] == '#') {
            char *end;
            unsigned long cp = s[2] == 'x' ? strtoul(s + 3, &end, 16) : strtoul(s + 2, &end, 10);

            if (end < e && *end == ';' && cp > 0 && cp < 0x110000) {
                if (cp < 0x80) {
                    sd_buf_append_char(&out, (char)cp);
                } else if (cp < 0x800) {
                    sd_buf_printf(&out, "%c%c", (int)(0xc0 | (cp >> 6)), (int)(0x80 | (cp & 0x3f)));
                } else if (cp < 0x10000) {
                    sd_buf_printf(&out, "%c%c%c", (int)(0xe0 | (cp >> 12)),
                                  (int)(0x80 | ((cp >> 6) & 0x3f)), (int)(0x80 | (cp & 0x3f)));
                } else {
                    sd_buf_printf(&out, "%c%c%c%c", (int)(0xf0 | (cp >> 18)),
                                  (int)(0x80 | ((cp >> 12) & 0x3f)),
                                  (int)(0x80 | ((cp >> 6) & 0x3f)), (int)(0x80 | (cp & 0x3f)));
                }
                s = end + 1;
                continue;
            }
        }
        sd_buf_append_char(&out, *s++);
    }
    sd_buf_cstr(&out);
    return sd_buf_steal(&out);
}

/* ---- put -------------------------------------------------------------------------------- */

static void s3_hex(char *out, const unsigned char *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sprintf(out + 2 * i, "%02x", d[i]);
    }
}

/* PUTs range [start, start + len) of the inputs to url and checks the ETag against its MD5,
 * whose raw bytes go to md5 (16 bytes). */
static int s3_put_range(struct s3_ctx *c, struct s3_call *call, struct s3_src *src, int64_t start,
                        int64_t len, unsigned char *md5)
{
    char hex[33];
    unsigned int mdlen = 0;
    int rc;

    src->start = start;
    src->len = len;
    src->pos = 0;
    src->err = 0;
    EVP_DigestInit_ex(src->md5, EVP_md5(), NULL);
    if (src->whole != NULL) {
        EVP_MD_CTX_copy_ex(src->mark, src->whole);
    }
    call->src = src;
    rc = s3_perform(c, call);
    if (rc != 0) {
        return rc;
    }
    EVP_DigestFinal_ex(src->md5, md5, &mdlen);
    s3_hex(hex, md5, 16);
    return strcasecmp(call->etag, hex) == 0 ? 0 : SD_ECORRUPT;
}

/* Uploads the inputs as a multipart upload; aborts it on failure. The completed upload's ETag
 * must be S3's (MD5 of the part MD5s, "-", part count) or the MD5 of the whole object (what
 * s3rver and some other stores answer). */
static int s3_put_multipart(struct s3_ctx *c, const char *key, struct s3_src *src, int64_t total)
{
    int64_t nparts = (total + c->part_size - 1) / c->part_size;
    unsigned char *md5s;
    struct s3_call call;
    struct sd_buf q = SD_BUF_INIT, body = SD_BUF_INIT, uid = SD_BUF_INIT;
    const char *p;
    char *upload_id = NULL, *etag = NULL;
    int rc;

    if (nparts > S3_MAX_PARTS) {
        return SD_ELIMIT;
    }
    src->whole = EVP_MD_CTX_new();
    src->mark = EVP_MD_CTX_new();
    if (src->whole == NULL || src->mark == NULL ||
        !EVP_DigestInit_ex(src->whole, EVP_md5(), NULL)) {
        EVP_MD_CTX_free(src->whole);
        EVP_MD_CTX_free(src->mark);
        return -ENOMEM;
    }
    s3_call_init(&call, "POST");
    sd_staging_s3_url(c, &call.url, key, "uploads=");
    rc = s3_perform(c, &call);
    p = sd_buf_cstr(&call.resp);
    if (rc == 0 && (upload_id = s3_xml_next(&p, "UploadId")) == NULL) {
        rc = -EPROTO;
    }
    s3_call_fini(&call);
    if (rc != 0) {
        EVP_MD_CTX_free(src->whole);
        EVP_MD_CTX_free(src->mark);
        return rc;
    }
    s3_encode(&uid, upload_id, 0);
    sd_buf_cstr(&uid);
    md5s = sd_xmalloc((size_t)nparts * 16);
    sd_buf_append_str(&body, "<CompleteMultipartUpload>");
    for (int64_t i = 0; i < nparts && rc == 0; i++) {
        int64_t start = i * c->part_size;
        int64_t len = total - start < c->part_size ? total - start : c->part_size;
        char hex[33];

        s3_call_init(&call, "PUT");
        sd_buf_reset(&q);
        sd_buf_printf(&q, "partNumber=%" PRId64 "&uploadId=%s", i + 1, uid.data);
        sd_staging_s3_url(c, &call.url, key, sd_buf_cstr(&q));
        rc = s3_put_range(c, &call, src, start, len, md5s + 16 * i);
        s3_call_fini(&call);
        s3_hex(hex, md5s + 16 * i, 16);
        sd_buf_printf(&body, "<Part><PartNumber>%" PRId64 "</PartNumber><ETag>\"%s\"</ETag></Part>",
                      i + 1, hex);
    }
    sd_buf_append_str(&body, "</CompleteMultipartUpload>");
    sd_buf_reset(&q);
    sd_buf_printf(&q, "uploadId=%s", uid.data);
    if (rc == 0) {
        unsigned char all[16];
        char want[64], whole[33];

        EVP_Digest(md5s, (size_t)nparts * 16, all, NULL, EVP_md5(), NULL);
        s3_hex(want, all, 16);
        sprintf(want + 32, "-%" PRId64, nparts);
        EVP_DigestFinal_ex(src->whole, all, NULL);
        s3_hex(whole, all, 16);
        s3_call_init(&call, "POST");
        call.body = sd_buf_cstr(&body);
        sd_staging_s3_url(c, &call.url, key, sd_buf_cstr(&q));
        rc = s3_perform(c, &call);
        p = sd_buf_cstr(&call.resp);
        /* S3 may answer 200 and report the failure in the body */
        if (rc == 0 && strstr(p, "<Error>") != NULL) {
            rc = s3_status_errno(500, p);
        } else if (rc == 0 && (etag = s3_xml_next(&p, "ETag")) == NULL) {
            rc = -EPROTO;
        } else if (rc == 0) {
            s3_etag_copy(call.etag, sizeof(call.etag), etag, strlen(etag));
            rc = strcasecmp(call.etag, want) == 0 || strcasecmp(call.etag, whole) == 0
                     ? 0
                     : SD_ECORRUPT;
        }
        s3_call_fini(&call);
    }
    if (rc != 0) {
        /* best effort: a store that cannot abort (s3rver) expires the parts itself */
        s3_call_init(&call, "DELETE");
        sd_staging_s3_url(c, &call.url, key, sd_buf_cstr(&q));
        (void)s3_perform(c, &call);
        s3_call_fini(&call);
    }
    EVP_MD_CTX_free(src->whole);
    EVP_MD_CTX_free(src->mark);
    free(etag);
    free(md5s);
    free(upload_id);
    sd_buf_fini(&q);
    sd_buf_fini(&body);
    sd_buf_fini(&uid);
    return rc;
}

static int s3_head(void *ctx, const char *key, uint64_t *size);

static int s3_put_files(void *ctx, const char *key, const char *const *paths, size_t npaths,
                        uint64_t *size)
{
    struct s3_ctx *c = ctx;
    struct s3_src src;
    int *fds;
    int64_t *ends;
    int64_t total = 0;
    int rc = 0;
    size_t opened = 0;

    if (sd_staging_key_check(key) != 0 || (npaths > 0 && paths == NULL)) {
        return SD_EINVAL;
    }
    for (size_t i = 0; i < npaths; i++) {
        if (paths[i] == NULL) {
            return SD_EINVAL;
        }
    }
    fds = sd_xcalloc(npaths + 1, sizeof(*fds));
    ends = sd_xcalloc(npaths + 1, sizeof(*ends));
    for (; opened < npaths; opened++) {
        struct stat st;

        fds[opened] = open(paths[opened], O_RDONLY | O_CLOEXEC);
        if (fds[opened] < 0 || fstat(fds[opened], &st) != 0) {
            rc = -errno;
            if (fds[opened] >= 0) {
                close(fds[opened]);
            }
            break;
        }
        total += st.st_size;
        ends[opened] = total;
    }
    if (rc == 0) {
        memset(&src, 0, sizeof(src));
        src.fds = fds;
        src.ends = ends;
        src.n = npaths;
        src.md5 = EVP_MD_CTX_new();
        if (src.md5 == NULL) {
            rc = -ENOMEM;
        } else if (total > c->threshold && total > 0) {
            uint64_t stored = 0;

            rc = s3_put_multipart(c, key, &src, total);
            if (rc == 0) {
                rc = s3_head(c, key, &stored);
            }
            if (rc == 0 && stored != (uint64_t)total) {
                rc = SD_ECORRUPT;
            }
        } else {
            struct s3_call call;
            unsigned char md5[16];

            s3_call_init(&call, "PUT");
            sd_staging_s3_url(c, &call.url, key, NULL);
            rc = s3_put_range(c, &call, &src, 0, total, md5);
            s3_call_fini(&call);
        }
        EVP_MD_CTX_free(src.md5);
    }
    for (size_t i = 0; i < opened; i++) {
        close(fds[i]);
    }
    free(fds);
    free(ends);
    if (rc == 0 && size != NULL) {
        *size = (uint64_t)total;
    }
    return rc;
}

/* ---- head, delete, list ----------------------------------------------------------------- */

static int s3_head(void *ctx, const char *key, uint64_t *size)
{
    struct s3_call call;
    int rc;

    if (sd_staging_key_check(key) != 0) {
        return SD_EINVAL;
    }
    s3_call_init(&call, "HEAD");
    sd_staging_s3_url(ctx, &call.url, key, NULL);
    rc = s3_perform(ctx, &call);
    if (rc == 0 && call.content_len < 0) {
        rc = -EPROTO;
    }
    if (rc == 0 && size != NULL) {
        *size = (uint64_t)call.content_len;
    }
    s3_call_fini(&call);
    return rc;
}

static int s3_del(void *ctx, const char *key)
{
    struct s3_call call;
    int rc;

    if (sd_staging_key_check(key) != 0) {
        return SD_EINVAL;
    }
    s3_call_init(&call, "DELETE");
    sd_staging_s3_url(ctx, &call.url, key, NULL);
    rc = s3_perform(ctx, &call);
    s3_call_fini(&call);
    return rc == SD_ENOTFOUND ? 0 : rc;
}

static int s3_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int s3_list(void *ctx, const char *prefix, char ***keys, size_t *n)
{
    struct s3_ctx *c = ctx;
    struct sd_buf q = SD_BUF_INIT, full = SD_BUF_INIT;
    char **out = NULL;
    size_t cnt = 0, cap = 0, plen = strlen(c->prefix);
    char *token = NULL;
    int rc = 0;

    *keys = NULL;
    *n = 0;
    if (sd_staging_prefix_check(prefix) != 0) {
        return SD_EINVAL;
    }
    sd_buf_printf(&full, "%s%s", c->prefix, prefix);
    sd_buf_cstr(&full);
    do {
        struct s3_call call;
        const char *p;
        char *k, *truncated;

        /* parameters sorted by name, as they are signed */
        sd_buf_reset(&q);
        if (token != NULL) {
            sd_buf_append_str(&q, "continuation-token=");
            s3_encode(&q, token, 0);
            sd_buf_append_char(&q, '&');
        }
        sd_buf_append_str(&q, "list-type=2&prefix=");
        s3_encode(&q, full.data, 0);
        free(token);
        token = NULL;
        s3_call_init(&call, "GET");
        sd_staging_s3_url(c, &call.url, "", sd_buf_cstr(&q));
        rc = s3_perform(c, &call);
        p = sd_buf_cstr(&call.resp);
        while (rc == 0 && (k = s3_xml_next(&p, "Key")) != NULL) {
            if (strncmp(k, c->prefix, plen) == 0) {
                if (cnt == cap) {
                    cap = cap ? cap * 2 : 64;
                    out = sd_xrealloc(out, cap * sizeof(*out));
                }
                out[cnt++] = sd_xstrdup(k + plen);
            }
            free(k);
        }
        p = sd_buf_cstr(&call.resp);
        truncated = rc == 0 ? s3_xml_next(&p, "IsTruncated") : NULL;
        if (truncated != NULL && strcmp(truncated, "true") == 0) {
            p = sd_buf_cstr(&call.resp);
            token = s3_xml_next(&p, "NextContinuationToken");
            if (token == NULL) {
                rc = -EPROTO;
            }
        }
        free(truncated);
        s3_call_fini(&call);
    } while (rc == 0 && token != NULL);
    free(token);
    sd_buf_fini(&q);
    sd_buf_fini(&full);
    if (rc != 0) {
        sd_staging_keys_free(out, cnt);
        return rc;
    }
    if (cnt > 0) {
        qsort(out, cnt, sizeof(*out), s3_cmp);
    }
    *keys = out;
    *n = cnt;
    return 0;
}

static int s3_del_prefix(void *ctx, const char *prefix)
{
    char **keys;
    size_t n;
    int rc = s3_list(ctx, prefix, &keys, &n);

    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = s3_del(ctx, keys[i]);
    }
    sd_staging_keys_free(keys, n);
    return rc;
}

/* ---- streaming reads -------------------------------------------------------------------- */

struct s3_reader {
    struct s3_call call;
    CURL *easy;
    CURLM *multi;
    struct curl_slist *hdrs;
    char *buf; /* S3_READ_BUF bytes; [off, len) unread */
    size_t off, len;
    int paused;
    int done; /* the transfer ended with err (0: the whole object was read) */
    int err;
};

static size_t s3_reader_write(char *p, size_t size, size_t nitems, void *arg)
{
    struct s3_reader *r = arg;
    size_t n = size * nitems;

    if (r->call.status == 0) {
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->call.status);
    }
    if (r->call.status != 200) {
        return s3_resp_write(p, size, nitems, &r->call.resp);
    }
    if (r->off == r->len) {
        r->off = r->len = 0;
    }
    if (n > S3_READ_BUF - r->len) {
        r->paused = 1;
        return CURL_WRITEFUNC_PAUSE;
    }
    memcpy(r->buf + r->len, p, n);
    r->len += n;
    return n;
}

/* Moves the transfer on: unpauses it, runs curl, waits for the socket when there is nothing
 * to hand out. Sets done/err when it ends. */
static void s3_reader_pump(struct s3_reader *r)
{
    CURLMsg *msg;
    int running = 0, left;

    if (r->paused && r->off == r->len) {
        r->paused = 0;
        curl_easy_pause(r->easy, CURLPAUSE_CONT);
    }
    if (curl_multi_perform(r->multi, &running) != CURLM_OK) {
        r->done = 1;
        r->err = -EIO;
        return;
    }
    while ((msg = curl_multi_info_read(r->multi, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE) {
            r->done = 1;
            r->err = s3_curl_errno(msg->data.result, NULL);
            if (r->err == 0) {
                curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->call.status);
                r->err = s3_status_errno(r->call.status, sd_buf_cstr(&r->call.resp));
            }
        }
    }
    if (!r->done && r->off == r->len && !r->paused) {
        curl_multi_poll(r->multi, NULL, 0, 1000, NULL);
    }
}

static void s3_close_read(struct sd_staging_reader *sr)
{
    struct s3_reader *r = (struct s3_reader *)sr;

    if (r->multi != NULL) {
        curl_multi_remove_handle(r->multi, r->easy);
        curl_multi_cleanup(r->multi);
    }
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->hdrs);
    s3_call_fini(&r->call);
    free(r->buf);
    free(r);
}

static int s3_open_read(void *ctx, const char *key, struct sd_staging_reader **out)
{
    struct s3_reader *r;
    int rc;

    *out = NULL;
    if (sd_staging_key_check(key) != 0) {
        return SD_EINVAL;
    }
    r = sd_xcalloc(1, sizeof(*r));
    s3_call_init(&r->call, "GET");
    sd_staging_s3_url(ctx, &r->call.url, key, NULL);
    r->buf = sd_xmalloc(S3_READ_BUF);
    r->easy = curl_easy_init();
    r->multi = curl_multi_init();
    if (r->easy == NULL || r->multi == NULL) {
        s3_close_read((struct sd_staging_reader *)r);
        return -ENOMEM;
    }
    s3_setup(ctx, r->easy, &r->call, &r->hdrs);
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, s3_reader_write);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    curl_multi_add_handle(r->multi, r->easy);
    /* run until the answer is known: the first body bytes or the end of the transfer */
    while (!r->done && r->len == 0 && !r->paused) {
        s3_reader_pump(r);
    }
    rc = r->done ? r->err : 0;
    if (rc != 0) {
        s3_close_read((struct sd_staging_reader *)r);
        return rc;
    }
    *out = (struct sd_staging_reader *)r;
    return 0;
}

static ssize_t s3_read(struct sd_staging_reader *sr, void *buf, size_t len)
{
    struct s3_reader *r = (struct s3_reader *)sr;

    for (;;) {
        if (r->off < r->len) {
            size_t n = r->len - r->off < len ? r->len - r->off : len;

            memcpy(buf, r->buf + r->off, n);
            r->off += n;
            return (ssize_t)n;
        }
        if (r->done) {
            return r->err;
        }
        s3_reader_pump(r);
    }
}

const struct sd_staging_ops sd_staging_s3_ops = {
    .name = "s3",
    .open = s3_open,
    .close = s3_close,
    .put_files = s3_put_files,
    .head = s3_head,
    .open_read = s3_open_read,
    .read = s3_read,
    .close_read = s3_close_read,
    .del = s3_del,
    .del_prefix = s3_del_prefix,
    .list = s3_list,
};
