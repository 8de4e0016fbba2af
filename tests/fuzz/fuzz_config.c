/* fuzz_config.c: fuzz target for src/config: the YAML and JSON config loaders, the size and
 * duration parsers (as a parse-format-parse round trip), sd_opt_parse over every option, and
 * sd_config_set. The first input byte picks the mode ('y', 'j', 's', 'd', 'o', 'k'; anything else
 * by value), the rest is the text. Crashes, sanitizer reports and broken round trips abort. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/sd_config.h"
#include "config/sd_opt.h"
#include "core/sd_buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_document(const char *text, size_t len, int is_json)
{
    struct sd_config *cfg = NULL;
    struct sd_buf err = SD_BUF_INIT;
    struct sd_buf out = SD_BUF_INIT;

    if (sd_config_load(NULL, &cfg, NULL) != 0) {
        abort();
    }
    if (sd_config_apply_text(cfg, text, len, is_json, "fuzz", &err) == 0) {
        sd_config_dump(cfg, 0, &out);
        sd_config_dump(cfg, 1, &out);
    } else if (err.len == 0) {
        abort(); /* every failure carries a message */
    }
    sd_config_destroy(cfg);
    sd_buf_fini(&err);
    sd_buf_fini(&out);
}

static void fuzz_size(const char *text)
{
    char buf[32];
    int64_t v;
    int64_t back;

    if (sd_parse_size(text, &v) == 0) {
        sd_format_size(v, buf, sizeof(buf));
        if (sd_parse_size(buf, &back) != 0 || back != v) {
            abort();
        }
    }
}

static void fuzz_duration(const char *text)
{
    char buf[48];
    int64_t v;
    int64_t back;

    if (sd_parse_duration(text, &v) == 0) {
        sd_format_duration(v, buf, sizeof(buf));
        if (sd_parse_duration(buf, &back) != 0 || back != v) {
            abort();
        }
    }
}

static void fuzz_options(const char *text)
{
    struct sd_buf err = SD_BUF_INIT;
    char env[128];
    size_t n = 0;
    const struct sd_opt *t = sd_opt_table(&n);
    size_t i;

    for (i = 0; i < n; i++) {
        int64_t num;
        double dbl;
        if (sd_opt_parse(&t[i], text, &num, &dbl, &err) != 0 && err.len == 0) {
            abort();
        }
    }
    sd_opt_env_name(text, env, sizeof(env));
    sd_opt_env_name_alt(text, env, sizeof(env));
    (void)sd_opt_suggest(text);
    sd_buf_fini(&err);
}

static void fuzz_set(char *text)
{
    struct sd_config *cfg = NULL;
    struct sd_buf err = SD_BUF_INIT;
    struct sd_buf out = SD_BUF_INIT;
    char *eq = strchr(text, '=');

    if (eq == NULL || sd_config_load(NULL, &cfg, NULL) != 0) {
        return;
    }
    *eq = '\0';
    if (sd_config_set(cfg, text, eq + 1, &err) == 0) {
        sd_config_dump(cfg, 1, &out);
    }
    sd_config_destroy(cfg);
    sd_buf_fini(&err);
    sd_buf_fini(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text;
    size_t len;
    int mode;

    if (size == 0) {
        return 0;
    }
    mode = data[0];
    len = size - 1;
    text = malloc(len + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data + 1, len);
    text[len] = '\0';
    if (strchr("yjsdok", mode) == NULL || mode == 0) {
        mode = "yjsdok"[mode % 6];
    }
    switch (mode) {
    case 'y':
        fuzz_document(text, len, 0);
        break;
    case 'j':
        fuzz_document(text, len, 1);
        break;
    case 's':
        fuzz_size(text);
        break;
    case 'd':
        fuzz_duration(text);
        break;
    case 'o':
        fuzz_options(text);
        break;
    default:
        fuzz_set(text);
        break;
    }
    free(text);
    return 0;
}
