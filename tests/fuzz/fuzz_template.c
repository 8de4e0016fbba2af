/* fuzz_template.c: fuzz target for template columns on client input (pipeline/sd_template with
 * the Jsonnet engine): the request body and headers are the fuzzed part, the templates are
 * fixed, as a sink's would be.
 *
 * Input: byte 0 = flags (bits 0-1 content type: JSON, JSON with charset, form, text/plain;
 * bits 2-4 the template; bit 5 rawString), then "<header value>\n<body>". Properties checked
 * (abort on violation): an evaluation succeeds or fails with 400, 413, 415 or 500 and a
 * non-empty message, leaving the output as it was; a successful non-raw value is valid JSON
 * (sd_json_parse accepts it); evaluating the same record twice gives the same bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "pipeline/sd_json.h"
#include "pipeline/sd_record.h"
#include "pipeline/sd_template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_template: check failed: %s (line %d)\n", #cond, __LINE__);       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const char *const templates[8] = {
    "Body()",
    "Body('a.b[0].c', 'dflt')",
    "[Body('a', null), Body('a[1]', null), Body('x.y', null), Body('[0]', null)]",
    "{h: Header(), s: HeaderStr(), x: Header('x-fuzz', null), ip: Ip(), n: std.length(BodyStr())}",
    "std.manifestJsonEx(Body(), '  ')",
    "std.toString(Body()) + BodyStr()",
    "local b = Body(); if std.isObject(b) then std.objectFields(b) else std.type(b)",
    "local b = Body(); if std.isObject(b) then std.mergePatch(b, {a: null, n: {m: 1}}) else b",
};

static struct sd_template *compiled[8];

static struct sd_template *template_of(unsigned i)
{
    struct sd_buf err = SD_BUF_INIT;

    if (compiled[i] == NULL) {
        CHECK(sd_template_compile(templates[i], strlen(templates[i]), &compiled[i], &err) == 0);
    }
    sd_buf_fini(&err);
    return compiled[i];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const ctypes[] = {"application/json",
                                         "application/vnd.x+json; charset=utf-8",
                                         "application/x-www-form-urlencoded", "text/plain"};
    const char *in = (const char *)data;
    const char *nl;
    struct sd_header headers[3];
    struct sd_record rec;
    struct sd_map_error err;
    struct sd_buf out = SD_BUF_INIT;
    struct sd_buf again = SD_BUF_INIT;
    struct sd_template *t;
    struct sd_json_doc *doc;
    char why[128];
    unsigned flags;
    int raw;
    int rc;

    if (size < 1) {
        return 0;
    }
    flags = data[0];
    in++;
    size--;
    t = template_of((flags >> 2) & 7);
    raw = (flags >> 5) & 1;
    nl = memchr(in, '\n', size < 256 ? size : 256);

    sd_record_init(&rec);
    rec.recv_time_ms = 1764000000000;
    strcpy(rec.ip, "192.0.2.1");
    headers[0].name = SD_STR_LIT("Content-Type");
    headers[0].value = sd_str_c(ctypes[flags & 3]);
    headers[1].name = SD_STR_LIT("X-Fuzz");
    headers[1].value.p = in;
    headers[1].value.len = nl ? (size_t)(nl - in) : 0;
    headers[2].name = SD_STR_LIT("X-Fuzz");
    headers[2].value = SD_STR_LIT("second");
    rec.headers = headers;
    rec.nheaders = 3;
    rec.content_type = headers[0].value;
    rec.body.p = nl ? nl + 1 : in;
    rec.body.len = nl ? size - (size_t)(nl + 1 - in) : size;

    sd_buf_append_str(&out, "prev");
    memset(&err, 0, sizeof(err));
    rc = sd_template_eval(t, &rec, raw, &out, &err);
    CHECK(rc == 0 || rc == 400 || rc == 413 || rc == 415 || rc == 500);
    if (rc != 0) {
        CHECK(err.status == rc && err.name != NULL && err.message[0] != '\0');
        CHECK(out.len == 4 && memcmp(out.data, "prev", 4) == 0);
    } else {
        CHECK(out.len >= 4 && memcmp(out.data, "prev", 4) == 0);
        if (!raw) {
            CHECK(sd_json_parse(out.data + 4, out.len - 4, &doc, why, sizeof(why)) == 0);
            sd_json_doc_free(doc);
        }
        /* the same record evaluates to the same bytes (the body is parsed once, then shared) */
        CHECK(sd_template_eval(t, &rec, raw, &again, &err) == 0);
        CHECK(again.len == out.len - 4 && memcmp(again.data, out.data + 4, again.len) == 0);
    }
    sd_record_fini(&rec);
    sd_buf_fini(&out);
    sd_buf_fini(&again);
    return 0;
}
