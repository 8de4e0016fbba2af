/* sd_slice_recover.c: start-up recovery of a slice file (torn gzip tail or partial CSV row).
 *
 * DESIGN: one pass over the file with zlib inflate in gzip mode and Z_BLOCK, so inflate stops
 * at every deflate block boundary. A boundary is a cut candidate when it is byte-aligned (no
 * unused bits), not after the final block, and the member's decoded data so far ends with a
 * complete row and holds no NUL byte; the writer ends every synced batch with a sync flush at
 * a row end, so every synced offset is a candidate. A member that inflates to its end and
 * whose CRC32/ISIZE trailer matches is kept whole. The first member that does not (input ends,
 * invalid data, bad trailer, garbage instead of a header) is cut at its last candidate and
 * completed with an empty final stored block and the trailer (CRC32 from inflate's running
 * check, ISIZE from its output count), or dropped when it has no candidate; everything after
 * it is dropped. Synced bytes are never rewritten: recovery only truncates and appends 13
 * bytes, so a crash during recovery leaves a file that recovery handles again. Runs in the
 * caller's thread with bounded memory (1 MiB input, 256 KiB output window); the file
 * descriptor is its own and is closed before returning. */
#include "pipeline/sd_slice_recover.h"
#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "core/sd_fs.h"
#include "core/sd_log.h"
#include "pipeline/sd_gzip.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define SD__RECOVER_IN_SIZE ((size_t)1 << 20)
#define SD__RECOVER_OUT_SIZE ((size_t)256 << 10)

/* CSV row tracking over decoded bytes (quotes toggle; '\n' outside quotes ends a row). */
struct sd__rows {
    int in_quotes;
    int at_row_end; /* data so far ends with a complete row (true when empty) */
    int saw_nul;
    uint64_t rows;
    uint64_t bytes_at_row_end; /* bytes up to the last complete row */
    uint64_t bytes;
};

static void sd__rows_init(struct sd__rows *r)
{
    memset(r, 0, sizeof(*r));
    r->at_row_end = 1;
}

static void sd__rows_scan(struct sd__rows *r, const unsigned char *p, size_t n)
{
    const unsigned char *nul;
    size_t end, i = 0;

    if (r->saw_nul) {
        r->bytes += n;
        return;
    }
    /* Bytes after a NUL are garbage: scan up to it. Inside quotes only '"' matters, so memchr
     * skips the long runs of field bytes; outside them (a separator, a row end) the runs are a
     * byte or two. */
    nul = memchr(p, '\0', n);
    end = nul != NULL ? (size_t)(nul - p) : n;
    while (i < end) {
        if (r->in_quotes) {
            const unsigned char *q = memchr(p + i, '"', end - i);
            if (q == NULL) {
                break;
            }
            i = (size_t)(q - p) + 1;
            r->in_quotes = 0;
            continue;
        }
        if (p[i] == '"') {
            r->in_quotes = 1;
        } else if (p[i] == '\n') {
            r->rows++;
            r->bytes_at_row_end = r->bytes + i + 1;
        }
        i++;
    }
    if (nul != NULL) {
        r->saw_nul = 1;
        r->at_row_end = 0;
    } else if (n > 0) {
        r->at_row_end = (p[n - 1] == '\n' && !r->in_quotes);
    }
    r->bytes += n;
}

/* Where a file is cut and how it ends. */
struct sd__cut {
    uint64_t offset; /* the file keeps [0, offset) */
    int complete;    /* append the 13-byte completion at offset */
    uint32_t crc;
    uint32_t isize;
};

static int sd__is_gz_name(const char *path)
{
    size_t n = strlen(path);
    return n >= 3 && strcmp(path + n - 3, ".gz") == 0;
}

/* Reads up to cap bytes at off; returns bytes read (0 at EOF) or -errno. */
static ssize_t sd__pread_full(int fd, void *buf, size_t cap, uint64_t off)
{
    size_t got = 0;

    while (got < cap) {
        ssize_t n = pread(fd, (char *)buf + got, cap - got, (off_t)(off + got));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (n == 0) {
            break;
        }
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static int sd__recover_plain(int fd, uint64_t size, unsigned char *in, struct sd__cut *cut,
                             struct sd_slice_stats *st)
{
    struct sd__rows r;
    uint64_t off = 0;

    sd__rows_init(&r);
    while (off < size && !r.saw_nul) {
        ssize_t n = sd__pread_full(fd, in, SD__RECOVER_IN_SIZE, off);
        if (n < 0) {
            return (int)n;
        }
        if (n == 0) {
            break;
        }
        sd__rows_scan(&r, in, (size_t)n);
        off += (uint64_t)n;
    }
    cut->offset = r.bytes_at_row_end;
    cut->complete = 0;
    st->records = r.rows;
    st->uncompressed_bytes = r.bytes_at_row_end;
    st->compressed_bytes = r.bytes_at_row_end;
    if (r.saw_nul) {
        sd_log_warn("slice", "recover: NUL byte in CSV data, cut at offset %llu",
                    (unsigned long long)r.bytes_at_row_end);
    }
    return 0;
}

/* Per-member scan state. */
struct sd__member {
    uint64_t start;
    struct sd__rows rows;
    int has_cand;
    uint64_t cand_off;
    uint32_t cand_crc;
    uint64_t cand_bytes;
    uint64_t cand_rows;
};

static void sd__member_begin(struct sd__member *m, uint64_t start)
{
    memset(m, 0, sizeof(*m));
    m->start = start;
    sd__rows_init(&m->rows);
}

static int sd__recover_gzip(int fd, uint64_t size, unsigned char *in, unsigned char *out,
                            const char *path, struct sd__cut *cut, struct sd_slice_stats *st)
{
    z_stream zs;
    struct sd__member m;
    uint64_t in_base = 0; /* file offset of in[0] */
    size_t in_len = 0;
    int eof = 0;
    int zrc;
    int rc = 0;
    int truncated = 0;
    const char *why = NULL;

    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, 15 + 16) != Z_OK) {
        return -ENOMEM;
    }
    sd__member_begin(&m, 0);
    for (;;) {
        uint64_t pos;
        size_t produced;

        if (zs.avail_in == 0 && !eof) {
            ssize_t n;
            in_base += in_len;
            n = sd__pread_full(fd, in, SD__RECOVER_IN_SIZE, in_base);
            if (n < 0) {
                rc = (int)n;
                goto done;
            }
            in_len = (size_t)n;
            eof = in_base + in_len >= size || n == 0;
            zs.next_in = in;
            zs.avail_in = (uInt)in_len;
        }
        pos = in_base + (uint64_t)(zs.next_in - in);
        if (zs.avail_in == 0 && eof) {
            if (pos == m.start) {
                /* Clean end: the last member ended exactly at the end of the file. */
                cut->offset = m.start;
                cut->complete = 0;
                goto done;
            }
            truncated = 1;
            break;
        }
        zs.next_out = out;
        zs.avail_out = (uInt)SD__RECOVER_OUT_SIZE;
        zrc = inflate(&zs, Z_BLOCK);
        produced = SD__RECOVER_OUT_SIZE - zs.avail_out;
        sd__rows_scan(&m.rows, out, produced);
        if (zrc == Z_STREAM_END) {
            uint64_t end = in_base + (uint64_t)(zs.next_in - in);
            st->records += m.rows.rows;
            st->uncompressed_bytes += m.rows.bytes;
            inflateReset(&zs);
            sd__member_begin(&m, end);
            continue;
        }
        if (zrc != Z_OK && zrc != Z_BUF_ERROR) {
            why = zs.msg != NULL ? zs.msg : "invalid data";
            break;
        }
        if (zrc == Z_BUF_ERROR && zs.avail_in > 0 && produced == 0) {
            why = "inflate made no progress";
            break;
        }
        if ((zs.data_type & 128) != 0 && (zs.data_type & 127) == 0 && m.rows.bytes > 0 &&
            m.rows.at_row_end && !m.rows.saw_nul) {
            m.has_cand = 1;
            m.cand_off = in_base + (uint64_t)(zs.next_in - in);
            m.cand_crc = (uint32_t)zs.adler;
            m.cand_bytes = m.rows.bytes;
            m.cand_rows = m.rows.rows;
        }
    }
    /* The member starting at m.start is the tail: cut it at its last candidate. */
    if (m.has_cand) {
        cut->offset = m.cand_off;
        cut->complete = 1;
        cut->crc = m.cand_crc;
        cut->isize = (uint32_t)m.cand_bytes;
        st->records += m.cand_rows;
        st->uncompressed_bytes += m.cand_bytes;
    } else {
        cut->offset = m.start;
        cut->complete = 0;
    }
    if (size > cut->offset) {
        uint64_t err_at = in_base + (uint64_t)(zs.next_in - in);
        if (truncated) {
            sd_log_info("slice",
                        "recover %s: unfinished gzip member at offset %llu, cut at %llu "
                        "(%llu bytes dropped)",
                        path, (unsigned long long)m.start, (unsigned long long)cut->offset,
                        (unsigned long long)(size - cut->offset));
        } else {
            sd_log_warn("slice",
                        "recover %s: %s in gzip member at offset %llu (error near byte %llu), "
                        "cut at %llu (%llu bytes dropped)",
                        path, why != NULL ? why : "invalid data", (unsigned long long)m.start,
                        (unsigned long long)err_at, (unsigned long long)cut->offset,
                        (unsigned long long)(size - cut->offset));
        }
    }
done:
    inflateEnd(&zs);
    return rc;
}

int sd_slice_recover(const char *path, struct sd_slice_stats *stats)
{
    struct sd_slice_stats st;
    struct sd__cut cut;
    struct sd_buf tail = SD_BUF_INIT;
    struct stat sb;
    unsigned char *in = NULL;
    unsigned char *out = NULL;
    unsigned char magic[2];
    int fd;
    int rc = 0;
    int is_gzip = 0;

    memset(&st, 0, sizeof(st));
    memset(&cut, 0, sizeof(cut));
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    if (fstat(fd, &sb) != 0) {
        rc = -errno;
        goto done;
    }
    in = malloc(SD__RECOVER_IN_SIZE);
    out = malloc(SD__RECOVER_OUT_SIZE);
    if (in == NULL || out == NULL) {
        rc = -ENOMEM;
        goto done;
    }
    is_gzip = sd__is_gz_name(path);
    if (!is_gzip && sd__pread_full(fd, magic, 2, 0) == 2) {
        is_gzip = magic[0] == 0x1f && magic[1] == 0x8b;
    }
    if (is_gzip) {
        rc = sd__recover_gzip(fd, (uint64_t)sb.st_size, in, out, path, &cut, &st);
    } else {
        rc = sd__recover_plain(fd, (uint64_t)sb.st_size, in, &cut, &st);
    }
    if (rc != 0) {
        goto done;
    }
    if (cut.complete) {
        rc = sd_gzip_complete_member(cut.crc, cut.isize, &tail);
    } else if (is_gzip && cut.offset == 0) {
        /* Nothing left: an empty member keeps it a valid gzip file. */
        rc = sd_gzip_empty_member(&tail);
    }
    if (rc != 0) {
        goto done;
    }
    st.compressed_bytes = cut.offset + tail.len;
    if (cut.offset < (uint64_t)sb.st_size || tail.len > 0) {
        if (ftruncate(fd, (off_t)cut.offset) != 0) {
            rc = -errno;
            goto done;
        }
        if (tail.len > 0) {
            if (lseek(fd, (off_t)cut.offset, SEEK_SET) < 0) {
                rc = -errno;
                goto done;
            }
            rc = sd_write_all(fd, tail.data, tail.len);
            if (rc != 0) {
                goto done;
            }
        }
        if (fdatasync(fd) != 0) {
            rc = -errno;
            goto done;
        }
    }
done:
    if (rc != 0) {
        sd_log_error("slice", "recover %s: %s", path, sd_strerror(rc));
    }
    sd_buf_fini(&tail);
    free(in);
    free(out);
    close(fd);
    if (stats != NULL) {
        *stats = st;
    }
    return rc;
}
