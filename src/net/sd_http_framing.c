/* sd_http_framing.c: refuses request heads whose message framing is ambiguous (RFC 9112).
 *
 * DESIGN: the head is parsed again with picohttpparser, the parser libh2o itself used, so this
 * check sees exactly the header lines h2o acted on. h2o 2.2.5 lets Transfer-Encoding win over
 * Content-Length, takes the first of two Content-Lengths and the first Host, and accepts
 * folded lines and bare LF line ends: a front proxy that frames the same bytes differently
 * would let a client smuggle a request. Every such head is refused here; the caller answers
 * 400 and closes the connection so nothing after the head is read as a request. */
#include "net/sd_http_framing.h"
#include "core/sd_error.h"

#include <string.h>
#include <strings.h>
#include <sys/types.h>

/* picohttpparser as exported by libh2o (its header is not installed). */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len,
                      const char **path, size_t *path_len, int *minor_version,
                      struct phr_header *headers, size_t *num_headers, size_t last_len);

#define SD_HTTP_FRAMING_MAX_HEADERS 100 /* H2O_MAX_HEADERS: h2o refuses longer heads itself */

static int sd__is_header(const struct phr_header *h, const char *name)
{
    size_t n = strlen(name);

    return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

int sd_http_framing_check(const char *buf, size_t len, const char **why)
{
    struct phr_header headers[SD_HTTP_FRAMING_MAX_HEADERS];
    size_t nheaders = SD_HTTP_FRAMING_MAX_HEADERS, method_len, path_len;
    size_t ncl = 0, nte = 0, nhost = 0;
    const char *method, *path;
    int minor, head_len;

    head_len = phr_parse_request(buf, len, &method, &method_len, &path, &path_len, &minor, headers,
                                 &nheaders, 0);
    if (head_len <= 0) {
        *why = "malformed or incomplete request head";
        return SD_EPARSE;
    }
    for (int i = 0; i < head_len; i++) {
        if (buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r')) {
            *why = "a line of the request head ends with a bare LF";
            return SD_EPARSE;
        }
    }
    for (size_t i = 0; i < nheaders; i++) {
        if (headers[i].name == NULL || headers[i].name_len == 0) {
            *why = "folded header lines are not allowed";
            return SD_EPARSE;
        }
        ncl += sd__is_header(&headers[i], "content-length");
        nte += sd__is_header(&headers[i], "transfer-encoding");
        nhost += sd__is_header(&headers[i], "host");
    }
    if (ncl > 0 && nte > 0) {
        *why = "both Content-Length and Transfer-Encoding are present";
    } else if (ncl > 1) {
        *why = "more than one Content-Length header";
    } else if (nte > 1) {
        *why = "more than one Transfer-Encoding header";
    } else if (nte > 0 && minor == 0) {
        *why = "Transfer-Encoding is not allowed in HTTP/1.0";
    } else if (nhost > 1) {
        *why = "more than one Host header";
    } else if (nhost == 0 && minor >= 1) {
        *why = "HTTP/1.1 request without a Host header";
    } else {
        return 0;
    }
    return SD_EPARSE;
}
