/* sd_jn_parse.c: the Jsonnet lexer, parser and static resolver.
 *
 * DESIGN. A hand-written lexer feeds a recursive-descent parser with precedence climbing for
 * binary operators; errors carry the line:column of the offending token. A second pass resolves
 * every variable to a (frame depth, slot) pair following exactly the frames the evaluator pushes
 * (local binds, function parameters, comprehension variables, object locals with `$`), turns
 * std.<name> into its native and host globals into theirs, and reports unknown variables,
 * self/super outside objects and unsupported std functions as static errors. Both passes bound
 * their recursion, so no input exhausts the C stack. Imports are not supported. */
#include "jsonnet/sd_jn_int.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sd_error.h"

#define JN_MAX_PARSE_DEPTH 1000
#define JN_MAX_RESOLVE_DEPTH 5000

enum tok_kind {
    T_EOF,
    T_ID,
    T_NUMBER,
    T_STRING,
    T_OP, /* operators and punctuation, text in (p, len) */
    /* keywords */
    T_ASSERT,
    T_ELSE,
    T_ERROR,
    T_FALSE,
    T_FOR,
    T_FUNCTION,
    T_IF,
    T_IMPORT,
    T_IMPORTSTR,
    T_IMPORTBIN,
    T_IN,
    T_LOCAL,
    T_NULL,
    T_TAILSTRICT,
    T_THEN,
    T_SELF,
    T_SUPER,
    T_TRUE
};

static const struct {
    const char *word;
    enum tok_kind kind;
} keywords[] = {
    {"assert", T_ASSERT},
    {"else", T_ELSE},
    {"error", T_ERROR},
    {"false", T_FALSE},
    {"for", T_FOR},
    {"function", T_FUNCTION},
    {"if", T_IF},
    {"import", T_IMPORT},
    {"importstr", T_IMPORTSTR},
    {"importbin", T_IMPORTBIN},
    {"in", T_IN},
    {"local", T_LOCAL},
    {"null", T_NULL},
    {"tailstrict", T_TAILSTRICT},
    {"then", T_THEN},
    {"self", T_SELF},
    {"super", T_SUPER},
    {"true", T_TRUE},
};

/* Longest first, so the lexer takes the longest operator. */
static const char *const operators[] = {
    "+:::", ":::", "+::", "::", "+:", "==", "!=", "<=", ">=", "<<", ">>", "&&", "||",
    "{",    "}",   "[",   "]",  "(",  ")",  ",",  ".",  ";",  ":",  "$",  "=",  "+",
    "-",    "*",   "/",   "%",  "<",  ">",  "!",  "~",  "&",  "^",  "|",
};

struct token {
    enum tok_kind kind;
    const char *p; /* source text */
    size_t len;
    uint32_t line;
    uint32_t col;
    double num;
    struct sd_jn_str *str; /* decoded string literal */
};

struct parser {
    const char *src;
    size_t len;
    size_t pos;
    uint32_t line;
    uint32_t col;
    struct token tok; /* the current token */
    struct jn_chunk **chunks;
    size_t total;
    struct sd_buf *err;
    int failed;
    unsigned depth;
    struct sd_buf sbuf; /* string literal decoding */
};

static void *palloc(struct parser *ps, size_t size)
{
    return jn_chunk_alloc(ps->chunks, size, &ps->total);
}

static struct sd_jn_str *pstr(struct parser *ps, const char *p, size_t len)
{
    struct sd_jn_str *s = palloc(ps, sizeof(*s) + len + 1);

    memcpy(s->data, p, len);
    s->len = len;
    s->ncp = sd_utf8_count(p, len);
    return s;
}

static int perr(struct parser *ps, uint32_t line, uint32_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int perr(struct parser *ps, uint32_t line, uint32_t col, const char *fmt, ...)
{
    va_list ap;

    if (ps->failed) {
        return SD_EPARSE;
    }
    ps->failed = 1;
    sd_buf_printf(ps->err, "%u:%u: ", line, col);
    va_start(ap, fmt);
    sd_buf_vprintf(ps->err, fmt, ap);
    va_end(ap);
    return SD_EPARSE;
}

/* ---------------------------------------------------------------------------------------------
 * Lexer */

static int peekc(const struct parser *ps, size_t off)
{
    return ps->pos + off < ps->len ? (unsigned char)ps->src[ps->pos + off] : -1;
}

static void advance(struct parser *ps, size_t n)
{
    while (n-- > 0 && ps->pos < ps->len) {
        if (ps->src[ps->pos] == '\n') {
            ps->line++;
            ps->col = 1;
        } else if (((unsigned char)ps->src[ps->pos] & 0xC0) != 0x80) {
            ps->col++;
        }
        ps->pos++;
    }
}

static int skip_space(struct parser *ps)
{
    for (;;) {
        int c = peekc(ps, 0);
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            advance(ps, 1);
        } else if (c == '#' || (c == '/' && peekc(ps, 1) == '/')) {
            while (peekc(ps, 0) != -1 && peekc(ps, 0) != '\n') {
                advance(ps, 1);
            }
        } else if (c == '/' && peekc(ps, 1) == '*') {
            uint32_t line = ps->line;
            uint32_t col = ps->col;
            advance(ps, 2);
            while (!(peekc(ps, 0) == '*' && peekc(ps, 1) == '/')) {
                if (peekc(ps, 0) == -1) {
                    return perr(ps, line, col, "unterminated comment");
                }
                advance(ps, 1);
            }
            advance(ps, 2);
        } else {
            return 0;
        }
    }
}

static int is_id_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int lex_number(struct parser *ps, struct token *t)
{
    size_t start = ps->pos;
    char tmp[64];
    size_t n;

    if (peekc(ps, 0) == '0') { /* no leading zeros: "01" is 0 then 1, an error as in jsonnet */
        advance(ps, 1);
    } else {
        while (is_digit(peekc(ps, 0))) {
            advance(ps, 1);
        }
    }
    if (peekc(ps, 0) == '.') {
        if (!is_digit(peekc(ps, 1))) {
            return perr(ps, ps->line, ps->col + 1, "a number needs a digit after '.'");
        }
        advance(ps, 1);
        while (is_digit(peekc(ps, 0))) {
            advance(ps, 1);
        }
    }
    if (peekc(ps, 0) == 'e' || peekc(ps, 0) == 'E') {
        size_t k = 1;
        if (peekc(ps, 1) == '+' || peekc(ps, 1) == '-') {
            k = 2;
        }
        if (!is_digit(peekc(ps, k))) {
            return perr(ps, ps->line, ps->col, "a number needs a digit in its exponent");
        }
        advance(ps, k);
        while (is_digit(peekc(ps, 0))) {
            advance(ps, 1);
        }
    }
    n = ps->pos - start;
    t->kind = T_NUMBER;
    t->len = n;
    if (n < sizeof(tmp)) {
        memcpy(tmp, ps->src + start, n);
        tmp[n] = '\0';
        t->num = strtod(tmp, NULL);
    } else {
        char *big = strndup(ps->src + start, n);
        if (big == NULL) {
            return -ENOMEM;
        }
        t->num = strtod(big, NULL);
        free(big);
    }
    if (!isfinite(t->num)) {
        return perr(ps, t->line, t->col, "number literal is out of range");
    }
    return 0;
}

static int append_cp(struct parser *ps, uint32_t cp)
{
    char u[4];
    return sd_buf_append(&ps->sbuf, u, sd_utf8_encode(cp, u));
}

static int hex4(struct parser *ps, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int d = sd_hex_digit(peekc(ps, (size_t)i));
        if (d < 0) {
            return perr(ps, ps->line, ps->col, "\\u must be followed by 4 hexadecimal digits");
        }
        *v = *v * 16 + (uint32_t)d;
    }
    advance(ps, 4);
    return 0;
}

static int lex_escape(struct parser *ps)
{
    int c = peekc(ps, 0);
    uint32_t cp;
    uint32_t lo;
    int rc;

    advance(ps, 1);
    switch (c) {
    case '"':
    case '\'':
    case '\\':
    case '/':
        return sd_buf_append_char(&ps->sbuf, (char)c);
    case 'b':
        return sd_buf_append_char(&ps->sbuf, '\b');
    case 'f':
        return sd_buf_append_char(&ps->sbuf, '\f');
    case 'n':
        return sd_buf_append_char(&ps->sbuf, '\n');
    case 'r':
        return sd_buf_append_char(&ps->sbuf, '\r');
    case 't':
        return sd_buf_append_char(&ps->sbuf, '\t');
    case 'u':
        rc = hex4(ps, &cp);
        if (rc != 0) {
            return rc;
        }
        if (cp >= 0xD800 && cp <= 0xDBFF && peekc(ps, 0) == '\\' && peekc(ps, 1) == 'u') {
            size_t save_pos = ps->pos;
            uint32_t save_col = ps->col;
            advance(ps, 2);
            rc = hex4(ps, &lo);
            if (rc != 0) {
                return rc;
            }
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else {
                ps->pos = save_pos;
                ps->col = save_col;
                cp = 0xFFFD;
            }
        } else if (cp >= 0xD800 && cp <= 0xDFFF) {
            cp = 0xFFFD; /* a lone surrogate cannot be UTF-8 */
        }
        return append_cp(ps, cp);
    case -1:
        return perr(ps, ps->line, ps->col, "unterminated string");
    default:
        return perr(ps, ps->line, ps->col - 1, "unknown escape sequence in string: \\%c", c);
    }
}

static int lex_quoted(struct parser *ps, struct token *t, int verbatim)
{
    int q = peekc(ps, 0);
    int rc;

    advance(ps, 1);
    sd_buf_reset(&ps->sbuf);
    for (;;) {
        int c = peekc(ps, 0);
        if (c == -1) {
            return perr(ps, t->line, t->col, "unterminated string");
        }
        if (c == q) {
            if (verbatim && peekc(ps, 1) == q) {
                advance(ps, 2);
                rc = sd_buf_append_char(&ps->sbuf, (char)q);
            } else {
                advance(ps, 1);
                break;
            }
        } else if (c == '\\' && !verbatim) {
            advance(ps, 1);
            rc = lex_escape(ps);
        } else {
            rc = sd_buf_append_char(&ps->sbuf, (char)c);
            advance(ps, 1);
        }
        if (rc != 0) {
            return rc;
        }
    }
    t->kind = T_STRING;
    t->str = pstr(ps, ps->sbuf.data ? ps->sbuf.data : "", ps->sbuf.len);
    return 0;
}

/* ||| text blocks: the first line's indentation is removed from every line. */
static int lex_text_block(struct parser *ps, struct token *t)
{
    size_t ind_len = 0;
    const char *ind;
    int chomp = 0;

    advance(ps, 3);
    if (peekc(ps, 0) == '-') {
        chomp = 1;
        advance(ps, 1);
    }
    while (peekc(ps, 0) == ' ' || peekc(ps, 0) == '\t' || peekc(ps, 0) == '\r') {
        advance(ps, 1);
    }
    if (peekc(ps, 0) != '\n') {
        return perr(ps, ps->line, ps->col, "text block syntax requires new line after |||");
    }
    advance(ps, 1);
    sd_buf_reset(&ps->sbuf);
    while (peekc(ps, 0) == '\n') { /* leading empty lines */
        sd_buf_append_char(&ps->sbuf, '\n');
        advance(ps, 1);
    }
    ind = ps->src + ps->pos;
    while (peekc(ps, (size_t)ind_len) == ' ' || peekc(ps, (size_t)ind_len) == '\t') {
        ind_len++;
    }
    if (ind_len == 0) {
        return perr(ps, ps->line, ps->col, "text block's first line must start with whitespace");
    }
    for (;;) {
        size_t eol;
        /* a line: the indentation, then the text up to and including '\n' */
        advance(ps, ind_len);
        eol = ps->pos;
        while (eol < ps->len && ps->src[eol] != '\n') {
            eol++;
        }
        if (eol >= ps->len) {
            return perr(ps, t->line, t->col, "unexpected end of file in text block");
        }
        sd_buf_append(&ps->sbuf, ps->src + ps->pos, eol - ps->pos + 1);
        advance(ps, eol - ps->pos + 1);
        /* empty lines belong to the block */
        while (peekc(ps, 0) == '\n') {
            sd_buf_append_char(&ps->sbuf, '\n');
            advance(ps, 1);
        }
        if (ps->len - ps->pos >= ind_len && memcmp(ps->src + ps->pos, ind, ind_len) == 0) {
            continue;
        }
        /* the end: optional whitespace, then ||| */
        while (peekc(ps, 0) == ' ' || peekc(ps, 0) == '\t') {
            advance(ps, 1);
        }
        if (!(peekc(ps, 0) == '|' && peekc(ps, 1) == '|' && peekc(ps, 2) == '|')) {
            return perr(ps, ps->line, ps->col, "text block not terminated with |||");
        }
        advance(ps, 3);
        break;
    }
    if (chomp && ps->sbuf.len > 0 && ps->sbuf.data[ps->sbuf.len - 1] == '\n') {
        ps->sbuf.len--;
    }
    t->kind = T_STRING;
    t->str = pstr(ps, ps->sbuf.data ? ps->sbuf.data : "", ps->sbuf.len);
    return 0;
}

static int lex(struct parser *ps)
{
    struct token *t = &ps->tok;
    int c;
    int rc = skip_space(ps);

    if (rc != 0) {
        return rc;
    }
    memset(t, 0, sizeof(*t));
    t->line = ps->line;
    t->col = ps->col;
    t->p = ps->src + ps->pos;
    c = peekc(ps, 0);
    if (c == -1) {
        t->kind = T_EOF;
        return 0;
    }
    if (is_id_start(c)) {
        size_t n = 0;
        while (is_id_start(peekc(ps, n)) || is_digit(peekc(ps, n))) {
            n++;
        }
        advance(ps, n);
        t->len = n;
        t->kind = T_ID;
        for (size_t k = 0; k < sizeof(keywords) / sizeof(keywords[0]); k++) {
            if (strlen(keywords[k].word) == n && memcmp(keywords[k].word, t->p, n) == 0) {
                t->kind = keywords[k].kind;
                break;
            }
        }
        return 0;
    }
    if (is_digit(c)) {
        return lex_number(ps, t);
    }
    if (c == '"' || c == '\'') {
        return lex_quoted(ps, t, 0);
    }
    if (c == '@' && (peekc(ps, 1) == '"' || peekc(ps, 1) == '\'')) {
        advance(ps, 1);
        return lex_quoted(ps, t, 1);
    }
    if (c == '|' && peekc(ps, 1) == '|' && peekc(ps, 2) == '|') {
        return lex_text_block(ps, t);
    }
    for (size_t k = 0; k < sizeof(operators) / sizeof(operators[0]); k++) {
        size_t n = strlen(operators[k]);
        if (ps->len - ps->pos >= n && memcmp(ps->src + ps->pos, operators[k], n) == 0) {
            t->kind = T_OP;
            t->len = n;
            advance(ps, n);
            return 0;
        }
    }
    if (c >= 0x20 && c < 0x7f) {
        return perr(ps, t->line, t->col, "unexpected character '%c'", c);
    }
    return perr(ps, t->line, t->col, "unexpected byte 0x%02x", (unsigned)c);
}

/* ---------------------------------------------------------------------------------------------
 * Parser */

static int is_op(const struct token *t, const char *op)
{
    return t->kind == T_OP && t->len == strlen(op) && memcmp(t->p, op, t->len) == 0;
}

static void describe(const struct token *t, char *out, size_t size)
{
    switch (t->kind) {
    case T_EOF:
        snprintf(out, size, "end of input");
        break;
    case T_STRING:
        snprintf(out, size, "string");
        break;
    case T_NUMBER:
        snprintf(out, size, "number");
        break;
    default:
        snprintf(out, size, "'%.*s'", (int)(t->len > 40 ? 40 : t->len), t->p);
        break;
    }
}

static int expected(struct parser *ps, const char *what)
{
    char got[64];

    describe(&ps->tok, got, sizeof(got));
    return perr(ps, ps->tok.line, ps->tok.col, "unexpected %s, expected %s", got, what);
}

static int expect_op(struct parser *ps, const char *op)
{
    char what[16];

    if (!is_op(&ps->tok, op)) {
        snprintf(what, sizeof(what), "'%s'", op);
        return expected(ps, what);
    }
    return lex(ps);
}

static int expect_kw(struct parser *ps, enum tok_kind k, const char *word)
{
    char what[24];

    if (ps->tok.kind != k) {
        snprintf(what, sizeof(what), "'%s'", word);
        return expected(ps, what);
    }
    return lex(ps);
}

static struct jn_node *node_new(struct parser *ps, enum jn_kind kind, const struct token *at)
{
    struct jn_node *n = palloc(ps, sizeof(*n));

    n->kind = (uint8_t)kind;
    n->line = at->line;
    n->col = at->col;
    return n;
}

/* A growable array in the program arena. */
struct vec {
    void *items;
    unsigned n;
    unsigned cap;
};

static void *vec_push(struct parser *ps, struct vec *v, size_t size)
{
    if (v->n == v->cap) {
        unsigned cap = v->cap ? v->cap * 2 : 4;
        void *items = palloc(ps, size * cap);
        if (v->n > 0) {
            memcpy(items, v->items, size * v->n);
        }
        v->items = items;
        v->cap = cap;
    }
    return (char *)v->items + size * v->n++;
}

static int parse_expr(struct parser *ps, struct jn_node **out);

static int ident(struct parser *ps, struct sd_jn_str **name)
{
    if (ps->tok.kind != T_ID) {
        return expected(ps, "an identifier");
    }
    *name = pstr(ps, ps->tok.p, ps->tok.len);
    return lex(ps);
}

/* ( params ) for functions and methods; the '(' is the current token. */
static int parse_params(struct parser *ps, struct jn_node *fn)
{
    struct vec v = {0};
    int rc = lex(ps);

    while (rc == 0 && !is_op(&ps->tok, ")")) {
        struct jn_param *p = vec_push(ps, &v, sizeof(*p));
        rc = ident(ps, &p->name);
        for (unsigned k = 0; rc == 0 && k + 1 < v.n; k++) {
            if (sd_str_eq((struct sd_str){((struct jn_param *)v.items)[k].name->data,
                                          ((struct jn_param *)v.items)[k].name->len},
                          (struct sd_str){p->name->data, p->name->len})) {
                rc = perr(ps, ps->tok.line, ps->tok.col, "duplicate function parameter: %s",
                          p->name->data);
            }
        }
        if (rc == 0 && is_op(&ps->tok, "=")) {
            rc = lex(ps);
            if (rc == 0) {
                rc = parse_expr(ps, &p->def);
            }
        }
        if (rc == 0 && is_op(&ps->tok, ",")) {
            rc = lex(ps);
        } else if (rc == 0 && !is_op(&ps->tok, ")")) {
            rc = expected(ps, "',' or ')'");
        }
    }
    if (rc == 0) {
        rc = lex(ps);
    }
    fn->params = v.items;
    fn->nparams = v.n;
    return rc;
}

/* A function node for `name(params) = body` / `name(params): body`; '(' is current. */
static int parse_method(struct parser *ps, const struct token *at, const char *sep,
                        struct jn_node **out)
{
    struct jn_node *fn = node_new(ps, JN_FUNCTION, at);
    int rc = parse_params(ps, fn);

    if (rc == 0 && sep != NULL) {
        rc = expect_op(ps, sep);
    }
    if (rc == 0) {
        rc = parse_expr(ps, &fn->a);
    }
    *out = fn;
    return rc;
}

/* bind: id = e | id(params) = e */
static int parse_bind(struct parser *ps, struct jn_bind *b)
{
    struct token at = ps->tok;
    int rc = ident(ps, &b->name);

    if (rc != 0) {
        return rc;
    }
    if (is_op(&ps->tok, "(")) {
        return parse_method(ps, &at, "=", &b->body);
    }
    rc = expect_op(ps, "=");
    return rc != 0 ? rc : parse_expr(ps, &b->body);
}

static int parse_binds(struct parser *ps, struct jn_node *n)
{
    struct vec v = {0};
    int rc = 0;

    do {
        struct jn_bind *b;
        rc = lex(ps); /* 'local' or ',' */
        if (rc != 0) {
            break;
        }
        b = vec_push(ps, &v, sizeof(*b));
        rc = parse_bind(ps, b);
        for (unsigned k = 0; rc == 0 && k + 1 < v.n; k++) {
            struct jn_bind *o = &((struct jn_bind *)v.items)[k];
            if (o->name->len == b->name->len &&
                memcmp(o->name->data, b->name->data, b->name->len) == 0) {
                rc = perr(ps, n->line, n->col, "duplicate local var: %s", b->name->data);
            }
        }
    } while (rc == 0 && is_op(&ps->tok, ","));
    n->binds = v.items;
    n->nbinds = v.n;
    return rc;
}

/* for x in e (if e | for y in e)* ; the current token is 'for'. */
static int parse_comp_specs(struct parser *ps, struct jn_node *n, const char *close)
{
    struct vec v = {0};
    int rc = 0;

    while (rc == 0 && (ps->tok.kind == T_FOR || ps->tok.kind == T_IF)) {
        struct jn_comp_spec *s = vec_push(ps, &v, sizeof(*s));
        if (ps->tok.kind == T_FOR) {
            rc = lex(ps);
            if (rc == 0) {
                rc = ident(ps, &s->var);
            }
            if (rc == 0) {
                rc = expect_kw(ps, T_IN, "in");
            }
            if (rc == 0) {
                rc = parse_expr(ps, &s->expr);
            }
            s->is_if = 0;
        } else {
            s->is_if = 1;
            rc = lex(ps);
            if (rc == 0) {
                rc = parse_expr(ps, &s->expr);
            }
        }
    }
    if (rc == 0 && !is_op(&ps->tok, close)) {
        char what[40];
        snprintf(what, sizeof(what), "'for', 'if' or '%s'", close);
        rc = expected(ps, what);
    }
    n->specs = v.items;
    n->nspecs = v.n;
    return rc;
}

/* { members } or an object comprehension; the '{' is the current token. */
static int parse_object(struct parser *ps, struct jn_node **out)
{
    struct jn_node *n = node_new(ps, JN_OBJECT, &ps->tok);
    struct vec fields = {0};
    struct vec binds = {0};
    struct vec asserts = {0};
    int rc = lex(ps);

    *out = n;
    while (rc == 0 && !is_op(&ps->tok, "}")) {
        struct token at = ps->tok;
        if (ps->tok.kind == T_LOCAL) {
            struct jn_bind *b = vec_push(ps, &binds, sizeof(*b));
            rc = lex(ps);
            if (rc == 0) {
                rc = parse_bind(ps, b);
            }
            for (unsigned k = 0; rc == 0 && k + 1 < binds.n; k++) {
                struct jn_bind *o = &((struct jn_bind *)binds.items)[k];
                if (o->name->len == b->name->len &&
                    memcmp(o->name->data, b->name->data, b->name->len) == 0) {
                    rc = perr(ps, at.line, at.col, "duplicate local var: %s", b->name->data);
                }
            }
        } else if (ps->tok.kind == T_ASSERT) {
            struct jn_node *a = node_new(ps, JN_ASSERT, &at);
            *(struct jn_node **)vec_push(ps, &asserts, sizeof(a)) = a;
            rc = lex(ps);
            if (rc == 0) {
                rc = parse_expr(ps, &a->a);
            }
            if (rc == 0 && is_op(&ps->tok, ":")) {
                rc = lex(ps);
                if (rc == 0) {
                    rc = parse_expr(ps, &a->b);
                }
            }
        } else {
            struct jn_field *f = vec_push(ps, &fields, sizeof(*f));
            if (ps->tok.kind == T_ID) {
                f->name = pstr(ps, ps->tok.p, ps->tok.len);
                rc = lex(ps);
            } else if (ps->tok.kind == T_STRING) {
                f->name = ps->tok.str;
                rc = lex(ps);
            } else if (is_op(&ps->tok, "[")) {
                rc = lex(ps);
                if (rc == 0) {
                    rc = parse_expr(ps, &f->name_expr);
                }
                if (rc == 0) {
                    rc = expect_op(ps, "]");
                }
            } else if (ps->tok.kind >= T_ASSERT) { /* keywords are not field names unquoted */
                rc = expected(ps, "a field name");
            } else {
                rc = expected(ps, "a field name, 'local', 'assert' or '}'");
            }
            if (rc != 0) {
                break;
            }
            if (is_op(&ps->tok, "(")) {
                struct jn_node *fn = node_new(ps, JN_FUNCTION, &at);
                rc = parse_params(ps, fn);
                f->body = fn;
                if (rc == 0 &&
                    !(is_op(&ps->tok, ":") || is_op(&ps->tok, "::") || is_op(&ps->tok, ":::"))) {
                    rc = expected(ps, "':'");
                }
                f->hide = is_op(&ps->tok, "::")    ? JN_HIDE_HIDDEN
                          : is_op(&ps->tok, ":::") ? JN_HIDE_VISIBLE
                                                   : JN_HIDE_INHERIT;
                if (rc == 0) {
                    rc = lex(ps);
                }
                if (rc == 0) {
                    rc = parse_expr(ps, &fn->a);
                }
            } else {
                if (is_op(&ps->tok, ":") || is_op(&ps->tok, "+:")) {
                    f->hide = JN_HIDE_INHERIT;
                } else if (is_op(&ps->tok, "::") || is_op(&ps->tok, "+::")) {
                    f->hide = JN_HIDE_HIDDEN;
                } else if (is_op(&ps->tok, ":::") || is_op(&ps->tok, "+:::")) {
                    f->hide = JN_HIDE_VISIBLE;
                } else {
                    rc = expected(ps, "':', '::', ':::' or '+:'");
                    break;
                }
                f->plus = ps->tok.p[0] == '+';
                rc = lex(ps);
                if (rc == 0) {
                    rc = parse_expr(ps, &f->body);
                }
            }
        }
        if (rc != 0) {
            break;
        }
        if (ps->tok.kind == T_FOR) {
            break;
        }
        if (is_op(&ps->tok, ",")) {
            rc = lex(ps);
        } else if (!is_op(&ps->tok, "}")) {
            rc = expected(ps, "',' or '}'");
        }
    }
    if (rc != 0) {
        return rc;
    }
    n->fields = fields.items;
    n->nfields = fields.n;
    n->binds = binds.items;
    n->nbinds = binds.n;
    n->asserts = asserts.items;
    n->nasserts = asserts.n;
    if (ps->tok.kind == T_FOR) {
        n->kind = JN_OBJECT_COMP;
        if (fields.n != 1 || n->fields[0].name_expr == NULL) {
            return perr(ps, n->line, n->col,
                        "an object comprehension needs exactly one field, with a [name]");
        }
        if (asserts.n != 0) {
            return perr(ps, n->line, n->col, "an object comprehension cannot have asserts");
        }
        if (n->fields[0].plus) {
            return perr(ps, n->line, n->col, "an object comprehension cannot have +: fields");
        }
        rc = parse_comp_specs(ps, n, "}");
    } else {
        /* duplicate fixed names are a static error */
        for (unsigned i = 0; i < n->nfields; i++) {
            for (unsigned k = 0; n->fields[i].name != NULL && k < i; k++) {
                if (n->fields[k].name != NULL && n->fields[k].name->len == n->fields[i].name->len &&
                    memcmp(n->fields[k].name->data, n->fields[i].name->data,
                           n->fields[i].name->len) == 0) {
                    return perr(ps, n->line, n->col, "duplicate field: %s",
                                n->fields[i].name->data);
                }
            }
        }
    }
    return rc == 0 ? lex(ps) : rc;
}

/* [ items ] or an array comprehension; the '[' is the current token. */
static int parse_array(struct parser *ps, struct jn_node **out)
{
    struct jn_node *n = node_new(ps, JN_ARRAY, &ps->tok);
    struct vec items = {0};
    int rc = lex(ps);

    *out = n;
    while (rc == 0 && !is_op(&ps->tok, "]")) {
        struct jn_node **slot = vec_push(ps, &items, sizeof(*slot));
        rc = parse_expr(ps, slot);
        if (rc != 0) {
            break;
        }
        if (ps->tok.kind == T_FOR && items.n == 1) {
            n->kind = JN_ARRAY_COMP;
            n->a = *slot;
            rc = parse_comp_specs(ps, n, "]");
            break;
        }
        if (is_op(&ps->tok, ",")) {
            rc = lex(ps);
            if (rc == 0 && ps->tok.kind == T_FOR) {
                rc = expected(ps, "an expression");
            }
        } else if (!is_op(&ps->tok, "]")) {
            rc = expected(ps, "',' or ']'");
        }
    }
    n->items = items.items;
    n->nitems = items.n;
    return rc == 0 ? lex(ps) : rc;
}

/* ( args ) ; the '(' is the current token. */
static int parse_args(struct parser *ps, struct jn_node *n)
{
    struct vec args = {0};
    int rc = lex(ps);

    while (rc == 0 && !is_op(&ps->tok, ")")) {
        struct jn_arg *a = vec_push(ps, &args, sizeof(*a));
        if (ps->tok.kind == T_ID) {
            /* a named argument is `id =` (not `id ==`) */
            size_t save_pos = ps->pos;
            uint32_t save_line = ps->line;
            uint32_t save_col = ps->col;
            struct token id = ps->tok;
            rc = lex(ps);
            if (rc == 0 && is_op(&ps->tok, "=")) {
                a->name = pstr(ps, id.p, id.len);
                rc = lex(ps);
            } else {
                ps->pos = save_pos;
                ps->line = save_line;
                ps->col = save_col;
                ps->tok = id;
            }
        }
        if (rc == 0 && a->name == NULL && args.n > 1 &&
            ((struct jn_arg *)args.items)[args.n - 2].name != NULL) {
            rc = perr(ps, ps->tok.line, ps->tok.col, "positional argument after a named argument");
        }
        if (rc == 0) {
            rc = parse_expr(ps, &a->expr);
        }
        if (rc == 0 && a->name == NULL) {
            n->npositional++;
        }
        if (rc == 0 && is_op(&ps->tok, ",")) {
            rc = lex(ps);
        } else if (rc == 0 && !is_op(&ps->tok, ")")) {
            rc = expected(ps, "',' or ')'");
        }
    }
    n->args = args.items;
    n->nargs = args.n;
    return rc == 0 ? lex(ps) : rc;
}

static int parse_unary(struct parser *ps, struct jn_node **out);

static int parse_primary(struct parser *ps, struct jn_node **out)
{
    struct token at = ps->tok;
    struct jn_node *n;
    int rc;

    switch (at.kind) {
    case T_NULL:
        *out = node_new(ps, JN_LIT_NULL, &at);
        return lex(ps);
    case T_TRUE:
        *out = node_new(ps, JN_LIT_TRUE, &at);
        return lex(ps);
    case T_FALSE:
        *out = node_new(ps, JN_LIT_FALSE, &at);
        return lex(ps);
    case T_NUMBER:
        n = node_new(ps, JN_LIT_NUMBER, &at);
        n->u.num = at.num;
        *out = n;
        return lex(ps);
    case T_STRING:
        n = node_new(ps, JN_LIT_STRING, &at);
        n->u.str = at.str;
        *out = n;
        return lex(ps);
    case T_SELF:
        *out = node_new(ps, JN_SELF, &at);
        return lex(ps);
    case T_ID:
        n = node_new(ps, JN_VAR, &at);
        n->u.str = pstr(ps, at.p, at.len);
        *out = n;
        return lex(ps);
    case T_SUPER:
        n = node_new(ps, JN_SUPER_INDEX, &at);
        *out = n;
        rc = lex(ps);
        if (rc == 0 && is_op(&ps->tok, ".")) {
            struct token f;
            rc = lex(ps);
            f = ps->tok;
            if (rc == 0 && f.kind != T_ID) {
                return expected(ps, "a field name");
            }
            n->a = node_new(ps, JN_LIT_STRING, &f);
            n->a->u.str = pstr(ps, f.p, f.len);
            return rc == 0 ? lex(ps) : rc;
        }
        if (rc == 0 && is_op(&ps->tok, "[")) {
            rc = lex(ps);
            if (rc == 0) {
                rc = parse_expr(ps, &n->a);
            }
            return rc == 0 ? expect_op(ps, "]") : rc;
        }
        return rc == 0 ? expected(ps, "'.' or '[' after super") : rc;
    case T_LOCAL:
    case T_IF:
    case T_FUNCTION:
    case T_ERROR:
    case T_ASSERT:
        /* as an operand they extend as far right as possible: 1 + local x = 2; x */
        return parse_expr(ps, out);
    case T_IMPORT:
    case T_IMPORTSTR:
    case T_IMPORTBIN:
        return perr(ps, at.line, at.col, "imports are not supported");
    case T_OP:
        if (is_op(&at, "{")) {
            return parse_object(ps, out);
        }
        if (is_op(&at, "[")) {
            return parse_array(ps, out);
        }
        if (is_op(&at, "(")) {
            rc = lex(ps);
            if (rc == 0) {
                rc = parse_expr(ps, out);
            }
            return rc == 0 ? expect_op(ps, ")") : rc;
        }
        if (is_op(&at, "$")) {
            n = node_new(ps, JN_VAR, &at);
            n->u.str = pstr(ps, "$", 1);
            *out = n;
            return lex(ps);
        }
        break;
    default:
        break;
    }
    return expected(ps, "an expression");
}

static int parse_postfix(struct parser *ps, struct jn_node **out)
{
    int rc = parse_primary(ps, out);

    while (rc == 0) {
        struct token at = ps->tok;
        struct jn_node *n;
        if (is_op(&at, ".")) {
            rc = lex(ps);
            if (rc == 0 && ps->tok.kind != T_ID) {
                return expected(ps, "a field name");
            }
            n = node_new(ps, JN_INDEX, &at);
            n->a = *out;
            n->b = node_new(ps, JN_LIT_STRING, &ps->tok);
            n->b->u.str = pstr(ps, ps->tok.p, ps->tok.len);
            *out = n;
            rc = lex(ps);
        } else if (is_op(&at, "[")) {
            struct jn_node *parts[3] = {NULL, NULL, NULL};
            int colons = 0;
            n = node_new(ps, JN_INDEX, &at);
            n->a = *out;
            *out = n;
            rc = lex(ps);
            /* a[i] or a[b:e:s] with optional parts; '::' counts as two colons */
            while (rc == 0 && !is_op(&ps->tok, "]")) {
                if (is_op(&ps->tok, ":") || is_op(&ps->tok, "::")) {
                    colons += is_op(&ps->tok, ":") ? 1 : 2;
                    if (colons > 2) {
                        return expected(ps, "']'");
                    }
                    rc = lex(ps);
                } else if (parts[colons] == NULL) {
                    rc = parse_expr(ps, &parts[colons]);
                } else {
                    return expected(ps, "':' or ']'");
                }
            }
            if (rc != 0) {
                return rc;
            }
            if (colons == 0) {
                if (parts[0] == NULL) {
                    return expected(ps, "an index");
                }
                n->b = parts[0];
            } else {
                n->kind = JN_SLICE;
                n->b = parts[0];
                n->c = parts[1];
                n->d = parts[2];
            }
            rc = lex(ps);
        } else if (is_op(&at, "(")) {
            n = node_new(ps, JN_APPLY, &at);
            n->a = *out;
            *out = n;
            rc = parse_args(ps, n);
            if (rc == 0 && ps->tok.kind == T_TAILSTRICT) {
                n->tailstrict = 1;
                rc = lex(ps);
            }
        } else if (is_op(&at, "{")) {
            struct jn_node *obj;
            rc = parse_object(ps, &obj);
            n = node_new(ps, JN_BINARY, &at);
            n->op = JN_OP_ADD;
            n->a = *out;
            n->b = obj;
            *out = n;
        } else {
            break;
        }
    }
    return rc;
}

static int parse_unary(struct parser *ps, struct jn_node **out)
{
    struct token at = ps->tok;
    struct jn_node *n;
    int op = -1;
    int rc;

    if (is_op(&at, "-")) {
        op = JN_OP_NEG;
    } else if (is_op(&at, "+")) {
        op = JN_OP_PLUS;
    } else if (is_op(&at, "!")) {
        op = JN_OP_NOT;
    } else if (is_op(&at, "~")) {
        op = JN_OP_BNOT;
    }
    if (op < 0) {
        return parse_postfix(ps, out);
    }
    if (++ps->depth > JN_MAX_PARSE_DEPTH) {
        return perr(ps, at.line, at.col, "expression nested too deeply");
    }
    n = node_new(ps, JN_UNARY, &at);
    n->op = (uint8_t)op;
    *out = n;
    rc = lex(ps);
    if (rc == 0) {
        rc = parse_unary(ps, &n->a);
    }
    ps->depth--;
    return rc;
}

/* Binary precedence: higher binds tighter. Returns -1 for a token that is no binary operator. */
static int binary_prec(const struct token *t, int *op)
{
    static const struct {
        const char *text;
        int op;
        int prec;
    } ops[] = {
        {"*", JN_OP_MUL, 10}, {"/", JN_OP_DIV, 10}, {"%", JN_OP_MOD, 10}, {"+", JN_OP_ADD, 9},
        {"-", JN_OP_SUB, 9},  {"<<", JN_OP_SHL, 8}, {">>", JN_OP_SHR, 8}, {"<", JN_OP_LT, 7},
        {"<=", JN_OP_LE, 7},  {">", JN_OP_GT, 7},   {">=", JN_OP_GE, 7},  {"==", JN_OP_EQ, 6},
        {"!=", JN_OP_NE, 6},  {"&", JN_OP_BAND, 5}, {"^", JN_OP_BXOR, 4}, {"|", JN_OP_BOR, 3},
        {"&&", JN_OP_AND, 2}, {"||", JN_OP_OR, 1},
    };

    if (t->kind == T_IN) {
        *op = JN_OP_IN;
        return 7;
    }
    if (t->kind != T_OP) {
        return -1;
    }
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (is_op(t, ops[i].text)) {
            *op = ops[i].op;
            return ops[i].prec;
        }
    }
    return -1;
}

static int parse_binary(struct parser *ps, int min_prec, struct jn_node **out)
{
    int rc = parse_unary(ps, out);
    int op;
    int prec;

    while (rc == 0 && (prec = binary_prec(&ps->tok, &op)) >= min_prec) {
        struct token at = ps->tok;
        struct jn_node *n;
        rc = lex(ps);
        if (rc != 0) {
            break;
        }
        if (op == JN_OP_IN && ps->tok.kind == T_SUPER) {
            n = node_new(ps, JN_IN_SUPER, &at);
            n->a = *out;
            *out = n;
            rc = lex(ps);
            continue;
        }
        n = node_new(ps, JN_BINARY, &at);
        n->op = (uint8_t)op;
        n->a = *out;
        *out = n;
        if (++ps->depth > JN_MAX_PARSE_DEPTH) {
            return perr(ps, at.line, at.col, "expression nested too deeply");
        }
        rc = parse_binary(ps, prec + 1, &n->b);
        ps->depth--;
    }
    return rc;
}

static int parse_expr(struct parser *ps, struct jn_node **out)
{
    struct token at = ps->tok;
    struct jn_node *n;
    int rc;

    if (++ps->depth > JN_MAX_PARSE_DEPTH) {
        return perr(ps, at.line, at.col, "expression nested too deeply");
    }
    switch (at.kind) {
    case T_LOCAL:
        n = node_new(ps, JN_LOCAL, &at);
        *out = n;
        rc = parse_binds(ps, n);
        if (rc == 0) {
            rc = expect_op(ps, ";");
        }
        if (rc == 0) {
            rc = parse_expr(ps, &n->a);
        }
        break;
    case T_IF:
        n = node_new(ps, JN_IF, &at);
        *out = n;
        rc = lex(ps);
        if (rc == 0) {
            rc = parse_expr(ps, &n->a);
        }
        if (rc == 0) {
            rc = expect_kw(ps, T_THEN, "then");
        }
        if (rc == 0) {
            rc = parse_expr(ps, &n->b);
        }
        if (rc == 0 && ps->tok.kind == T_ELSE) {
            rc = lex(ps);
            if (rc == 0) {
                rc = parse_expr(ps, &n->c);
            }
        }
        break;
    case T_FUNCTION:
        rc = lex(ps);
        if (rc == 0 && !is_op(&ps->tok, "(")) {
            rc = expected(ps, "'('");
        }
        if (rc == 0) {
            rc = parse_method(ps, &at, NULL, out);
        }
        break;
    case T_ERROR:
        n = node_new(ps, JN_ERROR, &at);
        *out = n;
        rc = lex(ps);
        if (rc == 0) {
            rc = parse_expr(ps, &n->a);
        }
        break;
    case T_ASSERT:
        n = node_new(ps, JN_ASSERT, &at);
        *out = n;
        rc = lex(ps);
        if (rc == 0) {
            rc = parse_expr(ps, &n->a);
        }
        if (rc == 0 && is_op(&ps->tok, ":")) {
            rc = lex(ps);
            if (rc == 0) {
                rc = parse_expr(ps, &n->b);
            }
        }
        if (rc == 0) {
            rc = expect_op(ps, ";");
        }
        if (rc == 0) {
            rc = parse_expr(ps, &n->c);
        }
        break;
    default:
        rc = parse_binary(ps, 1, out);
        break;
    }
    ps->depth--;
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Resolver */

struct scope {
    struct scope *up;
    struct sd_jn_str **names;
    unsigned n;
};

struct resolver {
    struct parser *ps;
    const struct sd_jn_native *globals;
    size_t nglobals;
    unsigned obj_depth;
    unsigned depth;
};

static int str_is(const struct sd_jn_str *s, const char *c)
{
    return s->len == strlen(c) && memcmp(s->data, c, s->len) == 0;
}

/* Finds name in the scopes: 1 with (depth, slot), else 0. */
static int scope_find(const struct scope *sc, const struct sd_jn_str *name, unsigned *depth,
                      unsigned *slot)
{
    for (unsigned d = 0; sc != NULL; sc = sc->up, d++) {
        for (unsigned i = sc->n; i-- > 0;) {
            if (sc->names[i]->len == name->len &&
                memcmp(sc->names[i]->data, name->data, name->len) == 0) {
                *depth = d;
                *slot = i;
                return 1;
            }
        }
    }
    return 0;
}

const struct sd_jn_native *jn_std_lookup(const char *name, size_t len)
{
    size_t lo = 0;
    size_t hi = sd_jn_std_nnatives;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *m = sd_jn_std_natives[mid].name;
        int c = strncmp(m, name, len);
        if (c == 0 && m[len] != '\0') {
            c = 1;
        }
        if (c == 0) {
            return &sd_jn_std_natives[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

static int resolve(struct resolver *r, struct jn_node *n, struct scope *sc);

static int resolve_opt(struct resolver *r, struct jn_node *n, struct scope *sc)
{
    return n == NULL ? 0 : resolve(r, n, sc);
}

static int resolve_function(struct resolver *r, struct jn_node *n, struct scope *sc)
{
    struct scope fs = {sc, NULL, n->nparams};
    int rc = 0;

    fs.names = palloc(r->ps, sizeof(*fs.names) * (n->nparams + 1));
    for (unsigned i = 0; i < n->nparams; i++) {
        fs.names[i] = n->params[i].name;
    }
    for (unsigned i = 0; rc == 0 && i < n->nparams; i++) {
        rc = resolve_opt(r, n->params[i].def, &fs);
    }
    return rc == 0 ? resolve(r, n->a, &fs) : rc;
}

/* The comprehension's for-scopes, one per 'for'; resolves the specs' expressions and returns
 * the innermost scope in *inner. */
static int resolve_specs(struct resolver *r, struct jn_node *n, struct scope *sc,
                         struct scope **inner)
{
    int rc = 0;

    for (unsigned i = 0; rc == 0 && i < n->nspecs; i++) {
        struct jn_comp_spec *s = &n->specs[i];
        rc = resolve(r, s->expr, sc);
        if (!s->is_if) {
            struct scope *fs = palloc(r->ps, sizeof(*fs));
            fs->up = sc;
            fs->names = palloc(r->ps, sizeof(*fs->names));
            fs->names[0] = s->var;
            fs->n = 1;
            sc = fs;
        }
    }
    *inner = sc;
    return rc;
}

/* Objects: field names in sc (or the comprehension's scope), bodies and asserts in the locals
 * frame ($ for the outermost object, then the object's locals). */
static int resolve_object(struct resolver *r, struct jn_node *n, struct scope *sc)
{
    struct scope ls = {sc, NULL, 0};
    struct scope *body_scope;
    struct scope *name_scope = sc;
    int rc = 0;

    if (n->kind == JN_OBJECT_COMP) {
        rc = resolve_specs(r, n, sc, &name_scope);
        ls.up = name_scope;
    }
    if (r->obj_depth == 0) {
        /* the outermost object binds $ to self, as the first local */
        struct jn_bind *binds = palloc(r->ps, sizeof(*binds) * (n->nbinds + 1));
        struct jn_node *self =
            node_new(r->ps, JN_SELF, &(struct token){.line = n->line, .col = n->col});
        binds[0].name = pstr(r->ps, "$", 1);
        binds[0].body = self;
        if (n->nbinds > 0) {
            memcpy(binds + 1, n->binds, sizeof(*binds) * n->nbinds);
        }
        n->binds = binds;
        n->nbinds++;
    }
    /* field bodies and asserts always run in a frame of their own: it carries the self binding
     * and the object's locals (maybe none) */
    ls.names = palloc(r->ps, sizeof(*ls.names) * (n->nbinds + 1));
    ls.n = n->nbinds;
    for (unsigned i = 0; i < n->nbinds; i++) {
        ls.names[i] = n->binds[i].name;
    }
    body_scope = &ls;
    for (unsigned i = 0; rc == 0 && i < n->nfields; i++) {
        rc = resolve_opt(r, n->fields[i].name_expr, name_scope);
    }
    r->obj_depth++;
    for (unsigned i = 0; rc == 0 && i < n->nbinds; i++) {
        rc = resolve(r, n->binds[i].body, body_scope);
    }
    for (unsigned i = 0; rc == 0 && i < n->nfields; i++) {
        rc = resolve(r, n->fields[i].body, body_scope);
    }
    for (unsigned i = 0; rc == 0 && i < n->nasserts; i++) {
        rc = resolve(r, n->asserts[i]->a, body_scope);
        if (rc == 0) {
            rc = resolve_opt(r, n->asserts[i]->b, body_scope);
        }
    }
    r->obj_depth--;
    return rc;
}

static int resolve_var(struct resolver *r, struct jn_node *n, struct scope *sc)
{
    unsigned depth;
    unsigned slot;

    if (scope_find(sc, n->u.str, &depth, &slot)) {
        n->u.var.depth = depth;
        n->u.var.slot = slot;
        return 0;
    }
    if (str_is(n->u.str, "$")) {
        return perr(r->ps, n->line, n->col, "no top-level object found for $");
    }
    if (str_is(n->u.str, "std")) {
        n->kind = JN_STD;
        return 0;
    }
    for (size_t i = 0; i < r->nglobals; i++) {
        if (str_is(n->u.str, r->globals[i].name)) {
            n->kind = JN_NATIVE;
            n->u.native = &r->globals[i];
            return 0;
        }
    }
    return perr(r->ps, n->line, n->col, "unknown variable: %s", n->u.str->data);
}

static int resolve(struct resolver *r, struct jn_node *n, struct scope *sc)
{
    int rc = 0;

    if (++r->depth > JN_MAX_RESOLVE_DEPTH) {
        return perr(r->ps, n->line, n->col, "expression nested too deeply");
    }
    switch (n->kind) {
    case JN_VAR:
        rc = resolve_var(r, n, sc);
        break;
    case JN_SELF:
        if (r->obj_depth == 0) {
            rc = perr(r->ps, n->line, n->col, "can't use self outside of an object");
        }
        break;
    case JN_SUPER_INDEX:
        if (r->obj_depth == 0) {
            rc = perr(r->ps, n->line, n->col, "can't use super outside of an object");
        } else {
            rc = resolve(r, n->a, sc);
        }
        break;
    case JN_IN_SUPER:
        if (r->obj_depth == 0) {
            rc = perr(r->ps, n->line, n->col, "can't use super outside of an object");
        } else {
            rc = resolve(r, n->a, sc);
        }
        break;
    case JN_LOCAL: {
        struct scope ls = {sc, NULL, n->nbinds};
        ls.names = palloc(r->ps, sizeof(*ls.names) * n->nbinds);
        for (unsigned i = 0; i < n->nbinds; i++) {
            ls.names[i] = n->binds[i].name;
        }
        for (unsigned i = 0; rc == 0 && i < n->nbinds; i++) {
            rc = resolve(r, n->binds[i].body, &ls);
        }
        if (rc == 0) {
            rc = resolve(r, n->a, &ls);
        }
        break;
    }
    case JN_INDEX:
        /* std.name with std not shadowed: the native itself */
        if (n->a->kind == JN_VAR && str_is(n->a->u.str, "std") && n->b->kind == JN_LIT_STRING) {
            unsigned d;
            unsigned s;
            if (!scope_find(sc, n->a->u.str, &d, &s)) {
                const struct sd_jn_native *nat = jn_std_lookup(n->b->u.str->data, n->b->u.str->len);
                if (nat == NULL && str_is(n->b->u.str, "pi")) { /* std's one constant */
                    n->kind = JN_LIT_NUMBER;
                    n->u.num = SD_JN_STD_PI;
                    break;
                }
                if (nat == NULL) {
                    rc = perr(r->ps, n->b->line, n->b->col, "std.%s is not supported",
                              n->b->u.str->data);
                    break;
                }
                n->kind = JN_NATIVE;
                n->u.native = nat;
                break;
            }
        }
        rc = resolve(r, n->a, sc);
        if (rc == 0) {
            rc = resolve(r, n->b, sc);
        }
        break;
    case JN_SLICE:
        rc = resolve(r, n->a, sc);
        if (rc == 0) {
            rc = resolve_opt(r, n->b, sc);
        }
        if (rc == 0) {
            rc = resolve_opt(r, n->c, sc);
        }
        if (rc == 0) {
            rc = resolve_opt(r, n->d, sc);
        }
        if (rc == 0) {
            n->u.native = jn_std_lookup("slice", 5);
            if (n->u.native == NULL) {
                rc = perr(r->ps, n->line, n->col, "slices are not supported");
            }
        }
        break;
    case JN_IF:
    case JN_BINARY:
    case JN_UNARY:
    case JN_ERROR:
    case JN_ASSERT:
        rc = resolve(r, n->a, sc);
        if (rc == 0) {
            rc = resolve_opt(r, n->b, sc);
        }
        if (rc == 0) {
            rc = resolve_opt(r, n->c, sc);
        }
        break;
    case JN_APPLY:
        rc = resolve(r, n->a, sc);
        for (unsigned i = 0; rc == 0 && i < n->nargs; i++) {
            rc = resolve(r, n->args[i].expr, sc);
        }
        break;
    case JN_FUNCTION:
        rc = resolve_function(r, n, sc);
        break;
    case JN_ARRAY:
        for (unsigned i = 0; rc == 0 && i < n->nitems; i++) {
            rc = resolve(r, n->items[i], sc);
        }
        break;
    case JN_ARRAY_COMP: {
        struct scope *inner;
        rc = resolve_specs(r, n, sc, &inner);
        if (rc == 0) {
            rc = resolve(r, n->a, inner);
        }
        break;
    }
    case JN_OBJECT:
    case JN_OBJECT_COMP:
        rc = resolve_object(r, n, sc);
        break;
    default:
        break;
    }
    r->depth--;
    return rc;
}

int jn_parse(const char *src, size_t len, const struct sd_jn_native *globals, size_t nglobals,
             struct jn_chunk **chunks, struct jn_node **root, struct sd_buf *err)
{
    struct parser ps;
    struct resolver r;
    int rc;

    memset(&ps, 0, sizeof(ps));
    ps.src = src;
    ps.len = len;
    ps.line = 1;
    ps.col = 1;
    ps.chunks = chunks;
    ps.err = err;
    *root = NULL;
    if (!sd_utf8_valid(src, len)) {
        sd_buf_append_str(err, "1:1: the program is not valid UTF-8");
        return SD_EPARSE;
    }
    rc = lex(&ps);
    if (rc == 0) {
        rc = parse_expr(&ps, root);
    }
    if (rc == 0 && ps.tok.kind != T_EOF) {
        rc = expected(&ps, "end of input");
    }
    if (rc == 0) {
        memset(&r, 0, sizeof(r));
        r.ps = &ps;
        r.globals = globals;
        r.nglobals = nglobals;
        rc = resolve(&r, *root, NULL);
    }
    sd_buf_fini(&ps.sbuf);
    if (rc != 0 && rc != -ENOMEM) {
        rc = SD_EPARSE;
    }
    return rc;
}
