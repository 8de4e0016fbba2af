/* test_state_etcd.c: the "etcd" state backend: the state contract suite against a real etcd,
 * plus what only a networked store has: outages, compaction, namespaces, failover between
 * endpoints, authentication, and the codec's handling of hostile answers.
 *
 * DESIGN: main starts one etcd with tests/etcd/etcd_server.sh (its own free ports and temp
 * directory; a server that cannot start fails the run) and stops it at the end. Every store
 * gets its own namespace, so tests never see each other's keys; before each store opens, the
 * leases of earlier tests are revoked, so none of them expires (a revision) during a later
 * test. Administrative requests (leases, compaction, users) go straight to the gateway through
 * libcurl. The authentication test runs last: it enables auth and disables it again. */
#include "state_contract.h"

#include "cluster/sd_membership.h"
#include "cluster/sd_session.h"
#include "core/sd_error.h"
#include "core/sd_time.h"

#include "config/sd_config.h"
#include "core/sd_buf.h"
#include "core/sd_health.h"
#include "state_etcd/etcd_codec.h"
#include "state_etcd/state_etcd.h"

#include <arpa/inet.h>
#include <stdatomic.h>
#include <unistd.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <sys/socket.h>

static char etcd_dir[256];
static char etcd_url[128];
static int ns_seq;

/* ---- administration --------------------------------------------------------------------- */

static size_t admin_write(char *p, size_t size, size_t n, void *arg)
{
    (void)size;
    return sd_buf_append(arg, p, n) == 0 ? n : 0;
}

/* POSTs body to path of the test server (with token unless NULL); returns the parsed answer. */
static json_t *admin_post(const char *path, const char *body, const char *token)
{
    CURL *easy = curl_easy_init();
    struct curl_slist *h = NULL;
    struct sd_buf url, out, auth;
    json_t *j;

    sd_buf_init(&url);
    sd_buf_init(&out);
    sd_buf_init(&auth);
    sd_buf_printf(&url, "%s%s", etcd_url, path);
    if (token != NULL) {
        sd_buf_printf(&auth, "Authorization: %s", token);
        h = curl_slist_append(h, sd_buf_cstr(&auth));
    }
    curl_easy_setopt(easy, CURLOPT_URL, sd_buf_cstr(&url));
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, admin_write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &out);
    assert_int_equal(curl_easy_perform(easy), CURLE_OK);
    j = json_loadb(out.data != NULL ? out.data : "", out.len, 0, NULL);
    assert_non_null(j);
    curl_easy_cleanup(easy);
    curl_slist_free_all(h);
    sd_buf_fini(&url);
    sd_buf_fini(&out);
    sd_buf_fini(&auth);
    return j;
}

static void admin_revoke_leases(void)
{
    json_t *j = admin_post("/v3/lease/leases", "{}", NULL);
    json_t *leases = json_object_get(j, "leases"), *l;
    size_t i;

    json_array_foreach(leases, i, l)
    {
        char body[96];
        snprintf(body, sizeof(body), "{\"ID\":\"%s\"}",
                 json_string_value(json_object_get(l, "ID")));
        json_decref(admin_post("/v3/lease/revoke", body, NULL));
    }
    json_decref(j);
}

static void server_ctl(const char *verb)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), SD_SOURCE_DIR "/tests/etcd/etcd_server.sh %s %s", verb, etcd_dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- stores ----------------------------------------------------------------------------- */

static struct sd_state_etcd_opts test_opts(const char *endpoints, const char *ns)
{
    struct sd_state_etcd_opts o = {endpoints, ns, NULL, NULL, 5000, 1000, 1000, 0};
    return o;
}

static struct sd_state *open_ns(const char *endpoints, const char *ns)
{
    struct sd_state_etcd_opts o = test_opts(endpoints, ns);
    struct sd_state *st = NULL;

    assert_int_equal(sd_state_etcd_open_opts(&o, &st), 0);
    return st;
}

/* The contract's factory: a fresh namespace per test. */
static int open_etcd(const char *dir, struct sd_state **out)
{
    struct sd_state_etcd_opts o;
    char ns[64];

    (void)dir;
    admin_revoke_leases();
    snprintf(ns, sizeof(ns), "contract-%d", ++ns_seq);
    o = test_opts(etcd_url, ns);
    return sd_state_etcd_open_opts(&o, out);
}

static const struct sc_backend etcd_backend = {"etcd", open_etcd};

/* ---- beyond the contract ---------------------------------------------------------------- */

/* Two stores with different namespaces on one etcd see only their own keys and events. */
static void test_namespace_isolation(void **state)
{
    struct sd_state *a = open_ns(etcd_url, "iso-a"), *b = open_ns(etcd_url, "/iso-b/");
    struct sd_kvs kvs;
    struct sc_collector c;
    struct sd_watch *w = NULL;
    int64_t deleted = 0;
    json_t *raw;

    (void)state;
    sc_collector_init(&c);
    assert_int_equal(sd_state_watch(a, "", 0, sc_collect, &c, &w), 0);
    sc_put(a, "k", "from a");
    sc_put(b, "k", "from b");
    sc_put(b, "only-b", "x");
    sc_assert_value(a, "k", "from a");
    sc_assert_value(b, "k", "from b");
    assert_int_equal(sd_state_range(a, "", 0, &kvs), 0);
    assert_int_equal(kvs.n, 1);
    assert_string_equal(kvs.items[0].key, "k");
    sd_kvs_free(&kvs);
    assert_int_equal(sd_state_del(a, "", 1, &deleted, NULL), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(sd_state_range(b, "", 0, &kvs), 0);
    assert_int_equal(kvs.n, 2);
    sd_kvs_free(&kvs);

    /* on the wire the keys carry the namespace: "iso-b/k" is base64 aXNvLWIvaw== */
    raw = admin_post("/v3/kv/range", "{\"key\":\"aXNvLWIvaw==\"}", NULL);
    assert_int_equal(json_array_size(json_object_get(raw, "kvs")), 1);
    json_decref(raw);

    /* a's watch saw its put and its delete, nothing of b */
    assert_int_equal(sc_wait_batches(&c, 2, 5000), 2);
    sc_sleep_ms(200);
    pthread_mutex_lock(&c.mu);
    assert_int_equal(c.nbatches, 2);
    assert_string_equal(c.batches[0].ev[0].key, "k");
    assert_string_equal(c.batches[0].ev[0].value, "from a");
    assert_int_equal(c.batches[1].ev[0].type, SD_WATCH_DELETE);
    pthread_mutex_unlock(&c.mu);
    sd_state_unwatch(a, w);
    sc_collector_fini(&c);

    /* no namespace: the whole keyspace, where b's keys carry their prefix */
    {
        struct sd_state *root = open_ns(etcd_url, "");
        struct sd_watch *rw = NULL;
        sc_collector_init(&c);
        assert_int_equal(sd_state_watch(root, "", 0, sc_collect, &c, &rw), 0);
        assert_int_equal(sd_state_range(root, "iso-b/", 0, &kvs), 0);
        assert_int_equal(kvs.n, 2);
        assert_string_equal(kvs.items[0].key, "iso-b/k");
        sd_kvs_free(&kvs);
        assert_int_equal(sd_state_range(root, "", 0, &kvs), 0);
        assert_true(kvs.n >= 2);
        sd_kvs_free(&kvs);
        sc_put(b, "k", "again");
        assert_int_equal(sc_wait_batches(&c, 1, 5000), 1);
        assert_string_equal(c.batches[0].ev[0].key, "iso-b/k");
        sd_state_unwatch(root, rw);
        sc_collector_fini(&c);
        sd_state_close(root);
    }
    assert_int_equal(sd_state_del(b, "", 1, NULL, NULL), 0);
    sd_state_close(a);
    sd_state_close(b);
}

/* A member without quorum: answers every request with 503 (code 14), as etcd does with
 * "Grpc-Metadata-hasleader: true". Serves until the listening socket is shut down. */
static void *no_leader_main(void *arg)
{
    static const char answer[] =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        "Content-Length: 77\r\nConnection: close\r\n\r\n"
        "{\"error\":\"etcdserver: no leader\",\"message\":\"etcdserver: no leader\",\"code\":14}";
    int lfd = *(int *)arg, fd;

    while ((fd = accept(lfd, NULL, NULL)) >= 0) {
        char buf[4096];
        /* a small request arrives in one piece; a failed send only closes the connection */
        if (recv(fd, buf, sizeof(buf), 0) > 0) {
            send(fd, answer, sizeof(answer) - 1, MSG_NOSIGNAL);
        }
        close(fd);
    }
    return NULL;
}

/* A listening socket on a free loopback port; *port gets the port. */
static int listen_loopback(int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* A first member without a leader: calls and watches go on to the next one. */
static void test_no_leader_failover(void **state)
{
    char list[300];
    struct sd_state *st, *other;
    struct sc_collector c;
    struct sd_watch *w = NULL;
    pthread_t th;
    int port, fd = listen_loopback(&port);
    int64_t rev;

    (void)state;
    assert_int_equal(pthread_create(&th, NULL, no_leader_main, &fd), 0);
    snprintf(list, sizeof(list), "127.0.0.1:%d,%s", port, etcd_url);
    /* a watch alone (start_rev > 0 sends no call first): its stream meets the member
     * without leader first; the write comes from a store that knows only the good one */
    st = open_ns(list, "no-leader");
    other = open_ns(etcd_url, "no-leader");
    sc_collector_init(&c);
    assert_int_equal(sd_state_watch(st, "", 1, sc_collect, &c, &w), 0);
    rev = sc_put(other, "k", "v");
    assert_true(sc_wait_batches(&c, 1, 5000) >= 1);
    pthread_mutex_lock(&c.mu);
    assert_int_equal(c.batches[c.nbatches - 1].rev, rev);
    pthread_mutex_unlock(&c.mu);
    sd_state_unwatch(st, w);
    sc_collector_fini(&c);

    /* calls go on to the next member too */
    sc_put(st, "k", "v2");
    sc_assert_value(st, "k", "v2");
    assert_int_equal(sd_state_del(st, "", 1, NULL, NULL), 0);
    sd_state_close(st);
    sd_state_close(other);
    shutdown(fd, SHUT_RDWR);
    pthread_join(th, NULL);
    close(fd);
}

/* A dead first endpoint: every call goes on to the next one. */
static void test_endpoint_failover(void **state)
{
    char list[300];
    struct sd_state *st;
    struct sc_collector c;
    struct sd_watch *w = NULL;
    int64_t lease = 0;

    (void)state;
    snprintf(list, sizeof(list), "127.0.0.1:1, %s/", etcd_url);
    st = open_ns(list, "failover");
    sc_collector_init(&c);
    assert_int_equal(sd_state_watch(st, "", 0, sc_collect, &c, &w), 0);
    sc_put(st, "k", "v");
    sc_assert_value(st, "k", "v");
    assert_int_equal(sd_state_lease_grant(st, 60, &lease), 0);
    assert_int_equal(sd_state_lease_revoke(st, lease), 0);
    assert_int_equal(sc_wait_batches(&c, 1, 5000), 1);
    sd_state_unwatch(st, w);
    sc_collector_fini(&c);
    assert_int_equal(sd_state_del(st, "", 1, NULL, NULL), 0);
    sd_state_close(st);

    /* a first member that accepts connections but never answers: the call that meets it
     * times out (its outcome is unknown), the next calls and the watch go to the next one */
    {
        int port, fd = listen_loopback(&port);
        struct sd_state_etcd_opts o;
        snprintf(list, sizeof(list), "127.0.0.1:%d,%s", port, etcd_url);
        o = test_opts(list, "failover");
        o.connect_timeout_ms = 500;
        o.keepalive_interval_ms = 300;
        o.keepalive_timeout_ms = 200;
        assert_int_equal(sd_state_etcd_open_opts(&o, &st), 0);
        assert_int_equal(sd_state_put(st, "k", "v", 1, 0, NULL), -ETIMEDOUT);
        sc_put(st, "k", "v");
        sd_state_close(st);

        /* a watch alone: its silent stream moves on after 500 ms */
        assert_int_equal(sd_state_etcd_open_opts(&o, &st), 0);
        sc_collector_init(&c);
        assert_int_equal(sd_state_watch(st, "", 1, sc_collect, &c, &w), 0);
        assert_true(sc_wait_batches(&c, 1, 5000) >= 1); /* the namespace's whole history */
        assert_string_equal(c.batches[0].ev[0].key, "k");
        sd_state_unwatch(st, w);
        sc_collector_fini(&c);
        sd_state_close(st);
        close(fd);
    }
}

/* No endpoint reachable: SD_EUNHEALTHY, reported to the health registry with the endpoint. */
static void test_unreachable(void **state)
{
    struct sd_state *st = open_ns("127.0.0.1:1", "none");
    struct sd_health *h = sd_health_create();
    struct sd_buf out;
    struct sd_kv kv;

    (void)state;
    sd_buf_init(&out);
    sd_state_set_health(st, h);
    assert_int_equal(sd_state_put(st, "k", "v", 1, 0, NULL), SD_EUNHEALTHY);
    assert_int_equal(sd_state_get(st, "k", &kv), SD_EUNHEALTHY);
    assert_true(sd_health_is_ok(h) == 0);
    /* requests over the limits are refused before anything is sent */
    {
        struct sd_op ops[SD_STATE_MAX_TXN_OPS + 1];
        struct sd_txn txn = {NULL, 0, ops, SD_STATE_MAX_TXN_OPS + 1, NULL, 0};
        struct sd_txn_result res;
        for (size_t i = 0; i < SD_STATE_MAX_TXN_OPS + 1; i++) {
            ops[i] = (struct sd_op){SD_OP_GET, "k", NULL, 0, 0};
        }
        assert_int_equal(sd_state_txn(st, &txn, &res), SD_ELIMIT);
        ops[0] = ops[1] = (struct sd_op){SD_OP_PUT, "k", "v", 1, 0};
        txn.nthen = 2;
        assert_int_equal(sd_state_txn(st, &txn, &res), SD_EINVAL);
    }
    assert_false(sd_health_is_ok(h));
    assert_int_equal(sd_health_render(h, &out), 503);
    assert_non_null(strstr(sd_buf_cstr(&out), "state: etcd at http://127.0.0.1:1"));
    sd_state_close(st);
    sd_health_destroy(h);
    sd_buf_fini(&out);
}

/* A watch survives an etcd restart: events written while it reconnects are replayed, none is
 * delivered twice; writes during the outage fail with SD_EUNHEALTHY and heal afterwards. */
static void test_watch_survives_restart(void **state)
{
    struct sd_state *st = open_ns(etcd_url, "restart");
    struct sd_health *h = sd_health_create();
    struct sc_collector c;
    struct sd_watch *w = NULL;
    int64_t r1, r2, r3;

    (void)state;
    sc_collector_init(&c);
    sd_state_set_health(st, h);
    assert_int_equal(sd_state_watch(st, "w/", 0, sc_collect, &c, &w), 0);
    r1 = sc_put(st, "w/1", "a");
    assert_int_equal(sc_wait_batches(&c, 1, 5000), 1);
    server_ctl("halt");
    assert_int_equal(sd_state_put(st, "w/x", "v", 1, 0, NULL), SD_EUNHEALTHY);
    assert_false(sd_health_is_ok(h));
    sc_sleep_ms(500);
    server_ctl("resume");
    r2 = sc_put(st, "w/2", "b");
    r3 = sc_put(st, "w/3", "c");
    assert_true(sd_health_is_ok(h));
    assert_int_equal(sc_wait_batches(&c, 3, 10000), 3);
    sc_sleep_ms(300);
    pthread_mutex_lock(&c.mu);
    assert_int_equal(c.nbatches, 3);
    assert_false(c.bad_order);
    assert_int_equal(c.ends, 0);
    assert_int_equal(c.batches[0].rev, r1);
    assert_int_equal(c.batches[1].rev, r2);
    assert_string_equal(c.batches[1].ev[0].key, "w/2");
    assert_int_equal(c.batches[2].rev, r3);
    pthread_mutex_unlock(&c.mu);
    sd_state_unwatch(st, w);
    sc_collector_fini(&c);
    assert_int_equal(sd_state_del(st, "", 1, NULL, NULL), 0);
    sd_state_close(st);
    sd_health_destroy(h);
}

/* An idle stream (no progress notification within the silence limit) is reopened at once
 * from where it was: events keep arriving promptly, none lost or repeated. */
static void test_watch_idle_reconnect(void **state)
{
    struct sd_state_etcd_opts o = test_opts(etcd_url, "idle");
    struct sd_state *st = NULL;
    struct sc_collector c;
    struct sd_watch *w = NULL;
    int64_t revs[4];
    char key[16];

    (void)state;
    o.keepalive_interval_ms = 100; /* silent after 200 ms; the server's progress is 500 ms */
    o.keepalive_timeout_ms = 100;
    assert_int_equal(sd_state_etcd_open_opts(&o, &st), 0);
    sc_collector_init(&c);
    assert_int_equal(sd_state_watch(st, "", 0, sc_collect, &c, &w), 0);
    for (int i = 0; i < 4; i++) {
        int64_t start;
        sc_sleep_ms(450);
        snprintf(key, sizeof(key), "i/%d", i);
        start = sd_mono_ms();
        revs[i] = sc_put(st, key, "v");
        assert_int_equal(sc_wait_batches(&c, (size_t)i + 1, 5000), (size_t)i + 1);
        assert_true(sd_mono_ms() - start < sc_timeout_ms(1000));
    }
    sc_sleep_ms(500);
    pthread_mutex_lock(&c.mu);
    assert_int_equal(c.nbatches, 4);
    assert_false(c.bad_order);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(c.batches[i].rev, revs[i]);
    }
    pthread_mutex_unlock(&c.mu);
    sd_state_unwatch(st, w);
    sc_collector_fini(&c);
    assert_int_equal(sd_state_del(st, "", 1, NULL, NULL), 0);
    sd_state_close(st);
}

/* A watch from a compacted revision ends with SD_ECONFLICT; from the listed revision it works. */
static void test_watch_compacted(void **state)
{
    struct sd_state *st = open_ns(etcd_url, "compact");
    struct sc_collector c, again;
    struct sd_watch *w = NULL, *w2 = NULL;
    struct sd_kvs kvs;
    int64_t r1, r2;
    char body[64];

    (void)state;
    sc_collector_init(&c);
    sc_collector_init(&again);
    r1 = sc_put(st, "c/1", "a");
    sc_put(st, "c/2", "b");
    r2 = sc_put(st, "c/3", "c");
    snprintf(body, sizeof(body), "{\"revision\":\"%lld\",\"physical\":true}", (long long)r2);
    json_decref(admin_post("/v3/kv/compaction", body, NULL));
    assert_int_equal(sd_state_watch(st, "c/", r1, sc_collect, &c, &w), 0);
    assert_int_equal(sc_wait_end(&c, 5000), SD_ECONFLICT);
    assert_int_equal(c.nbatches, 0);
    sd_state_unwatch(st, w);

    /* the caller re-lists and watches from the listed revision + 1 */
    assert_int_equal(sd_state_range(st, "c/", 0, &kvs), 0);
    assert_int_equal(kvs.n, 3);
    assert_int_equal(sd_state_watch(st, "c/", kvs.rev + 1, sc_collect, &again, &w2), 0);
    sd_kvs_free(&kvs);
    sc_put(st, "c/4", "d");
    assert_int_equal(sc_wait_batches(&again, 1, 5000), 1);
    assert_int_equal(again.ends, 0);
    sd_state_unwatch(st, w2);
    sc_collector_fini(&c);
    sc_collector_fini(&again);
    assert_int_equal(sd_state_del(st, "", 1, NULL, NULL), 0);
    sd_state_close(st);
}

/* Opening from the configuration: the etcd.* keys, etcd chosen by etcd.endpoint. */
static void test_open_from_config(void **state)
{
    char ep[200];
    const char *sets[] = {ep, "etcd.namespace=from-config"};
    struct sd_config_args args = {NULL, NULL, sets, 2, NULL};
    struct sd_config *cfg = NULL;
    struct sd_state *st = NULL;
    struct sd_buf err;
    json_t *raw;

    (void)state;
    sd_buf_init(&err);
    snprintf(ep, sizeof(ep), "etcd.endpoint=%s", etcd_url);
    assert_int_equal(sd_config_load(&args, &cfg, &err), 0);
    assert_int_equal(sd_state_open(cfg, &st), 0);
    assert_string_equal(st->ops->name, "etcd");
    sc_put(st, "k", "v");
    /* "from-config/k" */
    raw = admin_post("/v3/kv/range", "{\"key\":\"ZnJvbS1jb25maWcvaw==\"}", NULL);
    assert_int_equal(json_array_size(json_object_get(raw, "kvs")), 1);
    json_decref(raw);
    assert_int_equal(sd_state_del(st, "", 1, NULL, NULL), 0);
    sd_state_close(st);
    sd_config_destroy(cfg);
    sd_buf_fini(&err);
}

/* The codec refuses hostile answers and maps etcd's errors. */
static void test_codec(void **state)
{
    struct etcd_watch_msg m;
    struct sd_kv kv;
    json_t *j;
    static const char *const bad_kvs[] = {
        "{\"key\":\"bnMvaw=\"}",                         /* bad base64 length */
        "{\"key\":\"b3RoZXIvaw==\"}",                    /* "other/k": outside the namespace */
        "{\"key\":\"bnMv\"}",                            /* "ns/": empty key */
        "{\"key\":\"bnMvaw==\",\"mod_revision\":\"x\"}", /* not a number */
        "{\"key\":\"bnMvaw==\",\"value\":7}",            /* value not a string */
        "{\"key\":\"bnMvAGs=\"}",                        /* a NUL inside the key */
        "[]",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad_kvs) / sizeof(bad_kvs[0]); i++) {
        j = json_loads(bad_kvs[i], 0, NULL);
        assert_non_null(j);
        assert_int_equal(etcd_parse_kv(j, "ns/", &kv), -EPROTO);
        assert_null(kv.key);
        json_decref(j);
    }
    j = json_loads("{\"key\":\"bnMvaw==\",\"value\":\"YQBi\",\"mod_revision\":\"7\",\"version\":2}",
                   0, NULL);
    assert_int_equal(etcd_parse_kv(j, "ns/", &kv), 0);
    assert_string_equal(kv.key, "k");
    assert_int_equal(kv.value_len, 3);
    assert_memory_equal(kv.value, "a\0b", 3);
    assert_int_equal(kv.mod_rev, 7);
    assert_int_equal(kv.version, 2);
    assert_int_equal(kv.create_rev, 0); /* omitted: zero */
    sd_kv_free(&kv);
    json_decref(j);

    /* watch stream lines */
    assert_int_equal(etcd_parse_watch_msg("{\"result\":", 10, "ns/", &m), -EPROTO);
    etcd_watch_msg_free(&m);
    {
        const char *line = "{\"error\":{\"code\":14,\"message\":\"x\"}}";
        assert_int_equal(etcd_parse_watch_msg(line, strlen(line), "ns/", &m), 0);
    }
    assert_true(m.is_error);
    assert_int_equal(m.err_code, 14);
    etcd_watch_msg_free(&m);
    {
        const char *line = "{\"result\":{\"header\":{\"revision\":\"9\"},\"canceled\":true,"
                           "\"compact_revision\":\"5\"}}";
        assert_int_equal(etcd_parse_watch_msg(line, strlen(line), "ns/", &m), 0);
        assert_true(m.canceled);
        assert_int_equal(m.compact_rev, 5);
        etcd_watch_msg_free(&m);
    }
    {
        /* events out of revision order are refused */
        const char *line =
            "{\"result\":{\"header\":{\"revision\":\"9\"},\"events\":["
            "{\"kv\":{\"key\":\"bnMvaw==\",\"mod_revision\":\"8\"}},"
            "{\"type\":\"DELETE\",\"kv\":{\"key\":\"bnMvaw==\",\"mod_revision\":\"7\"}}]}}";
        assert_int_equal(etcd_parse_watch_msg(line, strlen(line), "ns/", &m), -EPROTO);
        etcd_watch_msg_free(&m);
    }

    /* errors */
    assert_int_equal(etcd_error_rc(3, "etcdserver: duplicate key given in txn request"), SD_EINVAL);
    assert_int_equal(etcd_error_rc(3, "etcdserver: too many operations in txn request"), SD_ELIMIT);
    assert_int_equal(etcd_error_rc(3, "etcdserver: request is too large"), SD_ELIMIT);
    assert_int_equal(etcd_error_rc(5, "etcdserver: requested lease not found"), SD_ENOTFOUND);
    assert_int_equal(etcd_error_rc(14, "etcdserver: no leader"), SD_EUNHEALTHY);
    assert_int_equal(etcd_error_rc(11, "etcdserver: mvcc: required revision has been compacted"),
                     SD_ECONFLICT);
}

/* Credentials: a wrong password is a clear error at open; an expired token is renewed. Runs
 * last: it enables authentication on the server and disables it again. */
static void test_auth(void **state)
{
    struct sd_state_etcd_opts o = test_opts(etcd_url, "auth");
    struct sd_state *st = NULL;
    json_t *j;
    char body[512];

    (void)state;
    json_decref(admin_post("/v3/auth/role/add", "{\"name\":\"root\"}", NULL));
    json_decref(
        admin_post("/v3/auth/user/add", "{\"name\":\"root\",\"password\":\"s3cret\"}", NULL));
    json_decref(admin_post("/v3/auth/user/grant", "{\"user\":\"root\",\"role\":\"root\"}", NULL));
    j = admin_post("/v3/auth/enable", "{}", NULL);
    assert_null(json_object_get(j, "error"));
    json_decref(j);

    o.username = "root";
    o.password = "wrong";
    assert_int_equal(sd_state_etcd_open_opts(&o, &st), -EACCES);
    assert_null(st);
    o.username = NULL;
    o.password = NULL;
    st = NULL;
    assert_int_equal(sd_state_etcd_open_opts(&o, &st), 0); /* no request at open */
    assert_int_equal(sd_state_put(st, "k", "v", 1, 0, NULL), -EACCES);
    sd_state_close(st);

    o.username = "root";
    o.password = "s3cret";
    assert_int_equal(sd_state_etcd_open_opts(&o, &st), 0);
    sc_put(st, "k", "v");
    sc_sleep_ms(sc_timeout_ms(3000)); /* the server forgets idle tokens after 2 s */
    sc_put(st, "k", "v2");
    sc_assert_value(st, "k", "v2");

    /* a restart forgets every token: the watch reconnects with a new one */
    {
        struct sc_collector c;
        struct sd_watch *w = NULL;
        int64_t rev;
        sc_collector_init(&c);
        assert_int_equal(sd_state_watch(st, "", 0, sc_collect, &c, &w), 0);
        server_ctl("halt");
        server_ctl("resume");
        rev = sc_put(st, "k", "v3");
        assert_int_equal(sc_wait_batches(&c, 1, 10000), 1);
        assert_int_equal(c.batches[0].rev, rev);
        assert_string_equal(c.batches[0].ev[0].value, "v3");
        sd_state_unwatch(st, w);
        sc_collector_fini(&c);
    }
    assert_int_equal(sd_state_del(st, "", 1, NULL, NULL), 0);
    sd_state_close(st);

    j = admin_post("/v3/auth/authenticate", "{\"name\":\"root\",\"password\":\"s3cret\"}", NULL);
    snprintf(body, sizeof(body), "%s", json_string_value(json_object_get(j, "token")));
    json_decref(j);
    json_decref(admin_post("/v3/auth/disable", "{}", body));
}

/* ---- the cluster building blocks on etcd ------------------------------------------------- */

/* A node whose lease renewals stop reaching etcd, as when it hangs or loses the network. */
static struct sd_state_ops frozen_ops;
static atomic_int is_frozen;

static int frozen_keepalive(void *ctx, int64_t lease_id, int64_t *ttl_s)
{
    if (atomic_load(&is_frozen)) {
        return SD_EUNHEALTHY;
    }
    return sd_state_etcd_ops.lease_keepalive(ctx, lease_id, ttl_s);
}

static int frozen_grant(void *ctx, int64_t ttl_s, int64_t *lease_id)
{
    if (atomic_load(&is_frozen)) {
        return SD_EUNHEALTHY;
    }
    return sd_state_etcd_ops.lease_grant(ctx, ttl_s, lease_id);
}

static void wait_members(struct sd_membership *m, size_t n, int64_t timeout_ms)
{
    for (int64_t deadline = sd_mono_ms() + timeout_ms; sd_membership_size(m) != n;) {
        assert_true(sd_mono_ms() < deadline);
        usleep(10 * 1000);
    }
}

/* Two coordinators split the sinks; when one stops renewing its lease it owns nothing at once
 * and the other owns every sink within the lease TTL plus a moment. */
static void test_membership_takeover(void **state)
{
    struct sd_state *s1 = open_ns(etcd_url, "members"), *s2 = open_ns(etcd_url, "members");
    struct sd_state frozen;
    struct sd_session *l1 = NULL, *l2 = NULL;
    struct sd_membership *m1 = NULL, *m2 = NULL;
    int64_t frozen_at;
    int mine1 = 0;

    (void)state;
    frozen_ops = sd_state_etcd_ops;
    frozen_ops.lease_keepalive = frozen_keepalive;
    frozen_ops.lease_grant = frozen_grant;
    frozen = (struct sd_state){&frozen_ops, s2->ctx};
    atomic_store(&is_frozen, 0);
    assert_int_equal(sd_session_start(s1, 2, "c1", NULL, NULL, &l1), 0);
    assert_int_equal(sd_session_start(&frozen, 2, "c2", NULL, NULL, &l2), 0);
    assert_int_equal(sd_membership_start(s1, l1, "operator.file.import", "c1", &m1), 0);
    assert_int_equal(sd_membership_start(&frozen, l2, "operator.file.import", "c2", &m2), 0);
    assert_true(sd_session_wait_live(l1, 5000) && sd_session_wait_live(l2, 5000));
    wait_members(m1, 2, 5000);
    wait_members(m2, 2, 5000);
    for (int i = 0; i < 100; i++) {
        char key[32];
        snprintf(key, sizeof(key), "1/1/s/sink-%d", i);
        int a = sd_membership_is_owner(m1, key), b = sd_membership_is_owner(m2, key);
        assert_int_equal(a + b, 1);
        mine1 += a;
    }
    assert_in_range(mine1, 10, 90);
    atomic_store(&is_frozen, 1);
    frozen_at = sd_mono_ms();
    wait_members(m1, 1, 2000 + 3000); /* the TTL, then etcd drops the key */
    assert_true(sd_mono_ms() - frozen_at >= 1000);
    assert_false(sd_session_is_live(l2)); /* it knows it lost its lease */
    for (int i = 0; i < 100; i++) {
        char key[32];
        snprintf(key, sizeof(key), "1/1/s/sink-%d", i);
        assert_true(sd_membership_is_owner(m1, key));
        assert_false(sd_membership_is_owner(m2, key));
    }
    sd_membership_stop(m1);
    sd_membership_stop(m2);
    sd_session_stop(l1);
    sd_session_stop(l2);
    sd_state_close(s1);
    sd_state_close(s2);
}

/* ---- the server's lifetime -------------------------------------------------------------- */

static int server_start(void)
{
    FILE *p = popen(SD_SOURCE_DIR "/tests/etcd/etcd_server.sh start", "r");

    if (p == NULL || fscanf(p, "%255s %127s", etcd_dir, etcd_url) != 2) {
        fprintf(stderr, "test_state_etcd: etcd did not start\n");
        if (p != NULL) {
            pclose(p);
        }
        return -1;
    }
    return pclose(p) == 0 ? 0 : -1;
}

static void server_stop(void)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), SD_SOURCE_DIR "/tests/etcd/etcd_server.sh stop %s", etcd_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "test_state_etcd: stopping etcd failed\n");
    }
}

int main(void)
{
    void *be = (void *)&etcd_backend;
    const struct CMUnitTest tests[] = {
        SC_CONTRACT_TESTS(be),
        cmocka_unit_test(test_codec),
        cmocka_unit_test(test_namespace_isolation),
        cmocka_unit_test(test_endpoint_failover),
        cmocka_unit_test(test_no_leader_failover),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_watch_compacted),
        cmocka_unit_test(test_watch_idle_reconnect),
        cmocka_unit_test(test_watch_survives_restart),
        cmocka_unit_test(test_open_from_config),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_membership_takeover),
    };
    int rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (server_start() != 0) {
        return 1;
    }
    rc = cmocka_run_group_tests_name("state_etcd", tests, NULL, NULL);
    server_stop();
    curl_global_cleanup();
    return rc;
}
