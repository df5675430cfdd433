/* Integration tests of common/store: one behavioural suite run against both backends, a real
 * S3 server (the pinned @20minutes/s3rver, which checks SigV4) and a file store, plus S3-only
 * cases (credentials, unreachable endpoint, 5xx and broken transfers through flaky_http.py).
 * "test_store awscli" instead runs the cross-checks with Debian's awscli (interop). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <dirent.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "harness.h"
#include "store.h"
#include "store_int.h"

#define MIB (1024 * 1024)

struct fx {
  bool s3;
  store *s;          /* the store under test */
  size_t prefix_len; /* bytes of the store prefix ("suite/" on S3) */
  char dir[128];     /* temporary directory of this group */
  struct proc srv;   /* s3rver */
  struct proc flaky; /* flaky_http.py in front of s3rver */
  char endpoint[64]; /* http://127.0.0.1:PORT of s3rver */
  char flaky_ep[64]; /* of the proxy */
};

/* ---- helpers ---- */

static void md5_of(const void *p, size_t n, char out[33])
{
  unsigned char d[16];
  unsigned int len = 0;

  EVP_Digest(p, n, d, &len, EVP_md5(), NULL);
  for (int i = 0; i < 16; i++)
    snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* Runs argv (argv[0] a path), stdout into out when not NULL. Returns the exit status or -1. */
static int run(char *const argv[], struct cm_buf *out)
{
  int fds[2];
  pid_t pid;
  int status;

  if (pipe(fds) != 0)
    return -1;
  pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDONLY);

    dup2(devnull, 0);
    dup2(fds[1], 1);
    close(fds[0]);
    execv(argv[0], argv);
    _exit(127);
  }
  close(fds[1]);
  for (;;) {
    char buf[65536];
    ssize_t n = read(fds[0], buf, sizeof(buf));

    if (n <= 0)
      break;
    if (out)
      cm_buf_add(out, buf, (size_t)n);
  }
  close(fds[0]);
  if (pid < 0 || waitpid(pid, &status, 0) != pid)
    return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void rm_rf(const char *dir)
{
  char *argv[] = {"/bin/rm", "-rf", (char *)dir, NULL};

  if (dir[0])
    run(argv, NULL);
}

/* Deterministic pseudo-random bytes. */
static void fill_random(unsigned char *p, size_t n, uint32_t seed)
{
  uint32_t x = seed ? seed : 1;

  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p[i] = (unsigned char)(x >> 24);
  }
}

static int start_s3rver(struct fx *f)
{
  char data[192];
  char *argv[] = {NODE_BIN,
                  "--openssl-legacy-provider",
                  S3RVER_JS,
                  "--port",
                  "0",
                  "--address",
                  "127.0.0.1",
                  "--directory",
                  data,
                  "--bucket",
                  "credito",
                  "--access-key",
                  "credito-test",
                  "--secret-key",
                  "s3cr3t/+=x",
                  NULL};

  if (access(NODE_BIN, X_OK) != 0 || access(S3RVER_JS, R_OK) != 0) {
    fprintf(stderr, "FAIL: need node (%s) and tests/peers (npm ci in tests/peers)\n", NODE_BIN);
    return -1;
  }
  snprintf(data, sizeof(data), "%s/s3", f->dir);
  if (proc_start(&f->srv, argv, 20000) != 0)
    return -1;
  snprintf(f->endpoint, sizeof(f->endpoint), "http://127.0.0.1:%d", f->srv.port);
  return 0;
}

static int start_flaky(struct fx *f)
{
  char up[64];
  char *argv[] = {PYTHON_BIN, FLAKY_PY, "--upstream", up, NULL};

  snprintf(up, sizeof(up), "127.0.0.1:%d", f->srv.port);
  if (proc_start(&f->flaky, argv, 10000) != 0)
    return -1;
  snprintf(f->flaky_ep, sizeof(f->flaky_ep), "http://127.0.0.1:%d", f->flaky.port);
  return 0;
}

static store *open_s3(const char *url, const char *endpoint, const char *ak, const char *sk,
                      int retries, long timeout_ms, struct cm_error *err)
{
  struct store_opts o = {0};

  o.url = url;
  o.endpoint = endpoint;
  o.access_key = ak;
  o.secret_key = sk;
  o.retries = retries;
  o.timeout_ms = timeout_ms;
  return store_open(&o, err);
}

static int group_teardown(void **state)
{
  struct fx *f = *state;

  if (!f)
    return 0;
  store_free(f->s);
  proc_stop(&f->flaky);
  proc_stop(&f->srv);
  rm_rf(f->dir);
  free(f);
  return 0;
}

static struct fx *fx_new(bool s3)
{
  struct fx *f = calloc(1, sizeof(*f));

  if (!f)
    return NULL;
  f->s3 = s3;
  snprintf(f->dir, sizeof(f->dir), "/tmp/credito-store-XXXXXX");
  if (!mkdtemp(f->dir)) {
    free(f);
    return NULL;
  }
  return f;
}

static int s3_setup(void **state)
{
  struct fx *f = fx_new(true);
  struct cm_error err;

  *state = f;
  if (!f || start_s3rver(f) != 0 || start_flaky(f) != 0)
    return -1;
  /* The suite uses the key pair the launcher added, not s3rver's built-in one. */
  f->s = open_s3("s3://credito/suite", f->endpoint, "credito-test", "s3cr3t/+=x", 2, 10000, &err);
  f->prefix_len = strlen("suite/");
  if (!f->s || store_bucket_ensure(f->s, &err) != 0) {
    fprintf(stderr, "open: %s\n", err.msg);
    return -1;
  }
  return 0;
}

static int file_setup(void **state)
{
  struct fx *f = fx_new(false);
  struct store_opts o = {0};
  struct cm_error err;
  char url[256];

  *state = f;
  if (!f)
    return -1;
  snprintf(url, sizeof(url), "file://%s/store/", f->dir);
  o.url = url;
  f->s = store_open(&o, &err);
  if (!f->s || store_bucket_ensure(f->s, &err) != 0) {
    fprintf(stderr, "open: %s\n", err.msg);
    return -1;
  }
  return 0;
}

static void put_ok(store *s, const char *key, const void *p, size_t n)
{
  struct cm_error err;
  int rc = store_put(s, key, p, n, "application/octet-stream", &err);

  if (rc)
    fprintf(stderr, "put %s: %s\n", key, err.msg);
  assert_int_equal(rc, 0);
}

static void get_equals(store *s, const char *key, const void *p, size_t n)
{
  struct cm_error err;
  struct cm_buf b;
  int rc = store_get(s, key, n + 16, &b, &err);

  if (rc)
    fprintf(stderr, "get %s: %s\n", key, err.msg);
  assert_int_equal(rc, 0);
  assert_int_equal(b.len, n);
  if (n)
    assert_memory_equal(b.data, p, n);
  cm_buf_cleanup(&b);
}

/* ---- sources and sinks ---- */

/* A source of size pseudo-random bytes that md5s what it gives; fails or ends early on cue. */
struct gen {
  uint64_t size, given;
  uint32_t x;
  EVP_MD_CTX *md;
  uint64_t fail_at; /* give CM_E_IO at this offset (0: never) */
  uint64_t end_at;  /* claim the end at this offset (0: never) */
  int calls;
};

static int gen_read(void *ctx, void *buf, size_t cap, size_t *got)
{
  struct gen *g = ctx;
  unsigned char *p = buf;
  size_t n = cap;

  g->calls++;
  if (g->fail_at && g->given >= g->fail_at)
    return CM_E_IO;
  if (g->end_at && g->given >= g->end_at) {
    *got = 0;
    return 0;
  }
  if (n > g->size - g->given)
    n = (size_t)(g->size - g->given);
  for (size_t i = 0; i < n; i++) {
    g->x ^= g->x << 13;
    g->x ^= g->x >> 17;
    g->x ^= g->x << 5;
    p[i] = (unsigned char)(g->x >> 24);
  }
  if (g->md)
    EVP_DigestUpdate(g->md, p, n);
  g->given += n;
  *got = n;
  return 0;
}

/* A sink that counts chunks and bytes, md5s them, and can stop with a code. */
struct counter {
  uint64_t bytes;
  int chunks;
  size_t max_chunk;
  EVP_MD_CTX *md;
  int stop_with; /* returned from the first call when non-zero */
};

static int counter_sink(void *ctx, const void *data, size_t len)
{
  struct counter *c = ctx;

  c->chunks++;
  c->bytes += len;
  if (len > c->max_chunk)
    c->max_chunk = len;
  if (c->md)
    EVP_DigestUpdate(c->md, data, len);
  return c->stop_with;
}

static void md_hex(EVP_MD_CTX *md, char out[33])
{
  unsigned char d[16];
  unsigned int len = 0;

  EVP_DigestFinal_ex(md, d, &len);
  for (int i = 0; i < 16; i++)
    snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* ---- the shared suite ---- */

static void t_roundtrip_binary(void **state)
{
  struct fx *f = *state;
  unsigned char data[1000];
  struct store_stat st;
  struct cm_error err;
  char md5[33];

  for (size_t i = 0; i < sizeof(data); i++)
    data[i] = (unsigned char)(i % 7 == 0 ? 0 : i * 31);
  md5_of(data, sizeof(data), md5);
  put_ok(f->s, "rt/bin.dat", data, sizeof(data));
  get_equals(f->s, "rt/bin.dat", data, sizeof(data));
  assert_int_equal(store_head(f->s, "rt/bin.dat", &st, &err), 0);
  assert_int_equal(st.size, sizeof(data));
  assert_string_equal(st.etag, md5);
  assert_true(st.mtime_ms > 1600000000000LL);
  assert_int_equal(store_delete(f->s, "rt/bin.dat", &err), 0);
  assert_int_equal(store_head(f->s, "rt/bin.dat", &st, &err), CM_E_NOTFOUND);
  assert_int_equal(store_delete(f->s, "rt/bin.dat", &err), 0); /* missing: still fine */
}

static void t_empty_object(void **state)
{
  struct fx *f = *state;
  struct counter c = {0};
  struct store_stat st;
  struct cm_error err;
  struct cm_buf b;

  put_ok(f->s, "empty/x", NULL, 0);
  assert_int_equal(store_get(f->s, "empty/x", 10, &b, &err), 0);
  assert_int_equal(b.len, 0);
  assert_string_equal(cm_buf_str(&b), "");
  cm_buf_cleanup(&b);
  assert_int_equal(store_head(f->s, "empty/x", &st, &err), 0);
  assert_int_equal(st.size, 0);
  assert_string_equal(st.etag, "d41d8cd98f00b204e9800998ecf8427e");
  assert_int_equal(store_get_stream(f->s, "empty/x", counter_sink, &c, &st, &err), 0);
  assert_int_equal(c.bytes, 0);
  assert_int_equal(st.size, 0);
}

static void t_stream_5mib(void **state)
{
  struct fx *f = *state;
  struct gen g = {.size = 5 * MIB, .x = 12345, .md = EVP_MD_CTX_new()};
  struct counter c = {.md = EVP_MD_CTX_new()};
  struct store_stat st, hst;
  struct cm_error err;
  char sent[33], got[33];
  int rc;

  EVP_DigestInit_ex(g.md, EVP_md5(), NULL);
  EVP_DigestInit_ex(c.md, EVP_md5(), NULL);
  rc = store_put_stream(f->s, "big/5mib.bin", g.size, gen_read, &g, NULL, &err);
  if (rc)
    fprintf(stderr, "put_stream: %s\n", err.msg);
  assert_int_equal(rc, 0);
  assert_int_equal(g.given, g.size);
  assert_true(g.calls > 1); /* pieces, not one buffer */
  md_hex(g.md, sent);
  rc = store_get_stream(f->s, "big/5mib.bin", counter_sink, &c, &st, &err);
  if (rc)
    fprintf(stderr, "get_stream: %s\n", err.msg);
  assert_int_equal(rc, 0);
  md_hex(c.md, got);
  assert_int_equal(c.bytes, 5 * MIB);
  assert_string_equal(got, sent);
  /* Many pieces, none near the whole object: nothing held the 5 MiB at once. */
  assert_true(c.chunks >= 16);
  assert_true(c.max_chunk <= MIB);
  assert_int_equal(st.size, 5 * MIB);
  assert_string_equal(st.etag, sent);
  assert_int_equal(store_head(f->s, "big/5mib.bin", &hst, &err), 0);
  assert_string_equal(hst.etag, sent);
  assert_int_equal(hst.size, 5 * MIB);
  EVP_MD_CTX_free(g.md);
  EVP_MD_CTX_free(c.md);
}

/* Keys that stress SigV4's encoding. s3rver's listing escapes & < > ' ` twice (he.escape, then
 * its XML builder again): those keys round-trip through put/get/head there but are left out of
 * its listing check. */
static const char *const special_keys[] = {
    "sp/with space",
    "sp/plus+sign",
    "sp/eq=ual",
    "sp/amp&ersand",
    "sp/per%cent",
    "sp/pct%2Fnot-a-slash",
    "sp/tilde~_-.x",
    "sp/star*paren(1)!",
    "sp/apos'",
    "sp/colon:semi;comma,",
    "sp/at@dollar$",
    "sp/q?hash#",
    "sp/br[]{}",
    "sp/caret^back`pipe|",
    "sp/lt<gt>",
    "sp/quote\"",
    "sp/\xc3\xbcn\xc3\xaf/\xe6\x96\x87\xe4\xbb\xb6.txt",
    "sp/emoji\xf0\x9f\x98\x80",
};
#define NSPECIAL (sizeof(special_keys) / sizeof(special_keys[0]))

struct collected {
  char keys[64][128];
  uint64_t sizes[64];
  int n;
  int calls;
  int stop_after; /* return 42 at this call (0: never) */
};

static int collect(void *ctx, const char *key, const struct store_stat *st)
{
  struct collected *c = ctx;

  c->calls++;
  if (c->n < 64) {
    snprintf(c->keys[c->n], sizeof(c->keys[0]), "%s", key);
    c->sizes[c->n++] = st->size;
  }
  return c->stop_after && c->calls == c->stop_after ? 42 : 0;
}

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void t_special_keys(void **state)
{
  struct fx *f = *state;
  const char *expect[NSPECIAL];
  struct collected c = {0};
  struct store_stat st;
  struct cm_error err;
  size_t n = 0;

  for (size_t i = 0; i < NSPECIAL; i++) {
    const char *k = special_keys[i];

    put_ok(f->s, k, k, strlen(k));
    get_equals(f->s, k, k, strlen(k));
    assert_int_equal(store_head(f->s, k, &st, &err), 0);
    assert_int_equal(st.size, strlen(k));
    if (!f->s3 || !strpbrk(k, "&<>'`"))
      expect[n++] = k;
  }
  qsort(expect, n, sizeof(expect[0]), cmp_str);
  assert_int_equal(store_list(f->s, "sp/", collect, &c, &err), 0);
  if (f->s3) { /* drop the keys s3rver garbles, as above */
    int j = 0;

    for (int i = 0; i < c.n; i++) {
      if (!strchr(c.keys[i], '&')) /* "&amp;amp;", "&amp;#x60;" ... */
        memmove(c.keys[j++], c.keys[i], sizeof(c.keys[0]));
    }
    c.n = j;
  }
  assert_int_equal(c.n, n);
  for (size_t i = 0; i < n; i++)
    assert_string_equal(c.keys[i], expect[i]);
}

/* Lexicographic byte order across directory levels: '-' and '.' sort before '/', '0' after.
 * A file store must not list "a/b" before "a-b" just because "a" is a directory. s3rver walks
 * its directories and gets this wrong, so there only the set is checked. */
static void t_list_order(void **state)
{
  static const char *const sorted[] = {"ord/a-b", "ord/a.b", "ord/a/b", "ord/a0", "ord/ab"};
  struct fx *f = *state;
  struct collected c = {0};
  struct cm_error err;
  int found = 0;

  for (int i = 4; i >= 0; i--)
    put_ok(f->s, sorted[i], "o", 1);
  assert_int_equal(store_list(f->s, "ord/", collect, &c, &err), 0);
  assert_int_equal(c.n, 5);
  for (int i = 0; i < 5; i++) {
    if (!f->s3)
      assert_string_equal(c.keys[i], sorted[i]);
    for (int j = 0; j < 5; j++)
      found += strcmp(c.keys[i], sorted[j]) == 0;
  }
  assert_int_equal(found, 5);
}

static void t_list_pages(void **state)
{
  struct fx *f = *state;
  struct collected c = {0};
  struct cm_error err;
  char key[64];

  for (int i = 0; i < 25; i++) {
    int k = (i * 7) % 25; /* out of order */

    snprintf(key, sizeof(key), "pg/k-%03d", k);
    put_ok(f->s, key, key, (size_t)k);
  }
  put_ok(f->s, "pg-other", "x", 1);
  put_ok(f->s, "pgx/a", "x", 1);
  store_page_size_set(f->s, 7); /* 25 keys: 4 pages on S3 */
  assert_int_equal(store_list(f->s, "pg/", collect, &c, &err), 0);
  assert_int_equal(c.n, 25);
  for (int i = 0; i < 25; i++) {
    snprintf(key, sizeof(key), "pg/k-%03d", i);
    assert_string_equal(c.keys[i], key);
    assert_int_equal(c.sizes[i], i);
  }
  memset(&c, 0, sizeof(c));
  assert_int_equal(store_list(f->s, "pg/k-01", collect, &c, &err), 0);
  assert_int_equal(c.n, 10);
  assert_string_equal(c.keys[0], "pg/k-010");
  assert_string_equal(c.keys[9], "pg/k-019");
  memset(&c, 0, sizeof(c));
  c.stop_after = 9; /* in the second page */
  assert_int_equal(store_list(f->s, "pg", collect, &c, &err), 42);
  assert_int_equal(c.calls, 9);
  memset(&c, 0, sizeof(c));
  assert_int_equal(store_list(f->s, "nothing/", collect, &c, &err), 0);
  assert_int_equal(c.calls, 0);
  store_page_size_set(f->s, STORE_PAGE_MAX);
}

static void t_get_cap(void **state)
{
  struct fx *f = *state;
  char data[1000];
  struct cm_error err;
  struct cm_buf b;

  memset(data, 'c', sizeof(data));
  put_ok(f->s, "cap/k", data, sizeof(data));
  assert_int_equal(store_get(f->s, "cap/k", 999, &b, &err), CM_E_TOOLARGE);
  assert_non_null(strstr(err.msg, "cap/k"));
  assert_null(b.data);
  assert_int_equal(b.len, 0);
  assert_int_equal(store_get(f->s, "cap/k", 0, &b, &err), CM_E_TOOLARGE);
  assert_int_equal(store_get(f->s, "cap/k", 1000, &b, &err), 0);
  assert_int_equal(b.len, 1000);
  cm_buf_cleanup(&b);
}

static void t_missing(void **state)
{
  struct fx *f = *state;
  struct counter c = {0};
  struct store_stat st;
  struct cm_error err;
  struct cm_buf b;

  assert_int_equal(store_get(f->s, "missing/no such key", 100, &b, &err), CM_E_NOTFOUND);
  assert_int_equal(err.code, CM_E_NOTFOUND);
  assert_non_null(strstr(err.msg, "missing/no such key"));
  assert_non_null(strstr(err.msg, store_url(f->s)));
  assert_int_equal(store_head(f->s, "missing/no such key", &st, &err), CM_E_NOTFOUND);
  assert_non_null(strstr(err.msg, "missing/no such key"));
  assert_int_equal(store_get_stream(f->s, "missing/x", counter_sink, &c, NULL, &err),
                   CM_E_NOTFOUND);
  assert_int_equal(c.chunks, 0);
  assert_int_equal(store_delete(f->s, "missing/no such key", &err), 0);
}

static void t_bad_keys(void **state)
{
  struct fx *f = *state;
  static const char *const bad[] = {"",         "/lead",    "a/../b", "..",    "a/./b",
                                    "a//b",     "tail/",    "a\nb",   "a\x01", "del\x7f",
                                    "\xff\xfe", "\xc0\xaf", "a/..",   "."};
  char long_key[STORE_KEY_MAX + 2];
  size_t max = STORE_KEY_MAX - f->prefix_len;
  struct collected c = {0};
  struct store_stat st;
  struct cm_error err;
  struct cm_buf b;

  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(store_put(f->s, bad[i], "x", 1, NULL, &err), CM_E_INVALID);
    assert_non_null(strstr(err.msg, "invalid key"));
    assert_int_equal(store_get(f->s, bad[i], 10, &b, &err), CM_E_INVALID);
    assert_int_equal(store_head(f->s, bad[i], &st, &err), CM_E_INVALID);
    assert_int_equal(store_delete(f->s, bad[i], &err), CM_E_INVALID);
  }
  assert_int_equal(store_get(f->s, NULL, 10, &b, &err), CM_E_INVALID);
  assert_int_equal(store_list(f->s, "/x", collect, &c, &err), CM_E_INVALID);
  assert_int_equal(store_list(f->s, "a/../", collect, &c, &err), CM_E_INVALID);
  /* The longest key that fits (segments under NAME_MAX for the file store), then one more. */
  memset(long_key, 'k', sizeof(long_key));
  for (size_t i = 200; i < max; i += 201)
    long_key[i] = '/';
  long_key[max] = '\0';
  put_ok(f->s, long_key, "long", 4);
  get_equals(f->s, long_key, "long", 4);
  long_key[max] = 'k';
  long_key[max + 1] = '\0';
  assert_int_equal(store_put(f->s, long_key, "x", 1, NULL, &err), CM_E_INVALID);
  assert_non_null(strstr(err.msg, "longer than"));
}

static void t_overwrite(void **state)
{
  struct fx *f = *state;
  struct store_stat st;
  struct cm_error err;

  put_ok(f->s, "ow/k", "first", 5);
  put_ok(f->s, "ow/k", "second!", 7);
  get_equals(f->s, "ow/k", "second!", 7);
  assert_int_equal(store_head(f->s, "ow/k", &st, &err), 0);
  assert_int_equal(st.size, 7);
}

/* A source that fails or ends early fails the upload with its code. On the file store the old
 * object stays and no temporary file is left; s3rver writes bodies straight into the object
 * file, so there an aborted upload leaves a cut object (AWS and MinIO store nothing), and only
 * the codes are checked. */
static void t_source_errors(void **state)
{
  struct fx *f = *state;
  struct gen fail = {.size = MIB, .x = 7, .fail_at = 100000};
  struct gen shortg = {.size = MIB, .x = 7, .end_at = 500000};
  struct gen fresh = {.size = MIB, .x = 9, .fail_at = 200000};
  struct store_stat st;
  struct cm_error err;

  put_ok(f->s, "src/k", "old", 3);
  assert_int_equal(store_put_stream(f->s, "src/k", fail.size, gen_read, &fail, NULL, &err),
                   CM_E_IO);
  assert_non_null(strstr(err.msg, "src/k"));
  assert_true(fail.given >= 100000 && fail.given < 200000);
  if (!f->s3)
    get_equals(f->s, "src/k", "old", 3);
  assert_int_equal(store_put_stream(f->s, "src/k", shortg.size, gen_read, &shortg, NULL, &err),
                   CM_E_INVALID);
  assert_non_null(strstr(err.msg, "ended early"));
  if (f->s3)
    return;
  get_equals(f->s, "src/k", "old", 3);
  assert_int_equal(store_put_stream(f->s, "src/new", fresh.size, gen_read, &fresh, NULL, &err),
                   CM_E_IO);
  assert_int_equal(store_head(f->s, "src/new", &st, &err), CM_E_NOTFOUND);
  {
    char tmp[256];
    DIR *d;
    struct dirent *e;
    int files = 0;

    snprintf(tmp, sizeof(tmp), "%s/store/.tmp", f->dir);
    d = opendir(tmp);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
      files += e->d_name[0] != '.';
    closedir(d);
    assert_int_equal(files, 0);
  }
}

static void t_sink_stop(void **state)
{
  struct fx *f = *state;
  static char data[300000];
  struct counter c = {.stop_with = 7};
  struct cm_error err;

  memset(data, 's', sizeof(data));
  put_ok(f->s, "sink/k", data, sizeof(data));
  assert_int_equal(store_get_stream(f->s, "sink/k", counter_sink, &c, NULL, &err), 7);
  assert_int_equal(c.chunks, 1);
  c.stop_with = CM_E_CANCELLED;
  c.chunks = 0;
  assert_int_equal(store_get_stream(f->s, "sink/k", counter_sink, &c, NULL, &err), CM_E_CANCELLED);
}

/* Eight threads on one store, each writing, reading back and heading its own keys, all reading
 * one shared key. Failures are counted; cmocka's asserts are for the main thread. */
struct worker {
  store *s;
  int id;
  int failures;
  char why[200];
};

static void *worker_run(void *arg)
{
  struct worker *w = arg;
  unsigned char data[4096];
  struct cm_error err;
  char key[64];

  for (int j = 0; j < 16 && !w->failures; j++) {
    size_t n = 1000 + (size_t)j * 173;
    struct store_stat st;
    struct cm_buf b;

    snprintf(key, sizeof(key), "conc/t%d/k%02d", w->id, j);
    fill_random(data, n, (uint32_t)(w->id * 100 + j + 1));
    if (store_put(w->s, key, data, n, NULL, &err) != 0 ||
        store_get(w->s, key, sizeof(data), &b, &err) != 0) {
      snprintf(w->why, sizeof(w->why), "%s", err.msg);
      w->failures++;
      break;
    }
    if (b.len != n || memcmp(b.data, data, n) != 0)
      w->failures++;
    cm_buf_cleanup(&b);
    if (store_get(w->s, "conc/shared", 100, &b, &err) != 0 || b.len != 6)
      w->failures++;
    cm_buf_cleanup(&b);
    if (store_head(w->s, key, &st, &err) != 0 || st.size != n)
      w->failures++;
  }
  return NULL;
}

static int count_keys(void *ctx, const char *key, const struct store_stat *st)
{
  (*(int *)ctx)++;
  return 0;
}

static void t_concurrent(void **state)
{
  struct fx *f = *state;
  struct worker w[8];
  pthread_t th[8];
  struct cm_error err;
  int n = 0;

  put_ok(f->s, "conc/shared", "shared", 6);
  for (int i = 0; i < 8; i++) {
    w[i] = (struct worker){.s = f->s, .id = i};
    assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
  }
  for (int i = 0; i < 8; i++) {
    pthread_join(th[i], NULL);
    if (w[i].failures)
      fprintf(stderr, "worker %d: %d failures %s\n", i, w[i].failures, w[i].why);
  }
  for (int i = 0; i < 8; i++)
    assert_int_equal(w[i].failures, 0);
  assert_int_equal(store_list(f->s, "conc/t", count_keys, &n, &err), 0);
  assert_int_equal(n, 8 * 16);
}

static void t_bucket_ensure(void **state)
{
  struct fx *f = *state;
  struct store_opts o = {0};
  struct collected c = {0};
  struct cm_error err;
  char url[256];
  store *s;

  if (f->s3) {
    snprintf(url, sizeof(url), "s3://fresh-%d", (int)getpid());
    s = open_s3(url, f->endpoint, "S3RVER", "S3RVER", 1, 5000, &err);
  } else {
    snprintf(url, sizeof(url), "file://%s/fresh/sub", f->dir);
    o.url = url;
    s = store_open(&o, &err);
  }
  assert_non_null(s);
  assert_int_equal(store_put(s, "k", "v", 1, NULL, &err), CM_E_NOTFOUND);
  assert_non_null(strstr(err.msg, f->s3 ? "bucket fresh-" : "fresh/sub"));
  assert_int_equal(store_list(s, "", collect, &c, &err), CM_E_NOTFOUND);
  assert_int_equal(store_bucket_ensure(s, &err), 0);
  put_ok(s, "k", "v", 1);
  get_equals(s, "k", "v", 1);
  assert_int_equal(store_bucket_ensure(s, &err), 0); /* again: fine */
  get_equals(s, "k", "v", 1);
  store_free(s);
}

static void t_url(void **state)
{
  struct fx *f = *state;
  char want[256];

  if (f->s3)
    snprintf(want, sizeof(want), "s3://credito/suite");
  else
    snprintf(want, sizeof(want), "file://%s/store", f->dir);
  assert_string_equal(store_url(f->s), want);
  assert_null(strstr(store_url(f->s), "s3cr3t"));
}

/* ---- S3 only ---- */

/* Arms the proxy (mode NULL: only read) and returns its request and fault counters. */
static void flaky(struct fx *f, const char *mode, int count, long *requests, long *faults)
{
  char url[160];
  struct cm_buf out;
  char *argv[] = {"/usr/bin/curl", "-sS", url, NULL};

  if (mode)
    snprintf(url, sizeof(url), "%s/__flaky?mode=%s&count=%d", f->flaky_ep, mode, count);
  else
    snprintf(url, sizeof(url), "%s/__flaky", f->flaky_ep);
  cm_buf_init(&out, 4096);
  assert_int_equal(run(argv, &out), 0);
  assert_non_null(strstr(cm_buf_str(&out), "\"requests\": "));
  if (requests)
    *requests = strtol(strstr(out.data, "\"requests\": ") + 12, NULL, 10);
  if (faults)
    *faults = strtol(strstr(out.data, "\"faults\": ") + 10, NULL, 10);
  cm_buf_cleanup(&out);
}

static store *open_flaky(struct fx *f, int retries, long timeout_ms)
{
  struct cm_error err;
  store *s =
      open_s3("s3://credito/flaky", f->flaky_ep, "S3RVER", "S3RVER", retries, timeout_ms, &err);

  assert_non_null(s);
  return s;
}

static void t_s3_wrong_secret(void **state)
{
  struct fx *f = *state;
  struct cm_error err;
  struct cm_buf b;
  store *s = open_s3("s3://credito/suite", f->endpoint, "S3RVER", "not-the-secret", 2, 5000, &err);

  assert_non_null(s);
  assert_int_equal(store_put(s, "perm/k", "x", 1, NULL, &err), CM_E_PERMISSION);
  assert_non_null(strstr(err.msg, "access denied to s3://credito/suite/perm/k"));
  assert_non_null(strstr(err.msg, "AWS_ACCESS_KEY_ID"));
  assert_non_null(strstr(err.msg, "SignatureDoesNotMatch"));
  assert_null(strstr(err.msg, "not-the-secret"));
  assert_int_equal(store_get(s, "perm/k", 10, &b, &err), CM_E_PERMISSION);
  store_free(s);
  s = open_s3("s3://credito/suite", f->endpoint, "NOBODY", "S3RVER", 2, 5000, &err);
  assert_int_equal(store_put(s, "perm/k", "x", 1, NULL, &err), CM_E_PERMISSION);
  assert_non_null(strstr(err.msg, "InvalidAccessKeyId"));
  store_free(s);
}

/* A loopback port nothing listens on. */
static int closed_port(void)
{
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(a);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int port;

  bind(fd, (struct sockaddr *)&a, sizeof(a));
  getsockname(fd, (struct sockaddr *)&a, &len);
  port = ntohs(a.sin_port);
  close(fd);
  return port;
}

static void t_s3_unreachable(void **state)
{
  struct cm_error err;
  char ep[64], want[160];
  struct store_stat st;
  long long t0, dt;
  store *s;

  (void)state;
  snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", closed_port());
  s = open_s3("s3://credito", ep, "S3RVER", "S3RVER", 3, 2000, &err);
  assert_non_null(s);
  t0 = harness_now_ms();
  assert_int_equal(store_head(s, "k", &st, &err), CM_E_UNAVAILABLE);
  dt = harness_now_ms() - t0;
  snprintf(want, sizeof(want), "S3 endpoint %s unreachable: Connection refused", ep);
  assert_non_null(strstr(err.msg, want));
  assert_non_null(strstr(err.msg, "4 attempts"));
  /* Three backoffs of 50-100, 100-200 and 200-400 ms: retried, and bounded. */
  assert_true(dt >= 350);
  assert_true(dt < 3000);
  store_free(s);
}

static void t_s3_retry_5xx(void **state)
{
  struct fx *f = *state;
  store *s = open_flaky(f, 3, 5000);
  long r0, r1, f0, f1;
  struct cm_error err;
  int rc;

  flaky(f, "503", 2, &r0, &f0);
  rc = store_put(s, "retry/k", "payload", 7, NULL, &err);
  if (rc)
    fprintf(stderr, "put: %s\n", err.msg);
  assert_int_equal(rc, 0);
  flaky(f, NULL, 0, &r1, &f1);
  assert_int_equal(f1 - f0, 2);
  assert_int_equal(r1 - r0, 3);
  flaky(f, "reset", 2, &r0, &f0);
  get_equals(s, "retry/k", "payload", 7);
  flaky(f, NULL, 0, &r1, &f1);
  assert_int_equal(f1 - f0, 2);
  assert_int_equal(r1 - r0, 3);
  /* More failures than retries: UNAVAILABLE naming the status. */
  flaky(f, "503", 100, &r0, NULL);
  assert_int_equal(store_put(s, "retry/k", "x", 1, NULL, &err), CM_E_UNAVAILABLE);
  assert_non_null(strstr(err.msg, "HTTP 503 ServiceUnavailable"));
  assert_non_null(strstr(err.msg, "4 attempts"));
  flaky(f, "503", 0, &r1, NULL);
  assert_int_equal(r1 - r0, 4);
  store_free(s);
}

static void t_s3_stream_not_retried(void **state)
{
  struct fx *f = *state;
  static unsigned char data[MIB];
  struct counter c = {0};
  struct gen g = {.size = 200000, .x = 3};
  struct cm_error err;
  store *s = open_flaky(f, 3, 5000);
  long r0, r1;

  fill_random(data, sizeof(data), 99);
  put_ok(s, "trunc/k", data, sizeof(data));
  /* The body breaks halfway: the sink already has bytes, so no silent retry. */
  flaky(f, "truncate", 1, &r0, NULL);
  assert_int_equal(store_get_stream(s, "trunc/k", counter_sink, &c, NULL, &err), CM_E_UNAVAILABLE);
  assert_non_null(strstr(err.msg, "not retried"));
  assert_true(c.bytes > 0 && c.bytes < sizeof(data));
  flaky(f, NULL, 0, &r1, NULL);
  assert_int_equal(r1 - r0, 1);
  /* store_get can start over: the retry succeeds with the exact bytes. */
  flaky(f, "truncate", 1, &r0, NULL);
  get_equals(s, "trunc/k", data, sizeof(data));
  flaky(f, NULL, 0, &r1, NULL);
  assert_int_equal(r1 - r0, 2);
  /* An upload stream that the server consumed and answered 503 cannot be replayed. */
  flaky(f, "503", 1, &r0, NULL);
  assert_int_equal(store_put_stream(s, "trunc/up", g.size, gen_read, &g, NULL, &err),
                   CM_E_UNAVAILABLE);
  assert_non_null(strstr(err.msg, "cannot be retried"));
  flaky(f, NULL, 0, &r1, NULL);
  assert_int_equal(r1 - r0, 1);
  store_free(s);
}

static void t_s3_timeout(void **state)
{
  struct fx *f = *state;
  struct store_stat st;
  struct cm_error err;
  long long t0, dt;
  store *s = open_flaky(f, -1, 500);
  int rc;

  put_ok(s, "slow/k", "v", 1);
  flaky(f, "hang", 1, NULL, NULL);
  t0 = harness_now_ms();
  assert_int_equal(store_head(s, "slow/k", &st, &err), CM_E_UNAVAILABLE);
  dt = harness_now_ms() - t0;
  assert_non_null(strstr(err.msg, "timed out"));
  assert_true(dt >= 450 && dt < 2500);
  store_free(s);
  /* With a retry, the second attempt answers (a longer timeout: the machine may be busy). */
  s = open_flaky(f, 1, 1500);
  flaky(f, "hang", 1, NULL, NULL);
  rc = store_head(s, "slow/k", &st, &err);
  if (rc)
    fprintf(stderr, "head: %s\n", err.msg);
  assert_int_equal(rc, 0);
  assert_int_equal(st.size, 1);
  store_free(s);
}

static void t_s3_env_defaults(void **state)
{
  struct fx *f = *state;
  struct store_stat st;
  struct cm_error err;
  store *s;

  setenv("CREDITO_STORE", "s3://credito/env/", 1);
  setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1", 1);
  setenv("AWS_ENDPOINT_URL_S3", f->endpoint, 1); /* wins over AWS_ENDPOINT_URL */
  setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
  setenv("AWS_REGION", "us-east-1", 1);
  /* Sent as x-amz-security-token, a signed header: s3rver checks the signature over it. */
  setenv("AWS_SESSION_TOKEN", "FwoGZXIvYXdzE//session+token=", 1);
  s = store_open(NULL, &err);
  assert_non_null(s);
  assert_string_equal(store_url(s), "s3://credito/env");
  put_ok(s, "k", "env", 3);
  get_equals(s, "k", "env", 3);
  store_free(s);
  /* The prefix is part of the key: visible from the bucket root, not from another prefix. */
  s = open_s3("s3://credito", f->endpoint, "S3RVER", "S3RVER", 1, 5000, &err);
  assert_non_null(s);
  get_equals(s, "env/k", "env", 3);
  store_free(s);
  assert_int_equal(store_head(f->s, "k", &st, &err), CM_E_NOTFOUND);
  unsetenv("AWS_ENDPOINT_URL_S3");
  unsetenv("AWS_ACCESS_KEY_ID");
  s = store_open(NULL, &err);
  assert_null(s);
  assert_int_equal(err.code, CM_E_INVALID);
  assert_non_null(strstr(err.msg, "AWS_ACCESS_KEY_ID"));
  unsetenv("CREDITO_STORE");
  unsetenv("AWS_ENDPOINT_URL");
  unsetenv("AWS_SECRET_ACCESS_KEY");
  unsetenv("AWS_REGION");
  unsetenv("AWS_SESSION_TOKEN");
}

/* ---- awscli cross-checks ---- */

static int awscli_setup(void **state)
{
  int rc = s3_setup(state);

  if (access(AWS_BIN, X_OK) != 0) {
    fprintf(stderr, "FAIL: %s not found (Debian: apt-get install awscli)\n", AWS_BIN);
    return -1;
  }
  setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
  setenv("AWS_DEFAULT_REGION", "us-east-1", 1);
  setenv("AWS_CONFIG_FILE", "/dev/null", 1);
  setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null", 1);
  setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
  setenv("AWS_PAGER", "", 1);
  return rc;
}

/* aws --endpoint-url <s3rver> s3 <a> <b> [<c>], stdout into out. */
static int aws(struct fx *f, const char *a, const char *b, const char *c, struct cm_buf *out)
{
  char *argv[] = {AWS_BIN,   "--endpoint-url", f->endpoint, "s3",
                  (char *)a, (char *)b,        (char *)c,   NULL};

  return run(argv, out);
}

static void t_aws_reads_ours(void **state)
{
  struct fx *f = *state;
  static unsigned char data[300000];
  const char *key = "aws/bin/\xc3\xbc data+1=2.bin";
  char uri[256];
  struct cm_buf out;

  fill_random(data, sizeof(data), 4242);
  data[0] = 0;
  put_ok(f->s, key, data, sizeof(data));
  snprintf(uri, sizeof(uri), "s3://credito/suite/%s", key);
  cm_buf_init(&out, 4 * MIB);
  assert_int_equal(aws(f, "cp", uri, "-", &out), 0);
  assert_int_equal(out.len, sizeof(data));
  assert_memory_equal(out.data, data, sizeof(data));
  cm_buf_cleanup(&out);
}

static void t_ours_reads_aws(void **state)
{
  struct fx *f = *state;
  static unsigned char data[200000];
  const char *key = "aws/from aws/x=1&y+z.bin";
  char path[256], uri[256], md5[33];
  struct store_stat st;
  struct cm_error err;
  FILE *fp;

  fill_random(data, sizeof(data), 777);
  snprintf(path, sizeof(path), "%s/up.bin", f->dir);
  fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(data, 1, sizeof(data), fp), sizeof(data));
  fclose(fp);
  snprintf(uri, sizeof(uri), "s3://credito/suite/%s", key);
  assert_int_equal(aws(f, "cp", path, uri, NULL), 0);
  get_equals(f->s, key, data, sizeof(data));
  md5_of(data, sizeof(data), md5);
  assert_int_equal(store_head(f->s, key, &st, &err), 0);
  assert_string_equal(st.etag, md5);
}

static void t_aws_lists_ours(void **state)
{
  struct fx *f = *state;
  static const char *const keys[] = {"aws/ls/a.json", "aws/ls/b c.json",
                                     "aws/ls/\xc3\xa9t\xc3\xa9"};
  char want[128];
  struct cm_buf out;

  for (int i = 0; i < 3; i++)
    put_ok(f->s, keys[i], "{}", 2);
  cm_buf_init(&out, MIB);
  assert_int_equal(aws(f, "ls", "--recursive", "s3://credito/suite/aws/ls/", &out), 0);
  for (int i = 0; i < 3; i++) {
    snprintf(want, sizeof(want), "suite/%s\n", keys[i]);
    if (!strstr(cm_buf_str(&out), want))
      fprintf(stderr, "aws s3 ls output:\n%s\n", cm_buf_str(&out));
    assert_non_null(strstr(cm_buf_str(&out), want));
  }
  cm_buf_cleanup(&out);
}

/* ---- main ---- */

#define SHARED_TESTS(X)                                                                            \
  X(t_url)                                                                                         \
  X(t_roundtrip_binary)                                                                            \
  X(t_empty_object)                                                                                \
  X(t_stream_5mib)                                                                                 \
  X(t_special_keys)                                                                                \
  X(t_list_order)                                                                                  \
  X(t_list_pages)                                                                                  \
  X(t_get_cap)                                                                                     \
  X(t_missing)                                                                                     \
  X(t_bad_keys)                                                                                    \
  X(t_overwrite)                                                                                   \
  X(t_source_errors)                                                                               \
  X(t_sink_stop)                                                                                   \
  X(t_concurrent)                                                                                  \
  X(t_bucket_ensure)
#define TEST_ENTRY(name) cmocka_unit_test(name),

int main(int argc, char **argv)
{
  const struct CMUnitTest file_suite[] = {SHARED_TESTS(TEST_ENTRY)};
  const struct CMUnitTest s3_suite[] = {
      SHARED_TESTS(TEST_ENTRY) cmocka_unit_test(t_s3_wrong_secret),
      cmocka_unit_test(t_s3_unreachable),
      cmocka_unit_test(t_s3_retry_5xx),
      cmocka_unit_test(t_s3_stream_not_retried),
      cmocka_unit_test(t_s3_timeout),
      cmocka_unit_test(t_s3_env_defaults),
  };
  const struct CMUnitTest awscli_suite[] = {
      cmocka_unit_test(t_aws_reads_ours),
      cmocka_unit_test(t_ours_reads_aws),
      cmocka_unit_test(t_aws_lists_ours),
  };
  static const char *const aws_vars[] = {
      "AWS_ENDPOINT_URL",  "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID",  "AWS_SECRET_ACCESS_KEY",
      "AWS_SESSION_TOKEN", "AWS_REGION",          "AWS_DEFAULT_REGION", "CREDITO_STORE"};
  int failed = 0;

  for (size_t i = 0; i < sizeof(aws_vars) / sizeof(aws_vars[0]); i++)
    unsetenv(aws_vars[i]);
  if (argc > 1 && strcmp(argv[1], "awscli") == 0)
    return cmocka_run_group_tests_name("store.awscli", awscli_suite, awscli_setup, group_teardown);
  failed += cmocka_run_group_tests_name("store.file", file_suite, file_setup, group_teardown);
  failed += cmocka_run_group_tests_name("store.s3", s3_suite, s3_setup, group_teardown);
  return failed;
}
