/* test_inflate.h: decompresses a sequence of gzip members (a slice file) for the unit tests, so
 * they check what a reader of the file gets. Include after <cmocka.h>. */
#ifndef SD_TEST_INFLATE_H
#define SD_TEST_INFLATE_H

#include "core/sd_buf.h"

#include <string.h>
#include <zlib.h>

/* Decompresses complete gzip members into out; returns the member count, -1 if the data is
 * not exactly a sequence of complete members. */
static inline int sd_test_inflate_all(const void *data, size_t len, struct sd_buf *out)
{
    z_stream zs;
    unsigned char win[65536];
    int members = 0;
    int zrc = Z_STREAM_END;

    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, 15 + 16) != Z_OK) {
        return -1;
    }
    zs.next_in = (Bytef *)data;
    zs.avail_in = (uInt)len;
    while (zs.avail_in > 0) {
        zs.next_out = win;
        zs.avail_out = sizeof(win);
        zrc = inflate(&zs, Z_NO_FLUSH);
        sd_buf_append(out, win, sizeof(win) - zs.avail_out);
        if (zrc == Z_STREAM_END) {
            members++;
            inflateReset(&zs);
        } else if (zrc != Z_OK) {
            break;
        }
    }
    inflateEnd(&zs);
    return zrc == Z_STREAM_END ? members : -1;
}

#endif
