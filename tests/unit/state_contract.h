/* state_contract.h: the contract test suite every state backend (sd_state_ops) must pass.
 *
 * Header-only (static functions), because each tests/unit/test_*.c is its own executable. A
 * runner defines a struct sc_backend naming a factory that opens a fresh store in a given
 * empty directory, and registers SC_CONTRACT_TESTS(&backend) in its cmocka test array. Each
 * test gets a fresh temp directory (under $SD_TEST_TMPDIR, else /tmp) and a fresh store.
 *
 * DESIGN: tests run one at a time on the cmocka thread; watch callbacks arrive on the store's
 * dispatcher thread and are recorded into a mutex-protected collector that the test waits on
 * with deadlines (never unbounded). Timing-based checks (lease TTLs) poll with deadlines
 * stretched by SD_TEST_TIMEOUT_MULTIPLIER. */
#ifndef STATE_CONTRACT_H
#define STATE_CONTRACT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/sd_error.h"
#include "core/sd_fs.h"
#include "core/sd_time.h"
#include "state/sd_state.h"

/* Opens a fresh store of the backend under test in the empty directory dir. */
typedef int (*sc_open_fn)(const char *dir, struct sd_state **out);

struct sc_backend {
    const char *name;
    sc_open_fn open;
};

/* Per-test fixture. */
struct sc_fixture {
    const struct sc_backend *be;
    char dir[512];
    struct sd_state *st;
};

/* ---- helpers ---------------------------------------------------------------------------- */

static int64_t sc_timeout_ms(int64_t ms)
{
    const char *m = getenv("SD_TEST_TIMEOUT_MULTIPLIER");
    int64_t k = m != NULL ? atoll(m) : 1;

    return ms * (k > 0 ? k : 1);
}

static void sc_sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)((ms % 1000) * 1000000)};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Creates a fresh empty temp directory into buf. */
static void sc_make_tmpdir(char *buf, size_t len, const char *tag)
{
    const char *base = getenv("SD_TEST_TMPDIR");

    if (base == NULL || base[0] == '\0') {
        base = "/tmp";
    }
    assert_int_equal(sd_mkdir_p(base, 0755), 0);
    assert_true((size_t)snprintf(buf, len, "%s/sd-%s-XXXXXX", base, tag) < len);
    assert_non_null(mkdtemp(buf));
}

static int sc_setup(void **state)
{
    const struct sc_backend *be = *state;
    struct sc_fixture *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    fx->be = be;
    sc_make_tmpdir(fx->dir, sizeof(fx->dir), be->name);
    assert_int_equal(be->open(fx->dir, &fx->st), 0);
    *state = fx;
    return 0;
}

static int sc_teardown(void **state)
{
    struct sc_fixture *fx = *state;

    sd_state_close(fx->st);
    sd_rm_rf(fx->dir);
    free(fx);
    return 0;
}

static int64_t sc_put(struct sd_state *st, const char *key, const char *value)
{
    int64_t rev = 0;

    assert_int_equal(sd_state_put(st, key, value, strlen(value), 0, &rev), 0);
    return rev;
}

static int64_t sc_rev(struct sd_state *st)
{
    struct sd_kvs kvs;
    int64_t rev;

    assert_int_equal(sd_state_range(st, "\x7f-no-such-prefix", 0, &kvs), 0);
    rev = kvs.rev;
    sd_kvs_free(&kvs);
    return rev;
}

/* Returns 1 if key exists (its value copied into kv if kv != NULL). */
static int sc_exists(struct sd_state *st, const char *key, struct sd_kv *kv)
{
    struct sd_kv tmp;
    int rc = sd_state_get(st, key, &tmp);

    assert_true(rc == 0 || rc == SD_ENOTFOUND);
    if (rc == 0 && kv != NULL) {
        *kv = tmp;
    } else {
        sd_kv_free(&tmp);
    }
    return rc == 0;
}

static void sc_assert_value(struct sd_state *st, const char *key, const char *value)
{
    struct sd_kv kv;

    assert_int_equal(sd_state_get(st, key, &kv), 0);
    assert_string_equal(kv.key, key);
    assert_int_equal(kv.value_len, strlen(value));
    assert_memory_equal(kv.value, value, strlen(value));
    sd_kv_free(&kv);
}

/* ---- watch collector -------------------------------------------------------------------- */

#define SC_MAX_EVENTS 64

struct sc_event {
    enum sd_watch_event_type type;
    char key[64];
    char value[64];
    int64_t mod_rev;
};

struct sc_batch {
    int64_t rev;
    size_t n;
    struct sc_event ev[8];
};

struct sc_collector {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct sc_batch batches[SC_MAX_EVENTS];
    size_t nbatches;
    int end_rc;    /* rc of the final call, 0 if none */
    int ends;      /* number of final calls */
    int overflow;  /* more batches than fit */
    int bad_order; /* a revision not above the previous one */
    /* optional behaviour from inside the callback */
    struct sd_state *st;
    struct sd_watch **self; /* unwatch this after the first batch */
    int get_ok;             /* the callback could read the store */
};

static void sc_collector_init(struct sc_collector *c)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
}

static void sc_collector_fini(struct sc_collector *c)
{
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

static void sc_collect(const struct sd_watch_event *events, size_t n, int64_t rev, int rc,
                       void *arg)
{
    struct sc_collector *c = arg;
    struct sd_watch *self = NULL;

    if (rc == 0 && c->st != NULL && n > 0 && events[0].type == SD_WATCH_PUT) {
        struct sd_kv kv;
        if (sd_state_get(c->st, events[0].kv->key, &kv) == 0) {
            pthread_mutex_lock(&c->mu);
            c->get_ok++;
            pthread_mutex_unlock(&c->mu);
            sd_kv_free(&kv);
        }
    }
    pthread_mutex_lock(&c->mu);
    if (rc != 0) {
        c->end_rc = rc;
        c->ends++;
    } else if (c->nbatches == SC_MAX_EVENTS) {
        c->overflow = 1;
    } else {
        struct sc_batch *b = &c->batches[c->nbatches];
        if (c->nbatches > 0 && rev <= c->batches[c->nbatches - 1].rev) {
            c->bad_order = 1;
        }
        b->rev = rev;
        b->n = n < 8 ? n : 8;
        for (size_t i = 0; i < b->n; i++) {
            const struct sd_kv *kv = events[i].kv;
            b->ev[i].type = events[i].type;
            snprintf(b->ev[i].key, sizeof(b->ev[i].key), "%s", kv->key);
            snprintf(b->ev[i].value, sizeof(b->ev[i].value), "%.*s", (int)kv->value_len,
                     kv->value != NULL ? kv->value : "");
            b->ev[i].mod_rev = kv->mod_rev;
        }
        c->nbatches++;
        if (c->self != NULL && *c->self != NULL) {
            self = *c->self;
            *c->self = NULL;
        }
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (self != NULL) {
        sd_state_unwatch(c->st, self);
    }
}

/* Waits until the collector holds at least n batches (or ms pass); returns the count. */
static size_t sc_wait_batches(struct sc_collector *c, size_t n, int64_t ms)
{
    int64_t deadline = sd_mono_ms() + sc_timeout_ms(ms);
    size_t got;

    pthread_mutex_lock(&c->mu);
    while (c->nbatches < n && sd_mono_ms() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    got = c->nbatches;
    pthread_mutex_unlock(&c->mu);
    return got;
}

static int sc_wait_end(struct sc_collector *c, int64_t ms)
{
    int64_t deadline = sd_mono_ms() + sc_timeout_ms(ms);
    int rc;

    pthread_mutex_lock(&c->mu);
    while (c->ends == 0 && sd_mono_ms() < deadline) {
        pthread_mutex_unlock(&c->mu);
        sc_sleep_ms(10);
        pthread_mutex_lock(&c->mu);
    }
    rc = c->end_rc;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ---- key-value basics ------------------------------------------------------------------- */

static void sc_test_get_put_delete(void **state)
{
    struct sc_fixture *fx = *state;
    struct sd_state *st = fx->st;
    struct sd_kv kv;
    int64_t rev, deleted = -1, rev2 = -1;

    assert_int_equal(sd_state_get(st, "a", &kv), SD_ENOTFOUND);
    rev = sc_put(st, "a", "one");
    assert_true(rev > 0);
    sc_assert_value(st, "a", "one");
    sc_put(st, "a", "two");
    sc_assert_value(st, "a", "two");

    assert_int_equal(sd_state_del(st, "a", 0, &deleted, &rev2), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(rev2, rev + 2);
    assert_int_equal(sd_state_get(st, "a", &kv), SD_ENOTFOUND);

    /* deleting nothing is fine and makes no revision */
    assert_int_equal(sd_state_del(st, "a", 0, &deleted, &rev2), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(rev2, rev + 2);
    assert_int_equal(sc_rev(st), rev + 2);

    /* requests over etcd's default size limit */
    {
        size_t big = SD_STATE_MAX_REQUEST + 1;
        char *buf = calloc(1, big);
        assert_non_null(buf);
        assert_int_equal(sd_state_put(st, "big", buf, big, 0, NULL), SD_ELIMIT);
        assert_int_equal(sd_state_put(st, "big", buf, 1000000, 0, NULL), 0);
        free(buf);
    }

    /* invalid keys */
    assert_int_equal(sd_state_put(st, "", "x", 1, 0, NULL), SD_EINVAL);
    assert_int_equal(sd_state_get(st, "", &kv), SD_EINVAL);

    /* empty and binary values */
    assert_int_equal(sd_state_put(st, "empty", "", 0, 0, NULL), 0);
    assert_int_equal(sd_state_get(st, "empty", &kv), 0);
    assert_int_equal(kv.value_len, 0);
    assert_non_null(kv.value);
    sd_kv_free(&kv);
    assert_int_equal(sd_state_put(st, "bin", "a\0b\xff", 4, 0, NULL), 0);
    assert_int_equal(sd_state_get(st, "bin", &kv), 0);
    assert_int_equal(kv.value_len, 4);
    assert_memory_equal(kv.value, "a\0b\xff", 4);
    sd_kv_free(&kv);
}

static void sc_test_revisions(void **state)
{
    struct sc_fixture *fx = *state;
    struct sd_state *st = fx->st;
    struct sd_kv kv;
    int64_t r1, r2, r3, r4;

    r1 = sc_put(st, "k", "v1");
    assert_int_equal(sd_state_get(st, "k", &kv), 0);
    assert_int_equal(kv.create_rev, r1);
    assert_int_equal(kv.mod_rev, r1);
    assert_int_equal(kv.version, 1);
    assert_int_equal(kv.lease, 0);
    sd_kv_free(&kv);

    r2 = sc_put(st, "k", "v2");
    assert_int_equal(r2, r1 + 1);
    r3 = sc_put(st, "other", "x");
    assert_int_equal(r3, r2 + 1);
    assert_int_equal(sd_state_get(st, "k", &kv), 0);
    assert_int_equal(kv.create_rev, r1);
    assert_int_equal(kv.mod_rev, r2);
    assert_int_equal(kv.version, 2);
    sd_kv_free(&kv);

    /* delete and re-create starts a new life */
    assert_int_equal(sd_state_del(st, "k", 0, NULL, NULL), 0);
    r4 = sc_put(st, "k", "v3");
    assert_int_equal(r4, r3 + 2);
    assert_int_equal(sd_state_get(st, "k", &kv), 0);
    assert_int_equal(kv.create_rev, r4);
    assert_int_equal(kv.mod_rev, r4);
    assert_int_equal(kv.version, 1);
    sd_kv_free(&kv);
    assert_int_equal(sc_rev(st), r4);
}

static void sc_test_range(void **state)
{
    struct sc_fixture *fx = *state;
    struct sd_state *st = fx->st;
    struct sd_kvs kvs;
    int64_t last;

    sc_put(st, "p/c", "3");
    sc_put(st, "p/a", "1");
    sc_put(st, "q/x", "9");
    sc_put(st, "p", "0");
    last = sc_put(st, "p/b", "2");

    assert_int_equal(sd_state_range(st, "p/", 0, &kvs), 0);
    assert_int_equal(kvs.n, 3);
    assert_string_equal(kvs.items[0].key, "p/a");
    assert_string_equal(kvs.items[1].key, "p/b");
    assert_string_equal(kvs.items[2].key, "p/c");
    assert_string_equal(kvs.items[2].value, "3");
    assert_int_equal(kvs.items[1].mod_rev, last);
    assert_int_equal(kvs.rev, last);
    assert_int_equal(kvs.more, 0);
    sd_kvs_free(&kvs);

    assert_int_equal(sd_state_range(st, "p/", 2, &kvs), 0);
    assert_int_equal(kvs.n, 2);
    assert_int_equal(kvs.more, 1);
    assert_string_equal(kvs.items[1].key, "p/b");
    sd_kvs_free(&kvs);

    assert_int_equal(sd_state_range(st, "p/", 3, &kvs), 0);
    assert_int_equal(kvs.n, 3);
    assert_int_equal(kvs.more, 0);
    sd_kvs_free(&kvs);

    assert_int_equal(sd_state_range(st, "", 0, &kvs), 0);
    assert_int_equal(kvs.n, 5);
    assert_string_equal(kvs.items[0].key, "p");
    assert_string_equal(kvs.items[4].key, "q/x");
    sd_kvs_free(&kvs);

    assert_int_equal(sd_state_range(st, "z", 0, &kvs), 0);
    assert_int_equal(kvs.n, 0);
    assert_int_equal(kvs.rev, last);
    sd_kvs_free(&kvs);

    /* bytewise order: upper case before lower case, '~' after letters */
    sc_put(st, "s/~reset", "");
    sc_put(st, "s/b", "");
    sc_put(st, "s/B", "");
    assert_int_equal(sd_state_range(st, "s/", 0, &kvs), 0);
    assert_int_equal(kvs.n, 3);
    assert_string_equal(kvs.items[0].key, "s/B");
    assert_string_equal(kvs.items[1].key, "s/b");
    assert_string_equal(kvs.items[2].key, "s/~reset");
    sd_kvs_free(&kvs);
}

static void sc_test_delete_prefix(void **state)
{
    struct sc_fixture *fx = *state;
    struct sd_state *st = fx->st;
    struct sd_kvs kvs;
    struct sd_kv kv;
    int64_t deleted = 0, rev = 0, before;

    sc_put(st, "d/1", "a");
    sc_put(st, "d/2", "b");
    sc_put(st, "d/3/x", "c");
    before = sc_put(st, "e/1", "d");

    assert_int_equal(sd_state_del(st, "d/", 1, &deleted, &rev), 0);
    assert_int_equal(deleted, 3);
    assert_int_equal(rev, before + 1);
    assert_int_equal(sd_state_range(st, "", 0, &kvs), 0);
    assert_int_equal(kvs.n, 1);
    assert_string_equal(kvs.items[0].key, "e/1");
    sd_kvs_free(&kvs);

    assert_int_equal(sd_state_del(st, "d/", 1, &deleted, &rev), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(rev, before + 1);

    /* "" deletes everything */
    assert_int_equal(sd_state_del(st, "", 1, &deleted, NULL), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(sd_state_get(st, "e/1", &kv), SD_ENOTFOUND);
}

/* ---- transactions ----------------------------------------------------------------------- */

static int sc_txn_put_if(struct sd_state *st, const struct sd_cmp *cmp, const char *key,
                         const char *value)
{
    struct sd_op put = {SD_OP_PUT, key, value, strlen(value), 0};
    struct sd_txn txn = {cmp, 1, &put, 1, NULL, 0};
    struct sd_txn_result res;
    int ok;

    assert_int_equal(sd_state_txn(st, &txn, &res), 0);
    ok = res.succeeded;
    sd_txn_result_free(&res);
    return ok;
}

static void sc_test_txn_compare(void **state)
{
    struct sc_fixture *fx = *state;
    struct sd_state *st = fx->st;
    struct sd_cmp absent = {"c", SD_CMP_CREATE_REV, SD_CMP_EQUAL, 0, NULL, 0};
    struct sd_cmp cmp;
    struct sd_kv kv;
    int64_t r1, r2;

    /* create if absent */
    assert_true(sc_txn_put_if(st, &absent, "c", "first"));
    assert_false(sc_txn_put_if(st, &absent, "c", "second"));
    sc_assert_value(st, "c", "first");
    assert_int_equal(sd_state_get(st, "c", &kv), 0);
    r1 = kv.mod_rev;
    sd_kv_free(&kv);

    /* compare-and-swap on mod_rev */
    cmp = (struct sd_cmp){"c", SD_CMP_MOD_REV, SD_CMP_EQUAL, r1, NULL, 0};
    assert_true(sc_txn_put_if(st, &cmp, "c", "swapped"));
    assert_false(sc_txn_put_if(st, &cmp, "c", "stale"));
    sc_assert_value(st, "c", "swapped");
    r2 = sc_rev(st);
    cmp = (struct sd_cmp){"c", SD_CMP_MOD_REV, SD_CMP_LESS, r2 + 1, NULL, 0};
    assert_true(sc_txn_put_if(st, &cmp, "x", "1"));
    cmp = (struct sd_cmp){"c", SD_CMP_MOD_REV, SD_CMP_GREATER, r2, NULL, 0};
    assert_false(sc_txn_put_if(st, &cmp, "x", "2"));
    cmp = (struct sd_cmp){"c", SD_CMP_CREATE_REV, SD_CMP_NOT_EQUAL, 0, NULL, 0};
    assert_true(sc_txn_put_if(st, &cmp, "x", "3"));

    /* version */
    cmp = (struct sd_cmp){"c", SD_CMP_VERSION, SD_CMP_EQUAL, 2, NULL, 0};
    assert_true(sc_txn_put_if(st, &cmp, "x", "4"));
    cmp = (struct sd_cmp){"c", SD_CMP_VERSION, SD_CMP_GREATER, 2, NULL, 0};
    assert_false(sc_txn_put_if(st, &cmp, "x", "5"));
    cmp = (struct sd_cmp){"missing", SD_CMP_VERSION, SD_CMP_EQUAL, 0, NULL, 0};
    assert_true(sc_txn_put_if(st, &cmp, "x", "6"));
    cmp = (struct sd_cmp){"missing", SD_CMP_MOD_REV, SD_CMP_LESS, 1, NULL, 0};
    assert_true(sc_txn_put_if(st, &cmp, "x", "7"));

    /* value */
    cmp = (struct sd_cmp){"c", SD_CMP_VALUE, SD_CMP_EQUAL, 0, "swapped", 7};
    assert_true(sc_txn_put_if(st, &cmp, "x", "8"));
    cmp = (struct sd_cmp){"c", SD_CMP_VALUE, SD_CMP_EQUAL, 0, "swap", 4};
    assert_false(sc_txn_put_if(st, &cmp, "x", "9"));
    cmp = (struct sd_cmp){"c", SD_CMP_VALUE, SD_CMP_NOT_EQUAL, 0, "other", 5};
    assert_true(sc_txn_put_if(st, &cmp, "x", "10"));
    cmp = (struct sd_cmp){"c", SD_CMP_VALUE, SD_CMP_GREATER, 0, "swap", 4};
    assert_true(sc_txn_put_if(st, &cmp, "x", "11"));
    cmp = (struct sd_cmp){"c", SD_CMP_VALUE, SD_CMP_LESS, 0, "t", 1};
    assert_true(sc_txn_put_if(st, &cmp, "x", "12"));
    cmp = (struct sd_cmp){"c", SD_CMP_VALUE, SD_CMP_LESS, 0, "a", 1};
    assert_false(sc_txn_put_if(st, &cmp, "x", "13"));
    /* a value compare on a missing key is false, whatever the operator */
    cmp = (struct sd_cmp){"missing", SD_CMP_VALUE, SD_CMP_NOT_EQUAL, 0, "v", 1};
    assert_false(sc_txn_put_if(st, &cmp, "x", "14"));
    sc_assert_value(st, "x", "12");
}

static void sc_test_txn_branches_and_reads(void **state)
{
    struct sc_fixture *fx = *state;
    struct sd_state *st = fx->st;
    struct sd_cmp cmps[2] = {
        {"t/lock", SD_CMP_CREATE_REV, SD_CMP_EQUAL, 0, NULL, 0},
        {"t/other", SD_CMP_VERSION, SD_CMP_EQUAL, 0, NULL, 0},
    };
    struct sd_op then_ops[4] = {
        {SD_OP_PUT, "t/lock", "me", 2, 0},
        {SD_OP_GET, "t/lock", NULL, 0, 0},
        {SD_OP_PUT, "t/a", "A", 1, 0},
        {SD_OP_RANGE_PREFIX, "t/", NULL, 0, 0},
    };
    struct sd_op else_ops[2] = {
        {SD_OP_GET, "t/lock", NULL, 0, 0},
        {SD_OP_GET, "t/missing", NULL, 0, 0},
    };
    struct sd_txn txn = {cmps, 2, then_ops, 4, else_ops, 2};
    struct sd_txn_result res;
    int64_t before = sc_rev(st);

    assert_int_equal(sd_state_txn(st, &txn, &res), 0);
    assert_true(res.succeeded);
    assert_int_equal(res.rev, before + 1);
    assert_int_equal(res.nreads, 2);
    assert_int_equal(res.reads[0].n, 1);
    assert_string_equal(res.reads[0].items[0].value, "me");
    assert_int_equal(res.reads[0].items[0].mod_rev, before + 1);
    assert_int_equal(res.reads[1].n, 2);
    assert_string_equal(res.reads[1].items[0].key, "t/a");
    assert_string_equal(res.reads[1].items[1].key, "t/lock");
    sd_txn_result_free(&res);

    /* second time the lock exists: else branch, read-only, no new revision */
    assert_int_equal(sd_state_txn(st, &txn, &res), 0);
    assert_false(res.succeeded);
    assert_int_equal(res.rev, before + 1);
    assert_int_equal(res.nreads, 2);
    assert_int_equal(res.reads[0].n, 1);
    assert_string_equal(res.reads[0].items[0].value, "me");
    assert_int_equal(res.reads[1].n, 0);
    sd_txn_result_free(&res);
    assert_int_equal(sc_rev(st), before + 1);

    /* no compares: then branch always */
    txn = (struct sd_txn){NULL, 0, else_ops, 1, NULL, 0};
    assert_int_equal(sd_state_txn(st, &txn, &res), 0);
    assert_true(res.succeeded);
    assert_int_equal(res.nreads, 1);
    sd_txn_result_free(&res);
}

static void sc_test_txn_invalid(void **state)
{
    struct sc_fixture *fx = *state;
    struct sd_state *st = fx->st;
    struct sd_op dup[2] = {
        {SD_OP_PUT, "k", "1", 1, 0},
        {SD_OP_PUT, "k", "2", 1, 0},
    };
    struct sd_op put_in_del[2] = {
        {SD_OP_DELETE_PREFIX, "k/", NULL, 0, 0},
        {SD_OP_PUT, "k/x", "2", 1, 0},
    };
    struct sd_op put_del[2] = {
        {SD_OP_PUT, "k", "1", 1, 0},
        {SD_OP_DELETE, "k", NULL, 0, 0},
    };
    struct sd_op bad_lease = {SD_OP_PUT, "k", "1", 1, 987654321};
    struct sd_op many[SD_STATE_MAX_TXN_OPS + 1];
    struct sd_txn txn = {NULL, 0, dup, 2, NULL, 0};
    struct sd_txn_result res;
    char keys[SD_STATE_MAX_TXN_OPS + 1][8];
    int64_t before = sc_rev(st);

    assert_int_equal(sd_state_txn(st, &txn, &res), SD_EINVAL);
    /* the branch not taken is checked too */
    txn = (struct sd_txn){NULL, 0, NULL, 0, dup, 2};
    assert_int_equal(sd_state_txn(st, &txn, &res), SD_EINVAL);
    txn = (struct sd_txn){NULL, 0, put_in_del, 2, NULL, 0};
    assert_int_equal(sd_state_txn(st, &txn, &res), SD_EINVAL);
    txn = (struct sd_txn){NULL, 0, put_del, 2, NULL, 0};
    assert_int_equal(sd_state_txn(st, &txn, &res), SD_EINVAL);
    txn = (struct sd_txn){NULL, 0, &bad_lease, 1, NULL, 0};
    assert_int_equal(sd_state_txn(st, &txn, &res), SD_ENOTFOUND);
    assert_int_equal(sd_state_put(st, "k", "1", 1, 987654321, NULL), SD_ENOTFOUND);

    for (size_t i = 0; i < SD_STATE_MAX_TXN_OPS + 1; i++) {
        snprintf(keys[i], sizeof(keys[i]), "m%zu", i);
        many[i] = (struct sd_op){SD_OP_PUT, keys[i], "v", 1, 0};
    }
    txn = (struct sd_txn){NULL, 0, many, SD_STATE_MAX_TXN_OPS + 1, NULL, 0};
    assert_int_equal(sd_state_txn(st, &txn, &res), SD_ELIMIT);
    assert_int_equal(sc_rev(st), before);
    assert_int_equal(sd_state_get(st, "k", &(struct sd_kv){0}), SD_ENOTFOUND);

    /* exactly the limit is fine, and is one revision */
    txn = (struct sd_txn){NULL, 0, many, SD_STATE_MAX_TXN_OPS, NULL, 0};
    assert_int_equal(sd_state_txn(st, &txn, &res), 0);
    assert_int_equal(res.rev, before + 1);
    sd_txn_result_free(&res);
}

static void sc_test_txn_one_revision(void **state)
{
    struct sc_fixture *fx = *state;
    struct sd_state *st = fx->st;
    struct sd_op ops[4] = {
        {SD_OP_PUT, "r/a", "1", 1, 0},
        {SD_OP_PUT, "r/b", "2", 1, 0},
        {SD_OP_DELETE, "r/old", NULL, 0, 0},
        {SD_OP_PUT, "r/c", "3", 1, 0},
    };
    struct sd_op del_missing = {SD_OP_DELETE, "r/none", NULL, 0, 0};
    struct sd_cmp never = {"r/a", SD_CMP_VERSION, SD_CMP_EQUAL, 100, NULL, 0};
    struct sd_txn txn = {NULL, 0, ops, 4, NULL, 0};
    struct sd_txn_result res;
    struct sd_kvs kvs;
    int64_t before;

    sc_put(st, "r/old", "x");
    before = sc_rev(st);
    assert_int_equal(sd_state_txn(st, &txn, &res), 0);
    assert_int_equal(res.rev, before + 1);
    sd_txn_result_free(&res);
    assert_int_equal(sd_state_range(st, "r/", 0, &kvs), 0);
    assert_int_equal(kvs.n, 3);
    for (size_t i = 0; i < kvs.n; i++) {
        assert_int_equal(kvs.items[i].mod_rev, before + 1);
        assert_int_equal(kvs.items[i].create_rev, before + 1);
    }
    assert_int_equal(kvs.rev, before + 1);
    sd_kvs_free(&kvs);

    /* failed compare with an empty else, and a txn deleting nothing: no revision */
    txn = (struct sd_txn){&never, 1, ops, 4, NULL, 0};
    assert_int_equal(sd_state_txn(st, &txn, &res), 0);
    assert_false(res.succeeded);
    assert_int_equal(res.rev, before + 1);
    sd_txn_result_free(&res);
    txn = (struct sd_txn){NULL, 0, &del_missing, 1, NULL, 0};
    assert_int_equal(sd_state_txn(st, &txn, &res), 0);
    assert_int_equal(res.rev, before + 1);
    sd_txn_result_free(&res);
    assert_int_equal(sc_rev(st), before + 1);
}

/* ---- leases ----------------------------------------------------------------------------- */

static void sc_test_lease_expiry(void **state)
{
    struct sc_fixture *fx = *state;
    struct sd_state *st = fx->st;
    int64_t lease = 0, ttl = 0, start, deadline, before;
    struct sd_kv kv;

    assert_int_equal(sd_state_lease_grant(st, 0, &lease), SD_EINVAL);
    start = sd_mono_ms();
    assert_int_equal(sd_state_lease_grant(st, 1, &lease), 0);
    assert_true(lease != 0);
    assert_int_equal(sd_state_put(st, "l/node", "up", 2, lease, NULL), 0);
    sc_put(st, "l/keep", "x");
    assert_int_equal(sd_state_get(st, "l/node", &kv), 0);
    assert_int_equal(kv.lease, lease);
    sd_kv_free(&kv);
    before = sc_rev(st);

    deadline = start + sc_timeout_ms(5000);
    while (sc_exists(st, "l/node", NULL) && sd_mono_ms() < deadline) {
        sc_sleep_ms(50);
    }
    assert_false(sc_exists(st, "l/node", NULL));
    assert_true(sd_mono_ms() - start >= 900); /* not before its TTL */
    assert_true(sc_exists(st, "l/keep", NULL));
    assert_int_equal(sc_rev(st), before + 1);
    assert_int_equal(sd_state_lease_keepalive(st, lease, &ttl), SD_ENOTFOUND);
    assert_int_equal(sd_state_put(st, "l/node", "up", 2, lease, NULL), SD_ENOTFOUND);
}

static void sc_test_lease_keepalive(void **state)
{
    struct sc_fixture *fx = *state;
    struct sd_state *st = fx->st;
    int64_t lease = 0, ttl = 0, end, deadline;

    assert_int_equal(sd_state_lease_grant(st, 1, &lease), 0);
    assert_int_equal(sd_state_put(st, "ka/node", "up", 2, lease, NULL), 0);
    end = sd_mono_ms() + 2500;
    while (sd_mono_ms() < end) {
        assert_int_equal(sd_state_lease_keepalive(st, lease, &ttl), 0);
        assert_int_equal(ttl, 1);
        assert_true(sc_exists(st, "ka/node", NULL));
        sc_sleep_ms(250);
    }
    assert_true(sc_exists(st, "ka/node", NULL));
    deadline = sd_mono_ms() + sc_timeout_ms(5000);
    while (sc_exists(st, "ka/node", NULL) && sd_mono_ms() < deadline) {
        sc_sleep_ms(50);
    }
    assert_false(sc_exists(st, "ka/node", NULL));
    assert_int_equal(sd_state_lease_keepalive(st, lease, &ttl), SD_ENOTFOUND);
    assert_int_equal(sd_state_lease_keepalive(st, 424242, &ttl), SD_ENOTFOUND);
}

static void sc_test_lease_revoke(void **state)
{
    struct sc_fixture *fx = *state;
    struct sd_state *st = fx->st;
    int64_t lease = 0, other = 0, before;
    struct sc_collector c;
    struct sd_watch *w = NULL;

    sc_collector_init(&c);
    assert_int_equal(sd_state_lease_grant(st, 60, &lease), 0);
    assert_int_equal(sd_state_lease_grant(st, 60, &other), 0);
    assert_true(other != lease);
    assert_int_equal(sd_state_put(st, "rv/a", "1", 1, lease, NULL), 0);
    assert_int_equal(sd_state_put(st, "rv/b", "2", 1, lease, NULL), 0);
    assert_int_equal(sd_state_put(st, "rv/c", "3", 1, other, NULL), 0);
    sc_put(st, "rv/d", "4");
    /* a put without lease detaches the key from its lease */
    assert_int_equal(sd_state_put(st, "rv/e", "5", 1, lease, NULL), 0);
    sc_put(st, "rv/e", "5");
    before = sc_rev(st);
    assert_int_equal(sd_state_watch(st, "rv/", 0, sc_collect, &c, &w), 0);

    assert_int_equal(sd_state_lease_revoke(st, lease), 0);
    assert_int_equal(sc_rev(st), before + 1);
    assert_false(sc_exists(st, "rv/a", NULL));
    assert_false(sc_exists(st, "rv/b", NULL));
    assert_true(sc_exists(st, "rv/c", NULL));
    assert_true(sc_exists(st, "rv/d", NULL));
    assert_true(sc_exists(st, "rv/e", NULL));
    assert_int_equal(sd_state_lease_revoke(st, lease), SD_ENOTFOUND);
    assert_int_equal(sd_state_lease_keepalive(st, lease, NULL), SD_ENOTFOUND);
    assert_int_equal(sd_state_put(st, "rv/a", "1", 1, lease, NULL), SD_ENOTFOUND);
    assert_int_equal(sd_state_lease_keepalive(st, other, NULL), 0);

    /* the revocation is one watch revision with two deletes */
    assert_int_equal(sc_wait_batches(&c, 1, 5000), 1);
    assert_int_equal(c.batches[0].rev, before + 1);
    assert_int_equal(c.batches[0].n, 2);
    assert_int_equal(c.batches[0].ev[0].type, SD_WATCH_DELETE);
    assert_int_equal(c.batches[0].ev[1].type, SD_WATCH_DELETE);
    assert_int_equal(c.batches[0].ev[0].mod_rev, before + 1);
    sd_state_unwatch(st, w);

    /* revoking a lease without keys changes no revision */
    assert_int_equal(sd_state_lease_grant(st, 60, &lease), 0);
    assert_int_equal(sd_state_lease_revoke(st, lease), 0);
    assert_int_equal(sc_rev(st), before + 1);
    sc_collector_fini(&c);
}

/* ---- watches ---------------------------------------------------------------------------- */

static void sc_test_watch_prefix_order(void **state)
{
    struct sc_fixture *fx = *state;
    struct sd_state *st = fx->st;
    struct sd_op ops[3] = {
        {SD_OP_PUT, "w/b", "B", 1, 0},
        {SD_OP_PUT, "w/c", "C", 1, 0},
        {SD_OP_DELETE, "w/a", NULL, 0, 0},
    };
    struct sd_txn txn = {NULL, 0, ops, 3, NULL, 0};
    struct sd_txn_result res;
    struct sc_collector c;
    struct sd_watch *w = NULL;
    int64_t r1, r3, r4;

    sc_collector_init(&c);
    sc_put(st, "w/old", "before the watch");
    assert_int_equal(sd_state_watch(st, "w/", 0, sc_collect, &c, &w), 0);
    r1 = sc_put(st, "w/a", "A");
    sc_put(st, "x/a", "not watched");
    assert_int_equal(sd_state_txn(st, &txn, &res), 0);
    r3 = res.rev;
    sd_txn_result_free(&res);
    assert_int_equal(sd_state_del(st, "w/", 1, NULL, &r4), 0);

    assert_int_equal(sc_wait_batches(&c, 3, 5000), 3);
    sc_sleep_ms(100);
    pthread_mutex_lock(&c.mu);
    assert_int_equal(c.nbatches, 3);
    assert_false(c.bad_order);
    assert_int_equal(c.batches[0].rev, r1);
    assert_int_equal(c.batches[0].n, 1);
    assert_int_equal(c.batches[0].ev[0].type, SD_WATCH_PUT);
    assert_string_equal(c.batches[0].ev[0].key, "w/a");
    assert_string_equal(c.batches[0].ev[0].value, "A");
    assert_int_equal(c.batches[0].ev[0].mod_rev, r1);
    assert_int_equal(c.batches[1].rev, r3);
    assert_int_equal(c.batches[1].n, 3);
    assert_string_equal(c.batches[1].ev[0].key, "w/b");
    assert_string_equal(c.batches[1].ev[1].key, "w/c");
    assert_int_equal(c.batches[1].ev[2].type, SD_WATCH_DELETE);
    assert_string_equal(c.batches[1].ev[2].key, "w/a");
    assert_int_equal(c.batches[1].ev[2].mod_rev, r3);
    assert_int_equal(c.batches[2].rev, r4);
    assert_int_equal(c.batches[2].n, 3); /* w/b, w/c, w/old */
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(c.batches[2].ev[i].type, SD_WATCH_DELETE);
    }
    pthread_mutex_unlock(&c.mu);
    sd_state_unwatch(st, w);
    sc_collector_fini(&c);
}

static void sc_test_watch_replay(void **state)
{
    struct sc_fixture *fx = *state;
    struct sd_state *st = fx->st;
    struct sc_collector c;
    struct sd_watch *w = NULL;
    int64_t revs[5], r6;
    char key[16];

    sc_collector_init(&c);
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "h/%d", i);
        revs[i] = sc_put(st, key, "v");
        sc_put(st, "other", "v");
    }
    assert_int_equal(sd_state_watch(st, "h/", revs[2], sc_collect, &c, &w), 0);
    assert_int_equal(sc_wait_batches(&c, 3, 5000), 3);
    r6 = sc_put(st, "h/new", "v");
    assert_int_equal(sc_wait_batches(&c, 4, 5000), 4);
    pthread_mutex_lock(&c.mu);
    assert_int_equal(c.batches[0].rev, revs[2]);
    assert_string_equal(c.batches[0].ev[0].key, "h/2");
    assert_int_equal(c.batches[1].rev, revs[3]);
    assert_int_equal(c.batches[2].rev, revs[4]);
    assert_int_equal(c.batches[3].rev, r6);
    assert_false(c.bad_order);
    assert_int_equal(c.ends, 0);
    pthread_mutex_unlock(&c.mu);
    sd_state_unwatch(st, w);
    sc_collector_fini(&c);
}

static void sc_test_unwatch(void **state)
{
    struct sc_fixture *fx = *state;
    struct sd_state *st = fx->st;
    struct sc_collector c, self;
    struct sd_watch *w = NULL, *ws = NULL;

    sc_collector_init(&c);
    sc_collector_init(&self);
    /* "self" reads the store from its callback and unwatches itself after one batch */
    self.st = st;
    self.self = &ws;
    assert_int_equal(sd_state_watch(st, "u/", 0, sc_collect, &c, &w), 0);
    assert_int_equal(sd_state_watch(st, "u/", 0, sc_collect, &self, &ws), 0);
    sc_put(st, "u/1", "a");
    assert_int_equal(sc_wait_batches(&c, 1, 5000), 1);
    assert_int_equal(sc_wait_batches(&self, 1, 5000), 1);
    sd_state_unwatch(st, w);
    sc_put(st, "u/2", "b");
    sc_put(st, "u/3", "c");
    sc_sleep_ms(200);
    pthread_mutex_lock(&c.mu);
    assert_int_equal(c.nbatches, 1);
    pthread_mutex_unlock(&c.mu);
    pthread_mutex_lock(&self.mu);
    assert_int_equal(self.nbatches, 1);
    assert_int_equal(self.get_ok, 1);
    assert_null(ws);
    pthread_mutex_unlock(&self.mu);
    sd_state_unwatch(st, NULL);
    sc_collector_fini(&c);
    sc_collector_fini(&self);
}

static void sc_test_watch_ends_on_close(void **state)
{
    struct sc_fixture *fx = *state;
    struct sc_collector c;
    struct sd_watch *w = NULL;

    sc_collector_init(&c);
    assert_int_equal(sd_state_watch(fx->st, "", 0, sc_collect, &c, &w), 0);
    sd_state_close(fx->st);
    fx->st = NULL;
    assert_int_equal(c.ends, 1);
    assert_true(c.end_rc < 0);
    assert_int_equal(c.nbatches, 0);
    sc_collector_fini(&c);
}

/* ---- concurrency ------------------------------------------------------------------------ */

#define SC_CAS_THREADS 4
#define SC_CAS_ROUNDS 500

struct sc_cas_arg {
    struct sd_state *st;
    int failures;
    int conflicts;
};

static void *sc_cas_main(void *p)
{
    struct sc_cas_arg *a = p;
    struct sd_op get = {SD_OP_GET, "cnt", NULL, 0, 0};
    int64_t mod_rev = 0, value = 0;

    /* first learn the current state, then CAS; a failed compare returns the fresh value */
    for (int done = 0; done < SC_CAS_ROUNDS;) {
        char buf[32];
        struct sd_cmp cmp = {"cnt", SD_CMP_MOD_REV, SD_CMP_EQUAL, mod_rev, NULL, 0};
        struct sd_op put;
        struct sd_txn txn;
        struct sd_txn_result res;

        snprintf(buf, sizeof(buf), "%lld", (long long)(value + 1));
        put = (struct sd_op){SD_OP_PUT, "cnt", buf, strlen(buf), 0};
        txn = (struct sd_txn){&cmp, 1, &put, 1, &get, 1};
        if (sd_state_txn(a->st, &txn, &res) != 0) {
            a->failures++;
            return NULL;
        }
        if (res.succeeded) {
            mod_rev = res.rev;
            value++;
            done++;
        } else {
            a->conflicts++;
            if (res.nreads == 1 && res.reads[0].n == 1) {
                mod_rev = res.reads[0].items[0].mod_rev;
                value = atoll(res.reads[0].items[0].value);
            } else {
                mod_rev = 0;
                value = 0;
            }
        }
        sd_txn_result_free(&res);
    }
    return NULL;
}

static void sc_test_concurrent_cas(void **state)
{
    struct sc_fixture *fx = *state;
    pthread_t th[SC_CAS_THREADS];
    struct sc_cas_arg args[SC_CAS_THREADS];
    struct sd_kv kv;

    for (int i = 0; i < SC_CAS_THREADS; i++) {
        args[i] = (struct sc_cas_arg){fx->st, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, sc_cas_main, &args[i]), 0);
    }
    for (int i = 0; i < SC_CAS_THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    assert_int_equal(sd_state_get(fx->st, "cnt", &kv), 0);
    assert_int_equal(atoll(kv.value), SC_CAS_THREADS * SC_CAS_ROUNDS);
    assert_int_equal(kv.version, SC_CAS_THREADS * SC_CAS_ROUNDS);
    sd_kv_free(&kv);
}

/* The whole suite for one backend, for a cmocka test array. */
#define SC_TEST(f, be) cmocka_unit_test_prestate_setup_teardown(f, sc_setup, sc_teardown, (be))
#define SC_CONTRACT_TESTS(be)                                                                      \
    SC_TEST(sc_test_get_put_delete, be), SC_TEST(sc_test_revisions, be),                           \
        SC_TEST(sc_test_range, be), SC_TEST(sc_test_delete_prefix, be),                            \
        SC_TEST(sc_test_txn_compare, be), SC_TEST(sc_test_txn_branches_and_reads, be),             \
        SC_TEST(sc_test_txn_invalid, be), SC_TEST(sc_test_txn_one_revision, be),                   \
        SC_TEST(sc_test_lease_expiry, be), SC_TEST(sc_test_lease_keepalive, be),                   \
        SC_TEST(sc_test_lease_revoke, be), SC_TEST(sc_test_watch_prefix_order, be),                \
        SC_TEST(sc_test_watch_replay, be), SC_TEST(sc_test_unwatch, be),                           \
        SC_TEST(sc_test_watch_ends_on_close, be), SC_TEST(sc_test_concurrent_cas, be)

#endif
