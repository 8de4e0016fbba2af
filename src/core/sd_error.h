/* sd_error.h: return-code conventions shared by every module.
 *
 * A function that can fail returns int: 0 on success, a negated errno for system errors
 * (as libuv does), or one of the project codes below (all below SD_ERR_BASE, so they never
 * collide with -errno). sd_strerror() describes both kinds. */
#ifndef SD_ERROR_H
#define SD_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#define SD_ERR_BASE (-10000)

enum sd_error_code {
    SD_AGAIN = SD_ERR_BASE - 1,     /* needs more input; not an error */
    SD_EPARSE = SD_ERR_BASE - 2,    /* malformed input */
    SD_ECORRUPT = SD_ERR_BASE - 3,  /* stored data failed a check */
    SD_ECONFLICT = SD_ERR_BASE - 4, /* compare failed (revision, existing entity) */
    SD_ENOTFOUND = SD_ERR_BASE - 5, /* no such key or entity */
    SD_EINVAL = SD_ERR_BASE - 6,    /* invalid argument or value */
    SD_ELIMIT = SD_ERR_BASE - 7,    /* a size or count limit was exceeded */
    SD_ECLOSED = SD_ERR_BASE - 8,   /* the object is closed or shutting down */
    SD_EUNHEALTHY = SD_ERR_BASE - 9 /* the resource failed earlier and refuses work */
};

/* Returns a static description of rc (a negated errno or an SD_* code). Thread-safe. */
const char *sd_strerror(int rc);

#ifdef __cplusplus
}
#endif

#endif
