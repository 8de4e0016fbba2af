/* sd_cli_jsonnet.c: "streamd jsonnet FILE" and "streamd template eval|bench ...": the Jsonnet
 * engine and template columns from the command line, for users and for the differential tests.
 *
 * DESIGN: everything runs on the main thread and exits; no config, no server. "jsonnet" compiles
 * without host functions and with generous limits (the jsonnet CLI's 500 call depth). "template"
 * builds a struct sd_record as the HTTP receiver would (canonical sorted headers, Content-Type
 * from --content-type or the headers, default application/json, the receive time now) and runs
 * the column's own code (sd_template, with the per-record limits), so its output is exactly the
 * value a template column receives. Exit codes: 0 done, 1 evaluation error, 2 usage or I/O. */
#include "roles/sd_cli_jsonnet.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/sd_alloc.h"
#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "core/sd_time.h"
#include "jsonnet/sd_jsonnet.h"
#include "pipeline/sd_record.h"
#include "pipeline/sd_template.h"

#define SD_CLI_MAX_HEADERS 100

struct sd_tpl_args {
    const char *body_file;
    const char *template_file;
    const char *ip;
    const char *content_type;
    int is_raw_string;
    long iterations;
    const char *header_lines[SD_CLI_MAX_HEADERS];
    size_t nheaders;
};

static void sd__jsonnet_usage(FILE *out)
{
    fprintf(out,
            "usage: streamd jsonnet FILE|-\n"
            "       streamd template eval [--body FILE] [--header 'Name: value']... [--ip IP]\n"
            "                             [--content-type TYPE] [--raw-string] TEMPLATE_FILE|-\n"
            "\n"
            "jsonnet: evaluate a Jsonnet program (no imports) and print its value as the\n"
            "jsonnet CLI does.\n"
            "template eval: evaluate a template column's Jsonnet for one record made of the\n"
            "given body, headers and client IP, with the record functions Ip(), Now(),\n"
            "HeaderStr(), Header(), BodyStr() and Body(), and print the value the column\n"
            "receives (before CSV quoting).\n"
            "  --body FILE          the request body (default: empty; - for stdin)\n"
            "  --header 'N: V'      a request header (repeatable)\n"
            "  --ip IP              the client IP (default 127.0.0.1)\n"
            "  --content-type TYPE  the body's type (default: the Content-Type header, else\n"
            "                       application/json)\n"
            "  --raw-string         the column's rawString: a string value without quotes\n"
            "Errors go to stderr; exit codes: 0 done, 1 evaluation error, 2 usage error.\n");
}

int sd_cli_jsonnet_wanted(int argc, char **argv)
{
    return argc >= 2 && (strcmp(argv[1], "jsonnet") == 0 || strcmp(argv[1], "template") == 0);
}

/* Reads a whole file ("-": stdin) into out. Returns 0 or -1 (printed). */
static int sd__read_all(const char *path, struct sd_buf *out)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    char chunk[65536];
    size_t n;
    int rc = 0;

    if (f == NULL) {
        fprintf(stderr, "streamd: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (sd_buf_append(out, chunk, n) != 0) {
            fprintf(stderr, "streamd: %s: out of memory\n", path);
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "streamd: cannot read %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    if (f != stdin) {
        fclose(f);
    }
    return rc;
}

static const char *sd__display_name(const char *path)
{
    return strcmp(path, "-") == 0 ? "<stdin>" : path;
}

/* Prints a compile error "L:C: message" as the jsonnet CLI prints static errors. */
static void sd__static_error(const char *file, const char *msg)
{
    fprintf(stderr, "streamd: STATIC ERROR: %s:%s\n", sd__display_name(file), msg);
}

static void sd__runtime_error(const char *file, const char *msg, unsigned line, unsigned col)
{
    fprintf(stderr, "streamd: RUNTIME ERROR: %s\n", msg);
    if (line > 0) {
        fprintf(stderr, "\t%s:%u:%u\n", sd__display_name(file), line, col);
    } else {
        fprintf(stderr, "\t%s\n", sd__display_name(file));
    }
}

/* ---- streamd jsonnet ---------------------------------------------------------------------- */

static int sd__run_jsonnet(int argc, char **argv)
{
    struct sd_buf src = SD_BUF_INIT;
    struct sd_buf out = SD_BUF_INIT;
    struct sd_buf err = SD_BUF_INIT;
    struct sd_jn_program *prog = NULL;
    struct sd_jn_vm *vm = NULL;
    struct sd_jn_limits lim;
    const char *file = NULL;
    unsigned line = 0;
    unsigned col = 0;
    int rc;
    int code = 1;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            sd__jsonnet_usage(stdout);
            return 0;
        }
        if (file != NULL || (argv[i][0] == '-' && argv[i][1] != '\0')) {
            fprintf(stderr, "streamd: jsonnet: unexpected argument %s (see --help)\n", argv[i]);
            return 2;
        }
        file = argv[i];
    }
    if (file == NULL) {
        fprintf(stderr, "streamd: jsonnet: a FILE (or - for stdin) is required\n");
        return 2;
    }
    if (sd__read_all(file, &src) != 0) {
        return 2;
    }
    rc = sd_jn_compile(src.data != NULL ? src.data : "", src.len, sd__display_name(file), NULL, 0,
                       &prog, &err);
    if (rc == SD_EPARSE) {
        sd__static_error(file, sd_buf_cstr(&err));
        goto out;
    }
    if (rc != 0) {
        fprintf(stderr, "streamd: %s\n", sd_strerror(rc));
        goto out;
    }
    memset(&lim, 0, sizeof(lim));
    lim.max_steps = 1000000000ull; /* a hang is a bug of the program, not a limit to reach */
    lim.max_calls = 500;           /* the jsonnet CLI's --max-stack */
    lim.max_stack = 4u * 1024 * 1024;
    vm = sd_jn_vm_new(&lim);
    if (vm == NULL) {
        fprintf(stderr, "streamd: out of memory\n");
        goto out;
    }
    rc = sd_jn_eval(prog, vm, NULL, SD_JN_OUT_PRETTY, &out, &err);
    if (rc == SD_EINVAL) {
        sd_jn_vm_error_pos(vm, &line, &col);
        sd__runtime_error(file, sd_buf_cstr(&err), line, col);
        goto out;
    }
    if (rc != 0) {
        fprintf(stderr, "streamd: %s\n", sd_strerror(rc));
        goto out;
    }
    if (out.len > 0 && fwrite(out.data, 1, out.len, stdout) != out.len) {
        fprintf(stderr, "streamd: cannot write the output: %s\n", strerror(errno));
        goto out;
    }
    code = fflush(stdout) == 0 ? 0 : 1;
out:
    sd_jn_vm_free(vm);
    sd_jn_program_free(prog);
    sd_buf_fini(&src);
    sd_buf_fini(&out);
    sd_buf_fini(&err);
    return code;
}

/* ---- streamd template --------------------------------------------------------------------- */

/* Parses the options of template eval/bench (argv[3..]). Returns 0, or 2 after printing. */
static int sd__tpl_parse(int argc, char **argv, int is_bench, struct sd_tpl_args *a)
{
    memset(a, 0, sizeof(*a));
    a->ip = "127.0.0.1";
    a->iterations = 1000000;
    for (int i = 3; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = NULL;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            sd__jsonnet_usage(stdout);
            exit(0);
        }
        if (strcmp(arg, "--raw-string") == 0) {
            a->is_raw_string = 1;
            continue;
        }
        if (strcmp(arg, "--body") == 0 || strcmp(arg, "--header") == 0 ||
            strcmp(arg, "--ip") == 0 || strcmp(arg, "--content-type") == 0 ||
            (is_bench && strcmp(arg, "--iterations") == 0)) {
            if (i + 1 >= argc) {
                fprintf(stderr, "streamd: template: option %s needs a value\n", arg);
                return 2;
            }
            value = argv[++i];
            if (strcmp(arg, "--body") == 0) {
                a->body_file = value;
            } else if (strcmp(arg, "--ip") == 0) {
                a->ip = value;
            } else if (strcmp(arg, "--content-type") == 0) {
                a->content_type = value;
            } else if (strcmp(arg, "--iterations") == 0) {
                char *end = NULL;
                a->iterations = strtol(value, &end, 10);
                if (end == value || *end != '\0' || a->iterations < 1) {
                    fprintf(stderr, "streamd: template: --iterations needs a positive number\n");
                    return 2;
                }
            } else {
                if (a->nheaders == SD_CLI_MAX_HEADERS) {
                    fprintf(stderr, "streamd: template: at most %d headers\n", SD_CLI_MAX_HEADERS);
                    return 2;
                }
                if (strchr(value, ':') == NULL || value[0] == ':') {
                    fprintf(stderr, "streamd: template: --header needs 'Name: value', got '%s'\n",
                            value);
                    return 2;
                }
                a->header_lines[a->nheaders++] = value;
            }
            continue;
        }
        if (arg[0] == '-' && arg[1] != '\0') {
            fprintf(stderr, "streamd: template: unknown option %s (see --help)\n", arg);
            return 2;
        }
        if (a->template_file != NULL) {
            fprintf(stderr, "streamd: template: unexpected argument %s\n", arg);
            return 2;
        }
        a->template_file = arg;
    }
    if (a->template_file == NULL) {
        fprintf(stderr, "streamd: template: a TEMPLATE_FILE (or - for stdin) is required\n");
        return 2;
    }
    if (a->body_file != NULL && strcmp(a->body_file, "-") == 0 &&
        strcmp(a->template_file, "-") == 0) {
        fprintf(stderr, "streamd: template: the body and the template cannot both be stdin\n");
        return 2;
    }
    if (strlen(a->ip) >= sizeof(((struct sd_record *)0)->ip)) {
        fprintf(stderr, "streamd: template: --ip is too long\n");
        return 2;
    }
    return 0;
}

/* The headers of a record: names canonical, sorted; they point into names (owned). */
struct sd_tpl_headers {
    struct sd_header h[SD_CLI_MAX_HEADERS + 1];
    char *names[SD_CLI_MAX_HEADERS + 1];
    size_t n;
    struct sd_str content_type;
};

static struct sd_str sd__trim(const char *p, size_t len)
{
    struct sd_str s;

    while (len > 0 && (*p == ' ' || *p == '\t')) {
        p++;
        len--;
    }
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
        len--;
    }
    s.p = p;
    s.len = len;
    return s;
}

static void sd__headers_build(const struct sd_tpl_args *a, struct sd_tpl_headers *hs)
{
    const char *ct = NULL;
    size_t ct_len = 0;

    memset(hs, 0, sizeof(*hs));
    for (size_t i = 0; i < a->nheaders; i++) {
        const char *line = a->header_lines[i];
        const char *colon = strchr(line, ':');
        struct sd_str name = sd__trim(line, (size_t)(colon - line));
        struct sd_str value = sd__trim(colon + 1, strlen(colon + 1));
        char *canon = sd_xmalloc(name.len + 1);

        sd_header_canonicalize(name.p, name.len, canon);
        canon[name.len] = '\0';
        hs->names[hs->n] = canon;
        hs->h[hs->n].name.p = canon;
        hs->h[hs->n].name.len = name.len;
        hs->h[hs->n].value = value;
        if (name.len == 12 && strcmp(canon, "Content-Type") == 0 && ct == NULL) {
            ct = value.p;
            ct_len = value.len;
        }
        hs->n++;
    }
    if (a->content_type != NULL) {
        hs->content_type.p = a->content_type;
        hs->content_type.len = strlen(a->content_type);
    } else if (ct != NULL) {
        hs->content_type.p = ct;
        hs->content_type.len = ct_len;
    } else {
        hs->content_type = SD_STR_LIT("application/json");
    }
    if (ct == NULL) { /* as a client sends it */
        hs->h[hs->n].name = SD_STR_LIT("Content-Type");
        hs->h[hs->n].value = hs->content_type;
        hs->n++;
    }
    sd_record_sort_headers(hs->h, hs->n);
}

static void sd__headers_free(struct sd_tpl_headers *hs)
{
    for (size_t i = 0; i < SD_CLI_MAX_HEADERS + 1; i++) {
        free(hs->names[i]);
    }
}

static void sd__record_fill(struct sd_record *rec, const struct sd_tpl_args *a,
                            const struct sd_tpl_headers *hs, const struct sd_buf *body,
                            int64_t now_ms)
{
    sd_record_init(rec);
    rec->recv_time_ms = now_ms;
    snprintf(rec->ip, sizeof(rec->ip), "%s", a->ip);
    rec->headers = hs->h;
    rec->nheaders = hs->n;
    rec->body.p = body->data != NULL ? body->data : "";
    rec->body.len = body->len;
    rec->content_type = hs->content_type;
}

static double sd__mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* template bench: evaluations/s with the body parsed once (the column's own cost: path columns
 * share the parse), then per record with the body parsed each time. */
static int sd__tpl_bench(const struct sd_template *t, const struct sd_tpl_args *a,
                         const struct sd_tpl_headers *hs, const struct sd_buf *body)
{
    struct sd_buf out = SD_BUF_INIT;
    struct sd_map_error merr;
    struct sd_record rec;
    int64_t now_ms = sd_now_ms();
    double t0;
    double t1;
    double t2;
    long i;
    int rc = 0;

    sd__record_fill(&rec, a, hs, body, now_ms);
    t0 = sd__mono_s();
    for (i = 0; i < a->iterations && rc == 0; i++) {
        sd_buf_reset(&out);
        rc = sd_template_eval(t, &rec, a->is_raw_string, &out, &merr);
    }
    t1 = sd__mono_s();
    sd_record_fini(&rec);
    for (i = 0; i < a->iterations && rc == 0; i++) {
        sd__record_fill(&rec, a, hs, body, now_ms);
        sd_buf_reset(&out);
        rc = sd_template_eval(t, &rec, a->is_raw_string, &out, &merr);
        sd_record_fini(&rec);
    }
    t2 = sd__mono_s();
    if (rc != 0) {
        fprintf(stderr, "streamd: template bench: evaluation failed: %s\n",
                rc < 0 ? sd_strerror(rc) : merr.message);
        sd_buf_fini(&out);
        return 1;
    }
    printf("iterations=%ld evals_per_s=%.0f records_per_s=%.0f ns_per_eval=%.0f "
           "ns_per_record=%.0f value=%s\n",
           a->iterations, (double)a->iterations / (t1 - t0), (double)a->iterations / (t2 - t1),
           (t1 - t0) * 1e9 / (double)a->iterations, (t2 - t1) * 1e9 / (double)a->iterations,
           out.len < 200 ? sd_buf_cstr(&out) : "(long)");
    sd_buf_fini(&out);
    return 0;
}

static int sd__run_template(int argc, char **argv)
{
    struct sd_tpl_args a;
    struct sd_tpl_headers hs;
    struct sd_buf src = SD_BUF_INIT;
    struct sd_buf body = SD_BUF_INIT;
    struct sd_buf out = SD_BUF_INIT;
    struct sd_buf err = SD_BUF_INIT;
    struct sd_template *t = NULL;
    struct sd_map_error merr;
    struct sd_record rec;
    unsigned line = 0;
    unsigned col = 0;
    int is_bench;
    int code = 1;
    int rc;

    if (argc < 3 || strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0) {
        sd__jsonnet_usage(argc < 3 ? stderr : stdout);
        return argc < 3 ? 2 : 0;
    }
    if (strcmp(argv[2], "eval") != 0 && strcmp(argv[2], "bench") != 0) {
        fprintf(stderr, "streamd: template: unknown command %s (see --help)\n", argv[2]);
        return 2;
    }
    is_bench = strcmp(argv[2], "bench") == 0;
    rc = sd__tpl_parse(argc, argv, is_bench, &a);
    if (rc != 0) {
        return rc;
    }
    if (sd__read_all(a.template_file, &src) != 0 ||
        (a.body_file != NULL && sd__read_all(a.body_file, &body) != 0)) {
        sd_buf_fini(&src);
        sd_buf_fini(&body);
        return 2;
    }
    sd__headers_build(&a, &hs);
    rc = sd_template_compile(src.data != NULL ? src.data : "", src.len, &t, &err);
    if (rc == SD_EPARSE) {
        sd__static_error(a.template_file, sd_buf_cstr(&err));
        goto out;
    }
    if (rc != 0) {
        fprintf(stderr, "streamd: %s\n", sd_strerror(rc));
        goto out;
    }
    if (is_bench) {
        code = sd__tpl_bench(t, &a, &hs, &body);
        goto out;
    }
    sd__record_fill(&rec, &a, &hs, &body, sd_now_ms());
    memset(&merr, 0, sizeof(merr));
    rc = sd_template_eval(t, &rec, a.is_raw_string, &out, &merr);
    sd_record_fini(&rec);
    if (rc < 0) {
        fprintf(stderr, "streamd: %s\n", sd_strerror(rc));
        goto out;
    }
    if (rc > 0) {
        sd_template_error_pos(&line, &col);
        sd__runtime_error(a.template_file, merr.message, line, col);
        goto out;
    }
    if (out.len > 0 && memchr(out.data, '\0', out.len) != NULL) {
        fprintf(stderr, "streamd: the value contains a NUL character (the column answers 400)\n");
        goto out;
    }
    if ((out.len > 0 && fwrite(out.data, 1, out.len, stdout) != out.len) ||
        fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
        fprintf(stderr, "streamd: cannot write the output: %s\n", strerror(errno));
        goto out;
    }
    code = 0;
out:
    sd_template_destroy(t);
    sd_template_thread_cleanup();
    sd__headers_free(&hs);
    sd_buf_fini(&src);
    sd_buf_fini(&body);
    sd_buf_fini(&out);
    sd_buf_fini(&err);
    return code;
}

int sd_cli_jsonnet_run(int argc, char **argv)
{
    if (strcmp(argv[1], "jsonnet") == 0) {
        return sd__run_jsonnet(argc, argv);
    }
    return sd__run_template(argc, argv);
}
