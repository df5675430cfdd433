/* ratelimit internals shared by ratelimit.c (limit strings, the store's front), ratelimit_mem.c
 * (the in-memory table) and ratelimit_redis.c (the Redis store). */
#ifndef CREDITO_RATELIMIT_INT_H
#define CREDITO_RATELIMIT_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <hiredis.h>

#include "ratelimit.h"

/* A counter's key: scope, then "/amount/multiples/unit" as the limits library builds it. */
#define RL_KEY_MAX       (RL_SCOPE_MAX + 48)
#define REDIS_PREFIX     "credito:rl:"
#define REDIS_PREFIX_LEN (sizeof REDIS_PREFIX - 1)
/* Expired counters a memory store frees per hit, oldest first. */
#define MEM_RECLAIM 8

/* A counter after a hit. */
struct hit {
  int64_t count;  /* hits in the window, this one included */
  int64_t end_ms; /* the window's end, Unix ms */
};

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

/* Writes prefix, scope and "/amount/multiples/unit" into buf (size bytes); returns the length.
 * The scope and numbers are checked first, so RL_KEY_MAX bytes past the prefix hold the key. */
size_t rl_key_build(char *buf, size_t size, const char *prefix, const char *scope,
                    const struct rl_limit *l);

/* Monotonic milliseconds (for back-off). */
int64_t rl_mono_ms(void);

/* Parses the len bytes at s as a decimal in min..max. */
bool rl_int_parse(const char *s, size_t len, long min, long max, long *out);

/* Parses a store URL's query: nothing, or "name=N" with N in min..max. */
int rl_query_parse(const char *scheme, const char *q, const char *name, long min, long max,
                   long *out, struct cm_error *err);

/* The memory store (ratelimit_mem.c). */
int rl_mem_init(struct mem_table *t, size_t max, struct cm_error *err);
int rl_mem_hit(struct mem_table *t, const char *scope, const struct rl_limit *limits, size_t n,
               int64_t now_ms, struct hit *hits, size_t *nhit, struct cm_error *err);
void rl_mem_cleanup(struct mem_table *t);

/* The Redis store (ratelimit_redis.c): open parses the URL (no connection yet). */
int rl_redis_open(struct redis_conn *r, const char *url, struct cm_error *err);
int rl_redis_hit(struct redis_conn *r, const char *scope, const struct rl_limit *limits,
                 size_t n, int64_t now_ms, struct hit *hits, size_t *nhit, struct cm_error *err);
int rl_redis_check(struct redis_conn *r, struct cm_error *err);
void rl_redis_cleanup(struct redis_conn *r);

#endif
