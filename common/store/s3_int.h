/* s3_int.h: what the S3 backend's two files share: its state, one request, and the transport
 * (s3_http.c: retries, callbacks, error answers) that the operations (s3.c) call. Included by
 * common/store/s3*.c only. */
#ifndef CREDITO_S3_INT_H
#define CREDITO_S3_INT_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>

#include "store_int.h"

#define S3_POOL_MAX       8                  /* idle easy handles kept for reuse */
#define S3_ERROR_BODY_MAX (64 * 1024)        /* error documents kept; the rest is dropped */
#define S3_LIST_BODY_MAX  (16 * 1024 * 1024) /* a ListObjectsV2 page */

/* The backend's state; immutable after s3_open except the handle pool. */
struct s3 {
  char *endpoint; /* "http://host:port", no trailing '/' */
  char *bucket;
  char *prefix; /* "" or "dir/" */
  char *access_key;
  char *secret_key;
  char *token_header; /* "x-amz-security-token: ..." or NULL */
  char *sigv4;        /* "aws:amz:<region>:s3" */
  char *region;
  long timeout_ms;
  int retries;
  pthread_mutex_t mu; /* guards pool and npool */
  CURL *pool[S3_POOL_MAX];
  int npool;
};

/* One request: what to send, where the answer goes, and what came back. */
struct s3_req {
  const char *method;    /* "GET", "PUT", "HEAD" or "DELETE" */
  const char *key;       /* full key (prefix included), or NULL for the bucket itself */
  const char *query;     /* sorted and encoded, or NULL */
  const char *ctype;     /* Content-Type of a PUT */
  struct store_src *src; /* PUT body, or NULL for none */
  struct store_dst *dst; /* where a 2xx GET body goes; NULL: into body */
  bool streams;          /* a body of any size: stall timeout instead of a total one */
  long status;           /* HTTP status of the last attempt, 0 if none */
  struct cm_buf body;    /* the 2xx body (when dst is NULL) or the error document */
  struct store_stat st;  /* of a 2xx GET or HEAD */
  uint64_t sent;         /* bytes taken from src in this attempt */
  uint64_t received;     /* bytes given to dst in this attempt */
  int cb_rc;             /* a code our callbacks stopped the transfer with */
  const char *cb_why;    /* and why */
  CURL *h;
};

/* Makes r a request of method on key (full key, or NULL for the bucket) with an empty body
 * buffer; the caller sets the other inputs, and frees r->body with cm_buf_cleanup. */
void s3_req_init(struct s3_req *r, const char *method, const char *key);

/* Runs r with its retries (connection errors and 5xx, with backoff; a stream that moved bytes
 * is not retried). Returns 0 when an HTTP answer below 500 came back (r->status says which, the
 * caller judges it), or a negative code with err set naming what (the object's URL). */
int s3_do(struct s3 *s3, struct s3_req *r, const char *what, struct cm_error *err);

/* Turns r's non-2xx answer into a CM_E_* error naming what; returns the code. */
int s3_status_error(const struct s3 *s3, const struct s3_req *r, const char *what,
                    struct cm_error *err);

/* True if r's error document has this <Code>. */
bool s3_code_is(const struct s3_req *r, const char *code);

/* True for a 2xx answer. */
bool s3_ok(const struct s3_req *r);

#endif
