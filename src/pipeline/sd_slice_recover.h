/* sd_slice_recover.h: start-up recovery of one slice file, and the statistics of slice data.
 *
 * After a crash a slice file holds every byte synced before it, maybe followed by a torn
 * tail (an unfinished gzip member, a partial row, or garbage after a power loss). Recovery
 * makes the file valid again without rewriting a single synced byte: it keeps every complete
 * gzip member, cuts the tail member at its last byte-aligned deflate block boundary where the
 * decoded data ends with a complete CSV row (every sync point of the writer is such a
 * boundary) and completes the member there (empty final block + CRC32 + ISIZE), or drops the
 * member when no such boundary exists. Plain CSV files are cut after the last complete row.
 * Rows are tracked from each member's start: a row ends with '\n' outside double quotes
 * (every field quoted, quotes doubled); a NUL byte, which streamd never writes, marks the
 * start of garbage. A gzip file left without any member gets one empty member, so it stays a
 * valid gzip file. Re-running recovery on its own result changes nothing. */
#ifndef SD_SLICE_RECOVER_H
#define SD_SLICE_RECOVER_H

#include <stdint.h>

/* Statistics of slice data. first/last_record_ms are 0 when unknown (recovered data). */
struct sd_slice_stats {
    uint64_t records;            /* complete CSV rows */
    uint64_t uncompressed_bytes; /* CSV bytes */
    uint64_t compressed_bytes;   /* file bytes (equal to uncompressed for compression none) */
    int64_t first_record_ms;
    int64_t last_record_ms;
};

/* Recovers the slice file at path (hidden or visible name). The file is treated as gzip when
 * its name ends with ".gz" or it starts with the gzip magic, else as plain CSV. Keeps every
 * complete gzip member; the tail (an unfinished member, possibly torn mid-write) is cut at
 * its last row-aligned flush boundary and completed, so the file passes `gzip -t` and
 * decompresses to complete rows including every row synced before the crash. A corrupt
 * member or garbage in the middle: everything before it is kept, a warning names the byte
 * offset, the rest is dropped. The file is only modified (ftruncate, write of 13 bytes,
 * fdatasync) when needed. stats (optional) receives the rows counted, the uncompressed
 * bytes and the resulting file size. Blocking; any thread. Returns 0 or -errno. */
int sd_slice_recover(const char *path, struct sd_slice_stats *stats);

#endif
