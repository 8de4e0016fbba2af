/* sd_config_bind.h: typed bindings of configuration keys to the fields of a module's own struct,
 * so that modules never read a key by string (a typo there is a runtime abort far from start-up).
 *
 * A module declares one const table of rows {key, offsetof(field), field type} over its config
 * struct and fills the struct with one sd_config_fill call, as Redis's config.c and Fluent Bit's
 * config maps do. Every table is listed in the registry (roles/sd_config_registry.c), whose unit
 * test checks each row against the option table and counts the bound keys as read. */
#ifndef SD_CONFIG_BIND_H
#define SD_CONFIG_BIND_H

#include <stddef.h>
#include <stdint.h>

struct sd_buf;
struct sd_config;
struct sd_opt;

/* Type of the bound field, and the option types it accepts. */
enum sd_bind_type {
    SD_BIND_BOOL,   /* int (0/1): BOOL */
    SD_BIND_INT,    /* int: INT whose bounds both fit an int */
    SD_BIND_I64,    /* int64_t: INT value, SIZE bytes, DURATION milliseconds */
    SD_BIND_SIZE_T, /* size_t: SIZE bytes, or INT whose lower bound is >= 0 */
    SD_BIND_DOUBLE, /* double: FLOAT */
    SD_BIND_STR,    /* const char * borrowed from the config: STRING, or ENUM's canonical value */
    SD_BIND_LIST    /* struct sd_config_strlist borrowed from the config: LIST */
};

/* A LIST value: n items, items NULL-terminated. */
struct sd_config_strlist {
    const char *const *items;
    size_t n;
};

struct sd_config_binding {
    const char *key; /* option key, e.g. "source.http.requestTimeout" */
    size_t offset;   /* offsetof(module struct, field) */
    enum sd_bind_type type;
};

/* One module's table: name for messages, rows, row count. */
struct sd_config_bindings {
    const char *module;
    const struct sd_config_binding *rows;
    size_t n;
};

/* Row of a table over struct st: SD_BIND(struct sd_x_config, field, "key", SD_BIND_I64). */
#define SD_BIND(st, field, key, type)                                                              \
    {                                                                                              \
        (key), offsetof(st, field), (type)                                                         \
    }
/* The table value of a static row array. */
#define SD_BINDINGS(module, rows)                                                                  \
    {                                                                                              \
        (module), (rows), sizeof(rows) / sizeof((rows)[0])                                         \
    }

/* Checks one row: the key is in the option table and its type fits the field type. Returns the
 * option, or NULL with err (if not NULL) holding a message naming the module and the key. */
const struct sd_opt *sd_config_binding_check(const struct sd_config_bindings *b,
                                             const struct sd_config_binding *row,
                                             struct sd_buf *err);

/* Fills out (the struct the table describes) from cfg. A bad row is a programming error: it is
 * logged and the process aborts (the registry's unit test catches it first). Strings and lists
 * stay valid until cfg is destroyed or the key is changed by sd_config_set. */
void sd_config_fill(const struct sd_config *cfg, const struct sd_config_bindings *b, void *out);

#endif
