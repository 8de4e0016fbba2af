/* sd_conditions.c: slice-upload and file-import rotation conditions (reference
 * coordinator/slicerotation/conditions.go and filerotation/conditions.go). Pure functions of
 * their arguments; the trigger values come from the sink's settings snapshot. */
#include "storage/sd_conditions.h"
#include "defs/sd_settings.h"

int sd_should_upload(const json_t *s, int64_t now, int64_t opened_ms, int64_t records,
                     int64_t compressed_bytes)
{
    int64_t age = now - opened_ms;

    if (age < sd_settings_get(s, "storage.level.staging.upload.minInterval", 0) || records <= 0) {
        return 0;
    }
    return records >= sd_settings_get(s, "storage.level.staging.upload.trigger.count", 0) ||
           compressed_bytes >= sd_settings_get(s, "storage.level.staging.upload.trigger.size", 0) ||
           age >= sd_settings_get(s, "storage.level.staging.upload.trigger.interval", 0);
}

enum sd_import_cause sd_should_import(const json_t *s, int64_t now, int64_t opened_ms,
                                      int64_t expiration_ms, int64_t expiration_threshold_ms,
                                      const struct sd_file_totals *t)
{
    int64_t age = now - opened_ms;

    if (t->slices >= sd_settings_get(s, "storage.level.target.import.maxSlices", 100)) {
        return SD_IMPORT_MAX_SLICES;
    }
    if (age < sd_settings_get(s, "storage.level.target.import.minInterval", 0)) {
        return SD_IMPORT_NONE;
    }
    /* The reference compares whole seconds of the remaining lifetime. */
    if (expiration_ms > 0 && (expiration_ms - now) / 1000 * 1000 <= expiration_threshold_ms) {
        return SD_IMPORT_EXPIRATION;
    }
    if (t->slices >= sd_settings_get(s, "storage.level.target.import.trigger.slicesCount", 100)) {
        return SD_IMPORT_SLICES_COUNT;
    }
    if (t->records <= 0) {
        return SD_IMPORT_NONE;
    }
    if (t->records >= sd_settings_get(s, "storage.level.target.import.trigger.count", 0)) {
        return SD_IMPORT_COUNT;
    }
    if (t->compressed_bytes >= sd_settings_get(s, "storage.level.target.import.trigger.size", 0)) {
        return SD_IMPORT_SIZE;
    }
    if (age >= sd_settings_get(s, "storage.level.target.import.trigger.interval", 0)) {
        return SD_IMPORT_TIME;
    }
    return SD_IMPORT_NONE;
}

const char *sd_import_cause_name(enum sd_import_cause cause)
{
    static const char *const names[] = {
        "", "maxSlices", "expiration", "slicesCount", "recordCount", "size", "time"};

    return (unsigned)cause < sizeof(names) / sizeof(names[0]) ? names[cause] : "";
}
