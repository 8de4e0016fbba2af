/* sd_wire.h: the frames of the source -> writer protocol (docs/PROTOCOL.md): one decoder that
 * checks every header field and payload before anything uses it, and one encoder, both pure (no
 * I/O, no allocation but the output buffer). A frame that does not decode is malformed: the
 * connection that sent it is closed, nothing else. */
#ifndef SD_WIRE_H
#define SD_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "core/sd_buf.h"

#define SD_WIRE_VERSION 1
#define SD_WIRE_HEADER 12
/* The largest payload (a handshake may agree on less, streamd's writers the window): one
 * APPEND carries a round's rows of a sink (each row up to the mapping's 1.5 MiB). A reader's
 * buffer grows to it only while such a frame arrives. */
#define SD_WIRE_MAX_FRAME (16 * 1024 * 1024 + 64)
#define SD_WIRE_MAX_ID 128        /* node id bytes */
#define SD_WIRE_MAX_KEY 1024      /* slice key bytes */
#define SD_WIRE_MAX_MESSAGE 1024  /* ERROR message bytes */
#define SD_WIRE_FLAG_ALIGNED 0x01 /* APPEND: the rows end at a record boundary */

enum sd_wire_type {
    SD_WIRE_HELLO = 1,
    SD_WIRE_WELCOME = 2,
    SD_WIRE_OPEN = 3,
    SD_WIRE_OPENED = 4,
    SD_WIRE_APPEND = 5,
    SD_WIRE_SYNC = 6,
    SD_WIRE_SYNCED = 7,
    SD_WIRE_CLOSE = 8,
    SD_WIRE_CLOSED = 9,
    SD_WIRE_PING = 10,
    SD_WIRE_PONG = 11,
    SD_WIRE_DRAIN = 12,
    SD_WIRE_ERROR = 13,
};

/* Error codes of ERROR frames and negative rc of SYNCED/CLOSED. */
enum sd_wire_code {
    SD_WIRE_E_MALFORMED = -1,
    SD_WIRE_E_UNKNOWN_FILE = -2,
    SD_WIRE_E_OPEN = -3,
    SD_WIRE_E_VERSION = -4,
    SD_WIRE_E_DRAINING = -5,
    SD_WIRE_E_WRITE = -6,
};

/* One message; which fields mean something depends on type (docs/PROTOCOL.md). Pointers of a
 * decoded message point into the decoded buffer. */
struct sd_wire_msg {
    uint8_t type;
    uint8_t flags;
    uint32_t file;
    uint16_t version_min, version_max; /* HELLO */
    uint16_t version;                  /* WELCOME */
    uint32_t max_frame, window;        /* WELCOME */
    const char *text;                  /* HELLO, WELCOME: node id; OPEN: slice key; ERROR */
    size_t text_len;
    const char *json; /* OPEN: the slice's local storage */
    size_t json_len;
    uint64_t seq;     /* APPEND, SYNC, SYNCED, CLOSED; OPENED: durable records; PING, PONG: token */
    uint32_t records; /* APPEND */
    const uint8_t *rows; /* APPEND */
    size_t rows_len;
    int32_t rc;        /* SYNCED, CLOSED; ERROR: code */
    uint64_t stats[3]; /* CLOSED: records, uncompressed, compressed bytes */
};

/* Decodes the frame at buf[0..len). Returns 1 with *out and *used (its bytes), 0 when buf does
 * not hold a whole frame yet (a header announcing more than max_frame is malformed at once, so
 * a reader never buffers more than max_frame + SD_WIRE_HEADER), or SD_EINVAL when it is
 * malformed (the connection must be closed). max_frame <= SD_WIRE_MAX_FRAME. */
int sd_wire_decode(const uint8_t *buf, size_t len, size_t max_frame, struct sd_wire_msg *out,
                   size_t *used);

/* Appends m as one frame to out. m must be what sd_wire_decode accepts (the caller's values:
 * ids and keys within their limits); returns 0, or SD_EINVAL (nothing appended) if not. */
int sd_wire_encode(struct sd_buf *out, const struct sd_wire_msg *m);

#endif
