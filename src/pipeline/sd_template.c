/* sd_template.c: template (Jsonnet) columns: the record functions as host natives, and the
 * per-thread VM that evaluates compiled templates for records.
 *
 * DESIGN. A template is compiled once (control plane) into an immutable sd_jn_program shared by
 * threads; the record functions are host natives whose host pointer is the struct sd_record
 * being mapped. Evaluation runs on the thread that maps the record (a source loop, the API loop
 * for the test endpoint, the CLI), each with its own VM and scratch state held in a pthread key
 * whose destructor frees them when the thread exits. Body() never parses on its own: it asks the
 * record for its parsed body (parsed at most once per record and shared with path columns) and
 * converts only the subtree it returns, walking the JSON text with sd_json_cpath_walk and
 * building arrays and objects bottom-up on an explicit stack (no recursion, duplicate keys: the
 * first wins, as path lookups). Runtime paths are compiled once per thread and cached. A body
 * that cannot be parsed is remembered per evaluation, so the column fails with the body's own
 * status (400/415) instead of the generic 500 of other runtime errors. */
#include "pipeline/sd_template.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/sd_alloc.h"
#include "core/sd_error.h"
#include "jsonnet/sd_jn_value.h"
#include "pipeline/sd_json.h"

#define SD_TPL_PATH_CACHE 16

struct sd_template {
    struct sd_jn_program *prog;
    int uses_body;
};

/* A runtime path of Body(), compiled once per thread. */
struct sd_tpl_path {
    char *text; /* NULL: free slot */
    size_t len;
    int is_valid; /* 0: a syntax error (the path is then never found) */
    struct sd_json_cpath cp;
};

/* A container being built by the body conversion. */
struct sd_tpl_frame {
    size_t start; /* first of its items on the value stack */
    int is_object;
    struct sd_jn_str *key; /* its own key in the parent object, or NULL */
};

/* Per-thread state (pthread key). */
struct sd_tpl_tls {
    struct sd_jn_vm *vm;
    struct sd_tpl_path paths[SD_TPL_PATH_CACHE];
    unsigned next_path;
    /* the body conversion: values with their keys (NULL in arrays), open containers */
    struct sd_jn_val *vals;
    struct sd_jn_str **keys;
    size_t nvals;
    size_t capvals;
    struct sd_tpl_frame frames[SD_JSON_MAX_DEPTH + 1];
    size_t nframes;
    struct sd_jn_str *pending_key;
    /* the failure of the current evaluation that is not the engine's own */
    int body_status; /* 0, or the body's parse status (400, 415) */
    int is_nomem;
    struct sd_map_error body_err;
};

static pthread_key_t sd__tpl_key;
static pthread_once_t sd__tpl_once = PTHREAD_ONCE_INIT;

static void sd__tpl_tls_free(void *p)
{
    struct sd_tpl_tls *t = p;

    if (t == NULL) {
        return;
    }
    sd_jn_vm_free(t->vm);
    for (size_t i = 0; i < SD_TPL_PATH_CACHE; i++) {
        free(t->paths[i].text);
        sd_json_cpath_fini(&t->paths[i].cp);
    }
    free(t->vals);
    free(t->keys);
    free(t);
}

static void sd__tpl_key_init(void)
{
    if (pthread_key_create(&sd__tpl_key, sd__tpl_tls_free) != 0) {
        abort(); /* only EAGAIN/ENOMEM: no key left in the process */
    }
}

/* Returns the calling thread's state, creating it (with its VM) on first use; NULL on ENOMEM. */
static struct sd_tpl_tls *sd__tpl_tls(void)
{
    struct sd_tpl_tls *t;
    struct sd_jn_limits lim;

    pthread_once(&sd__tpl_once, sd__tpl_key_init);
    t = pthread_getspecific(sd__tpl_key);
    if (t != NULL) {
        return t;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return NULL;
    }
    memset(&lim, 0, sizeof(lim));
    lim.max_steps = SD_TEMPLATE_MAX_STEPS;
    lim.max_calls = SD_TEMPLATE_MAX_CALLS;
    lim.max_stack = SD_TEMPLATE_MAX_STACK;
    lim.max_memory = SD_TEMPLATE_MAX_MEMORY;
    lim.max_output = SD_TEMPLATE_MAX_OUTPUT;
    lim.max_time_ms = SD_TEMPLATE_MAX_TIME_MS;
    t->vm = sd_jn_vm_new(&lim);
    if (t->vm == NULL || pthread_setspecific(sd__tpl_key, t) != 0) {
        sd__tpl_tls_free(t);
        return NULL;
    }
    return t;
}

void sd_template_thread_cleanup(void)
{
    struct sd_tpl_tls *t;

    pthread_once(&sd__tpl_once, sd__tpl_key_init);
    t = pthread_getspecific(sd__tpl_key);
    if (t != NULL) {
        pthread_setspecific(sd__tpl_key, NULL);
        sd__tpl_tls_free(t);
    }
}

/* ---- helpers ------------------------------------------------------------------------------ */

static struct sd_record *sd__rec(struct sd_jn_vm *vm)
{
    return sd_jn_host(vm);
}

/* The error of a record function evaluated without a record (not by sd_template_eval). */
static int sd__no_record(struct sd_jn_vm *vm, const char *fn)
{
    return sd_jn_throw(vm, "%s() is only available in template columns", fn);
}

/* A Jsonnet string from foreign bytes: invalid UTF-8 sequences become U+FFFD (as the headers
 * column writes them). */
static struct sd_jn_val sd__lossy_string(struct sd_jn_vm *vm, const char *p, size_t len)
{
    struct sd_buf b = SD_BUF_INIT;
    struct sd_jn_val v;

    if (sd_json_utf8_valid(p, len)) { /* simdjson's validator: SIMD, for bodies */
        return sd_jn_string(vm, p, len);
    }
    /* Rare (headers and bodies are normally UTF-8): keep each valid sequence, replace each
     * byte that starts none. */
    for (size_t i = 0; i < len;) {
        size_t n = sd_utf8_seq_len(p + i, len - i);
        if (n == 0) {
            sd_buf_append(&b, "\xEF\xBF\xBD", 3);
            i++;
        } else {
            sd_buf_append(&b, p + i, n);
            i += n;
        }
    }
    v = sd_jn_string(vm, b.data != NULL ? b.data : "", b.len);
    sd_buf_fini(&b);
    return v;
}

/* ---- Ip(), BodyStr() ---------------------------------------------------------------------- */

static int sd__fn_ip(struct sd_jn_vm *vm, struct sd_jn_val *args, struct sd_jn_val *out)
{
    struct sd_record *rec = sd__rec(vm);

    if (rec == NULL) {
        return sd__no_record(vm, "Ip");
    }
    (void)args;
    *out = sd_jn_string(vm, rec->ip, strnlen(rec->ip, sizeof(rec->ip)));
    return 0;
}

static int sd__fn_body_str(struct sd_jn_vm *vm, struct sd_jn_val *args, struct sd_jn_val *out)
{
    struct sd_record *rec = sd__rec(vm);

    if (rec == NULL) {
        return sd__no_record(vm, "BodyStr");
    }
    (void)args;
    *out = sd__lossy_string(vm, rec->body.p != NULL ? rec->body.p : "", rec->body.len);
    return 0;
}

/* ---- Now() -------------------------------------------------------------------------------- */

static const char *const sd__wday_names[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                             "Thursday", "Friday", "Saturday"};
static const char *const sd__month_names[] = {"January",   "February", "March",    "April",
                                              "May",       "June",     "July",     "August",
                                              "September", "October",  "November", "December"};

/* Weeks of ISO year y: 53 when it starts on a Thursday, or on a Wednesday in a leap year. */
static int sd__iso_weeks(long y)
{
    long p = (y + y / 4 - y / 100 + y / 400) % 7;
    long q = ((y - 1) + (y - 1) / 4 - (y - 1) / 100 + (y - 1) / 400) % 7;

    return (p == 4 || q == 3) ? 53 : 52;
}

/* The ISO 8601 week-numbering year and week of tm. */
static void sd__iso_week(const struct tm *tm, long *year, int *week)
{
    long y = tm->tm_year + 1900L;
    int wday = (tm->tm_wday + 6) % 7 + 1; /* Monday 1 .. Sunday 7 */
    int w = (tm->tm_yday + 1 - wday + 10) / 7;

    if (w < 1) {
        y--;
        w = sd__iso_weeks(y);
    } else if (w > sd__iso_weeks(y)) {
        y++;
        w = 1;
    }
    *year = y;
    *week = w;
}

static void sd__put_num(struct sd_buf *b, long v, int width, char pad)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "%ld", v < 0 ? -v : v);

    if (v < 0) {
        sd_buf_append_char(b, '-');
    }
    for (int i = n; i < width; i++) {
        sd_buf_append_char(b, pad);
    }
    sd_buf_append(b, tmp, (size_t)n);
}

/* Formats ms (Unix milliseconds, UTC) with the strftime pattern fmt[0..len) into b, with the
 * directives of the reference's strftime (lestrrat-go/strftime) and %f for milliseconds.
 * Returns 0, or -1 with the reference's reason in why. */
static int sd__strftime(int64_t ms, const char *fmt, size_t len, struct sd_buf *b, char *why,
                        size_t whylen)
{
    int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    int msec = (int)(ms - secs * 1000);
    time_t tt = (time_t)secs;
    struct tm tm;
    long year;
    int hour12;
    long iso_year;
    int iso_week;

    if (gmtime_r(&tt, &tm) == NULL) {
        snprintf(why, whylen, "the time is out of range");
        return -1;
    }
    year = tm.tm_year + 1900L;
    hour12 = tm.tm_hour % 12 == 0 ? 12 : tm.tm_hour % 12;
    for (size_t i = 0; i < len; i++) {
        char c = fmt[i];
        if (c != '%') {
            sd_buf_append_char(b, c);
            continue;
        }
        if (i + 1 >= len) {
            snprintf(why, whylen, "failed to compile format: stray %% at the end of pattern");
            return -1;
        }
        c = fmt[++i];
        switch (c) {
        case 'A':
            sd_buf_append_str(b, sd__wday_names[tm.tm_wday]);
            break;
        case 'a':
            sd_buf_append(b, sd__wday_names[tm.tm_wday], 3);
            break;
        case 'B':
            sd_buf_append_str(b, sd__month_names[tm.tm_mon]);
            break;
        case 'b':
        case 'h':
            sd_buf_append(b, sd__month_names[tm.tm_mon], 3);
            break;
        case 'C':
            sd__put_num(b, year / 100, 2, '0');
            break;
        case 'c': /* Go "Mon Jan _2 15:04:05 2006" */
            sd_buf_append(b, sd__wday_names[tm.tm_wday], 3);
            sd_buf_append_char(b, ' ');
            sd_buf_append(b, sd__month_names[tm.tm_mon], 3);
            sd_buf_append_char(b, ' ');
            sd__put_num(b, tm.tm_mday, 2, ' ');
            sd_buf_printf(b, " %02d:%02d:%02d ", tm.tm_hour, tm.tm_min, tm.tm_sec);
            sd__put_num(b, year, 4, '0');
            break;
        case 'D':
        case 'x':
            sd_buf_printf(b, "%02d/%02d/%02ld", tm.tm_mon + 1, tm.tm_mday, year % 100);
            break;
        case 'd':
            sd__put_num(b, tm.tm_mday, 2, '0');
            break;
        case 'e':
            sd__put_num(b, tm.tm_mday, 2, ' ');
            break;
        case 'F':
            sd__put_num(b, year, 4, '0');
            sd_buf_printf(b, "-%02d-%02d", tm.tm_mon + 1, tm.tm_mday);
            break;
        case 'f':
            sd__put_num(b, msec, 3, '0');
            break;
        case 'G':
            sd__iso_week(&tm, &iso_year, &iso_week);
            sd__put_num(b, iso_year, 4, '0');
            break;
        case 'g':
            sd__iso_week(&tm, &iso_year, &iso_week);
            sd__put_num(b, iso_year % 100, 2, '0');
            break;
        case 'H':
            sd__put_num(b, tm.tm_hour, 2, '0');
            break;
        case 'I':
            sd__put_num(b, hour12, 2, '0');
            break;
        case 'j':
            sd__put_num(b, tm.tm_yday + 1, 3, '0');
            break;
        case 'k':
            sd__put_num(b, tm.tm_hour, 2, ' ');
            break;
        case 'l':
            sd__put_num(b, hour12, 2, ' ');
            break;
        case 'M':
            sd__put_num(b, tm.tm_min, 2, '0');
            break;
        case 'm':
            sd__put_num(b, tm.tm_mon + 1, 2, '0');
            break;
        case 'n':
            sd_buf_append_char(b, '\n');
            break;
        case 'p':
            sd_buf_append_str(b, tm.tm_hour < 12 ? "AM" : "PM");
            break;
        case 'R':
            sd_buf_printf(b, "%02d:%02d", tm.tm_hour, tm.tm_min);
            break;
        case 'r':
            sd_buf_printf(b, "%02d:%02d:%02d %s", hour12, tm.tm_min, tm.tm_sec,
                          tm.tm_hour < 12 ? "AM" : "PM");
            break;
        case 'S':
            sd__put_num(b, tm.tm_sec, 2, '0');
            break;
        case 'T':
        case 'X':
            sd_buf_printf(b, "%02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec);
            break;
        case 't':
            sd_buf_append_char(b, '\t');
            break;
        case 'U':
            sd__put_num(b, (tm.tm_yday + 7 - tm.tm_wday) / 7, 2, '0');
            break;
        case 'u':
            sd__put_num(b, tm.tm_wday == 0 ? 7 : tm.tm_wday, 1, '0');
            break;
        case 'V':
            sd__iso_week(&tm, &iso_year, &iso_week);
            sd__put_num(b, iso_week, 2, '0');
            break;
        case 'v': /* Go "_2-Jan-2006" */
            sd__put_num(b, tm.tm_mday, 2, ' ');
            sd_buf_append_char(b, '-');
            sd_buf_append(b, sd__month_names[tm.tm_mon], 3);
            sd_buf_append_char(b, '-');
            sd__put_num(b, year, 4, '0');
            break;
        case 'W':
            sd__put_num(b, (tm.tm_yday + 7 - (tm.tm_wday + 6) % 7) / 7, 2, '0');
            break;
        case 'w':
            sd__put_num(b, tm.tm_wday, 1, '0');
            break;
        case 'Y':
            sd__put_num(b, year, 4, '0');
            break;
        case 'y':
            sd__put_num(b, year % 100, 2, '0');
            break;
        case 'Z':
            sd_buf_append_str(b, "UTC");
            break;
        case 'z':
            sd_buf_append_str(b, "+0000");
            break;
        case '%':
            sd_buf_append_char(b, '%');
            break;
        default:
            snprintf(why, whylen,
                     "failed to compile format: pattern compilation failed: lookup failed: "
                     "'%%%c' was not found in specification set",
                     c);
            return -1;
        }
    }
    return 0;
}

static int sd__fn_now(struct sd_jn_vm *vm, struct sd_jn_val *args, struct sd_jn_val *out)
{
    static const char def[] = "%Y-%m-%dT%H:%M:%S.%fZ";
    struct sd_record *rec = sd__rec(vm);
    const char *fmt = def;
    size_t len = sizeof(def) - 1;
    char why[160];
    struct sd_buf b;
    int rc;

    if (rec == NULL) {
        return sd__no_record(vm, "Now");
    }

    if (args[0].type == SD_JN_STRING) {
        fmt = args[0].u.s->data;
        len = args[0].u.s->len;
    } else if (args[0].type != SD_JN_ABSENT) {
        return sd_jn_throw(vm, "Now(): the format must be a string, not %s",
                           sd_jn_type_name(args[0].type));
    }
    sd_buf_init(&b);
    rc = sd_jn_tick(vm, len / 16 + 1);
    if (rc != 0) {
        return rc;
    }
    if (sd__strftime(rec->recv_time_ms, fmt, len, &b, why, sizeof(why)) != 0) {
        sd_buf_fini(&b);
        return sd_jn_throw(vm, "datetime format \"%.*s\" is invalid: %s", (int)len, fmt, why);
    }
    if (b.data == NULL) {
        *out = sd_jn_string(vm, "", 0);
    } else {
        *out = sd__lossy_string(vm, b.data, b.len);
    }
    sd_buf_fini(&b);
    return 0;
}

/* ---- Header(), HeaderStr() ---------------------------------------------------------------- */

/* The value of headers [i, j) (equal names) joined with ", ", as a Jsonnet string. */
static struct sd_jn_val sd__header_value(struct sd_jn_vm *vm, const struct sd_record *rec, size_t i,
                                         size_t j)
{
    struct sd_buf b = SD_BUF_INIT;
    struct sd_jn_val v;

    if (j == i + 1) {
        return sd__lossy_string(vm, rec->headers[i].value.p, rec->headers[i].value.len);
    }
    for (size_t k = i; k < j; k++) {
        if (k > i) {
            sd_buf_append(&b, ", ", 2);
        }
        sd_buf_append(&b, rec->headers[k].value.p, rec->headers[k].value.len);
    }
    v = sd__lossy_string(vm, b.data != NULL ? b.data : "", b.len);
    sd_buf_fini(&b);
    return v;
}

/* End of the run of headers named as headers[i]. */
static size_t sd__header_run(const struct sd_record *rec, size_t i)
{
    size_t j = i + 1;

    while (j < rec->nheaders && sd_str_eq(rec->headers[j].name, rec->headers[i].name)) {
        j++;
    }
    return j;
}

static int sd__headers_object(struct sd_jn_vm *vm, const struct sd_record *rec,
                              struct sd_jn_val *out)
{
    struct sd_jn_obj *o;
    struct sd_jn_str *name;
    size_t n = 0;
    size_t k = 0;

    for (size_t i = 0; i < rec->nheaders; i = sd__header_run(rec, i)) {
        n++;
    }
    o = sd_jn_obj_new(vm, n);
    for (size_t i = 0, j; i < rec->nheaders; i = j) {
        struct sd_jn_val nv;
        j = sd__header_run(rec, i);
        nv = sd__lossy_string(vm, rec->headers[i].name.p, rec->headers[i].name.len);
        name = nv.u.s;
        sd_jn_obj_set(vm, o, k++, name, sd__header_value(vm, rec, i, j));
    }
    *out = sd_jn_object(o);
    return sd_jn_tick(vm, n + 1);
}

static int sd__fn_header(struct sd_jn_vm *vm, struct sd_jn_val *args, struct sd_jn_val *out)
{
    struct sd_record *rec = sd__rec(vm);
    const struct sd_jn_str *name;
    char *canon;

    if (rec == NULL) {
        return sd__no_record(vm, "Header");
    }

    if (args[0].type == SD_JN_ABSENT || (args[0].type == SD_JN_STRING && args[0].u.s->len == 0)) {
        return sd__headers_object(vm, rec, out);
    }
    if (args[0].type != SD_JN_STRING) {
        return sd_jn_throw(vm, "Header(): the header name must be a string, not %s",
                           sd_jn_type_name(args[0].type));
    }
    name = args[0].u.s;
    canon = sd_jn_alloc(vm, name->len + 1);
    sd_header_canonicalize(name->data, name->len, canon);
    for (size_t i = 0; i < rec->nheaders; i++) {
        const struct sd_str *hn = &rec->headers[i].name;
        if (hn->len == name->len && memcmp(hn->p, canon, name->len) == 0) {
            *out = sd__header_value(vm, rec, i, sd__header_run(rec, i));
            return 0;
        }
    }
    if (args[1].type != SD_JN_ABSENT) {
        *out = args[1];
        return 0;
    }
    return sd_jn_throw(vm, "header \"%.*s\" not found", (int)name->len, canon);
}

static int sd__line_cmp(const void *a, const void *b)
{
    const struct sd_str *x = a;
    const struct sd_str *y = b;

    return sd_str_cmp(*x, *y);
}

static int sd__fn_header_str(struct sd_jn_vm *vm, struct sd_jn_val *args, struct sd_jn_val *out)
{
    struct sd_record *rec = sd__rec(vm);
    struct sd_buf b = SD_BUF_INIT;
    struct sd_buf all = SD_BUF_INIT;
    struct sd_str *lines;
    size_t *offs;
    size_t n = 0;
    size_t k = 0;

    if (rec == NULL) {
        return sd__no_record(vm, "HeaderStr");
    }
    (void)args;
    for (size_t i = 0; i < rec->nheaders; i = sd__header_run(rec, i)) {
        n++;
    }
    if (n == 0) {
        *out = sd_jn_string(vm, "", 0);
        return 0;
    }
    lines = sd_jn_alloc(vm, n * sizeof(*lines));
    offs = sd_jn_alloc(vm, (n + 1) * sizeof(*offs));
    for (size_t i = 0, j; i < rec->nheaders; i = j) {
        j = sd__header_run(rec, i);
        offs[k++] = b.len;
        sd_buf_append(&b, rec->headers[i].name.p, rec->headers[i].name.len);
        sd_buf_append(&b, ": ", 2);
        for (size_t m = i; m < j; m++) {
            if (m > i) {
                sd_buf_append(&b, ", ", 2);
            }
            sd_buf_append(&b, rec->headers[m].value.p, rec->headers[m].value.len);
        }
        sd_buf_append_char(&b, '\n');
    }
    offs[n] = b.len;
    for (k = 0; k < n; k++) {
        lines[k].p = b.data + offs[k];
        lines[k].len = offs[k + 1] - offs[k];
    }
    qsort(lines, n, sizeof(*lines), sd__line_cmp);
    for (k = 0; k < n; k++) {
        sd_buf_append(&all, lines[k].p, lines[k].len);
    }
    *out = sd__lossy_string(vm, all.data, all.len);
    sd_buf_fini(&b);
    sd_buf_fini(&all);
    return sd_jn_tick(vm, n + 1);
}

/* ---- Body() ------------------------------------------------------------------------------- */

/* Returns the compiled form of path p[0..len) from the thread's cache (NULL on ENOMEM). */
static struct sd_tpl_path *sd__path(struct sd_tpl_tls *t, const char *p, size_t len)
{
    struct sd_tpl_path *e;
    int rc;

    for (size_t i = 0; i < SD_TPL_PATH_CACHE; i++) {
        e = &t->paths[i];
        if (e->text != NULL && e->len == len && memcmp(e->text, p, len) == 0) {
            return e;
        }
    }
    e = &t->paths[t->next_path];
    t->next_path = (t->next_path + 1) % SD_TPL_PATH_CACHE;
    free(e->text);
    sd_json_cpath_fini(&e->cp);
    e->text = malloc(len + 1);
    if (e->text == NULL) {
        return NULL;
    }
    memcpy(e->text, p, len);
    e->text[len] = '\0';
    e->len = len;
    rc = sd_json_cpath_compile(p, len, &e->cp, NULL, 0);
    if (rc == -ENOMEM) {
        free(e->text);
        e->text = NULL;
        return NULL;
    }
    e->is_valid = rc == 0;
    return e;
}

/* The state of one body conversion (the visitor's context). */
struct sd_tpl_walk {
    struct sd_tpl_tls *t;
    struct sd_jn_vm *vm;
};

#define SD_TPL_WALK_ERR 1 /* the visitor threw: the VM holds the message */

static int sd__push(struct sd_tpl_walk *w, struct sd_jn_val v)
{
    struct sd_tpl_tls *t = w->t;

    if (t->nvals == t->capvals) {
        size_t cap = t->capvals ? t->capvals * 2 : 64;
        struct sd_jn_val *vals = realloc(t->vals, cap * sizeof(*vals));
        struct sd_jn_str **keys;
        if (vals == NULL) {
            return -ENOMEM;
        }
        t->vals = vals;
        keys = realloc(t->keys, cap * sizeof(*keys));
        if (keys == NULL) {
            return -ENOMEM;
        }
        t->keys = keys;
        t->capvals = cap;
    }
    t->vals[t->nvals] = v;
    t->keys[t->nvals] = t->pending_key;
    t->nvals++;
    t->pending_key = NULL;
    return 0;
}

struct sd_tpl_member {
    struct sd_jn_str *key;
    size_t index;
};

static int sd__member_cmp(const void *a, const void *b)
{
    const struct sd_tpl_member *x = a;
    const struct sd_tpl_member *y = b;
    int c = sd_jn_str_cmp(x->key, y->key);

    if (c != 0) {
        return c;
    }
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Builds the object of the n members at vals[start..], the first of equal keys winning. */
static struct sd_jn_obj *sd__build_object(struct sd_tpl_walk *w, size_t start, size_t n)
{
    struct sd_tpl_tls *t = w->t;
    struct sd_jn_str **keys = n > 0 ? t->keys + start : NULL; /* no keys yet for {} */
    unsigned char *drop = NULL;
    struct sd_tpl_member *m;
    struct sd_jn_obj *o;
    size_t kept = n;
    size_t k = 0;

    if (n > 1) {
        /* Duplicate keys are rare: sort a copy to find them. */
        m = sd_jn_alloc(w->vm, n * sizeof(*m));
        for (size_t i = 0; i < n; i++) {
            m[i].key = keys[i];
            m[i].index = i;
        }
        qsort(m, n, sizeof(*m), sd__member_cmp);
        for (size_t i = 1; i < n; i++) {
            if (sd_jn_str_cmp(m[i].key, m[i - 1].key) == 0) {
                if (drop == NULL) {
                    drop = sd_jn_alloc(w->vm, n);
                }
                drop[m[i].index] = 1;
                kept--;
            }
        }
    }
    o = sd_jn_obj_new(w->vm, kept);
    for (size_t i = 0; i < n; i++) {
        if (drop == NULL || !drop[i]) {
            sd_jn_obj_set(w->vm, o, k++, keys[i], t->vals[start + i]);
        }
    }
    return o;
}

static int sd__visit(void *ctx, enum sd_json_event ev, const char *p, size_t len)
{
    struct sd_tpl_walk *w = ctx;
    struct sd_tpl_tls *t = w->t;
    struct sd_tpl_frame *f;
    struct sd_jn_val v;
    char num[64];
    char *nbuf;
    double d;

    if (sd_jn_tick(w->vm, 1) != 0) {
        return SD_TPL_WALK_ERR;
    }
    switch (ev) {
    case SD_JSON_EV_NULL:
        return sd__push(w, sd_jn_null());
    case SD_JSON_EV_TRUE:
        return sd__push(w, sd_jn_bool(1));
    case SD_JSON_EV_FALSE:
        return sd__push(w, sd_jn_bool(0));
    case SD_JSON_EV_NUMBER:
        nbuf = len < sizeof(num) ? num : sd_jn_alloc(w->vm, len + 1);
        memcpy(nbuf, p, len);
        nbuf[len] = '\0';
        d = strtod(nbuf, NULL);
        if (!isfinite(d)) {
            sd_jn_throw(w->vm, "the body number %.*s is out of range", (int)(len > 40 ? 40 : len),
                        p);
            return SD_TPL_WALK_ERR;
        }
        return sd__push(w, sd_jn_number(d));
    case SD_JSON_EV_STRING:
        return sd__push(w, sd_jn_string(w->vm, p, len));
    case SD_JSON_EV_KEY:
        t->pending_key = sd_jn_str_new(w->vm, p, len);
        return 0;
    case SD_JSON_EV_ARRAY_BEGIN:
    case SD_JSON_EV_OBJECT_BEGIN:
        f = &t->frames[t->nframes++];
        f->start = t->nvals;
        f->is_object = ev == SD_JSON_EV_OBJECT_BEGIN;
        f->key = t->pending_key;
        t->pending_key = NULL;
        return 0;
    case SD_JSON_EV_ARRAY_END:
    case SD_JSON_EV_OBJECT_END:
        f = &t->frames[--t->nframes];
        if (f->is_object) {
            v = sd_jn_object(sd__build_object(w, f->start, t->nvals - f->start));
        } else {
            struct sd_jn_arr *a = sd_jn_arr_new(w->vm, t->nvals - f->start);
            for (size_t i = f->start; i < t->nvals; i++) {
                sd_jn_arr_set(w->vm, a, i - f->start, t->vals[i]);
            }
            v = sd_jn_array(a);
        }
        t->nvals = f->start;
        t->pending_key = f->key;
        return sd__push(w, v);
    }
    return 0;
}

/* Parses the record's body (once per record); on failure remembers the status for
 * sd_template_eval and throws its message. */
static int sd__body_doc(struct sd_jn_vm *vm, struct sd_tpl_tls *t, struct sd_record *rec)
{
    struct sd_map_error err;
    int rc;

    memset(&err, 0, sizeof(err));
    rc = sd_record_parse_body(rec, &err);
    if (rc == 0) {
        return 0;
    }
    if (rc < 0) {
        t->is_nomem = 1;
        return sd_jn_throw(vm, "out of memory");
    }
    t->body_status = rc;
    t->body_err = err;
    return sd_jn_throw(vm, "%s", err.message);
}

static int sd__fn_body(struct sd_jn_vm *vm, struct sd_jn_val *args, struct sd_jn_val *out)
{
    struct sd_record *rec = sd__rec(vm);
    struct sd_tpl_tls *t;
    const struct sd_json_cpath *cp = NULL;
    const struct sd_jn_str *path = NULL;
    struct sd_tpl_walk w;
    struct sd_tpl_path *e;
    int found = 0;
    int rc;

    if (rec == NULL) {
        return sd__no_record(vm, "Body");
    }

    pthread_once(&sd__tpl_once, sd__tpl_key_init);
    t = pthread_getspecific(sd__tpl_key);
    if (t == NULL || t->vm != vm) { /* not evaluated by sd_template_eval */
        return sd__no_record(vm, "Body");
    }
    if (args[0].type == SD_JN_STRING) {
        path = args[0].u.s;
    } else if (args[0].type != SD_JN_ABSENT) {
        return sd_jn_throw(vm, "Body(): the path must be a string, not %s",
                           sd_jn_type_name(args[0].type));
    }
    if (sd__body_doc(vm, t, rec) != 0) {
        return SD_JN_ERR;
    }
    if (path != NULL && path->len > 0) {
        e = sd__path(t, path->data, path->len);
        if (e == NULL) {
            t->is_nomem = 1;
            return sd_jn_throw(vm, "out of memory");
        }
        if (!e->is_valid) {
            goto not_found;
        }
        cp = &e->cp;
    }
    w.t = t;
    w.vm = vm;
    t->nvals = 0;
    t->nframes = 0;
    t->pending_key = NULL;
    rc = sd_json_cpath_walk(rec->doc, cp, sd__visit, &w, &found);
    if (rc == SD_TPL_WALK_ERR) {
        return SD_JN_ERR;
    }
    if (rc != 0) {
        t->is_nomem = 1;
        return sd_jn_throw(vm, "out of memory");
    }
    if (found) {
        *out = t->vals[0];
        t->nvals = 0;
        return 0;
    }
not_found:
    if (args[1].type != SD_JN_ABSENT) {
        *out = args[1];
        return 0;
    }
    return sd_jn_throw(vm, "path \"%.*s\" not found in the body", (int)path->len, path->data);
}

/* ---- the table and the column API --------------------------------------------------------- */

/* Sorted by name. */
const struct sd_jn_native sd_template_natives[] = {
    {"Body", sd__fn_body, 2, 0, {"path", "default"}},
    {"BodyStr", sd__fn_body_str, 0, 0, {NULL}},
    {"Header", sd__fn_header, 2, 0, {"header", "default"}},
    {"HeaderStr", sd__fn_header_str, 0, 0, {NULL}},
    {"Ip", sd__fn_ip, 0, 0, {NULL}},
    {"Now", sd__fn_now, 1, 0, {"format"}},
};
const size_t sd_template_nnatives = sizeof(sd_template_natives) / sizeof(sd_template_natives[0]);

static int sd__is_ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* 1 when the identifier Body appears in src (conservative: strings and comments count too). */
static int sd__mentions_body(const char *src, size_t len)
{
    for (size_t i = 0; i + 4 <= len; i++) {
        if (memcmp(src + i, "Body", 4) == 0 && (i == 0 || !sd__is_ident_char(src[i - 1])) &&
            (i + 4 == len || !sd__is_ident_char(src[i + 4]))) {
            return 1;
        }
    }
    return 0;
}

int sd_template_compile(const char *src, size_t len, struct sd_template **out, struct sd_buf *err)
{
    struct sd_template *t;
    int rc;

    *out = NULL;
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return -ENOMEM;
    }
    rc = sd_jn_compile(src, len, "template", sd_template_natives, sd_template_nnatives, &t->prog,
                       err);
    if (rc != 0) {
        free(t);
        return rc;
    }
    t->uses_body = sd__mentions_body(src, len);
    *out = t;
    return 0;
}

void sd_template_destroy(struct sd_template *t)
{
    if (t == NULL) {
        return;
    }
    sd_jn_program_free(t->prog);
    free(t);
}

int sd_template_uses_body(const struct sd_template *t)
{
    return t->uses_body;
}

int sd_template_eval(const struct sd_template *t, struct sd_record *rec, int raw_string,
                     struct sd_buf *out, struct sd_map_error *err)
{
    struct sd_tpl_tls *tls = sd__tpl_tls();
    struct sd_buf msg = SD_BUF_INIT;
    int rc;

    if (tls == NULL) {
        return -ENOMEM;
    }
    tls->body_status = 0;
    tls->is_nomem = 0;
    rc = sd_jn_eval(t->prog, tls->vm, rec, raw_string ? SD_JN_OUT_RAW : SD_JN_OUT_COMPACT, out,
                    &msg);
    if (rc == 0 || rc == -ENOMEM) {
        sd_buf_fini(&msg);
        return rc;
    }
    if (tls->is_nomem) {
        rc = -ENOMEM;
    } else if (rc == SD_ELIMIT) { /* the value alone is larger than any row may be */
        rc = 413;
        if (err != NULL) {
            err->status = 413;
            err->name = "stream.in.payloadTooLarge";
            snprintf(err->message, sizeof(err->message), "%s",
                     msg.data != NULL ? msg.data : "output limit exceeded");
        }
    } else if (tls->body_status != 0) {
        rc = tls->body_status;
        if (err != NULL) {
            *err = tls->body_err;
        }
    } else {
        rc = 500;
        if (err != NULL) {
            err->status = 500;
            err->name = "stream.in.genericError";
            snprintf(err->message, sizeof(err->message), "%s",
                     msg.data != NULL ? msg.data : "evaluation failed");
        }
    }
    sd_buf_fini(&msg);
    return rc;
}

void sd_template_set_deadline(int64_t deadline_ms)
{
    struct sd_tpl_tls *tls = sd__tpl_tls();

    if (tls != NULL) {
        sd_jn_vm_set_deadline(tls->vm, deadline_ms);
    }
}

void sd_template_set_step_budget(uint64_t budget)
{
    struct sd_tpl_tls *tls = sd__tpl_tls();

    if (tls != NULL) {
        sd_jn_vm_set_step_budget(tls->vm, budget);
    }
}

int sd_template_budget_exhausted(void)
{
    struct sd_tpl_tls *t;

    pthread_once(&sd__tpl_once, sd__tpl_key_init);
    t = pthread_getspecific(sd__tpl_key);
    return t != NULL && t->vm != NULL && sd_jn_vm_budget_exhausted(t->vm);
}

void sd_template_error_pos(unsigned *line, unsigned *col)
{
    struct sd_tpl_tls *t;

    *line = 0;
    *col = 0;
    pthread_once(&sd__tpl_once, sd__tpl_key_init);
    t = pthread_getspecific(sd__tpl_key);
    if (t != NULL && t->vm != NULL) {
        sd_jn_vm_error_pos(t->vm, line, col);
    }
}
