/* sd_listen.c: "host:port" addresses and listening sockets on them (see sd_listen.h). */
#include "net/sd_listen.h"
#include "core/sd_error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int sd_addr_split(const char *addr, char *host, size_t host_len, char *port, size_t port_len)
{
    const char *colon = strrchr(addr, ':');
    size_t n;

    if (colon == NULL || (size_t)(colon - addr) >= host_len || strlen(colon + 1) == 0 ||
        strlen(colon + 1) >= port_len) {
        return SD_EINVAL;
    }
    n = (size_t)(colon - addr);
    if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']') {
        addr++;
        n -= 2;
    }
    memcpy(host, addr, n);
    host[n] = '\0';
    snprintf(port, port_len, "%s", colon + 1);
    return 0;
}

int sd_listen_tcp(const char *addr, int *port, char *shown, size_t shown_len, int *is_wildcard)
{
    struct addrinfo hints, *res = NULL;
    struct sockaddr_storage bound;
    socklen_t bound_len = sizeof(bound);
    char host[256], port_text[16], text[INET6_ADDRSTRLEN + 2];
    int fd = -1, one = 1, rc;

    if (sd_addr_split(addr, host, sizeof(host), port_text, sizeof(port_text)) != 0) {
        return SD_EINVAL;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (getaddrinfo(host[0] ? host : NULL, port_text, &hints, &res) != 0 || res == NULL) {
        return SD_EINVAL;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        rc = -errno;
        goto fail;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 4096) != 0 ||
        getsockname(fd, (struct sockaddr *)&bound, &bound_len) != 0) {
        rc = -errno;
        goto fail;
    }
    if (bound.ss_family == AF_INET6) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&bound;
        *port = ntohs(a6->sin6_port);
        *is_wildcard = IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr);
        inet_ntop(AF_INET6, &a6->sin6_addr, text + 1, sizeof(text) - 2);
        text[0] = '[';
        strcat(text, "]");
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&bound;
        *port = ntohs(a4->sin_port);
        *is_wildcard = a4->sin_addr.s_addr == htonl(INADDR_ANY);
        inet_ntop(AF_INET, &a4->sin_addr, text, sizeof(text));
    }
    snprintf(shown, shown_len, "%s", *is_wildcard ? "127.0.0.1" : text);
    freeaddrinfo(res);
    return fd;

fail:
    if (fd >= 0) {
        close(fd);
    }
    freeaddrinfo(res);
    return rc;
}
