/* fuzz_form.c: fuzz target for form bodies (pipeline/sd_form).
 *
 * Properties checked (abort on violation): a body is either rejected with a reason and the
 * output buffer untouched, or converted into a document that sd_json accepts, whose compact form
 * is stable, and whose top level is an object. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "pipeline/sd_form.h"
#include "pipeline/sd_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_form: check failed: %s (line %d)\n", #cond, __LINE__);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sd_buf out = SD_BUF_INIT;
    struct sd_buf c1 = SD_BUF_INIT;
    struct sd_buf c2 = SD_BUF_INIT;
    struct sd_json_doc *doc = NULL;
    char err[128];
    int rc;

    sd_buf_append_str(&out, "P");
    rc = sd_form_to_json((const char *)data, size, &out, err, sizeof(err));
    CHECK(rc == 0 || rc == SD_EPARSE);
    if (rc != 0) {
        CHECK(out.len == 1 && err[0] != '\0');
        sd_buf_fini(&out);
        return 0;
    }
    CHECK(out.len >= 3 && out.data[1] == '{' && out.data[out.len - 1] == '}');
    rc = sd_json_parse(out.data + 1, out.len - 1, &doc, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "fuzz_form: output rejected: %s\n", err);
    }
    CHECK(rc == 0);
    CHECK(sd_json_doc_compact(doc, &c1) == 0);
    sd_json_doc_free(doc);
    CHECK(sd_json_parse(c1.data, c1.len, &doc, err, sizeof(err)) == 0);
    CHECK(sd_json_doc_compact(doc, &c2) == 0);
    CHECK(c1.len == c2.len && memcmp(c1.data, c2.data, c1.len) == 0);
    sd_json_doc_free(doc);
    sd_buf_fini(&out);
    sd_buf_fini(&c1);
    sd_buf_fini(&c2);
    return 0;
}
