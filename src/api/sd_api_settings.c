/* sd_api_settings.c: the settings endpoints of sources and sinks (reference §2.3, §4.1):
 * GET lists every per-entity key (SD_OPT_ENTITY in the option table) with its type, value,
 * default and flags; PATCH changes the entity's overrides in a task.
 *
 * DESIGN: an entity keeps its overrides in its stored form as "config": {"<key>": <value>}
 * (defs/sd_settings.h), each value in canonical form (BOOL/INT as JSON booleans/numbers, sizes
 * as "5MB" and durations as Go prints them, "1m30s"). The list shows the reference's texts of
 * each key (its description and validate tag, sd__texts). The handler validates the whole patch
 * before it creates a task, as the reference binds a patch to its config: every value that does
 * not parse (worded as Go's parsers word it) or that the option table's bounds refuse, and the
 * unknown keys, in one 400; only a patch without those errors is checked for protected keys
 * (403 forbidden). The worker applies the patch to the freshly read entity, bumps its version and
 * writes the version record in one transaction guarded by the entity's revision (retried on a
 * concurrent change), then rotates the active file of the sink (or of every sink of the
 * source) through the rotate_sink hook (struct sd_api_hooks), so the new settings take effect in
 * the new file.
 *
 * Values shown: a source's defaultValue is the service configuration; a sink's defaultValue is
 * what it inherits (the service configuration overridden by its source), so value is always
 * the effective setting and overwritten tells whether this entity sets it. */
#include "api/sd_api_internal.h"
#include "config/sd_config.h"
#include "config/sd_opt.h"
#include "core/sd_alloc.h"
#include "core/sd_error.h"
#include "core/sd_log.h"
#include "core/sd_time.h"
#include "state/sd_state.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SD_SETTINGS_MAX_ATTEMPTS 5

struct sd_settings_task {
    struct sd_api *api;
    int64_t project_id;
    int64_t branch_id;
    char source_id[SD_DEFS_ID_MAX + 1];
    char sink_id[SD_DEFS_ID_MAX + 1]; /* "" for source settings */
    json_t *patch;                    /* {"<key>": canonical value, or null to reset} */
    char *description;
    struct sd_defs_by by;
};

int sd__api_get_source(struct sd_api_ctx *c, json_t **out, int64_t *mod_rev)
{
    struct sd_buf key = SD_BUF_INIT;
    json_t *j = NULL;
    int rc;

    sd_defs_source_key(&key, c->project_id, c->branch_id, c->source_id, 0);
    rc = sd__api_load(c->api->state, sd_buf_cstr(&key), &j, mod_rev);
    sd_buf_fini(&key);
    if (rc == SD_ENOTFOUND) {
        sd__api_not_found(c->req, 0, 0, c->source_id);
    } else if (rc != 0) {
        sd__api_internal_error(c->req, "reading the source", rc);
    }
    if (rc == 0 && out != NULL) {
        *out = j;
        j = NULL;
    }
    json_decref(j);
    return rc;
}

int sd__api_get_sink(struct sd_api_ctx *c, json_t **out, int64_t *mod_rev)
{
    struct sd_buf key = SD_BUF_INIT;
    json_t *j = NULL;
    int rc;

    rc = sd__api_get_source(c, NULL, NULL);
    if (rc != 0) {
        return rc;
    }
    sd_defs_sink_key(&key, c->project_id, c->branch_id, c->source_id, c->sink_id, 0);
    rc = sd__api_load(c->api->state, sd_buf_cstr(&key), &j, mod_rev);
    sd_buf_fini(&key);
    if (rc == SD_ENOTFOUND) {
        sd__api_not_found(c->req, 1, 0, c->sink_id);
    } else if (rc != 0) {
        sd__api_internal_error(c->req, "reading the sink", rc);
    }
    if (rc == 0 && out != NULL) {
        *out = j;
        j = NULL;
    }
    json_decref(j);
    return rc;
}

/* What the reference's settings list says of each per-entity key (its config structs' usage and
 * validate tags), in the order of its config structs, which is the order in which it reports
 * invalid values of a patch. go_type names the value's type in its "found type" errors. */
struct sd__setting_text {
    const char *key;
    const char *go_type;
    const char *description;
    const char *validation; /* NULL: none */
};

static const struct sd__setting_text sd__texts[] = {
    {"storage.level.local.volume.assignment.count", "int",
     "Volumes count simultaneously utilized per sink.", "required,min=1,max=100"},
    {"storage.level.local.volume.assignment.preferredTypes", "[]string",
     "List of preferred volume types, start with the most preferred.", "required,min=1"},
    {"storage.level.local.encoding.encoder.type", "encoder.Type", "Encoder type.",
     "required,oneof=csv"},
    {"storage.level.local.encoding.encoder.concurrency", "int",
     "Concurrency of the format writer for the specified file type. 0 = auto = num of CPU cores",
     "min=0,max=256"},
    {"storage.level.local.encoding.inputBuffer", "datasize.ByteSize",
     "Max size of the buffer before compression, if compression is enabled. 0 = disabled",
     "maxBytes=16MB"},
    {"storage.level.local.encoding.maxChunkSize", "datasize.ByteSize",
     "Max size of a chunk sent over the network to a disk writer node.",
     "required,minBytes=64kB,maxBytes=1MB"},
    {"storage.level.local.encoding.failedChunksThreshold", "int",
     "If the defined number of chunks cannot be sent, the pipeline is marked as not ready.",
     "required,min=1,max=100"},
    {"storage.level.local.encoding.compression.type", "compression.Type", "Compression type.",
     "required,oneof=none gzip"},
    {"storage.level.local.encoding.compression.gzip.level", "int", "GZIP compression level: 1-9.",
     "min=1,max=9"},
    {"storage.level.local.encoding.compression.gzip.implementation",
     "compression.GZIPImplementation", "GZIP implementation: standard, fast, parallel.",
     "required,oneof=standard fast parallel"},
    {"storage.level.local.encoding.compression.gzip.blockSize", "datasize.ByteSize",
     "GZIP parallel block size.", "required,minBytes=16kB,maxBytes=100MB"},
    {"storage.level.local.encoding.compression.gzip.concurrency", "int",
     "GZIP parallel concurrency, 0 = auto.", NULL},
    {"storage.level.local.encoding.sync.mode", "writesync.Mode",
     "Sync mode: \"cache\" or \"disk\".", "required,oneof=disk cache"},
    {"storage.level.local.encoding.sync.wait", "bool",
     "Wait for sync to disk OS cache or to disk hardware, depending on the mode.", NULL},
    {"storage.level.local.encoding.sync.checkInterval", "duration.Duration",
     "Minimal interval between syncs to disk.", "required,minDuration=1ms,maxDuration=30s"},
    {"storage.level.local.encoding.sync.countTrigger", "uint",
     "Written records count to trigger sync.", "required,min=1,max=1000000"},
    {"storage.level.local.encoding.sync.uncompressedBytesTrigger", "datasize.ByteSize",
     "Size of buffered uncompressed data to trigger sync.",
     "required,minBytes=100B,maxBytes=500MB"},
    {"storage.level.local.encoding.sync.compressedBytesTrigger", "datasize.ByteSize",
     "Size of buffered compressed data to trigger sync.", "required,minBytes=100B,maxBytes=100MB"},
    {"storage.level.local.encoding.sync.intervalTrigger", "duration.Duration",
     "Interval from the last sync to trigger sync.", "required,minDuration=10ms,maxDuration=30s"},
    {"storage.level.staging.upload.trigger.count", "uint64",
     "Records count to trigger slice upload.", "required,min=1,max=10000000"},
    {"storage.level.staging.upload.trigger.size", "datasize.ByteSize",
     "Records size to trigger slice upload.", "required,minBytes=100B,maxBytes=50MB"},
    {"storage.level.staging.upload.trigger.interval", "duration.Duration",
     "Duration from the last slice upload to trigger the next upload.",
     "required,minDuration=1s,maxDuration=30m"},
    {"storage.level.target.import.trigger.count", "uint64", "Records count to trigger file import.",
     "required,min=1,max=10000000"},
    {"storage.level.target.import.trigger.size", "datasize.ByteSize",
     "Records size to trigger file import.", "required,minBytes=100B,maxBytes=500MB"},
    {"storage.level.target.import.trigger.interval", "duration.Duration",
     "Duration from the last import to trigger the next import.",
     "required,minDuration=30s,maxDuration=24h"},
    {"storage.level.target.import.trigger.slicesCount", "uint64",
     "Number of slices in the file to trigger file import.", "required,min=1,max=200"},
    {"storage.level.target.import.trigger.expiration", "duration.Duration",
     "Min remaining expiration to trigger file import.", "required,minDuration=5m,maxDuration=45m"},
};

#define SD__NTEXTS (sizeof(sd__texts) / sizeof(sd__texts[0]))

/* The index of key's row in sd__texts, or SD__NTEXTS when it has none. */
static size_t sd__text_index(const char *key)
{
    size_t i = 0;

    while (i < SD__NTEXTS && strcmp(sd__texts[i].key, key) != 0) {
        i++;
    }
    return i;
}

/* The reference's type names: string, int, float, bool, []string. */
static const char *sd__type_name(const struct sd_opt *opt)
{
    switch (opt->type) {
    case SD_OPT_BOOL:
        return "bool";
    case SD_OPT_INT:
        return "int";
    case SD_OPT_FLOAT:
        return "float";
    case SD_OPT_LIST:
        return "[]string";
    default:
        return "string";
    }
}

/* Splits a comma-separated list (blanks around items trimmed) into a JSON array. */
static json_t *sd__list_json(const char *text)
{
    json_t *a = json_array();
    const char *p = text;

    while (*p != '\0') {
        const char *end = strchr(p, ',');
        const char *e = end ? end : p + strlen(p);
        const char *b = p;
        while (b < e && (*b == ' ' || *b == '\t')) {
            b++;
        }
        while (e > b && (e[-1] == ' ' || e[-1] == '\t')) {
            e--;
        }
        json_array_append_new(a, json_stringn(b, (size_t)(e - b)));
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
    return a;
}

/* Writes ms the way Go's time.Duration prints it, as the reference shows durations: "0s",
 * "50ms", "30s", "1.5s", "1m0s", "30m0s", "1h0m0s". */
static void sd__go_duration(int64_t ms, char *out, size_t outlen)
{
    int64_t h = ms / 3600000, m = ms / 60000 % 60, sec = ms / 1000 % 60, frac = ms % 1000;
    char seconds[24];
    size_t n;

    if (ms < 1000) {
        snprintf(out, outlen, ms == 0 ? "0s" : "%" PRId64 "ms", ms);
        return;
    }
    n = (size_t)snprintf(seconds, sizeof(seconds), "%" PRId64 ".%03" PRId64, sec, frac);
    while (seconds[n - 1] == '0') {
        seconds[--n] = '\0';
    }
    if (seconds[n - 1] == '.') {
        seconds[--n] = '\0';
    }
    if (h > 0) {
        snprintf(out, outlen, "%" PRId64 "h%" PRId64 "m%ss", h, m, seconds);
    } else if (m > 0) {
        snprintf(out, outlen, "%" PRId64 "m%ss", m, seconds);
    } else {
        snprintf(out, outlen, "%ss", seconds);
    }
}

/* Parses text as a value of opt and returns its canonical JSON form (new reference), or NULL
 * with the option table's message in err. */
static json_t *sd__canonical(const struct sd_opt *opt, const char *text, struct sd_buf *err)
{
    int64_t num = 0;
    double dbl = 0;
    char buf[48];

    if (sd_opt_parse(opt, text, &num, &dbl, err) != 0) {
        return NULL;
    }
    switch (opt->type) {
    case SD_OPT_BOOL:
        return json_boolean(num != 0);
    case SD_OPT_INT:
        return json_integer(num);
    case SD_OPT_FLOAT:
        return json_real(dbl);
    case SD_OPT_SIZE:
        sd_format_size(num, buf, sizeof(buf));
        return json_string(buf);
    case SD_OPT_DURATION:
        sd__go_duration(num, buf, sizeof(buf));
        return json_string(buf);
    case SD_OPT_ENUM:
        return json_string(opt->enum_values[num]);
    case SD_OPT_LIST:
        return sd__list_json(text);
    default:
        return json_string(text);
    }
}

/* The Go type the reference's JSON decoder gives v, for its "found type" errors. */
static const char *sd__json_go_type(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "float64";
    case JSON_TRUE:
    case JSON_FALSE:
        return "bool";
    case JSON_ARRAY:
        return "[]interface {}";
    default:
        return "map[string]interface {}";
    }
}

/* Writes the text form of a JSON value of opt into text, for sd_opt_parse. Returns 0, or
 * SD_EINVAL when the JSON type does not fit the option (the reference's message goes to err). */
static int sd__value_text(const struct sd_opt *opt, const json_t *v, struct sd_buf *text,
                          struct sd_buf *err)
{
    int fits = 1;

    sd_buf_reset(text);
    switch (opt->type) {
    case SD_OPT_BOOL:
        if (json_is_boolean(v)) {
            sd_buf_append_str(text, json_is_true(v) ? "true" : "false");
        } else if (json_is_string(v)) {
            sd_buf_append_str(text, json_string_value(v));
        } else {
            fits = 0;
        }
        break;
    case SD_OPT_INT:
        if (json_is_integer(v)) {
            sd_buf_printf(text, "%" PRId64, (int64_t)json_integer_value(v));
        } else if (json_is_string(v)) {
            sd_buf_append_str(text, json_string_value(v));
        } else {
            fits = 0;
        }
        break;
    case SD_OPT_FLOAT:
        if (json_is_number(v)) {
            sd_buf_printf(text, "%.17g", json_number_value(v));
        } else if (json_is_string(v)) {
            sd_buf_append_str(text, json_string_value(v));
        } else {
            fits = 0;
        }
        break;
    case SD_OPT_SIZE:
        if (json_is_integer(v)) {
            sd_buf_printf(text, "%" PRId64, (int64_t)json_integer_value(v));
        } else if (json_is_string(v)) {
            sd_buf_append_str(text, json_string_value(v));
        } else {
            fits = 0;
        }
        break;
    case SD_OPT_DURATION:
        if (json_is_string(v)) {
            sd_buf_append_str(text, json_string_value(v));
        } else {
            fits = 0;
        }
        break;
    case SD_OPT_LIST:
        if (json_is_array(v)) {
            size_t i;
            json_t *item;
            json_array_foreach(v, i, item)
            {
                if (!json_is_string(item)) {
                    fits = 0;
                    break;
                }
                sd_buf_printf(text, "%s%s", i > 0 ? "," : "", json_string_value(item));
            }
        } else if (json_is_string(v)) {
            sd_buf_append_str(text, json_string_value(v));
        } else {
            fits = 0;
        }
        break;
    default:
        if (json_is_string(v)) {
            sd_buf_append_str(text, json_string_value(v));
        } else {
            fits = 0;
        }
        break;
    }
    if (!fits) {
        size_t t = sd__text_index(opt->key);
        sd_buf_printf(err, "invalid \"%s\" value: found type \"%s\", expected \"%s\"", opt->key,
                      sd__json_go_type(v), t < SD__NTEXTS ? sd__texts[t].go_type : "string");
        return SD_EINVAL;
    }
    sd_buf_cstr(text);
    return 0;
}

/* Canonical JSON of an entity's override of opt (new reference), or NULL when it has none (or
 * an unusable one). */
static json_t *sd__override(const struct sd_opt *opt, const json_t *entity)
{
    json_t *raw = json_object_get(json_object_get(entity, "config"), opt->key);
    struct sd_buf text = SD_BUF_INIT, err = SD_BUF_INIT;
    json_t *out = NULL;

    if (raw != NULL && !json_is_null(raw) && sd__value_text(opt, raw, &text, &err) == 0) {
        out = sd__canonical(opt, sd_buf_cstr(&text), &err);
    }
    sd_buf_fini(&text);
    sd_buf_fini(&err);
    return out;
}

/* Canonical JSON of the service configuration's value of opt (new reference). */
static json_t *sd__config_value(const struct sd_config *cfg, const struct sd_opt *opt)
{
    struct sd_buf err = SD_BUF_INIT;
    json_t *out = sd__canonical(opt, sd_config_str(cfg, opt->key), &err);

    sd_buf_fini(&err);
    return out != NULL ? out : json_string(sd_config_str(cfg, opt->key));
}

/* Builds {settings:[...]} for entity (a source when parent is NULL, else a sink of parent). */
static json_t *sd__settings_json(const struct sd_config *cfg, const json_t *parent,
                                 const json_t *entity)
{
    json_t *list = json_array(), *out = json_object();
    const struct sd_opt *table;
    size_t n;

    table = sd_opt_table(&n);
    for (size_t i = 0; i < n; i++) {
        const struct sd_opt *opt = &table[i];
        size_t t = sd__text_index(opt->key);
        const struct sd__setting_text *text = t < SD__NTEXTS ? &sd__texts[t] : NULL;
        json_t *item, *def, *own, *inherited;
        if (!(opt->flags & SD_OPT_ENTITY)) {
            continue;
        }
        def = sd__config_value(cfg, opt);
        inherited = parent != NULL ? sd__override(opt, parent) : NULL;
        if (inherited != NULL) {
            json_decref(def);
            def = inherited;
        }
        own = sd__override(opt, entity);
        item = json_object();
        json_object_set_new(item, "key", json_string(opt->key));
        json_object_set_new(item, "type", json_string(sd__type_name(opt)));
        json_object_set_new(item, "description",
                            json_string(text != NULL ? text->description : opt->desc));
        json_object_set_new(item, "value", own != NULL ? own : json_incref(def));
        json_object_set_new(item, "defaultValue", def);
        json_object_set_new(item, "overwritten", json_boolean(own != NULL));
        json_object_set_new(item, "protected", json_boolean(opt->flags & SD_OPT_PROTECTED));
        if (text != NULL && text->validation != NULL) {
            json_object_set_new(item, "validation", json_string(text->validation));
        }
        json_array_append_new(list, item);
    }
    json_object_set_new(out, "settings", list);
    return out;
}

void sd__api_source_settings_get(struct sd_api_ctx *c)
{
    json_t *source = NULL;

    if (sd__api_get_source(c, &source, NULL) != 0) {
        return;
    }
    sd_http_send_json(c->req, 200, sd__settings_json(c->api->cfg, NULL, source), 1);
    json_decref(source);
}

void sd__api_sink_settings_get(struct sd_api_ctx *c)
{
    json_t *source = NULL, *sink = NULL;

    if (sd__api_get_source(c, &source, NULL) != 0) {
        return;
    }
    if (sd__api_get_sink(c, &sink, NULL) == 0) {
        sd_http_send_json(c->req, 200, sd__settings_json(c->api->cfg, source, sink), 1);
    }
    json_decref(sink);
    json_decref(source);
}

/* Whether Go's time.ParseDuration accepts text; when not, writes its error into out
 * ("time: invalid duration \"foo\"", "time: missing unit in duration \"5\"", "time: unknown
 * unit \"x\" in duration \"5x\""). */
static int sd__go_duration_ok(const char *text, struct sd_buf *out)
{
    static const char *const units[] = {"ns", "us", "\xc2\xb5s", "\xce\xbcs", "ms", "s", "m", "h"};
    const char *p = text + (*text == '-' || *text == '+');

    if (strcmp(p, "0") == 0) {
        return 1;
    }
    if (*p == '\0') {
        goto invalid;
    }
    while (*p != '\0') {
        const char *unit;
        size_t n, i;
        int digits = 0;
        /* [digits][.digits], at least one digit */
        for (; *p >= '0' && *p <= '9'; p++) {
            digits++;
        }
        if (*p == '.') {
            for (p++; *p >= '0' && *p <= '9'; p++) {
                digits++;
            }
        }
        if (digits == 0) {
            goto invalid;
        }
        unit = p;
        while (*p != '\0' && *p != '.' && (*p < '0' || *p > '9')) {
            p++;
        }
        n = (size_t)(p - unit);
        if (n == 0) {
            sd_buf_printf(out, "time: missing unit in duration \"%s\"", text);
            return 0;
        }
        for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            if (strlen(units[i]) == n && memcmp(units[i], unit, n) == 0) {
                break;
            }
        }
        if (i == sizeof(units) / sizeof(units[0])) {
            sd_buf_printf(out, "time: unknown unit \"%.*s\" in duration \"%s\"", (int)n, unit,
                          text);
            return 0;
        }
    }
    return 1;

invalid:
    sd_buf_printf(out, "time: invalid duration \"%s\"", text);
    return 0;
}

/* Writes into out why opt refuses the string text, as the reference words it: Go's parse error
 * ("invalid \"<key>\" value \"bar\": invalid syntax", "invalid \"<key>\": time: invalid
 * duration \"foo\""), or, for a value only streamd's bounds refuse, opt_err (sd_opt_parse's
 * message) in the same form. */
static void sd__invalid_text(const struct sd_opt *opt, const char *text, const char *opt_err,
                             struct sd_buf *out)
{
    struct sd_opt unbounded = *opt;
    struct sd_buf go = SD_BUF_INIT, tail = SD_BUF_INIT;
    const char *why;
    size_t n = strlen(text);

    unbounded.min = unbounded.max = 0;
    sd_buf_printf(&tail, "for \"%s\": ", opt->key);
    why = strstr(opt_err, sd_buf_cstr(&tail));
    why = why != NULL ? why + tail.len : opt_err;
    /* Go's messages quote at most 20 bytes of the value, then "…" (not inside a character). */
    if (n > 20) {
        n = 20;
        while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80) {
            n--;
        }
    }
    if (opt->type == SD_OPT_DURATION && !sd__go_duration_ok(text, &go)) {
        sd_buf_printf(out, "invalid \"%s\": %s", opt->key, sd_buf_cstr(&go));
    } else if (opt->type == SD_OPT_DURATION || opt->type == SD_OPT_ENUM ||
               sd_opt_parse(&unbounded, text, NULL, NULL, NULL) == 0) {
        sd_buf_printf(out, "invalid \"%s\" value \"%.*s%s\": %s", opt->key, (int)n, text,
                      n < strlen(text) ? "\xe2\x80\xa6" : "", why);
    } else {
        sd_buf_printf(out, "invalid \"%s\" value \"%.*s%s\": invalid syntax", opt->key, (int)n,
                      text, n < strlen(text) ? "\xe2\x80\xa6" : "");
    }
    sd_buf_fini(&go);
    sd_buf_fini(&tail);
}

static int sd__cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sends the reference's 400 for the patch errors: each a sentence, one alone, several as "- "
 * lines. */
static void sd__send_patch_errors(struct sd_api_ctx *c, json_t *errors)
{
    struct sd_buf msg = SD_BUF_INIT, item = SD_BUF_INIT;
    size_t i, n = json_array_size(errors);
    json_t *e;

    json_array_foreach(errors, i, e)
    {
        sd_buf_reset(&item);
        sd_buf_append_str(&item, json_string_value(e));
        sd__api_sentence(&item);
        sd_buf_printf(&msg, "%s%s%s", i > 0 ? "\n" : "", n > 1 ? "- " : "", sd_buf_cstr(&item));
    }
    sd__api_error(c->req, 400, "badRequest", "%s", sd_buf_cstr(&msg));
    sd_buf_fini(&item);
    sd_buf_fini(&msg);
}

/* Validates a PATCH body as the reference binds it to its config: every value error (in the
 * order of its config structs) and the unknown keys (sorted) in one 400; only then a protected
 * key is 403. Returns the patch object (new reference) and sets *description (borrowed from
 * body, NULL when absent), or sends 400/403 and returns NULL. */
static json_t *sd__parse_patch(struct sd_api_ctx *c, const json_t *body, const char **description)
{
    struct sd_buf forbidden = SD_BUF_INIT, text = SD_BUF_INIT, err = SD_BUF_INIT;
    struct sd_buf why = SD_BUF_INIT, missing = SD_BUF_INIT;
    json_t *settings = json_object_get(body, "settings");
    json_t *desc = json_object_get(body, "changeDescription");
    json_t *patch = json_object(), *item, *errors = json_array(), *unknown = json_array();
    json_t *by_row[SD__NTEXTS + 1] = {NULL};
    const char **names = NULL;
    struct sd_defs_err derr;
    size_t i, n_unknown;
    int ok = 0;

    *description = NULL;
    if (desc != NULL && !json_is_null(desc)) {
        if (!json_is_string(desc)) {
            sd__api_error(c->req, 400, "badRequest",
                          "Field body.changeDescription must be a "
                          "string.");
            goto out;
        }
        if (sd_defs_check_length("body.changeDescription", json_string_value(desc), 0,
                                 SD_DEFS_DESCRIPTION_MAX, &derr) != 0) {
            sd__api_validation_error(c->req, &derr);
            goto out;
        }
        *description = json_string_value(desc);
    }
    if (settings != NULL && !json_is_null(settings) && !json_is_array(settings)) {
        sd__api_error(c->req, 400, "badRequest", "Field body.settings must be an array.");
        goto out;
    }
    json_array_foreach(settings, i, item)
    {
        json_t *key = json_object_get(item, "key");
        json_t *value = json_object_get(item, "value");
        const struct sd_opt *opt;
        json_t *canonical;
        size_t row;
        if (!json_is_object(item)) {
            sd__api_error(c->req, 400, "badRequest", "Field body.settings[%zu] must be an object.",
                          i);
            goto out;
        }
        if (key == NULL) {
            sd__api_error(c->req, 400, "missingField",
                          "\"key\" is missing from body.settings[%zu].", i);
            goto out;
        }
        if (!json_is_string(key) || json_string_length(key) == 0) {
            sd__api_error(c->req, 400, "badRequest",
                          "Field body.settings[%zu].key must be a non-empty string.", i);
            goto out;
        }
        for (size_t j = 0; j < i; j++) {
            if (json_equal(json_object_get(json_array_get(settings, j), "key"), key)) {
                sd__api_error(c->req, 400, "badRequest",
                              "Key \"%.200s\" is defined multiple times.", json_string_value(key));
                goto out;
            }
        }
        opt = sd_opt_find(json_string_value(key));
        if (opt == NULL || !(opt->flags & SD_OPT_ENTITY)) {
            json_array_append(unknown, key);
            continue;
        }
        row = sd__text_index(opt->key);
        if (value == NULL || json_is_null(value)) {
            canonical = json_null();
        } else {
            sd_buf_reset(&err);
            sd_buf_reset(&why);
            canonical = NULL;
            if (sd__value_text(opt, value, &text, &err) != 0) {
                sd_buf_append_str(&why, sd_buf_cstr(&err));
            } else if ((canonical = sd__canonical(opt, sd_buf_cstr(&text), &err)) == NULL) {
                sd__invalid_text(opt, sd_buf_cstr(&text), sd_buf_cstr(&err), &why);
            }
            if (canonical == NULL) {
                json_decref(by_row[row]);
                by_row[row] = json_string(sd_buf_cstr(&why));
                continue;
            }
        }
        if (opt->flags & SD_OPT_PROTECTED) {
            sd_buf_printf(&forbidden, "%s\"%s\"", forbidden.len ? ", " : "", opt->key);
        }
        json_object_set_new(patch, opt->key, canonical);
    }
    for (i = 0; i <= SD__NTEXTS; i++) {
        if (by_row[i] != NULL) {
            json_array_append(errors, by_row[i]);
        }
    }
    n_unknown = json_array_size(unknown);
    if (n_unknown > 0) {
        names = sd_xcalloc(n_unknown, sizeof(names[0]));
        for (i = 0; i < n_unknown; i++) {
            names[i] = json_string_value(json_array_get(unknown, i));
        }
        qsort(names, n_unknown, sizeof(names[0]), sd__cmp_str);
        for (i = 0; i < n_unknown; i++) {
            sd_buf_printf(&missing, "%s%s", i > 0 ? "\", \"" : "", names[i]);
        }
        /* Go truncates the joined keys to 50 bytes, then "…". */
        if (missing.len > 50) {
            missing.len = 50;
            sd_buf_append_str(&missing, "\xe2\x80\xa6");
        }
        json_array_append_new(errors, json_sprintf("key not found: \"%s\"", sd_buf_cstr(&missing)));
    }
    if (json_array_size(errors) > 0) {
        sd__send_patch_errors(c, errors);
        goto out;
    }
    if (forbidden.len > 0) {
        sd__api_error(c->req, 403, "forbidden", "Cannot modify protected keys: %s.",
                      sd_buf_cstr(&forbidden));
        goto out;
    }
    ok = 1;

out:
    for (i = 0; i <= SD__NTEXTS; i++) {
        json_decref(by_row[i]);
    }
    free(names);
    json_decref(errors);
    json_decref(unknown);
    sd_buf_fini(&forbidden);
    sd_buf_fini(&text);
    sd_buf_fini(&err);
    sd_buf_fini(&why);
    sd_buf_fini(&missing);
    if (!ok) {
        json_decref(patch);
        patch = NULL;
    }
    return patch;
}

static void sd__task_free(void *arg)
{
    struct sd_settings_task *a = arg;

    if (a != NULL) {
        json_decref(a->patch);
        free(a->description);
        free(a);
    }
}

/* Worker thread: applies the patch with a version bump, guarded by the entity's revision. */
static int sd__commit_patch(struct sd_settings_task *a, struct sd_task_outcome *out)
{
    struct sd_state *st = a->api->state;
    int is_sink = a->sink_id[0] != '\0';
    struct sd_buf key = SD_BUF_INIT, version_key = SD_BUF_INIT;
    json_t *entity = NULL, *config, *value, *version_rec;
    char *text = NULL, *version_text = NULL;
    const char *k;
    struct sd_cmp cmp;
    struct sd_op ops[2];
    struct sd_txn txn;
    struct sd_txn_result res;
    int64_t rev = 0, number;
    int rc = SD_ECONFLICT;

    memset(&res, 0, sizeof(res));
    if (is_sink) {
        sd_defs_sink_key(&key, a->project_id, a->branch_id, a->source_id, a->sink_id, 0);
    } else {
        sd_defs_source_key(&key, a->project_id, a->branch_id, a->source_id, 0);
    }
    for (int attempt = 0; attempt < SD_SETTINGS_MAX_ATTEMPTS && rc == SD_ECONFLICT; attempt++) {
        json_decref(entity);
        free(text);
        free(version_text);
        sd_txn_result_free(&res);
        entity = NULL;
        text = version_text = NULL;
        rc = sd__api_load(st, sd_buf_cstr(&key), &entity, &rev);
        if (rc == SD_ENOTFOUND) {
            sd_buf_printf(&out->error, is_sink ? SD_API_SINK_NOT_FOUND : SD_API_SOURCE_NOT_FOUND,
                          is_sink ? a->sink_id : a->source_id);
            goto out;
        }
        if (rc != 0) {
            sd_buf_printf(&out->error, "Reading the state failed: %s.", sd_strerror(rc));
            goto out;
        }
        config = json_object_get(entity, "config");
        config = json_is_object(config) ? json_deep_copy(config) : json_object();
        json_object_foreach(a->patch, k, value)
        {
            if (json_is_null(value)) {
                json_object_del(config, k);
            } else {
                json_object_set(config, k, value);
            }
        }
        if (json_object_size(config) > 0) {
            json_object_set_new(entity, "config", config);
        } else {
            json_object_del(entity, "config");
            json_decref(config);
        }
        rc = sd_defs_next_version(entity, is_sink ? "sink" : "source", &number, &out->error);
        if (rc != 0) {
            goto out;
        }
        sd_defs_set_version(entity, number,
                            a->description != NULL ? a->description : "Updated settings.", &a->by,
                            sd_now_ms());
        if (is_sink) {
            sd_defs_sink_version_key(&version_key, a->project_id, a->branch_id, a->source_id,
                                     a->sink_id, number);
        } else {
            sd_defs_source_version_key(&version_key, a->project_id, a->branch_id, a->source_id,
                                       number);
        }
        text = sd__api_dump(entity);
        version_rec = sd_defs_version_record(entity);
        version_text = sd__api_dump(version_rec);
        json_decref(version_rec);

        memset(&cmp, 0, sizeof(cmp));
        cmp.key = sd_buf_cstr(&key);
        cmp.target = SD_CMP_MOD_REV;
        cmp.result = SD_CMP_EQUAL;
        cmp.num = rev;
        memset(ops, 0, sizeof(ops));
        ops[0].type = SD_OP_PUT;
        ops[0].key = sd_buf_cstr(&key);
        ops[0].value = text;
        ops[0].value_len = strlen(text);
        ops[1].type = SD_OP_PUT;
        ops[1].key = sd_buf_cstr(&version_key);
        ops[1].value = version_text;
        ops[1].value_len = strlen(version_text);
        memset(&txn, 0, sizeof(txn));
        txn.cmps = &cmp;
        txn.ncmps = 1;
        txn.then_ops = ops;
        txn.nthen = 2;
        rc = sd_state_txn(st, &txn, &res);
        if (rc != 0) {
            sd_buf_printf(&out->error, "Storing the settings failed: %s.", sd_strerror(rc));
            goto out;
        }
        rc = res.succeeded ? 0 : SD_ECONFLICT;
    }
    if (rc == SD_ECONFLICT) {
        sd_buf_printf(&out->error, "The %s was changed concurrently, please retry.",
                      is_sink ? "sink" : "source");
    }

out:
    sd_txn_result_free(&res);
    json_decref(entity);
    free(text);
    free(version_text);
    sd_buf_fini(&key);
    sd_buf_fini(&version_key);
    return rc;
}

/* Worker thread: rotates the file of every sink whose settings changed. */
static int sd__rotate(struct sd_settings_task *a, struct sd_buf *err)
{
    struct sd_buf prefix = SD_BUF_INIT;
    struct sd_kvs kvs;
    char *sink_key;
    int rc = 0;

    memset(&kvs, 0, sizeof(kvs));
    if (a->sink_id[0] != '\0') {
        sink_key = sd_xasprintf("%" PRId64 "/%" PRId64 "/%s/%s", a->project_id, a->branch_id,
                                a->source_id, a->sink_id);
        rc = sd__api_rotate_sink(a->api, sink_key, err);
        free(sink_key);
        return rc;
    }
    sd_defs_sinks_prefix(&prefix, a->project_id, a->branch_id, a->source_id, 0);
    rc = sd_state_range(a->api->state, sd_buf_cstr(&prefix), 0, &kvs);
    if (rc != 0) {
        sd_buf_printf(err, "cannot list the sinks: %s", sd_strerror(rc));
    }
    for (size_t i = 0; rc == 0 && i < kvs.n; i++) {
        sink_key = sd_xasprintf("%" PRId64 "/%" PRId64 "/%s/%s", a->project_id, a->branch_id,
                                a->source_id, kvs.items[i].key + prefix.len);
        rc = sd__api_rotate_sink(a->api, sink_key, err);
        free(sink_key);
    }
    sd_kvs_free(&kvs);
    sd_buf_fini(&prefix);
    return rc;
}

static int sd__settings_run(void *arg, struct sd_task_outcome *out)
{
    struct sd_settings_task *a = arg;
    int is_sink = a->sink_id[0] != '\0';
    struct sd_buf rerr = SD_BUF_INIT;
    int rc;

    rc = sd__commit_patch(a, out);
    if (rc != 0) {
        goto out;
    }
    rc = sd__rotate(a, &rerr);
    if (rc != 0) {
        sd_log_error("api", "settings of source %s%s%s changed, but rotation failed: %s",
                     a->source_id, is_sink ? " sink " : "", a->sink_id, sd_buf_cstr(&rerr));
        sd_buf_printf(&out->error,
                      "%s settings have been updated, but the file was not rotated: %s",
                      is_sink ? "Sink" : "Source", sd_buf_cstr(&rerr));
        goto out;
    }
    out->result = is_sink ? "Sink settings have been updated successfully."
                          : "Source settings have been updated successfully.";
    out->outputs = sd__api_task_outputs(a->api->api_url, a->project_id, a->branch_id, a->source_id,
                                        is_sink ? a->sink_id : NULL, 1);

out:
    sd_buf_fini(&rerr);
    return rc;
}

/* Shared PATCH: validates, then submits the task for the source or the sink of c. */
static void sd__settings_patch(struct sd_api_ctx *c, int is_sink)
{
    struct sd_settings_task *a;
    const char *description = NULL;
    json_t *body, *patch;
    int rc;

    rc = is_sink ? sd__api_get_sink(c, NULL, NULL) : sd__api_get_source(c, NULL, NULL);
    if (rc != 0) {
        return;
    }
    body = sd__api_body(c);
    if (body == NULL) {
        return;
    }
    patch = sd__parse_patch(c, body, &description);
    if (patch == NULL) {
        json_decref(body);
        return;
    }
    a = sd_xcalloc(1, sizeof(*a));
    a->api = c->api;
    a->project_id = c->project_id;
    a->branch_id = c->branch_id;
    snprintf(a->source_id, sizeof(a->source_id), "%s", c->source_id);
    snprintf(a->sink_id, sizeof(a->sink_id), "%s", is_sink ? c->sink_id : "");
    a->by = c->by;
    a->patch = patch;
    a->description = description != NULL ? sd_xstrdup(description) : NULL;
    json_decref(body);

    sd__api_submit_entity_task(c, is_sink,
                               is_sink ? "api.update.sinkSettings" : "api.update.sourceSettings",
                               sd__settings_run, a, sd__task_free, NULL, NULL);
}

void sd__api_source_settings_patch(struct sd_api_ctx *c)
{
    sd__settings_patch(c, 0);
}

void sd__api_sink_settings_patch(struct sd_api_ctx *c)
{
    sd__settings_patch(c, 1);
}
