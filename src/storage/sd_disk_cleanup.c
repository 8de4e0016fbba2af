/* sd_disk_cleanup.c: one pass of the local disk cleanup.
 *
 * DESIGN: the disk walk stops at the slice level (six directory levels below a volume), as the
 * reference's volumeDiskDirs does; files beside the levels (volume-id, writer.lock) are never
 * touched. Directories to remove are shared by up to `concurrency` threads (sd_parallel_for);
 * each removes whole trees with sd_rm_rf. Empty parents (file, sink, ... up to
 * the volume, exclusive) are removed afterwards, deepest first, by rmdir, which fails harmlessly
 * on a directory that is not empty. Failures are counted, not logged: the caller logs. */
#include "storage/sd_disk_cleanup.h"
#include "core/sd_alloc.h"
#include "core/sd_fs.h"
#include "state/sd_state.h"
#include "storage/sd_parallel.h"

#include <dirent.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SD_SLICE_DIR_DEPTH 6 /* project/branch/source/sink/file/slice */

struct sd_dirs {
    char **items;
    size_t n;
    size_t cap;
};

static void sd__dirs_add(struct sd_dirs *d, const char *path)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 64;
        d->items = sd_xrealloc(d->items, d->cap * sizeof(char *));
    }
    d->items[d->n++] = sd_xstrdup(path);
}

static void sd__dirs_free(struct sd_dirs *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->items[i]);
    }
    free(d->items);
}

static int sd__cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds every directory depth levels below path. */
static void sd__walk(const char *path, int depth, struct sd_dirs *out)
{
    DIR *d = opendir(path);
    struct dirent *e;

    while (d != NULL && (e = readdir(d)) != NULL) {
        char child[PATH_MAX];
        struct stat sb;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        if (snprintf(child, sizeof(child), "%s/%s", path, e->d_name) >= (int)sizeof(child) ||
            lstat(child, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            continue;
        }
        if (depth == 1) {
            sd__dirs_add(out, child);
        } else {
            sd__walk(child, depth - 1, out);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
}

/* The local.dir of every slice entity, sorted. */
static int sd__known_dirs(struct sd_state *state, struct sd_dirs *out)
{
    struct sd_kvs kvs;
    int rc;

    memset(&kvs, 0, sizeof(kvs));
    rc = sd_state_range(state, "storage/slice/all/", 0, &kvs);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < kvs.n; i++) {
        json_t *j = json_loadb(kvs.items[i].value, kvs.items[i].value_len, 0, NULL);
        const char *dir = json_string_value(json_object_get(json_object_get(j, "local"), "dir"));
        if (dir != NULL) {
            sd__dirs_add(out, dir);
        }
        json_decref(j);
    }
    sd_kvs_free(&kvs);
    if (out->n > 1) {
        qsort(out->items, out->n, sizeof(char *), sd__cmp_str);
    }
    return 0;
}

struct sd_removal {
    pthread_mutex_t lock;
    struct sd_dirs *orphans;
    size_t removed;
};

static void sd__remove_one(size_t i, void *arg)
{
    struct sd_removal *r = arg;

    if (sd_rm_rf(r->orphans->items[i]) == 0) {
        pthread_mutex_lock(&r->lock);
        r->removed++;
        pthread_mutex_unlock(&r->lock);
    }
}

static int sd__cmp_depth_desc(const void *a, const void *b)
{
    size_t x = strlen(*(char *const *)a), y = strlen(*(char *const *)b);
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Removes the empty parents of the removed directories below their volume, deepest first. */
static void sd__remove_empty_parents(const struct sd_dirs *orphans, const char *const *paths,
                                     size_t npaths)
{
    struct sd_dirs parents = {NULL, 0, 0};

    for (size_t i = 0; i < orphans->n; i++) {
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s", orphans->items[i]);
        for (int level = 1; level < SD_SLICE_DIR_DEPTH; level++) {
            char *slash = strrchr(p, '/');
            if (slash == NULL) {
                break;
            }
            *slash = '\0';
            sd__dirs_add(&parents, p);
        }
    }
    if (parents.n > 1) {
        qsort(parents.items, parents.n, sizeof(char *), sd__cmp_depth_desc);
    }
    for (size_t i = 0; i < parents.n; i++) {
        int is_volume = 0;
        for (size_t v = 0; v < npaths; v++) {
            is_volume |= strcmp(parents.items[i], paths[v]) == 0;
        }
        if (!is_volume) {
            rmdir(parents.items[i]); /* ENOTEMPTY / ENOENT: kept or already gone */
        }
    }
    sd__dirs_free(&parents);
}

int sd_disk_cleanup_pass(struct sd_state *state, const char *const *paths, size_t npaths,
                         int concurrency)
{
    struct sd_dirs disk = {NULL, 0, 0}, known = {NULL, 0, 0}, orphans = {NULL, 0, 0};
    struct sd_removal r;
    int rc;

    for (size_t v = 0; v < npaths; v++) {
        sd__walk(paths[v], SD_SLICE_DIR_DEPTH, &disk);
    }
    rc = sd__known_dirs(state, &known);
    if (rc != 0) {
        goto done;
    }
    for (size_t i = 0; i < disk.n; i++) {
        const char *p = disk.items[i];
        if (known.n == 0 ||
            bsearch(&p, known.items, known.n, sizeof(char *), sd__cmp_str) == NULL) {
            sd__dirs_add(&orphans, p);
        }
    }
    memset(&r, 0, sizeof(r));
    pthread_mutex_init(&r.lock, NULL);
    r.orphans = &orphans;
    sd_parallel_for(orphans.n, concurrency, sd__remove_one, &r);
    pthread_mutex_destroy(&r.lock);
    sd__remove_empty_parents(&orphans, paths, npaths);
    rc = (int)r.removed;
done:
    sd__dirs_free(&disk);
    sd__dirs_free(&known);
    sd__dirs_free(&orphans);
    return rc;
}
