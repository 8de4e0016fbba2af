/* test_tmpdir.h: a fresh temporary directory for one unit test, under $SD_TEST_TMPDIR (else
 * /tmp), named "<prefix>-XXXXXX". Include after <cmocka.h>; the test removes it (sd_rm_rf). */
#ifndef SD_TEST_TMPDIR_H
#define SD_TEST_TMPDIR_H

#include "core/sd_fs.h"

#include <stdio.h>
#include <stdlib.h>

static inline void sd_test_mkdtemp(char *dir, size_t len, const char *prefix)
{
    const char *base = getenv("SD_TEST_TMPDIR");

    if (base == NULL || base[0] == '\0') {
        base = "/tmp";
    }
    assert_int_equal(sd_mkdir_p(base, 0755), 0);
    assert_true((size_t)snprintf(dir, len, "%s/%s-XXXXXX", base, prefix) < len);
    assert_non_null(mkdtemp(dir));
}

#endif
