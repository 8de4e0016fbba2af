/* sd_cli.c: command line, start-up order, ready file, signals and graceful shutdown.
 *
 * DESIGN: the main thread parses arguments, loads the config, opens the state store, storage,
 * API and data endpoint, reconciles them with the stored definitions, binds every listener,
 * writes the ready file, and then only waits for SIGTERM/SIGINT with sigwait (both are blocked
 * in every thread). Shutdown order: stop accepting data, close the writers (their final syncs
 * answer the parked requests), drain the source loop, stop the API, close the state store. */
#include "roles/sd_cli.h"
#include "api/sd_api.h"
#include "config/sd_config.h"
#include "config/sd_config_bind.h"
#include "config/sd_config_doc.h"
#include "config/sd_opt.h"
#include "core/sd_alloc.h"
#include "core/sd_error.h"
#include "core/sd_fs.h"
#include "core/sd_health.h"
#include "core/sd_log.h"
#include "core/sd_time.h"
#include "net/sd_fd_budget.h"
#include "pipeline/sd_eval_pool.h"
#include "roles/sd_cli_jsonnet.h"
#include "roles/sd_cli_token.h"
#include "roles/sd_control.h"
#include "roles/sd_metrics.h"
#include "roles/sd_server.h"
#include "source/sd_ingest.h"
#include "state/sd_state.h"
#include "staging/sd_staging.h"
#include "storage/sd_operator.h"
#include "storage/sd_storage.h"
#include "tables/sd_tables.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

enum sd_role_bit {
    SD_ROLE_API = 1 << 0,
    SD_ROLE_SOURCE = 1 << 1,
    SD_ROLE_WRITER = 1 << 2,
    SD_ROLE_READER = 1 << 3,
    SD_ROLE_COORDINATOR = 1 << 4,
    SD_ROLE_ALL = (1 << 5) - 1
};

static const struct {
    const char *name;
    unsigned bit;
} sd_roles[] = {
    {"api", SD_ROLE_API},
    {"http-source", SD_ROLE_SOURCE},
    {"storage-writer", SD_ROLE_WRITER},
    {"storage-reader", SD_ROLE_READER},
    {"storage-coordinator", SD_ROLE_COORDINATOR},
};

struct sd_cli_args {
    struct sd_config_args cfg;
    const char **sets;
    size_t nsets;
    const char *ready_file;
    unsigned roles;
    int dump_config;
    int dump_json;
    int config_docs;
};

static void sd__usage(FILE *out)
{
    fprintf(out, "usage: streamd [--config FILE] [--data-dir DIR] [--set KEY=VALUE]... "
                 "[--ready-file FILE] [ROLE...]\n"
                 "       streamd config dump [--json] [--config FILE] [--data-dir DIR] "
                 "[--set KEY=VALUE]...\n"
                 "       streamd config docs   (every key as Markdown: docs/CONFIG.md)\n"
                 "       streamd token create|list|revoke ... (see streamd token --help)\n"
                 "       streamd jsonnet FILE|-\n"
                 "       streamd template eval [--body FILE] [--header 'Name: value']... "
                 "[--ip IP] TEMPLATE_FILE\n"
                 "                             (see streamd template --help)\n"
                 "\n"
                 "Streaming data ingestion: POST JSON records over HTTP, get them durably on disk\n"
                 "as compressed CSV slices, and imported exactly once into tables.\n"
                 "\n"
                 "Roles: api, http-source, storage-writer, storage-reader, storage-coordinator.\n"
                 "No role = standalone: every role in one process with embedded backends.\n"
                 "\n"
                 "Options:\n"
                 "  --config FILE      YAML (.yaml/.yml) or JSON (.json) config file\n"
                 "  --data-dir DIR     data directory (default ./data)\n"
                 "  --set KEY=VALUE    override one config key (repeatable)\n"
                 "  --ready-file FILE  write the listener URLs as JSON once ready\n"
                 "  --help             this text\n"
                 "Environment: STREAM_<KEY> per config key (e.g. STREAM_SOURCE_HTTP_LISTEN),\n"
                 "STREAM_ADMIN_TOKEN for the admin API token.\n");
}

static int sd__parse_args(int argc, char **argv, struct sd_cli_args *a)
{
    memset(a, 0, sizeof(*a));
    a->sets = sd_xcalloc((size_t)argc + 1, sizeof(char *));
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = NULL;
        int known = 0;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            sd__usage(stdout);
            exit(0);
        }
        if (strcmp(arg, "--json") == 0 && a->dump_config) {
            a->dump_json = 1;
            continue;
        }
        if (strncmp(arg, "--", 2) == 0) {
            const char *eq = strchr(arg, '=');
            size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
            static const char *const with_value[] = {"--config", "--data-dir", "--set",
                                                     "--ready-file"};
            for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++) {
                if (strlen(with_value[k]) == nlen && strncmp(arg, with_value[k], nlen) == 0) {
                    known = 1;
                }
            }
            if (!known) {
                fprintf(stderr, "streamd: unknown option %s (see --help)\n", arg);
                return -1;
            }
            if (eq) {
                value = eq + 1;
            } else if (i + 1 < argc) {
                value = argv[++i];
            } else {
                fprintf(stderr, "streamd: option %s needs a value\n", arg);
                return -1;
            }
            if (strncmp(arg, "--config", nlen) == 0) {
                a->cfg.file = value;
            } else if (strncmp(arg, "--data-dir", nlen) == 0) {
                a->cfg.data_dir = value;
            } else if (strncmp(arg, "--set", nlen) == 0) {
                a->sets[a->nsets++] = value;
            } else {
                a->ready_file = value;
            }
            continue;
        }
        if (strcmp(arg, "config") == 0 && i + 1 < argc && strcmp(argv[i + 1], "dump") == 0) {
            a->dump_config = 1;
            i++;
            continue;
        }
        if (strcmp(arg, "config") == 0 && i + 1 < argc && strcmp(argv[i + 1], "docs") == 0) {
            a->config_docs = 1;
            i++;
            continue;
        }
        for (size_t k = 0; k < sizeof(sd_roles) / sizeof(sd_roles[0]); k++) {
            if (strcmp(arg, sd_roles[k].name) == 0) {
                a->roles |= sd_roles[k].bit;
                known = 1;
            }
        }
        if (!known) {
            fprintf(stderr, "streamd: unknown role or command \"%s\" (see --help)\n", arg);
            return -1;
        }
    }
    if (a->roles == 0) {
        a->roles = SD_ROLE_ALL;
    }
    a->cfg.sets = a->sets;
    a->cfg.nsets = a->nsets;
    a->cfg.envp = environ;
    return 0;
}

static int sd__write_ready_file(struct sd_server *srv, const char *path)
{
    json_t *j = json_object();
    char *text;
    int rc;

    if (srv->api_url[0]) {
        json_object_set_new(j, "api", json_string(srv->api_url));
    }
    if (srv->source_url[0]) {
        json_object_set_new(j, "source", json_string(srv->source_url));
    }
    if (srv->metrics_url[0]) {
        json_object_set_new(j, "metrics", json_string(srv->metrics_url));
    }
    text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    rc = sd_write_file_atomic(path, text, strlen(text), SD_FILE_MODE);
    free(text);
    json_decref(j);
    return rc;
}

static char *sd__trim_slash(const char *url)
{
    char *s = sd_xstrdup(url);
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '/') {
        s[--n] = '\0';
    }
    return s;
}

/* The keys the server start-up reads, filled once by sd_config_fill. */
struct sd_cli_config {
    const char *node_id;
    const char *data_dir;
    const char *state_backend;
    const char *state_path;
    const char *staging_backend;
    const char *staging_path;
    const char *tables_backend;
    const char *tables_path;
    const char *api_listen;
    const char *api_public_url;
    const char *metrics_listen;
    const char *source_listen;
    const char *source_public_url;
    size_t max_connections;
    size_t max_request_body;
    int64_t header_timeout_ms;
    int64_t request_timeout_ms;
    int64_t idle_timeout_ms;
    int64_t shutdown_timeout_ms;
    size_t write_buffer;
    size_t template_workers;
    size_t template_queue;
    int debug_log;
};

#define SD_CLI_BIND(field, key, type) SD_BIND(struct sd_cli_config, field, key, type)
static const struct sd_config_binding sd_cli_rows[] = {
    SD_CLI_BIND(node_id, "nodeID", SD_BIND_STR),
    SD_CLI_BIND(debug_log, "debugLog", SD_BIND_BOOL),
    SD_CLI_BIND(data_dir, "dataDir", SD_BIND_STR),
    SD_CLI_BIND(state_backend, "state.backend", SD_BIND_STR),
    SD_CLI_BIND(state_path, "state.embedded.path", SD_BIND_STR),
    SD_CLI_BIND(staging_backend, "staging.backend", SD_BIND_STR),
    SD_CLI_BIND(staging_path, "staging.local.path", SD_BIND_STR),
    SD_CLI_BIND(tables_backend, "tables.backend", SD_BIND_STR),
    SD_CLI_BIND(tables_path, "tables.sqlite.path", SD_BIND_STR),
    SD_CLI_BIND(api_listen, "api.listen", SD_BIND_STR),
    SD_CLI_BIND(api_public_url, "api.publicUrl", SD_BIND_STR),
    SD_CLI_BIND(metrics_listen, "metrics.listen", SD_BIND_STR),
    SD_CLI_BIND(source_listen, "source.http.listen", SD_BIND_STR),
    SD_CLI_BIND(source_public_url, "source.http.publicUrl", SD_BIND_STR),
    SD_CLI_BIND(max_connections, "source.http.maxConnections", SD_BIND_SIZE_T),
    SD_CLI_BIND(max_request_body, "source.http.maxRequestBodySize", SD_BIND_SIZE_T),
    SD_CLI_BIND(header_timeout_ms, "source.http.readHeaderTimeout", SD_BIND_I64),
    SD_CLI_BIND(request_timeout_ms, "source.http.requestTimeout", SD_BIND_I64),
    SD_CLI_BIND(idle_timeout_ms, "source.http.idleTimeout", SD_BIND_I64),
    SD_CLI_BIND(shutdown_timeout_ms, "source.http.shutdownTimeout", SD_BIND_I64),
    SD_CLI_BIND(write_buffer, "source.http.writeBufferSize", SD_BIND_SIZE_T),
    SD_CLI_BIND(template_workers, "source.http.templateWorkers", SD_BIND_SIZE_T),
    SD_CLI_BIND(template_queue, "source.http.templateQueueSize", SD_BIND_SIZE_T),
};
const struct sd_config_bindings sd_cli_config_bindings = SD_BINDINGS("server", sd_cli_rows);

/* Header read and keep-alive idle timeouts of the API and metrics listeners. */
#define SD_CLI_HEADER_TIMEOUT_MS 10000
#define SD_CLI_IDLE_TIMEOUT_MS 30000
/* The API's request body limit (its configuration bodies are small). */
#define SD_CLI_API_MAX_BODY_BYTES (1024 * 1024)
#define SD_CLI_API_MAX_BODY_TEXT "1MB"

static int sd__start_loops(struct sd_server *srv, const struct sd_cli_config *c, unsigned roles,
                           const struct sd_fd_budget *fds, struct sd_buf *err)
{
    struct sd_http_loop_opts o;
    int rc;

    if (roles & SD_ROLE_SOURCE) {
        memset(&o, 0, sizeof(o));
        o.name = "source";
        o.max_request_body_bytes = c->max_request_body;
        sd_format_size((int64_t)o.max_request_body_bytes, o.body_limit_text,
                       sizeof(o.body_limit_text));
        o.body_too_large_error = "stream.in.bodyTooLarge";
        o.header_timeout_ms = c->header_timeout_ms;
        o.request_timeout_ms = c->request_timeout_ms;
        o.idle_timeout_ms = c->idle_timeout_ms;
        o.send_buffer_bytes = c->write_buffer;
        o.max_connections = fds->data_max_connections;
        o.bad_request_error = "stream.in.badRequest";
        o.server_header = SD_INGEST_SERVER;
        o.handler = sd_ingest_handle;
        o.handler_arg = srv->ingest;
        o.tick = sd_ingest_tick;
        o.tick_arg = srv->ingest;
        o.tick_ms = 100;
        sd_http_loop_init(&srv->source_loop, &o);
        srv->source_loop.is_idle = sd_ingest_is_idle;
        srv->source_loop.is_idle_arg = srv->ingest;
        rc = sd_http_loop_listen(&srv->source_loop, c->source_listen, srv->source_url,
                                 sizeof(srv->source_url));
        if (rc != 0) {
            sd_buf_printf(err, "cannot listen on source.http.listen %s: %s", c->source_listen,
                          sd_strerror(rc));
            return rc;
        }
    }
    if (roles & SD_ROLE_API) {
        memset(&o, 0, sizeof(o));
        o.name = "api";
        o.max_request_body_bytes = SD_CLI_API_MAX_BODY_BYTES;
        o.body_too_large_error = "stream.api.bodyTooLarge";
        snprintf(o.body_limit_text, sizeof(o.body_limit_text), "%s", SD_CLI_API_MAX_BODY_TEXT);
        o.header_timeout_ms = SD_CLI_HEADER_TIMEOUT_MS;
        o.request_timeout_ms = 30000;
        o.idle_timeout_ms = SD_CLI_IDLE_TIMEOUT_MS;
        o.max_connections = fds->api_max_connections;
        o.bad_request_error = "stream.api.badRequest";
        o.handler = sd_api_handle;
        sd_http_loop_init(&srv->api_loop, &o);
        rc = sd_http_loop_listen(&srv->api_loop, c->api_listen, srv->api_url, sizeof(srv->api_url));
        if (rc != 0) {
            sd_buf_printf(err, "cannot listen on api.listen %s: %s", c->api_listen,
                          sd_strerror(rc));
            return rc;
        }
    }
    return 0;
}

static int sd__run_server(struct sd_cli_args *a, struct sd_config *cfg)
{
    struct sd_server srv;
    struct sd_cli_config c;
    struct sd_http_loop metrics_loop;
    struct sd_metrics *metrics = NULL;
    struct sd_control *control = NULL;
    struct sd_http_loop_opts mo;
    struct sd_fd_budget fds;
    struct sd_buf err = SD_BUF_INIT;
    char *api_public = NULL, *source_public = NULL;
    sigset_t sigs;
    int sig = 0, rc;

    memset(&srv, 0, sizeof(srv));
    memset(&metrics_loop, 0, sizeof(metrics_loop));
    pthread_mutex_init(&srv.reconcile_lock, NULL);
    srv.cfg = cfg;
    sd_config_fill(cfg, &sd_cli_config_bindings, &c);
    srv.node_id = c.node_id;
    /* the service's log stream: stdout, as the reference; debugLog adds the debug lines */
    sd_log_set_level(c.debug_log ? SD_LOG_DEBUG : SD_LOG_INFO);
    sd_log_set_node(srv.node_id);
    sd_log_set_fd(STDOUT_FILENO);
    if (!(a->roles & SD_ROLE_WRITER) && (a->roles & SD_ROLE_SOURCE)) {
        fprintf(stderr, "streamd: the http-source role needs storage-writer in the same process "
                        "(the network writer protocol is not available yet)\n");
        return 2;
    }
    sd_fd_budget_init(c.max_connections, &fds);
    rc = sd_mkdir_p(c.data_dir, SD_DIR_MODE);
    if (rc != 0) {
        fprintf(stderr, "streamd: cannot create data dir %s: %s\n", c.data_dir, sd_strerror(rc));
        return 1;
    }
    rc = sd_state_open(cfg, &srv.state);
    if (rc != 0) {
        fprintf(stderr, "streamd: cannot open the state store (%s) at %s: %s\n", c.state_backend,
                c.state_path, sd_strerror(rc));
        return 1;
    }
    srv.health = sd_health_create();
    sd_state_set_health(srv.state, srv.health);
    if (a->roles & SD_ROLE_WRITER) {
        rc = sd_storage_open(&srv, &srv.storage, &err);
        if (rc != 0) {
            fprintf(stderr, "streamd: storage: %s\n", sd_buf_cstr(&err));
            goto out;
        }
    }
    if (a->roles & (SD_ROLE_READER | SD_ROLE_COORDINATOR)) {
        rc = sd_staging_open(cfg, &srv.staging);
        if (rc != 0) {
            fprintf(stderr, "streamd: cannot open staging (%s) at %s: %s\n", c.staging_backend,
                    c.staging_path, sd_strerror(rc));
            goto out;
        }
        rc = sd_tables_open(cfg, &srv.tables);
        if (rc != 0) {
            fprintf(stderr, "streamd: cannot open tables (%s) at %s: %s\n", c.tables_backend,
                    c.tables_path, sd_strerror(rc));
            goto out;
        }
    }
    if (a->roles & SD_ROLE_SOURCE) {
        sd_ingest_create(&srv, &srv.ingest);
    }
    if ((a->roles & (SD_ROLE_SOURCE | SD_ROLE_API)) &&
        (rc = sd_eval_pool_create((unsigned)c.template_workers, c.template_queue,
                                  &srv.eval_pool)) != 0) {
        fprintf(stderr, "streamd: cannot start the template workers: %s\n", sd_strerror(rc));
        goto out;
    }
    metrics = sd_metrics_create(&srv);
    rc = sd__start_loops(&srv, &c, a->roles, &fds, &err);
    if (rc == 0) {
        memset(&mo, 0, sizeof(mo));
        mo.name = "metrics";
        mo.max_request_body_bytes = 4096;
        mo.header_timeout_ms = SD_CLI_HEADER_TIMEOUT_MS;
        mo.request_timeout_ms = 10000;
        mo.idle_timeout_ms = SD_CLI_IDLE_TIMEOUT_MS;
        mo.max_connections = fds.metrics_max_connections;
        mo.bad_request_error = "stream.metrics.badRequest";
        mo.body_too_large_error = "stream.metrics.bodyTooLarge";
        snprintf(mo.body_limit_text, sizeof(mo.body_limit_text), "4KB");
        mo.handler = sd_metrics_handle;
        mo.handler_arg = metrics;
        sd_http_loop_init(&metrics_loop, &mo);
        rc = sd_http_loop_listen(&metrics_loop, c.metrics_listen, srv.metrics_url,
                                 sizeof(srv.metrics_url));
        if (rc != 0) {
            sd_buf_printf(&err, "cannot listen on metrics.listen %s: %s", c.metrics_listen,
                          sd_strerror(rc));
        }
    }
    if (rc != 0) {
        fprintf(stderr, "streamd: %s\n", sd_buf_cstr(&err));
        goto out;
    }
    api_public = sd__trim_slash(c.api_public_url[0] != '\0' ? c.api_public_url : srv.api_url);
    source_public =
        sd__trim_slash(c.source_public_url[0] != '\0' ? c.source_public_url : srv.source_url);
    srv.api_public_url = api_public;
    srv.source_public_url = source_public;
    if (a->roles & SD_ROLE_API) {
        rc = sd_api_create(&srv, &srv.api, &err);
        if (rc != 0) {
            fprintf(stderr, "streamd: api: %s\n", sd_buf_cstr(&err));
            goto out;
        }
        srv.api_loop.opts.handler_arg = srv.api;
    }
    sd_buf_reset(&err);
    if (sd_server_reconcile(&srv, &err) != 0) {
        sd_log_error("server", "some sinks could not be opened: %s", sd_buf_cstr(&err));
    }

    if (srv.storage != NULL && srv.staging != NULL && srv.tables != NULL &&
        (rc = sd_operator_start(&srv, &srv.storage_op)) != 0) {
        fprintf(stderr, "streamd: cannot start the storage operator: %s\n", sd_strerror(rc));
        goto out;
    }
    /* token commands while running (streamd token ...): without the socket they need a stop */
    if ((rc = sd_control_start(srv.state, c.data_dir, &control)) != 0) {
        sd_log_warn("server",
                    "no control socket %s/%s (%s): token commands need the server stopped",
                    c.data_dir, SD_CONTROL_SOCKET, sd_strerror(rc));
        rc = 0;
    }
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    if ((a->roles & SD_ROLE_SOURCE) && (rc = sd_http_loop_start(&srv.source_loop)) != 0) {
        goto out;
    }
    if ((a->roles & SD_ROLE_API) && (rc = sd_http_loop_start(&srv.api_loop)) != 0) {
        goto out;
    }
    if ((rc = sd_http_loop_start(&metrics_loop)) != 0) {
        goto out;
    }
    if (a->ready_file != NULL && (rc = sd__write_ready_file(&srv, a->ready_file)) != 0) {
        fprintf(stderr, "streamd: cannot write ready file %s: %s\n", a->ready_file,
                sd_strerror(rc));
        goto out;
    }
    sd_log_info("server", "ready: api %s, source %s, metrics %s, data dir %s", srv.api_url,
                srv.source_url, srv.metrics_url, c.data_dir);
    sigwait(&sigs, &sig);
    sd_log_info("server", "signal %d: shutting down", sig);
    rc = 0;

out:
    sd_control_stop(control);
    if (srv.source_loop.is_initialized) {
        sd_http_loop_close_listeners(&srv.source_loop);
    }
    /* Template jobs read their requests and post to the loops: finish them while both run. */
    sd_eval_pool_destroy(srv.eval_pool);
    srv.eval_pool = NULL;
    /* The API may reconcile (and touch storage) until its loop and tasks stop. */
    sd_http_loop_stop(&srv.api_loop, 5000);
    sd_api_destroy(srv.api);
    srv.api = NULL;
    sd_operator_stop(srv.storage_op); /* rotations switch slots: stop before closing storage */
    srv.storage_op = NULL;
    if (srv.ingest != NULL) {
        sd_ingest_shutdown(srv.ingest);
    }
    sd_storage_close(srv.storage); /* final syncs answer the parked requests */
    srv.storage = NULL;
    if (srv.source_loop.is_initialized) {
        sd_http_loop_stop(&srv.source_loop, c.shutdown_timeout_ms);
        sd_http_loop_fini(&srv.source_loop);
    }
    sd_http_loop_fini(&srv.api_loop);
    sd_http_loop_stop(&metrics_loop, 1000);
    sd_http_loop_fini(&metrics_loop);
    sd_ingest_destroy(srv.ingest);
    sd_metrics_destroy(metrics);
    if (srv.tables != NULL) {
        sd_tables_close(srv.tables);
    }
    if (srv.staging != NULL) {
        sd_staging_close(srv.staging);
    }
    if (srv.state != NULL) {
        sd_state_close(srv.state);
    }
    sd_health_destroy(srv.health);
    free(api_public);
    free(source_public);
    sd_buf_fini(&err);
    pthread_mutex_destroy(&srv.reconcile_lock);
    return rc == 0 ? 0 : 1;
}

int sd_cli_run(int argc, char **argv)
{
    struct sd_cli_args a;
    struct sd_config *cfg = NULL;
    struct sd_buf err = SD_BUF_INIT;
    sigset_t sigs;
    int rc;

    if (sd_cli_token_wanted(argc, argv)) {
        return sd_cli_token_run(argc, argv);
    }
    if (sd_cli_jsonnet_wanted(argc, argv)) {
        return sd_cli_jsonnet_run(argc, argv);
    }
    if (sd__parse_args(argc, argv, &a) != 0) {
        free(a.sets);
        return 2;
    }
    if (a.config_docs) {
        sd_config_doc(&err);
        fwrite(err.data, 1, err.len, stdout);
        sd_buf_fini(&err);
        free(a.sets);
        return 0;
    }
    /* Block the shutdown signals in every thread; the main thread takes them with sigwait. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    if (sd_config_load(&a.cfg, &cfg, &err) != 0) {
        fprintf(stderr, "streamd: %s\n", sd_buf_cstr(&err));
        sd_buf_fini(&err);
        free(a.sets);
        return 2;
    }
    if (a.dump_config) {
        sd_config_dump(cfg, a.dump_json, &err);
        fwrite(err.data, 1, err.len, stdout);
        rc = 0;
    } else {
        rc = sd__run_server(&a, cfg);
    }
    sd_config_destroy(cfg);
    sd_buf_fini(&err);
    free(a.sets);
    return rc;
}
