/* test_disk_cleanup.c: unit tests of storage/sd_disk_cleanup: a pass removes the slice
 * directories no slice entity names (with their files and the parents left empty), keeps the
 * named ones, the volume's own files and anything above the slice level, and removes nothing
 * when every directory is named.
 *
 * DESIGN: each test makes a volume in a fresh temp directory (under $SD_TEST_TMPDIR, else /tmp)
 * and an embedded state store beside it, with slice entities written as the storage layer
 * writes them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_tmpdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/sd_fs.h"
#include "state/sd_state.h"
#include "storage/sd_disk_cleanup.h"

#define SINK "1/2/src/snk"
#define FILE_TS "2024-01-01T10-00-00-000Z"

struct fixture {
    char dir[512];
    char volume[600];
    struct sd_state *st;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    char path[700];

    assert_non_null(fx);
    sd_test_mkdtemp(fx->dir, sizeof(fx->dir), "sd-diskclean");
    snprintf(fx->volume, sizeof(fx->volume), "%s/volumes/hdd/1", fx->dir);
    assert_int_equal(sd_mkdir_p(fx->volume, 0755), 0);
    snprintf(path, sizeof(path), "%s/state", fx->dir);
    assert_int_equal(sd_state_open_backend("embedded", NULL, path, &fx->st), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    sd_state_close(fx->st);
    sd_rm_rf(fx->dir);
    free(fx);
    return 0;
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Makes <volume>/<SINK>/<file>/<slice>/slice-n.csv.gz; path gets the slice directory. */
static void make_slice_dir(struct fixture *fx, const char *file, const char *slice, char *path,
                           size_t len)
{
    char f[900];
    FILE *fp;

    snprintf(path, len, "%s/%s/%s/%s", fx->volume, SINK, file, slice);
    assert_int_equal(sd_mkdir_p(path, 0755), 0);
    snprintf(f, sizeof(f), "%s/slice-n.csv.gz", path);
    fp = fopen(f, "w");
    assert_non_null(fp);
    fputs("data", fp);
    fclose(fp);
}

static void put_slice(struct fixture *fx, const char *key, const char *dir)
{
    char k[256], v[1024];

    snprintf(k, sizeof(k), "storage/slice/all/%s", key);
    snprintf(v, sizeof(v), "{\"state\":\"writing\",\"local\":{\"dir\":\"%s\"}}", dir);
    assert_int_equal(sd_state_put(fx->st, k, v, strlen(v), 0, NULL), 0);
}

static void test_removes_orphans_only(void **state)
{
    struct fixture *fx = *state;
    char known[900], orphan[900], orphan_file[900], volume_id[700], file_dir[900];
    const char *paths[1] = {fx->volume};
    FILE *fp;

    make_slice_dir(fx, FILE_TS, "2024-01-01T10-00-01-000Z", known, sizeof(known));
    make_slice_dir(fx, FILE_TS, "2024-01-01T10-00-02-000Z", orphan, sizeof(orphan));
    /* a whole file directory of orphans: its parent goes too */
    make_slice_dir(fx, "2024-01-02T10-00-00-000Z", "2024-01-02T10-00-01-000Z", orphan_file,
                   sizeof(orphan_file));
    put_slice(fx, SINK "/" FILE_TS "/vol/2024-01-01T10:00:01.000Z", known);
    snprintf(volume_id, sizeof(volume_id), "%s/volume-id", fx->volume);
    fp = fopen(volume_id, "w");
    assert_non_null(fp);
    fclose(fp);

    assert_int_equal(sd_disk_cleanup_pass(fx->st, paths, 1, 4), 2);
    assert_true(exists(known));
    assert_false(exists(orphan));
    assert_false(exists(orphan_file));
    snprintf(file_dir, sizeof(file_dir), "%s/%s/2024-01-02T10-00-00-000Z", fx->volume, SINK);
    assert_false(exists(file_dir)); /* left empty by the removal */
    snprintf(file_dir, sizeof(file_dir), "%s/%s/%s", fx->volume, SINK, FILE_TS);
    assert_true(exists(file_dir)); /* still holds the known slice */
    assert_true(exists(volume_id));
    assert_true(exists(fx->volume));
    /* a second pass finds nothing */
    assert_int_equal(sd_disk_cleanup_pass(fx->st, paths, 1, 1), 0);
    assert_true(exists(known));
}

static void test_shallow_dirs_are_kept(void **state)
{
    struct fixture *fx = *state;
    char shallow[900];
    const char *paths[1] = {fx->volume};

    /* above the slice level: not a slice directory, never removed */
    snprintf(shallow, sizeof(shallow), "%s/%s/%s", fx->volume, SINK, FILE_TS);
    assert_int_equal(sd_mkdir_p(shallow, 0755), 0);
    assert_int_equal(sd_disk_cleanup_pass(fx->st, paths, 1, 50), 0);
    assert_true(exists(shallow));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_removes_orphans_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shallow_dirs_are_kept, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
