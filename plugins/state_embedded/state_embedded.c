/* state_embedded.c: the "embedded" state backend: an in-process key-value store with etcd v3
 * semantics (global revision, per-key create/mod revision and version, compare-and-swap
 * transactions, leases, prefix watches with history), persisted durably in one directory.
 *
 * DESIGN
 * Data: keys live in a skip list ordered by strcmp (bytewise, as etcd), so prefix ranges are a
 * seek plus a walk. Leases are a small array sorted by id. Every change also becomes a
 * refcounted history entry (one per revision) kept for the last history_revs revisions, from
 * which watches are served and replayed.
 *
 * Durability: a write applies its change to memory and encodes it as one record (seq, rev,
 * ops) into the pending batch, all under the store mutex, then waits until its record is
 * synced. Group commit: the first waiter that finds no sync in flight becomes the leader,
 * takes the whole pending batch, writes it to "wal" as one frame (magic, length, CRC32 of
 * length and payload) and fdatasyncs it with the mutex released; writers arriving meanwhile
 * fill the next batch and wait for the next sync. Reads also wait until the state they saw is
 * synced, and watches only see synced revisions, so nothing unacknowledged is ever observed.
 *
 * A failed write or fdatasync (ENOSPC, EIO) fails the records it covered and every record
 * not yet durable: their callers get SD_EUNHEALTHY, and the store refuses writes (reads go on)
 * and reports "state" broken to the health registry, with one error log per episode. The
 * maintenance thread then repairs: it cuts the log back to its last synced byte through a new
 * descriptor (the failed one is never fsynced again: fsyncgate; the pages it may have dropped
 * lie past the cut) and, when memory held lost changes, rebuilds keys and leases from disk, so
 * nothing half-applied stays visible. Every SE_PROBE_MS it appends an empty frame; once that is
 * durable, writes are accepted again and the health entry is cleared.
 *
 * Recovery: open loads "snapshot" (written atomically, whole-file CRC) and replays the log
 * frames, skipping records the snapshot already holds. A frame is written only after the
 * previous one was synced, so a bad frame followed by a valid one means acknowledged data was
 * damaged: open fails with SD_ECORRUPT. A bad frame with nothing valid after it is a torn
 * tail (crash mid-append, never acknowledged): it is truncated away with a warning.
 *
 * Compaction: when the log passes wal_max_bytes or wal_max_records, the sync leader creates
 * "wal.new" and appends there from then on; the maintenance thread serializes the state (under
 * the mutex), waits until that state is synced, writes "snapshot" atomically and renames
 * "wal.new" over "wal". A crash at any step leaves a snapshot plus one or two logs that replay
 * to the same state; open finishes an interrupted switch.
 *
 * Threads: callers (any thread, all calls serialized by one mutex except the disk sync), a
 * maintenance thread (lease expiry every 100 ms, compaction) and a watch dispatcher thread
 * that calls the watch callbacks without holding the mutex, one revision at a time. Leases
 * count down on the monotonic clock; after a restart each starts again at its full TTL.
 *
 * Ownership: results returned to callers are owned copies; history entries are shared by
 * refcount between the history ring and an in-progress callback. Memory for control-plane
 * state is allocated with sd_x* (abort on OOM). */
#include "state_embedded/state_embedded.h"

#include "core/sd_alloc.h"
#include "core/sd_buf.h"
#include "core/sd_cond.h"
#include "core/sd_error.h"
#include "core/sd_fs.h"
#include "core/sd_health.h"
#include "core/sd_log.h"
#include "core/sd_time.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define SE_LOG "state"
#define SE_MAX_LEVEL 24
#define SE_FRAME_MAGIC 0x31574453u /* "SDW1" little-endian */
#define SE_FRAME_HDR 12
#define SE_SNAP_MAGIC "SDSNAP01"
#define SE_REAP_MS 100
#define SE_COMPACT_RETRY_MS 5000
#define SE_PROBE_MS 1000
#define SE_PROBE_BYTES (1 << 20)
#define SE_HEALTH_NAME "state"

enum se_op_kind { SE_REC_PUT = 1, SE_REC_DEL = 2, SE_REC_GRANT = 3, SE_REC_REVOKE = 4 };

/* One key in the skip list; owns key and value (value NUL-terminated). */
struct se_node {
    char *key;
    char *value;
    size_t value_len;
    int64_t create_rev, mod_rev, version, lease;
    int height;
    struct se_node *next[];
};

struct se_map {
    struct se_node *head;
    int level;
    size_t count;
    uint64_t rng;
};

struct se_lease {
    int64_t id, ttl_s, deadline_ms;
};

/* The changes of one revision, shared by the history ring and running callbacks. */
struct se_rev {
    int64_t rev;
    int refs;
    size_t n;
    size_t bytes;
    struct sd_kv *kvs;
    struct sd_watch_event *ev;
};

struct sd_watch {
    char *prefix;
    size_t plen;
    int64_t next_rev;
    sd_watch_fn cb;
    void *arg;
    int ended;   /* got its final rc callback */
    int removed; /* unwatched from inside its own callback: dispatcher frees it */
};

/* A decoded log op (views into the log buffer). */
struct se_dop {
    int kind;
    const char *key;
    uint32_t klen;
    const char *val;
    uint32_t vlen;
    int64_t a, b;
};

struct se_store {
    pthread_mutex_t mu;
    pthread_cond_t sync_cv;    /* a sync finished */
    pthread_cond_t watch_cv;   /* durable rev advanced, watch added, closing */
    pthread_cond_t idle_cv;    /* a callback returned */
    pthread_cond_t maint_cv;   /* work for the maintenance thread (monotonic clock) */
    pthread_cond_t compact_cv; /* compaction finished */

    char *dir, *wal_path, *walnew_path, *snap_path, *lock_path;
    int lock_fd, wal_fd;

    struct se_map map;
    int64_t rev;
    uint64_t seq;
    int64_t next_lease;
    struct se_lease *leases;
    size_t nleases, cap_leases;

    /* group commit */
    struct sd_buf pending, spare;
    uint64_t pending_records;
    int syncing;
    uint64_t synced_seq;
    int64_t durable_rev;
    int broken;               /* rc of the failed append of this episode; 0 = writes accepted */
    int stale;                /* memory holds changes a failed append lost: reads wait for repair */
    int reopen;               /* the log must be cut back to wal_bytes and reopened */
    int repair_rc;            /* last repair's result; reads fail while it is an error */
    uint64_t epoch;           /* bumped by each failed append: earlier waiters fail */
    int64_t retry_ms;         /* monotonic time of the next repair or probe */
    struct sd_health *health; /* borrowed; may be NULL */
    uint64_t wal_bytes, wal_records;
    struct sd_state_embedded_limits lim;
    struct sd_state_embedded_stats stats;

    /* compaction */
    int rotated;
    int compact_busy;
    int64_t compact_retry_ms;

    /* history */
    struct se_rev **hist;
    size_t hist_cap, hist_head, hist_n, hist_bytes;
    int64_t hist_first_rev;

    /* watches */
    struct sd_watch **watches;
    size_t nwatches, cap_watches, disp_cursor;
    struct sd_watch *cb_running;
    pthread_t disp_thread, maint_thread;
    int disp_started, maint_started;
    int closing;
};

/* ---- small helpers ---------------------------------------------------------------------- */

static void se_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t se_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void se_enc_bytes(struct sd_buf *b, const void *p, size_t len)
{
    if (sd_buf_append(b, p, len) != 0) {
        sd_log_error(SE_LOG, "out of memory encoding a record");
        abort();
    }
}

static void se_enc_u32(struct sd_buf *b, uint32_t v)
{
    uint8_t tmp[4];

    se_put_u32(tmp, v);
    se_enc_bytes(b, tmp, 4);
}

static void se_enc_u64(struct sd_buf *b, uint64_t v)
{
    se_enc_u32(b, (uint32_t)v);
    se_enc_u32(b, (uint32_t)(v >> 32));
}

static void se_enc_str(struct sd_buf *b, const char *p, size_t len)
{
    se_enc_u32(b, (uint32_t)len);
    se_enc_bytes(b, p, len);
}

/* Bounds-checked reader over untrusted bytes. */
struct se_rd {
    const uint8_t *p;
    size_t len, off;
};

static int se_rd_u32(struct se_rd *r, uint32_t *v)
{
    if (r->len - r->off < 4) {
        return SD_ECORRUPT;
    }
    *v = se_get_u32(r->p + r->off);
    r->off += 4;
    return 0;
}

static int se_rd_u64(struct se_rd *r, uint64_t *v)
{
    uint32_t lo, hi;

    if (se_rd_u32(r, &lo) != 0 || se_rd_u32(r, &hi) != 0) {
        return SD_ECORRUPT;
    }
    *v = (uint64_t)lo | ((uint64_t)hi << 32);
    return 0;
}

static int se_rd_i64(struct se_rd *r, int64_t *v)
{
    uint64_t u;

    if (se_rd_u64(r, &u) != 0) {
        return SD_ECORRUPT;
    }
    *v = (int64_t)u;
    return 0;
}

/* Reads a length-prefixed byte string; is_key requires 1..n bytes without NUL. */
static int se_rd_str(struct se_rd *r, int is_key, const char **p, uint32_t *len)
{
    if (se_rd_u32(r, len) != 0 || r->len - r->off < *len) {
        return SD_ECORRUPT;
    }
    *p = (const char *)r->p + r->off;
    r->off += *len;
    if (is_key && (*len == 0 || memchr(*p, 0, *len) != NULL)) {
        return SD_ECORRUPT;
    }
    return 0;
}

static char *se_dup_bytes(const char *p, size_t len)
{
    char *s = sd_xmalloc(len + 1);

    if (len > 0) {
        memcpy(s, p, len);
    }
    s[len] = '\0';
    return s;
}

static int se_has_prefix(const char *key, const char *prefix, size_t plen)
{
    return strncmp(key, prefix, plen) == 0;
}

/* ---- skip list -------------------------------------------------------------------------- */

static struct se_node *se_node_new(int height)
{
    struct se_node *n = sd_xcalloc(1, sizeof(*n) + (size_t)height * sizeof(n->next[0]));

    n->height = height;
    return n;
}

static void se_map_init(struct se_map *m, uint64_t seed)
{
    m->head = se_node_new(SE_MAX_LEVEL);
    m->level = 1;
    m->count = 0;
    m->rng = seed | 1;
}

static void se_node_free(struct se_node *n)
{
    free(n->key);
    free(n->value);
    free(n);
}

static void se_map_fini(struct se_map *m)
{
    struct se_node *n, *next;

    if (m->head == NULL) {
        return;
    }
    for (n = m->head->next[0]; n != NULL; n = next) {
        next = n->next[0];
        se_node_free(n);
    }
    free(m->head);
    m->head = NULL;
}

static int se_map_random_level(struct se_map *m)
{
    int level = 1;

    /* xorshift64; p = 1/4 per level */
    m->rng ^= m->rng << 13;
    m->rng ^= m->rng >> 7;
    m->rng ^= m->rng << 17;
    for (uint64_t r = m->rng; level < SE_MAX_LEVEL && (r & 3) == 0; r >>= 2) {
        level++;
    }
    return level;
}

/* Returns the first node with key >= key; fills update[] with the predecessors if not NULL. */
static struct se_node *se_map_seek(const struct se_map *m, const char *key, struct se_node **update)
{
    struct se_node *x = m->head;

    for (int i = m->level - 1; i >= 0; i--) {
        while (x->next[i] != NULL && strcmp(x->next[i]->key, key) < 0) {
            x = x->next[i];
        }
        if (update != NULL) {
            update[i] = x;
        }
    }
    return x->next[0];
}

static struct se_node *se_map_find(const struct se_map *m, const char *key)
{
    struct se_node *n = se_map_seek(m, key, NULL);

    return (n != NULL && strcmp(n->key, key) == 0) ? n : NULL;
}

/* Sets key (klen bytes, no NUL inside) to value at rev; returns the node. */
static struct se_node *se_map_put(struct se_map *m, const char *key, size_t klen, const char *value,
                                  size_t vlen, int64_t lease, int64_t rev)
{
    struct se_node *update[SE_MAX_LEVEL];
    char *k = se_dup_bytes(key, klen);
    struct se_node *n = se_map_seek(m, k, update);
    int h;

    if (n != NULL && strcmp(n->key, k) == 0) {
        free(k);
        free(n->value);
        n->value = se_dup_bytes(value, vlen);
        n->value_len = vlen;
        n->mod_rev = rev;
        n->version++;
        n->lease = lease;
        return n;
    }
    h = se_map_random_level(m);
    if (h > m->level) {
        for (int i = m->level; i < h; i++) {
            update[i] = m->head;
        }
        m->level = h;
    }
    n = se_node_new(h);
    n->key = k;
    n->value = se_dup_bytes(value, vlen);
    n->value_len = vlen;
    n->create_rev = rev;
    n->mod_rev = rev;
    n->version = 1;
    n->lease = lease;
    for (int i = 0; i < h; i++) {
        n->next[i] = update[i]->next[i];
        update[i]->next[i] = n;
    }
    m->count++;
    return n;
}

/* Unlinks and frees the node with key; returns 1 if it existed. */
static int se_map_del(struct se_map *m, const char *key)
{
    struct se_node *update[SE_MAX_LEVEL];
    struct se_node *n = se_map_seek(m, key, update);

    if (n == NULL || strcmp(n->key, key) != 0) {
        return 0;
    }
    for (int i = 0; i < m->level; i++) {
        if (update[i]->next[i] != n) {
            break;
        }
        update[i]->next[i] = n->next[i];
    }
    while (m->level > 1 && m->head->next[m->level - 1] == NULL) {
        m->level--;
    }
    se_node_free(n);
    m->count--;
    return 1;
}

static void se_kv_copy(struct sd_kv *out, const struct se_node *n)
{
    out->key = sd_xstrdup(n->key);
    out->value = se_dup_bytes(n->value, n->value_len);
    out->value_len = n->value_len;
    out->create_rev = n->create_rev;
    out->mod_rev = n->mod_rev;
    out->version = n->version;
    out->lease = n->lease;
}

/* Copies the keys with prefix (at most limit > 0 of them) into out. */
static void se_map_range(const struct se_map *m, const char *prefix, int64_t limit,
                         struct sd_kvs *out)
{
    size_t plen = strlen(prefix);
    size_t cap = 0;
    struct se_node *n = se_map_seek(m, prefix, NULL);

    memset(out, 0, sizeof(*out));
    for (; n != NULL && se_has_prefix(n->key, prefix, plen); n = n->next[0]) {
        if (limit > 0 && out->n == (size_t)limit) {
            out->more = 1;
            break;
        }
        if (out->n == cap) {
            cap = cap ? cap * 2 : 8;
            out->items = sd_xrealloc(out->items, cap * sizeof(out->items[0]));
        }
        se_kv_copy(&out->items[out->n++], n);
    }
}

/* ---- leases ----------------------------------------------------------------------------- */

static struct se_lease *se_lease_find(struct se_store *s, int64_t id)
{
    size_t lo = 0, hi = s->nleases;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->leases[mid].id < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return (lo < s->nleases && s->leases[lo].id == id) ? &s->leases[lo] : NULL;
}

/* Adds a lease (ids only grow, so this appends unless replay brings an older id). */
static void se_lease_add(struct se_store *s, int64_t id, int64_t ttl_s)
{
    size_t i = s->nleases;

    if (s->nleases == s->cap_leases) {
        s->cap_leases = s->cap_leases ? s->cap_leases * 2 : 16;
        s->leases = sd_xrealloc(s->leases, s->cap_leases * sizeof(s->leases[0]));
    }
    while (i > 0 && s->leases[i - 1].id > id) {
        s->leases[i] = s->leases[i - 1];
        i--;
    }
    s->leases[i].id = id;
    s->leases[i].ttl_s = ttl_s;
    s->leases[i].deadline_ms = sd_mono_ms() + ttl_s * 1000;
    s->nleases++;
    if (id >= s->next_lease) {
        s->next_lease = id + 1;
    }
}

static void se_lease_remove(struct se_store *s, struct se_lease *l)
{
    size_t i = (size_t)(l - s->leases);

    memmove(&s->leases[i], &s->leases[i + 1], (s->nleases - i - 1) * sizeof(s->leases[0]));
    s->nleases--;
}

/* A lease usable for a put: known and not expired. */
static int se_lease_live(struct se_store *s, int64_t id)
{
    struct se_lease *l = se_lease_find(s, id);

    return l != NULL && l->deadline_ms > sd_mono_ms();
}

/* ---- history ---------------------------------------------------------------------------- */

static void se_rev_unref(struct se_rev *r)
{
    if (r == NULL || --r->refs > 0) {
        return;
    }
    for (size_t i = 0; i < r->n; i++) {
        sd_kv_free(&r->kvs[i]);
    }
    free(r->kvs);
    free(r->ev);
    free(r);
}

static struct se_rev *se_hist_at(const struct se_store *s, size_t i)
{
    return s->hist[(s->hist_head + i) % s->hist_cap];
}

static void se_hist_pop(struct se_store *s)
{
    struct se_rev *r = se_hist_at(s, 0);

    s->hist_head = (s->hist_head + 1) % s->hist_cap;
    s->hist_n--;
    s->hist_bytes -= r->bytes;
    s->hist_first_rev = r->rev + 1;
    se_rev_unref(r);
}

static void se_hist_trim(struct se_store *s)
{
    while (s->hist_n > 0 &&
           (s->hist_n > s->lim.history_revs || s->hist_bytes > s->lim.history_bytes)) {
        se_hist_pop(s);
    }
}

/* Appends r (taking its reference) as the newest revision. */
static void se_hist_push(struct se_store *s, struct se_rev *r)
{
    if (s->hist_n == s->hist_cap) {
        size_t ncap = s->hist_cap ? s->hist_cap * 2 : 64;
        struct se_rev **nh = sd_xmalloc(ncap * sizeof(nh[0]));
        for (size_t i = 0; i < s->hist_n; i++) {
            nh[i] = se_hist_at(s, i);
        }
        free(s->hist);
        s->hist = nh;
        s->hist_cap = ncap;
        s->hist_head = 0;
    }
    s->hist[(s->hist_head + s->hist_n) % s->hist_cap] = r;
    s->hist_n++;
    s->hist_bytes += r->bytes;
    se_hist_trim(s);
}

/* Index of the first history entry with rev >= rev (hist_n if none). */
static size_t se_hist_lower(const struct se_store *s, int64_t rev)
{
    size_t lo = 0, hi = s->hist_n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (se_hist_at(s, mid)->rev < rev) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* Collects the events of the revision being built. */
struct se_changes {
    struct se_rev *r;
    size_t cap;
};

static void se_changes_add(struct se_changes *c, int64_t rev, enum sd_watch_event_type type,
                           const struct se_node *n, const char *deleted_key)
{
    struct se_rev *r = c->r;
    struct sd_kv *kv;

    if (r == NULL) {
        r = c->r = sd_xcalloc(1, sizeof(*r));
        r->rev = rev;
        r->refs = 1;
    }
    if (r->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 4;
        r->kvs = sd_xrealloc(r->kvs, c->cap * sizeof(r->kvs[0]));
    }
    kv = &r->kvs[r->n++];
    memset(kv, 0, sizeof(*kv));
    if (type == SD_WATCH_PUT) {
        se_kv_copy(kv, n);
        r->bytes += strlen(kv->key) + kv->value_len + sizeof(*kv);
    } else {
        kv->key = sd_xstrdup(deleted_key);
        kv->mod_rev = rev;
        r->bytes += strlen(kv->key) + sizeof(*kv);
    }
}

/* Finishes the revision: builds its event array and appends it to the history. */
static void se_changes_commit(struct se_store *s, struct se_changes *c)
{
    struct se_rev *r = c->r;

    if (r == NULL) {
        return;
    }
    r->ev = sd_xmalloc(r->n * sizeof(r->ev[0]));
    for (size_t i = 0; i < r->n; i++) {
        r->ev[i].type = r->kvs[i].value != NULL ? SD_WATCH_PUT : SD_WATCH_DELETE;
        r->ev[i].kv = &r->kvs[i];
    }
    se_hist_push(s, r);
    c->r = NULL;
}

/* ---- applying changes (live and replay share these) ------------------------------------- */

static void se_apply_put(struct se_store *s, struct se_changes *c, int64_t rev, const char *key,
                         size_t klen, const char *val, size_t vlen, int64_t lease)
{
    struct se_node *n = se_map_put(&s->map, key, klen, val, vlen, lease, rev);

    se_changes_add(c, rev, SD_WATCH_PUT, n, NULL);
}

/* Deletes key (NUL-terminated); returns 1 if it existed. */
static int se_apply_del(struct se_store *s, struct se_changes *c, int64_t rev, const char *key)
{
    if (!se_map_del(&s->map, key)) {
        return 0;
    }
    se_changes_add(c, rev, SD_WATCH_DELETE, NULL, key);
    return 1;
}

/* ---- live record building --------------------------------------------------------------- */

/* An open record in the pending batch. */
struct se_rec {
    size_t start;    /* pending.len before the record (and before a new frame header) */
    size_t nops_off; /* offset of the op count */
    uint32_t nops;
    int kv_ops; /* puts and deletes (they make a revision) */
    struct se_changes changes;
};

static void se_rec_begin(struct se_store *s, struct se_rec *rec)
{
    memset(rec, 0, sizeof(*rec));
    rec->start = s->pending.len;
    if (s->pending.len == 0) {
        uint8_t hdr[SE_FRAME_HDR] = {0};
        se_enc_bytes(&s->pending, hdr, sizeof(hdr));
    }
    se_enc_u64(&s->pending, s->seq + 1);
    se_enc_u64(&s->pending, 0); /* rev, patched at the end */
    rec->nops_off = s->pending.len;
    se_enc_u32(&s->pending, 0);
}

static void se_rec_put(struct se_store *s, struct se_rec *rec, const char *key, const char *val,
                       size_t vlen, int64_t lease)
{
    size_t klen = strlen(key);

    se_enc_u32(&s->pending, SE_REC_PUT);
    se_enc_str(&s->pending, key, klen);
    se_enc_str(&s->pending, val, vlen);
    se_enc_u64(&s->pending, (uint64_t)lease);
    se_apply_put(s, &rec->changes, s->rev + 1, key, klen, val, vlen, lease);
    rec->nops++;
    rec->kv_ops++;
}

static int se_rec_del(struct se_store *s, struct se_rec *rec, const char *key)
{
    if (!se_apply_del(s, &rec->changes, s->rev + 1, key)) {
        return 0;
    }
    se_enc_u32(&s->pending, SE_REC_DEL);
    se_enc_str(&s->pending, key, strlen(key));
    rec->nops++;
    rec->kv_ops++;
    return 1;
}

/* Deletes every key with prefix; returns the count. */
static int64_t se_rec_del_prefix(struct se_store *s, struct se_rec *rec, const char *prefix)
{
    size_t plen = strlen(prefix);
    struct se_node *n = se_map_seek(&s->map, prefix, NULL);
    int64_t count = 0;

    while (n != NULL && se_has_prefix(n->key, prefix, plen)) {
        struct se_node *next = n->next[0];
        char *key = sd_xstrdup(n->key);
        count += se_rec_del(s, rec, key);
        free(key);
        n = next;
    }
    return count;
}

static void se_rec_lease(struct se_store *s, struct se_rec *rec, int kind, int64_t id, int64_t ttl)
{
    se_enc_u32(&s->pending, (uint32_t)kind);
    se_enc_u64(&s->pending, (uint64_t)id);
    if (kind == SE_REC_GRANT) {
        se_enc_u64(&s->pending, (uint64_t)ttl);
    }
    rec->nops++;
}

/* Closes the record: drops it when empty, else assigns seq/rev. Returns the seq to wait for
 * (the record's, or the current one when nothing changed). */
static uint64_t se_rec_end(struct se_store *s, struct se_rec *rec)
{
    uint8_t *p;

    if (rec->nops == 0) {
        s->pending.len = rec->start;
        return s->seq;
    }
    s->seq++;
    if (rec->kv_ops > 0) {
        s->rev++;
    }
    p = (uint8_t *)s->pending.data + rec->nops_off - 8;
    se_put_u32(p, (uint32_t)(uint64_t)s->rev);
    se_put_u32(p + 4, (uint32_t)((uint64_t)s->rev >> 32));
    se_put_u32((uint8_t *)s->pending.data + rec->nops_off, rec->nops);
    s->pending_records++;
    se_changes_commit(s, &rec->changes);
    return s->seq;
}

/* ---- group commit ----------------------------------------------------------------------- */

static int se_open_wal_file(const char *path, int trunc, int *fd)
{
    int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (trunc ? O_TRUNC : 0);

    *fd = open(path, flags, SD_FILE_MODE);
    if (*fd < 0) {
        return -errno;
    }
    return 0;
}

/* Creates an empty wal.new and makes its name durable. */
static int se_create_walnew(struct se_store *s, int *fd)
{
    int rc = se_open_wal_file(s->walnew_path, 1, fd);

    if (rc == 0) {
        rc = sd_fsync_dir(s->dir);
        if (rc != 0) {
            close(*fd);
            *fd = -1;
            unlink(s->walnew_path);
        }
    }
    return rc;
}

/* A log append failed (mu held, no sync in flight): fails every record not yet durable (their
 * waiters see the epoch change), refuses writes until a probe succeeds and wakes the maintenance
 * thread to repair. Logs and reports health once per episode. */
static void se_fail_locked(struct se_store *s, int rc)
{
    char reason[160];

    if (!s->broken) {
        sd_log_error(SE_LOG, "append to %s: %s; refusing writes until it can be written again",
                     s->wal_path, sd_strerror(rc));
        snprintf(reason, sizeof(reason), "cannot write %s: %s", s->wal_path, sd_strerror(rc));
        sd_health_set(s->health, SE_HEALTH_NAME, reason);
    }
    s->broken = rc;
    s->epoch++;
    s->reopen = 1;
    s->stale |= s->seq != s->synced_seq;
    sd_buf_reset(&s->pending);
    s->pending_records = 0;
    s->retry_ms = sd_mono_ms();
    pthread_cond_signal(&s->maint_cv);
}

/* Called with mu held, no sync in flight and a non-empty pending batch: writes and syncs the
 * batch as one frame with mu released, then publishes the new durable position. */
static void se_lead_sync(struct se_store *s)
{
    struct sd_buf batch = s->pending;
    uint64_t last_seq = s->seq;
    int64_t last_rev = s->rev;
    uint64_t nrec = s->pending_records;
    int may_rotate = !s->rotated && !s->compact_busy;
    uint64_t max_bytes = s->lim.wal_max_bytes, max_records = s->lim.wal_max_records;
    int fd = s->wal_fd, newfd = -1, rc;
    uint32_t len = (uint32_t)(batch.len - SE_FRAME_HDR);
    uint8_t *hdr = (uint8_t *)batch.data;
    uLong crc;

    s->pending = s->spare;
    sd_buf_init(&s->spare);
    s->pending_records = 0;
    s->syncing = 1;
    pthread_mutex_unlock(&s->mu);

    se_put_u32(hdr, SE_FRAME_MAGIC);
    se_put_u32(hdr + 4, len);
    crc = crc32_z(0L, hdr + 4, 4);
    crc = crc32_z(crc, hdr + SE_FRAME_HDR, len);
    se_put_u32(hdr + 8, (uint32_t)crc);
    rc = sd_write_all(fd, batch.data, batch.len);
    if (rc == 0 && fdatasync(fd) != 0) {
        rc = -errno;
    }
    if (rc == 0 && may_rotate &&
        (s->wal_bytes + batch.len >= max_bytes || s->wal_records + nrec >= max_records)) {
        int rrc = se_create_walnew(s, &newfd);
        if (rrc != 0) {
            sd_log_warn(SE_LOG, "compaction: create %s: %s", s->walnew_path, sd_strerror(rrc));
        }
    }

    pthread_mutex_lock(&s->mu);
    s->syncing = 0;
    s->stats.syncs++;
    if (rc != 0) {
        se_fail_locked(s, rc);
    } else {
        if (s->broken) {
            sd_log_info(SE_LOG, "%s can be written again; accepting writes", s->wal_path);
            sd_health_clear(s->health, SE_HEALTH_NAME);
            s->broken = 0;
        }
        s->synced_seq = last_seq;
        s->durable_rev = last_rev;
        s->wal_bytes += batch.len;
        s->wal_records += nrec;
        s->stats.records += nrec;
        if (newfd >= 0) {
            close(s->wal_fd);
            s->wal_fd = newfd;
            s->wal_bytes = 0;
            s->wal_records = 0;
            s->rotated = 1;
            pthread_cond_signal(&s->maint_cv);
        }
    }
    sd_buf_reset(&batch);
    if (s->spare.data == NULL && batch.cap <= (1u << 20)) {
        s->spare = batch;
    } else {
        sd_buf_fini(&batch);
    }
    pthread_cond_broadcast(&s->sync_cv);
    pthread_cond_broadcast(&s->watch_cv);
}

/* Called with mu held: returns once record seq is durable (0), or SD_EUNHEALTHY when an
 * append failed meanwhile (the record, or state it was built on, is lost). */
static int se_wait_durable(struct se_store *s, uint64_t seq)
{
    uint64_t epoch = s->epoch;

    while (s->synced_seq < seq) {
        if (s->epoch != epoch || s->broken) {
            return SD_EUNHEALTHY;
        }
        if (!s->syncing) {
            se_lead_sync(s);
        } else {
            pthread_cond_wait(&s->sync_cv, &s->mu);
        }
    }
    return 0;
}

/* Called with mu held at the start of every call that writes. */
static int se_usable(const struct se_store *s)
{
    if (s->closing) {
        return SD_ECLOSED;
    }
    return s->broken ? SD_EUNHEALTHY : 0;
}

/* Called with mu held at the start of every call that only reads: waits while memory holds
 * changes a failed append lost, until the repair removed them. */
static int se_readable(struct se_store *s)
{
    for (;;) {
        if (s->closing) {
            return SD_ECLOSED;
        }
        if (!s->stale) {
            return 0;
        }
        if (s->repair_rc != 0) {
            return SD_EUNHEALTHY;
        }
        pthread_cond_wait(&s->sync_cv, &s->mu);
    }
}

/* ---- snapshot --------------------------------------------------------------------------- */

static void se_snapshot_encode(struct se_store *s, struct sd_buf *b)
{
    uint32_t crc;

    se_enc_bytes(b, SE_SNAP_MAGIC, 8);
    se_enc_u64(b, s->seq);
    se_enc_u64(b, (uint64_t)s->rev);
    se_enc_u64(b, (uint64_t)s->next_lease);
    se_enc_u32(b, (uint32_t)s->nleases);
    for (size_t i = 0; i < s->nleases; i++) {
        se_enc_u64(b, (uint64_t)s->leases[i].id);
        se_enc_u64(b, (uint64_t)s->leases[i].ttl_s);
    }
    se_enc_u64(b, s->map.count);
    for (struct se_node *n = s->map.head->next[0]; n != NULL; n = n->next[0]) {
        se_enc_str(b, n->key, strlen(n->key));
        se_enc_str(b, n->value, n->value_len);
        se_enc_u64(b, (uint64_t)n->create_rev);
        se_enc_u64(b, (uint64_t)n->mod_rev);
        se_enc_u64(b, (uint64_t)n->version);
        se_enc_u64(b, (uint64_t)n->lease);
    }
    crc = (uint32_t)crc32_z(0L, (const Bytef *)b->data, b->len);
    se_enc_u32(b, crc);
}

static int se_snapshot_load(struct se_store *s, const uint8_t *p, size_t len)
{
    struct se_rd r = {p, len, 0};
    uint64_t seq, rev, next_lease, nkeys;
    uint32_t nleases;
    struct se_node *prev = NULL;

    if (len < 12 || memcmp(p, SE_SNAP_MAGIC, 8) != 0 ||
        se_get_u32(p + len - 4) != (uint32_t)crc32_z(0L, p, len - 4)) {
        return SD_ECORRUPT;
    }
    r.len = len - 4;
    r.off = 8;
    if (se_rd_u64(&r, &seq) != 0 || se_rd_u64(&r, &rev) != 0 || se_rd_u64(&r, &next_lease) != 0 ||
        se_rd_u32(&r, &nleases) != 0 || (int64_t)rev < 0 || (int64_t)next_lease < 1) {
        return SD_ECORRUPT;
    }
    s->seq = seq;
    s->rev = (int64_t)rev;
    s->next_lease = (int64_t)next_lease;
    for (uint32_t i = 0; i < nleases; i++) {
        int64_t id, ttl;
        if (se_rd_i64(&r, &id) != 0 || se_rd_i64(&r, &ttl) != 0 || id <= 0 || ttl <= 0 ||
            ttl > INT32_MAX || se_lease_find(s, id) != NULL) {
            return SD_ECORRUPT;
        }
        se_lease_add(s, id, ttl);
    }
    if (se_rd_u64(&r, &nkeys) != 0) {
        return SD_ECORRUPT;
    }
    for (uint64_t i = 0; i < nkeys; i++) {
        const char *k, *v;
        uint32_t klen, vlen;
        int64_t create_rev, mod_rev, version, lease;
        struct se_node *n;

        if (se_rd_str(&r, 1, &k, &klen) != 0 || se_rd_str(&r, 0, &v, &vlen) != 0 ||
            se_rd_i64(&r, &create_rev) != 0 || se_rd_i64(&r, &mod_rev) != 0 ||
            se_rd_i64(&r, &version) != 0 || se_rd_i64(&r, &lease) != 0) {
            return SD_ECORRUPT;
        }
        if (create_rev <= 0 || mod_rev < create_rev || mod_rev > s->rev || version <= 0 ||
            lease < 0 || (lease != 0 && se_lease_find(s, lease) == NULL)) {
            return SD_ECORRUPT;
        }
        n = se_map_put(&s->map, k, klen, v, vlen, lease, mod_rev);
        if (n->version != 1 || (prev != NULL && strcmp(prev->key, n->key) >= 0)) {
            return SD_ECORRUPT; /* duplicate or unsorted key */
        }
        n->create_rev = create_rev;
        n->version = version;
        prev = n;
    }
    if (r.off != r.len) {
        return SD_ECORRUPT;
    }
    return 0;
}

/* Writes a snapshot of the state and switches wal.new to wal. Any thread, mu not held. */
static int se_compact_run(struct se_store *s)
{
    struct sd_buf img = SD_BUF_INIT;
    int rc;

    pthread_mutex_lock(&s->mu);
    while (s->compact_busy) {
        pthread_cond_wait(&s->compact_cv, &s->mu);
    }
    if (!s->rotated || s->broken) {
        rc = se_usable(s);
        pthread_mutex_unlock(&s->mu);
        return rc;
    }
    s->compact_busy = 1;
    se_snapshot_encode(s, &img);
    rc = se_wait_durable(s, s->seq);
    pthread_mutex_unlock(&s->mu);

    if (rc == 0) {
        rc = sd_write_file_atomic(s->snap_path, img.data, img.len, SD_FILE_MODE);
    }
    if (rc == 0 && rename(s->walnew_path, s->wal_path) != 0) {
        rc = -errno;
    }
    if (rc == 0) {
        rc = sd_fsync_dir(s->dir);
    }
    sd_buf_fini(&img);

    pthread_mutex_lock(&s->mu);
    s->compact_busy = 0;
    if (rc == 0) {
        s->rotated = 0;
        s->stats.compactions++;
    } else {
        sd_log_error(SE_LOG, "compaction: write %s: %s; retrying later", s->snap_path,
                     sd_strerror(rc));
        s->compact_retry_ms = sd_mono_ms() + SE_COMPACT_RETRY_MS;
    }
    pthread_cond_broadcast(&s->compact_cv);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- log replay ------------------------------------------------------------------------- */

/* Frame at off is complete and its checksum matches; *plen gets the payload length. */
static int se_frame_ok(const uint8_t *p, size_t len, size_t off, uint32_t *plen)
{
    uint32_t flen;
    uLong crc;

    if (len - off < SE_FRAME_HDR || se_get_u32(p + off) != SE_FRAME_MAGIC) {
        return 0;
    }
    flen = se_get_u32(p + off + 4);
    if (flen > len - off - SE_FRAME_HDR) {
        return 0;
    }
    crc = crc32_z(0L, p + off + 4, 4);
    crc = crc32_z(crc, p + off + SE_FRAME_HDR, flen);
    if ((uint32_t)crc != se_get_u32(p + off + 8)) {
        return 0;
    }
    *plen = flen;
    return 1;
}

/* Some valid frame starts after off. */
static int se_valid_frame_after(const uint8_t *p, size_t len, size_t off)
{
    static const uint8_t magic[4] = {0x53, 0x44, 0x57, 0x31};
    uint32_t flen;

    for (size_t i = off + 1; i + SE_FRAME_HDR <= len; i++) {
        const uint8_t *m = memmem(p + i, len - i, magic, sizeof(magic));
        if (m == NULL) {
            break;
        }
        i = (size_t)(m - p);
        if (se_frame_ok(p, len, i, &flen)) {
            return 1;
        }
    }
    return 0;
}

/* Decodes one record's ops into *ops (owned array). */
static int se_decode_ops(struct se_rd *r, uint32_t nops, struct se_dop **ops)
{
    struct se_dop *d;

    /* every op takes at least 9 bytes: bound the allocation by the input */
    if (nops == 0 || nops > (r->len - r->off) / 9) {
        return SD_ECORRUPT;
    }
    d = sd_xcalloc(nops, sizeof(*d));
    *ops = d;
    for (uint32_t i = 0; i < nops; i++) {
        uint32_t kind;
        if (se_rd_u32(r, &kind) != 0) {
            return SD_ECORRUPT;
        }
        d[i].kind = (int)kind;
        switch (kind) {
        case SE_REC_PUT:
            if (se_rd_str(r, 1, &d[i].key, &d[i].klen) != 0 ||
                se_rd_str(r, 0, &d[i].val, &d[i].vlen) != 0 || se_rd_i64(r, &d[i].a) != 0) {
                return SD_ECORRUPT;
            }
            break;
        case SE_REC_DEL:
            if (se_rd_str(r, 1, &d[i].key, &d[i].klen) != 0) {
                return SD_ECORRUPT;
            }
            break;
        case SE_REC_GRANT:
            if (se_rd_i64(r, &d[i].a) != 0 || se_rd_i64(r, &d[i].b) != 0) {
                return SD_ECORRUPT;
            }
            break;
        case SE_REC_REVOKE:
            if (se_rd_i64(r, &d[i].a) != 0) {
                return SD_ECORRUPT;
            }
            break;
        default:
            return SD_ECORRUPT;
        }
    }
    return 0;
}

/* Applies decoded ops at revision rev; any inconsistency is corruption. */
static int se_replay_ops(struct se_store *s, const struct se_dop *ops, uint32_t nops, int64_t rev)
{
    struct se_changes c = {NULL, 0};
    int rc = 0;

    for (uint32_t i = 0; i < nops && rc == 0; i++) {
        const struct se_dop *d = &ops[i];
        char *key = NULL;
        struct se_lease *l;

        switch (d->kind) {
        case SE_REC_PUT:
            if (d->a < 0 || (d->a != 0 && se_lease_find(s, d->a) == NULL)) {
                rc = SD_ECORRUPT;
                break;
            }
            se_apply_put(s, &c, rev, d->key, d->klen, d->val, d->vlen, d->a);
            break;
        case SE_REC_DEL:
            key = se_dup_bytes(d->key, d->klen);
            if (!se_apply_del(s, &c, rev, key)) {
                rc = SD_ECORRUPT;
            }
            free(key);
            break;
        case SE_REC_GRANT:
            if (d->a <= 0 || d->b <= 0 || d->b > INT32_MAX || se_lease_find(s, d->a) != NULL) {
                rc = SD_ECORRUPT;
                break;
            }
            se_lease_add(s, d->a, d->b);
            break;
        case SE_REC_REVOKE:
            l = se_lease_find(s, d->a);
            if (l == NULL) {
                rc = SD_ECORRUPT;
                break;
            }
            se_lease_remove(s, l);
            break;
        default:
            rc = SD_ECORRUPT;
            break;
        }
    }
    if (c.r != NULL) {
        if (rc == 0) {
            se_changes_commit(s, &c);
        } else {
            se_rev_unref(c.r);
        }
    }
    return rc;
}

/* Applies the records of one frame payload. *applied_any tracks whether any record was
 * applied since open (before that, records the snapshot holds are skipped). */
static int se_replay_frame(struct se_store *s, const uint8_t *p, size_t len, int *applied_any,
                           uint64_t *records)
{
    struct se_rd r = {p, len, 0};
    int rc = 0;

    while (r.off < r.len && rc == 0) {
        uint64_t seq;
        int64_t rev;
        uint32_t nops;
        struct se_dop *ops = NULL;
        int kv_ops = 0;

        if (se_rd_u64(&r, &seq) != 0 || se_rd_i64(&r, &rev) != 0 || se_rd_u32(&r, &nops) != 0) {
            return SD_ECORRUPT;
        }
        rc = se_decode_ops(&r, nops, &ops);
        (*records)++;
        if (rc == 0) {
            for (uint32_t i = 0; i < nops; i++) {
                kv_ops += ops[i].kind == SE_REC_PUT || ops[i].kind == SE_REC_DEL;
            }
            if (seq <= s->seq && !*applied_any) {
                /* already in the snapshot */
            } else if (seq != s->seq + 1 || rev != s->rev + (kv_ops > 0)) {
                rc = SD_ECORRUPT;
            } else {
                rc = se_replay_ops(s, ops, nops, rev);
                if (rc == 0) {
                    s->seq = seq;
                    s->rev = rev;
                    *applied_any = 1;
                }
            }
        }
        free(ops);
    }
    return rc;
}

/* Replays the log at path (missing is fine). allow_torn: a damaged tail is truncated away;
 * otherwise it is corruption. */
static int se_replay_file(struct se_store *s, const char *path, int allow_torn, int *applied_any,
                          uint64_t *records, uint64_t *bytes)
{
    char *buf = NULL;
    size_t len = 0, off = 0;
    const uint8_t *p;
    int rc = sd_read_file(path, &buf, &len);

    *records = 0;
    *bytes = 0;
    if (rc == -ENOENT) {
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    p = (const uint8_t *)buf;
    while (off < len) {
        uint32_t flen;
        if (!se_frame_ok(p, len, off, &flen)) {
            if (!allow_torn || se_valid_frame_after(p, len, off)) {
                sd_log_error(SE_LOG, "%s: damaged record at offset %zu of %zu", path, off, len);
                rc = SD_ECORRUPT;
                break;
            }
            sd_log_warn(SE_LOG, "%s: truncating torn tail at offset %zu (%zu bytes)", path, off,
                        len - off);
            if (truncate(path, (off_t)off) != 0) {
                rc = -errno;
            }
            break;
        }
        rc = se_replay_frame(s, p + off + SE_FRAME_HDR, flen, applied_any, records);
        if (rc != 0) {
            sd_log_error(SE_LOG, "%s: inconsistent record in frame at offset %zu", path, off);
            break;
        }
        off += SE_FRAME_HDR + flen;
    }
    *bytes = off;
    free(buf);
    return rc;
}

/* Loads "snapshot" and replays the logs into the empty in-memory state of s (keys, leases,
 * counters, history). *walnew_exists gets whether "wal.new" exists (a compaction was switching
 * logs); *records and *bytes describe the log appended to next (wal.new if it exists). */
static int se_load(struct se_store *s, int *walnew_exists, uint64_t *records, uint64_t *bytes)
{
    struct stat sb;
    int applied_any = 0, rc;
    char *buf = NULL;
    size_t len = 0;

    rc = sd_read_file(s->snap_path, &buf, &len);
    if (rc == 0) {
        rc = se_snapshot_load(s, (const uint8_t *)buf, len);
        free(buf);
        if (rc != 0) {
            sd_log_error(SE_LOG, "%s: damaged snapshot", s->snap_path);
            return rc;
        }
    } else if (rc != -ENOENT) {
        return rc;
    }
    s->hist_first_rev = s->rev + 1;
    *walnew_exists = stat(s->walnew_path, &sb) == 0;
    rc = se_replay_file(s, s->wal_path, !*walnew_exists, &applied_any, records, bytes);
    if (rc == 0 && *walnew_exists) {
        rc = se_replay_file(s, s->walnew_path, 1, &applied_any, records, bytes);
    }
    return rc;
}

/* ---- repair after a failed append -------------------------------------------------------- */

/* Drops history entries newer than rev (their changes were lost). */
static void se_hist_drop_after(struct se_store *s, int64_t rev)
{
    while (s->hist_n > 0 && se_hist_at(s, s->hist_n - 1)->rev > rev) {
        struct se_rev *r = se_hist_at(s, s->hist_n - 1);
        s->hist_n--;
        s->hist_bytes -= r->bytes;
        se_rev_unref(r);
    }
    if (s->hist_n == 0) {
        s->hist_first_rev = rev + 1;
    }
}

/* Rebuilds keys, leases and counters from disk (mu held, log already cut back to its synced
 * bytes), so the changes of failed records disappear from memory. The history keeps its
 * durable revisions; leases restart their countdown as after a reopen. */
static int se_reload_locked(struct se_store *s)
{
    struct se_store *t = sd_xcalloc(1, sizeof(*t));
    struct se_map map;
    struct se_lease *leases;
    size_t nleases, cap_leases;
    int walnew_exists, rc;
    uint64_t records = 0, bytes = 0;

    t->next_lease = 1;
    t->lim.history_revs = 1; /* the reloaded history is not used */
    t->lim.history_bytes = s->lim.history_bytes;
    t->wal_path = s->wal_path;
    t->walnew_path = s->walnew_path;
    t->snap_path = s->snap_path;
    se_map_init(&t->map, (uint64_t)sd_now_us() ^ (uint64_t)(uintptr_t)t);
    rc = se_load(t, &walnew_exists, &records, &bytes);
    if (rc == 0 && (t->seq != s->synced_seq || t->rev != s->durable_rev || bytes != s->wal_bytes)) {
        sd_log_error(SE_LOG, "%s: the log does not hold what was synced (seq %llu, expected %llu)",
                     s->dir, (unsigned long long)t->seq, (unsigned long long)s->synced_seq);
        rc = SD_ECORRUPT;
    }
    if (rc == 0) {
        map = s->map;
        s->map = t->map;
        t->map = map;
        leases = s->leases;
        nleases = s->nleases;
        cap_leases = s->cap_leases;
        s->leases = t->leases;
        s->nleases = t->nleases;
        s->cap_leases = t->cap_leases;
        t->leases = leases;
        t->nleases = nleases;
        t->cap_leases = cap_leases;
        s->seq = t->seq;
        s->rev = t->rev;
        se_hist_drop_after(s, s->durable_rev);
    }
    se_map_fini(&t->map);
    free(t->leases);
    while (t->hist_n > 0) {
        se_hist_pop(t);
    }
    free(t->hist);
    free(t);
    return rc;
}

/* Repairs the store after a failed append (mu held, no sync or compaction in flight): cuts the
 * log back to its last synced byte through a new descriptor, then rebuilds memory when it held
 * lost changes. On failure it is tried again after SE_PROBE_MS; reads fail meanwhile. */
static void se_repair_locked(struct se_store *s)
{
    const char *path = s->rotated ? s->walnew_path : s->wal_path;
    char self[64];
    int fd = -1, rc = 0;

    if (s->reopen) {
        /* the same file whatever its name now (a compaction may have renamed it) */
        snprintf(self, sizeof(self), "/proc/self/fd/%d", s->wal_fd);
        fd = open(self, O_WRONLY | O_APPEND | O_CLOEXEC);
        rc = fd < 0 ? -errno : 0;
        if (rc == 0 && ftruncate(fd, (off_t)s->wal_bytes) != 0) {
            rc = -errno;
            close(fd);
        }
        if (rc == 0) {
            close(s->wal_fd);
            s->wal_fd = fd;
            s->reopen = 0;
        }
    }
    if (rc == 0 && s->stale) {
        rc = se_reload_locked(s);
        s->stale = rc != 0;
    }
    if (rc != 0 && s->repair_rc == 0) {
        sd_log_error(SE_LOG, "repair of %s: %s; retrying", path, sd_strerror(rc));
    }
    s->repair_rc = rc;
    s->retry_ms = sd_mono_ms() + SE_PROBE_MS;
    pthread_cond_broadcast(&s->sync_cv);
}

/* Tries the log again (mu held, store broken and repaired, no sync in flight): reserves
 * SE_PROBE_BYTES past its end (so a nearly full disk does not pass with a tiny write and fail
 * the next real one), then appends and syncs an empty frame, which replays as nothing. Success
 * accepts writes again. */
static void se_probe_locked(struct se_store *s)
{
    uint8_t hdr[SE_FRAME_HDR] = {0};
    int rc = 0;

    s->retry_ms = sd_mono_ms() + SE_PROBE_MS;
    if (fallocate(s->wal_fd, FALLOC_FL_KEEP_SIZE, (off_t)s->wal_bytes, SE_PROBE_BYTES) != 0 &&
        errno != EOPNOTSUPP) {
        rc = -errno;
    }
    if (rc != 0) {
        se_fail_locked(s, rc);
        return;
    }
    sd_buf_reset(&s->pending);
    se_enc_bytes(&s->pending, hdr, sizeof(hdr));
    se_lead_sync(s);
}

/* ---- background threads ----------------------------------------------------------------- */

/* Revokes lease l under mu as one record; returns the seq to wait for. */
static uint64_t se_revoke_locked(struct se_store *s, struct se_lease *l)
{
    struct se_rec rec;
    int64_t id = l->id;
    struct se_node *n;

    se_rec_begin(s, &rec);
    n = s->map.head->next[0];
    while (n != NULL) {
        struct se_node *next = n->next[0];
        if (n->lease == id) {
            char *key = sd_xstrdup(n->key);
            se_rec_del(s, &rec, key);
            free(key);
        }
        n = next;
    }
    se_rec_lease(s, &rec, SE_REC_REVOKE, id, 0);
    se_lease_remove(s, se_lease_find(s, id));
    return se_rec_end(s, &rec);
}

static void *se_maint_main(void *arg)
{
    struct se_store *s = arg;

    pthread_mutex_lock(&s->mu);
    while (!s->closing) {
        int64_t now = sd_mono_ms();
        uint64_t wait_seq = 0;

        if (s->broken && !s->syncing && !s->compact_busy && now >= s->retry_ms) {
            if (s->reopen || s->stale) {
                se_repair_locked(s);
            } else {
                se_probe_locked(s);
            }
            continue;
        }
        for (size_t i = 0; i < s->nleases && !s->broken;) {
            if (s->leases[i].deadline_ms <= now) {
                sd_log_debug(SE_LOG, "lease %lld expired", (long long)s->leases[i].id);
                wait_seq = se_revoke_locked(s, &s->leases[i]);
            } else {
                i++;
            }
        }
        if (wait_seq != 0) {
            se_wait_durable(s, wait_seq);
        }
        if (s->rotated && !s->compact_busy && !s->broken && now >= s->compact_retry_ms) {
            pthread_mutex_unlock(&s->mu);
            se_compact_run(s);
            pthread_mutex_lock(&s->mu);
            continue;
        }
        if (s->closing) {
            break;
        }
        sd_cond_wait_ms(&s->maint_cv, &s->mu, SE_REAP_MS);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Removes w from the watch array (mu held); returns 1 if it was there. */
static int se_watch_unlink(struct se_store *s, struct sd_watch *w)
{
    for (size_t i = 0; i < s->nwatches; i++) {
        if (s->watches[i] == w) {
            memmove(&s->watches[i], &s->watches[i + 1],
                    (s->nwatches - i - 1) * sizeof(s->watches[0]));
            s->nwatches--;
            return 1;
        }
    }
    return 0;
}

static void se_watch_free(struct sd_watch *w)
{
    free(w->prefix);
    free(w);
}

/* Calls w's callback with mu released; frees w afterwards if it unwatched itself. */
static void se_deliver(struct se_store *s, struct sd_watch *w, const struct sd_watch_event *ev,
                       size_t n, int64_t rev, int rc)
{
    s->cb_running = w;
    pthread_mutex_unlock(&s->mu);
    w->cb(ev, n, rev, rc, w->arg);
    pthread_mutex_lock(&s->mu);
    s->cb_running = NULL;
    if (w->removed) {
        se_watch_free(w);
    }
    pthread_cond_broadcast(&s->idle_cv);
}

/* Finds one revision for one watch and delivers it (mu held). Returns 1 if it did work. */
static int se_dispatch_one(struct se_store *s, struct sd_watch_event **evbuf, size_t *evcap)
{
    for (size_t k = 0; k < s->nwatches; k++) {
        size_t idx = (s->disp_cursor + k) % s->nwatches;
        struct sd_watch *w = s->watches[idx];
        size_t h;

        if (w->ended || w->next_rev > s->durable_rev) {
            continue;
        }
        if (w->next_rev < s->hist_first_rev) {
            w->ended = 1;
            s->disp_cursor = idx + 1;
            se_deliver(s, w, NULL, 0, 0, SD_ECONFLICT);
            return 1;
        }
        for (h = se_hist_lower(s, w->next_rev); h < s->hist_n; h++) {
            struct se_rev *r = se_hist_at(s, h);
            size_t m = 0;

            if (r->rev > s->durable_rev) {
                break;
            }
            w->next_rev = r->rev + 1;
            if (*evcap < r->n) {
                *evcap = r->n;
                *evbuf = sd_xrealloc(*evbuf, *evcap * sizeof((*evbuf)[0]));
            }
            for (size_t i = 0; i < r->n; i++) {
                if (se_has_prefix(r->kvs[i].key, w->prefix, w->plen)) {
                    (*evbuf)[m++] = r->ev[i];
                }
            }
            if (m > 0) {
                r->refs++;
                s->disp_cursor = idx + 1;
                se_deliver(s, w, *evbuf, m, r->rev, 0);
                se_rev_unref(r);
                return 1;
            }
        }
        w->next_rev = s->durable_rev + 1;
    }
    return 0;
}

static void *se_dispatch_main(void *arg)
{
    struct se_store *s = arg;
    struct sd_watch_event *evbuf = NULL;
    size_t evcap = 0;

    pthread_mutex_lock(&s->mu);
    while (!s->closing) {
        if (!se_dispatch_one(s, &evbuf, &evcap)) {
            pthread_cond_wait(&s->watch_cv, &s->mu);
        }
    }
    /* closing: end every remaining watch once */
    for (;;) {
        struct sd_watch *w = NULL;
        for (size_t i = 0; i < s->nwatches; i++) {
            if (!s->watches[i]->ended) {
                w = s->watches[i];
                break;
            }
        }
        if (w == NULL) {
            break;
        }
        w->ended = 1;
        se_deliver(s, w, NULL, 0, 0, SD_ECLOSED);
    }
    pthread_mutex_unlock(&s->mu);
    free(evbuf);
    return NULL;
}

/* ---- ops -------------------------------------------------------------------------------- */

static void se_free_store(struct se_store *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->nwatches; i++) {
        se_watch_free(s->watches[i]);
    }
    free(s->watches);
    while (s->hist_n > 0) {
        se_hist_pop(s);
    }
    free(s->hist);
    se_map_fini(&s->map);
    free(s->leases);
    sd_buf_fini(&s->pending);
    sd_buf_fini(&s->spare);
    if (s->wal_fd >= 0) {
        close(s->wal_fd);
    }
    if (s->lock_fd >= 0) {
        close(s->lock_fd);
    }
    free(s->dir);
    free(s->wal_path);
    free(s->walnew_path);
    free(s->snap_path);
    free(s->lock_path);
    pthread_cond_destroy(&s->sync_cv);
    pthread_cond_destroy(&s->watch_cv);
    pthread_cond_destroy(&s->idle_cv);
    pthread_cond_destroy(&s->maint_cv);
    pthread_cond_destroy(&s->compact_cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static void se_close(void *ctx)
{
    struct se_store *s = ctx;

    if (s == NULL) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->closing = 1;
    pthread_cond_broadcast(&s->maint_cv);
    pthread_cond_broadcast(&s->watch_cv);
    pthread_cond_broadcast(&s->sync_cv);
    pthread_mutex_unlock(&s->mu);
    if (s->maint_started) {
        pthread_join(s->maint_thread, NULL);
    }
    if (s->disp_started) {
        pthread_join(s->disp_thread, NULL);
    }
    pthread_mutex_lock(&s->mu);
    if (s->synced_seq < s->seq) {
        se_wait_durable(s, s->seq);
    }
    pthread_mutex_unlock(&s->mu);
    se_free_store(s);
}

static void se_init_sync(struct se_store *s)
{
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->sync_cv, NULL);
    pthread_cond_init(&s->watch_cv, NULL);
    pthread_cond_init(&s->idle_cv, NULL);
    pthread_cond_init(&s->compact_cv, NULL);
    sd_cond_init_monotonic(&s->maint_cv);
}

/* Removes group and other permissions from the store's directory and files. */
static int se_make_private(const struct se_store *s)
{
    const char *paths[] = {s->dir, s->wal_path, s->walnew_path, s->snap_path, s->lock_path};
    int rc = 0;

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]) && rc == 0; i++) {
        rc = sd_make_private(paths[i]);
    }
    return rc;
}

static int se_open(const struct sd_config *cfg, const char *path, void **ctx)
{
    struct se_store *s = sd_xcalloc(1, sizeof(*s));
    int walnew_exists, rc;
    uint64_t records = 0, bytes = 0;

    (void)cfg;
    *ctx = NULL;
    s->lock_fd = -1;
    s->wal_fd = -1;
    s->next_lease = 1;
    s->hist_first_rev = 1;
    s->lim.wal_max_bytes = 64ull << 20;
    s->lim.wal_max_records = 100000;
    s->lim.history_revs = 10000;
    s->lim.history_bytes = 64u << 20;
    se_map_init(&s->map, (uint64_t)sd_now_us() ^ (uint64_t)(uintptr_t)s);
    se_init_sync(s);
    s->dir = sd_xstrdup(path);
    s->wal_path = sd_xasprintf("%s/wal", path);
    s->walnew_path = sd_xasprintf("%s/wal.new", path);
    s->snap_path = sd_xasprintf("%s/snapshot", path);
    s->lock_path = sd_xasprintf("%s/LOCK", path);

    rc = sd_mkdir_p(path, SD_DIR_MODE);
    if (rc == 0) {
        rc = sd_fsync_parent(path);
    }
    /* the store holds source secrets: stores made by older versions become private */
    if (rc == 0) {
        rc = se_make_private(s);
    }
    if (rc != 0) {
        goto fail;
    }
    s->lock_fd = open(s->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, SD_FILE_MODE);
    if (s->lock_fd < 0) {
        rc = -errno;
        goto fail;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        goto fail;
    }

    rc = se_load(s, &walnew_exists, &records, &bytes);
    if (rc != 0) {
        goto fail;
    }
    s->synced_seq = s->seq;
    s->durable_rev = s->rev;
    s->wal_records = records;
    s->wal_bytes = bytes;
    s->rotated = walnew_exists;
    rc = se_open_wal_file(walnew_exists ? s->walnew_path : s->wal_path, 0, &s->wal_fd);
    if (rc == 0) {
        rc = fsync(s->wal_fd) == 0 ? sd_fsync_dir(path) : -errno;
    }
    if (rc == 0 && walnew_exists) {
        sd_log_info(SE_LOG, "%s: finishing an interrupted compaction", path);
        rc = se_compact_run(s);
    }
    if (rc != 0) {
        goto fail;
    }
    rc = -pthread_create(&s->maint_thread, NULL, se_maint_main, s);
    if (rc != 0) {
        goto fail;
    }
    s->maint_started = 1;
    rc = -pthread_create(&s->disp_thread, NULL, se_dispatch_main, s);
    if (rc != 0) {
        goto fail;
    }
    s->disp_started = 1;
    *ctx = s;
    return 0;

fail:
    if (s->maint_started || s->disp_started) {
        se_close(s);
    } else {
        se_free_store(s);
    }
    return rc;
}

static int se_get(void *ctx, const char *key, struct sd_kv *out)
{
    struct se_store *s = ctx;
    struct se_node *n;
    int rc = sd_state_check_key(key);

    memset(out, 0, sizeof(*out));
    if (rc != 0) {
        return rc;
    }
    pthread_mutex_lock(&s->mu);
    /* a failed append may take back what was seen: read again after the repair */
    while ((rc = se_readable(s)) == 0) {
        n = se_map_find(&s->map, key);
        if (n != NULL) {
            se_kv_copy(out, n);
        }
        rc = se_wait_durable(s, s->seq);
        if (rc == 0 && n == NULL) {
            rc = SD_ENOTFOUND;
        }
        if (rc != SD_EUNHEALTHY) {
            break;
        }
        sd_kv_free(out);
    }
    pthread_mutex_unlock(&s->mu);
    if (rc != 0) {
        sd_kv_free(out);
    }
    return rc;
}

static int se_range(void *ctx, const char *prefix, int64_t limit, struct sd_kvs *out)
{
    struct se_store *s = ctx;
    int rc;

    memset(out, 0, sizeof(*out));
    if (prefix == NULL || limit < 0) {
        return SD_EINVAL;
    }
    pthread_mutex_lock(&s->mu);
    /* a failed append may take back what was seen: read again after the repair */
    while ((rc = se_readable(s)) == 0) {
        se_map_range(&s->map, prefix, limit, out);
        out->rev = s->rev;
        rc = se_wait_durable(s, s->seq);
        if (rc != SD_EUNHEALTHY) {
            break;
        }
        sd_kvs_free(out);
    }
    pthread_mutex_unlock(&s->mu);
    if (rc != 0) {
        sd_kvs_free(out);
    }
    return rc;
}

static int se_put(void *ctx, const char *key, const void *value, size_t len, int64_t lease,
                  int64_t *rev)
{
    struct se_store *s = ctx;
    struct se_rec rec;
    uint64_t seq;
    int rc = sd_state_check_put(key, value, len, lease);

    if (rc != 0) {
        return rc;
    }
    pthread_mutex_lock(&s->mu);
    rc = se_usable(s);
    if (rc == 0 && lease != 0 && !se_lease_live(s, lease)) {
        rc = SD_ENOTFOUND;
    }
    if (rc == 0) {
        se_rec_begin(s, &rec);
        se_rec_put(s, &rec, key, value, len, lease);
        seq = se_rec_end(s, &rec);
        if (rev != NULL) {
            *rev = s->rev;
        }
        rc = se_wait_durable(s, seq);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int se_del(void *ctx, const char *key, int is_prefix, int64_t *deleted, int64_t *rev)
{
    struct se_store *s = ctx;
    struct se_rec rec;
    uint64_t seq;
    int64_t count;
    int rc = is_prefix ? (key == NULL ? SD_EINVAL : 0) : sd_state_check_key(key);

    if (rc != 0) {
        return rc;
    }
    pthread_mutex_lock(&s->mu);
    rc = se_usable(s);
    if (rc == 0) {
        se_rec_begin(s, &rec);
        count = is_prefix ? se_rec_del_prefix(s, &rec, key) : se_rec_del(s, &rec, key);
        seq = se_rec_end(s, &rec);
        if (deleted != NULL) {
            *deleted = count;
        }
        if (rev != NULL) {
            *rev = s->rev;
        }
        rc = se_wait_durable(s, seq);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int se_cmp_holds(struct se_store *s, const struct sd_cmp *c)
{
    struct se_node *n = se_map_find(&s->map, c->key);
    int d;

    if (c->target == SD_CMP_VALUE) {
        size_t m;
        if (n == NULL) {
            return 0;
        }
        m = n->value_len < c->value_len ? n->value_len : c->value_len;
        d = m > 0 ? memcmp(n->value, c->value, m) : 0;
        if (d == 0) {
            d = n->value_len < c->value_len ? -1 : n->value_len > c->value_len;
        }
    } else {
        int64_t v = 0;
        if (n != NULL) {
            v = c->target == SD_CMP_MOD_REV      ? n->mod_rev
                : c->target == SD_CMP_CREATE_REV ? n->create_rev
                                                 : n->version;
        }
        d = v < c->num ? -1 : v > c->num;
    }
    switch (c->result) {
    case SD_CMP_EQUAL:
        return d == 0;
    case SD_CMP_NOT_EQUAL:
        return d != 0;
    case SD_CMP_LESS:
        return d < 0;
    default:
        return d > 0;
    }
}

/* The txn may write (a write op in either branch). */
static int se_txn_writes(const struct sd_txn *txn)
{
    for (size_t i = 0; i < txn->nthen; i++) {
        if (sd_state_op_is_write(&txn->then_ops[i])) {
            return 1;
        }
    }
    for (size_t i = 0; i < txn->nelse; i++) {
        if (sd_state_op_is_write(&txn->else_ops[i])) {
            return 1;
        }
    }
    return 0;
}

static int se_txn(void *ctx, const struct sd_txn *txn, struct sd_txn_result *out)
{
    struct se_store *s = ctx;
    const struct sd_op *ops;
    struct se_rec rec;
    size_t nops, nreads = 0;
    uint64_t seq;
    int ok = 1, rc;

    memset(out, 0, sizeof(*out));
    rc = sd_state_check_txn(txn);
    if (rc != 0) {
        return rc;
    }
    pthread_mutex_lock(&s->mu);
    rc = se_txn_writes(txn) ? se_usable(s) : se_readable(s);
    if (rc != 0) {
        goto out;
    }
    for (size_t i = 0; i < txn->ncmps && ok; i++) {
        ok = se_cmp_holds(s, &txn->cmps[i]);
    }
    ops = ok ? txn->then_ops : txn->else_ops;
    nops = ok ? txn->nthen : txn->nelse;
    for (size_t i = 0; i < nops; i++) {
        if (ops[i].type == SD_OP_PUT && ops[i].lease != 0 && !se_lease_live(s, ops[i].lease)) {
            rc = SD_ENOTFOUND;
            goto out;
        }
        nreads += ops[i].type == SD_OP_GET || ops[i].type == SD_OP_RANGE_PREFIX;
    }
    out->succeeded = ok;
    out->reads = nreads ? sd_xcalloc(nreads, sizeof(out->reads[0])) : NULL;
    se_rec_begin(s, &rec);
    for (size_t i = 0; i < nops; i++) {
        const struct sd_op *op = &ops[i];
        struct se_node *n;
        switch (op->type) {
        case SD_OP_PUT:
            se_rec_put(s, &rec, op->key, op->value, op->value_len, op->lease);
            break;
        case SD_OP_DELETE:
            se_rec_del(s, &rec, op->key);
            break;
        case SD_OP_DELETE_PREFIX:
            se_rec_del_prefix(s, &rec, op->key);
            break;
        case SD_OP_GET:
            n = se_map_find(&s->map, op->key);
            if (n != NULL) {
                out->reads[out->nreads].items = sd_xmalloc(sizeof(struct sd_kv));
                out->reads[out->nreads].n = 1;
                se_kv_copy(&out->reads[out->nreads].items[0], n);
            }
            out->nreads++;
            break;
        case SD_OP_RANGE_PREFIX:
            se_map_range(&s->map, op->key, 0, &out->reads[out->nreads++]);
            break;
        }
    }
    seq = se_rec_end(s, &rec);
    out->rev = s->rev;
    for (size_t i = 0; i < out->nreads; i++) {
        out->reads[i].rev = s->rev;
    }
    rc = se_wait_durable(s, seq);
out:
    pthread_mutex_unlock(&s->mu);
    if (rc != 0) {
        sd_txn_result_free(out);
    }
    return rc;
}

static int se_lease_grant(void *ctx, int64_t ttl_s, int64_t *lease_id)
{
    struct se_store *s = ctx;
    struct se_rec rec;
    uint64_t seq;
    int64_t id;
    int rc;

    *lease_id = 0;
    if (ttl_s <= 0 || ttl_s > INT32_MAX) {
        return SD_EINVAL;
    }
    pthread_mutex_lock(&s->mu);
    rc = se_usable(s);
    if (rc == 0) {
        id = s->next_lease;
        se_rec_begin(s, &rec);
        se_rec_lease(s, &rec, SE_REC_GRANT, id, ttl_s);
        se_lease_add(s, id, ttl_s);
        seq = se_rec_end(s, &rec);
        rc = se_wait_durable(s, seq);
        if (rc == 0) {
            *lease_id = id;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int se_lease_keepalive(void *ctx, int64_t lease_id, int64_t *ttl_s)
{
    struct se_store *s = ctx;
    struct se_lease *l;
    int64_t now = sd_mono_ms();
    int rc;

    pthread_mutex_lock(&s->mu);
    rc = se_readable(s);
    if (rc == 0) {
        l = se_lease_find(s, lease_id);
        if (l == NULL || l->deadline_ms <= now) {
            rc = SD_ENOTFOUND;
        } else {
            l->deadline_ms = now + l->ttl_s * 1000;
            if (ttl_s != NULL) {
                *ttl_s = l->ttl_s;
            }
            /* the lease itself must be durable before it is reported alive */
            rc = se_wait_durable(s, s->seq);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int se_lease_revoke(void *ctx, int64_t lease_id)
{
    struct se_store *s = ctx;
    struct se_lease *l;
    int rc;

    pthread_mutex_lock(&s->mu);
    rc = se_usable(s);
    if (rc == 0) {
        l = se_lease_find(s, lease_id);
        if (l == NULL) {
            rc = SD_ENOTFOUND;
        } else {
            rc = se_wait_durable(s, se_revoke_locked(s, l));
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int se_watch(void *ctx, const char *prefix, int64_t start_rev, sd_watch_fn cb, void *arg,
                    struct sd_watch **out)
{
    struct se_store *s = ctx;
    struct sd_watch *w;
    int rc;

    *out = NULL;
    if (prefix == NULL || cb == NULL || start_rev < 0) {
        return SD_EINVAL;
    }
    w = sd_xcalloc(1, sizeof(*w));
    w->prefix = sd_xstrdup(prefix);
    w->plen = strlen(prefix);
    w->cb = cb;
    w->arg = arg;
    pthread_mutex_lock(&s->mu);
    rc = se_readable(s);
    if (rc == 0) {
        w->next_rev = start_rev > 0 ? start_rev : s->rev + 1;
        if (s->nwatches == s->cap_watches) {
            s->cap_watches = s->cap_watches ? s->cap_watches * 2 : 8;
            s->watches = sd_xrealloc(s->watches, s->cap_watches * sizeof(s->watches[0]));
        }
        s->watches[s->nwatches++] = w;
        pthread_cond_broadcast(&s->watch_cv);
        *out = w;
    }
    pthread_mutex_unlock(&s->mu);
    if (rc != 0) {
        se_watch_free(w);
    }
    return rc;
}

static void se_unwatch(void *ctx, struct sd_watch *w)
{
    struct se_store *s = ctx;

    if (w == NULL) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    se_watch_unlink(s, w);
    if (s->cb_running == w && s->disp_started && pthread_equal(pthread_self(), s->disp_thread)) {
        w->removed = 1; /* inside its own callback: the dispatcher frees it */
    } else {
        while (s->cb_running == w) {
            pthread_cond_wait(&s->idle_cv, &s->mu);
        }
        se_watch_free(w);
    }
    pthread_mutex_unlock(&s->mu);
}

void sd_state_embedded_set_limits(void *ctx, const struct sd_state_embedded_limits *lim)
{
    struct se_store *s = ctx;

    pthread_mutex_lock(&s->mu);
    if (lim->wal_max_bytes) {
        s->lim.wal_max_bytes = lim->wal_max_bytes;
    }
    if (lim->wal_max_records) {
        s->lim.wal_max_records = lim->wal_max_records;
    }
    if (lim->history_revs) {
        s->lim.history_revs = lim->history_revs;
    }
    if (lim->history_bytes) {
        s->lim.history_bytes = lim->history_bytes;
    }
    se_hist_trim(s);
    pthread_mutex_unlock(&s->mu);
}

int sd_state_embedded_compact(void *ctx)
{
    struct se_store *s = ctx;
    int newfd = -1, rc;

    pthread_mutex_lock(&s->mu);
    /* take the sync leader role so no batch is written while the log switches */
    while (s->syncing || s->compact_busy) {
        pthread_cond_wait(s->syncing ? &s->sync_cv : &s->compact_cv, &s->mu);
    }
    rc = se_usable(s);
    if (rc == 0 && !s->rotated) {
        s->syncing = 1;
        pthread_mutex_unlock(&s->mu);
        rc = se_create_walnew(s, &newfd);
        pthread_mutex_lock(&s->mu);
        s->syncing = 0;
        if (rc == 0) {
            close(s->wal_fd);
            s->wal_fd = newfd;
            s->wal_bytes = 0;
            s->wal_records = 0;
            s->rotated = 1;
        }
        pthread_cond_broadcast(&s->sync_cv);
    }
    pthread_mutex_unlock(&s->mu);
    if (rc == 0) {
        rc = se_compact_run(s);
    }
    return rc;
}

void sd_state_embedded_stats(void *ctx, struct sd_state_embedded_stats *out)
{
    struct se_store *s = ctx;

    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    out->wal_bytes = s->wal_bytes;
    pthread_mutex_unlock(&s->mu);
}

static void se_set_health(void *ctx, struct sd_health *h)
{
    struct se_store *s = ctx;

    pthread_mutex_lock(&s->mu);
    s->health = h;
    pthread_mutex_unlock(&s->mu);
}

const struct sd_state_ops sd_state_embedded_ops = {
    .name = "embedded",
    .open = se_open,
    .close = se_close,
    .get = se_get,
    .range = se_range,
    .put = se_put,
    .del = se_del,
    .txn = se_txn,
    .lease_grant = se_lease_grant,
    .lease_keepalive = se_lease_keepalive,
    .lease_revoke = se_lease_revoke,
    .watch = se_watch,
    .unwatch = se_unwatch,
    .set_health = se_set_health,
};
