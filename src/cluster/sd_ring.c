/* sd_ring.c: consistent-hash ring (see sd_ring.h).
 *
 * DESIGN: points are 64-bit hashes of "<member>#<i>" (FNV-1a, then the splitmix64 finalizer so
 * that similar strings spread over the whole range), sorted once; a lookup is a binary search.
 * Ties between equal points of different members go to the smaller member id, so every node
 * resolves them alike. */
#include "cluster/sd_ring.h"
#include "core/sd_alloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sd_ring_point {
    uint64_t hash;
    size_t member;
};

struct sd_ring {
    char **members; /* sorted, distinct */
    size_t nmembers;
    struct sd_ring_point *points; /* sorted by hash, then member */
    size_t npoints;
};

static uint64_t sd__ring_hash(const char *s, size_t len)
{
    uint64_t h = 14695981039346656037ull;

    for (size_t i = 0; i < len; i++) {
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

static int sd__ring_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int sd__ring_cmp_point(const void *pa, const void *pb)
{
    const struct sd_ring_point *a = pa, *b = pb;

    if (a->hash != b->hash) {
        return a->hash < b->hash ? -1 : 1;
    }
    return a->member < b->member ? -1 : a->member > b->member;
}

struct sd_ring *sd_ring_create(const char *const *members, size_t n)
{
    struct sd_ring *r = sd_xcalloc(1, sizeof(*r));

    r->members = n ? sd_xcalloc(n, sizeof(*r->members)) : NULL;
    for (size_t i = 0; i < n; i++) {
        r->members[i] = sd_xstrdup(members[i]);
    }
    if (n > 1) {
        qsort(r->members, n, sizeof(*r->members), sd__ring_cmp_str);
    }
    for (size_t i = 0; i < n; i++) {
        if (r->nmembers > 0 && strcmp(r->members[r->nmembers - 1], r->members[i]) == 0) {
            free(r->members[i]);
            continue;
        }
        r->members[r->nmembers++] = r->members[i];
    }
    r->npoints = r->nmembers * SD_RING_POINTS;
    r->points = r->npoints ? sd_xcalloc(r->npoints, sizeof(*r->points)) : NULL;
    for (size_t m = 0; m < r->nmembers; m++) {
        for (size_t i = 0; i < SD_RING_POINTS; i++) {
            char *label = sd_xasprintf("%s#%zu", r->members[m], i);
            r->points[m * SD_RING_POINTS + i] =
                (struct sd_ring_point){sd__ring_hash(label, strlen(label)), m};
            free(label);
        }
    }
    if (r->npoints > 1) {
        qsort(r->points, r->npoints, sizeof(*r->points), sd__ring_cmp_point);
    }
    return r;
}

const char *sd_ring_owner(const struct sd_ring *r, const char *key)
{
    uint64_t h;
    size_t lo = 0, hi;

    if (r == NULL || r->npoints == 0) {
        return NULL;
    }
    h = sd__ring_hash(key, strlen(key));
    hi = r->npoints;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->points[mid].hash < h) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return r->members[r->points[lo == r->npoints ? 0 : lo].member];
}

size_t sd_ring_members(const struct sd_ring *r)
{
    return r != NULL ? r->nmembers : 0;
}

void sd_ring_destroy(struct sd_ring *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->nmembers; i++) {
        free(r->members[i]);
    }
    free(r->members);
    free(r->points);
    free(r);
}
