/* sd_http_framing.h: checks the framing of an HTTP/1.x request head as the client sent it
 * (RFC 9112 §6.3 and §3.2), so that a request two parsers could read differently is refused
 * before any handler sees it.
 *
 * A pure function over a buffer the caller owns: no I/O, no allocation, any thread. */
#ifndef SD_HTTP_FRAMING_H
#define SD_HTTP_FRAMING_H

#include <stddef.h>

/* Checks the request head at the start of buf (len bytes; bytes after the head, such as a body,
 * are ignored). Refused: a head that is incomplete or malformed, a bare LF line end, an
 * obs-folded header line, Content-Length together with Transfer-Encoding, Transfer-Encoding in
 * HTTP/1.0, more than one Content-Length or Transfer-Encoding header, and HTTP/1.1 without
 * exactly one Host header. Header names are compared case-insensitively. Returns 0, or
 * SD_EPARSE with *why set to a static sentence for the error message. */
int sd_http_framing_check(const char *buf, size_t len, const char **why);

#endif
