/* sd_gzip.c: gzip member writer over ISA-L igzip (`fast`, `parallel`) and zlib (`standard`).
 *
 * DESIGN: a struct sd_gzip holds one deflate stream and belongs to one thread at a time (the
 * slice writer thread, or one parallel worker); nothing here locks. The CRC32 and length of
 * the open member are tracked here (crc32_gzip_refl, PCLMUL-accelerated) rather than read
 * from library internals, so the caller can complete a member that was cut at a sync-flush
 * boundary without the compressor. ISA-L facts (CAVEATS.md): isal_deflate may rewrite
 * gzip_flag and isal_deflate_reset keeps it, so gzip_flag is set to IGZIP_GZIP before every
 * member; levels 1-3 need a level_buf of ISAL_DEF_LVLx_DEFAULT bytes; inputs are fed in one
 * call per batch. A library failure resets the stream and drops the open member (the caller
 * fails that batch); allocation failures are reported, never fatal. */
#include "pipeline/sd_gzip.h"
#include "core/sd_error.h"

#include <errno.h>
#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Largest input handed to one library call (their counters are 32-bit). */
#define SD__GZIP_MAX_CALL_IN ((size_t)1 << 30)
/* Output room reserved before each library call; grown when a call fills it. */
#define SD__GZIP_MIN_OUT_ROOM ((size_t)64 * 1024)

struct sd_gzip {
    enum sd_gzip_impl impl;
    int level;
    int is_open;
    uint32_t crc;
    uint64_t in_bytes;
    /* ISA-L */
    struct isal_zstream isal;
    uint8_t *level_buf;
    size_t level_buf_size;
    /* zlib */
    z_stream zs;
    int zs_ready;
};

int sd_gzip_effective_level(enum sd_gzip_impl impl, int level)
{
    if (impl == SD_GZIP_STANDARD) {
        return level;
    }
    return level > 3 ? 3 : level;
}

uint32_t sd_gzip_crc32(uint32_t crc, const void *data, size_t len)
{
    const unsigned char *p = data;

    while (len > 0) {
        uint64_t n = len > SD__GZIP_MAX_CALL_IN ? SD__GZIP_MAX_CALL_IN : len;
        crc = crc32_gzip_refl(crc, p, n);
        p += n;
        len -= n;
    }
    return crc;
}

static void sd__gzip_isal_new_member(struct sd_gzip *gz)
{
    isal_deflate_reset(&gz->isal);
    gz->isal.level = (uint32_t)gz->level;
    gz->isal.level_buf = gz->level_buf;
    gz->isal.level_buf_size = (uint32_t)gz->level_buf_size;
    gz->isal.gzip_flag = IGZIP_GZIP;
    gz->isal.end_of_stream = 0;
    gz->isal.flush = SYNC_FLUSH;
}

int sd_gzip_create(enum sd_gzip_impl impl, int level, struct sd_gzip **out)
{
    struct sd_gzip *gz;

    *out = NULL;
    if (level < 1 || level > 9 ||
        (impl != SD_GZIP_STANDARD && impl != SD_GZIP_FAST && impl != SD_GZIP_PARALLEL)) {
        return SD_EINVAL;
    }
    gz = calloc(1, sizeof(*gz));
    if (gz == NULL) {
        return -ENOMEM;
    }
    gz->impl = impl;
    gz->level = sd_gzip_effective_level(impl, level);
    if (impl == SD_GZIP_STANDARD) {
        if (deflateInit2(&gz->zs, gz->level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            free(gz);
            return -ENOMEM;
        }
        gz->zs_ready = 1;
    } else {
        switch (gz->level) {
        case 1:
            gz->level_buf_size = ISAL_DEF_LVL1_DEFAULT;
            break;
        case 2:
            gz->level_buf_size = ISAL_DEF_LVL2_DEFAULT;
            break;
        default:
            gz->level_buf_size = ISAL_DEF_LVL3_DEFAULT;
            break;
        }
        gz->level_buf = malloc(gz->level_buf_size);
        if (gz->level_buf == NULL) {
            free(gz);
            return -ENOMEM;
        }
        isal_deflate_init(&gz->isal);
        sd__gzip_isal_new_member(gz);
    }
    *out = gz;
    return 0;
}

void sd_gzip_destroy(struct sd_gzip *gz)
{
    if (gz == NULL) {
        return;
    }
    if (gz->zs_ready) {
        deflateEnd(&gz->zs);
    }
    free(gz->level_buf);
    free(gz);
}

void sd_gzip_reset(struct sd_gzip *gz)
{
    if (gz->impl == SD_GZIP_STANDARD) {
        deflateReset(&gz->zs);
    } else {
        sd__gzip_isal_new_member(gz);
    }
    gz->is_open = 0;
    gz->crc = 0;
    gz->in_bytes = 0;
}

void sd_gzip_member_state(const struct sd_gzip *gz, struct sd_gzip_member *m)
{
    m->is_open = gz->is_open;
    m->crc = gz->crc;
    m->in_bytes = gz->in_bytes;
}

/* Makes sure out has at least SD__GZIP_MIN_OUT_ROOM (or want) bytes of spare room. */
static int sd__gzip_room(struct sd_buf *out, size_t want)
{
    if (want < SD__GZIP_MIN_OUT_ROOM) {
        want = SD__GZIP_MIN_OUT_ROOM;
    }
    if (out->cap - out->len > want) {
        return 0;
    }
    return sd_buf_reserve(out, want);
}

static size_t sd__gzip_spare(const struct sd_buf *out)
{
    size_t spare = out->cap - out->len - 1; /* keep sd_buf's NUL slot */
    return spare > SD__GZIP_MAX_CALL_IN ? SD__GZIP_MAX_CALL_IN : spare;
}

/* One ISA-L piece: in[n] with the flush mode of this call; loops until all input is consumed
 * and the flush (or the end of the member) is complete. */
static int sd__gzip_isal_run(struct sd_gzip *gz, const uint8_t *in, size_t n, int end,
                             struct sd_buf *out)
{
    struct isal_zstream *s = &gz->isal;
    int rc;

    s->next_in = (uint8_t *)in;
    s->avail_in = (uint32_t)n;
    s->end_of_stream = end ? 1 : 0;
    s->flush = end ? NO_FLUSH : SYNC_FLUSH;
    for (;;) {
        size_t before;
        rc = sd__gzip_room(out, s->avail_in + s->avail_in / 8 + 1024);
        if (rc != 0) {
            return rc;
        }
        before = sd__gzip_spare(out);
        s->next_out = (uint8_t *)out->data + out->len;
        s->avail_out = (uint32_t)before;
        if (isal_deflate(s) != COMP_OK) {
            return SD_ECORRUPT;
        }
        out->len += before - s->avail_out;
        if (s->avail_in > 0 || s->avail_out == 0) {
            continue;
        }
        if (end && s->internal_state.state != ZSTATE_END) {
            continue;
        }
        break;
    }
    return 0;
}

static int sd__gzip_zlib_run(struct sd_gzip *gz, const uint8_t *in, size_t n, int end,
                             struct sd_buf *out)
{
    z_stream *s = &gz->zs;
    int flush = end ? Z_FINISH : Z_SYNC_FLUSH;
    int rc;

    s->next_in = (Bytef *)in;
    s->avail_in = (uInt)n;
    for (;;) {
        size_t before;
        int zrc;
        rc = sd__gzip_room(out, s->avail_in + s->avail_in / 8 + 1024);
        if (rc != 0) {
            return rc;
        }
        before = sd__gzip_spare(out);
        s->next_out = (Bytef *)out->data + out->len;
        s->avail_out = (uInt)before;
        zrc = deflate(s, flush);
        out->len += before - s->avail_out;
        if (end && zrc == Z_STREAM_END) {
            break;
        }
        if (zrc != Z_OK && zrc != Z_BUF_ERROR) {
            return SD_ECORRUPT;
        }
        if (!end && s->avail_in == 0 && s->avail_out > 0) {
            break;
        }
    }
    return 0;
}

int sd_gzip_compress(struct sd_gzip *gz, const void *in, size_t len, int finish, struct sd_buf *out)
{
    const uint8_t *p = in;
    size_t start_len = out->len;
    int rc = 0;

    if (!gz->is_open) {
        sd_gzip_reset(gz);
        gz->is_open = 1;
    }
    gz->crc = sd_gzip_crc32(gz->crc, in, len);
    gz->in_bytes += len;
    do {
        size_t n = len > SD__GZIP_MAX_CALL_IN ? SD__GZIP_MAX_CALL_IN : len;
        int end = finish && n == len;
        if (gz->impl == SD_GZIP_STANDARD) {
            rc = sd__gzip_zlib_run(gz, p, n, end, out);
        } else {
            rc = sd__gzip_isal_run(gz, p, n, end, out);
        }
        p += n;
        len -= n;
    } while (rc == 0 && len > 0);
    if (rc != 0) {
        out->len = start_len;
        sd_gzip_reset(gz);
        return rc;
    }
    if (finish) {
        sd_gzip_reset(gz);
    }
    return 0;
}

int sd_gzip_finish(struct sd_gzip *gz, struct sd_buf *out)
{
    if (!gz->is_open) {
        return 0;
    }
    return sd_gzip_compress(gz, NULL, 0, 1, out);
}

int sd_gzip_complete_member(uint32_t crc, uint32_t isize, struct sd_buf *out)
{
    unsigned char b[SD_GZIP_COMPLETION_LEN] = {0x01, 0x00, 0x00, 0xff, 0xff};

    for (int i = 0; i < 4; i++) {
        b[5 + i] = (unsigned char)(crc >> (8 * i));
        b[9 + i] = (unsigned char)(isize >> (8 * i));
    }
    return sd_buf_append(out, b, sizeof(b));
}

int sd_gzip_empty_member(struct sd_buf *out)
{
    /* Header (no flags, mtime 0, OS unix), an empty final fixed-Huffman block, CRC32 0,
     * ISIZE 0. */
    static const unsigned char b[SD_GZIP_EMPTY_LEN] = {0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0x03,
                                                       0x03, 0x00, 0,    0, 0, 0, 0, 0, 0, 0};
    return sd_buf_append(out, b, sizeof(b));
}
