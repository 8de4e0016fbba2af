/* sd_listen.c: a listening TCP socket from a "host:port" address (see sd_listen.h). */
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

int sd_listen_tcp(const char *addr, int *port, char *shown, size_t shown_len, int *is_wildcard)
{
    struct addrinfo hints, *res = NULL;
    struct sockaddr_storage bound;
    socklen_t bound_len = sizeof(bound);
    char host[256], port_text[16], text[INET6_ADDRSTRLEN + 2];
    const char *colon = strrchr(addr, ':');
    int fd = -1, one = 1, rc;

    if (colon == NULL || (size_t)(colon - addr) >= sizeof(host) || strlen(colon + 1) == 0 ||
        strlen(colon + 1) >= sizeof(port_text)) {
        return SD_EINVAL;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    snprintf(port_text, sizeof(port_text), "%s", colon + 1);
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
