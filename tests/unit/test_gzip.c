/* test_gzip.c: unit tests of pipeline/sd_gzip: round trips through zlib for every
 * implementation and level, sync-flush boundaries, member completion, multi-member files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "core/sd_fs.h"
#include "pipeline/sd_gzip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "test_inflate.h"


/* Deterministic CSV-like test data of len bytes. */
static void make_rows(struct sd_buf *b, size_t len, unsigned seed)
{
    unsigned x = seed * 2654435761u + 1;
    char row[160];

    while (b->len < len) {
        int n;
        x = x * 1103515245u + 12345u;
        n = snprintf(row, sizeof(row), "\"%u\",\"user-%u\",\"value %u with \"\"quotes\"\"\"\n",
                     x % 100000, (x >> 8) % 977, (x >> 3) % 31337);
        sd_buf_append(b, row, (size_t)n);
    }
    b->len = len;
}

static void roundtrip(enum sd_gzip_impl impl, int level, size_t total, size_t batch)
{
    struct sd_gzip *gz = NULL;
    struct sd_buf in = SD_BUF_INIT;
    struct sd_buf out = SD_BUF_INIT;
    struct sd_buf back = SD_BUF_INIT;
    struct sd_gzip_member m;

    make_rows(&in, total, (unsigned)level);
    assert_int_equal(sd_gzip_create(impl, level, &gz), 0);
    for (size_t off = 0; off < total; off += batch) {
        size_t n = total - off < batch ? total - off : batch;
        size_t before = out.len;
        assert_int_equal(sd_gzip_compress(gz, in.data + off, n, 0, &out), 0);
        /* Every batch ends at a sync-flush boundary: the empty stored block. */
        assert_true(out.len - before >= 4);
        assert_memory_equal(out.data + out.len - 4, "\x00\x00\xff\xff", 4);
    }
    sd_gzip_member_state(gz, &m);
    assert_true(m.is_open);
    assert_int_equal(m.in_bytes, total);
    assert_int_equal(m.crc, (uint32_t)crc32(0, (const Bytef *)in.data, (uInt)total));
    assert_int_equal(sd_gzip_finish(gz, &out), 0);
    sd_gzip_member_state(gz, &m);
    assert_false(m.is_open);
    assert_int_equal(sd_test_inflate_all(out.data, out.len, &back), 1);
    assert_int_equal(back.len, total);
    assert_memory_equal(back.data, in.data, total);
    sd_gzip_destroy(gz);
    sd_buf_fini(&in);
    sd_buf_fini(&out);
    sd_buf_fini(&back);
}

static void test_roundtrip_isal_levels(void **state)
{
    (void)state;
    for (int level = 1; level <= 9; level++) {
        roundtrip(SD_GZIP_FAST, level, 200000, 7000);
    }
    roundtrip(SD_GZIP_PARALLEL, 1, 100000, 100000);
}

static void test_roundtrip_zlib_levels(void **state)
{
    (void)state;
    for (int level = 1; level <= 9; level++) {
        roundtrip(SD_GZIP_STANDARD, level, 120000, 9000);
    }
}

static void test_large_batch(void **state)
{
    (void)state;
    roundtrip(SD_GZIP_FAST, 1, 8 << 20, 3 << 20);
    roundtrip(SD_GZIP_STANDARD, 1, 3 << 20, 3 << 20);
}

static void test_effective_level(void **state)
{
    (void)state;
    assert_int_equal(sd_gzip_effective_level(SD_GZIP_FAST, 1), 1);
    assert_int_equal(sd_gzip_effective_level(SD_GZIP_FAST, 3), 3);
    assert_int_equal(sd_gzip_effective_level(SD_GZIP_FAST, 9), 3);
    assert_int_equal(sd_gzip_effective_level(SD_GZIP_PARALLEL, 6), 3);
    assert_int_equal(sd_gzip_effective_level(SD_GZIP_STANDARD, 9), 9);
}

static void test_invalid_args(void **state)
{
    struct sd_gzip *gz = (struct sd_gzip *)1;
    (void)state;
    assert_int_equal(sd_gzip_create(SD_GZIP_FAST, 0, &gz), SD_EINVAL);
    assert_null(gz);
    assert_int_equal(sd_gzip_create(SD_GZIP_STANDARD, 10, &gz), SD_EINVAL);
    assert_int_equal(sd_gzip_create((enum sd_gzip_impl)7, 1, &gz), SD_EINVAL);
    sd_gzip_destroy(NULL);
}

/* Several members in one buffer (header reset after every isal_deflate_reset). */
static void test_multi_member(void **state)
{
    enum sd_gzip_impl impls[] = {SD_GZIP_FAST, SD_GZIP_STANDARD};
    (void)state;
    for (size_t i = 0; i < 2; i++) {
        struct sd_gzip *gz = NULL;
        struct sd_buf in = SD_BUF_INIT;
        struct sd_buf out = SD_BUF_INIT;
        struct sd_buf back = SD_BUF_INIT;
        size_t starts[6];

        make_rows(&in, 60000, 3);
        assert_int_equal(sd_gzip_create(impls[i], 2, &gz), 0);
        for (int k = 0; k < 6; k++) {
            starts[k] = out.len;
            assert_int_equal(sd_gzip_compress(gz, in.data + k * 10000, 5000, 0, &out), 0);
            assert_int_equal(sd_gzip_compress(gz, in.data + k * 10000 + 5000, 5000, 1, &out), 0);
        }
        /* Every member starts with a full gzip header. */
        for (int k = 0; k < 6; k++) {
            assert_int_equal((unsigned char)out.data[starts[k]], 0x1f);
            assert_int_equal((unsigned char)out.data[starts[k] + 1], 0x8b);
            assert_int_equal(out.data[starts[k] + 2], 8);
        }
        assert_int_equal(sd_test_inflate_all(out.data, out.len, &back), 6);
        assert_int_equal(back.len, 60000);
        assert_memory_equal(back.data, in.data, 60000);
        sd_gzip_destroy(gz);
        sd_buf_fini(&in);
        sd_buf_fini(&out);
        sd_buf_fini(&back);
    }
}

/* A member cut at any sync-flush boundary is completed by the 13 completion bytes. */
static void test_complete_member(void **state)
{
    enum sd_gzip_impl impls[] = {SD_GZIP_FAST, SD_GZIP_STANDARD};
    (void)state;
    for (size_t i = 0; i < 2; i++) {
        struct sd_gzip *gz = NULL;
        struct sd_buf in = SD_BUF_INIT;
        struct sd_buf out = SD_BUF_INIT;
        size_t cuts[5];
        uint32_t crcs[5];
        uint64_t sizes[5];

        make_rows(&in, 50000, 9);
        assert_int_equal(sd_gzip_create(impls[i], 1, &gz), 0);
        for (int k = 0; k < 5; k++) {
            struct sd_gzip_member m;
            assert_int_equal(sd_gzip_compress(gz, in.data + k * 10000, 10000, 0, &out), 0);
            sd_gzip_member_state(gz, &m);
            cuts[k] = out.len;
            crcs[k] = m.crc;
            sizes[k] = m.in_bytes;
        }
        for (int k = 0; k < 5; k++) {
            struct sd_buf file = SD_BUF_INIT;
            struct sd_buf back = SD_BUF_INIT;
            sd_buf_append(&file, out.data, cuts[k]);
            assert_int_equal(sd_gzip_complete_member(crcs[k], (uint32_t)sizes[k], &file), 0);
            assert_int_equal(file.len, cuts[k] + SD_GZIP_COMPLETION_LEN);
            assert_int_equal(sd_test_inflate_all(file.data, file.len, &back), 1);
            assert_int_equal(back.len, (k + 1) * 10000);
            assert_memory_equal(back.data, in.data, back.len);
            sd_buf_fini(&file);
            sd_buf_fini(&back);
        }
        /* After a reset (failed write) the next compress starts a new member. */
        {
            struct sd_buf file = SD_BUF_INIT;
            struct sd_buf back = SD_BUF_INIT;
            sd_buf_append(&file, out.data, cuts[1]);
            sd_gzip_complete_member(crcs[1], (uint32_t)sizes[1], &file);
            sd_gzip_reset(gz);
            assert_int_equal(sd_gzip_compress(gz, in.data + 20000, 30000, 1, &file), 0);
            assert_int_equal(sd_test_inflate_all(file.data, file.len, &back), 2);
            assert_int_equal(back.len, 50000);
            assert_memory_equal(back.data, in.data, 50000);
            sd_buf_fini(&file);
            sd_buf_fini(&back);
        }
        sd_gzip_destroy(gz);
        sd_buf_fini(&in);
        sd_buf_fini(&out);
    }
}

static void test_crc32_matches_zlib(void **state)
{
    struct sd_buf in = SD_BUF_INIT;
    uint32_t a;
    (void)state;
    make_rows(&in, 100003, 5);
    a = sd_gzip_crc32(0, in.data, 50000);
    a = sd_gzip_crc32(a, in.data + 50000, in.len - 50000);
    assert_int_equal(a, (uint32_t)crc32(0, (const Bytef *)in.data, (uInt)in.len));
    assert_int_equal(sd_gzip_crc32(0, NULL, 0), 0);
    sd_buf_fini(&in);
}

/* Empty inputs: an empty batch still gives a valid member; finishing nothing is a no-op. */
static void test_empty(void **state)
{
    struct sd_gzip *gz = NULL;
    struct sd_buf out = SD_BUF_INIT;
    struct sd_buf back = SD_BUF_INIT;
    (void)state;
    assert_int_equal(sd_gzip_create(SD_GZIP_FAST, 1, &gz), 0);
    assert_int_equal(sd_gzip_finish(gz, &out), 0);
    assert_int_equal(out.len, 0);
    assert_int_equal(sd_gzip_compress(gz, "", 0, 1, &out), 0);
    assert_int_equal(sd_test_inflate_all(out.data, out.len, &back), 1);
    assert_int_equal(back.len, 0);
    sd_gzip_destroy(gz);
    sd_buf_fini(&out);
    sd_buf_fini(&back);
}

/* The gzip tool accepts our multi-member output (fast and standard mixed). */
static void test_gzip_tool_accepts(void **state)
{
    const char *base = getenv("SD_TEST_TMPDIR");
    char dir[4096];
    char path[4200];
    char cmd[12800];
    struct sd_gzip *a = NULL;
    struct sd_gzip *b = NULL;
    struct sd_buf in = SD_BUF_INIT;
    struct sd_buf out = SD_BUF_INIT;
    int st;
    (void)state;

    if (base == NULL || base[0] == '\0') {
        base = "/tmp";
    }
    sd_mkdir_p(base, 0755);
    snprintf(dir, sizeof(dir), "%s/test_gzip.XXXXXX", base);
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/x.csv.gz", dir);
    make_rows(&in, 300000, 11);
    assert_int_equal(sd_gzip_create(SD_GZIP_FAST, 3, &a), 0);
    assert_int_equal(sd_gzip_create(SD_GZIP_STANDARD, 6, &b), 0);
    sd_gzip_compress(a, in.data, 100000, 0, &out);
    sd_gzip_compress(a, in.data + 100000, 50000, 1, &out);
    sd_gzip_compress(b, in.data + 150000, 100000, 0, &out);
    sd_gzip_finish(b, &out);
    sd_gzip_compress(a, in.data + 250000, 50000, 0, &out);
    sd_gzip_finish(a, &out);
    assert_int_equal(sd_write_file_atomic(path, out.data, out.len, 0640), 0);
    snprintf(cmd, sizeof(cmd), "gzip -t '%s'", path);
    st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    snprintf(cmd, sizeof(cmd), "%s/x.csv", dir);
    assert_int_equal(sd_write_file_atomic(cmd, in.data, in.len, 0640), 0);
    snprintf(cmd, sizeof(cmd), "gzip -dc '%s' | cmp -s - '%s/x.csv'", path, dir);
    st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    sd_gzip_destroy(a);
    sd_gzip_destroy(b);
    sd_buf_fini(&in);
    sd_buf_fini(&out);
    sd_rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_isal_levels),
        cmocka_unit_test(test_roundtrip_zlib_levels),
        cmocka_unit_test(test_large_batch),
        cmocka_unit_test(test_effective_level),
        cmocka_unit_test(test_invalid_args),
        cmocka_unit_test(test_multi_member),
        cmocka_unit_test(test_complete_member),
        cmocka_unit_test(test_crc32_matches_zlib),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_gzip_tool_accepts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
