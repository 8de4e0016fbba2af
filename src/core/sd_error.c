/* sd_error.c: descriptions of the project's return codes and of negated errnos. */
#include "core/sd_error.h"

#include <string.h>

const char *sd_strerror(int rc)
{
    switch (rc) {
    case 0:
        return "success";
    case SD_AGAIN:
        return "more input needed";
    case SD_EPARSE:
        return "malformed input";
    case SD_ECORRUPT:
        return "stored data is corrupt";
    case SD_ECONFLICT:
        return "conflict";
    case SD_ENOTFOUND:
        return "not found";
    case SD_EINVAL:
        return "invalid value";
    case SD_ELIMIT:
        return "limit exceeded";
    case SD_ECLOSED:
        return "closed";
    case SD_EUNHEALTHY:
        return "unhealthy after an earlier failure";
    default:
        break;
    }
    if (rc < 0 && rc > SD_ERR_BASE) {
        /* strerror is not thread-safe in general, but glibc's returns static strings
         * for known errnos, which is all we pass. */
        return strerror(-rc);
    }
    return "unknown error";
}
