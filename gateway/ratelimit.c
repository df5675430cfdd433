/* ratelimit: slowapi's limit strings and the limits library's fixed window, counted in a
 * bounded in-memory table (ratelimit_mem.c) or in Redis with one Lua script per hit
 * (ratelimit_redis.c); this file parses limits and store URLs and fronts both stores. */
#include "ratelimit_int.h"

#include "err.h"
#include "mem.h"

#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

/* Longest part of a limit string quoted in an error message. */
#define QUOTE_MAX 60

/* clang-format off */
static const struct {
  const char *name; /* as the limits library names the granularity */
  int64_t seconds;  /* its length */
} units[] = {
    [RL_SECOND] = {"second", 1},
    [RL_MINUTE] = {"minute", 60},
    [RL_HOUR] = {"hour", 3600},
    [RL_DAY] = {"day", 86400},
    [RL_MONTH] = {"month", 86400 * 30},
    [RL_YEAR] = {"year", 86400 * 30 * 12},
};
/* clang-format on */
#define NUNITS (sizeof units / sizeof units[0])

/* ------------------------------------------------------------------------------------------ */
/* Limits and their notation                                                                  */

int64_t rl_limit_window_s(const struct rl_limit *l)
{
  return l->multiples * units[l->unit].seconds;
}

const char *rl_unit_name(enum rl_unit u)
{
  return (size_t)u < NUNITS ? units[u].name : "?";
}

void rl_limit_text(const struct rl_limit *l, char *buf, size_t len)
{
  snprintf(buf, len, "%" PRId64 " per %" PRId64 " %s", l->amount, l->multiples,
           rl_unit_name(l->unit));
}

/* A read position inside one part of a limit string. */
struct cursor {
  const char *p;   /* next byte */
  const char *end; /* end of the part */
};

/* Skips blanks (Python's \s, ASCII only). */
static void skip_blank(struct cursor *c)
{
  while (c->p < c->end && isspace((unsigned char)*c->p))
    c->p++;
}

/* Consumes w if the text starts with it, in any case. */
static bool take_word(struct cursor *c, const char *w)
{
  size_t n = strlen(w);

  if ((size_t)(c->end - c->p) < n || strncasecmp(c->p, w, n) != 0)
    return false;
  c->p += n;
  return true;
}

/* Consumes a run of digits. Returns 1 with *out set, 0 if there is no digit, -1 if the number
 * is over max (the digits are consumed all the same). */
static int take_number(struct cursor *c, int64_t max, int64_t *out)
{
  int64_t v = 0;
  bool big = false;
  const char *start = c->p;

  while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
    if (!big && v > (max - (*c->p - '0')) / 10)
      big = true;
    if (!big)
      v = v * 10 + (*c->p - '0');
    c->p++;
  }
  if (c->p == start)
    return 0;
  *out = v;
  return big ? -1 : 1;
}

/* Consumes a unit name and its optional plural s. */
static bool take_unit(struct cursor *c, enum rl_unit *out)
{
  size_t i;

  for (i = 0; i < NUNITS; i++) {
    if (take_word(c, units[i].name)) {
      *out = (enum rl_unit)i;
      take_word(c, "s");
      return true;
    }
  }
  return false;
}

/* Sets err for the part [p, end) with the reason why. */
static int part_error(const char *p, const char *end, const char *why, struct cm_error *err)
{
  struct cursor c = {p, end};
  int len;

  skip_blank(&c);
  while (c.end > c.p && isspace((unsigned char)c.end[-1]))
    c.end--;
  len = (int)(c.end - c.p > QUOTE_MAX ? QUOTE_MAX : c.end - c.p);
  return cm_error_set(err, CM_E_INVALID, "rate limit '%.*s%s': %s", len, c.p,
                      c.end - c.p > QUOTE_MAX ? "..." : "", why);
}

/* Parses one limit, "N/unit" or "N per M units", from [p, end). */
static int parse_one(const char *p, const char *end, struct rl_limit *out, struct cm_error *err)
{
  struct cursor c = {p, end};
  int r;

  skip_blank(&c);
  r = take_number(&c, RL_AMOUNT_MAX, &out->amount);
  if (r <= 0)
    return part_error(p, end, r ? "amount too large" : "expected a number first", err);
  skip_blank(&c);
  if (!take_word(&c, "/") && !take_word(&c, "per"))
    return part_error(p, end, "expected '/' or 'per' after the amount", err);
  skip_blank(&c);
  r = take_number(&c, RL_MULTIPLES_MAX, &out->multiples);
  if (r < 0 || (r > 0 && out->multiples == 0))
    return part_error(p, end, r < 0 ? "window too long" : "window of zero", err);
  if (r == 0)
    out->multiples = 1;
  skip_blank(&c);
  if (!take_unit(&c, &out->unit))
    return part_error(p, end, "expected second, minute, hour, day, month or year", err);
  skip_blank(&c);
  if (c.p != c.end)
    return part_error(p, end, "unexpected text after the unit", err);
  return 0;
}

int rl_parse(const char *spec, struct rl_limit *out, size_t max, size_t *n, struct cm_error *err)
{
  const char *p = spec;
  const char *q;
  size_t count = 0;
  int rc = 0;

  *n = 0;
  if (!spec) {
    rc = cm_error_set(err, CM_E_INVALID, "rate limit: none given");
    goto out;
  }
  for (;;) {
    q = p + strcspn(p, ",;|");
    if (count == max) {
      rc = cm_error_set(err, CM_E_INVALID, "rate limit '%.*s': more than %zu limits", QUOTE_MAX,
                        spec, max);
      goto out;
    }
    if (p + strspn(p, " \t\n\r\f\v") >= q) {
      rc = part_error(spec, spec + strlen(spec), "an empty limit", err);
      goto out;
    }
    rc = parse_one(p, q, &out[count], err);
    if (rc)
      goto out;
    count++;
    if (*q == '\0')
      break;
    p = q + 1;
  }
  *n = count;
out:
  return rc;
}

/* Checks what rl_hit is given: a scope of 1..RL_SCOPE_MAX bytes and 1..RL_LIMITS_MAX limits
 * that rl_parse could have produced. */
static int hit_args_check(const char *scope, const struct rl_limit *limits, size_t n,
                          struct cm_error *err)
{
  size_t len = scope ? strnlen(scope, RL_SCOPE_MAX + 1) : 0;
  size_t i;

  if (len == 0 || len > RL_SCOPE_MAX)
    return cm_error_set(err, CM_E_INVALID, "rate limit scope: empty or over %d bytes",
                        RL_SCOPE_MAX);
  if (n == 0 || n > RL_LIMITS_MAX)
    return cm_error_set(err, CM_E_INVALID, "rate limit: %zu limits, not 1..%d", n, RL_LIMITS_MAX);
  for (i = 0; i < n; i++) {
    if (limits[i].amount < 0 || limits[i].amount > RL_AMOUNT_MAX || limits[i].multiples < 1 ||
        limits[i].multiples > RL_MULTIPLES_MAX || (size_t)limits[i].unit >= NUNITS)
      return cm_error_set(err, CM_E_INVALID, "rate limit %zu: out of range", i);
  }
  return 0;
}

/* Writes prefix, scope and "/amount/multiples/unit" into buf (size bytes); returns the length.
 * hit_args_check bounds the scope and the numbers, so RL_KEY_MAX bytes past the prefix always
 * hold the key. */
size_t rl_key_build(char *buf, size_t size, const char *prefix, const char *scope,
                        const struct rl_limit *l)
{
  int len = snprintf(buf, size, "%s%s/%" PRId64 "/%" PRId64 "/%s", prefix, scope, l->amount,
                     l->multiples, units[l->unit].name);
  return (size_t)len;
}

int64_t rl_now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t rl_mono_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


/* x / 1000 rounded up, for x >= 0. */
static int64_t ms_to_s_up(int64_t x)
{
  return x <= 0 ? 0 : (x + 999) / 1000;
}

/* Fills *out from the nhit counters hit in turn (see struct rl_result for the choice). */
static void result_fill(const struct rl_limit *limits, size_t n, const struct hit *hits,
                        size_t nhit, int64_t now_ms, struct rl_result *out)
{
  size_t i, k = nhit - 1;

  out->allowed = nhit == n && hits[k].count <= limits[k].amount;
  if (out->allowed) {
    for (k = 0, i = 1; i < n; i++) {
      if (units[limits[i].unit].seconds < units[limits[k].unit].seconds)
        k = i;
    }
  }
  out->index = k;
  out->limit = limits[k];
  rl_limit_text(&limits[k], out->text, sizeof out->text);
  out->remaining = hits[k].count >= limits[k].amount ? 0 : limits[k].amount - hits[k].count;
  out->reset_epoch_s = ms_to_s_up(hits[k].end_ms);
  out->retry_after_s = ms_to_s_up(hits[k].end_ms - now_ms);
  if (!out->allowed && out->retry_after_s < 1)
    out->retry_after_s = 1;
}

/* ------------------------------------------------------------------------------------------ */
/* URLs and the store                                                                          */

enum rl_kind { RL_KIND_MEMORY, RL_KIND_REDIS };

struct rl_store {
  enum rl_kind kind;       /* which of the two below is in use */
  struct mem_table mem;    /* RL_KIND_MEMORY */
  struct redis_conn redis; /* RL_KIND_REDIS */
};

/* Parses the len bytes at s as a decimal in min..max. */
bool rl_int_parse(const char *s, size_t len, long min, long max, long *out)
{
  struct cursor c = {s, s + len};
  int64_t v;

  if (take_number(&c, max, &v) != 1 || c.p != c.end || v < min)
    return false;
  *out = (long)v;
  return true;
}

/* Parses the query q (NULL or "" for none) of a scheme's URL: nothing, or "name=N" with N in
 * min..max. Messages never quote a URL, which may hold a password. */
int rl_query_parse(const char *scheme, const char *q, const char *name, long min, long max,
                       long *out, struct cm_error *err)
{
  size_t nl = strlen(name);

  if (!q || !*q)
    return 0;
  if (strncmp(q, name, nl) == 0 && q[nl] == '=' &&
      rl_int_parse(q + nl + 1, strlen(q + nl + 1), min, max, out))
    return 0;
  return cm_error_set(err, CM_E_INVALID, "rate limit store: the only option of %s is %s=%ld..%ld",
                      scheme, name, min, max);
}

static int memory_open(rl_store *s, const char *url, struct cm_error *err)
{
  const char *q = url && *url ? url + strlen("memory://") : NULL;
  long max = RL_MEMORY_MAX_ENTRIES;
  int rc;

  if (q && *q && *q != '?')
    return cm_error_set(err, CM_E_INVALID, "rate limit store: memory:// takes no path");
  rc = rl_query_parse("memory://", q ? q + (*q == '?') : NULL, "max_entries", RL_LIMITS_MAX, 1L << 24,
                   &max, err);
  if (rc == 0)
    rc = rl_mem_init(&s->mem, (size_t)max, err);
  return rc;
}

rl_store *rl_store_new(const char *url, struct cm_error *err)
{
  rl_store *s = cm_calloc(1, sizeof *s);
  int rc;

  if (!s) {
    cm_error_set(err, CM_E_NOMEM, NULL);
    return NULL;
  }
  if (!url || !*url || strncmp(url, "memory://", 9) == 0) {
    s->kind = RL_KIND_MEMORY;
    rc = memory_open(s, url, err);
  } else if (strncmp(url, "redis://", 8) == 0) {
    s->kind = RL_KIND_REDIS;
    rc = rl_redis_open(&s->redis, url, err);
  } else {
    rc = cm_error_set(err, CM_E_INVALID, "rate limit store: scheme '%.*s' is not memory or redis",
                      (int)strcspn(url, ":/@?"), url);
  }
  if (rc) {
    cm_free(s);
    s = NULL;
  }
  return s;
}

void rl_store_free(rl_store *s)
{
  if (!s)
    return;
  if (s->kind == RL_KIND_MEMORY)
    rl_mem_cleanup(&s->mem);
  else
    rl_redis_cleanup(&s->redis);
  cm_free(s);
}

size_t rl_store_size(rl_store *s)
{
  size_t n;

  if (s->kind != RL_KIND_MEMORY)
    return 0;
  pthread_mutex_lock(&s->mem.lock);
  n = s->mem.size;
  pthread_mutex_unlock(&s->mem.lock);
  return n;
}

int rl_store_check(rl_store *s, struct cm_error *err)
{
  return s->kind == RL_KIND_MEMORY ? 0 : rl_redis_check(&s->redis, err);
}

int rl_hit(rl_store *s, const char *scope, const struct rl_limit *limits, size_t n, int64_t now_ms,
           struct rl_result *out, struct cm_error *err)
{
  struct hit hits[RL_LIMITS_MAX];
  size_t nhit = 0;
  int rc;

  rc = hit_args_check(scope, limits, n, err);
  if (rc)
    goto out;
  if (s->kind == RL_KIND_MEMORY)
    rc = rl_mem_hit(&s->mem, scope, limits, n, now_ms, hits, &nhit, err);
  else
    rc = rl_redis_hit(&s->redis, scope, limits, n, now_ms, hits, &nhit, err);
  if (rc)
    goto out;
  result_fill(limits, n, hits, nhit, now_ms, out);
out:
  return rc;
}
