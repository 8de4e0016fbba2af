/* sd_settings.c: effective settings of a sink from the config and the entities' overrides. */
#include "defs/sd_settings.h"
#include "config/sd_config.h"
#include "config/sd_opt.h"

#include <stdio.h>

const char *const sd_settings_snapshot_keys[] = {
    "storage.level.local.encoding.sync.wait",
    "storage.level.staging.upload.minInterval",
    "storage.level.staging.upload.trigger.count",
    "storage.level.staging.upload.trigger.size",
    "storage.level.staging.upload.trigger.interval",
    "storage.level.target.import.minInterval",
    "storage.level.target.import.maxSlices",
    "storage.level.target.import.trigger.count",
    "storage.level.target.import.trigger.size",
    "storage.level.target.import.trigger.interval",
    "storage.level.target.import.trigger.slicesCount",
    NULL,
};

static int sd__override(const json_t *entity, const char *key, int64_t *out)
{
    const struct sd_opt *opt = sd_opt_find(key);
    json_t *v = json_object_get(json_object_get(entity, "config"), key);
    char text[64];
    const char *t = text;
    struct sd_buf err = SD_BUF_INIT;
    int rc;

    if (v == NULL || opt == NULL) {
        return 0;
    }
    if (json_is_integer(v)) {
        snprintf(text, sizeof(text), "%lld", (long long)json_integer_value(v));
    } else if (json_is_boolean(v)) {
        t = json_is_true(v) ? "true" : "false";
    } else if (json_is_string(v)) {
        t = json_string_value(v);
    } else {
        return 0;
    }
    rc = sd_opt_parse(opt, t, out, NULL, &err);
    sd_buf_fini(&err);
    return rc == 0;
}

int64_t sd_settings_int(const struct sd_config *cfg, const json_t *source, const json_t *sink,
                        const char *key)
{
    int64_t v;

    if (sd__override(sink, key, &v) || sd__override(source, key, &v)) {
        return v;
    }
    return sd_config_int(cfg, key);
}

json_t *sd_settings_snapshot(const struct sd_config *cfg, const json_t *source, const json_t *sink)
{
    json_t *out = json_object();

    for (size_t i = 0; sd_settings_snapshot_keys[i] != NULL; i++) {
        const char *key = sd_settings_snapshot_keys[i];
        json_object_set_new(out, key, json_integer(sd_settings_int(cfg, source, sink, key)));
    }
    return out;
}

int64_t sd_settings_get(const json_t *snapshot, const char *key, int64_t def)
{
    json_t *v = json_object_get(snapshot, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}
