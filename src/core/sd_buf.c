/* sd_buf.c: growable byte buffers. Growth doubles capacity; allocation failure is reported
 * (-ENOMEM), never fatal, because data-path sizes come from clients. */
#include "core/sd_buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

void sd_buf_init(struct sd_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->budget = NULL;
}

void sd_buf_init_budget(struct sd_buf *b, struct sd_buf_budget *budget)
{
    sd_buf_init(b);
    b->budget = budget;
}

/* Gives the capacity back to the budget and empties the buffer (the bytes are freed or owned by
 * someone else). */
static void sd__buf_release(struct sd_buf *b)
{
    if (b->budget != NULL) {
        b->budget->used -= b->cap < b->budget->used ? b->cap : b->budget->used;
    }
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void sd_buf_fini(struct sd_buf *b)
{
    free(b->data);
    sd__buf_release(b);
}

int sd_buf_reserve(struct sd_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    size_t cap;
    char *p;

    if (need < b->len) {
        return -ENOMEM;
    }
    if (need <= b->cap) {
        return 0;
    }
    cap = b->cap ? b->cap : 64;
    while (cap < need) {
        cap = cap * 2 > cap ? cap * 2 : need;
    }
    if (b->budget != NULL) {
        struct sd_buf_budget *g = b->budget;
        if (cap - b->cap > (g->max > g->used ? g->max - g->used : 0)) {
            g->is_exceeded = 1;
            return -ENOMEM;
        }
    }
    p = realloc(b->data, cap);
    if (p == NULL) {
        return -ENOMEM;
    }
    if (b->budget != NULL) {
        b->budget->used += cap - b->cap;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int sd_buf_append(struct sd_buf *b, const void *p, size_t len)
{
    int rc = sd_buf_reserve(b, len);
    if (rc != 0) {
        return rc;
    }
    if (len > 0) {
        memcpy(b->data + b->len, p, len);
    }
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int sd_buf_append_str(struct sd_buf *b, const char *s)
{
    return sd_buf_append(b, s, strlen(s));
}

int sd_buf_append_char(struct sd_buf *b, char c)
{
    return sd_buf_append(b, &c, 1);
}

int sd_buf_vprintf(struct sd_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n;
    int rc;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        return -EINVAL;
    }
    rc = sd_buf_reserve(b, (size_t)n);
    if (rc != 0) {
        return rc;
    }
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

void sd_buf_setf(struct sd_buf *b, const char *fmt, ...)
{
    va_list ap;

    if (b == NULL) {
        return;
    }
    sd_buf_reset(b);
    va_start(ap, fmt);
    (void)sd_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

int sd_buf_printf(struct sd_buf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = sd_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

const char *sd_buf_cstr(struct sd_buf *b)
{
    if (b->data == NULL && sd_buf_reserve(b, 0) != 0) {
        return "";
    }
    b->data[b->len] = '\0';
    return b->data;
}

char *sd_buf_steal(struct sd_buf *b)
{
    char *p;

    sd_buf_cstr(b);
    p = b->data;
    sd__buf_release(b);
    return p;
}
