/* sd_listen.h: a listening TCP socket from a "host:port" address (the HTTP loops' listeners and
 * the writer's listener for source nodes). */
#ifndef SD_LISTEN_H
#define SD_LISTEN_H

#include <stddef.h>

/* Binds and listens on addr ("host:port", "[v6]:port", ":port" or "0.0.0.0:port" for every
 * address; port 0 = a free one), non-blocking, close-on-exec, SO_REUSEADDR. Returns the fd with
 * *port (the bound port) and shown (the bound host as clients write it, "127.0.0.1" for a
 * wildcard; *is_wildcard says which), or SD_EINVAL (bad address) / -errno. */
int sd_listen_tcp(const char *addr, int *port, char *shown, size_t shown_len, int *is_wildcard);

#endif
