/* sd_gzip_pool.h: compression workers for the `parallel` gzip implementation, shared by every
 * slice writer: the independent gzip members of one large batch are compressed at once by the
 * workers and the submitting thread.
 *
 * One batch uses the workers at a time; a submitter that finds them busy with another batch
 * compresses its own jobs (the CPUs are busy anyway), so no writer waits for another. */
#ifndef SD_GZIP_POOL_H
#define SD_GZIP_POOL_H

#include "core/sd_buf.h"
#include "pipeline/sd_gzip.h"

#include <stddef.h>

/* One member to compress: in/len (borrowed) -> out (a finished gzip member; the job's owner
 * keeps the buffer for reuse). rc: 0 or sd_gzip_compress's failure. */
struct sd_gzip_job {
    const char *in;
    size_t len;
    struct sd_buf out;
    int rc;
};

struct sd_gzip_pool;

/* Starts nworkers (>= 1) threads, each with its own compressor of impl at level. Returns 0 with
 * *out owned by the caller (sd_gzip_pool_destroy), or -errno / sd_gzip_create's failure. */
int sd_gzip_pool_create(enum sd_gzip_impl impl, int level, int nworkers, struct sd_gzip_pool **out);

/* Stops and joins the workers and frees pool (NULL is fine). No run may be in progress. */
void sd_gzip_pool_destroy(struct sd_gzip_pool *pool);

/* The level the workers compress at. */
int sd_gzip_pool_level(const struct sd_gzip_pool *pool);

/* Compresses jobs[0..n) into finished members, on the workers and the calling thread (with
 * gz, which must have no open member and has none after), or on the calling thread alone
 * when another batch uses the workers. Returns when every job is done (see each job's rc).
 * Any thread. */
void sd_gzip_pool_run(struct sd_gzip_pool *pool, struct sd_gzip_job *jobs, size_t n,
                      struct sd_gzip *gz);

#endif
