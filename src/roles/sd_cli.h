/* sd_cli.h: the command line of the streamd binary (node and subcommands). */
#ifndef SD_CLI_H
#define SD_CLI_H

/* Parses argv, runs the node (roles/sd_node.h) or a subcommand, returns the process exit
 * code. */
int sd_cli_run(int argc, char **argv);

#endif
