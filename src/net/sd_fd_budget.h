/* sd_fd_budget.h: splits the process's descriptor limit between the listeners' connection caps
 * and a reserve for everything else (API and metrics connections, slice files, SQLite, the
 * state store, event descriptors), so that a flood of data connections cannot starve them.
 *
 * Called once at start-up from the main thread, before any loop or file is opened. */
#ifndef SD_FD_BUDGET_H
#define SD_FD_BUDGET_H

#include <stddef.h>
#include <stdint.h>

struct sd_fd_budget {
    uint64_t nofile;                /* RLIMIT_NOFILE soft limit in effect */
    uint64_t nofile_hard;           /* its hard limit */
    size_t data_max_connections;    /* data listener cap: below nofile minus the reserve */
    size_t api_max_connections;     /* API listener cap, taken from the reserve */
    size_t metrics_max_connections; /* metrics listener cap, taken from the reserve */
};

/* Pure: the caps for a soft limit of nofile descriptors and the configured data cap
 * (source.http.maxConnections). A quarter of the descriptors (at least 128, at most half)
 * stays in reserve; the API gets a quarter of the reserve (at most 1024), metrics a
 * sixteenth (at most 64). Every cap is at least 1. */
void sd_fd_budget_split(uint64_t nofile, size_t max_data_connections, struct sd_fd_budget *out);

/* Raises the RLIMIT_NOFILE soft limit to the hard limit (a failure keeps the old limit), then
 * splits the resulting limit with sd_fd_budget_split and logs the limits and caps. */
void sd_fd_budget_init(size_t max_data_connections, struct sd_fd_budget *out);

#endif
