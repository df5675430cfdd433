/* Unit tests for gateway/ratelimit.c: the limit notation (every form, bad strings), the fixed
 * window on a controlled clock, several limits and the order they are hit in, independent
 * scopes, the memory store's cap, threads hammering one counter, an allocation-failure loop,
 * store URLs, and Redis: a real redis-server started on a free port for each test (the test
 * fails, not skips, when redis-server is not on PATH), two stores sharing one budget, windows
 * expiring, key layout, a lost script, a server that is down, silent or restarted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis.h>

#include "err.h"
#include "mem.h"
#include "ratelimit.h"

/* A fixed "now" for the memory store's clock: 2023-11-14T22:13:20.250Z. */
#define T0 1700000000250LL

static void *leakcheck_malloc(size_t n)
{
  return test_malloc(n);
}
static void *leakcheck_realloc(void *p, size_t n)
{
  return test_realloc(p, n);
}
static void leakcheck_free(void *p)
{
  test_free(p);
}
static const struct cm_mem_hooks leakcheck = {leakcheck_malloc, leakcheck_realloc, leakcheck_free};

static int64_t mono_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* Parses spec, which must be valid. */
static size_t parse_ok(const char *spec, struct rl_limit *out)
{
  struct cm_error err;
  size_t n = 99;

  if (rl_parse(spec, out, RL_LIMITS_MAX, &n, &err) != 0)
    fail_msg("rl_parse('%s'): %s", spec, err.msg);
  return n;
}

/* One hit that must succeed; returns whether it was allowed. */
static bool hit(rl_store *s, const char *scope, const struct rl_limit *l, size_t n, int64_t now,
                struct rl_result *r)
{
  struct cm_error err;

  if (rl_hit(s, scope, l, n, now, r, &err) != 0)
    fail_msg("rl_hit(%s): %s", scope, err.msg);
  return r->allowed;
}

static rl_store *store_ok(const char *url)
{
  struct cm_error err;
  rl_store *s = rl_store_new(url, &err);

  if (!s)
    fail_msg("rl_store_new(%s): %s", url ? url : "NULL", err.msg);
  return s;
}

/* ------------------------------------------------------------------------------------------ */
/* Notation                                                                                    */

static void test_parse_forms(void **state)
{
  static const struct {
    const char *spec;
    const char *texts[3]; /* rl_limit_text of each limit, NULL after the last */
  } cases[] = {
      {"100/minute", {"100 per 1 minute"}},
      {"10/second", {"10 per 1 second"}},
      {"5 per minute", {"5 per 1 minute"}},
      {"1000/hour", {"1000 per 1 hour"}},
      {"2/5 seconds", {"2 per 5 second"}},
      {"2 per 5 seconds", {"2 per 5 second"}},
      {"3/days", {"3 per 1 day"}},
      {"4 PER 2 Months", {"4 per 2 month"}},
      {"7/YEAR", {"7 per 1 year"}},
      {"0/minute", {"0 per 1 minute"}},
      {"05/010minutes", {"5 per 10 minute"}},
      {"5perminute", {"5 per 1 minute"}},
      {"  9 / 3 hours  ", {"9 per 3 hour"}},
      {"100/minute;10/second", {"100 per 1 minute", "10 per 1 second"}},
      {"1/second, 2/minute | 3/hour", {"1 per 1 second", "2 per 1 minute", "3 per 1 hour"}},
      {"1000000000/100000 years", {"1000000000 per 100000 year"}},
  };
  struct rl_limit l[RL_LIMITS_MAX];
  char text[RL_TEXT_SIZE];
  size_t i, k, n;

  (void)state;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    n = parse_ok(cases[i].spec, l);
    for (k = 0; k < 3 && cases[i].texts[k]; k++) {
      assert_true(k < n);
      rl_limit_text(&l[k], text, sizeof text);
      assert_string_equal(text, cases[i].texts[k]);
    }
    assert_int_equal(n, k);
  }
  parse_ok("2/5 seconds", l);
  assert_int_equal(l[0].amount, 2);
  assert_int_equal(l[0].multiples, 5);
  assert_int_equal(l[0].unit, RL_SECOND);
  assert_int_equal(rl_limit_window_s(&l[0]), 5);
  parse_ok("1/month;1/year;1/day", l);
  assert_int_equal(rl_limit_window_s(&l[0]), 30 * 86400);
  assert_int_equal(rl_limit_window_s(&l[1]), 360 * 86400);
  assert_string_equal(rl_unit_name(l[2].unit), "day");
}

static void test_parse_bad(void **state)
{
  static const struct {
    const char *spec;
    const char *why; /* part of the message */
  } cases[] = {
      {"", "'': an empty limit"},
      {"   ", "an empty limit"},
      {"5/minute;", "'5/minute;': an empty limit"},
      {";5/minute", "an empty limit"},
      {"5/minute;;1/second", "an empty limit"},
      {"minute", "'minute': expected a number first"},
      {"-5/minute", "expected a number first"},
      {"5", "'5': expected '/' or 'per'"},
      {"5 minute", "expected '/' or 'per'"},
      {"5/", "expected second, minute"},
      {"5/fortnight", "'5/fortnight': expected second"},
      {"5/min", "expected second"},
      {"5/5", "expected second"},
      {"5/minutess", "unexpected text after the unit"},
      {"5/minute x", "unexpected text"},
      {"5/minute 1/second", "unexpected text"},
      {"5.5/minute", "expected '/' or 'per'"},
      {"5/0 seconds", "window of zero"},
      {"1000000001/second", "amount too large"},
      {"99999999999999999999999/second", "amount too large"},
      {"1/100001 seconds", "window too long"},
      {"10/second;5/fortnight", "'5/fortnight'"},
  };
  struct rl_limit l[RL_LIMITS_MAX];
  struct cm_error err;
  size_t i, n;

  (void)state;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    n = 99;
    assert_int_equal(rl_parse(cases[i].spec, l, RL_LIMITS_MAX, &n, &err), CM_E_INVALID);
    assert_int_equal(err.code, CM_E_INVALID);
    assert_int_equal(n, 0);
    if (!strstr(err.msg, cases[i].why))
      fail_msg("'%s': message '%s' lacks '%s'", cases[i].spec, err.msg, cases[i].why);
  }
  assert_int_equal(rl_parse(NULL, l, RL_LIMITS_MAX, &n, &err), CM_E_INVALID);
  assert_int_equal(rl_parse("1/second;2/second;3/second", l, 2, &n, &err), CM_E_INVALID);
  assert_non_null(strstr(err.msg, "more than 2 limits"));
  assert_int_equal(n, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Memory store                                                                                */

/* 5/minute: five hits pass with 4..0 left, the sixth is refused until the window that began at
 * the first hit is over, then a new window starts. */
static void test_fixed_window(void **state)
{
  rl_store *s = store_ok(NULL);
  struct rl_limit l[1];
  struct rl_result r;
  int i;

  (void)state;
  parse_ok("5/minute", l);
  for (i = 0; i < 5; i++) {
    assert_true(hit(s, "key:alice", l, 1, T0 + i * 1000, &r));
    assert_int_equal(r.remaining, 4 - i);
    assert_int_equal(r.index, 0);
    assert_int_equal(r.limit.amount, 5);
    assert_int_equal(r.reset_epoch_s, 1700000061); /* T0 + 60 s, rounded up */
    assert_int_equal(r.retry_after_s, 60 - i);
  }
  assert_false(hit(s, "key:alice", l, 1, T0 + 30500, &r));
  assert_int_equal(r.remaining, 0);
  assert_string_equal(r.text, "5 per 1 minute");
  assert_int_equal(r.reset_epoch_s, 1700000061);
  assert_int_equal(r.retry_after_s, 30); /* 29.75 s rounded up */
  assert_false(hit(s, "key:alice", l, 1, T0 + 59999, &r));
  assert_int_equal(r.retry_after_s, 1);
  assert_int_equal(r.reset_epoch_s, 1700000061);
  assert_true(hit(s, "key:alice", l, 1, T0 + 60000, &r));
  assert_int_equal(r.remaining, 4);
  assert_int_equal(r.reset_epoch_s, 1700000121);
  assert_int_equal(r.retry_after_s, 60);
  rl_store_free(s);
  rl_store_free(NULL);
}

/* "10/second;5/minute": allowed hits report the per-second limit (slowapi reports the shortest
 * unit), the refused ones the per-minute limit that refused them. */
static void test_two_limits(void **state)
{
  rl_store *s = store_ok("memory://");
  struct rl_limit l[2];
  struct rl_result r;
  int i;

  (void)state;
  assert_int_equal(parse_ok("10/second;5/minute", l), 2);
  for (i = 0; i < 5; i++) {
    assert_true(hit(s, "key:k", l, 2, T0 + i, &r));
    assert_int_equal(r.index, 0);
    assert_string_equal(r.text, "10 per 1 second");
    assert_int_equal(r.remaining, 9 - i);
    assert_int_equal(r.retry_after_s, 1);
  }
  assert_false(hit(s, "key:k", l, 2, T0 + 10, &r));
  assert_int_equal(r.index, 1);
  assert_string_equal(r.text, "5 per 1 minute");
  assert_int_equal(r.remaining, 0);
  assert_int_equal(r.retry_after_s, 60);
  assert_int_equal(r.reset_epoch_s, 1700000061);
  assert_false(hit(s, "key:k", l, 2, T0 + 1500, &r)); /* a new second, the same minute */
  assert_int_equal(r.index, 1);
  assert_int_equal(r.retry_after_s, 59);
  assert_true(hit(s, "key:k", l, 2, T0 + 60000, &r));
  assert_int_equal(r.index, 0);
  assert_int_equal(r.remaining, 9);
  rl_store_free(s);
}

/* Limits are hit in turn and the first one over its amount stops the others: the refused hit
 * counts against the limits before it, not after it (the same counters are read back with the
 * per-minute limit alone, since a counter belongs to a scope and a limit). */
static void test_hit_order(void **state)
{
  rl_store *s = store_ok(NULL);
  struct rl_limit a[2], b[2];
  struct rl_result r;
  int i;

  (void)state;
  parse_ok("3/second;100/minute", a);
  parse_ok("100/minute;3/second", b);
  for (i = 0; i < 4; i++) {
    assert_int_equal(hit(s, "a", a, 2, T0, &r), i < 3);
    assert_int_equal(hit(s, "b", b, 2, T0, &r), i < 3);
  }
  assert_int_equal(r.index, 1);
  assert_string_equal(r.text, "3 per 1 second");
  assert_true(hit(s, "a", &a[1], 1, T0, &r));
  assert_int_equal(r.remaining, 100 - 3 - 1);
  assert_true(hit(s, "b", &b[0], 1, T0, &r));
  assert_int_equal(r.remaining, 100 - 4 - 1);
  rl_store_free(s);
}

static void test_scopes(void **state)
{
  rl_store *s = store_ok(NULL);
  struct rl_limit l[1];
  struct rl_result r;

  (void)state;
  parse_ok("2/minute", l);
  assert_true(hit(s, "key:alice", l, 1, T0, &r));
  assert_true(hit(s, "key:alice", l, 1, T0, &r));
  assert_false(hit(s, "key:alice", l, 1, T0, &r));
  assert_true(hit(s, "key:bob", l, 1, T0, &r));
  assert_int_equal(r.remaining, 1);
  assert_true(hit(s, "ip:1.2.3.4", l, 1, T0, &r));
  assert_true(hit(s, "ip:1.2.3.4", l, 1, T0, &r));
  assert_false(hit(s, "ip:1.2.3.4", l, 1, T0, &r));
  assert_false(hit(s, "key:alice", l, 1, T0 + 1000, &r));
  assert_int_equal(rl_store_size(s), 3);
  rl_store_free(s);
}

/* 10000 client IPs through a store capped at 32 counters: memory stays at the cap, an evicted
 * client starts a fresh window (the documented leniency), and once the windows are over each hit
 * frees expired counters until only the live one is left. */
static void test_cap(void **state)
{
  rl_store *s = store_ok("memory://?max_entries=32");
  struct rl_limit l[1];
  struct rl_result r;
  char scope[32];
  int i;

  (void)state;
  parse_ok("1/minute", l);
  for (i = 0; i < 10000; i++) {
    snprintf(scope, sizeof scope, "ip:10.0.%d.%d", i / 256, i % 256);
    assert_true(hit(s, scope, l, 1, T0, &r));
    assert_true(rl_store_size(s) <= 32);
  }
  assert_int_equal(rl_store_size(s), 32);
  assert_false(hit(s, scope, l, 1, T0, &r));        /* the last one is still counted */
  assert_true(hit(s, "ip:10.0.0.0", l, 1, T0, &r)); /* the first one was evicted */
  for (i = 0; i < 5; i++)
    assert_true(hit(s, "ip:192.0.2.1", l, 1, T0 + 61000 + i * 60000, &r));
  assert_int_equal(rl_store_size(s), 1);
  rl_store_free(s);
}

/* Threads hammering one counter get exactly the amount allowed between them. */
struct hammer {
  rl_store *s;              /* shared */
  const struct rl_limit *l; /* one limit */
  const char *scope;        /* shared */
  int hits;                 /* to make */
  int64_t now;              /* 0: the wall clock */
  int allowed;              /* out */
  int failed;               /* out: calls that returned an error */
};

static void *hammer_run(void *arg)
{
  struct hammer *h = arg;
  struct rl_result r;
  struct cm_error err;
  int i;

  for (i = 0; i < h->hits; i++) {
    if (rl_hit(h->s, h->scope, h->l, 1, h->now ? h->now : rl_now_ms(), &r, &err) != 0)
      h->failed++;
    else if (r.allowed)
      h->allowed++;
  }
  return NULL;
}

/* Runs nthreads hammers over the stores (thread i uses stores[i % nstores]); returns the total
 * allowed. */
static int hammer(rl_store **stores, int nstores, int nthreads, int hits, const char *spec,
                  int64_t now)
{
  struct rl_limit l[1];
  struct hammer h[8];
  pthread_t t[8];
  int i, total = 0;

  parse_ok(spec, l);
  for (i = 0; i < nthreads; i++) {
    h[i] = (struct hammer){stores[i % nstores], l, "key:hammer", hits, now, 0, 0};
    assert_int_equal(pthread_create(&t[i], NULL, hammer_run, &h[i]), 0);
  }
  for (i = 0; i < nthreads; i++) {
    pthread_join(t[i], NULL);
    assert_int_equal(h[i].failed, 0);
    total += h[i].allowed;
  }
  return total;
}

static void test_threads(void **state)
{
  rl_store *s = store_ok(NULL);

  (void)state;
  assert_int_equal(hammer(&s, 1, 8, 500, "1000/minute", T0), 1000);
  rl_store_free(s);
}

/* Fails the n-th allocation of rl_store_new, then of rl_hit on three new counters, for n = 0, 1,
 * ... until the call succeeds: every failure is CM_E_NOMEM, counts nothing and leaks nothing
 * (cmocka checks the blocks); a hit on existing counters allocates nothing. */
static void test_allocation_failures(void **state)
{
  struct rl_limit l[3];
  struct rl_result r;
  struct cm_error err;
  rl_store *s = NULL;
  long n;
  int rc = -1;

  (void)state;
  parse_ok("3/second;5/minute;7/hour", l);
  cm_mem_set_hooks(&leakcheck);
  for (n = 0; !s; n++) {
    cm_mem_fail_after(n);
    s = rl_store_new("memory://?max_entries=64", &err);
    cm_mem_fail_after(-1);
    if (!s)
      assert_int_equal(err.code, CM_E_NOMEM);
  }
  for (n = 0; rc != 0; n++) {
    cm_mem_fail_after(n);
    rc = rl_hit(s, "key:x", l, 3, T0, &r, &err);
    cm_mem_fail_after(-1);
    if (rc) {
      assert_int_equal(rc, CM_E_NOMEM);
      assert_int_equal(err.code, CM_E_NOMEM);
    }
  }
  print_message("rl_hit survived %ld failing allocations\n", n - 1);
  assert_true(n > 1);
  assert_true(r.allowed);
  assert_int_equal(r.remaining, 2);
  cm_mem_fail_after(0);
  assert_true(hit(s, "key:x", &l[1], 1, T0, &r));
  assert_true(hit(s, "key:x", &l[2], 1, T0, &r));
  cm_mem_fail_after(-1);
  assert_int_equal(r.remaining, 7 - 2);
  rl_store_free(s);
  cm_mem_set_hooks(NULL);
}

static void test_bad_args(void **state)
{
  rl_store *s = store_ok(NULL);
  struct rl_limit l[RL_LIMITS_MAX + 1];
  struct rl_limit bad;
  struct rl_result r;
  struct cm_error err;
  char scope[RL_SCOPE_MAX + 2];
  size_t i;

  (void)state;
  for (i = 0; i <= RL_LIMITS_MAX; i++)
    parse_ok("1/second", &l[i]);
  memset(scope, 'x', sizeof scope - 1);
  scope[sizeof scope - 1] = '\0';
  assert_int_equal(rl_hit(s, scope, l, 1, T0, &r, &err), CM_E_INVALID);
  scope[RL_SCOPE_MAX] = '\0';
  assert_int_equal(rl_hit(s, scope, l, 1, T0, &r, &err), 0);
  assert_int_equal(rl_hit(s, "", l, 1, T0, &r, &err), CM_E_INVALID);
  assert_int_equal(rl_hit(s, NULL, l, 1, T0, &r, &err), CM_E_INVALID);
  assert_int_equal(rl_hit(s, "k", l, 0, T0, &r, &err), CM_E_INVALID);
  assert_int_equal(rl_hit(s, "k", l, RL_LIMITS_MAX + 1, T0, &r, &err), CM_E_INVALID);
  assert_int_equal(rl_hit(s, "k", l, RL_LIMITS_MAX, T0, &r, &err), 0);
  bad = (struct rl_limit){-1, 1, RL_SECOND};
  assert_int_equal(rl_hit(s, "k", &bad, 1, T0, &r, &err), CM_E_INVALID);
  bad = (struct rl_limit){1, 0, RL_SECOND};
  assert_int_equal(rl_hit(s, "k", &bad, 1, T0, &r, &err), CM_E_INVALID);
  bad = (struct rl_limit){1, 1, (enum rl_unit)42};
  assert_int_equal(rl_hit(s, "k", &bad, 1, T0, &r, &err), CM_E_INVALID);
  bad = (struct rl_limit){0, 1, RL_SECOND};
  assert_false(hit(s, "k", &bad, 1, T0, &r));
  assert_int_equal(r.retry_after_s, 1);
  assert_int_equal(rl_store_check(s, &err), 0);
  rl_store_free(s);
}

static void test_store_urls(void **state)
{
  static const char *bad[] = {
      "mongodb://x",
      "memory:/",
      "memory://x",
      "memory://?max_entries=0",
      "memory://?max_entries=15",
      "memory://?foo=1",
      "memory://?max_entries=12x",
      "memory://?max_entries=",
      "redis://",
      "redis://:6379",
      "redis://h:0",
      "redis://h:65536",
      "redis://h:12a",
      "redis://h/abc",
      "redis://[::1",
      "redis://[::1]x",
      "redis://[]:1",
      "redis://h?timeout_ms=0",
      "redis://h?x=1",
      "redis://pass@h",
      "redis://h?timeout_ms=1&x=2",
  };
  static const char *good[] = {
      "memory://",
      "",
      "memory://?max_entries=16",
      "redis://localhost",
      "redis://127.0.0.1:6380/2",
      "redis://:secret@h:1/0?timeout_ms=100",
      "redis://user:pw@[::1]:6379",
      "redis://h/",
      "redis://[::1]",
      "redis://h?timeout_ms=600000",
  };
  struct cm_error err;
  rl_store *s;
  size_t i;

  (void)state;
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    s = rl_store_new(bad[i], &err);
    if (s)
      fail_msg("'%s' accepted", bad[i]);
    assert_int_equal(err.code, CM_E_INVALID);
  }
  /* Messages never quote a URL: it may hold a password. */
  assert_null(rl_store_new("redis://:s3cret@h?x=1", &err));
  assert_null(strstr(err.msg, "s3cret"));
  assert_null(rl_store_new("rediss://:s3cret@h", &err));
  assert_null(strstr(err.msg, "s3cret"));
  assert_non_null(strstr(err.msg, "'rediss'"));
  cm_mem_set_hooks(&leakcheck);
  for (i = 0; i < sizeof good / sizeof good[0]; i++) {
    s = store_ok(good[i]);
    assert_int_equal(rl_store_size(s), 0);
    rl_store_free(s);
  }
  cm_mem_set_hooks(NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Redis                                                                                       */

/* A redis-server of our own, in *state. */
struct redis_fixture {
  pid_t pid;    /* the server */
  int port;     /* where it listens */
  char url[64]; /* redis://127.0.0.1:port */
};

/* A TCP port nobody listens on right now. */
static int free_port(void)
{
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int port = -1;

  if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &len) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0)
    close(fd);
  return port;
}

static bool on_path(const char *prog)
{
  const char *path = getenv("PATH");
  char dir[4096];
  const char *p, *q;

  for (p = path ? path : "/usr/bin:/bin"; *p; p = *q ? q + 1 : q) {
    q = p + strcspn(p, ":");
    snprintf(dir, sizeof dir, "%.*s/%s", (int)(q - p), p, prog);
    if (access(dir, X_OK) == 0)
      return true;
  }
  return false;
}

/* True once a PING on port answers within timeout_ms. */
static bool redis_ready(int port, int timeout_ms)
{
  struct timeval tv = {0, 200000};
  int64_t until = mono_ms() + timeout_ms;
  redisContext *c;
  redisReply *reply;
  bool ok = false;

  while (!ok && mono_ms() < until) {
    c = redisConnectWithTimeout("127.0.0.1", port, tv);
    reply = c && !c->err ? redisCommand(c, "PING") : NULL;
    ok = reply && reply->type == REDIS_REPLY_STATUS;
    if (reply)
      freeReplyObject(reply);
    if (c)
      redisFree(c);
    if (!ok)
      sleep_ms(20);
  }
  return ok;
}

/* Starts redis-server on f->port without persistence; waits until it answers. */
static int redis_start(struct redis_fixture *f)
{
  char port[16];
  int fd;

  snprintf(port, sizeof port, "%d", f->port);
  f->pid = fork();
  if (f->pid == 0) {
    fd = open("/dev/null", O_WRONLY);
    dup2(fd, 1);
    dup2(fd, 2);
    execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", "--dir", "/tmp", (char *)NULL);
    _exit(127);
  }
  if (f->pid < 0 || !redis_ready(f->port, 5000)) {
    print_error("redis-server on port %d did not start\n", f->port);
    return -1;
  }
  return 0;
}

static void redis_stop(struct redis_fixture *f)
{
  if (f->pid > 0) {
    kill(f->pid, SIGKILL);
    waitpid(f->pid, NULL, 0);
  }
  f->pid = 0;
}

static int redis_setup(void **state)
{
  static struct redis_fixture fixture;
  struct redis_fixture *f = &fixture;

  memset(f, 0, sizeof *f);
  *state = f;
  if (!on_path("redis-server")) {
    print_error("redis-server is not on PATH: install Debian's redis-server\n");
    return -1;
  }
  f->port = free_port();
  snprintf(f->url, sizeof f->url, "redis://127.0.0.1:%d", f->port);
  return redis_start(f);
}

static int redis_teardown(void **state)
{
  struct redis_fixture *f = *state;

  redis_stop(f);
  return 0;
}

/* Two stores, like two gateways, on one server share 5/minute: exactly five hits pass. */
static void test_redis_shared(void **state)
{
  struct redis_fixture *f = *state;
  rl_store *s[2] = {store_ok(f->url), store_ok(f->url)};
  struct rl_limit l[1];
  struct rl_result r;
  struct cm_error err;
  int64_t now;
  int i, allowed = 0;

  parse_ok("5/minute", l);
  assert_int_equal(rl_store_check(s[0], &err), 0);
  for (i = 0; i < 10; i++) {
    now = rl_now_ms();
    if (hit(s[i % 2], "key:shared", l, 1, now, &r)) {
      allowed++;
      assert_int_equal(r.remaining, 5 - allowed);
    } else {
      assert_int_equal(r.remaining, 0);
      assert_string_equal(r.text, "5 per 1 minute");
      assert_in_range(r.retry_after_s, 59, 60);
      assert_in_range(r.reset_epoch_s, now / 1000 + 59, now / 1000 + 61);
    }
  }
  assert_int_equal(allowed, 5);
  assert_int_equal(rl_store_size(s[0]), 0);
  rl_store_free(s[0]);
  rl_store_free(s[1]);
}

/* A one-second window ends on the server's clock and a new one starts. */
static void test_redis_expiry(void **state)
{
  struct redis_fixture *f = *state;
  rl_store *s = store_ok(f->url);
  struct rl_limit l[2];
  struct rl_result r;

  parse_ok("2/second;100/minute", l);
  assert_true(hit(s, "ip:127.0.0.1", l, 2, rl_now_ms(), &r));
  assert_true(hit(s, "ip:127.0.0.1", l, 2, rl_now_ms(), &r));
  assert_int_equal(r.index, 0);
  assert_int_equal(r.remaining, 0);
  assert_false(hit(s, "ip:127.0.0.1", l, 2, rl_now_ms(), &r));
  assert_int_equal(r.index, 0);
  assert_int_equal(r.retry_after_s, 1);
  sleep_ms(1100);
  assert_true(hit(s, "ip:127.0.0.1", l, 2, rl_now_ms(), &r));
  assert_int_equal(r.remaining, 1);
  assert_true(hit(s, "ip:127.0.0.1", &l[1], 1, rl_now_ms(), &r));
  assert_int_equal(r.remaining, 100 - 4); /* the refused hit stopped at the per-second limit */
  rl_store_free(s);
}

/* Runs a command on a connection of the test's own and returns its integer reply. */
static long long redis_int(redisContext *c, const char *fmt, const char *arg)
{
  redisReply *reply = redisCommand(c, fmt, arg);
  long long v;

  assert_non_null(reply);
  assert_int_equal(reply->type, REDIS_REPLY_INTEGER);
  v = reply->integer;
  freeReplyObject(reply);
  return v;
}

/* Counters live in the URL's DB under credito:rl:<scope>/<limit> with the window as TTL; a
 * server that lost the script (SCRIPT FLUSH) gets it again. */
static void test_redis_keys(void **state)
{
  struct redis_fixture *f = *state;
  struct timeval tv = {1, 0};
  redisContext *c = redisConnectWithTimeout("127.0.0.1", f->port, tv);
  char url[sizeof f->url + 32];
  rl_store *s;
  struct rl_limit l[1];
  struct rl_result r;
  const char *key = "credito:rl:key:alice/5/1/minute";

  snprintf(url, sizeof url, "%s/3?timeout_ms=2000", f->url);
  s = store_ok(url);
  parse_ok("5/minute", l);
  assert_true(hit(s, "key:alice", l, 1, rl_now_ms(), &r));
  assert_true(c && !c->err);
  assert_int_equal(redis_int(c, "EXISTS %s", key), 0);
  freeReplyObject(redisCommand(c, "SELECT 3"));
  assert_int_equal(redis_int(c, "INCRBY %s 0", key), 1);
  assert_in_range(redis_int(c, "PTTL %s", key), 55000, 60000);
  freeReplyObject(redisCommand(c, "SCRIPT FLUSH"));
  assert_true(hit(s, "key:alice", l, 1, rl_now_ms(), &r));
  assert_int_equal(r.remaining, 3);
  redisFree(c);
  rl_store_free(s);
}

/* Threads on two stores share one budget exactly. */
static void test_redis_threads(void **state)
{
  struct redis_fixture *f = *state;
  rl_store *s[2] = {store_ok(f->url), store_ok(f->url)};

  assert_int_equal(hammer(s, 2, 6, 40, "50/minute", 0), 50);
  rl_store_free(s[0]);
  rl_store_free(s[1]);
}

/* A server that dies fails hits at once; once it is back (empty), the store reconnects after
 * RL_REDIS_RETRY_MS and counts again. */
static void test_redis_restart(void **state)
{
  struct redis_fixture *f = *state;
  rl_store *s = store_ok(f->url);
  struct rl_limit l[1];
  struct rl_result r;
  struct cm_error err;
  int64_t t;
  int i;

  parse_ok("5/minute", l);
  assert_true(hit(s, "key:k", l, 1, rl_now_ms(), &r));
  redis_stop(f);
  for (i = 0; i < 3; i++) {
    t = mono_ms();
    assert_int_equal(rl_hit(s, "key:k", l, 1, rl_now_ms(), &r, &err), CM_E_UNAVAILABLE);
    assert_int_equal(err.code, CM_E_UNAVAILABLE);
    assert_true(mono_ms() - t < 1000);
  }
  assert_non_null(strstr(err.msg, "next try"));
  assert_int_equal(redis_start(f), 0);
  sleep_ms(RL_REDIS_RETRY_MS + 100);
  assert_int_equal(rl_store_check(s, &err), 0);
  assert_true(hit(s, "key:k", l, 1, rl_now_ms(), &r));
  assert_int_equal(r.remaining, 4);
  rl_store_free(s);
}

/* Nothing listens: the hit fails with CM_E_UNAVAILABLE well under a second, and so do the
 * next ones, without trying to connect again. */
static void test_redis_down(void **state)
{
  char url[64];
  rl_store *s;
  struct rl_limit l[1];
  struct rl_result r;
  struct cm_error err;
  int64_t t;

  (void)state;
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", free_port());
  s = store_ok(url);
  parse_ok("5/minute", l);
  t = mono_ms();
  assert_int_equal(rl_hit(s, "key:k", l, 1, rl_now_ms(), &r, &err), CM_E_UNAVAILABLE);
  assert_true(mono_ms() - t < 1000);
  assert_non_null(strstr(err.msg, "redis 127.0.0.1:"));
  assert_int_equal(rl_hit(s, "key:k", l, 1, rl_now_ms(), &r, &err), CM_E_UNAVAILABLE);
  assert_non_null(strstr(err.msg, "next try"));
  assert_int_equal(rl_store_check(s, &err), CM_E_UNAVAILABLE);
  assert_true(mono_ms() - t < 1000);
  rl_store_free(s);
}

/* A server that accepts connections but never answers: the command time-out ends the hit. */
static void test_redis_silent(void **state)
{
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  char url[80];
  rl_store *s;
  struct rl_limit l[1];
  struct rl_result r;
  struct cm_error err;
  int64_t t;

  (void)state;
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(fd, 8), 0); /* the kernel completes the handshake; no one reads */
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  snprintf(url, sizeof url, "redis://127.0.0.1:%d?timeout_ms=200", ntohs(a.sin_port));
  s = store_ok(url);
  parse_ok("5/minute", l);
  t = mono_ms();
  assert_int_equal(rl_hit(s, "key:k", l, 1, rl_now_ms(), &r, &err), CM_E_UNAVAILABLE);
  t = mono_ms() - t;
  assert_in_range(t, 150, 900);
  rl_store_free(s);
  close(fd);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_forms),
      cmocka_unit_test(test_parse_bad),
      cmocka_unit_test(test_fixed_window),
      cmocka_unit_test(test_two_limits),
      cmocka_unit_test(test_hit_order),
      cmocka_unit_test(test_scopes),
      cmocka_unit_test(test_cap),
      cmocka_unit_test(test_threads),
      cmocka_unit_test(test_allocation_failures),
      cmocka_unit_test(test_bad_args),
      cmocka_unit_test(test_store_urls),
      cmocka_unit_test_setup_teardown(test_redis_shared, redis_setup, redis_teardown),
      cmocka_unit_test_setup_teardown(test_redis_expiry, redis_setup, redis_teardown),
      cmocka_unit_test_setup_teardown(test_redis_keys, redis_setup, redis_teardown),
      cmocka_unit_test_setup_teardown(test_redis_threads, redis_setup, redis_teardown),
      cmocka_unit_test_setup_teardown(test_redis_restart, redis_setup, redis_teardown),
      cmocka_unit_test(test_redis_down),
      cmocka_unit_test(test_redis_silent),
  };

  /* hiredis writes with write(2): a server that went away must not kill the test. */
  signal(SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests_name("ratelimit", tests, NULL, NULL);
}
