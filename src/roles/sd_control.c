/* sd_control.c: the control socket of a running streamd (token commands) and its client.
 *
 * DESIGN: one thread of its own accepts on a unix stream socket and serves one connection at a
 * time: it checks the peer's uid, reads one request line within SD_CONTROL_TIMEOUT_MS (longer
 * lines, bad JSON and unknown commands get a badRequest answer), runs it on the state store
 * (sd_control_exec, thread-safe like the store) and writes the answer. A connection that stalls
 * delays the next one by at most the timeout; nothing a client sends can stop the thread. The
 * thread waits in poll() on the socket and an eventfd that sd_control_stop signals. The socket
 * is bound under a temporary name, given mode 0600 and renamed into place, so it is never
 * reachable with a wider mode. New tokens are written to the peer only, never logged. */
#include "roles/sd_control.h"
#include "api/sd_auth.h"
#include "core/sd_alloc.h"
#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "core/sd_log.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct sd_control {
    struct sd_state *st;
    int listen_fd;
    int stop_fd; /* eventfd: readable once sd_control_stop was called */
    pthread_t thread;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* ---- requests ---- */

static json_t *sd__control_error(const char *code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static json_t *sd__control_error(const char *code, const char *fmt, ...)
{
    char message[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    return json_pack("{s:s, s:s}", "error", code, "message", message);
}

static json_t *sd__control_record(const struct sd_auth_token *t)
{
    return json_pack("{s:s, s:I, s:b, s:b, s:s, s:s}", "id", t->id, "projectId",
                     (json_int_t)t->project_id, "isAdmin", t->is_admin, "isMaster", t->is_master,
                     "description", t->description, "created", t->created);
}

/* Reads the integer key of req into *out (absent: keeps *out). Returns 0, or -1 if it is not an
 * integer in [min, INT64_MAX]. */
static int sd__control_int(const json_t *req, const char *key, int64_t min, int64_t *out)
{
    const json_t *v = json_object_get(req, key);

    if (v == NULL) {
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min) {
        return -1;
    }
    *out = (int64_t)json_integer_value(v);
    return 0;
}

/* Reads the boolean key of req into *out (absent: keeps *out). Returns 0, or -1 if not a bool. */
static int sd__control_bool(const json_t *req, const char *key, int *out)
{
    const json_t *v = json_object_get(req, key);

    if (v == NULL) {
        return 0;
    }
    if (!json_is_boolean(v)) {
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

static json_t *sd__control_create(struct sd_state *st, const json_t *req)
{
    char token[SD_AUTH_GENERATED_LEN + 1];
    struct sd_auth_token t;
    int64_t project_id = 0;
    int is_admin = 0, is_master = 1, rc;
    const json_t *desc = json_object_get(req, "description");
    json_t *answer;

    if (sd__control_int(req, "projectId", 1, &project_id) != 0 || project_id == 0) {
        return sd__control_error("badRequest", "projectId must be an integer >= 1");
    }
    if (sd__control_bool(req, "isAdmin", &is_admin) != 0 ||
        sd__control_bool(req, "isMaster", &is_master) != 0) {
        return sd__control_error("badRequest", "isAdmin and isMaster must be true or false");
    }
    if (desc != NULL &&
        (!json_is_string(desc) || json_string_length(desc) >= sizeof(t.description) ||
         strlen(json_string_value(desc)) != json_string_length(desc))) {
        return sd__control_error("badRequest", "description must be a string of at most %zu bytes",
                                 sizeof(t.description) - 1);
    }
    rc = sd_auth_token_create(st, project_id, is_master, is_admin,
                              desc != NULL ? json_string_value(desc) : "", token, &t);
    if (rc != 0) {
        return sd__control_error("internal", "cannot store the token: %s", sd_strerror(rc));
    }
    answer = json_pack("{s:o, s:s}", "token", sd__control_record(&t), "secret", token);
    explicit_bzero(token, sizeof(token));
    sd_log_info("control", "token %s of project %lld created (admin %d, master %d)", t.id,
                (long long)t.project_id, t.is_admin, t.is_master);
    return answer;
}

static json_t *sd__control_list(struct sd_state *st, const json_t *req)
{
    struct sd_auth_token *list = NULL;
    int64_t project_id = 0;
    size_t n = 0;
    json_t *tokens;
    int rc;

    if (sd__control_int(req, "projectId", 0, &project_id) != 0) {
        return sd__control_error("badRequest", "projectId must be an integer >= 0");
    }
    rc = sd_auth_token_list(st, project_id, &list, &n);
    if (rc != 0) {
        return sd__control_error("internal", "cannot read the tokens: %s", sd_strerror(rc));
    }
    tokens = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(tokens, sd__control_record(&list[i]));
    }
    free(list);
    return json_pack("{s:o}", "tokens", tokens);
}

static json_t *sd__control_revoke(struct sd_state *st, const json_t *req)
{
    const json_t *idv = json_object_get(req, "id");
    const char *id = json_string_value(idv);
    struct sd_auth_token t;
    int rc;

    if (id == NULL || id[0] == '\0' || strspn(id, "0123456789") != strlen(id) ||
        strlen(id) != json_string_length(idv) || strlen(id) >= sizeof(t.id)) {
        return sd__control_error("badRequest", "id must be a token id (digits, see list)");
    }
    rc = sd_auth_token_revoke(st, id, &t);
    if (rc == SD_ENOTFOUND) {
        return sd__control_error("notFound", "no token with id %s", id);
    }
    if (rc != 0) {
        return sd__control_error("internal", "cannot revoke token %s: %s", id, sd_strerror(rc));
    }
    sd_log_info("control", "token %s of project %lld revoked", t.id, (long long)t.project_id);
    return json_pack("{s:o}", "token", sd__control_record(&t));
}

json_t *sd_control_exec(struct sd_state *st, const json_t *request)
{
    const char *cmd = json_string_value(json_object_get(request, "cmd"));

    if (!json_is_object(request)) {
        return sd__control_error("badRequest", "a request is a JSON object");
    }
    if (cmd == NULL) {
        return sd__control_error("badRequest", "the request has no \"cmd\" string");
    }
    if (strcmp(cmd, "token.create") == 0) {
        return sd__control_create(st, request);
    }
    if (strcmp(cmd, "token.list") == 0) {
        return sd__control_list(st, request);
    }
    if (strcmp(cmd, "token.revoke") == 0) {
        return sd__control_revoke(st, request);
    }
    return sd__control_error("badRequest", "unknown cmd (token.create, token.list, token.revoke)");
}

/* ---- transport ---- */

/* Writes <data_dir>/<name> into out. Returns 0, or SD_EINVAL if it does not fit. */
static int sd__control_path(const char *data_dir, const char *name, char *out, size_t len)
{
    int n = snprintf(out, len, "%s/%s", data_dir, name);

    return n < 0 || (size_t)n >= len ? SD_EINVAL : 0;
}

/* Sets both socket timeouts of fd to ms. */
static void sd__control_timeouts(int fd, int64_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Reads one line (without its "\n"; EOF also ends it) of at most max bytes into out. Returns 0,
 * SD_ELIMIT when longer, or -errno (-EAGAIN on the timeout). */
static int sd__control_read_line(int fd, size_t max, struct sd_buf *out)
{
    char chunk[4096];
    char *nl;
    ssize_t n;

    for (;;) {
        n = recv(fd, chunk, sizeof(chunk), 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        if (n == 0) {
            return 0;
        }
        nl = memchr(chunk, '\n', (size_t)n);
        if (out->len + (size_t)(nl != NULL ? nl - chunk : n) > max) {
            return SD_ELIMIT;
        }
        if (sd_buf_append(out, chunk, nl != NULL ? (size_t)(nl - chunk) : (size_t)n) != 0) {
            return -ENOMEM;
        }
        if (nl != NULL) {
            return 0;
        }
    }
}

/* Writes json (borrowed) and "\n" to fd. Returns 0 or -errno. */
static int sd__control_write(int fd, const json_t *json)
{
    char *text = json_dumps(json, JSON_COMPACT | JSON_PRESERVE_ORDER);
    size_t len, off = 0;
    ssize_t n;
    int rc = 0;

    if (text == NULL) {
        return -ENOMEM;
    }
    len = strlen(text);
    text[len++] = '\n'; /* replaces the NUL: json_dumps' text is not used as a string below */
    while (off < len) {
        n = send(fd, text + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = -errno;
            break;
        }
        off += (size_t)n;
    }
    explicit_bzero(text, len); /* may hold a new token */
    free(text);
    return rc;
}

/* Closing with unread input would reset the connection and the peer could lose the answer
 * (an over-long request): shut the write side, then discard input until EOF, the timeout or
 * 1 MB. */
static void sd__control_linger(int fd)
{
    char chunk[4096];
    size_t total = 0;
    ssize_t n;

    shutdown(fd, SHUT_WR);
    while (total < 1024 * 1024 && (n = recv(fd, chunk, sizeof(chunk), 0)) != 0) {
        if (n < 0 && errno != EINTR) {
            break;
        }
        total += n > 0 ? (size_t)n : 0;
    }
}

/* Answers one connection of the server. */
static void sd__control_serve(struct sd_control *c, int fd)
{
    struct sd_buf line = SD_BUF_INIT;
    struct ucred cred;
    socklen_t cred_len = sizeof(cred);
    json_error_t jerr;
    json_t *req = NULL, *answer;
    int rc;

    sd__control_timeouts(fd, SD_CONTROL_TIMEOUT_MS);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) != 0 ||
        (cred.uid != geteuid() && cred.uid != 0)) {
        answer = sd__control_error("forbidden", "only the server's user or root may use this");
    } else if ((rc = sd__control_read_line(fd, SD_CONTROL_MAX_REQUEST, &line)) != 0) {
        answer = sd__control_error("badRequest", "cannot read the request: %s",
                                   rc == SD_ELIMIT ? "longer than 65536 bytes"
                                   : rc == -EAGAIN ? "timed out"
                                                   : sd_strerror(rc));
    } else if ((req = json_loadb(line.data, line.len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
        answer = sd__control_error("badRequest", "the request is not JSON: %s", jerr.text);
    } else {
        answer = sd_control_exec(c->st, req);
    }
    if (json_object_get(answer, "error") != NULL) {
        sd_log_warn("control", "refused a request: %s",
                    json_string_value(json_object_get(answer, "message")));
    }
    sd__control_write(fd, answer); /* a peer that left does not matter */
    sd__control_linger(fd);
    json_decref(answer);
    json_decref(req);
    sd_buf_fini(&line);
}

static void *sd__control_main(void *arg)
{
    struct sd_control *c = arg;
    struct pollfd fds[2] = {{.fd = c->listen_fd, .events = POLLIN},
                            {.fd = c->stop_fd, .events = POLLIN}};
    int fd;

    pthread_setname_np(pthread_self(), "sd-control");
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            sd_log_error("control", "poll: %s: token commands need the server stopped now",
                         sd_strerror(-errno));
            break;
        }
        if (fds[1].revents != 0) {
            break;
        }
        fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                poll(NULL, 0, 100); /* no descriptor now: the connection waits in the backlog */
            }
            continue;
        }
        sd__control_serve(c, fd);
        close(fd);
    }
    return NULL;
}

int sd_control_start(struct sd_state *st, const char *data_dir, struct sd_control **out)
{
    struct sd_control *c = sd_xcalloc(1, sizeof(*c));
    struct sockaddr_un addr;
    int rc;

    c->listen_fd = c->stop_fd = -1;
    c->st = st;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    if ((rc = sd__control_path(data_dir, SD_CONTROL_SOCKET, c->path, sizeof(c->path))) != 0 ||
        (rc = sd__control_path(data_dir, "." SD_CONTROL_SOCKET ".tmp", addr.sun_path,
                               sizeof(addr.sun_path))) != 0) {
        goto fail;
    }
    c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    c->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (c->listen_fd < 0 || c->stop_fd < 0) {
        rc = -errno;
        goto fail;
    }
    unlink(addr.sun_path); /* left by a server killed while starting */
    if (bind(c->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        chmod(addr.sun_path, 0600) != 0 || listen(c->listen_fd, 16) != 0 ||
        rename(addr.sun_path, c->path) != 0) {
        rc = -errno;
        unlink(addr.sun_path);
        goto fail;
    }
    rc = -pthread_create(&c->thread, NULL, sd__control_main, c);
    if (rc != 0) {
        unlink(c->path);
        goto fail;
    }
    *out = c;
    return 0;

fail:
    if (c->listen_fd >= 0) {
        close(c->listen_fd);
    }
    if (c->stop_fd >= 0) {
        close(c->stop_fd);
    }
    free(c);
    return rc;
}

void sd_control_stop(struct sd_control *c)
{
    uint64_t one = 1;

    if (c == NULL) {
        return;
    }
    if (write(c->stop_fd, &one, sizeof(one)) != (ssize_t)sizeof(one)) {
        sd_log_error("control", "cannot stop the control thread: %s", sd_strerror(-errno));
    }
    pthread_join(c->thread, NULL);
    unlink(c->path);
    close(c->listen_fd);
    close(c->stop_fd);
    free(c);
}

int sd_control_call(const char *data_dir, const json_t *request, json_t **answer)
{
    struct sockaddr_un addr;
    struct sd_buf line = SD_BUF_INIT;
    int fd = -1, rc;

    *answer = NULL;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    rc = sd__control_path(data_dir, SD_CONTROL_SOCKET, addr.sun_path, sizeof(addr.sun_path));
    if (rc != 0) {
        return rc;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    /* the server may be busy with another client for up to its own timeout */
    sd__control_timeouts(fd, 6 * SD_CONTROL_TIMEOUT_MS);
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        rc = -errno;
        goto out;
    }
    if ((rc = sd__control_write(fd, request)) != 0 ||
        (rc = sd__control_read_line(fd, SIZE_MAX / 2, &line)) != 0) {
        goto out;
    }
    *answer = json_loadb(line.data, line.len, 0, NULL);
    rc = json_is_object(*answer) ? 0 : SD_EPARSE;
    if (rc != 0) {
        json_decref(*answer);
        *answer = NULL;
    }

out:
    if (line.data != NULL) {
        explicit_bzero(line.data, line.len); /* may hold a new token */
    }
    sd_buf_fini(&line);
    close(fd);
    return rc;
}
