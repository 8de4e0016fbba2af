/* fuzz_jsonnet.c: fuzz target for the Jsonnet engine (jsonnet/sd_jsonnet.h): the input is a
 * program, compiled and, when it compiles, evaluated with small limits.
 *
 * Properties checked (abort on violation): compilation returns 0 or SD_EPARSE, and a compile
 * error's message starts with "<line>:<col>:"; evaluation returns 0, SD_EINVAL or SD_ELIMIT
 * (output limit); on success the compact output is valid JSON (sd_json, up to its depth limit)
 * and a second evaluation on the same VM writes the same bytes; on failure the output buffer is
 * untouched and the message is not empty. The input is also read as YAML text
 * (std.parseYaml(Input()), when it is valid UTF-8), under the same checks but determinism. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "core/sd_utf8.h"
#include "jsonnet/sd_jn_value.h"
#include "jsonnet/sd_jsonnet.h"
#include "pipeline/sd_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_jsonnet: check failed: %s (line %d)\n", #cond, __LINE__);        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* True when msg starts with "<digits>:<digits>:". */
static int has_position(const char *msg)
{
    const char *p = msg;

    if (!isdigit((unsigned char)*p)) {
        return 0;
    }
    while (isdigit((unsigned char)*p)) {
        p++;
    }
    if (*p++ != ':' || !isdigit((unsigned char)*p)) {
        return 0;
    }
    while (isdigit((unsigned char)*p)) {
        p++;
    }
    return *p == ':';
}

/* Nesting depth of JSON text p[0..len) (brackets outside strings). */
static int json_depth(const char *p, size_t len)
{
    int depth = 0, max = 0, in_str = 0;

    for (size_t i = 0; i < len; i++) {
        if (in_str) {
            if (p[i] == '\\') {
                i++;
            } else if (p[i] == '"') {
                in_str = 0;
            }
        } else if (p[i] == '"') {
            in_str = 1;
        } else if (p[i] == '[' || p[i] == '{') {
            if (++depth > max) {
                max = depth;
            }
        } else if (p[i] == ']' || p[i] == '}') {
            depth--;
        }
    }
    return max;
}

/* Input(): the fuzz input as a string (the host pointer is a struct sd_str). */
static int native_input(struct sd_jn_vm *vm, struct sd_jn_val *args, struct sd_jn_val *out)
{
    const struct sd_str *in = sd_jn_host(vm);

    (void)args;
    *out = sd_jn_string(vm, in->p, in->len);
    return 0;
}

/* Evaluates prog on vm; the output, when there is one, must be JSON. */
static int eval_checked(const struct sd_jn_program *prog, struct sd_jn_vm *vm, void *host,
                        struct sd_buf *out, struct sd_buf *err)
{
    struct sd_json_doc *doc = NULL;
    char jerr[128];
    int rc;

    sd_buf_append_str(out, "P");
    rc = sd_jn_eval(prog, vm, host, SD_JN_OUT_COMPACT, out, err);
    CHECK(rc == 0 || rc == SD_EINVAL || rc == SD_ELIMIT);
    if (rc != 0) {
        CHECK(out->len == 1 && err->len > 0);
        return rc;
    }
    /* sd_json accepts SD_JSON_MAX_DEPTH levels; deeper (valid) outputs are not checked. */
    rc = json_depth(out->data + 1, out->len - 1) > SD_JSON_MAX_DEPTH
             ? 0
             : sd_json_parse(out->data + 1, out->len - 1, &doc, jerr, sizeof(jerr));
    if (rc != 0) {
        fprintf(stderr, "fuzz_jsonnet: output rejected (%s): %.*s\n", jerr,
                (int)(out->len > 500 ? 500 : out->len - 1), out->data + 1);
    }
    CHECK(rc == 0);
    sd_json_doc_free(doc);
    return 0;
}

/* std.parseYaml over the input text. */
static void fuzz_yaml(struct sd_jn_vm *vm, const uint8_t *data, size_t size)
{
    static const struct sd_jn_native input = {"Input", native_input, 0, 0, {NULL}};
    static struct sd_jn_program *prog;
    static const char src[] = "std.parseYaml(Input())";
    struct sd_str in = {(const char *)data, size};
    struct sd_buf out = SD_BUF_INIT;
    struct sd_buf err = SD_BUF_INIT;

    if (!sd_utf8_valid(in.p, in.len)) {
        return;
    }
    if (prog == NULL) {
        CHECK(sd_jn_compile(src, strlen(src), "yaml", &input, 1, &prog, &err) == 0);
    }
    eval_checked(prog, vm, &in, &out, &err);
    sd_buf_fini(&out);
    sd_buf_fini(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sd_jn_vm *vm;
    static const struct sd_jn_limits limits = {
        .max_steps = 100000,
        .max_calls = 200,
        .max_stack = 256 * 1024,
        .max_memory = 64u << 20,
        .max_output = 1u << 20,
    };
    struct sd_jn_program *prog = NULL;
    struct sd_buf out = SD_BUF_INIT;
    struct sd_buf again = SD_BUF_INIT;
    struct sd_buf err = SD_BUF_INIT;
    int rc;

    if (size > 64 * 1024) {
        return 0;
    }
    if (vm == NULL) {
        vm = sd_jn_vm_new(&limits); /* reused across inputs, as a worker reuses its VM */
        CHECK(vm != NULL);
    }
    fuzz_yaml(vm, data, size);
    rc = sd_jn_compile((const char *)data, size, "fuzz", NULL, 0, &prog, &err);
    CHECK(rc == 0 || rc == SD_EPARSE);
    if (rc != 0) {
        CHECK(prog == NULL);
        if (!has_position(sd_buf_cstr(&err))) {
            fprintf(stderr, "fuzz_jsonnet: compile error without a position: %s\n",
                    sd_buf_cstr(&err));
        }
        CHECK(has_position(sd_buf_cstr(&err)));
        goto done;
    }
    CHECK(prog != NULL);
    if (eval_checked(prog, vm, NULL, &out, &err) != 0) {
        goto done;
    }
    /* Deterministic: the same program on the reused VM writes the same bytes. */
    rc = sd_jn_eval(prog, vm, NULL, SD_JN_OUT_COMPACT, &again, &err);
    CHECK(rc == 0);
    CHECK(again.len == out.len - 1 && memcmp(again.data, out.data + 1, again.len) == 0);
done:
    sd_jn_program_free(prog);
    sd_buf_fini(&out);
    sd_buf_fini(&again);
    sd_buf_fini(&err);
    return 0;
}
