/* sd_alloc.h: control-plane allocation that aborts on out-of-memory (as H2O does).
 * Data-path code whose sizes come from clients uses plain malloc and checks it. */
#ifndef SD_ALLOC_H
#define SD_ALLOC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

void *sd_xmalloc(size_t size);
void *sd_xcalloc(size_t n, size_t size);
void *sd_xrealloc(void *p, size_t size);
char *sd_xstrdup(const char *s);
char *sd_xstrndup(const char *s, size_t n);
/* Returns an owned, formatted string (free with free()). */
char *sd_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#ifdef __cplusplus
}
#endif

#endif
