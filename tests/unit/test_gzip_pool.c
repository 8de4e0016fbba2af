/* test_gzip_pool.c: the shared compression workers: every job becomes one gzip member of its
 * input, also when several writers submit at once (the busy path compresses on the caller). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/sd_buf.h"
#include "pipeline/sd_gzip.h"
#include "pipeline/sd_gzip_pool.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#define SUBMITTERS 4
#define RUNS 30
#define JOBS 8
#define JOB_BYTES 20000

/* Inflates data, which must be exactly one gzip member, and compares it with want. */
static int one_member_equals(const struct sd_buf *data, const char *want, size_t want_len)
{
    static _Thread_local unsigned char out[JOB_BYTES + 1];
    z_stream zs;
    int zrc;

    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, 15 + 16) != Z_OK) {
        return 0;
    }
    zs.next_in = (Bytef *)data->data;
    zs.avail_in = (uInt)data->len;
    zs.next_out = out;
    zs.avail_out = sizeof(out);
    zrc = inflate(&zs, Z_FINISH);
    inflateEnd(&zs);
    return zrc == Z_STREAM_END && zs.avail_in == 0 && zs.total_out == want_len &&
           memcmp(out, want, want_len) == 0;
}

struct submitter {
    struct sd_gzip_pool *pool;
    int id;
    int bad;
};

static void *submitter_main(void *arg)
{
    struct submitter *sb = arg;
    static _Thread_local char in[JOBS][JOB_BYTES];
    struct sd_gzip_job jobs[JOBS];
    struct sd_gzip *gz = NULL;

    if (sd_gzip_create(SD_GZIP_PARALLEL, 1, &gz) != 0) {
        sb->bad = 1;
        return NULL;
    }
    memset(jobs, 0, sizeof(jobs));
    for (int r = 0; r < RUNS; r++) {
        for (int j = 0; j < JOBS; j++) {
            size_t len = (size_t)(JOB_BYTES - 97 * j - r);
            int n = 0;
            while ((size_t)n < len) {
                n += snprintf(in[j] + n, len - (size_t)n, "\"s%d\",\"r%d\",\"j%d\",\"%d\"\n",
                              sb->id, r, j, n);
            }
            jobs[j].in = in[j];
            jobs[j].len = len - 1;
        }
        sd_gzip_pool_run(sb->pool, jobs, JOBS, gz);
        for (int j = 0; j < JOBS; j++) {
            if (jobs[j].rc != 0 || !one_member_equals(&jobs[j].out, jobs[j].in, jobs[j].len)) {
                sb->bad = 1;
            }
        }
    }
    for (int j = 0; j < JOBS; j++) {
        sd_buf_fini(&jobs[j].out);
    }
    sd_gzip_destroy(gz);
    return NULL;
}

static void test_concurrent_submitters(void **state)
{
    struct sd_gzip_pool *pool = NULL;
    struct submitter sbs[SUBMITTERS];
    pthread_t tids[SUBMITTERS];

    (void)state;
    assert_int_equal(sd_gzip_pool_create(SD_GZIP_PARALLEL, 1, 2, &pool), 0);
    assert_int_equal(sd_gzip_pool_level(pool), 1);
    for (int i = 0; i < SUBMITTERS; i++) {
        sbs[i].pool = pool;
        sbs[i].id = i;
        sbs[i].bad = 0;
        pthread_create(&tids[i], NULL, submitter_main, &sbs[i]);
    }
    for (int i = 0; i < SUBMITTERS; i++) {
        pthread_join(tids[i], NULL);
        assert_int_equal(sbs[i].bad, 0);
    }
    sd_gzip_pool_destroy(pool);
    sd_gzip_pool_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_submitters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
