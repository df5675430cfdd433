/* ratelimit: the gateway's rate limiter. Limits are written in slowapi's syntax
 * ("100/minute;10/second") and counted with the limits library's fixed-window strategy, either
 * in this process's memory or in Redis, where several gateways share one budget. */
#ifndef CREDITO_RATELIMIT_H
#define CREDITO_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Most limits one rl_hit accepts, and a good size for rl_parse's array. */
#define RL_LIMITS_MAX 16
/* Longest scope, in bytes; a longer one is CM_E_INVALID. */
#define RL_SCOPE_MAX 256
/* Largest amount and largest N in "per N units" that rl_parse accepts. */
#define RL_AMOUNT_MAX    1000000000
#define RL_MULTIPLES_MAX 100000
/* Size of a limit's text, "1000000000 per 100000 second" and its NUL included. */
#define RL_TEXT_SIZE 48
/* Counters a memory store keeps unless its URL says max_entries=N. */
#define RL_MEMORY_MAX_ENTRIES 100000
/* Connect and command time-out of a Redis store unless its URL says timeout_ms=N. */
#define RL_REDIS_TIMEOUT_MS 500
/* After a failed connect a Redis store fails hits at once for this long before trying again. */
#define RL_REDIS_RETRY_MS 1000

/* The granularities of the limits library; a month is 30 days and a year 360, as there. */
enum rl_unit {
  RL_SECOND,
  RL_MINUTE,
  RL_HOUR,
  RL_DAY,
  RL_MONTH,
  RL_YEAR,
};

/* One limit: amount hits per multiples units. */
struct rl_limit {
  int64_t amount;    /* hits allowed per window, 0..RL_AMOUNT_MAX (0 refuses every hit) */
  int64_t multiples; /* the N of "per N units", 1..RL_MULTIPLES_MAX */
  enum rl_unit unit; /* the granularity */
};

/* What rl_hit decided and the numbers for the response headers, taken from one limit, the
 * "reported" one, chosen as slowapi chooses the limit behind its headers: the limit that
 * refused the hit; if none did, the one with the shortest unit (ignoring multiples), the first
 * of those on a tie. */
struct rl_result {
  bool allowed;            /* every limit allowed the hit */
  size_t index;            /* the reported limit's index in the array given to rl_hit */
  struct rl_limit limit;   /* the reported limit: X-RateLimit-Limit is its amount */
  char text[RL_TEXT_SIZE]; /* its text, "5 per 1 minute": the 429 detail follows
                            * "Rate limit exceeded: " */
  int64_t remaining;       /* hits left in its window after this one (X-RateLimit-Remaining) */
  int64_t reset_epoch_s;   /* end of its window, Unix seconds rounded up (X-RateLimit-Reset) */
  int64_t retry_after_s;   /* seconds from now to reset_epoch_s's instant, rounded up: at least
                            * 1 when refused (Retry-After) */
};

/* Parses spec, one or more limits in the limits library's notation separated by ',', ';' or
 * '|': "N/unit", "N per unit", "N/M units", "N per M units", units second, minute, hour, day,
 * month and year, an optional plural s, any case, blanks around every part ("100/minute;
 * 10/second", "5 per minute", "2/5 seconds"). Fills out[0..*n-1] in the order written.
 * Stricter than limits in two corners: "N per 0 units" (a window of zero) and a stray ':'
 * before a separator (a quirk of limits' regular expression) are refused. An amount of 0 is
 * accepted, as there: every hit is refused.
 * Returns 0, or CM_E_INVALID with err naming the bad part (an empty spec or part, a bad part,
 * a window of zero, a number over RL_AMOUNT_MAX or RL_MULTIPLES_MAX, more than max limits);
 * then *n is 0. spec is borrowed. */
int rl_parse(const char *spec, struct rl_limit *out, size_t max, size_t *n, struct cm_error *err);

/* The window of l in seconds: multiples times the unit's seconds. */
int64_t rl_limit_window_s(const struct rl_limit *l);

/* The unit's name as the limits library writes it: "second" ... "year". Static string. */
const char *rl_unit_name(enum rl_unit u);

/* Writes l as slowapi shows it, "5 per 1 minute", into buf (RL_TEXT_SIZE is always enough;
 * a smaller buf gets a truncated, terminated text). */
void rl_limit_text(const struct rl_limit *l, char *buf, size_t len);

/* A store of counters, shared by every thread of the process: all functions below may be
 * called concurrently on one store, except rl_store_free. */
typedef struct rl_store rl_store;

/*
 * Opens a store (url is borrowed):
 * - NULL, "" or "memory://[?max_entries=N]": counters in this process's memory, one per scope
 *   and limit, at most N (default RL_MEMORY_MAX_ENTRIES, at least RL_LIMITS_MAX). Every hit
 *   frees a few counters whose window is over, starting from the least recently used. At the
 *   cap a new counter takes the place of the least recently used one even if its window is
 *   still open: that client's count is forgotten and it starts a fresh window. So a flood of
 *   new clients (many IPs) makes the limits lenient for idle clients; it never refuses a
 *   client and memory never grows past the cap (about 100 bytes per counter of an IPv4 scope).
 * - "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?timeout_ms=N]" (PORT 6379, DB 0, HOST a name,
 *   an IPv4 address or a bracketed IPv6 one; no percent-decoding): counters in Redis under
 *   "credito:rl:<scope>/<amount>/<multiples>/<unit>", shared by every gateway using the same
 *   server and DB. N (default RL_REDIS_TIMEOUT_MS) bounds the TCP connect and each command;
 *   name resolution is not bounded by it. Nothing is sent until the first hit or check; a lost
 *   connection is reopened at the next call, and after a failed connect calls fail at once
 *   with CM_E_UNAVAILABLE for RL_REDIS_RETRY_MS. The one connection is behind a mutex.
 *   hiredis writes with write(2): the process must ignore SIGPIPE.
 * Returns the store, which the caller frees with rl_store_free, or NULL with err set:
 * CM_E_INVALID for a URL this does not understand, CM_E_NOMEM.
 */
rl_store *rl_store_new(const char *url, struct cm_error *err);

/* Frees s and its counters and closes its connection. NULL does nothing. */
void rl_store_free(rl_store *s);

/* Counters held in memory: those of a memory store (expired ones not yet freed included),
 * 0 for a Redis store. For tests and a metrics gauge. */
size_t rl_store_size(rl_store *s);

/* Checks that s can count: 0 for a memory store; for Redis, connects if needed and sends
 * PING. Returns 0, or CM_E_UNAVAILABLE with err set. For start-up logs and readiness. */
int rl_store_check(rl_store *s, struct cm_error *err);

/*
 * Counts one request against limits[0..n-1] for scope (borrowed; 1..RL_SCOPE_MAX bytes, e.g.
 * "key:<key name>" or "ip:1.2.3.4"; each (scope, limit) pair has its own counter, so changing
 * a limit starts new counters). As the limits library and slowapi do, the limits are hit in
 * turn and the first one over its amount refuses the request: the limits before it and the
 * refusing one have counted the request, the ones after it have not. A window starts at the
 * first hit of its counter and lasts rl_limit_window_s seconds (fixed window: a refused hit
 * does not extend it). The hits of one call are atomic for both stores.
 *
 * now_ms is the current Unix time in milliseconds (rl_now_ms(), or a test's clock). A memory
 * store measures windows with it; Redis measures them with its own clock (PEXPIRE) and now_ms
 * only turns the remaining time into reset_epoch_s.
 *
 * Fills *out and returns 0 whether the request is allowed or refused. Returns CM_E_INVALID
 * (bad scope, n of 0 or over RL_LIMITS_MAX), CM_E_NOMEM (memory store; then no limit counted
 * the request), or CM_E_UNAVAILABLE when Redis cannot be reached in time or answers with an
 * error (some limits may have counted the request). On an error *out is unspecified. The
 * caller decides what a failure means; the gateway should fail open (serve the request) and
 * log a warning, since refusing every request while Redis is down turns a cache outage into a
 * full one, and rate limiting is protection, not authentication.
 */
int rl_hit(rl_store *s, const char *scope, const struct rl_limit *limits, size_t n, int64_t now_ms,
           struct rl_result *out, struct cm_error *err);

/* The current Unix time in milliseconds (CLOCK_REALTIME), for rl_hit's now_ms. */
int64_t rl_now_ms(void);

#endif
