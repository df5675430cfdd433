/* config: command-line flags with environment twins, shared by every
 * Credito program (--listen / CREDITO_LISTEN ...), plus strict parsers for
 * the value types they use: integers, durations, HOST:PORT. */
#ifndef CREDITO_CONFIG_H
#define CREDITO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "err.h"

/* One flag. The caller fills the first five fields; parsing fills the rest. */
struct cm_opt {
  const char *name;  /* long flag without dashes: "listen" */
  const char *env;   /* environment twin, "CREDITO_LISTEN", or NULL */
  const char *def;   /* default value, or NULL */
  const char *help;  /* one line for --help */
  bool is_bool;      /* flag takes no value: --name means true */
  const char *value; /* out: resolved value (points into argv, environ, def
                      * or a static "true"), NULL if none */
  bool set;          /* out: given by flag or environment */
};

/*
 * Resolves every option: flag, else environment (an empty variable counts as
 * unset), else default. Accepts "--name value", "--name=value", "--" to end
 * the flags, and for bool options "--name" or "--name=V" with V among
 * 1/true/yes/0/false/no (also the accepted environment values); a repeated
 * flag keeps the last value.
 *
 * Positional arguments may be mixed with flags; argv is permuted (like GNU
 * getopt) so that they end up, in order, in argv[*first_arg .. argc-1].
 * Pass first_arg NULL if the program takes none: then a positional is an
 * error. "-" alone is a positional.
 *
 * Returns 0; 1 if -h or --help was given (print cm_config_usage and exit 0);
 * CM_E_INVALID with err set for an unknown flag, a missing value, a bad bool,
 * or an unexpected positional. opts and argv are borrowed; values point into
 * argv, environ or def, so keep those alive and unchanged while they are used.
 */
int cm_config_parse(struct cm_opt *opts, size_t nopts, int argc, char **argv, int *first_arg,
                    struct cm_error *err);

/* Prints a usage text to out: "Usage: program [flags]", summary (may be
 * NULL), then each flag with its environment twin, default and help. */
void cm_config_usage(FILE *out, const char *program, const char *summary, const struct cm_opt *opts,
                     size_t nopts);

/* The resolved value of the option called name (borrowed), or NULL if it has
 * none or no option has that name. */
const char *cm_opt_get(const struct cm_opt *opts, size_t n, const char *name);

/* True if the option called name resolved to 1/true/yes (any case). */
bool cm_opt_bool(const struct cm_opt *opts, size_t n, const char *name);

/* Parses the option called name as a base-10 integer in [min, max] into
 * *out. Returns 0, or CM_E_INVALID with a message naming the flag (and its
 * environment twin) if it has no value, is not an integer, or is out of
 * range; *out is untouched on failure. */
int cm_opt_int(const struct cm_opt *opts, size_t n, const char *name, long min, long max, long *out,
               struct cm_error *err);

/* Parses a non-negative duration: "250ms", "5s", "2m", "1h", or a plain
 * integer meaning milliseconds, into *out_ms. Returns 0, or CM_E_INVALID
 * (also on overflow); *out_ms is untouched on failure. */
int cm_parse_duration_ms(const char *s, long *out_ms);

/* Splits "HOST:PORT", "[IPV6]:PORT" or ":PORT" into host (a buffer of
 * hostlen bytes; brackets removed; an empty host becomes "0.0.0.0") and
 * *port (0..65535). Returns 0, or CM_E_INVALID with err set if the form is
 * wrong, the port is bad or the host does not fit. */
int cm_parse_hostport(const char *s, char *host, size_t hostlen, int *port, struct cm_error *err);

/* Writes "host:port", bracketing a host that contains ':' (IPv6), into out
 * (outlen bytes). Returns 0, or CM_E_TOOLARGE if it does not fit. The
 * inverse of cm_parse_hostport, for building gRPC targets. */
int cm_format_hostport(char *out, size_t outlen, const char *host, int port);

#endif
