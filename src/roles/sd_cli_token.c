/* sd_cli_token.c: "streamd token create|list|revoke": local API tokens from the command line.
 *
 * DESIGN: a command becomes one control request (roles/sd_control.h). On a stopped data dir it
 * runs on the state store directly; while a streamd runs there, the store is locked and the
 * request goes to that server's control socket instead, so tokens change (and a revoked one is
 * refused) without a restart. Either way the answer is printed the same. A new token is printed
 * once, on stdout; only its SHA-256 is stored (sd_auth), and nothing here logs a token. Exit
 * codes: 0 done, 1 failure, 2 usage. */
#include "roles/sd_cli_token.h"
#include "api/sd_auth.h"
#include "config/sd_config.h"
#include "config/sd_config_bind.h"
#include "core/sd_alloc.h"
#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "core/sd_fs.h"
#include "core/sd_log.h"
#include "roles/sd_control.h"
#include "state/sd_state.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

extern char **environ;

enum sd_token_cmd { SD_TOKEN_NONE, SD_TOKEN_CREATE, SD_TOKEN_LIST, SD_TOKEN_REVOKE };

struct sd_token_args {
    struct sd_config_args cfg;
    const char **sets;
    size_t nsets;
    enum sd_token_cmd cmd;
    int64_t project_id; /* 0 = not given */
    int is_admin;
    int is_master;
    int is_json;
    const char *description;
    const char *id;
};

/* Options of the server that take a value (their values are not commands). */
static const char *const sd__value_opts[] = {"--config", "--data-dir", "--set", "--ready-file"};

static void sd__token_usage(FILE *out)
{
    fprintf(out,
            "usage: streamd token create --project N [--admin] [--master|--no-master]\n"
            "                            [--description TEXT] [--json] [OPTIONS]\n"
            "       streamd token list [--project N] [--json] [OPTIONS]\n"
            "       streamd token revoke ID [OPTIONS]\n"
            "\n"
            "Manage the local API tokens (X-StorageApi-Token) in the data dir. While a streamd\n"
            "runs on the data dir, the command goes through its control socket\n"
            "(DATA_DIR/control.sock) and takes effect at once.\n"
            "\n"
            "  create   prints the new token once (only its hash is stored) and its id.\n"
            "           --admin: may write (default: read-only); --no-master: not a master\n"
            "           token (the API answers 401 masterTokenRequired); default --master.\n"
            "  list     prints id, project, admin, master, created and description of every\n"
            "           token (never a token).\n"
            "  revoke   deletes the token with that id; it is rejected (401) at once.\n"
            "\n"
            "OPTIONS (as the server): --config FILE, --data-dir DIR, --set KEY=VALUE.\n"
            "Exit codes: 0 done, 1 failure, 2 usage error.\n");
}

static int sd__is_value_opt(const char *arg, size_t nlen)
{
    for (size_t k = 0; k < sizeof(sd__value_opts) / sizeof(sd__value_opts[0]); k++) {
        if (strlen(sd__value_opts[k]) == nlen && strncmp(arg, sd__value_opts[k], nlen) == 0) {
            return 1;
        }
    }
    return 0;
}

int sd_cli_token_wanted(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];

        if (strncmp(arg, "--", 2) == 0) {
            if (strchr(arg, '=') == NULL && sd__is_value_opt(arg, strlen(arg))) {
                i++; /* skip the option's value */
            }
            continue;
        }
        return strcmp(arg, "token") == 0;
    }
    return 0;
}

/* Parses a positive project id. Returns 0 or -1. */
static int sd__parse_project(const char *text, int64_t *out)
{
    char *end = NULL;
    long long v;

    if (text[0] == '\0' || strspn(text, "0123456789") != strlen(text)) {
        return -1;
    }
    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1) {
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

/* Parses argv into a. Prints the problem and returns -1 on a usage error; exits 0 on --help. */
static int sd__token_parse(int argc, char **argv, struct sd_token_args *a)
{
    int seen_token = 0, seen_master = 0;

    memset(a, 0, sizeof(*a));
    a->is_master = 1;
    a->sets = sd_xcalloc((size_t)argc + 1, sizeof(char *));
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *eq = strchr(arg, '=');
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        const char *value = NULL;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            sd__token_usage(stdout);
            free(a->sets);
            exit(0);
        }
        if (strncmp(arg, "--", 2) != 0) {
            if (!seen_token) {
                seen_token = 1; /* "token" itself (sd_cli_token_wanted checked it) */
            } else if (a->cmd == SD_TOKEN_NONE) {
                if (strcmp(arg, "create") == 0) {
                    a->cmd = SD_TOKEN_CREATE;
                } else if (strcmp(arg, "list") == 0) {
                    a->cmd = SD_TOKEN_LIST;
                } else if (strcmp(arg, "revoke") == 0) {
                    a->cmd = SD_TOKEN_REVOKE;
                } else {
                    fprintf(stderr,
                            "streamd token: unknown command \"%s\" (create, list, revoke)\n", arg);
                    return -1;
                }
            } else if (a->cmd == SD_TOKEN_REVOKE && a->id == NULL) {
                a->id = arg;
            } else {
                fprintf(stderr, "streamd token: unexpected argument \"%s\" (see --help)\n", arg);
                return -1;
            }
            continue;
        }
        /* Flags without a value. */
        if (eq == NULL && strcmp(arg, "--admin") == 0) {
            a->is_admin = 1;
            continue;
        }
        if (eq == NULL && (strcmp(arg, "--master") == 0 || strcmp(arg, "--no-master") == 0)) {
            if (seen_master && a->is_master != (arg[2] == 'm')) {
                fprintf(stderr, "streamd token: --master and --no-master exclude each other\n");
                return -1;
            }
            seen_master = 1;
            a->is_master = arg[2] == 'm';
            continue;
        }
        if (eq == NULL && strcmp(arg, "--json") == 0) {
            a->is_json = 1;
            continue;
        }
        /* Options with a value. */
        if (!sd__is_value_opt(arg, nlen) &&
            !(nlen == strlen("--project") && strncmp(arg, "--project", nlen) == 0) &&
            !(nlen == strlen("--description") && strncmp(arg, "--description", nlen) == 0)) {
            fprintf(stderr, "streamd token: unknown option %.*s (see --help)\n", (int)nlen, arg);
            return -1;
        }
        if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            fprintf(stderr, "streamd token: option %s needs a value\n", arg);
            return -1;
        }
        if (strncmp(arg, "--config", nlen) == 0) {
            a->cfg.file = value;
        } else if (strncmp(arg, "--data-dir", nlen) == 0) {
            a->cfg.data_dir = value;
        } else if (strncmp(arg, "--set", nlen) == 0) {
            a->sets[a->nsets++] = value;
        } else if (strncmp(arg, "--project", nlen) == 0) {
            if (sd__parse_project(value, &a->project_id) != 0) {
                fprintf(stderr, "streamd token: --project needs a project id >= 1, not \"%s\"\n",
                        value);
                return -1;
            }
        } else if (strncmp(arg, "--description", nlen) == 0) {
            a->description = value;
        } else {
            fprintf(stderr, "streamd token: --ready-file is not used by token commands\n");
            return -1;
        }
    }
    if (a->cmd == SD_TOKEN_NONE) {
        fprintf(stderr, "streamd token: missing command: create, list or revoke (see --help)\n");
        return -1;
    }
    if (a->cmd == SD_TOKEN_CREATE && a->project_id == 0) {
        fprintf(stderr, "streamd token create: --project N is required\n");
        return -1;
    }
    if (a->cmd != SD_TOKEN_CREATE && (a->is_admin || seen_master || a->description != NULL)) {
        fprintf(stderr, "streamd token: --admin, --master, --no-master and --description are "
                        "options of create\n");
        return -1;
    }
    if (a->cmd == SD_TOKEN_REVOKE && (a->project_id != 0 || a->is_json)) {
        fprintf(stderr, "streamd token revoke: takes only the token id\n");
        return -1;
    }
    if (a->cmd == SD_TOKEN_REVOKE && a->id == NULL) {
        fprintf(stderr, "streamd token revoke: missing the token ID (see streamd token list)\n");
        return -1;
    }
    if (a->id != NULL && (a->id[0] == '\0' || strspn(a->id, "0123456789") != strlen(a->id) ||
                          strlen(a->id) >= sizeof(((struct sd_auth_token *)0)->id))) {
        fprintf(stderr, "streamd token revoke: \"%s\" is not a token id (digits, see list)\n",
                a->id);
        return -1;
    }
    if (a->description != NULL &&
        strlen(a->description) >= sizeof(((struct sd_auth_token *)0)->description)) {
        fprintf(stderr, "streamd token create: --description is longer than %zu bytes\n",
                sizeof(((struct sd_auth_token *)0)->description) - 1);
        return -1;
    }
    a->cfg.sets = a->sets;
    a->cfg.nsets = a->nsets;
    a->cfg.envp = environ;
    return 0;
}

/* The keys the token commands read, filled once by sd_config_fill. */
struct sd_token_config {
    const char *data_dir;
    const char *state_backend;
    const char *state_path;
};

#define SD_TOKEN_BIND(field, key) SD_BIND(struct sd_token_config, field, key, SD_BIND_STR)
static const struct sd_config_binding sd_token_rows[] = {
    SD_TOKEN_BIND(data_dir, "dataDir"),
    SD_TOKEN_BIND(state_backend, "state.backend"),
    SD_TOKEN_BIND(state_path, "state.embedded.path"),
};
const struct sd_config_bindings sd_token_config_bindings = SD_BINDINGS("token", sd_token_rows);

/* The request of a (parsed) command, as the control socket takes it (sd_control.h). */
static json_t *sd__token_request(const struct sd_token_args *a)
{
    switch (a->cmd) {
    case SD_TOKEN_CREATE:
        return json_pack("{s:s, s:I, s:b, s:b, s:s}", "cmd", "token.create", "projectId",
                         (json_int_t)a->project_id, "isAdmin", a->is_admin, "isMaster",
                         a->is_master, "description", a->description ? a->description : "");
    case SD_TOKEN_LIST:
        return json_pack("{s:s, s:I}", "cmd", "token.list", "projectId", (json_int_t)a->project_id);
    default:
        return json_pack("{s:s, s:s}", "cmd", "token.revoke", "id", a->id);
    }
}

/* Runs request on the state store of cfg, or, while a running streamd holds that store, through
 * its control socket. Returns the answer (owned), or prints why not and returns NULL. Only
 * create makes a new data dir (tokens may be made before the first start); list and revoke
 * refuse an embedded store that does not exist, so a mistyped --data-dir is not an empty list. */
static json_t *sd__token_exec(const struct sd_config *cfg, enum sd_token_cmd cmd,
                              const json_t *request)
{
    struct sd_token_config c;
    struct sd_state *st = NULL;
    json_t *answer = NULL;
    struct stat sb;
    int rc;

    sd_config_fill(cfg, &sd_token_config_bindings, &c);

    if (cmd != SD_TOKEN_CREATE && strcmp(c.state_backend, "embedded") == 0 &&
        stat(c.state_path, &sb) != 0) {
        fprintf(stderr, "streamd token: no state store at %s (wrong --data-dir?)\n", c.state_path);
        return NULL;
    }
    rc = sd_mkdir_p(c.data_dir, SD_DIR_MODE);
    if (rc != 0) {
        fprintf(stderr, "streamd token: cannot create data dir %s: %s\n", c.data_dir,
                sd_strerror(rc));
        return NULL;
    }
    rc = sd_state_open(cfg, &st);
    if (rc == 0) {
        answer = sd_control_exec(st, request);
        sd_state_close(st);
        return answer;
    }
    if (rc != -EBUSY && rc != -EAGAIN) {
        fprintf(stderr, "streamd token: cannot open the state store (%s) at %s: %s\n",
                c.state_backend, c.state_path, sd_strerror(rc));
        return NULL;
    }
    /* the store is locked: a streamd runs on this data dir */
    rc = sd_control_call(c.data_dir, request, &answer);
    if (rc != 0) {
        fprintf(stderr,
                "streamd token: the state store %s is in use by a running streamd, and its "
                "control socket %s/%s does not answer: %s\n",
                c.state_path, c.data_dir, SD_CONTROL_SOCKET, sd_strerror(rc));
    }
    return answer;
}

static void sd__print_json(json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

    printf("%s\n", text);
    free(text);
}

/* Reads a token record of an answer. Returns 0, or -1 if it is not one. */
static int sd__token_record(const json_t *j, struct sd_auth_token *t)
{
    const char *id = NULL, *description = NULL, *created = NULL;
    json_int_t project_id = 0;
    int is_admin = 0, is_master = 0;

    if (json_unpack((json_t *)j, "{s:s, s:I, s:b, s:b, s:s, s:s}", "id", &id, "projectId",
                    &project_id, "isAdmin", &is_admin, "isMaster", &is_master, "description",
                    &description, "created", &created) != 0) {
        return -1;
    }
    memset(t, 0, sizeof(*t));
    snprintf(t->id, sizeof(t->id), "%s", id);
    t->project_id = (int64_t)project_id;
    t->is_admin = is_admin;
    t->is_master = is_master;
    snprintf(t->description, sizeof(t->description), "%s", description);
    snprintf(t->created, sizeof(t->created), "%s", created);
    return 0;
}

static int sd__token_print_create(json_t *answer, const struct sd_token_args *a)
{
    json_t *record = json_object_get(answer, "token");
    const char *secret = json_string_value(json_object_get(answer, "secret"));
    struct sd_auth_token t;

    if (secret == NULL || sd__token_record(record, &t) != 0) {
        return -1;
    }
    if (a->is_json) {
        json_object_set(record, "token", json_object_get(answer, "secret"));
        sd__print_json(record);
    } else {
        printf("id: %s\nproject: %" PRId64 "\nadmin: %s\nmaster: %s\ndescription: %s\n"
               "created: %s\ntoken: %s\n",
               t.id, t.project_id, t.is_admin ? "yes" : "no", t.is_master ? "yes" : "no",
               t.description, t.created, secret);
        fprintf(stderr, "streamd token: the token is shown only this once; only its hash is "
                        "stored\n");
    }
    return 0;
}

static int sd__token_print_list(json_t *answer, const struct sd_token_args *a)
{
    json_t *tokens = json_object_get(answer, "tokens");
    struct sd_auth_token t;
    size_t i;
    json_t *record;

    if (!json_is_array(tokens)) {
        return -1;
    }
    json_array_foreach(tokens, i, record)
    {
        if (sd__token_record(record, &t) != 0) {
            return -1;
        }
    }
    if (a->is_json) {
        sd__print_json(answer);
        return 0;
    }
    printf("%-10s %-8s %-5s %-6s %-24s %s\n", "ID", "PROJECT", "ADMIN", "MASTER", "CREATED",
           "DESCRIPTION");
    json_array_foreach(tokens, i, record)
    {
        sd__token_record(record, &t);
        printf("%-10s %-8" PRId64 " %-5s %-6s %-24s %s\n", t.id, t.project_id,
               t.is_admin ? "yes" : "no", t.is_master ? "yes" : "no",
               t.created[0] ? t.created : "-", t.description);
    }
    return 0;
}

static int sd__token_print_revoke(json_t *answer)
{
    struct sd_auth_token t;

    if (sd__token_record(json_object_get(answer, "token"), &t) != 0) {
        return -1;
    }
    printf("revoked token %s of project %" PRId64 "\n", t.id, t.project_id);
    return 0;
}

/* Prints an answer as the command's output. Returns the exit code. */
static int sd__token_print(json_t *answer, const struct sd_token_args *a)
{
    static const char *const names[] = {"", "create", "list", "revoke"};
    const char *error = json_string_value(json_object_get(answer, "error"));
    const char *message = json_string_value(json_object_get(answer, "message"));
    int rc;

    if (error != NULL) {
        fprintf(stderr, "streamd token %s: %s%s\n", names[a->cmd], message ? message : error,
                strcmp(error, "notFound") == 0 ? " (see streamd token list)" : "");
        return 1;
    }
    switch (a->cmd) {
    case SD_TOKEN_CREATE:
        rc = sd__token_print_create(answer, a);
        break;
    case SD_TOKEN_LIST:
        rc = sd__token_print_list(answer, a);
        break;
    default:
        rc = sd__token_print_revoke(answer);
        break;
    }
    if (rc != 0) {
        fprintf(stderr, "streamd token %s: the answer is malformed\n", names[a->cmd]);
        return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

int sd_cli_token_run(int argc, char **argv)
{
    struct sd_token_args a;
    struct sd_config *cfg = NULL;
    struct sd_buf err = SD_BUF_INIT;
    json_t *request = NULL, *answer = NULL;
    const char *secret;
    int rc;

    sd_log_set_level(SD_LOG_WARN); /* a command: only its own output and real problems */
    if (sd__token_parse(argc, argv, &a) != 0) {
        rc = 2;
        goto out;
    }
    if (sd_config_load(&a.cfg, &cfg, &err) != 0) {
        fprintf(stderr, "streamd token: %s\n", sd_buf_cstr(&err));
        rc = 2;
        goto out;
    }
    request = sd__token_request(&a);
    answer = sd__token_exec(cfg, a.cmd, request);
    rc = answer != NULL ? sd__token_print(answer, &a) : 1;

out:
    secret = json_string_value(json_object_get(answer, "secret"));
    if (secret != NULL) {
        explicit_bzero((char *)secret, strlen(secret));
    }
    json_decref(answer);
    json_decref(request);
    sd_config_destroy(cfg);
    sd_buf_fini(&err);
    free(a.sets);
    return rc;
}
