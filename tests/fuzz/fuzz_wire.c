/* fuzz_wire.c: fuzz target for the source -> writer protocol's decoder (src/net/sd_wire.c):
 * whatever a peer sends must never crash or read out of bounds, and every frame the decoder
 * accepts must be canonical: encoding the decoded message gives back exactly its bytes.
 *
 * Input: the first byte picks the connection's maximum frame (small ones test the header-only
 * refusal), the rest is a byte stream decoded frame after frame until it needs more bytes or a
 * frame is malformed (where a connection would be closed). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sd_buf.h"
#include "net/sd_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_wire: check failed: %s (line %d)\n", #cond, __LINE__);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t max_frames[] = {16, 64, 1024, 65536, SD_WIRE_MAX_FRAME};
    size_t max_frame, at = 1;
    struct sd_buf again = SD_BUF_INIT;

    if (size < 1) {
        return 0;
    }
    max_frame = max_frames[data[0] % (sizeof(max_frames) / sizeof(max_frames[0]))];
    while (at < size) {
        struct sd_wire_msg m;
        size_t used = 0;
        int rc = sd_wire_decode(data + at, size - at, max_frame, &m, &used);
        if (rc != 1) {
            break; /* needs more bytes, or malformed: the connection would close */
        }
        CHECK(used >= SD_WIRE_HEADER && used <= size - at && used - SD_WIRE_HEADER <= max_frame);
        again.len = 0;
        CHECK(sd_wire_encode(&again, &m) == 0);
        CHECK(again.len == used && memcmp(again.data, data + at, used) == 0);
        at += used;
    }
    sd_buf_fini(&again);
    return 0;
}
