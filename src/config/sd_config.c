/* sd_config.c: builds the effective configuration from the option table and the four layers
 * (defaults, config file, STREAM_* environment, --set), fills derived defaults, runs the
 * cross-field checks, and serves typed lookups and the dump.
 *
 * DESIGN: one value slot per table entry, in table order, so a lookup is sd_opt_find plus an
 * index. Each slot owns its canonical text (and, for lists, its items); a new value is built
 * completely before it replaces the old one, so a failed sd_config_set leaves the old value.
 * Loading runs on the start-up thread and allocates with sd_x* (abort on OOM). Every user error
 * is returned as SD_EINVAL with one message saying where the value came from; nothing is logged
 * except the warning for an unknown STREAM_* variable. Config files are parsed with libyaml's
 * event API (aliases refused, nesting bounded) or jansson. */
#include "config/sd_config.h"
#include "config/sd_opt.h"
#include "core/sd_alloc.h"
#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "core/sd_fs.h"
#include "core/sd_log.h"

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

/* Deepest nesting of maps accepted in a config file. */
#define SD_CONFIG_MAX_DEPTH 32
/* Longest STREAM_* name considered (longer ones are unknown). */
#define SD_CONFIG_ENV_MAX 256
/* Minimum length of auth.adminToken (DESIGN.md §2). */
#define SD_ADMIN_TOKEN_MIN 16
/* Length of encryption.aes.secretKey (AES-256). */
#define SD_AES_KEY_LEN 32
/* Top-level member of the JSON dump that lists the marked keys (the loader skips it). */
#define SD_CONFIG_MARKS_MEMBER "$marks"

struct sd_config_val {
    char *text;   /* canonical text, owned */
    int64_t num;  /* BOOL, INT, SIZE (bytes), DURATION (ms), ENUM index, LIST count */
    double dbl;   /* FLOAT */
    char **items; /* LIST: NULL-terminated, owned */
    size_t nitems;
    int is_set;
};

struct sd_config {
    const struct sd_opt *opts;
    size_t n;
    struct sd_config_val *vals;
};

/* ---- values ---- */

static void sd_val_free(struct sd_config_val *v)
{
    size_t i;

    free(v->text);
    for (i = 0; v->items != NULL && v->items[i] != NULL; i++) {
        free(v->items[i]);
    }
    free(v->items);
    memset(v, 0, sizeof(*v));
}

static int sd_is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Splits an already validated comma list into owned, trimmed items. */
static void sd_val_split_list(struct sd_config_val *v, const char *text, struct sd_buf *joined)
{
    const char *p = text;
    size_t n = 0;

    v->items = sd_xcalloc((size_t)v->num + 1, sizeof(char *));
    while (sd_is_blank(*p)) {
        p++;
    }
    while (*p != '\0' && n < (size_t)v->num) {
        const char *start;
        const char *end;
        while (sd_is_blank(*p)) {
            p++;
        }
        start = p;
        while (*p != '\0' && *p != ',') {
            p++;
        }
        end = p;
        while (end > start && sd_is_blank(end[-1])) {
            end--;
        }
        v->items[n] = sd_xstrndup(start, (size_t)(end - start));
        sd_buf_printf(joined, "%s%s", n ? "," : "", v->items[n]);
        n++;
        if (*p == ',') {
            p++;
        }
    }
    v->nitems = n;
}

/* Formats a double so that strtod reads back the same value, as briefly as possible. */
static void sd_format_float(double d, char *out, size_t outlen)
{
    snprintf(out, outlen, "%.15g", d);
    if (strtod(out, NULL) != d) {
        snprintf(out, outlen, "%.17g", d);
    }
}

/* Parses text for opt into a fresh value (canonical text included). */
static int sd_val_make(const struct sd_opt *opt, const char *text, struct sd_config_val *v,
                       struct sd_buf *err)
{
    struct sd_buf canon = SD_BUF_INIT;
    char tmp[64];
    int rc;

    memset(v, 0, sizeof(*v));
    rc = sd_opt_parse(opt, text, &v->num, &v->dbl, err);
    if (rc != 0) {
        return rc;
    }
    switch (opt->type) {
    case SD_OPT_BOOL:
        sd_buf_append_str(&canon, v->num ? "true" : "false");
        break;
    case SD_OPT_INT:
        sd_buf_printf(&canon, "%" PRId64, v->num);
        break;
    case SD_OPT_FLOAT:
        sd_format_float(v->dbl, tmp, sizeof(tmp));
        sd_buf_append_str(&canon, tmp);
        break;
    case SD_OPT_SIZE:
        sd_format_size(v->num, tmp, sizeof(tmp));
        sd_buf_append_str(&canon, tmp);
        break;
    case SD_OPT_DURATION:
        sd_format_duration(v->num, tmp, sizeof(tmp));
        sd_buf_append_str(&canon, tmp);
        break;
    case SD_OPT_ENUM:
        sd_buf_append_str(&canon, opt->enum_values[v->num]);
        break;
    case SD_OPT_LIST:
        sd_val_split_list(v, text, &canon);
        break;
    case SD_OPT_STRING:
    default:
        sd_buf_append_str(&canon, text);
        break;
    }
    if (sd_buf_reserve(&canon, 0) != 0) {
        abort(); /* OOM on the control plane, as sd_x* does */
    }
    v->text = sd_buf_steal(&canon);
    return 0;
}

static size_t sd_index(const struct sd_config *cfg, const struct sd_opt *opt)
{
    return (size_t)(opt - cfg->opts);
}

/* Sets opt from text. On failure err holds origin (if any) + the parser's message. */
static int sd_assign(struct sd_config *cfg, const struct sd_opt *opt, const char *text, int is_set,
                     const char *origin, struct sd_buf *err)
{
    struct sd_config_val v;
    struct sd_buf msg = SD_BUF_INIT;
    size_t i = sd_index(cfg, opt);
    int rc;

    rc = sd_val_make(opt, text, &v, &msg);
    if (rc != 0) {
        if (err != NULL) {
            sd_buf_reset(err);
            sd_buf_printf(err, "%s%s", origin ? origin : "", msg.len ? msg.data : "");
        }
        sd_buf_fini(&msg);
        return rc;
    }
    sd_buf_fini(&msg);
    v.is_set = is_set;
    sd_val_free(&cfg->vals[i]);
    cfg->vals[i] = v;
    return 0;
}

static const struct sd_config_val *sd_val(const struct sd_config *cfg, const char *key)
{
    const struct sd_opt *opt = sd_opt_find(key);

    if (opt == NULL) {
        sd_log_error("config", "unknown config key \"%s\" requested", key ? key : "(null)");
        abort();
    }
    return &cfg->vals[sd_index(cfg, opt)];
}

/* Writes the unknown-key message, with a suggestion when there is one. */
static void sd_unknown_key(const char *origin, const char *key, struct sd_buf *err)
{
    const char *hint = sd_opt_suggest(key);

    if (err == NULL) {
        return;
    }
    sd_buf_reset(err);
    sd_buf_printf(err, "%sunknown config key ", origin);
    sd__opt_echo(err, key);
    if (hint != NULL) {
        sd_buf_printf(err, " (did you mean \"%s\"?)", hint);
    }
}

/* ---- config documents (YAML, JSON) ---- */

struct sd_doc {
    struct sd_config *cfg;
    const char *name;
    struct sd_buf *err;
    struct sd_buf path; /* dotted prefix of the current map */
};

/* Sets "<path>.<key>" from a scalar or a joined list, naming the file and line on failure. */
static int sd_doc_leaf(struct sd_doc *doc, const char *key, const char *text, int is_list,
                       size_t line)
{
    struct sd_buf full = SD_BUF_INIT;
    struct sd_buf origin = SD_BUF_INIT;
    const struct sd_opt *opt;
    int rc = 0;

    sd_buf_printf(&full, "%s%s%s", doc->path.len ? doc->path.data : "", doc->path.len ? "." : "",
                  key);
    if (line > 0) {
        sd_buf_printf(&origin, "config file \"%s\", line %zu: ", doc->name, line);
    } else {
        sd_buf_printf(&origin, "config file \"%s\": ", doc->name);
    }
    opt = sd_opt_find(sd_buf_cstr(&full));
    if (opt == NULL) {
        sd_unknown_key(sd_buf_cstr(&origin), sd_buf_cstr(&full), doc->err);
        rc = SD_EINVAL;
    } else if (text == NULL) {
        /* a map where a value belongs */
        if (doc->err != NULL) {
            sd_buf_reset(doc->err);
            sd_buf_printf(doc->err, "%s\"%s\" expects a value, not a mapping", origin.data,
                          opt->key);
        }
        rc = SD_EINVAL;
    } else if (is_list && opt->type != SD_OPT_LIST) {
        if (doc->err != NULL) {
            sd_buf_reset(doc->err);
            sd_buf_printf(doc->err, "%s\"%s\" expects a single value, not a list", origin.data,
                          opt->key);
        }
        rc = SD_EINVAL;
    } else {
        rc = sd_assign(doc->cfg, opt, text, 1, origin.data, doc->err);
    }
    sd_buf_fini(&full);
    sd_buf_fini(&origin);
    return rc;
}

/* A null value: the key keeps its value, but it must still be a known key. */
static int sd_doc_null(struct sd_doc *doc, const char *key, size_t line)
{
    struct sd_buf full = SD_BUF_INIT;
    int rc = 0;

    sd_buf_printf(&full, "%s%s%s", doc->path.len ? doc->path.data : "", doc->path.len ? "." : "",
                  key);
    if (sd_opt_find(sd_buf_cstr(&full)) == NULL) {
        rc = sd_doc_leaf(doc, key, "", 0, line);
    }
    sd_buf_fini(&full);
    return rc;
}

/* Checks that a map is not opened at a key that takes a value. */
static int sd_doc_check_map(struct sd_doc *doc, const char *key, size_t line)
{
    struct sd_buf full = SD_BUF_INIT;
    int rc = 0;

    sd_buf_printf(&full, "%s%s%s", doc->path.len ? doc->path.data : "", doc->path.len ? "." : "",
                  key);
    if (sd_opt_find(sd_buf_cstr(&full)) != NULL) {
        rc = sd_doc_leaf(doc, key, NULL, 0, line);
    }
    sd_buf_fini(&full);
    return rc;
}

static int sd_doc_fail(struct sd_doc *doc, size_t line, const char *what)
{
    if (doc->err != NULL) {
        sd_buf_reset(doc->err);
        if (line > 0) {
            sd_buf_printf(doc->err, "config file \"%s\", line %zu: %s", doc->name, line, what);
        } else {
            sd_buf_printf(doc->err, "config file \"%s\": %s", doc->name, what);
        }
    }
    return SD_EINVAL;
}

/* Appends one list item; items may not hold the list separator. */
static int sd_doc_list_item(struct sd_doc *doc, struct sd_buf *list, const char *item, size_t line)
{
    if (strchr(item, ',') != NULL) {
        return sd_doc_fail(doc, line, "list items must not contain \",\"");
    }
    sd_buf_printf(list, "%s%s", list->len ? "," : "", item);
    return 0;
}

static void sd_doc_push(struct sd_doc *doc, const char *key, size_t *saved)
{
    *saved = doc->path.len;
    sd_buf_printf(&doc->path, "%s%s", doc->path.len ? "." : "", key);
}

static void sd_doc_pop(struct sd_doc *doc, size_t saved)
{
    doc->path.len = saved;
    if (doc->path.data != NULL) {
        doc->path.data[saved] = '\0';
    }
}

/* -- YAML -- */

static int sd_yaml_next(struct sd_doc *doc, yaml_parser_t *parser, yaml_event_t *ev)
{
    if (yaml_parser_parse(parser, ev)) {
        return 0;
    }
    if (doc->err != NULL) {
        sd_buf_reset(doc->err);
        sd_buf_printf(doc->err, "config file \"%s\", line %zu, column %zu: %s%s%s", doc->name,
                      parser->problem_mark.line + 1, parser->problem_mark.column + 1,
                      parser->context ? parser->context : "", parser->context ? ": " : "",
                      parser->problem ? parser->problem : "YAML syntax error");
    }
    return SD_EINVAL;
}

static size_t sd_yaml_line(const yaml_event_t *ev)
{
    return ev->start_mark.line + 1;
}

/* Returns the scalar of ev as a C string, or NULL if it holds a NUL byte. */
static const char *sd_yaml_scalar(const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;

    if (strlen(s) != ev->data.scalar.length) {
        return NULL;
    }
    return s;
}

/* A plain empty, "~" or "null" scalar is YAML's null: the key keeps its value. */
static int sd_yaml_is_null(const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;

    return ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (*s == '\0' || strcmp(s, "~") == 0 || strcasecmp(s, "null") == 0);
}

static int sd_yaml_sequence(struct sd_doc *doc, yaml_parser_t *parser, const char *key, size_t line)
{
    struct sd_buf list = SD_BUF_INIT;
    yaml_event_t ev;
    int rc = 0;

    for (;;) {
        const char *item;
        rc = sd_yaml_next(doc, parser, &ev);
        if (rc != 0) {
            break;
        }
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            rc = sd_doc_leaf(doc, key, sd_buf_cstr(&list), 1, line);
            break;
        }
        if (ev.type != YAML_SCALAR_EVENT) {
            rc = sd_doc_fail(doc, sd_yaml_line(&ev),
                             ev.type == YAML_ALIAS_EVENT ? "YAML aliases are not supported"
                                                         : "list items must be plain values");
            yaml_event_delete(&ev);
            break;
        }
        item = sd_yaml_scalar(&ev);
        rc = item == NULL ? sd_doc_fail(doc, sd_yaml_line(&ev), "value contains a NUL byte")
                          : sd_doc_list_item(doc, &list, item, sd_yaml_line(&ev));
        yaml_event_delete(&ev);
        if (rc != 0) {
            break;
        }
    }
    sd_buf_fini(&list);
    return rc;
}

/* Consumes the events of a mapping whose start event was just read. */
static int sd_yaml_mapping(struct sd_doc *doc, yaml_parser_t *parser, int depth)
{
    yaml_event_t kev;
    yaml_event_t vev;
    int rc = 0;

    if (depth > SD_CONFIG_MAX_DEPTH) {
        return sd_doc_fail(doc, 0, "mappings nested too deeply");
    }
    for (;;) {
        const char *key;
        size_t line;
        rc = sd_yaml_next(doc, parser, &kev);
        if (rc != 0) {
            return rc;
        }
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            return 0;
        }
        line = sd_yaml_line(&kev);
        if (kev.type != YAML_SCALAR_EVENT) {
            yaml_event_delete(&kev);
            return sd_doc_fail(doc, line,
                               kev.type == YAML_ALIAS_EVENT ? "YAML aliases are not supported"
                                                            : "mapping keys must be plain text");
        }
        key = sd_yaml_scalar(&kev);
        if (key == NULL) {
            yaml_event_delete(&kev);
            return sd_doc_fail(doc, line, "key contains a NUL byte");
        }
        rc = sd_yaml_next(doc, parser, &vev);
        if (rc != 0) {
            yaml_event_delete(&kev);
            return rc;
        }
        line = sd_yaml_line(&vev);
        switch (vev.type) {
        case YAML_SCALAR_EVENT:
            if (sd_yaml_scalar(&vev) == NULL) {
                rc = sd_doc_fail(doc, line, "value contains a NUL byte");
            } else if (sd_yaml_is_null(&vev)) {
                rc = sd_doc_null(doc, key, line);
            } else {
                rc = sd_doc_leaf(doc, key, sd_yaml_scalar(&vev), 0, line);
            }
            break;
        case YAML_SEQUENCE_START_EVENT:
            rc = sd_yaml_sequence(doc, parser, key, line);
            break;
        case YAML_MAPPING_START_EVENT:
            rc = sd_doc_check_map(doc, key, line);
            if (rc == 0) {
                size_t saved;
                sd_doc_push(doc, key, &saved);
                rc = sd_yaml_mapping(doc, parser, depth + 1);
                sd_doc_pop(doc, saved);
            }
            break;
        case YAML_ALIAS_EVENT:
            rc = sd_doc_fail(doc, line, "YAML aliases are not supported");
            break;
        default:
            rc = sd_doc_fail(doc, line, "unexpected YAML event");
            break;
        }
        yaml_event_delete(&vev);
        yaml_event_delete(&kev);
        if (rc != 0) {
            return rc;
        }
    }
}

static int sd_yaml_apply(struct sd_doc *doc, const char *text, size_t len)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    int rc;
    int docs = 0;

    if (!yaml_parser_initialize(&parser)) {
        abort(); /* OOM */
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    for (;;) {
        rc = sd_yaml_next(doc, &parser, &ev);
        if (rc != 0) {
            break;
        }
        if (ev.type == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (ev.type == YAML_DOCUMENT_START_EVENT && ++docs > 1) {
            rc = sd_doc_fail(doc, sd_yaml_line(&ev), "only one YAML document is supported");
        } else if (ev.type == YAML_MAPPING_START_EVENT) {
            rc = sd_yaml_mapping(doc, &parser, 1);
        } else if (ev.type == YAML_SCALAR_EVENT && sd_yaml_is_null(&ev)) {
            rc = 0; /* empty document */
        } else if (ev.type == YAML_SCALAR_EVENT || ev.type == YAML_SEQUENCE_START_EVENT ||
                   ev.type == YAML_ALIAS_EVENT) {
            rc = sd_doc_fail(doc, sd_yaml_line(&ev), "the top level must be a mapping");
        }
        yaml_event_delete(&ev);
        if (rc != 0) {
            break;
        }
    }
    yaml_parser_delete(&parser);
    return rc;
}

/* -- JSON -- */

/* Text of a JSON scalar (string, number, boolean) into out; -1 for other types. */
static int sd_json_scalar(json_t *v, struct sd_buf *out)
{
    char tmp[64];

    switch (json_typeof(v)) {
    case JSON_STRING:
        sd_buf_append(out, json_string_value(v), json_string_length(v));
        return 0;
    case JSON_INTEGER:
        sd_buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return 0;
    case JSON_REAL:
        sd_format_float(json_real_value(v), tmp, sizeof(tmp));
        sd_buf_append_str(out, tmp);
        return 0;
    case JSON_TRUE:
        sd_buf_append_str(out, "true");
        return 0;
    case JSON_FALSE:
        sd_buf_append_str(out, "false");
        return 0;
    default:
        return -1;
    }
}

static int sd_json_object(struct sd_doc *doc, json_t *obj, int depth)
{
    const char *key;
    json_t *v;
    int rc = 0;

    if (depth > SD_CONFIG_MAX_DEPTH) {
        return sd_doc_fail(doc, 0, "objects nested too deeply");
    }
    json_object_foreach(obj, key, v)
    {
        struct sd_buf text = SD_BUF_INIT;
        size_t i;
        json_t *item;

        if (depth == 1 && strcmp(key, SD_CONFIG_MARKS_MEMBER) == 0) {
            continue; /* the dump's annotation of marked keys, not a key */
        }
        if (json_is_null(v)) {
            rc = sd_doc_null(doc, key, 0);
        } else if (json_is_object(v)) {
            rc = sd_doc_check_map(doc, key, 0);
            if (rc == 0) {
                size_t saved;
                sd_doc_push(doc, key, &saved);
                rc = sd_json_object(doc, v, depth + 1);
                sd_doc_pop(doc, saved);
            }
        } else if (json_is_array(v)) {
            json_array_foreach(v, i, item)
            {
                struct sd_buf one = SD_BUF_INIT;
                rc = sd_json_scalar(item, &one) == 0
                         ? sd_doc_list_item(doc, &text, sd_buf_cstr(&one), 0)
                         : sd_doc_fail(doc, 0, "list items must be plain values");
                sd_buf_fini(&one);
                if (rc != 0) {
                    break;
                }
            }
            if (rc == 0) {
                rc = sd_doc_leaf(doc, key, sd_buf_cstr(&text), 1, 0);
            }
        } else {
            sd_json_scalar(v, &text);
            rc = sd_doc_leaf(doc, key, sd_buf_cstr(&text), 0, 0);
        }
        sd_buf_fini(&text);
        if (rc != 0) {
            break;
        }
    }
    return rc;
}

static int sd_json_apply(struct sd_doc *doc, const char *text, size_t len)
{
    json_error_t jerr;
    json_t *root;
    int rc;

    root = json_loadb(text, len, 0, &jerr);
    if (root == NULL) {
        if (doc->err != NULL) {
            sd_buf_reset(doc->err);
            sd_buf_printf(doc->err, "config file \"%s\", line %d, column %d: %s", doc->name,
                          jerr.line, jerr.column, jerr.text);
        }
        return SD_EINVAL;
    }
    if (!json_is_object(root)) {
        rc = sd_doc_fail(doc, 0, "the top level must be an object");
    } else {
        rc = sd_json_object(doc, root, 1);
    }
    json_decref(root);
    return rc;
}

int sd_config_apply_text(struct sd_config *cfg, const char *text, size_t len, int is_json,
                         const char *name, struct sd_buf *err)
{
    struct sd_doc doc;
    int rc;

    doc.cfg = cfg;
    doc.name = name != NULL ? name : "(text)";
    doc.err = err;
    sd_buf_init(&doc.path);
    if (err != NULL) {
        sd_buf_reset(err);
    }
    rc = is_json ? sd_json_apply(&doc, text, len) : sd_yaml_apply(&doc, text, len);
    sd_buf_fini(&doc.path);
    return rc;
}

static int sd_load_file(struct sd_config *cfg, const char *path, struct sd_buf *err)
{
    const char *ext = strrchr(path, '.');
    char *text = NULL;
    size_t len = 0;
    int is_json;
    int rc;

    if (ext != NULL && strchr(ext, '/') == NULL &&
        (strcasecmp(ext, ".yaml") == 0 || strcasecmp(ext, ".yml") == 0)) {
        is_json = 0;
    } else if (ext != NULL && strchr(ext, '/') == NULL && strcasecmp(ext, ".json") == 0) {
        is_json = 1;
    } else {
        if (err != NULL) {
            sd_buf_reset(err);
            sd_buf_printf(err,
                          "config file \"%s\": unsupported file extension (use .yaml, .yml or "
                          ".json)",
                          path);
        }
        return SD_EINVAL;
    }
    rc = sd_read_file(path, &text, &len);
    if (rc != 0) {
        if (err != NULL) {
            sd_buf_reset(err);
            sd_buf_printf(err, "cannot read config file \"%s\": %s", path, sd_strerror(rc));
        }
        return rc;
    }
    rc = sd_config_apply_text(cfg, text, len, is_json, path, err);
    free(text);
    return rc;
}

/* ---- environment and --set ---- */

static const struct sd_opt *sd_env_lookup(const struct sd_config *cfg, const char *name)
{
    char want[SD_CONFIG_ENV_MAX];
    size_t i;

    if (strcmp(name, "STREAM_ADMIN_TOKEN") == 0) {
        return sd_opt_find("auth.adminToken");
    }
    for (i = 0; i < cfg->n; i++) {
        sd_opt_env_name(cfg->opts[i].key, want, sizeof(want));
        if (strcmp(name, want) == 0) {
            return &cfg->opts[i];
        }
        sd_opt_env_name_alt(cfg->opts[i].key, want, sizeof(want));
        if (strcmp(name, want) == 0) {
            return &cfg->opts[i];
        }
    }
    return NULL;
}

static int sd_apply_env(struct sd_config *cfg, char *const *envp, struct sd_buf *err)
{
    char name[SD_CONFIG_ENV_MAX];
    char origin[SD_CONFIG_ENV_MAX + 32];
    size_t i;
    int rc;

    for (i = 0; envp[i] != NULL; i++) {
        const char *eq = strchr(envp[i], '=');
        const struct sd_opt *opt;
        size_t nlen;

        if (strncmp(envp[i], "STREAM_", 7) != 0 || eq == NULL) {
            continue;
        }
        nlen = (size_t)(eq - envp[i]);
        if (eq[1] == '\0') {
            continue; /* empty value: treated as unset */
        }
        opt = NULL;
        if (nlen < sizeof(name)) {
            memcpy(name, envp[i], nlen);
            name[nlen] = '\0';
            opt = sd_env_lookup(cfg, name);
        }
        if (opt == NULL) {
            sd_log_warn("config", "ignoring unknown environment variable %.*s",
                        (int)(nlen < 200 ? nlen : 200), envp[i]);
            continue;
        }
        snprintf(origin, sizeof(origin), "environment variable %s: ", name);
        rc = sd_assign(cfg, opt, eq + 1, 1, origin, err);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int sd_apply_set(struct sd_config *cfg, const char *set, struct sd_buf *err)
{
    const char *eq = strchr(set, '=');
    const struct sd_opt *opt;
    char *key;
    int rc;

    if (eq == NULL || eq == set) {
        if (err != NULL) {
            sd_buf_reset(err);
            sd_buf_append_str(err, "--set ");
            sd__opt_echo(err, set);
            sd_buf_append_str(err, ": expected KEY=VALUE");
        }
        return SD_EINVAL;
    }
    key = sd_xstrndup(set, (size_t)(eq - set));
    opt = sd_opt_find(key);
    if (opt == NULL) {
        sd_unknown_key("--set: ", key, err);
        rc = SD_EINVAL;
    } else {
        rc = sd_assign(cfg, opt, eq + 1, 1, "--set: ", err);
    }
    free(key);
    return rc;
}

/* ---- derived values and cross-field checks ---- */

static void sd_derive(struct sd_config *cfg)
{
    static const char *const paths[][2] = {
        {"storage.volumesPath", "volumes"},
        {"state.embedded.path", "state"},
        {"staging.local.path", "staging"},
        {"tables.sqlite.path", "tables"},
    };
    const char *dir = sd_config_str(cfg, "dataDir");
    size_t dlen = strlen(dir);
    size_t i;

    while (dlen > 1 && dir[dlen - 1] == '/') {
        dlen--;
    }
    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        if (sd_config_str(cfg, paths[i][0])[0] == '\0') {
            char *p = sd_xasprintf("%.*s%s%s", (int)dlen, dir, dir[dlen - 1] == '/' ? "" : "/",
                                   paths[i][1]);
            sd_assign(cfg, sd_opt_find(paths[i][0]), p, 0, NULL, NULL);
            free(p);
        }
    }
    if (!sd_config_is_set(cfg, "state.backend") && sd_config_str(cfg, "etcd.endpoint")[0] != '\0') {
        sd_assign(cfg, sd_opt_find("state.backend"), "etcd", 0, NULL, NULL);
    }
}

/* 1 if v, the value of opt, was set to something other than opt's default. */
static int sd_changed(const struct sd_opt *opt, const struct sd_config_val *v)
{
    struct sd_config_val def;
    int changed;

    if (!v->is_set) {
        return 0;
    }
    if (sd_val_make(opt, opt->def, &def, NULL) != 0) {
        return 1;
    }
    changed = strcmp(def.text, v->text) != 0;
    sd_val_free(&def);
    return changed;
}

/* Refuses a SD_OPT_REJECTED key set to another value than its default, and the cloud KMS
 * encryption providers (sd_opt.c says why). Returns 0 or SD_EINVAL with err (appended). */
static int sd_reject_marked(const struct sd_config *cfg, struct sd_buf *err)
{
    const struct sd_opt *provider = sd_opt_find("encryption.provider");
    const char *p = cfg->vals[sd_index(cfg, provider)].text;
    const char *why;
    size_t i;

    if (strcmp(p, "none") != 0 && strcmp(p, "aes") != 0) {
        if (err != NULL) {
            sd_buf_printf(err,
                          "invalid value \"%s\" for \"encryption.provider\": cloud KMS "
                          "encryption is not supported by streamd, which stores no secret to "
                          "encrypt (use none)",
                          p);
        }
        return SD_EINVAL;
    }
    for (i = 0; i < cfg->n; i++) {
        if (sd_opt_mark(&cfg->opts[i], &why) == SD_OPT_REJECTED &&
            sd_changed(&cfg->opts[i], &cfg->vals[i])) {
            if (err != NULL) {
                sd_buf_printf(err, "config key \"%s\" is not supported by streamd: %s",
                              cfg->opts[i].key, why);
            }
            return SD_EINVAL;
        }
    }
    return 0;
}

/* Warns about every key marked cluster or not applicable that is set to another value than its
 * default: it has no effect here. */
static void sd_warn_marked(const struct sd_config *cfg)
{
    const char *why;
    size_t i;

    for (i = 0; i < cfg->n; i++) {
        enum sd_opt_mark m = sd_opt_mark(&cfg->opts[i], &why);
        if ((m == SD_OPT_CLUSTER || m == SD_OPT_NOT_APPLICABLE) &&
            sd_changed(&cfg->opts[i], &cfg->vals[i])) {
            sd_log_warn("config", "\"%s\" is set but has no effect in %s (%s): %s",
                        cfg->opts[i].key, m == SD_OPT_CLUSTER ? "standalone streamd" : "streamd",
                        sd_opt_mark_name(m), why);
        }
    }
}

static int sd_validate(const struct sd_config *cfg, struct sd_buf *err)
{
    const char *token = sd_config_str(cfg, "auth.adminToken");
    const char *aes = sd_config_str(cfg, "encryption.aes.secretKey");
    char a[40];
    char b[40];

    if (err != NULL) {
        sd_buf_reset(err);
    }
    if (sd_config_str(cfg, "dataDir")[0] == '\0') {
        if (err != NULL) {
            sd_buf_append_str(err, "invalid value \"\" for \"dataDir\": must not be empty");
        }
        return SD_EINVAL;
    }
    if (token[0] != '\0' && strlen(token) < SD_ADMIN_TOKEN_MIN) {
        if (err != NULL) {
            sd_buf_printf(err,
                          "invalid value \"***\" for \"auth.adminToken\": must be at least %d "
                          "characters long (got %zu)",
                          SD_ADMIN_TOKEN_MIN, strlen(token));
        }
        return SD_EINVAL;
    }
    if (strcmp(sd_config_str(cfg, "encryption.provider"), "aes") == 0 &&
        strlen(aes) != SD_AES_KEY_LEN) {
        if (err != NULL) {
            sd_buf_printf(err,
                          "invalid value \"***\" for \"encryption.aes.secretKey\": must be exactly "
                          "%d bytes when encryption.provider is aes (got %zu)",
                          SD_AES_KEY_LEN, strlen(aes));
        }
        return SD_EINVAL;
    }
    if (sd_reject_marked(cfg, err) != 0) {
        return SD_EINVAL;
    }
    if (strcmp(sd_config_str(cfg, "state.backend"), "etcd") == 0 &&
        sd_config_str(cfg, "etcd.endpoint")[0] == '\0') {
        if (err != NULL) {
            sd_buf_append_str(err, "\"state.backend\" is etcd but \"etcd.endpoint\" is empty");
        }
        return SD_EINVAL;
    }
    if (sd_config_int(cfg, "storage.retry.initialInterval") >
        sd_config_int(cfg, "storage.retry.maxInterval")) {
        sd_format_duration(sd_config_int(cfg, "storage.retry.initialInterval"), a, sizeof(a));
        sd_format_duration(sd_config_int(cfg, "storage.retry.maxInterval"), b, sizeof(b));
        if (err != NULL) {
            sd_buf_printf(err,
                          "invalid value \"%s\" for \"storage.retry.initialInterval\": must not "
                          "exceed storage.retry.maxInterval (%s)",
                          a, b);
        }
        return SD_EINVAL;
    }
    return 0;
}

/* ---- public API ---- */

static struct sd_config *sd_config_new(void)
{
    struct sd_config *cfg = sd_xcalloc(1, sizeof(*cfg));
    struct sd_buf msg = SD_BUF_INIT;
    size_t i;

    cfg->opts = sd_opt_table(&cfg->n);
    cfg->vals = sd_xcalloc(cfg->n, sizeof(*cfg->vals));
    for (i = 0; i < cfg->n; i++) {
        if (sd_assign(cfg, &cfg->opts[i], cfg->opts[i].def, 0, "default: ", &msg) != 0) {
            /* The table is static data: a bad default is a bug, caught by the unit tests. */
            sd_log_error("config", "%s", sd_buf_cstr(&msg));
            abort();
        }
    }
    sd_buf_fini(&msg);
    return cfg;
}

int sd_config_load(const struct sd_config_args *args, struct sd_config **out, struct sd_buf *err)
{
    struct sd_config *cfg = sd_config_new();
    size_t i;
    int rc = 0;

    *out = NULL;
    if (err != NULL) {
        sd_buf_reset(err);
    }
    if (args != NULL && args->file != NULL) {
        rc = sd_load_file(cfg, args->file, err);
        if (rc != 0) {
            goto fail;
        }
    }
    if (args != NULL && args->envp != NULL) {
        rc = sd_apply_env(cfg, args->envp, err);
        if (rc != 0) {
            goto fail;
        }
    }
    if (args != NULL && args->data_dir != NULL) {
        rc = sd_assign(cfg, sd_opt_find("dataDir"), args->data_dir, 1, "--data-dir: ", err);
        if (rc != 0) {
            goto fail;
        }
    }
    for (i = 0; args != NULL && args->sets != NULL && i < args->nsets; i++) {
        rc = sd_apply_set(cfg, args->sets[i], err);
        if (rc != 0) {
            goto fail;
        }
    }
    if (sd_config_str(cfg, "dataDir")[0] != '\0') {
        sd_derive(cfg);
    }
    rc = sd_validate(cfg, err);
    if (rc != 0) {
        goto fail;
    }
    sd_warn_marked(cfg);
    *out = cfg;
    return 0;

fail:
    sd_config_destroy(cfg);
    return rc;
}

void sd_config_destroy(struct sd_config *cfg)
{
    size_t i;

    if (cfg == NULL) {
        return;
    }
    for (i = 0; cfg->vals != NULL && i < cfg->n; i++) {
        sd_val_free(&cfg->vals[i]);
    }
    free(cfg->vals);
    free(cfg);
}

static const struct sd_opt *sd_getter_opt(const struct sd_config *cfg, const char *key,
                                          const char *getter, unsigned types)
{
    const struct sd_opt *opt = sd_opt_find(key);

    (void)cfg;
    if (opt == NULL) {
        sd_log_error("config", "%s: unknown config key \"%s\"", getter, key ? key : "(null)");
        abort();
    }
    if (!(types & (1u << opt->type))) {
        sd_log_error("config", "%s: config key \"%s\" has another type", getter, key);
        abort();
    }
    return opt;
}

#define SD_T(t) (1u << (t))

const char *sd_config_str(const struct sd_config *cfg, const char *key)
{
    return sd_val(cfg, key)->text;
}

int64_t sd_config_int(const struct sd_config *cfg, const char *key)
{
    const struct sd_opt *opt = sd_getter_opt(cfg, key, "sd_config_int",
                                             SD_T(SD_OPT_INT) | SD_T(SD_OPT_SIZE) |
                                                 SD_T(SD_OPT_DURATION) | SD_T(SD_OPT_BOOL));

    return cfg->vals[sd_index(cfg, opt)].num;
}

int sd_config_bool(const struct sd_config *cfg, const char *key)
{
    const struct sd_opt *opt = sd_getter_opt(cfg, key, "sd_config_bool", SD_T(SD_OPT_BOOL));

    return cfg->vals[sd_index(cfg, opt)].num != 0;
}

double sd_config_float(const struct sd_config *cfg, const char *key)
{
    const struct sd_opt *opt = sd_getter_opt(cfg, key, "sd_config_float", SD_T(SD_OPT_FLOAT));

    return cfg->vals[sd_index(cfg, opt)].dbl;
}

size_t sd_config_list(const struct sd_config *cfg, const char *key, const char *const **items)
{
    const struct sd_opt *opt = sd_getter_opt(cfg, key, "sd_config_list", SD_T(SD_OPT_LIST));
    const struct sd_config_val *v = &cfg->vals[sd_index(cfg, opt)];

    if (items != NULL) {
        *items = (const char *const *)v->items;
    }
    return v->nitems;
}

int sd_config_is_set(const struct sd_config *cfg, const char *key)
{
    return sd_val(cfg, key)->is_set;
}

int sd_config_set(struct sd_config *cfg, const char *key, const char *value, struct sd_buf *err)
{
    const struct sd_opt *opt = sd_opt_find(key);
    struct sd_config_val nv;
    struct sd_config_val old;
    size_t i;
    int rc;

    if (err != NULL) {
        sd_buf_reset(err);
    }
    if (opt == NULL) {
        sd_unknown_key("", key, err);
        return SD_EINVAL;
    }
    rc = sd_val_make(opt, value, &nv, err);
    if (rc != 0) {
        return rc;
    }
    nv.is_set = 1;
    i = sd_index(cfg, opt);
    old = cfg->vals[i];
    cfg->vals[i] = nv;
    rc = sd_validate(cfg, err);
    if (rc != 0) {
        cfg->vals[i] = old;
        sd_val_free(&nv);
        return rc;
    }
    sd_val_free(&old);
    return 0;
}

/* ---- dump ---- */

/* 1 if s can be written as a plain YAML scalar that the loader reads back as s. */
static int sd_yaml_plain_ok(const char *s, int in_list)
{
    size_t i;
    size_t len = strlen(s);

    if (len == 0 || strcmp(s, "~") == 0 || strcasecmp(s, "null") == 0) {
        return 0;
    }
    if (!(isalnum((unsigned char)s[0]) || s[0] == '.' || s[0] == '/' || s[0] == '_')) {
        return 0;
    }
    if (s[len - 1] == ':') {
        return 0;
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || strchr("._/-:@+%", c) != NULL || (c == ',' && !in_list)) {
            continue;
        }
        return 0;
    }
    return 1;
}

static void sd_yaml_value(struct sd_buf *out, const char *s, int in_list)
{
    size_t i;

    if (sd_yaml_plain_ok(s, in_list)) {
        sd_buf_append_str(out, s);
        return;
    }
    sd_buf_append_char(out, '"');
    for (i = 0; s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            sd_buf_append_char(out, '\\');
            sd_buf_append_char(out, (char)c);
        } else if (c < 0x20 || c == 0x7f) {
            sd_buf_printf(out, "\\x%02x", c);
        } else {
            sd_buf_append_char(out, (char)c);
        }
    }
    sd_buf_append_char(out, '"');
}

static int sd_redacted(const struct sd_opt *opt, const struct sd_config_val *v)
{
    return (opt->flags & SD_OPT_SECRET) && v->text[0] != '\0';
}

static void sd_dump_yaml(const struct sd_config *cfg, struct sd_buf *out)
{
    enum sd_opt_mark mark;
    size_t i;
    size_t j;

    for (i = 0; i < cfg->n; i++) {
        const struct sd_opt *opt = &cfg->opts[i];
        const struct sd_config_val *v = &cfg->vals[i];

        sd_buf_printf(out, "%s: ", opt->key);
        if (sd_redacted(opt, v)) {
            sd_buf_append_str(out, "\"***\"");
        } else if (opt->type == SD_OPT_LIST) {
            sd_buf_append_char(out, '[');
            for (j = 0; j < v->nitems; j++) {
                if (j > 0) {
                    sd_buf_append_str(out, ", ");
                }
                sd_yaml_value(out, v->items[j], 1);
            }
            sd_buf_append_char(out, ']');
        } else {
            sd_yaml_value(out, v->text, 0);
        }
        mark = sd_opt_mark(opt, NULL);
        if (mark != SD_OPT_WORKS) {
            sd_buf_printf(out, "  # %s", sd_opt_mark_name(mark));
        }
        sd_buf_append_char(out, '\n');
    }
}

/* json_string, with bytes that are not ASCII replaced when s is not valid UTF-8. */
static json_t *sd_json_str(const char *s)
{
    json_t *j = json_string(s);
    char *copy;
    size_t i;

    if (j != NULL) {
        return j;
    }
    copy = sd_xstrdup(s);
    for (i = 0; copy[i] != '\0'; i++) {
        if ((unsigned char)copy[i] >= 0x80) {
            copy[i] = '?';
        }
    }
    j = json_string(copy);
    free(copy);
    return j;
}

static void sd_dump_json(const struct sd_config *cfg, struct sd_buf *out)
{
    json_t *root = json_object();
    json_t *marks = json_object();
    enum sd_opt_mark mark;
    char *text;
    size_t i;
    size_t j;

    for (i = 0; i < cfg->n; i++) {
        const struct sd_opt *opt = &cfg->opts[i];
        const struct sd_config_val *v = &cfg->vals[i];
        json_t *jv;

        if (sd_redacted(opt, v)) {
            jv = json_string("***");
        } else {
            switch (opt->type) {
            case SD_OPT_BOOL:
                jv = json_boolean(v->num);
                break;
            case SD_OPT_INT:
                jv = json_integer((json_int_t)v->num);
                break;
            case SD_OPT_FLOAT:
                jv = json_real(v->dbl);
                break;
            case SD_OPT_LIST:
                jv = json_array();
                for (j = 0; j < v->nitems; j++) {
                    json_array_append_new(jv, sd_json_str(v->items[j]));
                }
                break;
            default:
                jv = sd_json_str(v->text);
                break;
            }
        }
        json_object_set_new(root, opt->key, jv);
        mark = sd_opt_mark(opt, NULL);
        if (mark != SD_OPT_WORKS) {
            json_object_set_new(marks, opt->key, json_string(sd_opt_mark_name(mark)));
        }
    }
    json_object_set_new(root, SD_CONFIG_MARKS_MEMBER, marks);
    text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text == NULL) {
        abort(); /* OOM */
    }
    sd_buf_append_str(out, text);
    sd_buf_append_char(out, '\n');
    free(text);
    json_decref(root);
}

void sd_config_dump(const struct sd_config *cfg, int as_json, struct sd_buf *out)
{
    if (as_json) {
        sd_dump_json(cfg, out);
    } else {
        sd_dump_yaml(cfg, out);
    }
}
