/* sd_node.c: what runs in a node: the one place that wires the roles named on the command line.
 *
 * DESIGN: each role has a block below that opens what the role needs and creates it through its
 * constructor, which takes only the interfaces the role uses (docs/ARCHITECTURE.md lists them).
 * Start-up order: the state store and health (every node), the storage-writer's volumes, the
 * reader/coordinator's staging and tables, the http-source's data endpoint, the metrics
 * listener, the API (its hooks run reconciliation in this process), a first reconciliation, the
 * follower that reconciles after every definition change made by any node (data roles), the
 * storage operator, the control socket; then every loop starts, the ready file is written and
 * the main thread only waits for SIGTERM/SIGINT with sigwait (both are blocked in every thread).
 * Shutdown (sd__node_close) runs in reverse: stop following, stop accepting data, stop the API,
 * stop the operator, close the writers (their final syncs answer the parked requests), drain the
 * source loop, close the backends. */
#include "roles/sd_node.h"
#include "roles/sd_node_config.h"
#include "api/sd_api.h"
#include "cluster/sd_membership.h"
#include "cluster/sd_session.h"
#include "config/sd_config.h"
#include "config/sd_config_bind.h"
#include "config/sd_opt.h"
#include "core/sd_alloc.h"
#include "core/sd_error.h"
#include "core/sd_fs.h"
#include "core/sd_health.h"
#include "core/sd_log.h"
#include "net/sd_fd_budget.h"
#include "net/sd_http.h"
#include "pipeline/sd_eval_pool.h"
#include "roles/sd_control.h"
#include "roles/sd_metrics.h"
#include "roles/sd_reconcile.h"
#include "source/sd_ingest.h"
#include "staging/sd_staging.h"
#include "state/sd_state.h"
#include "state/sd_state_follow.h"
#include "storage/sd_operator.h"
#include "storage/sd_receiver.h"
#include "storage/sd_storage.h"
#include "tables/sd_tables.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct {
    const char *name;
    unsigned bit;
} sd_node_roles[] = {
    {"api", SD_ROLE_API},
    {"http-source", SD_ROLE_SOURCE},
    {"storage-writer", SD_ROLE_WRITER},
    {"storage-reader", SD_ROLE_READER},
    {"storage-coordinator", SD_ROLE_COORDINATOR},
};

unsigned sd_node_role_by_name(const char *name)
{
    for (size_t k = 0; k < sizeof(sd_node_roles) / sizeof(sd_node_roles[0]); k++) {
        if (strcmp(name, sd_node_roles[k].name) == 0) {
            return sd_node_roles[k].bit;
        }
    }
    return 0;
}

/* Header read and keep-alive idle timeouts of the API and metrics listeners. */
#define SD_NODE_HEADER_TIMEOUT_MS 10000
#define SD_NODE_IDLE_TIMEOUT_MS 30000
/* source.http.loops 0: one loop per CPU, at most this many (a slot's appends are serialized:
 * more loops mostly wait for each other). */
#define SD_NODE_AUTO_LOOPS 16
_Static_assert(SD_NODE_AUTO_LOOPS <= SD_HTTP_MAX_LOOPS, "the default loops form one group");
_Static_assert(SD_HTTP_MAX_LOOPS <= SD_STORAGE_MAX_APPENDERS,
               "each source loop appends to storage as its own appender");
/* The API's request body limit (its configuration bodies are small). */
#define SD_NODE_API_MAX_BODY_BYTES (1024 * 1024)
#define SD_NODE_API_MAX_BODY_TEXT "1MB"

/* Everything a node runs; each member belongs to the role named in its comment. */
struct sd_node {
    struct sd_config *cfg; /* borrowed */
    struct sd_node_config c;
    unsigned roles;
    struct sd_fd_budget fds;
    struct sd_buf err; /* the message of a failed step */
    /* every node */
    struct sd_state *state;
    struct sd_health *health;
    struct sd_eval_pool *eval_pool; /* http-source and api: template evaluations */
    struct sd_metrics *metrics;
    struct sd_http_loop *metrics_loop;
    char metrics_url[128];
    struct sd_control *control;
    /* storage-writer; an http-source without it writes through a storage without volumes */
    struct sd_storage *storage;
    struct sd_session *volumes;   /* the lease announcing the volumes (storage/volume/writer/) */
    struct sd_receiver *receiver; /* storage-writer without http-source: serves source nodes */
    pthread_mutex_t slots_lock;   /* every change of storage's slots: reconcile and operator */
    /* storage-reader + storage-coordinator */
    struct sd_staging *staging;
    struct sd_tables *tables;
    struct sd_operator *op;
    struct sd_session *member;         /* the lease of the node's group memberships */
    struct sd_membership *coordinates; /* group operator.file.import: the sinks it imports */
    /* http-source */
    struct sd_ingest *ingest;
    struct sd_session *source; /* http-source without storage-writer: the source group's lease */
    struct sd_http_loop *source_loops[SD_HTTP_MAX_LOOPS]; /* [0] accepts for them all */
    size_t nsource_loops;
    char source_url[128];
    /* api */
    struct sd_api *api;
    struct sd_http_loop *api_loop;
    char api_url[128];
    char *api_public_url;    /* api.publicUrl or api_url; absolute, no trailing slash */
    char *source_public_url; /* source.http.publicUrl or source_url */
    /* definitions -> this node's storage slots and routing (start-up, api hooks, and the
     * follower of every definition change, whichever node made it) */
    struct sd_reconcile *reconcile;
    struct sd_state_follow *definitions;
    struct sd_state_follow *slices;  /* storage-writer: the slices the coordinator changes */
    struct sd_state_follow *writers; /* storage-coordinator: writer nodes joining and leaving */
    struct sd_state_follow *peers;   /* source-only: the writer nodes it writes to */
    struct sd_state_follow *group;   /* source-only: the source nodes sharing the slices */
};

static char *sd__trim_slash(const char *url)
{
    char *s = sd_xstrdup(url);
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '/') {
        s[--n] = '\0';
    }
    return s;
}

static int sd__write_ready_file(const struct sd_node *n, const char *path)
{
    json_t *j = json_object();
    char *text;
    int rc;

    if (n->api_url[0]) {
        json_object_set_new(j, "api", json_string(n->api_url));
    }
    if (n->source_url[0]) {
        json_object_set_new(j, "source", json_string(n->source_url));
    }
    if (n->metrics_url[0]) {
        json_object_set_new(j, "metrics", json_string(n->metrics_url));
    }
    text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    rc = sd_write_file_atomic(path, text, strlen(text), SD_FILE_MODE);
    free(text);
    json_decref(j);
    return rc;
}

/* Listens on the loop's address (key names it in the message); url gets the bound URL. */
static int sd__listen(struct sd_node *n, struct sd_http_loop *loop, const char *key,
                      const char *addr, char *url, size_t url_size)
{
    int rc = sd_http_loop_listen(loop, addr, url, url_size);

    if (rc != 0) {
        sd_buf_printf(&n->err, "cannot listen on %s %s: %s", key, addr, sd_strerror(rc));
    }
    return rc;
}

/* ---- every node: data dir, state store, health, template workers ---- */

static int sd__open_common(struct sd_node *n)
{
    int rc = sd_mkdir_p(n->c.data_dir, SD_DIR_MODE);

    if (rc != 0) {
        sd_buf_printf(&n->err, "cannot create data dir %s: %s", n->c.data_dir, sd_strerror(rc));
        return rc;
    }
    rc = sd_state_open(n->cfg, &n->state);
    if (rc != 0) {
        sd_buf_printf(&n->err, "cannot open the state store (%s) at %s: %s", n->c.state_backend,
                      n->c.state_path, sd_strerror(rc));
        return rc;
    }
    n->health = sd_health_create();
    /* A data node's appends never wait for etcd: an etcd outage must not take it out of its load
     * balancer (it logs the outage). The embedded store shares the node's disk: it counts. */
    if (!(n->roles & SD_ROLE_SOURCE) || strcmp(n->c.state_backend, "etcd") != 0) {
        sd_state_set_health(n->state, n->health);
    }
    return 0;
}

/* Template workers of the data endpoint and the API's test endpoint. */
static int sd__open_eval_pool(struct sd_node *n)
{
    int rc =
        sd_eval_pool_create((unsigned)n->c.template_workers, n->c.template_queue, &n->eval_pool);

    if (rc != 0) {
        sd_buf_printf(&n->err, "cannot start the template workers: %s", sd_strerror(rc));
    }
    return rc;
}

/* ---- storage-writer: local volumes and one slice writer per open slice; without http-source
 * in the process it serves the source nodes' files on them ---- */

static int sd__open_writer(struct sd_node *n)
{
    struct sd_buf err = SD_BUF_INIT;
    int rc = sd_storage_open(n->cfg, n->state, n->health, n->c.node_id, &n->storage, &err);

    if (rc == 0 && !(n->roles & SD_ROLE_SOURCE)) {
        rc = sd_receiver_start(n->cfg, n->storage, n->c.node_id, &n->receiver, &err);
    }
    if (rc != 0) {
        sd_buf_printf(&n->err, "storage: %s", sd_buf_cstr(&err));
    }
    sd_buf_fini(&err);
    return rc;
}

/* Close-sync: the revision up to which this writer has closed the writers of slices that left
 * "writing", kept with the volumes' lease (a node that is gone does not hold slices back). */
static int sd__report_closesync(void *arg, int64_t rev)
{
    struct sd_node *n = arg;
    char key[256], value[32];

    snprintf(key, sizeof(key), "runtime/closesync/source/node/%s", n->c.node_id);
    snprintf(value, sizeof(value), "%lld", (long long)rev);
    return sd_session_keep(n->volumes != NULL ? n->volumes : n->source, key, value);
}

/* Announces the volumes with a lease of their own, as the reference: other nodes see them while
 * this node lives. Start-up waits for the first lease (distribution.startupTimeout). */
static int sd__announce_volumes(struct sd_node *n)
{
    json_t *keys = sd_storage_volume_announcements(
               n->storage, n->receiver != NULL ? sd_receiver_address(n->receiver) : NULL),
           *value;
    const char *key;
    int rc = sd_session_start(n->state, n->c.volume_ttl_s, "volumes", NULL, NULL, &n->volumes);

    if (rc != 0) {
        json_decref(keys);
        sd_buf_printf(&n->err, "cannot start the volume lease: %s", sd_strerror(rc));
        return rc;
    }
    json_object_foreach(keys, key, value)
    {
        (void)sd_session_keep(n->volumes, key, json_string_value(value));
    }
    json_decref(keys);
    if (n->roles & SD_ROLE_SOURCE) { /* its slots write the slices */
        sd_storage_set_closesync(n->storage, sd__report_closesync, n);
    }
    if (!sd_session_wait_live(n->volumes, n->c.startup_timeout_ms)) {
        sd_buf_printf(&n->err,
                      "the volumes could not be registered in the state store within "
                      "distribution.startupTimeout (%lld ms)",
                      (long long)n->c.startup_timeout_ms);
        return SD_EUNHEALTHY;
    }
    return 0;
}

/* ---- http-source without storage-writer: its files on the writer nodes ---- */

/* A storage without volumes, and the node's place in the source group (on a lease of its own,
 * with its close-sync reports): the group's members share each sink's slices. */
static int sd__open_source_storage(struct sd_node *n)
{
    struct sd_buf err = SD_BUF_INIT;
    char key[256];
    int rc = sd_storage_open_source(n->cfg, n->state, n->health, n->c.node_id, &n->storage, &err);

    if (rc != 0) {
        sd_buf_printf(&n->err, "storage: %s", sd_buf_cstr(&err));
        sd_buf_fini(&err);
        return rc;
    }
    sd_buf_fini(&err);
    rc = sd_session_start(n->state, n->c.member_ttl_s, "source", NULL, NULL, &n->source);
    if (rc != 0) {
        sd_buf_printf(&n->err, "cannot start the source node's lease: %s", sd_strerror(rc));
        return rc;
    }
    snprintf(key, sizeof(key), "runtime/distribution/group/%s/nodes/%s", SD_STORAGE_SOURCE_GROUP,
             n->c.node_id);
    (void)sd_session_keep(n->source, key, n->c.node_id);
    sd_storage_set_closesync(n->storage, sd__report_closesync, n);
    if (!sd_session_wait_live(n->source, n->c.startup_timeout_ms)) {
        sd_buf_printf(&n->err,
                      "the source node could not be registered in the state store within "
                      "distribution.startupTimeout (%lld ms)",
                      (long long)n->c.startup_timeout_ms);
        return SD_EUNHEALTHY;
    }
    return 0;
}

/* ---- storage-reader + storage-coordinator: staging and tables (the operator that uploads and
 * imports starts after the first reconciliation, sd__start_operator); the api uses tables too ----
 */

static int sd__open_reader(struct sd_node *n)
{
    int rc = sd_staging_open(n->cfg, &n->staging);

    if (rc != 0) {
        sd_buf_printf(&n->err, "cannot open staging (%s) at %s: %s", n->c.staging_backend,
                      n->c.staging_path, sd_strerror(rc));
    }
    return rc;
}

/* Tables: the coordinator imports into them, the api checks a sink's table at request time. */
static int sd__open_tables(struct sd_node *n)
{
    int rc = sd_tables_open(n->cfg, &n->tables);

    if (rc != 0) {
        sd_buf_printf(&n->err, "cannot open tables (%s) at %s: %s", n->c.tables_backend,
                      n->c.tables_path, sd_strerror(rc));
    }
    return rc;
}

/* The operator: with storage-reader next to the writer it rotates and uploads this node's
 * slices; with storage-coordinator it joins the group that splits the sinks between the
 * coordinating nodes (each imports and cleans up the files of the sinks it owns on the hash
 * ring). */
static int sd__start_operator(struct sd_node *n)
{
    struct sd_operator_deps deps = {
        .state = n->state,
        .storage = (n->roles & SD_ROLE_READER) ? n->storage : NULL,
        .staging = n->staging,
        .tables = (n->roles & SD_ROLE_COORDINATOR) ? n->tables : NULL,
        .node_id = n->c.node_id,
        .slots_lock = &n->slots_lock,
    };
    int rc = 0;

    if (deps.storage == NULL && deps.tables == NULL) {
        return 0; /* neither slices to upload nor files to coordinate */
    }
    if (deps.tables != NULL) {
        rc = sd_session_start(n->state, n->c.member_ttl_s, "member", NULL, NULL, &n->member);
        if (rc == 0) {
            rc = sd_membership_start(n->state, n->member, "operator.file.import", n->c.node_id,
                                     &n->coordinates);
        }
        if (rc != 0) {
            sd_buf_printf(&n->err, "cannot join the coordinators: %s", sd_strerror(rc));
            return rc;
        }
        if (!sd_session_wait_live(n->member, n->c.startup_timeout_ms)) {
            sd_buf_printf(&n->err,
                          "cannot join the coordinators within distribution.startupTimeout "
                          "(%lld ms)",
                          (long long)n->c.startup_timeout_ms);
            return SD_EUNHEALTHY;
        }
        deps.coordination = n->coordinates;
    }
    rc = sd_operator_start(n->cfg, &deps, &n->op);
    if (rc != 0) {
        sd_buf_printf(&n->err, "cannot start the storage operator: %s", sd_strerror(rc));
    }
    return rc;
}

/* ---- http-source: the data endpoint on its own loops, writing through storage ---- */

/* source.http.loops, 0 = one per CPU the process may run on (its affinity), at most
 * SD_NODE_AUTO_LOOPS. */
static size_t sd__source_loops(const struct sd_node *n)
{
    cpu_set_t cpus;
    int count = 1;

    if (n->c.source_loops > 0) {
        return n->c.source_loops;
    }
    if (sched_getaffinity(0, sizeof(cpus), &cpus) == 0) {
        count = CPU_COUNT(&cpus);
    }
    return count < 1 ? 1 : count > SD_NODE_AUTO_LOOPS ? SD_NODE_AUTO_LOOPS : (size_t)count;
}

static int sd__open_source(struct sd_node *n)
{
    struct sd_http_loop_opts o;

    n->nsource_loops = sd__source_loops(n);
    n->ingest = sd_ingest_create(n->cfg, n->storage, n->eval_pool, n->health, n->nsource_loops);
    memset(&o, 0, sizeof(o));
    o.name = "source";
    o.max_request_body_bytes = n->c.max_request_body;
    sd_format_size((int64_t)o.max_request_body_bytes, o.body_limit_text, sizeof(o.body_limit_text));
    o.body_too_large_error = "stream.in.bodyTooLarge";
    o.header_timeout_ms = n->c.header_timeout_ms;
    o.request_timeout_ms = n->c.request_timeout_ms;
    o.idle_timeout_ms = n->c.idle_timeout_ms;
    o.send_buffer_bytes = n->c.write_buffer;
    o.max_connections = n->fds.data_max_connections;
    o.bad_request_error = "stream.in.badRequest";
    o.server_header = SD_INGEST_SERVER;
    o.handler = sd_ingest_handle;
    o.tick = sd_ingest_tick;
    o.tick_ms = 100;
    o.after_round = sd_ingest_after_round;
    o.is_idle = sd_ingest_is_idle;
    for (size_t i = 0; i < n->nsource_loops; i++) {
        struct sd_http_loop *loop;
        o.handler_arg = o.tick_arg = o.after_round_arg = o.is_idle_arg =
            sd_ingest_loop_arg(n->ingest, i);
        loop = sd_http_loop_create(&o);
        n->source_loops[i] = loop;
        sd_ingest_attach(n->ingest, i, loop);
        if (i > 0) {
            (void)sd_http_loop_join(n->source_loops[0], loop); /* nsource_loops is bounded */
        }
    }
    return sd__listen(n, n->source_loops[0], "source.http.listen", n->c.source_listen,
                      n->source_url, sizeof(n->source_url));
}

/* ---- metrics: every node's /metrics and health checks ---- */

static int sd__open_metrics(struct sd_node *n)
{
    struct sd_http_loop_opts o;

    n->metrics = sd_metrics_create(n->health);
    memset(&o, 0, sizeof(o));
    o.name = "metrics";
    o.max_request_body_bytes = 4096;
    o.header_timeout_ms = SD_NODE_HEADER_TIMEOUT_MS;
    o.request_timeout_ms = 10000;
    o.idle_timeout_ms = SD_NODE_IDLE_TIMEOUT_MS;
    o.max_connections = n->fds.metrics_max_connections;
    o.bad_request_error = "stream.metrics.badRequest";
    o.body_too_large_error = "stream.metrics.bodyTooLarge";
    snprintf(o.body_limit_text, sizeof(o.body_limit_text), "4KB");
    o.handler = sd_metrics_handle;
    o.handler_arg = n->metrics;
    n->metrics_loop = sd_http_loop_create(&o);
    return sd__listen(n, n->metrics_loop, "metrics.listen", n->c.metrics_listen, n->metrics_url,
                      sizeof(n->metrics_url));
}

/* ---- api: the configuration API on its own loop; its hooks reconcile this node ---- */

/* A coordinator in this process opens, rotates or closes the files at once (on other nodes its
 * follower of the definitions does), then this node's slots follow. */
static int sd__sinks_changed(struct sd_node *n, const char *sink_key, struct sd_buf *err)
{
    int rc = 0;

    if (n->op != NULL && (n->roles & SD_ROLE_COORDINATOR) &&
        (rc = sd_operator_sinks_changed(n->op, sink_key)) != 0) {
        sd_buf_printf(err, "cannot update the files of the sinks: %s", sd_strerror(rc));
        return rc;
    }
    return sd_reconcile_run(n->reconcile, err);
}

static int sd__hook_definitions_changed(void *arg, struct sd_buf *err)
{
    return sd__sinks_changed(arg, NULL, err);
}

static int sd__hook_rotate_sink(void *arg, const char *sink_key, struct sd_buf *err)
{
    return sd__sinks_changed(arg, sink_key, err);
}

static int sd__hook_sink_is_writing(void *arg, const char *sink_key)
{
    struct sd_node *n = arg;

    return n->storage != NULL && sd_storage_sink_is_active(n->storage, sink_key);
}

static int sd__listen_api(struct sd_node *n)
{
    struct sd_http_loop_opts o;

    memset(&o, 0, sizeof(o));
    o.name = "api";
    o.max_request_body_bytes = SD_NODE_API_MAX_BODY_BYTES;
    o.body_too_large_error = "stream.api.bodyTooLarge";
    snprintf(o.body_limit_text, sizeof(o.body_limit_text), "%s", SD_NODE_API_MAX_BODY_TEXT);
    o.header_timeout_ms = SD_NODE_HEADER_TIMEOUT_MS;
    o.request_timeout_ms = 30000;
    o.idle_timeout_ms = SD_NODE_IDLE_TIMEOUT_MS;
    o.max_connections = n->fds.api_max_connections;
    o.bad_request_error = "stream.api.badRequest";
    o.handler = sd_api_handle;
    n->api_loop = sd_http_loop_create(&o);
    return sd__listen(n, n->api_loop, "api.listen", n->c.api_listen, n->api_url,
                      sizeof(n->api_url));
}

/* After every listener is bound: the public URLs may default to the bound ones. */
static int sd__open_api(struct sd_node *n)
{
    struct sd_buf err = SD_BUF_INIT;
    struct sd_api_deps deps = {
        .cfg = n->cfg,
        .state = n->state,
        .tables = n->tables,
        .eval_pool = n->eval_pool,
        .loop = n->api_loop,
        .api_url = n->api_public_url,
        .source_url = n->source_public_url,
        .hooks =
            {
                .definitions_changed = sd__hook_definitions_changed,
                .rotate_sink = sd__hook_rotate_sink,
                .sink_is_writing = sd__hook_sink_is_writing,
                .arg = n,
            },
    };
    int rc = sd_api_create(&deps, &n->api, &err);

    if (rc != 0) {
        sd_buf_printf(&n->err, "api: %s", sd_buf_cstr(&err));
    } else {
        sd_http_loop_set_handler_arg(n->api_loop, n->api);
    }
    sd_buf_fini(&err);
    return rc;
}

/* ---- data roles: follow the definitions, whichever node changes them ---- */

static void sd__on_definitions(void *arg)
{
    struct sd_node *n = arg;
    struct sd_buf err = SD_BUF_INIT;

    if (sd__sinks_changed(n, NULL, &err) != 0) {
        sd_log_error("server", "some sinks could not be opened: %s", sd_buf_cstr(&err));
    }
    sd_buf_fini(&err);
}

static void sd__on_slices(void *arg)
{
    struct sd_node *n = arg;

    pthread_mutex_lock(&n->slots_lock);
    sd_storage_sync_slices(n->storage);
    pthread_mutex_unlock(&n->slots_lock);
}

/* ---- start-up and shutdown ---- */

static int sd__node_open(struct sd_node *n)
{
    unsigned roles = n->roles;
    struct sd_buf err = SD_BUF_INIT;
    int rc;

    if ((rc = sd__open_common(n)) != 0) {
        return rc;
    }
    if ((roles & SD_ROLE_WRITER) &&
        ((rc = sd__open_writer(n)) != 0 || (rc = sd__announce_volumes(n)) != 0)) {
        return rc;
    }
    if ((roles & SD_ROLE_SOURCE) && !(roles & SD_ROLE_WRITER) &&
        (rc = sd__open_source_storage(n)) != 0) {
        return rc;
    }
    if ((roles & (SD_ROLE_READER | SD_ROLE_COORDINATOR)) && (rc = sd__open_reader(n)) != 0) {
        return rc;
    }
    if ((roles & (SD_ROLE_COORDINATOR | SD_ROLE_API)) && (rc = sd__open_tables(n)) != 0) {
        return rc;
    }
    if ((roles & (SD_ROLE_SOURCE | SD_ROLE_API)) && (rc = sd__open_eval_pool(n)) != 0) {
        return rc;
    }
    if ((roles & SD_ROLE_SOURCE) && (rc = sd__open_source(n)) != 0) {
        return rc;
    }
    if ((roles & SD_ROLE_API) && (rc = sd__listen_api(n)) != 0) {
        return rc;
    }
    if ((rc = sd__open_metrics(n)) != 0) {
        return rc;
    }
    n->api_public_url =
        sd__trim_slash(n->c.api_public_url[0] != '\0' ? n->c.api_public_url : n->api_url);
    n->source_public_url =
        sd__trim_slash(n->c.source_public_url[0] != '\0' ? n->c.source_public_url : n->source_url);
    /* slots only where records arrive: a writer without http-source serves source nodes */
    n->reconcile =
        sd_reconcile_create(n->cfg, n->state, (roles & SD_ROLE_SOURCE) ? n->storage : NULL,
                            n->ingest, n->tables, &n->slots_lock);
    if ((roles & SD_ROLE_API) && (rc = sd__open_api(n)) != 0) {
        return rc;
    }
    if (sd_reconcile_run(n->reconcile, &err) != 0) {
        sd_log_error("server", "some sinks could not be opened: %s", sd_buf_cstr(&err));
    }
    sd_buf_fini(&err);
    /* uploads (reader with a writer), files and imports (coordinator) */
    if (n->staging != NULL && (rc = sd__start_operator(n)) != 0) {
        return rc;
    }
    if (n->op != NULL && (roles & SD_ROLE_COORDINATOR)) {
        sd__on_definitions(n); /* files for the sinks that have none */
    }
    /* data roles and coordinators apply every later definition change within a moment */
    if ((n->storage != NULL || n->ingest != NULL || (roles & SD_ROLE_COORDINATOR)) &&
        (rc = sd_state_follow_start(n->state, "definition/", "definitions", sd__on_definitions, n,
                                    &n->definitions)) != 0) {
        sd_buf_printf(&n->err, "cannot follow the definitions: %s", sd_strerror(rc));
        return rc;
    }
    /* a coordinator gives a writer node that joins its slices at once */
    if ((roles & SD_ROLE_COORDINATOR) && n->op != NULL &&
        (rc = sd_state_follow_start(n->state, "storage/volume/writer/", "writer volumes",
                                    sd__on_definitions, n, &n->writers)) != 0) {
        sd_buf_printf(&n->err, "cannot follow the writer volumes: %s", sd_strerror(rc));
        return rc;
    }
    /* a source's slots switch to the slices the coordinator opens, and close those it closes */
    if ((roles & SD_ROLE_SOURCE) &&
        (rc = sd_state_follow_start(n->state, "storage/slice/level/local/", "slices", sd__on_slices,
                                    n, &n->slices)) != 0) {
        sd_buf_printf(&n->err, "cannot follow the slices: %s", sd_strerror(rc));
        return rc;
    }
    /* a source-only node follows the writer nodes and its group: both move its share */
    if ((roles & SD_ROLE_SOURCE) && !(roles & SD_ROLE_WRITER) &&
        ((rc = sd_state_follow_start(n->state, "storage/volume/writer/", "writer nodes",
                                     sd__on_slices, n, &n->peers)) != 0 ||
         (rc = sd_state_follow_start(n->state,
                                     "runtime/distribution/group/" SD_STORAGE_SOURCE_GROUP "/",
                                     "source nodes", sd__on_slices, n, &n->group)) != 0)) {
        sd_buf_printf(&n->err, "cannot follow the writer and source nodes: %s", sd_strerror(rc));
        return rc;
    }
    /* token commands while running (streamd token ...): without the socket they need a stop */
    if ((rc = sd_control_start(n->state, n->c.data_dir, &n->control)) != 0) {
        sd_log_warn("server",
                    "no control socket %s/%s (%s): token commands need the server stopped",
                    n->c.data_dir, SD_CONTROL_SOCKET, sd_strerror(rc));
    }
    return 0;
}

static int sd__node_start_loops(struct sd_node *n)
{
    int rc;

    for (size_t i = 0; i < n->nsource_loops; i++) {
        if ((rc = sd_http_loop_start(n->source_loops[i])) != 0) {
            return rc;
        }
    }
    if ((n->roles & SD_ROLE_API) && (rc = sd_http_loop_start(n->api_loop)) != 0) {
        return rc;
    }
    return sd_http_loop_start(n->metrics_loop);
}

/* Stops and frees whatever sd__node_open got to, in the order the roles depend on each other. */
static void sd__node_close(struct sd_node *n)
{
    sd_control_stop(n->control);
    /* storage-writer serving source nodes: DRAIN, they close their files and write elsewhere */
    sd_receiver_stop(n->receiver);
    sd_state_follow_stop(n->definitions); /* no reconcile from here on but the api's */
    sd_state_follow_stop(n->slices);
    sd_state_follow_stop(n->writers);
    sd_state_follow_stop(n->peers);
    sd_state_follow_stop(n->group);
    /* http-source: no new connections */
    if (n->nsource_loops > 0) {
        sd_http_loop_close_listeners(n->source_loops[0]);
    }
    /* Template jobs read their requests and post to the loops: finish them while both run. */
    sd_eval_pool_close(n->eval_pool);
    /* api: it may reconcile (and touch storage) until its loop and tasks stop */
    sd_http_loop_stop(n->api_loop, 5000);
    sd_api_destroy(n->api);
    /* storage-reader + coordinator: rotations switch slots, so stop before closing storage */
    sd_operator_stop(n->op);
    sd_membership_stop(n->coordinates);
    sd_session_stop(n->member); /* another coordinator takes the sinks over at once */
    /* http-source, then storage-writer: the final syncs answer the parked requests */
    if (n->ingest != NULL) {
        sd_ingest_shutdown(n->ingest);
    }
    sd_storage_close(n->storage);
    sd_session_stop(n->volumes); /* the volumes leave the cluster with the writers closed */
    sd_session_stop(n->source);
    /* every source loop drains at once */
    sd_http_loops_stop(n->source_loops, n->nsource_loops, n->c.shutdown_timeout_ms);
    for (size_t i = 0; i < n->nsource_loops; i++) {
        sd_http_loop_destroy(n->source_loops[i]);
    }
    sd_http_loop_destroy(n->api_loop);
    sd_http_loop_stop(n->metrics_loop, 1000);
    sd_http_loop_destroy(n->metrics_loop);
    sd_ingest_destroy(n->ingest);
    sd_metrics_destroy(n->metrics);
    sd_reconcile_destroy(n->reconcile);
    sd_eval_pool_destroy(n->eval_pool);
    /* the backends every role used */
    if (n->tables != NULL) {
        sd_tables_close(n->tables);
    }
    if (n->staging != NULL) {
        sd_staging_close(n->staging);
    }
    if (n->state != NULL) {
        sd_state_close(n->state);
    }
    sd_health_destroy(n->health);
    free(n->api_public_url);
    free(n->source_public_url);
}

int sd_node_run(struct sd_config *cfg, unsigned roles, const char *ready_file)
{
    struct sd_node *n;
    sigset_t sigs;
    int sig = 0, rc;

    n = sd_xcalloc(1, sizeof(*n));
    n->cfg = cfg;
    n->roles = roles;
    sd_buf_init(&n->err);
    pthread_mutex_init(&n->slots_lock, NULL);
    sd_config_fill(cfg, &sd_node_config_bindings, &n->c);
    /* the service's log stream: stdout, as the reference; debugLog adds the debug lines */
    sd_log_set_level(n->c.debug_log ? SD_LOG_DEBUG : SD_LOG_INFO);
    sd_log_set_node(n->c.node_id);
    sd_log_set_fd(STDOUT_FILENO);
    sd_fd_budget_init(n->c.max_connections, &n->fds);

    rc = sd__node_open(n);
    if (rc != 0) {
        fprintf(stderr, "streamd: %s\n", sd_buf_cstr(&n->err));
    } else if ((rc = sd__node_start_loops(n)) != 0) {
        /* the loops log why they cannot start */
    } else if (ready_file != NULL && (rc = sd__write_ready_file(n, ready_file)) != 0) {
        fprintf(stderr, "streamd: cannot write ready file %s: %s\n", ready_file, sd_strerror(rc));
    } else {
        sd_log_info("server", "ready: api %s, source %s, metrics %s, data dir %s", n->api_url,
                    n->source_url, n->metrics_url, n->c.data_dir);
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGTERM);
        sigaddset(&sigs, SIGINT);
        sigwait(&sigs, &sig);
        sd_log_info("server", "signal %d: shutting down", sig);
    }
    sd__node_close(n);
    sd_buf_fini(&n->err);
    pthread_mutex_destroy(&n->slots_lock);
    free(n);
    return rc == 0 ? 0 : 1;
}
