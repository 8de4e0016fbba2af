/* test_staging_local.c: the staging contract suite against the "local" backend, plus its own
 * tests: the on-disk layout, a staging directory that becomes unusable and comes back, leftover
 * temp files of a crashed put, keys that try to leave the directory, readers across a replace,
 * directory pruning racing with puts, opening from config, and the slice object key.
 *
 * DESIGN: single-threaded cmocka runner except the race test, whose threads only record return
 * codes. Every test works in a fresh temp directory that it removes at the end. Unusable
 * directories are made by replacing them (or their parent) with a regular file, which also works
 * as root, where permission bits do not stop anything. */
#include "staging_contract.h"

#include "config/sd_config.h"
#include "core/sd_buf.h"

#include <dirent.h>

static int open_local(const struct stc_backend *be, const char *scratch, struct sd_staging **out)
{
    char path[600];

    (void)be;
    assert_true((size_t)snprintf(path, sizeof(path), "%s/staging", scratch) < sizeof(path));
    return sd_staging_open_backend("local", NULL, path, out);
}

static const struct stc_backend local = {"local", open_local, NULL};

/* ---- helpers ---------------------------------------------------------------------------- */

/* Returns "<fx->dir>/<rel>" in a static-free owned string. */
static char *in_dir(const struct stc_fixture *fx, const char *rel)
{
    char *p = malloc(strlen(fx->dir) + strlen(rel) + 2);

    assert_non_null(p);
    sprintf(p, "%s/%s", fx->dir, rel);
    return p;
}

static int exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

static int rel_exists(const struct stc_fixture *fx, const char *rel)
{
    char *p = in_dir(fx, rel);
    int e = exists(p);

    free(p);
    return e;
}

static void write_rel(const struct stc_fixture *fx, const char *rel, const char *s)
{
    char *p = in_dir(fx, rel);

    assert_int_equal(sd_write_file_atomic(p, s, strlen(s), 0644), 0);
    free(p);
}

static char *read_rel(const struct stc_fixture *fx, const char *rel, size_t *len)
{
    char *p = in_dir(fx, rel);
    char *data = NULL;

    assert_int_equal(sd_read_file(p, &data, len), 0);
    free(p);
    return data;
}

/* Counts the entries of <fx->dir>/<rel> other than "." and "..". */
static int count_entries(const struct stc_fixture *fx, const char *rel)
{
    char *p = in_dir(fx, rel);
    DIR *d = opendir(p);
    struct dirent *de;
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            n++;
        }
    }
    closedir(d);
    free(p);
    return n;
}

static void rename_rel(const struct stc_fixture *fx, const char *from, const char *to)
{
    char *a = in_dir(fx, from), *b = in_dir(fx, to);

    assert_int_equal(rename(a, b), 0);
    free(a);
    free(b);
}

static void unlink_rel(const struct stc_fixture *fx, const char *rel)
{
    char *p = in_dir(fx, rel);

    assert_int_equal(unlink(p), 0);
    free(p);
}

static int put_str_rc(struct stc_fixture *fx, const char *key, const char *s)
{
    char *path = stc_input(fx, s, strlen(s));
    const char *paths[1] = {path};
    int rc = sd_staging_put_files(fx->st, key, paths, 1, NULL);

    free(path);
    return rc;
}

/* ---- tests ------------------------------------------------------------------------------ */

/* An object is a plain file at <dir>/<key>, mode 0640, in directories of mode 0750. */
static void test_layout(void **state)
{
    struct stc_fixture *fx = *state;
    struct stat st;
    char *p = in_dir(fx, "staging/1/2/src/k.gz");
    size_t len;
    char *data;

    stc_put_str(fx, "1/2/src/k.gz", "hello");
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 0777, SD_FILE_MODE);
    free(p);
    p = in_dir(fx, "staging/1/2");
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, SD_DIR_MODE);
    free(p);
    data = read_rel(fx, "staging/1/2/src/k.gz", &len);
    assert_int_equal(len, 5);
    assert_memory_equal(data, "hello", 5);
    free(data);
    /* nothing else in the directory: no temp file left */
    assert_int_equal(count_entries(fx, "staging/1/2/src"), 1);
}

/* open creates a missing directory with its parents and refuses a regular file. */
static void test_open(void **state)
{
    struct stc_fixture *fx = *state;
    struct sd_staging *st = (struct sd_staging *)1;
    char *deep = in_dir(fx, "x/y/z/");
    char *file = in_dir(fx, "plain");

    assert_int_equal(sd_staging_open_backend("local", NULL, deep, &st), 0);
    assert_true(rel_exists(fx, "x/y/z"));
    sd_staging_close(st);
    write_rel(fx, "plain", "x");
    st = (struct sd_staging *)1;
    assert_int_equal(sd_staging_open_backend("local", NULL, file, &st), -ENOTDIR);
    assert_null(st);
    assert_int_equal(sd_staging_open_backend("local", NULL, "", &st), SD_EINVAL);
    assert_int_equal(sd_staging_open_backend("nope", NULL, deep, &st), SD_EINVAL);
    /* s3 reads its options from config: none is SD_EINVAL */
    assert_int_equal(sd_staging_open_backend("s3", NULL, deep, &st), SD_EINVAL);
    assert_null(st);
    sd_staging_close(NULL);
    free(deep);
    free(file);
}

/* The staging directory replaced by a regular file: puts fail with a negative errno, listing
 * fails, nothing is found; once the directory is back everything works, old objects included. */
static void test_dir_replaced_by_file(void **state)
{
    struct stc_fixture *fx = *state;
    static const char *const both[] = {"a/new", "a/old"};
    static const char *const old_only[] = {"a/old"};
    char **keys = NULL;
    size_t n = 0;

    stc_put_str(fx, "a/old", "old");
    rename_rel(fx, "staging", "staging.away");
    write_rel(fx, "staging", "not a directory");
    assert_int_equal(put_str_rc(fx, "a/new", "new"), -ENOTDIR);
    assert_int_equal(put_str_rc(fx, "top", "new"), -ENOTDIR);
    assert_int_equal(sd_staging_list(fx->st, "", &keys, &n), -ENOTDIR);
    assert_null(keys);
    stc_expect_missing(fx->st, "a/old");
    assert_true(sd_staging_del_prefix(fx->st, "") < 0);
    /* the file was left alone */
    {
        size_t len;
        char *data = read_rel(fx, "staging", &len);

        assert_int_equal(len, strlen("not a directory"));
        free(data);
    }
    unlink_rel(fx, "staging");
    rename_rel(fx, "staging.away", "staging");
    stc_expect_list(fx->st, "", old_only, 1);
    stc_put_str(fx, "a/new", "new");
    stc_expect_list(fx->st, "a/", both, 2);
    stc_expect_str(fx->st, "a/old", "old");
    stc_expect_str(fx->st, "a/new", "new");
}

/* The staging directory's parent replaced by a file, then restored empty: put re-creates the
 * directory. */
static void test_parent_replaced_by_file(void **state)
{
    struct stc_fixture *fx = *state;
    struct sd_staging *st = NULL;
    char *where = in_dir(fx, "p/staging");
    char *parent = in_dir(fx, "p");
    char *input = stc_input(fx, "v", 1);
    const char *paths[1] = {input};
    uint64_t size = 0;
    int rc;

    assert_int_equal(sd_staging_open_backend("local", NULL, where, &st), 0);
    assert_int_equal(sd_rm_rf(parent), 0);
    write_rel(fx, "p", "file");
    rc = sd_staging_put_files(st, "k/1", paths, 1, &size);
    assert_true(rc < 0 && rc > SD_ERR_BASE);
    assert_int_equal(rc, -ENOTDIR);
    assert_int_equal(sd_staging_head(st, "k/1", &size), SD_ENOTFOUND);
    unlink_rel(fx, "p");
    /* a missing directory is re-created by the next put */
    assert_int_equal(sd_staging_head(st, "k/1", &size), SD_ENOTFOUND);
    stc_expect_list(st, "", NULL, 0);
    assert_int_equal(sd_staging_put_files(st, "k/1", paths, 1, &size), 0);
    stc_expect_str(st, "k/1", "v");
    assert_true(rel_exists(fx, "p/staging/k/1"));
    sd_staging_close(st);
    free(input);
    free(where);
    free(parent);
}

/* Not root: a read-only directory gives -EACCES and works again after chmod back. */
static void test_dir_read_only(void **state)
{
    struct stc_fixture *fx = *state;
    char *root = in_dir(fx, "staging");

    if (geteuid() == 0) {
        free(root);
        skip();
    }
    assert_int_equal(chmod(root, 0500), 0);
    assert_int_equal(put_str_rc(fx, "k", "v"), -EACCES);
    assert_int_equal(chmod(root, 0750), 0);
    assert_int_equal(put_str_rc(fx, "k", "v"), 0);
    stc_expect_str(fx->st, "k", "v");
    free(root);
}

/* A crash leaves key.tmp-* files: list and head ignore them; the next put of that key removes
 * its own leftovers, del_prefix removes those it covers, open removes all of them. */
static void test_crash_leftovers(void **state)
{
    struct stc_fixture *fx = *state;
    static const char *const only_k[] = {"f/k.gz"};
    struct sd_staging *st = NULL;
    char *root = in_dir(fx, "staging");

    stc_put_str(fx, "f/k.gz", "old");
    assert_int_equal(sd_mkdir_p(root, 0750), 0);
    write_rel(fx, "staging/f/k.gz.tmp-0123456789abcdef", "torn");
    write_rel(fx, "staging/f/k.gz.tmp-junk", "torn");
    write_rel(fx, "staging/f/other.gz.tmp-00000000000000aa", "torn");
    {
        char *d = in_dir(fx, "staging/g/h");

        assert_int_equal(sd_mkdir_p(d, 0750), 0);
        free(d);
    }
    write_rel(fx, "staging/g/h/x.tmp-1", "torn");
    write_rel(fx, "staging/d.tmp-2", "torn");
    stc_expect_list(fx->st, "", only_k, 1);
    stc_expect_list(fx->st, "f/", only_k, 1);
    stc_expect_list(fx->st, "g/", NULL, 0);
    stc_expect_missing(fx->st, "f/other.gz");
    stc_expect_missing(fx->st, "g/h/x");
    stc_expect_str(fx->st, "f/k.gz", "old");
    /* the next put of f/k.gz cleans its own leftovers, not other keys' */
    stc_put_str(fx, "f/k.gz", "new");
    assert_false(rel_exists(fx, "staging/f/k.gz.tmp-0123456789abcdef"));
    assert_false(rel_exists(fx, "staging/f/k.gz.tmp-junk"));
    assert_true(rel_exists(fx, "staging/f/other.gz.tmp-00000000000000aa"));
    assert_int_equal(count_entries(fx, "staging/f"), 2);
    stc_expect_str(fx->st, "f/k.gz", "new");
    /* del_prefix covers the leftovers under its prefix, and prunes emptied directories */
    assert_int_equal(sd_staging_del_prefix(fx->st, "g/"), 0);
    assert_false(rel_exists(fx, "staging/g"));
    assert_true(rel_exists(fx, "staging/d.tmp-2"));
    /* open removes every leftover */
    sd_staging_close(fx->st);
    fx->st = NULL;
    assert_int_equal(sd_staging_open_backend("local", NULL, root, &st), 0);
    fx->st = st;
    assert_false(rel_exists(fx, "staging/f/other.gz.tmp-00000000000000aa"));
    assert_false(rel_exists(fx, "staging/d.tmp-2"));
    assert_int_equal(count_entries(fx, "staging/f"), 1);
    stc_expect_str(fx->st, "f/k.gz", "new");
    stc_expect_list(fx->st, "", only_k, 1);
    free(root);
}

/* Keys that would leave the directory are refused before any I/O. */
static void test_no_escape(void **state)
{
    struct stc_fixture *fx = *state;
    static const char *const escapes[] = {"../escape", "a/../../escape", "/escape", "..\\escape",
                                          "a/../../../escape"};
    char *abs = in_dir(fx, "escape");

    for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++) {
        assert_int_equal(put_str_rc(fx, escapes[i], "x"), SD_EINVAL);
        assert_int_equal(sd_staging_del(fx->st, escapes[i]), SD_EINVAL);
    }
    assert_int_equal(put_str_rc(fx, abs, "x"), SD_EINVAL);
    assert_int_equal(sd_staging_del_prefix(fx->st, "../"), SD_EINVAL);
    assert_false(rel_exists(fx, "escape"));
    assert_false(rel_exists(fx, "staging/escape"));
    /* only the staging dir and the inputs are in the scratch dir */
    assert_int_equal(count_entries(fx, ""), 2);
    assert_int_equal(count_entries(fx, "staging"), 0);
    free(abs);
}

/* A reader keeps reading the object it opened, across a replace and a delete. */
static void test_reader_snapshot(void **state)
{
    struct stc_fixture *fx = *state;
    struct sd_staging_reader *r = NULL;
    char buf[64];
    ssize_t n;

    stc_put_str(fx, "s/k", "first version");
    assert_int_equal(sd_staging_open_read(fx->st, "s/k", &r), 0);
    stc_put_str(fx, "s/k", "second");
    assert_int_equal(sd_staging_del(fx->st, "s/k"), 0);
    n = sd_staging_read(fx->st, r, buf, sizeof(buf));
    assert_int_equal(n, strlen("first version"));
    assert_memory_equal(buf, "first version", (size_t)n);
    assert_int_equal(sd_staging_read(fx->st, r, buf, sizeof(buf)), 0);
    sd_staging_close_read(fx->st, r);
    sd_staging_close_read(fx->st, NULL);
    stc_expect_missing(fx->st, "s/k");
}

/* del and del_prefix remove the directories they empty, never the root. */
static void test_prune(void **state)
{
    struct stc_fixture *fx = *state;

    stc_put_str(fx, "p/q/r/k", "1");
    stc_put_str(fx, "p/x", "2");
    assert_int_equal(sd_staging_del(fx->st, "p/q/r/k"), 0);
    assert_false(rel_exists(fx, "staging/p/q"));
    assert_true(rel_exists(fx, "staging/p/x"));
    stc_put_str(fx, "m/n/o/k1", "1");
    stc_put_str(fx, "m/n/o/k2", "2");
    assert_int_equal(sd_staging_del_prefix(fx->st, "m/n/"), 0);
    assert_false(rel_exists(fx, "staging/m"));
    assert_int_equal(sd_staging_del_prefix(fx->st, ""), 0);
    assert_true(rel_exists(fx, "staging"));
    assert_int_equal(count_entries(fx, "staging"), 0);
}

struct race_arg {
    struct sd_staging *st;
    const char *input;
    int id;
    int rc;
};

/* Puts and deletes its own key in a shared directory, so directories are pruned and
 * re-created under the other threads' puts. */
static void *race_thread(void *p)
{
    struct race_arg *a = p;
    const char *paths[1] = {a->input};
    char key[32];

    snprintf(key, sizeof(key), "race/d/%d", a->id);
    for (int i = 0; i < 200 && a->rc == 0; i++) {
        a->rc = sd_staging_put_files(a->st, key, paths, 1, NULL);
        if (a->rc == 0) {
            a->rc = sd_staging_del(a->st, key);
        }
        if (a->rc == 0 && a->id == 0) {
            a->rc = sd_staging_del_prefix(a->st, "race/");
        }
    }
    return NULL;
}

static void test_prune_races_put(void **state)
{
    struct stc_fixture *fx = *state;
    struct race_arg args[STC_THREADS];
    pthread_t th[STC_THREADS];
    char *input = stc_input(fx, "payload", 7);

    for (int i = 0; i < STC_THREADS; i++) {
        args[i] = (struct race_arg){fx->st, input, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, race_thread, &args[i]), 0);
    }
    for (int i = 0; i < STC_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
    }
    for (int i = 0; i < STC_THREADS; i++) {
        if (args[i].rc != 0) {
            print_message("thread %d: %s\n", i, sd_strerror(args[i].rc));
        }
        assert_int_equal(args[i].rc, 0);
    }
    stc_expect_list(fx->st, "", NULL, 0);
    free(input);
}

/* sd_staging_open reads staging.backend and staging.local.path (default <dataDir>/staging). */
static void test_open_from_config(void **state)
{
    struct stc_fixture *fx = *state;
    char *data_dir = in_dir(fx, "data");
    char *custom = in_dir(fx, "custom");
    char *set_path = malloc(strlen(custom) + 32);
    const char *sets[1];
    const char *s3_sets[1] = {"staging.backend=s3"};
    struct sd_config_args args = {NULL, data_dir, NULL, 0, NULL};
    struct sd_config *cfg = NULL;
    struct sd_staging *st = NULL;
    struct sd_buf err = SD_BUF_INIT;
    size_t len;
    char *data;

    assert_non_null(set_path);
    assert_int_equal(sd_config_load(&args, &cfg, &err), 0);
    assert_int_equal(sd_staging_open(cfg, &st), 0);
    assert_string_equal(st->ops->name, "local");
    {
        char *input = stc_input(fx, "cfg", 3);
        const char *paths[1] = {input};

        assert_int_equal(sd_staging_put_files(st, "x/y", paths, 1, NULL), 0);
        free(input);
    }
    sd_staging_close(st);
    sd_config_destroy(cfg);
    data = read_rel(fx, "data/staging/x/y", &len);
    assert_int_equal(len, 3);
    free(data);

    sprintf(set_path, "staging.local.path=%s", custom);
    sets[0] = set_path;
    args.sets = sets;
    args.nsets = 1;
    assert_int_equal(sd_config_load(&args, &cfg, &err), 0);
    assert_int_equal(sd_staging_open(cfg, &st), 0);
    sd_staging_close(st);
    sd_config_destroy(cfg);
    assert_true(rel_exists(fx, "custom"));

    args.sets = s3_sets;
    assert_int_equal(sd_config_load(&args, &cfg, &err), 0);
    st = (struct sd_staging *)1;
    /* s3 without staging.s3.endpoint, bucket and credentials */
    assert_int_equal(sd_staging_open(cfg, &st), SD_EINVAL);
    assert_null(st);
    sd_config_destroy(cfg);
    sd_buf_fini(&err);
    free(set_path);
    free(custom);
    free(data_dir);
}

/* The slice object key, as the reference names it. */
static void test_slice_key(void **state)
{
    struct sd_buf b = SD_BUF_INIT;

    (void)state;
    sd_staging_slice_key(&b, 123, 456, "my-source", "my-sink", "2024-01-01T10:00:00.000Z",
                         "2024-01-01T10:05:30.123Z", "AbCdE12345", 1);
    assert_string_equal(sd_buf_cstr(&b), "123/456/my-source/my-sink/2024-01-01T10:00:00.000Z/"
                                         "2024-01-01T10:05:30.123Z_AbCdE12345.gz");
    assert_int_equal(sd_staging_key_check(sd_buf_cstr(&b)), 0);
    /* out is reset, not appended to */
    sd_staging_slice_key(&b, 1, 2, "s", "k", "2006-01-02T15:04:05.000Z", "2006-01-02T15:04:05.999Z",
                         "vol", 0);
    assert_string_equal(sd_buf_cstr(&b),
                        "1/2/s/k/2006-01-02T15:04:05.000Z/2006-01-02T15:04:05.999Z_vol");
    assert_int_equal(sd_staging_key_check(sd_buf_cstr(&b)), 0);
    /* a missing part leaves an empty key, which no call accepts */
    sd_staging_slice_key(&b, 1, 2, "s", "k", "2006-01-02T15:04:05.000Z", NULL, "vol", 1);
    assert_int_equal(b.len, 0);
    assert_int_equal(sd_staging_key_check(sd_buf_cstr(&b)), SD_EINVAL);
    sd_buf_fini(&b);
}

/* Key rule boundaries. */
static void test_key_limits(void **state)
{
    char key[SD_STAGING_KEY_MAX + 2];
    size_t n = 0;

    (void)state;
    /* exactly SD_STAGING_KEY_MAX bytes, segments of at most SD_STAGING_SEGMENT_LEN */
    while (n < SD_STAGING_KEY_MAX) {
        key[n] = (n + 1) % (SD_STAGING_SEGMENT_LEN + 1) == 0 ? '/' : 'k';
        n++;
    }
    key[n] = '\0';
    assert_int_equal(sd_staging_key_check(key), 0);
    key[n] = 'k';
    key[n + 1] = '\0';
    assert_int_equal(sd_staging_key_check(key), SD_EINVAL);
    /* SD_STAGING_SEGMENT_MAX segments */
    n = 0;
    for (int i = 0; i < SD_STAGING_SEGMENT_MAX; i++) {
        key[n++] = 'd';
        key[n++] = '/';
    }
    key[n - 1] = '\0';
    assert_int_equal(sd_staging_key_check(key), 0);
    assert_int_equal(sd_staging_prefix_check(key), 0);
    key[n - 1] = '/';
    key[n] = 'd';
    key[n + 1] = '\0';
    assert_int_equal(sd_staging_key_check(key), SD_EINVAL);
    assert_int_equal(sd_staging_key_check(NULL), SD_EINVAL);
    assert_int_equal(sd_staging_prefix_check(NULL), SD_EINVAL);
    assert_int_equal(sd_staging_prefix_check(""), 0);
    assert_int_equal(sd_staging_prefix_check("a/"), 0);
    assert_int_equal(sd_staging_prefix_check("a/b"), 0);
    assert_int_equal(sd_staging_prefix_check("a/.."), 0);
    assert_int_equal(sd_staging_prefix_check("../a"), SD_EINVAL);
}

#define LOCAL_TEST(f) STC_TEST(f, (void *)&local)

int main(void)
{
    const struct CMUnitTest tests[] = {
        STC_CONTRACT_TESTS((void *)&local),
        LOCAL_TEST(test_layout),
        LOCAL_TEST(test_open),
        LOCAL_TEST(test_dir_replaced_by_file),
        LOCAL_TEST(test_parent_replaced_by_file),
        LOCAL_TEST(test_dir_read_only),
        LOCAL_TEST(test_crash_leftovers),
        LOCAL_TEST(test_no_escape),
        LOCAL_TEST(test_reader_snapshot),
        LOCAL_TEST(test_prune),
        LOCAL_TEST(test_prune_races_put),
        LOCAL_TEST(test_open_from_config),
        cmocka_unit_test(test_slice_key),
        cmocka_unit_test(test_key_limits),
    };

    return cmocka_run_group_tests_name("staging_local", tests, NULL, NULL);
}
