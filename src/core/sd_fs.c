/* sd_fs.c: durable file helpers. Every "atomic" write here is temp file, fsync, rename,
 * fsync of the parent directory, so a crash leaves either the old or the new content. */
#include "core/sd_fs.h"
#include "core/sd_alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int sd_mkdir_p(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof(tmp)) {
        return -ENAMETOOLONG;
    }
    memcpy(tmp, path, len + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, mode) != 0 && errno != EEXIST) {
                return -errno;
            }
            *p = '/';
        }
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST) {
        return -errno;
    }
    return 0;
}

int sd_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0) {
        return -errno;
    }
    if (fsync(fd) != 0) {
        rc = -errno;
    }
    close(fd);
    return rc;
}

int sd_fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t n;

    if (slash == NULL) {
        return sd_fsync_dir(".");
    }
    n = (size_t)(slash - path);
    if (n == 0) {
        return sd_fsync_dir("/");
    }
    if (n >= sizeof(dir)) {
        return -ENAMETOOLONG;
    }
    memcpy(dir, path, n);
    dir[n] = '\0';
    return sd_fsync_dir(dir);
}

int sd_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int sd_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
    char tmp[PATH_MAX];
    int fd;
    int rc;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        return -ENAMETOOLONG;
    }
    /* a stale temp file would keep its old mode: start from a new one */
    if (unlink(tmp) != 0 && errno != ENOENT) {
        return -errno;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        return -errno;
    }
    rc = sd_write_all(fd, data, len);
    if (rc == 0 && fsync(fd) != 0) {
        rc = -errno;
    }
    if (close(fd) != 0 && rc == 0) {
        rc = -errno;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = -errno;
    }
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    return sd_fsync_parent(path);
}

int sd_read_file(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *buf;
    size_t got = 0;

    if (fd < 0) {
        return -errno;
    }
    if (fstat(fd, &st) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    buf = sd_xmalloc((size_t)st.st_size + 1);
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    if (len) {
        *len = got;
    }
    return 0;
}

int sd_make_private(const char *path)
{
    struct stat st;

    if (stat(path, &st) != 0) {
        return errno == ENOENT ? 0 : -errno;
    }
    if ((st.st_mode & 077) != 0 && chmod(path, st.st_mode & 07700) != 0) {
        return -errno;
    }
    return 0;
}

static int sd__rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

int sd_rm_rf(const char *path)
{
    if (nftw(path, sd__rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
        return errno == ENOENT ? 0 : -errno;
    }
    return 0;
}
