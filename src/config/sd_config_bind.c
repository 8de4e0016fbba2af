/* sd_config_bind.c: checks binding rows against the option table and fills a module's config
 * struct from the effective configuration through the typed getters. */
#include "config/sd_config_bind.h"
#include "config/sd_config.h"
#include "config/sd_opt.h"
#include "core/sd_buf.h"
#include "core/sd_log.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* 1 if a field of type bt can hold the value of opt. */
static int sd_bind_fits(enum sd_bind_type bt, const struct sd_opt *opt)
{
    switch (bt) {
    case SD_BIND_BOOL:
        return opt->type == SD_OPT_BOOL;
    case SD_BIND_INT:
        return opt->type == SD_OPT_INT && !(opt->min == 0 && opt->max == 0) &&
               opt->min >= INT_MIN && opt->max <= INT_MAX;
    case SD_BIND_I64:
        return opt->type == SD_OPT_INT || opt->type == SD_OPT_SIZE || opt->type == SD_OPT_DURATION;
    case SD_BIND_SIZE_T:
        return opt->type == SD_OPT_SIZE || (opt->type == SD_OPT_INT && opt->min >= 0);
    case SD_BIND_DOUBLE:
        return opt->type == SD_OPT_FLOAT;
    case SD_BIND_STR:
        return opt->type == SD_OPT_STRING || opt->type == SD_OPT_ENUM;
    case SD_BIND_LIST:
        return opt->type == SD_OPT_LIST;
    }
    return 0;
}

const struct sd_opt *sd_config_binding_check(const struct sd_config_bindings *b,
                                             const struct sd_config_binding *row,
                                             struct sd_buf *err)
{
    const struct sd_opt *opt = row->key != NULL ? sd_opt_find(row->key) : NULL;

    if (err != NULL) {
        sd_buf_reset(err);
    }
    if (opt == NULL) {
        if (err != NULL) {
            sd_buf_printf(err, "%s: binding of unknown config key \"%s\"", b->module,
                          row->key != NULL ? row->key : "(null)");
        }
        return NULL;
    }
    if (!sd_bind_fits(row->type, opt)) {
        if (err != NULL) {
            sd_buf_printf(err, "%s: config key \"%s\" is bound to a field of another type",
                          b->module, row->key);
        }
        return NULL;
    }
    return opt;
}

void sd_config_fill(const struct sd_config *cfg, const struct sd_config_bindings *b, void *out)
{
    struct sd_buf err = SD_BUF_INIT;
    size_t i;

    for (i = 0; i < b->n; i++) {
        const struct sd_config_binding *row = &b->rows[i];
        char *field = (char *)out + row->offset;
        struct sd_config_strlist list;

        if (sd_config_binding_check(b, row, &err) == NULL) {
            sd_log_error("config", "%s", sd_buf_cstr(&err));
            abort();
        }
        switch (row->type) {
        case SD_BIND_BOOL:
            *(int *)(void *)field = sd_config_bool(cfg, row->key);
            break;
        case SD_BIND_INT:
            *(int *)(void *)field = (int)sd_config_int(cfg, row->key);
            break;
        case SD_BIND_I64:
            *(int64_t *)(void *)field = sd_config_int(cfg, row->key);
            break;
        case SD_BIND_SIZE_T:
            *(size_t *)(void *)field = (size_t)sd_config_int(cfg, row->key);
            break;
        case SD_BIND_DOUBLE:
            *(double *)(void *)field = sd_config_float(cfg, row->key);
            break;
        case SD_BIND_STR:
            *(const char **)(void *)field = sd_config_str(cfg, row->key);
            break;
        case SD_BIND_LIST:
            list.n = sd_config_list(cfg, row->key, &list.items);
            memcpy(field, &list, sizeof(list));
            break;
        }
    }
    sd_buf_fini(&err);
}
