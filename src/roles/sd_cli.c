/* sd_cli.c: the command line: argument parsing and the dispatch to a subcommand or to the
 * node (roles/sd_node.c runs the roles named on the command line).
 *
 * DESIGN: the main thread parses arguments, blocks SIGTERM/SIGINT in every thread (the node
 * takes them with sigwait), loads the config and hands it to the node or the subcommand. */
#include "roles/sd_cli.h"
#include "config/sd_config.h"
#include "config/sd_config_doc.h"
#include "core/sd_alloc.h"
#include "core/sd_buf.h"
#include "roles/sd_cli_jsonnet.h"
#include "roles/sd_cli_token.h"
#include "roles/sd_node.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

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
        unsigned role;
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
        role = sd_node_role_by_name(arg);
        if (role == 0) {
            fprintf(stderr, "streamd: unknown role or command \"%s\" (see --help)\n", arg);
            return -1;
        }
        a->roles |= role;
    }
    if (a->roles == 0) {
        a->roles = SD_ROLE_ALL;
    }
    a->cfg.sets = a->sets;
    a->cfg.nsets = a->nsets;
    a->cfg.envp = environ;
    return 0;
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
        rc = sd_node_run(cfg, a.roles, a.ready_file);
    }
    sd_config_destroy(cfg);
    sd_buf_fini(&err);
    free(a.sets);
    return rc;
}
