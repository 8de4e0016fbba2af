/* sd_assign.c: volume assignment by preferred types (see sd_assign.h).
 *
 * DESIGN: on one node the reference's per-node stacks reduce to one list sorted by type
 * priority (the first preferred type highest, unlisted types lowest), ties broken by a hash of
 * seed + type + label; the assignment is the first `count` of that list. The hash is FNV-1a
 * (the reference uses xxhash: the order among equal types is stable but not the same as the
 * reference's, which no client can observe). */
#include "storage/sd_assign.h"
#include "core/sd_alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sd__ranked {
    size_t index;
    size_t priority;
    uint64_t hash;
};

static uint64_t sd__fnv1a(uint64_t h, const char *s)
{
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static int sd__cmp_ranked(const void *a, const void *b)
{
    const struct sd__ranked *x = a, *y = b;

    if (x->priority != y->priority) {
        return x->priority > y->priority ? -1 : 1;
    }
    if (x->hash != y->hash) {
        return x->hash < y->hash ? -1 : 1;
    }
    return x->index < y->index ? -1 : x->index > y->index;
}

size_t sd_assign_volumes(const struct sd_assign_volume *vols, size_t nvols, size_t count,
                         const char *const *preferred, size_t npreferred, uint64_t seed,
                         size_t *out)
{
    struct sd__ranked *r = sd_xcalloc(nvols + 1, sizeof(*r));
    char seed_text[32];
    size_t n = count < nvols ? count : nvols;

    snprintf(seed_text, sizeof(seed_text), "%llu", (unsigned long long)seed);
    for (size_t i = 0; i < nvols; i++) {
        r[i].index = i;
        for (size_t p = 0; p < npreferred; p++) {
            if (strcmp(vols[i].type, preferred[p]) == 0) {
                r[i].priority = npreferred - p;
                break;
            }
        }
        r[i].hash = sd__fnv1a(
            sd__fnv1a(sd__fnv1a(14695981039346656037ULL, seed_text), vols[i].type), vols[i].label);
    }
    qsort(r, nvols, sizeof(*r), sd__cmp_ranked);
    for (size_t i = 0; i < n; i++) {
        out[i] = r[i].index;
    }
    free(r);
    return n;
}

size_t sd_assign_slices(size_t nslices, const char *const *nodes, size_t nnodes,
                        const char *node_id, size_t min_per_node, size_t *out)
{
    size_t index = 0, members = nnodes + 1, per_node, count;

    if (nslices == 0) {
        return 0;
    }
    for (size_t i = 0; i < nnodes; i++) {
        int cmp = strcmp(nodes[i], node_id);
        index += cmp < 0;
        members -= cmp == 0; /* registered already: counted once */
    }
    per_node = (nslices + members - 1) / members;
    per_node = per_node > min_per_node ? per_node : min_per_node;
    count = per_node < nslices ? per_node : nslices;
    for (size_t i = 0; i < count; i++) {
        out[i] = (index * per_node + i) % nslices;
    }
    return count;
}
