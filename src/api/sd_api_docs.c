/* sd_api_docs.c: the documentation routes. Serves docs/openapi3.yaml (embedded into the binary
 * at build time by cmake/embed.cmake) as /v1/documentation/openapi3.yaml, its JSON form, the
 * OpenAPI 2.0 forms openapi.json and openapi.yaml, and an HTML page generated from it at
 * /v1/documentation/.
 *
 * DESIGN: the YAML is the only source. On the first documentation request every form is built
 * once (libyaml document -> jansson; jansson -> OpenAPI 2.0 by rewriting references and moving
 * schemas out of "content"; jansson -> YAML through the libyaml emitter; jansson -> HTML) and
 * cached in struct sd_api_docs, owned by the API object and freed with it. Everything runs on
 * the API loop thread, so the cache needs no lock. A document that fails to convert answers
 * 500 (the integration tests convert it on every run, so that cannot ship). These routes need
 * no token. */
#include "api/sd_api_internal.h"
#include "core/sd_alloc.h"
#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "core/sd_log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define SD_DOCS_MAX_DEPTH 64
#define SD_DOCS_PREFIX "/v1/documentation"

struct sd_api_docs {
    int is_failed;
    char *json3; /* OpenAPI 3 as JSON */
    char *json2; /* OpenAPI 2 as JSON */
    char *yaml2; /* OpenAPI 2 as YAML */
    char *html;
};

static const char *const sd__methods[] = {"get", "put", "post", "patch", "delete"};

/* ---- YAML -> JSON ---- */

/* Types a plain scalar as YAML's core schema does: null, bool, integer, float or string. */
static json_t *sd__plain_scalar(const char *s, size_t len)
{
    char *end;
    long long n;
    double d;

    if (len == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0) {
        return json_null();
    }
    if (strcmp(s, "true") == 0) {
        return json_true();
    }
    if (strcmp(s, "false") == 0) {
        return json_false();
    }
    if ((s[0] >= '0' && s[0] <= '9') || ((s[0] == '-' || s[0] == '+') && len > 1)) {
        errno = 0;
        n = strtoll(s, &end, 10);
        if (errno == 0 && *end == '\0') {
            return json_integer(n);
        }
        d = strtod(s, &end);
        if (*end == '\0' && strpbrk(s, ".eE") != NULL) {
            return json_real(d);
        }
    }
    return json_stringn(s, len);
}

static json_t *sd__yaml_node(yaml_document_t *doc, yaml_node_t *node, int depth)
{
    json_t *out = NULL;

    if (node == NULL || depth > SD_DOCS_MAX_DEPTH) {
        return NULL;
    }
    switch (node->type) {
    case YAML_SCALAR_NODE:
        if (node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
            return sd__plain_scalar((const char *)node->data.scalar.value,
                                    node->data.scalar.length);
        }
        return json_stringn((const char *)node->data.scalar.value, node->data.scalar.length);
    case YAML_SEQUENCE_NODE:
        out = json_array();
        for (yaml_node_item_t *it = node->data.sequence.items.start;
             it < node->data.sequence.items.top; it++) {
            json_t *v = sd__yaml_node(doc, yaml_document_get_node(doc, *it), depth + 1);
            if (v == NULL) {
                json_decref(out);
                return NULL;
            }
            json_array_append_new(out, v);
        }
        return out;
    case YAML_MAPPING_NODE:
        out = json_object();
        for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            json_t *v;
            if (k == NULL || k->type != YAML_SCALAR_NODE) {
                json_decref(out);
                return NULL;
            }
            v = sd__yaml_node(doc, yaml_document_get_node(doc, p->value), depth + 1);
            if (v == NULL) {
                json_decref(out);
                return NULL;
            }
            json_object_setn_new(out, (const char *)k->data.scalar.value, k->data.scalar.length, v);
        }
        return out;
    default:
        return NULL;
    }
}

/* Parses one YAML document into JSON. Returns a new reference or NULL (logged). */
static json_t *sd__yaml_to_json(const unsigned char *text, size_t len)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    json_t *out = NULL;

    if (!yaml_parser_initialize(&parser)) {
        return NULL;
    }
    yaml_parser_set_input_string(&parser, text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        sd_log_error("api", "openapi3.yaml line %zu: %s", parser.problem_mark.line + 1,
                     parser.problem ? parser.problem : "parse error");
        yaml_parser_delete(&parser);
        return NULL;
    }
    out = sd__yaml_node(&doc, yaml_document_get_root_node(&doc), 0);
    if (out == NULL) {
        sd_log_error("api", "openapi3.yaml: unsupported structure");
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return out;
}

/* ---- JSON -> YAML ---- */

static int sd__yaml_write(void *data, unsigned char *buffer, size_t size)
{
    return sd_buf_append(data, buffer, size) == 0;
}

/* Whether a string must be quoted so it reads back as a string. */
static int sd__needs_quotes(const char *s, size_t len)
{
    json_t *typed = sd__plain_scalar(s, len);
    int is_string = json_is_string(typed);

    json_decref(typed);
    return !is_string || len == 0;
}

static int sd__emit_scalar(yaml_emitter_t *em, const char *s, size_t len, int quoted)
{
    yaml_event_t ev;

    yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)len, 1, 1,
                                 quoted ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE);
    return yaml_emitter_emit(em, &ev);
}

static int sd__emit_json(yaml_emitter_t *em, json_t *v, int depth)
{
    yaml_event_t ev;
    char num[64];
    const char *key;
    json_t *item;
    size_t i;

    if (depth > SD_DOCS_MAX_DEPTH) {
        return 0;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
        if (!yaml_emitter_emit(em, &ev)) {
            return 0;
        }
        json_object_foreach(v, key, item)
        {
            if (!sd__emit_scalar(em, key, strlen(key), sd__needs_quotes(key, strlen(key))) ||
                !sd__emit_json(em, item, depth + 1)) {
                return 0;
            }
        }
        yaml_mapping_end_event_initialize(&ev);
        return yaml_emitter_emit(em, &ev);
    case JSON_ARRAY:
        yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE);
        if (!yaml_emitter_emit(em, &ev)) {
            return 0;
        }
        json_array_foreach(v, i, item)
        {
            if (!sd__emit_json(em, item, depth + 1)) {
                return 0;
            }
        }
        yaml_sequence_end_event_initialize(&ev);
        return yaml_emitter_emit(em, &ev);
    case JSON_STRING:
        return sd__emit_scalar(em, json_string_value(v), json_string_length(v),
                               sd__needs_quotes(json_string_value(v), json_string_length(v)));
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return sd__emit_scalar(em, num, strlen(num), 0);
    case JSON_REAL:
        snprintf(num, sizeof(num), "%.17g", json_real_value(v));
        return sd__emit_scalar(em, num, strlen(num), 0);
    case JSON_TRUE:
        return sd__emit_scalar(em, "true", 4, 0);
    case JSON_FALSE:
        return sd__emit_scalar(em, "false", 5, 0);
    default:
        return sd__emit_scalar(em, "null", 4, 0);
    }
}

/* Renders doc as a YAML document. Returns an owned string or NULL. */
static char *sd__json_to_yaml(json_t *doc)
{
    struct sd_buf out = SD_BUF_INIT;
    yaml_emitter_t em;
    yaml_event_t ev;
    int ok;

    if (!yaml_emitter_initialize(&em)) {
        return NULL;
    }
    yaml_emitter_set_output(&em, sd__yaml_write, &out);
    yaml_emitter_set_unicode(&em, 1);
    yaml_emitter_set_width(&em, 100);
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    ok = yaml_emitter_emit(&em, &ev);
    yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
    ok = ok && yaml_emitter_emit(&em, &ev);
    ok = ok && sd__emit_json(&em, doc, 0);
    yaml_document_end_event_initialize(&ev, 1);
    ok = ok && yaml_emitter_emit(&em, &ev);
    yaml_stream_end_event_initialize(&ev);
    ok = ok && yaml_emitter_emit(&em, &ev);
    ok = ok && yaml_emitter_flush(&em);
    yaml_emitter_delete(&em);
    if (!ok) {
        sd_buf_fini(&out);
        return NULL;
    }
    return sd_buf_steal(&out);
}

/* ---- OpenAPI 3 -> OpenAPI 2 ---- */

/* Returns a deep copy of v with every "$ref" pointing into components rewritten to OpenAPI 2. */
static json_t *sd__v2_refs(json_t *v)
{
    static const char *const from[] = {"#/components/schemas/", "#/components/parameters/",
                                       "#/components/responses/"};
    static const char *const to[] = {"#/definitions/", "#/parameters/", "#/responses/"};
    json_t *out;
    const char *key;
    json_t *item;
    size_t i;

    if (json_is_array(v)) {
        out = json_array();
        json_array_foreach(v, i, item)
        {
            json_array_append_new(out, sd__v2_refs(item));
        }
        return out;
    }
    if (!json_is_object(v)) {
        return json_deep_copy(v);
    }
    out = json_object();
    json_object_foreach(v, key, item)
    {
        const char *ref = json_string_value(item);
        if (strcmp(key, "$ref") == 0 && ref != NULL) {
            for (i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
                if (strncmp(ref, from[i], strlen(from[i])) == 0) {
                    char *s = sd_xasprintf("%s%s", to[i], ref + strlen(from[i]));
                    json_object_set_new(out, key, json_string(s));
                    free(s);
                    break;
                }
            }
            if (i < sizeof(from) / sizeof(from[0])) {
                continue;
            }
        }
        json_object_set_new(out, key, sd__v2_refs(item));
    }
    return out;
}

/* A parameter: OpenAPI 2 keeps the schema's type and limits on the parameter itself. */
static json_t *sd__v2_param(json_t *p)
{
    json_t *out = sd__v2_refs(p);
    json_t *schema = json_object_get(out, "schema");

    if (json_is_object(schema)) {
        json_incref(schema);
        json_object_del(out, "schema");
        json_object_update_missing(out, schema);
        json_decref(schema);
    }
    return out;
}

static json_t *sd__v2_params(json_t *list)
{
    json_t *out = json_array();
    json_t *p;
    size_t i;

    json_array_foreach(list, i, p)
    {
        json_array_append_new(out, sd__v2_param(p));
    }
    return out;
}

/* Adds the media types of content to the set (an array) and returns the first schema. */
static json_t *sd__v2_content(json_t *content, json_t *types)
{
    json_t *schema = NULL;
    const char *type;
    json_t *media;

    json_object_foreach(content, type, media)
    {
        int is_known = 0;
        json_t *t;
        size_t i;
        json_array_foreach(types, i, t)
        {
            is_known |= strcmp(json_string_value(t), type) == 0;
        }
        if (!is_known) {
            json_array_append_new(types, json_string(type));
        }
        if (schema == NULL && json_object_get(media, "schema") != NULL) {
            schema = json_object_get(media, "schema");
        }
    }
    return schema;
}

static json_t *sd__v2_response(json_t *r, json_t *produces)
{
    json_t *out;
    json_t *schema;

    if (json_object_get(r, "$ref") != NULL) {
        return sd__v2_refs(r);
    }
    out = json_object();
    json_object_set(out, "description", json_object_get(r, "description"));
    schema = sd__v2_content(json_object_get(r, "content"), produces);
    if (schema != NULL) {
        json_object_set_new(out, "schema", sd__v2_refs(schema));
    }
    return out;
}

static json_t *sd__v2_responses(json_t *responses, json_t *produces)
{
    json_t *out = json_object();
    const char *code;
    json_t *r;

    json_object_foreach(responses, code, r)
    {
        json_object_set_new(out, code, sd__v2_response(r, produces));
    }
    return out;
}

static json_t *sd__v2_operation(json_t *op)
{
    static const char *const copied[] = {"tags", "summary", "description", "operationId",
                                         "security"};
    json_t *out = json_object();
    json_t *params = sd__v2_params(json_object_get(op, "parameters"));
    json_t *body = json_object_get(op, "requestBody");
    json_t *produces = json_array();
    size_t i;

    for (i = 0; i < sizeof(copied) / sizeof(copied[0]); i++) {
        json_t *v = json_object_get(op, copied[i]);
        if (v != NULL) {
            json_object_set_new(out, copied[i], json_deep_copy(v));
        }
    }
    if (body != NULL) {
        json_t *consumes = json_array();
        json_t *schema = sd__v2_content(json_object_get(body, "content"), consumes);
        json_t *p = json_object();
        json_object_set_new(p, "name", json_string("body"));
        json_object_set_new(p, "in", json_string("body"));
        json_object_set_new(p, "required",
                            json_boolean(json_is_true(json_object_get(body, "required"))));
        if (json_object_get(body, "description") != NULL) {
            json_object_set(p, "description", json_object_get(body, "description"));
        }
        json_object_set_new(p, "schema", schema ? sd__v2_refs(schema) : json_object());
        json_array_append_new(params, p);
        json_object_set_new(out, "consumes", consumes);
    }
    if (json_array_size(params) > 0) {
        json_object_set_new(out, "parameters", params);
    } else {
        json_decref(params);
    }
    json_object_set_new(out, "responses",
                        sd__v2_responses(json_object_get(op, "responses"), produces));
    if (json_array_size(produces) > 0) {
        json_object_set_new(out, "produces", produces);
    } else {
        json_decref(produces);
    }
    return out;
}

/* Converts the OpenAPI 3 document to OpenAPI 2.0. Returns a new reference. */
static json_t *sd__v3_to_v2(json_t *v3)
{
    json_t *v2 = json_object();
    json_t *comp = json_object_get(v3, "components");
    json_t *paths = json_object();
    json_t *params = json_object();
    json_t *responses = json_object();
    json_t *unused = json_array();
    const char *key;
    json_t *item;

    json_object_set_new(v2, "swagger", json_string("2.0"));
    json_object_set_new(v2, "info", json_deep_copy(json_object_get(v3, "info")));
    json_object_set_new(v2, "basePath", json_string("/"));
    json_object_set_new(v2, "schemes", json_pack("[s]", "http"));
    json_object_set_new(v2, "tags", json_deep_copy(json_object_get(v3, "tags")));
    json_object_foreach(json_object_get(v3, "paths"), key, item)
    {
        json_t *path = json_object();
        const char *m;
        json_t *op;
        json_object_foreach(item, m, op)
        {
            if (strcmp(m, "parameters") == 0) {
                json_object_set_new(path, m, sd__v2_params(op));
            } else {
                json_object_set_new(path, m, sd__v2_operation(op));
            }
        }
        json_object_set_new(paths, key, path);
    }
    json_object_set_new(v2, "paths", paths);
    json_object_set_new(v2, "definitions", sd__v2_refs(json_object_get(comp, "schemas")));
    json_object_foreach(json_object_get(comp, "parameters"), key, item)
    {
        json_object_set_new(params, key, sd__v2_param(item));
    }
    json_object_set_new(v2, "parameters", params);
    json_object_foreach(json_object_get(comp, "responses"), key, item)
    {
        json_object_set_new(responses, key, sd__v2_response(item, unused));
    }
    json_decref(unused);
    json_object_set_new(v2, "responses", responses);
    json_object_set_new(v2, "securityDefinitions",
                        json_deep_copy(json_object_get(comp, "securitySchemes")));
    return v2;
}

/* ---- HTML ---- */

static void sd__html_text(struct sd_buf *b, const char *s)
{
    for (; s != NULL && *s != '\0'; s++) {
        switch (*s) {
        case '<':
            sd_buf_append_str(b, "&lt;");
            break;
        case '>':
            sd_buf_append_str(b, "&gt;");
            break;
        case '&':
            sd_buf_append_str(b, "&amp;");
            break;
        case '"':
            sd_buf_append_str(b, "&quot;");
            break;
        default:
            sd_buf_append_char(b, *s);
        }
    }
}

static const char *sd__str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));

    return s ? s : "";
}

/* Follows a local "$ref" (#/a/b/c) inside doc; returns v itself when it is no reference. */
static json_t *sd__deref(json_t *doc, json_t *v)
{
    const char *ref = json_string_value(json_object_get(v, "$ref"));
    char *copy;
    char *save = NULL;
    json_t *cur = doc;

    if (ref == NULL || strncmp(ref, "#/", 2) != 0) {
        return v;
    }
    copy = sd_xstrdup(ref + 2);
    for (char *seg = strtok_r(copy, "/", &save); seg != NULL && cur != NULL;
         seg = strtok_r(NULL, "/", &save)) {
        cur = json_object_get(cur, seg);
    }
    free(copy);
    return cur ? cur : v;
}

/* Writes a short description of a schema's type: a link for a reference, "array of X". */
static void sd__html_type(struct sd_buf *b, json_t *schema)
{
    const char *ref = json_string_value(json_object_get(schema, "$ref"));
    json_t *en = json_object_get(schema, "enum");

    if (ref != NULL) {
        const char *name = strrchr(ref, '/') ? strrchr(ref, '/') + 1 : ref;
        sd_buf_printf(b, "<a href=\"#schema-%s\">", name);
        sd__html_text(b, name);
        sd_buf_append_str(b, "</a>");
        return;
    }
    if (schema == NULL || json_object_get(schema, "type") == NULL) {
        sd_buf_append_str(b, "any");
        return;
    }
    sd__html_text(b, sd__str(schema, "type"));
    if (strcmp(sd__str(schema, "type"), "array") == 0) {
        sd_buf_append_str(b, " of ");
        sd__html_type(b, json_object_get(schema, "items"));
    }
    if (json_object_get(schema, "format") != NULL) {
        sd_buf_append_str(b, " (");
        sd__html_text(b, sd__str(schema, "format"));
        sd_buf_append_str(b, ")");
    }
    if (json_is_array(en)) {
        json_t *v;
        size_t i;
        sd_buf_append_str(b, ": ");
        json_array_foreach(en, i, v)
        {
            sd_buf_append_str(b, i ? ", <code>" : "<code>");
            sd__html_text(b, json_string_value(v));
            sd_buf_append_str(b, "</code>");
        }
    }
}

static void sd__html_params(struct sd_buf *b, json_t *doc, json_t *path_params, json_t *op_params)
{
    json_t *lists[2] = {path_params, op_params};
    int is_open = 0;

    for (int l = 0; l < 2; l++) {
        json_t *p;
        size_t i;
        json_array_foreach(lists[l], i, p)
        {
            p = sd__deref(doc, p);
            if (!is_open) {
                sd_buf_append_str(b, "<h4>Parameters</h4><table><tr><th>Name</th><th>In</th>"
                                     "<th>Type</th><th>Description</th></tr>\n");
                is_open = 1;
            }
            sd_buf_append_str(b, "<tr><td><code>");
            sd__html_text(b, sd__str(p, "name"));
            sd_buf_append_str(b, "</code>");
            if (json_is_true(json_object_get(p, "required"))) {
                sd_buf_append_str(b, " <em>required</em>");
            }
            sd_buf_append_str(b, "</td><td>");
            sd__html_text(b, sd__str(p, "in"));
            sd_buf_append_str(b, "</td><td>");
            sd__html_type(b, json_object_get(p, "schema"));
            sd_buf_append_str(b, "</td><td>");
            sd__html_text(b, sd__str(p, "description"));
            sd_buf_append_str(b, "</td></tr>\n");
        }
    }
    if (is_open) {
        sd_buf_append_str(b, "</table>\n");
    }
}

static void sd__html_content(struct sd_buf *b, json_t *content)
{
    const char *type;
    json_t *media;

    json_object_foreach(content, type, media)
    {
        sd_buf_append_str(b, " <code>");
        sd__html_text(b, type);
        sd_buf_append_str(b, "</code> ");
        sd__html_type(b, json_object_get(media, "schema"));
    }
}

static void sd__html_operation(struct sd_buf *b, json_t *doc, const char *path, const char *m,
                               json_t *path_item, json_t *op)
{
    json_t *body = json_object_get(op, "requestBody");
    const char *code;
    json_t *r;

    sd_buf_printf(b, "<div class=\"op\" id=\"op-%s\"><h3><span class=\"m %s\">",
                  sd__str(op, "operationId"), m);
    for (const char *c = m; *c != '\0'; c++) {
        sd_buf_append_char(b, (char)(*c - 'a' + 'A'));
    }
    sd_buf_append_str(b, "</span> <code>");
    sd__html_text(b, path);
    sd_buf_append_str(b, "</code></h3>\n<p><strong>");
    sd__html_text(b, sd__str(op, "summary"));
    sd_buf_append_str(b, "</strong>");
    if (json_object_get(op, "security") == NULL) {
        sd_buf_append_str(b, " <em>(no token)</em>");
    }
    sd_buf_append_str(b, "</p>\n");
    if (json_object_get(op, "description") != NULL) {
        sd_buf_append_str(b, "<p>");
        sd__html_text(b, sd__str(op, "description"));
        sd_buf_append_str(b, "</p>\n");
    }
    sd__html_params(b, doc, json_object_get(path_item, "parameters"),
                    json_object_get(op, "parameters"));
    if (body != NULL) {
        sd_buf_append_str(b, "<h4>Request body</h4><p>");
        sd__html_text(b, sd__str(body, "description"));
        sd__html_content(b, json_object_get(body, "content"));
        sd_buf_append_str(b, "</p>\n");
    }
    sd_buf_append_str(b, "<h4>Responses</h4><table>\n");
    json_object_foreach(json_object_get(op, "responses"), code, r)
    {
        r = sd__deref(doc, r);
        sd_buf_append_str(b, "<tr><td><code>");
        sd__html_text(b, code);
        sd_buf_append_str(b, "</code></td><td>");
        sd__html_text(b, sd__str(r, "description"));
        sd_buf_append_str(b, "</td><td>");
        sd__html_content(b, json_object_get(r, "content"));
        sd_buf_append_str(b, "</td></tr>\n");
    }
    sd_buf_append_str(b, "</table></div>\n");
}

static void sd__html_schema(struct sd_buf *b, const char *name, json_t *s)
{
    json_t *req = json_object_get(s, "required");
    const char *prop;
    json_t *ps;

    sd_buf_printf(b, "<div class=\"schema\" id=\"schema-%s\"><h3>", name);
    sd__html_text(b, name);
    sd_buf_append_str(b, "</h3>\n<p>");
    sd__html_type(b, s);
    if (json_object_get(s, "description") != NULL) {
        sd_buf_append_str(b, ". ");
        sd__html_text(b, sd__str(s, "description"));
    }
    sd_buf_append_str(b, "</p>\n");
    if (json_object_size(json_object_get(s, "properties")) > 0) {
        sd_buf_append_str(b, "<table><tr><th>Field</th><th>Type</th><th>Description</th></tr>\n");
        json_object_foreach(json_object_get(s, "properties"), prop, ps)
        {
            json_t *r;
            size_t i;
            int is_required = 0;
            json_array_foreach(req, i, r)
            {
                is_required |= strcmp(json_string_value(r), prop) == 0;
            }
            sd_buf_append_str(b, "<tr><td><code>");
            sd__html_text(b, prop);
            sd_buf_append_str(b, is_required ? "</code> <em>required</em>" : "</code>");
            sd_buf_append_str(b, "</td><td>");
            sd__html_type(b, ps);
            sd_buf_append_str(b, "</td><td>");
            sd__html_text(b, sd__str(ps, "description"));
            sd_buf_append_str(b, "</td></tr>\n");
        }
        sd_buf_append_str(b, "</table>\n");
    }
    sd_buf_append_str(b, "</div>\n");
}

/* Writes the index: one line per operation, linking to its section. */
static void sd__html_index(struct sd_buf *b, json_t *paths)
{
    const char *path;
    json_t *item;

    sd_buf_append_str(b, "<h2>Endpoints</h2>\n<ul>\n");
    json_object_foreach(paths, path, item)
    {
        for (size_t i = 0; i < sizeof(sd__methods) / sizeof(sd__methods[0]); i++) {
            json_t *op = json_object_get(item, sd__methods[i]);
            if (op == NULL) {
                continue;
            }
            sd_buf_printf(b, "<li><a href=\"#op-%s\">", sd__str(op, "operationId"));
            for (const char *c = sd__methods[i]; *c != '\0'; c++) {
                sd_buf_append_char(b, (char)(*c - 'a' + 'A'));
            }
            sd_buf_append_str(b, " ");
            sd__html_text(b, path);
            sd_buf_append_str(b, "</a> ");
            sd__html_text(b, sd__str(op, "summary"));
            sd_buf_append_str(b, "</li>\n");
        }
    }
    sd_buf_append_str(b, "</ul>\n");
}

/* Renders the page: an index, operations grouped by their first tag, then the schemas. */
static char *sd__html(json_t *doc)
{
    struct sd_buf b = SD_BUF_INIT;
    json_t *info = json_object_get(doc, "info");
    json_t *paths = json_object_get(doc, "paths");
    json_t *tag;
    json_t *scheme;
    const char *name;
    json_t *s;
    size_t t;

    sd_buf_append_str(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                          "<title>");
    sd__html_text(&b, sd__str(info, "title"));
    sd_buf_append_str(
        &b, "</title>\n<style>\n"
            "body{font-family:sans-serif;max-width:70em;margin:auto;padding:1em;color:#222}\n"
            "table{border-collapse:collapse;margin:.3em 0}td,th{border:1px solid #ccc;"
            "padding:.2em .5em;text-align:left;vertical-align:top}\n"
            ".op,.schema{border-top:1px solid #999;margin-top:1em}\n"
            ".m{display:inline-block;min-width:4.5em;color:#fff;background:#555;"
            "padding:0 .3em;border-radius:3px}\n.get{background:#2a7ab8}.post{background:#3a9a4a}"
            ".put{background:#b87a2a}.patch{background:#8a5ab8}.delete{background:#b83a3a}\n"
            "h4{margin:.5em 0 .2em}\n</style></head><body>\n<h1>");
    sd__html_text(&b, sd__str(info, "title"));
    sd_buf_printf(&b, " <small>%s</small></h1>\n<p>", sd__str(info, "version"));
    sd__html_text(&b, sd__str(info, "description"));
    sd_buf_append_str(&b, "</p>\n<p>Machine-readable forms: "
                          "<a href=\"/v1/documentation/openapi3.yaml\">openapi3.yaml</a>, "
                          "<a href=\"/v1/documentation/openapi3.json\">openapi3.json</a>, "
                          "<a href=\"/v1/documentation/openapi.yaml\">openapi.yaml</a> and "
                          "<a href=\"/v1/documentation/openapi.json\">openapi.json</a> "
                          "(OpenAPI 2.0).</p>\n<h2>Authentication</h2>\n");
    json_object_foreach(json_object_get(json_object_get(doc, "components"), "securitySchemes"),
                        name, scheme)
    {
        sd_buf_append_str(&b, "<p>Header <code>");
        sd__html_text(&b, sd__str(scheme, "name"));
        sd_buf_append_str(&b, "</code>: ");
        sd__html_text(&b, sd__str(scheme, "description"));
        sd_buf_append_str(&b, "</p>\n");
    }
    sd__html_index(&b, paths);
    json_array_foreach(json_object_get(doc, "tags"), t, tag)
    {
        const char *tag_name = sd__str(tag, "name");
        const char *path;
        json_t *item;
        sd_buf_printf(&b, "<h2 id=\"tag-%s\">", tag_name);
        sd__html_text(&b, tag_name);
        sd_buf_append_str(&b, "</h2>\n<p>");
        sd__html_text(&b, sd__str(tag, "description"));
        sd_buf_append_str(&b, "</p>\n");
        json_object_foreach(paths, path, item)
        {
            for (size_t i = 0; i < sizeof(sd__methods) / sizeof(sd__methods[0]); i++) {
                json_t *op = json_object_get(item, sd__methods[i]);
                const char *first =
                    json_string_value(json_array_get(json_object_get(op, "tags"), 0));
                if (op != NULL && first != NULL && strcmp(first, tag_name) == 0) {
                    sd__html_operation(&b, doc, path, sd__methods[i], item, op);
                }
            }
        }
    }
    sd_buf_append_str(&b, "<h2 id=\"schemas\">Schemas</h2>\n");
    json_object_foreach(json_object_get(json_object_get(doc, "components"), "schemas"), name, s)
    {
        sd__html_schema(&b, name, s);
    }
    sd_buf_append_str(&b, "</body></html>\n");
    return sd_buf_steal(&b);
}

/* ---- routes ---- */

static int sd__docs_build(struct sd_api_docs *d)
{
    json_t *v3 = sd__yaml_to_json(sd__openapi3_yaml, sd__openapi3_yaml_len);
    json_t *v2;

    if (v3 == NULL) {
        return SD_EPARSE;
    }
    v2 = sd__v3_to_v2(v3);
    d->json3 = json_dumps(v3, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    d->json2 = json_dumps(v2, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    d->yaml2 = sd__json_to_yaml(v2);
    d->html = sd__html(v3);
    json_decref(v2);
    json_decref(v3);
    if (d->json3 == NULL || d->json2 == NULL || d->yaml2 == NULL || d->html == NULL) {
        return SD_EPARSE;
    }
    return 0;
}

/* Returns the index of the documentation file named by path (0 = the page), or -1. */
static int sd__docs_file(struct sd_str path)
{
    static const char *const files[] = {
        "", "/", "/openapi3.yaml", "/openapi3.json", "/openapi.yaml", "/openapi.json"};
    size_t plen = sizeof(SD_DOCS_PREFIX) - 1;
    struct sd_str rest;

    if (path.len < plen || memcmp(path.p, SD_DOCS_PREFIX, plen) != 0) {
        return -1;
    }
    rest.p = path.p + plen;
    rest.len = path.len - plen;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (sd_str_eq(rest, sd_str_c(files[i]))) {
            return i < 2 ? 0 : (int)i - 1;
        }
    }
    return -1;
}

json_t *sd__api_docs_document(void)
{
    return sd__yaml_to_json(sd__openapi3_yaml, sd__openapi3_yaml_len);
}

void sd__api_docs_handle(struct sd_api_ctx *c)
{
    struct sd_api *api = c->api;
    struct sd_http_req *req = c->req;
    struct sd_api_docs *d = api->docs;
    int file = sd__docs_file(sd_http_path(req));

    if (d == NULL) {
        d = api->docs = sd_xcalloc(1, sizeof(*d));
        if (sd__docs_build(d) != 0) {
            sd_log_error("api", "cannot convert the embedded OpenAPI document");
            d->is_failed = 1;
        }
    }
    if (d->is_failed) {
        sd__api_error(req, 500, "internalError", "The API documentation cannot be rendered.");
        return;
    }
    switch (file) {
    case 0:
        sd_http_send(req, 200, "text/html; charset=utf-8", d->html, strlen(d->html));
        break;
    case 1:
        sd_http_send(req, 200, "application/yaml", (const char *)sd__openapi3_yaml,
                     sd__openapi3_yaml_len);
        break;
    case 2:
        sd_http_send(req, 200, "application/json", d->json3, strlen(d->json3));
        break;
    case 3:
        sd_http_send(req, 200, "application/yaml", d->yaml2, strlen(d->yaml2));
        break;
    case 4:
        sd_http_send(req, 200, "application/json", d->json2, strlen(d->json2));
        break;
    default: /* the route table sends only the files above here */
        sd__api_endpoint_not_found(req);
        break;
    }
}

void sd__api_docs_destroy(struct sd_api_docs *d)
{
    if (d == NULL) {
        return;
    }
    free(d->json3);
    free(d->json2);
    free(d->yaml2);
    free(d->html);
    free(d);
}
