/* s3_http: the S3 backend's transport over libcurl 7.88 and its built-in SigV4: a locked pool
 * of easy handles, one request with its callbacks and timeouts, retries with backoff and jitter
 * on connection errors and 5xx (never on 4xx, never for a stream that already moved bytes), and
 * S3's error answers turned into CM_E_* codes. */
#include "s3_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "mem.h"

#define S3_BACKOFF_MS     100
#define S3_BACKOFF_MAX_MS 2000

static CURL *s3_handle_take(struct s3 *s3)
{
  CURL *h = NULL;

  pthread_mutex_lock(&s3->mu);
  if (s3->npool > 0)
    h = s3->pool[--s3->npool];
  pthread_mutex_unlock(&s3->mu);
  return h ? h : curl_easy_init(); /* s3_attempt resets it before use */
}

static void s3_handle_give(struct s3 *s3, CURL *h)
{
  if (!h)
    return;
  pthread_mutex_lock(&s3->mu);
  if (s3->npool < S3_POOL_MAX) {
    s3->pool[s3->npool++] = h;
    h = NULL;
  }
  pthread_mutex_unlock(&s3->mu);
  if (h)
    curl_easy_cleanup(h);
}

/* ---- callbacks ---- */

static size_t s3_read_cb(char *buf, size_t size, size_t nitems, void *userp)
{
  struct s3_req *r = userp;
  size_t cap = size * nitems;
  size_t got = 0;
  uint64_t left = r->src->size - r->sent;
  int rc;

  if (left == 0)
    return 0;
  if (cap > left)
    cap = (size_t)left;
  rc = r->src->fn(r->src->ctx, buf, cap, &got);
  if (rc == 0 && (got == 0 || got > cap)) {
    rc = CM_E_INVALID;
    r->cb_why = got ? "the source gave more bytes than asked" : "the source ended early";
  }
  if (rc) {
    r->cb_rc = rc;
    return CURL_READFUNC_ABORT;
  }
  r->sent += got;
  return got;
}

/* A 2xx GET body goes to the sink; anything else is kept (capped) in r->body. */
static size_t s3_write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
  struct s3_req *r = userp;
  size_t len = size * nmemb;
  int rc;

  curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &r->status);
  if (r->status < 200 || r->status > 299) {
    size_t room = r->body.max - r->body.len;

    cm_buf_add(&r->body, data, len < room ? len : room); /* a cut error document is fine */
    return len;
  }
  if (!r->dst) {
    rc = cm_buf_add(&r->body, data, len);
  } else {
    curl_off_t clen = -1;

    curl_easy_getinfo(r->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &clen);
    rc = (clen > 0 && (uint64_t)clen > r->dst->max) ? CM_E_TOOLARGE : 0;
    if (rc == 0)
      rc = r->dst->fn(r->dst->ctx, data, len);
  }
  if (rc) {
    r->cb_rc = rc;
    r->cb_why = rc == CM_E_TOOLARGE ? "too large" : "stopped by the sink";
    return 0;
  }
  r->received += len;
  return len;
}

/* ---- one attempt ---- */

/* Appends s to l; on failure frees l and returns NULL. */
static struct curl_slist *slist_add(struct curl_slist *l, const char *s)
{
  struct curl_slist *t = curl_slist_append(l, s);

  if (!t)
    curl_slist_free_all(l);
  return t;
}

static struct curl_slist *s3_headers(const struct s3 *s3, const struct s3_req *r)
{
  struct curl_slist *l;
  char ctype[256];

  /* libcurl 7.88 never sends this header itself, and S3 requires it with SigV4. */
  l = slist_add(NULL, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
  if (l && r->src) {
    snprintf(ctype, sizeof(ctype), "Content-Type: %s",
             r->ctype ? r->ctype : "application/octet-stream");
    l = slist_add(l, ctype);
  }
  if (l && s3->token_header)
    l = slist_add(l, s3->token_header);
  return l;
}

static void s3_setopt_method(CURL *h, struct s3_req *r)
{
  if (strcmp(r->method, "HEAD") == 0)
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  else if (strcmp(r->method, "DELETE") == 0)
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
  if (r->src) {
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, s3_read_cb);
    curl_easy_setopt(h, CURLOPT_READDATA, r);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->src->size);
  }
}

static void s3_setopt(const struct s3 *s3, CURL *h, struct s3_req *r, const char *url,
                      struct curl_slist *hdrs, char *errbuf)
{
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_AWS_SIGV4, s3->sigv4);
  curl_easy_setopt(h, CURLOPT_USERNAME, s3->access_key);
  curl_easy_setopt(h, CURLOPT_PASSWORD, s3->secret_key);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, s3->timeout_ms);
  if (r->streams) {
    /* A large object may take long; fail only when nothing moves for the timeout. */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (s3->timeout_ms + 999) / 1000);
  } else {
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, s3->timeout_ms);
  }
  curl_easy_setopt(h, CURLOPT_FILETIME, 1L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s3_write_cb);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
  s3_setopt_method(h, r);
}

/* Fills r->st from a 2xx answer's headers. */
static void s3_stat_fill(struct s3_req *r)
{
  struct curl_header *hh = NULL;
  curl_off_t v = -1;

  memset(&r->st, 0, sizeof(r->st));
  if (r->dst) {
    r->st.size = r->received;
  } else if (curl_easy_getinfo(r->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &v) == CURLE_OK && v > 0) {
    r->st.size = (uint64_t)v;
  }
  v = -1;
  if (curl_easy_getinfo(r->h, CURLINFO_FILETIME_T, &v) == CURLE_OK && v >= 0)
    r->st.mtime_ms = (int64_t)v * 1000;
  if (curl_easy_header(r->h, "ETag", 0, CURLH_HEADER, -1, &hh) == CURLHE_OK) {
    const char *e = hh->value;
    size_t n = strlen(e);

    if (n >= 2 && e[0] == '"' && e[n - 1] == '"') {
      e++;
      n -= 2;
    }
    if (n < sizeof(r->st.etag)) {
      memcpy(r->st.etag, e, n);
      r->st.etag[n] = '\0';
    }
  }
}

/* Runs one attempt. Returns the curl code; r->status, r->body and counters are updated. */
static CURLcode s3_attempt(const struct s3 *s3, struct s3_req *r, const char *url, char *errbuf)
{
  struct curl_slist *hdrs = s3_headers(s3, r);
  CURLcode cc;

  errbuf[0] = '\0';
  r->status = 0;
  r->sent = r->received = 0;
  r->cb_rc = 0;
  r->cb_why = NULL;
  cm_buf_reset(&r->body);
  if (!hdrs)
    return CURLE_OUT_OF_MEMORY;
  curl_easy_reset(r->h);
  s3_setopt(s3, r->h, r, url, hdrs, errbuf);
  cc = curl_easy_perform(r->h);
  curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &r->status);
  if (cc == CURLE_OK && r->status >= 200 && r->status <= 299)
    s3_stat_fill(r);
  curl_slist_free_all(hdrs);
  return cc;
}

/* ---- outcome of an attempt ---- */

static bool s3_curl_retryable(CURLcode cc)
{
  switch (cc) {
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
  case CURLE_COULDNT_CONNECT:
  case CURLE_OPERATION_TIMEDOUT:
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_PARTIAL_FILE:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
  case CURLE_WEIRD_SERVER_REPLY:
    return true;
  default:
    return false;
  }
}

/* The reason a connection failed, in words: errno's text for the usual cases. */
static const char *s3_curl_reason(CURL *h, CURLcode cc, const char *errbuf)
{
  long os = 0;

  curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os);
  switch (os) {
  case ECONNREFUSED:
    return "Connection refused";
  case ECONNRESET:
    return "Connection reset by peer";
  case EHOSTUNREACH:
    return "No route to host";
  case ENETUNREACH:
    return "Network is unreachable";
  case ETIMEDOUT:
    return "Connection timed out";
  default:
    break;
  }
  if (cc == CURLE_OPERATION_TIMEDOUT)
    return "timed out";
  return errbuf[0] ? errbuf : curl_easy_strerror(cc);
}

/* Classifies a finished attempt: 0 (an HTTP answer to hand to the caller), CM_E_UNAVAILABLE
 * with *retry set (worth another attempt; err says why), or a final code with err set (a sink
 * or source code is returned as it is). */
static int s3_outcome(const struct s3 *s3, struct s3_req *r, CURLcode cc, const char *errbuf,
                      const char *what, int attempts, bool *retry, struct cm_error *err)
{
  *retry = false;
  if (r->cb_rc == CM_E_TOOLARGE && !r->src)
    return cm_error_set(err, CM_E_TOOLARGE, "%s is larger than %zu bytes", what,
                        r->dst ? r->dst->max : r->body.max);
  if (r->cb_rc)
    return cm_error_set(err, r->cb_rc, "%s of %s: %s (%s)", r->src ? "upload" : "download", what,
                        r->cb_why ? r->cb_why : "stopped", cm_code_text(r->cb_rc));
  if (cc == CURLE_OUT_OF_MEMORY)
    return cm_error_set(err, CM_E_NOMEM, "%s: out of memory", what);
  if (cc != CURLE_OK && !s3_curl_retryable(cc))
    return cm_error_set(err, CM_E_UNAVAILABLE, "S3 endpoint %s: %s (%s)", s3->endpoint,
                        s3_curl_reason(r->h, cc, errbuf), what);
  if (cc != CURLE_OK) {
    cm_error_set(err, CM_E_UNAVAILABLE, "S3 endpoint %s unreachable: %s (%d attempt%s, %s)",
                 s3->endpoint, s3_curl_reason(r->h, cc, errbuf), attempts, attempts > 1 ? "s" : "",
                 what);
    *retry = true;
    return CM_E_UNAVAILABLE;
  }
  if (r->status >= 500) {
    struct s3_error_doc doc;

    s3_error_parse(r->body.data ? r->body.data : "", r->body.len, &doc);
    cm_error_set(err, CM_E_UNAVAILABLE, "S3 endpoint %s failed: HTTP %ld%s%s (%d attempt%s, %s)",
                 s3->endpoint, r->status, doc.code[0] ? " " : "", doc.code, attempts,
                 attempts > 1 ? "s" : "", what);
    *retry = true;
    return CM_E_UNAVAILABLE;
  }
  return 0;
}

/* Gets r ready for another attempt, or says why it cannot be retried. */
static int s3_rearm(struct s3_req *r, const char *what, struct cm_error *err)
{
  if (r->received > 0) {
    if (!r->dst->reset)
      return cm_error_set(err, CM_E_UNAVAILABLE,
                          "download of %s broke after %llu bytes; not retried, the sink has "
                          "them: %s",
                          what, (unsigned long long)r->received, err->msg);
    r->dst->reset(r->dst->ctx);
  }
  if (r->sent > 0) {
    if (!r->src->rewind || r->src->rewind(r->src->ctx) != 0)
      return cm_error_set(err, CM_E_UNAVAILABLE,
                          "upload of %s failed after %llu bytes; a stream cannot be retried: %s",
                          what, (unsigned long long)r->sent, err->msg);
  }
  return 0;
}

/* Sleeps before retry number attempt (1, 2, ...): exponential with jitter in [d/2, d]. */
static void s3_backoff(int attempt, unsigned int *seed)
{
  long d = S3_BACKOFF_MS;
  struct timespec ts;

  for (int i = 1; i < attempt && d < S3_BACKOFF_MAX_MS; i++)
    d *= 2;
  if (d > S3_BACKOFF_MAX_MS)
    d = S3_BACKOFF_MAX_MS;
  /* xorshift32: a per-call generator, so threads share no state. */
  *seed ^= *seed << 13;
  *seed ^= *seed >> 17;
  *seed ^= *seed << 5;
  d = d / 2 + (long)(*seed % (unsigned long)(d / 2 + 1));
  ts.tv_sec = d / 1000;
  ts.tv_nsec = (d % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

static unsigned int s3_seed(const void *p)
{
  struct timespec ts;
  unsigned int seed;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  seed = (unsigned int)ts.tv_nsec ^ (unsigned int)(uintptr_t)p ^ (unsigned int)ts.tv_sec;
  return seed ? seed : 0x9e3779b9u;
}

/* Builds <endpoint>/<bucket>[/<key>][?<query>] into url. */
static int s3_url(const struct s3 *s3, const struct s3_req *r, struct cm_buf *url)
{
  int rc = cm_buf_addf(url, "%s/%s", s3->endpoint, s3->bucket);

  if (rc == 0 && r->key) {
    rc = cm_buf_addc(url, '/');
    if (rc == 0)
      rc = store_uri_encode(url, r->key, strlen(r->key), true);
  }
  if (rc == 0 && r->query)
    rc = cm_buf_addf(url, "?%s", r->query);
  return rc;
}

/* Runs r with its retries. Returns 0 when an HTTP answer below 500 came back (r->status says
 * which; the caller judges it), or a negative code with err set. */
int s3_do(struct s3 *s3, struct s3_req *r, const char *what, struct cm_error *err)
{
  char errbuf[CURL_ERROR_SIZE];
  struct cm_buf url;
  unsigned int seed = s3_seed(r);
  int rc;

  cm_buf_init(&url, 8192);
  rc = s3_url(s3, r, &url);
  if (rc) {
    cm_error_set(err, rc, "%s: URL too long or out of memory", what);
    goto out;
  }
  r->h = s3_handle_take(s3);
  if (!r->h) {
    rc = cm_error_set(err, CM_E_NOMEM, "%s: cannot create a curl handle", what);
    goto out;
  }
  for (int attempt = 1;; attempt++) {
    CURLcode cc = s3_attempt(s3, r, url.data, errbuf);
    bool retry;

    rc = s3_outcome(s3, r, cc, errbuf, what, attempt, &retry, err);
    if (!retry || attempt > s3->retries || s3_rearm(r, what, err) != 0)
      break;
    cm_log(CM_LOG_WARN, "store request failed, retrying", "store=%s error=%s attempt=%d",
           s3->endpoint, err->msg, attempt);
    s3_backoff(attempt, &seed);
  }
out:
  s3_handle_give(s3, r->h);
  r->h = NULL;
  cm_buf_cleanup(&url);
  return rc;
}

/* ---- answers to errors ---- */

/* "HTTP <status>[ <Code>][: <Message>]" of an answer, for messages. */
static void s3_answer_text(const struct s3_req *r, const struct s3_error_doc *doc, char *out,
                           size_t cap)
{
  snprintf(out, cap, "HTTP %ld%s%s%s%s", r->status, doc->code[0] ? " " : "", doc->code,
           doc->message[0] ? ": " : "", doc->message);
}

/* Turns a non-2xx answer into an error naming what. */
int s3_status_error(const struct s3 *s3, const struct s3_req *r, const char *what,
                    struct cm_error *err)
{
  struct s3_error_doc doc;
  char answer[384];
  long st = r->status;

  s3_error_parse(r->body.data ? r->body.data : "", r->body.len, &doc);
  s3_answer_text(r, &doc, answer, sizeof(answer));
  if (st == 403 || st == 401) {
    cm_log(CM_LOG_WARN, "store access denied", "store=%s object=%s answer=%s", s3->endpoint, what,
           answer);
    return cm_error_set(err, CM_E_PERMISSION,
                        "access denied to %s at %s (check AWS_ACCESS_KEY_ID/"
                        "AWS_SECRET_ACCESS_KEY): %s",
                        what, s3->endpoint, answer);
  }
  if (st == 404 && strcmp(doc.code, "NoSuchBucket") == 0)
    return cm_error_set(err, CM_E_NOTFOUND,
                        "bucket %s does not exist at %s (store_bucket_ensure creates it): %s",
                        s3->bucket, s3->endpoint, what);
  if (st == 404)
    return cm_error_set(err, CM_E_NOTFOUND, "not found: %s", what);
  if (st == 412)
    return cm_error_set(err, CM_E_FAILED_PRECONDITION, "precondition failed on %s: %s", what,
                        answer);
  if (st == 413)
    return cm_error_set(err, CM_E_TOOLARGE, "S3 refused %s as too large: %s", what, answer);
  if (st == 409)
    return cm_error_set(err, CM_E_ABORTED, "conflict on %s: %s", what, answer);
  if (st >= 400)
    return cm_error_set(err, CM_E_INVALID, "S3 rejected %s %s: %s", r->method, what, answer);
  return cm_error_set(err, CM_E_UNKNOWN, "unexpected answer from %s for %s: %s", s3->endpoint, what,
                      answer);
}

/* True if the answer's error document has this <Code>. */
bool s3_code_is(const struct s3_req *r, const char *code)
{
  struct s3_error_doc doc;

  s3_error_parse(r->body.data ? r->body.data : "", r->body.len, &doc);
  return strcmp(doc.code, code) == 0;
}

bool s3_ok(const struct s3_req *r)
{
  return r->status >= 200 && r->status <= 299;
}

void s3_req_init(struct s3_req *r, const char *method, const char *key)
{
  memset(r, 0, sizeof(*r));
  r->method = method;
  r->key = key;
  cm_buf_init(&r->body, S3_ERROR_BODY_MAX);
}
