/* sd_jn_manifest.c: writing Jsonnet values as JSON: the layouts of the jsonnet CLI, of
 * std.toString and of compact output, jsonnet's string escaping, and numbers in the shortest
 * form that reads back as the same double (as go-jsonnet, the reference's engine, prints them). */
#include "jsonnet/sd_jn_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct sd_jn_style sd_jn_style_pretty = {"   ", "\n", ",\n", ": ", "[ ]", "{ }"};
const struct sd_jn_style sd_jn_style_oneline = {"", "", ", ", ": ", "[ ]", "{ }"};
const struct sd_jn_style sd_jn_style_compact = {"", "", ",", ":", "[]", "{}"};

void sd_jn_escape_string(struct sd_buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0; /* start of the bytes not yet copied */

    sd_buf_append_char(out, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        size_t elen = 0;
        size_t skip = 1;
        switch (c) {
        case '"':
            elen = 2, esc[0] = '\\', esc[1] = '"';
            break;
        case '\\':
            elen = 2, esc[0] = '\\', esc[1] = '\\';
            break;
        case '\b':
            elen = 2, esc[0] = '\\', esc[1] = 'b';
            break;
        case '\f':
            elen = 2, esc[0] = '\\', esc[1] = 'f';
            break;
        case '\n':
            elen = 2, esc[0] = '\\', esc[1] = 'n';
            break;
        case '\r':
            elen = 2, esc[0] = '\\', esc[1] = 'r';
            break;
        case '\t':
            elen = 2, esc[0] = '\\', esc[1] = 't';
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                elen = 6;
            } else if (c == 0xC2 && i + 1 < len && (unsigned char)s[i + 1] >= 0x80 &&
                       (unsigned char)s[i + 1] <= 0x9f) {
                /* U+0080..U+009F, the C1 controls */
                unsigned char d = (unsigned char)s[i + 1];
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[d >> 4];
                esc[5] = hex[d & 15];
                elen = 6;
                skip = 2;
            }
            break;
        }
        if (elen > 0) {
            sd_buf_append(out, s + run, i - run);
            sd_buf_append(out, esc, elen);
            i += skip - 1;
            run = i + 1;
        }
    }
    sd_buf_append(out, s + run, len - run);
    sd_buf_append_char(out, '"');
}

void sd_jn_format_number(struct sd_buf *out, double n)
{
    char buf[400];
    int len;

    if (n == floor(n) && fabs(n) < 1e15) {
        len = snprintf(buf, sizeof(buf), "%lld", (long long)n);
        if (n == 0 && signbit(n)) {
            len = snprintf(buf, sizeof(buf), "-0");
        }
    } else if (n == floor(n)) {
        len = snprintf(buf, sizeof(buf), "%.0f", n);
    } else {
        /* the shortest precision that reads back as the same double */
        for (int prec = 1; prec <= 17; prec++) {
            len = snprintf(buf, sizeof(buf), "%.*g", prec, n);
            if (strtod(buf, NULL) == n) {
                break;
            }
        }
    }
    sd_buf_append(out, buf, (size_t)len);
}

static void put_indent(struct sd_buf *out, const char *indent, unsigned depth)
{
    if (indent[0] != '\0') {
        for (unsigned i = 0; i < depth; i++) {
            sd_buf_append_str(out, indent);
        }
    }
}

static int manifest(struct sd_jn_vm *vm, const struct sd_jn_val *v, const struct sd_jn_style *st,
                    unsigned depth, struct sd_buf *out, size_t start);

static int manifest_array(struct sd_jn_vm *vm, struct sd_jn_arr *a, const struct sd_jn_style *st,
                          unsigned depth, struct sd_buf *out, size_t start)
{
    if (a->n == 0) {
        sd_buf_append_str(out, st->empty_array);
        return 0;
    }
    sd_buf_append_char(out, '[');
    sd_buf_append_str(out, st->newline);
    for (size_t i = 0; i < a->n; i++) {
        struct sd_jn_val e;
        if (i > 0) {
            sd_buf_append_str(out, st->item_sep);
        }
        put_indent(out, st->indent, depth + 1);
        if (jn_force(vm, a->items[i], &e) != 0 ||
            manifest(vm, &e, st, depth + 1, out, start) != 0) {
            return SD_JN_ERR;
        }
    }
    sd_buf_append_str(out, st->newline);
    put_indent(out, st->indent, depth);
    sd_buf_append_char(out, ']');
    return 0;
}

static int manifest_object(struct sd_jn_vm *vm, struct sd_jn_obj *o, const struct sd_jn_style *st,
                           unsigned depth, struct sd_buf *out, size_t start)
{
    struct sd_jn_str **names;
    size_t n;

    if (sd_jn_obj_fields(vm, o, 0, &names, &n) != 0) {
        return SD_JN_ERR;
    }
    if (n == 0) {
        sd_buf_append_str(out, st->empty_object);
        return 0;
    }
    sd_buf_append_char(out, '{');
    sd_buf_append_str(out, st->newline);
    for (size_t i = 0; i < n; i++) {
        struct sd_jn_val e;
        int found;
        if (i > 0) {
            sd_buf_append_str(out, st->item_sep);
        }
        put_indent(out, st->indent, depth + 1);
        sd_jn_escape_string(out, names[i]->data, names[i]->len);
        sd_buf_append_str(out, st->kv_sep);
        if (sd_jn_obj_get(vm, o, names[i]->data, names[i]->len, &e, &found) != 0 ||
            manifest(vm, &e, st, depth + 1, out, start) != 0) {
            return SD_JN_ERR;
        }
    }
    sd_buf_append_str(out, st->newline);
    put_indent(out, st->indent, depth);
    sd_buf_append_char(out, '}');
    return 0;
}

static int manifest(struct sd_jn_vm *vm, const struct sd_jn_val *v, const struct sd_jn_style *st,
                    unsigned depth, struct sd_buf *out, size_t start)
{
    const char *here = __builtin_frame_address(0);

    if ((size_t)(vm->stack_base - here) > vm->stack_budget) {
        return sd_jn_throw(vm, "max stack depth exceeded (value nested too deeply)");
    }
    if (out->len - start > vm->limits.max_output) {
        vm->output_exceeded = 1;
        return sd_jn_throw(vm, "output limit (%zu bytes) exceeded", vm->limits.max_output);
    }
    if (sd_jn_tick(vm, 1) != 0) {
        return SD_JN_ERR;
    }
    switch (v->type) {
    case SD_JN_NULL:
        sd_buf_append_str(out, "null");
        return 0;
    case SD_JN_BOOL:
        sd_buf_append_str(out, v->u.b ? "true" : "false");
        return 0;
    case SD_JN_NUMBER:
        sd_jn_format_number(out, v->u.n);
        return 0;
    case SD_JN_STRING:
        sd_jn_escape_string(out, v->u.s->data, v->u.s->len);
        return 0;
    case SD_JN_ARRAY:
        return manifest_array(vm, v->u.a, st, depth, out, start);
    case SD_JN_OBJECT:
        return manifest_object(vm, v->u.o, st, depth, out, start);
    default:
        return sd_jn_throw(vm, "couldn't manifest function as JSON");
    }
}

int sd_jn_manifest(struct sd_jn_vm *vm, const struct sd_jn_val *v, const struct sd_jn_style *st,
                   struct sd_buf *out)
{
    return manifest(vm, v, st, 0, out, out->len);
}

int sd_jn_to_string(struct sd_jn_vm *vm, const struct sd_jn_val *v, struct sd_buf *out)
{
    if (v->type == SD_JN_STRING) {
        sd_buf_append(out, v->u.s->data, v->u.s->len);
        return 0;
    }
    return sd_jn_manifest(vm, v, &sd_jn_style_oneline, out);
}
