/* test_fs.c: the private-mode helpers of core/sd_fs: sd_make_private tightens files and
 * directories left by older versions, and sd_write_file_atomic never lets a stale temp file lend
 * its looser mode to the result. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/sd_fs.h"

static mode_t mode_of(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

static void test_make_private(void **state)
{
    char dir[] = "/tmp/sd-fs-XXXXXX";
    char file[64], sub[64];
    int fd;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof(file), "%s/f", dir);
    snprintf(sub, sizeof(sub), "%s/d", dir);
    fd = open(file, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(chmod(file, 0644), 0);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(chmod(sub, 0755), 0);
    assert_int_equal(sd_make_private(file), 0);
    assert_int_equal(sd_make_private(sub), 0);
    assert_int_equal(mode_of(file), 0600);
    assert_int_equal(mode_of(sub), 0700);
    assert_int_equal(chmod(file, 0400), 0); /* stricter stays as it is */
    assert_int_equal(sd_make_private(file), 0);
    assert_int_equal(mode_of(file), 0400);
    snprintf(file, sizeof(file), "%s/missing", dir);
    assert_int_equal(sd_make_private(file), 0);
    assert_int_equal(sd_rm_rf(dir), 0);
}

static void test_atomic_write_ignores_stale_temp(void **state)
{
    char dir[] = "/tmp/sd-fs-XXXXXX";
    char path[64], tmp[64];
    char *data = NULL;
    int fd;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/snapshot", dir);
    snprintf(tmp, sizeof(tmp), "%s/snapshot.tmp", dir);
    fd = open(tmp, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "stale", 5), 5);
    close(fd);
    assert_int_equal(chmod(tmp, 0644), 0);
    assert_int_equal(sd_write_file_atomic(path, "new", 3, SD_FILE_MODE), 0);
    assert_int_equal(mode_of(path), SD_FILE_MODE);
    assert_int_equal(sd_read_file(path, &data, NULL), 0);
    assert_string_equal(data, "new");
    free(data);
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(sd_rm_rf(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_make_private),
        cmocka_unit_test(test_atomic_write_ignores_stale_temp),
    };

    umask(022);
    return cmocka_run_group_tests_name("fs", tests, NULL, NULL);
}
