/* sd_cli_jsonnet.h: the "streamd jsonnet" and "streamd template" subcommands.
 *
 *   streamd jsonnet FILE|-
 *       evaluates a Jsonnet program (no record functions, no imports) and prints its value as
 *       the jsonnet CLI does (3-space indent, final newline).
 *   streamd template eval [--body FILE] [--header 'Name: value']... [--ip IP]
 *                         [--content-type TYPE] [--raw-string] TEMPLATE_FILE|-
 *       evaluates a template column's program for a record made of those parts and prints the
 *       value the column receives (before CSV quoting) and a newline.
 *   streamd template bench [--iterations N] [the options of eval] TEMPLATE_FILE
 *       (for bench/run_bench.sh) evaluations per second of the template on one thread.
 *
 * Errors go to stderr as "streamd: RUNTIME ERROR: <message>\n\t<file>:<line>:<col>" (or
 * "streamd: STATIC ERROR: <file>:<line>:<col>: <message>" for a program that does not compile,
 * the jsonnet CLI's form) with exit code 1; usage errors exit 2. Nothing here starts the
 * server or reads the config. */
#ifndef SD_CLI_JSONNET_H
#define SD_CLI_JSONNET_H

/* 1 when argv[1] is "jsonnet" or "template". */
int sd_cli_jsonnet_wanted(int argc, char **argv);

/* Runs the subcommand; returns the exit code (0 done, 1 evaluation error, 2 usage or I/O). */
int sd_cli_jsonnet_run(int argc, char **argv);

#endif
