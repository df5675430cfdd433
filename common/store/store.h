/* store: Credito's object store. One interface, two backends: "s3://bucket[/prefix]" over
 * libcurl with its built-in SigV4 (MinIO, AWS S3 or any S3 server, path-style URLs) and
 * "file:///abs/dir", the embedded default, with the same key layout on disk. */
#ifndef CREDITO_STORE_H
#define CREDITO_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

/*
 * A store is safe to use from many threads at once: every call is independent. The S3
 * backend takes a libcurl easy handle from a small mutex-protected pool for each request and
 * gives it back afterwards (so connections are reused), the file backend holds no mutable
 * state at all.
 *
 * Keys are relative to the store's prefix and must be valid UTF-8 of at most 1024 bytes
 * (prefix included), with no control characters, no leading or trailing '/', and no empty,
 * "." or ".." segment; anything else fails with CM_E_INVALID. On the file backend a key
 * cannot start with the segment ".tmp" (its temporary files live there), and a key cannot be
 * both an object and the parent of another ("a" and "a/b"), which S3 allows.
 *
 * Errors name the object ("s3://bucket/prefix/key" or "file:///dir/key") and never a secret:
 *   CM_E_INVALID     bad key, bad URL or options, or another 4xx answer
 *   CM_E_NOTFOUND    no such key; also a missing bucket (or store directory), named as such
 *   CM_E_PERMISSION  403 (S3's <Code> and <Message> are quoted), or EACCES on files
 *   CM_E_UNAVAILABLE endpoint unreachable (refused, DNS, timeout) or 5xx, after the retries
 *   CM_E_TOOLARGE    store_get over its max
 *   CM_E_CORRUPT     an S3 answer that does not parse
 *   CM_E_IO          a file-system error
 */
typedef struct store store;

/* What a store knows about one object. */
struct store_stat {
  uint64_t size;    /* bytes */
  char etag[80];    /* S3's ETag without the quotes: the hex md5 of the bytes for a single-part
                     * upload, "<hex>-<parts>" for a multipart one; "" if the server sent none */
  int64_t mtime_ms; /* last modification, ms since the Unix epoch (S3 HEAD/GET: 1 s resolution) */
};

/* How to open a store. Every string is borrowed during store_open only. A NULL (or 0) field
 * takes its default, mostly from the variables awscli, boto3, DVC and MLflow already read. */
struct store_opts {
  const char *url;           /* "s3://bucket[/prefix]" or "file:///abs/dir" (the path is taken
                              * literally, no percent-decoding); NULL: $CREDITO_STORE, else
                              * "file://$HOME/.credito/store" */
  const char *endpoint;      /* S3 endpoint, "http[s]://host[:port]"; NULL: $AWS_ENDPOINT_URL_S3,
                              * then $AWS_ENDPOINT_URL, else https://s3.<region>.amazonaws.com */
  const char *access_key;    /* NULL: $AWS_ACCESS_KEY_ID */
  const char *secret_key;    /* NULL: $AWS_SECRET_ACCESS_KEY */
  const char *session_token; /* temporary credentials, sent as x-amz-security-token; NULL:
                              * $AWS_SESSION_TOKEN, but only when access_key is NULL too */
  const char *region;        /* NULL: $AWS_REGION, then $AWS_DEFAULT_REGION, else us-east-1 */
  long timeout_ms;           /* S3, per request: the connect timeout; the total time of a request
                              * without a streamed body; how long a transfer may stall with no
                              * byte moving (whole seconds, rounded up). 0: 30000 */
  int retries;               /* S3: further attempts after a connection error or a 5xx, with
                              * exponential backoff (100 ms doubling, at most 2 s) and jitter;
                              * 0: 4; negative: none */
};

/* Opens the store that o describes (o may be NULL: all defaults). No request is made: a
 * missing bucket or directory shows at the first call (store_bucket_ensure creates it). The
 * S3 backend needs an access key and a secret key. Returns a store the caller frees with
 * store_free, or NULL with err set (CM_E_INVALID for a bad URL, endpoint, region or missing
 * credentials; CM_E_NOMEM). */
store *store_open(const struct store_opts *o, struct cm_error *err);

/* Frees s and its connections. NULL does nothing. No call on s may be in progress. */
void store_free(store *s);

/* The store's URL for logs and messages, "s3://bucket[/prefix]" or "file:///dir", never with
 * a secret. Borrowed from s: valid until store_free. */
const char *store_url(const store *s);

/* Writes len bytes of data (borrowed) at key, replacing any object there. content_type NULL
 * means "application/octet-stream" (the file backend ignores it). A reader sees the old or the
 * new object, never a part. Returns 0 or a negative CM_E_* code with err set. */
int store_put(store *s, const char *key, const void *data, size_t len, const char *content_type,
              struct cm_error *err);

/* Fills buf with up to cap bytes and sets *got; returns 0, or a negative code to abort the
 * upload (put_stream then returns that code). Setting *got to 0 before size bytes were given
 * fails the upload with CM_E_INVALID. */
typedef int (*store_source_fn)(void *ctx, void *buf, size_t cap, size_t *got);

/* Like store_put for exactly size bytes read from src(ctx, ...) in pieces (never asked for
 * more than the remaining bytes), without holding the object in memory. An upload cut short
 * (source error, network) leaves no object and the old one, if any, in place. A failed
 * attempt is retried only if src was not called yet, since a source cannot rewind. */
int store_put_stream(store *s, const char *key, uint64_t size, store_source_fn src, void *ctx,
                     const char *content_type, struct cm_error *err);

/* Reads the object at key into out, which store_get initialises itself with
 * cm_buf_init(out, max) (so it must not hold memory the caller still has to free). On success
 * the caller owns out's memory and releases it with cm_buf_cleanup; on failure out is empty
 * and holds none. CM_E_NOTFOUND for a missing key, CM_E_TOOLARGE when the object is larger
 * than max (detected before the bytes when the size is known). Retries from the start. */
int store_get(store *s, const char *key, size_t max, struct cm_buf *out, struct cm_error *err);

/* Receives the next len bytes of the object (borrowed, valid during the call). Returns 0, or
 * non-zero to stop the download: store_get_stream then returns that value. */
typedef int (*store_sink_fn)(void *ctx, const void *data, size_t len);

/* Streams the object at key to sink(ctx, ...) in pieces as they arrive (never the whole object
 * in memory). st (may be NULL) gets the object's stat on success. Once the sink has received
 * bytes, a broken transfer fails with CM_E_UNAVAILABLE rather than being retried, since the
 * sink cannot take the bytes back; before that, failures are retried as usual. */
int store_get_stream(store *s, const char *key, store_sink_fn sink, void *ctx,
                     struct store_stat *st, struct cm_error *err);

/* Fills *st (must not be NULL) for the object at key. CM_E_NOTFOUND if there is none. */
int store_head(store *s, const char *key, struct store_stat *st, struct cm_error *err);

/* Deletes the object at key. Deleting a missing key succeeds (S3 semantics). */
int store_delete(store *s, const char *key, struct cm_error *err);

/* Called once per key with the key relative to the store's prefix and its stat (both borrowed,
 * valid during the call). Non-zero stops the listing: store_list returns that value. */
typedef int (*store_list_fn)(void *ctx, const char *key, const struct store_stat *st);

/* Calls fn for every key that starts with prefix (NULL or "" for all; it need not end at a
 * '/'), in lexicographic byte order as S3 defines it, following ListObjectsV2 pages. The order
 * comes from the server on S3 (AWS and MinIO keep it; s3rver only for keys of one directory
 * level, see tests). */
int store_list(store *s, const char *prefix, store_list_fn fn, void *ctx, struct cm_error *err);

/* Makes sure the bucket exists (S3: HEAD, then PUT if missing; a 409 answer means someone else
 * just made it) or the directory (file: mkdir -p, and removal of temporary files older than
 * an hour that a crashed writer left). Returns 0 or a negative code. */
int store_bucket_ensure(store *s, struct cm_error *err);

#endif
