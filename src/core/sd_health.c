/* sd_health.c: the readiness registry (see sd_health.h).
 *
 * DESIGN
 * A small array of (component, reason) slots under one mutex, grown on demand (one slot per
 * broken component: bounded by the components that exist); the number of broken components is
 * also kept in an atomic counter, so sd_health_is_ok costs one load. Components may set and
 * clear from any thread, including under their own locks: the registry's mutex is a leaf, held
 * only to copy strings. */
#include "core/sd_health.h"
#include "core/sd_alloc.h"
#include "core/sd_buf.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SD_HEALTH_REASON 160

struct sd_health_slot {
    char component[SD_HEALTH_NAME_MAX];
    char reason[SD_HEALTH_REASON];
};

struct sd_health {
    pthread_mutex_t mu;
    atomic_int broken; /* components currently broken (== n) */
    size_t n, cap;
    struct sd_health_slot *slots;
};

struct sd_health *sd_health_create(void)
{
    struct sd_health *h = sd_xcalloc(1, sizeof(*h));

    pthread_mutex_init(&h->mu, NULL);
    atomic_init(&h->broken, 0);
    return h;
}

void sd_health_destroy(struct sd_health *h)
{
    if (h == NULL) {
        return;
    }
    pthread_mutex_destroy(&h->mu);
    free(h->slots);
    free(h);
}

/* Index of component's slot or h->n (mu held). */
static size_t sd__health_find(const struct sd_health *h, const char *component)
{
    size_t i;

    for (i = 0; i < h->n; i++) {
        if (strncmp(h->slots[i].component, component, SD_HEALTH_NAME_MAX - 1) == 0) {
            break;
        }
    }
    return i;
}

int sd_health_set(struct sd_health *h, const char *component, const char *reason)
{
    size_t i;
    int was_ok = 0;

    if (h == NULL) {
        return 0;
    }
    pthread_mutex_lock(&h->mu);
    i = sd__health_find(h, component);
    if (i == h->n) {
        if (h->n == h->cap) {
            h->cap = h->cap ? h->cap * 2 : 8;
            h->slots = sd_xrealloc(h->slots, h->cap * sizeof(h->slots[0]));
        }
        h->n++;
        was_ok = 1;
        snprintf(h->slots[i].component, SD_HEALTH_NAME_MAX, "%s", component);
        atomic_fetch_add(&h->broken, 1);
    }
    snprintf(h->slots[i].reason, SD_HEALTH_REASON, "%s", reason);
    pthread_mutex_unlock(&h->mu);
    return was_ok;
}

int sd_health_clear(struct sd_health *h, const char *component)
{
    size_t i;
    int was_broken = 0;

    if (h == NULL) {
        return 0;
    }
    pthread_mutex_lock(&h->mu);
    i = sd__health_find(h, component);
    if (i < h->n) {
        h->slots[i] = h->slots[h->n - 1];
        h->n--;
        was_broken = 1;
        atomic_fetch_sub(&h->broken, 1);
    }
    pthread_mutex_unlock(&h->mu);
    return was_broken;
}

int sd_health_is_ok(const struct sd_health *h)
{
    return h == NULL || atomic_load(&h->broken) == 0;
}

int sd_health_render(struct sd_health *h, struct sd_buf *out)
{
    int status = 200;

    if (sd_health_is_ok(h)) {
        sd_buf_append(out, "OK\n", 3);
        return status;
    }
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < h->n; i++) {
        sd_buf_printf(out, "%s: %s\n", h->slots[i].component, h->slots[i].reason);
        status = 503;
    }
    pthread_mutex_unlock(&h->mu);
    if (status == 200) { /* cleared meanwhile */
        sd_buf_append(out, "OK\n", 3);
    }
    return status;
}

int sd_health_route(struct sd_health *h, const char *path, size_t len, struct sd_buf *out)
{
    if (len == strlen("/health-check") && memcmp(path, "/health-check", len) == 0) {
        return sd_health_render(h, out);
    }
    if (len == strlen("/livez") && memcmp(path, "/livez", len) == 0) {
        sd_buf_append(out, "OK\n", 3);
        return 200;
    }
    return 0;
}
