/* store_int.h: what the store's files share and its unit tests reach: the backend table, the
 * key rules and their percent-encoding, ISO 8601 times, and the S3 XML parser. Not part of
 * the interface; only common/store/ and tests include it. */
#ifndef CREDITO_STORE_INT_H
#define CREDITO_STORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "store.h"

/* Longest key, store prefix included (S3's limit), in bytes. */
#define STORE_KEY_MAX 1024
/* Default and largest ListObjectsV2 page. */
#define STORE_PAGE_MAX 1000

/* An upload body: exactly size bytes from fn. rewind (may be NULL) restarts it for a retry. */
struct store_src {
  store_source_fn fn;
  void *ctx;
  int (*rewind)(void *ctx); /* 0 when the source is back at its start */
  uint64_t size;
};

/* An in-memory source over len bytes at p (borrowed), for store_put and small bodies. */
struct store_mem {
  const char *p;
  size_t len;
  size_t off; /* bytes already given */
};

/* store_source_fn and rewind for a struct store_mem ctx. */
int store_mem_read(void *ctx, void *buf, size_t cap, size_t *got);
int store_mem_rewind(void *ctx);

/* A download target. reset (may be NULL) discards what fn received, so a retry can start
 * over; without it a transfer that delivered bytes is never retried. */
struct store_dst {
  store_sink_fn fn;
  void *ctx;
  void (*reset)(void *ctx);
  size_t max; /* an object larger than this fails with CM_E_TOOLARGE before any byte */
};

/* One backend's operations. Keys arrive validated and without the store prefix. */
struct store_backend {
  int (*put)(store *s, const char *key, struct store_src *src, const char *ctype,
             struct cm_error *err);
  int (*get)(store *s, const char *key, struct store_dst *dst, struct store_stat *st,
             struct cm_error *err);
  int (*head)(store *s, const char *key, struct store_stat *st, struct cm_error *err);
  int (*del)(store *s, const char *key, struct cm_error *err);
  int (*list)(store *s, const char *prefix, store_list_fn fn, void *ctx, struct cm_error *err);
  int (*bucket_ensure)(store *s, struct cm_error *err);
  void (*free)(void *impl);
};

struct store {
  const struct store_backend *be;
  void *impl;        /* the backend's own state, freed by be->free */
  char *url;         /* store_url's answer */
  size_t prefix_len; /* bytes the backend puts before each key (S3 prefix and its '/') */
  int page_size;     /* ListObjectsV2 max-keys, 1..STORE_PAGE_MAX */
};

/* S3 settings, resolved by store_open (all borrowed during s3_open). */
struct s3_config {
  const char *endpoint; /* "http[s]://host[:port][/path]", no trailing '/' */
  const char *bucket;
  const char *prefix;                                  /* "" or "dir/sub/" */
  const char *access_key, *secret_key, *session_token; /* session_token may be NULL */
  const char *region;
  long timeout_ms;
  int retries;
};

/* Backend constructors: fill s->be and s->impl. 0 or a negative code with err set. */
int s3_open(store *s, const struct s3_config *cfg, struct cm_error *err);
int file_open(store *s, const char *dir, struct cm_error *err);

/* Test hook: the ListObjectsV2 page size (clamped to 1..STORE_PAGE_MAX), so a few keys can
 * span several pages. Not thread-safe against a running store_list. */
void store_page_size_set(store *s, int n);

/* Checks a key against the rules in store.h (max_len: the bytes left after the store prefix).
 * Returns 0 or CM_E_INVALID with err saying why. */
int store_key_check(const char *key, size_t max_len, struct cm_error *err);

/* Checks a list prefix: "" is fine, a trailing '/' or partial segment too; the other key rules
 * apply. Returns 0 or CM_E_INVALID. */
int store_prefix_check(const char *prefix, size_t max_len, struct cm_error *err);

/* Appends s (len bytes) to out percent-encoded once, upper-case hex, RFC 3986: unreserved
 * characters are kept, and '/' too when keep_slash. Same results as cm_buf_add. */
int store_uri_encode(struct cm_buf *out, const char *s, size_t len, bool keep_slash);

/* Writes a printable excerpt of key into out (cap >= 8): control bytes become '?', and a long
 * key is cut with "...". For error messages. */
void store_key_quote(const char *key, char *out, size_t cap);

/* Parses an ISO 8601 UTC time as S3 writes it, "2024-01-31T12:34:56.789Z" (fraction
 * optional, any number of digits; "+hh:mm"/"-hh:mm" offsets accepted too), into ms since the
 * epoch. Returns 0 or CM_E_CORRUPT. */
int store_time_parse(const char *s, size_t len, int64_t *ms);

/* One object of a ListObjectsV2 page. */
struct s3_entry {
  char *key; /* decoded full key (store prefix included), owned by the page */
  struct store_stat st;
};

/* A parsed ListObjectsV2 answer; s3_page_cleanup frees it. */
struct s3_page {
  struct s3_entry *v;
  size_t n;
  bool truncated;   /* IsTruncated */
  char *next_token; /* NextContinuationToken, or NULL */
};

/* Limits of the XML parser: a document breaking one is CM_E_CORRUPT. */
#define S3_XML_DEPTH_MAX   16
#define S3_XML_NAME_MAX    64
#define S3_XML_TEXT_MAX    4096
#define S3_XML_ENTRIES_MAX 10000

/* Parses a ListBucketResult document of len bytes (need not be NUL-terminated) into page,
 * which it initialises. Returns 0, CM_E_CORRUPT (err says where) for anything malformed or
 * over the limits, or CM_E_NOMEM; on failure page is empty. */
int s3_page_parse(const char *xml, size_t len, struct s3_page *page, struct cm_error *err);

/* Frees what page holds and empties it. */
void s3_page_cleanup(struct s3_page *page);

/* S3's error document, <Error><Code>..</Code><Message>..</Message></Error>. */
struct s3_error_doc {
  char code[64];     /* "" when absent; cut when longer */
  char message[256]; /* likewise */
};

/* Parses an Error document. Returns 0, or CM_E_CORRUPT when xml is not one (then out holds
 * empty strings). */
int s3_error_parse(const char *xml, size_t len, struct s3_error_doc *out);

#endif
