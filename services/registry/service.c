/* credito.v1.Registry over gRPC: unary calls go request -> JSON -> operation -> JSON -> response
 * (the registry's records are JSON documents); uploads spool to a local file while their
 * digests are computed, then go to the store before their record; downloads stream from the
 * store with backpressure, checking the bytes against their size and content address (DATA_LOSS
 * if the store lost or changed them); WatchModel streams model events. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "credito/v1/registry.pb-c.h"
#include "log.h"
#include "mem.h"
#include "pbjson.h"
#include "reg_service.h"

#define CHUNK (64 * 1024)
#define WRITE_WAIT_MS 30000

struct reg_service {
  struct rpc_service svc;          /* first: the rpc_service pointer is the struct's */
  registry *r;
  struct rpc_method *methods;
  pthread_mutex_t mu;              /* guards watches */
  struct watch_call *watches;
};

struct watch_call {
  rpc_call *call;
  long id;
  struct watch_call *next;
};

static const char *jstr(const json_t *obj, const char *key)
{
  const char *s = json_string_value(json_object_get(obj, key));

  return s ? s : "";
}

static const char *caller_of(rpc_call *call)
{
  const char *c = rpc_call_metadata(call, "x-credito-caller");

  return c ? c : rpc_call_peer(call);
}

static const char *method_name(rpc_call *call)
{
  const char *p = strrchr(rpc_call_method(call), '/');

  return p ? p + 1 : "";
}

static int not_ready(struct reg_service *rs, rpc_call *call)
{
  struct cm_error err;

  if (registry_ready(rs->r))
    return 0;
  registry_not_ready(rs->r, &err);
  rpc_call_fail(call, &err);
  return 1;
}

/* Converts a JSON result to the method's response type in the call's arena and replies. */
static void reply_json(rpc_call *call, const ProtobufCMessageDescriptor *out, const json_t *resp)
{
  ProtobufCMessage *msg = NULL;
  struct cm_error err;

  if (pbjson_to_message(resp, out, PBJSON_IGNORE_UNKNOWN, rpc_call_arena(call), &msg, &err)) {
    cm_log(CM_LOG_ERROR, "bad registry record", "method=%s error=%s", rpc_call_method(call),
           err.msg);
    rpc_call_finish(call, CM_E_INTERNAL, err.msg);
    return;
  }
  rpc_call_reply(call, msg);
}

static void reg_unary(rpc_call *call, const ProtobufCMessage *req)
{
  struct reg_service *rs = rpc_call_service(call);
  const ProtobufCMethodDescriptor *md =
      protobuf_c_service_descriptor_get_method_by_name(&credito__v1__registry__descriptor,
                                                       method_name(call));
  registry_op_fn op = registry_op_find(method_name(call));
  struct cm_error err;
  json_t *jreq, *jresp = NULL;
  int rc;

  if (not_ready(rs, call))
    return;
  cm_error_clear(&err);
  jreq = pbjson_from_message(req, 0, &err);
  rc = jreq ? op(rs->r, jreq, caller_of(call), &jresp, &err) : err.code;
  json_decref(jreq);
  if (rc) {
    rpc_call_fail(call, &err);
    return;
  }
  reply_json(call, md->output, jresp);
  json_decref(jresp);
}

/* ---- uploads: UploadArtifact and PutDatasetBytes ---- */

struct upload {
  FILE *f;                /* the spool file, unlinked at creation */
  EVP_MD_CTX *md5, *sha;  /* running digests */
  uint64_t size;          /* bytes so far */
  bool artifact;          /* UploadArtifact (else PutDatasetBytes) */
  bool have_header;
  char *run_id, *path, *content_type; /* artifact header */
  int64_t expected_size;
  char *expected_sha256, *expected_md5;
};

static void upload_free(void *p)
{
  struct upload *u = p;

  if (!u)
    return;
  if (u->f)
    fclose(u->f);
  EVP_MD_CTX_free(u->md5);
  EVP_MD_CTX_free(u->sha);
  cm_free(u->run_id);
  cm_free(u->path);
  cm_free(u->content_type);
  cm_free(u->expected_sha256);
  cm_free(u->expected_md5);
  cm_free(u);
}

static void upload_start(rpc_call *call, const ProtobufCMessage *req)
{
  struct reg_service *rs = rpc_call_service(call);
  struct upload *u;

  (void)req;
  if (not_ready(rs, call))
    return;
  u = cm_calloc(1, sizeof(*u));
  if (u) {
    u->artifact = strcmp(method_name(call), "UploadArtifact") == 0;
    u->md5 = EVP_MD_CTX_new();
    u->sha = EVP_MD_CTX_new();
  }
  if (!u || !u->md5 || !u->sha || !EVP_DigestInit_ex(u->md5, EVP_md5(), NULL) ||
      !EVP_DigestInit_ex(u->sha, EVP_sha256(), NULL)) {
    upload_free(u);
    rpc_call_finish(call, CM_E_NOMEM, "out of memory");
    return;
  }
  rpc_call_set_data(call, u, upload_free);
}

/* Checks an artifact path: relative, no "..", no control characters, at most 256 bytes. */
static int path_check(const char *path, struct cm_error *err)
{
  size_t n = strlen(path);

  if (n == 0 || n > 256 || path[0] == '/' || strstr(path, ".."))
    return cm_error_set(err, CM_E_INVALID, "artifact path '%s' must be relative, 1-256 bytes, "
                                           "without '..'", path);
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f)
      return cm_error_set(err, CM_E_INVALID, "artifact path contains a control character");
  return 0;
}

static int upload_header(rpc_call *call, struct upload *u, const ProtobufCMessage *msg,
                         struct cm_error *err)
{
  struct reg_service *rs = rpc_call_service(call);
  char tmpl[512];
  int fd, rc = 0;

  if (u->artifact) {
    const Credito__V1__UploadArtifactRequest *m = (const void *)msg;
    const Credito__V1__UploadArtifactHeader *h = m->header;

    if (m->part_case != CREDITO__V1__UPLOAD_ARTIFACT_REQUEST__PART_HEADER || !h)
      return cm_error_set(err, CM_E_INVALID, "the first message must be the header");
    rc = registry_run_exists(rs->r, h->run_id, err);
    if (!rc)
      rc = path_check(h->path, err);
    if (rc)
      return rc;
    u->run_id = cm_strdup(h->run_id);
    u->path = cm_strdup(h->path);
    u->content_type = cm_strdup(h->content_type);
    u->expected_size = h->expected_size;
    u->expected_sha256 = cm_strdup(h->expected_sha256);
  } else {
    const Credito__V1__PutDatasetBytesRequest *m = (const void *)msg;

    if (m->part_case != CREDITO__V1__PUT_DATASET_BYTES_REQUEST__PART_HEADER || !m->header)
      return cm_error_set(err, CM_E_INVALID, "the first message must be the header");
    u->expected_size = m->header->expected_size;
    u->expected_md5 = cm_strdup(m->header->expected_md5);
  }
  snprintf(tmpl, sizeof(tmpl), "%s/credito-upload-XXXXXX", registry_tmp_dir(rs->r));
  fd = mkstemp(tmpl);
  if (fd < 0)
    return cm_error_set(err, CM_E_IO, "cannot create a spool file in %s: %s",
                        registry_tmp_dir(rs->r), strerror(errno));
  unlink(tmpl); /* nothing is left behind, whatever happens to this process */
  u->f = fdopen(fd, "w+b");
  u->have_header = true;
  return u->f ? 0 : cm_error_set(err, CM_E_IO, "cannot open the spool file");
}

static void upload_message(rpc_call *call, const ProtobufCMessage *msg)
{
  struct reg_service *rs = rpc_call_service(call);
  struct upload *u = rpc_call_data(call);
  struct cm_error err;
  const ProtobufCBinaryData *chunk;
  int rc = 0;

  cm_error_clear(&err);
  if (!u->have_header) {
    rc = upload_header(call, u, msg, &err);
    if (rc)
      rpc_call_fail(call, &err);
    return;
  }
  chunk = u->artifact ? &((const Credito__V1__UploadArtifactRequest *)msg)->chunk
                      : &((const Credito__V1__PutDatasetBytesRequest *)msg)->chunk;
  if (u->size + chunk->len > registry_max_upload(rs->r)) {
    /* registry.proto: an upload past the size cap is INVALID_ARGUMENT */
    cm_error_set(&err, CM_E_INVALID, "upload over the %llu-byte cap (--max-upload)",
                 (unsigned long long)registry_max_upload(rs->r));
    rc = err.code;
  } else if (fwrite(chunk->data, 1, chunk->len, u->f) != chunk->len) {
    rc = cm_error_set(&err, CM_E_IO, "cannot spool the upload: %s", strerror(errno));
  }
  if (rc) {
    rpc_call_fail(call, &err);
    return;
  }
  EVP_DigestUpdate(u->md5, chunk->data, chunk->len);
  EVP_DigestUpdate(u->sha, chunk->data, chunk->len);
  u->size += chunk->len;
}

static void hex(const unsigned char *d, unsigned n, char *out)
{
  for (unsigned i = 0; i < n; i++)
    snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static int spool_read(void *ctx, void *buf, size_t cap, size_t *got)
{
  FILE *f = ctx;

  *got = fread(buf, 1, cap, f);
  return ferror(f) ? CM_E_IO : 0;
}

/* Puts the spooled bytes at their content address unless they are there already. */
static int upload_store(struct reg_service *rs, struct upload *u, const char *key,
                        struct cm_error *err)
{
  struct store_stat st;
  store *s = registry_store(rs->r);
  int rc = store_head(s, key, &st, err);

  if (rc == 0 && st.size == u->size)
    return 0;
  if (rc && rc != CM_E_NOTFOUND)
    return rc;
  rewind(u->f);
  return store_put_stream(s, key, u->size, spool_read, u->f,
                          u->content_type && u->content_type[0] ? u->content_type
                                                                : "application/octet-stream",
                          err);
}

static void upload_end(rpc_call *call)
{
  struct reg_service *rs = rpc_call_service(call);
  struct upload *u = rpc_call_data(call);
  unsigned char d5[EVP_MAX_MD_SIZE], d256[EVP_MAX_MD_SIZE];
  unsigned n5 = 0, n256 = 0;
  char md5[33], sha[65], key[64];
  struct cm_error err;
  json_t *blob = NULL, *resp = NULL;
  int rc = 0;

  cm_error_clear(&err);
  if (!u->have_header) {
    rpc_call_finish(call, CM_E_INVALID, "empty upload: no header");
    return;
  }
  EVP_DigestFinal_ex(u->md5, d5, &n5);
  EVP_DigestFinal_ex(u->sha, d256, &n256);
  hex(d5, n5, md5);
  hex(d256, n256, sha);
  snprintf(key, sizeof(key), "files/md5/%.2s/%s", md5, md5 + 2);
  if (u->expected_size && (uint64_t)u->expected_size != u->size)
    rc = cm_error_set(&err, CM_E_INVALID, "received %llu bytes, the header announced %lld",
                      (unsigned long long)u->size, (long long)u->expected_size);
  else if (u->expected_sha256 && u->expected_sha256[0] && strcmp(u->expected_sha256, sha) != 0)
    rc = cm_error_set(&err, CM_E_INVALID, "bytes have sha256 %s, not %.64s", sha,
                      u->expected_sha256);
  else if (u->expected_md5 && u->expected_md5[0] && strcmp(u->expected_md5, md5) != 0)
    rc = cm_error_set(&err, CM_E_INVALID, "bytes have md5 %s, not %.64s", md5, u->expected_md5);
  if (!rc && fflush(u->f) != 0)
    rc = cm_error_set(&err, CM_E_IO, "cannot spool the upload: %s", strerror(errno));
  if (!rc)
    rc = upload_store(rs, u, key, &err);
  if (!rc) {
    blob = json_pack("{s:s, s:I, s:s, s:s}", "key", key, "size", (json_int_t)u->size, "md5", md5,
                     "sha256", sha);
    rc = blob ? registry_blob_recorded(rs->r, u->artifact ? u->run_id : NULL, u->path,
                                       u->content_type, blob, caller_of(call), &resp, &err)
              : cm_error_set(&err, CM_E_NOMEM, "out of memory");
  }
  json_decref(blob);
  if (rc) {
    rpc_call_fail(call, &err);
    return;
  }
  reply_json(call,
             u->artifact ? &credito__v1__artifact__descriptor : &credito__v1__blob__descriptor,
             resp);
  json_decref(resp);
}

static void call_cancelled(rpc_call *call)
{
  rpc_call_finish(call, CM_E_CANCELLED, "cancelled");
}

/* ---- downloads: DownloadArtifact and GetDatasetBytes ---- */

struct download {
  rpc_call *call;
  bool artifact;
  EVP_MD_CTX *md5;        /* of every byte streamed, checked against the content address */
  const char *run_id;     /* the artifact asked for by run and path (borrowed), or "" */
  const char *path;
};

static int download_sink(void *ctx, const void *data, size_t len)
{
  struct download *d = ctx;
  Credito__V1__DownloadArtifactResponse a = CREDITO__V1__DOWNLOAD_ARTIFACT_RESPONSE__INIT;
  Credito__V1__GetDatasetBytesResponse b = CREDITO__V1__GET_DATASET_BYTES_RESPONSE__INIT;

  if (!EVP_DigestUpdate(d->md5, data, len))
    return CM_E_INTERNAL;
  while (len > 0) {
    size_t n = len < CHUNK ? len : CHUNK;
    int rc;

    if (d->artifact) {
      a.part_case = CREDITO__V1__DOWNLOAD_ARTIFACT_RESPONSE__PART_CHUNK;
      a.chunk = (ProtobufCBinaryData){n, (uint8_t *)data};
      rc = rpc_call_write_wait(d->call, &a.base, WRITE_WAIT_MS);
    } else {
      b.part_case = CREDITO__V1__GET_DATASET_BYTES_RESPONSE__PART_CHUNK;
      b.chunk = (ProtobufCBinaryData){n, (uint8_t *)data};
      rc = rpc_call_write_wait(d->call, &b.base, WRITE_WAIT_MS);
    }
    if (rc)
      return rc;
    data = (const char *)data + n;
    len -= n;
  }
  return 0;
}

/* The blob a download asks for (new reference). */
static int download_blob(struct reg_service *rs, rpc_call *call, const ProtobufCMessage *req,
                         bool artifact, json_t **blob, struct cm_error *err)
{
  char key[64];
  const char *md5;

  if (artifact) {
    const Credito__V1__DownloadArtifactRequest *m = (const void *)req;

    if (m->key && m->key[0]) {
      if (strncmp(m->key, "files/md5/", 10) != 0 || strlen(m->key) != 10 + 33)
        return cm_error_set(err, CM_E_INVALID, "key '%s' is not a files/md5/ key", m->key);
      /* the key is the md5 (files/md5/<2>/<30>), so the header can carry it */
      snprintf(key, sizeof(key), "%.2s%s", m->key + 10, m->key + 13);
      if (m->key[12] != '/' || strlen(key) != 32 || strspn(key, "0123456789abcdef") != 32)
        return cm_error_set(err, CM_E_INVALID, "key '%s' is not a files/md5/ key", m->key);
      *blob = json_pack("{s:s, s:s}", "key", m->key, "md5", key);
      return 0;
    }
    return registry_artifact_blob(rs->r, m->run_id, m->path, blob, err);
  }
  (void)call;
  md5 = ((const Credito__V1__GetDatasetBytesRequest *)req)->md5;
  if (strlen(md5) != 32 || strspn(md5, "0123456789abcdef") != 32)
    return cm_error_set(err, CM_E_INVALID, "md5 '%s' is not 32 lower-case hex digits", md5);
  snprintf(key, sizeof(key), "files/md5/%.2s/%s", md5, md5 + 2);
  *blob = json_pack("{s:s, s:s}", "key", key, "md5", md5);
  return 0;
}

/* Logs and sets DATA_LOSS for a blob whose bytes are not what was stored; the message (whose
 * size is capped) names the key and the run, the log line also the artifact's path. */
static int download_corrupt(struct download *d, const char *key, struct cm_error *err,
                            const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int download_corrupt(struct download *d, const char *key, struct cm_error *err,
                            const char *fmt, ...)
{
  char why[CM_ERROR_MSG_SIZE];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  if (d->run_id[0])
    cm_error_set(err, CM_E_CORRUPT, "blob %s (run %s) %s", key, d->run_id, why);
  else
    cm_error_set(err, CM_E_CORRUPT, "blob %s %s", key, why);
  cm_log(CM_LOG_ERROR, "corrupt blob in the store", "key=%s method=%s run_id=%s path=%s error=%s",
         key, method_name(d->call), d->run_id, d->path, err->msg);
  return err->code;
}

/* The store's size of the blob against the size the registry recorded, if it recorded one. */
static int download_size_check(struct reg_service *rs, struct download *d, const json_t *blob,
                               uint64_t stored, struct cm_error *err)
{
  const char *key = jstr(blob, "key");
  const json_t *n = json_object_get(blob, "size");
  uint64_t recorded;
  bool known = json_is_integer(n) && json_integer_value(n) >= 0;

  if (known)
    recorded = (uint64_t)json_integer_value(n);
  else
    known = registry_blob_size(rs->r, key, &recorded);
  if (!known || recorded == stored)
    return 0;
  return download_corrupt(d, key, err, "is truncated or replaced: %llu bytes in the store, %llu "
                          "recorded", (unsigned long long)stored, (unsigned long long)recorded);
}

/* The md5 of what was streamed against the content address (files/md5/<2>/<30>). */
static int download_md5_check(struct download *d, const char *key, struct cm_error *err)
{
  unsigned char dig[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  char got[33] = "", want[33];

  if (strlen(key) != 43 || strncmp(key, "files/md5/", 10) != 0)
    return 0; /* not a content address (cannot be: downloads and loads check keys) */
  snprintf(want, sizeof(want), "%.2s%s", key + 10, key + 13);
  if (!EVP_DigestFinal_ex(d->md5, dig, &n) || n != 16)
    return cm_error_set(err, CM_E_INTERNAL, "cannot compute md5");
  hex(dig, n, got);
  if (strcmp(got, want) == 0)
    return 0;
  return download_corrupt(d, key, err, "is corrupt: the store's bytes have md5 %s", got);
}

static void download_start(rpc_call *call, const ProtobufCMessage *req)
{
  struct reg_service *rs = rpc_call_service(call);
  struct download d = {call, strcmp(method_name(call), "DownloadArtifact") == 0, NULL, "", ""};
  Credito__V1__DownloadArtifactResponse a = CREDITO__V1__DOWNLOAD_ARTIFACT_RESPONSE__INIT;
  Credito__V1__GetDatasetBytesResponse b = CREDITO__V1__GET_DATASET_BYTES_RESPONSE__INIT;
  Credito__V1__Blob hb = CREDITO__V1__BLOB__INIT;
  struct store_stat st;
  struct cm_error err;
  json_t *blob = NULL;
  int rc;

  if (not_ready(rs, call))
    return;
  cm_error_clear(&err);
  if (d.artifact) {
    const Credito__V1__DownloadArtifactRequest *m = (const void *)req;

    if (!(m->key && m->key[0])) { /* by run and path, which the errors name */
      d.run_id = m->run_id;
      d.path = m->path;
    }
  }
  rc = download_blob(rs, call, req, d.artifact, &blob, &err);
  if (!rc)
    rc = store_head(registry_store(rs->r), jstr(blob, "key"), &st, &err);
  if (!rc)
    rc = download_size_check(rs, &d, blob, st.size, &err);
  if (!rc) {
    d.md5 = EVP_MD_CTX_new();
    if (!d.md5 || !EVP_DigestInit_ex(d.md5, EVP_md5(), NULL))
      rc = cm_error_set(&err, CM_E_NOMEM, "out of memory");
  }
  if (!rc) {
    hb.key = (char *)jstr(blob, "key");
    hb.size = (int64_t)st.size;
    hb.md5 = (char *)jstr(blob, "md5");
    hb.sha256 = (char *)jstr(blob, "sha256");
    a.part_case = CREDITO__V1__DOWNLOAD_ARTIFACT_RESPONSE__PART_HEADER;
    a.header = &hb;
    b.part_case = CREDITO__V1__GET_DATASET_BYTES_RESPONSE__PART_HEADER;
    b.header = &hb;
    rc = rpc_call_write(call, d.artifact ? &a.base : &b.base);
    if (rc)
      cm_error_set(&err, rc, "cannot send the header");
  }
  if (!rc)
    rc = store_get_stream(registry_store(rs->r), hb.key, download_sink, &d, &st, &err);
  /* The bytes already went out: a mismatch ends the stream with DATA_LOSS instead of OK. */
  if (!rc)
    rc = download_md5_check(&d, hb.key, &err);
  EVP_MD_CTX_free(d.md5);
  json_decref(blob);
  if (rc)
    rpc_call_fail(call, &err);
  else
    rpc_call_finish(call, CM_OK, NULL);
}

/* ---- WatchModel ---- */

static void watch_event(void *ctx, const json_t *ev)
{
  rpc_call *call = ctx;
  cm_arena *a = cm_arena_new(0);
  ProtobufCMessage *msg = NULL;
  struct cm_error err;

  if (a && !pbjson_to_message(ev, &credito__v1__model_event__descriptor, PBJSON_IGNORE_UNKNOWN, a,
                              &msg, &err)) {
    if (rpc_call_write(call, msg))
      cm_log(CM_LOG_WARN, "a model watcher fell behind; event dropped", "peer=%s",
             rpc_call_peer(call));
  }
  cm_arena_free(a);
}

static void watch_start(rpc_call *call, const ProtobufCMessage *req)
{
  struct reg_service *rs = rpc_call_service(call);
  const Credito__V1__WatchModelRequest *m = (const void *)req;
  struct watch_call *w;
  struct cm_error err;

  if (not_ready(rs, call))
    return;
  if (registry_check_name("model name", m->name, &err)) {
    rpc_call_fail(call, &err);
    return;
  }
  w = cm_calloc(1, sizeof(*w));
  if (!w) {
    rpc_call_finish(call, CM_E_NOMEM, "out of memory");
    return;
  }
  w->call = call;
  pthread_mutex_lock(&rs->mu);
  w->next = rs->watches;
  rs->watches = w;
  w->id = registry_watch(rs->r, m->name, m->alias, watch_event, call, &err);
  pthread_mutex_unlock(&rs->mu);
}

/* Unlists the watch of call and finishes it, if it is still listed. */
static void watch_end(struct reg_service *rs, rpc_call *call, int code, const char *msg)
{
  struct watch_call **pp, *w = NULL;

  pthread_mutex_lock(&rs->mu);
  for (pp = &rs->watches; *pp; pp = &(*pp)->next) {
    if (!call || (*pp)->call == call) {
      w = *pp;
      *pp = w->next;
      break;
    }
  }
  pthread_mutex_unlock(&rs->mu);
  if (!w)
    return;
  registry_unwatch(rs->r, w->id);
  rpc_call_finish(w->call, code, msg);
  cm_free(w);
}

static void watch_cancel(rpc_call *call)
{
  watch_end(rpc_call_service(call), call, CM_E_CANCELLED, "cancelled");
}

static void reg_shutdown(void *ctx)
{
  struct reg_service *rs = ctx;

  for (;;) {
    pthread_mutex_lock(&rs->mu);
    bool more = rs->watches != NULL;
    pthread_mutex_unlock(&rs->mu);
    if (!more)
      break;
    watch_end(rs, NULL, CM_E_UNAVAILABLE, "registry shutting down");
  }
}

/* ---- the service ---- */

struct rpc_service *reg_service_new(registry *r)
{
  const ProtobufCServiceDescriptor *d = &credito__v1__registry__descriptor;
  struct reg_service *rs = cm_calloc(1, sizeof(*rs));

  if (!rs || !(rs->methods = cm_calloc(d->n_methods, sizeof(*rs->methods)))) {
    cm_free(rs);
    return NULL;
  }
  rs->r = r;
  pthread_mutex_init(&rs->mu, NULL);
  for (unsigned i = 0; i < d->n_methods; i++) {
    struct rpc_method *m = &rs->methods[i];
    const char *name = d->methods[i].name;

    *m = (struct rpc_method){name, RPC_UNARY, d->methods[i].input, d->methods[i].output,
                             reg_unary, NULL, NULL, NULL};
    if (strcmp(name, "UploadArtifact") == 0 || strcmp(name, "PutDatasetBytes") == 0)
      *m = (struct rpc_method){name, RPC_CLIENT_STREAM, m->input, m->output, upload_start,
                               upload_message, upload_end, call_cancelled};
    else if (strcmp(name, "DownloadArtifact") == 0 || strcmp(name, "GetDatasetBytes") == 0)
      *m = (struct rpc_method){name, RPC_SERVER_STREAM, m->input, m->output, download_start,
                               NULL, NULL, NULL};
    else if (strcmp(name, "WatchModel") == 0)
      *m = (struct rpc_method){name, RPC_SERVER_STREAM, m->input, m->output, watch_start, NULL,
                               NULL, watch_cancel};
    else if (!registry_op_find(name))
      cm_log(CM_LOG_ERROR, "registry method without an operation", "method=%s", name);
  }
  rs->svc = (struct rpc_service){d->name, rs->methods, d->n_methods, rs, reg_shutdown};
  return &rs->svc;
}

void reg_service_free(struct rpc_service *svc)
{
  struct reg_service *rs = (struct reg_service *)svc;

  if (!rs)
    return;
  pthread_mutex_destroy(&rs->mu);
  cm_free(rs->methods);
  cm_free(rs);
}
