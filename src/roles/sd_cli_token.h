/* sd_cli_token.h: the "streamd token create|list|revoke" subcommands (local API tokens).
 *
 * They open the state store of the data dir named by the usual --data-dir, --config and --set
 * options (and STREAM_* variables), change or read the tokens through sd_auth, and exit; they
 * never start the server. The embedded state store is locked by a running streamd, so they
 * fail with a clear message while one uses the same data dir. */
#ifndef SD_CLI_TOKEN_H
#define SD_CLI_TOKEN_H

/* 1 when the first argument that is neither an option nor an option's value is "token". */
int sd_cli_token_wanted(int argc, char **argv);

/* Runs the token subcommand of argv (argv[0] is the program). Returns the exit code: 0 done,
 * 1 failure (state store unavailable, unknown token id), 2 usage or config error. */
int sd_cli_token_run(int argc, char **argv);

struct sd_config_bindings;
/* The keys the token subcommands read (for the registry). */
extern const struct sd_config_bindings sd_token_config_bindings;

#endif
