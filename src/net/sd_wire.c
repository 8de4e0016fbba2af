/* sd_wire.c: decoder and encoder of the source -> writer protocol's frames (docs/PROTOCOL.md).
 *
 * DESIGN: the decoder is the one place that knows what a valid frame is: header (length within
 * the connection's maximum, a known type, flags the type defines, reserved zero, a file id where
 * the type needs one and none where it does not) and payload (exact sizes, lengths inside the
 * payload, ids of allowed characters). The encoder writes the fields and then decodes what it
 * wrote, so nothing can be sent that the other side would refuse. Integers are little-endian. */
#include "net/sd_wire.h"
#include "core/sd_error.h"

#include <string.h>

/* ---- little-endian fields ---- */

struct sd_reader {
    const uint8_t *p;
    size_t left;
    int is_bad;
};

static const uint8_t *sd__take(struct sd_reader *r, size_t n)
{
    const uint8_t *p = r->p;

    if (r->is_bad || r->left < n) {
        r->is_bad = 1;
        return NULL;
    }
    r->p += n;
    r->left -= n;
    return p;
}

static uint64_t sd__uint(struct sd_reader *r, size_t n)
{
    const uint8_t *p = sd__take(r, n);
    uint64_t v = 0;

    for (size_t i = 0; p != NULL && i < n; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

static void sd__put_uint(struct sd_buf *out, uint64_t v, size_t n)
{
    uint8_t b[8];

    for (size_t i = 0; i < n; i++) {
        b[i] = (uint8_t)(v >> (8 * i));
    }
    sd_buf_append(out, b, n);
}

/* A node id: 1..SD_WIRE_MAX_ID bytes of [A-Za-z0-9._-]. */
static int sd__is_node_id(const char *s, size_t len)
{
    if (len == 0 || len > SD_WIRE_MAX_ID) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

/* Reads "u16 len + bytes" into *s and *len (bounded by max). */
static void sd__text(struct sd_reader *r, size_t max, const char **s, size_t *len)
{
    size_t n = (size_t)sd__uint(r, 2);
    const uint8_t *p;

    if (n > max) {
        r->is_bad = 1;
    }
    p = sd__take(r, n);
    *s = (const char *)p;
    *len = p != NULL ? n : 0;
}

/* ---- payloads ---- */

static int sd__decode_payload(struct sd_reader *r, struct sd_wire_msg *m)
{
    switch (m->type) {
    case SD_WIRE_HELLO:
        m->version_min = (uint16_t)sd__uint(r, 2);
        m->version_max = (uint16_t)sd__uint(r, 2);
        sd__text(r, SD_WIRE_MAX_ID, &m->text, &m->text_len);
        return m->version_min >= 1 && m->version_min <= m->version_max &&
               sd__is_node_id(m->text, m->text_len);
    case SD_WIRE_WELCOME:
        m->version = (uint16_t)sd__uint(r, 2);
        m->max_frame = (uint32_t)sd__uint(r, 4);
        m->window = (uint32_t)sd__uint(r, 4);
        sd__text(r, SD_WIRE_MAX_ID, &m->text, &m->text_len);
        return m->version >= 1 && m->max_frame >= 1024 && m->max_frame <= SD_WIRE_MAX_FRAME &&
               m->window >= m->max_frame && sd__is_node_id(m->text, m->text_len);
    case SD_WIRE_OPEN:
        sd__text(r, SD_WIRE_MAX_KEY, &m->text, &m->text_len);
        m->json_len = r->left;
        m->json = (const char *)sd__take(r, r->left);
        return m->text_len > 0 && memchr(m->text, '\0', m->text_len) == NULL && m->json_len > 0;
    case SD_WIRE_OPENED:
    case SD_WIRE_SYNC:
    case SD_WIRE_PING:
    case SD_WIRE_PONG:
        m->seq = sd__uint(r, 8);
        return 1;
    case SD_WIRE_APPEND:
        m->seq = sd__uint(r, 8);
        m->records = (uint32_t)sd__uint(r, 4);
        m->rows_len = r->left;
        m->rows = sd__take(r, r->left);
        return m->records > 0 && m->rows_len > 0;
    case SD_WIRE_SYNCED:
        m->seq = sd__uint(r, 8);
        m->rc = (int32_t)(uint32_t)sd__uint(r, 4);
        return m->rc <= 0;
    case SD_WIRE_CLOSED:
        m->seq = sd__uint(r, 8);
        m->rc = (int32_t)(uint32_t)sd__uint(r, 4);
        for (int i = 0; i < 3; i++) {
            m->stats[i] = sd__uint(r, 8);
        }
        return m->rc <= 0;
    case SD_WIRE_CLOSE:
    case SD_WIRE_DRAIN:
        return 1;
    case SD_WIRE_ERROR:
        m->rc = (int32_t)(uint32_t)sd__uint(r, 4);
        sd__text(r, SD_WIRE_MAX_MESSAGE, &m->text, &m->text_len);
        return m->rc < 0;
    default:
        return 0;
    }
}

/* 1 if a frame of type may (must) name a file: 1 must, 0 must not, -1 either. */
static int sd__names_file(uint8_t type)
{
    switch (type) {
    case SD_WIRE_HELLO:
    case SD_WIRE_WELCOME:
    case SD_WIRE_PING:
    case SD_WIRE_PONG:
    case SD_WIRE_DRAIN:
        return 0;
    case SD_WIRE_ERROR:
        return -1;
    default:
        return 1;
    }
}

int sd_wire_decode(const uint8_t *buf, size_t len, size_t max_frame, struct sd_wire_msg *out,
                   size_t *used)
{
    struct sd_reader h = {buf, len, 0}, r;
    uint32_t length;
    uint16_t reserved;
    int names;

    if (len < SD_WIRE_HEADER) {
        return 0;
    }
    memset(out, 0, sizeof(*out));
    length = (uint32_t)sd__uint(&h, 4);
    out->type = (uint8_t)sd__uint(&h, 1);
    out->flags = (uint8_t)sd__uint(&h, 1);
    reserved = (uint16_t)sd__uint(&h, 2);
    out->file = (uint32_t)sd__uint(&h, 4);
    names = sd__names_file(out->type);
    if (length > max_frame || length > SD_WIRE_MAX_FRAME || reserved != 0 || out->type == 0 ||
        out->type > SD_WIRE_ERROR ||
        (out->flags & ~(out->type == SD_WIRE_APPEND ? SD_WIRE_FLAG_ALIGNED : 0)) != 0 ||
        (names == 1 && out->file == 0) || (names == 0 && out->file != 0)) {
        return SD_EINVAL; /* decided from the header alone: never wait for such a payload */
    }
    if (len - SD_WIRE_HEADER < length) {
        return 0;
    }
    r = (struct sd_reader){buf + SD_WIRE_HEADER, length, 0};
    if (!sd__decode_payload(&r, out) || r.is_bad || r.left != 0) {
        return SD_EINVAL;
    }
    *used = SD_WIRE_HEADER + length;
    return 1;
}

static void sd__put_text(struct sd_buf *out, const char *s, size_t len)
{
    sd__put_uint(out, len, 2);
    sd_buf_append(out, s, len);
}

int sd_wire_encode(struct sd_buf *out, const struct sd_wire_msg *m)
{
    size_t start = out->len, used = 0;
    struct sd_wire_msg check;

    if (m->text_len > 0xffff) {
        return SD_EINVAL; /* would not fit its u16 length */
    }
    sd__put_uint(out, 0, 4); /* length, set below */
    sd__put_uint(out, m->type, 1);
    sd__put_uint(out, m->flags, 1);
    sd__put_uint(out, 0, 2);
    sd__put_uint(out, m->file, 4);
    switch (m->type) {
    case SD_WIRE_HELLO:
        sd__put_uint(out, m->version_min, 2);
        sd__put_uint(out, m->version_max, 2);
        sd__put_text(out, m->text, m->text_len);
        break;
    case SD_WIRE_WELCOME:
        sd__put_uint(out, m->version, 2);
        sd__put_uint(out, m->max_frame, 4);
        sd__put_uint(out, m->window, 4);
        sd__put_text(out, m->text, m->text_len);
        break;
    case SD_WIRE_OPEN:
        sd__put_text(out, m->text, m->text_len);
        sd_buf_append(out, m->json, m->json_len);
        break;
    case SD_WIRE_OPENED:
    case SD_WIRE_SYNC:
    case SD_WIRE_PING:
    case SD_WIRE_PONG:
        sd__put_uint(out, m->seq, 8);
        break;
    case SD_WIRE_APPEND:
        sd__put_uint(out, m->seq, 8);
        sd__put_uint(out, m->records, 4);
        sd_buf_append(out, m->rows, m->rows_len);
        break;
    case SD_WIRE_SYNCED:
    case SD_WIRE_CLOSED:
        sd__put_uint(out, m->seq, 8);
        sd__put_uint(out, (uint32_t)m->rc, 4);
        for (int i = 0; m->type == SD_WIRE_CLOSED && i < 3; i++) {
            sd__put_uint(out, m->stats[i], 8);
        }
        break;
    case SD_WIRE_ERROR:
        sd__put_uint(out, (uint32_t)m->rc, 4);
        sd__put_text(out, m->text, m->text_len);
        break;
    default: /* CLOSE, DRAIN: no payload; an unknown type fails the check below */
        break;
    }
    if (out->len - start - SD_WIRE_HEADER <= UINT32_MAX) {
        uint32_t length = (uint32_t)(out->len - start - SD_WIRE_HEADER);
        for (int i = 0; i < 4; i++) {
            ((uint8_t *)out->data)[start + (size_t)i] = (uint8_t)(length >> (8 * i));
        }
    }
    if (sd_wire_decode((const uint8_t *)out->data + start, out->len - start, SD_WIRE_MAX_FRAME,
                       &check, &used) != 1 ||
        used != out->len - start) {
        out->len = start;
        return SD_EINVAL;
    }
    return 0;
}
