/* sd_config_registry.h: the list of every module's config binding table (config/sd_config_bind.h),
 * so that one test can check every binding and tell which keys are read. */
#ifndef SD_CONFIG_REGISTRY_H
#define SD_CONFIG_REGISTRY_H

struct sd_config_bindings;

/* NULL-terminated. A module that reads configuration adds its table here. */
extern const struct sd_config_bindings *const sd_config_registry[];

#endif
