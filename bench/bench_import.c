/* bench_import.c: `make bench`'s table-import figures: imports one CSV file into a fresh table
 * of a table backend ("sqlite" or "postgres"), exactly as the operator imports a file's staged
 * slice (one sd_tables_import call, one transaction, the ledger row), and prints its throughput.
 * Usage: bench_import BACKEND LOCATION TABLE CSV NCOLUMNS [PKCOLUMN]
 *   LOCATION is the SQLite directory or the libpq conninfo; TABLE a table id (in.c-x.name);
 *   columns are named c1..cN; PKCOLUMN (1-based) makes that column the primary key (the upsert
 *   path). Prints "rows=N seconds=S rows_per_s=R". */
#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "core/sd_time.h"
#include "tables/sd_tables.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ssize_t bench_read(void *arg, void *buf, size_t len)
{
    ssize_t n = read(*(int *)arg, buf, len);

    return n < 0 ? -errno : n;
}

int main(int argc, char **argv)
{
    struct sd_buf err = SD_BUF_INIT;
    struct sd_tables *t = NULL;
    struct sd_import_slice slice;
    struct sd_table_schema schema;
    const char **names;
    unsigned char *pk;
    uint64_t rows = 0;
    long ncols, pkcol;
    double t0, secs;
    int fd, rc;

    if (argc < 6 || (ncols = strtol(argv[5], NULL, 10)) <= 0) {
        fprintf(stderr, "usage: %s BACKEND LOCATION TABLE CSV NCOLUMNS [PKCOLUMN]\n", argv[0]);
        return 2;
    }
    pkcol = argc > 6 ? strtol(argv[6], NULL, 10) : 0;
    names = calloc((size_t)ncols, sizeof(*names));
    pk = calloc((size_t)ncols, 1);
    for (long i = 0; i < ncols; i++) {
        char name[32];
        snprintf(name, sizeof(name), "c%ld", i + 1);
        names[i] = strdup(name);
        pk[i] = i + 1 == pkcol;
    }
    schema = (struct sd_table_schema){names, (size_t)ncols, pkcol > 0 ? pk : NULL};
    fd = open(argv[4], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        perror(argv[4]);
        return 1;
    }
    rc = sd_tables_open_backend(argv[1], NULL, argv[2], &t);
    if (rc != 0) {
        fprintf(stderr, "open %s backend: %s\n", argv[1], sd_strerror(rc));
        return 1;
    }
    slice = (struct sd_import_slice){argv[3], bench_read, &fd}; /* one ledger key per table */
    t0 = (double)sd_mono_ms();
    rc = sd_tables_import(t, 1, argv[3], &schema, &slice, 1, &rows, &err);
    secs = ((double)sd_mono_ms() - t0) / 1000.0;
    if (rc != 0) {
        fprintf(stderr, "import: %s: %s\n", sd_strerror(rc), sd_buf_cstr(&err));
        return 1;
    }
    printf("rows=%llu seconds=%.3f rows_per_s=%.0f\n", (unsigned long long)rows, secs,
           secs > 0 ? (double)rows / secs : 0.0);
    sd_tables_close(t);
    close(fd);
    for (long i = 0; i < ncols; i++) {
        free((char *)names[i]);
    }
    free(names);
    free(pk);
    sd_buf_fini(&err);
    return 0;
}
