/* store: the interface both backends share. It reads the store URL and the AWS variables,
 * checks every key before a backend sees it, and adapts buffers to the streaming calls. */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

#define STORE_TIMEOUT_MS 30000
#define STORE_RETRIES    4

/* v if set, else the environment variable (when not empty), else NULL. */
static const char *opt_env(const char *v, const char *name)
{
  const char *e;

  if (v)
    return v;
  e = getenv(name);
  return e && e[0] ? e : NULL;
}

/* S3's bucket naming rules: 3 to 63 of [a-z0-9.-], starting and ending with a letter or digit. */
static bool bucket_valid(const char *b, size_t n)
{
  if (n < 3 || n > 63)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = b[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

    if (!alnum && ((c != '.' && c != '-') || i == 0 || i == n - 1))
      return false;
  }
  return true;
}

static bool region_valid(const char *r)
{
  size_t n = strlen(r);

  if (n == 0 || n > 32)
    return false;
  for (size_t i = 0; i < n; i++) {
    if (!((r[i] >= 'a' && r[i] <= 'z') || (r[i] >= '0' && r[i] <= '9') || r[i] == '-'))
      return false;
  }
  return true;
}

/* An endpoint is "http[s]://authority[/path]" with no credentials, query, spaces or controls;
 * trailing slashes are dropped into out. */
static int endpoint_normalize(const char *e, char *out, size_t cap, struct cm_error *err)
{
  size_t n = strlen(e);

  if (strncmp(e, "http://", 7) != 0 && strncmp(e, "https://", 8) != 0)
    return cm_error_set(err, CM_E_INVALID, "S3 endpoint must start with http:// or https://");
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)e[i];

    if (c <= 0x20 || c == 0x7f || c == '@' || c == '?' || c == '#')
      return cm_error_set(err, CM_E_INVALID,
                          "S3 endpoint has a character it may not have (space, control, @, ?, #)");
  }
  while (n > 0 && e[n - 1] == '/')
    n--;
  if (n >= cap || n <= 8)
    return cm_error_set(err, CM_E_INVALID, "S3 endpoint is too long or has no host");
  memcpy(out, e, n);
  out[n] = '\0';
  return 0;
}

/* Splits "bucket[/prefix]" (after "s3://") into bucket and "prefix/" (or ""). */
static int s3_url_split(const char *rest, char *bucket, size_t bcap, char *prefix, size_t pcap,
                        struct cm_error *err)
{
  const char *slash = strchr(rest, '/');
  size_t blen = slash ? (size_t)(slash - rest) : strlen(rest);
  const char *p = slash ? slash : "";
  size_t plen;
  int rc;

  if (blen >= bcap || !bucket_valid(rest, blen))
    return cm_error_set(err, CM_E_INVALID,
                        "bad bucket name in s3://%.*s: 3 to 63 of a-z 0-9 . - expected",
                        (int)(blen < 80 ? blen : 80), rest);
  memcpy(bucket, rest, blen);
  bucket[blen] = '\0';
  while (*p == '/')
    p++;
  plen = strlen(p);
  while (plen > 0 && p[plen - 1] == '/')
    plen--;
  prefix[0] = '\0';
  if (plen == 0)
    return 0;
  if (plen + 2 > pcap)
    return cm_error_set(err, CM_E_INVALID, "store prefix is too long");
  memcpy(prefix, p, plen);
  prefix[plen] = '\0';
  rc = store_key_check(prefix, STORE_KEY_MAX - 1, err);
  if (rc)
    return cm_error_set(err, rc, "bad store prefix: %s", err->msg);
  prefix[plen] = '/';
  prefix[plen + 1] = '\0';
  return 0;
}

/* Sets s->url to scheme + a + b (b's trailing '/' dropped). */
static int url_set(store *s, const char *scheme, const char *a, const char *b, struct cm_error *err)
{
  struct cm_buf u;
  size_t blen = strlen(b);

  if (blen > 0 && b[blen - 1] == '/')
    blen--;
  cm_buf_init(&u, 8192);
  if (cm_buf_addf(&u, "%s%s%s%.*s", scheme, a, blen ? "/" : "", (int)blen, b) == 0)
    s->url = cm_buf_take(&u, NULL);
  cm_buf_cleanup(&u);
  return s->url ? 0 : cm_error_set(err, CM_E_NOMEM, "opening a store: out of memory");
}

/* Resolves the S3 settings from o and the environment and opens the backend. */
static int open_s3(store *s, const struct store_opts *o, const char *rest, struct cm_error *err)
{
  char bucket[64], prefix[STORE_KEY_MAX + 2], endpoint[1024], def[128];
  struct s3_config c = {0};
  bool own_keys = o->access_key != NULL;
  int rc;

  rc = s3_url_split(rest, bucket, sizeof(bucket), prefix, sizeof(prefix), err);
  if (rc == 0)
    rc = url_set(s, "s3://", bucket, prefix, err);
  if (rc)
    return rc;
  c.bucket = bucket;
  c.prefix = prefix;
  c.region = opt_env(o->region, "AWS_REGION");
  if (!c.region)
    c.region = opt_env(NULL, "AWS_DEFAULT_REGION");
  if (!c.region)
    c.region = "us-east-1";
  if (!region_valid(c.region))
    return cm_error_set(err, CM_E_INVALID, "bad AWS region \"%.40s\"", c.region);
  c.endpoint = opt_env(o->endpoint, "AWS_ENDPOINT_URL_S3");
  if (!c.endpoint)
    c.endpoint = opt_env(NULL, "AWS_ENDPOINT_URL");
  snprintf(def, sizeof(def), "https://s3.%s.amazonaws.com", c.region);
  rc = endpoint_normalize(c.endpoint ? c.endpoint : def, endpoint, sizeof(endpoint), err);
  if (rc)
    return rc;
  c.endpoint = endpoint;
  c.access_key = opt_env(o->access_key, "AWS_ACCESS_KEY_ID");
  c.secret_key = opt_env(o->secret_key, "AWS_SECRET_ACCESS_KEY");
  c.session_token = own_keys ? o->session_token : opt_env(o->session_token, "AWS_SESSION_TOKEN");
  if (!c.access_key || !c.secret_key)
    return cm_error_set(err, CM_E_INVALID,
                        "%s needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                        s->url);
  c.timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : STORE_TIMEOUT_MS;
  c.retries = o->retries == 0 ? STORE_RETRIES : o->retries < 0 ? 0 : o->retries;
  s->prefix_len = strlen(prefix);
  return s3_open(s, &c, err);
}

/* Checks "file:///abs/dir" (after "file://") and opens the backend on the directory. */
static int open_file(store *s, const char *path, struct cm_error *err)
{
  char dir[4096];
  size_t n = strlen(path);

  if (path[0] != '/')
    return cm_error_set(err, CM_E_INVALID, "file store URL needs an absolute path: file:///dir");
  for (size_t i = 0; i < n; i++) {
    if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f)
      return cm_error_set(err, CM_E_INVALID, "file store path has a control character");
  }
  while (n > 1 && path[n - 1] == '/')
    n--;
  if (n == 1)
    return cm_error_set(err, CM_E_INVALID, "file store cannot be the root directory");
  if (n >= sizeof(dir))
    return cm_error_set(err, CM_E_INVALID, "file store path is too long");
  memcpy(dir, path, n);
  dir[n] = '\0';
  if (url_set(s, "file://", dir, "", err))
    return CM_E_NOMEM;
  return file_open(s, dir, err);
}

/* The URL to open: o->url, $CREDITO_STORE, or file://$HOME/.credito/store into buf. */
static const char *open_url(const struct store_opts *o, char *buf, size_t cap)
{
  const char *url = opt_env(o->url, "CREDITO_STORE");
  const char *home = getenv("HOME");

  if (url)
    return url;
  if (!home || home[0] != '/')
    return NULL;
  if ((size_t)snprintf(buf, cap, "file://%s/.credito/store", home) >= cap)
    return NULL;
  return buf;
}

store *store_open(const struct store_opts *o, struct cm_error *err)
{
  static const struct store_opts none;
  char defbuf[4200];
  const char *url;
  store *s = NULL;
  int rc;

  o = o ? o : &none;
  url = open_url(o, defbuf, sizeof(defbuf));
  if (!url) {
    cm_error_set(err, CM_E_INVALID, "no store URL: set CREDITO_STORE (or HOME for the default)");
    goto fail;
  }
  s = cm_calloc(1, sizeof(*s));
  if (!s) {
    cm_error_set(err, CM_E_NOMEM, "opening a store: out of memory");
    goto fail;
  }
  s->page_size = STORE_PAGE_MAX;
  if (strncmp(url, "s3://", 5) == 0)
    rc = open_s3(s, o, url + 5, err);
  else if (strncmp(url, "file://", 7) == 0)
    rc = open_file(s, url + 7, err);
  else
    rc = cm_error_set(err, CM_E_INVALID,
                      "unsupported store URL (use s3://bucket[/prefix] or file:///abs/dir)");
  if (rc)
    goto fail;
  return s;
fail:
  store_free(s);
  return NULL;
}

void store_free(store *s)
{
  if (!s)
    return;
  if (s->be)
    s->be->free(s->impl);
  cm_free(s->url);
  cm_free(s);
}

const char *store_url(const store *s)
{
  return s->url;
}

void store_page_size_set(store *s, int n)
{
  s->page_size = n < 1 ? 1 : n > STORE_PAGE_MAX ? STORE_PAGE_MAX : n;
}

int store_mem_read(void *ctx, void *buf, size_t cap, size_t *got)
{
  struct store_mem *m = ctx;
  size_t n = m->len - m->off;

  if (n > cap)
    n = cap;
  if (n)
    memcpy(buf, m->p + m->off, n);
  m->off += n;
  *got = n;
  return 0;
}

int store_mem_rewind(void *ctx)
{
  struct store_mem *m = ctx;

  m->off = 0;
  return 0;
}

/* Checks s and key; the message names the store. */
static int call_check(store *s, const char *key, struct cm_error *err)
{
  int rc;

  if (!s)
    return cm_error_set(err, CM_E_INVALID, "store is NULL");
  rc = store_key_check(key, STORE_KEY_MAX - s->prefix_len, err);
  if (rc)
    cm_error_set(err, rc, "%s in %s", err->msg, s->url);
  return rc;
}

static int put_src(store *s, const char *key, struct store_src *src, const char *ctype,
                   struct cm_error *err)
{
  struct cm_error tmp;
  int rc;

  err = err ? err : &tmp;
  cm_error_clear(err);
  rc = call_check(s, key, err);
  if (rc == 0 && ctype && (strlen(ctype) > 200 || strpbrk(ctype, "\r\n")))
    rc = cm_error_set(err, CM_E_INVALID, "bad content type for %s/%s", s->url, key);
  if (rc == 0)
    rc = s->be->put(s, key, src, ctype, err);
  return rc;
}

int store_put(store *s, const char *key, const void *data, size_t len, const char *content_type,
              struct cm_error *err)
{
  struct store_mem m = {data, len, 0};
  struct store_src src = {store_mem_read, &m, store_mem_rewind, len};

  if (!data && len)
    return cm_error_set(err, CM_E_INVALID, "store_put: NULL data");
  return put_src(s, key, &src, content_type, err);
}

int store_put_stream(store *s, const char *key, uint64_t size, store_source_fn fn, void *ctx,
                     const char *content_type, struct cm_error *err)
{
  struct store_src src = {fn, ctx, NULL, size};

  if (!fn)
    return cm_error_set(err, CM_E_INVALID, "store_put_stream: NULL source");
  return put_src(s, key, &src, content_type, err);
}

static int buf_sink(void *ctx, const void *data, size_t len)
{
  return cm_buf_add(ctx, data, len);
}

static void buf_sink_reset(void *ctx)
{
  cm_buf_reset(ctx);
}

int store_get(store *s, const char *key, size_t max, struct cm_buf *out, struct cm_error *err)
{
  struct store_dst dst = {buf_sink, out, buf_sink_reset, max};
  struct cm_error tmp;
  int rc;

  err = err ? err : &tmp;
  cm_error_clear(err);
  cm_buf_init(out, max);
  rc = call_check(s, key, err);
  if (rc == 0)
    rc = s->be->get(s, key, &dst, NULL, err);
  if (rc)
    cm_buf_cleanup(out);
  return rc;
}

int store_get_stream(store *s, const char *key, store_sink_fn sink, void *ctx,
                     struct store_stat *st, struct cm_error *err)
{
  struct store_dst dst = {sink, ctx, NULL, SIZE_MAX};
  struct cm_error tmp;
  int rc;

  err = err ? err : &tmp;
  cm_error_clear(err);
  rc = sink ? call_check(s, key, err) : cm_error_set(err, CM_E_INVALID, "NULL sink");
  if (rc == 0)
    rc = s->be->get(s, key, &dst, st, err);
  return rc;
}

int store_head(store *s, const char *key, struct store_stat *st, struct cm_error *err)
{
  struct cm_error tmp;
  int rc;

  err = err ? err : &tmp;
  cm_error_clear(err);
  rc = st ? call_check(s, key, err) : cm_error_set(err, CM_E_INVALID, "NULL stat");
  if (rc == 0)
    rc = s->be->head(s, key, st, err);
  return rc;
}

int store_delete(store *s, const char *key, struct cm_error *err)
{
  struct cm_error tmp;
  int rc;

  err = err ? err : &tmp;
  cm_error_clear(err);
  rc = call_check(s, key, err);
  if (rc == 0)
    rc = s->be->del(s, key, err);
  return rc;
}

int store_list(store *s, const char *prefix, store_list_fn fn, void *ctx, struct cm_error *err)
{
  struct cm_error tmp;
  int rc;

  err = err ? err : &tmp;
  cm_error_clear(err);
  prefix = prefix ? prefix : "";
  if (!s || !fn)
    return cm_error_set(err, CM_E_INVALID, "store_list: NULL store or callback");
  rc = store_prefix_check(prefix, STORE_KEY_MAX - s->prefix_len, err);
  if (rc)
    return cm_error_set(err, rc, "%s in %s", err->msg, s->url);
  return s->be->list(s, prefix, fn, ctx, err);
}

int store_bucket_ensure(store *s, struct cm_error *err)
{
  struct cm_error tmp;

  err = err ? err : &tmp;
  cm_error_clear(err);
  if (!s)
    return cm_error_set(err, CM_E_INVALID, "store is NULL");
  return s->be->bucket_ensure(s, err);
}
