/* sd_config_doc.h: renders the option table as the reference page docs/CONFIG.md (behind
 * `streamd config docs`): every key with its environment name, type, default, range, effect and
 * mark. */
#ifndef SD_CONFIG_DOC_H
#define SD_CONFIG_DOC_H

struct sd_buf;

/* Appends the Markdown page to out. Depends only on the static option table. */
void sd_config_doc(struct sd_buf *out);

#endif
