/* sd_conditions.h: the reference's rotation conditions (spec §4.4) as pure functions: when an
 * open slice is rotated for upload, and when a file is rotated for import. Inputs are the
 * settings snapshot of the sink (sd_settings) and the statistics the caller summed; no I/O. */
#ifndef SD_CONDITIONS_H
#define SD_CONDITIONS_H

#include <jansson.h>
#include <stdint.h>

/* Why a file is imported now (SD_IMPORT_NONE: not yet). */
enum sd_import_cause {
    SD_IMPORT_NONE = 0,
    SD_IMPORT_MAX_SLICES,
    SD_IMPORT_EXPIRATION,
    SD_IMPORT_SLICES_COUNT,
    SD_IMPORT_COUNT,
    SD_IMPORT_SIZE,
    SD_IMPORT_TIME,
};

/* Totals of a file over its slices at every level. */
struct sd_file_totals {
    int64_t slices;
    int64_t records;
    int64_t compressed_bytes;
};

/* 1 if the open slice (opened at opened_ms, with records and compressed_bytes so far) is
 * rotated for upload at now: past upload.minInterval, not empty, and any upload trigger met. */
int sd_should_upload(const json_t *settings, int64_t now, int64_t opened_ms, int64_t records,
                     int64_t compressed_bytes);

/* The cause that rotates the file (opened at opened_ms) for import at now, in the reference's
 * order: maxSlices, then nothing before import.minInterval, then the staging expiration
 * (expiration_ms, 0 = the staging storage does not expire: never) within
 * expiration_threshold_ms (import.trigger.expiration), slicesCount, and for a non-empty file the
 * count, size and interval triggers. */
enum sd_import_cause sd_should_import(const json_t *settings, int64_t now, int64_t opened_ms,
                                      int64_t expiration_ms, int64_t expiration_threshold_ms,
                                      const struct sd_file_totals *totals);

/* The reference's name of a cause ("maxSlices", "expiration", ...; "" for none). */
const char *sd_import_cause_name(enum sd_import_cause cause);

#endif
