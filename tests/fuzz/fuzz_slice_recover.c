/* fuzz_slice_recover.c: fuzz target of pipeline/sd_slice_recover. The input bytes become a
 * slice file (a memfd, reached by path through /proc/self/fd); recovery must succeed and
 * leave a valid file: for gzip (detected by magic) a sequence of complete members that is a
 * prefix of the input plus at most the 13 completion bytes (or one empty member), whose
 * completed tail member ends with a complete row; for plain CSV a prefix of the input ending
 * with a complete row and holding no NUL. The reported statistics must match the result, and
 * recovering the result again must change nothing. */
#include "core/sd_log.h"
#include "pipeline/sd_gzip.h"
#include "pipeline/sd_slice_recover.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "check failed: %s (line %d)\n", #cond, __LINE__);                      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct rows {
    int in_quotes;
    uint64_t rows;
    uint64_t bytes;
    int last_nl; /* last byte was a row end */
    int saw_nul;
};

static void rows_scan(struct rows *r, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '"') {
            r->in_quotes = !r->in_quotes;
            r->last_nl = 0;
        } else if (p[i] == '\n' && !r->in_quotes) {
            r->rows++;
            r->last_nl = 1;
        } else {
            if (p[i] == '\0') {
                r->saw_nul = 1;
            }
            r->last_nl = 0;
        }
    }
    r->bytes += n;
}

/* Inflates complete members; returns the member count or -1. *last: rows of the last member. */
static int inflate_members(const unsigned char *p, size_t n, uint64_t *rows, uint64_t *bytes,
                           struct rows *last)
{
    z_stream zs;
    unsigned char win[16384];
    struct rows r;
    int members = 0;
    int zrc = Z_STREAM_END;

    memset(&zs, 0, sizeof(zs));
    memset(&r, 0, sizeof(r));
    *rows = 0;
    *bytes = 0;
    if (inflateInit2(&zs, 15 + 16) != Z_OK) {
        return -1;
    }
    zs.next_in = (Bytef *)p;
    zs.avail_in = (uInt)n;
    while (zs.avail_in > 0) {
        zs.next_out = win;
        zs.avail_out = sizeof(win);
        zrc = inflate(&zs, Z_NO_FLUSH);
        rows_scan(&r, win, sizeof(win) - zs.avail_out);
        if (zrc == Z_STREAM_END) {
            members++;
            *rows += r.rows;
            *bytes += r.bytes;
            *last = r;
            memset(&r, 0, sizeof(r));
            inflateReset(&zs);
        } else if (zrc != Z_OK) {
            break;
        }
    }
    inflateEnd(&zs);
    return zrc == Z_STREAM_END ? members : -1;
}

static unsigned char *read_back(int fd, size_t *len)
{
    struct stat sb;
    unsigned char *buf;

    CHECK(fstat(fd, &sb) == 0);
    *len = (size_t)sb.st_size;
    buf = malloc(*len + 1);
    CHECK(buf != NULL);
    CHECK(pread(fd, buf, *len, 0) == (ssize_t)*len);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    struct sd_slice_stats st;
    struct sd_slice_stats st2;
    unsigned char *out;
    unsigned char *again;
    size_t out_len;
    size_t again_len;
    int is_gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    int fd = memfd_create("slice", 0);

    sd_log_set_level(SD_LOG_ERROR); /* recovery warns on every torn input */
    CHECK(fd >= 0);
    CHECK(size == 0 || write(fd, data, size) == (ssize_t)size);
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    CHECK(sd_slice_recover(path, &st) == 0);
    out = read_back(fd, &out_len);
    CHECK(st.compressed_bytes == out_len);

    if (is_gzip) {
        uint64_t rows = 0;
        uint64_t bytes = 0;
        struct rows last;
        size_t kept = out_len;
        int members = inflate_members(out, out_len, &rows, &bytes, &last);
        CHECK(members >= 1);
        CHECK(st.records == rows);
        CHECK(st.uncompressed_bytes == bytes);
        if (kept <= size && memcmp(out, data, kept) == 0) {
            /* Pure truncation at a member boundary. */
        } else if (out_len == SD_GZIP_EMPTY_LEN && rows == 0 && bytes == 0) {
            /* Nothing kept: one empty member. */
        } else {
            /* Truncation inside the tail member, completed at a row end. */
            CHECK(out_len >= SD_GZIP_COMPLETION_LEN);
            kept = out_len - SD_GZIP_COMPLETION_LEN;
            CHECK(kept <= size && memcmp(out, data, kept) == 0);
            CHECK(memcmp(out + kept, "\x01\x00\x00\xff\xff", 5) == 0);
            CHECK(last.bytes > 0 && last.last_nl && !last.saw_nul);
        }
        /* An input made only of complete members is kept whole. */
        {
            uint64_t r2;
            uint64_t b2;
            struct rows l2;
            if (size > 0 && inflate_members(data, size, &r2, &b2, &l2) >= 1) {
                CHECK(out_len == size);
            }
        }
    } else {
        struct rows r;
        memset(&r, 0, sizeof(r));
        CHECK(out_len <= size && memcmp(out, data, out_len) == 0);
        rows_scan(&r, out, out_len);
        CHECK(out_len == 0 || r.last_nl);
        CHECK(!r.saw_nul);
        CHECK(st.records == r.rows);
        CHECK(st.uncompressed_bytes == out_len);
    }

    /* Recovering the result again changes nothing. */
    CHECK(sd_slice_recover(path, &st2) == 0);
    again = read_back(fd, &again_len);
    CHECK(again_len == out_len && memcmp(again, out, out_len) == 0);
    CHECK(st2.records == st.records && st2.uncompressed_bytes == st.uncompressed_bytes);
    free(again);
    free(out);
    close(fd);
    return 0;
}
