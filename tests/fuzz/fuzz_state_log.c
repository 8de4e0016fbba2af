/* fuzz_state_log.c: fuzz target for the embedded state store's recovery: the log (WAL) and
 * snapshot loaders given damaged or hostile files.
 *
 * The first input byte picks the layout; the rest is split into files of a fresh store
 * directory: 0 = all of it is "wal"; 1 = "snapshot"; 2 = a 2-byte length, then that many bytes
 * of "snapshot" and the rest "wal"; 3 = a 2-byte length, then "wal" and the rest "wal.new".
 * Opening must never crash or leak. When it succeeds, the store must accept a write, and a
 * second open must see exactly the state the first one left (recovery is idempotent);
 * otherwise the target aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sd_error.h"
#include "core/sd_fs.h"
#include "core/sd_log.h"
#include "state/sd_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void write_file(const char *dir, const char *name, const uint8_t *p, size_t len)
{
    char path[600];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (sd_write_file_atomic(path, p, len, 0644) != 0) {
        abort();
    }
}

static int same_kvs(const struct sd_kvs *a, const struct sd_kvs *b)
{
    if (a->n != b->n || a->rev != b->rev) {
        return 0;
    }
    for (size_t i = 0; i < a->n; i++) {
        const struct sd_kv *x = &a->items[i], *y = &b->items[i];
        if (strcmp(x->key, y->key) != 0 || x->value_len != y->value_len ||
            memcmp(x->value, y->value, x->value_len) != 0 || x->create_rev != y->create_rev ||
            x->mod_rev != y->mod_rev || x->version != y->version || x->lease != y->lease) {
            return 0;
        }
    }
    return 1;
}

static void check_store(const char *dir)
{
    struct sd_state *st = NULL;
    struct sd_kvs first, second;
    int64_t rev = 0;
    int rc = sd_state_open_backend("embedded", NULL, dir, &st);

    if (getenv("SD_FUZZ_VERBOSE") != NULL) {
        fprintf(stderr, "open: %s\n", sd_strerror(rc));
    }
    if (rc != 0) {
        if (st != NULL || (rc != SD_ECORRUPT && rc >= SD_ERR_BASE)) {
            abort(); /* damage is reported as SD_ECORRUPT, nothing else from our range */
        }
        return;
    }
    if (sd_state_range(st, "", 0, &first) != 0) {
        abort();
    }
    if (sd_state_put(st, "fuzz/after", "x", 1, 0, &rev) != 0 || rev != first.rev + 1) {
        abort();
    }
    sd_kvs_free(&first);
    if (sd_state_range(st, "", 0, &first) != 0) {
        abort();
    }
    sd_state_close(st);
    if (sd_state_open_backend("embedded", NULL, dir, &st) != 0 ||
        sd_state_range(st, "", 0, &second) != 0 || !same_kvs(&first, &second)) {
        abort();
    }
    sd_kvs_free(&first);
    sd_kvs_free(&second);
    sd_state_close(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *base = getenv("SD_TEST_TMPDIR");
    char dir[512];
    size_t split;

    if (size < 1) {
        return 0;
    }
    sd_log_set_level(SD_LOG_ERROR);
    if (base == NULL || base[0] == '\0') {
        base = "/tmp";
    }
    sd_mkdir_p(base, 0755);
    snprintf(dir, sizeof(dir), "%s/sd-fuzz-state-XXXXXX", base);
    if (mkdtemp(dir) == NULL) {
        abort();
    }
    switch (data[0] % 4) {
    case 0:
        write_file(dir, "wal", data + 1, size - 1);
        break;
    case 1:
        write_file(dir, "snapshot", data + 1, size - 1);
        break;
    default:
        if (size < 3) {
            break;
        }
        split = ((size_t)data[1] | ((size_t)data[2] << 8));
        if (split > size - 3) {
            split = size - 3;
        }
        write_file(dir, data[0] % 4 == 2 ? "snapshot" : "wal", data + 3, split);
        write_file(dir, data[0] % 4 == 2 ? "wal" : "wal.new", data + 3 + split, size - 3 - split);
        break;
    }
    check_store(dir);
    sd_rm_rf(dir);
    return 0;
}
