/* sd_api_settings.c: the settings endpoints of sources and sinks (reference §2.3, §4.1):
 * GET lists every per-entity key (SD_OPT_ENTITY in the option table) with its type, value,
 * default and flags; PATCH changes the entity's overrides in a task.
 *
 * DESIGN: an entity keeps its overrides in its stored form as "config": {"<key>": <value>}
 * (defs/sd_settings.h), each value in canonical form (BOOL/INT as JSON booleans/numbers, sizes
 * and durations as "5MB"/"30s" strings). The handler validates the whole patch before it
 * creates a task, as the reference does: a protected key is 403 forbidden, an unknown key or a
 * value that the option table (sd_opt_parse, with the key's bounds) rejects is 400 naming each
 * key. The worker applies the patch to the freshly read entity, bumps its version and writes
 * the version record in one transaction guarded by the entity's revision (retried on a
 * concurrent change), then rotates the active file of the sink (or of every sink of the
 * source) through sd_server_rotate_sink, so the new settings take effect in the new file.
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
#include "roles/sd_server.h"
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
    char token_id[32];
    char token_desc[128];
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
        sd__api_error(c->req, 404, "sourceNotFound", "Source \"%s\" not found in the branch.",
                      c->source_id);
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
        sd__api_error(c->req, 404, "sinkNotFound", "Sink \"%s\" not found in the source.",
                      c->sink_id);
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
        sd_format_duration(num, buf, sizeof(buf));
        return json_string(buf);
    case SD_OPT_ENUM:
        return json_string(opt->enum_values[num]);
    case SD_OPT_LIST:
        return sd__list_json(text);
    default:
        return json_string(text);
    }
}

/* Writes the text form of a JSON value of opt into text, for sd_opt_parse. Returns 0, or
 * SD_EINVAL when the JSON type does not fit the option (a message goes to err). */
static int sd__value_text(const struct sd_opt *opt, const json_t *v, struct sd_buf *text,
                          struct sd_buf *err)
{
    const char *want = NULL;

    sd_buf_reset(text);
    switch (opt->type) {
    case SD_OPT_BOOL:
        if (json_is_boolean(v)) {
            sd_buf_append_str(text, json_is_true(v) ? "true" : "false");
        } else {
            want = "a boolean";
        }
        break;
    case SD_OPT_INT:
        if (json_is_integer(v)) {
            sd_buf_printf(text, "%" PRId64, (int64_t)json_integer_value(v));
        } else if (json_is_string(v)) {
            sd_buf_append_str(text, json_string_value(v));
        } else {
            want = "an integer";
        }
        break;
    case SD_OPT_FLOAT:
        if (json_is_number(v)) {
            sd_buf_printf(text, "%.17g", json_number_value(v));
        } else if (json_is_string(v)) {
            sd_buf_append_str(text, json_string_value(v));
        } else {
            want = "a number";
        }
        break;
    case SD_OPT_SIZE:
        if (json_is_integer(v)) {
            sd_buf_printf(text, "%" PRId64, (int64_t)json_integer_value(v));
        } else if (json_is_string(v)) {
            sd_buf_append_str(text, json_string_value(v));
        } else {
            want = "a size string such as \"5MB\"";
        }
        break;
    case SD_OPT_DURATION:
        if (json_is_string(v)) {
            sd_buf_append_str(text, json_string_value(v));
        } else {
            want = "a duration string such as \"30s\"";
        }
        break;
    case SD_OPT_LIST:
        if (json_is_array(v)) {
            size_t i;
            json_t *item;
            json_array_foreach(v, i, item)
            {
                if (!json_is_string(item)) {
                    want = "an array of strings";
                    break;
                }
                sd_buf_printf(text, "%s%s", i > 0 ? "," : "", json_string_value(item));
            }
        } else if (json_is_string(v)) {
            sd_buf_append_str(text, json_string_value(v));
        } else {
            want = "an array of strings";
        }
        break;
    default:
        if (json_is_string(v)) {
            sd_buf_append_str(text, json_string_value(v));
        } else {
            want = "a string";
        }
        break;
    }
    if (want != NULL) {
        sd_buf_printf(err, "invalid value for \"%s\": must be %s", opt->key, want);
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

/* Appends "name=<bound>" in the unit of the option's type. */
static void sd__append_bound(struct sd_buf *b, const struct sd_opt *opt, const char *name,
                             int64_t v)
{
    char text[48];

    switch (opt->type) {
    case SD_OPT_SIZE:
        sd_format_size(v, text, sizeof(text));
        break;
    case SD_OPT_DURATION:
        sd_format_duration(v, text, sizeof(text));
        break;
    default:
        snprintf(text, sizeof(text), "%" PRId64, v);
        break;
    }
    sd_buf_printf(b, "%s%s=%s", b->len > 0 ? "," : "", name, text);
}

/* The validation rule string of opt (go-playground validator style, as the reference shows
 * it: "min=1,max=10000000", "minDuration=1s,maxDuration=30m", "minBytes=100B,maxBytes=50MB",
 * "oneof=none gzip"), or NULL when the key has no rule. Owned by the caller. */
static char *sd__validation(const struct sd_opt *opt)
{
    struct sd_buf b = SD_BUF_INIT;
    const char *min_name = "min", *max_name = "max";

    if (opt->type == SD_OPT_ENUM && opt->enum_values != NULL) {
        sd_buf_append_str(&b, "oneof=");
        for (size_t i = 0; opt->enum_values[i] != NULL; i++) {
            sd_buf_printf(&b, "%s%s", i > 0 ? " " : "", opt->enum_values[i]);
        }
        return sd_buf_steal(&b);
    }
    if (opt->type == SD_OPT_SIZE) {
        min_name = "minBytes";
        max_name = "maxBytes";
    } else if (opt->type == SD_OPT_DURATION) {
        min_name = "minDuration";
        max_name = "maxDuration";
    }
    if (opt->type == SD_OPT_BOOL || opt->type == SD_OPT_STRING ||
        (opt->min == 0 && opt->max == 0)) {
        return NULL;
    }
    if (opt->min != 0 || opt->type == SD_OPT_INT || opt->type == SD_OPT_FLOAT) {
        sd__append_bound(&b, opt, min_name, opt->min);
    }
    if (opt->max != INT64_MAX && opt->type != SD_OPT_LIST) {
        sd__append_bound(&b, opt, max_name, opt->max);
    }
    return b.len > 0 ? sd_buf_steal(&b) : NULL;
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
        json_t *item, *def, *own, *inherited;
        char *validation;
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
        json_object_set_new(item, "description", json_string(opt->desc));
        json_object_set_new(item, "value", own != NULL ? own : json_incref(def));
        json_object_set_new(item, "defaultValue", def);
        json_object_set_new(item, "overwritten", json_boolean(own != NULL));
        json_object_set_new(item, "protected", json_boolean(opt->flags & SD_OPT_PROTECTED));
        validation = sd__validation(opt);
        if (validation != NULL) {
            json_object_set_new(item, "validation", json_string(validation));
            free(validation);
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
    sd_http_send_json(c->req, 200, sd__settings_json(c->api->srv->cfg, NULL, source), 1);
    json_decref(source);
}

void sd__api_sink_settings_get(struct sd_api_ctx *c)
{
    json_t *source = NULL, *sink = NULL;

    if (sd__api_get_source(c, &source, NULL) != 0) {
        return;
    }
    if (sd__api_get_sink(c, &sink, NULL) == 0) {
        sd_http_send_json(c->req, 200, sd__settings_json(c->api->srv->cfg, source, sink), 1);
    }
    json_decref(sink);
    json_decref(source);
}

/* Validates a PATCH body. Returns the patch object (new reference) and sets *description
 * (borrowed from body, NULL when absent), or sends 400/403 and returns NULL. */
static json_t *sd__parse_patch(struct sd_api_ctx *c, const json_t *body, const char **description)
{
    struct sd_buf forbidden = SD_BUF_INIT, invalid = SD_BUF_INIT, text = SD_BUF_INIT;
    struct sd_buf err = SD_BUF_INIT;
    json_t *settings = json_object_get(body, "settings");
    json_t *desc = json_object_get(body, "changeDescription");
    json_t *patch = json_object(), *item;
    struct sd_defs_err derr;
    size_t i;
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
        opt = sd_opt_find(json_string_value(key));
        if (opt == NULL || !(opt->flags & SD_OPT_ENTITY)) {
            sd_buf_printf(&invalid, "%skey \"%.200s\" not found", invalid.len ? "; " : "",
                          json_string_value(key));
            continue;
        }
        if (opt->flags & SD_OPT_PROTECTED) {
            sd_buf_printf(&forbidden, "%s\"%s\"", forbidden.len ? ", " : "", opt->key);
            continue;
        }
        if (value == NULL || json_is_null(value)) {
            json_object_set_new(patch, opt->key, json_null());
            continue;
        }
        sd_buf_reset(&err);
        if (sd__value_text(opt, value, &text, &err) != 0 ||
            (canonical = sd__canonical(opt, sd_buf_cstr(&text), &err)) == NULL) {
            sd_buf_printf(&invalid, "%s%s", invalid.len ? "; " : "", sd_buf_cstr(&err));
            continue;
        }
        json_object_set_new(patch, opt->key, canonical);
    }
    if (forbidden.len > 0) {
        sd__api_error(c->req, 403, "forbidden", "Cannot modify protected keys: %s.",
                      sd_buf_cstr(&forbidden));
        goto out;
    }
    if (invalid.len > 0) {
        sd__api_error(c->req, 400, "badRequest", "Invalid settings: %s.", sd_buf_cstr(&invalid));
        goto out;
    }
    ok = 1;

out:
    sd_buf_fini(&forbidden);
    sd_buf_fini(&invalid);
    sd_buf_fini(&text);
    sd_buf_fini(&err);
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
    const char *what = is_sink ? "Sink" : "Source";
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
            sd_buf_printf(&out->error, "%s \"%s\" not found in the %s.", what,
                          is_sink ? a->sink_id : a->source_id, is_sink ? "source" : "branch");
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
        rc = sd_server_rotate_sink(a->api->srv, sink_key, err);
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
        rc = sd_server_rotate_sink(a->api->srv, sink_key, err);
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
    snprintf(a->token_id, sizeof(a->token_id), "%s", c->token.id);
    snprintf(a->token_desc, sizeof(a->token_desc), "%s", c->token.description);
    a->by.type = "user";
    a->by.token_id = a->token_id;
    a->by.token_desc = a->token_desc;
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
