/* sd_defs.c: the definition entities: id normalization, request validation, the stored JSON
 * form, version hashes, ingestion secrets and state-store keys.
 *
 * DESIGN: everything here is a pure function over caller-owned memory, so the API handlers
 * (loop thread) and the task worker can call it freely. Validation messages follow the shape of
 * the reference's (Goa) messages, e.g. "Length of body.name must be lesser or equal than 40
 * but got value "..." (len=41)". Secrets come from getrandom(2); a failing kernel random source
 * aborts, because there is no safe fallback for an authentication secret. */
#include "defs/sd_defs.h"
#include "core/sd_alloc.h"
#include "core/sd_error.h"
#include "core/sd_time.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static const char sd__alnum[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/* ASCII folding of U+00C0..U+00FF, one character per code point; '*' = several letters (see
 * sd__fold), '-' = not a letter. */
static const char sd__fold_latin1[] =
    "AAAAAA*CEEEEIIIIDNOOOOO-OUUUUY**aaaaaa*ceeeeiiiidnooooo-ouuuuy*y";

/* ASCII folding of U+0100..U+017F (Latin Extended-A), same encoding. */
static const char sd__fold_latin_ext_a[] = "AaAaAa"
                                           "CcCcCcCc"
                                           "DdDd"
                                           "EeEeEeEeEe"
                                           "GgGgGgGg"
                                           "HhHh"
                                           "IiIiIiIiIi"
                                           "**"
                                           "Jj"
                                           "Kk"
                                           "k"
                                           "LlLlLlLlLl"
                                           "NnNnNn"
                                           "n"
                                           "Nn"
                                           "OoOoOo"
                                           "**"
                                           "RrRrRr"
                                           "SsSsSsSs"
                                           "TtTtTt"
                                           "UuUuUuUuUuUu"
                                           "Ww"
                                           "Yy"
                                           "Y"
                                           "ZzZzZz"
                                           "s";

_Static_assert(sizeof(sd__fold_latin1) == 64 + 1, "one entry per code point U+00C0..U+00FF");
_Static_assert(sizeof(sd__fold_latin_ext_a) == 128 + 1, "one entry per code point U+0100..U+017F");

void sd_defs_random_chars(char *out, size_t n, const char *alphabet)
{
    size_t alen = strlen(alphabet);
    unsigned limit = 256u - (256u % (unsigned)alen); /* reject above it: no modulo bias */
    unsigned char pool[64];
    size_t have = 0, pos = 0, i = 0;

    while (i < n) {
        if (pos == have) {
            ssize_t got = getrandom(pool, sizeof(pool), 0);
            if (got < 0) {
                if (errno == EINTR) {
                    continue;
                }
                abort();
            }
            have = (size_t)got;
            pos = 0;
            continue;
        }
        if (pool[pos] < limit) {
            out[i++] = alphabet[pool[pos] % alen];
        }
        pos++;
    }
    out[n] = '\0';
}

void sd_defs_new_secret(char out[SD_DEFS_SECRET_LEN + 1])
{
    sd_defs_random_chars(out, SD_DEFS_SECRET_LEN, sd__alnum);
}

/* Decodes one UTF-8 code point at s (len > 0). Returns its byte length; *cp = -1 when invalid
 * (the length is then 1). */
static size_t sd__utf8_next(const unsigned char *s, size_t len, int32_t *cp)
{
    size_t n;
    int32_t v;

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if ((s[0] & 0xE0) == 0xC0) {
        n = 2;
        v = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        n = 3;
        v = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0) {
        n = 4;
        v = s[0] & 0x07;
    } else {
        *cp = -1;
        return 1;
    }
    if (n > len) {
        *cp = -1;
        return 1;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = -1;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return n;
}

/* Appends the ASCII folding of code point cp to out, or a space when it has none. */
static void sd__fold(int32_t cp, struct sd_buf *out)
{
    char c = '-';

    if (cp >= 0 && cp < 0x80) {
        sd_buf_append_char(out, (char)cp);
        return;
    }
    if (cp >= 0xC0 && cp <= 0xFF) {
        c = sd__fold_latin1[cp - 0xC0];
    } else if (cp >= 0x100 && cp <= 0x17F) {
        c = sd__fold_latin_ext_a[cp - 0x100];
    }
    if (c != '*') {
        sd_buf_append_char(out, c == '-' ? ' ' : c);
        return;
    }
    switch (cp) {
    case 0xC6:
        sd_buf_append_str(out, "AE");
        break;
    case 0xDE:
        sd_buf_append_str(out, "TH");
        break;
    case 0xDF:
        sd_buf_append_str(out, "ss");
        break;
    case 0xE6:
        sd_buf_append_str(out, "ae");
        break;
    case 0xFE:
        sd_buf_append_str(out, "th");
        break;
    case 0x132:
        sd_buf_append_str(out, "IJ");
        break;
    case 0x133:
        sd_buf_append_str(out, "ij");
        break;
    case 0x152:
        sd_buf_append_str(out, "OE");
        break;
    case 0x153:
        sd_buf_append_str(out, "oe");
        break;
    default:
        sd_buf_append_char(out, ' ');
        break;
    }
}

int sd_defs_normalize_id(const char *in, struct sd_buf *out)
{
    struct sd_buf folded = SD_BUF_INIT;
    const unsigned char *s = (const unsigned char *)in;
    size_t len = strlen(in), i = 0;
    int rc = 0;

    sd_buf_reset(out);
    while (i < len) {
        int32_t cp;
        i += sd__utf8_next(s + i, len - i, &cp);
        sd__fold(cp, &folded);
    }
    for (i = 0; i < folded.len; i++) {
        unsigned char c = (unsigned char)folded.data[i];
        if (!isalnum(c)) {
            if (out->len > 0 && out->data[out->len - 1] != '-') {
                sd_buf_append_char(out, '-');
            }
            continue;
        }
        if (isupper(c) && out->len > 0 && out->data[out->len - 1] != '-') {
            unsigned char prev = (unsigned char)folded.data[i - 1];
            unsigned char next = i + 1 < folded.len ? (unsigned char)folded.data[i + 1] : 0;
            if (islower(prev) || isdigit(prev) || (isupper(prev) && islower(next))) {
                sd_buf_append_char(out, '-');
            }
        }
        sd_buf_append_char(out, (char)tolower(c));
    }
    while (out->len > 0 && out->data[out->len - 1] == '-') {
        out->len--;
    }
    sd_buf_cstr(out);
    if (out->len == 0) {
        rc = SD_EINVAL;
    }
    sd_buf_fini(&folded);
    return rc;
}

__attribute__((format(printf, 3, 4))) static int sd__fail(struct sd_defs_err *err, const char *name,
                                                          const char *fmt, ...)
{
    va_list ap;

    err->name = name;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return SD_EINVAL;
}

void sd_defs_append_quoted(struct sd_buf *out, const char *s, size_t len)
{
    static const char named[] = "abtnvfr";

    sd_buf_append_char(out, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            sd_buf_append_char(out, '\\');
            sd_buf_append_char(out, (char)c);
        } else if (c >= 0x07 && c <= 0x0D) {
            sd_buf_append_char(out, '\\');
            sd_buf_append_char(out, named[c - 0x07]);
        } else if (c < 0x20 || c == 0x7F) {
            sd_buf_printf(out, "\\x%02x", c);
        } else {
            sd_buf_append_char(out, (char)c);
        }
    }
    sd_buf_append_char(out, '"');
}

/* Number of code points of a UTF-8 string (continuation bytes are not counted). */
static size_t sd__utf8_len(const char *s)
{
    size_t n = 0;

    for (; *s; s++) {
        if (((unsigned char)*s & 0xC0) != 0x80) {
            n++;
        }
    }
    return n;
}

/* Validation errors merged as the reference's (Goa's MergeErrors, then FormatAsSentences): the
 * first error names the answer, the messages are joined with "; ", and the whole is made a
 * sentence (first letter upper case, a final '.' after a letter, digit or quote). */
struct sd__merged {
    const char *name;
    struct sd_buf msg;
};

__attribute__((format(printf, 3, 4))) static void sd__merge(struct sd__merged *m, const char *name,
                                                            const char *fmt, ...)
{
    char part[SD_DEFS_ERR_MESSAGE_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(part, sizeof(part), fmt, ap);
    va_end(ap);
    if (m->name == NULL) {
        m->name = name;
    } else {
        sd_buf_append_str(&m->msg, "; ");
    }
    sd_buf_append_str(&m->msg, part);
}

/* Appends the length error of field when value has not min..max characters (code points). */
static void sd__merge_length(struct sd__merged *m, const char *field, const char *value, size_t min,
                             size_t max)
{
    struct sd_buf quoted = SD_BUF_INIT;
    size_t n = sd__utf8_len(value);

    if (n < min || n > max) {
        sd_defs_append_quoted(&quoted, value, strlen(value));
        sd__merge(m, "invalidLength",
                  "length of %s must be %s or equal than %zu but got value %s (len=%zu)", field,
                  n < min ? "greater" : "lesser", n < min ? min : max, sd_buf_cstr(&quoted), n);
    }
    sd_buf_fini(&quoted);
}

/* Appends the enum error of field unless value is one of allowed (NULL-terminated). */
static void sd__merge_enum(struct sd__merged *m, const char *field, const char *value,
                           const char *const *allowed)
{
    struct sd_buf list = SD_BUF_INIT, quoted = SD_BUF_INIT;

    for (size_t i = 0; allowed[i] != NULL; i++) {
        if (strcmp(value, allowed[i]) == 0) {
            sd_buf_fini(&list);
            return;
        }
        sd_buf_printf(&list, "%s\"%s\"", i > 0 ? ", " : "", allowed[i]);
    }
    sd_defs_append_quoted(&quoted, value, strlen(value));
    sd__merge(m, "invalidEnumValue", "value of %s must be one of %s but got value %s", field,
              sd_buf_cstr(&list), sd_buf_cstr(&quoted));
    sd_buf_fini(&list);
    sd_buf_fini(&quoted);
}

/* Returns 0 when nothing was merged, otherwise SD_EINVAL with the sentence in err. */
static int sd__merged_finish(struct sd__merged *m, struct sd_defs_err *err)
{
    char last;
    int rc = 0;

    if (m->name != NULL) {
        m->msg.data[0] = (char)toupper((unsigned char)m->msg.data[0]);
        last = m->msg.data[m->msg.len - 1];
        if (isalnum((unsigned char)last) || last == '\'' || last == '"') {
            sd_buf_append_char(&m->msg, '.');
        }
        rc = sd__fail(err, m->name, "%s", sd_buf_cstr(&m->msg));
    }
    sd_buf_fini(&m->msg);
    return rc;
}

int sd_defs_check_length(const char *field, const char *value, size_t min, size_t max,
                         struct sd_defs_err *err)
{
    struct sd__merged m = {NULL, SD_BUF_INIT};

    sd__merge_length(&m, field, value, min, max);
    return sd__merged_finish(&m, err);
}

int sd_defs_is_valid_id(const char *id)
{
    size_t n = strlen(id);

    if (n == 0 || n > SD_DEFS_ID_MAX || id[0] == '-' || id[n - 1] == '-') {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!(islower((unsigned char)id[i]) || isdigit((unsigned char)id[i]) || id[i] == '-')) {
            return 0;
        }
    }
    return 1;
}

int sd_defs_resolve_id(const char *field, const json_t *given, const char *name,
                       char out[SD_DEFS_ID_MAX + 1], struct sd_defs_err *err)
{
    struct sd_buf id = SD_BUF_INIT;
    char path[64];
    int rc = 0;

    snprintf(path, sizeof(path), "body.%s", field);
    if (given != NULL && !json_is_null(given)) {
        if (!json_is_string(given)) {
            return sd__fail(err, "badRequest", "Field %s must be a string.", path);
        }
        rc = sd_defs_check_length(path, json_string_value(given), 1, SD_DEFS_ID_MAX, err);
        if (rc != 0) {
            return rc;
        }
        if (sd_defs_normalize_id(json_string_value(given), &id) != 0) {
            rc = sd__fail(err, "badRequest",
                          "Invalid %s: it must contain at least one letter or digit.", path);
        } else if (id.len > SD_DEFS_ID_MAX) {
            rc = sd__fail(err, "invalidLength",
                          "Length of normalized %s \"%s\" must be lesser or equal than %d "
                          "(len=%zu).",
                          path, id.data, SD_DEFS_ID_MAX, id.len);
        }
    } else if (sd_defs_normalize_id(name, &id) != 0) {
        rc = sd__fail(err, "badRequest",
                      "Cannot generate %s from body.name: it must contain at least one letter "
                      "or digit.",
                      path);
    } else if (id.len > SD_DEFS_ID_MAX) {
        id.len = SD_DEFS_ID_MAX;
        while (id.len > 0 && id.data[id.len - 1] == '-') {
            id.len--;
        }
    }
    if (rc == 0 && id.len == 7 && memcmp(id.data, "deleted", 7) == 0) {
        /* GET .../sources/deleted and .../sinks/deleted are the lists of deleted entities. */
        rc = sd__fail(err, "badRequest",
                      "Invalid %s \"deleted\": the id is reserved for the list of deleted "
                      "entities, please choose another one.",
                      path);
    }
    if (rc == 0) {
        memcpy(out, id.data, id.len);
        out[id.len] = '\0';
    }
    sd_buf_fini(&id);
    return rc;
}

/* 1 if s[0..len) is 1..max characters of [a-zA-Z0-9_-]. */
static int sd__is_storage_name(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || c == '_' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

int sd_defs_check_table_id(const char *field, const char *table_id, struct sd_defs_err *err)
{
    const char *dot1 = strchr(table_id, '.');
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    size_t stage_len;

    if (dot1 == NULL || dot2 == NULL) {
        goto bad;
    }
    stage_len = (size_t)(dot1 - table_id);
    if (!((stage_len == 2 && memcmp(table_id, "in", 2) == 0) ||
          (stage_len == 3 && memcmp(table_id, "out", 3) == 0))) {
        goto bad;
    }
    if ((size_t)(dot2 - dot1 - 1) < 3 || memcmp(dot1 + 1, "c-", 2) != 0 ||
        !sd__is_storage_name(dot1 + 3, (size_t)(dot2 - dot1 - 3), SD_DEFS_TABLE_NAME_MAX)) {
        goto bad;
    }
    if (!sd__is_storage_name(dot2 + 1, strlen(dot2 + 1), SD_DEFS_TABLE_NAME_MAX)) {
        goto bad;
    }
    return 0;

bad:
    return sd__fail(err, "badRequest",
                    "Invalid %s \"%.128s\": expected \"<stage>.c-<bucket>.<table>\" with stage "
                    "\"in\" or \"out\" and bucket and table names of 1 to %d letters, digits, "
                    "\"_\" or \"-\".",
                    field, table_id, SD_DEFS_TABLE_NAME_MAX);
}

/* Reads the string member key of obj (context ctx, e.g. "body"). A JSON null counts as absent.
 * Returns 0 with *out (NULL when absent and optional) or SD_EINVAL with err. */
static int sd__get_string(const json_t *obj, const char *ctx, const char *key, int required,
                          const char **out, struct sd_defs_err *err)
{
    json_t *v = json_object_get(obj, key);

    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        if (required) {
            return sd__fail(err, "missingField", "\"%s\" is missing from %s.", key, ctx);
        }
        return 0;
    }
    if (!json_is_string(v)) {
        return sd__fail(err, "badRequest", "Field %s.%s must be a string.", ctx, key);
    }
    *out = json_string_value(v);
    return 0;
}

/* Reads the object (or array when want_array) member key of obj; same rules as sd__get_string. */
static int sd__get_container(const json_t *obj, const char *ctx, const char *key, int required,
                             int want_array, const json_t **out, struct sd_defs_err *err)
{
    json_t *v = json_object_get(obj, key);

    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        if (required) {
            return sd__fail(err, "missingField", "\"%s\" is missing from %s.", key, ctx);
        }
        return 0;
    }
    if (want_array ? !json_is_array(v) : !json_is_object(v)) {
        return sd__fail(err, "badRequest", "Field %s.%s must be an %s.", ctx, key,
                        want_array ? "array" : "object");
    }
    *out = v;
    return 0;
}

/* Checks name and description of a create body. */
/* The members every create shares: reads type, name, description and the id field (types
 * first, as the reference decodes the body before validating it), then validates them merged in
 * the reference's order: type and name missing, id length, type not one of types, name and
 * description length. */
static int sd__check_common(const json_t *body, const char *id_field, const char *const *types,
                            const char **name, const char **description, const char **type,
                            struct sd_defs_err *err)
{
    struct sd__merged m = {NULL, SD_BUF_INIT};
    const char *id = NULL;
    char path[64];
    int rc;

    if (!json_is_object(body)) {
        return sd__fail(err, "badRequest", "The request body must be a JSON object.");
    }
    if ((rc = sd__get_string(body, "body", "type", 0, type, err)) != 0 ||
        (rc = sd__get_string(body, "body", "name", 0, name, err)) != 0 ||
        (rc = sd__get_string(body, "body", "description", 0, description, err)) != 0 ||
        (rc = sd__get_string(body, "body", id_field, 0, &id, err)) != 0) {
        return rc;
    }
    if (*type == NULL) {
        sd__merge(&m, "missingField", "\"type\" is missing from body");
    }
    if (*name == NULL) {
        sd__merge(&m, "missingField", "\"name\" is missing from body");
    }
    snprintf(path, sizeof(path), "body.%s", id_field);
    if (id != NULL) {
        sd__merge_length(&m, path, id, 1, SD_DEFS_ID_MAX);
    }
    if (*type != NULL) {
        sd__merge_enum(&m, "body.type", *type, types);
    }
    if (*name != NULL) {
        sd__merge_length(&m, "body.name", *name, 1, SD_DEFS_NAME_MAX);
    }
    if (*description != NULL) {
        sd__merge_length(&m, "body.description", *description, 0, SD_DEFS_DESCRIPTION_MAX);
    } else {
        *description = "";
    }
    return sd__merged_finish(&m, err);
}

/* The types the reference's API accepts (streamd refuses "otlp" after validation). */
static const char *const sd__source_types[] = {"http", "otlp", NULL};
static const char *const sd__sink_types[] = {"table", NULL};

int sd_defs_parse_source_create(const json_t *body, struct sd_defs_source_input *in,
                                struct sd_defs_err *err)
{
    int rc;

    memset(in, 0, sizeof(*in));
    rc = sd__check_common(body, "sourceId", sd__source_types, &in->name, &in->description,
                          &in->type, err);
    if (rc != 0) {
        return rc;
    }
    if (strcmp(in->type, "otlp") == 0) {
        return sd__fail(err, "badRequest", "Source type \"otlp\" is not supported yet.");
    }
    return sd_defs_resolve_id("sourceId", json_object_get(body, "sourceId"), in->name,
                              in->source_id, err);
}

static int sd__check_signals(const json_t *signals, struct sd_defs_err *err)
{
    size_t i;
    json_t *v;

    json_array_foreach(signals, i, v)
    {
        const char *s = json_string_value(v);
        if (s == NULL ||
            (strcmp(s, "logs") != 0 && strcmp(s, "metrics") != 0 && strcmp(s, "traces") != 0)) {
            return sd__fail(err, "invalidEnumValue",
                            "Value of body.allowedSignals[%zu] must be one of \"logs\", "
                            "\"metrics\", \"traces\".",
                            i);
        }
    }
    return 0;
}

/* 1 if the len bytes at s are a column name of the destination (Keboola Storage): ASCII
 * letters, digits, '_' and '-', starting and ending with a letter or digit. */
static int sd__is_column_name(const char *s, size_t len)
{
    if (len == 0 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[len - 1])) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80 || !(isalnum(c) || c == '_' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

/* Checks the name of column cctx (e.g. "body.table.mapping.columns[0]"): 1..64 characters as
 * sd__is_column_name says, with the messages of the reference's (Goa) length and pattern
 * validations. The whole JSON string is checked, an embedded NUL included. */
static int sd__check_column_name(const char *cctx, const json_t *name, struct sd_defs_err *err)
{
    struct sd_buf quoted = SD_BUF_INIT;
    char field[80];
    int rc;

    snprintf(field, sizeof(field), "%s.name", cctx);
    rc = sd_defs_check_length(field, json_string_value(name), 1, SD_DEFS_COLUMN_NAME_MAX, err);
    if (rc != 0 || sd__is_column_name(json_string_value(name), json_string_length(name))) {
        return rc;
    }
    sd_defs_append_quoted(&quoted, json_string_value(name), json_string_length(name));
    rc = sd__fail(err, "invalidPattern", "%s must match the regexp \"%s\" but got value %s", field,
                  SD_DEFS_COLUMN_NAME_PATTERN, sd_buf_cstr(&quoted));
    sd_buf_fini(&quoted);
    return rc;
}

static int sd__check_columns(const json_t *columns, struct sd_defs_err *err)
{
    const char *ctx = "body.table.mapping.columns";
    size_t n = json_array_size(columns), i;
    json_t *col;
    char cctx[64];
    int rc;

    if (n < 1) {
        return sd__fail(err, "invalidLength",
                        "Length of %s must be greater or equal than 1 (len=0).", ctx);
    }
    if (n > SD_DEFS_COLUMNS_MAX) {
        return sd__fail(err, "invalidLength",
                        "Length of %s must be lesser or equal than %d (len=%zu).", ctx,
                        SD_DEFS_COLUMNS_MAX, n);
    }
    json_array_foreach(columns, i, col)
    {
        const char *s;
        snprintf(cctx, sizeof(cctx), "%s[%zu]", ctx, i);
        if (!json_is_object(col)) {
            return sd__fail(err, "badRequest", "Field %s must be an object.", cctx);
        }
        if ((rc = sd__get_string(col, cctx, "type", 1, &s, err)) != 0 ||
            (rc = sd__get_string(col, cctx, "name", 1, &s, err)) != 0 ||
            (rc = sd__check_column_name(cctx, json_object_get(col, "name"), err)) != 0) {
            return rc;
        }
    }
    return 0;
}

int sd_defs_parse_sink_create(const json_t *body, struct sd_defs_sink_input *in,
                              struct sd_defs_err *err)
{
    const json_t *table, *mapping;
    int rc;

    memset(in, 0, sizeof(*in));
    rc = sd__check_common(body, "sinkId", sd__sink_types, &in->name, &in->description, &in->type,
                          err);
    if (rc != 0) {
        return rc;
    }
    if ((rc = sd__get_container(body, "body", "allowedSignals", 0, 1, &in->allowed_signals, err)) !=
        0) {
        return rc;
    }
    if (in->allowed_signals != NULL && (rc = sd__check_signals(in->allowed_signals, err)) != 0) {
        return rc;
    }
    if ((rc = sd__get_container(body, "body", "table", 1, 0, &table, err)) != 0 ||
        (rc = sd__get_string(table, "body.table", "type", 1, &in->table_type, err)) != 0) {
        return rc;
    }
    if (strcmp(in->table_type, "keboola") != 0) {
        return sd__fail(err, "invalidEnumValue",
                        "Value of body.table.type must be one of \"keboola\" but got value "
                        "\"%.64s\".",
                        in->table_type);
    }
    if ((rc = sd__get_string(table, "body.table", "tableId", 1, &in->table_id, err)) != 0 ||
        (rc = sd_defs_check_table_id("body.table.tableId", in->table_id, err)) != 0 ||
        (rc = sd__get_container(table, "body.table", "mapping", 1, 0, &mapping, err)) != 0 ||
        (rc = sd__get_container(mapping, "body.table.mapping", "columns", 1, 1, &in->columns,
                                err)) != 0 ||
        (rc = sd__check_columns(in->columns, err)) != 0) {
        return rc;
    }
    return sd_defs_resolve_id("sinkId", json_object_get(body, "sinkId"), in->name, in->sink_id,
                              err);
}

json_t *sd_defs_by_json(const struct sd_defs_by *by)
{
    json_t *j = json_object();

    const struct {
        const char *name, *value;
    } members[] = {{"tokenId", by->token_id},
                   {"tokenDesc", by->token_desc},
                   {"userId", by->user_id},
                   {"userName", by->user_name}};

    json_object_set_new(j, "type", json_string(by->type[0] ? by->type : "system"));
    for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
        if (members[i].value[0] != '\0') {
            json_object_set_new(j, members[i].name, json_string(members[i].value));
        }
    }
    return j;
}

/* Returns {at, by} (new reference). */
static json_t *sd__at_by(const struct sd_defs_by *by, int64_t now_ms)
{
    char at[SD_TIME_ISO_LEN + 1];
    json_t *j = json_object();

    sd_time_format_iso(now_ms, at);
    json_object_set_new(j, "at", json_string(at));
    json_object_set_new(j, "by", sd_defs_by_json(by));
    return j;
}

json_t *sd_defs_source_build(int64_t project_id, int64_t branch_id,
                             const struct sd_defs_source_input *in, const char *secret,
                             const struct sd_defs_by *by, int64_t now_ms)
{
    json_t *j = json_object();
    json_t *http = json_object();

    json_object_set_new(j, "projectId", json_integer(project_id));
    json_object_set_new(j, "branchId", json_integer(branch_id));
    json_object_set_new(j, "sourceId", json_string(in->source_id));
    json_object_set_new(j, "type", json_string(in->type));
    json_object_set_new(j, "name", json_string(in->name));
    json_object_set_new(j, "description", json_string(in->description));
    json_object_set_new(http, "secret", json_string(secret));
    json_object_set_new(j, "http", http);
    json_object_set_new(j, "version", json_object());
    json_object_set_new(j, "created", sd__at_by(by, now_ms));
    sd_defs_set_version(j, 1, "New source.", by, now_ms);
    return j;
}

/* Copies the known members of one column definition. */
static json_t *sd__copy_column(const json_t *col)
{
    static const char *const keys[] = {"type",         "name",      "path",
                                       "defaultValue", "rawString", "primaryKey"};
    json_t *out = json_object();
    json_t *tmpl = json_object_get(col, "template");

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_t *v = json_object_get(col, keys[i]);
        if (v != NULL && !json_is_null(v)) {
            json_object_set(out, keys[i], v);
        }
    }
    if (json_is_object(tmpl)) {
        json_t *t = json_object();
        json_t *lang = json_object_get(tmpl, "language");
        json_t *content = json_object_get(tmpl, "content");
        if (lang != NULL) {
            json_object_set(t, "language", lang);
        }
        if (content != NULL) {
            json_object_set(t, "content", content);
        }
        json_object_set_new(out, "template", t);
    } else if (tmpl != NULL && !json_is_null(tmpl)) {
        json_object_set(out, "template", tmpl);
    }
    return out;
}

json_t *sd_defs_sink_build(int64_t project_id, int64_t branch_id, const char *source_id,
                           const struct sd_defs_sink_input *in, const struct sd_defs_by *by,
                           int64_t now_ms)
{
    json_t *j = json_object();
    json_t *table = json_object();
    json_t *mapping = json_object();
    json_t *columns = json_array();
    json_t *col;
    size_t i;

    json_object_set_new(j, "projectId", json_integer(project_id));
    json_object_set_new(j, "branchId", json_integer(branch_id));
    json_object_set_new(j, "sourceId", json_string(source_id));
    json_object_set_new(j, "sinkId", json_string(in->sink_id));
    json_object_set_new(j, "type", json_string(in->type));
    json_object_set_new(j, "name", json_string(in->name));
    json_object_set_new(j, "description", json_string(in->description));
    if (in->allowed_signals != NULL) {
        json_object_set_new(j, "allowedSignals", json_deep_copy(in->allowed_signals));
    }
    json_object_set_new(table, "type", json_string(in->table_type));
    json_object_set_new(table, "tableId", json_string(in->table_id));
    json_array_foreach(in->columns, i, col)
    {
        json_array_append_new(columns, sd__copy_column(col));
    }
    json_object_set_new(mapping, "columns", columns);
    json_object_set_new(table, "mapping", mapping);
    json_object_set_new(j, "table", table);
    json_object_set_new(j, "version", json_object());
    json_object_set_new(j, "created", sd__at_by(by, now_ms));
    sd_defs_set_version(j, 1, "New sink.", by, now_ms);
    return j;
}

/* Returns a copy of entity without version, lifecycle members and secrets. */
static json_t *sd__content(const json_t *entity)
{
    json_t *c = json_deep_copy(entity);
    json_t *http;

    json_object_del(c, "version");
    json_object_del(c, "created");
    json_object_del(c, "deleted");
    json_object_del(c, "disabled");
    http = json_object_get(c, "http");
    if (json_is_object(http)) {
        json_object_del(http, "secret");
    }
    return c;
}

void sd_defs_version_hash(const json_t *entity, char out[17])
{
    static const char hex[] = "0123456789abcdef";
    json_t *c = sd__content(entity);
    char *text = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (text == NULL || EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL) != 1) {
        abort(); /* out of memory */
    }
    for (int i = 0; i < 8; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[16] = '\0';
    free(text);
    json_decref(c);
}

void sd_defs_set_version(json_t *entity, int64_t number, const char *description,
                         const struct sd_defs_by *by, int64_t now_ms)
{
    char hash[17];
    char at[SD_TIME_ISO_LEN + 1];
    json_t *v = json_object();

    sd_defs_version_hash(entity, hash);
    sd_time_format_iso(now_ms, at);
    json_object_set_new(v, "number", json_integer(number));
    json_object_set_new(v, "hash", json_string(hash));
    json_object_set_new(v, "description", json_string(description));
    json_object_set_new(v, "at", json_string(at));
    json_object_set_new(v, "by", sd_defs_by_json(by));
    json_object_set_new(entity, "version", v);
}

int64_t sd_defs_version_number(const json_t *entity)
{
    return json_integer_value(json_object_get(json_object_get(entity, "version"), "number"));
}

void sd_defs_set_deleted(json_t *entity, const struct sd_defs_by *by, int64_t now_ms)
{
    json_object_set_new(entity, "deleted", sd__at_by(by, now_ms));
}

void sd_defs_set_disabled(json_t *entity, const struct sd_defs_by *by, const char *reason,
                          int64_t now_ms)
{
    json_t *d = sd__at_by(by, now_ms);

    json_object_set_new(d, "reason", json_string(reason));
    json_object_set_new(entity, "disabled", d);
}

int sd_defs_parse_update(const json_t *body, int is_sink, struct sd_defs_update *u,
                         struct sd_defs_err *err)
{
    struct sd__merged m = {NULL, SD_BUF_INIT};
    const json_t *table = NULL, *mapping = NULL;
    int rc;

    memset(u, 0, sizeof(*u));
    if (!json_is_object(body)) {
        return sd__fail(err, "badRequest", "The request body must be a JSON object.");
    }
    if ((rc = sd__get_string(body, "body", "changeDescription", 0, &u->change_description, err)) !=
            0 ||
        (rc = sd__get_string(body, "body", "name", 0, &u->name, err)) != 0 ||
        (rc = sd__get_string(body, "body", "description", 0, &u->description, err)) != 0 ||
        (rc = sd__get_string(body, "body", "type", 0, &u->type, err)) != 0) {
        return rc;
    }
    if (u->type != NULL) {
        sd__merge_enum(&m, "body.type", u->type, is_sink ? sd__sink_types : sd__source_types);
    }
    if (u->name != NULL) {
        sd__merge_length(&m, "body.name", u->name, 1, SD_DEFS_NAME_MAX);
    }
    if (u->description != NULL) {
        sd__merge_length(&m, "body.description", u->description, 0, SD_DEFS_DESCRIPTION_MAX);
    }
    if ((rc = sd__merged_finish(&m, err)) != 0) {
        return rc;
    }
    if (!is_sink) {
        if (u->type != NULL && strcmp(u->type, "otlp") == 0) {
            return sd__fail(err, "badRequest", "Source type \"otlp\" is not supported yet.");
        }
        return 0;
    }
    if ((rc = sd__get_container(body, "body", "allowedSignals", 0, 1, &u->allowed_signals, err)) !=
        0) {
        return rc;
    }
    if (u->allowed_signals != NULL && (rc = sd__check_signals(u->allowed_signals, err)) != 0) {
        return rc;
    }
    if ((rc = sd__get_container(body, "body", "table", 0, 0, &table, err)) != 0 || table == NULL) {
        return rc;
    }
    if ((rc = sd__get_string(table, "body.table", "type", 0, &u->table_type, err)) != 0) {
        return rc;
    }
    if (u->table_type != NULL && strcmp(u->table_type, "keboola") != 0) {
        return sd__fail(err, "invalidEnumValue",
                        "Value of body.table.type must be one of \"keboola\" but got value "
                        "\"%.64s\".",
                        u->table_type);
    }
    if ((rc = sd__get_string(table, "body.table", "tableId", 0, &u->table_id, err)) != 0) {
        return rc;
    }
    if (u->table_id != NULL &&
        (rc = sd_defs_check_table_id("body.table.tableId", u->table_id, err)) != 0) {
        return rc;
    }
    if ((rc = sd__get_container(table, "body.table", "mapping", 0, 0, &mapping, err)) != 0 ||
        mapping == NULL) {
        return rc;
    }
    if ((rc = sd__get_container(mapping, "body.table.mapping", "columns", 1, 1, &u->columns,
                                err)) != 0 ||
        (rc = sd__check_columns(u->columns, err)) != 0) {
        return rc;
    }
    return 0;
}

json_t *sd_defs_apply_update(const json_t *stored, const struct sd_defs_update *u)
{
    json_t *j = json_deep_copy(stored);
    json_t *table, *mapping, *columns, *col;
    size_t i;

    if (u->name != NULL) {
        json_object_set_new(j, "name", json_string(u->name));
    }
    if (u->description != NULL) {
        json_object_set_new(j, "description", json_string(u->description));
    }
    if (u->type != NULL) {
        json_object_set_new(j, "type", json_string(u->type));
    }
    if (u->allowed_signals != NULL) {
        json_object_set_new(j, "allowedSignals", json_deep_copy(u->allowed_signals));
    }
    if (u->table_type == NULL && u->table_id == NULL && u->columns == NULL) {
        return j;
    }
    table = json_object_get(j, "table");
    if (!json_is_object(table)) {
        table = json_object();
        json_object_set_new(j, "table", table);
    }
    if (u->table_type != NULL) {
        json_object_set_new(table, "type", json_string(u->table_type));
    }
    if (u->table_id != NULL) {
        json_object_set_new(table, "tableId", json_string(u->table_id));
    }
    if (u->columns != NULL) {
        mapping = json_object();
        columns = json_array();
        json_array_foreach(u->columns, i, col)
        {
            json_array_append_new(columns, sd__copy_column(col));
        }
        json_object_set_new(mapping, "columns", columns);
        json_object_set_new(table, "mapping", mapping);
    }
    return j;
}

json_t *sd_defs_source_to_api(const json_t *stored, const char *source_public_url)
{
    json_t *j = json_deep_copy(stored);
    json_t *http = json_object_get(j, "http");
    const char *secret = json_string_value(json_object_get(http, "secret"));
    char *url;

    if (json_is_object(http)) {
        json_t *h = json_object();
        url = sd_xasprintf("%s/stream/%" PRId64 "/%s/%s", source_public_url,
                           (int64_t)json_integer_value(json_object_get(j, "projectId")),
                           json_string_value(json_object_get(j, "sourceId")), secret ? secret : "");
        json_object_set_new(h, "url", json_string(url));
        free(url);
        json_object_set_new(j, "http", h);
    }
    json_object_del(j, "config"); /* settings overrides: shown by the settings endpoints */
    return j;
}

json_t *sd_defs_sink_to_api(const json_t *stored)
{
    json_t *j = json_deep_copy(stored);

    json_object_del(j, "config");
    return j;
}

json_t *sd_defs_version_record(const json_t *stored)
{
    json_t *j = json_deep_copy(stored);
    json_t *http = json_object_get(j, "http");

    if (json_is_object(http)) {
        json_object_del(http, "secret");
    }
    return j;
}

void sd_defs_source_key(struct sd_buf *out, int64_t project, int64_t branch, const char *source_id,
                        int deleted)
{
    sd_buf_reset(out);
    sd_buf_printf(out, "definition/source/%s/%" PRId64 "/%" PRId64 "/%s",
                  deleted ? "deleted" : "active", project, branch, source_id);
}

void sd_defs_sink_key(struct sd_buf *out, int64_t project, int64_t branch, const char *source_id,
                      const char *sink_id, int deleted)
{
    sd_buf_reset(out);
    sd_buf_printf(out, "definition/sink/%s/%" PRId64 "/%" PRId64 "/%s/%s",
                  deleted ? "deleted" : "active", project, branch, source_id, sink_id);
}

void sd_defs_sources_prefix(struct sd_buf *out, int64_t project, int64_t branch, int deleted)
{
    sd_buf_reset(out);
    sd_buf_printf(out, "definition/source/%s/%" PRId64 "/%" PRId64 "/",
                  deleted ? "deleted" : "active", project, branch);
}

void sd_defs_sinks_prefix(struct sd_buf *out, int64_t project, int64_t branch,
                          const char *source_id, int deleted)
{
    sd_buf_reset(out);
    sd_buf_printf(out, "definition/sink/%s/%" PRId64 "/%" PRId64 "/%s/",
                  deleted ? "deleted" : "active", project, branch, source_id);
}

void sd_defs_source_version_key(struct sd_buf *out, int64_t project, int64_t branch,
                                const char *source_id, int64_t number)
{
    sd_buf_reset(out);
    sd_buf_printf(out, "definition/source/version/%" PRId64 "/%" PRId64 "/%s/%010" PRId64, project,
                  branch, source_id, number);
}

void sd_defs_sink_version_key(struct sd_buf *out, int64_t project, int64_t branch,
                              const char *source_id, const char *sink_id, int64_t number)
{
    sd_buf_reset(out);
    sd_buf_printf(out, "definition/sink/version/%" PRId64 "/%" PRId64 "/%s/%s/%010" PRId64, project,
                  branch, source_id, sink_id, number);
}

int sd_defs_next_version(const json_t *entity, const char *what, int64_t *number,
                         struct sd_buf *err)
{
    int64_t next = sd_defs_version_number(entity) + 1;

    if (next > SD_DEFS_VERSIONS_MAX) {
        sd_buf_printf(err, "Version count limit reached in the %s, the maximum is %d.", what,
                      SD_DEFS_VERSIONS_MAX);
        return SD_ELIMIT;
    }
    *number = next;
    return 0;
}
