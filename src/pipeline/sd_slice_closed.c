/* sd_slice_closed.c: the record of slice files closed cleanly in this process.
 *
 * DESIGN: a fixed ring of SD__CLOSED_MAX records under one mutex; a note replaces the record of
 * the same file (device and inode) or takes the next slot, overwriting the oldest record; a
 * forget or a take scans the ring and frees the file's slot. Files wait here only between their
 * close and their upload, so the ring holds far fewer than its size unless uploads stall, and then
 * the oldest simply lose the shortcut. A record matches only a file with the same device, inode,
 * size and modification and change times: a write, truncation, rename or replacement since the
 * close changes one of them, except a same-size change within the clock tick of the close
 * (file times are coarse). streamd never writes a closed file without a writer opening it
 * first, and that open forgets the record. */
#include "pipeline/sd_slice_closed.h"

#include <pthread.h>
#include <sys/stat.h>

#define SD__CLOSED_MAX 1024

struct sd__closed {
    int used;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    struct timespec ctime;
    struct sd_slice_stats stats;
};

static pthread_mutex_t sd__closed_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sd__closed sd__closed[SD__CLOSED_MAX];
static size_t sd__closed_next;

static int sd__same_time(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/* The slot recording st's file, or NULL. Under sd__closed_mu. */
static struct sd__closed *sd__find(const struct stat *st)
{
    for (size_t i = 0; i < SD__CLOSED_MAX; i++) {
        struct sd__closed *c = &sd__closed[i];
        if (c->used && c->dev == st->st_dev && c->ino == st->st_ino) {
            return c;
        }
    }
    return NULL;
}

void sd_slice_closed_note(int fd, const struct sd_slice_stats *stats)
{
    struct sd__closed *c;
    struct stat st;

    if (fstat(fd, &st) != 0) {
        return;
    }
    pthread_mutex_lock(&sd__closed_mu);
    c = sd__find(&st);
    if (c == NULL) {
        c = &sd__closed[sd__closed_next];
        sd__closed_next = (sd__closed_next + 1) % SD__CLOSED_MAX;
    }
    c->used = 1;
    c->dev = st.st_dev;
    c->ino = st.st_ino;
    c->size = st.st_size;
    c->mtime = st.st_mtim;
    c->ctime = st.st_ctim;
    c->stats = *stats;
    pthread_mutex_unlock(&sd__closed_mu);
}

/* Frees the slot of st's file, if any; with out, first copies its statistics there when the file
 * is unchanged since its note (returns 1). */
static int sd__remove(const struct stat *st, struct sd_slice_stats *out)
{
    struct sd__closed *c;
    int found = 0;

    pthread_mutex_lock(&sd__closed_mu);
    c = sd__find(st);
    if (c != NULL) {
        if (out != NULL && c->size == st->st_size && sd__same_time(&c->mtime, &st->st_mtim) &&
            sd__same_time(&c->ctime, &st->st_ctim)) {
            *out = c->stats;
            found = 1;
        }
        c->used = 0;
    }
    pthread_mutex_unlock(&sd__closed_mu);
    return found;
}

void sd_slice_closed_forget(int fd)
{
    struct stat st;

    if (fstat(fd, &st) == 0) {
        (void)sd__remove(&st, NULL);
    }
}

int sd_slice_closed_take(const char *path, struct sd_slice_stats *stats)
{
    struct stat st;

    /* a file that changed since its note is of no more use either: its slot is freed too */
    return stat(path, &st) == 0 && sd__remove(&st, stats);
}
