/* sd_api_test.c: the test endpoint of a source (reference §2.3, POST .../sources/{id}/test): a
 * dry run of the request as one record through the mapping of every enabled sink, answering
 * the rows that would be written, {projectId, branchId, sourceId, tables:[{sinkId, tableId,
 * rows:[{columns:[{name, value}]}]}]}. Nothing is stored.
 *
 * DESIGN: the record is built as the data endpoint builds it (sd_http_req_record): the
 * request's headers with canonical names, minus X-StorageApi-Token (the API token must never
 * reach a rendered value), plus Content-Length, but without Host (the reference's API server,
 * Go's net/http, keeps Host out of the headers; its data endpoint keeps it); the body and its
 * Content-Type; the receive time; and the client IP taken from X-Real-IP, else the first
 * X-Forwarded-For entry, else the peer (a header value that is not an IP address is skipped). Each
 * column is compiled as a one-column mapping and written with sd_mapping_write_row, so the value is
 * exactly what ingestion writes and a failure names its column: a mapping error answers 422
 * stream.api.unprocessableContent "Invalid value for column "<name>": <reason>." as the
 * reference. The one-field CSV row is unquoted back into the value. The mappings are
 * compiled per request (a test request is rare and small). Templates may run to their limits,
 * so the mapping runs on the evaluation pool (pipeline/sd_eval_pool.h): the request is parked,
 * a worker builds the answer and posts it back to the API loop, which sends it; the API keeps
 * serving meanwhile. */
#include "api/sd_api_internal.h"
#include "core/sd_alloc.h"
#include "core/sd_error.h"
#include "pipeline/sd_eval_pool.h"
#include "pipeline/sd_mapping.h"
#include "pipeline/sd_record.h"
#include "state/sd_state.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The record is the data endpoint's without Host, and the API token never reaches it. */
static const struct sd_http_record_opts sd__record_opts = {.has_host = 0,
                                                           .drop_header = "x-storageapi-token"};

/* Copies v (blanks around it trimmed) into out when it is an IPv4 or IPv6 address. Returns 1
 * when copied. */
static int sd__take_ip(struct sd_str v, char *out, size_t out_len)
{
    unsigned char addr[sizeof(struct in6_addr)];
    char tmp[64];

    while (v.len > 0 && (v.p[0] == ' ' || v.p[0] == '\t')) {
        v.p++;
        v.len--;
    }
    while (v.len > 0 && (v.p[v.len - 1] == ' ' || v.p[v.len - 1] == '\t')) {
        v.len--;
    }
    if (v.len == 0 || v.len >= sizeof(tmp) || v.len >= out_len) {
        return 0;
    }
    memcpy(tmp, v.p, v.len);
    tmp[v.len] = '\0';
    if (inet_pton(AF_INET, tmp, addr) != 1 && inet_pton(AF_INET6, tmp, addr) != 1) {
        return 0;
    }
    memcpy(out, tmp, v.len + 1);
    return 1;
}

/* The client IP into out: X-Real-IP, else the first X-Forwarded-For entry; left as it is (the
 * peer) when neither names one. */
static void sd__client_ip(struct sd_http_req *req, char *out, size_t out_len)
{
    struct sd_str real_ip = sd_http_header(req, "x-real-ip");
    struct sd_str fwd = sd_http_header(req, "x-forwarded-for");
    const char *comma = fwd.len > 0 ? memchr(fwd.p, ',', fwd.len) : NULL;

    if (comma != NULL) {
        fwd.len = (size_t)(comma - fwd.p);
    }
    if (!sd__take_ip(real_ip, out, out_len)) {
        sd__take_ip(fwd, out, out_len);
    }
}

/* Unquotes the one-field CSV row "<value with "" doubled>"\n into a JSON string (new
 * reference), or NULL when row has another shape. */
static json_t *sd__row_value(const struct sd_buf *row)
{
    struct sd_buf v = SD_BUF_INIT;
    json_t *j = NULL;

    if (row->len < 3 || row->data[0] != '"' || row->data[row->len - 2] != '"' ||
        row->data[row->len - 1] != '\n') {
        return NULL;
    }
    for (size_t i = 1; i < row->len - 2; i++) {
        if (row->data[i] == '"') {
            if (row->data[i + 1] != '"') {
                goto out; /* more than one field */
            }
            i++;
        }
        sd_buf_append_char(&v, row->data[i]);
    }
    j = json_stringn(v.data ? v.data : "", v.len);

out:
    sd_buf_fini(&v);
    return j;
}

/* Maps rec through the columns of one sink into row (a TestResultRow's "columns" array).
 * Returns 0; 422 with msg filled for a mapping error; or a negative error. */
static int sd__map_sink(const json_t *columns, struct sd_record *rec, json_t *row,
                        struct sd_buf *msg)
{
    struct sd_buf csv = SD_BUF_INIT, merr = SD_BUF_INIT;
    size_t i;
    json_t *col;
    int rc = 0;

    json_array_foreach(columns, i, col)
    {
        const char *name = json_string_value(json_object_get(col, "name"));
        struct sd_mapping *m = NULL;
        struct sd_map_error err;
        json_t *one = json_array(), *value, *cell;

        json_array_append(one, (json_t *)col);
        sd_buf_reset(&csv);
        sd_buf_reset(&merr);
        memset(&err, 0, sizeof(err));
        rc = sd_mapping_compile(one, &m, &merr);
        json_decref(one);
        if (rc == SD_EINVAL) {
            sd_buf_printf(msg, "Invalid value for column \"%s\": %s", name ? name : "",
                          sd_buf_cstr(&merr));
            rc = 422;
        } else if (rc == 0) {
            rc = sd_mapping_write_row(m, rec, 0, &csv, &err);
            if (rc > 0) {
                /* the mapping names the column itself in some messages: say it once */
                char prefix[300];
                size_t plen =
                    (size_t)snprintf(prefix, sizeof(prefix), "column \"%s\": ", name ? name : "");
                const char *text = err.message;
                if (plen < sizeof(prefix) && strncmp(text, prefix, plen) == 0) {
                    text += plen;
                }
                sd_buf_printf(msg, "Invalid value for column \"%s\": %s", name ? name : "", text);
                rc = 422;
            }
        }
        sd_mapping_destroy(m);
        if (rc != 0) {
            break;
        }
        value = sd__row_value(&csv);
        if (value == NULL) {
            rc = SD_ECORRUPT;
            break;
        }
        cell = json_object();
        json_object_set_new(cell, "name", json_string(name ? name : ""));
        json_object_set_new(cell, "value", value);
        json_array_append_new(row, cell);
    }
    sd_buf_fini(&csv);
    sd_buf_fini(&merr);
    return rc;
}

/* Checks the optional ?signal= (logs, metrics or traces). Sends 400 and returns nonzero when
 * it has another value. */
static int sd__signal_param(struct sd_api_ctx *c)
{
    struct sd_buf b = SD_BUF_INIT;
    struct sd_str v;
    const char *s;
    int rc = 0;

    if (!sd_http_query_param(c->req, "signal", &v) || v.len == 0) {
        return 0;
    }
    if (sd_http_url_decode(v, &b) != 0) {
        rc = SD_EINVAL;
    } else {
        s = sd_buf_cstr(&b);
        if (strcmp(s, "logs") != 0 && strcmp(s, "metrics") != 0 && strcmp(s, "traces") != 0) {
            rc = SD_EINVAL;
        }
    }
    if (rc != 0) {
        sd__api_error(c->req, 400, "invalidEnumValue",
                      "Value of signal must be one of \"logs\", \"metrics\", \"traces\".");
    }
    sd_buf_fini(&b);
    return rc;
}

/* A test request, mapped on the evaluation pool: the record borrows the parked request's
 * memory (valid while it is unanswered). */
struct sd_test_job {
    struct sd_api *api;
    struct sd_http_req *req;
    int64_t project_id;
    int64_t branch_id;
    char source_id[SD_DEFS_ID_MAX + 1];
    struct sd_kvs kvs; /* the source's sinks */
    size_t prefix_len; /* of their keys */
    struct sd_record rec;
    int is_done; /* mapped (else cancelled: the pool stopped first) */
    int rc;      /* 0: out is the answer; 422: msg; else an internal error */
    json_t *out;
    struct sd_buf msg;
};

/* Maps the record through every enabled sink into job->out (any thread). */
static void sd__test_map(struct sd_test_job *job)
{
    json_t *tables = json_array();

    for (size_t i = 0; i < job->kvs.n; i++) {
        const struct sd_kv *kv = &job->kvs.items[i];
        json_t *sink = json_loadb(kv->value, kv->value_len, 0, NULL);
        json_t *table = json_object_get(sink, "table");
        json_t *columns = json_object_get(json_object_get(table, "mapping"), "columns");
        json_t *entry, *rows, *row, *cells;

        if (sink == NULL || json_object_get(sink, "disabled") != NULL || !json_is_array(columns)) {
            json_decref(sink);
            continue;
        }
        cells = json_array();
        job->rc = sd__map_sink(columns, &job->rec, cells, &job->msg);
        if (job->rc != 0) {
            json_decref(cells);
            json_decref(sink);
            json_decref(tables);
            return;
        }
        row = json_object();
        json_object_set_new(row, "columns", cells);
        rows = json_array();
        json_array_append_new(rows, row);
        entry = json_object();
        json_object_set_new(entry, "sinkId", json_string(kv->key + job->prefix_len));
        json_object_set(entry, "tableId", json_object_get(table, "tableId"));
        json_object_set_new(entry, "rows", rows);
        json_array_append_new(tables, entry);
        json_decref(sink);
    }
    job->out = json_object();
    json_object_set_new(job->out, "projectId", json_integer(job->project_id));
    json_object_set_new(job->out, "branchId", json_integer(job->branch_id));
    json_object_set_new(job->out, "sourceId", json_string(job->source_id));
    json_object_set_new(job->out, "tables", tables);
}

static void sd__test_job_free(struct sd_test_job *job)
{
    json_decref(job->out);
    sd_record_fini(&job->rec);
    sd_kvs_free(&job->kvs);
    sd_buf_fini(&job->msg);
    free(job);
}

/* API loop: answers the test request and frees the job. */
static void sd__test_answer(struct sd_test_job *job)
{
    if (!job->is_done) {
        sd__api_error(job->req, 503, "shutdown", "The node is shutting down, retry later.");
    } else if (job->out != NULL) {
        sd_http_send_json(job->req, 200, job->out, 1);
        job->out = NULL;
    } else if (job->rc == 422) {
        sd__api_sentence(&job->msg);
        sd__api_error(job->req, 422, "unprocessableContent", "%s", sd_buf_cstr(&job->msg));
    } else {
        sd__api_internal_error(job->req, "mapping the record", job->rc);
    }
    sd__test_job_free(job);
}

static void sd__test_on_mapped(struct sd_http_loop *loop, void *arg)
{
    (void)loop;
    sd__test_answer(arg);
}

/* Pool worker: maps, then hands the answer to the API loop. */
static void sd__test_job(void *arg, int is_cancelled)
{
    struct sd_test_job *job = arg;

    if (!is_cancelled) {
        sd__test_map(job);
        job->is_done = 1;
    }
    sd_record_fini(&job->rec); /* the parsed body is freed on the thread that made it */
    sd_http_loop_post(job->api->loop, sd__test_on_mapped, job);
}

void sd__api_source_test(struct sd_api_ctx *c)
{
    struct sd_buf prefix = SD_BUF_INIT;
    struct sd_test_job *job;
    struct sd_eval_pool *pool = c->api->eval_pool;
    int rc;

    if (sd__signal_param(c) != 0 || sd__api_get_source(c, NULL, NULL) != 0) {
        return;
    }
    job = sd_xcalloc(1, sizeof(*job));
    job->api = c->api;
    job->req = c->req;
    job->project_id = c->project_id;
    job->branch_id = c->branch_id;
    snprintf(job->source_id, sizeof(job->source_id), "%s", c->source_id);
    sd_buf_init(&job->msg);
    sd_http_req_record(c->req, &sd__record_opts, &job->rec);
    sd__client_ip(c->req, job->rec.ip, sizeof(job->rec.ip));
    sd_defs_sinks_prefix(&prefix, c->project_id, c->branch_id, c->source_id, 0);
    job->prefix_len = prefix.len;
    rc = sd_state_range(c->api->state, sd_buf_cstr(&prefix), 0, &job->kvs);
    sd_buf_fini(&prefix);
    if (rc != 0) {
        sd__api_internal_error(c->req, "listing sinks", rc);
        sd__test_job_free(job);
        return;
    }

    if (!sd_eval_pool_is_open(pool)) { /* no workers (none in this process, or stopping): inline */
        sd__test_map(job);
        job->is_done = 1;
        sd__test_answer(job);
        return;
    }
    rc = sd_eval_pool_submit(pool, sd__test_job, job);
    if (rc == SD_ELIMIT) {
        sd__api_error(c->req, 503, "templatesBusy",
                      "Too many requests wait for template evaluation, retry later.");
        sd__test_job_free(job);
    } else if (rc != 0) {
        sd__test_answer(job); /* not done: the pool is stopping */
    }
}
