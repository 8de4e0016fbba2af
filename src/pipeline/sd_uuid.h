/* sd_uuid.h: UUID version 7 (RFC 9562): a 48-bit Unix millisecond timestamp, version 7, a 12-bit
 * counter that keeps ids of one thread increasing within a millisecond, variant 10 and 62 random
 * bits. Formatted lowercase 8-4-4-4-12. */
#ifndef SD_UUID_H
#define SD_UUID_H

#include <stdint.h>

#define SD_UUID_STR_LEN 36

/* Writes a new UUID v7 for the time ms (Unix milliseconds) plus a NUL into out. Within one thread
 * and one ms, ids increase (until 2048+ ids in that ms); the random bits come from a per-thread
 * generator seeded by getrandom(). Any thread may call it; never fails. */
void sd_uuid_v7(int64_t ms, char out[SD_UUID_STR_LEN + 1]);

#endif
