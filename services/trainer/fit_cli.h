/* fit_cli: `credito-trainer fit FILE [flags]`, one training on a local file, no registry. */
#ifndef CREDITO_FIT_CLI_H
#define CREDITO_FIT_CLI_H

/* Runs the subcommand with argv after "fit" (argv[0] is "fit"). Returns the exit code: 0, 2 for
 * bad input or data that cannot be fitted, 1 for other failures. */
int fit_cli_main(int argc, char **argv);

#endif
