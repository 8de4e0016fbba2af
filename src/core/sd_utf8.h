/* sd_utf8.h: UTF-8 sequences: validation, decoding, encoding and counting code points, shared by
 * the JSON shim (pipeline/sd_json.cpp) and the Jsonnet engine (strings index by code point).
 * Valid means RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF. */
#ifndef SD_UTF8_H
#define SD_UTF8_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Length (1-4) of the valid UTF-8 sequence at s (avail bytes available, avail >= 1), or 0 when
 * it is invalid. */
size_t sd_utf8_seq_len(const char *s, size_t avail);
/* Returns 1 when s[0..len) is valid UTF-8, else 0 (scalar; sd_json_utf8_valid is the SIMD one
 * for long inputs). */
int sd_utf8_valid(const char *s, size_t len);
/* Decodes the code point of the valid sequence at p into *cp; returns its length in bytes. */
size_t sd_utf8_decode(const char *p, uint32_t *cp);
/* Encodes cp into out (room for 4 bytes); a surrogate or a value above U+10FFFF becomes
 * U+FFFD. Returns the length. */
size_t sd_utf8_encode(uint32_t cp, char *out);
/* Number of code points of valid UTF-8 p[0..len) (eight bytes at a time). */
size_t sd_utf8_count(const char *p, size_t len);

#ifdef __cplusplus
}
#endif

#endif
