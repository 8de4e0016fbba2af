/* sd_uuid.c: UUID v7 generation.
 *
 * DESIGN. Each thread owns a xoshiro256** generator seeded from getrandom() on first use (the
 * only mutable state, thread-local, so no locks). rand_a (12 bits) is a counter: it starts at a
 * random value below 0x800 for each new millisecond and increments for further ids in the same
 * millisecond, so one thread's ids sort in creation order; on overflow it starts afresh at a random
 * value (the 62 random bits of rand_b still make ids unique). The timestamp is always the ms given.
 * A forked child would repeat its parent's sequence: streamd does not fork after startup. */
#include "pipeline/sd_uuid.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>

struct uuid_rng {
    uint64_t s[4];
    int seeded;
    int64_t last_ms;
    unsigned counter;
};

static _Thread_local struct uuid_rng tl_rng;

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void rng_seed(struct uuid_rng *r)
{
    uint64_t seed[4] = {0, 0, 0, 0};
    struct timespec ts;
    uint64_t x;
    ssize_t n;

    n = getrandom(seed, sizeof(seed), 0);
    if (n != (ssize_t)sizeof(seed)) {
        /* No kernel entropy (very old kernel): mix the clock and addresses. */
        clock_gettime(CLOCK_REALTIME, &ts);
        x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)(uintptr_t)r;
        for (int i = 0; i < 4; i++) {
            seed[i] ^= splitmix64(&x);
        }
    }
    if ((seed[0] | seed[1] | seed[2] | seed[3]) == 0) {
        seed[0] = 1;
    }
    memcpy(r->s, seed, sizeof(seed));
    r->seeded = 1;
    r->last_ms = -1;
}

static uint64_t rng_next(struct uuid_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

void sd_uuid_v7(int64_t ms, char out[SD_UUID_STR_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    struct uuid_rng *r = &tl_rng;
    unsigned char b[16];
    uint64_t ts = (uint64_t)ms & 0xFFFFFFFFFFFFULL;
    uint64_t rb;
    char *w = out;

    if (!r->seeded) {
        rng_seed(r);
    }
    rb = rng_next(r);
    if (ms == r->last_ms && r->counter < 0xFFF) {
        r->counter++;
    } else {
        r->counter = (unsigned)(rb >> 53); /* 11 random bits: room to count up */
        r->last_ms = ms;
        rb = rng_next(r);
    }
    for (int i = 0; i < 6; i++) {
        b[i] = (unsigned char)(ts >> (40 - 8 * i));
    }
    b[6] = (unsigned char)(0x70 | (r->counter >> 8));
    b[7] = (unsigned char)(r->counter & 0xFF);
    b[8] = (unsigned char)(0x80 | ((rb >> 56) & 0x3F));
    for (int i = 9; i < 16; i++) {
        b[i] = (unsigned char)(rb >> (8 * (15 - i)));
    }
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            *w++ = '-';
        }
        *w++ = hex[b[i] >> 4];
        *w++ = hex[b[i] & 0xF];
    }
    *w = '\0';
}
