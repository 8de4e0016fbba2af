/* sd_buf.h: a growable byte buffer (owned bytes) and sd_str, a (pointer, length) view.
 *
 * A view never owns its bytes and must not outlive the buffer it points into. Functions that
 * grow a buffer may move its data: pointers into buf->data are invalid after such a call. */
#ifndef SD_BUF_H
#define SD_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sd_str {
    const char *p;
    size_t len;
};

#define SD_STR_LIT(s) ((struct sd_str){(s), sizeof(s) - 1})

static inline struct sd_str sd_str_c(const char *s)
{
    struct sd_str v = {s, s ? strlen(s) : 0};
    return v;
}

static inline int sd_str_eq(struct sd_str a, struct sd_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* Bytewise order of two views, a prefix before the longer view: <0, 0 or >0. */
static inline int sd_str_cmp(struct sd_str a, struct sd_str b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n > 0 ? memcmp(a.p, b.p, n) : 0;

    if (c != 0) {
        return c;
    }
    return a.len < b.len ? -1 : a.len > b.len;
}

/* Value of a hexadecimal digit, or -1. */
static inline int sd_hex_digit(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* A byte budget shared by a group of buffers (e.g. everything one Jsonnet evaluation builds
 * outside its arena). A buffer with a budget charges its capacity to it when it grows and gives
 * it back when freed or stolen; growth that would take used past max fails with -ENOMEM and sets
 * is_exceeded, so the owner can report the limit. The budget must outlive its buffers. */
struct sd_buf_budget {
    size_t used;
    size_t max;
    int is_exceeded;
};

struct sd_buf {
    char *data;
    size_t len;
    size_t cap;
    struct sd_buf_budget *budget; /* NULL: unbounded */
};

#define SD_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0, NULL                                                                           \
    }

void sd_buf_init(struct sd_buf *b);
/* An empty buffer whose growth is charged to budget. */
void sd_buf_init_budget(struct sd_buf *b, struct sd_buf_budget *budget);
/* Frees the bytes (refunding its budget); the buffer stays usable, with the same budget. */
void sd_buf_fini(struct sd_buf *b);
/* Empties the buffer, keeping its memory. */
static inline void sd_buf_reset(struct sd_buf *b)
{
    b->len = 0;
}
/* Ensures room for extra more bytes (plus a spare NUL). Returns 0 or -ENOMEM (also when the
 * budget has no room). */
int sd_buf_reserve(struct sd_buf *b, size_t extra);
int sd_buf_append(struct sd_buf *b, const void *p, size_t len);
int sd_buf_append_str(struct sd_buf *b, const char *s);
int sd_buf_append_char(struct sd_buf *b, char c);
int sd_buf_printf(struct sd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Replaces b's content with the formatted text (a one-line error message, say); b may be NULL,
 * then nothing happens. Allocation failure leaves b empty. */
void sd_buf_setf(struct sd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sd_buf_vprintf(struct sd_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Returns data as a NUL-terminated C string (the NUL is not counted in len). */
const char *sd_buf_cstr(struct sd_buf *b);
/* Takes ownership of the bytes out of the buffer (NUL-terminated; they leave the budget); leaves
 * b empty. */
char *sd_buf_steal(struct sd_buf *b);

#ifdef __cplusplus
}
#endif

#endif
