/* staging_contract.h: the contract test suite every staging backend (sd_staging_ops) must pass.
 *
 * Header-only (static functions), because each tests/unit/test_*.c is its own executable. A
 * runner defines a struct stc_backend whose factory opens a fresh, empty store, and registers
 * STC_CONTRACT_TESTS(&backend) in its cmocka test array. Each test gets a fresh scratch directory
 * (under $SD_TEST_TMPDIR, else /tmp): the factory may keep the store there (local) or ignore it
 * (s3: a fresh bucket or key prefix per call); the suite writes its input files into
 * <scratch>/in. Teardown deletes every object (del_prefix "") before closing the store.
 *
 * DESIGN: tests run on the cmocka thread. The concurrency tests start plain pthreads that only
 * record return codes; every assertion runs on the cmocka thread after the joins, because cmocka
 * assertions are not thread-safe. Nothing here depends on timing. */
#ifndef STAGING_CONTRACT_H
#define STAGING_CONTRACT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/sd_error.h"
#include "core/sd_fs.h"
#include "staging/sd_staging.h"

struct stc_backend;

/* Opens a fresh, empty store of the backend under test; scratch is a fresh empty directory the
 * factory may use. Returns 0 with *out set, or an error code. */
typedef int (*stc_open_fn)(const struct stc_backend *be, const char *scratch,
                           struct sd_staging **out);

struct stc_backend {
    const char *name;
    stc_open_fn open;
    void *arg; /* for the factory (e.g. an S3 endpoint) */
};

/* Per-test fixture. */
struct stc_fixture {
    const struct stc_backend *be;
    char dir[512]; /* scratch */
    char in[600];  /* <scratch>/in: input files for put_files */
    unsigned nfiles;
    struct sd_staging *st;
};

#define STC_MIB (1024 * 1024)

/* ---- helpers ---------------------------------------------------------------------------- */

/* Creates a fresh empty temp directory into buf. */
static void stc_make_tmpdir(char *buf, size_t len, const char *tag)
{
    const char *base = getenv("SD_TEST_TMPDIR");

    if (base == NULL || base[0] == '\0') {
        base = "/tmp";
    }
    assert_int_equal(sd_mkdir_p(base, 0755), 0);
    assert_true((size_t)snprintf(buf, len, "%s/sd-staging-%s-XXXXXX", base, tag) < len);
    assert_non_null(mkdtemp(buf));
}

static int stc_setup(void **state)
{
    const struct stc_backend *be = *state;
    struct stc_fixture *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    fx->be = be;
    stc_make_tmpdir(fx->dir, sizeof(fx->dir), be->name);
    assert_true((size_t)snprintf(fx->in, sizeof(fx->in), "%s/in", fx->dir) < sizeof(fx->in));
    assert_int_equal(sd_mkdir_p(fx->in, 0755), 0);
    assert_int_equal(be->open(be, fx->dir, &fx->st), 0);
    assert_non_null(fx->st);
    *state = fx;
    return 0;
}

static int stc_teardown(void **state)
{
    struct stc_fixture *fx = *state;

    if (fx->st != NULL) {
        sd_staging_del_prefix(fx->st, "");
        sd_staging_close(fx->st);
    }
    sd_rm_rf(fx->dir);
    free(fx);
    return 0;
}

/* Fills buf with len pseudo-random bytes determined by seed (xorshift64). */
static void stc_fill(void *buf, size_t len, uint64_t seed)
{
    unsigned char *p = buf;
    uint64_t x = seed * UINT64_C(0x9e3779b97f4a7c15) + 1;

    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (unsigned char)(x >> 24);
    }
}

/* Writes an input file with the given bytes under dir; returns its owned path. Thread-safe as
 * long as names differ (name is derived from tag and n). Returns NULL on failure. */
static char *stc_write_input_at(const char *dir, const char *tag, unsigned n, const void *data,
                                size_t len)
{
    char *path = malloc(strlen(dir) + strlen(tag) + 32);
    int fd;

    if (path == NULL) {
        return NULL;
    }
    sprintf(path, "%s/%s-%u.bin", dir, tag, n);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || sd_write_all(fd, data, len) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        free(path);
        return NULL;
    }
    close(fd);
    return path;
}

/* Writes an input file with the given bytes; returns its owned path. */
static char *stc_input(struct stc_fixture *fx, const void *data, size_t len)
{
    char *path = stc_write_input_at(fx->in, "f", fx->nfiles++, data, len);

    assert_non_null(path);
    return path;
}

/* Puts the C string s as object key and checks the reported size. */
static void stc_put_str(struct stc_fixture *fx, const char *key, const char *s)
{
    char *path = stc_input(fx, s, strlen(s));
    const char *paths[1] = {path};
    uint64_t size = UINT64_MAX;

    assert_int_equal(sd_staging_put_files(fx->st, key, paths, 1, &size), 0);
    assert_int_equal(size, strlen(s));
    free(path);
}

/* Reads object key whole, chunk bytes per read call; returns owned bytes (NUL-terminated) and
 * their count in *len. */
static char *stc_read_all(struct sd_staging *st, const char *key, size_t chunk, size_t *len)
{
    struct sd_staging_reader *r = NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);

    assert_non_null(buf);
    assert_int_equal(sd_staging_open_read(st, key, &r), 0);
    assert_non_null(r);
    for (;;) {
        ssize_t got;

        if (cap - n < chunk) {
            cap = cap * 2 + chunk;
            buf = realloc(buf, cap + 1);
            assert_non_null(buf);
        }
        got = sd_staging_read(st, r, buf + n, chunk);
        assert_true(got >= 0);
        if (got == 0) {
            break;
        }
        assert_true((size_t)got <= chunk);
        n += (size_t)got;
    }
    /* the end stays the end */
    assert_int_equal(sd_staging_read(st, r, buf + n, chunk), 0);
    sd_staging_close_read(st, r);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Asserts that object key holds exactly data[0..len) (by head and by reading it). */
static void stc_expect(struct sd_staging *st, const char *key, const void *data, size_t len)
{
    uint64_t size = UINT64_MAX;
    size_t got_len;
    char *got;

    assert_int_equal(sd_staging_head(st, key, &size), 0);
    assert_int_equal(size, len);
    got = stc_read_all(st, key, 1000, &got_len);
    assert_int_equal(got_len, len);
    assert_memory_equal(got, data, len);
    free(got);
}

static void stc_expect_str(struct sd_staging *st, const char *key, const char *s)
{
    stc_expect(st, key, s, strlen(s));
}

/* Asserts that list(prefix) returns exactly expected[0..n) in that order. */
static void stc_expect_list(struct sd_staging *st, const char *prefix, const char *const *expected,
                            size_t n)
{
    char **keys = (char **)1;
    size_t got = SIZE_MAX;

    assert_int_equal(sd_staging_list(st, prefix, &keys, &got), 0);
    if (got != n) {
        for (size_t i = 0; i < got; i++) {
            print_message("list(%s)[%zu] = %s\n", prefix, i, keys[i]);
        }
    }
    assert_int_equal(got, n);
    if (n == 0) {
        assert_null(keys);
    }
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(keys[i], expected[i]);
    }
    sd_staging_keys_free(keys, got);
}

static void stc_expect_missing(struct sd_staging *st, const char *key)
{
    struct sd_staging_reader *r = (struct sd_staging_reader *)1;
    uint64_t size = 7;

    assert_int_equal(sd_staging_head(st, key, &size), SD_ENOTFOUND);
    assert_int_equal(sd_staging_open_read(st, key, &r), SD_ENOTFOUND);
    assert_null(r);
}

/* ---- tests ------------------------------------------------------------------------------ */

/* One file in, the same bytes out; head reports the size. */
static void stc_test_put_one(void **state)
{
    struct stc_fixture *fx = *state;
    static const char data[] = "a,b,c\n1,2,3\n";

    stc_put_str(fx, "1/2/src/snk/2024-01-01T10:00:00.000Z/2024-01-01T10:00:00.000Z_vol.gz", data);
    stc_expect_str(fx->st, "1/2/src/snk/2024-01-01T10:00:00.000Z/2024-01-01T10:00:00.000Z_vol.gz",
                   data);
    /* a NULL size pointer is fine */
    {
        char *path = stc_input(fx, "x", 1);
        const char *paths[1] = {path};

        assert_int_equal(sd_staging_put_files(fx->st, "nosize", paths, 1, NULL), 0);
        assert_int_equal(sd_staging_head(fx->st, "nosize", NULL), 0);
        free(path);
    }
}

/* Three files are stored as their concatenation, in order. */
static void stc_test_put_three(void **state)
{
    struct stc_fixture *fx = *state;
    size_t lens[3] = {1000, 1, 70000};
    char *paths[3];
    char *all = malloc(lens[0] + lens[1] + lens[2]);
    size_t off = 0;
    uint64_t size = 0;

    assert_non_null(all);
    for (int i = 0; i < 3; i++) {
        stc_fill(all + off, lens[i], (uint64_t)i + 10);
        paths[i] = stc_input(fx, all + off, lens[i]);
        off += lens[i];
    }
    assert_int_equal(
        sd_staging_put_files(fx->st, "three/k.gz", (const char *const *)paths, 3, &size), 0);
    assert_int_equal(size, off);
    stc_expect(fx->st, "three/k.gz", all, off);
    /* order matters */
    {
        const char *rev[3] = {paths[2], paths[1], paths[0]};
        char *want = malloc(off);

        assert_non_null(want);
        memcpy(want, all + lens[0] + lens[1], lens[2]);
        memcpy(want + lens[2], all + lens[0], lens[1]);
        memcpy(want + lens[2] + lens[1], all, lens[0]);
        assert_int_equal(sd_staging_put_files(fx->st, "three/rev.gz", rev, 3, &size), 0);
        assert_int_equal(size, off);
        stc_expect(fx->st, "three/rev.gz", want, off);
        free(want);
    }
    for (int i = 0; i < 3; i++) {
        free(paths[i]);
    }
    free(all);
}

/* No files, or only empty files, make an empty object. */
static void stc_test_put_empty(void **state)
{
    struct stc_fixture *fx = *state;
    char *path = stc_input(fx, "", 0);
    const char *paths[2] = {path, path};
    uint64_t size = UINT64_MAX;

    assert_int_equal(sd_staging_put_files(fx->st, "e/none", NULL, 0, &size), 0);
    assert_int_equal(size, 0);
    stc_expect(fx->st, "e/none", "", 0);
    size = UINT64_MAX;
    assert_int_equal(sd_staging_put_files(fx->st, "e/two", paths, 2, &size), 0);
    assert_int_equal(size, 0);
    stc_expect(fx->st, "e/two", "", 0);
    free(path);
}

/* Putting a key again replaces the object; no temp object is ever listed. */
static void stc_test_put_replace(void **state)
{
    struct stc_fixture *fx = *state;
    static const char *const only[] = {"r/k.gz"};
    char *big = malloc(100000);

    assert_non_null(big);
    stc_fill(big, 100000, 3);
    {
        char *path = stc_input(fx, big, 100000);
        const char *paths[1] = {path};
        uint64_t size = 0;

        assert_int_equal(sd_staging_put_files(fx->st, "r/k.gz", paths, 1, &size), 0);
        assert_int_equal(size, 100000);
        free(path);
    }
    stc_expect(fx->st, "r/k.gz", big, 100000);
    stc_put_str(fx, "r/k.gz", "short");
    stc_expect_str(fx->st, "r/k.gz", "short");
    stc_expect_list(fx->st, "", only, 1);
    /* the same content again: idempotent */
    stc_put_str(fx, "r/k.gz", "short");
    stc_expect_str(fx->st, "r/k.gz", "short");
    stc_expect_list(fx->st, "", only, 1);
    stc_expect_list(fx->st, "r/", only, 1);
    free(big);
}

/* Missing objects: head and open_read say SD_ENOTFOUND, also for a "directory" of keys. */
static void stc_test_missing(void **state)
{
    struct stc_fixture *fx = *state;

    stc_expect_missing(fx->st, "nope");
    stc_expect_missing(fx->st, "no/such/key.gz");
    stc_put_str(fx, "dir/sub/k", "v");
    stc_expect_missing(fx->st, "dir");
    stc_expect_missing(fx->st, "dir/sub");
    stc_expect_missing(fx->st, "dir/sub/k2");
    stc_expect_missing(fx->st, "dir/sub/k/deeper");
    stc_expect_str(fx->st, "dir/sub/k", "v");
}

/* A missing input file fails the put and stores nothing. */
static void stc_test_missing_input(void **state)
{
    struct stc_fixture *fx = *state;
    char *path = stc_input(fx, "data", 4);
    char *missing = malloc(strlen(fx->in) + 16);
    const char *paths[2] = {path, missing};
    uint64_t size = 0;
    int rc;

    assert_non_null(missing);
    sprintf(missing, "%s/missing", fx->in);
    rc = sd_staging_put_files(fx->st, "mi/k", paths, 2, &size);
    assert_int_equal(rc, -ENOENT);
    stc_expect_missing(fx->st, "mi/k");
    stc_expect_list(fx->st, "", NULL, 0);
    /* a failed replace keeps the old object */
    stc_put_str(fx, "mi/k", "old");
    assert_int_equal(sd_staging_put_files(fx->st, "mi/k", paths, 2, &size), -ENOENT);
    stc_expect_str(fx->st, "mi/k", "old");
    free(missing);
    free(path);
}

static void stc_test_del(void **state)
{
    struct stc_fixture *fx = *state;
    static const char *const rest[] = {"d/b"};

    stc_put_str(fx, "d/a", "1");
    stc_put_str(fx, "d/b", "2");
    assert_int_equal(sd_staging_del(fx->st, "d/a"), 0);
    stc_expect_missing(fx->st, "d/a");
    stc_expect_str(fx->st, "d/b", "2");
    stc_expect_list(fx->st, "", rest, 1);
    /* deleting again, or something that never existed, is fine */
    assert_int_equal(sd_staging_del(fx->st, "d/a"), 0);
    assert_int_equal(sd_staging_del(fx->st, "never/was/here"), 0);
    /* a "directory" of keys is no object: del leaves its keys alone */
    assert_int_equal(sd_staging_del(fx->st, "d"), 0);
    stc_expect_str(fx->st, "d/b", "2");
    assert_int_equal(sd_staging_del(fx->st, "d/b"), 0);
    stc_expect_list(fx->st, "", NULL, 0);
    /* the key can be put again */
    stc_put_str(fx, "d/b", "3");
    stc_expect_str(fx->st, "d/b", "3");
}

static void stc_test_del_prefix(void **state)
{
    struct stc_fixture *fx = *state;
    static const char *const keys[] = {"a/b/1", "a/b/2", "a/b/x/3", "a/bc/4", "a/c/5", "b/6", "ab"};
    static const char *const after1[] = {"a/bc/4", "a/c/5", "ab", "b/6"};
    static const char *const after2[] = {"a/c/5", "ab", "b/6"};
    static const char *const after3[] = {"b/6"};

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        stc_put_str(fx, keys[i], keys[i]);
    }
    assert_int_equal(sd_staging_del_prefix(fx->st, "a/b/"), 0);
    stc_expect_list(fx->st, "", after1, 4);
    stc_expect_missing(fx->st, "a/b/x/3");
    /* a partial segment matches by bytes */
    assert_int_equal(sd_staging_del_prefix(fx->st, "a/b"), 0);
    stc_expect_list(fx->st, "", after2, 3);
    assert_int_equal(sd_staging_del_prefix(fx->st, "a"), 0);
    stc_expect_list(fx->st, "", after3, 1);
    /* nothing matches: fine */
    assert_int_equal(sd_staging_del_prefix(fx->st, "zzz/"), 0);
    assert_int_equal(sd_staging_del_prefix(fx->st, "a/b/"), 0);
    stc_expect_str(fx->st, "b/6", "b/6");
    /* keys under deleted prefixes can be put again */
    stc_put_str(fx, "a/b/1", "again");
    stc_expect_str(fx->st, "a/b/1", "again");
    /* "" deletes everything */
    assert_int_equal(sd_staging_del_prefix(fx->st, ""), 0);
    stc_expect_list(fx->st, "", NULL, 0);
}

/* list is filtered by prefix bytes and sorted by strcmp, whatever the storage order. */
static void stc_test_list(void **state)
{
    struct stc_fixture *fx = *state;
    static const char *const put_order[] = {"k/a/1",   "k/a.1", "k/a-1", "z",    "k/b/2/3",
                                            "k/b/2/1", "A/x",   "k/a/0", "k/..b"};
    static const char *const all[] = {"A/x",   "k/..b",   "k/a-1",   "k/a.1", "k/a/0",
                                      "k/a/1", "k/b/2/1", "k/b/2/3", "z"};
    static const char *const k_a[] = {"k/a-1", "k/a.1", "k/a/0", "k/a/1"};
    static const char *const k_a_dir[] = {"k/a/0", "k/a/1"};
    static const char *const k_b[] = {"k/b/2/1", "k/b/2/3"};
    static const char *const dots[] = {"k/..b"};
    static const char *const exact[] = {"k/b/2/1"};

    for (size_t i = 0; i < sizeof(put_order) / sizeof(put_order[0]); i++) {
        stc_put_str(fx, put_order[i], put_order[i]);
    }
    stc_expect_list(fx->st, "", all, 9);
    stc_expect_list(fx->st, "k/a", k_a, 4);
    stc_expect_list(fx->st, "k/a/", k_a_dir, 2);
    stc_expect_list(fx->st, "k/b/", k_b, 2);
    stc_expect_list(fx->st, "k/b/2/", k_b, 2);
    stc_expect_list(fx->st, "k/b/2/1", exact, 1);
    stc_expect_list(fx->st, "k/.", dots, 1);
    stc_expect_list(fx->st, "k/..", dots, 1);
    stc_expect_list(fx->st, "k/c", NULL, 0);
    stc_expect_list(fx->st, "nothing/here/", NULL, 0);
    stc_expect_list(fx->st, "z/", NULL, 0);
    stc_expect_list(fx->st, "a", NULL, 0);
}

/* Keys that look odd but are valid work end to end. */
static void stc_test_odd_valid_keys(void **state)
{
    struct stc_fixture *fx = *state;
    static const char *const keys[] = {
        "...",
        ".hidden/.k",
        "a..b/c",
        "sp ace/k e y",
        "2024-01-01T10:00:00.000Z/2024-01-01T10:05:00.000Z_AbCdE12345.gz",
        "\xc5\xbe/\xc3\xbc.csv",
        "tmp-no-dot/x.tmp",
    };
    char seg[SD_STAGING_SEGMENT_LEN + 1];
    size_t n = sizeof(keys) / sizeof(keys[0]);
    const char *sorted[sizeof(keys) / sizeof(keys[0])];

    for (size_t i = 0; i < n; i++) {
        stc_put_str(fx, keys[i], keys[i]);
        stc_expect_str(fx->st, keys[i], keys[i]);
        sorted[i] = keys[i];
    }
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0 && strcmp(sorted[j - 1], sorted[j]) > 0; j--) {
            const char *t = sorted[j];

            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    }
    stc_expect_list(fx->st, "", sorted, n);
    /* the longest segment */
    memset(seg, 's', SD_STAGING_SEGMENT_LEN);
    seg[SD_STAGING_SEGMENT_LEN] = '\0';
    stc_put_str(fx, seg, "long");
    stc_expect_str(fx->st, seg, "long");
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(sd_staging_del(fx->st, keys[i]), 0);
        stc_expect_missing(fx->st, keys[i]);
    }
}

/* Invalid keys and prefixes are SD_EINVAL for every call, and nothing is stored. */
static void stc_test_invalid_keys(void **state)
{
    struct stc_fixture *fx = *state;
    static const char *const bad[] = {
        "",          "/abs",   "/",        "a/../b", "..",   "../x",      "a/..",     ".",
        "./a",       "a/./b",  "a/.",      "a//b",   "a/",   "//",        "a\\b",     "\\",
        "a/k.tmp-1", "x.tmp-", "a.tmp-/b", "x\x01y", "x\ny", "tab\there", "del\x7fx", "../../etc/x",
    };
    static const char *const bad_prefix[] = {"/",    "/a", "../",  "a//",    "a/../", "..\\",
                                             "a\\b", "./", "a/./", "k.tmp-", "x\x02"};
    char *path = stc_input(fx, "data", 4);
    const char *paths[1] = {path};
    char *long_key = malloc(SD_STAGING_KEY_MAX + 2);
    char seg[SD_STAGING_SEGMENT_LEN + 2];
    char deep[SD_STAGING_SEGMENT_MAX * 2 + 2];
    const char *generated[3];
    uint64_t size = 0;

    assert_non_null(long_key);
    /* 1025 bytes in segments of 100 */
    for (size_t i = 0; i < SD_STAGING_KEY_MAX + 1; i++) {
        long_key[i] = i % 101 == 100 ? '/' : 'k';
    }
    long_key[SD_STAGING_KEY_MAX + 1] = '\0';
    memset(seg, 's', SD_STAGING_SEGMENT_LEN + 1);
    seg[SD_STAGING_SEGMENT_LEN + 1] = '\0';
    for (size_t i = 0; i < SD_STAGING_SEGMENT_MAX + 1; i++) {
        deep[2 * i] = 'd';
        deep[2 * i + 1] = '/';
    }
    deep[2 * SD_STAGING_SEGMENT_MAX + 1] = '\0';
    generated[0] = long_key;
    generated[1] = seg;
    generated[2] = deep;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]) + 3; i++) {
        const char *key =
            i < sizeof(bad) / sizeof(bad[0]) ? bad[i] : generated[i - sizeof(bad) / sizeof(bad[0])];
        struct sd_staging_reader *r = NULL;

        assert_int_equal(sd_staging_put_files(fx->st, key, paths, 1, &size), SD_EINVAL);
        assert_int_equal(sd_staging_head(fx->st, key, &size), SD_EINVAL);
        assert_int_equal(sd_staging_open_read(fx->st, key, &r), SD_EINVAL);
        assert_null(r);
        assert_int_equal(sd_staging_del(fx->st, key), SD_EINVAL);
    }
    for (size_t i = 0; i < sizeof(bad_prefix) / sizeof(bad_prefix[0]); i++) {
        char **keys = NULL;
        size_t n = 0;

        assert_int_equal(sd_staging_list(fx->st, bad_prefix[i], &keys, &n), SD_EINVAL);
        assert_null(keys);
        assert_int_equal(n, 0);
        assert_int_equal(sd_staging_del_prefix(fx->st, bad_prefix[i]), SD_EINVAL);
    }
    /* a NULL path inside the list */
    {
        const char *with_null[2] = {path, NULL};

        assert_int_equal(sd_staging_put_files(fx->st, "ok", with_null, 2, &size), SD_EINVAL);
    }
    stc_expect_list(fx->st, "", NULL, 0);
    free(long_key);
    free(path);
}

/* 8 MiB from two files, read back in small odd chunks. */
static void stc_test_large(void **state)
{
    struct stc_fixture *fx = *state;
    size_t len = 8 * STC_MIB, first = 5 * STC_MIB + 12345;
    char *data = malloc(len);
    char *paths[2];
    uint64_t size = 0;
    size_t got_len;
    char *got;

    assert_non_null(data);
    stc_fill(data, len, 42);
    paths[0] = stc_input(fx, data, first);
    paths[1] = stc_input(fx, data + first, len - first);
    assert_int_equal(
        sd_staging_put_files(fx->st, "big/obj.gz", (const char *const *)paths, 2, &size), 0);
    assert_int_equal(size, len);
    assert_int_equal(sd_staging_head(fx->st, "big/obj.gz", &size), 0);
    assert_int_equal(size, len);
    got = stc_read_all(fx->st, "big/obj.gz", 4093, &got_len);
    assert_int_equal(got_len, len);
    assert_memory_equal(got, data, len);
    free(got);
    free(paths[0]);
    free(paths[1]);
    free(data);
}

#define STC_THREADS 4
#define STC_PER_THREAD 16

struct stc_thread {
    struct sd_staging *st;
    const char *in;
    int id;
    int rc;     /* first failure */
    int failed; /* index of the failing step */
};

static size_t stc_thread_len(int id, int i)
{
    return 1000 + (size_t)id * 7919 + (size_t)i * 131;
}

/* Puts STC_PER_THREAD distinct keys "c/<id>/<i>" with content seeded by (id, i). */
static void *stc_put_thread(void *p)
{
    struct stc_thread *t = p;
    char key[64], tag[32];

    for (int i = 0; i < STC_PER_THREAD && t->rc == 0; i++) {
        size_t len = stc_thread_len(t->id, i);
        char *data = malloc(len);
        char *path;
        uint64_t size = 0;

        if (data == NULL) {
            t->rc = -ENOMEM;
            break;
        }
        stc_fill(data, len, (uint64_t)(t->id * 1000 + i));
        snprintf(tag, sizeof(tag), "t%d", t->id);
        path = stc_write_input_at(t->in, tag, (unsigned)i, data, len);
        if (path == NULL) {
            t->rc = -EIO;
        } else {
            const char *paths[1] = {path};

            snprintf(key, sizeof(key), "c/%d/%02d.gz", t->id, i);
            t->rc = sd_staging_put_files(t->st, key, paths, 1, &size);
            if (t->rc == 0 && size != len) {
                t->rc = SD_ECORRUPT;
            }
            t->failed = i;
        }
        free(path);
        free(data);
    }
    return NULL;
}

/* Four threads put different keys at once; every object ends up complete. */
static void stc_test_concurrent_puts(void **state)
{
    struct stc_fixture *fx = *state;
    pthread_t th[STC_THREADS];
    struct stc_thread args[STC_THREADS];
    char **keys = NULL;
    size_t n = 0;

    for (int i = 0; i < STC_THREADS; i++) {
        args[i] = (struct stc_thread){fx->st, fx->in, i, 0, -1};
        assert_int_equal(pthread_create(&th[i], NULL, stc_put_thread, &args[i]), 0);
    }
    for (int i = 0; i < STC_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
    }
    for (int i = 0; i < STC_THREADS; i++) {
        if (args[i].rc != 0) {
            print_message("thread %d step %d: %s\n", i, args[i].failed, sd_strerror(args[i].rc));
        }
        assert_int_equal(args[i].rc, 0);
    }
    assert_int_equal(sd_staging_list(fx->st, "c/", &keys, &n), 0);
    assert_int_equal(n, STC_THREADS * STC_PER_THREAD);
    for (int id = 0; id < STC_THREADS; id++) {
        for (int i = 0; i < STC_PER_THREAD; i++) {
            char key[64];
            size_t len = stc_thread_len(id, i);
            char *data = malloc(len);

            assert_non_null(data);
            stc_fill(data, len, (uint64_t)(id * 1000 + i));
            snprintf(key, sizeof(key), "c/%d/%02d.gz", id, i);
            assert_string_equal(keys[id * STC_PER_THREAD + i], key);
            stc_expect(fx->st, key, data, len);
            free(data);
        }
    }
    sd_staging_keys_free(keys, n);
}

struct stc_same {
    struct sd_staging *st;
    const char *path; /* input of this thread */
    int rc;
};

static void *stc_same_thread(void *p)
{
    struct stc_same *t = p;

    for (int i = 0; i < 8 && t->rc == 0; i++) {
        const char *paths[1] = {t->path};

        t->rc = sd_staging_put_files(t->st, "same/k.gz", paths, 1, NULL);
    }
    return NULL;
}

/* Four threads put the same key at once: it ends as one of the objects, complete. */
static void stc_test_concurrent_same_key(void **state)
{
    struct stc_fixture *fx = *state;
    static const char *const only[] = {"same/k.gz"};
    pthread_t th[STC_THREADS];
    struct stc_same args[STC_THREADS];
    char *paths[STC_THREADS];
    size_t got_len;
    char *got;
    int winner = -1;

    for (int i = 0; i < STC_THREADS; i++) {
        size_t len = 65536 * (size_t)(i + 1);
        char *data = malloc(len);

        assert_non_null(data);
        memset(data, 'A' + i, len);
        paths[i] = stc_input(fx, data, len);
        free(data);
        args[i] = (struct stc_same){fx->st, paths[i], 0};
    }
    for (int i = 0; i < STC_THREADS; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, stc_same_thread, &args[i]), 0);
    }
    for (int i = 0; i < STC_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
    }
    for (int i = 0; i < STC_THREADS; i++) {
        assert_int_equal(args[i].rc, 0);
    }
    got = stc_read_all(fx->st, "same/k.gz", 8192, &got_len);
    for (int i = 0; i < STC_THREADS; i++) {
        if (got_len == 65536 * (size_t)(i + 1)) {
            winner = i;
        }
    }
    assert_true(winner >= 0);
    for (size_t j = 0; j < got_len; j++) {
        if (got[j] != 'A' + winner) {
            fail_msg("byte %zu is %c, object of thread %d", j, got[j], winner);
        }
    }
    free(got);
    stc_expect_list(fx->st, "", only, 1);
    for (int i = 0; i < STC_THREADS; i++) {
        free(paths[i]);
    }
}

#define STC_TEST(f, be) cmocka_unit_test_prestate_setup_teardown(f, stc_setup, stc_teardown, be)

#define STC_CONTRACT_TESTS(be)                                                                     \
    STC_TEST(stc_test_put_one, be), STC_TEST(stc_test_put_three, be),                              \
        STC_TEST(stc_test_put_empty, be), STC_TEST(stc_test_put_replace, be),                      \
        STC_TEST(stc_test_missing, be), STC_TEST(stc_test_missing_input, be),                      \
        STC_TEST(stc_test_del, be), STC_TEST(stc_test_del_prefix, be),                             \
        STC_TEST(stc_test_list, be), STC_TEST(stc_test_odd_valid_keys, be),                        \
        STC_TEST(stc_test_invalid_keys, be), STC_TEST(stc_test_large, be),                         \
        STC_TEST(stc_test_concurrent_puts, be), STC_TEST(stc_test_concurrent_same_key, be)

#endif
