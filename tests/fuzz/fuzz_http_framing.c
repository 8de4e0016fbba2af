/* fuzz_http_framing.c: fuzz target for request-head framing checks (net/sd_http_framing).
 *
 * Properties checked (abort on violation): the check never reads outside the input, answers 0
 * or SD_EPARSE with a reason, and an accepted head never contains a bare LF before its end nor
 * both a Content-Length and a Transfer-Encoding name at the start of a line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/sd_error.h"
#include "net/sd_http_framing.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_http_framing: check failed: %s (line %d)\n", #cond, __LINE__);   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Whether a header line of buf[0..end) (any line after the request line) starts with name
 * (case-insensitive) followed by ':'. */
static int has_line(const char *buf, size_t end, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 1; i + n < end; i++) {
        if (buf[i - 1] == '\n' && strncasecmp(buf + i, name, n) == 0 && buf[i + n] == ':') {
            return 1;
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a private copy, so that reads past the input are caught by the sanitizers */
    char *buf = malloc(size ? size : 1);
    const char *why = NULL;
    const char *end;
    size_t head_len;
    int rc;

    memcpy(buf, data, size);
    rc = sd_http_framing_check(buf, size, &why);
    CHECK(rc == 0 || rc == SD_EPARSE);
    CHECK(rc == 0 || why != NULL);
    if (rc == 0) {
        end = memmem(buf, size, "\r\n\r\n", 4);
        CHECK(end != NULL);
        head_len = (size_t)(end - buf) + 4;
        for (size_t i = 0; i < head_len; i++) {
            CHECK(buf[i] != '\n' || (i > 0 && buf[i - 1] == '\r'));
        }
        CHECK(!(has_line(buf, head_len, "content-length") &&
                has_line(buf, head_len, "transfer-encoding")));
    }
    free(buf);
    return 0;
}
