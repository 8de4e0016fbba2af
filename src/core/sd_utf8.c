/* sd_utf8.c: UTF-8 validation, decoding, encoding and code-point counting. */
#include "core/sd_utf8.h"

#include <string.h>

size_t sd_utf8_seq_len(const char *p, size_t avail)
{
    const unsigned char *s = (const unsigned char *)p;
    unsigned c = s[0];

    if (c < 0x80) {
        return 1;
    }
    if (c < 0xC2) {
        return 0;
    }
    if (c < 0xE0) {
        return (avail >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
    }
    if (c < 0xF0) {
        if (avail < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) {
            return 0;
        }
        if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F)) {
            return 0; /* overlong, or a surrogate */
        }
        return 3;
    }
    if (c < 0xF5) {
        if (avail < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) {
            return 0;
        }
        if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F)) {
            return 0; /* overlong, or above U+10FFFF */
        }
        return 4;
    }
    return 0;
}

int sd_utf8_valid(const char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        size_t n = sd_utf8_seq_len(s + i, len - i);
        if (n == 0) {
            return 0;
        }
        i += n;
    }
    return 1;
}

size_t sd_utf8_decode(const char *p, uint32_t *cp)
{
    const unsigned char *s = (const unsigned char *)p;

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] < 0xE0) {
        *cp = ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (s[0] < 0xF0) {
        *cp = ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    *cp = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
          ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    return 4;
}

size_t sd_utf8_encode(uint32_t cp, char *out)
{
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
        cp = 0xFFFD;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t sd_utf8_count(const char *p, size_t len)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t cont = 0;
    size_t i = 0;

    /* continuation bytes (10xxxxxx), eight at a time: bit 7 set and bit 6 clear gives one bit
     * per byte; moved to bit 0 of each byte, a multiplication sums the eight bytes into the top
     * one (no popcount instruction needed) */
    for (; i + 8 <= len; i += 8) {
        uint64_t x;
        memcpy(&x, u + i, 8);
        x = ((x & ~(x << 1)) >> 7) & 0x0101010101010101ULL;
        cont += (size_t)((x * 0x0101010101010101ULL) >> 56);
    }
    for (; i < len; i++) {
        cont += (u[i] & 0xC0) == 0x80;
    }
    return len - cont;
}
