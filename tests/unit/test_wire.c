/* test_wire.c: the source -> writer protocol's frames (src/net/sd_wire.c): every message
 * survives an encode/decode round trip, frames arriving in pieces decode only when whole, and
 * every kind of malformed frame is refused (from its header alone when the header is enough),
 * so a bad peer can only get its own connection closed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "net/sd_wire.h"

#include <string.h>

static struct sd_wire_msg roundtrip(const struct sd_wire_msg *m)
{
    struct sd_buf b = SD_BUF_INIT;
    struct sd_wire_msg out;
    size_t used = 0;

    assert_int_equal(sd_wire_encode(&b, m), 0);
    /* in pieces: nothing decodes before the last byte */
    for (size_t n = 0; n < b.len; n++) {
        assert_int_equal(sd_wire_decode((const uint8_t *)b.data, n, SD_WIRE_MAX_FRAME, &out, &used),
                         0);
    }
    assert_int_equal(sd_wire_decode((const uint8_t *)b.data, b.len, SD_WIRE_MAX_FRAME, &out, &used),
                     1);
    assert_int_equal(used, b.len);
    assert_int_equal(out.type, m->type);
    assert_int_equal(out.file, m->file);
    assert_int_equal(out.flags, m->flags);
    /* the pointers point into b: check them before it goes */
    if (m->text_len > 0) {
        assert_memory_equal(out.text, m->text, m->text_len);
    }
    if (m->json_len > 0) {
        assert_memory_equal(out.json, m->json, m->json_len);
    }
    if (m->rows_len > 0) {
        assert_memory_equal(out.rows, m->rows, m->rows_len);
    }
    out.text = out.json = NULL;
    out.rows = NULL;
    sd_buf_fini(&b);
    return out;
}

static void test_every_message_round_trips(void **state)
{
    struct sd_wire_msg m, out;
    const char rows[] = "\"a\",\"b\"\n\"c\",\"d\"\n";
    const char json[] = "{\"dir\":\"/v/1\",\"filenamePrefix\":\"slice\"}";

    (void)state;
    m = (struct sd_wire_msg){.type = SD_WIRE_HELLO,
                             .version_min = 1,
                             .version_max = 3,
                             .text = "source-1",
                             .text_len = 8};
    out = roundtrip(&m);
    assert_int_equal(out.version_min, 1);
    assert_int_equal(out.version_max, 3);
    assert_int_equal(out.text_len, 8);
    m = (struct sd_wire_msg){.type = SD_WIRE_WELCOME,
                             .version = 1,
                             .max_frame = 65536,
                             .window = 8 << 20,
                             .text = "writer_2",
                             .text_len = 8};
    out = roundtrip(&m);
    assert_int_equal(out.max_frame, 65536);
    assert_int_equal(out.window, 8 << 20);
    m = (struct sd_wire_msg){.type = SD_WIRE_OPEN,
                             .file = 7,
                             .text = "1/2/src/snk/f/v/s",
                             .text_len = 17,
                             .json = json,
                             .json_len = strlen(json)};
    out = roundtrip(&m);
    assert_int_equal(out.json_len, strlen(json));
    m = (struct sd_wire_msg){.type = SD_WIRE_OPENED, .file = 7, .seq = 12};
    assert_int_equal(roundtrip(&m).seq, 12);
    m = (struct sd_wire_msg){.type = SD_WIRE_APPEND,
                             .flags = SD_WIRE_FLAG_ALIGNED,
                             .file = 7,
                             .seq = UINT64_MAX - 1,
                             .records = 2,
                             .rows = (const uint8_t *)rows,
                             .rows_len = strlen(rows)};
    out = roundtrip(&m);
    assert_true(out.seq == UINT64_MAX - 1);
    assert_int_equal(out.records, 2);
    assert_int_equal(out.rows_len, strlen(rows));
    m = (struct sd_wire_msg){.type = SD_WIRE_SYNC, .file = 7, .seq = 99};
    assert_int_equal(roundtrip(&m).seq, 99);
    m = (struct sd_wire_msg){.type = SD_WIRE_SYNCED, .file = 7, .seq = 99, .rc = SD_WIRE_E_WRITE};
    out = roundtrip(&m);
    assert_int_equal(out.rc, SD_WIRE_E_WRITE);
    m = (struct sd_wire_msg){.type = SD_WIRE_CLOSE, .file = 7};
    roundtrip(&m);
    m = (struct sd_wire_msg){
        .type = SD_WIRE_CLOSED, .file = 7, .seq = 100, .stats = {100, 5000, 900}};
    out = roundtrip(&m);
    assert_int_equal(out.stats[1], 5000);
    m = (struct sd_wire_msg){.type = SD_WIRE_PING, .seq = 0xabcdef};
    assert_int_equal(roundtrip(&m).seq, 0xabcdef);
    m = (struct sd_wire_msg){.type = SD_WIRE_PONG, .seq = 0xabcdef};
    roundtrip(&m);
    m = (struct sd_wire_msg){.type = SD_WIRE_DRAIN};
    roundtrip(&m);
    m = (struct sd_wire_msg){
        .type = SD_WIRE_ERROR, .file = 3, .rc = SD_WIRE_E_OPEN, .text = "disk full", .text_len = 9};
    assert_int_equal(roundtrip(&m).rc, SD_WIRE_E_OPEN);
}

static void test_frames_back_to_back(void **state)
{
    struct sd_buf b = SD_BUF_INIT;
    struct sd_wire_msg m = {.type = SD_WIRE_SYNC, .file = 1}, out;
    size_t at = 0, used;

    (void)state;
    for (uint64_t i = 1; i <= 3; i++) {
        m.seq = i;
        assert_int_equal(sd_wire_encode(&b, &m), 0);
    }
    for (uint64_t i = 1; i <= 3; i++) {
        assert_int_equal(sd_wire_decode((const uint8_t *)b.data + at, b.len - at, SD_WIRE_MAX_FRAME,
                                        &out, &used),
                         1);
        assert_true(out.seq == i);
        at += used;
    }
    assert_int_equal(at, b.len);
    sd_buf_fini(&b);
}

/* A valid SYNC frame to corrupt. */
static void sync_frame(uint8_t f[20])
{
    struct sd_buf b = SD_BUF_INIT;
    struct sd_wire_msg m = {.type = SD_WIRE_SYNC, .file = 5, .seq = 1};

    assert_int_equal(sd_wire_encode(&b, &m), 0);
    assert_int_equal(b.len, 20);
    memcpy(f, b.data, 20);
    sd_buf_fini(&b);
}

static int decode(const uint8_t *f, size_t len)
{
    struct sd_wire_msg out;
    size_t used;

    return sd_wire_decode(f, len, SD_WIRE_MAX_FRAME, &out, &used);
}

static void test_malformed_frames_are_refused(void **state)
{
    uint8_t f[20];

    (void)state;
    sync_frame(f);
    assert_int_equal(decode(f, 20), 1);
    /* a length over the maximum: refused from the 12 header bytes, nothing is buffered */
    sync_frame(f);
    f[3] = 0x7f;
    assert_int_equal(decode(f, SD_WIRE_HEADER), SD_EINVAL);
    sync_frame(f);
    f[4] = 0; /* type 0 */
    assert_int_equal(decode(f, SD_WIRE_HEADER), SD_EINVAL);
    sync_frame(f);
    f[4] = 14; /* unknown type */
    assert_int_equal(decode(f, SD_WIRE_HEADER), SD_EINVAL);
    sync_frame(f);
    f[5] = SD_WIRE_FLAG_ALIGNED; /* only APPEND has flags */
    assert_int_equal(decode(f, SD_WIRE_HEADER), SD_EINVAL);
    sync_frame(f);
    f[6] = 1; /* reserved */
    assert_int_equal(decode(f, SD_WIRE_HEADER), SD_EINVAL);
    sync_frame(f);
    memset(f + 8, 0, 4); /* a SYNC must name a file */
    assert_int_equal(decode(f, SD_WIRE_HEADER), SD_EINVAL);
    sync_frame(f);
    f[4] = SD_WIRE_PING; /* a PING must not */
    assert_int_equal(decode(f, SD_WIRE_HEADER), SD_EINVAL);
    sync_frame(f);
    f[0] = 7; /* payload one byte short of a SYNC's */
    assert_int_equal(decode(f, 19), SD_EINVAL);
    sync_frame(f);
    f[4] = SD_WIRE_SYNCED; /* too short for a SYNCED */
    assert_int_equal(decode(f, 20), SD_EINVAL);
    sync_frame(f);
    f[4] = SD_WIRE_CLOSE; /* a CLOSE has no payload */
    assert_int_equal(decode(f, 20), SD_EINVAL);
}

static void test_payload_rules(void **state)
{
    struct sd_buf b = SD_BUF_INIT;
    struct sd_wire_msg m;
    char long_id[SD_WIRE_MAX_ID + 2];

    (void)state;
    memset(long_id, 'a', sizeof(long_id));
    /* the encoder refuses what the decoder would, and appends nothing */
    m = (struct sd_wire_msg){
        .type = SD_WIRE_HELLO, .version_min = 1, .version_max = 1, .text = "bad id", .text_len = 6};
    assert_int_equal(sd_wire_encode(&b, &m), SD_EINVAL);
    m.text = long_id;
    m.text_len = SD_WIRE_MAX_ID + 1;
    assert_int_equal(sd_wire_encode(&b, &m), SD_EINVAL);
    m = (struct sd_wire_msg){
        .type = SD_WIRE_HELLO, .version_min = 2, .version_max = 1, .text = "n", .text_len = 1};
    assert_int_equal(sd_wire_encode(&b, &m), SD_EINVAL);
    m = (struct sd_wire_msg){.type = SD_WIRE_APPEND,
                             .file = 1,
                             .seq = 1,
                             .records = 0,
                             .rows = (const uint8_t *)"x\n",
                             .rows_len = 2};
    assert_int_equal(sd_wire_encode(&b, &m), SD_EINVAL);
    m = (struct sd_wire_msg){.type = SD_WIRE_SYNCED, .file = 1, .seq = 1, .rc = 5};
    assert_int_equal(sd_wire_encode(&b, &m), SD_EINVAL);
    m = (struct sd_wire_msg){.type = SD_WIRE_ERROR, .rc = 0, .text = "x", .text_len = 1};
    assert_int_equal(sd_wire_encode(&b, &m), SD_EINVAL);
    m = (struct sd_wire_msg){.type = SD_WIRE_OPEN, .file = 1, .text = "k", .text_len = 1};
    assert_int_equal(sd_wire_encode(&b, &m), SD_EINVAL); /* no local storage JSON */
    m = (struct sd_wire_msg){.type = SD_WIRE_WELCOME,
                             .version = 1,
                             .max_frame = 65536,
                             .window = 1024,
                             .text = "w",
                             .text_len = 1};
    assert_int_equal(sd_wire_encode(&b, &m), SD_EINVAL); /* window below one frame */
    m = (struct sd_wire_msg){.type = 99};
    assert_int_equal(sd_wire_encode(&b, &m), SD_EINVAL);
    assert_int_equal(b.len, 0);
    /* a frame over the connection's agreed maximum is refused even if under the absolute one */
    m = (struct sd_wire_msg){.type = SD_WIRE_APPEND,
                             .file = 1,
                             .seq = 1,
                             .records = 1,
                             .rows = (const uint8_t *)long_id,
                             .rows_len = sizeof(long_id)};
    assert_int_equal(sd_wire_encode(&b, &m), 0);
    {
        struct sd_wire_msg out;
        size_t used;
        assert_int_equal(sd_wire_decode((const uint8_t *)b.data, SD_WIRE_HEADER, 64, &out, &used),
                         SD_EINVAL);
    }
    sd_buf_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_message_round_trips),
        cmocka_unit_test(test_frames_back_to_back),
        cmocka_unit_test(test_malformed_frames_are_refused),
        cmocka_unit_test(test_payload_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
