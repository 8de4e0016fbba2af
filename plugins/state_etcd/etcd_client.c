/* etcd_client.c: endpoints, failover, authentication and unary calls of the etcd backend.
 *
 * DESIGN: one mutex guards the few mutable fields (current endpoint, token, the pool of idle
 * curl handles, health); requests run outside it, each on its own easy handle taken from the
 * pool, so calls are concurrent and reuse their connections. Every request carries
 * "Grpc-Metadata-hasleader: true" so that a member without quorum answers 503 at once instead
 * of hanging (CAVEATS.md). Only a request that surely was not applied (connect error, 503) is
 * sent again, to the next endpoint; one that timed out after sending is not (its outcome is
 * unknown), but the calls after it start at the next endpoint. An expired token (Unauthenticated)
 * is renewed once per call. */
#include "state_etcd/etcd_client.h"

#include "core/sd_alloc.h"
#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "core/sd_health.h"
#include "core/sd_log.h"
#include "state_etcd/etcd_codec.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define ETCD_POOL_MAX 8
/* Largest answer kept: a range of the biggest values etcd accepts, base64-encoded. */
#define ETCD_RESP_MAX (64 * 1024 * 1024)
#define ETCD_HEALTH "state"

struct etcd_client {
    char **endpoints; /* "http://host:port", no trailing '/' */
    size_t nendpoints;
    char *ns;
    char *username, *password;
    int64_t connect_timeout_ms, silence_ms, keepalive_interval_ms;
    int debug_log;
    pthread_mutex_t mu;
    size_t cur;
    char *token; /* "" = none */
    CURL *pool[ETCD_POOL_MAX];
    size_t npool;
    struct sd_health *health;
    int unhealthy;
    struct sd_log_limit log_limit;
};

static pthread_once_t etcd_curl_once = PTHREAD_ONCE_INIT;

static void etcd_curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Splits the comma-separated list; adds "http://" where no scheme is given. */
static int client_parse_endpoints(struct etcd_client *c, const char *list)
{
    const char *p = list != NULL ? list : "";

    while (*p != '\0') {
        const char *e = strchr(p, ',');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        struct sd_buf b;

        while (len > 0 && (*p == ' ')) {
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '/')) {
            len--;
        }
        if (len > 0) {
            sd_buf_init(&b);
            if (memmem(p, len, "://", 3) == NULL) {
                sd_buf_append_str(&b, "http://");
            }
            sd_buf_append(&b, p, len);
            c->endpoints = sd_xrealloc(c->endpoints, (c->nendpoints + 1) * sizeof(char *));
            c->endpoints[c->nendpoints++] = sd_buf_steal(&b);
        }
        p = e != NULL ? e + 1 : p + strlen(p);
    }
    return c->nendpoints > 0 ? 0 : SD_EINVAL;
}

const char *etcd_client_ns(const struct etcd_client *c)
{
    return c->ns;
}

int64_t etcd_client_silence_ms(const struct etcd_client *c)
{
    return c->silence_ms;
}

void etcd_client_set_health(struct etcd_client *c, struct sd_health *h)
{
    pthread_mutex_lock(&c->mu);
    c->health = h;
    pthread_mutex_unlock(&c->mu);
}

/* Records the outcome of a request for the health report and the log. */
static void client_note(struct etcd_client *c, int rc, const char *endpoint, const char *why)
{
    int64_t suppressed = 0;

    pthread_mutex_lock(&c->mu);
    if (rc == SD_EUNHEALTHY || rc == -ETIMEDOUT) {
        if (c->health != NULL) {
            char reason[300];
            snprintf(reason, sizeof(reason), "etcd at %s: %s", endpoint, why);
            sd_health_set(c->health, ETCD_HEALTH, reason);
        }
        c->unhealthy = 1;
        if (sd_log_limit_pass(&c->log_limit, 5000, &suppressed)) {
            sd_log_warn("state", "etcd at %s: %s (%lld similar messages suppressed)", endpoint, why,
                        (long long)suppressed);
        }
    } else if (c->unhealthy) {
        c->unhealthy = 0;
        if (c->health != NULL) {
            sd_health_clear(c->health, ETCD_HEALTH);
        }
        sd_log_info("state", "etcd at %s answers again", endpoint);
    }
    pthread_mutex_unlock(&c->mu);
}

/* Builds the headers of a request (with the current token unless no_auth). */
static struct curl_slist *client_headers(struct etcd_client *c, int no_auth)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    struct sd_buf b;

    h = curl_slist_append(h, "Grpc-Metadata-hasleader: true");
    pthread_mutex_lock(&c->mu);
    if (!no_auth && c->token[0] != '\0') {
        sd_buf_init(&b);
        sd_buf_printf(&b, "Authorization: %s", c->token);
        h = curl_slist_append(h, sd_buf_cstr(&b));
        sd_buf_fini(&b);
    }
    pthread_mutex_unlock(&c->mu);
    return h;
}

static void client_setup(struct etcd_client *c, CURL *easy, const char *endpoint, const char *path,
                         const char *body, struct curl_slist *hdrs)
{
    struct sd_buf url;

    sd_buf_init(&url);
    sd_buf_printf(&url, "%s%s", endpoint, path);
    curl_easy_setopt(easy, CURLOPT_URL, sd_buf_cstr(&url));
    sd_buf_fini(&url);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPIDLE, (long)(c->keepalive_interval_ms + 999) / 1000);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPINTVL, (long)(c->keepalive_interval_ms + 999) / 1000);
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, hdrs);
}

static size_t client_write(char *p, size_t size, size_t n, void *arg)
{
    struct sd_buf *b = arg;

    (void)size;
    if (b->len + n > ETCD_RESP_MAX || sd_buf_append(b, p, n) != 0) {
        return 0;
    }
    return n;
}

/* One attempt at one endpoint. Sets *status (0 without an answer) and fills resp. Returns 0,
 * SD_EUNHEALTHY (not sent: try the next endpoint) or -ETIMEDOUT (sent, no answer). */
static int client_perform(struct etcd_client *c, size_t ep, const char *path, const char *body,
                          int no_auth, long *status, struct sd_buf *resp, const char **why)
{
    struct curl_slist *hdrs = client_headers(c, no_auth);
    CURL *easy = NULL;
    CURLcode cc;
    int rc = 0;

    pthread_mutex_lock(&c->mu);
    if (c->npool > 0) {
        easy = c->pool[--c->npool];
    }
    pthread_mutex_unlock(&c->mu);
    if (easy == NULL) {
        easy = curl_easy_init();
    } else {
        curl_easy_reset(easy);
    }
    client_setup(c, easy, c->endpoints[ep], path, body, hdrs);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)c->connect_timeout_ms);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, client_write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, resp);
    *status = 0;
    cc = curl_easy_perform(easy);
    if (cc == CURLE_OK) {
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, status);
    } else if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
               cc == CURLE_COULDNT_RESOLVE_PROXY) {
        rc = SD_EUNHEALTHY;
        *why = curl_easy_strerror(cc);
    } else {
        double connect_s = 0;
        curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME, &connect_s);
        /* a timeout before the connection was made: nothing was sent */
        rc = (cc == CURLE_OPERATION_TIMEDOUT && connect_s <= 0) ? SD_EUNHEALTHY : -ETIMEDOUT;
        *why = curl_easy_strerror(cc);
    }
    pthread_mutex_lock(&c->mu);
    if (c->npool < ETCD_POOL_MAX) {
        c->pool[c->npool++] = easy;
        easy = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    curl_easy_cleanup(easy);
    curl_slist_free_all(hdrs);
    return rc;
}

/* Sends body to path, trying every endpoint once from the current one. */
static int client_call_once(struct etcd_client *c, const char *path, const char *body, int no_auth,
                            json_t **resp)
{
    struct sd_buf out;
    const char *why = "no endpoint";
    const char *msg;
    size_t start, ep = 0;
    long status = 0;
    int rc = SD_EUNHEALTHY, code;

    *resp = NULL;
    sd_buf_init(&out);
    pthread_mutex_lock(&c->mu);
    start = c->cur;
    pthread_mutex_unlock(&c->mu);
    for (size_t i = 0; i < c->nendpoints; i++) {
        ep = (start + i) % c->nendpoints;
        sd_buf_reset(&out);
        rc = client_perform(c, ep, path, body, no_auth, &status, &out, &why);
        if (rc == 0 && status == 503) {
            rc = SD_EUNHEALTHY;
            why = "no leader (503)";
        }
        if (rc != SD_EUNHEALTHY) {
            break;
        }
    }
    if (rc == -ETIMEDOUT) {
        /* a member that accepts but does not answer: later calls start at the next one */
        pthread_mutex_lock(&c->mu);
        if (c->cur == ep) {
            c->cur = (ep + 1) % c->nendpoints;
        }
        pthread_mutex_unlock(&c->mu);
    }
    if (rc == 0) {
        pthread_mutex_lock(&c->mu);
        c->cur = ep;
        pthread_mutex_unlock(&c->mu);
        *resp = json_loadb(out.len > 0 ? out.data : "", out.len, 0, NULL);
        if (status == 200 && json_is_object(*resp)) {
            rc = 0;
        } else if (etcd_parse_error(*resp, &code, &msg)) {
            rc = code == 16 ? -EKEYEXPIRED : etcd_error_rc(code, msg);
            if (c->debug_log || rc == -EPROTO) {
                sd_log_debug("state", "etcd at %s: %s answered %ld: %s", c->endpoints[ep], path,
                             status, msg);
            }
            why = msg;
        } else {
            rc = -EPROTO;
            why = "garbled answer";
        }
        if (rc != 0) {
            json_decref(*resp);
            *resp = NULL;
        }
    }
    client_note(c, rc, c->endpoints[ep], why);
    if (c->debug_log) {
        sd_log_debug("state", "etcd at %s: %s -> %s", c->endpoints[ep], path, sd_strerror(rc));
    }
    sd_buf_fini(&out);
    return rc;
}

/* Gets a new token. Returns 0, -EACCES (refused) or a transport error. */
static int client_authenticate(struct etcd_client *c)
{
    json_t *body = json_pack("{s:s, s:s}", "name", c->username, "password", c->password);
    json_t *resp = NULL;
    const json_t *tok;
    char *text = json_dumps(body, JSON_COMPACT);
    int rc;

    rc = client_call_once(c, "/v3/auth/authenticate", text, 1, &resp);
    tok = json_object_get(resp, "token");
    if (rc == 0 && !json_is_string(tok)) {
        rc = -EPROTO;
    }
    if (rc == 0) {
        pthread_mutex_lock(&c->mu);
        free(c->token);
        c->token = sd_xstrdup(json_string_value(tok));
        pthread_mutex_unlock(&c->mu);
    } else if (rc == -EKEYEXPIRED) {
        rc = -EACCES;
    }
    free(text);
    json_decref(body);
    json_decref(resp);
    return rc;
}

int etcd_client_call(struct etcd_client *c, const char *path, const json_t *body, json_t **resp)
{
    char *text = json_dumps(body, JSON_COMPACT);
    int rc;

    rc = client_call_once(c, path, text, 0, resp);
    if (rc == -EKEYEXPIRED && c->username[0] != '\0') {
        rc = client_authenticate(c);
        if (rc == 0) {
            rc = client_call_once(c, path, text, 0, resp);
        }
    }
    if (rc == -EKEYEXPIRED) {
        rc = -EACCES;
    }
    free(text);
    return rc;
}

void etcd_client_stream_init(struct etcd_client *c, const char *path, const json_t *body,
                             struct etcd_stream *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_lock(&c->mu);
    s->endpoint = c->cur;
    pthread_mutex_unlock(&c->mu);
    s->body = json_dumps(body, JSON_COMPACT);
    s->hdrs = client_headers(c, 0);
    s->easy = curl_easy_init();
    client_setup(c, s->easy, c->endpoints[s->endpoint], path, s->body, s->hdrs);
}

void etcd_client_stream_free(struct etcd_stream *s)
{
    if (s->easy != NULL) {
        curl_easy_cleanup(s->easy);
    }
    curl_slist_free_all(s->hdrs);
    free(s->body);
    memset(s, 0, sizeof(*s));
}

void etcd_client_stream_failed(struct etcd_client *c, const struct etcd_stream *s, int unreachable,
                               int unauthenticated, const char *what)
{
    int64_t suppressed = 0;
    int log;

    pthread_mutex_lock(&c->mu);
    if (unreachable && c->cur == s->endpoint) {
        c->cur = (c->cur + 1) % c->nendpoints;
    }
    log = sd_log_limit_pass(&c->log_limit, 5000, &suppressed);
    pthread_mutex_unlock(&c->mu);
    if (log) {
        sd_log_warn("state", "etcd at %s: watch stream: %s; resuming", c->endpoints[s->endpoint],
                    what);
    }
    if (unauthenticated && c->username[0] != '\0') {
        client_authenticate(c);
    }
}

void etcd_client_close(struct etcd_client *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->npool; i++) {
        curl_easy_cleanup(c->pool[i]);
    }
    for (size_t i = 0; i < c->nendpoints; i++) {
        free(c->endpoints[i]);
    }
    free(c->endpoints);
    free(c->ns);
    free(c->username);
    free(c->password);
    free(c->token);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

int etcd_client_open(const struct sd_state_etcd_opts *o, struct etcd_client **out)
{
    struct etcd_client *c = sd_xcalloc(1, sizeof(*c));
    const char *ns = o->ns != NULL ? o->ns : "";
    size_t nslen;
    int rc;

    *out = NULL;
    pthread_once(&etcd_curl_once, etcd_curl_init);
    pthread_mutex_init(&c->mu, NULL);
    c->token = sd_xstrdup("");
    c->username = sd_xstrdup(o->username != NULL ? o->username : "");
    c->password = sd_xstrdup(o->password != NULL ? o->password : "");
    /* as the reference: surrounding spaces and slashes trimmed, then one '/' */
    while (*ns == ' ' || *ns == '/') {
        ns++;
    }
    nslen = strlen(ns);
    while (nslen > 0 && (ns[nslen - 1] == ' ' || ns[nslen - 1] == '/')) {
        nslen--;
    }
    c->ns = sd_xmalloc(nslen + 2);
    memcpy(c->ns, ns, nslen);
    strcpy(c->ns + nslen, nslen > 0 ? "/" : "");
    c->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 30000;
    c->keepalive_interval_ms = o->keepalive_interval_ms > 0 ? o->keepalive_interval_ms : 10000;
    c->silence_ms =
        c->keepalive_interval_ms + (o->keepalive_timeout_ms > 0 ? o->keepalive_timeout_ms : 5000);
    c->debug_log = o->debug_log;
    rc = client_parse_endpoints(c, o->endpoints);
    if (rc != 0) {
        sd_log_error("state", "etcd.endpoint lists no endpoint");
    } else if (c->username[0] != '\0') {
        rc = client_authenticate(c);
        if (rc == -EACCES) {
            sd_log_error("state", "etcd at %s refused the credentials of user \"%s\"",
                         c->endpoints[c->cur], c->username);
        }
    }
    if (rc != 0) {
        etcd_client_close(c);
        return rc;
    }
    *out = c;
    return 0;
}
