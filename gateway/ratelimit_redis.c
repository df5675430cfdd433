/* ratelimit_redis: the Redis store: one connection behind a mutex, one EVALSHA per hit, so
 * that several gateways share their counters. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "mem.h"
#include "ratelimit_int.h"

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
  int64_t now = rl_mono_ms();
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
    ev->lens[a] = rl_key_build(ev->keys[i], sizeof ev->keys[i], REDIS_PREFIX, scope, &limits[i]);
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
int rl_redis_hit(struct redis_conn *r, const char *scope, const struct rl_limit *limits,
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

int rl_redis_check(struct redis_conn *r, struct cm_error *err)
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

void rl_redis_cleanup(struct redis_conn *r)
{
  if (r->ctx)
    redisFree(r->ctx);
  cm_free(r->host);
  cm_free(r->user);
  cm_free(r->password);
  pthread_mutex_destroy(&r->lock);
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
  if (colon && !rl_int_parse(colon + 1, (size_t)(end - colon - 1), 1, 65535, &port))
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
      !rl_int_parse(slash + 1, (size_t)(end - slash - 1), 0, 1 << 20, &db))
    rc = cm_error_set(err, CM_E_INVALID, "rate limit store: redis DB not a number");
  if (rc == 0)
    rc = rl_query_parse("redis://", q ? q + 1 : NULL, "timeout_ms", 1, 600000, &timeout, err);
  r->db = (int)db;
  r->timeout_ms = (int)timeout;
  return rc;
}

int rl_redis_open(struct redis_conn *r, const char *url, struct cm_error *err)
{
  int rc;

  memset(r, 0, sizeof *r);
  pthread_mutex_init(&r->lock, NULL);
  rc = redis_url_parse(r, url, err);
  if (rc)
    rl_redis_cleanup(r);
  return rc;
}

