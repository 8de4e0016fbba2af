/* fuzz_json_path.c: fuzz target for JSON validation and path extraction (pipeline/sd_json).
 *
 * Input: "<path>\n<json>" (without a newline in the first 256 bytes the whole input is the
 * document and a few fixed paths are used). Properties checked (abort on violation):
 * - sd_json_parse and the fallback validator agree on every input;
 * - whatever jansson accepts is accepted, unless it nests deeper than 128 levels;
 * - a found value in JSON form is itself a valid document and its compact form is stable;
 * - a found raw string is valid UTF-8 without NUL; compiled and one-shot lookups agree;
 * - the compact form of the whole document is valid and stable. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "pipeline/sd_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_json_path: check failed: %s (line %d)\n", #cond, __LINE__);      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Checks that text is a valid document whose compact form equals itself. */
static void check_compact_stable(const char *text, size_t len)
{
    struct sd_json_doc *doc = NULL;
    struct sd_buf again = SD_BUF_INIT;
    char err[128];

    CHECK(sd_json_parse(text, len, &doc, err, sizeof(err)) == 0);
    CHECK(sd_json_doc_compact(doc, &again) == 0);
    CHECK(again.len == len && memcmp(again.data, text, len) == 0);
    sd_json_doc_free(doc);
    sd_buf_fini(&again);
}

static void check_path(const struct sd_json_doc *doc, const char *path, size_t plen)
{
    struct sd_json_cpath cp;
    struct sd_buf out = SD_BUF_INIT;
    struct sd_buf out2 = SD_BUF_INIT;
    int found = 0;
    int found2 = 0;
    int rc;
    int rc2;

    for (int raw = 0; raw <= 1; raw++) {
        sd_buf_reset(&out);
        sd_buf_reset(&out2);
        rc = sd_json_path(doc, path, plen, raw, &out, &found);
        CHECK(rc == 0 || rc == SD_EPARSE || rc == SD_EINVAL);
        CHECK((rc == SD_EPARSE) == (sd_json_path_check(path, plen) == SD_EPARSE));
        if (rc == SD_EPARSE) {
            CHECK(sd_json_cpath_compile(path, plen, &cp, NULL, 0) == SD_EPARSE);
            break;
        }
        CHECK(sd_json_cpath_compile(path, plen, &cp, NULL, 0) == 0);
        rc2 = sd_json_cpath_lookup(doc, &cp, raw, &out2, &found2);
        sd_json_cpath_fini(&cp);
        CHECK(rc == rc2 && found == found2);
        CHECK(out.len == out2.len && (out.len == 0 || memcmp(out.data, out2.data, out.len) == 0));
        if (rc == SD_EINVAL) {
            CHECK(raw && out.len == 0);
            continue;
        }
        if (!found) {
            CHECK(out.len == 0);
            continue;
        }
        CHECK(sd_json_utf8_valid(out.data, out.len));
        if (raw) {
            CHECK(memchr(out.data, '\0', out.len) == NULL);
        } else {
            check_compact_stable(out.data, out.len);
        }
    }
    sd_buf_fini(&out);
    sd_buf_fini(&out2);
}

static int nesting_over_limit(const char *err)
{
    return strstr(err, "nesting deeper than 128") != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const fixed[] = {"a", "[0]", "a.b", "[0][0]", "a[1].b", "x.y.z"};
    const char *in = (const char *)data;
    const char *nl = memchr(in, '\n', size < 256 ? size : 256);
    const char *json = nl ? nl + 1 : in;
    size_t jlen = nl ? size - (size_t)(nl + 1 - in) : size;
    struct sd_json_doc *doc = NULL;
    struct sd_buf compact = SD_BUF_INIT;
    json_error_t jerr;
    json_t *j;
    char err[128];
    char err2[128];
    int rc;
    int slow;

    rc = sd_json_parse(json, jlen, &doc, err, sizeof(err));
    slow = sd_json_validate_slow(json, jlen, err2, sizeof(err2));
    CHECK(rc == 0 || rc == SD_EPARSE);
    CHECK(rc == slow);
    CHECK((rc == 0) == (doc != NULL));
    /* jansson stops reading at a NUL byte, so it only judges inputs without one. */
    j = memchr(json, '\0', jlen) ? NULL
                                 : json_loadb(json, jlen, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (j != NULL && rc != 0) {
        CHECK(nesting_over_limit(err));
    }
    json_decref(j);
    if (rc != 0) {
        CHECK(err[0] != '\0');
        return 0;
    }
    CHECK(sd_json_doc_compact(doc, &compact) == 0);
    check_compact_stable(compact.data, compact.len);
    if (nl != NULL) {
        check_path(doc, in, (size_t)(nl - in));
    } else {
        for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
            check_path(doc, fixed[i], strlen(fixed[i]));
        }
    }
    sd_json_doc_free(doc);
    sd_buf_fini(&compact);
    return 0;
}
