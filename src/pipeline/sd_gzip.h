/* sd_gzip.h: a gzip member writer for slice files, over ISA-L igzip (levels 1-3, `fast` and
 * `parallel`) or zlib (`standard`, levels 1-9).
 *
 * A slice file is a concatenation of gzip members. Each call of sd_gzip_compress() either
 * ends at a deflate sync-flush boundary (byte-aligned, the member stays open, so the file may
 * be cut right there and completed later) or finishes the member (final block + CRC32 +
 * ISIZE trailer). A member whose bytes end at a sync-flush boundary can be completed without
 * the compressor by appending SD_GZIP_COMPLETION_LEN bytes (sd_gzip_complete_member): an empty
 * final stored block `01 00 00 ff ff` and the trailer computed from the member's CRC32 and
 * length. The slice writer does that after a failed write; recovery does it after a crash.
 *
 * One struct sd_gzip is used by one thread at a time (no internal locking). */
#ifndef SD_GZIP_H
#define SD_GZIP_H

#include "core/sd_buf.h"

#include <stddef.h>
#include <stdint.h>

/* encoding.compression.type */
enum sd_compression { SD_COMPRESSION_NONE, SD_COMPRESSION_GZIP };

/* encoding.compression.gzip.implementation: `standard` is zlib at the exact level; `fast`
 * and `parallel` are ISA-L (a level above 3 uses 3). */
enum sd_gzip_impl { SD_GZIP_STANDARD, SD_GZIP_FAST, SD_GZIP_PARALLEL };

/* Bytes appended by sd_gzip_complete_member(). */
#define SD_GZIP_COMPLETION_LEN 13
/* Bytes appended by sd_gzip_empty_member(). */
#define SD_GZIP_EMPTY_LEN 20

/* State of the open member: is_open is 0 when the next compress starts a new member. */
struct sd_gzip_member {
    int is_open;
    uint32_t crc;      /* CRC32 of the member's uncompressed data so far */
    uint64_t in_bytes; /* uncompressed bytes in the member so far (ISIZE = low 32 bits) */
};

struct sd_gzip;

/* Returns the level actually used by impl for the requested level (1-9): ISA-L caps at 3. */
int sd_gzip_effective_level(enum sd_gzip_impl impl, int level);

/* Creates a compressor (~360 KiB with ISA-L level 1). level outside 1-9 is SD_EINVAL.
 * Returns 0, SD_EINVAL or -ENOMEM; *out is owned by the caller (sd_gzip_destroy). */
int sd_gzip_create(enum sd_gzip_impl impl, int level, struct sd_gzip **out);
/* Frees gz (NULL is fine). */
void sd_gzip_destroy(struct sd_gzip *gz);

/* Compresses len bytes of in and appends the output to out, starting a new member (gzip
 * header) when none is open. finish == 0: the output ends at a sync-flush boundary and the
 * member stays open; finish != 0: the member is finished (trailer written) and the next call
 * starts a new one. len may be 0. Returns 0, -ENOMEM or SD_ECORRUPT (library failure; the
 * compressor is then reset and the member dropped). */
int sd_gzip_compress(struct sd_gzip *gz, const void *in, size_t len, int finish,
                     struct sd_buf *out);

/* Finishes the open member (appends final block and trailer). No-op without an open member.
 * Returns as sd_gzip_compress. */
int sd_gzip_finish(struct sd_gzip *gz, struct sd_buf *out);

/* Drops the open member without emitting anything (after the caller cut the file at an
 * earlier flush boundary); the next compress starts a new member. */
void sd_gzip_reset(struct sd_gzip *gz);

/* Copies the state of the open member into *m. */
void sd_gzip_member_state(const struct sd_gzip *gz, struct sd_gzip_member *m);

/* Appends the SD_GZIP_COMPLETION_LEN bytes that complete a member whose bytes end at a
 * byte-aligned block boundary (after a sync flush): an empty final stored block, then crc
 * and isize (little-endian). Returns 0 or -ENOMEM. */
int sd_gzip_complete_member(uint32_t crc, uint32_t isize, struct sd_buf *out);

/* Appends SD_GZIP_EMPTY_LEN bytes: a complete gzip member with no data (so an empty slice
 * is still a valid gzip file). Returns 0 or -ENOMEM. */
int sd_gzip_empty_member(struct sd_buf *out);

/* CRC32 as used by gzip (the same values as zlib's crc32()), continuing from crc. */
uint32_t sd_gzip_crc32(uint32_t crc, const void *data, size_t len);

#endif
