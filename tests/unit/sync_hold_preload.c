/*
 * A test seam loaded with LD_PRELOAD (libsd_sync_hold.so, built next to streamd, never
 * installed): fdatasync and fsync wait while the file named by SD_SYNC_HOLD_FILE exists,
 * checking every 10 ms, then call the real function, so a test can prove that an answer comes
 * only after the disk sync. With SD_SYNC_HOLD_COUNT_FILE, every held call first appends one line
 * "<function> <path of the fd>" to that file.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

typedef int (*sd_sync_fn)(int fd);

static sd_sync_fn sd__real_fdatasync;
static sd_sync_fn sd__real_fsync;
static const char *sd__hold_file;
static const char *sd__count_file;

__attribute__((constructor)) static void sd__sync_hold_init(void)
{
    sd__real_fdatasync = (sd_sync_fn)dlsym(RTLD_NEXT, "fdatasync");
    sd__real_fsync = (sd_sync_fn)dlsym(RTLD_NEXT, "fsync");
    sd__hold_file = getenv("SD_SYNC_HOLD_FILE");
    sd__count_file = getenv("SD_SYNC_HOLD_COUNT_FILE");
}

static void sd__count(const char *fn, int fd)
{
    char link[64], path[4096], line[4200];
    ssize_t n;
    int len, out;

    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof(path) - 1);
    path[n < 0 ? 0 : n] = '\0';
    len = snprintf(line, sizeof(line), "%s %s\n", fn, path);
    out = open(sd__count_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (out >= 0) {
        ssize_t written = write(out, line, (size_t)len); /* a short line fails the test */

        (void)written;
        close(out);
    }
}

static int sd__held_sync(const char *fn, sd_sync_fn real, int fd)
{
    const struct timespec step = {0, 10 * 1000 * 1000};

    if (sd__hold_file != NULL && access(sd__hold_file, F_OK) == 0) {
        if (sd__count_file != NULL) {
            sd__count(fn, fd);
        }
        while (access(sd__hold_file, F_OK) == 0) {
            nanosleep(&step, NULL);
        }
    }
    return real(fd);
}

int fdatasync(int fd)
{
    return sd__held_sync("fdatasync", sd__real_fdatasync, fd);
}

int fsync(int fd)
{
    return sd__held_sync("fsync", sd__real_fsync, fd);
}
