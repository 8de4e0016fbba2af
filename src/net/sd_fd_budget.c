/* sd_fd_budget.c: raises the descriptor limit at start-up and derives each listener's
 * connection cap from it.
 *
 * DESIGN: every accepted connection holds a descriptor until it closes. If the data listener
 * could take them all, accept() would fail with EMFILE on the API and metrics listeners as
 * well, and slice files, SQLite and the state store could not open a file. The data cap is
 * therefore the configured maxConnections but never more than the limit minus a reserve, and
 * the other listeners' caps come out of that reserve, leaving the rest of it for files. */
#include "net/sd_fd_budget.h"
#include "core/sd_error.h"
#include "core/sd_log.h"

#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#define SD_FD_RESERVE_MIN 128
#define SD_FD_API_MAX 1024
#define SD_FD_METRICS_MAX 64

static size_t sd__fd_cap(uint64_t n, size_t max)
{
    if (n > max) {
        n = max;
    }
    return n > 0 ? (size_t)n : 1;
}

void sd_fd_budget_split(uint64_t nofile, size_t max_data_connections, struct sd_fd_budget *out)
{
    uint64_t reserve = nofile / 4;

    if (reserve < SD_FD_RESERVE_MIN) {
        reserve = SD_FD_RESERVE_MIN;
    }
    if (reserve > nofile / 2) {
        reserve = nofile / 2;
    }
    out->nofile = nofile;
    out->data_max_connections = sd__fd_cap(nofile - reserve, max_data_connections);
    out->api_max_connections = sd__fd_cap(reserve / 4, SD_FD_API_MAX);
    out->metrics_max_connections = sd__fd_cap(reserve / 16, SD_FD_METRICS_MAX);
}

void sd_fd_budget_init(size_t max_data_connections, struct sd_fd_budget *out)
{
    struct rlimit lim;
    uint64_t hard;

    if (getrlimit(RLIMIT_NOFILE, &lim) != 0) {
        lim.rlim_cur = lim.rlim_max = 1024;
    }
    if (lim.rlim_cur < lim.rlim_max) {
        rlim_t old = lim.rlim_cur;
        lim.rlim_cur = lim.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &lim) != 0) {
            sd_log_warn("server", "cannot raise RLIMIT_NOFILE to %llu: %s",
                        (unsigned long long)lim.rlim_max, sd_strerror(-errno));
            lim.rlim_cur = old;
        }
    }
    hard = lim.rlim_max == RLIM_INFINITY ? UINT64_MAX : (uint64_t)lim.rlim_max;
    sd_fd_budget_split(lim.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)lim.rlim_cur,
                       max_data_connections, out);
    out->nofile_hard = hard;
    sd_log_info("server",
                "descriptors: RLIMIT_NOFILE %llu (hard %llu); connection caps: data %zu "
                "(source.http.maxConnections %zu), api %zu, metrics %zu",
                (unsigned long long)out->nofile, (unsigned long long)hard,
                out->data_max_connections, max_data_connections, out->api_max_connections,
                out->metrics_max_connections);
}
