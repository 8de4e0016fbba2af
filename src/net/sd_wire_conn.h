/* sd_wire_conn.h: one connection of the source -> writer protocol (docs/PROTOCOL.md) over a
 * connected stream socket: a reader thread that decodes frames (sd_wire) and hands each to the
 * owner, and a sender thread that writes what any thread queued, so no caller ever blocks on the
 * socket. Keep-alive: a PING after keepalive_ms without sending, PINGs answered with PONG here,
 * and the connection closed after idle_timeout_ms without receiving anything. A malformed frame,
 * an I/O error, the peer's close or the idle timeout close this connection only: on_close is
 * called exactly once and no frame is delivered after it. */
#ifndef SD_WIRE_CONN_H
#define SD_WIRE_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "net/sd_wire.h"

struct sd_wire_conn;

struct sd_wire_conn_opts {
    size_t max_frame;        /* bound of the decoder (<= SD_WIRE_MAX_FRAME; 0 = that) */
    int64_t keepalive_ms;    /* PING after this long without sending anything; 0 = never */
    int64_t idle_timeout_ms; /* close after this long without receiving anything; 0 = never */
    /* From the reader thread, one frame at a time; m and its pointers are valid during the call
     * only. PING and PONG are handled here and never delivered. May call sd_wire_conn_send and
     * sd_wire_conn_shutdown, never sd_wire_conn_free. */
    void (*on_frame)(void *arg, struct sd_wire_conn *c, const struct sd_wire_msg *m);
    /* Once, from the reader thread, when the connection is over: reason 0 = the peer closed or
     * sd_wire_conn_shutdown was called, SD_EINVAL = a malformed frame came, -ETIMEDOUT = idle,
     * -errno = an I/O error. Sends fail with SD_ECLOSED from then on. */
    void (*on_close)(void *arg, struct sd_wire_conn *c, int reason);
    void *arg;
};

/* Takes the connected socket fd (closed by sd_wire_conn_free, also on failure) and starts the
 * reader and sender threads. opts is copied. Returns 0 with *out, or -errno. */
int sd_wire_conn_start(int fd, const struct sd_wire_conn_opts *opts, struct sd_wire_conn **out);

/* Queues m as one frame (sd_wire_encode) from any thread without waiting for the socket.
 * Returns 0, SD_EINVAL (m does not encode; nothing queued) or SD_ECLOSED (the connection is
 * over or shutting down). */
int sd_wire_conn_send(struct sd_wire_conn *c, const struct sd_wire_msg *m);

/* Queues m like sd_wire_conn_send but lets the sender sleep until sd_wire_conn_flush (or its
 * next keep-alive), so a burst of frames costs one wake-up and one write. */
int sd_wire_conn_queue(struct sd_wire_conn *c, const struct sd_wire_msg *m);

/* Wakes the sender for what sd_wire_conn_queue left queued. Any thread. */
void sd_wire_conn_flush(struct sd_wire_conn *c);

/* Bytes queued and not yet written to the socket (for the callers' flow control). */
size_t sd_wire_conn_queued(struct sd_wire_conn *c);

/* Changes the decoder's bound (after a handshake agreed on one). Reader thread only. */
void sd_wire_conn_set_max_frame(struct sd_wire_conn *c, size_t max_frame);

/* Writes what is queued (at most linger_ms), then ends the connection: the reader sees the end
 * and calls on_close (reason 0). Any thread, also from the callbacks (linger_ms is then ignored:
 * no wait). Idempotent. */
void sd_wire_conn_shutdown(struct sd_wire_conn *c, int64_t linger_ms);

/* Shuts the connection down if it is not over yet, joins its threads (on_close has been called
 * when this returns), closes the socket and frees c. Never from the callbacks. */
void sd_wire_conn_free(struct sd_wire_conn *c);

#endif
