/* sd_api_reply.c: the configuration API's shared request and response helpers: the reference's
 * JSON error body (its endpoint and entity not-found texts, a message as a sentence), the JSON
 * request body, list paging and integer/boolean parameters.
 *
 * DESIGN: every error answer is {"statusCode", "error": "stream.api.<name>", "message"} as the
 * reference's; texts follow the reference's (Goa and service) messages so a client that reads
 * them sees no difference. */
#include "api/sd_api_internal.h"
#include "core/sd_error.h"
#include "core/sd_log.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sd__api_error(struct sd_http_req *req, int status, const char *name, const char *fmt, ...)
{
    char full_name[96];
    char message[1280];
    va_list ap;

    snprintf(full_name, sizeof(full_name), "stream.api.%s", name);
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    sd_http_send_error(req, status, full_name, message);
}

void sd__api_sentence(struct sd_buf *msg)
{
    char last;

    if (msg->len == 0) {
        return;
    }
    msg->data[0] = (char)toupper((unsigned char)msg->data[0]);
    last = msg->data[msg->len - 1];
    if (isalnum((unsigned char)last) || last == '\'' || last == '"') {
        sd_buf_append_char(msg, '.');
    }
}

void sd__api_endpoint_not_found(struct sd_http_req *req)
{
    struct sd_str raw = sd_http_path(req);
    struct sd_buf path = SD_BUF_INIT;

    if (sd_http_url_decode(raw, &path) != 0) { /* as sent when it does not decode */
        sd_buf_reset(&path);
        sd_buf_append(&path, raw.p, raw.len);
    }
    sd__api_error(req, 404, "endpointNotFound", "No endpoint found for path \"%.*s\".",
                  (int)(path.len > 256 ? 256 : path.len), sd_buf_cstr(&path));
    sd_buf_fini(&path);
}

void sd__api_not_found(struct sd_http_req *req, int is_sink, int deleted, const char *id)
{
    if (is_sink && deleted) {
        sd__api_error(req, 404, "deletedSinkNotFound", SD_API_DELETED_SINK_NOT_FOUND, id);
    } else if (is_sink) {
        sd__api_error(req, 404, "sinkNotFound", SD_API_SINK_NOT_FOUND, id);
    } else if (deleted) {
        sd__api_error(req, 404, "deletedSourceNotFound", SD_API_DELETED_SOURCE_NOT_FOUND, id);
    } else {
        sd__api_error(req, 404, "sourceNotFound", SD_API_SOURCE_NOT_FOUND, id);
    }
}

void sd__api_internal_error(struct sd_http_req *req, const char *what, int rc)
{
    if (rc == SD_EUNHEALTHY) { /* the state store logged it once and recovers by itself */
        sd_http_add_header(req, "Retry-After", "1");
        sd__api_error(req, 503, "stateStoreUnavailable",
                      "The state store cannot store changes now: %s failed; retry later.", what);
        return;
    }
    sd_log_error("api", "%s: %s", what, sd_strerror(rc));
    sd__api_error(req, 500, "internalError", "Application error: %s failed (%s).", what,
                  sd_strerror(rc));
}

void sd__api_validation_error(struct sd_http_req *req, const struct sd_defs_err *err)
{
    char full_name[96];

    snprintf(full_name, sizeof(full_name), "stream.api.%s", err->name ? err->name : "badRequest");
    sd_http_send_error(req, 400, full_name, err->message);
}

char *sd__api_dump(const json_t *value)
{
    char *text = json_dumps(value, JSON_COMPACT);

    if (text == NULL) {
        abort(); /* out of memory */
    }
    return text;
}

json_t *sd__api_body(struct sd_api_ctx *c)
{
    struct sd_http_req *req = c->req;
    struct sd_str text;
    json_error_t jerr;
    json_t *body;

    if (!sd_http_req_body(req, &text) || text.len == 0) {
        sd__api_error(req, 400, "badRequest", "The request body is empty, expected a JSON object.");
        return NULL;
    }
    body = json_loadb(text.p, text.len, JSON_REJECT_DUPLICATES, &jerr);
    if (body == NULL) {
        sd__api_error(req, 400, "badRequest",
                      "The request body is not valid JSON: %s (line %d, column %d).", jerr.text,
                      jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        sd__api_error(req, 400, "badRequest", "The request body must be a JSON object.");
        return NULL;
    }
    return body;
}

int sd__api_page(struct sd_api_ctx *c, struct sd_api_page *page)
{
    struct sd_buf tmp = SD_BUF_INIT;
    struct sd_str v;
    int rc = 0;

    memset(page, 0, sizeof(*page));
    page->limit = 100;
    if (sd_http_query_param(c->req, "afterId", &v) && v.len > 0) {
        if (sd_http_url_decode(v, &tmp) != 0 || tmp.len >= sizeof(page->after_id)) {
            sd__api_error(c->req, 400, "badRequest", "Invalid afterId query parameter.");
            rc = SD_EINVAL;
            goto out;
        }
        memcpy(page->after_id, tmp.data, tmp.len);
        page->after_id[tmp.len] = '\0';
    }
    if (sd_http_query_param(c->req, "limit", &v) && v.len > 0) {
        if (sd_http_url_decode(v, &tmp) != 0) {
            sd__api_error(c->req, 400, "badRequest", "Invalid limit query parameter.");
            rc = SD_EINVAL;
            goto out;
        }
        rc = sd__api_int_param(c->req, "limit", sd_buf_cstr(&tmp), 1, 100, &page->limit);
    }

out:
    sd_buf_fini(&tmp);
    return rc;
}

int sd__api_int_param(struct sd_http_req *req, const char *name, const char *value, int64_t min,
                      int64_t max, int64_t *out)
{
    struct sd_buf msg = SD_BUF_INIT;
    char *end;
    long long n;
    int bad_type;

    errno = 0;
    n = strtoll(value, &end, 10);
    bad_type = end == value || *end != '\0' || errno == ERANGE || isspace((unsigned char)*value);
    if (bad_type && errno != ERANGE) {
        n = 0; /* what Go's strconv.ParseInt leaves on a syntax error */
    }
    if (bad_type) {
        sd_buf_append_str(&msg, "invalid value ");
        sd_defs_append_quoted(&msg, value, strlen(value));
        sd_buf_printf(&msg, " for \"%s\", must be a integer", name);
    }
    if (n < min || n > max) {
        sd_buf_printf(&msg, "%s%s must be %s or equal than %" PRId64 " but got value %lld",
                      msg.len > 0 ? "; " : "", name, n < min ? "greater" : "lesser",
                      n < min ? min : max, n);
    }
    if (msg.len == 0) {
        *out = n;
        return 0;
    }
    sd__api_sentence(&msg);
    sd__api_error(req, 400, bad_type ? "invalidFieldType" : "invalidRange", "%s",
                  sd_buf_cstr(&msg));
    sd_buf_fini(&msg);
    return SD_EINVAL;
}

int sd__api_query_bool(struct sd_http_req *req, const char *name, int *out)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
    struct sd_buf value = SD_BUF_INIT;
    struct sd_buf msg = SD_BUF_INIT;
    struct sd_str raw;
    int rc = 0;

    *out = 0;
    if (!sd_http_query_param(req, name, &raw) || raw.len == 0) {
        return 0;
    }
    if (sd_http_url_decode(raw, &value) != 0) {
        sd_buf_reset(&value);
        sd_buf_append(&value, raw.p, raw.len); /* show what was sent */
    } else {
        for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
            if (strcmp(sd_buf_cstr(&value), yes[i]) == 0) {
                *out = 1;
                goto out;
            }
            if (strcmp(sd_buf_cstr(&value), no[i]) == 0) {
                goto out;
            }
        }
    }
    sd_defs_append_quoted(&msg, sd_buf_cstr(&value), value.len);
    sd__api_error(req, 400, "invalidFieldType", "Invalid value %s for \"%s\", must be a boolean.",
                  sd_buf_cstr(&msg), name);
    rc = SD_EINVAL;

out:
    sd_buf_fini(&value);
    sd_buf_fini(&msg);
    return rc;
}

json_t *sd__api_page_json(const struct sd_api_page *page, int64_t total, const char *last_id)
{
    json_t *j = json_object();

    json_object_set_new(j, "limit", json_integer(page->limit));
    json_object_set_new(j, "totalCount", json_integer(total));
    json_object_set_new(j, "afterId", json_string(page->after_id));
    json_object_set_new(j, "lastId", json_string(last_id ? last_id : ""));
    return j;
}
