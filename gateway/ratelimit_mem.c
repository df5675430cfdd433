/* ratelimit_mem: the in-memory store, a chained hash table sized for its cap with a
 * least-recently-used list; one mutex. */
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "mem.h"
#include "ratelimit_int.h"

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
int rl_mem_hit(struct mem_table *t, const char *scope, const struct rl_limit *limits, size_t n,
                   int64_t now_ms, struct hit *hits, size_t *nhit, struct cm_error *err)
{
  struct mem_entry *e[RL_LIMITS_MAX];
  char key[RL_KEY_MAX];
  size_t i;
  int rc = 0;

  pthread_mutex_lock(&t->lock);
  mem_reclaim(t, now_ms);
  for (i = 0; i < n; i++) {
    e[i] = mem_get(t, key, rl_key_build(key, sizeof key, "", scope, &limits[i]));
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

int rl_mem_init(struct mem_table *t, size_t max, struct cm_error *err)
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

void rl_mem_cleanup(struct mem_table *t)
{
  while (t->oldest)
    mem_remove(t, t->oldest);
  cm_free(t->buckets);
  pthread_mutex_destroy(&t->lock);
}

