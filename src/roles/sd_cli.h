/* sd_cli.h: the command line of the streamd binary (server and subcommands). */
#ifndef SD_CLI_H
#define SD_CLI_H

/* Parses argv, runs the server or a subcommand, returns the process exit code. */
int sd_cli_run(int argc, char **argv);

struct sd_config_bindings;
/* The keys the server start-up reads (for the registry). */
extern const struct sd_config_bindings sd_cli_config_bindings;

#endif
