/* sd_auth.h: local Storage API tokens, kept hashed in the state store.
 *
 * A token is never stored or logged in clear: its SHA-256 (hex) names the state key
 * "auth/token/<sha256hex>", whose value is the token's JSON record
 * {"id","projectId","isMaster","isAdmin","description","created"}. The marker key "auth/admin"
 * ({"tokenHash","created"}) records the current admin token of project 1, so a generated admin
 * token is created only once and a changed auth.adminToken replaces (revokes) the previous one.
 *
 * Threads: every call may block on the state store; call from the API loop or a worker, never
 * from the data endpoint's loop. */
#ifndef SD_AUTH_H
#define SD_AUTH_H

#include <stddef.h>
#include <stdint.h>

struct sd_state;
struct sd_buf;

#define SD_AUTH_HASH_HEX_LEN 64
#define SD_AUTH_GENERATED_LEN 48
#define SD_AUTH_ADMIN_PROJECT 1

/* A verified token (its record; never the token itself). */
struct sd_auth_token {
    char id[32];
    int64_t project_id;
    int is_master;
    int is_admin;
    char description[128];
    char created[32]; /* ISO time of creation, "" when unknown */
};

/* Writes the lower-case hex SHA-256 of token[0..len) plus a NUL into out[65]. */
void sd_auth_hash(const char *token, size_t len, char out[SD_AUTH_HASH_HEX_LEN + 1]);

/* Looks up token[0..len). Returns 0 with *out filled, SD_ENOTFOUND for an unknown token (also
 * for an empty or over-long one), or a state-store error. */
int sd_auth_lookup(struct sd_state *st, const char *token, size_t len, struct sd_auth_token *out);

/* Stores a new token for project_id and writes its text (SD_AUTH_GENERATED_LEN characters of
 * [0-9a-zA-Z] from getrandom) plus a NUL into token_out[SD_AUTH_GENERATED_LEN + 1]; *info (may
 * be NULL) gets its record, whose id no other stored token has. Returns 0 or a state-store
 * error. */
int sd_auth_token_create(struct sd_state *st, int64_t project_id, int is_master, int is_admin,
                         const char *description, char token_out[SD_AUTH_GENERATED_LEN + 1],
                         struct sd_auth_token *info);

/* Lists the stored tokens (their records, never the tokens), of project_id only when > 0, sorted
 * by project then id. *out is owned (free with free()); *n gets the count. Returns 0 or a
 * state-store error (SD_ECORRUPT for an unreadable record). */
int sd_auth_token_list(struct sd_state *st, int64_t project_id, struct sd_auth_token **out,
                       size_t *n);

/* Deletes the token whose record has id id. *info (may be NULL) gets its record. Returns 0,
 * SD_ENOTFOUND when no token has that id, SD_ECONFLICT when it changed meanwhile, or a
 * state-store error. The token is rejected (401) by the next request that uses it. */
int sd_auth_token_revoke(struct sd_state *st, const char *id, struct sd_auth_token *info);

/* Start-up: makes sure project 1 has its master admin token. configured (auth.adminToken; NULL
 * or "" = unset) is stored when missing and replaces a previous admin token. When unset and no
 * admin token was ever created, a new one is generated and written, followed by "\n", to
 * "<data_dir>/admin-token" with mode 0600 (before it is committed, so a crash never leaves a
 * valid token nobody knows). Returns 0, or an error with a message in err. */
int sd_auth_ensure_admin(struct sd_state *st, const char *configured, const char *data_dir,
                         struct sd_buf *err);

#endif
