/* log: structured logging, one JSON object per line on stderr (or a test
 * fd), written with a single write(2) under a lock so lines from different
 * threads never interleave. Levels filter what is written. */
#ifndef CREDITO_LOG_H
#define CREDITO_LOG_H

#include <stdbool.h>

/* Severity, lowest first; CM_LOG_OFF as a threshold silences everything. */
enum cm_log_level {
  CM_LOG_DEBUG,
  CM_LOG_INFO,
  CM_LOG_WARN,
  CM_LOG_ERROR,
  CM_LOG_OFF,
};

/* Longest line written, newline included; longer string values are cut
 * with a "…" marker and the line gets "truncated":true. */
#define CM_LOG_LINE_MAX 8192

/* Sets the "prog" field (copied; at most 63 bytes kept) and the threshold.
 * Call at start, before other threads log. program NULL keeps "credito". */
void cm_log_init(const char *program, enum cm_log_level level);

/* Parses "debug", "info", "warn" (or "warning"), "error", "off", in any case,
 * into *out. Returns 0, or CM_E_INVALID (then *out is untouched). */
int cm_log_level_parse(const char *s, enum cm_log_level *out);

/* Sends lines to fd instead of 2 (borrowed: not closed). For tests. */
void cm_log_set_fd(int fd);

/* True if a line at level l would be written; use it to skip costly
 * argument preparation. */
bool cm_log_enabled(enum cm_log_level l);

/*
 * Writes {"ts":...,"level":...,"prog":...,"msg":msg, fields...} as one line.
 * msg is a plain string (NULL prints null). fields is NULL or a
 * space-separated list of key=%conv tokens, one variadic argument each:
 *   %s           const char * (JSON-escaped; NULL prints null)
 *   %d %ld %lld  int, long, long long
 *   %u %lu %llu  unsigned, unsigned long, unsigned long long
 *   %zu          size_t
 *   %f %g        double (%f fixed, %g shortest that round-trips; NaN and
 *                infinities print null)
 *   %b           int, printed true or false
 * Keys are [A-Za-z0-9_.-]+. On a malformed token the line keeps the fields
 * before it and gets a "log_error" field; the rest is skipped (the compiler
 * cannot check these conversions, so this never reads a wrong-typed
 * argument past the bad token). All arguments are borrowed.
 */
void cm_log(enum cm_log_level level, const char *msg, const char *fields, ...);

#endif
