/* regclient: registry calls shared by the trainer and the predictor. */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "regclient.h"

/* Bytes per chunk message (well under the 4 MiB message cap). */
#define REGC_CHUNK (256 * 1024)

/* Rewrites err as "registry METHOD: <server message>", dropping the client's "CODE: " prefix
 * (the trainer's own status carries the code). Returns rc. */
static int reg_fail(struct cm_error *err, int rc, const char *method)
{
  char msg[sizeof err->msg];
  const char *m = err->msg, *code = cm_grpc_code_name(cm_code_to_grpc(rc));
  size_t n = strlen(code);
  if (strncmp(m, code, n) == 0 && m[n] == ':' && m[n + 1] == ' ')
    m += n + 2;
  snprintf(msg, sizeof(msg), "%s", m);
  return cm_error_set(err, rc, "registry %s: %s", method, msg);
}

int regc_call(const struct regc *o, const char *method, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *resp_desc, cm_arena *a, void *resp,
             struct cm_error *err)
{
  char path[96];
  int rc;
  snprintf(path, sizeof(path), "/credito.v1.Registry/%s", method);
  rc = rpc_unary(o->ch, path, req, resp_desc, o->timeout_ms, a, resp, err);
  return rc ? reg_fail(err, rc, method) : 0;
}

int regc_md5_hex(const void *bytes, size_t len, char hex[33])
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!EVP_Digest(bytes, len, md, &n, EVP_md5(), NULL) || n != 16)
    return CM_E_INTERNAL;
  for (unsigned int i = 0; i < n; i++)
    snprintf(hex + 2 * i, 3, "%02x", md[i]);
  return 0;
}

/* The header or chunk of one download message (either response type). */
static void download_part(const ProtobufCMessage *m, const Credito__V1__Blob **header,
                          const ProtobufCBinaryData **chunk)
{
  *header = NULL;
  *chunk = NULL;
  if (m->descriptor == &credito__v1__get_dataset_bytes_response__descriptor) {
    const Credito__V1__GetDatasetBytesResponse *r = (const void *)m;
    if (r->part_case == CREDITO__V1__GET_DATASET_BYTES_RESPONSE__PART_HEADER)
      *header = r->header;
    else if (r->part_case == CREDITO__V1__GET_DATASET_BYTES_RESPONSE__PART_CHUNK)
      *chunk = &r->chunk;
  } else {
    const Credito__V1__DownloadArtifactResponse *r = (const void *)m;
    if (r->part_case == CREDITO__V1__DOWNLOAD_ARTIFACT_RESPONSE__PART_HEADER)
      *header = r->header;
    else if (r->part_case == CREDITO__V1__DOWNLOAD_ARTIFACT_RESPONSE__PART_CHUNK)
      *chunk = &r->chunk;
  }
}

/* Reads a header-then-chunks download stream (GetDatasetBytes, DownloadArtifact share the
 * wire shape: part 1 a Blob header, part 2 a chunk) into out, refusing more than max bytes. */
static int download(const struct regc *o, const char *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *desc, size_t max, struct cm_buf *out,
                    struct cm_error *err)
{
  char path[96];
  rpc_stream *st;
  int rc;

  snprintf(path, sizeof(path), "/credito.v1.Registry/%s", method);
  st = rpc_stream_open(o->ch, path, o->timeout_ms * 10, err);
  if (!st)
    return err->code;
  rc = rpc_stream_send(st, req, err);
  rc = rc ? rc : rpc_stream_close_send(st, err);
  while (!rc) {
    cm_arena *a = cm_arena_new(0);
    ProtobufCMessage *m = NULL;
    const Credito__V1__Blob *header = NULL;
    const ProtobufCBinaryData *chunk = NULL;
    rc = a ? rpc_stream_recv(st, desc, a, &m, err)
           : cm_error_set(err, CM_E_NOMEM, "out of memory");
    if (!rc && m)
      download_part(m, &header, &chunk);
    if (header && header->size > 0 && (uint64_t)header->size > max)
      rc = cm_error_set(err, CM_E_TOOLARGE, "%lld bytes are over the cap of %zu",
                        (long long)header->size, max);
    if (!rc && chunk && cm_buf_add(out, chunk->data, chunk->len))
      rc = cm_error_set(err, CM_E_TOOLARGE, "more than %zu bytes", max);
    cm_arena_free(a);
    if (!rc && !m)
      break;
  }
  if (!rc)
    rc = rpc_stream_finish(st, err);
  rpc_stream_free(st);
  return rc ? reg_fail(err, rc, method) : 0;
}

int regc_dataset_get(const struct regc *o, const char *md5, size_t max, struct cm_buf *out,
                    struct cm_error *err)
{
  Credito__V1__GetDatasetBytesRequest req = CREDITO__V1__GET_DATASET_BYTES_REQUEST__INIT;
  req.md5 = (char *)md5;
  out->max = max;
  return download(o, "GetDatasetBytes", &req.base,
                  &credito__v1__get_dataset_bytes_response__descriptor, max, out, err);
}

int regc_artifact_get(const struct regc *o, const char *key, size_t max, struct cm_buf *out,
                     struct cm_error *err)
{
  Credito__V1__DownloadArtifactRequest req = CREDITO__V1__DOWNLOAD_ARTIFACT_REQUEST__INIT;
  req.key = (char *)key;
  out->max = max;
  return download(o, "DownloadArtifact", &req.base,
                  &credito__v1__download_artifact_response__descriptor, max, out, err);
}

/* Sends header, then bytes in chunks, then reads the one response. set_chunk stores a chunk in
 * msg (the request type's oneof). */
static int upload(const struct regc *o, const char *method, ProtobufCMessage *msg,
                  void (*set_chunk)(ProtobufCMessage *, const uint8_t *, size_t),
                  const uint8_t *bytes, size_t len, const ProtobufCMessageDescriptor *resp_desc,
                  cm_arena *a, ProtobufCMessage **resp, struct cm_error *err)
{
  char path[96];
  rpc_stream *st;
  int rc;

  snprintf(path, sizeof(path), "/credito.v1.Registry/%s", method);
  st = rpc_stream_open(o->ch, path, o->timeout_ms * 10, err);
  if (!st)
    return err->code;
  rc = rpc_stream_send(st, msg, err);
  for (size_t off = 0; !rc && off < len; off += REGC_CHUNK) {
    set_chunk(msg, bytes + off, len - off < REGC_CHUNK ? len - off : REGC_CHUNK);
    rc = rpc_stream_send(st, msg, err);
  }
  rc = rc ? rc : rpc_stream_close_send(st, err);
  rc = rc ? rc : rpc_stream_recv(st, resp_desc, a, resp, err);
  rc = rc ? rc : rpc_stream_finish(st, err);
  if (!rc && !*resp)
    rc = cm_error_set(err, CM_E_INTERNAL, "no response");
  rpc_stream_free(st);
  return rc ? reg_fail(err, rc, method) : 0;
}

static void dataset_chunk(ProtobufCMessage *m, const uint8_t *p, size_t n)
{
  Credito__V1__PutDatasetBytesRequest *r = (Credito__V1__PutDatasetBytesRequest *)m;
  r->part_case = CREDITO__V1__PUT_DATASET_BYTES_REQUEST__PART_CHUNK;
  r->chunk = (ProtobufCBinaryData){n, (uint8_t *)(uintptr_t)p};
}

int regc_dataset_put(const struct regc *o, const char *bytes, size_t len, const char *md5,
                    struct cm_error *err)
{
  Credito__V1__PutDatasetBytesRequest req = CREDITO__V1__PUT_DATASET_BYTES_REQUEST__INIT;
  Credito__V1__PutDatasetBytesHeader h = CREDITO__V1__PUT_DATASET_BYTES_HEADER__INIT;
  cm_arena *a = cm_arena_new(0);
  ProtobufCMessage *blob = NULL;
  int rc;

  if (!a)
    return cm_error_set(err, CM_E_NOMEM, "out of memory");
  h.expected_size = (int64_t)len;
  h.expected_md5 = (char *)md5;
  req.part_case = CREDITO__V1__PUT_DATASET_BYTES_REQUEST__PART_HEADER;
  req.header = &h;
  rc = upload(o, "PutDatasetBytes", &req.base, dataset_chunk, (const uint8_t *)bytes, len,
              &credito__v1__blob__descriptor, a, &blob, err);
  cm_arena_free(a);
  return rc;
}

static void artifact_chunk(ProtobufCMessage *m, const uint8_t *p, size_t n)
{
  Credito__V1__UploadArtifactRequest *r = (Credito__V1__UploadArtifactRequest *)m;
  r->part_case = CREDITO__V1__UPLOAD_ARTIFACT_REQUEST__PART_CHUNK;
  r->chunk = (ProtobufCBinaryData){n, (uint8_t *)(uintptr_t)p};
}

int regc_artifact_put(const struct regc *o, const char *run_id, const char *path,
                     const char *content_type, const uint8_t *bytes, size_t len,
                     const char *sha256, cm_arena *a, Credito__V1__Artifact **out,
                     struct cm_error *err)
{
  Credito__V1__UploadArtifactRequest req = CREDITO__V1__UPLOAD_ARTIFACT_REQUEST__INIT;
  Credito__V1__UploadArtifactHeader h = CREDITO__V1__UPLOAD_ARTIFACT_HEADER__INIT;

  h.run_id = (char *)run_id;
  h.path = (char *)path;
  h.content_type = (char *)content_type;
  h.expected_size = (int64_t)len;
  h.expected_sha256 = (char *)sha256;
  req.part_case = CREDITO__V1__UPLOAD_ARTIFACT_REQUEST__PART_HEADER;
  req.header = &h;
  return upload(o, "UploadArtifact", &req.base, artifact_chunk, bytes, len,
                &credito__v1__artifact__descriptor, a, (ProtobufCMessage **)out, err);
}
