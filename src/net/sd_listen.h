/* sd_listen.h: "host:port" addresses: splitting one, and a listening TCP socket on one (the HTTP
 * loops' listeners and the writer's listener for source nodes). */
#ifndef SD_LISTEN_H
#define SD_LISTEN_H

#include <stddef.h>

/* Splits "host:port", "[v6]:port" or ":port" into host (brackets removed; "" for none) and port.
 * Returns 0, or SD_EINVAL when there is no port or a part does not fit. */
int sd_addr_split(const char *addr, char *host, size_t host_len, char *port, size_t port_len);

/* Binds and listens on addr ("host:port", "[v6]:port", ":port" or "0.0.0.0:port" for every
 * address; port 0 = a free one), non-blocking, close-on-exec, SO_REUSEADDR. Returns the fd with
 * *port (the bound port) and shown (the bound host as clients write it, "127.0.0.1" for a
 * wildcard; *is_wildcard says which), or SD_EINVAL (bad address) / -errno. */
int sd_listen_tcp(const char *addr, int *port, char *shown, size_t shown_len, int *is_wildcard);

#endif
