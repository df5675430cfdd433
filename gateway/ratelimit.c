/* ratelimit: slowapi's limit strings and the limits library's fixed window, counted in a
 * bounded in-memory table (one mutex, least-recently-used eviction) or in Redis with one Lua
 * script per hit, so that several gateways share their counters. */
#include "ratelimit.h"

#include "err.h"
#include "mem.h"

#include <hiredis.h>

#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

/* A counter's key: scope, then "/amount/multiples/unit" as the limits library builds it. */
#define RL_KEY_MAX       (RL_SCOPE_MAX + 48)
#define REDIS_PREFIX     "credito:rl:"
#define REDIS_PREFIX_LEN (sizeof REDIS_PREFIX - 1)
/* Expired counters a memory store frees per hit, oldest first. */
#define MEM_RECLAIM 8
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
static size_t key_build(char *buf, size_t size, const char *prefix, const char *scope,
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

static int64_t mono_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A counter after a hit. */
struct hit {
  int64_t count;  /* hits in the window, this one included */
  int64_t end_ms; /* the window's end, Unix ms */
};

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
/* Memory store: a chained hash table sized for its cap, with a least-recently-used list      */

/* One counter. */
struct mem_entry {
  struct mem_entry *chain;         /* next in the bucket */
  struct mem_entry *newer, *older; /* neighbours in the use order */
  uint64_t hash;                   /* of key */
  int64_t count;                   /* hits in the window */
  int64_t end_ms;                  /* the window's end: count is stale once now >= end_ms */
  size_t klen;                     /* bytes of key */
  char key[];                      /* scope/amount/multiples/unit, not terminated */
};

struct mem_table {
  pthread_mutex_t lock;       /* guards all below, and every entry */
  struct mem_entry **buckets; /* mask + 1 chains */
  size_t mask;                /* bucket count - 1, a power of two */
  size_t size;                /* entries held */
  size_t max;                 /* the cap on size */
  struct mem_entry *newest;   /* most recently used */
  struct mem_entry *oldest;   /* least recently used: evicted first */
};

/* FNV-1a, 64 bits. */
static uint64_t key_hash(const char *key, size_t len)
{
  uint64_t h = 14695981039346656037ULL;
  size_t i;

  for (i = 0; i < len; i++) {
    h ^= (unsigned char)key[i];
    h *= 1099511628211ULL;
  }
  return h;
}

static void lru_unlink(struct mem_table *t, struct mem_entry *e)
{
  if (e->newer)
    e->newer->older = e->older;
  else
    t->newest = e->older;
  if (e->older)
    e->older->newer = e->newer;
  else
    t->oldest = e->newer;
}

static void lru_push(struct mem_table *t, struct mem_entry *e)
{
  e->newer = NULL;
  e->older = t->newest;
  if (t->newest)
    t->newest->newer = e;
  t->newest = e;
  if (!t->oldest)
    t->oldest = e;
}

/* Unlinks e from its bucket and the use order, and frees it. */
static void mem_remove(struct mem_table *t, struct mem_entry *e)
{
  struct mem_entry **pp = &t->buckets[e->hash & t->mask];

  while (*pp != e)
    pp = &(*pp)->chain;
  *pp = e->chain;
  lru_unlink(t, e);
  cm_free(e);
  t->size--;
}

/* Frees up to MEM_RECLAIM expired counters from the old end, so that idle clients' counters
 * go away without waiting for the cap. */
static void mem_reclaim(struct mem_table *t, int64_t now_ms)
{
  int i;

  for (i = 0; i < MEM_RECLAIM && t->oldest && t->oldest->end_ms <= now_ms; i++)
    mem_remove(t, t->oldest);
}

/* The counter for key, found or added (at the cap, after evicting the least recently used),
 * now the most recently used. NULL if it cannot be allocated. */
static struct mem_entry *mem_get(struct mem_table *t, const char *key, size_t klen)
{
  uint64_t h = key_hash(key, klen);
  struct mem_entry *e = t->buckets[h & t->mask];

  while (e && !(e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0))
    e = e->chain;
  if (e) {
    lru_unlink(t, e);
    lru_push(t, e);
    return e;
  }
  e = cm_malloc(sizeof *e + klen);
  if (!e)
    return NULL;
  if (t->size == t->max)
    mem_remove(t, t->oldest);
  e->hash = h;
  e->count = 0;
  e->end_ms = 0;
  e->klen = klen;
  memcpy(e->key, key, klen);
  e->chain = t->buckets[h & t->mask];
  t->buckets[h & t->mask] = e;
  lru_push(t, e);
  t->size++;
  return e;
}

/* Finds or adds every counter first, so that a failed allocation leaves all counts as they
 * were; then hits them in turn up to the first one over its amount. The table's lock is held
 * throughout, which makes the call atomic. The counters just used sit at the new end of the
 * use order and the cap is at least RL_LIMITS_MAX, so adding one never evicts another. */
static int mem_hit(struct mem_table *t, const char *scope, const struct rl_limit *limits, size_t n,
                   int64_t now_ms, struct hit *hits, size_t *nhit, struct cm_error *err)
{
  struct mem_entry *e[RL_LIMITS_MAX];
  char key[RL_KEY_MAX];
  size_t i;
  int rc = 0;

  pthread_mutex_lock(&t->lock);
  mem_reclaim(t, now_ms);
  for (i = 0; i < n; i++) {
    e[i] = mem_get(t, key, key_build(key, sizeof key, "", scope, &limits[i]));
    if (!e[i]) {
      rc = cm_error_set(err, CM_E_NOMEM, "rate limit: no memory for a counter");
      goto out;
    }
  }
  for (i = 0; i < n; i++) {
    if (e[i]->end_ms <= now_ms)
      e[i]->count = 0;
    if (e[i]->count++ == 0)
      e[i]->end_ms = now_ms + rl_limit_window_s(&limits[i]) * 1000;
    hits[i].count = e[i]->count;
    hits[i].end_ms = e[i]->end_ms;
    *nhit = i + 1;
    if (e[i]->count > limits[i].amount)
      break;
  }
out:
  pthread_mutex_unlock(&t->lock);
  return rc;
}

static int mem_init(struct mem_table *t, size_t max, struct cm_error *err)
{
  size_t nb = 1;

  while (nb < max)
    nb *= 2;
  t->buckets = cm_calloc(nb, sizeof *t->buckets);
  if (!t->buckets)
    return cm_error_set(err, CM_E_NOMEM, "rate limit: no memory for %zu buckets", nb);
  pthread_mutex_init(&t->lock, NULL);
  t->mask = nb - 1;
  t->size = 0;
  t->max = max;
  t->newest = t->oldest = NULL;
  return 0;
}

static void mem_cleanup(struct mem_table *t)
{
  while (t->oldest)
    mem_remove(t, t->oldest);
  cm_free(t->buckets);
  pthread_mutex_destroy(&t->lock);
}

/* ------------------------------------------------------------------------------------------ */
/* Redis store: one connection behind a mutex, one EVALSHA per hit                            */

/* KEYS[i] is a counter, ARGV[2i-1] its amount and ARGV[2i] its window in ms. Hits the counters
 * in turn, stops after the first over its amount and returns count and PTTL of each one hit.
 * A counter without a time to live (a fresh one, or one left by a failed write) gets one. */
static const char hit_script[] = "local out = {}\n"
                                 "for i = 1, #KEYS do\n"
                                 "  local count = redis.call('INCR', KEYS[i])\n"
                                 "  local ttl = redis.call('PTTL', KEYS[i])\n"
                                 "  if ttl < 0 then\n"
                                 "    redis.call('PEXPIRE', KEYS[i], ARGV[2 * i])\n"
                                 "    ttl = tonumber(ARGV[2 * i])\n"
                                 "  end\n"
                                 "  out[2 * i - 1] = count\n"
                                 "  out[2 * i] = ttl\n"
                                 "  if count > tonumber(ARGV[2 * i - 1]) then break end\n"
                                 "end\n"
                                 "return out\n";

struct redis_conn {
  pthread_mutex_t lock; /* guards ctx, sha and retry_ms */
  redisContext *ctx;    /* NULL while disconnected */
  char sha[41];         /* SHA1 of hit_script as the server reported it */
  int64_t retry_ms;     /* monotonic ms before which no connect is tried */
  char *host;           /* from the URL */
  char *user;           /* NULL for none */
  char *password;       /* NULL for none */
  int port;             /* TCP port */
  int db;               /* SELECTed after connecting unless 0 */
  int timeout_ms;       /* connect and command time-out */
};

static void redis_drop(struct redis_conn *r)
{
  redisFree(r->ctx);
  r->ctx = NULL;
}

/* Sends one command on the open connection. Returns the reply, error replies included, which
 * the caller frees with freeReplyObject; or NULL with err set and the connection dropped. */
static redisReply *redis_call(struct redis_conn *r, int argc, const char **argv, const size_t *lens,
                              struct cm_error *err)
{
  redisReply *reply = redisCommandArgv(r->ctx, argc, argv, lens);

  if (!reply) {
    cm_error_set(err, CM_E_UNAVAILABLE, "redis %s:%d: %s", r->host, r->port,
                 r->ctx->err ? r->ctx->errstr : "no reply");
    redis_drop(r);
  }
  return reply;
}

/* Checks that reply (taken: freed here on failure) has the type wanted. */
static int redis_expect(struct redis_conn *r, redisReply *reply, int type, struct cm_error *err)
{
  if (reply->type == type)
    return 0;
  cm_error_set(err, CM_E_UNAVAILABLE, "redis %s:%d: %s", r->host, r->port,
               reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
  freeReplyObject(reply);
  return CM_E_UNAVAILABLE;
}

/* Sends a command whose reply only needs the right type. */
static int redis_simple(struct redis_conn *r, int argc, const char **argv, int type,
                        struct cm_error *err)
{
  redisReply *reply = redis_call(r, argc, argv, NULL, err);
  int rc;

  if (!reply)
    return CM_E_UNAVAILABLE;
  rc = redis_expect(r, reply, type, err);
  if (rc == 0)
    freeReplyObject(reply);
  return rc;
}

/* Loads hit_script and keeps its SHA1. */
static int redis_load(struct redis_conn *r, struct cm_error *err)
{
  const char *argv[] = {"SCRIPT", "LOAD", hit_script};
  redisReply *reply = redis_call(r, 3, argv, NULL, err);
  int rc;

  if (!reply)
    return CM_E_UNAVAILABLE;
  rc = redis_expect(r, reply, REDIS_REPLY_STRING, err);
  if (rc)
    return rc;
  snprintf(r->sha, sizeof r->sha, "%s", reply->str);
  freeReplyObject(reply);
  return 0;
}

/* AUTH, SELECT and SCRIPT LOAD on a fresh connection. */
static int redis_setup(struct redis_conn *r, struct cm_error *err)
{
  /* AUTH PASSWORD, or AUTH USER PASSWORD for Redis 6 ACL users. */
  const char *auth[] = {"AUTH", r->user ? r->user : r->password, r->password};
  char db[16];
  const char *select[] = {"SELECT", db};
  int rc = 0;

  if (r->password)
    rc = redis_simple(r, r->user ? 3 : 2, auth, REDIS_REPLY_STATUS, err);
  if (rc == 0 && r->db) {
    snprintf(db, sizeof db, "%d", r->db);
    rc = redis_simple(r, 2, select, REDIS_REPLY_STATUS, err);
  }
  if (rc == 0)
    rc = redis_load(r, err);
  return rc;
}

/* Opens the connection if there is none, unless a connect failed less than RL_REDIS_RETRY_MS
 * ago. Called with the lock held. */
static int redis_ensure(struct redis_conn *r, struct cm_error *err)
{
  struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
  int64_t now = mono_ms();
  int rc = 0;

  if (r->ctx)
    goto out;
  if (now < r->retry_ms) {
    rc = cm_error_set(err, CM_E_UNAVAILABLE, "redis %s:%d: down, next try in %" PRId64 " ms",
                      r->host, r->port, r->retry_ms - now);
    goto out;
  }
  r->ctx = redisConnectWithTimeout(r->host, r->port, tv);
  if (!r->ctx || r->ctx->err || redisSetTimeout(r->ctx, tv) != REDIS_OK) {
    rc = cm_error_set(err, CM_E_UNAVAILABLE, "redis %s:%d: %s", r->host, r->port,
                      r->ctx ? r->ctx->errstr : "cannot connect");
    redis_drop(r);
  } else {
    rc = redis_setup(r, err);
    if (rc && r->ctx)
      redis_drop(r);
  }
  if (rc)
    r->retry_ms = now + RL_REDIS_RETRY_MS;
out:
  return rc;
}

/* The EVALSHA command of one hit; its strings live in the caller's key and num buffers. */
struct redis_eval {
  const char *argv[3 + 3 * RL_LIMITS_MAX]; /* EVALSHA sha numkeys keys... argv... */
  size_t lens[3 + 3 * RL_LIMITS_MAX];      /* their lengths */
  int argc;                                /* arguments used */
  char keys[RL_LIMITS_MAX][RL_KEY_MAX + REDIS_PREFIX_LEN];
  char nums[2 * RL_LIMITS_MAX + 1][24]; /* numkeys, then amount and window of each limit */
};

static void redis_eval_build(struct redis_eval *ev, const char *sha, const char *scope,
                             const struct rl_limit *limits, size_t n)
{
  size_t i, a = 0;

  ev->argv[a] = "EVALSHA";
  ev->lens[a++] = 7;
  ev->argv[a] = sha;
  ev->lens[a++] = strlen(sha);
  ev->lens[a] = (size_t)snprintf(ev->nums[0], sizeof ev->nums[0], "%zu", n);
  ev->argv[a++] = ev->nums[0];
  for (i = 0; i < n; i++) {
    ev->lens[a] = key_build(ev->keys[i], sizeof ev->keys[i], REDIS_PREFIX, scope, &limits[i]);
    ev->argv[a++] = ev->keys[i];
  }
  for (i = 0; i < n; i++) {
    ev->lens[a] =
        (size_t)snprintf(ev->nums[1 + 2 * i], sizeof ev->nums[0], "%" PRId64, limits[i].amount);
    ev->argv[a++] = ev->nums[1 + 2 * i];
    ev->lens[a] = (size_t)snprintf(ev->nums[2 + 2 * i], sizeof ev->nums[0], "%" PRId64,
                                   rl_limit_window_s(&limits[i]) * 1000);
    ev->argv[a++] = ev->nums[2 + 2 * i];
  }
  ev->argc = (int)a;
}

/* Turns the script's reply (taken) into hits. */
static int redis_hits(struct redis_conn *r, redisReply *reply, size_t n, int64_t now_ms,
                      struct hit *hits, size_t *nhit, struct cm_error *err)
{
  size_t i;
  int rc = redis_expect(r, reply, REDIS_REPLY_ARRAY, err);

  if (rc)
    return rc;
  if (reply->elements == 0 || reply->elements % 2 || reply->elements > 2 * n)
    rc = cm_error_set(err, CM_E_UNAVAILABLE, "redis %s:%d: %zu numbers from the script", r->host,
                      r->port, reply->elements);
  for (i = 0; rc == 0 && i < reply->elements; i++) {
    if (reply->element[i]->type != REDIS_REPLY_INTEGER)
      rc = cm_error_set(err, CM_E_UNAVAILABLE, "redis %s:%d: the script returned a non-number",
                        r->host, r->port);
  }
  for (i = 0; rc == 0 && i < reply->elements / 2; i++) {
    hits[i].count = reply->element[2 * i]->integer;
    hits[i].end_ms = now_ms + reply->element[2 * i + 1]->integer;
  }
  if (rc == 0)
    *nhit = reply->elements / 2;
  freeReplyObject(reply);
  return rc;
}

/* True if reply is Redis's "NOSCRIPT" error: the server lost the script (SCRIPT FLUSH). */
static bool reply_noscript(const redisReply *reply)
{
  return reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0;
}

/* Runs the script for the hit, reloading it once if the server lost it. */
static int redis_hit(struct redis_conn *r, const char *scope, const struct rl_limit *limits,
                     size_t n, int64_t now_ms, struct hit *hits, size_t *nhit, struct cm_error *err)
{
  struct redis_eval ev;
  redisReply *reply = NULL;
  int rc;

  pthread_mutex_lock(&r->lock);
  rc = redis_ensure(r, err);
  if (rc)
    goto out;
  redis_eval_build(&ev, r->sha, scope, limits, n);
  reply = redis_call(r, ev.argc, ev.argv, ev.lens, err);
  if (reply && reply_noscript(reply)) {
    freeReplyObject(reply);
    reply = NULL;
    rc = redis_load(r, err);
    if (rc)
      goto out;
    ev.argv[1] = r->sha;
    reply = redis_call(r, ev.argc, ev.argv, ev.lens, err);
  }
  rc = reply ? redis_hits(r, reply, n, now_ms, hits, nhit, err) : CM_E_UNAVAILABLE;
out:
  pthread_mutex_unlock(&r->lock);
  return rc;
}

static int redis_check(struct redis_conn *r, struct cm_error *err)
{
  const char *argv[] = {"PING"};
  int rc;

  pthread_mutex_lock(&r->lock);
  rc = redis_ensure(r, err);
  if (rc == 0)
    rc = redis_simple(r, 1, argv, REDIS_REPLY_STATUS, err);
  pthread_mutex_unlock(&r->lock);
  return rc;
}

static void redis_cleanup(struct redis_conn *r)
{
  if (r->ctx)
    redisFree(r->ctx);
  cm_free(r->host);
  cm_free(r->user);
  cm_free(r->password);
  pthread_mutex_destroy(&r->lock);
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
static bool int_parse(const char *s, size_t len, long min, long max, long *out)
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
static int query_parse(const char *scheme, const char *q, const char *name, long min, long max,
                       long *out, struct cm_error *err)
{
  size_t nl = strlen(name);

  if (!q || !*q)
    return 0;
  if (strncmp(q, name, nl) == 0 && q[nl] == '=' &&
      int_parse(q + nl + 1, strlen(q + nl + 1), min, max, out))
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
  rc = query_parse("memory://", q ? q + (*q == '?') : NULL, "max_entries", RL_LIMITS_MAX, 1L << 24,
                   &max, err);
  if (rc == 0)
    rc = mem_init(&s->mem, (size_t)max, err);
  return rc;
}

/* Splits "[USER]:PASSWORD" of [p, end) into r->user (NULL if empty) and r->password. */
static int userinfo_parse(struct redis_conn *r, const char *p, const char *end,
                          struct cm_error *err)
{
  const char *colon = memchr(p, ':', (size_t)(end - p));

  if (!colon)
    return cm_error_set(err, CM_E_INVALID, "rate limit store: redis:// wants [USER]:PASSWORD@");
  if (colon > p) {
    r->user = cm_strndup(p, (size_t)(colon - p));
    if (!r->user)
      return cm_error_set(err, CM_E_NOMEM, NULL);
  }
  r->password = cm_strndup(colon + 1, (size_t)(end - colon - 1));
  return r->password ? 0 : cm_error_set(err, CM_E_NOMEM, NULL);
}

/* Parses "HOST[:PORT]" or "[V6]:PORT" of [p, end) into r->host and r->port. */
static int hostport_parse(struct redis_conn *r, const char *p, const char *end,
                          struct cm_error *err)
{
  const char *hend = p < end && *p == '[' ? memchr(p, ']', (size_t)(end - p)) : NULL;
  const char *colon;
  long port = 6379;

  if (*p == '[' && !hend)
    return cm_error_set(err, CM_E_INVALID, "rate limit store: unclosed '[' in the redis host");
  colon = hend ? (hend + 1 < end && hend[1] == ':' ? hend + 1 : NULL)
               : memchr(p, ':', (size_t)(end - p));
  if (hend && !colon && hend + 1 != end)
    return cm_error_set(err, CM_E_INVALID, "rate limit store: text after the redis host");
  if (colon && !int_parse(colon + 1, (size_t)(end - colon - 1), 1, 65535, &port))
    return cm_error_set(err, CM_E_INVALID, "rate limit store: redis port not 1..65535");
  r->port = (int)port;
  if (hend)
    p++;
  end = hend ? hend : colon ? colon : end;
  if (end == p)
    return cm_error_set(err, CM_E_INVALID, "rate limit store: redis:// needs a host");
  r->host = cm_strndup(p, (size_t)(end - p));
  return r->host ? 0 : cm_error_set(err, CM_E_NOMEM, NULL);
}

/* Parses "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?timeout_ms=N]" into r. */
static int redis_url_parse(struct redis_conn *r, const char *url, struct cm_error *err)
{
  const char *p = url + strlen("redis://");
  const char *q = strchr(p, '?');
  const char *end = q ? q : p + strlen(p);
  const char *slash = memchr(p, '/', (size_t)(end - p));
  const char *auth_end = slash ? slash : end;
  const char *at = NULL;
  const char *s;
  long db = 0, timeout = RL_REDIS_TIMEOUT_MS;
  int rc = 0;

  for (s = p; s < auth_end; s++)
    at = *s == '@' ? s : at;
  if (at)
    rc = userinfo_parse(r, p, at, err);
  if (rc == 0)
    rc = hostport_parse(r, at ? at + 1 : p, auth_end, err);
  if (rc == 0 && slash && slash + 1 < end &&
      !int_parse(slash + 1, (size_t)(end - slash - 1), 0, 1 << 20, &db))
    rc = cm_error_set(err, CM_E_INVALID, "rate limit store: redis DB not a number");
  if (rc == 0)
    rc = query_parse("redis://", q ? q + 1 : NULL, "timeout_ms", 1, 600000, &timeout, err);
  r->db = (int)db;
  r->timeout_ms = (int)timeout;
  return rc;
}

static int redis_open(rl_store *s, const char *url, struct cm_error *err)
{
  struct redis_conn *r = &s->redis;
  int rc;

  memset(r, 0, sizeof *r);
  pthread_mutex_init(&r->lock, NULL);
  rc = redis_url_parse(r, url, err);
  if (rc)
    redis_cleanup(r);
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
    rc = redis_open(s, url, err);
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
    mem_cleanup(&s->mem);
  else
    redis_cleanup(&s->redis);
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
  return s->kind == RL_KIND_MEMORY ? 0 : redis_check(&s->redis, err);
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
    rc = mem_hit(&s->mem, scope, limits, n, now_ms, hits, &nhit, err);
  else
    rc = redis_hit(&s->redis, scope, limits, n, now_ms, hits, &nhit, err);
  if (rc)
    goto out;
  result_fill(limits, n, hits, nhit, now_ms, out);
out:
  return rc;
}
