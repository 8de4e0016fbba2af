/* staging_local.c: the "local" staging backend: one regular file per object, at <dir>/<key>.
 *
 * A put writes <key>.tmp-<16 hex> in the object's final directory (creating missing directories
 * and fsyncing the parent of each one it creates), copies the input files into it
 * (copy_file_range, falling back to read/write), fsyncs it, renames it over <key> and fsyncs the
 * directory (STYLE.md §9), so readers and a crash see the old object or the new one, never a part.
 * Temp names never appear in listings and cannot be keys (sd_staging_key_check rejects ".tmp-").
 *
 * DESIGN: every call is path-based and re-resolves the directory, so a staging directory that was
 * unusable (replaced by a file, read-only, full) works again as soon as it is restored; a put
 * also re-creates a missing directory. Shared state, all in the context:
 * - the temp files of the puts in progress (a mutex-guarded list): a put registers its temp name
 *   before creating the file and unregisters it after the rename or unlink, so the cleanup of
 *   leftover temp files (after each put of the same key, on del_prefix, and of the whole tree on
 *   open) never removes a file that a running put still writes;
 * - a rwlock: del and del_prefix remove the directories they leave empty under its write side,
 *   and a put holds its read side from creating its directories until its temp file exists, so
 *   no directory vanishes under a put of this store (one removed from outside is re-created and
 *   the put retried).
 * Concurrent puts of one key each write their own temp file; the last rename wins. A put syncs
 * through an fd of its directory, which stays valid if a concurrent del removes the new object
 * and its directory. Deletes are not fsynced: a delete lost in a crash only leaves an object to
 * delete again. Readers are plain fds: they keep the object they opened. The backend never
 * logs. */
#include "staging/sd_staging.h"

#include "core/sd_alloc.h"
#include "core/sd_buf.h"
#include "core/sd_error.h"
#include "core/sd_fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STAGING_LOCAL_TMP_MARK ".tmp-"
#define STAGING_LOCAL_COPY_BUF (256 * 1024)
/* How often a put re-creates its directory when something else removed it meanwhile. */
#define STAGING_LOCAL_PUT_ATTEMPTS 4

struct staging_local {
    char *root;           /* the staging directory, without a trailing '/' */
    pthread_mutex_t lock; /* guards inflight, ninflight, cap_inflight, seq */
    /* read-held by a put from creating its directories to creating its temp file; write-held
     * by every removal of an empty directory */
    pthread_rwlock_t prune_lock;
    char **inflight; /* relative temp paths of the puts in progress */
    size_t ninflight, cap_inflight;
    uint64_t seq;
};

struct staging_local_reader {
    int fd;
};

enum staging_local_mode {
    STAGING_LOCAL_LIST,   /* collect the keys that match */
    STAGING_LOCAL_DELETE, /* unlink the keys (and stale temp files) that match */
    STAGING_LOCAL_SWEEP   /* unlink the stale temp files that match */
};

struct staging_local_walk {
    struct staging_local *sl;
    enum staging_local_mode mode;
    const char *prefix;
    size_t prefix_len;
    char **keys;
    size_t n, cap;
    int rc; /* the first error; DELETE and SWEEP go on past errors */
};

/* ---- paths and the in-flight temp set --------------------------------------------------- */

/* Returns "<root>/<rel>" (or root for ""), owned. */
static char *staging_local_path(const struct staging_local *sl, const char *rel)
{
    return rel[0] == '\0' ? sd_xstrdup(sl->root) : sd_xasprintf("%s/%s", sl->root, rel);
}

/* Registers and returns (owned by the set) a new temp path "<key>.tmp-<16 hex>" for key. */
static char *staging_local_temp_begin(struct staging_local *sl, const char *key)
{
    uint64_t r = 0;
    char *tmp;

    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        r = ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 44);
    }
    pthread_mutex_lock(&sl->lock);
    /* the sequence keeps names unique within the process even when getrandom failed; O_EXCL
     * catches any collision with another process */
    r ^= ++sl->seq * UINT64_C(0x9e3779b97f4a7c15);
    tmp = sd_xasprintf("%s%s%016" PRIx64, key, STAGING_LOCAL_TMP_MARK, r);
    if (sl->ninflight == sl->cap_inflight) {
        sl->cap_inflight = sl->cap_inflight ? sl->cap_inflight * 2 : 8;
        sl->inflight = sd_xrealloc(sl->inflight, sl->cap_inflight * sizeof(*sl->inflight));
    }
    sl->inflight[sl->ninflight++] = tmp;
    pthread_mutex_unlock(&sl->lock);
    return tmp;
}

/* Unregisters and frees tmp (from staging_local_temp_begin); its file must be gone already. */
static void staging_local_temp_end(struct staging_local *sl, char *tmp)
{
    pthread_mutex_lock(&sl->lock);
    for (size_t i = 0; i < sl->ninflight; i++) {
        if (sl->inflight[i] == tmp) {
            sl->inflight[i] = sl->inflight[--sl->ninflight];
            break;
        }
    }
    pthread_mutex_unlock(&sl->lock);
    free(tmp);
}

static int staging_local_is_inflight(struct staging_local *sl, const char *rel)
{
    int found = 0;

    pthread_mutex_lock(&sl->lock);
    for (size_t i = 0; i < sl->ninflight && !found; i++) {
        found = strcmp(sl->inflight[i], rel) == 0;
    }
    pthread_mutex_unlock(&sl->lock);
    return found;
}

/* ---- directories ------------------------------------------------------------------------ */

/* Creates the root (if missing) and the directories of key's dir part below it, fsyncing the
 * parent of each directory created here. A non-directory in the way (the root replaced by a
 * file) fails here or in the open of the temp file with -ENOTDIR. Returns 0 or -errno. */
static int staging_local_mkdirs(struct staging_local *sl, const char *key)
{
    struct sd_buf path = SD_BUF_INIT;
    const char *seg = key, *slash;
    int rc = 0;

    if (mkdir(sl->root, SD_DIR_MODE) != 0 && errno != EEXIST) {
        rc = errno == ENOENT ? sd_mkdir_p(sl->root, SD_DIR_MODE) : -errno;
        if (rc != 0) {
            goto out;
        }
    }
    if (sd_buf_append_str(&path, sl->root) != 0) {
        rc = -ENOMEM;
        goto out;
    }
    while ((slash = strchr(seg, '/')) != NULL) {
        if (sd_buf_append_char(&path, '/') != 0 ||
            sd_buf_append(&path, seg, (size_t)(slash - seg)) != 0) {
            rc = -ENOMEM;
            goto out;
        }
        if (mkdir(sd_buf_cstr(&path), SD_DIR_MODE) == 0) {
            rc = sd_fsync_parent(sd_buf_cstr(&path));
            if (rc != 0) {
                goto out;
            }
        } else if (errno != EEXIST) {
            rc = -errno;
            goto out;
        }
        seg = slash + 1;
    }
out:
    sd_buf_fini(&path);
    return rc;
}

/* Removes the directory rel_dir (relative, may be "") and then its parents, as long as they are
 * empty; never the root. Errors (not empty, gone) just stop it. */
static void staging_local_prune(struct staging_local *sl, const char *rel_dir, size_t len)
{
    char *path;
    size_t rootlen = strlen(sl->root);

    if (len == 0) {
        return;
    }
    path = sd_xasprintf("%s/%.*s", sl->root, (int)len, rel_dir);
    for (;;) {
        char *slash;
        int removed;

        pthread_rwlock_wrlock(&sl->prune_lock);
        removed = rmdir(path) == 0;
        pthread_rwlock_unlock(&sl->prune_lock);
        if (!removed) {
            break;
        }
        slash = strrchr(path, '/');
        if (slash == NULL || (size_t)(slash - path) <= rootlen) {
            break;
        }
        *slash = '\0';
    }
    free(path);
}

/* ---- walking the tree (list, del_prefix, temp cleanup) ------------------------------------ */

static int staging_local_starts_with(const char *s, size_t len, const char *prefix, size_t plen)
{
    return len >= plen && memcmp(s, prefix, plen) == 0;
}

static void staging_local_walk_error(struct staging_local_walk *w, int rc)
{
    if (w->rc == 0) {
        w->rc = rc;
    }
}

/* Handles the regular file rel (relative path) named name in directory dfd. */
static void staging_local_walk_file(struct staging_local_walk *w, int dfd, const char *name,
                                    const struct sd_buf *rel)
{
    int matches = staging_local_starts_with(rel->data, rel->len, w->prefix, w->prefix_len);

    if (strstr(name, STAGING_LOCAL_TMP_MARK) != NULL) {
        /* a temp file: its name starts with its key, so the key prefix test applies to it */
        if (w->mode == STAGING_LOCAL_LIST || !matches ||
            staging_local_is_inflight(w->sl, rel->data)) {
            return;
        }
    } else if (!matches || w->mode == STAGING_LOCAL_SWEEP) {
        return;
    } else if (w->mode == STAGING_LOCAL_LIST) {
        if (w->n == w->cap) {
            w->cap = w->cap ? w->cap * 2 : 16;
            w->keys = sd_xrealloc(w->keys, w->cap * sizeof(*w->keys));
        }
        w->keys[w->n++] = sd_xstrndup(rel->data, rel->len);
        return;
    }
    if (unlinkat(dfd, name, 0) != 0 && errno != ENOENT) {
        staging_local_walk_error(w, -errno);
    }
}

/* Walks the directory open at dfd (taking ownership of dfd), whose relative path is rel ("" or
 * ending in '/'), depth levels below the root. */
static void staging_local_walk_dir(struct staging_local_walk *w, int dfd, struct sd_buf *rel,
                                   int depth)
{
    DIR *d = fdopendir(dfd);
    size_t base = rel->len;

    if (d == NULL) {
        staging_local_walk_error(w, -errno);
        close(dfd);
        return;
    }
    for (;;) {
        struct dirent *de;
        unsigned char type;
        size_t cmp;

        errno = 0;
        de = readdir(d);
        if (de == NULL) {
            if (errno != 0) {
                staging_local_walk_error(w, -errno);
            }
            break;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        type = de->d_type;
        if (type == DT_UNKNOWN) {
            struct stat st;

            if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
                continue;
            }
            type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
        }
        rel->len = base;
        if (sd_buf_append_str(rel, de->d_name) != 0) {
            staging_local_walk_error(w, -ENOMEM);
            break;
        }
        if (type == DT_REG) {
            sd_buf_cstr(rel);
            staging_local_walk_file(w, dirfd(d), de->d_name, rel);
        } else if (type == DT_DIR && depth + 1 < SD_STAGING_SEGMENT_MAX) {
            int sub;

            if (sd_buf_append_char(rel, '/') != 0) {
                staging_local_walk_error(w, -ENOMEM);
                break;
            }
            /* descend only where keys can start with the prefix */
            cmp = rel->len < w->prefix_len ? rel->len : w->prefix_len;
            if (memcmp(rel->data, w->prefix, cmp) != 0) {
                continue;
            }
            sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                if (errno != ENOENT) {
                    staging_local_walk_error(w, -errno);
                }
                continue;
            }
            staging_local_walk_dir(w, sub, rel, depth + 1);
            if (w->mode == STAGING_LOCAL_DELETE) {
                /* fails harmlessly unless the walk left it empty */
                pthread_rwlock_wrlock(&w->sl->prune_lock);
                unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
                pthread_rwlock_unlock(&w->sl->prune_lock);
            }
        }
    }
    rel->len = base;
    closedir(d);
}

/* Runs w over every entry that can match w->prefix. The walk starts in the prefix's directory
 * part; a missing directory means nothing matches. Returns 0 or the first error. */
static int staging_local_walk(struct staging_local_walk *w)
{
    struct sd_buf rel = SD_BUF_INIT;
    const char *slash = strrchr(w->prefix, '/');
    size_t dirlen = slash != NULL ? (size_t)(slash - w->prefix) : 0;
    int rootfd, dfd, depth = 0;

    rootfd = open(w->sl->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) {
        return errno == ENOENT ? 0 : -errno;
    }
    if (dirlen == 0) {
        dfd = rootfd;
    } else {
        char *dir = sd_xstrndup(w->prefix, dirlen);

        dfd = openat(rootfd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0 && errno != ENOENT && errno != ENOTDIR) {
            staging_local_walk_error(w, -errno);
        }
        close(rootfd);
        free(dir);
        if (dfd < 0) {
            return w->rc;
        }
        for (size_t i = 0; i < dirlen; i++) {
            depth += w->prefix[i] == '/';
        }
        depth++;
        if (sd_buf_append(&rel, w->prefix, dirlen + 1) != 0) {
            close(dfd);
            return -ENOMEM;
        }
    }
    staging_local_walk_dir(w, dfd, &rel, depth);
    sd_buf_fini(&rel);
    if (w->mode == STAGING_LOCAL_DELETE) {
        staging_local_prune(w->sl, w->prefix, dirlen);
    }
    return w->rc;
}

/* Removes the stale temp files of key (left by crashed or failed puts). Best effort. */
static void staging_local_sweep_key(struct staging_local *sl, const char *key)
{
    char *prefix = sd_xasprintf("%s%s", key, STAGING_LOCAL_TMP_MARK);
    struct staging_local_walk w = {sl, STAGING_LOCAL_SWEEP, prefix, strlen(prefix), NULL, 0, 0, 0};

    staging_local_walk(&w);
    free(prefix);
}

/* ---- open and close --------------------------------------------------------------------- */

static void staging_local_close(void *ctx)
{
    struct staging_local *sl = ctx;

    if (sl == NULL) {
        return;
    }
    for (size_t i = 0; i < sl->ninflight; i++) {
        free(sl->inflight[i]);
    }
    free(sl->inflight);
    pthread_mutex_destroy(&sl->lock);
    pthread_rwlock_destroy(&sl->prune_lock);
    free(sl->root);
    free(sl);
}

static int staging_local_open(const struct sd_config *cfg, const char *location, void **ctx)
{
    struct staging_local *sl;
    struct staging_local_walk w;
    struct stat st;
    size_t len;
    int rc;

    (void)cfg;
    *ctx = NULL;
    if (location == NULL || location[0] == '\0') {
        return SD_EINVAL;
    }
    sl = sd_xcalloc(1, sizeof(*sl));
    pthread_mutex_init(&sl->lock, NULL);
    pthread_rwlock_init(&sl->prune_lock, NULL);
    sl->root = sd_xstrdup(location);
    len = strlen(sl->root);
    while (len > 1 && sl->root[len - 1] == '/') {
        sl->root[--len] = '\0';
    }
    rc = sd_mkdir_p(sl->root, SD_DIR_MODE);
    if (rc == 0 && stat(sl->root, &st) != 0) {
        rc = -errno;
    }
    if (rc == 0 && !S_ISDIR(st.st_mode)) {
        rc = -ENOTDIR;
    }
    if (rc != 0) {
        staging_local_close(sl);
        return rc;
    }
    /* no put of this store runs yet: every temp file in the tree is a leftover */
    w = (struct staging_local_walk){sl, STAGING_LOCAL_SWEEP, "", 0, NULL, 0, 0, 0};
    staging_local_walk(&w);
    *ctx = sl;
    return 0;
}

/* ---- objects ---------------------------------------------------------------------------- */

/* Appends the file at path to out, adding its length to *total. *buf is a lazily allocated
 * copy buffer (freed by the caller). Returns 0 or -errno. */
static int staging_local_append(int out, const char *path, uint64_t *total, char **buf)
{
    struct stat st;
    int in = open(path, O_RDONLY | O_CLOEXEC);
    int use_copy, rc = 0;

    if (in < 0) {
        return -errno;
    }
    if (fstat(in, &st) != 0) {
        rc = -errno;
        goto out;
    }
    /* copy_file_range may report 0 early on special files: regular files only */
    use_copy = S_ISREG(st.st_mode);
    for (;;) {
        ssize_t n;

        if (use_copy) {
            n = copy_file_range(in, NULL, out, NULL, (size_t)1 << 30, 0);
            if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
                          errno == EOPNOTSUPP || errno == EPERM)) {
                /* offsets advance with the bytes copied, so read/write continues from here */
                use_copy = 0;
                continue;
            }
        } else {
            if (*buf == NULL && (*buf = malloc(STAGING_LOCAL_COPY_BUF)) == NULL) {
                rc = -ENOMEM;
                goto out;
            }
            n = read(in, *buf, STAGING_LOCAL_COPY_BUF);
            if (n > 0 && (rc = sd_write_all(out, *buf, (size_t)n)) != 0) {
                goto out;
            }
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            rc = -errno;
            goto out;
        }
        if (n == 0) {
            break;
        }
        *total += (uint64_t)n;
    }
out:
    close(in);
    return rc;
}

/* Creates the key's directories and, in its directory, the temp file tmp_name. Sets *dfd to the
 * directory and *fd to the temp file (both open). Returns 0 or -errno. */
static int staging_local_create_temp(struct staging_local *sl, const char *key,
                                     const char *dir_path, const char *tmp_name, int *dfd, int *fd)
{
    int rc = 0;

    /* ENOENT: something outside this store removed a directory between mkdir and open */
    for (int attempt = 1;; attempt++) {
        /* this store's prunes wait, so no directory of ours vanishes before the temp file
         * makes it non-empty */
        pthread_rwlock_rdlock(&sl->prune_lock);
        rc = staging_local_mkdirs(sl, key);
        if (rc == 0) {
            *dfd = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            rc = *dfd < 0 ? -errno : 0;
        }
        if (rc == 0) {
            *fd = openat(*dfd, tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, SD_FILE_MODE);
            if (*fd < 0) {
                rc = -errno;
                close(*dfd);
                *dfd = -1;
            }
        }
        pthread_rwlock_unlock(&sl->prune_lock);
        if (rc != -ENOENT || attempt == STAGING_LOCAL_PUT_ATTEMPTS) {
            return rc;
        }
    }
}

static int staging_local_put_files(void *ctx, const char *key, const char *const *paths,
                                   size_t npaths, uint64_t *size)
{
    struct staging_local *sl = ctx;
    const char *slash, *name, *tmp_name;
    char *tmp_rel = NULL, *dir_path = NULL, *buf = NULL;
    uint64_t total = 0;
    int fd = -1, dfd = -1, created = 0, rc;

    if (size != NULL) {
        *size = 0;
    }
    rc = sd_staging_key_check(key);
    if (rc != 0 || (npaths > 0 && paths == NULL)) {
        return rc != 0 ? rc : SD_EINVAL;
    }
    slash = strrchr(key, '/');
    name = slash != NULL ? slash + 1 : key;
    dir_path = slash != NULL ? sd_xasprintf("%s/%.*s", sl->root, (int)(slash - key), key)
                             : sd_xstrdup(sl->root);
    tmp_rel = staging_local_temp_begin(sl, key);
    tmp_name = tmp_rel + (size_t)(name - key);
    rc = staging_local_create_temp(sl, key, dir_path, tmp_name, &dfd, &fd);
    if (rc != 0) {
        goto out;
    }
    created = 1;
    for (size_t i = 0; i < npaths && rc == 0; i++) {
        rc = paths[i] != NULL ? staging_local_append(fd, paths[i], &total, &buf) : SD_EINVAL;
    }
    if (rc == 0 && fsync(fd) != 0) {
        rc = -errno;
    }
    if (close(fd) != 0 && rc == 0) {
        rc = -errno;
    }
    fd = -1;
    if (rc == 0 && renameat(dfd, tmp_name, dfd, name) != 0) {
        rc = -errno;
    }
    if (rc != 0) {
        goto out;
    }
    created = 0;
    /* through the fd: a concurrent del may already have removed the object and its directory */
    if (fsync(dfd) != 0) {
        rc = -errno;
        goto out;
    }
    staging_local_sweep_key(sl, key);
    if (size != NULL) {
        *size = total;
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    if (created) {
        unlinkat(dfd, tmp_name, 0);
    }
    if (dfd >= 0) {
        close(dfd);
    }
    staging_local_temp_end(sl, tmp_rel);
    free(buf);
    free(dir_path);
    return rc;
}

static int staging_local_head(void *ctx, const char *key, uint64_t *size)
{
    struct staging_local *sl = ctx;
    struct stat st;
    char *path;
    int rc;

    rc = sd_staging_key_check(key);
    if (rc != 0) {
        return rc;
    }
    path = staging_local_path(sl, key);
    if (lstat(path, &st) != 0) {
        rc = errno == ENOENT || errno == ENOTDIR ? SD_ENOTFOUND : -errno;
    } else if (!S_ISREG(st.st_mode)) {
        rc = SD_ENOTFOUND;
    } else if (size != NULL) {
        *size = (uint64_t)st.st_size;
    }
    free(path);
    return rc;
}

static int staging_local_open_read(void *ctx, const char *key, struct sd_staging_reader **out)
{
    struct staging_local *sl = ctx;
    struct staging_local_reader *r;
    struct stat st;
    char *path;
    int fd, rc;

    *out = NULL;
    rc = sd_staging_key_check(key);
    if (rc != 0) {
        return rc;
    }
    path = staging_local_path(sl, key);
    /* O_NONBLOCK: never hang on a FIFO someone put there; no effect on regular files */
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    free(path);
    if (fd < 0) {
        return errno == ENOENT || errno == ENOTDIR || errno == ELOOP ? SD_ENOTFOUND : -errno;
    }
    if (fstat(fd, &st) != 0) {
        rc = -errno;
    } else if (!S_ISREG(st.st_mode)) {
        rc = SD_ENOTFOUND;
    }
    if (rc != 0) {
        close(fd);
        return rc;
    }
    r = sd_xmalloc(sizeof(*r));
    r->fd = fd;
    *out = (struct sd_staging_reader *)r;
    return 0;
}

static ssize_t staging_local_read(struct sd_staging_reader *sr, void *buf, size_t len)
{
    struct staging_local_reader *r = (struct staging_local_reader *)sr;

    for (;;) {
        ssize_t n = read(r->fd, buf, len);

        if (n >= 0) {
            return n;
        }
        if (errno != EINTR) {
            return -errno;
        }
    }
}

static void staging_local_close_read(struct sd_staging_reader *sr)
{
    struct staging_local_reader *r = (struct staging_local_reader *)sr;

    if (r == NULL) {
        return;
    }
    close(r->fd);
    free(r);
}

static int staging_local_del(void *ctx, const char *key)
{
    struct staging_local *sl = ctx;
    const char *slash;
    char *path;
    int rc;

    rc = sd_staging_key_check(key);
    if (rc != 0) {
        return rc;
    }
    path = staging_local_path(sl, key);
    if (unlink(path) != 0) {
        /* EISDIR: key names a directory of other keys, not an object */
        rc = errno == ENOENT || errno == ENOTDIR || errno == EISDIR ? 0 : -errno;
    } else if ((slash = strrchr(key, '/')) != NULL) {
        staging_local_prune(sl, key, (size_t)(slash - key));
    }
    free(path);
    return rc;
}

static int staging_local_del_prefix(void *ctx, const char *prefix)
{
    struct staging_local_walk w = {ctx, STAGING_LOCAL_DELETE, prefix, 0, NULL, 0, 0, 0};
    int rc = sd_staging_prefix_check(prefix);

    if (rc != 0) {
        return rc;
    }
    w.prefix_len = strlen(prefix);
    return staging_local_walk(&w);
}

static int staging_local_key_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int staging_local_list(void *ctx, const char *prefix, char ***keys, size_t *n)
{
    struct staging_local_walk w = {ctx, STAGING_LOCAL_LIST, prefix, 0, NULL, 0, 0, 0};
    int rc;

    *keys = NULL;
    *n = 0;
    rc = sd_staging_prefix_check(prefix);
    if (rc != 0) {
        return rc;
    }
    w.prefix_len = strlen(prefix);
    rc = staging_local_walk(&w);
    if (rc != 0) {
        sd_staging_keys_free(w.keys, w.n);
        return rc;
    }
    if (w.n > 1) {
        qsort(w.keys, w.n, sizeof(*w.keys), staging_local_key_cmp);
    }
    *keys = w.n > 0 ? w.keys : NULL;
    *n = w.n;
    if (w.n == 0) {
        free(w.keys);
    }
    return 0;
}

const struct sd_staging_ops sd_staging_local_ops = {
    .name = "local",
    .open = staging_local_open,
    .close = staging_local_close,
    .put_files = staging_local_put_files,
    .head = staging_local_head,
    .open_read = staging_local_open_read,
    .read = staging_local_read,
    .close_read = staging_local_close_read,
    .del = staging_local_del,
    .del_prefix = staging_local_del_prefix,
    .list = staging_local_list,
};
