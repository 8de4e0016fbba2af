/* sd_alloc.c: aborting allocation wrappers for the control plane. */
#include "core/sd_alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void sd__oom(size_t size)
{
    fprintf(stderr, "streamd: out of memory allocating %zu bytes\n", size);
    abort();
}

void *sd_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL) {
        sd__oom(size);
    }
    return p;
}

void *sd_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) {
        sd__oom(n * size);
    }
    return p;
}

void *sd_xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (q == NULL) {
        sd__oom(size);
    }
    return q;
}

char *sd_xstrdup(const char *s)
{
    return sd_xstrndup(s, strlen(s));
}

char *sd_xstrndup(const char *s, size_t n)
{
    char *p = sd_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *sd_xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *out = NULL;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&out, fmt, ap);
    va_end(ap);
    if (n < 0) {
        sd__oom(0);
    }
    return out;
}
