/* s3: the S3 backend's operations: path-style URLs <endpoint>/<bucket>/<key>, keys
 * percent-encoded once (libcurl 7.88 signs the path and query exactly as written), query
 * parameters sorted, ListObjectsV2 pages followed, the bucket created on demand. The transport
 * and its retries are in s3_http.c. */
#include "s3_int.h"

#include <stdio.h>
#include <string.h>

#include "mem.h"

static pthread_once_t s3_once = PTHREAD_ONCE_INIT;
static CURLcode s3_global_rc;

static void s3_global_init(void)
{
  s3_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* The full key (prefix + key) into full, and the object's URL for messages into what. */
static void s3_names(const store *s, const char *key, char *full, size_t full_cap, char *what,
                     size_t what_cap)
{
  const struct s3 *s3 = s->impl;

  snprintf(full, full_cap, "%s%s", s3->prefix, key);
  snprintf(what, what_cap, "%s/%s", s->url, key);
}

static int s3_put(store *s, const char *key, struct store_src *src, const char *ctype,
                  struct cm_error *err)
{
  char full[STORE_KEY_MAX + 1], what[STORE_KEY_MAX + 256];
  struct s3_req r;
  int rc;

  s3_names(s, key, full, sizeof(full), what, sizeof(what));
  s3_req_init(&r, "PUT", full);
  r.src = src;
  r.ctype = ctype;
  r.streams = true;
  rc = s3_do(s->impl, &r, what, err);
  if (rc == 0 && !s3_ok(&r))
    rc = s3_status_error(s->impl, &r, what, err);
  cm_buf_cleanup(&r.body);
  return rc;
}

static int s3_get(store *s, const char *key, struct store_dst *dst, struct store_stat *st,
                  struct cm_error *err)
{
  char full[STORE_KEY_MAX + 1], what[STORE_KEY_MAX + 256];
  struct s3_req r;
  int rc;

  s3_names(s, key, full, sizeof(full), what, sizeof(what));
  s3_req_init(&r, "GET", full);
  r.dst = dst;
  r.streams = true;
  rc = s3_do(s->impl, &r, what, err);
  if (rc == 0 && !s3_ok(&r))
    rc = s3_status_error(s->impl, &r, what, err);
  if (rc == 0 && st)
    *st = r.st;
  cm_buf_cleanup(&r.body);
  return rc;
}

static int s3_head(store *s, const char *key, struct store_stat *st, struct cm_error *err)
{
  char full[STORE_KEY_MAX + 1], what[STORE_KEY_MAX + 256];
  struct s3_req r;
  int rc;

  s3_names(s, key, full, sizeof(full), what, sizeof(what));
  s3_req_init(&r, "HEAD", full);
  rc = s3_do(s->impl, &r, what, err);
  if (rc == 0 && !s3_ok(&r))
    rc = s3_status_error(s->impl, &r, what, err);
  if (rc == 0)
    *st = r.st;
  cm_buf_cleanup(&r.body);
  return rc;
}

static int s3_del(store *s, const char *key, struct cm_error *err)
{
  char full[STORE_KEY_MAX + 1], what[STORE_KEY_MAX + 256];
  struct s3_req r;
  int rc;

  s3_names(s, key, full, sizeof(full), what, sizeof(what));
  s3_req_init(&r, "DELETE", full);
  rc = s3_do(s->impl, &r, what, err);
  /* S3 answers 204 for a missing key; some servers say 404 NoSuchKey. Both mean done. */
  if (rc == 0 && !s3_ok(&r) && !(r.status == 404 && !s3_code_is(&r, "NoSuchBucket")))
    rc = s3_status_error(s->impl, &r, what, err);
  cm_buf_cleanup(&r.body);
  return rc;
}

/* Fetches one ListObjectsV2 page of full_prefix into page. */
static int s3_list_page(store *s, const char *full_prefix, const char *token, struct s3_page *page,
                        const char *what, struct cm_error *err)
{
  struct s3_req r;
  struct cm_buf q;
  int rc = 0;

  /* Sorted by name, as SigV4 wants them; libcurl 7.88 signs the query as written. */
  cm_buf_init(&q, 8192);
  if (token) {
    rc = cm_buf_adds(&q, "continuation-token=");
    if (rc == 0)
      rc = store_uri_encode(&q, token, strlen(token), false);
    if (rc == 0)
      rc = cm_buf_addc(&q, '&');
  }
  if (rc == 0)
    rc = cm_buf_addf(&q, "list-type=2&max-keys=%d&prefix=", s->page_size);
  if (rc == 0)
    rc = store_uri_encode(&q, full_prefix, strlen(full_prefix), false);
  if (rc) {
    cm_buf_cleanup(&q);
    return cm_error_set(err, rc, "listing %s: query too long", what);
  }
  s3_req_init(&r, "GET", NULL);
  r.query = q.data;
  r.body.max = S3_LIST_BODY_MAX;
  rc = s3_do(s->impl, &r, what, err);
  if (rc == 0 && !s3_ok(&r))
    rc = s3_status_error(s->impl, &r, what, err);
  if (rc == 0)
    rc = s3_page_parse(r.body.data ? r.body.data : "", r.body.len, page, err);
  cm_buf_cleanup(&r.body);
  cm_buf_cleanup(&q);
  return rc;
}

/* Calls fn for each entry of page under the store prefix; non-zero stops. */
static int s3_list_emit(const struct s3 *s3, const struct s3_page *page, store_list_fn fn,
                        void *ctx)
{
  size_t plen = strlen(s3->prefix);
  int rc = 0;

  for (size_t i = 0; i < page->n && rc == 0; i++) {
    const char *k = page->v[i].key;

    if (strncmp(k, s3->prefix, plen) == 0 && k[plen])
      rc = fn(ctx, k + plen, &page->v[i].st);
  }
  return rc;
}

static int s3_list(store *s, const char *prefix, store_list_fn fn, void *ctx, struct cm_error *err)
{
  struct s3 *s3 = s->impl;
  char full[STORE_KEY_MAX + 1], what[STORE_KEY_MAX + 256];
  struct s3_page page = {0};
  char *token = NULL;
  int rc;

  s3_names(s, prefix, full, sizeof(full), what, sizeof(what));
  for (;;) {
    rc = s3_list_page(s, full, token, &page, what, err);
    if (rc)
      break;
    rc = s3_list_emit(s3, &page, fn, ctx);
    if (rc || !page.truncated)
      break;
    if (token && strcmp(token, page.next_token) == 0) {
      rc = cm_error_set(err, CM_E_CORRUPT, "listing %s: the server repeats its continuation token",
                        what);
      break;
    }
    cm_free(token);
    token = page.next_token;
    page.next_token = NULL;
    s3_page_cleanup(&page);
  }
  s3_page_cleanup(&page);
  cm_free(token);
  return rc;
}

/* HEAD or PUT on the bucket itself; the answer's status is left in r. */
static int s3_bucket_call(store *s, const char *method, struct s3_req *r, const char *what,
                          struct cm_error *err)
{
  struct s3 *s3 = s->impl;
  char body[512];
  struct store_mem mem = {body, 0, 0};
  struct store_src src = {store_mem_read, &mem, store_mem_rewind, 0};
  int rc;

  /* Outside us-east-1, S3 wants the region in the body of CreateBucket. */
  if (strcmp(method, "PUT") == 0 && strcmp(s3->region, "us-east-1") != 0)
    mem.len = (size_t)snprintf(body, sizeof(body),
                               "<CreateBucketConfiguration "
                               "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                               "<LocationConstraint>%s</LocationConstraint>"
                               "</CreateBucketConfiguration>",
                               s3->region);
  src.size = mem.len;
  s3_req_init(r, method, NULL);
  if (strcmp(method, "PUT") == 0) {
    r->src = &src;
    r->ctype = "application/xml";
  }
  rc = s3_do(s3, r, what, err);
  r->src = NULL;
  return rc;
}

static int s3_bucket_ensure(store *s, struct cm_error *err)
{
  struct s3 *s3 = s->impl;
  char what[512];
  struct s3_req r;
  int rc;

  snprintf(what, sizeof(what), "s3://%s", s3->bucket);
  rc = s3_bucket_call(s, "HEAD", &r, what, err);
  if (rc == 0 && r.status == 404) {
    cm_buf_cleanup(&r.body);
    rc = s3_bucket_call(s, "PUT", &r, what, err);
    /* 409: it exists now (someone made it, or a server that says so for our own); HEAD tells
     * whether it is ours to use. */
    if (rc == 0 && r.status == 409) {
      cm_buf_cleanup(&r.body);
      rc = s3_bucket_call(s, "HEAD", &r, what, err);
    }
  }
  if (rc == 0 && !s3_ok(&r))
    rc = s3_status_error(s3, &r, what, err);
  cm_buf_cleanup(&r.body);
  return rc;
}

static void s3_free(void *impl)
{
  struct s3 *s3 = impl;

  if (!s3)
    return;
  for (int i = 0; i < s3->npool; i++)
    curl_easy_cleanup(s3->pool[i]);
  pthread_mutex_destroy(&s3->mu);
  cm_free(s3->endpoint);
  cm_free(s3->bucket);
  cm_free(s3->prefix);
  cm_free(s3->access_key);
  cm_free(s3->secret_key);
  cm_free(s3->token_header);
  cm_free(s3->sigv4);
  cm_free(s3->region);
  cm_free(s3);
}

static const struct store_backend s3_backend = {
    .put = s3_put,
    .get = s3_get,
    .head = s3_head,
    .del = s3_del,
    .list = s3_list,
    .bucket_ensure = s3_bucket_ensure,
    .free = s3_free,
};

/* Copies the settings; false on out of memory. */
static bool s3_copy(struct s3 *s3, const struct s3_config *c)
{
  char buf[256];

  s3->endpoint = cm_strdup(c->endpoint);
  s3->bucket = cm_strdup(c->bucket);
  s3->prefix = cm_strdup(c->prefix);
  s3->access_key = cm_strdup(c->access_key);
  s3->secret_key = cm_strdup(c->secret_key);
  s3->region = cm_strdup(c->region);
  snprintf(buf, sizeof(buf), "aws:amz:%s:s3", c->region);
  s3->sigv4 = cm_strdup(buf);
  if (c->session_token) {
    struct cm_buf t;

    cm_buf_init(&t, 16384);
    if (cm_buf_addf(&t, "x-amz-security-token: %s", c->session_token) == 0)
      s3->token_header = cm_buf_take(&t, NULL);
    cm_buf_cleanup(&t);
    if (!s3->token_header)
      return false;
  }
  return s3->endpoint && s3->bucket && s3->prefix && s3->access_key && s3->secret_key &&
         s3->region && s3->sigv4;
}

int s3_open(store *s, const struct s3_config *cfg, struct cm_error *err)
{
  struct s3 *s3 = NULL;

  pthread_once(&s3_once, s3_global_init);
  if (s3_global_rc != CURLE_OK)
    return cm_error_set(err, CM_E_INTERNAL, "curl_global_init failed: %s",
                        curl_easy_strerror(s3_global_rc));
  s3 = cm_calloc(1, sizeof(*s3));
  if (!s3)
    return cm_error_set(err, CM_E_NOMEM, "opening %s: out of memory", s->url);
  pthread_mutex_init(&s3->mu, NULL);
  if (!s3_copy(s3, cfg)) {
    s3_free(s3);
    return cm_error_set(err, CM_E_NOMEM, "opening %s: out of memory", s->url);
  }
  s3->timeout_ms = cfg->timeout_ms;
  s3->retries = cfg->retries;
  s->be = &s3_backend;
  s->impl = s3;
  return 0;
}
